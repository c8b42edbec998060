//! The drills as an SRE runs them, shortened: `safekeep-chaos drill` on a
//! real three-zone cluster for a zone power loss, a zone isolation, a
//! stalled disk (fsfreeze of loop-mounted data filesystems) and a node
//! replaced after its disk was lost. Each must keep the history
//! linearizable with no acknowledged write lost, fail over, write its report
//! and plot, and leave no namespace or mount behind.

mod common;

use std::path::Path;
use std::process::Command;

fn leftover_namespaces() -> Vec<String> {
    let output = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.starts_with(safekeep_chaos::netns::PREFIX))
        .map(str::to_string)
        .collect()
}

fn drill(fault: &str, out: &Path, extra: &[String]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_safekeep-chaos"))
        .args([
            "drill",
            fault,
            "--steady",
            "3",
            "--outage",
            "6",
            "--recovery",
            "6",
            "--report",
        ])
        .arg(out)
        .arg("--node-binary")
        .arg(common::node_binary())
        .args(extra)
        .output()
        .expect("run safekeep-chaos");
    let report_path = out.join(fault).join("report.json");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap_or_else(|e| {
        panic!(
            "no {} ({e}); stderr: {}",
            report_path.display(),
            String::from_utf8_lossy(&output.stderr)
        )
    }))
    .expect("report.json parses");
    assert!(
        output.status.success(),
        "{fault} drill failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        std::fs::read_to_string(out.join(fault).join("report.md")).unwrap_or_default()
    );
    for file in ["report.md", "timeline.png"] {
        let path = out.join(fault).join(file);
        assert!(
            std::fs::metadata(&path).is_ok_and(|m| m.len() > 0),
            "{} missing",
            path.display()
        );
    }
    assert!(
        leftover_namespaces().is_empty(),
        "left behind: {:?}",
        leftover_namespaces()
    );
    report
}

#[test]
fn power_loss_isolation_disk_stall_and_replacement_keep_every_acknowledged_write_and_fail_over() {
    let out = tempfile::TempDir::new().unwrap();
    for fault in ["zone-power-loss", "zone-isolation", "disk-stall", "node-replacement"] {
        // One drill also backs up, shipping every second, and watches the backups.
        let backup = (fault == "zone-power-loss").then(|| {
            vec![
                "--backup-target".to_string(),
                format!("file://{}", out.path().join("backups").display()),
                "--backup-archive-interval".to_string(),
                "1".to_string(),
            ]
        });
        let report = drill(fault, out.path(), backup.as_deref().unwrap_or_default());
        if backup.is_some() {
            let backup = &report["backup"];
            assert!(backup["samples"].as_u64().unwrap_or(0) > 5, "{fault}: {backup}");
            assert_eq!(
                backup["archived_during_fault"], true,
                "{fault}: the archive kept shipping through the zone loss: {backup}"
            );
        } else {
            assert!(report["backup"].is_null(), "{fault}: no backups, no figures");
        }
        let history = &report["history"];
        assert_eq!(history["linearizable"], true, "{fault}: {history}");
        assert_eq!(history["lost_writes"], 0, "{fault}: {history}");
        assert_eq!(history["replicas_agree"], true, "{fault}: {history}");
        assert!(
            history["operations"].as_u64().unwrap() > 100,
            "{fault}: the workload ran: {history}"
        );
        let figures = &report["figures"];
        let failover = figures["failover_s"]
            .as_f64()
            .unwrap_or_else(|| panic!("{fault}: no write after the fault"));
        assert!(failover < 5.0, "{fault}: failover took {failover} s");
        assert!(
            figures["before"]["writes_per_s"].as_f64().unwrap() > 0.0,
            "{fault}: {figures}"
        );
        assert!(
            figures["before"]["availability_pct"].is_f64() && figures["after"]["availability_pct"].is_f64(),
            "{fault}: availability per phase: {figures}"
        );
        assert!(
            figures["catch_up_s"].is_f64(),
            "{fault}: the nodes the fault hit caught up: {figures}"
        );
        assert!(
            !figures["leader_changes"].as_array().unwrap().is_empty(),
            "{fault}: the leader is on the timeline: {figures}"
        );
    }
}
