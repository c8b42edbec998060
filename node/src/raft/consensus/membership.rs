//! Membership changes, checked against the zone placement guard at the
//! leader and forwarded once by a follower, and the data-directory
//! incarnations each voter must have on record.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, RaftMetrics, ServerState};

use super::types::{ConsensusError, MemberView, MembershipChange};
use super::{Consensus, FORWARDED_METADATA, LEADER_POLL_INTERVAL, MAX_ROUTE_ATTEMPTS, Route};
use crate::raft::codec::{decode, encode};
use crate::raft::placement::{self, Voter};
use crate::storage::types::{NodeId, NodeInfo, TypeConfig};
use crate::tls::{DialError, ExpectedPeer, WrongPeer};
use safekeep_api::v1::{IdentifyRequest, IdentifyResponse};

/// The node's Raft metrics, as openraft publishes them.
type Metrics = RaftMetrics<TypeConfig>;

/// Deadline of asking a peer who it is.
const IDENTIFY_TIMEOUT: Duration = Duration::from_secs(2);

/// Why asking a peer who it is got no answer.
#[derive(Debug, thiserror::Error)]
pub enum IdentifyError {
    /// The certificate at the address names another node than the one asked for.
    #[error(transparent)]
    WrongPeer(WrongPeer),
    /// The address is unusable, or the node there did not answer.
    #[error("{0}")]
    NoAnswer(String),
}

impl Consensus {
    /// Asks the node at `address`, which must be `expected`, who it is (its
    /// id, cluster and incarnation).
    pub async fn identify(&self, address: &str, expected: ExpectedPeer) -> Result<IdentifyResponse, IdentifyError> {
        let mut client = self
            .peers
            .client(address, expected)
            .map_err(|e| IdentifyError::NoAnswer(e.to_string()))?;
        let mut request = tonic::Request::new(IdentifyRequest {});
        request.set_timeout(IDENTIFY_TIMEOUT);
        client.identify(request).await.map(tonic::Response::into_inner).map_err(
            |status| match DialError::wrong_peer_in(&status) {
                Some(refusal) => IdentifyError::WrongPeer(refusal.clone()),
                None => IdentifyError::NoAnswer(status.to_string()),
            },
        )
    }

    /// On the leader, before member `id` becomes a voter: its data
    /// directory's incarnation must be on record, so a wiped disk under its
    /// id is refused from then on. A learner added before it ran (0 on
    /// record) is asked now.
    pub(super) async fn record_incarnation_before_voting(
        &self,
        id: NodeId,
        node: &NodeInfo,
    ) -> Result<(), ConsensusError> {
        if node.incarnation != 0 {
            return Ok(());
        }
        let answer = self
            .identify(&node.peer_address, ExpectedPeer::Node(id))
            .await
            .map_err(|reason| {
                ConsensusError::MembershipRejected(format!(
                    "node {id} has not named its data directory and does not answer at {} ({reason}): \
                 start it, then promote it",
                    node.peer_address
                ))
            })?;
        if answer.node_id != id || answer.incarnation == 0 {
            return Err(ConsensusError::MembershipRejected(format!(
                "{} is served by node {}, not node {id}",
                node.peer_address, answer.node_id
            )));
        }
        let recorded = NodeInfo {
            incarnation: answer.incarnation,
            ..node.clone()
        };
        self.raft
            .change_membership(ChangeMembers::SetNodes(BTreeMap::from([(id, recorded)])), false)
            .await
            .map_err(|e| ConsensusError::MembershipRejected(e.to_string()))?;
        Ok(())
    }

    /// The incarnation the membership this node knows records for `id`
    /// (`None` when `id` is not a member; 0 when it is not known).
    pub fn recorded_incarnation(&self, id: NodeId) -> Option<u64> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        metrics
            .membership_config
            .membership()
            .get_node(&id)
            .map(|node| node.incarnation)
    }

    /// Changes membership through the leader wherever it is (a node that is
    /// not the leader forwards the change once, marked `FORWARDED_METADATA`).
    pub async fn change_membership(&self, change: MembershipChange) -> Result<Vec<MemberView>, ConsensusError> {
        // A change still committing (such as a new leader's first membership
        // entry) is waited out, bounded like a leader election.
        let deadline = Instant::now() + self.limits.leader_wait;
        let mut routed = 0;
        loop {
            let result = match self.route().await? {
                Route::Local => self.change_membership_as_leader(change.clone()).await,
                Route::Remote(leader, node) => {
                    let payload = encode(&change).map_err(|e| ConsensusError::Internal(e.to_string()))?;
                    let reply = self
                        .forward(leader, &node, payload, |mut c, mut r| async move {
                            r.metadata_mut()
                                .insert(FORWARDED_METADATA, tonic::metadata::MetadataValue::from_static("1"));
                            c.change_membership(r).await
                        })
                        .await?;
                    decode::<Result<Vec<MemberView>, ConsensusError>>(&reply)
                        .map_err(|e| ConsensusError::Internal(e.to_string()))?
                }
            };
            match result {
                Err(ConsensusError::NotLeader { .. }) if routed < MAX_ROUTE_ATTEMPTS => {
                    routed += 1;
                    tokio::time::sleep(LEADER_POLL_INTERVAL).await;
                }
                Err(ConsensusError::MembershipBusy(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(LEADER_POLL_INTERVAL).await;
                }
                other => return other,
            }
        }
    }

    /// On the leader, the answer to a change that is already in effect (a
    /// retry): the members, but only once the membership entry that made it
    /// so has committed. openraft's membership is the effective one, which
    /// may still be uncommitted; answering from it would acknowledge a change
    /// a crash of this leader can still undo. Waits like a leader election;
    /// an entry still uncommitted then, or replaced meanwhile, is reported as
    /// busy, which callers retry.
    async fn members_once_committed(&self, seen: &Metrics) -> Result<Vec<MemberView>, ConsensusError> {
        let entry = *seen.membership_config.log_id();
        let committed = |metrics: &Metrics| {
            metrics.state == ServerState::Leader
                && *metrics.membership_config.log_id() == entry
                && metrics.last_applied.map(|l| l.index) >= entry.map(|l| l.index)
        };
        if committed(seen) {
            return Ok(self.members());
        }
        // The wait's own verdict is re-checked below, so its error adds nothing.
        let _ = self
            .raft
            .wait(Some(self.limits.leader_wait))
            .metrics(
                |m| committed(m) || *m.membership_config.log_id() != entry,
                "membership entry committed",
            )
            .await;
        let now = self.raft.metrics().borrow_watched().clone();
        if committed(&now) {
            return Ok(self.members());
        }
        if now.state != ServerState::Leader {
            return Err(ConsensusError::NotLeader {
                leader: now.current_leader,
            });
        }
        Err(ConsensusError::MembershipBusy(format!(
            "the membership entry at {entry:?} that already holds this change has not committed yet; retry"
        )))
    }

    /// On the leader: checks the placement guard and applies a membership change.
    pub(in crate::raft) async fn change_membership_as_leader(
        &self,
        change: MembershipChange,
    ) -> Result<Vec<MemberView>, ConsensusError> {
        let metrics = self.raft.metrics().borrow_watched().clone();
        if metrics.state != ServerState::Leader {
            return Err(ConsensusError::NotLeader {
                leader: metrics.current_leader,
            });
        }
        let membership = metrics.membership_config.membership().clone();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let zone_of = |id: &NodeId| membership.get_node(id).map(|n| n.zone.clone());
        let result = match change {
            MembershipChange::AddLearner { id, node } => {
                if let Some(existing) = membership.get_node(&id) {
                    if !existing.same_place(&node) {
                        return Err(ConsensusError::MembershipRejected(format!(
                            "node {id} is already a member ({existing}); node ids are never reused"
                        )));
                    }
                    match (existing.incarnation, node.incarnation) {
                        (recorded, joining) if recorded == joining || joining == 0 => {
                            return self.members_once_committed(&metrics).await;
                        }
                        (0, _) if voters.contains(&id) => {
                            return Err(ConsensusError::MembershipRejected(format!(
                                "node {id} votes, but its data directory was never recorded, so a directory \
                                 that joins under its id now cannot be told from an emptied one. Remove node \
                                 {id} and add this host under a new id"
                            )));
                        }
                        // Added by an operator before it ran: its join names its directory.
                        (0, _) => {
                            let nodes = BTreeMap::from([(id, node)]);
                            self.raft.change_membership(ChangeMembers::SetNodes(nodes), false).await
                        }
                        (recorded, joining) => {
                            return Err(ConsensusError::MembershipRejected(format!(
                                "node {id} is a member with data directory incarnation {recorded:016x}, but \
                                 this one is {joining:016x}: its data was lost or replaced. Remove node {id} \
                                 and add this host under a new id"
                            )));
                        }
                    }
                } else {
                    self.raft.add_learner(id, node, false).await
                }
            }
            MembershipChange::Promote { id, force } => {
                if voters.contains(&id) {
                    return self.members_once_committed(&metrics).await;
                }
                let Some(node) = membership.get_node(&id).cloned() else {
                    return Err(ConsensusError::MembershipRejected(format!(
                        "node {id} is not a learner of this cluster; add it first"
                    )));
                };
                let mut after: Vec<Voter> = voters
                    .iter()
                    .map(|v| Voter::new(*v, zone_of(v).unwrap_or_default()))
                    .collect();
                after.push(Voter::new(id, node.zone.clone()));
                placement::check(&after, force).map_err(|e| ConsensusError::Placement(e.to_string()))?;
                self.record_incarnation_before_voting(id, &node).await?;
                self.raft
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                    .await
            }
            MembershipChange::Remove { id, force } => {
                if membership.get_node(&id).is_none() {
                    return Err(ConsensusError::MembershipRejected(format!("node {id} is not a member")));
                }
                if voters.contains(&id) {
                    let after: Vec<Voter> = voters
                        .iter()
                        .filter(|v| **v != id)
                        .map(|v| Voter::new(*v, zone_of(v).unwrap_or_default()))
                        .collect();
                    placement::check(&after, force).map_err(|e| ConsensusError::Placement(e.to_string()))?;
                    self.raft
                        .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
                        .await
                } else {
                    self.raft
                        .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                        .await
                }
            }
            MembershipChange::Replace { old, new, force } => {
                if !voters.contains(&old) {
                    // A retry of a replacement that already committed.
                    if voters.contains(&new) && membership.get_node(&old).is_none() {
                        return self.members_once_committed(&metrics).await;
                    }
                    return Err(ConsensusError::MembershipRejected(format!("node {old} is not a voter")));
                }
                if old == new {
                    return Err(ConsensusError::MembershipRejected(format!(
                        "node {old} cannot replace itself"
                    )));
                }
                let Some(new_node) = membership.get_node(&new).cloned() else {
                    return Err(ConsensusError::MembershipRejected(format!(
                        "node {new} is not a member of this cluster; add it as a learner first"
                    )));
                };
                let mut after: BTreeSet<NodeId> = voters.clone();
                after.remove(&old);
                after.insert(new);
                let placed: Vec<Voter> = after
                    .iter()
                    .map(|v| Voter::new(*v, zone_of(v).unwrap_or_default()))
                    .collect();
                placement::check(&placed, force).map_err(|e| ConsensusError::Placement(e.to_string()))?;
                if !voters.contains(&new) {
                    self.record_incarnation_before_voting(new, &new_node).await?;
                }
                // Joint consensus: the old and the new voter sets both hold a
                // quorum until the change commits; `false` drops the old voter.
                self.raft
                    .change_membership(ChangeMembers::ReplaceAllVoters(after), false)
                    .await
            }
            MembershipChange::TransferLeader { id } => {
                if !voters.contains(&id) {
                    return Err(ConsensusError::MembershipRejected(format!("node {id} is not a voter")));
                }
                self.raft
                    .trigger()
                    .transfer_leader(id)
                    .await
                    .map_err(|e| ConsensusError::Stopped(e.to_string()))?;
                return Ok(self.members());
            }
        };
        match result {
            Ok(_) => Ok(self.members()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ConsensusError::NotLeader { leader: f.leader_id })
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                Err(ConsensusError::MembershipBusy(e.to_string()))
            }
            Err(RaftError::APIError(e)) => Err(ConsensusError::OutcomeUnknown(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(ConsensusError::Stopped(e.to_string())),
        }
    }
}
