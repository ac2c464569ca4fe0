//! Who must hear that a user's devices or keys changed: a per-observer log, written when the
//! change happens (to every user sharing a room with the changed one), so /sync and
//! `/keys/changes` read one short range per user however many rooms they are in.

use std::collections::{BTreeMap, BTreeSet};

use ruma::{DeviceId, OwnedUserId, RoomId, UserId};

use super::Service;
use super::remote_devices::{self, DeviceListStreamId};
use crate::error::Result;
use crate::service::Services;
use crate::storage::schema::decode_u64;
use crate::storage::{Batch, Key};

const CHANGED: u8 = b'c';
const LEFT: u8 = b'l';

/// What `device_lists` reports: users whose keys to re-fetch, and users no longer sharing a
/// room (whose keys the client may forget).
#[derive(Debug, Default)]
pub struct DeviceListChanges {
    pub changed: BTreeSet<OwnedUserId>,
    pub left: BTreeSet<OwnedUserId>,
}

impl DeviceListChanges {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.left.is_empty()
    }
}

impl Service {
    /// Logs, for each of `observers`, that `user_id` changed (or, with `left`, stopped
    /// sharing rooms with them).
    fn log_for<'a>(
        &self,
        observers: impl IntoIterator<Item = &'a OwnedUserId>,
        user_id: &UserId,
        left: bool,
    ) -> Result<()> {
        let writing = self.engine.begin_write();
        let count = self.engine.next_count()?;
        let mut value = vec![if left { LEFT } else { CHANGED }];
        value.extend_from_slice(user_id.as_bytes());
        let mut batch = Batch::default();
        for observer in observers {
            batch.put(
                &self.useridcount_devicelistchange,
                &(observer.as_str(), count).encode(),
                &value,
            )?;
        }
        self.engine.write(batch)?;
        drop(writing);
        Ok(())
    }

    /// Changes `observer` has to hear about in `(since, until]`; the latest entry per user
    /// wins (a user who left and came back is `changed`).
    pub fn device_list_changes(
        &self,
        observer: &UserId,
        since: u64,
        until: u64,
    ) -> Result<DeviceListChanges> {
        let prefix = (observer.as_str(),).prefix();
        let start = (observer.as_str(), since.saturating_add(1)).encode();
        let mut latest: BTreeMap<OwnedUserId, bool> = BTreeMap::new();
        for entry in self
            .useridcount_devicelistchange
            .iter_from(&start, rocksdb::Direction::Forward)
        {
            let (key, value) = entry?;
            if !key.starts_with(&prefix) {
                break;
            }
            let count = decode_u64(&key[prefix.len()..])?;
            if count > until {
                break;
            }
            let Some((kind, user)) = value.split_first() else {
                continue;
            };
            let Ok(user) = std::str::from_utf8(user).map(UserId::parse) else {
                continue;
            };
            if let Ok(user) = user {
                latest.insert(user, *kind == LEFT);
            }
        }
        let mut changes = DeviceListChanges::default();
        for (user, left) in latest {
            if left {
                changes.left.insert(user);
            } else {
                changes.changed.insert(user);
            }
        }
        Ok(changes)
    }

    /// Resolves when something is logged for `observer`.
    pub fn watch_device_lists(&self, observer: &UserId) -> impl Future<Output = ()> + Send + use<> {
        self.useridcount_devicelistchange
            .watch_prefix(&(observer.as_str(),).prefix())
    }
}

/// Local users sharing a joined room with `user_id`, the user included.
fn users_sharing_rooms(services: &Services, user_id: &UserId) -> Result<BTreeSet<OwnedUserId>> {
    let mut users = BTreeSet::from([user_id.to_owned()]);
    for room_id in services.rooms.rooms_with_membership(user_id, "join")? {
        users.extend(
            services
                .rooms
                .members(&room_id)?
                .into_iter()
                .filter(|(_, membership)| membership == "join")
                .map(|(user, _)| user),
        );
    }
    Ok(users)
}

/// What changed about a user's keys, for the servers that must hear it.
#[derive(Debug, Clone, Copy)]
pub enum Changed<'a> {
    /// One device: new, with new keys or signatures, renamed, or deleted.
    Device(&'a DeviceId),
    /// The cross-signing keys.
    CrossSigningKeys,
    /// Signatures on several of them: every device and the cross-signing keys are sent again.
    Everything,
    /// A remote user's keys, as their server told us: nothing to pass on.
    OnTheirServer,
}

/// Tells everyone who shares a room with `user_id` (and the user's own devices) that the
/// user's devices or keys changed; for one of our users, the servers of those rooms too
/// (`m.device_list_update`, `m.signing_key_update`, kept until each server has them).
pub fn announce_change(services: &Services, user_id: &UserId, changed: Changed<'_>) -> Result<()> {
    let observers = users_sharing_rooms(services, user_id)?;
    services.keys.log_for(&observers, user_id, false)?;
    if user_id.server_name() == services.server_name() && services.config.allow_federation {
        tell_other_servers(services, user_id, changed)?;
    }
    Ok(())
}

/// The EDUs of a change to one of our users' keys, queued for every server sharing a room
/// with them. Each device update names, in `prev_id`, the last one sent to that server, so
/// the server sees when it missed one (and refetches the list); the first names none.
fn tell_other_servers(services: &Services, user_id: &UserId, changed: Changed<'_>) -> Result<()> {
    let servers = crate::service::federation::edus::servers_sharing_rooms_with(services, user_id)?;
    let device_update = |device_id: &DeviceId| -> Result<serde_json::Value> {
        let mut content = serde_json::json!({ "user_id": user_id, "device_id": device_id });
        let stored = services
            .users
            .devices(user_id)?
            .into_iter()
            .find(|(id, _)| id == device_id);
        match (&stored, services.keys.device_keys(user_id, device_id)?) {
            (Some((_, device)), Some(keys)) => {
                content["keys"] = keys;
                if let Some(name) = &device.display_name {
                    content["device_display_name"] = serde_json::json!(name);
                }
            }
            (Some(_), None) => {}
            (None, _) => content["deleted"] = serde_json::json!(true),
        }
        Ok(content)
    };
    let signing_update = || -> Result<serde_json::Value> {
        let mut content = serde_json::json!({ "user_id": user_id });
        if let Some(master) = services.keys.master_key_for(user_id, user_id)? {
            content["master_key"] = master;
        }
        if let Some(key) = services
            .keys
            .cross_signing_key(user_id, super::KeyKind::SelfSigning)?
        {
            content["self_signing_key"] = key;
        }
        Ok(serde_json::json!({ "edu_type": "m.signing_key_update", "content": content }))
    };
    let (devices, signing): (Vec<_>, bool) = match changed {
        Changed::Device(device_id) => (vec![device_update(device_id)?], false),
        Changed::CrossSigningKeys => (Vec::new(), true),
        Changed::Everything => {
            let mut all = Vec::new();
            for (device_id, _) in services.users.devices(user_id)? {
                all.push(device_update(&device_id)?);
            }
            (all, true)
        }
        Changed::OnTheirServer => return Ok(()),
    };

    let keys = &services.keys;
    let _in_order = keys.announce_lock.lock().unwrap_or_else(|e| e.into_inner());
    let mut batch = Batch::default();
    let mut edus = Vec::new();
    let mut last_sent: BTreeMap<&str, Option<DeviceListStreamId>> = BTreeMap::new();
    for server in &servers {
        last_sent.insert(
            server.as_str(),
            keys.device_update_sent(user_id, server.as_str())?,
        );
    }
    for mut content in devices {
        let stream_id = DeviceListStreamId(services.engine.next_count()?);
        content["stream_id"] = serde_json::json!(stream_id.0);
        for server in &servers {
            let prev = last_sent.insert(server.as_str(), Some(stream_id)).flatten();
            content["prev_id"] = serde_json::json!(prev.iter().map(|p| p.0).collect::<Vec<_>>());
            let edu = serde_json::json!({ "edu_type": "m.device_list_update", "content": content });
            edus.push((server.clone(), edu));
        }
        keys.record_device_update(&mut batch, user_id, stream_id, &servers)?;
    }
    if signing {
        let edu = signing_update()?;
        edus.extend(servers.iter().map(|server| (server.clone(), edu.clone())));
    }
    services.sending.queue_persistent_edus(batch, edus)
}

/// Tells only the user's own devices that something about the user's keys changed (e.g. they
/// signed another user's key, which nobody else is shown).
pub fn announce_to_own_devices(services: &Services, user_id: &UserId) -> Result<()> {
    services.keys.log_for([&user_id.to_owned()], user_id, false)
}

/// Called when `user_id`'s membership of a room changed: on joining, they and the room's
/// members start tracking each other's devices; on leaving, those who no longer share any
/// room stop.
pub fn on_membership_change(
    services: &Services,
    room_id: &RoomId,
    user_id: &UserId,
    was_joined: bool,
    is_joined: bool,
) -> Result<()> {
    if was_joined == is_joined {
        return Ok(());
    }
    let others: Vec<OwnedUserId> = services
        .rooms
        .members(room_id)?
        .into_iter()
        .filter(|(user, membership)| membership == "join" && user != user_id)
        .map(|(user, _)| user)
        .collect();
    let keys = &services.keys;
    if is_joined {
        keys.log_for(&others, user_id, false)?;
        for other in &others {
            keys.log_for([&user_id.to_owned()], other, false)?;
        }
        return Ok(());
    }
    let still_shared = users_sharing_rooms(services, user_id)?;
    let parted: Vec<OwnedUserId> = others
        .into_iter()
        .filter(|other| !still_shared.contains(other))
        .collect();
    keys.log_for(&parted, user_id, true)?;
    for other in &parted {
        keys.log_for([&user_id.to_owned()], other, true)?;
    }
    // Remote users none of ours shares a room with any more: their server stops telling us
    // of their changes, so what we hold of their devices would go stale.
    let server_name = services.server_name();
    for user in parted.iter().chain([&user_id.to_owned()]) {
        if user.server_name() != server_name && !remote_devices::is_tracked(services, user)? {
            keys.forget_remote_device_list(user)?;
        }
    }
    Ok(())
}
