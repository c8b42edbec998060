//! Connections to other nodes' peer channels, one lazily connected gRPC
//! channel per address, reused by Raft replication and request forwarding.
//! Every call carries a deadline and HTTP/2 keepalives detect a dead link, so
//! a connection wedged by a partition is dropped and dialed again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use safekeep_api::v1::peer_client::PeerClient;
use tonic::transport::{Channel, Endpoint};

use tokio::sync::watch;

use crate::tls::LoadedTls;
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

/// Shared cache of peer channels, keyed by address.
#[derive(Clone)]
pub struct PeerChannels {
    cache: Arc<Mutex<Cache>>,
    transport: Arc<dyn Transport>,
}

struct Cache {
    channels: HashMap<String, Channel>,
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

    /// A client for the peer channel at `address` (`host:port`).
    pub fn client(&self, address: &str) -> Result<PeerClient<Channel>, BadPeerAddress> {
        let channel = self.channel(address)?;
        Ok(PeerClient::new(channel)
            .max_decoding_message_size(MAX_PEER_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES))
    }

    fn channel(&self, address: &str) -> Result<Channel, BadPeerAddress> {
        let mut cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Cache { channels, tls } = &mut *cache;
        let tls_config = match tls {
            Some(tls) => {
                if tls.has_changed().unwrap_or(false) {
                    channels.clear();
                }
                Some(tls.borrow_and_update().peer_client.clone())
            }
            None => None,
        };
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        let bad = |e: tonic::transport::Error| BadPeerAddress {
            address: address.to_string(),
            reason: e.to_string(),
        };
        let scheme = if tls_config.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}")).map_err(bad)?;
        if let Some(tls_config) = tls_config {
            endpoint = endpoint.tls_config(tls_config).map_err(bad)?;
        }
        let endpoint = endpoint
            .connect_timeout(PEER_CONNECT_TIMEOUT)
            .http2_keep_alive_interval(PEER_KEEPALIVE_INTERVAL)
            .keep_alive_timeout(PEER_KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        let channel = self.transport.channel(endpoint);
        channels.insert(address.to_string(), channel.clone());
        Ok(channel)
    }
}
