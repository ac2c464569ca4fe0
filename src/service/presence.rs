//! Presence: online, unavailable or offline, with a status message and last activity. Kept
//! per user, with a change log that /sync reads for the users sharing a room with the reader.
//! Activity alone is recorded at most once a minute, so busy clients do not write on every
//! request.

use std::sync::{Arc, Mutex};

use ruma::{OwnedUserId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::Result;
use crate::service::now_millis;
use crate::storage::schema::decode_u64;
use crate::storage::{Batch, Engine, Tree, decode_id};

/// Online users idle this long are reported as unavailable.
const IDLE_MS: u64 = 5 * 60 * 1000;
/// Activity is stored at most this often.
const ACTIVITY_WRITE_MS: u64 = 60 * 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredPresence {
    presence: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status_msg: Option<String>,
    last_active_ts: u64,
    count: u64,
}

pub struct Service {
    engine: Arc<Engine>,
    userid_presence: Tree,
    count_presenceuserid: Tree,
    write_lock: Mutex<()>,
}

impl Service {
    pub fn new(engine: &Arc<Engine>) -> Self {
        Self {
            engine: Arc::clone(engine),
            userid_presence: engine.tree("userid_presence"),
            count_presenceuserid: engine.tree("count_presenceuserid"),
            write_lock: Mutex::new(()),
        }
    }

    /// Sets the user's presence (and, if given, status message). `None` keeps the message.
    /// Answers whether anything was written (a change, or activity not recorded for a while):
    /// what other servers must hear.
    pub fn set(
        &self,
        user_id: &UserId,
        presence: &str,
        status_msg: Option<Option<String>>,
    ) -> Result<bool> {
        self.set_at(user_id, presence, status_msg, now_millis())
    }

    /// A remote user's presence as their server told it: active `last_active_ago` ms ago.
    pub fn set_remote(
        &self,
        user_id: &UserId,
        presence: &str,
        status_msg: Option<String>,
        last_active_ago: u64,
    ) -> Result<bool> {
        let at = now_millis().saturating_sub(last_active_ago);
        self.set_at(user_id, presence, Some(status_msg), at)
    }

    fn set_at(
        &self,
        user_id: &UserId,
        presence: &str,
        status_msg: Option<Option<String>>,
        now: u64,
    ) -> Result<bool> {
        let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let _writing = self.engine.begin_write();
        let current: Option<StoredPresence> = self.userid_presence.get_json(user_id.as_bytes())?;
        let status = match status_msg {
            Some(status) => status,
            None => current.as_ref().and_then(|c| c.status_msg.clone()),
        };
        if let Some(current) = &current
            && current.presence == presence
            && current.status_msg == status
            && now.saturating_sub(current.last_active_ts) < ACTIVITY_WRITE_MS
        {
            return Ok(false);
        }
        let changed = current
            .as_ref()
            .is_none_or(|c| c.presence != presence || c.status_msg != status);
        let mut batch = Batch::default();
        let count = match (&current, changed) {
            (Some(current), false) => current.count,
            _ => {
                if let Some(current) = &current {
                    batch.delete(&self.count_presenceuserid, &current.count.to_be_bytes())?;
                }
                let count = self.engine.next_count()?;
                batch.put(
                    &self.count_presenceuserid,
                    &count.to_be_bytes(),
                    user_id.as_bytes(),
                )?;
                count
            }
        };
        let stored = StoredPresence {
            presence: presence.to_owned(),
            status_msg: status,
            last_active_ts: now,
            count,
        };
        batch.put(
            &self.userid_presence,
            user_id.as_bytes(),
            &serde_json::to_vec(&stored)?,
        )?;
        self.engine.write(batch)?;
        Ok(true)
    }

    /// The presence content clients see (`presence`, `last_active_ago`, ...), if ever set.
    pub fn get(&self, user_id: &UserId) -> Result<Option<Value>> {
        let Some(stored) = self
            .userid_presence
            .get_json::<StoredPresence>(user_id.as_bytes())?
        else {
            return Ok(None);
        };
        let ago = now_millis().saturating_sub(stored.last_active_ts);
        let presence = if stored.presence == "online" && ago > IDLE_MS {
            "unavailable"
        } else {
            stored.presence.as_str()
        };
        let mut content = json!({
            "presence": presence,
            "last_active_ago": ago,
            "currently_active": presence == "online",
        });
        if let Some(status) = &stored.status_msg {
            content["status_msg"] = json!(status);
        }
        Ok(Some(content))
    }

    /// Users whose presence changed after `since`.
    pub fn changed_since(&self, since: u64) -> Result<Vec<OwnedUserId>> {
        let start = since.saturating_add(1).to_be_bytes();
        self.count_presenceuserid
            .iter_from(&start, rocksdb::Direction::Forward)
            .map(|entry| {
                let (key, value) = entry?;
                decode_u64(&key)?;
                decode_id(&value)
            })
            .collect()
    }
}
