//! The vocabulary of a history: what a client asked the store to do ([`Op`]),
//! what came back ([`Outcome`]), and who asked ([`ClientId`], [`OpId`]).
//!
//! These mirror the store's data model (records of a tenant keyed by string,
//! byte values, a `version` that is the Raft log index of the write) without
//! naming any type of the client SDK, so the simulation and the chaos drills
//! can both translate their own results into them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::display::Bytes;

/// Identifies one client, a sequential actor of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(pub u64);

/// Identifies one operation of a history; the recorder assigns them in invocation order from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OpId(pub u64);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A record value together with the version of the write that stored it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Versioned {
    /// The value as stored.
    pub value: Vec<u8>,
    /// The Raft log index of the write that stored the value.
    pub version: u64,
}

impl fmt::Display for Versioned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@v{}", Bytes(&self.value), self.version)
    }
}

/// One operation a client invokes on one key.
///
/// When a history spans several tenants, qualify the key with the tenant
/// (for example `"acme/customers/1"`): the checkers treat keys as opaque.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Store `value` under `key` unconditionally.
    Put {
        /// The record's key.
        key: String,
        /// The value to store; workloads write each value at most once.
        value: Vec<u8>,
    },
    /// Store `value` under `key` if the record's version is `expected_version` (0: the record must not exist).
    PutIf {
        /// The record's key.
        key: String,
        /// The value to store; workloads write each value at most once.
        value: Vec<u8>,
        /// The version the record must have, 0 when it must not exist.
        expected_version: u64,
    },
    /// Remove the record under `key`.
    Delete {
        /// The record's key.
        key: String,
    },
    /// Read the record under `key` (linearizable read).
    Get {
        /// The record's key.
        key: String,
    },
}

impl Op {
    /// The key the operation works on.
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::PutIf { key, .. } | Op::Delete { key } | Op::Get { key } => key,
        }
    }

    /// True for operations that may change the store (everything but `Get`).
    pub fn is_write(&self) -> bool {
        !matches!(self, Op::Get { .. })
    }

    /// A short lower-case name of the operation's kind, for messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Op::Put { .. } => "put",
            Op::PutIf { .. } => "put_if",
            Op::Delete { .. } => "delete",
            Op::Get { .. } => "get",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Put { key, value } => write!(f, "put {key:?} = {}", Bytes(value)),
            Op::PutIf {
                key,
                value,
                expected_version,
            } => write!(f, "put_if {key:?} = {} if v{expected_version}", Bytes(value)),
            Op::Delete { key } => write!(f, "delete {key:?}"),
            Op::Get { key } => write!(f, "get {key:?}"),
        }
    }
}

/// What an operation returned.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A `Put` or `PutIf` was applied as the write with this version.
    Written {
        /// The Raft log index of the write.
        version: u64,
    },
    /// A `PutIf` was refused: the record's version was `current_version` (0: absent), not the expected one.
    Conflict {
        /// The record's version the store reported, 0 when the record did not exist.
        current_version: u64,
    },
    /// A `Delete` was applied as the write with this version.
    Deleted {
        /// Whether a record existed and was removed.
        deleted: bool,
        /// The Raft log index of the delete.
        version: u64,
    },
    /// A `Get` returned the record, or `None` when it did not exist.
    Read {
        /// The record read, `None` when absent.
        record: Option<Versioned>,
    },
    /// The operation certainly did not take effect.
    Fail,
    /// The operation's fate is unknown (a timeout, a dropped connection): it may or may not have taken effect.
    Unknown,
}

impl Outcome {
    /// A short lower-case name of the outcome's kind, for messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Outcome::Written { .. } => "written",
            Outcome::Conflict { .. } => "conflict",
            Outcome::Deleted { .. } => "deleted",
            Outcome::Read { .. } => "read",
            Outcome::Fail => "fail",
            Outcome::Unknown => "unknown",
        }
    }

    /// True when this outcome is a possible answer to `op` (for example `Conflict` only answers a `PutIf`).
    pub fn answers(&self, op: &Op) -> bool {
        match self {
            Outcome::Fail | Outcome::Unknown => true,
            Outcome::Written { .. } => matches!(op, Op::Put { .. } | Op::PutIf { .. }),
            Outcome::Conflict { .. } => matches!(op, Op::PutIf { .. }),
            Outcome::Deleted { .. } => matches!(op, Op::Delete { .. }),
            Outcome::Read { .. } => matches!(op, Op::Get { .. }),
        }
    }

    /// True when the store answered definitely: anything but `Unknown`.
    pub fn is_definite(&self) -> bool {
        !matches!(self, Outcome::Unknown)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Written { version } => write!(f, "written v{version}"),
            Outcome::Conflict { current_version } => write!(f, "conflict (current v{current_version})"),
            Outcome::Deleted { deleted, version } => write!(f, "deleted={deleted} v{version}"),
            Outcome::Read { record: Some(record) } => write!(f, "read {record}"),
            Outcome::Read { record: None } => write!(f, "read absent"),
            Outcome::Fail => write!(f, "fail"),
            Outcome::Unknown => write!(f, "unknown"),
        }
    }
}
