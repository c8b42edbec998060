//! `safekeep-chaos`: runs chaos drills against a real local cluster laid out
//! one network namespace per zone, and writes a verdict, SLO figures and a
//! timeline plot for each.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use safekeep_chaos::netns::{self, Isolation};
use safekeep_chaos::{DrillOptions, DrillReport, ExistingOptions, FaultKind, Progress, TargetOptions};
use safekeep_node::config::BackupSettings;

/// The table of every drill `drill all` ran, in the report folder.
const SUMMARY_FILE: &str = "summary.md";
/// How often the progress spinner redraws.
const SPINNER_TICK: Duration = Duration::from_millis(120);

#[derive(Parser)]
#[command(
    name = "safekeep-chaos",
    version,
    about = "Chaos drills against a real safekeep cluster: \
    one network namespace per zone, real processes, real kernel faults; a verdict, SLO figures and a timeline plot. \
    Network and disk faults need root (network namespaces, nftables, tc, loop devices); \
    without root the process faults run on loopback."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one drill, or every drill in turn with `all`.
    Drill(Box<DrillArgs>),
    /// Remove namespaces, links and rules an interrupted drill left behind.
    Cleanup,
}

#[derive(clap::Args)]
struct DrillArgs {
    /// The fault, or `all` for every fault in turn:
    /// zone-power-loss (SIGKILL a zone's nodes, as FIS's AZ power interruption; restart at heal),
    /// zone-isolation (drop all traffic of a zone: peers hear silence, as a cut link),
    /// asymmetric-partition (drop only what leaves the zone: it hears the others, they never hear it),
    /// zone-freeze (SIGSTOP, then SIGCONT: a hung host or a stalled hypervisor),
    /// slow-zone (tc netem delay and loss: a degraded link),
    /// leader-zone-loss (power loss of the zone holding the leader),
    /// rolling-restart (each node restarted in turn: a deploy),
    /// disk-stall (fsfreeze of the zone's data filesystems: an EBS volume that stops answering),
    /// node-replacement (a node's disk is lost; a new node with a new id joins and takes its place).
    #[arg(value_name = "FAULT|all", value_parser = parse_faults, verbatim_doc_comment)]
    faults: FaultList,
    /// The zone the fault hits (leader-zone-loss picks the leader's zone itself).
    #[arg(long, default_value = "a")]
    zone: String,
    /// Nodes, spread round-robin over the three zones (5 puts two in zones a and b).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Seconds of steady state before the fault.
    #[arg(long, visible_alias = "warmup", default_value_t = 10)]
    steady: u64,
    /// Seconds the fault holds (FIS's AZ power interruption holds 30 minutes).
    #[arg(long, default_value_t = 30)]
    outage: u64,
    /// Seconds of workload after the heal.
    #[arg(long, default_value_t = 30)]
    recovery: u64,
    /// Tasks sharing the one SDK client that knows every node (one more client per zone knows only its zone).
    #[arg(long, default_value_t = 4)]
    clients: u64,
    /// Seeds the workload's choice of keys and operations.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The longest write gap, in seconds, that still passes.
    #[arg(long, default_value_t = 5.0)]
    write_gap_slo: f64,
    /// Where each drill's cluster data and report go (one folder per fault).
    #[arg(long, visible_alias = "out", default_value = "safekeep-chaos")]
    report: PathBuf,
    /// The node program (default: `safekeep-node` beside this one).
    #[arg(long)]
    node_binary: Option<PathBuf>,
    /// Put every node on a loopback address of its own instead of one network
    /// namespace per zone: no root needed, but only the faults made with signals
    /// (zone-power-loss, zone-freeze, leader-zone-loss, rolling-restart, node-replacement).
    /// Chosen by itself when not run as root.
    #[arg(long)]
    loopback: bool,
    /// Have the nodes back up to this target (`file:///ABSOLUTE/DIR`, or
    /// `s3://BUCKET[/PREFIX]` reachable from every zone) and report how far
    /// behind the backups fall during the fault. A cluster elsewhere is
    /// watched the same way when it takes backups.
    #[arg(long, value_name = "URL", conflicts_with = "endpoints")]
    backup_target: Option<String>,
    /// Longest seconds the nodes wait before shipping committed writes to --backup-target.
    #[arg(long, value_name = "SECONDS", requires = "backup_target", default_value_t = safekeep_node::config::DEFAULT_BACKUP_ARCHIVE_INTERVAL_S)]
    backup_archive_interval: u64,
    /// Drill a cluster that runs elsewhere instead of starting one: its endpoints
    /// (nodes, or a load balancer), comma-separated. The fault then comes from
    /// --fault-start-cmd and --fault-stop-cmd, or from marks made by hand (Enter).
    #[arg(long, value_delimiter = ',', help_heading = "A cluster elsewhere")]
    endpoints: Vec<String>,
    /// CA certificate (PEM) the cluster's nodes chain to; without it, plaintext.
    #[arg(
        long,
        value_name = "PEM",
        requires = "endpoints",
        help_heading = "A cluster elsewhere"
    )]
    ca: Option<PathBuf>,
    /// An operator's client certificate (PEM): the drill makes its tenants and keys with it.
    #[arg(long, value_name = "PEM", requires_all = ["endpoints", "client_key"], help_heading = "A cluster elsewhere")]
    client_cert: Option<PathBuf>,
    /// Private key (PEM) of --client-cert.
    #[arg(
        long,
        value_name = "PEM",
        requires = "client_cert",
        help_heading = "A cluster elsewhere"
    )]
    client_key: Option<PathBuf>,
    /// Name to check the nodes' certificates against, if not the endpoint's host.
    #[arg(long, requires = "endpoints", help_heading = "A cluster elsewhere")]
    server_name: Option<String>,
    /// Shell command that starts the fault, e.g.
    /// `aws fis start-experiment --experiment-template-id EXT... --query experiment.id --output text > fis.id`.
    #[arg(long, requires = "endpoints", help_heading = "A cluster elsewhere")]
    fault_start_cmd: Option<String>,
    /// Shell command that ends the fault, e.g. `aws fis stop-experiment --id "$(cat fis.id)"`.
    /// Without it, a started fault ends on its own (the experiment's own duration).
    #[arg(long, requires = "fault_start_cmd", help_heading = "A cluster elsewhere")]
    fault_stop_cmd: Option<String>,
}

#[derive(Clone)]
struct FaultList(Vec<FaultKind>);

fn parse_faults(value: &str) -> Result<FaultList, String> {
    if value == "all" {
        return Ok(FaultList(FaultKind::ALL.to_vec()));
    }
    let names: Vec<String> = FaultKind::ALL.iter().map(ToString::to_string).collect();
    value
        .parse::<FaultKind>()
        .map(|fault| FaultList(vec![fault]))
        .map_err(|_| format!("unknown fault '{value}'; one of: all, {}", names.join(", ")))
}

fn node_binary(given: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(path) = given {
        return Ok(path);
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program's path: {e}"))?;
    let beside = exe.with_file_name("safekeep-node");
    if beside.exists() {
        Ok(beside)
    } else {
        Err(format!(
            "no safekeep-node beside {}: build it (cargo build -p safekeep-node) or pass --node-binary",
            exe.display()
        ))
    }
}

/// How the local cluster's zones are laid out: namespaces as root, else
/// loopback (then only the process faults of `drill all` run).
fn isolation(args: &mut DrillArgs) -> Isolation {
    if !args.loopback && netns::is_root() {
        return Isolation::Namespaces;
    }
    if !args.loopback {
        eprintln!("note: not root, so every node gets a loopback address of its own (process faults only)");
    }
    if args.faults.0.len() == FaultKind::ALL.len() {
        let (runnable, skipped): (Vec<FaultKind>, Vec<FaultKind>) =
            args.faults.0.iter().copied().partition(|f| f.needs_root().is_none());
        let skipped: Vec<String> = skipped.iter().map(ToString::to_string).collect();
        eprintln!(
            "note: on loopback these drills need root and are skipped: {}",
            skipped.join(", ")
        );
        args.faults.0 = runnable;
    }
    Isolation::Loopback
}

/// The nodes' `[backup]` settings the drill's options ask for.
fn backup_settings(args: &DrillArgs) -> Result<Option<BackupSettings>, String> {
    let Some(target) = &args.backup_target else {
        return Ok(None);
    };
    let mut settings = BackupSettings::new(target.clone());
    settings.archive_interval_s = args.backup_archive_interval;
    settings.validate().map_err(|e| e.to_string())?;
    Ok(Some(settings))
}

async fn drill(mut args: DrillArgs) -> Result<bool, String> {
    let target = if args.endpoints.is_empty() {
        TargetOptions::Local {
            nodes: args.nodes,
            isolation: isolation(&mut args),
            node_binary: node_binary(args.node_binary.clone())?,
            backup: backup_settings(&args)?,
        }
    } else {
        TargetOptions::Existing(ExistingOptions {
            endpoints: args.endpoints.clone(),
            ca: args.ca.clone(),
            operator: args.client_cert.clone().zip(args.client_key.clone()),
            server_name: args.server_name.clone(),
            fault_start_cmd: args.fault_start_cmd.clone(),
            fault_stop_cmd: args.fault_stop_cmd.clone(),
        })
    };
    let mut all_passed = true;
    let mut reports = Vec::new();
    let bar = ProgressBar::new(args.faults.0.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] drill {pos}/{len} {msg}")
            .map_err(|e| e.to_string())?,
    );
    bar.enable_steady_tick(SPINNER_TICK);
    for fault in args.faults.0 {
        let options = DrillOptions {
            fault,
            zone: args.zone.clone(),
            target: target.clone(),
            shared_client_tasks: args.clients,
            seed: args.seed,
            warmup: Duration::from_secs(args.steady),
            outage: Duration::from_secs(args.outage),
            recovery: Duration::from_secs(args.recovery),
            write_gap_slo: Duration::from_secs_f64(args.write_gap_slo),
            out: args.report.join(fault.to_string()),
        };
        let show = |p: Progress| {
            let rate = p
                .ops_per_s
                .map_or_else(String::new, |r| format!(" - {r:.0} ops/s, {} errors", p.errors));
            bar.set_message(format!("{fault}: {}{rate}", p.phase));
        };
        let report = safekeep_chaos::run(&options, show)
            .await
            .map_err(|e| format!("{fault}: {e}"))?;
        bar.inc(1);
        let line = format!(
            "{fault}: {} - write gap {:.2} s, failover {}, {} operations, linearizable {}, lost writes {}; report in {}",
            verdict(report.passed),
            report.figures.longest_write_gap_s,
            seconds(report.figures.failover_s),
            report.history.operations,
            report.history.linearizable,
            report.history.lost_writes,
            options.out.display()
        );
        // Printed around the bar, so it shows whether or not the bar is drawn.
        bar.suspend(|| println!("{line}"));
        all_passed &= report.passed;
        reports.push(report);
    }
    if reports.len() > 1 {
        let table = summary(&reports);
        let path = args.report.join(SUMMARY_FILE);
        std::fs::write(&path, &table).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        bar.suspend(|| println!("\n{table}\nSummary in {}", path.display()));
    }
    bar.finish_and_clear();
    Ok(all_passed)
}

fn verdict(passed: bool) -> &'static str {
    if passed { "PASS" } else { "FAIL" }
}

fn seconds(value: Option<f64>) -> String {
    value.map_or_else(|| "never".into(), |s| format!("{s:.2} s"))
}

/// One row per drill, as Markdown.
fn summary(reports: &[DrillReport]) -> String {
    let mut out = String::from(
        "| fault | zone | verdict | longest write gap | failover | recovery | catch-up | availability during | operations | linearizable | lost writes |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        let f = &r.figures;
        out += &format!(
            "| {} | {} | {} | {:.2} s | {} | {} | {} | {} | {} | {} | {} |\n",
            r.fault,
            r.zone,
            verdict(r.passed),
            f.longest_write_gap_s,
            seconds(f.failover_s),
            seconds(f.recovery_s),
            seconds(f.catch_up_s),
            f.during
                .availability_pct
                .map_or_else(|| "-".into(), |a| format!("{a:.1}%")),
            r.history.operations,
            if r.history.linearizable { "yes" } else { "NO" },
            r.history.lost_writes
        );
    }
    out
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Cleanup => {
                netns::clean_leftovers();
                Ok(true)
            }
            Command::Drill(args) => tokio::select! {
                outcome = drill(*args) => outcome,
                // Dropping the drill stops its processes and removes its namespaces.
                _ = tokio::signal::ctrl_c() => Err("interrupted; the drill's processes and namespaces are removed".into()),
            },
        }
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}
