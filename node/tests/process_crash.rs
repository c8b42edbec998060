//! Real node processes killed with SIGKILL: the leader dies mid-workload,
//! writes resume on a new leader, no acknowledged write is lost, and the
//! killed node restarts from its own disk and catches up.

mod common;

use std::path::Path;
use std::time::Instant;

use common::{eventually, free_base_port, get, get_stale, put, put_acked};
use safekeep_api::v1::StatusRequest;
use safekeep_api::v1::cluster_client::ClusterClient;
use safekeep_api::v1::records_client::RecordsClient;
use safekeep_node::config::{InitialMember, PartialConfig};
use safekeep_node::local_cluster::{node_config, plan};
use tokio::process::Child;
use tonic::transport::Channel;

/// Three node processes on loopback, started, with the leader they agree on.
struct ThreeProcesses {
    members: Vec<InitialMember>,
    configs: Vec<PartialConfig>,
    children: Vec<(u64, Child)>,
    leader: u64,
}

/// Writes three nodes' configs under `dir` and starts them, the initializer
/// last, then waits until all three name the same leader.
async fn start_three_processes(dir: &Path) -> ThreeProcesses {
    let base = free_base_port();
    let members = plan(3, base).unwrap();
    let mut configs = Vec::new();
    for member in &members {
        let node_dir = dir.join(format!("node-{}", member.id));
        std::fs::create_dir_all(&node_dir).unwrap();
        let config = node_config(member, &members, &node_dir, base, None);
        std::fs::write(node_dir.join("node.toml"), toml::to_string(&config).unwrap()).unwrap();
        configs.push(config);
    }
    let mut children = Vec::new();
    for member in members.iter().rev() {
        let node_dir = dir.join(format!("node-{}", member.id));
        children.push((
            member.id,
            spawn_node(&node_dir.join("node.toml"), &node_dir.join("node.log")),
        ));
    }
    let address = |id: u64| members[(id - 1) as usize].client_address.clone();
    let leader = eventually("a leader", || async {
        let seen: Vec<Option<u64>> =
            futures::future::join_all((1..=3).map(|id| leader_seen_by_owned(address(id)))).await;
        let first = seen[0]?;
        seen.iter().all(|s| *s == Some(first)).then_some(first)
    })
    .await;
    ThreeProcesses {
        members,
        configs,
        children,
        leader,
    }
}

fn spawn_node(config: &Path, log: &Path) -> Child {
    common::spawn_node(config, log, "info")
}

async fn leader_seen_by(address: &str) -> Option<u64> {
    let mut client = ClusterClient::connect(format!("http://{address}")).await.ok()?;
    let status = client.status(StatusRequest {}).await.ok()?.into_inner();
    status.header.map(|h| h.leader_id).filter(|id| *id != 0)
}

async fn records(address: &str) -> RecordsClient<Channel> {
    RecordsClient::connect(format!("http://{address}")).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_leader_process_loses_no_acknowledged_write() {
    let dir = tempfile::TempDir::new().unwrap();
    let ThreeProcesses {
        members,
        mut children,
        leader,
        ..
    } = start_three_processes(dir.path()).await;
    let address = |id: u64| members[(id - 1) as usize].client_address.clone();
    let survivor = (1..=3).find(|id| *id != leader).unwrap();

    let mut client = records(&address(survivor)).await;
    let mut acked = Vec::new();
    for i in 0..30u64 {
        let key = format!("k{i}");
        acked.push((
            key.clone(),
            put_acked(&mut client, put("acme", &key, key.as_bytes(), "crash", i)).await,
        ));
    }

    let (_, leader_process) = children.iter_mut().find(|(id, _)| *id == leader).unwrap();
    leader_process.start_kill().expect("SIGKILL the leader");
    leader_process.wait().await.unwrap();
    let killed_at = Instant::now();
    let key = "first-after-kill".to_string();
    acked.push((
        key.clone(),
        put_acked(&mut client, put("acme", &key, b"v", "crash", 100)).await,
    ));
    println!(
        "first write acknowledged {:?} after SIGKILL of the leader",
        killed_at.elapsed()
    );
    for i in 101..130u64 {
        let key = format!("k{i}");
        acked.push((
            key.clone(),
            put_acked(&mut client, put("acme", &key, key.as_bytes(), "crash", i)).await,
        ));
    }
    for (key, version) in &acked {
        let record = client
            .get(get("acme", key))
            .await
            .expect("acknowledged write")
            .into_inner()
            .record
            .unwrap();
        assert_eq!(record.version, *version, "{key}");
    }

    // The killed node restarts from its own disk and catches up.
    let node_dir = dir.path().join(format!("node-{leader}"));
    let restarted = spawn_node(&node_dir.join("node.toml"), &node_dir.join("node-restarted.log"));
    children.retain(|(id, _)| *id != leader);
    children.push((leader, restarted));
    let last_version = acked.iter().map(|(_, v)| *v).max().unwrap();
    let restarted_address = address(leader);
    eventually("the restarted node caught up", || {
        let address = restarted_address.clone();
        async move {
            let mut client = ClusterClient::connect(format!("http://{address}")).await.ok()?;
            let status = client.status(StatusRequest {}).await.ok()?.into_inner();
            (status.applied_index >= last_version).then_some(())
        }
    })
    .await;
    let mut on_restarted = records(&restarted_address).await;
    for (key, version) in &acked {
        let record = on_restarted
            .get(get_stale("acme", key))
            .await
            .unwrap()
            .into_inner()
            .record
            .unwrap();
        assert_eq!(record.version, *version, "{key} on the restarted node");
    }
    for (_, child) in &mut children {
        let _ = child.start_kill();
    }
}

async fn leader_seen_by_owned(address: String) -> Option<u64> {
    leader_seen_by(&address).await
}

/// Reads one counter from a node's `/metrics` (0 when it has no such series yet).
async fn counter(http: std::net::SocketAddr, series: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{http}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(
        text.lines()
            .filter(|line| line.starts_with(series))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_restarted_on_an_emptied_data_directory_is_refused_and_the_cluster_serves() {
    let dir = tempfile::TempDir::new().unwrap();
    let ThreeProcesses {
        members,
        configs,
        mut children,
        leader,
    } = start_three_processes(dir.path()).await;
    let address = |id: u64| members[(id - 1) as usize].client_address.clone();
    let mut client = records(&address(leader)).await;
    for i in 0..10u64 {
        put_acked(&mut client, put("acme", &format!("k{i}"), b"v", "wipe", i)).await;
    }

    // A follower's disk is emptied while it is down; it restarts with its old config.
    let wiped = (1..=3).find(|id| *id != leader).unwrap();
    let config = &configs[(wiped - 1) as usize];
    let (_, process) = children.iter_mut().find(|(id, _)| *id == wiped).unwrap();
    process.start_kill().expect("SIGKILL");
    process.wait().await.unwrap();
    std::fs::remove_dir_all(config.data_dir.as_ref().unwrap()).unwrap();
    let node_dir = dir.path().join(format!("node-{wiped}"));
    let log = node_dir.join("node-wiped.log");
    let restarted = spawn_node(&node_dir.join("node.toml"), &log);
    children.retain(|(id, _)| *id != wiped);
    children.push((wiped, restarted));

    // It refuses what the leader sends to the node it no longer is, and says why.
    let http = config.http_listen.unwrap();
    let series = "safekeep_peer_incarnation_refusals_total{reason=\"this_node_replaced\"";
    eventually(
        "the wiped node refuses calls addressed to its old incarnation",
        || async { counter(http, series).await.filter(|n| *n > 0.0) },
    )
    .await;
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("data directory was emptied"), "{logged}");
    // The leader counts the refusals too, so an alert on the healthy nodes sees them.
    let leader_http = configs[(leader - 1) as usize].http_listen.unwrap();
    let series = "safekeep_peer_incarnation_refusals_total{reason=\"target_replaced\"";
    eventually("the leader counts the wiped node's refusals", || async {
        counter(leader_http, series).await.filter(|n| *n > 0.0)
    })
    .await;

    // The cluster keeps serving on the other two, and the wiped node took no entries.
    for i in 10..20u64 {
        put_acked(&mut client, put("acme", &format!("k{i}"), b"v", "wipe", i)).await;
    }
    let mut wiped_cluster = ClusterClient::connect(format!("http://{}", address(wiped)))
        .await
        .unwrap();
    let status = wiped_cluster.status(StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(
        status.applied_index, 0,
        "the wiped node applied entries under its old id"
    );
    assert!(
        status.members.is_empty(),
        "the wiped node learned the membership: {:?}",
        status.members
    );
    for (_, child) in &mut children {
        let _ = child.start_kill();
    }
}
