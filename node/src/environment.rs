//! How a node reaches the outside world: the transport its peers and
//! clients connect over, how its log syncs, the wall clock it stamps
//! proposals with, and, under simulation, a fixed random seed and a record
//! of unsynced writes. Production takes the defaults; the simulation passes
//! its own. It names storage's sync mode, so it sits just above storage.

use std::sync::Arc;

use crate::storage::{LogSync, UnsyncedWrites};
use crate::transport::{TcpTransport, Transport};

/// How a node reaches the outside world: its transport, how its log syncs,
/// and, under simulation, its random seed and a record of unsynced writes.
#[derive(Clone)]
pub struct NodeEnvironment {
    pub transport: Arc<dyn Transport>,
    pub log_sync: LogSync,
    /// Seed of openraft's random draws (election timeouts); random when absent.
    pub rng_seed: Option<u64>,
    /// Records unsynced writes so a simulated power loss can drop them.
    pub unsynced_writes: Option<Arc<UnsyncedWrites>>,
    /// The wall clock stamped on proposals: the system's, or simulated time.
    pub wall_clock: WallClock,
}

/// Reads the wall clock; a plain function so the simulation can pass its own.
pub type WallClock = fn() -> std::time::SystemTime;

/// Nanoseconds since the Unix epoch on `clock` (0 before it, saturating).
pub fn wall_clock_nanos(clock: WallClock) -> u64 {
    let since_epoch = clock().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
}

impl Default for NodeEnvironment {
    fn default() -> Self {
        Self {
            transport: Arc::new(TcpTransport),
            log_sync: LogSync::GroupCommit,
            rng_seed: None,
            unsynced_writes: None,
            wall_clock: std::time::SystemTime::now,
        }
    }
}
