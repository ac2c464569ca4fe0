//! Two Conclave servers when things go wrong: a kick and a ban of a remote user; a restart
//! with events still queued for a server that is down (nothing is lost); and a partition,
//! where each side changes the room's state while the other is away and both converge to the
//! same state by state resolution once they meet again.

mod common;

use common::federation::*;
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Alice's public room on `a`, joined by Bob from `b` (both servers agree on it).
async fn shared_room(a: &TestServer, alice: &Session, b: &TestServer, bob: &Session) -> String {
    let room = create_room(a, alice, json!({ "preset": "public_chat" })).await;
    expect_ok(
        b.post(
            &format!(
                "/_matrix/client/v3/join/{}?via={}",
                enc(&room),
                enc(a.config().server_name.as_str())
            ),
            bob.bearer(),
            &json!({}),
        )
        .await,
    );
    eventually(
        "bob joined at alice's server",
        || joined_members(a, alice, &room),
        |m| m["joined"].get(&bob.user_id).is_some(),
    )
    .await;
    room
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kick_and_a_ban_reach_the_remote_member() {
    let (a, _pki_a) = conclave_peer(65).await;
    let (b, _pki_b) = conclave_peer(66).await;
    let alice = a.register_open("alice", "alice-password").await;
    let bob = b.register_open("bob", "bob-password").await;
    let room = shared_room(&a, &alice, &b, &bob).await;

    expect_ok(
        a.post(
            &room_path(&room, "/kick"),
            alice.bearer(),
            &json!({ "user_id": bob.user_id, "reason": "out" }),
        )
        .await,
    );
    // Bob's server learns it: his client reads his own kick.
    eventually(
        "the kick at bob's server",
        || room_messages(&b, &bob, &room),
        |m| membership_of(m, &bob.user_id).as_deref() == Some("leave"),
    )
    .await;
    // A kick is not a ban: he joins again, through the server of the room's other member.
    expect_ok(
        b.post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            bob.bearer(),
            &json!({}),
        )
        .await,
    );
    eventually(
        "bob back at alice's server",
        || joined_members(&a, &alice, &room),
        |m| m["joined"].get(&bob.user_id).is_some(),
    )
    .await;

    expect_ok(
        a.post(
            &room_path(&room, "/ban"),
            alice.bearer(),
            &json!({ "user_id": bob.user_id, "reason": "gone" }),
        )
        .await,
    );
    eventually(
        "the ban at bob's server",
        || room_messages(&b, &bob, &room),
        |m| membership_of(m, &bob.user_id).as_deref() == Some("ban"),
    )
    .await;
    let refused = b
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&room)),
            bob.bearer(),
            &json!({}),
        )
        .await;
    assert_errcode(&refused, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let members = joined_members(&a, &alice, &room).await;
    assert!(members["joined"].get(&bob.user_id).is_none(), "{members}");

    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_queued_for_a_stopped_server_survive_a_restart() {
    let (mut a, _pki_a) = conclave_peer(69).await;
    let (mut b, _pki_b) = conclave_peer(70).await;
    let alice = a.register_open("alice", "alice-password").await;
    let bob = b.register_open("bob", "bob-password").await;
    let room = shared_room(&a, &alice, &b, &bob).await;

    b.stop().await;
    for i in 0..3 {
        send_text_id(&a, &alice, &room, &format!("q{i}"), &format!("queued {i}")).await;
    }
    // Alice's server restarts with the three events unsent; then Bob's comes back.
    a.restart().await;
    b.restart().await;
    for i in 0..3 {
        eventually(
            "a queued message at bob's server",
            || room_messages(&b, &bob, &room),
            |m| has_body(m, &format!("queued {i}")),
        )
        .await;
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_of_a_partition_converge_on_one_state() {
    let (mut a, _pki_a) = conclave_peer(67).await;
    let (mut b, _pki_b) = conclave_peer(68).await;
    let alice = a.register_open("alice", "alice-password").await;
    let bob = b.register_open("bob", "bob-password").await;
    let room = shared_room(&a, &alice, &b, &bob).await;
    // Bob gets the power to change state too (Alice, the creator, has it implicitly).
    expect_ok(
        a.put(
            &room_path(&room, "/state/m.room.power_levels/"),
            alice.bearer(),
            &json!({ "users": { bob.user_id.clone(): 50 } }),
        )
        .await,
    );
    eventually(
        "bob's power at his server",
        || async {
            b.get(
                &room_path(&room, "/state/m.room.power_levels/"),
                bob.bearer(),
            )
            .await
            .1
        },
        |p| p["users"][&bob.user_id] == 50,
    )
    .await;

    // Apart: Alice names the room while Bob's server is down; then Bob sets the topic while
    // Alice's is down.
    b.stop().await;
    expect_ok(
        a.put(
            &room_path(&room, "/state/m.room.name/"),
            alice.bearer(),
            &json!({ "name": "Named by A" }),
        )
        .await,
    );
    a.stop().await;
    b.restart().await;
    expect_ok(
        b.put(
            &room_path(&room, "/state/m.room.topic/"),
            bob.bearer(),
            &json!({ "topic": "Topic by B" }),
        )
        .await,
    );
    // Together again: each side's queue delivers, each side resolves the fork.
    a.restart().await;
    for (ts, who) in [(&a, &alice), (&b, &bob)] {
        eventually(
            "the name on both sides",
            || async {
                ts.get(&room_path(&room, "/state/m.room.name/"), who.bearer())
                    .await
                    .1
            },
            |n| n["name"] == "Named by A",
        )
        .await;
        eventually(
            "the topic on both sides",
            || async {
                ts.get(&room_path(&room, "/state/m.room.topic/"), who.bearer())
                    .await
                    .1
            },
            |t| t["topic"] == "Topic by B",
        )
        .await;
    }
    // A message after the partition builds on both branches, and reaches the other side.
    send_text_id(&a, &alice, &room, "after", "together again").await;
    eventually(
        "the merge at bob's server",
        || room_messages(&b, &bob, &room),
        |m| has_body(m, "together again"),
    )
    .await;
    let state_a = expect_ok(a.get(&room_path(&room, "/state"), alice.bearer()).await);
    let state_b = expect_ok(b.get(&room_path(&room, "/state"), bob.bearer()).await);
    let ids = |state: &Value| {
        let mut ids: Vec<String> = state
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(&state_a),
        ids(&state_b),
        "both sides hold the same state"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_deeper_than_missing_events_is_crossed_with_the_state_at_it() {
    let (a, _pki_a) = conclave_peer(84).await;
    let (mut b, _pki_b) = conclave_peer(85).await;
    let alice = a.register_open("alice", "alice-password").await;
    let bob = b.register_open("bob", "bob-password").await;
    let room = shared_room(&a, &alice, &b, &bob).await;

    b.stop().await;
    // Bob's server is down while Alice writes more than one transaction's worth: her server
    // fails to reach it, and once it is back catches up as Synapse does, sending only the
    // room's newest event.
    for i in 0..60 {
        send_text_id(&a, &alice, &room, &format!("g{i}"), &format!("gap {i}")).await;
    }
    let bob_server: ruma::OwnedServerName = "127.0.0.85:8448".try_into().unwrap();
    eventually(
        "alice's server failed to reach bob's",
        || async {
            json!(
                a.server()
                    .services()
                    .sending
                    .status()
                    .unwrap()
                    .into_iter()
                    .find(|d| d.server == bob_server)
                    .map_or(0, |d| d.failures)
            )
        },
        |failures| failures.as_u64() > Some(0),
    )
    .await;
    b.restart().await;
    a.server().services().sending.retry(&bob_server);
    // Fifty-nine events are missing before it, more than get_missing_events fetches: Bob's
    // server asks for the state at its parent and places it across the gap.
    eventually(
        "the newest event at bob's server",
        || room_messages(&b, &bob, &room),
        |m| has_body(m, "gap 59"),
    )
    .await;
    let from_alice: Vec<usize> = b
        .server()
        .services()
        .inbound
        .recent(50)
        .into_iter()
        .filter(|txn| txn.origin.as_str() == "127.0.0.84:8448")
        .map(|txn| txn.results.len())
        .collect();
    assert_eq!(
        from_alice,
        [1],
        "one transaction of one PDU: {from_alice:?}"
    );
    assert_eq!(
        a.server().services().sending.queued(&bob_server).unwrap(),
        0
    );
    // And the room goes on: Bob's answer reaches Alice.
    send_text_id(&b, &bob, &room, "after", "across the gap").await;
    eventually(
        "bob's answer at alice's server",
        || room_messages(&a, &alice, &room),
        |m| has_body(m, "across the gap"),
    )
    .await;
    a.shutdown().await;
    b.shutdown().await;
}
