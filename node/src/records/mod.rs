//! The public records API: validation, limits, and the `Records` service
//! that reaches consensus through `raft::Consensus`.

mod export;
pub mod service;

pub use service::{RecordsGuard, RecordsService};
