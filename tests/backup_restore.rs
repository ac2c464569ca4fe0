//! `conclave backup` and `conclave restore` end to end, as an operator after a dead disk: a
//! backup taken through the running server while clients write, the database wiped, the
//! backup restored with the binary, the server started again — and every event, account and
//! media file acknowledged before the backup began is there.

mod common;

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::{TestServer, expect_ok};
use reqwest::StatusCode;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_conclave");

/// What the server acknowledged to the writers.
#[derive(Default, Clone)]
struct Acked {
    events: Vec<(String, String)>,
    accounts: Vec<String>,
    media: Vec<(String, Vec<u8>)>,
}

/// The binary with only the test's configuration file.
fn conclave(config: &std::path::Path, args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    for (name, _) in std::env::vars() {
        if name.starts_with("CONCLAVE_") || name == "CONDUIT_CONFIG" {
            command.env_remove(name);
        }
    }
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs one kind of write until told to stop (bounded), recording each acknowledged one.
fn writer<F, Fut>(stop: &Arc<AtomicBool>, write: F) -> tokio::task::JoinHandle<()>
where
    F: Fn(usize) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let stop = Arc::clone(stop);
    tokio::spawn(async move {
        for i in 0..5_000 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            write(i).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_write_load_restores_everything_acknowledged_before_it() {
    let mut ts = TestServer::start_open().await;
    let alice = ts.register_open("alice", "alice's passphrase").await;
    let room = expect_ok(
        ts.post(
            "/_matrix/client/v3/createRoom",
            alice.bearer(),
            &json!({ "name": "Records" }),
        )
        .await,
    )["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let config = ts.dir().join("conclave.toml");
    std::fs::write(
        &config,
        format!(
            "[global]\nserver_name = \"localhost\"\ndatabase_path = {:?}\n",
            ts.config().database_path
        ),
    )
    .unwrap();

    let acked = Arc::new(Mutex::new(Acked::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let http = ts.client().clone();
    let base = ts.url("");
    let messages = writer(&stop, {
        let (http, base, acked, room, token) = (
            http.clone(),
            base.clone(),
            Arc::clone(&acked),
            room.clone(),
            alice.access_token.clone(),
        );
        move |i| {
            let (http, base, acked, room, token) = (
                http.clone(),
                base.clone(),
                Arc::clone(&acked),
                room.clone(),
                token.clone(),
            );
            async move {
                let body = format!("message {i}");
                let sent = http
                    .put(format!(
                        "{base}/_matrix/client/v3/rooms/{room}/send/m.room.message/t{i}"
                    ))
                    .bearer_auth(&token)
                    .json(&json!({ "msgtype": "m.text", "body": body }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(sent.status(), 200);
                let id = sent.json::<serde_json::Value>().await.unwrap()["event_id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                acked.lock().unwrap().events.push((id, body));
            }
        }
    });
    let accounts = writer(&stop, {
        let (http, base, acked) = (http.clone(), base.clone(), Arc::clone(&acked));
        move |i| {
            let (http, base, acked) = (http.clone(), base.clone(), Arc::clone(&acked));
            async move {
                let username = format!("staff{i}");
                let registered = http
                    .post(format!("{base}/_matrix/client/v3/register"))
                    .json(&json!({
                        "username": username,
                        "password": "a passphrase",
                        "auth": { "type": "m.login.dummy" },
                        "inhibit_login": true,
                    }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(registered.status(), 200);
                acked
                    .lock()
                    .unwrap()
                    .accounts
                    .push(format!("@{username}:localhost"));
            }
        }
    });
    let uploads = writer(&stop, {
        let (http, base, acked, token) = (
            http.clone(),
            base.clone(),
            Arc::clone(&acked),
            alice.access_token.clone(),
        );
        move |i| {
            let (http, base, acked, token) = (
                http.clone(),
                base.clone(),
                Arc::clone(&acked),
                token.clone(),
            );
            async move {
                let bytes = format!("file {i} ").repeat(100 + i).into_bytes();
                let uploaded = http
                    .post(format!("{base}/_matrix/media/v3/upload?filename=f{i}.txt"))
                    .bearer_auth(&token)
                    .header("content-type", "text/plain")
                    .body(bytes.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(uploaded.status(), 200);
                let mxc = uploaded.json::<serde_json::Value>().await.unwrap()["content_uri"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let id = mxc.rsplit('/').next().unwrap().to_owned();
                acked.lock().unwrap().media.push((id, bytes));
            }
        }
    });

    // Every kind of write under way, then the backup through the running server.
    loop {
        let so_far = acked.lock().unwrap().clone();
        if so_far.events.len() >= 20 && so_far.accounts.len() >= 3 && so_far.media.len() >= 10 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let before = acked.lock().unwrap().clone();
    let backup = ts.dir().join("backup-2026-12-08");
    let socket = ts.config().admin_socket_path();
    let backed_up = {
        let (config, backup) = (config.clone(), backup.clone());
        tokio::task::spawn_blocking(move || {
            conclave(
                &config,
                &[
                    "backup",
                    "--socket",
                    socket.to_str().unwrap(),
                    backup.to_str().unwrap(),
                ],
            )
        })
        .await
        .unwrap()
    };
    assert!(backed_up.status.success(), "{}", text(&backed_up));
    assert!(
        text(&backed_up).contains("Backup written"),
        "{}",
        text(&backed_up)
    );
    let after = expect_ok(
        ts.put(
            &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/after"),
            alice.bearer(),
            &json!({ "msgtype": "m.text", "body": "after the backup" }),
        )
        .await,
    )["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    stop.store(true, Ordering::Relaxed);
    for task in [messages, accounts, uploads] {
        task.await.unwrap();
    }
    let during = acked.lock().unwrap().clone();
    assert!(
        during.events.len() > before.events.len(),
        "the writers went on during and after the backup"
    );

    // The disk dies: the server stops and its database and media are gone.
    ts.stop().await;
    let database = ts.config().database_path;
    std::fs::remove_dir_all(&database).unwrap();

    // An unfinished backup is refused.
    let partial = ts.dir().join("partial");
    std::fs::create_dir(&partial).unwrap();
    let refused = conclave(&config, &["restore", partial.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("not a finished Conclave backup"),
        "{}",
        text(&refused)
    );

    let restored = conclave(&config, &["restore", backup.to_str().unwrap()]);
    assert!(restored.status.success(), "{}", text(&restored));
    // Restoring over a database is refused: nothing is overwritten.
    let again = conclave(&config, &["restore", backup.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(text(&again).contains("is not empty"), "{}", text(&again));

    ts.restart().await;
    let alice = ts.login("alice", "alice's passphrase").await;
    for (id, body) in &before.events {
        let (status, event) = ts
            .get(
                &format!("/_matrix/client/v3/rooms/{room}/event/{id}"),
                alice.bearer(),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{id} was acknowledged before the backup"
        );
        assert_eq!(event["content"]["body"], body.as_str());
    }
    for user in &before.accounts {
        let (status, _) = ts
            .get(&format!("/_matrix/client/v3/profile/{user}"), None)
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{user} registered before the backup"
        );
    }
    let staff = ts.login(&before.accounts[0], "a passphrase").await;
    for (id, bytes) in &before.media {
        let downloaded = ts
            .client()
            .get(ts.url(&format!("/_matrix/client/v1/media/download/localhost/{id}")))
            .bearer_auth(&staff.access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(downloaded.status(), 200, "media {id}");
        assert_eq!(
            &downloaded.bytes().await.unwrap()[..],
            &bytes[..],
            "media {id}"
        );
    }
    // What came after the backup is not in it: this is the backup, not the old database.
    let (status, _) = ts
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/event/{after}"),
            alice.bearer(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The restored server takes new writes.
    expect_ok(
        ts.put(
            &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/restored"),
            alice.bearer(),
            &json!({ "msgtype": "m.text", "body": "after the restore" }),
        )
        .await,
    );

    // With the server stopped, `conclave backup` opens the database itself.
    ts.stop().await;
    let offline = ts.dir().join("offline-backup");
    let written = conclave(&config, &["backup", offline.to_str().unwrap()]);
    assert!(written.status.success(), "{}", text(&written));
    assert!(offline.join("conclave-backup.json").exists());
    ts.shutdown().await;
}
