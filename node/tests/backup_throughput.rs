//! How fast backups go, for the figures in BENCHMARKS.md: a three-node
//! cluster with TLS and sealed values is filled with `SAFEKEEP_BACKUP_BENCH_MIB`
//! MiB (default 1,024) of 256 KiB records, then a full backup is taken on
//! request and the latest state restored into an empty directory, each timed.
//! A benchmark, not a check: it is ignored by the test command; run it with
//! `cargo test --release -p safekeep-node --test backup_throughput -- --ignored --nocapture`.

mod common;

use std::time::{Duration, Instant};

use common::{TestCluster, TlsFiles, operator_sdk};
use safekeep_api::v1::ApiKeyRole;
use safekeep_client::{ApiKey, Client, ClientConfig, ClientTls};
use safekeep_node::backup::{self, Catalog, RestoreRequest, Target, Until};
use safekeep_node::config::{BackupSettings, S3Settings};
use safekeep_node::raft::NodeInfo;

/// Size of each record's value.
const VALUE_BYTES: usize = 256 << 10;
/// Tries of one write before the run gives up.
const MAX_PUT_ATTEMPTS: u32 = 5;
/// Writers sharing one client.
const WRITERS: usize = 8;
/// Longest wait for the requested full backup.
const BACKUP_BOUND: Duration = Duration::from_secs(1800);
/// How often the target is listed while waiting.
const POLL: Duration = Duration::from_millis(100);
/// Environment variable with the MiB to write.
const SIZE_ENV: &str = "SAFEKEEP_BACKUP_BENCH_MIB";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it by hand with --ignored --nocapture"]
async fn backup_and_restore_throughput() {
    let mib: usize = std::env::var(SIZE_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let records = mib * (1 << 20) / VALUE_BYTES;
    let backups = tempfile::TempDir::new().unwrap();
    let url = format!("file://{}", backups.path().display());
    let mut cluster = TestCluster::start_secure(3, |config| {
        config.backup = Some(BackupSettings::new(url.clone()));
    })
    .await;
    let key = cluster.tenant_key("acme", ApiKeyRole::Writer).await;
    let certs = cluster.certs.clone().unwrap();
    let leader = cluster.leader().await;
    let tls = ClientTls::from_files(&TlsFiles::operator(&certs).ca, None).unwrap();
    let config = ClientConfig::new(vec![cluster.addresses[&leader].client.to_string()])
        .with_tls(tls)
        .with_api_key(ApiKey::new(&key).unwrap());
    let writer = Client::connect(config).await.unwrap();

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..WRITERS {
        let writer = writer.clone();
        tasks.spawn(async move {
            for i in (task..records).step_by(WRITERS) {
                let value = vec![(i % 251) as u8; VALUE_BYTES];
                // Writing the same value again is harmless: a loaded machine
                // may time a write out after it applied.
                let mut attempts = 0;
                while let Err(e) = writer.put("acme", &format!("r/{i:08}"), value.clone()).await {
                    attempts += 1;
                    assert!(attempts < MAX_PUT_ATTEMPTS, "put: {e:?}");
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let write_s = started.elapsed().as_secs_f64();
    println!(
        "wrote {records} records ({mib} MiB) in {write_s:.1} s: {:.1} MiB/s",
        mib as f64 / write_s
    );

    let operator = operator_sdk(&cluster, &[leader]).await;
    let started = Instant::now();
    let requested = operator.backup_now("benchmark").await.unwrap();
    let target = Target::open(&url, &S3Settings::default()).unwrap();
    let set = loop {
        let sets = Catalog::list_sets(&target).await.unwrap();
        if let Some(set) = sets.into_iter().find(|s| s.index >= requested) {
            break set;
        }
        assert!(
            started.elapsed() < BACKUP_BOUND,
            "no full backup within {BACKUP_BOUND:?}"
        );
        tokio::time::sleep(POLL).await;
    };
    let backup_s = started.elapsed().as_secs_f64();
    let bytes: u64 = walk_bytes(&backups.path().join("full").join(set.folder()));
    println!(
        "full backup of {mib} MiB ({} MiB sealed) in {backup_s:.1} s: {:.1} MiB/s",
        bytes >> 20,
        mib as f64 / backup_s
    );
    for id in 1..=3 {
        cluster.stop(id).await;
    }

    let dir = tempfile::TempDir::new().unwrap();
    let keys = certs.join("master.keys");
    let started = Instant::now();
    let report = backup::restore(RestoreRequest {
        target,
        provider: std::sync::Arc::new(safekeep_node::crypto::MasterKeyFile::load(&keys).unwrap()),
        until: Until::Latest,
        data_dir: dir.path().join("data"),
        force: false,
        tenant: None,
        node_id: 1,
        cluster_name: "restored".into(),
        node: NodeInfo::default(),
    })
    .await
    .unwrap();
    let restore_s = started.elapsed().as_secs_f64();
    assert_eq!(report.records as usize, records);
    println!(
        "restore of {mib} MiB ({} records, {} entries replayed) in {restore_s:.1} s: {:.1} MiB/s",
        report.records,
        report.replayed,
        mib as f64 / restore_s
    );
}

/// Bytes of every file under `dir`.
fn walk_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk_bytes(&e.path()),
                    _ => e.metadata().map_or(0, |m| m.len()),
                })
                .sum()
        })
        .unwrap_or(0)
}
