//! Prefix watchers: a future that resolves when a key with a given prefix is written.
//! Long-polling endpoints wait on these instead of polling the database.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

/// Watched prefix -> wake-up channel, for one column family.
type PrefixMap = HashMap<Vec<u8>, watch::Sender<()>>;

#[derive(Default)]
pub struct Watchers {
    /// Column family -> its watched prefixes.
    by_tree: Mutex<HashMap<&'static str, PrefixMap>>,
}

impl Watchers {
    /// Registers interest in `prefix` of `tree`. Register *before* reading the state you wait to
    /// see change, or a write between the read and the registration is missed.
    pub fn watch(
        &self,
        tree: &'static str,
        prefix: &[u8],
    ) -> impl Future<Output = ()> + Send + use<> {
        let mut rx = {
            let mut map = self.by_tree.lock().unwrap_or_else(|e| e.into_inner());
            let tree_map = map.entry(tree).or_default();
            match tree_map.get(prefix) {
                Some(tx) => tx.subscribe(),
                None => {
                    let (tx, rx) = watch::channel(());
                    tree_map.insert(prefix.to_vec(), tx);
                    rx
                }
            }
        };
        async move {
            // An error means the sender was dropped, which only happens after it fired.
            let _ = rx.changed().await;
        }
    }

    /// Wakes the watchers of every prefix of `key`. Cheap when nobody watches the tree.
    pub fn wake(&self, tree: &'static str, key: &[u8]) {
        let mut map = self.by_tree.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tree_map) = map.get_mut(tree) else {
            return;
        };
        if tree_map.is_empty() {
            return;
        }
        for len in 0..=key.len() {
            if let Some(tx) = tree_map.remove(&key[..len]) {
                tx.send_replace(());
            }
        }
        // Drop channels whose waiters have all gone away.
        tree_map.retain(|_, tx| tx.receiver_count() > 0);
    }
}
