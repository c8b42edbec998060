//! safekeep's gRPC API: the code generated from `proto/safekeep/v1`.
//!
//! `Records` serves applications, `Cluster` serves operators, and `Peer` is
//! the node-to-node channel (Raft messages and forwarded requests).

/// Messages and services of package `safekeep.v1`.
pub mod v1 {
    tonic::include_proto!("safekeep.v1");
}

/// Encoded file descriptor set of every safekeep service, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("safekeep_descriptor");
