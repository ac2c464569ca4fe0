//! Pushers (`/pushers`, `/pushers/set`): registered as Element and Element X register them,
//! listed back with every field, replaced or shared by push key as the spec's `append` says,
//! deleted with `kind: null`, removed with the device that registered them, and listed by
//! the admin API. (Delivery to the push gateway is not built yet.)

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
