//! The scenarios, what they share (context, message format, outcome) and how an outcome
//! becomes a report entry.
//!
//! Each scenario prepares what it needs without timing it (rooms, messages, fresh devices,
//! warm connections), then times only the measured part, bracketed by [`Ctx::begin`] and
//! [`Ctx::end`] so the server's CPU and memory are attributed to that window.

mod burst;
mod chat;
mod send;
mod sync;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{ApiError, now_us};
use crate::error::BenchError;
use crate::report::{MAX_SAMPLES, ScenarioReport};
use crate::resources::Monitor;
use crate::setup::Env;
use crate::stats::{ErrorTally, Samples, round3};

/// Content key carrying the send time (Unix microseconds).
pub const SENT_AT: &str = "org.conclave.bench.sent_at_us";
/// Content key carrying the run's tag, so receivers ignore messages of other runs.
pub const RUN_TAG: &str = "org.conclave.bench.run";

/// Every scenario, in the order a run performs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    IdleRss,
    SequentialSend,
    ConcurrentSend,
    Wakeup,
    InitialSyncHistory,
    InitialSyncRooms,
    SteadyChat,
    JoinStorm,
    LoginBurst,
    RegisterBurst,
}

/// Names in run order (also the order of report tables).
pub const SCENARIO_ORDER: &[&str] = &[
    "idle-rss",
    "sequential-send",
    "concurrent-send",
    "wakeup",
    "initial-sync-history",
    "initial-sync-rooms",
    "steady-chat",
    "join-storm",
    "login-burst",
    "register-burst",
];

impl Scenario {
    pub const ALL: [Scenario; 10] = [
        Scenario::IdleRss,
        Scenario::SequentialSend,
        Scenario::ConcurrentSend,
        Scenario::Wakeup,
        Scenario::InitialSyncHistory,
        Scenario::InitialSyncRooms,
        Scenario::SteadyChat,
        Scenario::JoinStorm,
        Scenario::LoginBurst,
        Scenario::RegisterBurst,
    ];

    pub fn name(self) -> &'static str {
        SCENARIO_ORDER[Self::ALL.iter().position(|s| *s == self).unwrap_or(0)]
    }

    /// `a,b,c` (or `all`) into scenarios in run order, without duplicates.
    pub fn parse_list(text: &str) -> Result<Vec<Scenario>, BenchError> {
        let mut chosen = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "all" {
                chosen.extend(Self::ALL);
                continue;
            }
            let found = Self::ALL.iter().find(|s| s.name() == part).ok_or_else(|| {
                BenchError::Config(format!(
                    "unknown scenario {part:?}; known: all, {}",
                    SCENARIO_ORDER.join(", ")
                ))
            })?;
            chosen.push(*found);
        }
        Ok(Self::in_run_order(&chosen))
    }

    /// Deduplicated, in run order.
    pub fn in_run_order(chosen: &[Scenario]) -> Vec<Scenario> {
        Self::ALL
            .into_iter()
            .filter(|s| chosen.contains(s))
            .collect()
    }
}

/// Scenario knobs. Defaults are small enough for a laptop run of a few minutes.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct Knobs {
    /// concurrent-send: senders, each its own user and connection, into one room.
    #[arg(long, default_value_t = 16)]
    pub send_concurrency: usize,
    /// concurrent-send: how long to send.
    #[arg(long, default_value_t = 10.0)]
    pub send_duration_secs: f64,
    /// concurrent-send: stop after this many messages in total (whichever comes first).
    #[arg(long)]
    pub send_messages: Option<u64>,
    /// sequential-send: sends, one after another on one connection.
    #[arg(long, default_value_t = 200)]
    pub sequential_sends: usize,
    /// wakeup: repetitions.
    #[arg(long, default_value_t = 50)]
    pub wakeup_reps: usize,
    /// wakeup: wait after starting B's long-poll before A sends (so it is parked).
    #[arg(long, default_value_t = 100)]
    pub wakeup_delay_ms: u64,
    /// initial-sync-history: messages in the room.
    #[arg(long, default_value_t = 200)]
    pub history_messages: usize,
    /// initial-sync-*: timed initial syncs, each on a freshly logged-in device.
    #[arg(long, default_value_t = 10)]
    pub sync_reps: usize,
    /// initial-sync-rooms: rooms the user is in.
    #[arg(long, default_value_t = 300)]
    pub sync_rooms: usize,
    /// initial-sync-rooms: messages in each of those rooms.
    #[arg(long, default_value_t = 3)]
    pub sync_room_messages: usize,
    /// steady-chat: users sending (the first users of the population).
    #[arg(long, default_value_t = 4)]
    pub chat_senders: usize,
    /// steady-chat: target messages per second, all senders together.
    #[arg(long, default_value_t = 10.0)]
    pub chat_rate: f64,
    /// steady-chat: how long to send.
    #[arg(long, default_value_t = 15.0)]
    pub chat_duration_secs: f64,
    /// steady-chat: how long after the last send to wait for deliveries.
    #[arg(long, default_value_t = 5.0)]
    pub chat_grace_secs: f64,
    /// join-storm: users joining one room at the same moment.
    #[arg(long, default_value_t = 20)]
    pub join_storm_users: usize,
    /// login-burst: simultaneous logins (cycling over the population's users).
    #[arg(long, default_value_t = 20)]
    pub login_burst: usize,
    /// register-burst: simultaneous registrations of new accounts.
    #[arg(long, default_value_t = 10)]
    pub register_burst: usize,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            send_concurrency: 16,
            send_duration_secs: 10.0,
            send_messages: None,
            sequential_sends: 200,
            wakeup_reps: 50,
            wakeup_delay_ms: 100,
            history_messages: 200,
            sync_reps: 10,
            sync_rooms: 300,
            sync_room_messages: 3,
            chat_senders: 4,
            chat_rate: 10.0,
            chat_duration_secs: 15.0,
            chat_grace_secs: 5.0,
            join_storm_users: 20,
            login_burst: 20,
            register_burst: 10,
        }
    }
}

/// What a scenario gets: the population, the knobs, the resource monitor.
pub struct Ctx {
    pub env: Env,
    pub knobs: Knobs,
    pub monitor: Option<Monitor>,
}

impl Ctx {
    /// Start of a measured window (the reading taken here falls inside it).
    pub fn begin(&self) -> Instant {
        let now = Instant::now();
        if let Some(m) = &self.monitor {
            m.mark();
        }
        now
    }

    /// End of a measured window (the reading taken here falls inside it).
    pub fn end(&self) -> Instant {
        if let Some(m) = &self.monitor {
            m.mark();
        }
        Instant::now()
    }

    /// A bar whose position follows elapsed seconds until dropped.
    pub fn clock_bar(&self, secs: f64, message: &str) -> ClockBar {
        let bar = self.env.progress.timed(secs.ceil() as u64, message);
        let ticking = bar.clone();
        let started = Instant::now();
        let task = tokio::spawn(async move {
            loop {
                ticking.set_position(started.elapsed().as_secs());
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        ClockBar { bar, task }
    }
}

/// See [`Ctx::clock_bar`].
pub struct ClockBar {
    bar: ProgressBar,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ClockBar {
    fn drop(&mut self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}

/// What a scenario measured.
#[derive(Debug, Default)]
pub struct Outcome {
    pub ops: u64,
    pub errors: ErrorTally,
    pub wall: Duration,
    pub latency: Samples,
    pub delivery: Option<Samples>,
    /// The measured window, for resource attribution.
    pub window: Option<(Instant, Instant)>,
    pub extra: BTreeMap<String, Value>,
}

impl Outcome {
    pub fn extra(&mut self, key: &str, value: impl Serialize) {
        self.extra.insert(
            key.to_owned(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
    }

    pub fn into_report(self, monitor: Option<&Monitor>) -> ScenarioReport {
        let wall = self.wall.as_secs_f64();
        let usage = match (monitor, self.window) {
            (Some(m), Some((start, end))) => m.window(start, end),
            _ => None,
        };
        let delivery = self.delivery.unwrap_or_default();
        ScenarioReport {
            ops: self.ops,
            errors: self.errors.total(),
            error_kinds: self.errors.into_map(),
            wall_secs: round3(wall),
            throughput_per_sec: if wall > 0.0 {
                round3(self.ops as f64 / wall)
            } else {
                0.0
            },
            latency_ms: self.latency.summary(),
            delivery_ms: delivery.summary(),
            cpu_percent: usage.map(|u| u.cpu_percent),
            peak_rss_bytes: usage.map(|u| u.peak_rss_bytes),
            samples: self.latency.decimated(MAX_SAMPLES),
            delivery_samples: delivery.decimated(MAX_SAMPLES),
            extra: self.extra,
        }
    }
}

/// A scenario that could not even be prepared: reported, not fatal to the run.
pub fn failed(error: &BenchError) -> ScenarioReport {
    ScenarioReport {
        errors: 1,
        error_kinds: BTreeMap::from([("setup failed".to_owned(), 1)]),
        extra: BTreeMap::from([("setup_error".to_owned(), json!(error.to_string()))]),
        ..Default::default()
    }
}

/// Runs one scenario (not `idle-rss`, which the run handles before any load).
pub async fn run(ctx: &Ctx, scenario: Scenario) -> Result<Outcome, BenchError> {
    match scenario {
        Scenario::IdleRss => Ok(Outcome::default()),
        Scenario::SequentialSend => send::sequential(ctx).await,
        Scenario::ConcurrentSend => send::concurrent(ctx).await,
        Scenario::Wakeup => sync::wakeup(ctx).await,
        Scenario::InitialSyncHistory => sync::initial_history(ctx).await,
        Scenario::InitialSyncRooms => sync::initial_rooms(ctx).await,
        Scenario::SteadyChat => chat::steady_chat(ctx).await,
        Scenario::JoinStorm => burst::join_storm(ctx).await,
        Scenario::LoginBurst => burst::login_burst(ctx).await,
        Scenario::RegisterBurst => burst::register_burst(ctx).await,
    }
}

/// A benchmark message: carries its send time and the run's tag.
pub fn message(tag: &str, seq: u64) -> Value {
    json!({
        "msgtype": "m.text",
        "body": format!("conclave-bench message {seq}"),
        SENT_AT: now_us(),
        RUN_TAG: tag,
    })
}

/// Counts a measured failure and, if the server asked, waits before going on (hammering a
/// rate-limited server would only measure the limiter).
pub async fn absorb(error: &ApiError, errors: &mut ErrorTally) {
    errors.add(error.kind());
    if error.is_rate_limited() {
        tokio::time::sleep(error.backoff()).await;
    }
}

/// Milliseconds of a duration.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Seconds from `start` to `t` (0 if before).
pub fn secs_since(start: Instant, t: Instant) -> f64 {
    t.saturating_duration_since(start).as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_and_lists() {
        assert_eq!(Scenario::ALL.len(), SCENARIO_ORDER.len());
        for s in Scenario::ALL {
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                json!(s.name()),
                "serde name of {s:?}"
            );
            let value = s.to_possible_value().unwrap();
            assert_eq!(value.get_name(), s.name());
        }
        let list = Scenario::parse_list("wakeup, sequential-send,wakeup").unwrap();
        assert_eq!(list, vec![Scenario::SequentialSend, Scenario::Wakeup]);
        assert_eq!(Scenario::parse_list("all").unwrap().len(), 10);
        assert!(Scenario::parse_list("nope").is_err());
    }

    #[test]
    fn messages_carry_time_and_tag() {
        let before = now_us();
        let m = message("benchabc", 3);
        assert_eq!(m[RUN_TAG], "benchabc");
        assert!(m[SENT_AT].as_u64().unwrap() >= before);
        assert_eq!(m["msgtype"], "m.text");
    }
}
