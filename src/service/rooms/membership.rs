//! Membership indexes, kept in step with each room's current `m.room.member` state so that
//! "which rooms is this user in" and "who is in this room" are prefix scans, not state reads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::Value;

use super::Service;
use super::fanout::MembershipChange;
use crate::error::{Error, Result};
use crate::storage::{Batch, Key, decode_id};

impl Service {
    /// Records a membership change (in the caller's batch), and returns what the target's
    /// room list needs (for a local target): see [`super::fanout`]. A remote member joining or
    /// leaving adds to `servers` the change in its server's count of joined members, which the
    /// caller applies once the batch is written ([`Self::apply_server_deltas`]).
    pub(super) fn index_membership(
        &self,
        room_id: &RoomId,
        user: &str,
        content: &Value,
        batch: &mut Batch,
        servers: &mut ServerDeltas,
    ) -> Result<Option<MembershipChange>> {
        let membership = content
            .get("membership")
            .and_then(Value::as_str)
            .unwrap_or("leave");
        let previous = self
            .roomuserid_membership
            .get(&(room_id.as_str(), user).encode())?;
        let was_joined = previous.as_deref() == Some(b"join".as_slice());
        let change = match UserId::parse(user) {
            Ok(target) if target.server_name() == self.server_name => {
                let unchanged = previous.as_deref() == Some(membership.as_bytes());
                Some(MembershipChange {
                    target,
                    membership: membership.to_owned(),
                    unchanged,
                })
            }
            Ok(target) => {
                let now_joined = membership == "join";
                if now_joined != was_joined {
                    let delta = if now_joined { 1 } else { -1 };
                    servers.push((target.server_name().to_owned(), delta));
                }
                None
            }
            _ => None,
        };
        batch.put(
            &self.userroomid_membership,
            &(user, room_id.as_str()).encode(),
            membership.as_bytes(),
        )?;
        batch.put(
            &self.roomuserid_membership,
            &(room_id.as_str(), user).encode(),
            membership.as_bytes(),
        )?;
        Ok(change)
    }

    /// The servers with members joined to `room_id`, this one first when it has any (reads
    /// the member list: for directory answers, not hot paths).
    pub fn resident_servers(&self, room_id: &RoomId) -> Result<Vec<ruma::OwnedServerName>> {
        let mut servers: Vec<ruma::OwnedServerName> = Vec::new();
        for (member, membership) in self.members(room_id)? {
            if membership == "join" && !servers.iter().any(|s| s == member.server_name()) {
                servers.push(member.server_name().to_owned());
            }
        }
        if let Some(ours) = servers.iter().position(|s| *s == self.server_name) {
            servers.swap(0, ours);
        }
        Ok(servers)
    }

    /// The user's current membership in a room (`join`, `invite`, `leave`, `ban`, `knock`).
    pub fn membership(&self, user_id: &UserId, room_id: &RoomId) -> Result<Option<String>> {
        let value = self
            .userroomid_membership
            .get(&(user_id.as_str(), room_id.as_str()).encode())?;
        value
            .map(|v| {
                String::from_utf8(v).map_err(|_| Error::Database("membership is not UTF-8".into()))
            })
            .transpose()
    }

    pub fn is_joined(&self, user_id: &UserId, room_id: &RoomId) -> Result<bool> {
        Ok(self.membership(user_id, room_id)?.as_deref() == Some("join"))
    }

    /// The user's rooms with their membership, in one scan.
    pub fn memberships_of(&self, user_id: &UserId) -> Result<Vec<(OwnedRoomId, String)>> {
        let mut rooms = Vec::new();
        for entry in self
            .userroomid_membership
            .scan_prefix((user_id.as_str(),).prefix())
        {
            let (key, value) = entry?;
            let (_, room_id) = <(&str, OwnedRoomId)>::decode(&key)?;
            rooms.push((room_id, String::from_utf8_lossy(&value).into_owned()));
        }
        Ok(rooms)
    }

    /// Rooms in which the user has the given membership.
    pub fn rooms_with_membership(
        &self,
        user_id: &UserId,
        membership: &str,
    ) -> Result<Vec<OwnedRoomId>> {
        Ok(self
            .memberships_of(user_id)?
            .into_iter()
            .filter(|(_, m)| m == membership)
            .map(|(room, _)| room)
            .collect())
    }

    /// [`Self::members`] from a cache: for the work every event does with the room's members
    /// (their indexes, push rules) and for room summaries.
    pub fn members_shared(&self, room_id: &RoomId) -> Result<Members> {
        let epoch = {
            let cache = self.member_cache.lock();
            if let Some(members) = cache.rooms.get(room_id) {
                return Ok(Arc::clone(members));
            }
            cache.epoch
        };
        let members: Members = self.members(room_id)?.into();
        let mut cache = self.member_cache.lock();
        // A membership change since the read above may have made it stale.
        if cache.epoch == epoch {
            if cache.entries + members.len() > MEMBER_CACHE_ENTRIES {
                cache.rooms.clear();
                cache.servers.clear();
                cache.entries = 0;
            }
            cache.entries += members.len();
            cache.rooms.insert(room_id.to_owned(), Arc::clone(&members));
        }
        Ok(members)
    }

    /// Drops the room's cached members, once a membership change is stored.
    pub(super) fn forget_members(&self, room_id: &RoomId) {
        let mut cache = self.member_cache.lock();
        cache.epoch += 1;
        if let Some(members) = cache.rooms.remove(room_id) {
            cache.entries -= members.len();
        }
    }

    /// Applies the changes in servers' joined-member counts of an event just written (under
    /// the room's lock, so no count is being built for the room meanwhile).
    pub(super) fn apply_server_deltas(&self, room_id: &RoomId, deltas: &ServerDeltas) {
        if deltas.is_empty() {
            return;
        }
        let mut cache = self.member_cache.lock();
        let Some(counts) = cache.servers.get_mut(room_id) else {
            return;
        };
        let counts = Arc::make_mut(counts);
        for (server, delta) in deltas {
            let count = counts.joined.entry(server.clone()).or_insert(0);
            *count = count.saturating_add_signed(i64::from(*delta));
            if *count == 0 {
                counts.joined.remove(server);
            }
        }
        counts.list = counts.joined.keys().cloned().collect();
    }

    /// The other servers with members joined to `room_id`: where its events are sent. Kept
    /// per room as counts of joined members per server, changed by each membership event
    /// ([`Self::apply_server_deltas`]), so neither a send nor a join walks the member list.
    pub fn remote_servers(&self, room_id: &RoomId) -> Result<Arc<[ruma::OwnedServerName]>> {
        if let Some(counts) = self.member_cache.lock().servers.get(room_id) {
            return Ok(Arc::clone(&counts.list));
        }
        Ok(Arc::clone(&self.count_servers(room_id)?.list))
    }

    /// [`Self::remote_servers`] for a caller holding the room's lock: a count built here is
    /// kept, since no membership of the room can change meanwhile.
    pub(super) fn remote_servers_locked(
        &self,
        room_id: &RoomId,
    ) -> Result<Arc<[ruma::OwnedServerName]>> {
        if let Some(counts) = self.member_cache.lock().servers.get(room_id) {
            return Ok(Arc::clone(&counts.list));
        }
        let counts = self.count_servers(room_id)?;
        let list = Arc::clone(&counts.list);
        let mut cache = self.member_cache.lock();
        if cache.servers.len() >= MEMBER_CACHE_ENTRIES {
            cache.servers.clear();
        }
        cache.servers.insert(room_id.to_owned(), Arc::new(counts));
        Ok(list)
    }

    fn count_servers(&self, room_id: &RoomId) -> Result<ServerCounts> {
        let mut joined: std::collections::BTreeMap<ruma::OwnedServerName, u64> =
            std::collections::BTreeMap::new();
        for (member, membership) in self.members_shared(room_id)?.iter() {
            let server = member.server_name();
            if membership == "join" && server != self.server_name {
                *joined.entry(server.to_owned()).or_insert(0) += 1;
            }
        }
        let list = joined.keys().cloned().collect();
        Ok(ServerCounts { joined, list })
    }

    /// Members of a room with their membership.
    pub fn members(&self, room_id: &RoomId) -> Result<Vec<(OwnedUserId, String)>> {
        let mut members = Vec::new();
        for entry in self
            .roomuserid_membership
            .scan_prefix((room_id.as_str(),).prefix())
        {
            let (key, value) = entry?;
            let (_, user_id) = <(&str, OwnedUserId)>::decode(&key)?;
            let membership = String::from_utf8(value.into_vec())
                .map_err(|_| Error::Database("membership is not UTF-8".into()))?;
            members.push((user_id, membership));
        }
        Ok(members)
    }

    /// Forgets a room the user has left: it no longer appears in their room lists.
    pub fn forget(&self, user_id: &UserId, room_id: &RoomId) -> Result<()> {
        self.userroomid_membership
            .remove(&(user_id.as_str(), room_id.as_str()).encode())
    }

    /// The event ID a device's transaction produced, if it was already sent.
    pub fn txn_event(
        &self,
        user_id: &UserId,
        device_id: &str,
        txn_id: &str,
    ) -> Result<Option<ruma::OwnedEventId>> {
        let value = self
            .userdevicetxnid_eventid
            .get(&(user_id.as_str(), device_id, txn_id).encode())?;
        value.map(|v| decode_id(&v)).transpose()
    }

    /// Records that a device's transaction produced `event_id`. `key` is what [`Self::txn_event`]
    /// finds it by (`/redact` prefixes its transaction IDs, so they do not answer a `/send`
    /// with the same ID); `txn_id` is what the device gets back in `unsigned.transaction_id`,
    /// as it sent it.
    pub fn set_txn_event(
        &self,
        user_id: &UserId,
        device_id: &str,
        key: &str,
        txn_id: &str,
        event_id: &ruma::EventId,
    ) -> Result<()> {
        let mut batch = Batch::default();
        self.put_txn_event(user_id, device_id, key, txn_id, event_id, &mut batch)?;
        self.engine.write(batch)
    }

    /// [`Self::set_txn_event`] in a caller's batch.
    pub(super) fn put_txn_event(
        &self,
        user_id: &UserId,
        device_id: &str,
        key: &str,
        txn_id: &str,
        event_id: &ruma::EventId,
        batch: &mut Batch,
    ) -> Result<()> {
        batch.put(
            &self.userdevicetxnid_eventid,
            &(user_id.as_str(), device_id, key).encode(),
            event_id.as_bytes(),
        )?;
        batch.put(
            &self.eventid_devicetxnid,
            event_id.as_bytes(),
            &(device_id, txn_id).encode(),
        )
    }

    /// The device and transaction ID an event was sent with, if it came through `/send`.
    pub fn event_txn(&self, event_id: &ruma::EventId) -> Result<Option<(String, String)>> {
        self.eventid_devicetxnid
            .get(event_id.as_bytes())?
            .map(|v| <(String, String)>::decode(&v))
            .transpose()
    }
}

/// A room's members with their membership, in user ID order.
pub type Members = Arc<[(OwnedUserId, String)]>;

/// Changes in other servers' counts of joined members, from membership events being stored.
pub(super) type ServerDeltas = Vec<(ruma::OwnedServerName, i32)>;

/// Joined members per other server in one room, and those servers as a list.
#[derive(Clone)]
pub(super) struct ServerCounts {
    joined: std::collections::BTreeMap<ruma::OwnedServerName, u64>,
    list: Arc<[ruma::OwnedServerName]>,
}

/// Members held by the cache at most (over all rooms); past it the cache starts again.
const MEMBER_CACHE_ENTRIES: usize = 200_000;

#[derive(Default)]
pub(super) struct MemberCache {
    inner: Mutex<MemberCacheInner>,
}

#[derive(Default)]
struct MemberCacheInner {
    rooms: HashMap<OwnedRoomId, Members>,
    /// Other servers joined to each room (see `remote_servers`).
    servers: HashMap<OwnedRoomId, Arc<ServerCounts>>,
    entries: usize,
    /// Bumped by every membership change: a read that overlapped one is not cached.
    epoch: u64,
}

impl MemberCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemberCacheInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Member entries held.
    pub fn entries(&self) -> usize {
        self.lock().entries
    }

    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.rooms.clear();
        inner.servers.clear();
        inner.entries = 0;
        // A read that overlapped the clearing is not cached.
        inner.epoch += 1;
    }
}
