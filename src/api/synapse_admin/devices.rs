//! Devices and room blocks in Synapse's admin API.

use std::sync::Arc;

use ruma::UserId;
use serde_json::{Value, json};

use super::endpoints::*;
use super::users::{local_account, require_admin};
use crate::api::Ruma;
use crate::api::router::RawJson;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::users::StoredDevice;

fn device_json(user: &UserId, device_id: &str, device: &StoredDevice) -> Value {
    json!({
        "device_id": device_id,
        "display_name": device.display_name,
        "last_seen_ip": device.last_seen_ip,
        "last_seen_ts": device.last_seen_ts,
        "last_seen_user_agent": null,
        "user_id": user,
    })
}

pub async fn list(services: Arc<Services>, request: Ruma<devices::Request>) -> Result<RawJson> {
    require_admin(&services, &request)?;
    let user = &request.body.user_id;
    local_account(&services, user)?;
    let devices: Vec<Value> = services
        .users
        .devices(user)?
        .iter()
        .map(|(id, device)| device_json(user, id.as_str(), device))
        .collect();
    Ok(RawJson(
        json!({ "total": devices.len(), "devices": devices }),
    ))
}

pub async fn get(services: Arc<Services>, request: Ruma<device::Request>) -> Result<RawJson> {
    require_admin(&services, &request)?;
    let body = &request.body;
    local_account(&services, &body.user_id)?;
    services
        .users
        .devices(&body.user_id)?
        .iter()
        .find(|(id, _)| *id == body.device_id)
        .map(|(id, device)| RawJson(device_json(&body.user_id, id.as_str(), device)))
        .ok_or_else(|| Error::not_found("Device not found"))
}

pub async fn delete(
    services: Arc<Services>,
    request: Ruma<delete_device::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let body = &request.body;
    local_account(&services, &body.user_id)?;
    let result = services.remove_device(&body.user_id, &body.device_id);
    crate::admin::record_api_call(
        &services,
        &admin,
        request.client_ip,
        format!(
            "DELETE /_synapse/admin/v2/users/{}/devices/{}",
            body.user_id, body.device_id
        ),
        result.is_ok(),
    );
    result?;
    // As Synapse: deleting a device that does not exist succeeds too.
    Ok(RawJson(json!({})))
}

pub async fn delete_many(
    services: Arc<Services>,
    request: Ruma<delete_devices::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let body = &request.body;
    local_account(&services, &body.user_id)?;
    let result = body
        .devices
        .iter()
        .try_for_each(|device| services.remove_device(&body.user_id, device));
    crate::admin::record_api_call(
        &services,
        &admin,
        request.client_ip,
        format!(
            "POST /_synapse/admin/v2/users/{}/delete_devices ({} devices)",
            body.user_id,
            body.devices.len()
        ),
        result.is_ok(),
    );
    result?;
    Ok(RawJson(json!({})))
}

pub async fn get_block(
    services: Arc<Services>,
    request: Ruma<room_block::Request>,
) -> Result<RawJson> {
    require_admin(&services, &request)?;
    Ok(RawJson(
        json!({ "block": services.rooms.is_blocked(&request.body.room_id)? }),
    ))
}

pub async fn set_block(
    services: Arc<Services>,
    request: Ruma<set_room_block::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let body = &request.body;
    let result = services.rooms.set_blocked(&body.room_id, body.block);
    crate::admin::record_api_call(
        &services,
        &admin,
        request.client_ip,
        format!(
            "PUT /_synapse/admin/v1/rooms/{}/block ({})",
            body.room_id, body.block
        ),
        result.is_ok(),
    );
    result?;
    Ok(RawJson(json!({ "block": body.block })))
}
