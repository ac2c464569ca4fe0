//! The synapse-admin web UI (vendored in `tests/web/synapse-admin/`, built with vite outside
//! the clone) in Debian's Chromium, driven by playwright-core: IT logs in, sees the users,
//! creates an account through the form, erases a leaver and deletes a room — and the server's
//! state afterwards shows each of those took effect.
//!
//! Needs Node.js, npm (the first run installs the packages and builds the UI into
//! `/var/cache/conclave-synapse-admin`) and `/usr/bin/chromium`; `.ci/run` installs them. The
//! screenshot lands in `tests/web/screenshots/synapse-admin.png`.

mod common;

use std::process::Stdio;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const ADMIN: &str = "/_synapse/admin";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synapse_admin_ui_manages_users_and_rooms() {
    let ts = TestServer::start_open().await;
    let admin = ts.register_open("admin", "admin-password").await;
    let bob = ts.register_open("bob", "bob-password").await;
    let room_id = create_room(&ts, &admin, json!({ "name": "Leaving soon" })).await;
    expect_ok(
        ts.post(
            &room_path(&room_id, "/invite"),
            admin.bearer(),
            &json!({ "user_id": bob.user_id }),
        )
        .await,
    );
    expect_ok(
        ts.post(&room_path(&room_id, "/join"), bob.bearer(), &json!({}))
            .await,
    );
    send_text(&ts, &bob, &room_id, "w1", "bob's last words").await;

    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/web");
    let screenshot = format!("{dir}/screenshots/synapse-admin.png");
    let scenario = json!({
        "hs": ts.url(""),
        "user": "admin",
        "password": "admin-password",
        "listed_user": bob.user_id,
        "create": { "localpart": "carol", "displayname": "Carol from IT", "password": "carol-password" },
        "erase_user": bob.user_id,
        "delete_room": { "room_id": room_id, "name": "Leaving soon" },
    });
    let scenario_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(scenario_file.path(), scenario.to_string()).unwrap();
    let output = tokio::process::Command::new("bash")
        .arg(format!("{dir}/synapse-admin.sh"))
        .arg(scenario_file.path())
        .arg(&screenshot)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("cannot run tests/web/synapse-admin.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "synapse-admin failed (screenshot: {screenshot}):\n{stdout}\n{stderr}"
    );
    let result: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("unexpected output ({e}): {stdout}\n{stderr}"));
    assert_eq!(result["ok"], true, "{result}");

    // The account made through the form logs in with its password and has its name.
    let carol = ts.login("carol", "carol-password").await;
    let profile = expect_ok(
        ts.get(
            &format!("/_matrix/client/v3/profile/{}", enc(&carol.user_id)),
            None,
        )
        .await,
    );
    assert_eq!(profile["displayname"], "Carol from IT", "{profile}");

    // "Erase user data": bob is deactivated and erased, his session gone.
    let bob_now = expect_ok(
        ts.get(
            &format!("{ADMIN}/v2/users/{}", enc(&bob.user_id)),
            admin.bearer(),
        )
        .await,
    );
    assert_eq!(bob_now["deactivated"], true, "{bob_now}");
    assert_eq!(bob_now["erased"], true, "{bob_now}");
    ts.assert_token_rejected(bob.access_token.as_str()).await;

    // The UI deletes with v2 (in the background, purging): once its deletion is complete the
    // room is gone from the server.
    let status_path = format!("{ADMIN}/v2/rooms/{}/delete_status", enc(&room_id));
    let mut status = Value::Null;
    for _ in 0..300 {
        status = expect_ok(ts.get(&status_path, admin.bearer()).await);
        if status["results"][0]["status"] == "complete" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status["results"][0]["status"], "complete", "{status}");
    let resp = ts
        .get(
            &format!("{ADMIN}/v1/rooms/{}", enc(&room_id)),
            admin.bearer(),
        )
        .await;
    assert_errcode(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    ts.shutdown().await;
}
