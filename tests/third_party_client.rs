//! A client we did not write — matrix-nio, a Python Matrix SDK most enterprise bots are built
//! on — logs in to Conclave and manages its session; two nio clients create, join and chat in
//! rooms, one of them end-to-end encrypted. This proves a real client accepts our responses.
//!
//! Needs a Python with `matrix-nio[e2e]` installed: `CONCLAVE_TEST_PYTHON` names it (`.ci/run`
//! sets it up), else `python3` is tried.

mod common;

use common::{TestServer, expect_ok, room_path, run_nio};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_nio_logs_in_and_manages_its_session() {
    let server = TestServer::start().await;
    let admin = server
        .register_first_admin("nio", "correct horse battery")
        .await;

    let seen = run_nio(
        "nio_session.py",
        &[&server.url(""), &admin.user_id, "correct horse battery"],
    )
    .await;
    assert_eq!(seen["user_id"], admin.user_id.as_str());
    assert_eq!(seen["whoami"], admin.user_id.as_str());
    assert_eq!(seen["displayname"], "Nio Tester");
    let nio_device = seen["device_id"].as_str().expect("nio got a device ID");
    assert_eq!(seen["devices"][nio_device], "matrix-nio test");

    // What nio changed is really stored, and its logout really deleted its device.
    let profile = expect_ok(
        server
            .get(
                &format!("/_matrix/client/v3/profile/{}", common::enc(&admin.user_id)),
                None,
            )
            .await,
    );
    assert_eq!(profile["displayname"], "Nio Tester");
    let devices = server.device_ids(&admin).await;
    assert!(
        !devices.iter().any(|d| d == nio_device),
        "nio's device survived its logout: {devices:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_nio_clients_create_join_and_chat_encrypted() {
    let server = TestServer::start_open().await;
    let password = "nio chat password";
    let alice = server.register_open("alice", password).await;
    let bob = server.register_open("bob", password).await;
    let store = tempfile::tempdir().unwrap();

    let seen = run_nio(
        "nio_chat.py",
        &[
            &server.url(""),
            &alice.user_id,
            &bob.user_id,
            password,
            store.path().to_str().unwrap(),
        ],
    )
    .await;
    let plain = seen["plain"].as_str().expect("plain room");
    let secret = seen["secret"].as_str().expect("secret room");
    assert_eq!(seen["joined"], serde_json::json!([plain, secret]), "{seen}");
    assert_eq!(seen["secret_encrypted"], true, "{seen}");
    // Each read the other's messages, the encrypted ones decrypted by nio.
    for (saw, sender, texts) in [
        ("bob_saw", &alice, ["hello from alice", "secret from alice"]),
        ("alice_saw", &bob, ["hello from bob", "secret from bob"]),
    ] {
        for (room, text) in [plain, secret].into_iter().zip(texts) {
            let found = seen[saw].as_array().unwrap().iter().any(|m| {
                m["room"] == room && m["sender"] == sender.user_id.as_str() && m["body"] == text
            });
            assert!(found, "{saw} lacks {text:?} in {room}: {seen}");
        }
    }

    // The server holds the encrypted room's messages as ciphertext only.
    let history = |room: &str| room_path(room, "/messages?dir=b&limit=50");
    let secret_events = expect_ok(server.get(&history(secret), alice.bearer()).await).to_string();
    assert!(
        secret_events.contains("m.room.encrypted"),
        "{secret_events}"
    );
    assert!(!secret_events.contains("secret from"), "{secret_events}");
    let plain_events = expect_ok(server.get(&history(plain), bob.bearer()).await).to_string();
    assert!(plain_events.contains("hello from bob"), "{plain_events}");
    server.shutdown().await;
}
