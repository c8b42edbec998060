//! Whether the node at the other end of an outgoing peer connection is the
//! node this one meant to reach. Every node certificate carries the same DNS
//! name (`PEER_SERVER_NAME`), so a chain to the cluster CA under that name
//! only says "some node of this cluster"; the check here also requires the
//! certificate's node identity (`urn:safekeep:node:<id>`) to be the node
//! dialed. A refusal names both nodes, is logged and counted, and ends the
//! handshake. The client configuration built here presents this node's own
//! certificate and never resumes a TLS session, so every connection's
//! certificate is checked against the node it was opened for.

use std::fmt;
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, OtherError, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::identity::{CertPrincipal, principal_of};
use crate::metrics_names::PEER_IDENTITY_REFUSALS;

/// The node an outgoing peer connection is meant to reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedPeer {
    /// This node, by id: its certificate must name it.
    Node(u64),
    /// Any node of the cluster CA: only for an address whose node is not
    /// known yet (a seed to join through), where what the node says about
    /// itself is all there is to go on.
    AnyNode,
}

impl fmt::Display for ExpectedPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Node(id) => write!(f, "node {id}"),
            Self::AnyNode => f.write_str("a node of the cluster"),
        }
    }
}

/// A peer's certificate, though issued by the cluster CA, names another
/// principal than the node dialed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the peer at {address} presented the certificate of {found}, but {expected} was dialed there")]
pub struct WrongPeer {
    /// The address dialed.
    pub address: String,
    /// Who was meant to answer there.
    pub expected: ExpectedPeer,
    /// Who the certificate names instead (or that it names no one).
    pub found: String,
}

impl WrongPeer {
    /// The refusal this error is, when a handshake error `error` is one.
    pub fn in_handshake_error(error: &rustls::Error) -> Option<&Self> {
        match error {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => inner.downcast_ref(),
            _ => None,
        }
    }
}

/// Checks a peer's certificate chain against the cluster CA under the peer
/// name, then its node identity against the node dialed.
#[derive(Debug)]
struct PeerVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    address: String,
    expected: ExpectedPeer,
}

/// Whether a certificate naming `found` may answer where `expected` was dialed.
fn admits(expected: ExpectedPeer, found: Option<&CertPrincipal>) -> bool {
    match (expected, found) {
        (ExpectedPeer::Node(expected), Some(CertPrincipal::Node(id))) => *id == expected,
        (ExpectedPeer::AnyNode, Some(CertPrincipal::Node(_))) => true,
        _ => false,
    }
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        let found = principal_of(end_entity);
        if admits(self.expected, found.as_ref()) {
            return Ok(verified);
        }
        let refusal = WrongPeer {
            address: self.address.clone(),
            expected: self.expected,
            found: found.map_or_else(|| "no one".to_string(), |p| p.to_string()),
        };
        metrics::counter!(PEER_IDENTITY_REFUSALS).increment(1);
        tracing::warn!(
            address = %refusal.address,
            expected = %refusal.expected,
            found = %refusal.found,
            "refused a peer whose certificate names another node than the one dialed"
        );
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(
            Arc::new(refusal),
        ))))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// How this node dials its peers: trusting only the cluster CA, presenting
/// its own certificate, expecting the node each connection is opened for.
#[derive(Clone)]
pub struct PeerClientTls {
    /// Everything but the check of the peer's identity.
    base: Arc<ClientConfig>,
    /// Verification against the cluster CA.
    webpki: Arc<WebPkiServerVerifier>,
}

impl PeerClientTls {
    /// A configuration presenting `chain` and `key`, trusting what `webpki`
    /// trusts, offering only `alpn`.
    pub fn new(
        provider: Arc<CryptoProvider>,
        webpki: Arc<WebPkiServerVerifier>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        alpn: &[u8],
    ) -> Result<Self, rustls::Error> {
        let anyone = Arc::new(PeerVerifier {
            webpki: webpki.clone(),
            address: String::new(),
            expected: ExpectedPeer::AnyNode,
        });
        let mut base = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .dangerous()
            .with_custom_certificate_verifier(anyone)
            .with_client_auth_cert(chain, key)?;
        base.alpn_protocols = vec![alpn.to_vec()];
        // A resumed session skips the certificate check, and every node
        // shares one server name: a session with one node must never stand
        // in for a connection to another.
        base.resumption = Resumption::disabled();
        Ok(Self {
            base: Arc::new(base),
            webpki,
        })
    }

    /// The configuration of connections to `address`, where `expected` must answer.
    pub fn for_peer(&self, address: &str, expected: ExpectedPeer) -> Arc<ClientConfig> {
        let mut config = (*self.base).clone();
        config.dangerous().set_certificate_verifier(Arc::new(PeerVerifier {
            webpki: self.webpki.clone(),
            address: address.to_string(),
            expected,
        }));
        Arc::new(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_node_dialed_is_admitted_and_any_node_only_when_none_is_known() {
        let node = CertPrincipal::Node;
        let operator = CertPrincipal::Operator("admin".into());
        let expecting_3 = ExpectedPeer::Node(3);
        assert!(admits(expecting_3, Some(&node(3))));
        assert!(!admits(expecting_3, Some(&node(2))));
        assert!(!admits(expecting_3, Some(&operator)));
        assert!(!admits(expecting_3, None));
        assert!(admits(ExpectedPeer::AnyNode, Some(&node(2))));
        assert!(!admits(ExpectedPeer::AnyNode, Some(&operator)));
        assert!(!admits(ExpectedPeer::AnyNode, None));
    }

    #[test]
    fn a_refusal_names_the_address_and_both_nodes() {
        let refusal = WrongPeer {
            address: "10.0.0.3:7201".into(),
            expected: ExpectedPeer::Node(3),
            found: CertPrincipal::Node(2).to_string(),
        };
        let error = rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(refusal))));
        let found = WrongPeer::in_handshake_error(&error).expect("the refusal is found in the handshake error");
        let message = found.to_string();
        for part in ["10.0.0.3:7201", "node 3", "node 2"] {
            assert!(message.contains(part), "{message}");
        }
    }
}
