//! Federation benchmarks: a Conclave joining a room of 10,000 members on another Conclave
//! (time, and the process's peak memory), inbound transaction throughput (PDUs per second
//! placed by the receiving server, into one room and into many), a local send's latency into
//! rooms shared with 0, 1 and 20 other servers, and `/keys/query` for 100 remote users
//! (sharing no room, and tracked; `CONCLAVE_BENCH_ONLY=fanout` runs only the last two).
//! Run with `cargo bench --bench federation`; figures go to docs/performance.md. Both servers
//! run in this process, each on its own loopback address with a certificate made here.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use conclave::config::{Config, RateLimit};
use conclave::server::Server;
use conclave::service::Services;
use conclave::service::rooms::PduBuilder;
use ruma::events::TimelineEventType;
use ruma::{RoomId, UserId};
use serde_json::{Value, json};

/// Members of the joined room (`CONCLAVE_BENCH_MEMBERS` to change).
fn members() -> usize {
    std::env::var("CONCLAVE_BENCH_MEMBERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}
const PDUS: usize = 2_000;
const ROOMS: usize = 20;

/// CPU time this process used so far (user and system), from /proc (10 ms resolution).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = fields
        .get(11..13)
        .map(|both| both.iter().filter_map(|t| t.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn memory_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

fn config(dir: &std::path::Path, octet: u8) -> Config {
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, octet));
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![rcgen::SanType::IpAddress(ip)];
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("fed.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("fed.key"), key.serialize_pem()).unwrap();
    let fast = RateLimit {
        per_second: 1e6,
        burst: 1_000_000,
    };
    let mut config = Config {
        database_path: dir.join("db"),
        port: 0,
        allow_registration: true,
        registration_token: None,
        login_rate_limit: fast.clone(),
        registration_rate_limit: fast,
        allow_federation: true,
        log: "warn".into(),
        ..Config::default()
    };
    config.server_name = format!("{ip}:8448").try_into().unwrap();
    config.federation.address = Some(ip);
    config.federation.port = 8448;
    config.federation.tls_certificate = Some(dir.join("fed.crt"));
    config.federation.tls_private_key = Some(dir.join("fed.key"));
    config.federation.ip_range_allowlist = vec!["127.0.0.0/8".to_owned()];
    config.federation.verify_certificates = false;
    config
}

async fn call(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> Value {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut request = http
        .request(method, format!("http://{}{path}", server.local_addr()))
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let value: Value = response.json().await.unwrap_or(Value::Null);
    assert!(
        status.is_success() || status == 401,
        "{path}: {status} {value}"
    );
    value
}

async fn register(server: &Server, name: &str) -> (String, String) {
    let path = "/_matrix/client/v3/register";
    let body = json!({ "username": name, "password": "benchmark-password" });
    let first = call(server, reqwest::Method::POST, path, None, body.clone()).await;
    let mut body = body;
    body["auth"] = json!({ "type": "m.login.dummy", "session": first["session"] });
    let done = call(server, reqwest::Method::POST, path, None, body).await;
    (
        done["user_id"].as_str().unwrap().to_owned(),
        done["access_token"].as_str().unwrap().to_owned(),
    )
}

/// Adds `count` members (`@m<i>:<server>`, no accounts needed) to a room, in-process.
async fn add_members(services: &Arc<Services>, room_id: &RoomId, count: usize) {
    let rooms = &services.rooms;
    for chunk in 0..count.div_ceil(500) {
        let guard = rooms.lock_room(room_id).await;
        for i in chunk * 500..((chunk + 1) * 500).min(count) {
            let user = UserId::parse(format!("@m{i}:{}", services.server_name())).unwrap();
            let builder = PduBuilder::state(
                TimelineEventType::RoomMember,
                user.as_str(),
                json!({ "membership": "join", "displayname": format!("Member {i}") }),
            );
            rooms
                .build_and_append(builder, &user, room_id, &guard)
                .unwrap();
        }
        guard.release().await;
    }
}

/// Waits until `server` holds `event_id` in a timeline.
async fn until_placed(services: &Services, event_id: &str) {
    let id = ruma::EventId::parse(event_id).unwrap();
    while !services.rooms.is_in_timeline(&id).unwrap() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::var_os("CONCLAVE_BENCH_RECEIVERS").is_some() {
        return serve_as_receivers().await;
    }
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let config_a = config(dir_a.path(), 82);
    let mut a = Server::start(config_a.clone()).await.unwrap();
    let config_b = config(dir_b.path(), 83);
    let mut b = Server::start(config_b.clone()).await.unwrap();
    let (_, alice) = register(&a, "alice").await;
    let (_, bob) = register(&b, "bob").await;
    if std::env::var("CONCLAVE_BENCH_ONLY").as_deref() == Ok("fanout") {
        fanout(&a, &alice, &b).await;
        a.shutdown().await;
        b.shutdown().await;
        return;
    }

    // 1. Joining a room of 10,000 members.
    let room = room_joined_by(&a, &alice, &[]).await;
    let room_id = RoomId::parse(&room).unwrap();
    let started = Instant::now();
    let count = members();
    add_members(a.services(), &room_id, count).await;
    println!(
        "setup: {count} members added in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let rss_before = memory_kib("VmRSS:");
    let peak_before = memory_kib("VmHWM:");
    let started = Instant::now();
    let via = format!("?via={}", config_a.server_name.as_str().replace(':', "%3A"));
    call(
        &b,
        reqwest::Method::POST,
        &format!("/_matrix/client/v3/join/{}{via}", room.replace('!', "%21")),
        Some(&bob),
        json!({}),
    )
    .await;
    let join_time = started.elapsed();
    let members = b.services().rooms.members(&room_id).unwrap().len();
    println!(
        "join of a {members}-member room: {:.2} s; process RSS {} → {} MiB, peak {} → {} MiB",
        join_time.as_secs_f64(),
        rss_before / 1024,
        memory_kib("VmRSS:") / 1024,
        peak_before / 1024,
        memory_kib("VmHWM:") / 1024,
    );

    // 2. Inbound throughput: Bob's server sends while Alice's is down; then both restart
    // (Bob's so that it sends its whole queue, as after a restart, rather than catching up
    // with only the newest event of each room, as after an outage), timed from Bob's restart
    // until Alice's server has placed every event.
    // A room of the two users alone: the many-member room above would measure the
    // receiving server's per-member work (room lists, wake-ups), not federation.
    let mut rooms = Vec::new();
    for _ in 0..=ROOMS {
        let id = call(
            &a,
            reqwest::Method::POST,
            "/_matrix/client/v3/createRoom",
            Some(&alice),
            json!({ "preset": "public_chat" }),
        )
        .await["room_id"]
            .as_str()
            .unwrap()
            .to_owned();
        call(
            &b,
            reqwest::Method::POST,
            &format!("/_matrix/client/v3/join/{}{via}", id.replace('!', "%21")),
            Some(&bob),
            json!({}),
        )
        .await;
        rooms.push(id);
    }
    let one_room = rooms.pop().unwrap();
    for (label, targets) in [("one room", vec![one_room]), ("20 rooms", rooms)] {
        a.shutdown().await;
        let mut sent_ids = Vec::new();
        for i in 0..PDUS {
            let target = &targets[i % targets.len()];
            let sent = call(
                &b,
                reqwest::Method::PUT,
                &format!(
                    "/_matrix/client/v3/rooms/{}/send/m.room.message/{label}{i}",
                    target.replace('!', "%21")
                ),
                Some(&bob),
                json!({ "msgtype": "m.text", "body": format!("message {i}") }),
            )
            .await;
            sent_ids.push(sent["event_id"].as_str().unwrap().to_owned());
        }
        b.shutdown().await;
        a = Server::start(config_a.clone()).await.unwrap();
        let started = Instant::now();
        b = Server::start(config_b.clone()).await.unwrap();
        for event_id in &sent_ids {
            until_placed(a.services(), event_id).await;
        }
        let elapsed = started.elapsed();
        println!(
            "inbound, {label}: {PDUS} PDUs in {:.2} s = {:.0} PDUs/s",
            elapsed.as_secs_f64(),
            PDUS as f64 / elapsed.as_secs_f64()
        );
    }
    fanout(&a, &alice, &b).await;
    a.shutdown().await;
    b.shutdown().await;
}

/// A new room of Alice's on A that `members` (of other servers) are added to as joined,
/// in-process; its ID.
async fn room_joined_by(a: &Server, alice: &str, members: &[String]) -> String {
    let room = call(
        a,
        reqwest::Method::POST,
        "/_matrix/client/v3/createRoom",
        Some(alice),
        json!({ "preset": "public_chat" }),
    )
    .await["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let room_id = RoomId::parse(&room).unwrap();
    let rooms = &a.services().rooms;
    let guard = rooms.lock_room(&room_id).await;
    for user in members {
        let user = UserId::parse(user.as_str()).unwrap();
        let builder = PduBuilder::state(
            TimelineEventType::RoomMember,
            user.as_str(),
            json!({ "membership": "join" }),
        );
        rooms
            .build_and_append(builder, &user, &room_id, &guard)
            .unwrap();
    }
    guard.release().await;
    room
}

/// Receivers for the fan-out figures: real Conclave servers on 127.0.0.200 and up.
const RECEIVERS: u8 = 20;

/// Runs the fan-out receivers in a child process of this benchmark pinned to the second core
/// (the sender pinned to the first), so the sender's figures are its own costs and not the
/// receivers' work on a shared core. Returns once they all listen; they stop with the child.
fn start_receivers() -> std::process::Child {
    use std::io::BufRead;
    let _ = std::process::Command::new("taskset")
        .args(["-a", "-cp", "0", &std::process::id().to_string()])
        .stdout(std::process::Stdio::null())
        .status();
    let mut child = std::process::Command::new("taskset")
        .args(["-c", "1"])
        .arg(std::env::current_exe().unwrap())
        .env("CONCLAVE_BENCH_RECEIVERS", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the receivers (taskset from util-linux)");
    let mut ready = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready", "the receivers did not start");
    child
}

/// The child of [`start_receivers`]: serves until its stdin closes.
async fn serve_as_receivers() {
    let mut receivers = Vec::new();
    for i in 0..RECEIVERS {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(config(dir.path(), 200 + i)).await.unwrap();
        receivers.push((server, dir));
    }
    println!("ready");
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut sink);
    })
    .await;
    for (receiver, _dir) in receivers {
        receiver.shutdown().await;
    }
}

/// The server name of fan-out receiver `i`.
fn receiver_name(i: usize) -> String {
    format!("127.0.0.{}:8448", 200 + i)
}

/// What federation costs a local sender: the latency of a message into a room shared with
/// 0, 1 and 20 other servers, each a real Conclave receiving the transactions (in a child
/// process on the other core; the members
/// are added to the sender's room in-process; the receivers do not know the room, so they
/// check each transaction's signature and answer it without storing its events), and how
/// long after the first message every receiver had all of them. Then a client's
/// `/keys/query` for 100 users of another server (B), answered over federation.
async fn fanout(a: &Server, alice: &str, b: &Server) {
    let mut receivers = start_receivers();
    for servers in [0usize, 1, 20] {
        let destinations: Vec<ruma::OwnedServerName> = (0..servers)
            .map(|i| receiver_name(i).try_into().unwrap())
            .collect();
        let far_users: Vec<String> = destinations.iter().map(|s| format!("@far:{s}")).collect();
        let room = room_joined_by(a, alice, &far_users).await;
        let sending = &a.services().sending;
        let delivered = || {
            destinations
                .iter()
                .all(|server| sending.queued(server).unwrap() == 0)
        };
        // The member events reach the receivers first.
        while !delivered() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let first = Instant::now();
        let cpu_before = cpu_time();
        let mut latencies = Vec::new();
        for i in 0..300 {
            let started = Instant::now();
            call(
                a,
                reqwest::Method::PUT,
                &format!(
                    "/_matrix/client/v3/rooms/{}/send/m.room.message/f{servers}-{i}",
                    room.replace('!', "%21")
                ),
                Some(alice),
                json!({ "msgtype": "m.text", "body": format!("message {i}") }),
            )
            .await;
            latencies.push(started.elapsed());
        }
        while !delivered() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let all_delivered = first.elapsed();
        let cpu_per_message = (cpu_time() - cpu_before) / 300;
        latencies.sort();
        println!(
            "send into a room shared with {servers} other servers: p50 {:.2} ms, p95 {:.2} ms; \
             sender CPU {:.2} ms per message (delivery included); \
             all 300 at every server {:.2} s after the first",
            latencies[latencies.len() / 2].as_secs_f64() * 1000.0,
            latencies[latencies.len() * 95 / 100].as_secs_f64() * 1000.0,
            cpu_per_message.as_secs_f64() * 1000.0,
            all_delivered.as_secs_f64(),
        );
    }
    drop(receivers.stdin.take());
    let _ = receivers.wait();

    let mut users = serde_json::Map::new();
    for i in 0..100 {
        let (user_id, _) = register(b, &format!("keyed{i}")).await;
        let user = UserId::parse(&user_id).unwrap();
        let devices = b.services().users.devices(&user).unwrap();
        let (device_id, _) = devices.first().unwrap();
        // Self-signed, as a client makes them.
        let der = ruma::signatures::Ed25519KeyPair::generate();
        let pair = ruma::signatures::Ed25519KeyPair::from_der(&der, device_id.to_string()).unwrap();
        let ed25519 =
            ruma::serde::Base64::<ruma::serde::base64::Standard>::new(pair.public_key().to_vec())
                .encode();
        let mut keys: ruma::CanonicalJsonObject = serde_json::from_value(json!({
            "user_id": user, "device_id": device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": { format!("curve25519:{device_id}"): "Y3VydmUyNTUxOWtleWZvcmJlbmNobWFya2luZzAwMA",
                      format!("ed25519:{device_id}"): ed25519 },
        }))
        .unwrap();
        ruma::signatures::sign_json(user.as_str(), &pair, &mut keys).unwrap();
        let keys = serde_json::to_value(keys).unwrap();
        b.services()
            .keys
            .upload_device_keys(&user, device_id, &keys)
            .unwrap();
        users.insert(user_id, json!([]));
    }
    let query = json!({ "device_keys": users });
    let query_times = || async {
        let mut times = Vec::new();
        for _ in 0..20 {
            let started = Instant::now();
            let answer = call(
                a,
                reqwest::Method::POST,
                "/_matrix/client/v3/keys/query",
                Some(alice),
                query.clone(),
            )
            .await;
            times.push(started.elapsed());
            assert_eq!(
                answer["device_keys"].as_object().unwrap().len(),
                100,
                "{answer}"
            );
        }
        let first = times[0];
        times.sort();
        (first, times[times.len() / 2])
    };
    let (first, p50) = query_times().await;
    println!(
        "/keys/query for 100 users of another server sharing no room: first {:.1} ms (key fetch included), p50 {:.1} ms",
        first.as_secs_f64() * 1000.0,
        p50.as_secs_f64() * 1000.0,
    );

    // The same users in a room with Alice: their lists are tracked, fetched by the first
    // query (`user/devices`, one per user) and answered here afterwards.
    let keyed: Vec<String> = users.keys().cloned().collect();
    room_joined_by(a, alice, &keyed).await;
    let (first, p50) = query_times().await;
    println!(
        "/keys/query for 100 tracked users of another server: first {:.1} ms (100 lists fetched), p50 {:.1} ms",
        first.as_secs_f64() * 1000.0,
        p50.as_secs_f64() * 1000.0,
    );
}
