//! Reads other servers ask for: events in their federation form, the state at an event, auth
//! chains, and walks back through `prev_events` (backfill, missing events).

use std::collections::{BTreeSet, HashSet};

use ruma::{EventId, OwnedEventId, RoomId};
use serde_json::value::RawValue;

use super::Service;
use super::pdu::PduEvent;
use super::state::StateMap;
use crate::error::{Error, Result};

impl Service {
    /// The stored event as other servers receive it, with its parsed form.
    pub fn wire_pdu(&self, event_id: &EventId) -> Result<Option<(PduEvent, Box<RawValue>)>> {
        let Some(json) = self.get_pdu_json(event_id)? else {
            return Ok(None);
        };
        let pdu = PduEvent::from_json(&json)?;
        let rules = match &pdu.room_id {
            Some(room_id) => self.rules(room_id)?,
            // Room version 12's create event: its ID is the room's.
            None => self.rules(
                &RoomId::parse(format!(
                    "!{}",
                    pdu.event_id.as_str().trim_start_matches('$')
                ))
                .map_err(Error::internal)?,
            )?,
        };
        let object = super::wire::wire_object(&json, &rules)?;
        let raw = serde_json::value::to_raw_value(&object).map_err(Error::internal)?;
        Ok(Some((pdu, raw)))
    }

    /// The room state before `event_id` (what `/state_ids` answers): the state after it with
    /// its own entry taken back to the event it replaced. `None` when its state is not known.
    pub fn state_ids_before(&self, event_id: &EventId) -> Result<Option<Vec<OwnedEventId>>> {
        let Some(state) = self.state_map_before(event_id)? else {
            return Ok(None);
        };
        state
            .values()
            .map(|short| self.event_id_of_short(*short))
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// [`Self::state_ids_before`] as a state map.
    pub fn state_map_before(&self, event_id: &EventId) -> Result<Option<StateMap>> {
        let Some(short) = self.shorteventid(event_id)? else {
            return Ok(None);
        };
        let Some(after) = self.state_after_event(short)? else {
            return Ok(None);
        };
        let mut state = StateMap::clone(&after);
        if let Some(json) = self.get_pdu_json(event_id)?
            && let Ok(pdu) = PduEvent::from_json(&json)
            && let Some(state_key) = &pdu.state_key
            && let Some(key) = self.shortstatekey(&pdu.kind.to_string(), state_key)?
            && state.get(&key) == Some(&short)
        {
            let replaced: Option<OwnedEventId> = serde_json::from_slice::<serde_json::Value>(&json)
                .ok()
                .and_then(|v| v["unsigned"]["replaces_state"].as_str().map(str::to_owned))
                .and_then(|id| EventId::parse(id).ok());
            match replaced
                .map(|id| self.shorteventid(&id))
                .transpose()?
                .flatten()
            {
                Some(previous) => {
                    state.insert(key, previous);
                }
                None => {
                    state.remove(&key);
                }
            }
        }
        Ok(Some(state))
    }

    /// Every event reachable from `events` through `auth_events` (and from room version 12
    /// the create event the room ID names), those stored here.
    pub fn auth_chain_ids(&self, events: &[OwnedEventId]) -> Result<Vec<OwnedEventId>> {
        let mut seen: HashSet<OwnedEventId> = HashSet::new();
        let mut todo: Vec<OwnedEventId> = Vec::new();
        let mut rules = None;
        for event in events {
            if let Some(pdu) = self.get_pdu_shared(event)? {
                if rules.is_none()
                    && let Some(room_id) = &pdu.room_id
                {
                    rules = Some(self.rules(room_id)?);
                }
                todo.extend(pdu.auth_events.iter().cloned());
                todo.extend(
                    rules
                        .as_ref()
                        .and_then(|r| super::receive::implied_create(r, &pdu)),
                );
            }
        }
        while let Some(id) = todo.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            if let Some(pdu) = self.get_pdu_shared(&id)? {
                todo.extend(
                    pdu.auth_events
                        .iter()
                        .filter(|a| !seen.contains(*a))
                        .cloned(),
                );
            }
        }
        Ok(seen.into_iter().collect())
    }

    /// Up to `limit` events reached walking back through `prev_events` from `from` (not
    /// past `stop`), newest first by depth. `from` themselves are included when
    /// `include_from` (backfill), not otherwise (missing events).
    pub fn walk_back(
        &self,
        room_id: &RoomId,
        from: &[OwnedEventId],
        stop: &[OwnedEventId],
        include_from: bool,
        limit: usize,
    ) -> Result<Vec<PduEvent>> {
        let stop: HashSet<&EventId> = stop.iter().map(|id| id.as_ref()).collect();
        let mut seen: HashSet<OwnedEventId> = HashSet::new();
        // Ordered by depth, deepest first.
        let mut frontier: BTreeSet<(u64, OwnedEventId)> = BTreeSet::new();
        let mut found = Vec::new();
        let push = |id: &OwnedEventId,
                    frontier: &mut BTreeSet<(u64, OwnedEventId)>,
                    seen: &mut HashSet<OwnedEventId>|
         -> Result<()> {
            if stop.contains::<EventId>(id) || !seen.insert(id.clone()) {
                return Ok(());
            }
            if let Some(pdu) = self.get_pdu(id)?
                && pdu.room_id.as_deref().is_none_or(|room| room == room_id)
                && self.is_in_timeline(id)?
            {
                frontier.insert((u64::from(pdu.depth), id.clone()));
            }
            Ok(())
        };
        for id in from {
            if include_from {
                push(id, &mut frontier, &mut seen)?;
            } else if let Some(pdu) = self.get_pdu(id)? {
                seen.insert(id.clone());
                for prev in &pdu.prev_events {
                    push(prev, &mut frontier, &mut seen)?;
                }
            }
        }
        while found.len() < limit {
            let Some((depth, id)) = frontier.pop_last() else {
                break;
            };
            let _ = depth;
            let Some(pdu) = self.get_pdu(&id)? else {
                continue;
            };
            for prev in &pdu.prev_events {
                push(prev, &mut frontier, &mut seen)?;
            }
            found.push(pdu);
        }
        Ok(found)
    }
}
