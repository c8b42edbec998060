//! Restore: a new cluster's first node built from a target, as of the
//! newest full backup before a time plus the archived log up to that time
//! (or everything, for `Latest`). Every object it needs is checked (the
//! manifest, the data's digest, each segment) before anything is written,
//! and the data directory must be empty. The restored node has a new
//! cluster name and a new incarnation, so it cannot join the old cluster.
//! Every tenant in the erasure ledger is deleted again in the restored
//! state, whatever the backup held.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::catalog::{Catalog, SealedPairs, check_tail, download_data, read_manifest, read_segment};
use super::error::BackupError;
use super::layout::{SetName, format_ms};
use super::ledger;
use super::objects::Manifest;
use super::target::Target;
use crate::crypto::KeyProvider;
use crate::raft::NodeInfo;
use crate::storage::{LogSync, Store, TenantErasure, describe_entry};

/// How far a restore goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Everything the target holds.
    Latest,
    /// Every command proposed at or before this time (ms since the Unix epoch).
    Time(i64),
}

/// The node a restore builds, and from what.
pub struct RestoreRequest {
    pub target: Target,
    pub provider: Arc<dyn KeyProvider>,
    pub until: Until,
    pub data_dir: PathBuf,
    /// Clear a non-empty data directory first.
    pub force: bool,
    /// Restore this tenant alone (its records, keys and data keys).
    pub tenant: Option<String>,
    pub node_id: u64,
    pub cluster_name: String,
    pub node: NodeInfo,
}

/// What a restore brought back.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    pub set: SetName,
    pub manifest: Manifest,
    /// Log entries replayed from the archive on top of the set.
    pub replayed: u64,
    pub last_index: u64,
    pub last_term: u64,
    /// The commit time of the last command restored (ms since the Unix epoch).
    pub restored_to_ms: i64,
    pub records: u64,
    /// Tenants deleted again because the erasure ledger names them.
    pub erased: Vec<String>,
}

/// Whether a directory is missing or empty.
fn is_empty_dir(dir: &Path) -> std::io::Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e),
    }
}

/// Chooses the set to start from: the newest one, or the newest whose
/// state is no later than the time.
async fn choose_set(
    target: &Target,
    provider: &Arc<dyn KeyProvider>,
    catalog: &Catalog,
    until: Until,
) -> Result<(SetName, Manifest), BackupError> {
    let mut chosen: Option<(SetName, Manifest)> = None;
    let mut oldest_at: Option<i64> = None;
    for set in catalog.sets.iter().rev() {
        let manifest = read_manifest(target, provider, set).await?;
        oldest_at = Some(oldest_at.map_or(manifest.applied_at_ms, |at: i64| at.min(manifest.applied_at_ms)));
        let fits = match until {
            Until::Latest => true,
            Until::Time(t) => manifest.applied_at_ms <= t,
        };
        if fits {
            chosen = Some((*set, manifest));
            break;
        }
    }
    chosen.ok_or_else(|| match (until, oldest_at) {
        (_, None) => BackupError::NothingToRestore(format!("{} holds no finished full backup", target.url)),
        (Until::Time(t), Some(oldest)) => BackupError::NothingToRestore(format!(
            "the oldest full backup in {} reaches {}, after the time asked for ({})",
            target.url,
            format_ms(oldest),
            format_ms(t)
        )),
        (Until::Latest, Some(_)) => unreachable!("latest takes any set"),
    })
}

/// Builds a new cluster's first node from `request.target`.
pub async fn restore(request: RestoreRequest) -> Result<RestoreReport, BackupError> {
    let data_dir = &request.data_dir;
    if !is_empty_dir(data_dir)? {
        if !request.force {
            return Err(BackupError::NotEmpty(data_dir.display().to_string()));
        }
        std::fs::remove_dir_all(data_dir)?;
    }
    let provider = &request.provider;
    let target = &request.target;
    let catalog = Catalog::list(target).await?;
    let (set, manifest) = choose_set(target, provider, &catalog, request.until).await?;
    if manifest.cluster_name == request.cluster_name {
        return Err(BackupError::SameCluster(request.cluster_name.clone()));
    }

    // Everything is fetched and checked before the data directory is touched.
    let mut entries = Vec::new();
    let mut restored_to_ms = manifest.applied_at_ms;
    let chain = catalog.chain_after(set.index)?;
    let (ends_at, last_at_ms) = chain
        .last()
        .map_or((set.index, manifest.applied_at_ms), |s| (s.last, s.last_at_ms));
    // A restore that stops inside what the archive holds loses nothing to a
    // lost newest segment; one that would go past its end must not pass a
    // shorter restore off as the one asked for.
    let wants_past_end = match request.until {
        Until::Latest => true,
        Until::Time(t) => t > last_at_ms,
    };
    if wants_past_end {
        check_tail(target, provider, ends_at, last_at_ms).await?;
    }
    'segments: for name in chain {
        if let Until::Time(t) = request.until
            && name.first_at_ms > t
        {
            break;
        }
        let segment = read_segment(target, provider, &name).await?;
        for (offset, bytes) in segment.entries.into_iter().enumerate() {
            let index = segment.first + offset as u64;
            if index <= set.index + entries.len() as u64 {
                continue; // an overlapping segment's entries already taken
            }
            let entry = describe_entry(&bytes)?;
            if let (Until::Time(t), Some(at)) = (request.until, entry.proposed_at_ms)
                && at > t
            {
                break 'segments;
            }
            if let Some(at) = entry.proposed_at_ms {
                restored_to_ms = at;
            }
            entries.push(bytes);
        }
    }
    let erasures: Vec<TenantErasure> = ledger::read_all(target, provider)
        .await?
        .into_iter()
        .map(|e| TenantErasure {
            tenant: e.tenant,
            deleted_at_ms: e.deleted_at_ms,
        })
        .collect();
    let parent = data_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let mut file = tempfile::tempfile_in(parent)?;
    download_data(target, &set, &manifest, &mut file).await?;

    let store = Store::open(data_dir, request.node_id, &request.cluster_name, LogSync::Inline)
        .map_err(|e| BackupError::NodeStore(e.to_string()))?;
    let mut pairs = SealedPairs::new(provider.clone(), &set, file)?;
    let replayed = entries.len() as u64;
    let position = store
        .seed_restored(
            request.node_id,
            pairs.by_ref(),
            entries,
            &erasures,
            request.tenant.as_deref(),
            request.node.clone(),
        )
        .await?;
    if let Some(failure) = pairs.failure.take() {
        return Err(failure);
    }
    if pairs.pairs != manifest.pairs {
        return Err(BackupError::Tampered {
            object: set.data_path().to_string(),
            why: format!(
                "it held {} pairs where its manifest says {}",
                pairs.pairs, manifest.pairs
            ),
        });
    }
    Ok(RestoreReport {
        set,
        manifest,
        replayed,
        last_index: position.last_index,
        last_term: position.last_term,
        restored_to_ms,
        records: position.records,
        erased: position.erased,
    })
}
