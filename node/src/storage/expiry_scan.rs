//! What the retention sweeper reads: records whose time to live is due (from
//! the expiry index, in due order) and records a tenant has not written for
//! longer than its retention window (a bounded scan from a cursor, so one
//! pass never walks a whole large tenant). The sweeper proposes what it
//! finds; the state machine removes a record only if it is still at the
//! version found.

use std::io;

use rocksdb::{Direction, IteratorMode};

use super::columns::{CF_SM, cf, decode_err, io_err};
use super::keys::{self, EXPIRY_TAG, RETENTION_TAG, record_key, tenant_prefix};
use super::reader::{RecordReader, StoredRecord};
use crate::model::command::Expiry;

fn be_u64(bytes: &[u8], what: &str) -> io::Result<u64> {
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{what} is not 8 bytes")))?;
    Ok(u64::from_be_bytes(bytes))
}

/// Where a retention scan of one tenant stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleScan {
    pub stale: Vec<Expiry>,
    /// The last key scanned, when records may follow.
    pub resume_after: Option<String>,
}

impl RecordReader {
    /// Up to `limit` records whose time to live is due at `now_ms`, in due
    /// order, with their tenants.
    pub fn due_expiries(&self, now_ms: i64, limit: usize) -> io::Result<Vec<(String, Expiry)>> {
        let sm = cf(&self.db, CF_SM);
        let end = keys::expiry_bound(now_ms);
        let mut due = Vec::new();
        for item in self
            .db
            .iterator_cf(sm, IteratorMode::From(&[EXPIRY_TAG], Direction::Forward))
        {
            let (storage_key, value) = item.map_err(io_err)?;
            if due.len() >= limit || storage_key.as_ref() >= end.as_slice() {
                break;
            }
            let (expires_at_ms, tenant, key) =
                keys::parse_expiry_key(&storage_key).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let version = be_u64(&value, "an expiry index entry")?;
            due.push((
                tenant,
                Expiry {
                    key,
                    version,
                    expires_at_ms: Some(expires_at_ms),
                },
            ));
        }
        Ok(due)
    }

    /// Every tenant's retention window, ms.
    pub fn retention_windows(&self) -> io::Result<Vec<(String, u64)>> {
        let sm = cf(&self.db, CF_SM);
        let mut windows = Vec::new();
        for item in self
            .db
            .iterator_cf(sm, IteratorMode::From(&[RETENTION_TAG], Direction::Forward))
        {
            let (storage_key, value) = item.map_err(io_err)?;
            if storage_key.first() != Some(&RETENTION_TAG) {
                break;
            }
            let tenant = keys::owner_of_key(&storage_key)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "a malformed retention key"))?;
            windows.push((tenant.to_string(), be_u64(&value, "a retention window")?));
        }
        Ok(windows)
    }

    /// Scans at most `scan` records of `tenant` after `after` and returns
    /// those last written before `cutoff_ms`.
    pub fn stale_records(
        &self,
        tenant: &str,
        cutoff_ms: i64,
        after: Option<&str>,
        scan: usize,
    ) -> io::Result<StaleScan> {
        assert!(scan > 0, "a scan reads at least one record");
        let sm = cf(&self.db, CF_SM);
        let prefix = tenant_prefix(tenant);
        let start = match after {
            Some(key) => {
                let mut start = record_key(tenant, key);
                start.push(0);
                start
            }
            None => prefix.clone(),
        };
        let mut result = StaleScan {
            stale: Vec::new(),
            resume_after: None,
        };
        let mut scanned = 0;
        for item in self.db.iterator_cf(sm, IteratorMode::From(&start, Direction::Forward)) {
            let (storage_key, value) = item.map_err(io_err)?;
            if !storage_key.starts_with(&prefix) {
                return Ok(result);
            }
            let key = keys::record_key_suffix(&storage_key, prefix.len())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let record: StoredRecord = postcard::from_bytes(&value).map_err(decode_err)?;
            if record.updated_at_ms < cutoff_ms {
                result.stale.push(Expiry {
                    key: key.clone(),
                    version: record.version,
                    expires_at_ms: None,
                });
            }
            scanned += 1;
            if scanned == scan {
                result.resume_after = Some(key);
                return Ok(result);
            }
        }
        Ok(result)
    }
}
