//! Record expiry on a real three-node cluster with TLS: records past their
//! time to live and records a tenant has not written for longer than its
//! retention window are removed, and nothing else: not a record with a long
//! time to live, not one written again without one, not a tenant's records
//! without a window, not records written since. Every removal is audited,
//! and every replica holds the same records afterwards.

mod common;

use std::time::Duration;

use common::{TestCluster, TlsFiles, eventually, operator_sdk};
use safekeep_api::v1::ApiKeyRole;
use safekeep_client::{ApiKey, Client, ClientConfig, ClientTls};

/// Records given a one-second time to live.
const SHORT_LIVED: usize = 12;
/// Records of the tenant with a retention window, written before it passes.
const OLD_RECORDS: usize = 8;
/// The retention window of tenant globex.
const WINDOW: Duration = Duration::from_secs(3);

async fn tenant_sdk(cluster: &TestCluster, api_key: &str) -> Client {
    let certs = cluster.certs.as_ref().expect("a secure cluster");
    let tls = ClientTls::from_files(&TlsFiles::operator(certs).ca, None).unwrap();
    let endpoints: Vec<String> = cluster.addresses.values().map(|a| a.client.to_string()).collect();
    let config = ClientConfig::new(endpoints)
        .with_tls(tls)
        .with_api_key(ApiKey::new(api_key).unwrap());
    Client::connect(config).await.unwrap()
}

async fn value_of(client: &Client, tenant: &str, key: &str) -> Option<Vec<u8>> {
    client.get(tenant, key).await.unwrap().map(|record| record.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_removes_exactly_the_expired_records_on_every_replica() {
    let cluster = TestCluster::start_secure(3, |_| {}).await;
    let acme_key = cluster.tenant_key("acme", ApiKeyRole::Admin).await;
    let globex_key = cluster.tenant_key("globex", ApiKeyRole::Admin).await;
    let acme = tenant_sdk(&cluster, &acme_key).await;
    let globex = tenant_sdk(&cluster, &globex_key).await;
    let second = Duration::from_secs(1);

    // Time to live: short ones go; a long one, a rewritten one and plain ones stay.
    for i in 0..SHORT_LIVED {
        acme.put_with_ttl("acme", &format!("short/{i}"), b"gone soon".to_vec(), second)
            .await
            .unwrap();
    }
    acme.put_with_ttl("acme", "long", b"an hour".to_vec(), Duration::from_secs(3600))
        .await
        .unwrap();
    acme.put_with_ttl("acme", "rewritten", b"first".to_vec(), second)
        .await
        .unwrap();
    acme.put("acme", "rewritten", b"kept".to_vec()).await.unwrap();
    acme.put("acme", "plain", b"no ttl".to_vec()).await.unwrap();
    assert!(
        acme.put_with_ttl("acme", "bad", b"x".to_vec(), Duration::from_millis(500))
            .await
            .is_err(),
        "a time to live under a second is refused"
    );

    // Retention: globex keeps records three seconds after their last write.
    globex.set_retention("globex", Some(WINDOW)).await.unwrap();
    for i in 0..OLD_RECORDS {
        globex
            .put("globex", &format!("old/{i}"), b"old".to_vec())
            .await
            .unwrap();
    }

    eventually("the short-lived acme records to go", || async {
        for i in 0..SHORT_LIVED {
            if value_of(&acme, "acme", &format!("short/{i}")).await.is_some() {
                return None;
            }
        }
        Some(())
    })
    .await;
    assert_eq!(value_of(&acme, "acme", "long").await.as_deref(), Some(&b"an hour"[..]));
    assert_eq!(
        value_of(&acme, "acme", "rewritten").await.as_deref(),
        Some(&b"kept"[..])
    );
    assert_eq!(value_of(&acme, "acme", "plain").await.as_deref(), Some(&b"no ttl"[..]));

    eventually("globex's records older than its window to go", || async {
        for i in 0..OLD_RECORDS {
            if value_of(&globex, "globex", &format!("old/{i}")).await.is_some() {
                return None;
            }
        }
        Some(())
    })
    .await;
    globex.put("globex", "new", b"fresh".to_vec()).await.unwrap();
    assert_eq!(value_of(&globex, "globex", "new").await.as_deref(), Some(&b"fresh"[..]));
    assert_eq!(
        value_of(&acme, "acme", "plain").await.as_deref(),
        Some(&b"no ttl"[..]),
        "a tenant without a window keeps its records"
    );

    // Every removal is in the audit log, by the sweeper.
    let audit = operator_sdk(&cluster, &[1]).await.list_audit(0, 0).await.unwrap();
    let expiries: Vec<_> = audit.iter().filter(|e| e.action == "expire").collect();
    assert!(
        expiries.iter().any(|e| e.tenant == "acme") && expiries.iter().any(|e| e.tenant == "globex"),
        "{expiries:#?}"
    );
    assert!(expiries.iter().all(|e| e.actor == "retention"), "{expiries:#?}");
    assert!(
        audit
            .iter()
            .any(|e| e.action == "set-retention" && e.tenant == "globex")
    );

    // The replicas agree, record for record.
    let leader = cluster.leader().await;
    let applied = cluster.nodes[&leader].consensus().view().applied_index;
    for id in 1..=3 {
        cluster.wait_applied(id, applied).await;
    }
    let digests: Vec<_> = (1..=3)
        .map(|id| cluster.nodes[&id].consensus().reader().digest().unwrap())
        .collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
    cluster.shutdown().await;
}
