//! Who a certificate speaks for. Identities live only in URI subject
//! alternative names of the form `urn:safekeep:<kind>:<name>`; a subject's
//! common name is never read. Nodes are `urn:safekeep:node:<id>`, people are
//! `urn:safekeep:operator:<name>` or `urn:safekeep:support:<name>`.

use std::fmt;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Name every node certificate carries, and that peers dial as the TLS server name.
pub const PEER_SERVER_NAME: &str = "peer.safekeep.internal";
/// Prefix of every identity URI.
const IDENTITY_PREFIX: &str = "urn:safekeep:";
/// Longest name of an operator or support principal.
pub const MAX_PRINCIPAL_NAME_LEN: usize = 64;

/// The principal a verified certificate names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CertPrincipal {
    /// A cluster node, by id.
    Node(u64),
    /// An operator: cluster membership, tenants and keys, never record data.
    Operator(String),
    /// Support staff: may read a tenant's records with a stated reason, always audited.
    Support(String),
}

impl CertPrincipal {
    /// The URI SAN that names this principal.
    pub fn uri(&self) -> String {
        match self {
            Self::Node(id) => format!("{IDENTITY_PREFIX}node:{id}"),
            Self::Operator(name) => format!("{IDENTITY_PREFIX}operator:{name}"),
            Self::Support(name) => format!("{IDENTITY_PREFIX}support:{name}"),
        }
    }

    /// Parses an identity URI; anything else is not an identity.
    pub fn from_uri(uri: &str) -> Option<Self> {
        let rest = uri.strip_prefix(IDENTITY_PREFIX)?;
        let (kind, name) = rest.split_once(':')?;
        match kind {
            "node" => name
                .parse::<u64>()
                .ok()
                .filter(|id| *id > 0 && name == id.to_string())
                .map(Self::Node),
            "operator" if is_principal_name(name) => Some(Self::Operator(name.to_string())),
            "support" if is_principal_name(name) => Some(Self::Support(name.to_string())),
            _ => None,
        }
    }

    /// The node id, if this is a node.
    pub fn node_id(&self) -> Option<u64> {
        match self {
            Self::Node(id) => Some(*id),
            _ => None,
        }
    }
}

impl fmt::Display for CertPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Node(id) => write!(f, "node {id}"),
            Self::Operator(name) => write!(f, "operator {name}"),
            Self::Support(name) => write!(f, "support {name}"),
        }
    }
}

impl std::str::FromStr for CertPrincipal {
    type Err = String;

    /// Parses `operator:NAME`, `support:NAME` or `node:ID`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, name) = s
            .split_once(':')
            .ok_or_else(|| format!("'{s}': expected ROLE:NAME, e.g. operator:alice"))?;
        Self::from_uri(&format!("{IDENTITY_PREFIX}{kind}:{name}")).ok_or_else(|| {
            format!(
                "'{s}': ROLE is operator, support or node; a NAME is lowercase letters, digits, '.', '_' \
                 or '-' (at most {MAX_PRINCIPAL_NAME_LEN}); a node is its id"
            )
        })
    }
}

/// Whether `name` may name an operator or support principal: lowercase
/// letters, digits, `.`, `_`, `-`, starting with a letter or digit.
pub fn is_principal_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= MAX_PRINCIPAL_NAME_LEN
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

/// The one principal a DER certificate names, if it names exactly one.
/// A certificate naming two identities is ambiguous and names none.
pub fn principal_of(der: &[u8]) -> Option<CertPrincipal> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let mut found = san.value.general_names.iter().filter_map(|name| match name {
        GeneralName::URI(uri) => CertPrincipal::from_uri(uri),
        _ => None,
    });
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_uris_round_trip() {
        for principal in [
            CertPrincipal::Node(7),
            CertPrincipal::Operator("alice".into()),
            CertPrincipal::Support("help-desk.1".into()),
        ] {
            assert_eq!(CertPrincipal::from_uri(&principal.uri()), Some(principal));
        }
    }

    #[test]
    fn malformed_identities_are_not_identities() {
        for uri in [
            "urn:safekeep:node:0",
            "urn:safekeep:node:07",
            "urn:safekeep:node:-1",
            "urn:safekeep:node:1:2",
            "urn:safekeep:tenant:acme",
            "urn:safekeep:operator:",
            "urn:safekeep:operator:Alice",
            "urn:safekeep:operator:a/b",
            "urn:other:operator:alice",
            "spiffe://safekeep/node/1",
        ] {
            assert_eq!(CertPrincipal::from_uri(uri), None, "{uri}");
        }
        assert!(!is_principal_name(&"a".repeat(MAX_PRINCIPAL_NAME_LEN + 1)));
    }
}
