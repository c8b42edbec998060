//! Durable state of a node, all in one RocksDB: the Raft log and vote
//! (`log_store`), the replicated state machine (`state_machine`), snapshots
//! cut from one RocksDB snapshot (`snapshot`), and the identity that ties a
//! data directory to one node of one cluster (`identity`).
//!
//! Together with `raft/`, this is the only place that names openraft types.

pub mod audit;
pub mod command;
mod db;
mod expiry_clock;
mod idempotency;
mod identity;
mod keys;
mod log_store;
mod snapshot;
mod state_machine;
pub mod tenancy;
mod unsynced;

#[cfg(test)]
mod conformance_tests;

pub use db::{Store, StoreCloseWatch, StoreError};
pub use keys::KeyError;
pub use log_store::{EntryFingerprint, LogFingerprints, LogStore, LogSync};
pub use snapshot::{SnapshotDir, SnapshotFile};
pub use state_machine::{ListPage, RecordReader, ReplicaDigest, StateMachineStore, StoredRecord};
pub use unsynced::UnsyncedWrites;
