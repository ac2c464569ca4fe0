//! Simplified sliding sync (MSC4186) over HTTP: lists ordered by recency, incremental answers
//! per connection, `pos` expiry, several connections, required state with `$LAZY`, invites and
//! the extensions.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SLIDING: &str = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync";

async fn slide(ts: &TestServer, who: &Session, pos: Option<&str>, body: &Value) -> Resp {
    let path = match pos {
        Some(pos) => format!("{SLIDING}?pos={}&timeout=0", enc(pos)),
        None => SLIDING.to_owned(),
    };
    ts.post(&path, who.bearer(), body).await
}

fn list_request(conn_id: &str, limit: u64) -> Value {
    json!({
        "conn_id": conn_id,
        "lists": {
            "all": {
                "ranges": [[0, 9]],
                "timeline_limit": limit,
                "required_state": [["m.room.name", ""], ["m.room.member", "$LAZY"], ["m.room.member", "$ME"]],
            }
        }
    })
}

fn pos(answer: &Value) -> String {
    answer["pos"].as_str().expect("pos").to_owned()
}

/// Room IDs of an answer ordered by `bump_stamp`, newest first.
fn by_recency(answer: &Value) -> Vec<String> {
    let mut rooms: Vec<(u64, String)> = answer["rooms"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, room)| (room["bump_stamp"].as_u64().unwrap_or(0), id.clone()))
        .collect();
    rooms.sort_by_key(|r| std::cmp::Reverse(r.0));
    rooms.into_iter().map(|(_, id)| id).collect()
}

async fn shared_room(ts: &TestServer, alice: &Session, bob: &Session, name: &str) -> String {
    let room_id = create_room(ts, alice, json!({ "preset": "public_chat", "name": name })).await;
    expect_ok(
        ts.post(&room_path(&room_id, "/join"), bob.bearer(), &json!({}))
            .await,
    );
    room_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_ordered_by_recency_and_sent_incrementally() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let alpha = shared_room(&ts, &alice, &bob, "Alpha").await;
    let beta = shared_room(&ts, &alice, &bob, "Beta").await;
    send_text_id(&ts, &alice, &alpha, "a1", "hello alpha").await;
    send_text_id(&ts, &alice, &beta, "b1", "hello beta").await;

    let first = expect_ok(slide(&ts, &bob, None, &list_request("main", 1)).await);
    assert_eq!(first["lists"]["all"]["count"], 2);
    assert_eq!(by_recency(&first), [beta.clone(), alpha.clone()]);
    let room = &first["rooms"][&beta];
    assert_eq!(room["name"], "Beta");
    assert_eq!(room["initial"], true);
    assert_eq!(room["joined_count"], 2);
    assert_eq!(room["notification_count"], 1, "{room}");
    let timeline = room["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 1);
    assert_eq!(timeline[0]["content"]["body"], "hello beta");
    assert_eq!(room["limited"], true);
    // $LAZY: the sender of the timeline event; $ME: bob. Nobody else.
    let members: Vec<&str> = room["required_state"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.member")
        .map(|e| e["state_key"].as_str().unwrap())
        .collect();
    assert!(members.contains(&alice.user_id.as_str()) && members.contains(&bob.user_id.as_str()));
    assert_eq!(members.len(), 2, "{members:?}");
    // `prev_batch` continues with /messages.
    let prev_batch = room["prev_batch"].as_str().unwrap();
    let older = expect_ok(
        ts.get(
            &room_path(&beta, &format!("/messages?dir=b&limit=1&from={prev_batch}")),
            bob.bearer(),
        )
        .await,
    );
    assert_ne!(older["chunk"][0]["content"]["body"], "hello beta");

    // Nothing changed: an empty answer, with a new pos.
    let quiet = expect_ok(slide(&ts, &bob, Some(&pos(&first)), &list_request("main", 1)).await);
    assert_eq!(quiet["rooms"], json!({}), "{quiet}");

    // A message in Alpha: only Alpha comes, incrementally, now the most recent.
    send_text_id(&ts, &alice, &alpha, "a2", "alpha again").await;
    let update = expect_ok(slide(&ts, &bob, Some(&pos(&quiet)), &list_request("main", 1)).await);
    let rooms = update["rooms"].as_object().unwrap();
    assert_eq!(rooms.len(), 1, "{update}");
    let room = &update["rooms"][&alpha];
    assert_eq!(room["initial"], false);
    assert_eq!(room["timeline"][0]["content"]["body"], "alpha again");
    assert_eq!(room["num_live"], 1);
    assert!(room["bump_stamp"].as_u64() > first["rooms"][&beta]["bump_stamp"].as_u64());
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_expire_and_connections_are_independent() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let room = shared_room(&ts, &alice, &bob, "Gamma").await;

    let main = expect_ok(slide(&ts, &bob, None, &list_request("main", 1)).await);
    let other = expect_ok(slide(&ts, &bob, None, &list_request("notifications", 1)).await);
    send_text_id(&ts, &alice, &room, "g1", "news").await;

    // Both connections get the news, each once.
    let main2 = expect_ok(slide(&ts, &bob, Some(&pos(&main)), &list_request("main", 1)).await);
    assert!(main2["rooms"].get(&room).is_some());
    let other2 = expect_ok(
        slide(
            &ts,
            &bob,
            Some(&pos(&other)),
            &list_request("notifications", 1),
        )
        .await,
    );
    assert!(other2["rooms"].get(&room).is_some());
    // A retry with the previous pos (the answer was lost) gives the news again.
    let retried = expect_ok(slide(&ts, &bob, Some(&pos(&main)), &list_request("main", 1)).await);
    assert!(retried["rooms"].get(&room).is_some());

    // A pos of one connection means nothing to another; made-up ones neither.
    let resp = slide(
        &ts,
        &bob,
        Some(&pos(&main2)),
        &list_request("notifications", 1),
    )
    .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_UNKNOWN_POS");
    let resp = slide(&ts, &bob, Some("nonsense"), &list_request("main", 1)).await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_UNKNOWN_POS");
    // Positions from before a restart are unknown.
    let mut ts = ts;
    ts.restart().await;
    let resp = slide(&ts, &bob, Some(&pos(&main2)), &list_request("main", 1)).await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_UNKNOWN_POS");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invites_filters_subscriptions_and_extensions() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let joined = shared_room(&ts, &alice, &bob, "Joined").await;
    let invited = create_room(
        &ts,
        &alice,
        json!({ "name": "Invited", "invite": [bob.user_id] }),
    )
    .await;
    let encrypted = shared_room(&ts, &alice, &bob, "Encrypted").await;
    expect_ok(
        ts.put(
            &room_path(&encrypted, "/state/m.room.encryption"),
            alice.bearer(),
            &json!({ "algorithm": "m.megolm.v1.aes-sha2" }),
        )
        .await,
    );

    let request = json!({
        "conn_id": "filters",
        "lists": {
            "invites": { "ranges": [[0, 9]], "timeline_limit": 0, "filters": { "is_invite": true } },
            "encrypted": { "ranges": [[0, 9]], "timeline_limit": 1, "filters": { "is_encrypted": true } },
            "spaces": { "ranges": [[0, 9]], "timeline_limit": 1, "filters": { "room_types": ["m.space"] } },
        },
        "room_subscriptions": { &joined: { "timeline_limit": 5, "required_state": [["*", "*"]] } },
        "extensions": {
            "to_device": { "enabled": true },
            "e2ee": { "enabled": true },
            "account_data": { "enabled": true },
            "typing": { "enabled": true },
            "receipts": { "enabled": true },
        }
    });
    let first = expect_ok(slide(&ts, &bob, None, &request).await);
    assert_eq!(first["lists"]["invites"]["count"], 1);
    assert_eq!(first["lists"]["encrypted"]["count"], 1);
    assert_eq!(first["lists"]["spaces"]["count"], 0);
    let invite = &first["rooms"][&invited];
    let stripped: Vec<&str> = invite["invite_state"]
        .as_array()
        .expect("invite_state")
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        stripped.contains(&"m.room.create") && stripped.contains(&"m.room.name"),
        "{stripped:?}"
    );
    assert!(first["rooms"].get(&encrypted).is_some());
    // The subscription sends the whole state.
    let state_types: Vec<&str> = first["rooms"][&joined]["required_state"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(state_types.contains(&"m.room.create") && state_types.contains(&"m.room.power_levels"));
    let e2ee = &first["extensions"]["e2ee"];
    assert_eq!(e2ee["device_one_time_keys_count"]["signed_curve25519"], 0);
    assert!(
        first["extensions"]["account_data"]["global"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.push_rules")
    );

    // Typing, a to-device message and account data arrive on the next poll, which waits.
    let since = pos(&first);
    let poll_path = format!("{SLIDING}?pos={}&timeout=20000", enc(&since));
    let poll = ts.post(&poll_path, bob.bearer(), &request);
    let poke = async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        expect_ok(
            ts.put(
                "/_matrix/client/v3/sendToDevice/m.test/t1",
                alice.bearer(),
                &json!({ "messages": { &bob.user_id: { &bob.device_id: { "hi": 1 } } } }),
            )
            .await,
        );
    };
    let (polled, ()) = tokio::join!(poll, poke);
    let polled = expect_ok(polled);
    let to_device = &polled["extensions"]["to_device"];
    assert_eq!(to_device["events"][0]["content"]["hi"], 1, "{polled}");
    let to_device_since = to_device["next_batch"].as_str().unwrap().to_owned();

    expect_ok(
        ts.put(
            &room_path(&joined, &format!("/typing/{}", enc(&alice.user_id))),
            alice.bearer(),
            &json!({ "typing": true, "timeout": 30000 }),
        )
        .await,
    );
    let mut request = request;
    request["extensions"]["to_device"]["since"] = json!(to_device_since);
    let next = expect_ok(slide(&ts, &bob, Some(&pos(&polled)), &request).await);
    assert_eq!(
        next["extensions"]["typing"]["rooms"][&joined]["content"]["user_ids"],
        json!([alice.user_id]),
        "{next}"
    );
    assert_eq!(
        next["extensions"]["to_device"]["events"],
        json!([]),
        "acknowledged messages are gone"
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_invite_is_sent_whole() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let room = create_room(
        &ts,
        &alice,
        json!({ "name": "Later", "invite": [bob.user_id] }),
    )
    .await;
    let first = expect_ok(slide(&ts, &bob, None, &list_request("main", 1)).await);
    assert!(first["rooms"][&room]["invite_state"].is_array());
    expect_ok(
        ts.post(&room_path(&room, "/join"), bob.bearer(), &json!({}))
            .await,
    );
    let joined = expect_ok(slide(&ts, &bob, Some(&pos(&first)), &list_request("main", 1)).await);
    let room = &joined["rooms"][&room];
    assert_eq!(room["initial"], true, "{room}");
    assert!(room.get("invite_state").is_none());
    let types: Vec<&str> = room["required_state"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"m.room.name"), "{types:?}");
    ts.shutdown().await;
}

/// The list's rooms (their IDs, most recent first) and counts for three lists: everything,
/// invites only, and everything but invites.
async fn windows(ts: &TestServer, who: &Session) -> (Vec<String>, u64, Vec<String>, u64, u64) {
    let body = json!({
        "lists": {
            "all": { "ranges": [[0, 4]], "timeline_limit": 0 },
            "invites": { "ranges": [[0, 9]], "timeline_limit": 0, "filters": { "is_invite": true } },
            "joined": { "ranges": [[0, 0]], "timeline_limit": 0, "filters": { "is_invite": false } },
        }
    });
    let answer = expect_ok(slide(ts, who, None, &body).await);
    let count = |list: &str| answer["lists"][list]["count"].as_u64().unwrap();
    let all = by_recency(&answer);
    let invites: Vec<String> = all
        .iter()
        .filter(|id| answer["rooms"][id.as_str()].get("invite_state").is_some())
        .cloned()
        .collect();
    (
        all,
        count("all"),
        invites,
        count("invites"),
        count("joined"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_list_windows_and_counts_come_from_the_recency_index() {
    let mut ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let mut rooms = Vec::new();
    for i in 0..24 {
        rooms.push(shared_room(&ts, &alice, &bob, &format!("Room {i}")).await);
    }
    let invited = create_room(&ts, &alice, json!({ "preset": "private_chat" })).await;
    expect_ok(
        ts.post(
            &room_path(&invited, "/invite"),
            alice.bearer(),
            &json!({ "user_id": bob.user_id }),
        )
        .await,
    );
    // A message moves an old room to the top; a reaction-like or state event would not.
    send_text_id(&ts, &alice, &rooms[3], "t1", "up you go").await;
    expect_ok(
        ts.put(
            &room_path(&rooms[5], "/state/m.room.topic/"),
            alice.bearer(),
            &json!({ "topic": "state does not bump" }),
        )
        .await,
    );

    let expected_top = vec![
        rooms[3].clone(),
        invited.clone(),
        rooms[23].clone(),
        rooms[22].clone(),
        rooms[21].clone(),
    ];
    let (top, all, invites, invite_count, joined) = windows(&ts, &bob).await;
    assert_eq!(top, expected_top);
    assert_eq!((all, invite_count, joined), (25, 1, 24));
    assert_eq!(invites, std::slice::from_ref(&invited));

    // Leaving takes the room off the list and out of the counts.
    expect_ok(
        ts.post(&room_path(&rooms[23], "/leave"), bob.bearer(), &json!({}))
            .await,
    );
    let expected_top = vec![
        rooms[3].clone(),
        invited.clone(),
        rooms[22].clone(),
        rooms[21].clone(),
        rooms[20].clone(),
    ];
    let (top, all, _, invite_count, joined) = windows(&ts, &bob).await;
    assert_eq!(top, expected_top);
    assert_eq!((all, invite_count, joined), (24, 1, 23));

    // A database from before the index: the lists are rebuilt from memberships at start.
    let db_path = ts.config().database_path.clone();
    ts.stop().await;
    wipe_indexes(
        &db_path,
        &[
            "useridstamproomid_membership",
            "useridroomid_stamp",
            "useridmembership_roomcount",
        ],
        &[b"room_lists_built"],
    );
    ts.restart().await;
    let (top, all, _, invite_count, joined) = windows(&ts, &bob).await;
    assert_eq!(top, expected_top);
    assert_eq!((all, invite_count, joined), (24, 1, 23));
    ts.shutdown().await;
}

/// Members' indexes are written after the room is unlocked, several messages per batch when
/// senders crowd a room. Whatever the interleaving: every member's incremental /sync has every
/// message, a member who left mid-way sees the room under `leave` and off their list, and each
/// list holds each room once (a lost race would leave a stale entry behind).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crowded_room_indexes_stay_exact_under_concurrent_senders() {
    const SENDERS: usize = 6;
    const EACH: usize = 15;
    let ts = TestServer::start_open().await;
    // The first account is an administrator, invited to the admin room: not one of these.
    ts.register_open("admin", "admin-password").await;
    let mut users = Vec::new();
    for i in 0..SENDERS {
        users.push(
            ts.register_open(&format!("sender{i}"), "sender-password")
                .await,
        );
    }
    let quiet = create_room(&ts, &users[0], json!({ "preset": "public_chat" })).await;
    let busy = create_room(&ts, &users[0], json!({ "preset": "public_chat" })).await;
    for user in &users[1..] {
        for room in [&quiet, &busy] {
            expect_ok(
                ts.post(&room_path(room, "/join"), user.bearer(), &json!({}))
                    .await,
            );
        }
    }
    let filter = r#"{"room":{"timeline":{"limit":500}}}"#;
    let query = |since: &str| {
        format!(
            "/_matrix/client/v3/sync?timeout=0&since={since}&filter={}",
            enc(filter)
        )
    };
    let mut since = Vec::new();
    for user in &users {
        let body = expect_ok(
            ts.get("/_matrix/client/v3/sync?timeout=0", user.bearer())
                .await,
        );
        since.push(body["next_batch"].as_str().unwrap().to_owned());
    }

    // The last sender leaves after its third message, while the others keep sending.
    let leaver = SENDERS - 1;
    let sends = users.iter().enumerate().map(|(s, user)| {
        let (ts, busy) = (&ts, &busy);
        async move {
            let count = if s == leaver { 3 } else { EACH };
            for i in 0..count {
                send_text_id(ts, user, busy, &format!("c{s}-{i}"), &format!("m{s}-{i}")).await;
            }
            if s == leaver {
                expect_ok(
                    ts.post(&room_path(busy, "/leave"), user.bearer(), &json!({}))
                        .await,
                );
            }
        }
    });
    futures_util::future::join_all(sends).await;
    let expected: std::collections::BTreeSet<String> = (0..SENDERS)
        .flat_map(|s| (0..if s == leaver { 3 } else { EACH }).map(move |i| format!("m{s}-{i}")))
        .collect();

    for (s, user) in users.iter().enumerate() {
        let body = expect_ok(ts.get(&query(&since[s]), user.bearer()).await);
        if s == leaver {
            assert!(body["rooms"]["leave"].get(&busy).is_some(), "{body}");
            assert!(body["rooms"]["join"].get(&busy).is_none(), "{body}");
        } else {
            let timeline = &body["rooms"]["join"][&busy]["timeline"];
            assert_eq!(timeline["limited"], false);
            let seen: std::collections::BTreeSet<String> = timeline["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|e| e["content"]["body"].as_str().map(ToOwned::to_owned))
                .collect();
            assert_eq!(seen, expected, "sender{s}");
        }
        let (top, all, _, _, joined) = windows(&ts, user).await;
        if s == leaver {
            assert_eq!((top, all, joined), (vec![quiet.clone()], 1, 1));
        } else {
            assert_eq!(
                (top, all, joined),
                (vec![busy.clone(), quiet.clone()], 2, 2)
            );
        }
    }
}

/// Who is typing and who read what belong to members: an invited user's extensions carry none
/// of it for the room, until they join (their own account data for the room they do get).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_shows_no_typing_or_receipts() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let room = create_room(
        &ts,
        &alice,
        json!({ "name": "Private", "invite": [bob.user_id] }),
    )
    .await;
    let event = send_text_id(&ts, &alice, &room, "t1", "not for invitees").await;
    expect_ok(
        ts.post(
            &room_path(&room, &format!("/receipt/m.read/{}", enc(&event))),
            alice.bearer(),
            &json!({}),
        )
        .await,
    );
    expect_ok(
        ts.put(
            &room_path(&room, &format!("/typing/{}", enc(&alice.user_id))),
            alice.bearer(),
            &json!({ "typing": true, "timeout": 30000 }),
        )
        .await,
    );
    // The invitee's own data about the room is theirs to see.
    let tag = format!(
        "/_matrix/client/v3/user/{}/rooms/{}/tags/u.later",
        enc(&bob.user_id),
        enc(&room)
    );
    expect_ok(ts.put(&tag, bob.bearer(), &json!({})).await);
    let mut request = list_request("leak", 5);
    request["extensions"] = json!({
        "typing": { "enabled": true },
        "receipts": { "enabled": true },
        "account_data": { "enabled": true },
    });
    let first = expect_ok(slide(&ts, &bob, None, &request).await);
    let tags = &first["extensions"]["account_data"]["rooms"][&room][0];
    assert_eq!(tags["type"], "m.tag", "{first}");
    assert!(tags["content"]["tags"]["u.later"].is_object(), "{first}");
    assert!(first["rooms"][&room]["invite_state"].is_array(), "{first}");
    assert!(
        first["extensions"]["typing"]["rooms"].get(&room).is_none(),
        "{first}"
    );
    assert!(
        first["extensions"]["receipts"]["rooms"]
            .get(&room)
            .is_none(),
        "{first}"
    );

    // Once joined, both arrive.
    expect_ok(
        ts.post(&room_path(&room, "/join"), bob.bearer(), &json!({}))
            .await,
    );
    let joined = expect_ok(slide(&ts, &bob, Some(&pos(&first)), &request).await);
    assert_eq!(
        joined["extensions"]["typing"]["rooms"][&room]["content"]["user_ids"],
        json!([alice.user_id]),
        "{joined}"
    );
    assert!(
        joined["extensions"]["receipts"]["rooms"][&room]["content"][&event].is_object(),
        "{joined}"
    );
    ts.shutdown().await;
}
