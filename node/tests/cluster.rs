//! A three-node cluster in three zones: replication through every node, a
//! leader crash with no acknowledged write lost, restart from disk, a wiped
//! node replaced through a snapshot, a whole-cluster restart, the zone
//! placement guard, readiness as a load balancer sees it, and membership
//! changes acknowledged only once committed.

mod common;

use std::time::Duration;

use common::{TestCluster, WAIT, eventually, get, get_stale, put, put_acked};
use safekeep_api::v1::{AddLearnerRequest, PromoteRequest, RemoveMemberRequest, ReplaceVoterRequest};

const TENANT: &str = "acme";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_and_linearizable_reads_work_through_every_node() {
    let cluster = TestCluster::start(3, |_| {}).await;
    cluster.leader().await;
    for writer in 1..=3u64 {
        let key = format!("written-via-{writer}");
        let mut client = cluster.records(writer).await;
        let version = put_acked(&mut client, put(TENANT, &key, key.as_bytes(), "c1", writer)).await;
        // A linearizable read through any node sees the write at once.
        for reader in 1..=3u64 {
            let record = cluster
                .records(reader)
                .await
                .get(get(TENANT, &key))
                .await
                .expect("linearizable get")
                .into_inner()
                .record
                .expect("record");
            assert_eq!(record.value, key.as_bytes(), "read via node {reader}");
            assert_eq!(record.version, version);
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_crash_loses_no_acknowledged_write_and_the_node_catches_up_after_restart() {
    let mut cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.leader().await;
    let survivor = (1..=3).find(|id| *id != leader).unwrap();
    let mut acked = Vec::new();
    let mut client = cluster.records(survivor).await;
    for i in 0..20u64 {
        let key = format!("before-{i}");
        put_acked(&mut client, put(TENANT, &key, key.as_bytes(), "c2", i)).await;
        acked.push(key);
    }

    cluster.stop(leader).await;
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, leader);
    for i in 20..40u64 {
        let key = format!("after-{i}");
        put_acked(&mut client, put(TENANT, &key, key.as_bytes(), "c2", i)).await;
        acked.push(key);
    }
    for key in &acked {
        let record = client
            .get(get(TENANT, key))
            .await
            .expect("acked write readable")
            .into_inner();
        assert_eq!(record.record.unwrap().value, key.as_bytes());
    }

    // The crashed node recovers from its own disk and catches up.
    cluster.restart(leader).await;
    let target = cluster.nodes[&new_leader].consensus().view().applied_index;
    cluster.wait_applied(leader, target).await;
    let mut restarted = cluster.records(leader).await;
    for key in &acked {
        let record = restarted
            .get(get_stale(TENANT, key))
            .await
            .expect("stale read on restarted node");
        assert_eq!(record.into_inner().record.unwrap().value, key.as_bytes());
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_node_is_replaced_and_the_replacement_catches_up_by_snapshot() {
    let mut cluster = TestCluster::start(3, |c| {
        c.raft.snapshot_threshold = 20;
        c.raft.logs_kept_after_snapshot = 0;
    })
    .await;
    let leader = cluster.leader().await;
    let mut client = cluster.records(leader).await;
    for i in 0..60u64 {
        let key = format!("k-{i:03}");
        put_acked(&mut client, put(TENANT, &key, key.as_bytes(), "c3", i)).await;
    }
    let lost = (1..=3).find(|id| *id != leader).unwrap();
    let lost_zone = common::zone_of(lost);
    cluster.stop(lost).await;
    std::fs::remove_dir_all(&cluster.configs[&lost].data_dir).expect("wipe node data");

    // The leader's log no longer starts at 1: a newcomer can only catch up by snapshot.
    eventually("a snapshot on the leader", || async {
        cluster.nodes[&leader]
            .consensus()
            .view()
            .snapshot_index
            .filter(|i| *i > 1)
    })
    .await;
    cluster
        .join(4, &lost_zone, leader, |c| {
            c.raft.snapshot_threshold = 20;
            c.raft.logs_kept_after_snapshot = 0;
        })
        .await;
    let target = cluster.nodes[&leader].consensus().view().applied_index;
    cluster.wait_applied(4, target).await;
    assert!(
        cluster.nodes[&4].consensus().view().snapshot_index.is_some(),
        "the replacement installed a snapshot"
    );
    let mut replacement = cluster.records(4).await;
    for i in 0..60u64 {
        let key = format!("k-{i:03}");
        let record = replacement
            .get(get_stale(TENANT, &key))
            .await
            .expect("replacement holds the record");
        assert_eq!(record.into_inner().record.unwrap().value, key.as_bytes());
    }
    // Its zone would hold two of four voters, so it stays a learner; the
    // guard also refuses to drop to two voters in two zones.
    let mut admin = cluster.cluster(leader).await;
    let refused = admin
        .remove_member(RemoveMemberRequest {
            node_id: lost,
            force: false,
        })
        .await
        .expect_err("two voters in two zones are refused");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused}");
    // One joint change swaps the wiped node for its replacement.
    let status = admin
        .replace_voter(ReplaceVoterRequest {
            old_node_id: lost,
            new_node_id: 4,
            force: false,
        })
        .await
        .expect("replace the wiped node")
        .into_inner();
    let ids: Vec<u64> = status.members.iter().map(|m| m.id).collect();
    assert!(!ids.contains(&lost) && ids.contains(&4), "members now {ids:?}");
    let voter_4 = status.members.iter().find(|m| m.id == 4).unwrap();
    assert_eq!(
        voter_4.role,
        safekeep_api::v1::Role::Voter as i32,
        "the replacement votes"
    );
    put_acked(&mut client, put(TENANT, "after-replacement", b"v", "c3", 1000)).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_whole_cluster_restart_keeps_every_acknowledged_record() {
    let mut cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.leader().await;
    let mut client = cluster.records(leader).await;
    let mut versions = Vec::new();
    for i in 0..30u64 {
        let key = format!("durable-{i}");
        versions.push((
            key.clone(),
            put_acked(&mut client, put(TENANT, &key, key.as_bytes(), "c4", i)).await,
        ));
    }
    for id in 1..=3 {
        cluster.stop(id).await;
    }
    for id in 1..=3 {
        cluster.restart(id).await;
    }
    let leader = cluster.leader().await;
    let mut client = cluster.records(leader).await;
    for (key, version) in versions {
        let record = eventually("a read after restart", || {
            let mut client = client.clone();
            let key = key.clone();
            async move { client.get(get(TENANT, &key)).await.ok() }
        })
        .await
        .into_inner()
        .record
        .unwrap();
        assert_eq!((record.value.as_slice(), record.version), (key.as_bytes(), version));
    }
    // And it keeps taking writes.
    put_acked(&mut client, put(TENANT, "after-restart", b"v", "c4", 100)).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_placement_guard_refuses_voter_sets_that_one_zone_loss_would_stop() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.leader().await;
    // Node 4 lives in zone a, beside node 1.
    let (client, peer) = ("127.0.0.1:1", "127.0.0.1:2");
    let mut admin = cluster.cluster((leader % 3) + 1).await;
    admin
        .add_learner(AddLearnerRequest {
            node_id: 4,
            zone: "a".into(),
            peer_address: peer.into(),
            client_address: client.into(),
        })
        .await
        .expect("add learner");
    // a, a, b, c: no zone holds a quorum, but losing zone a leaves 2 of 4.
    let refused = admin
        .promote(PromoteRequest {
            node_id: 4,
            force: false,
        })
        .await
        .expect_err("losing zone a would stop a, a, b, c");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused}");
    assert!(refused.message().contains("losing zone 'a'"), "{}", refused.message());
    // Two voters in two zones: losing either stops the cluster.
    let removed = if leader == 3 { 2 } else { 3 };
    let refused = admin
        .remove_member(RemoveMemberRequest {
            node_id: removed,
            force: false,
        })
        .await
        .expect_err("two voters in two zones are refused");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused}");
    assert!(refused.message().contains("force"), "the message says how to insist");
    let status = cluster.status(1).await;
    let voters = status
        .members
        .iter()
        .filter(|m| m.role == safekeep_api::v1::Role::Voter as i32)
        .count();
    assert_eq!(voters, 3, "nothing changed");
    let voter_4 = status.members.iter().find(|m| m.id == 4).unwrap();
    assert_eq!(
        voter_4.role,
        safekeep_api::v1::Role::Learner as i32,
        "node 4 stays a learner"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readyz_flips_to_503_on_a_node_cut_off_from_the_leader_and_back_to_200() {
    let mut cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let other = (1..=3).find(|id| *id != leader && *id != follower).unwrap();
    let url = format!("http://{}/readyz", cluster.addresses[&follower].http);
    let http = reqwest::Client::new();
    let ready = |http: reqwest::Client, url: String| async move {
        let response = http.get(&url).send().await.ok()?;
        let code = response.status().as_u16();
        let body: serde_json::Value = response.json().await.ok()?;
        Some((code, body))
    };
    eventually("follower ready", || async {
        ready(http.clone(), url.clone()).await.filter(|(code, _)| *code == 200)
    })
    .await;

    // Cut the follower off: the leader and the third node go away.
    cluster.stop(leader).await;
    cluster.stop(other).await;
    let (_, body) = eventually("follower not ready", || async {
        ready(http.clone(), url.clone()).await.filter(|(code, _)| *code == 503)
    })
    .await;
    assert_eq!(body["ready"], false);
    assert!(body["reason"].as_str().is_some_and(|r| !r.is_empty()), "{body}");

    cluster.restart(leader).await;
    cluster.restart(other).await;
    eventually("follower ready again", || async {
        ready(http.clone(), url.clone()).await.filter(|(code, _)| *code == 200)
    })
    .await;
    cluster.shutdown().await;
}

/// A node that restarts may have acknowledged the leader just before it
/// stopped; the leader serves lease reads on that acknowledgement. The node
/// must not vote for anyone else until such a lease has run out (the longest
/// election timeout), or two leaders could serve reads at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_node_casts_no_vote_until_any_lease_it_granted_has_expired() {
    use safekeep_api::v1::RaftMessage;
    use safekeep_api::v1::peer_client::PeerClient;
    use safekeep_node::raft::TypeConfig;

    // A lease long enough that the refusal is seen even on a loaded machine.
    const LEASE_MS: u64 = 5_000;
    let mut cluster = TestCluster::start(3, |c| c.raft.election_max_ms = LEASE_MS).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let candidate = (1..=3).find(|id| *id != leader && *id != follower).unwrap();
    cluster.stop(follower).await;
    // Taken before the restart: the node's refusal window opens during it.
    let restarted = std::time::Instant::now();
    cluster.restart(follower).await;

    let mut peer = PeerClient::connect(format!("http://{}", cluster.addresses[&follower].peer))
        .await
        .unwrap();
    let term = cluster.nodes[&leader].consensus().view().term;
    let request = openraft::raft::VoteRequest::<TypeConfig>::new(
        openraft::alias::VoteOf::<TypeConfig>::new(term, candidate),
        None,
    );
    let payload = postcard::to_allocvec(&request).unwrap();
    let vote = peer
        .vote(RaftMessage {
            payload: payload.clone(),
        })
        .await
        .unwrap_err();
    let pre_vote = peer
        .pre_vote(RaftMessage {
            payload: payload.clone(),
        })
        .await
        .unwrap_err();
    assert!(
        restarted.elapsed() < std::time::Duration::from_millis(LEASE_MS),
        "the refusals were asked for within the lease"
    );
    for status in [vote, pre_vote] {
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(status.message().contains("casts no vote"), "{status:?}");
    }
    // Once the lease has run out, the node answers votes again.
    eventually("the restarted node to answer a vote", || {
        let mut peer = peer.clone();
        let payload = payload.clone();
        async move { peer.vote(RaftMessage { payload }).await.ok() }
    })
    .await;
    assert!(restarted.elapsed() >= std::time::Duration::from_millis(LEASE_MS));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_initializer_waits_for_every_initial_member_rather_than_form_alone() {
    use safekeep_api::v1::IdentifyRequest;
    use safekeep_api::v1::peer_client::PeerClient;
    use safekeep_node::{Node, NodeListeners};

    let (mut cluster, mut listeners) = TestCluster::prepare(3, false, |_| {}).await;
    let addresses = cluster.addresses.clone();

    // Only the initializer runs: its peers' ports are closed.
    let first = listeners.remove(&1).unwrap();
    drop(listeners);
    let config = cluster.configs[&1].clone();
    let initializer = tokio::spawn(Node::start_with_listeners(config, first));
    let peer_address = format!("http://{}", addresses[&1].peer);
    let initialized = || async {
        let mut peer = PeerClient::connect(peer_address.clone()).await.ok()?;
        let answer = peer.identify(IdentifyRequest {}).await.ok()?;
        Some(answer.into_inner().initialized)
    };
    eventually("the initializer's peer channel", || async {
        initialized().await.map(|_| ())
    })
    .await;
    // A second of observation: forming alone would show within milliseconds.
    let watched = std::time::Instant::now();
    while watched.elapsed() < std::time::Duration::from_secs(1) {
        assert_eq!(
            initialized().await,
            Some(false),
            "node 1 formed a cluster while its peers were unreachable"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // Once the others are up, it forms the cluster with them.
    for id in [3, 2] {
        let a = &addresses[&id];
        let rebound = NodeListeners::tcp(
            tokio::net::TcpListener::bind(a.client).await.expect("rebind client"),
            tokio::net::TcpListener::bind(a.peer).await.expect("rebind peer"),
            tokio::net::TcpListener::bind(a.http).await.expect("rebind http"),
        );
        let node = Node::start_with_listeners(cluster.configs[&id].clone(), rebound)
            .await
            .expect("a member starts");
        cluster.nodes.insert(id, node);
    }
    let node = tokio::time::timeout(common::WAIT, initializer)
        .await
        .expect("the initializer finished starting")
        .unwrap()
        .expect("the initializer starts");
    cluster.nodes.insert(1, node);
    let leader = cluster.leader().await;
    let mut client = cluster.records(leader).await;
    put_acked(&mut client, put(TENANT, "formed", b"v", "init", 1)).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_learner_whose_data_directory_is_unknown_is_not_promoted() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.leader().await;
    let mut admin = cluster.cluster(leader).await;
    // Node 4 is added before it ever ran (nothing answers at its address),
    // in a fourth zone, so the placement guard has nothing against it.
    admin
        .add_learner(AddLearnerRequest {
            node_id: 4,
            zone: "d".into(),
            peer_address: "127.0.0.1:1".into(),
            client_address: "127.0.0.1:2".into(),
        })
        .await
        .expect("add learner");
    let refused = admin
        .promote(PromoteRequest {
            node_id: 4,
            force: false,
        })
        .await
        .expect_err("a voter whose data directory nobody recorded");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused}");
    assert!(
        refused.message().contains("has not named its data directory"),
        "{}",
        refused.message()
    );
    let voters: Vec<u64> = cluster
        .status(leader)
        .await
        .members
        .iter()
        .filter(|m| m.role() != safekeep_api::v1::Role::Learner)
        .map(|m| m.id)
        .collect();
    assert!(!voters.contains(&4), "node 4 became a voter: {voters:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_add_learner_is_not_acknowledged_before_the_entry_that_adds_it_commits() {
    let mut cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.leader().await;
    let mut admin = cluster.cluster(leader).await;
    // With both followers down, the entry that adds node 4 cannot commit.
    for follower in (1..=3).filter(|id| *id != leader) {
        cluster.stop(follower).await;
    }
    let add = || {
        let mut request = tonic::Request::new(AddLearnerRequest {
            node_id: 4,
            zone: "d".into(),
            peer_address: "127.0.0.1:1".into(),
            client_address: "127.0.0.1:2".into(),
        });
        request.set_timeout(Duration::from_secs(2));
        request
    };
    let first = admin
        .add_learner(add())
        .await
        .expect_err("no quorum to commit the change");
    // The client's own deadline ends the call (tonic reports it as cancelled).
    assert!(
        matches!(first.code(), tonic::Code::DeadlineExceeded | tonic::Code::Cancelled),
        "{first}"
    );
    // The leader's membership now names node 4, but only in an uncommitted
    // entry: a retry must not be told the change is done.
    let mut retry = add();
    retry.set_timeout(WAIT);
    let retried = admin.add_learner(retry).await;
    assert!(
        retried.is_err(),
        "a retry was acknowledged while the change had not committed: {retried:?}"
    );
    // Once a quorum is back, the entry commits and the retry succeeds.
    for follower in (1..=3).filter(|id| *id != leader) {
        cluster.restart(follower).await;
    }
    eventually("the retried add-learner acknowledged", || {
        let mut admin = admin.clone();
        async move { admin.add_learner(add()).await.ok() }
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_join_timed_out_after_it_received_raft_state_joins_again_at_start() {
    let mut cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.leader().await;
    for follower in (1..=3).filter(|id| *id != leader) {
        cluster.stop(follower).await;
    }
    // Node 4 joins through the leader, which replicates the entry that adds
    // it, but cannot commit it: the join times out.
    let (listeners, addresses) = common::bound_listeners().await;
    let mut config = cluster.config_for(4, &addresses);
    config.zone = "d".into();
    config.join = Some(cluster.addresses[&leader].peer.to_string());
    config.raft.join_timeout_ms = 3_000;
    let failed = safekeep_node::Node::start_with_listeners(config.clone(), listeners).await;
    assert!(
        matches!(
            failed,
            Err(safekeep_node::StartError::Bootstrap(
                safekeep_node::raft::BootstrapError::JoinFailed { .. }
            ))
        ),
        "the join had no quorum to commit it: {:?}",
        failed.err()
    );
    let db = common::open_stopped_db(&config.data_dir);
    let entries = db
        .iterator_cf(db.cf_handle("log").unwrap(), rocksdb::IteratorMode::Start)
        .count();
    drop(db);
    assert!(entries > 0, "node 4 holds no Raft log, so this test proves nothing");

    for follower in (1..=3).filter(|id| *id != leader) {
        cluster.restart(follower).await;
    }
    cluster.configs.insert(4, config);
    cluster.addresses.insert(4, addresses);
    cluster.restart(4).await;
    eventually("node 4 promoted to voter", || async {
        let status = cluster.status(leader).await;
        status
            .members
            .iter()
            .any(|m| m.id == 4 && m.role() != safekeep_api::v1::Role::Learner)
            .then_some(())
    })
    .await;
    cluster.shutdown().await;
}

/// Concurrent writes of large values, all through one shared client: their
/// replication messages (up to the log store's 8 MiB budget) must get the
/// time their bytes need, where a deadline of one heartbeat failed every
/// attempt and stalled the cluster for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_large_values_is_replicated_and_acknowledged() {
    const WRITERS: usize = 24;
    const VALUE_BYTES: usize = 512 << 10;
    let cluster = TestCluster::start(3, |_| {}).await;
    cluster.leader().await;
    let endpoints: Vec<String> = (1..=3).map(|id| cluster.addresses[&id].client.to_string()).collect();
    let client = safekeep_client::Client::connect(safekeep_client::ClientConfig::new(endpoints))
        .await
        .unwrap();
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..WRITERS {
        let client = client.clone();
        writes.spawn(async move {
            let value = vec![i as u8; VALUE_BYTES];
            client.put(TENANT, &format!("large/{i}"), value).await
        });
    }
    let mut last = 0;
    while let Some(outcome) = writes.join_next().await {
        let outcome = outcome.unwrap().expect("every large write is acknowledged");
        last = last.max(outcome.version);
    }
    for id in 1..=3 {
        cluster.wait_applied(id, last).await;
    }
    cluster.shutdown().await;
}
