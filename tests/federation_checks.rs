//! The checks on events received over federation, with events crafted as a misbehaving
//! server would send them: Bob's server (a second Conclave, whose signing key this test
//! borrows) sends Alice's server a message with a forged signature (refused), one whose
//! content no longer matches its hash (kept redacted), a redaction before its target (applied
//! when the target arrives), a power-levels change Bob has no right to (rejected), and a
//! message built before Bob was banned but sent after (soft-failed: stored, never shown).

mod common;

use common::federation::*;
use common::*;
use conclave::service::Services;
use conclave::service::rooms::PduBuilder;
use ruma::events::TimelineEventType;
use ruma::{CanonicalJsonObject, CanonicalJsonValue, RoomId, UserId};
use serde_json::{Value, json};

/// An event by `sender` built and signed by `services`' server on its current view of the
/// room; answers its ID and its federation form.
fn craft(
    services: &Services,
    room_id: &RoomId,
    sender: &UserId,
    builder: PduBuilder,
) -> (String, CanonicalJsonObject) {
    let rooms = &services.rooms;
    let rules = rooms.rules(room_id).unwrap();
    let state = rooms.current_state(room_id).unwrap();
    let prev = rooms.forward_extremities(room_id).unwrap();
    let template = rooms
        .event_template(&builder, sender, Some(room_id), &rules, &state, prev, 1000)
        .unwrap();
    let object: CanonicalJsonObject = serde_json::from_value(template).unwrap();
    let (mut signed, pdu) = rooms.sign_pdu(object, &rules).unwrap();
    signed.remove("event_id");
    (pdu.event_id.to_string(), signed)
}

/// Sends `pdus` to `destination` in one transaction signed as `services`' server; answers
/// the per-PDU results.
async fn send(
    services: &Services,
    destination: &str,
    txn: &str,
    pdus: &[CanonicalJsonObject],
) -> Value {
    let body = json!({
        "origin": services.server_name(),
        "origin_server_ts": 1,
        "pdus": pdus,
        "edus": [],
    });
    conclave::service::federation::incoming::signed(
        services,
        http::Method::PUT,
        destination.try_into().unwrap(),
        &format!("/_matrix/federation/v1/send/{txn}"),
        Some(&body),
        1 << 20,
    )
    .await
    .unwrap()["pdus"]
        .clone()
}

fn message(body: &str) -> PduBuilder {
    PduBuilder::timeline(
        TimelineEventType::RoomMessage,
        json!({ "msgtype": "m.text", "body": body }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tampered_unauthorised_and_late_events_are_handled_as_the_spec_says() {
    let (a, _pki_a) = conclave_peer(71).await;
    let (b, _pki_b) = conclave_peer(72).await;
    let a_name = "127.0.0.71:8448";
    let alice = a.register_open("alice", "alice-password").await;
    let bob = b.register_open("bob", "bob-password").await;
    let room = create_room(&a, &alice, json!({ "preset": "public_chat" })).await;
    expect_ok(
        b.post(
            &format!("/_matrix/client/v3/join/{}?via={}", enc(&room), enc(a_name)),
            bob.bearer(),
            &json!({}),
        )
        .await,
    );
    let room_id = RoomId::parse(&room).unwrap();
    let bob_id = UserId::parse(&bob.user_id).unwrap();
    let services = b.server().services();
    let messages = || async {
        a.get(
            &room_path(&room, "/messages?dir=b&limit=50"),
            alice.bearer(),
        )
        .await
        .1
    };
    let find = |messages: &Value, id: &str| -> Option<Value> {
        messages["chunk"]
            .as_array()?
            .iter()
            .find(|e| e["event_id"] == id)
            .cloned()
    };

    // A good message first: it arrives.
    let (good, pdu) = craft(services, &room_id, &bob_id, message("good"));
    let results = send(services, a_name, "t1", &[pdu]).await;
    assert_eq!(results[&good], json!({}), "{results}");
    eventually("the good message", messages, |m| find(m, &good).is_some()).await;

    // A forged signature: refused, not stored.
    let (forged, mut pdu) = craft(services, &room_id, &bob_id, message("forged"));
    let Some(CanonicalJsonValue::Object(signatures)) = pdu.get_mut("signatures") else {
        panic!("no signatures");
    };
    let Some(CanonicalJsonValue::Object(ours)) = signatures.values_mut().next() else {
        panic!("no signature of ours");
    };
    for signature in ours.values_mut() {
        *signature = CanonicalJsonValue::String("A".repeat(86));
    }
    let results = send(services, a_name, "t2", &[pdu]).await;
    assert!(
        results[&forged]["error"]
            .as_str()
            .is_some_and(|e| e.contains("signature")),
        "{results}"
    );

    // Content changed after signing: the signature still holds for the redacted form, so
    // the event is kept — redacted.
    let (tampered, mut pdu) = craft(services, &room_id, &bob_id, message("original"));
    pdu.insert(
        "content".to_owned(),
        serde_json::from_value(json!({ "msgtype": "m.text", "body": "tampered" })).unwrap(),
    );
    let results = send(services, a_name, "t3", &[pdu]).await;
    assert_eq!(results[&tampered], json!({}), "{results}");
    let seen = eventually("the tampered message", messages, |m| {
        find(m, &tampered).is_some()
    })
    .await;
    let event = find(&seen, &tampered).unwrap();
    assert_eq!(event["content"], json!({}), "kept redacted: {event}");

    // A redaction that arrives before its target waits for it, and applies when it comes.
    let (later, later_pdu) = craft(services, &room_id, &bob_id, message("regretted"));
    let rules = services.rooms.rules(&room_id).unwrap();
    let (redaction, redaction_pdu) = craft(
        services,
        &room_id,
        &bob_id,
        conclave::service::rooms::redaction::redaction_event(
            &rules,
            &ruma::EventId::parse(&later).unwrap(),
            None,
        ),
    );
    let results = send(services, a_name, "r1", &[redaction_pdu]).await;
    assert_eq!(results[&redaction], json!({}), "{results}");
    let results = send(services, a_name, "r2", &[later_pdu]).await;
    assert_eq!(results[&later], json!({}), "{results}");
    let seen = eventually("the late target", messages, |m| find(m, &later).is_some()).await;
    let event = find(&seen, &later).unwrap();
    assert_eq!(event["content"], json!({}), "redacted on arrival: {event}");

    // Bob (power 0) makes himself an administrator: rejected by the auth rules.
    let (power, pdu) = craft(
        services,
        &room_id,
        &bob_id,
        PduBuilder::state(
            TimelineEventType::RoomPowerLevels,
            "",
            json!({ "users": { bob.user_id.clone(): 100 } }),
        ),
    );
    let results = send(services, a_name, "t4", &[pdu]).await;
    assert!(
        results[&power]["error"]
            .as_str()
            .is_some_and(|e| e.contains("rejected")),
        "{results}"
    );
    let levels = expect_ok(
        a.get(
            &room_path(&room, "/state/m.room.power_levels/"),
            alice.bearer(),
        )
        .await,
    );
    assert!(levels["users"].get(&bob.user_id).is_none(), "{levels}");

    // Written while Bob was a member, arriving after his ban: soft-failed. Accepted (no
    // error for the sender) but never shown to clients.
    let (late, pdu) = craft(
        services,
        &room_id,
        &bob_id,
        message("written before the ban"),
    );
    expect_ok(
        a.post(
            &room_path(&room, "/ban"),
            alice.bearer(),
            &json!({ "user_id": bob.user_id }),
        )
        .await,
    );
    let results = send(services, a_name, "t5", &[pdu]).await;
    assert_eq!(results[&late], json!({}), "{results}");
    let seen = messages().await;
    assert!(
        find(&seen, &late).is_none(),
        "a soft-failed event is hidden: {seen:#}"
    );
    let by_id = a
        .get(
            &room_path(&room, &format!("/event/{}", enc(&late))),
            alice.bearer(),
        )
        .await;
    assert_eq!(by_id.0, reqwest::StatusCode::NOT_FOUND, "{}", by_id.1);
    // A repeated transaction gets the same answer.
    let again = send(services, a_name, "t4", &[]).await;
    assert!(again[&power]["error"].is_string(), "{again}");

    // Alice's server still works and still has one timeline for the room.
    let id = send_text_id(&a, &alice, &room, "x", "still fine").await;
    let seen = messages().await;
    assert!(find(&seen, &id).is_some());
    a.shutdown().await;
    b.shutdown().await;
}
