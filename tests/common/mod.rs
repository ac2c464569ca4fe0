//! Shared harness for the integration tests: starts a real Conclave server on an
//! ephemeral port with a throw-away database and talks to it over HTTP the way a
//! Matrix client would.
//!
//! Every test file does `mod common;` and uses only the parts it needs, so unused
//! helpers are expected in any single test binary.
#![allow(dead_code)]

pub mod admin;
pub mod crypto;
pub mod federation;
pub mod media;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use conclave::config::{Config, RateLimit};
use conclave::server::{Server, StartError};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

/// Status and decoded JSON body of a response. A body that is not JSON is kept as
/// a JSON string so assertion messages still show it; an empty body is `Null`.
pub type Resp = (StatusCode, Value);

pub const REGISTER: &str = "/_matrix/client/v3/register";
pub const LOGIN: &str = "/_matrix/client/v3/login";
pub const WHOAMI: &str = "/_matrix/client/v3/account/whoami";
pub const DEVICES: &str = "/_matrix/client/v3/devices";

type Customizer = Box<dyn Fn(&mut Config) + Send + Sync>;

/// A logged-in device of some user.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: String,
    pub access_token: String,
    pub device_id: String,
}

impl Session {
    /// Builds a session from a successful `/register` or `/login` response body.
    pub fn from_body(body: &Value) -> Session {
        let field = |name: &str| {
            body[name]
                .as_str()
                .unwrap_or_else(|| panic!("response has no string `{name}`: {body}"))
                .to_owned()
        };
        Session {
            user_id: field("user_id"),
            access_token: field("access_token"),
            device_id: field("device_id"),
        }
    }

    /// The access token, in the shape the request helpers take.
    pub fn bearer(&self) -> Option<&str> {
        Some(self.access_token.as_str())
    }

    /// The localpart of the user ID (`alice` for `@alice:localhost`).
    pub fn localpart(&self) -> &str {
        self.user_id
            .trim_start_matches('@')
            .split(':')
            .next()
            .unwrap_or_default()
    }
}

pub struct TestServer {
    // Declared before `dir` so the server (and its database) is dropped before the
    // temporary directory is removed.
    server: Option<Server>,
    customize: Customizer,
    db_path: PathBuf,
    client: reqwest::Client,
    dir: TempDir,
}

/// Rate limits high enough that no ordinary test ever hits them.
pub fn generous_rate_limit() -> RateLimit {
    RateLimit {
        per_second: 1000.0,
        burst: 1000,
    }
}

impl TestServer {
    /// A server with the default configuration (registration closed, bootstrap token).
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// A server with open registration (`m.login.dummy`), for tests that need several users.
    pub async fn start_open() -> TestServer {
        TestServer::start_with(|cfg| {
            cfg.allow_registration = true;
            cfg.registration_token = None;
        })
        .await
    }

    /// A server whose test configuration is further adjusted by `customize`. The
    /// adjustment is re-applied on every `restart`.
    pub async fn start_with(customize: impl Fn(&mut Config) + Send + Sync + 'static) -> TestServer {
        // `CONCLAVE_TEST_LOG=conclave=debug` shows the servers' logs with a test's output.
        if let Ok(filter) = std::env::var("CONCLAVE_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let dir = tempfile::tempdir().expect("create temporary directory");
        let db_path = dir.path().join("db");
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("build HTTP client");
        let mut ts = TestServer {
            server: None,
            customize: Box::new(customize),
            db_path,
            client,
            dir,
        };
        let server = Server::start(ts.config())
            .await
            .expect("server failed to start");
        ts.server = Some(server);
        ts
    }

    /// The test's temporary directory (the database lives in `db/` inside it).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The configuration this test server runs with (freshly built each call).
    pub fn config(&self) -> Config {
        let mut cfg = Config {
            database_path: self.db_path.clone(),
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            login_rate_limit: generous_rate_limit(),
            registration_rate_limit: generous_rate_limit(),
            ..Config::default()
        };
        (self.customize)(&mut cfg);
        cfg
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("server is not running")
    }

    pub fn bootstrap_token(&self) -> Option<String> {
        self.server().bootstrap_token()
    }

    /// Shuts the server down and starts a new one on the same database. Work the old
    /// instance handed to the blocking pool (a purge, a password hash) may still hold the
    /// database for a moment on a loaded machine: the lock is retried for a few seconds,
    /// which a real leak would still fail.
    pub async fn restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let server = loop {
            match Server::start(self.config()).await {
                Ok(server) => break server,
                Err(conclave::server::StartError::Database(
                    conclave::error::Error::DatabaseLocked(_),
                )) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(error) => panic!("server failed to restart: {error:?}"),
            }
        };
        self.server = Some(server);
    }

    /// Stops the server but keeps its database, e.g. to inspect the files; `restart` resumes.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    /// Tries to start a second server on the same database while this one runs.
    pub async fn start_second_instance(&self) -> Result<Server, StartError> {
        Server::start(self.config()).await
    }

    /// Graceful shutdown at the end of a test.
    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.server().local_addr(), path)
    }

    // ---------------------------------------------------------------- requests

    /// Sends a request with an optional bearer token and optional JSON body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        read_response(req.send().await.expect("HTTP request failed")).await
    }

    /// Sends raw bytes with the given content type (for malformed or huge bodies).
    pub async fn request_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Resp {
        let mut req = self
            .client
            .request(method, self.url(path))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        read_response(req.send().await.expect("HTTP request failed")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.request(Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.request(Method::PUT, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(Method::DELETE, path, token, None).await
    }

    // --------------------------------------------------- user-interactive auth

    /// Performs a request guarded by user-interactive authentication: sends `body`
    /// without `auth`; if the server answers 401 with `flows`, sends it again with
    /// `auth` (plus the server's `session`). Returns the final response, or the first
    /// one when it was not a UIA challenge (e.g. a 400 checked before UIA).
    pub async fn uia(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Value,
        auth: Value,
    ) -> Resp {
        let first = self.request(method.clone(), path, token, Some(&body)).await;
        if first.0 != StatusCode::UNAUTHORIZED || first.1.get("flows").is_none() {
            return first;
        }
        let mut auth = auth;
        if let Some(session) = first.1.get("session") {
            auth["session"] = session.clone();
        }
        let mut body = body;
        body["auth"] = auth;
        self.request(method, path, token, Some(&body)).await
    }

    /// A UIA request authenticated with the session's user and `password`.
    pub async fn uia_password(
        &self,
        method: Method,
        path: &str,
        session: &Session,
        password: &str,
        body: Value,
    ) -> Resp {
        self.uia(
            method,
            path,
            session.bearer(),
            body,
            password_auth(&session.user_id, password),
        )
        .await
    }

    // ---------------------------------------------------------- registration

    /// `/register` with the given body, completing UIA with `auth`.
    pub async fn register(&self, body: Value, auth: Value) -> Resp {
        self.uia(Method::POST, REGISTER, None, body, auth).await
    }

    pub async fn register_with_token(
        &self,
        username: &str,
        password: &str,
        token: &str,
    ) -> Session {
        let resp = self
            .register(
                json!({ "username": username, "password": password }),
                registration_token_auth(token),
            )
            .await;
        Session::from_body(&expect_ok(resp))
    }

    /// Registers the first account of a fresh server using its bootstrap token.
    pub async fn register_first_admin(&self, username: &str, password: &str) -> Session {
        let token = self
            .bootstrap_token()
            .expect("a fresh server must have a bootstrap registration token");
        self.register_with_token(username, password, &token).await
    }

    /// Registers on a server with open registration (`m.login.dummy`).
    pub async fn register_open(&self, username: &str, password: &str) -> Session {
        let resp = self
            .register(
                json!({ "username": username, "password": password }),
                dummy_auth(),
            )
            .await;
        Session::from_body(&expect_ok(resp))
    }

    /// `GET /register/available` for `username`.
    pub async fn username_available(&self, username: &str) -> Resp {
        self.get(
            &format!(
                "/_matrix/client/v3/register/available?username={}",
                enc(username)
            ),
            None,
        )
        .await
    }

    /// `GET /register/m.login.registration_token/validity` for `token`.
    pub async fn token_validity(&self, token: &str) -> Resp {
        self.get(
            &format!(
                "/_matrix/client/v1/register/m.login.registration_token/validity?token={}",
                enc(token)
            ),
            None,
        )
        .await
    }

    // ----------------------------------------------------------------- login

    /// `POST /login` with a password for `user` (a localpart or a full user ID),
    /// merged with `extra` fields (e.g. `device_id`, `refresh_token`).
    pub async fn login_raw(&self, user: &str, password: &str, extra: Value) -> Resp {
        let mut body = json!({
            "type": "m.login.password",
            "identifier": { "type": "m.id.user", "user": user },
            "password": password,
        });
        if let Value::Object(extra) = extra {
            for (key, value) in extra {
                body[key] = value;
            }
        }
        self.post(LOGIN, None, &body).await
    }

    pub async fn login(&self, user: &str, password: &str) -> Session {
        let resp = self.login_raw(user, password, json!({})).await;
        Session::from_body(&expect_ok(resp))
    }

    pub async fn whoami(&self, token: &str) -> Resp {
        self.get(WHOAMI, Some(token)).await
    }

    /// Asserts that `token` is accepted.
    pub async fn assert_token_valid(&self, token: &str) {
        let resp = self.whoami(token).await;
        assert_eq!(resp.0, StatusCode::OK, "token should be valid: {}", resp.1);
    }

    /// Asserts that `token` is rejected as unknown.
    pub async fn assert_token_rejected(&self, token: &str) {
        let resp = self.whoami(token).await;
        assert_errcode(&resp, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    }

    /// The IDs of the session user's devices, from `GET /devices`.
    pub async fn device_ids(&self, session: &Session) -> Vec<String> {
        let body = expect_ok(self.get(DEVICES, session.bearer()).await);
        body["devices"]
            .as_array()
            .unwrap_or_else(|| panic!("`devices` is not an array: {body}"))
            .iter()
            .map(|d| d["device_id"].as_str().expect("device_id").to_owned())
            .collect()
    }
}

async fn read_response(resp: reqwest::Response) -> Resp {
    let status = resp.status();
    let bytes = resp.bytes().await.expect("read response body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, body)
}

// ------------------------------------------------------------------ free helpers

/// UIA `auth` for `m.login.password`.
pub fn password_auth(user_id: &str, password: &str) -> Value {
    json!({
        "type": "m.login.password",
        "identifier": { "type": "m.id.user", "user": user_id },
        "password": password,
    })
}

/// UIA `auth` for `m.login.registration_token`.
pub fn registration_token_auth(token: &str) -> Value {
    json!({ "type": "m.login.registration_token", "token": token })
}

/// UIA `auth` for `m.login.dummy`.
pub fn dummy_auth() -> Value {
    json!({ "type": "m.login.dummy" })
}

/// Asserts a Matrix error response with the given status and `errcode`.
#[track_caller]
pub fn assert_errcode(resp: &Resp, status: StatusCode, errcode: &str) {
    assert_eq!(resp.0, status, "unexpected status, body: {}", resp.1);
    assert_eq!(
        resp.1["errcode"].as_str(),
        Some(errcode),
        "unexpected errcode, body: {}",
        resp.1
    );
}

/// Asserts a 200 response and returns its body.
#[track_caller]
pub fn expect_ok(resp: Resp) -> Value {
    assert_eq!(resp.0, StatusCode::OK, "expected 200, body: {}", resp.1);
    resp.1
}

/// Whether a UIA 401 body offers a flow with exactly these stages.
pub fn has_flow(body: &Value, stages: &[&str]) -> bool {
    body["flows"].as_array().is_some_and(|flows| {
        flows.iter().any(|flow| {
            flow["stages"].as_array().is_some_and(|s| {
                s.len() == stages.len() && s.iter().zip(stages).all(|(a, b)| a.as_str() == Some(*b))
            })
        })
    })
}

/// Percent-encodes a path segment or query value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ------------------------------------------------------------------ rooms

/// `/_matrix/client/v3/rooms/{room_id}{rest}`.
pub fn room_path(room_id: &str, rest: &str) -> String {
    format!("/_matrix/client/v3/rooms/{}{rest}", enc(room_id))
}

/// Creates a room and returns its ID.
pub async fn create_room(ts: &TestServer, who: &Session, body: Value) -> String {
    let created = expect_ok(
        ts.post("/_matrix/client/v3/createRoom", who.bearer(), &body)
            .await,
    );
    created["room_id"].as_str().expect("room_id").to_owned()
}

/// Sends a text message with transaction ID `txn`.
pub async fn send_text(
    ts: &TestServer,
    who: &Session,
    room_id: &str,
    txn: &str,
    text: &str,
) -> Resp {
    let path = room_path(room_id, &format!("/send/m.room.message/{txn}"));
    ts.put(
        &path,
        who.bearer(),
        &json!({ "msgtype": "m.text", "body": text }),
    )
    .await
}

/// Sends a text message that must succeed, returning its event ID.
pub async fn send_text_id(
    ts: &TestServer,
    who: &Session,
    room_id: &str,
    txn: &str,
    text: &str,
) -> String {
    let sent = expect_ok(send_text(ts, who, room_id, txn, text).await);
    sent["event_id"].as_str().expect("event_id").to_owned()
}

/// Empties `trees` and removes the `global` markers `markers` in a stopped server's database,
/// as a database from before those indexes would be. Each tree must have held something;
/// returns how many entries each held.
pub fn wipe_indexes(
    db_path: &std::path::Path,
    trees: &[&'static str],
    markers: &[&[u8]],
) -> Vec<usize> {
    let engine = conclave::storage::Engine::open(conclave::storage::EngineOptions {
        path: db_path,
        cache_capacity_bytes: 8 << 20,
        compression: true,
        statistics: false,
    })
    .unwrap();
    let mut held = Vec::new();
    for name in trees {
        let tree = engine.tree(name);
        let keys: Vec<_> = tree.scan_prefix(Vec::new()).map(|e| e.unwrap().0).collect();
        assert!(!keys.is_empty(), "{name} is empty");
        held.push(keys.len());
        for key in keys {
            tree.remove(&key).unwrap();
        }
    }
    for marker in markers {
        engine.tree("global").remove(marker).unwrap();
    }
    held
}

/// Runs `conclave admin --socket <socket> <words>`; returns exit code, stdout, stderr.
pub async fn console(socket: &std::path::Path, words: &[&str]) -> (i32, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_conclave"))
        .arg("admin")
        .arg("--socket")
        .arg(socket)
        .args(words)
        .env_remove("CONCLAVE_CONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run conclave admin");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Whether any file under `dir` holds `needle` as it is. The servers of the tests that use it
/// run with `db_compression = false`: compressed blocks hold text in other forms.
pub fn files_contain(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let path = entry.unwrap().path();
        if path.is_dir() {
            return files_contain(&path, needle);
        }
        let bytes = std::fs::read(&path).unwrap_or_default();
        bytes.windows(needle.len()).any(|window| window == needle)
    })
}

/// [`files_contain`] but for RocksDB's MANIFEST, which notes the first and last key of each
/// data file and is rewritten only when the database opens.
pub fn data_files_contain(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("MANIFEST") {
            return false;
        }
        if path.is_dir() {
            return files_contain(&path, needle);
        }
        let bytes = std::fs::read(&path).unwrap_or_default();
        bytes.windows(needle.len()).any(|window| window == needle)
    })
}

/// Runs `script` (in tests/clients/) with `args`; returns the JSON line it prints.
pub async fn run_nio(script: &str, args: &[&str]) -> serde_json::Value {
    let python = std::env::var("CONCLAVE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = format!("{}/tests/clients/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {python}: {e} (install matrix-nio; see README)"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{script} failed:\n{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("unexpected output from {script} ({e}): {stdout}\n{stderr}"))
}

/// A PNG of `width`×`height` with a gradient, for media tests.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbaImage::from_fn(width, height, |x, y| {
        image::Rgba([(x % 256) as u8, (y % 256) as u8, 128, 255])
    });
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgba8(image)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .expect("encode PNG");
    bytes
}
