//! Tenants and API keys through the `Admin` service. Operators call these
//! with a client certificate; a tenant's admin key manages that tenant's
//! keys. Changes are retried only when no node could be reached.

use safekeep_api::v1;
use safekeep_api::v1::admin_client::AdminClient;

use crate::client::Client;
use crate::error::Error;
use crate::retry::RetryPolicy;
use crate::types::{ApiKeyInfo, ApiKeyRole, AuditEntryInfo, AuditVerification, IssuedApiKey, TenantInfo};

/// Entries fetched per page when reading the whole audit log.
const AUDIT_PAGE: u32 = 1_000;

impl Client {
    /// Creates a tenant (and its first data key).
    pub async fn create_tenant(&self, tenant: &str) -> Result<TenantInfo, Error> {
        let request = v1::CreateTenantRequest { tenant: tenant.into() };
        let response = self
            .execute(RetryPolicy::Membership, |channel, timeout| {
                let request = self.request(request.clone(), timeout);
                async move { AdminClient::new(channel).create_tenant(request).await }
            })
            .await?;
        response
            .tenant
            .map(TenantInfo::from)
            .ok_or_else(|| Error::Internal("the server answered without the tenant".into()))
    }

    /// Every tenant, deleted ones marked.
    pub async fn list_tenants(&self) -> Result<Vec<TenantInfo>, Error> {
        let response = self
            .execute(RetryPolicy::Read, |channel, timeout| {
                let request = self.request(v1::ListTenantsRequest {}, timeout);
                async move { AdminClient::new(channel).list_tenants(request).await }
            })
            .await?;
        Ok(response.tenants.into_iter().map(TenantInfo::from).collect())
    }

    /// Deletes a tenant: its records and keys, and its data keys (crypto-shredding).
    pub async fn delete_tenant(&self, tenant: &str, reason: &str) -> Result<(), Error> {
        let request = v1::DeleteTenantRequest {
            tenant: tenant.into(),
            reason: reason.into(),
        };
        self.execute(RetryPolicy::Membership, |channel, timeout| {
            let request = self.request(request.clone(), timeout);
            async move { AdminClient::new(channel).delete_tenant(request).await }
        })
        .await?;
        Ok(())
    }

    /// Issues an API key; the secret is in the answer only.
    pub async fn issue_api_key(&self, tenant: &str, role: ApiKeyRole, label: &str) -> Result<IssuedApiKey, Error> {
        let request = v1::IssueApiKeyRequest {
            tenant: tenant.into(),
            role: v1::ApiKeyRole::from(role) as i32,
            label: label.into(),
        };
        let response = self
            .execute(RetryPolicy::Membership, |channel, timeout| {
                let request = self.request(request.clone(), timeout);
                async move { AdminClient::new(channel).issue_api_key(request).await }
            })
            .await?;
        let key = response
            .key
            .map(ApiKeyInfo::from)
            .ok_or_else(|| Error::Internal("the server answered without the key".into()))?;
        Ok(IssuedApiKey {
            key,
            secret: response.secret,
        })
    }

    /// A tenant's API keys (never their secrets).
    pub async fn list_api_keys(&self, tenant: &str) -> Result<Vec<ApiKeyInfo>, Error> {
        let request = v1::ListApiKeysRequest { tenant: tenant.into() };
        let response = self
            .execute(RetryPolicy::Read, |channel, timeout| {
                let request = self.request(request.clone(), timeout);
                async move { AdminClient::new(channel).list_api_keys(request).await }
            })
            .await?;
        Ok(response.keys.into_iter().map(ApiKeyInfo::from).collect())
    }

    /// Revokes an API key.
    pub async fn revoke_api_key(&self, key_id: &str) -> Result<(), Error> {
        let request = v1::RevokeApiKeyRequest { key_id: key_id.into() };
        self.execute(RetryPolicy::Membership, |channel, timeout| {
            let request = self.request(request.clone(), timeout);
            async move { AdminClient::new(channel).revoke_api_key(request).await }
        })
        .await?;
        Ok(())
    }

    /// Sets how long `tenant` keeps records after their last write (`None`:
    /// until deleted); older records are removed by the cluster's retention
    /// sweeper. Whole seconds; the operator or the tenant's admin key.
    pub async fn set_retention(&self, tenant: &str, window: Option<std::time::Duration>) -> Result<(), Error> {
        let retention_seconds = match window {
            Some(w) if w.as_secs() == 0 || w.subsec_nanos() != 0 => {
                return Err(Error::InvalidArgument(format!(
                    "a retention window is whole seconds, at least one; got {w:?}"
                )));
            }
            Some(w) => w.as_secs(),
            None => 0,
        };
        let request = v1::SetRetentionRequest {
            tenant: tenant.into(),
            retention_seconds,
        };
        self.execute(RetryPolicy::Membership, |channel, timeout| {
            let request = self.request(request.clone(), timeout);
            async move { AdminClient::new(channel).set_retention(request).await }
        })
        .await?;
        Ok(())
    }

    /// Starts a new data key version for the tenant's new writes; returns the version.
    pub async fn rotate_data_key(&self, tenant: &str) -> Result<u32, Error> {
        let request = v1::RotateDataKeyRequest { tenant: tenant.into() };
        let response = self
            .execute(RetryPolicy::Membership, |channel, timeout| {
                let request = self.request(request.clone(), timeout);
                async move { AdminClient::new(channel).rotate_data_key(request).await }
            })
            .await?;
        Ok(response.data_key_version)
    }

    /// Rewraps every tenant's data keys with the cluster's current master key;
    /// returns how many tenants changed and the master key id.
    pub async fn rewrap_data_keys(&self) -> Result<(u32, String), Error> {
        let response = self
            .execute(RetryPolicy::Membership, |channel, timeout| {
                let request = self.request(v1::RewrapDataKeysRequest {}, timeout);
                async move { AdminClient::new(channel).rewrap_data_keys(request).await }
            })
            .await?;
        Ok((response.tenants, response.master_key_id))
    }

    /// Up to `limit` audit entries after `after_seq` (0: from the first), oldest first.
    async fn audit_entries(&self, after_seq: u64, limit: u32) -> Result<Vec<v1::AuditEntry>, Error> {
        let request = v1::ListAuditRequest { after_seq, limit };
        let response = self
            .execute(RetryPolicy::Read, |channel, timeout| {
                let request = self.request(request, timeout);
                async move { AdminClient::new(channel).list_audit(request).await }
            })
            .await?;
        Ok(response.entries)
    }

    /// Up to `limit` audit entries after `after_seq`, for display.
    pub async fn list_audit(&self, after_seq: u64, limit: u32) -> Result<Vec<AuditEntryInfo>, Error> {
        let entries = self.audit_entries(after_seq, limit).await?;
        Ok(entries.into_iter().map(AuditEntryInfo::from).collect())
    }

    /// Reads the whole audit log and checks its hash chain: an entry removed,
    /// reordered or edited after it was written breaks it.
    pub async fn verify_audit(&self) -> Result<AuditVerification, Error> {
        use safekeep_api::audit::{AuditFields, verify_chain};
        let mut all = Vec::new();
        loop {
            let after = all.last().map_or(0, |e: &v1::AuditEntry| e.seq);
            let page = self.audit_entries(after, AUDIT_PAGE).await?;
            let done = page.len() < AUDIT_PAGE as usize;
            all.extend(page);
            if done {
                break;
            }
        }
        let hash = |bytes: &[u8]| <[u8; 32]>::try_from(bytes).unwrap_or([0xff; 32]);
        let chain = all.iter().map(|e| {
            let fields = AuditFields {
                seq: e.seq,
                at_unix_ms: e.at_unix_ms,
                actor: &e.actor,
                action: &e.action,
                tenant: &e.tenant,
                reason: &e.reason,
                result: &e.result,
                detail: &e.detail,
            };
            (fields, hash(&e.prev_hash), hash(&e.hash))
        });
        Ok(match verify_chain(chain) {
            Ok(entries) => AuditVerification { entries, broken: None },
            Err(broken) => AuditVerification {
                entries: all.len() as u64,
                broken: Some(broken.to_string()),
            },
        })
    }
}
