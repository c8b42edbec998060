//! Runs a planned local cluster: writes each node's config, starts one
//! process per node with its log, waits until a leader serves, creates the
//! local tenant and its admin key, records `cluster.json`, and then keeps
//! the cluster serving: a node that exits is reported and started again
//! (after a delay, or on SIGHUP) while the others serve, and `cluster.json`
//! follows its new pid. Ctrl-C stops every node cleanly.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use safekeep_api::v1::StatusRequest;
use safekeep_api::v1::cluster_client::ClusterClient;
use serde::Serialize;
use tokio::process::{Child, Command};

use super::plan::{
    LOCAL_OPERATOR, Security, certs_dir, http_port, issue_local_certs, loopback, node_config, node_tls, plan,
};
use super::{LocalClusterError, io_err};
use crate::config::BackupSettings;
use crate::identity::CertPrincipal;
use crate::tls::certs::{CA_CERT_FILE, leaf_files};

/// How long the cluster may take to elect a leader.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often readiness is polled.
const READY_POLL: Duration = Duration::from_millis(200);
/// How long nodes get to stop after SIGTERM before they are killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The tenant a new local cluster creates, with an admin API key.
pub const LOCAL_TENANT: &str = "acme";
/// File (in the cluster directory) holding the local master key.
const MASTER_KEY_FILE: &str = "master.keys";
/// File (in the cluster directory) holding the local tenant's admin API key.
const API_KEY_FILE: &str = "acme.api-key";

/// One node of the local cluster, as written to `cluster.json`.
#[derive(Debug, Clone, Serialize)]
pub struct LocalNode {
    pub id: u64,
    pub zone: String,
    pub pid: u32,
    pub client_address: String,
    pub peer_address: String,
    pub http_address: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

/// How a local cluster is run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Directory for the nodes' data, configs, logs and `cluster.json`.
    pub dir: PathBuf,
    pub nodes: usize,
    pub base_port: u16,
    /// The `safekeep-node` program each node runs.
    pub exe: PathBuf,
    pub security: Security,
    /// Restart a node this long after it exits; `None` waits for SIGHUP.
    pub restart_after: Option<Duration>,
    /// Where every node backs up to (with TLS only: backups are sealed
    /// under the cluster's master key).
    pub backup: Option<BackupSettings>,
}

/// One node process the runner keeps: what it is, how to start it, and the
/// running process (`None` while it is down).
struct Supervised {
    node: LocalNode,
    config_path: PathBuf,
    child: Option<Child>,
    /// When a node that is down is due to be started again.
    restart_at: Option<tokio::time::Instant>,
}

/// Runs the local cluster until Ctrl-C. A node that exits once the cluster
/// is up is reported and started again (after `restart_after`, or on
/// SIGHUP); the others keep serving.
pub async fn run(options: RunOptions) -> Result<(), LocalClusterError> {
    let RunOptions {
        dir,
        nodes,
        base_port,
        exe,
        security,
        restart_after,
        backup,
    } = options;
    let members = plan(nodes, base_port)?;
    // Listen for Ctrl-C before any node starts, so an early one still stops them all.
    let mut interrupt = stop_signals()?;
    let mut hangup = restart_signal()?;
    std::fs::create_dir_all(&dir).map_err(io_err("cannot create", &dir))?;
    let dir = dir.canonicalize().map_err(io_err("cannot resolve", &dir))?;
    let certs = certs_dir(&dir);
    let master_keys = dir.join(MASTER_KEY_FILE);
    let access = match security {
        Security::Tls => {
            issue_local_certs(&certs, &members)?;
            if !master_keys.exists() {
                crate::crypto::MasterKeyFile::generate(&master_keys, "local-1")
                    .map_err(|e| LocalClusterError::Encode(e.to_string()))?;
            }
            Some(ClientCredentials::local(&certs))
        }
        Security::InsecureDev => None,
    };
    let mut children: Vec<Supervised> = Vec::new();
    for member in &members {
        let node_dir = dir.join(format!("node-{}", member.id));
        std::fs::create_dir_all(&node_dir).map_err(io_err("cannot create", &node_dir))?;
        let tls = access.as_ref().map(|_| node_tls(&certs, member.id));
        let mut config = node_config(member, &members, &node_dir, base_port, tls);
        if access.is_some() {
            config.encryption.master_key_file = Some(master_keys.clone());
            config.backup = backup.clone();
        }
        let config_path = node_dir.join("node.toml");
        let text = toml::to_string(&config).map_err(|e| LocalClusterError::Encode(e.to_string()))?;
        std::fs::write(&config_path, text).map_err(io_err("cannot write", &config_path))?;
        let log_path = node_dir.join("node.log");
        let child = spawn_node(&exe, &config_path, &log_path)?;
        let node = LocalNode {
            id: member.id,
            zone: member.zone.clone(),
            pid: child.id().unwrap_or(0),
            client_address: member.client_address.clone(),
            peer_address: member.peer_address.clone(),
            http_address: loopback(http_port(base_port, member.id)).to_string(),
            data_dir: node_dir.join("data"),
            log: log_path,
        };
        children.push(Supervised {
            node,
            config_path,
            child: Some(child),
            restart_at: None,
        });
    }

    let ready = tokio::select! {
        ready = wait_ready(&mut children, &dir, access.as_ref()) => ready.map(|()| true),
        _ = interrupt.recv() => Ok(false),
    };
    let api_key = match (&ready, &access) {
        (Ok(true), Some(access)) => Some(local_api_key(&dir, &children, access).await?),
        _ => None,
    };
    let outcome = match ready {
        Ok(true) => {
            let manifest = write_manifest(&dir, &children, access.as_ref())?;
            print_welcome(&children, &manifest, access.as_ref(), api_key.as_deref());
            keep_serving(
                &mut children,
                &exe,
                restart_after,
                &mut interrupt,
                &mut hangup,
                |children| write_manifest(&dir, children, access.as_ref()).map(drop),
            )
            .await
        }
        Ok(false) => Ok(()),
        Err(e) => Err(e),
    };
    println!("stopping {} nodes...", children.len());
    stop_all(&mut children).await;
    match outcome {
        Ok(()) => {
            println!("all nodes stopped; data kept in {}", dir.display());
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Starts one node process: `exe run --config CONFIG`, its output appended to `log_path`.
fn spawn_node(exe: &Path, config_path: &Path, log_path: &Path) -> Result<Child, LocalClusterError> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(io_err("cannot open", log_path))?;
    let log_err = log.try_clone().map_err(io_err("cannot open", log_path))?;
    let mut command = Command::new(exe);
    command
        .arg("run")
        .arg("--config")
        .arg(config_path)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .kill_on_drop(true);
    // SAFETY: the closure only makes one async-signal-safe system call.
    unsafe {
        // If this runner dies without stopping them, the nodes stop too.
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM).map_err(std::io::Error::from)
        });
    }
    command.spawn().map_err(io_err("cannot start", exe))
}

/// Writes `cluster.json`: every node (with its current pid) and the TLS files.
fn write_manifest(
    dir: &Path,
    children: &[Supervised],
    access: Option<&ClientCredentials>,
) -> Result<PathBuf, LocalClusterError> {
    let manifest = dir.join("cluster.json");
    let nodes_json: Vec<&LocalNode> = children.iter().map(|c| &c.node).collect();
    let text = serde_json::to_string_pretty(&serde_json::json!({ "nodes": nodes_json, "tls": access }))
        .map_err(|e| LocalClusterError::Encode(e.to_string()))?;
    // Written aside and renamed, so a reader never sees half a file.
    let partial = dir.join("cluster.json.partial");
    std::fs::write(&partial, text).map_err(io_err("cannot write", &partial))?;
    std::fs::rename(&partial, &manifest).map_err(io_err("cannot write", &manifest))?;
    Ok(manifest)
}

/// Serves until Ctrl-C: reports every node that exits, starts it again
/// when due (or on SIGHUP), and records each new pid through `record`.
async fn keep_serving(
    children: &mut [Supervised],
    exe: &Path,
    restart_after: Option<Duration>,
    interrupt: &mut tokio::sync::mpsc::Receiver<()>,
    hangup: &mut tokio::sync::mpsc::Receiver<()>,
    record: impl Fn(&[Supervised]) -> Result<(), LocalClusterError>,
) -> Result<(), LocalClusterError> {
    let runner = std::process::id();
    loop {
        let next_restart = children.iter().filter_map(|c| c.restart_at).min();
        tokio::select! {
            _ = interrupt.recv() => return Ok(()),
            (index, status) = next_exit(children) => {
                let down = &mut children[index];
                down.child = None;
                down.restart_at = restart_after.map(|delay| tokio::time::Instant::now() + delay);
                let plan = match restart_after {
                    Some(delay) => format!("restarting it in {delay:?}"),
                    None => format!("restart it with: kill -HUP {runner}"),
                };
                println!(
                    "node {} exited ({status}); the other nodes keep serving; {plan}; log {}",
                    down.node.id,
                    down.node.log.display()
                );
            }
            _ = hangup.recv() => {
                for down in children.iter_mut().filter(|c| c.child.is_none()) {
                    down.restart_at = Some(tokio::time::Instant::now());
                }
            }
            () = sleep_until(next_restart) => {}
        }
        let now = tokio::time::Instant::now();
        let mut restarted = false;
        for due in children.iter_mut().filter(|c| c.restart_at.is_some_and(|at| at <= now)) {
            due.restart_at = None;
            match spawn_node(exe, &due.config_path, &due.node.log) {
                Ok(child) => {
                    due.node.pid = child.id().unwrap_or(0);
                    due.child = Some(child);
                    restarted = true;
                    println!("node {} restarted (pid {})", due.node.id, due.node.pid);
                }
                Err(e) => println!("node {} could not be restarted: {e}", due.node.id),
            }
        }
        if restarted {
            record(children)?;
        }
    }
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The index and exit status of the next running node to exit (never, while none runs).
async fn next_exit(children: &mut [Supervised]) -> (usize, String) {
    let waits: Vec<_> = children
        .iter_mut()
        .enumerate()
        .filter_map(|(index, c)| c.child.as_mut().map(|child| (index, child)))
        .map(|(index, child)| {
            Box::pin(async move {
                let status = child.wait().await;
                (index, status.map_or_else(|e| e.to_string(), |s| s.to_string()))
            })
        })
        .collect();
    if waits.is_empty() {
        return std::future::pending().await;
    }
    futures::future::select_all(waits).await.0
}

/// SIGHUP, the request to start every node that is down.
fn restart_signal() -> Result<tokio::sync::mpsc::Receiver<()>, LocalClusterError> {
    signal_stream(&[tokio::signal::unix::SignalKind::hangup()])
}

/// Ctrl-C or SIGTERM, merged into one stream.
fn stop_signals() -> Result<tokio::sync::mpsc::Receiver<()>, LocalClusterError> {
    use tokio::signal::unix::SignalKind;
    signal_stream(&[SignalKind::interrupt(), SignalKind::terminate()])
}

/// The signals `kinds`, merged into one stream.
fn signal_stream(
    kinds: &[tokio::signal::unix::SignalKind],
) -> Result<tokio::sync::mpsc::Receiver<()>, LocalClusterError> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    for kind in kinds {
        let mut stream = tokio::signal::unix::signal(*kind).map_err(|source| LocalClusterError::Io {
            what: "cannot listen for signals",
            path: PathBuf::new(),
            source,
        })?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                let _ = tx.send(()).await;
            }
        });
    }
    Ok(rx)
}

async fn wait_ready(
    children: &mut [Supervised],
    dir: &Path,
    access: Option<&ClientCredentials>,
) -> Result<(), LocalClusterError> {
    let started = Instant::now();
    loop {
        for Supervised { node, child, .. } in children.iter_mut() {
            if let Some(Ok(Some(status))) = child.as_mut().map(Child::try_wait) {
                return Err(LocalClusterError::NodeExited {
                    id: node.id,
                    status: status.to_string(),
                    log: node.log.clone(),
                });
            }
        }
        let mut all_see_leader = true;
        for supervised in children.iter() {
            all_see_leader &= sees_leader(&supervised.node.client_address, access).await;
        }
        if all_see_leader {
            return Ok(());
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(LocalClusterError::NotReady(READY_TIMEOUT, dir.to_path_buf()));
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// What a client of the local cluster needs to connect over TLS as its operator.
#[derive(Debug, Clone, Serialize)]
pub struct ClientCredentials {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ClientCredentials {
    /// The local operator's credentials in `certs`.
    pub fn local(certs: &Path) -> Self {
        let (cert, key) = leaf_files(certs, &CertPrincipal::Operator(LOCAL_OPERATOR.to_string()));
        Self {
            ca: certs.join(CA_CERT_FILE),
            cert,
            key,
        }
    }

    fn tls_config(&self) -> Option<tonic::transport::ClientTlsConfig> {
        let ca = std::fs::read(&self.ca).ok()?;
        let cert = std::fs::read(&self.cert).ok()?;
        let key = std::fs::read(&self.key).ok()?;
        let tls = safekeep_api::tls::ClientTls {
            ca_pem: &ca,
            identity: Some((&cert, &key)),
            server_name: None,
        };
        Some(tls.config())
    }
}

async fn sees_leader(client_address: &str, access: Option<&ClientCredentials>) -> bool {
    let Some(channel) = connect(client_address, access).await else {
        return false;
    };
    let mut client = ClusterClient::new(channel);
    match client.status(StatusRequest {}).await {
        Ok(reply) => reply.get_ref().header.as_ref().is_some_and(|h| h.leader_id != 0),
        Err(_) => false,
    }
}

/// A channel to a local node's client API: TLS as the local operator, or plaintext.
async fn connect(client_address: &str, access: Option<&ClientCredentials>) -> Option<tonic::transport::Channel> {
    let endpoint = match access {
        None => tonic::transport::Endpoint::from_shared(format!("http://{client_address}")),
        Some(access) => {
            let tls = access.tls_config()?;
            tonic::transport::Endpoint::from_shared(format!("https://{client_address}"))
                .and_then(|endpoint| endpoint.tls_config(tls))
        }
    };
    endpoint.ok()?.connect().await.ok()
}

async fn stop_all(children: &mut [Supervised]) {
    for child in children.iter().filter_map(|c| c.child.as_ref()) {
        if let Some(pid) = child.id() {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
    }
    for Supervised { node, child, .. } in children.iter_mut() {
        let Some(child) = child else { continue };
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!("node {} did not stop within {STOP_TIMEOUT:?}; killing it", node.id);
                let _ = child.kill().await;
            }
        }
    }
}

/// The local tenant's admin API key: made on the first run (with the tenant),
/// kept in the cluster directory (owner-readable only) for later runs.
async fn local_api_key(
    dir: &Path,
    children: &[Supervised],
    access: &ClientCredentials,
) -> Result<PathBuf, LocalClusterError> {
    use safekeep_api::v1::admin_client::AdminClient;
    use safekeep_api::v1::{ApiKeyRole, CreateTenantRequest, IssueApiKeyRequest};
    let path = dir.join(API_KEY_FILE);
    if path.exists() {
        return Ok(path);
    }
    let failed = |e: String| LocalClusterError::Encode(format!("cannot set up tenant '{LOCAL_TENANT}': {e}"));
    let channel = connect(&children[0].node.client_address, Some(access))
        .await
        .ok_or_else(|| failed("cannot connect".into()))?;
    let mut admin = AdminClient::new(channel);
    match admin
        .create_tenant(CreateTenantRequest {
            tenant: LOCAL_TENANT.into(),
        })
        .await
    {
        Ok(_) => {}
        Err(status) if status.code() == tonic::Code::AlreadyExists => {}
        Err(status) => return Err(failed(status.message().to_string())),
    }
    let request = |label: &str| IssueApiKeyRequest {
        tenant: LOCAL_TENANT.into(),
        role: ApiKeyRole::Admin as i32,
        label: label.into(),
    };
    // The operator's key is a staff key (every record access audited); the
    // tenant issues itself its own admin key with it, as a customer would.
    let first = admin
        .issue_api_key(request("local cluster setup"))
        .await
        .map_err(|status| failed(status.message().to_string()))?
        .into_inner();
    let mut own = tonic::Request::new(request("local cluster quick start"));
    let bearer = safekeep_api::wire::bearer(&first.secret)
        .parse()
        .map_err(|_| failed("the issued key is not valid metadata".into()))?;
    own.metadata_mut().insert(safekeep_api::wire::AUTHORIZATION, bearer);
    let issued = admin
        .issue_api_key(own)
        .await
        .map_err(|status| failed(status.message().to_string()))?
        .into_inner();
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut file| writeln!(file, "{}", issued.secret))
        .map_err(io_err("cannot write", &path))?;
    Ok(path)
}

fn print_welcome(children: &[Supervised], manifest: &Path, access: Option<&ClientCredentials>, api_key: Option<&Path>) {
    let zones: Vec<&str> = children.iter().map(|c| c.node.zone.as_str()).collect();
    println!(
        "safekeep local cluster is up: {} nodes in zones {}",
        children.len(),
        zones.join(", ")
    );
    for Supervised { node, .. } in children {
        println!(
            "  node {}  zone {}  client {}  http http://{}  pid {}  log {}",
            node.id,
            node.zone,
            node.client_address,
            node.http_address,
            node.pid,
            node.log.display()
        );
    }
    let endpoints: Vec<&str> = children.iter().map(|c| c.node.client_address.as_str()).collect();
    println!("cluster manifest: {}", manifest.display());
    println!();
    match access {
        Some(access) => {
            println!("TLS is on. Connect as the local operator:");
            println!("  export SAFEKEEP_ENDPOINTS={}", endpoints.join(","));
            println!("  export SAFEKEEP_CA={}", access.ca.display());
            println!(
                "  export SAFEKEEP_CERT={} SAFEKEEP_KEY={}",
                access.cert.display(),
                access.key.display()
            );
            if let Some(api_key) = api_key {
                println!("and as tenant '{LOCAL_TENANT}' (its admin key, made on the first run):");
                println!("  export SAFEKEEP_API_KEY=$(cat {})", api_key.display());
            }
        }
        None => {
            println!("INSECURE: plaintext and unauthenticated (--insecure-dev). Connect with:");
            println!(
                "  export SAFEKEEP_ENDPOINTS={} SAFEKEEP_PLAINTEXT=1",
                endpoints.join(",")
            );
        }
    }
    println!("  safekeep --tenant acme put customers/1 '{{\"name\":\"Ada\"}}'");
    println!("  safekeep --tenant acme get customers/1");
    println!("  safekeep cluster status");
    println!("  curl http://{}/readyz", children[0].node.http_address);
    println!();
    println!(
        "A node that exits is reported and started again (now: kill -HUP {}). Press Ctrl-C to stop every node.",
        std::process::id()
    );
}
