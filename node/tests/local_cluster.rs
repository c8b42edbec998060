//! The README's main command as a user runs it: `safekeep-node local-cluster`
//! starts three node processes in zones a, b, c, writes cluster.json, serves
//! through every node, keeps serving and restarts a node that is killed, and
//! stops every node on Ctrl-C.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{TlsFiles, eventually, free_base_port, get, keyed, put, tls_channel};
use safekeep_api::v1::records_client::RecordsClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_cluster_runs_three_zones_backs_up_and_stops_cleanly_on_ctrl_c() {
    let dir = tempfile::TempDir::new().unwrap();
    let base = free_base_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_safekeep-node"))
        .args(["local-cluster", "--dir"])
        .arg(dir.path())
        .args(["--base-port", &base.to_string()])
        .arg("--backup-target")
        .arg(format!("file://{}", dir.path().join("backups").display()))
        .args(["--backup-archive-interval", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start local-cluster");

    let manifest = dir.path().join("cluster.json");
    let nodes: serde_json::Value = eventually("cluster.json", || async {
        let text = std::fs::read_to_string(&manifest).ok()?;
        serde_json::from_str(&text).ok()
    })
    .await;
    let nodes = nodes["nodes"].as_array().expect("nodes").clone();
    let zones: Vec<&str> = nodes.iter().map(|n| n["zone"].as_str().unwrap()).collect();
    assert_eq!(zones, ["a", "b", "c"]);
    for node in &nodes {
        for field in ["id", "pid", "client_address", "http_address", "data_dir"] {
            assert!(!node[field].is_null(), "cluster.json lacks {field}: {node}");
        }
    }

    // TLS is on by default: a plaintext client gets nowhere.
    let tls: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let tls = &tls["tls"];
    let path = |field: &str| std::path::PathBuf::from(tls[field].as_str().expect("cluster.json names TLS files"));
    let credentials = TlsFiles {
        ca: path("ca"),
        identity: Some((path("cert"), path("key"))),
    };
    let first_address = nodes[0]["client_address"].as_str().unwrap();
    let mut plaintext = RecordsClient::connect(format!("http://{first_address}")).await.unwrap();
    assert!(plaintext.put(put("acme", "hello", b"plain", "lc", 0)).await.is_err());

    // The first run made tenant acme and an admin key for it.
    let api_key = std::fs::read_to_string(dir.path().join("acme.api-key")).expect("the local API key file");
    let api_key = api_key.trim().to_string();

    // Write through node 1, read through node 3.
    let first = first_address.to_string();
    let third = nodes[2]["client_address"].as_str().unwrap();
    let version = eventually("a write through node 1", || async {
        let mut client = RecordsClient::new(tls_channel(&first, &credentials).await.ok()?);
        client
            .put(keyed(put("acme", "hello", b"world", "lc", 1), &api_key))
            .await
            .ok()
            .map(|r| r.into_inner().version)
    })
    .await;
    let mut reader = RecordsClient::new(tls_channel(third, &credentials).await.unwrap());
    let record = reader
        .get(keyed(get("acme", "hello"), &api_key))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(
        (record.value.as_slice(), record.version),
        (b"world".as_slice(), version)
    );

    // With --backup-target the nodes back up: a first full backup, then a
    // write made after it shipped in a log segment within the archive interval.
    let backups = dir.path().join("backups");
    let listed = |sub: &str| std::fs::read_dir(backups.join(sub)).map_or(0, |entries| entries.count());
    eventually("a first full backup", || async { (listed("full") > 0).then_some(()) }).await;
    let mut writer = RecordsClient::new(tls_channel(&first, &credentials).await.unwrap());
    writer
        .put(keyed(put("acme", "after-backup", b"shipped", "lc", 2), &api_key))
        .await
        .expect("a write after the full backup");
    eventually("the write shipped in a segment", || async {
        (listed("archive") > 0).then_some(())
    })
    .await;

    // Ctrl-C stops every node process and the runner exits cleanly.
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("local-cluster stops within 30 s")
        .unwrap();
    assert!(status.success(), "local-cluster exit status {status}");
    for node in &nodes {
        let pid = nix::unistd::Pid::from_raw(node["pid"].as_i64().unwrap() as i32);
        let gone = nix::sys::signal::kill(pid, None).is_err()
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "));
        assert!(gone, "node process {pid} still running");
    }
}

#[test]
fn completions_and_the_man_page_print_without_a_config() {
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_safekeep-node"))
            .args(args)
            .env_remove("SAFEKEEP_CONFIG")
            .output()
            .expect("run safekeep-node");
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8")
    };
    for (shell, marker) in [("zsh", "#compdef safekeep-node"), ("fish", "complete -c safekeep-node")] {
        let script = run(&["completions", shell]);
        assert!(
            script.contains(marker) && script.contains("local-cluster"),
            "{shell}: {script}"
        );
    }
    // bash reads the script and completes safekeep-node with it.
    let script = run(&["completions", "bash"]);
    assert!(script.contains("local-cluster"), "{script}");
    let mut bash = std::process::Command::new("bash")
        .args(["--norc", "-c", "source /dev/stdin && complete -p safekeep-node"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run bash");
    std::io::Write::write_all(&mut bash.stdin.take().unwrap(), script.as_bytes()).unwrap();
    let registered = bash.wait_with_output().unwrap();
    assert!(
        registered.status.success() && String::from_utf8_lossy(&registered.stdout).contains("safekeep-node"),
        "bash did not register the completion: {registered:?}"
    );
    let page = run(&["man"]);
    assert!(
        page.contains(".TH safekeep-node 1") && page.contains("log\\-format"),
        "{page}"
    );
}

#[test]
fn flags_override_the_config_file_and_a_foreign_data_dir_stops_the_process() {
    let dir = tempfile::TempDir::new().unwrap();
    let base = free_base_port();
    let members = safekeep_node::local_cluster::plan(1, base).unwrap();
    let mut config = safekeep_node::local_cluster::node_config(&members[0], &members, dir.path(), base, None);
    let any_port: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    (config.client_listen, config.peer_listen, config.http_listen) = (Some(any_port), Some(any_port), Some(any_port));
    let path = dir.path().join("node.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();

    // A data dir stamped for node 1 ...
    let data_dir = dir.path().join("data");
    drop(
        safekeep_node::storage::Store::open(&data_dir, 1, "safekeep", safekeep_node::storage::LogSync::Inline).unwrap(),
    );
    // ... refused to the node the --id flag makes this one, whatever the file says.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_safekeep-node"))
        .args(["run", "--config"])
        .arg(&path)
        .args([
            "--id",
            "7",
            "--init-member",
            &format!("7,a,127.0.0.1:{},127.0.0.1:{}", base + 101, base + 1),
        ])
        .output()
        .expect("run safekeep-node");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("belongs to node 1") && stderr.contains("this node is 7"),
        "unexpected message: {stderr}"
    );
}

/// A running `safekeep-node local-cluster` and every line it has printed.
struct Runner {
    child: tokio::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    dir: tempfile::TempDir,
}

impl Runner {
    async fn start(extra: &[&str]) -> Self {
        use tokio::io::AsyncBufReadExt;
        let dir = tempfile::TempDir::new().unwrap();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_safekeep-node"))
            .args(["local-cluster", "--dir"])
            .arg(dir.path())
            .args(["--base-port", &free_base_port().to_string()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start local-cluster");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let sink = lines.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, lines, dir }
    }

    /// `cluster.json` once it is written.
    async fn manifest(&self) -> serde_json::Value {
        let path = self.dir.path().join("cluster.json");
        eventually("cluster.json", || async {
            serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()
        })
        .await
    }

    async fn printed(&self, what: &str) {
        eventually(what, || async {
            self.lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(what))
                .then_some(())
        })
        .await;
    }

    fn credentials(manifest: &serde_json::Value) -> TlsFiles {
        let path = |field: &str| std::path::PathBuf::from(manifest["tls"][field].as_str().unwrap());
        TlsFiles {
            ca: path("ca"),
            identity: Some((path("cert"), path("key"))),
        }
    }

    fn api_key(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("acme.api-key"))
            .unwrap()
            .trim()
            .to_string()
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id().unwrap() as i32);
        nix::sys::signal::kill(pid, signal).unwrap();
    }

    /// Ctrl-C, and the runner exits cleanly.
    async fn stop(mut self) {
        self.signal(nix::sys::signal::Signal::SIGINT);
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("local-cluster stops within 30 s")
            .unwrap();
        assert!(status.success(), "local-cluster exit status {status}");
    }
}

/// Node `id`'s entry in `cluster.json`.
fn entry(manifest: &serde_json::Value, id: u64) -> &serde_json::Value {
    let nodes = manifest["nodes"].as_array().expect("cluster.json lists nodes");
    nodes
        .iter()
        .find(|n| n["id"] == id)
        .expect("cluster.json names the node")
}

fn pid_of(manifest: &serde_json::Value, id: u64) -> i32 {
    entry(manifest, id)["pid"].as_i64().unwrap() as i32
}

fn address_of(manifest: &serde_json::Value, id: u64) -> String {
    entry(manifest, id)["client_address"].as_str().unwrap().to_string()
}

/// Puts `key` through `address` until it is acknowledged (one write id, so
/// every retry is the same write).
async fn put_until_acknowledged(address: &str, credentials: &TlsFiles, api_key: &str, key: &str, request_id: u64) {
    eventually(&format!("{key} acknowledged through {address}"), || async {
        let mut client = RecordsClient::new(tls_channel(address, credentials).await.ok()?);
        client
            .put(keyed(put("acme", key, key.as_bytes(), "lc-kill", request_id), api_key))
            .await
            .ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_leaves_the_others_serving_and_the_node_comes_back() {
    let runner = Runner::start(&["--restart-after", "1"]).await;
    let manifest = runner.manifest().await;
    let credentials = Runner::credentials(&manifest);
    let api_key = runner.api_key();
    let leader = eventually("a leader", || async {
        let channel = tls_channel(&address_of(&manifest, 1), &credentials).await.ok()?;
        let status = safekeep_api::v1::cluster_client::ClusterClient::new(channel)
            .status(safekeep_api::v1::StatusRequest {})
            .await
            .ok()?;
        let leader = status.into_inner().header?.leader_id;
        (leader != 0).then_some(leader)
    })
    .await;
    let survivor = (1..=3).find(|id| *id != leader).unwrap();
    put_until_acknowledged(&address_of(&manifest, survivor), &credentials, &api_key, "before", 1).await;

    let old_pid = pid_of(&manifest, leader);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(old_pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    runner.printed(&format!("node {leader} exited")).await;
    // The others elect a leader and keep taking writes.
    put_until_acknowledged(&address_of(&manifest, survivor), &credentials, &api_key, "after", 2).await;

    // It is started again, cluster.json names its new pid, and it has caught up.
    runner.printed(&format!("node {leader} restarted")).await;
    let manifest = runner.manifest().await;
    let new_pid = pid_of(&manifest, leader);
    assert_ne!(new_pid, old_pid, "cluster.json still names the killed process");
    assert!(
        std::path::Path::new(&format!("/proc/{new_pid}")).exists(),
        "pid {new_pid} is not running"
    );
    let restarted = address_of(&manifest, leader);
    eventually("the restarted node serves the write made while it was down", || async {
        let mut client = RecordsClient::new(tls_channel(&restarted, &credentials).await.ok()?);
        let record = client
            .get(keyed(get("acme", "after"), &api_key))
            .await
            .ok()?
            .into_inner()
            .record?;
        (record.value == b"after").then_some(())
    })
    .await;
    runner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_exited_stays_down_until_sighup_restarts_it() {
    let runner = Runner::start(&["--nodes", "1"]).await;
    let manifest = runner.manifest().await;
    let old_pid = pid_of(&manifest, 1);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(old_pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    runner.printed("node 1 exited").await;
    runner.printed("restart it with: kill -HUP").await;
    assert_eq!(
        pid_of(&runner.manifest().await, 1),
        old_pid,
        "restarted without being asked"
    );

    runner.signal(nix::sys::signal::Signal::SIGHUP);
    runner.printed("node 1 restarted").await;
    let manifest = runner.manifest().await;
    assert_ne!(pid_of(&manifest, 1), old_pid);
    let credentials = Runner::credentials(&manifest);
    put_until_acknowledged(&address_of(&manifest, 1), &credentials, &runner.api_key(), "back", 1).await;
    runner.stop().await;
}
