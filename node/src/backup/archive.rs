//! The continuous log archive: committed entries, as this node's log stores
//! them, shipped in sealed segments. Each segment names its first and last
//! index and the commit-time range of its commands, and carries a digest of
//! its entries; segments follow each other without a gap, so a restore can
//! replay any prefix of the log on top of a full backup.

use std::sync::Arc;

use object_store::{ObjectStoreExt, PutPayload};

use super::error::BackupError;
use super::layout::SegmentName;
use super::ledger::{self, Erasure};
use super::objects::{OBJECTS_FORMAT, Segment, entries_digest};
use super::sealed::seal_all;
use super::target::Target;
use crate::crypto::KeyProvider;
use crate::storage::LogArchiveReader;

/// Most bytes of entries one segment holds.
pub const MAX_SEGMENT_BYTES: usize = 16 << 20;

/// What one call to `ship` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shipped {
    /// Segments up to this one are in every target (the last of them).
    UpTo(SegmentName),
    /// Nothing new to ship.
    Nothing,
    /// The next entry to ship is no longer in this node's log (a snapshot
    /// covered and purged it): only a new full backup closes the gap.
    Purged { next: u64, first_stored: Option<u64> },
}

/// Ships committed entries from this node's log.
pub struct Archiver<'a> {
    pub targets: &'a [Target],
    pub provider: Arc<dyn KeyProvider>,
    pub log: LogArchiveReader,
    pub cluster_name: String,
}

impl Archiver<'_> {
    /// Ships entries `next..=committed` in segments of at most
    /// `MAX_SEGMENT_BYTES`. `prev_at_ms` is the commit time the archive
    /// reached so far (a segment of blank entries keeps it).
    pub async fn ship(&self, next: u64, committed: u64, prev_at_ms: i64) -> Result<Shipped, BackupError> {
        let mut next = next;
        let mut prev_at_ms = prev_at_ms;
        let mut shipped = Shipped::Nothing;
        while next <= committed {
            let log = self.log.clone();
            let read = tokio::task::spawn_blocking(move || {
                let entries = log.read(next, committed, MAX_SEGMENT_BYTES)?;
                let first_stored = log.first_stored_index()?;
                Ok::<_, std::io::Error>((entries, first_stored))
            })
            .await
            .map_err(|e| BackupError::Io(std::io::Error::other(format!("reading the log: {e}"))))??;
            let (entries, first_stored) = read;
            if entries.is_empty() {
                return Ok(Shipped::Purged { next, first_stored });
            }
            let times: Vec<i64> = entries.iter().filter_map(|e| e.proposed_at_ms).collect();
            let first_at_ms = times.first().copied().unwrap_or(prev_at_ms);
            let last_at_ms = times.last().copied().unwrap_or(prev_at_ms);
            let name = SegmentName {
                first: entries[0].index,
                last: entries[entries.len() - 1].index,
                first_at_ms,
                last_at_ms,
            };
            assert_eq!(name.first, next, "a segment starts where the archive ends");
            // The ledger first: a segment that holds a deletion is never
            // archived before the deletion is in the ledger.
            for entry in &entries {
                if let Some(tenant) = &entry.deletes_tenant {
                    let erasure = Erasure {
                        tenant: tenant.clone(),
                        deleted_at_ms: entry.proposed_at_ms.unwrap_or(prev_at_ms),
                        log_index: entry.index,
                    };
                    ledger::record(self.targets, self.provider.as_ref(), &erasure).await?;
                }
            }
            let entries: Vec<Vec<u8>> = entries.into_iter().map(|e| e.bytes).collect();
            let segment = Segment {
                format: OBJECTS_FORMAT,
                cluster_name: self.cluster_name.clone(),
                first: name.first,
                last: name.last,
                first_at_ms,
                last_at_ms,
                entries_sha256: entries_digest(&entries),
                entries,
            };
            let encoded = postcard::to_allocvec(&segment).map_err(|e| BackupError::Crypto(e.to_string()))?;
            let sealed = seal_all(self.provider.as_ref(), name.path().as_ref(), &encoded)?;
            for target in self.targets {
                target.store.put(&name.path(), PutPayload::from(sealed.clone())).await?;
            }
            next = name.last + 1;
            prev_at_ms = last_at_ms;
            shipped = Shipped::UpTo(name);
        }
        Ok(shipped)
    }
}
