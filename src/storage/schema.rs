//! The schema version stored in the database, and forward-only migrations.

use std::sync::Arc;

use super::Engine;
use crate::error::{Error, Result};

/// The schema this build writes. Bump it and add a step to [`MIGRATIONS`] when a tree's layout
/// changes.
pub const CURRENT_VERSION: u64 = 4;

const VERSION_KEY: &[u8] = b"schema_version";

/// One forward migration step.
type Migration = fn(&Arc<Engine>) -> Result<()>;

/// Migration `i` brings a database from version `i + 1` to `i + 2`.
const MIGRATIONS: &[Migration] = &[
    forward_extremities_in_one_value,
    index_events_by_sender,
    signed_timeline_positions,
];

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

/// 3 → 4: timeline positions become signed (`rooms::count::PduCount`), stored with the sign
/// bit flipped so that backfilled (negative) positions sort first. Every stored position was
/// a plain `u64` below 2^63; it gains bit 63. Positions are the last eight bytes of the keys
/// of `pduid_pdu`, `senderpduid_empty`, `relatestoeventid_relation` and
/// `tokenshortroomidcount_empty`, and of the values of `eventid_pduid`. Only entries without
/// the bit are rewritten, so a migration interrupted by a crash resumes safely.
fn signed_timeline_positions(engine: &Arc<Engine>) -> Result<()> {
    fn flipped(bytes: &[u8]) -> Option<Vec<u8>> {
        let at = bytes.len().checked_sub(8)?;
        if bytes[at] & 0x80 != 0 {
            return None;
        }
        let mut out = bytes.to_vec();
        out[at] |= 0x80;
        Some(out)
    }
    for name in [
        "pduid_pdu",
        "senderpduid_empty",
        "relatestoeventid_relation",
        "tokenshortroomidcount_empty",
    ] {
        let tree = engine.tree(name);
        let mut batch = super::Batch::default();
        let mut pending = 0;
        for entry in tree.scan_prefix(Vec::new()) {
            let (key, value) = entry?;
            let Some(new_key) = flipped(&key) else {
                continue;
            };
            batch.put(&tree, &new_key, &value)?;
            batch.delete(&tree, &key)?;
            pending += 1;
            if pending == 10_000 {
                engine.write(std::mem::take(&mut batch))?;
                pending = 0;
            }
        }
        engine.write(batch)?;
    }
    let tree = engine.tree("eventid_pduid");
    let mut batch = super::Batch::default();
    let mut pending = 0;
    for entry in tree.scan_prefix(Vec::new()) {
        let (key, value) = entry?;
        if let Some(new_value) = flipped(&value) {
            batch.put(&tree, &key, &new_value)?;
            pending += 1;
        }
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
            statistics: false,
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
        use crate::service::rooms::PduCount;
        use crate::storage::Key;
        let of_a: Vec<(String, u64, PduCount)> = index
            .scan_prefix(("@a:x",).prefix())
            .map(|entry| <(String, u64, PduCount)>::decode(&entry.unwrap().0).unwrap())
            .collect();
        let at = PduCount::normal;
        assert_eq!(
            of_a,
            [("@a:x".to_owned(), 1, at(5)), ("@a:x".to_owned(), 2, at(7))]
        );
        // And the timeline itself moved to signed positions (schema 4).
        let timeline = engine.tree("pduid_pdu");
        assert!(timeline.get(&(1u64, at(5)).encode()).unwrap().is_some());
        assert_eq!(timeline.scan_prefix(Vec::new()).count(), 3);
        assert_eq!(index.scan_prefix(("@b:x",).prefix()).count(), 1);
    }
    #[test]
    fn version_3_positions_become_signed_once() {
        use crate::service::rooms::PduCount;
        use crate::storage::Key;
        let dir = tempfile::tempdir().unwrap();
        let engine = open(dir.path());
        let mut old_pduid = 4u64.to_be_bytes().to_vec();
        old_pduid.push(crate::storage::codec::SEP);
        old_pduid.extend_from_slice(&9u64.to_be_bytes());
        let mut old_relation = b"$target".to_vec();
        old_relation.push(crate::storage::codec::SEP);
        old_relation.extend_from_slice(&9u64.to_be_bytes());
        let mut batch = Batch::default();
        batch
            .put(&engine.tree("eventid_pduid"), b"$e", &old_pduid)
            .unwrap();
        batch
            .put(
                &engine.tree("relatestoeventid_relation"),
                &old_relation,
                b"r",
            )
            .unwrap();
        engine.write(batch).unwrap();
        // Run twice, as after a crash in the middle: the second run changes nothing.
        signed_timeline_positions(&engine).unwrap();
        signed_timeline_positions(&engine).unwrap();
        let pduid = engine.tree("eventid_pduid").get(b"$e").unwrap().unwrap();
        assert_eq!(
            <(u64, PduCount)>::decode(&pduid).unwrap(),
            (4, PduCount::normal(9))
        );
        let relations: Vec<_> = engine
            .tree("relatestoeventid_relation")
            .scan_prefix(Vec::new())
            .map(|entry| <(String, PduCount)>::decode(&entry.unwrap().0).unwrap())
            .collect();
        assert_eq!(relations, [("$target".to_owned(), PduCount::normal(9))]);
    }
}
