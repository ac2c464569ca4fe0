//! What administrators do to rooms and accounts beyond blocking: purging old history, shutting
//! a room down and purging it from the database, erasing a leaver's messages — through the
//! console and through Synapse's admin API (room state, messages, deletion with status,
//! forward extremities, force-join, make-room-admin). Purges are checked on disk: the
//! servers run with `db_compression = false` so the files can be searched for the text.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const ADMIN: &str = "/_synapse/admin";

async fn uncompressed_server() -> TestServer {
    TestServer::start_with(|cfg| {
        cfg.allow_registration = true;
        cfg.registration_token = None;
        cfg.db_compression = false;
    })
    .await
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Milliseconds since the epoch as an RFC 3339 date to the second (UTC).
fn rfc3339(ms: u64) -> String {
    conclave_bench::rfc3339(UNIX_EPOCH + Duration::from_millis(ms))
}

fn bodies(page: &Value) -> Vec<String> {
    page["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect()
}

async fn event_status(ts: &TestServer, who: &Session, room: &str, event_id: &str) -> StatusCode {
    ts.get(
        &room_path(room, &format!("/event/{}", enc(event_id))),
        who.bearer(),
    )
    .await
    .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purging_history_frees_old_messages_and_keeps_the_room_working() {
    let mut ts = uncompressed_server().await;
    let socket = ts.config().database_path.join("admin.sock");
    ts.register_open("it", "it-password").await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let room = create_room(
        &ts,
        &alice,
        json!({ "preset": "public_chat", "name": "Archive", "topic": "kept" }),
    )
    .await;
    expect_ok(
        ts.post(&room_path(&room, "/join"), bob.bearer(), &json!({}))
            .await,
    );
    let secret = format!("WALRUS{}old", std::process::id());
    let mut old = Vec::new();
    for i in 0..5 {
        old.push(
            send_text_id(
                &ts,
                &alice,
                &room,
                &format!("o{i}"),
                &format!("{secret} {i}"),
            )
            .await,
        );
    }
    // The cut-off: the next whole second; newer messages are sent once it has passed.
    let cut = (now_ms() / 1000 + 1) * 1000;
    tokio::time::sleep(Duration::from_millis(cut + 50 - now_ms())).await;
    let mut new = Vec::new();
    for i in 0..3 {
        new.push(send_text_id(&ts, &bob, &room, &format!("n{i}"), &format!("recent {i}")).await);
    }

    let (code, out, err) = console(
        &socket,
        &["rooms", "purge-history", &room, "--before", &rfc3339(cut)],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Purged 5 message(s)"), "{out}");

    // Old messages are gone for everyone; state and newer messages stay.
    for event in &old {
        assert_eq!(
            event_status(&ts, &bob, &room, event).await,
            StatusCode::NOT_FOUND
        );
    }
    for event in &new {
        assert_eq!(event_status(&ts, &bob, &room, event).await, StatusCode::OK);
    }
    let history = expect_ok(
        ts.get(&room_path(&room, "/messages?dir=b&limit=50"), bob.bearer())
            .await,
    );
    assert_eq!(bodies(&history), ["recent 2", "recent 1", "recent 0"]);
    assert!(
        history["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.room.create"),
        "state events stay: {history}"
    );
    let search = expect_ok(
        ts.post(
            "/_matrix/client/v3/search",
            alice.bearer(),
            &json!({ "search_categories": { "room_events": { "search_term": secret } } }),
        )
        .await,
    );
    assert_eq!(
        search["search_categories"]["room_events"]["count"], 0,
        "{search}"
    );
    let name = expect_ok(
        ts.get(&room_path(&room, "/state/m.room.name/"), bob.bearer())
            .await,
    );
    assert_eq!(name["name"], "Archive");
    // The room works as before.
    send_text_id(&ts, &alice, &room, "after", "still here").await;
    let sync = expect_ok(
        ts.get("/_matrix/client/v3/sync?timeout=0", bob.bearer())
            .await,
    );
    assert!(sync["rooms"]["join"][&room].is_object(), "{sync}");

    // And the text has left the disk (search index included, in lower case) — from the data
    // files at once; RocksDB's MANIFEST log, which notes the first and last key of each file,
    // is rewritten at the next start.
    ts.stop().await;
    let db = ts.config().database_path;
    assert!(
        !data_files_contain(&db, secret.as_bytes()),
        "purged text on disk"
    );
    assert!(
        !data_files_contain(&db, secret.to_lowercase().as_bytes()),
        "purged words left in the search index"
    );
    ts.restart().await;
    ts.stop().await;
    assert!(!files_contain(&db, secret.to_lowercase().as_bytes()));
    ts.restart().await;
    assert_eq!(
        event_status(&ts, &bob, &room, &new[0]).await,
        StatusCode::OK
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_shut_down_with_purge_is_gone_from_the_database() {
    let mut ts = uncompressed_server().await;
    let socket = ts.config().database_path.join("admin.sock");
    let it = ts.register_open("it", "it-password").await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let room = create_room(
        &ts,
        &alice,
        json!({ "preset": "public_chat", "room_alias_name": "leak" }),
    )
    .await;
    expect_ok(
        ts.post(&room_path(&room, "/join"), bob.bearer(), &json!({}))
            .await,
    );
    let secret = format!("NARWHAL{}gone", std::process::id());
    let secret_event = send_text_id(&ts, &alice, &room, "s1", &secret).await;
    expect_ok(
        ts.post(
            &room_path(&room, &format!("/receipt/m.read/{}", enc(&secret_event))),
            bob.bearer(),
            &json!({}),
        )
        .await,
    );
    let since = expect_ok(
        ts.get("/_matrix/client/v3/sync?timeout=0", bob.bearer())
            .await,
    )["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();

    let (code, out, err) = console(
        &socket,
        &["rooms", "shutdown", "#leak:localhost", "--purge"],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 local member(s) removed"), "{out}");
    assert!(out.contains("1 alias(es) removed"), "{out}");
    assert!(out.contains("Purged from the database"), "{out}");

    // The room is unknown: to the admin API, to the alias, to a join.
    let resp = ts
        .get(&format!("{ADMIN}/v1/rooms/{}", enc(&room)), it.bearer())
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let resp = ts
        .get(
            &format!(
                "/_matrix/client/v3/directory/room/{}",
                enc("#leak:localhost")
            ),
            None,
        )
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let resp = ts
        .post(&room_path(&room, "/join"), alice.bearer(), &json!({}))
        .await;
    assert!(resp.0.is_client_error(), "{:?}", resp.1);
    // Bob's client learns that he left, though the room's events are gone.
    let sync = expect_ok(
        ts.get(
            &format!("/_matrix/client/v3/sync?timeout=0&since={since}"),
            bob.bearer(),
        )
        .await,
    );
    assert!(sync["rooms"]["leave"][&room].is_object(), "{sync}");
    let joined = expect_ok(
        ts.get("/_matrix/client/v3/joined_rooms", bob.bearer())
            .await,
    );
    assert!(!joined.to_string().contains(&room), "{joined}");
    // Other rooms are untouched.
    let other = create_room(&ts, &alice, json!({})).await;
    send_text_id(&ts, &alice, &other, "o1", "unrelated").await;

    ts.stop().await;
    assert!(
        !files_contain(&ts.config().database_path, secret.as_bytes()),
        "the purged room's text is still on disk"
    );
    ts.restart().await;
    let history = expect_ok(
        ts.get(
            &room_path(&other, "/messages?dir=b&limit=5"),
            alice.bearer(),
        )
        .await,
    );
    assert_eq!(bodies(&history), ["unrelated"]);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_a_leaver_redacts_their_messages() {
    let ts = TestServer::start_open().await;
    let socket = ts.config().database_path.join("admin.sock");
    let it = ts.register_open("it", "it-password").await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let room = create_room(&ts, &alice, json!({ "preset": "public_chat" })).await;
    expect_ok(
        ts.post(&room_path(&room, "/join"), bob.bearer(), &json!({}))
            .await,
    );
    let mut sent = Vec::new();
    for i in 0..3 {
        sent.push(send_text_id(&ts, &bob, &room, &format!("b{i}"), &format!("bob says {i}")).await);
    }
    let kept = send_text_id(&ts, &alice, &room, "a1", "alice stays").await;
    // A room bob already left: out of his reach.
    let left = create_room(&ts, &alice, json!({ "preset": "public_chat" })).await;
    expect_ok(
        ts.post(&room_path(&left, "/join"), bob.bearer(), &json!({}))
            .await,
    );
    send_text_id(&ts, &bob, &left, "l1", "said before leaving").await;
    expect_ok(
        ts.post(&room_path(&left, "/leave"), bob.bearer(), &json!({}))
            .await,
    );

    let (code, out, err) = console(&socket, &["users", "deactivate", "bob", "--erase"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Redacted 3 message(s)"), "{out}");
    assert!(
        out.contains("1 message(s) in rooms the user had already left"),
        "{out}"
    );

    for event in &sent {
        let seen = expect_ok(
            ts.get(
                &room_path(&room, &format!("/event/{}", enc(event))),
                alice.bearer(),
            )
            .await,
        );
        assert_eq!(seen["content"], json!({}), "{seen}");
        assert_eq!(
            seen["unsigned"]["redacted_because"]["sender"], "@bob:localhost",
            "{seen}"
        );
    }
    let alice_message = expect_ok(
        ts.get(
            &room_path(&room, &format!("/event/{}", enc(&kept))),
            alice.bearer(),
        )
        .await,
    );
    assert_eq!(alice_message["content"]["body"], "alice stays");
    let members = expect_ok(
        ts.get(&room_path(&room, "/joined_members"), alice.bearer())
            .await,
    );
    assert!(
        members["joined"].get("@bob:localhost").is_none(),
        "{members}"
    );
    let user = expect_ok(
        ts.get(&format!("{ADMIN}/v2/users/@bob:localhost"), it.bearer())
            .await,
    );
    assert_eq!(user["erased"], true, "{user}");
    assert_eq!(user["deactivated"], true, "{user}");
    let resp = ts.login_raw("bob", "bob-password", json!({})).await;
    assert_eq!(resp.0, StatusCode::FORBIDDEN, "{:?}", resp.1);

    // The client's own deactivation with `erase`, and Synapse's admin API with `erase`.
    let carol = ts.register_open("carol", "carol-password").await;
    expect_ok(
        ts.post(&room_path(&room, "/join"), carol.bearer(), &json!({}))
            .await,
    );
    let carols = send_text_id(&ts, &carol, &room, "c1", "carol was here").await;
    let resp = ts
        .uia_password(
            reqwest::Method::POST,
            "/_matrix/client/v3/account/deactivate",
            &carol,
            "carol-password",
            json!({ "erase": true }),
        )
        .await;
    assert_eq!(resp.0, StatusCode::OK, "{:?}", resp.1);
    let seen = expect_ok(
        ts.get(
            &room_path(&room, &format!("/event/{}", enc(&carols))),
            alice.bearer(),
        )
        .await,
    );
    assert_eq!(seen["content"], json!({}), "{seen}");

    let dave = ts.register_open("dave", "dave-password").await;
    expect_ok(
        ts.post(&room_path(&room, "/join"), dave.bearer(), &json!({}))
            .await,
    );
    let daves = send_text_id(&ts, &dave, &room, "d1", "dave was here").await;
    let resp = ts
        .post(
            &format!("{ADMIN}/v1/deactivate/@dave:localhost"),
            alice.bearer(),
            &json!({ "erase": true }),
        )
        .await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    expect_ok(
        ts.post(
            &format!("{ADMIN}/v1/deactivate/@dave:localhost"),
            it.bearer(),
            &json!({ "erase": true }),
        )
        .await,
    );
    let seen = expect_ok(
        ts.get(
            &room_path(&room, &format!("/event/{}", enc(&daves))),
            alice.bearer(),
        )
        .await,
    );
    assert_eq!(seen["content"], json!({}), "{seen}");
    let (_, audit, _) = console(&socket, &["audit", "list"]).await;
    assert!(audit.contains("deactivate bob --erase"), "{audit}");
    assert!(
        audit.contains("v1/deactivate/@dave:localhost (erase: true)"),
        "{audit}"
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synapse_admin_api_reads_moderates_and_deletes_rooms() {
    let ts = TestServer::start_open().await;
    let it = ts.register_open("it", "it-password").await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let room = create_room(
        &ts,
        &alice,
        json!({ "preset": "private_chat", "name": "Secret plans", "room_alias_name": "plans" }),
    )
    .await;
    for i in 0..4 {
        send_text_id(&ts, &alice, &room, &format!("m{i}"), &format!("plan {i}")).await;
    }
    let r = enc(&room);

    // Every endpoint refuses a non-administrator.
    for (method, path, body) in [
        ("GET", format!("{ADMIN}/v1/rooms/{r}/state"), None),
        ("GET", format!("{ADMIN}/v1/rooms/{r}/messages"), None),
        (
            "GET",
            format!("{ADMIN}/v1/rooms/{r}/forward_extremities"),
            None,
        ),
        (
            "DELETE",
            format!("{ADMIN}/v1/rooms/{r}/forward_extremities"),
            None,
        ),
        ("DELETE", format!("{ADMIN}/v1/rooms/{r}"), Some(json!({}))),
        ("DELETE", format!("{ADMIN}/v2/rooms/{r}"), Some(json!({}))),
        ("GET", format!("{ADMIN}/v2/rooms/{r}/delete_status"), None),
        ("GET", format!("{ADMIN}/v2/rooms/delete_status/abc"), None),
        (
            "POST",
            format!("{ADMIN}/v1/join/{r}"),
            Some(json!({ "user_id": bob.user_id })),
        ),
        (
            "POST",
            format!("{ADMIN}/v1/rooms/{r}/make_room_admin"),
            Some(json!({})),
        ),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = ts.request(method, &path, bob.bearer(), body.as_ref()).await;
        assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    }
    let unknown = enc("!nowhere:localhost");
    let resp = ts
        .get(&format!("{ADMIN}/v1/rooms/{unknown}/state"), it.bearer())
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    // State and messages as an administrator who is not in the room.
    let state = expect_ok(
        ts.get(&format!("{ADMIN}/v1/rooms/{r}/state"), it.bearer())
            .await,
    );
    assert!(
        state["state"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Secret plans"),
        "{state}"
    );
    let first = expect_ok(
        ts.get(
            &format!("{ADMIN}/v1/rooms/{r}/messages?limit=100"),
            it.bearer(),
        )
        .await,
    );
    assert_eq!(
        first["chunk"][0]["type"], "m.room.create",
        "forwards by default"
    );
    assert_eq!(bodies(&first), ["plan 0", "plan 1", "plan 2", "plan 3"]);
    let newest = expect_ok(
        ts.get(
            &format!("{ADMIN}/v1/rooms/{r}/messages?dir=b&limit=2"),
            it.bearer(),
        )
        .await,
    );
    assert_eq!(bodies(&newest), ["plan 3", "plan 2"]);
    let end = newest["end"].as_str().expect("end").to_owned();
    let older = expect_ok(
        ts.get(
            &format!("{ADMIN}/v1/rooms/{r}/messages?dir=b&limit=2&from={end}"),
            it.bearer(),
        )
        .await,
    );
    assert_eq!(bodies(&older), ["plan 1", "plan 0"]);
    let filter = enc(r#"{"types":["m.room.name"]}"#);
    let filtered = expect_ok(
        ts.get(
            &format!("{ADMIN}/v1/rooms/{r}/messages?limit=100&filter={filter}"),
            it.bearer(),
        )
        .await,
    );
    assert_eq!(filtered["chunk"].as_array().unwrap().len(), 1, "{filtered}");

    // Forward extremities: a local room has one, and deleting "extra" ones deletes none.
    let extremities = expect_ok(
        ts.get(
            &format!("{ADMIN}/v1/rooms/{r}/forward_extremities"),
            it.bearer(),
        )
        .await,
    );
    assert_eq!(extremities["count"], 1, "{extremities}");
    assert!(extremities["results"][0]["event_id"].is_string());
    assert!(extremities["results"][0]["depth"].is_u64());
    let deleted = expect_ok(
        ts.request(
            reqwest::Method::DELETE,
            &format!("{ADMIN}/v1/rooms/{r}/forward_extremities"),
            it.bearer(),
            None,
        )
        .await,
    );
    assert_eq!(deleted["deleted"], 0);

    // Force-join bob into the invite-only room (by alias), then make him its admin.
    let joined = expect_ok(
        ts.post(
            &format!("{ADMIN}/v1/join/{}", enc("#plans:localhost")),
            it.bearer(),
            &json!({ "user_id": bob.user_id }),
        )
        .await,
    );
    assert_eq!(joined["room_id"], room);
    let members = expect_ok(
        ts.get(&room_path(&room, "/joined_members"), alice.bearer())
            .await,
    );
    assert!(members["joined"][&bob.user_id].is_object(), "{members}");
    expect_ok(
        ts.post(
            &format!("{ADMIN}/v1/rooms/{r}/make_room_admin"),
            it.bearer(),
            &json!({ "user_id": bob.user_id }),
        )
        .await,
    );
    let levels = expect_ok(
        ts.get(
            &room_path(&room, "/state/m.room.power_levels/"),
            bob.bearer(),
        )
        .await,
    );
    assert_eq!(levels["users"][&bob.user_id], 100, "{levels}");
    // Bob may now do what an admin does.
    expect_ok(
        ts.put(
            &room_path(&room, "/state/m.room.topic/"),
            bob.bearer(),
            &json!({ "topic": "bob runs this" }),
        )
        .await,
    );
    let resp = ts
        .post(
            &format!("{ADMIN}/v1/join/{r}"),
            it.bearer(),
            &json!({ "user_id": "@ghost:localhost" }),
        )
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    // Delete in the background (v2), moving the members to a new room; poll the status.
    let deletion = expect_ok(
        ts.request(
            reqwest::Method::DELETE,
            &format!("{ADMIN}/v2/rooms/{r}"),
            it.bearer(),
            Some(&json!({
                "new_room_user_id": it.user_id,
                "room_name": "Moved",
                "message": "Plans moved elsewhere",
                "block": true,
            })),
        )
        .await,
    );
    let delete_id = deletion["delete_id"]
        .as_str()
        .expect("delete_id")
        .to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        let status = expect_ok(
            ts.get(
                &format!("{ADMIN}/v2/rooms/delete_status/{delete_id}"),
                it.bearer(),
            )
            .await,
        );
        if status["status"] != "active" {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status["status"], "complete", "{status}");
    assert_eq!(status["room_id"], room);
    let report = &status["shutdown_room"];
    let mut kicked: Vec<&str> = report["kicked_users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    kicked.sort_unstable();
    assert_eq!(kicked, ["@alice:localhost", "@bob:localhost"], "{status}");
    assert_eq!(report["local_aliases"], json!(["#plans:localhost"]));
    let new_room = report["new_room_id"].as_str().expect("new room").to_owned();
    let by_room = expect_ok(
        ts.get(&format!("{ADMIN}/v2/rooms/{r}/delete_status"), it.bearer())
            .await,
    );
    assert_eq!(by_room["results"][0]["delete_id"], delete_id.as_str());
    // The room is purged (the default), the members are in the new room with the message.
    let resp = ts.get(&format!("{ADMIN}/v1/rooms/{r}"), it.bearer()).await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let moved = expect_ok(
        ts.get(
            &room_path(&new_room, "/messages?dir=b&limit=20"),
            alice.bearer(),
        )
        .await,
    );
    assert!(
        bodies(&moved).contains(&"Plans moved elsewhere".to_owned()),
        "{moved}"
    );
    let resp = ts
        .get(
            &format!("{ADMIN}/v2/rooms/delete_status/nonsense"),
            it.bearer(),
        )
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    // The synchronous v1 deletion, without purge: the room stays, empty of local members.
    let other = create_room(&ts, &alice, json!({ "preset": "public_chat" })).await;
    let shut = expect_ok(
        ts.request(
            reqwest::Method::DELETE,
            &format!("{ADMIN}/v1/rooms/{}", enc(&other)),
            it.bearer(),
            Some(&json!({ "purge": false, "block": true })),
        )
        .await,
    );
    assert_eq!(shut["kicked_users"], json!(["@alice:localhost"]), "{shut}");
    assert_eq!(shut["new_room_id"], Value::Null);
    let details = expect_ok(
        ts.get(&format!("{ADMIN}/v1/rooms/{}", enc(&other)), it.bearer())
            .await,
    );
    assert_eq!(details["joined_members"], 0, "{details}");
    assert_eq!(details["blocked"], true, "{details}");
    let socket = ts.config().database_path.join("admin.sock");
    let (_, audit, _) = console(&socket, &["audit", "list", "--limit", "50"]).await;
    assert!(audit.contains(&format!("v2/rooms/{room}")), "{audit}");
    assert!(audit.contains("make_room_admin"), "{audit}");
    ts.shutdown().await;
}
