//! The AWS KMS key provider against a KMS API on loopback (moto's server,
//! started by scripts/check-kms.sh, which also supplies fake credentials):
//! data keys round-trip under the key's ARN and only for their own tenant and
//! version; unusable keys are refused at start with a reason; and a secure
//! cluster with a KMS key seals records, reads them after restarts, switches
//! keys with `rewrap-keys`, and refuses to start once its key is disabled.
//! A KMS failure that may pass (a KMS server of the test's own, stopped
//! mid-run) reaches clients as UNAVAILABLE, which the SDK retries, not as
//! INTERNAL. A KMS made slow (a delaying proxy in front of the server)
//! stalls only the requests that need it: the node's runtime keeps answering,
//! Raft keeps its term, and concurrent misses for one key wait on one
//! `Decrypt`. Without the server these tests fail, saying how to run them.

mod common;
mod slow_kms;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use common::{TestCluster, get, keyed, open_stopped_db, put, record_storage_key};
use safekeep_api::v1::admin_client::AdminClient;
use safekeep_api::v1::{ApiKeyRole, CreateTenantRequest, RewrapDataKeysRequest, RotateDataKeyRequest, StatusRequest};
use safekeep_node::config::EncryptionSettings;
use safekeep_node::crypto::kms::{KMS_CALL_TIMEOUT, KMS_WAIT_MARGIN};
use safekeep_node::crypto::{CryptoError, DataKeys, KeyProvider, KmsKeyProvider};
use safekeep_node::model::command::WrappedDataKey;
use safekeep_node::{Node, NodeListeners};
use slow_kms::DelayingProxy;
use tokio::net::TcpListener;

/// Variable naming the KMS endpoint under test.
const ENDPOINT_ENV: &str = "SAFEKEEP_TEST_KMS_ENDPOINT";
/// Region the test keys live in.
const REGION: &str = "us-east-1";
/// Variable naming the KMS server program, for a test that runs (and stops) a server of its own.
const KMS_SERVER_ENV: &str = "SAFEKEEP_TEST_KMS_SERVER";
/// Longest a KMS server of the test's own may take to accept connections.
const KMS_SERVER_STARTUP: Duration = Duration::from_secs(30);
/// How long the slow KMS holds each request: past the test clusters' longest
/// election timeout (600 ms) twice over, under one KMS attempt's timeout.
const KMS_STALL: Duration = Duration::from_millis(2_000);
/// Reads of one tenant sent at once to a node that has not unwrapped its data key.
const CONCURRENT_MISSES: usize = 16;
/// Records of the stalled tenant written before the stall and read back during it.
const STALLED_RECORDS: usize = 4;
/// Longest requests that need no KMS may take while it stalls, counted from
/// when the stalled `Decrypt` reached KMS: a fraction of `KMS_STALL`.
const NON_KMS_ANSWER_BOUND: Duration = Duration::from_millis(500);

/// The KMS endpoint under test; these tests never run against anything else.
fn endpoint() -> String {
    match std::env::var(ENDPOINT_ENV) {
        Ok(endpoint) if !endpoint.is_empty() => {
            assert!(
                std::env::var_os("AWS_ACCESS_KEY_ID").is_some(),
                "{ENDPOINT_ENV} is set but AWS_ACCESS_KEY_ID is not: run these tests through scripts/check-kms.sh"
            );
            endpoint
        }
        _ => panic!(
            "{ENDPOINT_ENV} is not set: these tests need a KMS API on loopback; run scripts/check-kms.sh, which \
             starts one and runs them"
        ),
    }
}

fn kms_settings(key_id: &str) -> EncryptionSettings {
    EncryptionSettings {
        kms_key_id: Some(key_id.to_string()),
        kms_region: Some(REGION.into()),
        kms_endpoint: Some(endpoint()),
        ..EncryptionSettings::default()
    }
}

/// An SDK client for setting up keys, as an operator would.
async fn kms_admin() -> aws_sdk_kms::Client {
    kms_admin_at(&endpoint()).await
}

/// An SDK client for setting up keys on the KMS server at `endpoint`.
async fn kms_admin_at(endpoint: &str) -> aws_sdk_kms::Client {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .region(Region::new(REGION))
        .load()
        .await;
    let config = aws_sdk_kms::config::Builder::from(&shared)
        .endpoint_url(endpoint)
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

/// Creates a symmetric encryption key (usage and spec named, as the test server
/// has no defaults for them); returns its ARN.
async fn create_key(kms: &aws_sdk_kms::Client, description: &str) -> String {
    let created = kms
        .create_key()
        .description(description)
        .key_usage(KeyUsageType::EncryptDecrypt)
        .key_spec(KeySpec::SymmetricDefault)
        .send()
        .await
        .expect("create a KMS key");
    created.key_metadata().unwrap().arn().unwrap().to_string()
}

/// Disables a key, named by its key id (the test server takes no ARN here).
async fn disable_key(kms: &aws_sdk_kms::Client, arn: &str) {
    let key_id = arn.rsplit('/').next().unwrap();
    kms.disable_key()
        .key_id(key_id)
        .send()
        .await
        .expect("disable the KMS key");
}

/// Connects a provider off the async workers (as `Node::start` would block one).
async fn connect(settings: EncryptionSettings) -> Result<KmsKeyProvider, CryptoError> {
    tokio::task::spawn_blocking(move || KmsKeyProvider::connect(&settings))
        .await
        .unwrap()
}

fn unwrap_error(provider: &KmsKeyProvider, tenant: &str, wrapped: &WrappedDataKey) -> CryptoError {
    provider.unwrap(tenant, wrapped).expect_err("refused")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_key_wraps_under_the_key_arn_and_unwraps_only_for_its_tenant_and_version() {
    let kms = kms_admin().await;
    let arn = create_key(&kms, "round trip").await;
    kms.create_alias()
        .alias_name("alias/safekeep-round-trip")
        .target_key_id(&arn)
        .send()
        .await
        .unwrap();

    // Configured by alias: the provider resolves and records the key's ARN.
    let provider = connect(kms_settings("alias/safekeep-round-trip")).await.unwrap();
    assert_eq!(provider.current_key_id(), arn);
    let data_key = [42u8; 32];
    let wrapped = provider.wrap("acme", 3, &data_key).unwrap();
    assert_eq!(wrapped.master_key_id, arn, "the wrapped key names the key ARN");
    assert_eq!(wrapped.version, 3);
    assert!(!wrapped.wrapped.windows(data_key.len()).any(|w| w == data_key));
    assert_eq!(provider.unwrap("acme", &wrapped).unwrap(), data_key);

    // Moved to another tenant or version, or altered: refused as the wrong key.
    assert!(matches!(
        unwrap_error(&provider, "globex", &wrapped),
        CryptoError::WrongMasterKey { .. }
    ));
    let mut other_version = wrapped.clone();
    other_version.version = 4;
    assert!(matches!(
        unwrap_error(&provider, "acme", &other_version),
        CryptoError::WrongMasterKey { .. }
    ));
    let mut altered = wrapped.clone();
    *altered.wrapped.last_mut().unwrap() ^= 1;
    assert!(matches!(
        unwrap_error(&provider, "acme", &altered),
        CryptoError::WrongMasterKey { .. }
    ));
    // Wrapped by a key file's key: not a KMS key.
    let mut from_file = wrapped.clone();
    from_file.master_key_id = "k1".into();
    assert!(matches!(
        unwrap_error(&provider, "acme", &from_file),
        CryptoError::UnknownMasterKey(_)
    ));

    // A provider on another key still unwraps by the recorded ARN, and wraps anew under its own.
    let second = create_key(&kms, "second").await;
    let switched = connect(kms_settings(&second)).await.unwrap();
    assert_eq!(switched.unwrap("acme", &wrapped).unwrap(), data_key);
    let rewrapped = switched.wrap("acme", 3, &data_key).unwrap();
    assert_eq!(rewrapped.master_key_id, second);

    // Through `DataKeys`, as the node uses it: values seal and open.
    let keys = DataKeys::new(Arc::new(provider));
    let fresh = keys.new_data_key("acme", 1).unwrap();
    assert_eq!(fresh.master_key_id, arn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_keys_are_refused_at_start_with_the_reason() {
    let kms = kms_admin().await;
    let unusable = |result: Result<KmsKeyProvider, CryptoError>| match result {
        Err(e @ CryptoError::KmsKeyUnusable { .. }) => e.to_string(),
        Err(other) => panic!("expected an unusable key, got: {other}"),
        Ok(provider) => panic!(
            "expected an unusable key, got a provider for {}",
            provider.current_key_id()
        ),
    };

    let missing = unusable(connect(kms_settings("alias/safekeep-no-such-key")).await);
    assert!(missing.contains("NotFoundException"), "{missing}");

    let disabled_arn = create_key(&kms, "disabled").await;
    disable_key(&kms, &disabled_arn).await;
    let disabled = unusable(connect(kms_settings(&disabled_arn)).await);
    assert!(disabled.contains("the key is disabled"), "{disabled}");

    let signing = kms
        .create_key()
        .key_usage(KeyUsageType::SignVerify)
        .key_spec(KeySpec::Rsa2048)
        .send()
        .await
        .unwrap();
    let signing_arn = signing.key_metadata().unwrap().arn().unwrap().to_string();
    let wrong_usage = unusable(connect(kms_settings(&signing_arn)).await);
    assert!(wrong_usage.contains("not ENCRYPT_DECRYPT"), "{wrong_usage}");

    // Nothing listens here: a typed error within the call bound, not a hang.
    let enabled_arn = create_key(&kms, "unreachable").await;
    let mut unreachable = kms_settings(&enabled_arn);
    let closed_port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    unreachable.kms_endpoint = Some(format!("http://{closed_port}"));
    let started = Instant::now();
    let refused = unusable(connect(unreachable).await);
    assert!(
        started.elapsed() < KMS_CALL_TIMEOUT + KMS_WAIT_MARGIN,
        "{:?}",
        started.elapsed()
    );
    assert!(refused.contains("dispatch failure"), "{refused}");
}

async fn admin(cluster: &TestCluster) -> AdminClient<tonic::transport::Channel> {
    AdminClient::new(cluster.channel(1).await)
}

/// Stops every node, points each at `key_id`, and starts them all again.
async fn restart_all_with_key(cluster: &mut TestCluster, key_id: &str) {
    let ids: Vec<u64> = cluster.configs.keys().copied().collect();
    for id in &ids {
        cluster.stop(*id).await;
    }
    for id in ids.iter().rev() {
        cluster.configs.get_mut(id).unwrap().encryption = kms_settings(key_id);
        cluster.restart(*id).await;
    }
    cluster.leader().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_on_a_kms_key_seals_records_survives_restarts_and_switches_keys() {
    let kms = kms_admin().await;
    let first = create_key(&kms, "cluster first").await;
    let settings = kms_settings(&first);
    let mut cluster = TestCluster::start_secure(3, move |config| config.encryption = settings.clone()).await;
    cluster.leader().await;
    let api_key = cluster.tenant_key("acme", ApiKeyRole::Writer).await;
    let marker = b"kms-sealed-record-7f3a9c".to_vec();
    let mut request = put("acme", "customers/1", &marker, "kms", 1);
    request.write_id = None;
    let version = cluster.put_keyed(1, &api_key, request).await;
    for id in 1..=3 {
        common::eventually("every node reads the record", || async {
            (cluster.read_keyed(id, &api_key, "acme", "customers/1").await == Ok((marker.clone(), version)))
                .then_some(())
        })
        .await;
    }

    // On disk only ciphertext; a restarted node unwraps through KMS and reads it.
    cluster.stop(3).await;
    {
        let db = open_stopped_db(&cluster.configs[&3].data_dir);
        let sm = db.cf_handle("sm").unwrap();
        let stored = db
            .get_cf(sm, record_storage_key("acme", "customers/1"))
            .unwrap()
            .expect("the record is on node 3");
        assert!(!stored.windows(marker.len()).any(|w| w == marker.as_slice()));
    }
    cluster.restart(3).await;
    assert_eq!(
        cluster.read_keyed(3, &api_key, "acme", "customers/1").await,
        Ok((marker.clone(), version))
    );

    // Switch every node to a second key and rewrap: the tenant's keys now name its ARN.
    let second = create_key(&kms, "cluster second").await;
    restart_all_with_key(&mut cluster, &second).await;
    assert_eq!(
        cluster.read_keyed(2, &api_key, "acme", "customers/1").await,
        Ok((marker.clone(), version))
    );
    let rewrap = admin(&cluster)
        .await
        .rewrap_data_keys(RewrapDataKeysRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((rewrap.tenants, rewrap.master_key_id.as_str()), (1, second.as_str()));
    let rotated = admin(&cluster)
        .await
        .rotate_data_key(RotateDataKeyRequest { tenant: "acme".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rotated.data_key_version, 2);
    let mut newer = put("acme", "customers/2", b"sealed under data key 2", "kms", 2);
    newer.write_id = None;
    let newer_version = cluster.put_keyed(1, &api_key, newer).await;

    // Nothing names the first key any more: a second rewrap has nothing to do,
    // and with the first key disabled everything still reads after a restart.
    let again = admin(&cluster)
        .await
        .rewrap_data_keys(RewrapDataKeysRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.tenants, 0);
    disable_key(&kms, &first).await;
    restart_all_with_key(&mut cluster, &second).await;
    assert_eq!(
        cluster.read_keyed(1, &api_key, "acme", "customers/1").await,
        Ok((marker.clone(), version))
    );
    assert_eq!(
        cluster.read_keyed(3, &api_key, "acme", "customers/2").await,
        Ok((b"sealed under data key 2".to_vec(), newer_version))
    );

    // The cluster's key disabled: a node refuses to start and says why.
    cluster.stop(1).await;
    disable_key(&kms, &second).await;
    let a = &cluster.addresses[&1];
    let listeners = NodeListeners::tcp(
        TcpListener::bind(a.client).await.unwrap(),
        TcpListener::bind(a.peer).await.unwrap(),
        TcpListener::bind(a.http).await.unwrap(),
    );
    let refused = tokio::time::timeout(
        Duration::from_secs(60),
        Node::start_with_listeners(cluster.configs[&1].clone(), listeners),
    )
    .await
    .expect("start-up answers in bounded time")
    .err()
    .expect("a node whose KMS key is disabled refuses to start");
    let refused = refused.to_string();
    assert!(refused.contains(&second) && refused.contains("disabled"), "{refused}");
    cluster.shutdown().await;
}

/// A KMS server of one test's own on loopback, stopped when dropped.
struct OwnKmsServer {
    child: std::process::Child,
    endpoint: String,
}

impl OwnKmsServer {
    /// Starts the server `SAFEKEEP_TEST_KMS_SERVER` names on a port the
    /// kernel picks for it, and returns once it says where it listens. (A
    /// port picked here and handed over would be free for a moment, and a
    /// listener of another test could take it before the server does.)
    async fn start() -> Self {
        use std::io::BufRead;

        let program = std::env::var(KMS_SERVER_ENV)
            .unwrap_or_else(|_| panic!("{KMS_SERVER_ENV} is not set: run scripts/check-kms.sh, which sets it"));
        let mut child = std::process::Command::new(program)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the KMS server");
        let stderr = child.stderr.take().expect("the server's stderr");
        let (found, endpoint) = std::sync::mpsc::channel();
        // Reads the startup lines for the address, then drains the request
        // log so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if let Some(at) = line.find("Running on http://")
                    && let Some(found) = found.take()
                {
                    let address = line[at + "Running on ".len()..].trim().to_string();
                    let _ = found.send(address);
                }
            }
        });
        let endpoint = tokio::task::spawn_blocking(move || endpoint.recv_timeout(KMS_SERVER_STARTUP))
            .await
            .unwrap()
            .expect("the KMS server says where it listens");
        Self { child, endpoint }
    }

    /// Kills the server and waits for it to exit.
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnKmsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kms_server_stopped_mid_run_makes_key_operations_unavailable_not_internal() {
    let mut server = OwnKmsServer::start().await;
    let kms = kms_admin_at(&server.endpoint).await;
    let arn = create_key(&kms, "stopped mid-run").await;
    let mut settings = kms_settings(&arn);
    settings.kms_endpoint = Some(server.endpoint.clone());
    let cluster = TestCluster::start_secure(1, move |config| config.encryption = settings.clone()).await;
    cluster.leader().await;
    let create = |tenant: &'static str| {
        let cluster = &cluster;
        async move {
            admin(cluster)
                .await
                .create_tenant(CreateTenantRequest { tenant: tenant.into() })
                .await
        }
    };
    create("before").await.expect("a tenant while KMS answers");

    // The server stopped mid-run: UNAVAILABLE, which the SDK retries.
    server.stop();
    let stopped = create("while-stopped").await.expect_err("refused");
    assert_eq!(stopped.code(), tonic::Code::Unavailable, "{stopped:?}");
    assert!(stopped.message().contains("Encrypt"), "{stopped:?}");
    cluster.shutdown().await;
}

/// Each node's term and the leader it follows.
fn terms(cluster: &TestCluster) -> Vec<(u64, u64, Option<u64>)> {
    cluster
        .nodes
        .iter()
        .map(|(id, node)| {
            let view = node.consensus().view();
            (*id, view.term, view.leader_id)
        })
        .collect()
}

// One worker thread, which every node and the test share: an unwrap that
// blocked it would stall every node, so a regression cannot hide behind a
// second worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_slow_kms_stalls_only_the_requests_that_need_it_and_is_asked_once_per_key() {
    let kms = kms_admin().await;
    let arn = create_key(&kms, "slow").await;
    let proxy = DelayingProxy::start(&endpoint());
    let mut settings = kms_settings(&arn);
    settings.kms_endpoint = Some(proxy.endpoint().to_string());
    let cluster = TestCluster::start_secure(3, move |config| config.encryption = settings.clone()).await;
    let leader = cluster.leader().await;
    let stalled = *cluster.nodes.keys().find(|id| **id != leader).unwrap();

    // "acme" is written through the leader only, so node `stalled` has never
    // unwrapped its data key; "globex" is written through `stalled`, which caches its key.
    let acme = cluster.tenant_key("acme", ApiKeyRole::Writer).await;
    let mut written = Vec::new();
    for i in 0..STALLED_RECORDS {
        let (key, value) = (format!("customers/{i}"), format!("acme record {i}").into_bytes());
        let mut request = put("acme", &key, &value, "slow-kms", i as u64 + 1);
        request.write_id = None;
        let version = cluster.put_keyed(leader, &acme, request).await;
        written.push((key, value, version));
    }
    let globex = cluster.tenant_key("globex", ApiKeyRole::Writer).await;
    let mut request = put("globex", "cached", b"globex record", "slow-kms", 1);
    request.write_id = None;
    let globex_version = cluster.put_keyed(stalled, &globex, request).await;
    let records = cluster.records(stalled).await;
    let mut status = cluster.cluster(stalled).await;
    let before = terms(&cluster);
    assert!(before.iter().all(|(_, _, l)| *l == Some(leader)), "{before:?}");

    // KMS slows down; reads of "acme" on `stalled` must unwrap its key through it.
    let decrypts_before = proxy.decrypts();
    proxy.set_delay(KMS_STALL);
    let started = Instant::now();
    let reads: Vec<_> = (0..CONCURRENT_MISSES)
        .map(|i| {
            let (mut records, acme) = (records.clone(), acme.clone());
            let key = written[i % STALLED_RECORDS].0.clone();
            tokio::spawn(async move { records.get(keyed(get("acme", &key), &acme)).await })
        })
        .collect();
    let stall_began = common::eventually("a Decrypt held by the slow KMS", || async {
        (proxy.decrypts() > decrypts_before)
            .then(|| proxy.last_decrypt_arrival())
            .flatten()
    })
    .await;

    // While it is held, the node answers what needs no KMS: its status, and a
    // read of a tenant whose key it has.
    let header = status
        .status(StatusRequest {})
        .await
        .expect("status during the stall")
        .into_inner()
        .header
        .unwrap();
    let cached = records
        .clone()
        .get(keyed(get("globex", "cached"), &globex))
        .await
        .expect("a cached tenant's read during the stall")
        .into_inner()
        .record
        .unwrap();
    let answered = stall_began.elapsed();
    let held = proxy.decrypts_held();
    assert!(
        held > 0,
        "the runtime answered {answered:?} after the Decrypt reached KMS, once KMS had answered it: it was blocked"
    );
    assert!(
        answered < NON_KMS_ANSWER_BOUND,
        "{answered:?} during a {KMS_STALL:?} stall"
    );
    assert_eq!(
        (cached.value.as_slice(), cached.version),
        (&b"globex record"[..], globex_version)
    );
    assert_eq!((header.term, header.leader_id), (before[0].1, leader));
    assert!(reads.iter().all(|read| !read.is_finished()), "a read passed the stall");

    // Every stalled read answers with what was written, after one Decrypt.
    for (i, read) in reads.into_iter().enumerate() {
        let record = read
            .await
            .unwrap()
            .expect("a read after the stall")
            .into_inner()
            .record
            .unwrap();
        let (_, value, version) = &written[i % STALLED_RECORDS];
        assert_eq!((&record.value, record.version), (value, *version));
    }
    let waited = started.elapsed();
    assert!(waited >= KMS_STALL, "the reads waited {waited:?}: the key was cached");
    let decrypts = proxy.decrypts() - decrypts_before;
    assert_eq!(decrypts, 1, "{CONCURRENT_MISSES} concurrent misses for one key");
    let after = terms(&cluster);
    assert_eq!(after, before, "no election during the stall");
    eprintln!(
        "slow KMS: {KMS_STALL:?} stall, {decrypts} Decrypt for {CONCURRENT_MISSES} misses, reads took \
         {waited:?}; status and a cached read answered {answered:?} into the stall; terms {after:?}"
    );
    cluster.shutdown().await;
}
