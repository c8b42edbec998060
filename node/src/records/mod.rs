//! The public records API: validation, limits, and the `Records` service
//! that reaches consensus through `raft::Consensus`.

pub mod limits;
pub mod service;
pub mod validate;

pub use service::{RecordsGuard, RecordsService};
