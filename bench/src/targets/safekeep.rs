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

use nix::sys::signal::Signal;
use safekeep_client::{ApiKey, ApiKeyRole, Client, ClientConfig, ClientTls, ClusterStatus, Consistency, Error, Role};
use serde::Deserialize;

use super::certs::DevCerts;
use super::{
    CasOutcome, CatchUp, Cluster, Connection, MEMBERS, MemberIndex, OpError, Operable, REPLACEMENT_MEMBER,
    SetupContext, TargetKind,
};
use crate::error::{BenchError, io_err};
use crate::measure::{cpu_ticks, disk_bytes};
use crate::procs::{ServerProcess, poll_until, process_gone, signal};
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
/// How long a node may take to exit once killed or asked to stop.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the benchmark looks at processes and status while it waits.
const SETTLE_POLL: Duration = Duration::from_millis(100);
/// The node whose config the replacement's is made from (and whose zone it joins).
const REPLACED_NODE: u64 = 1;
/// The member the replacement joins through.
const JOIN_THROUGH: u64 = 2;

/// `cluster.json` as the local cluster writes it (fields the benchmark uses).
#[derive(Debug, Deserialize)]
struct Manifest {
    nodes: Vec<ManifestNode>,
    tls: Option<ManifestTls>,
}

#[derive(Debug, Clone, Deserialize)]
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
    /// The operator's (a client certificate with TLS): status and membership.
    operator_config: ClientConfig,
    security: Security,
    dir: PathBuf,
    /// The session's development certificates (`None` in plaintext).
    certs: Option<DevCerts>,
    node_program: PathBuf,
    base_port: u16,
    /// The member added on an empty disk, once it runs.
    replacement: Option<ServerProcess>,
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
        if let Some(target) = &ctx.settings.backup_target {
            args.extend(["--backup-target".into(), target.clone()]);
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
        let (client_config, operator_config) = match &manifest.tls {
            Some(tls) => writer_config(&endpoints, tls).await?,
            None => (ClientConfig::new(endpoints.clone()), ClientConfig::new(endpoints)),
        };
        let cluster = Self {
            supervisor,
            nodes: manifest.nodes,
            client_config,
            operator_config,
            security: ctx.settings.security,
            dir: dir.clone(),
            certs: ctx.certs.clone(),
            node_program: ctx.programs.node()?.clone(),
            base_port: ctx.settings.ports.safekeep_base(),
            replacement: None,
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

/// As the local operator: creates the benchmark's tenant and its first admin
/// key, with which the tenant issues itself a writer key (a key the operator
/// issued is a staff key, whose every access is audited: not what a tenant's
/// traffic costs). Returns the configuration workers connect with (the CA
/// and the writer key) and the operator's own.
async fn writer_config(endpoints: &[String], tls: &ManifestTls) -> Result<(ClientConfig, ClientConfig), BenchError> {
    let operator_tls = ClientTls::from_files(&tls.ca, Some((&tls.cert, &tls.key)))?;
    let operator_config = ClientConfig::new(endpoints.to_vec()).with_tls(operator_tls);
    let operator = Client::connect(operator_config.clone()).await?;
    operator.create_tenant(BENCH_TENANT).await?;
    let first_admin = operator
        .issue_api_key(BENCH_TENANT, ApiKeyRole::Admin, "safekeep-bench setup")
        .await?;
    let keyed = |secret: String| -> Result<ClientConfig, BenchError> {
        Ok(ClientConfig::new(endpoints.to_vec())
            .with_tls(ClientTls::from_files(&tls.ca, None)?)
            .with_api_key(ApiKey::new(secret)?))
    };
    let tenant_admin = Client::connect(keyed(first_admin.secret)?).await?;
    let issued = tenant_admin
        .issue_api_key(BENCH_TENANT, ApiKeyRole::Writer, "safekeep-bench")
        .await?;
    Ok((keyed(issued.secret)?, operator_config))
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
        if let Some(replacement) = self.replacement {
            replacement.stop().await;
        }
        // The local cluster stops its nodes cleanly on SIGTERM.
        self.supervisor.stop().await;
    }
}

impl SafekeepCluster {
    /// The operator's status as node `address` answers it.
    async fn status_at(&self, address: &str) -> Result<ClusterStatus, BenchError> {
        let mut config = self.operator_config.clone();
        config.endpoints = vec![address.to_string()];
        Ok(Client::connect(config).await?.status().await?)
    }

    /// The leader's own status (only the leader knows how far each member has come).
    async fn leader_status(&self) -> Result<(MemberIndex, ClusterStatus), BenchError> {
        let member = self.leader().await?;
        let status = self.status_at(&self.nodes[member].client_address).await?;
        if status.header.node_id != status.header.leader_id {
            return Err(BenchError::Setup {
                target: "safekeep",
                detail: format!("node {} no longer leads", self.nodes[member].id),
            });
        }
        Ok((member, status))
    }

    /// Waits until `pid` has exited and its supervisor has reaped it.
    async fn wait_gone(&self, pid: u32, what: &str) -> Result<(), BenchError> {
        poll_until(
            EXIT_TIMEOUT,
            SETTLE_POLL,
            || async move { Ok(process_gone(pid).then_some(())) },
            || BenchError::NotReady {
                what: format!("the exit of {what}"),
                timeout: EXIT_TIMEOUT,
                logs: self.dir.clone(),
            },
        )
        .await
    }

    /// The replacement's config: node 1's, with the replacement's id, data
    /// directory, ports and certificate, no initial members, and a `join`
    /// through another member as a learner.
    fn replacement_config(&self, node_dir: &Path) -> Result<PathBuf, BenchError> {
        let id = u64::from(REPLACEMENT_MEMBER);
        let template = self.dir.join(format!("node-{REPLACED_NODE}")).join("node.toml");
        let text = std::fs::read_to_string(&template).map_err(io_err("cannot read", &template))?;
        let malformed = |detail: String| BenchError::Malformed {
            path: template.clone(),
            detail,
        };
        let mut config: toml::Table = text.parse().map_err(|e: toml::de::Error| malformed(e.to_string()))?;
        let through = self
            .nodes
            .iter()
            .find(|n| n.id == JOIN_THROUGH)
            .ok_or_else(|| malformed(format!("no node {JOIN_THROUGH} to join through")))?;
        let join = peer_address(self.base_port, through.id);
        let port = |offset: u16| format!("127.0.0.1:{}", self.base_port + offset + REPLACEMENT_MEMBER);
        config.remove("init");
        config.insert("id".into(), toml::Value::Integer(id as i64));
        config.insert("data_dir".into(), node_dir.join("data").display().to_string().into());
        config.insert("client_listen".into(), port(0).into());
        config.insert("peer_listen".into(), port(crate::settings::SAFEKEEP_PEER_OFFSET).into());
        config.insert("http_listen".into(), port(crate::settings::SAFEKEEP_HTTP_OFFSET).into());
        config.insert("join".into(), join.into());
        config.insert("learner".into(), true.into());
        if let Some(certs) = &self.certs {
            let tls = config
                .get_mut("tls")
                .and_then(toml::Value::as_table_mut)
                .ok_or_else(|| malformed("no [tls] section".into()))?;
            let (cert, key) = certs.member(REPLACEMENT_MEMBER);
            tls.insert("cert".into(), cert.display().to_string().into());
            tls.insert("key".into(), key.display().to_string().into());
        }
        let path = node_dir.join("node.toml");
        let text = toml::to_string(&config).map_err(|e| malformed(e.to_string()))?;
        std::fs::write(&path, text).map_err(io_err("cannot write", &path))?;
        Ok(path)
    }

    fn replacement_client_address(&self) -> String {
        format!("127.0.0.1:{}", self.base_port + REPLACEMENT_MEMBER)
    }
}

/// The peer address the local cluster gives node `id`.
fn peer_address(base_port: u16, id: u64) -> String {
    format!(
        "127.0.0.1:{}",
        u64::from(base_port) + u64::from(crate::settings::SAFEKEEP_PEER_OFFSET) + id
    )
}

impl Operable for SafekeepCluster {
    async fn leader(&self) -> Result<MemberIndex, BenchError> {
        let status = Client::connect(self.operator_config.clone()).await?.status().await?;
        let leader = status.header.leader_id;
        self.nodes
            .iter()
            .position(|n| n.id == leader)
            .ok_or_else(|| BenchError::Setup {
                target: "safekeep",
                detail: format!(
                    "node {} names leader {leader}, not one of the nodes",
                    status.header.node_id
                ),
            })
    }

    async fn kill(&mut self, member: MemberIndex) -> Result<(), BenchError> {
        let node = &self.nodes[member];
        signal(node.pid, Signal::SIGKILL);
        self.wait_gone(node.pid, &format!("safekeep node {}", node.id)).await
    }

    async fn stop_members(&mut self) -> Result<(), BenchError> {
        for node in &self.nodes {
            signal(node.pid, Signal::SIGTERM);
        }
        for node in &self.nodes {
            self.wait_gone(node.pid, &format!("safekeep node {}", node.id)).await?;
        }
        Ok(())
    }

    async fn start_stopped(&mut self) -> Result<(), BenchError> {
        let before: Vec<u32> = self.nodes.iter().map(|n| n.pid).collect();
        let down: Vec<u32> = before.iter().copied().filter(|pid| process_gone(*pid)).collect();
        let pid = self.supervisor.pid().ok_or_else(|| BenchError::Exited {
            what: "safekeep local-cluster".into(),
            status: "an unknown status".into(),
            log: self.supervisor.log().to_path_buf(),
        })?;
        // The local cluster starts every node that is down again on SIGHUP.
        signal(pid, Signal::SIGHUP);
        let manifest_path = self.dir.join("cluster.json");
        let supervisor = &mut self.supervisor;
        let nodes = poll_until(
            READY_TIMEOUT,
            SETTLE_POLL,
            || {
                let found = supervisor.check_running().and_then(|()| read_manifest(&manifest_path));
                let down = &down;
                async move {
                    Ok(found?
                        .map(|m| m.nodes)
                        .filter(|nodes| nodes.iter().all(|n| !down.contains(&n.pid) && !process_gone(n.pid))))
                }
            },
            || BenchError::NotReady {
                what: "the restart of the safekeep nodes".into(),
                timeout: READY_TIMEOUT,
                logs: self.dir.clone(),
            },
        )
        .await?;
        self.nodes = nodes;
        Ok(())
    }

    async fn wait_settled(&mut self, timeout: Duration) -> Result<(), BenchError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.check_running()?;
            if let Ok((_, status)) = self.leader_status().await {
                let caught_up = self.nodes.iter().all(|node| {
                    status.members.iter().any(|m| {
                        m.id == node.id
                            && m.role == Role::Voter
                            && m.matched_index.is_some_and(|i| i >= status.committed_index)
                    })
                });
                if caught_up {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BenchError::NotReady {
                    what: "a safekeep cluster with every node caught up".into(),
                    timeout,
                    logs: self.dir.clone(),
                });
            }
            tokio::time::sleep(SETTLE_POLL).await;
        }
    }

    fn data_dirs(&self) -> Vec<PathBuf> {
        self.nodes
            .iter()
            .map(|n| self.dir.join(format!("node-{}", n.id)).join("data"))
            .collect()
    }

    async fn commit_index(&self) -> Result<u64, BenchError> {
        Ok(self.leader_status().await?.1.committed_index)
    }

    async fn add_replacement(&mut self) -> Result<(), BenchError> {
        assert!(self.replacement.is_none(), "one replacement per cluster");
        let node_dir = self.dir.join(format!("node-{REPLACEMENT_MEMBER}"));
        std::fs::create_dir_all(&node_dir).map_err(io_err("cannot create", &node_dir))?;
        let config = self.replacement_config(&node_dir)?;
        // As the operator does: add it, then start it; it joins as the learner it was added as.
        let zone = self
            .nodes
            .iter()
            .find(|n| n.id == REPLACED_NODE)
            .map(|n| n.zone.clone())
            .expect("the replaced node is one of the nodes");
        let id = u64::from(REPLACEMENT_MEMBER);
        let peer = peer_address(self.base_port, id);
        Client::connect(self.operator_config.clone())
            .await?
            .add_learner(id, &zone, &peer, &self.replacement_client_address())
            .await?;
        let args = ["run".to_string(), "--config".into(), config.display().to_string()];
        let log = node_dir.join("node.log");
        let label = format!("safekeep node {REPLACEMENT_MEMBER} (the replacement)");
        self.replacement = Some(ServerProcess::spawn(&label, &self.node_program, args, &log)?);
        Ok(())
    }

    async fn replacement_progress(&mut self) -> Result<Option<CatchUp>, BenchError> {
        let replacement = self.replacement.as_mut().expect("added before its progress is asked");
        replacement.check_running()?;
        let data = self.dir.join(format!("node-{REPLACEMENT_MEMBER}")).join("data");
        // Until it has joined and loaded the cluster's state it may not answer.
        let Ok(status) = self.status_at(&self.replacement_client_address()).await else {
            return Ok(None);
        };
        Ok(Some(CatchUp {
            applied: status.applied_index,
            disk_bytes: disk_bytes(&data),
        }))
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
