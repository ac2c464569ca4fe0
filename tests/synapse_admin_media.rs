//! Media in Synapse's admin API (`/_synapse/admin/`) as the synapse-admin web UI and IT's
//! scripts call it: quarantine by ID, room and user (protected media left alone), deletion by
//! ID, age and size, user, and of the remote media cache, a user's uploads and the uploads per
//! user, with 403 for non-administrators, 404s, paging and the audit log. The admin room's
//! media commands are tested in `admin_room_media.rs`.

mod common;

use std::time::Duration;

use common::media::*;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ADMIN: &str = "/_synapse/admin";

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
    // The path with the server's name (the synapse-admin UI's) does the same.
    let answer = post_ok(
        &ts,
        &admin,
        &format!("/v1/media/localhost/delete?before_ts={before}&keep_profiles=false"),
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
            &format!("{ADMIN}/v1/media/elsewhere.example/delete?before_ts={before}"),
            admin.bearer(),
            &json!({}),
        )
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
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
