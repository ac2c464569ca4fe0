//! Account data (global and per room, including tags and push rules) and filters: per-user JSON
//! the client stores on the server.

use std::sync::{Arc, Mutex};

use rand::Rng;
use rand::distr::Alphanumeric;
use ruma::{OwnedRoomId, RoomId, UserId};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::storage::{Batch, Engine, Key, Tree};

pub struct Service {
    engine: Arc<Engine>,
    useridroomidtype_accountdata: Tree,
    useridcount_accountdata: Tree,
    useridfilterid_filter: Tree,
    /// Makes read-modify-write of one user's entries (and the change log) atomic.
    write_lock: Mutex<()>,
    /// Parsed push rules per user: every message is checked against each member's rules, and
    /// parsing them (or building the defaults) per member per message dominated sending.
    /// Dropped when the user's `m.push_rules` changes; cleared whole when it grows large.
    push_rules_cache: Mutex<std::collections::HashMap<ruma::OwnedUserId, Arc<ruma::push::Ruleset>>>,
}

/// Users whose parsed push rules are kept (a few KiB each).
const PUSH_RULES_CACHED: usize = 10_000;

impl Service {
    pub fn new(engine: &Arc<Engine>) -> Self {
        Self {
            engine: Arc::clone(engine),
            useridroomidtype_accountdata: engine.tree("useridroomidtype_accountdata"),
            useridcount_accountdata: engine.tree("useridcount_accountdata"),
            useridfilterid_filter: engine.tree("useridfilterid_filter"),
            write_lock: Mutex::new(()),
            push_rules_cache: Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// The content stored for `kind`, globally (`room_id` None) or for one room.
    pub fn get(
        &self,
        user_id: &UserId,
        room_id: Option<&RoomId>,
        kind: &str,
    ) -> Result<Option<Value>> {
        let key = (user_id.as_str(), room_str(room_id), kind).encode();
        let Some(bytes) = self.useridroomidtype_accountdata.get(&key)? else {
            return Ok(None);
        };
        let content = bytes
            .get(8..)
            .ok_or_else(|| Error::Database("account data entry too short".into()))?;
        Ok(Some(serde_json::from_slice(content)?))
    }

    /// Stores `content` and records the change under a new stream position.
    pub fn set(
        &self,
        user_id: &UserId,
        room_id: Option<&RoomId>,
        kind: &str,
        content: &Value,
    ) -> Result<()> {
        let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        if kind == "m.push_rules" && room_id.is_none() {
            self.push_rules_cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(user_id);
        }
        let room = room_str(room_id);
        let key = (user_id.as_str(), room, kind).encode();
        let mut batch = Batch::default();
        if let Some(old) = self.useridroomidtype_accountdata.get(&key)?
            && let Some(old_count) = old.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok())
        {
            let old_count = u64::from_be_bytes(old_count);
            batch.delete(
                &self.useridcount_accountdata,
                &(user_id.as_str(), old_count).encode(),
            )?;
        }
        let _writing = self.engine.begin_write();
        let count = self.engine.next_count()?;
        let mut value = count.to_be_bytes().to_vec();
        value.extend_from_slice(content.to_string().as_bytes());
        batch.put(&self.useridroomidtype_accountdata, &key, &value)?;
        batch.put(
            &self.useridcount_accountdata,
            &(user_id.as_str(), count).encode(),
            &(room, kind).encode(),
        )?;
        self.engine.write(batch)
    }

    /// Account data changed after `since`: (room or None for global, type), oldest first.
    pub fn changed_since(
        &self,
        user_id: &UserId,
        since: u64,
    ) -> Result<Vec<(Option<OwnedRoomId>, String)>> {
        let prefix = (user_id.as_str(),).prefix();
        let start = (user_id.as_str(), since.saturating_add(1)).encode();
        let mut changed = Vec::new();
        for entry in self
            .useridcount_accountdata
            .iter_from(&start, rocksdb::Direction::Forward)
        {
            let (key, value) = entry?;
            if !key.starts_with(&prefix) {
                break;
            }
            let (room, kind) = <(String, String)>::decode(&value)?;
            let room = if room.is_empty() {
                None
            } else {
                Some(crate::storage::decode_id(room.as_bytes())?)
            };
            changed.push((room, kind));
        }
        Ok(changed)
    }

    /// Resolves when the user's account data changes.
    pub fn watch(&self, user_id: &UserId) -> impl Future<Output = ()> + Send + use<> {
        self.useridcount_accountdata
            .watch_prefix(&(user_id.as_str(),).prefix())
    }

    /// The user's push rules (the stored set, or the server defaults), parsed once and shared
    /// until they change.
    pub fn push_rules_shared(&self, user_id: &UserId) -> Result<Arc<ruma::push::Ruleset>> {
        if let Some(rules) = self
            .push_rules_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(user_id)
        {
            return Ok(Arc::clone(rules));
        }
        // Read under the write lock, so a concurrent change cannot be cached over.
        let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let rules = Arc::new(self.push_rules(user_id)?);
        let mut cache = self
            .push_rules_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if cache.len() >= PUSH_RULES_CACHED {
            cache.clear();
        }
        cache.insert(user_id.to_owned(), Arc::clone(&rules));
        Ok(rules)
    }

    pub fn push_rules(&self, user_id: &UserId) -> Result<ruma::push::Ruleset> {
        let stored = self.get(user_id, None, "m.push_rules")?;
        match stored.and_then(|mut content| content.get_mut("global").map(Value::take)) {
            Some(global) => Ok(serde_json::from_value(global)?),
            None => Ok(ruma::push::Ruleset::server_default(user_id)),
        }
    }

    /// Stores a filter and returns its new ID.
    pub fn create_filter(&self, user_id: &UserId, filter: &Value) -> Result<String> {
        let filter_id: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(12)
            .map(char::from)
            .collect();
        self.useridfilterid_filter.insert(
            &(user_id.as_str(), filter_id.as_str()).encode(),
            filter.to_string().as_bytes(),
        )?;
        Ok(filter_id)
    }

    pub fn filter(&self, user_id: &UserId, filter_id: &str) -> Result<Option<Value>> {
        self.useridfilterid_filter
            .get_json(&(user_id.as_str(), filter_id).encode())
    }
}

fn room_str(room_id: Option<&RoomId>) -> &str {
    room_id.map_or("", RoomId::as_str)
}
