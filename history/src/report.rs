//! One verdict for a whole history: [`check_all`] runs every check and
//! returns a [`Report`] that says whether the run passed ([`Report::is_ok`])
//! and, through `Display`, what went wrong in words an SRE can act on.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::history::History;
use crate::linearizability::{Limits, LinearizabilityReport, check_linearizability};
use crate::lost_writes::{LostWriteReport, check_lost_writes};

/// Violations of each kind listed in a report's `Display` before the rest are only counted.
pub const MAX_VIOLATIONS_SHOWN: usize = 20;

/// The results of every check on one history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Operations in the history.
    pub operations: usize,
    /// Per-key linearizability.
    pub linearizability: LinearizabilityReport,
    /// Lost acknowledged writes.
    pub lost_writes: LostWriteReport,
}

impl Report {
    /// True when every key is linearizable (none inconclusive) and no acknowledged write was lost.
    pub fn is_ok(&self) -> bool {
        self.linearizability.is_ok() && self.lost_writes.is_ok()
    }

    /// True when a check found a violation (an inconclusive key alone is not one).
    pub fn has_violations(&self) -> bool {
        self.linearizability.violations().next().is_some() || !self.lost_writes.is_ok()
    }
}

/// Runs every check on `history` with the default [`Limits`].
pub fn check_all(history: &History) -> Report {
    check_all_with(history, &Limits::default())
}

/// Runs every check on `history` with the given search limits.
pub fn check_all_with(history: &History, limits: &Limits) -> Report {
    Report {
        operations: history.len(),
        linearizability: check_linearizability(history, limits),
        lost_writes: check_lost_writes(history),
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.is_ok() {
            "PASSED"
        } else if self.has_violations() {
            "FAILED"
        } else {
            "INCONCLUSIVE"
        };
        writeln!(f, "history check {verdict}: {} operations", self.operations)?;

        let lin = &self.linearizability;
        let violations: Vec<_> = lin.violations().collect();
        let inconclusive: Vec<_> = lin.inconclusive().collect();
        let checked: usize = lin.keys.iter().map(|result| result.operations).sum();
        let states: usize = lin.keys.iter().map(|result| result.states_explored).sum();
        writeln!(
            f,
            "linearizability: {} keys ({checked} operations checked, {states} states explored): \
             {} linearizable, {} violations, {} inconclusive",
            lin.keys.len(),
            lin.linearizable_keys(),
            violations.len(),
            inconclusive.len(),
        )?;
        for violation in violations.iter().take(MAX_VIOLATIONS_SHOWN) {
            write!(f, "  {violation}")?;
        }
        for result in inconclusive.iter().take(MAX_VIOLATIONS_SHOWN) {
            writeln!(
                f,
                "  key {:?} is inconclusive: search stopped after {} states ({} operations)",
                result.key, result.states_explored, result.operations
            )?;
        }
        let hidden = violations.len().saturating_sub(MAX_VIOLATIONS_SHOWN)
            + inconclusive.len().saturating_sub(MAX_VIOLATIONS_SHOWN);
        if hidden > 0 {
            writeln!(f, "  … and {hidden} more keys not shown")?;
        }

        let lost = &self.lost_writes;
        writeln!(
            f,
            "lost writes: {} acknowledged writes, {} final reads checked, {} keys never read: {} lost",
            lost.acknowledged_writes,
            lost.final_reads,
            lost.keys_without_reads,
            lost.lost.len(),
        )?;
        for write in lost.lost.iter().take(MAX_VIOLATIONS_SHOWN) {
            writeln!(f, "  {write}")?;
        }
        if lost.lost.len() > MAX_VIOLATIONS_SHOWN {
            writeln!(
                f,
                "  … and {} more lost writes not shown",
                lost.lost.len() - MAX_VIOLATIONS_SHOWN
            )?;
        }
        Ok(())
    }
}
