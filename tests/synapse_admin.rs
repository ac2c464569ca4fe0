//! Synapse's admin API (`/_synapse/admin/`), as the synapse-admin web UI and provisioning
//! scripts call it: shapes, paging, 403 for non-administrators, 404 for unknown users, and the
//! audit log of every change.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ADMIN: &str = "/_synapse/admin";

async fn users_page(ts: &TestServer, admin: &Session, query: &str) -> Value {
    expect_ok(
        ts.get(&format!("{ADMIN}/v2/users?{query}"), admin.bearer())
            .await,
    )
}

fn names(page: &Value) -> Vec<String> {
    page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_listed_paged_read_and_provisioned() {
    let ts = TestServer::start_open().await;
    let admin = ts.register_open("admin", "admin-password").await;
    let mut people = Vec::new();
    for name in ["ann", "ben", "cat", "dan"] {
        people.push(ts.register_open(name, &format!("{name}-password")).await);
    }

    let version = expect_ok(ts.get(&format!("{ADMIN}/v1/server_version"), None).await);
    assert!(
        version["server_version"]
            .as_str()
            .unwrap()
            .starts_with("Conclave ")
    );

    // Paging with Synapse's from / limit / next_token / total; the bot is not listed.
    let first = users_page(&ts, &admin, "limit=2").await;
    assert_eq!(first["total"], 5, "{first}");
    assert_eq!(names(&first), ["@admin:localhost", "@ann:localhost"]);
    assert_eq!(first["next_token"], "2");
    let last = users_page(&ts, &admin, "from=4&limit=2").await;
    assert_eq!(names(&last), ["@dan:localhost"]);
    assert!(last.get("next_token").is_none(), "{last}");
    let backwards = users_page(&ts, &admin, "dir=b&limit=1").await;
    assert_eq!(names(&backwards), ["@dan:localhost"]);
    let admins = users_page(&ts, &admin, "admins=true").await;
    assert_eq!(names(&admins), ["@admin:localhost"]);
    let named = users_page(&ts, &admin, "name=ca").await;
    assert_eq!(names(&named), ["@cat:localhost"]);
    let resp = ts
        .get(&format!("{ADMIN}/v2/users?dir=sideways"), admin.bearer())
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");

    // One user; unknown and remote users.
    let ann = expect_ok(
        ts.get(&format!("{ADMIN}/v2/users/@ann:localhost"), admin.bearer())
            .await,
    );
    assert_eq!(ann["name"], "@ann:localhost");
    assert_eq!(ann["displayname"], "ann");
    // Seconds here, milliseconds in the list: as Synapse.
    let created = ann["creation_ts"].as_u64().expect("creation_ts");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        created <= now && now - created < 600,
        "seconds, just now: {created}"
    );
    let listed = users_page(&ts, &admin, "name=ann").await;
    let listed_ms = listed["users"][0]["creation_ts"].as_u64().unwrap();
    assert_eq!(listed_ms / 1000, created, "{listed}");
    assert_eq!(
        (ann["admin"].clone(), ann["deactivated"].clone()),
        (json!(false), json!(false))
    );
    let resp = ts
        .get(
            &format!("{ADMIN}/v2/users/@nobody:localhost"),
            admin.bearer(),
        )
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let resp = ts
        .get(
            &format!("{ADMIN}/v2/users/@x:elsewhere.org"),
            admin.bearer(),
        )
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");

    // PUT creates (201), then modifies (200).
    let created = ts
        .put(
            &format!("{ADMIN}/v2/users/@eve:localhost"),
            admin.bearer(),
            &json!({ "password": "eve-password", "displayname": "Eve E", "threepids": [] }),
        )
        .await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    assert_eq!(created.1["displayname"], "Eve E");
    let eve = ts.login("eve", "eve-password").await;
    let modified = expect_ok(
        ts.put(
            &format!("{ADMIN}/v2/users/@eve:localhost"),
            admin.bearer(),
            &json!({ "password": "eve-new", "admin": true }),
        )
        .await,
    );
    assert_eq!(modified["admin"], true);
    ts.assert_token_rejected(&eve.access_token).await;
    ts.login("eve", "eve-new").await;
    let resp = ts
        .put(
            &format!("{ADMIN}/v2/users/@frank:localhost"),
            admin.bearer(),
            &json!({}),
        )
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_MISSING_PARAM");

    // The admin flag.
    let flag = expect_ok(
        ts.get(
            &format!("{ADMIN}/v1/users/@ben:localhost/admin"),
            admin.bearer(),
        )
        .await,
    );
    assert_eq!(flag, json!({ "admin": false }));
    expect_ok(
        ts.put(
            &format!("{ADMIN}/v1/users/@ben:localhost/admin"),
            admin.bearer(),
            &json!({ "admin": true }),
        )
        .await,
    );
    let flag = expect_ok(
        ts.get(
            &format!("{ADMIN}/v1/users/@ben:localhost/admin"),
            admin.bearer(),
        )
        .await,
    );
    assert_eq!(flag, json!({ "admin": true }));
    let resp = ts
        .put(
            &format!("{ADMIN}/v1/users/@admin:localhost/admin"),
            admin.bearer(),
            &json!({ "admin": false }),
        )
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");

    // Password reset, deactivation.
    let cat = &people[2];
    expect_ok(
        ts.post(
            &format!("{ADMIN}/v1/reset_password/@cat:localhost"),
            admin.bearer(),
            &json!({ "new_password": "cat-new", "logout_devices": true }),
        )
        .await,
    );
    ts.assert_token_rejected(&cat.access_token).await;
    ts.login("cat", "cat-new").await;
    let dan = &people[3];
    let room = create_room(&ts, dan, json!({})).await;
    let joined = expect_ok(
        ts.get(
            &format!("{ADMIN}/v1/users/@dan:localhost/joined_rooms"),
            admin.bearer(),
        )
        .await,
    );
    assert_eq!(joined, json!({ "total": 1, "joined_rooms": [room] }));
    let done = expect_ok(
        ts.post(
            &format!("{ADMIN}/v1/deactivate/@dan:localhost"),
            admin.bearer(),
            &json!({ "erase": false }),
        )
        .await,
    );
    assert_eq!(done["id_server_unbind_result"], "success");
    let dan_now = expect_ok(
        ts.get(&format!("{ADMIN}/v2/users/@dan:localhost"), admin.bearer())
            .await,
    );
    assert_eq!(dan_now["deactivated"], true);
    assert!(!names(&users_page(&ts, &admin, "").await).contains(&"@dan:localhost".to_owned()));
    assert!(
        names(&users_page(&ts, &admin, "deactivated=true").await)
            .contains(&"@dan:localhost".to_owned())
    );

    // whois, Synapse's and the spec's.
    let whois = expect_ok(
        ts.get(&format!("{ADMIN}/v1/whois/@ann:localhost"), admin.bearer())
            .await,
    );
    assert_eq!(whois["user_id"], "@ann:localhost");
    assert!(
        whois["devices"][&people[0].device_id]["sessions"][0]["connections"].is_array(),
        "{whois}"
    );
    let own = expect_ok(
        ts.get(
            "/_matrix/client/v3/admin/whois/@ann:localhost",
            people[0].bearer(),
        )
        .await,
    );
    assert_eq!(own["user_id"], "@ann:localhost");
    let resp = ts
        .get(
            "/_matrix/client/v3/admin/whois/@ben:localhost",
            people[0].bearer(),
        )
        .await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    // A server notice.
    let sent = expect_ok(
        ts.post(
            &format!("{ADMIN}/v1/send_server_notice"),
            admin.bearer(),
            &json!({ "user_id": "@ann:localhost", "content": { "msgtype": "m.text", "body": "Hi Ann" } }),
        )
        .await,
    );
    assert!(
        sent["event_id"].as_str().unwrap().starts_with('$'),
        "{sent}"
    );
    let sync = expect_ok(
        ts.get("/_matrix/client/v3/sync?timeout=0", people[0].bearer())
            .await,
    );
    assert!(sync.to_string().contains("Server notices"), "{sync}");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_server_administrators_may_call_it_and_changes_are_audited() {
    let ts = TestServer::start_open().await;
    let admin = ts.register_open("admin", "admin-password").await;
    let user = ts.register_open("user", "user-password").await;
    let calls: [(Method, &str, Value); 10] = [
        (Method::GET, "/v2/users", Value::Null),
        (Method::GET, "/v2/users/@admin:localhost", Value::Null),
        (
            Method::PUT,
            "/v2/users/@mallory:localhost",
            json!({ "password": "x", "admin": true }),
        ),
        (Method::POST, "/v1/deactivate/@admin:localhost", json!({})),
        (
            Method::POST,
            "/v1/reset_password/@admin:localhost",
            json!({ "new_password": "x" }),
        ),
        (Method::GET, "/v1/users/@admin:localhost/admin", Value::Null),
        (
            Method::PUT,
            "/v1/users/@user:localhost/admin",
            json!({ "admin": true }),
        ),
        (Method::GET, "/v1/whois/@admin:localhost", Value::Null),
        (
            Method::GET,
            "/v1/users/@admin:localhost/joined_rooms",
            Value::Null,
        ),
        (
            Method::POST,
            "/v1/send_server_notice",
            json!({ "user_id": "@admin:localhost", "content": { "body": "x" } }),
        ),
    ];
    for (method, path, body) in &calls {
        let body = (!body.is_null()).then_some(body);
        let resp = ts
            .request(
                method.clone(),
                &format!("{ADMIN}{path}"),
                user.bearer(),
                body,
            )
            .await;
        assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
        let resp = ts
            .request(method.clone(), &format!("{ADMIN}{path}"), None, body)
            .await;
        assert_errcode(&resp, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
    }
    // Nothing happened.
    assert_eq!(
        expect_ok(ts.username_available("mallory").await)["available"],
        true
    );
    ts.login("admin", "admin-password").await;
    let flag = expect_ok(
        ts.get(
            &format!("{ADMIN}/v1/users/@user:localhost/admin"),
            admin.bearer(),
        )
        .await,
    );
    assert_eq!(flag["admin"], false);

    // Changes by an administrator are audited, secrets left out.
    expect_ok(
        ts.post(
            &format!("{ADMIN}/v1/reset_password/@user:localhost"),
            admin.bearer(),
            &json!({ "new_password": "very-secret-word" }),
        )
        .await,
    );
    let socket = ts.config().database_path.join("admin.sock");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_conclave"))
        .args(["admin", "--socket"])
        .arg(&socket)
        .args(["audit", "list"])
        .output()
        .await
        .unwrap();
    let audit = String::from_utf8_lossy(&output.stdout);
    assert!(
        audit.contains("POST /_synapse/admin/v1/reset_password/@user:localhost"),
        "{audit}"
    );
    assert!(audit.contains("admin API from 127.0.0.1"), "{audit}");
    assert!(!audit.contains("very-secret-word"), "{audit}");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_reach_the_administrators() {
    let ts = TestServer::start_open().await;
    let admin = ts.register_open("admin", "admin-password").await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let room = create_room(
        &ts,
        &alice,
        json!({ "preset": "public_chat", "name": "Lobby" }),
    )
    .await;
    expect_ok(
        ts.post(&room_path(&room, "/join"), bob.bearer(), &json!({}))
            .await,
    );
    let rude = send_text_id(&ts, &bob, &room, "t1", "something rude").await;
    let private = create_room(&ts, &bob, json!({})).await;
    let hidden = send_text_id(&ts, &bob, &private, "t2", "elsewhere").await;

    // Element's "Report": an event, a room, a user.
    let report = |path: String, body: Value| {
        let ts = &ts;
        let token = alice.access_token.clone();
        async move { ts.post(&path, Some(&token), &body).await }
    };
    expect_ok(
        report(
            room_path(&room, &format!("/report/{}", enc(&rude))),
            json!({ "reason": "abusive", "score": -100 }),
        )
        .await,
    );
    let resp = report(
        room_path(&private, &format!("/report/{}", enc(&hidden))),
        json!({}),
    )
    .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    expect_ok(
        report(
            room_path(&room, "/report"),
            json!({ "reason": "spam room" }),
        )
        .await,
    );
    expect_ok(
        report(
            format!("/_matrix/client/v3/users/{}/report", enc(&bob.user_id)),
            json!({ "reason": "keeps pinging me" }),
        )
        .await,
    );
    let resp = report(
        "/_matrix/client/v3/users/@ghost:localhost/report".to_owned(),
        json!({ "reason": "x" }),
    )
    .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    // Each is announced in the admin room.
    let admin_room = expect_ok(
        ts.get(
            &format!(
                "/_matrix/client/v3/directory/room/{}",
                enc("#admins:localhost")
            ),
            None,
        )
        .await,
    )["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    expect_ok(
        ts.post(&room_path(&admin_room, "/join"), admin.bearer(), &json!({}))
            .await,
    );
    let history = expect_ok(
        ts.get(
            &room_path(&admin_room, "/messages?dir=b&limit=20"),
            admin.bearer(),
        )
        .await,
    )
    .to_string();
    assert!(
        history.contains("New report #1") && history.contains("abusive"),
        "{history}"
    );
    assert!(
        history.contains("New report #3") && history.contains("keeps pinging me"),
        "{history}"
    );

    // Synapse's admin API lists the event report.
    let list = expect_ok(
        ts.get(&format!("{ADMIN}/v1/event_reports"), admin.bearer())
            .await,
    );
    assert_eq!(list["total"], 1, "{list}");
    let entry = &list["event_reports"][0];
    assert_eq!(entry["event_id"], rude.as_str());
    assert_eq!(entry["user_id"], alice.user_id.as_str());
    assert_eq!(entry["sender"], bob.user_id.as_str());
    assert_eq!(entry["reason"], "abusive");
    assert_eq!(entry["name"], "Lobby");
    let id = entry["id"].as_u64().unwrap();
    let one = expect_ok(
        ts.get(&format!("{ADMIN}/v1/event_reports/{id}"), admin.bearer())
            .await,
    );
    assert_eq!(one["event_json"]["content"]["body"], "something rude");
    let filtered = expect_ok(
        ts.get(
            &format!("{ADMIN}/v1/event_reports?user_id={}", enc(&bob.user_id)),
            admin.bearer(),
        )
        .await,
    );
    assert_eq!(filtered["total"], 0);
    let resp = ts
        .get(&format!("{ADMIN}/v1/event_reports"), alice.bearer())
        .await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    expect_ok(
        ts.request(
            Method::DELETE,
            &format!("{ADMIN}/v1/event_reports/{id}"),
            admin.bearer(),
            None,
        )
        .await,
    );
    let resp = ts
        .get(&format!("{ADMIN}/v1/event_reports/{id}"), admin.bearer())
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_and_room_blocks() {
    let ts = TestServer::start_open().await;
    let admin = ts.register_open("admin", "admin-password").await;
    let ann = ts.register_open("ann", "ann-password").await;
    let second = ts.login("ann", "ann-password").await;
    let third = ts.login("ann", "ann-password").await;

    let list = expect_ok(
        ts.get(
            &format!("{ADMIN}/v2/users/@ann:localhost/devices"),
            admin.bearer(),
        )
        .await,
    );
    assert_eq!(list["total"], 3, "{list}");
    assert_eq!(list["devices"][0]["user_id"], "@ann:localhost");
    let one = expect_ok(
        ts.get(
            &format!("{ADMIN}/v2/users/@ann:localhost/devices/{}", ann.device_id),
            admin.bearer(),
        )
        .await,
    );
    assert_eq!(one["device_id"], ann.device_id.as_str());
    assert_eq!(one["last_seen_ip"], "127.0.0.1");
    let resp = ts
        .get(
            &format!("{ADMIN}/v2/users/@ann:localhost/devices/NOPE"),
            admin.bearer(),
        )
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    expect_ok(
        ts.request(
            Method::DELETE,
            &format!(
                "{ADMIN}/v2/users/@ann:localhost/devices/{}",
                second.device_id
            ),
            admin.bearer(),
            None,
        )
        .await,
    );
    ts.assert_token_rejected(&second.access_token).await;
    expect_ok(
        ts.post(
            &format!("{ADMIN}/v2/users/@ann:localhost/delete_devices"),
            admin.bearer(),
            &json!({ "devices": [third.device_id] }),
        )
        .await,
    );
    ts.assert_token_rejected(&third.access_token).await;
    ts.assert_token_valid(&ann.access_token).await;
    let resp = ts
        .get(
            &format!("{ADMIN}/v2/users/@ann:localhost/devices"),
            ann.bearer(),
        )
        .await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    let room = create_room(&ts, &ann, json!({ "preset": "public_chat" })).await;
    let block = format!("{ADMIN}/v1/rooms/{}/block", enc(&room));
    assert_eq!(
        expect_ok(ts.get(&block, admin.bearer()).await),
        json!({ "block": false })
    );
    assert_eq!(
        expect_ok(
            ts.put(&block, admin.bearer(), &json!({ "block": true }))
                .await
        ),
        json!({ "block": true })
    );
    assert_eq!(
        expect_ok(ts.get(&block, admin.bearer()).await),
        json!({ "block": true })
    );
    let bob = ts.register_open("bob", "bob-password").await;
    let resp = ts
        .post(&room_path(&room, "/join"), bob.bearer(), &json!({}))
        .await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = ts
        .put(&block, ann.bearer(), &json!({ "block": false }))
        .await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_listed_searched_and_detailed() {
    let ts = TestServer::start_open().await;
    let admin = ts.register_open("admin", "admin-password").await;
    let ann = ts.register_open("ann", "ann-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let big = create_room(&ts, &ann, json!({ "name": "Big", "preset": "public_chat" })).await;
    expect_ok(
        ts.post(&room_path(&big, "/join"), bob.bearer(), &json!({}))
            .await,
    );
    let small = create_room(
        &ts,
        &bob,
        json!({ "name": "Small", "room_alias_name": "small" }),
    )
    .await;

    let page = expect_ok(
        ts.get(&format!("{ADMIN}/v1/rooms?order_by=size"), admin.bearer())
            .await,
    );
    // Three rooms: these two and the admin room (one member, the bot, unless the admin joined).
    assert_eq!(page["total_rooms"], 3, "{page}");
    assert_eq!(page["rooms"][0]["room_id"], big.as_str(), "{page}");
    assert_eq!(page["rooms"][0]["joined_members"], 2);
    assert_eq!(page["rooms"][0]["joined_local_members"], 2);
    let by_name = expect_ok(
        ts.get(&format!("{ADMIN}/v1/rooms?limit=1"), admin.bearer())
            .await,
    );
    assert_eq!(by_name["rooms"][0]["name"], "Admins", "{by_name}");
    assert_eq!(by_name["next_batch"], 1);
    let searched = expect_ok(
        ts.get(
            &format!("{ADMIN}/v1/rooms?search_term=smal"),
            admin.bearer(),
        )
        .await,
    );
    assert_eq!(searched["total_rooms"], 1);
    assert_eq!(searched["rooms"][0]["canonical_alias"], "#small:localhost");

    let details = expect_ok(
        ts.get(&format!("{ADMIN}/v1/rooms/{}", enc(&small)), admin.bearer())
            .await,
    );
    assert_eq!(details["creator"], bob.user_id.as_str());
    assert_eq!(details["join_rules"], "invite");
    assert!(details["state_events"].as_u64().unwrap() >= 5, "{details}");
    let members = expect_ok(
        ts.get(
            &format!("{ADMIN}/v1/rooms/{}/members", enc(&big)),
            admin.bearer(),
        )
        .await,
    );
    assert_eq!(members["total"], 2);
    let resp = ts
        .get(
            &format!("{ADMIN}/v1/rooms/{}", enc("!nope:localhost")),
            admin.bearer(),
        )
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let resp = ts.get(&format!("{ADMIN}/v1/rooms"), ann.bearer()).await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_tokens_are_managed_through_the_admin_api() {
    let ts = TestServer::start().await;
    let admin = ts.register_first_admin("admin", "admin-password").await;
    let base = format!("{ADMIN}/v1/registration_tokens");

    let made = expect_ok(
        ts.post(
            &format!("{base}/new"),
            admin.bearer(),
            &json!({ "token": "onboard-1", "uses_allowed": 1 }),
        )
        .await,
    );
    assert_eq!(
        made,
        json!({ "token": "onboard-1", "uses_allowed": 1, "pending": 0, "completed": 0, "expiry_time": null })
    );
    let random = expect_ok(
        ts.post(
            &format!("{base}/new"),
            admin.bearer(),
            &json!({ "length": 10 }),
        )
        .await,
    );
    assert_eq!(random["token"].as_str().unwrap().len(), 10, "{random}");
    let resp = ts
        .post(
            &format!("{base}/new"),
            admin.bearer(),
            &json!({ "token": "bad token" }),
        )
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");

    // Used once: no longer valid.
    ts.register_with_token("newbie", "newbie-password", "onboard-1")
        .await;
    let one = expect_ok(ts.get(&format!("{base}/onboard-1"), admin.bearer()).await);
    assert_eq!(one["completed"], 1);
    let invalid = expect_ok(ts.get(&format!("{base}?valid=false"), admin.bearer()).await);
    let tokens: Vec<&str> = invalid["registration_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["token"].as_str().unwrap())
        .collect();
    assert!(tokens.contains(&"onboard-1"), "{invalid}");

    // More uses make it valid again; null means unlimited.
    let updated = expect_ok(
        ts.put(
            &format!("{base}/onboard-1"),
            admin.bearer(),
            &json!({ "uses_allowed": null }),
        )
        .await,
    );
    assert_eq!(updated["uses_allowed"], Value::Null);
    ts.register_with_token("second", "second-password", "onboard-1")
        .await;
    let resp = ts
        .put(
            &format!("{base}/missing"),
            admin.bearer(),
            &json!({ "uses_allowed": 3 }),
        )
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    expect_ok(
        ts.request(
            Method::DELETE,
            &format!("{base}/onboard-1"),
            admin.bearer(),
            None,
        )
        .await,
    );
    let resp = ts.get(&format!("{base}/onboard-1"), admin.bearer()).await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let newbie = ts.login("newbie", "newbie-password").await;
    let resp = ts.get(&base, newbie.bearer()).await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    ts.shutdown().await;
}
