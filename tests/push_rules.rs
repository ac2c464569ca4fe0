//! Push rules: the server-default ruleset and the user-defined rule API.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const RULES: &str = "/_matrix/client/v3/pushrules/";
const KINDS: [&str; 5] = ["override", "content", "room", "sender", "underride"];

fn rule_path(kind: &str, rule_id: &str) -> String {
    format!(
        "/_matrix/client/v3/pushrules/global/{kind}/{}",
        enc(rule_id)
    )
}

fn rule_path_at(kind: &str, rule_id: &str, position: &str, other: &str) -> String {
    format!("{}?{position}={}", rule_path(kind, rule_id), enc(other))
}

fn override_rule(pattern: &str) -> Value {
    json!({
        "actions": ["notify"],
        "conditions": [{ "kind": "event_match", "key": "content.body", "pattern": pattern }],
    })
}

/// All rule IDs of one kind, in priority order.
async fn rule_ids(ts: &TestServer, s: &Session, kind: &str) -> Vec<String> {
    let body = expect_ok(ts.get(RULES, s.bearer()).await);
    body["global"][kind]
        .as_array()
        .unwrap_or_else(|| panic!("global.{kind} must be an array: {body}"))
        .iter()
        .map(|r| r["rule_id"].as_str().expect("rule_id").to_owned())
        .collect()
}

/// Only the user-defined rule IDs of one kind (those not starting with a dot), in order.
async fn user_rule_ids(ts: &TestServer, s: &Session, kind: &str) -> Vec<String> {
    rule_ids(ts, s, kind)
        .await
        .into_iter()
        .filter(|id| !id.starts_with('.'))
        .collect()
}

fn find_rule<'a>(ruleset: &'a Value, kind: &str, rule_id: &str) -> Option<&'a Value> {
    ruleset[kind]
        .as_array()?
        .iter()
        .find(|r| r["rule_id"] == json!(rule_id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_ruleset_is_present() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;

    let resp = ts.get(RULES, None).await;
    assert_errcode(&resp, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");

    let body = expect_ok(ts.get(RULES, alice.bearer()).await);
    let global = &body["global"];
    for kind in KINDS {
        assert!(global[kind].is_array(), "global.{kind} missing: {body}");
    }
    let master = find_rule(global, "override", ".m.rule.master").expect(".m.rule.master");
    assert_eq!(master["default"], json!(true));
    assert_eq!(master["enabled"], json!(false));
    assert_eq!(
        global["override"][0]["rule_id"],
        json!(".m.rule.master"),
        "master has the highest priority"
    );
    for (kind, id) in [
        ("override", ".m.rule.suppress_notices"),
        ("override", ".m.rule.invite_for_me"),
        ("override", ".m.rule.is_user_mention"),
        ("underride", ".m.rule.message"),
        ("underride", ".m.rule.encrypted"),
    ] {
        let rule = find_rule(global, kind, id).unwrap_or_else(|| panic!("{kind}/{id} missing"));
        assert_eq!(rule["default"], json!(true), "{rule}");
        assert!(rule["actions"].is_array(), "{rule}");
    }
    // Rules mentioning the user are personalised.
    let invite = find_rule(global, "override", ".m.rule.invite_for_me").unwrap();
    assert!(
        invite.to_string().contains("@alice:localhost"),
        "invite_for_me matches the user's own ID: {invite}"
    );

    // The scope can be drilled into.
    let scoped = expect_ok(
        ts.get("/_matrix/client/v3/pushrules/global/", alice.bearer())
            .await,
    );
    assert_eq!(&scoped, global);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_read_rules() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    let room_id = "!quiet:localhost";

    expect_ok(
        ts.put(
            &rule_path("room", room_id),
            alice.bearer(),
            &json!({ "actions": [] }),
        )
        .await,
    );
    let rule = expect_ok(ts.get(&rule_path("room", room_id), alice.bearer()).await);
    assert_eq!(rule["rule_id"], json!(room_id));
    assert_eq!(rule["default"], json!(false));
    assert_eq!(rule["enabled"], json!(true), "new rules are enabled");
    assert_eq!(rule["actions"], json!([]));

    expect_ok(
        ts.put(
            &rule_path("content", "cake"),
            alice.bearer(),
            &json!({ "pattern": "cake*lie", "actions": ["notify"] }),
        )
        .await,
    );
    let rule = expect_ok(ts.get(&rule_path("content", "cake"), alice.bearer()).await);
    assert_eq!(rule["pattern"], json!("cake*lie"));
    assert_eq!(rule["actions"], json!(["notify"]));

    expect_ok(
        ts.put(
            &rule_path("override", "hello"),
            alice.bearer(),
            &override_rule("hello"),
        )
        .await,
    );
    let rule = expect_ok(
        ts.get(&rule_path("override", "hello"), alice.bearer())
            .await,
    );
    assert_eq!(rule["conditions"][0]["pattern"], json!("hello"), "{rule}");

    let body = expect_ok(ts.get(RULES, alice.bearer()).await);
    assert!(
        find_rule(&body["global"], "room", room_id).is_some(),
        "{body}"
    );
    assert!(
        find_rule(&body["global"], "content", "cake").is_some(),
        "{body}"
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_positions_follow_before_and_after() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    let put = async |path: String, pattern: &str| {
        expect_ok(ts.put(&path, alice.bearer(), &override_rule(pattern)).await)
    };

    put(rule_path("override", "first"), "1").await;
    // A new rule without a position becomes the most important user rule.
    put(rule_path("override", "second"), "2").await;
    assert_eq!(
        user_rule_ids(&ts, &alice, "override").await,
        ["second", "first"]
    );

    put(rule_path_at("override", "third", "after", "second"), "3").await;
    assert_eq!(
        user_rule_ids(&ts, &alice, "override").await,
        ["second", "third", "first"]
    );
    put(rule_path_at("override", "fourth", "before", "second"), "4").await;
    assert_eq!(
        user_rule_ids(&ts, &alice, "override").await,
        ["fourth", "second", "third", "first"]
    );
    put(rule_path_at("override", "fifth", "after", "first"), "5").await;
    assert_eq!(
        user_rule_ids(&ts, &alice, "override").await,
        ["fourth", "second", "third", "first", "fifth"]
    );

    // Updating a rule in place keeps its position and changes its content.
    put(rule_path("override", "third"), "three").await;
    assert_eq!(
        user_rule_ids(&ts, &alice, "override").await,
        ["fourth", "second", "third", "first", "fifth"]
    );
    let rule = expect_ok(
        ts.get(&rule_path("override", "third"), alice.bearer())
            .await,
    );
    assert_eq!(rule["conditions"][0]["pattern"], json!("three"));

    // User override rules sit below .m.rule.master and above the other defaults.
    let all = rule_ids(&ts, &alice, "override").await;
    let pos = |id: &str| all.iter().position(|r| r == id).unwrap();
    assert_eq!(pos(".m.rule.master"), 0);
    assert!(pos("fifth") < pos(".m.rule.suppress_notices"), "{all:?}");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_underride_rules_precede_defaults() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    expect_ok(
        ts.put(
            &rule_path("underride", "mine"),
            alice.bearer(),
            &override_rule("x"),
        )
        .await,
    );
    let all = rule_ids(&ts, &alice, "underride").await;
    let mine = all.iter().position(|r| r == "mine").expect("rule listed");
    let message = all
        .iter()
        .position(|r| r == ".m.rule.message")
        .expect("default listed");
    assert!(mine < message, "{all:?}");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enabled_flag() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    expect_ok(
        ts.put(
            &rule_path("override", "mine"),
            alice.bearer(),
            &override_rule("x"),
        )
        .await,
    );
    let path = format!("{}/enabled", rule_path("override", "mine"));
    assert_eq!(
        expect_ok(ts.get(&path, alice.bearer()).await),
        json!({ "enabled": true })
    );
    expect_ok(
        ts.put(&path, alice.bearer(), &json!({ "enabled": false }))
            .await,
    );
    assert_eq!(
        expect_ok(ts.get(&path, alice.bearer()).await),
        json!({ "enabled": false })
    );
    let rule = expect_ok(ts.get(&rule_path("override", "mine"), alice.bearer()).await);
    assert_eq!(rule["enabled"], json!(false));

    // Server-default rules can be toggled too.
    let master = format!("{}/enabled", rule_path("override", ".m.rule.master"));
    expect_ok(
        ts.put(&master, alice.bearer(), &json!({ "enabled": true }))
            .await,
    );
    assert_eq!(
        expect_ok(ts.get(&master, alice.bearer()).await),
        json!({ "enabled": true })
    );
    let body = expect_ok(ts.get(RULES, alice.bearer()).await);
    let rule = find_rule(&body["global"], "override", ".m.rule.master").unwrap();
    assert_eq!(rule["enabled"], json!(true));
    assert_eq!(rule["default"], json!(true));
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_can_be_changed() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;

    let path = format!("{}/actions", rule_path("underride", ".m.rule.message"));
    let before = expect_ok(ts.get(&path, alice.bearer()).await);
    assert!(before["actions"].is_array(), "{before}");

    let new_actions = json!(["notify", { "set_tweak": "sound", "value": "bing" }]);
    expect_ok(
        ts.put(&path, alice.bearer(), &json!({ "actions": new_actions }))
            .await,
    );
    assert_eq!(
        expect_ok(ts.get(&path, alice.bearer()).await)["actions"],
        new_actions
    );
    let body = expect_ok(ts.get(RULES, alice.bearer()).await);
    let rule = find_rule(&body["global"], "underride", ".m.rule.message").unwrap();
    assert_eq!(rule["actions"], new_actions);

    expect_ok(
        ts.put(
            &rule_path("room", "!r:localhost"),
            alice.bearer(),
            &json!({ "actions": [] }),
        )
        .await,
    );
    let path = format!("{}/actions", rule_path("room", "!r:localhost"));
    expect_ok(
        ts.put(&path, alice.bearer(), &json!({ "actions": ["notify"] }))
            .await,
    );
    assert_eq!(
        expect_ok(ts.get(&path, alice.bearer()).await),
        json!({ "actions": ["notify"] })
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_user_rule() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    let path = rule_path("sender", "@spammer:localhost");
    expect_ok(
        ts.put(&path, alice.bearer(), &json!({ "actions": [] }))
            .await,
    );
    expect_ok(ts.get(&path, alice.bearer()).await);

    expect_ok(ts.delete(&path, alice.bearer()).await);
    let resp = ts.get(&path, alice.bearer()).await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    assert!(user_rule_ids(&ts, &alice, "sender").await.is_empty());
    let resp = ts.delete(&path, alice.bearer()).await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_rules_are_not_found() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;
    let cases = [
        ts.get(&rule_path("override", "nope"), alice.bearer()).await,
        ts.delete(&rule_path("override", "nope"), alice.bearer())
            .await,
        // A server-default rule ID that does not exist.
        ts.delete(
            &rule_path("override", ".m.rule.does_not_exist"),
            alice.bearer(),
        )
        .await,
        ts.put(
            &format!(
                "{}/enabled",
                rule_path("override", ".m.rule.does_not_exist")
            ),
            alice.bearer(),
            &json!({ "enabled": true }),
        )
        .await,
        ts.put(
            &format!("{}/actions", rule_path("underride", "nope")),
            alice.bearer(),
            &json!({ "actions": ["notify"] }),
        )
        .await,
        ts.get(
            &format!("{}/enabled", rule_path("room", "!nope:localhost")),
            alice.bearer(),
        )
        .await,
        ts.get(
            &format!("{}/actions", rule_path("content", "nope")),
            alice.bearer(),
        )
        .await,
        // Rules live under their own kind only.
        ts.get(&rule_path("underride", ".m.rule.master"), alice.bearer())
            .await,
    ];
    for resp in &cases {
        assert_errcode(resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    }
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_positions_and_ids_are_rejected() {
    let ts = TestServer::start().await;
    let alice = ts.register_first_admin("alice", "alice-password").await;

    // Spec: "There was a problem configuring this push rule" is a 400, with the
    // example error "before/after rule not found".
    let resp = ts
        .put(
            &rule_path_at("override", "orphan", "before", "no_such_rule"),
            alice.bearer(),
            &override_rule("x"),
        )
        .await;
    assert_eq!(resp.0, StatusCode::BAD_REQUEST, "{}", resp.1);
    assert!(resp.1["errcode"].is_string(), "{}", resp.1);
    let resp = ts
        .put(
            &rule_path_at("override", "orphan", "after", "no_such_rule"),
            alice.bearer(),
            &override_rule("x"),
        )
        .await;
    assert_eq!(resp.0, StatusCode::BAD_REQUEST, "{}", resp.1);

    // Rules cannot be positioned relative to server-default rules.
    let resp = ts
        .put(
            &rule_path_at("override", "orphan", "before", ".m.rule.suppress_notices"),
            alice.bearer(),
            &override_rule("x"),
        )
        .await;
    assert!(resp.0.is_client_error(), "{} {}", resp.0, resp.1);

    // IDs starting with a dot are reserved for server-default rules.
    let resp = ts
        .put(
            &rule_path("override", ".my.rule"),
            alice.bearer(),
            &override_rule("x"),
        )
        .await;
    assert!(resp.0.is_client_error(), "{} {}", resp.0, resp.1);

    for kind in KINDS {
        assert!(
            user_rule_ids(&ts, &alice, kind).await.is_empty(),
            "no rule may have been created in {kind}"
        );
    }
    let resp = ts
        .get(&rule_path("override", "orphan"), alice.bearer())
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let resp = ts
        .get(&rule_path("override", ".my.rule"), alice.bearer())
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_per_user() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    expect_ok(
        ts.put(
            &rule_path("override", "alice_only"),
            alice.bearer(),
            &override_rule("x"),
        )
        .await,
    );
    let master = format!("{}/enabled", rule_path("override", ".m.rule.master"));
    expect_ok(
        ts.put(&master, alice.bearer(), &json!({ "enabled": true }))
            .await,
    );

    assert!(user_rule_ids(&ts, &bob, "override").await.is_empty());
    let resp = ts
        .get(&rule_path("override", "alice_only"), bob.bearer())
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    assert_eq!(
        expect_ok(ts.get(&master, bob.bearer()).await),
        json!({ "enabled": false })
    );
    ts.shutdown().await;
}

/// Bob's unread notification count in `room_id`, from a fresh initial sync.
async fn unread(ts: &TestServer, who: &Session, room_id: &str) -> u64 {
    let body = expect_ok(ts.get("/_matrix/client/v3/sync", who.bearer()).await);
    body["rooms"]["join"][room_id]["unread_notifications"]["notification_count"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_rules_apply_to_the_next_message() {
    // Rules are kept parsed between messages; a change must still count from the next one.
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let room_id = create_room(&ts, &alice, json!({ "preset": "public_chat" })).await;
    expect_ok(
        ts.post(&room_path(&room_id, "/join"), bob.bearer(), &json!({}))
            .await,
    );
    send_text_id(&ts, &alice, &room_id, "t1", "one").await;
    assert_eq!(unread(&ts, &bob, &room_id).await, 1);

    // A rule that silences everything: the next message does not notify.
    let silence = json!({ "actions": [], "conditions": [] });
    expect_ok(
        ts.put(&rule_path("override", "quiet"), bob.bearer(), &silence)
            .await,
    );
    send_text_id(&ts, &alice, &room_id, "t2", "two").await;
    assert_eq!(unread(&ts, &bob, &room_id).await, 1);

    // Disabled again: messages notify.
    let enabled = format!("{}/enabled", rule_path("override", "quiet"));
    expect_ok(
        ts.put(&enabled, bob.bearer(), &json!({ "enabled": false }))
            .await,
    );
    send_text_id(&ts, &alice, &room_id, "t3", "three").await;
    assert_eq!(unread(&ts, &bob, &room_id).await, 2);
    ts.shutdown().await;
}
