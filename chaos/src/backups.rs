//! Watches a cluster's backups while a drill runs: once a second the
//! cluster is asked where its backups stand, and each answer becomes a
//! sample of the exposure, the time since the newest write a restore can
//! reach. With writes flowing all drill long, that is how much acknowledged
//! data a loss of every node at that moment would take, and it is what a
//! zone loss does to the backups: whether the archive keeps shipping when
//! the node that ships goes dark, and how far behind it falls meanwhile.
//! A cluster that takes no backups gives no samples and no figures.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use safekeep_client::Client;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::measure::Phases;

/// How often the cluster is asked where its backups stand.
pub const BACKUP_WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// Longest one status call may take.
const STATUS_DEADLINE: Duration = Duration::from_millis(800);

/// One answer about the backups.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BackupSample {
    /// Since the drill began.
    pub at_ms: u64,
    /// Seconds from the newest write a restore reaches to when the answer came.
    pub exposure_s: f64,
    /// The node that shipped last.
    pub shipper: u64,
    /// The last log index archived.
    pub archived_index: u64,
}

/// The backups' figures of one drill.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupFigures {
    pub samples: usize,
    /// Worst exposure in each phase, seconds (none when no answer came in it).
    pub max_exposure_before_s: Option<f64>,
    pub max_exposure_during_s: Option<f64>,
    pub max_exposure_after_s: Option<f64>,
    /// Every node seen shipping, in order of first sight.
    pub shippers: Vec<u64>,
    /// The archive grew after the fault began: backups went on through it.
    pub archived_during_fault: bool,
    /// Answers that reported an error once backups had begun.
    pub errors: usize,
    /// The newest error reported, if any.
    pub last_error: Option<String>,
}

impl BackupFigures {
    /// The figures of `samples`, split at the drill's `phases`; `None` when
    /// there are none (the cluster takes no backups, or never answered).
    pub fn of(samples: &[BackupSample], errors: (usize, Option<String>), phases: &Phases) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let worst = |from_ms: f64, to_ms: f64| {
            samples
                .iter()
                .filter(|s| (from_ms..to_ms).contains(&(s.at_ms as f64)))
                .map(|s| s.exposure_s)
                .reduce(f64::max)
        };
        let mut shippers = Vec::new();
        for sample in samples {
            if sample.shipper != 0 && !shippers.contains(&sample.shipper) {
                shippers.push(sample.shipper);
            }
        }
        let archived_at_fault = samples
            .iter()
            .filter(|s| (s.at_ms as f64) <= phases.fault_ms)
            .map(|s| s.archived_index)
            .max()
            .unwrap_or(0);
        let archived_during_fault = samples.iter().any(|s| {
            (phases.fault_ms..=phases.heal_ms).contains(&(s.at_ms as f64)) && s.archived_index > archived_at_fault
        });
        Some(Self {
            samples: samples.len(),
            max_exposure_before_s: worst(0.0, phases.fault_ms),
            max_exposure_during_s: worst(phases.fault_ms, phases.heal_ms),
            max_exposure_after_s: worst(phases.heal_ms, f64::INFINITY),
            shippers,
            archived_during_fault,
            errors: errors.0,
            last_error: errors.1,
        })
    }
}

#[derive(Debug, Default)]
struct Seen {
    samples: Vec<BackupSample>,
    errors: usize,
    last_error: Option<String>,
    /// The newest restorable time, shipper and archived index an answer gave.
    last_known: Option<(i64, u64, u64)>,
}

/// A running watch of the backups; `finish` stops it.
pub struct BackupWatch {
    seen: Arc<Mutex<Seen>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl BackupWatch {
    /// Starts asking `client` (one that follows the cluster) every second.
    pub fn start(client: Client, origin: Instant) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (stop, mut stopped) = watch::channel(false);
        let record = seen.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(BACKUP_WATCH_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => return,
                }
                let Ok(Ok(status)) = tokio::time::timeout(STATUS_DEADLINE, client.status()).await else {
                    continue;
                };
                let Some(backup) = status.backup else {
                    continue;
                };
                let mut seen = record.lock().unwrap_or_else(|p| p.into_inner());
                // Before the first backup lands, "none written yet" is no error.
                if let Some(error) = backup.error.filter(|_| !seen.samples.is_empty()) {
                    seen.errors += 1;
                    seen.last_error = Some(error);
                }
                // An answer that could not read the progress object still
                // counts: the exposure grows from the last position known.
                let known = if backup.restorable_unix_ms > 0 {
                    Some((backup.restorable_unix_ms, backup.shipper_node_id, backup.archived_index))
                } else {
                    seen.last_known
                };
                let Some((restorable_ms, shipper, archived_index)) = known else {
                    continue;
                };
                seen.last_known = known;
                let now_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                seen.samples.push(BackupSample {
                    at_ms: u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX),
                    exposure_s: (now_ms - restorable_ms).max(0) as f64 / 1000.0,
                    shipper,
                    archived_index,
                });
            }
        });
        Self { seen, stop, task }
    }

    /// Stops the watch; returns the samples, and how many answers reported
    /// an error with the newest of them.
    pub async fn finish(self) -> (Vec<BackupSample>, (usize, Option<String>)) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        (std::mem::take(&mut seen.samples), (seen.errors, seen.last_error.take()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64, exposure_s: f64, shipper: u64, archived_index: u64) -> BackupSample {
        BackupSample {
            at_ms,
            exposure_s,
            shipper,
            archived_index,
        }
    }

    /// A fault from 10 s to 20 s of a 30 s drill.
    fn phases() -> Phases {
        Phases {
            fault_ms: 10_000.0,
            injected_ms: 10_100.0,
            heal_ms: 20_000.0,
            end_ms: 30_000.0,
        }
    }

    #[test]
    fn each_phase_keeps_its_worst_exposure_and_a_new_shipper_is_seen() {
        let phases = phases();
        let samples = [
            sample(1_000, 0.5, 2, 10),
            sample(9_000, 2.0, 2, 40),
            sample(12_000, 4.5, 2, 40),
            sample(15_000, 1.0, 3, 90),
            sample(25_000, 0.7, 3, 150),
        ];
        let figures = BackupFigures::of(&samples, (0, None), &phases).unwrap();
        assert_eq!(figures.samples, 5);
        assert_eq!(figures.max_exposure_before_s, Some(2.0));
        assert_eq!(figures.max_exposure_during_s, Some(4.5));
        assert_eq!(figures.max_exposure_after_s, Some(0.7));
        assert_eq!(figures.shippers, vec![2, 3]);
        assert!(figures.archived_during_fault);
    }

    #[test]
    fn an_archive_that_stood_still_through_the_fault_says_so() {
        let phases = phases();
        let samples = [
            sample(9_000, 1.0, 2, 40),
            sample(15_000, 6.0, 2, 40),
            sample(25_000, 0.5, 3, 80),
        ];
        let figures = BackupFigures::of(&samples, (2, Some("target unreachable".into())), &phases).unwrap();
        assert!(!figures.archived_during_fault);
        assert_eq!(figures.errors, 2);
        assert_eq!(figures.last_error.as_deref(), Some("target unreachable"));
        assert_eq!(
            BackupFigures::of(&[], (0, None), &phases),
            None,
            "no backups, no figures"
        );
    }
}
