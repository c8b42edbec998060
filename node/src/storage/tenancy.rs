//! Tenants and API keys in the state machine: how they are stored, read, and
//! changed by applied commands. Applying checks every write against the
//! tenancy state at its log position, so a revoked key or a deleted tenant
//! stops working on every replica at the same index.

use std::collections::HashMap;
use std::fmt;
use std::io;

use rocksdb::{DB, Direction, IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};

use super::columns::{CF_SM, cf, decode_err, io_err};
use super::keys::{
    API_KEY_TAG, TENANT_TAG, api_key_key, prefix_end, retention_key, staff_key_key, tenant_key, tenant_of_key,
    tenant_prefix,
};
use crate::model::command::{ApiKeyRole, CommandResponse, Mutation, Refusal, TenancyChange, WrappedDataKey};

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub created_at_ms: i64,
    pub deleted_at_ms: Option<i64>,
    /// Wrapped data keys, oldest first; the last seals new writes. Empty once deleted.
    pub data_keys: Vec<WrappedDataKey>,
    /// Values sealed with the newest data key since it was added.
    pub sealed_with_current: u64,
}

impl TenantRecord {
    /// Whether the tenant exists and is not deleted.
    pub fn is_live(&self) -> bool {
        self.deleted_at_ms.is_none()
    }

    /// The data key new writes are sealed with.
    pub fn current_data_key(&self) -> Option<&WrappedDataKey> {
        self.data_keys.last()
    }
}

/// An API key as stored: a hash of its secret, never the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub key_id: String,
    pub tenant: String,
    pub role: ApiKeyRole,
    pub secret_hash: [u8; 32],
    pub label: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

impl fmt::Debug for ApiKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyRecord")
            .field("key_id", &self.key_id)
            .field("tenant", &self.tenant)
            .field("role", &self.role)
            .field("revoked_at_ms", &self.revoked_at_ms)
            .finish_non_exhaustive()
    }
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> io::Result<T> {
    postcard::from_bytes(bytes).map_err(decode_err)
}

fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(decode_err)
}

/// Reads one stored tenant.
pub fn read_tenant(db: &DB, tenant: &str) -> io::Result<Option<TenantRecord>> {
    db.get_cf(cf(db, CF_SM), tenant_key(tenant))
        .map_err(io_err)?
        .map(|bytes| decode(&bytes))
        .transpose()
}

/// Reads every stored tenant, in id order.
pub fn read_tenants(db: &DB) -> io::Result<Vec<(String, TenantRecord)>> {
    scan(db, TENANT_TAG, |key, value| {
        Ok((tenant_of_key(key).map_err(io::Error::other)?, decode(value)?))
    })
}

/// Reads one stored API key.
pub fn read_api_key(db: &DB, key_id: &str) -> io::Result<Option<ApiKeyRecord>> {
    db.get_cf(cf(db, CF_SM), api_key_key(key_id))
        .map_err(io_err)?
        .map(|bytes| decode(&bytes))
        .transpose()
}

/// The operator who issued API key `key_id`; `None` for a key the tenant's
/// own admin issued.
pub fn read_staff_issuer(db: &DB, key_id: &str) -> io::Result<Option<String>> {
    db.get_cf(cf(db, CF_SM), staff_key_key(key_id))
        .map_err(io_err)?
        .map(|bytes| decode(&bytes))
        .transpose()
}

/// Reads every stored API key of `tenant`.
pub fn read_api_keys(db: &DB, tenant: &str) -> io::Result<Vec<ApiKeyRecord>> {
    let all = scan(db, API_KEY_TAG, |_, value| decode::<ApiKeyRecord>(value))?;
    Ok(all.into_iter().filter(|k| k.tenant == tenant).collect())
}

fn scan<T>(db: &DB, tag: u8, mut each: impl FnMut(&[u8], &[u8]) -> io::Result<T>) -> io::Result<Vec<T>> {
    let mut out = Vec::new();
    for item in db.iterator_cf(cf(db, CF_SM), IteratorMode::From(&[tag], Direction::Forward)) {
        let (key, value) = item.map_err(io_err)?;
        if key.first() != Some(&tag) {
            break;
        }
        out.push(each(&key, &value)?);
    }
    Ok(out)
}

/// Tenancy entries changed earlier in the batch being applied.
#[derive(Default)]
pub(crate) struct Overlay {
    entries: HashMap<Vec<u8>, Vec<u8>>,
}

impl Overlay {
    fn get<T: for<'de> Deserialize<'de>>(&self, db: &DB, key: &[u8]) -> io::Result<Option<T>> {
        match self.entries.get(key) {
            Some(bytes) => decode(bytes).map(Some),
            None => db
                .get_cf(cf(db, CF_SM), key)
                .map_err(io_err)?
                .map(|b| decode(&b))
                .transpose(),
        }
    }

    fn put<T: Serialize>(&mut self, db: &DB, batch: &mut WriteBatch, key: Vec<u8>, value: &T) -> io::Result<()> {
        let bytes = encode(value)?;
        batch.put_cf(cf(db, CF_SM), &key, &bytes);
        self.entries.insert(key, bytes);
        Ok(())
    }

    /// API keys of `tenant`, stored or changed in this batch.
    fn api_keys_of(&self, db: &DB, tenant: &str) -> io::Result<Vec<ApiKeyRecord>> {
        let mut keys: HashMap<String, ApiKeyRecord> = read_api_keys(db, tenant)?
            .into_iter()
            .map(|k| (k.key_id.clone(), k))
            .collect();
        for (key, bytes) in &self.entries {
            if key.first() == Some(&API_KEY_TAG) {
                let record: ApiKeyRecord = decode(bytes)?;
                if record.tenant == tenant {
                    keys.insert(record.key_id.clone(), record);
                }
            }
        }
        Ok(keys.into_values().collect())
    }
}

/// Where and when a command applies.
pub(crate) struct ApplyAt<'a> {
    pub db: &'a DB,
    pub index: u64,
    pub at_ms: i64,
}

fn applied(at: &ApplyAt<'_>) -> CommandResponse {
    CommandResponse::Applied {
        version: at.index,
        updated_at_ms: at.at_ms,
        existed: Vec::new(),
    }
}

/// Checks a record write against the tenancy state: a deleted tenant takes no
/// writes, and a write made with an API key needs that key still valid for
/// it. Counts the values the write seals with the tenant's current data key.
pub(crate) fn admit_write(
    at: &ApplyAt<'_>,
    overlay: &mut Overlay,
    batch: &mut WriteBatch,
    tenant: &str,
    api_key: Option<&str>,
    mutations: &[Mutation],
) -> io::Result<Option<Refusal>> {
    let record: Option<TenantRecord> = overlay.get(at.db, &tenant_key(tenant))?;
    if record.as_ref().is_some_and(|r| !r.is_live()) {
        return Ok(Some(Refusal::NoSuchTenant));
    }
    if let Some(key_id) = api_key {
        let key: Option<ApiKeyRecord> = overlay.get(at.db, &api_key_key(key_id))?;
        let valid = key.is_some_and(|k| k.revoked_at_ms.is_none() && k.tenant == tenant && k.role.may_write());
        if !valid {
            return Ok(Some(Refusal::ApiKeyRevoked));
        }
    }
    if let Some(mut record) = record {
        let sealed = mutations.iter().filter(|m| m.value().is_some()).count() as u64;
        if sealed > 0 {
            record.sealed_with_current = record.sealed_with_current.saturating_add(sealed);
            overlay.put(at.db, batch, tenant_key(tenant), &record)?;
        }
    }
    Ok(None)
}

/// Applies one tenancy change. A change made with a tenant's own admin key
/// (`issuer`) needs that key still valid when it applies, so a key revoked
/// a moment earlier cannot mint or revoke keys. `deleted_records` learns the
/// record key prefix a deleted tenant's records lived under.
pub(crate) fn apply_change(
    at: &ApplyAt<'_>,
    overlay: &mut Overlay,
    batch: &mut WriteBatch,
    tenant: &str,
    issuer: Option<&str>,
    change: TenancyChange,
    deleted_records: &mut Vec<Vec<u8>>,
) -> io::Result<CommandResponse> {
    let refused = |refusal| Ok(CommandResponse::Refused(refusal));
    if let Some(issuer) = issuer {
        let key: Option<ApiKeyRecord> = overlay.get(at.db, &api_key_key(issuer))?;
        let valid = key.is_some_and(|k| k.revoked_at_ms.is_none() && k.tenant == tenant && k.role == ApiKeyRole::Admin);
        if !valid {
            return refused(Refusal::ApiKeyRevoked);
        }
    }
    let key = tenant_key(tenant);
    let current: Option<TenantRecord> = overlay.get(at.db, &key)?;
    // A key an operator issued is a staff key. One issued with a tenant's
    // admin key is the tenant's own, whoever issued that admin key.
    let (change, staff) = match change {
        TenancyChange::IssueStaffApiKey {
            key_id,
            role,
            secret_hash,
            label,
            operator,
        } => {
            let change = TenancyChange::IssueApiKey {
                key_id,
                role,
                secret_hash,
                label,
            };
            (change, Some(operator))
        }
        other => (other, None),
    };
    match change {
        TenancyChange::CreateTenant { data_key } => {
            // A deleted tenant's id may be taken again: its old keys stay revoked
            // and its old data keys stay destroyed.
            if current.as_ref().is_some_and(TenantRecord::is_live) {
                return refused(Refusal::TenantExists);
            }
            let record = TenantRecord {
                created_at_ms: at.at_ms,
                deleted_at_ms: None,
                data_keys: vec![data_key],
                sealed_with_current: 0,
            };
            overlay.put(at.db, batch, key, &record)?;
        }
        TenancyChange::DeleteTenant => {
            let Some(mut record) = current.filter(TenantRecord::is_live) else {
                return refused(Refusal::NoSuchTenant);
            };
            for mut api_key in overlay.api_keys_of(at.db, tenant)? {
                if api_key.revoked_at_ms.is_none() {
                    api_key.revoked_at_ms = Some(at.at_ms);
                    overlay.put(at.db, batch, api_key_key(&api_key.key_id), &api_key)?;
                }
            }
            let records = tenant_prefix(tenant);
            let end = prefix_end(&records).expect("a record prefix has a bound");
            batch.delete_range_cf(cf(at.db, CF_SM), &records, &end);
            batch.delete_cf(cf(at.db, CF_SM), retention_key(tenant));
            deleted_records.push(records);
            // Crypto-shredding: without its data keys no copy of the tenant's values decrypts.
            record.data_keys.clear();
            record.deleted_at_ms = Some(at.at_ms);
            overlay.put(at.db, batch, key, &record)?;
        }
        TenancyChange::IssueApiKey {
            key_id,
            role,
            secret_hash,
            label,
        } => {
            if !current.as_ref().is_some_and(TenantRecord::is_live) {
                return refused(Refusal::NoSuchTenant);
            }
            let id_key = api_key_key(&key_id);
            if overlay.get::<ApiKeyRecord>(at.db, &id_key)?.is_some() {
                return refused(Refusal::ApiKeyExists);
            }
            let record = ApiKeyRecord {
                key_id,
                tenant: tenant.to_string(),
                role,
                secret_hash,
                label,
                created_at_ms: at.at_ms,
                revoked_at_ms: None,
            };
            if let Some(operator) = staff {
                overlay.put(at.db, batch, staff_key_key(&record.key_id), &operator)?;
            }
            overlay.put(at.db, batch, id_key, &record)?;
        }
        TenancyChange::RevokeApiKey { key_id } => {
            let id_key = api_key_key(&key_id);
            let Some(mut record) = overlay
                .get::<ApiKeyRecord>(at.db, &id_key)?
                .filter(|k| k.tenant == tenant)
            else {
                return refused(Refusal::NoSuchApiKey);
            };
            if record.revoked_at_ms.is_none() {
                record.revoked_at_ms = Some(at.at_ms);
                overlay.put(at.db, batch, id_key, &record)?;
            }
        }
        TenancyChange::AddDataKey { data_key } => {
            let Some(mut record) = current.filter(TenantRecord::is_live) else {
                return refused(Refusal::NoSuchTenant);
            };
            let next = record.current_data_key().map_or(1, |k| k.version + 1);
            if data_key.version != next {
                return refused(Refusal::DataKeyMismatch);
            }
            record.data_keys.push(data_key);
            record.sealed_with_current = 0;
            overlay.put(at.db, batch, key, &record)?;
        }
        TenancyChange::RewrapDataKeys { data_keys } => {
            let Some(mut record) = current.filter(TenantRecord::is_live) else {
                return refused(Refusal::NoSuchTenant);
            };
            let versions = |keys: &[WrappedDataKey]| keys.iter().map(|k| k.version).collect::<Vec<_>>();
            if versions(&data_keys) != versions(&record.data_keys) {
                return refused(Refusal::DataKeyMismatch);
            }
            record.data_keys = data_keys;
            overlay.put(at.db, batch, key, &record)?;
        }
        TenancyChange::IssueStaffApiKey { .. } => unreachable!("made an IssueApiKey above"),
        TenancyChange::SetRetention { retention_ms } => {
            if !current.as_ref().is_some_and(TenantRecord::is_live) {
                return refused(Refusal::NoSuchTenant);
            }
            let window = retention_key(tenant);
            match retention_ms {
                Some(ms) => batch.put_cf(cf(at.db, CF_SM), window, ms.to_be_bytes()),
                None => batch.delete_cf(cf(at.db, CF_SM), window),
            }
        }
    }
    Ok(applied(at))
}
