//! The `Cluster` gRPC service: status and membership changes for operators.
//! Changes go through the placement guard at the leader.

use safekeep_api::v1::cluster_server::Cluster;
use safekeep_api::v1::{
    AddLearnerRequest, BackupNowRequest, BackupNowResponse, Member, MembershipResponse, PromoteRequest,
    RemoveMemberRequest, ReplaceVoterRequest, ResponseHeader, Role, StatusRequest, StatusResponse,
    TransferLeaderRequest, TransferLeaderResponse,
};
use tonic::{Request, Response, Status};

use crate::auth::{Auditor, Authenticator, Principal, audit, policy};
use crate::backup::BackupAccess;
use crate::raft::{Consensus, IdentifyError, MemberView, MembershipChange, NodeInfo};
use crate::tls::ExpectedPeer;

/// The cluster service of one node. Status answers any authenticated caller;
/// membership changes need an operator.
pub struct ClusterService {
    pub(super) consensus: Consensus,
    zone: String,
    authenticator: Authenticator,
    auditor: Auditor,
    /// The cluster's backups, when this node has a `[backup]` section.
    pub(super) backups: Option<BackupAccess>,
}

impl ClusterService {
    pub fn new(
        consensus: Consensus,
        zone: String,
        authenticator: Authenticator,
        auditor: Auditor,
        backups: Option<BackupAccess>,
    ) -> Self {
        Self {
            consensus,
            zone,
            authenticator,
            auditor,
            backups,
        }
    }

    pub(super) async fn operator_only<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        let principal = self.authenticator.authenticate(request).await?;
        policy::operator(&principal)?;
        Ok(principal)
    }

    /// Appends a membership change and its outcome to the audit log.
    async fn audited<T>(&self, principal: &Principal, action: &str, node: u64, result: &Result<T, Status>) {
        let outcome = match result {
            Ok(_) => "ok".to_string(),
            Err(status) => format!("{:?}: {}", status.code(), status.message()),
        };
        let event = audit::event(principal, action, "", &format!("node {node}"), Some(outcome));
        self.auditor.record_best_effort("", event).await;
    }

    pub(super) fn header(&self) -> ResponseHeader {
        crate::status::response_header(&self.consensus)
    }

    async fn change(&self, change: MembershipChange) -> Result<Response<MembershipResponse>, Status> {
        let members = self.consensus.change_membership(change).await?;
        Ok(Response::new(MembershipResponse {
            header: Some(self.header()),
            members: members.into_iter().map(|m| to_member(m, None)).collect(),
        }))
    }
}

fn to_member(member: MemberView, leader: Option<u64>) -> Member {
    Member {
        id: member.id,
        zone: member.node.zone,
        role: if member.voter { Role::Voter } else { Role::Learner } as i32,
        client_address: member.node.client_address,
        peer_address: member.node.peer_address,
        matched_index: member.matched_index,
        is_leader: leader == Some(member.id),
    }
}

fn require_node_id(id: u64) -> Result<u64, Status> {
    if id == 0 {
        return Err(Status::invalid_argument("node_id must be a positive integer"));
    }
    Ok(id)
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn status(&self, request: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        self.authenticator.authenticate(&request).await?;
        let view = self.consensus.view();
        Ok(Response::new(StatusResponse {
            header: Some(self.header()),
            members: view.members.into_iter().map(|m| to_member(m, view.leader_id)).collect(),
            last_log_index: view.last_log_index,
            applied_index: view.applied_index,
            committed_index: view.committed_index,
            zone: self.zone.clone(),
            insecure: !self.authenticator.is_required(),
            backup: Some(self.backup_status().await),
        }))
    }

    async fn add_learner(&self, request: Request<AddLearnerRequest>) -> Result<Response<MembershipResponse>, Status> {
        let principal = self.operator_only(&request).await?;
        let r = request.into_inner();
        let id = require_node_id(r.node_id)?;
        for (name, value) in [
            ("zone", &r.zone),
            ("peer_address", &r.peer_address),
            ("client_address", &r.client_address),
        ] {
            if value.trim().is_empty() {
                return Err(Status::invalid_argument(format!("{name} must not be empty")));
            }
        }
        // A node already running says which data directory it serves from;
        // one not started yet names it when it joins.
        let incarnation = match self.consensus.identify(&r.peer_address, ExpectedPeer::Node(id)).await {
            Ok(answer) if answer.node_id == id => answer.incarnation,
            Err(IdentifyError::WrongPeer(refusal)) => {
                let refused = Err(Status::failed_precondition(refusal.to_string()));
                self.audited(&principal, "add-learner", id, &refused).await;
                return refused;
            }
            Ok(answer) => {
                let refused = Err(Status::failed_precondition(format!(
                    "{} is served by node {}, not node {id}",
                    r.peer_address, answer.node_id
                )));
                self.audited(&principal, "add-learner", id, &refused).await;
                return refused;
            }
            Err(reason) => {
                tracing::info!(node = id, address = %r.peer_address, %reason,
                    "the node to add did not answer; it names its data directory when it joins");
                0
            }
        };
        let node = NodeInfo {
            zone: r.zone,
            peer_address: r.peer_address,
            client_address: r.client_address,
            incarnation,
        };
        let result = self.change(MembershipChange::AddLearner { id, node }).await;
        self.audited(&principal, "add-learner", id, &result).await;
        result
    }

    async fn promote(&self, request: Request<PromoteRequest>) -> Result<Response<MembershipResponse>, Status> {
        let principal = self.operator_only(&request).await?;
        let r = request.into_inner();
        let id = require_node_id(r.node_id)?;
        let result = self.change(MembershipChange::Promote { id, force: r.force }).await;
        self.audited(&principal, "promote", id, &result).await;
        result
    }

    async fn remove_member(
        &self,
        request: Request<RemoveMemberRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let principal = self.operator_only(&request).await?;
        let r = request.into_inner();
        let id = require_node_id(r.node_id)?;
        let result = self.change(MembershipChange::Remove { id, force: r.force }).await;
        self.audited(&principal, "remove-member", id, &result).await;
        result
    }

    async fn replace_voter(
        &self,
        request: Request<ReplaceVoterRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let principal = self.operator_only(&request).await?;
        let r = request.into_inner();
        let old = require_node_id(r.old_node_id)?;
        let new = require_node_id(r.new_node_id)?;
        let result = self
            .change(MembershipChange::Replace {
                old,
                new,
                force: r.force,
            })
            .await;
        self.audited(&principal, "replace-voter", old, &result).await;
        result
    }

    async fn transfer_leader(
        &self,
        request: Request<TransferLeaderRequest>,
    ) -> Result<Response<TransferLeaderResponse>, Status> {
        let principal = self.operator_only(&request).await?;
        let id = require_node_id(request.into_inner().node_id)?;
        let result = self
            .consensus
            .change_membership(MembershipChange::TransferLeader { id })
            .await
            .map_err(Status::from);
        self.audited(&principal, "transfer-leader", id, &result).await;
        result?;
        Ok(Response::new(TransferLeaderResponse {
            header: Some(self.header()),
        }))
    }

    async fn backup_now(&self, request: Request<BackupNowRequest>) -> Result<Response<BackupNowResponse>, Status> {
        self.do_backup_now(request).await
    }
}
