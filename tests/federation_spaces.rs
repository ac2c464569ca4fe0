//! A space whose rooms live on two Conclave servers: each side's `/hierarchy` lists the
//! rooms of the other server, described by that server (`hierarchy` over federation); and
//! `timestamp_to_event` answered to the other server, and a client's asked of history its
//! server fetches from the other.

mod common;

use common::federation::*;
use common::*;
use serde_json::{Value, json};

fn names(hierarchy: &Value) -> Vec<String> {
    hierarchy["rooms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|room| room["name"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_space_lists_rooms_of_both_servers_on_both_sides() {
    let (a, _pki_a) = conclave_peer(104).await;
    let (b, _pki_b) = conclave_peer(105).await;
    let alice = a.register_open("alice", "alice-password").await;
    let bob = b.register_open("bob", "bob-password").await;
    let a_name = a.config().server_name.to_string();
    let b_name = b.config().server_name.to_string();

    let partner_room = create_room(
        &b,
        &bob,
        json!({ "preset": "public_chat", "name": "Partner room" }),
    )
    .await;
    let alice_room = create_room(
        &a,
        &alice,
        json!({ "preset": "public_chat", "name": "Alice's room" }),
    )
    .await;
    let space = create_room(
        &a,
        &alice,
        json!({ "preset": "public_chat", "name": "Joint space",
                "creation_content": { "type": "m.space" } }),
    )
    .await;
    for (child, via) in [(&alice_room, &a_name), (&partner_room, &b_name)] {
        expect_ok(
            a.put(
                &room_path(&space, &format!("/state/m.space.child/{}", enc(child))),
                alice.bearer(),
                &json!({ "via": [via] }),
            )
            .await,
        );
    }

    // Alice's server holds the space and her room; the partner room is described by Bob's.
    let path = room_path(&space, "/hierarchy").replace("/v3/", "/v1/");
    let seen = expect_ok(a.get(&path, alice.bearer()).await);
    let listed = names(&seen);
    for name in ["Joint space", "Alice's room", "Partner room"] {
        assert!(listed.iter().any(|n| n == name), "{name} missing: {seen}");
    }

    // Bob joins the space: his server now holds it and his room, and asks Alice's for hers.
    expect_ok(
        b.post(
            &format!(
                "/_matrix/client/v3/join/{}?via={}",
                enc(&space),
                enc(&a_name)
            ),
            bob.bearer(),
            &json!({}),
        )
        .await,
    );
    let seen = expect_ok(b.get(&path, bob.bearer()).await);
    let listed = names(&seen);
    for name in ["Joint space", "Alice's room", "Partner room"] {
        assert!(
            listed.iter().any(|n| n == name),
            "{name} missing at bob's: {seen}"
        );
    }

    // timestamp_to_event over federation: from the start of time forwards, the space's
    // first event (its create event, whose ID the v12 room ID is made from).
    let services = b.server().services();
    let a_server: ruma::OwnedServerName = a_name.as_str().try_into().unwrap();
    let first = services
        .federation
        .get_signed(
            &a_server,
            &format!(
                "/_matrix/federation/v1/timestamp_to_event/{}?ts=0&dir=f",
                enc(&space)
            ),
            services.server_name(),
            &services.server_keys.key_pair(),
        )
        .await
        .expect("timestamp_to_event answered");
    assert_eq!(first["event_id"], format!("${}", &space[1..]), "{first}");
    assert!(first["origin_server_ts"].as_u64().unwrap() > 0, "{first}");

    // Bob's client asks his server the same: it holds the space only from his join on, so it
    // fetches the earlier history from Alice's server (backfill) and answers the same event.
    let answer = expect_ok(
        b.get(
            &room_path(&space, "/timestamp_to_event?ts=0&dir=f").replace("/v3/", "/v1/"),
            bob.bearer(),
        )
        .await,
    );
    assert_eq!(answer["event_id"], first["event_id"], "{answer}");
    a.shutdown().await;
    b.shutdown().await;
}
