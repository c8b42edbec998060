//! Transport security: TLS on the client API, mutual TLS between nodes
//! (each dialer checking that the peer is the node it dialed), reload on
//! rotation, and development certificates. Who a certificate
//! speaks for is `crate::identity`, re-exported here.
//! A node configured for TLS never falls back to plaintext; plaintext needs
//! the explicit `insecure_dev` setting.

pub mod acceptor;
pub mod certs;
pub mod dialer;
pub mod material;
pub mod peer_identity;
pub mod reload;

pub use crate::identity::{CertPrincipal, PEER_SERVER_NAME, principal_of};
pub use acceptor::{HandshakeLimits, Listener, tls_incoming};
pub use dialer::{DialError, tls_channel};
pub use material::{TlsError, TlsMaterial};
pub use peer_identity::{ExpectedPeer, PeerClientTls, WrongPeer};
pub use reload::LoadedTls;
