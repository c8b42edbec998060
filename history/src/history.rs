//! A recorded history: every operation with its client, its invocation and
//! return times, and its outcome, in a deterministic order (by [`OpId`]).
//!
//! Times are nanoseconds on whatever clock the caller uses, simulated
//! (turmoil) or real; only their order matters to the checkers. A history is
//! validated when it is built or deserialized, so a saved history from a
//! failing run can be loaded and checked again, and a malformed one is
//! refused with a [`HistoryError`] instead of confusing the checkers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::op::{ClientId, Op, OpId, Outcome};

/// Most operations a history may hold (recorder and loaded histories alike).
pub const MAX_OPERATIONS: usize = 1_000_000;

/// Why a history, or a call to the recorder, was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// The history would exceed [`MAX_OPERATIONS`].
    #[error("a history holds at most {limit} operations")]
    TooManyOperations {
        /// The limit that was reached.
        limit: usize,
    },
    /// Two operations carry the same id.
    #[error("operation {0} appears more than once")]
    DuplicateOpId(OpId),
    /// The recorder was asked to complete an operation it never saw invoked.
    #[error("operation {0} was never invoked")]
    UnknownOpId(OpId),
    /// The recorder was asked to complete an operation twice.
    #[error("operation {0} was already completed")]
    AlreadyCompleted(OpId),
    /// The outcome cannot answer the operation (for example a `conflict` for a plain `put`).
    #[error("operation {id}: outcome `{outcome}` cannot answer a `{op}`")]
    OutcomeMismatch {
        /// The operation.
        id: OpId,
        /// The operation's kind.
        op: &'static str,
        /// The outcome's kind.
        outcome: &'static str,
    },
    /// The operation returned before it was invoked.
    #[error("operation {id} returned at {return_ns} ns, before its invocation at {invoke_ns} ns")]
    ReturnBeforeInvoke {
        /// The operation.
        id: OpId,
        /// When it was invoked.
        invoke_ns: u64,
        /// When it returned.
        return_ns: u64,
    },
    /// A definite outcome without a return time (only `unknown` operations may lack one).
    #[error("operation {id} has outcome `{outcome}` but no return time")]
    MissingReturnTime {
        /// The operation.
        id: OpId,
        /// The outcome's kind.
        outcome: &'static str,
    },
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// The operation's id, unique within the history.
    pub id: OpId,
    /// The client that invoked it.
    pub client: ClientId,
    /// What was asked.
    pub op: Op,
    /// When it was invoked, in nanoseconds of the caller's clock.
    pub invoke_ns: u64,
    /// When it returned; `None` if it never completed (then `outcome` is `Unknown`).
    pub return_ns: Option<u64>,
    /// What came back; `Unknown` for operations that never completed.
    pub outcome: Outcome,
}

impl Operation {
    /// True when the operation never completed.
    pub fn is_pending(&self) -> bool {
        self.return_ns.is_none()
    }

    /// Checks that the outcome answers the operation and the times are in order.
    pub fn validate(&self) -> Result<(), HistoryError> {
        if !self.outcome.answers(&self.op) {
            return Err(HistoryError::OutcomeMismatch {
                id: self.id,
                op: self.op.kind_name(),
                outcome: self.outcome.kind_name(),
            });
        }
        match self.return_ns {
            None if self.outcome.is_definite() => Err(HistoryError::MissingReturnTime {
                id: self.id,
                outcome: self.outcome.kind_name(),
            }),
            Some(return_ns) if return_ns < self.invoke_ns => Err(HistoryError::ReturnBeforeInvoke {
                id: self.id,
                invoke_ns: self.invoke_ns,
                return_ns,
            }),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} -> {} [{}..",
            self.id, self.client, self.op, self.outcome, self.invoke_ns
        )?;
        match self.return_ns {
            Some(return_ns) => write!(f, "{return_ns}]"),
            None => write!(f, "never]"),
        }
    }
}

/// A validated history, its operations ordered by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedHistory")]
pub struct History {
    operations: Vec<Operation>,
}

/// The serialized shape of a history, validated into a [`History`] when loaded.
#[derive(Deserialize)]
struct UncheckedHistory {
    operations: Vec<Operation>,
}

impl TryFrom<UncheckedHistory> for History {
    type Error = HistoryError;

    fn try_from(unchecked: UncheckedHistory) -> Result<Self, Self::Error> {
        History::new(unchecked.operations)
    }
}

impl History {
    /// Builds a history from operations in any order, validating each and sorting them by id.
    pub fn new(mut operations: Vec<Operation>) -> Result<Self, HistoryError> {
        if operations.len() > MAX_OPERATIONS {
            return Err(HistoryError::TooManyOperations { limit: MAX_OPERATIONS });
        }
        operations.sort_by_key(|operation| operation.id);
        for pair in operations.windows(2) {
            if pair[0].id == pair[1].id {
                return Err(HistoryError::DuplicateOpId(pair[0].id));
            }
        }
        for operation in &operations {
            operation.validate()?;
        }
        Ok(Self { operations })
    }

    /// Wraps operations the recorder has already validated and ordered.
    pub(crate) fn from_recorded(operations: Vec<Operation>) -> Self {
        debug_assert!(operations.windows(2).all(|pair| pair[0].id < pair[1].id));
        Self { operations }
    }

    /// The operations, ordered by id.
    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    /// The number of operations.
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    /// True when the history holds no operation.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    /// The operation with this id, if any.
    pub fn get(&self, id: OpId) -> Option<&Operation> {
        self.operations
            .binary_search_by_key(&id, |operation| operation.id)
            .ok()
            .map(|index| &self.operations[index])
    }

    /// Every key the history touches, in order.
    pub fn keys(&self) -> BTreeSet<&str> {
        self.operations.iter().map(|operation| operation.op.key()).collect()
    }

    /// The operations grouped by key, keys in order, each group ordered by id.
    pub(crate) fn by_key(&self) -> BTreeMap<&str, Vec<&Operation>> {
        let mut groups: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
        for operation in &self.operations {
            groups.entry(operation.op.key()).or_default().push(operation);
        }
        groups
    }
}
