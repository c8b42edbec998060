//! The `safekeep-bench` binary: `compare` runs safekeep and etcd side by
//! side, `run` one of them; both print a table (and with `--json` the
//! report as JSON), then write `bench.json` and `bench.md`, then draw
//! `bench.png`. A plot that cannot be drawn is a warning: the report is
//! already printed and written.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use safekeep_bench::plot::check_font;
use safekeep_bench::procs::find_program;
use safekeep_bench::session::write_outputs;
use safekeep_bench::settings::{
    ETCD_CLIENT_OFFSET, ETCD_METRICS_OFFSET, ETCD_PEER_OFFSET, MEMBERS, PORT_SPAN, SAFEKEEP_HTTP_OFFSET,
    SAFEKEEP_PEER_OFFSET,
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
    /// Bytes of each written value.
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
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
    /// The plaintext reference pair: safekeep --insecure-dev, etcd over http.
    #[arg(long)]
    plaintext: bool,
    /// Print the report as JSON on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// Directory for bench.json, bench.md and bench.png.
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

fn options(targets: Vec<TargetKind>, args: BenchArgs) -> Result<(SessionOptions, bool, PathBuf), BenchError> {
    let settings = Settings {
        workload: args.workload,
        clients: args.clients,
        rounds: args.rounds,
        duration: seconds("--duration", args.duration)?,
        warmup: seconds("--warmup", args.warmup)?,
        value_size: args.value_size,
        connections: args.connections,
        rate: args.rate,
        keys: args.keys,
        security: if args.plaintext {
            Security::Plaintext
        } else {
            Security::Tls
        },
        ports: Ports { base: args.base_port },
    };
    settings.validate()?;
    check_font()?;
    let etcd = if targets.contains(&TargetKind::Etcd) {
        Some(find_program(
            &args.etcd_binary,
            "install etcd-server: run scripts/install-deps.sh",
        )?)
    } else {
        None
    };
    // The node program makes the certificates too: needed unless only etcd runs in plaintext.
    let needs_node = targets.contains(&TargetKind::Safekeep) || settings.security == Security::Tls;
    let node = if needs_node {
        Some(node_program(args.node_binary.as_deref())?)
    } else {
        None
    };
    let programs = Programs { node, etcd };
    let options = SessionOptions {
        settings,
        targets,
        dir: args.dir,
        keep: args.keep,
        programs,
    };
    Ok((options, args.json, args.out))
}

async fn bench(command: Command) -> Result<(), BenchError> {
    let (targets, args) = match command {
        Command::Compare(args) => (vec![TargetKind::Safekeep, TargetKind::Etcd], args),
        Command::Run { target, args } => (vec![target], args),
    };
    let (options, json, out) = options(targets, args)?;
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
