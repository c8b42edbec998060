//! TLS on the server side of any transport: accepted connections are
//! handshaken concurrently (a slow or silent client never holds up the next),
//! each with the configuration current at that moment, so reloaded
//! certificates apply to new connections at once. A connection that fails the
//! handshake (plaintext, an unknown CA, an expired certificate) is closed; on
//! the peer channel so is one whose certificate does not name a node.
//!
//! A handshake has a deadline, and one IP address may hold only a few of the
//! handshake slots at once: a client that opens many silent connections
//! ties up its own share, not everyone's. Connections over that share are
//! closed as they arrive.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use rustls::ServerConfig;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use super::reload::LoadedTls;
use crate::identity::{CertPrincipal, principal_of};
use crate::metrics_names::{CONNECTIONS_REFUSED, TLS_HANDSHAKE_FAILURES};
use crate::transport::{Accepted, Incoming};

/// Most handshakes in progress at once per listener; further connections wait to be accepted.
pub const MAX_PENDING_HANDSHAKES: usize = 256;

/// How long, and how many at once from one address, handshakes may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeLimits {
    /// Longest a handshake may take.
    pub timeout: Duration,
    /// Most handshakes in progress from one IP address.
    pub per_address: usize,
}

/// Handshakes in progress by IP address.
#[derive(Default)]
struct InProgress(Mutex<HashMap<IpAddr, usize>>);

/// One handshake counted against its address until dropped.
struct AddressSlot {
    in_progress: Arc<InProgress>,
    address: IpAddr,
}

impl InProgress {
    fn take(self: &Arc<Self>, address: IpAddr, most: usize) -> Option<AddressSlot> {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(address).or_default();
        if *count >= most {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            in_progress: self.clone(),
            address,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.in_progress.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

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
pub fn tls_incoming(
    mut inner: Incoming,
    tls: watch::Receiver<Arc<LoadedTls>>,
    listener: Listener,
    limits: HandshakeLimits,
) -> Incoming {
    let (accepted_tx, accepted_rx) = mpsc::channel(MAX_PENDING_HANDSHAKES);
    let permits = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    let in_progress = Arc::new(InProgress::default());
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
            // Counted against its address before it may wait for a shared slot.
            let address_slot = match connection.remote() {
                None => None,
                Some(address) => match in_progress.take(address, limits.per_address) {
                    Some(slot) => Some(slot),
                    None => {
                        metrics::counter!(CONNECTIONS_REFUSED, "listener" => listener.name(), "reason" => "handshakes_per_address")
                            .increment(1);
                        continue;
                    }
                },
            };
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let acceptor = TlsAcceptor::from(listener.config(&tls.borrow()));
            let accepted_tx = accepted_tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let accepted = handshake(acceptor, connection, listener, limits.timeout).await;
                drop(address_slot);
                if let Some(accepted) = accepted {
                    let _ = accepted_tx.send(Ok(accepted)).await;
                }
            });
        }
    });
    ReceiverStream::new(accepted_rx).boxed()
}

async fn handshake(
    acceptor: TlsAcceptor,
    connection: Accepted,
    listener: Listener,
    timeout: Duration,
) -> Option<Accepted> {
    let remote = connection.remote();
    let failed = |reason: &str| {
        metrics::counter!(TLS_HANDSHAKE_FAILURES, "listener" => listener.name()).increment(1);
        match listener {
            Listener::Peer => tracing::warn!(listener = listener.name(), reason, "peer connection refused"),
            Listener::ClientApi => tracing::debug!(listener = listener.name(), reason, "client connection refused"),
        }
    };
    let stream = match tokio::time::timeout(timeout, acceptor.accept(connection)).await {
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
    Some(Accepted::wrapped(stream, principal, remote))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_holds_only_its_share_of_handshakes() {
        let in_progress = Arc::new(InProgress::default());
        let noisy: IpAddr = "10.0.0.1".parse().unwrap();
        let quiet: IpAddr = "10.0.0.2".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| in_progress.take(noisy, 3).unwrap()).collect();
        assert!(in_progress.take(noisy, 3).is_none(), "over its share");
        assert!(in_progress.take(quiet, 3).is_some(), "another address is unaffected");
        drop(held);
        assert!(
            in_progress.take(noisy, 3).is_some(),
            "finished handshakes free the share"
        );
        assert!(in_progress.0.lock().unwrap().len() <= 1, "idle addresses are forgotten");
    }
}
