//! The archive's promise under the worst loss: three real node processes
//! with TLS and backups to a local directory, one client writing without
//! pause, every process SIGKILLed at once. A restore of the latest backup
//! holds a prefix of the acknowledged writes, and every acknowledged write
//! it lacks was acknowledged less than one archive interval (plus the time
//! one upload takes) before the kill.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{TlsFiles, eventually, free_base_port, spawn_node, tls_channel};
use safekeep_api::v1::admin_client::AdminClient;
use safekeep_api::v1::{ApiKeyRole, CreateTenantRequest, IssueApiKeyRequest};
use safekeep_client::{ApiKey, Client, ClientConfig, ClientTls};
use safekeep_node::config::{BackupSettings, S3Settings};
use safekeep_node::local_cluster::{node_config, node_tls, plan};
use safekeep_node::{Node, NodeConfig};

/// The archive interval of the drill.
const ARCHIVE_INTERVAL_S: u64 = 2;
/// How long the client writes before the kill: several archive intervals.
const WRITE_FOR: Duration = Duration::from_secs(7);
/// Time one segment upload to a local directory may take on top of the interval.
const UPLOAD_ALLOWANCE_MS: i64 = 500;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn sdk(address: &str, certs: &Path, api_key: &str) -> Client {
    let tls = ClientTls::from_files(&TlsFiles::operator(certs).ca, None).unwrap();
    let config = ClientConfig::new(vec![address.to_string()])
        .with_tls(tls)
        .with_api_key(ApiKey::new(api_key).unwrap());
    Client::connect(config).await.unwrap()
}

/// Environment variable that sets another archive interval, to measure the
/// loss at the default (30 s) by hand.
const INTERVAL_ENV: &str = "SAFEKEEP_CRASH_DRILL_INTERVAL_S";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_after_every_node_is_killed_loses_at_most_one_archive_interval() {
    let dir = tempfile::TempDir::new().unwrap();
    let url = format!("file://{}", dir.path().join("backups").display());
    crash_drill(dir.path(), url, S3Settings::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3-compatible server on loopback: scripts/check-kms.sh starts one and runs this"]
async fn latest_from_s3_after_every_node_is_killed_loses_at_most_one_archive_interval() {
    let (bucket, s3) = common::s3_test_bucket("safekeep-crash").await;
    let dir = tempfile::TempDir::new().unwrap();
    crash_drill(dir.path(), format!("s3://{bucket}/drill"), s3).await;
}

/// Writes without pause to three node processes backing up to `url`,
/// SIGKILLs them all, restores the latest backup and checks what was lost.
async fn crash_drill(dir: &std::path::Path, url: String, s3: S3Settings) {
    let interval_s: u64 = std::env::var(INTERVAL_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ARCHIVE_INTERVAL_S);
    let write_for = WRITE_FOR.max(Duration::from_secs(3 * interval_s + 1));
    let certs = dir.join("certs");
    common::issue_test_certs(&certs, 1..=4);
    let keys = certs.join("master.keys");
    safekeep_node::crypto::MasterKeyFile::generate(&keys, "k1").unwrap();

    let base = free_base_port();
    let members = plan(3, base).unwrap();
    let mut children = Vec::new();
    for member in members.iter().rev() {
        let node_dir = dir.join(format!("node-{}", member.id));
        std::fs::create_dir_all(&node_dir).unwrap();
        let mut config = node_config(member, &members, &node_dir, base, Some(node_tls(&certs, member.id)));
        config.encryption.master_key_file = Some(keys.clone());
        config.backup = Some(BackupSettings {
            archive_interval_s: interval_s,
            s3: s3.clone(),
            ..BackupSettings::new(url.clone())
        });
        std::fs::write(node_dir.join("node.toml"), toml::to_string(&config).unwrap()).unwrap();
        children.push(spawn_node(
            &node_dir.join("node.toml"),
            &node_dir.join("node.log"),
            "info",
        ));
    }

    // A tenant and a writer key, through the operator's certificate.
    let address = members[0].client_address.clone();
    let operator = TlsFiles::operator(&certs);
    let mut admin = eventually("the cluster to take a tenant", || async {
        let mut admin = AdminClient::new(tls_channel(&address, &operator).await.ok()?);
        admin
            .create_tenant(CreateTenantRequest { tenant: "acme".into() })
            .await
            .ok()?;
        Some(admin)
    })
    .await;
    let api_key = admin
        .issue_api_key(IssueApiKeyRequest {
            tenant: "acme".into(),
            role: ApiKeyRole::Writer as i32,
            label: "drill".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    let writer = sdk(&address, &certs, &api_key).await;

    // One writer, key after key, each acknowledgement timed.
    let mut acked: Vec<(String, Vec<u8>, i64)> = Vec::new();
    let started = std::time::Instant::now();
    while started.elapsed() < write_for {
        let key = format!("w/{:06}", acked.len());
        let value = format!("value {}", acked.len()).into_bytes();
        writer.put("acme", &key, value.clone()).await.expect("put acknowledged");
        acked.push((key, value, now_ms()));
    }
    // Every process at once, in the middle of the writes' stream.
    let in_flight = {
        let writer = writer.clone();
        let key = format!("w/{:06}", acked.len());
        tokio::spawn(async move { writer.put("acme", &key, b"in flight".to_vec()).await })
    };
    for child in &mut children {
        child.start_kill().unwrap();
    }
    let killed_ms = now_ms();
    for child in &mut children {
        child.wait().await.unwrap();
    }
    let _ = in_flight.await;

    // Restore the latest state into a new single-node cluster and read it back.
    let (listeners, addresses) = common::bound_listeners().await;
    let restore_dir = dir.join("restored");
    let config = NodeConfig {
        cluster_name: "restored".into(),
        tls: Some(node_tls(&certs, 4)),
        encryption: safekeep_node::config::EncryptionSettings {
            master_key_file: Some(keys.clone()),
            ..Default::default()
        },
        ..NodeConfig::new(
            4,
            "a",
            restore_dir.join("data"),
            safekeep_node::config::ListenAddresses {
                client: addresses.client,
                peer: addresses.peer,
                http: addresses.http,
            },
        )
    };
    let config_file = restore_dir.join("node.toml");
    std::fs::create_dir_all(&restore_dir).unwrap();
    std::fs::write(&config_file, toml::to_string(&config).unwrap()).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_safekeep-node"))
        .args(["restore", "--latest", "--from", &url, "--config"])
        .arg(&config_file)
        .args(s3.endpoint.iter().flat_map(|e| ["--s3-endpoint", e.as_str()]))
        .args(s3.region.iter().flat_map(|r| ["--s3-region", r.as_str()]))
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let node = Node::start_with_listeners(config, listeners)
        .await
        .expect("the restored node starts");
    let reader = sdk(&node.client_address().to_string(), &certs, &api_key).await;
    let mut restored = BTreeMap::new();
    let mut export = reader.export("acme", None).await.unwrap();
    while let Some(chunk) = export.next_chunk().await.unwrap() {
        for record in chunk.records {
            restored.insert(record.key, record.value);
        }
    }
    node.shutdown().await;

    // A prefix of the writes, each with its value (the one in flight may be there too).
    let kept = acked
        .iter()
        .take_while(|(key, _, _)| restored.contains_key(key))
        .count();
    for (key, value, _) in &acked[..kept] {
        assert_eq!(&restored[key], value, "{key} restored with another value");
    }
    let extra = restored.len() - kept;
    assert!(extra <= 1, "{extra} records beyond the prefix of acknowledged writes");
    let lost = &acked[kept..];
    let oldest_lost_ms = lost.first().map_or(0, |(_, _, at)| killed_ms - at);
    println!(
        "acknowledged {} writes in {:?}; restored {kept}; lost {} (the oldest acknowledged {oldest_lost_ms} ms before the kill; archive interval {interval_s} s)",
        acked.len(),
        write_for,
        lost.len()
    );
    assert!(kept > 0, "the archive held nothing");
    let bound_ms = interval_s as i64 * 1000 + UPLOAD_ALLOWANCE_MS;
    assert!(
        oldest_lost_ms <= bound_ms,
        "a write acknowledged {oldest_lost_ms} ms before the kill was lost (bound {bound_ms} ms)"
    );
}
