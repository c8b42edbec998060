//! The audit log: admin actions, membership changes and staff access to
//! records are appended through Raft with who, what, which tenant, when, why
//! and the result; the hash chain verifies, and editing one stored entry on a
//! node makes verification through that node fail.

mod common;

use common::{TestCluster, keyed, operator_sdk, put, tls_channel};
use safekeep_api::v1::ApiKeyRole;
use safekeep_api::v1::cluster_client::ClusterClient;
use safekeep_api::v1::records_client::RecordsClient;
use safekeep_api::v1::{GetRequest, TransferLeaderRequest};
use safekeep_client::AuditEntryInfo;
use safekeep_node::storage::audit::AuditEntry;
use tonic::Code;

fn find<'a>(entries: &'a [AuditEntryInfo], actor: &str, action: &str) -> &'a AuditEntryInfo {
    entries
        .iter()
        .find(|e| e.actor == actor && e.action == action)
        .unwrap_or_else(|| panic!("no {action} by {actor} in {entries:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_access_and_admin_actions_are_audited_and_tampering_is_detected() {
    let mut cluster = TestCluster::start_secure(3, |_| {}).await;
    let leader = cluster.leader().await;
    let key = cluster.tenant_key("acme", ApiKeyRole::Writer).await;
    cluster
        .records(1)
        .await
        .put(keyed(put("acme", "k", b"customer data", "audit", 1), &key))
        .await
        .unwrap();

    // A support read, with its reason.
    let files = common::support_files(cluster.certs.as_ref().unwrap(), "help");
    let address = cluster.addresses[&2].client.to_string();
    let mut staff = RecordsClient::new(tls_channel(&address, &files).await.unwrap());
    let mut read = tonic::Request::new(GetRequest {
        tenant: "acme".into(),
        key: "k".into(),
        consistency: 0,
    });
    read.metadata_mut()
        .insert(safekeep_api::wire::REASON, "ticket 4711".parse().unwrap());
    staff.get(read).await.unwrap();

    // An operator reaching for record data is refused, and that is audited too.
    let refused = cluster
        .records(1)
        .await
        .get(GetRequest {
            tenant: "acme".into(),
            key: "k".into(),
            consistency: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    // An operator action on the cluster.
    let target = (1..=3).find(|id| *id != leader).unwrap();
    ClusterClient::new(cluster.channel(1).await)
        .transfer_leader(TransferLeaderRequest { node_id: target })
        .await
        .unwrap();

    let sdk = operator_sdk(&cluster, &[1, 2, 3]).await;
    let entries = sdk.list_audit(0, 0).await.unwrap();
    let created = find(&entries, "operator:admin", "create-tenant");
    assert_eq!((created.tenant.as_str(), created.result.as_str()), ("acme", "ok"));
    find(&entries, "operator:admin", "issue-api-key");
    let support_read = find(&entries, "support:help", "support-read");
    assert_eq!(support_read.tenant, "acme");
    assert_eq!(support_read.reason, "ticket 4711");
    assert!(support_read.detail.contains("\"k\""), "{support_read:?}");
    assert_eq!(find(&entries, "operator:admin", "record-read").result, "denied");
    let transfer = find(&entries, "operator:admin", "transfer-leader");
    assert_eq!(transfer.detail, format!("node {target}"));
    assert!(
        entries.windows(2).all(|w| w[1].seq == w[0].seq + 1),
        "numbered without gaps"
    );
    let intact = sdk.verify_audit().await.unwrap();
    assert_eq!(intact.broken, None);
    assert_eq!(intact.entries, entries.len() as u64);

    // Edit one stored entry on node 3: verification through node 3 fails, elsewhere it holds.
    cluster.stop(3).await;
    {
        let db = common::open_stopped_db(&cluster.configs[&3].data_dir);
        let sm = db.cf_handle("sm").unwrap();
        let mut key = vec![0x05];
        key.extend_from_slice(&support_read.seq.to_be_bytes());
        let bytes = db.get_cf(&sm, &key).unwrap().expect("the entry is on node 3");
        let mut entry: AuditEntry = postcard::from_bytes(&bytes).unwrap();
        entry.reason = "routine check".into();
        db.put_cf(&sm, &key, postcard::to_allocvec(&entry).unwrap()).unwrap();
        db.flush_cf(&sm).unwrap();
    }
    cluster.restart(3).await;
    let through_3 = operator_sdk(&cluster, &[3]).await.verify_audit().await.unwrap();
    let broken = through_3.broken.expect("the edit is detected");
    assert!(broken.contains(&format!("entry {}", support_read.seq)), "{broken}");
    let through_1 = operator_sdk(&cluster, &[1]).await.verify_audit().await.unwrap();
    assert_eq!(through_1.broken, None, "the other replicas are intact");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_access_with_a_key_an_operator_issued_is_audited_as_that_operators() {
    use safekeep_api::v1::admin_client::AdminClient;
    use safekeep_api::v1::{IssueApiKeyRequest, ListRequest};
    let cluster = TestCluster::start_secure(1, |_| {}).await;
    cluster.leader().await;
    // The tenant's own key, issued with its admin key.
    let own = cluster.tenant_key("acme", ApiKeyRole::Writer).await;
    let mut records = cluster.records(1).await;
    records
        .put(keyed(put("acme", "k", b"customer data", "own", 1), &own))
        .await
        .unwrap();
    let admin = AdminClient::new(cluster.channel(1).await);
    let staff_key = |role: ApiKeyRole| {
        let request = IssueApiKeyRequest {
            tenant: "acme".into(),
            role: role as i32,
            label: "operator's own".into(),
        };
        let mut admin = admin.clone();
        async move { admin.issue_api_key(request).await.unwrap().into_inner() }
    };
    let reader = staff_key(ApiKeyRole::Reader).await;
    let writer = staff_key(ApiKeyRole::Writer).await;
    let reader_id = reader.key.unwrap().key_id;
    let writer_id = writer.key.unwrap().key_id;

    let read = records
        .get(keyed(common::get("acme", "k"), &reader.secret))
        .await
        .unwrap();
    assert_eq!(read.into_inner().record.unwrap().value, b"customer data");
    let list = ListRequest {
        tenant: "acme".into(),
        prefix: String::new(),
        page_token: String::new(),
        limit: 0,
        consistency: 0,
    };
    assert_eq!(
        records
            .list(keyed(list, &reader.secret))
            .await
            .unwrap()
            .into_inner()
            .records
            .len(),
        1
    );
    records
        .put(keyed(put("acme", "k2", b"planted", "staff", 1), &writer.secret))
        .await
        .unwrap();

    let entries = operator_sdk(&cluster, &[1]).await.list_audit(0, 0).await.unwrap();
    let as_staff = |key_id: &str| format!("operator:admin via api-key:{key_id}@acme");
    let reads: Vec<&AuditEntryInfo> = entries
        .iter()
        .filter(|e| e.actor == as_staff(&reader_id) && e.action == "staff-key-read")
        .collect();
    assert_eq!(reads.len(), 2, "the get and the list: {entries:#?}");
    assert!(reads.iter().all(|e| e.tenant == "acme" && e.result == "ok"));
    assert!(reads[0].detail.contains("\"k\""), "{:?}", reads[0]);
    let write = find(&entries, &as_staff(&writer_id), "staff-key-write");
    assert!(write.detail.contains("\"k2\"") && write.result == "ok", "{write:?}");
    assert!(
        !entries
            .iter()
            .any(|e| e.action.starts_with("staff-key") && !e.actor.starts_with("operator:admin via")),
        "the tenant's own key is not staff access: {entries:#?}"
    );
    // Stored data is as written: the audit changed nothing.
    let value = records.get(keyed(common::get("acme", "k"), &own)).await.unwrap();
    assert_eq!(value.into_inner().record.unwrap().value, b"customer data");
    cluster.shutdown().await;
}
