//! Helpers for federation tests: certificates for a test PKI, an HTTPS client that accepts
//! them, and a real Synapse as the partner server (`tests/federation/synapse-peer.sh`).

use std::net::IpAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// A self-signed certificate for `ip`, written as PEM into `dir`; answers the DER too.
pub fn certificate(
    dir: &Path,
    ip: IpAddr,
    name: &str,
) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![rcgen::SanType::IpAddress(ip)];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    let cert_path = dir.join("fed.crt");
    let key_path = dir.join("fed.key");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path, cert.der().to_vec())
}

/// The certificate a TLS server presented (the client needs `tls_info(true)`).
pub fn peer_certificate(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("a TLS peer certificate")
        .to_vec()
}

/// Sends SIGHUP to this test process (whose servers then read their certificate files again)
/// and waits, bounded, until `url` is served with the certificate `expected`; each try uses a
/// new client from `client`, as the certificate is chosen at the handshake.
pub async fn sighup_until_served(client: impl Fn() -> reqwest::Client, url: &str, expected: &[u8]) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut served = Vec::new();
    for _ in 0..100 {
        let response = client().get(url).send().await.unwrap();
        served = peer_certificate(&response);
        if served == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served, expected, "the renewed certificate is served");
}

/// Sends `request` and reads its JSON answer (whatever the status).
pub async fn json_of(request: reqwest::RequestBuilder) -> serde_json::Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// Turns federation on with its listener at `ip:port` (0: any free port).
pub fn federate_on(config: &mut conclave::config::Config, ip: IpAddr, port: u16) {
    config.allow_federation = true;
    config.federation.address = Some(ip);
    config.federation.port = port;
}

/// A Conclave named `127.0.0.<last_octet>:8448`, its federation listener there with a
/// certificate of the test PKI, registration open, loopback destinations allowed.
pub async fn conclave_peer(last_octet: u8) -> (super::TestServer, tempfile::TempDir) {
    conclave_peer_with(last_octet, |_| {}).await
}

/// [`conclave_peer`] with more configuration.
pub async fn conclave_peer_with(
    last_octet: u8,
    customize: impl Fn(&mut conclave::config::Config) + Send + Sync + 'static,
) -> (super::TestServer, tempfile::TempDir) {
    let pki = tempfile::tempdir().unwrap();
    let ip = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, last_octet));
    let (cert, key, _) = certificate(pki.path(), ip, "conclave");
    let ts = super::TestServer::start_with(move |config: &mut conclave::config::Config| {
        config.server_name = format!("{ip}:8448").try_into().unwrap();
        config.allow_registration = true;
        config.registration_token = None;
        federate_on(config, ip, 8448);
        config.federation.tls_certificate = Some(cert.clone());
        config.federation.tls_private_key = Some(key.clone());
        config.federation.ip_range_allowlist = vec!["127.0.0.0/8".to_owned()];
        config.federation.verify_certificates = false;
        customize(config);
    })
    .await;
    (ts, pki)
}

/// A client for the test PKI: certificate checks off, as `verify_certificates = false`.
pub fn federation_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .tls_info(true)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A Synapse started by `tests/federation/synapse-peer.sh` on its own loopback address, in a
/// directory named after that address: a peer left running by a failed run is stopped by the
/// next one before it starts.
pub struct SynapsePeer {
    pub work: std::path::PathBuf,
}

impl SynapsePeer {
    const SCRIPT: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/federation/synapse-peer.sh"
    );

    pub async fn start(ip: &str) -> SynapsePeer {
        let peer = SynapsePeer {
            work: std::env::temp_dir().join(format!("conclave-synapse-peer-{ip}")),
        };
        peer.stop_now();
        let output = tokio::process::Command::new("bash")
            .arg(Self::SCRIPT)
            .args(["start", ip])
            .arg(&peer.work)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run synapse-peer.sh");
        assert!(
            output.status.success(),
            "Synapse did not start:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        peer
    }

    /// The end of Synapse's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.work.join("homeserver.log")).unwrap_or_default();
        let lines: Vec<&str> = log
            .lines()
            .filter(|line| !line.contains("call_when_running"))
            .collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn stop_now(&self) {
        let _ = std::process::Command::new("bash")
            .arg(Self::SCRIPT)
            .arg("stop")
            .arg(&self.work)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    pub async fn stop(self) {
        self.stop_now();
    }
}

impl SynapsePeer {
    /// Registers `localpart` on the Synapse at `ip` (open registration); answers the access
    /// token.
    pub async fn register(&self, ip: &str, localpart: &str, password: &str) -> String {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let url = format!("http://{ip}:8008/_matrix/client/v3/register");
        let mut body = serde_json::json!({ "username": localpart, "password": password });
        let first: serde_json::Value = json_of(client.post(&url).json(&body)).await;
        body["auth"] = serde_json::json!({ "type": "m.login.dummy", "session": first["session"] });
        let done: serde_json::Value = json_of(client.post(&url).json(&body)).await;
        done["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("Synapse registration failed: {done}"))
            .to_owned()
    }
}

/// A user of the Synapse peer, through its client API.
pub struct SynapseUser {
    http: reqwest::Client,
    base: String,
    pub token: String,
    pub user_id: String,
}

impl SynapseUser {
    /// The user of `token` on the Synapse peer at `ip`.
    pub fn new(ip: &str, token: String, user_id: String) -> SynapseUser {
        SynapseUser {
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            base: format!("http://{ip}:8008"),
            token,
            user_id,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn ok(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let (status, value) = self.call(method, path, body).await;
        assert_eq!(status, 200, "Synapse answered {status} to {path}: {value}");
        value
    }

    pub async fn room_messages(&self, room_id: &str) -> serde_json::Value {
        self.call(
            reqwest::Method::GET,
            &format!(
                "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50",
                super::enc(room_id)
            ),
            None,
        )
        .await
        .1
    }

    /// Follows Sam's sync from `since` (long-polling, as a client does: Synapse answers a
    /// repeated identical sync from a cache) until a response passes `check`.
    pub async fn sync_until(
        &self,
        what: &str,
        since: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut since = since.to_owned();
        loop {
            let (status, answer) = self
                .call(
                    reqwest::Method::GET,
                    &format!(
                        "/_matrix/client/v3/sync?since={}&timeout=5000",
                        super::enc(&since)
                    ),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{answer}");
            if check(&answer) {
                return answer;
            }
            assert!(std::time::Instant::now() < deadline, "never saw {what}");
            since = answer["next_batch"].as_str().unwrap().to_owned();
        }
    }

    pub async fn sync(&self) -> serde_json::Value {
        self.call(
            reqwest::Method::GET,
            "/_matrix/client/v3/sync?timeout=0",
            None,
        )
        .await
        .1
    }
}

/// Waits (up to a minute: federation is asynchronous) until `check` finds what it looks for
/// in the answers of `fetch`; fails with the last answer.
pub async fn eventually<F, Fut>(
    what: &str,
    mut fetch: F,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = serde_json::Value>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let value = fetch().await;
        if check(&value) {
            return value;
        }
        if std::time::Instant::now() > deadline {
            panic!("never saw {what}; last answer: {value:#}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The room's latest 50 events as `who` reads them (`/messages` backwards).
pub async fn room_messages(
    ts: &super::TestServer,
    who: &super::Session,
    room_id: &str,
) -> serde_json::Value {
    ts.get(
        &super::room_path(room_id, "/messages?dir=b&limit=50"),
        who.bearer(),
    )
    .await
    .1
}

/// Whether a `/messages` answer holds a message with this body.
pub fn has_body(messages: &serde_json::Value, body: &str) -> bool {
    messages["chunk"]
        .as_array()
        .is_some_and(|chunk| chunk.iter().any(|e| e["content"]["body"] == body))
}

/// The newest membership of `user` in a `/messages` answer.
pub fn membership_of(messages: &serde_json::Value, user: &str) -> Option<String> {
    messages["chunk"].as_array()?.iter().find_map(|e| {
        (e["type"] == "m.room.member" && e["state_key"] == user)
            .then(|| e["content"]["membership"].as_str().map(str::to_owned))
            .flatten()
    })
}

/// `/joined_members` of a room as `who` reads it.
pub async fn joined_members(
    ts: &super::TestServer,
    who: &super::Session,
    room_id: &str,
) -> serde_json::Value {
    ts.get(&super::room_path(room_id, "/joined_members"), who.bearer())
        .await
        .1
}

/// An immediate `/sync` of `who` (no `since`).
pub async fn sync_now(ts: &super::TestServer, who: &super::Session) -> serde_json::Value {
    ts.get("/_matrix/client/v3/sync?timeout=0", who.bearer())
        .await
        .1
}
