//! Runs a planned local cluster: writes each node's config, starts one
//! process per node with its log, waits until a leader serves, creates the
//! local tenant and its admin key, records `cluster.json`, and stops every
//! node cleanly on Ctrl-C or when one exits.

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

/// Runs the local cluster until Ctrl-C.
pub async fn run(
    dir: &Path,
    nodes: usize,
    base_port: u16,
    exe: &Path,
    security: Security,
) -> Result<(), LocalClusterError> {
    let members = plan(nodes, base_port)?;
    // Listen for Ctrl-C before any node starts, so an early one still stops them all.
    let mut interrupt = stop_signals()?;
    std::fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
    let dir = dir.canonicalize().map_err(io_err("cannot resolve", dir))?;
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
    let mut children: Vec<(LocalNode, Child)> = Vec::new();
    for member in &members {
        let node_dir = dir.join(format!("node-{}", member.id));
        std::fs::create_dir_all(&node_dir).map_err(io_err("cannot create", &node_dir))?;
        let tls = access.as_ref().map(|_| node_tls(&certs, member.id));
        let mut config = node_config(member, &members, &node_dir, base_port, tls);
        if access.is_some() {
            config.encryption.master_key_file = Some(master_keys.clone());
        }
        let config_path = node_dir.join("node.toml");
        let text = toml::to_string(&config).map_err(|e| LocalClusterError::Encode(e.to_string()))?;
        std::fs::write(&config_path, text).map_err(io_err("cannot write", &config_path))?;
        let log_path = node_dir.join("node.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err("cannot open", &log_path))?;
        let log_err = log.try_clone().map_err(io_err("cannot open", &log_path))?;
        let mut command = Command::new(exe);
        command
            .arg("run")
            .arg("--config")
            .arg(&config_path)
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
        let child = command.spawn().map_err(io_err("cannot start", exe))?;
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
        children.push((node, child));
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
            let manifest = dir.join("cluster.json");
            let nodes_json: Vec<&LocalNode> = children.iter().map(|(n, _)| n).collect();
            let text = serde_json::to_string_pretty(&serde_json::json!({ "nodes": nodes_json, "tls": access }))
                .map_err(|e| LocalClusterError::Encode(e.to_string()))?;
            std::fs::write(&manifest, text).map_err(io_err("cannot write", &manifest))?;
            print_welcome(&children, &manifest, access.as_ref(), api_key.as_deref());
            tokio::select! {
                _ = interrupt.recv() => Ok(()),
                exited = first_exit(&mut children) => Err(exited),
            }
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

/// Ctrl-C or SIGTERM, merged into one stream.
fn stop_signals() -> Result<tokio::sync::mpsc::Receiver<()>, LocalClusterError> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    for kind in [SignalKind::interrupt(), SignalKind::terminate()] {
        let mut stream = signal(kind).map_err(|source| LocalClusterError::Io {
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

async fn first_exit(children: &mut [(LocalNode, Child)]) -> LocalClusterError {
    let waits = children.iter_mut().map(|(node, child)| {
        Box::pin(async move {
            let status = child.wait().await;
            LocalClusterError::NodeExited {
                id: node.id,
                status: status.map_or_else(|e| e.to_string(), |s| s.to_string()),
                log: node.log.clone(),
            }
        })
    });
    futures::future::select_all(waits).await.0
}

async fn wait_ready(
    children: &mut [(LocalNode, Child)],
    dir: &Path,
    access: Option<&ClientCredentials>,
) -> Result<(), LocalClusterError> {
    let started = Instant::now();
    loop {
        for (node, child) in children.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(LocalClusterError::NodeExited {
                    id: node.id,
                    status: status.to_string(),
                    log: node.log.clone(),
                });
            }
        }
        let mut all_see_leader = true;
        for (node, _) in children.iter() {
            all_see_leader &= sees_leader(&node.client_address, access).await;
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

async fn stop_all(children: &mut [(LocalNode, Child)]) {
    for (_, child) in children.iter() {
        if let Some(pid) = child.id() {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
    }
    for (node, child) in children.iter_mut() {
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
    children: &[(LocalNode, Child)],
    access: &ClientCredentials,
) -> Result<PathBuf, LocalClusterError> {
    use safekeep_api::v1::admin_client::AdminClient;
    use safekeep_api::v1::{ApiKeyRole, CreateTenantRequest, IssueApiKeyRequest};
    let path = dir.join(API_KEY_FILE);
    if path.exists() {
        return Ok(path);
    }
    let failed = |e: String| LocalClusterError::Encode(format!("cannot set up tenant '{LOCAL_TENANT}': {e}"));
    let channel = connect(&children[0].0.client_address, Some(access))
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
    let issued = admin
        .issue_api_key(IssueApiKeyRequest {
            tenant: LOCAL_TENANT.into(),
            role: ApiKeyRole::Admin as i32,
            label: "local cluster quick start".into(),
        })
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

fn print_welcome(
    children: &[(LocalNode, Child)],
    manifest: &Path,
    access: Option<&ClientCredentials>,
    api_key: Option<&Path>,
) {
    let zones: Vec<&str> = children.iter().map(|(n, _)| n.zone.as_str()).collect();
    println!(
        "safekeep local cluster is up: {} nodes in zones {}",
        children.len(),
        zones.join(", ")
    );
    for (node, _) in children {
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
    let endpoints: Vec<&str> = children.iter().map(|(n, _)| n.client_address.as_str()).collect();
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
    println!("  curl http://{}/readyz", children[0].0.http_address);
    println!();
    println!("Press Ctrl-C to stop every node.");
}
