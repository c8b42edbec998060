//! Loading a node's TLS files and turning them into rustls and tonic
//! configurations. Everything is checked before use: files readable, PEM
//! well-formed, certificates inside their validity window, the key matching
//! the certificate, the certificate chaining to the cluster CA and naming this
//! node. A failure is a clear error, never a fallback to plaintext.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::peer_identity::PeerClientTls;
use crate::config::TlsSettings;
use crate::identity::{CertPrincipal, PEER_SERVER_NAME, principal_of};

/// ALPN protocol of gRPC, the only one the node speaks over TLS.
pub const ALPN_H2: &[u8] = b"h2";

/// Why TLS material is unusable.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the {what} {path} holds no {expected}")]
    Empty {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("the {what} {path} is not valid PEM: {reason}")]
    Malformed {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("the {what} {path} expired at {not_after}")]
    Expired {
        what: &'static str,
        path: PathBuf,
        not_after: OffsetDateTime,
    },
    #[error("the {what} {path} is not valid before {not_before}")]
    NotYetValid {
        what: &'static str,
        path: PathBuf,
        not_before: OffsetDateTime,
    },
    #[error("the private key {key} does not belong to the certificate {cert}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("the certificate {path} names {found}, but this is node {expected}")]
    WrongNode {
        path: PathBuf,
        expected: u64,
        found: String,
    },
    #[error("the certificate {cert} does not chain to the CA {ca}: {reason}")]
    Untrusted { cert: PathBuf, ca: PathBuf, reason: String },
    #[error("cannot build the TLS configuration: {0}")]
    Config(String),
}

/// The rustls provider every TLS object here uses.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A node's TLS files, read and checked.
pub struct TlsMaterial {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cluster_roots: Arc<RootCertStore>,
    client_roots: Arc<RootCertStore>,
    /// Verification of a peer's chain against the cluster CA.
    peer_verifier: Arc<WebPkiServerVerifier>,
    /// When the node's certificate expires.
    pub not_after: OffsetDateTime,
}

impl TlsMaterial {
    /// Reads and checks the files `settings` names for node `node_id`.
    pub fn load(settings: &TlsSettings, node_id: u64) -> Result<Self, TlsError> {
        let cert_pem = read("certificate", &settings.cert)?;
        let key_pem = read("private key", &settings.key)?;
        let ca_pem = read("CA certificate", &settings.ca)?;
        let chain = certificates("certificate", &settings.cert, &cert_pem)?;
        let ca = certificates("CA certificate", &settings.ca, &ca_pem)?;
        let client_ca = match &settings.client_ca {
            Some(path) => certificates("client CA certificate", path, &read("client CA certificate", path)?)?,
            None => ca.clone(),
        };
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Malformed {
            what: "private key",
            path: settings.key.clone(),
            reason: e.to_string(),
        })?;

        let not_after = check_validity("certificate", &settings.cert, &chain[0])?;
        for cert in &chain[1..] {
            check_validity("certificate chain", &settings.cert, cert)?;
        }
        for cert in &ca {
            check_validity("CA certificate", &settings.ca, cert)?;
        }
        let client_ca_path = settings.client_ca.as_deref().unwrap_or(&settings.ca);
        for cert in &client_ca {
            check_validity("client CA certificate", client_ca_path, cert)?;
        }

        match principal_of(&chain[0]) {
            Some(CertPrincipal::Node(id)) if id == node_id => {}
            other => {
                return Err(TlsError::WrongNode {
                    path: settings.cert.clone(),
                    expected: node_id,
                    found: other.map_or_else(|| "no node identity".to_string(), |p| p.to_string()),
                });
            }
        }

        let provider = crypto_provider();
        let signer = provider
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|e| TlsError::Malformed {
                what: "private key",
                path: settings.key.clone(),
                reason: e.to_string(),
            })?;
        CertifiedKey::new(chain.clone(), signer)
            .keys_match()
            .map_err(|_| TlsError::KeyMismatch {
                cert: settings.cert.clone(),
                key: settings.key.clone(),
            })?;

        let cluster_roots = Arc::new(root_store("CA certificate", &settings.ca, &ca)?);
        let client_roots = Arc::new(root_store("client CA certificate", client_ca_path, &client_ca)?);
        let untrusted = |reason: String| TlsError::Untrusted {
            cert: settings.cert.clone(),
            ca: settings.ca.clone(),
            reason,
        };
        let verifier = WebPkiServerVerifier::builder_with_provider(cluster_roots.clone(), provider)
            .build()
            .map_err(|e| untrusted(e.to_string()))?;
        let peer_name = ServerName::try_from(PEER_SERVER_NAME).map_err(|e| TlsError::Config(e.to_string()))?;
        verifier
            .verify_server_cert(&chain[0], &chain[1..], &peer_name, &[], UnixTime::now())
            .map_err(|e| untrusted(e.to_string()))?;

        Ok(Self {
            chain,
            key,
            cluster_roots,
            client_roots,
            peer_verifier: verifier,
            not_after,
        })
    }

    /// The client API's server configuration: TLS 1.3 or 1.2, client
    /// certificates optional but verified against the client CA when presented.
    pub fn client_api_server(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let verifier = WebPkiClientVerifier::builder_with_provider(self.client_roots.clone(), crypto_provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        self.server_config(verifier)
    }

    /// The peer channel's server configuration: a client certificate from the
    /// cluster CA is required.
    pub fn peer_server(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let verifier = WebPkiClientVerifier::builder_with_provider(self.cluster_roots.clone(), crypto_provider())
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        self.server_config(verifier)
    }

    fn server_config(
        &self,
        verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(Arc::new(config))
    }

    /// How this node dials its peers: trusting only the cluster CA,
    /// presenting its own certificate, expecting the node it dials.
    pub fn peer_client(&self) -> Result<PeerClientTls, TlsError> {
        PeerClientTls::new(
            crypto_provider(),
            self.peer_verifier.clone(),
            self.chain.clone(),
            self.key.clone_key(),
            ALPN_H2,
        )
        .map_err(|e| TlsError::Config(e.to_string()))
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn certificates(what: &'static str, path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Malformed {
            what,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.to_path_buf(),
            expected: "certificate",
        });
    }
    Ok(certs)
}

fn root_store(what: &'static str, path: &Path, certs: &[CertificateDer<'static>]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert.clone()).map_err(|e| TlsError::Malformed {
            what,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// Checks a certificate's validity window now; returns its end.
fn check_validity(what: &'static str, path: &Path, der: &CertificateDer<'_>) -> Result<OffsetDateTime, TlsError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| TlsError::Malformed {
        what,
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let validity = cert.validity();
    let now = OffsetDateTime::now_utc();
    let (not_before, not_after) = (validity.not_before.to_datetime(), validity.not_after.to_datetime());
    if now > not_after {
        return Err(TlsError::Expired {
            what,
            path: path.to_path_buf(),
            not_after,
        });
    }
    if now < not_before {
        return Err(TlsError::NotYetValid {
            what,
            path: path.to_path_buf(),
            not_before,
        });
    }
    Ok(not_after)
}
