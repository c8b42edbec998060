//! The recorder and the history format: ids in invocation order, sharing
//! across threads, pending operations, refused misuse, and a serde round trip
//! that validates what it loads.

mod common;

use common::{Builder, put, read, written};
use safekeep_history::{ClientId, History, HistoryError, Op, OpId, Outcome, Recorder, check_all};

#[test]
fn recorder_clones_share_one_history_across_threads() {
    const THREADS: u64 = 8;
    const OPS_PER_THREAD: u64 = 50;
    let recorder = Recorder::new();
    let handles: Vec<_> = (0..THREADS)
        .map(|thread| {
            let recorder = recorder.clone();
            std::thread::spawn(move || {
                for i in 0..OPS_PER_THREAD {
                    let at = thread * 1_000 + i * 10;
                    let key = format!("k{thread}");
                    let id = recorder
                        .invoke(ClientId(thread), put(&key, &format!("{i}")), at)
                        .unwrap();
                    recorder.complete(id, Outcome::Fail, at + 5).unwrap();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let history = recorder.history();
    assert_eq!(history.len() as u64, THREADS * OPS_PER_THREAD);
    assert_eq!(recorder.len(), history.len());
    for (index, operation) in history.operations().iter().enumerate() {
        assert_eq!(operation.id, OpId(index as u64));
        assert!(!operation.is_pending());
    }
    assert!(check_all(&history).is_ok());
}

#[test]
fn pending_operations_appear_unknown_without_return_time() {
    let recorder = Recorder::new();
    assert!(recorder.is_empty());
    let done = recorder.invoke(ClientId(1), put("k", "a"), 10).unwrap();
    let pending = recorder.invoke(ClientId(2), put("k", "b"), 20).unwrap();
    recorder.complete(done, written(1), 30).unwrap();
    let history = recorder.history();
    let pending = history.get(pending).unwrap();
    assert!(pending.is_pending());
    assert_eq!(pending.outcome, Outcome::Unknown);
    assert_eq!(history.get(done).unwrap().return_ns, Some(30));
    // A snapshot does not freeze the recorder.
    recorder.complete(pending.id, Outcome::Unknown, 40).unwrap();
    assert!(!recorder.history().get(pending.id).unwrap().is_pending());
}

#[test]
fn recorder_refuses_misuse() {
    let recorder = Recorder::new();
    let id = recorder.invoke(ClientId(1), Op::Get { key: "k".into() }, 100).unwrap();
    assert_eq!(
        recorder.complete(OpId(7), read(None), 200),
        Err(HistoryError::UnknownOpId(OpId(7)))
    );
    assert!(matches!(
        recorder.complete(id, written(3), 200),
        Err(HistoryError::OutcomeMismatch {
            op: "get",
            outcome: "written",
            ..
        })
    ));
    assert!(matches!(
        recorder.complete(id, read(None), 50),
        Err(HistoryError::ReturnBeforeInvoke { .. })
    ));
    recorder.complete(id, read(None), 200).unwrap();
    assert_eq!(
        recorder.complete(id, read(None), 300),
        Err(HistoryError::AlreadyCompleted(id))
    );
}

#[test]
fn history_round_trips_through_json() {
    let mut h = Builder::new();
    h.put(1, "k", "a", (0, 1), written(1));
    // Broken on purpose (the conflict misreports the version) so the report has a violation to save.
    h.put_if(2, "k", "b", 1, (2, 3), common::conflict(4));
    h.delete(2, "k", (4, 5), common::deleted(true, 6));
    h.get(3, "k", (6, 7), Some(("a", 1)));
    h.pending_put(4, "k", "c", 8);
    let history = h.build();
    let json = serde_json::to_string(&history).unwrap();
    let loaded: History = serde_json::from_str(&json).unwrap();
    assert_eq!(loaded, history);
    // The report serializes too, so a failing run can be saved with its verdict.
    let report = check_all(&loaded);
    assert!(serde_json::to_string(&report).unwrap().contains("violation"));
}

#[test]
fn loading_a_malformed_history_is_refused() {
    let json = r#"{"operations":[{"id":0,"client":1,"op":{"get":{"key":"k"}},
        "invoke_ns":5,"return_ns":null,"outcome":{"read":{"record":null}}}]}"#;
    let error = serde_json::from_str::<History>(json).unwrap_err();
    assert!(error.to_string().contains("no return time"), "{error}");
}

#[test]
fn history_is_ordered_by_id_and_refuses_duplicates() {
    let mut h = Builder::new();
    h.put(1, "k", "a", (0, 1), written(1));
    h.get(1, "k", (2, 3), None);
    let mut operations = h.build().operations().to_vec();
    operations.reverse();
    let history = History::new(operations.clone()).unwrap();
    let ids: Vec<OpId> = history.operations().iter().map(|operation| operation.id).collect();
    assert_eq!(ids, vec![OpId(0), OpId(1)]);
    operations.push(operations[0].clone());
    assert_eq!(History::new(operations), Err(HistoryError::DuplicateOpId(OpId(1))));
}
