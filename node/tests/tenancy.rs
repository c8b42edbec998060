//! Tenant isolation, authentication and encryption at rest under attack: keys
//! of one tenant on another's records (every method), wrong, malformed and
//! revoked keys, operators and support staff on record data, tenant ids that
//! share a prefix, oversize metadata, a tampered or moved ciphertext on disk,
//! a wrong master key, and a tenant over its rate. Each attack fails with the
//! status that fits and leaves the store as it was.

mod common;

use common::{TestCluster, TlsFiles, get, keyed, open_stopped_db, put, record_storage_key, tls_channel};
use safekeep_api::v1::admin_client::AdminClient;
use safekeep_api::v1::records_client::RecordsClient;
use safekeep_api::v1::{
    ApiKeyRole, BatchOp, BatchPut, BatchRequest, CreateTenantRequest, DeleteRequest, IssueApiKeyRequest, ListRequest,
    ListTenantsRequest, RevokeApiKeyRequest, batch_op,
};
use safekeep_node::Node;
use tonic::Code;
use tonic::transport::Channel;

fn list(tenant: &str) -> ListRequest {
    ListRequest {
        tenant: tenant.into(),
        prefix: String::new(),
        limit: 0,
        page_token: String::new(),
        consistency: 0,
    }
}

fn delete(tenant: &str, key: &str) -> DeleteRequest {
    DeleteRequest {
        tenant: tenant.into(),
        key: key.into(),
        expected_version: None,
        write_id: None,
    }
}

fn batch(tenant: &str, key: &str) -> BatchRequest {
    BatchRequest {
        tenant: tenant.into(),
        ops: vec![BatchOp {
            op: Some(batch_op::Op::Put(BatchPut {
                key: key.into(),
                value: b"batched".to_vec(),
                expected_version: None,
            })),
        }],
        write_id: None,
    }
}

/// The value and version of `tenant`/`key` as its own key reads it through node `id`.
async fn stored(cluster: &TestCluster, id: u64, api_key: &str, tenant: &str, key: &str) -> Option<(Vec<u8>, u64)> {
    match cluster.read_keyed(id, api_key, tenant, key).await {
        Ok(found) => Some(found),
        Err(Code::NotFound) => None,
        Err(code) => panic!("reading {tenant}/{key}: {code:?}"),
    }
}

async fn write(cluster: &TestCluster, id: u64, api_key: &str, tenant: &str, key: &str, value: &[u8]) -> u64 {
    let mut request = put(tenant, key, value, "tenancy", 0);
    request.write_id = None;
    cluster.put_keyed(id, api_key, request).await
}

/// Every records method, as the holder of `api_key`, on `tenant`; the codes they got.
async fn every_method(
    client: &mut RecordsClient<Channel>,
    api_key: &str,
    tenant: &str,
    key: &str,
) -> Vec<(String, Code)> {
    let mut codes = Vec::new();
    let mut note = |name: &str, result: Result<(), tonic::Status>| {
        codes.push((name.to_string(), result.err().map_or(Code::Ok, |s| s.code())));
    };
    note(
        "put",
        client
            .put(keyed(put(tenant, key, b"x", "attack", 1), api_key))
            .await
            .map(drop),
    );
    note("get", client.get(keyed(get(tenant, key), api_key)).await.map(drop));
    note(
        "get missing",
        client.get(keyed(get(tenant, "no-such-key"), api_key)).await.map(drop),
    );
    note(
        "delete",
        client.delete(keyed(delete(tenant, key), api_key)).await.map(drop),
    );
    note("list", client.list(keyed(list(tenant), api_key)).await.map(drop));
    note(
        "batch",
        client.batch(keyed(batch(tenant, key), api_key)).await.map(drop),
    );
    codes
}

fn all(codes: &[(String, Code)], expected: Code) {
    for (method, code) in codes {
        assert_eq!(*code, expected, "{method}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_key_reaches_only_its_own_tenant_on_every_method() {
    let cluster = TestCluster::start_secure(3, |_| {}).await;
    cluster.leader().await;
    let acme = cluster.tenant_key("acme", ApiKeyRole::Writer).await;
    let globex = cluster.tenant_key("globex", ApiKeyRole::Writer).await;
    let version = write(&cluster, 2, &globex, "globex", "g", b"globex secret").await;

    for id in 1..=3 {
        let mut client = cluster.records(id).await;
        let codes = every_method(&mut client, &acme, "globex", "g").await;
        all(&codes, Code::PermissionDenied);
        // A tenant that does not exist is refused the same way: nothing to learn.
        let codes = every_method(&mut client, &acme, "initech", "g").await;
        all(&codes, Code::PermissionDenied);
    }
    let message = |tenant: &'static str, key: &'static str| {
        let acme = acme.clone();
        let cluster = &cluster;
        async move {
            let mut client = cluster.records(1).await;
            client
                .get(keyed(get(tenant, key), &acme))
                .await
                .unwrap_err()
                .message()
                .to_string()
        }
    };
    assert_eq!(
        message("globex", "g").await,
        message("globex", "no-such-key").await,
        "an existing and a missing record look alike"
    );

    // A writer key administers nothing, not even its own tenant's keys.
    let mut admin = AdminClient::new(cluster.channel(1).await);
    let create = admin
        .create_tenant(keyed(CreateTenantRequest { tenant: "evil".into() }, &acme))
        .await
        .unwrap_err();
    assert_eq!(create.code(), Code::PermissionDenied);
    let listing = admin
        .list_tenants(keyed(ListTenantsRequest {}, &acme))
        .await
        .unwrap_err();
    assert_eq!(listing.code(), Code::PermissionDenied);
    for tenant in ["acme", "globex"] {
        let issue = IssueApiKeyRequest {
            tenant: tenant.into(),
            role: ApiKeyRole::Admin as i32,
            label: String::new(),
        };
        assert_eq!(
            admin.issue_api_key(keyed(issue, &acme)).await.unwrap_err().code(),
            Code::PermissionDenied
        );
    }

    for id in 1..=3 {
        assert_eq!(
            stored(&cluster, id, &globex, "globex", "g").await,
            Some((b"globex secret".to_vec(), version))
        );
        assert_eq!(stored(&cluster, id, &globex, "globex", "no-such-key").await, None);
    }
    let records = cluster
        .records(1)
        .await
        .list(keyed(list("globex"), &globex))
        .await
        .unwrap();
    assert_eq!(
        records.into_inner().records.len(),
        1,
        "no write of acme's landed in globex"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_malformed_oversize_and_revoked_keys_are_refused_on_every_node() {
    let cluster = TestCluster::start_secure(3, |_| {}).await;
    cluster.leader().await;
    let key = cluster.tenant_key("acme", ApiKeyRole::Writer).await;
    let reader = cluster.tenant_key("acme", ApiKeyRole::Reader).await;
    let version = write(&cluster, 1, &key, "acme", "k", b"v1").await;

    // The right id with another secret, a malformed key, no credentials at all.
    let (id_part, secret) = key.rsplit_once('_').unwrap();
    let flipped = if secret.starts_with('0') { "1" } else { "0" };
    let wrong_secret = format!("{id_part}_{flipped}{}", &secret[1..]);
    let certs = cluster.certs.clone().unwrap();
    let address = cluster.addresses[&2].client.to_string();
    let anonymous = TlsFiles {
        ca: certs.join("ca.pem"),
        identity: None,
    };
    let mut bare = RecordsClient::new(tls_channel(&address, &anonymous).await.unwrap());
    for bad in [wrong_secret.as_str(), "skp_not-a-key", "Basic Zm9vOmJhcg=="] {
        let codes = every_method(&mut bare, bad, "acme", "k").await;
        all(&codes, Code::Unauthenticated);
    }
    let unauthenticated = bare.get(get("acme", "k")).await.unwrap_err();
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);
    assert!(unauthenticated.message().contains("API key"), "{unauthenticated:?}");
    // A reader key reads but never writes.
    assert!(bare.get(keyed(get("acme", "k"), &reader)).await.is_ok());
    let denied = bare
        .put(keyed(put("acme", "k", b"no", "reader", 1), &reader))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Oversize metadata is refused before it reaches anything.
    let mut huge = tonic::Request::new(put("acme", "k", b"huge", "meta", 1));
    let padding = "x".repeat(64 << 10);
    huge.metadata_mut().insert("x-padding", padding.parse().unwrap());
    huge.metadata_mut().insert(
        safekeep_api::wire::AUTHORIZATION,
        safekeep_api::wire::bearer(&key).parse().unwrap(),
    );
    assert!(bare.put(huge).await.is_err(), "64 KiB of metadata is refused");

    // Revoked through node 1: refused by every node from then on.
    let key_id = id_part.strip_prefix("skp_").unwrap().to_string();
    AdminClient::new(cluster.channel(1).await)
        .revoke_api_key(RevokeApiKeyRequest { key_id })
        .await
        .unwrap();
    for id in 1..=3 {
        let mut client = cluster.records(id).await;
        let codes = every_method(&mut client, &key, "acme", "k").await;
        all(&codes, Code::Unauthenticated);
    }
    for id in 1..=3 {
        assert_eq!(
            stored(&cluster, id, &reader, "acme", "k").await,
            Some((b"v1".to_vec(), version))
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_never_read_records_and_support_reads_need_a_reason() {
    let cluster = TestCluster::start_secure(3, |_| {}).await;
    cluster.leader().await;
    let key = cluster.tenant_key("acme", ApiKeyRole::Writer).await;
    write(&cluster, 1, &key, "acme", "k", b"customer data").await;

    let operator = cluster.records(1).await.get(get("acme", "k")).await.unwrap_err();
    assert_eq!(operator.code(), Code::PermissionDenied);

    let files = common::support_files(cluster.certs.as_ref().unwrap(), "help");
    let address = cluster.addresses[&3].client.to_string();
    let mut staff = RecordsClient::new(tls_channel(&address, &files).await.unwrap());
    let no_reason = staff.get(get("acme", "k")).await.unwrap_err();
    assert_eq!(no_reason.code(), Code::PermissionDenied);
    assert!(no_reason.message().contains("reason"), "{no_reason:?}");
    let mut with_reason = tonic::Request::new(get("acme", "k"));
    with_reason.metadata_mut().insert(
        safekeep_api::wire::REASON,
        "ticket 4711: customer asked".parse().unwrap(),
    );
    let record = staff.get(with_reason).await.unwrap().into_inner().record.unwrap();
    assert_eq!(record.value, b"customer data");
    let mut write_attempt = tonic::Request::new(put("acme", "k", b"support edit", "support", 1));
    write_attempt
        .metadata_mut()
        .insert(safekeep_api::wire::REASON, "fixing".parse().unwrap());
    assert_eq!(
        staff.put(write_attempt).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert_eq!(
        stored(&cluster, 1, &key, "acme", "k").await.unwrap().0,
        b"customer data"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_whose_ids_share_a_prefix_never_see_each_other() {
    let cluster = TestCluster::start_secure(1, |_| {}).await;
    cluster.leader().await;
    let a = cluster.tenant_key("a", ApiKeyRole::Writer).await;
    let ab = cluster.tenant_key("ab", ApiKeyRole::Writer).await;
    write(&cluster, 1, &a, "a", "bc", b"of a").await;
    write(&cluster, 1, &ab, "ab", "c", b"of ab").await;
    assert_eq!(stored(&cluster, 1, &a, "a", "bc").await.unwrap().0, b"of a");
    assert_eq!(stored(&cluster, 1, &ab, "ab", "c").await.unwrap().0, b"of ab");
    assert_eq!(stored(&cluster, 1, &a, "a", "b").await, None);
    for (tenant, key, expected) in [("a", &a, "bc"), ("ab", &ab, "c")] {
        let page = cluster
            .records(1)
            .await
            .list(keyed(list(tenant), key))
            .await
            .unwrap()
            .into_inner();
        let keys: Vec<String> = page.records.into_iter().map(|r| r.key).collect();
        assert_eq!(keys, [expected], "tenant {tenant}");
    }
    let crossed = cluster
        .records(1)
        .await
        .get(keyed(get("ab", "c"), &a))
        .await
        .unwrap_err();
    assert_eq!(crossed.code(), Code::PermissionDenied);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_or_moved_ciphertext_is_data_loss_never_garbage() {
    let mut cluster = TestCluster::start_secure(1, |_| {}).await;
    cluster.leader().await;
    let key = cluster.tenant_key("acme", ApiKeyRole::Writer).await;
    write(&cluster, 1, &key, "acme", "tampered", b"the real value").await;
    write(&cluster, 1, &key, "acme", "moved-from", b"another value").await;
    write(&cluster, 1, &key, "acme", "intact", b"untouched").await;
    cluster.stop(1).await;

    {
        let db = open_stopped_db(&cluster.configs[&1].data_dir);
        let sm = db.cf_handle("sm").unwrap();
        let target = record_storage_key("acme", "tampered");
        let mut stored = db.get_cf(&sm, &target).unwrap().expect("the record is on disk");
        let last = stored.len() - 1;
        stored[last] ^= 0x01;
        db.put_cf(&sm, &target, &stored).unwrap();
        let moved = db
            .get_cf(&sm, record_storage_key("acme", "moved-from"))
            .unwrap()
            .unwrap();
        db.put_cf(&sm, record_storage_key("acme", "moved-to"), &moved).unwrap();
        db.flush_cf(&sm).unwrap();
    }

    cluster.restart(1).await;
    cluster.leader().await;
    let mut client = cluster.records(1).await;
    for victim in ["tampered", "moved-to"] {
        let status = client.get(keyed(get("acme", victim), &key)).await.unwrap_err();
        assert_eq!(status.code(), Code::DataLoss, "{victim}: {status:?}");
    }
    let listing = client.list(keyed(list("acme"), &key)).await.unwrap_err();
    assert_eq!(
        listing.code(),
        Code::DataLoss,
        "a page holding a tampered value is refused whole"
    );
    assert_eq!(
        stored(&cluster, 1, &key, "acme", "intact").await.unwrap().0,
        b"untouched"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_the_wrong_master_key_refuses_to_start() {
    let mut cluster = TestCluster::start_secure(1, |_| {}).await;
    cluster.leader().await;
    let key = cluster.tenant_key("acme", ApiKeyRole::Writer).await;
    write(&cluster, 1, &key, "acme", "k", b"v").await;
    cluster.stop(1).await;

    let master_keys = cluster.certs.as_ref().unwrap().join("master.keys");
    let original = std::fs::read(&master_keys).unwrap();
    std::fs::remove_file(&master_keys).unwrap();
    safekeep_node::crypto::MasterKeyFile::generate(&master_keys, "test-1").unwrap();
    let error = match Node::start(cluster.configs[&1].clone()).await {
        Ok(node) => {
            node.shutdown().await;
            panic!("a node with the wrong master key started");
        }
        Err(error) => error.to_string(),
    };
    assert!(error.contains("wrong master key"), "{error}");

    // With its own key back, it serves the value it had.
    std::fs::write(&master_keys, original).unwrap();
    cluster.restart(1).await;
    cluster.leader().await;
    assert_eq!(stored(&cluster, 1, &key, "acme", "k").await.unwrap().0, b"v");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_over_its_rate_is_refused_and_cannot_spend_another_tenants_tokens() {
    let cluster = TestCluster::start_secure(1, |c| {
        c.limits.tenant_requests_per_second = 1;
        c.limits.tenant_burst = 3;
    })
    .await;
    cluster.leader().await;
    let noisy = cluster.tenant_key("noisy", ApiKeyRole::Writer).await;
    let quiet = cluster.tenant_key("quiet", ApiKeyRole::Writer).await;
    let mut client = cluster.records(1).await;
    let mut codes = Vec::new();
    for _ in 0..6 {
        let result = client.get(keyed(get("noisy", "k"), &noisy)).await;
        codes.push(result.err().map_or(Code::Ok, |s| s.code()));
    }
    assert!(codes.contains(&Code::ResourceExhausted), "{codes:?}");
    // A key of one tenant naming another is refused, and spends none of the other's tokens.
    let mut crossing = Vec::new();
    for _ in 0..6 {
        let result = client.get(keyed(get("quiet", "k"), &noisy)).await;
        crossing.push(result.err().map_or(Code::Ok, |s| s.code()));
    }
    assert!(crossing.iter().all(|c| *c == Code::PermissionDenied), "{crossing:?}");
    let served = client.get(keyed(get("quiet", "k"), &quiet)).await.unwrap_err();
    assert_eq!(served.code(), Code::NotFound, "the quiet tenant is served");
    cluster.shutdown().await;
}
