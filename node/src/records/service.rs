//! The `Records` gRPC service: validates a request, turns a write into a
//! replicated command and a read into a barrier plus a local read, and
//! answers with a header naming the leader.

use std::collections::HashSet;
use tokio::time::Instant;

use safekeep_api::v1::records_server::Records;
use safekeep_api::v1::{
    BatchOp, BatchRequest, BatchResponse, Consistency, DeleteRequest, DeleteResponse, GetRequest, GetResponse,
    ListRequest, ListResponse, PutRequest, PutResponse, Record, ResponseHeader, WriteId, batch_op,
};
use tonic::{Request, Response, Status};

use super::limits::DEFAULT_LIST_PAGE;
use super::validate::{self, InvalidRequest};
use crate::metrics_names;
use crate::raft::{Applied, Consensus, ReadLevel};
use crate::status::{storage_read, version_conflict};
use crate::storage::command::{self, Command, CommandResponse, Mutation};
use crate::storage::{RecordReader, StoredRecord};

/// The records service of one node.
pub struct RecordsService {
    consensus: Consensus,
    reader: RecordReader,
    max_value_bytes: usize,
}

impl RecordsService {
    pub fn new(consensus: Consensus, reader: RecordReader, max_value_bytes: usize) -> Self {
        Self {
            consensus,
            reader,
            max_value_bytes,
        }
    }

    fn header(&self) -> ResponseHeader {
        let hint = self.consensus.leader_hint();
        ResponseHeader {
            node_id: self.consensus.node_id(),
            leader_id: hint.leader_id.unwrap_or(0),
            leader_address: hint.leader_client_address.unwrap_or_default(),
            term: hint.term,
        }
    }

    async fn write(
        &self,
        tenant: String,
        write_id: Option<WriteId>,
        mutations: Vec<Mutation>,
    ) -> Result<Applied, Status> {
        let write_id = match write_id {
            Some(id) => {
                validate::client_id(&id.client_id)?;
                Some(command::WriteId {
                    client_id: id.client_id,
                    request_id: id.request_id,
                })
            }
            None => None,
        };
        let command = Command {
            write_id,
            proposed_at_ms: 0,
            tenant,
            mutations,
        };
        let applied = self.consensus.propose(command).await?;
        match &applied.response {
            CommandResponse::Conflict { key, current_version } => Err(version_conflict(key, *current_version)),
            CommandResponse::Applied { .. } => Ok(applied),
            CommandResponse::Noop => Err(Status::internal("a write was applied as a no-op")),
            CommandResponse::Forgotten => Err(Status::failed_precondition(
                "this write's request id is older than every write this client still has remembered: \
                 it may have been applied earlier and was not applied again; read the record to find out",
            )),
        }
    }
}

fn read_level(consistency: i32) -> Result<ReadLevel, InvalidRequest> {
    match Consistency::try_from(consistency) {
        Ok(Consistency::Unspecified | Consistency::Linearizable) => Ok(ReadLevel::Linearizable),
        Ok(Consistency::Lease) => Ok(ReadLevel::Lease),
        Ok(Consistency::Stale) => Ok(ReadLevel::Stale),
        Err(_) => Err(InvalidRequest::UnknownConsistency(consistency)),
    }
}

fn to_record(key: String, stored: StoredRecord) -> Record {
    Record {
        key,
        value: stored.value,
        version: stored.version,
        updated_at_unix_ms: stored.updated_at_ms,
    }
}

fn applied_fields(applied: &Applied) -> (u64, i64, Vec<bool>) {
    match &applied.response {
        CommandResponse::Applied {
            version,
            updated_at_ms,
            existed,
        } => (*version, *updated_at_ms, existed.clone()),
        _ => (applied.index, 0, Vec::new()),
    }
}

/// Records a request's latency under its method and status code.
fn observe<T>(method: &'static str, started: Instant, result: &Result<T, Status>) {
    let code = match result {
        Ok(_) => "OK".to_string(),
        Err(status) => format!("{:?}", status.code()),
    };
    metrics::histogram!(metrics_names::REQUEST_SECONDS, "method" => method, "code" => code)
        .record(started.elapsed().as_secs_f64());
}

impl RecordsService {
    async fn do_put(&self, request: PutRequest) -> Result<PutResponse, Status> {
        validate::tenant(&request.tenant)?;
        validate::key(&request.key)?;
        validate::value(&request.value, self.max_value_bytes)?;
        let mutation = Mutation::Put {
            key: request.key,
            value: request.value,
            expected_version: request.expected_version,
        };
        let applied = self.write(request.tenant, request.write_id, vec![mutation]).await?;
        let (version, updated_at_unix_ms, _) = applied_fields(&applied);
        Ok(PutResponse {
            header: Some(self.header()),
            version,
            updated_at_unix_ms,
        })
    }

    async fn do_get(&self, request: GetRequest) -> Result<GetResponse, Status> {
        validate::tenant(&request.tenant)?;
        validate::key(&request.key)?;
        let level = read_level(request.consistency)?;
        self.consensus.read_barrier(level).await?;
        let stored = self
            .reader
            .get(&request.tenant, &request.key)
            .map_err(|e| storage_read(&e))?
            .ok_or_else(|| Status::not_found(format!("no record {:?} in tenant {:?}", request.key, request.tenant)))?;
        Ok(GetResponse {
            header: Some(self.header()),
            record: Some(to_record(request.key, stored)),
        })
    }

    async fn do_delete(&self, request: DeleteRequest) -> Result<DeleteResponse, Status> {
        validate::tenant(&request.tenant)?;
        validate::key(&request.key)?;
        let mutation = Mutation::Delete {
            key: request.key,
            expected_version: request.expected_version,
        };
        let applied = self.write(request.tenant, request.write_id, vec![mutation]).await?;
        let (version, _, existed) = applied_fields(&applied);
        Ok(DeleteResponse {
            header: Some(self.header()),
            deleted: existed.first().copied().unwrap_or(false),
            version,
        })
    }

    async fn do_list(&self, request: ListRequest) -> Result<ListResponse, Status> {
        validate::tenant(&request.tenant)?;
        validate::prefix(&request.prefix)?;
        let level = read_level(request.consistency)?;
        let limit = match request.limit {
            0 => DEFAULT_LIST_PAGE,
            n if n > super::limits::MAX_LIST_PAGE => return Err(InvalidRequest::PageTooLarge(n).into()),
            n => n,
        };
        let after = validate::parse_page_token(&request.page_token)?;
        self.consensus.read_barrier(level).await?;
        let page = self
            .reader
            .list(&request.tenant, &request.prefix, after.as_deref(), limit as usize)
            .map_err(|e| storage_read(&e))?;
        Ok(ListResponse {
            header: Some(self.header()),
            next_page_token: page.last_key.as_deref().map(validate::page_token).unwrap_or_default(),
            records: page.records.into_iter().map(|(k, r)| to_record(k, r)).collect(),
        })
    }

    async fn do_batch(&self, request: BatchRequest) -> Result<BatchResponse, Status> {
        validate::tenant(&request.tenant)?;
        if request.ops.is_empty() {
            return Err(InvalidRequest::EmptyBatch.into());
        }
        if request.ops.len() > super::limits::MAX_BATCH_OPS {
            return Err(InvalidRequest::BatchTooLong(request.ops.len()).into());
        }
        let mut seen = HashSet::with_capacity(request.ops.len());
        let mut bytes = 0usize;
        let mut mutations = Vec::with_capacity(request.ops.len());
        for (position, BatchOp { op }) in request.ops.into_iter().enumerate() {
            let mutation = match op {
                Some(batch_op::Op::Put(put)) => {
                    validate::key(&put.key)?;
                    validate::value(&put.value, self.max_value_bytes)?;
                    bytes += put.key.len() + put.value.len();
                    Mutation::Put {
                        key: put.key,
                        value: put.value,
                        expected_version: put.expected_version,
                    }
                }
                Some(batch_op::Op::Delete(delete)) => {
                    validate::key(&delete.key)?;
                    bytes += delete.key.len();
                    Mutation::Delete {
                        key: delete.key,
                        expected_version: delete.expected_version,
                    }
                }
                None => return Err(InvalidRequest::EmptyBatchOp(position).into()),
            };
            if !seen.insert(mutation.key().to_string()) {
                return Err(InvalidRequest::DuplicateBatchKey(mutation.key().to_string()).into());
            }
            mutations.push(mutation);
        }
        if bytes > super::limits::MAX_BATCH_BYTES {
            return Err(InvalidRequest::BatchTooLarge(bytes).into());
        }
        let applied = self.write(request.tenant, request.write_id, mutations).await?;
        let (version, updated_at_unix_ms, _) = applied_fields(&applied);
        Ok(BatchResponse {
            header: Some(self.header()),
            version,
            updated_at_unix_ms,
        })
    }
}

#[tonic::async_trait]
impl Records for RecordsService {
    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let started = Instant::now();
        let result = self.do_put(request.into_inner()).await;
        observe("Put", started, &result);
        result.map(Response::new)
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let started = Instant::now();
        let result = self.do_get(request.into_inner()).await;
        observe("Get", started, &result);
        result.map(Response::new)
    }

    async fn delete(&self, request: Request<DeleteRequest>) -> Result<Response<DeleteResponse>, Status> {
        let started = Instant::now();
        let result = self.do_delete(request.into_inner()).await;
        observe("Delete", started, &result);
        result.map(Response::new)
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let started = Instant::now();
        let result = self.do_list(request.into_inner()).await;
        observe("List", started, &result);
        result.map(Response::new)
    }

    async fn batch(&self, request: Request<BatchRequest>) -> Result<Response<BatchResponse>, Status> {
        let started = Instant::now();
        let result = self.do_batch(request.into_inner()).await;
        observe("Batch", started, &result);
        result.map(Response::new)
    }
}
