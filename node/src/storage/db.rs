//! Opens the node's RocksDB with its column families and checks that the data
//! directory belongs to this node. One database holds the log, the vote and
//! the state machine so they share a single write-ahead log: syncing a log
//! append also makes every earlier state machine write durable.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, DB, Options, WriteBatch, WriteOptions};

use super::identity::{self, Identity};
use super::log_store::{LogStore, LogSync};
use super::state_machine::StateMachineStore;
use super::unsynced::{self, UnsyncedWrites};

/// Column family for the vote, committed index, purge point and identity.
pub(crate) const CF_META: &str = "meta";
/// Column family for log entries, keyed by big-endian index.
pub(crate) const CF_LOG: &str = "log";
/// Column family for the state machine: records, idempotency table, applied state.
pub(crate) const CF_SM: &str = "sm";

/// Subdirectory of the data dir that holds RocksDB's files.
const DB_DIR: &str = "db";
/// Subdirectory of the data dir that holds snapshot files.
const SNAPSHOT_DIR: &str = "snapshots";

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

/// The database, with a signal that fires only once it is fully closed
/// (fields drop in order: RocksDB first, then the signal).
///
/// Writes go through `write_unsynced` or `write_synced` (or `sync_wal`), so
/// that a simulated host can tell which writes a power loss would drop
/// (`UnsyncedWrites`). The one exception is a snapshot install's wipe and
/// ingest, which sit between two synced writes and are redone at open if
/// interrupted, so no power loss can split them from those writes.
pub(crate) struct Db {
    db: DB,
    unsynced: Option<Arc<UnsyncedWrites>>,
    families: Vec<(u32, &'static str)>,
    _closed: tokio::sync::watch::Sender<()>,
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

/// A new non-zero incarnation: from the seed when given, else at random.
fn draw_incarnation(seed: Option<u64>) -> u64 {
    use rand::{Rng, SeedableRng};
    let drawn = match seed {
        Some(seed) => rand::rngs::StdRng::seed_from_u64(seed).random::<u64>(),
        None => rand::random::<u64>(),
    };
    drawn.max(1)
}

/// An opened node store: hands out the log store and the state machine.
pub struct Store {
    log_sync: LogSync,
    db: Arc<Db>,
    data_dir: PathBuf,
    fresh: bool,
    incarnation: u64,
    closed: tokio::sync::watch::Receiver<()>,
}

impl Store {
    /// Opens (or creates) the store under `data_dir` for node `node_id` of
    /// cluster `cluster_name`, refusing a directory that belongs to another.
    pub fn open(data_dir: &Path, node_id: u64, cluster_name: &str, log_sync: LogSync) -> Result<Self, StoreError> {
        Self::open_tracked(data_dir, node_id, cluster_name, log_sync, None, None)
    }

    /// Like `open`, recording unsynced writes in `unsynced` (simulation only):
    /// after a simulated power loss, the store first rolls back to its last
    /// synced state. A directory without an incarnation gets one drawn from
    /// `incarnation_seed` when given (so a simulation replays), else at random.
    pub fn open_tracked(
        data_dir: &Path,
        node_id: u64,
        cluster_name: &str,
        log_sync: LogSync,
        unsynced: Option<Arc<UnsyncedWrites>>,
        incarnation_seed: Option<u64>,
    ) -> Result<Self, StoreError> {
        let db_path = data_dir.join(DB_DIR);
        std::fs::create_dir_all(&db_path).map_err(|source| StoreError::CreateDir {
            path: db_path.clone(),
            source,
        })?;
        let snapshot_dir = data_dir.join(SNAPSHOT_DIR);
        std::fs::create_dir_all(&snapshot_dir).map_err(|source| StoreError::CreateDir {
            path: snapshot_dir,
            source,
        })?;

        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_max_background_jobs(2);
        options.set_bytes_per_sync(1 << 20);
        let families = [CF_META, CF_LOG, CF_SM]
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&options, &db_path, families).map_err(|source| StoreError::Open {
            path: db_path.clone(),
            source,
        })?;
        if let Some(unsynced) = &unsynced {
            let dropped = unsynced.recover(&db).map_err(|source| StoreError::Open {
                path: db_path.clone(),
                source,
            })?;
            if dropped > 0 {
                tracing::info!(dropped, "power loss: dropped writes that were never synced");
            }
        }
        let families = unsynced::family_ids(&db);
        let (closed_tx, closed) = tokio::sync::watch::channel(());
        let db = Arc::new(Db {
            db,
            unsynced,
            families,
            _closed: closed_tx,
        });

        let expected = Identity {
            node_id,
            cluster_name: cluster_name.to_string(),
        };
        let fresh = match identity::load(&db)? {
            None => {
                identity::save(&db, &expected)?;
                true
            }
            Some(found) if found == expected => false,
            Some(found) => {
                return Err(StoreError::WrongIdentity {
                    path: data_dir.to_path_buf(),
                    found_id: found.node_id,
                    found_cluster: found.cluster_name,
                    expected_id: node_id,
                    expected_cluster: cluster_name.to_string(),
                });
            }
        };
        let incarnation = match identity::load_incarnation(&db)? {
            Some(incarnation) => incarnation,
            None => {
                let incarnation = draw_incarnation(incarnation_seed);
                identity::save_incarnation(&db, incarnation)?;
                incarnation
            }
        };
        Ok(Self {
            log_sync,
            db,
            data_dir: data_dir.to_path_buf(),
            fresh,
            incarnation,
            closed,
        })
    }

    /// The data directory's incarnation: drawn at its first start, never 0.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The database itself, for storage tests.
    #[cfg(test)]
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// True when this open created the data directory's identity: the node has never run here.
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// A watch that tells when the database has closed.
    pub fn close_watch(&self) -> StoreCloseWatch {
        StoreCloseWatch(self.closed.clone())
    }

    /// The Raft log and vote store.
    pub fn log_store(&self) -> LogStore {
        LogStore::new(self.db.clone(), self.log_sync)
    }

    /// A reader of log entry fingerprints, for checks that compare replicas.
    pub fn log_fingerprints(&self) -> super::log_store::LogFingerprints {
        super::log_store::LogFingerprints::new(self.db.clone())
    }

    /// The directory snapshot files are received into.
    pub fn snapshot_inbox(&self) -> super::snapshot::SnapshotDir {
        super::snapshot::SnapshotDir::new(self.data_dir.join(SNAPSHOT_DIR))
    }

    /// The replicated state machine, recovering any interrupted snapshot install.
    pub fn state_machine(&self) -> Result<StateMachineStore, StoreError> {
        StateMachineStore::open(self.db.clone(), self.data_dir.join(SNAPSHOT_DIR))
    }
}

/// Tells when a store's database has been closed for good.
pub struct StoreCloseWatch(tokio::sync::watch::Receiver<()>);

impl StoreCloseWatch {
    /// True once the database is closed and its directory may be opened or removed.
    pub fn is_closed(&self) -> bool {
        self.0.has_changed().is_err()
    }
}

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
