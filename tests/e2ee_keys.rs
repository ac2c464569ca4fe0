//! End-to-end encryption key endpoints with two users: device keys, one-time and fallback
//! keys, key changes, to-device messages and cross-signing, with real ed25519 signatures.

mod common;

use std::collections::BTreeSet;

use common::crypto::{SigningKey, cross_signing_key, device_keys, one_time_keys};
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const UPLOAD: &str = "/_matrix/client/v3/keys/upload";
const QUERY: &str = "/_matrix/client/v3/keys/query";
const CLAIM: &str = "/_matrix/client/v3/keys/claim";

async fn sync(ts: &TestServer, who: &Session, since: Option<&str>) -> Value {
    let path = match since {
        Some(since) => format!("/_matrix/client/v3/sync?since={since}&timeout=0"),
        None => "/_matrix/client/v3/sync".to_owned(),
    };
    expect_ok(ts.get(&path, who.bearer()).await)
}

fn next_batch(sync: &Value) -> String {
    sync["next_batch"].as_str().expect("next_batch").to_owned()
}

/// Uploads a fresh device identity key for the session's device; returns its signing key.
async fn upload_device_keys(ts: &TestServer, who: &Session) -> SigningKey {
    let key = SigningKey::for_device(&who.device_id);
    expect_ok(
        ts.post(
            UPLOAD,
            who.bearer(),
            &json!({ "device_keys": device_keys(&who.user_id, &who.device_id, &key) }),
        )
        .await,
    );
    key
}

async fn claim(ts: &TestServer, who: &Session, target: &Session) -> Value {
    expect_ok(
        ts.post(
            CLAIM,
            who.bearer(),
            &json!({ "one_time_keys": { &target.user_id: { &target.device_id: "signed_curve25519" } } }),
        )
        .await,
    )
}

/// The key ID of the one key a claim returned for `target`'s device, if any.
fn claimed_key_id(claimed: &Value, target: &Session) -> Option<String> {
    claimed["one_time_keys"][&target.user_id][&target.device_id]
        .as_object()
        .and_then(|keys| keys.keys().next().cloned())
}

async fn share_room(ts: &TestServer, alice: &Session, bob: &Session) -> String {
    let room_id = create_room(ts, alice, json!({ "preset": "public_chat" })).await;
    expect_ok(
        ts.post(&room_path(&room_id, "/join"), bob.bearer(), &json!({}))
            .await,
    );
    room_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_query_and_claim_keys() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;

    let key = SigningKey::for_device(&alice.device_id);
    let uploaded = expect_ok(
        ts.post(
            UPLOAD,
            alice.bearer(),
            &json!({
                "device_keys": device_keys(&alice.user_id, &alice.device_id, &key),
                "one_time_keys": one_time_keys(&alice.user_id, &key, "A", 3),
                "fallback_keys": {
                    "signed_curve25519:F1": key.sign(&alice.user_id, &json!({ "key": "fallback", "fallback": true })),
                },
            }),
        )
        .await,
    );
    assert_eq!(uploaded["one_time_key_counts"]["signed_curve25519"], 3);

    // Bob sees alice's device keys, signature and display name included.
    let queried = expect_ok(
        ts.post(
            QUERY,
            bob.bearer(),
            &json!({ "device_keys": { &alice.user_id: [] } }),
        )
        .await,
    );
    let device = &queried["device_keys"][&alice.user_id][&alice.device_id];
    assert_eq!(
        device["keys"][format!("ed25519:{}", alice.device_id)],
        key.public
    );
    assert!(
        device["signatures"][&alice.user_id][key.key_id()].is_string(),
        "{device}"
    );
    assert!(device["unsigned"]["device_display_name"].is_string() || device["unsigned"].is_null());

    // Three claims get the three one-time keys, each once; then the fallback key, again and again.
    let mut seen = BTreeSet::new();
    for _ in 0..3 {
        let id = claimed_key_id(&claim(&ts, &bob, &alice).await, &alice).expect("a key");
        assert!(id.starts_with("signed_curve25519:A"), "{id}");
        assert!(seen.insert(id.clone()), "{id} handed out twice");
    }
    for _ in 0..2 {
        let claimed = claim(&ts, &bob, &alice).await;
        assert_eq!(
            claimed_key_id(&claimed, &alice).as_deref(),
            Some("signed_curve25519:F1")
        );
    }

    // Alice's sync shows the keys are gone and the fallback key was used.
    let synced = sync(&ts, &alice, None).await;
    assert_eq!(synced["device_one_time_keys_count"]["signed_curve25519"], 0);
    assert_eq!(synced["device_unused_fallback_key_types"], json!([]));

    // A fresh fallback key is unused again.
    expect_ok(
        ts.post(
            UPLOAD,
            alice.bearer(),
            &json!({ "fallback_keys": {
                "signed_curve25519:F2": key.sign(&alice.user_id, &json!({ "key": "fallback2", "fallback": true })),
            } }),
        )
        .await,
    );
    let synced = sync(&ts, &alice, None).await;
    assert_eq!(
        synced["device_unused_fallback_key_types"],
        json!(["signed_curve25519"])
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_key_uploads_are_refused_and_change_nothing() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let key = upload_device_keys(&ts, &alice).await;
    expect_ok(
        ts.post(
            UPLOAD,
            alice.bearer(),
            &json!({ "one_time_keys": one_time_keys(&alice.user_id, &key, "A", 2) }),
        )
        .await,
    );

    // Keys claiming another user or device, or signed by the wrong key.
    let for_bob = device_keys(&bob.user_id, &alice.device_id, &key);
    let resp = ts
        .post(UPLOAD, alice.bearer(), &json!({ "device_keys": for_bob }))
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let other_device = device_keys(&alice.user_id, "OTHERDEVICE", &key);
    let resp = ts
        .post(
            UPLOAD,
            alice.bearer(),
            &json!({ "device_keys": other_device }),
        )
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let mut forged = device_keys(&alice.user_id, &alice.device_id, &key);
    forged["keys"][format!("curve25519:{}", alice.device_id)] = json!("swapped");
    let resp = ts
        .post(UPLOAD, alice.bearer(), &json!({ "device_keys": forged }))
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");

    // Malformed JSON in place of keys.
    let resp = ts
        .post(
            UPLOAD,
            alice.bearer(),
            &json!({ "device_keys": "not an object" }),
        )
        .await;
    assert!(resp.0 == StatusCode::BAD_REQUEST, "{resp:?}");

    // Too many one-time keys at once; a reused key ID with other key material.
    let resp = ts
        .post(
            UPLOAD,
            alice.bearer(),
            &json!({ "one_time_keys": one_time_keys(&alice.user_id, &key, "B", 1001) }),
        )
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let mut reused = one_time_keys(&alice.user_id, &key, "A", 1);
    reused["signed_curve25519:A0"] = key.sign(&alice.user_id, &json!({ "key": "different" }));
    let resp = ts
        .post(UPLOAD, alice.bearer(), &json!({ "one_time_keys": reused }))
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");

    // What was stored before is intact: the original keys and exactly two one-time keys.
    let queried = expect_ok(
        ts.post(
            QUERY,
            bob.bearer(),
            &json!({ "device_keys": { &alice.user_id: [] } }),
        )
        .await,
    );
    let device = &queried["device_keys"][&alice.user_id][&alice.device_id];
    assert_eq!(
        device["keys"][format!("curve25519:{}", alice.device_id)],
        format!("curve-{}", alice.device_id)
    );
    let counts = expect_ok(ts.post(UPLOAD, alice.bearer(), &json!({})).await);
    assert_eq!(counts["one_time_key_counts"]["signed_curve25519"], 2);

    // Claims for unknown users and devices are not errors: they just return nothing; remote
    // servers are listed in failures.
    let claimed = expect_ok(
        ts.post(
            CLAIM,
            bob.bearer(),
            &json!({ "one_time_keys": {
                "@nobody:localhost": { "DEV": "signed_curve25519" },
                &alice.user_id: { "NODEVICE": "signed_curve25519" },
                "@someone:elsewhere.example": { "DEV": "signed_curve25519" },
            } }),
        )
        .await,
    );
    assert_eq!(claimed["one_time_keys"], json!({}), "{claimed}");
    assert!(
        claimed["failures"]["elsewhere.example"].is_object(),
        "{claimed}"
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_claims_never_share_a_one_time_key() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let key = upload_device_keys(&ts, &alice).await;
    expect_ok(
        ts.post(
            UPLOAD,
            alice.bearer(),
            &json!({ "one_time_keys": one_time_keys(&alice.user_id, &key, "K", 40) }),
        )
        .await,
    );

    let claims = (0..60).map(|_| claim(&ts, &bob, &alice));
    let results = futures_util::future::join_all(claims).await;
    let ids: Vec<String> = results
        .iter()
        .filter_map(|claimed| claimed_key_id(claimed, &alice))
        .collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(
        ids.len(),
        40,
        "every key handed out, and only 40 exist: {ids:?}"
    );
    assert_eq!(unique.len(), 40, "a key was handed out twice: {ids:?}");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn to_device_messages_are_delivered_once_acknowledged() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let bob_phone = ts.login("bob", "bob-password").await;
    let since = next_batch(&sync(&ts, &bob, None).await);

    let send = |txn: &'static str, body: Value| {
        let ts = &ts;
        let alice = &alice;
        async move {
            expect_ok(
                ts.put(
                    &format!("/_matrix/client/v3/sendToDevice/m.test/{txn}"),
                    alice.bearer(),
                    &body,
                )
                .await,
            )
        }
    };
    let direct = json!({ "messages": { &bob.user_id: { &bob.device_id: { "n": 1 } } } });
    send("t1", direct.clone()).await;
    // A retried transaction is not delivered twice.
    send("t1", direct).await;
    send(
        "t2",
        json!({ "messages": { &bob.user_id: { "*": { "n": 2 } } } }),
    )
    .await;

    let first = sync(&ts, &bob, Some(&since)).await;
    let events = first["to_device"]["events"].as_array().unwrap().clone();
    let ns: Vec<&Value> = events.iter().map(|e| &e["content"]["n"]).collect();
    assert_eq!(ns, [&json!(1), &json!(2)], "{events:?}");
    assert_eq!(events[0]["sender"], alice.user_id.as_str());
    assert_eq!(events[0]["type"], "m.test");
    // The same token again: the client may not have received the answer, so it is repeated.
    let again = sync(&ts, &bob, Some(&since)).await;
    assert_eq!(again["to_device"]["events"].as_array().unwrap().len(), 2);
    // Syncing on from there acknowledges them: they are gone.
    let later = sync(&ts, &bob, Some(&next_batch(&first))).await;
    assert_eq!(later["to_device"]["events"], json!([]));

    // The `*` message also reached bob's other device, the direct one did not.
    let phone = sync(&ts, &bob_phone, None).await;
    let ns: Vec<&Value> = phone["to_device"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["content"]["n"])
        .collect();
    assert_eq!(ns, [&json!(2)]);

    // A long-polling sync wakes for a to-device message.
    let since = next_batch(&later);
    let poll_path = format!("/_matrix/client/v3/sync?since={since}&timeout=20000");
    let poll = ts.get(&poll_path, bob.bearer());
    let poke = async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        send(
            "t3",
            json!({ "messages": { &bob.user_id: { &bob.device_id: { "n": 3 } } } }),
        )
        .await;
    };
    let (polled, ()) = tokio::join!(poll, poke);
    let polled = expect_ok(polled);
    assert_eq!(polled["to_device"]["events"][0]["content"]["n"], 3);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_to_device_messages_span_several_syncs() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let since = next_batch(&sync(&ts, &bob, None).await);
    let mut messages = serde_json::Map::new();
    messages.insert(bob.device_id.clone(), json!({ "n": 0 }));
    for txn in 0..150 {
        expect_ok(
            ts.put(
                &format!("/_matrix/client/v3/sendToDevice/m.test/bulk{txn}"),
                alice.bearer(),
                &json!({ "messages": { &bob.user_id: { &bob.device_id: { "n": txn } } } }),
            )
            .await,
        );
    }
    let mut received = Vec::new();
    let mut token = since;
    for _ in 0..5 {
        let answer = sync(&ts, &bob, Some(&token)).await;
        for event in answer["to_device"]["events"].as_array().unwrap() {
            received.push(event["content"]["n"].as_u64().unwrap());
        }
        token = next_batch(&answer);
    }
    assert_eq!(received, (0..150).collect::<Vec<u64>>());
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_lists_follow_key_changes_and_shared_rooms() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let before_room = next_batch(&sync(&ts, &bob, None).await);
    let room_id = share_room(&ts, &alice, &bob).await;

    // Sharing a room for the first time: each must fetch the other's keys.
    let joined = sync(&ts, &bob, Some(&before_room)).await;
    let changed = joined["device_lists"]["changed"].as_array().unwrap();
    assert!(changed.contains(&json!(alice.user_id)), "{joined}");
    let since = next_batch(&joined);

    // Alice logs in a new device and uploads its keys: bob hears about it.
    let alice_laptop = ts.login("alice", "alice-password").await;
    upload_device_keys(&ts, &alice_laptop).await;
    let after_upload = sync(&ts, &bob, Some(&since)).await;
    assert_eq!(
        after_upload["device_lists"]["changed"],
        json!([alice.user_id]),
        "{after_upload}"
    );
    let changes = expect_ok(
        ts.get(
            &format!(
                "/_matrix/client/v3/keys/changes?from={since}&to={}",
                next_batch(&after_upload)
            ),
            bob.bearer(),
        )
        .await,
    );
    assert_eq!(changes["changed"], json!([alice.user_id]));

    // A user sharing no room hears nothing.
    let carol = ts.register_open("carol", "carol-password").await;
    let carol_since = next_batch(&sync(&ts, &carol, None).await);
    upload_device_keys(&ts, &alice).await;
    let carol_sync = sync(&ts, &carol, Some(&carol_since)).await;
    assert_eq!(carol_sync["device_lists"]["changed"], json!([]));

    // Alice deletes the laptop: bob hears about it.
    let since = next_batch(&sync(&ts, &bob, Some(&next_batch(&after_upload))).await);
    expect_ok(
        ts.post(
            "/_matrix/client/v3/logout",
            alice_laptop.bearer(),
            &json!({}),
        )
        .await,
    );
    let after_logout = sync(&ts, &bob, Some(&since)).await;
    assert_eq!(
        after_logout["device_lists"]["changed"],
        json!([alice.user_id])
    );

    // Bob leaves the only room they shared: alice is in bob's `left`.
    let since = next_batch(&after_logout);
    expect_ok(
        ts.post(&room_path(&room_id, "/leave"), bob.bearer(), &json!({}))
            .await,
    );
    let after_leave = sync(&ts, &bob, Some(&since)).await;
    assert_eq!(
        after_leave["device_lists"]["left"],
        json!([alice.user_id]),
        "{after_leave}"
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_signing_keys_and_signatures() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let alice_device = upload_device_keys(&ts, &alice).await;
    upload_device_keys(&ts, &bob).await;

    let upload_cross_signing = |who: &Session,
                                master: &SigningKey,
                                ssk: &SigningKey,
                                usk: &SigningKey,
                                auth: Option<Value>| {
        let mut body = json!({
            "master_key": cross_signing_key(&who.user_id, "master", master, None),
            "self_signing_key": cross_signing_key(&who.user_id, "self_signing", ssk, Some(master)),
            "user_signing_key": cross_signing_key(&who.user_id, "user_signing", usk, Some(master)),
        });
        if let Some(auth) = auth {
            body["auth"] = auth;
        }
        let ts = &ts;
        let token = who.access_token.clone();
        async move {
            ts.post(
                "/_matrix/client/v3/keys/device_signing/upload",
                Some(&token),
                &body,
            )
            .await
        }
    };

    // First setup needs no password.
    let (a_master, a_ssk, a_usk) = (
        SigningKey::cross_signing(),
        SigningKey::cross_signing(),
        SigningKey::cross_signing(),
    );
    expect_ok(upload_cross_signing(&alice, &a_master, &a_ssk, &a_usk, None).await);
    // The same keys again are accepted as they are.
    expect_ok(upload_cross_signing(&alice, &a_master, &a_ssk, &a_usk, None).await);

    // A self-signing key not signed by the master key is refused, and nothing is stored.
    let stranger = SigningKey::cross_signing();
    let bob_master = SigningKey::cross_signing();
    let resp = ts
        .post(
            "/_matrix/client/v3/keys/device_signing/upload",
            bob.bearer(),
            &json!({
                "master_key": cross_signing_key(&bob.user_id, "master", &bob_master, None),
                "self_signing_key": cross_signing_key(&bob.user_id, "self_signing", &SigningKey::cross_signing(), Some(&stranger)),
            }),
        )
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let queried = expect_ok(
        ts.post(
            QUERY,
            alice.bearer(),
            &json!({ "device_keys": { &bob.user_id: [] } }),
        )
        .await,
    );
    assert!(
        queried["master_keys"].get(&bob.user_id).is_none(),
        "{queried}"
    );

    // Replacing the keys needs the password.
    let (new_master, new_ssk, new_usk) = (
        SigningKey::cross_signing(),
        SigningKey::cross_signing(),
        SigningKey::cross_signing(),
    );
    let challenge = upload_cross_signing(&alice, &new_master, &new_ssk, &new_usk, None).await;
    assert_eq!(challenge.0, StatusCode::UNAUTHORIZED, "{challenge:?}");
    let session = challenge.1["session"].as_str().unwrap().to_owned();
    let mut auth = password_auth(&alice.user_id, "alice-password");
    auth["session"] = json!(session);
    expect_ok(upload_cross_signing(&alice, &new_master, &new_ssk, &new_usk, Some(auth)).await);
    let (a_master, a_ssk) = (new_master, new_ssk);

    // Alice's self-signing key signs her device: bob sees the signature.
    let device = device_keys(&alice.user_id, &alice.device_id, &alice_device);
    let signed_device = a_ssk.sign(&alice.user_id, &device);
    let result = expect_ok(
        ts.post(
            "/_matrix/client/v3/keys/signatures/upload",
            alice.bearer(),
            &json!({ &alice.user_id: { &alice.device_id: signed_device } }),
        )
        .await,
    );
    assert_eq!(result["failures"], json!({}), "{result}");
    let queried = expect_ok(
        ts.post(
            QUERY,
            bob.bearer(),
            &json!({ "device_keys": { &alice.user_id: [] } }),
        )
        .await,
    );
    assert!(
        queried["device_keys"][&alice.user_id][&alice.device_id]["signatures"][&alice.user_id]
            [a_ssk.key_id()]
        .is_string(),
        "{queried}"
    );
    assert_eq!(
        queried["master_keys"][&alice.user_id]["keys"][a_master.key_id()],
        a_master.public
    );
    assert!(queried["self_signing_keys"][&alice.user_id].is_object());
    assert!(
        queried["user_signing_keys"].get(&alice.user_id).is_none(),
        "only alice sees her user-signing key: {queried}"
    );

    // A forged signature is reported in failures and not stored.
    let mut forged = signed_device_with(&alice, &device, &a_ssk);
    forged["signatures"][&alice.user_id][a_ssk.key_id()] = json!(
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    );
    let result = expect_ok(
        ts.post(
            "/_matrix/client/v3/keys/signatures/upload",
            alice.bearer(),
            &json!({ &alice.user_id: { &alice.device_id: forged } }),
        )
        .await,
    );
    assert_eq!(
        result["failures"][&alice.user_id][&alice.device_id]["errcode"], "M_INVALID_SIGNATURE",
        "{result}"
    );

    // Bob sets up cross-signing and signs alice's master key with his user-signing key: he
    // sees his signature, alice does not.
    let (b_master, b_ssk, b_usk) = (
        SigningKey::cross_signing(),
        SigningKey::cross_signing(),
        SigningKey::cross_signing(),
    );
    expect_ok(upload_cross_signing(&bob, &b_master, &b_ssk, &b_usk, None).await);
    let alice_master = cross_signing_key(&alice.user_id, "master", &a_master, None);
    let result = expect_ok(
        ts.post(
            "/_matrix/client/v3/keys/signatures/upload",
            bob.bearer(),
            &json!({ &alice.user_id: { &a_master.public: b_usk.sign(&bob.user_id, &alice_master) } }),
        )
        .await,
    );
    assert_eq!(result["failures"], json!({}), "{result}");
    let by_bob = expect_ok(
        ts.post(
            QUERY,
            bob.bearer(),
            &json!({ "device_keys": { &alice.user_id: [] } }),
        )
        .await,
    );
    assert!(
        by_bob["master_keys"][&alice.user_id]["signatures"][&bob.user_id][b_usk.key_id()]
            .is_string(),
        "{by_bob}"
    );
    let by_alice = expect_ok(
        ts.post(
            QUERY,
            alice.bearer(),
            &json!({ "device_keys": { &alice.user_id: [] } }),
        )
        .await,
    );
    assert!(
        by_alice["master_keys"][&alice.user_id]["signatures"]
            .get(&bob.user_id)
            .is_none(),
        "{by_alice}"
    );
    ts.shutdown().await;
}

/// `device` as signed by `key` (for tampering with afterwards).
fn signed_device_with(who: &Session, device: &Value, key: &SigningKey) -> Value {
    key.sign(&who.user_id, device)
}
