//! `safekeep-chaos`: runs chaos drills against a real local cluster laid out
//! one network namespace per zone, and writes a verdict, SLO figures and a
//! timeline plot for each.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use safekeep_chaos::{DrillOptions, FaultKind, netns};

/// How often the progress spinner redraws.
const SPINNER_TICK: Duration = Duration::from_millis(120);

#[derive(Parser)]
#[command(
    name = "safekeep-chaos",
    version,
    about = "Chaos drills against a real safekeep cluster: \
    one network namespace per zone, real processes, real kernel faults; a verdict, SLO figures and a timeline plot. \
    Needs root (network namespaces, nftables, tc)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one drill, or every drill in turn with `all`.
    Drill(DrillArgs),
    /// Remove namespaces, links and rules an interrupted drill left behind.
    Cleanup,
}

#[derive(clap::Args)]
struct DrillArgs {
    /// The fault, or `all`.
    #[arg(value_name = "FAULT|all", value_parser = parse_faults)]
    faults: FaultList,
    /// The zone the fault hits (leader-zone-loss picks the leader's zone itself).
    #[arg(long, default_value = "a")]
    zone: String,
    /// Nodes per zone (3 zones).
    #[arg(long, default_value_t = 1)]
    nodes_per_zone: usize,
    /// Seconds of workload before the fault.
    #[arg(long, default_value_t = 10)]
    warmup: u64,
    /// Seconds the fault holds (FIS's AZ power interruption holds 30 minutes).
    #[arg(long, default_value_t = 30)]
    outage: u64,
    /// Seconds of workload after the heal.
    #[arg(long, default_value_t = 30)]
    recovery: u64,
    /// The longest write gap, in seconds, that still passes.
    #[arg(long, default_value_t = 5.0)]
    write_gap_slo: f64,
    /// Where each drill's cluster data and report go (one folder per fault).
    #[arg(long, default_value = "safekeep-chaos")]
    out: PathBuf,
    /// The node program (default: `safekeep-node` beside this one).
    #[arg(long)]
    node_binary: Option<PathBuf>,
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

async fn drill(args: DrillArgs) -> Result<bool, String> {
    let node_binary = node_binary(args.node_binary)?;
    let mut all_passed = true;
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
            nodes_per_zone: args.nodes_per_zone,
            warmup: Duration::from_secs(args.warmup),
            outage: Duration::from_secs(args.outage),
            recovery: Duration::from_secs(args.recovery),
            write_gap_slo: Duration::from_secs_f64(args.write_gap_slo),
            out: args.out.join(fault.to_string()),
            node_binary: node_binary.clone(),
        };
        let report = safekeep_chaos::run(&options, |phase| bar.set_message(format!("{fault}: {phase}")))
            .await
            .map_err(|e| format!("{fault}: {e}"))?;
        bar.inc(1);
        let line = format!(
            "{fault}: {} - write gap {:.2} s, failover {}, {} operations, linearizable {}, lost writes {}; report in {}",
            if report.passed { "PASS" } else { "FAIL" },
            report.figures.longest_write_gap_s,
            report
                .figures
                .failover_s
                .map_or_else(|| "never".into(), |s| format!("{s:.2} s")),
            report.history.operations,
            report.history.linearizable,
            report.history.lost_writes,
            options.out.display()
        );
        // Printed around the bar, so it shows whether or not the bar is drawn.
        bar.suspend(|| println!("{line}"));
        all_passed &= report.passed;
    }
    bar.finish_and_clear();
    Ok(all_passed)
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
                outcome = drill(args) => outcome,
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
