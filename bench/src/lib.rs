//! safekeep-bench: benchmarks safekeep side by side with etcd on one machine.
//!
//! A session starts a three-member cluster of each system on loopback
//! (`targets/`), writes the keys a read workload needs, and then runs the
//! workload (`workloads`) through each system's own client library with a
//! number of clients in flight (`load`), alternating the systems and, round
//! by round, which of them goes first (`session`). Besides the clients' throughput and latency it reads
//! the servers' CPU time and memory from `/proc` (`measure`), and reports
//! medians with the safekeep/etcd ratio (`report`) and a plot (`plot`).

pub mod error;
pub mod load;
pub mod measure;
pub mod operations;
pub mod plot;
pub mod procs;
pub mod report;
pub mod session;
pub mod settings;
pub mod targets;
pub mod workloads;

pub use error::BenchError;
pub use report::Report;
pub use session::{SessionOptions, run};
pub use settings::{Ports, Security, Settings};
pub use targets::{Programs, TargetKind};
pub use workloads::Workload;
