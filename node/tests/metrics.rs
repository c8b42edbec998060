//! The metrics the alert rules in `deploy/prometheus` stand on, scraped from
//! real node processes with TLS on (one process each, so every /metrics is
//! one node's): each node names its cluster and zone and tells when its
//! certificate expires from the start, the leader counts the voters that
//! answer it and notices one that stops, and every node reports the free
//! space of its data directory. Every node's /metrics passes `promtool
//! check metrics` (help text for every family, units and suffixes as
//! Prometheus names them).

mod common;

use common::{eventually, free_base_port, issue_test_certs, test_raft_settings};
use safekeep_node::crypto::MasterKeyFile;
use safekeep_node::local_cluster::{node_config, node_tls, plan};

/// Cluster name the test nodes stamp into their data and label their metrics with.
const CLUSTER: &str = "metrics-test";
/// Set (to anything) to fail instead of skipping the promtool check when
/// promtool is not installed; scripts/test.sh sets it after installing it.
const REQUIRE_PROMTOOL_ENV: &str = "SAFEKEEP_REQUIRE_PROMTOOL";

/// What `promtool check metrics` says about an exposition: `None` when
/// promtool is not installed and not required, else its complaints (empty
/// when it has none and exits 0).
fn promtool_complaints(text: &str) -> Option<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os(REQUIRE_PROMTOOL_ENV).is_none(),
                "{REQUIRE_PROMTOOL_ENV} is set but promtool is not installed (scripts/check-observability.sh installs it)"
            );
            eprintln!("promtool is not installed: skipping `promtool check metrics`");
            return None;
        }
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let output = child.wait_with_output().expect("promtool's verdict");
    let mut said = String::from_utf8_lossy(&output.stdout).into_owned();
    said.push_str(&String::from_utf8_lossy(&output.stderr));
    if !output.status.success() && said.trim().is_empty() {
        said = format!("promtool exited with {}", output.status);
    }
    Some(said.trim().to_string())
}

/// Values of `name`'s samples in a Prometheus text exposition, with their label text.
fn samples<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    text.lines().filter_map(move |line| {
        let (series, value) = line.rsplit_once(' ')?;
        let labels = match series.strip_prefix(name)? {
            "" => "",
            rest if rest.starts_with('{') => rest,
            _ => return None,
        };
        Some((labels, value.parse().ok()?))
    })
}

/// The value of an unlabelled metric.
fn value(text: &str, name: &str) -> Option<f64> {
    samples(text, name)
        .find(|(labels, _)| labels.is_empty())
        .map(|(_, v)| v)
}

async fn scrape(http_address: &str) -> Option<String> {
    reqwest::get(format!("http://{http_address}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_info_voters_reachability_and_disk_space_appear_on_real_nodes() {
    let dir = tempfile::TempDir::new().unwrap();
    let base = free_base_port();
    let members = plan(3, base).unwrap();
    let certs = dir.path().join("certs");
    issue_test_certs(&certs, members.iter().map(|m| m.id));
    let master_keys = dir.path().join("master.keys");
    MasterKeyFile::generate(&master_keys, "k1").unwrap();
    let mut children = Vec::new();
    for member in &members {
        let node_dir = dir.path().join(format!("node-{}", member.id));
        std::fs::create_dir_all(&node_dir).unwrap();
        let mut config = node_config(member, &members, &node_dir, base, Some(node_tls(&certs, member.id)));
        config.encryption.master_key_file = Some(master_keys.clone());
        config.cluster_name = Some(CLUSTER.to_string());
        config.raft = test_raft_settings();
        let path = node_dir.join("node.toml");
        std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
        children.push((member.id, common::spawn_node(&path, &node_dir.join("node.log"), "info")));
    }
    let http = |id: u64| format!("127.0.0.1:{}", base + 200 + id as u16);

    let leader = eventually("a leader that reaches all three voters", || async {
        for id in 1..=3 {
            let text = scrape(&http(id)).await?;
            if value(&text, "safekeep_raft_is_leader") == Some(1.0)
                && value(&text, "safekeep_raft_voters_reachable") == Some(3.0)
            {
                return Some(id);
            }
        }
        None
    })
    .await;

    for member in &members {
        let text = eventually("disk space on every node", || async {
            let text = scrape(&http(member.id)).await?;
            value(&text, "safekeep_data_dir_total_bytes").is_some().then_some(text)
        })
        .await;
        if let Some(complaints) = promtool_complaints(&text) {
            assert!(
                complaints.is_empty(),
                "promtool check metrics on node {}:\n{complaints}\n--- /metrics:\n{text}",
                member.id
            );
        }
        let info: Vec<(&str, f64)> = samples(&text, "safekeep_node_info").collect();
        assert_eq!(info.len(), 1, "one info series per node: {info:?}");
        let (labels, one) = info[0];
        for label in [
            format!("cluster=\"{CLUSTER}\""),
            format!("node_id=\"{}\"", member.id),
            format!("zone=\"{}\"", member.zone),
        ] {
            assert!(
                labels.contains(&label),
                "node {} info {labels} lacks {label}",
                member.id
            );
        }
        assert_eq!(one, 1.0);
        assert_eq!(value(&text, "safekeep_raft_voters"), Some(3.0), "node {}", member.id);
        if member.id != leader {
            assert_eq!(
                value(&text, "safekeep_raft_voters_reachable"),
                Some(0.0),
                "follower {}",
                member.id
            );
        }
        // The test certificates are valid for a day.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let not_after = value(&text, "safekeep_tls_cert_not_after_seconds").expect("certificate expiry from the start");
        assert!(
            now < not_after && not_after <= now + 2.0 * 86_400.0,
            "node {}: not after {not_after}",
            member.id
        );
        let free = value(&text, "safekeep_data_dir_free_bytes").expect("free bytes");
        let total = value(&text, "safekeep_data_dir_total_bytes").expect("total bytes");
        assert!(
            free > 0.0 && free <= total,
            "node {}: free {free} of {total}",
            member.id
        );
    }

    // A voter that stops answering drops out of the leader's count; the membership stays.
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let (_, process) = children.iter_mut().find(|(id, _)| *id == follower).unwrap();
    process.start_kill().expect("SIGKILL a follower");
    process.wait().await.unwrap();
    eventually("the leader to count two reachable voters of three", || async {
        let text = scrape(&http(leader)).await?;
        (value(&text, "safekeep_raft_voters_reachable") == Some(2.0)
            && value(&text, "safekeep_raft_voters") == Some(3.0))
        .then_some(())
    })
    .await;

    for (_, mut child) in children {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}
