//! One drill from start to verdict: lay out the zones, start the cluster,
//! run the workload through a warm-up, inject the fault, hold it for the
//! outage, heal, let the cluster recover, read every key back, check the
//! history, measure, and write the report. Every process, rule and
//! namespace goes away when the drill ends, fails, or is dropped (Ctrl-C).

use std::path::PathBuf;
use std::time::Duration;

use safekeep_history::{ClientId, Op, Outcome, check_all};
use tokio::time::Instant;

use crate::cluster::{ClusterError, DrillCluster, TENANTS};
use crate::disks;
use crate::faults::{self, FaultError, FaultKind};
use crate::measure::{self, Phases};
use crate::netns::{NetError, ZoneNetwork};
use crate::report::{DrillReport, HistoryVerdict, ReportError};
use crate::workload::{self, Recording, Task};

/// The zones of a drill's cluster.
pub const ZONES: [&str; 3] = ["a", "b", "c"];
/// Tasks sharing the one SDK client that knows every node.
const SHARED_CLIENT_TASKS: u64 = 4;
/// How long the final reads keep trying each key.
const FINAL_READ_DEADLINE: Duration = Duration::from_secs(30);
/// Violations quoted word for word in the report.
const MAX_FINDINGS: usize = 10;

/// How a drill runs.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    pub fault: FaultKind,
    /// The zone the fault hits (ignored by leader-zone loss and rolling restart).
    pub zone: String,
    pub nodes_per_zone: usize,
    pub warmup: Duration,
    pub outage: Duration,
    pub recovery: Duration,
    /// The longest write gap that passes.
    pub write_gap_slo: Duration,
    /// Where the cluster's data and the report go.
    pub out: PathBuf,
    /// The `safekeep-node` program.
    pub node_binary: PathBuf,
}

/// Why a drill could not run to a verdict.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Fault(#[from] FaultError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("zone {0} is not one of the drill's zones {ZONES:?}")]
    UnknownZone(String),
}

/// Runs one drill; `phase` is told each phase as it starts.
pub async fn run(options: &DrillOptions, phase: impl Fn(&str)) -> Result<DrillReport, DrillError> {
    if !ZONES.contains(&options.zone.as_str()) {
        return Err(DrillError::UnknownZone(options.zone.clone()));
    }
    phase("laying out the zones");
    // One spare address per zone, for a node that replaces a lost one.
    let network = ZoneNetwork::create(&ZONES, options.nodes_per_zone + 1)?;
    let dir = options.out.join("cluster");
    // Every drill starts from a new cluster; this folder is the drill's own.
    if dir.exists() {
        disks::release_under(&dir);
        std::fs::remove_dir_all(&dir).map_err(|source| DrillError::Io {
            what: "cannot remove the previous drill's cluster",
            path: dir.clone(),
            source,
        })?;
    }
    phase("starting the cluster");
    let mut cluster = DrillCluster::start(
        &dir,
        network.zones(),
        options.nodes_per_zone,
        &options.node_binary,
        options.fault == FaultKind::DiskStall,
    )
    .await?;
    let keys = cluster.tenant_keys().await?;

    let mut tasks = Vec::new();
    let shared = cluster.client(cluster.endpoints(), Some(&keys[TENANTS[0]])).await?;
    for id in 0..SHARED_CLIENT_TASKS {
        tasks.push(Task {
            client: shared.clone(),
            tenant: TENANTS[0].to_string(),
            id,
        });
    }
    for (index, zone) in network.zones().iter().enumerate() {
        let tenant = TENANTS[(index + 1) % TENANTS.len()];
        let endpoints = cluster
            .zone_members(zone)
            .iter()
            .map(|id| cluster.nodes[id].client_address.to_string())
            .collect();
        tasks.push(Task {
            client: cluster.client(endpoints, Some(&keys[tenant])).await?,
            tenant: tenant.to_string(),
            id: SHARED_CLIENT_TASKS + index as u64,
        });
    }
    let origin = Instant::now();
    let recording = Recording::new(origin);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(workload::run(tasks, recording.clone(), stopped));
    let ms = |at: Instant| at.duration_since(origin).as_secs_f64() * 1000.0;

    phase("warm-up");
    tokio::time::sleep(options.warmup).await;
    phase("fault");
    let fault_ms = ms(Instant::now());
    let injected = faults::inject(&mut cluster, options.fault, &options.zone).await?;
    tokio::time::sleep(options.outage).await;
    phase("heal");
    let heal_ms = ms(Instant::now());
    faults::heal(&mut cluster, &injected).await?;
    phase("recovery");
    tokio::time::sleep(options.recovery).await;
    let _ = stop.send(true);
    let _ = load.await;
    let end_ms = ms(Instant::now());

    phase("reading every key back");
    for tenant in TENANTS {
        let reader = cluster.client(cluster.endpoints(), Some(&keys[tenant])).await?;
        final_reads(&reader, tenant, &recording).await;
    }
    cluster.stop_all().await;
    drop(cluster);
    drop(network);

    phase("checking the history");
    let checked = check_all(&recording.recorder.history());
    let mut findings: Vec<String> = checked.linearizability.violations().map(|v| v.to_string()).collect();
    findings.extend(checked.lost_writes.lost.iter().map(|l| l.to_string()));
    findings.truncate(MAX_FINDINGS);
    let history = HistoryVerdict {
        operations: checked.operations,
        linearizable: checked.linearizability.is_ok(),
        lost_writes: checked.lost_writes.lost.len(),
        findings,
    };
    let samples = recording.samples();
    let phases = Phases {
        fault_ms,
        heal_ms,
        end_ms,
    };
    let figures = measure::figures(&samples, phases);
    let passed = checked.is_ok() && figures.longest_write_gap_s <= options.write_gap_slo.as_secs_f64();
    let report = DrillReport {
        fault: options.fault,
        zone: injected.zone,
        nodes: injected.nodes,
        mechanism: injected.mechanism,
        phases,
        figures,
        history,
        write_gap_slo_s: options.write_gap_slo.as_secs_f64(),
        passed,
        timeline: measure::buckets(&samples, end_ms),
    };
    report.write(&options.out)?;
    Ok(report)
}

/// One successful linearizable read of every key of `tenant`, recorded:
/// what the cluster finally holds, against which lost writes are judged.
async fn final_reads(client: &safekeep_client::Client, tenant: &str, recording: &Recording) {
    let who = ClientId(u64::MAX);
    for k in 0..workload::KEYS {
        let key = format!("k{k}");
        let deadline = Instant::now() + FINAL_READ_DEADLINE;
        while Instant::now() < deadline {
            let invoked = recording.now_ns();
            let Ok(id) = recording.recorder.invoke(
                who,
                Op::Get {
                    key: format!("{tenant}/{key}"),
                },
                invoked,
            ) else {
                return;
            };
            let outcome = match client.get(tenant, &key).await {
                Ok(record) => Outcome::Read {
                    record: record.map(|r| safekeep_history::Versioned {
                        value: r.value,
                        version: r.version,
                    }),
                },
                Err(_) => Outcome::Fail,
            };
            let done = matches!(outcome, Outcome::Read { .. });
            let _ = recording.recorder.complete(id, outcome, recording.now_ns());
            if done {
                break;
            }
        }
    }
}
