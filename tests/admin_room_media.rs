//! The admin room's media commands for what Synapse's admin API also does:
//! `media quarantine-room` (protected media left alone) and `media delete-older-than
//! --remote-only` (only the cache of other servers' media), driven over the client API.

mod common;

use std::time::Duration;

use common::media::*;
use common::*;
use reqwest::StatusCode;
use serde_json::json;

const ADMIN: &str = "/_synapse/admin";

const BOT: &str = "@conclave:localhost";

/// Joins the admin room as the first (administrator) account; returns its ID.
async fn join_admin_room(ts: &TestServer, admin: &Session) -> String {
    let alias = expect_ok(
        ts.get(
            &format!(
                "/_matrix/client/v3/directory/room/{}",
                enc("#admins:localhost")
            ),
            None,
        )
        .await,
    );
    let room = alias["room_id"].as_str().unwrap().to_owned();
    expect_ok(
        ts.post(&room_path(&room, "/join"), admin.bearer(), &json!({}))
            .await,
    );
    room
}

/// Sends a command to the admin room and returns the text of the bot's answer to it.
async fn command(ts: &TestServer, admin: &Session, room: &str, text: &str, txn: &str) -> String {
    let event_id = send_text_id(ts, admin, room, txn, text).await;
    for _ in 0..1000 {
        let history = expect_ok(
            ts.get(&room_path(room, "/messages?dir=b&limit=30"), admin.bearer())
                .await,
        );
        let reply = history["chunk"].as_array().unwrap().iter().find(|event| {
            event["sender"] == BOT
                && event["content"]["m.relates_to"]["m.in_reply_to"]["event_id"]
                    == event_id.as_str()
        });
        if let Some(reply) = reply {
            return reply["content"]["body"].as_str().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no answer to {text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_room_quarantines_a_room_and_purges_remote_media() {
    let ts = TestServer::start_open().await;
    let admin = ts.register_open("admin", "admin-password").await;
    let alice = ts.register_open("alice", "alice-password").await;
    let admin_room = join_admin_room(&ts, &admin).await;
    let shared = upload(&ts, &alice, "shared in the room").await;
    let protected = upload(&ts, &alice, "protected and shared").await;
    let room = create_room(&ts, &alice, json!({ "room_alias_name": "shares" })).await;
    for (txn, id) in [("s1", &shared), ("s2", &protected)] {
        expect_ok(
            ts.put(
                &room_path(&room, &format!("/send/m.room.message/{txn}")),
                alice.bearer(),
                &json!({ "msgtype": "m.file", "body": "f", "url": format!("mxc://localhost/{id}") }),
            )
            .await,
        );
    }
    post_ok(&ts, &admin, &format!("/v1/media/protect/{protected}")).await;

    let answer = command(
        &ts,
        &admin,
        &admin_room,
        "!admin media quarantine-room #shares:localhost",
        "c1",
    )
    .await;
    assert!(
        answer.contains("Quarantined 1 upload(s) (1 protected upload(s) left alone)"),
        "{answer}"
    );
    assert!(answer.contains(&room), "{answer}");
    assert_eq!(download(&ts, &alice, &shared).await, StatusCode::NOT_FOUND);
    assert_eq!(download(&ts, &alice, &protected).await, StatusCode::OK);
    let listed = expect_ok(
        ts.get(
            &format!("{ADMIN}/v1/users/@alice:localhost/media?order_by=quarantined_by&dir=b"),
            admin.bearer(),
        )
        .await,
    );
    assert_eq!(
        listed["media"][0]["quarantined_by"], "@admin:localhost",
        "{listed}"
    );
    let answer = command(
        &ts,
        &admin,
        &admin_room,
        "!admin media quarantine-room #nowhere:localhost",
        "c2",
    )
    .await;
    assert!(answer.contains("There is no room"), "{answer}");

    // --remote-only deletes cached remote media and leaves this server's uploads.
    cache_remote(&ts, "remote.example", "Cached", "cached remote bytes").await;
    let answer = command(
        &ts,
        &admin,
        &admin_room,
        "!admin media delete-older-than --remote-only 2999-01-01",
        "c3",
    )
    .await;
    assert!(
        answer.contains("Deleted 1 cached remote upload(s)"),
        "{answer}"
    );
    assert!(!stored(&ts, "remote.example", "Cached"));
    assert_eq!(download(&ts, &alice, &protected).await, StatusCode::OK);
    ts.shutdown().await;
}
