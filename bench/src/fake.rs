//! A tiny in-memory Matrix server, for this crate's own tests only: just enough of the
//! client-server API (multi-stage UIA registration, login, rooms, sends, filters, long-poll
//! /sync, some 429s) to drive every scenario end to end without a real homeserver.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

const FLOWS: &str = r#"[{"stages":["m.login.registration_token","m.login.dummy"]}]"#;
pub const TOKEN: &str = "fake-registration-token";

#[derive(Default)]
struct State {
    passwords: HashMap<String, String>,
    tokens: HashMap<String, String>,
    sessions: HashMap<String, Vec<String>>,
    rooms: HashMap<String, Vec<String>>,
    /// (stream position, room, event)
    events: Vec<(u64, String, Value)>,
    counter: u64,
    logins: u64,
}

struct Shared {
    state: Mutex<State>,
    new_event: Notify,
}

/// Starts the fake server on a random port; returns its base URL.
pub async fn start() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        new_event: Notify::new(),
    });
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(connection(socket, shared.clone()));
        }
    });
    url
}

async fn connection(socket: TcpStream, shared: Arc<Shared>) {
    let mut reader = BufReader::new(socket);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or_default().to_owned();
        let (mut length, mut token) = (0usize, None);
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await.unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "authorization" => {
                    token = value.trim().strip_prefix("Bearer ").map(str::to_owned);
                }
                _ => {}
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (status, answer) = handle(&shared, &method, &target, token, body).await;
        let text = answer.to_string();
        let response = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\nserver: fake/1\r\n\
             content-length: {}\r\n\r\n{text}",
            text.len()
        );
        if reader
            .get_mut()
            .write_all(response.as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
            out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn error(status: u16, code: &str) -> (u16, Value) {
    (status, json!({ "errcode": code, "error": code }))
}

enum Reply {
    Now(u16, Value),
    Sync {
        user: String,
        since: Option<u64>,
        timeout: u64,
    },
}

async fn handle(
    shared: &Shared,
    method: &str,
    target: &str,
    token: Option<String>,
    body: Value,
) -> (u16, Value) {
    let (user, since, timeout) = match route(shared, method, target, token, body) {
        Reply::Now(status, answer) => return (status, answer),
        Reply::Sync {
            user,
            since,
            timeout,
        } => (user, since, timeout),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout);
    loop {
        let notified = shared.new_event.notified();
        let (answer, any) = sync_answer(&shared.state.lock().unwrap(), &user, since);
        if since.is_none() || any || tokio::time::Instant::now() >= deadline {
            return (200, answer);
        }
        let _ = tokio::time::timeout_at(deadline, notified).await;
    }
}

fn route(shared: &Shared, method: &str, target: &str, token: Option<String>, body: Value) -> Reply {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query: HashMap<String, String> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), decode(v)))
        .collect();
    let path = path.strip_prefix("/_matrix/client").unwrap_or(path);
    let segments: Vec<String> = path.split('/').skip(1).map(decode).collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let mut state = shared.state.lock().unwrap();
    let user = token.and_then(|t| state.tokens.get(&t).cloned());
    let (status, answer) = match (method, segs.as_slice()) {
        ("GET", ["versions"]) => (200, json!({ "versions": ["v1.11"] })),
        ("POST", ["v3", "register"]) => register(&mut state, &body),
        ("POST", ["v3", "login"]) => {
            state.logins += 1;
            if state.logins.is_multiple_of(3) {
                return Reply::Now(
                    429,
                    json!({ "errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 5 }),
                );
            }
            let name = body.pointer("/identifier/user").and_then(Value::as_str);
            let password = body.get("password").and_then(Value::as_str);
            match name.and_then(|n| state.passwords.get(n).map(|p| (n, p))) {
                Some((n, p)) if Some(p.as_str()) == password => {
                    let user_id = format!("@{n}:fake");
                    new_session(&mut state, &user_id)
                }
                _ => error(403, "M_FORBIDDEN"),
            }
        }
        (_, _) if user.is_none() => error(401, "M_MISSING_TOKEN"),
        ("GET", ["v3", "account", "whoami"]) => (200, json!({ "user_id": user })),
        ("POST", ["v3", "logout"]) => (200, json!({})),
        ("POST", ["v3", "user", _, "filter"]) => (200, json!({ "filter_id": "f1" })),
        ("POST", ["v3", "createRoom"]) => {
            state.counter += 1;
            let room = format!("!r{}:fake", state.counter);
            state
                .rooms
                .insert(room.clone(), vec![user.unwrap_or_default()]);
            (200, json!({ "room_id": room }))
        }
        ("POST", ["v3", "join", room]) => {
            let user = user.unwrap_or_default();
            match state.rooms.get_mut(*room) {
                Some(members) => {
                    if !members.contains(&user) {
                        members.push(user);
                    }
                    (200, json!({ "room_id": room }))
                }
                None => error(404, "M_NOT_FOUND"),
            }
        }
        ("PUT", ["v3", "rooms", room, "send", kind, _txn]) => {
            let user = user.unwrap_or_default();
            if !state.rooms.get(*room).is_some_and(|m| m.contains(&user)) {
                return Reply::Now(403, json!({ "errcode": "M_FORBIDDEN" }));
            }
            state.counter += 1;
            let pos = state.counter;
            let event = json!({
                "event_id": format!("$e{pos}"), "type": kind, "sender": user, "content": body,
            });
            state.events.push((pos, room.to_string(), event));
            shared.new_event.notify_waiters();
            (200, json!({ "event_id": format!("$e{pos}") }))
        }
        ("GET", ["v3", "sync"]) => {
            return Reply::Sync {
                user: user.unwrap_or_default(),
                since: query.get("since").and_then(|s| s.parse().ok()),
                timeout: query
                    .get("timeout")
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0),
            };
        }
        _ => error(404, "M_UNRECOGNIZED"),
    };
    Reply::Now(status, answer)
}

fn new_session(state: &mut State, user_id: &str) -> (u16, Value) {
    state.counter += 1;
    let token = format!("tok{}", state.counter);
    state.tokens.insert(token.clone(), user_id.to_owned());
    (
        200,
        json!({ "user_id": user_id, "access_token": token, "device_id": format!("D{}", state.counter) }),
    )
}

fn register(state: &mut State, body: &Value) -> (u16, Value) {
    let flows: Value = serde_json::from_str(FLOWS).unwrap();
    let Some(auth) = body.get("auth") else {
        state.counter += 1;
        let session = format!("s{}", state.counter);
        state.sessions.insert(session.clone(), Vec::new());
        return (
            401,
            json!({ "flows": flows, "session": session, "params": {} }),
        );
    };
    let session = auth
        .get("session")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let Some(completed) = state.sessions.get_mut(&session) else {
        return error(400, "M_UNKNOWN_SESSION");
    };
    match auth.get("type").and_then(Value::as_str) {
        Some("m.login.registration_token") if auth["token"] == TOKEN => {
            completed.push("m.login.registration_token".to_owned());
            let done = completed.clone();
            (
                401,
                json!({ "flows": flows, "session": session, "completed": done }),
            )
        }
        Some("m.login.dummy") if completed.iter().any(|c| c == "m.login.registration_token") => {
            let name = body["username"].as_str().unwrap_or_default().to_owned();
            if state.passwords.contains_key(&name) {
                return error(400, "M_USER_IN_USE");
            }
            let password = body["password"].as_str().unwrap_or_default().to_owned();
            state.passwords.insert(name.clone(), password);
            new_session(state, &format!("@{name}:fake"))
        }
        _ => (
            401,
            json!({ "errcode": "M_UNAUTHORIZED", "flows": flows, "session": session }),
        ),
    }
}

/// The sync body and whether it has any timeline event.
fn sync_answer(state: &State, user: &str, since: Option<u64>) -> (Value, bool) {
    let mut join = serde_json::Map::new();
    let mut any = false;
    for (room, members) in &state.rooms {
        if !members.iter().any(|m| m == user) {
            continue;
        }
        let events: Vec<&Value> = state
            .events
            .iter()
            .filter(|(pos, r, _)| r == room && since.is_none_or(|s| *pos > s))
            .map(|(_, _, e)| e)
            .collect();
        let events = match since {
            None => events[events.len().saturating_sub(10)..].to_vec(),
            Some(_) if events.is_empty() => continue,
            Some(_) => events,
        };
        any |= !events.is_empty();
        join.insert(
            room.clone(),
            json!({ "timeline": { "events": events, "limited": false } }),
        );
    }
    let body = json!({ "next_batch": state.counter.to_string(), "rooms": { "join": join } });
    (body, any)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Knobs, RunOptions, run};

    fn small_knobs() -> Knobs {
        Knobs {
            send_concurrency: 3,
            send_duration_secs: 0.5,
            send_messages: None,
            sequential_sends: 20,
            wakeup_reps: 5,
            wakeup_delay_ms: 20,
            history_messages: 15,
            sync_reps: 3,
            sync_rooms: 5,
            sync_room_messages: 2,
            chat_senders: 2,
            chat_rate: 40.0,
            chat_duration_secs: 1.0,
            chat_grace_secs: 3.0,
            join_storm_users: 4,
            login_burst: 6,
            register_burst: 3,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_scenario_runs_against_the_fake_server() {
        let url = start().await;
        let opts = RunOptions {
            url,
            registration_token: Some(TOKEN.to_owned()),
            users: 6,
            rooms: 3,
            members_per_room: 3,
            quiet: true,
            seed: Some(1),
            pid: Some(std::process::id()),
            label: Some("fake".to_owned()),
            knobs: small_knobs(),
            ..Default::default()
        };
        let report = run(opts).await.expect("run");
        let json = report.to_json();
        assert!(!json.contains(TOKEN), "the token leaked into the report");
        println!("{}", report.summary_table());
        assert_eq!(report.server.server_header.as_deref(), Some("fake/1"));
        assert!(report.idle_rss_bytes.is_some());
        // /login answers 429 every third call: setup waits those out...
        assert!(report.setup.rate_limited > 0 || report.scenarios["login-burst"].errors > 0);
        for (name, s) in &report.scenarios {
            assert!(s.ops > 0, "{name}: no ops: {s:?}");
            assert!(s.latency_ms.is_some(), "{name}");
            assert!(
                s.cpu_percent.is_some() && s.peak_rss_bytes.is_some(),
                "{name}"
            );
            // ...and only the login burst sees them as errors.
            if name == "login-burst" {
                assert!(
                    s.error_kinds.keys().all(|k| k == "M_LIMIT_EXCEEDED"),
                    "{s:?}"
                );
            } else {
                assert_eq!(s.errors, 0, "{name}: {:?} {:?}", s.error_kinds, s.extra);
            }
        }
        assert_eq!(report.scenarios.len(), 9);
        assert_eq!(report.scenarios["sequential-send"].ops, 20);
        assert_eq!(report.scenarios["wakeup"].ops, 5);
        assert!(report.scenarios["wakeup"].delivery_ms.is_some());
        assert_eq!(report.scenarios["join-storm"].ops, 4);
        assert_eq!(report.scenarios["register-burst"].ops, 3);
        assert_eq!(report.scenarios["initial-sync-rooms"].ops, 3);
        let chat = &report.scenarios["steady-chat"];
        assert_eq!(chat.extra["deliveries"], chat.extra["expected_deliveries"]);
        assert!(chat.delivery_ms.is_some() && !chat.delivery_samples.is_empty());
        let svg = crate::render_svg(&report);
        assert!(svg.contains("steady-chat delivery"));
        let back = crate::Report::from_json(&json).unwrap();
        assert!(crate::compare(&report, &back).contains("≈ same"));
    }
}
