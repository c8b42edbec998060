//! The public records API: validation, limits, and the `Records` service
//! that reaches consensus through `raft::Consensus`.

pub mod service;

pub use service::{RecordsGuard, RecordsService};
