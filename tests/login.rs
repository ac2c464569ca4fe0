//! Login, logout, whoami, refresh tokens and login rate limiting.

mod common;

use std::time::Duration;

use common::*;
use conclave::config::RateLimit;
use reqwest::StatusCode;
use serde_json::{Value, json};

const REFRESH: &str = "/_matrix/client/v3/refresh";

async fn refresh(ts: &TestServer, refresh_token: &str) -> Resp {
    ts.post(REFRESH, None, &json!({ "refresh_token": refresh_token }))
        .await
}

fn str_field<'a>(body: &'a Value, name: &str) -> &'a str {
    body[name]
        .as_str()
        .unwrap_or_else(|| panic!("string `{name}` expected: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_flows_include_password() {
    let ts = TestServer::start().await;
    let body = expect_ok(ts.get(LOGIN, None).await);
    let flows = body["flows"].as_array().expect("flows array");
    assert!(
        flows.iter().any(|f| f["type"] == json!("m.login.password")),
        "m.login.password expected: {body}"
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_localpart_and_full_user_id() {
    let ts = TestServer::start().await;
    let admin = ts.register_first_admin("alice", "alice-password").await;

    let by_localpart = ts.login("alice", "alice-password").await;
    let by_user_id = ts.login("@alice:localhost", "alice-password").await;
    for session in [&by_localpart, &by_user_id] {
        assert_eq!(session.user_id, "@alice:localhost");
        assert!(
            session.access_token.len() >= 43,
            "access token too short: {}",
            session.access_token
        );
        assert!(!session.device_id.is_empty());
        ts.assert_token_valid(&session.access_token).await;
    }
    // Each login without a device_id gets a fresh device and token.
    assert_ne!(by_localpart.device_id, by_user_id.device_id);
    assert_ne!(by_localpart.access_token, by_user_id.access_token);
    assert_ne!(by_localpart.device_id, admin.device_id);
    let devices = ts.device_ids(&admin).await;
    for id in [
        &admin.device_id,
        &by_localpart.device_id,
        &by_user_id.device_id,
    ] {
        assert!(devices.contains(id), "{id} missing from {devices:?}");
    }
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_unknown_user_are_forbidden() {
    let ts = TestServer::start().await;
    ts.register_first_admin("alice", "alice-password").await;
    let resp = ts.login_raw("alice", "wrong-password", json!({})).await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = ts.login_raw("nobody", "alice-password", json!({})).await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = ts
        .login_raw("@alice:other.server", "alice-password", json!({}))
        .await;
    assert!(
        resp.0.is_client_error(),
        "foreign user id must not log in: {}",
        resp.1
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_returns_user_and_device() {
    let ts = TestServer::start().await;
    let admin = ts.register_first_admin("alice", "alice-password").await;
    let session = ts.login("alice", "alice-password").await;
    for s in [&admin, &session] {
        let body = expect_ok(ts.whoami(&s.access_token).await);
        assert_eq!(body["user_id"], json!(s.user_id));
        assert_eq!(body["device_id"], json!(s.device_id));
        if let Some(is_guest) = body.get("is_guest") {
            assert_eq!(is_guest, &json!(false));
        }
    }
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusing_device_id_replaces_the_old_token() {
    let ts = TestServer::start().await;
    let admin = ts.register_first_admin("alice", "alice-password").await;
    let first = Session::from_body(&expect_ok(
        ts.login_raw(
            "alice",
            "alice-password",
            json!({ "device_id": "LAPTOP", "initial_device_display_name": "Laptop" }),
        )
        .await,
    ));
    assert_eq!(first.device_id, "LAPTOP");
    let second = Session::from_body(&expect_ok(
        ts.login_raw("alice", "alice-password", json!({ "device_id": "LAPTOP" }))
            .await,
    ));
    assert_eq!(second.device_id, "LAPTOP");
    assert_ne!(first.access_token, second.access_token);

    ts.assert_token_rejected(&first.access_token).await;
    let who = expect_ok(ts.whoami(&second.access_token).await);
    assert_eq!(who["device_id"], json!("LAPTOP"));

    let devices = ts.device_ids(&admin).await;
    assert_eq!(
        devices.iter().filter(|d| *d == "LAPTOP").count(),
        1,
        "the device is reused, not duplicated: {devices:?}"
    );
    // The initial display name is ignored for a known device, so it is kept.
    let device = expect_ok(ts.get(&format!("{DEVICES}/LAPTOP"), admin.bearer()).await);
    assert_eq!(device["display_name"], json!("Laptop"));
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_refreshable_login_has_no_refresh_token() {
    let ts = TestServer::start().await;
    ts.register_first_admin("alice", "alice-password").await;
    let body = expect_ok(ts.login_raw("alice", "alice-password", json!({})).await);
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(body.get("expires_in_ms").is_none(), "{body}");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_token_rotation() {
    let ts = TestServer::start().await;
    ts.register_first_admin("alice", "alice-password").await;
    let login = expect_ok(
        ts.login_raw("alice", "alice-password", json!({ "refresh_token": true }))
            .await,
    );
    let device_id = str_field(&login, "device_id").to_owned();
    let refresh1 = str_field(&login, "refresh_token").to_owned();
    assert!(
        login["expires_in_ms"].as_u64().is_some_and(|ms| ms > 0),
        "{login}"
    );
    ts.assert_token_valid(str_field(&login, "access_token"))
        .await;

    let resp = expect_ok(refresh(&ts, &refresh1).await);
    let access2 = str_field(&resp, "access_token").to_owned();
    let refresh2 = str_field(&resp, "refresh_token").to_owned();
    assert!(
        resp["expires_in_ms"].as_u64().is_some_and(|ms| ms > 0),
        "{resp}"
    );
    assert_ne!(access2, str_field(&login, "access_token"));
    assert_ne!(refresh2, refresh1);

    // The old refresh token stays valid only until the new access token is used.
    let who = expect_ok(ts.whoami(&access2).await);
    assert_eq!(
        who["device_id"],
        json!(device_id),
        "refresh keeps the device"
    );
    let resp = refresh(&ts, &refresh1).await;
    assert_errcode(&resp, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");

    let resp = expect_ok(refresh(&ts, &refresh2).await);
    ts.assert_token_valid(str_field(&resp, "access_token"))
        .await;

    let resp = refresh(&ts, "not-a-refresh-token").await;
    assert_errcode(&resp, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    // An access token is not a refresh token.
    let resp = refresh(&ts, &access2).await;
    assert_errcode(&resp, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_refreshable_token_is_soft_logged_out() {
    let ts = TestServer::start_with(|cfg| cfg.refreshable_access_token_lifetime_secs = 1).await;
    ts.register_first_admin("alice", "alice-password").await;
    let login = expect_ok(
        ts.login_raw("alice", "alice-password", json!({ "refresh_token": true }))
            .await,
    );
    assert!(
        login["expires_in_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 0 && ms <= 1000),
        "lifetime is 1s: {login}"
    );
    // Wait well past the lifetime; this only orders events, it does not measure speed.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let resp = ts.whoami(str_field(&login, "access_token")).await;
    assert_errcode(&resp, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    assert_eq!(resp.1["soft_logout"], json!(true), "{}", resp.1);

    let resp = expect_ok(refresh(&ts, str_field(&login, "refresh_token")).await);
    ts.assert_token_valid(str_field(&resp, "access_token"))
        .await;
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_invalidates_only_that_token() {
    let ts = TestServer::start().await;
    let admin = ts.register_first_admin("alice", "alice-password").await;
    let other = ts.login("alice", "alice-password").await;

    let resp = ts
        .post("/_matrix/client/v3/logout", other.bearer(), &json!({}))
        .await;
    expect_ok(resp);
    ts.assert_token_rejected(&other.access_token).await;
    ts.assert_token_valid(&admin.access_token).await;
    let devices = ts.device_ids(&admin).await;
    assert!(
        !devices.contains(&other.device_id),
        "logged-out device removed: {devices:?}"
    );

    let resp = ts
        .post("/_matrix/client/v3/logout", other.bearer(), &json!({}))
        .await;
    assert_errcode(&resp, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_all_invalidates_every_token() {
    let ts = TestServer::start().await;
    let admin = ts.register_first_admin("alice", "alice-password").await;
    let second = ts.login("alice", "alice-password").await;
    let third = ts.login("alice", "alice-password").await;

    expect_ok(
        ts.post("/_matrix/client/v3/logout/all", second.bearer(), &json!({}))
            .await,
    );
    for s in [&admin, &second, &third] {
        ts.assert_token_rejected(&s.access_token).await;
    }
    // The account itself is fine.
    let fresh = ts.login("alice", "alice-password").await;
    assert_eq!(ts.device_ids(&fresh).await, vec![fresh.device_id.clone()]);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_rate_limited() {
    let ts = TestServer::start_with(|cfg| {
        cfg.login_rate_limit = RateLimit {
            per_second: 0.001,
            burst: 2,
        };
    })
    .await;
    ts.register_first_admin("alice", "alice-password").await;

    for _ in 0..2 {
        let resp = ts.login_raw("alice", "wrong-password", json!({})).await;
        assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    }
    let resp = ts.login_raw("alice", "wrong-password", json!({})).await;
    assert_errcode(&resp, StatusCode::TOO_MANY_REQUESTS, "M_LIMIT_EXCEEDED");
    assert!(
        resp.1["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0),
        "retry_after_ms expected: {}",
        resp.1
    );
    ts.shutdown().await;
}
