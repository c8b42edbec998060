//! Development certificates: a cluster CA, node certificates and client
//! certificates, made with rcgen. `safekeep-node certs` and `local-cluster`
//! use this; production deployments bring certificates from their own PKI
//! with the same identities (see `identity`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::identity::{CertPrincipal, PEER_SERVER_NAME};

/// Default lifetime of development certificates.
pub const DEFAULT_VALIDITY_DAYS: u32 = 365;
/// Longest lifetime `certs` will issue.
pub const MAX_VALIDITY_DAYS: u32 = 3650;
/// File names of the CA in a certificate directory.
pub const CA_CERT_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca.key";
/// Common name of the development CA (informational; never an identity).
const DEV_CA_NAME: &str = "safekeep development CA";

/// Why certificates could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot build a certificate: {0}")]
    Build(#[from] rcgen::Error),
    #[error("'{0}' is not a valid DNS name or IP address for a certificate")]
    BadHost(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// When a certificate is valid.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From an hour ago (clock skew) for `days` days.
    pub fn days_from_now(days: u32) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(i64::from(days)),
        }
    }

    /// A window that ended a day ago: for tests of expiry handling.
    pub fn expired() -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: now - Duration::days(30),
            not_after: now - Duration::days(1),
        }
    }
}

/// A certificate and its private key, PEM-encoded.
#[derive(Clone)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert")
            .field("key_pem", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// What a leaf certificate is for.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    pub principal: CertPrincipal,
    /// DNS names and IP addresses clients may reach a node by.
    pub hosts: Vec<String>,
    pub validity: Validity,
}

impl LeafSpec {
    /// A node certificate: serves the client API and the peer channel, and dials peers.
    pub fn node(id: u64, hosts: &[String], validity: Validity) -> Self {
        Self {
            principal: CertPrincipal::Node(id),
            hosts: hosts.to_vec(),
            validity,
        }
    }

    /// A client certificate for an operator or support principal.
    pub fn client(principal: CertPrincipal, validity: Validity) -> Self {
        Self {
            principal,
            hosts: Vec::new(),
            validity,
        }
    }
}

/// A certificate authority that signs node and client certificates.
pub struct CertAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
}

impl CertAuthority {
    /// A new self-signed CA named `name`.
    pub fn generate(name: &str, validity: Validity) -> Result<Self, CertError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = distinguished_name(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// The development CA, valid for `days`.
    pub fn generate_dev(days: u32) -> Result<Self, CertError> {
        Self::generate(DEV_CA_NAME, Validity::days_from_now(days))
    }

    /// A CA from its PEM certificate and key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CertError> {
        let key = KeyPair::from_pem(key_pem)?;
        Ok(Self {
            issuer: Issuer::from_ca_cert_pem(cert_pem, key)?,
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Signs a new leaf certificate with a fresh key.
    pub fn issue(&self, spec: &LeafSpec) -> Result<IssuedCert, CertError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = distinguished_name(&spec.principal.to_string());
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        params.not_before = spec.validity.not_before;
        params.not_after = spec.validity.not_after;
        params
            .subject_alt_names
            .push(SanType::URI(Ia5String::try_from(spec.principal.uri())?));
        if matches!(spec.principal, CertPrincipal::Node(_)) {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
            params
                .subject_alt_names
                .push(SanType::DnsName(Ia5String::try_from(PEER_SERVER_NAME)?));
            for host in &spec.hosts {
                params.subject_alt_names.push(host_san(host)?);
            }
        } else {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Writes the CA certificate and key into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), CertError> {
        write_file(&dir.join(CA_CERT_FILE), &self.cert_pem, false)?;
        write_file(&dir.join(CA_KEY_FILE), &self.key_pem, true)
    }

    /// Reads the CA from `dir`, if both its files are there.
    pub fn read(dir: &Path) -> Result<Option<Self>, CertError> {
        let (cert, key) = (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
        if !cert.exists() || !key.exists() {
            return Ok(None);
        }
        let cert_pem = read_file(&cert)?;
        let key_pem = read_file(&key)?;
        Self::from_pem(&cert_pem, &key_pem).map(Some)
    }
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, "safekeep");
    name
}

fn host_san(host: &str) -> Result<SanType, CertError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if !valid {
        return Err(CertError::BadHost(host.to_string()));
    }
    Ia5String::try_from(host.to_ascii_lowercase())
        .map(SanType::DnsName)
        .map_err(|_| CertError::BadHost(host.to_string()))
}

/// File names of a leaf certificate and key in a certificate directory.
pub fn leaf_files(dir: &Path, principal: &CertPrincipal) -> (PathBuf, PathBuf) {
    let stem = match principal {
        CertPrincipal::Node(id) => format!("node-{id}"),
        CertPrincipal::Operator(name) => format!("operator-{name}"),
        CertPrincipal::Support(name) => format!("support-{name}"),
    };
    (dir.join(format!("{stem}.pem")), dir.join(format!("{stem}.key")))
}

/// Writes a leaf certificate and key under their standard names in `dir`.
pub fn write_leaf(dir: &Path, principal: &CertPrincipal, cert: &IssuedCert) -> Result<(PathBuf, PathBuf), CertError> {
    let (cert_path, key_path) = leaf_files(dir, principal);
    write_file(&cert_path, &cert.cert_pem, false)?;
    write_file(&key_path, &cert.key_pem, true)?;
    Ok((cert_path, key_path))
}

fn read_file(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(|source| CertError::Io {
        what: "cannot read",
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `contents` through a temporary file and a rename, so a reader never
/// sees half a certificate; private keys are readable by the owner only.
fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), CertError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| CertError::Io {
        what: "cannot write",
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mode = if private { 0o600 } else { 0o644 };
    // A leftover temporary file would keep its own (maybe wider) mode: start afresh.
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// What `safekeep-node certs` asks for.
#[derive(Debug, Clone)]
pub struct DevBundleSpec {
    pub nodes: Vec<u64>,
    pub hosts: Vec<String>,
    pub clients: Vec<CertPrincipal>,
    pub validity_days: u32,
}

/// Creates (or reuses) the CA in `dir` and issues every node and client
/// certificate the spec names. Returns the files written.
pub fn write_dev_bundle(dir: &Path, spec: &DevBundleSpec) -> Result<Vec<PathBuf>, CertError> {
    std::fs::create_dir_all(dir).map_err(|source| CertError::Io {
        what: "cannot create",
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    let ca = match CertAuthority::read(dir)? {
        Some(ca) => ca,
        None => {
            let ca = CertAuthority::generate_dev(spec.validity_days.max(DEFAULT_VALIDITY_DAYS))?;
            ca.write(dir)?;
            written.extend([dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE)]);
            ca
        }
    };
    let validity = Validity::days_from_now(spec.validity_days);
    for id in &spec.nodes {
        let leaf = LeafSpec::node(*id, &spec.hosts, validity);
        let (cert, key) = write_leaf(dir, &leaf.principal, &ca.issue(&leaf)?)?;
        written.extend([cert, key]);
    }
    for principal in &spec.clients {
        let leaf = LeafSpec::client(principal.clone(), validity);
        let (cert, key) = write_leaf(dir, principal, &ca.issue(&leaf)?)?;
        written.extend([cert, key]);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::principal_of;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    #[test]
    fn issued_certificates_name_their_principal() {
        let ca = CertAuthority::generate_dev(1).unwrap();
        let node = ca
            .issue(&LeafSpec::node(
                3,
                &["localhost".into(), "127.0.0.1".into()],
                Validity::days_from_now(1),
            ))
            .unwrap();
        assert_eq!(principal_of(&der(&node.cert_pem)), Some(CertPrincipal::Node(3)));
        let operator = ca
            .issue(&LeafSpec::client(
                CertPrincipal::Operator("alice".into()),
                Validity::days_from_now(1),
            ))
            .unwrap();
        assert_eq!(
            principal_of(&der(&operator.cert_pem)),
            Some(CertPrincipal::Operator("alice".into()))
        );
        assert!(!format!("{node:?}").contains("PRIVATE"));
    }

    #[test]
    fn a_ca_read_back_signs_for_the_same_chain() {
        let dir = tempfile::tempdir().unwrap();
        let spec = DevBundleSpec {
            nodes: vec![1, 2],
            hosts: vec!["localhost".into()],
            clients: vec![CertPrincipal::Operator("admin".into())],
            validity_days: 2,
        };
        let written = write_dev_bundle(dir.path(), &spec).unwrap();
        assert_eq!(written.len(), 2 + 4 + 2);
        let ca_before = std::fs::read_to_string(dir.path().join(CA_CERT_FILE)).unwrap();
        let again = write_dev_bundle(dir.path(), &spec).unwrap();
        assert_eq!(again.len(), 4 + 2, "the CA is reused, not replaced");
        assert_eq!(
            ca_before,
            std::fs::read_to_string(dir.path().join(CA_CERT_FILE)).unwrap()
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(CA_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "private keys are owner-only");
    }

    #[test]
    fn bad_hosts_are_refused() {
        let ca = CertAuthority::generate_dev(1).unwrap();
        let err = ca
            .issue(&LeafSpec::node(1, &["bad host".into()], Validity::days_from_now(1)))
            .unwrap_err();
        assert!(err.to_string().contains("bad host"), "{err}");
    }
}
