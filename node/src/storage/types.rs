//! The openraft type configuration: what safekeep's log carries (`Command`),
//! what applying it returns, and what the cluster knows of each member. It
//! lives with the storage that persists these types; `raft/` builds on it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::command::{Command, CommandResponse};

/// What every member of the cluster is known by: its zone, its addresses,
/// and the incarnation of the data directory it joined with.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Availability zone label, used by the placement guard.
    pub zone: String,
    /// Address other nodes reach this node's peer channel at.
    pub peer_address: String,
    /// Address clients reach this node at.
    pub client_address: String,
    /// The member's data directory incarnation (see `storage::identity`);
    /// 0 when not known yet, and then not checked.
    pub incarnation: u64,
}

impl NodeInfo {
    /// Whether `other` names the same zone and addresses (incarnations aside).
    pub fn same_place(&self, other: &NodeInfo) -> bool {
        self.zone == other.zone
            && self.peer_address == other.peer_address
            && self.client_address == other.client_address
    }
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "zone={} peer={} client={}",
            self.zone, self.peer_address, self.client_address
        )?;
        if self.incarnation != 0 {
            write!(f, " incarnation={:016x}", self.incarnation)?;
        }
        Ok(())
    }
}

openraft::declare_raft_types!(
    /// safekeep's Raft types. Standard Raft leader ids (one vote per term), so
    /// there is at most one leader per term, as in the Raft paper and etcd.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = u64,
        Node = NodeInfo,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, u64>,
        AsyncRuntime = RaftRuntime,
);

/// Tokio, with openraft's random draws (election timeouts) taken from a
/// seed: random per process in production, fixed by the simulation so a
/// replay draws the same timeouts.
pub type RaftRuntime = openraft::rt::deterministic_rng::DeterministicRng<openraft_rt_tokio::TokioRuntime>;

/// A node id: assigned by the operator, never reused.
pub type NodeId = u64;
