//! What callers of the consensus handle see: its errors, what a committed
//! write returns, the read levels, membership changes, and the views of the
//! cluster it reports.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::command::CommandResponse;
use crate::storage::types::{NodeId, NodeInfo};

/// Why consensus could not serve a request. Crosses the peer channel when a
/// forwarded request fails at the leader.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize, PartialEq, Eq)]
pub enum ConsensusError {
    #[error("no leader was elected within {waited_ms} ms")]
    NoLeader { waited_ms: u64 },
    #[error("this node is not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("leader {leader} could not be reached: {reason}")]
    LeaderUnreachable { leader: NodeId, reason: String },
    #[error("the write may or may not have been applied: {0}")]
    OutcomeUnknown(String),
    #[error("a quorum could not be reached: {0}")]
    QuorumUnreachable(String),
    #[error("membership change refused: {0}")]
    MembershipRejected(String),
    #[error("{0}")]
    Placement(String),
    #[error("a membership change is already in progress: {0}")]
    MembershipBusy(String),
    #[error("the local replica did not catch up to index {index} within {waited_ms} ms")]
    CatchUpTimeout { index: u64, waited_ms: u64 },
    #[error("consensus has stopped: {0}")]
    Stopped(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("the leader refused the request as invalid: {0}")]
    Invalid(String),
}

/// A write that was committed and applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Applied {
    pub response: CommandResponse,
    pub index: u64,
}

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadLevel {
    /// Confirmed with a quorum (read index).
    Linearizable,
    /// Under the leader's lease.
    Lease,
    /// Whatever this replica has applied.
    Stale,
}

/// A membership change, as forwarded to the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MembershipChange {
    AddLearner {
        id: NodeId,
        node: NodeInfo,
    },
    Promote {
        id: NodeId,
        force: bool,
    },
    Remove {
        id: NodeId,
        force: bool,
    },
    /// Voter `old` leaves and member `new` votes in its place, in one joint change.
    Replace {
        old: NodeId,
        new: NodeId,
        force: bool,
    },
    TransferLeader {
        id: NodeId,
    },
}

/// One member as seen by this node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberView {
    pub id: NodeId,
    pub node: NodeInfo,
    pub voter: bool,
    /// Highest index known replicated to it; only on the leader.
    pub matched_index: Option<u64>,
    /// How long since it last acknowledged a heartbeat or replication; only on the leader.
    pub since_ack: Option<Duration>,
}

/// This node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
    Candidate,
    Learner,
    Stopped,
}

/// The cluster as this node sees it.
#[derive(Debug, Clone)]
pub struct ClusterView {
    pub node_id: NodeId,
    pub role: Role,
    pub term: u64,
    pub leader_id: Option<NodeId>,
    pub last_log_index: u64,
    pub committed_index: u64,
    /// Term of the entry at `committed_index` (0 if none).
    pub committed_term: u64,
    pub applied_index: u64,
    /// Term of the entry at `applied_index` (0 if none).
    pub applied_term: u64,
    /// Last log index covered by this node's current snapshot, if it has one.
    pub snapshot_index: Option<u64>,
    pub members: Vec<MemberView>,
}

/// Who leads, for response headers.
#[derive(Debug, Clone, Default)]
pub struct LeaderHint {
    pub leader_id: Option<NodeId>,
    pub leader_client_address: Option<String>,
    pub term: u64,
}

/// Tunables of request routing and readiness.
#[derive(Debug, Clone)]
pub struct RoutingLimits {
    /// How long a request waits for a leader during an election.
    pub leader_wait: Duration,
    /// How long a follower waits for its replica to reach a read index.
    pub read_catch_up: Duration,
    /// Readiness: longest time without contact from the leader.
    pub ready_max_leader_silence: Duration,
    /// Readiness: most entries the replica may lag behind the commit index.
    pub ready_max_apply_lag: u64,
}
