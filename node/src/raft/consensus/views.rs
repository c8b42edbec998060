//! What the handle reports: the members, this node's view of the cluster,
//! a hint of where the leader is, and whether this node is ready to serve.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::Instant as _;
use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;

use super::Consensus;
use super::types::{ClusterView, LeaderHint, MemberView, Role};
use crate::storage::types::NodeId;

fn role_of(state: ServerState) -> Role {
    match state {
        ServerState::Leader => Role::Leader,
        ServerState::Follower => Role::Follower,
        ServerState::Candidate => Role::Candidate,
        ServerState::Learner => Role::Learner,
        ServerState::Shutdown => Role::Stopped,
    }
}

impl Consensus {
    /// Ids of every voter and learner in the current membership (empty before the cluster forms).
    pub fn member_ids(&self) -> BTreeSet<NodeId> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .collect()
    }

    /// The members of the latest membership config this node knows.
    pub fn members(&self) -> Vec<MemberView> {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let matched: BTreeMap<NodeId, Option<u64>> = metrics
            .replication
            .as_ref()
            .map(|r| r.iter().map(|(id, log)| (*id, log.as_ref().map(|l| l.index))).collect())
            .unwrap_or_default();
        let since_ack: BTreeMap<NodeId, Duration> = metrics
            .heartbeat
            .as_ref()
            .map(|acks| {
                acks.iter()
                    .filter_map(|(id, at)| at.as_ref().map(|at| (*id, at.elapsed())))
                    .collect()
            })
            .unwrap_or_default();
        membership
            .nodes()
            .map(|(id, node)| MemberView {
                id: *id,
                node: node.clone(),
                voter: voters.contains(id),
                matched_index: matched.get(id).copied().flatten(),
                since_ack: since_ack.get(id).copied(),
            })
            .collect()
    }

    /// The cluster as this node sees it now.
    pub fn view(&self) -> ClusterView {
        let metrics = self.raft.metrics().borrow_watched().clone();
        ClusterView {
            node_id: self.id,
            role: role_of(metrics.state),
            term: metrics.current_term,
            leader_id: metrics.current_leader,
            last_log_index: metrics.last_log_index.unwrap_or(0),
            committed_index: metrics.local_committed.as_ref().map_or(0, |l| l.index),
            committed_term: metrics.local_committed.as_ref().map_or(0, |l| l.leader_id.term),
            applied_index: metrics.last_applied.as_ref().map_or(0, |l| l.index),
            applied_term: metrics.last_applied.as_ref().map_or(0, |l| l.leader_id.term),
            snapshot_index: metrics.snapshot.as_ref().map(|l| l.index),
            members: self.members(),
        }
    }

    /// Who leads, for response headers.
    pub fn leader_hint(&self) -> LeaderHint {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let leader_client_address = metrics.current_leader.and_then(|id| {
            metrics
                .membership_config
                .membership()
                .get_node(&id)
                .map(|n| n.client_address.clone())
        });
        LeaderHint {
            leader_id: metrics.current_leader,
            leader_client_address,
            term: metrics.current_term,
        }
    }

    /// Ok when this node can serve: it has joined, knows a live leader and has caught up.
    pub fn readiness(&self) -> Result<(), String> {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let membership = metrics.membership_config.membership();
        if membership.get_node(&self.id).is_none() {
            return Err("this node has not joined a cluster".into());
        }
        let Some(leader) = metrics.current_leader else {
            return Err("no leader is known".into());
        };
        let silence_limit = u64::try_from(self.limits.ready_max_leader_silence.as_millis()).unwrap_or(u64::MAX);
        if leader == self.id {
            let since_ack_ms = metrics
                .last_quorum_acked
                .as_ref()
                .map(|at| u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX));
            match since_ack_ms {
                Some(ms) if ms <= silence_limit => {}
                Some(ms) => return Err(format!("leader has not heard from a quorum for {ms} ms")),
                None => return Err("leader has not yet heard from a quorum".into()),
            }
        } else {
            let contact = *self.last_leader_contact.lock().unwrap_or_else(|p| p.into_inner());
            match contact {
                Some(at) if at.elapsed() <= self.limits.ready_max_leader_silence => {}
                Some(at) => {
                    return Err(format!(
                        "no contact from leader {leader} for {} ms",
                        at.elapsed().as_millis()
                    ));
                }
                None => return Err(format!("leader {leader} has not contacted this node yet")),
            }
        }
        // The cluster's commit index as the leader reported it: a node still
        // receiving entries it lacks is behind that, not just its own log.
        let committed = metrics
            .cluster_committed
            .as_ref()
            .or(metrics.local_committed.as_ref())
            .map_or(0, |l| l.index);
        let applied = metrics.last_applied.as_ref().map_or(0, |l| l.index);
        let lag = committed.saturating_sub(applied);
        if lag > self.limits.ready_max_apply_lag {
            return Err(format!("replica is {lag} entries behind the commit index"));
        }
        Ok(())
    }
}
