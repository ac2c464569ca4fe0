//! The media repository over HTTP: uploads and downloads, thumbnails, limits, authenticated
//! and legacy endpoints, asynchronous uploads, quarantine and URL previews.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const UPLOAD: &str = "/_matrix/media/v3/upload";

async fn upload(
    ts: &TestServer,
    who: &Session,
    content_type: &str,
    bytes: Vec<u8>,
    name: &str,
) -> String {
    let resp = ts
        .request_raw(
            reqwest::Method::POST,
            &format!("{UPLOAD}?filename={name}"),
            who.bearer(),
            content_type,
            bytes,
        )
        .await;
    let body = expect_ok(resp);
    body["content_uri"]
        .as_str()
        .expect("content_uri")
        .to_owned()
}

/// `mxc://server/id` → (server, id).
fn parts(mxc: &str) -> (String, String) {
    let rest = mxc.strip_prefix("mxc://").expect("an mxc URI");
    let (server, id) = rest.split_once('/').expect("server/id");
    (server.to_owned(), id.to_owned())
}

async fn get_raw(ts: &TestServer, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = ts.client().get(ts.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("HTTP request failed")
}

fn download_path(mxc: &str) -> String {
    let (server, id) = parts(mxc);
    format!("/_matrix/client/v1/media/download/{server}/{id}")
}

fn pseudo_random_bytes(n: usize) -> Vec<u8> {
    let mut state: u32 = 0x1234_5678;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_then_download_gives_the_same_bytes_safely_served() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bytes = pseudo_random_bytes(300_000);
    let mxc = upload(
        &ts,
        &alice,
        "application/octet-stream",
        bytes.clone(),
        "data.bin",
    )
    .await;
    assert!(mxc.starts_with("mxc://localhost/"), "{mxc}");

    let response = get_raw(&ts, &download_path(&mxc), alice.bearer()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"data.bin\""
    );
    assert_eq!(response.bytes().await.unwrap().to_vec(), bytes);

    // An HTML upload is never shown inline; a picture is.
    let html = upload(
        &ts,
        &alice,
        "text/html",
        b"<script>alert(1)</script>".to_vec(),
        "x.html",
    )
    .await;
    let response = get_raw(&ts, &download_path(&html), alice.bearer()).await;
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let picture = upload(&ts, &alice, "image/png", png(4, 4), "p.png").await;
    let response = get_raw(
        &ts,
        &format!("{}/renamed.png", download_path(&picture)),
        alice.bearer(),
    )
    .await;
    assert_eq!(
        response.headers()["content-disposition"],
        "inline; filename=\"renamed.png\""
    );

    // A range of the file.
    let response = ts
        .client()
        .get(ts.url(&download_path(&mxc)))
        .bearer_auth(&alice.access_token)
        .header("Range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        response.headers()["content-range"],
        "bytes 1000-1999/300000"
    );
    assert_eq!(
        response.bytes().await.unwrap().to_vec(),
        bytes[1000..2000].to_vec()
    );

    // Another user of the server can fetch it too (media is shared by link).
    let bob = ts.register_open("bob", "bob-password").await;
    let response = get_raw(&ts, &download_path(&mxc), bob.bearer()).await;
    assert_eq!(response.bytes().await.unwrap().len(), bytes.len());

    let config = expect_ok(
        ts.get("/_matrix/client/v1/media/config", alice.bearer())
            .await,
    );
    assert!(config["m.upload.size"].as_u64().unwrap() > 0);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_authentication_and_unknown_media() {
    let ts = TestServer::start_with(|cfg| {
        cfg.allow_registration = true;
        cfg.registration_token = None;
        cfg.max_upload_size = 10_000;
    })
    .await;
    let alice = ts.register_open("alice", "alice-password").await;
    let resp = ts
        .request_raw(
            reqwest::Method::POST,
            UPLOAD,
            alice.bearer(),
            "application/octet-stream",
            vec![0u8; 20_000],
        )
        .await;
    assert_errcode(&resp, StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");
    // Also when the size is not declared up front (a streamed body).
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..4).map(|_| Ok(vec![1u8; 4_000])).collect();
    let resp = ts
        .request_raw(
            reqwest::Method::POST,
            UPLOAD,
            alice.bearer(),
            "application/octet-stream",
            reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)),
        )
        .await;
    assert_errcode(&resp, StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");

    let resp = ts
        .request_raw(
            reqwest::Method::POST,
            UPLOAD,
            None,
            "text/plain",
            b"hi".to_vec(),
        )
        .await;
    assert_errcode(&resp, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
    let mxc = upload(&ts, &alice, "text/plain", b"hello".to_vec(), "hello.txt").await;
    let response = get_raw(&ts, &download_path(&mxc), None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errcode"], "M_MISSING_TOKEN");
    let (server, id) = parts(&mxc);
    let response = get_raw(
        &ts,
        &format!("/_matrix/client/v1/media/thumbnail/{server}/{id}?width=32&height=32"),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let response = get_raw(
        &ts,
        "/_matrix/client/v1/media/download/localhost/NoSuchMedia",
        alice.bearer(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errcode"], "M_NOT_FOUND");

    // The legacy unauthenticated endpoint is off by default.
    let response = get_raw(
        &ts,
        &format!("/_matrix/media/v3/download/{server}/{id}"),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // Quarantined media is not served.
    let media = &ts.server().services().media;
    assert_eq!(
        media
            .quarantine(ts.server().services().server_name(), &id, "console")
            .unwrap(),
        Some(conclave::service::media::QuarantineOutcome::Quarantined)
    );
    let response = get_raw(&ts, &download_path(&mxc), alice.bearer()).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thumbnails_fit_the_box_and_are_made_once() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let mxc = upload(&ts, &alice, "image/png", png(1000, 500), "wide.png").await;
    let (server, id) = parts(&mxc);
    let thumb = |query: &str| format!("/_matrix/client/v1/media/thumbnail/{server}/{id}?{query}");

    let response = get_raw(
        &ts,
        &thumb("width=320&height=240&method=scale"),
        alice.bearer(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let first = response.bytes().await.unwrap().to_vec();
    let scaled = image::load_from_memory(&first).expect("a decodable image");
    assert!(
        scaled.width() <= 320 && scaled.height() <= 240,
        "{}x{}",
        scaled.width(),
        scaled.height()
    );
    assert_eq!((scaled.width(), scaled.height()), (320, 160));

    let cropped = get_raw(
        &ts,
        &thumb("width=96&height=96&method=crop"),
        alice.bearer(),
    )
    .await;
    let cropped = image::load_from_memory(&cropped.bytes().await.unwrap()).unwrap();
    assert_eq!((cropped.width(), cropped.height()), (96, 96));

    // Asked again, the stored thumbnail is served: the same bytes.
    let again = get_raw(
        &ts,
        &thumb("width=300&height=200&method=scale"),
        alice.bearer(),
    )
    .await;
    assert_eq!(again.bytes().await.unwrap().to_vec(), first);

    // A small image is not blown up: the original comes back.
    let tiny = upload(&ts, &alice, "image/png", png(10, 10), "tiny.png").await;
    let (_, tiny_id) = parts(&tiny);
    let response = get_raw(
        &ts,
        &format!("/_matrix/client/v1/media/thumbnail/{server}/{tiny_id}?width=320&height=240"),
        alice.bearer(),
    )
    .await;
    let image = image::load_from_memory(&response.bytes().await.unwrap()).unwrap();
    assert_eq!((image.width(), image.height()), (10, 10));

    // Not an image, or nonsense sizes: 400.
    let text = upload(&ts, &alice, "text/plain", b"words".to_vec(), "t.txt").await;
    let (_, text_id) = parts(&text);
    let response = get_raw(
        &ts,
        &format!("/_matrix/client/v1/media/thumbnail/{server}/{text_id}?width=32&height=32"),
        alice.bearer(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = get_raw(&ts, &thumb("width=-3&height=32"), alice.bearer()).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asynchronous_upload() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let created = expect_ok(
        ts.post("/_matrix/media/v1/create", alice.bearer(), &json!({}))
            .await,
    );
    let mxc = created["content_uri"].as_str().unwrap().to_owned();
    assert!(created["unused_expires_at"].as_u64().is_some());
    let (server, id) = parts(&mxc);

    let response = get_raw(
        &ts,
        &format!("{}?timeout_ms=100", download_path(&mxc)),
        alice.bearer(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errcode"], "M_NOT_YET_UPLOADED");

    let put_path = format!("{UPLOAD}/{server}/{id}?filename=later.txt");
    let resp = ts
        .request_raw(
            reqwest::Method::PUT,
            &put_path,
            bob.bearer(),
            "text/plain",
            b"bob's".to_vec(),
        )
        .await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    // A download waiting for the content gets it as soon as it arrives.
    let wait_path = format!("{}?timeout_ms=20000", download_path(&mxc));
    let waiting = get_raw(&ts, &wait_path, alice.bearer());
    let sending = async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        ts.request_raw(
            reqwest::Method::PUT,
            &put_path,
            alice.bearer(),
            "text/plain",
            b"arrived".to_vec(),
        )
        .await
    };
    let (waited, sent) = tokio::join!(waiting, sending);
    expect_ok(sent);
    assert_eq!(waited.status(), StatusCode::OK);
    assert_eq!(waited.bytes().await.unwrap().as_ref(), b"arrived");

    let resp = ts
        .request_raw(
            reqwest::Method::PUT,
            &put_path,
            alice.bearer(),
            "text/plain",
            b"again".to_vec(),
        )
        .await;
    assert_errcode(&resp, StatusCode::CONFLICT, "M_CANNOT_OVERWRITE_MEDIA");
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_uploads_share_storage_and_deletion_frees_it() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bytes = pseudo_random_bytes(50_000);
    let first = upload(&ts, &alice, "application/octet-stream", bytes.clone(), "a").await;
    let second = upload(&ts, &alice, "application/octet-stream", bytes.clone(), "b").await;
    assert_ne!(first, second);
    let dir = ts.config().media_path();
    let files = |dir: &std::path::Path| -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().unwrap().is_dir() && e.file_name() != "tmp")
            .map(|sub| std::fs::read_dir(sub.path()).unwrap().count())
            .sum()
    };
    assert_eq!(files(&dir), 1, "identical bytes are stored once");

    let services = ts.server().services();
    let server = services.server_name();
    let (_, first_id) = parts(&first);
    let (_, second_id) = parts(&second);
    assert!(services.media.delete(server, &first_id).await.unwrap());
    assert_eq!(files(&dir), 1, "still used by the second upload");
    let response = get_raw(&ts, &download_path(&second), alice.bearer()).await;
    assert_eq!(response.bytes().await.unwrap().to_vec(), bytes);
    let uploader = ruma::UserId::parse(alice.user_id.as_str()).unwrap();
    assert_eq!(
        services
            .media
            .delete_by_uploader(server, &uploader)
            .await
            .unwrap(),
        1
    );
    assert_eq!(files(&dir), 0);
    let _ = second_id;
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_endpoints_follow_the_cut_over_date() {
    let ts = TestServer::start_with(|cfg| {
        cfg.allow_registration = true;
        cfg.registration_token = None;
        cfg.media.allow_legacy_media = true;
        cfg.media.legacy_media_before = Some("2999-01-01".into());
    })
    .await;
    let alice = ts.register_open("alice", "alice-password").await;
    let mxc = upload(&ts, &alice, "text/plain", b"old news".to_vec(), "n.txt").await;
    let (server, id) = parts(&mxc);
    let response = get_raw(
        &ts,
        &format!("/_matrix/media/v3/download/{server}/{id}"),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"old news");
    ts.shutdown().await;

    let ts = TestServer::start_with(|cfg| {
        cfg.allow_registration = true;
        cfg.registration_token = None;
        cfg.media.allow_legacy_media = true;
        cfg.media.legacy_media_before = Some("2001-01-01".into());
    })
    .await;
    let alice = ts.register_open("alice", "alice-password").await;
    let mxc = upload(&ts, &alice, "text/plain", b"new".to_vec(), "n.txt").await;
    let (server, id) = parts(&mxc);
    let response = get_raw(
        &ts,
        &format!("/_matrix/media/v3/download/{server}/{id}"),
        None,
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::NOT_FOUND,
        "uploaded after the cut-over"
    );
    ts.shutdown().await;
}

/// A one-page web server on loopback: answers every request with `html`.
async fn tiny_site(html: &'static str) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer).await;
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                html.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_previews_refuse_internal_addresses() {
    let site = tiny_site(r#"<html><head><title>Intranet</title><meta property="og:description" content="Team wiki"></head></html>"#).await;

    // Off by default.
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let preview = |url: String| format!("/_matrix/client/v1/media/preview_url?url={}", enc(&url));
    let resp = ts
        .get(&preview(format!("http://{site}/")), alice.bearer())
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_UNRECOGNIZED");
    ts.shutdown().await;

    // On: loopback is refused, by address and by name.
    let ts = TestServer::start_with(|cfg| {
        cfg.allow_registration = true;
        cfg.registration_token = None;
        cfg.media.url_preview_enabled = true;
    })
    .await;
    let alice = ts.register_open("alice", "alice-password").await;
    let resp = ts
        .get(&preview(format!("http://{site}/")), alice.bearer())
        .await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = ts
        .get(
            &preview(format!("http://localhost:{}/", site.port())),
            alice.bearer(),
        )
        .await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = ts
        .get(&preview("http://[::1]/".into()), alice.bearer())
        .await;
    assert_errcode(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = ts
        .get(&preview("file:///etc/passwd".into()), alice.bearer())
        .await;
    assert_eq!(resp.0, StatusCode::BAD_REQUEST, "{resp:?}");
    ts.shutdown().await;

    // Allow-listed, the intranet page is previewed.
    let ts = TestServer::start_with(|cfg| {
        cfg.allow_registration = true;
        cfg.registration_token = None;
        cfg.media.url_preview_enabled = true;
        cfg.media.url_preview_ip_range_allowlist = vec!["127.0.0.1/32".into()];
    })
    .await;
    let alice = ts.register_open("alice", "alice-password").await;
    let body = expect_ok(
        ts.get(&preview(format!("http://{site}/")), alice.bearer())
            .await,
    );
    assert_eq!(body["og:title"], "Intranet");
    assert_eq!(body["og:description"], "Team wiki");
    ts.shutdown().await;
}
