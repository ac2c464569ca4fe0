//! The per-member part of storing an event: each joined local member's room-list place and
//! wake-up, and a membership target's list and change index entries.
//!
//! It is written after the event, outside the room's lock, and coalesced: appends queue a note
//! per event, and one thread at a time per room (the "flusher") writes what the queued notes
//! imply for the room's current members in one batch. Both indexes keep only a room's newest
//! position per user, so when sixteen senders share a room, one batch can stand for all of
//! their messages instead of sixteen. Each note carries its event's write floor, so /sync does
//! not report a position until the indexes that lead to it are written.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use ruma::{OwnedRoomId, OwnedUserId, RoomId};

use super::Service;
use crate::error::Result;
use crate::storage::schema::decode_u64;
use crate::storage::{Batch, Key, OwnedWriteGuard};

/// What the per-member indexes need to know of one stored event.
pub(super) struct Appended {
    pub count: u64,
    /// A message-like event: moves the room up its members' lists.
    pub bump: bool,
    /// Local members whose membership changed (see [`MembershipChange`]).
    pub membership: Vec<MembershipChange>,
    /// Some member's entry in the current state changed, local or not.
    pub members_changed: bool,
    /// Changes in other servers' joined-member counts.
    pub server_deltas: super::membership::ServerDeltas,
    /// Holds /sync below `count` until the note is written.
    pub floor: Option<OwnedWriteGuard>,
}

/// A membership event's target (a local user) and new membership.
pub(super) struct MembershipChange {
    pub target: OwnedUserId,
    pub membership: String,
    /// The target had this membership already (e.g. a changed display name).
    pub unchanged: bool,
}

/// Notes waiting per room, and whether a thread is writing the room's notes.
#[derive(Default)]
pub(super) struct FanOut {
    rooms: Mutex<HashMap<OwnedRoomId, Queue>>,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Appended>,
    flushing: bool,
}

/// Ends a flusher's turn even if writing panicked: later notes would otherwise wait forever,
/// and with them every /sync (their floors). Dropping the notes loses index entries, not events.
struct Turn<'a> {
    fanout: &'a FanOut,
    room_id: &'a RoomId,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut rooms = self.fanout.lock();
            rooms.remove(self.room_id);
        }
    }
}

impl FanOut {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<OwnedRoomId, Queue>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Service {
    /// Queues an appended event's note. Called under the room's lock, so a room's notes queue
    /// in stream order.
    pub(super) fn queue_fanout(&self, room_id: &RoomId, appended: Appended) {
        self.fanout
            .lock()
            .entry(room_id.to_owned())
            .or_default()
            .pending
            .push(appended);
    }

    /// Writes the room's queued notes, unless another thread is doing so (it takes the notes
    /// queued meanwhile before it stops). Returns once this thread's part is done.
    pub(crate) fn flush_fanout(&self, room_id: &RoomId) {
        {
            let mut rooms = self.fanout.lock();
            let Some(queue) = rooms.get_mut(room_id) else {
                return;
            };
            if queue.flushing || queue.pending.is_empty() {
                return;
            }
            queue.flushing = true;
        }
        let _turn = Turn {
            fanout: &self.fanout,
            room_id,
        };
        loop {
            let notes = {
                let mut rooms = self.fanout.lock();
                let Some(queue) = rooms.get_mut(room_id) else {
                    return;
                };
                if queue.pending.is_empty() {
                    rooms.remove(room_id);
                    return;
                }
                std::mem::take(&mut queue.pending)
            };
            if let Err(error) = self.write_fanout(room_id, &notes) {
                tracing::error!(%error, %room_id, "writing the members' room indexes failed");
            }
            // Dropping the notes releases their floors.
        }
    }

    /// One batch for `notes` (in stream order), from the room's members as they are now:
    /// every note's event is stored, so they include each membership change noted.
    fn write_fanout(&self, room_id: &RoomId, notes: &[Appended]) -> Result<()> {
        let Some(latest) = notes.iter().map(|note| note.count).max() else {
            return Ok(());
        };
        let bump = notes
            .iter()
            .filter(|note| note.bump)
            .map(|note| note.count)
            .max();
        let members = self.members_shared(room_id)?;
        let joined: BTreeSet<&OwnedUserId> = members
            .iter()
            .filter(|(user, membership)| {
                membership == "join" && user.server_name() == self.server_name
            })
            .map(|(user, _)| user)
            .collect();

        // A target's last membership change in these notes decides its list entry and its
        // change index entry. Joined members need no entry: their rooms' newest positions
        // are tracked per room.
        let mut last_change: BTreeMap<&OwnedUserId, (u64, &MembershipChange)> = BTreeMap::new();
        for note in notes {
            for change in &note.membership {
                last_change.insert(&change.target, (note.count, change));
            }
        }

        let mut batch = Batch::default();
        for (target, (count, change)) in &last_change {
            self.list_membership(
                room_id,
                target,
                &change.membership,
                change.unchanged,
                *count,
                &mut batch,
            )?;
        }
        if let Some(stamp) = bump {
            for user in &joined {
                // A target's entry was just written from the room's current bump stamp.
                if !last_change.contains_key(user) {
                    self.bump_listed(user.as_str(), room_id, stamp, &mut batch)?;
                }
            }
        }
        for (target, (count, _)) in &last_change {
            self.mark_changed(target, room_id, *count, &mut batch)?;
        }
        // Raised first: should the batch fail, joined members still see the events.
        self.raise_room_latest(room_id, latest);
        self.engine.write(batch)?;
        // Long-polls of the joined members wait on their prefix of the change index.
        self.engine.notify(
            &self.useridcount_roomid,
            joined.iter().map(|user| (user.as_str(), latest).encode()),
        );
        Ok(())
    }

    /// Records that the user's membership in `room_id` changed at `count`, replacing an older
    /// position.
    fn mark_changed(
        &self,
        user: &OwnedUserId,
        room_id: &RoomId,
        count: u64,
        batch: &mut Batch,
    ) -> Result<()> {
        let pair = (user.as_str(), room_id.as_str()).encode();
        if let Some(previous) = self.useridroomid_count.get(&pair)? {
            let previous = decode_u64(&previous)?;
            if previous >= count {
                return Ok(());
            }
            batch.delete(
                &self.useridcount_roomid,
                &(user.as_str(), previous).encode(),
            )?;
        }
        batch.put(
            &self.useridcount_roomid,
            &(user.as_str(), count).encode(),
            room_id.as_bytes(),
        )?;
        batch.put(&self.useridroomid_count, &pair, &count.to_be_bytes())
    }
}
