//! Raw gRPC clients of two tenants that pick their own write ids, as a
//! client generated from `api/proto` in another language does: both send
//! the same `(client_id, request_id)` sequence, each under its own tenant,
//! retrying an attempt whose outcome is unknown with the same id on the
//! next node. Write ids belong to their tenant, so each tenant's writes
//! must apply as its own; the history sees each tenant's keys apart
//! (`acme/k0`, `globex/k0`) and checks them like every other key.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use safekeep_api::v1::records_client::RecordsClient;
use safekeep_api::v1::{Consistency, GetRequest, PutRequest, WriteId};
use safekeep_history::{ClientId, Op, Outcome, Recorder, Versioned};
use tonic::Code;
use tonic::transport::Channel;

use crate::cluster::client_address;
use crate::net;
use crate::topology::Topology;
use crate::workload::{Refusals, WorkloadSpec, complete, invoke};

/// The tenants, each with its raw client.
pub const TENANTS: [&str; 2] = ["acme", "globex"];
/// The write-id client id both tenants' clients pick.
const SHARED_CLIENT_ID: &str = "shared-raw-worker";
/// First history client id of the raw clients, apart from the SDK clients'.
const FIRST_HISTORY_ID: u64 = 1_000;
/// Deadline of one attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1_500);
/// Longest one operation is retried.
const RETRY_BUDGET: Duration = Duration::from_secs(4);
/// Pause between attempts.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Pause between operations, drawn from this range (milliseconds).
const THINK_TIME_MS: std::ops::Range<u64> = 10..40;
/// Sets the raw clients' draws apart from the SDK clients'.
const RAW_SEED_SALT: u64 = 0x7a_0c11;
/// Longest the final reads keep trying after the workload ends.
const FINAL_READ_DEADLINE: Duration = Duration::from_secs(20);

/// Whether an attempt's failure leaves its outcome unknown, so the same
/// request may be sent again: the node was unreachable, timed out, or
/// could not reach the leader, or asked it to slow down.
fn retryable(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
            | Code::Aborted
            | Code::ResourceExhausted
    )
}

/// One attempt, its deadline held on this side too: a node that crashed
/// mid-call may never answer.
async fn within_deadline<T>(
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<tonic::Response<T>, tonic::Status> {
    tokio::time::timeout(ATTEMPT_TIMEOUT, call).await.unwrap_or_else(|_| {
        Err(tonic::Status::deadline_exceeded(
            "no answer within the attempt's deadline",
        ))
    })
}

/// Registers one client host per tenant.
pub fn add_clients(
    sim: &mut turmoil::Sim<'_>,
    topology: Topology,
    spec: &WorkloadSpec,
    recorder: &Recorder,
    refusals: &Refusals,
) {
    let endpoints: Vec<String> = topology.hosts().iter().map(|h| client_address(h.id)).collect();
    for (index, tenant) in TENANTS.into_iter().enumerate() {
        let spec = spec.clone();
        let recorder = recorder.clone();
        let refusals = refusals.clone();
        let endpoints = endpoints.clone();
        sim.client(format!("raw-{tenant}"), async move {
            let channels = endpoints
                .iter()
                .map(|e| net::channel(e))
                .collect::<Result<Vec<_>, _>>()?;
            let who = ClientId(FIRST_HISTORY_ID + index as u64);
            let mut client = RawClient {
                tenant,
                channels,
                next: index,
                // Both tenants draw the same keys and pauses: their write
                // ids collide one for one.
                rng: StdRng::seed_from_u64(spec.seed ^ RAW_SEED_SALT),
            };
            client.run(who, &spec, &recorder, &refusals).await;
            Ok(())
        });
    }
}

struct RawClient {
    tenant: &'static str,
    channels: Vec<Channel>,
    /// The node the next attempt goes to (round robin).
    next: usize,
    rng: StdRng,
}

impl RawClient {
    fn node(&mut self) -> RecordsClient<Channel> {
        let channel = self.channels[self.next % self.channels.len()].clone();
        RecordsClient::new(channel)
    }

    fn history_key(&self, key: &str) -> String {
        format!("{}/{key}", self.tenant)
    }

    async fn run(&mut self, who: ClientId, spec: &WorkloadSpec, recorder: &Recorder, refusals: &Refusals) {
        let mut request_id = 0u64;
        while turmoil::sim_elapsed().unwrap_or_default() < spec.until.get() {
            let key = format!("k{}", self.rng.random_range(0..spec.keys));
            if self.rng.random_bool(0.3) {
                self.read(who, &key, recorder).await;
            } else {
                request_id += 1;
                self.put(who, &key, request_id, recorder, refusals).await;
            }
            let pause = self.rng.random_range(THINK_TIME_MS);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        let deadline = spec.until.get() + FINAL_READ_DEADLINE;
        for k in 0..spec.keys {
            let key = format!("k{k}");
            while turmoil::sim_elapsed().unwrap_or_default() < deadline {
                if matches!(self.read(who, &key, recorder).await, Outcome::Read { .. }) {
                    break;
                }
            }
        }
    }

    /// One put with write id `request_id`, retried with the same id while
    /// its outcome is unknown; recorded.
    async fn put(&mut self, who: ClientId, key: &str, request_id: u64, recorder: &Recorder, refusals: &Refusals) {
        let value = format!("{}-w{request_id}", self.tenant).into_bytes();
        let op = Op::Put {
            key: self.history_key(key),
            value: value.clone(),
        };
        let id = invoke(recorder, who, op);
        let request = PutRequest {
            ttl_seconds: None,
            tenant: self.tenant.into(),
            key: key.into(),
            value,
            expected_version: None,
            write_id: Some(WriteId {
                client_id: SHARED_CLIENT_ID.into(),
                request_id,
                // One write in flight at a time: this one is the lowest.
                first_incomplete: request_id,
            }),
        };
        let started = turmoil::sim_elapsed().unwrap_or_default();
        let outcome = loop {
            let mut attempt = tonic::Request::new(request.clone());
            attempt.set_timeout(ATTEMPT_TIMEOUT);
            let mut node = self.node();
            match within_deadline(node.put(attempt)).await {
                Ok(response) => {
                    break Outcome::Written {
                        version: response.into_inner().version,
                    };
                }
                Err(status) if retryable(&status) => {
                    self.next += 1;
                    if turmoil::sim_elapsed().unwrap_or_default() - started > RETRY_BUDGET {
                        break Outcome::Unknown;
                    }
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(status) => {
                    // Every raw write is valid: a definite refusal is wrong.
                    refusals.note_raw(self.tenant, &status);
                    break Outcome::Unknown;
                }
            }
        };
        complete(recorder, id, outcome);
    }

    /// One linearizable read, recorded; returns what was recorded.
    async fn read(&mut self, who: ClientId, key: &str, recorder: &Recorder) -> Outcome {
        let id = invoke(
            recorder,
            who,
            Op::Get {
                key: self.history_key(key),
            },
        );
        let mut request = tonic::Request::new(GetRequest {
            tenant: self.tenant.into(),
            key: key.into(),
            consistency: Consistency::Linearizable as i32,
        });
        request.set_timeout(ATTEMPT_TIMEOUT);
        let mut node = self.node();
        let outcome = match within_deadline(node.get(request)).await {
            Ok(response) => Outcome::Read {
                record: response.into_inner().record.map(|r| Versioned {
                    value: r.value,
                    version: r.version,
                }),
            },
            Err(_) => {
                self.next += 1;
                tokio::time::sleep(RETRY_PAUSE).await;
                Outcome::Fail
            }
        };
        complete(recorder, id, outcome.clone());
        outcome
    }
}
