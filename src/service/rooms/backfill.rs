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
use crate::storage::{Batch, Key, Purge};

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
    /// Its auth events must be stored (as outliers, fetched first). Redactions take effect as
    /// for live events: backfill runs newest first, so a redaction usually comes before its
    /// target and waits for it. Answers the old versions a redaction leaves to purge.
    pub fn place_backfilled(
        &self,
        _guard: &RoomGuard,
        room_id: &RoomId,
        rules: &RoomVersionRules,
        pdu: &PduEvent,
        object: CanonicalJsonObject,
        child: Option<&OwnedEventId>,
    ) -> Result<(Received, Purge), PduError> {
        if self.is_in_timeline(&pdu.event_id)? {
            return Ok((Received::Known, Purge::default()));
        }
        let missing = self.missing_auth_events(rules, pdu)?;
        if !missing.is_empty() {
            return Err(PduError::Missing(missing));
        }
        if let Some(reason) = self.rejection_by_auth_events(rules, pdu)? {
            self.store_outlier(rules, pdu, object)?;
            return Ok((Received::Rejected(reason), Purge::default()));
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
        let mut purge = self.apply_received_redaction(room_id, rules, pdu)?;
        purge.append(self.apply_pending_redactions(room_id, rules, pdu)?);
        Ok((Received::Timeline, purge))
    }
}

#[cfg(test)]
mod tests {
    use ruma::RoomVersionId;
    use ruma::events::TimelineEventType;
    use serde_json::json;

    use super::Received;
    use crate::service::Services;
    use crate::service::rooms::PduBuilder;
    use crate::service::rooms::redaction::redaction_event;
    use crate::service::rooms::test_room::{self, TestRoom};

    /// Backfill places the newest event first, so a redaction comes before its target: it
    /// waits for it, and the target is stored redacted when it is placed.
    #[tokio::test]
    async fn a_backfilled_redaction_applies_to_its_target_placed_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let services = Services::for_tests(dir.path());
        let rooms = &services.rooms;
        let bob = test_room::user(&services, "bob");
        let version = RoomVersionId::V11;
        let rules = version.rules().unwrap();
        let TestRoom { room_id, guard, .. } = test_room::alices_room(&services, &version).await;
        rooms
            .build_and_append(
                test_room::member(&bob, json!({ "membership": "join" })),
                &bob,
                &room_id,
                &guard,
            )
            .unwrap();
        let state = rooms.current_state(&room_id).unwrap();
        let extremities = rooms.forward_extremities(&room_id).unwrap();
        let (message_object, message) = rooms
            .build_pdu(
                &PduBuilder::timeline(
                    TimelineEventType::RoomMessage,
                    json!({ "msgtype": "m.text", "body": "regretted" }),
                ),
                &bob,
                Some(&room_id),
                &rules,
                &state,
                extremities,
                10,
            )
            .unwrap();
        let (redaction_object, redaction) = rooms
            .build_pdu(
                &redaction_event(&rules, &message.event_id, None),
                &bob,
                Some(&room_id),
                &rules,
                &state,
                vec![message.event_id.clone()],
                11,
            )
            .unwrap();

        let (placed, _) = rooms
            .place_backfilled(&guard, &room_id, &rules, &redaction, redaction_object, None)
            .unwrap();
        assert_eq!(placed, Received::Timeline);
        let (placed, _) = rooms
            .place_backfilled(
                &guard,
                &room_id,
                &rules,
                &message,
                message_object,
                Some(&redaction.event_id),
            )
            .unwrap();
        assert_eq!(placed, Received::Timeline);
        let stored = rooms.get_pdu(&message.event_id).unwrap().unwrap();
        assert!(
            stored.content_value().get("body").is_none(),
            "stored redacted: {}",
            stored.content_value()
        );
        assert_eq!(
            rooms
                .eventid_pendingredaction
                .scan_prefix(Vec::new())
                .count(),
            0,
            "nothing left waiting"
        );
        guard.release().await;
    }
}
