//! Persistence across restarts, and exclusive use of the database.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_restart() {
    let mut ts = TestServer::start().await;
    let token = ts.bootstrap_token().expect("bootstrap token");
    let admin = Session::from_body(&expect_ok(
        ts.register(
            json!({
                "username": "alice",
                "password": "alice-password",
                "device_id": "DESKTOP",
                "initial_device_display_name": "Desktop",
            }),
            registration_token_auth(&token),
        )
        .await,
    ));
    let phone = ts.login("alice", "alice-password").await;
    let gone = ts.login("alice", "alice-password").await;
    expect_ok(
        ts.post("/_matrix/client/v3/logout", gone.bearer(), &json!({}))
            .await,
    );

    let user = enc(&admin.user_id);
    let displayname = format!("/_matrix/client/v3/profile/{user}/displayname");
    let custom = format!("/_matrix/client/v3/profile/{user}/org.example.job_title");
    let global = format!("/_matrix/client/v3/user/{user}/account_data/org.example.settings");
    let room = format!(
        "/_matrix/client/v3/user/{user}/rooms/{}/account_data/org.example.room",
        enc("!room:localhost")
    );
    let tags = format!(
        "/_matrix/client/v3/user/{user}/rooms/{}/tags",
        enc("!room:localhost")
    );
    let rule = "/_matrix/client/v3/pushrules/global/override/persisted";

    expect_ok(
        ts.put(
            &displayname,
            admin.bearer(),
            &json!({ "displayname": "Alice" }),
        )
        .await,
    );
    expect_ok(
        ts.put(
            &custom,
            admin.bearer(),
            &json!({ "org.example.job_title": "Engineer" }),
        )
        .await,
    );
    expect_ok(
        ts.put(&global, admin.bearer(), &json!({ "theme": "dark" }))
            .await,
    );
    expect_ok(
        ts.put(&room, admin.bearer(), &json!({ "pinned": true }))
            .await,
    );
    expect_ok(
        ts.put(
            &format!("{tags}/u.work"),
            admin.bearer(),
            &json!({ "order": 0.5 }),
        )
        .await,
    );
    expect_ok(
        ts.put(
            rule,
            admin.bearer(),
            &json!({
                "actions": ["notify"],
                "conditions": [{ "kind": "event_match", "key": "content.body", "pattern": "x" }],
            }),
        )
        .await,
    );
    let filter = expect_ok(
        ts.post(
            &format!("/_matrix/client/v3/user/{user}/filter"),
            admin.bearer(),
            &json!({ "room": { "timeline": { "limit": 7 } } }),
        )
        .await,
    );
    let filter_id = filter["filter_id"].as_str().expect("filter_id").to_owned();

    ts.restart().await;

    assert_eq!(
        ts.bootstrap_token(),
        None,
        "users exist, so no bootstrap token"
    );
    let resp = ts.token_validity(&token).await;
    assert!(
        resp.0 == StatusCode::FORBIDDEN || resp.1["valid"] == json!(false),
        "used bootstrap token stays used: {} {}",
        resp.0,
        resp.1
    );

    // Sessions.
    let who = expect_ok(ts.whoami(&admin.access_token).await);
    assert_eq!(who["user_id"], json!("@alice:localhost"));
    assert_eq!(who["device_id"], json!("DESKTOP"));
    ts.assert_token_valid(&phone.access_token).await;
    ts.assert_token_rejected(&gone.access_token).await;

    // Devices.
    let mut devices = ts.device_ids(&admin).await;
    devices.sort_unstable();
    let mut expected = vec!["DESKTOP".to_owned(), phone.device_id.clone()];
    expected.sort_unstable();
    assert_eq!(devices, expected);
    let desktop = expect_ok(ts.get(&format!("{DEVICES}/DESKTOP"), admin.bearer()).await);
    assert_eq!(desktop["display_name"], json!("Desktop"));

    // Account: password, username taken.
    ts.login("alice", "alice-password").await;
    let resp = ts.login_raw("alice", "wrong", json!({})).await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = ts.username_available("alice").await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_USER_IN_USE");

    // Profile.
    assert_eq!(
        expect_ok(ts.get(&displayname, admin.bearer()).await)["displayname"],
        json!("Alice")
    );
    assert_eq!(
        expect_ok(ts.get(&custom, admin.bearer()).await)["org.example.job_title"],
        json!("Engineer")
    );

    // Account data, tags, push rules, filters.
    assert_eq!(
        expect_ok(ts.get(&global, admin.bearer()).await),
        json!({ "theme": "dark" })
    );
    assert_eq!(
        expect_ok(ts.get(&room, admin.bearer()).await),
        json!({ "pinned": true })
    );
    assert_eq!(
        expect_ok(ts.get(&tags, admin.bearer()).await)["tags"]["u.work"]["order"],
        json!(0.5)
    );
    let stored_rule = expect_ok(ts.get(rule, admin.bearer()).await);
    assert_eq!(stored_rule["actions"], json!(["notify"]));
    let stored_filter = expect_ok(
        ts.get(
            &format!("/_matrix/client/v3/user/{user}/filter/{}", enc(&filter_id)),
            admin.bearer(),
        )
        .await,
    );
    assert_eq!(stored_filter["room"]["timeline"]["limit"], json!(7));

    // Registration remains closed after the bootstrap token was used.
    let resp = ts
        .post(
            REGISTER,
            None,
            &json!({ "username": "late", "password": "late-password" }),
        )
        .await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_after_restart_also_persist() {
    let mut ts = TestServer::start().await;
    let admin = ts.register_first_admin("alice", "alice-password").await;
    ts.restart().await;

    // Write after the first restart, then restart again.
    let user = enc(&admin.user_id);
    let path = format!("/_matrix/client/v3/user/{user}/account_data/org.example.second");
    expect_ok(ts.put(&path, admin.bearer(), &json!({ "n": 2 })).await);
    let later = ts.login("alice", "alice-password").await;
    ts.restart().await;

    assert_eq!(
        expect_ok(ts.get(&path, admin.bearer()).await),
        json!({ "n": 2 })
    );
    ts.assert_token_valid(&later.access_token).await;
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_instance_on_same_database_fails() {
    let ts = TestServer::start().await;
    let admin = ts.register_first_admin("alice", "alice-password").await;

    // The timeout only guards against a hang; it is not a speed requirement.
    let attempt = tokio::time::timeout(Duration::from_secs(10), ts.start_second_instance())
        .await
        .expect("starting a second instance on a locked database must not hang");
    if let Ok(second) = attempt {
        second.shutdown().await;
        panic!("a second server must not open a database that is already in use");
    }

    // The first server is unaffected.
    ts.assert_token_valid(&admin.access_token).await;
    let user = enc(&admin.user_id);
    let path = format!("/_matrix/client/v3/user/{user}/account_data/org.example.after");
    expect_ok(ts.put(&path, admin.bearer(), &json!({ "ok": true })).await);
    assert_eq!(
        expect_ok(ts.get(&path, admin.bearer()).await),
        json!({ "ok": true })
    );
    ts.shutdown().await;
}

/// Events with relations are marked so that rendering the others skips a scan. A database from
/// before the markers gets them at start: its threads keep their bundled summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relation_markers_are_rebuilt_for_older_databases() {
    let mut ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let room = create_room(&ts, &alice, json!({ "preset": "private_chat" })).await;
    let root = send_text_id(&ts, &alice, &room, "root", "a thread").await;
    let reply = json!({
        "msgtype": "m.text",
        "body": "a reply",
        "m.relates_to": { "rel_type": "m.thread", "event_id": root },
    });
    expect_ok(
        ts.put(
            &room_path(&room, "/send/m.room.message/reply"),
            alice.bearer(),
            &reply,
        )
        .await,
    );
    let event_path = room_path(&room, &format!("/event/{}", enc(&root)));
    let thread_count =
        |event: &serde_json::Value| event["unsigned"]["m.relations"]["m.thread"]["count"].clone();
    let before = expect_ok(ts.get(&event_path, alice.bearer()).await);
    assert_eq!(thread_count(&before), 1, "{before}");

    let db_path = ts.config().database_path.clone();
    ts.stop().await;
    let held = wipe_indexes(
        &db_path,
        &["eventid_hasrelations"],
        &[b"relation_markers_built"],
    );
    assert_eq!(held, [1]);
    ts.restart().await;
    let after = expect_ok(ts.get(&event_path, alice.bearer()).await);
    assert_eq!(thread_count(&after), 1, "{after}");
    ts.shutdown().await;
}
