//! The node's view of consensus, and the only door to it for the rest of the
//! node: propose a write, get a read barrier, change membership, report
//! status and readiness. Any node can be asked; a follower forwards to the
//! leader over the peer channel, and during an election waits (bounded) for a
//! new leader instead of failing at once.
//!
//! This file holds the handle and how a request finds the leader; `types`
//! what the handle's callers see, `write` proposals and forwarding, `read`
//! read barriers, `membership` membership changes and incarnations, and
//! `views` status and readiness. Nothing outside `raft/` reaches openraft
//! through the handle.

mod membership;
mod read;
mod types;
mod views;
mod write;

pub use membership::IdentifyError;
pub use types::{
    Applied, ClusterView, ConsensusError, LeaderHint, MemberView, MembershipChange, ReadLevel, Role, RoutingLimits,
};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;

use super::channels::PeerChannels;
use super::types::{NodeId, NodeInfo, SafekeepRaft};
use crate::environment::WallClock;
use crate::storage::{JoinRecord, LogArchiveReader, LogFingerprints, RecordReader};

/// Marks a membership change one node forwarded to the leader: the receiver
/// applies it as leader or refuses, and never forwards it again.
pub(super) const FORWARDED_METADATA: &str = "x-safekeep-forwarded";
/// Most times one request is routed again after the leader it was sent to stepped down.
const MAX_ROUTE_ATTEMPTS: usize = 5;
/// How often a waiting request looks for a new leader.
const LEADER_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Deadline of a request forwarded to the leader.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// The consensus handle shared by every service of the node.
#[derive(Clone)]
pub struct Consensus {
    id: NodeId,
    raft: SafekeepRaft,
    peers: PeerChannels,
    limits: RoutingLimits,
    last_leader_contact: Arc<Mutex<Option<Instant>>>,
    replica: ReplicaHandles,
    /// Origin of the monotonic clock proposals carry (`Command::leader_clock_ms`).
    started: Instant,
}

/// What the consensus handle keeps of its own replica: a reader of records,
/// fingerprints of its log, the wall clock it stamps proposals with, and
/// the incarnation of its data directory and whether its join was acknowledged.
#[derive(Clone)]
pub(super) struct ReplicaHandles {
    pub reader: RecordReader,
    pub log: LogFingerprints,
    pub archive: LogArchiveReader,
    pub wall_clock: WallClock,
    pub incarnation: u64,
    pub join: JoinRecord,
}

enum Route {
    Local,
    Remote(NodeId, NodeInfo),
}

impl Consensus {
    pub(super) fn new(
        id: NodeId,
        raft: SafekeepRaft,
        peers: PeerChannels,
        limits: RoutingLimits,
        replica: ReplicaHandles,
    ) -> Self {
        Self {
            id,
            raft,
            peers,
            limits,
            last_leader_contact: Arc::new(Mutex::new(None)),
            replica,
            started: Instant::now(),
        }
    }

    /// Fingerprints of this node's stored log entries, for checks that
    /// compare committed entries across replicas.
    pub fn log_fingerprints(&self) -> &LogFingerprints {
        &self.replica.log
    }

    /// Reads this node's stored log entries, for the backup's log archive.
    pub fn log_archive(&self) -> &LogArchiveReader {
        &self.replica.archive
    }

    /// Reads records from this node's replica (after a `read_barrier`).
    pub fn reader(&self) -> &RecordReader {
        &self.replica.reader
    }

    /// Connections to other nodes' peer channels.
    pub(super) fn peers(&self) -> &PeerChannels {
        &self.peers
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.id
    }

    /// The incarnation of this node's data directory.
    pub fn incarnation(&self) -> u64 {
        self.replica.incarnation
    }

    /// The mark that the cluster acknowledged this node's join.
    pub(in crate::raft) fn join_record(&self) -> &JoinRecord {
        &self.replica.join
    }

    pub(super) fn raft(&self) -> &SafekeepRaft {
        &self.raft
    }

    /// Notes that the leader just reached this node (for readiness).
    pub(super) fn note_leader_contact(&self) {
        let mut contact = self.last_leader_contact.lock().unwrap_or_else(|p| p.into_inner());
        *contact = Some(Instant::now());
    }

    /// Finds where a request must go, waiting (bounded) for a leader.
    async fn route(&self) -> Result<Route, ConsensusError> {
        let started = Instant::now();
        let mut metrics = self.raft.metrics();
        loop {
            {
                let m = metrics.borrow_and_update();
                if m.state == ServerState::Shutdown {
                    return Err(ConsensusError::Stopped("node is shutting down".into()));
                }
                match m.current_leader {
                    Some(leader) if leader == self.id && m.state == ServerState::Leader => return Ok(Route::Local),
                    Some(leader) if leader != self.id => {
                        if let Some(node) = m.membership_config.membership().get_node(&leader) {
                            return Ok(Route::Remote(leader, node.clone()));
                        }
                    }
                    _ => {}
                }
            }
            let waited = started.elapsed();
            if waited >= self.limits.leader_wait {
                return Err(ConsensusError::NoLeader {
                    waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                });
            }
            let remaining = self.limits.leader_wait - waited;
            // Wake on a metrics change, or poll: leadership may settle without one.
            let _ = tokio::time::timeout(remaining.min(LEADER_POLL_INTERVAL * 5), metrics.changed()).await;
        }
    }

    /// Stops consensus on this node.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown did not finish cleanly");
        }
    }
}
