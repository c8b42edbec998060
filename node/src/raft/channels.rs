//! Connections to other nodes' peer channels, one lazily connected gRPC
//! channel per address and node expected there, reused by Raft replication
//! and request forwarding. Over mutual TLS each connection checks that the
//! peer's certificate names the node expected; when the certificates are
//! rotated every channel is made anew, so callers that take a client for
//! each call move to the new certificate at their next call. Every call
//! carries a deadline and HTTP/2 keepalives detect a dead link, so a
//! connection wedged by a partition is dropped and dialed again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use safekeep_api::v1::peer_client::PeerClient;
use tonic::transport::{Channel, Endpoint};

use tokio::sync::watch;

use crate::tls::{ExpectedPeer, LoadedTls, tls_channel};
use crate::transport::Transport;

/// How long dialing a peer may take.
pub const PEER_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Interval of HTTP/2 keepalive pings on peer connections.
pub const PEER_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// How long a keepalive ping may go unanswered before the connection is dropped.
pub const PEER_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest message accepted on the peer channel (batches of log entries).
pub const MAX_PEER_MESSAGE_BYTES: usize = 64 << 20;

/// A peer address could not be turned into a gRPC endpoint.
#[derive(Debug, thiserror::Error)]
#[error("invalid peer address '{address}': {reason}")]
pub struct BadPeerAddress {
    pub address: String,
    pub reason: String,
}

/// Shared cache of peer channels, keyed by address and the node expected there.
#[derive(Clone)]
pub struct PeerChannels {
    cache: Arc<Mutex<Cache>>,
    transport: Arc<dyn Transport>,
}

struct Cache {
    /// By address, then by the node expected there.
    channels: HashMap<String, HashMap<ExpectedPeer, Channel>>,
    /// Mutual TLS in force; when it changes (rotation) every channel is dialed anew.
    tls: Option<watch::Receiver<Arc<LoadedTls>>>,
}

impl PeerChannels {
    /// Channels made by `transport`, over mutual TLS when `tls` is given.
    pub fn new(transport: Arc<dyn Transport>, tls: Option<watch::Receiver<Arc<LoadedTls>>>) -> Self {
        Self {
            cache: Arc::new(Mutex::new(Cache {
                channels: HashMap::new(),
                tls,
            })),
            transport,
        }
    }

    /// A client for the peer channel at `address` (`host:port`), where
    /// `expected` must answer. Cheap: take one for each call, so a call
    /// after a rotation uses the new certificate.
    pub fn client(&self, address: &str, expected: ExpectedPeer) -> Result<PeerClient<Channel>, BadPeerAddress> {
        let channel = self.channel(address, expected)?;
        Ok(PeerClient::new(channel)
            .max_decoding_message_size(MAX_PEER_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES))
    }

    fn channel(&self, address: &str, expected: ExpectedPeer) -> Result<Channel, BadPeerAddress> {
        let mut cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Cache { channels, tls } = &mut *cache;
        if let Some(tls) = tls.as_mut()
            && tls.has_changed().unwrap_or(false)
        {
            channels.clear();
            drop(tls.borrow_and_update());
        }
        // The common case, on every Raft call: no allocation, no TLS clone.
        if let Some(channel) = channels.get(address).and_then(|by_peer| by_peer.get(&expected)) {
            return Ok(channel.clone());
        }
        // Not marked as seen: a rotation landing just now still clears
        // every channel at the next call, this new one included.
        let tls_config = tls.as_ref().map(|tls| tls.borrow().peer_client.clone());
        // Over TLS the connector below the channel does the handshake, so
        // the channel's own URI is plain `http` either way.
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| BadPeerAddress {
                address: address.to_string(),
                reason: e.to_string(),
            })?
            .connect_timeout(PEER_CONNECT_TIMEOUT)
            .http2_keep_alive_interval(PEER_KEEPALIVE_INTERVAL)
            .keep_alive_timeout(PEER_KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        let channel = match tls_config {
            Some(tls) => tls_channel(
                self.transport.clone(),
                endpoint,
                address,
                tls.for_peer(address, expected),
            ),
            // Plaintext (development and simulation): nothing to check the peer against.
            None => self.transport.channel(endpoint),
        };
        channels
            .entry(address.to_string())
            .or_default()
            .insert(expected, channel.clone());
        Ok(channel)
    }
}
