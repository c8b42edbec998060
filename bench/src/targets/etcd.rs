//! etcd under test: three `etcd` members on loopback, data directories on the
//! same filesystem as safekeep's, fsync on (etcd's default; the benchmark
//! never passes `--unsafe-no-fsync`, and checks that the WAL fsync counter
//! moves when a key is written), and with TLS, peer and client TLS with
//! client-certificate authentication from the session's development CA.
//! Clients go through the etcd-client crate, each balanced over all members;
//! health and the WAL fsync counter are read over HTTP (reqwest) from each
//! member's plain metrics port.

use std::path::{Path, PathBuf};
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, KvClient, MemberAddOptions,
    StatusResponse, TlsOptions, Txn, TxnOp,
};
use serde::Deserialize;

use super::certs::DevCerts;
use super::{
    CasOutcome, CatchUp, Cluster, Connection, MEMBERS, MemberIndex, OpError, Operable, REPLACEMENT_MEMBER,
    SetupContext, TargetKind,
};
use crate::error::{BenchError, io_err};
use crate::measure::disk_bytes;
use crate::procs::{ServerProcess, poll_until};
use crate::settings::{Ports, Security};
use crate::workloads::Freshness;

/// Backend quota: etcd's default of 2 GiB would raise a NOSPACE alarm
/// during long write runs; 8 GiB is etcd's suggested maximum.
const QUOTA_BACKEND_BYTES: u64 = 8 << 30;
/// How long the members may take to elect a leader.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often health is polled while waiting.
const READY_POLL: Duration = Duration::from_millis(200);
/// How long adding a member may be refused while the cluster is not yet healthy enough.
const MEMBER_ADD_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline of one request from a worker.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline of opening one connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Deadline of one HTTP request to a member's metrics port (the whole exchange).
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest HTTP answer read from a metrics port.
const MAX_HTTP_BYTES: usize = 16 << 20;
/// The counter of WAL fsyncs etcd exports.
const WAL_FSYNC_COUNT: &str = "etcd_disk_wal_fsync_duration_seconds_count";
/// Cluster token, so members of another session never join this one.
const CLUSTER_TOKEN: &str = "safekeep-bench";

/// A running three-member etcd cluster.
#[derive(Debug)]
pub struct EtcdCluster {
    /// The initial members in order, then the replacement once it is added.
    members: Vec<Member>,
    endpoints: Vec<String>,
    options: ConnectOptions,
    ports: Ports,
    security: Security,
    /// For the members' metrics ports: health and the WAL fsync counter.
    http: reqwest::Client,
    program: PathBuf,
    dir: PathBuf,
    certs: Option<DevCerts>,
}

/// One member: how it is started, and its process while it runs.
#[derive(Debug)]
struct Member {
    label: String,
    args: Vec<String>,
    log: PathBuf,
    process: Option<ServerProcess>,
}

impl Member {
    fn start(program: &Path, number: u16, args: Vec<String>, dir: &Path) -> Result<Self, BenchError> {
        let mut member = Self {
            label: format!("etcd member m{number}"),
            args,
            log: dir.join(format!("m{number}.log")),
            process: None,
        };
        member.spawn(program)?;
        Ok(member)
    }

    fn spawn(&mut self, program: &Path) -> Result<(), BenchError> {
        assert!(self.process.is_none(), "{} already runs", self.label);
        self.process = Some(ServerProcess::spawn(&self.label, program, &self.args, &self.log)?);
        Ok(())
    }

    fn check_running(&mut self) -> Result<(), BenchError> {
        match &mut self.process {
            Some(process) => process.check_running(),
            None => Err(BenchError::Exited {
                what: self.label.clone(),
                status: "a stop by the benchmark".into(),
                log: self.log.clone(),
            }),
        }
    }
}

/// Where a member's URLs, data and certificates are.
struct Layout<'a> {
    dir: &'a Path,
    ports: Ports,
    security: Security,
    certs: Option<&'a DevCerts>,
}

impl Layout<'_> {
    fn scheme(&self) -> &'static str {
        match self.security {
            Security::Tls => "https",
            Security::Plaintext => "http",
        }
    }

    fn peer_url(&self, m: u16) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.ports.etcd_peer(m))
    }

    fn client_url(&self, m: u16) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.ports.etcd_client(m))
    }

    fn data_dir(&self, m: u16) -> PathBuf {
        self.dir.join(format!("m{m}"))
    }

    /// `--initial-cluster`: members 1 to `last`.
    fn initial_cluster(&self, last: u16) -> String {
        let members: Vec<String> = (1..=last).map(|m| format!("m{m}={}", self.peer_url(m))).collect();
        members.join(",")
    }

    /// The command line of member `m`; `state` is `new` for the initial
    /// members, `existing` for one added later.
    fn args(&self, m: u16, initial_cluster: &str, state: &str) -> Vec<String> {
        let mut args = vec![
            format!("--name=m{m}"),
            format!("--data-dir={}", self.data_dir(m).display()),
            format!("--listen-client-urls={}", self.client_url(m)),
            format!("--advertise-client-urls={}", self.client_url(m)),
            format!("--listen-peer-urls={}", self.peer_url(m)),
            format!("--initial-advertise-peer-urls={}", self.peer_url(m)),
            format!("--initial-cluster={initial_cluster}"),
            format!("--initial-cluster-state={state}"),
            format!("--initial-cluster-token={CLUSTER_TOKEN}"),
            format!("--listen-metrics-urls=http://127.0.0.1:{}", self.ports.etcd_metrics(m)),
            format!("--quota-backend-bytes={QUOTA_BACKEND_BYTES}"),
            "--logger=zap".into(),
            "--log-outputs=stderr".into(),
        ];
        if let (Some(certs), Security::Tls) = (self.certs, self.security) {
            let (cert, key) = certs.member(m);
            let ca = certs.ca();
            args.extend([
                format!("--cert-file={}", cert.display()),
                format!("--key-file={}", key.display()),
                format!("--trusted-ca-file={}", ca.display()),
                "--client-cert-auth".into(),
                format!("--peer-cert-file={}", cert.display()),
                format!("--peer-key-file={}", key.display()),
                format!("--peer-trusted-ca-file={}", ca.display()),
                "--peer-client-cert-auth".into(),
            ]);
        }
        args
    }
}

impl EtcdCluster {
    /// Starts the members in `ctx.dir`, waits until each is healthy, and checks that writes fsync.
    pub async fn start(ctx: &SetupContext) -> Result<Self, BenchError> {
        let etcd = ctx.programs.etcd.as_ref().ok_or_else(|| BenchError::MissingProgram {
            program: "etcd".into(),
            hint: "install etcd-server (scripts/install-deps.sh)".into(),
        })?;
        let ports = ctx.settings.ports;
        let security = ctx.settings.security;
        let layout = Layout {
            dir: &ctx.dir,
            ports,
            security,
            certs: ctx.certs.as_ref(),
        };
        let initial_cluster = layout.initial_cluster(MEMBERS);
        std::fs::create_dir_all(&ctx.dir).map_err(io_err("cannot create", &ctx.dir))?;
        let mut members = Vec::new();
        for m in 1..=MEMBERS {
            let args = layout.args(m, &initial_cluster, "new");
            members.push(Member::start(etcd, m, args, &ctx.dir)?);
        }
        let mut options = ConnectOptions::new()
            .with_timeout(REQUEST_TIMEOUT)
            .with_connect_timeout(CONNECT_TIMEOUT);
        if let (Some(certs), Security::Tls) = (&ctx.certs, security) {
            let read = |path: PathBuf| std::fs::read(&path).map_err(io_err("cannot read", &path));
            let (cert, key) = certs.client();
            let tls = TlsOptions::new()
                .ca_certificate(Certificate::from_pem(read(certs.ca())?))
                .identity(Identity::from_pem(read(cert)?, read(key)?));
            options = options.with_tls(tls);
        }
        let mut cluster = Self {
            members,
            endpoints: (1..=MEMBERS).map(|m| layout.client_url(m)).collect(),
            options,
            ports,
            security,
            http: metrics_client()?,
            program: etcd.clone(),
            dir: ctx.dir.clone(),
            certs: ctx.certs.clone(),
        };
        cluster.wait_healthy(&ctx.dir).await?;
        cluster.check_fsync().await?;
        Ok(cluster)
    }

    async fn wait_healthy(&mut self, dir: &std::path::Path) -> Result<(), BenchError> {
        let ports = self.ports;
        let http = &self.http;
        let members = &mut self.members;
        poll_until(
            READY_TIMEOUT,
            READY_POLL,
            || {
                let running: Result<(), BenchError> = members.iter_mut().try_for_each(Member::check_running);
                async move {
                    running?;
                    for m in 1..=MEMBERS {
                        let healthy = http_get(http, ports.etcd_metrics(m), "/health")
                            .await
                            .is_ok_and(|body| says_healthy(&body));
                        if !healthy {
                            return Ok(None);
                        }
                    }
                    Ok(Some(()))
                }
            },
            || BenchError::NotReady {
                what: "the etcd cluster".into(),
                timeout: READY_TIMEOUT,
                logs: dir.to_path_buf(),
            },
        )
        .await
    }

    /// WAL fsyncs summed over the members.
    async fn wal_fsyncs(&self) -> Result<u64, BenchError> {
        let mut total = 0.0;
        for m in 1..=MEMBERS {
            let body = http_get(&self.http, self.ports.etcd_metrics(m), "/metrics")
                .await
                .map_err(|detail| BenchError::Setup { target: "etcd", detail })?;
            total += body
                .lines()
                .find_map(|line| line.strip_prefix(WAL_FSYNC_COUNT)?.trim().parse::<f64>().ok())
                .unwrap_or(0.0);
        }
        Ok(total as u64)
    }

    /// A write must be followed by WAL fsyncs on the members.
    async fn check_fsync(&self) -> Result<(), BenchError> {
        let before = self.wal_fsyncs().await?;
        let conn = self.connect().await?;
        conn.put("bench/fsync-probe".into(), b"probe".to_vec())
            .await
            .map_err(|e| BenchError::Setup {
                target: "etcd",
                detail: format!("the probe write failed: {e}"),
            })?;
        let after = self.wal_fsyncs().await?;
        if after <= before {
            return Err(BenchError::Unfair(format!(
                "etcd's {WAL_FSYNC_COUNT} did not grow with a write ({before} -> {after}): fsync looks off"
            )));
        }
        Ok(())
    }
}

/// The HTTP client for the members' plain metrics ports: loopback only, so
/// no proxy from the environment applies.
fn metrics_client() -> Result<reqwest::Client, BenchError> {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .no_proxy()
        .build()
        .map_err(|e| BenchError::Setup {
            target: "etcd",
            detail: format!("cannot build the HTTP client for the metrics ports: {e}"),
        })
}

/// GET `path` from a member's plain HTTP metrics port; the body, at most
/// [`MAX_HTTP_BYTES`] of it.
async fn http_get(http: &reqwest::Client, port: u16, path: &str) -> Result<String, String> {
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut response = http
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("{url}: {e}"))?;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
        if body.len() + chunk.len() > MAX_HTTP_BYTES {
            return Err(format!("{url}: the answer is larger than {MAX_HTTP_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| format!("{url}: the answer is not UTF-8"))
}

/// etcd's `/health` answer (the fields the benchmark reads).
#[derive(Debug, Deserialize)]
struct Health {
    /// `"true"` when the member has a leader and serves.
    health: String,
}

/// Whether a `/health` answer says the member is healthy.
fn says_healthy(body: &str) -> bool {
    serde_json::from_str::<Health>(body).is_ok_and(|h| h.health == "true")
}

impl Cluster for EtcdCluster {
    type Conn = EtcdConn;

    fn kind(&self) -> TargetKind {
        TargetKind::Etcd
    }

    fn server_pids(&self) -> Vec<u32> {
        self.members.iter().filter_map(|m| m.process.as_ref()?.pid()).collect()
    }

    async fn connect(&self) -> Result<EtcdConn, BenchError> {
        let client = Client::connect(&self.endpoints, Some(self.options.clone())).await?;
        Ok(EtcdConn(client.kv_client()))
    }

    fn check_running(&mut self) -> Result<(), BenchError> {
        self.members.iter_mut().try_for_each(Member::check_running)
    }

    fn describe(&self) -> String {
        let security = match self.security {
            Security::Tls => "client and peer TLS with client certificates",
            Security::Plaintext => "plaintext http",
        };
        format!(
            "{} members; {security}; no encryption at rest; WAL fsync on (checked)",
            self.members.len()
        )
    }

    async fn stop(self) {
        let running = self.members.into_iter().filter_map(|m| m.process);
        futures::future::join_all(running.map(ServerProcess::stop)).await;
    }
}

impl EtcdCluster {
    fn layout(&self) -> Layout<'_> {
        Layout {
            dir: &self.dir,
            ports: self.ports,
            security: self.security,
            certs: self.certs.as_ref(),
        }
    }

    /// A client of member `m` alone (1-based).
    async fn client_of(&self, m: u16) -> Result<Client, BenchError> {
        Ok(Client::connect([self.layout().client_url(m)], Some(self.options.clone())).await?)
    }

    /// Every initial member's status, in order.
    async fn statuses(&self) -> Result<Vec<StatusResponse>, BenchError> {
        let mut statuses = Vec::new();
        for m in 1..=MEMBERS {
            statuses.push(self.client_of(m).await?.status().await?);
        }
        Ok(statuses)
    }
}

impl Operable for EtcdCluster {
    async fn leader(&self) -> Result<MemberIndex, BenchError> {
        // Asked of a member that runs: a client balanced over all of them may
        // pick one that was just killed.
        let running = (1..=MEMBERS).find(|m| self.members[usize::from(*m) - 1].process.is_some());
        let running = running.ok_or_else(|| BenchError::Setup {
            target: "etcd",
            detail: "no member runs".into(),
        })?;
        let mut client = self.client_of(running).await?;
        let leader = client.status().await?.leader();
        let members = client.member_list().await?;
        let name = members
            .members()
            .iter()
            .find(|m| m.id() == leader)
            .map(|m| m.name().to_string())
            .ok_or_else(|| BenchError::Setup {
                target: "etcd",
                detail: format!("the leader {leader:x} is not in the member list"),
            })?;
        name.strip_prefix('m')
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=usize::from(MEMBERS)).contains(n))
            .map(|n| n - 1)
            .ok_or_else(|| BenchError::Setup {
                target: "etcd",
                detail: format!("the leader is member {name}, not one of m1..m{MEMBERS}"),
            })
    }

    async fn kill(&mut self, member: MemberIndex) -> Result<(), BenchError> {
        if let Some(process) = self.members[member].process.take() {
            process.kill().await;
        }
        Ok(())
    }

    async fn stop_members(&mut self) -> Result<(), BenchError> {
        let running = self.members.iter_mut().filter_map(|m| m.process.take());
        futures::future::join_all(running.map(ServerProcess::stop)).await;
        Ok(())
    }

    async fn start_stopped(&mut self) -> Result<(), BenchError> {
        let program = self.program.clone();
        for member in self.members.iter_mut().filter(|m| m.process.is_none()) {
            member.spawn(&program)?;
        }
        Ok(())
    }

    async fn wait_settled(&mut self, timeout: Duration) -> Result<(), BenchError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.check_running()?;
            if let Ok(statuses) = self.statuses().await {
                let committed = statuses.iter().map(StatusResponse::raft_index).max().unwrap_or(0);
                let led = statuses.iter().all(|s| s.leader() != 0);
                if led && statuses.iter().all(|s| s.raft_applied_index() >= committed) {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BenchError::NotReady {
                    what: "an etcd cluster with every member caught up".into(),
                    timeout,
                    logs: self.dir.clone(),
                });
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    fn data_dirs(&self) -> Vec<PathBuf> {
        (1..=MEMBERS).map(|m| self.layout().data_dir(m)).collect()
    }

    async fn commit_index(&self) -> Result<u64, BenchError> {
        let statuses = self.statuses().await?;
        Ok(statuses.iter().map(StatusResponse::raft_index).max().unwrap_or(0))
    }

    async fn add_replacement(&mut self) -> Result<(), BenchError> {
        assert_eq!(self.members.len(), usize::from(MEMBERS), "one replacement per cluster");
        let layout = self.layout();
        let m = REPLACEMENT_MEMBER;
        let mut client = Client::connect(&self.endpoints, Some(self.options.clone())).await?;
        // etcd refuses to add a member until every member has been connected
        // for a while ("unhealthy cluster"), as after a restart: it is asked again.
        let deadline = tokio::time::Instant::now() + MEMBER_ADD_TIMEOUT;
        loop {
            let added = client
                .member_add([layout.peer_url(m)], Some(MemberAddOptions::new().with_is_learner()))
                .await;
            match added {
                Ok(_) => break,
                Err(e) if tokio::time::Instant::now() < deadline && e.to_string().contains("unhealthy cluster") => {
                    tokio::time::sleep(READY_POLL).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let args = layout.args(m, &layout.initial_cluster(m), "existing");
        let member = Member::start(&self.program, m, args, &self.dir)?;
        self.members.push(member);
        Ok(())
    }

    async fn replacement_progress(&mut self) -> Result<Option<CatchUp>, BenchError> {
        let member = self
            .members
            .get_mut(usize::from(MEMBERS))
            .expect("added before its progress is asked");
        member.check_running()?;
        let data = self.layout().data_dir(REPLACEMENT_MEMBER);
        // Until it has its snapshot a learner may not answer.
        let status = match self.client_of(REPLACEMENT_MEMBER).await {
            Ok(mut client) => client.status().await,
            Err(_) => return Ok(None),
        };
        Ok(status.ok().map(|status| CatchUp {
            applied: status.raft_applied_index(),
            disk_bytes: disk_bytes(&data),
        }))
    }
}

/// One etcd client (balanced over every member), shared by the workers given it.
#[derive(Clone)]
pub struct EtcdConn(KvClient);

fn op_error(error: etcd_client::Error) -> OpError {
    OpError(error.to_string())
}

fn revision(header: Option<&etcd_client::ResponseHeader>) -> Result<u64, OpError> {
    let revision = header
        .map(etcd_client::ResponseHeader::revision)
        .ok_or_else(|| OpError("etcd answered without a header".into()))?;
    u64::try_from(revision).map_err(|_| OpError(format!("etcd answered revision {revision}")))
}

impl Connection for EtcdConn {
    async fn put(&self, key: String, value: Vec<u8>) -> Result<u64, OpError> {
        let response = self.0.clone().put(key, value, None).await.map_err(op_error)?;
        revision(response.header())
    }

    async fn get(&self, key: String, freshness: Freshness) -> Result<bool, OpError> {
        let options = match freshness {
            Freshness::Linearizable => None,
            Freshness::Stale => Some(GetOptions::new().with_serializable()),
        };
        let response = self.0.clone().get(key, options).await.map_err(op_error)?;
        Ok(!response.kvs().is_empty())
    }

    async fn put_if_version(&self, key: String, value: Vec<u8>, expected_version: u64) -> Result<CasOutcome, OpError> {
        let expected = i64::try_from(expected_version).map_err(|_| OpError("revision out of range".into()))?;
        let txn = Txn::new()
            .when([Compare::mod_revision(key.clone(), CompareOp::Equal, expected)])
            .and_then([TxnOp::put(key, value, None)]);
        let response = self.0.clone().txn(txn).await.map_err(op_error)?;
        if !response.succeeded() {
            return Ok(CasOutcome::Conflict);
        }
        Ok(CasOutcome::Applied {
            version: revision(response.header())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot HTTP server on loopback that answers `answer` to the first
    /// request; its port.
    async fn serve_once(answer: String) -> u16 {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 4096];
            let _ = stream.read(&mut request).await;
            stream.write_all(answer.as_bytes()).await.unwrap();
            stream.shutdown().await.unwrap();
        });
        port
    }

    #[tokio::test]
    async fn metrics_ports_are_read_over_http_and_a_failing_status_is_an_error() {
        let http = metrics_client().unwrap();
        let body = r#"{"health":"true","reason":""}"#;
        let ok = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let port = serve_once(ok).await;
        let answer = http_get(&http, port, "/health").await.unwrap();
        assert!(says_healthy(&answer), "{answer}");

        let port =
            serve_once("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into())
                .await;
        let error = http_get(&http, port, "/health").await.unwrap_err();
        assert!(error.contains("503") && error.contains("/health"), "{error}");
    }

    #[test]
    fn only_a_health_of_true_is_healthy() {
        assert!(says_healthy(r#"{"health":"true","reason":""}"#));
        assert!(!says_healthy(r#"{"health":"false","reason":"RAFT NO LEADER"}"#));
        assert!(!says_healthy("not json"));
    }
}
