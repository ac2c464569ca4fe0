//! Full-text search over the rooms a user may read.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn search(
    ts: &TestServer,
    who: &Session,
    criteria: Value,
    next_batch: Option<&str>,
) -> Value {
    let path = match next_batch {
        Some(token) => format!("/_matrix/client/v3/search?next_batch={token}"),
        None => "/_matrix/client/v3/search".to_owned(),
    };
    let body = json!({ "search_categories": { "room_events": criteria } });
    expect_ok(ts.post(&path, who.bearer(), &body).await)["search_categories"]["room_events"].clone()
}

fn result_bodies(found: &Value) -> Vec<String> {
    found["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["result"]["content"]["body"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finds_messages_in_readable_rooms_only() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let shared = expect_ok(
        ts.post(
            "/_matrix/client/v3/createRoom",
            alice.bearer(),
            &json!({ "preset": "public_chat" }),
        )
        .await,
    )["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let private = expect_ok(
        ts.post(
            "/_matrix/client/v3/createRoom",
            alice.bearer(),
            &json!({ "preset": "private_chat" }),
        )
        .await,
    )["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    expect_ok(
        ts.post(&room_path(&shared, "/join"), bob.bearer(), &json!({}))
            .await,
    );
    send_text_id(
        &ts,
        &alice,
        &shared,
        "1",
        "The quarterly budget review is on Friday",
    )
    .await;
    send_text_id(&ts, &alice, &shared, "2", "Lunch menu: soup").await;
    send_text_id(&ts, &alice, &shared, "3", "Budget approved").await;
    send_text_id(&ts, &alice, &private, "4", "Secret budget numbers").await;

    let found = search(
        &ts,
        &bob,
        json!({ "search_term": "budget", "order_by": "recent" }),
        None,
    )
    .await;
    assert_eq!(
        result_bodies(&found),
        vec![
            "Budget approved",
            "The quarterly budget review is on Friday"
        ],
        "{found}"
    );
    assert_eq!(found["count"], 2);
    assert_eq!(found["highlights"], json!(["budget"]));
    // Every word must match.
    let found = search(&ts, &bob, json!({ "search_term": "budget friday" }), None).await;
    assert_eq!(
        result_bodies(&found),
        vec!["The quarterly budget review is on Friday"]
    );
    // Ranked: the message made mostly of the search word first.
    let found = search(
        &ts,
        &alice,
        json!({ "search_term": "budget", "order_by": "rank" }),
        None,
    )
    .await;
    assert_eq!(result_bodies(&found)[0], "Budget approved");
    assert_eq!(found["count"], 3, "alice also reads her private room");

    // Context and pagination.
    let found = search(&ts, &bob, json!({ "search_term": "budget", "order_by": "recent", "filter": { "limit": 1 }, "event_context": { "before_limit": 1, "after_limit": 1 } }), None).await;
    assert_eq!(result_bodies(&found), vec!["Budget approved"]);
    let context = &found["results"][0]["context"];
    assert_eq!(
        context["events_before"][0]["content"]["body"],
        "Lunch menu: soup"
    );
    let next = found["next_batch"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let page = search(
        &ts,
        &bob,
        json!({ "search_term": "budget", "order_by": "recent", "filter": { "limit": 1 } }),
        Some(&next),
    )
    .await;
    assert_eq!(
        result_bodies(&page),
        vec!["The quarterly budget review is on Friday"]
    );
    assert!(page.get("next_batch").is_none() || page["next_batch"].is_null());

    let empty = ts
        .post(
            "/_matrix/client/v3/search",
            bob.bearer(),
            &json!({ "search_categories": { "room_events": { "search_term": "  " } } }),
        )
        .await;
    assert_errcode(&empty, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redacted_messages_are_not_found() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let room = expect_ok(
        ts.post("/_matrix/client/v3/createRoom", alice.bearer(), &json!({}))
            .await,
    )["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let event_id = send_text_id(&ts, &alice, &room, "1", "password is hunter2").await;
    assert_eq!(
        search(&ts, &alice, json!({ "search_term": "hunter2" }), None).await["count"],
        1
    );
    let path = room_path(&room, &format!("/redact/{}/r1", enc(&event_id)));
    expect_ok(ts.put(&path, alice.bearer(), &json!({})).await);
    assert_eq!(
        search(&ts, &alice, json!({ "search_term": "hunter2" }), None).await["count"],
        0
    );
    ts.shutdown().await;
}
