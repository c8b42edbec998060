//! The `safekeep-bench` binary: `compare` runs safekeep and etcd side by
//! side, `run` one of them; both print a table (and with `--json` the
//! report as JSON), then write `bench.json` and `bench.md`, then draw
//! `bench.png`. A plot that cannot be drawn is a warning: the report is
//! already printed and written.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use safekeep_bench::error::io_err;
use safekeep_bench::plot::check_font;
use safekeep_bench::procs::find_program;
use safekeep_bench::session::{Job, Outcome, run_job, write_outputs};
use safekeep_bench::settings::{
    ETCD_CLIENT_OFFSET, ETCD_METRICS_OFFSET, ETCD_PEER_OFFSET, MAX_KEYS, MAX_ROUNDS, MEMBERS, PORT_SPAN,
    SAFEKEEP_HTTP_OFFSET, SAFEKEEP_PEER_OFFSET,
};
use safekeep_bench::{BenchError, Ports, Programs, Security, SessionOptions, Settings, TargetKind, Workload};

/// The first loopback port when --base-port is not given.
const DEFAULT_BASE_PORT: u16 = 17_100;

/// What `--help` says after the options: what the benchmark needs, what it
/// writes, the ports, how to read the figures, and examples.
fn help_details() -> String {
    let ports = |first: u16| format!("B+{}..B+{}", first + 1, first + MEMBERS);
    format!(
        "\
What it needs:
  etcd           the `etcd` program of etcd-server, on PATH or --etcd-binary
                 (scripts/install-deps.sh installs it)
  safekeep-node  beside this program (`cargo build -p safekeep-node` puts it
                 there), else on PATH, or --node-binary
  a font         DejaVu Sans (fonts-dejavu-core) for bench.png, checked before
                 any cluster starts

What it writes:
  The table goes to stdout (to stderr with --json, which prints the report as
  JSON on stdout). Then, in --out (default bench-results/): bench.json (every
  run, the medians, the ratios, the machine), bench.md (the table) and
  bench.png (throughput and p99 against clients). A plot that fails is a
  warning: the report is already printed and written.
  The clusters' data, configs and logs go to a new temporary directory, or to
  --dir (empty or new, on a disk-backed filesystem: tmpfs and ramfs are
  refused, as fsync does nothing there).

Ports (loopback only; B is --base-port, default {DEFAULT_BASE_PORT}; B to B+{last}):
  safekeep  client {sk_client}, peer {sk_peer}, HTTP {sk_http}
  etcd      client {etcd_client}, peer {etcd_peer}, metrics {etcd_metrics}
  footprint's new member takes the port after each block's last

Reading the ratios (safekeep/etcd, of the medians over the rounds):
  ops/s above 1 is better for safekeep; latency, server CPU per operation and
  server memory below 1 are better for safekeep.

Closed and open loop:
  Without --rate (closed loop) each client sends its next operation as soon as
  the last is answered: ops/s is what the system sustains at that many clients.
  With --rate N (open loop) operations are due N per second whatever the
  answers, and latency counts from when each was due. ops/s counts operations
  completed inside the measured window: below N, with many late operations,
  means the system could not keep up.

Cleanup:
  Both clusters are stopped and the work directory removed when the session
  ends, fails, panics or is interrupted (Ctrl-C, SIGTERM); --keep keeps the
  directory for a look at the logs.

Examples:
  safekeep-bench compare --workload put --clients 1,16,64,256 --rounds 3
  safekeep-bench compare --workload get --clients 64 --rate 2000 --dir /var/tmp/bench --keep",
        last = PORT_SPAN - 1,
        sk_client = ports(0),
        sk_peer = ports(SAFEKEEP_PEER_OFFSET),
        sk_http = ports(SAFEKEEP_HTTP_OFFSET),
        etcd_client = ports(ETCD_CLIENT_OFFSET),
        etcd_peer = ports(ETCD_PEER_OFFSET),
        etcd_metrics = ports(ETCD_METRICS_OFFSET),
    )
}

/// Benchmarks safekeep side by side with etcd: both as three-member clusters
/// on loopback, fsync on, TLS on (unless --plaintext), driven through their
/// own client libraries.
#[derive(Parser)]
#[command(name = "safekeep-bench", version, after_long_help = help_details())]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the workload on safekeep and on etcd, and print each figure's
    /// median with the safekeep/etcd ratio.
    ///
    /// Each round runs both systems once; the order alternates: round 1 runs
    /// safekeep then etcd, round 2 etcd then safekeep, and so on, so neither
    /// system always goes first.
    #[command(after_long_help = help_details())]
    Compare(BenchArgs),
    /// Run the workload on one system.
    #[command(after_long_help = help_details())]
    Run {
        /// The system to measure.
        #[arg(long, value_enum)]
        target: TargetKind,
        #[command(flatten)]
        args: BenchArgs,
    },
    /// Kill the leader with SIGKILL, --runs times per system, and time the
    /// first acknowledged write sent after each kill.
    ///
    /// Before each run every member serves and has caught up; a probe write
    /// goes out every 10 ms through one client connection whatever the
    /// answers; after the kill, the first probe sent after it that is
    /// acknowledged ends the run, and the killed member is started again on
    /// its data. The systems alternate run by run. Writes to failover.json
    /// and failover.md in --out.
    #[command(after_long_help = help_details())]
    Failover {
        /// Kills per system; the figures are the median, p95 and maximum over them.
        #[arg(long, default_value_t = 10)]
        runs: usize,
        #[command(flatten)]
        targets: TargetArgs,
        #[command(flatten)]
        setup: SetupArgs,
    },
    /// Write --records unique keys, then measure memory and disk, the time
    /// to restart every member to a first acknowledged write, and how fast a
    /// new member on an empty disk catches up.
    ///
    /// The new member joins as a learner (a replacement before it is swapped
    /// in) and is timed until it has applied everything the leader had
    /// committed when it was added. One system after the other. Writes to
    /// footprint.json and footprint.md in --out.
    #[command(after_long_help = help_details())]
    Footprint {
        /// Records to write (1 KiB values by default: a million is 1 GiB).
        #[arg(long, default_value_t = 1_000_000)]
        records: usize,
        #[command(flatten)]
        targets: TargetArgs,
        #[command(flatten)]
        setup: SetupArgs,
    },
}

#[derive(Args)]
struct BenchArgs {
    /// What each operation is.
    #[arg(long, value_enum, default_value_t = Workload::Put)]
    workload: Workload,
    /// Clients in flight, comma-separated: one run per count and round.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    clients: Vec<usize>,
    /// Runs per system and client count; each figure is the median over them.
    /// With both systems, the one that goes first alternates from round to round.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Measured seconds of each run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before the measurement starts.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Client connections (SDK clients, etcd clients) per run [default: the client count, at most 8].
    #[arg(long)]
    connections: Option<usize>,
    /// Open loop: send this many operations per second and count latency from
    /// each one's intended send time (--clients then caps those in flight);
    /// the table shows the achieved rate beside this offered one.
    #[arg(long)]
    rate: Option<u64>,
    /// Keys written before get, get-stale and mixed runs.
    #[arg(long, default_value_t = 10_000)]
    keys: usize,
    #[command(flatten)]
    setup: SetupArgs,
}

/// How the clusters are set up and where the results go: every command's options.
#[derive(Args)]
struct SetupArgs {
    /// Bytes of each written value.
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    /// The plaintext reference pair: safekeep --insecure-dev, etcd over http.
    #[arg(long)]
    plaintext: bool,
    /// Print the report as JSON on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// Directory for the report files.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Work directory for the clusters' data, configs and logs (empty or new,
    /// not on tmpfs or ramfs) [default: a temporary one].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the work directory after the session.
    #[arg(long)]
    keep: bool,
    /// First of the loopback ports the clusters use (400 ports from it).
    #[arg(long, default_value_t = DEFAULT_BASE_PORT)]
    base_port: u16,
    /// The safekeep-node program [default: beside this program, else on PATH].
    #[arg(long)]
    node_binary: Option<PathBuf>,
    /// The etcd program.
    #[arg(long, default_value = "etcd")]
    etcd_binary: PathBuf,
    /// Have safekeep's nodes back up to this target while they are measured
    /// (`file:///ABSOLUTE/DIR` or `s3://BUCKET[/PREFIX]`; TLS only): run once
    /// with and once without to see what backups cost. etcd takes no backups.
    #[arg(long, value_name = "URL", conflicts_with = "plaintext")]
    backup_target: Option<String>,
}

/// Which systems a failover or footprint session measures.
#[derive(Args)]
struct TargetArgs {
    /// Measure only this system [default: both].
    #[arg(long, value_enum)]
    target: Option<TargetKind>,
}

impl TargetArgs {
    fn targets(&self) -> Vec<TargetKind> {
        match self.target {
            Some(target) => vec![target],
            None => vec![TargetKind::Safekeep, TargetKind::Etcd],
        }
    }
}

fn seconds(flag: &str, value: f64) -> Result<Duration, BenchError> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| BenchError::BadOption(format!("{flag} must be a number of seconds ≥ 0")))
}

/// The node program: the flag, else the one built beside this program, else `PATH`.
fn node_program(flag: Option<&Path>) -> Result<PathBuf, BenchError> {
    let hint = "build it with `cargo build -p safekeep-node --bin safekeep-node`, or pass --node-binary";
    if let Some(path) = flag {
        return find_program(path, hint);
    }
    let beside = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("safekeep-node"))
        .filter(|path| path.is_file());
    match beside {
        Some(path) => Ok(path),
        None => find_program(Path::new("safekeep-node"), hint),
    }
}

/// The load settings of `args`.
fn load_settings(args: &BenchArgs) -> Result<Settings, BenchError> {
    Ok(Settings {
        workload: args.workload,
        clients: args.clients.clone(),
        rounds: args.rounds,
        duration: seconds("--duration", args.duration)?,
        warmup: seconds("--warmup", args.warmup)?,
        value_size: args.setup.value_size,
        connections: args.connections,
        rate: args.rate,
        keys: args.keys,
        security: security(&args.setup),
        ports: Ports {
            base: args.setup.base_port,
        },
        backup_target: args.setup.backup_target.clone(),
    })
}

/// The settings of a failover or footprint session: the value size, the
/// records, the security and the ports; the load fields keep their smallest
/// valid values, as no load run reads them.
fn operation_settings(setup: &SetupArgs, records: usize) -> Settings {
    Settings {
        workload: Workload::Put,
        clients: vec![1],
        rounds: 1,
        duration: Duration::from_secs(1),
        warmup: Duration::ZERO,
        value_size: setup.value_size,
        connections: None,
        rate: None,
        keys: records,
        security: security(setup),
        ports: Ports { base: setup.base_port },
        backup_target: setup.backup_target.clone(),
    }
}

fn security(setup: &SetupArgs) -> Security {
    if setup.plaintext {
        Security::Plaintext
    } else {
        Security::Tls
    }
}

fn options(targets: Vec<TargetKind>, settings: Settings, setup: SetupArgs) -> Result<SessionOptions, BenchError> {
    settings.validate()?;
    check_font()?;
    let etcd = if targets.contains(&TargetKind::Etcd) {
        Some(find_program(
            &setup.etcd_binary,
            "install etcd-server: run scripts/install-deps.sh",
        )?)
    } else {
        None
    };
    // The node program makes the certificates too: needed unless only etcd runs in plaintext.
    let needs_node = targets.contains(&TargetKind::Safekeep) || settings.security == Security::Tls;
    let node = if needs_node {
        Some(node_program(setup.node_binary.as_deref())?)
    } else {
        None
    };
    let programs = Programs { node, etcd };
    Ok(SessionOptions {
        settings,
        targets,
        dir: setup.dir,
        keep: setup.keep,
        programs,
    })
}

/// Prints a report (its table, or with --json its JSON and the table on
/// stderr) and writes `NAME.json` and `NAME.md` into `out`.
fn print_and_write<R: serde::Serialize>(
    report: &R,
    table: &str,
    json: bool,
    out: &Path,
    name: &str,
) -> Result<(), BenchError> {
    let text = serde_json::to_string_pretty(report).expect("a report always serializes");
    if json {
        eprintln!("{table}");
        println!("{text}");
    } else {
        println!("{table}");
    }
    std::fs::create_dir_all(out).map_err(io_err("cannot create", out))?;
    for (path, contents) in [
        (out.join(format!("{name}.json")), &text),
        (out.join(format!("{name}.md")), &table.to_string()),
    ] {
        std::fs::write(&path, contents).map_err(io_err("cannot write", &path))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

async fn bench(command: Command) -> Result<(), BenchError> {
    let (targets, args) = match command {
        Command::Compare(args) => (vec![TargetKind::Safekeep, TargetKind::Etcd], args),
        Command::Run { target, args } => (vec![target], args),
        Command::Failover { runs, targets, setup } => {
            if runs == 0 || runs > MAX_ROUNDS {
                return Err(BenchError::BadOption(format!(
                    "--runs must be between 1 and {MAX_ROUNDS}, not {runs}"
                )));
            }
            let (json, out) = (setup.json, setup.out.clone());
            let options = options(targets.targets(), operation_settings(&setup, 0), setup)?;
            let Outcome::Failover(report) = run_job(&options, Job::Failover { runs }).await? else {
                unreachable!("a failover job reports failovers")
            };
            return print_and_write(&report, &report.table(), json, &out, "failover");
        }
        Command::Footprint {
            records,
            targets,
            setup,
        } => {
            if records == 0 || records > MAX_KEYS {
                return Err(BenchError::BadOption(format!(
                    "--records must be between 1 and {MAX_KEYS}, not {records}"
                )));
            }
            let (json, out) = (setup.json, setup.out.clone());
            let options = options(targets.targets(), operation_settings(&setup, records), setup)?;
            let Outcome::Footprint(report) = run_job(&options, Job::Footprint).await? else {
                unreachable!("a footprint job reports footprints")
            };
            return print_and_write(&report, &report.table(), json, &out, "footprint");
        }
    };
    let (json, out) = (args.setup.json, args.setup.out.clone());
    let settings = load_settings(&args)?;
    let options = options(targets, settings, args.setup)?;
    let report = safekeep_bench::run(&options).await?;
    // The report is printed first: whatever fails after it, it is not lost.
    if json {
        eprintln!("{}", report.table());
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("a report always serializes")
        );
    } else {
        println!("{}", report.table());
    }
    let written = write_outputs(&report, &out)?;
    for path in &written.report {
        eprintln!("wrote {}", path.display());
    }
    match written.plot {
        Ok(path) => eprintln!("wrote {}", path.display()),
        // The figures are printed and written; only the picture is missing.
        Err(e) => eprintln!("warning: no plot: {e}"),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
