//! EDUs between two Conclave servers: typing notices, read receipts and presence of each side's users
//! reach the other side's clients through `/sync`; EDUs a server sends for users that are
//! not its own, or not in the room, are dropped.

mod common;

use common::federation::*;
use common::*;
use serde_json::{Value, json};

/// The room's ephemeral events of `kind` in a full `/sync` of `who`.
async fn ephemeral(ts: &TestServer, who: &Session, room: &str, kind: &str) -> Value {
    let sync = sync_now(ts, who).await;
    let events = sync["rooms"]["join"][room]["ephemeral"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    events
        .into_iter()
        .find(|e| e["type"] == kind)
        .map(|e| e["content"].clone())
        .unwrap_or(Value::Null)
}

fn typing_users(content: &Value) -> Vec<String> {
    content["user_ids"]
        .as_array()
        .map(|users| {
            users
                .iter()
                .filter_map(|u| u.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_and_receipts_cross_servers_both_ways() {
    let (a, _pki_a) = conclave_peer(94).await;
    let (b, _pki_b) = conclave_peer(95).await;
    let alice = a.register_open("alice", "alice-password").await;
    let bob = b.register_open("bob", "bob-password").await;
    let a_name = a.config().server_name.to_string();
    let room = create_room(&a, &alice, json!({ "preset": "public_chat" })).await;
    let join_path = format!(
        "/_matrix/client/v3/join/{}?via={}",
        enc(&room),
        enc(&a_name)
    );
    expect_ok(b.post(&join_path, bob.bearer(), &json!({})).await);
    let message = send_text_id(&a, &alice, &room, "m1", "read me").await;
    eventually(
        "alice's message at bob's server",
        || room_messages(&b, &bob, &room),
        |m| has_body(m, "read me"),
    )
    .await;

    // Alice types: Bob's client sees it; she stops: it sees that too.
    let typing_path = |who: &Session| room_path(&room, &format!("/typing/{}", enc(&who.user_id)));
    expect_ok(
        a.put(
            &typing_path(&alice),
            alice.bearer(),
            &json!({ "typing": true, "timeout": 30000 }),
        )
        .await,
    );
    eventually(
        "alice typing at bob's server",
        || ephemeral(&b, &bob, &room, "m.typing"),
        |c| typing_users(c) == [alice.user_id.clone()],
    )
    .await;
    expect_ok(
        a.put(
            &typing_path(&alice),
            alice.bearer(),
            &json!({ "typing": false }),
        )
        .await,
    );
    eventually(
        "alice stopped typing at bob's server",
        || ephemeral(&b, &bob, &room, "m.typing"),
        |c| typing_users(c).is_empty(),
    )
    .await;

    // Bob types: Alice's client sees it.
    expect_ok(
        b.put(
            &typing_path(&bob),
            bob.bearer(),
            &json!({ "typing": true, "timeout": 30000 }),
        )
        .await,
    );
    eventually(
        "bob typing at alice's server",
        || ephemeral(&a, &alice, &room, "m.typing"),
        |c| typing_users(c) == [bob.user_id.clone()],
    )
    .await;

    // Bob reads Alice's message (a public receipt): her client sees it. His private one
    // stays on his server.
    expect_ok(
        b.post(
            &room_path(&room, &format!("/receipt/m.read/{}", enc(&message))),
            bob.bearer(),
            &json!({}),
        )
        .await,
    );
    let receipts = eventually(
        "bob's receipt at alice's server",
        || ephemeral(&a, &alice, &room, "m.receipt"),
        |c| c[&message]["m.read"].get(&bob.user_id).is_some(),
    )
    .await;
    assert!(
        receipts[&message]["m.read"][&bob.user_id]["ts"].is_u64(),
        "{receipts}"
    );

    // Alice's presence and status reach Bob's server: his sync shows it, and so does a
    // presence query there.
    expect_ok(
        a.put(
            &format!("/_matrix/client/v3/presence/{}/status", enc(&alice.user_id)),
            alice.bearer(),
            &json!({ "presence": "online", "status_msg": "in a meeting" }),
        )
        .await,
    );
    eventually(
        "alice's presence in bob's sync",
        || sync_now(&b, &bob),
        |s| {
            s["presence"]["events"].as_array().is_some_and(|events| {
                events.iter().any(|e| {
                    e["sender"] == alice.user_id.as_str()
                        && e["content"]["status_msg"] == "in a meeting"
                })
            })
        },
    )
    .await;
    let presence = expect_ok(
        b.get(
            &format!("/_matrix/client/v3/presence/{}/status", enc(&alice.user_id)),
            bob.bearer(),
        )
        .await,
    );
    assert_eq!(presence["presence"], "online", "{presence}");

    // A server speaking for users that are not its own, or not in the room: dropped.
    let b_services = b.server().services();
    let mallory = format!("@mallory:{}", b.config().server_name);
    let a_server: ruma::OwnedServerName = a_name.as_str().try_into().unwrap();
    let forged = json!({
        "origin": b.config().server_name,
        "origin_server_ts": 1,
        "pdus": [],
        "edus": [
            { "edu_type": "m.typing",
              "content": { "room_id": room, "user_id": alice.user_id, "typing": true } },
            { "edu_type": "m.typing",
              "content": { "room_id": room, "user_id": mallory, "typing": true } },
            { "edu_type": "m.receipt", "content": { room.as_str(): { "m.read": {
                mallory.as_str(): { "event_ids": [message], "data": { "ts": 1 } } } } } },
        ],
    });
    b_services
        .federation
        .send_signed(
            http::Method::PUT,
            &a_server,
            "/_matrix/federation/v1/send/forged1",
            Some(&forged),
            b_services.server_name(),
            &b_services.server_keys.key_pair(),
            1 << 20,
        )
        .await
        .expect("the transaction is answered");
    let typing = ephemeral(&a, &alice, &room, "m.typing").await;
    assert_eq!(typing_users(&typing), vec![bob.user_id.clone()], "{typing}");
    let receipts = ephemeral(&a, &alice, &room, "m.receipt").await;
    assert!(
        receipts[&message]["m.read"].get(&mallory).is_none(),
        "{receipts}"
    );
    a.shutdown().await;
    b.shutdown().await;
}
