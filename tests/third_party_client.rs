//! A client we did not write — matrix-nio, a Python Matrix SDK — logs in to Conclave, reads
//! its identity, sets and reads a display name, lists devices and logs out. This proves a
//! real client accepts our responses.
//!
//! Needs a Python with `matrix-nio` installed: `CONCLAVE_TEST_PYTHON` names it (`.ci/run`
//! sets it up), else `python3` is tried.

mod common;

use std::process::Stdio;

use common::{TestServer, expect_ok};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_nio_logs_in_and_manages_its_session() {
    let server = TestServer::start().await;
    let admin = server
        .register_first_admin("nio", "correct horse battery")
        .await;

    let python = std::env::var("CONCLAVE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/nio_session.py");
    let output = tokio::process::Command::new(&python)
        .arg(script)
        .arg(server.url(""))
        .arg(&admin.user_id)
        .arg("correct horse battery")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {python}: {e} (install matrix-nio; see README)"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "matrix-nio session failed:\n{stderr}"
    );

    let stdout = String::from_utf8_lossy(&output.stdout);
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("unexpected output from the nio script ({e}): {stdout}\n{stderr}")
    });
    assert_eq!(seen["user_id"], admin.user_id.as_str());
    assert_eq!(seen["whoami"], admin.user_id.as_str());
    assert_eq!(seen["displayname"], "Nio Tester");
    let nio_device = seen["device_id"].as_str().expect("nio got a device ID");
    assert_eq!(seen["devices"][nio_device], "matrix-nio test");

    // What nio changed is really stored, and its logout really deleted its device.
    let profile = expect_ok(
        server
            .get(
                &format!("/_matrix/client/v3/profile/{}", common::enc(&admin.user_id)),
                None,
            )
            .await,
    );
    assert_eq!(profile["displayname"], "Nio Tester");
    let devices = server.device_ids(&admin).await;
    assert!(
        !devices.iter().any(|d| d == nio_device),
        "nio's device survived its logout: {devices:?}"
    );
}
