//! The audit log: every administrative action, appended and never changed. Nothing in the
//! server edits or deletes an entry; `audit list` and `audit export` read them.

use std::sync::Mutex;

use rocksdb::Direction;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::storage::{Engine, Tree};

/// One administrative action.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// Milliseconds since the Unix epoch.
    pub ts: u64,
    /// The user ID of the admin, or `console`.
    pub actor: String,
    /// Where it came from: `admin room`, the client's IP, `console`.
    pub origin: String,
    /// The command or endpoint and its arguments, secrets masked.
    pub action: String,
    /// `ok`, or what went wrong.
    pub outcome: String,
}

pub struct Log {
    auditid_entry: Tree,
    /// The last ID handed out; appends take the next one under this lock, so IDs follow the
    /// order of the entries.
    last: Mutex<u64>,
}

impl Log {
    pub fn open(engine: &std::sync::Arc<Engine>) -> Result<Self> {
        let auditid_entry = engine.tree("auditid_entry");
        let last = match auditid_entry
            .iter_from(&u64::MAX.to_be_bytes(), Direction::Reverse)
            .next()
            .transpose()?
        {
            Some((key, _)) => <[u8; 8]>::try_from(&*key).map_or(0, u64::from_be_bytes),
            None => 0,
        };
        Ok(Self {
            auditid_entry,
            last: Mutex::new(last),
        })
    }

    pub fn append(&self, entry: &Entry) -> Result<()> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let id = *last + 1;
        self.auditid_entry
            .insert(&id.to_be_bytes(), &serde_json::to_vec(entry)?)?;
        *last = id;
        Ok(())
    }

    /// Entries oldest first.
    pub fn oldest_first(&self) -> impl Iterator<Item = Result<Entry>> + '_ {
        self.auditid_entry
            .iter_from(&[], Direction::Forward)
            .map(|item| {
                let (_, value) = item?;
                Ok(serde_json::from_slice(&value)?)
            })
    }

    /// Entries newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = Result<Entry>> + '_ {
        self.auditid_entry
            .iter_from(&u64::MAX.to_be_bytes(), Direction::Reverse)
            .map(|item| {
                let (_, value) = item?;
                Ok(serde_json::from_slice(&value)?)
            })
    }
}
