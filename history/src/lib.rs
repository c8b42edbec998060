//! Records operation histories of a safekeep cluster and checks them.
//!
//! A workload (the turmoil simulation in `sim/`, the chaos drills in
//! `chaos/`) wraps every request in [`Recorder::invoke`] and
//! [`Recorder::complete`], with timestamps from its own clock. At the end,
//! [`check_all`] takes the [`History`] and checks, key by key, that
//! - the operations are linearizable against a versioned register
//!   ([`linearizability`]): reads see the latest write, compare-and-set
//!   conflicts report the true current version, versions grow in the order
//!   writes take effect, and writes of unknown outcome either took effect
//!   once or never;
//! - no acknowledged write was lost ([`lost_writes`]).
//!
//! The returned [`Report`] says whether the run passed and, printed, which
//! operations break which rule. A history serializes with serde, so a failing
//! run can be saved and checked again.
//!
//! ```
//! use safekeep_history::{ClientId, Op, Outcome, Recorder, Versioned, check_all};
//!
//! let recorder = Recorder::new();
//! let put = Op::Put { key: "k".into(), value: b"a".to_vec() };
//! let id = recorder.invoke(ClientId(1), put, 0)?;
//! recorder.complete(id, Outcome::Written { version: 3 }, 10)?;
//! let id = recorder.invoke(ClientId(2), Op::Get { key: "k".into() }, 20)?;
//! let record = Some(Versioned { value: b"a".to_vec(), version: 3 });
//! recorder.complete(id, Outcome::Read { record }, 30)?;
//!
//! let report = check_all(&recorder.history());
//! assert!(report.is_ok(), "{report}");
//! # Ok::<(), safekeep_history::HistoryError>(())
//! ```
//!
//! This crate depends on no runtime, network or storage crate, so both the
//! simulation and the drills can use it.

#![warn(missing_docs)]

mod bitset;
mod display;
mod model;

pub mod history;
pub mod linearizability;
pub mod lost_writes;
pub mod op;
pub mod recorder;
pub mod report;

pub use history::{History, HistoryError, MAX_OPERATIONS, Operation};
pub use linearizability::{
    KeyResult, Limits, LinearizabilityReport, MAX_STATES_PER_KEY, RegisterState, Verdict, Violation,
    check_linearizability,
};
pub use lost_writes::{LostWrite, LostWriteReason, LostWriteReport, check_lost_writes};
pub use op::{ClientId, Op, OpId, Outcome, Versioned};
pub use recorder::Recorder;
pub use report::{Report, check_all, check_all_with};
