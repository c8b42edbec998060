//! Credentials and TLS settings of a client: an API key, and the CA that signs the cluster's node
//! certificates, and optionally a client certificate (operators and support
//! staff authenticate with one). A client with TLS settings refuses plaintext
//! endpoints; one without refuses `https://` ones, so a typo never silently
//! downgrades a connection.

use std::fmt;
use std::path::Path;

use tonic::transport::ClientTlsConfig;

use crate::error::Error;

/// Largest PEM file a client reads.
pub const MAX_PEM_BYTES: u64 = 1 << 20;

/// How a client secures its connections.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientTls {
    /// PEM of the CA certificate(s) the nodes' certificates chain to.
    pub ca_pem: Vec<u8>,
    /// A client certificate and its private key, PEM.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Name the nodes' certificates are checked against, if not the endpoint's host.
    pub server_name: Option<String>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca_pem_bytes", &self.ca_pem.len())
            .field("identity", &self.identity.as_ref().map(|_| "[redacted]"))
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl ClientTls {
    /// Trust `ca_pem`; no client certificate.
    pub fn with_ca(ca_pem: impl Into<Vec<u8>>) -> Self {
        Self {
            ca_pem: ca_pem.into(),
            identity: None,
            server_name: None,
        }
    }

    /// Reads the CA and, if given, a client certificate and key from files.
    pub fn from_files(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<Self, Error> {
        let mut tls = Self::with_ca(read_pem("CA certificate", ca)?);
        if let Some((cert, key)) = identity {
            tls.identity = Some((read_pem("client certificate", cert)?, read_pem("client key", key)?));
        }
        Ok(tls)
    }

    /// tonic's configuration for these settings.
    pub(crate) fn tonic_config(&self) -> ClientTlsConfig {
        let tls = safekeep_api::tls::ClientTls {
            ca_pem: &self.ca_pem,
            identity: self
                .identity
                .as_ref()
                .map(|(cert, key)| (cert.as_slice(), key.as_slice())),
            server_name: self.server_name.as_deref(),
        };
        tls.config()
    }
}

/// An API key, presented as `authorization: Bearer <key>`. Its `Debug`
/// never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

/// Longest API key accepted.
pub const MAX_API_KEY_LEN: usize = 256;

impl ApiKey {
    /// Checks the key's form: printable ASCII without spaces.
    pub fn new(key: impl Into<String>) -> Result<Self, Error> {
        let key = key.into().trim().to_string();
        let printable = !key.is_empty() && key.len() <= MAX_API_KEY_LEN && key.bytes().all(|b| b.is_ascii_graphic());
        if !printable {
            return Err(Error::Config(
                "an API key is printable ASCII without spaces (it starts with skp_)".into(),
            ));
        }
        Ok(Self(key))
    }

    /// The `authorization` metadata value.
    pub(crate) fn bearer(&self) -> tonic::metadata::MetadataValue<tonic::metadata::Ascii> {
        safekeep_api::wire::bearer(&self.0)
            .parse()
            .expect("checked printable ASCII is a valid header value")
    }
}

fn read_pem(what: &str, path: &Path) -> Result<Vec<u8>, Error> {
    let too_big = std::fs::metadata(path).is_ok_and(|m| m.len() > MAX_PEM_BYTES);
    if too_big {
        return Err(Error::Config(format!(
            "{what} {} is larger than {MAX_PEM_BYTES} bytes",
            path.display()
        )));
    }
    let bytes =
        std::fs::read(path).map_err(|e| Error::Config(format!("cannot read {what} {}: {e}", path.display())))?;
    if !String::from_utf8_lossy(&bytes).contains("-----BEGIN ") {
        return Err(Error::Config(format!("{what} {} is not a PEM file", path.display())));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_private_key() {
        let mut tls = ClientTls::with_ca(b"-----BEGIN CERTIFICATE-----".to_vec());
        tls.identity = Some((b"cert".to_vec(), b"-----BEGIN PRIVATE KEY----- secret".to_vec()));
        let shown = format!("{tls:?}");
        assert!(!shown.contains("secret") && shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn an_api_key_is_never_sent_without_tls() {
        let key = ApiKey::new("skp_0123456789abcdef_00").unwrap();
        assert!(!format!("{key:?}").contains("skp_"), "Debug hides the key");
        let plaintext = crate::ClientConfig::new(["127.0.0.1:7101"]).with_api_key(key.clone());
        assert!(matches!(plaintext.validate(), Err(Error::Config(_))));
        let secure = plaintext.with_tls(ClientTls::with_ca(b"-----BEGIN CERTIFICATE-----".to_vec()));
        assert!(secure.validate().is_ok());
        assert!(ApiKey::new("has space").is_err() && ApiKey::new("").is_err());
    }

    #[test]
    fn unreadable_or_non_pem_files_are_config_errors() {
        let dir = std::env::temp_dir().join(format!("safekeep-client-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        for path in [dir.join("missing.pem"), not_pem] {
            let err = ClientTls::from_files(&path, None).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{err:?}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
