//! Server-side key backup: `/room_keys/version[/{version}]` and `/room_keys/keys[...]`.

use std::sync::Arc;

use ruma::api::client::backup::{
    add_backup_keys, add_backup_keys_for_room, add_backup_keys_for_session, create_backup_version,
    delete_backup_keys, delete_backup_keys_for_room, delete_backup_keys_for_session,
    delete_backup_version, get_backup_info, get_backup_keys, get_backup_keys_for_room,
    get_backup_keys_for_session, get_latest_backup_info, update_backup_version,
};
use ruma::serde::Raw;
use ruma::{RoomId, UserId};
use serde_json::{Value, json};

use crate::api::Ruma;
use crate::api::router::RawJson;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::key_backup::BackupVersion;

/// `algorithm` and `auth_data` of a version body.
fn algorithm_of<T>(raw: &Raw<T>) -> Result<(String, Value, Option<String>)> {
    let body: Value = serde_json::from_str(raw.json().get())
        .map_err(|e| Error::bad_json(format!("Malformed backup version: {e}")))?;
    let algorithm = body
        .get("algorithm")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::bad_json("A backup version needs an algorithm"))?
        .to_owned();
    let auth_data = body
        .get("auth_data")
        .filter(|a| a.is_object())
        .cloned()
        .ok_or_else(|| Error::bad_json("A backup version needs auth_data (an object)"))?;
    let version = body
        .get("version")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok((algorithm, auth_data, version))
}

fn version_json(version: &str, info: &BackupVersion) -> Value {
    json!({
        "algorithm": info.algorithm,
        "auth_data": info.auth_data,
        "count": info.count,
        "etag": info.etag.to_string(),
        "version": version,
    })
}

fn counts(etag: u64, count: u64) -> RawJson {
    RawJson(json!({ "etag": etag.to_string(), "count": count }))
}

pub async fn create_version(
    services: Arc<Services>,
    request: Ruma<create_backup_version::v3::Request>,
) -> Result<RawJson> {
    let (algorithm, auth_data, _) = algorithm_of(&request.body.algorithm)?;
    let version = services
        .key_backup
        .create_version(request.user()?, &algorithm, auth_data)?;
    Ok(RawJson(json!({ "version": version })))
}

pub async fn latest_version(
    services: Arc<Services>,
    request: Ruma<get_latest_backup_info::v3::Request>,
) -> Result<RawJson> {
    let (version, info) = services
        .key_backup
        .latest_version(request.user()?)?
        .ok_or_else(|| Error::not_found("No current backup version"))?;
    Ok(RawJson(version_json(&version, &info)))
}

pub async fn get_version(
    services: Arc<Services>,
    request: Ruma<get_backup_info::v3::Request>,
) -> Result<RawJson> {
    let version = &request.body.version;
    let info = services
        .key_backup
        .version(request.user()?, version)?
        .ok_or_else(|| Error::not_found(format!("Unknown backup version {version}")))?;
    Ok(RawJson(version_json(version, &info)))
}

pub async fn update_version(
    services: Arc<Services>,
    request: Ruma<update_backup_version::v3::Request>,
) -> Result<RawJson> {
    let version = &request.body.version;
    let (algorithm, auth_data, body_version) = algorithm_of(&request.body.algorithm)?;
    if body_version.is_some_and(|v| v != *version) {
        return Err(Error::invalid_param(
            "The version in the body differs from the one in the path",
        ));
    }
    services
        .key_backup
        .update_version(request.user()?, version, &algorithm, auth_data)?;
    Ok(RawJson(json!({})))
}

pub async fn delete_version(
    services: Arc<Services>,
    request: Ruma<delete_backup_version::v3::Request>,
) -> Result<RawJson> {
    services
        .key_backup
        .delete_version(request.user()?, &request.body.version)?;
    Ok(RawJson(json!({})))
}

fn key_data<T>(raw: &Raw<T>) -> Result<Value> {
    serde_json::from_str(raw.json().get())
        .map_err(|e| Error::bad_json(format!("Malformed key data: {e}")))
}

fn put(
    services: &Services,
    user_id: &UserId,
    version: &str,
    keys: &[(&RoomId, &str, Value)],
) -> Result<RawJson> {
    let (etag, count) = services.key_backup.put_keys(user_id, version, keys)?;
    Ok(counts(etag, count))
}

pub async fn put_all(
    services: Arc<Services>,
    request: Ruma<add_backup_keys::v3::Request>,
) -> Result<RawJson> {
    let mut keys = Vec::new();
    for (room_id, room) in &request.body.rooms {
        for (session_id, data) in &room.sessions {
            keys.push((room_id.as_ref(), session_id.as_str(), key_data(data)?));
        }
    }
    put(&services, request.user()?, &request.body.version, &keys)
}

pub async fn put_room(
    services: Arc<Services>,
    request: Ruma<add_backup_keys_for_room::v3::Request>,
) -> Result<RawJson> {
    let body = &request.body;
    let mut keys = Vec::new();
    for (session_id, data) in &body.sessions {
        keys.push((body.room_id.as_ref(), session_id.as_str(), key_data(data)?));
    }
    put(&services, request.user()?, &body.version, &keys)
}

pub async fn put_session(
    services: Arc<Services>,
    request: Ruma<add_backup_keys_for_session::v3::Request>,
) -> Result<RawJson> {
    let body = &request.body;
    let keys = [(
        body.room_id.as_ref(),
        body.session_id.as_str(),
        key_data(&body.session_data)?,
    )];
    put(&services, request.user()?, &body.version, &keys)
}

pub async fn get_all(
    services: Arc<Services>,
    request: Ruma<get_backup_keys::v3::Request>,
) -> Result<RawJson> {
    let rooms = services
        .key_backup
        .keys(request.user()?, &request.body.version, None, None)?;
    let rooms: serde_json::Map<String, Value> = rooms
        .into_iter()
        .map(|(room, sessions)| (room, json!({ "sessions": sessions })))
        .collect();
    Ok(RawJson(json!({ "rooms": rooms })))
}

pub async fn get_room(
    services: Arc<Services>,
    request: Ruma<get_backup_keys_for_room::v3::Request>,
) -> Result<RawJson> {
    let body = &request.body;
    let rooms =
        services
            .key_backup
            .keys(request.user()?, &body.version, Some(&body.room_id), None)?;
    let sessions = rooms
        .get(body.room_id.as_str())
        .cloned()
        .unwrap_or_else(|| json!({}));
    Ok(RawJson(json!({ "sessions": sessions })))
}

pub async fn get_session(
    services: Arc<Services>,
    request: Ruma<get_backup_keys_for_session::v3::Request>,
) -> Result<RawJson> {
    let body = &request.body;
    let rooms = services.key_backup.keys(
        request.user()?,
        &body.version,
        Some(&body.room_id),
        Some(&body.session_id),
    )?;
    rooms
        .get(body.room_id.as_str())
        .and_then(|sessions| sessions.get(&body.session_id))
        .cloned()
        .map(RawJson)
        .ok_or_else(|| Error::not_found("No key backed up for this session"))
}

pub async fn delete_all(
    services: Arc<Services>,
    request: Ruma<delete_backup_keys::v3::Request>,
) -> Result<RawJson> {
    let (etag, count) =
        services
            .key_backup
            .delete_keys(request.user()?, &request.body.version, None, None)?;
    Ok(counts(etag, count))
}

pub async fn delete_room(
    services: Arc<Services>,
    request: Ruma<delete_backup_keys_for_room::v3::Request>,
) -> Result<RawJson> {
    let body = &request.body;
    let (etag, count) = services.key_backup.delete_keys(
        request.user()?,
        &body.version,
        Some(&body.room_id),
        None,
    )?;
    Ok(counts(etag, count))
}

pub async fn delete_session(
    services: Arc<Services>,
    request: Ruma<delete_backup_keys_for_session::v3::Request>,
) -> Result<RawJson> {
    let body = &request.body;
    let (etag, count) = services.key_backup.delete_keys(
        request.user()?,
        &body.version,
        Some(&body.room_id),
        Some(&body.session_id),
    )?;
    Ok(counts(etag, count))
}
