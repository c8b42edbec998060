//! `safekeep-sim`: run simulations from the command line: one seed to replay
//! a failure exactly, or a soak over many seeds that prints a table of
//! scenario, runs, violations and worst write gap (with a progress bar on
//! standard error meanwhile, when that is a terminal).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use safekeep_sim::progress::SoakProgress;
use safekeep_sim::{RunConfig, Scenario, Topology, run};

/// Most seeds one soak may run.
const MAX_SEEDS: u64 = 1_000_000;

/// Run safekeep's turmoil simulations.
#[derive(Parser)]
#[command(name = "safekeep-sim", version, about, long_about = None)]
struct Args {
    /// Scenario name, or `all`.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Topology: 3x1, 5-voters, 3x2, or `all`.
    #[arg(long, default_value = "3x1")]
    topology: String,
    /// Run exactly this seed (a replay).
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run this many seeds per scenario and topology, starting at --first-seed.
    #[arg(long, default_value_t = 10)]
    seeds: u64,
    /// First seed of a soak.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Print the fault trace of every run.
    #[arg(long)]
    verbose: bool,
    /// With --seed: write the run's fault trace and issued operations to this JSON file.
    #[arg(long, requires = "seed")]
    trace_file: Option<std::path::PathBuf>,
}

#[derive(Default)]
struct Row {
    runs: u64,
    violations: u64,
    worst_gap: Duration,
    failing_seeds: Vec<u64>,
}

fn parse_all<T: Copy>(value: &str, all: &[T], parse: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    if value == "all" {
        Ok(all.to_vec())
    } else {
        parse(value).map(|v| vec![v])
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let scenarios = match parse_all(&args.scenario, &Scenario::ALL, |s| s.parse()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let topologies = match parse_all(&args.topology, &Topology::ALL, |s| s.parse()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let seeds: Vec<u64> = match args.seed {
        Some(seed) => vec![seed],
        None => (args.first_seed..args.first_seed.saturating_add(args.seeds.min(MAX_SEEDS))).collect(),
    };
    let mut table: BTreeMap<(String, String), Row> = BTreeMap::new();
    let total = (topologies.len() * scenarios.len() * seeds.len()) as u64;
    let mut progress = SoakProgress::new(total);
    for topology in &topologies {
        for scenario in &scenarios {
            for seed in &seeds {
                let config = RunConfig {
                    seed: *seed,
                    scenario: *scenario,
                    topology: *topology,
                };
                let row = table.entry((scenario.to_string(), topology.to_string())).or_default();
                row.runs += 1;
                let outcome = run(config);
                let violated = !outcome.as_ref().is_ok_and(|report| report.is_ok());
                progress.run_done(violated);
                match outcome {
                    Ok(report) => {
                        if args.verbose {
                            progress.suspend(|| {
                                for (at, what) in &report.trace {
                                    println!("  {at:>10.3?}  {what}");
                                }
                            });
                        }
                        row.worst_gap = row.worst_gap.max(report.worst_write_gap);
                        if let Some(path) = &args.trace_file {
                            let trace: Vec<(u128, &String)> =
                                report.trace.iter().map(|(at, what)| (at.as_millis(), what)).collect();
                            let json = serde_json::json!({
                                "faults": trace,
                                "issued": report.issued,
                                "outcomes": report.outcomes,
                            });
                            if let Err(e) = std::fs::write(path, json.to_string()) {
                                eprintln!("error: cannot write {}: {e}", path.display());
                                return ExitCode::FAILURE;
                            }
                        }
                        if !report.is_ok() {
                            row.violations += 1;
                            row.failing_seeds.push(*seed);
                            progress.suspend(|| {
                                println!("VIOLATION in {scenario} on {topology}, seed {seed}:");
                                for v in &report.violations {
                                    println!("  {v}");
                                }
                                println!("  replay: {}", config.replay_command());
                            });
                        }
                    }
                    Err(e) => {
                        row.violations += 1;
                        progress.suspend(|| println!("run failed: {e}; replay: {}", config.replay_command()));
                    }
                }
            }
        }
    }
    progress.finish();
    println!(
        "{:<24} {:<9} {:>6} {:>11} {:>16}",
        "scenario", "topology", "runs", "violations", "worst write gap"
    );
    let mut any = false;
    for ((scenario, topology), row) in &table {
        any |= row.violations > 0;
        println!(
            "{scenario:<24} {topology:<9} {:>6} {:>11} {:>16.2?}",
            row.runs, row.violations, row.worst_gap
        );
    }
    if any { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
