//! `safekeep-node local-cluster`: a development cluster of node processes on
//! loopback, one per zone `a`, `b`, `c` (round-robin). It writes each node's
//! config, starts the processes, waits until a leader serves, records
//! `cluster.json`, restarts a node that exits while the others serve, and
//! stops every node cleanly on Ctrl-C. Run again on the
//! same directory, it restarts the nodes from their data. TLS is on unless
//! asked otherwise: a development CA and certificates live in `DIR/certs`.
//!
//! `plan` decides what the cluster is (ids, zones, ports, configs,
//! certificates); `supervise` starts the processes, waits for a leader,
//! restarts the ones that exit, and stops them.

mod plan;
mod supervise;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::tls::certs::CertError;

pub use plan::{
    DEFAULT_BASE_PORT, LOCAL_OPERATOR, MAX_LOCAL_NODES, Security, ZONES, certs_dir, issue_local_certs, node_config,
    node_tls, plan,
};
pub use supervise::{ClientCredentials, LOCAL_TENANT, LocalNode, RunOptions, run};

/// Why the local cluster could not run.
#[derive(Debug, thiserror::Error)]
pub enum LocalClusterError {
    #[error("--nodes must be between 1 and {MAX_LOCAL_NODES}, not {0}")]
    NodeCount(usize),
    #[error("port range starting at {0} overflows")]
    Ports(u16),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write node config: {0}")]
    Encode(String),
    #[error("node {id} exited during start-up with {status}; see {log}")]
    NodeExited { id: u64, status: String, log: PathBuf },
    #[error("no leader within {0:?}; see the node logs under {1}")]
    NotReady(Duration, PathBuf),
    #[error("cannot make the development certificates: {0}")]
    Certs(#[from] CertError),
}

pub(super) fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LocalClusterError {
    let path = path.to_path_buf();
    move |source| LocalClusterError::Io { what, path, source }
}
