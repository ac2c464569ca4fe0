//! Media memory benchmark: peak RSS of the server process while a 200 MB file is uploaded and
//! downloaded. Run with `cargo bench --bench media`; figures go to docs/performance.md.
//!
//! The server runs as its own process (the release binary) so the client's buffers do not
//! count; its peak resident set (`VmHWM`) is read from /proc after each phase.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const SIZE_MB: usize = 200;
const CHUNK: usize = 1024 * 1024;

fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}

/// Deterministic bytes for chunk `i`.
fn chunk(i: usize) -> Vec<u8> {
    let mut state = (i as u32).wrapping_mul(2_654_435_761) | 1;
    (0..CHUNK)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("conclave.toml");
    std::fs::write(
        &config,
        format!(
            "[global]\nserver_name = \"localhost\"\ndatabase_path = \"{}\"\nport = {port}\n\
             allow_registration = true\nmax_upload_size = {}\nlog = \"warn\"\n",
            dir.path().join("db").display(),
            (SIZE_MB + 10) * CHUNK
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_conclave"))
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the server binary");
    let pid = child.id();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http
            .get(format!("{base}/_matrix/client/versions"))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let register = format!("{base}/_matrix/client/v3/register");
    let body = json!({ "username": "bench", "password": "benchmark-password" });
    let first: Value = http
        .post(&register)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut body = body;
    body["auth"] = json!({ "type": "m.login.dummy", "session": first["session"] });
    let done: Value = http
        .post(&register)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = done["access_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = status_kb(pid, "VmRSS:");
    let idle_peak = status_kb(pid, "VmHWM:");

    let mut sent_hash = Sha256::new();
    let chunks: Vec<Vec<u8>> = (0..SIZE_MB).map(chunk).collect();
    for c in &chunks {
        sent_hash.update(c);
    }
    let stream = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    let started = Instant::now();
    let uploaded: Value = http
        .post(format!("{base}/_matrix/media/v3/upload?filename=big.bin"))
        .bearer_auth(&token)
        .header("Content-Type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let upload_time = started.elapsed();
    let upload_peak = status_kb(pid, "VmHWM:");
    let mxc = uploaded["content_uri"]
        .as_str()
        .expect("uploaded")
        .to_owned();
    let (server, id) = mxc.trim_start_matches("mxc://").split_once('/').unwrap();

    let started = Instant::now();
    let response = http
        .get(format!(
            "{base}/_matrix/client/v1/media/download/{server}/{id}"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let mut received = 0usize;
    let mut received_hash = Sha256::new();
    let mut body = response.bytes_stream();
    while let Some(part) = body.next().await {
        let part = part.unwrap();
        received += part.len();
        received_hash.update(&part);
    }
    let download_time = started.elapsed();
    let download_peak = status_kb(pid, "VmHWM:");
    assert_eq!(received, SIZE_MB * CHUNK);
    assert_eq!(
        sent_hash.finalize(),
        received_hash.finalize(),
        "downloaded bytes differ"
    );
    let _ = child.kill();
    let _ = child.wait();

    let mb = |kb: u64| kb as f64 / 1024.0;
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| server RSS after start and one registration | {:.1} MB |",
        mb(idle_rss)
    );
    println!(
        "| server peak RSS before the transfer | {:.1} MB |",
        mb(idle_peak)
    );
    println!(
        "| server peak RSS after uploading {SIZE_MB} MB ({:.1} s, {:.0} MB/s) | {:.1} MB |",
        upload_time.as_secs_f64(),
        SIZE_MB as f64 / upload_time.as_secs_f64(),
        mb(upload_peak)
    );
    println!(
        "| server peak RSS after downloading it ({:.1} s, {:.0} MB/s) | {:.1} MB |",
        download_time.as_secs_f64(),
        SIZE_MB as f64 / download_time.as_secs_f64(),
        mb(download_peak)
    );
}
