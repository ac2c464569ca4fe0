//! `PUT /rooms/{roomId}/redact/{eventId}/{txnId}`.

use std::sync::Arc;

use ruma::api::client::redact::redact_event;
use ruma::events::TimelineEventType;
use ruma::{CanonicalJsonObject, RoomVersionId};
use serde_json::{Value, json};

use crate::api::Ruma;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::rooms::PduBuilder;
use crate::service::rooms::pdu::client_event;

/// Room versions before 11 carry `redacts` at the top level of the event, later ones in the
/// content.
fn redacts_in_content(version: &RoomVersionId) -> bool {
    !matches!(
        version,
        RoomVersionId::V1
            | RoomVersionId::V2
            | RoomVersionId::V3
            | RoomVersionId::V4
            | RoomVersionId::V5
            | RoomVersionId::V6
            | RoomVersionId::V7
            | RoomVersionId::V8
            | RoomVersionId::V9
            | RoomVersionId::V10
    )
}

pub async fn redact(
    services: Arc<Services>,
    request: Ruma<redact_event::v3::Request>,
) -> Result<redact_event::v3::Response> {
    let sender = request.user()?;
    let device = request.device()?;
    let body = &request.body;
    let room_id = &body.room_id;
    let rooms = &services.rooms;
    let txn_key = format!("redact/{}", body.txn_id);
    if let Some(event_id) = rooms.txn_event(sender, device.as_str(), &txn_key)? {
        return Ok(redact_event::v3::Response::new(event_id));
    }
    if !rooms.exists(room_id)? {
        return Err(Error::not_found("Unknown room"));
    }
    let target = rooms
        .get_pdu(&body.event_id)?
        .filter(|pdu| pdu.room_id.as_deref().is_none_or(|room| room == room_id))
        .ok_or_else(|| Error::not_found("Event not found"))?;
    // Anyone may redact their own events; others' need the `redact` power level.
    if target.sender != sender && !rooms.has_power(room_id, sender, "redact", 50)? {
        return Err(Error::forbidden(
            "You may not redact other users' events in this room",
        ));
    }

    let version = rooms.room_version(room_id)?;
    let mut content = json!({});
    if let Some(reason) = &body.reason {
        content["reason"] = json!(reason);
    }
    let mut builder = PduBuilder::timeline(TimelineEventType::RoomRedaction, content);
    if redacts_in_content(&version) {
        builder.content["redacts"] = json!(body.event_id);
    } else {
        builder.redacts = Some(body.event_id.clone());
    }

    let guard = rooms.lock_room(room_id).await;
    // Checked again under the lock: a concurrent retry may have finished meanwhile. (The
    // transaction is recorded only once the target is redacted, so a crash in between makes a
    // retry redact again rather than report a redaction that was never applied.)
    if let Some(event_id) = rooms.txn_event(sender, device.as_str(), &txn_key)? {
        return Ok(redact_event::v3::Response::new(event_id));
    }
    let event_id = rooms.build_and_append(builder, sender, room_id, &guard)?;
    // The purge below can take a while: write the members' indexes now, so the redaction's
    // write floor does not hold back every /sync meanwhile.
    rooms.flush_fanout(room_id);
    let redaction = rooms
        .get_pdu_json(&event_id)?
        .ok_or_else(|| Error::internal("redaction vanished"))?;
    let because: Value = serde_json::from_str(client_event(&redaction, room_id)?.json().get())
        .map_err(Error::internal)?;
    let because: CanonicalJsonObject = serde_json::from_value(because).map_err(Error::internal)?;
    let target_id = target.event_id.clone();
    let services_for_purge = Arc::clone(&services);
    let room = room_id.clone();
    // Rewriting and purging touches the disk; keep it off the async workers.
    tokio::task::spawn_blocking(move || {
        services_for_purge
            .rooms
            .apply_redaction(&room, &target_id, because)
    })
    .await
    .map_err(Error::internal)??;
    // Still under the lock, so a retry waiting for it finds the transaction.
    rooms.set_txn_event(
        sender,
        device.as_str(),
        &txn_key,
        body.txn_id.as_str(),
        &event_id,
    )?;
    drop(guard);
    Ok(redact_event::v3::Response::new(event_id))
}
