//! The load generator: `clients` workers share `connections` client
//! connections and send one workload's operations, for a warm-up and then a
//! measured window.
//!
//! - Closed loop (no `rate`): each worker sends its next operation as soon as
//!   the previous one is answered, so `clients` operations are in flight.
//! - Open loop (`rate`): operation `i` is due at `start + i / rate`; a
//!   worker takes the next due operation, waits for its time, and its latency
//!   is counted from that intended time, so a stall that delays later sends
//!   shows in their latency instead of hiding (no coordinated omission).
//!   `clients` then caps how many operations are in flight.
//!
//! What counts, in both modes:
//! - throughput: successful operations that *completed* inside the measured
//!   window, so a server that cannot keep up with an open loop's rate shows
//!   a lower rate than offered;
//! - latency and errors: every operation *intended* inside the window (sent
//!   there, or due there in the open loop), however late it is answered;
//! - late: those intended inside the window and not answered by its end
//!   (never sent, or answered during the drain). In the closed loop that is
//!   at most one per client; in the open loop a count well above `clients`
//!   means the server fell behind the rate.
//!
//! The servers' CPU time is sampled at the window's start and end. Every
//! operation must be answered by the window's end plus [`DRAIN_TIMEOUT`]; one
//! that is not counts as an error and stops its worker, so every worker
//! returns what it counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use tokio::task::JoinSet;
use tokio::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::error::BenchError;
use crate::measure::{Latencies, total_cpu_ticks};
use crate::settings::Settings;
use crate::targets::{CasOutcome, Cluster, Connection, OpError};
use crate::workloads::{Op, Workload, cas_key, populated_key};

/// How long workers get to finish their last operations after the window:
/// every operation must be answered by the window's end plus this, or it
/// counts as an error and its worker stops.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How much longer than [`DRAIN_TIMEOUT`] the run waits for its workers
/// before abandoning them. A last resort only: each operation has its own
/// deadline, so a worker returns its tally by then.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// How often the progress counter is published.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// One run's load.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub workload: Workload,
    pub clients: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Open loop at this many operations per second; `None`: closed loop.
    pub rate: Option<u64>,
    pub value_size: usize,
    /// Size of the populated key set (read workloads).
    pub keys: usize,
    /// A number no other run of the session uses (keeps written keys apart).
    pub run: u64,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct LoadOutcome {
    /// Successful operations that completed inside the measured window.
    pub ops: u64,
    /// Operations intended inside the window (sent there, or due there in the open loop).
    pub intended: u64,
    /// Of those, the ones not answered by the window's end.
    pub late: u64,
    /// Failed operations intended inside the window (a missing key and a
    /// compare-and-set conflict count too).
    pub errors: u64,
    /// Unconditional puts a `cas` run sent beside its operations, to learn a
    /// key's version again after a conflict (or to create a missing key); of
    /// operations intended inside the window. They load the servers but are
    /// not counted as operations.
    pub extra_puts: u64,
    /// The first error seen, to tell what went wrong.
    pub first_error: Option<String>,
    /// Of the successful operations intended inside the window, from their intended time.
    pub latencies: Latencies,
    /// The measured window.
    pub measured: Duration,
    /// The open loop's offered rate, operations per second; `None` in the closed loop.
    pub offered_rate: Option<u64>,
    /// CPU clock ticks the servers spent during the window.
    pub server_cpu_ticks: u64,
}

/// What one worker counted.
#[derive(Debug, Default)]
struct Tally {
    ops: u64,
    intended: u64,
    late: u64,
    errors: u64,
    extra_puts: u64,
    first_error: Option<String>,
    latencies: Latencies,
}

impl Tally {
    fn fail(&mut self, error: String) {
        self.errors += 1;
        self.first_error.get_or_insert(error);
    }
}

/// The instants every worker shares.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    measure_from: Instant,
    end: Instant,
}

/// A worker's fixed inputs.
struct Worker<C> {
    index: usize,
    conn: C,
    spec: Arc<LoadSpec>,
    value: Arc<Vec<u8>>,
    window: Window,
    /// The next open-loop ticket.
    tickets: Arc<AtomicU64>,
    /// Operations finished so far, for the progress line.
    done: Arc<AtomicU64>,
    /// With `cas`: the version this worker last saw of its key.
    cas_version: Option<u64>,
}

/// Runs `spec` over `conns`; `server_pids` are sampled for CPU time, and
/// `progress` is told how many operations have finished.
pub async fn drive<C: Connection>(
    conns: &[C],
    spec: &LoadSpec,
    server_pids: &[u32],
    progress: impl Fn(u64) + Send + 'static,
) -> LoadOutcome {
    assert!(
        !conns.is_empty() && spec.clients > 0,
        "a run needs connections and clients"
    );
    assert!(conns.len() <= spec.clients, "more connections than clients");
    let spec = Arc::new(spec.clone());
    let mut value = vec![0u8; spec.value_size];
    StdRng::from_os_rng().fill_bytes(&mut value);
    let value = Arc::new(value);

    // The cas workload's keys exist before the clock starts.
    let mut cas_versions: Vec<Option<u64>> = vec![None; spec.clients];
    let mut setup_errors = Tally::default();
    if spec.workload == Workload::Cas {
        let run = spec.run;
        let puts = (0..spec.clients).map(|w| {
            let conn = conns[w % conns.len()].clone();
            let value = value.as_ref().clone();
            async move { conn.put(cas_key(run, w), value).await }
        });
        for (w, result) in futures::future::join_all(puts).await.into_iter().enumerate() {
            match result {
                Ok(version) => cas_versions[w] = Some(version),
                Err(OpError(e)) => setup_errors.fail(format!("creating the cas key: {e}")),
            }
        }
    }

    let start = Instant::now();
    let window = Window {
        start,
        measure_from: start + spec.warmup,
        end: start + spec.warmup + spec.duration,
    };
    let tickets = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let mut workers = JoinSet::new();
    for (index, cas_version) in cas_versions.into_iter().enumerate() {
        let worker = Worker {
            index,
            conn: conns[index % conns.len()].clone(),
            spec: spec.clone(),
            value: value.clone(),
            window,
            tickets: tickets.clone(),
            done: done.clone(),
            cas_version,
        };
        workers.spawn(worker.run());
    }
    let ticker = tokio::spawn({
        let done = done.clone();
        async move {
            let mut interval = tokio::time::interval(PROGRESS_INTERVAL);
            loop {
                interval.tick().await;
                progress(done.load(Ordering::Relaxed));
            }
        }
    });
    let pids = server_pids.to_vec();
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(window.measure_from).await;
        let before = total_cpu_ticks(&pids);
        tokio::time::sleep_until(window.end).await;
        total_cpu_ticks(&pids).saturating_sub(before)
    });

    let mut total = setup_errors;
    let drained = tokio::time::timeout_at(window.end + DRAIN_TIMEOUT + DRAIN_GRACE, async {
        while let Some(joined) = workers.join_next().await {
            match joined {
                Ok(tally) => {
                    total.ops += tally.ops;
                    total.intended += tally.intended;
                    total.late += tally.late;
                    total.errors += tally.errors;
                    total.extra_puts += tally.extra_puts;
                    if total.first_error.is_none() {
                        total.first_error = tally.first_error;
                    }
                    total.latencies.merge(&tally.latencies);
                }
                Err(e) => total.fail(format!("a worker failed: {e}")),
            }
        }
    })
    .await;
    if drained.is_err() {
        let stuck = workers.len() as u64;
        workers.abort_all();
        total.errors += stuck;
        total.first_error.get_or_insert(format!(
            "{stuck} workers did not stop {:?} after the end",
            DRAIN_TIMEOUT + DRAIN_GRACE
        ));
    }
    if let Some(rate) = spec.rate {
        // Operations due in the window that no worker took (their workers
        // stopped at the deadline): intended, never answered.
        let unsent = unsent_in_window(tickets.load(Ordering::Relaxed), rate, spec.warmup, spec.duration);
        total.intended += unsent;
        total.late += unsent;
    }
    ticker.abort();
    let server_cpu_ticks = cpu.await.unwrap_or(0);
    LoadOutcome {
        ops: total.ops,
        intended: total.intended,
        late: total.late,
        errors: total.errors,
        extra_puts: total.extra_puts,
        first_error: total.first_error,
        latencies: total.latencies,
        measured: spec.duration,
        offered_rate: spec.rate,
        server_cpu_ticks,
    }
}

/// When open-loop ticket `ticket` is due, counted from the start.
fn due_after_start(ticket: u64, rate: u64) -> Duration {
    Duration::from_secs_f64(ticket as f64 / rate as f64)
}

/// The first open-loop ticket due at or after `offset` from the start.
fn first_ticket_due_at(offset: Duration, rate: u64) -> u64 {
    let mut ticket = (offset.as_secs_f64() * rate as f64).ceil() as u64;
    while ticket > 0 && due_after_start(ticket - 1, rate) >= offset {
        ticket -= 1;
    }
    while due_after_start(ticket, rate) < offset {
        ticket += 1;
    }
    ticket
}

/// Tickets due inside the window `[warmup, warmup + duration)` at or after
/// `next`, the first ticket no worker took.
fn unsent_in_window(next: u64, rate: u64, warmup: Duration, duration: Duration) -> u64 {
    let first = first_ticket_due_at(warmup, rate).max(next);
    first_ticket_due_at(warmup + duration, rate).saturating_sub(first)
}

impl<C: Connection> Worker<C> {
    async fn run(mut self) -> Tally {
        let mut tally = Tally::default();
        let mut rng = StdRng::from_os_rng();
        let spec = self.spec.clone();
        let window = self.window;
        for seq in 0u64.. {
            let intended = match spec.rate {
                Some(rate) => {
                    let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
                    let due = window.start + due_after_start(ticket, rate);
                    if due >= window.end {
                        break;
                    }
                    tokio::time::sleep_until(due).await;
                    due
                }
                None => Instant::now(),
            };
            if intended >= window.end {
                break;
            }
            let in_window = intended >= window.measure_from;
            let op = spec.workload.next_op(&mut rng, spec.run, self.index, seq, spec.keys);
            let mut extra_puts = 0;
            let answered = tokio::time::timeout_at(window.end + DRAIN_TIMEOUT, self.execute(op, &mut extra_puts)).await;
            self.done.fetch_add(1, Ordering::Relaxed);
            let Ok(result) = answered else {
                // Unanswered by the deadline: an error, and this worker's last.
                if in_window {
                    tally.intended += 1;
                    tally.late += 1;
                }
                tally.fail(format!(
                    "an operation was still unanswered {DRAIN_TIMEOUT:?} after the end"
                ));
                break;
            };
            let finished = Instant::now();
            if result.is_ok() && finished > window.measure_from && finished <= window.end {
                tally.ops += 1;
            }
            if !in_window {
                continue;
            }
            tally.intended += 1;
            tally.extra_puts += extra_puts;
            if finished > window.end {
                tally.late += 1;
            }
            match result {
                Ok(()) => tally.latencies.record(finished - intended),
                Err(error) => tally.fail(error),
            }
        }
        tally
    }

    /// Sends `op`; `extra_puts` counts the puts it needed beyond the
    /// operation itself (a `cas` that has to learn its key's version again).
    async fn execute(&mut self, op: Op, extra_puts: &mut u64) -> Result<(), String> {
        let value = self.value.as_ref().clone();
        match op {
            Op::Put { key } => self.conn.put(key, value).await.map(drop).map_err(|e| e.0),
            Op::Read { key, freshness } => match self.conn.get(key.clone(), freshness).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(format!("{key} is missing although it was written before the run")),
                Err(e) => Err(e.0),
            },
            Op::CompareAndSet { key } => {
                let Some(expected) = self.cas_version else {
                    // The key was never created (its put failed): create it now.
                    *extra_puts += 1;
                    self.cas_version = Some(self.conn.put(key, value).await.map_err(|e| e.0)?);
                    return Err("the cas key had to be created during the run".into());
                };
                match self.conn.put_if_version(key.clone(), value.clone(), expected).await {
                    Ok(CasOutcome::Applied { version }) if version <= expected => {
                        // A server gone wrong: learn the version again, and say so.
                        self.cas_version = None;
                        Err(format!(
                            "a compare-and-set of {key} at version {expected} answered version {version}, not a later one"
                        ))
                    }
                    Ok(CasOutcome::Applied { version }) => {
                        self.cas_version = Some(version);
                        Ok(())
                    }
                    Ok(CasOutcome::Conflict) => {
                        // Only this worker writes its key: learn its version again.
                        *extra_puts += 1;
                        self.cas_version = self.conn.put(key.clone(), value).await.ok();
                        Err(format!("{key} was not at version {expected}"))
                    }
                    Err(e) => {
                        // The write may have applied: learn the version again.
                        self.cas_version = None;
                        Err(e.0)
                    }
                }
            }
        }
    }
}

/// Workers that write the key set before a read workload.
const POPULATE_WORKERS: usize = 64;
/// Connections they share.
const POPULATE_CONNECTIONS: usize = 8;

/// Writes the key set read workloads read, before any run.
pub async fn populate<C: Cluster>(cluster: &C, settings: &Settings) -> Result<(), BenchError> {
    eprintln!(
        "writing {} keys of {} B into {} ...",
        settings.keys,
        settings.value_size,
        cluster.kind()
    );
    let mut conns = Vec::new();
    for _ in 0..POPULATE_CONNECTIONS {
        conns.push(cluster.connect().await?);
    }
    let value = vec![b'v'; settings.value_size];
    let bar = ProgressBar::new(settings.keys as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} keys, {per_sec}, ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let workers = (0..POPULATE_WORKERS).map(|w| {
        let conn = conns[w % conns.len()].clone();
        let value = value.clone();
        let keys = settings.keys;
        let bar = bar.clone();
        async move {
            for index in (w..keys).step_by(POPULATE_WORKERS) {
                conn.put(populated_key(index), value.clone()).await?;
                bar.inc(1);
            }
            Ok(())
        }
    });
    let results: Vec<Result<(), OpError>> = futures::future::join_all(workers).await;
    bar.finish_and_clear();
    if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
        return Err(BenchError::Setup {
            target: cluster.kind().name(),
            detail: format!("writing the key set failed: {e}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::Freshness;

    /// A server the tests script: every answer takes `service`, one at a
    /// time when `serial` (a server that handles one request after another),
    /// and the call numbered `hang_at` (from 0) is never answered.
    #[derive(Clone)]
    struct FakeConn(Arc<FakeServer>);

    struct FakeServer {
        service: Duration,
        serial: Option<tokio::sync::Mutex<()>>,
        hang_at: Option<u64>,
        cas: FakeCas,
        calls: AtomicU64,
    }

    /// How the fake answers a compare-and-set.
    #[derive(Clone, Copy)]
    enum FakeCas {
        /// Applies it: the version grows by one.
        Apply,
        /// Claims to apply it without the version growing (a server gone wrong).
        Stale,
        /// Refuses it: the key is never at the expected version.
        Conflict,
    }

    impl FakeConn {
        fn new(service: Duration) -> Self {
            Self(Arc::new(FakeServer {
                service,
                serial: None,
                hang_at: None,
                cas: FakeCas::Apply,
                calls: AtomicU64::new(0),
            }))
        }

        fn with(self, change: impl FnOnce(&mut FakeServer)) -> Self {
            let mut server = Arc::into_inner(self.0).expect("configured before use");
            change(&mut server);
            Self(Arc::new(server))
        }

        fn calls(&self) -> u64 {
            self.0.calls.load(Ordering::Relaxed)
        }

        async fn answer(&self) {
            let call = self.0.calls.fetch_add(1, Ordering::Relaxed);
            if self.0.hang_at == Some(call) {
                std::future::pending::<()>().await;
            }
            let _turn = match &self.0.serial {
                Some(lock) => Some(lock.lock().await),
                None => None,
            };
            tokio::time::sleep(self.0.service).await;
        }
    }

    impl Connection for FakeConn {
        async fn put(&self, _key: String, _value: Vec<u8>) -> Result<u64, OpError> {
            self.answer().await;
            Ok(1)
        }

        async fn get(&self, _key: String, _freshness: Freshness) -> Result<bool, OpError> {
            self.answer().await;
            Ok(true)
        }

        async fn put_if_version(&self, _key: String, _value: Vec<u8>, expected: u64) -> Result<CasOutcome, OpError> {
            self.answer().await;
            Ok(match self.0.cas {
                FakeCas::Apply => CasOutcome::Applied { version: expected + 1 },
                FakeCas::Stale => CasOutcome::Applied { version: expected },
                FakeCas::Conflict => CasOutcome::Conflict,
            })
        }
    }

    fn spec(workload: Workload, clients: usize, rate: Option<u64>) -> LoadSpec {
        LoadSpec {
            workload,
            clients,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(1),
            rate,
            value_size: 8,
            keys: 10,
            run: 1,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_stuck_after_the_window_still_returns_what_it_counted() {
        // Two workers, 10 ms per answer; the 60th call (in the window) never
        // returns, so its worker waits until the drain deadline.
        let conn = FakeConn::new(Duration::from_millis(10)).with(|s| s.hang_at = Some(59));
        let outcome = drive(std::slice::from_ref(&conn), &spec(Workload::Put, 2, None), &[], |_| {}).await;
        assert_eq!(outcome.errors, 1, "{outcome:?}");
        assert!(
            outcome.first_error.as_deref().unwrap_or("").contains("unanswered"),
            "{outcome:?}"
        );
        // Every other call was answered and counted, the stuck worker's too.
        assert_eq!(outcome.ops, conn.calls() - 1, "{outcome:?}");
        assert!(outcome.ops > 100, "{outcome:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_loop_faster_than_the_server_shows_achieved_below_offered_and_late_operations() {
        // 200 operations/s offered for 1 s to a server that answers one
        // request per 10 ms (100/s), with clients enough to keep it busy.
        let conn = FakeConn::new(Duration::from_millis(10)).with(|s| s.serial = Some(tokio::sync::Mutex::new(())));
        let outcome = drive(
            std::slice::from_ref(&conn),
            &spec(Workload::Put, 8, Some(200)),
            &[],
            |_| {},
        )
        .await;
        assert_eq!(outcome.offered_rate, Some(200));
        assert_eq!(outcome.errors, 0, "{outcome:?}");
        assert_eq!(outcome.intended, 200, "{outcome:?}");
        // About 100 completed inside the window: the achieved rate, not the offered one.
        assert!((95..=101).contains(&outcome.ops), "{outcome:?}");
        // The rest were answered during the drain: late, and their latency counted.
        assert!(outcome.late >= 95, "{outcome:?}");
        assert_eq!(outcome.latencies.count(), 200, "{outcome:?}");
        assert!(
            outcome.latencies.quantile_ms(1.0).unwrap() >= 900.0,
            "the last ones waited about a second"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_loop_counts_what_completed_in_the_window_and_at_most_one_late_per_client() {
        let conn = FakeConn::new(Duration::from_millis(10));
        let mut load = spec(Workload::Put, 4, None);
        load.warmup = Duration::from_millis(100);
        let outcome = drive(std::slice::from_ref(&conn), &load, &[], |_| {}).await;
        assert_eq!(outcome.offered_rate, None);
        // 4 clients, 100 answers each in the 1 s window.
        assert_eq!(outcome.ops, 400, "{outcome:?}");
        assert!(outcome.late <= 4, "{outcome:?}");
        assert_eq!(outcome.latencies.count(), outcome.intended);
    }

    #[tokio::test(start_paused = true)]
    async fn a_compare_and_set_answered_with_an_old_version_is_an_error_not_a_panic() {
        let good = FakeConn::new(Duration::from_millis(10));
        let outcome = drive(std::slice::from_ref(&good), &spec(Workload::Cas, 2, None), &[], |_| {}).await;
        assert_eq!(outcome.errors, 0, "{outcome:?}");
        assert_eq!(outcome.ops, 200, "{outcome:?}");

        let stale = FakeConn::new(Duration::from_millis(10)).with(|s| s.cas = FakeCas::Stale);
        let outcome = drive(std::slice::from_ref(&stale), &spec(Workload::Cas, 2, None), &[], |_| {}).await;
        let first = outcome.first_error.clone().unwrap_or_default();
        assert!(first.contains("not a later one"), "{outcome:?}");
        assert!(!first.contains("worker failed"), "{outcome:?}");
        assert!(outcome.errors > 0 && outcome.ops == 0, "{outcome:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_puts_a_cas_conflict_sends_to_learn_the_version_are_counted() {
        let good = FakeConn::new(Duration::from_millis(10));
        let outcome = drive(std::slice::from_ref(&good), &spec(Workload::Cas, 2, None), &[], |_| {}).await;
        assert_eq!(outcome.extra_puts, 0, "{outcome:?}");

        let refusing = FakeConn::new(Duration::from_millis(10)).with(|s| s.cas = FakeCas::Conflict);
        let outcome = drive(
            std::slice::from_ref(&refusing),
            &spec(Workload::Cas, 2, None),
            &[],
            |_| {},
        )
        .await;
        // Each conflict (an error) costs one put: 20 ms per operation, 2 workers, 1 s.
        assert_eq!(outcome.extra_puts, outcome.errors, "{outcome:?}");
        assert_eq!(outcome.extra_puts, 100, "{outcome:?}");
    }

    #[test]
    fn tickets_due_in_the_window_are_counted_once() {
        let second = Duration::from_secs(1);
        assert_eq!(first_ticket_due_at(Duration::ZERO, 3), 0);
        assert_eq!(first_ticket_due_at(second, 3), 3);
        assert_eq!(first_ticket_due_at(Duration::from_millis(500), 3), 2);
        // 3 per second over [1 s, 3 s): tickets 3 to 8.
        assert_eq!(unsent_in_window(0, 3, second, 2 * second), 6);
        assert_eq!(unsent_in_window(5, 3, second, 2 * second), 4);
        assert_eq!(unsent_in_window(20, 3, second, 2 * second), 0);
    }
}
