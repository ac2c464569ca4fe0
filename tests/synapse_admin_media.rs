//! Media in Synapse's admin API (`/_synapse/admin/`) as the synapse-admin web UI and IT's
//! scripts call it: quarantine by ID, room and user (protected media left alone), deletion by
//! ID, age and size, user, and of the remote media cache, a user's uploads and the uploads per
//! user, with 403 for non-administrators, 404s, paging and the audit log; and the admin room's
//! `media quarantine-room` and `media delete-older-than --remote-only`.

mod common;

use std::time::Duration;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ADMIN: &str = "/_synapse/admin";

/// Uploads `bytes` (distinct per call: identical content would share one file); returns the
/// media ID.
async fn upload(ts: &TestServer, who: &Session, bytes: &str) -> String {
    let body = expect_ok(
        ts.request_raw(
            Method::POST,
            "/_matrix/media/v3/upload?filename=f.txt",
            who.bearer(),
            "text/plain",
            bytes.to_owned(),
        )
        .await,
    );
    let mxc = body["content_uri"].as_str().expect("content_uri");
    mxc.rsplit('/').next().unwrap().to_owned()
}

/// The status of downloading local media `id` as `who`.
async fn download(ts: &TestServer, who: &Session, id: &str) -> StatusCode {
    ts.client()
        .get(ts.url(&format!("/_matrix/client/v1/media/download/localhost/{id}")))
        .bearer_auth(&who.access_token)
        .send()
        .await
        .unwrap()
        .status()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A moment strictly between what happened before and what happens after.
async fn moment() -> u64 {
    tokio::time::sleep(Duration::from_millis(15)).await;
    let at = now_ms();
    tokio::time::sleep(Duration::from_millis(15)).await;
    at
}

async fn post_ok(ts: &TestServer, who: &Session, path: &str) -> Value {
    expect_ok(
        ts.post(&format!("{ADMIN}{path}"), who.bearer(), &json!({}))
            .await,
    )
}

/// The audit log, as the console lists it.
async fn audit(ts: &TestServer) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_conclave"))
        .args(["admin", "--socket"])
        .arg(ts.config().database_path.join("admin.sock"))
        .args(["audit", "list"])
        .env_remove("CONCLAVE_CONFIG")
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn ids(list: &Value, key: &str, field: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key}: {list}"))
        .iter()
        .map(|item| item[field].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_administrators_may_call_the_media_endpoints() {
    let ts = TestServer::start_open().await;
    ts.register_open("admin", "admin-password").await;
    let alice = ts.register_open("alice", "alice-password").await;
    let id = upload(&ts, &alice, "alice's file").await;
    let room = create_room(&ts, &alice, json!({})).await;
    let calls = [
        (Method::POST, format!("/v1/media/quarantine/localhost/{id}")),
        (
            Method::POST,
            format!("/v1/media/unquarantine/localhost/{id}"),
        ),
        (Method::POST, format!("/v1/media/protect/{id}")),
        (Method::POST, format!("/v1/media/unprotect/{id}")),
        (
            Method::POST,
            format!("/v1/room/{}/media/quarantine", enc(&room)),
        ),
        (
            Method::POST,
            "/v1/user/@alice:localhost/media/quarantine".to_owned(),
        ),
        (Method::DELETE, format!("/v1/media/localhost/{id}")),
        (
            Method::POST,
            format!("/v1/media/delete?before_ts={}", now_ms()),
        ),
        (
            Method::POST,
            format!("/v1/purge_media_cache?before_ts={}", now_ms()),
        ),
        (Method::GET, "/v1/statistics/users/media".to_owned()),
        (Method::GET, "/v1/users/@alice:localhost/media".to_owned()),
        (
            Method::DELETE,
            "/v1/users/@alice:localhost/media".to_owned(),
        ),
        (Method::POST, "/v1/users/@admin:localhost/login".to_owned()),
    ];
    for (method, path) in calls {
        let body = (method == Method::POST).then(|| json!({}));
        let resp = ts
            .request(
                method.clone(),
                &format!("{ADMIN}{path}"),
                alice.bearer(),
                body.as_ref(),
            )
            .await;
        assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
        let resp = ts
            .request(method, &format!("{ADMIN}{path}"), None, None)
            .await;
        assert_eq!(resp.0, StatusCode::UNAUTHORIZED, "{path}: {}", resp.1);
    }
    // Nothing was done.
    assert_eq!(download(&ts, &alice, &id).await, StatusCode::OK);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_is_quarantined_released_and_protected_by_id() {
    let ts = TestServer::start_open().await;
    let admin = ts.register_open("admin", "admin-password").await;
    let alice = ts.register_open("alice", "alice-password").await;
    let first = upload(&ts, &alice, "first file").await;
    let second = upload(&ts, &alice, "second file").await;

    assert_eq!(
        post_ok(
            &ts,
            &admin,
            &format!("/v1/media/quarantine/localhost/{first}")
        )
        .await,
        json!({})
    );
    assert_eq!(download(&ts, &alice, &first).await, StatusCode::NOT_FOUND);
    assert_eq!(download(&ts, &alice, &second).await, StatusCode::OK);
    let listed = expect_ok(
        ts.get(
            &format!("{ADMIN}/v1/users/@alice:localhost/media?order_by=media_id"),
            admin.bearer(),
        )
        .await,
    );
    let item = |id: &str| {
        listed["media"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["media_id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        item(&first)["quarantined_by"],
        "@admin:localhost",
        "{listed}"
    );
    assert_eq!(item(&second)["quarantined_by"], Value::Null);

    post_ok(
        &ts,
        &admin,
        &format!("/v1/media/unquarantine/localhost/{first}"),
    )
    .await;
    assert_eq!(download(&ts, &alice, &first).await, StatusCode::OK);

    // Protected media is not quarantined, until unprotected.
    post_ok(&ts, &admin, &format!("/v1/media/protect/{second}")).await;
    post_ok(
        &ts,
        &admin,
        &format!("/v1/media/quarantine/localhost/{second}"),
    )
    .await;
    assert_eq!(download(&ts, &alice, &second).await, StatusCode::OK);
    let listed = expect_ok(
        ts.get(
            &format!("{ADMIN}/v1/users/@alice:localhost/media"),
            admin.bearer(),
        )
        .await,
    );
    let protected: Vec<&Value> = listed["media"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["safe_from_quarantine"] == true)
        .collect();
    assert_eq!(protected.len(), 1, "{listed}");
    assert_eq!(protected[0]["media_id"], second.as_str());
    post_ok(&ts, &admin, &format!("/v1/media/unprotect/{second}")).await;
    post_ok(
        &ts,
        &admin,
        &format!("/v1/media/quarantine/localhost/{second}"),
    )
    .await;
    assert_eq!(download(&ts, &alice, &second).await, StatusCode::NOT_FOUND);

    for path in [
        "/v1/media/quarantine/localhost/NoSuchMedia",
        "/v1/media/unquarantine/localhost/NoSuchMedia",
        "/v1/media/protect/NoSuchMedia",
        "/v1/media/unprotect/NoSuchMedia",
    ] {
        let resp = ts
            .post(&format!("{ADMIN}{path}"), admin.bearer(), &json!({}))
            .await;
        assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    }
    let log = audit(&ts).await;
    assert!(
        log.contains(&format!(
            "POST /_synapse/admin/v1/media/quarantine/localhost/{first}"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("POST /_synapse/admin/v1/media/protect/{second}")),
        "{log}"
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rooms_and_a_users_media_are_quarantined_except_protected_media() {
    let ts = TestServer::start_open().await;
    let admin = ts.register_open("admin", "admin-password").await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let image = upload(&ts, &alice, "an image").await;
    let thumb = upload(&ts, &alice, "its thumbnail").await;
    let file = upload(&ts, &alice, "an encrypted attachment").await;
    let avatar = upload(&ts, &alice, "the room avatar").await;
    let kept = upload(&ts, &alice, "protected, and shared in the room").await;
    let elsewhere = upload(&ts, &alice, "never shared in the room").await;
    let room = create_room(&ts, &alice, json!({})).await;
    let send = |txn: &'static str, content: Value| {
        let path = room_path(&room, &format!("/send/m.room.message/{txn}"));
        let ts = &ts;
        let alice = &alice;
        async move { expect_ok(ts.put(&path, alice.bearer(), &content).await) }
    };
    send(
        "t1",
        json!({ "msgtype": "m.image", "body": "i", "url": format!("mxc://localhost/{image}"),
                "info": { "thumbnail_url": format!("mxc://localhost/{thumb}") } }),
    )
    .await;
    send(
        "t2",
        json!({ "msgtype": "m.file", "body": "f", "file": { "url": format!("mxc://localhost/{file}") } }),
    )
    .await;
    send(
        "t3",
        json!({ "msgtype": "m.file", "body": "k", "url": format!("mxc://localhost/{kept}") }),
    )
    .await;
    expect_ok(
        ts.put(
            &room_path(&room, "/state/m.room.avatar/"),
            alice.bearer(),
            &json!({ "url": format!("mxc://localhost/{avatar}") }),
        )
        .await,
    );
    post_ok(&ts, &admin, &format!("/v1/media/protect/{kept}")).await;

    let answer = post_ok(
        &ts,
        &admin,
        &format!("/v1/room/{}/media/quarantine", enc(&room)),
    )
    .await;
    assert_eq!(answer, json!({ "num_quarantined": 4 }));
    for id in [&image, &thumb, &file, &avatar] {
        assert_eq!(
            download(&ts, &alice, id).await,
            StatusCode::NOT_FOUND,
            "{id}"
        );
    }
    assert_eq!(download(&ts, &alice, &kept).await, StatusCode::OK);
    assert_eq!(download(&ts, &alice, &elsewhere).await, StatusCode::OK);
    // Again: nothing new.
    let again = post_ok(
        &ts,
        &admin,
        &format!("/v1/room/{}/media/quarantine", enc(&room)),
    )
    .await;
    assert_eq!(again["num_quarantined"], 0);
    let resp = ts
        .post(
            &format!(
                "{ADMIN}/v1/room/{}/media/quarantine",
                enc("!nowhere:localhost")
            ),
            admin.bearer(),
            &json!({}),
        )
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    // A user's media: protected uploads stay served.
    let bobs = upload(&ts, &bob, "bob's upload").await;
    let bobs_kept = upload(&ts, &bob, "bob's protected upload").await;
    post_ok(&ts, &admin, &format!("/v1/media/protect/{bobs_kept}")).await;
    let answer = post_ok(&ts, &admin, "/v1/user/@bob:localhost/media/quarantine").await;
    assert_eq!(answer, json!({ "num_quarantined": 1 }));
    assert_eq!(download(&ts, &bob, &bobs).await, StatusCode::NOT_FOUND);
    assert_eq!(download(&ts, &bob, &bobs_kept).await, StatusCode::OK);
    let resp = ts
        .post(
            &format!("{ADMIN}/v1/user/@nobody:localhost/media/quarantine"),
            admin.bearer(),
            &json!({}),
        )
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let resp = ts
        .post(
            &format!("{ADMIN}/v1/user/@x:elsewhere.org/media/quarantine"),
            admin.bearer(),
            &json!({}),
        )
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let log = audit(&ts).await;
    assert!(
        log.contains("media/quarantine (4 quarantined, 1 protected left alone)"),
        "{log}"
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_is_deleted_by_id_and_by_age_and_size() {
    let ts = TestServer::start_open().await;
    let admin = ts.register_open("admin", "admin-password").await;
    let alice = ts.register_open("alice", "alice-password").await;

    let doomed = upload(&ts, &alice, "to be deleted").await;
    let answer = expect_ok(
        ts.delete(
            &format!("{ADMIN}/v1/media/localhost/{doomed}"),
            admin.bearer(),
        )
        .await,
    );
    assert_eq!(answer, json!({ "deleted_media": [doomed], "total": 1 }));
    assert_eq!(download(&ts, &alice, &doomed).await, StatusCode::NOT_FOUND);
    let resp = ts
        .delete(
            &format!("{ADMIN}/v1/media/localhost/{doomed}"),
            admin.bearer(),
        )
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let resp = ts
        .delete(
            &format!("{ADMIN}/v1/media/elsewhere.org/abc"),
            admin.bearer(),
        )
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");

    let small = upload(&ts, &alice, "tiny").await;
    let large = upload(&ts, &alice, "a much larger old file").await;
    let quarantined = upload(&ts, &alice, "quarantined old file").await;
    let protected = upload(&ts, &alice, "protected old file").await;
    let avatar = upload(&ts, &alice, "alice's avatar").await;
    post_ok(
        &ts,
        &admin,
        &format!("/v1/media/quarantine/localhost/{quarantined}"),
    )
    .await;
    post_ok(&ts, &admin, &format!("/v1/media/protect/{protected}")).await;
    expect_ok(
        ts.put(
            &format!(
                "/_matrix/client/v3/profile/{}/avatar_url",
                enc(&alice.user_id)
            ),
            alice.bearer(),
            &json!({ "avatar_url": format!("mxc://localhost/{avatar}") }),
        )
        .await,
    );
    let before = moment().await;
    let recent = upload(&ts, &alice, "a recent upload, large as well").await;

    let answer = post_ok(
        &ts,
        &admin,
        &format!("/v1/media/delete?before_ts={before}&size_gt=5"),
    )
    .await;
    assert_eq!(answer, json!({ "deleted_media": [large], "total": 1 }));
    let answer = post_ok(
        &ts,
        &admin,
        &format!("/v1/media/delete?before_ts={before}&keep_profiles=false"),
    )
    .await;
    let mut deleted: Vec<String> = serde_json::from_value(answer["deleted_media"].clone()).unwrap();
    deleted.sort();
    let mut expected = vec![small.clone(), avatar.clone()];
    expected.sort();
    assert_eq!(deleted, expected, "{answer}");
    assert_eq!(answer["total"], 2);
    for (id, status) in [
        (&small, StatusCode::NOT_FOUND),
        (&large, StatusCode::NOT_FOUND),
        (&avatar, StatusCode::NOT_FOUND),
        (&protected, StatusCode::OK),
        (&recent, StatusCode::OK),
    ] {
        assert_eq!(download(&ts, &alice, id).await, status, "{id}");
    }
    // Quarantined media is kept (as evidence), just not served.
    let listed = expect_ok(
        ts.get(
            &format!("{ADMIN}/v1/users/@alice:localhost/media"),
            admin.bearer(),
        )
        .await,
    );
    assert!(
        ids(&listed, "media", "media_id").contains(&quarantined),
        "{listed}"
    );

    let resp = ts
        .post(
            &format!("{ADMIN}/v1/media/delete"),
            admin.bearer(),
            &json!({}),
        )
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_MISSING_PARAM");
    let resp = ts
        .post(
            &format!("{ADMIN}/v1/media/delete?before_ts=1600000000"),
            admin.bearer(),
            &json!({}),
        )
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let log = audit(&ts).await;
    assert!(
        log.contains(&format!(
            "DELETE /_synapse/admin/v1/media/localhost/{doomed}"
        )),
        "{log}"
    );
    assert!(log.contains("keep_profiles: false; 2 deleted"), "{log}");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_media_is_listed_paged_and_deleted() {
    let ts = TestServer::start_open().await;
    let admin = ts.register_open("admin", "admin-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let mut uploaded = Vec::new();
    for text in ["bob 1", "bob number 2", "bob's third, largest"] {
        uploaded.push(upload(&ts, &bob, text).await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let base = format!("{ADMIN}/v1/users/@bob:localhost/media");

    // Newest first by default, with Synapse's item fields.
    let page = expect_ok(ts.get(&format!("{base}?limit=2"), admin.bearer()).await);
    assert_eq!(page["total"], 3, "{page}");
    assert_eq!(page["next_token"], 2);
    assert_eq!(
        ids(&page, "media", "media_id"),
        [uploaded[2].as_str(), uploaded[1].as_str()]
    );
    let item = &page["media"][0];
    assert_eq!(item["media_type"], "text/plain");
    assert_eq!(item["media_length"], "bob's third, largest".len());
    assert_eq!(item["upload_name"], "f.txt");
    assert_eq!(item["safe_from_quarantine"], false);
    assert!(item["created_ts"].as_u64().unwrap() <= now_ms());
    assert!(item["last_access_ts"].is_u64(), "{item}");
    let rest = expect_ok(
        ts.get(&format!("{base}?from=2&limit=2"), admin.bearer())
            .await,
    );
    assert_eq!(ids(&rest, "media", "media_id"), [uploaded[0].as_str()]);
    assert!(rest.get("next_token").is_none(), "{rest}");
    let by_size = expect_ok(
        ts.get(
            &format!("{base}?order_by=media_length&dir=f"),
            admin.bearer(),
        )
        .await,
    );
    assert_eq!(ids(&by_size, "media", "media_id"), uploaded);
    let resp = ts
        .get(&format!("{base}?order_by=colour"), admin.bearer())
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let resp = ts.get(&format!("{base}?from=x"), admin.bearer()).await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let resp = ts
        .get(
            &format!("{ADMIN}/v1/users/@nobody:localhost/media"),
            admin.bearer(),
        )
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let resp = ts
        .get(
            &format!("{ADMIN}/v1/users/@x:elsewhere.org/media"),
            admin.bearer(),
        )
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");

    // Deleting goes a page at a time, in the listing's order.
    let answer = expect_ok(ts.delete(&format!("{base}?limit=1"), admin.bearer()).await);
    assert_eq!(
        answer,
        json!({ "deleted_media": [uploaded[2]], "total": 1 })
    );
    assert_eq!(
        download(&ts, &bob, &uploaded[2]).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(download(&ts, &bob, &uploaded[0]).await, StatusCode::OK);
    let answer = expect_ok(ts.delete(&base, admin.bearer()).await);
    assert_eq!(answer["total"], 2, "{answer}");
    let left = expect_ok(ts.get(&base, admin.bearer()).await);
    assert_eq!(left, json!({ "media": [], "total": 0 }));
    assert!(
        audit(&ts)
            .await
            .contains("DELETE /_synapse/admin/v1/users/@bob:localhost/media (2 deleted)")
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_counted_per_user() {
    let ts = TestServer::start_open().await;
    let admin = ts.register_open("admin", "admin-password").await;
    let ann = ts.register_open("ann", "ann-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    upload(&ts, &ann, "abc").await;
    upload(&ts, &ann, "defgh").await;
    let before_bob = moment().await;
    upload(&ts, &bob, "0123456789").await;
    expect_ok(
        ts.put(
            &format!(
                "/_matrix/client/v3/profile/{}/displayname",
                enc(&bob.user_id)
            ),
            bob.bearer(),
            &json!({ "displayname": "Zed" }),
        )
        .await,
    );
    let base = format!("{ADMIN}/v1/statistics/users/media");
    let stats = |query: &str| {
        let url = format!("{base}?{query}");
        let ts = &ts;
        let admin = &admin;
        async move { expect_ok(ts.get(&url, admin.bearer()).await) }
    };

    let all = stats("").await;
    assert_eq!(
        all,
        json!({ "users": [
            { "user_id": "@ann:localhost", "displayname": "ann", "media_count": 2, "media_length": 8 },
            { "user_id": "@bob:localhost", "displayname": "Zed", "media_count": 1, "media_length": 10 },
        ], "total": 2 })
    );
    let largest = stats("order_by=media_length&dir=b&limit=1").await;
    assert_eq!(ids(&largest, "users", "user_id"), ["@bob:localhost"]);
    assert_eq!(
        (largest["total"].clone(), largest["next_token"].clone()),
        (json!(2), json!(1))
    );
    let most = stats("order_by=media_count&dir=b").await;
    assert_eq!(
        ids(&most, "users", "user_id"),
        ["@ann:localhost", "@bob:localhost"]
    );
    assert_eq!(
        ids(&stats("search_term=zed").await, "users", "user_id"),
        ["@bob:localhost"]
    );
    assert_eq!(
        ids(&stats("search_term=an").await, "users", "user_id"),
        ["@ann:localhost"]
    );
    let since = stats(&format!("from_ts={before_bob}")).await;
    assert_eq!(ids(&since, "users", "user_id"), ["@bob:localhost"]);
    let until = stats(&format!("until_ts={before_bob}")).await;
    assert_eq!(ids(&until, "users", "user_id"), ["@ann:localhost"]);
    for query in [
        "search_term=",
        "order_by=size",
        "dir=up",
        "from_ts=10&until_ts=5",
    ] {
        let resp = ts.get(&format!("{base}?{query}"), admin.bearer()).await;
        assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    }
    ts.shutdown().await;
}

/// Stores a cached copy of another server's media, as the federation media fetch would.
async fn cache_remote(ts: &TestServer, origin: &str, id: &str, bytes: &'static str) {
    let media = &ts.server().services().media;
    let body = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(
        bytes.as_bytes(),
    ))]);
    let file = media.write_stream(body, 1 << 20).await.unwrap();
    let origin = ruma::ServerName::parse(origin).unwrap();
    let sender = ruma::UserId::parse(format!("@someone:{origin}")).unwrap();
    media
        .cache_remote(&origin, id, &sender, &file, Some("text/plain".to_owned()))
        .unwrap();
}

fn stored(ts: &TestServer, origin: &str, id: &str) -> bool {
    let origin = ruma::ServerName::parse(origin).unwrap();
    ts.server()
        .services()
        .media
        .get(&origin, id)
        .unwrap()
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remote_media_cache_is_purged_and_local_media_stays() {
    let ts = TestServer::start_open().await;
    let admin = ts.register_open("admin", "admin-password").await;
    let local = upload(&ts, &admin, "a local upload").await;
    cache_remote(&ts, "remote.example", "OldRemote", "old remote bytes").await;
    cache_remote(
        &ts,
        "remote.example",
        "Evidence",
        "quarantined remote bytes",
    )
    .await;
    post_ok(&ts, &admin, "/v1/media/quarantine/remote.example/Evidence").await;
    let before = moment().await;
    cache_remote(&ts, "other.example", "NewRemote", "new remote bytes").await;

    let answer = post_ok(
        &ts,
        &admin,
        &format!("/v1/purge_media_cache?before_ts={before}"),
    )
    .await;
    assert_eq!(answer, json!({ "deleted": 1 }));
    assert!(!stored(&ts, "remote.example", "OldRemote"));
    assert!(
        stored(&ts, "remote.example", "Evidence"),
        "quarantined media is kept"
    );
    assert!(stored(&ts, "other.example", "NewRemote"));
    assert_eq!(download(&ts, &admin, &local).await, StatusCode::OK);
    let resp = ts
        .post(
            &format!("{ADMIN}/v1/purge_media_cache"),
            admin.bearer(),
            &json!({}),
        )
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_MISSING_PARAM");
    let resp = ts
        .post(
            &format!("{ADMIN}/v1/purge_media_cache?before_ts=-1"),
            admin.bearer(),
            &json!({}),
        )
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    // Remote media is no user's upload here.
    let stats = expect_ok(
        ts.get(
            &format!("{ADMIN}/v1/statistics/users/media"),
            admin.bearer(),
        )
        .await,
    );
    assert_eq!(ids(&stats, "users", "user_id"), ["@admin:localhost"]);
    assert!(audit(&ts).await.contains("purge_media_cache (before_ts: "));
    ts.shutdown().await;
}

// ---------------------------------------------------------------- the admin room

const BOT: &str = "@conclave:localhost";

/// Joins the admin room as the first (administrator) account; returns its ID.
async fn join_admin_room(ts: &TestServer, admin: &Session) -> String {
    let alias = expect_ok(
        ts.get(
            &format!(
                "/_matrix/client/v3/directory/room/{}",
                enc("#admins:localhost")
            ),
            None,
        )
        .await,
    );
    let room = alias["room_id"].as_str().unwrap().to_owned();
    expect_ok(
        ts.post(&room_path(&room, "/join"), admin.bearer(), &json!({}))
            .await,
    );
    room
}

/// Sends a command to the admin room and returns the text of the bot's answer to it.
async fn command(ts: &TestServer, admin: &Session, room: &str, text: &str, txn: &str) -> String {
    let event_id = send_text_id(ts, admin, room, txn, text).await;
    for _ in 0..1000 {
        let history = expect_ok(
            ts.get(&room_path(room, "/messages?dir=b&limit=30"), admin.bearer())
                .await,
        );
        let reply = history["chunk"].as_array().unwrap().iter().find(|event| {
            event["sender"] == BOT
                && event["content"]["m.relates_to"]["m.in_reply_to"]["event_id"]
                    == event_id.as_str()
        });
        if let Some(reply) = reply {
            return reply["content"]["body"].as_str().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no answer to {text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_room_quarantines_a_room_and_purges_remote_media() {
    let ts = TestServer::start_open().await;
    let admin = ts.register_open("admin", "admin-password").await;
    let alice = ts.register_open("alice", "alice-password").await;
    let admin_room = join_admin_room(&ts, &admin).await;
    let shared = upload(&ts, &alice, "shared in the room").await;
    let protected = upload(&ts, &alice, "protected and shared").await;
    let room = create_room(&ts, &alice, json!({ "room_alias_name": "shares" })).await;
    for (txn, id) in [("s1", &shared), ("s2", &protected)] {
        expect_ok(
            ts.put(
                &room_path(&room, &format!("/send/m.room.message/{txn}")),
                alice.bearer(),
                &json!({ "msgtype": "m.file", "body": "f", "url": format!("mxc://localhost/{id}") }),
            )
            .await,
        );
    }
    post_ok(&ts, &admin, &format!("/v1/media/protect/{protected}")).await;

    let answer = command(
        &ts,
        &admin,
        &admin_room,
        "!admin media quarantine-room #shares:localhost",
        "c1",
    )
    .await;
    assert!(
        answer.contains("Quarantined 1 upload(s) (1 protected upload(s) left alone)"),
        "{answer}"
    );
    assert!(answer.contains(&room), "{answer}");
    assert_eq!(download(&ts, &alice, &shared).await, StatusCode::NOT_FOUND);
    assert_eq!(download(&ts, &alice, &protected).await, StatusCode::OK);
    let listed = expect_ok(
        ts.get(
            &format!("{ADMIN}/v1/users/@alice:localhost/media?order_by=quarantined_by&dir=b"),
            admin.bearer(),
        )
        .await,
    );
    assert_eq!(
        listed["media"][0]["quarantined_by"], "@admin:localhost",
        "{listed}"
    );
    let answer = command(
        &ts,
        &admin,
        &admin_room,
        "!admin media quarantine-room #nowhere:localhost",
        "c2",
    )
    .await;
    assert!(answer.contains("There is no room"), "{answer}");

    // --remote-only deletes cached remote media and leaves this server's uploads.
    cache_remote(&ts, "remote.example", "Cached", "cached remote bytes").await;
    let answer = command(
        &ts,
        &admin,
        &admin_room,
        "!admin media delete-older-than --remote-only 2999-01-01",
        "c3",
    )
    .await;
    assert!(
        answer.contains("Deleted 1 cached remote upload(s)"),
        "{answer}"
    );
    assert!(!stored(&ts, "remote.example", "Cached"));
    assert_eq!(download(&ts, &alice, &protected).await, StatusCode::OK);
    ts.shutdown().await;
}
