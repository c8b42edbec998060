//! Backups and restore. A running node with a `[backup]` section takes full
//! backups of the state machine and ships the committed log in segments to
//! an object store (`shipper`); `restore` builds a new cluster's first node
//! from them, to the latest state or to a point in time; `verify` checks a
//! target without restoring. Every object is sealed (`sealed`): encrypted
//! and authenticated under a key wrapped by the cluster's key provider.

mod archive;
mod catalog;
mod error;
mod full;
mod layout;
mod ledger;
mod objects;
mod restore;
mod sealed;
mod shipper;
mod target;

pub use catalog::{Catalog, VerifyReport, verify};
pub use error::BackupError;
pub use layout::{SegmentName, SetName};
pub use ledger::Erasure;
pub use objects::Manifest;
pub use restore::{RestoreReport, RestoreRequest, Until, format_ms, restore};
pub use shipper::{Shipper, has_duty};
pub use target::Target;
