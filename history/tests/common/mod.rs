//! Helpers to write histories by hand in tests: one call per operation, with
//! its client, its [invoke, return] span and its outcome.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use safekeep_history::{ClientId, History, Op, OpId, Operation, Outcome, Versioned};

/// Builds a history operation by operation; ids follow the order of calls.
#[derive(Default)]
pub struct Builder {
    operations: Vec<Operation>,
}

impl Builder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an operation; `span: None` leaves it pending (never completed).
    pub fn op(&mut self, client: u64, op: Op, span: Option<(u64, u64)>, outcome: Outcome) -> OpId {
        let id = OpId(self.operations.len() as u64);
        let (invoke_ns, return_ns) = match span {
            Some((invoke, ret)) => (invoke, Some(ret)),
            None => (0, None),
        };
        self.operations.push(Operation {
            id,
            client: ClientId(client),
            op,
            invoke_ns,
            return_ns,
            outcome,
        });
        id
    }

    pub fn put(&mut self, client: u64, key: &str, value: &str, span: (u64, u64), outcome: Outcome) -> OpId {
        self.op(client, put(key, value), Some(span), outcome)
    }

    /// A put invoked at `invoke_ns` that never completed.
    pub fn pending_put(&mut self, client: u64, key: &str, value: &str, invoke_ns: u64) -> OpId {
        let id = self.op(client, put(key, value), None, Outcome::Unknown);
        self.operations[id.0 as usize].invoke_ns = invoke_ns;
        id
    }

    pub fn put_if(
        &mut self,
        client: u64,
        key: &str,
        value: &str,
        expected_version: u64,
        span: (u64, u64),
        outcome: Outcome,
    ) -> OpId {
        let op = Op::PutIf {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            expected_version,
        };
        self.op(client, op, Some(span), outcome)
    }

    pub fn delete(&mut self, client: u64, key: &str, span: (u64, u64), outcome: Outcome) -> OpId {
        self.op(client, Op::Delete { key: key.into() }, Some(span), outcome)
    }

    /// A successful read returning `record` (`None`: absent).
    pub fn get(&mut self, client: u64, key: &str, span: (u64, u64), record: Option<(&str, u64)>) -> OpId {
        self.op(client, Op::Get { key: key.into() }, Some(span), read(record))
    }

    pub fn build(self) -> History {
        History::new(self.operations).expect("test histories are well formed")
    }
}

pub fn put(key: &str, value: &str) -> Op {
    Op::Put {
        key: key.into(),
        value: value.as_bytes().to_vec(),
    }
}

pub fn written(version: u64) -> Outcome {
    Outcome::Written { version }
}

pub fn conflict(current_version: u64) -> Outcome {
    Outcome::Conflict { current_version }
}

pub fn deleted(deleted: bool, version: u64) -> Outcome {
    Outcome::Deleted { deleted, version }
}

pub fn read(record: Option<(&str, u64)>) -> Outcome {
    Outcome::Read {
        record: record.map(|(value, version)| Versioned {
            value: value.as_bytes().to_vec(),
            version,
        }),
    }
}
