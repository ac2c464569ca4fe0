//! The admin room's media commands for what Synapse's admin API also does:
//! `media quarantine-room` (protected media left alone) and `media delete-older-than
//! --remote-only` (only the cache of other servers' media), driven over the client API.

mod common;

use common::media::*;
use common::*;
use reqwest::StatusCode;
use serde_json::json;

const ADMIN: &str = "/_synapse/admin";

/// Joins the admin room as the first (administrator) account; returns its ID.
async fn join_admin_room(ts: &TestServer, admin: &Session) -> String {
    let room = admin::admin_room(ts).await;
    expect_ok(
        ts.post(&room_path(&room, "/join"), admin.bearer(), &json!({}))
            .await,
    );
    room
}

/// The text of the bot's answer to a command.
async fn command(ts: &TestServer, admin: &Session, room: &str, text: &str) -> String {
    admin::body(&admin::command(ts, admin, room, text).await).to_owned()
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
