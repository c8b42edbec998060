//! A running node: its store, consensus, and the three listeners (client
//! gRPC, peer gRPC, plain HTTP). `Node::start` brings it up and into its
//! cluster; `Node::shutdown` stops it and closes its store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use safekeep_api::v1::cluster_server::ClusterServer;
use safekeep_api::v1::peer_server::PeerServer;
use safekeep_api::v1::records_server::RecordsServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{AdminService, ClusterService};
use crate::auth::{Auditor, Authenticator, TenantRateLimiter};
use crate::config::{ConfigError, NodeConfig};
use crate::crypto::{CryptoError, DataKeys};
use crate::raft::{self, BootstrapError, Consensus, RaftStartError};
use crate::records::RecordsGuard;
use crate::records::RecordsService;
use crate::records::limits::MAX_REQUEST_BYTES;
use crate::storage::{LogSync, Store, StoreCloseWatch, StoreError, UnsyncedWrites};
use crate::tls::{Listener, TlsError, tls_incoming};
use crate::transport::{Incoming, TcpTransport, Transport, tcp_incoming};
use safekeep_api::v1::admin_server::AdminServer;

/// Largest message on the peer channel.
const MAX_PEER_MESSAGE_BYTES: usize = 64 << 20;
/// Longest wait for the store to close after the node stops.
const STORE_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often shutdown checks whether the store closed.
const STORE_CLOSE_POLL: Duration = Duration::from_millis(10);

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Storage(#[from] StoreError),
    #[error(transparent)]
    Raft(#[from] RaftStartError),
    #[error("cannot listen for {what} on {address}: {source}")]
    Bind {
        what: &'static str,
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error("TLS is configured but unusable, so the node will not start: {0}")]
    Tls(#[from] TlsError),
    #[error("encryption at rest is not usable, so the node will not start: {0}")]
    Encryption(#[from] CryptoError),
    #[error("cannot build the {0} service: {1}")]
    Service(&'static str, String),
}

/// What a node serves on: client and peer connections of any transport, and
/// the plain-HTTP listener (absent in simulation).
pub struct NodeListeners {
    pub client: Incoming,
    pub peer: Incoming,
    pub http: Option<TcpListener>,
    pub client_address: SocketAddr,
    pub peer_address: SocketAddr,
}

impl NodeListeners {
    /// Binds the TCP addresses a config names.
    pub async fn bind(config: &NodeConfig) -> Result<Self, StartError> {
        async fn bind_one(what: &'static str, address: SocketAddr) -> Result<TcpListener, StartError> {
            TcpListener::bind(address)
                .await
                .map_err(|source| StartError::Bind { what, address, source })
        }
        Ok(Self::tcp(
            bind_one("the client API", config.client_listen).await?,
            bind_one("the peer channel", config.peer_listen).await?,
            bind_one("HTTP health and metrics", config.http_listen).await?,
        ))
    }

    /// Serves on TCP listeners the caller bound.
    pub fn tcp(client: TcpListener, peer: TcpListener, http: TcpListener) -> Self {
        let address = |l: &TcpListener| l.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        Self {
            client_address: address(&client),
            peer_address: address(&peer),
            client: tcp_incoming(client),
            peer: tcp_incoming(peer),
            http: Some(http),
        }
    }
}

/// How a node reaches the outside world: its transport, how its log syncs,
/// and, under simulation, its random seed and a record of unsynced writes.
#[derive(Clone)]
pub struct NodeEnvironment {
    pub transport: Arc<dyn Transport>,
    pub log_sync: LogSync,
    /// Seed of openraft's random draws (election timeouts); random when absent.
    pub rng_seed: Option<u64>,
    /// Records unsynced writes so a simulated power loss can drop them.
    pub unsynced_writes: Option<Arc<UnsyncedWrites>>,
    /// The wall clock stamped on proposals: the system's, or simulated time.
    pub wall_clock: WallClock,
}

/// Reads the wall clock; a plain function so the simulation can pass its own.
pub type WallClock = fn() -> std::time::SystemTime;

fn wall_clock_nanos(clock: WallClock) -> u64 {
    let since_epoch = clock().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
}

impl Default for NodeEnvironment {
    fn default() -> Self {
        Self {
            transport: Arc::new(TcpTransport),
            log_sync: LogSync::GroupCommit,
            rng_seed: None,
            unsynced_writes: None,
            wall_clock: std::time::SystemTime::now,
        }
    }
}

/// A running node.
pub struct Node {
    config: NodeConfig,
    consensus: Consensus,
    stop: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
    store_closed: StoreCloseWatch,
    client_address: SocketAddr,
    peer_address: SocketAddr,
    http_address: Option<SocketAddr>,
}

/// Waits (bounded) until every handle on the store is gone and it closed.
async fn wait_for_store_close(node_id: u64, store_closed: &StoreCloseWatch) {
    let started = Instant::now();
    while !store_closed.is_closed() {
        if started.elapsed() > STORE_CLOSE_TIMEOUT {
            tracing::warn!(node = node_id, "store still open after shutdown");
            return;
        }
        tokio::time::sleep(STORE_CLOSE_POLL).await;
    }
}

/// Appends every certificate reload of this node to the audit log.
fn audit_certificate_reloads(
    node_id: u64,
    mut tls: watch::Receiver<Arc<crate::tls::LoadedTls>>,
    auditor: Auditor,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while tls.changed().await.is_ok() {
            let not_after = tls.borrow_and_update().not_after_unix;
            let event = crate::auth::audit::event(
                &format!("node:{node_id}"),
                "certificates-reloaded",
                "",
                &format!("new certificate valid until unix {not_after}"),
                None,
            );
            auditor.record_best_effort("", event).await;
        }
    })
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

impl Node {
    /// Binds the configured addresses and starts the node.
    pub async fn start(config: NodeConfig) -> Result<Self, StartError> {
        config.validate()?;
        let listeners = NodeListeners::bind(&config).await?;
        Self::start_with_listeners(config, listeners).await
    }

    /// Starts the node on listeners the caller bound.
    pub async fn start_with_listeners(config: NodeConfig, listeners: NodeListeners) -> Result<Self, StartError> {
        Self::start_in(config, listeners, NodeEnvironment::default()).await
    }

    /// Starts the node on the caller's listeners and environment (simulation uses this).
    pub async fn start_in(
        config: NodeConfig,
        listeners: NodeListeners,
        environment: NodeEnvironment,
    ) -> Result<Self, StartError> {
        config.validate()?;
        let (stop, stop_rx) = watch::channel(false);
        let tls = match &config.tls {
            Some(settings) => Some(crate::tls::reload::start(settings, config.id, stop_rx.clone())?),
            None => None,
        };
        let insecure = config.insecure_dev;
        let data_keys = match insecure {
            true => None,
            false => Some(Arc::new(DataKeys::new(crate::crypto::master::load_provider(
                &config.encryption,
            )?))),
        };
        if insecure {
            tracing::warn!(
                node = config.id,
                "INSECURE DEVELOPMENT MODE: client and peer traffic is plaintext and unauthenticated; \
                 never run this way with real data"
            );
        }
        let store = Store::open_tracked(
            &config.data_dir,
            config.id,
            &config.cluster_name,
            environment.log_sync,
            environment.unsynced_writes.clone(),
            // A seeded run (the simulation) draws a new directory's
            // incarnation from its seed and clock, so a replay matches.
            environment
                .rng_seed
                .map(|seed| seed ^ wall_clock_nanos(environment.wall_clock)),
        )?;
        let store_closed = store.close_watch();
        let rng_seed = environment.rng_seed.unwrap_or_else(rand::random);
        let (consensus, peer_service) = raft::start(&config, &store, &environment, tls.clone(), rng_seed).await?;
        drop(store);
        let had_raft_state = match raft::had_raft_state(&consensus).await {
            Ok(had) => had,
            Err(e) => {
                consensus.shutdown().await;
                return Err(e.into());
            }
        };
        if let Some(keys) = &data_keys {
            let tenants = consensus.reader().tenants().map_err(StoreError::Io)?;
            if let Err(e) = keys.check_all(&tenants) {
                consensus.shutdown().await;
                drop((consensus, peer_service));
                wait_for_store_close(config.id, &store_closed).await;
                return Err(e.into());
            }
        }
        let authenticator = Authenticator::new(consensus.clone(), !insecure);

        let (client_address, peer_address) = (listeners.client_address, listeners.peer_address);
        let http_address = listeners.http.as_ref().and_then(|l| l.local_addr().ok());
        let (client_incoming, peer_incoming) = match &tls {
            Some(tls) => (
                tls_incoming(listeners.client, tls.clone(), Listener::ClientApi),
                tls_incoming(listeners.peer, tls.clone(), Listener::Peer),
            ),
            None => (listeners.client, listeners.peer),
        };
        let mut servers = Vec::new();

        let peer_server = tonic::transport::Server::builder()
            .add_service(
                PeerServer::new(peer_service)
                    .max_decoding_message_size(MAX_PEER_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES),
            )
            .serve_with_incoming_shutdown(peer_incoming, stopped(stop_rx.clone()));
        servers.push(tokio::spawn(async move {
            if let Err(e) = peer_server.await {
                tracing::error!(error = %e, "peer server stopped");
            }
        }));

        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(safekeep_api::CLIENT_FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| StartError::Service("reflection", e.to_string()))?;
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter.set_serving::<RecordsServer<RecordsService>>().await;
        health_reporter.set_serving::<ClusterServer<ClusterService>>().await;
        health_reporter.set_serving::<AdminServer<AdminService>>().await;
        let auditor = Auditor::new(consensus.clone());
        if let Some(tls) = &tls {
            servers.push(audit_certificate_reloads(config.id, tls.clone(), auditor.clone()));
        }
        let guard = RecordsGuard {
            authenticator: authenticator.clone(),
            limiter: TenantRateLimiter::new(config.limits.tenant_requests_per_second, config.limits.tenant_burst),
            data_keys: data_keys.clone(),
            auditor: auditor.clone(),
        };
        let records = RecordsService::new(
            consensus.clone(),
            consensus.reader().clone(),
            config.limits.max_value_bytes,
            guard,
        );
        let cluster = ClusterService::new(consensus.clone(), config.zone.clone(), authenticator.clone(), auditor);
        let admin = AdminService::new(consensus.clone(), consensus.reader().clone(), authenticator, data_keys);
        let client_server = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(
                RecordsServer::new(records)
                    .max_decoding_message_size(MAX_REQUEST_BYTES)
                    .max_encoding_message_size(MAX_REQUEST_BYTES),
            )
            .add_service(ClusterServer::new(cluster))
            .add_service(AdminServer::new(admin))
            .serve_with_incoming_shutdown(client_incoming, stopped(stop_rx.clone()));
        servers.push(tokio::spawn(async move {
            if let Err(e) = client_server.await {
                tracing::error!(error = %e, "client server stopped");
            }
        }));

        if let Some(http_listener) = listeners.http {
            let router = crate::http::router(consensus.clone(), insecure);
            let http_stop = stopped(stop_rx);
            servers.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(http_listener, router)
                    .with_graceful_shutdown(http_stop)
                    .await
                {
                    tracing::error!(error = %e, "HTTP server stopped");
                }
            }));
        }

        let node = Self {
            config,
            consensus,
            stop,
            servers,
            store_closed,
            client_address,
            peer_address,
            http_address,
        };
        if let Err(e) = raft::bootstrap(&node.consensus, &node.config, had_raft_state).await {
            node.shutdown().await;
            return Err(e.into());
        }
        tracing::info!(
            node = node.config.id,
            zone = %node.config.zone,
            client = %client_address,
            peer = %peer_address,
            http = ?http_address,
            "node started"
        );
        Ok(node)
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.config.id
    }

    /// The bound client API address.
    pub fn client_address(&self) -> SocketAddr {
        self.client_address
    }

    /// The bound peer channel address.
    pub fn peer_address(&self) -> SocketAddr {
        self.peer_address
    }

    /// The bound HTTP address, if the node serves HTTP.
    pub fn http_address(&self) -> Option<SocketAddr> {
        self.http_address
    }

    /// The consensus handle (status, readiness, proposals).
    pub fn consensus(&self) -> &Consensus {
        &self.consensus
    }

    /// Stops serving, stops consensus and waits (bounded) for the store to close.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.consensus.shutdown().await;
        for server in self.servers {
            // Open client streams may keep a server alive; stop it outright.
            server.abort();
            let _ = server.await;
        }
        drop(self.consensus);
        wait_for_store_close(self.config.id, &self.store_closed).await;
        tracing::info!(node = self.config.id, "node stopped");
    }
}
