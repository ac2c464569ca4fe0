//! Server-side key backup (`/room_keys`): versions, keys, the keep-the-best-copy rule, etags.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const VERSION: &str = "/_matrix/client/v3/room_keys/version";

fn session(first_message_index: u64, forwarded_count: u64, verified: bool, tag: &str) -> Value {
    json!({
        "first_message_index": first_message_index,
        "forwarded_count": forwarded_count,
        "is_verified": verified,
        "session_data": { "ciphertext": tag, "ephemeral": "eph", "mac": "mac" },
    })
}

fn keys_path(version: &str, rest: &str) -> String {
    format!("/_matrix/client/v3/room_keys/keys{rest}?version={version}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_versions_and_keys() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let room = "!room:localhost";
    let room_enc = enc(room);

    let resp = ts.get(VERSION, alice.bearer()).await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    let auth_data = json!({ "public_key": "abcdef", "signatures": {} });
    let created = expect_ok(
        ts.post(
            VERSION,
            alice.bearer(),
            &json!({ "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": auth_data }),
        )
        .await,
    );
    let version = created["version"].as_str().unwrap().to_owned();
    let current = expect_ok(ts.get(VERSION, alice.bearer()).await);
    assert_eq!(current["version"], version.as_str());
    assert_eq!(current["auth_data"], auth_data);
    assert_eq!(current["count"], 0);
    let etag0 = current["etag"].as_str().unwrap().to_owned();

    // Store two sessions.
    let stored = expect_ok(
        ts.put(
            &keys_path(&version, ""),
            alice.bearer(),
            &json!({ "rooms": { room: { "sessions": {
                "s1": session(5, 1, false, "s1-first"),
                "s2": session(0, 0, false, "s2"),
            } } } }),
        )
        .await,
    );
    assert_eq!(stored["count"], 2);
    assert_ne!(stored["etag"], etag0.as_str());
    let etag1 = stored["etag"].clone();

    // A worse copy (later first message) is ignored; the etag stays.
    let worse = expect_ok(
        ts.put(
            &keys_path(&version, &format!("/{room_enc}/s1")),
            alice.bearer(),
            &session(9, 0, false, "s1-worse"),
        )
        .await,
    );
    assert_eq!(worse["etag"], etag1);
    let got = expect_ok(
        ts.get(
            &keys_path(&version, &format!("/{room_enc}/s1")),
            alice.bearer(),
        )
        .await,
    );
    assert_eq!(got["session_data"]["ciphertext"], "s1-first");

    // A verified copy wins over an unverified one, even starting later.
    expect_ok(
        ts.put(
            &keys_path(&version, &format!("/{room_enc}")),
            alice.bearer(),
            &json!({ "sessions": { "s1": session(7, 3, true, "s1-verified") } }),
        )
        .await,
    );
    let room_keys = expect_ok(
        ts.get(
            &keys_path(&version, &format!("/{room_enc}")),
            alice.bearer(),
        )
        .await,
    );
    assert_eq!(
        room_keys["sessions"]["s1"]["session_data"]["ciphertext"],
        "s1-verified"
    );
    let all = expect_ok(ts.get(&keys_path(&version, ""), alice.bearer()).await);
    assert_eq!(
        all["rooms"][room]["sessions"].as_object().unwrap().len(),
        2,
        "{all}"
    );

    // Unknown session: 404. Malformed key data: 400 and nothing stored.
    let resp = ts
        .get(
            &keys_path(&version, &format!("/{room_enc}/nope")),
            alice.bearer(),
        )
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let resp = ts
        .put(
            &keys_path(&version, &format!("/{room_enc}/bad")),
            alice.bearer(),
            &json!({ "session_data": "not an object" }),
        )
        .await;
    assert_eq!(resp.0, StatusCode::BAD_REQUEST, "{resp:?}");

    // A newer version makes writes to the old one fail with the current version named.
    let newer = expect_ok(
        ts.post(
            VERSION,
            alice.bearer(),
            &json!({ "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": { "public_key": "xyz" } }),
        )
        .await,
    );
    let newer = newer["version"].as_str().unwrap().to_owned();
    let resp = ts
        .put(
            &keys_path(&version, ""),
            alice.bearer(),
            &json!({ "rooms": { room: { "sessions": { "s3": session(0, 0, false, "s3") } } } }),
        )
        .await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_WRONG_ROOM_KEYS_VERSION");
    assert_eq!(resp.1["current_version"], newer.as_str());

    // Updating auth_data keeps the algorithm; changing it is refused.
    expect_ok(
        ts.put(
            &format!("{VERSION}/{newer}"),
            alice.bearer(),
            &json!({ "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": { "public_key": "xyz2" }, "version": newer }),
        )
        .await,
    );
    let info = expect_ok(ts.get(&format!("{VERSION}/{newer}"), alice.bearer()).await);
    assert_eq!(info["auth_data"]["public_key"], "xyz2");
    let resp = ts
        .put(
            &format!("{VERSION}/{newer}"),
            alice.bearer(),
            &json!({ "algorithm": "m.other", "auth_data": {} }),
        )
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");

    // Deleting keys and versions.
    let deleted = expect_ok(
        ts.delete(
            &keys_path(&version, &format!("/{room_enc}/s2")),
            alice.bearer(),
        )
        .await,
    );
    assert_eq!(deleted["count"], 1);
    expect_ok(
        ts.delete(&format!("{VERSION}/{version}"), alice.bearer())
            .await,
    );
    let resp = ts
        .get(&format!("{VERSION}/{version}"), alice.bearer())
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let current = expect_ok(ts.get(VERSION, alice.bearer()).await);
    assert_eq!(current["version"], newer.as_str());

    // Another user sees none of it.
    let bob = ts.register_open("bob", "bob-password").await;
    let resp = ts.get(&format!("{VERSION}/{newer}"), bob.bearer()).await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    ts.shutdown().await;
}
