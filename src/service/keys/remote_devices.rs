//! Other servers' users' devices and cross-signing keys, kept for every remote user who shares
//! a room with one of ours (the spec's device-list tracking), so a client's `/keys/query` for
//! them is answered here instead of asking their server each time.
//!
//! Their server tells us of each change (`m.device_list_update`), each update naming in
//! `prev_id` the updates it follows. An update that follows what we hold is applied; one that
//! does not means we missed one, and the whole list is fetched again (`user/devices`). The
//! list is dropped once no user of ours shares a room with them, since their server stops
//! telling us of changes then.

use std::collections::HashMap;
use std::sync::Mutex;

use ruma::{OwnedUserId, UserId};
use serde_json::{Map, Value};

use super::Service;
use crate::error::Result;
use crate::service::Services;
use crate::service::federation::incoming::{signed, utf8_percent_encode};
use crate::storage::{Batch, Key};

/// A position in one user's device-list stream: each update of the user's devices has a
/// larger one than the last.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct DeviceListStreamId(pub u64);

/// Most devices kept for one remote user: a server cannot make us store without bound.
const MAX_REMOTE_DEVICES: usize = 1000;
/// Largest `user/devices` answer read.
const MAX_DEVICES_ANSWER: usize = 16 << 20;
/// Fetches of one user's list tried while updates keep arriving during the fetch.
const RESYNC_ATTEMPTS: usize = 3;

/// A remote user's devices and keys as their server last told us.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct RemoteDeviceList {
    /// The last update this list includes.
    pub stream_id: DeviceListStreamId,
    /// Device ID → the device's keys, its display name under `unsigned` (as a query shows).
    pub devices: Map<String, Value>,
    pub master_key: Option<Value>,
    pub self_signing_key: Option<Value>,
}

/// What became of a received device-list update.
#[derive(Debug, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// It followed what we hold and is now part of it.
    Applied,
    /// We hold a later state already.
    AlreadyKnown,
    /// We hold nothing for the user (not tracked, or fetched on the next query).
    NotHeld,
    /// A fetch of the list is under way; it is fetched again once done.
    FetchUnderway,
    /// It does not follow what we hold: the list is dropped and must be fetched again.
    Gap,
}

/// Users whose list is being fetched, and whether an update arrived meanwhile (making the
/// fetched list possibly older than that update).
#[derive(Default)]
pub(super) struct Fetches(Mutex<HashMap<OwnedUserId, bool>>);

impl Fetches {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<OwnedUserId, bool>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Service {
    /// The remote user's devices as we hold them.
    pub fn remote_device_list(&self, user_id: &UserId) -> Result<Option<RemoteDeviceList>> {
        self.userid_remotedevicelist
            .get_json(&(user_id.as_str(),).encode())
    }

    fn store_remote_device_list(&self, user_id: &UserId, list: &RemoteDeviceList) -> Result<()> {
        self.userid_remotedevicelist
            .insert(&(user_id.as_str(),).encode(), &serde_json::to_vec(list)?)
    }

    /// Stops tracking a remote user: nothing tells us of their changes any more.
    pub fn forget_remote_device_list(&self, user_id: &UserId) -> Result<()> {
        self.userid_remotedevicelist
            .remove(&(user_id.as_str(),).encode())
    }

    /// Applies an `m.device_list_update` (already checked to come from the user's server).
    pub fn apply_remote_device_update(&self, update: &DeviceListUpdate) -> Result<UpdateOutcome> {
        let mut fetches = self.remote_fetches.lock();
        if let Some(outdated) = fetches.get_mut(&update.user_id) {
            *outdated = true;
            return Ok(UpdateOutcome::FetchUnderway);
        }
        let Some(mut list) = self.remote_device_list(&update.user_id)? else {
            return Ok(UpdateOutcome::NotHeld);
        };
        if update.stream_id <= list.stream_id {
            return Ok(UpdateOutcome::AlreadyKnown);
        }
        // Each update carries the device's whole state, so it applies on top of any state
        // at or after the ones it follows; it must not skip one we have not seen.
        if update.prev_id.is_empty() || update.prev_id.iter().any(|prev| *prev > list.stream_id) {
            self.forget_remote_device_list(&update.user_id)?;
            return Ok(UpdateOutcome::Gap);
        }
        match (&update.keys, update.deleted) {
            (_, true) => {
                list.devices.remove(update.device_id.as_str());
            }
            (Some(keys), false) => {
                if list.devices.len() < MAX_REMOTE_DEVICES
                    || list.devices.contains_key(update.device_id.as_str())
                {
                    let keys = super::with_display_name(
                        keys.clone(),
                        update.device_display_name.as_deref(),
                    );
                    list.devices.insert(update.device_id.to_string(), keys);
                }
            }
            // A device without keys (yet): nothing a query shows.
            (None, false) => {}
        }
        list.stream_id = update.stream_id;
        self.store_remote_device_list(&update.user_id, &list)?;
        drop(fetches);
        Ok(UpdateOutcome::Applied)
    }

    /// Applies an `m.signing_key_update` to the list we hold, if any: whether it changed it.
    pub fn apply_remote_signing_update(&self, user_id: &UserId, content: &Value) -> Result<bool> {
        let _fetches = self.remote_fetches.lock();
        let Some(mut list) = self.remote_device_list(user_id)? else {
            return Ok(false);
        };
        let mut changed = false;
        if let Some(key) = cross_signing_key_of(user_id, content, "master_key") {
            list.master_key = Some(key);
            changed = true;
        }
        if let Some(key) = cross_signing_key_of(user_id, content, "self_signing_key") {
            list.self_signing_key = Some(key);
            changed = true;
        }
        if changed {
            self.store_remote_device_list(user_id, &list)?;
        }
        Ok(changed)
    }

    /// Marks a fetch of the user's list as started: false when one already is.
    fn start_fetch(&self, user_id: &UserId) -> bool {
        let mut fetches = self.remote_fetches.lock();
        if fetches.contains_key(user_id) {
            return false;
        }
        fetches.insert(user_id.to_owned(), false);
        true
    }

    /// Ends a fetch started by [`Self::start_fetch`]: keeps the list unless an update arrived
    /// meanwhile (it may be older than that update). Whether it was kept.
    fn finish_fetch(&self, user_id: &UserId, list: Option<&RemoteDeviceList>) -> Result<bool> {
        let mut fetches = self.remote_fetches.lock();
        let outdated = fetches.remove(user_id).unwrap_or(true);
        match list {
            Some(list) if !outdated => {
                self.store_remote_device_list(user_id, list)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The last update of one of our users' devices sent to `server`, if any: the `prev_id`
    /// of the next one.
    pub(super) fn device_update_sent(
        &self,
        user_id: &UserId,
        server: &str,
    ) -> Result<Option<DeviceListStreamId>> {
        Ok(self
            .userserver_devicestreamid
            .get(&(user_id.as_str(), server).encode())?
            .and_then(|bytes| {
                Some(DeviceListStreamId(u64::from_be_bytes(
                    bytes.try_into().ok()?,
                )))
            }))
    }

    /// Records in `batch` that `stream_id` is the user's latest device update, sent to
    /// `servers`.
    pub(super) fn record_device_update(
        &self,
        batch: &mut Batch,
        user_id: &UserId,
        stream_id: DeviceListStreamId,
        servers: &[ruma::OwnedServerName],
    ) -> Result<()> {
        let value = stream_id.0.to_be_bytes();
        batch.put(
            &self.userserver_devicestreamid,
            &(user_id.as_str(), "").encode(),
            &value,
        )?;
        for server in servers {
            batch.put(
                &self.userserver_devicestreamid,
                &(user_id.as_str(), server.as_str()).encode(),
                &value,
            )?;
        }
        Ok(())
    }

    /// The latest update of one of our users' devices (what `user/devices` answers, so the
    /// asking server knows which later updates follow it).
    pub fn latest_device_update(&self, user_id: &UserId) -> Result<DeviceListStreamId> {
        Ok(self.device_update_sent(user_id, "")?.unwrap_or_default())
    }
}

/// A received `m.device_list_update`, checked.
#[derive(Debug)]
pub struct DeviceListUpdate {
    pub user_id: OwnedUserId,
    pub device_id: ruma::OwnedDeviceId,
    pub stream_id: DeviceListStreamId,
    pub prev_id: Vec<DeviceListStreamId>,
    pub deleted: bool,
    pub keys: Option<Value>,
    pub device_display_name: Option<String>,
}

impl DeviceListUpdate {
    /// Reads an update's content; `None` when it lacks what an update must have.
    pub fn parse(content: &Value) -> Option<Self> {
        let user_id = UserId::parse(content["user_id"].as_str()?).ok()?;
        let device_id: ruma::OwnedDeviceId = content["device_id"].as_str()?.into();
        let keys = content
            .get("keys")
            .filter(|keys| keys_belong_to(keys, &user_id, Some(device_id.as_str())))
            .cloned();
        Some(Self {
            stream_id: DeviceListStreamId(content["stream_id"].as_u64()?),
            prev_id: content["prev_id"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
                .map(DeviceListStreamId)
                .collect(),
            deleted: content["deleted"] == true,
            device_display_name: content["device_display_name"].as_str().map(str::to_owned),
            user_id,
            device_id,
            keys,
        })
    }
}

/// Whether keys published for a device (or a cross-signing key, with `device_id` `None`) say
/// they are that user's: another server cannot slip in keys for someone else.
fn keys_belong_to(keys: &Value, user_id: &UserId, device_id: Option<&str>) -> bool {
    keys["user_id"].as_str() == Some(user_id.as_str())
        && device_id.is_none_or(|device| keys["device_id"].as_str() == Some(device))
}

fn cross_signing_key_of(user_id: &UserId, content: &Value, field: &str) -> Option<Value> {
    content
        .get(field)
        .filter(|key| keys_belong_to(key, user_id, None))
        .cloned()
}

/// Whether one of our users shares a joined room with the remote user (so their server tells
/// us of their changes, and we keep their list).
pub fn is_tracked(services: &Services, user_id: &UserId) -> Result<bool> {
    for room_id in services.rooms.rooms_with_membership(user_id, "join")? {
        if services.rooms.has_local_member(&room_id)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Fetches the remote user's whole list from their server (`user/devices`) and keeps it if
/// we track them; fetched again while updates arrive during the fetch. The list as fetched
/// (kept or not).
pub async fn fetch_device_list(services: &Services, user_id: &UserId) -> Result<RemoteDeviceList> {
    let path = format!(
        "/_matrix/federation/v1/user/devices/{}",
        utf8_percent_encode(user_id.as_str())
    );
    let mut attempts = 0;
    loop {
        attempts += 1;
        let ours = services.keys.start_fetch(user_id);
        let answer = signed(
            services,
            http::Method::GET,
            user_id.server_name(),
            &path,
            None,
            MAX_DEVICES_ANSWER,
        )
        .await;
        let list = answer.map(|answer| read_devices_answer(user_id, &answer));
        if !ours {
            return list;
        }
        let tracked = list.is_ok() && is_tracked(services, user_id)?;
        let kept = services
            .keys
            .finish_fetch(user_id, list.as_ref().ok().filter(|_| tracked))?;
        if kept || !tracked || attempts >= RESYNC_ATTEMPTS {
            return list;
        }
    }
}

/// Refetches a remote user's list after a gap, then tells our users who share a room with
/// them to query their keys again.
pub async fn refetch_after_gap(services: &Services, user_id: &UserId) {
    if let Err(error) = fetch_device_list(services, user_id).await {
        tracing::info!(%user_id, %error, "fetching a remote user's devices failed");
    }
    if let Err(error) = super::announce_change(services, user_id, super::Changed::OnTheirServer) {
        tracing::warn!(%user_id, %error, "announcing a remote device change failed");
    }
}

/// A `user/devices` answer as we keep it: only the user's own keys, at most
/// [`MAX_REMOTE_DEVICES`] devices.
fn read_devices_answer(user_id: &UserId, answer: &Value) -> RemoteDeviceList {
    let mut list = RemoteDeviceList {
        stream_id: DeviceListStreamId(answer["stream_id"].as_u64().unwrap_or_default()),
        master_key: cross_signing_key_of(user_id, answer, "master_key"),
        self_signing_key: cross_signing_key_of(user_id, answer, "self_signing_key"),
        ..RemoteDeviceList::default()
    };
    for device in answer["devices"].as_array().into_iter().flatten() {
        if list.devices.len() >= MAX_REMOTE_DEVICES {
            tracing::warn!(%user_id, "a remote user has too many devices; the rest are ignored");
            break;
        }
        let Some(device_id) = device["device_id"].as_str() else {
            continue;
        };
        let Some(keys) = device
            .get("keys")
            .filter(|keys| keys_belong_to(keys, user_id, Some(device_id)))
        else {
            continue;
        };
        let keys = super::with_display_name(keys.clone(), device["device_display_name"].as_str());
        list.devices.insert(device_id.to_owned(), keys);
    }
    list
}
