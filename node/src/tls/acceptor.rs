//! TLS on the server side of any transport: accepted connections are
//! handshaken concurrently (a slow or silent client never holds up the next),
//! each with the configuration current at that moment, so reloaded
//! certificates apply to new connections at once. A connection that fails the
//! handshake (plaintext, an unknown CA, an expired certificate) is closed; on
//! the peer channel so is one whose certificate does not name a node.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rustls::ServerConfig;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use super::reload::LoadedTls;
use crate::identity::{CertPrincipal, principal_of};
use crate::metrics_names::TLS_HANDSHAKE_FAILURES;
use crate::transport::{Accepted, Incoming};

/// Longest a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most handshakes in progress at once per listener; further connections wait to be accepted.
pub const MAX_PENDING_HANDSHAKES: usize = 256;

/// Which listener, and what it demands of clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The client API: client certificates optional.
    ClientApi,
    /// The peer channel: a certificate naming a node is required.
    Peer,
}

impl Listener {
    fn name(self) -> &'static str {
        match self {
            Self::ClientApi => "client",
            Self::Peer => "peer",
        }
    }

    fn config(self, tls: &LoadedTls) -> Arc<ServerConfig> {
        match self {
            Self::ClientApi => tls.client_api.clone(),
            Self::Peer => tls.peer_server.clone(),
        }
    }
}

/// Wraps `inner` so that only completed TLS handshakes come out.
pub fn tls_incoming(mut inner: Incoming, tls: watch::Receiver<Arc<LoadedTls>>, listener: Listener) -> Incoming {
    let (accepted_tx, accepted_rx) = mpsc::channel(MAX_PENDING_HANDSHAKES);
    let permits = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                _ = accepted_tx.closed() => break,
                next = inner.next() => next,
            };
            let connection = match next {
                None => break,
                Some(Ok(connection)) => connection,
                Some(Err(e)) => {
                    if accepted_tx.send(Err(e)).await.is_err() {
                        break;
                    }
                    continue;
                }
            };
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let acceptor = TlsAcceptor::from(listener.config(&tls.borrow()));
            let accepted_tx = accepted_tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                if let Some(accepted) = handshake(acceptor, connection, listener).await {
                    let _ = accepted_tx.send(Ok(accepted)).await;
                }
            });
        }
    });
    ReceiverStream::new(accepted_rx).boxed()
}

async fn handshake(acceptor: TlsAcceptor, connection: Accepted, listener: Listener) -> Option<Accepted> {
    let failed = |reason: &str| {
        metrics::counter!(TLS_HANDSHAKE_FAILURES, "listener" => listener.name()).increment(1);
        match listener {
            Listener::Peer => tracing::warn!(listener = listener.name(), reason, "peer connection refused"),
            Listener::ClientApi => tracing::debug!(listener = listener.name(), reason, "client connection refused"),
        }
    };
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(connection)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            failed(&e.to_string());
            return None;
        }
        Err(_) => {
            failed("handshake timed out");
            return None;
        }
    };
    let principal = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| principal_of(leaf));
    if listener == Listener::Peer && !matches!(principal, Some(CertPrincipal::Node(_))) {
        failed("the client certificate names no node");
        return None;
    }
    Some(Accepted::authenticated(stream, principal))
}
