//! Proposals: a write committed and applied through the leader wherever it
//! is, forwarded by a follower, retried when leadership moves, and reported
//! as of unknown outcome once an attempt may have reached the log.

use tokio::time::Instant;

use openraft::error::{ClientWriteError, RaftError};

use super::types::{Applied, ConsensusError};
use super::{Consensus, FORWARD_TIMEOUT, LEADER_POLL_INTERVAL, MAX_ROUTE_ATTEMPTS, Route};
use crate::environment::WallClock;
use crate::metrics_names;
use crate::model::command::Command;
use crate::raft::codec::{decode, encode};
use crate::storage::types::{NodeId, NodeInfo};
use crate::tls::ExpectedPeer;
use safekeep_api::v1::RaftMessage;
use safekeep_api::wire::never_sent;

fn millis_since_epoch(clock: WallClock) -> i64 {
    let now = clock().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Consensus {
    /// This node's wall clock, ms since the Unix epoch (the clock proposals are stamped with).
    pub fn wall_clock_ms(&self) -> i64 {
        millis_since_epoch(self.replica.wall_clock)
    }

    /// Commits and applies a write, through the leader wherever it is.
    pub async fn propose(&self, command: Command) -> Result<Applied, ConsensusError> {
        let mut last_error = None;
        // Once an attempt's outcome is unknown, a later definite failure no
        // longer means the write did not happen.
        let mut uncertain = false;
        let settle = |e: ConsensusError, uncertain: bool| match e {
            ConsensusError::NoLeader { .. }
            | ConsensusError::NotLeader { .. }
            | ConsensusError::LeaderUnreachable { .. }
                if uncertain =>
            {
                ConsensusError::OutcomeUnknown(e.to_string())
            }
            other => other,
        };
        for _ in 0..MAX_ROUTE_ATTEMPTS {
            let route = match self.route().await {
                Ok(route) => route,
                Err(e) => return Err(settle(e, uncertain)),
            };
            let result = match route {
                Route::Local => self.propose_as_leader(command.clone()).await,
                Route::Remote(leader, node) => self.forward_propose(leader, &node, &command).await,
            };
            match result {
                Err(ConsensusError::NotLeader { .. }) => {
                    last_error = result.err();
                    tokio::time::sleep(LEADER_POLL_INTERVAL).await;
                }
                // A retried write with the same id applies once, so an
                // unknown outcome is safe to route again.
                Err(ConsensusError::OutcomeUnknown(_)) if command.write_id.is_some() => {
                    uncertain = true;
                    last_error = result.err();
                    tokio::time::sleep(LEADER_POLL_INTERVAL).await;
                }
                Err(e) => return Err(settle(e, uncertain)),
                ok => return ok,
            }
        }
        let last = last_error.unwrap_or(ConsensusError::NoLeader { waited_ms: 0 });
        Err(settle(last, uncertain))
    }

    /// Commits and applies a write, then waits until this node's own replica
    /// has applied it too, for callers that read their change back from it
    /// (a follower learns of the commit only after the leader answered).
    pub async fn propose_and_apply_locally(&self, command: Command) -> Result<Applied, ConsensusError> {
        let applied = self.propose(command).await?;
        self.wait_applied(applied.index).await?;
        Ok(applied)
    }

    /// Proposes on this node, which must be the leader.
    pub(in crate::raft) async fn propose_as_leader(&self, mut command: Command) -> Result<Applied, ConsensusError> {
        command.proposed_at_ms = millis_since_epoch(self.replica.wall_clock);
        command.leader_clock_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let started = Instant::now();
        let result = self.raft.client_write(command).await;
        metrics::histogram!(metrics_names::COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
        match result {
            Ok(response) => Ok(Applied {
                response: response.data,
                index: response.log_id.index,
            }),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ConsensusError::NotLeader { leader: f.leader_id })
            }
            Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(f))) => Err(ConsensusError::OutcomeUnknown(
                format!("leadership moved to {:?} before the write committed", f.leader_id),
            )),
            Err(RaftError::APIError(e)) => Err(ConsensusError::Internal(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(ConsensusError::Stopped(e.to_string())),
        }
    }

    pub(super) async fn forward_propose(
        &self,
        leader: NodeId,
        node: &NodeInfo,
        command: &Command,
    ) -> Result<Applied, ConsensusError> {
        let payload = encode(command).map_err(|e| ConsensusError::Internal(e.to_string()))?;
        let reply = self
            .forward(leader, node, payload, |mut c, r| async move { c.propose(r).await })
            .await?;
        decode::<Result<Applied, ConsensusError>>(&reply).map_err(|e| ConsensusError::Internal(e.to_string()))?
    }

    pub(super) fn leader_client(
        &self,
        leader: NodeId,
        node: &NodeInfo,
    ) -> Result<safekeep_api::v1::peer_client::PeerClient<tonic::transport::Channel>, ConsensusError> {
        self.peers
            .client(&node.peer_address, ExpectedPeer::Node(leader))
            .map_err(|e| ConsensusError::LeaderUnreachable {
                leader,
                reason: e.to_string(),
            })
    }

    pub(super) async fn forward<F, Fut>(
        &self,
        leader: NodeId,
        node: &NodeInfo,
        payload: Vec<u8>,
        send: F,
    ) -> Result<Vec<u8>, ConsensusError>
    where
        F: FnOnce(
            safekeep_api::v1::peer_client::PeerClient<tonic::transport::Channel>,
            tonic::Request<RaftMessage>,
        ) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<RaftMessage>, tonic::Status>>,
    {
        let client = self.leader_client(leader, node)?;
        let mut request = tonic::Request::new(RaftMessage { payload });
        request.set_timeout(FORWARD_TIMEOUT);
        match send(client, request).await {
            Ok(reply) => Ok(reply.into_inner().payload),
            // Only a failed connect means the leader never saw it; any other
            // failure (a keepalive timeout, a reset) may follow its commit.
            Err(status) if never_sent(&status) => Err(ConsensusError::NotLeader { leader: None }),
            // The leader checked the request and refused it before proposing.
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                Err(ConsensusError::Invalid(status.message().to_string()))
            }
            Err(status) => Err(ConsensusError::OutcomeUnknown(format!(
                "forwarding to leader {leader} failed: {}",
                status.message()
            ))),
        }
    }
}
