//! One benchmark session: a fresh work directory (refused on a filesystem
//! kept in memory, where fsync would do nothing), the development
//! certificates, the clusters, the keys read workloads need, then every run,
//! alternating the systems and their order (round 1: safekeep then etcd,
//! round 2: etcd then safekeep, ...) so that noise on the machine, and
//! whatever the previous run left behind, hits both, and finally the report. The clusters are
//! stopped and the work directory removed (unless kept) whether the session
//! ends, fails or is interrupted; on a panic the work directory still goes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use nix::sys::statfs::{
    BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, F2FS_SUPER_MAGIC, FUSE_SUPER_MAGIC, FsType, NFS_SUPER_MAGIC,
    OVERLAYFS_SUPER_MAGIC, TMPFS_MAGIC, XFS_SUPER_MAGIC,
};

use crate::error::{BenchError, io_err};
use crate::load::{LoadSpec, drive, populate};
use crate::measure::{clock_ticks_per_second, total_rss_bytes};
use crate::operations::failover::failover_once;
use crate::operations::footprint::footprint;
use crate::operations::{FailoverReport, FootprintReport};
use crate::plot;
use crate::report::{Machine, Report, RunFigures};
use crate::settings::{Security, Settings};
use crate::targets::certs::DevCerts;
use crate::targets::etcd::EtcdCluster;
use crate::targets::safekeep::SafekeepCluster;
use crate::targets::{Cluster, Programs, SetupContext, TargetKind};

/// How often the progress line is redrawn.
const PROGRESS_REFRESH: Duration = Duration::from_millis(200);
/// ramfs's magic number (`RAMFS_MAGIC` of linux/magic.h), which nix does not name.
const RAMFS_MAGIC: FsType = FsType(0x8584_58f6_u32 as _);
/// Filesystems kept in memory: fsync does nothing there, for either system,
/// so a benchmark on them would measure neither system's durable writes.
const VOLATILE_FILESYSTEMS: [(FsType, &str); 2] = [(TMPFS_MAGIC, "tmpfs"), (RAMFS_MAGIC, "ramfs")];
/// Names of common disk-backed filesystems, for the report (ext2, ext3 and
/// ext4 share one magic number).
const KNOWN_FILESYSTEMS: [(FsType, &str); 7] = [
    (EXT4_SUPER_MAGIC, "ext2/3/4"),
    (XFS_SUPER_MAGIC, "xfs"),
    (BTRFS_SUPER_MAGIC, "btrfs"),
    (F2FS_SUPER_MAGIC, "f2fs"),
    (OVERLAYFS_SUPER_MAGIC, "overlayfs"),
    (NFS_SUPER_MAGIC, "nfs"),
    (FUSE_SUPER_MAGIC, "fuse"),
];

/// What to run and where.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub settings: Settings,
    /// The systems to measure, in the order the first round runs them; each
    /// following round reverses the previous one's order.
    pub targets: Vec<TargetKind>,
    /// Work directory; `None`: a new temporary one.
    pub dir: Option<PathBuf>,
    /// Keep the work directory (data, configs, logs) after the session.
    pub keep: bool,
    pub programs: Programs,
}

/// The session's work directory, removed when dropped unless kept: at the
/// end, on an error, and on a panic too.
struct WorkDir {
    path: PathBuf,
    keep: bool,
    /// The temporary directory when no --dir was given (and no --keep): held,
    /// so that it goes on every path out.
    temp: Option<tempfile::TempDir>,
    /// Its filesystem type, for the report.
    filesystem: String,
}

/// The filesystem type of `dir`, or of its nearest existing parent when it
/// does not exist yet; an error on a filesystem kept in memory.
fn disk_filesystem(dir: &Path) -> Result<String, BenchError> {
    let existing = dir.ancestors().find(|a| a.exists()).unwrap_or(Path::new("/"));
    let kind = nix::sys::statfs::statfs(existing)
        .map_err(|errno| io_err("cannot read the filesystem type of", existing)(errno.into()))?
        .filesystem_type();
    if let Some((_, filesystem)) = VOLATILE_FILESYSTEMS.iter().find(|(magic, _)| *magic == kind) {
        return Err(BenchError::VolatileDir {
            dir: dir.to_path_buf(),
            filesystem,
        });
    }
    Ok(filesystem_name(kind))
}

/// A filesystem type's name, or its magic number when it is not a common one.
fn filesystem_name(kind: FsType) -> String {
    VOLATILE_FILESYSTEMS
        .iter()
        .chain(&KNOWN_FILESYSTEMS)
        .find(|(magic, _)| *magic == kind)
        .map_or_else(|| format!("filesystem 0x{:x}", kind.0), |(_, name)| (*name).to_string())
}

impl WorkDir {
    fn create(dir: Option<&Path>, keep: bool) -> Result<Self, BenchError> {
        let filesystem = disk_filesystem(&dir.map_or_else(std::env::temp_dir, Path::to_path_buf))?;
        let (path, temp) = match dir {
            Some(dir) => {
                let empty = std::fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_none());
                if !empty {
                    return Err(BenchError::BadOption(format!(
                        "--dir {} is not empty: the clusters need fresh directories",
                        dir.display()
                    )));
                }
                std::fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
                (dir.canonicalize().map_err(io_err("cannot resolve", dir))?, None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("safekeep-bench-")
                    .tempdir()
                    .map_err(io_err("cannot create a temporary directory in", &std::env::temp_dir()))?;
                if keep {
                    (temp.keep(), None)
                } else {
                    (temp.path().to_path_buf(), Some(temp))
                }
            }
        };
        Ok(Self {
            path,
            keep,
            temp,
            filesystem,
        })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("data, configs and logs kept in {}", self.path.display());
            return;
        }
        let removed = match self.temp.take() {
            Some(temp) => temp.close(),
            None => std::fs::remove_dir_all(&self.path),
        };
        if let Err(e) = removed {
            eprintln!("cannot remove {}: {e}", self.path.display());
        }
    }
}

/// The clusters a session runs.
#[derive(Default)]
struct Clusters {
    safekeep: Option<SafekeepCluster>,
    etcd: Option<EtcdCluster>,
}

impl Clusters {
    async fn stop(self) {
        if let Some(cluster) = self.safekeep {
            cluster.stop().await;
        }
        if let Some(cluster) = self.etcd {
            cluster.stop().await;
        }
    }
}

/// What a session does with its clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// The workload at each client count, round after round.
    Load,
    /// `runs` failovers per system: SIGKILL of the leader, alternating the systems.
    Failover { runs: usize },
    /// The footprint of the key set (`settings.keys` records), one system after the other.
    Footprint,
}

/// What a session's job reports.
#[derive(Debug, Clone)]
pub enum Outcome {
    Load(Report),
    Failover(FailoverReport),
    Footprint(FootprintReport),
}

/// Runs the load session; the clusters are stopped and the directory removed on every path out.
pub async fn run(options: &SessionOptions) -> Result<Report, BenchError> {
    match run_job(options, Job::Load).await? {
        Outcome::Load(report) => Ok(report),
        _ => unreachable!("a load job reports a load"),
    }
}

/// Runs `job`; the clusters are stopped and the directory removed on every path out.
pub async fn run_job(options: &SessionOptions, job: Job) -> Result<Outcome, BenchError> {
    options.settings.validate()?;
    if options.targets.is_empty() {
        return Err(BenchError::BadOption("no target to measure".into()));
    }
    let workdir = WorkDir::create(options.dir.as_deref(), options.keep)?;
    eprintln!("work directory {} on {}", workdir.path.display(), workdir.filesystem);
    let mut clusters = Clusters::default();
    let result = tokio::select! {
        result = session(options, job, &workdir, &mut clusters) => result,
        () = interrupted() => Err(BenchError::Interrupted),
    };
    clusters.stop().await;
    // Only once the clusters are stopped: nothing writes there any more.
    drop(workdir);
    result
}

/// Ctrl-C or SIGTERM.
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn session(
    options: &SessionOptions,
    job: Job,
    workdir: &WorkDir,
    clusters: &mut Clusters,
) -> Result<Outcome, BenchError> {
    let settings = &options.settings;
    let dir = workdir.path.as_path();
    let certs = match settings.security {
        Security::Tls => Some(DevCerts::make(options.programs.node()?, &dir.join("ca")).await?),
        Security::Plaintext => None,
    };
    let context = |name: &str| SetupContext {
        dir: dir.join(name),
        settings: settings.clone(),
        programs: options.programs.clone(),
        certs: certs.clone(),
    };
    let mut setups = BTreeMap::new();
    for target in &options.targets {
        eprintln!("starting {target} ...");
        match target {
            TargetKind::Safekeep => {
                let cluster = clusters
                    .safekeep
                    .insert(SafekeepCluster::start(&context("safekeep")).await?);
                setups.insert(*target, cluster.describe());
            }
            TargetKind::Etcd => {
                let cluster = clusters.etcd.insert(EtcdCluster::start(&context("etcd")).await?);
                setups.insert(*target, cluster.describe());
            }
        }
    }
    let machine = Machine::this(&workdir.filesystem);
    match job {
        Job::Load => {}
        Job::Failover { runs } => {
            let mut samples = Vec::new();
            for run in 1..=runs {
                for target in &round_order(&options.targets, run) {
                    eprintln!("failover run {run}/{runs}: {target} ...");
                    let sample = match target {
                        TargetKind::Safekeep => {
                            let cluster = clusters.safekeep.as_mut().expect("started above");
                            failover_once(cluster, run, settings.value_size).await?
                        }
                        TargetKind::Etcd => {
                            let cluster = clusters.etcd.as_mut().expect("started above");
                            failover_once(cluster, run, settings.value_size).await?
                        }
                    };
                    eprintln!(
                        "{target:>8} run {run}: failover {:.0} ms, write gap {:.0} ms",
                        sample.failover_ms, sample.write_gap_ms
                    );
                    samples.push(sample);
                }
            }
            return Ok(Outcome::Failover(FailoverReport::new(machine, setups, samples)));
        }
        Job::Footprint => {
            let mut figures = Vec::new();
            for target in &options.targets {
                eprintln!(
                    "{target}: writing {} records of {} B ...",
                    settings.keys, settings.value_size
                );
                let figure = match target {
                    TargetKind::Safekeep => {
                        let cluster = clusters.safekeep.as_mut().expect("started above");
                        footprint(cluster, settings).await?
                    }
                    TargetKind::Etcd => {
                        let cluster = clusters.etcd.as_mut().expect("started above");
                        footprint(cluster, settings).await?
                    }
                };
                figures.push(figure);
            }
            return Ok(Outcome::Footprint(FootprintReport {
                machine,
                setups,
                figures,
            }));
        }
    }
    if settings.workload.reads_populated_keys() {
        if let Some(cluster) = &clusters.safekeep {
            populate(cluster, settings).await?;
        }
        if let Some(cluster) = &clusters.etcd {
            populate(cluster, settings).await?;
        }
    }
    let ticks_per_s = clock_ticks_per_second();
    let mut runs = Vec::new();
    let mut run_number = 0;
    for &clients in &settings.clients {
        for round in 1..=settings.rounds {
            for target in &round_order(&options.targets, round) {
                run_number += 1;
                let slot = (clients, round, run_number);
                let figures = match target {
                    TargetKind::Safekeep => {
                        let cluster = clusters.safekeep.as_mut().expect("started above");
                        run_one(cluster, settings, slot, ticks_per_s).await?
                    }
                    TargetKind::Etcd => {
                        let cluster = clusters.etcd.as_mut().expect("started above");
                        run_one(cluster, settings, slot, ticks_per_s).await?
                    }
                };
                runs.push(figures);
            }
        }
    }
    Ok(Outcome::Load(Report::new(settings.clone(), machine, setups, runs)))
}

/// The order the systems run in round `round` (1-based): as given in odd
/// rounds, reversed in even ones, so that neither always goes first (a run
/// right after the clusters start, or after the other system's run).
fn round_order(targets: &[TargetKind], round: usize) -> Vec<TargetKind> {
    let mut order = targets.to_vec();
    if round.is_multiple_of(2) {
        order.reverse();
    }
    order
}

/// One run of one system: fresh connections, the load, and its figures.
async fn run_one<C: Cluster>(
    cluster: &mut C,
    settings: &Settings,
    (clients, round, run_number): (usize, usize, usize),
    ticks_per_s: u64,
) -> Result<RunFigures, BenchError> {
    cluster.check_running()?;
    let target = cluster.kind();
    let connections = settings.connections_for(clients);
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(cluster.connect().await?);
    }
    let spec = LoadSpec {
        workload: settings.workload,
        clients,
        warmup: settings.warmup,
        duration: settings.duration,
        rate: settings.rate,
        value_size: settings.value_size,
        keys: settings.keys,
        run: run_number as u64,
    };
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {pos} ops, {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(format!(
        "{target} {} with {clients} clients over {connections} connections, round {round}/{}:",
        settings.workload, settings.rounds
    ));
    bar.enable_steady_tick(PROGRESS_REFRESH);
    let pids = cluster.server_pids();
    let outcome = drive(&conns, &spec, &pids, {
        let bar = bar.clone();
        move |done| bar.set_position(done)
    })
    .await;
    bar.finish_and_clear();
    let rss = total_rss_bytes(&pids);
    cluster.check_running()?;
    let figures = RunFigures::new(target, (clients, connections, round), &outcome, rss, ticks_per_s);
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2} ms"));
    eprintln!(
        "{target:>8} {:>4} clients round {round}: {:>8.0} ops/s  p50 {}  p99 {}  errors {}  late {}",
        clients,
        figures.ops_per_s,
        ms(figures.p50_ms),
        ms(figures.p99_ms),
        figures.errors,
        figures.late
    );
    Ok(figures)
}

/// What [`write_outputs`] wrote.
#[derive(Debug)]
pub struct Written {
    /// `bench.json` and `bench.md`.
    pub report: Vec<PathBuf>,
    /// `bench.png`, or why it could not be drawn (the report is written regardless).
    pub plot: Result<PathBuf, BenchError>,
}

/// Writes `bench.json` and `bench.md` into `out`, then draws `bench.png`
/// there; a plot that fails loses nothing else. An error only when the
/// report itself cannot be written.
pub fn write_outputs(report: &Report, out: &Path) -> Result<Written, BenchError> {
    std::fs::create_dir_all(out).map_err(io_err("cannot create", out))?;
    let json_path = out.join("bench.json");
    let json = serde_json::to_string_pretty(report).expect("a report always serializes");
    std::fs::write(&json_path, json).map_err(io_err("cannot write", &json_path))?;
    let md_path = out.join("bench.md");
    std::fs::write(&md_path, report.table()).map_err(io_err("cannot write", &md_path))?;
    let png_path = out.join("bench.png");
    let plot = plot::draw(report, &png_path).map(|()| png_path);
    Ok(Written {
        report: vec![json_path, md_path],
        plot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let settings = Settings {
            workload: crate::Workload::Put,
            clients: vec![1],
            rounds: 1,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            value_size: 8,
            connections: None,
            rate: None,
            keys: 1,
            security: Security::Tls,
            ports: crate::Ports { base: 17_100 },
            backup_target: None,
        };
        Report::new(settings, Machine::this("ext2/3/4"), BTreeMap::new(), Vec::new())
    }

    #[test]
    fn a_plot_that_cannot_be_drawn_leaves_the_report_written() {
        let out = tempfile::TempDir::new().unwrap();
        // A directory where the picture should go: drawing it fails.
        std::fs::create_dir(out.path().join("bench.png")).unwrap();
        let written = write_outputs(&report(), out.path()).expect("the report is written");
        assert!(written.plot.is_err(), "{written:?}");
        for path in &written.report {
            assert!(std::fs::metadata(path).is_ok_and(|m| m.len() > 0), "{}", path.display());
        }
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.path().join("bench.json")).unwrap()).unwrap();
        assert_eq!(json["settings"]["workload"], "put");
    }

    #[test]
    fn the_temporary_work_directory_goes_even_on_a_panic_and_stays_with_keep() {
        if let Err(error) = disk_filesystem(&std::env::temp_dir()) {
            eprintln!("skipped: {error}");
            return;
        }
        let workdir = WorkDir::create(None, false).unwrap();
        let path = workdir.path.clone();
        std::fs::write(path.join("data"), b"x").unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _held = workdir;
            panic!("a session that panics");
        }));
        assert!(panicked.is_err());
        assert!(!path.exists(), "{} was left behind", path.display());

        let kept = WorkDir::create(None, true).unwrap();
        let path = kept.path.clone();
        drop(kept);
        assert!(path.is_dir(), "--keep keeps it");
        std::fs::remove_dir_all(&path).unwrap();
    }

    #[test]
    fn each_round_reverses_the_order_of_the_one_before() {
        use TargetKind::{Etcd, Safekeep};
        let both = [Safekeep, Etcd];
        assert_eq!(round_order(&both, 1), [Safekeep, Etcd]);
        assert_eq!(round_order(&both, 2), [Etcd, Safekeep]);
        assert_eq!(round_order(&both, 3), [Safekeep, Etcd]);
        assert_eq!(round_order(&[Etcd], 2), [Etcd]);
    }

    #[test]
    fn filesystems_are_named_and_memory_ones_are_volatile() {
        assert_eq!(filesystem_name(TMPFS_MAGIC), "tmpfs");
        assert_eq!(filesystem_name(RAMFS_MAGIC), "ramfs");
        assert_eq!(filesystem_name(XFS_SUPER_MAGIC), "xfs");
        assert_eq!(filesystem_name(FsType(0x1234)), "filesystem 0x1234");
    }

    #[test]
    fn a_work_directory_on_tmpfs_is_refused_with_a_hint_and_not_created() {
        let shm = Path::new("/dev/shm");
        let on_tmpfs = nix::sys::statfs::statfs(shm).is_ok_and(|s| s.filesystem_type() == TMPFS_MAGIC);
        if !on_tmpfs {
            eprintln!("skipped: {} is not a tmpfs here", shm.display());
            return;
        }
        let dir = shm
            .join(format!("safekeep-bench-test-{}", std::process::id()))
            .join("work");
        let Err(error) = WorkDir::create(Some(&dir), false) else {
            panic!("{} was accepted", dir.display());
        };
        assert!(
            matches!(
                error,
                BenchError::VolatileDir {
                    filesystem: "tmpfs",
                    ..
                }
            ),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.contains(&dir.display().to_string()) && message.contains("--dir"),
            "{message}"
        );
        assert!(!dir.exists() && !dir.parent().unwrap().exists(), "nothing was created");
    }
}
