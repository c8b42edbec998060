//! How bytes move between nodes and clients: tokio TCP in production, and in
//! simulation whatever the harness supplies (turmoil's network) through the
//! same trait. Servers take a stream of accepted connections; clients take a
//! gRPC endpoint and get a lazily connected channel, or dial a byte stream
//! to secure themselves (peer connections over TLS). A stopping node closes
//! the connections it accepted (`close_on_stop`). A listener holds at most a
//! set number of connections at once (`limit_connections`): each one keeps
//! a slot until it closes, and one arriving when none is free is closed.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint};

use crate::identity::CertPrincipal;
use crate::metrics_names::CONNECTIONS_REFUSED;

/// Any byte stream a server can speak gRPC over.
pub trait Connection: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Connection for T {}

/// Who is at the other end of a connection, as its verified TLS client
/// certificate says; `None` on plaintext connections or without a certificate.
/// Services find it in each request's extensions.
#[derive(Debug, Clone, Default)]
pub struct ConnectionIdentity(pub Option<CertPrincipal>);

impl ConnectionIdentity {
    /// The identity of the connection a request came on.
    pub fn of<T>(request: &tonic::Request<T>) -> Option<&CertPrincipal> {
        request
            .extensions()
            .get::<Self>()
            .and_then(|identity| identity.0.as_ref())
    }
}

/// Resolves once the node is stopping.
type StopSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An accepted connection of any transport.
pub struct Accepted {
    connection: Box<dyn Connection>,
    identity: ConnectionIdentity,
    /// Once this resolves, every read and write fails (see `close_on_stop`).
    stop: Option<StopSignal>,
    /// The IP address the connection came from, when the transport knows it.
    remote: Option<IpAddr>,
    /// The listener's connection slot this connection holds until it closes.
    slot: Option<OwnedSemaphorePermit>,
}

impl Accepted {
    /// Wraps an accepted byte stream whose peer is unauthenticated.
    pub fn new(connection: impl Connection) -> Self {
        Self::authenticated(connection, None)
    }

    /// Wraps a byte stream whose peer presented a verified certificate.
    pub fn authenticated(connection: impl Connection, principal: Option<CertPrincipal>) -> Self {
        Self {
            connection: Box::new(connection),
            identity: ConnectionIdentity(principal),
            stop: None,
            remote: None,
            slot: None,
        }
    }

    /// Records the IP address the connection came from.
    pub fn from_address(mut self, remote: IpAddr) -> Self {
        self.remote = Some(remote);
        self
    }

    /// The IP address the connection came from, when known.
    pub fn remote(&self) -> Option<IpAddr> {
        self.remote
    }

    /// Wraps a byte stream made from `self` (a TLS session over it): the
    /// result keeps the address, and the slot lives inside `connection`.
    pub fn wrapped(connection: impl Connection, principal: Option<CertPrincipal>, remote: Option<IpAddr>) -> Self {
        let mut wrapped = Self::authenticated(connection, principal);
        wrapped.remote = remote;
        wrapped
    }

    /// An error once the node is stopping, so the connection closes.
    fn poll_stopped(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stop.as_mut().map(|stop| stop.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the node is stopping",
            ))),
            _ => Poll::Pending,
        }
    }
}

/// The connections of `incoming`, each closed once `stop` turns true. A
/// stopped server accepts no more, but a peer may keep a connection open for
/// good (a leader's replication stream); each one holds the services, and
/// through them the store, so shutdown closes them too.
pub fn close_on_stop(incoming: Incoming, stop: watch::Receiver<bool>) -> Incoming {
    incoming
        .map(move |accepted| {
            accepted.map(|mut accepted| {
                let mut stop = stop.clone();
                accepted.stop = Some(Box::pin(async move {
                    // A dropped sender also means the node is gone.
                    let _ = stop.wait_for(|stopping| *stopping).await;
                }));
                accepted
            })
        })
        .boxed()
}

/// At most `max` connections of `incoming` open at once, each holding a slot
/// until it closes; one arriving when every slot is taken is closed at once
/// and counted under `listener`.
pub fn limit_connections(incoming: Incoming, max: usize, listener: &'static str) -> Incoming {
    let slots = Arc::new(Semaphore::new(max));
    incoming
        .filter_map(move |accepted| {
            let slots = slots.clone();
            async move {
                let mut accepted = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => return Some(Err(e)),
                };
                match slots.try_acquire_owned() {
                    Ok(slot) => {
                        accepted.slot = Some(slot);
                        Some(Ok(accepted))
                    }
                    Err(_) => {
                        metrics::counter!(CONNECTIONS_REFUSED, "listener" => listener, "reason" => "max_connections")
                            .increment(1);
                        None
                    }
                }
            }
        })
        .boxed()
}

impl Connected for Accepted {
    type ConnectInfo = ConnectionIdentity;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.identity.clone()
    }
}

impl AsyncRead for Accepted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if let Poll::Ready(stopped) = self.poll_stopped(cx) {
            return Poll::Ready(stopped);
        }
        Pin::new(&mut *self.connection).poll_read(cx, buf)
    }
}

impl AsyncWrite for Accepted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Err(stopped)) = self.poll_stopped(cx) {
            return Poll::Ready(Err(stopped));
        }
        Pin::new(&mut *self.connection).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.connection).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.connection).poll_shutdown(cx)
    }
}

/// The connections a server accepts.
pub type Incoming = Pin<Box<dyn Stream<Item = io::Result<Accepted>> + Send>>;

/// Accepted connections of a tokio TCP listener, with Nagle off.
pub fn tcp_incoming(listener: TcpListener) -> Incoming {
    let accepted = futures::stream::unfold(listener, |listener| async move {
        let next = listener.accept().await.map(|(stream, from)| {
            let _ = stream.set_nodelay(true);
            Accepted::new(stream).from_address(from.ip())
        });
        Some((next, listener))
    });
    accepted.boxed()
}

/// A byte stream being opened to another host.
pub type Dialing = Pin<Box<dyn Future<Output = io::Result<Box<dyn Connection>>> + Send>>;

/// Makes client channels and byte streams.
pub trait Transport: Send + Sync + 'static {
    /// A channel to `endpoint` that connects on first use and reconnects after a failure.
    fn channel(&self, endpoint: Endpoint) -> Channel;

    /// Opens a byte stream to `address` (`host:port`), for a caller that
    /// secures it itself before speaking gRPC over it.
    fn dial(&self, address: &str) -> Dialing;
}

/// Plain tokio TCP.
#[derive(Debug, Default, Clone, Copy)]
pub struct TcpTransport;

impl Transport for TcpTransport {
    fn channel(&self, endpoint: Endpoint) -> Channel {
        endpoint.tcp_nodelay(true).connect_lazy()
    }

    fn dial(&self, address: &str) -> Dialing {
        let address = address.to_string();
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(address).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as Box<dyn Connection>)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_listener_holds_at_most_its_connections_and_frees_a_slot_on_close() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<io::Result<Accepted>>();
        let mut limited = limit_connections(
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx).boxed(),
            2,
            "test",
        );
        let connect = || {
            let (ours, _theirs) = tokio::io::duplex(64);
            tx.send(Ok(Accepted::new(ours))).unwrap();
        };
        connect();
        connect();
        let first = limited.next().await.unwrap().unwrap();
        let _second = limited.next().await.unwrap().unwrap();
        connect(); // over the limit: closed as it arrives
        drop(first);
        connect(); // a slot is free again
        drop(tx);
        let passed: Vec<_> = limited.collect().await;
        assert_eq!(passed.len(), 1, "only the connection after a close gets through");
    }
}
