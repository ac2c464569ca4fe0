//! The joining side of a join through another server: the room's state as the resident
//! server answered it (each event checked and stored as an outlier first) becomes the state
//! before our join, which is placed in the timeline through the same authorization and
//! persistence as any event.

use std::sync::Arc;

use ruma::room_version_rules::RoomVersionRules;
use ruma::{CanonicalJsonObject, OwnedEventId, RoomId, RoomVersionId};

use super::error::PduError;
use super::pdu::PduEvent;
use super::resolution::StateBefore;
use super::state::StateMap;
use super::{RoomGuard, Service};
use crate::error::Error;
use crate::storage::Batch;

impl Service {
    /// The state map of a list of stored state event IDs (rejected events and other rooms'
    /// left out), with the member events among them.
    #[allow(clippy::type_complexity)]
    pub(super) fn state_map_of(
        &self,
        room_id: &RoomId,
        state: &[OwnedEventId],
    ) -> Result<(StateMap, Vec<(String, serde_json::Value)>), PduError> {
        let mut map = StateMap::new();
        let mut members = Vec::new();
        for id in state {
            let Some(event) = self.get_pdu(id)? else {
                return Err(PduError::Missing(vec![id.clone()]));
            };
            let Some(state_key) = &event.state_key else {
                continue;
            };
            if event.rejected || event.room_id.as_deref().is_some_and(|room| room != room_id) {
                continue;
            }
            let key = self.get_or_create_shortstatekey(&event.kind.to_string(), state_key)?;
            let short = self
                .shorteventid(id)?
                .ok_or_else(|| Error::Database(format!("stored event {id} has no short ID")))?;
            map.insert(key, short);
            if event.kind == ruma::events::TimelineEventType::RoomMember {
                members.push((state_key.clone(), event.content_value()));
            }
        }
        Ok((map, members))
    }

    /// Gives an event stored as an outlier the state after it: `state_before` (stored state
    /// event IDs, as another server answered `/state` for it) plus the event itself. Events
    /// that name it as a `prev_event` can then be placed, across a gap in the history held.
    pub fn give_outlier_state(
        &self,
        room_id: &RoomId,
        pdu: &PduEvent,
        state_before: &[OwnedEventId],
    ) -> Result<(), PduError> {
        let (mut map, _) = self.state_map_of(room_id, state_before)?;
        let short = self
            .shorteventid(&pdu.event_id)?
            .ok_or_else(|| Error::Database(format!("outlier {} has no short ID", pdu.event_id)))?;
        if let Some(state_key) = &pdu.state_key
            && !pdu.rejected
        {
            let key = self.get_or_create_shortstatekey(&pdu.kind.to_string(), state_key)?;
            map.insert(key, short);
        }
        let mut batch = Batch::default();
        let hash = self.save_state(None, map, &mut batch)?;
        batch.put(
            &self.shorteventid_shortstatehash,
            &short.to_be_bytes(),
            &hash.to_be_bytes(),
        )?;
        self.engine.write(batch)?;
        Ok(())
    }

    /// Records a room we are joining through another server: its version and short ID.
    pub fn prepare_remote_room(
        &self,
        room_id: &RoomId,
        version: &RoomVersionId,
    ) -> crate::error::Result<()> {
        let mut batch = Batch::default();
        batch.put(
            &self.roomid_roomversion,
            room_id.as_bytes(),
            version.as_str().as_bytes(),
        )?;
        self.get_or_create_shortroomid(room_id, &mut batch)?;
        self.engine.write(batch)
    }

    /// Places our join, signed by us (and the resident server for a restricted join), on
    /// `state`: the room's state before it as the resident server answered (stored already).
    /// Our old extremities, if we were in the room before, are dropped: the join starts the
    /// room's history here afresh.
    pub fn place_remote_join(
        &self,
        guard: &RoomGuard,
        room_id: &RoomId,
        rules: &RoomVersionRules,
        pdu: &PduEvent,
        object: CanonicalJsonObject,
        state: &[OwnedEventId],
    ) -> Result<(), PduError> {
        let (map, members) = self.state_map_of(room_id, state)?;
        let mut batch = Batch::default();
        let hash = self.save_state(None, map.clone(), &mut batch)?;
        batch.delete(&self.roomid_pduleaves, room_id.as_bytes())?;
        self.engine.write(batch)?;
        let before = StateBefore {
            state: Arc::new(map),
            hash: Some(hash),
            base: Some(hash),
        };

        let writing = self.engine.begin_write_owned();
        match self.authorise_received(rules, pdu, &before.state, None)? {
            super::authorise::AuthOutcome::Accept => {}
            super::authorise::AuthOutcome::SoftFail(reason)
            | super::authorise::AuthOutcome::Reject(reason) => {
                return Err(PduError::Rejected(reason));
            }
        }
        let shortroomid = self
            .shortroomid(room_id)?
            .ok_or_else(|| Error::Database(format!("room {room_id} has no short ID")))?;
        let (object, was_joined) = self.with_replaced_state(pdu, &before.state, object)?;
        let mut batch = Batch::default();
        // Everyone the state names, indexed as of now; the join's own entry follows.
        let mut changes = Vec::new();
        let mut server_deltas = Vec::new();
        for (target, content) in &members {
            if target != pdu.sender.as_str() {
                changes.extend(self.index_membership(
                    room_id,
                    target,
                    content,
                    &mut batch,
                    &mut server_deltas,
                )?);
            }
        }
        let (count, json, mut appended) = self.append_pdu(
            room_id,
            shortroomid,
            rules,
            pdu,
            object,
            &before,
            &mut batch,
        )?;
        self.engine.write(batch)?;
        appended.membership.extend(changes);
        appended.server_deltas.extend(server_deltas);
        appended.members_changed = true;
        self.after_write(room_id, pdu, appended, writing, guard);
        self.defer_after_append(guard, room_id, pdu, count, json, was_joined);
        Ok(())
    }
}
