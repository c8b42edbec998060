//! The Rust SDK against a real three-node cluster while its leader goes
//! down: every write the SDK acknowledges survives, a retried write is never
//! applied twice, and the caller sees no error through the election.

mod common;

use common::TestCluster;
use safekeep_client::{Client, ClientConfig, Consistency};

/// A three-node cluster, its leader, and an SDK client over every node.
async fn cluster_and_sdk() -> (TestCluster, u64, Client) {
    let cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.leader().await;
    let endpoints: Vec<String> = cluster.addresses.values().map(|a| a.client.to_string()).collect();
    let client = Client::connect(ClientConfig::new(endpoints))
        .await
        .expect("SDK connects");
    (cluster, leader, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sdk_writes_ride_through_a_leader_loss_without_loss_or_duplicates() {
    let (mut cluster, leader, client) = cluster_and_sdk().await;

    let mut acked = Vec::new();
    for i in 0..40u64 {
        if i == 20 {
            cluster.stop(leader).await;
        }
        let key = format!("sdk-{i}");
        let outcome = client
            .put("acme", &key, key.clone().into_bytes())
            .await
            .unwrap_or_else(|e| panic!("write {i} failed through the election: {e}"));
        acked.push((key, outcome.version));
    }
    // Each write took exactly one log entry: versions strictly increase.
    assert!(acked.windows(2).all(|w| w[0].1 < w[1].1), "{acked:?}");
    for (key, version) in &acked {
        let record = client
            .get_with("acme", key, Consistency::Linearizable)
            .await
            .expect("read back")
            .expect("acknowledged record exists");
        assert_eq!((record.value.as_slice(), record.version), (key.as_bytes(), *version));
    }
    cluster.shutdown().await;
}

/// 64 tasks write through one cloned `Client`; returns each key with its acknowledged version.
async fn write_concurrently(client: &Client, round: &str) -> Vec<(String, u64)> {
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..64u64 {
        let client = client.clone();
        let key = format!("shared-{round}-{task}");
        tasks.spawn(async move {
            let outcome = client
                .put("acme", &key, key.clone().into_bytes())
                .await
                .unwrap_or_else(|e| panic!("write {key} through the shared client failed: {e}"));
            (key, outcome.version)
        });
    }
    let mut acked = Vec::new();
    while let Some(done) = tasks.join_next().await {
        acked.push(done.expect("a writer task"));
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_client_shared_by_64_tasks_applies_every_write_exactly_once() {
    let (mut cluster, leader, client) = cluster_and_sdk().await;

    let mut acked = write_concurrently(&client, "calm").await;
    // Again while the leader is gone, so retries of in-flight writes overlap.
    let (_, during_election) = tokio::join!(cluster.stop(leader), write_concurrently(&client, "election"));
    acked.extend(during_election);

    assert_eq!(acked.len(), 128);
    let mut versions: Vec<u64> = acked.iter().map(|(_, version)| *version).collect();
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(versions.len(), 128, "each write took its own log entry");
    for (key, version) in &acked {
        let record = client
            .get("acme", key)
            .await
            .expect("read back")
            .unwrap_or_else(|| panic!("acknowledged write {key} was applied"));
        assert_eq!((record.value.as_slice(), record.version), (key.as_bytes(), *version));
    }
    cluster.shutdown().await;
}

/// Writes `count` records one at a time; returns the node that answered each.
async fn answering_nodes(client: &Client, round: &str, count: u64) -> Vec<u64> {
    let mut answered_by = Vec::new();
    for i in 0..count {
        let key = format!("routed-{round}-{i}");
        client
            .put("acme", &key, key.clone().into_bytes())
            .await
            .unwrap_or_else(|e| panic!("write {key} failed: {e}"));
        let header = client.last_response_header().expect("a response header");
        answered_by.push(header.node_id);
    }
    answered_by
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_go_straight_to_the_leader_and_follow_it_when_it_moves() {
    // Round robin would send two writes in three to a follower, which forwards them.
    const WARM_UP: u64 = 6;
    const ROUTED: u64 = 20;
    let (mut cluster, leader, client) = cluster_and_sdk().await;

    let answered_by = answering_nodes(&client, "first", WARM_UP + ROUTED).await;
    let routed = &answered_by[WARM_UP as usize..];
    assert!(
        routed.iter().all(|&node| node == leader),
        "leader {leader}: {answered_by:?}"
    );

    cluster.stop(leader).await;
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, leader);
    let answered_by = answering_nodes(&client, "second", WARM_UP + ROUTED).await;
    let routed = &answered_by[WARM_UP as usize..];
    assert!(
        routed.iter().all(|&node| node == new_leader),
        "new leader {new_leader}: {answered_by:?}"
    );
    cluster.shutdown().await;
}
