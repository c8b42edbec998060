//! A cluster of in-process nodes on loopback, each with real RocksDB in its
//! own temporary directory, for the integration tests. Timeouts are shortened
//! so elections finish quickly; every wait is a bounded poll.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use safekeep_api::v1::cluster_client::ClusterClient;
use safekeep_api::v1::records_client::RecordsClient;
use safekeep_api::v1::{Consistency, GetRequest, PutRequest, StatusRequest, StatusResponse, WriteId};
use safekeep_node::config::{InitialMember, ListenAddresses, NodeConfig, RaftSettings};
use safekeep_node::{Node, NodeEnvironment, NodeListeners};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tonic::transport::Channel;

/// Longest any test condition is waited for.
pub const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(25);

/// Fast timeouts for loopback tests.
pub fn test_raft_settings() -> RaftSettings {
    RaftSettings {
        heartbeat_ms: 50,
        election_min_ms: 300,
        election_max_ms: 600,
        leader_wait_ms: 5_000,
        join_timeout_ms: 20_000,
        ..RaftSettings::default()
    }
}

/// Polls `check` until it yields a value or `WAIT` passes.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < WAIT, "timed out after {WAIT:?} waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// Listeners for a new node's client, peer and HTTP ports, and their addresses.
pub async fn bound_listeners() -> (NodeListeners, Addresses) {
    let (client, peer, http) = (free_listener().await, free_listener().await, free_listener().await);
    let addresses = Addresses {
        client: client.local_addr().unwrap(),
        peer: peer.local_addr().unwrap(),
        http: http.local_addr().unwrap(),
    };
    (NodeListeners::tcp(client, peer, http), addresses)
}

/// The zone of node `id` in a round-robin a, b, c layout.
pub fn zone_of(id: u64) -> String {
    let zones = safekeep_node::config::LOCAL_ZONES;
    zones[((id - 1) % zones.len() as u64) as usize].to_string()
}

pub async fn free_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind loopback")
}

/// Addresses of one node.
#[derive(Clone, Debug)]
pub struct Addresses {
    pub client: SocketAddr,
    pub peer: SocketAddr,
    pub http: SocketAddr,
}

/// A test cluster.
pub struct TestCluster {
    pub dir: TempDir,
    pub nodes: BTreeMap<u64, Node>,
    pub configs: BTreeMap<u64, NodeConfig>,
    pub addresses: BTreeMap<u64, Addresses>,
    /// Development certificates, when the cluster runs TLS.
    pub certs: Option<std::path::PathBuf>,
}

/// Issues the CA, node certificates for `ids` (valid for loopback) and the
/// `admin` operator's certificate into `certs`.
#[allow(dead_code)]
pub fn issue_test_certs(certs: &std::path::Path, ids: impl IntoIterator<Item = u64>) {
    use safekeep_node::tls::CertPrincipal;
    use safekeep_node::tls::certs::{DevBundleSpec, write_dev_bundle};
    let spec = DevBundleSpec {
        nodes: ids.into_iter().collect(),
        hosts: vec!["localhost".into(), "127.0.0.1".into()],
        clients: vec![CertPrincipal::Operator("admin".into())],
        validity_days: 1,
    };
    write_dev_bundle(certs, &spec).expect("issue test certificates");
}

impl TestCluster {
    /// Starts `n` nodes (ids 1..=n, zones a, b, c) forming a new cluster.
    pub async fn start(n: u64, tweak: impl Fn(&mut NodeConfig)) -> Self {
        Self::start_with(n, false, tweak).await
    }

    /// Starts `n` nodes with TLS on the client API and mutual TLS between them.
    #[allow(dead_code)]
    pub async fn start_secure(n: u64, tweak: impl Fn(&mut NodeConfig)) -> Self {
        Self::start_with(n, true, tweak).await
    }

    /// Starts `n` nodes whose wall clock (and the rest of their environment) is `environment`'s.
    #[allow(dead_code)]
    pub async fn start_in(n: u64, environment: NodeEnvironment, tweak: impl Fn(&mut NodeConfig)) -> Self {
        Self::start_with_environment(n, false, environment, tweak).await
    }

    async fn start_with(n: u64, secure: bool, tweak: impl Fn(&mut NodeConfig)) -> Self {
        Self::start_with_environment(n, secure, NodeEnvironment::default(), tweak).await
    }

    async fn start_with_environment(
        n: u64,
        secure: bool,
        environment: NodeEnvironment,
        tweak: impl Fn(&mut NodeConfig),
    ) -> Self {
        let (mut cluster, listeners) = Self::prepare(n, secure, tweak).await;
        cluster.start_prepared(listeners, environment).await;
        cluster
    }

    /// Starts the nodes `prepare` made ready, on `listeners`.
    pub async fn start_prepared(&mut self, listeners: BTreeMap<u64, NodeListeners>, environment: NodeEnvironment) {
        // Highest ids first, so the initializing node (lowest id) finds its peers up.
        for (id, l) in listeners.into_iter().rev() {
            let node = Node::start_in(self.configs[&id].clone(), l, environment.clone())
                .await
                .expect("node starts");
            self.nodes.insert(id, node);
        }
    }

    /// Everything for `n` nodes forming a new cluster (directories,
    /// certificates, bound listeners, configs with every initial member)
    /// with no node started yet.
    pub async fn prepare(
        n: u64,
        secure: bool,
        tweak: impl Fn(&mut NodeConfig),
    ) -> (Self, BTreeMap<u64, NodeListeners>) {
        let dir = TempDir::new().expect("temp dir");
        let certs = secure.then(|| dir.path().join("certs"));
        if let Some(certs) = &certs {
            issue_test_certs(certs, 1..=n + 10);
            safekeep_node::crypto::MasterKeyFile::generate(&certs.join("master.keys"), "test-1").unwrap();
        }
        let mut listeners = BTreeMap::new();
        let mut addresses = BTreeMap::new();
        for id in 1..=n {
            let (client, peer, http) = (free_listener().await, free_listener().await, free_listener().await);
            addresses.insert(
                id,
                Addresses {
                    client: client.local_addr().unwrap(),
                    peer: peer.local_addr().unwrap(),
                    http: http.local_addr().unwrap(),
                },
            );
            listeners.insert(id, NodeListeners::tcp(client, peer, http));
        }
        let init: Vec<InitialMember> = addresses
            .iter()
            .map(|(id, a)| InitialMember {
                id: *id,
                zone: zone_of(*id),
                peer_address: a.peer.to_string(),
                client_address: a.client.to_string(),
            })
            .collect();
        let mut cluster = Self {
            dir,
            nodes: BTreeMap::new(),
            configs: BTreeMap::new(),
            addresses: addresses.clone(),
            certs,
        };
        for id in 1..=n {
            let mut config = cluster.config_for(id, &addresses[&id]);
            config.init = init.clone();
            tweak(&mut config);
            cluster.configs.insert(id, config);
        }
        (cluster, listeners)
    }

    /// A config for node `id` at `addresses`, data under the cluster's temp dir.
    pub fn config_for(&self, id: u64, addresses: &Addresses) -> NodeConfig {
        let listen = ListenAddresses {
            client: addresses.client,
            peer: addresses.peer,
            http: addresses.http,
        };
        NodeConfig {
            cluster_name: "test".into(),
            tls: self
                .certs
                .as_ref()
                .map(|certs| safekeep_node::local_cluster::node_tls(certs, id)),
            insecure_dev: self.certs.is_none(),
            encryption: safekeep_node::config::EncryptionSettings {
                master_key_file: self.certs.as_ref().map(|certs| certs.join("master.keys")),
                ..Default::default()
            },
            raft: test_raft_settings(),
            ..NodeConfig::new(id, zone_of(id), self.dir.path().join(format!("node-{id}")), listen)
        }
    }

    /// Adds node `id` in `zone` that joins through `seed`'s peer address.
    pub async fn join(&mut self, id: u64, zone: &str, seed: u64, tweak: impl Fn(&mut NodeConfig)) {
        let (listeners, addresses) = bound_listeners().await;
        let mut config = self.config_for(id, &addresses);
        config.zone = zone.to_string();
        config.join = Some(self.addresses[&seed].peer.to_string());
        tweak(&mut config);
        let node = Node::start_with_listeners(config.clone(), listeners)
            .await
            .expect("joining node starts");
        self.nodes.insert(id, node);
        self.configs.insert(id, config);
        self.addresses.insert(id, addresses);
    }

    /// Stops node `id` (its data stays on disk).
    pub async fn stop(&mut self, id: u64) {
        if let Some(node) = self.nodes.remove(&id) {
            node.shutdown().await;
        }
    }

    /// Starts node `id` again from its data on the same addresses.
    pub async fn restart(&mut self, id: u64) {
        let config = self.configs[&id].clone();
        let a = &self.addresses[&id];
        let listeners = NodeListeners::tcp(
            TcpListener::bind(a.client).await.expect("rebind client"),
            TcpListener::bind(a.peer).await.expect("rebind peer"),
            TcpListener::bind(a.http).await.expect("rebind http"),
        );
        let node = Node::start_with_listeners(config, listeners)
            .await
            .expect("node restarts");
        self.nodes.insert(id, node);
    }

    /// The id of the leader all running nodes agree on.
    pub async fn leader(&self) -> u64 {
        eventually("an agreed leader", || async {
            let mut leaders = self.nodes.values().map(|n| n.consensus().view().leader_id);
            let first = leaders.next()??;
            let agreed = leaders.all(|l| l == Some(first));
            (agreed && self.nodes.contains_key(&first)).then_some(first)
        })
        .await
    }

    /// A channel to node `id`'s client API: TLS as the `admin` operator when the cluster is secure.
    pub async fn channel(&self, id: u64) -> Channel {
        let address = self.addresses[&id].client;
        match &self.certs {
            None => tonic::transport::Endpoint::from_shared(format!("http://{address}"))
                .unwrap()
                .connect()
                .await
                .expect("connect"),
            Some(certs) => tls_channel(&address.to_string(), &TlsFiles::operator(certs))
                .await
                .expect("connect over TLS"),
        }
    }

    /// Creates `tenant` (if new) as the operator, who issues it an admin key
    /// (a staff key), with which the tenant issues itself a key with `role`;
    /// returns that key, the tenant's own.
    #[allow(dead_code)]
    pub async fn tenant_key(&self, tenant: &str, role: safekeep_api::v1::ApiKeyRole) -> String {
        use safekeep_api::v1::admin_client::AdminClient;
        use safekeep_api::v1::{CreateTenantRequest, IssueApiKeyRequest};
        let mut admin = AdminClient::new(self.channel(1).await);
        match admin.create_tenant(CreateTenantRequest { tenant: tenant.into() }).await {
            Ok(_) => {}
            Err(status) if status.code() == tonic::Code::AlreadyExists => {}
            Err(status) => panic!("create tenant {tenant}: {status}"),
        }
        let issue = |role: safekeep_api::v1::ApiKeyRole| IssueApiKeyRequest {
            tenant: tenant.into(),
            role: role as i32,
            label: "test".into(),
        };
        let staff_admin = admin
            .issue_api_key(issue(safekeep_api::v1::ApiKeyRole::Admin))
            .await
            .expect("issue the tenant's first admin key")
            .into_inner()
            .secret;
        admin
            .issue_api_key(keyed(issue(role), &staff_admin))
            .await
            .expect("issue an API key")
            .into_inner()
            .secret
    }

    /// Writes `request` through node `id` with `api_key`; returns the acknowledged version.
    #[allow(dead_code)]
    pub async fn put_keyed(&self, id: u64, api_key: &str, request: PutRequest) -> u64 {
        self.records(id)
            .await
            .put(keyed(request, api_key))
            .await
            .expect("the write is acknowledged")
            .into_inner()
            .version
    }

    /// Reads `tenant`/`key` through node `id` with `api_key`: its value and version, or the status code.
    #[allow(dead_code)]
    pub async fn read_keyed(
        &self,
        id: u64,
        api_key: &str,
        tenant: &str,
        key: &str,
    ) -> Result<(Vec<u8>, u64), tonic::Code> {
        match self.records(id).await.get(keyed(get(tenant, key), api_key)).await {
            Ok(reply) => {
                let record = reply.into_inner().record.expect("a found record has a body");
                Ok((record.value, record.version))
            }
            Err(status) => Err(status.code()),
        }
    }

    pub async fn records(&self, id: u64) -> RecordsClient<Channel> {
        RecordsClient::new(self.channel(id).await)
    }

    pub async fn cluster(&self, id: u64) -> ClusterClient<Channel> {
        ClusterClient::new(self.channel(id).await)
    }

    pub async fn status(&self, id: u64) -> StatusResponse {
        self.cluster(id)
            .await
            .status(StatusRequest {})
            .await
            .expect("status")
            .into_inner()
    }

    /// Waits until node `id` has applied at least `index`.
    pub async fn wait_applied(&self, id: u64, index: u64) {
        eventually(&format!("node {id} to apply index {index}"), || async {
            (self.nodes[&id].consensus().view().applied_index >= index).then_some(())
        })
        .await
    }

    pub async fn shutdown(mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}

/// The sum of every series of metric `name` on the `/metrics` at `http` (0 when it has none yet).
pub async fn metric_sum(http: SocketAddr, name: &str) -> f64 {
    let text = reqwest::get(format!("http://{http}/metrics"))
        .await
        .expect("scrape /metrics")
        .text()
        .await
        .expect("read /metrics");
    text.lines()
        .filter(|line| line.split(['{', ' ']).next() == Some(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A put request with a write id.
pub fn put(tenant: &str, key: &str, value: &[u8], client: &str, request_id: u64) -> PutRequest {
    PutRequest {
        ttl_seconds: None,
        tenant: tenant.into(),
        key: key.into(),
        value: value.to_vec(),
        expected_version: None,
        write_id: Some(WriteId {
            client_id: client.into(),
            request_id,
            first_incomplete: 0,
        }),
    }
}

/// A linearizable get request.
pub fn get(tenant: &str, key: &str) -> GetRequest {
    GetRequest {
        tenant: tenant.into(),
        key: key.into(),
        consistency: Consistency::Linearizable as i32,
    }
}

/// A stale (local replica) get request.
pub fn get_stale(tenant: &str, key: &str) -> GetRequest {
    GetRequest {
        tenant: tenant.into(),
        key: key.into(),
        consistency: Consistency::Stale as i32,
    }
}

/// Puts until acknowledged (retrying retryable failures with the same write id), returning the version.
pub async fn put_acked(client: &mut RecordsClient<Channel>, request: PutRequest) -> u64 {
    eventually("an acknowledged put", || {
        let mut client = client.clone();
        let request = request.clone();
        async move {
            match client.put(request).await {
                Ok(reply) => Some(reply.into_inner().version),
                Err(status) if status.code() == tonic::Code::Unavailable => None,
                Err(status) => panic!("put failed: {status}"),
            }
        }
    })
    .await
}

/// Free base port for the three nodes (client BASE+id, peer BASE+100+id, HTTP BASE+200+id).
/// Each call starts its search elsewhere (by process and call), so tests
/// running side by side do not pick the same range.
pub fn free_base_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id()
        .wrapping_mul(7)
        .wrapping_add(CALLS.fetch_add(1, Ordering::SeqCst) * 13)
        % 40;
    for step in 0..40u32 {
        // Below the ephemeral range (32768 and up), where outgoing connections take ports.
        let base = 20_000 + ((start + step) % 40) as u16 * 300;
        let ports = (1..=3).flat_map(|i| [base + i, base + 100 + i, base + 200 + i]);
        if ports
            .into_iter()
            .all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        {
            return base;
        }
    }
    panic!("no free port range on loopback");
}

/// What a test client trusts and, optionally, presents over TLS.
#[allow(dead_code)]
pub struct TlsFiles {
    pub ca: std::path::PathBuf,
    pub identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl TlsFiles {
    /// The `admin` operator's files in a test certificate directory.
    pub fn operator(certs: &std::path::Path) -> Self {
        let credentials = safekeep_node::local_cluster::ClientCredentials::local(certs);
        Self {
            ca: credentials.ca,
            identity: Some((credentials.cert, credentials.key)),
        }
    }
}

/// A TLS channel to a client API at `address` (`host:port`), connected now.
#[allow(dead_code)]
pub async fn tls_channel(address: &str, files: &TlsFiles) -> Result<Channel, tonic::transport::Error> {
    use tonic::transport::Endpoint;
    let ca = std::fs::read(&files.ca).unwrap();
    let identity = files
        .identity
        .as_ref()
        .map(|(cert, key)| (std::fs::read(cert).unwrap(), std::fs::read(key).unwrap()));
    let tls = safekeep_api::tls::ClientTls {
        ca_pem: &ca,
        identity: identity.as_ref().map(|(cert, key)| (cert.as_slice(), key.as_slice())),
        server_name: None,
    };
    Endpoint::from_shared(format!("https://{address}"))?
        .tls_config(tls.config())?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

/// `message` as a request presenting API key `key`.
#[allow(dead_code)]
pub fn keyed<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        safekeep_api::wire::AUTHORIZATION,
        safekeep_api::wire::bearer(key).parse().unwrap(),
    );
    request
}

/// Starts a `safekeep-node run` process for `config`, logging to `log` at `log_filter`.
#[allow(dead_code)]
pub fn spawn_node(config: &std::path::Path, log: &std::path::Path, log_filter: &str) -> tokio::process::Child {
    let log = std::fs::File::create(log).unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_safekeep-node"))
        .args(["--log", log_filter, "run", "--config"])
        .arg(config)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start node process")
}

/// Issues support principal `name` a client certificate from the test CA in `certs`.
#[allow(dead_code)]
pub fn support_files(certs: &std::path::Path, name: &str) -> TlsFiles {
    use safekeep_node::tls::CertPrincipal;
    use safekeep_node::tls::certs::{CertAuthority, LeafSpec, Validity, write_leaf};
    let ca = CertAuthority::read(certs).unwrap().expect("the test CA");
    let support = CertPrincipal::Support(name.into());
    let issued = ca
        .issue(&LeafSpec::client(support.clone(), Validity::days_from_now(1)))
        .unwrap();
    let (cert, key) = write_leaf(certs, &support, &issued).unwrap();
    TlsFiles {
        ca: certs.join("ca.pem"),
        identity: Some((cert, key)),
    }
}

/// Column families of a node's RocksDB.
#[allow(dead_code)]
pub const COLUMN_FAMILIES: [&str; 3] = ["meta", "log", "sm"];

/// Opens the RocksDB of a stopped node whose data directory is `data_dir`.
#[allow(dead_code)]
pub fn open_stopped_db(data_dir: &std::path::Path) -> rocksdb::DB {
    rocksdb::DB::open_cf(&rocksdb::Options::default(), data_dir.join("db"), COLUMN_FAMILIES)
        .expect("open the stopped node's RocksDB")
}

/// The RocksDB key of record `key` of `tenant` (the layout in storage/keys.rs).
#[allow(dead_code)]
pub fn record_storage_key(tenant: &str, key: &str) -> Vec<u8> {
    let mut out = vec![0x01];
    out.extend_from_slice(&(tenant.len() as u16).to_be_bytes());
    out.extend_from_slice(tenant.as_bytes());
    out.extend_from_slice(key.as_bytes());
    out
}

/// An SDK client as the `admin` operator, through the given nodes only.
#[allow(dead_code)]
pub async fn operator_sdk(cluster: &TestCluster, nodes: &[u64]) -> safekeep_client::Client {
    use safekeep_client::{Client, ClientConfig, ClientTls};
    let certs = cluster.certs.as_ref().expect("a secure cluster");
    let files = TlsFiles::operator(certs);
    let (cert, key) = files.identity.unwrap();
    let tls = ClientTls::from_files(&files.ca, Some((&cert, &key))).unwrap();
    let endpoints: Vec<String> = nodes
        .iter()
        .map(|id| cluster.addresses[id].client.to_string())
        .collect();
    Client::connect(ClientConfig::new(endpoints).with_tls(tls))
        .await
        .unwrap()
}

/// Environment variable naming the S3-compatible server the S3 tests use
/// (`scripts/check-kms.sh` starts one on loopback and sets it).
pub const S3_ENDPOINT_ENV: &str = "SAFEKEEP_TEST_S3_ENDPOINT";

/// Makes a bucket of its own on the test S3 server (which accepts unsigned
/// requests) named `prefix-<pid>`; returns its name and the settings that reach it.
pub async fn s3_test_bucket(prefix: &str) -> (String, safekeep_node::config::S3Settings) {
    let endpoint = std::env::var(S3_ENDPOINT_ENV)
        .unwrap_or_else(|_| panic!("{S3_ENDPOINT_ENV} must name the S3-compatible server"));
    let bucket = format!("{prefix}-{}", std::process::id());
    let created = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .expect("the S3 server answers");
    assert!(
        created.status().is_success(),
        "creating bucket {bucket}: {}",
        created.status()
    );
    let settings = safekeep_node::config::S3Settings {
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint),
    };
    (bucket, settings)
}
