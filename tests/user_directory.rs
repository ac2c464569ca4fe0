//! The user directory: a company-wide search by default, or only people the searcher can
//! already see when configured so.

mod common;

use common::*;
use serde_json::{Value, json};

async fn search(ts: &TestServer, who: &Session, term: &str) -> Vec<String> {
    let body = expect_ok(
        ts.post(
            "/_matrix/client/v3/user_directory/search",
            who.bearer(),
            &json!({ "search_term": term }),
        )
        .await,
    );
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["user_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn set_name(ts: &TestServer, who: &Session, name: &str) {
    let path = format!(
        "/_matrix/client/v3/profile/{}/displayname",
        enc(&who.user_id)
    );
    expect_ok(
        ts.put(&path, who.bearer(), &json!({ "displayname": name }))
            .await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finds_every_local_user_by_name_or_id() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    set_name(&ts, &bob, "Robert Builder").await;
    assert_eq!(
        search(&ts, &alice, "robert").await,
        vec![bob.user_id.clone()]
    );
    assert_eq!(search(&ts, &alice, "bob").await, vec![bob.user_id.clone()]);
    assert!(search(&ts, &alice, "nobody-here").await.is_empty());

    // Deactivated accounts disappear.
    let resp = ts
        .uia_password(
            reqwest::Method::POST,
            "/_matrix/client/v3/account/deactivate",
            &bob,
            "bob-password",
            json!({}),
        )
        .await;
    expect_ok(resp);
    assert!(search(&ts, &alice, "robert").await.is_empty());
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limited_directory_shows_only_shared_and_public_rooms() {
    let ts = TestServer::start_with(|cfg| {
        cfg.allow_registration = true;
        cfg.user_directory_search_all_users = false;
    })
    .await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let carol = ts.register_open("carol", "carol-password").await;
    assert!(
        search(&ts, &alice, "bob").await.is_empty(),
        "no shared room yet"
    );
    let room: Value = expect_ok(
        ts.post(
            "/_matrix/client/v3/createRoom",
            bob.bearer(),
            &json!({ "preset": "private_chat", "invite": [alice.user_id] }),
        )
        .await,
    );
    let room_id = room["room_id"].as_str().unwrap();
    expect_ok(
        ts.post(
            &format!("/_matrix/client/v3/join/{}", enc(room_id)),
            alice.bearer(),
            &json!({}),
        )
        .await,
    );
    assert_eq!(search(&ts, &alice, "bob").await, vec![bob.user_id.clone()]);
    // Carol sits in a public room: findable by anyone.
    expect_ok(
        ts.post(
            "/_matrix/client/v3/createRoom",
            carol.bearer(),
            &json!({ "visibility": "public", "preset": "public_chat" }),
        )
        .await,
    );
    assert_eq!(
        search(&ts, &alice, "carol").await,
        vec![carol.user_id.clone()]
    );
    ts.shutdown().await;
}
