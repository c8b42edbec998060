//! A fake safekeep node for the SDK and CLI tests: a real tonic server on
//! 127.0.0.1:0 serving `Records` from an in-memory map and a fixed `Cluster`
//! status, with a script of failures to inject into `Put` calls and a log of
//! the `WriteId` every `Put` attempt carried.

#![allow(dead_code)] // Each test binary uses a different part of the fake.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use safekeep_api::v1;
use safekeep_api::v1::cluster_server::{Cluster, ClusterServer};
use safekeep_api::v1::records_server::{Records, RecordsServer};
use safekeep_client::error::CURRENT_VERSION_METADATA_KEY;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::Stream;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Response, Status};

/// Upper bound on any one test, so a hang fails the test instead of the CI run.
pub const TEST_BOUND: Duration = Duration::from_secs(30);
/// Node id the fake reports in every response header.
pub const FAKE_NODE_ID: u64 = 1;
/// Term the fake reports in every response header.
pub const FAKE_TERM: u64 = 3;
/// Records per `List` page when the request asks for the server default.
pub const FAKE_DEFAULT_PAGE: usize = 100;
/// Records per chunk of an export.
pub const FAKE_EXPORT_CHUNK: usize = 2;

/// A failure the fake injects into the next `Put` call.
#[derive(Debug, Clone, Copy)]
pub enum Injected {
    /// Answer with this status code and message.
    Fail(Code, &'static str),
    /// Answer FAILED_PRECONDITION carrying this current version in the metadata.
    Conflict(u64),
    /// Never answer.
    Hang,
}

/// What the fake holds and what it saw.
#[derive(Debug, Default)]
pub struct FakeState {
    records: Mutex<BTreeMap<(String, String), v1::Record>>,
    last_version: AtomicU64,
    put_script: Mutex<VecDeque<Injected>>,
    put_write_ids: Mutex<Vec<Option<v1::WriteId>>>,
    put_calls: AtomicUsize,
    /// Export streams still to cut short: after their first chunk, without a final one.
    export_cuts: AtomicUsize,
    export_tokens: Mutex<Vec<String>>,
    pub leader_address: Mutex<String>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeState {
    /// Queues failures for the next `Put` calls, in order.
    pub fn script_puts(&self, failures: impl IntoIterator<Item = Injected>) {
        lock(&self.put_script).extend(failures);
    }

    /// How many `Put` calls arrived.
    pub fn put_calls(&self) -> usize {
        self.put_calls.load(Ordering::SeqCst)
    }

    /// The `WriteId` of every `Put` call, in arrival order.
    pub fn put_write_ids(&self) -> Vec<Option<v1::WriteId>> {
        lock(&self.put_write_ids).clone()
    }

    /// Cuts the next `streams` export streams short after their first chunk.
    pub fn cut_exports(&self, streams: usize) {
        self.export_cuts.store(streams, Ordering::SeqCst);
    }

    /// The resume token of every `Export` call, in arrival order ("" for a new export).
    pub fn export_tokens(&self) -> Vec<String> {
        lock(&self.export_tokens).clone()
    }

    fn header(&self) -> Option<v1::ResponseHeader> {
        Some(v1::ResponseHeader {
            node_id: FAKE_NODE_ID,
            leader_id: FAKE_NODE_ID,
            leader_address: lock(&self.leader_address).clone(),
            term: FAKE_TERM,
        })
    }

    fn next_version(&self) -> u64 {
        self.last_version.fetch_add(1, Ordering::SeqCst) + 1
    }
}

fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

fn conflict(current_version: u64) -> Status {
    let mut status = Status::failed_precondition("version mismatch");
    status
        .metadata_mut()
        .insert(CURRENT_VERSION_METADATA_KEY, MetadataValue::from(current_version));
    status
}

fn check_expected(current: Option<&v1::Record>, expected_version: Option<u64>) -> Result<(), Status> {
    let Some(expected) = expected_version else {
        return Ok(());
    };
    let current_version = current.map_or(0, |record| record.version);
    if current_version == expected {
        Ok(())
    } else {
        Err(conflict(current_version))
    }
}

#[derive(Debug, Clone)]
struct FakeService(Arc<FakeState>);

#[tonic::async_trait]
impl Records for FakeService {
    async fn put(&self, request: Request<v1::PutRequest>) -> Result<Response<v1::PutResponse>, Status> {
        let state = &self.0;
        let request = request.into_inner();
        state.put_calls.fetch_add(1, Ordering::SeqCst);
        lock(&state.put_write_ids).push(request.write_id.clone());
        let injected = lock(&state.put_script).pop_front();
        match injected {
            Some(Injected::Fail(code, message)) => return Err(Status::new(code, message)),
            Some(Injected::Conflict(version)) => return Err(conflict(version)),
            Some(Injected::Hang) => std::future::pending::<()>().await,
            None => {}
        }
        let mut records = lock(&state.records);
        let id = (request.tenant, request.key.clone());
        check_expected(records.get(&id), request.expected_version)?;
        let version = state.next_version();
        let updated_at_unix_ms = now_unix_ms();
        records.insert(
            id,
            v1::Record {
                key: request.key,
                value: request.value,
                version,
                updated_at_unix_ms,
            },
        );
        Ok(Response::new(v1::PutResponse {
            header: state.header(),
            version,
            updated_at_unix_ms,
        }))
    }

    async fn get(&self, request: Request<v1::GetRequest>) -> Result<Response<v1::GetResponse>, Status> {
        let state = &self.0;
        let request = request.into_inner();
        let record = lock(&state.records)
            .get(&(request.tenant, request.key))
            .cloned()
            .ok_or_else(|| Status::not_found("no such record"))?;
        Ok(Response::new(v1::GetResponse {
            header: state.header(),
            record: Some(record),
        }))
    }

    async fn delete(&self, request: Request<v1::DeleteRequest>) -> Result<Response<v1::DeleteResponse>, Status> {
        let state = &self.0;
        let request = request.into_inner();
        let mut records = lock(&state.records);
        let id = (request.tenant, request.key);
        check_expected(records.get(&id), request.expected_version)?;
        let deleted = records.remove(&id).is_some();
        Ok(Response::new(v1::DeleteResponse {
            header: state.header(),
            deleted,
            version: state.next_version(),
        }))
    }

    async fn list(&self, request: Request<v1::ListRequest>) -> Result<Response<v1::ListResponse>, Status> {
        let state = &self.0;
        let request = request.into_inner();
        let limit = match request.limit {
            0 => FAKE_DEFAULT_PAGE,
            limit => limit as usize,
        };
        let records = lock(&state.records);
        let mut page: Vec<v1::Record> = records
            .iter()
            .filter(|((tenant, key), _)| {
                *tenant == request.tenant
                    && key.starts_with(&request.prefix)
                    && key.as_str() > request.page_token.as_str()
            })
            .map(|(_, record)| record.clone())
            .take(limit + 1)
            .collect();
        let next_page_token = if page.len() > limit {
            page.truncate(limit);
            page.last().map(|record| record.key.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(v1::ListResponse {
            header: state.header(),
            records: page,
            next_page_token,
        }))
    }

    async fn batch(&self, _request: Request<v1::BatchRequest>) -> Result<Response<v1::BatchResponse>, Status> {
        Err(Status::unimplemented("the fake does not batch"))
    }

    type ExportStream = Pin<Box<dyn Stream<Item = Result<v1::ExportChunk, Status>> + Send>>;

    /// Chunks of [`FAKE_EXPORT_CHUNK`] records; the token is "as_of/last key".
    async fn export(&self, request: Request<v1::ExportRequest>) -> Result<Response<Self::ExportStream>, Status> {
        let state = &self.0;
        let request = request.into_inner();
        lock(&state.export_tokens).push(request.resume_token.clone());
        let (as_of, after) = match request.resume_token.split_once('/') {
            Some((as_of, after)) => (
                as_of.parse().map_err(|_| Status::invalid_argument("bad token"))?,
                after.to_string(),
            ),
            None => (state.last_version.load(Ordering::SeqCst), String::new()),
        };
        let records: Vec<v1::Record> = lock(&state.records)
            .iter()
            .filter(|((tenant, key), _)| *tenant == request.tenant && key.as_str() > after.as_str())
            .map(|(_, record)| record.clone())
            .collect();
        let cut = state
            .export_cuts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let pieces: Vec<&[v1::Record]> = records.chunks(FAKE_EXPORT_CHUNK).collect();
        let count = pieces.len().max(1);
        let mut chunks = Vec::new();
        for i in 0..count {
            let piece = pieces.get(i).copied().unwrap_or_default();
            let last_key = piece.last().map_or(after.clone(), |r| r.key.clone());
            chunks.push(Ok(v1::ExportChunk {
                header: state.header(),
                records: piece.to_vec(),
                as_of_version: as_of,
                resume_token: format!("{as_of}/{last_key}"),
                last: i + 1 == count && !cut,
            }));
            if cut {
                break;
            }
        }
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }
}

#[tonic::async_trait]
impl Cluster for FakeService {
    async fn status(&self, _request: Request<v1::StatusRequest>) -> Result<Response<v1::StatusResponse>, Status> {
        let state = &self.0;
        let address = lock(&state.leader_address).clone();
        Ok(Response::new(v1::StatusResponse {
            header: state.header(),
            members: vec![v1::Member {
                id: FAKE_NODE_ID,
                zone: "zone-a".into(),
                role: v1::Role::Voter.into(),
                client_address: address,
                peer_address: "127.0.0.1:7201".into(),
                matched_index: Some(state.last_version.load(Ordering::SeqCst)),
                is_leader: true,
            }],
            last_log_index: state.last_version.load(Ordering::SeqCst),
            applied_index: state.last_version.load(Ordering::SeqCst),
            committed_index: state.last_version.load(Ordering::SeqCst),
            zone: "zone-a".into(),
            insecure: true,
            backup: None,
        }))
    }

    async fn backup_now(
        &self,
        _request: Request<v1::BackupNowRequest>,
    ) -> Result<Response<v1::BackupNowResponse>, Status> {
        Err(Status::failed_precondition("the fake takes no backups"))
    }

    async fn add_learner(
        &self,
        _request: Request<v1::AddLearnerRequest>,
    ) -> Result<Response<v1::MembershipResponse>, Status> {
        Err(Status::unimplemented("the fake has fixed membership"))
    }

    async fn promote(&self, _request: Request<v1::PromoteRequest>) -> Result<Response<v1::MembershipResponse>, Status> {
        Err(Status::failed_precondition("a quorum of voters would be in one zone"))
    }

    async fn remove_member(
        &self,
        _request: Request<v1::RemoveMemberRequest>,
    ) -> Result<Response<v1::MembershipResponse>, Status> {
        Err(Status::unimplemented("the fake has fixed membership"))
    }

    async fn replace_voter(
        &self,
        _request: Request<v1::ReplaceVoterRequest>,
    ) -> Result<Response<v1::MembershipResponse>, Status> {
        Err(Status::unimplemented("the fake has fixed membership"))
    }

    async fn transfer_leader(
        &self,
        _request: Request<v1::TransferLeaderRequest>,
    ) -> Result<Response<v1::TransferLeaderResponse>, Status> {
        Err(Status::unimplemented("the fake has one voter"))
    }
}

/// A running fake node; dropping it stops the server.
pub struct FakeServer {
    /// Where the fake listens.
    pub addr: SocketAddr,
    /// Its records, script and observations.
    pub state: Arc<FakeState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl FakeServer {
    /// Starts a fake node on 127.0.0.1 with a free port. The listener is bound
    /// before this returns, so connections succeed right away.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local port for the fake node");
        let addr = listener.local_addr().expect("the listener's address");
        let state = Arc::new(FakeState::default());
        *lock(&state.leader_address) = addr.to_string();
        let service = FakeService(Arc::clone(&state));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(RecordsServer::new(service.clone()))
                .add_service(ClusterServer::new(service))
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                eprintln!("fake node stopped with an error: {error}");
            }
        });
        Self {
            addr,
            state,
            shutdown: Some(shutdown),
            task,
        }
    }

    /// The address as `host:port`, the way users write endpoints.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.task.abort();
    }
}

/// An address nothing listens on: a port bound and released again.
pub async fn dead_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a local port");
    let addr = listener.local_addr().expect("the listener's address");
    drop(listener);
    addr.to_string()
}
