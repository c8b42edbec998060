//! Cluster administration: membership changes, the zone placement guard, and
//! the `Cluster` service operators use.

mod cluster_service;
pub mod placement;

pub use cluster_service::ClusterService;
