//! Client config (global and per-room account data), room tags and filters.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

const ROOM: &str = "!abcdefghijkl:localhost";

fn global_path(user_id: &str, kind: &str) -> String {
    format!(
        "/_matrix/client/v3/user/{}/account_data/{}",
        enc(user_id),
        enc(kind)
    )
}

fn room_path(user_id: &str, room_id: &str, kind: &str) -> String {
    format!(
        "/_matrix/client/v3/user/{}/rooms/{}/account_data/{}",
        enc(user_id),
        enc(room_id),
        enc(kind)
    )
}

fn tags_path(user_id: &str, room_id: &str) -> String {
    format!(
        "/_matrix/client/v3/user/{}/rooms/{}/tags",
        enc(user_id),
        enc(room_id)
    )
}

fn filter_path(user_id: &str) -> String {
    format!("/_matrix/client/v3/user/{}/filter", enc(user_id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_account_data_roundtrip() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    let path = global_path(&alice.user_id, "org.example.settings");

    let resp = ts.get(&path, alice.bearer()).await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    let content = json!({ "theme": "dark", "nested": { "list": [1, 2, 3] } });
    expect_ok(ts.put(&path, alice.bearer(), &content).await);
    assert_eq!(expect_ok(ts.get(&path, alice.bearer()).await), content);

    // Overwriting replaces the whole content.
    let replaced = json!({ "theme": "light" });
    expect_ok(ts.put(&path, alice.bearer(), &replaced).await);
    assert_eq!(expect_ok(ts.get(&path, alice.bearer()).await), replaced);

    // Other types are independent.
    let other = global_path(&alice.user_id, "org.example.other");
    let resp = ts.get(&other, alice.bearer()).await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_account_data_roundtrip() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    let path = room_path(&alice.user_id, ROOM, "org.example.room_settings");

    let resp = ts.get(&path, alice.bearer()).await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    let content = json!({ "muted": true });
    expect_ok(ts.put(&path, alice.bearer(), &content).await);
    assert_eq!(expect_ok(ts.get(&path, alice.bearer()).await), content);

    // Room and global scopes do not mix, and rooms do not share data.
    let global = global_path(&alice.user_id, "org.example.room_settings");
    let resp = ts.get(&global, alice.bearer()).await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let other_room = room_path(
        &alice.user_id,
        "!zyxwvutsrq:localhost",
        "org.example.room_settings",
    );
    let resp = ts.get(&other_room, alice.bearer()).await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_room_id_is_invalid_param() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    let path = room_path(&alice.user_id, "@notaroom:localhost", "org.example.x");
    let resp = ts.put(&path, alice.bearer(), &json!({ "a": 1 })).await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let resp = ts.get(&path, alice.bearer()).await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_managed_types_cannot_be_set() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    let resp = ts
        .put(
            &room_path(&alice.user_id, ROOM, "m.fully_read"),
            alice.bearer(),
            &json!({ "event_id": "$someevent:localhost" }),
        )
        .await;
    assert_errcode(&resp, StatusCode::METHOD_NOT_ALLOWED, "M_BAD_JSON");
    let resp = ts
        .put(
            &global_path(&alice.user_id, "m.push_rules"),
            alice.bearer(),
            &json!({ "global": {} }),
        )
        .await;
    assert_errcode(&resp, StatusCode::METHOD_NOT_ALLOWED, "M_BAD_JSON");

    let resp = ts
        .put(
            &room_path(&alice.user_id, ROOM, "m.push_rules"),
            alice.bearer(),
            &json!({ "global": {} }),
        )
        .await;
    assert_errcode(&resp, StatusCode::METHOD_NOT_ALLOWED, "M_BAD_JSON");

    // The real push rules are untouched, and the spec says these types stay readable
    // through the account data API: `m.push_rules` holds the user's ruleset.
    let rules = expect_ok(
        ts.get("/_matrix/client/v3/pushrules/", alice.bearer())
            .await,
    );
    assert!(
        rules["global"]["override"]
            .as_array()
            .is_some_and(|r| !r.is_empty()),
        "{rules}"
    );
    let as_account_data = expect_ok(
        ts.get(&global_path(&alice.user_id, "m.push_rules"), alice.bearer())
            .await,
    );
    assert!(
        as_account_data["global"]["override"].is_array(),
        "{as_account_data}"
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_users_account_data_is_forbidden() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let alice_global = global_path(&alice.user_id, "org.example.secret");
    let alice_room = room_path(&alice.user_id, ROOM, "org.example.secret");
    expect_ok(
        ts.put(&alice_global, alice.bearer(), &json!({ "pin": 1234 }))
            .await,
    );
    expect_ok(
        ts.put(&alice_room, alice.bearer(), &json!({ "pin": 5678 }))
            .await,
    );

    for path in [&alice_global, &alice_room] {
        let resp = ts.get(path, bob.bearer()).await;
        assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
        let resp = ts.put(path, bob.bearer(), &json!({ "pin": 0 })).await;
        assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    }
    assert_eq!(
        expect_ok(ts.get(&alice_global, alice.bearer()).await),
        json!({ "pin": 1234 })
    );
    assert_eq!(
        expect_ok(ts.get(&alice_room, alice.bearer()).await),
        json!({ "pin": 5678 })
    );
    // Bob's own namespace is separate.
    let resp = ts
        .get(
            &global_path(&bob.user_id, "org.example.secret"),
            bob.bearer(),
        )
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_tags_lifecycle() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    let tags = tags_path(&alice.user_id, ROOM);

    let body = expect_ok(ts.get(&tags, alice.bearer()).await);
    assert_eq!(body["tags"], json!({}), "no tags yet: {body}");

    expect_ok(
        ts.put(
            &format!("{tags}/u.work"),
            alice.bearer(),
            &json!({ "order": 0.25 }),
        )
        .await,
    );
    expect_ok(
        ts.put(&format!("{tags}/m.favourite"), alice.bearer(), &json!({}))
            .await,
    );
    let body = expect_ok(ts.get(&tags, alice.bearer()).await);
    assert_eq!(body["tags"]["u.work"]["order"], json!(0.25), "{body}");
    assert!(body["tags"]["m.favourite"].is_object(), "{body}");

    // Re-tagging updates the order.
    expect_ok(
        ts.put(
            &format!("{tags}/u.work"),
            alice.bearer(),
            &json!({ "order": 0.5 }),
        )
        .await,
    );
    let body = expect_ok(ts.get(&tags, alice.bearer()).await);
    assert_eq!(body["tags"]["u.work"]["order"], json!(0.5), "{body}");

    expect_ok(ts.delete(&format!("{tags}/u.work"), alice.bearer()).await);
    let body = expect_ok(ts.get(&tags, alice.bearer()).await);
    assert!(body["tags"].get("u.work").is_none(), "{body}");
    assert!(body["tags"]["m.favourite"].is_object(), "{body}");

    // Tags are per room.
    let other = expect_ok(
        ts.get(
            &tags_path(&alice.user_id, "!zyxwvutsrq:localhost"),
            alice.bearer(),
        )
        .await,
    );
    assert_eq!(other["tags"], json!({}), "{other}");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_users_tags_are_forbidden() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let tags = tags_path(&alice.user_id, ROOM);

    let resp = ts.get(&tags, bob.bearer()).await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = ts
        .put(
            &format!("{tags}/u.evil"),
            bob.bearer(),
            &json!({ "order": 0.1 }),
        )
        .await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let body = expect_ok(ts.get(&tags, alice.bearer()).await);
    assert_eq!(body["tags"], json!({}), "{body}");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_roundtrip() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    let filter = json!({
        "event_fields": ["type", "content", "sender"],
        "room": { "timeline": { "limit": 10, "types": ["m.room.message"] } },
        "presence": { "not_types": ["*"] },
    });

    let body = expect_ok(
        ts.post(&filter_path(&alice.user_id), alice.bearer(), &filter)
            .await,
    );
    let filter_id = body["filter_id"].as_str().expect("filter_id").to_owned();
    assert!(!filter_id.is_empty());
    assert!(
        !filter_id.starts_with('{'),
        "filter ids must not start with '{{'"
    );

    let path = format!("{}/{}", filter_path(&alice.user_id), enc(&filter_id));
    let stored = expect_ok(ts.get(&path, alice.bearer()).await);
    assert_eq!(stored["room"]["timeline"]["limit"], json!(10), "{stored}");
    assert_eq!(
        stored["room"]["timeline"]["types"],
        json!(["m.room.message"])
    );
    assert_eq!(stored["event_fields"], json!(["type", "content", "sender"]));
    assert_eq!(stored["presence"]["not_types"], json!(["*"]));

    // A second filter gets its own ID.
    let body = expect_ok(
        ts.post(
            &filter_path(&alice.user_id),
            alice.bearer(),
            &json!({ "room": { "timeline": { "limit": 1 } } }),
        )
        .await,
    );
    assert_ne!(body["filter_id"], json!(filter_id));

    let missing = format!("{}/{}", filter_path(&alice.user_id), "9999999");
    let resp = ts.get(&missing, alice.bearer()).await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_users_filters_are_off_limits() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let body = expect_ok(
        ts.post(
            &filter_path(&alice.user_id),
            alice.bearer(),
            &json!({ "room": { "timeline": { "limit": 5 } } }),
        )
        .await,
    );
    let filter_id = body["filter_id"].as_str().expect("filter_id").to_owned();

    let resp = ts
        .post(&filter_path(&alice.user_id), bob.bearer(), &json!({}))
        .await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let path = format!("{}/{}", filter_path(&alice.user_id), enc(&filter_id));
    let resp = ts.get(&path, bob.bearer()).await;
    assert!(
        resp.0 == StatusCode::FORBIDDEN || resp.0 == StatusCode::NOT_FOUND,
        "Bob must not read Alice's filter: {} {}",
        resp.0,
        resp.1
    );
    // Bob's namespace does not contain Alice's filter either.
    let path = format!("{}/{}", filter_path(&bob.user_id), enc(&filter_id));
    let resp = ts.get(&path, bob.bearer()).await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    ts.shutdown().await;
}
