//! safekeep under test: a three-node, three-zone cluster started with
//! `safekeep-node local-cluster` (TLS, API keys and encryption at rest on,
//! unless the plaintext pair asks for `--insecure-dev`), read back from the
//! `cluster.json` it writes, and clients through the real SDK.
//!
//! With TLS, the local cluster reuses the session's development CA, and the
//! benchmark, as the cluster's operator, creates its own tenant and an API
//! key with writer rights: the workers authenticate exactly as an
//! application would. Log appends are always synced before they count;
//! safekeep has no setting that turns that off.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use safekeep_client::{ApiKey, ApiKeyRole, Client, ClientConfig, ClientTls, Consistency, Error};
use serde::Deserialize;

use super::{CasOutcome, Cluster, Connection, MEMBERS, OpError, SetupContext, TargetKind};
use crate::error::{BenchError, io_err};
use crate::measure::cpu_ticks;
use crate::procs::{ServerProcess, poll_until};
use crate::settings::Security;
use crate::workloads::Freshness;

/// The tenant the benchmark writes to.
pub const BENCH_TENANT: &str = "bench";
/// How long the local cluster may take to elect a leader and write `cluster.json`.
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How often the benchmark looks for `cluster.json`.
const READY_POLL: Duration = Duration::from_millis(200);
/// Largest `cluster.json` the benchmark reads.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// `cluster.json` as the local cluster writes it (fields the benchmark uses).
#[derive(Debug, Deserialize)]
struct Manifest {
    nodes: Vec<ManifestNode>,
    tls: Option<ManifestTls>,
}

#[derive(Debug, Deserialize)]
struct ManifestNode {
    id: u64,
    zone: String,
    pid: u32,
    client_address: String,
}

#[derive(Debug, Deserialize)]
struct ManifestTls {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// A running safekeep local cluster.
#[derive(Debug)]
pub struct SafekeepCluster {
    supervisor: ServerProcess,
    nodes: Vec<ManifestNode>,
    /// What every worker connection is made from.
    client_config: ClientConfig,
    security: Security,
    dir: PathBuf,
}

impl SafekeepCluster {
    /// Starts the local cluster in `ctx.dir`, waits for it, and sets up the benchmark's tenant.
    pub async fn start(ctx: &SetupContext) -> Result<Self, BenchError> {
        let dir = &ctx.dir;
        std::fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
        let mut args = vec![
            "local-cluster".to_string(),
            "--dir".into(),
            dir.display().to_string(),
            "--nodes".into(),
            MEMBERS.to_string(),
            "--base-port".into(),
            ctx.settings.ports.safekeep_base().to_string(),
        ];
        match (&ctx.certs, ctx.settings.security) {
            (Some(certs), Security::Tls) => {
                // The local cluster keeps a CA it finds: it issues its node
                // certificates from the session's CA.
                let own = dir.join("certs");
                std::fs::create_dir_all(&own).map_err(io_err("cannot create", &own))?;
                for (from, name) in [(certs.ca(), "ca.pem"), (certs.ca_key(), "ca.key")] {
                    let to = own.join(name);
                    std::fs::copy(&from, &to).map_err(io_err("cannot copy the CA to", &to))?;
                }
            }
            (None, Security::Plaintext) => args.push("--insecure-dev".into()),
            _ => unreachable!("certificates are made exactly when TLS is on"),
        }
        let log = dir.join("local-cluster.log");
        let mut supervisor = ServerProcess::spawn("safekeep local-cluster", ctx.programs.node()?, &args, &log)?;
        let manifest_path = dir.join("cluster.json");
        let manifest = poll_until(
            READY_TIMEOUT,
            READY_POLL,
            || {
                let found = supervisor.check_running().and_then(|()| read_manifest(&manifest_path));
                async move { found }
            },
            || BenchError::NotReady {
                what: "the safekeep local cluster".into(),
                timeout: READY_TIMEOUT,
                logs: dir.clone(),
            },
        )
        .await?;
        check_topology(&manifest, &manifest_path, ctx.settings.security)?;
        let endpoints: Vec<String> = manifest.nodes.iter().map(|n| n.client_address.clone()).collect();
        let client_config = match &manifest.tls {
            Some(tls) => writer_config(&endpoints, tls).await?,
            None => ClientConfig::new(endpoints),
        };
        let cluster = Self {
            supervisor,
            nodes: manifest.nodes,
            client_config,
            security: ctx.settings.security,
            dir: dir.clone(),
        };
        cluster.check_status().await?;
        Ok(cluster)
    }

    /// Checks, through a worker's credentials, that every node names a leader
    /// and reports the security the session asked for.
    async fn check_status(&self) -> Result<(), BenchError> {
        let client = self.connect().await?;
        let status = client.0.status().await?;
        let insecure = self.security == Security::Plaintext;
        if status.insecure != insecure || status.header.leader_id == 0 {
            return Err(BenchError::Setup {
                target: "safekeep",
                detail: format!(
                    "status says insecure={} leader={}; the session wants insecure={insecure}",
                    status.insecure, status.header.leader_id
                ),
            });
        }
        Ok(())
    }
}

/// `cluster.json`, once the local cluster has written it.
fn read_manifest(path: &Path) -> Result<Option<Manifest>, BenchError> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(None);
    };
    if meta.len() > MAX_MANIFEST_BYTES {
        return Err(BenchError::Malformed {
            path: path.to_path_buf(),
            detail: format!("larger than {MAX_MANIFEST_BYTES} bytes"),
        });
    }
    let text = std::fs::read(path).map_err(io_err("cannot read", path))?;
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| BenchError::Malformed {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
}

/// Three nodes in three zones, with TLS exactly when the session asked for it.
fn check_topology(manifest: &Manifest, path: &Path, security: Security) -> Result<(), BenchError> {
    let zones: BTreeSet<&str> = manifest.nodes.iter().map(|n| n.zone.as_str()).collect();
    let malformed = |detail: String| BenchError::Malformed {
        path: path.to_path_buf(),
        detail,
    };
    if manifest.nodes.len() != usize::from(MEMBERS) || zones.len() != usize::from(MEMBERS) {
        return Err(malformed(format!(
            "expected {MEMBERS} nodes in {MEMBERS} zones, found {} nodes in zones {zones:?}",
            manifest.nodes.len()
        )));
    }
    if let Some(node) = manifest.nodes.iter().find(|n| n.pid == 0) {
        return Err(malformed(format!("node {} has no pid", node.id)));
    }
    if manifest.tls.is_some() != (security == Security::Tls) {
        return Err(BenchError::Unfair(format!(
            "the local cluster's TLS ({}) is not what the session asked for ({security:?})",
            manifest.tls.is_some()
        )));
    }
    Ok(())
}

/// As the local operator: creates the benchmark's tenant and a writer key,
/// and returns the configuration workers connect with (the CA and that key).
async fn writer_config(endpoints: &[String], tls: &ManifestTls) -> Result<ClientConfig, BenchError> {
    let operator_tls = ClientTls::from_files(&tls.ca, Some((&tls.cert, &tls.key)))?;
    let operator = Client::connect(ClientConfig::new(endpoints.to_vec()).with_tls(operator_tls)).await?;
    operator.create_tenant(BENCH_TENANT).await?;
    let issued = operator
        .issue_api_key(BENCH_TENANT, ApiKeyRole::Writer, "safekeep-bench")
        .await?;
    let worker_tls = ClientTls::from_files(&tls.ca, None)?;
    Ok(ClientConfig::new(endpoints.to_vec())
        .with_tls(worker_tls)
        .with_api_key(ApiKey::new(issued.secret)?))
}

impl Cluster for SafekeepCluster {
    type Conn = SafekeepConn;

    fn kind(&self) -> TargetKind {
        TargetKind::Safekeep
    }

    fn server_pids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.pid).collect()
    }

    async fn connect(&self) -> Result<SafekeepConn, BenchError> {
        Ok(SafekeepConn(Client::connect(self.client_config.clone()).await?))
    }

    fn check_running(&mut self) -> Result<(), BenchError> {
        self.supervisor.check_running()?;
        match self.nodes.iter().find(|n| cpu_ticks(n.pid).is_none()) {
            Some(node) => Err(BenchError::Exited {
                what: format!("safekeep node {}", node.id),
                status: "an unknown status".into(),
                log: self.dir.join(format!("node-{}", node.id)).join("node.log"),
            }),
            None => Ok(()),
        }
    }

    fn describe(&self) -> String {
        let zones: Vec<&str> = self.nodes.iter().map(|n| n.zone.as_str()).collect();
        let security = match self.security {
            Security::Tls => "TLS with an API key (writer), AES-256-GCM encryption at rest",
            Security::Plaintext => "--insecure-dev: plaintext, no authentication, no encryption",
        };
        format!(
            "{} nodes in zones {}; {security}; every log append fsynced (not configurable)",
            self.nodes.len(),
            zones.join(", ")
        )
    }

    async fn stop(self) {
        // The local cluster stops its nodes cleanly on SIGTERM.
        self.supervisor.stop().await;
    }
}

/// One SDK client (a channel per node), shared by the workers given it.
#[derive(Debug, Clone)]
pub struct SafekeepConn(Client);

fn op_error(error: Error) -> OpError {
    OpError(error.to_string())
}

impl Connection for SafekeepConn {
    async fn put(&self, key: String, value: Vec<u8>) -> Result<u64, OpError> {
        let outcome = self.0.put(BENCH_TENANT, &key, value).await.map_err(op_error)?;
        Ok(outcome.version)
    }

    async fn get(&self, key: String, freshness: Freshness) -> Result<bool, OpError> {
        let consistency = match freshness {
            Freshness::Linearizable => Consistency::Linearizable,
            Freshness::Stale => Consistency::Stale,
        };
        let record = self
            .0
            .get_with(BENCH_TENANT, &key, consistency)
            .await
            .map_err(op_error)?;
        Ok(record.is_some())
    }

    async fn put_if_version(&self, key: String, value: Vec<u8>, expected_version: u64) -> Result<CasOutcome, OpError> {
        match self.0.put_if(BENCH_TENANT, &key, value, expected_version).await {
            Ok(outcome) => Ok(CasOutcome::Applied {
                version: outcome.version,
            }),
            Err(Error::Conflict { .. }) => Ok(CasOutcome::Conflict),
            Err(error) => Err(op_error(error)),
        }
    }
}
