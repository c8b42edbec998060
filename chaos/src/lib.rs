//! Chaos drills for SREs: a real safekeep cluster, one Linux network
//! namespace per zone and one `safekeep-node` process per node, a real
//! fault (power loss, isolation, a one-way partition, a freeze, a slow
//! zone, the leader's zone lost, a rolling restart), and a verdict: the
//! history checked for linearizability and lost writes, the SLO figures
//! (write gap, failover, recovery) and a timeline plot.
//!
//! Layers, lowest first: `netns` (zones as namespaces), `cluster` (the node
//! processes), `faults` and `workload`, `measure`, `report`, `drill`.

pub mod cluster;
pub mod drill;
pub mod faults;
pub mod measure;
pub mod netns;
pub mod report;
pub mod workload;

pub use drill::{DrillError, DrillOptions, ZONES, run};
pub use faults::FaultKind;
pub use report::DrillReport;
