//! Bringing a node into a cluster on its first start: the lowest-id initial
//! member forms a new cluster once every other initial member has answered
//! that it holds no Raft state (an unreachable one means wait); a joining node asks
//! a seed to add it as a learner and then to promote it, and joins again at
//! every start until the cluster has acknowledged that (Raft state alone does
//! not prove membership: the entry that added it may never have committed).
//! A node that already holds Raft state never initializes again.

use std::collections::BTreeMap;
use std::time::Duration;

use safekeep_api::v1::RaftMessage;

use super::codec::{decode, encode};
use super::consensus::{Consensus, ConsensusError, MemberView, MembershipChange};
use super::types::NodeInfo;
use crate::config::NodeConfig;
use crate::storage::StoreError;
use crate::tls::ExpectedPeer;

/// First wait between join attempts; doubles up to `JOIN_MAX_BACKOFF`.
const JOIN_INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between join attempts.
const JOIN_MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Deadline of one call to a seed or initial member.
const BOOTSTRAP_CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a node could not join or form its cluster.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(
        "could not join through seed {seed} within {waited_ms} ms ({attempts} attempts): {last_error}; \
         check the seed address and that the cluster has a leader"
    )]
    JoinFailed {
        seed: String,
        attempts: u32,
        waited_ms: u64,
        last_error: String,
    },
    #[error(
        "node {peer} at {address} already belongs to an initialized cluster, but this node has no \
         Raft state: its data was lost. Node ids are never reused: start it with a new id and join"
    )]
    AlreadyFormed { peer: u64, address: String },
    #[error("the seed refused to add this node: {0}")]
    Refused(String),
    #[error("initializing the cluster failed: {0}")]
    Initialize(String),
    #[error("recording the acknowledged join in the data directory failed: {0}")]
    RecordJoin(StoreError),
}

/// Whether this node had Raft state on disk when it started. Asked before
/// the peer channel serves: a leader that replicates to a joining node while
/// it starts must not make it look as if it had been a member all along.
pub async fn had_raft_state(consensus: &Consensus) -> Result<bool, BootstrapError> {
    consensus
        .raft()
        .is_initialized()
        .await
        .map_err(|e| BootstrapError::Initialize(e.to_string()))
}

/// Forms or joins the cluster if this node has never been part of one;
/// `initialized` is `had_raft_state`, asked before the peer channel served.
pub async fn bootstrap(consensus: &Consensus, config: &NodeConfig, initialized: bool) -> Result<(), BootstrapError> {
    if let Some(seed) = &config.join {
        let record = consensus.join_record();
        if record.is_acknowledged().map_err(BootstrapError::RecordJoin)? {
            tracing::info!(node = config.id, "recovered Raft state from disk");
            return Ok(());
        }
        if initialized {
            tracing::warn!(
                node = config.id,
                "holds Raft state, but its join was never acknowledged: joining again"
            );
        }
        join(consensus, config, seed).await?;
        return record.mark_acknowledged().map_err(BootstrapError::RecordJoin);
    }
    if initialized {
        tracing::info!(node = config.id, "recovered Raft state from disk");
        return Ok(());
    }
    let Some(lowest) = config.init.iter().map(|m| m.id).min() else {
        tracing::info!(
            node = config.id,
            "no Raft state and no init or join setting: waiting to be added"
        );
        return Ok(());
    };
    if lowest != config.id {
        tracing::info!(
            node = config.id,
            initializer = lowest,
            "waiting for the initial cluster to form"
        );
        return Ok(());
    }
    let mut incarnations = wait_for_every_member_uninitialized(consensus, config).await?;
    incarnations.insert(config.id, consensus.incarnation());
    let members: BTreeMap<u64, NodeInfo> = config
        .init
        .iter()
        .map(|m| {
            let node = NodeInfo {
                zone: m.zone.clone(),
                peer_address: m.peer_address.clone(),
                client_address: m.client_address.clone(),
                incarnation: incarnations.get(&m.id).copied().unwrap_or(0),
            };
            (m.id, node)
        })
        .collect();
    tracing::info!(node = config.id, members = members.len(), "initializing a new cluster");
    consensus
        .raft()
        .initialize(members)
        .await
        .map_err(|e| BootstrapError::Initialize(e.to_string()))
}

/// Waits until every other initial member answers, as itself, that it holds
/// no Raft state, and returns the incarnation each answered with (recorded
/// in the first membership). A member that cannot be reached may be one that
/// already belongs to a cluster: forming a second one then would split the
/// members, so an unreachable member means wait, never form. One that answers
/// that it is initialized means this node lost its data (`AlreadyFormed`).
async fn wait_for_every_member_uninitialized(
    consensus: &Consensus,
    config: &NodeConfig,
) -> Result<BTreeMap<u64, u64>, BootstrapError> {
    // Every member is asked again each round, so the incarnations recorded
    // are the ones all answered with together, not one a member had before
    // its directory was made anew while others were still awaited.
    let others: Vec<_> = config.init.iter().filter(|m| m.id != config.id).collect();
    let mut backoff = JOIN_INITIAL_BACKOFF;
    loop {
        let mut incarnations = BTreeMap::new();
        let mut unanswered = Vec::new();
        for member in others.iter().copied() {
            match consensus
                .identify(&member.peer_address, ExpectedPeer::Node(member.id))
                .await
            {
                Ok(answer) if answer.initialized => {
                    return Err(BootstrapError::AlreadyFormed {
                        peer: member.id,
                        address: member.peer_address.clone(),
                    });
                }
                Ok(answer) if answer.node_id == member.id => {
                    incarnations.insert(member.id, answer.incarnation);
                }
                Ok(answer) => {
                    tracing::warn!(
                        expected = member.id,
                        answered = answer.node_id,
                        address = %member.peer_address,
                        "an initial member's address is served by another node"
                    );
                    unanswered.push(member);
                }
                Err(reason) => {
                    tracing::debug!(member = member.id, %reason, "initial member not reachable yet");
                    unanswered.push(member);
                }
            }
        }
        if unanswered.is_empty() {
            return Ok(incarnations);
        }
        let ids: Vec<u64> = unanswered.iter().map(|m| m.id).collect();
        tracing::info!(
            node = config.id,
            waiting_for = ?ids,
            "not every initial member has answered that it is uninitialized: waiting before forming the cluster"
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(JOIN_MAX_BACKOFF);
    }
}

async fn ask_seed(consensus: &Consensus, seed: &str, change: &MembershipChange) -> Result<Vec<MemberView>, String> {
    // Which node serves the seed address is not known (any member will do),
    // so any node certificate of the cluster CA is accepted there; the seed
    // only relays the request to the leader, and everything after joining
    // dials members by id.
    let mut client = consensus
        .peers()
        .client(seed, ExpectedPeer::AnyNode)
        .map_err(|e| e.to_string())?;
    let payload = encode(change).map_err(|e| e.to_string())?;
    let mut request = tonic::Request::new(RaftMessage { payload });
    request.set_timeout(BOOTSTRAP_CALL_TIMEOUT * 5);
    let reply = client
        .change_membership(request)
        .await
        .map_err(|s| format!("{}: {}", s.code(), s.message()))?;
    decode::<Result<Vec<MemberView>, ConsensusError>>(&reply.into_inner().payload)
        .map_err(|e| e.to_string())?
        .map_err(|e| match e {
            ConsensusError::MembershipRejected(m) | ConsensusError::Placement(m) => format!("refused: {m}"),
            other => other.to_string(),
        })
}

async fn with_retries(
    consensus: &Consensus,
    seed: &str,
    change: MembershipChange,
    timeout: Duration,
) -> Result<Vec<MemberView>, BootstrapError> {
    let started = tokio::time::Instant::now();
    let mut backoff = JOIN_INITIAL_BACKOFF;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let last_error = match ask_seed(consensus, seed, &change).await {
            Ok(members) => return Ok(members),
            Err(e) if e.starts_with("refused: ") => return Err(BootstrapError::Refused(e)),
            Err(e) => e,
        };
        tracing::warn!(seed, attempts, error = %last_error, "join attempt failed");
        let waited = started.elapsed();
        if waited + backoff > timeout {
            return Err(BootstrapError::JoinFailed {
                seed: seed.to_string(),
                attempts,
                waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                last_error,
            });
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(JOIN_MAX_BACKOFF);
    }
}

async fn join(consensus: &Consensus, config: &NodeConfig, seed: &str) -> Result<(), BootstrapError> {
    let node = NodeInfo {
        zone: config.zone.clone(),
        peer_address: config.peer_address(),
        client_address: config.client_address(),
        incarnation: consensus.incarnation(),
    };
    tracing::info!(node = config.id, seed, "joining as a learner");
    let timeout = Duration::from_millis(config.raft.join_timeout_ms);
    with_retries(
        consensus,
        seed,
        MembershipChange::AddLearner { id: config.id, node },
        timeout,
    )
    .await?;
    if config.learner {
        tracing::info!(node = config.id, "joined as a learner");
        return Ok(());
    }
    tracing::info!(node = config.id, "added as a learner; asking to become a voter");
    let promote = MembershipChange::Promote {
        id: config.id,
        force: false,
    };
    match with_retries(consensus, seed, promote, timeout).await {
        Ok(_) => tracing::info!(node = config.id, "joined as a voter"),
        Err(BootstrapError::Refused(reason)) => {
            tracing::warn!(node = config.id, %reason, "stays a learner: promotion refused");
        }
        Err(e) => return Err(e),
    }
    Ok(())
}
