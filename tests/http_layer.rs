//! The HTTP layer: discovery endpoints, CORS, routing errors, body parsing and
//! limits, and access-token extraction.

mod common;

use common::*;
use reqwest::{Method, StatusCode, header};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_lists_spec_versions() {
    let ts = TestServer::start().await;
    let body = expect_ok(ts.get("/_matrix/client/versions", None).await);
    let versions = body["versions"]
        .as_array()
        .unwrap_or_else(|| panic!("`versions` missing: {body}"));
    assert!(
        versions.iter().all(|v| v.is_string()),
        "versions must be strings: {body}"
    );
    assert!(
        versions
            .iter()
            .any(|v| v.as_str().is_some_and(|v| v.starts_with("v1."))),
        "at least one v1.x version expected: {body}"
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn well_known_client_and_server() {
    let ts = TestServer::start().await;
    // Both are only announced when configured: a guessed answer would misdirect clients
    // behind a reverse proxy, and federating servers.
    let resp = ts.get("/.well-known/matrix/client", None).await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let resp = ts.get("/.well-known/matrix/server", None).await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let resp = ts.get("/.well-known/matrix/support", None).await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    ts.shutdown().await;

    let ts = TestServer::start_with(|cfg| {
        cfg.well_known.client = Some("https://matrix.example.com".into());
        cfg.well_known.server = Some("matrix.example.com:443".into());
        cfg.well_known.support_contacts = vec![
            conclave::config::SupportContact {
                role: "m.role.admin".into(),
                matrix_id: Some("@it:localhost".try_into().unwrap()),
                email_address: Some("it@example.com".into()),
            },
            conclave::config::SupportContact {
                role: "m.role.security".into(),
                matrix_id: None,
                email_address: Some("security@example.com".into()),
            },
        ];
        cfg.well_known.support_page = Some("https://intranet.example.com/chat-help".into());
    })
    .await;
    // Who to contact, as Element shows it when something goes wrong.
    let support = expect_ok(ts.get("/.well-known/matrix/support", None).await);
    assert_eq!(
        support,
        serde_json::json!({
            "contacts": [
                { "role": "m.role.admin", "matrix_id": "@it:localhost",
                  "email_address": "it@example.com" },
                { "role": "m.role.security", "email_address": "security@example.com" },
            ],
            "support_page": "https://intranet.example.com/chat-help",
        })
    );
    let client = expect_ok(ts.get("/.well-known/matrix/client", None).await);
    assert_eq!(
        client["m.homeserver"]["base_url"],
        "https://matrix.example.com"
    );
    let server = expect_ok(ts.get("/.well-known/matrix/server", None).await);
    assert_eq!(server["m.server"], "matrix.example.com:443");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_advertise_change_password() {
    let ts = TestServer::start().await;
    let admin = ts.register_first_admin("admin", "admin-password").await;

    let resp = ts.get("/_matrix/client/v3/capabilities", None).await;
    assert_errcode(&resp, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");

    let body = expect_ok(
        ts.get("/_matrix/client/v3/capabilities", admin.bearer())
            .await,
    );
    let caps = &body["capabilities"];
    assert!(caps.is_object(), "`capabilities` object expected: {body}");
    assert_eq!(
        caps["m.change_password"]["enabled"],
        json!(true),
        "password changes are supported: {body}"
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_and_simple_requests() {
    let ts = TestServer::start().await;

    let preflight = ts
        .client()
        .request(Method::OPTIONS, ts.url("/_matrix/client/v3/login"))
        .header(header::ORIGIN, "https://app.example.org")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization, content-type",
        )
        .send()
        .await
        .expect("OPTIONS request");
    assert!(
        preflight.status().is_success(),
        "preflight should succeed, got {}",
        preflight.status()
    );
    let allow_origin = preflight
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .expect("preflight must carry Access-Control-Allow-Origin");
    assert_eq!(allow_origin, "*");
    let allow_methods = preflight
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_METHODS)
        .expect("preflight must carry Access-Control-Allow-Methods")
        .to_str()
        .unwrap()
        .to_ascii_uppercase();
    for method in ["GET", "POST", "PUT", "DELETE"] {
        assert!(
            allow_methods == "*" || allow_methods.contains(method),
            "{method} missing from {allow_methods}"
        );
    }
    // Browsers never let a `*` wildcard cover `Authorization`, so it must be named.
    let allow_headers = preflight
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_HEADERS)
        .expect("preflight must carry Access-Control-Allow-Headers")
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for name in ["authorization", "content-type"] {
        assert!(
            allow_headers.contains(name) || (name == "content-type" && allow_headers.contains('*')),
            "{name} missing from {allow_headers}"
        );
    }

    let simple = ts
        .client()
        .get(ts.url("/_matrix/client/versions"))
        .header(header::ORIGIN, "https://app.example.org")
        .send()
        .await
        .expect("GET request");
    assert_eq!(simple.status(), StatusCode::OK);
    assert_eq!(
        simple
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .expect("simple CORS request must carry Access-Control-Allow-Origin"),
        "*"
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_endpoint_is_unrecognized_404() {
    let ts = TestServer::start().await;
    let resp = ts.get("/_matrix/client/v3/no_such_endpoint", None).await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_UNRECOGNIZED");
    let resp = ts
        .post("/_matrix/client/v3/no/such/thing", None, &json!({}))
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_UNRECOGNIZED");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_endpoint_with_wrong_method_is_unrecognized_405() {
    let ts = TestServer::start().await;
    let resp = ts.delete("/_matrix/client/versions", None).await;
    assert_errcode(&resp, StatusCode::METHOD_NOT_ALLOWED, "M_UNRECOGNIZED");
    let resp = ts.get("/_matrix/client/v3/logout", None).await;
    assert_errcode(&resp, StatusCode::METHOD_NOT_ALLOWED, "M_UNRECOGNIZED");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_not_json() {
    let ts = TestServer::start().await;
    let admin = ts.register_first_admin("admin", "admin-password").await;

    let resp = ts
        .request_raw(
            Method::POST,
            LOGIN,
            None,
            "application/json",
            r#"{"type": "m.login.password", "#,
        )
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_NOT_JSON");

    let path = format!(
        "/_matrix/client/v3/user/{}/account_data/org.example.settings",
        enc(&admin.user_id)
    );
    let resp = ts
        .request_raw(
            Method::PUT,
            &path,
            admin.bearer(),
            "application/json",
            "not json at all",
        )
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_NOT_JSON");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrongly_shaped_json_is_bad_json() {
    let ts = TestServer::start().await;
    let admin = ts.register_first_admin("admin", "admin-password").await;

    let resp = ts.post(LOGIN, None, &json!([1, 2, 3])).await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_BAD_JSON");

    let path = format!("{DEVICES}/{}", enc(&admin.device_id));
    let resp = ts
        .put(&path, admin.bearer(), &json!({ "display_name": 42 }))
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    // The error names the field, nested ones by their path.
    assert!(
        resp.1["error"].as_str().unwrap().contains("`display_name`"),
        "{}",
        resp.1
    );
    let resp = ts
        .post(
            "/_matrix/client/v3/createRoom",
            admin.bearer(),
            &json!({ "name": "ok", "invite": ["@someone:localhost", 7] }),
        )
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    assert!(
        resp.1["error"].as_str().unwrap().contains("`invite[1]`"),
        "{}",
        resp.1
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_is_too_large() {
    let ts = TestServer::start_with(|cfg| cfg.max_request_size = 4096).await;
    // Small requests still work under the limit.
    let admin = ts.register_first_admin("admin", "admin-password").await;

    let padding = "x".repeat(10 * 1024);
    let body = json!({
        "type": "m.login.password",
        "identifier": { "type": "m.id.user", "user": "admin" },
        "password": padding,
    });
    let resp = ts
        .request_raw(
            Method::POST,
            LOGIN,
            None,
            "application/json",
            body.to_string(),
        )
        .await;
    assert_errcode(&resp, StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");

    let path = format!(
        "/_matrix/client/v3/user/{}/account_data/org.example.big",
        enc(&admin.user_id)
    );
    let resp = ts
        .put(&path, admin.bearer(), &json!({ "blob": padding }))
        .await;
    assert_errcode(&resp, StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");
    let resp = ts.get(&path, admin.bearer()).await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_token_is_missing_token() {
    let ts = TestServer::start().await;
    let resp = ts.get(WHOAMI, None).await;
    assert_errcode(&resp, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
    let resp = ts.get(DEVICES, None).await;
    assert_errcode(&resp, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_token_is_unknown_token_without_soft_logout() {
    let ts = TestServer::start().await;
    ts.register_first_admin("admin", "admin-password").await;
    let bogus = "a".repeat(64);
    let resp = ts.get(WHOAMI, Some(bogus.as_str())).await;
    assert_errcode(&resp, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    assert_eq!(
        resp.1["soft_logout"],
        json!(false),
        "soft_logout must be present and false: {}",
        resp.1
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_token_query_parameter_is_accepted() {
    let ts = TestServer::start().await;
    let admin = ts.register_first_admin("admin", "admin-password").await;
    let path = format!("{WHOAMI}?access_token={}", enc(&admin.access_token));
    let body = expect_ok(ts.get(&path, None).await);
    assert_eq!(body["user_id"], json!(admin.user_id));
    assert_eq!(body["device_id"], json!(admin.device_id));

    let path = format!("{WHOAMI}?access_token={}", "b".repeat(50));
    let resp = ts.get(&path, None).await;
    assert_errcode(&resp, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_bodies_are_matrix_json() {
    let ts = TestServer::start().await;
    let resp = ts
        .client()
        .get(ts.url("/_matrix/client/v3/no_such_endpoint"))
        .send()
        .await
        .expect("request");
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .expect("error responses carry a content type")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "unexpected content type {content_type}"
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_path_parameter_is_invalid_param() {
    let ts = TestServer::start().await;
    // %FF is not UTF-8 once decoded.
    let resp = ts.get("/_matrix/client/v3/profile/%FF", None).await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    // A well-formed but invalid user ID is rejected the same way.
    let resp = ts
        .get("/_matrix/client/v3/profile/not-a-user-id", None)
        .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    ts.shutdown().await;
}

/// Sends `body` as raw bytes (no body at all when empty) with a JSON content type.
async fn raw(
    ts: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> Resp {
    ts.request_raw(method, path, token, "application/json", body.to_vec())
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_endpoints_read_no_body_as_an_empty_object() {
    // matrix-nio joins (`POST /join/{room}`) and leaves without a body; Synapse reads that as
    // `{}` on its membership endpoints.
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let room = create_room(&ts, &alice, json!({ "preset": "public_chat" })).await;
    let members = room_path(&room, "/joined_members");

    let resp = raw(
        &ts,
        Method::POST,
        &format!("/_matrix/client/v3/join/{}", enc(&room)),
        bob.bearer(),
        b"",
    )
    .await;
    assert_eq!(expect_ok(resp)["room_id"], room.as_str());
    expect_ok(ts.get(&members, bob.bearer()).await);
    let resp = raw(
        &ts,
        Method::POST,
        &room_path(&room, "/leave"),
        bob.bearer(),
        b"",
    )
    .await;
    expect_ok(resp);
    let resp = raw(
        &ts,
        Method::POST,
        &room_path(&room, "/join"),
        bob.bearer(),
        b"",
    )
    .await;
    expect_ok(resp);
    expect_ok(ts.get(&members, bob.bearer()).await);
    // `{}` is the body: invite still needs its `user_id`.
    let resp = raw(
        &ts,
        Method::POST,
        &room_path(&room, "/invite"),
        alice.bearer(),
        b"",
    )
    .await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    // Deleting a device without a body asks for authentication, as for `{}`.
    let path = format!("{DEVICES}/{}", enc(&bob.device_id));
    let resp = raw(&ts, Method::DELETE, &path, bob.bearer(), b"").await;
    assert_eq!(resp.0, StatusCode::UNAUTHORIZED, "{}", resp.1);
    assert!(resp.1["flows"].is_array(), "{}", resp.1);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_that_take_a_body_need_a_json_object() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let room = create_room(&ts, &alice, json!({})).await;
    let create = "/_matrix/client/v3/createRoom";
    let send = room_path(&room, "/send/m.room.message/t1");
    let account_data = format!(
        "/_matrix/client/v3/user/{}/account_data/org.example.x",
        enc(&alice.user_id)
    );
    for (method, path) in [
        (Method::POST, create),
        (Method::PUT, send.as_str()),
        (Method::PUT, account_data.as_str()),
    ] {
        // As Synapse: nothing or not JSON is M_NOT_JSON; JSON that is not an object M_BAD_JSON.
        for body in [&b""[..], b"   ", b"{", b"{}{}", b"\xff"] {
            let resp = raw(&ts, method.clone(), path, alice.bearer(), body).await;
            assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_NOT_JSON");
        }
        for body in [&b"[]"[..], b"null", b"\"str\"", b"12", b"true"] {
            let resp = raw(&ts, method.clone(), path, alice.bearer(), body).await;
            assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_BAD_JSON");
        }
    }
    // None of them did anything: alice is in the one room she made, nothing was sent.
    let rooms = expect_ok(
        ts.get("/_matrix/client/v3/joined_rooms", alice.bearer())
            .await,
    );
    assert_eq!(rooms["joined_rooms"], json!([room]));
    let resp = ts.get(&account_data, alice.bearer()).await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_without_a_body_ignore_what_is_sent() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let room = create_room(&ts, &alice, json!({})).await;
    expect_ok(
        ts.post(&room_path(&room, "/leave"), alice.bearer(), &json!({}))
            .await,
    );
    let resp = raw(
        &ts,
        Method::POST,
        &room_path(&room, "/forget"),
        alice.bearer(),
        b"garbage{",
    )
    .await;
    expect_ok(resp);
    let second = ts.login("alice", "alice-password").await;
    let resp = raw(
        &ts,
        Method::POST,
        "/_matrix/client/v3/logout",
        second.bearer(),
        b"[1, 2",
    )
    .await;
    expect_ok(resp);
    ts.assert_token_rejected(&second.access_token).await;
    ts.assert_token_valid(&alice.access_token).await;
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_without_a_type_is_an_error_not_a_dropped_connection() {
    // ruma's login parser indexes `type` without checking: this used to panic and drop the
    // connection.
    let ts = TestServer::start().await;
    ts.register_first_admin("admin", "admin-password").await;
    let resp = raw(&ts, Method::POST, LOGIN, None, b"").await;
    assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_NOT_JSON");
    for body in [
        json!({}),
        json!({ "type": 1 }),
        json!({ "identifier": {}, "password": "x" }),
    ] {
        let resp = ts.post(LOGIN, None, &body).await;
        assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_BAD_JSON");
        assert!(
            resp.1["error"].as_str().unwrap().contains("`type`"),
            "{}",
            resp.1
        );
    }
    // The server is still there, and logs in a well-formed request.
    ts.login("admin", "admin-password").await;
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_that_only_looks_well_formed_is_not_json() {
    // ruma skips unknown fields without decoding them; these used to reach /register's
    // handler (which answered with its UIA flows) and could be stored inside event content.
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let room = create_room(&ts, &alice, json!({})).await;
    let deep = format!("{{\"x\":{}{}}}", "[".repeat(2000), "]".repeat(2000));
    let bad: [&[u8]; 4] = [
        deep.as_bytes(),
        br#"{"\u0000": "\ud800"}"#,
        br#"{"username": "x", "x": "\udfff"}"#,
        b"{\"x\": \"\xc3\x28\"}",
    ];
    for body in bad {
        let resp = raw(&ts, Method::POST, REGISTER, None, body).await;
        assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_NOT_JSON");
        let path = room_path(&room, &format!("/send/m.room.message/{}", body.len()));
        let resp = raw(&ts, Method::PUT, &path, alice.bearer(), body).await;
        assert_errcode(&resp, StatusCode::BAD_REQUEST, "M_NOT_JSON");
    }
    let messages = expect_ok(
        ts.get(
            &room_path(&room, "/messages?dir=b&limit=50"),
            alice.bearer(),
        )
        .await,
    );
    let sent = messages["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .count();
    assert_eq!(sent, 0, "{messages}");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_panic_is_answered_with_a_matrix_error() {
    // The server's own layers around a route that panics, served over real HTTP.
    let app = conclave::api::router::layers(axum::Router::new().route(
        "/panic",
        axum::routing::get(|| async {
            if true {
                panic!("deliberate test panic");
            }
            "unreachable"
        }),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for _ in 0..2 {
        let resp = client
            .get(format!("http://{addr}/panic"))
            .send()
            .await
            .expect("the panic must be answered, not the connection dropped");
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body: serde_json::Value = resp.json().await.expect("a JSON body");
        assert_eq!(body["errcode"], "M_UNKNOWN", "{body}");
        assert!(body["error"].is_string(), "{body}");
    }
    server.abort();
}
