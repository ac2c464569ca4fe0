//! Signed requests both ways with a real Synapse: a Conclave user reads a Synapse user's
//! profile (Conclave signs, Synapse checks with the keys it fetches from us) and a Synapse
//! user reads a Conclave user's (Synapse signs, Conclave checks with Synapse's keys). An
//! unsigned or forged request is refused with `401 M_UNAUTHORIZED`. Aliases and public room
//! directories are read both ways too.

mod common;

use common::federation::{SynapsePeer, conclave_peer, federation_client, json_of};
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const CONCLAVE: &str = "127.0.0.51:8448";
const SYNAPSE_IP: &str = "127.0.0.52";
const SYNAPSE: &str = "127.0.0.52:8448";

async fn conclave(last_octet: u8) -> (TestServer, tempfile::TempDir) {
    conclave_peer(last_octet).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_and_aliases_are_read_across_servers_both_ways() {
    let (ts, _pki) = conclave(51).await;
    let alice = ts.register_open("alice", "alice-password").await;
    expect_ok(
        ts.put(
            &format!(
                "/_matrix/client/v3/profile/{}/displayname",
                enc(&alice.user_id)
            ),
            alice.bearer(),
            &json!({ "displayname": "Alice at Conclave" }),
        )
        .await,
    );
    let synapse = SynapsePeer::start(SYNAPSE_IP).await;
    let bob_token = synapse.register(SYNAPSE_IP, "bob", "bob-password").await;
    let synapse_client = reqwest::Client::builder().no_proxy().build().unwrap();
    let bob = format!("@bob:{SYNAPSE}");
    let status = synapse_client
        .put(format!(
            "http://{SYNAPSE_IP}:8008/_matrix/client/v3/profile/{}/displayname",
            enc(&bob)
        ))
        .bearer_auth(&bob_token)
        .json(&json!({ "displayname": "Bob at Synapse" }))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);

    // Conclave → Synapse: our signed query/profile, checked by Synapse with our keys.
    let resp = ts
        .get(
            &format!("/_matrix/client/v3/profile/{}", enc(&bob)),
            alice.bearer(),
        )
        .await;
    assert_eq!(resp.0, StatusCode::OK, "{}\n{}", resp.1, synapse.log_tail());
    assert_eq!(resp.1["displayname"], "Bob at Synapse", "{}", resp.1);
    let field = expect_ok(
        ts.get(
            &format!("/_matrix/client/v3/profile/{}/displayname", enc(&bob)),
            alice.bearer(),
        )
        .await,
    );
    assert_eq!(field["displayname"], "Bob at Synapse");
    let nobody = format!("@nobody:{SYNAPSE}");
    let resp = ts
        .get(
            &format!("/_matrix/client/v3/profile/{}", enc(&nobody)),
            alice.bearer(),
        )
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    // Synapse → Conclave: Synapse's signed query, checked here with Synapse's keys.
    let answer: Value = json_of(
        synapse_client
            .get(format!(
                "http://{SYNAPSE_IP}:8008/_matrix/client/v3/profile/{}",
                enc(&alice.user_id)
            ))
            .bearer_auth(&bob_token),
    )
    .await;
    assert_eq!(
        answer["displayname"],
        "Alice at Conclave",
        "{answer}\n{}",
        synapse.log_tail()
    );
    let status = synapse_client
        .get(format!(
            "http://{SYNAPSE_IP}:8008/_matrix/client/v3/profile/{}",
            enc(&format!("@nobody:{CONCLAVE}"))
        ))
        .bearer_auth(&bob_token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Aliases, both ways: each server's alias resolved through the other's client API.
    let ours = create_room(&ts, &alice, json!({ "room_alias_name": "lobby" })).await;
    let theirs: Value = json_of(
        synapse_client
            .post(format!(
                "http://{SYNAPSE_IP}:8008/_matrix/client/v3/createRoom"
            ))
            .bearer_auth(&bob_token)
            .json(&json!({ "room_alias_name": "partners" })),
    )
    .await;
    let their_room = theirs["room_id"]
        .as_str()
        .expect("Synapse created the room");
    let resolved = expect_ok(
        ts.get(
            &format!(
                "/_matrix/client/v3/directory/room/{}",
                enc(&format!("#partners:{SYNAPSE}"))
            ),
            alice.bearer(),
        )
        .await,
    );
    assert_eq!(resolved["room_id"], their_room, "{resolved}");
    assert_eq!(resolved["servers"], json!([SYNAPSE]), "{resolved}");
    let resp = ts
        .get(
            &format!(
                "/_matrix/client/v3/directory/room/{}",
                enc(&format!("#nowhere:{SYNAPSE}"))
            ),
            alice.bearer(),
        )
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let answer: Value = json_of(
        synapse_client
            .get(format!(
                "http://{SYNAPSE_IP}:8008/_matrix/client/v3/directory/room/{}",
                enc(&format!("#lobby:{CONCLAVE}"))
            ))
            .bearer_auth(&bob_token),
    )
    .await;
    assert_eq!(answer["room_id"], ours, "{answer}");
    assert_eq!(answer["servers"], json!([CONCLAVE]), "{answer}");

    // Room directories, both ways: each server's public rooms listed (and searched) through
    // the other's client API.
    let published = create_room(
        &ts,
        &alice,
        json!({ "preset": "public_chat", "visibility": "public", "name": "Conclave Plaza" }),
    )
    .await;
    let theirs: Value = json_of(
        synapse_client
            .post(format!(
                "http://{SYNAPSE_IP}:8008/_matrix/client/v3/createRoom"
            ))
            .bearer_auth(&bob_token)
            .json(&json!({ "preset": "public_chat", "visibility": "public", "name": "Synapse Square" })),
    )
    .await;
    let their_public = theirs["room_id"].as_str().unwrap().to_owned();
    let listed = expect_ok(
        ts.post(
            &format!("/_matrix/client/v3/publicRooms?server={}", enc(SYNAPSE)),
            alice.bearer(),
            &json!({ "filter": { "generic_search_term": "square" } }),
        )
        .await,
    );
    let chunk = listed["chunk"].as_array().unwrap();
    assert!(
        chunk.iter().any(|r| r["room_id"] == their_public.as_str()),
        "{listed}"
    );
    let listed = expect_ok(
        ts.get(
            &format!("/_matrix/client/v3/publicRooms?server={}", enc(SYNAPSE)),
            alice.bearer(),
        )
        .await,
    );
    assert!(
        listed["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "Synapse Square"),
        "{listed}"
    );
    let answer: Value = json_of(
        synapse_client
            .post(format!(
                "http://{SYNAPSE_IP}:8008/_matrix/client/v3/publicRooms?server={}",
                enc(CONCLAVE)
            ))
            .bearer_auth(&bob_token)
            .json(&json!({ "filter": { "generic_search_term": "plaza" } })),
    )
    .await;
    let chunk = answer["chunk"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"));
    assert!(
        chunk.iter().any(|r| r["room_id"] == published.as_str()),
        "{answer}\n{}",
        synapse.log_tail()
    );
    synapse.stop().await;
    ts.shutdown().await;
}

/// Without a signature, with a malformed header, signed for another destination or with a
/// signature that does not match the request: `401 M_UNAUTHORIZED`, nothing answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_and_forged_requests_are_refused() {
    const CONCLAVE: &str = "127.0.0.53:8448";
    let (ts, _pki) = conclave(53).await;
    let alice = ts.register_open("alice", "alice-password").await;
    let url = format!(
        "https://{CONCLAVE}/_matrix/federation/v1/query/profile?user_id={}",
        enc(&alice.user_id)
    );
    let client = federation_client();
    let send = |authorization: Option<String>| {
        let mut request = client.get(&url);
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        request.send()
    };
    let unauthorized = |resp: reqwest::Response| async move {
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["errcode"], "M_UNAUTHORIZED", "{body}");
    };
    unauthorized(send(None).await.unwrap()).await;
    unauthorized(send(Some("X-Matrix nonsense".to_owned())).await.unwrap()).await;
    unauthorized(
        send(Some(format!(
            "X-Matrix origin=\"{SYNAPSE}\",destination=\"elsewhere.example\",key=\"ed25519:a\",sig=\"AAAA\""
        )))
        .await
        .unwrap(),
    )
    .await;
    // Claims to come from this server itself.
    unauthorized(
        send(Some(format!(
            "X-Matrix origin=\"{CONCLAVE}\",destination=\"{CONCLAVE}\",key=\"ed25519:a\",sig=\"AAAA\""
        )))
        .await
        .unwrap(),
    )
    .await;
    ts.shutdown().await;
}

/// Conclave to Conclave: a second server's signed profile query is answered; the same
/// request signed by a key that is not the second server's (though named with its key ID) is
/// refused — the origin's real key is fetched and the signature does not match it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_by_another_key_is_refused() {
    let (a, _pki_a) = conclave(55).await;
    let (b, _pki_b) = conclave(56).await;
    let alice = a.register_open("alice", "alice-password").await;
    let path = format!(
        "/_matrix/federation/v1/query/profile?user_id={}",
        enc(&alice.user_id)
    );
    let a_name: &ruma::ServerName = "127.0.0.55:8448".try_into().unwrap();
    let b_name: &ruma::ServerName = "127.0.0.56:8448".try_into().unwrap();
    let b_services = b.server().services();

    // Genuine: signed by B's own key.
    let answer = b_services
        .federation
        .get_signed(a_name, &path, b_name, &b_services.server_keys.key_pair())
        .await
        .expect("B's signed query is answered");
    assert!(answer.is_object(), "{answer}");

    // Forged: a fresh key pair under B's key ID.
    let key_id = b_services.server_keys.key_id();
    let version = key_id.trim_start_matches("ed25519:").to_owned();
    let forged = ruma::signatures::Ed25519KeyPair::from_der(
        &ruma::signatures::Ed25519KeyPair::generate(),
        version,
    )
    .unwrap();
    let error = b_services
        .federation
        .get_signed(a_name, &path, b_name, &forged)
        .await
        .expect_err("a signature by another key is refused");
    let text = error.to_string();
    assert!(
        text.contains("401") && text.contains("M_UNAUTHORIZED"),
        "{text}"
    );
    b.shutdown().await;
    a.shutdown().await;
}
