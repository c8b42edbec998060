//! Encryption at rest: record values are sealed with AES-256-GCM under a
//! per-tenant data key before they enter the Raft log, so the log, the state
//! machine, snapshots and backups hold only ciphertext. Data keys are stored
//! wrapped by a master key that never leaves the key provider: a local key
//! file, or AWS KMS (the `aws-kms` feature).

pub mod data_keys;
pub mod envelope;
#[cfg(feature = "aws-kms")]
pub mod kms;
pub mod master;
pub mod provider;

use crate::model::command::WrappedDataKey;

pub use data_keys::DataKeys;
#[cfg(feature = "aws-kms")]
pub use kms::KmsKeyProvider;
pub use master::MasterKeyFile;
pub use provider::load_provider;

/// Bytes of a data key or master key: AES-256.
pub const KEY_BYTES: usize = 32;

/// Wraps and unwraps data keys with master keys it never reveals.
pub trait KeyProvider: Send + Sync + 'static {
    /// Id of the master key new data keys are wrapped with.
    fn current_key_id(&self) -> &str;
    /// Wraps `data_key` (version `version` of `tenant`) with the current master key.
    fn wrap(&self, tenant: &str, version: u32, data_key: &[u8; KEY_BYTES]) -> Result<WrappedDataKey, CryptoError>;
    /// Unwraps a data key of `tenant`.
    fn unwrap(&self, tenant: &str, wrapped: &WrappedDataKey) -> Result<[u8; KEY_BYTES], CryptoError>;
}

/// Why sealing, opening, wrapping or unwrapping failed.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the stored value failed authentication: it was altered or moved from another record")]
    Tampered,
    #[error("the stored value is not in a format this node reads")]
    Malformed,
    #[error("data key version {0} of this tenant is not available")]
    UnknownDataKey(u32),
    #[error("master key '{0}' is not configured on this node")]
    UnknownMasterKey(String),
    #[error(
        "data key version {version} of tenant '{tenant}' does not unwrap with master key '{master_key_id}': wrong master key?"
    )]
    WrongMasterKey {
        tenant: String,
        version: u32,
        master_key_id: String,
    },
    #[error("the system random source failed")]
    Random,
    #[error("a call to the key provider was interrupted")]
    Interrupted,
    #[error(
        "encryption at rest needs a master key: set encryption.master_key_file (--master-key-file), the \
         SAFEKEEP_MASTER_KEY environment variable, or encryption.kms_key_id"
    )]
    NoMasterKey,
    #[error("master key file {path}: {reason}")]
    MasterKeyFile { path: String, reason: String },
    #[error("master keys come from {0}: set exactly one source of master keys")]
    ConflictingMasterKeys(String),
    #[error(
        "encryption.kms_key_id is set but this safekeep-node was built without AWS KMS support: \
         build it with `--features aws-kms`"
    )]
    KmsNotBuilt,
    #[error("AWS KMS key '{key_id}' cannot wrap data keys: {reason}")]
    KmsKeyUnusable { key_id: String, reason: String },
    #[error("AWS KMS {operation} with key '{key_id}' failed: {reason}")]
    Kms {
        operation: &'static str,
        key_id: String,
        reason: String,
    },
    /// A failure that may pass: throttling, KMS's own errors, an endpoint not reachable right now.
    #[error("AWS KMS {operation} with key '{key_id}' failed, for now: {reason}")]
    KmsUnavailable {
        operation: &'static str,
        key_id: String,
        reason: String,
    },
    #[error("AWS KMS {operation} with key '{key_id}' did not answer within {waited_ms} ms")]
    KmsTimeout {
        operation: &'static str,
        key_id: String,
        waited_ms: u64,
    },
}
