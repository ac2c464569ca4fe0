//! Membership beyond invite/join: knocking, restricted joins, room upgrades, the space
//! hierarchy and room summaries.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A fresh server with three users: alice, bob and carol.
async fn setup() -> (TestServer, Session, Session, Session) {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let carol = ts.register_open("carol", "carol-password").await;
    (ts, alice, bob, carol)
}

fn v1_room_path(room_id: &str, rest: &str) -> String {
    format!("/_matrix/client/v1/rooms/{}{rest}", enc(room_id))
}

/// `initial_state` setting the join rules to `content`.
fn join_rules(content: Value) -> Value {
    json!([{ "type": "m.room.join_rules", "state_key": "", "content": content }])
}

/// `allow` conditions admitting the members of `room_id`.
fn allow(room_id: &str) -> Value {
    json!([{ "type": "m.room_membership", "room_id": room_id }])
}

async fn join(ts: &TestServer, who: &Session, room: &str) -> Resp {
    let path = format!("/_matrix/client/v3/join/{}", enc(room));
    ts.post(&path, who.bearer(), &json!({})).await
}

async fn knock(ts: &TestServer, who: &Session, room: &str, reason: &str) -> Resp {
    let path = format!("/_matrix/client/v3/knock/{}", enc(room));
    ts.post(&path, who.bearer(), &json!({ "reason": reason }))
        .await
}

async fn invite(ts: &TestServer, who: &Session, room_id: &str, user_id: &str) {
    let body = json!({ "user_id": user_id });
    expect_ok(
        ts.post(&room_path(room_id, "/invite"), who.bearer(), &body)
            .await,
    );
}

#[track_caller]
fn assert_forbidden(resp: &Resp) {
    assert_errcode(resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

#[track_caller]
fn assert_not_found(resp: &Resp) {
    assert_errcode(resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}

/// The member event content of `user_id` in the room, as seen by `who`.
async fn member(ts: &TestServer, who: &Session, room_id: &str, user_id: &str) -> Value {
    let members = expect_ok(ts.get(&room_path(room_id, "/members"), who.bearer()).await);
    let chunk = members["chunk"].as_array();
    let chunk = chunk.unwrap_or_else(|| panic!("chunk: {members}"));
    let event = chunk.iter().find(|e| e["state_key"] == user_id);
    let event = event.unwrap_or_else(|| panic!("no member event for {user_id}: {members}"));
    event["content"].clone()
}

async fn state(ts: &TestServer, who: &Session, room_id: &str, kind: &str) -> Value {
    let path = room_path(room_id, &format!("/state/{kind}/"));
    expect_ok(ts.get(&path, who.bearer()).await)
}

async fn send_text(ts: &TestServer, who: &Session, room_id: &str, txn: &str) -> Resp {
    let path = room_path(room_id, &format!("/send/m.room.message/{txn}"));
    let body = json!({ "msgtype": "m.text", "body": txn });
    ts.put(&path, who.bearer(), &body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knock_then_get_invited_and_join() {
    let (ts, alice, bob, _) = setup().await;
    let rules = join_rules(json!({ "join_rule": "knock" }));
    let body = json!({ "preset": "private_chat", "room_alias_name": "knockknock",
                       "initial_state": rules });
    let room_id = create_room(&ts, &alice, body).await;

    // Knocking works with an alias as well as a room ID.
    let knocked = expect_ok(knock(&ts, &bob, "#knockknock:localhost", "let me in").await);
    assert_eq!(knocked["room_id"], json!(room_id));
    let content = member(&ts, &alice, &room_id, &bob.user_id).await;
    assert_eq!(content["membership"], "knock", "{content}");
    assert_eq!(content["reason"], "let me in", "{content}");

    // A knock is not a join: Bob still needs to be let in.
    assert_forbidden(&join(&ts, &bob, &room_id).await);
    invite(&ts, &alice, &room_id, &bob.user_id).await;
    let content = member(&ts, &alice, &room_id, &bob.user_id).await;
    assert_eq!(content["membership"], "invite");
    expect_ok(join(&ts, &bob, &room_id).await);
    let content = member(&ts, &alice, &room_id, &bob.user_id).await;
    assert_eq!(content["membership"], "join");
    expect_ok(send_text(&ts, &bob, &room_id, "thanks").await);

    // Already joined: nothing to knock for.
    assert_forbidden(&knock(&ts, &bob, &room_id, "again").await);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knocks_that_are_refused() {
    let (ts, alice, bob, _) = setup().await;
    let invite_only = create_room(&ts, &alice, json!({ "preset": "private_chat" })).await;
    assert_forbidden(&knock(&ts, &bob, &invite_only, "please").await);

    let rules = join_rules(json!({ "join_rule": "knock" }));
    let knockable = create_room(&ts, &alice, json!({ "initial_state": rules })).await;
    let ban = json!({ "user_id": bob.user_id, "reason": "no" });
    expect_ok(
        ts.post(&room_path(&knockable, "/ban"), alice.bearer(), &ban)
            .await,
    );
    assert_forbidden(&knock(&ts, &bob, &knockable, "please").await);
    let content = member(&ts, &alice, &knockable, &bob.user_id).await;
    assert_eq!(content["membership"], "ban");

    assert_not_found(&knock(&ts, &bob, "!doesnotexist:localhost", "anyone?").await);
    assert_not_found(&knock(&ts, &bob, "#nowhere:localhost", "anyone?").await);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restricted_rooms_admit_members_of_the_allowed_room() {
    let (ts, alice, bob, _) = setup().await;
    let space = create_room(&ts, &alice, json!({ "preset": "public_chat" })).await;
    let rules = join_rules(json!({ "join_rule": "restricted", "allow": allow(&space) }));
    let body = json!({ "preset": "private_chat", "initial_state": rules });
    let restricted = create_room(&ts, &alice, body).await;

    assert_forbidden(&join(&ts, &bob, &restricted).await);
    expect_ok(join(&ts, &bob, &space).await);
    expect_ok(join(&ts, &bob, &restricted).await);
    let content = member(&ts, &alice, &restricted, &bob.user_id).await;
    assert_eq!(content["membership"], "join");
    // The resident server vouches for the join with a user able to invite (auth rules v8+).
    let via = &content["join_authorised_via_users_server"];
    assert_eq!(via, &json!(alice.user_id), "{content}");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knock_restricted_rooms_take_knocks_and_allowed_joins() {
    let (ts, alice, bob, carol) = setup().await;
    let space = create_room(&ts, &alice, json!({ "preset": "public_chat" })).await;
    let rules = join_rules(json!({ "join_rule": "knock_restricted", "allow": allow(&space) }));
    let body = json!({ "room_version": "10", "preset": "private_chat", "initial_state": rules });
    let room_id = create_room(&ts, &alice, body).await;

    // Carol is in no allowed room: she can only knock.
    assert_forbidden(&join(&ts, &carol, &room_id).await);
    let knocked = expect_ok(knock(&ts, &carol, &room_id, "hello").await);
    assert_eq!(knocked["room_id"], json!(room_id));
    let content = member(&ts, &alice, &room_id, &carol.user_id).await;
    assert_eq!(content["membership"], "knock");

    // Bob is in the space: he joins directly.
    expect_ok(join(&ts, &bob, &space).await);
    expect_ok(join(&ts, &bob, &room_id).await);
    // And so can Carol once she is in the space, knock or not.
    expect_ok(join(&ts, &carol, &space).await);
    expect_ok(join(&ts, &carol, &room_id).await);
    let content = member(&ts, &alice, &room_id, &carol.user_id).await;
    assert_eq!(content["membership"], "join");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrading_a_room_replaces_it() {
    let (ts, alice, bob, carol) = setup().await;
    let body = json!({ "room_version": "11", "preset": "public_chat", "name": "Old name",
                       "topic": "Old topic", "room_alias_name": "upgrademe" });
    let old = create_room(&ts, &alice, body).await;
    expect_ok(join(&ts, &bob, &old).await);
    expect_ok(send_text(&ts, &bob, &old, "before-the-upgrade").await);
    let mut power = state(&ts, &alice, &old, "m.room.power_levels").await;
    power["users"][&carol.user_id] = json!(50);
    let path = room_path(&old, "/state/m.room.power_levels/");
    expect_ok(ts.put(&path, alice.bearer(), &power).await);
    let upgrade = room_path(&old, "/upgrade");
    let to = |version: &str| json!({ "new_version": version });

    // Bob (level 0) may not send the tombstone, so he may not upgrade.
    assert_forbidden(&ts.post(&upgrade, bob.bearer(), &to("12")).await);
    let resp = ts.post(&upgrade, alice.bearer(), &to("99")).await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_UNSUPPORTED_ROOM_VERSION");
    let path = room_path(&old, "/state/m.room.tombstone/");
    assert_not_found(&ts.get(&path, alice.bearer()).await);

    let done = expect_ok(ts.post(&upgrade, alice.bearer(), &to("12")).await);
    let new = done["replacement_room"].as_str().expect("replacement_room");
    let new = new.to_owned();
    assert_ne!(new, old);
    assert!(
        new.starts_with('!') && !new.contains(':'),
        "v12 room ID: {new}"
    );

    let tombstone = state(&ts, &alice, &old, "m.room.tombstone").await;
    assert_eq!(tombstone["replacement_room"], json!(new));
    let create = state(&ts, &alice, &new, "m.room.create").await;
    assert_eq!(create["room_version"], "12");
    assert_eq!(create["predecessor"]["room_id"], json!(old), "{create}");

    // Transferred state.
    let name = state(&ts, &alice, &new, "m.room.name").await;
    assert_eq!(name["name"], "Old name");
    let topic = state(&ts, &alice, &new, "m.room.topic").await;
    assert_eq!(topic["topic"], "Old topic");
    let rules = state(&ts, &alice, &new, "m.room.join_rules").await;
    assert_eq!(rules["join_rule"], "public");
    let visibility = state(&ts, &alice, &new, "m.room.history_visibility").await;
    let old_visibility = state(&ts, &alice, &old, "m.room.history_visibility").await;
    assert_eq!(visibility, old_visibility);
    let new_power = state(&ts, &alice, &new, "m.room.power_levels").await;
    assert_eq!(new_power["users"][&carol.user_id], 50, "{new_power}");

    // Local aliases move to the new room.
    let path = format!(
        "/_matrix/client/v3/directory/room/{}",
        enc("#upgrademe:localhost")
    );
    let resolved = expect_ok(ts.get(&path, bob.bearer()).await);
    assert_eq!(resolved["room_id"], json!(new));

    // The old room is closed to ordinary members: events_default and invite are raised to
    // (at least) the greater of 50 and users_default + 1.
    let power = state(&ts, &alice, &old, "m.room.power_levels").await;
    let floor = 50_i64.max(power["users_default"].as_i64().unwrap_or(0) + 1);
    assert!(
        power["events_default"].as_i64().unwrap_or(0) >= floor,
        "{power}"
    );
    assert!(power["invite"].as_i64().unwrap_or(0) >= floor, "{power}");
    assert_forbidden(&send_text(&ts, &bob, &old, "after-the-upgrade").await);

    // Memberships are not transferred: Bob joins the new (public) room himself.
    let path = room_path(&new, "/joined_members");
    let members = expect_ok(ts.get(&path, alice.bearer()).await);
    assert!(members["joined"].get(&bob.user_id).is_none(), "{members}");
    expect_ok(join(&ts, &bob, &new).await);
    expect_ok(send_text(&ts, &bob, &new, "in-the-new-room").await);
    ts.shutdown().await;
}

fn child_state(room_id: &str, order: &str) -> Value {
    json!({
        "type": "m.space.child",
        "state_key": room_id,
        "content": { "via": ["localhost"], "order": order },
    })
}

fn hierarchy_ids(body: &Value) -> Vec<String> {
    let rooms = body["rooms"].as_array();
    let rooms = rooms.unwrap_or_else(|| panic!("rooms: {body}"));
    rooms
        .iter()
        .map(|r| r["room_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn space_hierarchy_lists_children() {
    let (ts, alice, bob, _) = setup().await;
    let body = json!({ "preset": "public_chat", "name": "Public child" });
    let public_child = create_room(&ts, &alice, body).await;
    let body = json!({ "preset": "private_chat", "name": "Private child" });
    let private_child = create_room(&ts, &alice, body).await;
    // `order` puts the private child first (children are ordered by `order`, then by
    // timestamp, then by room ID).
    let children = [
        child_state(&public_child, "b"),
        child_state(&private_child, "a"),
    ];
    let body = json!({ "preset": "public_chat", "name": "The Space",
                       "creation_content": { "type": "m.space" }, "initial_state": children });
    let space = create_room(&ts, &alice, body).await;
    let path = |query: &str| v1_room_path(&space, &format!("/hierarchy{query}"));

    // Depth first: the space, then its children in order.
    let tree = expect_ok(ts.get(&path(""), alice.bearer()).await);
    let everything = [&space, &private_child, &public_child].map(|id| id.to_string());
    assert_eq!(hierarchy_ids(&tree), everything, "{tree}");
    let root = &tree["rooms"][0];
    assert_eq!(root["room_type"], "m.space");
    assert_eq!(root["name"], "The Space");
    assert_eq!(root["num_joined_members"], 1);
    assert_eq!(root["join_rule"], "public");
    let children = root["children_state"].as_array().expect("children_state");
    assert_eq!(children.len(), 2, "{root}");
    for child in children {
        assert_eq!(child["type"], "m.space.child");
        assert_eq!(child["content"]["via"], json!(["localhost"]));
        assert!(child["origin_server_ts"].is_u64(), "{child}");
        assert_eq!(child["sender"], json!(alice.user_id));
    }
    let mut keys: Vec<&str> = children
        .iter()
        .map(|c| c["state_key"].as_str().unwrap())
        .collect();
    keys.sort();
    let mut want = vec![public_child.as_str(), private_child.as_str()];
    want.sort();
    assert_eq!(keys, want);
    let leaf = &tree["rooms"][2];
    assert_eq!(leaf["name"], "Public child");
    assert_eq!(leaf["children_state"], json!([]), "not a space: {leaf}");

    let shallow = expect_ok(ts.get(&path("?max_depth=0"), alice.bearer()).await);
    assert_eq!(hierarchy_ids(&shallow), [space.as_str()], "{shallow}");

    // One room per page.
    let (mut seen, mut from) = (Vec::new(), None::<String>);
    for _ in 0..5 {
        let query = match &from {
            Some(token) => format!("?limit=1&from={}", enc(token)),
            None => "?limit=1".to_owned(),
        };
        let page = expect_ok(ts.get(&path(&query), alice.bearer()).await);
        let ids = hierarchy_ids(&page);
        assert!(ids.len() <= 1, "{page}");
        seen.extend(ids);
        match page["next_batch"].as_str() {
            Some(token) => from = Some(token.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, everything, "pages walk the same tree");

    // Bob is in none of these rooms: he sees the public ones only (Synapse leaves out
    // children the requester can neither join nor peek into).
    let tree = expect_ok(ts.get(&path(""), bob.bearer()).await);
    let visible = [space.as_str(), public_child.as_str()];
    assert_eq!(hierarchy_ids(&tree), visible, "{tree}");

    // A private space is not for outsiders.
    let body = json!({ "preset": "private_chat", "creation_content": { "type": "m.space" } });
    let closed = create_room(&ts, &alice, body).await;
    let path = v1_room_path(&closed, "/hierarchy");
    assert_forbidden(&ts.get(&path, bob.bearer()).await);
    ts.shutdown().await;
}

fn summary_path(room: &str) -> String {
    format!("/_matrix/client/v1/room_summary/{}", enc(room))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_summaries_for_members_and_outsiders() {
    let (ts, alice, bob, _) = setup().await;
    let body = json!({ "preset": "public_chat", "name": "Town square", "topic": "Everything",
                       "room_alias_name": "square", "creation_content": { "type": "m.space" } });
    let space = create_room(&ts, &alice, body).await;

    for target in [space.as_str(), "#square:localhost"] {
        let summary = expect_ok(ts.get(&summary_path(target), bob.bearer()).await);
        assert_eq!(summary["room_id"], json!(space), "{summary}");
        assert_eq!(summary["name"], "Town square");
        assert_eq!(summary["topic"], "Everything");
        assert_eq!(summary["canonical_alias"], "#square:localhost");
        assert_eq!(summary["num_joined_members"], 1);
        assert_eq!(summary["join_rule"], "public");
        assert_eq!(summary["room_type"], "m.space");
        assert_eq!(summary["world_readable"], false);
        assert_eq!(summary["guest_can_join"], false);
        // Synapse reports a non-member as `leave`; the spec only defines it for members.
        let membership = summary.get("membership");
        assert!(membership.is_none_or(|m| m == "leave"), "{summary}");
        if let Some(version) = summary.get("room_version") {
            assert_eq!(version, "12");
        }
    }
    let own = expect_ok(ts.get(&summary_path(&space), alice.bearer()).await);
    assert_eq!(own["membership"], "join", "{own}");

    // A private room: hidden from outsiders (404, as Synapse answers), visible once invited.
    let body = json!({ "preset": "private_chat", "name": "Back office" });
    let private = create_room(&ts, &alice, body).await;
    assert_not_found(&ts.get(&summary_path(&private), bob.bearer()).await);
    invite(&ts, &alice, &private, &bob.user_id).await;
    let summary = expect_ok(ts.get(&summary_path(&private), bob.bearer()).await);
    assert_eq!(summary["membership"], "invite", "{summary}");
    assert_eq!(summary["join_rule"], "invite");
    assert!(summary.get("room_type").is_none(), "not a space: {summary}");

    for unknown in ["!doesnotexist:localhost", "#nowhere:localhost"] {
        assert_not_found(&ts.get(&summary_path(unknown), alice.bearer()).await);
    }
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changes_carry_the_previous_content() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let room_id = create_room(&ts, &alice, json!({ "name": "Before" })).await;
    let first = expect_ok(
        ts.get(&room_path(&room_id, "/state/m.room.name"), alice.bearer())
            .await,
    );
    assert_eq!(first["name"], "Before");
    let old_name_id = expect_ok(
        ts.get(
            &room_path(&room_id, "/messages?dir=b&limit=20"),
            alice.bearer(),
        )
        .await,
    )["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.room.name")
        .map(|e| e["event_id"].clone())
        .expect("the name event");
    let renamed = expect_ok(
        ts.put(
            &room_path(&room_id, "/state/m.room.name"),
            alice.bearer(),
            &json!({ "name": "After" }),
        )
        .await,
    );
    let event = expect_ok(
        ts.get(
            &room_path(
                &room_id,
                &format!("/event/{}", enc(renamed["event_id"].as_str().unwrap())),
            ),
            alice.bearer(),
        )
        .await,
    );
    assert_eq!(
        event["unsigned"]["prev_content"]["name"], "Before",
        "{event}"
    );
    assert_eq!(event["unsigned"]["replaces_state"], old_name_id);
    assert_eq!(event["unsigned"]["prev_sender"], alice.user_id.as_str());
    ts.shutdown().await;
}
