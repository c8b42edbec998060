//! Master key in AWS KMS (the `aws-kms` feature): data keys are wrapped with
//! KMS `Encrypt` and unwrapped with `Decrypt` under the configured symmetric
//! key, so the master key never leaves KMS. Each call binds an encryption
//! context of the tenant, the data key version and a fixed purpose: a wrapped
//! key copied to another tenant or version does not unwrap. A wrapped key
//! records the key ARN KMS reports, so a key switch followed by `tenant
//! rewrap-keys` works (old keys still decrypt with their own ARN) and KMS's
//! automatic rotation, which keeps the ARN, needs nothing from us.
//!
//! Why a thread of its own: `KeyProvider` is synchronous, and its callers are
//! async gRPC handlers and node start-up (never the Raft state machine), which
//! may run on a current-thread runtime where blocking on the caller's own
//! runtime would deadlock. The SDK therefore runs on a one-thread tokio runtime
//! owned by a dedicated thread; a call is spawned there and the caller blocks on
//! a channel for at most `KMS_CALL_TIMEOUT` plus `KMS_WAIT_MARGIN`. Blocking a
//! caller's worker that long is acceptable because unwrapped data keys are
//! cached (`DataKeys`): KMS is called at start-up, when a tenant is created or
//! its keys rotated or rewrapped, and on a node's first use of a new data key
//! version. Failures are typed `CryptoError`s; nothing here panics, and a
//! panic inside the SDK surfaces as an error because its task's reply is lost.
//!
//! Credentials come from the AWS default chain (environment, profile files,
//! web identity, ECS, EC2 instance profile). The node's role needs
//! `kms:DescribeKey`, `kms:Encrypt` and `kms:Decrypt` on the key (and
//! `kms:Decrypt` on previous keys until their data keys are rewrapped).
//! TLS is rustls with ring, the stack the rest of the node uses.

use std::collections::HashMap;
use std::future::Future;
use std::sync::mpsc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_kms::Client;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

use super::CryptoError;
use super::{KEY_BYTES, KeyProvider};
use crate::config::EncryptionSettings;
use crate::model::command::WrappedDataKey;
use crate::model::limits::MAX_WRAPPED_KEY_BYTES;

/// Longest one KMS operation may take, all retries included (the SDK's operation timeout).
pub const KMS_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest one attempt of a KMS operation may take.
pub const KMS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest a TCP and TLS connection to KMS may take to open.
pub const KMS_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts per KMS operation (the first one included), with the SDK's standard backoff.
pub const KMS_MAX_ATTEMPTS: u32 = 3;
/// How much longer than `KMS_CALL_TIMEOUT` a caller waits before giving up on its own.
pub const KMS_WAIT_MARGIN: Duration = Duration::from_secs(2);
/// Longest the KMS thread may take to start and load the AWS configuration.
pub const KMS_SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Encryption context key naming the purpose of a wrapped key, and its value.
const CONTEXT_PURPOSE: (&str, &str) = ("purpose", "safekeep/data-key/v1");
/// Encryption context key naming the tenant a data key belongs to.
const CONTEXT_TENANT: &str = "tenant";
/// Encryption context key naming the data key version.
const CONTEXT_VERSION: &str = "version";
/// Name of the thread that runs the SDK.
const THREAD_NAME: &str = "safekeep-kms";

/// Wraps data keys with an AWS KMS key.
pub struct KmsKeyProvider {
    /// ARN of the configured key, resolved once at start (an alias is followed then).
    key_arn: String,
    client: Client,
    runtime: tokio::runtime::Handle,
    /// Dropped with the provider, which ends the KMS thread and its runtime.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl std::fmt::Debug for KmsKeyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsKeyProvider")
            .field("key_arn", &self.key_arn)
            .finish()
    }
}

fn failed(operation: &'static str, key_id: &str, reason: impl Into<String>) -> CryptoError {
    CryptoError::Kms {
        operation,
        key_id: key_id.to_string(),
        reason: reason.into(),
    }
}

/// KMS error codes for failures that pass by themselves: throttling, KMS's
/// own faults and timeouts, a custom key store that is out of reach.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "LimitExceededException",
    "KMSInternalException",
    "DependencyTimeoutException",
    "KeyUnavailableException",
    "RequestTimeoutException",
    "ServiceUnavailableException",
];

/// Whether another attempt later may succeed: throttling, KMS's own faults,
/// timeouts, and an endpoint that did not answer; not a refusal about the
/// key, the request or the credentials.
fn is_transient<E: ProvideErrorMetadata>(error: &SdkError<E>) -> bool {
    match error {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::DispatchFailure(failure) => !failure.is_user(),
        SdkError::ServiceError(service) => transient_answer(service.raw().status().as_u16(), service.err().code()),
        _ => false,
    }
}

/// Whether an answer from KMS with this HTTP status and error code may pass by itself.
fn transient_answer(http_status: u16, code: Option<&str>) -> bool {
    (500..600).contains(&http_status)
        || http_status == HTTP_TOO_MANY_REQUESTS
        || code.is_some_and(|code| TRANSIENT_CODES.contains(&code))
}

/// HTTP status of a throttled request.
const HTTP_TOO_MANY_REQUESTS: u16 = 429;

/// A failed KMS call as a typed error: one that may pass is `KmsUnavailable`.
fn call_failed<E>(operation: &'static str, key_id: &str, error: &SdkError<E>) -> CryptoError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let why = reason(error);
    if is_transient(error) {
        CryptoError::KmsUnavailable {
            operation,
            key_id: key_id.to_string(),
            reason: why,
        }
    } else {
        failed(operation, key_id, why)
    }
}

/// The service's error code and message when KMS answered, else the chain of causes.
fn reason<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if let Some(service) = error.as_service_error()
        && let Some(code) = service.code()
    {
        return match service.message() {
            Some(message) => format!("{code}: {message}"),
            None => code.to_string(),
        };
    }
    let mut chain = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        chain.push_str(": ");
        chain.push_str(&inner.to_string());
        cause = inner.source();
    }
    chain
}

/// The region of a key or alias ARN (`arn:PARTITION:kms:REGION:ACCOUNT:...`).
fn arn_region(key_id: &str) -> Option<&str> {
    let mut parts = key_id.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("arn"), Some(_), Some("kms"), Some(region)) if !region.is_empty() => Some(region),
        _ => None,
    }
}

fn encryption_context(tenant: &str, version: u32) -> HashMap<String, String> {
    HashMap::from([
        (CONTEXT_TENANT.to_string(), tenant.to_string()),
        (CONTEXT_VERSION.to_string(), version.to_string()),
        (CONTEXT_PURPOSE.0.to_string(), CONTEXT_PURPOSE.1.to_string()),
    ])
}

/// Starts the KMS thread and its one-thread runtime.
fn start_thread() -> Result<(tokio::runtime::Handle, tokio::sync::oneshot::Sender<()>), String> {
    let (ready_tx, ready_rx) = mpsc::sync_channel(1);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(runtime.handle().clone()));
            // Runs spawned KMS calls until the provider is dropped.
            runtime.block_on(async move {
                let _ = stop_rx.await;
            });
        })
        .map_err(|e| format!("cannot start the {THREAD_NAME} thread: {e}"))?;
    let handle = ready_rx
        .recv_timeout(KMS_SETUP_TIMEOUT)
        .map_err(|e| format!("the {THREAD_NAME} thread did not start: {e}"))??;
    Ok((handle, stop_tx))
}

/// Runs `work` on the KMS runtime and waits for it, bounded by `timeout` plus `KMS_WAIT_MARGIN`.
fn run_on<T, F>(
    runtime: &tokio::runtime::Handle,
    operation: &'static str,
    key_id: &str,
    timeout: Duration,
    work: F,
) -> Result<T, CryptoError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, CryptoError>> + Send + 'static,
{
    let (reply_tx, reply_rx) = mpsc::sync_channel(1);
    let timed_out = CryptoError::KmsTimeout {
        operation,
        key_id: key_id.to_string(),
        waited_ms: timeout.as_millis() as u64,
    };
    runtime.spawn(async move {
        let answer = tokio::time::timeout(timeout, work).await.unwrap_or(Err(timed_out));
        let _ = reply_tx.send(answer);
    });
    let waited = timeout + KMS_WAIT_MARGIN;
    match reply_rx.recv_timeout(waited) {
        Ok(answer) => answer,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(CryptoError::KmsTimeout {
            operation,
            key_id: key_id.to_string(),
            waited_ms: waited.as_millis() as u64,
        }),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err(failed(operation, key_id, "the KMS client stopped before answering"))
        }
    }
}

/// Loads the AWS configuration (default credential chain) and builds a KMS client.
async fn build_client(key_id: String, region: Option<String>, endpoint: Option<String>) -> Result<Client, CryptoError> {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let timeouts = TimeoutConfig::builder()
        .operation_timeout(KMS_CALL_TIMEOUT)
        .operation_attempt_timeout(KMS_ATTEMPT_TIMEOUT)
        .connect_timeout(KMS_CONNECT_TIMEOUT)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard().with_max_attempts(KMS_MAX_ATTEMPTS));
    if let Some(region) = region.or_else(|| arn_region(&key_id).map(str::to_string)) {
        loader = loader.region(Region::new(region));
    }
    let shared = loader.load().await;
    if shared.region().is_none() {
        return Err(CryptoError::KmsKeyUnusable {
            key_id,
            reason: "no AWS region: set encryption.kms_region, use a key ARN, or set AWS_REGION".into(),
        });
    }
    let mut config = aws_sdk_kms::config::Builder::from(&shared);
    if let Some(endpoint) = endpoint {
        config = config.endpoint_url(endpoint);
    }
    Ok(Client::from_conf(config.build()))
}

/// Resolves `key_id` (ARN, key id or alias) to the key's ARN and checks that it can wrap data keys.
async fn describe(client: Client, key_id: String) -> Result<String, CryptoError> {
    let unusable = |reason: String| CryptoError::KmsKeyUnusable {
        key_id: key_id.clone(),
        reason,
    };
    let described = client
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .map_err(|e| unusable(reason(&e)))?;
    let metadata = described
        .key_metadata()
        .ok_or_else(|| unusable("KMS described no key".into()))?;
    let arn = metadata
        .arn()
        .ok_or_else(|| unusable("KMS described the key without an ARN".into()))?;
    match metadata.key_state() {
        Some(KeyState::Enabled) => {}
        Some(state) => {
            return Err(unusable(format!(
                "the key is {} (key state {state})",
                state_words(state)
            )));
        }
        None => return Err(unusable("KMS did not say whether the key is enabled".into())),
    }
    if metadata.key_usage() != Some(&KeyUsageType::EncryptDecrypt) {
        let usage = metadata.key_usage().map_or("not given", KeyUsageType::as_str);
        return Err(unusable(format!("the key's usage is {usage}, not ENCRYPT_DECRYPT")));
    }
    if metadata.key_spec() != Some(&KeySpec::SymmetricDefault) {
        let spec = metadata.key_spec().map_or("not given", KeySpec::as_str);
        return Err(unusable(format!(
            "the key spec is {spec}: only symmetric (SYMMETRIC_DEFAULT) keys take an encryption context"
        )));
    }
    Ok(arn.to_string())
}

fn state_words(state: &KeyState) -> &'static str {
    match state {
        KeyState::Disabled => "disabled",
        KeyState::PendingDeletion => "pending deletion",
        KeyState::PendingImport => "waiting for imported key material",
        KeyState::Unavailable => "unavailable (its custom key store is disconnected)",
        _ => "not enabled",
    }
}

impl KmsKeyProvider {
    /// Starts the KMS client for `settings.kms_key_id` and checks the key: it
    /// must exist, be enabled, and be a symmetric encryption key.
    pub fn connect(settings: &EncryptionSettings) -> Result<Self, CryptoError> {
        let key_id = settings.kms_key_id.clone().ok_or(CryptoError::NoMasterKey)?;
        let (runtime, stop) = start_thread().map_err(|reason| failed("start-up", &key_id, reason))?;
        let client = run_on(
            &runtime,
            "configuration",
            &key_id,
            KMS_SETUP_TIMEOUT,
            build_client(
                key_id.clone(),
                settings.kms_region.clone(),
                settings.kms_endpoint.clone(),
            ),
        )?;
        let key_arn = run_on(
            &runtime,
            "DescribeKey",
            &key_id,
            KMS_CALL_TIMEOUT,
            describe(client.clone(), key_id.clone()),
        )?;
        tracing::info!(key = %key_arn, "data keys are wrapped by an AWS KMS key");
        Ok(Self {
            key_arn,
            client,
            runtime,
            _stop: stop,
        })
    }
}

impl KeyProvider for KmsKeyProvider {
    fn current_key_id(&self) -> &str {
        &self.key_arn
    }

    fn wrap(&self, tenant: &str, version: u32, data_key: &[u8; KEY_BYTES]) -> Result<WrappedDataKey, CryptoError> {
        let request = self
            .client
            .encrypt()
            .key_id(&self.key_arn)
            .plaintext(Blob::new(data_key.to_vec()))
            .set_encryption_context(Some(encryption_context(tenant, version)));
        let key_arn = self.key_arn.clone();
        run_on(&self.runtime, "Encrypt", &self.key_arn, KMS_CALL_TIMEOUT, async move {
            let encrypted = request.send().await.map_err(|e| call_failed("Encrypt", &key_arn, &e))?;
            let wrapped = encrypted
                .ciphertext_blob()
                .map(|blob| blob.as_ref().to_vec())
                .ok_or_else(|| failed("Encrypt", &key_arn, "KMS returned no ciphertext"))?;
            if wrapped.len() > MAX_WRAPPED_KEY_BYTES {
                return Err(failed(
                    "Encrypt",
                    &key_arn,
                    format!(
                        "KMS returned a {}-byte wrapped key; this node stores at most {MAX_WRAPPED_KEY_BYTES}",
                        wrapped.len()
                    ),
                ));
            }
            // KMS names the key that encrypted, as an ARN: the id unwrapping will ask for.
            let master_key_id = encrypted.key_id().unwrap_or(&key_arn).to_string();
            Ok(WrappedDataKey {
                version,
                master_key_id,
                wrapped,
            })
        })
    }

    fn unwrap(&self, tenant: &str, wrapped: &WrappedDataKey) -> Result<[u8; KEY_BYTES], CryptoError> {
        let master_key_id = wrapped.master_key_id.clone();
        if arn_region(&master_key_id).is_none() {
            // Wrapped by a key file's key, not by KMS.
            return Err(CryptoError::UnknownMasterKey(master_key_id));
        }
        let wrong = CryptoError::WrongMasterKey {
            tenant: tenant.to_string(),
            version: wrapped.version,
            master_key_id: master_key_id.clone(),
        };
        let request = self
            .client
            .decrypt()
            .key_id(&master_key_id)
            .ciphertext_blob(Blob::new(wrapped.wrapped.clone()))
            .set_encryption_context(Some(encryption_context(tenant, wrapped.version)));
        run_on(
            &self.runtime,
            "Decrypt",
            &master_key_id.clone(),
            KMS_CALL_TIMEOUT,
            async move {
                let decrypted = match request.send().await {
                    Ok(decrypted) => decrypted,
                    Err(e) => {
                        let service = e.as_service_error();
                        // The ciphertext does not open under this key and context: moved, altered or another key's.
                        if service
                            .is_some_and(|s| s.is_invalid_ciphertext_exception() || s.is_incorrect_key_exception())
                        {
                            return Err(wrong);
                        }
                        return Err(call_failed("Decrypt", &master_key_id, &e));
                    }
                };
                let mut plain = decrypted.plaintext.map(Blob::into_inner).unwrap_or_default();
                let key = <[u8; KEY_BYTES]>::try_from(plain.as_slice()).map_err(|_| wrong);
                plain.fill(0);
                key
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_comes_from_a_key_or_alias_arn_only() {
        assert_eq!(
            arn_region("arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
            Some("eu-west-1")
        );
        assert_eq!(
            arn_region("arn:aws-us-gov:kms:us-gov-west-1:111122223333:alias/safekeep"),
            Some("us-gov-west-1")
        );
        for not_an_arn in [
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "alias/safekeep",
            "arn:aws:s3:::bucket",
            "k1",
        ] {
            assert_eq!(arn_region(not_an_arn), None, "{not_an_arn}");
        }
    }

    #[test]
    fn the_encryption_context_binds_tenant_version_and_purpose() {
        let context = encryption_context("acme", 7);
        assert_eq!(context["tenant"], "acme");
        assert_eq!(context["version"], "7");
        assert_eq!(context["purpose"], "safekeep/data-key/v1");
        assert_eq!(context.len(), 3);
    }

    #[test]
    fn throttling_kms_faults_and_unreachable_endpoints_may_pass_and_refusals_do_not() {
        use aws_sdk_kms::error::ConnectorError;
        use aws_sdk_kms::operation::encrypt::EncryptError;
        for (status, code) in [
            (400, Some("ThrottlingException")),
            (500, Some("KMSInternalException")),
            (500, Some("DependencyTimeoutException")),
            (429, None),
            (503, None),
        ] {
            assert!(transient_answer(status, code), "{status} {code:?}");
        }
        for (status, code) in [
            (400, Some("DisabledException")),
            (400, Some("AccessDeniedException")),
            (400, Some("NotFoundException")),
            (400, Some("KMSInvalidStateException")),
            (400, Some("InvalidCiphertextException")),
        ] {
            assert!(!transient_answer(status, code), "{status} {code:?}");
        }
        let timeout = SdkError::<EncryptError>::timeout_error("no answer");
        assert!(is_transient(&timeout));
        let refused = SdkError::<EncryptError>::dispatch_failure(ConnectorError::io("connection refused".into()));
        assert!(is_transient(&refused));
        let misconfigured = SdkError::<EncryptError>::dispatch_failure(ConnectorError::user("bad URL".into()));
        assert!(!is_transient(&misconfigured));
        assert!(matches!(
            call_failed("Encrypt", "k", &refused),
            CryptoError::KmsUnavailable {
                operation: "Encrypt",
                ..
            }
        ));
        assert!(matches!(
            call_failed("Encrypt", "k", &misconfigured),
            CryptoError::Kms {
                operation: "Encrypt",
                ..
            }
        ));
    }

    #[test]
    fn a_call_that_outlives_its_timeout_is_a_typed_error() {
        let (runtime, _stop) = start_thread().unwrap();
        let answer: Result<(), CryptoError> = run_on(&runtime, "Decrypt", "k", Duration::from_millis(50), async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        });
        assert!(matches!(
            answer,
            Err(CryptoError::KmsTimeout {
                operation: "Decrypt",
                ..
            })
        ));
    }

    #[test]
    fn a_panic_on_the_kms_thread_is_a_typed_error() {
        let (runtime, _stop) = start_thread().unwrap();
        let answer: Result<(), CryptoError> = run_on(&runtime, "Encrypt", "k", Duration::from_secs(5), async {
            panic!("the SDK failed");
        });
        assert!(matches!(
            answer,
            Err(CryptoError::Kms {
                operation: "Encrypt",
                ..
            })
        ));
    }
}
