//! The partner policy and room server ACLs, with three Conclave servers sharing a room:
//! a server denied by IT is cut off at once (its requests refused before any work, nothing
//! sent to it, no invite to its users, no join, key query or media download from it) and
//! back once undenied; an allowlist admits only the servers on it; the policy survives a
//! restart and every change is in the audit log.
//! A room's `m.room.server_acl` refuses the banned server's events and requests.

mod common;

use common::federation::*;
use common::*;
use reqwest::StatusCode;
use ruma::OwnedServerName;
use serde_json::json;

const A: &str = "127.0.0.89:8448";
const C: &str = "127.0.0.91:8448";

/// A signed federation request from `from` to `to` (a profile query): Ok, or the error as
/// `to` answered it.
async fn ask(
    from: &TestServer,
    to: &str,
    user: &str,
) -> conclave::error::Result<serde_json::Value> {
    let services = from.server().services();
    let to: OwnedServerName = to.try_into().unwrap();
    services
        .federation
        .get_signed(
            &to,
            &format!("/_matrix/federation/v1/query/profile?user_id={}", enc(user)),
            services.server_name(),
            &services.server_keys.key_pair(),
        )
        .await
}

async fn admin(ts: &TestServer, words: &[&str]) -> String {
    let (code, out, err) = console(&ts.config().admin_socket_path(), words).await;
    assert_eq!(code, 0, "{words:?}: {out}{err}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_partner_policy_cuts_off_and_readmits_servers() {
    let (mut a, _pki_a) = conclave_peer(89).await;
    let (b, _pki_b) = conclave_peer(90).await;
    let (c, _pki_c) = conclave_peer(91).await;
    let alice = a.register_open("alice", "alice-password").await;
    let bob = b.register_open("bob", "bob-password").await;
    let carol = c.register_open("carol", "carol-password").await;
    let room = create_room(&a, &alice, json!({ "preset": "public_chat" })).await;
    let join_path = format!("/_matrix/client/v3/join/{}?via={}", enc(&room), enc(A));
    expect_ok(b.post(&join_path, bob.bearer(), &json!({})).await);
    expect_ok(c.post(&join_path, carol.bearer(), &json!({})).await);
    ask(&c, A, &alice.user_id)
        .await
        .expect("allowed before the policy");

    // IT denies C: its requests are refused before any work, with the spec's error.
    let out = admin(&a, &["federation", "deny", C]).await;
    assert!(out.contains("denied now"), "{out}");
    let refused = ask(&c, A, &alice.user_id).await.unwrap_err();
    assert_eq!(refused.errcode(), "M_FORBIDDEN", "{refused:?}");
    assert!(refused.message().contains("not allowed"), "{refused:?}");
    // Nothing is sent to C: Alice's message reaches B, and nothing is queued for C.
    send_text_id(&a, &alice, &room, "m1", "while c is denied").await;
    eventually(
        "alice's message at bob's server",
        || room_messages(&b, &bob, &room),
        |m| has_body(m, "while c is denied"),
    )
    .await;
    let c_name: OwnedServerName = C.try_into().unwrap();
    assert_eq!(a.server().services().sending.queued(&c_name).unwrap(), 0);
    // No invite goes to C's users.
    let invite = a
        .post(
            &room_path(&room, "/invite"),
            alice.bearer(),
            &json!({ "user_id": format!("@dave:{C}") }),
        )
        .await;
    assert_errcode(&invite, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert!(
        invite.1["error"].as_str().unwrap().contains("not allowed"),
        "{}",
        invite.1
    );
    // Nothing else of C's gets through either: a join, a key query, a media download.
    let other_room = create_room(&a, &alice, json!({ "preset": "public_chat" })).await;
    let join = c
        .post(
            &format!(
                "/_matrix/client/v3/join/{}?via={}",
                enc(&other_room),
                enc(A)
            ),
            carol.bearer(),
            &json!({}),
        )
        .await;
    assert_errcode(&join, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let keys = expect_ok(
        c.post(
            "/_matrix/client/v3/keys/query",
            carol.bearer(),
            &json!({ "device_keys": { alice.user_id.as_str(): [] } }),
        )
        .await,
    );
    assert!(keys["failures"].get(A).is_some(), "{keys}");
    let mxc = expect_ok(
        a.request_raw(
            reqwest::Method::POST,
            "/_matrix/media/v3/upload?filename=memo.txt",
            alice.bearer(),
            "text/plain",
            b"for partners only".to_vec(),
        )
        .await,
    )["content_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let media = c
        .get(
            &format!(
                "/_matrix/client/v1/media/download/{}",
                mxc.strip_prefix("mxc://").unwrap()
            ),
            carol.bearer(),
        )
        .await;
    assert_eq!(media.0, StatusCode::FORBIDDEN, "{}", media.1);

    // Carol's message reaches Bob's server, not Alice's.
    send_text_id(&c, &carol, &room, "c1", "from the denied server").await;
    eventually(
        "carol's message at bob's server",
        || room_messages(&b, &bob, &room),
        |m| has_body(m, "from the denied server"),
    )
    .await;
    let messages = room_messages(&a, &alice, &room).await;
    assert!(!has_body(&messages, "from the denied server"), "{messages}");

    // The policy is listed, kept across a restart, and every change audited.
    let out = admin(&a, &["federation", "policy"]).await;
    assert!(out.contains(C) && out.contains("admin room"), "{out}");
    a.restart().await;
    assert!(
        ask(&c, A, &alice.user_id).await.is_err(),
        "still denied after a restart"
    );
    let out = admin(&a, &["audit", "list"]).await;
    assert!(out.contains("federation deny"), "{out}");

    // Undenied: C is back at once, both ways.
    let out = admin(&a, &["federation", "undeny", C]).await;
    assert!(out.contains("no longer denied"), "{out}");
    ask(&c, A, &alice.user_id).await.expect("readmitted");
    send_text_id(&a, &alice, &room, "m2", "welcome back").await;
    eventually(
        "alice's message at carol's server",
        || room_messages(&c, &carol, &room),
        |m| has_body(m, "welcome back"),
    )
    .await;
    // What C queued meanwhile comes in once Alice's server has contacted it again.
    eventually(
        "carol's queued message at alice's server",
        || room_messages(&a, &alice, &room),
        |m| has_body(m, "from the denied server"),
    )
    .await;

    // An allowlist admits only the servers on it (and the server itself).
    admin(&a, &["federation", "allow", "127.0.0.90:*"]).await;
    ask(&b, A, &alice.user_id)
        .await
        .expect("B is on the allowlist");
    let refused = ask(&c, A, &alice.user_id).await.unwrap_err();
    assert_eq!(refused.errcode(), "M_FORBIDDEN");
    let out = admin(&a, &["federation", "unallow", "127.0.0.90:*"]).await;
    assert!(out.contains("no longer allowed"), "{out}");
    ask(&c, A, &alice.user_id)
        .await
        .expect("no allowlist: any server");

    a.shutdown().await;
    b.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_server_acl_refuses_the_banned_servers_events_and_requests() {
    let (a, _pki_a) = conclave_peer(92).await;
    let (c, _pki_c) = conclave_peer(93).await;
    let alice = a.register_open("alice", "alice-password").await;
    let carol = c.register_open("carol", "carol-password").await;
    let a_name = a.config().server_name.to_string();
    let c_name: OwnedServerName = c.config().server_name.clone();
    let room = create_room(&a, &alice, json!({ "preset": "public_chat" })).await;
    let join_path = format!(
        "/_matrix/client/v3/join/{}?via={}",
        enc(&room),
        enc(&a_name)
    );
    expect_ok(c.post(&join_path, carol.bearer(), &json!({})).await);
    send_text_id(&c, &carol, &room, "c1", "before the acl").await;
    eventually(
        "carol's first message at alice's server",
        || room_messages(&a, &alice, &room),
        |m| has_body(m, "before the acl"),
    )
    .await;

    // The ACL names servers without their port.
    expect_ok(
        a.put(
            &room_path(&room, "/state/m.room.server_acl/"),
            alice.bearer(),
            &json!({ "allow": ["*"], "deny": [c_name.host()], "allow_ip_literals": true }),
        )
        .await,
    );
    eventually(
        "the acl at carol's server",
        || async {
            c.get(
                &room_path(&room, "/state/m.room.server_acl/"),
                carol.bearer(),
            )
            .await
            .1
        },
        |acl| acl["deny"].is_array(),
    )
    .await;
    send_text_id(&c, &carol, &room, "c2", "after the acl").await;
    // Alice's server answers the transaction with an error for the event.
    let refusal = eventually(
        "the refusal of carol's event",
        || async {
            let results: Vec<String> = a
                .server()
                .services()
                .inbound
                .recent(20)
                .into_iter()
                .filter(|txn| txn.origin == c_name)
                .flat_map(|txn| txn.results.into_values())
                .filter_map(|result| result.err())
                .collect();
            json!(results)
        },
        |errors| !errors.as_array().unwrap().is_empty(),
    )
    .await;
    assert!(refusal.to_string().contains("server ACL"), "{refusal}");
    let messages = room_messages(&a, &alice, &room).await;
    assert!(!has_body(&messages, "after the acl"), "{messages}");
    // Requests about the room are refused too.
    let services = c.server().services();
    let a_server: OwnedServerName = a_name.as_str().try_into().unwrap();
    let refused = services
        .federation
        .get_signed(
            &a_server,
            &format!(
                "/_matrix/federation/v1/state_ids/{}?event_id=%24unknown",
                enc(&room)
            ),
            services.server_name(),
            &services.server_keys.key_pair(),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.errcode(), "M_FORBIDDEN", "{refused:?}");
    a.shutdown().await;
    c.shutdown().await;
}
