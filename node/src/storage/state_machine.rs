//! The replicated state machine in RocksDB, and its apply path: tenants'
//! records, the idempotency table (scoped to each tenant, consulted only
//! after a write is admitted) and the applied position. Reads go through
//! `reader.rs`.
//!
//! Each call to `apply` writes every entry it was given in one WriteBatch:
//! records, the remembered results, the last applied log id and membership.
//! Responses go out only after that batch is written. The batch is not synced
//! by itself: it shares the write-ahead log with the Raft log, whose next
//! synced append covers it, and anything lost in a crash is replayed from the
//! log.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use futures::{Stream, TryStreamExt};
use openraft::alias::{CommittedLeaderIdOf, LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, StoredMembership};
use rocksdb::WriteBatch;

use super::audit::AuditAppender;
use super::blocking::off_runtime;
use super::columns::{CF_SM, cf, decode_err, io_err};
use super::error::StoreError;
use super::expiry_clock::ExpiryClock;
use super::handle::Db;
use super::idempotency::{ClientKey, IdempotencyIndex, RememberedResult, Seen};
use super::keys::{self, APPLIED_AT_KEY, APPLIED_KEY, MEMBERSHIP_KEY, idempotency_result_key, meta_key, record_key};
use super::reader::{RecordReader, StoredRecord, read_record};
use super::shred::Deletions;
use super::snapshot::{FORMAT_KEY, FORMAT_VERSION, SnapshotDir, SnapshotFile};
use super::tenancy::{self, ApplyAt, Overlay};
use super::types::TypeConfig;
use crate::model::command::{Command, CommandBody, CommandResponse, Expiry, Mutation, Refusal, TenancyChange};

/// Meta key of the idempotency table's expiry clock.
const EXPIRY_CLOCK_KEY: &str = "expiry_clock";

type LeaderExpiryClock = ExpiryClock<CommittedLeaderIdOf<TypeConfig>>;

/// The state machine handed to openraft.
pub struct StateMachineStore {
    db: Arc<Db>,
    snapshots: SnapshotDir,
    install_lock: Arc<RwLock<()>>,
    idempotency: IdempotencyIndex,
    expiry_clock: LeaderExpiryClock,
    /// Raised with the log index of each tenant deletion applied (`shred.rs`).
    deletions: Deletions,
}

impl StateMachineStore {
    pub(crate) fn open(db: Arc<Db>, snapshot_dir: PathBuf, deletions: Deletions) -> Result<Self, StoreError> {
        let snapshots = SnapshotDir::new(snapshot_dir);
        snapshots.resume_install(&db)?;
        // Every snapshot then holds at least this key (an SST cannot be empty).
        let mut format = WriteBatch::default();
        format.put_cf(cf(&db, CF_SM), meta_key(FORMAT_KEY), FORMAT_VERSION.to_be_bytes());
        db.write_unsynced(format)?;
        snapshots.remove_stale(&db, true)?;
        let mut store = Self {
            db,
            snapshots,
            install_lock: Arc::new(RwLock::new(())),
            idempotency: IdempotencyIndex::default(),
            expiry_clock: LeaderExpiryClock::default(),
            deletions,
        };
        store.reload()?;
        Ok(store)
    }

    /// A reader of this replica's records.
    pub fn reader(&self) -> RecordReader {
        RecordReader {
            db: self.db.clone(),
            install_lock: self.install_lock.clone(),
        }
    }

    /// Reloads the in-memory parts from disk (after open or a snapshot install).
    fn reload(&mut self) -> io::Result<()> {
        self.idempotency = IdempotencyIndex::load(&self.db, cf(&self.db, CF_SM))?;
        self.expiry_clock = match self.get_meta(EXPIRY_CLOCK_KEY)? {
            Some(bytes) => postcard::from_bytes(&bytes).map_err(decode_err)?,
            None => LeaderExpiryClock::default(),
        };
        Ok(())
    }

    fn get_meta(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        self.db.get_cf(cf(&self.db, CF_SM), meta_key(name)).map_err(io_err)
    }

    /// Applies one client command into `batch`, reading through `pending`
    /// (records already changed earlier in the same batch).
    fn apply_command(
        &mut self,
        log_id: &LogIdOf<TypeConfig>,
        command: Command,
        batch: &mut WriteBatch,
        pending: &mut Pending,
    ) -> io::Result<CommandResponse> {
        let index = log_id.index;
        let now_ms = self
            .expiry_clock
            .observe(log_id.committed_leader_id(), command.leader_clock_ms);
        let at = ApplyAt {
            db: &self.db,
            index,
            at_ms: command.proposed_at_ms,
        };
        let response = match &command.body {
            CommandBody::Write(mutations) => {
                // Admitted for its tenant first: only then may its write id
                // mean anything, and only within that tenant.
                let refusal = tenancy::admit_write(
                    &at,
                    &mut pending.tenancy,
                    batch,
                    &command.tenant,
                    command.api_key.as_deref(),
                    mutations,
                )?;
                match (refusal, &command.write_id) {
                    (Some(refusal), _) => CommandResponse::Refused(refusal),
                    (None, None) => self.apply_mutations(
                        index,
                        &command.tenant,
                        command.proposed_at_ms,
                        mutations,
                        batch,
                        pending,
                    )?,
                    (None, Some(id)) => {
                        let client = ClientKey {
                            tenant: command.tenant.clone(),
                            client_id: id.client_id.clone(),
                        };
                        let write = IdentifiedWrite {
                            client,
                            request_id: id.request_id,
                            first_incomplete: id.first_incomplete,
                            index,
                            now_ms,
                            proposed_at_ms: command.proposed_at_ms,
                        };
                        self.apply_identified_write(write, mutations, batch, pending)?
                    }
                }
            }
            CommandBody::AuditOnly => CommandResponse::Noop,
            CommandBody::RequestBackup => {
                batch.put_cf(
                    cf(&self.db, CF_SM),
                    meta_key(keys::BACKUP_REQUESTED_KEY),
                    index.to_be_bytes(),
                );
                CommandResponse::Applied {
                    version: index,
                    updated_at_ms: command.proposed_at_ms,
                    existed: Vec::new(),
                }
            }
            CommandBody::Expire(expired) => self.apply_expiry(index, &command.tenant, expired, batch, pending)?,
            CommandBody::Tenancy(change) => {
                let mut deleted = Vec::new();
                // Deleting a tenant scans every API key: not on a worker openraft needs.
                let response = off_runtime(|| {
                    tenancy::apply_change(
                        &at,
                        &mut pending.tenancy,
                        batch,
                        &command.tenant,
                        command.api_key.as_deref(),
                        change.clone(),
                        &mut deleted,
                    )
                })?;
                if !deleted.is_empty() {
                    // Its wrapped data keys are still in the log and in older files.
                    self.deletions.send_replace(index);
                    // A deleted tenant's write ids go with it.
                    self.idempotency
                        .forget_tenant(&command.tenant, batch, cf(&self.db, CF_SM));
                    pending.results.retain(|(client, _), _| client.tenant != command.tenant);
                }
                if matches!(response, CommandResponse::Applied { .. })
                    && matches!(change, TenancyChange::CreateTenant { .. } | TenancyChange::DeleteTenant)
                {
                    note_tenant_written(batch, cf(&self.db, CF_SM), &command.tenant, index);
                }
                for prefix in deleted {
                    for (key, record) in pending.records.iter_mut() {
                        if key.starts_with(&prefix) {
                            *record = None;
                        }
                    }
                }
                response
            }
        };
        if let Some(event) = command.audit.clone() {
            let result = event.result.clone().unwrap_or_else(|| response.audit_result());
            pending
                .audit
                .append(&self.db, batch, &command.tenant, command.proposed_at_ms, event, result)?;
        }
        Ok(response)
    }

    /// Applies an admitted write that carries a write id: once per id, and
    /// never an id its client has retired.
    fn apply_identified_write(
        &mut self,
        write: IdentifiedWrite,
        mutations: &[Mutation],
        batch: &mut WriteBatch,
        pending: &mut Pending,
    ) -> io::Result<CommandResponse> {
        let sm = cf(&self.db, CF_SM);
        self.idempotency
            .note_write(&write.client, write.first_incomplete, write.now_ms, batch, sm);
        let fingerprint = write_fingerprint(mutations);
        // Decided from the in-memory index alone, so deletions still queued
        // in this batch count exactly as they will once written.
        match self.idempotency.seen(&write.client, write.request_id) {
            Seen::Remembered => {
                let pending_key = (write.client.clone(), write.request_id);
                let remembered = match pending.results.get(&pending_key) {
                    Some(first) => first.clone(),
                    None => {
                        let key =
                            idempotency_result_key(&write.client.tenant, &write.client.client_id, write.request_id);
                        let bytes = self.db.get_cf(sm, &key).map_err(io_err)?.ok_or_else(|| {
                            io::Error::new(io::ErrorKind::InvalidData, "a remembered write result is missing")
                        })?;
                        postcard::from_bytes::<RememberedResult>(&bytes).map_err(decode_err)?
                    }
                };
                if remembered.fingerprint != fingerprint {
                    return Ok(CommandResponse::Refused(Refusal::WriteIdReused));
                }
                return Ok(remembered.response);
            }
            Seen::Retired { floor } => return Ok(CommandResponse::Retired { floor }),
            Seen::New => {}
        }
        let response = self.apply_mutations(
            write.index,
            &write.client.tenant,
            write.proposed_at_ms,
            mutations,
            batch,
            pending,
        )?;
        let remembered = RememberedResult {
            log_index: write.index,
            at_ms: write.now_ms,
            fingerprint,
            response: response.clone(),
        };
        self.idempotency
            .remember(&write.client, write.request_id, &remembered, batch, sm)?;
        pending.results.insert((write.client, write.request_id), remembered);
        Ok(response)
    }

    fn apply_mutations(
        &self,
        index: u64,
        tenant: &str,
        proposed_at_ms: i64,
        mutations: &[Mutation],
        batch: &mut WriteBatch,
        pending: &mut Pending,
    ) -> io::Result<CommandResponse> {
        // Check every condition first: a batch applies whole or not at all.
        let mut existed = Vec::with_capacity(mutations.len());
        for mutation in mutations {
            let storage_key = record_key(tenant, mutation.key());
            let current = match pending.records.get(&storage_key) {
                Some(record) => record.clone(),
                None => read_record(&self.db, &storage_key)?,
            };
            let current_version = current.as_ref().map_or(0, |r| r.version);
            if let Some(expected) = mutation.expected_version()
                && expected != current_version
            {
                return Ok(CommandResponse::Conflict {
                    key: mutation.key().to_string(),
                    current_version,
                });
            }
            existed.push(current.is_some());
        }
        let sm = cf(&self.db, CF_SM);
        for mutation in mutations {
            let storage_key = record_key(tenant, mutation.key());
            if let Mutation::PutWithTtl { ttl_ms, .. } = mutation {
                let ttl_ms = i64::try_from(*ttl_ms).unwrap_or(i64::MAX);
                let due = keys::expiry_key(proposed_at_ms.saturating_add(ttl_ms), tenant, mutation.key());
                batch.put_cf(sm, due, index.to_be_bytes());
            }
            match mutation {
                Mutation::Put { value, .. } | Mutation::PutWithTtl { value, .. } => {
                    let record = StoredRecord {
                        version: index,
                        updated_at_ms: proposed_at_ms,
                        value: value.clone(),
                    };
                    batch.put_cf(sm, &storage_key, postcard::to_allocvec(&record).map_err(decode_err)?);
                    pending.records.insert(storage_key, Some(record));
                }
                Mutation::Delete { .. } => {
                    batch.delete_cf(sm, &storage_key);
                    pending.records.insert(storage_key, None);
                }
            }
        }
        note_tenant_written(batch, sm, tenant, index);
        Ok(CommandResponse::Applied {
            version: index,
            updated_at_ms: proposed_at_ms,
            existed,
        })
    }

    /// Removes the records the sweeper found expired, each only if it is
    /// still at the version found, and their expiry index entries. Needs no
    /// live tenant: a deleted tenant's leftover index entries go too.
    fn apply_expiry(
        &self,
        index: u64,
        tenant: &str,
        expired: &[Expiry],
        batch: &mut WriteBatch,
        pending: &mut Pending,
    ) -> io::Result<CommandResponse> {
        let sm = cf(&self.db, CF_SM);
        let mut removed = Vec::with_capacity(expired.len());
        for expiry in expired {
            if let Some(due) = expiry.expires_at_ms {
                batch.delete_cf(sm, keys::expiry_key(due, tenant, &expiry.key));
            }
            let storage_key = record_key(tenant, &expiry.key);
            let current = match pending.records.get(&storage_key) {
                Some(record) => record.clone(),
                None => read_record(&self.db, &storage_key)?,
            };
            let still_expired = current.is_some_and(|r| r.version == expiry.version);
            if still_expired {
                batch.delete_cf(sm, &storage_key);
                pending.records.insert(storage_key, None);
            }
            removed.push(still_expired);
        }
        if removed.contains(&true) {
            note_tenant_written(batch, sm, tenant, index);
        }
        Ok(CommandResponse::Applied {
            version: index,
            updated_at_ms: 0,
            existed: removed,
        })
    }
}

/// Records that `tenant`'s records changed at log index `index`, so a
/// resumed export can tell whether its point in time still holds.
fn note_tenant_written(batch: &mut WriteBatch, sm: &rocksdb::ColumnFamily, tenant: &str, index: u64) {
    batch.put_cf(sm, keys::tenant_written_key(tenant), index.to_be_bytes());
}

/// A write with a write id, as the state machine applies it.
struct IdentifiedWrite {
    client: ClientKey,
    request_id: u64,
    first_incomplete: u64,
    index: u64,
    /// Expiry time at this entry.
    now_ms: i64,
    proposed_at_ms: i64,
}

/// What a write changes, as a digest: the kind, key and condition of every
/// mutation (values are sealed with a fresh nonce on every attempt, so they
/// cannot be compared). A retry changes the same records.
fn write_fingerprint(mutations: &[Mutation]) -> u64 {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for mutation in mutations {
        let kind: u8 = match mutation {
            Mutation::Put { .. } => 1,
            Mutation::PutWithTtl { .. } => 3,
            Mutation::Delete { .. } => 2,
        };
        context.update(&[kind]);
        context.update(&(mutation.key().len() as u64).to_be_bytes());
        context.update(mutation.key().as_bytes());
        match mutation.expected_version() {
            Some(version) => {
                context.update(&[1]);
                context.update(&version.to_be_bytes());
            }
            None => context.update(&[0]),
        }
    }
    let digest = context.finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first)
}

/// Changes made earlier in the batch being applied, not yet readable from RocksDB.
#[derive(Default)]
struct Pending {
    records: HashMap<Vec<u8>, Option<StoredRecord>>,
    results: HashMap<(ClientKey, u64), RememberedResult>,
    tenancy: Overlay,
    audit: AuditAppender,
}

/// Builds snapshots from one RocksDB snapshot of the state machine.
pub struct SnapshotBuilder {
    db: Arc<Db>,
    snapshots: SnapshotDir,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, SnapshotFile>, io::Error> {
        // Writing every record into an SST file: not on a worker openraft needs.
        let (meta, snapshot) = off_runtime(|| self.snapshots.build(&self.db))?;
        tracing::info!(last_log_id = ?meta.last_log_id, bytes = snapshot.len, "built snapshot");
        Ok(SnapshotOf::<TypeConfig, SnapshotFile> { meta, snapshot })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>), io::Error> {
        let meta = super::snapshot::read_meta_at(|key| self.db.get_cf(cf(&self.db, CF_SM), key).map_err(io_err))?;
        Ok((meta.last_log_id, meta.last_membership))
    }

    async fn apply<Strm>(&mut self, entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let started = std::time::Instant::now();
        let mut entries = entries;
        let mut batch = WriteBatch::default();
        let mut pending = Pending::default();
        let mut replies = Vec::new();
        let mut last_applied = None;
        let mut membership = None;
        let mut applied_at_ms = None;
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id();
            let response = match entry.payload {
                EntryPayload::Blank => CommandResponse::Noop,
                EntryPayload::Normal(command) => {
                    applied_at_ms = Some(command.proposed_at_ms);
                    self.apply_command(&log_id, command, &mut batch, &mut pending)?
                }
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembership::new(Some(log_id), m));
                    CommandResponse::Noop
                }
            };
            last_applied = Some(log_id);
            if let Some(responder) = responder {
                replies.push((responder, response));
            }
        }
        let Some(last_applied) = last_applied else {
            return Ok(());
        };
        let sm = cf(&self.db, CF_SM);
        batch.put_cf(
            sm,
            meta_key(APPLIED_KEY),
            postcard::to_allocvec(&Some(last_applied)).map_err(decode_err)?,
        );
        if let Some(at_ms) = applied_at_ms {
            batch.put_cf(sm, meta_key(APPLIED_AT_KEY), at_ms.to_be_bytes());
        }
        if let Some(membership) = membership {
            batch.put_cf(
                sm,
                meta_key(MEMBERSHIP_KEY),
                postcard::to_allocvec(&membership).map_err(decode_err)?,
            );
        }
        batch.put_cf(
            sm,
            meta_key(EXPIRY_CLOCK_KEY),
            postcard::to_allocvec(&self.expiry_clock).map_err(decode_err)?,
        );
        self.db.write_unsynced(batch)?;
        metrics::histogram!(crate::metrics_names::APPLY_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::gauge!(crate::metrics_names::IDEMPOTENCY_RESULTS).set(self.idempotency.result_count() as f64);
        metrics::gauge!(crate::metrics_names::IDEMPOTENCY_CLIENTS).set(self.idempotency.client_count() as f64);
        for (responder, response) in replies {
            responder.send(response);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            db: self.db.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TypeConfig>,
        snapshot: SnapshotFile,
    ) -> Result<(), io::Error> {
        {
            let _guard = self
                .install_lock
                .write()
                .map_err(|_| io::Error::other("install lock poisoned"))?;
            self.snapshots.install(&self.db, meta, &snapshot)?;
        }
        self.reload()?;
        tracing::info!(last_log_id = ?meta.last_log_id, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf<TypeConfig, SnapshotFile>>, io::Error> {
        Ok(self
            .snapshots
            .current(&self.db)?
            .map(|(meta, snapshot)| SnapshotOf::<TypeConfig, SnapshotFile> { meta, snapshot }))
    }
}
