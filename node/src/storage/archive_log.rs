//! Committed log entries as they are stored, for the backup's log archive:
//! each entry's index, term and the leader's clock when it was proposed,
//! with its encoded bytes untouched (record values in them are already
//! sealed with the tenant's data key). The archive never needs to know
//! openraft's entry type; restore hands the bytes back to `dump.rs`.

use std::io;
use std::sync::Arc;

use openraft::EntryPayload;
use openraft::alias::EntryOf;
use openraft::entry::RaftEntry;

use super::columns::{CF_LOG, cf, decode_err, io_err};
use super::handle::Db;
use super::log_store::visit_stored;
use super::types::TypeConfig;
use crate::model::command::{CommandBody, TenancyChange};

/// One stored log entry, for the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedEntry {
    pub index: u64,
    pub term: u64,
    /// The leader's wall clock when the command was proposed (ms since the
    /// Unix epoch); absent for entries that carry no command.
    pub proposed_at_ms: Option<i64>,
    /// The tenant this entry deletes, if it deletes one.
    pub deletes_tenant: Option<String>,
    /// The entry exactly as the log stores it.
    pub bytes: Vec<u8>,
}

/// Decodes what the archive needs to know of an encoded entry.
pub fn describe_entry(bytes: &[u8]) -> io::Result<EncodedEntry> {
    let entry: EntryOf<TypeConfig> = postcard::from_bytes(bytes).map_err(decode_err)?;
    let log_id = entry.log_id();
    let (proposed_at_ms, deletes_tenant) = match &entry.payload {
        EntryPayload::Normal(command) => (
            Some(command.proposed_at_ms),
            matches!(command.body, CommandBody::Tenancy(TenancyChange::DeleteTenant)).then(|| command.tenant.clone()),
        ),
        _ => (None, None),
    };
    Ok(EncodedEntry {
        index: log_id.index,
        term: log_id.committed_leader_id().term,
        proposed_at_ms,
        deletes_tenant,
        bytes: bytes.to_vec(),
    })
}

/// Reads stored log entries for the archive. Read-only; cheap to clone.
#[derive(Clone)]
pub struct LogArchiveReader {
    db: Arc<Db>,
}

impl LogArchiveReader {
    pub(crate) fn new(db: Arc<Db>) -> Self {
        Self { db }
    }

    /// The lowest index the log still holds (`None` when it is empty).
    pub fn first_stored_index(&self) -> io::Result<Option<u64>> {
        let mut iter = self.db.raw_iterator_cf(cf(&self.db, CF_LOG));
        iter.seek_to_first();
        iter.status().map_err(io_err)?;
        match iter.key() {
            Some(key) => {
                let bytes: [u8; 8] = key
                    .try_into()
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "log key is not 8 bytes"))?;
                Ok(Some(u64::from_be_bytes(bytes)))
            }
            None => Ok(None),
        }
    }

    /// The entries from `from` to `to` (both included) in order, stopping
    /// once `max_bytes` are read (at least one entry is always read) or at
    /// the first index the log no longer holds. Blocks: call it off the
    /// async runtime.
    pub fn read(&self, from: u64, to: u64, max_bytes: usize) -> io::Result<Vec<EncodedEntry>> {
        let mut entries: Vec<EncodedEntry> = Vec::new();
        let mut bytes = 0usize;
        let result = visit_stored(&self.db, &(from..=to), |index, encoded| {
            let expected = from + entries.len() as u64;
            if index != expected || (!entries.is_empty() && bytes + encoded.len() > max_bytes) {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "stop"));
            }
            let entry = describe_entry(encoded)?;
            assert_eq!(entry.index, index, "a log entry stored under another index");
            bytes += encoded.len();
            entries.push(entry);
            Ok(())
        });
        match result {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(entries),
            Err(e) => Err(e),
            Ok(()) => Ok(entries),
        }
    }
}
