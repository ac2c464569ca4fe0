//! Server-side key backup (`/room_keys`): encrypted megolm session keys a user's devices store
//! so a new device can read history. The server only sees ciphertext and the session metadata
//! it needs to keep the best copy of each session.

use std::sync::{Arc, Mutex};

use ruma::{RoomId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, ErrorCode, Result};
use crate::storage::schema::decode_u64;
use crate::storage::{Batch, Engine, Key, Tree};

pub struct Service {
    engine: Arc<Engine>,
    useridversion_backup: Tree,
    useridversionroomsession_backupkey: Tree,
    /// Serialises writes to one user's backups, so `count` and `etag` stay exact.
    write_lock: Mutex<()>,
}

/// A backup version's metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupVersion {
    pub algorithm: String,
    pub auth_data: Value,
    /// Bumped whenever the stored keys change, so clients can tell cheaply.
    pub etag: u64,
    pub count: u64,
}

impl Service {
    pub fn new(engine: &Arc<Engine>) -> Self {
        Self {
            engine: Arc::clone(engine),
            useridversion_backup: engine.tree("useridversion_backup"),
            useridversionroomsession_backupkey: engine.tree("useridversionroomsession_backupkey"),
            write_lock: Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.write_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a new backup version, which becomes the current one.
    pub fn create_version(
        &self,
        user_id: &UserId,
        algorithm: &str,
        auth_data: Value,
    ) -> Result<String> {
        let _guard = self.lock();
        let version = self.engine.next_count()?;
        let info = BackupVersion {
            algorithm: algorithm.to_owned(),
            auth_data,
            etag: 0,
            count: 0,
        };
        self.useridversion_backup.insert(
            &(user_id.as_str(), version).encode(),
            &serde_json::to_vec(&info)?,
        )?;
        Ok(version.to_string())
    }

    /// The newest backup version of the user.
    pub fn latest_version(&self, user_id: &UserId) -> Result<Option<(String, BackupVersion)>> {
        let prefix = (user_id.as_str(),).prefix();
        let mut end = prefix.clone();
        end.extend_from_slice(&u64::MAX.to_be_bytes());
        let Some(entry) = self
            .useridversion_backup
            .iter_from(&end, rocksdb::Direction::Reverse)
            .next()
        else {
            return Ok(None);
        };
        let (key, value) = entry?;
        if !key.starts_with(&prefix) {
            return Ok(None);
        }
        let version = decode_u64(&key[prefix.len()..])?;
        Ok(Some((version.to_string(), serde_json::from_slice(&value)?)))
    }

    /// A backup version by its name; `None` for unknown or deleted ones.
    pub fn version(&self, user_id: &UserId, version: &str) -> Result<Option<BackupVersion>> {
        let Ok(number) = version.parse::<u64>() else {
            return Ok(None);
        };
        self.useridversion_backup
            .get_json(&(user_id.as_str(), number).encode())
    }

    fn existing(&self, user_id: &UserId, version: &str) -> Result<(u64, BackupVersion)> {
        let info = self
            .version(user_id, version)?
            .ok_or_else(|| Error::not_found(format!("Unknown backup version {version}")))?;
        Ok((version.parse().unwrap_or_default(), info))
    }

    /// Replaces a version's `auth_data`; its algorithm cannot change.
    pub fn update_version(
        &self,
        user_id: &UserId,
        version: &str,
        algorithm: &str,
        auth_data: Value,
    ) -> Result<()> {
        let _guard = self.lock();
        let (number, mut info) = self.existing(user_id, version)?;
        if info.algorithm != algorithm {
            return Err(Error::invalid_param(
                "The algorithm of a backup version cannot change",
            ));
        }
        info.auth_data = auth_data;
        self.useridversion_backup.insert(
            &(user_id.as_str(), number).encode(),
            &serde_json::to_vec(&info)?,
        )
    }

    /// Deletes a version and every key in it.
    pub fn delete_version(&self, user_id: &UserId, version: &str) -> Result<()> {
        let _guard = self.lock();
        let (number, _) = self.existing(user_id, version)?;
        let mut batch = Batch::default();
        self.delete_keys_into(&mut batch, (user_id.as_str(), number).prefix())?;
        batch.delete(
            &self.useridversion_backup,
            &(user_id.as_str(), number).encode(),
        )?;
        self.engine.write(batch)
    }

    /// Writes must go to the current version: a client holding an old one learns which.
    fn writable(&self, user_id: &UserId, version: &str) -> Result<(u64, BackupVersion)> {
        let (number, info) = self.existing(user_id, version)?;
        let latest = self.latest_version(user_id)?.map(|(v, _)| v);
        if latest.as_deref() != Some(version) {
            return Err(Error::new(
                ErrorCode::WrongRoomKeysVersion {
                    current_version: latest,
                },
                "This backup version is not the current one",
            ));
        }
        Ok((number, info))
    }

    /// Stores session keys, `(room, session, key data)`. An already stored session is only
    /// replaced by a better copy (verified, then earlier first message, then fewer forwards).
    /// Returns the version's new `etag` and `count`.
    pub fn put_keys(
        &self,
        user_id: &UserId,
        version: &str,
        keys: &[(&RoomId, &str, Value)],
    ) -> Result<(u64, u64)> {
        let _guard = self.lock();
        let (number, mut info) = self.writable(user_id, version)?;
        let mut batch = Batch::default();
        let mut changed = false;
        for (room_id, session_id, data) in keys {
            check_key_data(data)?;
            let slot = (user_id.as_str(), number, room_id.as_str(), *session_id).encode();
            match self
                .useridversionroomsession_backupkey
                .get_json::<Value>(&slot)?
            {
                Some(existing) if !is_better(data, &existing) => continue,
                Some(_) => {}
                None => info.count += 1,
            }
            batch.put(
                &self.useridversionroomsession_backupkey,
                &slot,
                &serde_json::to_vec(data)?,
            )?;
            changed = true;
        }
        if changed {
            info.etag += 1;
            batch.put(
                &self.useridversion_backup,
                &(user_id.as_str(), number).encode(),
                &serde_json::to_vec(&info)?,
            )?;
            self.engine.write(batch)?;
        }
        Ok((info.etag, info.count))
    }

    /// Stored keys of a version, optionally of one room or one session, as
    /// `{room: {session: data}}`.
    pub fn keys(
        &self,
        user_id: &UserId,
        version: &str,
        room_id: Option<&RoomId>,
        session_id: Option<&str>,
    ) -> Result<Map<String, Value>> {
        let (number, _) = self.existing(user_id, version)?;
        let prefix = match (room_id, session_id) {
            (Some(room), Some(session)) => {
                (user_id.as_str(), number, room.as_str(), session).encode()
            }
            (Some(room), None) => (user_id.as_str(), number, room.as_str()).prefix(),
            _ => (user_id.as_str(), number).prefix(),
        };
        let mut rooms = Map::new();
        for entry in self.useridversionroomsession_backupkey.scan_prefix(prefix) {
            let (key, value) = entry?;
            let (_, _, room, session): (&str, u64, &str, &str) = Key::decode(&key)?;
            if session_id.is_some_and(|wanted| wanted != session) {
                continue;
            }
            let sessions = rooms
                .entry(room.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(sessions) = sessions.as_object_mut() {
                sessions.insert(session.to_owned(), serde_json::from_slice(&value)?);
            }
        }
        Ok(rooms)
    }

    /// Deletes keys of a version (all, one room's, or one session). Returns `etag`, `count`.
    pub fn delete_keys(
        &self,
        user_id: &UserId,
        version: &str,
        room_id: Option<&RoomId>,
        session_id: Option<&str>,
    ) -> Result<(u64, u64)> {
        let _guard = self.lock();
        let (number, mut info) = self.existing(user_id, version)?;
        let mut batch = Batch::default();
        let removed = match (room_id, session_id) {
            (Some(room), Some(session)) => {
                let slot = (user_id.as_str(), number, room.as_str(), session).encode();
                if self.useridversionroomsession_backupkey.contains(&slot)? {
                    batch.delete(&self.useridversionroomsession_backupkey, &slot)?;
                    1
                } else {
                    0
                }
            }
            (Some(room), None) => self.delete_keys_into(
                &mut batch,
                (user_id.as_str(), number, room.as_str()).prefix(),
            )?,
            _ => self.delete_keys_into(&mut batch, (user_id.as_str(), number).prefix())?,
        };
        if removed > 0 {
            info.count = info.count.saturating_sub(removed);
            info.etag += 1;
            batch.put(
                &self.useridversion_backup,
                &(user_id.as_str(), number).encode(),
                &serde_json::to_vec(&info)?,
            )?;
            self.engine.write(batch)?;
        }
        Ok((info.etag, info.count))
    }

    fn delete_keys_into(&self, batch: &mut Batch, prefix: Vec<u8>) -> Result<u64> {
        let mut removed = 0;
        for entry in self.useridversionroomsession_backupkey.scan_prefix(prefix) {
            let (key, _) = entry?;
            batch.delete(&self.useridversionroomsession_backupkey, &key)?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// Key data must carry the fields the keep-the-best rule reads, and the encrypted session.
fn check_key_data(data: &Value) -> Result<()> {
    let valid = data.get("first_message_index").is_some_and(Value::is_u64)
        && data.get("forwarded_count").is_some_and(Value::is_u64)
        && data.get("is_verified").is_some_and(Value::is_boolean)
        && data.get("session_data").is_some_and(Value::is_object);
    if valid {
        Ok(())
    } else {
        Err(Error::bad_json(
            "Key data needs first_message_index, forwarded_count, is_verified and session_data",
        ))
    }
}

/// The spec's rule for which copy of a session to keep: a verified one over an unverified
/// one, then the one starting at the earlier message, then the one forwarded fewer times.
fn is_better(new: &Value, old: &Value) -> bool {
    let verified = |v: &Value| v["is_verified"].as_bool().unwrap_or(false);
    let first = |v: &Value| v["first_message_index"].as_u64().unwrap_or(u64::MAX);
    let forwards = |v: &Value| v["forwarded_count"].as_u64().unwrap_or(u64::MAX);
    if verified(new) != verified(old) {
        return verified(new);
    }
    if first(new) != first(old) {
        return first(new) < first(old);
    }
    forwards(new) < forwards(old)
}
