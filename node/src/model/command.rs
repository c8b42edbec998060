//! What the replicated log carries for the application, and what applying it
//! returns. A write is a batch of mutations of one tenant, applied atomically;
//! a single put or delete is a batch of one. Tenancy changes (tenants, API
//! keys, data keys) travel through the same log, so every replica agrees on
//! who may do what at every log position.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Identifies a write of its command's tenant so a retry of it applies at most once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WriteId {
    pub client_id: String,
    pub request_id: u64,
    /// The lowest request id the client has not yet seen completed (0: not
    /// tracked): ids below it are retired.
    pub first_incomplete: u64,
}

/// One change to one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mutation {
    /// Create or replace; with `expected_version`, only at that version (0: must not exist).
    Put {
        key: String,
        value: Vec<u8>,
        expected_version: Option<u64>,
    },
    /// Remove; with `expected_version`, only at that version.
    Delete { key: String, expected_version: Option<u64> },
    /// As `Put`, and the record expires `ttl_ms` after the write is
    /// proposed: a later pass of the retention sweeper removes it, unless it
    /// was written again by then.
    PutWithTtl {
        key: String,
        value: Vec<u8>,
        expected_version: Option<u64>,
        ttl_ms: u64,
    },
}

impl Mutation {
    /// The record key this mutation touches.
    pub fn key(&self) -> &str {
        match self {
            Mutation::Put { key, .. } | Mutation::Delete { key, .. } | Mutation::PutWithTtl { key, .. } => key,
        }
    }

    /// The sealed value this mutation writes, if it writes one.
    pub fn value(&self) -> Option<&[u8]> {
        match self {
            Mutation::Put { value, .. } | Mutation::PutWithTtl { value, .. } => Some(value),
            Mutation::Delete { .. } => None,
        }
    }

    /// The version the record must be at for this mutation to apply, if any.
    pub fn expected_version(&self) -> Option<u64> {
        match self {
            Mutation::Put { expected_version, .. }
            | Mutation::Delete { expected_version, .. }
            | Mutation::PutWithTtl { expected_version, .. } => *expected_version,
        }
    }
}

/// A command as it travels through the Raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// Present for client writes; lets a retry find the first result.
    pub write_id: Option<WriteId>,
    /// The leader's wall clock when it accepted the write (ms since the Unix epoch).
    pub proposed_at_ms: i64,
    /// The leader's monotonic clock when it accepted the write (ms since the
    /// leader's process started): the idempotency table's expiry time moves
    /// by this, never by the wall clock.
    pub leader_clock_ms: u64,
    /// The tenant the command changes.
    pub tenant: String,
    /// The API key a record write was made with: applying refuses the write
    /// if the key was revoked by then.
    pub api_key: Option<String>,
    pub body: CommandBody,
    /// An audit log entry applied with the command, in the same batch.
    pub audit: Option<AuditEvent>,
}

impl Command {
    /// Roughly how many bytes the command takes on the wire: its keys and
    /// values, plus a fixed allowance for everything else. For bounding
    /// messages, not for exact accounting.
    pub fn approximate_bytes(&self) -> usize {
        /// Ids, clocks, tags and the like.
        const FIXED: usize = 256;
        let mutations = match &self.body {
            CommandBody::Write(mutations) => mutations
                .iter()
                .map(|m| m.key().len() + m.value().map_or(0, <[u8]>::len) + 24)
                .sum(),
            CommandBody::Expire(expired) => expired.iter().map(|e| e.key.len() + 24).sum(),
            CommandBody::Tenancy(_) | CommandBody::AuditOnly | CommandBody::RequestBackup => 0,
        };
        FIXED + self.tenant.len() + mutations
    }
}

/// Who did what, for the audit log. The tenant is the command's; the time is
/// its `proposed_at_ms`; sequence number and hash are assigned when applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub actor: String,
    pub action: String,
    pub reason: String,
    pub detail: String,
    /// The outcome, when known before applying; otherwise the command's own result.
    pub result: Option<String>,
}

/// What a command changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandBody {
    /// Records of the tenant.
    Write(Vec<Mutation>),
    /// The tenant itself, its API keys or its data keys.
    Tenancy(TenancyChange),
    /// Nothing but the audit entry the command carries.
    AuditOnly,
    /// Records of the tenant past their time to live or its retention
    /// window, found by the leader's sweeper: each is removed only if it is
    /// still at the version found, so a record written since stays.
    Expire(Vec<Expiry>),
    /// An operator asked for a full backup now: the node that ships backups
    /// takes one that covers this entry. Cluster-wide (no tenant).
    RequestBackup,
}

/// One record the sweeper found expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiry {
    pub key: String,
    /// The record's version when it was found expired.
    pub version: u64,
    /// Its expiry index entry's due time, when a time to live expired it.
    pub expires_at_ms: Option<i64>,
}

/// A change to a tenant, its API keys or its data keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TenancyChange {
    /// A new tenant with its first data key.
    CreateTenant {
        data_key: WrappedDataKey,
    },
    /// Deletes the tenant's records, revokes its API keys and destroys its data keys.
    DeleteTenant,
    /// A new API key; only a hash of its secret travels.
    IssueApiKey {
        key_id: String,
        role: ApiKeyRole,
        secret_hash: [u8; 32],
        label: String,
    },
    RevokeApiKey {
        key_id: String,
    },
    /// A new data key version for new writes; older versions keep decrypting.
    AddDataKey {
        data_key: WrappedDataKey,
    },
    /// The same data keys, wrapped by another master key.
    RewrapDataKeys {
        data_keys: Vec<WrappedDataKey>,
    },
    /// Records not written for longer than this are removed (none: kept).
    SetRetention {
        retention_ms: Option<u64>,
    },
    /// A new API key issued by an operator: a staff key, every record access
    /// made with it is audited under `operator`'s name.
    IssueStaffApiKey {
        key_id: String,
        role: ApiKeyRole,
        secret_hash: [u8; 32],
        label: String,
        operator: String,
    },
}

/// What an API key allows with its tenant's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ApiKeyRole {
    /// Get and List.
    Reader,
    /// Reads and writes.
    Writer,
    /// Reads, writes, and the tenant's own API keys.
    Admin,
}

impl ApiKeyRole {
    /// Whether the role may change records.
    pub fn may_write(self) -> bool {
        matches!(self, Self::Writer | Self::Admin)
    }
}

/// A tenant's data key, encrypted by a master key. Only this form is stored or replicated.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedDataKey {
    /// Version of the data key within its tenant, from 1.
    pub version: u32,
    /// Which master key wrapped it.
    pub master_key_id: String,
    /// Nonce and ciphertext of the data key.
    pub wrapped: Vec<u8>,
}

impl fmt::Debug for WrappedDataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedDataKey")
            .field("version", &self.version)
            .field("master_key_id", &self.master_key_id)
            .finish_non_exhaustive()
    }
}

impl Command {
    /// A tenancy change of `tenant`, made with the tenant's admin key
    /// `issuer` if not by an operator, audited as `audit` if given.
    pub fn tenancy(tenant: &str, issuer: Option<String>, change: TenancyChange, audit: Option<AuditEvent>) -> Self {
        Self {
            write_id: None,
            proposed_at_ms: 0,
            leader_clock_ms: 0,
            tenant: tenant.to_string(),
            api_key: issuer,
            body: CommandBody::Tenancy(change),
            audit,
        }
    }

    /// An audit entry alone.
    pub fn audit_only(tenant: &str, event: AuditEvent) -> Self {
        Self {
            write_id: None,
            proposed_at_ms: 0,
            leader_clock_ms: 0,
            tenant: tenant.to_string(),
            api_key: None,
            body: CommandBody::AuditOnly,
            audit: Some(event),
        }
    }
}

impl fmt::Display for Command {
    // Values never appear: only the shape of the command.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.body {
            CommandBody::Write(mutations) => {
                write!(f, "write(tenant={}, mutations={})", self.tenant, mutations.len())
            }
            CommandBody::AuditOnly => write!(f, "audit(tenant={})", self.tenant),
            CommandBody::RequestBackup => write!(f, "request-backup"),
            CommandBody::Expire(expired) => write!(f, "expire(tenant={}, records={})", self.tenant, expired.len()),
            CommandBody::Tenancy(change) => {
                let kind = match change {
                    TenancyChange::CreateTenant { .. } => "create-tenant",
                    TenancyChange::DeleteTenant => "delete-tenant",
                    TenancyChange::IssueApiKey { .. } => "issue-api-key",
                    TenancyChange::IssueStaffApiKey { .. } => "issue-staff-api-key",
                    TenancyChange::RevokeApiKey { .. } => "revoke-api-key",
                    TenancyChange::AddDataKey { .. } => "add-data-key",
                    TenancyChange::RewrapDataKeys { .. } => "rewrap-data-keys",
                    TenancyChange::SetRetention { .. } => "set-retention",
                };
                write!(f, "{kind}(tenant={})", self.tenant)
            }
        }
    }
}

/// Why applying a command changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    TenantExists,
    NoSuchTenant,
    NoSuchApiKey,
    /// The API key the write was made with is revoked, or no longer allows the write.
    ApiKeyRevoked,
    ApiKeyExists,
    /// A data key version that is not the next one, or a rewrap that does not match.
    DataKeyMismatch,
    /// The write id's result is remembered for a write of other records.
    WriteIdReused,
}

/// The result of applying one log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResponse {
    /// Every mutation applied at log index `version`.
    Applied {
        version: u64,
        updated_at_ms: i64,
        /// Per mutation: whether the record existed before (tells a delete whether it deleted).
        existed: Vec<bool>,
    },
    /// A compare-and-set failed: nothing applied. `current_version` 0 means absent.
    Conflict { key: String, current_version: u64 },
    /// A blank or membership entry: nothing for a client.
    Noop,
    /// The write's request id is below its client's floor: retired, so it is
    /// not applied now (it may have been applied long ago).
    Retired { floor: u64 },
    /// Nothing applied, for the reason given.
    Refused(Refusal),
}

impl CommandResponse {
    /// The outcome as the audit log records it.
    pub fn audit_result(&self) -> String {
        match self {
            Self::Applied { .. } | Self::Noop => "ok".to_string(),
            Self::Conflict { .. } => "conflict".to_string(),
            Self::Retired { .. } => "retired".to_string(),
            Self::Refused(refusal) => format!("refused: {refusal:?}"),
        }
    }
}
