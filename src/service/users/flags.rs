//! Restrictions administrators put on accounts — locked, suspended — stored in a tree and kept
//! in memory, since they are checked on every request or every event a user sends.

use std::collections::HashSet;
use std::sync::RwLock;

use ruma::{OwnedUserId, UserId};

use crate::error::Result;
use crate::storage::Tree;

pub struct AccountFlag {
    tree: Tree,
    users: RwLock<HashSet<OwnedUserId>>,
}

impl AccountFlag {
    /// The flag stored in `tree`, read into memory.
    pub fn load(tree: Tree) -> Result<Self> {
        let mut users = HashSet::new();
        for entry in tree.iter_from(&[], rocksdb::Direction::Forward) {
            users.insert(crate::storage::decode_id(&entry?.0)?);
        }
        Ok(Self {
            tree,
            users: RwLock::new(users),
        })
    }

    pub fn contains(&self, user_id: &UserId) -> bool {
        self.users
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(user_id)
    }

    pub fn set(&self, user_id: &UserId, on: bool) -> Result<()> {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        if on {
            self.tree.insert(user_id.as_bytes(), &[])?;
            users.insert(user_id.to_owned());
        } else {
            self.tree.remove(user_id.as_bytes())?;
            users.remove(user_id);
        }
        Ok(())
    }
}
