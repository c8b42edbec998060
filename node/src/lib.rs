//! safekeep-node: the server. A Raft cluster (openraft) of RocksDB replicas
//! spread over availability zones, serving customer records over gRPC; any
//! node answers any request.
//!
//! Layers, each importing only from those below it (the workspace's
//! `layers` test holds them): `model/`, `identity`, `metrics_names`,
//! `logging`; then
//! `config`, `transport`; `storage/` and `tls/`; `environment`; `crypto/`;
//! `raft/`; `backup/` and `retention`; `status`; `auth/`; `records/` and `admin/`; `http`, `serve`,
//! `node` (wiring); `local_cluster/`.

#[cfg(all(feature = "test-faults", not(debug_assertions)))]
compile_error!("`test-faults` compiles in deliberate bugs for simulation tests; never build it in release");

pub mod admin;
pub mod auth;
pub mod backup;
pub mod config;
pub mod crypto;
pub mod environment;
pub mod http;
pub mod identity;
pub mod local_cluster;
pub mod logging;
pub mod metrics_names;
pub mod model;
mod node;
pub mod raft;
pub mod records;
pub mod retention;
mod serve;
pub mod status;
pub mod storage;
pub mod test_faults;
pub mod tls;
pub mod transport;

pub use config::{InitialMember, NodeConfig};
pub use environment::NodeEnvironment;
pub use node::{Node, NodeListeners, StartError};
