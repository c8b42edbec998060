//! Read barriers: a read at the level it asks for (linearizable through
//! the leader's read index, a lease read, or stale), waiting until this
//! replica has applied up to the barrier.

use openraft::ReadPolicy;
use openraft::error::{LinearizableReadError, RaftError};

use super::types::{ConsensusError, ReadLevel};
use super::{Consensus, FORWARD_TIMEOUT, LEADER_POLL_INTERVAL, MAX_ROUTE_ATTEMPTS, Route};
use crate::storage::types::{NodeId, NodeInfo};
use safekeep_api::v1::ReadIndexRequest;

impl Consensus {
    /// Waits until a read at `level` on this node's replica is as fresh as the level promises.
    pub async fn read_barrier(&self, level: ReadLevel) -> Result<(), ConsensusError> {
        if level == ReadLevel::Stale {
            return Ok(());
        }
        if crate::test_faults::enabled(crate::test_faults::TestFault::ReadsWithoutBarrier) {
            // The deliberate bug: answer from this replica as it is.
            return Ok(());
        }
        let lease = level == ReadLevel::Lease;
        for _ in 0..MAX_ROUTE_ATTEMPTS {
            let read_index = match self.route().await? {
                Route::Local => self.read_index_as_leader(lease).await,
                Route::Remote(leader, node) => self.forward_read_index(leader, &node, lease).await,
            };
            match read_index {
                Ok(index) => return self.wait_applied(index).await,
                Err(ConsensusError::NotLeader { .. }) => tokio::time::sleep(LEADER_POLL_INTERVAL).await,
                Err(e) => return Err(e),
            }
        }
        Err(ConsensusError::NoLeader { waited_ms: 0 })
    }

    /// On the leader: the index a linearizable read must wait for.
    pub(in crate::raft) async fn read_index_as_leader(&self, lease: bool) -> Result<u64, ConsensusError> {
        let policy = if lease {
            ReadPolicy::LeaseRead
        } else {
            ReadPolicy::ReadIndex
        };
        match self.raft.get_read_linearizer(policy).await {
            Ok(linearizer) => Ok(linearizer.read_log_id().index()),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
                Err(ConsensusError::NotLeader { leader: f.leader_id })
            }
            Err(RaftError::APIError(e)) => Err(ConsensusError::QuorumUnreachable(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(ConsensusError::Stopped(e.to_string())),
        }
    }

    pub(super) async fn forward_read_index(
        &self,
        leader: NodeId,
        node: &NodeInfo,
        lease: bool,
    ) -> Result<u64, ConsensusError> {
        let mut client = self.leader_client(leader, node)?;
        let mut request = tonic::Request::new(ReadIndexRequest { lease });
        request.set_timeout(FORWARD_TIMEOUT);
        match client.read_index(request).await {
            Ok(reply) => Ok(reply.into_inner().read_index),
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                Err(ConsensusError::NotLeader { leader: None })
            }
            Err(status) => Err(ConsensusError::LeaderUnreachable {
                leader,
                reason: status.message().to_string(),
            }),
        }
    }

    pub(super) async fn wait_applied(&self, index: u64) -> Result<(), ConsensusError> {
        let wait = self.limits.read_catch_up;
        match self
            .raft
            .wait(Some(wait))
            .applied_index_at_least(Some(index), "read barrier")
            .await
        {
            Ok(_) => Ok(()),
            Err(_) => Err(ConsensusError::CatchUpTimeout {
                index,
                waited_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }
}
