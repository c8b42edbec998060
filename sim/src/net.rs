//! safekeep's transport over turmoil's simulated network: node servers accept
//! on turmoil listeners, and every gRPC channel (peers and clients) connects
//! through turmoil's TCP, so partitions, latency and loss apply to it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use futures::StreamExt;
use hyper_util::rt::TokioIo;
use safekeep_node::transport::{Accepted, Connection, Dialing, Incoming, Transport};
use tonic::transport::{Channel, Endpoint, Uri};

/// Port of every node's client API inside the simulation.
pub const CLIENT_PORT: u16 = 7101;
/// Port of every node's peer channel inside the simulation.
pub const PEER_PORT: u16 = 7201;

/// Connects channels through turmoil's network.
#[derive(Debug, Default, Clone, Copy)]
pub struct TurmoilTransport;

impl Transport for TurmoilTransport {
    fn channel(&self, endpoint: Endpoint) -> Channel {
        endpoint.connect_with_connector_lazy(tower::service_fn(|uri: Uri| async move {
            let authority = uri
                .authority()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "address without host:port"))?;
            let stream = turmoil::net::TcpStream::connect(authority.as_str()).await?;
            Ok::<_, io::Error>(TokioIo::new(stream))
        }))
    }

    fn dial(&self, address: &str) -> Dialing {
        let address = address.to_string();
        Box::pin(async move {
            let stream = turmoil::net::TcpStream::connect(address).await?;
            Ok(Box::new(stream) as Box<dyn Connection>)
        })
    }
}

/// A channel to `address` (`host:port`) over turmoil.
pub fn channel(address: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(TurmoilTransport.channel(Endpoint::from_shared(format!("http://{address}"))?))
}

/// Accepts connections on `port` of the current simulated host.
pub async fn incoming(port: u16) -> io::Result<Incoming> {
    let listener = turmoil::net::TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)).await?;
    let accepted = futures::stream::unfold(listener, |listener| async move {
        let next = listener.accept().await.map(|(stream, _)| Accepted::new(stream));
        Some((next, listener))
    });
    Ok(accepted.boxed())
}
