//! Application services, with a real bridge built on mautrix-python (tests/clients/
//! echo_bridge.py): registered from a YAML file in the configuration, it is sent the room's
//! messages in transactions, registers puppets in its exclusive namespace and answers as them
//! (masquerading with `user_id`), is sent typing, read receipts and to-device messages, pings
//! the server, answers user and alias queries and third-party lookups, lists a room in its network's
//! directory, and gets what was queued while it was down. Registration from the admin room is
//! persisted, audited without its tokens, and undone by `unregister`.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::admin::{admin_room, body, command};
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const AS_TOKEN: &str = "as-token-for-the-echo-bridge-0123456789";
const HS_TOKEN: &str = "hs-token-for-the-echo-bridge-0123456789";

fn registration(id: &str, port: u16, localpart_prefix: &str) -> String {
    format!(
        r##"id: {id}
url: "http://127.0.0.1:{port}"
as_token: "{AS_TOKEN}"
hs_token: "{HS_TOKEN}"
sender_localpart: {localpart_prefix}bot
namespaces:
  users:
    - exclusive: true
      regex: "@{localpart_prefix}.*"
  aliases:
    - exclusive: true
      regex: "#{localpart_prefix}.*"
  rooms: []
rate_limited: false
protocols: ["echo"]
de.sorunome.msc2409.push_ephemeral: true
"##
    )
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The bridge process and what it prints (a JSON line per action).
struct Bridge {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Bridge {
    async fn start(ts: &TestServer, port: u16, dir: &std::path::Path) -> Bridge {
        let python = std::env::var("CONCLAVE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = format!(
            "{}/tests/clients/echo_bridge.py",
            env!("CARGO_MANIFEST_DIR")
        );
        let config = json!({
            "homeserver": ts.url(""),
            "domain": "localhost",
            "as_token": AS_TOKEN,
            "hs_token": HS_TOKEN,
            "id": "echo",
            "port": port,
        });
        let mut child = Command::new(&python)
            .arg(&script)
            .arg(config.to_string())
            // Its state file goes there.
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python}: {e} (install mautrix; see README)"));
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Bridge { child, lines }
    }

    /// Waits for the line whose `event` is `what`.
    async fn until(&mut self, what: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = tokio::time::timeout(left, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("the bridge did not report {what:?}"))
                .expect("bridge output")
                .unwrap_or_else(|| panic!("the bridge exited before {what:?}"));
            let Ok(value) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if value["event"] == what {
                return value;
            }
        }
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The room's messages as (sender, body), oldest first.
async fn messages(ts: &TestServer, who: &Session, room: &str) -> Vec<(String, String)> {
    let page = expect_ok(
        ts.get(&room_path(room, "/messages?dir=b&limit=50"), who.bearer())
            .await,
    );
    let mut out: Vec<(String, String)> = page["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| {
            (
                e["sender"].as_str().unwrap().to_owned(),
                e["content"]["body"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    out.reverse();
    out
}

/// Waits until the room holds `body` from `sender`.
async fn until_message(ts: &TestServer, who: &Session, room: &str, sender: &str, body: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = messages(ts, who, room).await;
        if found.iter().any(|(s, b)| s == sender && b == body) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {body:?} from {sender}: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn with_token(path: &str, user: Option<&str>) -> String {
    match user {
        Some(user) => format!("{path}?user_id={}", enc(user)),
        None => path.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_from_a_registration_file_echoes_as_its_puppets() {
    let files = tempfile::tempdir().unwrap();
    let port = free_port();
    let yaml = files.path().join("echo.yaml");
    std::fs::write(&yaml, registration("echo", port, "echo_")).unwrap();
    let ts = TestServer::start_with(move |cfg| {
        cfg.allow_registration = true;
        cfg.registration_token = None;
        cfg.appservice_registration_files = vec![yaml.clone()];
    })
    .await;

    // On start the bridge pings the server, which pings it back.
    let mut bridge = Bridge::start(&ts, port, files.path()).await;
    let ready = bridge.until("ready").await;
    assert!(ready["ping_ms"].as_u64().is_some(), "{ready}");

    // A person invites the bridge's bot; the bot joins (it saw the invite in a transaction).
    let alice = ts.register_open("alice", "alice-password").await;
    let room = create_room(
        &ts,
        &alice,
        json!({ "preset": "private_chat", "invite": ["@echo_bot:localhost"] }),
    )
    .await;
    assert_eq!(bridge.until("joined").await["room_id"], room);

    // Her message reaches the bridge; its puppet registers, joins and answers as itself.
    send_text(&ts, &alice, &room, "t1", "hello bridge").await;
    let echoed = bridge.until("echoed").await;
    assert_eq!(echoed["puppet"], "@echo_alice:localhost", "{echoed}");
    until_message(
        &ts,
        &alice,
        &room,
        "@echo_alice:localhost",
        "echo: hello bridge",
    )
    .await;
    // A room the bridge had no user in: once its bot joins by itself, the room's messages
    // reach it.
    let open_room = create_room(&ts, &alice, json!({ "preset": "public_chat" })).await;
    send_text(&ts, &alice, &open_room, "o1", "before the bridge").await;
    expect_ok(
        ts.post(&room_path(&open_room, "/join"), Some(AS_TOKEN), &json!({}))
            .await,
    );
    send_text(&ts, &alice, &open_room, "o2", "after the bridge").await;
    until_message(
        &ts,
        &alice,
        &open_room,
        "@echo_alice:localhost",
        "echo: after the bridge",
    )
    .await;
    let puppet = expect_ok(
        ts.get(
            &with_token(WHOAMI, Some("@echo_alice:localhost")),
            Some(AS_TOKEN),
        )
        .await,
    );
    assert_eq!(puppet["user_id"], "@echo_alice:localhost");
    // Ephemeral events reach it too, as the registration asks: her typing and read receipt.
    expect_ok(
        ts.put(
            &room_path(&room, &format!("/typing/{}", enc(&alice.user_id))),
            alice.bearer(),
            &json!({ "typing": true, "timeout": 30000 }),
        )
        .await,
    );
    let typing = bridge.until("typing").await;
    assert_eq!(typing["user_ids"], json!([alice.user_id]), "{typing}");
    let echo_id = echoed["event_id"].as_str().unwrap().to_owned();
    expect_ok(
        ts.post(
            &room_path(&room, &format!("/receipt/m.read/{}", enc(&echo_id))),
            alice.bearer(),
            &json!({}),
        )
        .await,
    );
    let receipt = bridge.until("receipt").await;
    assert_eq!(
        receipt["content"][&echo_id]["m.read"],
        json!([alice.user_id]),
        "{receipt}"
    );
    // The bridge logs its puppet in for a device (m.login.application_service, which a
    // person's token cannot do), and to-device messages for that device reach the bridge.
    let as_login = json!({
        "type": "m.login.application_service",
        "identifier": { "type": "m.id.user", "user": "echo_alice" },
    });
    let refused = ts.post(LOGIN, alice.bearer(), &as_login).await;
    assert_errcode(&refused, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
    let login = expect_ok(ts.post(LOGIN, Some(AS_TOKEN), &as_login).await);
    assert_eq!(login["user_id"], "@echo_alice:localhost", "{login}");
    let device = login["device_id"].as_str().unwrap().to_owned();
    expect_ok(
        ts.put(
            "/_matrix/client/v3/sendToDevice/m.room_key_request/td1",
            alice.bearer(),
            &json!({ "messages": { "@echo_alice:localhost": { &device: {
                "action": "request_cancellation",
                "requesting_device_id": "ALICEDEVICE",
                "request_id": "r1",
            } } } }),
        )
        .await,
    );
    let to_device = bridge.until("to_device").await;
    assert_eq!(to_device["to_device_id"], device, "{to_device}");
    assert_eq!(to_device["sender"], alice.user_id, "{to_device}");
    assert_eq!(to_device["type"], "m.room_key_request", "{to_device}");

    // Puppets are not listed in the user directory, though they share her room (as Synapse).
    let found = expect_ok(
        ts.post(
            "/_matrix/client/v3/user_directory/search",
            alice.bearer(),
            &json!({ "search_term": "echo" }),
        )
        .await,
    );
    assert_eq!(found["results"], json!([]), "{found}");
    // Alice is the first person here, so an administrator (the bridge's accounts do not count);
    // the admin API says which service made the puppet.
    let puppet_admin = expect_ok(
        ts.get(
            &format!("/_synapse/admin/v2/users/{}", enc("@echo_alice:localhost")),
            alice.bearer(),
        )
        .await,
    );
    assert_eq!(puppet_admin["appservice_id"], "echo", "{puppet_admin}");
    // The registration the configuration's file brought is in the audit log.
    let admins = admin_room(&ts).await;
    expect_ok(
        ts.post(&room_path(&admins, "/join"), alice.bearer(), &json!({}))
            .await,
    );
    let audit = command(&ts, &alice, &admins, "!admin audit list").await;
    assert!(
        body(&audit).contains("appservices register \"echo\" (file)"),
        "{audit}"
    );
    assert!(!body(&audit).contains(AS_TOKEN), "{audit}");
    let bot = expect_ok(ts.get(WHOAMI, Some(AS_TOKEN)).await);
    assert_eq!(bot["user_id"], "@echo_bot:localhost");

    // The namespace is the bridge's: nobody else registers in it, and the bridge cannot act
    // as people outside it.
    let taken = ts
        .register(
            json!({ "username": "echo_mallory", "password": "mallory-password" }),
            dummy_auth(),
        )
        .await;
    assert_errcode(&taken, StatusCode::BAD_REQUEST, "M_EXCLUSIVE");
    let available = ts
        .get(
            "/_matrix/client/v3/register/available?username=echo_mallory",
            None,
        )
        .await;
    assert_errcode(&available, StatusCode::BAD_REQUEST, "M_EXCLUSIVE");
    let outside = ts
        .get(
            &with_token(WHOAMI, Some("@alice:localhost")),
            Some(AS_TOKEN),
        )
        .await;
    assert_errcode(&outside, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let alias = ts
        .put(
            &format!(
                "/_matrix/client/v3/directory/room/{}",
                enc("#echo_room:localhost")
            ),
            alice.bearer(),
            &json!({ "room_id": room }),
        )
        .await;
    assert_errcode(&alias, StatusCode::BAD_REQUEST, "M_EXCLUSIVE");

    // The ping, as the bridge's operator checks it: only the service itself may.
    let ping = expect_ok(
        ts.post(
            "/_matrix/client/v1/appservice/echo/ping",
            Some(AS_TOKEN),
            &json!({ "transaction_id": "check" }),
        )
        .await,
    );
    assert!(ping["duration_ms"].as_u64().is_some(), "{ping}");
    let other = ts
        .post(
            "/_matrix/client/v1/appservice/irc/ping",
            Some(AS_TOKEN),
            &json!({}),
        )
        .await;
    assert_errcode(&other, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let person = ts
        .post(
            "/_matrix/client/v1/appservice/echo/ping",
            alice.bearer(),
            &json!({}),
        )
        .await;
    assert_errcode(&person, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    // A profile lookup of an unknown puppet asks the bridge, which creates it.
    let profile = expect_ok(
        ts.get(
            &format!(
                "/_matrix/client/v3/profile/{}",
                enc("@echo_carol:localhost")
            ),
            alice.bearer(),
        )
        .await,
    );
    assert_eq!(profile["displayname"], "echo_carol", "{profile}");
    assert_eq!(
        bridge.until("query_user").await["user_id"],
        "@echo_carol:localhost"
    );

    // An unknown alias in its namespace asks the bridge, which creates the room.
    let lobby = expect_ok(
        ts.get(
            &format!(
                "/_matrix/client/v3/directory/room/{}",
                enc("#echo_lobby:localhost")
            ),
            alice.bearer(),
        )
        .await,
    );
    let made = bridge.until("query_alias").await;
    assert_eq!(lobby["room_id"], made["room_id"], "{lobby} {made}");

    // Third-party lookups are answered by the bridge of the protocol.
    let protocols = expect_ok(
        ts.get("/_matrix/client/v3/thirdparty/protocols", alice.bearer())
            .await,
    );
    assert_eq!(
        protocols["echo"]["instances"][0]["instance_id"], "echo|echo-net",
        "{protocols}"
    );
    let users = expect_ok(
        ts.get(
            "/_matrix/client/v3/thirdparty/user/echo?name=bob",
            alice.bearer(),
        )
        .await,
    );
    assert_eq!(users[0]["userid"], "@echo_bob:localhost", "{users}");

    // The bridge lists the room in its network's directory: found there (and among all
    // networks), not in the server's own.
    let listing = format!(
        "/_matrix/client/v3/directory/list/appservice/echo-net/{}",
        enc(&room)
    );
    let person = ts
        .put(&listing, alice.bearer(), &json!({ "visibility": "public" }))
        .await;
    assert_errcode(&person, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    expect_ok(
        ts.put(&listing, Some(AS_TOKEN), &json!({ "visibility": "public" }))
            .await,
    );
    let directory = |filter: Value| {
        let ts = &ts;
        let alice = &alice;
        async move {
            let page = expect_ok(
                ts.post("/_matrix/client/v3/publicRooms", alice.bearer(), &filter)
                    .await,
            );
            page["chunk"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["room_id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let network = json!({ "third_party_instance_id": "echo|echo-net" });
    assert_eq!(directory(network.clone()).await, vec![room.clone()]);
    assert_eq!(
        directory(json!({ "include_all_networks": true })).await,
        vec![room.clone()]
    );
    assert!(directory(json!({})).await.is_empty());
    expect_ok(
        ts.put(
            &listing,
            Some(AS_TOKEN),
            &json!({ "visibility": "private" }),
        )
        .await,
    );
    assert!(directory(network).await.is_empty());

    // Down, then back: what was sent meanwhile waits in the queue and arrives.
    bridge.stop().await;
    send_text(&ts, &alice, &room, "t2", "while you were away").await;
    let mut bridge = Bridge::start(&ts, port, files.path()).await;
    bridge.until("ready").await;
    until_message(
        &ts,
        &alice,
        &room,
        "@echo_alice:localhost",
        "echo: while you were away",
    )
    .await;
    bridge.stop().await;
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_room_registers_lists_shows_and_unregisters_a_service() {
    let mut ts = TestServer::start().await;
    let admin = ts.register_first_admin("boss", "boss-password").await;
    let room = admin_room(&ts).await;
    expect_ok(
        ts.post(&room_path(&room, "/join"), admin.bearer(), &json!({}))
            .await,
    );
    // No URL: nothing needs to listen for this test.
    let yaml =
        registration("hooks", 1, "hook_").replace("url: \"http://127.0.0.1:1\"", "url: null");
    let reply = command(
        &ts,
        &admin,
        &room,
        &format!("!admin appservices register\n```yaml\n{yaml}```"),
    )
    .await;
    assert!(body(&reply).contains("Registered `hooks`"), "{reply}");
    let whoami = expect_ok(ts.get(WHOAMI, Some(AS_TOKEN)).await);
    assert_eq!(whoami["user_id"], "@hook_bot:localhost");

    let list = command(&ts, &admin, &room, "!admin appservices list").await;
    assert!(body(&list).contains("hooks"), "{list}");
    let show = command(&ts, &admin, &room, "!admin appservices show hooks").await;
    assert!(body(&show).contains("hook_.*"), "{show}");
    assert!(!body(&show).contains(AS_TOKEN), "tokens are masked: {show}");
    let twice = command(
        &ts,
        &admin,
        &room,
        &format!("!admin appservices register\n```\n{yaml}```"),
    )
    .await;
    assert!(body(&twice).contains("registered already"), "{twice}");
    let audit = command(&ts, &admin, &room, "!admin audit list").await;
    assert!(body(&audit).contains("hooks"), "{audit}");
    assert!(
        !body(&audit).contains(AS_TOKEN),
        "the audit log has no token: {audit}"
    );

    // Kept across a restart.
    ts.restart().await;
    let admin = ts.login("boss", "boss-password").await;
    let whoami = expect_ok(ts.get(WHOAMI, Some(AS_TOKEN)).await);
    assert_eq!(whoami["user_id"], "@hook_bot:localhost");

    let reply = command(&ts, &admin, &room, "!admin appservices unregister hooks").await;
    assert!(body(&reply).contains("Unregistered"), "{reply}");
    let gone = ts.get(WHOAMI, Some(AS_TOKEN)).await;
    assert_errcode(&gone, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    ts.shutdown().await;
}
