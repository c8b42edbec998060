//! Tenants' data keys in memory: unwrapped on first use through the key
//! provider and cached by tenant and version. New data keys are made here
//! from the system random source and leave only wrapped.
//!
//! A key provider may wait seconds on the network (KMS). Async callers
//! first make sure a key is cached with `ready`, which unwraps on the
//! blocking pool, never on the runtime that openraft shares, and only once
//! per key: concurrent misses for one key wait on the same fetch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use ring::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use super::{CryptoError, envelope};
use super::{KEY_BYTES, KeyProvider};
use crate::model::command::WrappedDataKey;
use crate::storage::tenancy::TenantRecord;

/// Most values sealed under one data key before a new one is made: well
/// under the 2^32 random-nonce bound for AES-GCM.
pub const MAX_SEALS_PER_DATA_KEY: u64 = 1 << 31;

/// One data key: unwrapped once, by whichever caller comes first.
type Slot = Arc<OnceCell<Arc<LessSafeKey>>>;

/// A tenant's data keys, each with the wrapped form it came from.
type TenantKeys = Vec<(WrappedDataKey, Slot)>;

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

    fn wrapped(record: &TenantRecord, version: u32) -> Result<&WrappedDataKey, CryptoError> {
        record
            .data_keys
            .iter()
            .find(|k| k.version == version)
            .ok_or(CryptoError::UnknownDataKey(version))
    }

    /// The slot of one wrapped key of `tenant`, made empty if new.
    fn slot(&self, tenant: &str, record: &TenantRecord, wrapped: &WrappedDataKey) -> Slot {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let known = cache.entry(tenant.to_string()).or_default();
        if let Some((_, slot)) = known.iter().find(|(w, _)| w == wrapped) {
            return slot.clone();
        }
        // Forget keys the tenant no longer has (deleted, replaced or rewrapped).
        known.retain(|(w, _)| record.data_keys.contains(w));
        let slot = Slot::default();
        known.push((wrapped.clone(), slot.clone()));
        slot
    }

    fn unwrap_with(
        provider: &dyn KeyProvider,
        tenant: &str,
        wrapped: &WrappedDataKey,
    ) -> Result<Arc<LessSafeKey>, CryptoError> {
        let mut bytes = provider.unwrap(tenant, wrapped)?;
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| CryptoError::Malformed);
        bytes.fill(0);
        Ok(Arc::new(LessSafeKey::new(unbound?)))
    }

    /// Makes sure data key `version` of `tenant` is unwrapped and cached,
    /// unwrapping it on the blocking pool; concurrent callers for one key
    /// share one unwrap. `seal` and `open` then find it without waiting.
    pub async fn ready(&self, tenant: &str, record: &TenantRecord, version: u32) -> Result<(), CryptoError> {
        let wrapped = Self::wrapped(record, version)?;
        let slot = self.slot(tenant, record, wrapped);
        slot.get_or_try_init(|| {
            let provider = self.provider.clone();
            let (tenant, wrapped) = (tenant.to_string(), wrapped.clone());
            async move {
                tokio::task::spawn_blocking(move || Self::unwrap_with(&*provider, &tenant, &wrapped))
                    .await
                    .unwrap_or(Err(CryptoError::Interrupted))
            }
        })
        .await?;
        Ok(())
    }

    /// A data key, unwrapped here on a miss: callers on the async runtime
    /// call `ready` first, so this waits only on a blocking thread.
    fn key(&self, tenant: &str, record: &TenantRecord, version: u32) -> Result<Arc<LessSafeKey>, CryptoError> {
        let wrapped = Self::wrapped(record, version)?;
        let slot = self.slot(tenant, record, wrapped);
        if let Some(key) = slot.get() {
            return Ok(key.clone());
        }
        // Unwrapped without the cache locked: a key provider may take a network
        // round trip (KMS), which must not hold up every other tenant's reads and writes.
        let key = Self::unwrap_with(&*self.provider, tenant, wrapped)?;
        // A racer may have set it meanwhile: both are the same key.
        let _ = slot.set(key.clone());
        Ok(key)
    }

    /// `new_data_key` on the blocking pool: wrapping may wait on the key provider.
    pub async fn make_data_key(self: &Arc<Self>, tenant: &str, version: u32) -> Result<WrappedDataKey, CryptoError> {
        let (keys, tenant) = (self.clone(), tenant.to_string());
        tokio::task::spawn_blocking(move || keys.new_data_key(&tenant, version))
            .await
            .unwrap_or(Err(CryptoError::Interrupted))
    }

    /// `rewrap` on the blocking pool.
    pub async fn rewrap_off_runtime(
        self: &Arc<Self>,
        tenant: &str,
        record: &TenantRecord,
    ) -> Result<Vec<WrappedDataKey>, CryptoError> {
        let (keys, tenant, record) = (self.clone(), tenant.to_string(), record.clone());
        tokio::task::spawn_blocking(move || keys.rewrap(&tenant, &record))
            .await
            .unwrap_or(Err(CryptoError::Interrupted))
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::crypto::MasterKeyFile;

    /// A key provider whose unwrap blocks its thread, as a KMS call does.
    struct SlowProvider {
        inner: MasterKeyFile,
        unwraps: AtomicUsize,
    }

    const UNWRAP_DELAY: Duration = Duration::from_millis(300);

    impl KeyProvider for SlowProvider {
        fn current_key_id(&self) -> &str {
            self.inner.current_key_id()
        }
        fn wrap(&self, tenant: &str, version: u32, data_key: &[u8; KEY_BYTES]) -> Result<WrappedDataKey, CryptoError> {
            self.inner.wrap(tenant, version, data_key)
        }
        fn unwrap(&self, tenant: &str, wrapped: &WrappedDataKey) -> Result<[u8; KEY_BYTES], CryptoError> {
            self.unwraps.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(UNWRAP_DELAY);
            self.inner.unwrap(tenant, wrapped)
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_misses_share_one_unwrap_that_never_blocks_the_runtime() {
        let provider = Arc::new(SlowProvider {
            inner: MasterKeyFile::parse(
                "k1 0000000000000000000000000000000000000000000000000000000000000001",
                "test",
            )
            .unwrap(),
            unwraps: AtomicUsize::new(0),
        });
        let keys = Arc::new(DataKeys::new(provider.clone()));
        let record = TenantRecord {
            created_at_ms: 1,
            deleted_at_ms: None,
            data_keys: vec![keys.make_data_key("acme", 1).await.unwrap()],
            sealed_with_current: 0,
        };
        // The only worker thread keeps running other tasks while the key is fetched.
        let ticks = Arc::new(AtomicUsize::new(0));
        let ticker = tokio::spawn({
            let ticks = ticks.clone();
            async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    ticks.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        let misses = (0..8).map(|_| keys.ready("acme", &record, 1));
        for ready in futures::future::join_all(misses).await {
            ready.unwrap();
        }
        ticker.abort();
        assert_eq!(provider.unwraps.load(Ordering::SeqCst), 1, "one fetch for eight misses");
        let ticked = ticks.load(Ordering::SeqCst);
        assert!(
            ticked >= 10,
            "the runtime ran only {ticked} ticks during a {UNWRAP_DELAY:?} unwrap"
        );
        let sealed = keys.seal("acme", &record, "k", b"v").unwrap();
        assert_eq!(keys.open("acme", &record, "k", &sealed).unwrap(), b"v");
        assert_eq!(
            provider.unwraps.load(Ordering::SeqCst),
            1,
            "sealing and opening find it cached"
        );
    }
}
