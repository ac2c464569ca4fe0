//! Building the population: users, rooms and who is in which room.
//!
//! Setup requests go through [`Policy::Setup`] (rate limits waited out) with bounded
//! concurrency, so preparing a run is fast on a permissive server and merely slow on a
//! strict one, never failing.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::{Api, Auth, Policy, User, create_user};
use crate::error::BenchError;
use crate::progress::Progress;

/// How room sizes are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Every room gets `members_per_room` members.
    #[default]
    Uniform,
    /// Zipf-like: room `i` gets a share proportional to `1/(i+1)` of `rooms × members_per_room`
    /// memberships, so a few rooms are big and most are small.
    Skewed,
}

/// A small, seedable PRNG (SplitMix64): enough for names and memberships, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Seeded from the clock and the process ID.
    pub fn from_entropy() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self(nanos ^ (u64::from(std::process::id()) << 32))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }

    /// `len` characters of `[a-z0-9]`.
    pub fn token(&mut self, len: usize) -> String {
        const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        (0..len)
            .map(|_| CHARS[self.below(CHARS.len())] as char)
            .collect()
    }
}

/// Target sizes of the rooms, before the coverage pass.
pub fn room_sizes(users: usize, rooms: usize, per_room: usize, dist: Distribution) -> Vec<usize> {
    let k = per_room.clamp(1, users.max(1));
    match dist {
        Distribution::Uniform => vec![k; rooms],
        Distribution::Skewed => {
            let harmonic: f64 = (1..=rooms).map(|i| 1.0 / i as f64).sum();
            let total = (rooms * k) as f64;
            let floor = 2.min(users);
            (0..rooms)
                .map(|i| {
                    let share = total / (harmonic * (i + 1) as f64);
                    (share.round() as usize).clamp(floor, users)
                })
                .collect()
        }
    }
}

/// Members of each room, as user indices (the first member creates the room). Every user is
/// in at least one room (users left over by the sizes are dealt round-robin to the rooms
/// with room to spare, then to any), and no room lists a user twice.
pub fn assign_memberships(
    users: usize,
    rooms: usize,
    per_room: usize,
    dist: Distribution,
    rng: &mut Rng,
) -> Vec<Vec<usize>> {
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); rooms];
    if rooms == 0 || users == 0 {
        return members;
    }
    let targets = room_sizes(users, rooms, per_room, dist);
    let mut order: Vec<usize> = (0..users).collect();
    rng.shuffle(&mut order);
    // Coverage: each user once, into the next room (cyclically) that is below its target.
    let mut cursor = 0;
    for &user in &order {
        let free = (0..rooms)
            .map(|step| (cursor + step) % rooms)
            .find(|&r| members[r].len() < targets[r]);
        let room = free.unwrap_or(cursor % rooms);
        members[room].push(user);
        cursor = room + 1;
    }
    // Fill every room up to its target with random distinct users.
    for (room, target) in members.iter_mut().zip(&targets) {
        if room.len() >= *target {
            continue;
        }
        let mut inside = vec![false; users];
        for &u in room.iter() {
            inside[u] = true;
        }
        let mut candidates: Vec<usize> = (0..users).filter(|&u| !inside[u]).collect();
        rng.shuffle(&mut candidates);
        let missing = target - room.len();
        room.extend(candidates.into_iter().take(missing));
    }
    members
}

/// A room of the population and its members (indices into the user pool).
#[derive(Debug, Clone)]
pub struct PoolRoom {
    pub room_id: String,
    pub members: Vec<usize>,
}

/// Shared state of a run: how to make users, the pool of users and the population's rooms.
pub struct Env {
    pub api: Api,
    pub auth: Auth,
    pub prefix: String,
    pub password: String,
    pub concurrency: usize,
    pub progress: Progress,
    pub rng: Mutex<Rng>,
    pool: tokio::sync::Mutex<Vec<Arc<User>>>,
    rooms: Mutex<Vec<PoolRoom>>,
    next_user: AtomicUsize,
}

impl Env {
    pub fn new(api: Api, auth: Auth, concurrency: usize, progress: Progress, mut rng: Rng) -> Self {
        let prefix = format!("bench{}", rng.token(6));
        let password = format!("pw-{}-{}", prefix, rng.token(12));
        Self {
            api,
            auth,
            prefix,
            password,
            concurrency: concurrency.max(1),
            progress,
            rng: Mutex::new(rng),
            pool: tokio::sync::Mutex::new(Vec::new()),
            rooms: Mutex::new(Vec::new()),
            next_user: AtomicUsize::new(0),
        }
    }

    /// Creates `n` new users (each with its own connection pool), not added to the pool.
    pub async fn create_users(&self, n: usize, what: &str) -> Result<Vec<Arc<User>>, BenchError> {
        let bar = self.progress.bar(n as u64, what);
        let jobs: Vec<(Api, String)> = (0..n)
            .map(|_| {
                let i = self.next_user.fetch_add(1, Ordering::Relaxed);
                Ok((self.api.fresh()?, format!("{}_{i}", self.prefix)))
            })
            .collect::<Result<_, BenchError>>()?;
        let auth = self.auth.clone();
        let password = self.password.clone();
        let users = bounded(jobs, self.concurrency, &bar, move |(api, localpart)| {
            let auth = auth.clone();
            let password = password.clone();
            async move {
                let user = create_user(api, &auth, &localpart, &password, Policy::Setup).await?;
                Ok(Arc::new(user))
            }
        })
        .await?;
        bar.finish_and_clear();
        Ok(users)
    }

    /// The first `n` users of the pool, creating more if it is smaller.
    pub async fn users(&self, n: usize) -> Result<Vec<Arc<User>>, BenchError> {
        let mut pool = self.pool.lock().await;
        if pool.len() < n {
            let extra = self.create_users(n - pool.len(), "creating users").await?;
            pool.extend(extra);
        }
        Ok(pool[..n].to_vec())
    }

    /// Creates the pool's users and rooms with the chosen membership distribution.
    pub async fn populate(
        &self,
        users: usize,
        rooms: usize,
        per_room: usize,
        dist: Distribution,
    ) -> Result<(), BenchError> {
        let pool = self.users(users).await?;
        if rooms == 0 || pool.is_empty() {
            return Ok(());
        }
        let memberships = {
            let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
            assign_memberships(pool.len(), rooms, per_room, dist, &mut rng)
        };
        let bar = self.progress.bar(rooms as u64, "creating rooms");
        let jobs: Vec<(usize, Arc<User>)> = memberships
            .iter()
            .enumerate()
            .map(|(i, m)| (i, pool[m[0]].clone()))
            .collect();
        let prefix = self.prefix.clone();
        let room_ids = bounded(jobs, self.concurrency, &bar, move |(i, creator)| {
            let name = format!("{prefix} room {i}");
            async move { Ok(creator.create_room(&name, Policy::Setup).await?) }
        })
        .await?;
        bar.finish_and_clear();
        let joins: Vec<(Arc<User>, String)> = memberships
            .iter()
            .zip(&room_ids)
            .flat_map(|(m, id)| m[1..].iter().map(|&u| (pool[u].clone(), id.clone())))
            .collect();
        let bar = self.progress.bar(joins.len() as u64, "joining rooms");
        bounded(
            joins,
            self.concurrency,
            &bar,
            |(user, room_id)| async move { Ok(user.join(&room_id, Policy::Setup).await?) },
        )
        .await?;
        bar.finish_and_clear();
        let mut stored = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        *stored = room_ids
            .into_iter()
            .zip(memberships)
            .map(|(room_id, members)| PoolRoom { room_id, members })
            .collect();
        Ok(())
    }

    /// Users in the pool so far.
    pub async fn pool_len(&self) -> usize {
        self.pool.lock().await.len()
    }

    pub fn pool_rooms(&self) -> Vec<PoolRoom> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A new public room created by `creator` and joined by `members`.
    pub async fn room_with(
        &self,
        creator: &Arc<User>,
        members: &[Arc<User>],
        name: &str,
    ) -> Result<String, BenchError> {
        let room_id = creator
            .create_room(&format!("{} {name}", self.prefix), Policy::Setup)
            .await?;
        let joins: Vec<(Arc<User>, String)> = members
            .iter()
            .filter(|m| m.user_id != creator.user_id)
            .map(|m| (m.clone(), room_id.clone()))
            .collect();
        bounded(
            joins,
            self.concurrency,
            &ProgressBar::hidden(),
            |(user, room_id)| async move { Ok(user.join(&room_id, Policy::Setup).await?) },
        )
        .await?;
        Ok(room_id)
    }
}

/// Runs `f` on every item with at most `limit` in flight; results in item order. The first
/// failure is returned (the remaining tasks are dropped).
pub async fn bounded<T, R, F, Fut>(
    items: Vec<T>,
    limit: usize,
    bar: &ProgressBar,
    f: F,
) -> Result<Vec<R>, BenchError>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<R, BenchError>> + Send + 'static,
    R: Send + 'static,
{
    let semaphore = Arc::new(Semaphore::new(limit.max(1)));
    let mut tasks = JoinSet::new();
    let mut results: Vec<Option<R>> = Vec::with_capacity(items.len());
    results.resize_with(items.len(), || None);
    let mut record = |joined: Result<(usize, Result<R, BenchError>), tokio::task::JoinError>| {
        let (i, result) = joined?;
        results[i] = Some(result?);
        bar.inc(1);
        Ok::<(), BenchError>(())
    };
    for (i, item) in items.into_iter().enumerate() {
        let permit = semaphore
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| BenchError::Other(e.to_string()))?;
        let fut = f(item);
        tasks.spawn(async move {
            let result = fut.await;
            drop(permit);
            (i, result)
        });
        while let Some(joined) = tasks.try_join_next() {
            record(joined)?;
        }
    }
    while let Some(joined) = tasks.join_next().await {
        record(joined)?;
    }
    Ok(results.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_common(members: &[Vec<usize>], users: usize) {
        let mut seen = vec![false; users];
        for room in members {
            let mut sorted = room.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), room.len(), "duplicate member in {room:?}");
            for &u in room {
                assert!(u < users);
                seen[u] = true;
            }
        }
        assert!(seen.iter().all(|&s| s), "some user is in no room");
    }

    #[test]
    fn uniform_rooms_have_k_members_and_cover_everyone() {
        let mut rng = Rng::new(7);
        let m = assign_memberships(100, 30, 5, Distribution::Uniform, &mut rng);
        assert_eq!(m.len(), 30);
        check_common(&m, 100);
        assert!(m.iter().all(|r| r.len() == 5), "{m:?}");
    }

    #[test]
    fn uniform_grows_rooms_when_users_outnumber_seats() {
        let mut rng = Rng::new(1);
        let m = assign_memberships(50, 4, 3, Distribution::Uniform, &mut rng);
        check_common(&m, 50);
        let total: usize = m.iter().map(Vec::len).sum();
        assert_eq!(total, 50);
        assert!(m.iter().all(|r| r.len() == 12 || r.len() == 13));
    }

    #[test]
    fn skewed_has_a_few_big_rooms() {
        let mut rng = Rng::new(3);
        let users = 200;
        let m = assign_memberships(users, 50, 8, Distribution::Skewed, &mut rng);
        check_common(&m, users);
        let sizes: Vec<usize> = m.iter().map(Vec::len).collect();
        let mut sorted = sizes.clone();
        sorted.sort_unstable();
        let median = sorted[sorted.len() / 2];
        assert!(sizes[0] >= 4 * median, "{sizes:?}");
        assert!(sizes[0] == *sorted.last().unwrap());
        let targets = room_sizes(users, 50, 8, Distribution::Skewed);
        assert!(targets.windows(2).all(|w| w[0] >= w[1]), "{targets:?}");
        let mean = targets.iter().sum::<usize>() as f64 / 50.0;
        assert!((mean - 8.0).abs() < 2.0, "mean {mean}");
        assert!(targets.iter().all(|&t| (2..=users).contains(&t)));
    }

    #[test]
    fn degenerate_inputs() {
        let mut rng = Rng::new(9);
        assert!(
            assign_memberships(0, 3, 5, Distribution::Uniform, &mut rng)
                .iter()
                .all(Vec::is_empty)
        );
        assert!(assign_memberships(10, 0, 5, Distribution::Skewed, &mut rng).is_empty());
        // More members wanted than users exist: capped at the user count.
        let m = assign_memberships(3, 2, 10, Distribution::Uniform, &mut rng);
        check_common(&m, 3);
        assert!(m.iter().all(|r| r.len() == 3));
        let m = assign_memberships(1, 5, 2, Distribution::Skewed, &mut rng);
        assert!(m.iter().all(|r| r == &vec![0]));
    }

    #[test]
    fn rng_is_deterministic_and_tokens_are_lowercase() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        assert_eq!(a.next_u64(), b.next_u64());
        let t = a.token(6);
        assert_eq!(t.len(), 6);
        assert!(
            t.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        let mut v: Vec<usize> = (0..100).collect();
        a.shuffle(&mut v);
        let mut s = v.clone();
        s.sort_unstable();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
    }
}
