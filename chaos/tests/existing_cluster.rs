//! A drill against a cluster the drill did not start, as an SRE runs one
//! against staging: the quick-start cluster (`safekeep-node local-cluster`)
//! plays the cluster elsewhere, the fault comes from the hooks (SIGKILL of
//! one node, then SIGHUP so local-cluster restarts it), and the same
//! workload, checker, watch and report run through `--endpoints` with the
//! operator's certificate. The replica check the drill ends with is then
//! shown to fail on the same cluster, against a record it holds newer.

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
    let report = common::passed_report(&dir, &output);
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
    assert_eq!(report["history"]["replicas_agree"], true, "{}", report["history"]);

    let api_key = std::fs::read_to_string(manifest_path.with_file_name("acme.api-key")).expect("the quick start's key");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(the_replica_check_can_fail(&endpoints, &tls("ca"), api_key.trim()));
}

/// The replica check reports a node that holds other than what it is told
/// the cluster holds, and passes once told the truth.
async fn the_replica_check_can_fail(endpoints: &[&str], ca: &str, api_key: &str) {
    use safekeep_chaos::converge::check_node;
    use safekeep_client::{ApiKey, Client, ClientConfig, ClientTls};
    let connect = |endpoints: Vec<String>| async move {
        let mut config = ClientConfig::new(endpoints);
        config.tls = Some(ClientTls {
            ca_pem: std::fs::read(ca).unwrap(),
            identity: None,
            server_name: None,
        });
        config.api_key = Some(ApiKey::new(api_key).unwrap());
        Client::connect(config).await.unwrap()
    };
    let writer = connect(endpoints.iter().map(|e| e.to_string()).collect()).await;
    let first = writer.put("acme", "converge-probe", b"first".to_vec()).await.unwrap();
    let second = writer.put("acme", "converge-probe", b"second".to_vec()).await.unwrap();
    let clients = [("acme".to_string(), connect(vec![endpoints[2].to_string()]).await)].into();
    let told = |value: &[u8], version: u64| {
        [(
            ("acme".to_string(), "converge-probe".to_string()),
            Some((value.to_vec(), version)),
        )]
        .into()
    };
    // Node 3 may apply the second write after it was acknowledged: first it
    // comes to hold it, then a cluster said to hold the older record is
    // one it diverges from.
    let right = check_node(3, &clients, &told(b"second", second.version), Duration::from_secs(20)).await;
    assert_eq!(right, None, "node 3 comes to hold what the cluster holds");
    let wrong = check_node(3, &clients, &told(b"first", first.version), Duration::from_secs(1))
        .await
        .expect("a node holding a newer record diverges from a cluster said to hold the older");
    assert!(wrong.to_string().contains("second"), "{wrong}");
}
