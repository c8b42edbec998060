//! The handle every part of the store writes through: RocksDB, with the
//! record of unsynced writes a simulated power loss drops, and a signal that
//! fires once the database has closed.

use std::sync::Arc;

use rocksdb::{DB, WriteBatch, WriteOptions};

use super::columns::io_err;
use super::unsynced::UnsyncedWrites;

/// The database, with a signal that fires only once it is fully closed
/// (fields drop in order: RocksDB first, then the signal).
///
/// Writes go through `write_unsynced` or `write_synced` (or `sync_wal`), so
/// that a simulated host can tell which writes a power loss would drop
/// (`UnsyncedWrites`). The one exception is a snapshot install's wipe and
/// ingest, which sit between two synced writes and are redone at open if
/// interrupted, so no power loss can split them from those writes.
pub(crate) struct Db {
    pub(super) db: DB,
    pub(super) unsynced: Option<Arc<UnsyncedWrites>>,
    pub(super) families: Vec<(u32, &'static str)>,
    pub(super) _closed: tokio::sync::watch::Sender<()>,
}

impl Db {
    /// Writes `batch` without a sync: durable only once a later sync covers it.
    pub(crate) fn write_unsynced(&self, batch: WriteBatch) -> std::io::Result<()> {
        match &self.unsynced {
            Some(unsynced) => unsynced.write(&self.db, &self.families, batch),
            None => self.db.write(batch).map_err(io_err),
        }
    }

    /// Writes `batch` and syncs the write-ahead log, which makes it and every
    /// earlier write durable before this returns.
    pub(crate) fn write_synced(&self, batch: WriteBatch) -> std::io::Result<()> {
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.synced(|| self.db.write_opt(batch, &options).map_err(io_err))
    }

    /// Syncs the write-ahead log: every write so far is durable.
    pub(crate) fn sync_wal(&self) -> std::io::Result<()> {
        self.synced(|| self.db.flush_wal(true).map_err(io_err))
    }

    fn synced(&self, sync: impl FnOnce() -> std::io::Result<()>) -> std::io::Result<()> {
        match &self.unsynced {
            Some(unsynced) => unsynced.sync(sync),
            None => sync(),
        }
    }
}

impl std::ops::Deref for Db {
    type Target = DB;

    fn deref(&self) -> &DB {
        &self.db
    }
}
