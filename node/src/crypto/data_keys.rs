//! Tenants' data keys in memory: unwrapped on first use through the key
//! provider and cached by tenant and version. New data keys are made here
//! from the system random source and leave only wrapped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ring::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use super::{CryptoError, envelope};
use super::{KEY_BYTES, KeyProvider};
use crate::model::command::WrappedDataKey;
use crate::storage::tenancy::TenantRecord;

/// Most values sealed under one data key before a new one is made: well
/// under the 2^32 random-nonce bound for AES-GCM.
pub const MAX_SEALS_PER_DATA_KEY: u64 = 1 << 31;

/// A tenant's unwrapped data keys, each with the wrapped form it came from.
type TenantKeys = Vec<(WrappedDataKey, Arc<LessSafeKey>)>;

/// Unwrapped data keys, by tenant and by the exact wrapped form they came
/// from: a tenant deleted and created again (new keys, same versions) never
/// finds its predecessor's keys, and keys no longer in a tenant's record are
/// dropped on the next miss.
pub struct DataKeys {
    provider: Arc<dyn KeyProvider>,
    cache: Mutex<HashMap<String, TenantKeys>>,
    random: SystemRandom,
}

impl DataKeys {
    pub fn new(provider: Arc<dyn KeyProvider>) -> Self {
        Self {
            provider,
            cache: Mutex::default(),
            random: SystemRandom::new(),
        }
    }

    /// The key provider.
    pub fn provider(&self) -> &dyn KeyProvider {
        &*self.provider
    }

    /// The key provider, shared (backups seal their objects with it).
    pub fn shared_provider(&self) -> Arc<dyn KeyProvider> {
        self.provider.clone()
    }

    /// A fresh data key `version` for `tenant`, wrapped.
    pub fn new_data_key(&self, tenant: &str, version: u32) -> Result<WrappedDataKey, CryptoError> {
        let mut key = [0u8; KEY_BYTES];
        self.random.fill(&mut key).map_err(|_| CryptoError::Random)?;
        let wrapped = self.provider.wrap(tenant, version, &key);
        key.fill(0);
        wrapped
    }

    fn key(&self, tenant: &str, record: &TenantRecord, version: u32) -> Result<Arc<LessSafeKey>, CryptoError> {
        let wrapped = record
            .data_keys
            .iter()
            .find(|k| k.version == version)
            .ok_or(CryptoError::UnknownDataKey(version))?;
        if let Some(key) = self.cached(tenant, wrapped) {
            return Ok(key);
        }
        // Unwrapped without the cache locked: a key provider may take a network
        // round trip (KMS), which must not hold up every other tenant's reads and writes.
        let mut bytes = self.provider.unwrap(tenant, wrapped)?;
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| CryptoError::Malformed);
        bytes.fill(0);
        let key = Arc::new(LessSafeKey::new(unbound?));
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let known = cache.entry(tenant.to_string()).or_default();
        // Forget keys the tenant no longer has (deleted, replaced or rewrapped).
        known.retain(|(w, _)| record.data_keys.contains(w));
        if let Some((_, raced)) = known.iter().find(|(w, _)| w == wrapped) {
            return Ok(raced.clone());
        }
        known.push((wrapped.clone(), key.clone()));
        Ok(key)
    }

    fn cached(&self, tenant: &str, wrapped: &WrappedDataKey) -> Option<Arc<LessSafeKey>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let known = cache.get(tenant)?;
        known.iter().find(|(w, _)| w == wrapped).map(|(_, key)| key.clone())
    }

    /// Seals a value of `key` with the tenant's current data key.
    pub fn seal(
        &self,
        tenant: &str,
        record: &TenantRecord,
        key: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let version = record.current_data_key().ok_or(CryptoError::UnknownDataKey(0))?.version;
        let data_key = self.key(tenant, record, version)?;
        envelope::seal(&data_key, version, tenant, key, plaintext, &self.random)
    }

    /// Opens a stored value of `key`.
    pub fn open(&self, tenant: &str, record: &TenantRecord, key: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let version = envelope::sealed_version(sealed)?;
        let data_key = self.key(tenant, record, version)?;
        envelope::open(&data_key, tenant, key, sealed)
    }

    /// The tenant's data keys wrapped again with the current master key.
    pub fn rewrap(&self, tenant: &str, record: &TenantRecord) -> Result<Vec<WrappedDataKey>, CryptoError> {
        record
            .data_keys
            .iter()
            .map(|wrapped| {
                let mut key = self.provider.unwrap(tenant, wrapped)?;
                let rewrapped = self.provider.wrap(tenant, wrapped.version, &key);
                key.fill(0);
                rewrapped
            })
            .collect()
    }

    /// Checks that every data key of every tenant unwraps: a node started with
    /// the wrong master key finds out before it serves.
    pub fn check_all(&self, tenants: &[(String, TenantRecord)]) -> Result<(), CryptoError> {
        for (tenant, record) in tenants {
            for wrapped in &record.data_keys {
                self.key(tenant, record, wrapped.version)?;
            }
        }
        Ok(())
    }

    /// Drops the cached keys of a tenant (deleted, or its keys rewrapped).
    pub fn forget(&self, tenant: &str) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.remove(tenant);
    }
}
