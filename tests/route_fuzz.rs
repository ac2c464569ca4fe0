//! A fuzzer over every route the router registers (`conclave::api::router::table`, so a new
//! route is covered the day it is added): hostile bodies, path segments, query strings and
//! access tokens. Every answer must be a success or a 4xx with a Matrix `errcode` — never a
//! 5xx, a dropped connection or a hang — and the server must still answer at the end.
//!
//! The fuzzer is logged in, a member of a room with messages, and holds an alias, a filter,
//! a key backup and an upload, so that the legal parts of each request reach the handler.
//! Requests that end its session or membership (logout, leave) are healed between routes.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use conclave::api::router::{Route, table};
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "fuzzer-password";
/// Requests in flight at once.
const PARALLEL: usize = 8;

/// What the fuzzer owns: legal values for every path parameter.
struct Fixture {
    fuzzer: Session,
    room_id: String,
    event_id: String,
    alias: String,
    filter_id: String,
    backup_version: String,
    media_id: String,
    txn: AtomicU64,
}

impl Fixture {
    /// A legal value for the path parameter `name`; `None` for a name the fuzzer does not
    /// know yet (the test then fails and names it).
    fn legal(&self, name: &str) -> Option<String> {
        Some(match name {
            "room_id" | "room_id_or_alias" | "room_identifier" => self.room_id.clone(),
            "room_alias" => self.alias.clone(),
            "user_id" => self.fuzzer.user_id.clone(),
            "event_id" => self.event_id.clone(),
            "event_type" => "org.example.fuzz".to_owned(),
            "state_key" => String::new(),
            "txn_id" => format!("fuzz{}", self.txn.fetch_add(1, Ordering::Relaxed)),
            "device_id" => self.fuzzer.device_id.clone(),
            "filter_id" => self.filter_id.clone(),
            "tag" => "u.fuzz".to_owned(),
            "scope" => "global".to_owned(),
            "kind" => "override".to_owned(),
            "rule_id" => "org.example.fuzz".to_owned(),
            "rel_type" => "m.thread".to_owned(),
            "event_type_rel" => "m.room.message".to_owned(),
            "version" => self.backup_version.clone(),
            "session_id" => "fuzzsession".to_owned(),
            "server" | "server_name" => "localhost".to_owned(),
            "media_id" => self.media_id.clone(),
            "filename" => "fuzz.txt".to_owned(),
            "receipt_type" => "m.read".to_owned(),
            "thread_id" => "main".to_owned(),
            "algorithm" => "signed_curve25519".to_owned(),
            "type" => "org.example.fuzz".to_owned(),
            "key" => "org.example.fuzz".to_owned(),
            "field" => "displayname".to_owned(),
            "medium" => "email".to_owned(),
            "protocol" => "irc".to_owned(),
            "appservice_id" => "fuzz-bridge".to_owned(),
            "network_id" => "fuzz-net".to_owned(),
            "loginToken" | "token" => "fuzztoken".to_owned(),
            "report_id" => "1".to_owned(),
            "delete_id" => "fuzzdelete".to_owned(),
            _ => return None,
        })
    }
}

/// Path segments no handler should choke on (already percent-encoded as sent).
const HOSTILE_SEGMENTS: &[&str] = &[
    "..%2F..%2Fetc%2Fpasswd",
    "..",
    "%ZZ",
    "%FF%FE",
    "%00",
    "%2F",
    "-1",
    "18446744073709551616",
    "!x:y",
    "@%00:localhost",
];

/// Query values given to every parameter a Matrix endpoint commonly takes.
const QUERY_KEYS: &[&str] = &[
    "limit",
    "from",
    "to",
    "since",
    "dir",
    "filter",
    "full_state",
    "set_presence",
    "via",
    "server_name",
    "ts",
    "width",
    "height",
    "method",
    "animated",
    "allow_remote",
    "allow_redirect",
    "version",
    "username",
    "token",
    "url",
    "kind",
    "membership",
    "not_membership",
    "at",
    "recurse",
    "max_depth",
    "suggested_only",
    "include",
    "next_batch",
    "event_types",
    "user_id",
];
const HOSTILE_QUERY_VALUES: &[&str] = &[
    "-1",
    "18446744073709551616",
    "9007199254740993",
    "1e999",
    "%ZZ",
    "%FF",
    "garbage",
    "",
    "%7B%22",
];

/// Field names of the client-server API's request bodies; each is sent with values of the
/// wrong type (or right type, wrong shape) on every endpoint.
const FIELDS: &[&str] = &[
    "type",
    "identifier",
    "user",
    "medium",
    "address",
    "password",
    "token",
    "device_id",
    "initial_device_display_name",
    "refresh_token",
    "auth",
    "session",
    "username",
    "inhibit_login",
    "kind",
    "new_password",
    "logout_devices",
    "display_name",
    "displayname",
    "avatar_url",
    "reason",
    "user_id",
    "room_id",
    "room_alias_name",
    "name",
    "topic",
    "invite",
    "invite_3pid",
    "preset",
    "visibility",
    "creation_content",
    "initial_state",
    "power_level_content_override",
    "is_direct",
    "room_version",
    "new_version",
    "body",
    "msgtype",
    "format",
    "formatted_body",
    "m.relates_to",
    "m.new_content",
    "content",
    "membership",
    "third_party_signed",
    "via",
    "server",
    "filter",
    "limit",
    "since",
    "timeout",
    "lists",
    "room_subscriptions",
    "extensions",
    "conn_id",
    "pos",
    "txn_id",
    "typing",
    "presence",
    "status_msg",
    "m.fully_read",
    "m.read",
    "m.read.private",
    "thread_id",
    "search_categories",
    "search_term",
    "one_time_keys",
    "fallback_keys",
    "device_keys",
    "master_key",
    "self_signing_key",
    "user_signing_key",
    "algorithm",
    "auth_data",
    "version",
    "rooms",
    "sessions",
    "messages",
    "devices",
    "event_id",
    "order",
    "actions",
    "enabled",
    "conditions",
    "pattern",
    "include_all_networks",
    "third_party_instance_id",
    "generic_search_term",
    "event_fields",
    "event_format",
    "account_data",
    "room",
    "state",
    "timeline",
    "room_id_or_alias",
    "ts",
    "url",
];

/// The values each field is tried with.
fn wrong_values() -> Vec<Value> {
    vec![
        json!(-1),
        // Legal JSON, past what Matrix allows (2^53 - 1): overflows durations and counters.
        json!(u64::MAX),
        json!("x"),
        json!([1, "x", null]),
        json!({ "type": 1, "x": [] }),
    ]
}

/// Whole bodies no endpoint should choke on.
fn hostile_bodies() -> Vec<Vec<u8>> {
    let deep = format!("{{\"x\":{}{}}}", "[".repeat(2000), "]".repeat(2000));
    let deep_objects = format!("{}1{}", "{\"a\":".repeat(2000), "}".repeat(2000));
    let long = format!("{{\"body\":\"{}\",\"name\":\"x\"}}", "a".repeat(2 << 20));
    vec![
        Vec::new(),
        b"{".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        b"\"str\"".to_vec(),
        b"12".to_vec(),
        b"1e999".to_vec(),
        b"{}".to_vec(),
        b"{} {}".to_vec(),
        deep.into_bytes(),
        deep_objects.into_bytes(),
        b"{\"body\": \"\xff\xfe\"}".to_vec(),
        b"\xff\xfe\x00".to_vec(),
        br#"{"\u0000": "\ud800"}"#.to_vec(),
        br#"{"\u0000": "x", "body\u0000": 1}"#.to_vec(),
        long.into_bytes(),
    ]
}

/// Where Synapse reads no body as `{}` (its `allow_empty_body`, and its fallback for clients
/// that delete devices without one): membership changes, as matrix-nio sends them, and device
/// deletion. Listed here rather than read from the server, so that the test holds the rule.
fn empty_body_is_object(route: &Route) -> bool {
    let path = route.path.as_str();
    if path == "/_synapse/admin/v1/users/{user_id}/login" {
        return route.method == Method::POST;
    }
    if !path.starts_with("/_matrix/client/") {
        return false;
    }
    let membership = ["join", "leave", "invite", "kick", "ban", "unban"]
        .iter()
        .any(|action| path.ends_with(&format!("/rooms/{{room_id}}/{action}")));
    match route.method {
        Method::POST => {
            membership
                || path.ends_with("/join/{room_id_or_alias}")
                || path.ends_with("/delete_devices")
        }
        Method::DELETE => path.ends_with("/devices/{device_id}"),
        _ => false,
    }
}

/// One request the fuzzer sends.
struct Probe {
    method: Method,
    path: String,
    auth: Auth,
    body: Option<Vec<u8>>,
    /// The route reads no body as `{}`: an empty one must not be refused as not JSON.
    empty_is_object: bool,
}

#[derive(Clone)]
enum Auth {
    /// The fuzzer's current access token.
    Fuzzer,
    /// A raw `Authorization` header value.
    Header(Vec<u8>),
    None,
}

/// A route whose answer broke the rule.
#[derive(Debug)]
struct Violation {
    method: Method,
    path: String,
    body: String,
    outcome: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_survives_hostile_input() {
    let ts = TestServer::start_open().await;
    let mut fixture = fixture(&ts).await;
    let routes = table();
    assert!(
        routes.len() > 100,
        "the router lists only {} routes",
        routes.len()
    );

    // Membership (join twice, leave, invite, kick, ban, unban; v3 and r0), device deletion
    // (two), log in as a user: the list above must still match the router's paths.
    let empty_is_object = routes
        .iter()
        .filter(|route| empty_body_is_object(route))
        .count();
    assert!(
        empty_is_object >= 10,
        "only {empty_is_object} routes read an empty body as {{}}: did their paths change?"
    );

    // Every path parameter must have a legal value, so the rest of each request is reached.
    let unknown: BTreeSet<String> = routes
        .iter()
        .flat_map(|route| params(&route.path))
        .filter(|name| fixture.legal(name).is_none())
        .collect();
    assert!(
        unknown.is_empty(),
        "give the fuzzer a legal value for these path parameters: {unknown:?}"
    );

    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut violations = Vec::new();
    let mut fielded = BTreeSet::new();
    let mut sent = 0usize;
    for route in &routes {
        let probes = probes(&fixture, route, fielded.insert(shape_of(route)));
        sent += probes.len();
        let token = fixture.fuzzer.access_token.clone();
        let found: Vec<Option<Violation>> = futures_util::stream::iter(probes)
            .map(|probe| send(&client, &ts, &token, probe))
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        violations.extend(found.into_iter().flatten());
        heal(&ts, &mut fixture).await;
    }
    eprintln!("route fuzzer: {} routes, {sent} requests", routes.len());

    let shown: Vec<String> = violations
        .iter()
        .take(40)
        .map(|v| format!("{} {} [{}]: {}", v.method, v.path, v.body, v.outcome))
        .collect();
    assert!(
        violations.is_empty(),
        "{} answers broke the rule (first {}):\n{}",
        violations.len(),
        shown.len(),
        shown.join("\n")
    );
    // Still serving, and the fuzzer's data is intact.
    expect_ok(ts.get("/_matrix/client/versions", None).await);
    let event = ts
        .get(
            &room_path(
                &fixture.room_id,
                &format!("/event/{}", enc(&fixture.event_id)),
            ),
            fixture.fuzzer.bearer(),
        )
        .await;
    // (It may have been redacted: that is a legal request.)
    assert_eq!(expect_ok(event)["event_id"], fixture.event_id.as_str());
    ts.shutdown().await;
}

/// Sets up the fuzzer's account and what its requests refer to.
async fn fixture(ts: &TestServer) -> Fixture {
    // The first account is a server administrator; the fuzzer is not, so the admin API's
    // legal-looking bodies cannot deactivate it or change its password mid-run.
    ts.register_open("first-admin", "first-admin-password")
        .await;
    let fuzzer = ts.register_open("fuzzer", PASSWORD).await;
    // Another member keeps the room alive whatever the fuzzer does to its own membership.
    let keeper = ts.register_open("keeper", "keeper-password").await;
    let room_id = create_room(
        ts,
        &fuzzer,
        json!({ "preset": "public_chat", "room_alias_name": "fuzz", "name": "Fuzz" }),
    )
    .await;
    expect_ok(
        ts.post(
            &format!("/_matrix/client/v3/join/{}", enc(&room_id)),
            keeper.bearer(),
            &json!({}),
        )
        .await,
    );
    let event_id = send_text_id(ts, &fuzzer, &room_id, "t0", "fuzz target").await;
    let filter = expect_ok(
        ts.post(
            &format!("/_matrix/client/v3/user/{}/filter", enc(&fuzzer.user_id)),
            fuzzer.bearer(),
            &json!({ "room": { "timeline": { "limit": 5 } } }),
        )
        .await,
    );
    let backup = expect_ok(
        ts.post(
            "/_matrix/client/v3/room_keys/version",
            fuzzer.bearer(),
            &json!({
                "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2",
                "auth_data": { "public_key": "abcdefg", "signatures": {} },
            }),
        )
        .await,
    );
    let upload = expect_ok(
        ts.request_raw(
            Method::POST,
            "/_matrix/media/v3/upload?filename=fuzz.txt",
            fuzzer.bearer(),
            "text/plain",
            "fuzz",
        )
        .await,
    );
    let media_id = upload["content_uri"]
        .as_str()
        .and_then(|uri| uri.rsplit('/').next())
        .expect("content_uri")
        .to_owned();
    Fixture {
        fuzzer,
        room_id,
        event_id,
        alias: "#fuzz:localhost".to_owned(),
        filter_id: filter["filter_id"].as_str().expect("filter_id").to_owned(),
        backup_version: backup["version"].as_str().expect("version").to_owned(),
        media_id,
        txn: AtomicU64::new(1),
    }
}

/// The names of a route template's parameters, in order.
fn params(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| name.trim_start_matches('*').to_owned())
        .collect()
}

/// The route with its version prefix dropped: `/r0/…` and `/v3/…` reach one handler, which
/// needs the per-field bodies only once.
fn shape_of(route: &Route) -> (String, String) {
    let path = route
        .path
        .split('/')
        .filter(|s| !matches!(*s, "r0" | "v1" | "v3" | "unstable") && !s.starts_with("org."))
        .collect::<Vec<_>>()
        .join("/");
    (route.method.to_string(), path)
}

/// Fills `template`'s parameters, the one at `hostile` (if any) with `value`.
fn fill(fixture: &Fixture, template: &str, hostile: Option<(usize, &str)>) -> String {
    let mut index = 0;
    template
        .split('/')
        .map(|segment| {
            let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
                return segment.to_owned();
            };
            let at = index;
            index += 1;
            match hostile {
                Some((i, value)) if i == at => value.to_owned(),
                _ => enc(&fixture.legal(name).unwrap_or_default()),
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every request the fuzzer sends to `route`.
fn probes(fixture: &Fixture, route: &Route, with_fields: bool) -> Vec<Probe> {
    let method = route.method.clone();
    let takes_body = method != Method::GET && method != Method::HEAD;
    let legal_path = fill(fixture, &route.path, None);
    let probe = |path: String, auth: Auth, body: Option<Vec<u8>>| Probe {
        method: method.clone(),
        path,
        auth,
        body,
        empty_is_object: empty_body_is_object(route),
    };
    let mut out = Vec::new();

    // Hostile bodies, with the fuzzer's token and without one.
    for body in hostile_bodies() {
        if !takes_body && body.len() > 1 << 20 {
            continue;
        }
        out.push(probe(legal_path.clone(), Auth::Fuzzer, Some(body.clone())));
        if body.len() < 4096 {
            out.push(probe(legal_path.clone(), Auth::None, Some(body)));
        }
    }
    // Wrong types for every known field.
    if with_fields && takes_body {
        for field in FIELDS {
            for value in wrong_values() {
                let body = serde_json::to_vec(&json!({ *field: value })).unwrap();
                out.push(probe(legal_path.clone(), Auth::Fuzzer, Some(body)));
            }
        }
    }
    // Hostile path segments, one parameter at a time.
    let count = params(&route.path).len();
    for position in 0..count {
        for value in HOSTILE_SEGMENTS {
            let path = fill(fixture, &route.path, Some((position, value)));
            out.push(probe(
                path,
                Auth::Fuzzer,
                takes_body.then(|| b"{}".to_vec()),
            ));
        }
        let long = "a".repeat(4000);
        let path = fill(fixture, &route.path, Some((position, &long)));
        out.push(probe(
            path,
            Auth::Fuzzer,
            takes_body.then(|| b"{}".to_vec()),
        ));
    }
    // Hostile query strings. A long-poll never waits: its timeout is hostile or zero.
    for value in HOSTILE_QUERY_VALUES {
        let timeout_value = if value.parse::<u64>().is_ok() {
            "0"
        } else {
            value
        };
        let query: Vec<String> = QUERY_KEYS
            .iter()
            .map(|key| format!("{key}={value}"))
            .chain(["timeout", "timeout_ms"].map(|key| format!("{key}={timeout_value}")))
            .collect();
        let path = format!("{legal_path}?{}", query.join("&"));
        out.push(probe(
            path,
            Auth::Fuzzer,
            takes_body.then(|| b"{}".to_vec()),
        ));
    }
    // Garbage credentials.
    let garbage: [&[u8]; 5] = [
        b"Bearer garbage",
        b"Bearer \xff\xfe",
        b"Basic Zm9vOmJhcg==",
        b"Bearer",
        b"Bearer x x x",
    ];
    for header in garbage {
        out.push(probe(
            legal_path.clone(),
            Auth::Header(header.to_vec()),
            takes_body.then(|| b"{}".to_vec()),
        ));
    }
    let long_token = format!("Bearer {}", "x".repeat(8000)).into_bytes();
    out.push(probe(legal_path.clone(), Auth::Header(long_token), None));
    for query in ["access_token=%ZZ", "access_token=", "access_token=%FF"] {
        let separator = if legal_path.contains('?') { '&' } else { '?' };
        out.push(probe(
            format!("{legal_path}{separator}{query}"),
            Auth::None,
            None,
        ));
    }
    out
}

/// Sends one probe; `Some` when the answer broke the rule.
async fn send(
    client: &reqwest::Client,
    ts: &TestServer,
    token: &str,
    probe: Probe,
) -> Option<Violation> {
    let mut request = client.request(probe.method.clone(), ts.url(&probe.path));
    match &probe.auth {
        Auth::Fuzzer => request = request.bearer_auth(token),
        Auth::Header(value) => {
            let value = reqwest::header::HeaderValue::from_bytes(value).unwrap();
            request = request.header(reqwest::header::AUTHORIZATION, value);
        }
        Auth::None => {}
    }
    let empty_body_read_as_object =
        probe.empty_is_object && probe.body.as_ref().is_some_and(Vec::is_empty);
    let shown_body = probe
        .body
        .as_deref()
        .map_or(String::from("no body"), |body| {
            let text = String::from_utf8_lossy(body);
            text.chars().take(60).collect()
        });
    if let Some(body) = probe.body {
        request = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
    }
    let violation = |outcome: String| {
        Some(Violation {
            method: probe.method.clone(),
            path: probe.path.chars().take(160).collect(),
            body: shown_body.clone(),
            outcome,
        })
    };
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => return violation(format!("no answer: {error:?}")),
    };
    let status = response.status();
    let bytes = match response.bytes().await {
        Ok(bytes) => bytes,
        Err(error) => return violation(format!("{status}, body cut off: {error}")),
    };
    if status.is_server_error() {
        return violation(format!("{status}: {}", String::from_utf8_lossy(&bytes)));
    }
    if status.is_client_error() {
        let body = serde_json::from_slice::<Value>(&bytes).unwrap_or_default();
        // A user-interactive authentication challenge carries `flows`, not an error.
        let uia = status == StatusCode::UNAUTHORIZED && body["flows"].is_array();
        if !body["errcode"].is_string() && !uia {
            return violation(format!(
                "{status} without a Matrix error: {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
        // As Synapse, and as matrix-nio relies on: an empty body here is `{}`, which is JSON.
        if empty_body_read_as_object && body["errcode"] == "M_NOT_JSON" {
            return violation(format!("an empty body must read as {{}} here: {body}"));
        }
    } else if !status.is_success() && status != StatusCode::TEMPORARY_REDIRECT {
        return violation(format!("unexpected {status}"));
    }
    None
}

/// Restores what a route's probes may have undone: the fuzzer's session and membership.
async fn heal(ts: &TestServer, fixture: &mut Fixture) {
    if ts.whoami(&fixture.fuzzer.access_token).await.0 != StatusCode::OK {
        fixture.fuzzer = ts.login("fuzzer", PASSWORD).await;
    }
    let joined = ts
        .get("/_matrix/client/v3/joined_rooms", fixture.fuzzer.bearer())
        .await;
    if !joined.1["joined_rooms"]
        .as_array()
        .is_some_and(|rooms| rooms.iter().any(|r| r == fixture.room_id.as_str()))
    {
        expect_ok(
            ts.post(
                &format!("/_matrix/client/v3/join/{}", enc(&fixture.room_id)),
                fixture.fuzzer.bearer(),
                &json!({}),
            )
            .await,
        );
    }
}
