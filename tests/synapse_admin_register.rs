//! Accounts made or entered through Synapse's admin API: shared-secret registration exactly as
//! `register_new_matrix_user` does it (nonce, HMAC-SHA1 over the account, Synapse's errors), and
//! an administrator logging in as a user on a device the user's device lists do not show.

mod common;

use common::media::audit;
use common::*;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ADMIN: &str = "/_synapse/admin";
const SECRET: &str = "it-provisioning-secret";

/// The MAC `register_new_matrix_user` computes.
fn mac(secret: &str, nonce: &str, user: &str, password: &str, admin: bool) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    let admin: &[u8] = if admin { b"admin" } else { b"notadmin" };
    for (i, part) in [
        nonce.as_bytes(),
        user.as_bytes(),
        password.as_bytes(),
        admin,
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            mac.update(b"\0");
        }
        mac.update(part);
    }
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn nonce(ts: &TestServer) -> String {
    let body = expect_ok(ts.get(&format!("{ADMIN}/v1/register"), None).await);
    body["nonce"].as_str().expect("nonce").to_owned()
}

async fn register(ts: &TestServer, body: &Value) -> Resp {
    ts.post(&format!("{ADMIN}/v1/register"), None, body).await
}

/// A complete registration body with a fresh nonce and the right MAC.
async fn signed(ts: &TestServer, user: &str, password: &str, admin: bool) -> Value {
    let nonce = nonce(ts).await;
    json!({
        "nonce": nonce,
        "username": user,
        "password": password,
        "admin": admin,
        "mac": mac(SECRET, &nonce, user, password, admin),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_secret_registration_creates_accounts_as_synapse_does() {
    let ts = TestServer::start_with(|cfg| {
        cfg.registration_shared_secret = Some(SECRET.to_owned());
    })
    .await;

    // The first account, an administrator, with a display name.
    let mut body = signed(&ts, "Boss", "boss-password", true).await;
    body["displayname"] = json!("The Boss");
    let created = expect_ok(register(&ts, &body).await);
    assert_eq!(created["user_id"], "@boss:localhost", "{created}");
    assert_eq!(created["home_server"], "localhost");
    assert!(created["device_id"].is_string(), "{created}");
    let boss = Session::from_body(&created);
    ts.assert_token_valid(&boss.access_token).await;
    let me = expect_ok(
        ts.get(&format!("{ADMIN}/v2/users/@boss:localhost"), boss.bearer())
            .await,
    );
    assert_eq!(
        (me["admin"].clone(), me["displayname"].clone()),
        (json!(true), json!("The Boss"))
    );

    // An ordinary account, which logs in with its password and is no administrator.
    let created =
        expect_ok(register(&ts, &signed(&ts, "worker", "worker-password", false).await).await);
    let worker = ts.login("worker", "worker-password").await;
    assert_eq!(worker.user_id, created["user_id"].as_str().unwrap());
    let resp = ts.get(&format!("{ADMIN}/v2/users"), worker.bearer()).await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    // A second administrator: the flag is taken from the request, not from being first.
    let deputy = Session::from_body(&expect_ok(
        register(&ts, &signed(&ts, "deputy", "deputy-password", true).await).await,
    ));
    expect_ok(ts.get(&format!("{ADMIN}/v2/users"), deputy.bearer()).await);

    // A nonce works once.
    let body = signed(&ts, "again", "again-password", false).await;
    expect_ok(register(&ts, &body).await);
    let mut reused = body.clone();
    reused["username"] = json!("other");
    reused["mac"] = json!(mac(
        SECRET,
        body["nonce"].as_str().unwrap(),
        "other",
        "again-password",
        false
    ));
    let resp = register(&ts, &reused).await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_UNKNOWN");
    assert_eq!(resp.1["error"], "unrecognised nonce");

    // A wrong MAC (another secret; or asking for admin with a notadmin MAC) is refused.
    let nonce_value = nonce(&ts).await;
    let wrong = json!({ "nonce": nonce_value, "username": "mallory", "password": "pw",
        "mac": mac("guessed", &nonce_value, "mallory", "pw", false) });
    let resp = register(&ts, &wrong).await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_UNKNOWN");
    assert_eq!(resp.1["error"], "HMAC incorrect");
    let mut escalated = signed(&ts, "mallory", "pw", false).await;
    escalated["admin"] = json!(true);
    let resp = register(&ts, &escalated).await;
    assert_eq!(resp.0, StatusCode::FORBIDDEN, "{}", resp.1);
    let resp = ts.login_raw("mallory", "pw", json!({})).await;
    assert_eq!(
        resp.0,
        StatusCode::FORBIDDEN,
        "mallory must not exist: {}",
        resp.1
    );

    // Missing fields, taken and invalid names.
    let resp = register(&ts, &json!({ "username": "x" })).await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    let mut no_mac = signed(&ts, "nomac", "pw", false).await;
    no_mac.as_object_mut().unwrap().remove("mac");
    assert_errcode(
        &register(&ts, &no_mac).await,
        StatusCode::BAD_REQUEST,
        "M_BAD_JSON",
    );
    let resp = register(&ts, &signed(&ts, "worker", "pw", false).await).await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_USER_IN_USE");
    let resp = register(&ts, &signed(&ts, "not valid!", "pw", false).await).await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_USERNAME");

    // Audited, with neither the password nor the MAC.
    let log = audit(&ts).await;
    assert!(
        log.contains("POST /_synapse/admin/v1/register worker (admin: false"),
        "{log}"
    );
    assert!(log.contains("HMAC incorrect"), "{log}");
    assert!(
        !log.contains("worker-password") && !log.contains(body["mac"].as_str().unwrap()),
        "{log}"
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_secret_registration_is_off_without_a_secret() {
    let ts = TestServer::start().await;
    let nonce_value = nonce(&ts).await;
    let body = json!({ "nonce": nonce_value, "username": "u", "password": "p",
        "mac": mac("", &nonce_value, "u", "p", false) });
    let resp = register(&ts, &body).await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_UNKNOWN");
    assert_eq!(resp.1["error"], "Shared secret registration is not enabled");
    let resp = ts.login_raw("u", "p", json!({})).await;
    assert_eq!(resp.0, StatusCode::FORBIDDEN, "{}", resp.1);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_log_in_as_a_user_on_a_hidden_device() {
    let ts = TestServer::start_open().await;
    let admin = ts.register_open("admin", "admin-password").await;
    let alice = ts.register_open("alice", "alice-password").await;
    let login_path = format!("{ADMIN}/v1/users/@alice:localhost/login");

    // An empty body is accepted, as in Synapse.
    let answer = expect_ok(
        ts.request(Method::POST, &login_path, admin.bearer(), None)
            .await,
    );
    let token = answer["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    assert_eq!(answer.as_object().unwrap().len(), 1, "{answer}");
    let whoami = expect_ok(ts.whoami(&token).await);
    assert_eq!(whoami["user_id"], "@alice:localhost");
    // The token works on the client API as alice: she can send in her room.
    let room = create_room(&ts, &alice, json!({})).await;
    let puppet = Session {
        user_id: alice.user_id.clone(),
        access_token: token.clone(),
        device_id: whoami["device_id"].as_str().unwrap_or_default().to_owned(),
    };
    send_text_id(&ts, &puppet, &room, "support1", "sent by support").await;
    // Neither alice nor the admin API sees the device.
    assert_eq!(ts.device_ids(&alice).await, [alice.device_id.as_str()]);
    assert_eq!(ts.device_ids(&puppet).await, [alice.device_id.as_str()]);
    let devices = expect_ok(
        ts.get(
            &format!("{ADMIN}/v2/users/@alice:localhost/devices"),
            admin.bearer(),
        )
        .await,
    );
    assert_eq!(devices["total"], 1, "{devices}");

    // A token with an expiry in the past no longer works.
    let expired = expect_ok(
        ts.post(
            &login_path,
            admin.bearer(),
            &json!({ "valid_until_ms": 1_000 }),
        )
        .await,
    );
    let resp = ts.whoami(expired["access_token"].as_str().unwrap()).await;
    assert_eq!(resp.0, StatusCode::UNAUTHORIZED, "{}", resp.1);

    // Errors: oneself, unknown, remote users, non-administrators, a malformed expiry.
    let resp = ts
        .post(
            &format!("{ADMIN}/v1/users/@admin:localhost/login"),
            admin.bearer(),
            &json!({}),
        )
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_UNKNOWN");
    let resp = ts
        .post(
            &format!("{ADMIN}/v1/users/@nobody:localhost/login"),
            admin.bearer(),
            &json!({}),
        )
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let resp = ts
        .post(
            &format!("{ADMIN}/v1/users/@x:elsewhere.org/login"),
            admin.bearer(),
            &json!({}),
        )
        .await;
    assert_eq!(resp.0, StatusCode::BAD_REQUEST, "{}", resp.1);
    let resp = ts
        .post(
            &format!("{ADMIN}/v1/users/@admin:localhost/login"),
            alice.bearer(),
            &json!({}),
        )
        .await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = ts
        .post(
            &login_path,
            admin.bearer(),
            &json!({ "valid_until_ms": "soon" }),
        )
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_BAD_JSON");

    // Logging alice out everywhere (here: a password reset) ends the hidden session too.
    expect_ok(
        ts.post(
            &format!("{ADMIN}/v1/reset_password/@alice:localhost"),
            admin.bearer(),
            &json!({ "new_password": "alice-new-password" }),
        )
        .await,
    );
    ts.assert_token_rejected(&token).await;
    let log = audit(&ts).await;
    assert!(
        log.contains("POST /_synapse/admin/v1/users/@alice:localhost/login (valid_until_ms: None)"),
        "{log}"
    );
    ts.shutdown().await;
}
