//! The test restore: the newest full backup is restored, as a restore would
//! do it, into a scratch directory beside the node's data, and the digest of
//! the records it brings back is compared with the digest the node that took
//! it read at that log index (kept in the manifest). A backup that cannot be
//! restored, or restores to other records, is found here on a schedule, not
//! on the day it is needed.

use std::path::Path;
use std::sync::Arc;

use super::catalog::{Catalog, SealedPairs, download_data, read_manifest};
use super::error::BackupError;
use super::layout::SetName;
use super::objects::hex_digest;
use super::target::Target;
use crate::crypto::KeyProvider;
use crate::raft::NodeInfo;
use crate::storage::{LogSync, Store};

/// Prefix of the scratch directories test restores use.
pub const SCRATCH_PREFIX: &str = "backup-check-";
/// Cluster name of a test restore's scratch store (never served).
const SCRATCH_CLUSTER: &str = "backup-check";

/// What a test restore found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub set: SetName,
    pub records: u64,
    /// The records' digest the manifest names, and the one the restore found (hex).
    pub expected_sha256: String,
    pub found_sha256: String,
}

impl CheckReport {
    /// Whether the restore brought back the records the set was taken with.
    pub fn matches(&self) -> bool {
        !self.expected_sha256.is_empty() && self.expected_sha256 == self.found_sha256
    }
}

/// Removes scratch directories a test restore cut short left in `dir`.
pub fn clear_scratch(dir: &Path) -> std::io::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(SCRATCH_PREFIX) {
            std::fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

/// Restores the newest set of `target` under `scratch_parent` and checks
/// its records; `None` when the target holds no set yet.
pub async fn check_newest_set(
    target: &Target,
    provider: &Arc<dyn KeyProvider>,
    scratch_parent: &Path,
) -> Result<Option<CheckReport>, BackupError> {
    let Some(set) = Catalog::list_sets(target).await?.pop() else {
        return Ok(None);
    };
    let manifest = read_manifest(target, provider, &set).await?;
    let scratch = tempfile::Builder::new()
        .prefix(SCRATCH_PREFIX)
        .tempdir_in(scratch_parent)?;
    let mut file = tempfile::tempfile_in(scratch.path())?;
    download_data(target, &set, &manifest, &mut file).await?;
    let store = Store::open(&scratch.path().join("data"), 1, SCRATCH_CLUSTER, LogSync::Inline)
        .map_err(|e| BackupError::NodeStore(e.to_string()))?;
    let mut pairs = SealedPairs::new(provider.clone(), &set, file)?;
    let position = store
        .seed_restored(1, pairs.by_ref(), Vec::new(), &[], None, NodeInfo::default())
        .await?;
    if let Some(failure) = pairs.failure.take() {
        return Err(failure);
    }
    drop(store);
    Ok(Some(CheckReport {
        set,
        records: position.records,
        expected_sha256: manifest.records_sha256,
        found_sha256: hex_digest(&position.records_sha256),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_matches_only_when_both_digests_are_there_and_equal() {
        let set = SetName {
            index: 1,
            taken_at_ms: 1,
            node: 1,
        };
        let report = |expected: &str, found: &str| CheckReport {
            set,
            records: 0,
            expected_sha256: expected.into(),
            found_sha256: found.into(),
        };
        assert!(report("ab", "ab").matches());
        assert!(!report("ab", "ac").matches());
        assert!(!report("", "").matches(), "a set without a digest proves nothing");
    }
}
