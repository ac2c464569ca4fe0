//! Element X's engine: matrix-sdk 0.18 with matrix-sdk-ui's SyncService (room list service
//! and encryption sync over simplified sliding sync, MSC4186) runs against Conclave. Bob's
//! room list shows invites, then the rooms by recency with unread counts; a new message moves
//! a room to the top; an encrypted message from alice decrypts. See
//! tests/clients/rust-sdk/src/main.rs.
//!
//! The checker is its own crate (heavy to build): `.ci/run` builds it and names the binary in
//! `CONCLAVE_SDK_CHECK`; by hand: `cargo build --release --manifest-path
//! tests/clients/rust-sdk/Cargo.toml` and point `CONCLAVE_SDK_CHECK` at `sdk-check`.

mod common;

use std::process::Stdio;

use common::*;
use serde_json::{Value, json};

/// Runs the sdk-check binary with `args`; returns the JSON line it prints on success.
async fn run_checker(args: &[&str]) -> Value {
    let checker = std::env::var("CONCLAVE_SDK_CHECK").unwrap_or_else(|_| {
        panic!(
            "CONCLAVE_SDK_CHECK must name the sdk-check binary (cargo build --release \
             --manifest-path tests/clients/rust-sdk/Cargo.toml); .ci/run does this"
        )
    });
    let output = tokio::process::Command::new(&checker)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {checker}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the matrix-sdk scenario failed:\n{stdout}\n{stderr}"
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("unexpected output ({e}): {stdout}\n{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn element_x_room_list_and_encryption_over_sliding_sync() {
    let ts = TestServer::start_open().await;
    let versions = expect_ok(ts.get("/_matrix/client/versions", None).await);
    assert_eq!(
        versions["unstable_features"]["org.matrix.simplified_msc3575"],
        true
    );
    let seen = run_checker(&[&ts.url("")]).await;
    assert_eq!(seen["invites_seen"], true, "{seen}");
    assert_eq!(seen["order_after_beta"], json!(["Beta", "Alpha"]), "{seen}");
    assert_eq!(
        seen["order_after_alpha"],
        json!(["Alpha", "Beta"]),
        "{seen}"
    );
    assert!(seen["unread_alpha"].as_u64().unwrap_or(0) > 0, "{seen}");
    assert_eq!(seen["decrypted"], "secret hello", "{seen}");
    // Element X's push registration, as the server lists it back.
    let pusher = &seen["pusher"];
    assert_eq!(pusher["app_id"], "io.element.elementx.ios", "{seen}");
    assert_eq!(pusher["kind"], "http", "{seen}");
    assert_eq!(pusher["data"]["format"], "event_id_only", "{seen}");
    assert_eq!(
        pusher["data"]["default_payload"]["aps"]["mutable-content"], 1,
        "{seen}"
    );
    assert_eq!(seen["sync_errors"], json!([]), "{seen}");
    ts.shutdown().await;
}

/// Invites while Element X's room list runs, repeated: alice creates rooms inviting bob, two
/// back to back and two at once, 50 times over; each invite must appear in bob's list under
/// its room's name, as Element X shows it (`CONCLAVE_SDK_STRESS_ITERATIONS` changes the count).
///
/// The checker once read names with `Room::display_name()`, which computes a name when none is
/// cached and stores it without synchronising with matrix-sdk's own processing of the sync
/// answer: a name computed from a new invite before its stripped state was applied overwrote
/// the right one for good, and the invite showed under the inviter's name (one run of the
/// scenario above in three failed so). `sdk-check URL invites 50 computed-names` still reads
/// names that way: it fails 6–9 iterations of 50 against Conclave and 7–8 of 25 against
/// Synapse, while Element X (matrix-sdk-ffi reads the cached name, never computes one) and
/// this test pass every iteration against both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn element_x_shows_every_invite_under_its_name() {
    let ts = TestServer::start_open().await;
    let iterations =
        std::env::var("CONCLAVE_SDK_STRESS_ITERATIONS").unwrap_or_else(|_| "50".into());
    let seen = run_checker(&[&ts.url(""), "invites", &iterations]).await;
    assert_eq!(seen["iterations"].to_string(), iterations, "{seen}");
    assert_eq!(seen["failures"], json!([]), "{seen}");
    assert_eq!(seen["sync_errors"], json!([]), "{seen}");
    ts.shutdown().await;
}
