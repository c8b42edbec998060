//! safekeep-node: the server. A Raft cluster (openraft) of RocksDB replicas
//! spread over availability zones, serving customer records over gRPC; any
//! node answers any request.
//!
//! Layout: `storage/` (log store, state machine, snapshots), `raft/`
//! (consensus and the peer network), `records/` (the public API), `admin/`
//! (membership and placement), `http` (health and metrics), `node` (wiring).

#[cfg(all(feature = "test-faults", not(debug_assertions)))]
compile_error!("`test-faults` compiles in deliberate bugs for simulation tests; never build it in release");

pub mod admin;
pub mod auth;
pub mod config;
pub mod crypto;
pub mod http;
pub mod local_cluster;
pub mod metrics_names;
mod node;
pub mod raft;
pub mod records;
pub mod status;
pub mod storage;
pub mod test_faults;
pub mod tls;
pub mod transport;

pub use config::{InitialMember, NodeConfig};
pub use node::{Node, NodeEnvironment, NodeListeners, StartError};
