//! `PUT /sendToDevice/{eventType}/{txnId}`.

use std::collections::BTreeMap;
use std::sync::Arc;

use ruma::OwnedServerName;
use ruma::api::client::to_device::send_event_to_device;
use ruma::to_device::DeviceIdOrAllDevices;
use serde_json::{Map, Value};

use crate::api::Ruma;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::federation::edus;
use crate::service::to_device::Target;

pub async fn send(
    services: Arc<Services>,
    request: Ruma<send_event_to_device::v3::Request>,
) -> Result<send_event_to_device::v3::Response> {
    let sender = request.user()?;
    let body = &request.body;
    let mut messages = Vec::new();
    // Other servers' users: their messages, by server, to go as one EDU per server.
    let mut remote: BTreeMap<OwnedServerName, Map<String, Value>> = BTreeMap::new();
    for (user_id, targets) in &body.messages {
        for (target, content) in targets {
            let content: Value = serde_json::from_str(content.json().get())
                .map_err(|e| Error::bad_json(format!("Malformed message content: {e}")))?;
            if !content.is_object() {
                return Err(Error::bad_json("Message content must be a JSON object"));
            }
            if user_id.server_name() != services.server_name() {
                let by_device = remote
                    .entry(user_id.server_name().to_owned())
                    .or_default()
                    .entry(user_id.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                by_device[target.to_string()] = content;
                continue;
            }
            let target = match target {
                DeviceIdOrAllDevices::DeviceId(device) => Target::Device(device.clone()),
                DeviceIdOrAllDevices::AllDevices => Target::AllDevices,
            };
            messages.push((user_id.as_ref(), target, content));
        }
    }
    let event_type = body.event_type.to_string();
    let new = services.to_device.send(
        sender,
        &request.txn_device()?,
        body.txn_id.as_str(),
        &event_type,
        &messages,
        |user_id| services.users.device_ids(user_id),
    )?;
    if new {
        services
            .appservices
            .queue
            .to_device(&services, sender, &event_type, &messages);
    }
    // A retried request was sent on the first time.
    if new && !remote.is_empty() {
        let event_type = body.event_type.to_string();
        edus::send_to_device(&services, sender, &event_type, remote)?;
    }
    Ok(send_event_to_device::v3::Response::new())
}
