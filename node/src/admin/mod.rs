//! Cluster administration: membership changes, the zone placement guard, the
//! `Cluster` service operators use, and the `Admin` service for tenants and
//! their API keys.

mod cluster_service;
pub mod placement;
mod tenants_service;

pub use cluster_service::ClusterService;
pub use tenants_service::AdminService;
