//! The node's servers, assembled from its services: the peer channel (Raft
//! and forwarded requests), the client API (records, cluster, admin, health
//! and reflection), and plain HTTP (health and metrics). Each server runs
//! as its own task until the node's stop signal.

use crate::backup::BackupAccess;
use std::sync::Arc;
use std::time::Duration;

use safekeep_api::v1::admin_server::AdminServer;
use safekeep_api::v1::cluster_server::ClusterServer;
use safekeep_api::v1::peer_server::PeerServer;
use safekeep_api::v1::records_server::RecordsServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;

use crate::admin::{AdminService, ClusterService};
use crate::auth::{Auditor, Authenticator, TenantRateLimiter};
use crate::config::{LimitSettings, NodeConfig};
use crate::crypto::DataKeys;
use crate::model::limits::MAX_REQUEST_BYTES;
use crate::raft::{Consensus, PeerService};
use crate::records::{RecordsGuard, RecordsService};
use crate::transport::Incoming;

/// Largest message on the peer channel.
const MAX_PEER_MESSAGE_BYTES: usize = 64 << 20;

/// The services of the client API.
pub struct ClientServices {
    records: RecordsService,
    cluster: ClusterService,
    admin: AdminService,
    /// Checks a records call's credentials before its body is decoded.
    precheck: Authenticator,
}

impl ClientServices {
    /// The client API's services over one consensus handle, sharing one
    /// authenticator, auditor and set of data keys.
    pub fn assemble(
        config: &NodeConfig,
        consensus: &Consensus,
        authenticator: Authenticator,
        auditor: Auditor,
        data_keys: Option<Arc<DataKeys>>,
        backups: Option<BackupAccess>,
    ) -> Self {
        let precheck = authenticator.clone();
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
        let cluster = ClusterService::new(
            consensus.clone(),
            config.zone.clone(),
            authenticator.clone(),
            auditor,
            backups,
        );
        let admin = AdminService::new(consensus.clone(), consensus.reader().clone(), authenticator, data_keys);
        Self {
            records,
            cluster,
            admin,
            precheck,
        }
    }
}

/// A server with the limits both listeners share: HTTP/2 keepalive (a peer
/// that stops answering is dropped) and concurrent calls per connection.
fn limited_server(limits: &LimitSettings, max_concurrent_streams: u32) -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .max_concurrent_streams(max_concurrent_streams)
        .http2_keepalive_interval(Some(Duration::from_millis(limits.keepalive_interval_ms)))
        .http2_keepalive_timeout(Some(Duration::from_millis(limits.keepalive_timeout_ms)))
}

/// Serves the peer channel on `incoming` until `stop`.
pub fn peer(
    service: PeerService,
    incoming: Incoming,
    limits: &LimitSettings,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let server = limited_server(limits, limits.max_peer_concurrent_streams)
        .add_service(
            PeerServer::new(service)
                .max_decoding_message_size(MAX_PEER_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES),
        )
        .serve_with_incoming_shutdown(incoming, stopped(stop));
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "peer server stopped");
        }
    })
}

/// Serves the client API on `incoming` until `stop`, with gRPC health and
/// server reflection beside the services; fails only if reflection cannot
/// be built.
pub async fn clients(
    services: ClientServices,
    incoming: Incoming,
    limits: &LimitSettings,
    stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, String> {
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(safekeep_api::CLIENT_FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| e.to_string())?;
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<RecordsServer<RecordsService>>().await;
    health_reporter.set_serving::<ClusterServer<ClusterService>>().await;
    health_reporter.set_serving::<AdminServer<AdminService>>().await;
    let precheck = services.precheck;
    let records = RecordsServer::new(services.records)
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(MAX_REQUEST_BYTES);
    // Credentials that can never be valid are refused before a body of up to
    // MAX_REQUEST_BYTES is read and decoded.
    let records = InterceptedService::new(records, move |request: tonic::Request<()>| {
        precheck.precheck(&request)?;
        Ok(request)
    });
    let server = limited_server(limits, limits.max_concurrent_streams)
        .max_connection_age(Duration::from_millis(limits.max_connection_age_ms))
        // Every request's log lines (audit entries among them) carry its method.
        .trace_fn(|request| tracing::info_span!("request", method = request.uri().path()))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(records)
        .add_service(ClusterServer::new(services.cluster))
        .add_service(AdminServer::new(services.admin))
        .serve_with_incoming_shutdown(incoming, stopped(stop));
    Ok(tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "client server stopped");
        }
    }))
}

/// Serves plain HTTP on `listener` until `stop`.
pub fn http(listener: TcpListener, router: axum::Router, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(stopped(stop))
            .await
        {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    })
}

/// Resolves once the node's stop signal is raised.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
