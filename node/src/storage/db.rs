//! Opens the node's RocksDB with its column families and checks that the data
//! directory belongs to this node. One database holds the log, the vote and
//! the state machine so they share a single write-ahead log: syncing a log
//! append also makes every earlier state machine write durable.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, DB, Options};

use super::columns::{CF_LOG, CF_META, CF_SM};
use super::error::StoreError;
use super::handle::Db;
use super::identity::{self, Identity};
use super::log_store::{LogStore, LogSync};
use super::state_machine::StateMachineStore;
use super::unsynced::{self, UnsyncedWrites};

/// Subdirectory of the data dir that holds RocksDB's files.
const DB_DIR: &str = "db";
/// Subdirectory of the data dir that holds snapshot files.
const SNAPSHOT_DIR: &str = "snapshots";

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
    pub(super) db: Arc<Db>,
    data_dir: PathBuf,
    fresh: bool,
    incarnation: u64,
    closed: tokio::sync::watch::Receiver<()>,
    /// Raised by the state machine when it applies a tenant's deletion.
    deletions: super::shred::Deletions,
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
            deletions: Arc::new(tokio::sync::watch::Sender::new(0)),
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

    /// The mark that the cluster acknowledged this directory's join.
    pub fn join_record(&self) -> identity::JoinRecord {
        identity::JoinRecord::new(self.db.clone())
    }

    /// The Raft log and vote store.
    pub fn log_store(&self) -> LogStore {
        LogStore::new(self.db.clone(), self.log_sync)
    }

    /// A reader of log entry fingerprints, for checks that compare replicas.
    pub fn log_fingerprints(&self) -> super::log_store::LogFingerprints {
        super::log_store::LogFingerprints::new(self.db.clone())
    }

    /// A reader of stored log entries, for the backup's log archive.
    pub fn log_archive_reader(&self) -> super::archive_log::LogArchiveReader {
        super::archive_log::LogArchiveReader::new(self.db.clone())
    }

    /// The directory snapshot files are received into.
    pub fn snapshot_inbox(&self) -> super::snapshot::SnapshotDir {
        super::snapshot::SnapshotDir::new(self.data_dir.join(SNAPSHOT_DIR))
    }

    /// The replicated state machine, recovering any interrupted snapshot install.
    /// What removes a deleted tenant's leftovers from this store's files.
    pub fn shredder(&self) -> super::shred::Shredder {
        super::shred::Shredder::new(self.db.clone(), &self.deletions)
    }

    /// The state machine over this store.
    pub fn state_machine(&self) -> Result<StateMachineStore, StoreError> {
        StateMachineStore::open(
            self.db.clone(),
            self.data_dir.join(SNAPSHOT_DIR),
            self.deletions.clone(),
        )
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
