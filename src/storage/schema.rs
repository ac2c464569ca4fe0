//! The schema version stored in the database, and forward-only migrations.

use std::sync::Arc;

use super::Engine;
use crate::error::{Error, Result};

/// The schema this build writes. Bump it and add a step to [`MIGRATIONS`] when a tree's layout
/// changes.
pub const CURRENT_VERSION: u64 = 3;

const VERSION_KEY: &[u8] = b"schema_version";

/// One forward migration step.
type Migration = fn(&Arc<Engine>) -> Result<()>;

/// Migration `i` brings a database from version `i + 1` to `i + 2`.
const MIGRATIONS: &[Migration] = &[forward_extremities_in_one_value, index_events_by_sender];

/// 1 → 2: `roomid_pduleaves` from one key per leaf (`RoomId 0xFF EventId`, empty value) to one
/// key per room whose value lists the leaves.
fn forward_extremities_in_one_value(engine: &Arc<Engine>) -> Result<()> {
    let tree = engine.tree("roomid_pduleaves");
    let mut leaves: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = Default::default();
    let mut batch = super::Batch::default();
    for entry in tree.scan_prefix(Vec::new()) {
        let (key, _) = entry?;
        let Some(split) = key.iter().position(|&b| b == super::codec::SEP) else {
            continue;
        };
        let value = leaves.entry(key[..split].to_vec()).or_default();
        if !value.is_empty() {
            value.push(super::codec::SEP);
        }
        value.extend_from_slice(&key[split + 1..]);
        batch.delete(&tree, &key)?;
    }
    for (room, value) in &leaves {
        batch.put(&tree, room, value)?;
    }
    engine.write(batch)
}

/// 2 → 3: `senderpduid_empty`, events by sender, built from the timeline in one pass.
fn index_events_by_sender(engine: &Arc<Engine>) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Sender<'a> {
        #[serde(borrow)]
        sender: &'a str,
    }
    let timeline = engine.tree("pduid_pdu");
    let index = engine.tree("senderpduid_empty");
    let mut batch = super::Batch::default();
    let mut pending = 0;
    for entry in timeline.scan_prefix(Vec::new()) {
        let (pduid, json) = entry?;
        let Ok(Sender { sender }) = serde_json::from_slice::<Sender<'_>>(&json) else {
            continue;
        };
        let mut key = sender.as_bytes().to_vec();
        key.push(super::codec::SEP);
        key.extend_from_slice(&pduid);
        batch.put(&index, &key, &[])?;
        pending += 1;
        if pending == 10_000 {
            engine.write(std::mem::take(&mut batch))?;
            pending = 0;
        }
    }
    engine.write(batch)
}

/// Checks the stored version, migrating older databases forward and refusing newer ones.
pub fn check_and_migrate(engine: &Arc<Engine>) -> Result<()> {
    let global = engine.tree("global");
    let stored = global
        .get(VERSION_KEY)?
        .map(|v| decode_u64(&v))
        .transpose()?;
    let Some(mut version) = stored else {
        // A fresh database starts at the current schema.
        return global.insert(VERSION_KEY, &CURRENT_VERSION.to_be_bytes());
    };
    if version > CURRENT_VERSION {
        return Err(Error::Database(format!(
            "the database was written by a newer Conclave (schema version {version}; this build \
             understands up to {CURRENT_VERSION}). Run the newer version or restore a backup."
        )));
    }
    while version < CURRENT_VERSION {
        let step = MIGRATIONS.get((version - 1) as usize).ok_or_else(|| {
            Error::Database(format!("no migration from schema version {version}"))
        })?;
        tracing::info!(
            from = version,
            to = version + 1,
            "migrating database schema"
        );
        step(engine)?;
        version += 1;
        global.insert(VERSION_KEY, &version.to_be_bytes())?;
    }
    Ok(())
}

pub fn decode_u64(bytes: &[u8]) -> Result<u64> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| Error::Database("stored integer is not 8 bytes".into()))?;
    Ok(u64::from_be_bytes(array))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Batch, EngineOptions};

    fn open(dir: &std::path::Path) -> Arc<Engine> {
        Engine::open(EngineOptions {
            path: dir,
            cache_capacity_bytes: 8 << 20,
            compression: true,
        })
        .unwrap()
    }

    #[test]
    fn version_1_forward_extremities_become_one_value_per_room() {
        let dir = tempfile::tempdir().unwrap();
        {
            let engine = open(dir.path());
            let leaves = engine.tree("roomid_pduleaves");
            let mut batch = Batch::default();
            for (room, event) in [("!a:x", "$1"), ("!a:x", "$2"), ("!b:x", "$3")] {
                let mut key = room.as_bytes().to_vec();
                key.push(crate::storage::codec::SEP);
                key.extend_from_slice(event.as_bytes());
                batch.put(&leaves, &key, &[]).unwrap();
            }
            engine.write(batch).unwrap();
            engine
                .tree("global")
                .insert(VERSION_KEY, &1u64.to_be_bytes())
                .unwrap();
        }
        let engine = open(dir.path());
        let leaves = engine.tree("roomid_pduleaves");
        assert_eq!(leaves.get(b"!a:x").unwrap().unwrap(), b"$1\xff$2");
        assert_eq!(leaves.get(b"!b:x").unwrap().unwrap(), b"$3");
        assert_eq!(leaves.scan_prefix(Vec::new()).count(), 2);
        let version = engine.tree("global").get(VERSION_KEY).unwrap().unwrap();
        assert_eq!(decode_u64(&version).unwrap(), CURRENT_VERSION);
    }

    #[test]
    fn version_2_timelines_get_their_events_by_sender_index() {
        let dir = tempfile::tempdir().unwrap();
        {
            let engine = open(dir.path());
            let timeline = engine.tree("pduid_pdu");
            let mut batch = Batch::default();
            for (room, count, sender) in [(1u64, 5u64, "@a:x"), (1, 6, "@b:x"), (2, 7, "@a:x")] {
                let mut key = room.to_be_bytes().to_vec();
                key.push(crate::storage::codec::SEP);
                key.extend_from_slice(&count.to_be_bytes());
                let json = format!(r#"{{"sender":"{sender}","type":"m.room.message"}}"#);
                batch.put(&timeline, &key, json.as_bytes()).unwrap();
            }
            engine.write(batch).unwrap();
            engine
                .tree("global")
                .insert(VERSION_KEY, &2u64.to_be_bytes())
                .unwrap();
        }
        let engine = open(dir.path());
        let index = engine.tree("senderpduid_empty");
        use crate::storage::Key;
        let of_a: Vec<(String, u64, u64)> = index
            .scan_prefix(("@a:x",).prefix())
            .map(|entry| <(String, u64, u64)>::decode(&entry.unwrap().0).unwrap())
            .collect();
        assert_eq!(of_a, [("@a:x".to_owned(), 1, 5), ("@a:x".to_owned(), 2, 7)]);
        assert_eq!(index.scan_prefix(("@b:x",).prefix()).count(), 1);
    }
}
