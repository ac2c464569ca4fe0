//! /sync with two users: initial and incremental syncs, long-polling, typing, receipts,
//! invites and leaves, limited timelines and lazy-loaded members.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The `next_batch` of an initial sync: where an incremental sync picks up from now.
async fn since_now(ts: &TestServer, who: &Session) -> String {
    sync(ts, who, "").await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn sync(ts: &TestServer, who: &Session, query: &str) -> Value {
    expect_ok(
        ts.get(&format!("/_matrix/client/v3/sync?{query}"), who.bearer())
            .await,
    )
}

fn bodies(room: &Value) -> Vec<String> {
    room["timeline"]["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter(|e| e["type"] == "m.room.message")
                .map(|e| e["content"]["body"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn without_age(mut value: Value) -> Value {
    match &mut value {
        Value::Object(object) => {
            object.remove("age");
            for child in object.values_mut() {
                *child = without_age(child.take());
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                *item = without_age(item.take());
            }
        }
        _ => {}
    }
    value
}

/// Event types in a room's state and timeline sections.
fn seen_types(room: &Value) -> Vec<String> {
    ["state", "timeline"]
        .iter()
        .flat_map(|section| {
            room[section]["events"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn two_users_in_a_room(ts: &TestServer) -> (Session, Session, String) {
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let room_id = create_room(
        ts,
        &alice,
        json!({ "preset": "public_chat", "name": "Team" }),
    )
    .await;
    expect_ok(
        ts.post(&room_path(&room_id, "/join"), bob.bearer(), &json!({}))
            .await,
    );
    (alice, bob, room_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_and_incremental_sync() {
    let ts = TestServer::start_open().await;
    let (alice, bob, room_id) = two_users_in_a_room(&ts).await;
    send_text_id(&ts, &alice, &room_id, "t1", "first").await;

    let initial = sync(&ts, &bob, "").await;
    let room = &initial["rooms"]["join"][&room_id];
    assert_eq!(bodies(room), vec!["first"], "{initial}");
    // Only the sending device sees the transaction ID.
    let message = |sync: &Value| -> Value {
        sync["rooms"]["join"][&room_id]["timeline"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == "m.room.message")
            .cloned()
            .unwrap()
    };
    assert!(
        message(&initial)["unsigned"]
            .get("transaction_id")
            .is_none()
    );
    assert_eq!(
        message(&sync(&ts, &alice, "").await)["unsigned"]["transaction_id"],
        "t1"
    );
    // State before the timeline plus the timeline's state events give the whole state.
    let seen = seen_types(room);
    assert!(
        seen.contains(&"m.room.create".to_owned()) && seen.contains(&"m.room.name".to_owned()),
        "{seen:?}"
    );
    assert_eq!(room["summary"]["m.joined_member_count"], 2);
    assert!(
        initial["account_data"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.push_rules")
    );
    let since = initial["next_batch"].as_str().unwrap().to_owned();

    // Nothing new: the room is absent; the same token twice gives the same answer.
    let quiet = sync(&ts, &bob, &format!("since={since}&timeout=0")).await;
    assert!(quiet["rooms"]["join"].get(&room_id).is_none(), "{quiet}");
    send_text_id(&ts, &alice, &room_id, "t2", "second").await;
    let once = sync(&ts, &bob, &format!("since={since}&timeout=0")).await;
    let twice = sync(&ts, &bob, &format!("since={since}&timeout=0")).await;
    assert_eq!(bodies(&once["rooms"]["join"][&room_id]), vec!["second"]);
    // Identical but for `unsigned.age`, which counts time since each event was sent.
    assert_eq!(
        without_age(once["rooms"].clone()),
        without_age(twice["rooms"].clone())
    );
    assert_eq!(
        once["rooms"]["join"][&room_id]["timeline"]["limited"],
        false
    );
    assert_eq!(
        once["rooms"]["join"][&room_id]["state"]["events"],
        json!([])
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_wakes_on_a_new_message() {
    let ts = TestServer::start_open().await;
    let (alice, bob, room_id) = two_users_in_a_room(&ts).await;
    let since = since_now(&ts, &bob).await;

    let url = ts.url(&format!(
        "/_matrix/client/v3/sync?since={since}&timeout=60000"
    ));
    let request = ts.client().get(url).bearer_auth(&bob.access_token).send();
    let poll = tokio::spawn(async move { request.await.unwrap().json::<Value>().await.unwrap() });
    // Let the long-poll start waiting, then send.
    tokio::time::sleep(Duration::from_millis(200)).await;
    send_text_id(&ts, &alice, &room_id, "t1", "wake up").await;
    // The poll waits up to 60 s; it must come back with the message well before that.
    let woken = tokio::time::timeout(Duration::from_secs(30), poll)
        .await
        .expect("long-poll woke")
        .unwrap();
    assert_eq!(
        bodies(&woken["rooms"]["join"][&room_id]),
        vec!["wake up"],
        "{woken}"
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_and_receipts_are_ephemeral_events() {
    let ts = TestServer::start_open().await;
    let (alice, bob, room_id) = two_users_in_a_room(&ts).await;
    let event_id = send_text_id(&ts, &alice, &room_id, "t1", "read me").await;
    let since = since_now(&ts, &bob).await;

    let typing = room_path(&room_id, &format!("/typing/{}", enc(&alice.user_id)));
    expect_ok(
        ts.put(
            &typing,
            alice.bearer(),
            &json!({ "typing": true, "timeout": 30000 }),
        )
        .await,
    );
    let update = sync(&ts, &bob, &format!("since={since}&timeout=0")).await;
    let ephemeral = &update["rooms"]["join"][&room_id]["ephemeral"]["events"];
    let typing_event = ephemeral
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.typing")
        .expect("typing");
    assert_eq!(typing_event["content"]["user_ids"], json!([alice.user_id]));
    let since = update["next_batch"].as_str().unwrap().to_owned();

    expect_ok(
        ts.put(&typing, alice.bearer(), &json!({ "typing": false }))
            .await,
    );
    let stopped = sync(&ts, &bob, &format!("since={since}&timeout=0")).await;
    let ephemeral = &stopped["rooms"]["join"][&room_id]["ephemeral"]["events"];
    let typing_event = ephemeral
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.typing")
        .expect("typing");
    assert_eq!(typing_event["content"]["user_ids"], json!([]));
    // Nobody types for someone else.
    let other = room_path(&room_id, &format!("/typing/{}", enc(&bob.user_id)));
    let denied = ts
        .put(
            &other,
            alice.bearer(),
            &json!({ "typing": true, "timeout": 1000 }),
        )
        .await;
    assert_errcode(&denied, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let since = stopped["next_batch"].as_str().unwrap().to_owned();

    let receipt = room_path(&room_id, &format!("/receipt/m.read/{}", enc(&event_id)));
    expect_ok(ts.post(&receipt, bob.bearer(), &json!({})).await);
    let private = room_path(
        &room_id,
        &format!("/receipt/m.read.private/{}", enc(&event_id)),
    );
    expect_ok(ts.post(&private, alice.bearer(), &json!({})).await);
    let for_alice = sync(&ts, &alice, &format!("since={since}&timeout=0")).await;
    let ephemeral = &for_alice["rooms"]["join"][&room_id]["ephemeral"]["events"];
    let receipts = ephemeral
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.receipt")
        .expect("receipt");
    assert!(
        receipts["content"][&event_id]["m.read"][&bob.user_id]["ts"].is_u64(),
        "{receipts}"
    );
    assert!(
        receipts["content"][&event_id]["m.read.private"][&alice.user_id].is_object(),
        "own private receipt"
    );
    let for_bob = sync(&ts, &bob, &format!("since={since}&timeout=0")).await;
    let ephemeral = for_bob["rooms"]["join"][&room_id]["ephemeral"]["events"].to_string();
    assert!(
        !ephemeral.contains("m.read.private"),
        "others' private receipts stay private: {ephemeral}"
    );

    // Read markers set the fully-read marker as room account data.
    let markers = room_path(&room_id, "/read_markers");
    expect_ok(
        ts.post(
            &markers,
            bob.bearer(),
            &json!({ "m.fully_read": event_id, "m.read": event_id }),
        )
        .await,
    );
    let after = sync(
        &ts,
        &bob,
        &format!(
            "since={}&timeout=0",
            for_bob["next_batch"].as_str().unwrap()
        ),
    )
    .await;
    let account_data = &after["rooms"]["join"][&room_id]["account_data"]["events"];
    assert!(
        account_data
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.fully_read" && e["content"]["event_id"] == json!(event_id)),
        "{after}"
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invites_and_leaves_have_their_sections() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let since = since_now(&ts, &bob).await;
    let room_id = create_room(
        &ts,
        &alice,
        json!({ "preset": "private_chat", "name": "Secret plans", "invite": [bob.user_id] }),
    )
    .await;

    let update = sync(&ts, &bob, &format!("since={since}&timeout=0")).await;
    let invite = &update["rooms"]["invite"][&room_id]["invite_state"]["events"];
    let kinds: Vec<&str> = invite
        .as_array()
        .expect("invite section")
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"m.room.create") && kinds.contains(&"m.room.name"),
        "{kinds:?}"
    );
    assert!(
        invite
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.room.member" && e["state_key"] == json!(bob.user_id))
    );
    let since = update["next_batch"].as_str().unwrap().to_owned();

    expect_ok(
        ts.post(&room_path(&room_id, "/join"), bob.bearer(), &json!({}))
            .await,
    );
    let joined = sync(&ts, &bob, &format!("since={since}&timeout=0")).await;
    // Newly joined: the room comes whole, with its state.
    let seen = seen_types(&joined["rooms"]["join"][&room_id]);
    assert!(seen.contains(&"m.room.create".to_owned()), "{joined}");
    let since = joined["next_batch"].as_str().unwrap().to_owned();

    expect_ok(
        ts.post(
            &room_path(&room_id, "/kick"),
            alice.bearer(),
            &json!({ "user_id": bob.user_id }),
        )
        .await,
    );
    let left = sync(&ts, &bob, &format!("since={since}&timeout=0")).await;
    let timeline = &left["rooms"]["leave"][&room_id]["timeline"]["events"];
    let last = timeline.as_array().expect("leave section").last().unwrap();
    assert_eq!(last["content"]["membership"], "leave");
    assert!(left["rooms"]["join"].get(&room_id).is_none());
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limited_timeline_gap_is_filled_by_messages() {
    let ts = TestServer::start_open().await;
    let (alice, bob, room_id) = two_users_in_a_room(&ts).await;
    let since = since_now(&ts, &bob).await;
    for i in 0..8 {
        send_text_id(
            &ts,
            &alice,
            &room_id,
            &format!("t{i}"),
            &format!("message {i}"),
        )
        .await;
    }
    let filter = enc(&json!({ "room": { "timeline": { "limit": 3 } } }).to_string());
    let update = sync(
        &ts,
        &bob,
        &format!("since={since}&timeout=0&filter={filter}"),
    )
    .await;
    let room = &update["rooms"]["join"][&room_id];
    assert_eq!(room["timeline"]["limited"], true);
    assert_eq!(bodies(room), vec!["message 5", "message 6", "message 7"]);
    let prev_batch = room["timeline"]["prev_batch"].as_str().unwrap();
    // /messages from prev_batch back to the old since token returns exactly the gap.
    let gap = expect_ok(
        ts.get(
            &room_path(
                &room_id,
                &format!("/messages?dir=b&from={prev_batch}&to={since}&limit=100"),
            ),
            bob.bearer(),
        )
        .await,
    );
    let mut missed: Vec<String> = gap["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["content"]["body"].as_str().unwrap_or_default().to_owned())
        .collect();
    missed.reverse();
    assert_eq!(
        missed,
        (0..5).map(|i| format!("message {i}")).collect::<Vec<_>>()
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_loading_sends_only_needed_members() {
    let ts = TestServer::start_open().await;
    let (alice, bob, room_id) = two_users_in_a_room(&ts).await;
    let carol = ts.register_open("carol", "carol-password").await;
    expect_ok(
        ts.post(&room_path(&room_id, "/join"), carol.bearer(), &json!({}))
            .await,
    );
    for i in 0..5 {
        send_text_id(&ts, &alice, &room_id, &format!("t{i}"), "only alice talks").await;
    }
    let filter = enc(
        &json!({ "room": { "timeline": { "limit": 3 }, "state": { "lazy_load_members": true } } })
            .to_string(),
    );
    let initial = sync(&ts, &bob, &format!("filter={filter}")).await;
    let members: Vec<&str> = initial["rooms"]["join"][&room_id]["state"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.member")
        .map(|e| e["state_key"].as_str().unwrap())
        .collect();
    assert!(
        members.contains(&alice.user_id.as_str()),
        "the sender's member event: {members:?}"
    );
    assert!(
        !members.contains(&carol.user_id.as_str()),
        "silent members are not sent: {members:?}"
    );
    ts.shutdown().await;
}

/// Member state keys in a room's `state` section.
fn state_members(room: &Value) -> Vec<String> {
    room["state"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["type"] == "m.room.member")
        .map(|e| e["state_key"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_loading_sends_a_new_senders_member_once() {
    let ts = TestServer::start_open().await;
    let (alice, bob, room_id) = two_users_in_a_room(&ts).await;
    let carol = ts.register_open("carol", "carol-password").await;
    expect_ok(
        ts.post(&room_path(&room_id, "/join"), carol.bearer(), &json!({}))
            .await,
    );
    send_text_id(&ts, &alice, &room_id, "a0", "alice speaks").await;
    // A one-event timeline, so carol's join is not in the initial sync's timeline either.
    let lazy = enc(
        &json!({ "room": { "timeline": { "limit": 1 }, "state": { "lazy_load_members": true } } })
            .to_string(),
    );
    let initial = sync(&ts, &bob, &format!("filter={lazy}")).await;
    assert!(
        !state_members(&initial["rooms"]["join"][&room_id]).contains(&carol.user_id),
        "carol has not spoken yet"
    );
    let since = initial["next_batch"].as_str().unwrap().to_owned();

    // Carol speaks for the first time: her member event comes with her message, although
    // the timeline is not limited.
    send_text_id(&ts, &carol, &room_id, "c0", "carol speaks").await;
    let first = sync(&ts, &bob, &format!("filter={lazy}&since={since}")).await;
    let room = &first["rooms"]["join"][&room_id];
    assert_eq!(bodies(room), ["carol speaks"]);
    assert_eq!(room["timeline"]["limited"], false);
    assert_eq!(state_members(room), vec![carol.user_id.clone()]);

    // The same token again gives the same answer: the client may never have seen the first.
    let again = sync(&ts, &bob, &format!("filter={lazy}&since={since}")).await;
    assert_eq!(
        state_members(&again["rooms"]["join"][&room_id]),
        vec![carol.user_id.clone()]
    );

    // Once the client has moved on, carol's membership is not sent again...
    let since = first["next_batch"].as_str().unwrap().to_owned();
    send_text_id(&ts, &carol, &room_id, "c1", "carol again").await;
    let second = sync(&ts, &bob, &format!("filter={lazy}&since={since}")).await;
    let room = &second["rooms"]["join"][&room_id];
    assert_eq!(bodies(room), ["carol again"]);
    assert!(state_members(room).is_empty(), "{room}");

    // ...unless the filter asks for redundant members.
    let redundant = enc(&json!({ "room": { "timeline": { "limit": 1 }, "state": {
            "lazy_load_members": true, "include_redundant_members": true } } })
    .to_string());
    let third = sync(&ts, &bob, &format!("filter={redundant}&since={since}")).await;
    let members = state_members(&third["rooms"]["join"][&room_id]);
    assert!(members.contains(&carol.user_id), "{members:?}");

    // A changed membership (new display name) is sent again with the next message.
    let since = second["next_batch"].as_str().unwrap().to_owned();
    expect_ok(
        ts.put(
            &format!(
                "/_matrix/client/v3/profile/{}/displayname",
                enc(&carol.user_id)
            ),
            carol.bearer(),
            &json!({ "displayname": "Carol C." }),
        )
        .await,
    );
    let renamed = sync(&ts, &bob, &format!("filter={lazy}&since={since}")).await;
    let since = renamed["next_batch"].as_str().unwrap().to_owned();
    send_text_id(&ts, &carol, &room_id, "c2", "carol renamed").await;
    let fourth = sync(&ts, &bob, &format!("filter={lazy}&since={since}")).await;
    // The rename itself arrived in the timeline, so nothing more is needed.
    assert!(
        state_members(&fourth["rooms"]["join"][&room_id]).is_empty(),
        "{}",
        fourth["rooms"]["join"][&room_id]
    );

    // A fresh initial sync on the same device starts over.
    let fresh = sync(&ts, &bob, &format!("filter={lazy}")).await;
    let since = fresh["next_batch"].as_str().unwrap().to_owned();
    send_text_id(&ts, &alice, &room_id, "a1", "alice again").await;
    let after = sync(&ts, &bob, &format!("filter={lazy}&since={since}")).await;
    let room = &after["rooms"]["join"][&room_id];
    assert_eq!(bodies(room), ["alice again"]);
    // The fresh sync's timeline was carol's last message, so alice's membership comes now.
    let fresh_members = state_members(&fresh["rooms"]["join"][&room_id]);
    assert!(!fresh_members.contains(&alice.user_id), "{fresh_members:?}");
    assert!(state_members(room).contains(&alice.user_id), "{room}");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_before_a_limited_timeline_is_in_the_state_section() {
    let ts = TestServer::start_open().await;
    let (alice, bob, room_id) = two_users_in_a_room(&ts).await;
    for i in 0..12 {
        send_text_id(
            &ts,
            &alice,
            &room_id,
            &format!("t{i}"),
            &format!("message {i}"),
        )
        .await;
    }
    let initial = sync(&ts, &bob, "").await;
    let room = &initial["rooms"]["join"][&room_id];
    assert_eq!(room["timeline"]["limited"], true);
    assert_eq!(bodies(room).len(), 10, "default timeline limit");
    let state: Vec<&str> = room["state"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for kind in [
        "m.room.create",
        "m.room.name",
        "m.room.power_levels",
        "m.room.member",
    ] {
        assert!(state.contains(&kind), "{kind} missing from state {state:?}");
    }
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_counts_mentions_and_notifications() {
    let ts = TestServer::start_open().await;
    let (alice, bob, room_id) = two_users_in_a_room(&ts).await;
    let since = since_now(&ts, &bob).await;
    send_text_id(&ts, &alice, &room_id, "t1", "hello everyone").await;
    let path = room_path(&room_id, "/send/m.room.message/t2");
    let mention = json!({ "msgtype": "m.text", "body": "bob, look", "m.mentions": { "user_ids": [bob.user_id] } });
    let mention_id = expect_ok(ts.put(&path, alice.bearer(), &mention).await)["event_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let update = sync(&ts, &bob, &format!("since={since}&timeout=0")).await;
    let unread = &update["rooms"]["join"][&room_id]["unread_notifications"];
    assert_eq!(unread["notification_count"], 2, "{update}");
    assert_eq!(unread["highlight_count"], 1, "{update}");
    // The sender is not notified of their own messages.
    let for_alice = sync(&ts, &alice, "").await;
    assert_eq!(
        for_alice["rooms"]["join"][&room_id]["unread_notifications"]["notification_count"],
        0
    );

    let notifications = expect_ok(
        ts.get("/_matrix/client/v3/notifications", bob.bearer())
            .await,
    );
    let listed = notifications["notifications"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{notifications}");
    assert_eq!(
        listed[0]["event"]["event_id"],
        json!(mention_id),
        "newest first"
    );
    assert_eq!(listed[0]["read"], false);
    let highlights = expect_ok(
        ts.get(
            "/_matrix/client/v3/notifications?only=highlight",
            bob.bearer(),
        )
        .await,
    );
    assert_eq!(highlights["notifications"].as_array().unwrap().len(), 1);

    // A read receipt on the latest message brings the counts back to zero.
    let since = update["next_batch"].as_str().unwrap().to_owned();
    let receipt = room_path(&room_id, &format!("/receipt/m.read/{}", enc(&mention_id)));
    expect_ok(ts.post(&receipt, bob.bearer(), &json!({})).await);
    let read = sync(&ts, &bob, &format!("since={since}&timeout=0")).await;
    let unread = &read["rooms"]["join"][&room_id]["unread_notifications"];
    assert_eq!(unread["notification_count"], 0, "{read}");
    assert_eq!(unread["highlight_count"], 0);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_shared_with_room_members() {
    let ts = TestServer::start_open().await;
    let (alice, bob, _room_id) = two_users_in_a_room(&ts).await;
    let carol = ts.register_open("carol", "carol-password").await;
    let since = since_now(&ts, &bob).await;

    let path = format!("/_matrix/client/v3/presence/{}/status", enc(&alice.user_id));
    expect_ok(
        ts.put(
            &path,
            alice.bearer(),
            &json!({ "presence": "online", "status_msg": "in a meeting" }),
        )
        .await,
    );
    let denied = ts
        .put(&path, bob.bearer(), &json!({ "presence": "offline" }))
        .await;
    assert_errcode(&denied, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    let seen = expect_ok(ts.get(&path, bob.bearer()).await);
    assert_eq!(seen["presence"], "online");
    assert_eq!(seen["status_msg"], "in a meeting");
    assert!(seen["last_active_ago"].is_u64());
    let stranger = ts.get(&path, carol.bearer()).await;
    assert_errcode(&stranger, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    let update = sync(&ts, &bob, &format!("since={since}&timeout=0")).await;
    let events = update["presence"]["events"].as_array().unwrap();
    let alice_presence = events
        .iter()
        .find(|e| e["sender"] == json!(alice.user_id))
        .expect("alice's presence");
    assert_eq!(alice_presence["type"], "m.presence");
    assert_eq!(alice_presence["content"]["status_msg"], "in a meeting");
    let for_carol = sync(&ts, &carol, "").await;
    assert!(
        !for_carol["presence"]["events"]
            .to_string()
            .contains(alice.user_id.as_str()),
        "{for_carol}"
    );
    ts.shutdown().await;

    // Switched off: nobody's status is shown.
    let ts = TestServer::start_with(|cfg| {
        cfg.allow_registration = true;
        cfg.allow_presence = false;
    })
    .await;
    let (alice, bob, _room_id) = two_users_in_a_room(&ts).await;
    let path = format!("/_matrix/client/v3/presence/{}/status", enc(&alice.user_id));
    expect_ok(
        ts.put(&path, alice.bearer(), &json!({ "presence": "online" }))
            .await,
    );
    assert_eq!(
        expect_ok(ts.get(&path, bob.bearer()).await)["presence"],
        "offline"
    );
    assert_eq!(sync(&ts, &bob, "").await["presence"]["events"], json!([]));
    ts.shutdown().await;
}

/// With many users' presence to report (an initial sync sees everyone who ever set one), who
/// shares a room is worked out from the rooms' member lists: the answer must be the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_sync_presence_is_limited_to_room_mates_among_many() {
    let ts = TestServer::start_open().await;
    let (alice, bob, room_id) = two_users_in_a_room(&ts).await;
    let since = since_now(&ts, &bob).await;
    let status = |who: &str| format!("/_matrix/client/v3/presence/{}/status", enc(who));
    let mut strangers = Vec::new();
    for i in 0..20 {
        let stranger = ts
            .register_open(&format!("stranger{i}"), "stranger-password")
            .await;
        expect_ok(
            ts.put(
                &status(&stranger.user_id),
                stranger.bearer(),
                &json!({ "presence": "online" }),
            )
            .await,
        );
        strangers.push(stranger);
    }
    // Invited, not joined: no presence shared yet.
    let invitee = &strangers[0];
    expect_ok(
        ts.post(
            &room_path(&room_id, "/invite"),
            alice.bearer(),
            &json!({ "user_id": invitee.user_id }),
        )
        .await,
    );
    expect_ok(
        ts.put(
            &status(&alice.user_id),
            alice.bearer(),
            &json!({ "presence": "unavailable", "status_msg": "away" }),
        )
        .await,
    );

    // Both an incremental sync (more changes than are checked one by one) and an initial one.
    let incremental = sync(&ts, &bob, &format!("since={since}&timeout=0")).await;
    let initial = sync(&ts, &bob, "").await;
    for answer in [&incremental, &initial] {
        let senders: Vec<&str> = answer["presence"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["sender"].as_str().unwrap())
            .collect();
        assert!(senders.contains(&alice.user_id.as_str()), "{senders:?}");
        assert!(
            strangers
                .iter()
                .all(|s| !senders.contains(&s.user_id.as_str())),
            "{senders:?}"
        );
        let alice_presence = answer["presence"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["sender"] == json!(alice.user_id))
            .unwrap();
        assert_eq!(alice_presence["content"]["presence"], "unavailable");
        assert_eq!(alice_presence["content"]["status_msg"], "away");
    }

    // Once joined, the invitee's presence is shared too.
    expect_ok(
        ts.post(&room_path(&room_id, "/join"), invitee.bearer(), &json!({}))
            .await,
    );
    let after_join = sync(&ts, &bob, "").await;
    assert!(
        after_join["presence"]["events"]
            .to_string()
            .contains(invitee.user_id.as_str()),
        "{after_join}"
    );
    ts.shutdown().await;
}

/// A redaction sent with a transaction ID comes back to its device with that ID (for the
/// client's local echo), and a retry returns the same redaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redaction_carries_its_transaction_id_back_to_its_device() {
    let ts = TestServer::start_open().await;
    let (alice, bob, room_id) = two_users_in_a_room(&ts).await;
    let sent = expect_ok(send_text(&ts, &alice, &room_id, "m1", "typo").await);
    let since = since_now(&ts, &alice).await;
    let path = room_path(
        &room_id,
        &format!("/redact/{}/undo1", enc(sent["event_id"].as_str().unwrap())),
    );
    let redaction = expect_ok(ts.put(&path, alice.bearer(), &json!({})).await);
    let again = expect_ok(ts.put(&path, alice.bearer(), &json!({})).await);
    assert_eq!(again["event_id"], redaction["event_id"]);

    let find = |answer: &Value| {
        answer["rooms"]["join"][&room_id]["timeline"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["event_id"] == redaction["event_id"])
            .cloned()
            .unwrap_or_else(|| panic!("no redaction in {answer}"))
    };
    let mine = find(&sync(&ts, &alice, &format!("since={since}&timeout=0")).await);
    assert_eq!(mine["unsigned"]["transaction_id"], "undo1", "{mine}");
    let theirs = find(&sync(&ts, &bob, "").await);
    assert!(
        theirs["unsigned"].get("transaction_id").is_none(),
        "{theirs}"
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thread_unread_counts_and_threaded_receipts() {
    let ts = TestServer::start_open().await;
    let (alice, bob, room_id) = two_users_in_a_room(&ts).await;
    let root = send_text_id(&ts, &alice, &room_id, "t1", "a root message").await;
    let path = room_path(&room_id, "/send/m.room.message/t2");
    let reply = json!({
        "msgtype": "m.text",
        "body": "in the thread",
        "m.relates_to": { "rel_type": "m.thread", "event_id": root },
    });
    let reply_id = expect_ok(ts.put(&path, alice.bearer(), &reply).await)["event_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let threads_filter = enc(
        &json!({ "room": { "timeline": { "unread_thread_notifications": true } } }).to_string(),
    );
    let by_thread = sync(&ts, &bob, &format!("filter={threads_filter}")).await;
    let room = &by_thread["rooms"]["join"][&room_id];
    assert_eq!(
        room["unread_notifications"]["notification_count"], 1,
        "the root, in the main timeline: {room}"
    );
    assert_eq!(
        room["unread_thread_notifications"][&root]["notification_count"],
        1
    );
    let together = sync(&ts, &bob, "").await;
    assert_eq!(
        together["rooms"]["join"][&room_id]["unread_notifications"]["notification_count"],
        2
    );

    // A receipt in the thread clears the thread only.
    let receipt = room_path(&room_id, &format!("/receipt/m.read/{}", enc(&reply_id)));
    expect_ok(
        ts.post(&receipt, bob.bearer(), &json!({ "thread_id": root }))
            .await,
    );
    let after = sync(&ts, &bob, &format!("filter={threads_filter}")).await;
    let room = &after["rooms"]["join"][&room_id];
    assert_eq!(
        room["unread_notifications"]["notification_count"], 1,
        "{room}"
    );
    assert!(
        room["unread_thread_notifications"].get(&root).is_none(),
        "{room}"
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_below_next_batch_are_sent_even_when_the_room_changed_again() {
    let ts = TestServer::start_open().await;
    let (alice, bob, room_id) = two_users_in_a_room(&ts).await;
    let since = since_now(&ts, &bob).await;
    send_text_id(&ts, &alice, &room_id, "e1", "first").await;
    // A slow writer elsewhere holds the reportable position at "first"; meanwhile the room
    // changes again beyond it.
    let engine = std::sync::Arc::clone(&ts.server().services().engine);
    let slow_writer = engine.begin_write();
    send_text_id(&ts, &alice, &room_id, "e2", "second").await;
    let partial = sync(&ts, &bob, &format!("since={since}")).await;
    assert_eq!(
        bodies(&partial["rooms"]["join"][&room_id]),
        ["first"],
        "{partial}"
    );
    drop(slow_writer);
    let next = partial["next_batch"].as_str().unwrap();
    let rest = sync(&ts, &bob, &format!("since={next}")).await;
    assert_eq!(bodies(&rest["rooms"]["join"][&room_id]), ["second"]);
    ts.shutdown().await;
}
