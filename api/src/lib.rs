//! safekeep's gRPC API: the code generated from `proto/safekeep/v1`.
//!
//! `Records` serves applications, `Cluster` serves operators, and `Peer` is
//! the node-to-node channel (Raft messages and forwarded requests).

/// Messages and services of package `safekeep.v1`.
pub mod v1 {
    tonic::include_proto!("safekeep.v1");
}

/// Encoded file descriptor set of the client-facing services (`Records`,
/// `Cluster`), for server reflection on the client port.
pub const CLIENT_FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("safekeep_client_descriptor");
