//! Durable state of a node, all in one RocksDB: the Raft log and vote
//! (`log_store`), the replicated state machine (`state_machine`), snapshots
//! cut from one RocksDB snapshot (`snapshot`), and the identity that ties a
//! data directory to one node of one cluster (`identity`).
//!
//! Together with `raft/`, this is the only place that names openraft types.

mod archive_log;
pub mod audit;
mod blocking;
pub(crate) use blocking::off_runtime;
mod columns;
mod db;
mod dump;
mod error;
mod expiry_clock;
mod expiry_scan;
mod export;
mod handle;
mod idempotency;
mod identity;
mod keys;
mod log_store;
mod reader;
mod shred;
mod snapshot;
mod state_machine;
pub mod tenancy;
pub(crate) mod types;
mod unsynced;

#[cfg(test)]
mod conformance_tests;

pub use archive_log::{EncodedEntry, LogArchiveReader, describe_entry};
pub use db::{Store, StoreCloseWatch};
pub use dump::{DumpSummary, RecordsDigest, RestoredPosition, TenantErasure};
pub use error::StoreError;
pub use expiry_scan::StaleScan;
pub use export::{ChunkLimits, ExportChunk, ExportError, ExportPoint};
pub use identity::JoinRecord;
pub use keys::KeyError;
pub use log_store::{EntryFingerprint, LogFingerprints, LogStore, LogSync};
pub use reader::{ListPage, RecordReader, ReplicaDigest, StoredRecord};
pub use shred::Shredder;
pub use snapshot::{SnapshotDir, SnapshotFile};
pub use state_machine::StateMachineStore;
pub use unsynced::UnsyncedWrites;
