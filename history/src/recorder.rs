//! Records a history while a workload runs: each client calls
//! [`Recorder::invoke`] before it sends a request and [`Recorder::complete`]
//! when the answer (or its timeout) arrives.
//!
//! The caller supplies every timestamp, in nanoseconds of its own clock, so
//! the same recorder serves a turmoil simulation (simulated time) and chaos
//! drills on real processes (a monotonic clock). A `Recorder` is a cheap,
//! thread-safe handle: clone it into every client task. Operations still
//! pending when [`Recorder::history`] is taken appear with outcome `Unknown`
//! and no return time, which the checkers treat as "may take effect at any
//! point after invocation, or never".

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::history::{History, HistoryError, MAX_OPERATIONS, Operation};
use crate::op::{ClientId, Op, OpId, Outcome};

/// A shared, append-only log of operations; clones record into the same history.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    operations: Arc<Mutex<Vec<Operation>>>,
}

impl Recorder {
    /// Creates an empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `client` invoked `op` at `invoke_ns`; returns the id to complete it with.
    pub fn invoke(&self, client: ClientId, op: Op, invoke_ns: u64) -> Result<OpId, HistoryError> {
        let mut operations = self.lock();
        if operations.len() >= MAX_OPERATIONS {
            return Err(HistoryError::TooManyOperations { limit: MAX_OPERATIONS });
        }
        let id = OpId(operations.len() as u64);
        operations.push(Operation {
            id,
            client,
            op,
            invoke_ns,
            return_ns: None,
            outcome: Outcome::Unknown,
        });
        Ok(id)
    }

    /// Records that operation `id` returned `outcome` at `return_ns` (use `Outcome::Unknown` for a timeout).
    pub fn complete(&self, id: OpId, outcome: Outcome, return_ns: u64) -> Result<(), HistoryError> {
        let mut operations = self.lock();
        let operation = usize::try_from(id.0)
            .ok()
            .and_then(|index| operations.get_mut(index))
            .ok_or(HistoryError::UnknownOpId(id))?;
        if !operation.is_pending() {
            return Err(HistoryError::AlreadyCompleted(id));
        }
        let completed = Operation {
            return_ns: Some(return_ns),
            outcome,
            ..operation.clone()
        };
        completed.validate()?;
        *operation = completed;
        Ok(())
    }

    /// A snapshot of the history so far; operations still pending appear as `Unknown` with no return time.
    pub fn history(&self) -> History {
        History::from_recorded(self.lock().clone())
    }

    /// The number of operations invoked so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing has been invoked yet.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Locks the log; a panic elsewhere cannot leave it half-updated, so a poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, Vec<Operation>> {
        self.operations.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
