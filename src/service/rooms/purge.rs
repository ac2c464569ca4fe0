//! Removing events from the database for administrators: a room's history before a date (its
//! state stays, so the room works as before), or a whole room once its local members are gone.
//!
//! Both run under the room's lock and write in batches of [`CHUNK`] events, so a room of any
//! size is purged without one huge write; a purge cut short leaves unreachable leftovers, not
//! a broken room. The freed ranges are compacted at the end so the space really comes back.

use ruma::RoomId;
use ruma::events::TimelineEventType;

use super::Service;
use super::count::PduCount;
use super::pdu::PduEvent;
use super::relations::relates_to;
use crate::error::{Error, Result};
use crate::storage::{Batch, Key};

/// Events deleted per write batch.
const CHUNK: usize = 1_000;

/// What a purge removed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Purged {
    pub events: usize,
    /// Events older than the cut-off that were kept: state events (the room's state is built
    /// from them) and the room's newest events (the next event refers to them).
    pub kept: usize,
}

impl Service {
    /// Deletes the room's timeline events (not state events, not its newest events) sent
    /// before `before_ms`, oldest first, stopping at the first event at or after the cut-off.
    pub async fn purge_history(&self, room_id: &RoomId, before_ms: u64) -> Result<Purged> {
        let guard = self.lock_room(room_id).await;
        let room = room_id.to_owned();
        let purged = self
            .off_the_workers(move |services| services.rooms.purge_history_locked(&room, before_ms))
            .await;
        guard.release().await;
        purged
    }

    /// [`Self::purge_history`] once the room is locked.
    fn purge_history_locked(&self, room_id: &RoomId, before_ms: u64) -> Result<Purged> {
        let shortroomid = self
            .shortroomid(room_id)?
            .ok_or_else(|| Error::not_found("Unknown room"))?;
        let leaves = self.forward_extremities(room_id)?;
        let mut purged = Purged::default();
        let mut batch = Batch::default();
        let mut pending = 0;
        for entry in self.pduid_pdu.scan_prefix((shortroomid,).prefix()) {
            let (key, json) = entry?;
            let pdu = PduEvent::from_json(&json)?;
            if u64::from(pdu.origin_server_ts.get()) >= before_ms {
                break;
            }
            if pdu.state_key.is_some()
                || pdu.kind == TimelineEventType::RoomCreate
                || leaves.contains(&pdu.event_id)
            {
                purged.kept += 1;
                continue;
            }
            let (_, count) = <(u64, PduCount)>::decode(&key)?;
            self.delete_event(shortroomid, count, &pdu, &mut batch)?;
            purged.events += 1;
            pending += 1;
            if pending == CHUNK {
                self.engine.write(std::mem::take(&mut batch))?;
                pending = 0;
            }
        }
        self.engine.write(batch)?;
        self.event_cache.clear();
        self.compact_room(shortroomid)?;
        tracing::info!(%room_id, events = purged.events, "purged room history");
        Ok(purged)
    }

    /// Deletes everything stored about a room: events, state, aliases, directory entry,
    /// receipts-independent indexes and memberships of remote users. Local users who had been
    /// in it keep a `leave` entry, so their next /sync tells their clients the room is gone.
    /// The room's block (if any) stays, so it cannot be joined again.
    pub async fn purge_room(&self, room_id: &RoomId) -> Result<Purged> {
        let guard = self.lock_room(room_id).await;
        let room = room_id.to_owned();
        let purged = self
            .off_the_workers(move |services| services.rooms.purge_room_locked(&room))
            .await;
        guard.release().await;
        purged
    }

    /// [`Self::purge_room`] once the room is locked.
    fn purge_room_locked(&self, room_id: &RoomId) -> Result<Purged> {
        let shortroomid = self
            .shortroomid(room_id)?
            .ok_or_else(|| Error::not_found("Unknown room"))?;

        // First the room itself, in one batch: from here on it is unknown.
        let mut batch = Batch::default();
        let room = room_id.as_bytes();
        for tree in [
            &self.roomid_roomversion,
            &self.roomid_shortstatehash,
            &self.roomid_pduleaves,
            &self.publicroomids,
            &self.roomid_bumpcount,
        ] {
            batch.delete(tree, room)?;
        }
        for alias in self.local_aliases(room_id)? {
            batch.delete(&self.alias_roomid, alias.as_bytes())?;
        }
        let room_prefix = (room_id.as_str(),).prefix();
        for tree in [&self.roomid_alias, &self.roomid_threadroot] {
            for entry in tree.scan_prefix(room_prefix.clone()) {
                batch.delete(tree, &entry?.0)?;
            }
        }
        for (user, membership) in self.members(room_id)? {
            batch.delete(
                &self.roomuserid_membership,
                &(room_id.as_str(), user.as_str()).encode(),
            )?;
            let pair = (user.as_str(), room_id.as_str()).encode();
            if user.server_name() != self.server_name {
                batch.delete(&self.userroomid_membership, &pair)?;
            } else if membership != "leave" {
                // Shutting a room down removes its local members first; anyone left over
                // (a ban) is shown the room as left.
                batch.put(&self.userroomid_membership, &pair, b"leave")?;
            }
        }
        self.engine.write(batch)?;
        self.forget_members(room_id);

        // Then its events, chunk by chunk, with the state snapshots they point to.
        let mut purged = Purged::default();
        let mut batch = Batch::default();
        let mut pending = 0;
        let mut snapshots = std::collections::BTreeSet::new();
        for entry in self.pduid_pdu.scan_prefix((shortroomid,).prefix()) {
            let (key, json) = entry?;
            let pdu = PduEvent::from_json(&json)?;
            let (_, count) = <(u64, PduCount)>::decode(&key)?;
            if let Some(short) = self.shorteventid(&pdu.event_id)? {
                if let Some(hash) = self.shorteventid_shortstatehash.get(&short.to_be_bytes())? {
                    snapshots.insert(crate::storage::schema::decode_u64(&hash)?);
                }
                batch.delete(&self.shorteventid_eventid, &short.to_be_bytes())?;
            }
            batch.delete(&self.eventid_shorteventid, pdu.event_id.as_bytes())?;
            self.delete_event(shortroomid, count, &pdu, &mut batch)?;
            purged.events += 1;
            pending += 1;
            if pending == CHUNK {
                self.engine.write(std::mem::take(&mut batch))?;
                pending = 0;
            }
        }
        for snapshot in snapshots {
            batch.delete(&self.shortstatehash_statediff, &snapshot.to_be_bytes())?;
        }
        self.engine.write(batch)?;
        self.clear_caches();
        self.compact_room(shortroomid)?;
        tracing::info!(%room_id, events = purged.events, "purged room");
        Ok(purged)
    }

    /// Deletes one timeline event and what indexes it (in `batch`).
    fn delete_event(
        &self,
        shortroomid: u64,
        count: PduCount,
        pdu: &PduEvent,
        batch: &mut Batch,
    ) -> Result<()> {
        let event_id = pdu.event_id.as_str();
        batch.delete(&self.pduid_pdu, &(shortroomid, count).encode())?;
        batch.delete(&self.eventid_pduid, event_id.as_bytes())?;
        batch.delete(
            &self.senderpduid_empty,
            &(pdu.sender.as_str(), shortroomid, count).encode(),
        )?;
        batch.delete(&self.eventid_devicetxnid, event_id.as_bytes())?;
        if let Some(short) = self.shorteventid(&pdu.event_id)? {
            batch.delete(&self.shorteventid_shortstatehash, &short.to_be_bytes())?;
        }
        let content = pdu.content_value();
        if let Some((_, target)) = relates_to(&content) {
            batch.delete(
                &self.relatestoeventid_relation,
                &(target.as_str(), count).encode(),
            )?;
        }
        // Relations to this event: the relating events stay (or go in their turn).
        if self.eventid_hasrelations.contains(event_id.as_bytes())? {
            for entry in self
                .relatestoeventid_relation
                .scan_prefix((event_id,).prefix())
            {
                batch.delete(&self.relatestoeventid_relation, &entry?.0)?;
            }
            batch.delete(&self.eventid_hasrelations, event_id.as_bytes())?;
        }
        self.unindex_words_in(shortroomid, count, pdu, batch)
    }

    /// Compacts the room's timeline range and the search index (its keys start with the
    /// word, so the room's entries are everywhere in it), so deleted messages leave the disk
    /// now rather than whenever RocksDB would next rewrite those files.
    fn compact_room(&self, shortroomid: u64) -> Result<()> {
        let start = (shortroomid,).prefix();
        let end = (shortroomid.saturating_add(1),).prefix();
        self.engine
            .compact_range(&self.pduid_pdu, Some(&start), Some(&end))?;
        self.engine
            .compact_range(&self.tokenshortroomidcount_empty, None, None)
    }

    /// The user's events in a room, oldest first.
    pub fn events_by_sender(
        &self,
        sender: &ruma::UserId,
        room_id: &RoomId,
    ) -> Result<Vec<PduEvent>> {
        let Some(shortroomid) = self.shortroomid(room_id)? else {
            return Ok(Vec::new());
        };
        let mut events = Vec::new();
        for entry in self
            .senderpduid_empty
            .scan_prefix((sender.as_str(), shortroomid).prefix())
        {
            let (key, _) = entry?;
            let (_, shortroomid, count) = <(&str, u64, PduCount)>::decode(&key)?;
            if let Some(json) = self.pduid_pdu.get(&(shortroomid, count).encode())? {
                events.push(PduEvent::from_json(&json)?);
            }
        }
        Ok(events)
    }

    /// The state snapshot after an event (Synapse calls it the event's state group).
    pub fn state_hash_after(&self, shorteventid: u64) -> Result<Option<u64>> {
        self.shorteventid_shortstatehash
            .get(&shorteventid.to_be_bytes())?
            .map(|hash| crate::storage::schema::decode_u64(&hash))
            .transpose()
    }

    /// Drops every forward extremity but the newest (in stream order), so the next event
    /// has one parent: Synapse's remedy for rooms slowed by many extremities. Returns how
    /// many were dropped.
    pub async fn keep_newest_extremity(&self, room_id: &RoomId) -> Result<usize> {
        let guard = self.lock_room(room_id).await;
        let leaves = self.forward_extremities(room_id)?;
        let mut newest: Option<(PduCount, ruma::OwnedEventId)> = None;
        for leaf in &leaves {
            if let Some((_, count)) = self.pdu_position(leaf)?
                && newest.as_ref().is_none_or(|(best, _)| count > *best)
            {
                newest = Some((count, leaf.clone()));
            }
        }
        let Some((_, keep)) = newest else {
            return Err(Error::invalid_param(format!(
                "No forward extremity event found for room {room_id}"
            )));
        };
        let dropped = leaves.len() - 1;
        if dropped > 0 {
            self.roomid_pduleaves
                .insert(room_id.as_bytes(), keep.as_bytes())?;
        }
        guard.release().await;
        Ok(dropped)
    }
}
