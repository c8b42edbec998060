//! Where the backups stand, as the shipping node last wrote it beside them:
//! one small sealed object, rewritten after every full backup and every
//! shipped segment. Any node answers `cluster status` from it with one read,
//! without listing the target or asking which node ships.

use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::error::BackupError;
use super::layout::misnamed;
use super::sealed::{open_all, seal_all};
use super::target::Target;
use crate::crypto::KeyProvider;

/// The progress object's name.
const PROGRESS_PATH: &str = "progress";

/// Where the backups stand.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The node that shipped last.
    pub node: u64,
    /// When the archive last held every entry applied on that node (ms since the Unix epoch).
    pub current_at_ms: i64,
    /// When the last full backup finished, and the log index it holds.
    pub last_full_ms: i64,
    pub last_full_index: u64,
    /// The commit time of the last archived write: the latest a restore reaches.
    pub restorable_at_ms: i64,
    /// The last log index archived.
    pub archived_index: u64,
}

/// Writes `progress` to every target.
pub async fn write(targets: &[Target], provider: &dyn KeyProvider, progress: &Progress) -> Result<(), BackupError> {
    let encoded = serde_json::to_vec(progress).map_err(|e| BackupError::Crypto(e.to_string()))?;
    let sealed = seal_all(provider, PROGRESS_PATH, &encoded)?;
    for target in targets {
        target
            .store
            .put(&Path::from(PROGRESS_PATH), PutPayload::from(sealed.clone()))
            .await?;
    }
    Ok(())
}

/// Reads the progress object, if the target has one.
pub async fn read(target: &Target, provider: &Arc<dyn KeyProvider>) -> Result<Option<Progress>, BackupError> {
    let path = Path::from(PROGRESS_PATH);
    let sealed = match target.store.get(&path).await {
        Ok(result) => result.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let plain = open_all(provider.clone(), PROGRESS_PATH, &sealed)?;
    serde_json::from_slice(&plain)
        .map(Some)
        .map_err(|e| misnamed(&path, format!("it does not parse: {e}")))
}
