//! The Raft log and vote in RocksDB.
//!
//! Durability before acknowledgement: a vote is written with a synced write
//! before `save_vote` returns. Appends are written unsynced and handed to one
//! sync thread, which takes every append queued so far, syncs the write-ahead
//! log once for all of them (group commit) and only then tells openraft they
//! are flushed, in order. Simulation syncs inline instead (`LogSync::Inline`);
//! both modes acknowledge through the same `flush_group`.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::sync::mpsc;

use openraft::OptionalSend;
use openraft::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use rocksdb::{Direction, IteratorMode, WriteBatch};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::columns::{CF_LOG, CF_META, cf, decode_err, io_err};
use super::handle::Db;
use super::types::TypeConfig;

const VOTE_KEY: &[u8] = b"vote";
const COMMITTED_KEY: &[u8] = b"committed";
const LAST_PURGED_KEY: &[u8] = b"last_purged";

/// Most appends one sync covers; bounds how long the first waits behind the rest.
const MAX_APPENDS_PER_SYNC: usize = 4096;
/// Most bytes of entries one replication message carries (at least one entry
/// always goes, and the largest entry fits the peer channel's message limit).
pub const MAX_REPLICATION_BYTES: usize = 8 << 20;

type Flushed = IOFlushed<TypeConfig>;

/// How appends reach the disk before openraft hears they are flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSync {
    /// A sync thread covers every append queued so far with one WAL sync.
    GroupCommit,
    /// Each append syncs before `append` returns, on the caller's task: no
    /// thread, so a simulation's scheduler alone orders everything.
    Inline,
}

/// The log store handed to openraft; cheap to clone (readers share it).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Db>,
    /// Absent for `LogSync::Inline`.
    syncer: Option<Arc<Syncer>>,
}

/// The sync thread and its queue. Dropping the last handle closes the queue
/// and joins the thread, so the database is never still closing in the
/// background when its owner thinks it is gone.
struct Syncer {
    queue: Option<mpsc::Sender<Flushed>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Syncer {
    fn send(&self, callback: Flushed) -> io::Result<()> {
        self.queue
            .as_ref()
            .and_then(|queue| queue.send(callback).ok())
            .ok_or_else(|| io::Error::other("log sync thread has stopped"))
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One stored log entry reduced to what replicas must agree on once it is
/// committed: its index, its term and a hash of its encoded bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryFingerprint {
    pub index: u64,
    pub term: u64,
    pub hash: u64,
}

/// Reads fingerprints of the entries a replica still holds, so a checker can
/// compare committed entries across replicas. Read-only; holds no sync thread.
#[derive(Clone)]
pub struct LogFingerprints {
    db: Arc<Db>,
}

impl LogFingerprints {
    pub(crate) fn new(db: Arc<Db>) -> Self {
        Self { db }
    }

    /// Fingerprints of the stored entries with index in `range`, in order;
    /// entries already purged (covered by a snapshot) are simply absent.
    pub fn read(&self, range: std::ops::RangeInclusive<u64>) -> io::Result<Vec<EntryFingerprint>> {
        use std::hash::{DefaultHasher, Hasher};
        let mut fingerprints = Vec::new();
        visit_stored(&self.db, &range, |index, bytes| {
            let entry: EntryOf<TypeConfig> = postcard::from_bytes(bytes).map_err(decode_err)?;
            let mut hasher = DefaultHasher::new();
            hasher.write(bytes);
            fingerprints.push(EntryFingerprint {
                index,
                term: entry.log_id().leader_id.term,
                hash: hasher.finish(),
            });
            Ok(())
        })?;
        Ok(fingerprints)
    }
}

/// Calls `visit` with the index and encoded bytes of every stored entry in
/// `range`, in index order.
pub(super) fn visit_stored(
    db: &Db,
    range: &impl RangeBounds<u64>,
    mut visit: impl FnMut(u64, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let start = match range.start_bound() {
        Bound::Included(i) => *i,
        Bound::Excluded(i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let iter = db.iterator_cf(
        cf(db, CF_LOG),
        IteratorMode::From(&index_key(start), Direction::Forward),
    );
    for item in iter {
        let (key, value) = item.map_err(io_err)?;
        let index = index_of(&key)?;
        if !range.contains(&index) {
            break;
        }
        visit(index, &value)?;
    }
    Ok(())
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn index_of(key: &[u8]) -> io::Result<u64> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "log key is not 8 bytes"))?;
    Ok(u64::from_be_bytes(bytes))
}

impl LogStore {
    pub(crate) fn new(db: Arc<Db>, mode: LogSync) -> Self {
        if mode == LogSync::Inline {
            return Self { db, syncer: None };
        }
        let (tx, rx) = mpsc::channel::<Flushed>();
        let sync_db = db.clone();
        let thread = std::thread::Builder::new()
            .name("safekeep-log-sync".into())
            .spawn(move || run_syncer(&sync_db, &rx))
            .expect("spawning the log sync thread");
        let syncer = Syncer {
            queue: Some(tx),
            thread: Some(thread),
        };
        Self {
            db,
            syncer: Some(Arc::new(syncer)),
        }
    }

    fn get_meta<T: DeserializeOwned>(&self, key: &[u8]) -> io::Result<Option<T>> {
        let Some(bytes) = self.db.get_cf(cf(&self.db, CF_META), key).map_err(io_err)? else {
            return Ok(None);
        };
        postcard::from_bytes(&bytes).map(Some).map_err(decode_err)
    }

    fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
        postcard::to_allocvec(value).map_err(decode_err)
    }
}

/// Syncs the write-ahead log once per group of queued appends, then completes them in order.
fn run_syncer(db: &Db, queue: &mpsc::Receiver<Flushed>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_APPENDS_PER_SYNC {
            match queue.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        flush_group(db, group);
    }
}

/// Syncs the write-ahead log once, then tells openraft each append in
/// `group` is flushed, in order. Both sync modes end here, so the simulation
/// runs the same acknowledgement code as production.
fn flush_group(db: &Db, group: Vec<Flushed>) {
    let result = if crate::test_faults::enabled(crate::test_faults::TestFault::AckBeforeSync) {
        // A deliberate bug for the simulation to catch: the appends are
        // acknowledged as flushed, but never synced.
        Ok(())
    } else {
        db.sync_wal()
    };
    for callback in group {
        let outcome = match &result {
            Ok(()) => Ok(()),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        };
        callback.io_completed(outcome);
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryOf<TypeConfig>>, io::Error> {
        let mut entries = Vec::new();
        visit_stored(&self.db, &range, |_, bytes| {
            entries.push(postcard::from_bytes(bytes).map_err(decode_err)?);
            Ok(())
        })?;
        Ok(entries)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<TypeConfig>>, io::Error> {
        self.get_meta(VOTE_KEY)
    }

    /// Entries in `[start, end)` up to a byte budget, so a run of large
    /// values never makes a replication message the peer channel refuses.
    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<EntryOf<TypeConfig>>, io::Error> {
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        let iter = self.db.iterator_cf(
            cf(&self.db, CF_LOG),
            IteratorMode::From(&index_key(start), Direction::Forward),
        );
        for item in iter {
            let (key, value) = item.map_err(io_err)?;
            if index_of(&key)? >= end || (!entries.is_empty() && bytes + value.len() > MAX_REPLICATION_BYTES) {
                break;
            }
            bytes += value.len();
            entries.push(postcard::from_bytes(&value).map_err(decode_err)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged: Option<LogIdOf<TypeConfig>> = self.get_meta(LAST_PURGED_KEY)?;
        let last = self.db.iterator_cf(cf(&self.db, CF_LOG), IteratorMode::End).next();
        let last_log_id = match last {
            Some(item) => {
                let (_, value) = item.map_err(io_err)?;
                let entry: EntryOf<TypeConfig> = postcard::from_bytes(&value).map_err(decode_err)?;
                Some(entry.log_id())
            }
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<TypeConfig>) -> Result<(), io::Error> {
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, CF_META), VOTE_KEY, Self::encode(vote)?);
        self.db.write_synced(batch)
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<TypeConfig>>) -> Result<(), io::Error> {
        // Not synced: a lost committed index is only re-learned from the leader.
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, CF_META), COMMITTED_KEY, Self::encode(&committed)?);
        self.db.write_unsynced(batch)
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<TypeConfig>>, io::Error> {
        Ok(self.get_meta::<Option<LogIdOf<TypeConfig>>>(COMMITTED_KEY)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = EntryOf<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        let log = cf(&self.db, CF_LOG);
        for entry in entries {
            batch.put_cf(log, index_key(entry.index()), Self::encode(&entry)?);
        }
        self.db.write_unsynced(batch)?;
        match &self.syncer {
            Some(syncer) => syncer.send(callback),
            None => {
                flush_group(&self.db, vec![callback]);
                Ok(())
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<TypeConfig>>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |id| id.index() + 1);
        // Synced: entries a new leader overwrote must not come back after a crash.
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf(&self.db, CF_LOG), index_key(from), index_key(u64::MAX));
        batch.delete_cf(cf(&self.db, CF_LOG), index_key(u64::MAX));
        self.db.write_synced(batch)
    }

    async fn purge(&mut self, log_id: LogIdOf<TypeConfig>) -> Result<(), io::Error> {
        // The purge point and the deletion land in one batch, so a crash
        // never leaves entries gone without the point that says so.
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, CF_META), LAST_PURGED_KEY, Self::encode(&log_id)?);
        batch.delete_range_cf(cf(&self.db, CF_LOG), index_key(0), index_key(log_id.index() + 1));
        self.db.write_synced(batch)
    }
}

#[cfg(test)]
mod tests {
    use openraft::testing::blank_ent;
    use openraft::{Entry, EntryPayload};

    use super::*;
    use crate::model::command::{Command, CommandBody, Mutation};
    use crate::storage::{LogSync, Store};

    fn big_entry(index: u64) -> EntryOf<TypeConfig> {
        let mut entry: Entry<_, _> = blank_ent::<TypeConfig>(1, 1, index);
        entry.payload = EntryPayload::Normal(Command {
            write_id: None,
            proposed_at_ms: 0,
            leader_clock_ms: 0,
            tenant: "t".into(),
            api_key: None,
            body: CommandBody::Write(vec![Mutation::Put {
                key: "k".into(),
                value: vec![0; 3 << 20],
                expected_version: None,
            }]),
            audit: None,
        });
        entry
    }

    #[tokio::test]
    async fn replication_reads_stop_at_the_byte_budget_but_always_send_one_entry() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = Store::open(dir.path(), 1, "t", LogSync::Inline).unwrap();
        let mut log = store.log_store();
        let entries: Vec<_> = (1..=6).map(big_entry).collect();
        // Inline sync: the append is durable when `append` returns.
        log.append(entries, IOFlushed::noop()).await.unwrap();
        let first = log.limited_get_log_entries(1, 7).await.unwrap();
        assert_eq!(first.len(), 2, "two 3 MiB entries fit 8 MiB, a third does not");
        let last = log.limited_get_log_entries(6, 7).await.unwrap();
        assert_eq!(last.len(), 1);
    }
}
