//! Rooms: creation, membership, state, sending and reading the timeline, authorization rules
//! per room version, and concurrent sends into one room.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn messages(ts: &TestServer, who: &Session, room_id: &str, query: &str) -> Value {
    expect_ok(
        ts.get(
            &room_path(room_id, &format!("/messages?{query}")),
            who.bearer(),
        )
        .await,
    )
}

fn bodies(page: &Value) -> Vec<String> {
    page["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| e["content"]["body"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_room_emits_the_spec_events() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let room_id = create_room(
        &ts,
        &alice,
        json!({ "name": "Plans", "topic": "What we do next", "preset": "private_chat" }),
    )
    .await;
    // Room version 12 by default: the room ID is the create event's hash, with no server part.
    assert!(
        room_id.starts_with('!') && !room_id.contains(':'),
        "{room_id}"
    );

    let state = expect_ok(ts.get(&room_path(&room_id, "/state"), alice.bearer()).await);
    let kinds: Vec<&str> = state
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for kind in [
        "m.room.create",
        "m.room.member",
        "m.room.power_levels",
        "m.room.join_rules",
        "m.room.history_visibility",
        "m.room.name",
        "m.room.topic",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let create = state
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.room.create")
        .unwrap();
    assert_eq!(create["content"]["room_version"], "12");
    assert_eq!(create["sender"], json!(alice.user_id));
    assert!(
        create.get("auth_events").is_none() && create.get("signatures").is_none(),
        "client format: {create}"
    );

    let name = expect_ok(
        ts.get(&room_path(&room_id, "/state/m.room.name/"), alice.bearer())
            .await,
    );
    assert_eq!(name, json!({ "name": "Plans" }));
    let join_rules = expect_ok(
        ts.get(
            &room_path(&room_id, "/state/m.room.join_rules/"),
            alice.bearer(),
        )
        .await,
    );
    assert_eq!(join_rules["join_rule"], "invite");
    // In v12 the creator's power is implicit and not listed.
    let power = expect_ok(
        ts.get(
            &room_path(&room_id, "/state/m.room.power_levels/"),
            alice.bearer(),
        )
        .await,
    );
    assert!(power["users"].get(&alice.user_id).is_none(), "{power}");

    let joined = expect_ok(
        ts.get("/_matrix/client/v3/joined_rooms", alice.bearer())
            .await,
    );
    assert_eq!(joined["joined_rooms"], json!([room_id]));
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_read_and_retry_messages() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let room_id = create_room(&ts, &alice, json!({})).await;

    let first = expect_ok(send_text(&ts, &alice, &room_id, "txn1", "hello").await);
    let event_id = first["event_id"].as_str().unwrap().to_owned();
    // The same transaction ID again is the same event, not a new one.
    let retry = expect_ok(send_text(&ts, &alice, &room_id, "txn1", "hello").await);
    assert_eq!(retry["event_id"], json!(event_id));
    expect_ok(send_text(&ts, &alice, &room_id, "txn2", "world").await);

    let page = messages(&ts, &alice, &room_id, "dir=b&limit=10").await;
    assert_eq!(
        bodies(&page),
        vec!["world", "hello"],
        "newest first: {page}"
    );

    // Paginating one event at a time walks the same history.
    let one = messages(&ts, &alice, &room_id, "dir=b&limit=1").await;
    assert_eq!(bodies(&one), vec!["world"]);
    let next = one["end"].as_str().expect("more history");
    let two = messages(&ts, &alice, &room_id, &format!("dir=b&limit=1&from={next}")).await;
    assert_eq!(bodies(&two), vec!["hello"]);

    // Forwards from the beginning: oldest first, the create event leading.
    let forward = messages(&ts, &alice, &room_id, "dir=f&limit=100").await;
    assert_eq!(forward["chunk"][0]["type"], "m.room.create");
    assert_eq!(bodies(&forward), vec!["hello", "world"]);
    assert!(
        forward.get("end").is_none() || forward["end"].is_null(),
        "no more events: {forward}"
    );

    // Filtering by type.
    let filter = enc(r#"{"types":["m.room.member"]}"#);
    let members = messages(&ts, &alice, &room_id, &format!("dir=b&filter={filter}")).await;
    assert!(
        members["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["type"] == "m.room.member")
    );

    let event = expect_ok(
        ts.get(
            &room_path(&room_id, &format!("/event/{}", enc(&event_id))),
            alice.bearer(),
        )
        .await,
    );
    assert_eq!(event["content"]["body"], "hello");
    assert_eq!(event["room_id"], json!(room_id));
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsiders_are_refused() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let room_id = create_room(&ts, &alice, json!({ "preset": "private_chat" })).await;

    assert_errcode(
        &send_text(&ts, &bob, &room_id, "t1", "let me in").await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    let join = ts
        .post(&room_path(&room_id, "/join"), bob.bearer(), &json!({}))
        .await;
    assert_errcode(&join, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let state = ts.get(&room_path(&room_id, "/state"), bob.bearer()).await;
    assert_errcode(&state, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let page = ts
        .get(&room_path(&room_id, "/messages?dir=b"), bob.bearer())
        .await;
    assert_errcode(&page, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    let unknown = "!doesnotexist:localhost";
    assert_errcode(
        &send_text(&ts, &alice, unknown, "t2", "x").await,
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
    );
    let join = ts
        .post(&room_path(unknown, "/join"), alice.bearer(), &json!({}))
        .await;
    assert_errcode(&join, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_join_members_leave_and_forget() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let room_id = create_room(&ts, &alice, json!({ "preset": "private_chat" })).await;

    expect_ok(
        ts.post(
            &room_path(&room_id, "/invite"),
            alice.bearer(),
            &json!({ "user_id": bob.user_id }),
        )
        .await,
    );
    expect_ok(
        ts.post(
            &format!("/_matrix/client/v3/join/{}", enc(&room_id)),
            bob.bearer(),
            &json!({}),
        )
        .await,
    );
    expect_ok(send_text(&ts, &bob, &room_id, "b1", "thanks for the invite").await);

    let joined = expect_ok(
        ts.get(&room_path(&room_id, "/joined_members"), alice.bearer())
            .await,
    );
    let names: Vec<&String> = joined["joined"].as_object().unwrap().keys().collect();
    assert_eq!(names.len(), 2, "{joined}");
    assert_eq!(joined["joined"][&bob.user_id]["display_name"], "bob");

    let members = expect_ok(
        ts.get(
            &room_path(&room_id, "/members?membership=join"),
            alice.bearer(),
        )
        .await,
    );
    assert_eq!(members["chunk"].as_array().unwrap().len(), 2);

    expect_ok(
        ts.post(&room_path(&room_id, "/leave"), bob.bearer(), &json!({}))
            .await,
    );
    let rooms = expect_ok(
        ts.get("/_matrix/client/v3/joined_rooms", bob.bearer())
            .await,
    );
    assert_eq!(rooms["joined_rooms"], json!([]));
    let members = expect_ok(
        ts.get(
            &room_path(&room_id, "/members?not_membership=leave"),
            alice.bearer(),
        )
        .await,
    );
    assert_eq!(members["chunk"].as_array().unwrap().len(), 1);
    expect_ok(
        ts.post(&room_path(&room_id, "/forget"), bob.bearer(), &json!({}))
            .await,
    );
    // Alice is still in the room and cannot forget it.
    let forget = ts
        .post(&room_path(&room_id, "/forget"), alice.bearer(), &json!({}))
        .await;
    assert_eq!(forget.0, StatusCode::BAD_REQUEST, "{forget:?}");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_room_by_alias_with_bans() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let room_id = create_room(
        &ts,
        &alice,
        json!({ "preset": "public_chat", "room_alias_name": "lobby" }),
    )
    .await;
    let taken = ts
        .post(
            "/_matrix/client/v3/createRoom",
            alice.bearer(),
            &json!({ "room_alias_name": "lobby" }),
        )
        .await;
    assert_errcode(&taken, StatusCode::BAD_REQUEST, "M_ROOM_IN_USE");

    let joined = expect_ok(
        ts.post(
            &format!("/_matrix/client/v3/join/{}", enc("#lobby:localhost")),
            bob.bearer(),
            &json!({}),
        )
        .await,
    );
    assert_eq!(joined["room_id"], json!(room_id));

    expect_ok(
        ts.post(
            &room_path(&room_id, "/ban"),
            alice.bearer(),
            &json!({ "user_id": bob.user_id, "reason": "spam" }),
        )
        .await,
    );
    let rejoin = ts
        .post(&room_path(&room_id, "/join"), bob.bearer(), &json!({}))
        .await;
    assert_errcode(&rejoin, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    // Bob cannot ban Alice back: he is not even in the room.
    let counter = ts
        .post(
            &room_path(&room_id, "/ban"),
            bob.bearer(),
            &json!({ "user_id": alice.user_id }),
        )
        .await;
    assert_errcode(&counter, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    expect_ok(
        ts.post(
            &room_path(&room_id, "/unban"),
            alice.bearer(),
            &json!({ "user_id": bob.user_id }),
        )
        .await,
    );
    expect_ok(
        ts.post(&room_path(&room_id, "/join"), bob.bearer(), &json!({}))
            .await,
    );
    expect_ok(
        ts.post(
            &room_path(&room_id, "/kick"),
            alice.bearer(),
            &json!({ "user_id": bob.user_id }),
        )
        .await,
    );
    let rooms = expect_ok(
        ts.get("/_matrix/client/v3/joined_rooms", bob.bearer())
            .await,
    );
    assert_eq!(rooms["joined_rooms"], json!([]));
    ts.shutdown().await;
}

/// Power-level rules in every supported generation of the authorization rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_levels_are_enforced_in_each_room_version() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    for version in ["1", "2", "6", "10", "11", "12"] {
        let room_id = create_room(
            &ts,
            &alice,
            json!({ "preset": "public_chat", "room_version": version }),
        )
        .await;
        expect_ok(
            ts.post(&room_path(&room_id, "/join"), bob.bearer(), &json!({}))
                .await,
        );
        expect_ok(
            send_text(
                &ts,
                &bob,
                &room_id,
                &format!("v{version}"),
                "members may talk",
            )
            .await,
        );

        // Bob (level 0) may not rename the room (state_default 50)...
        let rename = ts
            .put(
                &room_path(&room_id, "/state/m.room.name/"),
                bob.bearer(),
                &json!({ "name": "mine" }),
            )
            .await;
        assert_errcode(&rename, StatusCode::FORBIDDEN, "M_FORBIDDEN");
        // ...nor raise himself to 100.
        let mut power = expect_ok(
            ts.get(
                &room_path(&room_id, "/state/m.room.power_levels/"),
                bob.bearer(),
            )
            .await,
        );
        power["users"][&bob.user_id] = json!(100);
        let escalate = ts
            .put(
                &room_path(&room_id, "/state/m.room.power_levels/"),
                bob.bearer(),
                &power,
            )
            .await;
        assert_errcode(&escalate, StatusCode::FORBIDDEN, "M_FORBIDDEN");
        // Nor kick the creator.
        let kick = ts
            .post(
                &room_path(&room_id, "/kick"),
                bob.bearer(),
                &json!({ "user_id": alice.user_id }),
            )
            .await;
        assert_errcode(&kick, StatusCode::FORBIDDEN, "M_FORBIDDEN");

        // Alice can grant him 50, after which renaming works.
        let mut power = expect_ok(
            ts.get(
                &room_path(&room_id, "/state/m.room.power_levels/"),
                alice.bearer(),
            )
            .await,
        );
        power["users"][&bob.user_id] = json!(50);
        expect_ok(
            ts.put(
                &room_path(&room_id, "/state/m.room.power_levels/"),
                alice.bearer(),
                &power,
            )
            .await,
        );
        expect_ok(
            ts.put(
                &room_path(&room_id, "/state/m.room.name/"),
                bob.bearer(),
                &json!({ "name": "ours" }),
            )
            .await,
        );
        let name = expect_ok(
            ts.get(&room_path(&room_id, "/state/m.room.name/"), alice.bearer())
                .await,
        );
        assert_eq!(name["name"], "ours", "room version {version}");
    }
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_room_requests_get_spec_errors() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    for version in ["13", "99", "v12"] {
        let resp = ts
            .post(
                "/_matrix/client/v3/createRoom",
                alice.bearer(),
                &json!({ "room_version": version }),
            )
            .await;
        assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_UNSUPPORTED_ROOM_VERSION");
    }
    let room_id = create_room(&ts, &alice, json!({})).await;
    let huge = "x".repeat(70_000);
    let resp = send_text(&ts, &alice, &room_id, "big", &huge).await;
    assert_errcode(&resp, StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");
    let page = messages(&ts, &alice, &room_id, "dir=b").await;
    assert!(
        bodies(&page).is_empty(),
        "the oversized event was not stored"
    );
    let invite = ts
        .post(
            &room_path(&room_id, "/invite"),
            alice.bearer(),
            &json!({ "user_id": "@nobody:localhost" }),
        )
        .await;
    assert_errcode(&invite, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let resp = ts
        .get(
            &room_path(&room_id, "/messages?dir=b&from=garbage"),
            alice.bearer(),
        )
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_survive_a_restart() {
    let mut ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let room_id = create_room(&ts, &alice, json!({ "name": "Durable" })).await;
    expect_ok(send_text(&ts, &alice, &room_id, "t1", "before restart").await);
    ts.restart().await;
    let page = messages(&ts, &alice, &room_id, "dir=b").await;
    assert_eq!(bodies(&page), vec!["before restart"]);
    expect_ok(send_text(&ts, &alice, &room_id, "t2", "after restart").await);
    let page = messages(&ts, &alice, &room_id, "dir=b").await;
    assert_eq!(bodies(&page), vec!["after restart", "before restart"]);
    let name = expect_ok(
        ts.get(&room_path(&room_id, "/state/m.room.name/"), alice.bearer())
            .await,
    );
    assert_eq!(name["name"], "Durable");
    ts.shutdown().await;
}

/// 50 clients sending at once into one room: one consistent timeline, nothing lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_form_one_total_order() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let room_id = create_room(&ts, &alice, json!({})).await;
    let sends = (0..50).map(|i| {
        let ts = &ts;
        let alice = &alice;
        let room_id = &room_id;
        async move {
            expect_ok(
                send_text(
                    ts,
                    alice,
                    room_id,
                    &format!("c{i}"),
                    &format!("message {i}"),
                )
                .await,
            )
        }
    });
    let results = futures_util::future::join_all(sends).await;
    let mut ids: Vec<String> = results
        .iter()
        .map(|r| r["event_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 50, "50 distinct events");

    let page = messages(&ts, &alice, &room_id, "dir=f&limit=1000").await;
    let mut seen: Vec<String> = bodies(&page);
    assert_eq!(seen.len(), 50, "every message stored exactly once");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 50);
    // Backwards and forwards agree on the order.
    let back = messages(&ts, &alice, &room_id, "dir=b&limit=1000").await;
    let mut backwards = bodies(&back);
    backwards.reverse();
    assert_eq!(backwards, bodies(&page));
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redacted_content_is_gone_from_storage() {
    let mut ts = TestServer::start_with(|cfg| {
        cfg.allow_registration = true;
        cfg.registration_token = None;
        cfg.db_compression = false;
    })
    .await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    for version in ["10", "12"] {
        let room_id = create_room(
            &ts,
            &alice,
            json!({ "preset": "public_chat", "room_version": version }),
        )
        .await;
        expect_ok(
            ts.post(&room_path(&room_id, "/join"), bob.bearer(), &json!({}))
                .await,
        );
        let secret = format!("ZEBRA{version}x{}q7Hk2mW9pL4vR8", std::process::id());
        let sent =
            expect_ok(send_text(&ts, &alice, &room_id, &format!("s{version}"), &secret).await);
        let event_id = sent["event_id"].as_str().unwrap().to_owned();
        // Room version 1 event IDs name their server; later ones are hashes.
        assert_eq!(
            event_id.ends_with(":localhost"),
            version == "1",
            "{event_id}"
        );
        // Put the message on disk (in SST files) before redacting it, and make sure the scan
        // below would find it there.
        ts.stop().await;
        assert!(
            files_contain(&ts.config().database_path, secret.as_bytes()),
            "the scan finds stored text"
        );
        ts.restart().await;

        // Bob (level 0) may not redact Alice's message.
        let path = room_path(&room_id, &format!("/redact/{}/r{version}", enc(&event_id)));
        let denied = ts
            .put(&path, bob.bearer(), &json!({ "reason": "no" }))
            .await;
        assert_errcode(&denied, StatusCode::FORBIDDEN, "M_FORBIDDEN");

        let redaction = expect_ok(
            ts.put(&path, alice.bearer(), &json!({ "reason": "leaked" }))
                .await,
        );
        let again = expect_ok(
            ts.put(&path, alice.bearer(), &json!({ "reason": "leaked" }))
                .await,
        );
        assert_eq!(
            again["event_id"], redaction["event_id"],
            "redaction is idempotent per transaction"
        );

        let event = expect_ok(
            ts.get(
                &room_path(&room_id, &format!("/event/{}", enc(&event_id))),
                alice.bearer(),
            )
            .await,
        );
        assert_eq!(event["content"], json!({}), "content stripped: {event}");
        assert_eq!(
            event["unsigned"]["redacted_because"]["event_id"],
            redaction["event_id"]
        );

        ts.restart().await;
        let event = expect_ok(
            ts.get(
                &room_path(&room_id, &format!("/event/{}", enc(&event_id))),
                alice.bearer(),
            )
            .await,
        );
        assert_eq!(event["content"], json!({}));
        ts.stop().await;
        assert!(
            !files_contain(&ts.config().database_path, secret.as_bytes()),
            "the redacted text is still somewhere in the database files (room version {version})"
        );
        // The search index holds the words in lower case.
        assert!(
            !data_files_contain(&ts.config().database_path, secret.to_lowercase().as_bytes()),
            "the redacted words are still in the search index (room version {version})"
        );
        ts.restart().await;
    }
    ts.shutdown().await;
}

/// Parsed state events are cached (authorising every event reads them): a redaction must
/// reach readers of the current state at once, not only readers of the stored event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redacted_state_event_is_read_redacted() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let room_id = create_room(&ts, &alice, json!({ "preset": "private_chat" })).await;
    let topic_path = room_path(&room_id, "/state/m.room.topic/");
    let set = expect_ok(
        ts.put(
            &topic_path,
            alice.bearer(),
            &json!({ "topic": "merger with ACME" }),
        )
        .await,
    );
    // Read it (and, with it, the power levels) through the cache a few times.
    for i in 0..3 {
        expect_ok(send_text(&ts, &alice, &room_id, &format!("t{i}"), "hello").await);
        let topic = expect_ok(ts.get(&topic_path, alice.bearer()).await);
        assert_eq!(topic["topic"], "merger with ACME");
    }
    let topic_id = set["event_id"].as_str().unwrap();
    expect_ok(
        ts.put(
            &room_path(&room_id, &format!("/redact/{}/r1", enc(topic_id))),
            alice.bearer(),
            &json!({}),
        )
        .await,
    );
    let topic = expect_ok(ts.get(&topic_path, alice.bearer()).await);
    assert_eq!(topic, json!({}), "the current topic is the redacted one");
    let state = expect_ok(ts.get(&room_path(&room_id, "/state"), alice.bearer()).await);
    let in_state = state
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.room.topic")
        .unwrap();
    assert_eq!(in_state["content"], json!({}), "{in_state}");
    ts.shutdown().await;
}

/// A state event's content is also copied into the `unsigned.prev_content` of the event that
/// replaced it: redacting the first must redact that copy, in answers and on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redacting_replaced_state_redacts_its_copy_in_prev_content() {
    let mut ts = TestServer::start_with(|cfg| {
        cfg.allow_registration = true;
        cfg.registration_token = None;
        cfg.db_compression = false;
    })
    .await;
    let alice = ts.register_open("alice", "alice-password").await;
    let room_id = create_room(&ts, &alice, json!({ "preset": "private_chat" })).await;
    let secret = format!("OKAPI{}x7Rq2Lm9Vt4", std::process::id());
    let topic_path = room_path(&room_id, "/state/m.room.topic/");
    let first = expect_ok(
        ts.put(&topic_path, alice.bearer(), &json!({ "topic": secret }))
            .await,
    );
    let first_id = first["event_id"].as_str().unwrap().to_owned();
    let second = expect_ok(
        ts.put(
            &topic_path,
            alice.bearer(),
            &json!({ "topic": "public plans" }),
        )
        .await,
    );
    let second_id = second["event_id"].as_str().unwrap().to_owned();
    let second_path = room_path(&room_id, &format!("/event/{}", enc(&second_id)));
    let before = expect_ok(ts.get(&second_path, alice.bearer()).await);
    assert_eq!(before["unsigned"]["prev_content"]["topic"], json!(secret));
    ts.stop().await;
    assert!(files_contain(&ts.config().database_path, secret.as_bytes()));
    ts.restart().await;

    expect_ok(
        ts.put(
            &room_path(&room_id, &format!("/redact/{}/r1", enc(&first_id))),
            alice.bearer(),
            &json!({}),
        )
        .await,
    );
    let after = expect_ok(ts.get(&second_path, alice.bearer()).await);
    assert_eq!(after["content"]["topic"], "public plans");
    assert_eq!(after["unsigned"]["prev_content"], json!({}), "{after}");
    assert_eq!(after["unsigned"]["replaces_state"], json!(first_id));
    let filter = enc(r#"{"room":{"timeline":{"limit":50}}}"#);
    let synced = expect_ok(
        ts.get(
            &format!("/_matrix/client/v3/sync?filter={filter}"),
            alice.bearer(),
        )
        .await,
    );
    assert!(
        synced["rooms"]["join"][&room_id]["timeline"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event_id"] == json!(second_id)),
        "{synced}"
    );
    assert!(!synced.to_string().contains(&secret), "{synced}");
    ts.stop().await;
    assert!(
        !files_contain(&ts.config().database_path, secret.as_bytes()),
        "the redacted topic is still in the database files"
    );
    ts.restart().await;
    ts.shutdown().await;
}

/// Room version 12: additional creators have unlimited power without being listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v12_additional_creators_are_privileged() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let carol = ts.register_open("carol", "carol-password").await;
    let room_id = create_room(
        &ts,
        &alice,
        json!({ "preset": "public_chat", "creation_content": { "additional_creators": [bob.user_id] } }),
    )
    .await;
    for who in [&bob, &carol] {
        expect_ok(
            ts.post(&room_path(&room_id, "/join"), who.bearer(), &json!({}))
                .await,
        );
    }
    let power = expect_ok(
        ts.get(
            &room_path(&room_id, "/state/m.room.power_levels/"),
            bob.bearer(),
        )
        .await,
    );
    assert!(
        power["users"].get(&bob.user_id).is_none(),
        "creators are not listed: {power}"
    );
    // Bob, a creator, may change the name; Carol may not; and nobody can demote Bob.
    expect_ok(
        ts.put(
            &room_path(&room_id, "/state/m.room.name/"),
            bob.bearer(),
            &json!({ "name": "bob's" }),
        )
        .await,
    );
    let denied = ts
        .put(
            &room_path(&room_id, "/state/m.room.name/"),
            carol.bearer(),
            &json!({ "name": "carol's" }),
        )
        .await;
    assert_errcode(&denied, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let mut demote = power.clone();
    demote["users"][&bob.user_id] = json!(0);
    let demoted = ts
        .put(
            &room_path(&room_id, "/state/m.room.power_levels/"),
            alice.bearer(),
            &demote,
        )
        .await;
    assert_eq!(
        demoted.0,
        StatusCode::FORBIDDEN,
        "creators cannot be listed in power levels: {demoted:?}"
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_state_keys_are_bad_requests() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let room_id = create_room(&ts, &alice, json!({})).await;
    let resp = ts
        .put(
            &room_path(&room_id, "/state/m.room.member/not-a-user-id"),
            alice.bearer(),
            &json!({ "membership": "join" }),
        )
        .await;
    assert_eq!(resp.0, StatusCode::BAD_REQUEST, "{resp:?}");
    let resp = ts
        .put(
            &room_path(&room_id, "/state/m.room.name/"),
            alice.bearer(),
            &json!("not an object"),
        )
        .await;
    assert_eq!(resp.0, StatusCode::BAD_REQUEST, "{resp:?}");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_rooms_created_at_once_get_distinct_ids() {
    // In room versions with hash-derived room IDs, two identical create events made in the same
    // millisecond would be the same event: the server must still make two rooms.
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let body = json!({ "preset": "public_chat", "name": "same" });
    let creations =
        (0..64).map(|_| ts.post("/_matrix/client/v3/createRoom", alice.bearer(), &body));
    let mut ids = std::collections::HashSet::new();
    for created in futures_util::future::join_all(creations).await {
        let body = expect_ok(created);
        ids.insert(body["room_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 64);
    ts.shutdown().await;
}
