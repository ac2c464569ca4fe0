//! Room aliases, canonical alias validation and the published room directory
//! (`/directory/room`, `/rooms/{roomId}/aliases`, `/directory/list/room`, `/publicRooms`).

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const PUBLIC_ROOMS: &str = "/_matrix/client/v3/publicRooms";

/// A fresh server with two users, alice and bob.
async fn setup() -> (TestServer, Session, Session) {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    (ts, alice, bob)
}

fn alias_path(alias: &str) -> String {
    format!("/_matrix/client/v3/directory/room/{}", enc(alias))
}

fn listing(room_id: &str) -> String {
    format!("/_matrix/client/v3/directory/list/room/{}", enc(room_id))
}

async fn join(ts: &TestServer, who: &Session, room_id: &str) {
    let path = room_path(room_id, "/join");
    expect_ok(ts.post(&path, who.bearer(), &json!({})).await);
}

/// `PUT /directory/room/{alias}` pointing at `room_id`.
async fn put_alias(ts: &TestServer, who: &Session, alias: &str, room_id: &str) -> Resp {
    let body = json!({ "room_id": room_id });
    ts.put(&alias_path(alias), who.bearer(), &body).await
}

async fn get_alias(ts: &TestServer, who: &Session, alias: &str) -> Resp {
    ts.get(&alias_path(alias), who.bearer()).await
}

async fn delete_alias(ts: &TestServer, who: &Session, alias: &str) -> Resp {
    ts.delete(&alias_path(alias), who.bearer()).await
}

#[track_caller]
fn assert_not_found(resp: &Resp) {
    assert_errcode(resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}

#[track_caller]
fn assert_forbidden(resp: &Resp) {
    assert_errcode(resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

async fn set_power(ts: &TestServer, admin: &Session, room_id: &str, user_id: &str, level: i64) {
    let path = room_path(room_id, "/state/m.room.power_levels/");
    let mut power = expect_ok(ts.get(&path, admin.bearer()).await);
    power["users"][user_id] = json!(level);
    expect_ok(ts.put(&path, admin.bearer(), &power).await);
}

async fn local_aliases(ts: &TestServer, who: &Session, room_id: &str) -> Vec<String> {
    let body = expect_ok(ts.get(&room_path(room_id, "/aliases"), who.bearer()).await);
    let aliases = body["aliases"].as_array();
    let aliases = aliases.unwrap_or_else(|| panic!("`aliases` is required: {body}"));
    aliases
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

async fn visibility(ts: &TestServer, who: &Session, room_id: &str) -> Value {
    expect_ok(ts.get(&listing(room_id), who.bearer()).await)["visibility"].clone()
}

async fn set_visibility(ts: &TestServer, who: &Session, room_id: &str, vis: &str) -> Resp {
    let body = json!({ "visibility": vis });
    ts.put(&listing(room_id), who.bearer(), &body).await
}

/// The directory entry of `room_id` in a `/publicRooms` page, if listed.
fn entry<'a>(page: &'a Value, room_id: &str) -> Option<&'a Value> {
    let chunk = page["chunk"].as_array();
    let chunk = chunk.unwrap_or_else(|| panic!("`chunk` is required: {page}"));
    chunk.iter().find(|r| r["room_id"] == room_id)
}

fn room_ids(page: &Value) -> Vec<String> {
    let chunk = page["chunk"].as_array();
    let chunk = chunk.unwrap_or_else(|| panic!("`chunk` is required: {page}"));
    chunk
        .iter()
        .map(|r| r["room_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn search(ts: &TestServer, who: &Session, term: &str) -> Vec<String> {
    let body = json!({ "filter": { "generic_search_term": term } });
    room_ids(&expect_ok(ts.post(PUBLIC_ROOMS, who.bearer(), &body).await))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_are_created_resolved_listed_and_deleted() {
    let (ts, alice, bob) = setup().await;
    let room_id = create_room(&ts, &alice, json!({ "preset": "public_chat" })).await;
    let alias = "#office:localhost";

    let created = expect_ok(put_alias(&ts, &alice, alias, &room_id).await);
    assert_eq!(created, json!({}));
    // Anyone may resolve an alias, member or not.
    for who in [&alice, &bob] {
        let resolved = expect_ok(get_alias(&ts, who, alias).await);
        assert_eq!(resolved["room_id"], json!(room_id));
        let servers = resolved["servers"].as_array().expect("servers");
        assert!(servers.contains(&json!("localhost")), "{resolved}");
    }

    // Taking the alias again fails, whatever room it would point to.
    let other_room = create_room(&ts, &alice, json!({})).await;
    for target in [&room_id, &other_room] {
        let again = put_alias(&ts, &alice, alias, target).await;
        assert_errcode(&again, StatusCode::CONFLICT, "M_UNKNOWN");
    }
    let resolved = expect_ok(get_alias(&ts, &alice, alias).await);
    assert_eq!(resolved["room_id"], json!(room_id), "unchanged");
    assert_not_found(&get_alias(&ts, &alice, "#nowhere:localhost").await);

    // Local aliases of the room: members only (the room is not world readable).
    assert_eq!(local_aliases(&ts, &alice, &room_id).await, [alias]);
    assert_forbidden(&ts.get(&room_path(&room_id, "/aliases"), bob.bearer()).await);

    // Bob is neither the alias creator nor allowed to change the room's aliases.
    assert_forbidden(&delete_alias(&ts, &bob, alias).await);
    join(&ts, &bob, &room_id).await;
    assert_forbidden(&delete_alias(&ts, &bob, alias).await);
    expect_ok(get_alias(&ts, &bob, alias).await);

    let deleted = expect_ok(delete_alias(&ts, &alice, alias).await);
    assert_eq!(deleted, json!({}));
    assert_not_found(&get_alias(&ts, &alice, alias).await);
    assert_not_found(&delete_alias(&ts, &alice, alias).await);
    assert!(local_aliases(&ts, &alice, &room_id).await.is_empty());

    // A deleted alias is free to be taken again.
    expect_ok(put_alias(&ts, &alice, alias, &other_room).await);
    let resolved = expect_ok(get_alias(&ts, &bob, alias).await);
    assert_eq!(resolved["room_id"], json!(other_room));
    ts.shutdown().await;
}

/// Deleting: the alias creator, or a user with the power to change the room's aliases (Synapse:
/// enough power to send `m.room.canonical_alias`, 50 by default), may do it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alias_creators_and_moderators_may_delete() {
    let (ts, alice, bob) = setup().await;
    let room_id = create_room(&ts, &alice, json!({ "preset": "public_chat" })).await;
    join(&ts, &bob, &room_id).await;

    // A plain member may add an alias (Synapse only requires membership) and remove their own.
    let bobs = "#bobs-corner:localhost";
    expect_ok(put_alias(&ts, &bob, bobs, &room_id).await);
    expect_ok(delete_alias(&ts, &bob, bobs).await);
    assert_not_found(&get_alias(&ts, &bob, bobs).await);

    // Alice's alias: Bob at level 0 may not remove it, at level 50 he may.
    let alices = "#alices-desk:localhost";
    expect_ok(put_alias(&ts, &alice, alices, &room_id).await);
    assert_forbidden(&delete_alias(&ts, &bob, alices).await);
    set_power(&ts, &alice, &room_id, &bob.user_id, 50).await;
    expect_ok(delete_alias(&ts, &bob, alices).await);
    assert_not_found(&get_alias(&ts, &alice, alices).await);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_foreign_and_unauthorised_aliases_are_refused() {
    let (ts, alice, bob) = setup().await;
    let room_id = create_room(&ts, &alice, json!({ "preset": "private_chat" })).await;

    for bad in ["#bad", "bad:localhost"] {
        let resp = put_alias(&ts, &alice, bad, &room_id).await;
        assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
        let resp = get_alias(&ts, &alice, bad).await;
        assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    }

    // Aliases of another server cannot be created here (Synapse: 400 "must be local").
    let foreign = put_alias(&ts, &alice, "#elsewhere:other.example", &room_id).await;
    assert!(foreign.0.is_client_error(), "{foreign:?}");
    let errcode = foreign.1["errcode"].as_str().unwrap_or_default();
    assert!(
        ["M_INVALID_PARAM", "M_FORBIDDEN"].contains(&errcode),
        "{foreign:?}"
    );

    // Synapse (require_membership_for_aliases, on by default): only members add aliases.
    assert_forbidden(&put_alias(&ts, &bob, "#intruder:localhost", &room_id).await);
    assert_not_found(&get_alias(&ts, &alice, "#intruder:localhost").await);

    // An alias for a room that does not exist is refused and not stored.
    let ghost = "#ghost:localhost";
    let resp = put_alias(&ts, &alice, ghost, "!doesnotexist:localhost").await;
    assert!(resp.0.is_client_error(), "{resp:?}");
    assert_not_found(&get_alias(&ts, &alice, ghost).await);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canonical_alias_must_point_to_the_room() {
    let (ts, alice, _) = setup().await;
    let room_a = create_room(&ts, &alice, json!({})).await;
    let room_b = create_room(&ts, &alice, json!({})).await;
    expect_ok(put_alias(&ts, &alice, "#a-room:localhost", &room_a).await);
    expect_ok(put_alias(&ts, &alice, "#a-second:localhost", &room_a).await);
    expect_ok(put_alias(&ts, &alice, "#b-room:localhost", &room_b).await);
    let path = room_path(&room_a, "/state/m.room.canonical_alias/");

    for content in [
        json!({ "alias": "#missing:localhost" }),
        json!({ "alias": "#b-room:localhost" }),
        json!({ "alias": "#a-room:localhost", "alt_aliases": ["#b-room:localhost"] }),
        json!({ "alt_aliases": ["#missing:localhost"] }),
    ] {
        let resp = ts.put(&path, alice.bearer(), &content).await;
        assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_BAD_ALIAS");
    }
    let content = json!({ "alias": "not an alias" });
    let resp = ts.put(&path, alice.bearer(), &content).await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    // None of the refused contents became state.
    assert_not_found(&ts.get(&path, alice.bearer()).await);

    let content = json!({ "alias": "#a-room:localhost" });
    expect_ok(ts.put(&path, alice.bearer(), &content).await);
    let current = expect_ok(ts.get(&path, alice.bearer()).await);
    assert_eq!(current["alias"], "#a-room:localhost");
    let content = json!({ "alias": "#a-room:localhost", "alt_aliases": ["#a-second:localhost"] });
    expect_ok(ts.put(&path, alice.bearer(), &content).await);
    let current = expect_ok(ts.get(&path, alice.bearer()).await);
    assert_eq!(current["alt_aliases"], json!(["#a-second:localhost"]));
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_room_alias_name_is_resolvable_and_canonical() {
    let (ts, alice, _) = setup().await;
    let body = json!({ "preset": "public_chat", "room_alias_name": "general" });
    let room_id = create_room(&ts, &alice, body).await;
    let alias = "#general:localhost";
    let resolved = expect_ok(get_alias(&ts, &alice, alias).await);
    assert_eq!(resolved["room_id"], json!(room_id));
    let path = room_path(&room_id, "/state/m.room.canonical_alias/");
    let canonical = expect_ok(ts.get(&path, alice.bearer()).await);
    assert_eq!(canonical["alias"], alias);
    assert_eq!(local_aliases(&ts, &alice, &room_id).await, [alias]);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_rooms_appear_in_the_directory() {
    let (ts, alice, bob) = setup().await;
    let published = create_room(
        &ts,
        &alice,
        json!({
            "visibility": "public",
            "preset": "public_chat",
            "name": "Cheese Lovers",
            "topic": "Brie and more",
            "room_alias_name": "cheese",
        }),
    )
    .await;
    let body = json!({ "preset": "private_chat", "name": "Hidden" });
    let hidden = create_room(&ts, &alice, body).await;

    let page = expect_ok(ts.get(PUBLIC_ROOMS, alice.bearer()).await);
    let listed = entry(&page, &published).unwrap_or_else(|| panic!("not listed: {page}"));
    assert_eq!(listed["name"], "Cheese Lovers");
    assert_eq!(listed["topic"], "Brie and more");
    assert_eq!(listed["canonical_alias"], "#cheese:localhost");
    assert_eq!(listed["num_joined_members"], 1);
    assert_eq!(listed["world_readable"], false);
    assert_eq!(listed["guest_can_join"], false);
    assert_eq!(listed["join_rule"], "public");
    assert!(
        entry(&page, &hidden).is_none(),
        "private room listed: {page}"
    );

    assert_eq!(visibility(&ts, &alice, &published).await, "public");
    assert_eq!(visibility(&ts, &alice, &hidden).await, "private");
    let unknown = listing("!doesnotexist:localhost");
    assert_not_found(&ts.get(&unknown, alice.bearer()).await);

    // A plain member may not change the listing (Synapse: it takes the power to send
    // `m.room.canonical_alias`).
    join(&ts, &bob, &published).await;
    assert_forbidden(&set_visibility(&ts, &bob, &published, "private").await);
    assert_eq!(visibility(&ts, &bob, &published).await, "public");
    let page = expect_ok(ts.get(PUBLIC_ROOMS, bob.bearer()).await);
    let listed = entry(&page, &published).expect("still listed");
    assert_eq!(listed["num_joined_members"], 2);

    let done = expect_ok(set_visibility(&ts, &alice, &published, "private").await);
    assert_eq!(done, json!({}));
    assert_eq!(visibility(&ts, &alice, &published).await, "private");
    expect_ok(set_visibility(&ts, &alice, &hidden, "public").await);
    let page = expect_ok(ts.get(PUBLIC_ROOMS, alice.bearer()).await);
    assert!(entry(&page, &published).is_none(), "unpublished: {page}");
    let listed = entry(&page, &hidden).unwrap_or_else(|| panic!("published: {page}"));
    assert_eq!(listed["name"], "Hidden");
    assert_eq!(listed["join_rule"], "invite");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_rooms_search_and_pagination() {
    let (ts, alice, bob) = setup().await;
    let mut rooms = Vec::new();
    for (name, topic, alias) in [
        ("Cheese Lovers", "Brie and more", None),
        ("Wine Club", "Grapes, mostly", None),
        ("Bakery", "Sourdough", Some("bread")),
    ] {
        let mut body = json!({ "visibility": "public", "preset": "public_chat",
                               "name": name, "topic": topic });
        if let Some(alias) = alias {
            body["room_alias_name"] = json!(alias);
        }
        rooms.push(create_room(&ts, &alice, body).await);
    }
    let (cheese, wine, bakery) = (&rooms[0], &rooms[1], &rooms[2]);

    // The search term matches the name, the topic or the canonical alias.
    assert_eq!(search(&ts, &alice, "Cheese").await, [cheese.as_str()]);
    assert_eq!(search(&ts, &alice, "Grapes").await, [wine.as_str()]);
    assert_eq!(search(&ts, &alice, "bread").await, [bakery.as_str()]);
    assert!(search(&ts, &alice, "nothing-matches-this").await.is_empty());

    // Largest rooms first: give the wine club a second member.
    join(&ts, &bob, wine).await;
    let body = json!({ "limit": 2 });
    let first = expect_ok(ts.post(PUBLIC_ROOMS, alice.bearer(), &body).await);
    let page1 = room_ids(&first);
    assert_eq!(page1.len(), 2, "{first}");
    assert_eq!(&page1[0], wine, "ordered by joined members: {first}");
    let estimate = first["total_room_count_estimate"].as_u64();
    assert!(estimate.unwrap_or(0) >= 3, "{first}");
    let next = first["next_batch"].as_str();
    let next = next.unwrap_or_else(|| panic!("more rooms to come: {first}"));

    let body = json!({ "limit": 2, "since": next });
    let second = expect_ok(ts.post(PUBLIC_ROOMS, alice.bearer(), &body).await);
    let page2 = room_ids(&second);
    assert_eq!(page2.len(), 1, "{second}");
    assert!(!page1.contains(&page2[0]), "{first} then {second}");
    assert!(second["prev_batch"].is_string(), "{second}");
    let mut all: Vec<String> = page1.into_iter().chain(page2).collect();
    all.sort();
    rooms.sort();
    assert_eq!(all, rooms);

    // GET pages through query parameters.
    let path = format!("{PUBLIC_ROOMS}?limit=1");
    let got = expect_ok(ts.get(&path, alice.bearer()).await);
    assert_eq!(room_ids(&got).len(), 1, "{got}");
    assert!(got["next_batch"].is_string(), "{got}");
    ts.shutdown().await;
}
