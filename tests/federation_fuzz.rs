//! Hostile federation input: bad `X-Matrix` headers on every kind of endpoint, transactions
//! that are not JSON or too large, and PDUs that are malformed, oversized, for unknown rooms,
//! wrongly signed or re-signed after a bad change. Each is answered with the spec's error (or
//! a per-PDU error in a transaction); nothing reaches the room's timeline; the server still
//! answers afterwards.

mod common;

use common::federation::{conclave_peer, federation_client};
use common::*;
use conclave::service::Services;
use conclave::service::rooms::PduBuilder;
use ruma::api::federation::authentication::{XMatrix, XMatrixSigningInput};
use ruma::events::TimelineEventType;
use ruma::{CanonicalJsonObject, CanonicalJsonValue, RoomId, UserId};
use serde_json::{Value, json};

const A: &str = "127.0.0.75:8448";
const B: &str = "127.0.0.76:8448";

/// A request to A's federation listener, signed as `services`' server (B) unless told not
/// to; answers the status and the JSON body.
async fn call(
    services: Option<&Services>,
    method: http::Method,
    path: &str,
    body: Option<Vec<u8>>,
    authorization: Option<String>,
) -> (u16, Value) {
    let client = federation_client();
    let mut request = client.request(method.clone(), format!("https://{A}{path}"));
    let header = match (services, authorization) {
        (_, Some(header)) => Some(header),
        (Some(services), None) => {
            let unsigned = http::Request::builder()
                .method(method)
                .uri(path)
                .body(body.clone().unwrap_or_default())
                .unwrap();
            let key_pair = services.server_keys.key_pair();
            let input =
                XMatrixSigningInput::new(B.try_into().unwrap(), A.try_into().unwrap(), &key_pair);
            XMatrix::sign_http_request(&unsigned, input)
                .ok()
                .map(|x| http::HeaderValue::from(&x).to_str().unwrap().to_owned())
        }
        (None, None) => None,
    };
    if let Some(header) = header {
        request = request.header("Authorization", header);
    }
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/json")
            .body(body);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[track_caller]
fn assert_matrix_error(answer: &(u16, Value), status: u16, what: &str) {
    assert_eq!(answer.0, status, "{what}: {}", answer.1);
    assert!(
        answer.1["errcode"]
            .as_str()
            .is_some_and(|c| c.starts_with("M_")),
        "{what}: no errcode: {}",
        answer.1
    );
}

/// A message from `sender` built and signed by `services`' server on its view of the room.
fn pdu(services: &Services, room_id: &RoomId, sender: &UserId, body: &str) -> CanonicalJsonObject {
    let rooms = &services.rooms;
    let rules = rooms.rules(room_id).unwrap();
    let builder = PduBuilder::timeline(
        TimelineEventType::RoomMessage,
        json!({ "msgtype": "m.text", "body": body }),
    );
    let template = rooms
        .event_template(
            &builder,
            sender,
            Some(room_id),
            &rules,
            &rooms.current_state(room_id).unwrap(),
            rooms.forward_extremities(room_id).unwrap(),
            1000,
        )
        .unwrap();
    let (mut object, _) = rooms
        .sign_pdu(serde_json::from_value(template).unwrap(), &rules)
        .unwrap();
    object.remove("event_id");
    object
}

/// Signs again, after a change, as B: the event's signature holds, so what is checked is
/// the change itself.
fn resign(services: &Services, room_id: &RoomId, mut object: CanonicalJsonObject) -> Value {
    let rules = services.rooms.rules(room_id).unwrap();
    object.remove("signatures");
    object.remove("hashes");
    let _ = ruma::signatures::hash_and_sign_event(
        B,
        &*services.server_keys.key_pair(),
        &mut object,
        &rules.redaction,
    );
    serde_json::to_value(object).unwrap()
}

fn with(mut object: CanonicalJsonObject, field: &str, value: Value) -> CanonicalJsonObject {
    match CanonicalJsonValue::try_from(value) {
        Ok(value) => {
            object.insert(field.to_owned(), value);
        }
        Err(_) => {
            object.remove(field);
        }
    }
    object
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_federation_input_is_refused_with_the_spec_errors() {
    let (a, _pki_a) = conclave_peer(75).await;
    let (b, _pki_b) = conclave_peer(76).await;
    let alice = a.register_open("alice", "alice-password").await;
    let bob = b.register_open("bob", "bob-password").await;
    let room = create_room(&a, &alice, json!({ "preset": "public_chat" })).await;
    expect_ok(
        b.post(
            &format!("/_matrix/client/v3/join/{}?via={}", enc(&room), enc(A)),
            bob.bearer(),
            &json!({}),
        )
        .await,
    );
    let room_id = RoomId::parse(&room).unwrap();
    let bob_id = UserId::parse(&bob.user_id).unwrap();
    let b_services = b.server().services();
    let timeline = || async {
        expect_ok(
            a.get(
                &room_path(&room, "/messages?dir=b&limit=100"),
                alice.bearer(),
            )
            .await,
        )["chunk"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = timeline().await;

    // 1. Request authentication, on endpoints of every kind.
    let event_path = format!(
        "/_matrix/federation/v1/state_ids/{}?event_id=%24x",
        enc(&room)
    );
    let paths = [
        (
            http::Method::PUT,
            "/_matrix/federation/v1/send/f1".to_owned(),
        ),
        (http::Method::GET, event_path),
        (
            http::Method::GET,
            format!(
                "/_matrix/federation/v1/make_join/{}/{}",
                enc(&room),
                enc(&bob.user_id)
            ),
        ),
        (
            http::Method::GET,
            "/_matrix/federation/v1/event/%24x".to_owned(),
        ),
        (
            http::Method::GET,
            format!(
                "/_matrix/federation/v1/backfill/{}?v=%24x&limit=5",
                enc(&room)
            ),
        ),
    ];
    let headers = [
        None,
        Some("Bearer abc".to_owned()),
        Some("X-Matrix".to_owned()),
        Some("X-Matrix origin=\"\",key=\"\",sig=\"\"".to_owned()),
        Some(format!(
            "X-Matrix origin=\"{B}\",destination=\"{A}\",key=\"ed25519:nope\",sig=\"AAAA\""
        )),
        Some(format!(
            "X-Matrix origin=\"{B}\",destination=\"elsewhere.example\",key=\"ed25519:x\",sig=\"AAAA\""
        )),
        Some(format!(
            "X-Matrix origin=\"{A}\",destination=\"{A}\",key=\"ed25519:x\",sig=\"AAAA\""
        )),
        Some("X-Matrix origin=\"10.0.0.1:8448\",key=\"ed25519:x\",sig=\"AAAA\"".to_owned()),
    ];
    for (method, path) in &paths {
        for header in &headers {
            let body =
                (*method == http::Method::PUT).then(|| b"{\"pdus\":[],\"edus\":[]}".to_vec());
            let answer = call(None, method.clone(), path, body, header.clone()).await;
            assert_matrix_error(&answer, 401, &format!("{method} {path} with {header:?}"));
        }
    }
    // A good signature over a different body than the one sent.
    let signed_for_other = {
        let unsigned = http::Request::builder()
            .method(http::Method::PUT)
            .uri("/_matrix/federation/v1/send/f2")
            .body(b"{\"pdus\":[],\"edus\":[]}".to_vec())
            .unwrap();
        let key_pair = b_services.server_keys.key_pair();
        let input =
            XMatrixSigningInput::new(B.try_into().unwrap(), A.try_into().unwrap(), &key_pair);
        let x = XMatrix::sign_http_request(&unsigned, input).unwrap();
        http::HeaderValue::from(&x).to_str().unwrap().to_owned()
    };
    let answer = call(
        None,
        http::Method::PUT,
        "/_matrix/federation/v1/send/f2",
        Some(b"{\"pdus\":[{}],\"edus\":[]}".to_vec()),
        Some(signed_for_other),
    )
    .await;
    assert_matrix_error(&answer, 401, "a signature over another body");

    // 2. Transactions that cannot be read, or carry too much.
    for (body, status, what) in [
        (b"not json".to_vec(), 400, "not JSON"),
        (b"[]".to_vec(), 400, "not an object"),
        (b"{\"pdus\":7}".to_vec(), 400, "pdus not a list"),
    ] {
        let answer = call(
            Some(b_services),
            http::Method::PUT,
            "/_matrix/federation/v1/send/f3",
            Some(body),
            None,
        )
        .await;
        // Unsignable bodies (not JSON) fail authentication first: 401 is right too.
        assert!(
            answer.0 == status || answer.0 == 401,
            "{what}: {} {}",
            answer.0,
            answer.1
        );
        assert!(answer.1["errcode"].is_string(), "{what}: {}", answer.1);
    }
    let many: Vec<Value> = (0..51).map(|_| json!({})).collect();
    let body = serde_json::to_vec(
        &json!({ "origin": B, "origin_server_ts": 1, "pdus": many, "edus": [] }),
    )
    .unwrap();
    let answer = call(
        Some(b_services),
        http::Method::PUT,
        "/_matrix/federation/v1/send/f4",
        Some(body),
        None,
    )
    .await;
    assert!(answer.0 == 400 || answer.0 == 413, "51 PDUs: {answer:?}");
    let body =
        serde_json::to_vec(&json!({ "origin": A, "origin_server_ts": 1, "pdus": [], "edus": [] }))
            .unwrap();
    let answer = call(
        Some(b_services),
        http::Method::PUT,
        "/_matrix/federation/v1/send/f5",
        Some(body),
        None,
    )
    .await;
    assert_matrix_error(&answer, 403, "a transaction claiming another origin");

    // 3. Malformed PDUs in well-signed transactions: each refused on its own.
    let base = pdu(b_services, &room_id, &bob_id, "base");
    let mut cases: Vec<(String, Value)> = vec![
        ("a number".into(), json!(42)),
        ("a list".into(), json!([])),
        ("no fields".into(), json!({})),
        (
            "another room".into(),
            json!({ "room_id": "!unknown:127.0.0.76:8448", "type": "m.room.message" }),
        ),
        ("bad signature".into(), {
            let mut v = serde_json::to_value(&base).unwrap();
            v["signatures"][B] = json!({ "ed25519:x": "AAAA" });
            v
        }),
        ("not signed by its sender's server".into(), {
            let mut v = serde_json::to_value(&base).unwrap();
            v["sender"] = json!("@mallory:127.0.0.77:8448");
            v
        }),
    ];
    let resigned = [
        ("no type", with(base.clone(), "type", Value::Null)),
        (
            "depth not a number",
            with(base.clone(), "depth", json!("deep")),
        ),
        (
            "prev_events not a list",
            with(base.clone(), "prev_events", json!("x")),
        ),
        (
            "too many prev_events",
            with(
                base.clone(),
                "prev_events",
                json!((0..30).map(|i| format!("$e{i}")).collect::<Vec<_>>()),
            ),
        ),
        (
            "sender not a user ID",
            with(base.clone(), "sender", json!("bob")),
        ),
        (
            "state_key not a string",
            with(base.clone(), "state_key", json!(7)),
        ),
        (
            "content over 64 KiB",
            with(
                base.clone(),
                "content",
                json!({ "body": "x".repeat(70_000), "msgtype": "m.text" }),
            ),
        ),
        (
            "origin_server_ts a string",
            with(base.clone(), "origin_server_ts", json!("now")),
        ),
        (
            "unknown auth event",
            with(base.clone(), "auth_events", json!(["$nowhere"])),
        ),
    ];
    for (what, object) in resigned {
        cases.push((what.into(), resign(b_services, &room_id, object)));
    }
    for (i, (what, pdu)) in cases.iter().enumerate() {
        let body = serde_json::to_vec(&json!({
            "origin": B, "origin_server_ts": 1, "pdus": [pdu], "edus": []
        }))
        .unwrap();
        let answer = call(
            Some(b_services),
            http::Method::PUT,
            &format!("/_matrix/federation/v1/send/p{i}"),
            Some(body),
            None,
        )
        .await;
        assert_eq!(answer.0, 200, "{what}: {}", answer.1);
        let results = answer.1["pdus"].as_object().cloned().unwrap_or_default();
        assert!(
            results.values().all(|r| r["error"].is_string()),
            "{what}: accepted: {}",
            answer.1
        );
        // Whatever has an event ID gets its own error; what has none cannot be named.
        let named = i >= 4 && *what != "no type";
        assert_eq!(!results.is_empty(), named, "{what}: {}", answer.1);
    }

    // 4. Membership endpoints with bad input.
    let answer = call(
        Some(b_services),
        http::Method::GET,
        &format!(
            "/_matrix/federation/v1/make_join/{}/{}?ver=999",
            enc(&room),
            enc(&bob.user_id)
        ),
        None,
        None,
    )
    .await;
    assert_matrix_error(&answer, 400, "make_join for no supported version");
    assert_eq!(answer.1["errcode"], "M_INCOMPATIBLE_ROOM_VERSION");
    let answer = call(
        Some(b_services),
        http::Method::GET,
        &format!(
            "/_matrix/federation/v1/make_join/{}/{}",
            enc(&room),
            enc(&alice.user_id)
        ),
        None,
        None,
    )
    .await;
    assert_matrix_error(&answer, 403, "make_join for another server's user");
    let answer = call(
        Some(b_services),
        http::Method::PUT,
        &format!("/_matrix/federation/v2/send_join/{}/%24x", enc(&room)),
        Some(b"{\"type\":\"m.room.member\"}".to_vec()),
        None,
    )
    .await;
    assert_matrix_error(&answer, 400, "send_join with a malformed event");
    let answer = call(
        Some(b_services),
        http::Method::PUT,
        &format!("/_matrix/federation/v2/invite/{}/%24x", enc(&room)),
        Some(
            serde_json::to_vec(
                &json!({ "room_version": "999", "event": {}, "invite_room_state": [] }),
            )
            .unwrap(),
        ),
        None,
    )
    .await;
    assert_matrix_error(&answer, 400, "invite to an unknown room version");
    assert_eq!(answer.1["errcode"], "M_INCOMPATIBLE_ROOM_VERSION");

    // Nothing reached the timeline, and the server still works.
    assert_eq!(timeline().await, before, "no hostile event in the timeline");
    let id = send_text_id(&a, &alice, &room, "after", "still answering").await;
    assert!(!id.is_empty());
    let good = pdu(b_services, &room_id, &bob_id, "a good one after all that");
    let body = serde_json::to_vec(
        &json!({ "origin": B, "origin_server_ts": 1, "pdus": [good], "edus": [] }),
    )
    .unwrap();
    let answer = call(
        Some(b_services),
        http::Method::PUT,
        "/_matrix/federation/v1/send/ok",
        Some(body),
        None,
    )
    .await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert!(
        answer.1["pdus"]
            .as_object()
            .unwrap()
            .values()
            .all(|r| r == &json!({})),
        "{}",
        answer.1
    );
    a.shutdown().await;
    b.shutdown().await;
}
