//! How bytes move between nodes and clients: tokio TCP in production, and in
//! simulation whatever the harness supplies (turmoil's network) through the
//! same trait. Servers take a stream of accepted connections; clients take a
//! gRPC endpoint and get a lazily connected channel.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint};

/// Any byte stream a server can speak gRPC over.
pub trait Connection: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Connection for T {}

/// An accepted connection of any transport.
pub struct Accepted(Box<dyn Connection>);

impl Accepted {
    /// Wraps an accepted byte stream.
    pub fn new(connection: impl Connection) -> Self {
        Self(Box::new(connection))
    }
}

impl Connected for Accepted {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Accepted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Accepted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

/// The connections a server accepts.
pub type Incoming = Pin<Box<dyn Stream<Item = io::Result<Accepted>> + Send>>;

/// Accepted connections of a tokio TCP listener, with Nagle off.
pub fn tcp_incoming(listener: TcpListener) -> Incoming {
    let accepted = futures::stream::unfold(listener, |listener| async move {
        let next = listener.accept().await.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            Accepted::new(stream)
        });
        Some((next, listener))
    });
    accepted.boxed()
}

/// Makes client channels.
pub trait Transport: Send + Sync + 'static {
    /// A channel to `endpoint` that connects on first use and reconnects after a failure.
    fn channel(&self, endpoint: Endpoint) -> Channel;
}

/// Plain tokio TCP.
#[derive(Debug, Default, Clone, Copy)]
pub struct TcpTransport;

impl Transport for TcpTransport {
    fn channel(&self, endpoint: Endpoint) -> Channel {
        endpoint.tcp_nodelay(true).connect_lazy()
    }
}
