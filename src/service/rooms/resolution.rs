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
use super::state::StateMap;
use crate::error::{Error, Result};
use crate::storage::Batch;
use crate::storage::schema::decode_u64;

impl Service {
    /// The state before an event with these `prev_events`, and its snapshot ID.
    pub(super) fn state_before_events(
        &self,
        room_id: &RoomId,
        rules: &RoomVersionRules,
        prev_events: &[OwnedEventId],
    ) -> Result<(Option<u64>, Arc<StateMap>)> {
        let mut hashes = Vec::new();
        for prev in prev_events {
            let short = self
                .shorteventid(prev)?
                .ok_or_else(|| Error::internal(format!("unknown prev event {prev}")))?;
            let hash = self
                .shorteventid_shortstatehash
                .get(&short.to_be_bytes())?
                .ok_or_else(|| Error::internal(format!("no state recorded after {prev}")))?;
            hashes.push(decode_u64(&hash)?);
        }
        hashes.sort_unstable();
        hashes.dedup();
        match hashes.as_slice() {
            [] => Ok((
                self.current_shortstatehash(room_id)?,
                self.current_state(room_id)?,
            )),
            [one] => Ok((Some(*one), self.state_map(*one)?)),
            forks => {
                let resolved = self.resolve_forks(rules, forks)?;
                let mut batch = Batch::default();
                let hash = self.save_state(Some(forks[0]), resolved.clone(), &mut batch)?;
                self.engine.write(batch)?;
                Ok((Some(hash), Arc::new(resolved)))
            }
        }
    }

    fn resolve_forks(&self, rules: &RoomVersionRules, forks: &[u64]) -> Result<StateMap> {
        let StateResolutionVersion::V2(v2_rules) = &rules.state_res else {
            return Err(Error::internal("state resolution v1 is not supported"));
        };
        let mut maps = Vec::with_capacity(forks.len());
        let mut chains = Vec::with_capacity(forks.len());
        for hash in forks {
            let state = self.state_map(*hash)?;
            let mut map = RumaStateMap::new();
            let mut events = Vec::with_capacity(state.len());
            for (shortstatekey, shorteventid) in state.iter() {
                let (kind, state_key) = self.statekey_of_short(*shortstatekey)?;
                let event_id = self.event_id_of_short(*shorteventid)?;
                map.insert((kind.as_str().into(), state_key), event_id.clone());
                events.push(event_id);
            }
            chains.push(self.auth_chain(&events)?);
            maps.push(map);
        }
        let resolved = resolve(
            &rules.authorization,
            v2_rules,
            maps.iter(),
            chains,
            |id: &EventId| self.get_pdu(id).ok().flatten(),
            |conflicted: &RumaStateMap<Vec<OwnedEventId>>| {
                self.conflicted_subgraph(conflicted).ok()
            },
        )
        .map_err(|e| Error::internal(format!("state resolution failed: {e}")))?;

        let mut state = StateMap::new();
        for ((kind, state_key), event_id) in resolved {
            let shortstatekey = self.get_or_create_shortstatekey(&kind.to_string(), &state_key)?;
            let shorteventid = self
                .shorteventid(&event_id)?
                .ok_or_else(|| Error::internal(format!("resolved to unknown {event_id}")))?;
            state.insert(shortstatekey, shorteventid);
        }
        Ok(state)
    }

    /// All events reachable from `events` through `auth_events` (not the events themselves).
    pub fn auth_chain(&self, events: &[OwnedEventId]) -> Result<EventIdSet<OwnedEventId>> {
        let mut chain = EventIdSet::new();
        let mut todo: Vec<OwnedEventId> = Vec::new();
        for event in events {
            if let Some(pdu) = self.get_pdu(event)? {
                todo.extend(pdu.auth_events);
            }
        }
        while let Some(event_id) = todo.pop() {
            if chain.contains(&event_id) {
                continue;
            }
            if let Some(pdu) = self.get_pdu(&event_id)? {
                todo.extend(
                    pdu.auth_events
                        .iter()
                        .filter(|id| !chain.contains(id))
                        .cloned(),
                );
            }
            chain.insert(event_id);
        }
        Ok(chain)
    }

    /// The conflicted state subgraph (state resolution v2.1): events on an auth-event path
    /// between two conflicted events, the conflicted events included.
    fn conflicted_subgraph(
        &self,
        conflicted: &RumaStateMap<Vec<OwnedEventId>>,
    ) -> Result<EventIdSet<OwnedEventId>> {
        let conflicted: HashSet<OwnedEventId> = conflicted.values().flatten().cloned().collect();
        // Everything above the conflicted events, with each event's auth parents.
        let mut parents: HashMap<OwnedEventId, Vec<OwnedEventId>> = HashMap::new();
        let mut todo: Vec<OwnedEventId> = conflicted.iter().cloned().collect();
        while let Some(event_id) = todo.pop() {
            if parents.contains_key(&event_id) {
                continue;
            }
            let auth = self
                .get_pdu(&event_id)?
                .map(|pdu| pdu.auth_events)
                .unwrap_or_default();
            todo.extend(auth.iter().cloned());
            parents.insert(event_id, auth);
        }
        // An event belongs if a conflicted event is it or lies above it.
        let mut reaches: HashMap<OwnedEventId, bool> = HashMap::new();
        fn reaches_conflicted(
            event: &OwnedEventId,
            parents: &HashMap<OwnedEventId, Vec<OwnedEventId>>,
            conflicted: &HashSet<OwnedEventId>,
            memo: &mut HashMap<OwnedEventId, bool>,
        ) -> bool {
            if let Some(known) = memo.get(event) {
                return *known;
            }
            memo.insert(event.clone(), false);
            let result = conflicted.contains(event)
                || parents.get(event).is_some_and(|ps| {
                    ps.iter()
                        .any(|p| reaches_conflicted(p, parents, conflicted, memo))
                });
            memo.insert(event.clone(), result);
            result
        }
        let mut subgraph = EventIdSet::new();
        for event in parents.keys() {
            if reaches_conflicted(event, &parents, &conflicted, &mut reaches) {
                subgraph.insert(event.clone());
            }
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

    /// Two concurrent branches (as federation produces them) are merged by the next event:
    /// state set only on one branch survives from each.
    #[tokio::test]
    async fn forks_are_merged_by_state_resolution() {
        for version in [RoomVersionId::V10, RoomVersionId::V12] {
            let dir = tempfile::tempdir().unwrap();
            let services = Services::for_tests(dir.path());
            let alice = UserId::parse("@alice:localhost").unwrap();
            services.users.create_account(&alice, "x", None).unwrap();
            let rooms = &services.rooms;

            let mut create = json!({ "room_version": version });
            if version == RoomVersionId::V10 {
                create["creator"] = json!(alice);
            }
            let (room_id, guard) = rooms.create_room(&alice, &version, create).await.unwrap();
            let send = |builder| {
                rooms
                    .build_and_append(builder, &alice, &room_id, &guard)
                    .unwrap()
            };
            send(PduBuilder::state(
                TimelineEventType::RoomMember,
                alice.as_str(),
                json!({ "membership": "join" }),
            ));
            let mut power = json!({ "users": {} });
            if version == RoomVersionId::V10 {
                power["users"][alice.as_str()] = json!(100);
            }
            let head = send(PduBuilder::state(
                TimelineEventType::RoomPowerLevels,
                "",
                power,
            ));

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
            assert_eq!(rooms.forward_extremities(&room_id).unwrap(), vec![merge]);
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
        }
    }
}
