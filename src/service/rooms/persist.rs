//! Storing an event that has passed the authorization rules: its timeline entry and event-ID
//! lookups, the state after it, the room's current state and forward extremities, and the
//! indexes derived from it (membership, relations, search, the bump stamp) — all in the
//! event's own batch, so it lands whole or not at all.

use std::sync::Arc;

use ruma::events::TimelineEventType;
use ruma::room_version_rules::RoomVersionRules;
use ruma::{CanonicalJsonObject, OwnedEventId, RoomId};
use serde_json::{Value, json};

use super::Service;
use super::count::PduCount;
use super::error::PduError;
use super::fanout::Appended;
use super::pdu::PduEvent;
use super::resolution::{Pending, StateBefore};
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
        rules: &RoomVersionRules,
        pdu: &PduEvent,
        object: CanonicalJsonObject,
        before: &StateBefore,
        batch: &mut Batch,
    ) -> Result<(u64, Vec<u8>, Appended)> {
        let json = serde_json::to_vec(&object).map_err(Error::internal)?;
        let shorteventid = match self.shorteventid(&pdu.event_id)? {
            // Stored before as an outlier (an auth or state event): it moves into the timeline.
            Some(short) => {
                batch.delete(&self.eventid_outlierpdu, pdu.event_id.as_bytes())?;
                short
            }
            None => self.get_or_create_shorteventid(&pdu.event_id, batch)?,
        };
        let stream = self.engine.next_count()?;
        let count = PduCount::normal(stream);
        let pduid = (shortroomid, count).encode();
        batch.put(&self.pduid_pdu, &pduid, &json)?;
        batch.put(&self.eventid_pduid, pdu.event_id.as_bytes(), &pduid)?;
        batch.put(
            &self.senderpduid_empty,
            &(pdu.sender.as_str(), shortroomid, count).encode(),
            &[],
        )?;

        let (statehash_after, state_after) =
            self.save_state_after(pdu, shorteventid, before, true, batch)?;

        // The room's forward extremities: this event replaces those it names. Appends to a
        // room are serialised by its lock, so reading them here is safe.
        let mut leaves = self.forward_extremities(room_id)?;
        leaves.retain(|leaf| !pdu.prev_events.contains(leaf));
        let other_branches = leaves.clone();
        leaves.push(pdu.event_id.clone());
        let mut value = Vec::new();
        for (i, leaf) in leaves.iter().enumerate() {
            if i > 0 {
                value.push(crate::storage::codec::SEP);
            }
            value.extend_from_slice(leaf.as_bytes());
        }
        batch.put(&self.roomid_pduleaves, room_id.as_bytes(), &value)?;

        // The room's current state is the resolution of the states after every extremity.
        // An event that names them all (every event built here, most received ones) leaves
        // just itself: its own state after, and at most its own key changed.
        let (current, changed) = if other_branches.is_empty() {
            let own = match (&pdu.kind, pdu.state_key.as_deref()) {
                (TimelineEventType::RoomMember, Some(target)) => {
                    vec![(target.to_owned(), pdu.content_value())]
                }
                _ => Vec::new(),
            };
            (statehash_after, own)
        } else {
            let pending = Pending {
                short: shorteventid,
                pdu,
            };
            self.resolve_current_state(
                rules,
                room_id,
                &other_branches,
                &state_after,
                before,
                pending,
                batch,
            )?
        };
        batch.put(
            &self.roomid_shortstatehash,
            room_id.as_bytes(),
            &current.to_be_bytes(),
        )?;

        self.index_relation(room_id, pdu, count, batch)?;
        self.index_words(shortroomid, count, pdu, batch)?;
        let bump = is_bump(&pdu.kind);
        if bump {
            batch.put(
                &self.roomid_bumpcount,
                room_id.as_bytes(),
                &stream.to_be_bytes(),
            )?;
        }
        // Membership indexes follow the change in current state, not the event: a member
        // event on a losing branch changes nobody's membership.
        let mut membership = Vec::new();
        let mut server_deltas = Vec::new();
        for (target, content) in &changed {
            membership.extend(self.index_membership(
                room_id,
                target,
                content,
                batch,
                &mut server_deltas,
            )?);
        }
        let appended = Appended {
            count: stream,
            bump,
            membership,
            members_changed: !changed.is_empty(),
            server_deltas,
            floor: None,
        };
        Ok((stream, json, appended))
    }

    /// Saves the state after an event (`counts`: its own entry applies; not for a rejected
    /// event, after which the state is the state before it) and records it for the event.
    pub(super) fn save_state_after(
        &self,
        pdu: &PduEvent,
        shorteventid: u64,
        before: &StateBefore,
        counts: bool,
        batch: &mut Batch,
    ) -> Result<(u64, Arc<StateMap>)> {
        let mut state_after = Arc::clone(&before.state);
        let statehash_after = match &pdu.state_key {
            Some(state_key) if counts => {
                let shortstatekey =
                    self.get_or_create_shortstatekey(&pdu.kind.to_string(), state_key)?;
                let mut state = StateMap::clone(&before.state);
                state.insert(shortstatekey, shorteventid);
                state_after = Arc::new(state.clone());
                self.save_state(before.base, state, batch)?
            }
            _ => match (before.hash, before.base) {
                (Some(hash), _) => hash,
                // Merging forks: the resolved state is the state after it too.
                (None, Some(base)) => {
                    self.save_state(Some(base), StateMap::clone(&before.state), batch)?
                }
                (None, None) => {
                    return Err(Error::internal("event in a room without state"));
                }
            },
        };
        batch.put(
            &self.shorteventid_shortstatehash,
            &shorteventid.to_be_bytes(),
            &statehash_after.to_be_bytes(),
        )?;
        Ok((statehash_after, state_after))
    }

    /// The current state when extremities other than the new event's own remain: the
    /// resolution of the states after each, saved in `batch`. Also answers the members whose
    /// entry changed from the current state before, with their new member content (`leave`
    /// when none is left) — the membership indexes follow those.
    #[allow(clippy::too_many_arguments)]
    fn resolve_current_state(
        &self,
        rules: &RoomVersionRules,
        room_id: &RoomId,
        other_branches: &[OwnedEventId],
        state_after: &Arc<StateMap>,
        before: &StateBefore,
        pending: Pending<'_>,
        batch: &mut Batch,
    ) -> Result<(u64, Vec<(String, Value)>), PduError> {
        let mut states = vec![Arc::clone(state_after)];
        for leaf in other_branches {
            let state = match self.shorteventid(leaf)? {
                Some(short) => self.state_after_event(short)?,
                None => None,
            };
            states.push(state.ok_or_else(|| PduError::Missing(vec![leaf.clone()]))?);
        }
        let resolved = self.resolve_states(rules, &states, Some(pending))?;
        let previous = self.current_state(room_id)?;
        let mut changed = Vec::new();
        let keys: std::collections::BTreeSet<u64> =
            previous.keys().chain(resolved.keys()).copied().collect();
        for key in keys {
            let now = resolved.get(&key);
            if previous.get(&key) == now {
                continue;
            }
            let (kind, state_key) = self.statekey_of_short(key)?;
            if kind != "m.room.member" {
                continue;
            }
            let content = match now {
                Some(short) if *short == pending.short => pending.pdu.content_value(),
                Some(short) => self
                    .pdu_by_short(*short)?
                    .ok_or_else(|| Error::Database(format!("state event {short} missing")))?
                    .content_value(),
                None => json!({ "membership": "leave" }),
            };
            changed.push((state_key, content));
        }
        let hash = self.save_state(before.base, resolved, batch)?;
        Ok((hash, changed))
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
