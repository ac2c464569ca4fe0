//! `PUT /sendToDevice/{eventType}/{txnId}`.

use std::sync::Arc;

use ruma::api::client::to_device::send_event_to_device;
use ruma::to_device::DeviceIdOrAllDevices;
use serde_json::Value;

use crate::api::Ruma;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::to_device::Target;

pub async fn send(
    services: Arc<Services>,
    request: Ruma<send_event_to_device::v3::Request>,
) -> Result<send_event_to_device::v3::Response> {
    let sender = request.user()?;
    let body = &request.body;
    let mut messages = Vec::new();
    for (user_id, targets) in &body.messages {
        if user_id.server_name() != services.server_name() {
            // Federation does not exist yet: say so in the log rather than pretend delivery.
            tracing::warn!(%user_id, "to-device message for a remote user dropped (no federation)");
            continue;
        }
        for (target, content) in targets {
            let content: Value = serde_json::from_str(content.json().get())
                .map_err(|e| Error::bad_json(format!("Malformed message content: {e}")))?;
            if !content.is_object() {
                return Err(Error::bad_json("Message content must be a JSON object"));
            }
            let target = match target {
                DeviceIdOrAllDevices::DeviceId(device) => Target::Device(device.clone()),
                DeviceIdOrAllDevices::AllDevices => Target::AllDevices,
            };
            messages.push((user_id.as_ref(), target, content));
        }
    }
    services.to_device.send(
        sender,
        request.device()?,
        body.txn_id.as_str(),
        &body.event_type.to_string(),
        &messages,
        |user_id| {
            Ok(services
                .users
                .devices(user_id)?
                .into_iter()
                .map(|(device, _)| device)
                .collect())
        },
    )?;
    Ok(send_event_to_device::v3::Response::new())
}
