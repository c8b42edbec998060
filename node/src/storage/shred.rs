//! The last step of crypto-shredding. Deleting a tenant clears its wrapped
//! data keys from the state machine, but older copies stay behind: in the
//! Raft log (the commands that created and rotated them), in the last
//! snapshot, and in RocksDB's files (memtables, the write-ahead log, SST
//! files holding overwritten versions). Applying a `DeleteTenant` raises
//! `deletions`; the node then has a snapshot taken past it and the log purged
//! up to that snapshot (`raft/`), and `drop_stale_files` flushes and compacts
//! every column family, so the overwritten and purged bytes leave the disk.

use std::io;
use std::sync::Arc;

use rocksdb::{BottommostLevelCompaction, CompactOptions};
use tokio::sync::watch;

use super::columns::{CF_LOG, CF_META, CF_SM, cf, io_err};
use super::handle::Db;

/// The log index of the last `DeleteTenant` applied on this replica (0: none yet).
pub(crate) type Deletions = Arc<watch::Sender<u64>>;

/// Removes a deleted tenant's leftovers from this replica's files.
#[derive(Clone)]
pub struct Shredder {
    db: Arc<Db>,
    deletions: watch::Receiver<u64>,
}

impl Shredder {
    pub(crate) fn new(db: Arc<Db>, deletions: &Deletions) -> Self {
        Self {
            db,
            deletions: deletions.subscribe(),
        }
    }

    /// Resolves with the log index of a tenant deletion applied since the
    /// last call; `None` once the store is gone.
    pub async fn next_deletion(&mut self) -> Option<u64> {
        self.deletions.changed().await.ok()?;
        Some(*self.deletions.borrow_and_update())
    }

    /// Flushes every column family and compacts it to its last level, then
    /// syncs the write-ahead log: overwritten values and purged log entries
    /// are dropped, and write-ahead log files whose writes are all flushed
    /// are deleted. Blocking: call it off the async runtime.
    pub fn drop_stale_files(&self) -> io::Result<()> {
        let mut options = CompactOptions::default();
        options.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
        options.set_exclusive_manual_compaction(false);
        for family in [CF_META, CF_LOG, CF_SM] {
            let handle = cf(&self.db, family);
            self.db.flush_cf(handle).map_err(io_err)?;
            self.db
                .compact_range_cf_opt(handle, None::<&[u8]>, None::<&[u8]>, &options);
        }
        self.db.sync_wal()
    }
}
