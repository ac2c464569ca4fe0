//! Our users' devices and keys as other servers ask for them: `user/keys/query`,
//! `user/keys/claim` and `user/devices/{userId}` — answered by the same functions as a
//! local client's query and claim, for this server's users only.

use std::collections::BTreeMap;
use std::sync::Arc;

use ruma::api::federation::device::get_devices;
use ruma::api::federation::keys::{claim_keys, get_keys};
use serde_json::{Map, Value, json};

use crate::api::Ruma;
use crate::api::router::RawJson;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::keys::across_servers::{claim_local, local_user_keys};

/// `POST /_matrix/federation/v1/user/keys/query`.
pub async fn query(
    services: Arc<Services>,
    request: Ruma<get_keys::v1::Request>,
) -> Result<RawJson> {
    let mut device_keys = Map::new();
    let mut master_keys = Map::new();
    let mut self_signing_keys = Map::new();
    for (user_id, wanted) in &request.body.device_keys {
        if user_id.server_name() != services.server_name() {
            continue;
        }
        let found = local_user_keys(&services, user_id, wanted, None)?;
        device_keys.insert(user_id.to_string(), Value::Object(found.devices));
        if let Some(master) = found.master {
            master_keys.insert(user_id.to_string(), master);
        }
        if let Some(key) = found.self_signing {
            self_signing_keys.insert(user_id.to_string(), key);
        }
    }
    Ok(RawJson(json!({
        "device_keys": device_keys,
        "master_keys": master_keys,
        "self_signing_keys": self_signing_keys,
    })))
}

/// `POST /_matrix/federation/v1/user/keys/claim`.
pub async fn claim(
    services: Arc<Services>,
    request: Ruma<claim_keys::v1::Request>,
) -> Result<RawJson> {
    let mut claimed = Map::new();
    for (user_id, devices) in &request.body.one_time_keys {
        if user_id.server_name() != services.server_name() {
            continue;
        }
        let devices: BTreeMap<_, String> = devices
            .iter()
            .map(|(device, algorithm)| (device.clone(), algorithm.to_string()))
            .collect();
        let by_device = claim_local(&services, user_id, &devices)?;
        if !by_device.is_empty() {
            claimed.insert(user_id.to_string(), Value::Object(by_device));
        }
    }
    Ok(RawJson(json!({ "one_time_keys": claimed })))
}

/// `GET /_matrix/federation/v1/user/devices/{userId}`: every device of one of our users,
/// with its keys, for a server starting to track them (or resyncing after a gap).
pub async fn devices(
    services: Arc<Services>,
    request: Ruma<get_devices::v1::Request>,
) -> Result<RawJson> {
    let user_id = &request.body.user_id;
    if user_id.server_name() != services.server_name() || !services.users.exists(user_id)? {
        return Err(Error::not_found("No such user on this server"));
    }
    // Read before the devices: an update made meanwhile has a later ID, so the asking server
    // applies it on top of this answer rather than taking it as already included.
    let stream_id = services.keys.latest_device_update(user_id)?;
    let found = local_user_keys(&services, user_id, &[], None)?;
    let devices: Vec<Value> = found
        .devices
        .into_iter()
        .map(|(device_id, mut keys)| {
            let display_name = keys
                .get_mut("unsigned")
                .and_then(|unsigned| unsigned.get("device_display_name").cloned());
            let mut device = json!({ "device_id": device_id, "keys": keys });
            if let Some(name) = display_name {
                device["device_display_name"] = name;
            }
            device
        })
        .collect();
    let mut answer = json!({
        "user_id": user_id,
        "stream_id": stream_id.0,
        "devices": devices,
    });
    if let Some(master) = found.master {
        answer["master_key"] = master;
    }
    if let Some(key) = found.self_signing {
        answer["self_signing_key"] = key;
    }
    Ok(RawJson(answer))
}
