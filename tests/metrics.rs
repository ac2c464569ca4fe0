//! Prometheus metrics on their own listener: what an operator's Prometheus scrapes, checked
//! with Prometheus' own `promtool check metrics` (Debian package `prometheus`), and the Grafana
//! dashboard in docs/ checked against them.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{TestServer, expect_ok};
use serde_json::json;

async fn scrape(ts: &TestServer) -> String {
    let addr = ts
        .server()
        .metrics_addr()
        .expect("the metrics listener runs");
    let response = ts
        .client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

/// The value of the series whose line starts with `series` (name and labels as rendered).
fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series {series} in:\n{metrics}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_long_polls_and_rocksdb_and_pass_promtool() {
    let mut ts = TestServer::start_with(|config| {
        config.allow_registration = true;
        config.registration_token = None;
        config.metrics.enabled = true;
        config.metrics.port = 0;
    })
    .await;
    let alice = ts.register_open("alice", "pw").await;
    let room = expect_ok(
        ts.post("/_matrix/client/v3/createRoom", alice.bearer(), &json!({}))
            .await,
    )["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for txn in 0..4 {
        expect_ok(
            ts.put(
                &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/m{txn}"),
                alice.bearer(),
                &json!({ "msgtype": "m.text", "body": "hello" }),
            )
            .await,
        );
    }
    // Restarted, the writes are in SST files, read through the block cache (fresh counters).
    ts.restart().await;
    let (status, _) = ts.get("/_matrix/client/v3/no/such/endpoint", None).await;
    assert_eq!(status, 404);
    let since = expect_ok(ts.get("/_matrix/client/v3/sync", alice.bearer()).await)["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();

    // A long-poll waits; the gauge shows it until a message wakes it.
    let long_poll = {
        let client = ts.client().clone();
        let url = ts.url(&format!(
            "/_matrix/client/v3/sync?since={since}&timeout=30000"
        ));
        let token = alice.access_token.clone();
        tokio::spawn(async move { client.get(url).bearer_auth(token).send().await })
    };
    let mut waiting = 0.0;
    for _ in 0..200 {
        waiting = value(&scrape(&ts).await, "conclave_sync_long_polls_waiting");
        if waiting >= 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(waiting, 1.0, "the long-poll is counted while it waits");
    expect_ok(
        ts.put(
            &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/wake-{since}"),
            alice.bearer(),
            &json!({ "msgtype": "m.text", "body": "wake up" }),
        )
        .await,
    );
    assert_eq!(long_poll.await.unwrap().unwrap().status(), 200);

    let metrics = scrape(&ts).await;
    assert_eq!(
        value(
            &metrics,
            "conclave_http_requests_total{endpoint=\"/_matrix/client/v3/rooms/{room_id}/send/{event_type}/{txn_id}\",method=\"PUT\",status=\"200\"}"
        ),
        1.0,
        "the send since the restart, counted by route template"
    );
    assert_eq!(
        value(
            &metrics,
            "conclave_http_requests_total{endpoint=\"unmatched\",method=\"GET\",status=\"404\"}"
        ),
        1.0
    );
    assert!(
        value(
            &metrics,
            "conclave_http_request_duration_seconds_count{endpoint=\"/_matrix/client/v3/sync\",method=\"GET\"}"
        ) >= 2.0
    );
    assert_eq!(value(&metrics, "conclave_sync_long_polls_waiting"), 0.0);
    assert!(!metrics.contains(&room), "no room IDs in labels");
    assert!(value(&metrics, "conclave_rocksdb_block_cache_hits_total") > 0.0);
    assert!(value(&metrics, "conclave_rocksdb_bytes{kind=\"memtables\"}") > 0.0);
    assert!(value(&metrics, "conclave_rocksdb_bytes{kind=\"sst_files\"}") > 0.0);
    assert_eq!(
        value(
            &metrics,
            "conclave_rocksdb_bytes{kind=\"block_cache_capacity\"}"
        ),
        256.0 * 1024.0 * 1024.0
    );
    assert!(value(&metrics, "process_resident_memory_bytes") > 1e6);
    assert!(metrics.contains("conclave_push_delivery_users 0"));

    // Prometheus' own checker: the format parses and follows its naming conventions.
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is installed");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(checked.status.success(), "promtool: {report}");
    assert!(report.trim().is_empty(), "promtool: {report}");

    check_dashboard(&metrics);
    ts.shutdown().await;
}

/// docs/grafana-dashboard.json: every query is valid PromQL (promtool checks it as a recording
/// rule) and names only metrics the server serves.
fn check_dashboard(metrics: &str) {
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../docs/grafana-dashboard.json")).unwrap();
    // What the scrape showed, and the families that have no series yet here (no partner
    // server, no bridge).
    let families = conclave::service::metrics::Metrics::new()
        .unwrap()
        .family_names();
    let served: Vec<&str> = metrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split_whitespace().next())
        .chain(families.iter().map(String::as_str))
        .collect();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut count = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for name in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|word| word.starts_with("conclave_") || word.starts_with("process_"))
            {
                let family = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .filter(|family| served.contains(family))
                    .unwrap_or(name);
                assert!(
                    served.contains(&family),
                    "{:?} queries {name}, which the server does not serve",
                    panel["title"]
                );
            }
            // Grafana's variables, as Grafana substitutes them.
            let expr = expr
                .replace("$__rate_interval", "5m")
                .replace("$instance", ".*")
                .replace("$job", ".*");
            count += 1;
            rules.push_str(&format!(
                "      - record: dashboard:query_{count}\n        expr: {}\n",
                serde_json::to_string(&expr).unwrap()
            ));
        }
    }
    assert!(count >= 10, "the dashboard has its panels");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-rules.yml");
    std::fs::write(&file, &rules).unwrap();
    let checked = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "promtool check rules:\n{}{}\n{rules}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}

#[tokio::test]
async fn metrics_are_off_by_default_and_never_on_the_client_listener() {
    let ts = TestServer::start().await;
    assert!(ts.server().metrics_addr().is_none());
    let (status, body) = ts.get("/metrics", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["errcode"], "M_UNRECOGNIZED");
    ts.shutdown().await;
}
