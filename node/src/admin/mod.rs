//! Cluster administration: the `Cluster` service operators use for
//! membership changes (checked against the zone placement guard in
//! `raft::placement`), and the `Admin` service for tenants and their API keys.

mod backups;
mod cluster_service;
mod tenants_service;

pub use cluster_service::ClusterService;
pub use tenants_service::AdminService;
