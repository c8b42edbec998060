//! A crate's layers, bottom first, and the check of its references against
//! them. A unit is a folder (`"storage/"`) or a file (`"config.rs"`); units
//! of one rank are siblings and may not import one another; a unit may
//! import only from itself and from lower ranks. Independently of the
//! layers, no files may import one another in a cycle.

use std::collections::BTreeMap;
use std::fmt;

use crate::refs::{Edge, edges};
use crate::tree::ModuleTree;

/// The ranks of one crate, lowest first; each rank holds one or more units.
pub struct Layers {
    ranks: Vec<Vec<&'static str>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A file that no unit of the layers covers: every file needs a place.
    Unplaced { file: String },
    /// A reference from a lower rank to a higher one.
    Upward { from: String, to: String, path: String },
    /// A reference between two sibling units of one rank.
    Sideways { from: String, to: String, path: String },
    /// Files that import one another in a cycle.
    Cycle { files: Vec<String> },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Unplaced { file } => write!(f, "{file} belongs to no layer: name it in the layers"),
            Violation::Upward { from, to, path } => {
                write!(f, "{from} imports `{path}` from {to}, a layer above it")
            }
            Violation::Sideways { from, to, path } => {
                write!(f, "{from} imports `{path}` from {to}, a sibling of the same layer")
            }
            Violation::Cycle { files } => write!(f, "these files import one another in a cycle: {}", files.join(", ")),
        }
    }
}

impl Layers {
    /// `ranks` lists the units of each rank, the lowest rank first.
    pub fn new(ranks: &[&[&'static str]]) -> Self {
        let ranks: Vec<Vec<&'static str>> = ranks.iter().map(|r| r.to_vec()).collect();
        let mut seen = std::collections::BTreeSet::new();
        for unit in ranks.iter().flatten() {
            assert!(seen.insert(*unit), "unit {unit} is named twice in the layers");
            assert!(
                unit.ends_with('/') || unit.ends_with(".rs"),
                "unit {unit} is neither a folder (ending in /) nor a file"
            );
        }
        Layers { ranks }
    }

    /// The rank and unit of a file, the most specific unit winning.
    fn place(&self, file: &str) -> Option<(usize, &'static str)> {
        self.ranks
            .iter()
            .enumerate()
            .flat_map(|(rank, units)| units.iter().map(move |u| (rank, *u)))
            .filter(|(_, unit)| {
                if unit.ends_with('/') {
                    file.starts_with(unit)
                } else {
                    file == *unit
                }
            })
            .max_by_key(|(_, unit)| unit.len())
    }
}

/// Every way the tree breaks its layers or imports in a cycle.
pub fn check(tree: &ModuleTree, layers: &Layers) -> Vec<Violation> {
    let mut violations = Vec::new();
    let name = |i: usize| tree.files[i].name.clone();
    for file in &tree.files {
        if layers.place(&file.name).is_none() {
            violations.push(Violation::Unplaced {
                file: file.name.clone(),
            });
        }
    }
    let all = edges(tree);
    for edge in &all {
        let (Some((from_rank, from_unit)), Some((to_rank, to_unit))) =
            (layers.place(&name(edge.from)), layers.place(&name(edge.to)))
        else {
            continue;
        };
        if from_unit == to_unit || to_rank < from_rank {
            continue;
        }
        let (from, to, path) = (name(edge.from), name(edge.to), edge.path.clone());
        violations.push(if to_rank == from_rank {
            Violation::Sideways { from, to, path }
        } else {
            Violation::Upward { from, to, path }
        });
    }
    for cycle in cycles(tree.files.len(), &all) {
        violations.push(Violation::Cycle {
            files: cycle.into_iter().map(name).collect(),
        });
    }
    violations
}

/// The strongly connected components of more than one file (Tarjan's
/// algorithm, iterative so deep trees cannot overflow the stack).
fn cycles(count: usize, edges: &[Edge]) -> Vec<Vec<usize>> {
    let mut next: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for e in edges {
        next.entry(e.from).or_default().push(e.to);
    }
    let mut index = vec![usize::MAX; count];
    let mut low = vec![0; count];
    let mut on_stack = vec![false; count];
    let mut stack = Vec::new();
    let mut found = Vec::new();
    let mut counter = 0;
    for start in 0..count {
        if index[start] != usize::MAX {
            continue;
        }
        let mut work = vec![(start, 0usize)];
        while let Some(&mut (node, ref mut child)) = work.last_mut() {
            if *child == 0 && index[node] == usize::MAX {
                index[node] = counter;
                low[node] = counter;
                counter += 1;
                stack.push(node);
                on_stack[node] = true;
            }
            let targets = next.get(&node).map(Vec::as_slice).unwrap_or(&[]);
            if let Some(&target) = targets.get(*child) {
                *child += 1;
                if index[target] == usize::MAX {
                    work.push((target, 0));
                } else if on_stack[target] {
                    low[node] = low[node].min(index[target]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[node]);
            }
            if low[node] == index[node] {
                let mut component = Vec::new();
                loop {
                    let member = stack.pop().expect("the node is on the stack");
                    on_stack[member] = false;
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort_unstable();
                    found.push(component);
                }
            }
        }
    }
    found
}
