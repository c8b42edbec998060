//! etcd under test: three `etcd` members on loopback, data directories on the
//! same filesystem as safekeep's, fsync on (etcd's default; the benchmark
//! never passes `--unsafe-no-fsync`, and checks that the WAL fsync counter
//! moves when a key is written), and with TLS, peer and client TLS with
//! client-certificate authentication from the session's development CA.
//! Clients go through the etcd-client crate, each balanced over all members;
//! health and the WAL fsync counter are read over HTTP (reqwest) from each
//! member's plain metrics port.

use std::path::PathBuf;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, KvClient, TlsOptions, Txn, TxnOp,
};
use serde::Deserialize;

use super::{CasOutcome, Cluster, Connection, MEMBERS, OpError, SetupContext, TargetKind};
use crate::error::{BenchError, io_err};
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
    members: Vec<ServerProcess>,
    endpoints: Vec<String>,
    options: ConnectOptions,
    ports: Ports,
    security: Security,
    /// For the members' metrics ports: health and the WAL fsync counter.
    http: reqwest::Client,
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
        let scheme = match security {
            Security::Tls => "https",
            Security::Plaintext => "http",
        };
        let peer_url = |m: u16| format!("{scheme}://127.0.0.1:{}", ports.etcd_peer(m));
        let client_url = |m: u16| format!("{scheme}://127.0.0.1:{}", ports.etcd_client(m));
        let initial_cluster: Vec<String> = (1..=MEMBERS).map(|m| format!("m{m}={}", peer_url(m))).collect();
        std::fs::create_dir_all(&ctx.dir).map_err(io_err("cannot create", &ctx.dir))?;
        let mut members = Vec::new();
        for m in 1..=MEMBERS {
            let mut args = vec![
                format!("--name=m{m}"),
                format!("--data-dir={}", ctx.dir.join(format!("m{m}")).display()),
                format!("--listen-client-urls={}", client_url(m)),
                format!("--advertise-client-urls={}", client_url(m)),
                format!("--listen-peer-urls={}", peer_url(m)),
                format!("--initial-advertise-peer-urls={}", peer_url(m)),
                format!("--initial-cluster={}", initial_cluster.join(",")),
                "--initial-cluster-state=new".into(),
                format!("--initial-cluster-token={CLUSTER_TOKEN}"),
                format!("--listen-metrics-urls=http://127.0.0.1:{}", ports.etcd_metrics(m)),
                format!("--quota-backend-bytes={QUOTA_BACKEND_BYTES}"),
                "--logger=zap".into(),
                "--log-outputs=stderr".into(),
            ];
            if let (Some(certs), Security::Tls) = (&ctx.certs, security) {
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
            let log = ctx.dir.join(format!("m{m}.log"));
            members.push(ServerProcess::spawn(&format!("etcd member m{m}"), etcd, &args, &log)?);
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
            endpoints: (1..=MEMBERS).map(client_url).collect(),
            options,
            ports,
            security,
            http: metrics_client()?,
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
                let running: Result<(), BenchError> = members.iter_mut().try_for_each(ServerProcess::check_running);
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
        self.members.iter().filter_map(ServerProcess::pid).collect()
    }

    async fn connect(&self) -> Result<EtcdConn, BenchError> {
        let client = Client::connect(&self.endpoints, Some(self.options.clone())).await?;
        Ok(EtcdConn(client.kv_client()))
    }

    fn check_running(&mut self) -> Result<(), BenchError> {
        self.members.iter_mut().try_for_each(ServerProcess::check_running)
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
        futures::future::join_all(self.members.into_iter().map(ServerProcess::stop)).await;
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
