//! safekeep-layers: reads a crate's sources and checks the direction of its
//! imports. Every file belongs to a named layer; a file may import from its
//! own unit (its folder) or from a layer below its own, never from a layer
//! above nor from a sibling unit of the same rank, and no files import one
//! another in a cycle.
//!
//! `tree` finds a crate's files from its root through `mod` declarations;
//! `refs` extracts the crate-internal paths a file names and resolves them,
//! through re-exports, to the file that defines them; `rules` holds a crate's
//! layers and reports what breaks them.

mod refs;
mod rules;
mod tree;

pub use refs::{Edge, edges};
pub use rules::{Layers, Violation, check};
pub use tree::{ModuleTree, TreeError};
