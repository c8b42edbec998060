//! Opening a mutual-TLS connection to a peer: a byte stream from the node's
//! transport, then a TLS handshake whose certificate check requires the node
//! the connection is for (`peer_identity`). tonic's own TLS settings cannot
//! carry such a check, so peer channels are built on this connector instead;
//! the channel's URI is plain `http` because the TLS is done here, below it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::codegen::Service;
use tonic::transport::{Channel, Endpoint, Uri};

use super::material::ALPN_H2;
use super::peer_identity::WrongPeer;
use crate::identity::PEER_SERVER_NAME;
use crate::transport::{Connection, Transport};

/// Why a connection to a peer could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("cannot connect to the peer at {address}: {source}")]
    Connect { address: String, source: io::Error },
    #[error(transparent)]
    WrongPeer(WrongPeer),
    #[error("TLS handshake with the peer at {address} failed: {source}")]
    Handshake { address: String, source: io::Error },
    #[error("the peer at {address} did not agree to speak HTTP/2")]
    NoHttp2 { address: String },
}

impl DialError {
    /// The identity refusal somewhere in `error`'s chain of sources, if any
    /// (a failed gRPC call on a channel built here carries it there).
    pub fn wrong_peer_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a WrongPeer> {
        let mut source = Some(error);
        while let Some(error) = source {
            if let Some(Self::WrongPeer(refusal)) = error.downcast_ref::<Self>() {
                return Some(refusal);
            }
            source = error.source();
        }
        None
    }
}

/// A lazily connected channel to `endpoint` (an `http://host:port` URI)
/// whose connections are opened by `transport` to `address` and secured
/// with `tls`.
pub fn tls_channel(
    transport: Arc<dyn Transport>,
    endpoint: Endpoint,
    address: &str,
    tls: Arc<ClientConfig>,
) -> Channel {
    endpoint.connect_with_connector_lazy(PeerConnector {
        transport,
        tls: TlsConnector::from(tls),
        address: address.to_string(),
    })
}

/// Opens one TLS connection to a peer each time it is called.
#[derive(Clone)]
struct PeerConnector {
    transport: Arc<dyn Transport>,
    tls: TlsConnector,
    address: String,
}

type Connecting = Pin<Box<dyn Future<Output = Result<TokioIo<TlsStream<Box<dyn Connection>>>, DialError>> + Send>>;

impl Service<Uri> for PeerConnector {
    type Response = TokioIo<TlsStream<Box<dyn Connection>>>;
    type Error = DialError;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    /// The URI is the channel's, made from the same address.
    fn call(&mut self, _uri: Uri) -> Self::Future {
        let dialing = self.transport.dial(&self.address);
        let tls = self.tls.clone();
        let address = self.address.clone();
        Box::pin(async move {
            let stream = dialing.await.map_err(|source| DialError::Connect {
                address: address.clone(),
                source,
            })?;
            let server_name = ServerName::try_from(PEER_SERVER_NAME).map_err(|e| DialError::Handshake {
                address: address.clone(),
                source: io::Error::new(io::ErrorKind::InvalidInput, e),
            })?;
            let stream = tls.connect(server_name, stream).await.map_err(|source| {
                match source
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    .and_then(WrongPeer::in_handshake_error)
                {
                    Some(refusal) => DialError::WrongPeer(refusal.clone()),
                    None => DialError::Handshake {
                        address: address.clone(),
                        source,
                    },
                }
            })?;
            if stream.get_ref().1.alpn_protocol() != Some(ALPN_H2) {
                return Err(DialError::NoHttp2 { address });
            }
            Ok(TokioIo::new(stream))
        })
    }
}
