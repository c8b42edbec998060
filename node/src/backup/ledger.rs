//! The erasure ledger: one sealed object per deleted tenant, written beside
//! the backups before the segment that holds the deletion, never rewritten,
//! and copied to every target. Deleting a tenant destroys its data keys in
//! the live cluster, but an older full backup still holds them; a restore
//! reads the ledger and deletes every tenant in it again (unless the tenant
//! was created anew after that deletion), so a deleted tenant stays
//! unreadable whatever backup is restored.
//!
//! ```text
//! erasures/<deleted_at_ms:016>-<log index:020>   {tenant, deleted_at_ms, log_index} (sealed)
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
    /// The log index of the deletion.
    pub log_index: u64,
}

impl Erasure {
    fn path(&self) -> Path {
        Path::from(format!(
            "{ERASURES_PREFIX}/{:016}-{:020}",
            self.deleted_at_ms, self.log_index
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
