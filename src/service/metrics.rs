//! Prometheus metrics (`[global.metrics]`): requests by endpoint and status with their
//! latency, long-polls waiting, the outgoing queues, RocksDB's figures and the process's.
//!
//! Request figures are counted as requests finish; everything else is read when Prometheus
//! scrapes, so nothing but two label lookups is added to a request.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use super::Services;
use crate::error::{Error, Result};

/// The registry and the metrics kept between scrapes.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    sync_waiting: IntGauge,
    federation_queued: IntGaugeVec,
    federation_failures: IntGaugeVec,
    appservice_queued: IntGaugeVec,
    push_workers: IntGauge,
    rocksdb: RocksDbMetrics,
}

/// RocksDB's figures, refreshed at each scrape.
struct RocksDbMetrics {
    sizes: IntGaugeVec,
    running: IntGaugeVec,
    block_cache_hits: IntCounter,
    block_cache_misses: IntCounter,
    compaction_read_bytes: IntCounter,
    compaction_write_bytes: IntCounter,
    write_stall_seconds: prometheus::Counter,
}

/// A `/sync` (or sliding sync) long-poll waiting for something to report.
pub struct Waiting(IntGauge);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    pub fn new() -> Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "conclave_http_requests_total",
                "HTTP requests answered, by method, endpoint (the route's path template) and \
                 status code",
            ),
            &["method", "endpoint", "status"],
        )
        .map_err(internal)?;
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "conclave_http_request_duration_seconds",
                "Time from a request's arrival to its answer, by method and endpoint (long-polls \
                 included)",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0,
            ]),
            &["method", "endpoint"],
        )
        .map_err(internal)?;
        let sync_waiting = IntGauge::new(
            "conclave_sync_long_polls_waiting",
            "/sync and sliding sync requests waiting for news",
        )
        .map_err(internal)?;
        let federation_queued = IntGaugeVec::new(
            Opts::new(
                "conclave_federation_queued_events",
                "Events waiting to be sent to another server",
            ),
            &["destination"],
        )
        .map_err(internal)?;
        let federation_failures = IntGaugeVec::new(
            Opts::new(
                "conclave_federation_destination_failures",
                "Failed sends to a server in a row (0: it answers)",
            ),
            &["destination"],
        )
        .map_err(internal)?;
        let appservice_queued = IntGaugeVec::new(
            Opts::new(
                "conclave_appservice_queued_events",
                "Events waiting to be sent to an application service",
            ),
            &["appservice"],
        )
        .map_err(internal)?;
        let push_workers = IntGauge::new(
            "conclave_push_delivery_users",
            "Users whose notifications are being delivered to push gateways",
        )
        .map_err(internal)?;
        let rocksdb = RocksDbMetrics::new()?;
        let metrics = Self {
            registry,
            requests,
            request_seconds,
            sync_waiting,
            federation_queued,
            federation_failures,
            appservice_queued,
            push_workers,
            rocksdb,
        };
        metrics.register_all()?;
        Ok(metrics)
    }

    fn register_all(&self) -> Result<()> {
        for collector in self.collectors() {
            self.registry.register(collector).map_err(internal)?;
        }
        Ok(())
    }

    /// The name of every metric family served, including those with no series yet (a queue
    /// gauge per partner server, say): for checking dashboards against.
    pub fn family_names(&self) -> Vec<String> {
        self.collectors()
            .iter()
            .flat_map(|collector| collector.desc())
            .map(|desc| desc.fq_name.clone())
            .collect()
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.requests.clone()),
            Box::new(self.request_seconds.clone()),
            Box::new(self.sync_waiting.clone()),
            Box::new(self.federation_queued.clone()),
            Box::new(self.federation_failures.clone()),
            Box::new(self.appservice_queued.clone()),
            Box::new(self.push_workers.clone()),
            Box::new(self.rocksdb.sizes.clone()),
            Box::new(self.rocksdb.running.clone()),
            Box::new(self.rocksdb.block_cache_hits.clone()),
            Box::new(self.rocksdb.block_cache_misses.clone()),
            Box::new(self.rocksdb.compaction_read_bytes.clone()),
            Box::new(self.rocksdb.compaction_write_bytes.clone()),
            Box::new(self.rocksdb.write_stall_seconds.clone()),
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        ]
    }

    /// Counts an answered request.
    pub fn observe_request(
        &self,
        method: &str,
        endpoint: &str,
        status: http::StatusCode,
        took: Duration,
    ) {
        self.requests
            .with_label_values(&[method, endpoint, status.as_str()])
            .inc();
        self.request_seconds
            .with_label_values(&[method, endpoint])
            .observe(took.as_secs_f64());
    }

    /// Marks a long-poll as waiting until the returned guard is dropped.
    pub fn sync_waiting(&self) -> Waiting {
        self.sync_waiting.inc();
        Waiting(self.sync_waiting.clone())
    }

    /// Reads the scrape-time figures and renders everything in Prometheus' text format.
    pub fn render(&self, services: &Services) -> Result<String> {
        self.refresh_queues(services)?;
        self.rocksdb.refresh(&services.engine.stats());
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .map_err(internal)?;
        String::from_utf8(out).map_err(internal)
    }

    fn refresh_queues(&self, services: &Services) -> Result<()> {
        // Destinations and services that went away must not linger with their last value.
        self.federation_queued.reset();
        self.federation_failures.reset();
        for destination in services.sending.status()? {
            let name = destination.server.as_str();
            self.federation_queued
                .with_label_values(&[name])
                .set(gauge(destination.queued as u64));
            self.federation_failures
                .with_label_values(&[name])
                .set(i64::from(destination.failures));
        }
        self.appservice_queued.reset();
        for service in services.appservices.all().iter() {
            let status = services.appservices.queue.status(service.id())?;
            self.appservice_queued
                .with_label_values(&[service.id()])
                .set(gauge(status.queued as u64));
        }
        self.push_workers
            .set(gauge(services.pushers.delivery.busy_users() as u64));
        Ok(())
    }
}

impl RocksDbMetrics {
    fn new() -> Result<Self> {
        let counter = |name: &str, help: &str| IntCounter::new(name, help).map_err(internal);
        Ok(Self {
            sizes: IntGaugeVec::new(
                Opts::new(
                    "conclave_rocksdb_bytes",
                    "RocksDB sizes: block_cache_capacity, block_cache_usage, block_cache_pinned, \
                     memtables, sst_files, pending_compaction",
                ),
                &["kind"],
            )
            .map_err(internal)?,
            running: IntGaugeVec::new(
                Opts::new(
                    "conclave_rocksdb_running_jobs",
                    "RocksDB background jobs running (compaction, flush)",
                ),
                &["job"],
            )
            .map_err(internal)?,
            block_cache_hits: counter(
                "conclave_rocksdb_block_cache_hits_total",
                "Reads served from RocksDB's block cache",
            )?,
            block_cache_misses: counter(
                "conclave_rocksdb_block_cache_misses_total",
                "Reads that had to go to the SST files",
            )?,
            compaction_read_bytes: counter(
                "conclave_rocksdb_compaction_read_bytes_total",
                "Bytes read by compactions",
            )?,
            compaction_write_bytes: counter(
                "conclave_rocksdb_compaction_written_bytes_total",
                "Bytes written by compactions",
            )?,
            write_stall_seconds: prometheus::Counter::new(
                "conclave_rocksdb_write_stall_seconds_total",
                "Time writes were held back while compaction caught up",
            )
            .map_err(internal)?,
        })
    }

    fn refresh(&self, stats: &crate::storage::stats::EngineStats) {
        for (kind, value) in [
            ("block_cache_capacity", stats.block_cache_capacity_bytes),
            ("block_cache_usage", stats.block_cache_usage_bytes),
            ("block_cache_pinned", stats.block_cache_pinned_bytes),
            ("memtables", stats.memtable_bytes),
            ("sst_files", stats.sst_bytes),
            ("pending_compaction", stats.pending_compaction_bytes),
        ] {
            self.sizes.with_label_values(&[kind]).set(gauge(value));
        }
        self.running
            .with_label_values(&["compaction"])
            .set(gauge(stats.running_compactions));
        self.running
            .with_label_values(&["flush"])
            .set(gauge(stats.running_flushes));
        if let Some(tickers) = stats.tickers {
            catch_up(&self.block_cache_hits, tickers.block_cache_hits);
            catch_up(&self.block_cache_misses, tickers.block_cache_misses);
            catch_up(&self.compaction_read_bytes, tickers.compaction_read_bytes);
            catch_up(&self.compaction_write_bytes, tickers.compaction_write_bytes);
            let stalled = tickers.write_stall_micros as f64 / 1e6;
            let seen = self.write_stall_seconds.get();
            if stalled > seen {
                self.write_stall_seconds.inc_by(stalled - seen);
            }
        }
    }
}

/// Moves a counter up to RocksDB's cumulative ticker.
fn catch_up(counter: &IntCounter, total: u64) {
    let seen = counter.get();
    if total > seen {
        counter.inc_by(total - seen);
    }
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn internal(error: impl std::fmt::Display) -> Error {
    Error::internal(format!("metrics: {error}"))
}
