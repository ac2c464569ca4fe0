//! Rooms shared with a real Synapse (PyPI `matrix-synapse`, started by
//! `tests/federation/synapse-peer.sh`), in both directions: a Conclave user joins a Synapse
//! room by alias and a Synapse user joins a Conclave room; history from before each join
//! backfilled; messages both ways; typing, read receipts and presence both ways; invites both ways; a
//! rotation of Conclave's signing key; a leave and a kick — each seen by the other side's client API.

mod common;

use common::federation::*;
use common::*;
use serde_json::{Value, json};

const SYNAPSE_IP: &str = "127.0.0.64";
const SYNAPSE: &str = "127.0.0.64:8448";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conclave_and_synapse_share_rooms_both_ways() {
    use reqwest::Method;
    let (ts, _pki) = conclave_peer(63).await;
    let alice = ts.register_open("alice", "alice-password").await;
    let synapse = SynapsePeer::start(SYNAPSE_IP).await;
    let token = synapse.register(SYNAPSE_IP, "sam", "sam-password").await;
    let sam = SynapseUser::new(SYNAPSE_IP, token, format!("@sam:{SYNAPSE}"));

    // 1. Alice (Conclave) joins Sam's Synapse room by its alias; messages both ways.
    let created = sam
        .ok(
            Method::POST,
            "/_matrix/client/v3/createRoom",
            Some(json!({ "preset": "public_chat", "room_alias_name": "plaza", "name": "Plaza" })),
        )
        .await;
    let plaza = created["room_id"].as_str().unwrap().to_owned();
    sam.ok(
        Method::PUT,
        &format!(
            "/_matrix/client/v3/rooms/{}/send/m.room.message/s1",
            enc(&plaza)
        ),
        Some(json!({ "msgtype": "m.text", "body": "welcome to the plaza" })),
    )
    .await;
    let joined = ts
        .post(
            &format!(
                "/_matrix/client/v3/join/{}",
                enc(&format!("#plaza:{SYNAPSE}"))
            ),
            alice.bearer(),
            &json!({}),
        )
        .await;
    assert_eq!(joined.0, 200, "{}\n{}", joined.1, synapse.log_tail());
    assert_eq!(joined.1["room_id"], plaza);
    let name = expect_ok(
        ts.get(&room_path(&plaza, "/state/m.room.name/"), alice.bearer())
            .await,
    );
    assert_eq!(name["name"], "Plaza");
    // History from before her join comes from Synapse when her client pages back.
    eventually(
        "the plaza's history at Conclave (backfill from Synapse)",
        || room_messages(&ts, &alice, &plaza),
        |m| has_body(m, "welcome to the plaza"),
    )
    .await;
    send_text_id(&ts, &alice, &plaza, "c1", "hello from conclave").await;
    eventually(
        "alice's message at Synapse",
        || sam.room_messages(&plaza),
        |m| has_body(m, "hello from conclave"),
    )
    .await;
    sam.ok(
        Method::PUT,
        &format!(
            "/_matrix/client/v3/rooms/{}/send/m.room.message/s2",
            enc(&plaza)
        ),
        Some(json!({ "msgtype": "m.text", "body": "hello from synapse" })),
    )
    .await;
    eventually(
        "sam's message at Conclave",
        || room_messages(&ts, &alice, &plaza),
        |m| has_body(m, "hello from synapse"),
    )
    .await;

    // 2. Sam (Synapse) joins Alice's Conclave room by its alias; messages both ways.
    let lounge = create_room(
        &ts,
        &alice,
        json!({ "preset": "public_chat", "room_alias_name": "lounge", "name": "Lounge" }),
    )
    .await;
    send_text_id(&ts, &alice, &lounge, "c0", "lounge history").await;
    let alias = "#lounge:127.0.0.63:8448";
    let (status, answer) = sam
        .call(
            Method::POST,
            &format!("/_matrix/client/v3/join/{}", enc(alias)),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{answer}\n{}", synapse.log_tail());
    assert_eq!(answer["room_id"], lounge);
    eventually(
        "the lounge's history at Synapse (backfill from Conclave)",
        || sam.room_messages(&lounge),
        |m| has_body(m, "lounge history"),
    )
    .await;
    sam.ok(
        Method::PUT,
        &format!(
            "/_matrix/client/v3/rooms/{}/send/m.room.message/s3",
            enc(&lounge)
        ),
        Some(json!({ "msgtype": "m.text", "body": "sam in the lounge" })),
    )
    .await;
    eventually(
        "sam's message in alice's room",
        || room_messages(&ts, &alice, &lounge),
        |m| has_body(m, "sam in the lounge"),
    )
    .await;
    let answer = send_text_id(&ts, &alice, &lounge, "c2", "alice answers").await;
    eventually(
        "alice's answer at Synapse",
        || sam.room_messages(&lounge),
        |m| has_body(m, "alice answers"),
    )
    .await;

    // Typing and read receipts, both ways.
    let ephemeral = |sync: &Value, kind: &str| -> Value {
        sync["rooms"]["join"][&lounge]["ephemeral"]["events"]
            .as_array()
            .and_then(|events| events.iter().find(|e| e["type"] == kind).cloned())
            .map(|e| e["content"].clone())
            .unwrap_or(Value::Null)
    };
    let since = sam.sync().await["next_batch"].as_str().unwrap().to_owned();
    expect_ok(
        ts.put(
            &room_path(&lounge, &format!("/typing/{}", enc(&alice.user_id))),
            alice.bearer(),
            &json!({ "typing": true, "timeout": 30000 }),
        )
        .await,
    );
    sam.sync_until("alice typing at Synapse", &since, |s| {
        ephemeral(s, "m.typing")["user_ids"] == json!([alice.user_id])
    })
    .await;
    sam.ok(
        Method::PUT,
        &format!(
            "/_matrix/client/v3/rooms/{}/typing/{}",
            enc(&lounge),
            enc(&sam.user_id)
        ),
        Some(json!({ "typing": true, "timeout": 30000 })),
    )
    .await;
    eventually(
        "sam typing at Conclave",
        || async { ephemeral(&sync_now(&ts, &alice).await, "m.typing") },
        |c| {
            c["user_ids"]
                .as_array()
                .is_some_and(|u| u.contains(&json!(sam.user_id)))
        },
    )
    .await;
    sam.ok(
        Method::POST,
        &format!(
            "/_matrix/client/v3/rooms/{}/receipt/m.read/{}",
            enc(&lounge),
            enc(&answer)
        ),
        Some(json!({})),
    )
    .await;
    eventually(
        "sam's receipt at Conclave",
        || async { ephemeral(&sync_now(&ts, &alice).await, "m.receipt") },
        |c| c[&answer]["m.read"].get(&sam.user_id).is_some(),
    )
    .await;
    let sams_message = room_messages(&ts, &alice, &lounge).await["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["content"]["body"] == "sam in the lounge")
        .unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let since = sam.sync().await["next_batch"].as_str().unwrap().to_owned();
    expect_ok(
        ts.post(
            &room_path(&lounge, &format!("/receipt/m.read/{}", enc(&sams_message))),
            alice.bearer(),
            &json!({}),
        )
        .await,
    );
    sam.sync_until("alice's receipt at Synapse", &since, |s| {
        ephemeral(s, "m.receipt")[&sams_message]["m.read"]
            .get(&alice.user_id)
            .is_some()
    })
    .await;

    // Presence, both ways.
    let since = sam.sync().await["next_batch"].as_str().unwrap().to_owned();
    expect_ok(
        ts.put(
            &format!("/_matrix/client/v3/presence/{}/status", enc(&alice.user_id)),
            alice.bearer(),
            &json!({ "presence": "online", "status_msg": "at the plaza" }),
        )
        .await,
    );
    sam.sync_until("alice's presence at Synapse", &since, |s| {
        s["presence"]["events"].as_array().is_some_and(|events| {
            events.iter().any(|e| {
                e["sender"] == alice.user_id.as_str()
                    && e["content"]["status_msg"] == "at the plaza"
            })
        })
    })
    .await;
    sam.ok(
        Method::PUT,
        &format!("/_matrix/client/v3/presence/{}/status", enc(&sam.user_id)),
        Some(json!({ "presence": "online", "status_msg": "in the lounge" })),
    )
    .await;
    eventually(
        "sam's presence at Conclave",
        || sync_now(&ts, &alice),
        |s| {
            s["presence"]["events"].as_array().is_some_and(|events| {
                events.iter().any(|e| {
                    e["sender"] == sam.user_id.as_str()
                        && e["content"]["status_msg"] == "in the lounge"
                })
            })
        },
    )
    .await;

    // 3. Invites both ways: Alice invites Sam to a private room; Sam invites Alice.
    let since = sam.sync().await["next_batch"].as_str().unwrap().to_owned();
    let private = create_room(
        &ts,
        &alice,
        json!({ "preset": "private_chat", "name": "Quiet" }),
    )
    .await;
    expect_ok(
        ts.post(
            &room_path(&private, "/invite"),
            alice.bearer(),
            &json!({ "user_id": sam.user_id }),
        )
        .await,
    );
    sam.sync_until("alice's invite in sam's sync", &since, |s| {
        s["rooms"]["invite"].get(&private).is_some()
    })
    .await;
    sam.ok(
        Method::POST,
        &format!("/_matrix/client/v3/rooms/{}/join", enc(&private)),
        Some(json!({})),
    )
    .await;
    eventually(
        "sam joined alice's private room",
        || room_messages(&ts, &alice, &private),
        |m| membership_of(m, &sam.user_id).as_deref() == Some("join"),
    )
    .await;

    let sams_room = sam
        .ok(
            Method::POST,
            "/_matrix/client/v3/createRoom",
            Some(json!({ "preset": "private_chat", "name": "Sam's office" })),
        )
        .await["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    sam.ok(
        Method::POST,
        &format!("/_matrix/client/v3/rooms/{}/invite", enc(&sams_room)),
        Some(json!({ "user_id": alice.user_id })),
    )
    .await;
    let invited = eventually(
        "sam's invite in alice's sync",
        || async {
            ts.get("/_matrix/client/v3/sync?timeout=0", alice.bearer())
                .await
                .1
        },
        |s| s["rooms"]["invite"].get(&sams_room).is_some(),
    )
    .await;
    let invite_state = &invited["rooms"]["invite"][&sams_room]["invite_state"]["events"];
    assert!(
        invite_state
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Sam's office"),
        "{invite_state:#}"
    );
    let joined = ts
        .post(
            &format!("/_matrix/client/v3/join/{}", enc(&sams_room)),
            alice.bearer(),
            &json!({}),
        )
        .await;
    assert_eq!(joined.0, 200, "{}\n{}", joined.1, synapse.log_tail());
    send_text_id(&ts, &alice, &sams_room, "c3", "thanks sam").await;
    eventually(
        "alice's message in sam's office",
        || sam.room_messages(&sams_room),
        |m| has_body(m, "thanks sam"),
    )
    .await;

    // 4. Conclave's signing key is replaced: Synapse fetches the new key when Alice's next
    // event names it, and accepts the event.
    let (code, out, err) = console(
        &ts.config().admin_socket_path(),
        &["federation", "rotate-signing-key"],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    send_text_id(&ts, &alice, &lounge, "c4", "signed with the new key").await;
    eventually(
        "a message signed with the new key at Synapse",
        || sam.room_messages(&lounge),
        |m| has_body(m, "signed with the new key"),
    )
    .await;

    // 5. Sam leaves the lounge; Alice kicks Sam from the quiet room.
    sam.ok(
        Method::POST,
        &format!("/_matrix/client/v3/rooms/{}/leave", enc(&lounge)),
        Some(json!({})),
    )
    .await;
    eventually(
        "sam's leave at Conclave",
        || room_messages(&ts, &alice, &lounge),
        |m| membership_of(m, &sam.user_id).as_deref() == Some("leave"),
    )
    .await;
    expect_ok(
        ts.post(
            &room_path(&private, "/kick"),
            alice.bearer(),
            &json!({ "user_id": sam.user_id, "reason": "meeting over" }),
        )
        .await,
    );
    eventually(
        "the kick at Synapse",
        || sam.room_messages(&private),
        |m| membership_of(m, &sam.user_id).as_deref() == Some("leave"),
    )
    .await;

    synapse.stop().await;
    ts.shutdown().await;
}
