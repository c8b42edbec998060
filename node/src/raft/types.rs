//! The Raft handle over safekeep's state machine, and the storage-level
//! types the rest of `raft/` names through here.

pub use crate::storage::types::{NodeId, NodeInfo, RaftRuntime, TypeConfig};

/// The Raft handle over safekeep's state machine.
pub type SafekeepRaft = openraft::Raft<TypeConfig, crate::storage::StateMachineStore>;
