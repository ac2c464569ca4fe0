//! Making deleted and overwritten data leave the disk now rather than at RocksDB's leisure:
//! redactions, erasure and purges promise that the old bytes are gone.
//!
//! An old value lives on in two places: the write-ahead log that recorded it, and SST files.
//! A log file is deleted once every column family with data in it has been flushed, so the
//! memtables holding data are flushed (those that are empty hold nothing of any log back);
//! the keys' ranges are then compacted with the bottommost level rewritten, so no file keeps
//! the old value or a tombstone naming the key.

use super::{Engine, Result, Tree, catalogue};

/// Keys whose older versions must leave the disk, gathered so that one flush serves them all.
#[derive(Default)]
#[must_use = "the old versions stay on disk until purged"]
pub struct Purge {
    keys: Vec<(&'static str, Vec<u8>)>,
}

impl Purge {
    pub fn add(&mut self, tree: &Tree, key: Vec<u8>) {
        self.keys.push((tree.name, key));
    }

    pub fn extend(&mut self, tree: &Tree, keys: impl IntoIterator<Item = Vec<u8>>) {
        self.keys
            .extend(keys.into_iter().map(|key| (tree.name, key)));
    }

    /// Takes over `other`'s keys.
    pub fn append(&mut self, mut other: Purge) {
        self.keys.append(&mut other.keys);
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl Engine {
    /// Writes memtables to disk so that a restart replays nothing and the write-ahead logs
    /// written so far can be deleted. Column families with nothing in memory are skipped:
    /// with ~70 of them, flushing each was most of a redaction's cost.
    pub fn flush(&self) -> Result<()> {
        self.db.flush_wal(true)?;
        for tree in catalogue::TREES {
            let cf = self.cf(tree.name)?;
            let in_memory = |property: &str| {
                self.db
                    .property_int_value_cf(cf, property)
                    .ok()
                    .flatten()
                    .unwrap_or(1)
            };
            if in_memory("rocksdb.num-entries-active-mem-table") == 0
                && in_memory("rocksdb.num-entries-imm-mem-tables") == 0
            {
                continue;
            }
            self.db.flush_cf(cf)?;
        }
        Ok(())
    }

    /// Makes sure no older version of the purge's keys survives on disk. Expensive (a flush
    /// and a compaction per key): meant for redactions and erasure, not for every write.
    pub fn purge_old_versions(&self, purge: &Purge) -> Result<()> {
        if purge.is_empty() {
            return Ok(());
        }
        self.flush()?;
        let options = rewrite_everything();
        for (tree, key) in &purge.keys {
            let mut end = key.clone();
            end.push(0);
            self.db
                .compact_range_cf_opt(self.cf(tree)?, Some(key), Some(&end), &options);
        }
        Ok(())
    }

    /// Compacts the keys from `start` (inclusive) to `end` (exclusive; `None` for the ends
    /// of the tree), so that what was deleted there leaves the disk now.
    pub fn compact_range(
        &self,
        tree: &Tree,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
    ) -> Result<()> {
        self.flush()?;
        self.db
            .compact_range_cf_opt(self.cf(tree.name)?, start, end, &rewrite_everything());
        Ok(())
    }
}

/// Compaction that rewrites the bottommost files too. By default RocksDB may just move a
/// flushed file down (a "trivial move") and leave it there, tombstones and all — and a
/// tombstone holds its key, which for the search index is a word of the message.
fn rewrite_everything() -> rocksdb::CompactOptions {
    let mut options = rocksdb::CompactOptions::default();
    options.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
    options
}
