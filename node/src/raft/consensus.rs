//! The node's view of consensus, and the only door to it for the rest of the
//! node: propose a write, get a read barrier, change membership, report
//! status and readiness. Any node can be asked; a follower forwards to the
//! leader over the peer channel, and during an election waits (bounded) for a
//! new leader instead of failing at once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use openraft::Instant as _;
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, LinearizableReadError, RaftError};
use openraft::{ChangeMembers, ReadPolicy, ServerState};
use serde::{Deserialize, Serialize};

use super::channels::PeerChannels;
use super::codec::{decode, encode};
use super::types::{NodeId, NodeInfo, SafekeepRaft};
use crate::admin::placement::{self, Voter};
use crate::metrics_names;
use crate::node::WallClock;
use crate::storage::command::{Command, CommandResponse};
use crate::storage::{LogFingerprints, RecordReader};
use safekeep_api::v1::{IdentifyRequest, IdentifyResponse, RaftMessage, ReadIndexRequest};

/// Most times one request is routed again after the leader it was sent to stepped down.
/// Marks a membership change one node forwarded to the leader: the receiver
/// applies it as leader or refuses, and never forwards it again.
pub(crate) const FORWARDED_METADATA: &str = "x-safekeep-forwarded";
const MAX_ROUTE_ATTEMPTS: usize = 5;
/// How often a waiting request looks for a new leader.
const LEADER_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Deadline of a request forwarded to the leader.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

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

/// Deadline of asking a peer who it is.
const IDENTIFY_TIMEOUT: Duration = Duration::from_secs(2);

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
/// the incarnation of its data directory.
#[derive(Clone)]
pub(crate) struct ReplicaHandles {
    pub reader: RecordReader,
    pub log: LogFingerprints,
    pub wall_clock: WallClock,
    pub incarnation: u64,
}

enum Route {
    Local,
    Remote(NodeId, NodeInfo),
}

fn millis_since_epoch(clock: WallClock) -> i64 {
    let now = clock().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// True when a peer call failed while connecting, before any byte was sent.
fn never_sent(status: &tonic::Status) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(error) = next {
        if error.is::<tonic::ConnectError>() {
            return true;
        }
        next = error.source();
    }
    false
}

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
    pub(crate) fn new(
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

    /// Reads records from this node's replica (after a `read_barrier`).
    pub fn reader(&self) -> &RecordReader {
        &self.replica.reader
    }

    /// Connections to other nodes' peer channels.
    pub(crate) fn peers(&self) -> &PeerChannels {
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

    /// Asks the node at `address` who it is (its id, cluster and incarnation).
    pub async fn identify(&self, address: &str) -> Result<IdentifyResponse, String> {
        let mut client = self.peers.client(address).map_err(|e| e.to_string())?;
        let mut request = tonic::Request::new(IdentifyRequest {});
        request.set_timeout(IDENTIFY_TIMEOUT);
        client
            .identify(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| status.to_string())
    }

    /// On the leader, before member `id` becomes a voter: its data
    /// directory's incarnation must be on record, so a wiped disk under its
    /// id is refused from then on. A learner added before it ran (0 on
    /// record) is asked now.
    async fn record_incarnation_before_voting(&self, id: NodeId, node: &NodeInfo) -> Result<(), ConsensusError> {
        if node.incarnation != 0 {
            return Ok(());
        }
        let answer = self.identify(&node.peer_address).await.map_err(|reason| {
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

    pub(crate) fn raft(&self) -> &SafekeepRaft {
        &self.raft
    }

    /// Notes that the leader just reached this node (for readiness).
    pub(crate) fn note_leader_contact(&self) {
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
    pub(crate) async fn propose_as_leader(&self, mut command: Command) -> Result<Applied, ConsensusError> {
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

    async fn forward_propose(
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

    fn leader_client(
        &self,
        leader: NodeId,
        node: &NodeInfo,
    ) -> Result<safekeep_api::v1::peer_client::PeerClient<tonic::transport::Channel>, ConsensusError> {
        self.peers
            .client(&node.peer_address)
            .map_err(|e| ConsensusError::LeaderUnreachable {
                leader,
                reason: e.to_string(),
            })
    }

    async fn forward<F, Fut>(
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

    /// Waits until a read at `level` on this node's replica is as fresh as the level promises.
    pub async fn read_barrier(&self, level: ReadLevel) -> Result<(), ConsensusError> {
        if level == ReadLevel::Stale {
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
    pub(crate) async fn read_index_as_leader(&self, lease: bool) -> Result<u64, ConsensusError> {
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

    async fn forward_read_index(&self, leader: NodeId, node: &NodeInfo, lease: bool) -> Result<u64, ConsensusError> {
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

    async fn wait_applied(&self, index: u64) -> Result<(), ConsensusError> {
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

    /// On the leader: checks the placement guard and applies a membership change.
    pub(crate) async fn change_membership_as_leader(
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
                        (recorded, joining) if recorded == joining || joining == 0 => return Ok(self.members()),
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
                    return Ok(self.members());
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
                        return Ok(self.members());
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
        membership
            .nodes()
            .map(|(id, node)| MemberView {
                id: *id,
                node: node.clone(),
                voter: voters.contains(id),
                matched_index: matched.get(id).copied().flatten(),
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

    /// Stops consensus on this node.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown did not finish cleanly");
        }
    }
}
