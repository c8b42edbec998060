//! The records API's promises on a three-node cluster: idempotent retries,
//! compare-and-set, atomic batches, paging, and a precise error for every kind
//! of bad input, which never changes stored data. Also the node's refusals to
//! start: a data directory of another node, and a join to an unreachable seed.

mod common;

use common::{TestCluster, get, put, put_acked, test_raft_settings};
use safekeep_api::v1::{
    BatchDelete, BatchOp, BatchPut, BatchRequest, Consistency, DeleteRequest, GetRequest, ListRequest, PutRequest,
    WriteId, batch_op,
};
use safekeep_node::config::LimitSettings;
use safekeep_node::{Node, StartError};
use tonic::Code;

const TENANT: &str = "acme";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_write_with_the_same_request_id_applies_once() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let mut client = cluster.records(follower).await;
    let first = client
        .put(put(TENANT, "k", b"first", "retrier", 7))
        .await
        .unwrap()
        .into_inner();
    // Same write id, different payload: the first result comes back and nothing new is applied.
    let retry = client
        .put(put(TENANT, "k", b"second", "retrier", 7))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retry.version, first.version);
    let record = client.get(get(TENANT, "k")).await.unwrap().into_inner().record.unwrap();
    assert_eq!(
        (record.value.as_slice(), record.version),
        (b"first".as_slice(), first.version)
    );
    // A new request id is a new write.
    let next = client
        .put(put(TENANT, "k", b"third", "retrier", 8))
        .await
        .unwrap()
        .into_inner();
    assert!(next.version > first.version);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compare_and_set_conflicts_return_failed_precondition_with_the_current_version() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let mut client = cluster.records(cluster.leader().await).await;
    let mut create = put(TENANT, "cas", b"v1", "cas", 1);
    create.expected_version = Some(0);
    let v1 = client.put(create.clone()).await.unwrap().into_inner().version;

    create.write_id.as_mut().unwrap().request_id = 2;
    let exists = client
        .put(create)
        .await
        .expect_err("must-not-exist on an existing record");
    assert_eq!(exists.code(), Code::FailedPrecondition);
    assert_eq!(
        exists.metadata().get(safekeep_api::wire::CURRENT_VERSION).unwrap(),
        v1.to_string().as_str()
    );

    let mut stale = put(TENANT, "cas", b"v2", "cas", 3);
    stale.expected_version = Some(v1 + 1000);
    let conflict = client.put(stale).await.expect_err("wrong expected version");
    assert_eq!(conflict.code(), Code::FailedPrecondition);
    assert_eq!(
        conflict.metadata().get(safekeep_api::wire::CURRENT_VERSION).unwrap(),
        v1.to_string().as_str()
    );

    let mut matching = put(TENANT, "cas", b"v2", "cas", 4);
    matching.expected_version = Some(v1);
    let v2 = client.put(matching).await.unwrap().into_inner().version;
    assert!(v2 > v1);
    let record = client
        .get(get(TENANT, "cas"))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(record.value, b"v2");

    let deleted = client
        .delete(DeleteRequest {
            tenant: TENANT.into(),
            key: "cas".into(),
            expected_version: Some(v1),
            write_id: Some(WriteId {
                client_id: "cas".into(),
                request_id: 5,
                first_incomplete: 0,
            }),
        })
        .await
        .expect_err("delete at a stale version");
    assert_eq!(deleted.code(), Code::FailedPrecondition);
    cluster.shutdown().await;
}

fn batch_put(key: &str, value: &[u8], expected_version: Option<u64>) -> BatchOp {
    BatchOp {
        op: Some(batch_op::Op::Put(BatchPut {
            key: key.into(),
            value: value.to_vec(),
            expected_version,
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_applies_whole_or_not_at_all_and_list_pages_through_a_tenant() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let mut client = cluster.records(cluster.leader().await).await;
    let ops: Vec<BatchOp> = (0..25)
        .map(|i| batch_put(&format!("user/{i:02}"), b"x", None))
        .collect();
    let batch = BatchRequest {
        tenant: TENANT.into(),
        ops,
        write_id: Some(WriteId {
            client_id: "b".into(),
            request_id: 1,
            first_incomplete: 0,
        }),
    };
    let version = client.batch(batch).await.unwrap().into_inner().version;

    // A failing condition anywhere means nothing in the batch applies.
    let failing = BatchRequest {
        tenant: TENANT.into(),
        ops: vec![
            batch_put("user/99", b"new", None),
            batch_put("user/00", b"changed", Some(version + 7)),
            BatchOp {
                op: Some(batch_op::Op::Delete(BatchDelete {
                    key: "user/01".into(),
                    expected_version: None,
                })),
            },
        ],
        write_id: Some(WriteId {
            client_id: "b".into(),
            request_id: 2,
            first_incomplete: 0,
        }),
    };
    assert_eq!(
        client.batch(failing).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    assert_eq!(
        client.get(get(TENANT, "user/99")).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        client
            .get(get(TENANT, "user/00"))
            .await
            .unwrap()
            .into_inner()
            .record
            .unwrap()
            .value,
        b"x"
    );

    // Another tenant whose name extends this one's sees none of it.
    put_acked(&mut client, put("acme2", "user/00", b"other", "b", 3)).await;
    let mut keys = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list(ListRequest {
                tenant: TENANT.into(),
                prefix: "user/".into(),
                page_token: token.clone(),
                limit: 10,
                consistency: Consistency::Linearizable as i32,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.records.len() <= 10);
        keys.extend(page.records.into_iter().map(|r| r.key));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let expected: Vec<String> = (0..25).map(|i| format!("user/{i:02}")).collect();
    assert_eq!(keys, expected);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_a_precise_status_and_changes_nothing() {
    let cluster = TestCluster::start(3, |c| {
        c.limits = LimitSettings {
            max_value_bytes: 1024,
            ..LimitSettings::default()
        };
    })
    .await;
    let leader = cluster.leader().await;
    let mut client = cluster.records(leader).await;
    put_acked(&mut client, put(TENANT, "canary", b"alive", "bad", 1)).await;
    let before = cluster.nodes[&leader].consensus().view().last_log_index;

    let long_key = "k".repeat(1025);
    let cases: Vec<(&str, PutRequest)> = vec![
        ("empty tenant", put("", "k", b"v", "bad", 10)),
        ("uppercase tenant", put("Acme", "k", b"v", "bad", 11)),
        ("tenant too long", put(&"t".repeat(129), "k", b"v", "bad", 12)),
        ("empty key", put(TENANT, "", b"v", "bad", 13)),
        ("key too long", put(TENANT, &long_key, b"v", "bad", 14)),
        ("value too large", put(TENANT, "k", &[0u8; 1025], "bad", 15)),
        ("empty client id", put(TENANT, "k", b"v", "", 16)),
    ];
    for (what, request) in cases {
        let status = client.put(request).await.expect_err(what);
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status}");
        assert!(!status.message().is_empty(), "{what} has a message");
    }
    let unknown_level = client
        .get(GetRequest {
            tenant: TENANT.into(),
            key: "canary".into(),
            consistency: 42,
        })
        .await
        .expect_err("unknown consistency");
    assert_eq!(unknown_level.code(), Code::InvalidArgument);
    assert!(unknown_level.message().contains("42"));
    let bad_token = client
        .list(ListRequest {
            tenant: TENANT.into(),
            page_token: "not-hex".into(),
            ..Default::default()
        })
        .await
        .expect_err("garbage page token");
    assert_eq!(bad_token.code(), Code::InvalidArgument);
    let too_big_page = client
        .list(ListRequest {
            tenant: TENANT.into(),
            limit: 1001,
            ..Default::default()
        })
        .await
        .expect_err("page too large");
    assert_eq!(too_big_page.code(), Code::InvalidArgument);
    let empty_batch = client
        .batch(BatchRequest {
            tenant: TENANT.into(),
            ops: vec![],
            write_id: None,
        })
        .await
        .expect_err("empty batch");
    assert_eq!(empty_batch.code(), Code::InvalidArgument);
    let hollow_op = client
        .batch(BatchRequest {
            tenant: TENANT.into(),
            ops: vec![BatchOp { op: None }],
            write_id: None,
        })
        .await
        .expect_err("batch op with no operation");
    assert_eq!(hollow_op.code(), Code::InvalidArgument);
    let duplicate = client
        .batch(BatchRequest {
            tenant: TENANT.into(),
            ops: vec![batch_put("d", b"1", None), batch_put("d", b"2", None)],
            write_id: None,
        })
        .await
        .expect_err("duplicate keys in a batch");
    assert_eq!(duplicate.code(), Code::InvalidArgument);
    let too_long = client
        .batch(BatchRequest {
            tenant: TENANT.into(),
            ops: (0..1001).map(|i| batch_put(&format!("b{i}"), b"", None)).collect(),
            write_id: None,
        })
        .await
        .expect_err("batch over 1000 ops");
    assert_eq!(too_long.code(), Code::InvalidArgument);
    let missing = client
        .get(get(TENANT, "never-written"))
        .await
        .expect_err("missing record");
    assert_eq!(missing.code(), Code::NotFound);

    // Nothing reached the log, and the canary is intact.
    assert_eq!(cluster.nodes[&leader].consensus().view().last_log_index, before);
    let canary = client
        .get(get(TENANT, "canary"))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(canary.value, b"alive");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_data_dir_of_another_node_is_refused_with_the_reason() {
    let mut cluster = TestCluster::start(1, |_| {}).await;
    cluster.leader().await;
    cluster.stop(1).await;
    let mut config = cluster.configs[&1].clone();
    config.id = 9;
    config.init.clear();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    (config.client_listen, config.peer_listen, config.http_listen) = (any, any, any);
    let err = match Node::start(config.clone()).await {
        Err(e) => e,
        Ok(_) => panic!("a data dir of node 1 must be refused to node 9"),
    };
    assert!(matches!(err, StartError::Storage(_)), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("node 1") && message.contains("never reused"),
        "{message}"
    );

    config.id = 1;
    config.cluster_name = "another".into();
    let err = Node::start(config)
        .await
        .err()
        .expect("another cluster's data dir is refused");
    assert!(err.to_string().contains("cluster 'test'"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_through_an_unreachable_seed_fails_with_a_clear_error_in_bounded_time() {
    let dir = tempfile::TempDir::new().unwrap();
    // A port that was just free: nothing listens there.
    let seed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let any = "127.0.0.1:0".parse().unwrap();
    let mut raft = test_raft_settings();
    raft.join_timeout_ms = 1_500;
    let listen = safekeep_node::config::ListenAddresses {
        client: any,
        peer: any,
        http: any,
    };
    let config = safekeep_node::NodeConfig {
        cluster_name: "test".into(),
        join: Some(seed.to_string()),
        insecure_dev: true,
        raft,
        ..safekeep_node::NodeConfig::new(5, "a", dir.path().join("n5"), listen)
    };
    let started = std::time::Instant::now();
    let err = Node::start(config).await.err().expect("join to a dead seed fails");
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "bounded retry");
    let message = err.to_string();
    assert!(
        message.contains(&seed.to_string()) && message.contains("could not join"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_malformed_command_forwarded_on_the_peer_channel_is_refused_before_the_log() {
    use safekeep_api::v1::RaftMessage;
    use safekeep_api::v1::peer_client::PeerClient;
    use safekeep_node::model::command::{Command, CommandBody, Mutation};

    let cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.leader().await;
    let before = cluster.nodes[&leader].consensus().view().last_log_index;
    let mut peer = PeerClient::connect(format!("http://{}", cluster.addresses[&leader].peer))
        .await
        .unwrap();
    for (what, command) in [
        (
            "a tenant too long to encode",
            Command {
                write_id: None,
                proposed_at_ms: 0,
                leader_clock_ms: 0,
                tenant: "t".repeat(70_000),
                api_key: None,
                body: CommandBody::Write(vec![Mutation::Delete {
                    key: "k".into(),
                    expected_version: None,
                }]),
                audit: None,
            },
        ),
        (
            "no mutations",
            Command {
                write_id: None,
                proposed_at_ms: 0,
                leader_clock_ms: 0,
                tenant: TENANT.into(),
                api_key: None,
                body: CommandBody::Write(vec![]),
                audit: None,
            },
        ),
    ] {
        let payload = postcard::to_allocvec(&command).unwrap();
        let status = peer.propose(RaftMessage { payload }).await.expect_err(what);
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status}");
    }
    assert_eq!(
        cluster.nodes[&leader].consensus().view().last_log_index,
        before,
        "nothing reached the log"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_stop_at_a_byte_budget_so_large_values_page_through_with_default_clients() {
    const RECORDS: usize = 100;
    const VALUE_BYTES: usize = 200 << 10;
    let cluster = TestCluster::start(1, |_| {}).await;
    // gRPC's default 4 MiB decoding limit: what most clients accept.
    let mut client = cluster.records(cluster.leader().await).await;
    let value = |i: usize| vec![i as u8; VALUE_BYTES];
    for (request_id, half) in [(0..RECORDS / 2), (RECORDS / 2..RECORDS)].into_iter().enumerate() {
        let ops = half
            .map(|i| batch_put(&format!("big/{i:03}"), &value(i), None))
            .collect();
        let batch = BatchRequest {
            tenant: TENANT.into(),
            ops,
            write_id: Some(WriteId {
                client_id: "big".into(),
                request_id: request_id as u64 + 1,
                first_incomplete: 0,
            }),
        };
        client.batch(batch).await.expect("a batch of 10 MB is accepted");
    }
    let mut pages = 0;
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        // The default page of 100 records would be 20 MB: above every message limit.
        let page = client
            .list(ListRequest {
                tenant: TENANT.into(),
                prefix: "big/".into(),
                page_token: token.clone(),
                limit: 0,
                consistency: Consistency::Linearizable as i32,
            })
            .await
            .expect("every page fits the response limits")
            .into_inner();
        pages += 1;
        assert!(!page.records.is_empty(), "a page with a token after it holds records");
        for record in page.records {
            let i: usize = record.key["big/".len()..].parse().unwrap();
            assert_eq!(record.value, value(i), "{} is returned as stored", record.key);
            seen.push(i);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(
        seen,
        (0..RECORDS).collect::<Vec<_>>(),
        "every record once, in key order"
    );
    assert!(
        pages >= 7,
        "20 MB of values takes at least 7 pages of at most 3 MiB, took {pages}"
    );
    cluster.shutdown().await;
}
