//! Invariants the harness samples from every running node after each
//! simulation step: at most one leader per term, and a committed log index
//! never changes its term (committed entries never change).

use std::collections::{BTreeMap, BTreeSet};

use safekeep_node::raft::{ClusterView, Role};

/// A broken invariant, with what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvariantViolation {
    TwoLeaders { term: u64, leaders: Vec<u64> },
    CommittedEntryChanged { index: u64, terms: (u64, u64), node: u64 },
}

impl std::fmt::Display for InvariantViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvariantViolation::TwoLeaders { term, leaders } => write!(f, "term {term} had leaders {leaders:?}"),
            InvariantViolation::CommittedEntryChanged { index, terms, node } => write!(
                f,
                "committed index {index} was term {} but node {node} now reports term {}",
                terms.0, terms.1
            ),
        }
    }
}

/// What the sampler has seen so far.
#[derive(Debug, Default)]
pub struct Sampler {
    leaders_by_term: BTreeMap<u64, BTreeSet<u64>>,
    committed_terms: BTreeMap<u64, u64>,
    pub violations: Vec<InvariantViolation>,
}

impl Sampler {
    /// Takes one sample of every running node.
    pub fn observe(&mut self, views: &[ClusterView]) {
        for view in views {
            if view.role == Role::Leader {
                let leaders = self.leaders_by_term.entry(view.term).or_default();
                if leaders.insert(view.node_id) && leaders.len() == 2 {
                    self.violations.push(InvariantViolation::TwoLeaders {
                        term: view.term,
                        leaders: leaders.iter().copied().collect(),
                    });
                }
            }
            if view.committed_index > 0 {
                let seen = *self
                    .committed_terms
                    .entry(view.committed_index)
                    .or_insert(view.committed_term);
                if seen != view.committed_term {
                    self.violations.push(InvariantViolation::CommittedEntryChanged {
                        index: view.committed_index,
                        terms: (seen, view.committed_term),
                        node: view.node_id,
                    });
                }
            }
        }
    }
}
