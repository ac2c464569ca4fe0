//! Placing an event received from another server, once its format, signatures and content
//! hash are checked (see [`crate::service::federation::incoming`]). It goes through the same
//! authorization and persistence as an event built here; the rules decide where it lands:
//!
//! - **timeline**: stored as a local event is, current state resolved, fanned out and pushed;
//! - **soft-failed**: allowed by its auth events and the state before it but not by the
//!   room's current state — kept outside the timeline with the state after it, never shown
//!   to clients, never a forward extremity;
//! - **rejected**: kept outside the timeline and marked, so events citing it are rejected
//!   too; the state after it is the state before it;
//! - **outlier**: an auth or state event fetched to check others, whose place in the room's
//!   history is not known: stored without state.
//!
//! Nothing here waits on the network: a gap is answered with [`PduError::Missing`], and the
//! caller fetches what is missing without holding the room's lock, then tries again.

use ruma::events::TimelineEventType;
use ruma::room_version_rules::RoomVersionRules;
use ruma::state_res::check_state_dependent_auth_rules;
use ruma::{CanonicalJsonObject, EventId, OwnedEventId, RoomId, ServerName};

use super::authorise::AuthOutcome;
use super::error::PduError;
use super::pdu::PduEvent;
use super::resolution::StateBefore;
use super::{RoomGuard, Service};
use crate::error::Error;
use crate::storage::{Batch, Key, Purge};

/// Where a received event was placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Timeline,
    SoftFailed(String),
    Rejected(String),
    /// Stored before (in the timeline, or with the outcome given then).
    Known,
}

impl Service {
    /// Whether the event is stored, in the timeline or outside it.
    pub fn is_known(&self, event_id: &EventId) -> crate::error::Result<bool> {
        Ok(self.eventid_pduid.contains(event_id.as_bytes())?
            || self.eventid_outlierpdu.contains(event_id.as_bytes())?)
    }

    /// Whether the event is in a room's timeline.
    pub fn is_in_timeline(&self, event_id: &EventId) -> crate::error::Result<bool> {
        self.eventid_pduid.contains(event_id.as_bytes())
    }

    /// Why the event was rejected, if it was.
    pub fn rejection(&self, event_id: &EventId) -> crate::error::Result<Option<String>> {
        Ok(self
            .eventid_rejected
            .get(event_id.as_bytes())?
            .map(|reason| String::from_utf8_lossy(&reason).into_owned()))
    }

    /// Whether the event was soft-failed.
    pub fn is_soft_failed(&self, event_id: &EventId) -> crate::error::Result<bool> {
        self.eventid_softfailed.contains(event_id.as_bytes())
    }

    /// The auth events of `pdu` not stored here (fetch them first, as outliers). From room
    /// version 12 the create event counts among them, named by the room ID.
    pub fn missing_auth_events(
        &self,
        rules: &RoomVersionRules,
        pdu: &PduEvent,
    ) -> crate::error::Result<Vec<OwnedEventId>> {
        let mut missing = Vec::new();
        for id in pdu
            .auth_events
            .iter()
            .cloned()
            .chain(implied_create(rules, pdu))
        {
            if !self.is_known(&id)? {
                missing.push(id);
            }
        }
        Ok(missing)
    }

    /// The `prev_events` of `pdu` that have no known state after them.
    pub fn missing_prev_events(&self, pdu: &PduEvent) -> crate::error::Result<Vec<OwnedEventId>> {
        let mut missing = Vec::new();
        for id in &pdu.prev_events {
            let known = match self.shorteventid(id)? {
                Some(short) => self
                    .shorteventid_shortstatehash
                    .contains(&short.to_be_bytes())?,
                None => false,
            };
            if !known {
                missing.push(id.clone());
            }
        }
        Ok(missing)
    }

    /// Places a checked event received for `room_id` (whose lock `guard` holds): authorised
    /// against its auth events, the state before it and the current state, then stored where
    /// the outcome says. Answers also what a redaction it carried leaves to purge.
    ///
    /// `relay_from`: the event came to us as the resident server of a join, leave or knock
    /// through `origin`; the other servers in the room receive it from us.
    pub fn place_received(
        &self,
        guard: &RoomGuard,
        room_id: &RoomId,
        rules: &RoomVersionRules,
        pdu: &PduEvent,
        object: CanonicalJsonObject,
        relay_from: Option<&ServerName>,
    ) -> Result<(Received, Purge), PduError> {
        if self.is_in_timeline(&pdu.event_id)? {
            return Ok((Received::Known, Purge::default()));
        }
        if let Some(reason) = self.rejection(&pdu.event_id)? {
            return Ok((Received::Rejected(reason), Purge::default()));
        }
        if self.is_soft_failed(&pdu.event_id)? {
            return Ok((Received::Known, Purge::default()));
        }
        let missing = self.missing_auth_events(rules, pdu)?;
        if !missing.is_empty() {
            return Err(PduError::Missing(missing));
        }
        let before = self.state_before_events(room_id, rules, &pdu.prev_events)?;
        // When the event builds on every forward extremity, the state before it is the
        // current state (the usual case): one check fewer.
        let leaves = self.forward_extremities(room_id)?;
        let current = if leaves.iter().all(|leaf| pdu.prev_events.contains(leaf)) {
            None
        } else {
            Some(self.current_state(room_id)?)
        };
        let writing = self.engine.begin_write_owned();
        match self.authorise_received(rules, pdu, &before.state, current.as_deref())? {
            AuthOutcome::Accept => {
                let shortroomid = self
                    .shortroomid(room_id)?
                    .ok_or_else(|| Error::Database(format!("room {room_id} has no short ID")))?;
                let (object, was_joined) = self.with_replaced_state(pdu, &before.state, object)?;
                let mut batch = Batch::default();
                let (count, json, appended) = self.append_pdu(
                    room_id,
                    shortroomid,
                    rules,
                    pdu,
                    object,
                    &before,
                    &mut batch,
                )?;
                let destinations = match relay_from {
                    Some(origin) => {
                        self.queue_for_servers(room_id, &pdu.event_id, Some(origin), &mut batch)?
                    }
                    None => Vec::new(),
                };
                let appservices = self.queue_for_appservices(room_id, pdu, &mut batch)?;
                self.engine.write(batch)?;
                self.after_write(room_id, pdu, appended, writing, guard);
                self.wake_senders(&destinations);
                self.wake_appservices(&appservices);
                self.defer_after_append(guard, room_id, pdu, count, json, was_joined);
                let mut purge = self.apply_received_redaction(room_id, rules, pdu)?;
                purge.append(self.apply_pending_redactions(room_id, rules, pdu)?);
                Ok((Received::Timeline, purge))
            }
            AuthOutcome::SoftFail(reason) => {
                self.store_outside_timeline(pdu, object, Some(&before), Outside::SoftFailed)?;
                Ok((Received::SoftFailed(reason), Purge::default()))
            }
            AuthOutcome::Reject(reason) => {
                self.store_outside_timeline(
                    pdu,
                    object,
                    Some(&before),
                    Outside::Rejected(&reason),
                )?;
                Ok((Received::Rejected(reason), Purge::default()))
            }
        }
    }

    /// Stores an event fetched to check others (an auth event, or part of a room's state when
    /// joining it): checked against its own auth events, which must be stored, and marked
    /// rejected if they do not allow it. Needs no room lock: it changes no room state.
    pub fn store_outlier(
        &self,
        rules: &RoomVersionRules,
        pdu: &PduEvent,
        object: CanonicalJsonObject,
    ) -> Result<Received, PduError> {
        if self.is_known(&pdu.event_id)? {
            return Ok(Received::Known);
        }
        let missing = self.missing_auth_events(rules, pdu)?;
        if !missing.is_empty() {
            return Err(PduError::Missing(missing));
        }
        let rejection = self.rejection_by_auth_events(rules, pdu)?;
        if let Some(reason) = &rejection {
            tracing::info!(event_id = %pdu.event_id, %reason, "outlier rejected by its auth events");
        }
        let outside = match &rejection {
            Some(reason) => Outside::Rejected(reason),
            None => Outside::Outlier,
        };
        self.store_outside_timeline(pdu, object, None, outside)?;
        Ok(match rejection {
            Some(reason) => Received::Rejected(reason),
            None => Received::Known,
        })
    }

    /// Why the event's own auth events refuse it, if they do.
    pub(super) fn rejection_by_auth_events(
        &self,
        rules: &RoomVersionRules,
        pdu: &PduEvent,
    ) -> Result<Option<String>, PduError> {
        if let Some(AuthOutcome::Reject(reason)) = self.check_independent(rules, pdu)? {
            return Ok(Some(reason));
        }
        if pdu.kind == TimelineEventType::RoomCreate {
            return Ok(None);
        }
        let by_auth_events = self.auth_events_state(rules, pdu)?;
        let allowed = check_state_dependent_auth_rules(
            &rules.authorization,
            pdu,
            |kind: &ruma::events::StateEventType, key: &str| {
                by_auth_events
                    .get(&(kind.to_string(), key.to_owned()))
                    .cloned()
            },
        );
        Ok(allowed
            .err()
            .map(|reason| format!("by its auth events: {reason}")))
    }

    /// Stores an event outside the timeline, in one batch: its JSON, its short ID, its
    /// marker, and the state after it when the state before it is known.
    fn store_outside_timeline(
        &self,
        pdu: &PduEvent,
        mut object: CanonicalJsonObject,
        before: Option<&StateBefore>,
        outside: Outside<'_>,
    ) -> Result<(), PduError> {
        object.remove("unsigned");
        let json = serde_json::to_vec(&object).map_err(Error::internal)?;
        let mut batch = Batch::default();
        let short = self.get_or_create_shorteventid(&pdu.event_id, &mut batch)?;
        batch.put(&self.eventid_outlierpdu, pdu.event_id.as_bytes(), &json)?;
        match outside {
            Outside::Outlier => {}
            Outside::SoftFailed => {
                batch.put(&self.eventid_softfailed, pdu.event_id.as_bytes(), &[])?;
            }
            Outside::Rejected(reason) => {
                batch.put(
                    &self.eventid_rejected,
                    pdu.event_id.as_bytes(),
                    reason.as_bytes(),
                )?;
            }
        }
        if let Some(before) = before {
            let counts = !matches!(outside, Outside::Rejected(_));
            self.save_state_after(pdu, short, before, counts, &mut batch)?;
        }
        self.engine.write(batch)?;
        // A cached parse of it (as an outlier, before its rejection was known) must go.
        self.forget_cached_event(Some(short));
        Ok(())
    }

    /// Applies a redaction accepted into the timeline to its target, if stored, when the
    /// redaction may take effect: from room version 3 its auth rules no longer look at the
    /// target, so it applies only if its sender is on the target sender's server or has the
    /// power to redact others' events.
    pub(super) fn apply_received_redaction(
        &self,
        room_id: &RoomId,
        rules: &RoomVersionRules,
        pdu: &PduEvent,
    ) -> Result<Purge, PduError> {
        let (TimelineEventType::RoomRedaction, Some(target)) = (&pdu.kind, &pdu.redacts) else {
            return Ok(Purge::default());
        };
        let redacts_field = if rules.redaction.content_field_redacts {
            pdu.content_value()["redacts"].as_str().map(str::to_owned)
        } else {
            Some(target.to_string())
        };
        if redacts_field.as_deref() != Some(target.as_str()) {
            return Ok(Purge::default());
        }
        let Some(original) = self.get_pdu(target)? else {
            // The target has not arrived yet: the redaction waits for it.
            self.eventid_pendingredaction
                .insert(&(target.as_str(), pdu.event_id.as_str()).encode(), &[])?;
            return Ok(Purge::default());
        };
        if original
            .room_id
            .as_deref()
            .is_some_and(|room| room != room_id)
        {
            return Ok(Purge::default());
        }
        let same_server = original.sender.server_name() == pdu.sender.server_name();
        if !same_server && !self.has_power(room_id, &pdu.sender, "redact", 50)? {
            return Ok(Purge::default());
        }
        let because = self.redacted_because(room_id, &pdu.event_id)?;
        Ok(self.apply_redaction(room_id, target, because)?)
    }

    /// Applies the redactions that arrived before `pdu`, now that it is placed.
    pub(super) fn apply_pending_redactions(
        &self,
        room_id: &RoomId,
        rules: &RoomVersionRules,
        pdu: &PduEvent,
    ) -> Result<Purge, PduError> {
        let mut purge = Purge::default();
        let pending: Vec<Vec<u8>> = self
            .eventid_pendingredaction
            .scan_prefix((pdu.event_id.as_str(),).prefix())
            .map(|entry| entry.map(|(key, _)| key.to_vec()))
            .collect::<crate::error::Result<_>>()?;
        for key in pending {
            let (_, redaction) = <(&str, ruma::OwnedEventId)>::decode(&key)?;
            if let Some(redaction) = self.get_pdu(&redaction)?
                && self.is_in_timeline(&redaction.event_id)?
            {
                purge.append(self.apply_received_redaction(room_id, rules, &redaction)?);
            }
            self.eventid_pendingredaction.remove(&key)?;
        }
        Ok(purge)
    }
}

/// The create event that room version 12 names by the room ID instead of in `auth_events`.
pub fn implied_create(rules: &RoomVersionRules, pdu: &PduEvent) -> Option<OwnedEventId> {
    if !rules.authorization.room_create_event_id_as_room_id {
        return None;
    }
    let room_id = pdu.room_id.as_ref()?;
    EventId::parse(format!("${}", room_id.strip_sigil())).ok()
}

/// How an event outside the timeline is kept.
enum Outside<'a> {
    Outlier,
    SoftFailed,
    Rejected(&'a str),
}

#[cfg(test)]
mod tests {
    use ruma::RoomVersionId;
    use ruma::events::TimelineEventType;
    use serde_json::json;

    use super::Received;
    use crate::service::Services;
    use crate::service::rooms::PduBuilder;
    use crate::service::rooms::test_room::{self, TestRoom};

    /// Three events as another server would send them, each placed where the rules say: one
    /// accepted into the timeline, one written before a ban that arrives after it
    /// (soft-failed: stored, hidden, not built on), one citing a rejected auth event.
    #[tokio::test]
    async fn received_events_are_placed_by_their_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let services = Services::for_tests(dir.path());
        let rooms = &services.rooms;
        let alice = test_room::user(&services, "alice");
        let bob = test_room::user(&services, "bob");
        let version = RoomVersionId::V11;
        let rules = version.rules().unwrap();
        let TestRoom { room_id, guard, .. } = test_room::alices_room(&services, &version).await;
        let member =
            |membership: &str| test_room::member(&bob, json!({ "membership": membership }));
        rooms
            .build_and_append(member("join"), &bob, &room_id, &guard)
            .unwrap();
        let message = |body: &str| {
            let state = rooms.current_state(&room_id).unwrap();
            rooms
                .build_pdu(
                    &PduBuilder::timeline(
                        TimelineEventType::RoomMessage,
                        json!({ "msgtype": "m.text", "body": body }),
                    ),
                    &bob,
                    Some(&room_id),
                    &rules,
                    &state,
                    rooms.forward_extremities(&room_id).unwrap(),
                    10,
                )
                .unwrap()
        };

        let (object, accepted) = message("accepted");
        let (placed, _) = rooms
            .place_received(&guard, &room_id, &rules, &accepted, object.clone(), None)
            .unwrap();
        assert_eq!(placed, Received::Timeline);
        assert!(rooms.is_in_timeline(&accepted.event_id).unwrap());
        assert_eq!(
            rooms.forward_extremities(&room_id).unwrap(),
            vec![accepted.event_id.clone()]
        );
        let (again, _) = rooms
            .place_received(&guard, &room_id, &rules, &accepted, object, None)
            .unwrap();
        assert_eq!(again, Received::Known, "a second delivery changes nothing");

        let (object, late) = message("written before the ban");
        let ban = rooms
            .build_and_append(member("ban"), &alice, &room_id, &guard)
            .unwrap();
        let (placed, _) = rooms
            .place_received(&guard, &room_id, &rules, &late, object, None)
            .unwrap();
        assert!(matches!(placed, Received::SoftFailed(_)), "{placed:?}");
        assert!(!rooms.is_in_timeline(&late.event_id).unwrap());
        assert!(rooms.is_soft_failed(&late.event_id).unwrap());
        assert_eq!(
            rooms.forward_extremities(&room_id).unwrap(),
            vec![ban.clone()]
        );
        assert!(
            rooms.get_pdu(&late.event_id).unwrap().is_some(),
            "kept for the rules"
        );

        // Bob's message citing the ban as his membership: rejected, and marked so.
        let (object, mut forged) = message("by the ban");
        forged.event_id = ruma::EventId::parse("$forged").unwrap().to_owned();
        let bob_join = forged.auth_events.clone();
        forged.auth_events = bob_join
            .into_iter()
            .map(|id| {
                let pdu = rooms.get_pdu(&id).unwrap().unwrap();
                if pdu.state_key.as_deref() == Some(bob.as_str()) {
                    ban.clone()
                } else {
                    id
                }
            })
            .collect();
        let (placed, _) = rooms
            .place_received(&guard, &room_id, &rules, &forged, object, None)
            .unwrap();
        assert!(matches!(placed, Received::Rejected(_)), "{placed:?}");
        assert!(rooms.rejection(&forged.event_id).unwrap().is_some());
        assert!(rooms.get_pdu(&forged.event_id).unwrap().unwrap().rejected);
        assert_eq!(rooms.forward_extremities(&room_id).unwrap(), vec![ban]);
        guard.release().await;
    }
}
