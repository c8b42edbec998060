//! Backups and restore. A running node with a `[backup]` section takes full
//! backups of the state machine and ships the committed log in segments to
//! an object store (`shipper`); `restore` builds a new cluster's first node
//! from them, to the latest state or to a point in time; `verify` checks a
//! target without restoring. Every object is sealed (`sealed`): encrypted
//! and authenticated under a key wrapped by the cluster's key provider.

mod archive;
mod catalog;
mod check;
mod error;
mod full;
mod layout;
mod ledger;
mod objects;
mod progress;
mod restore;
mod sealed;
mod shipper;
mod target;

pub use catalog::{Catalog, VerifyReport, verify};
pub use check::{CheckReport, check_newest_set};
pub use error::BackupError;
pub use layout::{SegmentName, SetName, format_ms};
pub use ledger::Erasure;
pub use objects::Manifest;
pub use progress::Progress;
pub use restore::{RestoreReport, RestoreRequest, Until, restore};
pub use shipper::{Shipper, has_duty};
pub use target::Target;

/// Reads where the backups in `target` stand, as the shipping node last wrote it.
pub async fn read_progress(
    target: &Target,
    provider: &std::sync::Arc<dyn crate::crypto::KeyProvider>,
) -> Result<Option<Progress>, BackupError> {
    progress::read(target, provider).await
}

/// What a node needs to read its cluster's backups: the primary target and
/// the key provider that opens its objects.
#[derive(Clone)]
pub struct BackupAccess {
    pub target: Target,
    pub provider: std::sync::Arc<dyn crate::crypto::KeyProvider>,
}
