//! The `Records` gRPC service: authenticates and authorizes the caller,
//! validates the request, seals values with the tenant's data key, turns a
//! write into a replicated command and a read into a barrier plus a local
//! read, and answers with a header naming the leader.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::time::Instant;

use safekeep_api::v1::records_server::Records;
use safekeep_api::v1::{
    BatchOp, BatchRequest, BatchResponse, Consistency, DeleteRequest, DeleteResponse, ExportRequest, GetRequest,
    GetResponse, ListRequest, ListResponse, PutRequest, PutResponse, Record, ResponseHeader, WriteId, batch_op,
};
use tonic::{Request, Response, Status};

use crate::auth::policy::{self, Allowed};
use crate::auth::{
    Auditor, Authenticator, Principal, REASON_HEADER, RecordAccess, TenantRateLimiter, audit, rate_limit,
};
use crate::crypto::DataKeys;
use crate::crypto::data_keys::MAX_SEALS_PER_DATA_KEY;
use crate::crypto::envelope::sealed_version;
use crate::metrics_names;
use crate::model::command::{self, Command, CommandBody, CommandResponse, Mutation, Refusal, TenancyChange};
use crate::model::limits::{DEFAULT_LIST_PAGE, LIST_PAGE_BYTES, LIST_RECORD_OVERHEAD_BYTES};
use crate::model::validate::{self, InvalidRequest};
use crate::raft::{Applied, Consensus, ReadLevel};
use crate::status::{refusal, storage_read, version_conflict};
use crate::storage::tenancy::TenantRecord;
use crate::storage::{RecordReader, StoredRecord};

/// What guards the records of a node: who may call, how often, and the data keys.
#[derive(Clone)]
pub struct RecordsGuard {
    pub authenticator: Authenticator,
    pub limiter: TenantRateLimiter,
    /// Present whenever authentication is: values are sealed at rest.
    pub data_keys: Option<Arc<DataKeys>>,
    /// Appends record access by staff (support, operators) to the audit log.
    pub auditor: Auditor,
}

/// The records service of one node.
pub struct RecordsService {
    consensus: Consensus,
    reader: RecordReader,
    max_value_bytes: usize,
    guard: RecordsGuard,
}

/// The stream of an export's chunks (`export.rs`).
pub type ExportStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<safekeep_api::v1::ExportChunk, Status>> + Send>>;

/// A caller admitted to a tenant's records.
pub(super) struct Admitted {
    pub(super) principal: Principal,
    pub(super) allowed: Allowed,
    /// The tenant's keys, when values are sealed.
    pub(super) tenant: Option<TenantRecord>,
}

impl RecordsService {
    pub fn new(consensus: Consensus, reader: RecordReader, max_value_bytes: usize, guard: RecordsGuard) -> Self {
        Self {
            consensus,
            reader,
            max_value_bytes,
            guard,
        }
    }

    pub(super) fn header(&self) -> ResponseHeader {
        crate::status::response_header(&self.consensus)
    }

    pub(super) fn consensus(&self) -> &Consensus {
        &self.consensus
    }

    pub(super) fn reader(&self) -> &RecordReader {
        &self.reader
    }

    pub(super) fn guard(&self) -> &RecordsGuard {
        &self.guard
    }

    /// Authorizes a call on `tenant`'s records and loads the tenant's keys.
    /// Staff (support, operators) refused here are audited.
    async fn admit(
        &self,
        principal: &Principal,
        reason: Option<&str>,
        tenant: &str,
        access: RecordAccess,
    ) -> Result<Admitted, Status> {
        validate::tenant(tenant)?;
        let allowed = match policy::records(principal, tenant, access, reason) {
            Ok(allowed) => allowed,
            Err(status) => {
                if matches!(principal, Principal::Operator(_) | Principal::Support(_)) {
                    let action = match access {
                        RecordAccess::Read => "record-read",
                        RecordAccess::Write => "record-write",
                    };
                    let denied = audit::event(principal, action, reason.unwrap_or(""), "", Some("denied".into()));
                    self.guard.auditor.record_best_effort(tenant, denied).await;
                }
                return Err(status);
            }
        };
        let tenant_record = match &self.guard.data_keys {
            None => None,
            Some(keys) => {
                let record = self.reader.tenant(tenant).map_err(|e| storage_read(&e))?;
                match record.filter(TenantRecord::is_live) {
                    Some(record) => Some(record),
                    None => {
                        keys.forget(tenant);
                        return Err(tenant_gone(tenant));
                    }
                }
            }
        };
        Ok(Admitted {
            principal: principal.clone(),
            allowed,
            tenant: tenant_record,
        })
    }

    /// Authenticates the request and admits it to `tenant`'s records.
    pub(super) async fn admit_request<T>(
        &self,
        request: &Request<T>,
        tenant: &str,
        access: RecordAccess,
    ) -> Result<Admitted, Status> {
        let principal = self.guard.authenticator.authenticate(request).await?;
        let reason = request.metadata().get(REASON_HEADER).and_then(|v| v.to_str().ok());
        let admitted = self.admit(&principal, reason, tenant, access).await?;
        // One token per request, once it is authorized, from the caller's own
        // bucket: a key of one tenant never spends another tenant's tokens.
        self.guard.limiter.check(&rate_limit::bucket_of(&principal, tenant))?;
        Ok(admitted)
    }

    /// After a read barrier: checks again (without another token), so a key
    /// revoked before the read point is refused.
    pub(super) async fn readmit<T>(&self, request: &Request<T>, tenant: &str) -> Result<Admitted, Status> {
        let principal = self.guard.authenticator.authenticate(request).await?;
        let reason = request.metadata().get(REASON_HEADER).and_then(|v| v.to_str().ok());
        self.admit(&principal, reason, tenant, RecordAccess::Read).await
    }

    fn seal(&self, admitted: &Admitted, tenant: &str, key: &str, value: Vec<u8>) -> Result<Vec<u8>, Status> {
        seal_value(
            self.guard.data_keys.as_deref(),
            admitted.tenant.as_ref(),
            tenant,
            key,
            value,
        )
    }

    fn open(&self, admitted: &Admitted, tenant: &str, key: &str, stored: StoredRecord) -> Result<Record, Status> {
        open_record(
            self.guard.data_keys.as_deref(),
            admitted.tenant.as_ref(),
            tenant,
            key,
            stored,
        )
    }

    /// Makes sure the data key new values are sealed with is unwrapped, off the runtime.
    async fn ready_to_seal(&self, admitted: &Admitted, tenant: &str) -> Result<(), Status> {
        if let (Some(keys), Some(record)) = (&self.guard.data_keys, &admitted.tenant)
            && let Some(current) = record.current_data_key()
        {
            keys.ready(tenant, record, current.version).await?;
        }
        Ok(())
    }

    /// Makes sure the data keys `values` were sealed with are unwrapped, off the runtime.
    async fn ready_to_open<'a>(
        &self,
        admitted: &Admitted,
        tenant: &str,
        values: impl Iterator<Item = &'a [u8]>,
    ) -> Result<(), Status> {
        let (Some(keys), Some(record)) = (&self.guard.data_keys, &admitted.tenant) else {
            return Ok(());
        };
        let mut versions: Vec<u32> = values.filter_map(|v| sealed_version(v).ok()).collect();
        versions.sort_unstable();
        versions.dedup();
        for version in versions {
            // A version the tenant no longer has is refused by `open`, with its own error.
            if record.data_keys.iter().any(|k| k.version == version) {
                keys.ready(tenant, record, version).await?;
            }
        }
        Ok(())
    }

    /// Makes a new data key first when the current one has sealed its share of values.
    async fn refresh_data_key(&self, tenant: &str, admitted: &mut Admitted) -> Result<(), Status> {
        let (Some(keys), Some(record)) = (&self.guard.data_keys, &admitted.tenant) else {
            return Ok(());
        };
        if record.sealed_with_current < MAX_SEALS_PER_DATA_KEY {
            return Ok(());
        }
        let version = record.current_data_key().map_or(1, |k| k.version + 1);
        let data_key = keys.make_data_key(tenant, version).await?;
        let command = Command::tenancy(tenant, None, TenancyChange::AddDataKey { data_key }, None);
        let applied = self.consensus.propose(command).await?;
        match applied.response {
            CommandResponse::Applied { .. } | CommandResponse::Refused(Refusal::DataKeyMismatch) => {}
            CommandResponse::Refused(other) => return Err(refusal(other, tenant)),
            other => {
                return Err(Status::internal(format!(
                    "unexpected answer to a data key rotation: {other:?}"
                )));
            }
        }
        admitted.tenant = self
            .reader
            .tenant(tenant)
            .map_err(|e| storage_read(&e))?
            .filter(TenantRecord::is_live);
        tracing::info!(tenant, version, "rotated the tenant's data key after its sealing limit");
        Ok(())
    }

    async fn write(
        &self,
        tenant: String,
        admitted: &Admitted,
        write_id: Option<WriteId>,
        mutations: Vec<Mutation>,
    ) -> Result<Applied, Status> {
        // A write with a staff key is audited in the same command that applies it.
        let audited = match &admitted.allowed {
            Allowed::StaffKey { .. } => {
                let keys: Vec<&str> = mutations.iter().map(Mutation::key).collect();
                let what = match keys.as_slice() {
                    [one] => format!("write {one:?}"),
                    many => format!("write {} records", many.len()),
                };
                Some(audit::event(&admitted.principal, "staff-key-write", "", &what, None))
            }
            _ => None,
        };
        let write_id = match write_id {
            Some(id) => {
                validate::write_id(&id.client_id, id.request_id, id.first_incomplete)?;
                Some(command::WriteId {
                    client_id: id.client_id,
                    request_id: id.request_id,
                    first_incomplete: id.first_incomplete,
                })
            }
            None => None,
        };
        let api_key = match &admitted.principal {
            Principal::Tenant { key_id, .. } => Some(key_id.clone()),
            _ => None,
        };
        let command = Command {
            write_id,
            proposed_at_ms: 0,
            leader_clock_ms: 0,
            tenant: tenant.clone(),
            api_key,
            body: CommandBody::Write(mutations),
            audit: audited.clone(),
        };
        let applied = self.consensus.propose(command).await?;
        if let Some(event) = &audited {
            audit::log(&tenant, event, &applied.response.audit_result());
        }
        match &applied.response {
            CommandResponse::Conflict { key, current_version } => Err(version_conflict(key, *current_version)),
            CommandResponse::Applied { .. } => Ok(applied),
            CommandResponse::Noop => Err(Status::internal("a write was applied as a no-op")),
            CommandResponse::Retired { floor } => Err(crate::status::retired_write(*floor)),
            CommandResponse::Refused(reason) => Err(refusal(*reason, &tenant)),
        }
    }

    /// Commits a staff read (support, or a key an operator issued) to the
    /// audit log before any of its data is returned.
    async fn audit_read(&self, admitted: &Admitted, tenant: &str, what: &str) -> Result<(), Status> {
        let event = match &admitted.allowed {
            Allowed::SupportRead { reason, .. } => {
                audit::event(&admitted.principal, "support-read", reason, what, None)
            }
            Allowed::StaffKey { .. } => audit::event(&admitted.principal, "staff-key-read", "", what, None),
            Allowed::Owner => return Ok(()),
        };
        self.guard.auditor.record(tenant, event).await
    }
}

/// The refusal of a tenant deleted while one of its requests was on its way.
fn tenant_gone(tenant: &str) -> Status {
    Status::not_found(format!("tenant {tenant:?} does not exist"))
}

/// A value as it enters the log: sealed with the tenant's current data key
/// whenever values are sealed at rest. Without the tenant's record (deleted
/// while the write was on its way) the write fails: a value is never logged
/// in plaintext on a node that seals.
pub(super) fn seal_value(
    data_keys: Option<&DataKeys>,
    tenant_record: Option<&TenantRecord>,
    tenant: &str,
    key: &str,
    value: Vec<u8>,
) -> Result<Vec<u8>, Status> {
    match (data_keys, tenant_record) {
        (Some(keys), Some(record)) if record.is_live() => Ok(keys.seal(tenant, record, key, &value)?),
        (Some(_), _) => Err(tenant_gone(tenant)),
        (None, _) => Ok(value),
    }
}

/// A stored record as the API returns it: its value opened with the
/// tenant's data keys when values are sealed.
pub(super) fn open_record(
    data_keys: Option<&DataKeys>,
    tenant_record: Option<&TenantRecord>,
    tenant: &str,
    key: &str,
    stored: StoredRecord,
) -> Result<Record, Status> {
    let value = match (data_keys, tenant_record) {
        (Some(keys), Some(record)) => keys.open(tenant, record, key, &stored.value)?,
        (Some(_), None) => return Err(tenant_gone(tenant)),
        (None, _) => stored.value,
    };
    Ok(Record {
        key: key.to_string(),
        value,
        version: stored.version,
        updated_at_unix_ms: stored.updated_at_ms,
    })
}

fn read_level(consistency: i32) -> Result<ReadLevel, InvalidRequest> {
    match Consistency::try_from(consistency) {
        Ok(Consistency::Unspecified | Consistency::Linearizable) => Ok(ReadLevel::Linearizable),
        Ok(Consistency::Lease) => Ok(ReadLevel::Lease),
        Ok(Consistency::Stale) => Ok(ReadLevel::Stale),
        Err(_) => Err(InvalidRequest::UnknownConsistency(consistency)),
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
    async fn do_put(&self, request: Request<PutRequest>) -> Result<PutResponse, Status> {
        let mut admitted = self
            .admit_request(&request, &request.get_ref().tenant, RecordAccess::Write)
            .await?;
        let request = request.into_inner();
        validate::key(&request.key)?;
        validate::value(&request.value, self.max_value_bytes)?;
        self.refresh_data_key(&request.tenant, &mut admitted).await?;
        self.ready_to_seal(&admitted, &request.tenant).await?;
        let ttl_ms = request.ttl_seconds.map(validate::ttl_seconds).transpose()?;
        let value = self.seal(&admitted, &request.tenant, &request.key, request.value)?;
        let mutation = match ttl_ms {
            Some(ttl_ms) => Mutation::PutWithTtl {
                key: request.key,
                value,
                expected_version: request.expected_version,
                ttl_ms,
            },
            None => Mutation::Put {
                key: request.key,
                value,
                expected_version: request.expected_version,
            },
        };
        let applied = self
            .write(request.tenant, &admitted, request.write_id, vec![mutation])
            .await?;
        let (version, updated_at_unix_ms, _) = applied_fields(&applied);
        Ok(PutResponse {
            header: Some(self.header()),
            version,
            updated_at_unix_ms,
        })
    }

    async fn do_get(&self, request: Request<GetRequest>) -> Result<GetResponse, Status> {
        let tenant = request.get_ref().tenant.clone();
        self.admit_request(&request, &tenant, RecordAccess::Read).await?;
        let key = request.get_ref().key.clone();
        validate::key(&key)?;
        let level = read_level(request.get_ref().consistency)?;
        self.consensus.read_barrier(level).await?;
        let admitted = self.readmit(&request, &tenant).await?;
        self.audit_read(&admitted, &tenant, &format!("get {key:?}")).await?;
        let stored = self
            .reader
            .get(&tenant, &key)
            .map_err(|e| storage_read(&e))?
            .ok_or_else(|| Status::not_found(format!("no record {key:?} in tenant {tenant:?}")))?;
        self.ready_to_open(&admitted, &tenant, std::iter::once(stored.value.as_slice()))
            .await?;
        Ok(GetResponse {
            header: Some(self.header()),
            record: Some(self.open(&admitted, &tenant, &key, stored)?),
        })
    }

    async fn do_delete(&self, request: Request<DeleteRequest>) -> Result<DeleteResponse, Status> {
        let admitted = self
            .admit_request(&request, &request.get_ref().tenant, RecordAccess::Write)
            .await?;
        let request = request.into_inner();
        validate::key(&request.key)?;
        let mutation = Mutation::Delete {
            key: request.key,
            expected_version: request.expected_version,
        };
        let applied = self
            .write(request.tenant, &admitted, request.write_id, vec![mutation])
            .await?;
        let (version, _, existed) = applied_fields(&applied);
        Ok(DeleteResponse {
            header: Some(self.header()),
            deleted: existed.first().copied().unwrap_or(false),
            version,
        })
    }

    async fn do_list(&self, request: Request<ListRequest>) -> Result<ListResponse, Status> {
        let tenant = request.get_ref().tenant.clone();
        self.admit_request(&request, &tenant, RecordAccess::Read).await?;
        let body = request.get_ref();
        validate::prefix(&body.prefix)?;
        let level = read_level(body.consistency)?;
        let limit = match body.limit {
            0 => DEFAULT_LIST_PAGE,
            n if n > crate::model::limits::MAX_LIST_PAGE => return Err(InvalidRequest::PageTooLarge(n).into()),
            n => n,
        };
        let after = validate::parse_page_token(&body.page_token)?;
        self.consensus.read_barrier(level).await?;
        let admitted = self.readmit(&request, &tenant).await?;
        let prefix = request.get_ref().prefix.clone();
        self.audit_read(&admitted, &tenant, &format!("list {prefix:?}")).await?;
        let page = self
            .reader
            .list(
                &tenant,
                &prefix,
                after.as_deref(),
                limit as usize,
                LIST_PAGE_BYTES,
                LIST_RECORD_OVERHEAD_BYTES,
            )
            .map_err(|e| storage_read(&e))?;
        self.ready_to_open(&admitted, &tenant, page.records.iter().map(|(_, r)| r.value.as_slice()))
            .await?;
        let records = page
            .records
            .into_iter()
            .map(|(key, stored)| self.open(&admitted, &tenant, &key, stored))
            .collect::<Result<Vec<_>, Status>>()?;
        Ok(ListResponse {
            header: Some(self.header()),
            next_page_token: page.last_key.as_deref().map(validate::page_token).unwrap_or_default(),
            records,
        })
    }

    async fn do_batch(&self, request: Request<BatchRequest>) -> Result<BatchResponse, Status> {
        let mut admitted = self
            .admit_request(&request, &request.get_ref().tenant, RecordAccess::Write)
            .await?;
        let request = request.into_inner();
        if request.ops.is_empty() {
            return Err(InvalidRequest::EmptyBatch.into());
        }
        if request.ops.len() > crate::model::limits::MAX_BATCH_OPS {
            return Err(InvalidRequest::BatchTooLong(request.ops.len()).into());
        }
        self.refresh_data_key(&request.tenant, &mut admitted).await?;
        self.ready_to_seal(&admitted, &request.tenant).await?;
        let mut seen = HashSet::with_capacity(request.ops.len());
        let mut bytes = 0usize;
        let mut mutations = Vec::with_capacity(request.ops.len());
        for (position, BatchOp { op }) in request.ops.into_iter().enumerate() {
            let mutation = match op {
                Some(batch_op::Op::Put(put)) => {
                    validate::key(&put.key)?;
                    validate::value(&put.value, self.max_value_bytes)?;
                    bytes += put.key.len() + put.value.len();
                    let value = self.seal(&admitted, &request.tenant, &put.key, put.value)?;
                    Mutation::Put {
                        key: put.key,
                        value,
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
        if bytes > crate::model::limits::MAX_BATCH_BYTES {
            return Err(InvalidRequest::BatchTooLarge(bytes).into());
        }
        let applied = self
            .write(request.tenant, &admitted, request.write_id, mutations)
            .await?;
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
        let result = self.do_put(request).await;
        observe("Put", started, &result);
        result.map(Response::new)
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let started = Instant::now();
        let result = self.do_get(request).await;
        observe("Get", started, &result);
        result.map(Response::new)
    }

    async fn delete(&self, request: Request<DeleteRequest>) -> Result<Response<DeleteResponse>, Status> {
        let started = Instant::now();
        let result = self.do_delete(request).await;
        observe("Delete", started, &result);
        result.map(Response::new)
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let started = Instant::now();
        let result = self.do_list(request).await;
        observe("List", started, &result);
        result.map(Response::new)
    }

    async fn batch(&self, request: Request<BatchRequest>) -> Result<Response<BatchResponse>, Status> {
        let started = Instant::now();
        let result = self.do_batch(request).await;
        observe("Batch", started, &result);
        result.map(Response::new)
    }

    type ExportStream = ExportStream;

    /// Observed until the stream starts; its chunks follow at the client's pace.
    async fn export(&self, request: Request<ExportRequest>) -> Result<Response<ExportStream>, Status> {
        let started = Instant::now();
        let result = self.do_export(request).await;
        observe("Export", started, &result);
        result.map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::crypto::MasterKeyFile;

    const MASTER: &str = "k1 0000000000000000000000000000000000000000000000000000000000000001";

    fn keys_and_tenant() -> (DataKeys, TenantRecord) {
        let keys = DataKeys::new(Arc::new(MasterKeyFile::parse(MASTER, "test").unwrap()));
        let record = TenantRecord {
            created_at_ms: 1,
            deleted_at_ms: None,
            data_keys: vec![keys.new_data_key("acme", 1).unwrap()],
            sealed_with_current: 0,
        };
        (keys, record)
    }

    #[test]
    fn a_value_is_never_logged_in_plaintext_once_its_tenant_is_gone() {
        let (keys, live) = keys_and_tenant();
        let sealed = seal_value(Some(&keys), Some(&live), "acme", "k", b"secret".to_vec()).unwrap();
        assert_ne!(sealed, b"secret", "a live tenant's value is sealed");
        let missing = seal_value(Some(&keys), None, "acme", "k", b"secret".to_vec()).unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound);
        let deleted = TenantRecord {
            deleted_at_ms: Some(2),
            data_keys: Vec::new(),
            ..live
        };
        let refused = seal_value(Some(&keys), Some(&deleted), "acme", "k", b"secret".to_vec()).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::NotFound);
        // Only a node that seals nothing (development) logs values as given.
        assert_eq!(seal_value(None, None, "acme", "k", b"v".to_vec()).unwrap(), b"v");
    }
}
