//! The drill is able to fail on real processes: the zone-power-loss drill,
//! run against node programs built with a deliberate bug (linearizable
//! reads answered from the local replica, without a read barrier), must
//! report the stale reads as a linearizability violation, exit non-zero,
//! and keep the history and node logs for whoever investigates.

mod common;

use std::process::Command;

#[test]
fn a_node_that_reads_without_a_barrier_fails_the_power_loss_drill() {
    let out = tempfile::TempDir::new().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_safekeep-chaos"))
        .args([
            "drill",
            "zone-power-loss",
            "--warmup",
            "3",
            "--outage",
            "4",
            "--recovery",
            "4",
            "--out",
        ])
        .arg(out.path())
        .arg("--node-binary")
        .arg(common::faulty_node_binary())
        .env("SAFEKEEP_TEST_FAULTS", "reads-without-barrier")
        .output()
        .expect("run safekeep-chaos");
    let dir = out.path().join("zone-power-loss");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "a failed verdict exits 1: {stderr}\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).expect("report.json")).expect("it parses");
    assert_eq!(report["passed"], false, "{report}");
    assert_eq!(report["history"]["linearizable"], false, "{}", report["history"]);
    let findings = report["history"]["findings"].as_array().expect("findings");
    assert!(!findings.is_empty(), "the violation is quoted: {}", report["history"]);
    let history: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("history.json")).expect("the history is kept"))
            .expect("history.json parses");
    assert!(history.is_object() || history.is_array(), "{history}");
    let log = std::fs::read_to_string(dir.join("cluster/node-1/node.log")).expect("node logs are kept");
    assert!(
        log.contains("deliberate bugs switched on"),
        "the nodes ran the faulty build"
    );
}
