//! The `safekeep` binary against a real node with TLS, with both an
//! operator's certificate and a tenant's API key in its environment (as the
//! README's quick start leaves them): operator-only commands act as the
//! operator, record commands as the tenant, and `--as` overrides either.
//! `backup now` (operator-only) waits for a full backup that covers its
//! request, and `cluster status` then shows it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use safekeep_node::config::{BackupSettings, EncryptionSettings, ListenAddresses, RaftSettings};
use safekeep_node::crypto::MasterKeyFile;
use safekeep_node::local_cluster::{ClientCredentials, node_tls};
use safekeep_node::tls::CertPrincipal;
use safekeep_node::tls::certs::{DevBundleSpec, write_dev_bundle};
use safekeep_node::{InitialMember, Node, NodeConfig, NodeListeners};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::process::Command;

/// Longest one CLI run may take (its own retries outlast the first election).
const CLI_BOUND: Duration = Duration::from_secs(30);

/// Starts a one-node cluster with TLS and encryption at rest in `dir`; returns
/// it, its client address and the operator's credentials.
async fn secure_node(dir: &Path, backup: Option<BackupSettings>) -> (Node, SocketAddr, ClientCredentials) {
    let certs = dir.join("certs");
    let spec = DevBundleSpec {
        nodes: vec![1],
        hosts: vec!["localhost".into(), "127.0.0.1".into()],
        clients: vec![CertPrincipal::Operator("admin".into())],
        validity_days: 1,
    };
    write_dev_bundle(&certs, &spec).expect("issue test certificates");
    let master_keys = certs.join("master.keys");
    MasterKeyFile::generate(&master_keys, "k1").unwrap();
    let bind = || TcpListener::bind("127.0.0.1:0");
    let (client, peer, http) = (bind().await.unwrap(), bind().await.unwrap(), bind().await.unwrap());
    let listen = ListenAddresses {
        client: client.local_addr().unwrap(),
        peer: peer.local_addr().unwrap(),
        http: http.local_addr().unwrap(),
    };
    let config = NodeConfig {
        init: vec![InitialMember {
            id: 1,
            zone: "a".into(),
            peer_address: listen.peer.to_string(),
            client_address: listen.client.to_string(),
        }],
        tls: Some(node_tls(&certs, 1)),
        encryption: EncryptionSettings {
            master_key_file: Some(master_keys),
            ..EncryptionSettings::default()
        },
        raft: RaftSettings {
            heartbeat_ms: 50,
            election_min_ms: 300,
            election_max_ms: 600,
            ..RaftSettings::default()
        },
        backup,
        ..NodeConfig::new(1, "a", dir.join("data"), listen)
    };
    let node = Node::start_with_listeners(config, NodeListeners::tcp(client, peer, http))
        .await
        .expect("the node starts");
    (node, listen.client, ClientCredentials::local(&certs))
}

/// Runs the binary against `endpoint` as the operator, with `api_key` too when given.
async fn safekeep(endpoint: SocketAddr, operator: &ClientCredentials, api_key: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_safekeep"));
    for name in [
        "SAFEKEEP_PLAINTEXT",
        "SAFEKEEP_AS",
        "SAFEKEEP_API_KEY",
        "SAFEKEEP_SERVER_NAME",
    ] {
        command.env_remove(name);
    }
    command
        .args(args)
        .env("SAFEKEEP_ENDPOINTS", endpoint.to_string())
        .env("SAFEKEEP_TENANT", "acme")
        .env("SAFEKEEP_CA", &operator.ca)
        .env("SAFEKEEP_CERT", &operator.cert)
        .env("SAFEKEEP_KEY", &operator.key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(key) = api_key {
        command.env("SAFEKEEP_API_KEY", key);
    }
    tokio::time::timeout(CLI_BOUND, command.output())
        .await
        .expect("the CLI finished within its bound")
        .expect("the CLI ran")
}

fn succeeded(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what}: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn refused(output: &Output, what: &str) -> String {
    assert!(
        !output.status.success(),
        "{what} succeeded: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_certificate_and_a_key_each_command_acts_as_who_may_run_it() {
    let dir = tempfile::TempDir::new().unwrap();
    let (node, endpoint, operator) = secure_node(dir.path(), None).await;

    // The operator alone makes the tenant and its admin key.
    let run = |api_key, args| safekeep(endpoint, &operator, api_key, args);
    succeeded(&run(None, &["tenant", "create", "acme"]).await, "tenant create");
    let issued = succeeded(
        &run(None, &["--json", "api-key", "issue", "--role", "admin"]).await,
        "api-key issue",
    );
    let issued: Value = serde_json::from_str(issued.trim()).expect("the issued key as JSON");
    let key = issued["secret"].as_str().expect("the key's secret").to_string();
    let both = Some(key.as_str());

    // Both set: operator-only commands present the certificate ...
    let entries = succeeded(&run(both, &["--json", "audit", "list"]).await, "audit list");
    assert!(entries.contains("create-tenant"), "{entries}");
    succeeded(&run(both, &["audit", "verify"]).await, "audit verify");
    succeeded(
        &run(both, &["tenant", "create", "globex"]).await,
        "tenant create with both",
    );
    // ... record commands present the key, and so do commands either may run.
    succeeded(&run(both, &["put", "greeting", "hello"]).await, "put");
    let value = succeeded(&run(both, &["get", "greeting", "--value-only"]).await, "get");
    assert_eq!(value, "hello");
    succeeded(&run(both, &["api-key", "list"]).await, "api-key list");

    // --as overrides: the node then refuses what the other principal may not do.
    let as_tenant = refused(
        &run(both, &["--as", "tenant", "audit", "list"]).await,
        "audit list as tenant",
    );
    assert!(as_tenant.contains("operator's client certificate"), "{as_tenant}");
    let as_operator = refused(
        &run(both, &["--as", "operator", "get", "greeting"]).await,
        "get as operator",
    );
    assert!(as_operator.contains("never read or write record data"), "{as_operator}");

    // --as asks for a credential that must be there.
    let no_key = refused(
        &run(None, &["--as", "tenant", "cluster", "status"]).await,
        "--as tenant, no key",
    );
    assert!(no_key.contains("--as tenant needs a tenant's API key"), "{no_key}");

    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_now_waits_for_a_full_backup_that_covers_it_and_status_shows_it() {
    let dir = tempfile::TempDir::new().unwrap();
    let target = format!("file://{}", dir.path().join("backups").display());
    // No scheduled backup after the first: only the request can bring a second.
    let settings = BackupSettings::new(target.clone());
    let (node, endpoint, operator) = secure_node(dir.path(), Some(settings)).await;
    let run = |args| safekeep(endpoint, &operator, None, args);
    // The first full backup, taken at start; the request must bring another.
    let started = std::time::Instant::now();
    let first = loop {
        let status = succeeded(&run(&["--json", "cluster", "status"]).await, "cluster status");
        let status: Value = serde_json::from_str(status.trim()).expect("status as JSON");
        if let Some(taken) = status["backup"]["last_full_unix_ms"].as_i64().filter(|ms| *ms > 0) {
            break taken;
        }
        assert!(started.elapsed() < CLI_BOUND, "no first full backup: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    succeeded(&run(&["tenant", "create", "acme"]).await, "tenant create");

    let answer = succeeded(
        &run(&["--json", "backup", "now", "--reason", "before the migration"]).await,
        "backup now",
    );
    let answer: Value = serde_json::from_str(answer.trim()).expect("backup now as JSON");
    let requested = answer["requested_at_index"].as_u64().expect("the request's index");
    let taken = answer["backup"]["last_full_index"].as_u64().expect("the set's index");
    assert!(taken >= requested, "{answer}");
    let finished = answer["backup"]["last_full_unix_ms"]
        .as_i64()
        .expect("when it finished");
    assert!(finished > first, "a new full backup answered the request: {answer}");

    let status = succeeded(&run(&["cluster", "status"]).await, "cluster status");
    assert!(
        status.contains(&format!("backups: {target} (shipped by node 1)")),
        "{status}"
    );
    assert!(status.contains(&format!("at log index {taken}")), "{status}");
    let audit = succeeded(&run(&["--json", "audit", "list"]).await, "audit list");
    assert!(
        audit.contains("backup-now") && audit.contains("before the migration"),
        "{audit}"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_restored_alone_comes_back_into_the_live_cluster_under_a_new_name() {
    use safekeep_node::backup::{self, RestoreRequest, Target, Until};
    use safekeep_node::config::S3Settings;

    let dir = tempfile::TempDir::new().unwrap();
    let backups = dir.path().join("backups");
    let target = format!("file://{}", backups.display());
    let mut settings = BackupSettings::new(target.clone());
    settings.archive_interval_s = 1;
    let (node, endpoint, operator) = secure_node(dir.path(), Some(settings)).await;
    let key = writer_key(endpoint, &operator, "acme").await;
    // The first full backup is there before the records are written.
    let started = std::time::Instant::now();
    let open = || Target::open(&target, &S3Settings::default()).unwrap();
    while backup::Catalog::list_sets(&open()).await.unwrap().is_empty() {
        assert!(started.elapsed() < CLI_BOUND, "no first full backup");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (k, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
        succeeded(&safekeep(endpoint, &operator, Some(&key), &["put", k, v]).await, "put");
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Every later write is proposed strictly after T.
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        <= t
    {
        tokio::task::yield_now().await;
    }
    // The customer deletes its own records by mistake.
    for k in ["a", "b", "c"] {
        succeeded(
            &safekeep(endpoint, &operator, Some(&key), &["delete", k]).await,
            "delete",
        );
    }
    let applied = node.consensus().view().applied_index;
    let started = std::time::Instant::now();
    loop {
        let catalog = backup::Catalog::list(&open()).await.unwrap();
        let newest = catalog.sets.last().unwrap();
        let reached = catalog
            .chain_after(newest.index)
            .unwrap()
            .last()
            .map_or(newest.index, |s| s.last);
        if reached >= applied {
            break;
        }
        assert!(started.elapsed() < CLI_BOUND, "the archive did not reach {applied}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // acme alone, as of T, into a scratch node; exported from it ...
    let scratch_dir = dir.path().join("scratch");
    let provider: std::sync::Arc<dyn safekeep_node::crypto::KeyProvider> =
        std::sync::Arc::new(MasterKeyFile::load(&dir.path().join("certs").join("master.keys")).unwrap());
    backup::restore(RestoreRequest {
        target: open(),
        provider,
        until: Until::Time(t),
        data_dir: scratch_dir.join("data"),
        force: false,
        tenant: Some("acme".into()),
        node_id: 1,
        cluster_name: "scratch".into(),
        node: safekeep_node::raft::NodeInfo::default(),
    })
    .await
    .unwrap();
    let (scratch, scratch_endpoint) = scratch_node(dir.path(), &scratch_dir).await;
    let export = dir.path().join("acme.jsonl");
    succeeded(
        &safekeep(
            scratch_endpoint,
            &operator,
            Some(&key),
            &["tenant", "export", "acme", "--output", export.to_str().unwrap()],
        )
        .await,
        "export from the scratch node",
    );
    scratch.shutdown().await;

    // ... and imported into the live cluster as a new tenant.
    let restored_key = writer_key(endpoint, &operator, "acme-restored").await;
    let imported = succeeded(
        &safekeep(
            endpoint,
            &operator,
            Some(&restored_key),
            &["tenant", "import", "acme-restored", "--input", export.to_str().unwrap()],
        )
        .await,
        "import",
    );
    assert!(imported.contains("imported 3 records"), "{imported}");
    for (k, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
        let got = succeeded(
            &safekeep(
                endpoint,
                &operator,
                Some(&restored_key),
                &["--tenant", "acme-restored", "get", k, "--value-only"],
            )
            .await,
            "get",
        );
        assert_eq!(got, v);
    }
    let gone = refused(
        &safekeep(endpoint, &operator, Some(&key), &["get", "a"]).await,
        "the deleted record",
    );
    assert!(gone.to_lowercase().contains("not found"), "{gone}");
    node.shutdown().await;
}

/// Creates `tenant` as the operator and issues it a writer key; returns the key.
async fn writer_key(endpoint: SocketAddr, operator: &ClientCredentials, tenant: &str) -> String {
    succeeded(
        &safekeep(endpoint, operator, None, &["tenant", "create", tenant]).await,
        "tenant create",
    );
    let issued = succeeded(
        &safekeep(
            endpoint,
            operator,
            None,
            &["--json", "--tenant", tenant, "api-key", "issue", "--role", "writer"],
        )
        .await,
        "api-key issue",
    );
    let issued: Value = serde_json::from_str(issued.trim()).unwrap();
    issued["secret"].as_str().unwrap().to_string()
}

/// Starts a restored data directory as a node of its own, with the test's certificates.
async fn scratch_node(dir: &Path, data: &Path) -> (Node, SocketAddr) {
    let certs = dir.join("certs");
    let bind = || TcpListener::bind("127.0.0.1:0");
    let (client, peer, http) = (bind().await.unwrap(), bind().await.unwrap(), bind().await.unwrap());
    let listen = ListenAddresses {
        client: client.local_addr().unwrap(),
        peer: peer.local_addr().unwrap(),
        http: http.local_addr().unwrap(),
    };
    let config = NodeConfig {
        cluster_name: "scratch".into(),
        tls: Some(node_tls(&certs, 1)),
        encryption: EncryptionSettings {
            master_key_file: Some(certs.join("master.keys")),
            ..EncryptionSettings::default()
        },
        ..NodeConfig::new(1, "a", data.join("data"), listen)
    };
    let node = Node::start_with_listeners(config, NodeListeners::tcp(client, peer, http))
        .await
        .expect("the scratch node starts");
    (node, listen.client)
}
