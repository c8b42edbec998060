//! Crypto-shredding within a bound. When this replica applies a tenant's
//! deletion, its wrapped data keys are gone from the state machine but not
//! yet from the disk: this task has a snapshot taken past the deletion,
//! purges the log up to that snapshot (the commands that created or rotated
//! the keys go with it), and has the store flush and compact its files. Each
//! step is bounded by `SHRED_STEP_TIMEOUT`; a step that fails is logged and
//! the next deletion tries again.
//!
//! A node that ships backups does not force the purge: the backup archive
//! and its erasure ledger must first see the deletion's log entry, and only
//! the shipping node knows how far the archive got. There the log is purged
//! by openraft's own policy, after the shipper had its chance.

use std::time::Duration;

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver as _;

use super::types::{SafekeepRaft, TypeConfig};
use crate::storage::Shredder;

/// What this node's Raft reports of itself.
type Metrics = openraft::RaftMetrics<TypeConfig>;

/// Longest each step (snapshot, log purge, compaction) may take.
pub const SHRED_STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether the log is purged up to the snapshot taken past a deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purge {
    /// At once: no backup archive reads this node's log.
    Forced,
    /// By openraft's own policy: a backup archive reads this node's log.
    LeftToPolicy,
}

/// Runs the shredding task until Raft shuts down.
pub(super) fn spawn(raft: SafekeepRaft, mut shredder: Shredder, purge: Purge) {
    tokio::spawn(async move {
        loop {
            let index = tokio::select! {
                next = shredder.next_deletion() => match next {
                    Some(index) => index,
                    None => return,
                },
                () = shut_down(&raft) => return,
            };
            match tokio::time::timeout(3 * SHRED_STEP_TIMEOUT, shred(&raft, &shredder, index, purge)).await {
                Ok(Ok(())) => tracing::info!(index, "a deleted tenant's data keys are gone from this node's files"),
                Ok(Err(reason)) => tracing::warn!(index, reason, "could not remove a deleted tenant's leftovers"),
                Err(_) => tracing::warn!(index, "removing a deleted tenant's leftovers timed out"),
            }
        }
    });
}

async fn shut_down(raft: &SafekeepRaft) {
    let mut metrics = raft.metrics();
    loop {
        if metrics.borrow_watched().state == ServerState::Shutdown {
            return;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Waits (bounded) until `reached` holds of this node's Raft metrics.
async fn until(raft: &SafekeepRaft, what: &str, reached: impl Fn(&Metrics) -> bool) -> Result<(), String> {
    let mut metrics = raft.metrics();
    let wait = async {
        loop {
            if reached(&metrics.borrow_watched()) {
                return Ok(());
            }
            if metrics.changed().await.is_err() {
                return Err(format!("raft stopped before {what}"));
            }
        }
    };
    tokio::time::timeout(SHRED_STEP_TIMEOUT, wait)
        .await
        .unwrap_or_else(|_| Err(format!("no {what} within {SHRED_STEP_TIMEOUT:?}")))
}

async fn shred(raft: &SafekeepRaft, shredder: &Shredder, deleted_at: u64, purge: Purge) -> Result<(), String> {
    raft.trigger().snapshot().await.map_err(|e| e.to_string())?;
    let covers = |m: &Metrics| m.snapshot.as_ref().is_some_and(|s| s.index >= deleted_at);
    until(raft, "snapshot past the deletion", covers).await?;
    let snapshot = raft
        .metrics()
        .borrow_watched()
        .snapshot
        .as_ref()
        .map_or(deleted_at, |s| s.index);
    if purge == Purge::Forced {
        raft.trigger().purge_log(snapshot).await.map_err(|e| e.to_string())?;
        let purged = |m: &Metrics| m.purged.as_ref().is_some_and(|p| p.index >= snapshot);
        until(raft, "log purge up to the snapshot", purged).await?;
    }
    let files = shredder.clone();
    tokio::task::spawn_blocking(move || files.drop_stale_files())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}
