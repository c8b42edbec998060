//! Chaos drills for SREs: a real safekeep cluster (one Linux network
//! namespace per zone and one `safekeep-node` process per node, or, without
//! root, one loopback address per node; or a cluster that runs elsewhere),
//! a real fault (power loss, isolation, a one-way partition, a freeze, a
//! slow zone, the leader's zone lost, a rolling restart, a stalled disk, a
//! node replaced), and a verdict: the history checked for linearizability
//! and lost writes, the SLO figures (write gap, failover, availability,
//! recovery, catch-up, leader changes) and a timeline plot.
//!
//! Layers, lowest first: `netns` (zones as namespaces) and `disks` (data
//! filesystems to stall), `cluster` (the node processes), `faults`,
//! `workload`, `monitor` (the cluster watched), `converge` (replicas
//! compared) and `existing` (a cluster elsewhere), `target` (either
//! cluster), `measure`, `report`, `drill`.

pub mod backups;
pub mod cluster;
pub mod converge;
pub mod disks;
pub mod drill;
pub mod existing;
pub mod faults;
pub mod measure;
pub mod monitor;
pub mod netns;
pub mod report;
pub mod target;
pub mod workload;

pub use drill::{DrillError, DrillOptions, MAX_NODES, MIN_NODES, Progress, TargetOptions, ZONES, run};
pub use existing::ExistingOptions;
pub use faults::FaultKind;
pub use report::DrillReport;
