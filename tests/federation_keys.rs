//! The federation listener and the server's published keys: TLS with a certificate made by
//! the test (and swapped on SIGHUP), plain HTTP for a reverse proxy, a refused half-configured
//! TLS, the self-signed key document, the version — and a real Synapse fetching and
//! vouching for the keys as a notary, as every partner server will.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::federation::{
    SynapsePeer, certificate, federate_on, federation_client, json_of, peer_certificate,
    sighup_until_served,
};
use common::*;
use conclave::config::Config;
use conclave::server::Server;
use ruma::CanonicalJsonObject;
use ruma::serde::Base64;
use ruma::signatures::{PublicKeyMap, PublicKeySet, verify_json};
use serde_json::{Value, json};

/// Checks the key document as a remote server does: its own signature by the key it
/// lists, under the server's name; answers the key ID.
fn verify_key_document(document: &Value, server_name: &str) -> String {
    assert_eq!(document["server_name"], server_name, "{document}");
    let keys = document["verify_keys"].as_object().expect("verify_keys");
    assert_eq!(keys.len(), 1, "{document}");
    let (key_id, key) = keys.iter().next().unwrap();
    assert!(key_id.starts_with("ed25519:"), "{key_id}");
    let public = Base64::parse(key["key"].as_str().unwrap()).expect("unpadded base64 key");
    let map = PublicKeyMap::from([(
        server_name.to_owned(),
        PublicKeySet::from([(key_id.clone(), public)]),
    )]);
    let object: CanonicalJsonObject = serde_json::from_value(document.clone()).unwrap();
    verify_json(&map, &object).expect("the key document verifies with its own key");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let valid_until = document["valid_until_ts"].as_u64().unwrap();
    assert!(
        valid_until > now + 6 * 86_400_000 && valid_until < now + 8 * 86_400_000,
        "valid for about a week: {document}"
    );
    assert!(document["old_verify_keys"].is_object(), "{document}");
    key_id.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_published_over_tls_and_the_certificate_follows_sighup() {
    let pki = tempfile::tempdir().unwrap();
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let (cert, key, first_der) = certificate(pki.path(), ip, "first");
    let ts = TestServer::start_with(move |config: &mut Config| {
        federate_on(config, ip, 0);
        config.federation.tls_certificate = Some(cert.clone());
        config.federation.tls_private_key = Some(key.clone());
    })
    .await;
    let addr = ts.server().federation_addr().expect("federation listener");
    let base = format!("https://{addr}");
    let client = federation_client();

    let response = client
        .get(format!("{base}/_matrix/key/v2/server"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(peer_certificate(&response), first_der);
    let document: Value = response.json().await.unwrap();
    verify_key_document(&document, "localhost");

    let version: Value = json_of(client.get(format!("{base}/_matrix/federation/v1/version"))).await;
    assert_eq!(version["server"]["name"], "Conclave", "{version}");

    // The client API is not on the federation listener, nor federation on the client's.
    let resp = client
        .get(format!("{base}/_matrix/client/versions"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = ts.get("/_matrix/key/v2/server", None).await;
    assert_errcode(&resp, reqwest::StatusCode::NOT_FOUND, "M_UNRECOGNIZED");

    // A renewed certificate is served after SIGHUP, without a restart.
    let (_, _, second_der) = certificate(pki.path(), ip, "second");
    sighup_until_served(
        federation_client,
        &format!("{base}/_matrix/federation/v1/version"),
        &second_der,
    )
    .await;
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_proxy_the_listener_speaks_plain_http_and_half_tls_is_refused() {
    let ts = TestServer::start_with(|config: &mut Config| {
        federate_on(config, IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    })
    .await;
    let addr = ts.server().federation_addr().expect("federation listener");
    let document: Value = json_of(
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("http://{addr}/_matrix/key/v2/server")),
    )
    .await;
    verify_key_document(&document, "localhost");

    // A certificate without its key is a configuration error at start, not a silent
    // plain-HTTP listener.
    let mut config = ts.config();
    config.database_path = ts.dir().join("second");
    config.port = 0;
    config.federation.tls_certificate = Some(ts.dir().join("fed.crt"));
    let error = Server::start(config).await.err().expect("refused");
    assert!(error.to_string().contains("tls_private_key"), "{error}");
    ts.shutdown().await;
}

/// Synapse, asked as a notary (`POST /_matrix/key/v2/query`), fetches Conclave's keys over
/// TLS, checks them and vouches for them with its own signature: what every Synapse partner
/// does before it accepts an event from us.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synapse_fetches_and_vouches_for_our_keys() {
    let conclave_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 41));
    let synapse_ip = "127.0.0.42";
    let pki = tempfile::tempdir().unwrap();
    let (cert, key, _) = certificate(pki.path(), conclave_ip, "conclave");
    let ts = TestServer::start_with(move |config: &mut Config| {
        config.server_name = "127.0.0.41:8448".try_into().unwrap();
        federate_on(config, conclave_ip, 8448);
        config.federation.tls_certificate = Some(cert.clone());
        config.federation.tls_private_key = Some(key.clone());
    })
    .await;

    // Asked for a key by ID, a notary fetches what it does not hold (asked for "all keys",
    // Synapse answers only from its cache).
    let own: Value =
        json_of(federation_client().get("https://127.0.0.41:8448/_matrix/key/v2/server")).await;
    let key_id = verify_key_document(&own, "127.0.0.41:8448");

    let synapse = SynapsePeer::start(synapse_ip).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let criteria = json!({ "minimum_valid_until_ts": now });
    let answer: Value = json_of(
        federation_client()
            .post(format!("https://{synapse_ip}:8448/_matrix/key/v2/query"))
            .json(&json!({ "server_keys": { "127.0.0.41:8448": { &key_id: criteria } } })),
    )
    .await;
    let documents = answer["server_keys"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}\n{}", synapse.log_tail()));
    let ours = documents
        .iter()
        .find(|d| d["server_name"] == "127.0.0.41:8448")
        .unwrap_or_else(|| {
            panic!(
                "Synapse returned no keys for us: {answer}\n{}",
                synapse.log_tail()
            )
        });
    assert_eq!(verify_key_document_signed_by_us(ours), key_id);
    let signers = ours["signatures"].as_object().unwrap();
    assert!(
        signers.contains_key(&format!("{synapse_ip}:8448")),
        "Synapse vouches for the keys: {ours}"
    );
    synapse.stop().await;
    ts.shutdown().await;
}

/// [`verify_key_document`] on a notary's copy, which carries the notary's signature too.
fn verify_key_document_signed_by_us(document: &Value) -> String {
    let mut ours = document.clone();
    let name = ours["server_name"].as_str().unwrap().to_owned();
    let signatures = ours["signatures"].as_object_mut().unwrap();
    signatures.retain(|server, _| *server == name);
    verify_key_document(&ours, &name)
}

/// Conclave asks a real Synapse for its keys, checks its signature and keeps them: the keys
/// every request and event from that server will be verified with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synapse_keys_are_fetched_checked_and_cached() {
    let synapse_ip = "127.0.0.44";
    let ts = TestServer::start_with(|config: &mut Config| {
        federate_on(config, IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        // The test's partner is on loopback, with a self-signed certificate.
        config.federation.ip_range_allowlist = vec!["127.0.0.0/8".to_owned()];
        config.federation.verify_certificates = false;
    })
    .await;
    let synapse = SynapsePeer::start(synapse_ip).await;
    let services = ts.server().services();
    let server: &ruma::ServerName = "127.0.0.44:8448".try_into().unwrap();
    let keys = services
        .server_keys
        .fetch_remote_keys(&services.federation, server)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", synapse.log_tail()));
    assert_eq!(keys.len(), 1, "{keys:?}");
    let (key_id, key) = &keys[0];
    assert!(key_id.starts_with("ed25519:"), "{key_id}");

    // What IT runs when a partner does not answer: where the name leads, the software and
    // the checked keys; and a clear failure where nothing answers.
    let socket = ts.config().admin_socket_path();
    let (code, out, err) = console(&socket, &["federation", "resolve", "127.0.0.44:8448"]).await;
    assert_eq!(code, 0, "{out}{err}");
    for expected in ["https://127.0.0.44:8448", "Synapse", key_id.as_str()] {
        assert!(out.contains(expected), "{expected} missing:\n{out}");
    }
    let (code, out, err) = console(&socket, &["federation", "resolve", "127.0.0.45:8448"]).await;
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("does not answer"), "{out}{err}");
    synapse.stop().await;

    // Kept: found again with Synapse gone.
    let cached = services
        .server_keys
        .remote_key(&services.federation, server, key_id, 0)
        .await
        .unwrap();
    assert_eq!(cached.as_ref(), Some(key));
    ts.shutdown().await;
}

/// With the default policy, federation never connects to loopback or private addresses,
/// whether the server name is an IP literal or a name that resolves to one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_destinations_are_refused_by_default() {
    let ts = TestServer::start_with(|config: &mut Config| {
        federate_on(config, IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    })
    .await;
    let services = ts.server().services();
    for name in ["127.0.0.1:8448", "10.0.0.1", "localhost:8448", "[::1]:8448"] {
        let server: &ruma::ServerName = name.try_into().unwrap();
        let error = services
            .server_keys
            .fetch_remote_keys(&services.federation, server)
            .await
            .expect_err("refused");
        let text = error.to_string();
        assert!(
            text.contains("ip_range_denylist") || text.contains("may not connect to"),
            "{name}: {text}"
        );
    }
    ts.shutdown().await;
}

/// A key answer that is not the server's own is refused: signed for another name, altered
/// after signing, or naming another server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_key_answers_are_refused() {
    let ts = TestServer::start_with(|config: &mut Config| {
        federate_on(config, IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    })
    .await;
    let addr = ts.server().federation_addr().unwrap();
    let genuine: Value = json_of(
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("http://{addr}/_matrix/key/v2/server")),
    )
    .await;
    let ours: &ruma::ServerName = "localhost".try_into().unwrap();
    let check = |doc: &Value, server: &ruma::ServerName| {
        conclave::service::server_keys::verified_key_document(doc, server)
    };
    assert!(check(&genuine, ours).is_ok());

    let mut altered = genuine.clone();
    altered["valid_until_ts"] = json!(u64::MAX >> 12);
    assert!(check(&altered, ours).is_err(), "altered after signing");
    let other: &ruma::ServerName = "elsewhere.example".try_into().unwrap();
    assert!(check(&genuine, other).is_err(), "names another server");
    let mut renamed = genuine.clone();
    renamed["server_name"] = json!("elsewhere.example");
    assert!(check(&renamed, other).is_err(), "signed under another name");
    ts.shutdown().await;
}

/// A notary: Conclave A vouches for B's keys (answering with B's document countersigned),
/// and Conclave C, with A among its `trusted_servers`, gets B's key through A while B is
/// down — keeping it only because both B's and A's signatures check out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_an_unreachable_server_come_through_a_trusted_notary() {
    use common::federation::{conclave_peer, conclave_peer_with};
    let (a, _pki_a) = conclave_peer(77).await;
    let (mut b, _pki_b) = conclave_peer(78).await;
    let (c, _pki_c) = conclave_peer_with(79, |config| {
        config.trusted_servers = vec!["127.0.0.77:8448".try_into().unwrap()];
    })
    .await;
    let b_name: &ruma::ServerName = "127.0.0.78:8448".try_into().unwrap();
    let b_key_id = b.server().services().server_keys.key_id();

    // A answers for B (fetching B's keys on the way) and for itself, both countersigned.
    let client = federation_client();
    let answer = json_of(client.get(format!(
        "https://127.0.0.77:8448/_matrix/key/v2/query/{}",
        enc(b_name.as_str())
    )))
    .await;
    let document = &answer["server_keys"][0];
    assert_eq!(document["server_name"], b_name.as_str(), "{answer}");
    assert!(document["verify_keys"].get(&b_key_id).is_some(), "{answer}");
    for signer in ["127.0.0.78:8448", "127.0.0.77:8448"] {
        assert!(
            document["signatures"].get(signer).is_some(),
            "{signer}: {answer}"
        );
    }
    let batch = json_of(
        client
            .post("https://127.0.0.77:8448/_matrix/key/v2/query")
            .json(&json!({ "server_keys": { "127.0.0.77:8448": {}, "127.0.0.78:8448": {} } })),
    )
    .await;
    assert_eq!(
        batch["server_keys"].as_array().map(Vec::len),
        Some(2),
        "{batch}"
    );

    // B goes away; C has never seen it, and asks its notary.
    b.stop().await;
    let services = c.server().services();
    let key = services
        .server_keys
        .remote_key(
            &services.federation,
            b_name,
            &b_key_id,
            conclave::service::now_millis(),
        )
        .await
        .expect("the notary answers");
    assert!(key.is_some(), "B's key through A");
    a.shutdown().await;
    c.shutdown().await;
}

/// A rotation of the signing key: the new key signs from then on and is fetched by the
/// servers that meet it; the old one is published under `old_verify_keys` with its expiry, so
/// that a server joining later still verifies the history it signed; the rotation survives a
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_signing_key_keeps_old_events_verifiable() {
    use common::federation::{conclave_peer, eventually, has_body, joined_members, room_messages};
    let (mut a, _pki_a) = conclave_peer(86).await;
    let (b, _pki_b) = conclave_peer(87).await;
    let (c, _pki_c) = conclave_peer(88).await;
    let alice = a.register_open("alice", "alice-password").await;
    let bob = b.register_open("bob", "bob-password").await;
    let carol = c.register_open("carol", "carol-password").await;
    let server_a = a.config().server_name.to_string();
    let room = create_room(
        &a,
        &alice,
        json!({ "preset": "public_chat", "initial_state": [{
            "type": "m.room.history_visibility", "state_key": "",
            "content": { "history_visibility": "world_readable" } }] }),
    )
    .await;
    let join_path = format!(
        "/_matrix/client/v3/join/{}?via={}",
        enc(&room),
        enc(&server_a)
    );
    expect_ok(b.post(&join_path, bob.bearer(), &json!({})).await);
    send_text_id(&a, &alice, &room, "old", "signed with the first key").await;
    eventually(
        "the first message at bob's server",
        || room_messages(&b, &bob, &room),
        |m| has_body(m, "signed with the first key"),
    )
    .await;

    let client = federation_client();
    let keys_url = format!("https://{server_a}/_matrix/key/v2/server");
    let before = json_of(client.get(&keys_url)).await;
    let first_key = verify_key_document(&before, &server_a);
    let (code, out, err) = console(
        &a.config().admin_socket_path(),
        &["federation", "rotate-signing-key"],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&first_key), "{out}");

    // The document: signed by the new key alone, the old one listed with its expiry.
    let after = json_of(client.get(&keys_url)).await;
    let second_key = verify_key_document(&after, &server_a);
    assert_ne!(first_key, second_key);
    let old = &after["old_verify_keys"][&first_key];
    assert_eq!(
        old["key"], before["verify_keys"][&first_key]["key"],
        "{after}"
    );
    let expired = old["expired_ts"].as_u64().expect("expired_ts");
    assert!(expired > before["valid_until_ts"].as_u64().unwrap() - 8 * 24 * 3600 * 1000);

    // Bob's server knows only the first key: it fetches the second on meeting it.
    send_text_id(&a, &alice, &room, "new", "signed with the second key").await;
    eventually(
        "the second message at bob's server",
        || room_messages(&b, &bob, &room),
        |m| has_body(m, "signed with the second key"),
    )
    .await;
    // Carol's server has never seen either key: the room's history, signed with the first,
    // verifies through `old_verify_keys`.
    expect_ok(c.post(&join_path, carol.bearer(), &json!({})).await);
    eventually(
        "the history at carol's server",
        || room_messages(&c, &carol, &room),
        |m| has_body(m, "signed with the first key") && has_body(m, "signed with the second key"),
    )
    .await;
    let members = joined_members(&a, &alice, &room).await;
    assert!(members["joined"].get(&carol.user_id).is_some(), "{members}");

    // The new key is the one stored.
    a.restart().await;
    let restarted = json_of(client.get(&keys_url)).await;
    assert_eq!(verify_key_document(&restarted, &server_a), second_key);
    assert!(restarted["old_verify_keys"].get(&first_key).is_some());
    a.shutdown().await;
    b.shutdown().await;
    c.shutdown().await;
}
