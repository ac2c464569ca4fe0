//! A real web client: Hydrogen (hydrogen-view-sdk, built with vite) in Debian's Chromium,
//! driven by playwright-core, logs in to Conclave as bob, opens a room and must show the
//! message alice sent. Hydrogen sets up its own E2EE device on login (olm), so its key upload
//! goes through the real `/keys/upload` too.
//!
//! Needs Node.js, npm (first run installs `tests/web/node_modules`) and `/usr/bin/chromium`;
//! `.ci/run` installs them. The screenshot lands in `tests/web/screenshots/hydrogen.png`.

mod common;

use std::process::Stdio;

use common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hydrogen_shows_a_message_sent_by_another_user() {
    let ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let room_id = create_room(
        &ts,
        &alice,
        json!({ "preset": "public_chat", "name": "Web test room" }),
    )
    .await;
    expect_ok(
        ts.post(&room_path(&room_id, "/join"), bob.bearer(), &json!({}))
            .await,
    );
    let text = "Hello from Alice via Conclave";
    send_text(&ts, &alice, &room_id, "web1", text).await;

    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/web");
    let screenshot = format!("{dir}/screenshots/hydrogen.png");
    let output = tokio::process::Command::new("bash")
        .arg(format!("{dir}/run.sh"))
        .arg(ts.url(""))
        .arg("bob")
        .arg("bob-password")
        .arg(&room_id)
        .arg(text)
        .arg(&screenshot)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("cannot run tests/web/run.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "Hydrogen did not show the message (screenshot: {screenshot}):\n{stdout}\n{stderr}"
    );
    let result: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("unexpected output from run.sh ({e}): {stdout}\n{stderr}"));
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["user_id"], bob.user_id.as_str(), "{result}");

    // Hydrogen uploaded real device keys for its new device.
    let queried = expect_ok(
        ts.post(
            "/_matrix/client/v3/keys/query",
            alice.bearer(),
            &json!({ "device_keys": { &bob.user_id: [] } }),
        )
        .await,
    );
    let devices = queried["device_keys"][&bob.user_id].as_object().unwrap();
    assert!(
        !devices.is_empty(),
        "Hydrogen's device keys are not published: {queried}"
    );
    ts.shutdown().await;
}
