//! Device management: listing, reading, renaming and deleting devices.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const DELETE_DEVICES: &str = "/_matrix/client/v3/delete_devices";

fn device_path(device_id: &str) -> String {
    format!("{DEVICES}/{}", enc(device_id))
}

/// Logs `user` in again on a new device with the given ID and display name.
async fn login_device(
    ts: &TestServer,
    user: &str,
    password: &str,
    id: &str,
    name: &str,
) -> Session {
    Session::from_body(&expect_ok(
        ts.login_raw(
            user,
            password,
            json!({ "device_id": id, "initial_device_display_name": name }),
        )
        .await,
    ))
}

fn find_device<'a>(list: &'a Value, device_id: &str) -> Option<&'a Value> {
    list["devices"]
        .as_array()
        .expect("devices array")
        .iter()
        .find(|d| d["device_id"] == json!(device_id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_get_devices() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    let phone = login_device(&ts, "alice", "alice-password", "PHONE", "Alice's phone").await;
    let laptop = login_device(&ts, "alice", "alice-password", "LAPTOP", "Alice's laptop").await;

    let list = expect_ok(ts.get(DEVICES, alice.bearer()).await);
    let mut ids: Vec<&str> = list["devices"]
        .as_array()
        .expect("devices array")
        .iter()
        .map(|d| d["device_id"].as_str().expect("device_id"))
        .collect();
    ids.sort_unstable();
    let mut expected = vec![alice.device_id.as_str(), "LAPTOP", "PHONE"];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    assert_eq!(
        find_device(&list, "PHONE").expect("PHONE listed")["display_name"],
        json!("Alice's phone")
    );

    // Any of the user's devices sees the same list.
    let from_phone = expect_ok(ts.get(DEVICES, phone.bearer()).await);
    assert_eq!(from_phone["devices"].as_array().map(Vec::len), Some(3));

    let device = expect_ok(ts.get(&device_path("LAPTOP"), phone.bearer()).await);
    assert_eq!(device["device_id"], json!("LAPTOP"));
    assert_eq!(device["display_name"], json!("Alice's laptop"));
    assert_eq!(laptop.device_id, "LAPTOP");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_device() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    let path = device_path(&alice.device_id);

    expect_ok(
        ts.put(
            &path,
            alice.bearer(),
            &json!({ "display_name": "Work desktop" }),
        )
        .await,
    );
    let device = expect_ok(ts.get(&path, alice.bearer()).await);
    assert_eq!(device["display_name"], json!("Work desktop"));
    let list = expect_ok(ts.get(DEVICES, alice.bearer()).await);
    assert_eq!(
        find_device(&list, &alice.device_id).expect("listed")["display_name"],
        json!("Work desktop")
    );

    // An empty body changes nothing.
    expect_ok(ts.put(&path, alice.bearer(), &json!({})).await);
    let device = expect_ok(ts.get(&path, alice.bearer()).await);
    assert_eq!(device["display_name"], json!("Work desktop"));
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_foreign_devices_are_not_found() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;

    let resp = ts.get(&device_path("NOSUCHDEVICE"), alice.bearer()).await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    // Bob's device is invisible to Alice, and she cannot rename it.
    let resp = ts.get(&device_path(&bob.device_id), alice.bearer()).await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let resp = ts
        .put(
            &device_path(&bob.device_id),
            alice.bearer(),
            &json!({ "display_name": "pwned" }),
        )
        .await;
    assert!(resp.0.is_client_error(), "{}", resp.1);
    let device = expect_ok(ts.get(&device_path(&bob.device_id), bob.bearer()).await);
    assert_ne!(device["display_name"], json!("pwned"));

    let list = expect_ok(ts.get(DEVICES, alice.bearer()).await);
    assert!(find_device(&list, &bob.device_id).is_none(), "{list}");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_device_requires_uia() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    let phone = login_device(&ts, "alice", "alice-password", "PHONE", "Phone").await;
    let path = device_path("PHONE");

    let challenge = ts
        .request(Method::DELETE, &path, alice.bearer(), Some(&json!({})))
        .await;
    assert_eq!(challenge.0, StatusCode::UNAUTHORIZED, "{}", challenge.1);
    assert!(
        has_flow(&challenge.1, &["m.login.password"]),
        "{}",
        challenge.1
    );

    let resp = ts
        .uia_password(Method::DELETE, &path, &alice, "wrong-password", json!({}))
        .await;
    assert_errcode(&resp, StatusCode::UNAUTHORIZED, "M_FORBIDDEN");
    ts.assert_token_valid(&phone.access_token).await;
    expect_ok(ts.get(&path, alice.bearer()).await);

    expect_ok(
        ts.uia_password(Method::DELETE, &path, &alice, "alice-password", json!({}))
            .await,
    );
    let resp = ts.get(&path, alice.bearer()).await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    ts.assert_token_rejected(&phone.access_token).await;
    ts.assert_token_valid(&alice.access_token).await;
    assert_eq!(ts.device_ids(&alice).await, vec![alice.device_id.clone()]);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_devices_in_bulk() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    let phone = login_device(&ts, "alice", "alice-password", "PHONE", "Phone").await;
    let tablet = login_device(&ts, "alice", "alice-password", "TABLET", "Tablet").await;
    let laptop = login_device(&ts, "alice", "alice-password", "LAPTOP", "Laptop").await;

    let body = json!({ "devices": ["PHONE", "TABLET"] });
    let challenge = ts.post(DELETE_DEVICES, alice.bearer(), &body).await;
    assert_eq!(challenge.0, StatusCode::UNAUTHORIZED, "{}", challenge.1);
    assert!(
        has_flow(&challenge.1, &["m.login.password"]),
        "{}",
        challenge.1
    );
    // Nothing deleted by the challenge.
    ts.assert_token_valid(&phone.access_token).await;

    expect_ok(
        ts.uia_password(Method::POST, DELETE_DEVICES, &alice, "alice-password", body)
            .await,
    );
    ts.assert_token_rejected(&phone.access_token).await;
    ts.assert_token_rejected(&tablet.access_token).await;
    ts.assert_token_valid(&laptop.access_token).await;
    ts.assert_token_valid(&alice.access_token).await;

    let mut remaining = ts.device_ids(&alice).await;
    remaining.sort_unstable();
    let mut expected = vec![alice.device_id.clone(), "LAPTOP".to_owned()];
    expected.sort_unstable();
    assert_eq!(remaining, expected);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_own_current_device_revokes_its_token() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    let other = ts.login("alice", "alice-password").await;
    let path = device_path(&alice.device_id);

    expect_ok(
        ts.uia_password(Method::DELETE, &path, &alice, "alice-password", json!({}))
            .await,
    );
    ts.assert_token_rejected(&alice.access_token).await;
    assert_eq!(ts.device_ids(&other).await, vec![other.device_id.clone()]);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_record_where_they_were_last_seen() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    let device = expect_ok(ts.get(&device_path(&alice.device_id), alice.bearer()).await);
    assert_eq!(device["last_seen_ip"], json!("127.0.0.1"));
    let seen = device["last_seen_ts"]
        .as_u64()
        .expect("last_seen_ts is a timestamp");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        seen <= now_ms && seen > now_ms - 3_600_000,
        "last_seen_ts {seen} is not recent"
    );
    ts.shutdown().await;
}
