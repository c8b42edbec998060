//! What off-the-shelf tools see of a node: the standard gRPC health service
//! and server reflection (as `grpc_health_probe` and `grpcurl` use them), and
//! the Prometheus metrics on the HTTP port.

mod common;

use common::{TestCluster, put, put_acked};
use tokio_stream::StreamExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_reflection_and_metrics_answer_standard_tools() {
    let cluster = TestCluster::start(1, |_| {}).await;
    cluster.leader().await;
    let address = format!("http://{}", cluster.addresses[&1].client);

    let channel = tonic::transport::Channel::from_shared(address)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "safekeep.v1.Records", "safekeep.v1.Cluster"] {
        let reply = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("health of {service:?}: {e}"));
        assert_eq!(reply.into_inner().status, ServingStatus::Serving as i32, "{service:?}");
    }

    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.next().await.expect("one reply").expect("reflection answers");
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in ["safekeep.v1.Records", "safekeep.v1.Cluster", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }

    let mut client = cluster.records(1).await;
    put_acked(&mut client, put("acme", "k", b"v", "m", 1)).await;
    let text = reqwest::get(format!("http://{}/metrics", cluster.addresses[&1].http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for metric in [
        "safekeep_raft_term",
        "safekeep_raft_leader_changes_total",
        "safekeep_raft_commit_seconds_bucket",
        "safekeep_raft_apply_seconds_bucket",
        "safekeep_request_duration_seconds_bucket{method=\"Put\",code=\"OK\"",
    ] {
        assert!(text.contains(metric), "{metric} missing from /metrics:\n{text}");
    }
    let healthz = reqwest::get(format!("http://{}/healthz", cluster.addresses[&1].http))
        .await
        .unwrap();
    assert_eq!(healthz.status().as_u16(), 200);
    cluster.shutdown().await;
}
