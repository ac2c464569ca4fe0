//! Device management.

use std::sync::Arc;

use ruma::api::client::device::{
    Device, delete_device, delete_devices, get_device, get_devices, update_device,
};
use ruma::{MilliSecondsSinceUnixEpoch, OwnedDeviceId, UInt};

use crate::api::Ruma;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::uiaa::Requirement;
use crate::service::users::StoredDevice;

fn to_device(device_id: OwnedDeviceId, stored: StoredDevice) -> Device {
    let mut device = Device::new(device_id);
    device.display_name = stored.display_name;
    device.last_seen_ip = stored.last_seen_ip;
    device.last_seen_ts = stored
        .last_seen_ts
        .and_then(UInt::new)
        .map(MilliSecondsSinceUnixEpoch);
    device
}

pub async fn list(
    services: Arc<Services>,
    request: Ruma<get_devices::v3::Request>,
) -> Result<get_devices::v3::Response> {
    let devices = services.users.devices(request.user()?)?;
    Ok(get_devices::v3::Response::new(
        devices
            .into_iter()
            .map(|(id, stored)| to_device(id, stored))
            .collect(),
    ))
}

pub async fn get(
    services: Arc<Services>,
    request: Ruma<get_device::v3::Request>,
) -> Result<get_device::v3::Response> {
    let device_id = &request.body.device_id;
    let stored = services
        .users
        .device(request.user()?, device_id)?
        .ok_or_else(|| Error::not_found("Device not found"))?;
    Ok(get_device::v3::Response::new(to_device(
        device_id.clone(),
        stored,
    )))
}

pub async fn update(
    services: Arc<Services>,
    request: Ruma<update_device::v3::Request>,
) -> Result<update_device::v3::Response> {
    let body = &request.body;
    let user_id = request.user()?;
    if services.users.device(user_id, &body.device_id)?.is_none() {
        return Err(Error::not_found("Device not found"));
    }
    // An absent display name leaves it unchanged.
    if let Some(name) = &body.display_name {
        services
            .users
            .set_device_display_name(user_id, &body.device_id, Some(name.clone()))?;
        // Others show the device's name beside its keys.
        if services
            .keys
            .device_keys(user_id, &body.device_id)?
            .is_some()
        {
            crate::service::keys::announce_change(
                &services,
                user_id,
                crate::service::keys::Changed::Device(&body.device_id),
            )?;
        }
    }
    Ok(update_device::v3::Response::new())
}

pub async fn delete(
    services: Arc<Services>,
    request: Ruma<delete_device::v3::Request>,
) -> Result<delete_device::v3::Response> {
    let user_id = request.user()?;
    let device_id = &request.body.device_id;
    if services.users.device(user_id, device_id)?.is_none() {
        return Err(Error::not_found("Device not found"));
    }
    services
        .uiaa
        .authenticate(
            &services.users,
            Requirement::password(user_id),
            request.body.auth.as_ref(),
        )
        .await?;
    services.remove_device(user_id, device_id)?;
    Ok(delete_device::v3::Response::new())
}

pub async fn delete_many(
    services: Arc<Services>,
    request: Ruma<delete_devices::v3::Request>,
) -> Result<delete_devices::v3::Response> {
    let user_id = request.user()?;
    services
        .uiaa
        .authenticate(
            &services.users,
            Requirement::password(user_id),
            request.body.auth.as_ref(),
        )
        .await?;
    for device_id in &request.body.devices {
        services.remove_device(user_id, device_id)?;
    }
    Ok(delete_devices::v3::Response::new())
}
