//! The cluster shapes a simulation runs: which hosts exist, their zones, and
//! which of them vote. The fault scheduler knows the zones from here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Zones of every topology.
pub use safekeep_node::config::LOCAL_ZONES as ZONES;

/// A cluster shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Topology {
    /// Three voters, one per zone.
    ThreeByOne,
    /// Five voters over three zones, 2-2-1.
    FiveVoters,
    /// Six nodes, two per zone: one voter and one learner in each.
    ThreeByTwo,
}

/// One simulated node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    pub id: u64,
    pub zone: &'static str,
    pub voter: bool,
}

impl HostSpec {
    /// The turmoil host name, which is also its DNS name.
    pub fn name(&self) -> String {
        host_name(self.id)
    }
}

/// The turmoil host name of node `id`.
pub fn host_name(id: u64) -> String {
    format!("n{id}")
}

impl Topology {
    /// Every topology.
    pub const ALL: [Topology; 3] = [Topology::ThreeByOne, Topology::FiveVoters, Topology::ThreeByTwo];

    /// The hosts, in id order.
    pub fn hosts(self) -> Vec<HostSpec> {
        let spec = |id: u64, zone: usize, voter: bool| HostSpec {
            id,
            zone: ZONES[zone],
            voter,
        };
        match self {
            Topology::ThreeByOne => vec![spec(1, 0, true), spec(2, 1, true), spec(3, 2, true)],
            Topology::FiveVoters => vec![
                spec(1, 0, true),
                spec(2, 1, true),
                spec(3, 2, true),
                spec(4, 0, true),
                spec(5, 1, true),
            ],
            Topology::ThreeByTwo => vec![
                spec(1, 0, true),
                spec(2, 1, true),
                spec(3, 2, true),
                spec(4, 0, false),
                spec(5, 1, false),
                spec(6, 2, false),
            ],
        }
    }

    /// Ids of the hosts in `zone`.
    pub fn zone_hosts(self, zone: &str) -> Vec<u64> {
        self.hosts()
            .into_iter()
            .filter(|h| h.zone == zone)
            .map(|h| h.id)
            .collect()
    }

    /// The zone of node `id`.
    pub fn zone_of(self, id: u64) -> Option<&'static str> {
        self.hosts().into_iter().find(|h| h.id == id).map(|h| h.zone)
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Topology::ThreeByOne => "3x1",
            Topology::FiveVoters => "5-voters",
            Topology::ThreeByTwo => "3x2",
        })
    }
}

impl FromStr for Topology {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Topology::ALL
            .into_iter()
            .find(|t| t.to_string() == s)
            .ok_or_else(|| format!("unknown topology '{s}': expected 3x1, 5-voters or 3x2"))
    }
}
