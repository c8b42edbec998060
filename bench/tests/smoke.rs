//! The benchmark as a user runs it, shortened to a few seconds per system:
//! `safekeep-bench compare` brings up a safekeep cluster and an etcd
//! cluster with TLS, runs the put workload on both, and reports figures for
//! each, the safekeep/etcd ratio, JSON and the plot, then removes its work
//! directory; `footprint` on a few hundred records and one `failover` run
//! per system do the same for memory, disk, restart, catch-up and the
//! killed leader. They check that figures exist, never what they are.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest the whole comparison may take (a debug build, two clusters).
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// How often the test looks whether the comparison has finished.
const POLL: Duration = Duration::from_millis(200);
/// Ports far from the default, so a benchmark running by hand does not collide.
const BASE_PORT: &str = "27100";
/// The failover and footprint test's, a whole span (400 ports) above.
const OPERATIONS_BASE_PORT: &str = "27500";

/// The node program the benchmark starts, built from this tree (a no-op
/// when the test command has built it already).
fn node_binary() -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_safekeep-bench"));
    let release = bench
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|dir| dir == "release");
    let status = Command::new(env!("CARGO"))
        .args(["build", "-p", "safekeep-node", "--bin", "safekeep-node"])
        .args(release.then_some("--release"))
        .status()
        .expect("run cargo");
    assert!(status.success(), "building safekeep-node failed");
    let node = bench.with_file_name("safekeep-node");
    assert!(node.is_file(), "{} was not built", node.display());
    node
}

fn etcd_installed() -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("etcd").is_file()))
}

fn compare(scratch: &Path, out: &Path, work: &Path) -> (serde_json::Value, String) {
    let args = ["compare", "--workload", "put", "--clients", "4", "--rounds", "1"];
    let args = [
        &args[..],
        &["--duration", "2", "--warmup", "1", "--base-port", BASE_PORT],
    ]
    .concat();
    bench(&args, scratch, out, work)
}

/// Runs `safekeep-bench ARGS --json` to its end; its JSON report and its stderr.
fn bench(args: &[&str], scratch: &Path, out: &Path, work: &Path) -> (serde_json::Value, String) {
    let stdout_path = scratch.join("stdout.json");
    let stderr_path = scratch.join("stderr.txt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_safekeep-bench"))
        .args(args)
        .arg("--json")
        .arg("--out")
        .arg(out)
        .arg("--dir")
        .arg(work)
        .arg("--node-binary")
        .arg(node_binary())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("start safekeep-bench");
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for safekeep-bench") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "safekeep-bench {args:?} did not finish within {RUN_TIMEOUT:?}:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(POLL);
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(status.success(), "safekeep-bench {args:?} failed ({status}):\n{stderr}");
    let stdout = std::fs::read(&stdout_path).unwrap();
    let report =
        serde_json::from_slice(&stdout).unwrap_or_else(|e| panic!("--json output does not parse: {e}\n{stderr}"));
    (report, stderr)
}

#[test]
fn compare_measures_both_systems_and_reports_the_ratio_json_and_plot() {
    assert!(
        etcd_installed(),
        "etcd is not installed: run scripts/install-deps.sh (it installs etcd-server)"
    );
    let scratch = tempfile::TempDir::new().unwrap();
    let out = scratch.path().join("out");
    let work = scratch.path().join("work");
    let (report, stderr) = compare(scratch.path(), &out, &work);

    let summaries = report["summaries"].as_array().expect("summaries");
    for target in ["safekeep", "etcd"] {
        let summary = summaries
            .iter()
            .find(|s| s["target"] == target && s["clients"] == 4)
            .unwrap_or_else(|| panic!("no figures for {target}: {report}"));
        assert!(summary["ops_per_s"].as_f64().unwrap() > 0.0, "{target}: {summary}");
        assert_eq!(summary["errors"], 0, "{target} failed operations: {summary}\n{stderr}");
        assert!(summary["cpu_s_per_1k_ops"].as_f64().is_some(), "{target}: {summary}");
        assert!(summary["server_rss_mib"].as_f64().unwrap() > 0.0, "{target}: {summary}");
        assert!(summary["p99_ms"].as_f64().is_some(), "{target}: {summary}");
        assert!(summary["late"].as_u64().is_some(), "{target}: {summary}");
    }
    assert!(
        report["machine"]["work_filesystem"]
            .as_str()
            .is_some_and(|fs| !fs.is_empty()),
        "the report names the work directory's filesystem: {}",
        report["machine"]
    );
    let ratio = &report["ratios"][0];
    assert_eq!(ratio["clients"], 4, "{report}");
    assert!(
        ratio["ops_per_s"].as_f64().is_some(),
        "no safekeep/etcd ratio: {report}"
    );
    assert!(stderr.contains("safekeep/etcd"), "the table names the ratio:\n{stderr}");
    assert!(
        report["setups"]["safekeep"].as_str().unwrap().contains("TLS")
            && report["setups"]["etcd"].as_str().unwrap().contains("TLS"),
        "both run with TLS: {}",
        report["setups"]
    );

    for file in ["bench.png", "bench.json", "bench.md"] {
        let path = out.join(file);
        assert!(
            std::fs::metadata(&path).is_ok_and(|m| m.len() > 0),
            "{} missing",
            path.display()
        );
    }
    assert!(!work.exists(), "the work directory is removed after the session");
}

#[test]
fn footprint_and_failover_measure_both_systems() {
    assert!(
        etcd_installed(),
        "etcd is not installed: run scripts/install-deps.sh (it installs etcd-server)"
    );
    let scratch = tempfile::TempDir::new().unwrap();
    let out = scratch.path().join("out");

    let work = scratch.path().join("footprint");
    let args = ["footprint", "--records", "300", "--base-port", OPERATIONS_BASE_PORT];
    let (report, stderr) = bench(&args, scratch.path(), &out, &work);
    let figures = report["figures"].as_array().expect("figures");
    for target in ["safekeep", "etcd"] {
        let f = figures
            .iter()
            .find(|f| f["target"] == target)
            .unwrap_or_else(|| panic!("no footprint of {target}: {report}\n{stderr}"));
        assert_eq!(f["records"], 300, "{f}");
        for figure in [
            "rss_mib",
            "disk_serving_mib",
            "disk_stopped_mib",
            "restart_s",
            "catch_up_s",
        ] {
            assert!(f[figure].as_f64().is_some_and(|v| v > 0.0), "{target} {figure}: {f}");
        }
        // The new member holds the records it caught up with.
        assert!(
            f["catch_up_disk_mib"].as_f64().is_some_and(|v| v > 0.0),
            "{target}: {f}"
        );
    }
    assert!(!work.exists(), "the work directory is removed after the session");

    let work = scratch.path().join("failover");
    let args = ["failover", "--runs", "1", "--base-port", OPERATIONS_BASE_PORT];
    let (report, stderr) = bench(&args, scratch.path(), &out, &work);
    let samples = report["samples"].as_array().expect("samples");
    for target in ["safekeep", "etcd"] {
        let sample = samples
            .iter()
            .find(|s| s["target"] == target)
            .unwrap_or_else(|| panic!("no failover of {target}: {report}\n{stderr}"));
        assert!(sample["failover_ms"].as_f64().is_some_and(|v| v > 0.0), "{sample}");
        assert_ne!(sample["killed_member"], sample["new_leader_member"], "{sample}");
        assert_eq!(report["summary"][target]["runs"], 1, "{report}");
    }
    for file in ["failover.json", "failover.md", "footprint.json", "footprint.md"] {
        assert!(
            std::fs::metadata(out.join(file)).is_ok_and(|m| m.len() > 0),
            "{file} missing"
        );
    }
}
