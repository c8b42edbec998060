//! safekeep's gRPC API: the code generated from `proto/safekeep/v1`.
//!
//! `Records` serves applications, `Cluster` and `Admin` serve operators, and
//! `Peer` is the node-to-node channel (Raft messages and forwarded requests).
//! `audit` holds the audit log's hash chain, shared by the node that builds it
//! and the client that verifies it; `wire` holds the metadata names and the
//! "never sent" rule that node and SDK both apply; `tls` how a client dials
//! a node over TLS.

pub mod audit;
pub mod tls;
pub mod wire;

/// Messages and services of package `safekeep.v1`.
pub mod v1 {
    tonic::include_proto!("safekeep.v1");
}

/// Encoded file descriptor set of the client-facing services (`Records`,
/// `Cluster`), for server reflection on the client port.
pub const CLIENT_FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("safekeep_client_descriptor");
