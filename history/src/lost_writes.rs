//! Lost acknowledged writes: the promise that a zone loss loses nothing,
//! checked directly and cheaply, without the linearizability search (so it
//! still gives an answer when that search runs out of states).
//!
//! Two rules, per key:
//! - every acknowledged write must be observed or overwritten: a read
//!   returned its value and version, the store reported its version as
//!   current (a conflict, a successful compare-and-set expecting it), or a
//!   greater version shows up on the key (an acknowledged write, a read, a
//!   conflict), or — for a put — a read found the key absent after the put
//!   returned while a delete of unknown outcome could explain it;
//! - the final read of the key (the last successful read to be invoked; the
//!   workload ends with one per key) must not be older than the writes
//!   acknowledged before it began.
//!
//! A write broken by both rules is reported once, under the final-read rule.
//! Keys are checked as opaque strings; the history's keys are expected to
//! start absent.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::display::Bytes;
use crate::history::{History, Operation};
use crate::op::{Op, OpId, Outcome};

/// Why an acknowledged write counts as lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LostWriteReason {
    /// Nothing in the history observed the write or anything newer on the key.
    NeverObserved,
    /// The key's final read, invoked after the write was acknowledged, returned something older.
    FinalReadOlder {
        /// The final read.
        final_read: OpId,
        /// The version it returned; `None` when it found the key absent.
        final_version: Option<u64>,
    },
}

/// One acknowledged write that was lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostWrite {
    /// The key written.
    pub key: String,
    /// The acknowledged operation.
    pub op_id: OpId,
    /// The value written; `None` for a delete.
    pub value: Option<Vec<u8>>,
    /// The version the store acknowledged.
    pub version: u64,
    /// Which rule the write broke.
    pub reason: LostWriteReason,
}

impl fmt::Display for LostWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(
                f,
                "key {:?}: put {} v{} ({})",
                self.key,
                Bytes(value),
                self.version,
                self.op_id
            )?,
            None => write!(f, "key {:?}: delete v{} ({})", self.key, self.version, self.op_id)?,
        }
        match &self.reason {
            LostWriteReason::NeverObserved => write!(f, " was never observed nor overwritten"),
            LostWriteReason::FinalReadOlder {
                final_read,
                final_version: Some(version),
            } => write!(f, " is missing: final read {final_read} returned v{version}"),
            LostWriteReason::FinalReadOlder {
                final_read,
                final_version: None,
            } => write!(f, " is missing: final read {final_read} found the key absent"),
        }
    }
}

/// What the lost-write check looked at and what it found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostWriteReport {
    /// Acknowledged writes (puts, compare-and-sets, deletes) checked.
    pub acknowledged_writes: usize,
    /// Keys whose final read was checked.
    pub final_reads: usize,
    /// Keys with acknowledged writes but no successful read at all.
    pub keys_without_reads: usize,
    /// The lost writes, by key then version.
    pub lost: Vec<LostWrite>,
}

impl LostWriteReport {
    /// True when no acknowledged write was lost.
    pub fn is_ok(&self) -> bool {
        self.lost.is_empty()
    }
}

/// Checks every key of `history` for lost acknowledged writes.
pub fn check_lost_writes(history: &History) -> LostWriteReport {
    let mut report = LostWriteReport::default();
    for (key, operations) in history.by_key() {
        check_key(key, &operations, &mut report);
    }
    report
}

/// An acknowledged write.
struct Acked<'h> {
    operation: &'h Operation,
    /// The value put; `None` for a delete.
    value: Option<&'h [u8]>,
    version: u64,
}

/// Everything a key's history says about its versions.
#[derive(Default)]
struct Evidence<'h> {
    acked: Vec<Acked<'h>>,
    /// (version, value) pairs returned by reads.
    read: HashSet<(u64, &'h [u8])>,
    /// Versions the store reported current without a value (conflicts, compare-and-set expectations).
    current_versions: HashSet<u64>,
    /// The greatest version seen anywhere on the key.
    max_version: u64,
    /// (invoke, return) of answers that found the key absent.
    absent: Vec<(u64, u64)>,
    /// Invocation times of deletes of unknown outcome.
    unknown_deletes: Vec<u64>,
    /// The last successful read to be invoked.
    final_read: Option<&'h Operation>,
}

impl<'h> Evidence<'h> {
    fn gather(operations: &[&'h Operation]) -> Self {
        let mut evidence = Self::default();
        for &operation in operations {
            let span = (operation.invoke_ns, operation.return_ns.unwrap_or(u64::MAX));
            match (&operation.op, &operation.outcome) {
                (Op::Put { value, .. }, Outcome::Written { version }) => evidence.ack(operation, Some(value), *version),
                (
                    Op::PutIf {
                        value,
                        expected_version,
                        ..
                    },
                    Outcome::Written { version },
                ) => {
                    evidence.ack(operation, Some(value), *version);
                    evidence.current(*expected_version, span);
                }
                (Op::PutIf { .. }, Outcome::Conflict { current_version }) => evidence.current(*current_version, span),
                (Op::Delete { .. }, Outcome::Deleted { deleted, version }) => {
                    evidence.ack(operation, None, *version);
                    if !deleted {
                        evidence.absent.push(span);
                    }
                }
                (Op::Delete { .. }, Outcome::Unknown) => evidence.unknown_deletes.push(operation.invoke_ns),
                (Op::Get { .. }, Outcome::Read { record }) => {
                    match record {
                        Some(record) => {
                            evidence.read.insert((record.version, &record.value));
                            evidence.max_version = evidence.max_version.max(record.version);
                        }
                        None => evidence.absent.push(span),
                    }
                    let later = |last: &&Operation| (operation.invoke_ns, operation.id) > (last.invoke_ns, last.id);
                    if evidence.final_read.is_none_or(|last| later(&last)) {
                        evidence.final_read = Some(operation);
                    }
                }
                _ => {}
            }
        }
        evidence
    }

    fn ack(&mut self, operation: &'h Operation, value: Option<&'h Vec<u8>>, version: u64) {
        self.acked.push(Acked {
            operation,
            value: value.map(Vec::as_slice),
            version,
        });
        self.max_version = self.max_version.max(version);
    }

    /// The store reported `version` (0: absent) as the key's current version during `span`.
    fn current(&mut self, version: u64, span: (u64, u64)) {
        if version == 0 {
            self.absent.push(span);
        } else {
            self.current_versions.insert(version);
            self.max_version = self.max_version.max(version);
        }
    }

    /// True when something observed `write` or overwrote it.
    fn observed_or_overwritten(&self, write: &Acked<'h>) -> bool {
        if self.max_version > write.version || self.current_versions.contains(&write.version) {
            return true;
        }
        let operation = write.operation;
        match write.value {
            Some(value) => {
                let returned = operation.return_ns.unwrap_or(u64::MAX);
                self.read.contains(&(write.version, value))
                    || self.absent.iter().any(|&(invoke, answered)| {
                        invoke > returned && self.unknown_deletes.iter().any(|&delete| delete < answered)
                    })
            }
            None => self.absent.iter().any(|&(_, answered)| answered > operation.invoke_ns),
        }
    }

    /// Acknowledged writes missing from the final read, with the reason.
    fn missing_from_final_read(&self) -> Vec<(&Acked<'h>, LostWriteReason)> {
        let Some(final_read) = self.final_read else {
            return Vec::new();
        };
        let Outcome::Read { record } = &final_read.outcome else {
            return Vec::new();
        };
        let before = |write: &&Acked<'h>| write.operation.return_ns.is_some_and(|at| at < final_read.invoke_ns);
        let shown_version = match record {
            Some(record) => record.version,
            None => {
                let last_put = self
                    .acked
                    .iter()
                    .filter(before)
                    .filter(|w| w.value.is_some())
                    .map(|w| w.version)
                    .max();
                let Some(last_put) = last_put else {
                    return Vec::new();
                };
                let answered = final_read.return_ns.unwrap_or(u64::MAX);
                let deleted_later = self.acked.iter().any(|w| w.value.is_none() && w.version > last_put)
                    || self.unknown_deletes.iter().any(|&delete| delete < answered);
                if deleted_later {
                    return Vec::new();
                }
                // Absent: as if the last acknowledged delete (or the start) was the newest write.
                self.acked
                    .iter()
                    .filter(|w| w.value.is_none())
                    .map(|w| w.version)
                    .max()
                    .unwrap_or(0)
            }
        };
        let reason = LostWriteReason::FinalReadOlder {
            final_read: final_read.id,
            final_version: record.as_ref().map(|record| record.version),
        };
        self.acked
            .iter()
            .filter(before)
            .filter(|write| write.version > shown_version)
            .map(|write| (write, reason.clone()))
            .collect()
    }
}

/// Checks one key's operations and adds its findings to `report`.
fn check_key(key: &str, operations: &[&Operation], report: &mut LostWriteReport) {
    let evidence = Evidence::gather(operations);
    report.acknowledged_writes += evidence.acked.len();
    match evidence.final_read {
        Some(_) => report.final_reads += 1,
        None if !evidence.acked.is_empty() => report.keys_without_reads += 1,
        None => {}
    }
    let mut lost: BTreeMap<OpId, LostWrite> = BTreeMap::new();
    let mut note = |write: &Acked<'_>, reason: LostWriteReason| {
        lost.insert(
            write.operation.id,
            LostWrite {
                key: key.to_owned(),
                op_id: write.operation.id,
                value: write.value.map(<[u8]>::to_vec),
                version: write.version,
                reason,
            },
        );
    };
    for write in &evidence.acked {
        if !evidence.observed_or_overwritten(write) {
            note(write, LostWriteReason::NeverObserved);
        }
    }
    for (write, reason) in evidence.missing_from_final_read() {
        note(write, reason);
    }
    let mut lost: Vec<LostWrite> = lost.into_values().collect();
    lost.sort_by_key(|write| (write.version, write.op_id));
    report.lost.extend(lost);
}
