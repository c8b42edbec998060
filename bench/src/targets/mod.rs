//! The systems under test, behind one interface: a [`Cluster`] is a running
//! three-member cluster the benchmark started on loopback, and a
//! [`Connection`] is one client of it (an SDK client, an etcd client) that
//! many workers share. The load generator is written once against these
//! traits; each system has its own module.

pub mod certs;
pub mod etcd;
pub mod safekeep;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::error::BenchError;
use crate::settings::Settings;
pub use crate::settings::{MEMBERS, REPLACEMENT_MEMBER};
use crate::workloads::Freshness;

/// Which system a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// safekeep through its Rust SDK.
    Safekeep,
    /// etcd through the etcd-client crate.
    Etcd,
}

impl TargetKind {
    /// The name in tables, plots and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Safekeep => "safekeep",
            Self::Etcd => "etcd",
        }
    }
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed operation, as the client library reported it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OpError(pub String);

/// What a compare-and-set came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasOutcome {
    /// The write applied; the key is now at `version`.
    Applied { version: u64 },
    /// The key was not at the expected version.
    Conflict,
}

/// One client connection to a cluster, cheap to clone and shared by workers.
pub trait Connection: Clone + Send + Sync + 'static {
    /// Writes `value` at `key` unconditionally; returns the key's new version.
    fn put(&self, key: String, value: Vec<u8>) -> impl Future<Output = Result<u64, OpError>> + Send;
    /// Reads `key`; true when it exists.
    fn get(&self, key: String, freshness: Freshness) -> impl Future<Output = Result<bool, OpError>> + Send;
    /// Writes `value` at `key` only if the key is at `expected_version`.
    fn put_if_version(
        &self,
        key: String,
        value: Vec<u8>,
        expected_version: u64,
    ) -> impl Future<Output = Result<CasOutcome, OpError>> + Send;
}

/// A running cluster the benchmark started.
pub trait Cluster: Send {
    /// Its client type.
    type Conn: Connection;
    /// Which system this is.
    fn kind(&self) -> TargetKind;
    /// The server processes whose CPU and memory count (not supervisors).
    fn server_pids(&self) -> Vec<u32>;
    /// Opens one more client connection.
    fn connect(&self) -> impl Future<Output = Result<Self::Conn, BenchError>> + Send;
    /// An error if a server process has exited.
    fn check_running(&mut self) -> Result<(), BenchError>;
    /// How the cluster was set up, for the report (security, durability).
    fn describe(&self) -> String;
    /// Stops every process of the cluster.
    fn stop(self) -> impl Future<Output = ()> + Send;
}

/// A member of a running cluster, by its position (0-based) among the
/// members the cluster started with.
pub type MemberIndex = usize;

/// How far a member that joined on an empty data directory has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchUp {
    /// The log index it has applied.
    pub applied: u64,
    /// Bytes in its data directory.
    pub disk_bytes: u64,
}

/// What the failover, restart and catch-up measurements do to a cluster:
/// kill its leader, stop and start its members on their data, and add a
/// member on an empty disk. Each system does these its own way (safekeep
/// through its local cluster's supervisor and its membership API, etcd
/// through its processes and its cluster API).
pub trait Operable: Cluster {
    /// The member that leads now, as the cluster reports it.
    fn leader(&self) -> impl Future<Output = Result<MemberIndex, BenchError>> + Send;
    /// Kills the member with SIGKILL and waits until its process is gone;
    /// it stays down until [`Operable::start_stopped`].
    fn kill(&mut self, member: MemberIndex) -> impl Future<Output = Result<(), BenchError>> + Send;
    /// Stops every member cleanly (SIGTERM) and waits until each has exited; their data stays.
    fn stop_members(&mut self) -> impl Future<Output = Result<(), BenchError>> + Send;
    /// Starts every member that is down again, on its own data; returns once
    /// the processes run (not once they serve).
    fn start_stopped(&mut self) -> impl Future<Output = Result<(), BenchError>> + Send;
    /// Waits until every member runs, has a leader and has caught up with it.
    fn wait_settled(&mut self, timeout: Duration) -> impl Future<Output = Result<(), BenchError>> + Send;
    /// Data directories of the initial members.
    fn data_dirs(&self) -> Vec<PathBuf>;
    /// The leader's commit index: what a new member must apply to have caught up.
    fn commit_index(&self) -> impl Future<Output = Result<u64, BenchError>> + Send;
    /// Starts member [`REPLACEMENT_MEMBER`] on an empty data directory and adds
    /// it to the cluster as a learner (a replacement before it is swapped in).
    fn add_replacement(&mut self) -> impl Future<Output = Result<(), BenchError>> + Send;
    /// How far the replacement has come; `None` while it does not answer yet.
    fn replacement_progress(&mut self) -> impl Future<Output = Result<Option<CatchUp>, BenchError>> + Send;
}

/// The programs a session starts.
#[derive(Debug, Clone)]
pub struct Programs {
    /// `safekeep-node`: the local cluster, and the development certificates.
    pub node: Option<PathBuf>,
    /// `etcd` from the etcd-server package.
    pub etcd: Option<PathBuf>,
}

impl Programs {
    /// `safekeep-node`, which safekeep's cluster and the certificates need.
    pub fn node(&self) -> Result<&PathBuf, BenchError> {
        self.node.as_ref().ok_or_else(|| BenchError::MissingProgram {
            program: "safekeep-node".into(),
            hint: "build it with `cargo build -p safekeep-node --bin safekeep-node`, or pass --node-binary".into(),
        })
    }
}

/// What every cluster's setup needs: its directory, the session's settings,
/// the programs and, with TLS, the development certificates.
#[derive(Debug, Clone)]
pub struct SetupContext {
    /// A fresh directory for this cluster's data, configs and logs.
    pub dir: PathBuf,
    pub settings: Settings,
    pub programs: Programs,
    /// `None` for the plaintext pair.
    pub certs: Option<certs::DevCerts>,
}
