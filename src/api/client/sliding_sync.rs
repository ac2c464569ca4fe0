//! `POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync` (MSC4186).

use std::sync::Arc;
use std::time::Duration;

use ruma::api::client::sync::sync_events::v5;

use super::sync::wake_ups;
use crate::api::Ruma;
use crate::api::router::RawJson;
use crate::error::Result;
use crate::service::{Services, sliding};

/// Longest a sliding sync request may wait for news.
const MAX_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn sync(services: Arc<Services>, request: Ruma<v5::Request>) -> Result<RawJson> {
    let user_id = request.user()?;
    let device_id = request.device()?;
    let body = &request.body;
    let timeout = body.timeout.unwrap_or_default().min(MAX_TIMEOUT);
    if services.config.allow_presence {
        let state = body.set_presence.to_string();
        if state != "offline" {
            crate::service::federation::edus::set_presence(&services, user_id, &state, None)?;
        }
    }
    // Register for wake-ups before reading, so nothing written meanwhile is missed.
    let waits = (body.pos.is_some() && !timeout.is_zero())
        .then(|| wake_ups(&services, user_id, device_id))
        .transpose()?;
    let answer = sliding::sync(&services, user_id, device_id, body)?;
    let Some(waits) = waits else {
        return Ok(RawJson(sliding::finish(&services, answer)));
    };
    if answer.has_updates {
        return Ok(RawJson(sliding::finish(&services, answer)));
    }
    let _waiting = services
        .metrics
        .as_ref()
        .map(|metrics| metrics.sync_waiting());
    let _ = tokio::time::timeout(timeout, futures_util::future::select_all(waits)).await;
    let answer = sliding::sync(&services, user_id, device_id, body)?;
    Ok(RawJson(sliding::finish(&services, answer)))
}
