//! Incarnation checks on the peer channel. Every Raft call carries the
//! sender's incarnation and the one the sender's membership records for the
//! target. The receiver refuses a call addressed to an incarnation it is not
//! (its data directory was emptied: it holds none of what its id promised),
//! and one from a member whose incarnation is not the one recorded (the same
//! case, seen from the other side). So a wiped member neither votes nor takes
//! entries under its old id; the operator removes it and adds a fresh node.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

use super::types::NodeId;
use crate::metrics_names::PEER_INCARNATION_REFUSALS;
use crate::test_faults::{TestFault, enabled};

/// The sender's own incarnation.
const FROM_METADATA: &str = "x-safekeep-from-incarnation";
/// The incarnation the sender's membership records for the target.
const TO_METADATA: &str = "x-safekeep-to-incarnation";
/// Marks a refusal for an incarnation, so the caller can tell it from others.
const REFUSED_METADATA: &str = "x-safekeep-incarnation-refused";
/// Shortest time between two log lines about refused calls (the refusals
/// repeat with every heartbeat; the metric counts each one).
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Stamps a peer call with both incarnations. 0 stands for unknown and is
/// not checked: every node sends its own, which is never 0.
pub fn stamp(metadata: &mut MetadataMap, from: u64, to: u64) {
    metadata.insert(FROM_METADATA, from.into());
    metadata.insert(TO_METADATA, to.into());
}

fn read(metadata: &MetadataMap, key: &str) -> u64 {
    metadata
        .get(key)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Why a peer call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The call is addressed to an earlier incarnation of this node.
    ThisNodeReplaced { expected: u64 },
    /// The sender's incarnation is not the one the membership records.
    SenderReplaced { recorded: u64, carried: u64 },
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::ThisNodeReplaced { .. } => "this_node_replaced",
            Refusal::SenderReplaced { .. } => "sender_replaced",
        }
    }
}

/// The receiving side's check, with its own incarnation.
pub struct IncarnationGuard {
    node_id: NodeId,
    mine: u64,
    last_logged: Mutex<Option<Instant>>,
}

impl IncarnationGuard {
    pub fn new(node_id: NodeId, mine: u64) -> Self {
        assert_ne!(mine, 0, "a data directory always has an incarnation");
        Self {
            node_id,
            mine,
            last_logged: Mutex::new(None),
        }
    }

    /// Admits a Raft call from `sender`, whose incarnation this node's
    /// membership records as `recorded` (`None` or 0: not known here).
    pub fn admit(&self, metadata: &MetadataMap, sender: NodeId, recorded: Option<u64>) -> Result<(), Status> {
        if enabled(TestFault::IgnoreIncarnation) {
            return Ok(());
        }
        let expected = read(metadata, TO_METADATA);
        let carried = read(metadata, FROM_METADATA);
        let refusal = if expected != 0 && expected != self.mine {
            Refusal::ThisNodeReplaced { expected }
        } else if let Some(recorded) = recorded.filter(|r| *r != 0 && carried != 0 && *r != carried) {
            Refusal::SenderReplaced { recorded, carried }
        } else {
            return Ok(());
        };
        metrics::counter!(PEER_INCARNATION_REFUSALS, "reason" => refusal.label()).increment(1);
        let message = self.describe(refusal, sender);
        log_at_most_every_interval(&self.last_logged, self.node_id, "peer call refused", &message);
        let mut metadata = MetadataMap::new();
        metadata.insert(REFUSED_METADATA, "true".parse().expect("an ASCII header value"));
        Err(Status::with_metadata(Code::FailedPrecondition, message, metadata))
    }

    fn describe(&self, refusal: Refusal, sender: NodeId) -> String {
        let id = self.node_id;
        match refusal {
            Refusal::ThisNodeReplaced { expected } => format!(
                "the cluster knows node {id} by data directory incarnation {expected:016x}, but this node's \
                 is {:016x}: its data directory was emptied or replaced, so it holds nothing node {id} \
                 acknowledged and may neither vote nor take entries under that id. Remove node {id} \
                 (cluster remove or cluster replace) and add this host under a new id",
                self.mine
            ),
            Refusal::SenderReplaced { recorded, carried } => format!(
                "node {sender} calls with data directory incarnation {carried:016x}, but the membership \
                 records {recorded:016x}: its data directory was emptied or replaced, so its votes and \
                 acknowledgements are refused. Remove node {sender} and add a fresh node in its place"
            ),
        }
    }
}

/// Whether a peer refused a call because an incarnation did not match.
pub fn is_refusal(status: &Status) -> bool {
    status.metadata().contains_key(REFUSED_METADATA)
}

/// The calling side of a refusal: counted, and logged now and then.
pub struct RefusalSeen {
    node_id: NodeId,
    last_logged: Mutex<Option<Instant>>,
}

impl RefusalSeen {
    pub fn new(node_id: NodeId) -> Self {
        Self {
            node_id,
            last_logged: Mutex::new(None),
        }
    }

    /// Records that `target` refused a call for its incarnation.
    pub fn note(&self, target: NodeId, status: &Status) {
        metrics::counter!(PEER_INCARNATION_REFUSALS, "reason" => "target_replaced").increment(1);
        let message = format!("node {target}: {}", status.message());
        log_at_most_every_interval(&self.last_logged, self.node_id, "peer refused a call", &message);
    }
}

/// Logs `message` unless one was logged through `last` within `REFUSAL_LOG_INTERVAL`.
fn log_at_most_every_interval(last: &Mutex<Option<Instant>>, node: NodeId, what: &str, message: &str) {
    let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
    if last.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_INTERVAL) {
        *last = Some(Instant::now());
        tracing::error!(node, "{what}: {message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(from: u64, to: u64) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        stamp(&mut metadata, from, to);
        metadata
    }

    #[test]
    fn matching_or_unknown_incarnations_pass() {
        let guard = IncarnationGuard::new(2, 0xbbbb);
        assert!(guard.admit(&call(0xaaaa, 0xbbbb), 1, Some(0xaaaa)).is_ok());
        assert!(guard.admit(&call(0xaaaa, 0), 1, Some(0)).is_ok());
        assert!(guard.admit(&call(0xaaaa, 0xbbbb), 1, None).is_ok());
        assert!(guard.admit(&MetadataMap::new(), 1, None).is_ok());
        assert!(guard.admit(&MetadataMap::new(), 1, Some(0xaaaa)).is_ok());
    }

    #[test]
    fn a_call_addressed_to_an_earlier_incarnation_is_refused() {
        let guard = IncarnationGuard::new(2, 0xcccc);
        let refused = guard.admit(&call(0xaaaa, 0xbbbb), 1, None).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        assert!(
            refused.message().contains("data directory was emptied"),
            "{}",
            refused.message()
        );
        assert!(refused.message().contains("Remove node 2"), "{}", refused.message());
    }

    #[test]
    fn a_sender_with_another_incarnation_than_recorded_is_refused() {
        let guard = IncarnationGuard::new(1, 0xaaaa);
        let refused = guard.admit(&call(0xdddd, 0xaaaa), 3, Some(0xcccc)).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        assert!(refused.message().contains("Remove node 3"), "{}", refused.message());
    }
}
