//! Which rooms changed for a user since a stream position.
//!
//! A joined member sees every event of the room, so for joined rooms the room's newest
//! position is the answer: kept in memory per room, it costs nothing per member when a message
//! is sent. Membership changes (a user invited, leaving, kicked) are in a per-user index
//! (`useridcount_roomid`), written for the event's target only (see [`super::fanout`]). Long-polls
//! watch that index's per-user prefix, which the fan-out also wakes for the joined members.

use std::collections::HashMap;
use std::sync::Mutex;

use ruma::{OwnedRoomId, RoomId, UserId};

use super::Service;
use crate::error::Result;
use crate::storage::schema::decode_u64;
use crate::storage::{Key, decode_id};

/// Each room's newest stream position, filled from the timeline on first use. Values only grow.
#[derive(Default)]
pub(super) struct RoomLatest {
    rooms: Mutex<HashMap<OwnedRoomId, u64>>,
}

impl RoomLatest {
    fn raise(&self, room_id: &RoomId, count: u64) -> u64 {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let entry = rooms.entry(room_id.to_owned()).or_insert(count);
        *entry = (*entry).max(count);
        *entry
    }
}

impl Service {
    /// The room's newest stream position (0 for an unknown room).
    pub fn room_latest(&self, room_id: &RoomId) -> Result<u64> {
        let known = self
            .room_latest
            .rooms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(room_id)
            .copied();
        match known {
            Some(count) => Ok(count),
            None if self.shortroomid(room_id)?.is_none() => Ok(0),
            None => {
                let count = self.latest_count(room_id)?.stream().unwrap_or(0);
                Ok(self.room_latest.raise(room_id, count))
            }
        }
    }

    /// Records a room's new newest position (after its event is stored).
    pub(super) fn raise_room_latest(&self, room_id: &RoomId, count: u64) {
        self.room_latest.raise(room_id, count);
    }

    /// The rooms of `joined` (the user's joined rooms) with an event after `since`.
    pub fn joined_rooms_changed_since(
        &self,
        joined: &[OwnedRoomId],
        since: u64,
    ) -> Result<Vec<OwnedRoomId>> {
        let mut changed = Vec::new();
        for room_id in joined {
            if self.room_latest(room_id)? > since {
                changed.push(room_id.clone());
            }
        }
        Ok(changed)
    }

    /// The position of the room's latest event of a kind that moves a room up a room list
    /// (a message, not e.g. a reaction or a state change), for sliding sync's `bump_stamp`.
    pub fn bump_stamp(&self, room_id: &RoomId) -> Result<Option<u64>> {
        self.roomid_bumpcount
            .get(room_id.as_bytes())?
            .map(|bytes| decode_u64(&bytes))
            .transpose()
    }

    /// Position of the room's latest change for the user: its newest event while they are
    /// joined, else their latest membership change.
    pub fn room_changed_at(&self, user_id: &UserId, room_id: &RoomId) -> Result<Option<u64>> {
        let own = self
            .useridroomid_count
            .get(&(user_id.as_str(), room_id.as_str()).encode())?
            .map(|bytes| decode_u64(&bytes))
            .transpose()?;
        if self.is_joined(user_id, room_id)? {
            return Ok(Some(self.room_latest(room_id)?.max(own.unwrap_or(0))));
        }
        Ok(own)
    }

    /// Rooms where the user's membership changed after `since`, with the position of the
    /// latest change. (Databases written before joined rooms were tracked per room also list
    /// rooms that only had events.)
    pub fn membership_changes_since(
        &self,
        user_id: &UserId,
        since: u64,
    ) -> Result<Vec<(u64, OwnedRoomId)>> {
        let prefix = (user_id.as_str(),).prefix();
        let start = (user_id.as_str(), since.saturating_add(1)).encode();
        let mut changed = Vec::new();
        for entry in self
            .useridcount_roomid
            .iter_from(&start, rocksdb::Direction::Forward)
        {
            let (key, value) = entry?;
            if !key.starts_with(&prefix) {
                break;
            }
            let (_, count) = <(&str, u64)>::decode(&key)?;
            changed.push((count, decode_id::<OwnedRoomId>(&value)?));
        }
        Ok(changed)
    }

    /// Resolves when any room changes for the user (a new entry under their prefix, or a
    /// wake-up of the prefix for an event in a joined room).
    pub fn watch_user_rooms(&self, user_id: &UserId) -> impl Future<Output = ()> + Send + use<> {
        self.useridcount_roomid
            .watch_prefix(&(user_id.as_str(),).prefix())
    }
}
