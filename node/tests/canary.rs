//! The at-rest promise checked from the outside: a unique marker written in
//! record values through a three-node TLS cluster (real processes, debug
//! logging) appears nowhere on disk afterwards: not in the Raft log, the WAL,
//! SST files, snapshots or any node's log, even after a snapshot and a flush.
//! Record keys are stored in clear by design, so finding them proves the scan
//! reads the data.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{TlsFiles, eventually, free_base_port, get, issue_test_certs, keyed, put, spawn_node, tls_channel};
use safekeep_api::v1::admin_client::AdminClient;
use safekeep_api::v1::cluster_client::ClusterClient;
use safekeep_api::v1::records_client::RecordsClient;
use safekeep_api::v1::{ApiKeyRole, CreateTenantRequest, IssueApiKeyRequest, StatusRequest};
use safekeep_node::local_cluster::{node_config, node_tls, plan};
use tonic::transport::Channel;

/// Records written; with the snapshot threshold below, several snapshots are cut.
const RECORDS: u64 = 120;
/// Entries between snapshots on the canary cluster.
const SNAPSHOT_EVERY: u64 = 40;

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

async fn operator_channel(address: &str, certs: &Path) -> Option<Channel> {
    tls_channel(address, &TlsFiles::operator(certs)).await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marker_written_through_a_tls_cluster_is_in_no_file_and_no_log() {
    let dir = tempfile::TempDir::new().unwrap();
    let certs = dir.path().join("certs");
    issue_test_certs(&certs, 1..=3);
    safekeep_node::crypto::MasterKeyFile::generate(&certs.join("master.keys"), "canary-1").unwrap();
    let base = free_base_port();
    let members = plan(3, base).unwrap();
    let mut children = Vec::new();
    for member in members.iter().rev() {
        let node_dir = dir.path().join(format!("node-{}", member.id));
        std::fs::create_dir_all(&node_dir).unwrap();
        let mut config = node_config(member, &members, &node_dir, base, Some(node_tls(&certs, member.id)));
        config.encryption.master_key_file = Some(certs.join("master.keys"));
        config.raft.snapshot_threshold = SNAPSHOT_EVERY;
        config.raft.logs_kept_after_snapshot = 0;
        let config_path = node_dir.join("node.toml");
        std::fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();
        children.push(spawn_node(&config_path, &node_dir.join("node.log"), "debug"));
    }
    let address = |id: u64| members[(id - 1) as usize].client_address.clone();
    eventually("a leader", || async {
        let channel = operator_channel(&address(1), &certs).await?;
        let status = ClusterClient::new(channel)
            .status(StatusRequest {})
            .await
            .ok()?
            .into_inner();
        status.header.filter(|h| h.leader_id != 0).map(drop)
    })
    .await;

    let mut admin = AdminClient::new(operator_channel(&address(1), &certs).await.unwrap());
    admin
        .create_tenant(CreateTenantRequest { tenant: "acme".into() })
        .await
        .unwrap();
    let api_key = admin
        .issue_api_key(IssueApiKeyRequest {
            tenant: "acme".into(),
            role: ApiKeyRole::Writer as i32,
            label: "canary".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .secret;

    let marker = format!("CANARY-{:032x}", rand::random::<u128>());
    let mut last_version = 0;
    for i in 0..RECORDS {
        let node = i % 3 + 1;
        let channel = operator_channel(&address(node), &certs).await.unwrap();
        let value = format!("{marker} customer {i}");
        let request = put("acme", &format!("canary-key/{i}"), value.as_bytes(), "canary", i + 1);
        last_version = RecordsClient::new(channel)
            .put(keyed(request, &api_key))
            .await
            .expect("the write is acknowledged")
            .into_inner()
            .version;
    }
    let channel = operator_channel(&address(2), &certs).await.unwrap();
    let read_back = RecordsClient::new(channel)
        .get(keyed(get("acme", "canary-key/7"), &api_key))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert!(
        contains(&read_back.value, marker.as_bytes()),
        "the owner reads the marker back"
    );

    for id in 1..=3 {
        eventually("every node to apply every write", || async {
            let channel = operator_channel(&address(id), &certs).await?;
            let status = ClusterClient::new(channel)
                .status(StatusRequest {})
                .await
                .ok()?
                .into_inner();
            (status.applied_index >= last_version).then_some(())
        })
        .await;
        let snapshots = dir.path().join(format!("node-{id}/data/snapshots"));
        eventually("a snapshot on every node", || async {
            let any = std::fs::read_dir(&snapshots)
                .ok()?
                .flatten()
                .any(|e| e.path().is_file());
            any.then_some(())
        })
        .await;
    }

    for child in &children {
        let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    }
    for child in &mut children {
        tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("a node stops within 30 s")
            .unwrap();
    }
    // Flush every memtable to SST files, so the scan sees flushed data as well as the WAL.
    for id in 1..=3 {
        let db = common::open_stopped_db(&dir.path().join(format!("node-{id}/data")));
        for family in common::COLUMN_FAMILIES {
            db.flush_cf(&db.cf_handle(family).unwrap()).unwrap();
        }
    }

    let files = files_under(dir.path());
    let mut keys_seen = false;
    let mut sst_seen = false;
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        assert!(
            !contains(&bytes, marker.as_bytes()),
            "the marker is in {}",
            file.display()
        );
        assert!(
            !contains(&bytes, api_key.as_bytes()),
            "an API key is in {}",
            file.display()
        );
        keys_seen |= contains(&bytes, b"canary-key/");
        sst_seen |= file.extension().is_some_and(|e| e == "sst");
    }
    assert!(keys_seen, "the scan found the records themselves");
    assert!(sst_seen, "the scan covered SST files");
    let logs: Vec<&PathBuf> = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "log"))
        .collect();
    assert!(logs.len() >= 3, "every node's log was scanned: {logs:?}");
}
