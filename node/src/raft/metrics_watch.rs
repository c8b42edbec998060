//! Publishes Raft's own metrics (term, leader changes, indexes, follower lag)
//! to Prometheus whenever they change.

use openraft::async_runtime::WatchReceiver;

use super::consensus::Consensus;
use crate::metrics_names as names;

/// Watches the node's Raft metrics until the node stops.
pub fn spawn(consensus: Consensus) {
    tokio::spawn(async move {
        let mut watch = consensus.raft().metrics();
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
            }
            if watch.changed().await.is_err() {
                return;
            }
        }
    });
}
