//! The peer channel's server side: Raft messages from the leader or from
//! candidates, snapshots streamed in chunks to a file, and requests that a
//! follower forwards to this node as leader.

use std::io::Write;

use futures::StreamExt;
use openraft::alias::SnapshotOf;
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use safekeep_api::v1::peer_server::Peer;
use safekeep_api::v1::{
    IdentifyRequest, IdentifyResponse, RaftMessage, ReadIndexRequest, ReadIndexResponse, SnapshotChunk,
};
use tonic::{Request, Response, Status, Streaming};

use super::codec::{decode, encode};
use super::consensus::{Consensus, ConsensusError, FORWARDED_METADATA, MembershipChange};
use super::incarnation::IncarnationGuard;
use super::network::SnapshotHeader;
use super::types::{NodeId, TypeConfig};
use crate::identity::CertPrincipal;
use crate::storage::SnapshotFile;
use crate::transport::ConnectionIdentity;
use openraft::vote::RaftLeaderId;

/// Gives a fresh path to receive a snapshot file into.
pub type IncomingSnapshotPath = std::sync::Arc<dyn Fn() -> std::path::PathBuf + Send + Sync>;

/// Who may call the peer service.
#[derive(Debug, Clone)]
pub struct PeerAccess {
    /// Mutual TLS is on: every call must come from a node certificate.
    pub require_identity: bool,
    /// The initial members this node was configured with.
    pub initial_members: Vec<NodeId>,
}

/// The peer gRPC service.
pub struct PeerService {
    consensus: Consensus,
    cluster_name: String,
    incoming_snapshot_path: IncomingSnapshotPath,
    access: PeerAccess,
    /// Before this instant the node casts no vote (see `refuse_votes_while_a_lease_may_live`).
    votes_from: tokio::time::Instant,
    incarnations: IncarnationGuard,
}

impl PeerService {
    pub fn new(
        consensus: Consensus,
        cluster_name: String,
        incoming_snapshot_path: IncomingSnapshotPath,
        access: PeerAccess,
        votes_from: tokio::time::Instant,
    ) -> Self {
        let incarnations = IncarnationGuard::new(consensus.node_id(), consensus.incarnation());
        Self {
            consensus,
            cluster_name,
            incoming_snapshot_path,
            access,
            votes_from,
            incarnations,
        }
    }

    /// Refuses a Raft message from `sender` when either side's data
    /// directory is not the incarnation the other expects.
    fn same_incarnations<T>(&self, request: &Request<T>, sender: NodeId) -> Result<(), Status> {
        self.incarnations
            .admit(request.metadata(), sender, self.consensus.recorded_incarnation(sender))
    }

    /// A node that has just started may have acknowledged a leader shortly
    /// before it stopped, and that leader still counts on the acknowledgement
    /// for its lease: lease reads are served without asking anyone. A vote
    /// for a new leader before the lease runs out would let two leaders serve
    /// reads at once, so a started node votes only once any lease it could
    /// have helped grant has expired. (openraft does not persist lease time.)
    /// The node does not campaign before then either (`raft::start`).
    fn refuse_votes_while_a_lease_may_live(&self) -> Result<(), Status> {
        let now = tokio::time::Instant::now();
        if now < self.votes_from {
            return Err(Status::unavailable(format!(
                "this node started recently and casts no vote for another {} ms, until any leader lease it helped grant has expired",
                (self.votes_from - now).as_millis()
            )));
        }
        Ok(())
    }

    /// Admits a call from a member and returns the calling node's id (`None`
    /// without mutual TLS). Before this node belongs to any cluster it holds
    /// nothing, so it admits its initial members, or, when it was started to
    /// join, any node of the cluster CA. A node joins only once an operator
    /// has added it: the peer channel never lets a node add itself.
    fn authorize<T>(&self, request: &Request<T>) -> Result<Option<NodeId>, Status> {
        if !self.access.require_identity {
            return Ok(None);
        }
        let Some(caller) = ConnectionIdentity::of(request).and_then(CertPrincipal::node_id) else {
            return Err(Status::unauthenticated(
                "the peer channel accepts only node certificates",
            ));
        };
        let members = self.consensus.member_ids();
        let admitted = if members.is_empty() {
            self.access.initial_members.is_empty() || self.access.initial_members.contains(&caller)
        } else {
            members.contains(&caller)
        };
        if admitted {
            Ok(Some(caller))
        } else {
            tracing::warn!(caller, "peer call refused: not a member");
            Err(Status::permission_denied(format!(
                "node {caller} is not a member of this cluster; an operator adds nodes (cluster add-learner)"
            )))
        }
    }

    /// Refuses a Raft message whose sender claims to be another node than its certificate names.
    fn speaks_for(caller: Option<NodeId>, claimed: NodeId) -> Result<(), Status> {
        match caller {
            Some(caller) if caller != claimed => Err(Status::permission_denied(format!(
                "node {caller} may not send Raft messages as node {claimed}"
            ))),
            _ => Ok(()),
        }
    }
}

fn stopped(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("raft is not running: {e}"))
}

fn reply<T: serde::Serialize>(value: &T) -> Result<Response<RaftMessage>, Status> {
    Ok(Response::new(RaftMessage {
        payload: encode(value)?,
    }))
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let caller = self.authorize(&request)?;
        let rpc: VoteRequest<TypeConfig> = decode(&request.get_ref().payload)?;
        let sender = *rpc.vote.leader_id().node_id();
        Self::speaks_for(caller, sender)?;
        self.same_incarnations(&request, sender)?;
        self.refuse_votes_while_a_lease_may_live()?;
        let response = self.consensus.raft().vote(rpc).await.map_err(stopped)?;
        reply(&response)
    }

    async fn pre_vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let caller = self.authorize(&request)?;
        let rpc: VoteRequest<TypeConfig> = decode(&request.get_ref().payload)?;
        let sender = *rpc.vote.leader_id().node_id();
        Self::speaks_for(caller, sender)?;
        self.same_incarnations(&request, sender)?;
        self.refuse_votes_while_a_lease_may_live()?;
        let response = self.consensus.raft().pre_vote(rpc).await.map_err(stopped)?;
        reply(&response)
    }

    async fn append_entries(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let caller = self.authorize(&request)?;
        let rpc: AppendEntriesRequest<TypeConfig> = decode(&request.get_ref().payload)?;
        let sender = *rpc.vote.leader_id().node_id();
        Self::speaks_for(caller, sender)?;
        self.same_incarnations(&request, sender)?;
        let response = self.consensus.raft().append_entries(rpc).await.map_err(stopped)?;
        if response.is_success() {
            self.consensus.note_leader_contact();
        }
        reply(&response)
    }

    async fn transfer_leader(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let caller = self.authorize(&request)?;
        let rpc: TransferLeaderRequest<TypeConfig> = decode(&request.get_ref().payload)?;
        let sender = *rpc.from_leader().leader_id().node_id();
        Self::speaks_for(caller, sender)?;
        self.same_incarnations(&request, sender)?;
        let response = self
            .consensus
            .raft()
            .handle_transfer_leader(rpc)
            .await
            .map_err(stopped)?;
        reply(&response)
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftMessage>, Status> {
        let caller = self.authorize(&request)?;
        let metadata = request.metadata().clone();
        let mut chunks = request.into_inner();
        let first = chunks
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("snapshot stream is empty"))??;
        let header: SnapshotHeader = decode(&first.header)?;
        let sender = *header.vote.leader_id().node_id();
        Self::speaks_for(caller, sender)?;
        self.incarnations
            .admit(&metadata, sender, self.consensus.recorded_incarnation(sender))?;
        let path = (self.incoming_snapshot_path)();
        let mut file = std::fs::File::create(&path).map_err(|e| Status::internal(format!("snapshot file: {e}")))?;
        let mut received: u64 = 0;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            received += chunk.data.len() as u64;
            if received > header.len {
                let _ = std::fs::remove_file(&path);
                return Err(Status::invalid_argument("snapshot longer than announced"));
            }
            file.write_all(&chunk.data)
                .map_err(|e| Status::internal(format!("writing snapshot: {e}")))?;
        }
        if received != header.len {
            let _ = std::fs::remove_file(&path);
            return Err(Status::aborted(format!(
                "snapshot stream ended after {received} of {} bytes",
                header.len
            )));
        }
        file.sync_all()
            .map_err(|e| Status::internal(format!("syncing snapshot: {e}")))?;
        drop(file);
        let snapshot = SnapshotFile::open(path.clone()).map_err(|e| Status::internal(format!("snapshot file: {e}")))?;
        let snapshot = SnapshotOf::<TypeConfig, SnapshotFile> {
            meta: header.meta,
            snapshot,
        };
        let response = self.consensus.raft().install_full_snapshot(header.vote, snapshot).await;
        // An installed file was moved into place; one Raft declined is removed here.
        if path.exists() {
            let _ = std::fs::remove_file(&path);
        }
        let response = response.map_err(stopped)?;
        self.consensus.note_leader_contact();
        reply(&response)
    }

    async fn propose(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.authorize(&request)?;
        let command = decode(&request.into_inner().payload)?;
        crate::model::validate::command(&command)?;
        let result = self.consensus.propose_as_leader(command).await;
        reply(&result)
    }

    async fn read_index(&self, request: Request<ReadIndexRequest>) -> Result<Response<ReadIndexResponse>, Status> {
        self.authorize(&request)?;
        let lease = request.into_inner().lease;
        match self.consensus.read_index_as_leader(lease).await {
            Ok(read_index) => Ok(Response::new(ReadIndexResponse {
                read_index,
                leader_id: self.consensus.node_id(),
            })),
            Err(ConsensusError::NotLeader { .. }) => Err(Status::failed_precondition("not the leader")),
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
    }

    async fn change_membership(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.authorize(&request)?;
        let forwarded = request.metadata().contains_key(FORWARDED_METADATA);
        let change: MembershipChange = decode(&request.get_ref().payload)?;
        // A joining node asks the seed it was given, which may not lead: the
        // seed passes the change on to the leader, once.
        let result = match forwarded {
            true => self.consensus.change_membership_as_leader(change).await,
            false => self.consensus.change_membership(change).await,
        };
        reply(&result)
    }

    async fn identify(&self, request: Request<IdentifyRequest>) -> Result<Response<IdentifyResponse>, Status> {
        // Any node of the cluster CA may ask who this is (a joining node does, first).
        if self.access.require_identity
            && ConnectionIdentity::of(&request)
                .and_then(CertPrincipal::node_id)
                .is_none()
        {
            return Err(Status::unauthenticated(
                "the peer channel accepts only node certificates",
            ));
        }
        let view = self.consensus.view();
        let initialized = self.consensus.raft().is_initialized().await.map_err(stopped)?;
        Ok(Response::new(IdentifyResponse {
            node_id: view.node_id,
            cluster_id: self.cluster_name.clone(),
            leader_id: view.leader_id.unwrap_or(0),
            initialized,
            incarnation: self.consensus.incarnation(),
        }))
    }
}
