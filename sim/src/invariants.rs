//! Invariants the harness checks on every running node after each simulation
//! step: at most one leader per term, and committed entries never change.
//!
//! The second is checked on the logs themselves: every entry a node reports
//! as committed is read from its store (index, term, hash of its bytes) as
//! soon as it is committed, and again from every node's whole retained log
//! after the run, and each reading must match the first one any node gave.
//! Entries a snapshot already covered are gone from the log and only the
//! state machine digest speaks for them.

use std::collections::{BTreeMap, BTreeSet};

use safekeep_node::raft::{ClusterView, Consensus, Role};
use safekeep_node::storage::EntryFingerprint;

/// Changed committed entries listed one by one; the rest are only counted.
const MAX_CHANGES_LISTED: usize = 20;

/// A broken invariant, with what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvariantViolation {
    TwoLeaders {
        term: u64,
        leaders: Vec<u64>,
    },
    CommittedEntryChanged {
        index: u64,
        first: (u64, u64),
        now: (u64, u64),
        node: u64,
    },
    LogUnreadable {
        node: u64,
        error: String,
    },
}

impl std::fmt::Display for InvariantViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvariantViolation::TwoLeaders { term, leaders } => write!(f, "term {term} had leaders {leaders:?}"),
            InvariantViolation::CommittedEntryChanged {
                index,
                first,
                now,
                node,
            } => write!(
                f,
                "committed entry {index} was (term {}, hash {:x}) but node {node} now holds (term {}, hash {:x})",
                first.0, first.1, now.0, now.1
            ),
            InvariantViolation::LogUnreadable { node, error } => {
                write!(f, "node {node}'s log could not be read: {error}")
            }
        }
    }
}

/// What the sampler has seen so far.
#[derive(Debug, Default)]
pub struct Sampler {
    leaders_by_term: BTreeMap<u64, BTreeSet<u64>>,
    /// Every committed entry read so far: index -> (term, hash) as first seen.
    committed: BTreeMap<u64, (u64, u64)>,
    /// Per running node, the committed index read up to since it last started.
    read_up_to: BTreeMap<u64, u64>,
    /// Readings of a committed entry that differed from the first one.
    changes: usize,
    pub violations: Vec<InvariantViolation>,
}

impl Sampler {
    /// Takes one sample of every running node: its role and term, and the
    /// entries it committed since the last sample.
    pub fn observe(&mut self, nodes: &BTreeMap<u64, Consensus>) -> Vec<ClusterView> {
        // A node that is down starts over when it comes back: what it reads
        // as committed after a restart is checked again.
        self.read_up_to.retain(|id, _| nodes.contains_key(id));
        let mut views = Vec::with_capacity(nodes.len());
        for (id, node) in nodes {
            let view = node.view();
            if view.role == Role::Leader {
                let leaders = self.leaders_by_term.entry(view.term).or_default();
                if leaders.insert(view.node_id) && leaders.len() == 2 {
                    self.violations.push(InvariantViolation::TwoLeaders {
                        term: view.term,
                        leaders: leaders.iter().copied().collect(),
                    });
                }
            }
            let read = self.read_up_to.get(id).copied().unwrap_or(0);
            if view.committed_index > read {
                self.check_log(node, read + 1, view.committed_index);
                self.read_up_to.insert(*id, view.committed_index);
            }
            views.push(view);
        }
        views
    }

    /// After the run: every node's whole retained committed log against
    /// what was first read.
    pub fn compare_logs(&mut self, nodes: &BTreeMap<u64, Consensus>) {
        for node in nodes.values() {
            let committed = node.view().committed_index;
            if committed > 0 {
                self.check_log(node, 1, committed);
            }
        }
    }

    /// Entries `from..=to` of `node` (all committed) against the ledger.
    fn check_log(&mut self, node: &Consensus, from: u64, to: u64) {
        match node.log_fingerprints().read(from..=to) {
            Ok(entries) => {
                for entry in entries {
                    self.record(node.node_id(), entry);
                }
            }
            Err(e) => self.violations.push(InvariantViolation::LogUnreadable {
                node: node.node_id(),
                error: e.to_string(),
            }),
        }
    }

    fn record(&mut self, node: u64, entry: EntryFingerprint) {
        let now = (entry.term, entry.hash);
        let first = *self.committed.entry(entry.index).or_insert(now);
        if first != now {
            self.changes += 1;
            if self.changes > MAX_CHANGES_LISTED {
                return;
            }
            self.violations.push(InvariantViolation::CommittedEntryChanged {
                index: entry.index,
                first,
                now,
                node,
            });
        }
    }

    /// Every violation in words, with changed entries past the first few counted.
    pub fn findings(&self) -> Vec<String> {
        let mut findings: Vec<String> = self.violations.iter().map(ToString::to_string).collect();
        if self.changes > MAX_CHANGES_LISTED {
            findings.push(format!(
                "… and {} more readings of committed entries that changed",
                self.changes - MAX_CHANGES_LISTED
            ));
        }
        findings
    }

    /// How many distinct committed entries were read.
    pub fn entries_checked(&self) -> usize {
        self.committed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, hash: u64) -> EntryFingerprint {
        EntryFingerprint { index, term, hash }
    }

    #[test]
    fn the_same_committed_entry_on_every_node_passes() {
        let mut sampler = Sampler::default();
        for node in [1, 2, 3] {
            sampler.record(node, entry(7, 2, 0xabc));
            sampler.record(node, entry(8, 3, 0xdef));
        }
        assert!(sampler.violations.is_empty(), "{:?}", sampler.violations);
        assert_eq!(sampler.entries_checked(), 2);
    }

    #[test]
    fn a_committed_entry_with_another_term_is_reported() {
        let mut sampler = Sampler::default();
        sampler.record(1, entry(7, 2, 0xabc));
        sampler.record(2, entry(7, 3, 0xabc));
        assert_eq!(
            sampler.violations,
            vec![InvariantViolation::CommittedEntryChanged {
                index: 7,
                first: (2, 0xabc),
                now: (3, 0xabc),
                node: 2
            }]
        );
    }

    #[test]
    fn a_committed_entry_with_other_bytes_in_the_same_term_is_reported() {
        let mut sampler = Sampler::default();
        sampler.record(1, entry(7, 2, 0xabc));
        sampler.record(1, entry(7, 2, 0xabd));
        assert_eq!(sampler.violations.len(), 1);
        assert!(sampler.violations[0].to_string().contains("committed entry 7"));
    }

    #[test]
    fn many_changed_entries_are_listed_up_to_a_limit_and_counted() {
        let mut sampler = Sampler::default();
        let changed = MAX_CHANGES_LISTED as u64 + 5;
        for index in 1..=changed {
            sampler.record(1, entry(index, 2, index));
            sampler.record(2, entry(index, 3, index));
        }
        let findings = sampler.findings();
        assert_eq!(findings.len(), MAX_CHANGES_LISTED + 1);
        assert!(findings[MAX_CHANGES_LISTED].contains("5 more"), "{findings:?}");
    }
}
