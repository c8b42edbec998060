//! Why the node's storage could not be opened or read.

use std::path::PathBuf;

/// Why the node's storage could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("cannot open RocksDB at {path}: {source}")]
    Open { path: PathBuf, source: rocksdb::Error },
    #[error("storage I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "data directory {path} belongs to node {found_id} of cluster '{found_cluster}', \
         but this node is {expected_id} of cluster '{expected_cluster}'; \
         node ids are never reused: give this node an empty data directory"
    )]
    WrongIdentity {
        path: PathBuf,
        found_id: u64,
        found_cluster: String,
        expected_id: u64,
        expected_cluster: String,
    },
    #[error("corrupt storage metadata: {0}")]
    Corrupt(String),
}
