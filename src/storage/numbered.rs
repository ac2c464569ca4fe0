//! A tree keyed by IDs counting from 1 (big-endian `u64`), for append-only logs and numbered
//! records (the audit log, reports).

use std::sync::Mutex;

use rocksdb::Direction;

use super::Tree;
use crate::error::Result;

pub struct Numbered {
    tree: Tree,
    /// The last ID handed out; appends take the next one under this lock, so IDs follow the
    /// order of the entries.
    last: Mutex<u64>,
}

impl Numbered {
    pub fn open(tree: Tree) -> Result<Self> {
        let last = match tree
            .iter_from(&u64::MAX.to_be_bytes(), Direction::Reverse)
            .next()
            .transpose()?
        {
            Some((key, _)) => <[u8; 8]>::try_from(&*key).map_or(0, u64::from_be_bytes),
            None => 0,
        };
        Ok(Self {
            tree,
            last: Mutex::new(last),
        })
    }

    /// Stores what `value` makes for the next ID; returns that ID.
    pub fn append(&self, value: impl FnOnce(u64) -> Result<Vec<u8>>) -> Result<u64> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let id = *last + 1;
        self.tree.insert(&id.to_be_bytes(), &value(id)?)?;
        *last = id;
        Ok(id)
    }

    pub fn tree(&self) -> &Tree {
        &self.tree
    }
}
