//! Pushers (`/pushers`, `/pushers/set`): registered as Element and Element X register them,
//! listed back with every field, replaced or shared by push key as the spec's `append` says,
//! deleted with `kind: null`, removed with the device that registered them, and listed by
//! the admin API; and notifications (and badge updates after reading) delivered to a real
//! HTTP push gateway on loopback.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SET: &str = "/_matrix/client/v3/pushers/set";
const GATEWAY: &str = "https://push.example.com/_matrix/push/v1/notify";

fn http_pusher(pushkey: &str, append: bool) -> Value {
    json!({
        "kind": "http",
        "app_id": "io.element.elementx.ios",
        "pushkey": pushkey,
        "app_display_name": "Element X",
        "device_display_name": "Alice's phone",
        "lang": "en",
        "profile_tag": "phone",
        "append": append,
        "data": { "url": GATEWAY, "format": "event_id_only", "default_payload": { "aps": { "mutable-content": 1 } } },
    })
}

async fn pushkeys(ts: &TestServer, who: &Session) -> Vec<String> {
    let listed = expect_ok(ts.get("/_matrix/client/v3/pushers", who.bearer()).await);
    listed["pushers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pushkey"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushers_are_registered_listed_replaced_and_removed_with_their_device() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;

    let resp = ts.get("/_matrix/client/v3/pushers", None).await;
    assert_errcode(&resp, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
    expect_ok(
        ts.post(SET, alice.bearer(), &http_pusher("key-a", false))
            .await,
    );
    let listed = expect_ok(ts.get("/_matrix/client/v3/pushers", alice.bearer()).await);
    let pusher = &listed["pushers"][0];
    for (field, value) in [
        ("kind", json!("http")),
        ("app_id", json!("io.element.elementx.ios")),
        ("pushkey", json!("key-a")),
        ("app_display_name", json!("Element X")),
        ("device_display_name", json!("Alice's phone")),
        ("lang", json!("en")),
        ("profile_tag", json!("phone")),
    ] {
        assert_eq!(pusher[field], value, "{field}: {listed}");
    }
    assert_eq!(pusher["data"]["url"], GATEWAY, "{listed}");
    assert_eq!(pusher["data"]["format"], "event_id_only", "{listed}");
    assert_eq!(
        pusher["data"]["default_payload"]["aps"]["mutable-content"], 1,
        "{listed}"
    );

    // Refused: a gateway URL without the Push Gateway path, e-mail pushers (no e-mail here),
    // an over-long app ID.
    let mut bad = http_pusher("key-x", false);
    bad["data"]["url"] = json!("https://push.example.com/notify");
    assert_errcode(
        &ts.post(SET, alice.bearer(), &bad).await,
        StatusCode::BAD_REQUEST,
        "M_INVALID_PARAM",
    );
    let email = json!({ "kind": "email", "app_id": "m.email", "pushkey": "alice@example.com",
        "app_display_name": "E-mail", "device_display_name": "mail", "lang": "en", "data": {} });
    assert_errcode(
        &ts.post(SET, alice.bearer(), &email).await,
        StatusCode::BAD_REQUEST,
        "M_INVALID_PARAM",
    );
    let mut long = http_pusher("key-x", false);
    long["app_id"] = json!("a".repeat(65));
    assert_errcode(
        &ts.post(SET, alice.bearer(), &long).await,
        StatusCode::BAD_REQUEST,
        "M_INVALID_PARAM",
    );
    assert_eq!(pushkeys(&ts, &alice).await, ["key-a"]);

    // The same push key registered by Bob with `append: false` is taken from Alice (the
    // phone changed hands); with `append: true` both keep it.
    expect_ok(
        ts.post(SET, bob.bearer(), &http_pusher("key-a", false))
            .await,
    );
    assert!(pushkeys(&ts, &alice).await.is_empty());
    assert_eq!(pushkeys(&ts, &bob).await, ["key-a"]);
    expect_ok(
        ts.post(SET, alice.bearer(), &http_pusher("key-a", true))
            .await,
    );
    assert_eq!(pushkeys(&ts, &alice).await, ["key-a"]);
    assert_eq!(pushkeys(&ts, &bob).await, ["key-a"]);

    // `kind: null` deletes.
    expect_ok(
        ts.post(
            SET,
            bob.bearer(),
            &json!({ "kind": null, "app_id": "io.element.elementx.ios", "pushkey": "key-a" }),
        )
        .await,
    );
    assert!(pushkeys(&ts, &bob).await.is_empty());

    // A second device of Alice's registers its own; logging the first out removes only the
    // first's pusher.
    let laptop = ts.login("alice", "alice-password").await;
    expect_ok(
        ts.post(SET, laptop.bearer(), &http_pusher("key-laptop", false))
            .await,
    );
    let mut both = pushkeys(&ts, &laptop).await;
    both.sort();
    assert_eq!(both, ["key-a", "key-laptop"]);

    // The admin API lists them as Synapse's does.
    let admin = expect_ok(
        ts.get(
            &format!("/_synapse/admin/v1/users/{}/pushers", enc(&alice.user_id)),
            alice.bearer(),
        )
        .await,
    );
    assert_eq!(admin["total"], 2, "{admin}");
    assert_eq!(admin["pushers"][0]["kind"], "http", "{admin}");
    let resp = ts
        .get(
            &format!("/_synapse/admin/v1/users/{}/pushers", enc(&alice.user_id)),
            bob.bearer(),
        )
        .await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    expect_ok(
        ts.post("/_matrix/client/v3/logout", alice.bearer(), &json!({}))
            .await,
    );
    assert_eq!(pushkeys(&ts, &laptop).await, ["key-laptop"]);
    ts.shutdown().await;
}

/// A push gateway on loopback: records each `/_matrix/push/v1/notify` request, and answers
/// the push key as `rejected` once told to.
#[derive(Clone, Default)]
struct Gateway {
    received: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    reject: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Gateway {
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = gateway_url(&listener);
        self.serve(listener);
        url
    }

    /// Answers on `listener` from now on.
    fn serve(&self, listener: tokio::net::TcpListener) {
        let gateway = self.clone();
        let app = axum::Router::new().route(
            "/_matrix/push/v1/notify",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let gateway = gateway.clone();
                async move {
                    let pushkey = body["notification"]["devices"][0]["pushkey"].clone();
                    gateway.received.lock().unwrap().push(body);
                    let rejected = if gateway.reject.load(std::sync::atomic::Ordering::SeqCst) {
                        vec![pushkey]
                    } else {
                        Vec::new()
                    };
                    axum::Json(json!({ "rejected": rejected }))
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
    }

    fn received(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `n` notifications arrived.
    async fn until(&self, n: usize) -> Vec<Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the gateway got {} notifications, not {n}: {received:?}",
                received.len()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

fn gateway_url(listener: &tokio::net::TcpListener) -> String {
    format!(
        "http://{}/_matrix/push/v1/notify",
        listener.local_addr().unwrap()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_the_push_gateway() {
    let ts = TestServer::start_with(|cfg| {
        cfg.allow_registration = true;
        cfg.registration_token = None;
        // The test's gateway is on loopback, which push gateways may not use by default.
        cfg.push.ip_range_allowlist = vec!["127.0.0.0/8".into()];
    })
    .await;
    let gateway = Gateway::default();
    let url = gateway.start().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let mut pusher = http_pusher("phone-key", false);
    pusher["data"]["url"] = json!(url);
    expect_ok(ts.post(SET, alice.bearer(), &pusher).await);
    let room = create_room(
        &ts,
        &bob,
        json!({ "preset": "private_chat", "invite": [alice.user_id] }),
    )
    .await;
    expect_ok(
        ts.post(&room_path(&room, "/join"), alice.bearer(), &json!({}))
            .await,
    );

    // A message in a one-to-one room: one notification, event ID only (as Element X asks).
    let event_id = send_text_id(&ts, &bob, &room, "t1", "hello alice").await;
    let received = gateway.until(1).await;
    let notification = &received[0]["notification"];
    assert_eq!(notification["event_id"], event_id, "{notification}");
    assert_eq!(notification["room_id"], room, "{notification}");
    assert_eq!(notification["counts"]["unread"], 1, "{notification}");
    assert_eq!(notification["prio"], "high", "{notification}");
    assert!(
        notification.get("content").is_none(),
        "event_id_only: {notification}"
    );
    let device = &notification["devices"][0];
    assert_eq!(device["pushkey"], "phone-key");
    assert_eq!(device["app_id"], "io.element.elementx.ios");
    assert!(device["pushkey_ts"].as_u64().unwrap() > 0, "{device}");
    assert_eq!(device["data"]["format"], "event_id_only", "{device}");
    assert!(device["data"].get("url").is_none(), "{device}");
    assert_eq!(device["tweaks"]["sound"], "default", "{device}");

    // Alice's own reply does not reach her phone.
    send_text(&ts, &alice, &room, "t2", "hi bob").await;
    // The full format carries the event; a second message counts in the same room.
    let mut full = http_pusher("tablet-key", true);
    full["data"] = json!({ "url": url });
    expect_ok(ts.post(SET, alice.bearer(), &full).await);
    let second = send_text_id(&ts, &bob, &room, "t3", "are you there?").await;
    let received = gateway.until(3).await;
    assert_eq!(received.len(), 3, "{received:?}");
    let tablet = received
        .iter()
        .map(|r| &r["notification"])
        .find(|n| n["devices"][0]["pushkey"] == "tablet-key")
        .expect("the tablet's notification");
    assert_eq!(tablet["event_id"], second);
    assert_eq!(tablet["type"], "m.room.message");
    assert_eq!(tablet["sender"], bob.user_id);
    assert_eq!(tablet["content"]["body"], "are you there?");
    let mut delivered: Vec<(String, String)> = received
        .iter()
        .map(|r| {
            let n = &r["notification"];
            (
                n["devices"][0]["pushkey"].as_str().unwrap().to_owned(),
                n["event_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    delivered.sort();
    let mut expected = vec![
        ("phone-key".to_owned(), event_id.clone()),
        ("phone-key".to_owned(), second.clone()),
        ("tablet-key".to_owned(), second.clone()),
    ];
    expected.sort();
    assert_eq!(delivered, expected);

    // Alice reads: each app's badge goes to zero, with a push that names no event.
    expect_ok(
        ts.post(
            &room_path(&room, &format!("/receipt/m.read/{}", enc(&second))),
            alice.bearer(),
            &json!({}),
        )
        .await,
    );
    let received = gateway.until(5).await;
    for badge in &received[3..] {
        let notification = &badge["notification"];
        assert_eq!(notification["counts"]["unread"], 0, "{notification}");
        assert!(notification.get("event_id").is_none(), "{notification}");
    }

    // A push key the gateway rejects: its pusher is removed.
    gateway
        .reject
        .store(true, std::sync::atomic::Ordering::SeqCst);
    send_text(&ts, &bob, &room, "t4", "still there?").await;
    gateway.until(7).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !pushkeys(&ts, &alice).await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "rejected pushers were kept"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    ts.shutdown().await;
}

/// A room the user muted (Element's override rule with no actions) pushes nothing; a call
/// invite counts as a missed call; and a gateway that is down delays no send and gets the
/// notification once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muted_rooms_missed_calls_and_a_gateway_that_was_down() {
    let ts = TestServer::start_with(|cfg| {
        cfg.allow_registration = true;
        cfg.registration_token = None;
        cfg.push.ip_range_allowlist = vec!["127.0.0.0/8".into()];
    })
    .await;
    // The gateway's port is bound but nobody answers yet.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let mut pusher = http_pusher("phone-key", false);
    pusher["data"]["url"] = json!(gateway_url(&listener));
    expect_ok(ts.post(SET, alice.bearer(), &pusher).await);
    let mut rooms = Vec::new();
    for _ in 0..2 {
        let room = create_room(
            &ts,
            &bob,
            json!({ "preset": "private_chat", "invite": [alice.user_id] }),
        )
        .await;
        expect_ok(
            ts.post(&room_path(&room, "/join"), alice.bearer(), &json!({}))
                .await,
        );
        rooms.push(room);
    }
    let (call_room, muted) = (&rooms[0], &rooms[1]);
    // Element mutes a room with an override rule named after it, without actions.
    expect_ok(
        ts.put(
            &format!(
                "/_matrix/client/v3/pushrules/global/override/{}",
                enc(muted)
            ),
            alice.bearer(),
            &json!({
                "conditions": [{ "kind": "event_match", "key": "room_id", "pattern": muted }],
                "actions": [],
            }),
        )
        .await,
    );

    // Both sends complete while the gateway answers nothing.
    send_text(&ts, &bob, muted, "m1", "nobody hears this").await;
    let invite = expect_ok(
        ts.put(
            &room_path(call_room, "/send/m.call.invite/c1"),
            bob.bearer(),
            &json!({
                "call_id": "call-1",
                "lifetime": 60000,
                "version": "1",
                "party_id": "bob-phone",
                "offer": { "type": "offer", "sdp": "v=0" },
            }),
        )
        .await,
    )["event_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The gateway is down: the first attempt finds the connection closed unanswered.
    let (connection, _) = listener.accept().await.unwrap();
    drop(connection);
    // Back up: the retry delivers the call, and only the call.
    let gateway = Gateway::default();
    gateway.serve(listener);
    let received = gateway.until(1).await;
    let notification = &received[0]["notification"];
    assert_eq!(notification["event_id"], invite, "{notification}");
    assert_eq!(notification["room_id"], *call_room, "{notification}");
    assert_eq!(notification["counts"]["unread"], 1, "{notification}");
    assert_eq!(notification["counts"]["missed_calls"], 1, "{notification}");
    assert_eq!(notification["prio"], "high", "{notification}");
    assert_eq!(
        notification["devices"][0]["tweaks"]["sound"], "ring",
        "{notification}"
    );

    // Another message in the muted room, then one in the call room: only the latter arrives.
    send_text(&ts, &bob, muted, "m2", "still muted").await;
    let message = send_text_id(&ts, &bob, call_room, "t1", "call me back").await;
    let received = gateway.until(2).await;
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(received[1]["notification"]["event_id"], message);
    ts.shutdown().await;
}
