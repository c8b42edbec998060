//! Size limits of the records API. The value limit is configurable up to a
//! ceiling; the rest are fixed.

/// Longest record key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest tenant id, in bytes of `[a-z0-9-_]`.
pub const MAX_TENANT_BYTES: usize = 128;
/// Longest client id of a write id, in bytes.
pub const MAX_CLIENT_ID_BYTES: usize = 128;
/// Most operations in one batch.
pub const MAX_BATCH_OPS: usize = 1_000;
/// Most bytes of keys and values in one batch.
pub const MAX_BATCH_BYTES: usize = 16 << 20;
/// Largest value the configuration may allow.
pub const MAX_VALUE_BYTES_CEILING: usize = 16 << 20;
/// Most records in one page of `List`.
pub const MAX_LIST_PAGE: u32 = 1_000;
/// Records in a page of `List` when the request names no limit.
pub const DEFAULT_LIST_PAGE: u32 = 100;
/// Most bytes of keys and stored values in one page of `List`, whatever its
/// record limit: under the 4 MiB most gRPC clients accept by default. A page
/// always holds at least one record, so a record larger than this comes alone.
pub const LIST_PAGE_BYTES: usize = 3 << 20;
/// Bytes counted for each record of a page beyond its key and value: the
/// protobuf framing of its fields, and what sealing adds.
pub const LIST_RECORD_OVERHEAD_BYTES: usize = 96;
/// Largest gRPC message the client API accepts: a full batch plus framing.
pub const MAX_REQUEST_BYTES: usize = MAX_BATCH_BYTES + (1 << 20);
/// Most bytes sealing adds to a value (format, data key version, nonce, tag).
pub const MAX_SEALING_OVERHEAD: usize = 64;
/// Length of an API key id, in hex digits.
pub const API_KEY_ID_LEN: usize = 16;
/// Longest label of an API key, and longest master key id.
pub const MAX_LABEL_BYTES: usize = 256;
/// Largest wrapped data key.
pub const MAX_WRAPPED_KEY_BYTES: usize = 512;
/// Most data key versions one tenant may have.
pub const MAX_DATA_KEYS_PER_TENANT: usize = 4_096;
/// Longest field of an audit entry.
pub const MAX_AUDIT_FIELD_BYTES: usize = 1024;
/// Audit entries in a page of `ListAudit` when the request names no limit, and the most.
pub const DEFAULT_AUDIT_PAGE: u32 = 100;
pub const MAX_AUDIT_PAGE: u32 = 1_000;
/// Most records in one chunk of an export.
pub const EXPORT_CHUNK_RECORDS: usize = 1_000;
/// Most bytes of keys and stored values in one chunk of an export (only a chunk of one larger record holds more).
pub const EXPORT_CHUNK_BYTES: usize = 4 << 20;
/// Longest time to live a record may be given (ten years), seconds.
pub const MAX_TTL_SECONDS: u64 = 10 * 366 * 86_400;
/// Longest retention window a tenant may set (ten years), seconds.
pub const MAX_RETENTION_SECONDS: u64 = MAX_TTL_SECONDS;
/// Most records one expiry command removes: bounds each pass of the sweeper.
pub const MAX_EXPIRED_PER_COMMAND: usize = 1_000;
