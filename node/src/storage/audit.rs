//! The audit log in the state machine: entries appended by applied commands,
//! numbered from 1 and hash-chained (see `safekeep_api::audit`), identical on
//! every replica because applying is deterministic. The head (last sequence
//! number and hash) lives in the meta range, so snapshots carry it.

use std::io;

use rocksdb::{DB, Direction, IteratorMode, WriteBatch};
use safekeep_api::audit::{AuditFields, GENESIS_HASH, chain_hash};
use serde::{Deserialize, Serialize};

use super::columns::{CF_SM, cf, decode_err, io_err};
use super::keys::{AUDIT_TAG, audit_key, meta_key};
use crate::model::command::AuditEvent;

/// Meta key of the audit log's head.
const AUDIT_HEAD_KEY: &str = "audit_head";

/// An audit entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub tenant: String,
    pub reason: String,
    pub result: String,
    pub detail: String,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

impl AuditEntry {
    /// The fields the chain hash covers.
    pub fn fields(&self) -> AuditFields<'_> {
        AuditFields {
            seq: self.seq,
            at_unix_ms: self.at_ms,
            actor: &self.actor,
            action: &self.action,
            tenant: &self.tenant,
            reason: &self.reason,
            result: &self.result,
            detail: &self.detail,
        }
    }
}

/// The last entry's sequence number and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    pub seq: u64,
    pub hash: [u8; 32],
}

fn read_head(db: &DB) -> io::Result<AuditHead> {
    match db.get_cf(cf(db, CF_SM), meta_key(AUDIT_HEAD_KEY)).map_err(io_err)? {
        Some(bytes) => postcard::from_bytes(&bytes).map_err(decode_err),
        None => Ok(AuditHead {
            seq: 0,
            hash: GENESIS_HASH,
        }),
    }
}

/// Appends entries within one apply batch, chaining from the stored head.
#[derive(Default)]
pub(crate) struct AuditAppender {
    head: Option<AuditHead>,
}

impl AuditAppender {
    /// Appends `event` about `tenant` at `at_ms` with `result` into `batch`.
    pub fn append(
        &mut self,
        db: &DB,
        batch: &mut WriteBatch,
        tenant: &str,
        at_ms: i64,
        event: AuditEvent,
        result: String,
    ) -> io::Result<()> {
        let head = match self.head {
            Some(head) => head,
            None => read_head(db)?,
        };
        let mut entry = AuditEntry {
            seq: head.seq + 1,
            at_ms,
            actor: event.actor,
            action: event.action,
            tenant: tenant.to_string(),
            reason: event.reason,
            result,
            detail: event.detail,
            prev_hash: head.hash,
            hash: [0; 32],
        };
        entry.hash = chain_hash(&head.hash, &entry.fields());
        let sm = cf(db, CF_SM);
        batch.put_cf(
            sm,
            audit_key(entry.seq),
            postcard::to_allocvec(&entry).map_err(decode_err)?,
        );
        let head = AuditHead {
            seq: entry.seq,
            hash: entry.hash,
        };
        batch.put_cf(
            sm,
            meta_key(AUDIT_HEAD_KEY),
            postcard::to_allocvec(&head).map_err(decode_err)?,
        );
        self.head = Some(head);
        Ok(())
    }
}

/// Up to `limit` entries after `after_seq`, oldest first.
pub fn read_entries(db: &DB, after_seq: u64, limit: usize) -> io::Result<Vec<AuditEntry>> {
    let start = audit_key(after_seq.saturating_add(1));
    let mut out = Vec::new();
    for item in db.iterator_cf(cf(db, CF_SM), IteratorMode::From(&start, Direction::Forward)) {
        let (key, value) = item.map_err(io_err)?;
        if key.first() != Some(&AUDIT_TAG) || out.len() == limit {
            break;
        }
        out.push(postcard::from_bytes(&value).map_err(decode_err)?);
    }
    Ok(out)
}
