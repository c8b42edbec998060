//! Reads of the local replica, shared with the API layer: one record, a
//! page of a tenant's records, tenants and API keys, audit entries, and a
//! digest of every record for checks that compare replicas. Every read holds
//! the install lock, so none sees a half-installed snapshot.

use std::io;
use std::sync::{Arc, RwLock};

use rocksdb::{DB, Direction, IteratorMode};
use serde::{Deserialize, Serialize};

use super::audit::AuditEntry;
use super::columns::{CF_SM, cf, decode_err, io_err};
use super::handle::Db;
use super::keys::{self, record_key, tenant_prefix};
use super::tenancy::{self, ApiKeyRecord, TenantRecord};

/// A record as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecord {
    /// Log index of the record's last write.
    pub version: u64,
    /// Leader's clock at that write, ms since the Unix epoch.
    pub updated_at_ms: i64,
    pub value: Vec<u8>,
}

/// One page of a tenant's records.
#[derive(Debug, Default)]
pub struct ListPage {
    pub records: Vec<(String, StoredRecord)>,
    /// The last key of this page when more records may follow.
    pub last_key: Option<String>,
}

/// Reads records straight from the local replica. Shared with the API layer;
/// holds the install lock so a read never sees a half-installed snapshot.
#[derive(Clone)]
pub struct RecordReader {
    pub(super) db: Arc<Db>,
    pub(super) install_lock: Arc<RwLock<()>>,
}

/// A summary of every record a replica holds, to compare replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaDigest {
    pub records: u64,
    pub hash: u64,
}

impl RecordReader {
    /// The current value of one record of one tenant.
    pub fn get(&self, tenant: &str, key: &str) -> io::Result<Option<StoredRecord>> {
        let _guard = self
            .install_lock
            .read()
            .map_err(|_| io::Error::other("install lock poisoned"))?;
        read_record(&self.db, &record_key(tenant, key))
    }

    /// Up to `limit` records of `tenant` whose key starts with `prefix`, after
    /// key `after`, holding at most `max_bytes` (each record counted as its
    /// key, its stored value and `overhead` bytes) unless one record alone is
    /// larger: a page is never empty while records remain.
    pub fn list(
        &self,
        tenant: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        max_bytes: usize,
        overhead: usize,
    ) -> io::Result<ListPage> {
        let _guard = self
            .install_lock
            .read()
            .map_err(|_| io::Error::other("install lock poisoned"))?;
        let tenant_start = tenant_prefix(tenant);
        let scan_prefix = record_key(tenant, prefix);
        let start = match after {
            Some(after) if after.as_bytes() >= prefix.as_bytes() => {
                let mut start = record_key(tenant, after);
                start.push(0); // the smallest key after `after`
                start
            }
            _ => scan_prefix.clone(),
        };
        let mut page = ListPage::default();
        let mut bytes = 0usize;
        let sm = cf(&self.db, CF_SM);
        for item in self.db.iterator_cf(sm, IteratorMode::From(&start, Direction::Forward)) {
            let (storage_key, value) = item.map_err(io_err)?;
            if !storage_key.starts_with(&scan_prefix) {
                return Ok(page);
            }
            let key = keys::record_key_suffix(&storage_key, tenant_start.len())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let record: StoredRecord = postcard::from_bytes(&value).map_err(decode_err)?;
            let size = key.len() + record.value.len() + overhead;
            let full = page.records.len() == limit || (!page.records.is_empty() && bytes + size > max_bytes);
            if full {
                page.last_key = page.records.last().map(|(key, _)| key.clone());
                return Ok(page);
            }
            bytes += size;
            page.records.push((key, record));
        }
        Ok(page)
    }

    fn guard(&self) -> io::Result<std::sync::RwLockReadGuard<'_, ()>> {
        self.install_lock
            .read()
            .map_err(|_| io::Error::other("install lock poisoned"))
    }

    /// A RocksDB snapshot of the whole store, for long reads: the install
    /// lock is held only while it is taken, since from then on the snapshot
    /// is immune to installs and a long read must not hold them up.
    pub(super) fn pinned_view(&self) -> io::Result<rocksdb::Snapshot<'_>> {
        let _guard = self.guard()?;
        Ok(self.db.snapshot())
    }

    /// The log index of the latest request for a full backup (0: none yet).
    pub fn backup_requested(&self) -> io::Result<u64> {
        let _guard = self.guard()?;
        let key = keys::meta_key(keys::BACKUP_REQUESTED_KEY);
        match self.db.get_cf(cf(&self.db, CF_SM), key).map_err(io_err)? {
            Some(bytes) => Ok(u64::from_be_bytes(bytes.as_slice().try_into().map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, "a backup request index is not 8 bytes")
            })?)),
            None => Ok(0),
        }
    }

    /// One tenant, live or deleted.
    pub fn tenant(&self, tenant: &str) -> io::Result<Option<TenantRecord>> {
        let _guard = self.guard()?;
        tenancy::read_tenant(&self.db, tenant)
    }

    /// Every tenant, in id order.
    pub fn tenants(&self) -> io::Result<Vec<(String, TenantRecord)>> {
        let _guard = self.guard()?;
        tenancy::read_tenants(&self.db)
    }

    /// One API key.
    pub fn api_key(&self, key_id: &str) -> io::Result<Option<ApiKeyRecord>> {
        let _guard = self.guard()?;
        tenancy::read_api_key(&self.db, key_id)
    }

    /// The operator who issued API key `key_id`, if a staff member did.
    pub fn staff_issuer(&self, key_id: &str) -> io::Result<Option<String>> {
        let _guard = self.guard()?;
        tenancy::read_staff_issuer(&self.db, key_id)
    }

    /// Up to `limit` audit entries after `after_seq`, oldest first.
    pub fn audit_entries(&self, after_seq: u64, limit: usize) -> io::Result<Vec<AuditEntry>> {
        let _guard = self.guard()?;
        super::audit::read_entries(&self.db, after_seq, limit)
    }

    /// Every API key of a tenant.
    pub fn api_keys(&self, tenant: &str) -> io::Result<Vec<ApiKeyRecord>> {
        let _guard = self.guard()?;
        tenancy::read_api_keys(&self.db, tenant)
    }

    /// Hashes every record (tenant, key, value, version) in key order.
    pub fn digest(&self) -> io::Result<ReplicaDigest> {
        use std::hash::{DefaultHasher, Hasher};
        let _guard = self
            .install_lock
            .read()
            .map_err(|_| io::Error::other("install lock poisoned"))?;
        let mut hasher = DefaultHasher::new();
        let mut records = 0;
        let start = [keys::RECORD_TAG];
        for item in self
            .db
            .iterator_cf(cf(&self.db, CF_SM), IteratorMode::From(&start, Direction::Forward))
        {
            let (key, value) = item.map_err(io_err)?;
            if key.first() != Some(&keys::RECORD_TAG) {
                break;
            }
            hasher.write(&key);
            hasher.write(&value);
            records += 1;
        }
        Ok(ReplicaDigest {
            records,
            hash: hasher.finish(),
        })
    }
}

pub(super) fn read_record(db: &DB, storage_key: &[u8]) -> io::Result<Option<StoredRecord>> {
    match db.get_cf(cf(db, CF_SM), storage_key).map_err(io_err)? {
        Some(bytes) => postcard::from_bytes(&bytes).map(Some).map_err(decode_err),
        None => Ok(None),
    }
}
