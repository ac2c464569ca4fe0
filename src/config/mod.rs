//! Server configuration.
//!
//! A TOML file with a `[global]` table using Conduit's key names, so an
//! operator moving from Conduit can keep their file. Every key can be
//! overridden with a `CONCLAVE_<KEY>` environment variable (`__` separates
//! nested keys), which is how containers are usually configured. With no
//! file at all the built-in defaults give a local test server.

mod federation;
mod listeners;
mod load;
mod voip;
mod well_known;

pub use federation::FederationConfig;
pub use listeners::{MetricsConfig, TlsConfig};
pub use voip::{PushConfig, TurnConfig};
pub use well_known::{SupportContact, WellKnown};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use ruma::{OwnedServerName, ServerName};
use serde::{Deserialize, Serialize};

/// Smallest accepted `max_request_size`: below this even ordinary JSON
/// requests (login, sync filters) would be rejected.
pub const MIN_REQUEST_SIZE: u64 = 4096;

/// Keys whose values must never be printed or echoed in errors.
const SECRET_KEYS: &[&str] = &[
    "registration_token",
    "registration_shared_secret",
    "turn_secret",
    "turn_password",
];

/// What secrets are replaced with in [`Config::to_masked_toml`].
const REDACTED: &str = "<redacted>";

/// The `[global]` table. Missing keys take their defaults; unknown keys are
/// reported as warnings by [`Config::load`] instead of failing, so a Conduit
/// file with options we don't implement still starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// The name in user IDs (`@alice:<server_name>`). Cannot change once
    /// users exist, so serde validates it at load time.
    pub server_name: OwnedServerName,
    /// Directory holding the RocksDB database.
    pub database_path: PathBuf,
    /// Only `"rocksdb"`; accepted so Conduit files that set it still load.
    pub database_backend: String,
    /// Size of RocksDB's shared block cache, in MiB.
    pub db_cache_capacity_mb: f64,
    /// Compress the database's files (LZ4; Zstd for the oldest data). Off trades disk space
    /// for a little CPU; tests that look for text in the files turn it off.
    pub db_compression: bool,
    /// Interface to listen on; loopback by default so nothing is exposed
    /// until the operator decides to.
    pub address: IpAddr,
    pub port: u16,
    /// Largest accepted request body in bytes (bounds memory per request).
    pub max_request_size: u64,
    /// Whether new accounts can be created; see `registration_token`.
    pub allow_registration: bool,
    /// Shared secret required to register (`m.login.registration_token`).
    /// Masked when the configuration is printed.
    pub registration_token: Option<String>,
    /// Synapse's `registration_shared_secret`: whoever knows it creates accounts (admins too)
    /// through `/_synapse/admin/v1/register`, as `register_new_matrix_user` does. Off when
    /// unset (the default). Masked when the configuration is printed.
    pub registration_shared_secret: Option<String>,
    /// Localpart of the server's bot account, which owns the admin room and answers admin
    /// commands (`@conclave:<server_name>`).
    pub admin_bot_localpart: String,
    /// Unix socket of the admin console (`conclave admin …`); `admin.sock` in the database
    /// directory when unset. Created with mode 0600.
    pub admin_socket: Option<PathBuf>,
    /// Talk to other Matrix servers (the federation listener, see `[global.federation]`).
    /// Off by default: private deployments often want none.
    pub allow_federation: bool,
    /// Notaries asked for a server's keys when it cannot be asked itself.
    pub trusted_servers: Vec<OwnedServerName>,
    /// Default log filter, in `tracing_subscriber::EnvFilter` syntax.
    pub log: String,
    /// `text` (the default) or `json`: one JSON object per line, with the request's span
    /// (method, path, user), for log shippers.
    pub log_format: LogFormat,
    /// Take the client IP (for rate limits) from `X-Forwarded-For`. Only
    /// safe behind a reverse proxy that sets it; otherwise clients could
    /// spoof their address to dodge rate limits.
    pub trust_forwarded_for: bool,
    /// Lifetime of access tokens issued to clients that asked for a
    /// refresh token; short, because the client can cheaply renew them.
    pub refreshable_access_token_lifetime_secs: u64,
    /// Login attempts, per IP and per user: slows password guessing.
    pub login_rate_limit: RateLimit,
    /// Registration attempts per IP: slows account spam and token guessing.
    pub registration_rate_limit: RateLimit,
    /// Contents of the `/.well-known/matrix/*` documents.
    pub well_known: WellKnown,
    /// Room version of new rooms when the client does not ask for one.
    pub default_room_version: ruma::RoomVersionId,
    /// Whether users see each other's online status. Switch off where that is unwanted (or
    /// to save the work on a very large server).
    pub allow_presence: bool,
    /// Whether the user directory finds every local user (a company directory), rather than
    /// only those sharing a room with the searcher or sitting in a public room.
    pub user_directory_search_all_users: bool,
    /// Largest accepted media upload in bytes (`413 M_TOO_LARGE` above it). Uploads stream to
    /// disk, so this bounds disk use per file, not memory.
    pub max_upload_size: u64,
    /// `[global.media]`: where files live, legacy endpoints, URL previews.
    pub media: MediaConfig,
    /// `[global.federation]`: the federation listener, its TLS, outgoing requests' limits.
    pub federation: FederationConfig,
    /// `[global.push]`: the address policy of push gateways.
    pub push: PushConfig,
    /// `[global.tls]`: the client listener's certificate, when it speaks HTTPS itself.
    pub tls: TlsConfig,
    /// `[global.metrics]`: the Prometheus listener.
    pub metrics: MetricsConfig,
    /// TURN for calls (`turn_uris`, `turn_secret`, ...), at the top of `[global]`.
    #[serde(flatten)]
    pub turn: TurnConfig,
    /// Application service registration files (YAML, as bridges generate them for
    /// Synapse), read at start. Services can also be registered from the admin room.
    pub appservice_registration_files: Vec<PathBuf>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `[global.media]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MediaConfig {
    /// Directory for media files; default `<database_path>/media`.
    pub path: Option<PathBuf>,
    /// Serve the unauthenticated `/_matrix/media/v3/download|thumbnail` endpoints that clients
    /// before spec v1.11 use. Off by default: anyone who learns a media ID could fetch it.
    pub allow_legacy_media: bool,
    /// With `allow_legacy_media`, only media uploaded before this date (`YYYY-MM-DD`, UTC) is
    /// served without authentication, so links in old messages keep working while new
    /// uploads are protected.
    pub legacy_media_before: Option<String>,
    /// URL previews fetch what users link to, from the server: off by default.
    pub url_preview_enabled: bool,
    /// Address ranges (CIDR) previews may fetch from although they are private, loopback or
    /// link-local (e.g. an intranet wiki). Everything else non-public is refused.
    pub url_preview_ip_range_allowlist: Vec<String>,
    /// Most bytes read from a previewed page or image.
    pub url_preview_max_size: u64,
    /// Longest a preview fetch may take, in seconds.
    pub url_preview_timeout_secs: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            path: None,
            allow_legacy_media: false,
            legacy_media_before: None,
            url_preview_enabled: false,
            url_preview_ip_range_allowlist: Vec::new(),
            url_preview_max_size: 10 * 1024 * 1024,
            url_preview_timeout_secs: 10,
        }
    }
}

impl Config {
    /// Where the federation listener binds.
    pub fn federation_listen_addr(&self) -> SocketAddr {
        SocketAddr::new(
            self.federation.address.unwrap_or(self.address),
            self.federation.port,
        )
    }

    /// Where media files are stored.
    pub fn media_path(&self) -> PathBuf {
        self.media
            .path
            .clone()
            .unwrap_or_else(|| self.database_path.join("media"))
    }

    /// `legacy_media_before` as milliseconds since the epoch (validated at load).
    pub fn legacy_media_cutoff_ms(&self) -> Option<u64> {
        self.media
            .legacy_media_before
            .as_deref()
            .and_then(parse_date_ms)
    }
}

/// `YYYY-MM-DD` (UTC midnight) as milliseconds since the Unix epoch.
pub fn parse_date_ms(date: &str) -> Option<u64> {
    let mut parts = date.trim().splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days).ok().map(|d| d * 86_400_000)
}

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server_name: ruma::server_name!("localhost").to_owned(),
            database_path: PathBuf::from("./conclave-data"),
            database_backend: "rocksdb".to_owned(),
            db_cache_capacity_mb: 256.0,
            db_compression: true,
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8008,
            max_request_size: 20 * 1024 * 1024,
            allow_registration: false,
            registration_token: None,
            registration_shared_secret: None,
            admin_bot_localpart: "conclave".to_owned(),
            admin_socket: None,
            allow_federation: false,
            trusted_servers: Vec::new(),
            // ruma's authorization checks log every event they pass at INFO: several lines
            // per message sent, on the hot path.
            log: "info,ruma_state_res=warn".to_owned(),
            log_format: LogFormat::Text,
            trust_forwarded_for: false,
            refreshable_access_token_lifetime_secs: 300,
            login_rate_limit: RateLimit {
                per_second: 0.2,
                burst: 5,
            },
            registration_rate_limit: RateLimit {
                per_second: 0.1,
                burst: 3,
            },
            well_known: WellKnown::default(),
            default_room_version: ruma::RoomVersionId::V12,
            allow_presence: true,
            user_directory_search_all_users: true,
            max_upload_size: 50 * 1024 * 1024,
            media: MediaConfig::default(),
            federation: FederationConfig::default(),
            push: PushConfig::default(),
            tls: TlsConfig::default(),
            metrics: MetricsConfig::default(),
            turn: TurnConfig::default(),
            appservice_registration_files: Vec::new(),
        }
    }
}

impl Default for RateLimit {
    /// The login limit: a generous default for any limiter left unset.
    fn default() -> Self {
        Self {
            per_second: 0.2,
            burst: 5,
        }
    }
}

/// Why the configuration could not be loaded. Messages name the file or
/// environment variable and the offending key, since they are the only
/// thing an operator sees when start-up fails.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin} is not valid TOML:\n{message}")]
    Syntax { origin: String, message: String },
    #[error("invalid value for {key} ({origin}): {message}")]
    InvalidValue {
        /// Full dotted key, e.g. `global.port`.
        key: String,
        /// The file or environment variable the value came from.
        origin: String,
        message: String,
    },
}

impl Config {
    /// Loads from an optional TOML file plus `CONCLAVE_*` environment
    /// overrides. Returns the config and warnings (unknown keys) for the
    /// caller to log.
    pub fn load(path: Option<&Path>) -> Result<(Config, Vec<String>), ConfigError> {
        let text = match path {
            Some(path) => {
                Some(
                    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                        path: path.to_owned(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let origin = match path {
            Some(path) => format!("configuration file {}", path.display()),
            None => "built-in defaults".to_owned(),
        };
        // vars_os, because env::vars() panics on any non-UTF-8 variable,
        // even one that has nothing to do with us.
        let env = std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        });
        load::load(text.as_deref(), origin, env)
    }

    /// Like [`Config::load`] but with the TOML text and environment given
    /// explicitly, so tests don't depend on the process environment.
    pub fn load_from(
        toml_text: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let origin = if toml_text.is_some() {
            "configuration file"
        } else {
            "built-in defaults"
        };
        load::load(toml_text, origin.to_owned(), env)
    }

    /// The effective configuration as TOML with a `[global]` table, secrets
    /// replaced by `<redacted>`: safe to log or show in a support request.
    pub fn to_masked_toml(&self) -> String {
        #[derive(Serialize)]
        struct Document<'a> {
            global: &'a Config,
        }

        let mut masked = self.clone();
        if masked.registration_token.is_some() {
            masked.registration_token = Some(REDACTED.to_owned());
        }
        for secret in [
            &mut masked.registration_shared_secret,
            &mut masked.turn.turn_secret,
            &mut masked.turn.turn_password,
        ] {
            if secret.is_some() {
                *secret = Some(REDACTED.to_owned());
            }
        }
        match toml::to_string(&Document { global: &masked }) {
            Ok(text) => text,
            Err(e) => format!("# could not render the configuration: {e}\n"),
        }
    }

    /// The socket address to listen on.
    /// Where the admin console listens.
    pub fn admin_socket_path(&self) -> PathBuf {
        self.admin_socket
            .clone()
            .unwrap_or_else(|| self.database_path.join("admin.sock"))
    }

    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }

    /// Rules the field types can't express. On failure returns the key
    /// (relative to `[global]`) and why; the loader adds file and env context.
    fn validate(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, message: String| Err((key.to_owned(), message));

        if self.database_backend != "rocksdb" {
            return fail(
                "database_backend",
                format!(
                    "\"{}\" is not supported; Conclave only stores data in RocksDB, \
                     set \"rocksdb\" or remove the key",
                    self.database_backend
                ),
            );
        }
        let supported_version = self.default_room_version.rules().is_some();
        if !supported_version {
            return fail(
                "default_room_version",
                format!(
                    "room version {} is not supported; choose 1 to 12",
                    self.default_room_version
                ),
            );
        }
        let cache = self.db_cache_capacity_mb;
        let cache_ok = cache.is_finite() && cache > 0.0;
        if !cache_ok {
            return fail(
                "db_cache_capacity_mb",
                format!(
                    "must be a positive number of MiB, got {}",
                    self.db_cache_capacity_mb
                ),
            );
        }
        if self.max_request_size < MIN_REQUEST_SIZE {
            return fail(
                "max_request_size",
                format!(
                    "must be at least {MIN_REQUEST_SIZE} bytes, got {}",
                    self.max_request_size
                ),
            );
        }
        if let Some(token) = &self.registration_token
            && !is_valid_registration_token(token)
        {
            // The token itself is a secret: describe the rule, don't echo it.
            return fail(
                "registration_token",
                "must be 1 to 64 characters from A-Z a-z 0-9 . _ ~ - \
                 (the Matrix spec's rule for registration tokens)"
                    .to_owned(),
            );
        }
        if let Some(date) = &self.media.legacy_media_before
            && parse_date_ms(date).is_none()
        {
            return fail(
                "media.legacy_media_before",
                format!("must be a date as YYYY-MM-DD, got {date:?}"),
            );
        }
        let lists = [
            (
                "media.url_preview_ip_range_allowlist",
                &self.media.url_preview_ip_range_allowlist,
            ),
            (
                "federation.ip_range_denylist",
                &self.federation.ip_range_denylist,
            ),
            (
                "federation.ip_range_allowlist",
                &self.federation.ip_range_allowlist,
            ),
            ("push.ip_range_denylist", &self.push.ip_range_denylist),
            ("push.ip_range_allowlist", &self.push.ip_range_allowlist),
        ];
        for (key, list) in lists {
            for range in list {
                if crate::service::net::IpRange::parse(range).is_none() {
                    return fail(
                        key,
                        format!("{range:?} is not an address range like 10.0.0.0/8 or fd00::/8"),
                    );
                }
            }
        }
        if self.media.url_preview_timeout_secs == 0 {
            return fail(
                "media.url_preview_timeout_secs",
                "must be at least 1 second".to_owned(),
            );
        }
        if self.refreshable_access_token_lifetime_secs == 0 {
            return fail(
                "refreshable_access_token_lifetime_secs",
                "must be at least 1 second".to_owned(),
            );
        }
        for (key, limit) in [
            ("login_rate_limit", &self.login_rate_limit),
            ("registration_rate_limit", &self.registration_rate_limit),
        ] {
            let rate_ok = limit.per_second.is_finite() && limit.per_second > 0.0;
            if !rate_ok {
                return fail(
                    &format!("{key}.per_second"),
                    format!("must be a positive number, got {}", limit.per_second),
                );
            }
            if limit.burst == 0 {
                // A zero bucket would reject every request, locking everyone out.
                return fail(&format!("{key}.burst"), "must be at least 1".to_owned());
            }
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log) {
            return fail("log", format!("not a valid log filter: {e}"));
        }
        if let Some(client) = &self.well_known.client
            && !(client.starts_with("https://") || client.starts_with("http://"))
        {
            return fail(
                "well_known.client",
                format!("must be an http:// or https:// URL, got \"{client}\""),
            );
        }
        if let Some(server) = &self.well_known.server
            && <&ServerName>::try_from(server.as_str()).is_err()
        {
            return fail(
                "well_known.server",
                format!("must be host or host:port (no scheme or path), got \"{server}\""),
            );
        }
        for contact in &self.well_known.support_contacts {
            if contact.matrix_id.is_none() && contact.email_address.is_none() {
                return fail(
                    "well_known.support_contacts",
                    "each contact needs a matrix_id or an email_address".to_owned(),
                );
            }
        }
        if !self.turn.turn_uris.is_empty()
            && self.turn.turn_secret.is_none()
            && (self.turn.turn_username.is_none() || self.turn.turn_password.is_none())
        {
            return fail(
                "turn_uris",
                "needs turn_secret (coturn's static-auth-secret), or turn_username and \
                 turn_password"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

/// The spec's registration token grammar: 1-64 chars of `[A-Za-z0-9._~-]`.
fn is_valid_registration_token(token: &str) -> bool {
    (1..=64).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
}

#[cfg(test)]
mod tests;
