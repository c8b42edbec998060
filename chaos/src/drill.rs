//! One drill from start to verdict: lay out the zones, start the cluster,
//! run the workload through a warm-up, inject the fault, hold it for the
//! outage, heal, let the cluster recover, read every key back, check the
//! history, measure, and write the report. Every process, rule and
//! namespace goes away when the drill ends, fails, or is dropped (Ctrl-C).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use safekeep_history::{ClientId, Op, Outcome, check_all};
use safekeep_node::config::BackupSettings;
use tokio::time::Instant;

use crate::backups::{BackupFigures, BackupWatch};
use crate::cluster::{self, ClusterError, DrillCluster, TENANTS};
use crate::converge::{self, CONVERGE_DEADLINE, Divergence, Held};
use crate::disks;
use crate::existing::{ExistingCluster, ExistingError, ExistingOptions};
use crate::faults::FaultKind;
use crate::measure::{self, Phases};
use crate::monitor::{Monitor, Observations};
use crate::netns::{Isolation, NetError, ZoneNetwork};
use crate::report::{DrillReport, HISTORY_FILE, HistoryVerdict, ReportError};
use crate::target::{Target, TargetError};
use crate::workload::{self, Recording, Task};

/// The zones of a drill's cluster.
pub const ZONES: [&str; 3] = ["a", "b", "c"];
/// How long the final reads keep trying each key.
const FINAL_READ_DEADLINE: Duration = Duration::from_secs(30);
/// Fewest nodes a drill runs: one per zone.
pub const MIN_NODES: usize = ZONES.len();
/// Most nodes a drill runs.
pub const MAX_NODES: usize = 9;
/// Violations quoted word for word in the report.
const MAX_FINDINGS: usize = 10;

/// How a drill runs.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    pub fault: FaultKind,
    /// The zone the fault hits (ignored by leader-zone loss and rolling restart).
    pub zone: String,
    /// The cluster the drill runs against.
    pub target: TargetOptions,
    /// Tasks sharing the one SDK client that knows every node.
    pub shared_client_tasks: u64,
    /// Seeds the workload's choices of keys and operations.
    pub seed: u64,
    pub warmup: Duration,
    pub outage: Duration,
    pub recovery: Duration,
    /// The longest write gap that passes.
    pub write_gap_slo: Duration,
    /// Where the cluster's data and the report go.
    pub out: PathBuf,
}

/// The cluster a drill runs against.
#[derive(Debug, Clone)]
pub enum TargetOptions {
    /// One the drill starts itself and makes its fault in.
    Local {
        /// Nodes, spread round-robin over the zones.
        nodes: usize,
        /// Namespaces per zone, or loopback addresses (no root, process faults only).
        isolation: Isolation,
        /// The `safekeep-node` program.
        node_binary: PathBuf,
        /// Where the nodes back up to, if they do.
        backup: Option<BackupSettings>,
    },
    /// One that runs elsewhere, its fault made from outside.
    Existing(ExistingOptions),
}

/// Why a drill could not run to a verdict.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
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
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Existing(#[from] ExistingError),
    #[error("a drill against a cluster elsewhere needs --endpoints")]
    NoEndpoints,
    #[error("a drill runs {MIN_NODES} to {MAX_NODES} nodes, not {0}")]
    NodeCount(usize),
    #[error(
        "{fault} needs {needs}, which needs root; on loopback (no root) these drills run: {}",
        FaultKind::ALL.iter().filter(|f| f.needs_root().is_none()).map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    NeedsRoot { fault: FaultKind, needs: &'static str },
}

/// What the live display shows while a drill runs.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub phase: &'a str,
    /// Successful operations per second over the last display interval, once the workload runs.
    pub ops_per_s: Option<f64>,
    /// Failed operations so far.
    pub errors: u64,
}

/// How often the live display is told the workload's progress.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);

/// Holds `phase_name` for `length` while the workload runs, telling `show` its rate.
async fn hold(length: Duration, phase_name: &str, recording: &Recording, show: &impl Fn(Progress)) {
    let until = Instant::now() + length;
    let (mut last_ok, _) = recording.counts();
    let mut last_at = Instant::now();
    while Instant::now() < until {
        tokio::time::sleep(PROGRESS_INTERVAL.min(until - Instant::now())).await;
        let (ok, failed) = recording.counts();
        let seconds = last_at.elapsed().as_secs_f64().max(1e-3);
        show(Progress {
            phase: phase_name,
            ops_per_s: Some((ok - last_ok) as f64 / seconds),
            errors: failed,
        });
        (last_ok, last_at) = (ok, Instant::now());
    }
}

/// Runs one drill; `show` is told each phase as it starts and the
/// workload's progress while it runs.
pub async fn run(options: &DrillOptions, show: impl Fn(Progress)) -> Result<DrillReport, DrillError> {
    let phase = |name: &str| {
        show(Progress {
            phase: name,
            ops_per_s: None,
            errors: 0,
        })
    };
    let run_id = format!("{:08x}", rand::random::<u32>());
    let mut network = None;
    let (mut target, isolation) = match &options.target {
        TargetOptions::Local {
            nodes,
            isolation,
            node_binary,
            backup,
        } => {
            if !ZONES.contains(&options.zone.as_str()) {
                return Err(DrillError::UnknownZone(options.zone.clone()));
            }
            if !(MIN_NODES..=MAX_NODES).contains(nodes) {
                return Err(DrillError::NodeCount(*nodes));
            }
            if let (Isolation::Loopback, Some(needs)) = (isolation, options.fault.needs_root()) {
                return Err(DrillError::NeedsRoot {
                    fault: options.fault,
                    needs,
                });
            }
            phase("laying out the zones");
            if *isolation == Isolation::Namespaces {
                // One spare address per zone, for a node that replaces a lost one.
                let addresses = cluster::addresses_per_zone(ZONES.len(), *nodes);
                network = Some(ZoneNetwork::create(&ZONES, addresses)?);
            }
            let zones: Vec<String> = ZONES.iter().map(|z| z.to_string()).collect();
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
            let loop_disks = options.fault == FaultKind::DiskStall;
            let cluster = DrillCluster::start(
                &dir,
                &zones,
                *nodes,
                *isolation,
                node_binary,
                loop_disks,
                backup.clone(),
            )
            .await?;
            (Target::Local(cluster), Some(*isolation))
        }
        TargetOptions::Existing(existing) => {
            if existing.endpoints.is_empty() {
                return Err(DrillError::NoEndpoints);
            }
            (Target::Existing(ExistingCluster::open(existing.clone())?), None)
        }
    };
    let keys = target.tenant_keys(&run_id).await?;
    let initial_ids = target.node_ids();
    // Keys of this run only, so a cluster that already holds a drill's data
    // (one elsewhere) never shows the checker a value this run did not write.
    let key_prefix = format!("run-{run_id}/");

    let mut tasks = Vec::new();
    let shared = target.client(target.endpoints(), Some(&keys[TENANTS[0]])).await?;
    for id in 0..options.shared_client_tasks {
        tasks.push(Task {
            client: shared.clone(),
            tenant: TENANTS[0].to_string(),
            key_prefix: key_prefix.clone(),
            id,
            seed: options.seed,
        });
    }
    for (index, endpoints) in target.zone_endpoints().into_iter().enumerate() {
        let tenant = TENANTS[(index + 1) % TENANTS.len()];
        tasks.push(Task {
            client: target.client(endpoints, Some(&keys[tenant])).await?,
            tenant: tenant.to_string(),
            key_prefix: key_prefix.clone(),
            id: options.shared_client_tasks + index as u64,
            seed: options.seed,
        });
    }
    let mut watched = Vec::new();
    for (id, address) in target.watch_targets() {
        watched.push((id, target.client(vec![address], None).await?));
    }
    let origin = Instant::now();
    let monitor = Monitor::start(watched, origin);
    let backup_watch = BackupWatch::start(target.client(target.endpoints(), None).await?, origin);
    let recording = Recording::new(origin);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(workload::run(tasks, recording.clone(), stopped));
    let ms = |at: Instant| at.duration_since(origin).as_secs_f64() * 1000.0;

    hold(options.warmup, "steady state", &recording, &show).await;
    phase("fault");
    let fault_ms = ms(Instant::now());
    let injected = target.inject(options.fault, &options.zone).await?;
    let injected_ms = ms(Instant::now());
    if !target.outage_marked_by_hand() {
        hold(options.outage, "fault held", &recording, &show).await;
    }
    phase("heal");
    target.heal(&injected).await?;
    // A hook or a mark ends when the fault is undone; a local heal is at once.
    let heal_ms = ms(Instant::now());
    // The nodes the fault hit that are members after the heal, and any
    // node that joined in the meantime: each must catch up.
    let to_catch_up: Vec<u64> = target
        .node_ids()
        .into_iter()
        .filter(|id| injected.nodes.contains(id) || !initial_ids.contains(id))
        .collect();
    hold(options.recovery, "recovery", &recording, &show).await;
    let _ = stop.send(true);
    let _ = load.await;
    let end_ms = ms(Instant::now());
    let observed = monitor.finish().await;
    let (backup_samples, backup_error) = backup_watch.finish().await;

    phase("reading every key back");
    let mut finals = BTreeMap::new();
    for tenant in TENANTS {
        let reader = target.client(target.endpoints(), Some(&keys[tenant])).await?;
        finals.extend(final_reads(&reader, tenant, &key_prefix, &recording).await);
    }
    phase("checking every replica");
    let mut checks = Vec::new();
    let finals = &finals;
    for (id, address) in target.node_endpoints() {
        let mut clients = BTreeMap::new();
        for tenant in TENANTS {
            let client = target.client(vec![address.clone()], Some(&keys[tenant])).await?;
            clients.insert(tenant.to_string(), client);
        }
        checks.push(async move { converge::check_node(id, &clients, finals, CONVERGE_DEADLINE).await });
    }
    let divergences: Vec<Divergence> = futures::future::join_all(checks).await.into_iter().flatten().collect();
    target.finish().await;
    drop(target);
    drop(network);

    phase("checking the history");
    let checked = check_all(&recording.recorder.history());
    let mut findings: Vec<String> = checked.linearizability.violations().map(|v| v.to_string()).collect();
    findings.extend(checked.lost_writes.lost.iter().map(|l| l.to_string()));
    findings.extend(divergences.iter().map(|d| d.to_string()));
    findings.truncate(MAX_FINDINGS);
    let history = HistoryVerdict {
        operations: checked.operations,
        linearizable: checked.linearizability.is_ok(),
        lost_writes: checked.lost_writes.lost.len(),
        replicas_agree: divergences.is_empty(),
        findings,
    };
    let samples = recording.samples();
    let phases = Phases {
        fault_ms,
        injected_ms,
        heal_ms,
        end_ms,
    };
    let mut figures = measure::figures(&samples, phases);
    figures.catch_up_s = catch_up_s(&observed, &to_catch_up, heal_ms);
    figures.leader_changes = observed.leader_changes.clone();
    let passed =
        checked.is_ok() && history.replicas_agree && figures.longest_write_gap_s <= options.write_gap_slo.as_secs_f64();
    let report = DrillReport {
        fault: options.fault,
        isolation,
        zone: injected.zone,
        nodes: injected.nodes,
        mechanism: injected.mechanism,
        phases,
        figures,
        history,
        write_gap_slo_s: options.write_gap_slo.as_secs_f64(),
        passed,
        timeline: measure::buckets(&samples, end_ms),
        backup: BackupFigures::of(&backup_samples, backup_error, &phases),
    };
    report.write(&options.out)?;
    if !report.passed {
        // A failed drill keeps its evidence: the history beside the report,
        // the node logs under `cluster/`.
        let path = options.out.join(HISTORY_FILE);
        let json = serde_json::to_vec(&recording.recorder.history()).map_err(ReportError::Encode)?;
        std::fs::write(&path, json).map_err(|source| DrillError::Io {
            what: "cannot write",
            path,
            source,
        })?;
    }
    Ok(report)
}

/// From the heal until the last of `nodes` had applied everything the
/// leader had committed when the heal began; `None` if one never did (or
/// there is nothing to catch up: no node was hit).
fn catch_up_s(observed: &Observations, nodes: &[u64], heal_ms: f64) -> Option<f64> {
    let heal = heal_ms as u64;
    let target = observed.committed_at(heal)?;
    let mut last = None;
    for id in nodes {
        let at = observed.applied_at(*id, target, heal)?;
        last = last.max(Some(at));
    }
    last.map(|at| (at.saturating_sub(heal)) as f64 / 1000.0)
}

/// One successful linearizable read of every key of `tenant`, recorded:
/// what the cluster finally holds, against which lost writes are judged
/// and every replica is compared. Returns what each read found.
async fn final_reads(
    client: &safekeep_client::Client,
    tenant: &str,
    key_prefix: &str,
    recording: &Recording,
) -> Vec<((String, String), Held)> {
    let mut found = Vec::new();
    let who = ClientId(u64::MAX);
    for k in 0..workload::KEYS {
        let key = format!("{key_prefix}k{k}");
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
                return found;
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
            let held = match &outcome {
                Outcome::Read { record } => Some(record.as_ref().map(|r| (r.value.clone(), r.version))),
                _ => None,
            };
            let _ = recording.recorder.complete(id, outcome, recording.now_ns());
            if let Some(held) = held {
                found.push(((tenant.to_string(), key), held));
                break;
            }
        }
    }
    found
}
