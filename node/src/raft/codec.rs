//! Encoding of Raft messages and forwarded requests on the peer channel.
//! Peers run the same release, so openraft's own serde types travel as-is in
//! a compact binary encoding.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A peer message could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("peer message encoding: {0}")]
pub struct CodecError(#[from] postcard::Error);

/// Encodes a message for the peer channel.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(postcard::to_allocvec(value)?)
}

/// Decodes a message from the peer channel.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    Ok(postcard::from_bytes(bytes)?)
}

impl From<CodecError> for tonic::Status {
    fn from(e: CodecError) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}
