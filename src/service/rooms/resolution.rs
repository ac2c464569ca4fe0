//! State resolution (room versions' v2 / v2.1 algorithm, via ruma) for an event whose
//! `prev_events` carry different states: the state before it is their resolution.
//!
//! Events this server creates alone always have one parent (appends are serialized per room);
//! several forward extremities arise once other servers add events concurrently.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ruma::room_version_rules::{RoomVersionRules, StateResolutionVersion};
use ruma::state_res::utils::event_id_set::EventIdSet;
use ruma::state_res::{StateMap as RumaStateMap, resolve};
use ruma::{EventId, OwnedEventId, RoomId};

use super::Service;
use super::error::{FirstError, PduError};
use super::pdu::PduEvent;
use super::state::StateMap;
use crate::storage::schema::decode_u64;

/// The state before an event.
pub(super) struct StateBefore {
    pub state: Arc<StateMap>,
    /// The stored snapshot holding exactly this state; `None` when it was just resolved from
    /// its parents' (it is saved with the event, so an event refused leaves nothing behind).
    pub hash: Option<u64>,
    /// A stored snapshot to save the states after the event against.
    pub base: Option<u64>,
}

impl StateBefore {
    /// The state before a room's create event.
    pub fn empty() -> Self {
        Self {
            state: Arc::new(StateMap::new()),
            hash: None,
            base: None,
        }
    }
}

/// An event being stored in the batch at hand, so not yet readable from disk, that a
/// resolution may meet (the current state after it is resolved in the same batch).
#[derive(Clone, Copy)]
pub(super) struct Pending<'a> {
    pub short: u64,
    pub pdu: &'a PduEvent,
}

impl Service {
    fn id_of_short(
        &self,
        short: u64,
        pending: Option<Pending<'_>>,
    ) -> crate::error::Result<OwnedEventId> {
        match pending {
            Some(p) if p.short == short => Ok(p.pdu.event_id.clone()),
            _ => self.event_id_of_short(short),
        }
    }

    fn pdu_of(
        &self,
        id: &EventId,
        pending: Option<Pending<'_>>,
    ) -> crate::error::Result<Option<PduEvent>> {
        match pending {
            Some(p) if p.pdu.event_id == id => Ok(Some(p.pdu.clone())),
            _ => self.get_pdu(id),
        }
    }

    fn short_of(
        &self,
        id: &EventId,
        pending: Option<Pending<'_>>,
    ) -> crate::error::Result<Option<u64>> {
        match pending {
            Some(p) if p.pdu.event_id == id => Ok(Some(p.short)),
            _ => self.shorteventid(id),
        }
    }

    /// The state before an event with these `prev_events`.
    pub(super) fn state_before_events(
        &self,
        room_id: &RoomId,
        rules: &RoomVersionRules,
        prev_events: &[OwnedEventId],
    ) -> Result<StateBefore, PduError> {
        let mut hashes = Vec::new();
        let mut missing = Vec::new();
        for prev in prev_events {
            let hash = match self.shorteventid(prev)? {
                Some(short) => self.shorteventid_shortstatehash.get(&short.to_be_bytes())?,
                None => None,
            };
            match hash {
                Some(hash) => hashes.push(decode_u64(&hash)?),
                None => missing.push(prev.clone()),
            }
        }
        if !missing.is_empty() {
            return Err(PduError::Missing(missing));
        }
        hashes.sort_unstable();
        hashes.dedup();
        let stored = |hash: Option<u64>| -> Result<StateBefore, PduError> {
            Ok(StateBefore {
                state: match hash {
                    Some(hash) => self.state_map(hash)?,
                    None => Arc::new(StateMap::new()),
                },
                hash,
                base: hash,
            })
        };
        match hashes.as_slice() {
            [] => stored(self.current_shortstatehash(room_id)?),
            [one] => stored(Some(*one)),
            forks => {
                let states = forks
                    .iter()
                    .map(|hash| self.state_map(*hash))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(StateBefore {
                    state: Arc::new(self.resolve_states(rules, &states, None)?),
                    hash: None,
                    base: Some(forks[0]),
                })
            }
        }
    }

    /// One state from several (the spec's state resolution for the room's version).
    pub(super) fn resolve_states(
        &self,
        rules: &RoomVersionRules,
        forks: &[Arc<StateMap>],
        pending: Option<Pending<'_>>,
    ) -> Result<StateMap, PduError> {
        let StateResolutionVersion::V2(v2_rules) = &rules.state_res else {
            return Err(PduError::Unsupported(
                "state resolution v1 (room version 1)".to_owned(),
            ));
        };
        let mut maps = Vec::with_capacity(forks.len());
        let mut chains = Vec::with_capacity(forks.len());
        for state in forks {
            let mut map = RumaStateMap::new();
            let mut events = Vec::with_capacity(state.len());
            for (shortstatekey, shorteventid) in state.iter() {
                let (kind, state_key) = self.statekey_of_short(*shortstatekey)?;
                let event_id = self.id_of_short(*shorteventid, pending)?;
                map.insert((kind.as_str().into(), state_key), event_id.clone());
                events.push(event_id);
            }
            chains.push(self.auth_chain(&events, pending)?);
            maps.push(map);
        }
        let fetch_fault = FirstError::default();
        let subgraph_fault = FirstError::default();
        let resolved = resolve(
            &rules.authorization,
            v2_rules,
            maps.iter(),
            chains,
            |id: &EventId| fetch_fault.keep(self.pdu_of(id, pending)),
            |conflicted: &RumaStateMap<Vec<OwnedEventId>>| {
                subgraph_fault.keep(self.conflicted_subgraph(conflicted, pending).map(Some))
            },
        );
        fetch_fault.check()?;
        subgraph_fault.check()?;
        let resolved = resolved
            .map_err(|e| crate::error::Error::internal(format!("state resolution failed: {e}")))?;

        let mut state = StateMap::new();
        for ((kind, state_key), event_id) in resolved {
            let shortstatekey = self.get_or_create_shortstatekey(&kind.to_string(), &state_key)?;
            let shorteventid = self
                .short_of(&event_id, pending)?
                .ok_or_else(|| PduError::Missing(vec![event_id.clone()]))?;
            state.insert(shortstatekey, shorteventid);
        }
        Ok(state)
    }

    /// All events reachable from `events` through `auth_events` (not the events themselves).
    /// Every one must be stored here: a gap would resolve state wrongly rather than fail.
    pub(super) fn auth_chain(
        &self,
        events: &[OwnedEventId],
        pending: Option<Pending<'_>>,
    ) -> Result<EventIdSet<OwnedEventId>, PduError> {
        let mut chain = EventIdSet::new();
        let mut todo: Vec<OwnedEventId> = Vec::new();
        let mut missing = Vec::new();
        for event in events {
            match self.pdu_of(event, pending)? {
                Some(pdu) => todo.extend(pdu.auth_events),
                None => missing.push(event.clone()),
            }
        }
        while let Some(event_id) = todo.pop() {
            if chain.contains(&event_id) {
                continue;
            }
            match self.pdu_of(&event_id, pending)? {
                Some(pdu) => todo.extend(
                    pdu.auth_events
                        .iter()
                        .filter(|id| !chain.contains(id))
                        .cloned(),
                ),
                None => missing.push(event_id.clone()),
            }
            chain.insert(event_id);
        }
        if !missing.is_empty() {
            return Err(PduError::Missing(missing));
        }
        Ok(chain)
    }

    /// The conflicted state subgraph (state resolution v2.1): events on an auth-event path
    /// between two conflicted events, the conflicted events included. Walked with explicit
    /// work lists, not recursion: a peer chooses how deep an auth chain is.
    fn conflicted_subgraph(
        &self,
        conflicted: &RumaStateMap<Vec<OwnedEventId>>,
        pending: Option<Pending<'_>>,
    ) -> Result<EventIdSet<OwnedEventId>, PduError> {
        let conflicted: HashSet<OwnedEventId> = conflicted.values().flatten().cloned().collect();
        // Everything above the conflicted events (them included), with each one's children
        // among them.
        let mut above: HashSet<OwnedEventId> = HashSet::new();
        let mut children: HashMap<OwnedEventId, Vec<OwnedEventId>> = HashMap::new();
        let mut missing = Vec::new();
        let mut todo: Vec<OwnedEventId> = conflicted.iter().cloned().collect();
        while let Some(event_id) = todo.pop() {
            if !above.insert(event_id.clone()) {
                continue;
            }
            let Some(pdu) = self.pdu_of(&event_id, pending)? else {
                missing.push(event_id);
                continue;
            };
            for parent in pdu.auth_events {
                children
                    .entry(parent.clone())
                    .or_default()
                    .push(event_id.clone());
                todo.push(parent);
            }
        }
        if !missing.is_empty() {
            return Err(PduError::Missing(missing));
        }
        // Of those, the ones at or below a conflicted event: walk down from each.
        let mut subgraph = EventIdSet::new();
        let mut todo: Vec<OwnedEventId> = conflicted.into_iter().collect();
        while let Some(event_id) = todo.pop() {
            if subgraph.contains(&event_id) {
                continue;
            }
            if let Some(below) = children.get(&event_id) {
                todo.extend(
                    below
                        .iter()
                        .filter(|child| !subgraph.contains(child))
                        .cloned(),
                );
            }
            subgraph.insert(event_id);
        }
        Ok(subgraph)
    }
}

#[cfg(test)]
mod tests {
    use ruma::events::TimelineEventType;
    use ruma::{RoomVersionId, UserId};
    use serde_json::{Value, json};

    use crate::service::Services;
    use crate::service::rooms::PduBuilder;
    use crate::service::rooms::test_room::{self, TestRoom, member};

    /// Two concurrent branches (as federation produces them) are merged by the next event:
    /// state set only on one branch survives from each.
    #[tokio::test]
    async fn forks_are_merged_by_state_resolution() {
        for version in [RoomVersionId::V10, RoomVersionId::V12] {
            let dir = tempfile::tempdir().unwrap();
            let services = Services::for_tests(dir.path());
            let alice = test_room::user(&services, "alice");
            let rooms = &services.rooms;
            let TestRoom {
                room_id,
                guard,
                head,
            } = test_room::alices_room(&services, &version).await;
            let send = |builder| {
                rooms
                    .build_and_append(builder, &alice, &room_id, &guard)
                    .unwrap()
            };

            // Branch A sets the topic; branch B, concurrently from the same parent, the name.
            send(PduBuilder::state(
                TimelineEventType::RoomTopic,
                "",
                json!({ "topic": "from A" }),
            ));
            rooms
                .build_and_append_after(
                    PduBuilder::state(TimelineEventType::RoomName, "", json!({ "name": "from B" })),
                    &alice,
                    &room_id,
                    &guard,
                    vec![head],
                )
                .unwrap();
            assert_eq!(rooms.forward_extremities(&room_id).unwrap().len(), 2);

            let merge = send(PduBuilder::timeline(
                TimelineEventType::RoomMessage,
                json!({ "body": "hi" }),
            ));
            let pdu = rooms.get_pdu(&merge).unwrap().unwrap();
            assert_eq!(
                pdu.prev_events.len(),
                2,
                "the merge event references both branches"
            );
            assert_eq!(
                rooms.forward_extremities(&room_id).unwrap(),
                vec![merge.clone()]
            );
            let field = |kind: &str, key: &str| -> Value {
                rooms
                    .current_state_event(&room_id, kind, "")
                    .unwrap()
                    .unwrap()
                    .content_value()[key]
                    .clone()
            };
            assert_eq!(
                field("m.room.topic", "topic"),
                json!("from A"),
                "room version {version}"
            );
            assert_eq!(
                field("m.room.name", "name"),
                json!("from B"),
                "room version {version}"
            );

            // Forks merged by a state event: its state after is the resolution plus itself.
            send(PduBuilder::state(
                TimelineEventType::RoomTopic,
                "",
                json!({ "topic": "from C" }),
            ));
            rooms
                .build_and_append_after(
                    PduBuilder::state(TimelineEventType::RoomName, "", json!({ "name": "from D" })),
                    &alice,
                    &room_id,
                    &guard,
                    vec![merge],
                )
                .unwrap();
            let avatar = send(PduBuilder::state(
                TimelineEventType::RoomAvatar,
                "",
                json!({ "url": "mxc://localhost/merged" }),
            ));
            assert_eq!(
                rooms.get_pdu(&avatar).unwrap().unwrap().prev_events.len(),
                2
            );
            assert_eq!(field("m.room.topic", "topic"), json!("from C"));
            assert_eq!(field("m.room.name", "name"), json!("from D"));
            assert_eq!(
                field("m.room.avatar", "url"),
                json!("mxc://localhost/merged")
            );
            guard.release().await;
        }
    }

    /// An event whose parents are not stored here is a gap to fill, named as such — not a
    /// server error, and not a state silently computed without them.
    #[tokio::test]
    async fn unknown_parents_are_reported_missing() {
        let dir = tempfile::tempdir().unwrap();
        let services = Services::for_tests(dir.path());
        let rooms = &services.rooms;
        let version = RoomVersionId::V11;
        let TestRoom { room_id, guard, .. } = test_room::alices_room(&services, &version).await;
        let known = rooms.forward_extremities(&room_id).unwrap();
        let unknown = ruma::OwnedEventId::try_from("$notstoredhere").unwrap();
        let prevs = vec![known[0].clone(), unknown.clone()];
        let rules = version.rules().unwrap();
        match rooms.state_before_events(&room_id, &rules, &prevs) {
            Err(crate::service::rooms::error::PduError::Missing(ids)) => {
                assert_eq!(ids, vec![unknown])
            }
            other => panic!(
                "expected Missing, got {:?}",
                other.map(|before| before.hash)
            ),
        }
        guard.release().await;
    }

    /// Alice bans bob while, on a branch from before the ban, bob changes his display name.
    /// The room's current state is the resolution of both branches (the ban stands), not the
    /// state after the newest event, and bob's membership follows it, not his event.
    #[tokio::test]
    async fn current_state_and_membership_follow_the_resolution() {
        let dir = tempfile::tempdir().unwrap();
        let services = Services::for_tests(dir.path());
        let alice = test_room::user(&services, "alice");
        let bob = test_room::user(&services, "bob");
        let rooms = &services.rooms;
        let TestRoom { room_id, guard, .. } =
            test_room::alices_room(&services, &RoomVersionId::V11).await;
        let send = |builder, sender: &UserId| {
            rooms
                .build_and_append(builder, sender, &room_id, &guard)
                .unwrap()
        };
        let joined = send(member(&bob, json!({ "membership": "join" })), &bob);

        let ban = send(member(&bob, json!({ "membership": "ban" })), &alice);
        rooms
            .build_and_append_after(
                member(
                    &bob,
                    json!({ "membership": "join", "displayname": "Bobby" }),
                ),
                &bob,
                &room_id,
                &guard,
                vec![joined],
            )
            .unwrap();
        assert_eq!(rooms.forward_extremities(&room_id).unwrap().len(), 2);

        let current = rooms
            .current_state_event(&room_id, "m.room.member", bob.as_str())
            .unwrap()
            .unwrap();
        assert_eq!(current.event_id, ban, "the ban stands in the current state");
        assert_eq!(
            rooms.membership(&bob, &room_id).unwrap().as_deref(),
            Some("ban")
        );
        assert!(!rooms.is_joined(&bob, &room_id).unwrap());
        guard.release().await;
    }
}
