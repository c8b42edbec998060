//! Write ids through the raw gRPC API, as a client in another language sends
//! them with ids it picked itself: the same id under two tenants, writes in
//! flight out of order, a retry, an id reused for another write, the
//! first-incomplete mark, and a leader whose wall clock jumps ahead.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use common::{TestCluster, get, keyed, put};
use safekeep_api::v1::PutRequest;
use safekeep_api::v1::records_client::RecordsClient;
use safekeep_node::NodeEnvironment;
use tonic::Code;
use tonic::transport::Channel;

const TENANT: &str = "t";

fn with_id(mut request: PutRequest, client: &str, request_id: u64, first_incomplete: u64) -> PutRequest {
    let id = request.write_id.as_mut().expect("put() sets a write id");
    id.client_id = client.into();
    id.request_id = request_id;
    id.first_incomplete = first_incomplete;
    request
}

async fn version_of(client: &mut RecordsClient<Channel>, key: &str) -> Option<u64> {
    match client.get(get(TENANT, key)).await {
        Ok(reply) => reply.into_inner().record.map(|r| r.version),
        Err(status) if status.code() == Code::NotFound => None,
        Err(status) => panic!("reading {key}: {status}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_write_id_under_two_tenants_is_two_writes() {
    let cluster = TestCluster::start_secure(3, |_| {}).await;
    cluster.leader().await;
    let acme = cluster.tenant_key("acme", safekeep_api::v1::ApiKeyRole::Writer).await;
    let globex = cluster.tenant_key("globex", safekeep_api::v1::ApiKeyRole::Writer).await;
    let same_id = |tenant: &str| with_id(put(tenant, "py/x", tenant.as_bytes(), "", 0), "shared-worker-1", 7, 0);

    let acme_version = cluster.put_keyed(1, &acme, same_id("acme")).await;
    let globex_version = cluster.put_keyed(2, &globex, same_id("globex")).await;
    assert_ne!(
        globex_version, acme_version,
        "globex got its own write, not acme's answer"
    );
    assert_eq!(
        cluster.read_keyed(3, &globex, "globex", "py/x").await,
        Ok((b"globex".to_vec(), globex_version)),
        "globex's acknowledged write was applied"
    );
    // Each tenant's retry finds its own first answer.
    assert_eq!(cluster.put_keyed(3, &acme, same_id("acme")).await, acme_version);
    assert_eq!(cluster.put_keyed(1, &globex, same_id("globex")).await, globex_version);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_of_one_client_sent_out_of_order_all_apply_once() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let mut client = cluster.records(cluster.leader().await).await;
    // A client with two writes in flight: request 2 reaches the server first.
    let second = with_id(put(TENANT, "py/o2", b"2", "", 0), "raw", 2, 1);
    let first = with_id(put(TENANT, "py/o1", b"1", "", 0), "raw", 1, 1);
    let v2 = client
        .put(second.clone())
        .await
        .expect("request 2")
        .into_inner()
        .version;
    let v1 = client
        .put(first.clone())
        .await
        .expect("request 1, older, still applies")
        .into_inner()
        .version;
    assert_eq!(version_of(&mut client, "py/o1").await, Some(v1));
    assert_eq!(version_of(&mut client, "py/o2").await, Some(v2));
    // Retries answer with the first outcome and apply nothing again.
    assert_eq!(client.put(first).await.unwrap().into_inner().version, v1);
    assert_eq!(client.put(second).await.unwrap().into_inner().version, v2);
    assert_eq!(version_of(&mut client, "py/o1").await, Some(v1));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ids_below_first_incomplete_are_refused_and_a_reused_id_never_swallows_a_write() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let mut client = cluster.records(cluster.leader().await).await;
    let one = with_id(put(TENANT, "a", b"1", "", 0), "c", 1, 1);
    let v1 = client.put(one.clone()).await.unwrap().into_inner().version;
    // The client has seen request 1 complete and says so.
    client
        .put(with_id(put(TENANT, "b", b"2", "", 0), "c", 2, 2))
        .await
        .unwrap();
    let late = client
        .put(one)
        .await
        .expect_err("a retry of a write the client reported complete");
    assert_eq!(late.code(), Code::FailedPrecondition, "{late}");
    assert_eq!(
        late.metadata()
            .get(safekeep_api::wire::NOT_APPLIED)
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(
        version_of(&mut client, "a").await,
        Some(v1),
        "not applied a second time"
    );

    // The same id for a write of another record is refused, never answered
    // with the first write's result.
    let reused = client
        .put(with_id(put(TENANT, "other", b"x", "", 0), "c", 2, 2))
        .await
        .expect_err("an id reused for another write");
    assert_eq!(reused.code(), Code::InvalidArgument, "{reused}");
    assert_eq!(version_of(&mut client, "other").await, None);

    let claims_itself_complete = client
        .put(with_id(put(TENANT, "d", b"x", "", 0), "c", 5, 6))
        .await
        .expect_err("first_incomplete above the request's own id");
    assert_eq!(claims_itself_complete.code(), Code::InvalidArgument);
    cluster.shutdown().await;
}

/// How far the nodes' wall clock runs ahead of the real one, in ms.
static CLOCK_AHEAD_MS: AtomicU64 = AtomicU64::new(0);

fn jumping_clock() -> SystemTime {
    SystemTime::now() + Duration::from_millis(CLOCK_AHEAD_MS.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_wall_clock_jumping_minutes_ahead_expires_no_result() {
    let environment = NodeEnvironment {
        wall_clock: jumping_clock,
        ..NodeEnvironment::default()
    };
    let cluster = TestCluster::start_in(3, environment, |_| {}).await;
    let leader = cluster.leader().await;
    let mut client = cluster.records(leader).await;
    // A client that tracks no first-incomplete mark, as raw clients may.
    let before = with_id(put(TENANT, "before", b"1", "", 0), "raw", 5, 0);
    let version = client.put(before.clone()).await.unwrap().into_inner().version;
    CLOCK_AHEAD_MS.store(10 * 60 * 1_000, Ordering::SeqCst);
    client
        .put(with_id(put(TENANT, "after", b"2", "", 0), "raw", 6, 0))
        .await
        .expect("a write after the jump");
    let retry = client.put(before).await.expect("the retry finds its first result");
    assert_eq!(retry.into_inner().version, version);
    assert_eq!(version_of(&mut client, "before").await, Some(version));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenancy_writes_through_a_follower_answer_with_what_they_made() {
    use safekeep_api::v1::admin_client::AdminClient;
    use safekeep_api::v1::{ApiKeyRole, CreateTenantRequest, IssueApiKeyRequest};

    let cluster = TestCluster::start_secure(3, |_| {}).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let mut admin = AdminClient::new(cluster.channel(follower).await);
    for round in 0..5 {
        let tenant = format!("through-follower-{round}");
        let created = admin
            .create_tenant(CreateTenantRequest { tenant: tenant.clone() })
            .await
            .expect("a tenant created through a follower");
        assert_eq!(created.into_inner().tenant.unwrap().tenant, tenant);
        let issued = admin
            .issue_api_key(IssueApiKeyRequest {
                tenant: tenant.clone(),
                role: ApiKeyRole::Writer as i32,
                label: "follower".into(),
            })
            .await
            .expect("a key issued through a follower")
            .into_inner();
        assert!(!issued.secret.is_empty(), "the one-time secret comes back");
        let version = cluster
            .put_keyed(leader, &issued.secret, put(&tenant, "k", b"v", "follower-test", 1))
            .await;
        assert!(version > 0);
        let mut records = cluster.records(follower).await;
        records
            .get(keyed(get(&tenant, "k"), &issued.secret))
            .await
            .expect("the issued key reads its tenant");
    }
    cluster.shutdown().await;
}
