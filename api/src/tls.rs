//! How safekeep's clients dial a node over TLS, written once: trust only
//! the given CA, present a client certificate when one is given, and expect
//! the server name given (a node's peer name) or the address dialled. The
//! SDK, the local cluster and the tests build their TLS settings here; a
//! node dialing its peers uses its own connector, which also checks the
//! node identity in the peer's certificate.

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// What a client presents and trusts, as PEM.
#[derive(Debug, Clone, Copy)]
pub struct ClientTls<'a> {
    /// The CA certificate the server's chain must lead to.
    pub ca_pem: &'a [u8],
    /// The client's certificate and key, for mutual TLS.
    pub identity: Option<(&'a [u8], &'a [u8])>,
    /// The name the server's certificate must carry, when it is not the
    /// host dialled.
    pub server_name: Option<&'a str>,
}

impl ClientTls<'_> {
    /// tonic's configuration for these settings.
    pub fn config(&self) -> ClientTlsConfig {
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(self.ca_pem));
        if let Some((cert, key)) = self.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        if let Some(name) = self.server_name {
            config = config.domain_name(name);
        }
        config
    }
}
