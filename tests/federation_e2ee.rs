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
use serde_json::{Value, json};

/// Bob's device added after the chat started (on his server) got the room key of Alice's
/// next message: her client learnt of the device across the servers and shared the key.
fn assert_new_device_decrypted(seen: &Value, room: &str, alice: &str) {
    let found = seen["new_device_saw"].as_array().unwrap().iter().any(|m| {
        m["room"] == room && m["sender"] == alice && m["body"] == "secret for the new device"
    });
    assert!(found, "Bob's new device did not decrypt: {seen}");
}

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
    assert_new_device_decrypted(&seen, secret, &alice.user_id);
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
    let bob_token = synapse.register(SYNAPSE_IP, "bob", password).await;
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
    assert_new_device_decrypted(&seen, secret, &alice.user_id);
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

    // Alice adds a device on Conclave: Synapse hears of it (`m.device_list_update`), tells
    // Bob's client, and its key query lists the device.
    let bob = SynapseUser::new(SYNAPSE_IP, bob_token, bob_id.clone());
    let since = bob.sync().await["next_batch"].as_str().unwrap().to_owned();
    let phone = expect_ok(
        a.post(
            "/_matrix/client/v3/login",
            None,
            &json!({ "type": "m.login.password", "password": password, "device_id": "ALICEPHONE",
                     "identifier": { "type": "m.id.user", "user": "alice" } }),
        )
        .await,
    );
    let phone_key = common::crypto::SigningKey::for_device("ALICEPHONE");
    expect_ok(
        a.post(
            "/_matrix/client/v3/keys/upload",
            phone["access_token"].as_str(),
            &json!({ "device_keys":
                common::crypto::device_keys(&alice.user_id, "ALICEPHONE", &phone_key) }),
        )
        .await,
    );
    bob.sync_until("alice in device_lists.changed at Synapse", &since, |s| {
        s["device_lists"]["changed"]
            .as_array()
            .is_some_and(|c| c.contains(&json!(alice.user_id)))
    })
    .await;
    let query = bob
        .ok(
            reqwest::Method::POST,
            "/_matrix/client/v3/keys/query",
            Some(json!({ "device_keys": { alice.user_id.as_str(): [] } })),
        )
        .await;
    assert!(
        query["device_keys"][&alice.user_id]
            .get("ALICEPHONE")
            .is_some(),
        "{query}"
    );
    synapse.stop().await;
    a.shutdown().await;
}

/// What Alice's server holds of Bob's devices (Bob on the other server).
fn held_devices(ts: &TestServer, user: &str) -> Option<Vec<String>> {
    let user = ruma::UserId::parse(user).unwrap();
    let list = ts
        .server()
        .services()
        .keys
        .remote_device_list(&user)
        .unwrap()?;
    Some(list.devices.keys().cloned().collect())
}

/// A device-list update for `user`, as Bob's server would send it (`send` signed by it).
async fn send_device_update(from: &TestServer, to: &TestServer, txn: &str, content: Value) {
    let services = from.server().services();
    let to_name: ruma::OwnedServerName = to.config().server_name.as_str().try_into().unwrap();
    let body = json!({
        "origin": from.config().server_name,
        "origin_server_ts": 1,
        "pdus": [],
        "edus": [{ "edu_type": "m.device_list_update", "content": content }],
    });
    services
        .federation
        .send_signed(
            http::Method::PUT,
            &to_name,
            &format!("/_matrix/federation/v1/send/{txn}"),
            Some(&body),
            services.server_name(),
            &services.server_keys.key_pair(),
            1 << 20,
        )
        .await
        .expect("the transaction is answered");
}

/// Bob's devices as Alice's server tracks them: fetched once (`user/devices`), then kept up
/// to date by his server's updates — one that follows what is held is applied, one showing a
/// missed update makes Alice's server fetch the whole list again — and still answered while
/// Bob's server is down. Alice can sign Bob's master key (verifying him) from what is held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_device_lists_are_tracked_updated_and_refetched_after_a_gap() {
    use common::crypto::{SigningKey, cross_signing_key, device_keys};
    let (a, _pki_a) = conclave_peer(107).await;
    let (b, _pki_b) = conclave_peer(108).await;
    let alice = a.register_open("alice", "alice-password").await;
    let bob = b.register_open("bob", "bob-password").await;
    let room = create_room(&a, &alice, json!({ "preset": "public_chat" })).await;
    let a_name = a.config().server_name.to_string();
    expect_ok(
        b.post(
            &format!(
                "/_matrix/client/v3/join/{}?via={}",
                enc(&room),
                enc(&a_name)
            ),
            bob.bearer(),
            &json!({}),
        )
        .await,
    );
    let bob_key = SigningKey::for_device(&bob.device_id);
    let bob_master = SigningKey::cross_signing();
    expect_ok(
        b.post(
            "/_matrix/client/v3/keys/upload",
            bob.bearer(),
            &json!({ "device_keys": device_keys(&bob.user_id, &bob.device_id, &bob_key) }),
        )
        .await,
    );
    expect_ok(
        b.post(
            "/_matrix/client/v3/keys/device_signing/upload",
            bob.bearer(),
            &json!({
                "master_key": cross_signing_key(&bob.user_id, "master", &bob_master, None),
                "self_signing_key": cross_signing_key(&bob.user_id, "self_signing",
                    &SigningKey::cross_signing(), Some(&bob_master)),
            }),
        )
        .await,
    );
    let query = || async {
        expect_ok(
            a.post(
                "/_matrix/client/v3/keys/query",
                alice.bearer(),
                &json!({ "device_keys": { bob.user_id.as_str(): [] } }),
            )
            .await,
        )
    };
    let listed = |answer: &Value| -> Vec<String> {
        let mut devices: Vec<String> = answer["device_keys"][&bob.user_id]
            .as_object()
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default();
        devices.sort();
        devices
    };

    // The first query fetches and keeps Bob's list.
    let answer = query().await;
    assert_eq!(
        listed(&answer),
        std::slice::from_ref(&bob.device_id),
        "{answer}"
    );
    assert!(answer["master_keys"][&bob.user_id].is_object(), "{answer}");
    assert_eq!(
        held_devices(&a, &bob.user_id),
        Some(vec![bob.device_id.clone()])
    );
    let held_at = |ts: &TestServer| {
        let user = ruma::UserId::parse(&bob.user_id).unwrap();
        ts.server()
            .services()
            .keys
            .remote_device_list(&user)
            .unwrap()
            .map(|list| list.stream_id.0)
    };
    let stream = held_at(&a).expect("held");

    // An update following the held list is applied to it: the query shows a device Bob's own
    // server never had (this update is the only source of it).
    let tablet = device_keys(&bob.user_id, "TABLET", &SigningKey::for_device("TABLET"));
    send_device_update(
        &b,
        &a,
        "follows",
        json!({ "user_id": bob.user_id, "device_id": "TABLET", "stream_id": stream + 1,
                "prev_id": [stream], "keys": tablet }),
    )
    .await;
    let mut both = vec![bob.device_id.clone(), "TABLET".to_owned()];
    both.sort();
    assert_eq!(listed(&query().await), both);

    // An update after one never received: the held list is dropped and fetched again from
    // Bob's server, which knows nothing of TABLET or GHOST.
    let ghost = device_keys(&bob.user_id, "GHOST", &SigningKey::for_device("GHOST"));
    send_device_update(
        &b,
        &a,
        "gap",
        json!({ "user_id": bob.user_id, "device_id": "GHOST", "stream_id": stream + 1000,
                "prev_id": [stream + 500], "keys": ghost }),
    )
    .await;
    eventually(
        "bob's list fetched again after the gap",
        || async { json!(held_devices(&a, &bob.user_id)) },
        |held| *held == json!([bob.device_id]),
    )
    .await;
    assert_eq!(listed(&query().await), std::slice::from_ref(&bob.device_id));

    // Alice verifies Bob: she signs his master key (held from his server) with her
    // user-signing key and sees her signature on it.
    let (a_master, a_usk) = (SigningKey::cross_signing(), SigningKey::cross_signing());
    expect_ok(
        a.post(
            "/_matrix/client/v3/keys/device_signing/upload",
            alice.bearer(),
            &json!({
                "master_key": cross_signing_key(&alice.user_id, "master", &a_master, None),
                "self_signing_key": cross_signing_key(&alice.user_id, "self_signing",
                    &SigningKey::cross_signing(), Some(&a_master)),
                "user_signing_key": cross_signing_key(&alice.user_id, "user_signing",
                    &a_usk, Some(&a_master)),
            }),
        )
        .await,
    );
    let bob_master_object = cross_signing_key(&bob.user_id, "master", &bob_master, None);
    let signed = expect_ok(
        a.post(
            "/_matrix/client/v3/keys/signatures/upload",
            alice.bearer(),
            &json!({ &bob.user_id: {
                &bob_master.public: a_usk.sign(&alice.user_id, &bob_master_object) } }),
        )
        .await,
    );
    assert_eq!(signed["failures"], json!({}), "{signed}");
    let answer = query().await;
    assert!(
        answer["master_keys"][&bob.user_id]["signatures"][&alice.user_id]
            .get(a_usk.key_id())
            .is_some(),
        "{answer}"
    );

    // With Bob's server down, his keys are still answered, from what is held.
    b.shutdown().await;
    let answer = query().await;
    assert_eq!(
        listed(&answer),
        std::slice::from_ref(&bob.device_id),
        "{answer}"
    );
    assert_eq!(answer["failures"], json!({}), "{answer}");
    a.shutdown().await;
}
