//! A drill against a cluster the drill did not start, as an SRE runs one
//! against staging: the quick-start cluster (`safekeep-node local-cluster`)
//! plays the cluster elsewhere, the fault comes from the hooks (SIGKILL of
//! one node, then SIGHUP so local-cluster restarts it), and the same
//! workload, checker, watch and report run through `--endpoints` with the
//! operator's certificate.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the quick-start cluster may take to write cluster.json.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A base port whose next few ports are free now.
fn free_base_port() -> u16 {
    (0..200u16)
        .map(|i| 21_000 + (std::process::id() as u16 % 100) * 90 + i * 9)
        .find(|base| (0..9).all(|k| std::net::TcpListener::bind(("127.0.0.1", base + k)).is_ok()))
        .expect("a free port range")
}

/// Stops the quick-start cluster however the test ends.
struct LocalCluster(std::process::Child);

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let _ = self.0.wait();
    }
}

#[test]
fn a_drill_against_a_running_cluster_takes_its_fault_from_the_hooks() {
    let dir = tempfile::TempDir::new().unwrap();
    let cluster = LocalCluster(
        Command::new(common::node_binary())
            .args(["local-cluster", "--dir"])
            .arg(dir.path().join("cluster"))
            .args(["--base-port", &free_base_port().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start local-cluster"),
    );
    let manifest_path = dir.path().join("cluster/cluster.json");
    let deadline = Instant::now() + START_TIMEOUT;
    let manifest: serde_json::Value = loop {
        if let Some(m) = std::fs::read_to_string(&manifest_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
        {
            break m;
        }
        assert!(Instant::now() < deadline, "no cluster.json within {START_TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let nodes = manifest["nodes"].as_array().expect("nodes");
    let endpoints: Vec<&str> = nodes.iter().map(|n| n["client_address"].as_str().unwrap()).collect();
    let victim = nodes[0]["pid"].as_u64().unwrap();
    let tls = |field: &str| manifest["tls"][field].as_str().expect("TLS files").to_string();

    let report_dir = dir.path().join("report");
    let output = Command::new(env!("CARGO_BIN_EXE_safekeep-chaos"))
        .args(["drill", "zone-power-loss", "--endpoints", &endpoints.join(",")])
        .args([
            "--ca",
            &tls("ca"),
            "--client-cert",
            &tls("cert"),
            "--client-key",
            &tls("key"),
        ])
        .args(["--steady", "3", "--outage", "4", "--recovery", "5"])
        .args(["--fault-start-cmd", &format!("kill -KILL {victim}")])
        .args(["--fault-stop-cmd", &format!("kill -HUP {}", cluster.0.id())])
        .arg("--report")
        .arg(&report_dir)
        .stdin(Stdio::null())
        .output()
        .expect("run safekeep-chaos");
    let dir = report_dir.join("zone-power-loss");
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("report.json"))
            .unwrap_or_else(|e| panic!("no report ({e}): {}", String::from_utf8_lossy(&output.stderr))),
    )
    .expect("report.json parses");
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        std::fs::read_to_string(dir.join("report.md")).unwrap_or_default()
    );
    assert!(
        report["isolation"].is_null(),
        "a cluster elsewhere: {}",
        report["isolation"]
    );
    assert!(
        report["mechanism"]
            .as_str()
            .unwrap()
            .contains(&format!("kill -KILL {victim}")),
        "the report names the hook: {}",
        report["mechanism"]
    );
    assert_eq!(report["history"]["linearizable"], true, "{}", report["history"]);
    assert_eq!(report["history"]["lost_writes"], 0, "{}", report["history"]);
    assert!(report["history"]["operations"].as_u64().unwrap() > 100);
    assert!(report["figures"]["failover_s"].is_f64(), "{}", report["figures"]);
}
