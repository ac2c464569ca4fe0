//! `PUT /rooms/{roomId}/redact/{eventId}/{txnId}`.

use std::sync::Arc;

use ruma::api::client::redact::redact_event;

use crate::api::Ruma;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::rooms::redaction::redaction_event;

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

    let builder = redaction_event(
        &rooms.rules(room_id)?,
        &body.event_id,
        body.reason.as_deref(),
    );

    let guard = rooms.lock_room(room_id).await;
    // Checked again under the lock: a concurrent retry may have finished meanwhile. (The
    // transaction is recorded only once the target is redacted, so a crash in between makes a
    // retry redact again rather than report a redaction that was never applied.)
    if let Some(event_id) = rooms.txn_event(sender, device.as_str(), &txn_key)? {
        return Ok(redact_event::v3::Response::new(event_id));
    }
    let event_id = rooms.build_and_append(builder, sender, room_id, &guard)?;
    let because = rooms.redacted_because(room_id, &event_id)?;
    let purge = rooms.apply_redaction(room_id, &target.event_id, because)?;
    // Under the lock, so a retry waiting for it finds the transaction.
    rooms.set_txn_event(
        sender,
        device.as_str(),
        &txn_key,
        body.txn_id.as_str(),
        &event_id,
    )?;
    guard.release().await;
    // Making the old content leave the disk takes a flush and compactions: after the room is
    // unlocked (senders to it need not wait) and on the blocking pool, but before answering,
    // so a client told the event is redacted can rely on it being gone.
    let engine = Arc::clone(&services.engine);
    tokio::task::spawn_blocking(move || engine.purge_old_versions(&purge))
        .await
        .map_err(Error::internal)??;
    Ok(redact_event::v3::Response::new(event_id))
}
