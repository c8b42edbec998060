//! The simulated clients: turmoil client hosts running the real SDK,
//! writing unique values, reading (linearizable or under the leader's
//! lease), compare-and-setting and deleting across a small key set, and
//! recording every operation with its invoke and return times (simulated)
//! into the shared history. The first host knows every node and runs
//! several tasks over one shared SDK `Client`, as applications do, so one
//! client's writes are in flight at once and may reach the leader out of
//! order; the others each know one node of one zone. Each task is a
//! sequential client of the history.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use safekeep_client::{Client, ClientConfig, Consistency, Error as SdkError};
use safekeep_history::{ClientId, Op, OpId, Outcome, Recorder, Versioned};

use crate::cluster::client_address;
use crate::net;
use crate::topology::Topology;

/// Tenant every simulated client writes to.
pub const TENANT: &str = "sim";
/// Deadline of one SDK attempt.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(1_500);
/// Longest the SDK retries one operation.
const RETRY_BUDGET: Duration = Duration::from_secs(4);
/// Tasks on the first client host that share its one SDK client.
pub const TASKS_PER_CLIENT: u64 = 2;
/// Pause between a client's operations.
const THINK_TIME_MS: std::ops::Range<u64> = 5..25;
/// Longest the final reads keep trying after the workload ends.
const FINAL_READ_DEADLINE: Duration = Duration::from_secs(20);

/// What the clients do.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    pub clients: u64,
    pub keys: u64,
    /// Clients stop issuing new operations at this simulated time.
    pub until: StopAt,
    pub seed: u64,
}

/// When the clients stop, in simulated time. The harness moves it later when
/// it delayed a fault (waiting for a leader to target), so the liveness phase
/// keeps its full length. Shared by the clients and the harness, which all
/// run on the simulation's one thread.
#[derive(Debug, Clone)]
pub struct StopAt(Arc<AtomicU64>);

impl StopAt {
    pub fn new(at: Duration) -> Self {
        Self(Arc::new(AtomicU64::new(nanos(at))))
    }

    pub fn get(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::SeqCst))
    }

    pub fn set(&self, at: Duration) {
        self.0.store(nanos(at), Ordering::SeqCst);
    }
}

fn nanos(at: Duration) -> u64 {
    u64::try_from(at.as_nanos()).unwrap_or(u64::MAX)
}

fn now_ns() -> u64 {
    let elapsed = turmoil::sim_elapsed().unwrap_or_default();
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
}

// The recorder refuses only malformed use (a harness bug), never a store outcome.
pub(crate) fn invoke(recorder: &Recorder, who: ClientId, op: Op) -> OpId {
    recorder
        .invoke(who, op, now_ns())
        .expect("the recorder accepts a new operation")
}

pub(crate) fn complete(recorder: &Recorder, id: OpId, outcome: Outcome) {
    recorder
        .complete(id, outcome, now_ns())
        .expect("the recorder accepts the outcome of an open operation");
}

/// Definite refusals of writes that no simulated client should ever get
/// (every write is valid and authorized): a store that refuses a valid write
/// (a write id wrongly taken for old, say) is wrong even though nothing was lost.
#[derive(Debug, Clone, Default)]
pub struct Refusals(Arc<std::sync::Mutex<Vec<String>>>);

/// Refusals kept word for word; later ones are only counted.
const MAX_REFUSALS_KEPT: usize = 5;

impl Refusals {
    fn note(&self, error: &SdkError) {
        use tonic::Code;
        // A retry's compare-and-set may lose to another client: the answer
        // to the last attempt is what counts here.
        let last = match error {
            SdkError::MaybeApplied { last } => last.as_ref(),
            other => other,
        };
        let unexpected = !matches!(last, SdkError::Conflict { .. })
            && matches!(
                last.code(),
                Code::FailedPrecondition
                    | Code::InvalidArgument
                    | Code::NotFound
                    | Code::PermissionDenied
                    | Code::Unauthenticated
                    | Code::Internal
                    | Code::DataLoss
                    | Code::Unimplemented
            );
        if unexpected {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(error.to_string());
        }
    }

    /// A raw client's write refused outright (each is valid).
    pub(crate) fn note_raw(&self, tenant: &str, status: &tonic::Status) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(format!(
            "tenant {tenant}'s raw write: {}: {}",
            status.code(),
            status.message()
        ));
    }

    /// One line per refusal seen, up to a bound, then their count.
    pub fn findings(&self) -> Vec<String> {
        let seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut findings: Vec<String> = seen
            .iter()
            .take(MAX_REFUSALS_KEPT)
            .map(|e| format!("a valid write was refused: {e}"))
            .collect();
        if seen.len() > MAX_REFUSALS_KEPT {
            findings.push(format!("{} valid writes were refused in all", seen.len()));
        }
        findings
    }
}

fn write_outcome(error: &SdkError, refusals: &Refusals) -> Outcome {
    refusals.note(error);
    match error {
        SdkError::Conflict { current_version } => Outcome::Conflict {
            current_version: current_version.unwrap_or(0),
        },
        e if e.may_have_applied() => Outcome::Unknown,
        _ => Outcome::Fail,
    }
}

/// The nodes client host `client` is given: the first knows every node and
/// follows the leader; each other knows one node only (the first three
/// hosts, one per zone), as an application in one zone given its zone's
/// address, whose requests that node forwards. So clients reach the cluster
/// through different nodes at once, and a node that wrongly believes it
/// leads is seen beside the one that does.
fn client_endpoints(topology: Topology, client: u64) -> Vec<String> {
    let hosts = topology.hosts();
    match client {
        0 => hosts.iter().map(|h| client_address(h.id)).collect(),
        _ => {
            let index = usize::try_from(client - 1).unwrap_or(0) % hosts.len();
            vec![client_address(hosts[index].id)]
        }
    }
}

/// What a task does: reads, writes, compare-and-sets and deletes, or only reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    Mixed,
    Reader,
}

/// The tasks of client host `client`, with their history ids: the first
/// host runs `TASKS_PER_CLIENT` mixed tasks over its one SDK client; each
/// zone host runs a mixed task and a reader (an application's read path,
/// which keeps reading while a write waits).
fn tasks(client: u64) -> Vec<(u64, Task)> {
    match client {
        0 => (0..TASKS_PER_CLIENT).map(|id| (id, Task::Mixed)).collect(),
        _ => {
            let first = TASKS_PER_CLIENT + (client - 1) * 2;
            vec![(first, Task::Mixed), (first + 1, Task::Reader)]
        }
    }
}

/// How client host `client` reads: the first confirms each read with a
/// quorum; the zone clients read under the leader's lease, which must be
/// linearizable too (a node that campaigned inside a lease it granted
/// would break it).
fn read_consistency(client: u64) -> Consistency {
    match client {
        0 => Consistency::Linearizable,
        _ => Consistency::Lease,
    }
}

/// Registers one client host per simulated client.
pub fn add_clients(
    sim: &mut turmoil::Sim<'_>,
    topology: Topology,
    spec: &WorkloadSpec,
    recorder: &Recorder,
    refusals: &Refusals,
) {
    // The final reads start once every client has stopped, so every
    // acknowledged write precedes them.
    let finished = Arc::new(AtomicU64::new(0));
    for client in 0..spec.clients {
        let spec = spec.clone();
        let recorder = recorder.clone();
        let finished = finished.clone();
        let refusals = refusals.clone();
        let endpoints = client_endpoints(topology, client);
        sim.client(format!("client{client}"), async move {
            let channels = endpoints
                .iter()
                .map(|e| net::channel(e))
                .collect::<Result<Vec<_>, _>>()?;
            let mut config = ClientConfig::new(endpoints.clone());
            config.request_timeout = REQUEST_TIMEOUT;
            config.retry_budget = RETRY_BUDGET;
            // Client ids and retry jitter follow the seed too.
            config.rng_seed = Some(spec.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(client));
            let sdk = Client::from_channels(config, channels)?;
            let consistency = read_consistency(client);
            let tasks = tasks(client)
                .into_iter()
                .map(|(id, task)| run_client(&sdk, id, task, consistency, &spec, &recorder, &refusals));
            futures::future::join_all(tasks).await;
            finished.fetch_add(1, Ordering::SeqCst);
            if client == 0 {
                while finished.load(Ordering::SeqCst) < spec.clients {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                final_reads(&sdk, &spec, &recorder).await;
            }
            Ok(())
        });
    }
}

async fn run_client(
    sdk: &Client,
    client: u64,
    task: Task,
    consistency: Consistency,
    spec: &WorkloadSpec,
    recorder: &Recorder,
    refusals: &Refusals,
) {
    let mut rng = StdRng::seed_from_u64(spec.seed.wrapping_mul(31).wrapping_add(client));
    let mut versions: BTreeMap<String, u64> = BTreeMap::new();
    let mut written = 0u64;
    let who = ClientId(client);
    while turmoil::sim_elapsed().unwrap_or_default() < spec.until.get() {
        let key = format!("k{}", rng.random_range(0..spec.keys));
        let roll = rng.random_range(0..100);
        if roll < 35 || task == Task::Reader {
            let outcome = recorded_read(sdk, recorder, who, &key, consistency).await;
            if let Outcome::Read { record: Some(seen) } = &outcome {
                versions.insert(key.clone(), seen.version);
            }
        } else if roll < 90 {
            written += 1;
            let value = format!("c{client}-w{written}").into_bytes();
            let conditional = roll >= 75;
            let expected = versions.get(&key).copied().unwrap_or(0);
            let op = if conditional {
                Op::PutIf {
                    key: key.clone(),
                    value: value.clone(),
                    expected_version: expected,
                }
            } else {
                Op::Put {
                    key: key.clone(),
                    value: value.clone(),
                }
            };
            let id = invoke(recorder, who, op);
            let result = if conditional {
                sdk.put_if(TENANT, &key, value, expected).await
            } else {
                sdk.put(TENANT, &key, value).await
            };
            let outcome = match result {
                Ok(put) => {
                    versions.insert(key.clone(), put.version);
                    Outcome::Written { version: put.version }
                }
                Err(e) => write_outcome(&e, refusals),
            };
            complete(recorder, id, outcome);
        } else {
            let id = invoke(recorder, who, Op::Delete { key: key.clone() });
            let outcome = match sdk.delete(TENANT, &key).await {
                Ok(deleted) => {
                    versions.remove(&key);
                    Outcome::Deleted {
                        deleted: deleted.deleted,
                        version: deleted.version,
                    }
                }
                Err(e) => write_outcome(&e, refusals),
            };
            complete(recorder, id, outcome);
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(THINK_TIME_MS))).await;
    }
}

/// A read of `key` (linearizable or under the lease, both checked as
/// linearizable), recorded; returns what was recorded.
async fn recorded_read(
    sdk: &Client,
    recorder: &Recorder,
    who: ClientId,
    key: &str,
    consistency: Consistency,
) -> Outcome {
    let id = invoke(recorder, who, Op::Get { key: key.to_string() });
    let outcome = match sdk.get_with(TENANT, key, consistency).await {
        Ok(record) => Outcome::Read {
            record: record.map(|r| Versioned {
                value: r.value,
                version: r.version,
            }),
        },
        Err(_) => Outcome::Fail,
    };
    complete(recorder, id, outcome.clone());
    outcome
}

/// One successful read of every key, after the workload: what the cluster finally holds.
async fn final_reads(sdk: &Client, spec: &WorkloadSpec, recorder: &Recorder) {
    let who = ClientId(u64::MAX);
    let deadline = spec.until.get() + FINAL_READ_DEADLINE;
    for k in 0..spec.keys {
        let key = format!("k{k}");
        while turmoil::sim_elapsed().unwrap_or_default() < deadline {
            if matches!(
                recorded_read(sdk, recorder, who, &key, Consistency::Linearizable).await,
                Outcome::Read { .. }
            ) {
                break;
            }
        }
    }
}
