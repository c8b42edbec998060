//! Snapshot files: the state machine at one log index, written as one SST
//! file from one RocksDB snapshot, so its metadata (applied log id and
//! membership, stored among the state machine's own keys) and its data
//! describe the same instant and no newer write leaks in.
//!
//! The current snapshot is named by a pointer in the meta column family.
//! Installing a received snapshot is redone from its file if the node crashes
//! midway: a synced "installing" marker is written first and removed last.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::alias::SnapshotMetaOf;
use rocksdb::{DB, IngestExternalFileOptions, IteratorMode, Options, SstFileWriter, WriteBatch};
use serde::{Deserialize, Serialize};

use super::columns::{CF_META, CF_SM, cf, decode_err, io_err};
use super::handle::Db;
use super::keys::{END_TAG, META_TAG, meta_key};
use super::types::TypeConfig;

/// Meta key naming the current snapshot file and its metadata.
const CURRENT_KEY: &[u8] = b"snapshot_current";
/// Meta key present while a received snapshot is being installed.
const INSTALLING_KEY: &[u8] = b"snapshot_installing";
/// State machine key always present in a snapshot, so its SST is never empty.
pub const FORMAT_KEY: &str = "format";
/// Version of the snapshot layout.
pub const FORMAT_VERSION: u32 = 1;
/// Suffix of snapshot files.
const SNAPSHOT_SUFFIX: &str = ".sst";

/// A snapshot's data: an open SST file, read at offsets (so several readers can share it).
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    pub path: PathBuf,
    pub file: Arc<File>,
    pub len: u64,
}

impl SnapshotFile {
    /// Opens a snapshot file for reading.
    pub fn open(path: PathBuf) -> io::Result<Self> {
        let file = File::open(&path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            path,
            file: Arc::new(file),
            len,
        })
    }
}

/// Where a snapshot file is and what it holds, as stored in the pointer.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnapshotPointer {
    file_name: String,
    meta: SnapshotMetaOf<TypeConfig>,
}

/// The directory of snapshot files and the pointer to the current one.
/// Building and installing run concurrently in openraft; one lock, shared by
/// every clone, orders their file and pointer changes.
#[derive(Debug, Clone)]
pub struct SnapshotDir {
    dir: PathBuf,
    lock: Arc<std::sync::Mutex<()>>,
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl SnapshotDir {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            lock: Arc::default(),
        }
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A fresh path for a file being received from the leader.
    pub fn incoming_path(&self) -> PathBuf {
        self.dir
            .join(format!("incoming-{:016x}{SNAPSHOT_SUFFIX}.part", rand::random::<u64>()))
    }

    fn file_name_for(meta: &SnapshotMetaOf<TypeConfig>) -> String {
        let index = meta.last_log_id.as_ref().map_or(0, |id| id.index);
        format!("snapshot-{index:020}-{:08x}{SNAPSHOT_SUFFIX}", rand::random::<u32>())
    }

    /// The current snapshot, if one was built or installed.
    pub fn current(&self, db: &DB) -> io::Result<Option<(SnapshotMetaOf<TypeConfig>, SnapshotFile)>> {
        let Some(bytes) = db.get_cf(cf(db, CF_META), CURRENT_KEY).map_err(io_err)? else {
            return Ok(None);
        };
        let pointer: SnapshotPointer = postcard::from_bytes(&bytes).map_err(decode_err)?;
        let file = SnapshotFile::open(self.dir.join(&pointer.file_name))?;
        Ok(Some((pointer.meta, file)))
    }

    /// Makes `file_name` the current snapshot and removes every other snapshot file.
    fn set_current(
        &self,
        db: &DB,
        file_name: &str,
        meta: &SnapshotMetaOf<TypeConfig>,
        batch: &mut WriteBatch,
    ) -> io::Result<()> {
        let pointer = SnapshotPointer {
            file_name: file_name.to_string(),
            meta: meta.clone(),
        };
        batch.put_cf(
            cf(db, CF_META),
            CURRENT_KEY,
            postcard::to_allocvec(&pointer).map_err(decode_err)?,
        );
        Ok(())
    }

    /// Deletes snapshot files other than the current one, and unfinished
    /// incoming files when `incoming` (only at open: later, one may be arriving).
    pub fn remove_stale(&self, db: &DB, incoming: bool) -> io::Result<()> {
        let current = match db.get_cf(cf(db, CF_META), CURRENT_KEY).map_err(io_err)? {
            Some(bytes) => Some(
                postcard::from_bytes::<SnapshotPointer>(&bytes)
                    .map_err(decode_err)?
                    .file_name,
            ),
            None => None,
        };
        let installing = db.get_cf(cf(db, CF_META), INSTALLING_KEY).map_err(io_err)?.is_some();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_current = current.as_deref() == Some(name.as_str());
            if is_current || (installing && name.starts_with("snapshot-")) {
                continue;
            }
            let stale = name.starts_with("snapshot-") || (incoming && name.starts_with("incoming-"));
            if stale || name.starts_with("building-") {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }

    /// Writes the state machine as of one RocksDB snapshot into a new SST
    /// file, makes it current, and returns its metadata and file.
    pub(crate) fn build(&self, db: &Db) -> io::Result<(SnapshotMetaOf<TypeConfig>, SnapshotFile)> {
        let sm = cf(db, CF_SM);
        let view = db.snapshot();
        let meta = read_meta_at(|key| view.get_cf(sm, key).map_err(io_err))?;

        let building = self
            .dir
            .join(format!("building-{:016x}{SNAPSHOT_SUFFIX}", rand::random::<u64>()));
        let options = Options::default();
        let mut writer = SstFileWriter::create(&options);
        writer.open(&building).map_err(io_err)?;
        for item in view.iterator_cf(sm, IteratorMode::Start) {
            let (key, value) = item.map_err(io_err)?;
            writer.put(&key, &value).map_err(io_err)?;
        }
        writer.finish().map_err(io_err)?;
        drop(view);
        File::open(&building)?.sync_all()?;

        let _guard = self.guard();
        if let Some((current, file)) = self.current(db)?
            && current.last_log_id >= meta.last_log_id
        {
            // An install overtook this build: keep the newer snapshot.
            std::fs::remove_file(&building)?;
            return Ok((current, file));
        }
        let file_name = Self::file_name_for(&meta);
        let path = self.dir.join(&file_name);
        std::fs::rename(&building, &path)?;
        sync_dir(&self.dir)?;
        let mut batch = WriteBatch::default();
        self.set_current(db, &file_name, &meta, &mut batch)?;
        // Synced together with the WAL, so the state the snapshot covers is durable too.
        db.write_synced(batch)?;
        self.remove_stale(db, false)?;
        Ok((meta, SnapshotFile::open(path)?))
    }

    /// Replaces the state machine with a received snapshot, durably and
    /// redoably: marker, wipe, ingest, unmark.
    pub(crate) fn install(
        &self,
        db: &Db,
        meta: &SnapshotMetaOf<TypeConfig>,
        received: &SnapshotFile,
    ) -> io::Result<()> {
        let _guard = self.guard();
        received.file.sync_all()?;
        let file_name = Self::file_name_for(meta);
        std::fs::rename(&received.path, self.dir.join(&file_name))?;
        sync_dir(&self.dir)?;

        let mut batch = WriteBatch::default();
        self.set_current(db, &file_name, meta, &mut batch)?;
        batch.put_cf(cf(db, CF_META), INSTALLING_KEY, file_name.as_bytes());
        db.write_synced(batch)?;

        self.ingest(db, &file_name)?;
        let mut unmark = WriteBatch::default();
        unmark.delete_cf(cf(db, CF_META), INSTALLING_KEY);
        db.write_synced(unmark)?;
        self.remove_stale(db, false)
    }

    /// Finishes an install a crash interrupted, if any. Returns whether it did.
    pub(crate) fn resume_install(&self, db: &Db) -> io::Result<bool> {
        let Some(name) = db.get_cf(cf(db, CF_META), INSTALLING_KEY).map_err(io_err)? else {
            return Ok(false);
        };
        let file_name =
            String::from_utf8(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad marker"))?;
        self.ingest(db, &file_name)?;
        let mut unmark = WriteBatch::default();
        unmark.delete_cf(cf(db, CF_META), INSTALLING_KEY);
        db.write_synced(unmark)?;
        Ok(true)
    }

    fn ingest(&self, db: &DB, file_name: &str) -> io::Result<()> {
        let sm = cf(db, CF_SM);
        // Everything the state machine holds sorts between these two keys.
        db.delete_range_cf(sm, [META_TAG], [END_TAG]).map_err(io_err)?;
        let mut options = IngestExternalFileOptions::default();
        options.set_move_files(false);
        db.ingest_external_file_cf_opts(sm, &options, vec![self.dir.join(file_name)])
            .map_err(io_err)
    }
}

/// Reads the applied log id and membership through `get`, as a snapshot's metadata.
pub fn read_meta_at(get: impl Fn(&[u8]) -> io::Result<Option<Vec<u8>>>) -> io::Result<SnapshotMetaOf<TypeConfig>> {
    let last_log_id = match get(&meta_key(super::keys::APPLIED_KEY))? {
        Some(bytes) => postcard::from_bytes(&bytes).map_err(decode_err)?,
        None => None,
    };
    let last_membership = match get(&meta_key(super::keys::MEMBERSHIP_KEY))? {
        Some(bytes) => postcard::from_bytes(&bytes).map_err(decode_err)?,
        None => Default::default(),
    };
    Ok(SnapshotMetaOf::<TypeConfig> {
        last_log_id,
        last_membership,
    })
}
