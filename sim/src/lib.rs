//! safekeep-sim: turmoil simulations that run the real node code (openraft,
//! RocksDB, gRPC) and the real client SDK through zone loss, partitions and
//! crashes, from a seed, and check every history for linearizability and lost
//! writes.
//!
//! `topology` says which hosts exist and where; `scenario` draws a fault
//! schedule from a seed; `cluster`, `workload` and `raw_tenants` put nodes,
//! SDK clients and two tenants' raw gRPC clients on turmoil hosts; `invariants` samples the nodes after every step; `run` ties
//! one run together; `progress` shows how far a soak of many runs has got.

pub mod cluster;
pub mod invariants;
pub mod net;
pub mod progress;
pub mod raw_tenants;
pub mod run;
pub mod scenario;
pub mod topology;
pub mod workload;

pub use run::{RunConfig, RunReport, run};
pub use scenario::Scenario;
pub use topology::Topology;
