//! TURN for calls against a real coturn (Debian's `coturn`, started here with
//! `use-auth-secret` on its own loopback address): the credentials `/voip/turnServer` hands
//! out allocate a relay with coturn's own client (`turnutils_uclient`), and altered ones do
//! not. Without TURN configured the endpoint says nothing, as Synapse's does.

mod common;

use common::*;
use serde_json::json;

const TURN_IP: &str = "127.0.0.120";
const SECRET: &str = "shared-with-coturn";

/// A coturn server for one test; stopped when dropped.
struct Coturn {
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Coturn {
    async fn start() -> Coturn {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("turn.log");
        let child = tokio::process::Command::new("turnserver")
            .args([
                "-n",
                &format!("--listening-ip={TURN_IP}"),
                &format!("--relay-ip={TURN_IP}"),
                "--listening-port=3478",
                "--min-port=49160",
                "--max-port=49200",
                "--use-auth-secret",
                &format!("--static-auth-secret={SECRET}"),
                "--realm=conclave.test",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--allow-loopback-peers",
                "--simple-log",
            ])
            .arg(format!("--log-file={}", log.display()))
            .arg(format!("--userdb={}", dir.path().join("turndb").display()))
            .arg(format!(
                "--pidfile={}",
                dir.path().join("turn.pid").display()
            ))
            .kill_on_drop(true)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start turnserver (Debian package coturn; .ci/run installs it)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let written = std::fs::read_to_string(&log).unwrap_or_default();
            if written.contains("Total General servers") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "coturn did not start: {written}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Coturn { child, _dir: dir }
    }
}

/// Whether coturn's client allocates a relay (and sends through it) with these credentials.
async fn allocates(username: &str, password: &str) -> bool {
    let output = tokio::process::Command::new("turnutils_uclient")
        .args([
            "-y", "-n", "1", "-p", "3478", "-u", username, "-w", password, TURN_IP,
        ])
        .output()
        .await
        .expect("run turnutils_uclient");
    output.status.success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_credentials_from_the_server_allocate_a_coturn_relay() {
    let ts = TestServer::start_with(|cfg| {
        cfg.turn.turn_uris = vec![format!("turn:{TURN_IP}:3478?transport=udp")];
        cfg.turn.turn_secret = Some(SECRET.into());
        cfg.turn.turn_ttl = 3600;
    })
    .await;
    let mut coturn = Coturn::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;

    let resp = ts.get("/_matrix/client/v3/voip/turnServer", None).await;
    assert_errcode(&resp, reqwest::StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
    let turn = expect_ok(
        ts.get("/_matrix/client/v3/voip/turnServer", alice.bearer())
            .await,
    );
    assert_eq!(
        turn["uris"],
        json!([format!("turn:{TURN_IP}:3478?transport=udp")])
    );
    assert_eq!(turn["ttl"], 3600);
    let username = turn["username"].as_str().unwrap();
    let password = turn["password"].as_str().unwrap();
    // `<expiry>:<user ID>`, expiring an hour from now.
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, alice.user_id);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!((now + 3500..=now + 3700).contains(&expiry), "{username}");

    assert!(
        allocates(username, password).await,
        "coturn refused the server's credentials"
    );
    let mut altered = password.to_owned();
    altered.replace_range(0..1, if password.starts_with('A') { "B" } else { "A" });
    assert!(
        !allocates(username, &altered).await,
        "coturn took a wrong password"
    );
    assert!(
        !allocates(&format!("{}:{}", expiry + 1, user), password).await,
        "coturn took a password for another user name"
    );
    coturn.child.kill().await.unwrap();
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_turn_the_endpoint_says_nothing_and_static_credentials_are_handed_out() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    let turn = expect_ok(
        ts.get("/_matrix/client/v3/voip/turnServer", alice.bearer())
            .await,
    );
    assert_eq!(turn, json!({}));
    ts.shutdown().await;

    let ts = TestServer::start_with(|cfg| {
        cfg.turn.turn_uris = vec!["turns:turn.example.com:5349?transport=tcp".into()];
        cfg.turn.turn_username = Some("calls".into());
        cfg.turn.turn_password = Some("fixed-password".into());
    })
    .await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    let turn = expect_ok(
        ts.get("/_matrix/client/v3/voip/turnServer", alice.bearer())
            .await,
    );
    assert_eq!(turn["username"], "calls");
    assert_eq!(turn["password"], "fixed-password");
    assert_eq!(turn["ttl"], 86400);
    ts.shutdown().await;
}
