//! Sampling a server process's memory and CPU from `/proc` (Linux), every 250 ms, so each
//! scenario can report the server's peak RSS and mean CPU while it ran.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::BenchError;

/// Sampling period.
pub const PERIOD: Duration = Duration::from_millis(250);
/// Clock ticks per second of `/proc/PID/stat` times; 100 on every mainstream Linux build
/// (`sysconf(_SC_CLK_TCK)`), assumed rather than asked to avoid a libc dependency.
pub const CLK_TCK: f64 = 100.0;

/// One reading.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    pub at: Instant,
    pub rss_bytes: u64,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
}

/// What a window of readings says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub peak_rss_bytes: u64,
    /// Mean CPU over the window, 100 = one core busy.
    pub cpu_percent: f64,
}

/// Reads `/proc/PID/status` and `/proc/PID/stat` once.
pub fn read(pid: u32) -> Result<Reading, BenchError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| BenchError::Io(format!("cannot read /proc/{pid}/status: {e}")))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| BenchError::Io(format!("cannot read /proc/{pid}/stat: {e}")))?;
    let rss_bytes = parse_vm_rss(&status)
        .ok_or_else(|| BenchError::Io(format!("no VmRSS in /proc/{pid}/status")))?;
    let cpu_ticks = parse_cpu_ticks(&stat)
        .ok_or_else(|| BenchError::Io(format!("cannot parse /proc/{pid}/stat")))?;
    Ok(Reading {
        at: Instant::now(),
        rss_bytes,
        cpu_ticks,
    })
}

/// `VmRSS:    123456 kB` → bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    let unit = parts.next().unwrap_or("kB");
    let factor = match unit {
        "kB" | "KB" | "kb" => 1024,
        "mB" | "MB" => 1024 * 1024,
        _ => 1,
    };
    Some(value * factor)
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line. Fields are counted after the
/// last `)`, since the command name in parentheses may itself contain spaces.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state), so field n is fields[n - 3].
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Peak RSS and mean CPU of readings (in time order); `None` with fewer than one reading.
pub fn usage(readings: &[Reading]) -> Option<Usage> {
    let first = readings.first()?;
    let last = readings.last()?;
    let peak_rss_bytes = readings.iter().map(|r| r.rss_bytes).max()?;
    let secs = last.at.duration_since(first.at).as_secs_f64();
    let ticks = last.cpu_ticks.saturating_sub(first.cpu_ticks) as f64;
    let cpu_percent = if secs > 0.0 {
        ticks / CLK_TCK / secs * 100.0
    } else {
        0.0
    };
    Some(Usage {
        peak_rss_bytes,
        cpu_percent: (cpu_percent * 10.0).round() / 10.0,
    })
}

/// A background sampler of one process.
pub struct Monitor {
    pid: u32,
    readings: Arc<Mutex<Vec<Reading>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Monitor {
    /// Starts sampling; fails at once if the process cannot be read.
    pub fn start(pid: u32) -> Result<Self, BenchError> {
        let first = read(pid)?;
        let readings = Arc::new(Mutex::new(vec![first]));
        let sink = readings.clone();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(PERIOD);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                ticker.tick().await;
                // A process that exited leaves the last readings in place.
                if let Ok(r) = read(pid) {
                    sink.lock().unwrap_or_else(|e| e.into_inner()).push(r);
                }
            }
        });
        Ok(Self {
            pid,
            readings,
            task,
        })
    }

    /// Takes a reading now (at a scenario boundary), so short windows still have two.
    pub fn mark(&self) {
        if let Ok(r) = read(self.pid) {
            let mut readings = self.readings.lock().unwrap_or_else(|e| e.into_inner());
            readings.push(r);
            readings.sort_by_key(|r| r.at);
        }
    }

    /// The most recent reading.
    pub fn latest(&self) -> Option<Reading> {
        let readings = self.readings.lock().unwrap_or_else(|e| e.into_inner());
        readings.last().copied()
    }

    /// Usage between two instants.
    pub fn window(&self, start: Instant, end: Instant) -> Option<Usage> {
        let readings = self.readings.lock().unwrap_or_else(|e| e.into_inner());
        let inside: Vec<Reading> = readings
            .iter()
            .filter(|r| r.at >= start && r.at <= end)
            .copied()
            .collect();
        usage(&inside)
    }

    /// All readings as `(seconds since epoch, RSS bytes, CPU % since the previous reading)`.
    pub fn series(&self, epoch: Instant) -> Vec<(f64, u64, f64)> {
        let readings = self.readings.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(readings.len());
        for (i, r) in readings.iter().enumerate() {
            let cpu = match i.checked_sub(1).map(|p| &readings[p]) {
                Some(prev) => usage(&[*prev, *r]).map_or(0.0, |u| u.cpu_percent),
                None => 0.0,
            };
            let t = r.at.saturating_duration_since(epoch).as_secs_f64();
            out.push((t, r.rss_bytes, cpu));
        }
        out
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let status = "Name:\tconclave\nVmPeak:\t  999 kB\nVmRSS:\t   51200 kB\nThreads: 4\n";
        assert_eq!(parse_vm_rss(status), Some(51200 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        let stat = "1234 (my (odd) server) S 1 1234 1234 0 -1 4194560 500 0 0 0 \
                    250 50 0 0 20 0 8 0 100 1000000 2000 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn usage_of_a_window() {
        let t0 = Instant::now();
        let readings = [
            Reading {
                at: t0,
                rss_bytes: 10,
                cpu_ticks: 100,
            },
            Reading {
                at: t0 + Duration::from_secs(1),
                rss_bytes: 30,
                cpu_ticks: 150,
            },
            Reading {
                at: t0 + Duration::from_secs(2),
                rss_bytes: 20,
                cpu_ticks: 200,
            },
        ];
        let u = usage(&readings).unwrap();
        assert_eq!(u.peak_rss_bytes, 30);
        assert_eq!(u.cpu_percent, 50.0);
        assert!(usage(&[]).is_none());
        assert_eq!(usage(&readings[..1]).unwrap().cpu_percent, 0.0);
    }

    #[test]
    fn reads_own_process() {
        let r = read(std::process::id()).unwrap();
        assert!(r.rss_bytes > 0);
    }
}
