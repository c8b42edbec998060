//! The drill's cluster: real `safekeep-node` processes, each started inside
//! its zone's network namespace with its own address, data directory, TLS
//! certificate (from a development CA made for the drill) and encryption at
//! rest on. The drill signals the processes directly (SIGKILL for a power
//! loss, SIGSTOP and SIGCONT for a freeze) and starts them again from their
//! data, as a host coming back would.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use safekeep_client::{ApiKey, ApiKeyRole, Client, ClientConfig, ClientTls};
use safekeep_node::config::{BackupSettings, InitialMember, ListenAddresses, NodeConfig};
use safekeep_node::identity::CertPrincipal;
use safekeep_node::tls::certs::{CA_CERT_FILE, DevBundleSpec, leaf_files, write_dev_bundle};
use tokio::process::{Child, Command};

use crate::disks::LoopDisk;
use crate::netns::{self, Isolation, NetError};

/// Client port of every node (each has an address of its own).
const CLIENT_PORT: u16 = 7001;
/// Peer port of every node.
const PEER_PORT: u16 = 7101;
/// HTTP (metrics, readiness) port of every node.
const HTTP_PORT: u16 = 7201;
/// The operator the drill connects as.
pub const DRILL_OPERATOR: &str = "chaos-drill";
/// The tenants the workload writes to.
pub const TENANTS: [&str; 2] = ["drill-a", "drill-b"];
/// Validity of the drill's certificates.
const CERT_VALIDITY_DAYS: u32 = 2;
/// How long the cluster may take to elect its first leader.
const FORM_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the drill polls the cluster while it waits.
pub const POLL: Duration = Duration::from_millis(100);
/// Deadline of one attempt of a drill's request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Total time the SDK retries one of the drill's requests.
const RETRY_BUDGET: Duration = Duration::from_secs(5);
/// How long a node gets to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the drill's cluster could not run.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make the drill's certificates or keys: {0}")]
    Secrets(String),
    #[error("cannot write node config: {0}")]
    Encode(String),
    #[error("the SDK failed: {0}")]
    Client(#[from] safekeep_client::Error),
    #[error("cannot set up a node's data filesystem: {0}")]
    Disk(#[from] NetError),
    #[error("no leader within {0:?}; see the node logs under {1}")]
    NoLeader(Duration, PathBuf),
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError {
    let path = path.to_path_buf();
    move |source| ClusterError::Io { what, path, source }
}

/// One node of the drill.
#[derive(Debug)]
pub struct DrillNode {
    pub id: u64,
    pub zone: String,
    pub client_address: SocketAddr,
    pub config_path: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl DrillNode {
    /// The process id while the node runs.
    pub fn pid(&self) -> Option<Pid> {
        self.child
            .as_ref()
            .and_then(Child::id)
            .map(|pid| Pid::from_raw(pid as i32))
    }
}

/// Writes the config of `member` (TLS, encryption at rest, data under
/// `dir/node-ID`), as `adjust` completes it (initial members or a seed).
fn prepare_node(
    dir: &Path,
    certs: &Path,
    member: &InitialMember,
    adjust: impl FnOnce(&mut NodeConfig),
) -> Result<DrillNode, ClusterError> {
    let node_dir = dir.join(format!("node-{}", member.id));
    std::fs::create_dir_all(&node_dir).map_err(io_err("cannot create", &node_dir))?;
    let ip: std::net::IpAddr = member
        .client_address
        .split(':')
        .next()
        .and_then(|ip| ip.parse().ok())
        .expect("a planned address");
    let listen = ListenAddresses {
        client: SocketAddr::new(ip, CLIENT_PORT),
        peer: SocketAddr::new(ip, PEER_PORT),
        http: SocketAddr::new(ip, HTTP_PORT),
    };
    let mut config = NodeConfig {
        cluster_name: "chaos-drill".into(),
        tls: Some(safekeep_node::local_cluster::node_tls(certs, member.id)),
        ..NodeConfig::new(member.id, member.zone.clone(), node_dir.join("data"), listen)
    };
    config.encryption.master_key_file = Some(certs.join("master.keys"));
    adjust(&mut config);
    let config_path = node_dir.join("node.toml");
    let text = toml::to_string(&config).map_err(|e| ClusterError::Encode(e.to_string()))?;
    std::fs::write(&config_path, text).map_err(io_err("cannot write", &config_path))?;
    Ok(DrillNode {
        id: member.id,
        zone: member.zone.clone(),
        client_address: listen.client,
        config_path,
        log: node_dir.join("node.log"),
        child: None,
    })
}

/// An SDK client as every part of a drill uses one: over `endpoints`, with
/// `tls` (none: plaintext), as the client certificate's holder or with
/// `api_key`, and the drill's deadlines.
pub async fn drill_client(
    endpoints: Vec<String>,
    tls: Option<ClientTls>,
    api_key: Option<&str>,
) -> Result<Client, safekeep_client::Error> {
    let mut config = ClientConfig::new(endpoints);
    config.tls = tls;
    if let Some(key) = api_key {
        config.api_key = Some(ApiKey::new(key)?);
    }
    config.request_timeout = REQUEST_TIMEOUT;
    config.retry_budget = RETRY_BUDGET;
    Client::connect(config).await
}

/// The running cluster and what clients need to reach it.
pub struct DrillCluster {
    pub dir: PathBuf,
    /// Dropped before `disks`: the processes go before their filesystems.
    pub nodes: BTreeMap<u64, DrillNode>,
    /// Each node's loop-mounted data filesystem, when the drill stalls disks.
    disks: BTreeMap<u64, LoopDisk>,
    exe: PathBuf,
    tls: ClientTls,
    certs: PathBuf,
    layout: Layout,
    /// Where every node backs up to, when the drill watches backups.
    backup: Option<BackupSettings>,
}

/// Where each node of a drill lives: node `id` (from 1) in zone
/// `(id - 1) % zones`, and one spare id and address per zone for a node
/// that replaces a lost one.
#[derive(Debug, Clone)]
struct Layout {
    zones: Vec<String>,
    nodes: usize,
    isolation: Isolation,
}

impl Layout {
    fn at(&self, id: u64, zone: usize, slot: usize) -> InitialMember {
        let ip = self.isolation.node_address(zone, slot);
        InitialMember {
            id,
            zone: self.zones[zone].clone(),
            peer_address: SocketAddr::from((ip, PEER_PORT)).to_string(),
            client_address: SocketAddr::from((ip, CLIENT_PORT)).to_string(),
        }
    }

    /// Initial member `id`.
    fn member(&self, id: u64) -> InitialMember {
        assert!(
            id >= 1 && id as usize <= self.nodes,
            "node {id} is not an initial member"
        );
        let index = id as usize - 1;
        self.at(id, index % self.zones.len(), index / self.zones.len())
    }

    /// Nodes of zone `zone` at the start.
    fn zone_size(&self, zone: usize) -> usize {
        (self.nodes + self.zones.len() - 1 - zone) / self.zones.len()
    }

    /// The spare of zone `zone`: a new id and the zone's next free address.
    fn spare(&self, zone: usize) -> InitialMember {
        self.at((self.nodes + zone + 1) as u64, zone, self.zone_size(zone))
    }

    /// Most addresses any zone needs, its spare included.
    fn addresses_per_zone(&self) -> usize {
        self.zone_size(0) + 1
    }
}

/// Addresses each zone's namespace needs for `nodes` nodes over `zones`
/// zones, spare included.
pub fn addresses_per_zone(zones: usize, nodes: usize) -> usize {
    Layout {
        zones: vec![String::new(); zones],
        nodes,
        isolation: Isolation::Namespaces,
    }
    .addresses_per_zone()
}

impl DrillCluster {
    /// Lays out `nodes` nodes round-robin over `zones` under `dir` (each
    /// data directory on a loop-mounted filesystem of its own with
    /// `loop_disks`) and starts them, each in its zone's namespace or on a
    /// loopback address of its own as `isolation` says; returns once they
    /// agree on a leader. With `backup`, every node (and any that joins
    /// later) backs up there.
    pub async fn start(
        dir: &Path,
        zones: &[String],
        nodes: usize,
        isolation: Isolation,
        exe: &Path,
        loop_disks: bool,
        backup: Option<BackupSettings>,
    ) -> Result<Self, ClusterError> {
        std::fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
        let certs = dir.join("certs");
        let layout = Layout {
            zones: zones.to_vec(),
            nodes,
            isolation,
        };
        let members: Vec<InitialMember> = (1..=nodes as u64).map(|id| layout.member(id)).collect();
        let spares: Vec<InitialMember> = (0..zones.len()).map(|zone| layout.spare(zone)).collect();
        let host = |m: &InitialMember| m.client_address.split(':').next().unwrap_or_default().to_string();
        let spec = DevBundleSpec {
            nodes: members.iter().chain(&spares).map(|m| m.id).collect(),
            hosts: members.iter().chain(&spares).map(host).collect(),
            clients: vec![CertPrincipal::Operator(DRILL_OPERATOR.to_string())],
            validity_days: CERT_VALIDITY_DAYS,
        };
        write_dev_bundle(&certs, &spec).map_err(|e| ClusterError::Secrets(e.to_string()))?;
        let master_keys = certs.join("master.keys");
        if !master_keys.exists() {
            safekeep_node::crypto::MasterKeyFile::generate(&master_keys, "drill-1")
                .map_err(|e| ClusterError::Secrets(e.to_string()))?;
        }
        let mut nodes = BTreeMap::new();
        let mut disks = BTreeMap::new();
        for member in &members {
            let node_dir = dir.join(format!("node-{}", member.id));
            std::fs::create_dir_all(&node_dir).map_err(io_err("cannot create", &node_dir))?;
            if loop_disks {
                let disk = LoopDisk::create(&node_dir.join("disk.img"), &node_dir.join("data"))?;
                disks.insert(member.id, disk);
            }
            let node = prepare_node(dir, &certs, member, |config| {
                config.init = members.clone();
                config.backup = backup.clone();
            })?;
            nodes.insert(member.id, node);
        }
        let (cert, key) = leaf_files(&certs, &CertPrincipal::Operator(DRILL_OPERATOR.to_string()));
        let read = |path: &Path| std::fs::read(path).map_err(io_err("cannot read", path));
        let tls = ClientTls {
            ca_pem: read(&certs.join(CA_CERT_FILE))?,
            identity: Some((read(&cert)?, read(&key)?)),
            server_name: None,
        };
        let mut cluster = Self {
            dir: dir.to_path_buf(),
            nodes,
            disks,
            exe: exe.to_path_buf(),
            tls,
            certs,
            layout,
            backup,
        };
        // Highest ids first, so the initializing node (lowest id) finds its peers up.
        let ids: Vec<u64> = cluster.nodes.keys().rev().copied().collect();
        for id in ids {
            cluster.start_node(id)?;
        }
        cluster.wait_for_leader(FORM_TIMEOUT).await?;
        Ok(cluster)
    }

    /// Node `lost`'s disk is gone: its process is killed and its data
    /// directory deleted. The operator adds a node with a new id, on its
    /// zone's spare address, as a learner; it starts, joins through `seed`
    /// and catches up. Returns the new id.
    pub async fn replace_lost_disk(&mut self, lost: u64, seed: u64) -> Result<u64, ClusterError> {
        self.kill(lost).await;
        let node = self.nodes.remove(&lost).expect("a node of the drill");
        let data = node.config_path.with_file_name("data");
        std::fs::remove_dir_all(&data).map_err(io_err("cannot delete", &data))?;
        let zone = self
            .layout
            .zones
            .iter()
            .position(|z| *z == node.zone)
            .expect("a zone of the drill");
        let member = self.layout.spare(zone);
        let id = member.id;
        let seed_address = SocketAddr::new(self.nodes[&seed].client_address.ip(), PEER_PORT).to_string();
        let backup = self.backup.clone();
        let node = prepare_node(&self.dir, &self.certs, &member, |config| {
            config.join = Some(seed_address.clone());
            config.backup = backup;
        })?;
        let admin = self.client(self.endpoints(), None).await?;
        admin
            .add_learner(id, &member.zone, &member.peer_address, &member.client_address)
            .await?;
        self.nodes.insert(id, node);
        self.start_node(id)?;
        Ok(id)
    }

    /// Starts node `id` from its data, inside its zone's namespace (or on its loopback address).
    pub fn start_node(&mut self, id: u64) -> Result<(), ClusterError> {
        let node = self.nodes.get_mut(&id).expect("a node of the drill");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .map_err(io_err("cannot open", &node.log))?;
        let log_err = log.try_clone().map_err(io_err("cannot open", &node.log))?;
        let mut command = match self.layout.isolation {
            Isolation::Namespaces => {
                let mut command = Command::new("ip");
                command
                    .args(["netns", "exec", &netns::namespace(&node.zone)])
                    .arg(&self.exe);
                command
            }
            Isolation::Loopback => Command::new(&self.exe),
        };
        command
            .arg("run")
            .arg("--config")
            .arg(&node.config_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true);
        // SAFETY: the closure only makes one async-signal-safe system call.
        unsafe {
            // If the drill dies, its nodes die with it (`ip netns exec` execs the node).
            command.pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from));
        }
        node.child = Some(command.spawn().map_err(io_err("cannot start", &self.exe))?);
        Ok(())
    }

    /// Sends `signal` to node `id`, if it runs.
    pub fn signal(&self, id: u64, signal: Signal) {
        if let Some(pid) = self.nodes.get(&id).and_then(DrillNode::pid) {
            let _ = nix::sys::signal::kill(pid, signal);
        }
    }

    /// SIGKILL to node `id`, reaped: the process is gone, its disk kept.
    pub async fn kill(&mut self, id: u64) {
        if let Some(node) = self.nodes.get_mut(&id)
            && let Some(mut child) = node.child.take()
        {
            let _ = child.kill().await;
        }
    }

    /// SIGTERM to node `id`, then SIGKILL if it has not stopped in time.
    pub async fn stop(&mut self, id: u64) {
        self.signal(id, Signal::SIGTERM);
        if let Some(node) = self.nodes.get_mut(&id)
            && let Some(mut child) = node.child.take()
            && tokio::time::timeout(STOP_TIMEOUT, child.wait()).await.is_err()
        {
            let _ = child.kill().await;
        }
    }

    /// Stops every node (a frozen one is thawed first, so it can stop).
    pub async fn stop_all(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in &ids {
            self.signal(*id, Signal::SIGCONT);
        }
        for id in ids {
            self.stop(id).await;
        }
    }

    /// Stalls (`frozen`) or releases node `id`'s data filesystem.
    pub fn stall_disk(&self, id: u64, frozen: bool) -> Result<(), ClusterError> {
        let Some(disk) = self.disks.get(&id) else {
            return Ok(());
        };
        if frozen {
            disk.freeze()?
        } else {
            disk.thaw()?
        }
        Ok(())
    }

    /// The zones, in the order they were laid out.
    pub fn zones(&self) -> &[String] {
        &self.layout.zones
    }

    /// The ids of the nodes in `zone`.
    pub fn zone_members(&self, zone: &str) -> Vec<u64> {
        self.nodes.values().filter(|n| n.zone == zone).map(|n| n.id).collect()
    }

    /// Every node's id and client address, and each zone's spare, for a
    /// watch that must also see a node that replaces a lost one.
    pub fn watch_targets(&self) -> Vec<(u64, String)> {
        let spares = (0..self.layout.zones.len()).map(|zone| self.layout.spare(zone));
        self.nodes
            .values()
            .map(|n| (n.id, n.client_address.to_string()))
            .chain(spares.map(|m| (m.id, m.client_address)))
            .collect()
    }

    /// Every node's client address, for an SDK that follows the leader.
    pub fn endpoints(&self) -> Vec<String> {
        self.nodes.values().map(|n| n.client_address.to_string()).collect()
    }

    /// An SDK client over `endpoints`, as the drill's operator or with `api_key`.
    pub async fn client(&self, endpoints: Vec<String>, api_key: Option<&str>) -> Result<Client, ClusterError> {
        Ok(drill_client(endpoints, Some(self.tls.clone()), api_key).await?)
    }

    /// The leader the cluster agrees on now, asked of any node that answers.
    pub async fn leader(&self) -> Option<u64> {
        let client = self.client(self.endpoints(), None).await.ok()?;
        let status = client.status().await.ok()?;
        (status.header.leader_id != 0).then_some(status.header.leader_id)
    }

    /// Waits until some node names a leader.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<u64, ClusterError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(leader) = self.leader().await {
                return Ok(leader);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ClusterError::NoLeader(timeout, self.dir.clone()));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Makes the workload's tenants and an admin API key for each: the
    /// tenant's own, issued with the first admin key the operator issued (a
    /// staff key, whose every record access would be audited).
    pub async fn tenant_keys(&self) -> Result<BTreeMap<String, String>, ClusterError> {
        let admin = self.client(self.endpoints(), None).await?;
        let mut keys = BTreeMap::new();
        for tenant in TENANTS {
            admin.create_tenant(tenant).await?;
            let first = admin
                .issue_api_key(tenant, ApiKeyRole::Admin, "chaos drill setup")
                .await?;
            let tenant_admin = self.client(self.endpoints(), Some(&first.secret)).await?;
            let issued = tenant_admin
                .issue_api_key(tenant, ApiKeyRole::Admin, "chaos drill")
                .await?;
            keys.insert(tenant.to_string(), issued.secret);
        }
        Ok(keys)
    }
}
