//! Why a backup, a verification or a restore failed. Every failure names the
//! object it is about and what was wrong with it, so an operator reading a
//! refused restore knows what to look at.

/// A backup, verification or restore failure.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("backup target {target}: {reason}")]
    BadTarget { target: String, reason: String },
    #[error("backup target: {0}")]
    Store(#[from] object_store::Error),
    #[error("sealing a backup object: {0}")]
    Crypto(String),
    #[error("backup object {object} was tampered with or is damaged: {why}")]
    Tampered { object: String, why: String },
    #[error("backup object {object} is cut short: its final frame is missing")]
    Truncated { object: String },
    #[error("backup object {object} is missing")]
    Missing { object: String },
    #[error(
        "the log archive has a gap: no segment holds log index {from} (the next one starts at {next_starts}), \
         so nothing after index {} can be restored from it",
        from - 1
    )]
    Gap { from: u64, next_starts: u64 },
    #[error(
        "the log archive ends at log index {ends_at}, but the node that ships recorded archiving up to \
         index {archived}: the newest segments are missing (restore --to-time {last_at} at the latest \
         to accept losing them)"
    )]
    MissingTail {
        ends_at: u64,
        archived: u64,
        /// The newest commit time the archive still holds, as restore takes it.
        last_at: String,
    },
    #[error("no backup to restore: {0}")]
    NothingToRestore(String),
    #[error("the data directory {0} is not empty: restore into an empty directory, or pass --force to clear it")]
    NotEmpty(String),
    #[error("the restored cluster needs a new cluster name: '{0}' is the name of the backed-up cluster")]
    SameCluster(String),
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("the node's store: {0}")]
    NodeStore(String),
}
