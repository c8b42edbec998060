//! Crypto-shredding reaches the disk: after `DeleteTenant`, the tenant's
//! wrapped data keys leave the Raft log, the snapshot and RocksDB's files on
//! every node within a bound, and no file under any data directory holds
//! their bytes. Other tenants' data is untouched.

mod common;

use std::path::Path;

use common::{TestCluster, eventually, put};
use safekeep_api::v1::admin_client::AdminClient;
use safekeep_api::v1::{ApiKeyRole, DeleteTenantRequest, RotateDataKeyRequest};
use tonic::Code;

/// Every file under `dir` whose bytes contain one of `needles`.
fn files_holding(dir: &Path, needles: &[Vec<u8>]) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            // A file RocksDB removes meanwhile holds nothing any more.
            let Ok(bytes) = std::fs::read(&path) else { continue };
            if needles
                .iter()
                .any(|n| bytes.windows(n.len()).any(|w| w == n.as_slice()))
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_tenants_wrapped_keys_leave_every_file_of_every_node() {
    let cluster = TestCluster::start_secure(3, |_| {}).await;
    cluster.leader().await;
    let kept = cluster.tenant_key("kept", ApiKeyRole::Writer).await;
    let gone = cluster.tenant_key("gone", ApiKeyRole::Writer).await;
    let kept_version = cluster
        .put_keyed(1, &kept, put("kept", "k", b"stays", "shred", 1))
        .await;
    cluster.put_keyed(1, &gone, put("gone", "k", b"goes", "shred", 1)).await;
    let mut admin = AdminClient::new(cluster.channel(1).await);
    admin
        .rotate_data_key(RotateDataKeyRequest { tenant: "gone".into() })
        .await
        .unwrap();
    cluster
        .put_keyed(1, &gone, put("gone", "k2", b"goes too", "shred", 2))
        .await;
    let record = cluster.nodes[&1]
        .consensus()
        .reader()
        .tenant("gone")
        .unwrap()
        .expect("the tenant exists");
    let wrapped: Vec<Vec<u8>> = record.data_keys.iter().map(|k| k.wrapped.clone()).collect();
    assert_eq!(wrapped.len(), 2);
    let data_dirs: Vec<_> = cluster.configs.values().map(|c| c.data_dir.clone()).collect();
    let before: Vec<String> = data_dirs.iter().flat_map(|d| files_holding(d, &wrapped)).collect();
    assert!(!before.is_empty(), "the wrapped keys are on disk to begin with");

    admin
        .delete_tenant(DeleteTenantRequest {
            tenant: "gone".into(),
            reason: "the customer left".into(),
        })
        .await
        .unwrap();
    let remaining = eventually("the wrapped keys to leave every data directory", || {
        let (dirs, wrapped) = (&data_dirs, &wrapped);
        async move {
            let found: Vec<String> = dirs.iter().flat_map(|d| files_holding(d, wrapped)).collect();
            found.is_empty().then_some(found)
        }
    })
    .await;
    assert!(remaining.is_empty());

    assert_eq!(
        cluster.read_keyed(2, &kept, "kept", "k").await,
        Ok((b"stays".to_vec(), kept_version)),
        "another tenant's data is unchanged"
    );
    assert_eq!(
        cluster.read_keyed(2, &gone, "gone", "k").await,
        Err(Code::Unauthenticated)
    );
    cluster.shutdown().await;
}
