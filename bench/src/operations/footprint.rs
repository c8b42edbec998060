//! Footprint: what a cluster holding many records costs and how it recovers.
//! On a fresh cluster it writes `records` unique keys, then reads:
//!
//! - memory: the servers' resident memory once the writes are in;
//! - disk: the bytes under the members' data directories, while serving
//!   and again after a clean stop (once every member has flushed);
//! - restart: every member stopped cleanly and started again on its data,
//!   timed from the start to the first acknowledged write;
//! - catch-up: a new member started on an empty disk and added as a learner
//!   (what a replacement is before it is swapped in), timed until it has
//!   applied everything the leader had committed when it was added.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::error::BenchError;
use crate::load::populate;
use crate::measure::{disk_bytes, total_rss_bytes};
use crate::operations::failover::SETTLE_TIMEOUT;
use crate::settings::Settings;
use crate::targets::{Connection, Operable, TargetKind};

/// How long a restarted cluster may take to acknowledge a write.
const RESTART_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a replacement may take to catch up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(1_800);
/// How often the restart and the catch-up are polled: their resolution.
const POLL: Duration = Duration::from_millis(50);
/// Deadline of one write attempt while the restarted cluster comes up.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes in a MiB.
const MIB: f64 = 1024.0 * 1024.0;

/// What one system's footprint run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Footprint {
    pub target: TargetKind,
    pub records: usize,
    pub value_size: usize,
    /// Seconds the writes took (64 writers), and their rate.
    pub write_s: f64,
    pub write_ops_per_s: f64,
    /// Resident memory of all members once the writes are in.
    pub rss_mib: f64,
    /// Bytes under the members' data directories while serving, all members.
    pub disk_serving_mib: f64,
    /// The same after a clean stop.
    pub disk_stopped_mib: f64,
    /// From starting every member again to the first acknowledged write.
    pub restart_s: f64,
    /// Resident memory of all members right after that write.
    pub rss_after_restart_mib: f64,
    /// From starting the replacement to its having applied what the leader had committed.
    pub catch_up_s: f64,
    /// Bytes in the replacement's data directory once caught up.
    pub catch_up_disk_mib: f64,
    /// Those over the catch-up time.
    pub catch_up_mib_per_s: f64,
}

impl Footprint {
    /// A figure per million records.
    pub fn per_million(&self, figure: f64) -> f64 {
        figure * 1_000_000.0 / self.records as f64
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

/// The footprint run on a fresh `cluster`.
pub async fn footprint<C: Operable>(cluster: &mut C, settings: &Settings) -> Result<Footprint, BenchError> {
    let target = cluster.kind();
    let started = Instant::now();
    populate(cluster, settings).await?;
    let write_s = started.elapsed().as_secs_f64();
    cluster.wait_settled(SETTLE_TIMEOUT).await?;
    let rss_mib = mib(total_rss_bytes(&cluster.server_pids()));
    let data_dirs = cluster.data_dirs();
    let on_disk = || mib(data_dirs.iter().map(|d| disk_bytes(d)).sum());
    let disk_serving_mib = on_disk();

    eprintln!("{target}: stopping every member and starting them again ...");
    cluster.stop_members().await?;
    let disk_stopped_mib = on_disk();
    let restarted = Instant::now();
    cluster.start_stopped().await?;
    first_write(cluster).await?;
    let restart_s = restarted.elapsed().as_secs_f64();
    let rss_after_restart_mib = mib(total_rss_bytes(&cluster.server_pids()));

    cluster.wait_settled(SETTLE_TIMEOUT).await?;
    let committed = cluster.commit_index().await?;
    eprintln!("{target}: a new member on an empty disk catches up to index {committed} ...");
    cluster.add_replacement().await?;
    // From the start of its process: the membership change itself is not catching up.
    let added = Instant::now();
    let caught_up = loop {
        if let Some(progress) = cluster.replacement_progress().await?
            && progress.applied >= committed
        {
            break progress;
        }
        if added.elapsed() > CATCH_UP_TIMEOUT {
            return Err(BenchError::Setup {
                target: target.name(),
                detail: format!("the new member did not catch up within {CATCH_UP_TIMEOUT:?}"),
            });
        }
        tokio::time::sleep(POLL).await;
    };
    let catch_up_s = added.elapsed().as_secs_f64();
    let catch_up_disk_mib = mib(caught_up.disk_bytes);
    Ok(Footprint {
        target,
        records: settings.keys,
        value_size: settings.value_size,
        write_s,
        write_ops_per_s: settings.keys as f64 / write_s,
        rss_mib,
        disk_serving_mib,
        disk_stopped_mib,
        restart_s,
        rss_after_restart_mib,
        catch_up_s,
        catch_up_disk_mib,
        catch_up_mib_per_s: catch_up_disk_mib / catch_up_s,
    })
}

/// Tries a write every [`POLL`] (each on a fresh connection, as the members
/// may not listen yet) until one is acknowledged.
async fn first_write<C: Operable>(cluster: &C) -> Result<(), BenchError> {
    let deadline = Instant::now() + RESTART_TIMEOUT;
    let mut last_error = String::from("no attempt finished");
    while Instant::now() < deadline {
        let attempt = tokio::time::timeout(ATTEMPT_TIMEOUT, async {
            let conn = cluster.connect().await?;
            conn.put("bench/restart-probe".into(), b"probe".to_vec())
                .await
                .map_err(|e| BenchError::Setup {
                    target: cluster.kind().name(),
                    detail: e.to_string(),
                })
        })
        .await;
        match attempt {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => last_error = e.to_string(),
            Err(_) => last_error = format!("an attempt took longer than {ATTEMPT_TIMEOUT:?}"),
        }
        tokio::time::sleep(POLL).await;
    }
    Err(BenchError::Setup {
        target: cluster.kind().name(),
        detail: format!("no write acknowledged within {RESTART_TIMEOUT:?} of the restart: {last_error}"),
    })
}
