//! A seed fixes a run: the same seed, run in two separate processes, yields
//! the same fault trace, the same issued operations, and the same history
//! (every operation's outcome at the same simulated times). The progress
//! bar stays off a standard error that is not a terminal.

use std::process::Command;

/// Operations each client must have issued in both runs for the comparison to mean something.
const MIN_COMMON_OPERATIONS: usize = 50;

fn trace_of_run(seed: u64, dir: &std::path::Path, name: &str) -> serde_json::Value {
    let path = dir.join(name);
    let output = Command::new(env!("CARGO_BIN_EXE_safekeep-sim"))
        .args([
            "--scenario",
            "zone-power-loss",
            "--topology",
            "3x1",
            "--seed",
            &seed.to_string(),
        ])
        .arg("--trace-file")
        .arg(&path)
        .output()
        .expect("run the simulator");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the run itself passes: {stderr}");
    assert!(
        !stderr.contains("runs,") && !stderr.contains('\r'),
        "a progress bar on a standard error that is a pipe: {stderr:?}"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn one_seed_replays_the_same_faults_workload_and_history_in_two_processes() {
    let dir = tempfile::TempDir::new().unwrap();
    let first = trace_of_run(11, dir.path(), "first.json");
    let second = trace_of_run(11, dir.path(), "second.json");
    assert_eq!(first["faults"], second["faults"], "fault traces differ");
    let clients = first["issued"].as_object().unwrap();
    assert!(!clients.is_empty());
    for (client, ops) in clients {
        if client == &u64::MAX.to_string() {
            continue; // the final reader: one read per key, compared by the history checks
        }
        let a = ops.as_array().unwrap();
        let b = second["issued"][client].as_array().expect("same clients in both runs");
        let common = a.len().min(b.len());
        assert!(
            common >= MIN_COMMON_OPERATIONS,
            "client {client} issued only {common} operations"
        );
        assert_eq!(a[..common], b[..common], "client {client} issued different operations");
    }
    let (a, b) = (
        first["outcomes"].as_array().unwrap(),
        second["outcomes"].as_array().unwrap(),
    );
    assert!(
        a.len() > MIN_COMMON_OPERATIONS,
        "the history has {} operations",
        a.len()
    );
    if let Some(at) = a.iter().zip(b).position(|(x, y)| x != y) {
        panic!("histories part at operation {at}:\n  {}\n  {}", a[at], b[at]);
    }
    assert_eq!(a.len(), b.len(), "histories differ in length");
}
