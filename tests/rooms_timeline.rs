//! Reading the timeline: `/context`, relations, threads, bundled aggregations,
//! `timestamp_to_event`, history visibility and `/members?at=`.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

static TXN: AtomicU64 = AtomicU64::new(0);

/// A fresh server with two users, alice and bob.
async fn setup() -> (TestServer, Session, Session) {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    (ts, alice, bob)
}

/// A room on a test server, with request helpers.
struct Room<'a> {
    ts: &'a TestServer,
    id: String,
}

impl<'a> Room<'a> {
    async fn create(ts: &'a TestServer, who: &Session, body: Value) -> Room<'a> {
        let created = expect_ok(
            ts.post("/_matrix/client/v3/createRoom", who.bearer(), &body)
                .await,
        );
        let id = created["room_id"].as_str().expect("room_id").to_owned();
        Room { ts, id }
    }

    /// A public room whose history visibility is `visibility`.
    async fn with_visibility(ts: &'a TestServer, who: &Session, visibility: &str) -> Room<'a> {
        let state = json!([{
            "type": "m.room.history_visibility",
            "state_key": "",
            "content": { "history_visibility": visibility },
        }]);
        let body = json!({ "preset": "public_chat", "initial_state": state });
        Room::create(ts, who, body).await
    }

    fn path(&self, rest: &str) -> String {
        format!("/_matrix/client/v3/rooms/{}{rest}", enc(&self.id))
    }

    fn v1_path(&self, rest: &str) -> String {
        format!("/_matrix/client/v1/rooms/{}{rest}", enc(&self.id))
    }

    async fn get(&self, who: &Session, rest: &str) -> Resp {
        self.ts.get(&self.path(rest), who.bearer()).await
    }

    async fn get_v1(&self, who: &Session, rest: &str) -> Resp {
        self.ts.get(&self.v1_path(rest), who.bearer()).await
    }

    async fn post(&self, who: &Session, rest: &str, body: Value) -> Value {
        expect_ok(self.ts.post(&self.path(rest), who.bearer(), &body).await)
    }

    /// Sends an event and returns its ID.
    async fn send(&self, who: &Session, kind: &str, content: Value) -> String {
        let txn = TXN.fetch_add(1, Ordering::Relaxed);
        let path = self.path(&format!("/send/{kind}/t{txn}"));
        let sent = expect_ok(self.ts.put(&path, who.bearer(), &content).await);
        sent["event_id"].as_str().expect("event_id").to_owned()
    }

    async fn msg(&self, who: &Session, content: Value) -> String {
        self.send(who, "m.room.message", content).await
    }

    async fn text(&self, who: &Session, body: &str) -> String {
        self.msg(who, text(body)).await
    }

    async fn react(&self, who: &Session, target: &str, key: &str) -> String {
        self.send(who, "m.reaction", reaction(target, key)).await
    }

    async fn event(&self, who: &Session, event_id: &str) -> Resp {
        self.get(who, &format!("/event/{}", enc(event_id))).await
    }

    async fn messages(&self, who: &Session, query: &str) -> Value {
        expect_ok(self.get(who, &format!("/messages?{query}")).await)
    }

    /// Message bodies `who` can read, newest first.
    async fn readable(&self, who: &Session) -> Vec<String> {
        bodies(&self.messages(who, "dir=b&limit=100").await["chunk"])
    }

    async fn relations(&self, who: &Session, rest: &str) -> Value {
        expect_ok(self.get_v1(who, rest).await)
    }
}

fn text(body: &str) -> Value {
    json!({ "msgtype": "m.text", "body": body })
}

fn thread(root: &str, body: &str) -> Value {
    let mut content = text(body);
    content["m.relates_to"] = json!({
        "rel_type": "m.thread",
        "event_id": root,
        "is_falling_back": true,
        "m.in_reply_to": { "event_id": root },
    });
    content
}

fn edit(target: &str, body: &str) -> Value {
    let mut content = text(&format!("* {body}"));
    content["m.new_content"] = text(body);
    content["m.relates_to"] = json!({ "rel_type": "m.replace", "event_id": target });
    content
}

fn reaction(target: &str, key: &str) -> Value {
    json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": target, "key": key } })
}

fn bodies(events: &Value) -> Vec<String> {
    let events = events.as_array().unwrap_or_else(|| panic!("{events}"));
    events
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| e["content"]["body"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn ids(events: &Value) -> Vec<String> {
    let events = events.as_array().unwrap_or_else(|| panic!("{events}"));
    events
        .iter()
        .map(|e| e["event_id"].as_str().expect("event_id").to_owned())
        .collect()
}

fn ts_of(event: &Value) -> u64 {
    event["origin_server_ts"].as_u64().expect("ts")
}

fn owned(ids: &[&String]) -> Vec<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_around_an_event() {
    let (ts, alice, _) = setup().await;
    let room = Room::create(&ts, &alice, json!({})).await;
    let mut sent = Vec::new();
    for body in ["one", "two", "three", "four", "five"] {
        sent.push(room.text(&alice, body).await);
    }
    let context = |limit: u32| format!("/context/{}?limit={limit}", enc(&sent[2]));

    let wide = expect_ok(room.get(&alice, &context(20)).await);
    assert_eq!(wide["event"]["event_id"], json!(sent[2]));
    assert_eq!(wide["event"]["content"]["body"], "three");
    assert_eq!(bodies(&wide["events_before"]), ["two", "one"], "{wide}");
    assert_eq!(bodies(&wide["events_after"]), ["four", "five"], "{wide}");
    assert!(wide["start"].is_string(), "{wide}");
    assert!(wide["end"].is_string(), "{wide}");
    let state = wide["state"].as_array().expect("state");
    assert!(
        state.iter().any(|e| e["type"] == "m.room.member"
            && e["state_key"] == alice.user_id.as_str()
            && e["content"]["membership"] == "join"),
        "alice's membership in the state: {wide}"
    );

    // A narrow window: `limit` bounds both sides together, and the tokens continue
    // exactly where the returned events stop.
    let narrow = expect_ok(room.get(&alice, &context(2)).await);
    assert_eq!(narrow["event"]["event_id"], json!(sent[2]));
    let returned = narrow["events_before"].as_array().unwrap().len()
        + narrow["events_after"].as_array().unwrap().len();
    assert!(returned <= 2, "{narrow}");
    let start = enc(narrow["start"].as_str().expect("start"));
    let end = enc(narrow["end"].as_str().expect("end"));
    let older = room.messages(&alice, &format!("dir=b&from={start}")).await;
    let newer = room.messages(&alice, &format!("dir=f&from={end}")).await;
    let mut backwards = bodies(&narrow["events_before"]);
    backwards.extend(bodies(&older["chunk"]));
    let mut forwards = bodies(&narrow["events_after"]);
    forwards.extend(bodies(&newer["chunk"]));
    assert_eq!(backwards, ["two", "one"], "{narrow} / {older}");
    assert_eq!(forwards, ["four", "five"], "{narrow} / {newer}");

    let unknown = room.get(&alice, "/context/%24nope").await;
    assert_errcode(&unknown, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relations_are_filtered_paginated_and_recursed() {
    let (ts, alice, _) = setup().await;
    let room = Room::create(&ts, &alice, json!({})).await;
    let root = room.text(&alice, "root").await;
    let unrelated = room.text(&alice, "unrelated").await;
    let edited = room.msg(&alice, edit(&root, "root!")).await;
    let thread1 = room.msg(&alice, thread(&root, "reply 1")).await;
    let thread2 = room.msg(&alice, thread(&root, "reply 2")).await;
    let thumbs = room.react(&alice, &root, "👍").await;
    // A relation of a relation: only found with `recurse`.
    let nested = room.react(&alice, &thread1, "🎉").await;
    let rel = |rest: &str| format!("/relations/{}{rest}", enc(&root));

    let all = room.relations(&alice, &rel("")).await;
    // Direct children only, newest first; no recursion_depth as recurse was not asked.
    let direct = owned(&[&thumbs, &thread2, &thread1, &edited]);
    assert_eq!(ids(&all["chunk"]), direct, "{all}");
    assert!(all.get("recursion_depth").is_none(), "{all}");
    let threads = room.relations(&alice, &rel("/m.thread")).await;
    assert_eq!(ids(&threads["chunk"]), [thread2.as_str(), thread1.as_str()]);
    let path = rel("/m.annotation/m.reaction");
    let reactions = room.relations(&alice, &path).await;
    assert_eq!(ids(&reactions["chunk"]), [thumbs.as_str()]);
    let path = rel("/m.annotation/m.room.message");
    assert_eq!(room.relations(&alice, &path).await["chunk"], json!([]));
    let path = format!("/relations/{}", enc(&unrelated));
    assert_eq!(room.relations(&alice, &path).await["chunk"], json!([]));
    let forward = room.relations(&alice, &rel("?dir=f")).await;
    let oldest_first = owned(&[&edited, &thread1, &thread2, &thumbs]);
    assert_eq!(ids(&forward["chunk"]), oldest_first, "{forward}");

    // Two at a time, following next_batch until it disappears.
    let (mut collected, mut pages, mut from) = (Vec::new(), Vec::new(), None::<String>);
    for _ in 0..5 {
        let query = match &from {
            Some(token) => format!("?limit=2&from={}", enc(token)),
            None => "?limit=2".to_owned(),
        };
        let page = room.relations(&alice, &rel(&query)).await;
        let got = ids(&page["chunk"]);
        assert!(got.len() <= 2, "{page}");
        pages.push(got.len());
        collected.extend(got);
        match page["next_batch"].as_str() {
            Some(token) => from = Some(token.to_owned()),
            None => break,
        }
    }
    // A full first page, then more.
    assert!(pages.len() >= 2 && pages[0] == 2, "{pages:?}");
    assert_eq!(collected, direct, "pages walk the same list");

    let deep = room.relations(&alice, &rel("?recurse=true")).await;
    let mut got = ids(&deep["chunk"]);
    got.sort();
    let mut want = owned(&[&edited, &thread1, &thread2, &thumbs, &nested]);
    want.sort();
    assert_eq!(got, want, "{deep}");
    assert!(deep["recursion_depth"].as_u64().unwrap_or(0) >= 1, "{deep}");
    // Synapse applies the rel_type filter to every returned event, at any depth.
    let path = rel("/m.annotation?recurse=true");
    let deep = room.relations(&alice, &path).await;
    let mut got = ids(&deep["chunk"]);
    got.sort();
    let mut want = owned(&[&thumbs, &nested]);
    want.sort();
    assert_eq!(got, want, "{deep}");

    // 404 for an unknown parent (the spec's example errcode is M_NOT_FOUND).
    let missing = room.get_v1(&alice, "/relations/%24nope").await;
    assert_errcode(&missing, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_list_and_bundled_aggregations() {
    let (ts, alice, bob) = setup().await;
    let room = Room::create(&ts, &alice, json!({ "preset": "public_chat" })).await;
    room.post(&bob, "/join", json!({})).await;
    let root = room.text(&alice, "alice's thread").await;
    room.msg(&alice, thread(&root, "first")).await;
    let reply2 = room.msg(&bob, thread(&root, "second")).await;
    room.text(&alice, "not a thread").await;
    let root2 = room.text(&bob, "bob's thread").await;
    let bob_reply = room.msg(&bob, thread(&root2, "alone")).await;

    let list = expect_ok(room.get_v1(&alice, "/threads").await);
    // Ordered by each thread's latest event, most recent first.
    assert_eq!(ids(&list["chunk"]), owned(&[&root2, &root]), "{list}");
    let summary = &list["chunk"][1]["unsigned"]["m.relations"]["m.thread"];
    assert_eq!(summary["count"], 2, "{list}");
    assert_eq!(summary["latest_event"]["event_id"], json!(reply2), "{list}");
    assert_eq!(summary["current_user_participated"], true, "{list}");
    let summary = &list["chunk"][0]["unsigned"]["m.relations"]["m.thread"];
    assert_eq!(summary["count"], 1, "{list}");
    assert_eq!(summary["latest_event"]["event_id"], json!(bob_reply));
    assert_eq!(summary["current_user_participated"], false, "{list}");

    let mine = expect_ok(room.get_v1(&alice, "/threads?include=participated").await);
    assert_eq!(ids(&mine["chunk"]), owned(&[&root]), "{mine}");
    let bobs = expect_ok(room.get_v1(&bob, "/threads?include=participated").await);
    assert_eq!(ids(&bobs["chunk"]), owned(&[&root2, &root]), "{bobs}");

    let page = expect_ok(room.get_v1(&alice, "/threads?limit=1").await);
    assert_eq!(ids(&page["chunk"]), owned(&[&root2]));
    let next = enc(page["next_batch"].as_str().expect("next_batch"));
    let second = format!("/threads?limit=1&from={next}");
    let page = expect_ok(room.get_v1(&alice, &second).await);
    assert_eq!(ids(&page["chunk"]), owned(&[&root]));

    // Bundled aggregations on the thread root.
    let event = expect_ok(room.event(&alice, &root).await);
    let bundle = &event["unsigned"]["m.relations"]["m.thread"];
    assert_eq!(bundle["count"], 2, "{event}");
    assert_eq!(bundle["latest_event"]["event_id"], json!(reply2), "{event}");

    // Edits: the bundle holds the most recent edit event (highest origin_server_ts,
    // ties broken by the lexicographically largest event ID).
    let typo = room.text(&alice, "typo").await;
    let mut edits = Vec::new();
    for body in ["fixed", "fixed again"] {
        let id = room.msg(&alice, edit(&typo, body)).await;
        edits.push((ts_of(&expect_ok(room.event(&alice, &id).await)), id));
    }
    let latest = edits.iter().max().unwrap().1.clone();
    let event = expect_ok(room.event(&alice, &typo).await);
    let replace = &event["unsigned"]["m.relations"]["m.replace"];
    assert_eq!(replace["event_id"], json!(latest), "{event}");
    assert_eq!(replace["type"], "m.room.message", "a whole event: {event}");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_to_event_finds_the_nearest_event() {
    let (ts, alice, _) = setup().await;
    let room = Room::create(&ts, &alice, json!({})).await;
    let early = room.text(&alice, "early").await;
    let early_ts = ts_of(&expect_ok(room.event(&alice, &early).await));
    // Send until the clock has moved on, so that `late` is strictly later than every other
    // event (no sleeping: each send takes some time of its own).
    let (mut late, mut late_ts) = (String::new(), 0);
    for _ in 0..10_000 {
        late = room.text(&alice, "late").await;
        late_ts = ts_of(&expect_ok(room.event(&alice, &late).await));
        if late_ts > early_ts {
            break;
        }
    }
    assert!(late_ts > early_ts, "the clock never moved");
    let lookup = |t: u64, dir: &str| format!("/timestamp_to_event?ts={t}&dir={dir}");

    // Forwards from just after every other event: exactly `late`.
    let found = expect_ok(room.get_v1(&alice, &lookup(early_ts + 1, "f")).await);
    assert_eq!(found["event_id"], json!(late), "{found}");
    assert_eq!(found["origin_server_ts"], json!(late_ts));
    // Backwards from far in the future: the newest event, `late`.
    let found = expect_ok(room.get_v1(&alice, &lookup(late_ts + 3_600_000, "b")).await);
    assert_eq!(found["event_id"], json!(late), "{found}");
    // Backwards from just before `late`: the nearest earlier event, at early_ts.
    let found = expect_ok(room.get_v1(&alice, &lookup(late_ts - 1, "b")).await);
    let id = found["event_id"].as_str().expect("event_id");
    let event = expect_ok(room.event(&alice, id).await);
    assert_eq!(found["origin_server_ts"], json!(ts_of(&event)));
    assert_eq!(ts_of(&event), early_ts, "the nearest one before: {found}");

    // Nothing after the last event, nothing before the first.
    let none = room.get_v1(&alice, &lookup(late_ts + 1, "f")).await;
    assert_errcode(&none, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let none = room.get_v1(&alice, &lookup(1, "b")).await;
    assert_errcode(&none, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_visibility_hides_earlier_history() {
    let (ts, alice, bob) = setup().await;
    let room = Room::with_visibility(&ts, &alice, "joined").await;
    let before = room.text(&alice, "before bob").await;
    room.post(&bob, "/join", json!({})).await;
    let after = room.text(&alice, "after bob").await;

    assert_eq!(room.readable(&bob).await, ["after bob"]);
    let hidden = room.event(&bob, &before).await;
    assert_errcode(&hidden, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    expect_ok(room.event(&bob, &after).await);
    // Alice was there all along.
    assert_eq!(room.readable(&alice).await, ["after bob", "before bob"]);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_visibility_shows_earlier_history() {
    let (ts, alice, bob) = setup().await;
    let room = Room::with_visibility(&ts, &alice, "shared").await;
    let before = room.text(&alice, "before bob").await;
    // Not a member yet: nothing to read.
    let outside = room.get(&bob, "/messages?dir=b").await;
    assert_errcode(&outside, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    room.post(&bob, "/join", json!({})).await;
    room.text(&alice, "after bob").await;

    assert_eq!(room.readable(&bob).await, ["after bob", "before bob"]);
    let event = expect_ok(room.event(&bob, &before).await);
    assert_eq!(event["content"]["body"], "before bob");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invited_visibility_starts_at_the_invite() {
    let (ts, alice, bob) = setup().await;
    let room = Room::with_visibility(&ts, &alice, "invited").await;
    let before = room.text(&alice, "before invite").await;
    let invite = json!({ "user_id": bob.user_id });
    room.post(&alice, "/invite", invite).await;
    let during = room.text(&alice, "while invited").await;
    room.post(&bob, "/join", json!({})).await;
    room.text(&alice, "after join").await;

    assert_eq!(room.readable(&bob).await, ["after join", "while invited"]);
    let hidden = room.event(&bob, &before).await;
    assert_errcode(&hidden, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    expect_ok(room.event(&bob, &during).await);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn world_readable_rooms_can_be_read_by_anyone() {
    let (ts, alice, bob) = setup().await;
    let room = Room::with_visibility(&ts, &alice, "world_readable").await;
    let id = room.text(&alice, "for everyone").await;

    assert_eq!(room.readable(&bob).await, ["for everyone"]);
    let event = expect_ok(room.event(&bob, &id).await);
    assert_eq!(event["content"]["body"], "for everyone");
    // Reading is not joining: Bob still cannot write.
    let path = room.path("/send/m.room.message/peek1");
    let write = ts.put(&path, bob.bearer(), &text("hi")).await;
    assert_errcode(&write, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    // A room that is not world readable stays closed to him.
    let closed = Room::with_visibility(&ts, &alice, "shared").await;
    let resp = closed.get(&bob, "/messages?dir=b").await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_stops_history_at_the_leave() {
    let (ts, alice, bob) = setup().await;
    let room = Room::with_visibility(&ts, &alice, "shared").await;
    room.post(&bob, "/join", json!({})).await;
    let seen = room.text(&alice, "while bob is here").await;
    room.post(&bob, "/leave", json!({})).await;
    let unseen = room.text(&alice, "after bob left").await;

    // What Bob saw while joined, and nothing after his leave.
    assert_eq!(room.readable(&bob).await, ["while bob is here"]);
    expect_ok(room.event(&bob, &seen).await);
    let hidden = room.event(&bob, &unseen).await;
    assert_errcode(&hidden, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_at_a_past_token() {
    let (ts, alice, bob) = setup().await;
    let room = Room::create(&ts, &alice, json!({ "preset": "public_chat" })).await;
    room.text(&alice, "alone").await;
    let page = room.messages(&alice, "dir=b&limit=1").await;
    let token = enc(page["start"].as_str().expect("start"));
    room.post(&bob, "/join", json!({})).await;

    let joined = |body: &Value| -> Vec<String> {
        let chunk = body["chunk"].as_array().unwrap_or_else(|| panic!("{body}"));
        let mut users: Vec<String> = chunk
            .iter()
            .filter(|e| e["content"]["membership"] == "join")
            .map(|e| e["state_key"].as_str().unwrap().to_owned())
            .collect();
        users.sort();
        users
    };
    let then = expect_ok(room.get(&alice, &format!("/members?at={token}")).await);
    assert_eq!(joined(&then), [alice.user_id.as_str()], "{then}");
    let now = expect_ok(room.get(&alice, "/members").await);
    let mut both = vec![alice.user_id.as_str(), bob.user_id.as_str()];
    both.sort();
    assert_eq!(joined(&now), both, "{now}");
    ts.shutdown().await;
}
