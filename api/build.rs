//! Compiles the protobuf definitions with a pure-Rust compiler, so building
//! safekeep needs no system `protoc`. The client services' file descriptor set
//! is kept for gRPC server reflection.

use std::path::PathBuf;

/// Services clients reach on a node's client port.
const CLIENT_PROTO_FILES: &[&str] = &[
    "proto/safekeep/v1/records.proto",
    "proto/safekeep/v1/cluster.proto",
    "proto/safekeep/v1/admin.proto",
];
/// Every service, including the node-to-node channel.
const PROTO_FILES: &[&str] = &[
    "proto/safekeep/v1/records.proto",
    "proto/safekeep/v1/cluster.proto",
    "proto/safekeep/v1/admin.proto",
    "proto/safekeep/v1/peer.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // Reflection on the client port describes only what clients may call.
    let client_descriptors = protox::compile(CLIENT_PROTO_FILES, ["proto"])?;
    std::fs::write(
        out_dir.join("safekeep_client_descriptor.bin"),
        prost::Message::encode_to_vec(&client_descriptors),
    )?;
    let descriptors = protox::compile(PROTO_FILES, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
