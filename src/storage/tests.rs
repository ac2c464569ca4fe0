//! The engine's batches, scans, counters and write floors.

use std::time::Duration;

use super::*;

fn open(dir: &Path) -> Result<Arc<Engine>> {
    Engine::open(EngineOptions {
        path: dir,
        cache_capacity_bytes: 8 << 20,
        compression: true,
        statistics: false,
    })
}

#[test]
fn prefix_scans_stop_at_the_prefix_end() {
    assert_eq!(prefix_end(&[1, 0xFF]), Some(vec![2]));
    assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).unwrap();
    let queue = engine.tree("servernamecount_edu");
    for (server, position) in [("a", 1u64), ("a", 2), ("a", 3), ("b", 1), ("b", 2)] {
        queue.insert(&(server, position).encode(), b"x").unwrap();
    }
    queue.remove(&("a", 2u64).encode()).unwrap();
    let positions = |server: &str, from: u64| -> Vec<u64> {
        queue
            .scan_prefix_from((server,).prefix(), &(server, from).encode())
            .map(|entry| <(&str, u64)>::decode(&entry.unwrap().0).unwrap().1)
            .collect()
    };
    assert_eq!(positions("a", 0), [1, 3]);
    assert_eq!(positions("a", 2), [3]);
    assert_eq!(positions("b", 0), [1, 2]);
    assert_eq!(
        queue
            .scan_prefix((u8::MAX as char).to_string().into_bytes())
            .count(),
        0
    );
}

#[test]
fn counter_trees_sum_additions_across_batches_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).unwrap();
    let counts = engine.tree("useridmembership_roomcount");
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..50 {
                    let mut batch = Batch::default();
                    batch.add(&counts, b"k", 2).unwrap();
                    batch.add(&counts, b"k", -1).unwrap();
                    engine.write(batch).unwrap();
                }
            });
        }
    });
    assert_eq!(counts.get_counter(b"k").unwrap(), 200);
    assert_eq!(counts.get_counter(b"absent").unwrap(), 0);
    drop(counts);
    drop(engine);
    let engine = open(dir.path()).unwrap();
    assert_eq!(
        engine
            .tree("useridmembership_roomcount")
            .get_counter(b"k")
            .unwrap(),
        200
    );
}

#[test]
fn counter_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).unwrap();
    let first = engine.next_count().unwrap();
    let second = engine.next_count().unwrap();
    assert!(second > first);
    drop(engine);
    let engine = open(dir.path()).unwrap();
    assert!(engine.current_count() >= second);
    assert!(engine.next_count().unwrap() > second);
}

/// Positions are reserved in blocks: crossing a block's end writes the next bound, and a
/// reopen resumes above every position handed out, even past several blocks.
#[test]
fn counter_never_repeats_across_blocks_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let mut last = 0;
    for _ in 0..3 {
        let engine = open(dir.path()).unwrap();
        for _ in 0..(COUNTER_BLOCK + 7) {
            let next = engine.next_count().unwrap();
            assert!(next > last, "{next} after {last}");
            last = next;
        }
        let stored = engine.tree("global").get(COUNTER_KEY).unwrap().unwrap();
        assert!(schema::decode_u64(&stored).unwrap() >= last);
    }
}

#[test]
fn safe_count_waits_for_writers_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).unwrap();
    let before = engine.next_count().unwrap();
    let writing = engine.begin_write();
    let taken = engine.next_count().unwrap();
    // Another writer finishing meanwhile does not lift the floor either.
    engine.next_count().unwrap();
    assert_eq!(
        engine.safe_count(),
        before,
        "positions of an unfinished write are not safe"
    );
    drop(writing);
    assert!(engine.safe_count() > taken);
}

#[tokio::test]
async fn wake_ups_wait_until_their_write_is_safe_to_report() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).unwrap();
    let tree = engine.tree("useridcount_accountdata");
    let slow = engine.begin_write();
    engine.next_count().unwrap();
    // A quicker writer commits while the slow one is still open.
    let quick = engine.begin_write();
    let count = engine.next_count().unwrap();
    let mut watch = std::pin::pin!(tree.watch_prefix(b"@a:x"));
    tree.insert(&("@a:x", count).encode(), b"room").unwrap();
    drop(quick);
    // A reader woken now could not report the write (the slow writer holds the floor
    // below it), and would then miss the wake-up: it is held back.
    assert!(engine.safe_count() < count);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), &mut watch)
            .await
            .is_err(),
        "woken before the write was safe to report"
    );
    drop(slow);
    assert!(engine.safe_count() >= count);
    tokio::time::timeout(Duration::from_secs(5), watch)
        .await
        .expect("woken once the write became safe");
}

#[test]
fn newer_schema_is_refused_and_lock_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).unwrap();
    match open(dir.path()) {
        Err(Error::DatabaseLocked(_)) => {}
        Err(other) => panic!("expected a lock error, got {other}"),
        Ok(_) => panic!("a second open of the same database succeeded"),
    }
    engine
        .tree("global")
        .insert(
            b"schema_version",
            &(schema::CURRENT_VERSION + 1).to_be_bytes(),
        )
        .unwrap();
    drop(engine);
    let error = open(dir.path())
        .err()
        .expect("newer schema must be refused");
    assert!(error.to_string().contains("newer Conclave"), "{error}");
}

#[test]
fn batch_is_atomic_and_scan_respects_part_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).unwrap();
    let tree = engine.tree("useridprofilekey_value");
    let mut batch = Batch::default();
    batch
        .put(&tree, &("@al:x", "displayname").encode(), b"1")
        .unwrap();
    batch
        .put(&tree, &("@alice:x", "displayname").encode(), b"2")
        .unwrap();
    batch
        .put(&tree, &("@alice:x", "avatar_url").encode(), b"3")
        .unwrap();
    engine.write(batch).unwrap();
    let alice: Vec<_> = tree
        .scan_prefix(("@alice:x",).prefix())
        .map(|entry| entry.unwrap().1)
        .collect();
    assert_eq!(
        alice,
        vec![
            b"3".to_vec().into_boxed_slice(),
            b"2".to_vec().into_boxed_slice()
        ]
    );
    let al: Vec<_> = tree.scan_prefix(("@al:x",).prefix()).collect();
    assert_eq!(al.len(), 1);
}

#[tokio::test]
async fn watcher_wakes_on_write_under_its_prefix_only() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).unwrap();
    let tree = engine.tree("useridcount_accountdata");
    let mut woken = Box::pin(tree.watch_prefix(&("@alice:x",).prefix()));

    // A write elsewhere does not wake it.
    tree.insert(&("@bob:x", 1u64).encode(), b"").unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(50), &mut woken)
            .await
            .is_err()
    );

    // A write under the prefix (here through a batch) does.
    let mut batch = Batch::default();
    batch.put(&tree, &("@alice:x", 2u64).encode(), b"").unwrap();
    engine.write(batch).unwrap();
    tokio::time::timeout(Duration::from_secs(10), woken)
        .await
        .expect("watcher woke");
}
