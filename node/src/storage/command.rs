//! What the replicated log carries for the application, and what applying it
//! returns. A write is a batch of mutations of one tenant, applied atomically;
//! a single put or delete is a batch of one.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Identifies a write so a retry of it applies at most once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WriteId {
    pub client_id: String,
    pub request_id: u64,
}

/// One change to one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mutation {
    /// Create or replace; with `expected_version`, only at that version (0: must not exist).
    Put {
        key: String,
        value: Vec<u8>,
        expected_version: Option<u64>,
    },
    /// Remove; with `expected_version`, only at that version.
    Delete { key: String, expected_version: Option<u64> },
}

impl Mutation {
    /// The record key this mutation touches.
    pub fn key(&self) -> &str {
        match self {
            Mutation::Put { key, .. } | Mutation::Delete { key, .. } => key,
        }
    }

    /// The version the record must be at for this mutation to apply, if any.
    pub fn expected_version(&self) -> Option<u64> {
        match self {
            Mutation::Put { expected_version, .. } | Mutation::Delete { expected_version, .. } => *expected_version,
        }
    }
}

/// A write as it travels through the Raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// Present for client writes; lets a retry find the first result.
    pub write_id: Option<WriteId>,
    /// The leader's wall clock when it accepted the write (ms since the Unix epoch).
    pub proposed_at_ms: i64,
    pub tenant: String,
    pub mutations: Vec<Mutation>,
}

impl fmt::Display for Command {
    // Values never appear: only the shape of the write.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "write(tenant={}, mutations={})", self.tenant, self.mutations.len())
    }
}

/// The result of applying one log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResponse {
    /// Every mutation applied at log index `version`.
    Applied {
        version: u64,
        updated_at_ms: i64,
        /// Per mutation: whether the record existed before (tells a delete whether it deleted).
        existed: Vec<bool>,
    },
    /// A compare-and-set failed: nothing applied. `current_version` 0 means absent.
    Conflict { key: String, current_version: u64 },
    /// A blank or membership entry: nothing for a client.
    Noop,
    /// The write's id is older than every result its client still has
    /// remembered: it may have been applied long ago, so it is not applied now.
    Forgotten,
}
