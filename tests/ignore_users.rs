//! Ignoring users (`m.ignored_user_list`): the ignored user's messages are not sent to the
//! ignoring user in `/sync`, sliding sync or `/messages`, their state events still are (the
//! room and its members look the same to everyone), and their invites are not shown; un-ignoring takes
//! effect at the next sync. Nor do the ignored user's messages count as unread.

mod common;

use common::*;
use serde_json::{Value, json};

const SLIDING: &str = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync";

fn timeline_bodies(sync: &Value, room: &str) -> Vec<(String, String)> {
    sync["rooms"]["join"][room]["timeline"]["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["sender"].as_str().unwrap_or_default().to_owned(),
                e["content"]["body"]
                    .as_str()
                    .or(e["content"]["displayname"].as_str())
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

async fn ignore(ts: &TestServer, who: &Session, users: &[&str]) {
    let list: serde_json::Map<String, Value> =
        users.iter().map(|u| ((*u).to_owned(), json!({}))).collect();
    expect_ok(
        ts.put(
            &format!(
                "/_matrix/client/v3/user/{}/account_data/m.ignored_user_list",
                enc(&who.user_id)
            ),
            who.bearer(),
            &json!({ "ignored_users": list }),
        )
        .await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ignored_users_messages_and_invites_are_not_shown() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let carol = ts.register_open("carol", "carol-password").await;
    let room = create_room(&ts, &carol, json!({ "preset": "public_chat" })).await;
    for who in [&alice, &bob] {
        expect_ok(
            ts.post(&room_path(&room, "/join"), who.bearer(), &json!({}))
                .await,
        );
    }
    ignore(&ts, &alice, &[&bob.user_id]).await;
    send_text(&ts, &bob, &room, "b1", "from bob").await;
    expect_ok(
        ts.put(
            &room_path(
                &room,
                &format!("/state/m.room.member/{}", enc(&bob.user_id)),
            ),
            bob.bearer(),
            &json!({ "membership": "join", "displayname": "Named by bob" }),
        )
        .await,
    );
    send_text(&ts, &carol, &room, "c1", "from carol").await;
    let from_bob = create_room(&ts, &bob, json!({ "invite": [alice.user_id] })).await;
    let from_carol = create_room(&ts, &carol, json!({ "invite": [alice.user_id] })).await;

    // /sync: Carol's message and Bob's state event, not Bob's message nor his invite.
    let sync = expect_ok(ts.get("/_matrix/client/v3/sync", alice.bearer()).await);
    let seen = timeline_bodies(&sync, &room);
    assert!(
        seen.contains(&(carol.user_id.clone(), "from carol".into())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(bob.user_id.clone(), "Named by bob".into())),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|(_, body)| body == "from bob"), "{seen:?}");
    let invites = &sync["rooms"]["invite"];
    assert!(invites.get(&from_carol).is_some(), "{invites}");
    assert!(invites.get(&from_bob).is_none(), "{invites}");
    let since = sync["next_batch"].as_str().unwrap().to_owned();

    // /messages: the same.
    let history = expect_ok(
        ts.get(
            &room_path(&room, "/messages?dir=b&limit=50"),
            alice.bearer(),
        )
        .await,
    )
    .to_string();
    assert!(history.contains("from carol") && history.contains("Named by bob"));
    assert!(!history.contains("from bob"), "{history}");
    // Others still see Bob's message.
    let carol_history = expect_ok(
        ts.get(
            &room_path(&room, "/messages?dir=b&limit=50"),
            carol.bearer(),
        )
        .await,
    )
    .to_string();
    assert!(carol_history.contains("from bob"));

    // Sliding sync: Bob's invite is not listed, and the list's count leaves it out.
    let slide = expect_ok(
        ts.post(
            SLIDING,
            alice.bearer(),
            &json!({ "lists": { "all": { "ranges": [[0, 20]], "timeline_limit": 10 } } }),
        )
        .await,
    );
    let rooms = slide["rooms"].as_object().unwrap();
    assert!(
        rooms.contains_key(&from_carol) && rooms.contains_key(&room),
        "{slide}"
    );
    assert!(!rooms.contains_key(&from_bob), "{slide}");
    assert_eq!(slide["lists"]["all"]["count"], rooms.len(), "{slide}");
    // Bob's message does not count as unread for Alice: only Carol's does.
    assert_eq!(rooms[&room]["notification_count"], 1, "{slide}");
    let text = rooms[&room].to_string();
    assert!(
        text.contains("from carol") && !text.contains("from bob"),
        "{text}"
    );

    // Un-ignored: Bob's next message and his invite come with the next sync.
    ignore(&ts, &alice, &[]).await;
    send_text(&ts, &bob, &room, "b2", "bob again").await;
    let sync = expect_ok(
        ts.get(
            &format!("/_matrix/client/v3/sync?since={}&timeout=0", enc(&since)),
            alice.bearer(),
        )
        .await,
    );
    let seen = timeline_bodies(&sync, &room);
    assert!(
        seen.contains(&(bob.user_id.clone(), "bob again".into())),
        "{seen:?}"
    );
    let initial = expect_ok(ts.get("/_matrix/client/v3/sync", alice.bearer()).await);
    assert!(
        initial["rooms"]["invite"].get(&from_bob).is_some(),
        "{initial}"
    );
    ts.shutdown().await;
}
