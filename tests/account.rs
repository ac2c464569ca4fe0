//! Account management: password changes and deactivation, both behind
//! user-interactive authentication.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

const PASSWORD: &str = "/_matrix/client/v3/account/password";
const DEACTIVATE: &str = "/_matrix/client/v3/account/deactivate";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_requires_uia() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "old-password").await;

    let resp = ts
        .post(
            PASSWORD,
            alice.bearer(),
            &json!({ "new_password": "new-password" }),
        )
        .await;
    assert_eq!(resp.0, StatusCode::UNAUTHORIZED, "{}", resp.1);
    assert!(has_flow(&resp.1, &["m.login.password"]), "{}", resp.1);
    assert!(resp.1["session"].is_string(), "{}", resp.1);

    // The challenge alone changes nothing.
    ts.login("alice", "old-password").await;
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_with_wrong_password_fails() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "old-password").await;

    let resp = ts
        .uia_password(
            Method::POST,
            PASSWORD,
            &alice,
            "not-my-password",
            json!({ "new_password": "new-password" }),
        )
        .await;
    // A failed UIA stage answers 401 with the flows again and an errcode.
    assert_errcode(&resp, StatusCode::UNAUTHORIZED, "M_FORBIDDEN");
    assert!(resp.1["flows"].is_array(), "{}", resp.1);

    ts.login("alice", "old-password").await;
    let resp = ts.login_raw("alice", "new-password", json!({})).await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_logs_out_other_devices() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "old-password").await;
    let other = ts.login("alice", "old-password").await;

    let resp = ts
        .uia_password(
            Method::POST,
            PASSWORD,
            &alice,
            "old-password",
            json!({ "new_password": "new-password" }),
        )
        .await;
    expect_ok(resp);

    let resp = ts.login_raw("alice", "old-password", json!({})).await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    ts.login("alice", "new-password").await;

    // The requesting device keeps its token; the others are revoked with their devices.
    ts.assert_token_valid(&alice.access_token).await;
    ts.assert_token_rejected(&other.access_token).await;
    let devices = ts.device_ids(&alice).await;
    assert!(devices.contains(&alice.device_id), "{devices:?}");
    assert!(!devices.contains(&other.device_id), "{devices:?}");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_can_keep_other_devices() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "old-password").await;
    let other = ts.login("alice", "old-password").await;

    let resp = ts
        .uia_password(
            Method::POST,
            PASSWORD,
            &alice,
            "old-password",
            json!({ "new_password": "new-password", "logout_devices": false }),
        )
        .await;
    expect_ok(resp);

    ts.assert_token_valid(&alice.access_token).await;
    ts.assert_token_valid(&other.access_token).await;
    let resp = ts.login_raw("alice", "old-password", json!({})).await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    ts.login("alice", "new-password").await;
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_with_unknown_access_token_is_rejected() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "old-password").await;
    // A bad access token is rejected outright, even alongside otherwise valid auth.
    let resp = ts
        .post(
            PASSWORD,
            Some("z".repeat(50).as_str()),
            &json!({ "new_password": "evil", "auth": password_auth(&alice.user_id, "old-password") }),
        )
        .await;
    assert_errcode(&resp, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    ts.login("alice", "old-password").await;
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivation_requires_uia() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;

    let resp = ts.post(DEACTIVATE, alice.bearer(), &json!({})).await;
    assert_eq!(resp.0, StatusCode::UNAUTHORIZED, "{}", resp.1);
    assert!(has_flow(&resp.1, &["m.login.password"]), "{}", resp.1);

    let resp = ts
        .uia_password(
            Method::POST,
            DEACTIVATE,
            &alice,
            "wrong-password",
            json!({}),
        )
        .await;
    assert_errcode(&resp, StatusCode::UNAUTHORIZED, "M_FORBIDDEN");

    // Still active.
    ts.assert_token_valid(&alice.access_token).await;
    ts.login("alice", "alice-password").await;
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivated_account_is_gone_for_good() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let other = ts.login("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;

    let body = expect_ok(
        ts.uia_password(
            Method::POST,
            DEACTIVATE,
            &alice,
            "alice-password",
            json!({}),
        )
        .await,
    );
    assert_eq!(
        body["id_server_unbind_result"],
        json!("success"),
        "nothing to unbind means success: {body}"
    );

    ts.assert_token_rejected(&alice.access_token).await;
    ts.assert_token_rejected(&other.access_token).await;

    let resp = ts.login_raw("alice", "alice-password", json!({})).await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_USER_DEACTIVATED");

    let resp = ts.username_available("alice").await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_USER_IN_USE");
    let resp = ts
        .register(
            json!({ "username": "alice", "password": "new-owner" }),
            dummy_auth(),
        )
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_USER_IN_USE");

    // Other accounts are unaffected.
    ts.assert_token_valid(&bob.access_token).await;
    ts.shutdown().await;
}
