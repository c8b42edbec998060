//! The `safekeep-node` binary: run one node, or a local three-zone cluster.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use safekeep_node::config::{NodeConfig, PartialConfig};
use safekeep_node::local_cluster::{self, DEFAULT_BASE_PORT};
use safekeep_node::{InitialMember, Node};

/// safekeep node: a zone-aware Raft replica of customer records.
#[derive(Parser)]
#[command(name = "safekeep-node", version, about, long_about = None)]
struct Cli {
    /// Log filter (tracing's env-filter syntax), e.g. `info` or `safekeep_node=debug`.
    #[arg(long, env = "SAFEKEEP_LOG", default_value = "info", global = true)]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node. Settings come from --config, then flags, then environment variables.
    Run(Box<RunArgs>),
    /// Start a local development cluster: one node process per zone on loopback.
    LocalCluster(LocalClusterArgs),
}

#[derive(Args)]
struct RunArgs {
    /// TOML config file; every setting below may also be set there.
    #[arg(long, short, env = "SAFEKEEP_CONFIG")]
    config: Option<PathBuf>,
    /// This node's id: a positive integer, unique in the cluster, never reused.
    #[arg(long, env = "SAFEKEEP_ID")]
    id: Option<u64>,
    /// Availability zone label (the placement guard keeps a quorum out of any one zone).
    #[arg(long, env = "SAFEKEEP_ZONE")]
    zone: Option<String>,
    /// Directory for the node's RocksDB and snapshots.
    #[arg(long, env = "SAFEKEEP_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Cluster name stamped into the data directory.
    #[arg(long, env = "SAFEKEEP_CLUSTER_NAME")]
    cluster_name: Option<String>,
    /// Client API listen address (gRPC: Records, Cluster, health, reflection).
    #[arg(long, env = "SAFEKEEP_CLIENT_LISTEN")]
    client_listen: Option<SocketAddr>,
    /// Peer channel listen address (Raft and forwarded requests).
    #[arg(long, env = "SAFEKEEP_PEER_LISTEN")]
    peer_listen: Option<SocketAddr>,
    /// Plain HTTP listen address for /healthz, /readyz and /metrics.
    #[arg(long, env = "SAFEKEEP_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
    /// Client address to advertise to others, if not the listen address.
    #[arg(long, env = "SAFEKEEP_CLIENT_ADVERTISE")]
    client_advertise: Option<String>,
    /// Peer address to advertise to others, if not the listen address.
    #[arg(long, env = "SAFEKEEP_PEER_ADVERTISE")]
    peer_advertise: Option<String>,
    /// Initial member `ID,ZONE,PEER_ADDRESS,CLIENT_ADDRESS`; repeat for each. Forms a new cluster.
    #[arg(long = "init-member", env = "SAFEKEEP_INIT_MEMBERS", value_delimiter = ';')]
    init: Vec<InitialMember>,
    /// Peer address of any member of an existing cluster to join.
    #[arg(long, env = "SAFEKEEP_JOIN")]
    join: Option<String>,
    /// With --join: stay a learner (replicates, never votes).
    #[arg(long, env = "SAFEKEEP_LEARNER")]
    learner: bool,
    /// Raft heartbeat interval, ms.
    #[arg(long, env = "SAFEKEEP_HEARTBEAT_MS")]
    heartbeat_ms: Option<u64>,
    /// Lower bound of the election timeout, ms.
    #[arg(long, env = "SAFEKEEP_ELECTION_MIN_MS")]
    election_min_ms: Option<u64>,
    /// Upper bound of the election timeout, ms.
    #[arg(long, env = "SAFEKEEP_ELECTION_MAX_MS")]
    election_max_ms: Option<u64>,
    /// Entries since the last snapshot that trigger a new one.
    #[arg(long, env = "SAFEKEEP_SNAPSHOT_THRESHOLD")]
    snapshot_threshold: Option<u64>,
    /// Largest record value, bytes.
    #[arg(long, env = "SAFEKEEP_MAX_VALUE_BYTES")]
    max_value_bytes: Option<usize>,
}

#[derive(Args)]
struct LocalClusterArgs {
    /// Directory for the nodes' data, configs, logs and cluster.json.
    #[arg(long, default_value = "safekeep-local")]
    dir: PathBuf,
    /// Number of nodes (zones a, b, c round-robin).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Client ports are BASE+id, peer ports BASE+100+id, HTTP ports BASE+200+id.
    #[arg(long, default_value_t = DEFAULT_BASE_PORT)]
    base_port: u16,
}

impl RunArgs {
    fn into_config(self) -> Result<NodeConfig, safekeep_node::config::ConfigError> {
        let mut c = match &self.config {
            Some(path) => NodeConfig::from_file(path)?,
            None => PartialConfig::default(),
        };
        macro_rules! over {
            ($($field:ident),*) => { $( if let Some(v) = self.$field { c.$field = Some(v); } )* };
        }
        over!(
            id,
            zone,
            data_dir,
            cluster_name,
            client_listen,
            peer_listen,
            http_listen,
            client_advertise,
            peer_advertise,
            join
        );
        if !self.init.is_empty() {
            c.init = self.init;
        }
        c.learner |= self.learner;
        if let Some(v) = self.heartbeat_ms {
            c.raft.heartbeat_ms = v;
        }
        if let Some(v) = self.election_min_ms {
            c.raft.election_min_ms = v;
        }
        if let Some(v) = self.election_max_ms {
            c.raft.election_max_ms = v;
        }
        if let Some(v) = self.snapshot_threshold {
            c.raft.snapshot_threshold = v;
        }
        if let Some(v) = self.max_value_bytes {
            c.limits.max_value_bytes = v;
        }
        c.finish()
    }
}

async fn run_node(args: RunArgs) -> Result<(), String> {
    let config = args.into_config().map_err(|e| e.to_string())?;
    let node = Node::start(config).await.map_err(|e| e.to_string())?;
    wait_for_stop_signal().await;
    tracing::info!("stop signal received");
    node.shutdown().await;
    Ok(())
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run_node(*args).await,
            Command::LocalCluster(args) => {
                let exe = std::env::current_exe().map_err(|e| format!("cannot find this program's path: {e}"))?;
                local_cluster::run(&args.dir, args.nodes, args.base_port, &exe)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
