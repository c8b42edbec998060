//! The `safekeep-node` binary: run one node, or a local three-zone cluster;
//! make development certificates and master keys; print shell completions
//! and the man page.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use safekeep_node::backup::{self, RestoreRequest, Target, Until, format_ms};
use safekeep_node::config::{
    BackupSettings, ConfigError, DEFAULT_TLS_RELOAD_MS, NodeConfig, PartialConfig, TlsSettings,
};
use safekeep_node::local_cluster::{self, DEFAULT_BASE_PORT};
use safekeep_node::logging::{self, LogFormat};
use safekeep_node::raft::NodeInfo;
use safekeep_node::tls::CertPrincipal;
use safekeep_node::tls::certs::{DEFAULT_VALIDITY_DAYS, DevBundleSpec, MAX_VALIDITY_DAYS, write_dev_bundle};
use safekeep_node::{InitialMember, Node};

/// safekeep node: a zone-aware Raft replica of customer records.
#[derive(Parser)]
#[command(name = "safekeep-node", version, about, long_about = None)]
struct Cli {
    /// Log filter (tracing's env-filter syntax), e.g. `info` or `safekeep_node=debug`.
    #[arg(long, env = "SAFEKEEP_LOG", default_value = "info", global = true)]
    log: String,
    /// Log line format: `text` (coloured only on a terminal) or `json` (one object per line with
    /// timestamp, level, target, fields and span, for a log pipeline). Overrides `log_format` in
    /// the config file; default text.
    #[arg(long, env = "SAFEKEEP_LOG_FORMAT", value_enum, global = true)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node. Settings come from --config, then flags, then environment variables.
    Run(Box<RunArgs>),
    /// Start a local development cluster: one node process per zone on loopback, TLS on.
    /// A node that exits is reported and restarted while the others keep serving.
    LocalCluster(LocalClusterArgs),
    /// Create development certificates: a cluster CA (reused if DIR already has one),
    /// node certificates and client certificates, for TLS and mutual TLS.
    Certs(CertsArgs),
    /// Create a master key file (one fresh 256-bit key, mode 600) for encryption at rest.
    MasterKey(MasterKeyArgs),
    /// Print a completion script for a shell, e.g.
    /// `safekeep-node completions bash > /etc/bash_completion.d/safekeep-node`.
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page (roff), e.g. `safekeep-node man > safekeep-node.1`.
    Man,
    /// Build a new cluster's first node from backups: the newest full backup before
    /// --to-time plus the archived log up to that time, or everything with --latest.
    /// Every object used is checked before anything is written. The node's settings
    /// (id, zone, addresses, TLS, master key, and a cluster name other than the
    /// backed-up cluster's) come from --config and flags, as for `run`; run it with
    /// the same settings afterwards.
    Restore(Box<RestoreArgs>),
    /// Work with backups without a running node.
    #[command(subcommand)]
    Backup(BackupCommand),
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Check every manifest, full backup and log segment of a target (authenticity,
    /// sizes, digests, and that the log has no gap) without restoring anything.
    /// Exits 1 when anything is wrong, naming each object.
    Verify(VerifyArgs),
}

/// Where backups are and how to open them.
#[derive(Args)]
struct TargetArgs {
    /// The backup target: file:///DIR or s3://BUCKET[/PREFIX] (default: backup.target of --config).
    #[arg(long)]
    from: Option<String>,
    /// Endpoint URL of an S3-compatible store (default: backup.s3.endpoint of --config).
    #[arg(long, env = "SAFEKEEP_BACKUP_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// Region of the bucket (default: backup.s3.region of --config, else the environment's).
    #[arg(long, env = "SAFEKEEP_BACKUP_S3_REGION")]
    s3_region: Option<String>,
}

#[derive(Args)]
struct RestoreArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Restore every command committed at or before this time: RFC 3339
    /// (`2026-12-05T10:30:00Z`) or milliseconds since the Unix epoch.
    #[arg(long, required_unless_present = "latest", conflicts_with = "latest")]
    to_time: Option<String>,
    /// Restore everything the target holds.
    #[arg(long)]
    latest: bool,
    /// Clear a data directory that is not empty (its contents are lost).
    #[arg(long)]
    force: bool,
    /// Restore this tenant alone: its records, API keys and data keys, as of the
    /// time asked for; no other tenant's data comes along.
    #[arg(long)]
    tenant: Option<String>,
    #[command(flatten)]
    node: RunArgs,
}

#[derive(Args)]
struct VerifyArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// A node's config file: its master key settings and [backup] section are used.
    #[arg(long, short, env = "SAFEKEEP_CONFIG")]
    config: Option<PathBuf>,
    /// File of master keys, if not the one --config names.
    #[arg(long, env = "SAFEKEEP_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
}

#[derive(Args)]
struct MasterKeyArgs {
    /// File to create; an existing file is never overwritten.
    #[arg(long)]
    out: PathBuf,
    /// Id of the key (letters, digits, '-', '_', '.'); rotate by adding a key with a new id first.
    #[arg(long, default_value = "k1")]
    id: String,
}

#[derive(Args)]
struct CertsArgs {
    /// Directory to write the certificates and keys into (keys are owner-readable only).
    #[arg(long)]
    dir: PathBuf,
    /// Node ids to issue node certificates for, comma-separated, e.g. `1,2,3`.
    #[arg(long, value_delimiter = ',', required = true)]
    nodes: Vec<u64>,
    /// DNS names and IP addresses clients reach the nodes by, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "localhost,127.0.0.1")]
    hosts: Vec<String>,
    /// Client certificates to issue, as ROLE:NAME with ROLE `operator` or `support`.
    #[arg(long = "client", value_delimiter = ',', default_value = "operator:admin")]
    clients: Vec<CertPrincipal>,
    /// Days the issued certificates stay valid.
    #[arg(long, default_value_t = DEFAULT_VALIDITY_DAYS)]
    validity_days: u32,
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
    #[arg(long, env = "SAFEKEEP_LEARNER", value_parser = clap::builder::FalseyValueParser::new())]
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
    /// This node's certificate (PEM), for TLS on the client API and mutual TLS between nodes.
    #[arg(long, env = "SAFEKEEP_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "SAFEKEEP_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// The cluster CA (PEM): signs every node certificate, and client certificates unless --tls-client-ca.
    #[arg(long, env = "SAFEKEEP_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// CA of client certificates on the client API, if not the cluster CA.
    #[arg(long, env = "SAFEKEEP_TLS_CLIENT_CA")]
    tls_client_ca: Option<PathBuf>,
    /// File of master keys (`ID HEX` lines, mode 600) that wrap tenants' data keys; without it
    /// the SAFEKEEP_MASTER_KEY environment variable holds them.
    #[arg(long, env = "SAFEKEEP_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    /// Serve plaintext and skip authentication and encryption: development only. Logged at
    /// start and reported by /readyz and `cluster status`.
    #[arg(long, env = "SAFEKEEP_INSECURE_DEV", value_parser = clap::builder::FalseyValueParser::new())]
    insecure_dev: bool,
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
    /// Serve plaintext without certificates (development only; logged and reported as insecure).
    #[arg(long)]
    insecure_dev: bool,
    /// Start a node that exited again after this many seconds (as systemd's RestartSec).
    /// Without it, a node that exits stays down until this process gets SIGHUP
    /// (`kill -HUP PID`); the other nodes keep serving either way.
    #[arg(long, value_name = "SECONDS")]
    restart_after: Option<u64>,
    /// Have every node back up to this target: `file:///ABSOLUTE/DIR` or
    /// `s3://BUCKET[/PREFIX]`, sealed under the cluster's master key (so not
    /// with --insecure-dev). `safekeep cluster status` shows where backups stand.
    #[arg(long, value_name = "URL", conflicts_with = "insecure_dev")]
    backup_target: Option<String>,
    /// Longest seconds committed writes wait before they ship to --backup-target.
    #[arg(long, value_name = "SECONDS", requires = "backup_target", default_value_t = safekeep_node::config::DEFAULT_BACKUP_ARCHIVE_INTERVAL_S)]
    backup_archive_interval: u64,
}

impl RunArgs {
    fn into_config(self) -> Result<NodeConfig, ConfigError> {
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
        c.insecure_dev |= self.insecure_dev;
        if let Some(path) = self.master_key_file {
            c.encryption.master_key_file = Some(path);
        }
        if self.tls_cert.is_some() || self.tls_key.is_some() || self.tls_ca.is_some() || self.tls_client_ca.is_some() {
            let from_file = c.tls.take();
            let pick = |flag: Option<PathBuf>, file: Option<&PathBuf>, name| {
                flag.or_else(|| file.cloned()).ok_or(ConfigError::Missing(name))
            };
            c.tls = Some(TlsSettings {
                cert: pick(self.tls_cert, from_file.as_ref().map(|t| &t.cert), "tls.cert")?,
                key: pick(self.tls_key, from_file.as_ref().map(|t| &t.key), "tls.key")?,
                ca: pick(self.tls_ca, from_file.as_ref().map(|t| &t.ca), "tls.ca")?,
                client_ca: self
                    .tls_client_ca
                    .or_else(|| from_file.as_ref().and_then(|t| t.client_ca.clone())),
                reload_interval_ms: from_file.map_or(DEFAULT_TLS_RELOAD_MS, |t| t.reload_interval_ms),
            });
        }
        c.finish()
    }
}

async fn run_node(config: NodeConfig) -> Result<(), String> {
    // Metrics recorded while the node starts (its certificate's expiry, its
    // zone) are kept only once a recorder is installed: install it first.
    safekeep_node::http::prometheus();
    let node = Node::start(config).await.map_err(|e| e.to_string())?;
    wait_for_stop_signal().await;
    tracing::info!("stop signal received");
    node.shutdown().await;
    Ok(())
}

/// Parses `--to-time`: RFC 3339, or milliseconds since the Unix epoch.
fn parse_time_ms(text: &str) -> Result<i64, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let at = humantime::parse_rfc3339_weak(text)
        .map_err(|e| format!("--to-time {text:?}: {e}; give RFC 3339 (2026-12-05T10:30:00Z) or Unix milliseconds"))?;
    let since = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("--to-time {text:?} is before 1970"))?;
    i64::try_from(since.as_millis()).map_err(|_| format!("--to-time {text:?} is too far ahead"))
}

/// Opens the target named by flags or by a config's [backup] section.
fn open_target(args: TargetArgs, from_config: Option<&BackupSettings>) -> Result<Target, String> {
    let mut s3 = from_config.map(|b| b.s3.clone()).unwrap_or_default();
    if args.s3_endpoint.is_some() {
        s3.endpoint = args.s3_endpoint;
    }
    if args.s3_region.is_some() {
        s3.region = args.s3_region;
    }
    let url = args
        .from
        .or_else(|| from_config.map(|b| b.target.clone()))
        .ok_or("name the backup target with --from (or a [backup] section in --config)")?;
    Target::open(&url, &s3).map_err(|e| e.to_string())
}

async fn restore(args: RestoreArgs) -> Result<(), String> {
    let until = match &args.to_time {
        Some(text) => Until::Time(parse_time_ms(text)?),
        None => Until::Latest,
    };
    let config = args.node.into_config().map_err(|e| e.to_string())?;
    let target = open_target(args.target, config.backup.as_ref())?;
    let provider = safekeep_node::crypto::load_provider(&config.encryption).map_err(|e| e.to_string())?;
    let request = RestoreRequest {
        target,
        provider,
        until,
        data_dir: config.data_dir.clone(),
        force: args.force,
        tenant: args.tenant.clone(),
        node_id: config.id,
        cluster_name: config.cluster_name.clone(),
        node: NodeInfo {
            zone: config.zone.clone(),
            peer_address: config.peer_address(),
            client_address: config.client_address(),
            incarnation: 0,
        },
    };
    let report = backup::restore(request).await.map_err(|e| e.to_string())?;
    println!(
        "restored into {} as node {} of cluster {:?}",
        config.data_dir.display(),
        config.id,
        config.cluster_name
    );
    println!(
        "  full backup   {} (cluster {:?}, node {}, log index {}, {} records, taken {})",
        report.set.folder(),
        report.manifest.cluster_name,
        report.manifest.node,
        report.manifest.last_index,
        report.manifest.records,
        format_ms(report.manifest.taken_at_ms)
    );
    println!(
        "  log replayed  {} entries, indexes {}..={}",
        report.replayed,
        report.manifest.last_index + 1,
        report.last_index
    );
    println!(
        "  time range    {} .. {}",
        format_ms(report.manifest.applied_at_ms),
        format_ms(report.restored_to_ms)
    );
    match &args.tenant {
        Some(tenant) => println!("  records       {} (tenant {tenant} alone)", report.records),
        None => println!("  records       {}", report.records),
    }
    if report.erased.is_empty() {
        println!("  erased        none (no tenant in the erasure ledger was left in the backup)");
    } else {
        println!(
            "  erased        {} (deleted in the backed-up cluster, per the erasure ledger)",
            report.erased.join(", ")
        );
    }
    Ok(())
}

async fn verify(args: VerifyArgs) -> Result<(), String> {
    let partial = match &args.config {
        Some(path) => NodeConfig::from_file(path).map_err(|e| e.to_string())?,
        None => PartialConfig::default(),
    };
    let mut encryption = partial.encryption.clone();
    if let Some(path) = args.master_key_file {
        encryption.master_key_file = Some(path);
    }
    let target = open_target(args.target, partial.backup.as_ref())?;
    let provider = safekeep_node::crypto::load_provider(&encryption).map_err(|e| e.to_string())?;
    let report = backup::verify(&target, &provider).await.map_err(|e| e.to_string())?;
    println!(
        "{}: {} full backups, {} log segments, {} bytes of full backups checked",
        target.url, report.sets, report.segments, report.bytes
    );
    println!("erasure ledger: {} deleted tenants", report.erasures);
    if let Some((from, to)) = report.covered {
        println!("restorable: log indexes {from}..={to} without a gap");
    }
    if report.problems.is_empty() {
        println!("ok");
        return Ok(());
    }
    for problem in &report.problems {
        println!("FAILED: {problem}");
    }
    Err(format!("{} problems found in {}", report.problems.len(), target.url))
}

/// Writes the completion script for `shell` to standard output.
fn print_completions(shell: Shell) -> Result<(), String> {
    let mut command = Cli::command();
    let name = command.get_name().to_string();
    clap_complete::generate(shell, &mut command, name, &mut std::io::stdout());
    Ok(())
}

/// Writes the man page to standard output.
fn print_man_page() -> Result<(), String> {
    clap_mangen::Man::new(Cli::command())
        .render(&mut std::io::stdout())
        .map_err(|e| format!("cannot write the man page: {e}"))
}

fn make_certs(args: CertsArgs) -> Result<(), String> {
    if args.validity_days == 0 || args.validity_days > MAX_VALIDITY_DAYS {
        return Err(format!("--validity-days must be between 1 and {MAX_VALIDITY_DAYS}"));
    }
    if let Some(bad) = args.nodes.iter().find(|id| **id == 0) {
        return Err(format!("--nodes: node ids start at 1, not {bad}"));
    }
    let spec = DevBundleSpec {
        nodes: args.nodes,
        hosts: args.hosts,
        clients: args.clients,
        validity_days: args.validity_days,
    };
    let written = write_dev_bundle(&args.dir, &spec).map_err(|e| e.to_string())?;
    for path in written {
        println!("{}", path.display());
    }
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
    if cfg!(feature = "test-faults") {
        eprintln!("error: this build carries deliberate bugs for simulation tests; refusing to run");
        return ExitCode::FAILURE;
    }
    run_cli()
}

/// Parses the command line and runs what it asks for.
pub(crate) fn run_cli() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Completions { shell } => print_completions(shell),
        Command::Man => print_man_page(),
        // The config file may name the log format: read it before logging starts.
        Command::Run(args) => args.into_config().map_err(|e| e.to_string()).and_then(|config| {
            start_logging(&cli.log, cli.log_format.unwrap_or(config.log_format))?;
            block_on(run_node(config))
        }),
        command => {
            start_logging(&cli.log, cli.log_format.unwrap_or_default()).and_then(|()| block_on(run_tool(command)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn start_logging(filter: &str, format: LogFormat) -> Result<(), String> {
    logging::init(filter, format).map_err(|e| e.to_string())
}

/// Runs `work` to completion on a new multi-threaded runtime.
fn block_on(work: impl std::future::Future<Output = Result<(), String>>) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(work)
}

/// The local cluster's `[backup]` settings, checked, when a target is given.
fn local_backup(target: Option<String>, archive_interval_s: u64) -> Result<Option<BackupSettings>, String> {
    let Some(target) = target else {
        return Ok(None);
    };
    let mut settings = BackupSettings::new(target);
    settings.archive_interval_s = archive_interval_s;
    settings.validate().map_err(|e| e.to_string())?;
    Ok(Some(settings))
}

/// Runs a command other than `run`, `completions` and `man`.
async fn run_tool(command: Command) -> Result<(), String> {
    match command {
        Command::LocalCluster(args) => {
            let exe = std::env::current_exe().map_err(|e| format!("cannot find this program's path: {e}"))?;
            let security = if args.insecure_dev {
                local_cluster::Security::InsecureDev
            } else {
                local_cluster::Security::Tls
            };
            local_cluster::run(local_cluster::RunOptions {
                dir: args.dir,
                nodes: args.nodes,
                base_port: args.base_port,
                exe,
                security,
                restart_after: args.restart_after.map(std::time::Duration::from_secs),
                backup: local_backup(args.backup_target, args.backup_archive_interval)?,
            })
            .await
            .map_err(|e| e.to_string())
        }
        Command::Certs(args) => make_certs(args),
        Command::Restore(args) => restore(*args).await,
        Command::Backup(BackupCommand::Verify(args)) => verify(args).await,
        Command::MasterKey(args) => safekeep_node::crypto::MasterKeyFile::generate(&args.out, &args.id)
            .map(|()| println!("{}", args.out.display()))
            .map_err(|e| e.to_string()),
        Command::Run(_) | Command::Completions { .. } | Command::Man => {
            Err("run, completions and man are handled before the runtime starts".into())
        }
    }
}
