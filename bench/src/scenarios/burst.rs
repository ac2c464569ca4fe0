//! Bursts: many clients doing the same expensive thing at the same instant (joining one
//! room, logging in, registering). Connections are opened beforehand and all requests are
//! released together by a barrier, so the figures are about the server's handling of the
//! burst, not about TCP set-up.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Barrier;
use tokio::task::JoinSet;

use super::send::warm_all;
use super::{Ctx, Outcome, ms, secs_since};
use crate::client::{Api, ApiError, Auth, Policy, create_user, login};
use crate::error::BenchError;
use crate::setup::bounded;

/// Releases every job at once and times each; `T` is what a success leaves behind.
async fn burst<T, F, Fut>(ctx: &Ctx, jobs: Vec<F>) -> Result<(Outcome, Vec<T>), BenchError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, ApiError>> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(Barrier::new(jobs.len() + 1));
    let mut tasks = JoinSet::new();
    for job in jobs {
        let barrier = barrier.clone();
        tasks.spawn(async move {
            barrier.wait().await;
            let t0 = Instant::now();
            let result = job().await;
            (t0, Instant::now(), result)
        });
    }
    let start = ctx.begin();
    barrier.wait().await;
    let mut out = Outcome::default();
    let mut kept = Vec::new();
    let mut last_done = start;
    while let Some(joined) = tasks.join_next().await {
        let (t0, done, result) = joined?;
        last_done = last_done.max(done);
        match result {
            Ok(value) => {
                out.latency.push(secs_since(start, t0), ms(done - t0));
                out.ops += 1;
                kept.push(value);
            }
            Err(e) => out.errors.add(e.kind()),
        }
    }
    let end = ctx.end();
    out.wall = last_done - start;
    out.window = Some((start, end));
    Ok((out, kept))
}

/// `join-storm`: K users join one new public room at the same moment.
pub async fn join_storm(ctx: &Ctx) -> Result<Outcome, BenchError> {
    let k = ctx.knobs.join_storm_users.max(1);
    let users = ctx.env.users(k + 1).await?;
    let creator = &users[0];
    let room = creator
        .create_room(&format!("{} join-storm", ctx.env.prefix), Policy::Setup)
        .await?;
    let joiners = users[1..].to_vec();
    warm_all(ctx, &joiners).await?;
    ctx.env
        .progress
        .log(&format!("join-storm: {k} joins at once"));
    let jobs: Vec<_> = joiners
        .into_iter()
        .map(|user| {
            let room = room.clone();
            move || async move { user.join(&room, Policy::Once).await }
        })
        .collect();
    let (mut out, _) = burst(ctx, jobs).await?;
    out.extra("joiners", k);
    out.extra("room_id", &room);
    Ok(out)
}

/// `login-burst`: L simultaneous password logins, cycling over the population's users.
/// The devices created are logged out afterwards (untimed).
pub async fn login_burst(ctx: &Ctx) -> Result<Outcome, BenchError> {
    let n = ctx.knobs.login_burst.max(1);
    let users = ctx
        .env
        .users(n.min(ctx.env.pool_len().await.max(1)))
        .await?;
    warm_all(ctx, &users).await?;
    ctx.env
        .progress
        .log(&format!("login-burst: {n} logins at once"));
    let jobs: Vec<_> = (0..n)
        .map(|i| {
            let user = users[i % users.len()].clone();
            move || async move {
                let session =
                    login(&user.api, &user.localpart, &user.password, Policy::Once).await?;
                Ok((user, session.access_token))
            }
        })
        .collect();
    let (mut out, sessions) = burst(ctx, jobs).await?;
    bounded(
        sessions,
        ctx.env.concurrency,
        &indicatif::ProgressBar::hidden(),
        |(user, token)| async move {
            let _ = user.logout(&token).await;
            Ok(())
        },
    )
    .await?;
    out.extra("distinct_users", users.len());
    Ok(out)
}

/// `register-burst`: R simultaneous registrations of new accounts, each on its own new
/// connection (opened beforehand). Timed per account through every UIA stage; with
/// `--admin-token`, the Synapse admin API's create plus a login instead.
pub async fn register_burst(ctx: &Ctx) -> Result<Outcome, BenchError> {
    let n = ctx.knobs.register_burst.max(1);
    let mut apis: Vec<Api> = Vec::with_capacity(n);
    for _ in 0..n {
        let api = ctx.env.api.fresh()?;
        api.versions().await?;
        apis.push(api);
    }
    ctx.env
        .progress
        .log(&format!("register-burst: {n} registrations at once"));
    // Lifting rate limits is a setup step, not part of what a registration costs.
    let auth = match ctx.env.auth.clone() {
        Auth::Admin {
            token, server_name, ..
        } => Auth::Admin {
            token,
            server_name,
            lift_rate_limits: false,
        },
        other => other,
    };
    let jobs: Vec<_> = apis
        .into_iter()
        .enumerate()
        .map(|(i, api)| {
            let auth = auth.clone();
            let localpart = format!("{}_reg{i}", ctx.env.prefix);
            let password = ctx.env.password.clone();
            move || async move {
                create_user(api, &auth, &localpart, &password, Policy::Once)
                    .await
                    .map(|_| ())
            }
        })
        .collect();
    let (mut out, _) = burst(ctx, jobs).await?;
    let method = match auth {
        Auth::Admin { .. } => "synapse admin API + login",
        Auth::Token(_) => "register (m.login.registration_token)",
        Auth::Open => "register (m.login.dummy)",
    };
    out.extra("method", method);
    Ok(out)
}
