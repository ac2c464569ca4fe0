//! Media across servers: a user on one server sees an image uploaded on another — the
//! download and a thumbnail through their own server, which fetches the file with the
//! federation media endpoint (signed, `multipart/mixed`) and keeps it — with Conclave on both
//! sides and with a real Synapse in both directions.

mod common;

use common::federation::*;
use common::*;
use reqwest::StatusCode;

async fn upload(ts: &TestServer, who: &Session, bytes: Vec<u8>) -> String {
    let answer = expect_ok(
        ts.request_raw(
            reqwest::Method::POST,
            "/_matrix/media/v3/upload?filename=chart.png",
            who.bearer(),
            "image/png",
            bytes,
        )
        .await,
    );
    answer["content_uri"].as_str().unwrap().to_owned()
}

/// A client's authenticated download (or thumbnail) of `mxc` through `base`.
async fn fetch(
    base: &str,
    token: &str,
    kind: &str,
    mxc: &str,
    query: &str,
) -> (StatusCode, Option<String>, Vec<u8>) {
    let rest = mxc.strip_prefix("mxc://").unwrap();
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!(
            "{base}/_matrix/client/v1/media/{kind}/{rest}{query}"
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        content_type,
        response.bytes().await.unwrap().to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_of_another_conclave_is_fetched_thumbnailed_and_kept() {
    let (mut a, _pki_a) = conclave_peer(100).await;
    let (b, _pki_b) = conclave_peer(101).await;
    let alice = a.register_open("alice", "alice-password").await;
    let bob = b.register_open("bob", "bob-password").await;
    let image = png(400, 300);
    let mxc = upload(&a, &alice, image.clone()).await;
    let bob_token = bob.bearer().unwrap().to_owned();

    let (status, content_type, bytes) = fetch(&b.url(""), &bob_token, "download", &mxc, "").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(content_type.as_deref(), Some("image/png"));
    assert!(bytes == image, "the same bytes as uploaded");
    let (status, _, thumb) = fetch(
        &b.url(""),
        &bob_token,
        "thumbnail",
        &mxc,
        "?width=64&height=64",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let thumb = image::load_from_memory(&thumb).expect("a decodable thumbnail");
    assert!(
        thumb.width() < 400 && thumb.height() < 300,
        "smaller than the original: {}x{}",
        thumb.width(),
        thumb.height()
    );

    // Kept: served while Alice's server is down.
    a.stop().await;
    let (status, _, again) = fetch(&b.url(""), &bob_token, "download", &mxc, "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(again == image);
    a.restart().await;

    // Unknown media of the other server: 404, as for our own.
    let missing = format!("mxc://{}/NoSuchMediaHere", a.config().server_name);
    let (status, _, _) = fetch(&b.url(""), &bob_token, "download", &missing, "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The federation endpoint needs a signed request.
    let (_, id) = mxc.strip_prefix("mxc://").unwrap().split_once('/').unwrap();
    let unsigned = federation_client()
        .get(format!(
            "https://{}/_matrix/federation/v1/media/download/{id}",
            a.config().server_name
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_crosses_between_conclave_and_synapse_both_ways() {
    const SYNAPSE_IP: &str = "127.0.0.103";
    let (a, _pki_a) = conclave_peer(102).await;
    let alice = a.register_open("alice", "alice-password").await;
    let synapse = SynapsePeer::start(SYNAPSE_IP).await;
    let sam_token = synapse.register(SYNAPSE_IP, "sam", "sam-password").await;
    let synapse_base = format!("http://{SYNAPSE_IP}:8008");

    // Conclave's image through Synapse.
    let image = png(320, 200);
    let mxc = upload(&a, &alice, image.clone()).await;
    let (status, _, bytes) = fetch(&synapse_base, &sam_token, "download", &mxc, "").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}\n{}",
        String::from_utf8_lossy(&bytes),
        synapse.log_tail()
    );
    assert!(bytes == image, "Synapse served the same bytes");

    // Synapse's image through Conclave.
    let sams = png(240, 160);
    let uploaded: serde_json::Value = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!(
            "{synapse_base}/_matrix/media/v3/upload?filename=sam.png"
        ))
        .bearer_auth(&sam_token)
        .header("content-type", "image/png")
        .body(sams.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sams_mxc = uploaded["content_uri"].as_str().unwrap().to_owned();
    let alice_token = alice.bearer().unwrap().to_owned();
    let (status, content_type, bytes) =
        fetch(&a.url(""), &alice_token, "download", &sams_mxc, "").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(content_type.as_deref(), Some("image/png"));
    assert!(bytes == sams, "Conclave served Synapse's bytes");
    let (status, _, thumb) = fetch(
        &a.url(""),
        &alice_token,
        "thumbnail",
        &sams_mxc,
        "?width=32&height=32",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    image::load_from_memory(&thumb).expect("a decodable thumbnail");
    synapse.stop().await;
    a.shutdown().await;
}
