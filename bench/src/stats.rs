//! Latency samples, percentiles, error tallies and decimation.
//!
//! Every measured operation is kept as `(seconds since scenario start, milliseconds)` rather
//! than folded into a histogram, so the same data gives percentiles, a latency-over-time
//! plot and the (decimated) sample list in the JSON report.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Latency samples of one series, in recording order.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    points: Vec<(f64, f64)>,
}

impl Samples {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one operation that started `t_secs` after the scenario start and took `ms`.
    pub fn push(&mut self, t_secs: f64, ms: f64) {
        if t_secs.is_finite() && ms.is_finite() {
            self.points.push((t_secs, ms));
        }
    }

    pub fn extend(&mut self, other: Samples) {
        self.points.extend(other.points);
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Percentile summary, or `None` when nothing was recorded.
    pub fn summary(&self) -> Option<Summary> {
        let values: Vec<f64> = self.points.iter().map(|p| p.1).collect();
        Summary::of(&values)
    }

    /// Points sorted by time and thinned to at most `max` (for the report and the plot).
    pub fn decimated(&self, max: usize) -> Vec<[f64; 2]> {
        let mut sorted = self.points.clone();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        decimate(&sorted, max)
            .into_iter()
            .map(|(t, ms)| [round3(t), round3(ms)])
            .collect()
    }
}

/// p50/p95/p99/max/mean of a series, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Summary {
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
        Some(Summary {
            p50: round3(percentile(&sorted, 50.0)),
            p95: round3(percentile(&sorted, 95.0)),
            p99: round3(percentile(&sorted, 99.0)),
            max: round3(sorted[sorted.len() - 1]),
            mean: round3(mean),
        })
    }
}

/// Nearest-rank percentile of an ascending slice: the smallest value with at least `p`% of
/// the values at or below it. Chosen over interpolation so every reported figure is a latency
/// that was actually observed.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// Keeps at most `max` items, evenly spaced, always including the first and the last.
pub fn decimate<T: Clone>(items: &[T], max: usize) -> Vec<T> {
    let n = items.len();
    if n <= max {
        return items.to_vec();
    }
    match max {
        0 => Vec::new(),
        1 => vec![items[0].clone()],
        _ => (0..max)
            .map(|i| items[i * (n - 1) / (max - 1)].clone())
            .collect(),
    }
}

/// Rounds to three decimals, which keeps the JSON report readable (microsecond precision).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Failures by kind (`M_LIMIT_EXCEEDED`, `http 500`, `network: timeout`, ...).
#[derive(Debug, Clone, Default)]
pub struct ErrorTally {
    kinds: BTreeMap<String, u64>,
}

impl ErrorTally {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, kind: impl Into<String>) {
        self.add_n(kind, 1);
    }

    pub fn add_n(&mut self, kind: impl Into<String>, n: u64) {
        if n > 0 {
            *self.kinds.entry(kind.into()).or_insert(0) += n;
        }
    }

    pub fn merge(&mut self, other: ErrorTally) {
        for (kind, n) in other.kinds {
            self.add_n(kind, n);
        }
    }

    pub fn total(&self) -> u64 {
        self.kinds.values().sum()
    }

    pub fn into_map(self) -> BTreeMap<String, u64> {
        self.kinds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 95.0), 95.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&values, 100.0), 100.0);
        assert_eq!(percentile(&values, 0.0), 1.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
        // 10 values: p95 is the 10th, p50 the 5th.
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&ten, 50.0), 5.0);
        assert_eq!(percentile(&ten, 95.0), 10.0);
    }

    #[test]
    fn summary_sorts_and_averages() {
        let s = Summary::of(&[5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!(s.p50, 3.0);
        assert_eq!(s.p99, 5.0);
        assert_eq!(s.max, 5.0);
        assert_eq!(s.mean, 3.0);
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn decimation_is_even_and_keeps_ends() {
        let items: Vec<usize> = (0..10_000).collect();
        let kept = decimate(&items, 5_000);
        assert_eq!(kept.len(), 5_000);
        assert_eq!(kept[0], 0);
        assert_eq!(*kept.last().unwrap(), 9_999);
        assert!(kept.windows(2).all(|w| w[1] > w[0]));
        let gaps: Vec<usize> = kept.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|&g| g == 1 || g == 2 || g == 3));
        assert_eq!(decimate(&items[..3], 5), vec![0, 1, 2]);
        assert_eq!(decimate(&items, 1), vec![0]);
        assert!(decimate(&items, 0).is_empty());
    }

    #[test]
    fn samples_decimate_sorted_by_time() {
        let mut s = Samples::new();
        for i in (0..20_000).rev() {
            s.push(i as f64 / 1000.0, 1.0);
        }
        s.push(f64::NAN, 1.0);
        assert_eq!(s.len(), 20_000);
        let d = s.decimated(5_000);
        assert_eq!(d.len(), 5_000);
        assert!(d.windows(2).all(|w| w[1][0] >= w[0][0]));
        assert_eq!(d[0][0], 0.0);
    }

    #[test]
    fn error_tally_counts_kinds() {
        let mut e = ErrorTally::new();
        e.add("M_LIMIT_EXCEEDED");
        e.add("M_LIMIT_EXCEEDED");
        e.add("http 500");
        let mut other = ErrorTally::new();
        other.add_n("http 500", 2);
        other.add_n("nothing", 0);
        e.merge(other);
        assert_eq!(e.total(), 5);
        let map = e.into_map();
        assert_eq!(map["M_LIMIT_EXCEEDED"], 2);
        assert_eq!(map["http 500"], 3);
        assert!(!map.contains_key("nothing"));
    }
}
