//! Publishes Raft's own metrics (term, leader changes, indexes, follower lag,
//! voters) to Prometheus whenever they change, and every `REFRESH_INTERVAL`
//! what can change without a Raft event: how many voters still answer the
//! leader, and the free space of the data directory's file system. Also sets
//! `safekeep_node_info`, which names the node's cluster and zone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use openraft::Instant as _;
use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;

use super::consensus::Consensus;
use super::types::NodeId;
use crate::config::NodeConfig;
use crate::metrics_names as names;

/// How often voter reachability and disk space are refreshed.
const REFRESH_INTERVAL: Duration = Duration::from_secs(5);
/// A voter counts as reachable if it answered the leader within this many
/// longest election timeouts (the silence `/readyz` tolerates from a leader).
const REACHABLE_ELECTION_TIMEOUTS: u64 = 2;

/// Watches the node's Raft metrics until the node stops.
pub fn spawn(consensus: Consensus, config: &NodeConfig) {
    metrics::gauge!(
        names::NODE_INFO,
        "cluster" => config.cluster_name.clone(),
        "node_id" => config.id.to_string(),
        "zone" => config.zone.clone()
    )
    .set(1.0);
    let data_dir = config.data_dir.clone();
    let reachable_within =
        Duration::from_millis(config.raft.election_max_ms.saturating_mul(REACHABLE_ELECTION_TIMEOUTS));
    tokio::spawn(async move {
        let mut watch = consensus.raft().metrics();
        let mut ticks = tokio::time::interval(REFRESH_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut disk = DiskWatch::new(data_dir);
        let mut last_leader = None;
        loop {
            {
                let m = watch.borrow_and_update();
                metrics::gauge!(names::RAFT_TERM).set(m.current_term as f64);
                let is_leader = m.current_leader == Some(m.id);
                metrics::gauge!(names::IS_LEADER).set(if is_leader { 1.0 } else { 0.0 });
                if m.current_leader != last_leader {
                    if m.current_leader.is_some() {
                        metrics::counter!(names::LEADER_CHANGES).increment(1);
                    }
                    last_leader = m.current_leader;
                }
                let last_log = m.last_log_index.unwrap_or(0);
                metrics::gauge!(names::LAST_LOG_INDEX).set(last_log as f64);
                metrics::gauge!(names::COMMITTED_INDEX).set(m.local_committed.as_ref().map_or(0, |l| l.index) as f64);
                metrics::gauge!(names::APPLIED_INDEX).set(m.last_applied.as_ref().map_or(0, |l| l.index) as f64);
                if let Some(replication) = &m.replication {
                    for (peer, matched) in replication {
                        let lag = last_log.saturating_sub(matched.as_ref().map_or(0, |l| l.index));
                        metrics::gauge!(names::FOLLOWER_LAG, "peer" => peer.to_string()).set(lag as f64);
                    }
                }
                let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
                metrics::gauge!(names::VOTERS).set(voters.len() as f64);
                let reachable = match (&m.heartbeat, m.state) {
                    (Some(acked), ServerState::Leader) => reachable_voters(m.id, &voters, reachable_within, |id| {
                        acked.get(&id).and_then(|at| at.as_ref()).map(|at| at.elapsed())
                    }),
                    _ => 0,
                };
                metrics::gauge!(names::VOTERS_REACHABLE).set(reachable as f64);
            }
            tokio::select! {
                changed = watch.changed() => if changed.is_err() { return },
                _ = ticks.tick() => disk.publish(),
            }
        }
    });
}

/// Voters that answered the leader within `within` (the leader itself always
/// counts); `since_answer` tells how long ago a voter last answered, if ever.
fn reachable_voters(
    leader: NodeId,
    voters: &[NodeId],
    within: Duration,
    since_answer: impl Fn(NodeId) -> Option<Duration>,
) -> usize {
    voters
        .iter()
        .filter(|&&id| id == leader || since_answer(id).is_some_and(|ago| ago <= within))
        .count()
}

/// Publishes the free and total bytes of the data directory's file system.
struct DiskWatch {
    data_dir: PathBuf,
    /// Whether the last attempt failed, so a lasting failure is logged once.
    failing: bool,
}

impl DiskWatch {
    fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            failing: false,
        }
    }

    fn publish(&mut self) {
        match data_dir_space(&self.data_dir) {
            Ok((free, total)) => {
                metrics::gauge!(names::DATA_DIR_FREE_BYTES).set(free as f64);
                metrics::gauge!(names::DATA_DIR_TOTAL_BYTES).set(total as f64);
                self.failing = false;
            }
            Err(e) if !self.failing => {
                tracing::warn!(data_dir = %self.data_dir.display(), error = %e, "cannot read the data directory's free space");
                self.failing = true;
            }
            Err(_) => {}
        }
    }
}

/// Bytes available to the node and the size of the file system holding `path`.
fn data_dir_space(path: &Path) -> Result<(u64, u64), nix::Error> {
    let stats = nix::sys::statvfs::statvfs(path)?;
    // The libc field types differ between platforms; on Linux they are all u64.
    let fragment = stats.fragment_size() as u64;
    Ok((
        (stats.blocks_available() as u64).saturating_mul(fragment),
        (stats.blocks() as u64).saturating_mul(fragment),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reachable_voters_counts_the_leader_and_voters_that_answered_in_time() {
        let within = Duration::from_secs(2);
        let answered = |id: NodeId| match id {
            2 => Some(Duration::from_millis(150)),
            3 => Some(Duration::from_secs(30)),
            _ => None,
        };
        assert_eq!(reachable_voters(1, &[1, 2, 3], within, answered), 2);
        assert_eq!(reachable_voters(1, &[1, 2, 3, 4, 5], within, answered), 2);
        assert_eq!(reachable_voters(1, &[1], within, |_| None), 1);
        // A leader no longer among the voters (removing itself) does not count itself.
        assert_eq!(reachable_voters(1, &[2, 3], within, answered), 1);
    }

    #[test]
    fn data_dir_space_reports_free_bytes_within_the_total() {
        let dir = std::env::temp_dir();
        let (free, total) = data_dir_space(&dir).expect("statvfs of the temporary directory");
        assert!(total > 0 && free <= total, "free {free} of {total}");
        assert!(data_dir_space(Path::new("/nonexistent/safekeep")).is_err());
    }
}
