//! `steady-chat`: the everyday load. Every user of the population long-polls /sync while a
//! few senders post at a fixed total rate into their rooms. Measures send latency and
//! send→delivery latency (from the timestamp in the message to its arrival in each other
//! member's /sync).
//!
//! Senders are open-loop: each message is due at a fixed time whether or not earlier ones
//! have been answered (up to a cap of in-flight sends), so a slow server shows up as higher
//! latency rather than as a quietly lower rate.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::task::JoinSet;

use super::sync::long_poll_filter;
use super::{Ctx, Outcome, RUN_TAG, SENT_AT, message, ms, secs_since};
use crate::client::{ApiError, Policy, User, next_batch, now_us, timeline_events};
use crate::error::BenchError;
use crate::setup::{Rng, bounded};
use crate::stats::{ErrorTally, Samples};

/// In-flight sends a sender may have before it skips a due message.
const MAX_IN_FLIGHT: usize = 32;

/// A room a sender posts into, and how many other members (receivers) it has.
type Target = (String, u64);

/// What the receivers share.
struct Inbox {
    tag: String,
    start: Instant,
    stop: AtomicBool,
    delivered: AtomicU64,
    /// Room timelines cut short by the filter's limit (events that cannot be delivered).
    limited: AtomicU64,
    samples: Mutex<Samples>,
    errors: Mutex<ErrorTally>,
}

pub async fn steady_chat(ctx: &Ctx) -> Result<Outcome, BenchError> {
    let knobs = &ctx.knobs;
    let rooms = ctx.env.pool_rooms();
    if rooms.is_empty() {
        return Err(BenchError::Config(
            "steady-chat needs a population with rooms (--rooms > 0)".into(),
        ));
    }
    let member_set: BTreeSet<usize> = rooms
        .iter()
        .flat_map(|r| r.members.iter().copied())
        .collect();
    let highest = member_set.iter().max().copied().unwrap_or(0);
    let pool = ctx.env.users(highest + 1).await?;
    let members: Vec<usize> = member_set.into_iter().collect();

    // Every member: a filter and an initial sync, so the timed phase only sees new events.
    let bar = ctx.env.progress.bar(members.len() as u64, "initial syncs");
    let syncing: Vec<Arc<User>> = members.iter().map(|&i| pool[i].clone()).collect();
    let tokens = bounded(
        syncing.clone(),
        ctx.env.concurrency,
        &bar,
        |user| async move {
            let filter = user.upload_filter(&long_poll_filter()).await?;
            let since = super::sync::initial_since(&user, &filter).await?;
            Ok((filter, since))
        },
    )
    .await?;
    bar.finish_and_clear();

    // Senders: the first `chat_senders` members, each posting into its own rooms.
    let mut rooms_of: HashMap<usize, Vec<Target>> = HashMap::new();
    for room in &rooms {
        for &m in &room.members {
            let others = room.members.len().saturating_sub(1) as u64;
            rooms_of
                .entry(m)
                .or_default()
                .push((room.room_id.clone(), others));
        }
    }
    if members.is_empty() {
        return Err(BenchError::Other(
            "steady-chat: the rooms have no members".into(),
        ));
    }
    let sender_count = knobs.chat_senders.max(1).min(members.len());
    let senders: Vec<(Arc<User>, Vec<Target>)> = members[..sender_count]
        .iter()
        .map(|&i| (pool[i].clone(), rooms_of.remove(&i).unwrap_or_default()))
        .collect();
    super::send::warm_all(
        ctx,
        &senders.iter().map(|s| s.0.clone()).collect::<Vec<_>>(),
    )
    .await?;

    let rate = knobs.chat_rate.max(0.001);
    let duration = Duration::from_secs_f64(knobs.chat_duration_secs.max(0.0));
    let interval = Duration::from_secs_f64(sender_count as f64 / rate);
    let seed = ctx
        .env
        .rng
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .next_u64();
    let clock = ctx.clock_bar(
        knobs.chat_duration_secs + knobs.chat_grace_secs,
        "steady-chat",
    );
    let start = ctx.begin();
    let inbox = Arc::new(Inbox {
        tag: format!("{}-chat", ctx.env.prefix),
        start,
        stop: AtomicBool::new(false),
        delivered: AtomicU64::new(0),
        limited: AtomicU64::new(0),
        samples: Mutex::new(Samples::new()),
        errors: Mutex::new(ErrorTally::new()),
    });
    let mut receivers = JoinSet::new();
    for (user, (filter, since)) in syncing.into_iter().zip(tokens) {
        receivers.spawn(receive(user, filter, since, inbox.clone()));
    }
    let deadline = start + duration;
    let mut sending = JoinSet::new();
    for (s, (user, my_rooms)) in senders.into_iter().enumerate() {
        // Senders are staggered across one interval, so the total rate is smooth.
        let schedule = Schedule {
            start,
            first: start + interval.mul_f64(s as f64 / sender_count as f64),
            interval,
            deadline,
        };
        let tag = inbox.tag.clone();
        let rng = Rng::new(seed.wrapping_add(s as u64));
        sending.spawn(send_loop(user, my_rooms, schedule, tag, s, rng));
    }
    let mut out = Outcome::default();
    let mut expected = 0u64;
    let mut skipped = 0u64;
    while let Some(joined) = sending.join_next().await {
        let sender = joined?;
        out.latency.extend(sender.latency);
        out.errors.merge(sender.errors);
        out.ops += sender.ok;
        expected += sender.expected;
        skipped += sender.skipped;
    }
    let sends_done = Instant::now();
    let grace_end = sends_done + Duration::from_secs_f64(knobs.chat_grace_secs.max(0.0));
    while inbox.delivered.load(Ordering::Relaxed) < expected && Instant::now() < grace_end {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    inbox.stop.store(true, Ordering::Relaxed);
    receivers.abort_all();
    let end = ctx.end();
    drop(clock);

    let delivered = inbox.delivered.load(Ordering::Relaxed);
    let delivery = std::mem::take(&mut *inbox.samples.lock().unwrap_or_else(|e| e.into_inner()));
    let sync_errors = std::mem::take(&mut *inbox.errors.lock().unwrap_or_else(|e| e.into_inner()));
    out.errors.merge(sync_errors);
    out.errors.add_n("skipped (sender saturated)", skipped);
    out.errors
        .add_n("undelivered", expected.saturating_sub(delivered));
    out.wall = sends_done - start;
    out.window = Some((start, end));
    out.delivery = Some(delivery);
    out.extra("target_rate_per_sec", rate);
    out.extra("senders", sender_count);
    out.extra("syncing_users", members.len());
    out.extra("expected_deliveries", expected);
    out.extra("deliveries", delivered);
    out.extra("limited_timelines", inbox.limited.load(Ordering::Relaxed));
    Ok(out)
}

/// What one sender did.
struct SenderResult {
    latency: Samples,
    errors: ErrorTally,
    ok: u64,
    /// Deliveries owed by the successful sends (other members of each room).
    expected: u64,
    skipped: u64,
}

/// When one sender's messages are due.
struct Schedule {
    /// Scenario start (sample times are relative to it).
    start: Instant,
    first: Instant,
    interval: Duration,
    deadline: Instant,
}

/// (send start, its latency, receivers owed, result)
type Sent = (Instant, Duration, u64, Result<String, ApiError>);

fn collect(
    joined: Result<Sent, tokio::task::JoinError>,
    start: Instant,
    result: &mut SenderResult,
) {
    if let Ok((t0, took, others, sent)) = joined {
        match sent {
            Ok(_) => {
                result.latency.push(secs_since(start, t0), ms(took));
                result.ok += 1;
                result.expected += others;
            }
            Err(e) => result.errors.add(e.kind()),
        }
    }
}

async fn send_loop(
    user: Arc<User>,
    rooms: Vec<Target>,
    schedule: Schedule,
    tag: String,
    sender: usize,
    mut rng: Rng,
) -> SenderResult {
    let mut result = SenderResult {
        latency: Samples::new(),
        errors: ErrorTally::new(),
        ok: 0,
        expected: 0,
        skipped: 0,
    };
    if rooms.is_empty() {
        return result;
    }
    let start = schedule.start;
    let mut in_flight: JoinSet<Sent> = JoinSet::new();
    let mut due = schedule.first;
    let mut seq = 0u64;
    while due < schedule.deadline {
        tokio::time::sleep_until(due.into()).await;
        due += schedule.interval;
        while let Some(joined) = in_flight.try_join_next() {
            collect(joined, start, &mut result);
        }
        if in_flight.len() >= MAX_IN_FLIGHT {
            result.skipped += 1;
            continue;
        }
        let (room, others) = rooms[rng.below(rooms.len())].clone();
        let txn = format!("{tag}-{sender}-{seq}");
        let content = message(&tag, seq);
        seq += 1;
        let user = user.clone();
        in_flight.spawn(async move {
            let t0 = Instant::now();
            let sent = user.send_message(&room, &txn, &content, Policy::Once).await;
            (t0, t0.elapsed(), others, sent)
        });
    }
    while let Some(joined) = in_flight.join_next().await {
        collect(joined, start, &mut result);
    }
    result
}

/// One user's long-poll loop: records the delivery latency of every benchmark message (of
/// this run, sent by someone else) that arrives.
async fn receive(user: Arc<User>, filter: String, mut since: String, inbox: Arc<Inbox>) {
    while !inbox.stop.load(Ordering::Relaxed) {
        let answer = match user
            .sync(
                &user.access_token,
                Some(&since),
                &filter,
                30_000,
                Policy::Once,
            )
            .await
        {
            Ok(answer) => answer,
            Err(e) => {
                inbox
                    .errors
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .add(format!("sync: {}", e.kind()));
                let pause = if e.is_rate_limited() {
                    e.backoff()
                } else {
                    Duration::from_millis(500)
                };
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        // Wall-clock time at which the body arrived (messages carry wall-clock send times).
        let arrived_us = now_us().saturating_sub(answer.received.elapsed().as_micros() as u64);
        let arrived_at = secs_since(inbox.start, answer.received);
        let limited = answer
            .body
            .pointer("/rooms/join")
            .and_then(Value::as_object)
            .map_or(0, |rooms| {
                rooms
                    .values()
                    .filter(|r| r.pointer("/timeline/limited") == Some(&Value::Bool(true)))
                    .count()
            });
        if limited > 0 {
            inbox.limited.fetch_add(limited as u64, Ordering::Relaxed);
        }
        let mut found = Vec::new();
        for (_, event) in timeline_events(&answer.body) {
            if event.get("type").and_then(Value::as_str) != Some("m.room.message")
                || event.get("sender").and_then(Value::as_str) == Some(user.user_id.as_str())
            {
                continue;
            }
            let content = event.get("content");
            let ours = content.and_then(|c| c.get(RUN_TAG)).and_then(Value::as_str)
                == Some(inbox.tag.as_str());
            let sent_at = content.and_then(|c| c.get(SENT_AT)).and_then(Value::as_u64);
            if let (true, Some(sent_at)) = (ours, sent_at) {
                let latency_ms = arrived_us.saturating_sub(sent_at) as f64 / 1000.0;
                // Plotted at the send time, like the send latencies.
                found.push(((arrived_at - latency_ms / 1000.0).max(0.0), latency_ms));
            }
        }
        if !found.is_empty() {
            inbox
                .delivered
                .fetch_add(found.len() as u64, Ordering::Relaxed);
            let mut samples = inbox.samples.lock().unwrap_or_else(|e| e.into_inner());
            for (t, latency_ms) in found {
                samples.push(t, latency_ms);
            }
        }
        if let Some(next) = next_batch(&answer.body) {
            since = next;
        }
    }
}
