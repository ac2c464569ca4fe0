//! conclave-bench: a load generator and benchmark for any spec-compliant Matrix homeserver
//! (Conclave, Synapse, Conduit, ...).
//!
//! It creates a population of users and rooms (by open registration, a registration token or
//! the Synapse admin API), runs scenarios that measure what users feel (send latency,
//! delivery latency, /sync wake-up, initial sync, bursts of joins, logins and sign-ups), and
//! writes a JSON report that `compare` puts side by side with another server's.
//!
//! The library entry points are [`run`] (returns a [`Report`]) and [`compare`], so tests can
//! start a server in-process and benchmark it directly; the binary is a thin CLI over them.

mod cli;
pub mod client;
pub mod error;
#[cfg(test)]
mod fake;
pub mod plot;
pub mod progress;
pub mod report;
pub mod resources;
pub mod scenarios;
pub mod setup;
pub mod stats;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Value, json};

pub use cli::cli_main;
pub use error::BenchError;
pub use plot::render_svg;
pub use report::{Report, ScenarioReport, compare};
pub use scenarios::{Knobs, Scenario};
pub use setup::Distribution;

use client::{Api, Auth, Req, SetupStats};
use progress::Progress;
use report::{ServerInfo, SetupInfo};
use resources::Monitor;
use scenarios::Ctx;
use setup::{Env, Rng};
use stats::decimate;

/// Everything a run needs. Tokens are never written to the report.
#[derive(Debug, Clone, Serialize)]
pub struct RunOptions {
    /// Homeserver base URL, e.g. `http://localhost:8008`.
    pub url: String,
    /// Register users with `m.login.registration_token`.
    #[serde(skip)]
    pub registration_token: Option<String>,
    /// Create users with the Synapse admin API instead of registering.
    #[serde(skip)]
    pub admin_token: Option<String>,
    /// Server name for admin-created user IDs (else taken from the admin's whoami).
    pub server_name: Option<String>,
    /// With an admin token, lift each bench user's rate limits (`override_ratelimit`).
    pub lift_rate_limits: bool,
    /// Users in the population (scenarios needing more create them).
    pub users: usize,
    /// Rooms in the population.
    pub rooms: usize,
    /// Members per room (the mean, for the skewed distribution).
    pub members_per_room: usize,
    pub distribution: Distribution,
    /// Scenarios to run (in run order whatever the order here); empty means all.
    pub scenarios: Vec<Scenario>,
    /// Server process to sample RSS and CPU of.
    pub pid: Option<u32>,
    /// A name for this run in reports and comparisons.
    pub label: Option<String>,
    /// No progress bars or status lines.
    pub quiet: bool,
    /// Seed for memberships and names (else random).
    pub seed: Option<u64>,
    /// Setup requests in flight at once.
    pub setup_concurrency: usize,
    pub knobs: Knobs,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            url: "http://localhost:8008".to_owned(),
            registration_token: None,
            admin_token: None,
            server_name: None,
            lift_rate_limits: true,
            users: 20,
            rooms: 10,
            members_per_room: 5,
            distribution: Distribution::Uniform,
            scenarios: Scenario::ALL.to_vec(),
            pid: None,
            label: None,
            quiet: false,
            seed: None,
            setup_concurrency: 8,
            knobs: Knobs::default(),
        }
    }
}

impl RunOptions {
    fn validate(&self) -> Result<(), BenchError> {
        let bad = |m: &str| Err(BenchError::Config(m.to_owned()));
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return bad("--url must start with http:// or https://");
        }
        if self.registration_token.is_some() && self.admin_token.is_some() {
            return bad("give either --registration-token or --admin-token, not both");
        }
        if self.users == 0 {
            return bad("--users must be at least 1");
        }
        let k = &self.knobs;
        if !(k.chat_rate > 0.0 && k.chat_rate.is_finite()) {
            return bad("--chat-rate must be positive");
        }
        let durations = [
            k.send_duration_secs,
            k.chat_duration_secs,
            k.chat_grace_secs,
        ];
        if durations.iter().any(|d| !(0.0..=1e6).contains(d)) {
            return bad("durations must be between 0 and 1e6 seconds");
        }
        Ok(())
    }

    fn auth_name(&self) -> &'static str {
        match (&self.admin_token, &self.registration_token) {
            (Some(_), _) => "synapse-admin",
            (None, Some(_)) => "registration-token",
            (None, None) => "open-registration",
        }
    }
}

/// Runs the population setup and the chosen scenarios; returns the report.
///
/// Scenario failures (even of their own setup) are recorded in the report rather than
/// returned; an error means the run could not happen at all (server unreachable, users
/// could not be created).
pub async fn run(opts: RunOptions) -> Result<Report, BenchError> {
    opts.validate()?;
    let progress = Progress::new(opts.quiet);
    let stats = Arc::new(SetupStats::default());
    let api = Api::new(&opts.url, stats.clone())?;
    let (versions, server_header) = api.versions().await?;
    let started_at = rfc3339(SystemTime::now());
    let epoch = Instant::now();
    let scenarios = if opts.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        Scenario::in_run_order(&opts.scenarios)
    };
    let monitor = opts.pid.map(Monitor::start).transpose()?;

    let mut idle_rss_bytes = None;
    if scenarios.contains(&Scenario::IdleRss) {
        match &monitor {
            Some(m) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                m.mark();
                idle_rss_bytes = m.latest().map(|r| r.rss_bytes);
            }
            None => progress.log("idle-rss: skipped (no --pid)"),
        }
    }

    let auth = match (&opts.admin_token, &opts.registration_token) {
        (Some(token), _) => Auth::Admin {
            token: token.clone(),
            server_name: match &opts.server_name {
                Some(name) => name.clone(),
                None => admin_server_name(&api, token).await?,
            },
            lift_rate_limits: opts.lift_rate_limits,
        },
        (None, Some(token)) => Auth::Token(token.clone()),
        (None, None) => Auth::Open,
    };
    let rng = opts.seed.map_or_else(Rng::from_entropy, Rng::new);
    let env = Env::new(api, auth, opts.setup_concurrency, progress, rng);
    let setup_started = Instant::now();
    // A run of only `idle-rss` needs no population.
    if scenarios.iter().any(|s| *s != Scenario::IdleRss) {
        progress.log(&format!(
            "setup: {} users, {} rooms x {} members ({:?}), users named {}_N",
            opts.users, opts.rooms, opts.members_per_room, opts.distribution, env.prefix
        ));
        env.populate(
            opts.users,
            opts.rooms,
            opts.members_per_room,
            opts.distribution,
        )
        .await?;
    }
    let setup_secs = setup_started.elapsed().as_secs_f64();
    let prefix = env.prefix.clone();

    let ctx = Ctx {
        env,
        knobs: opts.knobs.clone(),
        monitor,
    };
    let mut results = BTreeMap::new();
    for scenario in scenarios {
        if scenario == Scenario::IdleRss {
            continue;
        }
        let name = scenario.name();
        progress.log(&format!("scenario {name}"));
        let report = match scenarios::run(&ctx, scenario).await {
            Ok(outcome) => outcome.into_report(ctx.monitor.as_ref()),
            Err(e) => {
                progress.log(&format!("scenario {name} failed: {e}"));
                scenarios::failed(&e)
            }
        };
        results.insert(name.to_owned(), report);
    }

    let resource_samples = ctx.monitor.as_ref().map_or_else(Vec::new, |m| {
        let series: Vec<[f64; 3]> = m
            .series(epoch)
            .into_iter()
            .map(|(t, rss, cpu)| [stats::round3(t), rss as f64, cpu])
            .collect();
        decimate(&series, 2_000)
    });
    let mut params = serde_json::to_value(&opts).unwrap_or(Value::Null);
    params["auth"] = json!(opts.auth_name());
    Ok(Report {
        tool: "conclave-bench".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        label: opts.label.clone(),
        url: opts.url.clone(),
        server: ServerInfo {
            versions,
            server_header,
        },
        started_at,
        params,
        idle_rss_bytes,
        setup: SetupInfo {
            secs: stats::round3(setup_secs),
            rate_limited: stats.rate_limited.load(Ordering::Relaxed),
            network_retries: stats.network_retries.load(Ordering::Relaxed),
            user_prefix: prefix,
        },
        scenarios: results,
        resource_samples,
    })
}

/// The server name, from the admin's own user ID.
async fn admin_server_name(api: &Api, token: &str) -> Result<String, BenchError> {
    let req = Req::get("/_matrix/client/v3/account/whoami").token(token);
    let answer = api.send_retry(&req).await?;
    answer
        .body
        .get("user_id")
        .and_then(Value::as_str)
        .and_then(|id| id.split_once(':'))
        .map(|(_, server)| server.to_owned())
        .ok_or_else(|| {
            BenchError::Other("whoami of the admin token gave no usable user_id".to_owned())
        })
}

/// `YYYY-MM-DDTHH:MM:SSZ` without a date crate (civil-from-days, H. Hinnant's algorithm).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_timestamps() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn options_validate_and_hide_secrets() {
        let mut opts = RunOptions {
            registration_token: Some("s3cret".into()),
            ..Default::default()
        };
        assert!(opts.validate().is_ok());
        let params = serde_json::to_string(&opts).unwrap();
        assert!(!params.contains("s3cret"), "{params}");
        assert!(params.contains("\"steady-chat\""), "{params}");
        opts.admin_token = Some("x".into());
        assert!(opts.validate().is_err());
        let opts = RunOptions {
            url: "localhost:8008".into(),
            ..Default::default()
        };
        assert!(opts.validate().is_err());
    }
}
