//! User profiles: display name, avatar URL, custom fields and access control.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

fn profile_path(user_id: &str) -> String {
    format!("/_matrix/client/v3/profile/{}", enc(user_id))
}

fn field_path(user_id: &str, field: &str) -> String {
    format!("{}/{}", profile_path(user_id), enc(field))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_and_get_displayname() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    let path = field_path(&alice.user_id, "displayname");

    expect_ok(
        ts.put(
            &path,
            alice.bearer(),
            &json!({ "displayname": "Alice Liddell" }),
        )
        .await,
    );
    let body = expect_ok(ts.get(&path, alice.bearer()).await);
    assert_eq!(body["displayname"], json!("Alice Liddell"));

    expect_ok(
        ts.put(&path, alice.bearer(), &json!({ "displayname": "Alice L." }))
            .await,
    );
    let body = expect_ok(ts.get(&path, alice.bearer()).await);
    assert_eq!(body["displayname"], json!("Alice L."));
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_and_get_avatar_url() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    let path = field_path(&alice.user_id, "avatar_url");

    expect_ok(
        ts.put(
            &path,
            alice.bearer(),
            &json!({ "avatar_url": "mxc://localhost/SDGdghriugerRg" }),
        )
        .await,
    );
    let body = expect_ok(ts.get(&path, alice.bearer()).await);
    assert_eq!(body["avatar_url"], json!("mxc://localhost/SDGdghriugerRg"));
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_profile_combines_fields() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    expect_ok(
        ts.put(
            &field_path(&alice.user_id, "displayname"),
            alice.bearer(),
            &json!({ "displayname": "Alice" }),
        )
        .await,
    );
    expect_ok(
        ts.put(
            &field_path(&alice.user_id, "avatar_url"),
            alice.bearer(),
            &json!({ "avatar_url": "mxc://localhost/alice" }),
        )
        .await,
    );

    // Other users can read the profile.
    let body = expect_ok(ts.get(&profile_path(&alice.user_id), bob.bearer()).await);
    assert_eq!(body["displayname"], json!("Alice"));
    assert_eq!(body["avatar_url"], json!("mxc://localhost/alice"));
    let body = expect_ok(
        ts.get(&field_path(&alice.user_id, "displayname"), bob.bearer())
            .await,
    );
    assert_eq!(body["displayname"], json!("Alice"));
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_profile_is_not_found() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    let nobody = "@nobody:localhost";

    let resp = ts.get(&profile_path(nobody), alice.bearer()).await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let resp = ts
        .get(&field_path(nobody, "displayname"), alice.bearer())
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let resp = ts
        .get(&field_path(nobody, "avatar_url"), alice.bearer())
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cannot_change_another_users_profile() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    expect_ok(
        ts.put(
            &field_path(&bob.user_id, "displayname"),
            bob.bearer(),
            &json!({ "displayname": "Bob" }),
        )
        .await,
    );

    let resp = ts
        .put(
            &field_path(&bob.user_id, "displayname"),
            alice.bearer(),
            &json!({ "displayname": "Mallory" }),
        )
        .await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = ts
        .put(
            &field_path(&bob.user_id, "avatar_url"),
            alice.bearer(),
            &json!({ "avatar_url": "mxc://localhost/evil" }),
        )
        .await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = ts
        .put(
            &field_path(&bob.user_id, "org.example.job_title"),
            alice.bearer(),
            &json!({ "org.example.job_title": "Intern" }),
        )
        .await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = ts
        .delete(&field_path(&bob.user_id, "displayname"), alice.bearer())
        .await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    let body = expect_ok(ts.get(&profile_path(&bob.user_id), bob.bearer()).await);
    assert_eq!(body["displayname"], json!("Bob"));
    assert!(body.get("avatar_url").is_none(), "{body}");
    assert!(body.get("org.example.job_title").is_none(), "{body}");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_profile_field_lifecycle() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    let field = "org.example.job_title";
    let path = field_path(&alice.user_id, field);

    let resp = ts.get(&path, alice.bearer()).await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    expect_ok(
        ts.put(&path, alice.bearer(), &json!({ field: "Engineer" }))
            .await,
    );
    let body = expect_ok(ts.get(&path, alice.bearer()).await);
    assert_eq!(body, json!({ field: "Engineer" }));
    let profile = expect_ok(ts.get(&profile_path(&alice.user_id), alice.bearer()).await);
    assert_eq!(profile[field], json!("Engineer"), "{profile}");

    // Custom fields may hold any JSON value.
    let structured = json!({ "team": "platform", "level": 3 });
    expect_ok(
        ts.put(&path, alice.bearer(), &json!({ field: structured }))
            .await,
    );
    let body = expect_ok(ts.get(&path, alice.bearer()).await);
    assert_eq!(body[field], structured);

    expect_ok(ts.delete(&path, alice.bearer()).await);
    let resp = ts.get(&path, alice.bearer()).await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let profile = expect_ok(ts.get(&profile_path(&alice.user_id), alice.bearer()).await);
    assert!(profile.get(field).is_none(), "{profile}");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn displayname_via_generic_field_endpoint() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    let path = field_path(&alice.user_id, "displayname");
    expect_ok(
        ts.put(&path, alice.bearer(), &json!({ "displayname": "Temp" }))
            .await,
    );

    expect_ok(ts.delete(&path, alice.bearer()).await);
    let profile = expect_ok(ts.get(&profile_path(&alice.user_id), alice.bearer()).await);
    assert!(profile.get("displayname").is_none(), "{profile}");
    ts.shutdown().await;
}
