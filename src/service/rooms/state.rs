//! Room state snapshots, stored as deltas.
//!
//! A snapshot maps ShortStateKey -> ShortEventId. Each new snapshot is stored as the entries
//! added and removed relative to its parent; every [`MAX_CHAIN`] steps a full snapshot is stored
//! instead so that loading one never walks a long chain. Loaded snapshots are cached.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use ruma::RoomId;

use super::Service;
use crate::error::{Error, Result};
use crate::storage::Batch;
use crate::storage::schema::decode_u64;

/// ShortStateKey -> ShortEventId.
pub type StateMap = BTreeMap<u64, u64>;

/// Longest chain of deltas before a full snapshot is written.
const MAX_CHAIN: u64 = 32;
/// State entries (over all snapshots) kept in memory, about 10 MiB: a count of snapshots would
/// either thrash on an initial sync of many small rooms (each needs its current state and the
/// state before its timeline) or let a few huge rooms take gigabytes. The cache is emptied
/// when full (snapshots are cheap to rebuild).
const CACHE_ENTRIES: usize = 400_000;

#[derive(Default)]
pub struct StateCache {
    snapshots: Mutex<Snapshots>,
}

impl StateCache {
    /// State entries held.
    pub fn entries(&self) -> usize {
        self.snapshots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries
    }

    pub fn clear(&self) {
        *self.snapshots.lock().unwrap_or_else(|e| e.into_inner()) = Snapshots::default();
    }
}

#[derive(Default)]
struct Snapshots {
    by_hash: HashMap<u64, Arc<StateMap>>,
    entries: usize,
}

struct Delta {
    parent: u64,
    depth: u64,
    added: Vec<(u64, u64)>,
    removed: Vec<(u64, u64)>,
}

fn read_pairs(bytes: &[u8]) -> Result<Vec<(u64, u64)>> {
    if !bytes.len().is_multiple_of(16) {
        return Err(Error::Database("state delta entries are misaligned".into()));
    }
    bytes
        .chunks_exact(16)
        .map(|chunk| Ok((decode_u64(&chunk[..8])?, decode_u64(&chunk[8..])?)))
        .collect()
}

impl Delta {
    fn decode(bytes: &[u8]) -> Result<Self> {
        let header = |i: usize| -> Result<u64> {
            decode_u64(
                bytes
                    .get(i * 8..i * 8 + 8)
                    .ok_or_else(|| Error::Database("state delta truncated".into()))?,
            )
        };
        let (parent, depth, added_len) = (header(0)?, header(1)?, header(2)? as usize);
        let body = &bytes[24..];
        let split = added_len
            .checked_mul(16)
            .filter(|n| *n <= body.len())
            .ok_or_else(|| Error::Database("state delta length mismatch".into()))?;
        Ok(Self {
            parent,
            depth,
            added: read_pairs(&body[..split])?,
            removed: read_pairs(&body[split..])?,
        })
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + 16 * (self.added.len() + self.removed.len()));
        out.extend_from_slice(&self.parent.to_be_bytes());
        out.extend_from_slice(&self.depth.to_be_bytes());
        out.extend_from_slice(&(self.added.len() as u64).to_be_bytes());
        for (key, event) in self.added.iter().chain(&self.removed) {
            out.extend_from_slice(&key.to_be_bytes());
            out.extend_from_slice(&event.to_be_bytes());
        }
        out
    }
}

impl Service {
    /// The full state of a snapshot.
    pub fn state_map(&self, shortstatehash: u64) -> Result<Arc<StateMap>> {
        if let Some(found) = self
            .state_cache
            .snapshots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_hash
            .get(&shortstatehash)
        {
            return Ok(Arc::clone(found));
        }
        let bytes = self
            .shortstatehash_statediff
            .get(&shortstatehash.to_be_bytes())?
            .ok_or_else(|| Error::Database(format!("state snapshot {shortstatehash} missing")))?;
        let delta = Delta::decode(&bytes)?;
        let mut state = if delta.parent == 0 {
            StateMap::new()
        } else {
            (*self.state_map(delta.parent)?).clone()
        };
        for (key, _) in &delta.removed {
            state.remove(key);
        }
        state.extend(delta.added.iter().copied());
        let state = Arc::new(state);
        self.cache_state(shortstatehash, &state);
        Ok(state)
    }

    fn cache_state(&self, shortstatehash: u64, state: &Arc<StateMap>) {
        let mut cache = self
            .state_cache
            .snapshots
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if cache.entries + state.len() > CACHE_ENTRIES {
            cache.by_hash.clear();
            cache.entries = 0;
        }
        // One entry at least, so empty snapshots count too.
        cache.entries += state.len().max(1);
        if let Some(replaced) = cache.by_hash.insert(shortstatehash, Arc::clone(state)) {
            cache.entries -= replaced.len().max(1);
        }
    }

    /// Stores `state` as a new snapshot derived from `parent`, returning its ShortStateHash.
    pub(super) fn save_state(
        &self,
        parent: Option<u64>,
        state: StateMap,
        batch: &mut Batch,
    ) -> Result<u64> {
        let shortstatehash = self.engine.next_count()?;
        let parent_info = match parent {
            Some(parent) => {
                let bytes = self
                    .shortstatehash_statediff
                    .get(&parent.to_be_bytes())?
                    .ok_or_else(|| Error::Database(format!("state snapshot {parent} missing")))?;
                Some((
                    parent,
                    Delta::decode(&bytes)?.depth,
                    self.state_map(parent)?,
                ))
            }
            None => None,
        };
        let delta = match parent_info {
            Some((parent, depth, parent_state)) if depth < MAX_CHAIN => {
                let added = state
                    .iter()
                    .filter(|(key, event)| parent_state.get(key) != Some(event))
                    .map(|(k, e)| (*k, *e))
                    .collect();
                let removed = parent_state
                    .iter()
                    .filter(|(key, event)| state.get(key) != Some(event))
                    .map(|(k, e)| (*k, *e))
                    .collect();
                Delta {
                    parent,
                    depth: depth + 1,
                    added,
                    removed,
                }
            }
            _ => Delta {
                parent: 0,
                depth: 0,
                added: state.iter().map(|(k, e)| (*k, *e)).collect(),
                removed: Vec::new(),
            },
        };
        batch.put(
            &self.shortstatehash_statediff,
            &shortstatehash.to_be_bytes(),
            &delta.encode(),
        )?;
        self.cache_state(shortstatehash, &Arc::new(state));
        Ok(shortstatehash)
    }

    /// The ShortStateHash of the room's current state.
    pub fn current_shortstatehash(&self, room_id: &RoomId) -> Result<Option<u64>> {
        self.roomid_shortstatehash
            .get(room_id.as_bytes())?
            .map(|v| decode_u64(&v))
            .transpose()
    }

    /// The room's current state (empty for an unknown room).
    pub fn current_state(&self, room_id: &RoomId) -> Result<Arc<StateMap>> {
        match self.current_shortstatehash(room_id)? {
            Some(hash) => self.state_map(hash),
            None => Ok(Arc::new(StateMap::new())),
        }
    }

    /// The state after the given event.
    pub fn state_after_event(&self, shorteventid: u64) -> Result<Option<Arc<StateMap>>> {
        match self
            .shorteventid_shortstatehash
            .get(&shorteventid.to_be_bytes())?
        {
            Some(hash) => Ok(Some(self.state_map(decode_u64(&hash)?)?)),
            None => Ok(None),
        }
    }

    /// The event holding (type, state key) in `state`, if any.
    pub fn state_event_in(
        &self,
        state: &StateMap,
        event_type: &str,
        state_key: &str,
    ) -> Result<Option<Arc<super::pdu::PduEvent>>> {
        let Some(shortstatekey) = self.shortstatekey(event_type, state_key)? else {
            return Ok(None);
        };
        let Some(shorteventid) = state.get(&shortstatekey) else {
            return Ok(None);
        };
        self.pdu_by_short(*shorteventid)
    }

    /// The current state event for (type, state key) in a room.
    pub fn current_state_event(
        &self,
        room_id: &RoomId,
        event_type: &str,
        state_key: &str,
    ) -> Result<Option<Arc<super::pdu::PduEvent>>> {
        let state = self.current_state(room_id)?;
        self.state_event_in(&state, event_type, state_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_round_trips() {
        let delta = Delta {
            parent: 7,
            depth: 3,
            added: vec![(1, 2), (3, 4)],
            removed: vec![(5, 6)],
        };
        let decoded = Delta::decode(&delta.encode()).unwrap();
        assert_eq!((decoded.parent, decoded.depth), (7, 3));
        assert_eq!(decoded.added, vec![(1, 2), (3, 4)]);
        assert_eq!(decoded.removed, vec![(5, 6)]);
        assert!(Delta::decode(&delta.encode()[..30]).is_err());
    }
}
