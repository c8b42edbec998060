//! What the benchmark measures besides load: failover when the leader is
//! killed (`failover`), and what a cluster of many records costs in memory
//! and disk, how long it takes to restart and how fast a replacement
//! catches up (`footprint`). Both run on the same clusters as the load
//! runs, through the [`Operable`](crate::targets::Operable) interface; this
//! module holds their reports.

pub mod failover;
pub mod footprint;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::report::{Machine, median};
use crate::targets::TargetKind;
pub use failover::FailoverSample;
pub use footprint::Footprint;

/// The value at `quantile` of `values` (nearest rank); `None` when empty.
pub fn quantile(values: &[f64], quantile: f64) -> Option<f64> {
    assert!((0.0..=1.0).contains(&quantile), "quantile {quantile} out of [0, 1]");
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// One system's failover over its runs.
#[derive(Debug, Clone, Serialize)]
pub struct FailoverSummary {
    pub runs: usize,
    pub median_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub write_gap_median_ms: Option<f64>,
}

/// The failover session's report.
#[derive(Debug, Clone, Serialize)]
pub struct FailoverReport {
    pub machine: Machine,
    /// How each cluster was set up.
    pub setups: BTreeMap<TargetKind, String>,
    pub probe_interval_ms: f64,
    pub samples: Vec<FailoverSample>,
    pub summary: BTreeMap<TargetKind, FailoverSummary>,
}

impl FailoverReport {
    pub fn new(machine: Machine, setups: BTreeMap<TargetKind, String>, samples: Vec<FailoverSample>) -> Self {
        let mut summary = BTreeMap::new();
        for target in setups.keys() {
            let mine: Vec<&FailoverSample> = samples.iter().filter(|s| s.target == *target).collect();
            let failover: Vec<f64> = mine.iter().map(|s| s.failover_ms).collect();
            let gaps: Vec<f64> = mine.iter().map(|s| s.write_gap_ms).collect();
            summary.insert(
                *target,
                FailoverSummary {
                    runs: mine.len(),
                    median_ms: median(&failover),
                    p95_ms: quantile(&failover, 0.95),
                    max_ms: quantile(&failover, 1.0),
                    write_gap_median_ms: median(&gaps),
                },
            );
        }
        Self {
            machine,
            setups,
            probe_interval_ms: failover::PROBE_INTERVAL.as_secs_f64() * 1_000.0,
            samples,
            summary,
        }
    }

    /// The summary as a Markdown table, then every run.
    pub fn table(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0} ms"));
        let mut out = format!(
            "Failover: SIGKILL of the leader, time to the first acknowledged write sent after it \
             (a probe write every {:.0} ms)\n\n\
             | system | runs | median | p95 | max | write gap (median) |\n|---|---|---|---|---|---|\n",
            self.probe_interval_ms
        );
        for (target, s) in &self.summary {
            let _ = writeln!(
                out,
                "| {target} | {} | {} | {} | {} | {} |",
                s.runs,
                ms(s.median_ms),
                ms(s.p95_ms),
                ms(s.max_ms),
                ms(s.write_gap_median_ms)
            );
        }
        let ratio = |f: fn(&FailoverSummary) -> Option<f64>| {
            let sk = self.summary.get(&TargetKind::Safekeep).and_then(f)?;
            let etcd = self.summary.get(&TargetKind::Etcd).and_then(f)?;
            (etcd > 0.0).then(|| sk / etcd)
        };
        if let (Some(median), Some(p95)) = (ratio(|s| s.median_ms), ratio(|s| s.p95_ms)) {
            let _ = writeln!(
                out,
                "\nsafekeep/etcd: median {median:.2}×, p95 {p95:.2}× (below 1 is better for safekeep)"
            );
        }
        out.push_str(
            "\n| system | run | killed member | failover | write gap | failed probes |\n|---|---|---|---|---|---|\n",
        );
        for s in &self.samples {
            let _ = writeln!(
                out,
                "| {} | {} | m{} | {:.0} ms | {:.0} ms | {} |",
                s.target, s.run, s.killed_member, s.failover_ms, s.write_gap_ms, s.failed_probes
            );
        }
        out
    }
}

/// The footprint session's report.
#[derive(Debug, Clone, Serialize)]
pub struct FootprintReport {
    pub machine: Machine,
    pub setups: BTreeMap<TargetKind, String>,
    pub figures: Vec<Footprint>,
}

impl FootprintReport {
    /// The figures as a Markdown table, totals over the three members and per million records.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| system | records | write | memory (3 members) | per 1M | disk serving (3) | per 1M | disk stopped (3) \
             | restart to first write | memory after restart | replacement catch-up | its disk | rate |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for f in &self.figures {
            let _ = writeln!(
                out,
                "| {} | {} × {} B | {:.0} s ({:.0}/s) | {:.0} MiB | {:.0} MiB | {:.0} MiB | {:.0} MiB | {:.0} MiB \
                 | {:.2} s | {:.0} MiB | {:.1} s | {:.0} MiB | {:.1} MiB/s |",
                f.target,
                f.records,
                f.value_size,
                f.write_s,
                f.write_ops_per_s,
                f.rss_mib,
                f.per_million(f.rss_mib),
                f.disk_serving_mib,
                f.per_million(f.disk_serving_mib),
                f.disk_stopped_mib,
                f.restart_s,
                f.rss_after_restart_mib,
                f.catch_up_s,
                f.catch_up_disk_mib,
                f.catch_up_mib_per_s
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.95), Some(10.0));
        assert_eq!(quantile(&values, 0.5), Some(5.0));
        assert_eq!(quantile(&values, 0.0), Some(1.0));
        assert_eq!(quantile(&values, 1.0), Some(10.0));
        let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(quantile(&twenty, 0.95), Some(19.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    fn sample(target: TargetKind, run: usize, failover_ms: f64) -> FailoverSample {
        FailoverSample {
            target,
            run,
            killed_member: 1,
            new_leader_member: 2,
            failover_ms,
            write_gap_ms: failover_ms + 5.0,
            failed_probes: 0,
        }
    }

    #[test]
    fn the_failover_summary_is_per_system_with_the_ratio() {
        let setups = BTreeMap::from([(TargetKind::Safekeep, "sk".to_string()), (TargetKind::Etcd, "e".into())]);
        let mut samples = Vec::new();
        for run in 1..=3 {
            samples.push(sample(TargetKind::Safekeep, run, 100.0 * run as f64));
            samples.push(sample(TargetKind::Etcd, run, 400.0 * run as f64));
        }
        let report = FailoverReport::new(Machine::this("ext2/3/4"), setups, samples);
        let sk = &report.summary[&TargetKind::Safekeep];
        assert_eq!((sk.runs, sk.median_ms, sk.max_ms), (3, Some(200.0), Some(300.0)));
        assert_eq!(sk.write_gap_median_ms, Some(205.0));
        assert_eq!(report.summary[&TargetKind::Etcd].median_ms, Some(800.0));
        let table = report.table();
        assert!(table.contains("median 0.25×"), "{table}");
        assert!(table.contains("| etcd | 3 | m1 | 1200 ms | 1205 ms | 0 |"), "{table}");
    }
}
