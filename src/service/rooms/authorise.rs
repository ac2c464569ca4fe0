//! The authorization rules applied to an event, in the order the spec gives for an event
//! received over federation, with the outcome each failure carries: an event that fails
//! against its own auth events or the state before it is **rejected**; one that passes those
//! but fails against the room's current state is **soft-failed** (kept, never shown to
//! clients, never built upon). Events built here go through the same function.

use std::collections::HashMap;
use std::sync::Arc;

use ruma::events::{StateEventType, TimelineEventType};
use ruma::room_version_rules::RoomVersionRules;
use ruma::state_res::{check_state_dependent_auth_rules, check_state_independent_auth_rules};
use ruma::{EventId, OwnedEventId};

use super::Service;
use super::error::{FirstError, PduError};
use super::pdu::PduEvent;
use super::state::StateMap;

/// What the authorization rules say of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    Accept,
    /// Allowed by its auth events and the state before it, not by the current state.
    SoftFail(String),
    /// Not allowed: the event is stored only as rejected, if at all.
    Reject(String),
}

impl Service {
    /// An event received from another server, checked against, in turn: the
    /// state-independent rules (its auth events are the ones the rules select, none rejected);
    /// the state its auth events describe; the state before it; and `current`, the room's
    /// current state when that differs from the state before it.
    pub fn authorise_received(
        &self,
        rules: &RoomVersionRules,
        pdu: &PduEvent,
        state_before: &StateMap,
        current: Option<&StateMap>,
    ) -> Result<AuthOutcome, PduError> {
        if let Some(rejected) = self.check_independent(rules, pdu)? {
            return Ok(rejected);
        }
        if pdu.kind == TimelineEventType::RoomCreate {
            return Ok(AuthOutcome::Accept);
        }
        let by_auth_events = self.auth_events_state(rules, pdu)?;
        let against_auth_events = check_state_dependent_auth_rules(
            &rules.authorization,
            pdu,
            |kind: &StateEventType, key: &str| {
                by_auth_events
                    .get(&(kind.to_string(), key.to_owned()))
                    .cloned()
            },
        );
        if let Err(reason) = against_auth_events {
            return Ok(AuthOutcome::Reject(format!("by its auth events: {reason}")));
        }
        if let Err(reason) = self.check_against(rules, pdu, state_before)? {
            return Ok(AuthOutcome::Reject(reason));
        }
        if let Some(current) = current
            && let Err(reason) = self.check_against(rules, pdu, current)?
        {
            return Ok(AuthOutcome::SoftFail(reason));
        }
        Ok(AuthOutcome::Accept)
    }

    /// An event built here on every extremity of its room: its auth events were taken from
    /// the state before it, which is the current state, so the checks against them and
    /// against the current state would repeat the one against that state (on every send).
    pub fn authorise_built(
        &self,
        rules: &RoomVersionRules,
        pdu: &PduEvent,
        state_before: &StateMap,
    ) -> Result<AuthOutcome, PduError> {
        if let Some(rejected) = self.check_independent(rules, pdu)? {
            return Ok(rejected);
        }
        if pdu.kind == TimelineEventType::RoomCreate {
            return Ok(AuthOutcome::Accept);
        }
        Ok(match self.check_against(rules, pdu, state_before)? {
            Ok(()) => AuthOutcome::Accept,
            Err(reason) => AuthOutcome::Reject(reason),
        })
    }

    /// Whether an unsigned event template (a `make_join` or `make_leave` answer) would be
    /// allowed by `state`: a join the rules forbid (a ban) is refused before the joining
    /// server signs it.
    pub fn template_allowed(
        &self,
        rules: &RoomVersionRules,
        template: &serde_json::Value,
        state: &StateMap,
    ) -> crate::error::Result<Result<(), String>> {
        let mut event = template.clone();
        event["event_id"] = serde_json::json!("$template:conclave");
        let json = serde_json::to_vec(&event).map_err(crate::error::Error::internal)?;
        let pdu = PduEvent::from_json(&json)?;
        Ok(self.check_against(rules, &pdu, state)?)
    }

    /// The state-independent rules: `Some(rejection)` when they fail.
    pub(super) fn check_independent(
        &self,
        rules: &RoomVersionRules,
        pdu: &PduEvent,
    ) -> Result<Option<AuthOutcome>, PduError> {
        let fault = FirstError::default();
        let independent =
            check_state_independent_auth_rules(&rules.authorization, pdu, |id: &EventId| {
                fault.keep(self.get_pdu_shared(id))
            });
        fault.check()?;
        Ok(independent.err().map(AuthOutcome::Reject))
    }

    /// The state-dependent rules against `state`; the outer error is a storage fault.
    fn check_against(
        &self,
        rules: &RoomVersionRules,
        pdu: &PduEvent,
        state: &StateMap,
    ) -> Result<Result<(), String>, PduError> {
        let fault = FirstError::default();
        let allowed = check_state_dependent_auth_rules(
            &rules.authorization,
            pdu,
            |kind: &StateEventType, key: &str| {
                fault.keep(self.state_event_in(state, &kind.to_string(), key))
            },
        );
        fault.check()?;
        Ok(allowed)
    }

    /// The event's auth events by type and state key (the state-independent check has made
    /// sure they are stored, distinct and of the expected types). From room version 12 the
    /// create event is not among them but named by the room ID, and counts as one.
    pub(super) fn auth_events_state(
        &self,
        rules: &RoomVersionRules,
        pdu: &PduEvent,
    ) -> Result<HashMap<(String, String), Arc<PduEvent>>, PduError> {
        let mut ids: Vec<OwnedEventId> = pdu.auth_events.clone();
        if rules.authorization.room_create_event_id_as_room_id
            && let Some(room_id) = &pdu.room_id
        {
            let create = ruma::EventId::parse(format!("${}", room_id.strip_sigil()))
                .map_err(|e| PduError::Invalid(format!("room ID names no create event: {e}")))?;
            ids.push(create);
        }
        let mut state = HashMap::with_capacity(ids.len());
        for event_id in ids {
            let event = self
                .get_pdu_shared(&event_id)?
                .ok_or_else(|| PduError::Missing(vec![event_id.clone()]))?;
            if let Some(state_key) = &event.state_key {
                state.insert((event.kind.to_string(), state_key.clone()), event);
            }
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use ruma::events::TimelineEventType;
    use ruma::{RoomVersionId, UserId};
    use serde_json::json;

    use super::AuthOutcome;
    use crate::service::Services;
    use crate::service::rooms::PduBuilder;
    use crate::service::rooms::test_room::{self, TestRoom};

    /// Bob writes a message while he is a member; before it arrives, alice bans him. Against
    /// the state before it the message is allowed, against the room's state now it is not:
    /// soft-failed. Against a state where he is banned it is rejected, and so it is when its
    /// auth events say so or leave out what the rules require.
    #[tokio::test]
    async fn outcomes_follow_the_state_each_check_uses() {
        // Version 12 names the create event by the room ID instead of in auth events.
        for version in [RoomVersionId::V11, RoomVersionId::V12] {
            outcomes_in(version).await;
        }
    }

    async fn outcomes_in(version: RoomVersionId) {
        let dir = tempfile::tempdir().unwrap();
        let services = Services::for_tests(dir.path());
        let rooms = &services.rooms;
        let alice = test_room::user(&services, "alice");
        let bob = test_room::user(&services, "bob");
        let rules = version.rules().unwrap();
        let TestRoom { room_id, guard, .. } = test_room::alices_room(&services, &version).await;
        let send = |builder, sender: &UserId| {
            rooms
                .build_and_append(builder, sender, &room_id, &guard)
                .unwrap()
        };
        let member = |user: &UserId, membership: &str| {
            test_room::member(user, json!({ "membership": membership }))
        };
        send(member(&bob, "join"), &bob);

        let joined = rooms.current_state(&room_id).unwrap();
        let (_, message) = rooms
            .build_pdu(
                &PduBuilder::timeline(
                    TimelineEventType::RoomMessage,
                    json!({ "msgtype": "m.text", "body": "hello" }),
                ),
                &bob,
                Some(&room_id),
                &rules,
                &joined,
                rooms.forward_extremities(&room_id).unwrap(),
                10,
            )
            .unwrap();
        let ban = send(member(&bob, "ban"), &alice);
        let banned = rooms.current_state(&room_id).unwrap();

        let outcome = |pdu, before, current| {
            rooms
                .authorise_received(&rules, pdu, before, current)
                .unwrap()
        };
        assert_eq!(outcome(&message, &joined, None), AuthOutcome::Accept);
        assert!(
            matches!(
                outcome(&message, &joined, Some(&banned)),
                AuthOutcome::SoftFail(_)
            ),
            "allowed before, not now: soft-failed"
        );
        assert!(matches!(
            outcome(&message, &banned, None),
            AuthOutcome::Reject(_)
        ));
        // Built here, the one check against the state before it decides.
        assert_eq!(
            rooms.authorise_built(&rules, &message, &joined).unwrap(),
            AuthOutcome::Accept
        );
        assert!(matches!(
            rooms.authorise_built(&rules, &message, &banned).unwrap(),
            AuthOutcome::Reject(_)
        ));

        // Auth events that name the ban instead of bob's join: rejected by them, whatever the
        // state before says.
        let bob_join = rooms
            .state_event_in(&joined, "m.room.member", bob.as_str())
            .unwrap()
            .unwrap()
            .event_id
            .clone();
        let mut by_ban = message.clone();
        for id in &mut by_ban.auth_events {
            if *id == bob_join {
                *id = ban.clone();
            }
        }
        match outcome(&by_ban, &joined, None) {
            AuthOutcome::Reject(reason) => assert!(reason.contains("auth events"), "{reason}"),
            other => panic!("expected a rejection by auth events, got {other:?}"),
        }

        // Without the create event among its auth events (required before room version 12).
        if rules.authorization.room_create_event_id_as_room_id {
            guard.release().await;
            return;
        }
        let create = rooms
            .state_event_in(&joined, "m.room.create", "")
            .unwrap()
            .unwrap()
            .event_id
            .clone();
        let mut without_create = message.clone();
        without_create.auth_events.retain(|id| *id != create);
        assert!(matches!(
            outcome(&without_create, &joined, None),
            AuthOutcome::Reject(_)
        ));
        guard.release().await;
    }
}
