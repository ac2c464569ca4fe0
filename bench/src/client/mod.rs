//! HTTP plumbing shared by every request: one connection pool per simulated user, errors
//! that say which request failed and how, and rate-limit handling.
//!
//! Two policies: [`Policy::Setup`] retries `429 M_LIMIT_EXCEEDED` (after `retry_after_ms`)
//! and transient network errors, because preparing a benchmark must not fail on a server's
//! rate limits; [`Policy::Once`] makes one attempt, for measured operations, whose failures
//! the scenario counts instead. The Matrix endpoints themselves are in `matrix.rs`.

mod matrix;

pub use matrix::*;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde_json::Value;

use crate::error::BenchError;

/// Default request timeout: longer than a 30 s long-poll plus slack.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Timeout for a full initial /sync, which can be slow on big accounts.
pub const INITIAL_SYNC_TIMEOUT: Duration = Duration::from_secs(180);
/// The longest single wait a `retry_after_ms` can impose during setup.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(120);
/// Network errors retried during setup before giving up.
const NETWORK_RETRIES: u32 = 3;

/// Whether a request is part of setup (retried) or measured (one attempt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Setup,
    Once,
}

/// Counts of what setup had to absorb, reported so a slow setup can be explained.
#[derive(Debug, Default)]
pub struct SetupStats {
    pub rate_limited: AtomicU64,
    pub network_retries: AtomicU64,
}

/// A failed request: an HTTP error answer or a network failure.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The request, e.g. `PUT /_matrix/client/v3/rooms/!r:x/send/...`.
    pub what: String,
    pub status: Option<u16>,
    pub errcode: Option<String>,
    /// The answer's body when it was JSON (boxed: errors travel in `Result`s).
    pub json: Option<Box<Value>>,
    /// The body (truncated) or the network error.
    pub detail: String,
    pub retry_after_ms: Option<u64>,
    /// Set for timeouts, refused connections and the like.
    pub network: bool,
}

impl ApiError {
    /// An error that is not about HTTP (an answer missing a field, an unusable UIA flow).
    pub fn other(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            status: None,
            errcode: None,
            json: None,
            detail: detail.into(),
            retry_after_ms: None,
            network: false,
        }
    }

    /// The key under which scenarios tally this failure.
    pub fn kind(&self) -> String {
        if let Some(code) = &self.errcode {
            return code.clone();
        }
        if let Some(status) = self.status {
            return format!("http {status}");
        }
        if self.network {
            if self.detail.contains("timed out") {
                return "network: timeout".to_owned();
            }
            if self.detail.contains("connect") {
                return "network: connect".to_owned();
            }
            return "network: other".to_owned();
        }
        "bad response".to_owned()
    }

    pub fn is_rate_limited(&self) -> bool {
        self.status == Some(429) || self.errcode.as_deref() == Some("M_LIMIT_EXCEEDED")
    }

    /// How long to back off after a rate limit (the server's word, else one second).
    pub fn backoff(&self) -> Duration {
        Duration::from_millis(self.retry_after_ms.unwrap_or(1000)).min(MAX_RETRY_WAIT)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "{} failed: HTTP {status}: {}", self.what, self.detail),
            None if self.network => {
                write!(f, "{} failed: network error: {}", self.what, self.detail)
            }
            None => write!(f, "{} failed: {}", self.what, self.detail),
        }
    }
}

/// A successful answer and the moment its body was fully received.
#[derive(Debug)]
pub struct Answer {
    pub body: Value,
    pub received: Instant,
    pub bytes: usize,
}

/// One request, built once and sent possibly several times.
#[derive(Debug, Clone)]
pub struct Req {
    method: Method,
    path: String,
    token: Option<String>,
    body: Option<Vec<u8>>,
    timeout: Duration,
}

impl Req {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            token: None,
            body: None,
            timeout: REQUEST_TIMEOUT,
        }
    }

    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    pub fn post(path: impl Into<String>) -> Self {
        Self::new(Method::POST, path)
    }

    pub fn put(path: impl Into<String>) -> Self {
        Self::new(Method::PUT, path)
    }

    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    pub fn json(mut self, body: &Value) -> Self {
        self.body = Some(body.to_string().into_bytes());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `METHOD /path` without the query, for error messages.
    fn describe(&self) -> String {
        let path = self.path.split('?').next().unwrap_or(&self.path);
        format!("{} {path}", self.method)
    }
}

/// One HTTP connection pool to the homeserver. Each simulated user gets its own, so "16
/// concurrent senders" really are 16 connections.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: Arc<str>,
    stats: Arc<SetupStats>,
}

impl Api {
    pub fn new(base: &str, stats: Arc<SetupStats>) -> Result<Self, BenchError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(4)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .user_agent(concat!("conclave-bench/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BenchError::Other(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: Arc::from(base.trim_end_matches('/')),
            stats,
        })
    }

    /// A new connection pool to the same server (for a user of its own).
    pub fn fresh(&self) -> Result<Self, BenchError> {
        Self::new(&self.base, self.stats.clone())
    }

    pub fn stats(&self) -> &Arc<SetupStats> {
        &self.stats
    }

    /// One attempt.
    pub async fn send(&self, req: &Req) -> Result<Answer, ApiError> {
        let url = format!("{}{}", self.base, req.path);
        let mut builder = self
            .http
            .request(req.method.clone(), url)
            .timeout(req.timeout);
        if let Some(token) = &req.token {
            builder = builder.bearer_auth(token);
        }
        if let Some(body) = &req.body {
            builder = builder
                .header("content-type", "application/json")
                .body(body.clone());
        }
        let network = |e: reqwest::Error| ApiError {
            network: true,
            ..ApiError::other(req.describe(), error_chain(&e))
        };
        let response = builder.send().await.map_err(network)?;
        let status = response.status();
        let retry_header = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|secs| secs * 1000);
        let bytes = response.bytes().await.map_err(network)?;
        let received = Instant::now();
        let json: Option<Value> = serde_json::from_slice(&bytes).ok();
        if status.is_success() {
            let body = match json {
                Some(v) => v,
                None if bytes.is_empty() => Value::Null,
                None => {
                    return Err(ApiError {
                        status: Some(status.as_u16()),
                        ..ApiError::other(req.describe(), "the answer is not JSON")
                    });
                }
            };
            return Ok(Answer {
                body,
                received,
                bytes: bytes.len(),
            });
        }
        let errcode = json
            .as_ref()
            .and_then(|j| j.get("errcode"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let retry_after_ms = json
            .as_ref()
            .and_then(|j| j.get("retry_after_ms"))
            .and_then(Value::as_u64)
            .or(retry_header);
        let text = String::from_utf8_lossy(&bytes);
        Err(ApiError {
            what: req.describe(),
            status: Some(status.as_u16()),
            errcode,
            json: json.map(Box::new),
            detail: truncate(&text, 400),
            retry_after_ms,
            network: false,
        })
    }

    /// Setup attempts: rate limits are waited out (as often as the server asks), network
    /// errors retried a few times with backoff.
    pub async fn send_retry(&self, req: &Req) -> Result<Answer, ApiError> {
        let mut network_failures = 0;
        loop {
            match self.send(req).await {
                Err(e) if e.is_rate_limited() => {
                    self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(e.backoff()).await;
                }
                Err(e) if e.network && network_failures < NETWORK_RETRIES => {
                    network_failures += 1;
                    self.stats.network_retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(network_failures)))
                        .await;
                }
                other => return other,
            }
        }
    }

    pub async fn call(&self, req: &Req, policy: Policy) -> Result<Answer, ApiError> {
        match policy {
            Policy::Setup => self.send_retry(req).await,
            Policy::Once => self.send(req).await,
        }
    }

    /// `GET /_matrix/client/versions`: the spec versions and the `Server` header.
    pub async fn versions(&self) -> Result<(Value, Option<String>), ApiError> {
        let what = "GET /_matrix/client/versions";
        let response = self
            .http
            .get(format!("{}/_matrix/client/versions", self.base))
            .send()
            .await
            .map_err(|e| ApiError {
                network: true,
                ..ApiError::other(what, error_chain(&e))
            })?;
        let status = response.status();
        let server = response
            .headers()
            .get("server")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(ApiError {
                status: Some(status.as_u16()),
                ..ApiError::other(what, truncate(&text, 400))
            });
        }
        let body: Value = serde_json::from_str(&text)
            .map_err(|_| ApiError::other(what, "the answer is not JSON"))?;
        Ok((body.get("versions").cloned().unwrap_or(Value::Null), server))
    }
}

/// Microseconds since the Unix epoch: what messages carry, so receivers on this machine can
/// compute delivery latency.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Percent-encodes a path or query component (everything but RFC 3986 unreserved).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A reqwest error with its causes ("error sending request: connection refused").
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if e.is_timeout() && !text.contains("timed out") {
        text.push_str(": timed out");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_ids() {
        assert_eq!(enc("!abc:example.org"), "%21abc%3Aexample.org");
        assert_eq!(enc("@u_1:x"), "%40u_1%3Ax");
        assert_eq!(enc("s72_1~2"), "s72_1~2");
    }

    #[test]
    fn error_kinds() {
        let mut e = ApiError::other("GET /x", "boom");
        assert_eq!(e.kind(), "bad response");
        e.status = Some(500);
        assert_eq!(e.kind(), "http 500");
        e.errcode = Some("M_LIMIT_EXCEEDED".to_owned());
        assert_eq!(e.kind(), "M_LIMIT_EXCEEDED");
        assert!(e.is_rate_limited());
        assert_eq!(e.backoff(), Duration::from_secs(1));
        e.retry_after_ms = Some(10_000_000);
        assert_eq!(e.backoff(), MAX_RETRY_WAIT);
        assert!(e.to_string().contains("GET /x failed: HTTP 500"));
    }
}
