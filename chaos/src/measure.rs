//! SLO figures from a drill's timeline: how long writes stopped, how fast
//! the first write sent once the fault was in place succeeded, counted from
//! the start of the injection (failover), how long after the
//! heal throughput was back to its level before the fault (recovery), and
//! per phase the throughput, availability, errors and tail latency. The
//! watch adds how long restored nodes took to catch up and every leader
//! change.

use serde::Serialize;

use crate::monitor::LeaderChange;
use crate::workload::{Sample, SampleKind};

/// Width of one timeline bucket.
pub const BUCKET_MS: f64 = 250.0;
/// Throughput counts as recovered at this share of the pre-fault level.
const RECOVERED_SHARE: f64 = 0.8;
/// Buckets in a row at that level before recovery counts.
const RECOVERED_BUCKETS: usize = 4;

/// When each phase began, in ms since the drill began.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Phases {
    /// The injection began.
    pub fault_ms: f64,
    /// The injection finished: the fault is surely in place. Writes sent
    /// before it may still have slipped through (a firewall rule takes a
    /// few milliseconds to load), so failover counts only writes sent after.
    pub injected_ms: f64,
    pub heal_ms: f64,
    pub end_ms: f64,
}

/// Throughput, errors and latency of one phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseFigures {
    pub writes_per_s: f64,
    pub reads_per_s: f64,
    pub failed: usize,
    /// Share of the operations that completed in the phase that succeeded, percent.
    pub availability_pct: Option<f64>,
    pub write_p50_ms: Option<f64>,
    pub write_p99_ms: Option<f64>,
}

/// The drill's SLO figures.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// Longest stretch with no write completing successfully, from the fault on.
    pub longest_write_gap_s: f64,
    /// From the fault to the first success of a write sent after it.
    pub failover_s: Option<f64>,
    /// From the heal until write throughput held at 80% of its pre-fault level.
    pub recovery_s: Option<f64>,
    /// From the heal until every node the fault hit had applied what the
    /// leader had committed when the heal began.
    pub catch_up_s: Option<f64>,
    /// Every leader the watch saw, with when it first saw it.
    pub leader_changes: Vec<LeaderChange>,
    pub before: PhaseFigures,
    pub during: PhaseFigures,
    pub after: PhaseFigures,
}

/// One timeline bucket: successes and failures per second.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Bucket {
    pub start_ms: f64,
    pub writes_per_s: f64,
    pub reads_per_s: f64,
    pub failed_per_s: f64,
    /// Of the writes that succeeded in the bucket.
    pub write_p99_ms: Option<f64>,
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn phase(samples: &[Sample], from_ms: f64, to_ms: f64) -> PhaseFigures {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.end_ms >= from_ms && s.end_ms < to_ms)
        .collect();
    let seconds = ((to_ms - from_ms) / 1000.0).max(1e-3);
    let ok = |kind| inside.iter().filter(|s| s.ok && s.kind == kind).count() as f64;
    let mut latencies: Vec<f64> = inside
        .iter()
        .filter(|s| s.ok && s.kind == SampleKind::Write)
        .map(|s| s.end_ms - s.start_ms)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let failed = inside.iter().filter(|s| !s.ok).count();
    PhaseFigures {
        writes_per_s: ok(SampleKind::Write) / seconds,
        reads_per_s: ok(SampleKind::Read) / seconds,
        failed,
        availability_pct: (!inside.is_empty()).then(|| 100.0 * (inside.len() - failed) as f64 / inside.len() as f64),
        write_p50_ms: percentile(&latencies, 50.0),
        write_p99_ms: percentile(&latencies, 99.0),
    }
}

/// The timeline in `BUCKET_MS` buckets up to `end_ms`.
pub fn buckets(samples: &[Sample], end_ms: f64) -> Vec<Bucket> {
    let count = (end_ms / BUCKET_MS).ceil().max(1.0) as usize;
    let per_s = 1000.0 / BUCKET_MS;
    let mut out: Vec<Bucket> = (0..count)
        .map(|i| Bucket {
            start_ms: i as f64 * BUCKET_MS,
            writes_per_s: 0.0,
            reads_per_s: 0.0,
            failed_per_s: 0.0,
            write_p99_ms: None,
        })
        .collect();
    let mut latencies: Vec<Vec<f64>> = vec![Vec::new(); count];
    for sample in samples {
        let index = ((sample.end_ms / BUCKET_MS) as usize).min(count - 1);
        let bucket = &mut out[index];
        match (sample.ok, sample.kind) {
            (false, _) => bucket.failed_per_s += per_s,
            (true, SampleKind::Write) => {
                bucket.writes_per_s += per_s;
                latencies[index].push(sample.end_ms - sample.start_ms);
            }
            (true, SampleKind::Read) => bucket.reads_per_s += per_s,
        }
    }
    for (bucket, mut latencies) in out.iter_mut().zip(latencies) {
        latencies.sort_by(f64::total_cmp);
        bucket.write_p99_ms = percentile(&latencies, 99.0);
    }
    out
}

/// The figures of a drill whose phases were `phases`.
pub fn figures(samples: &[Sample], phases: Phases) -> Figures {
    let mut write_ends: Vec<f64> = samples
        .iter()
        .filter(|s| s.ok && s.kind == SampleKind::Write && s.end_ms >= phases.fault_ms)
        .map(|s| s.end_ms)
        .collect();
    write_ends.sort_by(f64::total_cmp);
    let mut gap_ms: f64 = 0.0;
    let mut previous = phases.fault_ms;
    for end in write_ends.iter().copied().chain(std::iter::once(phases.end_ms)) {
        gap_ms = gap_ms.max(end - previous);
        previous = end;
    }
    let failover_s = samples
        .iter()
        .filter(|s| s.ok && s.kind == SampleKind::Write && s.start_ms >= phases.injected_ms)
        .map(|s| s.end_ms)
        .min_by(f64::total_cmp)
        .map(|end| (end - phases.fault_ms) / 1000.0);
    let before = phase(samples, 0.0, phases.fault_ms);
    let timeline = buckets(samples, phases.end_ms);
    let target = before.writes_per_s * RECOVERED_SHARE;
    let recovery_s = timeline
        .windows(RECOVERED_BUCKETS)
        .find(|w| w[0].start_ms >= phases.heal_ms && w.iter().all(|b| b.writes_per_s >= target))
        .map(|w| (w[0].start_ms - phases.heal_ms) / 1000.0);
    Figures {
        longest_write_gap_s: gap_ms / 1000.0,
        failover_s,
        recovery_s,
        catch_up_s: None,
        leader_changes: Vec::new(),
        during: phase(samples, phases.fault_ms, phases.heal_ms),
        after: phase(samples, phases.heal_ms, phases.end_ms),
        before,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(start_ms: f64, end_ms: f64, ok: bool) -> Sample {
        Sample {
            kind: SampleKind::Write,
            start_ms,
            end_ms,
            ok,
        }
    }

    #[test]
    fn the_longest_gap_and_failover_count_from_the_fault() {
        let mut samples: Vec<Sample> = (0..40)
            .map(|i| write(i as f64 * 50.0, i as f64 * 50.0 + 5.0, true))
            .collect();
        // Fault at 2 s; writes fail until one sent at 3.2 s succeeds at 3.3 s.
        samples.retain(|s| s.end_ms < 2000.0);
        samples.push(write(1990.0, 3000.0, false));
        samples.extend((0..20).map(|i| write(3200.0 + i as f64 * 50.0, 3300.0 + i as f64 * 50.0, true)));
        let phases = Phases {
            fault_ms: 2000.0,
            injected_ms: 2000.0,
            heal_ms: 2500.0,
            end_ms: 4300.0,
        };
        let figures = figures(&samples, phases);
        assert!((figures.longest_write_gap_s - 1.3).abs() < 1e-9, "{figures:?}");
        assert!((figures.failover_s.unwrap() - 1.3).abs() < 1e-9, "{figures:?}");
        assert_eq!(figures.during.failed, 0, "the failure ended after the heal");
        assert_eq!(figures.after.failed, 1);
        assert_eq!(figures.before.availability_pct, Some(100.0));
        assert_eq!(
            figures.during.availability_pct, None,
            "nothing completed while the fault held"
        );
        let after = figures.after.availability_pct.unwrap();
        assert!((after - 100.0 * 20.0 / 21.0).abs() < 1e-9, "{after}");
    }

    #[test]
    fn a_cluster_that_never_writes_again_has_no_failover_and_a_gap_to_the_end() {
        let samples = vec![write(0.0, 10.0, true), write(1000.0, 1010.0, true)];
        let phases = Phases {
            fault_ms: 1500.0,
            injected_ms: 1500.0,
            heal_ms: 2000.0,
            end_ms: 5000.0,
        };
        let figures = figures(&samples, phases);
        assert_eq!(figures.failover_s, None);
        assert_eq!(figures.recovery_s, None);
        assert!((figures.longest_write_gap_s - 3.5).abs() < 1e-9);
    }

    #[test]
    fn a_write_that_slipped_through_while_the_fault_was_being_injected_is_no_failover() {
        let mut samples = vec![write(0.0, 10.0, true)];
        // Injection from 1 s to 1.04 s; a write sent at 1.01 s beat the rule.
        samples.push(write(1010.0, 1015.0, true));
        samples.push(write(1050.0, 3000.0, false));
        samples.push(write(3000.0, 3200.0, true));
        let phases = Phases {
            fault_ms: 1000.0,
            injected_ms: 1040.0,
            heal_ms: 4000.0,
            end_ms: 5000.0,
        };
        let figures = figures(&samples, phases);
        assert!((figures.failover_s.unwrap() - 2.2).abs() < 1e-9, "{figures:?}");
        assert!((figures.longest_write_gap_s - 2.185).abs() < 1e-9, "{figures:?}");
    }
}
