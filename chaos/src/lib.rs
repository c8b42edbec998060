//! Chaos drills for SREs: a real safekeep cluster, one Linux network
//! namespace per zone and one `safekeep-node` process per node, a real
//! fault (power loss, isolation, a one-way partition, a freeze, a slow
//! zone, the leader's zone lost, a rolling restart, a stalled disk), and a verdict: the
//! history checked for linearizability and lost writes, the SLO figures
//! (write gap, failover, recovery) and a timeline plot.
//!
//! Layers, lowest first: `netns` (zones as namespaces) and `disks` (data
//! filesystems to stall), `cluster` (the node
//! processes), `faults` and `workload`, `measure`, `report`, `drill`.

pub mod cluster;
pub mod disks;
pub mod drill;
pub mod faults;
pub mod measure;
pub mod netns;
pub mod report;
pub mod workload;

pub use drill::{DrillError, DrillOptions, ZONES, run};
pub use faults::FaultKind;
pub use report::DrillReport;
