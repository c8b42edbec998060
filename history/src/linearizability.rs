//! Per-key linearizability: is there an order of each key's operations,
//! consistent with real time, that a register with versions (the crate's model)
//! accepts?
//!
//! Keys are independent (linearizability is compositional), so the history
//! is split by key and each key searched on its own with the Wing & Gong
//! algorithm as refined by Lowe: a depth-first search that repeatedly picks a
//! pending operation invoked before the earliest pending return, applies it to
//! the model, and backtracks when stuck, memoizing the configurations (set of
//! linearized operations, model state) already explored.
//!
//! What is dropped and what is optional: failed writes never took effect and
//! reads without an answer say nothing, so both are dropped. A write whose
//! outcome is unknown (timed out, or never completed) may take effect at any
//! point after its invocation, or never: it has no deadline and the search
//! succeeds once every other operation is linearized.
//!
//! Such optional writes, pending forever, would blow the search up; these
//! rules keep it small, each sound (it never turns a linearizable history
//! into a violation) and checked against plain enumeration in the tests:
//! - operations with a deadline are tried before optional ones;
//! - an optional write is never directly followed by a write that ignores the
//!   state (a plain put, a delete of unknown outcome): dropping the optional
//!   write from such a linearization gives another valid one;
//! - values no read returns are all one value to the model, and optional
//!   writes with identical effects are used in invocation order only;
//! - the version floor only grows, so a configuration whose floor already
//!   passed what a pending definite operation needs (its own version, or the
//!   version it read) is dead;
//! - a configuration is skipped when one already explored had the same
//!   linearized definite operations and register content, a version floor no
//!   higher, and no more optional writes used (it can do everything this one
//!   can).
//!
//! The search is bounded by [`Limits::max_states_per_key`]; past it the key's
//! verdict is [`Verdict::Unknown`] rather than a hang. A violation reports
//! the longest linearizable prefix found and the operations none of which
//! could come next.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::bitset::BitSet;
use crate::display::Bytes;
use crate::history::{History, Operation};
use crate::model::{self, Action, Current, State, ValueId};
use crate::op::{Op, OpId, Outcome};

/// Default bound on configurations explored for one key before giving up with [`Verdict::Unknown`].
///
/// Each explored configuration keeps about (operations on the key) / 8 bytes
/// plus a few dozen bytes of overhead, so the default stays within a few
/// hundred megabytes for keys with thousands of operations.
pub const MAX_STATES_PER_KEY: usize = 250_000;

/// Operations of the longest linearizable prefix a violation report shows (the last ones).
pub const MAX_PREFIX_SHOWN: usize = 10;

/// Operations a violation report shows among those that could not be linearized next.
pub const MAX_STUCK_SHOWN: usize = 10;

/// Bounds on the linearizability search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Configurations explored per key before the key's verdict becomes [`Verdict::Unknown`].
    pub max_states_per_key: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_states_per_key: MAX_STATES_PER_KEY,
        }
    }
}

/// The register's content at some point of a linearization, for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterState {
    /// No record.
    Absent,
    /// A record; `version` is `None` when it was written by an operation of unknown outcome and never pinned.
    Present {
        /// The value.
        value: Vec<u8>,
        /// The version, if known.
        version: Option<u64>,
    },
}

impl fmt::Display for RegisterState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterState::Absent => write!(f, "absent"),
            RegisterState::Present {
                value,
                version: Some(version),
            } => write!(f, "{}@v{version}", Bytes(value)),
            RegisterState::Present { value, version: None } => write!(f, "{}@v?", Bytes(value)),
        }
    }
}

/// Why one key's history is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The key.
    pub key: String,
    /// The longest linearizable prefix the search found, in linearization order.
    pub prefix: Vec<OpId>,
    /// The last operations of `prefix` (at most [`MAX_PREFIX_SHOWN`]), in full.
    pub prefix_tail: Vec<Operation>,
    /// The register's content after `prefix`.
    pub state_after_prefix: RegisterState,
    /// The operation that returned before any candidate could be linearized after `prefix`.
    pub deadline: OpId,
    /// Operations that could have come next after `prefix` and did not fit, `deadline` first,
    /// then `blocked_by` if set (at most [`MAX_STUCK_SHOWN`]).
    pub stuck: Vec<Operation>,
    /// An operation still to come whose version ruled out a candidate (a write or read of an older version).
    pub blocked_by: Option<OpId>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "key {:?} is not linearizable", self.key)?;
        let hidden = self.prefix.len() - self.prefix_tail.len();
        let plural = if self.prefix.len() == 1 { "" } else { "s" };
        write!(
            f,
            "    longest linearizable prefix: {} operation{plural}",
            self.prefix.len()
        )?;
        if hidden > 0 {
            write!(f, " (first {hidden} not shown)")?;
        }
        writeln!(f)?;
        for operation in &self.prefix_tail {
            writeln!(f, "      {operation}")?;
        }
        writeln!(f, "    state after it: {}", self.state_after_prefix)?;
        writeln!(
            f,
            "    none of these fits next, and {} must be linearized before it returns:",
            self.deadline
        )?;
        for operation in &self.stuck {
            writeln!(f, "      {operation}")?;
        }
        if let Some(blocker) = self.blocked_by {
            writeln!(
                f,
                "    ({blocker} is still to come and names a version older than a candidate would leave)"
            )?;
        }
        Ok(())
    }
}

/// The result of checking one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// An order consistent with real time and the model exists.
    Linearizable,
    /// No such order exists.
    Violation(Box<Violation>),
    /// The search hit [`Limits::max_states_per_key`] before deciding.
    Unknown,
}

impl Verdict {
    /// True for [`Verdict::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }
}

/// The verdict on one key with the size of its check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyResult {
    /// The key.
    pub key: String,
    /// Operations checked (failed writes and unanswered reads are dropped).
    pub operations: usize,
    /// Configurations the search explored.
    pub states_explored: usize,
    /// The verdict.
    pub verdict: Verdict,
}

/// Per-key linearizability verdicts of a history, keys in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinearizabilityReport {
    /// One result per key of the history.
    pub keys: Vec<KeyResult>,
}

impl LinearizabilityReport {
    /// The violations found.
    pub fn violations(&self) -> impl Iterator<Item = &Violation> {
        self.keys.iter().filter_map(|result| match &result.verdict {
            Verdict::Violation(violation) => Some(violation.as_ref()),
            _ => None,
        })
    }

    /// Keys whose search hit the state bound.
    pub fn inconclusive(&self) -> impl Iterator<Item = &KeyResult> {
        self.keys.iter().filter(|result| result.verdict == Verdict::Unknown)
    }

    /// Keys found linearizable.
    pub fn linearizable_keys(&self) -> usize {
        self.keys
            .iter()
            .filter(|result| result.verdict == Verdict::Linearizable)
            .count()
    }

    /// True when every key was found linearizable (no violation, no inconclusive key).
    pub fn is_ok(&self) -> bool {
        self.linearizable_keys() == self.keys.len()
    }
}

/// Checks every key of `history` for linearizability.
pub fn check_linearizability(history: &History, limits: &Limits) -> LinearizabilityReport {
    let keys = history
        .by_key()
        .into_iter()
        .map(|(key, operations)| check_key(key, &operations, limits))
        .collect();
    LinearizabilityReport { keys }
}

/// Checks one key's operations (all on `key`) for linearizability.
fn check_key(key: &str, operations: &[&Operation], limits: &Limits) -> KeyResult {
    let prepared = Prepared::new(operations);
    let mut search = Search::new(&prepared, limits.max_states_per_key);
    let verdict = match search.run() {
        SearchEnd::Linearizable => Verdict::Linearizable,
        SearchEnd::OutOfStates => Verdict::Unknown,
        SearchEnd::Violation => Verdict::Violation(Box::new(search.violation(key))),
    };
    KeyResult {
        key: key.to_owned(),
        operations: prepared.ops.len(),
        states_explored: search.states,
        verdict,
    }
}

/// Sort key of an event: time, then calls before returns (ties count as concurrent), then op id.
type EventKey = (u64, u8, OpId);

/// One operation as the search sees it.
struct KeyOp<'h> {
    source: &'h Operation,
    action: Action,
    /// True for writes of unknown outcome: no deadline, may be left out.
    optional: bool,
    /// Index in the bitset of its kind (definite or optional).
    slot: usize,
}

/// A key's operations translated for the search.
///
/// Values are interned, except that every value no read returns becomes the
/// single [`UNREAD`]: nothing can tell such values apart, and merging them
/// lets configurations that differ only in which unread value is current
/// share one memo entry. Optional ops with identical actions form a class
/// whose members are interchangeable (see [`Search::is_next_of_class`]).
struct Prepared<'h> {
    ops: Vec<KeyOp<'h>>,
    definite: usize,
    optional: usize,
    /// Per optional op: its class; `usize::MAX` for definite ops.
    class_of: Vec<usize>,
    /// Per class: its members in invocation order.
    class_members: Vec<Vec<usize>>,
}

/// The value id shared by every value no read returns.
const UNREAD: ValueId = ValueId::MAX;

impl<'h> Prepared<'h> {
    fn new(operations: &[&'h Operation]) -> Self {
        let mut read_values: HashMap<&'h [u8], ValueId> = HashMap::new();
        for operation in operations {
            if let Outcome::Read { record: Some(record) } = &operation.outcome {
                let next_id = read_values.len() as ValueId;
                read_values.entry(&record.value).or_insert(next_id);
            }
        }
        let mut intern = |value: &'h [u8]| read_values.get(value).copied().unwrap_or(UNREAD);
        let mut ops = Vec::with_capacity(operations.len());
        let (mut definite, mut optional) = (0, 0);
        for &source in operations {
            let Some((action, is_optional)) = translate(source, &mut intern) else {
                continue;
            };
            let counter = if is_optional { &mut optional } else { &mut definite };
            ops.push(KeyOp {
                source,
                action,
                optional: is_optional,
                slot: *counter,
            });
            *counter += 1;
        }

        let mut by_invocation: Vec<usize> = (0..ops.len()).filter(|&index| ops[index].optional).collect();
        by_invocation.sort_by_key(|&index| (ops[index].source.invoke_ns, ops[index].source.id));
        let mut classes: HashMap<&Action, usize> = HashMap::new();
        let mut class_of = vec![usize::MAX; ops.len()];
        let mut class_members: Vec<Vec<usize>> = Vec::new();
        for index in by_invocation {
            let next_class = classes.len();
            let class = *classes.entry(&ops[index].action).or_insert(next_class);
            if class == class_members.len() {
                class_members.push(Vec::new());
            }
            class_members[class].push(index);
            class_of[index] = class;
        }
        Self {
            ops,
            definite,
            optional,
            class_of,
            class_members,
        }
    }

    /// The register's content after `prefix` ends in `state`, with the real value of the last write.
    fn register_state(&self, prefix: &[usize], state: State) -> RegisterState {
        let Some((_, version)) = state.current else {
            return RegisterState::Absent;
        };
        let last_write = prefix.iter().rev().find_map(|&op| match &self.ops[op].source.op {
            Op::Put { value, .. } | Op::PutIf { value, .. } => Some(value),
            Op::Delete { .. } | Op::Get { .. } => None,
        });
        RegisterState::Present {
            value: last_write.cloned().unwrap_or_default(),
            version,
        }
    }
}

/// The model action of an operation and whether it is optional; `None` for operations that say nothing.
fn translate<'h>(operation: &'h Operation, intern: &mut impl FnMut(&'h [u8]) -> ValueId) -> Option<(Action, bool)> {
    let unknown = !operation.outcome.is_definite();
    let action = match (&operation.op, &operation.outcome) {
        (_, Outcome::Fail) | (Op::Get { .. }, Outcome::Unknown) => return None,
        (Op::Put { value, .. }, Outcome::Written { version }) => Action::Write {
            value: intern(value),
            expected_version: None,
            version: Some(*version),
        },
        (Op::Put { value, .. }, Outcome::Unknown) => Action::Write {
            value: intern(value),
            expected_version: None,
            version: None,
        },
        (
            Op::PutIf {
                value,
                expected_version,
                ..
            },
            Outcome::Written { version },
        ) => Action::Write {
            value: intern(value),
            expected_version: Some(*expected_version),
            version: Some(*version),
        },
        (
            Op::PutIf {
                value,
                expected_version,
                ..
            },
            Outcome::Unknown,
        ) => Action::Write {
            value: intern(value),
            expected_version: Some(*expected_version),
            version: None,
        },
        (Op::PutIf { expected_version, .. }, Outcome::Conflict { current_version }) => Action::Conflict {
            expected_version: *expected_version,
            current_version: *current_version,
        },
        (Op::Delete { .. }, Outcome::Deleted { deleted, version }) => Action::Delete {
            result: Some((*deleted, *version)),
        },
        (Op::Delete { .. }, Outcome::Unknown) => Action::Delete { result: None },
        (Op::Get { .. }, Outcome::Read { record }) => Action::Read {
            observed: record.as_ref().map(|record| (intern(&record.value), record.version)),
        },
        // A validated history holds no other pairs; one that slipped through says nothing.
        _ => return None,
    };
    Some((action, unknown))
}

/// A doubly linked list of events with removal and exact restoration (dancing links).
///
/// Node 0 is the head, node `len + 1` the tail; events are nodes `1..=len` in sorted order.
struct EventList {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// (op index, is a return, sort key) per node; unused for head and tail.
    events: Vec<(usize, bool, EventKey)>,
}

impl EventList {
    const HEAD: usize = 0;

    fn new(mut events: Vec<(usize, bool, EventKey)>) -> Self {
        events.sort_by_key(|&(_, _, key)| key);
        let len = events.len();
        let mut nodes = Vec::with_capacity(len + 2);
        nodes.push((usize::MAX, false, (0, 0, OpId(0))));
        nodes.extend(events);
        nodes.push((usize::MAX, false, (u64::MAX, u8::MAX, OpId(u64::MAX))));
        Self {
            next: (1..=len + 2).collect(),
            prev: (0..len + 2).map(|node| node.saturating_sub(1)).collect(),
            events: nodes,
        }
    }

    fn tail(&self) -> usize {
        self.events.len() - 1
    }

    /// Unlinks `node`; nodes must be restored in the reverse order of their removal.
    fn remove(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        self.prev[next] = prev;
    }

    /// Relinks `node` where it was removed.
    fn restore(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        self.prev[next] = node;
    }
}

/// Where a frame of the search is in enumerating its candidates.
#[derive(Debug, Clone, Copy)]
enum Cursor {
    /// Walking definite calls; `node` is the next to look at.
    Definite(usize),
    /// Walking optional calls invoked before `bound`, the first pending return (of op `deadline`).
    Optional {
        node: usize,
        bound: EventKey,
        deadline: usize,
    },
    /// No candidate left; `deadline` is the op whose return bounded the candidates.
    Exhausted { deadline: usize },
}

/// One configuration on the search path.
struct Frame {
    /// The op linearized to reach this configuration (`None` for the root).
    entered_by: Option<usize>,
    /// The state before it.
    state_before: SearchState,
    cursor: Cursor,
    /// A pending op whose version ruled out one of this frame's candidates, for the report.
    blocked_by: Option<usize>,
}

/// The model state plus whether the last linearized op was optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SearchState {
    model: State,
    after_optional: bool,
}

/// The explored (floor, optional ops used) pairs of one (definite ops, content, after optional),
/// none covering another.
type Frontier = Vec<(u64, BitSet)>;

/// Explored configurations, keyed by (definite ops linearized), then (content, after optional).
#[derive(Default)]
struct Explored {
    configs: HashMap<BitSet, HashMap<(Current, bool), Frontier>>,
}

impl Explored {
    /// Records the configuration; false when an explored one already covers it.
    fn insert(&mut self, definite: &BitSet, optional: &BitSet, state: SearchState) -> bool {
        let by_content = match self.configs.get_mut(definite) {
            Some(by_content) => by_content,
            None => self.configs.entry(definite.clone()).or_default(),
        };
        let frontier = by_content
            .entry((state.model.current, state.after_optional))
            .or_default();
        let floor = state.model.floor;
        if frontier
            .iter()
            .any(|(seen_floor, seen_optional)| *seen_floor <= floor && seen_optional.is_subset(optional))
        {
            return false;
        }
        frontier.retain(|(seen_floor, seen_optional)| !(floor <= *seen_floor && optional.is_subset(seen_optional)));
        frontier.push((floor, optional.clone()));
        true
    }
}

/// How a search ended.
enum SearchEnd {
    Linearizable,
    Violation,
    OutOfStates,
}

/// The deepest point where the search got stuck, for the violation report.
struct Stuck {
    prefix: Vec<usize>,
    state: State,
    deadline: usize,
    candidates: Vec<usize>,
    blocked_by: Option<usize>,
}

/// The WGL search over one key.
struct Search<'p, 'h> {
    prepared: &'p Prepared<'h>,
    max_states: usize,
    definite_calls: EventList,
    optional_calls: EventList,
    /// Per op: its call node (and return node for definite ops) in its list.
    call_node: Vec<usize>,
    return_node: Vec<usize>,
    definite_done: BitSet,
    optional_done: BitSet,
    definite_linearized: usize,
    /// (floor bound, op) of definite ops not yet linearized that have a bound.
    pending_bounds: BTreeSet<(u64, usize)>,
    /// Per class of optional ops: how many of its members are linearized (always its first ones).
    class_used: Vec<usize>,
    path: Vec<usize>,
    explored: Explored,
    states: usize,
    deepest: Option<Stuck>,
}

impl<'p, 'h> Search<'p, 'h> {
    fn new(prepared: &'p Prepared<'h>, max_states: usize) -> Self {
        let mut definite_events = Vec::with_capacity(2 * prepared.definite);
        let mut optional_events = Vec::with_capacity(prepared.optional);
        for (index, op) in prepared.ops.iter().enumerate() {
            let id = op.source.id;
            let call = (index, false, (op.source.invoke_ns, 0, id));
            if op.optional {
                optional_events.push(call);
            } else {
                // Definite outcomes always carry a return time (validated).
                let return_ns = op.source.return_ns.unwrap_or(u64::MAX);
                definite_events.push(call);
                definite_events.push((index, true, (return_ns, 1, id)));
            }
        }
        let definite_calls = EventList::new(definite_events);
        let optional_calls = EventList::new(optional_events);
        let mut call_node = vec![0; prepared.ops.len()];
        let mut return_node = vec![0; prepared.ops.len()];
        for (node, &(op, is_return, _)) in definite_calls.events.iter().enumerate() {
            if op == usize::MAX {
                continue;
            }
            if is_return {
                return_node[op] = node;
            } else {
                call_node[op] = node;
            }
        }
        for (node, &(op, _, _)) in optional_calls.events.iter().enumerate() {
            if op != usize::MAX {
                call_node[op] = node;
            }
        }
        Self {
            prepared,
            max_states,
            definite_calls,
            optional_calls,
            call_node,
            return_node,
            definite_done: BitSet::new(prepared.definite),
            optional_done: BitSet::new(prepared.optional),
            definite_linearized: 0,
            path: Vec::new(),
            explored: Explored::default(),
            states: 0,
            deepest: None,
            pending_bounds: prepared
                .ops
                .iter()
                .enumerate()
                .filter(|(_, op)| !op.optional)
                .filter_map(|(index, op)| Some((op.action.floor_bound()?, index)))
                .collect(),
            class_used: vec![0; prepared.class_members.len()],
        }
    }

    fn run(&mut self) -> SearchEnd {
        let prepared = self.prepared;
        if prepared.definite == 0 {
            return SearchEnd::Linearizable;
        }
        let mut state = SearchState {
            model: State::INITIAL,
            after_optional: false,
        };
        let mut frames = vec![Frame {
            entered_by: None,
            state_before: state,
            cursor: Cursor::Definite(self.definite_calls.next[EventList::HEAD]),
            blocked_by: None,
        }];
        while let Some(frame) = frames.last_mut() {
            let Some(op) = self.next_candidate(&mut frame.cursor) else {
                let Cursor::Exhausted { deadline } = frame.cursor else {
                    unreachable!("a frame without candidates is exhausted");
                };
                let blocked_by = frame.blocked_by;
                self.note_stuck(state.model, deadline, blocked_by);
                let Some(frame) = frames.pop() else { break };
                if let Some(op) = frame.entered_by {
                    self.unlinearize(op);
                    state = frame.state_before;
                }
                continue;
            };
            let key_op = &prepared.ops[op];
            if state.after_optional && key_op.action.overwrites_unconditionally() {
                continue;
            }
            if key_op.optional && !self.is_next_of_class(op) {
                continue;
            }
            let Some(model) = model::step(state.model, &key_op.action) else {
                continue;
            };
            if let Some((bound, holder)) = self.floor_bound_without(op)
                && model.floor > bound
            {
                frame.blocked_by.get_or_insert(holder);
                continue;
            }
            let next = SearchState {
                model,
                after_optional: key_op.optional,
            };
            self.mark(op, true);
            if !self.explored.insert(&self.definite_done, &self.optional_done, next) {
                self.mark(op, false);
                continue;
            }
            self.states += 1;
            if self.states > self.max_states {
                return SearchEnd::OutOfStates;
            }
            self.linearize(op);
            if self.definite_linearized == prepared.definite {
                return SearchEnd::Linearizable;
            }
            frames.push(Frame {
                entered_by: Some(op),
                state_before: state,
                cursor: Cursor::Definite(self.definite_calls.next[EventList::HEAD]),
                blocked_by: None,
            });
            state = next;
        }
        SearchEnd::Violation
    }

    /// The next op to try from this frame, advancing its cursor; `None` once exhausted.
    fn next_candidate(&self, cursor: &mut Cursor) -> Option<usize> {
        loop {
            match *cursor {
                Cursor::Definite(node) => {
                    // Unfinished definite ops remain (else the search has succeeded), so a
                    // pending return comes before the tail.
                    debug_assert_ne!(node, self.definite_calls.tail());
                    let (op, is_return, key) = self.definite_calls.events[node];
                    if is_return {
                        *cursor = Cursor::Optional {
                            node: self.optional_calls.next[EventList::HEAD],
                            bound: key,
                            deadline: op,
                        };
                        continue;
                    }
                    *cursor = Cursor::Definite(self.definite_calls.next[node]);
                    return Some(op);
                }
                Cursor::Optional { node, bound, deadline } => {
                    let (op, _, key) = self.optional_calls.events[node];
                    if node == self.optional_calls.tail() || key >= bound {
                        *cursor = Cursor::Exhausted { deadline };
                        return None;
                    }
                    *cursor = Cursor::Optional {
                        node: self.optional_calls.next[node],
                        bound,
                        deadline,
                    };
                    return Some(op);
                }
                Cursor::Exhausted { .. } => return None,
            }
        }
    }

    /// True when optional `op` is the first member of its class not yet linearized.
    ///
    /// Members of a class have identical actions, so in any linearization the
    /// ones used can be swapped for the earliest invoked (each is available
    /// wherever a later one is); trying only the next one loses nothing.
    fn is_next_of_class(&self, op: usize) -> bool {
        let class = self.prepared.class_of[op];
        self.prepared.class_members[class].get(self.class_used[class]) == Some(&op)
    }

    /// The lowest floor bound among pending definite ops other than `op`, with the op holding it.
    fn floor_bound_without(&self, op: usize) -> Option<(u64, usize)> {
        self.pending_bounds
            .iter()
            .take(2)
            .find(|&&(_, pending)| pending != op)
            .copied()
    }

    /// Adds or removes `op` in the set of linearized ops.
    fn mark(&mut self, op: usize, linearized: bool) {
        let key_op = &self.prepared.ops[op];
        let set = if key_op.optional {
            &mut self.optional_done
        } else {
            &mut self.definite_done
        };
        if linearized {
            set.insert(key_op.slot);
        } else {
            set.remove(key_op.slot);
        }
    }

    /// Takes an already marked `op` out of the pending lists and onto the path.
    fn linearize(&mut self, op: usize) {
        if self.prepared.ops[op].optional {
            self.optional_calls.remove(self.call_node[op]);
            self.class_used[self.prepared.class_of[op]] += 1;
        } else {
            self.definite_calls.remove(self.call_node[op]);
            self.definite_calls.remove(self.return_node[op]);
            self.definite_linearized += 1;
            if let Some(bound) = self.prepared.ops[op].action.floor_bound() {
                self.pending_bounds.remove(&(bound, op));
            }
        }
        self.path.push(op);
    }

    /// Undoes [`Search::linearize`] and the mark for the last op on the path.
    fn unlinearize(&mut self, op: usize) {
        debug_assert_eq!(self.path.last(), Some(&op));
        self.path.pop();
        if self.prepared.ops[op].optional {
            self.optional_calls.restore(self.call_node[op]);
            self.class_used[self.prepared.class_of[op]] -= 1;
        } else {
            self.definite_calls.restore(self.return_node[op]);
            self.definite_calls.restore(self.call_node[op]);
            self.definite_linearized -= 1;
            if let Some(bound) = self.prepared.ops[op].action.floor_bound() {
                self.pending_bounds.insert((bound, op));
            }
        }
        self.mark(op, false);
    }

    /// Remembers the current configuration if it is the deepest dead end so far.
    fn note_stuck(&mut self, state: State, deadline: usize, blocked_by: Option<usize>) {
        if self
            .deepest
            .as_ref()
            .is_some_and(|deepest| deepest.prefix.len() >= self.path.len())
        {
            return;
        }
        let mut candidates = vec![deadline];
        let mut node = self.definite_calls.next[EventList::HEAD];
        while node != self.definite_calls.tail() && candidates.len() < MAX_STUCK_SHOWN - 1 {
            let (op, is_return, _) = self.definite_calls.events[node];
            if is_return {
                break;
            }
            if op != deadline {
                candidates.push(op);
            }
            node = self.definite_calls.next[node];
        }
        if let Some(blocker) = blocked_by
            && !candidates.contains(&blocker)
        {
            candidates.push(blocker);
        }
        self.deepest = Some(Stuck {
            prefix: self.path.clone(),
            state,
            deadline,
            candidates,
            blocked_by,
        });
    }

    /// The report of a search that ended in [`SearchEnd::Violation`].
    fn violation(&self, key: &str) -> Violation {
        let ops = &self.prepared.ops;
        let Some(stuck) = &self.deepest else {
            unreachable!("a search only fails after getting stuck");
        };
        let tail_start = stuck.prefix.len().saturating_sub(MAX_PREFIX_SHOWN);
        Violation {
            key: key.to_owned(),
            prefix: stuck.prefix.iter().map(|&op| ops[op].source.id).collect(),
            prefix_tail: stuck.prefix[tail_start..]
                .iter()
                .map(|&op| ops[op].source.clone())
                .collect(),
            state_after_prefix: self.prepared.register_state(&stuck.prefix, stuck.state),
            deadline: ops[stuck.deadline].source.id,
            stuck: stuck.candidates.iter().map(|&op| ops[op].source.clone()).collect(),
            blocked_by: stuck.blocked_by.map(|op| ops[op].source.id),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The search's pruning rules are checked against a plain enumeration of
    //! every ordering on many small random histories.

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::op::{ClientId, Versioned};

    /// Histories compared against the enumeration.
    const CASES: usize = 10_000;
    /// Most operations in one small history (the enumeration is factorial).
    const MAX_OPS: usize = 9;

    /// True when some ordering of all definite ops and any subset of optional ones
    /// respects real time and the model; no pruning at all.
    fn enumerate(prepared: &Prepared<'_>) -> bool {
        fn extend(prepared: &Prepared<'_>, placed: &mut Vec<bool>, state: State) -> bool {
            let ops = &prepared.ops;
            if (0..ops.len()).all(|i| placed[i] || ops[i].optional) {
                return true;
            }
            for next in 0..ops.len() {
                if placed[next] {
                    continue;
                }
                // Every definite op that returned before `next` was invoked must already be placed.
                let blocked = (0..ops.len()).any(|before| {
                    !placed[before]
                        && !ops[before].optional
                        && ops[before]
                            .source
                            .return_ns
                            .is_some_and(|at| at < ops[next].source.invoke_ns)
                });
                if blocked {
                    continue;
                }
                let Some(after) = model::step(state, &ops[next].action) else {
                    continue;
                };
                placed[next] = true;
                let found = extend(prepared, placed, after);
                placed[next] = false;
                if found {
                    return true;
                }
            }
            false
        }
        extend(prepared, &mut vec![false; prepared.ops.len()], State::INITIAL)
    }

    /// A small history of one key from a sequential register, then perhaps one answer altered.
    fn small_history(rng: &mut StdRng) -> Vec<Operation> {
        let len = rng.random_range(1..=MAX_OPS);
        let mut ops: Vec<(Operation, u64)> = Vec::new();
        for index in 0..len {
            let invoke_ns = rng.random_range(0..20);
            let return_ns = invoke_ns + rng.random_range(0..12);
            let effect_ns = rng.random_range(invoke_ns..=return_ns + 10);
            let key = "k".to_owned();
            let value = format!("v{index}").into_bytes();
            let op = match rng.random_range(0..10) {
                0..3 => Op::Put { key, value },
                3..5 => Op::PutIf {
                    key,
                    value,
                    expected_version: 0,
                },
                5..6 => Op::Delete { key },
                _ => Op::Get { key },
            };
            let operation = Operation {
                id: OpId(index as u64),
                client: ClientId(index as u64),
                op,
                invoke_ns,
                return_ns: Some(return_ns),
                outcome: Outcome::Unknown,
            };
            ops.push((operation, effect_ns));
        }
        let mut order: Vec<usize> = (0..ops.len()).collect();
        order.sort_by_key(|&i| ops[i].1);
        let mut register: Option<Versioned> = None;
        let mut version = 0;
        for i in order {
            let fate = rng.random_range(0..10);
            let applies = fate < 8 || fate == 9 && rng.random_bool(0.5);
            let current = register.as_ref().map_or(0, |r| r.version);
            let operation = &mut ops[i].0;
            let answer = match &mut operation.op {
                Op::Put { value, .. } if applies => {
                    version += rng.random_range(1..3);
                    register = Some(Versioned {
                        value: value.clone(),
                        version,
                    });
                    Outcome::Written { version }
                }
                Op::PutIf {
                    value,
                    expected_version,
                    ..
                } => {
                    *expected_version = if rng.random_bool(0.7) { current } else { current + 1 };
                    if *expected_version != current {
                        Outcome::Conflict {
                            current_version: current,
                        }
                    } else if applies {
                        version += rng.random_range(1..3);
                        register = Some(Versioned {
                            value: value.clone(),
                            version,
                        });
                        Outcome::Written { version }
                    } else {
                        Outcome::Fail
                    }
                }
                Op::Delete { .. } if applies => {
                    version += 1;
                    Outcome::Deleted {
                        deleted: register.take().is_some(),
                        version,
                    }
                }
                Op::Get { .. } => Outcome::Read {
                    record: register.clone(),
                },
                _ => Outcome::Fail,
            };
            operation.outcome = match fate {
                0..8 => answer,
                8 => Outcome::Fail,
                _ => Outcome::Unknown,
            };
            if operation.outcome == Outcome::Unknown && rng.random_bool(0.5) {
                operation.return_ns = None;
            }
            if operation.outcome == Outcome::Fail && !operation.op.is_write() {
                operation.outcome = Outcome::Unknown;
            }
        }
        let mut operations: Vec<Operation> = ops.into_iter().map(|(operation, _)| operation).collect();
        if rng.random_bool(0.5) {
            let victim = rng.random_range(0..operations.len());
            let nudge = |version: &mut u64, rng: &mut StdRng| {
                *version = if rng.random_bool(0.5) {
                    *version + 1
                } else {
                    version.saturating_sub(1)
                }
            };
            match &mut operations[victim].outcome {
                Outcome::Written { version }
                | Outcome::Conflict {
                    current_version: version,
                } => nudge(version, rng),
                Outcome::Deleted { deleted, .. } => *deleted = !*deleted,
                Outcome::Read { record: Some(record) } => nudge(&mut record.version, rng),
                Outcome::Read { record } => {
                    *record = Some(Versioned {
                        value: b"v0".to_vec(),
                        version: 1,
                    })
                }
                Outcome::Fail | Outcome::Unknown => {}
            }
        }
        operations
    }

    #[test]
    fn search_agrees_with_plain_enumeration_on_small_histories() {
        let mut rng = StdRng::seed_from_u64(0x11ea_5eed);
        let (mut linearizable, mut violations) = (0, 0);
        for case in 0..CASES {
            let operations = small_history(&mut rng);
            let refs: Vec<&Operation> = operations.iter().collect();
            let expected = enumerate(&Prepared::new(&refs));
            let result = check_key("k", &refs, &Limits::default());
            let found = match result.verdict {
                Verdict::Linearizable => true,
                Verdict::Violation(_) => false,
                Verdict::Unknown => panic!("case {case}: a small history hit the state bound"),
            };
            assert_eq!(found, expected, "case {case}: {operations:#?}");
            if expected {
                linearizable += 1;
            } else {
                violations += 1;
            }
        }
        // Both answers are well represented, so agreement means something.
        assert!(
            linearizable > CASES / 5 && violations > CASES / 5,
            "{linearizable} / {violations}"
        );
    }
}
