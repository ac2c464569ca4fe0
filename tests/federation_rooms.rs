//! Rooms shared between two Conclave servers over federation, each on its own loopback
//! address with a certificate of the test PKI: joins by alias and by room ID, messages both
//! ways, invites both ways and a rejection, leaving — every step seen by the other side's
//! clients through `/sync` and `/messages`, as Element would see it.

mod common;

use common::federation::*;
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_conclaves_share_rooms_join_chat_invite_and_leave() {
    let (a, _pki_a) = conclave_peer(61).await;
    let (b, _pki_b) = conclave_peer(62).await;
    let alice = a.register_open("alice", "alice-password").await;
    let bob = b.register_open("bob", "bob-password").await;

    // Alice's public room with an alias; Bob joins it by that alias from his server.
    let lobby = create_room(
        &a,
        &alice,
        json!({ "preset": "public_chat", "room_alias_name": "lobby", "name": "Lobby" }),
    )
    .await;
    send_text_id(&a, &alice, &lobby, "t1", "before bob").await;
    let joined = expect_ok(
        b.post(
            &format!("/_matrix/client/v3/join/{}", enc("#lobby:127.0.0.61:8448")),
            bob.bearer(),
            &json!({}),
        )
        .await,
    );
    assert_eq!(joined["room_id"], lobby);
    // Both servers agree who is in the room.
    for (ts, who) in [(&a, &alice), (&b, &bob)] {
        eventually(
            "both members joined",
            || joined_members(ts, who, &lobby),
            |members| {
                members["joined"].get(&alice.user_id).is_some()
                    && members["joined"].get(&bob.user_id).is_some()
            },
        )
        .await;
    }
    // Bob's server knows the room's name from the state it was given.
    let name = expect_ok(
        b.get(&room_path(&lobby, "/state/m.room.name/"), bob.bearer())
            .await,
    );
    assert_eq!(name["name"], "Lobby");

    // Messages both ways.
    send_text_id(&a, &alice, &lobby, "t2", "hello bob").await;
    eventually(
        "alice's message at bob's server",
        || room_messages(&b, &bob, &lobby),
        |m| has_body(m, "hello bob"),
    )
    .await;
    send_text_id(&b, &bob, &lobby, "t1", "hello alice").await;
    eventually(
        "bob's message at alice's server",
        || room_messages(&a, &alice, &lobby),
        |m| has_body(m, "hello alice"),
    )
    .await;
    // And through /sync, as a client sees it.
    eventually(
        "bob's message in alice's sync",
        || sync_now(&a, &alice),
        |s| {
            s["rooms"]["join"][&lobby]["timeline"]["events"]
                .as_array()
                .is_some_and(|events| events.iter().any(|e| e["content"]["body"] == "hello alice"))
        },
    )
    .await;

    // What IT sees on Alice's server: Bob's server as a destination with nothing left queued
    // and a success, its transactions among the incoming ones, and one of its events fetched
    // and checked on demand.
    let socket = a.config().admin_socket_path();
    let (code, out, err) = console(&socket, &["federation", "destinations"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let row = out
        .lines()
        .find(|line| line.contains("127.0.0.62:8448"))
        .unwrap_or_else(|| panic!("no row for bob's server:\n{out}"));
    assert!(row.contains(" 0 ") && !row.contains("never"), "{row}");
    let (code, out, err) = console(&socket, &["federation", "incoming", "--limit", "50"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("127.0.0.62:8448"), "{out}");
    let hello = expect_ok(
        b.get(&room_path(&lobby, "/messages?dir=b&limit=5"), bob.bearer())
            .await,
    )["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["content"]["body"] == "hello alice")
        .unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, out, err) = console(
        &socket,
        &[
            "federation",
            "fetch-event",
            "127.0.0.62:8448",
            &hello,
            "--room",
            &lobby,
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("check out") && out.contains("hello alice"),
        "{out}"
    );
    let (code, out, err) = console(&socket, &["federation", "retry", "127.0.0.62:8448"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 events queued"), "{out}");

    // Bob (on B) invites Alice (on A) to a room of his; she sees the invite with the room's
    // name and joins it by its ID.
    let bobs_room = create_room(
        &b,
        &bob,
        json!({ "preset": "private_chat", "name": "Bob's corner" }),
    )
    .await;
    expect_ok(
        b.post(
            &room_path(&bobs_room, "/invite"),
            bob.bearer(),
            &json!({ "user_id": alice.user_id }),
        )
        .await,
    );
    let invited = eventually(
        "bob's invite in alice's sync",
        || sync_now(&a, &alice),
        |s| s["rooms"]["invite"].get(&bobs_room).is_some(),
    )
    .await;
    let invite_state = &invited["rooms"]["invite"][&bobs_room]["invite_state"]["events"];
    assert!(
        invite_state
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Bob's corner"),
        "{invite_state:#}"
    );
    expect_ok(
        a.post(
            &format!("/_matrix/client/v3/join/{}", enc(&bobs_room)),
            alice.bearer(),
            &json!({}),
        )
        .await,
    );
    send_text_id(&a, &alice, &bobs_room, "t3", "thanks for the invite").await;
    eventually(
        "alice's message in bob's room",
        || room_messages(&b, &bob, &bobs_room),
        |m| has_body(m, "thanks for the invite"),
    )
    .await;

    // Alice (on A) invites Carol (on B), who rejects: the rejection reaches Alice's server.
    let carol = b.register_open("carol", "carol-password").await;
    let private = create_room(&a, &alice, json!({ "preset": "private_chat" })).await;
    expect_ok(
        a.post(
            &room_path(&private, "/invite"),
            alice.bearer(),
            &json!({ "user_id": carol.user_id }),
        )
        .await,
    );
    eventually(
        "alice's invite in carol's sync",
        || sync_now(&b, &carol),
        |s| s["rooms"]["invite"].get(&private).is_some(),
    )
    .await;
    expect_ok(
        b.post(&room_path(&private, "/leave"), carol.bearer(), &json!({}))
            .await,
    );
    eventually(
        "carol's rejection at alice's server",
        || room_messages(&a, &alice, &private),
        |m| membership_of(m, &carol.user_id).as_deref() == Some("leave"),
    )
    .await;
    let after = sync_now(&b, &carol).await;
    assert!(
        after["rooms"]["invite"].get(&private).is_none(),
        "{after:#}"
    );

    // Bob leaves the lobby: Alice's server sees it.
    expect_ok(
        b.post(&room_path(&lobby, "/leave"), bob.bearer(), &json!({}))
            .await,
    );
    eventually(
        "bob's leave at alice's server",
        || joined_members(&a, &alice, &lobby),
        |members| members["joined"].get(&bob.user_id).is_none(),
    )
    .await;

    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_from_before_a_join_is_backfilled_when_paging_back() {
    let (a, _pki_a) = conclave_peer(73).await;
    let (b, _pki_b) = conclave_peer(74).await;
    let alice = a.register_open("alice", "alice-password").await;
    let bob = b.register_open("bob", "bob-password").await;
    let room = create_room(
        &a,
        &alice,
        json!({ "preset": "public_chat", "initial_state": [{
            "type": "m.room.history_visibility", "state_key": "",
            "content": { "history_visibility": "shared" }
        }] }),
    )
    .await;
    for i in 0..30 {
        send_text_id(&a, &alice, &room, &format!("h{i}"), &format!("history {i}")).await;
    }
    expect_ok(
        b.post(
            &format!(
                "/_matrix/client/v3/join/{}?via=127.0.0.73%3A8448",
                enc(&room)
            ),
            bob.bearer(),
            &json!({}),
        )
        .await,
    );
    // Bob's client pages back from the join, as Element does when the room opens.
    let mut seen = Vec::new();
    let mut from: Option<String> = None;
    for _ in 0..10 {
        let path = match &from {
            Some(token) => format!("/messages?dir=b&limit=10&from={}", enc(token)),
            None => "/messages?dir=b&limit=10".to_owned(),
        };
        let page = expect_ok(b.get(&room_path(&room, &path), bob.bearer()).await);
        for event in page["chunk"].as_array().unwrap() {
            if let Some(body) = event["content"]["body"].as_str() {
                seen.push(body.to_owned());
            }
        }
        match page["end"].as_str() {
            Some(end) => from = Some(end.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..30).rev().map(|i| format!("history {i}")).collect();
    assert_eq!(seen, expected, "newest first, nothing missing or repeated");
    // The room's creation is reached: the history is whole.
    let first = expect_ok(
        b.get(
            &room_path(
                &room,
                &format!(
                    "/messages?dir=b&limit=100&from={}",
                    enc(from.as_deref().unwrap_or("t0"))
                ),
            ),
            bob.bearer(),
        )
        .await,
    );
    assert!(first["end"].is_null(), "{first:#}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_knock_on_a_remote_room_is_seen_and_answered_with_an_invite() {
    let (a, _pki_a) = conclave_peer(80).await;
    let (b, _pki_b) = conclave_peer(81).await;
    let alice = a.register_open("alice", "alice-password").await;
    let bob = b.register_open("bob", "bob-password").await;
    let room = create_room(
        &a,
        &alice,
        json!({ "preset": "private_chat", "name": "Knock first", "initial_state": [{
            "type": "m.room.join_rules", "state_key": "", "content": { "join_rule": "knock" }
        }] }),
    )
    .await;
    expect_ok(
        b.post(
            &format!(
                "/_matrix/client/v3/knock/{}?via=127.0.0.80%3A8448",
                enc(&room)
            ),
            bob.bearer(),
            &json!({ "reason": "let me in" }),
        )
        .await,
    );
    // Bob's client shows the room he knocked on, by its name.
    let knocked = eventually(
        "the knock in bob's sync",
        || sync_now(&b, &bob),
        |s| s["rooms"]["knock"].get(&room).is_some(),
    )
    .await;
    let knock_state = &knocked["rooms"]["knock"][&room]["knock_state"]["events"];
    assert!(
        knock_state
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Knock first"),
        "{knock_state:#}"
    );
    // Alice sees the knock, and lets him in.
    eventually(
        "bob's knock at alice's server",
        || room_messages(&a, &alice, &room),
        |m| membership_of(m, &bob.user_id).as_deref() == Some("knock"),
    )
    .await;
    expect_ok(
        a.post(
            &room_path(&room, "/invite"),
            alice.bearer(),
            &json!({ "user_id": bob.user_id }),
        )
        .await,
    );
    eventually(
        "the invite in bob's sync",
        || sync_now(&b, &bob),
        |s| s["rooms"]["invite"].get(&room).is_some(),
    )
    .await;
    expect_ok(
        b.post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            bob.bearer(),
            &json!({}),
        )
        .await,
    );
    eventually(
        "bob joined at alice's server",
        || joined_members(&a, &alice, &room),
        |m| m["joined"].get(&bob.user_id).is_some(),
    )
    .await;
    a.shutdown().await;
    b.shutdown().await;
}
