//! A running node: its store, consensus, and the three listeners (client
//! gRPC, peer gRPC, plain HTTP). `Node::start` brings it up and into its
//! cluster; `Node::shutdown` stops it and closes its store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::{Auditor, Authenticator, UnknownKeys};
use crate::backup::{BackupAccess, Shipper, Target};
use crate::config::{ConfigError, NodeConfig};
use crate::crypto::{CryptoError, DataKeys};
use crate::environment::{NodeEnvironment, wall_clock_nanos};
use crate::raft::{self, BootstrapError, Consensus, RaftStartError};
use crate::serve;
use crate::storage::{Store, StoreCloseWatch, StoreError};
use crate::tls::{HandshakeLimits, Listener, TlsError, tls_incoming};
use crate::transport::{self, Incoming, tcp_incoming};

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
    #[error("backups are configured but unusable, so the node will not start: {0}")]
    Backup(#[from] crate::backup::BackupError),
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
            false => Some(Arc::new(DataKeys::new(crate::crypto::load_provider(
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
        let unknown_keys = UnknownKeys::new(
            config.limits.unknown_key_catch_ups_per_second,
            config.limits.unknown_key_cache_entries,
        );
        let authenticator = Authenticator::new(consensus.clone(), !insecure, unknown_keys);

        let (client_address, peer_address) = (listeners.client_address, listeners.peer_address);
        let http_address = listeners.http.as_ref().and_then(|l| l.local_addr().ok());
        let limits = &config.limits;
        let client_incoming = transport::limit_connections(listeners.client, limits.max_connections, "client");
        let peer_incoming = transport::limit_connections(listeners.peer, limits.max_connections, "peer");
        let handshakes = HandshakeLimits {
            timeout: Duration::from_millis(limits.handshake_timeout_ms),
            per_address: limits.max_handshakes_per_address,
        };
        let (client_incoming, peer_incoming) = match &tls {
            Some(tls) => (
                tls_incoming(client_incoming, tls.clone(), Listener::ClientApi, handshakes),
                tls_incoming(peer_incoming, tls.clone(), Listener::Peer, handshakes),
            ),
            None => (client_incoming, peer_incoming),
        };
        let client_incoming = transport::close_on_stop(client_incoming, stop_rx.clone());
        let peer_incoming = transport::close_on_stop(peer_incoming, stop_rx.clone());
        let mut servers = vec![serve::peer(
            peer_service,
            peer_incoming,
            &config.limits,
            stop_rx.clone(),
        )];
        let auditor = Auditor::new(consensus.clone());
        if let Some(tls) = &tls {
            servers.push(audit_certificate_reloads(config.id, tls.clone(), auditor.clone()));
        }
        let mut backups = None;
        if let (Some(settings), Some(keys)) = (&config.backup, &data_keys) {
            let mut targets = vec![Target::open(&settings.target, &settings.s3)?];
            backups = Some(BackupAccess {
                target: targets[0].clone(),
                provider: keys.shared_provider(),
            });
            if let Some(copy) = &settings.copy_target {
                targets.push(Target::open(copy, &settings.s3)?);
            }
            let shipper = Shipper::new(
                settings.clone(),
                targets,
                consensus.clone(),
                keys.shared_provider(),
                config.cluster_name.clone(),
                config.data_dir.clone(),
            );
            servers.push(shipper.spawn(stop_rx.clone()));
        }
        servers.push(crate::retention::spawn(consensus.clone(), stop_rx.clone()));
        let services = serve::ClientServices::assemble(&config, &consensus, authenticator, auditor, data_keys, backups);
        servers.push(
            serve::clients(services, client_incoming, &config.limits, stop_rx.clone())
                .await
                .map_err(|e| StartError::Service("reflection", e))?,
        );
        if let Some(http_listener) = listeners.http {
            servers.push(serve::http(
                http_listener,
                crate::http::router(consensus.clone(), insecure),
                stop_rx,
            ));
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
