//! The errors a benchmark run can end with, one variant per thing the person
//! running it can act on: a missing program, a cluster that did not come up,
//! a file that could not be written, bad options.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a benchmark could not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// An option is out of its bounds or contradicts another.
    #[error("invalid option: {0}")]
    BadOption(String),
    /// A program the benchmark starts is not installed.
    #[error("cannot find the program '{program}': {hint}")]
    MissingProgram { program: String, hint: String },
    /// A file or directory operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A child process exited before it should have.
    #[error("{what} exited with {status}; see {log}")]
    Exited { what: String, status: String, log: PathBuf },
    /// A cluster did not become ready in time.
    #[error("{what} was not ready within {timeout:?}; see the logs under {logs}")]
    NotReady {
        what: String,
        timeout: Duration,
        logs: PathBuf,
    },
    /// A helper command (such as certificate generation) failed.
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    /// A file another program wrote is not what the benchmark expects.
    #[error("{path}: {detail}")]
    Malformed { path: PathBuf, detail: String },
    /// The safekeep SDK failed while the cluster was being set up.
    #[error("safekeep: {0}")]
    Safekeep(#[from] safekeep_client::Error),
    /// The etcd client failed while the cluster was being set up.
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// The work directory is on a filesystem kept in memory, where fsync does nothing.
    #[error(
        "{dir} is on {filesystem}, where fsync does nothing for either system: \
         pass --dir with a directory on a disk-backed filesystem"
    )]
    VolatileDir { dir: PathBuf, filesystem: &'static str },
    /// A server was set up in a way that would make the comparison unfair.
    #[error("unfair setup: {0}")]
    Unfair(String),
    /// Setup found a cluster answering wrongly (a missing record, a refused write).
    #[error("{target} misbehaved during setup: {detail}")]
    Setup { target: &'static str, detail: String },
    /// The font the plot's labels use cannot be loaded.
    #[error("cannot load the plot's font: {0}")]
    Font(String),
    /// The plot could not be drawn.
    #[error("cannot draw {path}: {detail}")]
    Plot { path: PathBuf, detail: String },
    /// Ctrl-C or SIGTERM arrived.
    #[error("interrupted")]
    Interrupted,
}

/// A closure that turns an I/O error on `path` into a [`BenchError::Io`].
pub fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BenchError {
    let path = path.to_path_buf();
    move |source| BenchError::Io { what, path, source }
}
