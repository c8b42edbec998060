//! What a local cluster is: node ids 1..=n spread round-robin over the
//! zones, their loopback ports, each node's config, and the development
//! certificates they present.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use super::LocalClusterError;
use crate::config::{DEFAULT_TLS_RELOAD_MS, InitialMember, PartialConfig, TlsSettings};
use crate::identity::CertPrincipal;
use crate::tls::certs::{CA_CERT_FILE, CertError, DEFAULT_VALIDITY_DAYS, DevBundleSpec, leaf_files, write_dev_bundle};

/// The zones nodes are spread over, round-robin from node 1.
pub use crate::config::LOCAL_ZONES as ZONES;
/// Most nodes a local cluster may have.
pub const MAX_LOCAL_NODES: usize = 9;
/// Client ports are `base + id`, peer ports `base + 100 + id`, HTTP ports `base + 200 + id`.
pub const DEFAULT_BASE_PORT: u16 = 7100;
/// Hosts the local node certificates are valid for.
const LOCAL_HOSTS: [&str; 2] = ["localhost", "127.0.0.1"];
/// The operator whose client certificate the local cluster issues.
pub const LOCAL_OPERATOR: &str = "admin";

/// Whether the local cluster runs with TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS on the client API and mutual TLS between nodes, certificates in `DIR/certs`.
    Tls,
    /// Plaintext, unauthenticated: `--insecure-dev`.
    InsecureDev,
}

/// Where a local cluster keeps its development certificates.
pub fn certs_dir(dir: &Path) -> PathBuf {
    dir.join("certs")
}

/// The TLS settings of local node `id` whose certificates are in `certs`.
pub fn node_tls(certs: &Path, id: u64) -> TlsSettings {
    let (cert, key) = leaf_files(certs, &CertPrincipal::Node(id));
    TlsSettings {
        cert,
        key,
        ca: certs.join(CA_CERT_FILE),
        client_ca: None,
        reload_interval_ms: DEFAULT_TLS_RELOAD_MS,
    }
}

/// Issues (or renews) the local cluster's certificates: the CA is kept across runs.
pub fn issue_local_certs(certs: &Path, members: &[InitialMember]) -> Result<(), CertError> {
    let spec = DevBundleSpec {
        nodes: members.iter().map(|m| m.id).collect(),
        hosts: LOCAL_HOSTS.iter().map(|h| h.to_string()).collect(),
        clients: vec![CertPrincipal::Operator(LOCAL_OPERATOR.to_string())],
        validity_days: DEFAULT_VALIDITY_DAYS,
    };
    write_dev_bundle(certs, &spec).map(|_| ())
}

pub(super) fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Plans the nodes: ids 1..=n, zones round-robin, ports from `base_port`.
pub fn plan(nodes: usize, base_port: u16) -> Result<Vec<InitialMember>, LocalClusterError> {
    if nodes == 0 || nodes > MAX_LOCAL_NODES {
        return Err(LocalClusterError::NodeCount(nodes));
    }
    if base_port.checked_add(200 + MAX_LOCAL_NODES as u16).is_none() {
        return Err(LocalClusterError::Ports(base_port));
    }
    Ok((1..=nodes as u16)
        .map(|i| InitialMember {
            id: u64::from(i),
            zone: ZONES[usize::from(i - 1) % ZONES.len()].to_string(),
            peer_address: loopback(base_port + 100 + i).to_string(),
            client_address: loopback(base_port + i).to_string(),
        })
        .collect())
}

pub(super) fn http_port(base_port: u16, id: u64) -> u16 {
    base_port + 200 + id as u16
}

/// The config of one planned node, its data under `node_dir`; plaintext
/// (`insecure_dev`) when `tls` is `None`.
pub fn node_config(
    member: &InitialMember,
    members: &[InitialMember],
    node_dir: &Path,
    base_port: u16,
    tls: Option<TlsSettings>,
) -> PartialConfig {
    PartialConfig {
        id: Some(member.id),
        zone: Some(member.zone.clone()),
        data_dir: Some(node_dir.join("data")),
        client_listen: member.client_address.parse().ok(),
        peer_listen: member.peer_address.parse().ok(),
        http_listen: Some(loopback(http_port(base_port, member.id))),
        init: members.to_vec(),
        insecure_dev: tls.is_none(),
        tls,
        ..PartialConfig::default()
    }
}
