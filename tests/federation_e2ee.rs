//! End-to-end encryption across two Conclave servers with a real client library
//! (matrix-nio with vodozemac): Alice on one server, Bob on the other, chat in a plain and an
//! encrypted room. For the encrypted one to work, each side's device keys are queried across
//! servers (`user/keys/query`), one-time keys claimed (`user/keys/claim`), the room key sent
//! to the other's device as a to-device message (`m.direct_to_device`), and the messages
//! decrypted by the other client. Also: what the servers hold is ciphertext, and a device
//! the remote user adds later is announced (`m.device_list_update`) and listed.

mod common;

use common::federation::*;
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nio_clients_on_two_servers_decrypt_each_other() {
    let (a, _pki_a) = conclave_peer(96).await;
    let (b, _pki_b) = conclave_peer(97).await;
    let password = "correct horse battery";
    let alice = a.register_open("alice", password).await;
    let bob = b.register_open("bob", password).await;
    let store = tempfile::tempdir().unwrap();
    let seen = run_nio(
        "nio_chat.py",
        &[
            &a.url(""),
            &alice.user_id,
            &bob.user_id,
            password,
            store.path().to_str().unwrap(),
            &b.url(""),
        ],
    )
    .await;
    let plain = seen["plain"].as_str().expect("plain room");
    let secret = seen["secret"].as_str().expect("secret room");
    assert_eq!(seen["secret_encrypted"], true, "{seen}");
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
    // Bob's full sync shows the room's state from before his join (as the resident server
    // answered it): without it his client would not know the room is encrypted.
    let sync = sync_now(&b, &bob).await;
    let state = sync["rooms"]["join"][secret]["state"]["events"].to_string();
    assert!(
        state.contains("m.room.encryption") && state.contains("m.room.create"),
        "{state}"
    );
    // Both servers hold the encrypted room's messages as ciphertext only.
    for (ts, who) in [(&a, &alice), (&b, &bob)] {
        let history = expect_ok(
            ts.get(&room_path(secret, "/messages?dir=b&limit=50"), who.bearer())
                .await,
        )
        .to_string();
        assert!(
            !history.contains("secret from") && history.contains("m.megolm.v1.aes-sha2"),
            "{history}"
        );
    }

    // Bob logs in on a new device and uploads its keys: Alice's server hears of it, tells
    // her client the list changed, and a query across the servers lists the new device.
    let since = sync_now(&a, &alice).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let login = expect_ok(
        b.post(
            "/_matrix/client/v3/login",
            None,
            &json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "bob" },
                     "password": password, "device_id": "BOBPHONE" }),
        )
        .await,
    );
    let phone_token = login["access_token"].as_str().unwrap().to_owned();
    // The phone's device keys, self-signed as a real client makes them.
    let der = ruma::signatures::Ed25519KeyPair::generate();
    let pair = ruma::signatures::Ed25519KeyPair::from_der(&der, "BOBPHONE".to_owned()).unwrap();
    let ed25519 =
        ruma::serde::Base64::<ruma::serde::base64::Standard>::new(pair.public_key().to_vec())
            .encode();
    let mut device_keys: ruma::CanonicalJsonObject = serde_json::from_value(json!({
        "user_id": bob.user_id, "device_id": "BOBPHONE",
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": { "curve25519:BOBPHONE": "dGVzdGN1cnZlMjU1MTlrZXlmb3Job2JwaG9uZTAwMA",
                  "ed25519:BOBPHONE": ed25519 },
    }))
    .unwrap();
    ruma::signatures::sign_json(&bob.user_id, &pair, &mut device_keys).unwrap();
    let uploaded = b
        .post(
            "/_matrix/client/v3/keys/upload",
            Some(&phone_token),
            &json!({ "device_keys": device_keys }),
        )
        .await;
    assert_eq!(uploaded.0, 200, "{}", uploaded.1);
    eventually(
        "bob's new device in alice's device_lists.changed",
        || async {
            a.get(
                &format!("/_matrix/client/v3/sync?timeout=0&since={}", enc(&since)),
                alice.bearer(),
            )
            .await
            .1
        },
        |s| {
            s["device_lists"]["changed"]
                .as_array()
                .is_some_and(|c| c.contains(&json!(bob.user_id)))
        },
    )
    .await;
    let query = expect_ok(
        a.post(
            "/_matrix/client/v3/keys/query",
            alice.bearer(),
            &json!({ "device_keys": { bob.user_id.as_str(): [] } }),
        )
        .await,
    );
    assert!(
        query["device_keys"][&bob.user_id].get("BOBPHONE").is_some(),
        "{query}"
    );
    assert_eq!(query["failures"], json!({}), "{query}");
    a.shutdown().await;
    b.shutdown().await;
}

/// The same encrypted conversation with Bob on a real Synapse: keys, one-time keys and room
/// keys cross between Conclave and Synapse in both directions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nio_clients_on_conclave_and_synapse_decrypt_each_other() {
    const SYNAPSE_IP: &str = "127.0.0.99";
    let (a, _pki_a) = conclave_peer(98).await;
    let password = "correct horse battery";
    let alice = a.register_open("alice", password).await;
    let synapse = SynapsePeer::start(SYNAPSE_IP).await;
    synapse.register(SYNAPSE_IP, "bob", password).await;
    let bob_id = format!("@bob:{SYNAPSE_IP}:8448");
    let store = tempfile::tempdir().unwrap();
    let seen = run_nio(
        "nio_chat.py",
        &[
            &a.url(""),
            &alice.user_id,
            &bob_id,
            password,
            store.path().to_str().unwrap(),
            &format!("http://{SYNAPSE_IP}:8008"),
        ],
    )
    .await;
    let secret = seen["secret"].as_str().expect("secret room");
    assert_eq!(seen["secret_encrypted"], true, "{seen}");
    for (saw, sender, text) in [
        ("bob_saw", alice.user_id.as_str(), "secret from alice"),
        ("alice_saw", bob_id.as_str(), "secret from bob"),
    ] {
        let found = seen[saw]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["room"] == secret && m["sender"] == sender && m["body"] == text);
        assert!(
            found,
            "{saw} lacks {text:?}: {seen}\n{}",
            synapse.log_tail()
        );
    }
    let history = expect_ok(
        a.get(
            &room_path(secret, "/messages?dir=b&limit=50"),
            alice.bearer(),
        )
        .await,
    )
    .to_string();
    assert!(!history.contains("secret from"), "{history}");
    synapse.stop().await;
    a.shutdown().await;
}
