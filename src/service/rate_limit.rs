//! Token-bucket rate limits for login and registration, keyed by client IP or user. Kept in
//! memory: they only guard against guessing and floods, so losing them on restart is harmless.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::config::RateLimit;
use crate::error::{Error, ErrorCode, Result};

/// Past this many tracked keys, full (idle) buckets are forgotten.
const MAX_TRACKED: usize = 10_000;

#[derive(Default)]
pub struct Service {
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Service {
    /// Takes one token from the bucket of `key`, or fails with `M_LIMIT_EXCEEDED` saying when
    /// the next token arrives.
    pub fn check(&self, key: String, limit: &RateLimit) -> Result<()> {
        let burst = f64::from(limit.burst.max(1));
        let rate = limit.per_second.max(f64::MIN_POSITIVE);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_TRACKED {
            buckets.retain(|_, bucket| {
                bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() * rate < burst
            });
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let refill = now.duration_since(bucket.updated).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait_secs = (1.0 - bucket.tokens) / rate;
            let retry_after_ms = (wait_secs * 1000.0).ceil().min(u64::MAX as f64) as u64;
            Err(Error::new(
                ErrorCode::LimitExceeded { retry_after_ms },
                "Too many requests; try again later",
            ))
        }
    }
}
