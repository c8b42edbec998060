//! The drill's workload, run from the host through the real SDK as
//! applications use it: several tasks share one `Client` that knows every
//! node, and one client per zone knows only its zone's node. Tasks write
//! unique values, compare-and-set and read (linearizable) over a small key
//! set of two tenants, and record every operation into a history for the
//! verdict, and every outcome with its time for the timeline.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use safekeep_client::{Client, Error as SdkError};
use safekeep_history::{ClientId, Op, Outcome, Recorder, Versioned};
use tokio::sync::watch;
use tokio::time::Instant;

/// Keys per tenant.
pub const KEYS: u64 = 8;
/// Pause between a task's operations.
const THINK_TIME_MS: std::ops::Range<u64> = 5..20;

/// What a sample of the timeline was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleKind {
    Write,
    Read,
}

/// One operation as the timeline shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sample {
    pub kind: SampleKind,
    /// Since the drill began.
    pub start_ms: f64,
    pub end_ms: f64,
    pub ok: bool,
}

/// The recorded history and timeline, shared by every task.
#[derive(Clone)]
pub struct Recording {
    pub recorder: Recorder,
    samples: Arc<Mutex<Vec<Sample>>>,
    counts: Arc<Counts>,
    origin: Instant,
}

/// Operations completed so far, for the live display.
#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl Recording {
    pub fn new(origin: Instant) -> Self {
        Self {
            recorder: Recorder::new(),
            samples: Arc::default(),
            counts: Arc::default(),
            origin,
        }
    }

    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn sample(&self, kind: SampleKind, started_ns: u64, ok: bool) {
        let ms = |ns: u64| ns as f64 / 1e6;
        let sample = Sample {
            kind,
            start_ms: ms(started_ns),
            end_ms: ms(self.now_ns()),
            ok,
        };
        let count = if ok { &self.counts.ok } else { &self.counts.failed };
        count.fetch_add(1, Ordering::Relaxed);
        self.samples.lock().unwrap_or_else(|p| p.into_inner()).push(sample);
    }

    /// Operations that succeeded and that failed, so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.counts.ok.load(Ordering::Relaxed),
            self.counts.failed.load(Ordering::Relaxed),
        )
    }

    /// Every sample so far, in order of completion.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// One task: its client, tenant and history id.
pub struct Task {
    pub client: Client,
    pub tenant: String,
    /// Put before every key, so one run's keys are its own.
    pub key_prefix: String,
    pub id: u64,
    /// The drill's seed: with the task's id, it picks the task's keys and operations.
    pub seed: u64,
}

/// Runs `tasks` until `stop` turns true.
pub async fn run(tasks: Vec<Task>, recording: Recording, stop: watch::Receiver<bool>) {
    let runs = tasks.into_iter().map(|task| {
        let recording = recording.clone();
        let stop = stop.clone();
        async move { run_task(task, recording, stop).await }
    });
    futures::future::join_all(runs).await;
}

async fn run_task(task: Task, recording: Recording, stop: watch::Receiver<bool>) {
    let mut rng = StdRng::seed_from_u64(task.seed.rotate_left(32) ^ task.id);
    let mut versions: BTreeMap<String, u64> = BTreeMap::new();
    let mut written = 0u64;
    let who = ClientId(task.id);
    while !*stop.borrow() {
        let key = format!("{}k{}", task.key_prefix, rng.random_range(0..KEYS));
        let history_key = format!("{}/{key}", task.tenant);
        let roll = rng.random_range(0..100);
        let started = recording.now_ns();
        if roll < 40 {
            let Ok(id) = recording.recorder.invoke(who, Op::Get { key: history_key }, started) else {
                return;
            };
            let outcome = match task.client.get(&task.tenant, &key).await {
                Ok(record) => {
                    if let Some(r) = &record {
                        versions.insert(key.clone(), r.version);
                    }
                    Outcome::Read {
                        record: record.map(|r| Versioned {
                            value: r.value,
                            version: r.version,
                        }),
                    }
                }
                Err(_) => Outcome::Fail,
            };
            let ok = matches!(outcome, Outcome::Read { .. });
            let _ = recording.recorder.complete(id, outcome, recording.now_ns());
            recording.sample(SampleKind::Read, started, ok);
        } else {
            written += 1;
            let value = format!("t{}-w{written}", task.id).into_bytes();
            let conditional = roll >= 85;
            let expected = versions.get(&key).copied().unwrap_or(0);
            let op = if conditional {
                Op::PutIf {
                    key: history_key,
                    value: value.clone(),
                    expected_version: expected,
                }
            } else {
                Op::Put {
                    key: history_key,
                    value: value.clone(),
                }
            };
            let Ok(id) = recording.recorder.invoke(who, op, started) else {
                return;
            };
            let result = if conditional {
                task.client.put_if(&task.tenant, &key, value, expected).await
            } else {
                task.client.put(&task.tenant, &key, value).await
            };
            let (outcome, ok) = match result {
                Ok(put) => {
                    versions.insert(key.clone(), put.version);
                    (Outcome::Written { version: put.version }, true)
                }
                // A compare-and-set that lost still got an answer from a serving cluster.
                Err(SdkError::Conflict { current_version }) => (
                    Outcome::Conflict {
                        current_version: current_version.unwrap_or(0),
                    },
                    true,
                ),
                Err(e) if e.may_have_applied() => (Outcome::Unknown, false),
                Err(_) => (Outcome::Fail, false),
            };
            let _ = recording.recorder.complete(id, outcome, recording.now_ns());
            recording.sample(SampleKind::Write, started, ok);
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(THINK_TIME_MS))).await;
    }
}
