//! The column families of the node's one RocksDB database, and the
//! conversions of RocksDB's and the encoder's errors into the I/O errors
//! openraft's storage traits carry. Every file of `storage/` builds on this.

use rocksdb::DB;

/// Column family for the vote, committed index, purge point and identity.
pub(crate) const CF_META: &str = "meta";
/// Column family for log entries, keyed by big-endian index.
pub(crate) const CF_LOG: &str = "log";
/// Column family for the state machine: records, idempotency table, applied state.
pub(crate) const CF_SM: &str = "sm";

/// Maps a RocksDB error into the I/O error openraft's storage traits carry.
pub(crate) fn io_err(e: rocksdb::Error) -> std::io::Error {
    std::io::Error::other(e.into_string())
}

/// Maps an encoding error into an I/O error of kind `InvalidData`.
pub(crate) fn decode_err(e: postcard::Error) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

/// Looks up a column family that `Store::open` always creates.
pub(crate) fn cf<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    // Every family is created by `Store::open`; a missing one is a programming error.
    db.cf_handle(name)
        .unwrap_or_else(|| panic!("column family {name} is created at open"))
}
