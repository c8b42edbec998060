//! A tenant's records as of one point in time, for export: read from one
//! RocksDB snapshot in key order and handed out in bounded chunks.
//!
//! An export's point in time is the log index its snapshot was applied to.
//! A resumed export (after a dropped stream, maybe on another node) reads a
//! newer snapshot, which equals the old point in time for this tenant only
//! if none of the tenant's records changed in between: the state machine
//! keeps the index of each tenant's last record change to tell.

use std::io;

use rocksdb::{Direction, IteratorMode};

use super::columns::{CF_SM, cf, decode_err, io_err};
use super::keys::{self, record_key, tenant_prefix, tenant_written_key};
use super::reader::{RecordReader, StoredRecord};
use super::snapshot::read_meta_at;

/// Where an export resumes: its point in time and the last key it handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportPoint {
    pub as_of: u64,
    pub after: String,
}

/// How much one chunk of an export may hold.
#[derive(Debug, Clone, Copy)]
pub struct ChunkLimits {
    pub records: usize,
    /// Keys plus stored values; only a chunk of one record may hold more.
    pub bytes: usize,
}

/// One chunk of an export.
#[derive(Debug)]
pub struct ExportChunk {
    pub as_of: u64,
    pub records: Vec<(String, StoredRecord)>,
    /// Whether this is the export's final chunk (it may hold no records).
    pub last: bool,
}

/// Why an export cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "the tenant's records changed at log index {changed_at}, after the export's point in time \
         ({as_of}): start a new export"
    )]
    Changed { as_of: u64, changed_at: u64 },
    #[error("this replica has applied up to log index {applied}, behind the export's point in time ({as_of})")]
    Behind { as_of: u64, applied: u64 },
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl RecordReader {
    /// Reads every record of `tenant` (after `resume.after`, when resuming)
    /// from one snapshot and hands them to `sink` chunk by chunk, until all
    /// are out or `sink` returns false. Blocks: run it off the async runtime.
    /// Returns the export's point in time.
    pub fn export(
        &self,
        tenant: &str,
        resume: Option<&ExportPoint>,
        limits: ChunkLimits,
        mut sink: impl FnMut(ExportChunk) -> bool,
    ) -> Result<u64, ExportError> {
        assert!(
            limits.records > 0 && limits.bytes > 0,
            "an export chunk must hold something"
        );
        let sm = cf(&self.db, CF_SM);
        let view = self.pinned_view()?;
        let applied = read_meta_at(|key| view.get_cf(sm, key).map_err(io_err))?
            .last_log_id
            .map_or(0, |id| id.index);
        let changed_at =
            match view.get_cf(sm, tenant_written_key(tenant)).map_err(io_err)? {
                Some(bytes) => u64::from_be_bytes(bytes.as_slice().try_into().map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, "a tenant's change index is not 8 bytes")
                })?),
                None => 0,
            };
        debug_assert!(changed_at <= applied, "a change beyond the applied index");
        let as_of = match resume {
            None => applied,
            Some(point) if applied < point.as_of => {
                return Err(ExportError::Behind {
                    as_of: point.as_of,
                    applied,
                });
            }
            Some(point) if changed_at > point.as_of => {
                return Err(ExportError::Changed {
                    as_of: point.as_of,
                    changed_at,
                });
            }
            Some(point) => point.as_of,
        };

        let prefix = tenant_prefix(tenant);
        let start = match resume {
            Some(point) => {
                let mut start = record_key(tenant, &point.after);
                start.push(0); // the smallest key after `after`
                start
            }
            None => prefix.clone(),
        };
        let mut chunk = Vec::new();
        let mut bytes = 0;
        for item in view.iterator_cf(sm, IteratorMode::From(&start, Direction::Forward)) {
            let (storage_key, value) = item.map_err(io_err)?;
            if !storage_key.starts_with(&prefix) {
                break;
            }
            let key = keys::record_key_suffix(&storage_key, prefix.len())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let record: StoredRecord = postcard::from_bytes(&value).map_err(decode_err)?;
            let size = key.len() + record.value.len();
            let full = chunk.len() >= limits.records || (!chunk.is_empty() && bytes + size > limits.bytes);
            if full {
                let out = ExportChunk {
                    as_of,
                    records: std::mem::take(&mut chunk),
                    last: false,
                };
                bytes = 0;
                if !sink(out) {
                    return Ok(as_of);
                }
            }
            bytes += size;
            chunk.push((key, record));
        }
        // Always sent, so a reader can tell a finished export from a cut one.
        sink(ExportChunk {
            as_of,
            records: chunk,
            last: true,
        });
        Ok(as_of)
    }
}
