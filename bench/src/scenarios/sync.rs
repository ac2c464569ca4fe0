//! /sync: how fast a parked long-poll wakes up for a new message, and how long a full initial
//! sync takes for an account with a long history or with many rooms.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Ctx, Outcome, RUN_TAG, SENT_AT, absorb, message, ms, secs_since};
use crate::client::{
    Answer, ApiError, Policy, User, joined_room_count, next_batch, timeline_events,
};
use crate::error::BenchError;
use crate::setup::bounded;
use crate::stats::Samples;

/// Long-poll filter: a timeline window, and no presence or account data, which could wake a
/// long-poll for reasons that have nothing to do with the message being timed.
pub fn long_poll_filter() -> Value {
    json!({
        "room": { "timeline": { "limit": 50 } },
        "presence": { "not_types": ["*"] },
        "account_data": { "not_types": ["*"] },
    })
}

/// Initial-sync filter: what a client opening an account would ask for.
pub fn initial_sync_filter() -> Value {
    json!({ "room": { "timeline": { "limit": 10 } } })
}

/// The `since` token after an initial sync (setup, not timed).
pub async fn initial_since(user: &User, filter_id: &str) -> Result<String, BenchError> {
    let answer = user
        .sync(&user.access_token, None, filter_id, 0, Policy::Setup)
        .await?;
    next_batch(&answer.body).ok_or_else(|| {
        BenchError::Other(format!("/sync for {} returned no next_batch", user.user_id))
    })
}

type Pending = tokio::task::JoinHandle<Result<Answer, ApiError>>;

fn park(user: &Arc<User>, since: &str, filter_id: &str) -> Pending {
    let user = user.clone();
    let since = since.to_owned();
    let filter_id = filter_id.to_owned();
    tokio::spawn(async move {
        user.sync(
            &user.access_token,
            Some(&since),
            &filter_id,
            30_000,
            Policy::Once,
        )
        .await
    })
}

/// Whether a sync answer has the message: by event ID, or by its content (send time and run
/// tag) should a server's send answer lack the ID.
fn has_event(body: &Value, room_id: &str, event_id: &str, content: &Value) -> bool {
    timeline_events(body).iter().any(|(room, e)| {
        *room == room_id
            && (e.get("event_id").and_then(Value::as_str) == Some(event_id)
                || (e.pointer(&format!("/content/{SENT_AT}")) == content.get(SENT_AT)
                    && e.pointer(&format!("/content/{RUN_TAG}")) == content.get(RUN_TAG)))
    })
}

/// `wakeup`: B long-polls /sync (timeout 30 s) in a room; A sends a message. Latency is from
/// A's send response to B's /sync response (0 if B's answer came first); delivery is from
/// the start of A's send. Repeated R times.
pub async fn wakeup(ctx: &Ctx) -> Result<Outcome, BenchError> {
    let reps = ctx.knobs.wakeup_reps;
    let delay = Duration::from_millis(ctx.knobs.wakeup_delay_ms);
    let users = ctx.env.users(2).await?;
    let (a, b) = (&users[0], &users[1]);
    let room = ctx.env.room_with(a, &users, "wakeup").await?;
    let filter = b.upload_filter(&long_poll_filter()).await?;
    let mut since = initial_since(b, &filter).await?;
    a.warm_up().await?;
    let tag = format!("{}-wake", ctx.env.prefix);
    let bar = ctx.env.progress.bar(reps as u64, "wakeup");
    let mut out = Outcome::default();
    let mut delivery = Samples::new();
    let mut early_returns = 0u64;
    let mut woke_before_send_answer = 0u64;
    let start = ctx.begin();
    for rep in 0..reps {
        bar.inc(1);
        let mut pending = park(b, &since, &filter);
        tokio::time::sleep(delay).await;
        // The long-poll answered before anything was sent (some other update): take its
        // token and park again, so the timed wake-up is a real one.
        let mut retries = 0;
        while pending.is_finished() && retries < 5 {
            retries += 1;
            early_returns += 1;
            if let Ok(Ok(answer)) = pending.await {
                since = next_batch(&answer.body).unwrap_or(since);
            }
            pending = park(b, &since, &filter);
            tokio::time::sleep(delay).await;
        }
        let txn = format!("{tag}-{rep}");
        let content = message(&tag, rep as u64);
        let t_start = Instant::now();
        let sent = a.send_message(&room, &txn, &content, Policy::Once).await;
        let t_sent = Instant::now();
        let event_id = match sent {
            Ok(id) => id,
            Err(e) => {
                pending.abort();
                absorb(&e, &mut out.errors).await;
                continue;
            }
        };
        let give_up = t_sent + Duration::from_secs(35);
        let arrived = loop {
            let answer = match pending.await {
                Ok(Ok(answer)) => answer,
                Ok(Err(e)) => {
                    out.errors.add(format!("sync: {}", e.kind()));
                    if e.is_rate_limited() {
                        tokio::time::sleep(e.backoff()).await;
                    }
                    break None;
                }
                Err(e) => return Err(e.into()),
            };
            since = next_batch(&answer.body).unwrap_or(since);
            if has_event(&answer.body, &room, &event_id, &content) {
                break Some(answer.received);
            }
            if Instant::now() > give_up {
                out.errors.add("not delivered");
                break None;
            }
            pending = park(b, &since, &filter);
        };
        if let Some(received) = arrived {
            woke_before_send_answer += u64::from(received < t_sent);
            let t = secs_since(start, t_start);
            out.latency
                .push(t, ms(received.saturating_duration_since(t_sent)));
            delivery.push(t, ms(received.saturating_duration_since(t_start)));
            out.ops += 1;
        }
    }
    let end = ctx.end();
    bar.finish_and_clear();
    out.wall = end - start;
    out.window = Some((start, end));
    out.delivery = Some(delivery);
    out.extra("early_returns", early_returns);
    // Latency is clamped at 0 for these: B had the event before A had its answer.
    out.extra("woke_before_send_answer", woke_before_send_answer);
    out.extra("delay_ms", ctx.knobs.wakeup_delay_ms);
    Ok(out)
}

/// `initial-sync-history`: a new user alone in a room with H messages; each repetition
/// times `GET /sync` without `since` on a freshly logged-in device.
pub async fn initial_history(ctx: &Ctx) -> Result<Outcome, BenchError> {
    let messages = ctx.knobs.history_messages;
    let user = ctx
        .env
        .create_users(1, "initial-sync-history user")
        .await?
        .remove(0);
    let room = ctx
        .env
        .room_with(&user, std::slice::from_ref(&user), "history")
        .await?;
    let jobs = (0..messages).map(|i| (room.clone(), i)).collect();
    fill(ctx, &user, jobs, "hist", "writing history").await?;
    let mut out = time_initial_syncs(ctx, &user, 1, "initial-sync-history").await?;
    out.extra("history_messages", messages);
    Ok(out)
}

/// Untimed setup: `user` sends message `i` into each `(room, i)` of `jobs`, a few at a time.
async fn fill(
    ctx: &Ctx,
    user: &User,
    jobs: Vec<(String, usize)>,
    kind: &str,
    label: &str,
) -> Result<(), BenchError> {
    let tag = format!("{}-{kind}", ctx.env.prefix);
    let bar = ctx.env.progress.bar(jobs.len() as u64, label);
    let writer = user.clone();
    bounded(jobs, ctx.env.concurrency, &bar, move |(room, i)| {
        let (user, tag) = (writer.clone(), tag.clone());
        async move {
            let txn = format!("{tag}-{i}");
            user.send_message(&room, &txn, &message(&tag, i as u64), Policy::Setup)
                .await?;
            Ok(())
        }
    })
    .await?;
    bar.finish_and_clear();
    Ok(())
}

/// `initial-sync-rooms`: a new user in R rooms (each with a few messages); each repetition
/// times an initial sync on a fresh device.
pub async fn initial_rooms(ctx: &Ctx) -> Result<Outcome, BenchError> {
    let rooms = ctx.knobs.sync_rooms;
    let per_room = ctx.knobs.sync_room_messages;
    let user = ctx
        .env
        .create_users(1, "initial-sync-rooms user")
        .await?
        .remove(0);
    let bar = ctx.env.progress.bar(rooms as u64, "creating rooms");
    let prefix = ctx.env.prefix.clone();
    let creator = user.clone();
    let room_ids = bounded((0..rooms).collect(), ctx.env.concurrency, &bar, move |i| {
        let (user, name) = (creator.clone(), format!("{prefix} many-rooms {i}"));
        async move { Ok(user.create_room(&name, Policy::Setup).await?) }
    })
    .await?;
    bar.finish_and_clear();
    let jobs = room_ids
        .iter()
        .flat_map(|r| (0..per_room).map(move |_| r.clone()))
        .enumerate()
        .map(|(i, r)| (r, i))
        .collect();
    fill(ctx, &user, jobs, "rooms", "filling rooms").await?;
    let mut out = time_initial_syncs(ctx, &user, rooms, "initial-sync-rooms").await?;
    out.extra("rooms", rooms);
    out.extra("messages_per_room", per_room);
    Ok(out)
}

/// Logs in `sync_reps` fresh devices (untimed), times one initial sync on each in turn,
/// then logs them out. A sync listing fewer than `expect_rooms` joined rooms is an error.
async fn time_initial_syncs(
    ctx: &Ctx,
    user: &Arc<User>,
    expect_rooms: usize,
    what: &str,
) -> Result<Outcome, BenchError> {
    let reps = ctx.knobs.sync_reps;
    let filter = user.upload_filter(&initial_sync_filter()).await?;
    let bar = ctx.env.progress.bar(reps as u64, "logging in devices");
    let login_user = user.clone();
    let sessions = bounded(vec![(); reps], ctx.env.concurrency, &bar, move |()| {
        let user = login_user.clone();
        async move { Ok(user.login_fresh(Policy::Setup).await?) }
    })
    .await?;
    bar.finish_and_clear();
    user.warm_up().await?;
    let bar = ctx.env.progress.bar(reps as u64, what);
    let mut out = Outcome::default();
    let mut sizes = Vec::new();
    let start = ctx.begin();
    for session in &sessions {
        let t0 = Instant::now();
        match user
            .sync(&session.access_token, None, &filter, 0, Policy::Once)
            .await
        {
            Ok(answer) => {
                let took = answer.received.saturating_duration_since(t0);
                sizes.push(answer.bytes);
                if joined_room_count(&answer.body) < expect_rooms {
                    out.errors.add("incomplete sync");
                } else {
                    out.latency.push(secs_since(start, t0), ms(took));
                    out.ops += 1;
                }
            }
            Err(e) => absorb(&e, &mut out.errors).await,
        }
        bar.inc(1);
    }
    let end = ctx.end();
    bar.finish_and_clear();
    out.wall = end - start;
    out.window = Some((start, end));
    if !sizes.is_empty() {
        out.extra(
            "mean_response_bytes",
            sizes.iter().sum::<usize>() / sizes.len(),
        );
    }
    for session in sessions {
        // Cleanup only: a failed logout leaves a device behind, nothing worse.
        let _ = user.logout(&session.access_token).await;
    }
    Ok(out)
}
