//! Helpers for the media tests of the admin API and the admin room: uploads, downloads,
//! cached remote media, and the audit log as the console lists it.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Session, TestServer, expect_ok};

/// Uploads `bytes` (distinct per call: identical content would share one file); returns the
/// media ID.
pub async fn upload(ts: &TestServer, who: &Session, bytes: &str) -> String {
    let body = expect_ok(
        ts.request_raw(
            Method::POST,
            "/_matrix/media/v3/upload?filename=f.txt",
            who.bearer(),
            "text/plain",
            bytes.to_owned(),
        )
        .await,
    );
    let mxc = body["content_uri"].as_str().expect("content_uri");
    mxc.rsplit('/').next().unwrap().to_owned()
}

/// The status of downloading local media `id` as `who`.
pub async fn download(ts: &TestServer, who: &Session, id: &str) -> StatusCode {
    ts.client()
        .get(ts.url(&format!("/_matrix/client/v1/media/download/localhost/{id}")))
        .bearer_auth(&who.access_token)
        .send()
        .await
        .unwrap()
        .status()
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A moment strictly between what happened before and what happens after.
pub async fn moment() -> u64 {
    tokio::time::sleep(Duration::from_millis(15)).await;
    let at = now_ms();
    tokio::time::sleep(Duration::from_millis(15)).await;
    at
}

/// The audit log, as the console lists it.
pub async fn audit(ts: &TestServer) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_conclave"))
        .args(["admin", "--socket"])
        .arg(ts.config().database_path.join("admin.sock"))
        .args(["audit", "list"])
        .env_remove("CONCLAVE_CONFIG")
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn ids(list: &Value, key: &str, field: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key}: {list}"))
        .iter()
        .map(|item| item[field].as_str().unwrap().to_owned())
        .collect()
}

pub async fn cache_remote(ts: &TestServer, origin: &str, id: &str, bytes: &'static str) {
    let media = &ts.server().services().media;
    let body = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(
        bytes.as_bytes(),
    ))]);
    let file = media.write_stream(body, 1 << 20).await.unwrap();
    let origin = ruma::ServerName::parse(origin).unwrap();
    let sender = ruma::UserId::parse(format!("@someone:{origin}")).unwrap();
    media
        .cache_remote(&origin, id, &sender, &file, Some("text/plain".to_owned()))
        .unwrap();
}

pub fn stored(ts: &TestServer, origin: &str, id: &str) -> bool {
    let origin = ruma::ServerName::parse(origin).unwrap();
    ts.server()
        .services()
        .media
        .get(&origin, id)
        .unwrap()
        .is_some()
}

/// POSTs `{}` to the admin API path `path` (below `/_synapse/admin`) as `who`; expects 200.
pub async fn post_ok(ts: &TestServer, who: &Session, path: &str) -> Value {
    expect_ok(
        ts.post(&format!("/_synapse/admin{path}"), who.bearer(), &json!({}))
            .await,
    )
}
