//! The erasure ledger: one sealed object per deleted tenant, written beside
//! the backups before the segment that holds the deletion (and again, if
//! missing, with every full backup, from the deleted tenants the state
//! machine keeps, so a deletion whose entries were purged before they were
//! archived is in the ledger too), and copied to every target. Deleting a tenant destroys its data keys in
//! the live cluster, but an older full backup still holds them; a restore
//! reads the ledger and deletes every tenant in it again (unless the tenant
//! was created anew after that deletion), so a deleted tenant stays
//! unreadable whatever backup is restored.
//!
//! ```text
//! erasures/<deleted_at_ms:016>-<tenant id in hex>   {tenant, deleted_at_ms, log_index} (sealed)
//! ```

use std::sync::Arc;

use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::error::BackupError;
use super::layout::misnamed;
use super::sealed::{open_all, seal_all};
use super::target::Target;
use crate::crypto::KeyProvider;

/// Folder of the erasure ledger.
pub const ERASURES_PREFIX: &str = "erasures";

/// One deleted tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    pub tenant: String,
    /// The leader's clock when the deletion was proposed (ms since the Unix epoch).
    pub deleted_at_ms: i64,
    /// The log index of the deletion (0 when taken from the state machine's tombstone).
    pub log_index: u64,
}

impl Erasure {
    fn path(&self) -> Path {
        Path::from(format!(
            "{ERASURES_PREFIX}/{:016}-{}",
            self.deleted_at_ms,
            hex::encode(self.tenant.as_bytes())
        ))
    }
}

/// Writes `erasure` to every target.
pub async fn record(targets: &[Target], provider: &dyn KeyProvider, erasure: &Erasure) -> Result<(), BackupError> {
    let path = erasure.path();
    let encoded = serde_json::to_vec(erasure).map_err(|e| BackupError::Crypto(e.to_string()))?;
    let sealed = seal_all(provider, path.as_ref(), &encoded)?;
    for target in targets {
        target.store.put(&path, PutPayload::from(sealed.clone())).await?;
    }
    Ok(())
}

/// Writes an entry for each of `deleted` (tenant, deletion time) that
/// `targets` lack; returns how many it wrote.
pub async fn record_missing(
    targets: &[Target],
    provider: &dyn KeyProvider,
    deleted: &[(String, i64)],
) -> Result<usize, BackupError> {
    let mut present = std::collections::HashSet::new();
    let mut listing = targets[0].store.list(Some(&Path::from(ERASURES_PREFIX)));
    while let Some(meta) = listing.next().await {
        present.insert(meta?.location);
    }
    let mut written = 0;
    for (tenant, deleted_at_ms) in deleted {
        let erasure = Erasure {
            tenant: tenant.clone(),
            deleted_at_ms: *deleted_at_ms,
            log_index: 0,
        };
        if !present.contains(&erasure.path()) {
            record(targets, provider, &erasure).await?;
            written += 1;
        }
    }
    Ok(written)
}

/// Every erasure in `target`, oldest first, each opened and checked.
pub async fn read_all(target: &Target, provider: &Arc<dyn KeyProvider>) -> Result<Vec<Erasure>, BackupError> {
    let mut paths = Vec::new();
    let mut listing = target.store.list(Some(&Path::from(ERASURES_PREFIX)));
    while let Some(meta) = listing.next().await {
        paths.push(meta?.location);
    }
    paths.sort();
    let mut erasures = Vec::with_capacity(paths.len());
    for path in paths {
        let sealed = target.store.get(&path).await?.bytes().await?;
        let plain = open_all(provider.clone(), path.as_ref(), &sealed)?;
        let erasure: Erasure =
            serde_json::from_slice(&plain).map_err(|e| misnamed(&path, format!("it does not parse: {e}")))?;
        if erasure.path() != path {
            return Err(misnamed(&path, "it describes another erasure"));
        }
        erasures.push(erasure);
    }
    Ok(erasures)
}
