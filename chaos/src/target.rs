//! What a drill runs against: the local cluster it starts itself (its
//! faults made by the drill), or a cluster that runs elsewhere (its fault
//! made from outside). The drill's steps are the same for both; this is
//! where they differ.

use std::collections::BTreeMap;

use safekeep_client::Client;

use crate::cluster::{ClusterError, DrillCluster};
use crate::existing::{ExistingCluster, ExistingError};
use crate::faults::{self, FaultError, FaultKind, Injected};

/// Why a step against the target failed.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Fault(#[from] FaultError),
    #[error(transparent)]
    Existing(#[from] ExistingError),
}

/// The cluster under drill.
pub enum Target {
    Local(DrillCluster),
    Existing(ExistingCluster),
}

impl Target {
    /// Every endpoint, for an SDK client that follows the leader.
    pub fn endpoints(&self) -> Vec<String> {
        match self {
            Target::Local(cluster) => cluster.endpoints(),
            Target::Existing(cluster) => cluster.endpoints(),
        }
    }

    /// Endpoints that each stand for one zone, for a client pinned to it:
    /// the local cluster's zones, or each endpoint given.
    pub fn zone_endpoints(&self) -> Vec<Vec<String>> {
        match self {
            Target::Local(cluster) => cluster
                .zones()
                .iter()
                .map(|zone| {
                    cluster
                        .zone_members(zone)
                        .iter()
                        .map(|id| cluster.nodes[id].client_address.to_string())
                        .collect()
                })
                .collect(),
            Target::Existing(cluster) => cluster.endpoints().into_iter().map(|e| vec![e]).collect(),
        }
    }

    /// Each node's id (or label) and endpoint, for reads of its own replica.
    pub fn node_endpoints(&self) -> Vec<(u64, String)> {
        match self {
            Target::Local(cluster) => cluster
                .nodes
                .values()
                .map(|n| (n.id, n.client_address.to_string()))
                .collect(),
            Target::Existing(cluster) => (1..).zip(cluster.endpoints()).collect(),
        }
    }

    /// What the watch asks, each on its own: an id (or label) and an endpoint.
    pub fn watch_targets(&self) -> Vec<(u64, String)> {
        match self {
            Target::Local(cluster) => cluster.watch_targets(),
            Target::Existing(cluster) => (1..).zip(cluster.endpoints()).collect(),
        }
    }

    /// An SDK client over `endpoints`, as the operator or with `api_key`.
    pub async fn client(&self, endpoints: Vec<String>, api_key: Option<&str>) -> Result<Client, TargetError> {
        Ok(match self {
            Target::Local(cluster) => cluster.client(endpoints, api_key).await?,
            Target::Existing(cluster) => cluster.client(endpoints, api_key).await?,
        })
    }

    /// An API key for each of the workload's tenants.
    pub async fn tenant_keys(&mut self, run: &str) -> Result<BTreeMap<String, String>, TargetError> {
        Ok(match self {
            Target::Local(cluster) => cluster.tenant_keys().await?,
            Target::Existing(cluster) => cluster.tenant_keys(run).await?.into_iter().collect(),
        })
    }

    /// The ids of the nodes now in the cluster, where the drill knows them.
    pub fn node_ids(&self) -> Vec<u64> {
        match self {
            Target::Local(cluster) => cluster.nodes.keys().copied().collect(),
            Target::Existing(_) => Vec::new(),
        }
    }

    /// Makes the fault (locally) or has it made (elsewhere).
    pub async fn inject(&mut self, kind: FaultKind, zone: &str) -> Result<Injected, TargetError> {
        Ok(match self {
            Target::Local(cluster) => faults::inject(cluster, kind, zone).await?,
            Target::Existing(cluster) => Injected {
                kind,
                zone: zone.to_string(),
                nodes: Vec::new(),
                mechanism: cluster.begin_fault().await?,
            },
        })
    }

    /// Undoes the fault (locally) or has it undone (elsewhere).
    pub async fn heal(&mut self, injected: &Injected) -> Result<(), TargetError> {
        match self {
            Target::Local(cluster) => faults::heal(cluster, injected).await?,
            Target::Existing(cluster) => cluster.end_fault().await?,
        }
        Ok(())
    }

    /// True when an SRE marks the fault's end by hand, so the drill does not hold it for `--outage`.
    pub fn outage_marked_by_hand(&self) -> bool {
        match self {
            Target::Local(_) => false,
            Target::Existing(cluster) => cluster.marked_by_hand(),
        }
    }

    /// Stops what the drill started: the local nodes, or this run's keys elsewhere.
    pub async fn finish(&mut self) {
        match self {
            Target::Local(cluster) => cluster.stop_all().await,
            Target::Existing(cluster) => cluster.revoke_keys().await,
        }
    }
}
