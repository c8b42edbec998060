//! What the benchmark measures besides the clients' own view: CPU time and
//! resident memory of the server processes, read from `/proc`, and the
//! latency histogram every worker records into.
//!
//! CPU time is `utime + stime` of `/proc/PID/stat` (all threads of the
//! process), in clock ticks; the difference over a run, divided by the
//! ticks per second, is the servers' CPU seconds for that run.

use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Lowest latency the histogram tells apart, microseconds.
pub const LATENCY_LOWEST_US: u64 = 1;
/// Highest latency the histogram records, microseconds; longer ones are clamped to it.
pub const LATENCY_HIGHEST_US: u64 = 120_000_000;
/// Significant decimal digits the histogram keeps.
pub const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;

/// Latencies of one run, microseconds.
#[derive(Debug, Clone)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    /// An empty histogram.
    pub fn new() -> Self {
        let histogram = Histogram::new_with_bounds(LATENCY_LOWEST_US, LATENCY_HIGHEST_US, LATENCY_SIGNIFICANT_DIGITS)
            .expect("the latency bounds are valid constants");
        Self { histogram }
    }

    /// Records one operation's latency (clamped into the histogram's range).
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.histogram
            .saturating_record(us.clamp(LATENCY_LOWEST_US, LATENCY_HIGHEST_US));
    }

    /// Adds another worker's latencies to these.
    pub fn merge(&mut self, other: &Latencies) {
        self.histogram
            .add(&other.histogram)
            .expect("histograms with the same bounds always merge");
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The latency at `quantile` (0.0 to 1.0), milliseconds; `None` when
    /// nothing was recorded (a run without a success has no latency, not 0 ms).
    pub fn quantile_ms(&self, quantile: f64) -> Option<f64> {
        assert!((0.0..=1.0).contains(&quantile), "quantile {quantile} out of [0, 1]");
        if self.histogram.is_empty() {
            return None;
        }
        Some(self.histogram.value_at_quantile(quantile) as f64 / 1_000.0)
    }
}

/// Bytes the files under `dir` take on disk (allocated blocks, as `du`
/// counts them), subdirectories included; 0 when it does not exist.
/// Entries that vanish while it is read (files a database deletes as it
/// compacts) are skipped.
pub fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => disk_bytes(&entry.path()),
            // st_blocks counts 512-byte units whatever the filesystem's block size.
            Ok(meta) => meta.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// Clock ticks per second of `/proc`'s CPU times.
pub fn clock_ticks_per_second() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as u64,
        // Linux has reported 100 on every architecture for decades.
        _ => 100,
    }
}

/// CPU time (user plus system) of process `pid` so far, in clock ticks;
/// `None` when the process is gone.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat)
}

/// `utime + stime` from the text of `/proc/PID/stat`. The command name (field
/// 2) is in parentheses and may hold spaces, so fields are counted after the
/// last `)`: state is field 3, utime field 14, stime field 15.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Summed CPU ticks of `pids`; processes that are gone count as 0.
pub fn total_cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|pid| cpu_ticks(*pid)).sum()
}

/// Resident memory of process `pid` in bytes (`VmRSS`); `None` when gone.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_rss_bytes(&status)
}

fn parse_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Summed resident memory of `pids`, bytes.
pub fn total_rss_bytes(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|pid| rss_bytes(*pid)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (safe keep) node) S 1 4242 4242 0 -1 4194560 1 0 0 0 120 35 0 0 20 0 9 0 5 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(155));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let me = std::process::id();
        assert!(cpu_ticks(me).is_some());
        assert!(rss_bytes(me).is_some_and(|bytes| bytes > 0));
        assert_eq!(parse_rss_bytes("Name:\tx\nVmRSS:\t  2048 kB\n"), Some(2 * 1024 * 1024));
        assert!(clock_ticks_per_second() > 0);
    }

    #[test]
    fn quantiles_come_from_what_was_recorded() {
        let mut a = Latencies::new();
        for ms in 1..=100 {
            a.record(Duration::from_millis(ms));
        }
        let mut b = Latencies::new();
        b.record(Duration::from_secs(1_000));
        a.merge(&b);
        assert_eq!(a.count(), 101);
        let p50 = a.quantile_ms(0.5).unwrap();
        assert!((50.0..=51.5).contains(&p50), "p50 {p50}");
        assert!(a.quantile_ms(1.0).unwrap() >= 119_000.0, "clamped to the highest value");
        assert_eq!(Latencies::new().quantile_ms(0.99), None);
    }
}
