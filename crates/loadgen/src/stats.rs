//! Latency histograms that travel between processes, and CPU/memory samples read from /proc.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency recorded, in microseconds (values above are clamped).
const MAX_US: u64 = 120_000_000;

/// A latency histogram in microseconds.
#[derive(Debug, Clone)]
pub(crate) struct Hist(Histogram<u64>);

impl Default for Hist {
    fn default() -> Self {
        Self(Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds"))
    }
}

/// Percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct Summary {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl Hist {
    /// Records one latency (clamped to the histogram's range).
    pub(crate) fn record(&mut self, us: u64) {
        let _ = self.0.record(us.clamp(1, MAX_US));
    }

    /// Adds another histogram's values.
    pub(crate) fn merge(&mut self, other: &Self) {
        let _ = self.0.add(&other.0);
    }

    /// The recorded values as (value, count) pairs, the form sent between processes.
    pub(crate) fn to_pairs(&self) -> Vec<(u64, u64)> {
        self.0
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    /// Rebuilds a histogram from [`Hist::to_pairs`].
    pub(crate) fn from_pairs(pairs: &[(u64, u64)]) -> Self {
        let mut h = Self::default();
        for &(v, c) in pairs {
            let _ = h.0.record_n(v.clamp(1, MAX_US), c);
        }
        h
    }

    /// Percentiles.
    pub(crate) fn summary(&self) -> Summary {
        let h = &self.0;
        if h.is_empty() {
            return Summary::default();
        }
        Summary {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// Clock ticks per second of /proc CPU times (USER_HZ, 100 on Linux).
pub(crate) const TICKS: f64 = 100.0;

/// CPU time and memory of one process.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcSample {
    /// User plus system CPU seconds.
    pub cpu_s: f64,
    /// User-mode CPU seconds (`utime`): the server's own work.
    pub user_s: f64,
    /// Kernel CPU seconds (`stime`): system calls, and on loopback much of the receivers' TCP work.
    pub sys_s: f64,
    /// Resident set size in KiB.
    pub rss_kb: u64,
    /// Write system calls so far (`write`, `writev`: `syscw` in `/proc/<pid>/io`).
    pub write_calls: u64,
}

/// The summed CPU time and memory of several processes (one system made of several nodes).
pub(crate) fn sample_all(pids: &[u32]) -> ProcSample {
    pids.iter()
        .map(|&pid| sample(pid))
        .fold(ProcSample::default(), |sum, s| ProcSample {
            cpu_s: sum.cpu_s + s.cpu_s,
            user_s: sum.user_s + s.user_s,
            sys_s: sum.sys_s + s.sys_s,
            rss_kb: sum.rss_kb + s.rss_kb,
            write_calls: sum.write_calls + s.write_calls,
        })
}

/// Reads `/proc/<pid>/stat`, `/proc/<pid>/status` and `/proc/<pid>/io` (zeroes when the process
/// is gone or unreadable).
pub(crate) fn sample(pid: u32) -> ProcSample {
    let (user_s, sys_s) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // After the command: state is field 3, utime is 14 and stime 15 (1-based).
            let utime: f64 = f.get(11)?.parse().ok()?;
            let stime: f64 = f.get(12)?.parse().ok()?;
            Some((utime / TICKS, stime / TICKS))
        })
        .unwrap_or((0.0, 0.0));
    ProcSample {
        cpu_s: user_s + sys_s,
        user_s,
        sys_s,
        rss_kb: proc_number(pid, "status", "VmRSS:").unwrap_or(0),
        write_calls: proc_number(pid, "io", "syscw:").unwrap_or(0),
    }
}

/// The number after `key` on its line of `/proc/<pid>/<file>`.
fn proc_number(pid: u32, file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Busy CPU seconds of the whole machine (all cores), from `/proc/stat`.
pub(crate) fn machine_busy_s() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let line = s.lines().next()?;
            let v: Vec<f64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal
            let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7)?;
            Some(busy / TICKS)
        })
        .unwrap_or(0.0)
}

/// The 1-, 5- and 15-minute load averages as written in `/proc/loadavg`.
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Kernel TCP memory in KiB (`/proc/net/sockstat`, `TCP: ... mem N` in pages).
pub(crate) fn tcp_mem_kb() -> u64 {
    std::fs::read_to_string("/proc/net/sockstat")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("TCP:"))?;
            let f: Vec<&str> = line.split_whitespace().collect();
            let i = f.iter().position(|x| *x == "mem")?;
            let pages: u64 = f.get(i + 1)?.parse().ok()?;
            Some(pages * 4)
        })
        .unwrap_or(0)
}

/// Microseconds since the Unix epoch (one clock for every process on the machine).
pub(crate) fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
