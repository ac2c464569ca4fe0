//! A hand-written SVG of latency over time: one panel per scenario (send latency and, where
//! measured, delivery latency as a second colour), plus the server's RSS when it was sampled.
//! Plain and dependency-free; meant to spot stalls, warm-up and drift at a glance.

use std::fmt::Write;

use crate::report::{Report, ms};
use crate::stats::percentile;

const WIDTH: f64 = 960.0;
const PANEL_HEIGHT: f64 = 240.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 48.0;
const PANEL_TOP: f64 = 28.0;
const PANEL_BOTTOM: f64 = 40.0;
const COLOURS: [&str; 3] = ["#1f77b4", "#d62728", "#2ca02c"];

/// One coloured series of `[x, y]` points.
struct Series<'a> {
    label: String,
    points: &'a [[f64; 2]],
}

/// The SVG document for a report.
pub fn render_svg(report: &Report) -> String {
    let mut panels: Vec<(String, String, Vec<Series>)> = Vec::new();
    for name in report.scenario_names() {
        let s = &report.scenarios[name];
        let mut series = Vec::new();
        if !s.samples.is_empty() {
            series.push(Series {
                label: format!("{name} latency"),
                points: &s.samples,
            });
        }
        if !s.delivery_samples.is_empty() {
            series.push(Series {
                label: format!("{name} delivery"),
                points: &s.delivery_samples,
            });
        }
        if !series.is_empty() {
            panels.push((name.to_owned(), "latency (ms)".to_owned(), series));
        }
    }
    let rss: Vec<[f64; 2]> = report
        .resource_samples
        .iter()
        .map(|r| [r[0], r[1] / (1024.0 * 1024.0)])
        .collect();
    if !rss.is_empty() {
        panels.push((
            "server memory (whole run)".to_owned(),
            "RSS (MiB)".to_owned(),
            vec![Series {
                label: "server RSS".to_owned(),
                points: &rss,
            }],
        ));
    }
    let height = TOP + PANEL_HEIGHT * panels.len().max(1) as f64 + 10.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = format!(
        "conclave-bench: {} ({}, {})",
        report.label.as_deref().unwrap_or("unlabelled"),
        report.url,
        report.started_at
    );
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="24" font-size="15" font-weight="bold">{}</text>"#,
        esc(&title)
    );
    if panels.is_empty() {
        let _ = writeln!(svg, r#"<text x="{LEFT}" y="70">no samples</text>"#);
    }
    for (i, (title, y_label, series)) in panels.iter().enumerate() {
        panel(
            &mut svg,
            TOP + PANEL_HEIGHT * i as f64,
            title,
            y_label,
            series,
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn panel(svg: &mut String, top: f64, title: &str, y_label: &str, series: &[Series]) {
    let plot_top = top + PANEL_TOP;
    let plot_bottom = top + PANEL_HEIGHT - PANEL_BOTTOM;
    let plot_right = WIDTH - RIGHT;
    let values: Vec<f64> = {
        let mut v: Vec<f64> = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p[1]))
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let x_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p[0]))
        .fold(0.0_f64, f64::max);
    // Clip far outliers so the bulk stays readable; clipped points sit on the top edge.
    let max = values.last().copied().unwrap_or(1.0);
    let clip = (percentile(&values, 99.0) * 1.5).max(f64::MIN_POSITIVE);
    let (x_ticks, x_top) = ticks(x_max);
    let (y_ticks, y_top) = ticks(max.min(clip));
    let sx = |x: f64| LEFT + (x / x_top) * (plot_right - LEFT);
    let sy = |y: f64| plot_bottom - (y.min(y_top) / y_top) * (plot_bottom - plot_top);

    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="{:.1}" font-size="13" font-weight="bold">{}</text>"#,
        top + 18.0,
        esc(title)
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{plot_top:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#888"/>"##,
        plot_right - LEFT,
        plot_bottom - plot_top
    );
    for &t in &y_ticks {
        let y = sy(t);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{plot_right}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT - 6.0,
            y + 4.0,
            tick_label(t)
        );
    }
    for &t in &x_ticks {
        let x = sx(t);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{plot_bottom:.1}" y2="{:.1}" stroke="#888"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            plot_bottom + 4.0,
            plot_bottom + 16.0,
            tick_label(t)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">time (s)</text>"#,
        (LEFT + plot_right) / 2.0,
        plot_bottom + 32.0
    );
    let mid = (plot_top + plot_bottom) / 2.0;
    let _ = writeln!(
        svg,
        r#"<text x="16" y="{mid:.1}" text-anchor="middle" transform="rotate(-90 16 {mid:.1})">{}</text>"#,
        esc(y_label)
    );
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        // One path of zero-length round-capped segments: a compact scatter plot.
        let mut d = String::new();
        let mut clipped = 0;
        for p in s.points {
            if p[1] > y_top {
                clipped += 1;
            }
            let _ = write!(d, "M{:.1} {:.1}h0", sx(p[0]), sy(p[1]));
        }
        let _ = writeln!(
            svg,
            r#"<path d="{d}" stroke="{colour}" stroke-opacity="0.6" stroke-width="3" stroke-linecap="round" fill="none"/>"#
        );
        let mut sorted: Vec<f64> = s.points.iter().map(|p| p[1]).collect();
        sorted.sort_by(f64::total_cmp);
        let mut label = format!(
            "{} — {} points, p50 {}, p99 {}",
            s.label,
            s.points.len(),
            ms(percentile(&sorted, 50.0)),
            ms(percentile(&sorted, 99.0))
        );
        if clipped > 0 {
            label.push_str(&format!(
                ", {clipped} above the top (max {})",
                tick_label(max)
            ));
        }
        let y = plot_top + 14.0 + 14.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="10" height="10" fill="{colour}"/><text x="{:.1}" y="{y:.1}">{}</text>"#,
            LEFT + 8.0,
            y - 9.0,
            LEFT + 22.0,
            esc(&label)
        );
    }
}

/// Round ticks from 0 covering `max`: (ticks, axis top).
pub fn ticks(max: f64) -> (Vec<f64>, f64) {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let top = (max / step).ceil() * step;
    let count = (top / step).round() as usize;
    ((0..=count).map(|i| i as f64 * step).collect(), top)
}

fn tick_label(v: f64) -> String {
    // Ticks are multiples of 1, 2 or 5 × 10^k: six decimals, trimmed, show them exactly.
    let text = if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.6}")
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// XML text escaping.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::fabricated;

    #[test]
    fn svg_has_a_panel_and_series_per_scenario() {
        let mut report = fabricated("conclave <dev>", 100.0, 2.0, 1 << 20);
        report.resource_samples = vec![[0.0, 1048576.0, 0.0], [1.0, 2097152.0, 50.0]];
        let svg = render_svg(&report);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("sequential-send latency"));
        assert!(svg.contains("steady-chat latency"));
        assert!(svg.contains("steady-chat delivery"));
        assert!(svg.contains("server RSS"));
        assert!(svg.contains("conclave &lt;dev&gt;"), "title is escaped");
        assert!(svg.contains("time (s)") && svg.contains("latency (ms)"));
        // Three panels' worth of series: seq, chat ×2, RSS.
        assert_eq!(svg.matches("<path ").count(), 4);
        assert_eq!(svg.matches("stroke-linecap").count(), 4);
    }

    #[test]
    fn empty_report_still_renders() {
        let mut report = fabricated("x", 1.0, 1.0, 1);
        report.scenarios.clear();
        let svg = render_svg(&report);
        assert!(svg.contains("no samples"));
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(ticks(9.3), (vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0], 10.0));
        assert_eq!(ticks(100.0).1, 100.0);
        assert_eq!(ticks(0.0).1, 1.0);
        let (t, top) = ticks(1234.0);
        assert_eq!(top, 1500.0);
        assert_eq!(t[1], 500.0);
        assert_eq!(tick_label(2.50), "2.5");
        assert_eq!(tick_label(0.25), "0.25");
        assert_eq!(tick_label(3.0), "3");
        assert_eq!(tick_label(0.0002), "0.0002");
        assert_eq!(tick_label(3.0 * 0.1), "0.3");
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(1500.0), "1500");
    }
}
