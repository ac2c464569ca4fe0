//! History from before the oldest event held (a room joined through another server starts
//! at the join): events fetched with `/backfill` are placed below the oldest position
//! ([`super::count::PduCount`]), newest first. They change neither the room's current state
//! nor its forward extremities, and nobody is notified of them: they are old. Each takes as
//! the state after it the state before the event that follows it, so that history visibility
//! can be decided for it.

use ruma::room_version_rules::RoomVersionRules;
use ruma::{CanonicalJsonObject, OwnedEventId, RoomId};

use super::count::PduCount;
use super::error::PduError;
use super::pdu::PduEvent;
use super::receive::Received;
use super::{RoomGuard, Service};
use crate::error::{Error, Result};
use crate::storage::{Batch, Key};

impl Service {
    /// The room's oldest timeline event and its position, unless it is the create event (the
    /// history is then complete): where backfill continues from.
    pub fn backfill_point(&self, room_id: &RoomId) -> Result<Option<(PduCount, PduEvent)>> {
        let Some(shortroomid) = self.shortroomid(room_id)? else {
            return Ok(None);
        };
        let Some(oldest) = self.oldest_position(shortroomid)? else {
            return Ok(None);
        };
        let Some(json) = self.pduid_pdu.get(&(shortroomid, oldest).encode())? else {
            return Ok(None);
        };
        let pdu = PduEvent::from_json(&json)?;
        if pdu.kind == ruma::events::TimelineEventType::RoomCreate {
            return Ok(None);
        }
        Ok(Some((oldest, pdu)))
    }

    /// Places a backfilled event below the oldest one held. `child` is a timeline event that
    /// names it among its `prev_events`: the state before the child is the state after it.
    /// Its auth events must be stored (as outliers, fetched first).
    pub fn place_backfilled(
        &self,
        _guard: &RoomGuard,
        room_id: &RoomId,
        rules: &RoomVersionRules,
        pdu: &PduEvent,
        object: CanonicalJsonObject,
        child: Option<&OwnedEventId>,
    ) -> Result<Received, PduError> {
        if self.is_in_timeline(&pdu.event_id)? {
            return Ok(Received::Known);
        }
        let missing = self.missing_auth_events(rules, pdu)?;
        if !missing.is_empty() {
            return Err(PduError::Missing(missing));
        }
        if let Some(reason) = self.rejection_by_auth_events(rules, pdu)? {
            self.store_outlier(rules, pdu, object)?;
            return Ok(Received::Rejected(reason));
        }
        let shortroomid = self
            .shortroomid(room_id)?
            .ok_or_else(|| Error::Database(format!("room {room_id} has no short ID")))?;
        let position = match self.oldest_position(shortroomid)? {
            Some(oldest) => oldest.below(),
            None => PduCount::backfilled(1),
        };
        let mut object = object;
        object.remove("unsigned");
        let json = serde_json::to_vec(&object).map_err(Error::internal)?;
        let mut batch = Batch::default();
        let short = match self.shorteventid(&pdu.event_id)? {
            Some(short) => {
                batch.delete(&self.eventid_outlierpdu, pdu.event_id.as_bytes())?;
                short
            }
            None => self.get_or_create_shorteventid(&pdu.event_id, &mut batch)?,
        };
        let pduid = (shortroomid, position).encode();
        batch.put(&self.pduid_pdu, &pduid, &json)?;
        batch.put(&self.eventid_pduid, pdu.event_id.as_bytes(), &pduid)?;
        batch.put(
            &self.senderpduid_empty,
            &(pdu.sender.as_str(), shortroomid, position).encode(),
            &[],
        )?;
        if let Some(state) = match child {
            Some(child) => self.state_map_before(child)?,
            None => None,
        } {
            let hash = self.save_state(None, state, &mut batch)?;
            batch.put(
                &self.shorteventid_shortstatehash,
                &short.to_be_bytes(),
                &hash.to_be_bytes(),
            )?;
        }
        self.index_relation(room_id, pdu, position, &mut batch)?;
        self.index_words(shortroomid, position, pdu, &mut batch)?;
        self.engine.write(batch)?;
        self.forget_cached_event(Some(short));
        Ok(Received::Timeline)
    }
}
