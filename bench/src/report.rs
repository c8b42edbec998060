//! What a session reports: the figures of every run, their medians per
//! system and client count, the safekeep/etcd ratios, and the machine they
//! were taken on; as a Markdown table for people and JSON for machines.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::load::LoadOutcome;
use crate::settings::{Security, Settings};
use crate::targets::TargetKind;

/// Bytes in a MiB.
const MIB: f64 = 1024.0 * 1024.0;

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunFigures {
    pub target: TargetKind,
    pub clients: usize,
    pub connections: usize,
    /// 1-based.
    pub round: usize,
    /// Successful operations that completed inside the measured window.
    pub ops: u64,
    /// Those per second: the achieved rate.
    pub ops_per_s: f64,
    /// The open loop's offered rate; `None` in the closed loop.
    pub offered_ops_per_s: Option<f64>,
    /// Operations intended inside the window and not answered by its end.
    pub late: u64,
    /// Latency quantiles of the successful operations; `None` without any.
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub errors: u64,
    /// Puts a `cas` run sent to learn a key's version again (not operations).
    pub extra_puts: u64,
    pub first_error: Option<String>,
    /// Server CPU seconds (all members) per 1,000 successful operations; `None` without operations.
    pub cpu_s_per_1k_ops: Option<f64>,
    /// Resident memory of all members at the end of the run.
    pub server_rss_mib: f64,
}

impl RunFigures {
    /// The figures of `outcome`; `rss_bytes` was read after it, `ticks_per_s` converts CPU ticks.
    pub fn new(
        target: TargetKind,
        (clients, connections, round): (usize, usize, usize),
        outcome: &LoadOutcome,
        rss_bytes: u64,
        ticks_per_s: u64,
    ) -> Self {
        assert!(ticks_per_s > 0 && round > 0, "ticks per second and rounds start at 1");
        let seconds = outcome.measured.as_secs_f64();
        let cpu_s = outcome.server_cpu_ticks as f64 / ticks_per_s as f64;
        let l = &outcome.latencies;
        Self {
            target,
            clients,
            connections,
            round,
            ops: outcome.ops,
            ops_per_s: if seconds > 0.0 {
                outcome.ops as f64 / seconds
            } else {
                0.0
            },
            offered_ops_per_s: outcome.offered_rate.map(|rate| rate as f64),
            late: outcome.late,
            p50_ms: l.quantile_ms(0.5),
            p90_ms: l.quantile_ms(0.9),
            p99_ms: l.quantile_ms(0.99),
            p999_ms: l.quantile_ms(0.999),
            errors: outcome.errors,
            extra_puts: outcome.extra_puts,
            first_error: outcome.first_error.clone(),
            cpu_s_per_1k_ops: (outcome.ops > 0).then(|| cpu_s * 1_000.0 / outcome.ops as f64),
            server_rss_mib: rss_bytes as f64 / MIB,
        }
    }
}

/// Medians over the rounds of one system at one client count.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub target: TargetKind,
    pub clients: usize,
    pub rounds: usize,
    pub ops_per_s: f64,
    /// The open loop's offered rate; `None` in the closed loop.
    pub offered_ops_per_s: Option<f64>,
    /// Medians over the rounds that have latencies; `None` when none has.
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    /// Summed over the rounds, not a median: no error hides.
    pub errors: u64,
    /// Late operations, summed over the rounds like the errors.
    pub late: u64,
    /// Extra puts of `cas` runs, summed over the rounds.
    pub extra_puts: u64,
    pub cpu_s_per_1k_ops: Option<f64>,
    pub server_rss_mib: f64,
}

/// safekeep's figure divided by etcd's, at one client count.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub clients: usize,
    /// Above 1: safekeep serves more.
    pub ops_per_s: Option<f64>,
    /// Below 1: safekeep answers faster.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Below 1: safekeep spends less CPU per operation.
    pub cpu_s_per_1k_ops: Option<f64>,
    pub server_rss_mib: Option<f64>,
}

/// The machine the figures come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub memory_mib: u64,
    pub kernel: String,
    /// The filesystem type of the clusters' work directory.
    pub work_filesystem: String,
}

impl Machine {
    /// This machine, as `/proc` describes it, with the clusters' data on `work_filesystem`.
    pub fn this(work_filesystem: &str) -> Self {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: u64 = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        Self {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            memory_mib: memory_kib / 1024,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".into(), |s| s.trim().to_string()),
            work_filesystem: work_filesystem.to_string(),
        }
    }
}

/// Everything a session found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub settings: Settings,
    pub machine: Machine,
    /// How each system was set up.
    pub setups: BTreeMap<TargetKind, String>,
    pub runs: Vec<RunFigures>,
    pub summaries: Vec<Summary>,
    /// Present for client counts where both systems ran.
    pub ratios: Vec<Ratio>,
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

fn summarize(target: TargetKind, clients: usize, runs: &[&RunFigures]) -> Summary {
    assert!(!runs.is_empty(), "a summary needs runs");
    let med = |f: fn(&RunFigures) -> f64| median(&runs.iter().map(|r| f(r)).collect::<Vec<_>>()).unwrap_or(0.0);
    // Runs without a figure (no success: no latency, no CPU per operation) are left out.
    let some = |f: fn(&RunFigures) -> Option<f64>| median(&runs.iter().filter_map(|r| f(r)).collect::<Vec<_>>());
    Summary {
        target,
        clients,
        rounds: runs.len(),
        ops_per_s: med(|r| r.ops_per_s),
        offered_ops_per_s: runs[0].offered_ops_per_s,
        p50_ms: some(|r| r.p50_ms),
        p90_ms: some(|r| r.p90_ms),
        p99_ms: some(|r| r.p99_ms),
        p999_ms: some(|r| r.p999_ms),
        errors: runs.iter().map(|r| r.errors).sum(),
        late: runs.iter().map(|r| r.late).sum(),
        extra_puts: runs.iter().map(|r| r.extra_puts).sum(),
        cpu_s_per_1k_ops: some(|r| r.cpu_s_per_1k_ops),
        server_rss_mib: med(|r| r.server_rss_mib),
    }
}

fn divide(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

impl Report {
    /// Summaries and ratios of `runs`, taken on `machine`.
    pub fn new(
        settings: Settings,
        machine: Machine,
        setups: BTreeMap<TargetKind, String>,
        runs: Vec<RunFigures>,
    ) -> Self {
        let mut groups: BTreeMap<(usize, TargetKind), Vec<&RunFigures>> = BTreeMap::new();
        for run in &runs {
            groups.entry((run.clients, run.target)).or_default().push(run);
        }
        let summaries: Vec<Summary> = groups
            .iter()
            .map(|((clients, target), runs)| summarize(*target, *clients, runs))
            .collect();
        let find = |target, clients| summaries.iter().find(|s| s.target == target && s.clients == clients);
        let ratios = settings
            .clients
            .iter()
            .filter_map(|&clients| {
                let (s, e) = (find(TargetKind::Safekeep, clients)?, find(TargetKind::Etcd, clients)?);
                Some(Ratio {
                    clients,
                    ops_per_s: divide(Some(s.ops_per_s), Some(e.ops_per_s)),
                    p50_ms: divide(s.p50_ms, e.p50_ms),
                    p99_ms: divide(s.p99_ms, e.p99_ms),
                    cpu_s_per_1k_ops: divide(s.cpu_s_per_1k_ops, e.cpu_s_per_1k_ops),
                    server_rss_mib: divide(Some(s.server_rss_mib), Some(e.server_rss_mib)),
                })
            })
            .collect();
        Self {
            settings,
            machine,
            setups,
            runs,
            summaries,
            ratios,
        }
    }

    /// The medians and ratios as a Markdown table, with a line saying what ran.
    pub fn table(&self) -> String {
        let s = &self.settings;
        let mode = match s.rate {
            Some(rate) => format!("open loop at {rate} ops/s"),
            None => "closed loop".into(),
        };
        let security = match s.security {
            Security::Tls => "TLS",
            Security::Plaintext => "plaintext",
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "workload {}, {} B values, {security}, {mode}, median of {} round(s) of {} s after {} s of warm-up, \
             data on {}",
            s.workload,
            s.value_size,
            s.rounds,
            s.duration.as_secs_f64(),
            s.warmup.as_secs_f64(),
            self.machine.work_filesystem
        );
        if let Some(target) = &s.backup_target {
            let _ = writeln!(out, "safekeep's nodes back up to {target} throughout");
        }
        let _ = writeln!(out);
        let open = s.rate.is_some();
        let mut header = vec!["clients", "system", "ops/s"];
        if open {
            header.push("offered ops/s");
        }
        header.extend([
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "errors",
            "late",
            "server CPU s / 1k ops",
            "server RSS MiB",
        ]);
        let align: Vec<&str> = header
            .iter()
            .map(|h| if *h == "system" { ":---" } else { "---:" })
            .collect();
        let _ = writeln!(out, "{}", row(&header));
        let _ = writeln!(out, "{}", row(&align));
        for &clients in &s.clients {
            for summary in self.summaries.iter().filter(|x| x.clients == clients) {
                let mut cells = vec![
                    clients.to_string(),
                    summary.target.to_string(),
                    format!("{:.0}", summary.ops_per_s),
                ];
                if open {
                    cells.push(summary.offered_ops_per_s.map_or("-".into(), |v| format!("{v:.0}")));
                }
                let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
                cells.extend([
                    ms(summary.p50_ms),
                    ms(summary.p90_ms),
                    ms(summary.p99_ms),
                    ms(summary.p999_ms),
                    summary.errors.to_string(),
                    summary.late.to_string(),
                    summary.cpu_s_per_1k_ops.map_or("-".into(), |v| format!("{v:.3}")),
                    format!("{:.0}", summary.server_rss_mib),
                ]);
                let _ = writeln!(out, "{}", row(&cells));
            }
            if let Some(ratio) = self.ratios.iter().find(|r| r.clients == clients) {
                let x = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}x"));
                let mut cells = vec![
                    clients.to_string(),
                    "**safekeep/etcd**".into(),
                    format!("**{}**", x(ratio.ops_per_s)),
                ];
                if open {
                    cells.push(String::new());
                }
                cells.extend([
                    x(ratio.p50_ms),
                    String::new(),
                    x(ratio.p99_ms),
                    String::new(),
                    String::new(),
                    String::new(),
                    x(ratio.cpu_s_per_1k_ops),
                    x(ratio.server_rss_mib),
                ]);
                let _ = writeln!(out, "{}", row(&cells));
            }
        }
        let _ = writeln!(
            out,
            "\nops/s: successful operations completed inside the measured window. late: operations \
             intended inside the window and not answered by its end (summed over the rounds; in the \
             closed loop at most one per client and round)."
        );
        if let Some(rate) = s.rate {
            let _ = writeln!(
                out,
                "Open loop: {rate} ops/s offered; ops/s below that, with many late operations, means \
                 the system could not keep up, and the latencies show how far behind it fell."
            );
        }
        for (target, setup) in &self.setups {
            let _ = writeln!(out, "\n{target}: {setup}");
        }
        let errors: Vec<&RunFigures> = self.runs.iter().filter(|r| r.first_error.is_some()).collect();
        for run in errors {
            let _ = writeln!(
                out,
                "\n{} at {} clients, round {}: {} errors, first: {}",
                run.target,
                run.clients,
                run.round,
                run.errors,
                run.first_error.as_deref().unwrap_or("")
            );
        }
        for summary in self.summaries.iter().filter(|s| s.extra_puts > 0) {
            let _ = writeln!(
                out,
                "\n{} at {} clients: {} extra puts over the rounds, to learn a key's version again after a \
                 conflict; they loaded the servers but are not counted as operations",
                summary.target, summary.clients, summary.extra_puts
            );
        }
        out
    }
}

/// One Markdown table row of `cells`.
fn row<S: AsRef<str>>(cells: &[S]) -> String {
    let cells: Vec<&str> = cells.iter().map(AsRef::as_ref).collect();
    format!("| {} |", cells.join(" | "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Latencies;
    use crate::settings::Ports;
    use crate::workloads::Workload;
    use std::time::Duration;

    fn outcome(ops: u64, latency_ms: u64, cpu_ticks: u64) -> LoadOutcome {
        let mut latencies = Latencies::new();
        for _ in 0..ops {
            latencies.record(Duration::from_millis(latency_ms));
        }
        LoadOutcome {
            ops,
            intended: ops,
            late: 0,
            errors: 0,
            extra_puts: 0,
            first_error: None,
            latencies,
            measured: Duration::from_secs(10),
            offered_rate: None,
            server_cpu_ticks: cpu_ticks,
        }
    }

    fn machine() -> Machine {
        Machine::this("ext2/3/4")
    }

    fn settings() -> Settings {
        Settings {
            workload: Workload::Put,
            clients: vec![4],
            rounds: 3,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            value_size: 1024,
            connections: None,
            rate: None,
            keys: 1,
            security: Security::Tls,
            ports: Ports { base: 17_100 },
            backup_target: None,
        }
    }

    #[test]
    fn medians_take_the_middle_and_ignore_nothing_finite() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn the_ratio_is_safekeep_over_etcd_of_the_medians() {
        let mut runs = Vec::new();
        for (round, (sk_ops, etcd_ops)) in [(2_000, 1_000), (4_000, 1_000), (3_000, 2_000)].into_iter().enumerate() {
            let sk = outcome(sk_ops, 2, 100);
            let etcd = outcome(etcd_ops, 4, 200);
            runs.push(RunFigures::new(
                TargetKind::Safekeep,
                (4, 4, round + 1),
                &sk,
                100 << 20,
                100,
            ));
            runs.push(RunFigures::new(
                TargetKind::Etcd,
                (4, 4, round + 1),
                &etcd,
                50 << 20,
                100,
            ));
        }
        let report = Report::new(settings(), machine(), BTreeMap::new(), runs);
        let ratio = &report.ratios[0];
        // Medians: safekeep 300 ops/s, etcd 100 ops/s.
        assert!((ratio.ops_per_s.unwrap() - 3.0).abs() < 1e-9, "{ratio:?}");
        assert!((ratio.p99_ms.unwrap() - 0.5).abs() < 0.01, "{ratio:?}");
        assert!((ratio.server_rss_mib.unwrap() - 2.0).abs() < 1e-9);
        let table = report.table();
        assert!(table.contains("safekeep/etcd") && table.contains("3.00x"), "{table}");
        assert!(table.contains("data on ext2/3/4"), "{table}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["machine"]["work_filesystem"], "ext2/3/4", "{json}");
    }

    #[test]
    fn an_open_loop_shows_the_offered_rate_beside_the_achieved_one_and_the_late_operations() {
        let mut slow = outcome(500, 2, 10);
        slow.offered_rate = Some(100);
        slow.late = 7;
        let figures = RunFigures::new(TargetKind::Safekeep, (4, 4, 1), &slow, 0, 100);
        assert_eq!((figures.ops_per_s, figures.offered_ops_per_s), (50.0, Some(100.0)));
        let open = Settings {
            rate: Some(100),
            ..settings()
        };
        let report = Report::new(open, machine(), BTreeMap::new(), vec![figures]);
        let table = report.table();
        assert!(
            table.contains("| ops/s | offered ops/s |") && table.contains("| errors | late |"),
            "{table}"
        );
        assert!(table.contains("| 4 | safekeep | 50 | 100 | "), "{table}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["summaries"][0]["late"], 7, "{json}");
        assert_eq!(json["summaries"][0]["offered_ops_per_s"], 100.0, "{json}");
        assert_eq!(json["runs"][0]["late"], 7, "{json}");
        assert_eq!(json["runs"][0]["extra_puts"], 0, "{json}");
        assert!(!table.contains("extra puts"), "{table}");
    }

    #[test]
    fn the_extra_puts_of_a_cas_run_are_in_the_json_and_under_the_table() {
        let mut conflicts = outcome(10, 2, 10);
        conflicts.errors = 3;
        conflicts.extra_puts = 3;
        let figures = RunFigures::new(TargetKind::Etcd, (4, 4, 1), &conflicts, 0, 100);
        let report = Report::new(settings(), machine(), BTreeMap::new(), vec![figures]);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["runs"][0]["extra_puts"], 3, "{json}");
        assert_eq!(json["summaries"][0]["extra_puts"], 3, "{json}");
        assert!(
            report.table().contains("etcd at 4 clients: 3 extra puts"),
            "{}",
            report.table()
        );
    }

    #[test]
    fn a_round_without_successes_has_no_latency_and_stays_out_of_the_medians() {
        let empty = RunFigures::new(TargetKind::Etcd, (4, 4, 1), &outcome(0, 1, 0), 0, 100);
        assert_eq!((empty.p50_ms, empty.p99_ms, empty.p999_ms), (None, None, None));
        let runs = vec![
            empty.clone(),
            RunFigures::new(TargetKind::Etcd, (4, 4, 2), &outcome(10, 2, 0), 0, 100),
            RunFigures::new(TargetKind::Etcd, (4, 4, 3), &outcome(10, 4, 0), 0, 100),
        ];
        let report = Report::new(settings(), machine(), BTreeMap::new(), runs);
        // The median of 2 ms and 4 ms, not of 0, 2 and 4 ms.
        let p50 = report.summaries[0].p50_ms.unwrap();
        assert!((p50 - 3.0).abs() < 0.01, "{p50}");
        let report = Report::new(settings(), machine(), BTreeMap::new(), vec![empty]);
        assert_eq!(report.summaries[0].p99_ms, None);
        assert!(
            report.table().contains("| 4 | etcd | 0 | - | - | - | - |"),
            "{}",
            report.table()
        );
    }

    #[test]
    fn a_run_without_operations_has_no_cpu_per_operation() {
        let figures = RunFigures::new(TargetKind::Etcd, (1, 1, 1), &outcome(0, 1, 50), 0, 100);
        assert_eq!(figures.cpu_s_per_1k_ops, None);
        assert_eq!(figures.ops_per_s, 0.0);
        let figures = RunFigures::new(TargetKind::Etcd, (1, 1, 1), &outcome(1_000, 1, 50), 0, 100);
        assert!((figures.cpu_s_per_1k_ops.unwrap() - 0.5).abs() < 1e-9);
    }
}
