//! Real E2EE clients: matrix-js-sdk 36 (the engine of Element Web) with its Rust crypto
//! (vodozemac, as WASM) runs two users through an encrypted conversation on Conclave:
//! cross-signing bootstrap, key backup, an encrypted room, messages each side decrypts, and a
//! second device that reads history by restoring the backup. See tests/clients/js/e2ee.mjs.
//!
//! Needs Node.js 20 and npm (the first run installs `tests/clients/js/node_modules`).

mod common;

use std::process::Stdio;

use common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_js_sdk_encrypted_conversation() {
    let ts = TestServer::start_open().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/js/run.sh");
    let output = tokio::process::Command::new("bash")
        .arg(script)
        .arg(ts.url(""))
        .stdin(Stdio::null())
        .output()
        .await
        .expect("cannot run tests/clients/js/run.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the matrix-js-sdk scenario failed:\n{stdout}\n{stderr}"
    );
    let seen: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("unexpected output ({e}): {stdout}\n{stderr}"));
    assert_eq!(seen["bob_decrypted"], "hello bob (encrypted)", "{seen}");
    assert_eq!(seen["alice_decrypted"], "hello alice (encrypted)", "{seen}");
    assert_eq!(
        seen["second_device_decrypted"], "hello bob (encrypted)",
        "{seen}"
    );
    assert_eq!(seen["server_saw_plaintext"], false, "{seen}");
    assert_eq!(
        seen["server_event_types"],
        json!(["m.room.encrypted", "m.room.encrypted"]),
        "{seen}"
    );
    assert_eq!(seen["alice_device_signed_by_owner"], true, "{seen}");
    ts.shutdown().await;
}
