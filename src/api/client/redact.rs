//! `PUT /rooms/{roomId}/redact/{eventId}/{txnId}`.

use std::sync::Arc;

use ruma::api::client::redact::redact_event;

use crate::api::Ruma;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::rooms::redaction::RedactionTxn;

pub async fn redact(
    services: Arc<Services>,
    request: Ruma<redact_event::v3::Request>,
) -> Result<redact_event::v3::Response> {
    let sender = request.user()?;
    let device = request.txn_device()?;
    let body = &request.body;
    let txn = RedactionTxn {
        device: &device,
        txn_id: body.txn_id.as_str(),
    };
    let (event_id, purge) = services
        .rooms
        .redact(
            sender,
            &body.room_id,
            &body.event_id,
            body.reason.as_deref(),
            Some(txn),
        )
        .await?;
    // Making the old content leave the disk takes a flush and compactions: after the room is
    // unlocked (senders to it need not wait) and on the blocking pool, but before answering,
    // so a client told the event is redacted can rely on it being gone.
    let engine = Arc::clone(&services.engine);
    tokio::task::spawn_blocking(move || engine.purge_old_versions(&purge))
        .await
        .map_err(Error::internal)??;
    Ok(redact_event::v3::Response::new(event_id))
}
