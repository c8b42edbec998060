//! The backup duty of a running node. One node ships at a time, decided from
//! what the cluster agreed on: the lowest-id voter that is not the leader
//! (so the leader carries no extra load), or the leader when it is alone.
//! The leader also ships while that follower is unreachable, silent for a
//! few seconds, or far behind, so a lost zone does not stop the archive
//! (nor stretch it past one interval when few writes come); two shippers for a moment do
//! no harm, since committed entries are the same on every node and a
//! restore takes overlapping segments in index order.
//!
//! The shipper takes a full backup when the target has none, on schedule,
//! and when the entries it must ship next were purged from its log; it
//! ships the archive every `archive_interval_s`, or sooner when many entries
//! wait (before a snapshot purges them); and it drops sets older than the
//! retention, with the segments only they needed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStoreExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::archive::{Archiver, Shipped};
use super::catalog::{Catalog, read_manifest};
use super::check;
use super::error::BackupError;
use super::full::FullBackup;
use super::ledger;
use super::progress::{self, Progress};
use super::target::Target;
use crate::config::BackupSettings;
use crate::crypto::KeyProvider;
use crate::metrics_names as names;
use crate::raft::{ClusterView, Consensus};

/// How often the duty is looked at.
const TICK: Duration = Duration::from_millis(500);
/// Entries waiting that make the archive ship before its interval.
const SHIP_EARLY_ENTRIES: u64 = 2_000;
/// How far the designated follower may fall behind before the leader ships too.
const TAKEOVER_LAG_ENTRIES: u64 = 1_000;
/// How long the designated follower may go without acknowledging the
/// leader before the leader ships too: a few elections' worth, so a lost
/// follower costs the archive a few seconds however slowly writes come.
const TAKEOVER_SILENCE: Duration = Duration::from_secs(3);
/// Wait after a failed step before it is tried again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);
/// `Position::next` while the target has no archive to continue.
const NO_ARCHIVE: u64 = u64::MAX;
/// Milliseconds in a day, for the retention.
const DAY_MS: i64 = 86_400_000;

/// Whether this node ships backups now.
pub fn has_duty(view: &ClusterView) -> bool {
    let Some(leader) = view.leader_id else {
        return false;
    };
    let designated = view
        .members
        .iter()
        .filter(|m| m.voter && m.id != leader)
        .min_by_key(|m| m.id);
    match designated {
        None => view.node_id == leader,
        Some(follower) if follower.id == view.node_id => true,
        Some(follower) => {
            let behind = follower
                .matched_index
                .is_none_or(|matched| view.last_log_index.saturating_sub(matched) > TAKEOVER_LAG_ENTRIES);
            let silent = follower.since_ack.is_none_or(|since| since > TAKEOVER_SILENCE);
            view.node_id == leader && (behind || silent)
        }
    }
}

/// Where the archive stands, as the shipper knows it.
struct Position {
    /// The next log index to ship.
    next: u64,
    /// The commit time the archive reaches (ms since the Unix epoch).
    restorable_at_ms: i64,
    last_full_ms: i64,
    /// The log index the newest full backup holds.
    last_full_index: u64,
    /// When the archive last held every applied entry (ms since the Unix epoch; 0: not yet).
    current_at_ms: i64,
    last_ship: Instant,
}

/// The running duty.
pub struct Shipper {
    settings: BackupSettings,
    targets: Vec<Target>,
    consensus: Consensus,
    provider: Arc<dyn KeyProvider>,
    cluster_name: String,
    /// Where test restores put their scratch directories: the node's data directory.
    data_dir: PathBuf,
    now_ms: fn() -> i64,
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Shipper {
    /// A shipper for `consensus`'s node.
    pub fn new(
        settings: BackupSettings,
        targets: Vec<Target>,
        consensus: Consensus,
        provider: Arc<dyn KeyProvider>,
        cluster_name: String,
        data_dir: PathBuf,
    ) -> Self {
        assert!(!targets.is_empty(), "backups need a target");
        Self {
            settings,
            targets,
            consensus,
            provider,
            cluster_name,
            data_dir,
            now_ms: wall_clock_ms,
        }
    }

    /// Runs the duty until `stop` turns true.
    pub fn spawn(self, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut position: Option<Position> = None;
            if let Err(e) = check::clear_scratch(&self.data_dir) {
                tracing::warn!(error = %e, "could not remove an earlier test restore's scratch directory");
            }
            let mut last_check: Option<Instant> = None;
            let mut running_check: Option<JoinHandle<()>> = None;
            loop {
                tokio::select! {
                    _ = stop.changed() => {}
                    _ = tokio::time::sleep(TICK) => {}
                }
                if *stop.borrow() {
                    return;
                }
                let view = self.consensus.view();
                if !has_duty(&view) {
                    position = None;
                    continue;
                }
                if position.as_ref().is_some_and(|at| at.last_full_ms > 0) {
                    self.maybe_check(&mut last_check, &mut running_check);
                }
                if let Err((step, e)) = self.step(&view, &mut position).await {
                    tracing::warn!(step, error = %e, "backup step failed");
                    metrics::counter!(names::BACKUP_FAILURES, "step" => step).increment(1);
                    position = None;
                    tokio::select! {
                        _ = stop.changed() => {}
                        _ = tokio::time::sleep(RETRY_AFTER_FAILURE) => {}
                    }
                }
            }
        })
    }

    async fn step(
        &self,
        view: &ClusterView,
        position: &mut Option<Position>,
    ) -> Result<(), (&'static str, BackupError)> {
        let now_ms = (self.now_ms)();
        if position.is_none() {
            *position = Some(self.find_position().await.map_err(|e| ("list", e))?);
        }
        let at = position.as_mut().expect("found above");
        let full_due =
            now_ms - at.last_full_ms >= i64::try_from(self.settings.full_interval_s * 1000).unwrap_or(i64::MAX);
        // An operator's request, through the log: a set that holds it answers it.
        let requested = self
            .consensus
            .reader()
            .backup_requested()
            .map_err(|e| ("full", e.into()))?;
        let mut shipped_or_full = false;
        if at.last_full_ms == 0 || full_due || requested > at.last_full_index {
            shipped_or_full = true;
            self.full_backup(at, false).await.map_err(|e| ("full", e))?;
            if self.settings.delete_expired {
                self.apply_retention().await.map_err(|e| ("retention", e))?;
            }
        }
        let applied = view.applied_index;
        let waiting = (applied + 1).saturating_sub(at.next.min(applied + 1));
        let interval = Duration::from_secs(self.settings.archive_interval_s);
        // Whether every entry applied when this step began is in the archive.
        let mut current = waiting == 0;
        // One tick early, so no entry waits longer than the interval.
        let due = at.last_ship.elapsed() + TICK >= interval;
        if waiting > 0 && (due || waiting >= SHIP_EARLY_ENTRIES) {
            let archiver = Archiver {
                targets: &self.targets,
                provider: self.provider.clone(),
                log: self.consensus.log_archive().clone(),
                cluster_name: self.cluster_name.clone(),
            };
            match archiver
                .ship(at.next, applied, at.restorable_at_ms)
                .await
                .map_err(|e| ("archive", e))?
            {
                Shipped::UpTo(segment) => {
                    shipped_or_full = true;
                    current = segment.last >= applied;
                    at.next = segment.last + 1;
                    at.restorable_at_ms = segment.last_at_ms;
                    at.last_ship = Instant::now();
                }
                Shipped::Nothing => {
                    current = true;
                    at.last_ship = Instant::now();
                }
                Shipped::Purged { next, first_stored } => {
                    tracing::info!(
                        next,
                        ?first_stored,
                        "entries to archive were purged: a full backup closes the gap"
                    );
                    shipped_or_full = true;
                    self.full_backup(at, true).await.map_err(|e| ("full", e))?;
                }
            }
        }
        let waiting = (applied + 1).saturating_sub(at.next.min(applied + 1));
        let lag_s = if waiting == 0 {
            0.0
        } else {
            at.last_ship.elapsed().as_secs_f64()
        };
        metrics::gauge!(names::BACKUP_ARCHIVE_LAG).set(lag_s);
        if current {
            at.current_at_ms = now_ms;
            metrics::gauge!(names::BACKUP_LAST_SUCCESS).set(now_ms as f64 / 1000.0);
        }
        if shipped_or_full {
            let written = Progress {
                node: self.consensus.node_id(),
                current_at_ms: at.current_at_ms,
                last_full_ms: at.last_full_ms,
                last_full_index: at.last_full_index,
                restorable_at_ms: at.restorable_at_ms,
                archived_index: at.next.saturating_sub(1),
            };
            progress::write(&self.targets, self.provider.as_ref(), &written)
                .await
                .map_err(|e| ("archive", e))?;
        }
        metrics::gauge!(names::BACKUP_RESTORABLE).set(at.restorable_at_ms as f64 / 1000.0);
        Ok(())
    }

    /// Starts a test restore of the newest set when one is due and none runs.
    fn maybe_check(&self, last_check: &mut Option<Instant>, running: &mut Option<JoinHandle<()>>) {
        let interval = Duration::from_secs(self.settings.verify_interval_s);
        let due = self.settings.verify_interval_s > 0 && last_check.is_none_or(|at| at.elapsed() >= interval);
        if !due || running.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        *last_check = Some(Instant::now());
        let (target, provider, dir) = (self.targets[0].clone(), self.provider.clone(), self.data_dir.clone());
        *running = Some(tokio::spawn(async move {
            let started = std::time::Instant::now();
            match check::check_newest_set(&target, &provider, &dir).await {
                Ok(Some(report)) if report.matches() => {
                    metrics::gauge!(names::BACKUP_LAST_VERIFIED).set(wall_clock_ms() as f64 / 1000.0);
                    tracing::info!(
                        set = %report.set.folder(),
                        records = report.records,
                        sha256 = %report.found_sha256,
                        seconds = started.elapsed().as_secs_f64(),
                        "test restore of the newest full backup matches"
                    );
                }
                Ok(Some(report)) => {
                    metrics::counter!(names::BACKUP_VERIFY_FAILURES).increment(1);
                    tracing::error!(
                        set = %report.set.folder(),
                        expected = %report.expected_sha256,
                        found = %report.found_sha256,
                        "test restore of the newest full backup brought back other records"
                    );
                }
                Ok(None) => {}
                Err(e) => {
                    metrics::counter!(names::BACKUP_VERIFY_FAILURES).increment(1);
                    tracing::error!(error = %e, "test restore of the newest full backup failed");
                }
            }
        }));
    }

    /// Where the target's archive ends, from a listing.
    async fn find_position(&self) -> Result<Position, BackupError> {
        let catalog = Catalog::list(&self.targets[0]).await?;
        let Some(newest) = catalog.sets.last() else {
            return Ok(Position {
                next: NO_ARCHIVE,
                restorable_at_ms: 0,
                last_full_ms: 0,
                last_full_index: 0,
                current_at_ms: 0,
                last_ship: Instant::now(),
            });
        };
        let manifest = read_manifest(&self.targets[0], &self.provider, newest).await?;
        let (next, restorable_at_ms) = match catalog.chain_after(newest.index) {
            Ok(chain) => match chain.last() {
                Some(last) => (last.last + 1, last.last_at_ms),
                None => (newest.index + 1, manifest.applied_at_ms),
            },
            // A hole after the newest set: start over with a new set.
            Err(_) => (NO_ARCHIVE, manifest.applied_at_ms),
        };
        Ok(Position {
            next,
            restorable_at_ms,
            last_full_ms: if next == NO_ARCHIVE { 0 } else { manifest.taken_at_ms },
            last_full_index: newest.index,
            current_at_ms: 0,
            last_ship: Instant::now(),
        })
    }

    /// Takes a full backup; the archive continues after it when it had no
    /// archive to continue or `close_gap` (the next entries were purged).
    async fn full_backup(&self, at: &mut Position, close_gap: bool) -> Result<(), BackupError> {
        let started = std::time::Instant::now();
        let (set, manifest) = FullBackup {
            targets: &self.targets,
            provider: self.provider.clone(),
            reader: self.consensus.reader().clone(),
            cluster_name: self.cluster_name.clone(),
            node: self.consensus.node_id(),
            now_ms: (self.now_ms)(),
        }
        .run()
        .await?;
        tracing::info!(
            set = %set.folder(),
            index = manifest.last_index,
            records = manifest.records,
            bytes = manifest.data_bytes,
            seconds = started.elapsed().as_secs_f64(),
            "full backup taken"
        );
        // Every tenant the state machine holds as deleted is in the ledger,
        // whether or not its deletion reached the archive.
        let deleted: Vec<(String, i64)> = self
            .consensus
            .reader()
            .tenants()?
            .into_iter()
            .filter_map(|(tenant, record)| record.deleted_at_ms.map(|at| (tenant, at)))
            .collect();
        let written = ledger::record_missing(&self.targets, self.provider.as_ref(), &deleted).await?;
        if written > 0 {
            tracing::info!(written, "erasure ledger entries written from deleted tenants");
        }
        // Otherwise the archive goes on from where it is, so the log between
        // the previous set and this one stays restorable.
        if at.next == NO_ARCHIVE || close_gap {
            at.next = set.index + 1;
            at.restorable_at_ms = at.restorable_at_ms.max(manifest.applied_at_ms);
        }
        at.last_full_ms = manifest.taken_at_ms;
        at.last_full_index = set.index;
        metrics::gauge!(names::BACKUP_LAST_FULL).set(manifest.taken_at_ms as f64 / 1000.0);
        metrics::gauge!(names::BACKUP_RESTORABLE).set(at.restorable_at_ms as f64 / 1000.0);
        Ok(())
    }

    /// Drops sets older than the retention (never the newest), and the
    /// segments that only they needed.
    async fn apply_retention(&self) -> Result<(), BackupError> {
        let cutoff_ms = (self.now_ms)() - i64::from(self.settings.retention_days) * DAY_MS;
        for target in &self.targets {
            let catalog = Catalog::list(target).await?;
            let Some((newest, older)) = catalog.sets.split_last() else {
                continue;
            };
            let expired: Vec<_> = older.iter().filter(|s| s.taken_at_ms < cutoff_ms).collect();
            let oldest_kept = catalog
                .sets
                .iter()
                .find(|s| s.taken_at_ms >= cutoff_ms)
                .unwrap_or(newest);
            for set in expired {
                // The manifest first: a set without one is unfinished, never restored.
                target.store.delete(&set.manifest_path()).await?;
                target.store.delete(&set.data_path()).await?;
                tracing::info!(set = %set.folder(), "backup set expired");
            }
            for segment in catalog.segments.iter().filter(|s| s.last <= oldest_kept.index) {
                target.store.delete(&segment.path()).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{MemberView, NodeInfo, Role};

    fn member(id: u64, matched_index: Option<u64>, since_ack: Option<Duration>) -> MemberView {
        MemberView {
            id,
            node: NodeInfo {
                zone: format!("zone-{id}"),
                peer_address: format!("127.0.0.1:{}", 7000 + id),
                client_address: format!("127.0.0.1:{}", 8000 + id),
                incarnation: 1,
            },
            voter: true,
            matched_index,
            since_ack,
        }
    }

    /// Node `node_id`'s view of a three-node cluster led by node 1, where
    /// node 2 (the designated follower) stands as given and node 3 is current.
    fn view(node_id: u64, follower: MemberView) -> ClusterView {
        let current = Some(Duration::from_millis(50));
        ClusterView {
            node_id,
            role: if node_id == 1 { Role::Leader } else { Role::Follower },
            term: 2,
            leader_id: Some(1),
            last_log_index: 5_000,
            committed_index: 5_000,
            committed_term: 2,
            applied_index: 5_000,
            applied_term: 2,
            snapshot_index: None,
            members: vec![
                member(1, Some(5_000), current),
                follower,
                member(3, Some(5_000), current),
            ],
        }
    }

    #[test]
    fn the_lowest_follower_ships_and_the_leader_only_while_it_is_behind_or_silent() {
        let healthy = member(2, Some(4_990), Some(Duration::from_millis(100)));
        assert!(has_duty(&view(2, healthy.clone())), "the designated follower ships");
        assert!(!has_duty(&view(1, healthy.clone())), "the leader carries no extra load");
        assert!(!has_duty(&view(3, healthy)), "nor does the other follower");

        let behind = member(2, Some(3_000), Some(Duration::from_millis(100)));
        assert!(has_duty(&view(1, behind)), "far behind: the leader ships too");
        let unknown = member(2, None, None);
        assert!(has_duty(&view(1, unknown)), "never heard from: the leader ships too");
        // Few writes: the follower is not behind by entries, but has been
        // silent longer than the takeover allows.
        let silent = member(2, Some(4_999), Some(TAKEOVER_SILENCE + Duration::from_secs(1)));
        assert!(has_duty(&view(1, silent.clone())), "silent: the leader ships too");
        assert!(!has_duty(&view(3, silent)), "and no other follower does");
    }

    #[test]
    fn without_a_leader_nobody_ships_and_a_lone_leader_ships_itself() {
        let mut leaderless = view(2, member(2, None, None));
        leaderless.leader_id = None;
        assert!(!has_duty(&leaderless));
        let mut alone = view(1, member(2, None, None));
        alone.members.truncate(1);
        assert!(has_duty(&alone));
    }
}
