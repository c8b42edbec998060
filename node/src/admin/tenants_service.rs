//! The `Admin` gRPC service: tenants and their API keys. Every change is a
//! replicated command, so every node sees it at the same log position; reads
//! pass a linearizable barrier first, so they reflect every committed change.

use std::sync::Arc;

use safekeep_api::v1::admin_server::Admin;
use safekeep_api::v1::{
    ApiKey, ApiKeyRole as ProtoRole, CreateTenantRequest, CreateTenantResponse, DeleteTenantRequest,
    DeleteTenantResponse, IssueApiKeyRequest, IssueApiKeyResponse, ListApiKeysRequest, ListApiKeysResponse,
    ListAuditRequest, ListAuditResponse, ListTenantsRequest, ListTenantsResponse, ResponseHeader, RevokeApiKeyRequest,
    RevokeApiKeyResponse, RewrapDataKeysRequest, RewrapDataKeysResponse, RotateDataKeyRequest, RotateDataKeyResponse,
    SetRetentionRequest, SetRetentionResponse, Tenant,
};
use tonic::{Request, Response, Status};

use crate::auth::policy::{self, MAX_REASON_BYTES};
use crate::auth::{ApiKeyToken, Authenticator, Principal, audit};
use crate::crypto::DataKeys;
use crate::model::command::{ApiKeyRole, AuditEvent, Command, CommandResponse, TenancyChange};
use crate::model::limits::{DEFAULT_AUDIT_PAGE, MAX_AUDIT_PAGE};
use crate::model::validate;
use crate::raft::{Consensus, ReadLevel};
use crate::status::{refusal, storage_read};
use crate::storage::RecordReader;
use crate::storage::audit::AuditEntry;
use crate::storage::tenancy::{ApiKeyRecord, TenantRecord};

/// The admin service of one node.
pub struct AdminService {
    consensus: Consensus,
    reader: RecordReader,
    authenticator: Authenticator,
    data_keys: Option<Arc<DataKeys>>,
}

fn to_proto_role(role: ApiKeyRole) -> ProtoRole {
    match role {
        ApiKeyRole::Reader => ProtoRole::Reader,
        ApiKeyRole::Writer => ProtoRole::Writer,
        ApiKeyRole::Admin => ProtoRole::Admin,
    }
}

fn from_proto_role(role: i32) -> Result<ApiKeyRole, Status> {
    match ProtoRole::try_from(role) {
        Ok(ProtoRole::Reader) => Ok(ApiKeyRole::Reader),
        Ok(ProtoRole::Writer) => Ok(ApiKeyRole::Writer),
        Ok(ProtoRole::Admin) => Ok(ApiKeyRole::Admin),
        _ => Err(Status::invalid_argument("role must be reader, writer or admin")),
    }
}

fn to_tenant(name: String, record: &TenantRecord) -> Tenant {
    Tenant {
        tenant: name,
        created_at_unix_ms: record.created_at_ms,
        deleted: !record.is_live(),
        data_key_version: record.current_data_key().map_or(0, |k| k.version),
    }
}

fn to_api_key(record: ApiKeyRecord) -> ApiKey {
    ApiKey {
        role: to_proto_role(record.role) as i32,
        key_id: record.key_id,
        tenant: record.tenant,
        label: record.label,
        created_at_unix_ms: record.created_at_ms,
        revoked: record.revoked_at_ms.is_some(),
    }
}

impl AdminService {
    pub fn new(
        consensus: Consensus,
        reader: RecordReader,
        authenticator: Authenticator,
        data_keys: Option<Arc<DataKeys>>,
    ) -> Self {
        Self {
            consensus,
            reader,
            authenticator,
            data_keys,
        }
    }

    fn header(&self) -> ResponseHeader {
        crate::status::response_header(&self.consensus)
    }

    fn data_keys(&self) -> Result<&Arc<DataKeys>, Status> {
        self.data_keys.as_ref().ok_or_else(|| {
            Status::failed_precondition(
                "tenants need encryption at rest: run the cluster with TLS and a master key, not --insecure-dev",
            )
        })
    }

    /// Applies a tenancy change with its audit entry in the same command.
    async fn change(&self, tenant: &str, change: TenancyChange, audited: AuditEvent) -> Result<(), Status> {
        self.change_as(tenant, None, change, audited).await
    }

    /// Like `change`, made with the tenant admin key `issuer`, which must still be valid when it applies.
    async fn change_as(
        &self,
        tenant: &str,
        issuer: Option<String>,
        change: TenancyChange,
        audited: AuditEvent,
    ) -> Result<(), Status> {
        // The caller reads what the change made from this node's replica.
        let applied = self
            .consensus
            .propose_and_apply_locally(Command::tenancy(tenant, issuer, change, Some(audited.clone())))
            .await?;
        audit::log(tenant, &audited, &applied.response.audit_result());
        match applied.response {
            CommandResponse::Applied { .. } => Ok(()),
            CommandResponse::Refused(reason) => Err(refusal(reason, tenant)),
            other => Err(Status::internal(format!(
                "unexpected answer to a tenancy change: {other:?}"
            ))),
        }
    }

    /// Waits until this replica reflects every committed change.
    async fn caught_up(&self) -> Result<(), Status> {
        Ok(self.consensus.read_barrier(ReadLevel::Linearizable).await?)
    }

    fn tenant(&self, tenant: &str) -> Result<Option<TenantRecord>, Status> {
        self.reader.tenant(tenant).map_err(|e| storage_read(&e))
    }
}

/// The API key a tenant admin acts with; operators act with certificates.
fn issuer_key(principal: &Principal) -> Option<String> {
    match principal {
        Principal::Tenant { key_id, .. } => Some(key_id.clone()),
        _ => None,
    }
}

fn to_audit_entry(entry: AuditEntry) -> safekeep_api::v1::AuditEntry {
    safekeep_api::v1::AuditEntry {
        seq: entry.seq,
        at_unix_ms: entry.at_ms,
        actor: entry.actor,
        action: entry.action,
        tenant: entry.tenant,
        reason: entry.reason,
        result: entry.result,
        detail: entry.detail,
        prev_hash: entry.prev_hash.to_vec(),
        hash: entry.hash.to_vec(),
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn create_tenant(
        &self,
        request: Request<CreateTenantRequest>,
    ) -> Result<Response<CreateTenantResponse>, Status> {
        let principal = self.authenticator.authenticate(&request).await?;
        policy::operator(&principal)?;
        let tenant = request.into_inner().tenant;
        validate::tenant(&tenant)?;
        let data_key = self.data_keys()?.make_data_key(&tenant, 1).await?;
        let audited = audit::event(&principal, "create-tenant", "", "", None);
        self.change(&tenant, TenancyChange::CreateTenant { data_key }, audited)
            .await?;
        let record = self
            .tenant(&tenant)?
            .ok_or_else(|| Status::internal("the created tenant is not readable"))?;
        Ok(Response::new(CreateTenantResponse {
            header: Some(self.header()),
            tenant: Some(to_tenant(tenant, &record)),
        }))
    }

    async fn list_tenants(
        &self,
        request: Request<ListTenantsRequest>,
    ) -> Result<Response<ListTenantsResponse>, Status> {
        let principal = self.authenticator.authenticate(&request).await?;
        policy::operator(&principal)?;
        self.caught_up().await?;
        let tenants = self.reader.tenants().map_err(|e| storage_read(&e))?;
        Ok(Response::new(ListTenantsResponse {
            header: Some(self.header()),
            tenants: tenants
                .into_iter()
                .map(|(name, record)| to_tenant(name, &record))
                .collect(),
        }))
    }

    async fn delete_tenant(
        &self,
        request: Request<DeleteTenantRequest>,
    ) -> Result<Response<DeleteTenantResponse>, Status> {
        let principal = self.authenticator.authenticate(&request).await?;
        policy::operator(&principal)?;
        let DeleteTenantRequest { tenant, reason } = request.into_inner();
        validate::tenant(&tenant)?;
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > MAX_REASON_BYTES || reason.chars().any(char::is_control) {
            return Err(Status::invalid_argument(format!(
                "deleting a tenant needs a reason of 1 to {MAX_REASON_BYTES} bytes without control characters"
            )));
        }
        let audited = audit::event(&principal, "delete-tenant", reason, "", None);
        self.change(&tenant, TenancyChange::DeleteTenant, audited).await?;
        if let Some(keys) = &self.data_keys {
            keys.forget(&tenant);
        }
        Ok(Response::new(DeleteTenantResponse {
            header: Some(self.header()),
        }))
    }

    async fn issue_api_key(
        &self,
        request: Request<IssueApiKeyRequest>,
    ) -> Result<Response<IssueApiKeyResponse>, Status> {
        let principal = self.authenticator.authenticate(&request).await?;
        let IssueApiKeyRequest { tenant, role, label } = request.into_inner();
        validate::tenant(&tenant)?;
        policy::tenant_admin(&principal, &tenant)?;
        let role = from_proto_role(role)?;
        validate::api_key_label(&label)?;
        self.data_keys()?;
        let token = ApiKeyToken::generate()?;
        let key_id = token.key_id.clone();
        let secret_hash = token.secret_hash();
        // An operator's key is a staff key: its record access is audited as theirs.
        let change = match &principal {
            Principal::Operator(operator) => TenancyChange::IssueStaffApiKey {
                key_id,
                role,
                secret_hash,
                label,
                operator: operator.clone(),
            },
            _ => TenancyChange::IssueApiKey {
                key_id,
                role,
                secret_hash,
                label,
            },
        };
        let audited = audit::event(&principal, "issue-api-key", "", &token.key_id, None);
        self.change_as(&tenant, issuer_key(&principal), change, audited).await?;
        let record = self
            .reader
            .api_key(&token.key_id)
            .map_err(|e| storage_read(&e))?
            .ok_or_else(|| Status::internal("the issued key is not readable"))?;
        Ok(Response::new(IssueApiKeyResponse {
            header: Some(self.header()),
            key: Some(to_api_key(record)),
            secret: token.expose(),
        }))
    }

    async fn list_api_keys(
        &self,
        request: Request<ListApiKeysRequest>,
    ) -> Result<Response<ListApiKeysResponse>, Status> {
        let principal = self.authenticator.authenticate(&request).await?;
        let tenant = request.into_inner().tenant;
        validate::tenant(&tenant)?;
        policy::tenant_admin(&principal, &tenant)?;
        self.caught_up().await?;
        // A scan of every API key: on the blocking pool, not the runtime openraft shares.
        let reader = self.reader.clone();
        let keys = tokio::task::spawn_blocking(move || reader.api_keys(&tenant))
            .await
            .map_err(|e| Status::internal(format!("listing API keys was interrupted: {e}")))?
            .map_err(|e| storage_read(&e))?;
        Ok(Response::new(ListApiKeysResponse {
            header: Some(self.header()),
            keys: keys.into_iter().map(to_api_key).collect(),
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<RevokeApiKeyRequest>,
    ) -> Result<Response<RevokeApiKeyResponse>, Status> {
        let principal = self.authenticator.authenticate(&request).await?;
        let key_id = request.into_inner().key_id;
        validate::api_key_id(&key_id)?;
        self.caught_up().await?;
        // A key of another tenant looks exactly like a missing one to a tenant admin.
        let not_found = || Status::not_found(format!("no API key {key_id:?}"));
        let record = self
            .reader
            .api_key(&key_id)
            .map_err(|e| storage_read(&e))?
            .ok_or_else(not_found)?;
        policy::tenant_admin(&principal, &record.tenant).map_err(|_| not_found())?;
        let audited = audit::event(&principal, "revoke-api-key", "", &key_id, None);
        let revoke = TenancyChange::RevokeApiKey { key_id: key_id.clone() };
        self.change_as(&record.tenant, issuer_key(&principal), revoke, audited)
            .await?;
        Ok(Response::new(RevokeApiKeyResponse {
            header: Some(self.header()),
        }))
    }

    async fn rotate_data_key(
        &self,
        request: Request<RotateDataKeyRequest>,
    ) -> Result<Response<RotateDataKeyResponse>, Status> {
        let principal = self.authenticator.authenticate(&request).await?;
        policy::operator(&principal)?;
        let tenant = request.into_inner().tenant;
        validate::tenant(&tenant)?;
        let keys = self.data_keys()?;
        self.caught_up().await?;
        let record = self
            .tenant(&tenant)?
            .filter(TenantRecord::is_live)
            .ok_or_else(|| Status::not_found(format!("tenant {tenant:?} does not exist")))?;
        let version = record.current_data_key().map_or(1, |k| k.version + 1);
        let data_key = keys.make_data_key(&tenant, version).await?;
        let audited = audit::event(&principal, "rotate-data-key", "", &format!("version {version}"), None);
        self.change(&tenant, TenancyChange::AddDataKey { data_key }, audited)
            .await?;
        Ok(Response::new(RotateDataKeyResponse {
            header: Some(self.header()),
            data_key_version: version,
        }))
    }

    async fn set_retention(
        &self,
        request: Request<SetRetentionRequest>,
    ) -> Result<Response<SetRetentionResponse>, Status> {
        let principal = self.authenticator.authenticate(&request).await?;
        let SetRetentionRequest {
            tenant,
            retention_seconds,
        } = request.into_inner();
        validate::tenant(&tenant)?;
        policy::tenant_admin(&principal, &tenant)?;
        let retention_ms = validate::retention_seconds(retention_seconds)?;
        let detail = match retention_seconds {
            0 => "records kept until deleted".to_string(),
            s => format!("records not written for {s} s are removed"),
        };
        let audited = audit::event(&principal, "set-retention", "", &detail, None);
        let change = TenancyChange::SetRetention { retention_ms };
        self.change_as(&tenant, issuer_key(&principal), change, audited).await?;
        Ok(Response::new(SetRetentionResponse {
            header: Some(self.header()),
        }))
    }

    async fn rewrap_data_keys(
        &self,
        request: Request<RewrapDataKeysRequest>,
    ) -> Result<Response<RewrapDataKeysResponse>, Status> {
        let principal = self.authenticator.authenticate(&request).await?;
        policy::operator(&principal)?;
        let keys = self.data_keys()?;
        self.caught_up().await?;
        let master_key_id = keys.provider().current_key_id().to_string();
        let tenants = self.reader.tenants().map_err(|e| storage_read(&e))?;
        let mut rewrapped = 0u32;
        for (tenant, record) in tenants.iter().filter(|(_, r)| r.is_live()) {
            if record.data_keys.iter().all(|k| k.master_key_id == master_key_id) {
                continue;
            }
            let data_keys = keys.rewrap_off_runtime(tenant, record).await?;
            let audited = audit::event(
                &principal,
                "rewrap-data-keys",
                "",
                &format!("master key {master_key_id}"),
                None,
            );
            self.change(tenant, TenancyChange::RewrapDataKeys { data_keys }, audited)
                .await?;
            keys.forget(tenant);
            rewrapped += 1;
        }
        Ok(Response::new(RewrapDataKeysResponse {
            header: Some(self.header()),
            tenants: rewrapped,
            master_key_id,
        }))
    }

    async fn list_audit(&self, request: Request<ListAuditRequest>) -> Result<Response<ListAuditResponse>, Status> {
        let principal = self.authenticator.authenticate(&request).await?;
        policy::operator(&principal)?;
        let ListAuditRequest { after_seq, limit } = request.into_inner();
        let limit = match limit {
            0 => DEFAULT_AUDIT_PAGE,
            n if n > MAX_AUDIT_PAGE => {
                return Err(Status::invalid_argument(format!(
                    "limit {n} is above the largest page, {MAX_AUDIT_PAGE}"
                )));
            }
            n => n,
        };
        self.caught_up().await?;
        let entries = self
            .reader
            .audit_entries(after_seq, limit as usize)
            .map_err(|e| storage_read(&e))?;
        Ok(Response::new(ListAuditResponse {
            header: Some(self.header()),
            entries: entries.into_iter().map(to_audit_entry).collect(),
        }))
    }
}
