//! A record of the writes RocksDB has not yet synced, so that a simulated
//! power loss can drop them the way a real one would.
//!
//! RocksDB keeps one write-ahead log for every column family, and a sync
//! (`flush_wal(true)` or a write with `sync` set) makes every earlier write
//! durable. What a power loss leaves is therefore a prefix: the state as of
//! the last sync. When a store is opened with `UnsyncedWrites`, every unsynced
//! write first saves the values it is about to replace (its undo), and every
//! sync forgets the undo saved so far. After a power loss, the next open
//! replays the undo newest first, which puts the store back to its last synced
//! state before the node reads anything. A process crash (the operating
//! system survives) keeps every write, so the undo is simply forgotten.
//!
//! Production stores never carry one: this exists for the simulation, where a
//! crash otherwise keeps whatever RocksDB wrote to the (real) file system.

use std::io;
use std::sync::Mutex;

use rocksdb::{DB, WriteBatch, WriteBatchIteratorCf};

use super::columns::{CF_LOG, CF_META, CF_SM, cf, io_err};

/// The column families a write may touch, which the undo names by RocksDB id.
const FAMILIES: [&str; 3] = [CF_META, CF_LOG, CF_SM];

/// A value as it was before an unsynced write: `None` when the key was absent.
#[derive(Debug, Clone)]
struct Undo {
    family: &'static str,
    key: Vec<u8>,
    previous: Option<Vec<u8>>,
}

#[derive(Debug, Default)]
struct State {
    /// Undo of every write since the last sync, oldest first.
    pending: Vec<Undo>,
    /// The host lost power: the next open drops the unsynced writes.
    lost_power: bool,
    /// Writes dropped by power losses so far.
    dropped: u64,
}

/// Unsynced writes of one store, kept by whoever simulates its host so they
/// outlive a crash of the node.
#[derive(Debug, Default)]
pub struct UnsyncedWrites {
    state: Mutex<State>,
}

/// Collects the keys a write batch touches, with their RocksDB family ids.
struct Touched {
    keys: Vec<(u32, Vec<u8>)>,
}

impl WriteBatchIteratorCf for Touched {
    fn put_cf(&mut self, cf_id: u32, key: &[u8], _value: &[u8]) {
        self.keys.push((cf_id, key.to_vec()));
    }

    fn delete_cf(&mut self, cf_id: u32, key: &[u8]) {
        self.keys.push((cf_id, key.to_vec()));
    }

    fn merge_cf(&mut self, cf_id: u32, key: &[u8], _value: &[u8]) {
        self.keys.push((cf_id, key.to_vec()));
    }
}

/// An error for a write the record cannot undo.
fn unsupported(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("unsynced-write tracking cannot undo {what}"),
    )
}

/// RocksDB's ids of the store's column families, learnt by writing a probe
/// into a batch (never into the database) and reading the id back.
pub(crate) fn family_ids(db: &DB) -> Vec<(u32, &'static str)> {
    FAMILIES
        .iter()
        .map(|name| {
            let mut probe = WriteBatch::default();
            probe.put_cf(cf(db, name), b"", b"");
            let mut touched = Touched { keys: Vec::new() };
            probe.iterate_cf(&mut touched);
            (touched.keys[0].0, *name)
        })
        .collect()
}

impl UnsyncedWrites {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The host lost power: writes not synced by now are gone when the store next opens.
    pub fn lose_power(&self) {
        self.state().lost_power = true;
    }

    /// Writes not yet synced.
    pub fn pending(&self) -> usize {
        self.state().pending.len()
    }

    /// Writes dropped by power losses so far.
    pub fn dropped(&self) -> u64 {
        self.state().dropped
    }

    /// Writes `batch` without a sync, saving its undo first. The lock is held
    /// across the write so the record's order is the write-ahead log's.
    /// A key the batch touches twice is undone to its value before the batch.
    /// A batch the record cannot undo (a range deletion) is refused rather
    /// than half recorded.
    pub(crate) fn write(&self, db: &DB, families: &[(u32, &'static str)], batch: WriteBatch) -> io::Result<()> {
        let mut touched = Touched { keys: Vec::new() };
        batch.iterate_cf(&mut touched);
        if touched.keys.len() != batch.len() {
            return Err(unsupported("a write batch with range deletions"));
        }
        let mut state = self.state();
        let mut undo = Vec::with_capacity(touched.keys.len());
        for (id, key) in touched.keys {
            let family = families
                .iter()
                .find(|(known, _)| *known == id)
                .map(|(_, name)| *name)
                .ok_or_else(|| unsupported("a write to an unknown column family"))?;
            let previous = db.get_cf(cf(db, family), &key).map_err(io_err)?;
            undo.push(Undo { family, key, previous });
        }
        db.write(batch).map_err(io_err)?;
        state.pending.extend(undo);
        Ok(())
    }

    /// Runs `sync`, which makes every write before it durable, and forgets
    /// their undo; writes recorded while it runs stay pending.
    pub(crate) fn sync(&self, sync: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let covered = self.state().pending.len();
        sync()?;
        self.state().pending.drain(..covered);
        Ok(())
    }

    /// At open: after a power loss, puts the store back to its last synced
    /// state; after a process crash, keeps everything. Returns the writes dropped.
    pub(crate) fn recover(&self, db: &DB) -> Result<usize, rocksdb::Error> {
        let mut state = self.state();
        let pending = std::mem::take(&mut state.pending);
        if !std::mem::take(&mut state.lost_power) || pending.is_empty() {
            return Ok(0);
        }
        let mut batch = WriteBatch::default();
        for undo in pending.iter().rev() {
            let family = cf(db, undo.family);
            match &undo.previous {
                Some(value) => batch.put_cf(family, &undo.key, value),
                None => batch.delete_cf(family, &undo.key),
            }
        }
        let mut options = rocksdb::WriteOptions::default();
        options.set_sync(true);
        db.write_opt(batch, &options)?;
        state.dropped += pending.len() as u64;
        Ok(pending.len())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::storage::{LogSync, Store};

    fn put(family: &str, store: &Store, key: &[u8], value: &[u8]) -> WriteBatch {
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(store.db(), family), key, value);
        batch
    }

    fn get(store: &Store, family: &str, key: &[u8]) -> Option<Vec<u8>> {
        store.db().get_cf(cf(store.db(), family), key).unwrap()
    }

    fn open(dir: &std::path::Path, unsynced: &Arc<UnsyncedWrites>) -> Store {
        Store::open_tracked(dir, 1, "t", LogSync::Inline, Some(unsynced.clone()), None).unwrap()
    }

    #[test]
    fn a_power_loss_keeps_exactly_the_writes_before_the_last_sync() {
        let dir = tempfile::tempdir().unwrap();
        let unsynced = Arc::new(UnsyncedWrites::new());
        let store = open(dir.path(), &unsynced);
        let db = store.db();
        db.write_unsynced(put(CF_LOG, &store, b"a", b"1")).unwrap();
        db.write_unsynced(put(CF_SM, &store, b"b", b"1")).unwrap();
        db.sync_wal().unwrap();
        assert_eq!(unsynced.pending(), 0, "a sync makes every earlier write durable");
        db.write_unsynced(put(CF_LOG, &store, b"a", b"2")).unwrap();
        db.write_unsynced(put(CF_LOG, &store, b"a", b"3")).unwrap();
        db.write_unsynced(put(CF_SM, &store, b"c", b"1")).unwrap();
        let mut delete = WriteBatch::default();
        delete.delete_cf(cf(db, CF_SM), b"b");
        db.write_unsynced(delete).unwrap();
        assert_eq!(unsynced.pending(), 4);
        drop(store);

        unsynced.lose_power();
        let store = open(dir.path(), &unsynced);
        assert_eq!(get(&store, CF_LOG, b"a").as_deref(), Some(&b"1"[..]));
        assert_eq!(get(&store, CF_SM, b"b").as_deref(), Some(&b"1"[..]));
        assert_eq!(get(&store, CF_SM, b"c"), None);
        assert_eq!(unsynced.dropped(), 4);
        assert_eq!(unsynced.pending(), 0);
    }

    #[test]
    fn a_synced_write_is_kept_with_everything_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let unsynced = Arc::new(UnsyncedWrites::new());
        let store = open(dir.path(), &unsynced);
        store.db().write_unsynced(put(CF_SM, &store, b"x", b"1")).unwrap();
        store.db().write_synced(put(CF_META, &store, b"vote", b"7")).unwrap();
        store.db().write_unsynced(put(CF_SM, &store, b"y", b"1")).unwrap();
        drop(store);
        unsynced.lose_power();
        let store = open(dir.path(), &unsynced);
        assert_eq!(get(&store, CF_SM, b"x").as_deref(), Some(&b"1"[..]));
        assert_eq!(get(&store, CF_META, b"vote").as_deref(), Some(&b"7"[..]));
        assert_eq!(get(&store, CF_SM, b"y"), None);
    }

    #[test]
    fn a_batch_it_cannot_undo_is_refused_and_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let unsynced = Arc::new(UnsyncedWrites::new());
        let store = open(dir.path(), &unsynced);
        store.db().write_synced(put(CF_SM, &store, b"a", b"1")).unwrap();
        let mut batch = put(CF_SM, &store, b"b", b"1");
        batch.delete_range_cf(cf(store.db(), CF_SM), b"a", b"z");
        let error = store.db().write_unsynced(batch).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::Unsupported, "{error}");
        assert_eq!(get(&store, CF_SM, b"a").as_deref(), Some(&b"1"[..]));
        assert_eq!(get(&store, CF_SM, b"b"), None);
    }

    #[test]
    fn a_process_crash_keeps_unsynced_writes() {
        let dir = tempfile::tempdir().unwrap();
        let unsynced = Arc::new(UnsyncedWrites::new());
        let store = open(dir.path(), &unsynced);
        store.db().write_unsynced(put(CF_SM, &store, b"x", b"1")).unwrap();
        drop(store);
        let store = open(dir.path(), &unsynced);
        assert_eq!(get(&store, CF_SM, b"x").as_deref(), Some(&b"1"[..]));
        assert_eq!(unsynced.pending(), 0, "the record starts afresh at open");
        assert_eq!(unsynced.dropped(), 0);
    }
}
