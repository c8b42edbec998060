//! The whole state machine as a stream of key-value pairs, for backups: read
//! in key order from one RocksDB snapshot, so the pairs and the applied log
//! id they come with describe the same instant. And the way back: a fresh
//! data directory seeded with such a stream and the archived log entries
//! that follow it, made the sole voter of a new cluster at the last index.

use std::io;

use openraft::alias::{EntryOf, StoredMembershipOf, VoteOf};
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{EntryPayload, Membership, StoredMembership};
use rocksdb::{IteratorMode, WriteBatch};

use super::columns::{CF_SM, cf, decode_err, io_err};
use super::db::Store;
use super::handle::Db;
use super::keys::{self, APPLIED_AT_KEY, MEMBERSHIP_KEY, meta_key};
use super::reader::RecordReader;
use super::snapshot::read_meta_at;
use super::tenancy;
use super::types::{NodeInfo, TypeConfig};
use crate::model::command::{AuditEvent, Command, CommandBody, TenancyChange};

/// Bytes of pairs written to RocksDB per batch while seeding.
const SEED_BATCH_BYTES: usize = 4 << 20;

/// What a dump covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpSummary {
    /// The last applied log entry: its index and term (0, 0 before any).
    pub last_index: u64,
    pub last_term: u64,
    /// The leader's clock at the last applied command, ms since the Unix epoch.
    pub applied_at_ms: i64,
    /// Every pair of the state machine.
    pub pairs: u64,
    /// The customer records among them.
    pub records: u64,
    /// SHA-256 over the customer records (`RecordsDigest`).
    pub records_sha256: [u8; 32],
}

/// SHA-256 over a state machine's customer records, key and stored value,
/// each length-prefixed, in key order: the same for every replica (and
/// every restore) at the same log index, on any build.
pub struct RecordsDigest {
    context: ring::digest::Context,
    records: u64,
}

impl Default for RecordsDigest {
    fn default() -> Self {
        Self {
            context: ring::digest::Context::new(&ring::digest::SHA256),
            records: 0,
        }
    }
}

impl RecordsDigest {
    /// Takes the next pair in key order; only records count.
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        if key.first() != Some(&keys::RECORD_TAG) {
            return;
        }
        self.context.update(&(key.len() as u64).to_be_bytes());
        self.context.update(key);
        self.context.update(&(value.len() as u64).to_be_bytes());
        self.context.update(value);
        self.records += 1;
    }

    /// The records counted and their digest.
    pub fn finish(self) -> (u64, [u8; 32]) {
        let digest = self.context.finish();
        (self.records, digest.as_ref().try_into().expect("SHA-256 is 32 bytes"))
    }
}

impl RecordReader {
    /// Tells `begin` where the state machine stands (index, term and
    /// applied time; counts still 0), then hands every pair, in key order,
    /// to `sink`, all from one snapshot; the install lock is held only while
    /// the snapshot is taken. Blocks: run it off the async runtime.
    pub fn dump(
        &self,
        begin: impl FnOnce(&DumpSummary) -> io::Result<()>,
        mut sink: impl FnMut(&[u8], &[u8]) -> io::Result<()>,
    ) -> io::Result<DumpSummary> {
        let sm = cf(&self.db, CF_SM);
        let view = self.pinned_view()?;
        let meta = read_meta_at(|key| view.get_cf(sm, key).map_err(io_err))?;
        let applied_at_ms = read_applied_at(|key| view.get_cf(sm, key).map_err(io_err))?;
        let mut summary = DumpSummary {
            last_index: meta.last_log_id.as_ref().map_or(0, |id| id.index),
            last_term: meta.last_log_id.as_ref().map_or(0, |id| id.committed_leader_id().term),
            applied_at_ms,
            pairs: 0,
            records: 0,
            records_sha256: [0; 32],
        };
        begin(&summary)?;
        let mut digest = RecordsDigest::default();
        for item in view.iterator_cf(sm, IteratorMode::Start) {
            let (key, value) = item.map_err(io_err)?;
            sink(&key, &value)?;
            digest.add(&key, &value);
            summary.pairs += 1;
        }
        (summary.records, summary.records_sha256) = digest.finish();
        Ok(summary)
    }
}

/// Entries replayed through the state machine per apply call: bounds one
/// RocksDB write batch during a restore.
const REPLAY_ENTRIES_PER_APPLY: usize = 4096;

/// Where a restored data directory starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredPosition {
    /// The last log entry the restored state includes.
    pub last_index: u64,
    pub last_term: u64,
    /// The leader's clock at the last command the restored state includes.
    pub applied_at_ms: i64,
    /// The customer records the restored state holds, and their digest.
    pub records: u64,
    pub records_sha256: [u8; 32],
    /// Tenants the restore deleted again, as the erasure ledger asked.
    pub erased: Vec<String>,
}

/// A tenant deleted in the backed-up cluster, from the erasure ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantErasure {
    pub tenant: String,
    /// When the deletion was proposed (ms since the Unix epoch).
    pub deleted_at_ms: i64,
}

impl Store {
    /// Seeds a fresh data directory with a dumped state machine (`pairs`, in
    /// any order), replays archived log entries on top of it (`entries`,
    /// encoded as the log stores them, contiguous from the dump's next
    /// index), and makes this node the sole voter of a new cluster at the
    /// last replayed index. Membership entries of the old cluster are
    /// replayed as blanks: the new cluster has only this node. With
    /// `only_tenant`, only that tenant's pairs and commands are restored
    /// (other tenants' commands are replayed as blanks). Each tenant
    /// in `erasures` that the restored state still holds (and did not
    /// create anew after its deletion) is deleted again, through the same
    /// command a live deletion applies, so its data keys are gone. Record
    /// versions keep their log indexes; new writes continue above them.
    pub async fn seed_restored(
        &self,
        node_id: u64,
        pairs: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
        entries: Vec<Vec<u8>>,
        erasures: &[TenantErasure],
        only_tenant: Option<&str>,
        node: NodeInfo,
    ) -> io::Result<RestoredPosition> {
        if !self.is_fresh() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a restore seeds only an empty data directory",
            ));
        }
        let db = self.db.clone();
        let sm = cf(&db, CF_SM);
        let mut batch = WriteBatch::default();
        for (key, value) in pairs {
            if let Some(tenant) = only_tenant
                && !pair_kept_for(tenant, &key, &value)?
            {
                continue;
            }
            batch.put_cf(sm, key, value);
            if batch.size_in_bytes() >= SEED_BATCH_BYTES {
                db.write_unsynced(std::mem::take(&mut batch))?;
            }
        }
        db.write_unsynced(batch)?;
        let seeded = read_meta_at(|key| db.get_cf(sm, key).map_err(io_err))?
            .last_log_id
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "the backup holds no applied log position"))?;

        let mut state_machine = self
            .state_machine()
            .map_err(|e| io::Error::other(format!("opening the state machine: {e}")))?;
        let mut expected = seeded.index + 1;
        let mut decoded = Vec::with_capacity(REPLAY_ENTRIES_PER_APPLY);
        for bytes in entries {
            let mut entry: EntryOf<TypeConfig> = postcard::from_bytes(&bytes).map_err(decode_err)?;
            if entry.log_id.index != expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("archived entry {} where entry {expected} belongs", entry.log_id.index),
                ));
            }
            expected += 1;
            let foreign = match (&entry.payload, only_tenant) {
                (EntryPayload::Membership(_), _) => true,
                (EntryPayload::Normal(command), Some(tenant)) => command.tenant != tenant,
                _ => false,
            };
            if foreign {
                entry.payload = EntryPayload::Blank;
            }
            decoded.push(Ok((entry, None)));
            if decoded.len() == REPLAY_ENTRIES_PER_APPLY {
                state_machine
                    .apply(futures::stream::iter(std::mem::take(&mut decoded)))
                    .await?;
            }
        }
        if !decoded.is_empty() {
            state_machine.apply(futures::stream::iter(decoded)).await?;
        }
        let mut erased = Vec::new();
        for erasure in erasures {
            let still_there = tenancy::read_tenant(&db, &erasure.tenant)?
                .is_some_and(|record| record.is_live() && record.created_at_ms <= erasure.deleted_at_ms);
            if !still_there {
                continue;
            }
            let last = read_meta_at(|key| db.get_cf(sm, key).map_err(io_err))?
                .last_log_id
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no applied log position"))?;
            let command = Command {
                write_id: None,
                proposed_at_ms: erasure.deleted_at_ms,
                leader_clock_ms: 0,
                tenant: erasure.tenant.clone(),
                api_key: None,
                body: CommandBody::Tenancy(TenancyChange::DeleteTenant),
                audit: Some(AuditEvent {
                    actor: "restore".into(),
                    action: "delete-tenant".into(),
                    reason: "erasure ledger".into(),
                    detail: format!("deleted at {} ms in the backed-up cluster", erasure.deleted_at_ms),
                    result: None,
                }),
            };
            let entry: EntryOf<TypeConfig> = openraft::Entry {
                log_id: openraft::LogId::new(*last.committed_leader_id(), expected),
                payload: EntryPayload::Normal(command),
            };
            expected += 1;
            state_machine.apply(futures::stream::iter([Ok((entry, None))])).await?;
            erased.push(erasure.tenant.clone());
        }

        let last_log_id = read_meta_at(|key| db.get_cf(sm, key).map_err(io_err))?
            .last_log_id
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no applied log position after the replay"))?;
        assert_eq!(last_log_id.index, expected - 1, "the replay ends at its last entry");
        let info = NodeInfo {
            incarnation: self.incarnation(),
            ..node
        };
        let voters = std::collections::BTreeSet::from([node_id]);
        let nodes = std::collections::BTreeMap::from([(node_id, info)]);
        let membership = Membership::new(vec![voters], nodes).map_err(|e| io::Error::other(e.to_string()))?;
        let stored: StoredMembershipOf<TypeConfig> = StoredMembership::new(Some(last_log_id), membership);
        let mut batch = WriteBatch::default();
        batch.put_cf(
            sm,
            meta_key(MEMBERSHIP_KEY),
            postcard::to_allocvec(&stored).map_err(decode_err)?,
        );
        db.write_synced(batch)?;

        // The snapshot covers everything; the log starts after it, and this
        // node holds the vote of the term the log ends in.
        let mut builder = state_machine.get_snapshot_builder().await;
        openraft::storage::RaftSnapshotBuilder::build_snapshot(&mut builder).await?;
        let mut log = self.log_store();
        let vote: VoteOf<TypeConfig> = openraft::impls::Vote::new(last_log_id.committed_leader_id().term, node_id);
        log.save_vote(&vote).await?;
        log.purge(last_log_id).await?;
        log.save_committed(Some(last_log_id)).await?;
        self.join_record()
            .mark_acknowledged()
            .map_err(|e| io::Error::other(e.to_string()))?;
        let applied_at_ms = read_applied_at(|key| db.get_cf(sm, key).map_err(io_err))?;
        let (records, records_sha256) = records_digest(&db)?;
        Ok(RestoredPosition {
            last_index: last_log_id.index,
            last_term: last_log_id.committed_leader_id().term,
            applied_at_ms,
            records,
            records_sha256,
            erased,
        })
    }
}

/// Whether a one-tenant restore of `tenant` keeps this pair: the tenant's
/// own pairs and its API keys, the metadata and the audit log (whose hash
/// chain must stay whole); no other tenant's records, keys or data keys.
fn pair_kept_for(tenant: &str, key: &[u8], value: &[u8]) -> io::Result<bool> {
    if let Some(owner) = keys::owner_of_key(key) {
        return Ok(owner == tenant);
    }
    if key.first() == Some(&keys::API_KEY_TAG) {
        let record: tenancy::ApiKeyRecord = postcard::from_bytes(value).map_err(decode_err)?;
        return Ok(record.tenant == tenant);
    }
    Ok(true)
}

/// The leader's clock at the last applied command, 0 before any.
fn read_applied_at(get: impl Fn(&[u8]) -> io::Result<Option<Vec<u8>>>) -> io::Result<i64> {
    match get(&meta_key(APPLIED_AT_KEY))? {
        Some(bytes) => Ok(i64::from_be_bytes(bytes.as_slice().try_into().map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidData, "applied time is not 8 bytes")
        })?)),
        None => Ok(0),
    }
}

/// Counts and digests the customer records in the state machine.
fn records_digest(db: &Db) -> io::Result<(u64, [u8; 32])> {
    let mut digest = RecordsDigest::default();
    let from = [keys::RECORD_TAG];
    for item in db.iterator_cf(cf(db, CF_SM), IteratorMode::From(&from, rocksdb::Direction::Forward)) {
        let (key, value) = item.map_err(io_err)?;
        if key.first() != Some(&keys::RECORD_TAG) {
            break;
        }
        digest.add(&key, &value);
    }
    Ok(digest.finish())
}
