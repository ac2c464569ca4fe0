//! Sync benchmarks: initial /sync of a user in 300 rooms, long-poll wake-up latency, and
//! sliding sync for a user in 1,000 and 3,000 rooms.
//! Run with `cargo bench --bench sync`; figures go to docs/performance.md. Starts a real
//! server in-process on loopback with a temporary database and talks HTTP to it.

use std::time::{Duration, Instant};

use conclave::config::{Config, RateLimit};
use conclave::server::Server;
use serde_json::{Value, json};

const ROOMS: usize = 300;
const MESSAGES_PER_ROOM: usize = 3;
const SAMPLES: usize = 20;
/// Rooms of the sliding sync measurement (the first `ROOMS` are reused; then three times as
/// many).
const SLIDING_ROOMS: usize = 1000;

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success() || status == 401,
            "{path}: {status} {body}"
        );
        body
    }

    async fn register(&self, name: &str) -> (String, String) {
        let path = "/_matrix/client/v3/register";
        let body = json!({ "username": name, "password": "benchmark-password" });
        let first = self
            .call(reqwest::Method::POST, path, None, Some(body.clone()))
            .await;
        let mut body = body;
        body["auth"] = json!({ "type": "m.login.dummy", "session": first["session"] });
        let done = self
            .call(reqwest::Method::POST, path, None, Some(body))
            .await;
        (
            done["user_id"].as_str().unwrap().to_owned(),
            done["access_token"].as_str().unwrap().to_owned(),
        )
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let fast = RateLimit {
        per_second: 1e6,
        burst: 1_000_000,
    };
    let config = Config {
        database_path: dir.path().join("db"),
        port: 0,
        allow_registration: true,
        login_rate_limit: fast.clone(),
        registration_rate_limit: fast,
        log: "warn".into(),
        ..Config::default()
    };
    let server = Server::start(config).await.expect("server starts");
    let client = Client {
        http: reqwest::Client::new(),
        base: format!("http://{}", server.local_addr()),
    };
    let (_, alice) = client.register("alice").await;
    let (bob_id, bob) = client.register("bob").await;

    // Alice creates 300 rooms, invites Bob, and talks in each; Bob joins them all.
    let setup = Instant::now();
    let mut rooms = Vec::with_capacity(ROOMS);
    for i in 0..ROOMS {
        let created = client
            .call(
                reqwest::Method::POST,
                "/_matrix/client/v3/createRoom",
                Some(&alice),
                Some(json!({ "name": format!("Room {i}"), "invite": [bob_id] })),
            )
            .await;
        let room_id = created["room_id"].as_str().unwrap().to_owned();
        client
            .call(
                reqwest::Method::POST,
                &format!("/_matrix/client/v3/join/{room_id}"),
                Some(&bob),
                Some(json!({})),
            )
            .await;
        for m in 0..MESSAGES_PER_ROOM {
            let path = format!("/_matrix/client/v3/rooms/{room_id}/send/m.room.message/s{i}-{m}");
            client
                .call(
                    reqwest::Method::PUT,
                    &path,
                    Some(&alice),
                    Some(json!({ "msgtype": "m.text", "body": format!("message {m}") })),
                )
                .await;
        }
        rooms.push(room_id);
    }
    println!(
        "setup: {ROOMS} rooms with {MESSAGES_PER_ROOM} messages each in {:.1?}",
        setup.elapsed()
    );

    // Initial sync of Bob (every room, timeline limit 10).
    let mut initial = Vec::new();
    let mut since = String::new();
    for _ in 0..SAMPLES {
        let start = Instant::now();
        let body = client
            .call(
                reqwest::Method::GET,
                "/_matrix/client/v3/sync",
                Some(&bob),
                None,
            )
            .await;
        initial.push(start.elapsed());
        assert_eq!(
            body["rooms"]["join"].as_object().map(|j| j.len()),
            Some(ROOMS)
        );
        since = body["next_batch"].as_str().unwrap().to_owned();
    }
    println!(
        "initial /sync, {ROOMS} rooms: p50 {:.1?}, p95 {:.1?}",
        percentile(&mut initial, 0.5),
        percentile(&mut initial, 0.95)
    );

    // Empty incremental sync (nothing changed in any of the 300 rooms).
    let mut empty = Vec::new();
    for _ in 0..SAMPLES {
        let start = Instant::now();
        client
            .call(
                reqwest::Method::GET,
                &format!("/_matrix/client/v3/sync?since={since}&timeout=0"),
                Some(&bob),
                None,
            )
            .await;
        empty.push(start.elapsed());
    }
    println!(
        "empty incremental /sync: p50 {:.1?}, p95 {:.1?}",
        percentile(&mut empty, 0.5),
        percentile(&mut empty, 0.95)
    );

    // Long-poll wake-up: from the start of Alice's send to Bob's poll returning with it.
    let mut wakeups = Vec::new();
    for i in 0..SAMPLES {
        let url = format!(
            "{}/_matrix/client/v3/sync?since={since}&timeout=30000",
            client.base
        );
        let poll = tokio::spawn(client.http.get(url).bearer_auth(&bob).send());
        tokio::time::sleep(Duration::from_millis(50)).await;
        let start = Instant::now();
        let path = format!(
            "/_matrix/client/v3/rooms/{}/send/m.room.message/w{i}",
            rooms[i % ROOMS]
        );
        client
            .call(
                reqwest::Method::PUT,
                &path,
                Some(&alice),
                Some(json!({ "msgtype": "m.text", "body": "wake" })),
            )
            .await;
        let response: Value = poll.await.unwrap().unwrap().json().await.unwrap();
        wakeups.push(start.elapsed());
        since = response["next_batch"].as_str().unwrap().to_owned();
    }
    println!(
        "long-poll wake-up (from start of send): p50 {:.1?}, p95 {:.1?}",
        percentile(&mut wakeups, 0.5),
        percentile(&mut wakeups, 0.95)
    );

    // Sliding sync (MSC4186), window 0-19, as Element X asks, for Bob in 1,000 rooms; then in a
    // database three times larger where Bob is still in 1,000 rooms; then with Bob in all 3,000.
    // The last two differ only in how many rooms Bob has, which should not matter.
    let create = |i: usize, invite: bool| {
        let body = if invite {
            json!({ "name": format!("Room {i}"), "invite": [bob_id] })
        } else {
            json!({ "name": format!("Room {i}") })
        };
        let client = &client;
        let alice = &alice;
        async move {
            let created = client
                .call(
                    reqwest::Method::POST,
                    "/_matrix/client/v3/createRoom",
                    Some(alice),
                    Some(body),
                )
                .await;
            created["room_id"].as_str().unwrap().to_owned()
        }
    };
    let join = |room_id: String| {
        let client = &client;
        let bob = &bob;
        async move {
            client
                .call(
                    reqwest::Method::POST,
                    &format!("/_matrix/client/v3/join/{room_id}"),
                    Some(bob),
                    Some(json!({})),
                )
                .await;
            room_id
        }
    };
    while rooms.len() < SLIDING_ROOMS {
        let room_id = create(rooms.len(), true).await;
        rooms.push(join(room_id).await);
    }
    sliding_sync(&client, &alice, &bob, &rooms, "").await;
    let mut others = Vec::new();
    for i in 0..2 * SLIDING_ROOMS {
        others.push(create(SLIDING_ROOMS + i, false).await);
    }
    sliding_sync(
        &client,
        &alice,
        &bob,
        &rooms,
        " (3,000 rooms on the server)",
    )
    .await;
    for room_id in others {
        client
            .call(
                reqwest::Method::POST,
                &format!("/_matrix/client/v3/rooms/{room_id}/invite"),
                Some(&alice),
                Some(json!({ "user_id": bob_id })),
            )
            .await;
        rooms.push(join(room_id).await);
    }
    sliding_sync(&client, &alice, &bob, &rooms, "").await;
    server.shutdown().await;
}

static TXN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// New-connection and one-room-changed sliding sync answers for Bob, in all of `rooms`.
async fn sliding_sync(client: &Client, alice: &str, bob: &str, rooms: &[String], note: &str) {
    let total = rooms.len();
    let sliding = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync";
    let request = json!({
        "conn_id": "room-list",
        "lists": { "all_rooms": {
            "ranges": [[0, 19]],
            "timeline_limit": 1,
            "required_state": [
                ["m.room.name", ""], ["m.room.encryption", ""], ["m.room.member", "$LAZY"],
                ["m.room.member", "$ME"], ["m.room.topic", ""], ["m.room.avatar", ""],
                ["m.room.canonical_alias", ""], ["m.room.power_levels", ""],
                ["m.room.join_rules", ""], ["m.room.create", ""], ["m.room.tombstone", ""],
            ],
        } },
        "extensions": { "account_data": { "enabled": true }, "receipts": { "enabled": true },
                        "typing": { "enabled": true } },
    });
    let mut first = Vec::new();
    let mut pos = String::new();
    for _ in 0..SAMPLES {
        let start = Instant::now();
        let body = client
            .call(
                reqwest::Method::POST,
                sliding,
                Some(bob),
                Some(request.clone()),
            )
            .await;
        first.push(start.elapsed());
        assert_eq!(body["lists"]["all_rooms"]["count"], total);
        assert_eq!(body["rooms"].as_object().map(|r| r.len()), Some(20));
        pos = body["pos"].as_str().unwrap().to_owned();
    }
    println!(
        "sliding sync, new connection, Bob in {total} rooms{note}, window 0-19: p50 {:.1?}, p95 {:.1?}",
        percentile(&mut first, 0.5),
        percentile(&mut first, 0.95)
    );
    let mut updates = Vec::new();
    for i in 0..SAMPLES {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/send/m.room.message/ss{}",
            rooms[i * 37 % total],
            TXN.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        client
            .call(
                reqwest::Method::PUT,
                &path,
                Some(alice),
                Some(json!({ "msgtype": "m.text", "body": "bump" })),
            )
            .await;
        let start = Instant::now();
        let body = client
            .call(
                reqwest::Method::POST,
                &format!("{sliding}?pos={pos}&timeout=0"),
                Some(bob),
                Some(request.clone()),
            )
            .await;
        updates.push(start.elapsed());
        assert_eq!(body["rooms"].as_object().map(|r| r.len()), Some(1));
        pos = body["pos"].as_str().unwrap().to_owned();
    }
    println!(
        "sliding sync, one room changed, Bob in {total} rooms{note}: p50 {:.1?}, p95 {:.1?}",
        percentile(&mut updates, 0.5),
        percentile(&mut updates, 0.95)
    );
}
