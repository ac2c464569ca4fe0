//! conclave-bench (the load tool in `bench/`) against a real Conclave started in-test: every
//! scenario runs for a moment through the tool's command line, and the report, plot and
//! comparison it writes hold real measurements. This is also CI's smoke run of the tool.

mod common;

use common::*;
use serde_json::Value;

/// Runs the tool's command line on a blocking thread (it owns its own runtime).
async fn bench(args: Vec<String>) -> i32 {
    tokio::task::spawn_blocking(move || {
        let mut argv = vec!["conclave-bench".to_owned()];
        argv.extend(args);
        conclave_bench::cli_main(argv)
    })
    .await
    .expect("bench thread")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_and_the_report_holds_real_measurements() {
    let ts = TestServer::start_with(|cfg| {
        cfg.allow_registration = true;
        cfg.registration_token = None;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let report_a = dir.path().join("a.json");
    let plot = dir.path().join("a.svg");
    let url = ts.url("");
    let pid = std::process::id().to_string();
    let mut run = args(&[
        "run",
        "--url",
        &url,
        "--users",
        "6",
        "--rooms",
        "3",
        "--members-per-room",
        "3",
        "--send-concurrency",
        "4",
        "--send-duration-secs",
        "0.5",
        "--sequential-sends",
        "20",
        "--wakeup-reps",
        "5",
        "--wakeup-delay-ms",
        "20",
        "--history-messages",
        "20",
        "--sync-reps",
        "2",
        "--sync-rooms",
        "8",
        "--sync-room-messages",
        "1",
        "--chat-senders",
        "2",
        "--chat-rate",
        "20",
        "--chat-duration-secs",
        "1",
        "--chat-grace-secs",
        "5",
        "--join-storm-users",
        "5",
        "--login-burst",
        "5",
        "--register-burst",
        "3",
        "--pid",
        &pid,
        "--label",
        "conclave",
        "--quiet",
        "--seed",
        "7",
    ]);
    run.extend(args(&[
        "--report",
        report_a.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]));
    assert_eq!(bench(run).await, 0, "the run failed");

    let report: Value = serde_json::from_slice(&std::fs::read(&report_a).unwrap()).unwrap();
    assert_eq!(report["tool"], "conclave-bench");
    assert_eq!(report["label"], "conclave");
    assert!(
        report["idle_rss_bytes"].as_u64().unwrap() > 1_000_000,
        "{report}"
    );
    for name in [
        "sequential-send",
        "concurrent-send",
        "wakeup",
        "initial-sync-history",
        "initial-sync-rooms",
        "steady-chat",
        "join-storm",
        "login-burst",
        "register-burst",
    ] {
        let scenario = &report["scenarios"][name];
        assert!(scenario["ops"].as_u64().unwrap() > 0, "{name}: {scenario}");
        assert_eq!(scenario["errors"], 0, "{name}: {scenario}");
        let p50 = scenario["latency_ms"]["p50"].as_f64().unwrap();
        let max = scenario["latency_ms"]["max"].as_f64().unwrap();
        assert!(p50 <= max && max > 0.0, "{name}: {scenario}");
        assert!(scenario["throughput_per_sec"].as_f64().unwrap() > 0.0);
        assert!(!scenario["samples"].as_array().unwrap().is_empty());
        assert!(scenario["peak_rss_bytes"].as_u64().is_some(), "{name}");
    }
    // Every message sent in steady chat reached the other members' long-polls.
    let chat = &report["scenarios"]["steady-chat"];
    assert!(chat["delivery_ms"]["p50"].as_f64().unwrap() > 0.0, "{chat}");
    assert!(chat["error_kinds"].get("undelivered").is_none(), "{chat}");
    assert_eq!(
        report["scenarios"]["sequential-send"]["ops"], 20,
        "every sequential send is counted"
    );
    assert_eq!(report["scenarios"]["join-storm"]["ops"], 5);

    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(
        svg.starts_with("<svg") || svg.starts_with("<?xml"),
        "{svg:.100}"
    );
    // One series per scenario, each drawn as a path.
    assert!(svg.contains("steady-chat") && svg.contains("sequential-send"));
    assert!(svg.matches("<path").count() >= 9, "{svg:.500}");

    // `compare` puts two reports side by side; the same report against itself is 1.00×.
    let a: conclave_bench::Report =
        serde_json::from_slice(&std::fs::read(&report_a).unwrap()).unwrap();
    let table = conclave_bench::compare(&a, &a);
    assert!(
        table.contains("sequential-send") && table.contains("1.00"),
        "{table}"
    );
    assert_eq!(
        bench(args(&[
            "compare",
            report_a.to_str().unwrap(),
            report_a.to_str().unwrap()
        ]))
        .await,
        0
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_registered_with_a_registration_token() {
    let ts = TestServer::start_with(|cfg| {
        cfg.allow_registration = true;
        cfg.registration_token = Some("bench-token".to_owned());
    })
    .await;
    let url = ts.url("");
    let common = [
        "run",
        "--url",
        &url,
        "--users",
        "2",
        "--rooms",
        "1",
        "--members-per-room",
        "2",
        "--scenarios",
        "sequential-send",
        "--sequential-sends",
        "5",
        "--quiet",
    ];
    let mut wrong = args(&common);
    wrong.extend(args(&["--registration-token", "not-the-token"]));
    assert_eq!(bench(wrong).await, 1, "a wrong token must fail the run");

    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let mut right = args(&common);
    right.extend(args(&[
        "--registration-token",
        "bench-token",
        "--report",
        report.to_str().unwrap(),
    ]));
    assert_eq!(bench(right).await, 0);
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["scenarios"]["sequential-send"]["ops"], 5, "{report}");
    ts.shutdown().await;
}
