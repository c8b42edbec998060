//! Key lifecycle: a tenant's data key rotates and old versions still
//! decrypt; a master key rotates by rewrapping data keys, after which the old
//! master key can go without any value being re-encrypted; deleting a tenant
//! destroys its data keys, so a saved copy of its ciphertext never decrypts
//! again, even under a new tenant of the same name.

mod common;

use common::{TestCluster, open_stopped_db, put, record_storage_key};
use safekeep_api::v1::admin_client::AdminClient;
use safekeep_api::v1::{
    ApiKeyRole, DeleteTenantRequest, ListTenantsRequest, RewrapDataKeysRequest, RotateDataKeyRequest,
};
use tonic::Code;

async fn write(cluster: &TestCluster, api_key: &str, key: &str, value: &[u8]) -> u64 {
    let mut request = put("acme", key, value, "keys", 0);
    request.write_id = None;
    cluster.put_keyed(1, api_key, request).await
}

async fn read(cluster: &TestCluster, api_key: &str, key: &str) -> Result<(Vec<u8>, u64), Code> {
    cluster.read_keyed(1, api_key, "acme", key).await
}

async fn admin(cluster: &TestCluster) -> AdminClient<tonic::transport::Channel> {
    AdminClient::new(cluster.channel(1).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_keys_rotate_and_master_keys_rewrap_without_reencrypting() {
    let mut cluster = TestCluster::start_secure(1, |_| {}).await;
    cluster.leader().await;
    let key = cluster.tenant_key("acme", ApiKeyRole::Writer).await;
    let v1 = write(&cluster, &key, "old", b"sealed with v1").await;

    let rotated = admin(&cluster)
        .await
        .rotate_data_key(RotateDataKeyRequest { tenant: "acme".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rotated.data_key_version, 2);
    let v2 = write(&cluster, &key, "new", b"sealed with v2").await;
    assert_eq!(read(&cluster, &key, "old").await, Ok((b"sealed with v1".to_vec(), v1)));
    assert_eq!(read(&cluster, &key, "new").await, Ok((b"sealed with v2".to_vec(), v2)));

    // A new master key, listed first: it wraps from now on, the old one still unwraps.
    let master_keys = cluster.certs.as_ref().unwrap().join("master.keys");
    let old_keys = std::fs::read_to_string(&master_keys).unwrap();
    let staging = tempfile::tempdir().unwrap();
    let fresh = staging.path().join("fresh.keys");
    safekeep_node::crypto::MasterKeyFile::generate(&fresh, "test-2").unwrap();
    let new_key_line: String = std::fs::read_to_string(&fresh)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect();
    cluster.stop(1).await;
    std::fs::write(&master_keys, format!("{new_key_line}\n{old_keys}")).unwrap();
    cluster.restart(1).await;
    cluster.leader().await;
    let rewrap = admin(&cluster)
        .await
        .rewrap_data_keys(RewrapDataKeysRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((rewrap.tenants, rewrap.master_key_id.as_str()), (1, "test-2"));

    // The old master key is gone: the node starts and every value reads as before.
    cluster.stop(1).await;
    std::fs::write(&master_keys, format!("{new_key_line}\n")).unwrap();
    cluster.restart(1).await;
    cluster.leader().await;
    assert_eq!(read(&cluster, &key, "old").await, Ok((b"sealed with v1".to_vec(), v1)));
    assert_eq!(read(&cluster, &key, "new").await, Ok((b"sealed with v2".to_vec(), v2)));
    let tenants = admin(&cluster).await.list_tenants(ListTenantsRequest {}).await.unwrap();
    assert_eq!(tenants.into_inner().tenants[0].data_key_version, 2);
    cluster.shutdown().await;
}

fn with_raw_db<T>(cluster: &TestCluster, each: impl FnOnce(&rocksdb::DB, &rocksdb::ColumnFamily) -> T) -> T {
    let db = open_stopped_db(&cluster.configs[&1].data_dir);
    let sm = db.cf_handle("sm").unwrap();
    let out = each(&db, sm);
    db.flush_cf(sm).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_tenants_ciphertext_never_decrypts_again() {
    let mut cluster = TestCluster::start_secure(1, |_| {}).await;
    cluster.leader().await;
    let key = cluster.tenant_key("acme", ApiKeyRole::Writer).await;
    write(&cluster, &key, "k", b"to be shredded").await;
    cluster.stop(1).await;
    let saved = with_raw_db(&cluster, |db, sm| {
        db.get_cf(sm, record_storage_key("acme", "k")).unwrap().unwrap()
    });
    cluster.restart(1).await;
    cluster.leader().await;

    let delete = DeleteTenantRequest {
        tenant: "acme".into(),
        reason: "customer asked for erasure".into(),
    };
    admin(&cluster).await.delete_tenant(delete).await.unwrap();
    assert_eq!(
        read(&cluster, &key, "k").await,
        Err(Code::Unauthenticated),
        "its keys are revoked"
    );

    // A new tenant of the same name gets new data keys and none of the old records.
    let new_key = cluster.tenant_key("acme", ApiKeyRole::Writer).await;
    assert_eq!(
        read(&cluster, &new_key, "k").await,
        Err(Code::NotFound),
        "the records went with the tenant"
    );
    assert_eq!(
        read(&cluster, &key, "k").await,
        Err(Code::Unauthenticated),
        "old keys stay revoked"
    );
    // The saved ciphertext, put back on disk, stays sealed: its data key is gone.
    cluster.stop(1).await;
    with_raw_db(&cluster, |db, sm| {
        db.put_cf(sm, record_storage_key("acme", "k"), &saved).unwrap();
    });
    cluster.restart(1).await;
    cluster.leader().await;
    assert_eq!(read(&cluster, &new_key, "k").await, Err(Code::DataLoss));
    cluster.shutdown().await;
}
