//! Compiles the protobuf definitions with a pure-Rust compiler, so building
//! safekeep needs no system `protoc`. The file descriptor set is kept for gRPC
//! server reflection.

use std::path::PathBuf;

const PROTO_FILES: &[&str] = &[
    "proto/safekeep/v1/records.proto",
    "proto/safekeep/v1/cluster.proto",
    "proto/safekeep/v1/peer.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(PROTO_FILES, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("safekeep_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
