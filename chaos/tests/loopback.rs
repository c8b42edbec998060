//! The drills an SRE without root can run: every node on a loopback
//! address of its own, faults made only with signals. Run as an
//! unprivileged user (`nobody`, through `setpriv`), a zone freeze must pass
//! with the same checks as in namespaces, and a fault that needs root must
//! be refused with the reason and the list of drills that do run.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The unprivileged user and group the drill runs as.
const NOBODY: &str = "65534";

/// Runs `safekeep-chaos args` as `nobody`, from copies of the programs in
/// `dir` (the build's own folder may not be readable to that user).
fn chaos_unprivileged(args: &[&str], dir: &Path) -> std::process::Output {
    let programs = dir.join("bin");
    if !programs.exists() {
        std::fs::create_dir_all(&programs).unwrap();
        for (from, name) in [
            (PathBuf::from(env!("CARGO_BIN_EXE_safekeep-chaos")), "safekeep-chaos"),
            (common::node_binary(), "safekeep-node"),
        ] {
            std::fs::copy(from, programs.join(name)).unwrap();
        }
    }
    Command::new("setpriv")
        .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
        .arg(programs.join("safekeep-chaos"))
        .args(args)
        .arg("--report")
        .arg(dir.join("report"))
        .env("HOME", dir)
        .current_dir(dir)
        .output()
        .expect("run safekeep-chaos through setpriv (util-linux)")
}

#[test]
fn without_root_a_zone_freeze_runs_on_loopback_and_a_network_fault_is_refused_with_the_reason() {
    let out = tempfile::TempDir::new().unwrap();
    std::fs::set_permissions(out.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let refused = chaos_unprivileged(&["drill", "zone-isolation"], out.path());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("not root") && stderr.contains("needs root"),
        "the refusal says why: {stderr}"
    );
    assert!(
        stderr.contains("zone-power-loss") && stderr.contains("zone-freeze"),
        "and what runs instead: {stderr}"
    );

    let output = chaos_unprivileged(
        &[
            "drill",
            "zone-freeze",
            "--steady",
            "3",
            "--outage",
            "5",
            "--recovery",
            "5",
        ],
        out.path(),
    );
    let dir = out.path().join("report/zone-freeze");
    let report = common::passed_report(&dir, &output);
    assert_eq!(report["isolation"], "loopback");
    assert_eq!(report["history"]["linearizable"], true, "{}", report["history"]);
    assert_eq!(report["history"]["lost_writes"], 0, "{}", report["history"]);
    assert_eq!(report["history"]["replicas_agree"], true, "{}", report["history"]);
    let figures = &report["figures"];
    assert!(figures["failover_s"].is_f64(), "writes resumed: {figures}");
    assert!(
        figures["during"]["availability_pct"].is_f64(),
        "availability per phase: {figures}"
    );
    assert!(
        !figures["leader_changes"].as_array().unwrap().is_empty(),
        "the watch saw the leader: {figures}"
    );
}
