//! Hand-written histories with a known answer: the linearizable ones must
//! pass and each kind of anomaly must be caught, so the checker is shown able
//! to fail.

mod common;

use common::{Builder, conflict, deleted, written};
use safekeep_history::{
    History, Limits, LostWriteReason, OpId, Outcome, RegisterState, Report, Verdict, Violation, check_all,
    check_all_with,
};

fn assert_passes(history: &History) -> Report {
    let report = check_all(history);
    assert!(report.is_ok(), "expected a pass:\n{report}");
    report
}

/// Checks that linearizability fails on `key` and returns the violation.
fn assert_not_linearizable(history: &History, key: &str) -> Violation {
    let report = check_all(history);
    assert!(
        !report.is_ok() && report.has_violations(),
        "expected a failure:\n{report}"
    );
    let violation = report
        .linearizability
        .violations()
        .find(|violation| violation.key == key)
        .unwrap_or_else(|| panic!("expected a violation on {key:?}:\n{report}"))
        .clone();
    let text = report.to_string();
    assert!(text.contains("FAILED") && text.contains(&format!("{key:?}")), "{text}");
    violation
}

// ---- histories that must pass ----

#[test]
fn empty_history_passes() {
    let report = assert_passes(&History::default());
    assert!(report.to_string().contains("PASSED"));
}

#[test]
fn sequential_writes_and_reads_pass() {
    let mut h = Builder::new();
    h.get(1, "k", (0, 1), None);
    h.put(1, "k", "a", (2, 3), written(4));
    h.get(1, "k", (4, 5), Some(("a", 4)));
    h.put(1, "k", "b", (6, 7), written(9));
    h.get(2, "k", (8, 9), Some(("b", 9)));
    assert_passes(&h.build());
}

#[test]
fn concurrent_overlapping_operations_pass_in_version_order() {
    // b (v4) takes effect before a (v5) although a was invoked first.
    let mut h = Builder::new();
    h.put(1, "k", "a", (0, 10), written(5));
    h.put(2, "k", "b", (2, 12), written(4));
    h.get(3, "k", (1, 3), None);
    h.get(3, "k", (4, 6), Some(("b", 4)));
    h.get(4, "k", (5, 11), Some(("a", 5)));
    h.get(3, "k", (13, 14), Some(("a", 5)));
    assert_passes(&h.build());
}

#[test]
fn reads_concurrent_with_a_write_may_see_before_or_after() {
    let mut h = Builder::new();
    h.put(1, "k", "a", (0, 1), written(1));
    h.put(1, "k", "b", (10, 30), written(2));
    h.get(2, "k", (11, 12), Some(("b", 2)));
    h.get(3, "k", (11, 29), Some(("b", 2)));
    h.get(4, "k", (12, 13), Some(("b", 2)));
    h.get(5, "k", (9, 20), Some(("a", 1)));
    assert_passes(&h.build());
}

#[test]
fn operations_ending_and_starting_at_the_same_instant_count_as_concurrent() {
    // Simulated clocks put many events on one instant: ties must not create an order.
    let mut h = Builder::new();
    h.put(1, "k", "a", (0, 5), written(1));
    h.get(2, "k", (5, 6), None);
    h.get(2, "k", (7, 8), Some(("a", 1)));
    assert_passes(&h.build());
}

#[test]
fn unknown_write_that_took_effect_passes() {
    let mut h = Builder::new();
    h.put(1, "k", "a", (0, 1), written(1));
    h.put(1, "k", "b", (2, 3), Outcome::Unknown);
    h.get(2, "k", (4, 5), Some(("a", 1)));
    // Took effect after its client gave up, and its version shows up in a read.
    h.get(2, "k", (6, 7), Some(("b", 2)));
    h.put(2, "k", "c", (8, 9), written(3));
    h.get(2, "k", (10, 11), Some(("c", 3)));
    assert_passes(&h.build());
}

#[test]
fn unknown_write_that_never_took_effect_passes() {
    let mut h = Builder::new();
    h.put(1, "k", "a", (0, 1), written(1));
    h.put(1, "k", "b", (2, 3), Outcome::Unknown);
    h.pending_put(3, "k", "c", 2);
    h.get(2, "k", (4, 5), Some(("a", 1)));
    h.get(2, "k", (100, 101), Some(("a", 1)));
    assert_passes(&h.build());
}

#[test]
fn pending_write_that_took_effect_passes() {
    let mut h = Builder::new();
    h.pending_put(1, "k", "a", 0);
    h.get(2, "k", (1, 2), None);
    h.get(2, "k", (3, 4), Some(("a", 7)));
    assert_passes(&h.build());
}

#[test]
fn failed_writes_and_unanswered_reads_are_ignored() {
    let mut h = Builder::new();
    h.put(1, "k", "a", (0, 1), Outcome::Fail);
    h.op(2, common::put("k", "b"), Some((0, 1)), Outcome::Fail);
    h.op(
        3,
        safekeep_history::Op::Get { key: "k".into() },
        Some((2, 3)),
        Outcome::Unknown,
    );
    h.op(
        3,
        safekeep_history::Op::Get { key: "k".into() },
        Some((4, 5)),
        Outcome::Fail,
    );
    h.get(3, "k", (6, 7), None);
    assert_passes(&h.build());
}

#[test]
fn compare_and_set_conflicts_pass_when_they_report_the_current_version() {
    let mut h = Builder::new();
    h.put_if(1, "k", "a", 0, (0, 1), written(3));
    h.put_if(2, "k", "x", 0, (2, 3), conflict(3));
    // Two concurrent CAS on v3: one wins with v5, the other sees v5.
    h.put_if(1, "k", "b", 3, (4, 10), written(5));
    h.put_if(2, "k", "c", 3, (4, 10), conflict(5));
    h.get(3, "k", (11, 12), Some(("b", 5)));
    h.put_if(3, "k", "d", 5, (13, 14), written(8));
    h.get(3, "k", (15, 16), Some(("d", 8)));
    assert_passes(&h.build());
}

#[test]
fn conflict_can_reveal_the_version_of_an_unknown_write() {
    let mut h = Builder::new();
    h.put(1, "k", "a", (0, 1), written(1));
    h.put(1, "k", "b", (2, 3), Outcome::Unknown);
    h.put_if(2, "k", "c", 1, (4, 5), conflict(6));
    h.put_if(2, "k", "d", 6, (6, 7), written(9));
    h.get(2, "k", (8, 9), Some(("d", 9)));
    assert_passes(&h.build());
}

#[test]
fn deletes_pass_when_they_report_existence_correctly() {
    let mut h = Builder::new();
    h.delete(1, "k", (0, 1), deleted(false, 1));
    h.put(1, "k", "a", (2, 3), written(2));
    h.delete(1, "k", (4, 5), deleted(true, 3));
    h.get(2, "k", (6, 7), None);
    h.put_if(2, "k", "b", 0, (8, 9), written(4));
    h.delete(1, "k", (10, 11), Outcome::Unknown);
    h.get(2, "k", (12, 13), None);
    assert_passes(&h.build());
}

#[test]
fn keys_are_checked_independently() {
    let mut h = Builder::new();
    h.put(1, "k1", "a", (0, 10), written(2));
    h.put(2, "k2", "b", (0, 10), written(1));
    h.get(3, "k1", (11, 12), Some(("a", 2)));
    h.get(3, "k2", (11, 12), Some(("b", 1)));
    let report = assert_passes(&h.build());
    assert_eq!(report.linearizability.keys.len(), 2);
}

// ---- histories that must fail ----

#[test]
fn stale_read_after_a_completed_newer_write_is_caught() {
    let mut h = Builder::new();
    let a = h.put(1, "k", "a", (0, 1), written(1));
    let b = h.put(1, "k", "b", (2, 3), written(2));
    let read = h.get(2, "k", (4, 5), Some(("a", 1)));
    let violation = assert_not_linearizable(&h.build(), "k");
    // After a, b must take effect before it returns, but the read still to come needs v1.
    assert_eq!(violation.prefix, vec![a]);
    assert_eq!(violation.deadline, b);
    assert_eq!(violation.blocked_by, Some(read));
    assert_eq!(
        violation.state_after_prefix,
        RegisterState::Present {
            value: b"a".to_vec(),
            version: Some(1)
        }
    );
    let stuck: Vec<OpId> = violation.stuck.iter().map(|op| op.id).collect();
    assert_eq!(stuck, vec![b, read]);
}

#[test]
fn lost_write_is_caught_by_both_checks() {
    let mut h = Builder::new();
    h.put(1, "k", "a", (0, 1), written(1));
    h.get(2, "k", (2, 3), Some(("a", 1)));
    let b = h.put(1, "k", "b", (4, 5), written(2));
    let final_read = h.get(2, "k", (6, 7), Some(("a", 1)));
    let history = h.build();
    assert_not_linearizable(&history, "k");
    let report = check_all(&history);
    assert_eq!(report.lost_writes.lost.len(), 1, "{report}");
    let lost = &report.lost_writes.lost[0];
    assert_eq!((lost.key.as_str(), lost.op_id, lost.version), ("k", b, 2));
    assert_eq!(lost.value.as_deref(), Some(&b"b"[..]));
    assert_eq!(
        lost.reason,
        LostWriteReason::FinalReadOlder {
            final_read,
            final_version: Some(1)
        }
    );
    assert!(report.to_string().contains("final read #3 returned v1"), "{report}");
}

#[test]
fn acknowledged_write_never_observed_is_reported_lost() {
    // Linearizable (nothing contradicts the write), but nothing shows it survived either.
    let mut h = Builder::new();
    h.put(1, "k", "a", (0, 1), written(1));
    h.get(2, "k", (2, 3), Some(("a", 1)));
    let b = h.put(1, "k2", "b", (4, 5), written(2));
    let report = check_all(&h.build());
    assert!(report.linearizability.is_ok());
    assert_eq!(report.lost_writes.keys_without_reads, 1);
    let lost: Vec<(OpId, &LostWriteReason)> = report.lost_writes.lost.iter().map(|w| (w.op_id, &w.reason)).collect();
    assert_eq!(lost, vec![(b, &LostWriteReason::NeverObserved)]);
}

#[test]
fn overwritten_writes_are_not_lost() {
    let mut h = Builder::new();
    h.put(1, "k", "a", (0, 1), written(1));
    h.put(1, "k", "b", (2, 3), written(2));
    h.put(1, "k", "c", (4, 5), Outcome::Unknown);
    h.get(2, "k", (6, 7), Some(("c", 3)));
    h.put(1, "j", "x", (0, 1), written(4));
    h.delete(1, "j", (2, 3), Outcome::Unknown);
    h.get(2, "j", (6, 7), None);
    let report = assert_passes(&h.build());
    assert_eq!(report.lost_writes.acknowledged_writes, 3);
    assert_eq!(report.lost_writes.final_reads, 2);
}

#[test]
fn final_read_finding_an_acknowledged_record_absent_is_a_lost_write() {
    let mut h = Builder::new();
    let a = h.put(1, "k", "a", (0, 1), written(1));
    h.get(2, "k", (2, 3), Some(("a", 1)));
    h.get(2, "k", (4, 5), None);
    let report = check_all(&h.build());
    assert!(!report.linearizability.is_ok());
    assert_eq!(report.lost_writes.lost.len(), 1, "{report}");
    assert_eq!(report.lost_writes.lost[0].op_id, a);
    assert!(matches!(
        report.lost_writes.lost[0].reason,
        LostWriteReason::FinalReadOlder {
            final_version: None,
            ..
        }
    ));
}

#[test]
fn reads_seeing_two_writes_in_opposite_orders_are_caught() {
    let mut h = Builder::new();
    h.put(1, "k", "a", (0, 10), written(1));
    h.put(2, "k", "b", (0, 10), written(2));
    h.get(3, "k", (1, 2), Some(("a", 1)));
    h.get(3, "k", (3, 4), Some(("b", 2)));
    h.get(4, "k", (1, 2), Some(("b", 2)));
    h.get(4, "k", (3, 4), Some(("a", 1)));
    assert_not_linearizable(&h.build(), "k");
}

#[test]
fn reads_seeing_unknown_writes_in_opposite_orders_are_caught() {
    // Same anomaly without versions to lean on: each write may take effect only once.
    let mut h = Builder::new();
    h.pending_put(1, "k", "a", 0);
    h.pending_put(2, "k", "b", 0);
    h.get(3, "k", (1, 2), Some(("a", 5)));
    h.get(3, "k", (3, 4), Some(("b", 6)));
    h.get(4, "k", (1, 2), Some(("b", 6)));
    h.get(4, "k", (3, 4), Some(("a", 5)));
    assert_not_linearizable(&h.build(), "k");
}

#[test]
fn read_of_a_value_never_written_is_caught() {
    let mut h = Builder::new();
    h.put(1, "k", "a", (0, 1), written(1));
    h.put(2, "k", "b", (0, 1), Outcome::Fail);
    let ghost = h.get(2, "k", (2, 3), Some(("ghost", 1)));
    let violation = assert_not_linearizable(&h.build(), "k");
    assert_eq!(violation.deadline, ghost);
}

#[test]
fn read_of_a_failed_write_is_caught() {
    let mut h = Builder::new();
    h.put(1, "k", "a", (0, 1), Outcome::Fail);
    h.get(2, "k", (2, 3), Some(("a", 1)));
    assert_not_linearizable(&h.build(), "k");
}

#[test]
fn read_with_the_wrong_version_is_caught() {
    let mut h = Builder::new();
    h.put(1, "k", "a", (0, 1), written(4));
    h.get(2, "k", (2, 3), Some(("a", 3)));
    assert_not_linearizable(&h.build(), "k");
}

#[test]
fn conflict_reporting_a_wrong_current_version_is_caught() {
    let mut h = Builder::new();
    h.put(1, "k", "a", (0, 1), written(5));
    h.put_if(2, "k", "b", 3, (2, 3), conflict(4));
    assert_not_linearizable(&h.build(), "k");
}

#[test]
fn conflict_when_the_expected_version_matched_is_caught() {
    let mut h = Builder::new();
    h.put(1, "k", "a", (0, 1), written(5));
    h.put_if(2, "k", "b", 5, (2, 3), conflict(5));
    assert_not_linearizable(&h.build(), "k");
}

#[test]
fn compare_and_set_succeeding_on_a_stale_version_is_caught() {
    let mut h = Builder::new();
    h.put(1, "k", "a", (0, 1), written(1));
    h.put(1, "k", "b", (2, 3), written(2));
    h.put_if(2, "k", "c", 1, (4, 5), written(3));
    assert_not_linearizable(&h.build(), "k");
}

#[test]
fn versions_going_backwards_are_caught() {
    let mut h = Builder::new();
    h.put(1, "k", "a", (0, 1), written(5));
    h.put(1, "k", "b", (2, 3), written(3));
    assert_not_linearizable(&h.build(), "k");
}

#[test]
fn delete_claiming_a_missing_record_existed_is_caught() {
    let mut h = Builder::new();
    h.delete(1, "k", (0, 1), deleted(true, 1));
    assert_not_linearizable(&h.build(), "k");
}

#[test]
fn unknown_write_taking_effect_twice_is_caught() {
    let mut h = Builder::new();
    h.put(1, "k", "a", (0, 1), written(1));
    h.put(1, "k", "b", (2, 3), Outcome::Unknown);
    h.get(2, "k", (4, 5), Some(("b", 2)));
    h.put(2, "k", "c", (6, 7), written(3));
    h.get(2, "k", (8, 9), Some(("b", 2)));
    assert_not_linearizable(&h.build(), "k");
}

#[test]
fn only_the_broken_key_is_reported() {
    let mut h = Builder::new();
    h.put(1, "good", "a", (0, 1), written(1));
    h.get(1, "good", (2, 3), Some(("a", 1)));
    h.put(1, "bad", "b", (0, 1), written(2));
    h.get(1, "bad", (2, 3), None);
    let report = check_all(&h.build());
    let broken: Vec<&str> = report.linearizability.violations().map(|v| v.key.as_str()).collect();
    assert_eq!(broken, vec!["bad"]);
    assert_eq!(report.linearizability.linearizable_keys(), 1);
}

#[test]
fn search_beyond_the_state_bound_is_inconclusive_not_a_pass() {
    let mut h = Builder::new();
    for client in 0..10 {
        h.put(client, "k", &format!("v{client}"), (0, 100), written(client + 1));
    }
    h.get(99, "k", (101, 102), Some(("v9", 10)));
    let history = h.build();
    let report = check_all_with(&history, &Limits { max_states_per_key: 3 });
    assert_eq!(report.linearizability.keys[0].verdict, Verdict::Unknown);
    assert!(!report.is_ok() && !report.has_violations());
    assert!(report.to_string().contains("INCONCLUSIVE"), "{report}");
    assert_passes(&history);
}
