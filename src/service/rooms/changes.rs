//! Per-user room change index: which rooms changed for a user since a stream position.
//! Written when an event is appended (for the room's joined members and the membership
//! target), read by incremental /sync, and watched by long-polling /sync.

use std::collections::BTreeSet;

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};

use super::Service;
use crate::error::Result;
use crate::storage::schema::decode_u64;
use crate::storage::{Batch, Key, decode_id};

impl Service {
    /// Records that `room_id` changed at `count` for its joined local members and `extra`;
    /// a message-like event (`bump`) also moves the room to the top of the members' lists.
    pub(super) fn mark_changed(
        &self,
        room_id: &RoomId,
        count: u64,
        extra: Option<&UserId>,
        bump: bool,
        batch: &mut Batch,
    ) -> Result<()> {
        let mut users: BTreeSet<OwnedUserId> = self
            .members(room_id)?
            .into_iter()
            .filter(|(user, membership)| {
                membership == "join" && user.server_name() == self.server_name
            })
            .map(|(user, _)| user)
            .collect();
        if bump {
            for user in &users {
                self.bump_listed(user.as_str(), room_id, count, batch)?;
            }
        }
        if let Some(extra) = extra.filter(|u| u.server_name() == self.server_name) {
            users.insert(extra.to_owned());
        }
        for user in users {
            let pair = (user.as_str(), room_id.as_str()).encode();
            if let Some(previous) = self.useridroomid_count.get(&pair)? {
                batch.delete(
                    &self.useridcount_roomid,
                    &(user.as_str(), decode_u64(&previous)?).encode(),
                )?;
            }
            batch.put(
                &self.useridcount_roomid,
                &(user.as_str(), count).encode(),
                room_id.as_bytes(),
            )?;
            batch.put(&self.useridroomid_count, &pair, &count.to_be_bytes())?;
        }
        Ok(())
    }

    /// The position of the room's latest event of a kind that moves a room up a room list
    /// (a message, not e.g. a reaction or a state change), for sliding sync's `bump_stamp`.
    pub fn bump_stamp(&self, room_id: &RoomId) -> Result<Option<u64>> {
        self.roomid_bumpcount
            .get(room_id.as_bytes())?
            .map(|bytes| decode_u64(&bytes))
            .transpose()
    }

    /// Position of the room's latest change for the user (an event they may see, or their
    /// membership).
    pub fn room_changed_at(&self, user_id: &UserId, room_id: &RoomId) -> Result<Option<u64>> {
        self.useridroomid_count
            .get(&(user_id.as_str(), room_id.as_str()).encode())?
            .map(|bytes| decode_u64(&bytes))
            .transpose()
    }

    /// Rooms that changed for the user after `since`, with the count of their latest change.
    pub fn rooms_changed_since(
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

    /// Resolves when any room changes for the user (a new entry under their prefix).
    pub fn watch_user_rooms(&self, user_id: &UserId) -> impl Future<Output = ()> + Send + use<> {
        self.useridcount_roomid
            .watch_prefix(&(user_id.as_str(),).prefix())
    }
}
