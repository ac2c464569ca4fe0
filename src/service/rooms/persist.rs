//! Storing an event that has passed the authorization rules: its timeline entry and event-ID
//! lookups, the state after it, the room's current state and forward extremities, and the
//! indexes derived from it (membership, relations, search, the bump stamp) — all in the
//! event's own batch, so it lands whole or not at all.

use ruma::events::TimelineEventType;
use ruma::{CanonicalJsonObject, OwnedEventId, RoomId};

use super::Service;
use super::fanout::Appended;
use super::pdu::PduEvent;
use super::resolution::StateBefore;
use super::state::StateMap;
use crate::error::{Error, Result};
use crate::storage::{Batch, Key};

impl Service {
    /// Stores an authorised PDU with all its indexes in `batch`: timeline entry, event ID
    /// lookups, the state after it, forward extremities and membership.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn append_pdu(
        &self,
        room_id: &RoomId,
        shortroomid: u64,
        pdu: &PduEvent,
        object: CanonicalJsonObject,
        before: &StateBefore,
        batch: &mut Batch,
    ) -> Result<(u64, Vec<u8>, Appended)> {
        let json = serde_json::to_vec(&object).map_err(Error::internal)?;
        let shorteventid = self.create_shorteventid(&pdu.event_id, batch)?;
        let count = self.engine.next_count()?;
        let pduid = (shortroomid, count).encode();
        batch.put(&self.pduid_pdu, &pduid, &json)?;
        batch.put(&self.eventid_pduid, pdu.event_id.as_bytes(), &pduid)?;
        batch.put(
            &self.senderpduid_empty,
            &(pdu.sender.as_str(), shortroomid, count).encode(),
            &[],
        )?;

        let statehash_after = match &pdu.state_key {
            Some(state_key) => {
                let shortstatekey =
                    self.get_or_create_shortstatekey(&pdu.kind.to_string(), state_key)?;
                let mut state = StateMap::clone(&before.state);
                state.insert(shortstatekey, shorteventid);
                self.save_state(before.base, state, batch)?
            }
            None => match (before.hash, before.base) {
                (Some(hash), _) => hash,
                // Merging forks: the resolved state is the state after it too.
                (None, Some(base)) => {
                    self.save_state(Some(base), StateMap::clone(&before.state), batch)?
                }
                (None, None) => {
                    return Err(Error::internal("timeline event in a room without state"));
                }
            },
        };
        // The room's current state is the state after its newest event (which differs from the
        // state before it for a timeline event too, when the event merged forks).
        batch.put(
            &self.roomid_shortstatehash,
            room_id.as_bytes(),
            &statehash_after.to_be_bytes(),
        )?;
        batch.put(
            &self.shorteventid_shortstatehash,
            &shorteventid.to_be_bytes(),
            &statehash_after.to_be_bytes(),
        )?;

        // Appends to a room are serialised by its lock, so reading the leaves here is safe.
        let mut leaves = self.forward_extremities(room_id)?;
        leaves.retain(|leaf| !pdu.prev_events.contains(leaf));
        leaves.push(pdu.event_id.clone());
        let mut value = Vec::new();
        for (i, leaf) in leaves.iter().enumerate() {
            if i > 0 {
                value.push(crate::storage::codec::SEP);
            }
            value.extend_from_slice(leaf.as_bytes());
        }
        batch.put(&self.roomid_pduleaves, room_id.as_bytes(), &value)?;

        self.index_relation(room_id, pdu, count, batch)?;
        self.index_words(shortroomid, count, pdu, batch)?;
        let bump = is_bump(&pdu.kind);
        if bump {
            batch.put(
                &self.roomid_bumpcount,
                room_id.as_bytes(),
                &count.to_be_bytes(),
            )?;
        }
        let membership = match (&pdu.kind, pdu.state_key.as_deref()) {
            (TimelineEventType::RoomMember, Some(target)) => {
                self.index_membership(room_id, target, &pdu.content_value(), batch)?
            }
            _ => None,
        };
        let appended = Appended {
            count,
            bump,
            membership,
            floor: None,
        };
        Ok((count, json, appended))
    }

    /// The room's forward extremities.
    pub fn forward_extremities(&self, room_id: &RoomId) -> Result<Vec<OwnedEventId>> {
        let Some(value) = self.roomid_pduleaves.get(room_id.as_bytes())? else {
            return Ok(Vec::new());
        };
        value
            .split(|&b| b == crate::storage::codec::SEP)
            .map(crate::storage::decode_id)
            .collect()
    }
}

/// Event kinds that move a room to the top of a room list (the set Synapse uses for
/// sliding sync's `bump_stamp`): messages and their kin, not reactions, edits of state or
/// receipts.
pub(super) fn is_bump(kind: &TimelineEventType) -> bool {
    matches!(
        kind.to_string().as_str(),
        "m.room.create"
            | "m.room.message"
            | "m.room.encrypted"
            | "m.sticker"
            | "m.call.invite"
            | "m.poll.start"
            | "m.beacon_info"
    )
}
