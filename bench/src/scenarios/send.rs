//! Message sending: one connection sending sequentially (pure per-request latency), and many
//! users each on their own connection sending into one room as fast as they can (write
//! throughput and contention on one room).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Ctx, Outcome, absorb, message, ms, secs_since};
use crate::client::{Policy, User};
use crate::error::BenchError;
use crate::setup::bounded;
use crate::stats::{ErrorTally, Samples};

/// `sequential-send`: one user, one kept-alive connection, S sends one after another.
pub async fn sequential(ctx: &Ctx) -> Result<Outcome, BenchError> {
    let sends = ctx.knobs.sequential_sends;
    let user = ctx.env.users(1).await?.remove(0);
    let room = ctx
        .env
        .room_with(&user, std::slice::from_ref(&user), "sequential-send")
        .await?;
    user.warm_up().await?;
    let tag = format!("{}-seq", ctx.env.prefix);
    let bar = ctx.env.progress.bar(sends as u64, "sequential-send");
    let mut out = Outcome::default();
    let mut latency = Samples::new();
    let start = ctx.begin();
    for i in 0..sends {
        let txn = format!("{tag}-{i}");
        let t0 = Instant::now();
        match user
            .send_message(&room, &txn, &message(&tag, i as u64), Policy::Once)
            .await
        {
            Ok(_) => {
                latency.push(secs_since(start, t0), ms(t0.elapsed()));
                out.ops += 1;
            }
            Err(e) => absorb(&e, &mut out.errors).await,
        }
        bar.inc(1);
    }
    let end = ctx.end();
    bar.finish_and_clear();
    out.wall = end - start;
    out.latency = latency;
    out.window = Some((start, end));
    out.extra("room_id", &room);
    Ok(out)
}

/// `concurrent-send`: C users, each with its own connection, send into one room as fast as
/// possible until the duration (or the total message count) is reached.
pub async fn concurrent(ctx: &Ctx) -> Result<Outcome, BenchError> {
    let knobs = &ctx.knobs;
    let senders = knobs.send_concurrency.max(1);
    let users = ctx.env.users(senders).await?;
    let room = ctx
        .env
        .room_with(&users[0], &users, "concurrent-send")
        .await?;
    warm_all(ctx, &users).await?;
    let duration = Duration::from_secs_f64(knobs.send_duration_secs.max(0.0));
    let cap = knobs.send_messages.unwrap_or(u64::MAX);
    let issued = Arc::new(AtomicU64::new(0));
    let tag = format!("{}-conc", ctx.env.prefix);
    let clock = ctx.clock_bar(knobs.send_duration_secs, "concurrent-send");
    let start = ctx.begin();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (s, user) in users.iter().enumerate() {
        let user = user.clone();
        let room = room.clone();
        let issued = issued.clone();
        let tag = tag.clone();
        tasks.spawn(async move {
            let mut latency = Samples::new();
            let mut errors = ErrorTally::new();
            let mut ok = 0u64;
            let mut i = 0u64;
            while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < cap {
                let txn = format!("{tag}-{s}-{i}");
                let content = message(&tag, i);
                i += 1;
                let t0 = Instant::now();
                match user.send_message(&room, &txn, &content, Policy::Once).await {
                    Ok(_) => {
                        latency.push(secs_since(start, t0), ms(t0.elapsed()));
                        ok += 1;
                    }
                    Err(e) => absorb(&e, &mut errors).await,
                }
            }
            (latency, errors, ok, Instant::now())
        });
    }
    let mut out = Outcome::default();
    let mut last_done = start;
    while let Some(joined) = tasks.join_next().await {
        let (latency, errors, ok, done) = joined?;
        out.latency.extend(latency);
        out.errors.merge(errors);
        out.ops += ok;
        last_done = last_done.max(done);
    }
    let end = ctx.end();
    drop(clock);
    // Wall time runs to the last completed send, so in-flight sends at the deadline count.
    out.wall = last_done - start;
    out.window = Some((start, end));
    out.extra("senders", senders);
    out.extra("room_id", &room);
    Ok(out)
}

/// Opens every user's connection before a timed phase, so connection set-up is not timed.
pub async fn warm_all(ctx: &Ctx, users: &[Arc<User>]) -> Result<(), BenchError> {
    bounded(
        users.to_vec(),
        ctx.env.concurrency,
        &indicatif::ProgressBar::hidden(),
        |u| async move { Ok(u.warm_up().await?) },
    )
    .await
    .map(|_| ())
}
