//! Consensus: openraft's type configuration, the peer network (client and
//! server), bootstrap of a new or joining node, and the `Consensus` facade
//! through which every other module reaches Raft. Together with `storage/`,
//! the only place that names openraft types.

mod bootstrap;
mod channels;
mod codec;
mod consensus;
mod incarnation;
mod metrics_watch;
mod network;
pub mod placement;
mod server;
mod shred;
mod types;

use std::sync::Arc;
use std::time::Duration;

pub use bootstrap::BootstrapError;
use consensus::ReplicaHandles;
pub use consensus::{
    Applied, ClusterView, Consensus, ConsensusError, IdentifyError, LeaderHint, MemberView, MembershipChange,
    ReadLevel, Role, RoutingLimits,
};
pub use server::PeerService;
pub use types::{NodeId, NodeInfo, TypeConfig};

use crate::config::NodeConfig;
use crate::environment::NodeEnvironment;
use crate::storage::{Store, StoreError};
use crate::test_faults::{self, TestFault};
use crate::tls::LoadedTls;
use tokio::sync::watch;

/// Why consensus could not start.
#[derive(Debug, thiserror::Error)]
pub enum RaftStartError {
    #[error("invalid Raft settings: {0}")]
    Config(String),
    #[error(transparent)]
    Storage(#[from] StoreError),
    #[error("raft failed to start: {0}")]
    Fatal(String),
}

/// openraft's settings from the node's.
fn raft_config(config: &NodeConfig) -> Result<openraft::Config, RaftStartError> {
    let r = &config.raft;
    openraft::Config {
        cluster_name: config.cluster_name.clone(),
        heartbeat_interval: r.heartbeat_ms,
        election_timeout_min: r.election_min_ms,
        election_timeout_max: r.election_max_ms,
        enable_pre_vote: Some(r.pre_vote),
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(r.snapshot_threshold),
        max_in_snapshot_log_to_keep: r.logs_kept_after_snapshot,
        // A full snapshot is streamed; its own transfer timeout bounds it.
        install_snapshot_timeout: r.election_max_ms.max(1000),
        // A leader that restarts stays a follower until an election. The
        // state machine and the committed index are written without a sync,
        // so after a power loss a leader restored at once would take reads
        // as fresh up to an older commit than it had acknowledged; a new
        // term's first entry makes every earlier entry the read bound.
        enable_leader_restore: Some(false),
        ..Default::default()
    }
    .validate()
    .map_err(|e| RaftStartError::Config(e.to_string()))
}

/// Starts Raft over the node's store and returns the consensus handle and the peer service.
pub async fn start(
    config: &NodeConfig,
    store: &Store,
    environment: &NodeEnvironment,
    tls: Option<watch::Receiver<Arc<LoadedTls>>>,
    rng_seed: u64,
) -> Result<(Consensus, PeerService), RaftStartError> {
    let transport = environment.transport.clone();
    let raft_config = Arc::new(raft_config(config)?);
    let require_peer_identity = tls.is_some();
    let channels = channels::PeerChannels::new(transport, tls);
    let recorded = network::RecordedIncarnations::default();
    let network = network::PeerNetworkFactory::new(channels.clone(), config.id, store.incarnation(), recorded.clone());
    let state_machine = store.state_machine()?;
    let reader = state_machine.reader();
    // Every task openraft spawns descends from this scope and draws its
    // randomness from the seed.
    let raft = types::RaftRuntime::scope(
        rng_seed,
        openraft::Raft::new(config.id, raft_config, network, store.log_store(), state_machine),
    )
    .await
    .map_err(|e| RaftStartError::Fatal(e.to_string()))?;
    let metrics = raft.metrics();
    let lookup = move |id: NodeId| {
        use openraft::async_runtime::WatchReceiver as _;
        let metrics = metrics.borrow_watched();
        metrics
            .membership_config
            .membership()
            .get_node(&id)
            .map_or(0, |n| n.incarnation)
    };
    assert!(recorded.set(Box::new(lookup)).is_ok(), "the lookup is set once");
    let limits = RoutingLimits {
        leader_wait: Duration::from_millis(config.raft.leader_wait_ms),
        read_catch_up: Duration::from_millis(config.raft.read_catch_up_ms),
        ready_max_leader_silence: Duration::from_millis(config.raft.election_max_ms * 2),
        ready_max_apply_lag: crate::config::DEFAULT_READY_MAX_APPLY_LAG,
    };
    let replica = ReplicaHandles {
        reader,
        log: store.log_fingerprints(),
        archive: store.log_archive_reader(),
        wall_clock: environment.wall_clock,
        incarnation: store.incarnation(),
        join: store.join_record(),
    };
    let consensus = Consensus::new(config.id, raft, channels, limits, replica);
    metrics_watch::spawn(consensus.clone(), config);
    let purge = match config.backup {
        Some(_) => shred::Purge::LeftToPolicy,
        None => shred::Purge::Forced,
    };
    shred::spawn(consensus.raft().clone(), store.shredder(), purge);
    let incoming = {
        let store_paths = store.snapshot_inbox();
        Arc::new(move || store_paths.incoming_path()) as server::IncomingSnapshotPath
    };
    let access = server::PeerAccess {
        require_identity: require_peer_identity,
        initial_members: config.init.iter().map(|m| m.id).collect(),
    };
    // openraft's leader lease is the longest election timeout. A node that
    // starts may have helped grant a lease that still lives: until it has
    // run out, the node neither votes for another (`PeerService`) nor
    // campaigns itself, so no new leader can be elected with its help while
    // the old one may still serve lease reads.
    let leader_lease = Duration::from_millis(config.raft.election_max_ms);
    let lease_may_live_until = tokio::time::Instant::now() + leader_lease;
    if test_faults::enabled(TestFault::CampaignInsideLease) {
        // The deliberate bug: campaign at once (once started: openraft
        // skips an election asked for during its start-up), inside any lease
        // this node granted.
        let raft = consensus.raft().clone();
        let soon = Duration::from_millis(config.raft.heartbeat_ms);
        tokio::spawn(async move {
            tokio::time::sleep(soon).await;
            let _ = raft.trigger().elect(true).await;
        });
    } else {
        hold_elections_until(&consensus, lease_may_live_until);
    }
    let peer = PeerService::new(
        consensus.clone(),
        config.cluster_name.clone(),
        incoming,
        access,
        lease_may_live_until,
    );
    Ok((consensus, peer))
}

/// Keeps this node from campaigning until `until`, then lets it. The task
/// ends early if Raft shuts down first, so it never outlives a stopped node.
fn hold_elections_until(consensus: &Consensus, until: tokio::time::Instant) {
    use openraft::async_runtime::WatchReceiver as _;
    let raft = consensus.raft().clone();
    raft.runtime_config().elect(false);
    tokio::spawn(async move {
        let mut metrics = raft.metrics();
        let shut_down = async {
            loop {
                if metrics.borrow_watched().state == openraft::ServerState::Shutdown {
                    return;
                }
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::select! {
            () = tokio::time::sleep_until(until) => {
                raft.runtime_config().elect(true);
                tracing::debug!("any lease this node helped grant has expired: it may campaign");
            }
            () = shut_down => {}
        }
    });
}

pub use bootstrap::{bootstrap, had_raft_state};
