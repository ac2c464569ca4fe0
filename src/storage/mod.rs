//! Storage: an embedded RocksDB with one column family per tree (see [`catalogue`]), a typed key
//! codec, a global monotonic counter and prefix watchers.
//!
//! Calls are synchronous: RocksDB reads mostly hit the block cache and writes go to the memtable
//! and WAL, so they are short enough to run on the async workers directly.

pub mod catalogue;
pub mod codec;
pub mod numbered;
mod purge;
pub mod schema;
pub mod stats;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode,
    Options, WriteBatch,
};

pub use codec::{Key, KeyPart, decode_id};
pub use purge::Purge;

use crate::error::{Error, Result};
use watch::Watchers;

/// Storage tuning taken from the configuration.
pub struct EngineOptions<'a> {
    pub path: &'a Path,
    pub cache_capacity_bytes: usize,
    /// Compress the files (LZ4, Zstd at the bottom level).
    pub compression: bool,
    /// Keep RocksDB's statistics (block cache hits, compaction bytes) for the metrics.
    pub statistics: bool,
}

/// The open database.
pub struct Engine {
    db: rocksdb::DB,
    watchers: Watchers,
    /// The global stream ordering (see [`Engine::next_count`]).
    counter: Mutex<Counter>,
    /// Writers that may still commit data at positions above their floor (the counter when
    /// they began). Readers of streams stop below the lowest floor, so a position is never
    /// reported before everything up to it is on disk.
    writers: Mutex<WriterFloors>,
    path: PathBuf,
    /// The block cache every column family shares, and its size, for the metrics.
    cache: Cache,
    cache_capacity_bytes: usize,
    /// The database options, kept when they collect statistics (read by `stats`).
    statistics: Option<Options>,
}

/// The last position handed out, and the bound persisted ahead of it: positions are reserved
/// in blocks, so taking one is an in-memory increment and a database write only once per block,
/// and a restart resumes above every position handed out before it (leaving a harmless gap).
struct Counter {
    last: u64,
    reserved: u64,
}

/// Positions reserved per counter write.
const COUNTER_BLOCK: u64 = 1024;

#[derive(Default)]
struct WriterFloors {
    next_id: u64,
    floors: std::collections::HashMap<u64, u64>,
    /// Wake-ups of keys written while some writer was unfinished, with the counter at the
    /// time: fired once every position up to it is safe. Waking earlier would let a
    /// long-polling reader look, see nothing it may report yet, and then wait for a wake-up
    /// that already happened.
    held_wakes: Vec<(u64, &'static str, Vec<u8>)>,
}

/// Held by a writer between taking stream positions and committing them.
pub struct WriteGuard<'a> {
    engine: &'a Engine,
    id: u64,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        self.engine.end_write(self.id);
    }
}

/// A [`WriteGuard`] that owns its engine handle, for a write whose last part is finished by
/// other code than the one that began it (a room's per-member indexes, see `rooms::fanout`).
pub struct OwnedWriteGuard {
    engine: Arc<Engine>,
    id: u64,
}

impl Drop for OwnedWriteGuard {
    fn drop(&mut self) {
        self.engine.end_write(self.id);
    }
}

impl WriterFloors {
    fn safe_count(&self, current: u64) -> u64 {
        self.floors
            .values()
            .copied()
            .min()
            .map_or(current, |floor| floor.min(current))
    }
}

const COUNTER_KEY: &[u8] = b"counter";

impl Engine {
    pub fn open(options: EngineOptions<'_>) -> Result<Arc<Self>> {
        let path = options.path;
        std::fs::create_dir_all(path).map_err(|e| {
            Error::Database(format!(
                "cannot create database directory {}: {e}",
                path.display()
            ))
        })?;

        let cache_capacity_bytes = options.cache_capacity_bytes.max(8 << 20);
        let cache = Cache::new_lru_cache(cache_capacity_bytes);
        let mut db_options = db_options();
        if options.statistics {
            db_options.enable_statistics();
        }
        // Column families a newer build or an older schema left behind must be opened too, or
        // RocksDB refuses the database.
        let existing = rocksdb::DB::list_cf(&db_options, path).unwrap_or_default();
        let mut names: Vec<String> = catalogue::TREES
            .iter()
            .map(|tree| tree.name.to_owned())
            .collect();
        for name in existing {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let descriptors = names.into_iter().map(|name| {
            let spec = catalogue::TREES.iter().find(|tree| tree.name == name);
            let mut options = cf_options(
                &cache,
                spec.is_some_and(|tree| tree.point_lookups),
                options.compression,
            );
            if spec.is_some_and(|tree| tree.counters) {
                options.set_merge_operator_associative("add_i64", add_i64);
            }
            ColumnFamilyDescriptor::new(name, options)
        });

        let db = rocksdb::DB::open_cf_descriptors(&db_options, path, descriptors).map_err(|e| {
            let message = e.into_string();
            if message.to_ascii_lowercase().contains("lock") {
                Error::DatabaseLocked(path.display().to_string())
            } else {
                Error::Database(format!(
                    "cannot open database at {}: {message}",
                    path.display()
                ))
            }
        })?;

        let engine = Arc::new(Self {
            db,
            watchers: Watchers::default(),
            counter: Mutex::new(Counter {
                last: 0,
                reserved: 0,
            }),
            writers: Mutex::new(WriterFloors::default()),
            path: path.to_owned(),
            cache,
            cache_capacity_bytes,
            statistics: options.statistics.then_some(db_options),
        });
        schema::check_and_migrate(&engine)?;
        let counter = engine.tree("global").get(COUNTER_KEY)?;
        let counter = counter
            .map(|bytes| schema::decode_u64(&bytes))
            .transpose()?
            .unwrap_or(0);
        // The stored value bounds every position handed out before (a block's end, or the
        // last position itself in databases written before positions were reserved).
        *engine.counter.lock().unwrap_or_else(|e| e.into_inner()) = Counter {
            last: counter,
            reserved: counter,
        };
        Ok(engine)
    }

    /// A handle on one column family of the catalogue.
    pub fn tree(self: &Arc<Self>, name: &'static str) -> Tree {
        debug_assert!(
            catalogue::TREES.iter().any(|tree| tree.name == name),
            "unknown tree {name}"
        );
        Tree {
            engine: Arc::clone(self),
            name,
        }
    }

    /// The next value of the global stream ordering.
    pub fn next_count(&self) -> Result<u64> {
        let mut counter = self.counter.lock().unwrap_or_else(|e| e.into_inner());
        let next = counter.last + 1;
        if next > counter.reserved {
            // Written before any batch can carry `next`: the WAL is sequential, so a position
            // that survives a crash is always below a reservation that survives too.
            let reserved = next + COUNTER_BLOCK - 1;
            self.db
                .put_cf(self.cf("global")?, COUNTER_KEY, reserved.to_be_bytes())?;
            counter.reserved = reserved;
        }
        counter.last = next;
        Ok(next)
    }

    /// The last value handed out by [`Self::next_count`].
    pub fn current_count(&self) -> u64 {
        self.counter.lock().unwrap_or_else(|e| e.into_inner()).last
    }

    /// Announces a writer that will take stream positions and commit them: until the guard
    /// drops, [`Self::safe_count`] stays below the positions it takes.
    pub fn begin_write(&self) -> WriteGuard<'_> {
        WriteGuard {
            engine: self,
            id: self.add_floor(),
        }
    }

    /// [`Self::begin_write`] for a write finished elsewhere.
    pub fn begin_write_owned(self: &Arc<Self>) -> OwnedWriteGuard {
        OwnedWriteGuard {
            engine: Arc::clone(self),
            id: self.add_floor(),
        }
    }

    fn add_floor(&self) -> u64 {
        let mut writers = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        let floor = self.current_count();
        let id = writers.next_id;
        writers.next_id += 1;
        writers.floors.insert(id, floor);
        id
    }

    /// Removes a writer's floor and fires the wake-ups that were held for it.
    fn end_write(&self, id: u64) {
        let mut writers = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        writers.floors.remove(&id);
        let safe = writers.safe_count(self.current_count());
        let mut due = Vec::new();
        writers.held_wakes.retain_mut(|(bound, tree, key)| {
            if *bound <= safe {
                due.push((*tree, std::mem::take(key)));
                false
            } else {
                true
            }
        });
        drop(writers);
        for (tree, key) in due {
            self.watchers.wake(tree, &key);
        }
    }

    /// The highest stream position below which everything is committed: what /sync may
    /// promise as `next_batch`.
    pub fn safe_count(&self) -> u64 {
        let writers = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        writers.safe_count(self.current_count())
    }

    /// Applies a batch atomically, then wakes watchers of the keys it wrote.
    pub fn write(&self, batch: Batch) -> Result<()> {
        self.db.write(batch.inner)?;
        self.wake_when_safe(batch.touched);
        Ok(())
    }

    /// Wakes the watchers of `keys` in `tree` as writing them would, without writing them: for
    /// changes readers derive from other data.
    pub fn notify(&self, tree: &Tree, keys: impl IntoIterator<Item = Vec<u8>>) {
        self.wake_when_safe(keys.into_iter().map(|key| (tree.name, key)).collect());
    }

    /// Wakes the watchers of written keys now, or, while a writer is unfinished, once every
    /// position taken so far is safe to report.
    fn wake_when_safe(&self, touched: Vec<(&'static str, Vec<u8>)>) {
        if touched.is_empty() {
            return;
        }
        let mut writers = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        if !writers.floors.is_empty() {
            let bound = self.current_count();
            writers
                .held_wakes
                .extend(touched.into_iter().map(|(tree, key)| (bound, tree, key)));
            return;
        }
        drop(writers);
        for (tree, key) in touched {
            self.watchers.wake(tree, &key);
        }
    }

    /// A consistent copy of the database in `dir` (which must not exist), taken while it
    /// runs: SST files are hard-linked where the filesystem allows, else copied.
    pub fn checkpoint(&self, dir: &std::path::Path) -> Result<()> {
        rocksdb::checkpoint::Checkpoint::new(&self.db)?.create_checkpoint(dir)?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| Error::Database(format!("column family {name} is missing")))
    }
}

fn db_options() -> Options {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.increase_parallelism(2);
    options.set_max_open_files(512);
    options.set_keep_log_file_num(3);
    options.set_max_total_wal_size(64 << 20);
    options.set_enable_pipelined_write(true);
    options
}

fn cf_options(cache: &Cache, point_lookups: bool, compression: bool) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_cache_index_and_filter_blocks(true);
    if point_lookups {
        table.set_bloom_filter(10.0, false);
    }
    let mut options = Options::default();
    options.set_block_based_table_factory(&table);
    if compression {
        options.set_compression_type(DBCompressionType::Lz4);
        options.set_bottommost_compression_type(DBCompressionType::Zstd);
    } else {
        options.set_compression_type(DBCompressionType::None);
        options.set_bottommost_compression_type(DBCompressionType::None);
    }
    options
}

/// Merge operator of counter trees: the sum of the stored value and the additions, each a
/// big-endian i64 (a malformed operand counts as 0 rather than failing the read).
fn add_i64(
    _key: &[u8],
    existing: Option<&[u8]>,
    operands: &rocksdb::MergeOperands,
) -> Option<Vec<u8>> {
    let read = |bytes: &[u8]| <[u8; 8]>::try_from(bytes).map_or(0, i64::from_be_bytes);
    let sum = operands
        .into_iter()
        .fold(existing.map_or(0, read), |sum, operand| {
            sum.wrapping_add(read(operand))
        });
    Some(sum.to_be_bytes().to_vec())
}

/// One column family.
#[derive(Clone)]
pub struct Tree {
    engine: Arc<Engine>,
    name: &'static str,
}

/// A key-value pair read from a tree.
pub type Entry = (Box<[u8]>, Box<[u8]>);

impl Tree {
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.engine.db.get_cf(self.engine.cf(self.name)?, key)?)
    }

    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        Ok(self
            .engine
            .db
            .get_pinned_cf(self.engine.cf(self.name)?, key)?
            .is_some())
    }

    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.engine
            .db
            .put_cf(self.engine.cf(self.name)?, key, value)?;
        self.engine.wake_when_safe(vec![(self.name, key.to_vec())]);
        Ok(())
    }

    pub fn remove(&self, key: &[u8]) -> Result<()> {
        self.engine.db.delete_cf(self.engine.cf(self.name)?, key)?;
        Ok(())
    }

    /// Reads a counter of a counter tree (0 when absent).
    pub fn get_counter(&self, key: &[u8]) -> Result<i64> {
        Ok(self
            .get(key)?
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
            .map_or(0, i64::from_be_bytes))
    }

    /// Reads and decodes a JSON value.
    pub fn get_json<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        self.get(key)?
            .map(|bytes| serde_json::from_slice(&bytes).map_err(Error::from))
            .transpose()
    }

    /// Entries whose key starts with `prefix`, in key order.
    pub fn scan_prefix<'a>(&'a self, prefix: Vec<u8>) -> impl Iterator<Item = Result<Entry>> + 'a {
        let from = prefix.clone();
        self.scan_prefix_from(prefix, &from)
    }

    /// Entries whose key starts with `prefix`, from `from` on, in key order. The iterator is
    /// bounded at the prefix's end: without the bound, RocksDB would step over every deleted
    /// key after the prefix (a queue's acknowledged entries, not yet compacted away) looking
    /// for the next live one.
    pub fn scan_prefix_from<'a>(
        &'a self,
        prefix: Vec<u8>,
        from: &[u8],
    ) -> impl Iterator<Item = Result<Entry>> + use<'a> {
        let iterator: Box<dyn Iterator<Item = Result<Entry>> + 'a> = match self.engine.cf(self.name)
        {
            Ok(cf) => {
                let mut options = rocksdb::ReadOptions::default();
                if let Some(end) = prefix_end(&prefix) {
                    options.set_iterate_upper_bound(end);
                }
                Box::new(
                    self.engine
                        .db
                        .iterator_cf_opt(cf, options, IteratorMode::From(from, Direction::Forward))
                        .map(|item| item.map_err(Error::from)),
                )
            }
            Err(e) => Box::new(std::iter::once(Err(e))),
        };
        iterator.take_while(move |item| item.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix)))
    }

    /// Entries from `from` onwards in the given direction.
    pub fn iter_from<'a>(
        &'a self,
        from: &[u8],
        direction: Direction,
    ) -> Box<dyn Iterator<Item = Result<Entry>> + 'a> {
        match self.engine.cf(self.name) {
            Ok(cf) => Box::new(
                self.engine
                    .db
                    .iterator_cf(cf, IteratorMode::From(from, direction))
                    .map(|item| item.map_err(Error::from)),
            ),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    /// The second parts of all keys `(first, T)` under `first`, e.g. the events of a room in a
    /// `RoomId, EventId` index.
    pub fn second_parts<T: for<'a> KeyPart<'a>>(&self, first: &str) -> Result<Vec<T>> {
        self.scan_prefix((first,).prefix())
            .map(|entry| {
                let (key, _) = entry?;
                let (_, part) = <(&str, T)>::decode(&key)?;
                Ok(part)
            })
            .collect()
    }

    /// Resolves once a key starting with `prefix` is written to this tree.
    pub fn watch_prefix(&self, prefix: &[u8]) -> impl Future<Output = ()> + Send + use<> {
        self.engine.watchers.watch(self.name, prefix)
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }
}

/// Writes to several trees applied atomically by [`Engine::write`].
#[derive(Default)]
pub struct Batch {
    inner: WriteBatch,
    touched: Vec<(&'static str, Vec<u8>)>,
}

impl Batch {
    pub fn put(&mut self, tree: &Tree, key: &[u8], value: &[u8]) -> Result<()> {
        self.inner.put_cf(tree.engine.cf(tree.name)?, key, value);
        self.touched.push((tree.name, key.to_vec()));
        Ok(())
    }

    pub fn delete(&mut self, tree: &Tree, key: &[u8]) -> Result<()> {
        self.inner.delete_cf(tree.engine.cf(tree.name)?, key);
        Ok(())
    }

    /// Adds `delta` to a counter of a counter tree (see `catalogue::counter_tree`).
    pub fn add(&mut self, tree: &Tree, key: &[u8], delta: i64) -> Result<()> {
        self.inner
            .merge_cf(tree.engine.cf(tree.name)?, key, delta.to_be_bytes());
        Ok(())
    }
}

/// The first key after every key starting with `prefix`, if there is one (not when the
/// prefix is all 0xFF bytes).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests;
