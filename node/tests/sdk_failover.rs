//! The Rust SDK against a real three-node cluster while its leader goes
//! down: every write the SDK acknowledges survives, a retried write is never
//! applied twice, and the caller sees no error through the election.

mod common;

use common::TestCluster;
use safekeep_client::{Client, ClientConfig, Consistency};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sdk_writes_ride_through_a_leader_loss_without_loss_or_duplicates() {
    let mut cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.leader().await;
    let endpoints: Vec<String> = cluster.addresses.values().map(|a| a.client.to_string()).collect();
    let client = Client::connect(ClientConfig::new(endpoints))
        .await
        .expect("SDK connects");

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
