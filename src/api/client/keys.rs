//! End-to-end encryption keys: upload, query, claim, changes, cross-signing and signatures.

use std::collections::BTreeMap;
use std::sync::Arc;

use ruma::OwnedUserId;
use ruma::api::client::keys::{
    claim_keys, get_key_changes, get_keys, upload_keys, upload_signatures, upload_signing_keys,
};
use ruma::serde::Raw;
use serde_json::{Map, Value, json};

use super::message::parse_stream_token;
use crate::api::Ruma;
use crate::api::router::RawJson;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::keys::{self, KeyKind, across_servers};
use crate::service::uiaa::Requirement;

fn to_value<T>(raw: &Raw<T>) -> Result<Value> {
    serde_json::from_str(raw.json().get())
        .map_err(|e| Error::bad_json(format!("Malformed key JSON: {e}")))
}

pub async fn upload(
    services: Arc<Services>,
    request: Ruma<upload_keys::v3::Request>,
) -> Result<RawJson> {
    let user_id = request.user()?;
    let device_id = request.device()?;
    let body = &request.body;
    // Everything is checked before anything is stored: a bad upload changes nothing.
    let device_keys = body.device_keys.as_ref().map(to_value).transpose()?;
    let mut one_time_keys = BTreeMap::new();
    for (key_id, key) in &body.one_time_keys {
        one_time_keys.insert(key_id.to_string(), to_value(key)?);
    }
    let mut fallback_keys = BTreeMap::new();
    for (key_id, key) in &body.fallback_keys {
        fallback_keys.insert(key_id.to_string(), to_value(key)?);
    }
    keys::check_upload(
        user_id,
        device_id,
        device_keys.as_ref(),
        &one_time_keys,
        &fallback_keys,
    )?;
    let keys = &services.keys;
    // One-time keys first: the only part that can still be refused (a reused key ID).
    keys.upload_one_time_keys(user_id, device_id, &one_time_keys)?;
    keys.upload_fallback_keys(user_id, device_id, &fallback_keys)?;
    if let Some(device_keys) = &device_keys
        && keys.upload_device_keys(user_id, device_id, device_keys)?
    {
        keys::announce_change(&services, user_id, keys::Changed::Device(device_id))?;
    }
    Ok(RawJson(json!({
        "one_time_key_counts": services.keys.one_time_key_counts_json(user_id, device_id)?,
    })))
}

pub async fn query(
    services: Arc<Services>,
    request: Ruma<get_keys::v3::Request>,
) -> Result<RawJson> {
    let viewer = request.user()?;
    let mut device_keys = Map::new();
    let mut master_keys = Map::new();
    let mut self_signing_keys = Map::new();
    let mut user_signing_keys = Map::new();
    let mut remote = BTreeMap::new();
    for (user_id, wanted) in &request.body.device_keys {
        if user_id.server_name() != services.server_name() {
            remote.insert(user_id.clone(), wanted.clone());
            continue;
        }
        let found = across_servers::local_user_keys(&services, user_id, wanted, Some(viewer))?;
        device_keys.insert(user_id.to_string(), Value::Object(found.devices));
        let user = user_id.to_string();
        for (map, key) in [
            (&mut master_keys, found.master),
            (&mut self_signing_keys, found.self_signing),
            (&mut user_signing_keys, found.user_signing),
        ] {
            if let Some(key) = key {
                map.insert(user.clone(), key);
            }
        }
    }
    let mut failures = Map::new();
    if !remote.is_empty() {
        let timeout = request
            .body
            .timeout
            .unwrap_or(across_servers::DEFAULT_TIMEOUT);
        let found = across_servers::query_remote(&services, viewer, remote, timeout).await?;
        device_keys.extend(found.device_keys);
        master_keys.extend(found.master_keys);
        self_signing_keys.extend(found.self_signing_keys);
        failures = found.failures;
    }
    Ok(RawJson(json!({
        "device_keys": device_keys,
        "master_keys": master_keys,
        "self_signing_keys": self_signing_keys,
        "user_signing_keys": user_signing_keys,
        "failures": failures,
    })))
}

pub async fn claim(
    services: Arc<Services>,
    request: Ruma<claim_keys::v3::Request>,
) -> Result<RawJson> {
    let mut claimed = Map::new();
    let mut remote = BTreeMap::new();
    for (user_id, devices) in &request.body.one_time_keys {
        let devices: BTreeMap<_, String> = devices
            .iter()
            .map(|(device, algorithm)| (device.clone(), algorithm.to_string()))
            .collect();
        if user_id.server_name() != services.server_name() {
            remote.insert(user_id.clone(), devices);
            continue;
        }
        let by_device = across_servers::claim_local(&services, user_id, &devices)?;
        if !by_device.is_empty() {
            claimed.insert(user_id.to_string(), Value::Object(by_device));
        }
    }
    let mut failures = Map::new();
    if !remote.is_empty() {
        let timeout = request
            .body
            .timeout
            .unwrap_or(across_servers::DEFAULT_TIMEOUT);
        let (from_remote, failed) = across_servers::claim_remote(&services, remote, timeout).await;
        claimed.extend(from_remote);
        failures = failed;
    }
    Ok(RawJson(
        json!({ "one_time_keys": claimed, "failures": failures }),
    ))
}

pub async fn changes(
    services: Arc<Services>,
    request: Ruma<get_key_changes::v3::Request>,
) -> Result<get_key_changes::v3::Response> {
    let from = parse_stream_token(&request.body.from)?;
    let to = parse_stream_token(&request.body.to)?;
    let changes = services
        .keys
        .device_list_changes(request.user()?, from, to)?;
    Ok(get_key_changes::v3::Response::new(
        changes.changed.into_iter().collect(),
        changes.left.into_iter().collect(),
    ))
}

pub async fn upload_signing_keys(
    services: Arc<Services>,
    request: Ruma<upload_signing_keys::v3::Request>,
) -> Result<upload_signing_keys::v3::Response> {
    let user_id = request.user()?;
    let body = &request.body;
    let master = body.master_key.as_ref().map(to_value).transpose()?;
    let self_signing = body.self_signing_key.as_ref().map(to_value).transpose()?;
    let user_signing = body.user_signing_key.as_ref().map(to_value).transpose()?;
    let uploads: Vec<(KeyKind, &Value)> = [
        (KeyKind::Master, master.as_ref()),
        (KeyKind::SelfSigning, self_signing.as_ref()),
        (KeyKind::UserSigning, user_signing.as_ref()),
    ]
    .into_iter()
    .filter_map(|(kind, key)| key.map(|key| (kind, key)))
    .collect();
    // Setting up cross-signing is free; replacing existing keys needs the password, since a
    // stolen session could otherwise take over the user's identity.
    if services
        .keys
        .cross_signing_upload_replaces(user_id, &uploads)?
    {
        services
            .uiaa
            .authenticate(
                &services.users,
                Requirement::password(user_id),
                body.auth.as_ref(),
            )
            .await?;
    }
    if services.keys.upload_cross_signing_keys(
        user_id,
        master.as_ref(),
        self_signing.as_ref(),
        user_signing.as_ref(),
    )? {
        keys::announce_change(&services, user_id, keys::Changed::CrossSigningKeys)?;
    }
    Ok(upload_signing_keys::v3::Response::new())
}

pub async fn upload_signatures(
    services: Arc<Services>,
    request: Ruma<upload_signatures::v3::Request>,
) -> Result<RawJson> {
    let signer = request.user()?;
    let mut failures = Map::new();
    let mut changed: Vec<OwnedUserId> = Vec::new();
    for (target, signed_keys) in &request.body.signed_keys {
        let mut target_failures = Map::new();
        for (key_id, object) in signed_keys {
            let result = match serde_json::from_str::<Value>(object.get()) {
                Ok(object) if object.is_object() => services
                    .keys
                    .add_signatures(signer, target, key_id, &object)?,
                _ => Err(keys::SignatureFailure {
                    status: 400,
                    errcode: "M_BAD_JSON",
                    message: "The signed object is not a JSON object".into(),
                }),
            };
            match result {
                Ok(()) => {
                    if !changed.contains(target) {
                        changed.push(target.clone());
                    }
                }
                Err(failure) => {
                    target_failures.insert(key_id.to_owned(), failure.to_json());
                }
            }
        }
        if !target_failures.is_empty() {
            failures.insert(target.to_string(), Value::Object(target_failures));
        }
    }
    for user_id in &changed {
        if user_id == signer {
            keys::announce_change(&services, user_id, keys::Changed::Everything)?;
        } else {
            // A signature on someone else's key is only shown to the signer.
            keys::announce_to_own_devices(&services, signer)?;
        }
    }
    Ok(RawJson(json!({ "failures": failures })))
}
