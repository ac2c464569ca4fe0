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
    /// Parsed push rules and ignored users per user: every message is checked against each
    /// member's rules (and whether they ignore the sender), and parsing them per member per
    /// message dominated sending. Dropped when the user's `m.push_rules` or
    /// `m.ignored_user_list` changes; cleared whole when it grows large.
    settings_cache: Mutex<std::collections::HashMap<ruma::OwnedUserId, Arc<UserSettings>>>,
}

/// The users someone ignores. Their events are not shown to that user, except state events
/// (so the room's name and members look the same to everyone), and neither are their invites.
#[derive(Debug, Default, Clone)]
pub struct IgnoredUsers(Arc<std::collections::HashSet<ruma::OwnedUserId>>);

/// What is read of a user's account data for every message sent to them.
pub struct UserSettings {
    pub push_rules: ruma::push::Ruleset,
    pub ignored: IgnoredUsers,
}

impl IgnoredUsers {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, user: &str) -> bool {
        !self.0.is_empty() && ruma::UserId::parse(user).is_ok_and(|user| self.0.contains(&user))
    }

    /// Whether an event of `sender` is hidden: any but a state event.
    pub fn hides(&self, sender: &str, is_state: bool) -> bool {
        !is_state && self.contains(sender)
    }
}

/// Users whose parsed settings are kept (a few KiB each).
const SETTINGS_CACHED: usize = 10_000;

impl Service {
    pub fn new(engine: &Arc<Engine>) -> Self {
        Self {
            engine: Arc::clone(engine),
            useridroomidtype_accountdata: engine.tree("useridroomidtype_accountdata"),
            useridcount_accountdata: engine.tree("useridcount_accountdata"),
            useridfilterid_filter: engine.tree("useridfilterid_filter"),
            write_lock: Mutex::new(()),
            settings_cache: Mutex::new(std::collections::HashMap::new()),
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
        if matches!(kind, "m.push_rules" | "m.ignored_user_list") && room_id.is_none() {
            self.settings_cache
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

    /// The users `user_id` ignores (`m.ignored_user_list`), as of now: read per request by
    /// what hides their events, so a change takes effect at the next sync.
    pub fn ignored_users(&self, user_id: &UserId) -> Result<IgnoredUsers> {
        Ok(self.settings(user_id)?.ignored.clone())
    }

    /// The user's push rules (the stored set, or the server defaults) and whom they ignore,
    /// parsed once and shared until they change.
    pub fn settings(&self, user_id: &UserId) -> Result<Arc<UserSettings>> {
        if let Some(settings) = self
            .settings_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(user_id)
        {
            return Ok(Arc::clone(settings));
        }
        // Read under the write lock, so a concurrent change cannot be cached over.
        let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut ignored = std::collections::HashSet::new();
        if let Some(content) = self.get(user_id, None, "m.ignored_user_list")? {
            let users = content["ignored_users"].as_object().into_iter().flatten();
            for (user, _) in users {
                if let Ok(user) = ruma::UserId::parse(user.as_str()) {
                    ignored.insert(user);
                }
            }
        }
        let settings = Arc::new(UserSettings {
            push_rules: self.push_rules(user_id)?,
            ignored: IgnoredUsers(Arc::new(ignored)),
        });
        let mut cache = self
            .settings_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if cache.len() >= SETTINGS_CACHED {
            cache.clear();
        }
        cache.insert(user_id.to_owned(), Arc::clone(&settings));
        Ok(settings)
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
