//! The `conclave` binary as an operator runs it: configuration from file and environment,
//! `--show-config`, `--check-config`, JSON logs, start-up errors, the first-start registration token in the log, and a
//! graceful stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_conclave");

fn conclave() -> Command {
    let mut command = Command::new(BIN);
    // Start from a clean slate: no inherited configuration.
    for (name, _) in std::env::vars() {
        if name.starts_with("CONCLAVE_") || name == "CONDUIT_CONFIG" || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command.stdin(Stdio::null());
    command
}

#[test]
fn show_config_applies_file_and_env_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("conclave.toml");
    std::fs::write(
        &file,
        "[global]\nserver_name = \"chat.example.com\"\nport = 9000\nregistration_token = \"file-secret\"\nno_such_option = 1\n",
    )
    .unwrap();
    let output = conclave()
        .arg("--config")
        .arg(&file)
        .arg("--show-config")
        .env("CONCLAVE_PORT", "9100")
        .env("CONCLAVE_WELL_KNOWN__CLIENT", "https://chat.example.com")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let shown = String::from_utf8_lossy(&output.stdout);
    let parsed: toml::Table = toml::from_str(&shown).expect("--show-config prints TOML");
    let global = &parsed["global"];
    assert_eq!(global["server_name"].as_str(), Some("chat.example.com"));
    assert_eq!(
        global["port"].as_integer(),
        Some(9100),
        "env overrides the file"
    );
    assert_eq!(
        global["well_known"]["client"].as_str(),
        Some("https://chat.example.com")
    );
    assert!(
        !shown.contains("file-secret"),
        "the registration token leaked: {shown}"
    );
}

#[test]
fn invalid_value_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[global]\nport = \"eighty\"\n").unwrap();
    let output = conclave().arg("--config").arg(&file).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("global.port"),
        "the error names the key: {stderr}"
    );

    // CONDUIT_CONFIG is honoured as well.
    let output = conclave()
        .env("CONDUIT_CONFIG", &file)
        .arg("--show-config")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("global.port"));
}

/// Reads the child's log lines on a thread, so the test can wait for a given line.
fn log_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    for stream in [
        Box::new(stdout) as Box<dyn std::io::Read + Send>,
        Box::new(stderr),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

/// Waits (bounded, so a broken server fails the test rather than hanging it) for a log line.
fn wait_for(lines: &mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) -> String {
    loop {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
            Err(_) => panic!(
                "no log line containing {needle:?}; saw:\n{}",
                seen.join("\n")
            ),
        }
    }
}

/// The binary started in `dir` on a free port with `env` (CONCLAVE_LOG defaults to info),
/// once it logs that it listens: the process, its log lines, those seen so far, and the
/// listening line.
fn start_binary(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (Child, mpsc::Receiver<String>, Vec<String>, String) {
    let mut command = conclave();
    command
        .current_dir(dir)
        .env("CONCLAVE_PORT", "0")
        .env("CONCLAVE_LOG", "info");
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = log_lines(&mut child);
    let mut seen = Vec::new();
    let listening = wait_for(&lines, "Conclave is listening", &mut seen);
    (child, lines, seen, listening)
}

/// The `addr=` of a text-format listening line.
fn listening_addr(line: &str) -> String {
    line.split_whitespace()
        .find_map(|part| part.strip_prefix("addr="))
        .expect("listening line names the address")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_logs_bootstrap_token_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = conclave()
        .current_dir(dir.path())
        .env("CONCLAVE_PORT", "0")
        .env("CONCLAVE_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = log_lines(&mut child);
    let mut seen = Vec::new();

    // The one-time token is printed on its own indented line after the explanation.
    wait_for(&lines, "one-time registration token", &mut seen);
    let token = loop {
        let line = wait_for(&lines, "", &mut seen);
        let trimmed = line.trim();
        if !trimmed.is_empty() {
            break trimmed.to_owned();
        }
    };
    let listening = seen
        .iter()
        .find(|line| line.contains("Conclave is listening"))
        .cloned()
        .unwrap_or_else(|| panic!("no listening line before the token: {seen:?}"));
    let addr = listening_addr(&listening);

    // The token from the log creates the first account on the running binary.
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let register = format!("{base}/_matrix/client/v3/register");
    let body = json!({ "username": "root", "password": "a long passphrase" });
    let first: serde_json::Value = http
        .post(&register)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut with_auth = body.clone();
    with_auth["auth"] = json!({
        "type": "m.login.registration_token",
        "token": token,
        "session": first["session"],
    });
    let response = http.post(&register).json(&with_auth).send().await.unwrap();
    assert_eq!(
        response.status(),
        200,
        "registering with the logged token: {:?}",
        response.text().await
    );

    // SIGTERM: a clean exit that leaves the database closed and reopenable.
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "exit status after SIGTERM: {exit:?}");

    let config = conclave::config::Config {
        database_path: dir.path().join("conclave-data"),
        port: 0,
        ..Default::default()
    };
    let server = conclave::server::Server::start(config)
        .await
        .expect("database reopens");
    assert_eq!(
        server.bootstrap_token(),
        None,
        "the first account exists after the restart"
    );
    server.shutdown().await;
}

#[test]
fn example_configurations_load_without_warnings() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/conduit-config");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "toml") {
            continue;
        }
        let output = conclave()
            .arg("--config")
            .arg(&path)
            .arg("--show-config")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{}: {stderr}", path.display());
        assert!(
            !stderr.contains("warning"),
            "{} warns: {stderr}",
            path.display()
        );
        checked += 1;
    }
    assert!(
        checked >= 3,
        "expected the three example configurations, found {checked}"
    );

    // An unknown key is named in a warning.
    let temp = tempfile::tempdir().unwrap();
    let file = temp.path().join("typo.toml");
    std::fs::write(&file, "[global]\nallow_registraton = true\n").unwrap();
    let output = conclave()
        .arg("--config")
        .arg(&file)
        .arg("--show-config")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("global.allow_registraton"));
}

#[test]
fn admin_console_creates_the_first_admin_and_shuts_the_binary_down() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, lines, mut seen, _) = start_binary(dir.path(), &[]);

    // Found through the configuration (here the defaults: ./conclave-data/admin.sock).
    let admin = |words: &[&str]| {
        conclave()
            .current_dir(dir.path())
            .arg("admin")
            .args(words)
            .output()
            .unwrap()
    };
    let created = admin(&["users", "create", "root", "--password", "pw", "--admin"]);
    let stdout = String::from_utf8_lossy(&created.stdout);
    assert!(
        created.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(stdout.contains("Created @root:localhost"), "{stdout}");

    let stopped = admin(&["server", "shutdown"]);
    assert!(stopped.status.success());
    assert!(String::from_utf8_lossy(&stopped.stdout).contains("Shutting down"));
    wait_for(&lines, "server stopped", &mut seen);
    let exit = child.wait().unwrap();
    assert!(
        exit.success(),
        "exit status after `server shutdown`: {exit:?}"
    );
    assert!(!dir.path().join("conclave-data/admin.sock").exists());
}

#[test]
fn check_config_validates_without_starting() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[global]\nserver_name = \"chat.example.com\"\nlog_format = \"json\"\n",
    )
    .unwrap();
    let output = conclave()
        .arg("--check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("the configuration is valid"));
    // Nothing was started: no database was made.
    assert!(!dir.path().join("conclave-data").exists());

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[global]\nlog_format = \"xml\"\n").unwrap();
    let output = conclave().arg("--check-config").arg(&bad).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("log_format"));

    // The files it names are checked too: a registration with one token for both sides.
    let registration = dir.path().join("bridge.yaml");
    std::fs::write(
        &registration,
        "id: bridge\nurl: null\nas_token: same-token-0123456789\nhs_token: same-token-0123456789\n\
         sender_localpart: bridge\nnamespaces: {}\n",
    )
    .unwrap();
    let with_bridge = dir.path().join("bridge.toml");
    std::fs::write(
        &with_bridge,
        format!(
            "[global]\nappservice_registration_files = [{:?}]\n",
            registration.display().to_string()
        ),
    )
    .unwrap();
    let output = conclave()
        .arg("--check-config")
        .arg(&with_bridge)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bridge.yaml") && stderr.contains("must differ"),
        "{stderr}"
    );
}

/// JSON logs, one object a line, with each request's span naming the method, the path and —
/// once authenticated — the user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_with_the_user_in_request_spans() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, lines, mut seen, listening) = start_binary(
        dir.path(),
        &[
            // tower_http logs each answered request at debug level.
            ("CONCLAVE_LOG", "info,tower_http=debug"),
            ("CONCLAVE_LOG_FORMAT", "json"),
        ],
    );
    let entry: serde_json::Value = serde_json::from_str(&listening)
        .unwrap_or_else(|e| panic!("not a JSON line ({e}): {listening}"));
    assert_eq!(entry["level"], "INFO", "{entry}");
    assert!(
        entry["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Conclave is listening")),
        "{entry}"
    );
    assert!(entry["timestamp"].is_string(), "{entry}");
    let addr = entry["fields"]["addr"]
        .as_str()
        .expect("the address")
        .to_owned();

    let created = conclave()
        .current_dir(dir.path())
        .args(["admin", "users", "create", "carol", "--password", "pw"])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let http = reqwest::Client::new();
    let login: serde_json::Value = http
        .post(format!("http://{addr}/_matrix/client/v3/login"))
        .json(&json!({
            "type": "m.login.password",
            "identifier": { "type": "m.id.user", "user": "carol" },
            "password": "pw",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"]
        .as_str()
        .expect("logged in")
        .to_owned();
    let whoami = http
        .get(format!("http://{addr}/_matrix/client/v3/account/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(whoami.status(), 200);

    let line = tokio::task::spawn_blocking(move || {
        loop {
            let line = wait_for(&lines, "/account/whoami", &mut seen);
            if line.contains("finished processing request") {
                break line;
            }
        }
    })
    .await
    .unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
    let span = &entry["span"];
    assert_eq!(span["name"], "request", "{entry}");
    assert_eq!(span["method"], "GET", "{entry}");
    assert_eq!(span["path"], "/_matrix/client/v3/account/whoami", "{entry}");
    assert_eq!(span["user"], "@carol:localhost", "{entry}");
    assert!(
        !line.contains(&token),
        "the access token must not reach the logs: {line}"
    );
}

/// `systemctl reload` sends SIGHUP: without certificates to read again the server must go on
/// (SIGHUP's default action would end it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_without_tls_keeps_the_server_running() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, lines, mut seen, listening) = start_binary(dir.path(), &[]);
    let addr = listening_addr(&listening);
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let lines = tokio::task::spawn_blocking(move || {
        wait_for(&lines, "SIGHUP: no TLS certificate", &mut seen);
        lines
    })
    .await
    .unwrap();
    assert!(
        child.try_wait().unwrap().is_none(),
        "the server ended on SIGHUP"
    );
    let versions = reqwest::get(format!("http://{addr}/_matrix/client/versions"))
        .await
        .unwrap();
    assert_eq!(versions.status(), 200);
    child.kill().unwrap();
    let _ = child.wait();
    drop(lines);
}
