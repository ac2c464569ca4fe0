//! The JSON report, the end-of-run summary table and the side-by-side comparison of two
//! reports (the point of the tool: the same figures for two servers).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::BenchError;
use crate::scenarios::SCENARIO_ORDER;
use crate::stats::Summary;

/// Most samples kept per series in the JSON report.
pub const MAX_SAMPLES: usize = 5_000;

/// A whole run, as written by `--report` and read by `compare` and `plot`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub tool: String,
    pub version: String,
    #[serde(default)]
    pub label: Option<String>,
    pub url: String,
    #[serde(default)]
    pub server: ServerInfo,
    #[serde(default)]
    pub started_at: String,
    /// The options of the run (secrets left out).
    #[serde(default)]
    pub params: Value,
    /// Server RSS before any load (needs `--pid`).
    #[serde(default)]
    pub idle_rss_bytes: Option<u64>,
    #[serde(default)]
    pub setup: SetupInfo,
    #[serde(default)]
    pub scenarios: BTreeMap<String, ScenarioReport>,
    /// `[seconds since start, RSS bytes, CPU %]` of the server over the whole run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_samples: Vec<[f64; 3]>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerInfo {
    /// `versions` of `GET /_matrix/client/versions`.
    #[serde(default)]
    pub versions: Value,
    /// The `Server` header of that answer, when sent.
    #[serde(default)]
    pub server_header: Option<String>,
}

/// What preparing the population cost (explains a slow run on a rate-limited server).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SetupInfo {
    pub secs: f64,
    pub rate_limited: u64,
    pub network_retries: u64,
    pub user_prefix: String,
}

/// The figures of one scenario.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScenarioReport {
    /// Successful measured operations.
    pub ops: u64,
    pub errors: u64,
    #[serde(default)]
    pub error_kinds: BTreeMap<String, u64>,
    pub wall_secs: f64,
    pub throughput_per_sec: f64,
    #[serde(default)]
    pub latency_ms: Option<Summary>,
    /// Send → delivery (steady-chat, wakeup).
    #[serde(default)]
    pub delivery_ms: Option<Summary>,
    #[serde(default)]
    pub cpu_percent: Option<f64>,
    #[serde(default)]
    pub peak_rss_bytes: Option<u64>,
    /// `[seconds since scenario start, latency ms]`, decimated.
    #[serde(default)]
    pub samples: Vec<[f64; 2]>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivery_samples: Vec<[f64; 2]>,
    /// Scenario-specific figures (target rate, response sizes, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Value>,
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    pub fn from_json(text: &str) -> Result<Self, BenchError> {
        serde_json::from_str(text).map_err(|e| BenchError::Config(format!("not a report: {e}")))
    }

    pub fn load(path: &str) -> Result<Self, BenchError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BenchError::Io(format!("cannot read {path}: {e}")))?;
        Self::from_json(&text).map_err(|e| BenchError::Config(format!("{path}: {e}")))
    }

    /// Scenario names in the canonical run order (unknown names last, alphabetically).
    pub fn scenario_names(&self) -> Vec<&str> {
        ordered(self.scenarios.keys().map(String::as_str))
    }

    /// The end-of-run table.
    pub fn summary_table(&self) -> String {
        let mut rows = Vec::new();
        for name in self.scenario_names() {
            let s = &self.scenarios[name];
            let lat =
                |f: fn(&Summary) -> f64| s.latency_ms.as_ref().map_or("-".into(), |x| ms(f(x)));
            rows.push(vec![
                name.to_owned(),
                s.ops.to_string(),
                s.errors.to_string(),
                format!("{:.1}/s", s.throughput_per_sec),
                lat(|x| x.p50),
                lat(|x| x.p95),
                lat(|x| x.p99),
                lat(|x| x.max),
                s.cpu_percent.map_or("-".into(), |c| format!("{c:.0}%")),
                s.peak_rss_bytes.map_or("-".into(), bytes),
            ]);
            if let Some(d) = &s.delivery_ms {
                rows.push(vec![
                    "  delivery".to_owned(),
                    String::new(),
                    String::new(),
                    String::new(),
                    ms(d.p50),
                    ms(d.p95),
                    ms(d.p99),
                    ms(d.max),
                    String::new(),
                    String::new(),
                ]);
            }
        }
        let headers = [
            "scenario",
            "ops",
            "errors",
            "throughput",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "cpu",
            "peak RSS",
        ];
        let mut out = render_table(&headers, &rows, 1);
        if let Some(idle) = self.idle_rss_bytes {
            out.push_str(&format!("idle RSS: {}\n", bytes(idle)));
        }
        for name in self.scenario_names() {
            let s = &self.scenarios[name];
            if !s.error_kinds.is_empty() {
                let kinds: Vec<String> = s
                    .error_kinds
                    .iter()
                    .map(|(k, n)| format!("{k} ×{n}"))
                    .collect();
                out.push_str(&format!("errors in {name}: {}\n", kinds.join(", ")));
            }
        }
        out
    }
}

/// Orders scenario names as the run does.
pub fn ordered<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut names: Vec<&str> = names.collect();
    names.sort_by_key(|n| {
        (
            SCENARIO_ORDER
                .iter()
                .position(|o| o == n)
                .unwrap_or(usize::MAX),
            n.to_string(),
        )
    });
    names.dedup();
    names
}

/// Which way is better for a figure.
#[derive(Clone, Copy)]
enum Better {
    Lower,
    Higher,
}

/// `ratio` = B/A, and who wins by how much.
fn verdict(a: f64, b: f64, better: Better) -> (String, String) {
    if !(a.is_finite() && b.is_finite()) || a <= 0.0 || b <= 0.0 {
        return ("-".into(), "-".into());
    }
    let ratio = b / a;
    let ratio_text = if ratio >= 100.0 {
        format!("{ratio:.0}")
    } else {
        format!("{ratio:.3}")
    };
    if (ratio - 1.0).abs() < 0.02 {
        return (ratio_text, "≈ same".into());
    }
    let b_wins = match better {
        Better::Lower => ratio < 1.0,
        Better::Higher => ratio > 1.0,
    };
    let factor = if ratio > 1.0 { ratio } else { 1.0 / ratio };
    let who = if b_wins { "B" } else { "A" };
    (ratio_text, format!("{who} {factor:.1}× better"))
}

/// Two reports side by side: each scenario's throughput and latency percentiles, memory and
/// CPU, with B/A and which side is better by how much.
pub fn compare(a: &Report, b: &Report) -> String {
    let name = |r: &Report, fallback: &str| {
        let label = r.label.clone().unwrap_or_else(|| fallback.to_owned());
        let server = r
            .server
            .server_header
            .as_deref()
            .unwrap_or("unknown server");
        format!("{label} ({}, {server}, {})", r.url, r.started_at)
    };
    let mut out = format!("A: {}\nB: {}\n", name(a, "A"), name(b, "B"));
    out.push_str(
        "B/A is B's figure divided by A's; \"better\" names the winner and by how much \
         (lower latency, memory and CPU are better; higher throughput is better).\n\n",
    );
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut push = |scenario: &str,
                    metric: &str,
                    va: Option<f64>,
                    vb: Option<f64>,
                    better: Better,
                    fmt: &dyn Fn(f64) -> String| {
        let show = |v: Option<f64>| v.map_or("-".to_owned(), fmt);
        let (ratio, who) = match (va, vb) {
            (Some(x), Some(y)) => verdict(x, y, better),
            _ => ("-".into(), "-".into()),
        };
        rows.push(vec![
            scenario.to_owned(),
            metric.to_owned(),
            show(va),
            show(vb),
            ratio,
            who,
        ]);
    };
    let names = ordered(
        a.scenarios
            .keys()
            .chain(b.scenarios.keys())
            .map(String::as_str),
    );
    for scenario in names {
        let sa = a.scenarios.get(scenario);
        let sb = b.scenarios.get(scenario);
        let field =
            |s: Option<&ScenarioReport>, f: &dyn Fn(&ScenarioReport) -> Option<f64>| s.and_then(f);
        let mut label = scenario;
        let mut row = |metric: &str,
                       f: &dyn Fn(&ScenarioReport) -> Option<f64>,
                       better,
                       fmt: &dyn Fn(f64) -> String| {
            push(label, metric, field(sa, f), field(sb, f), better, fmt);
            label = "";
        };
        row(
            "throughput",
            &|s| Some(s.throughput_per_sec),
            Better::Higher,
            &|v| format!("{v:.1}/s"),
        );
        for (metric, pick) in [
            ("p50 ms", (|x: &Summary| x.p50) as fn(&Summary) -> f64),
            ("p95 ms", |x| x.p95),
            ("p99 ms", |x| x.p99),
        ] {
            row(
                metric,
                &|s| s.latency_ms.as_ref().map(pick),
                Better::Lower,
                &ms,
            );
        }
        let has_delivery = |s: Option<&ScenarioReport>| s.is_some_and(|s| s.delivery_ms.is_some());
        if has_delivery(sa) || has_delivery(sb) {
            for (metric, pick) in [
                (
                    "delivery p50 ms",
                    (|x: &Summary| x.p50) as fn(&Summary) -> f64,
                ),
                ("delivery p99 ms", |x| x.p99),
            ] {
                row(
                    metric,
                    &|s| s.delivery_ms.as_ref().map(pick),
                    Better::Lower,
                    &ms,
                );
            }
        }
        let errors = |s: Option<&ScenarioReport>| s.map(|s| s.errors);
        if errors(sa).unwrap_or(0) + errors(sb).unwrap_or(0) > 0 {
            row("errors", &|s| Some(s.errors as f64), Better::Lower, &|v| {
                format!("{v:.0}")
            });
        }
        let has = |f: fn(&ScenarioReport) -> bool| sa.is_some_and(f) || sb.is_some_and(f);
        if has(|s| s.cpu_percent.is_some()) {
            row("server CPU", &|s| s.cpu_percent, Better::Lower, &|v| {
                format!("{v:.0}%")
            });
        }
        if has(|s| s.peak_rss_bytes.is_some()) {
            row(
                "peak RSS",
                &|s| s.peak_rss_bytes.map(|v| v as f64),
                Better::Lower,
                &|v| bytes(v as u64),
            );
        }
    }
    let to_f = |v: Option<u64>| v.map(|v| v as f64);
    push(
        "(server)",
        "idle RSS",
        to_f(a.idle_rss_bytes),
        to_f(b.idle_rss_bytes),
        Better::Lower,
        &|v| bytes(v as u64),
    );
    let peak = |r: &Report| r.scenarios.values().filter_map(|s| s.peak_rss_bytes).max();
    push(
        "",
        "peak RSS (any)",
        to_f(peak(a)),
        to_f(peak(b)),
        Better::Lower,
        &|v| bytes(v as u64),
    );
    out.push_str(&render_table(
        &["scenario", "metric", "A", "B", "B/A", "better"],
        &rows,
        2,
    ));
    out
}

/// Milliseconds with sensible precision.
pub fn ms(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Bytes in MiB (or KiB for small values).
pub fn bytes(v: u64) -> String {
    let mib = v as f64 / (1024.0 * 1024.0);
    if mib >= 1.0 {
        format!("{mib:.1} MiB")
    } else {
        format!("{:.0} KiB", v as f64 / 1024.0)
    }
}

/// Aligned columns: the first `left` columns left-aligned, the rest right-aligned.
pub fn render_table(headers: &[&str], rows: &[Vec<String>], left: usize) -> String {
    let columns = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            if i > 0 {
                text.push_str("  ");
            }
            if i < left {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            } else {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            }
        }
        text.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.to_vec());
    let total: usize = widths.iter().sum::<usize>() + 2 * columns.saturating_sub(1);
    out.push_str(&"-".repeat(total));
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn scenario(throughput: f64, p50: f64) -> ScenarioReport {
        ScenarioReport {
            ops: 100,
            wall_secs: 1.0,
            throughput_per_sec: throughput,
            latency_ms: Some(Summary {
                p50,
                p95: p50 * 2.0,
                p99: p50 * 3.0,
                max: p50 * 4.0,
                mean: p50,
            }),
            samples: vec![[0.0, p50], [0.5, p50 * 2.0]],
            ..Default::default()
        }
    }

    pub(crate) fn fabricated(label: &str, throughput: f64, p50: f64, rss: u64) -> Report {
        let mut scenarios = BTreeMap::new();
        scenarios.insert("sequential-send".to_owned(), scenario(throughput, p50));
        let mut chat = scenario(throughput / 2.0, p50);
        chat.delivery_ms = Some(Summary {
            p50: 5.0,
            p95: 6.0,
            p99: 7.0,
            max: 8.0,
            mean: 5.5,
        });
        chat.delivery_samples = vec![[0.1, 5.0]];
        chat.errors = 2;
        chat.error_kinds.insert("M_LIMIT_EXCEEDED".into(), 2);
        chat.peak_rss_bytes = Some(rss * 2);
        scenarios.insert("steady-chat".to_owned(), chat);
        Report {
            tool: "conclave-bench".into(),
            version: "0.1.0".into(),
            label: Some(label.into()),
            url: "http://localhost:8008".into(),
            server: ServerInfo::default(),
            started_at: "2025-01-01T00:00:00Z".into(),
            params: Value::Null,
            idle_rss_bytes: Some(rss),
            setup: SetupInfo::default(),
            scenarios,
            resource_samples: Vec::new(),
        }
    }

    #[test]
    fn compare_prints_ratios_and_winner() {
        let a = fabricated("conclave", 1230.0, 1.0, 50 << 20);
        let b = fabricated("synapse", 100.0, 12.3, 200 << 20);
        let text = compare(&a, &b);
        println!("{text}");
        assert!(text.contains("A: conclave"), "{text}");
        assert!(text.contains("B: synapse"), "{text}");
        // Throughput: A 12.3× better; latency: A 12.3× better; memory: A 4.0× better.
        let seq = text
            .lines()
            .find(|l| l.starts_with("sequential-send"))
            .unwrap();
        assert!(
            seq.contains("throughput") && seq.contains("A 12.3× better"),
            "{seq}"
        );
        let p50 = text
            .lines()
            .find(|l| l.contains("p50 ms") && !l.contains("delivery"))
            .unwrap();
        assert!(
            p50.contains("12.300") && p50.contains("A 12.3× better"),
            "{p50}"
        );
        let idle = text.lines().find(|l| l.contains("idle RSS")).unwrap();
        assert!(
            idle.contains("50.0 MiB")
                && idle.contains("200.0 MiB")
                && idle.contains("A 4.0× better"),
            "{idle}"
        );
        assert!(text.contains("delivery p50 ms"));
        assert!(text.contains("≈ same"), "delivery is equal: {text}");
        // Reversed, B wins.
        let reversed = compare(&b, &a);
        assert!(reversed.contains("B 12.3× better"), "{reversed}");
    }

    #[test]
    fn compare_handles_missing_scenarios() {
        let a = fabricated("a", 10.0, 1.0, 1 << 20);
        let mut b = fabricated("b", 10.0, 1.0, 1 << 20);
        b.scenarios.remove("steady-chat");
        b.idle_rss_bytes = None;
        let text = compare(&a, &b);
        let chat = text.lines().find(|l| l.starts_with("steady-chat")).unwrap();
        assert!(chat.trim_end().ends_with('-'), "{chat}");
        assert!(
            text.lines()
                .find(|l| l.contains("idle RSS"))
                .unwrap()
                .contains('-')
        );
    }

    #[test]
    fn report_round_trips_and_summarises() {
        let a = fabricated("a", 10.0, 1.0, 1 << 20);
        let back = Report::from_json(&a.to_json()).unwrap();
        assert_eq!(back.scenarios.len(), 2);
        assert_eq!(back.label.as_deref(), Some("a"));
        // Order: sequential-send before steady-chat, as the run does.
        assert_eq!(
            back.scenario_names(),
            vec!["sequential-send", "steady-chat"]
        );
        let table = back.summary_table();
        assert!(table.contains("sequential-send"), "{table}");
        assert!(table.contains("  delivery"), "{table}");
        assert!(
            table.contains("errors in steady-chat: M_LIMIT_EXCEEDED ×2"),
            "{table}"
        );
        assert!(Report::from_json("{}").is_err());
    }

    #[test]
    fn verdicts() {
        assert_eq!(verdict(10.0, 5.0, Better::Lower).1, "B 2.0× better");
        assert_eq!(verdict(10.0, 5.0, Better::Higher).1, "A 2.0× better");
        assert_eq!(verdict(10.0, 10.1, Better::Lower).1, "≈ same");
        assert_eq!(verdict(0.0, 1.0, Better::Lower).1, "-");
    }
}
