//! Each local user's room list in recency order, kept on write so that a sliding sync window
//! ("the 20 most recent rooms") is a seek plus 20 reads, and a list's size a counter read,
//! however many rooms the user is in.
//!
//! A joined room sits at its bump stamp (its latest message-like event) and moves up with every
//! new one; an invite or knock sits at its membership event, because the room's messages are
//! not visible yet. Leaving removes the entry.

use ruma::{OwnedRoomId, RoomId, UserId};

use super::Service;
use crate::error::Result;
use crate::storage::schema::decode_u64;
use crate::storage::{Batch, Key};

/// Memberships that put a room on the user's list.
pub const LISTED: [&str; 3] = ["join", "invite", "knock"];

/// Marker in the `global` tree: the index covers rooms joined before it existed.
const BUILT_KEY: &[u8] = b"room_lists_built";

/// One room of a user's list.
pub struct ListedRoom {
    pub stamp: u64,
    pub room_id: OwnedRoomId,
    pub membership: String,
}

impl Service {
    /// Puts the room at `stamp` with `membership` on the user's list, or takes it off (`None`),
    /// adjusting the per-membership counters. Runs under the room's lock, which is the only
    /// writer of this (user, room) pair.
    pub(super) fn set_listed(
        &self,
        user: &str,
        room_id: &RoomId,
        entry: Option<(u64, &str)>,
        batch: &mut Batch,
    ) -> Result<()> {
        let pair = (user, room_id.as_str()).encode();
        let previous = match self.useridroomid_stamp.get(&pair)? {
            Some(bytes) => {
                let (stamp, _) = decode_stamp(&bytes)?;
                let key = list_key(user, stamp, room_id);
                let membership = self.useridstamproomid_membership.get(&key)?;
                Some((stamp, key, membership.unwrap_or_default()))
            }
            None => None,
        };
        if let (Some((old_stamp, _, old_membership)), Some((stamp, membership))) =
            (&previous, entry)
            && *old_stamp == stamp
            && old_membership.as_slice() == membership.as_bytes()
        {
            return Ok(());
        }
        if let Some((_, key, old_membership)) = &previous {
            batch.delete(&self.useridstamproomid_membership, key)?;
            batch.add(
                &self.useridmembership_roomcount,
                &(user, String::from_utf8_lossy(old_membership).as_ref()).encode(),
                -1,
            )?;
        }
        match entry {
            Some((stamp, membership)) => {
                batch.put(
                    &self.useridstamproomid_membership,
                    &list_key(user, stamp, room_id),
                    membership.as_bytes(),
                )?;
                batch.put(
                    &self.useridroomid_stamp,
                    &pair,
                    &stamp_value(stamp, membership),
                )?;
                batch.add(
                    &self.useridmembership_roomcount,
                    &(user, membership).encode(),
                    1,
                )?;
            }
            None => batch.delete(&self.useridroomid_stamp, &pair)?,
        }
        Ok(())
    }

    /// Moves a joined room up the list of one of its members after a message-like event.
    pub(super) fn bump_listed(
        &self,
        user: &str,
        room_id: &RoomId,
        stamp: u64,
        batch: &mut Batch,
    ) -> Result<()> {
        let pair = (user, room_id.as_str()).encode();
        match self.useridroomid_stamp.get(&pair)? {
            Some(bytes) => {
                let (old, membership) = decode_stamp(&bytes)?;
                let membership = match membership {
                    Some(membership) => membership.to_vec(),
                    // Written before the value carried the membership.
                    None => self
                        .useridstamproomid_membership
                        .get(&list_key(user, old, room_id))?
                        .unwrap_or_default(),
                };
                // A member whose join is still queued (the fan-out read the members after it
                // was stored) keeps its invite or knock entry until its own note moves it:
                // bumping would relabel the entry without moving the counters.
                if old >= stamp || membership != b"join" {
                    return Ok(());
                }
                batch.delete(
                    &self.useridstamproomid_membership,
                    &list_key(user, old, room_id),
                )?;
                batch.put(
                    &self.useridstamproomid_membership,
                    &list_key(user, stamp, room_id),
                    b"join",
                )?;
                batch.put(&self.useridroomid_stamp, &pair, &stamp_value(stamp, "join"))
            }
            None => self.set_listed(user, room_id, Some((stamp, "join")), batch),
        }
    }

    /// Updates the target's list entry for a membership event at `count` (local users only);
    /// `unchanged`: the target had that membership before the event.
    pub(super) fn list_membership(
        &self,
        room_id: &RoomId,
        user: &UserId,
        membership: &str,
        unchanged: bool,
        count: u64,
        batch: &mut Batch,
    ) -> Result<()> {
        if user.server_name() != self.server_name {
            return Ok(());
        }
        let entry = match membership {
            // Joined rooms are ordered by their messages; a profile change keeps its place.
            "join" => Some(match self.bump_stamp(room_id)? {
                Some(stamp) => stamp,
                None => count,
            }),
            "invite" | "knock" => match (unchanged, self.listed_stamp(user, room_id)?) {
                (true, Some(stamp)) => Some(stamp),
                _ => Some(count),
            },
            _ => None,
        };
        self.set_listed(
            user.as_str(),
            room_id,
            entry.map(|stamp| (stamp, membership)),
            batch,
        )
    }

    /// The room's place on the user's list (its `bump_stamp`), if it is listed.
    pub fn listed_stamp(&self, user_id: &UserId, room_id: &RoomId) -> Result<Option<u64>> {
        self.useridroomid_stamp
            .get(&(user_id.as_str(), room_id.as_str()).encode())?
            .map(|bytes| decode_stamp(&bytes).map(|(stamp, _)| stamp))
            .transpose()
    }

    /// How many rooms the user has with the given membership on their list.
    pub fn listed_count(&self, user_id: &UserId, membership: &str) -> Result<u64> {
        let count = self
            .useridmembership_roomcount
            .get_counter(&(user_id.as_str(), membership).encode())?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The user's list, most recent first. Lazy: a caller that stops after 20 rooms reads 20.
    pub fn room_list<'a>(
        &'a self,
        user_id: &UserId,
    ) -> impl Iterator<Item = Result<ListedRoom>> + 'a {
        self.useridstamproomid_membership
            .scan_prefix((user_id.as_str(),).prefix())
            .map(|entry| {
                let (key, value) = entry?;
                let (_, inverted, room_id) = <(&str, u64, OwnedRoomId)>::decode(&key)?;
                Ok(ListedRoom {
                    stamp: u64::MAX - inverted,
                    room_id,
                    membership: String::from_utf8_lossy(&value).into_owned(),
                })
            })
    }

    /// Builds the lists of rooms joined before the index existed (once per database).
    pub(crate) fn build_room_lists(&self) -> Result<()> {
        let global = self.engine.tree("global");
        if global.contains(BUILT_KEY)? {
            return Ok(());
        }
        let mut built = 0usize;
        let mut batch = Batch::default();
        for entry in self.userroomid_membership.scan_prefix(Vec::new()) {
            let (key, value) = entry?;
            let (user, room_id) = <(ruma::OwnedUserId, OwnedRoomId)>::decode(&key)?;
            let membership = String::from_utf8_lossy(&value).into_owned();
            if user.server_name() != self.server_name || !LISTED.contains(&membership.as_str()) {
                continue;
            }
            let bump = if membership == "join" {
                self.bump_stamp(&room_id)?
            } else {
                None
            };
            // Without a bump (invites, or rooms older than bump stamps) the latest change the
            // user saw in the room is the best recency there is.
            let stamp = match bump {
                Some(stamp) => stamp,
                None => self.room_changed_at(&user, &room_id)?.unwrap_or(0),
            };
            self.set_listed(
                user.as_str(),
                &room_id,
                Some((stamp, &membership)),
                &mut batch,
            )?;
            built += 1;
        }
        batch.put(&global, BUILT_KEY, &[])?;
        self.engine.write(batch)?;
        if built > 0 {
            tracing::info!(rooms = built, "built the per-user room lists");
        }
        Ok(())
    }
}

/// The list key of a room: the stamp is stored inverted so that the newest room comes first in
/// a forward scan. Forward, because RocksDB steps backwards through a memtable by searching it
/// again, and a user's newest entries are usually still in the memtable.
fn list_key(user: &str, stamp: u64, room_id: &RoomId) -> Vec<u8> {
    (user, u64::MAX - stamp, room_id.as_str()).encode()
}

/// A `useridroomid_stamp` value: the stamp, then the membership of the entry.
fn stamp_value(stamp: u64, membership: &str) -> Vec<u8> {
    let mut value = stamp.to_be_bytes().to_vec();
    value.extend_from_slice(membership.as_bytes());
    value
}

/// The stamp and membership of a `useridroomid_stamp` value (`None`: a value written before
/// the membership was stored with it).
fn decode_stamp(bytes: &[u8]) -> Result<(u64, Option<&[u8]>)> {
    let stamp = decode_u64(bytes.get(..8).unwrap_or(bytes))?;
    let membership = bytes.get(8..).filter(|rest| !rest.is_empty());
    Ok((stamp, membership))
}
