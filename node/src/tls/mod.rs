//! Transport security: TLS on the client API, mutual TLS between nodes,
//! certificate identities, reload on rotation, and development certificates.
//! A node configured for TLS never falls back to plaintext; plaintext needs
//! the explicit `insecure_dev` setting.

pub mod acceptor;
pub mod certs;
pub mod identity;
pub mod material;
pub mod reload;

pub use acceptor::{Listener, tls_incoming};
pub use identity::{CertPrincipal, PEER_SERVER_NAME, principal_of};
pub use material::{TlsError, TlsMaterial};
pub use reload::LoadedTls;
