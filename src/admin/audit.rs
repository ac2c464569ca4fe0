//! The audit log: every administrative action, appended and never changed. Nothing in the
//! server edits or deletes an entry; `audit list` and `audit export` read them.

use rocksdb::Direction;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::storage::Engine;
use crate::storage::numbered::Numbered;

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
    entries: Numbered,
}

impl Log {
    pub fn open(engine: &std::sync::Arc<Engine>) -> Result<Self> {
        Ok(Self {
            entries: Numbered::open(engine.tree("auditid_entry"))?,
        })
    }

    pub fn append(&self, entry: &Entry) -> Result<()> {
        self.entries.append(|_| Ok(serde_json::to_vec(entry)?))?;
        Ok(())
    }

    /// Entries oldest first.
    pub fn oldest_first(&self) -> impl Iterator<Item = Result<Entry>> + '_ {
        self.entries
            .tree()
            .iter_from(&[], Direction::Forward)
            .map(|item| Ok(serde_json::from_slice(&item?.1)?))
    }

    /// Entries newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = Result<Entry>> + '_ {
        self.entries
            .tree()
            .iter_from(&u64::MAX.to_be_bytes(), Direction::Reverse)
            .map(|item| Ok(serde_json::from_slice(&item?.1)?))
    }
}
