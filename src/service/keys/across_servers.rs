//! Keys across servers. One function answers "what are this user's keys" for a local user,
//! whoever asks (a client here, or another server over federation); a client's query or
//! claim for users of other servers goes to each of those servers in parallel, bounded by a
//! timeout, and a server that does not answer is listed in `failures` as the spec says.

use std::collections::BTreeMap;
use std::time::Duration;

use ruma::{DeviceId, OwnedDeviceId, OwnedServerName, OwnedUserId, UserId};
use serde_json::{Map, Value, json};

use futures_util::StreamExt;

use super::remote_devices::{self, RemoteDeviceList};
use super::{KeyKind, with_display_name};
use crate::error::Result;
use crate::service::Services;
use crate::service::federation::incoming::signed;

/// How long a client's query or claim waits for other servers unless it says otherwise (the
/// spec's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read from another server for keys.
const MAX_KEYS_ANSWER: usize = 16 << 20;
/// Remote users' device lists fetched at once for one query.
const PARALLEL_FETCHES: usize = 8;

/// A local user's published keys as `viewer` may see them.
#[derive(Default)]
pub struct UserKeys {
    /// Device ID → the device's keys, with its display name.
    pub devices: Map<String, Value>,
    pub master: Option<Value>,
    pub self_signing: Option<Value>,
    /// Only for the user themselves.
    pub user_signing: Option<Value>,
}

/// `user_id`'s keys (a local user): the devices in `wanted` (all when empty). `viewer` is
/// the asking user, or `None` for another server (which sees what any user may).
pub fn local_user_keys(
    services: &Services,
    user_id: &UserId,
    wanted: &[OwnedDeviceId],
    viewer: Option<&UserId>,
) -> Result<UserKeys> {
    let keys = &services.keys;
    let mut found = UserKeys::default();
    for (device_id, stored) in services.users.devices(user_id)? {
        if !wanted.is_empty() && !wanted.contains(&device_id) {
            continue;
        }
        if let Some(published) = keys.device_keys(user_id, &device_id)? {
            found.devices.insert(
                device_id.to_string(),
                with_display_name(published, stored.display_name.as_deref()),
            );
        }
    }
    // Another server's users see the master key as anyone but its owner does.
    found.master = keys.master_key_for(user_id, viewer.unwrap_or(user_id))?;
    found.self_signing = keys.cross_signing_key(user_id, KeyKind::SelfSigning)?;
    if viewer == Some(user_id) {
        found.user_signing = keys.cross_signing_key(user_id, KeyKind::UserSigning)?;
    }
    Ok(found)
}

/// What other servers answered to a client's query.
#[derive(Default)]
pub struct RemoteKeys {
    pub device_keys: Map<String, Value>,
    pub master_keys: Map<String, Value>,
    pub self_signing_keys: Map<String, Value>,
    pub failures: Map<String, Value>,
}

/// A server's failure as the spec's `failures` lists it.
fn failure(error: &crate::error::Error) -> Value {
    let status = match error {
        crate::error::Error::Matrix { status, .. } => status.as_u16(),
        // Unreachable, or an answer that could not be read.
        _ => 503,
    };
    json!({ "status": status, "message": error.message() })
}

fn timed_out() -> Value {
    json!({ "status": 504, "message": "The server did not answer in time" })
}

/// Remote users by their server.
fn by_server<T>(
    users: BTreeMap<OwnedUserId, T>,
) -> BTreeMap<OwnedServerName, BTreeMap<OwnedUserId, T>> {
    let mut grouped: BTreeMap<OwnedServerName, BTreeMap<OwnedUserId, T>> = BTreeMap::new();
    for (user, value) in users {
        grouped
            .entry(user.server_name().to_owned())
            .or_default()
            .insert(user, value);
    }
    grouped
}

/// Keeps the entries of an answer's `field` that are about `server`'s own users: no server
/// answers for another's.
fn own_users(answer: &Value, field: &str, server: &OwnedServerName) -> Map<String, Value> {
    answer[field]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(user, _)| {
            UserId::parse(user.as_str()).is_ok_and(|user| user.server_name() == server)
        })
        .map(|(user, value)| (user.clone(), value.clone()))
        .collect()
}

/// POSTs to each server its users' part of a request (`field` → that part) at `path`, in
/// parallel within `timeout`: the servers' answers, and the failures as `failures` lists them.
async fn ask_each_server<T: serde::Serialize>(
    services: &Services,
    users: BTreeMap<OwnedUserId, T>,
    path: &str,
    field: &str,
    timeout: Duration,
) -> (Vec<(OwnedServerName, Value)>, Map<String, Value>) {
    let requests = by_server(users)
        .into_iter()
        .map(|(server, users)| async move {
            let body = json!({ field: users });
            let request = signed(
                services,
                http::Method::POST,
                &server,
                path,
                Some(&body),
                MAX_KEYS_ANSWER,
            );
            let answer = tokio::time::timeout(timeout, request).await;
            (server, answer)
        });
    let mut answers = Vec::new();
    let mut failures = Map::new();
    for (server, answer) in futures_util::future::join_all(requests).await {
        match answer {
            Ok(Ok(answer)) => answers.push((server, answer)),
            Ok(Err(error)) => {
                tracing::info!(%server, %error, path, "a key request to another server failed");
                failures.insert(server.to_string(), failure(&error));
            }
            Err(_) => {
                failures.insert(server.to_string(), timed_out());
            }
        }
    }
    (answers, failures)
}

/// Remote users' keys for `viewer`: from the lists we track (fetched first when we track a
/// user but hold nothing yet), the others asked of their servers (`user/keys/query`); all in
/// parallel within `timeout`.
pub async fn query_remote(
    services: &Services,
    viewer: &UserId,
    users: BTreeMap<OwnedUserId, Vec<OwnedDeviceId>>,
    timeout: Duration,
) -> Result<RemoteKeys> {
    let mut found = RemoteKeys::default();
    let mut to_fetch = Vec::new();
    let mut to_ask = BTreeMap::new();
    for (user, wanted) in users {
        if let Some(list) = services.keys.remote_device_list(&user)? {
            add_held(services, &mut found, viewer, &user, &wanted, list)?;
        } else if remote_devices::is_tracked(services, &user)? {
            to_fetch.push((user, wanted));
        } else {
            to_ask.insert(user, wanted);
        }
    }
    let fetches =
        futures_util::stream::iter(to_fetch.into_iter().map(|(user, wanted)| async move {
            let fetched =
                tokio::time::timeout(timeout, remote_devices::fetch_device_list(services, &user))
                    .await;
            (user, wanted, fetched)
        }))
        .buffer_unordered(PARALLEL_FETCHES)
        .collect::<Vec<_>>();
    let asked = ask_each_server(
        services,
        to_ask,
        "/_matrix/federation/v1/user/keys/query",
        "device_keys",
        timeout,
    );
    let (fetched, (answers, failures)) = tokio::join!(fetches, asked);
    found.failures = failures;
    for (user, wanted, list) in fetched {
        match list {
            Ok(Ok(list)) => add_held(services, &mut found, viewer, &user, &wanted, list)?,
            Ok(Err(error)) => {
                tracing::info!(%user, %error, "fetching a remote user's devices failed");
                found
                    .failures
                    .insert(user.server_name().to_string(), failure(&error));
            }
            Err(_) => {
                found
                    .failures
                    .insert(user.server_name().to_string(), timed_out());
            }
        }
    }
    for (server, answer) in answers {
        found
            .device_keys
            .extend(own_users(&answer, "device_keys", &server));
        found
            .master_keys
            .extend(own_users(&answer, "master_keys", &server));
        found
            .self_signing_keys
            .extend(own_users(&answer, "self_signing_keys", &server));
    }
    Ok(found)
}

/// Adds a tracked remote user's keys (the `wanted` devices, all when empty) to an answer; the
/// master key carries the viewer's own signatures on it.
fn add_held(
    services: &Services,
    found: &mut RemoteKeys,
    viewer: &UserId,
    user: &UserId,
    wanted: &[OwnedDeviceId],
    list: RemoteDeviceList,
) -> Result<()> {
    let devices: Map<String, Value> = list
        .devices
        .into_iter()
        .filter(|(device, _)| wanted.is_empty() || wanted.iter().any(|w| w.as_str() == device))
        .collect();
    found
        .device_keys
        .insert(user.to_string(), Value::Object(devices));
    if let Some(mut master) = list.master_key {
        services
            .keys
            .add_viewer_signatures(&mut master, user, viewer)?;
        found.master_keys.insert(user.to_string(), master);
    }
    if let Some(key) = list.self_signing_key {
        found.self_signing_keys.insert(user.to_string(), key);
    }
    Ok(())
}

/// Claims one-time keys of remote users' devices from their servers (`user/keys/claim`),
/// in parallel: the claimed keys by user, and the servers that failed.
pub async fn claim_remote(
    services: &Services,
    claims: BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, String>>,
    timeout: Duration,
) -> (Map<String, Value>, Map<String, Value>) {
    let (answers, failures) = ask_each_server(
        services,
        claims,
        "/_matrix/federation/v1/user/keys/claim",
        "one_time_keys",
        timeout,
    )
    .await;
    let mut claimed = Map::new();
    for (server, answer) in answers {
        claimed.extend(own_users(&answer, "one_time_keys", &server));
    }
    (claimed, failures)
}

/// Claims one key per asked device of local users: device ID → `{key_id: key}`.
pub fn claim_local(
    services: &Services,
    user_id: &UserId,
    devices: &BTreeMap<OwnedDeviceId, String>,
) -> Result<Map<String, Value>> {
    let mut by_device = Map::new();
    for (device_id, algorithm) in devices {
        let device_id: &DeviceId = device_id;
        if let Some((key_id, key)) = services.keys.claim(user_id, device_id, algorithm)? {
            by_device.insert(device_id.to_string(), json!({ key_id: key }));
        }
    }
    Ok(by_device)
}
