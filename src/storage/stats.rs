//! RocksDB's figures for the metrics listener: properties summed over the column families,
//! and, when statistics are on (only with metrics enabled: they cost a little on every
//! read), the cumulative tickers.

use super::{Engine, catalogue};

/// A snapshot of the engine's sizes and activity.
#[derive(Debug, Default, Clone)]
pub struct EngineStats {
    pub block_cache_capacity_bytes: u64,
    pub block_cache_usage_bytes: u64,
    pub block_cache_pinned_bytes: u64,
    /// Memtables (written, not yet flushed to SST files), all column families.
    pub memtable_bytes: u64,
    pub sst_bytes: u64,
    pub pending_compaction_bytes: u64,
    pub running_compactions: u64,
    pub running_flushes: u64,
    /// Cumulative counts since start; `None` without statistics.
    pub tickers: Option<Tickers>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Tickers {
    pub block_cache_hits: u64,
    pub block_cache_misses: u64,
    pub compaction_read_bytes: u64,
    pub compaction_write_bytes: u64,
    pub bytes_written: u64,
    pub bytes_read: u64,
    pub write_stall_micros: u64,
}

impl Engine {
    pub fn stats(&self) -> EngineStats {
        let mut stats = EngineStats {
            block_cache_capacity_bytes: self.cache_capacity_bytes as u64,
            block_cache_usage_bytes: self.cache.get_usage() as u64,
            block_cache_pinned_bytes: self.cache.get_pinned_usage() as u64,
            ..EngineStats::default()
        };
        let property = |cf, name: &str| {
            self.db
                .property_int_value_cf(cf, name)
                .ok()
                .flatten()
                .unwrap_or(0)
        };
        for tree in catalogue::TREES {
            let Some(cf) = self.db.cf_handle(tree.name) else {
                continue;
            };
            stats.memtable_bytes += property(cf, "rocksdb.cur-size-all-mem-tables");
            stats.sst_bytes += property(cf, "rocksdb.total-sst-files-size");
            stats.pending_compaction_bytes +=
                property(cf, "rocksdb.estimate-pending-compaction-bytes");
        }
        // Database-wide figures, the same through any column family.
        if let Some(cf) = self.db.cf_handle("global") {
            stats.running_compactions = property(cf, "rocksdb.num-running-compactions");
            stats.running_flushes = property(cf, "rocksdb.num-running-flushes");
        }
        stats.tickers = self
            .statistics
            .as_ref()
            .and_then(|options| options.get_statistics())
            .map(|text| parse_tickers(&text));
        stats
    }
}

/// Reads the tickers out of RocksDB's statistics dump (`rocksdb.block.cache.hit COUNT : 12`).
fn parse_tickers(text: &str) -> Tickers {
    let mut tickers = Tickers::default();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(" COUNT : ") else {
            continue;
        };
        let Ok(value) = rest.trim().parse::<u64>() else {
            continue;
        };
        let slot = match name.trim() {
            "rocksdb.block.cache.hit" => &mut tickers.block_cache_hits,
            "rocksdb.block.cache.miss" => &mut tickers.block_cache_misses,
            "rocksdb.compact.read.bytes" => &mut tickers.compaction_read_bytes,
            "rocksdb.compact.write.bytes" => &mut tickers.compaction_write_bytes,
            "rocksdb.bytes.written" => &mut tickers.bytes_written,
            "rocksdb.bytes.read" => &mut tickers.bytes_read,
            "rocksdb.stall.micros" => &mut tickers.write_stall_micros,
            _ => continue,
        };
        *slot = value;
    }
    tickers
}

#[cfg(test)]
mod tests {
    #[test]
    fn tickers_are_read_from_the_statistics_dump() {
        let tickers = super::parse_tickers(
            "rocksdb.block.cache.miss COUNT : 7\nrocksdb.block.cache.hit COUNT : 42\n\
             rocksdb.db.get.micros P50 : 1.0 P95 : 2.0 COUNT : 9 SUM : 10\n",
        );
        assert_eq!(tickers.block_cache_hits, 42);
        assert_eq!(tickers.block_cache_misses, 7);
        assert_eq!(tickers.bytes_written, 0);
    }
}
