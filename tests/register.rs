//! Account registration: the bootstrap token, configured tokens, open and closed
//! registration, username checks and the options of `/register`.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Asserts that `token` is not (or no longer) a usable registration token: either
/// `{"valid": false}` or, when registration is closed altogether, 403 M_FORBIDDEN.
async fn assert_token_not_valid(ts: &TestServer, token: &str) {
    let resp = ts.token_validity(token).await;
    match resp.0 {
        StatusCode::OK => assert_eq!(resp.1["valid"], json!(false), "{}", resp.1),
        _ => assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN"),
    }
}

/// Asserts a failed registration attempt with `M_FORBIDDEN`, whether it came as a
/// failed UIA stage (401) or as a plain refusal (403).
fn assert_registration_forbidden(resp: &Resp) {
    assert!(
        resp.0 == StatusCode::UNAUTHORIZED || resp.0 == StatusCode::FORBIDDEN,
        "expected 401 or 403, got {}: {}",
        resp.0,
        resp.1
    );
    assert_eq!(resp.1["errcode"], json!("M_FORBIDDEN"), "{}", resp.1);
}

async fn assert_available(ts: &TestServer, username: &str) {
    let body = expect_ok(ts.username_available(username).await);
    assert_eq!(body["available"], json!(true), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_token_registers_first_account() {
    let ts = TestServer::start().await;
    let token = ts
        .bootstrap_token()
        .expect("fresh server has a bootstrap token");
    assert_eq!(
        expect_ok(ts.token_validity(&token).await)["valid"],
        json!(true)
    );

    // Without `auth` the server answers with a UIA challenge.
    let body = json!({ "username": "admin", "password": "admin-password" });
    let challenge = ts.post(REGISTER, None, &body).await;
    assert_eq!(challenge.0, StatusCode::UNAUTHORIZED, "{}", challenge.1);
    assert!(
        has_flow(&challenge.1, &["m.login.registration_token"]),
        "registration token flow expected: {}",
        challenge.1
    );
    let session = challenge.1["session"]
        .as_str()
        .expect("UIA challenge carries a session")
        .to_owned();
    assert!(
        challenge.1["params"].is_object(),
        "params expected: {}",
        challenge.1
    );

    let mut with_auth = body.clone();
    with_auth["auth"] = json!({
        "type": "m.login.registration_token",
        "token": token,
        "session": session,
    });
    let ok = expect_ok(ts.post(REGISTER, None, &with_auth).await);
    assert_eq!(ok["user_id"], json!("@admin:localhost"));
    let access_token = ok["access_token"].as_str().expect("access_token");
    assert!(access_token.len() >= 43, "token too short: {access_token}");
    assert!(
        ok["device_id"].as_str().is_some_and(|d| !d.is_empty()),
        "{ok}"
    );

    let who = expect_ok(ts.whoami(access_token).await);
    assert_eq!(who["user_id"], json!("@admin:localhost"));
    assert_eq!(who["device_id"], ok["device_id"]);

    assert_eq!(
        ts.bootstrap_token(),
        None,
        "bootstrap token is gone once a user exists"
    );
    assert_token_not_valid(&ts, &token).await;
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_token_is_single_use() {
    let ts = TestServer::start().await;
    let token = ts.bootstrap_token().expect("bootstrap token");
    ts.register_with_token("admin", "admin-password", &token)
        .await;

    let resp = ts
        .register(
            json!({ "username": "second", "password": "second-password" }),
            registration_token_auth(&token),
        )
        .await;
    assert_registration_forbidden(&resp);
    assert_available(&ts, "second").await;
    let resp = ts.login_raw("second", "second-password", json!({})).await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_is_rejected_and_does_not_consume_bootstrap_token() {
    let ts = TestServer::start().await;
    let resp = ts
        .register(
            json!({ "username": "intruder", "password": "intruder-password" }),
            registration_token_auth("definitely-not-the-token"),
        )
        .await;
    assert_registration_forbidden(&resp);
    assert_available(&ts, "intruder").await;
    assert_token_not_valid(&ts, "definitely-not-the-token").await;

    // The real token still works afterwards.
    let admin = ts.register_first_admin("admin", "admin-password").await;
    assert_eq!(admin.user_id, "@admin:localhost");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_registration_is_forbidden() {
    let ts = TestServer::start().await;
    ts.register_first_admin("admin", "admin-password").await;

    let resp = ts
        .post(
            REGISTER,
            None,
            &json!({ "username": "late", "password": "late-password" }),
        )
        .await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = ts
        .register(
            json!({ "username": "late", "password": "late-password" }),
            dummy_auth(),
        )
        .await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert_available(&ts, "late").await;
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_token_is_reusable() {
    let ts = TestServer::start_with(|cfg| {
        cfg.allow_registration = true;
        cfg.registration_token = Some("tok".to_owned());
    })
    .await;
    assert_eq!(
        expect_ok(ts.token_validity("tok").await)["valid"],
        json!(true)
    );
    assert_eq!(
        expect_ok(ts.token_validity("nope").await)["valid"],
        json!(false)
    );

    let challenge = ts
        .post(
            REGISTER,
            None,
            &json!({ "username": "alice", "password": "alice-password" }),
        )
        .await;
    assert_eq!(challenge.0, StatusCode::UNAUTHORIZED, "{}", challenge.1);
    assert!(
        has_flow(&challenge.1, &["m.login.registration_token"]),
        "{}",
        challenge.1
    );
    assert!(
        !has_flow(&challenge.1, &["m.login.dummy"]),
        "a token is required, so no dummy-only flow: {}",
        challenge.1
    );

    let alice = ts
        .register_with_token("alice", "alice-password", "tok")
        .await;
    let bob = ts.register_with_token("bob", "bob-password", "tok").await;
    assert_eq!(alice.user_id, "@alice:localhost");
    assert_eq!(bob.user_id, "@bob:localhost");
    assert_eq!(
        expect_ok(ts.token_validity("tok").await)["valid"],
        json!(true)
    );

    let resp = ts
        .register(
            json!({ "username": "carol", "password": "carol-password" }),
            registration_token_auth("nope"),
        )
        .await;
    assert_registration_forbidden(&resp);
    assert_available(&ts, "carol").await;

    let resp = ts
        .register(
            json!({ "username": "dave", "password": "dave-password" }),
            dummy_auth(),
        )
        .await;
    assert!(!resp.0.is_success(), "dummy auth must not pass: {}", resp.1);
    assert_available(&ts, "dave").await;
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_registration_uses_dummy_flow() {
    let ts = TestServer::start_open().await;
    let challenge = ts
        .post(
            REGISTER,
            None,
            &json!({ "username": "alice", "password": "alice-password" }),
        )
        .await;
    assert_eq!(challenge.0, StatusCode::UNAUTHORIZED, "{}", challenge.1);
    assert!(
        has_flow(&challenge.1, &["m.login.dummy"]),
        "{}",
        challenge.1
    );

    let alice = ts.register_open("alice", "alice-password").await;
    assert_eq!(alice.user_id, "@alice:localhost");
    assert!(alice.access_token.len() >= 43);
    ts.assert_token_valid(&alice.access_token).await;
    let bob = ts.register_open("bob", "bob-password").await;
    assert_ne!(alice.access_token, bob.access_token);

    // The new account can log in with its password.
    let again = ts.login("alice", "alice-password").await;
    assert_eq!(again.user_id, alice.user_id);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_is_generated_when_omitted() {
    let ts = TestServer::start_open().await;
    let body = expect_ok(
        ts.register(json!({ "password": "some-password" }), dummy_auth())
            .await,
    );
    let user_id = body["user_id"].as_str().expect("user_id");
    assert!(
        user_id.starts_with('@') && user_id.ends_with(":localhost") && user_id.len() > 11,
        "generated user id looks wrong: {user_id}"
    );
    let session = Session::from_body(&body);
    ts.assert_token_valid(&session.access_token).await;
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_username_is_user_in_use() {
    let ts = TestServer::start_open().await;
    ts.register_open("alice", "alice-password").await;
    let resp = ts
        .register(
            json!({ "username": "alice", "password": "other-password" }),
            dummy_auth(),
        )
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_USER_IN_USE");
    // The original password still works: the account was not overwritten.
    ts.login("alice", "alice-password").await;
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_username_is_rejected() {
    let ts = TestServer::start_open().await;
    for bad in ["Bad User!", "white space", "@alice:localhost"] {
        let resp = ts
            .register(
                json!({ "username": bad, "password": "pw-pw-pw" }),
                dummy_auth(),
            )
            .await;
        assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_USERNAME");
    }
    let resp = ts.username_available("Bad User!").await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_USERNAME");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_available_reflects_accounts() {
    let ts = TestServer::start().await;
    assert_available(&ts, "admin").await;
    ts.register_first_admin("admin", "admin-password").await;
    let resp = ts.username_available("admin").await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_USER_IN_USE");
    assert_available(&ts, "someone_else").await;
    let resp = ts.username_available("no spaces allowed").await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_USERNAME");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inhibit_login_returns_no_access_token() {
    let ts = TestServer::start_open().await;
    let body = expect_ok(
        ts.register(
            json!({ "username": "quiet", "password": "quiet-password", "inhibit_login": true }),
            dummy_auth(),
        )
        .await,
    );
    assert_eq!(body["user_id"], json!("@quiet:localhost"));
    assert!(
        body.get("access_token").is_none(),
        "no access token expected: {body}"
    );
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh token expected: {body}"
    );

    // The account exists and can log in; it got no device from registration.
    let resp = ts.username_available("quiet").await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_USER_IN_USE");
    let session = ts.login("quiet", "quiet-password").await;
    assert_eq!(
        ts.device_ids(&session).await,
        vec![session.device_id.clone()]
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_id_and_initial_display_name_are_used() {
    let ts = TestServer::start().await;
    let token = ts.bootstrap_token().expect("bootstrap token");
    let body = expect_ok(
        ts.register(
            json!({
                "username": "admin",
                "password": "admin-password",
                "device_id": "MYPHONE",
                "initial_device_display_name": "Test Phone",
            }),
            registration_token_auth(&token),
        )
        .await,
    );
    assert_eq!(body["device_id"], json!("MYPHONE"));
    let session = Session::from_body(&body);

    let devices = expect_ok(ts.get(DEVICES, session.bearer()).await);
    let list = devices["devices"].as_array().expect("devices array");
    assert_eq!(list.len(), 1, "{devices}");
    assert_eq!(list[0]["device_id"], json!("MYPHONE"));
    assert_eq!(list[0]["display_name"], json!("Test Phone"));
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_with_refresh_token() {
    let ts = TestServer::start_open().await;
    let body: Value = expect_ok(
        ts.register(
            json!({ "username": "fresh", "password": "fresh-password", "refresh_token": true }),
            dummy_auth(),
        )
        .await,
    );
    let refresh = body["refresh_token"]
        .as_str()
        .expect("refresh_token expected");
    assert!(
        body["expires_in_ms"].as_u64().is_some_and(|ms| ms > 0),
        "{body}"
    );
    let refreshed = expect_ok(
        ts.post(
            "/_matrix/client/v3/refresh",
            None,
            &json!({ "refresh_token": refresh }),
        )
        .await,
    );
    let new_token = refreshed["access_token"].as_str().expect("access_token");
    ts.assert_token_valid(new_token).await;
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_rate_limit_counts_attempts_not_flow_queries() {
    let ts = TestServer::start_with(|cfg| {
        cfg.allow_registration = true;
        cfg.registration_token = None;
        cfg.registration_rate_limit = conclave::config::RateLimit {
            per_second: 0.001,
            burst: 2,
        };
    })
    .await;
    // Each sign-up is two requests (flows, then the dummy stage) but costs one token.
    ts.register_open("first", "first-password").await;
    ts.register_open("second", "second-password").await;
    let resp = ts
        .register(
            json!({ "username": "third", "password": "third-password" }),
            dummy_auth(),
        )
        .await;
    assert_errcode(&resp, StatusCode::TOO_MANY_REQUESTS, "M_LIMIT_EXCEEDED");
    assert!(
        resp.1["retry_after_ms"].as_u64().unwrap_or(0) > 0,
        "{resp:?}"
    );
    ts.shutdown().await;
}
