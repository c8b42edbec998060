//! A simulated safekeep cluster: one turmoil host per node running the real
//! node code (real openraft, real RocksDB in a per-host directory that
//! survives a crash), probes the harness reads to check invariants, and per
//! host a record of unsynced writes that a simulated power loss drops.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use safekeep_node::config::{InitialMember, ListenAddresses, NodeConfig, RaftSettings};
use safekeep_node::raft::{BootstrapError, Consensus};
use safekeep_node::storage::{LogSync, UnsyncedWrites};
use safekeep_node::{Node, NodeEnvironment, NodeListeners, StartError};

use crate::net::{self, CLIENT_PORT, PEER_PORT, TurmoilTransport};
use crate::topology::{HostSpec, Topology, host_name};

/// How long the service manager waits before starting a node whose join
/// failed (the systemd unit's `RestartSec`).
const SERVICE_RESTART_DELAY: Duration = Duration::from_secs(5);

/// Consensus handles of the running nodes, by id. The harness drops a node's
/// handle before crashing it, so nothing outside the host keeps its store open.
pub type Probes = Arc<Mutex<BTreeMap<u64, Consensus>>>;

/// What the harness keeps of every host across its crashes.
#[derive(Clone, Default)]
pub struct Harness {
    pub probes: Probes,
    /// Per node, the writes its store has not synced yet.
    pub disks: Arc<Mutex<BTreeMap<u64, Arc<UnsyncedWrites>>>>,
    /// The run's seed, from which every node's random seed derives.
    pub seed: u64,
}

impl Harness {
    /// A harness for the run of `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            ..Self::default()
        }
    }

    /// The record of node `id`'s unsynced writes, made on first use.
    pub fn disk(&self, id: u64) -> Arc<UnsyncedWrites> {
        self.disks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id)
            .or_default()
            .clone()
    }

    /// The seed of node `id`'s random draws (openraft's election timeouts).
    pub fn node_seed(&self, id: u64) -> u64 {
        self.seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

/// Raft timing inside the simulation: the production defaults.
fn sim_raft_settings() -> RaftSettings {
    RaftSettings {
        snapshot_threshold: 100,
        logs_kept_after_snapshot: 20,
        ..RaftSettings::default()
    }
}

/// The address of node `id`'s client API inside the simulation.
pub fn client_address(id: u64) -> String {
    format!("{}:{CLIENT_PORT}", host_name(id))
}

/// The config of one simulated node.
pub fn node_config(spec: &HostSpec, topology: Topology, data_root: &Path) -> NodeConfig {
    let any = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
    let init = topology
        .hosts()
        .into_iter()
        .filter(|h| h.voter)
        .map(|h| InitialMember {
            id: h.id,
            zone: h.zone.to_string(),
            peer_address: format!("{}:{PEER_PORT}", h.name()),
            client_address: client_address(h.id),
        })
        .collect();
    let listen = ListenAddresses {
        client: any(CLIENT_PORT),
        peer: any(PEER_PORT),
        http: any(0),
    };
    NodeConfig {
        cluster_name: "sim".into(),
        client_advertise: Some(client_address(spec.id)),
        peer_advertise: Some(format!("{}:{PEER_PORT}", spec.name())),
        init: if spec.voter { init } else { Vec::new() },
        // Learners join through the first voter and stay learners.
        join: (!spec.voter).then(|| format!("{}:{PEER_PORT}", host_name(1))),
        learner: !spec.voter,
        // The simulated network carries plaintext; TLS is tested on real sockets.
        insecure_dev: true,
        raft: sim_raft_settings(),
        ..NodeConfig::new(spec.id, spec.zone, data_dir(data_root, spec.id), listen)
    }
}

/// Where node `id` keeps its data.
pub fn data_dir(data_root: &Path, id: u64) -> PathBuf {
    data_root.join(host_name(id))
}

/// Registers one host per node of `topology` on `sim`.
pub fn add_hosts(sim: &mut turmoil::Sim<'_>, topology: Topology, data_root: &Path, harness: &Harness) {
    for spec in topology.hosts() {
        add_host(sim, node_config(&spec, topology, data_root), harness);
    }
}

/// A node that replaces one whose disk was lost: a new id, the same zone and
/// role (voter or learner), and it joins through `seed`, a live voter.
pub fn replacement_config(spec: &HostSpec, seed: u64, topology: Topology, data_root: &Path) -> NodeConfig {
    let mut config = node_config(spec, topology, data_root);
    config.init = Vec::new();
    config.join = Some(format!("{}:{PEER_PORT}", host_name(seed)));
    config
}

/// The wall clock of simulated time: the run's fixed epoch plus the
/// simulated time elapsed, so proposals carry the same timestamps on replay.
fn simulated_wall_clock() -> std::time::SystemTime {
    std::time::UNIX_EPOCH + turmoil::since_epoch().unwrap_or_default()
}

/// Registers a host running the node `config` describes.
pub fn add_host(sim: &mut turmoil::Sim<'_>, config: NodeConfig, harness: &Harness) {
    let harness = harness.clone();
    sim.host(host_name(config.id), move || {
        let config = config.clone();
        let harness = harness.clone();
        async move {
            let id = config.id;
            let environment = NodeEnvironment {
                transport: Arc::new(TurmoilTransport),
                log_sync: LogSync::Inline,
                rng_seed: Some(harness.node_seed(id)),
                unsynced_writes: Some(harness.disk(id)),
                wall_clock: simulated_wall_clock,
            };
            let node = loop {
                let listeners = NodeListeners {
                    client: net::incoming(CLIENT_PORT).await?,
                    peer: net::incoming(PEER_PORT).await?,
                    http: None,
                    client_address: config.client_listen,
                    peer_address: config.peer_listen,
                };
                match Node::start_in(config.clone(), listeners, environment.clone()).await {
                    Ok(node) => break node,
                    // A join that found no quorum in time: the service
                    // manager starts the node again, as in production.
                    Err(StartError::Bootstrap(BootstrapError::JoinFailed { .. })) => {
                        tokio::time::sleep(SERVICE_RESTART_DELAY).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            harness
                .probes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, node.consensus().clone());
            // The node serves until the harness crashes this host.
            std::future::pending::<()>().await;
            drop(node);
            Ok(())
        }
    });
}
