//! What every layer of the node agrees on, and depends on nothing of the
//! node: the commands the replicated log carries (`command`), the size
//! limits of the API (`limits`), and the checks of client input against
//! them (`validate`).

pub mod command;
pub mod limits;
pub mod validate;
