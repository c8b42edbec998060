//! Plain Rust types the SDK returns and accepts, so callers never handle the
//! generated protobuf structs (with their optional fields and integer enums)
//! for everyday record work.

use safekeep_api::v1;
use serde::Serialize;

/// One stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record's key within its tenant.
    pub key: String,
    /// The record's value, as stored.
    pub value: Vec<u8>,
    /// The Raft log index of the record's last write; grows with every write.
    pub version: u64,
    /// When the leader accepted the last write, milliseconds since the Unix epoch.
    pub updated_at_unix_ms: i64,
}

impl From<v1::Record> for Record {
    fn from(record: v1::Record) -> Self {
        Self {
            key: record.key,
            value: record.value,
            version: record.version,
            updated_at_unix_ms: record.updated_at_unix_ms,
        }
    }
}

/// The result of a successful put.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PutOutcome {
    /// The record's new version.
    pub version: u64,
    /// When the leader accepted the write, milliseconds since the Unix epoch.
    pub updated_at_unix_ms: i64,
}

/// The result of a successful delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DeleteOutcome {
    /// False when there was no record to delete.
    pub deleted: bool,
    /// The Raft log index of the delete.
    pub version: u64,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// Records of this page, in key order.
    pub records: Vec<Record>,
    /// Token for the next page; `None` when there are no more records.
    pub next_page_token: Option<String>,
}

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// Reflects every write acknowledged before the read began (confirmed with a quorum).
    #[default]
    Linearizable,
    /// Served under the leader's lease: linearizable unless clocks drift beyond the lease margin.
    Lease,
    /// The answering node's own replica, which may lag behind the leader.
    Stale,
}

impl From<Consistency> for v1::Consistency {
    fn from(consistency: Consistency) -> Self {
        match consistency {
            Consistency::Linearizable => Self::Linearizable,
            Consistency::Lease => Self::Lease,
            Consistency::Stale => Self::Stale,
        }
    }
}

/// One operation of an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    /// Creates or replaces a record, optionally only at an expected version (0: must not exist).
    Put {
        /// The record's key.
        key: String,
        /// The new value.
        value: Vec<u8>,
        /// Compare-and-set version; `None` writes unconditionally.
        expected_version: Option<u64>,
    },
    /// Deletes a record, optionally only at an expected version.
    Delete {
        /// The record's key.
        key: String,
        /// Compare-and-delete version; `None` deletes unconditionally.
        expected_version: Option<u64>,
    },
}

impl From<BatchOp> for v1::BatchOp {
    fn from(op: BatchOp) -> Self {
        let op = match op {
            BatchOp::Put {
                key,
                value,
                expected_version,
            } => v1::batch_op::Op::Put(v1::BatchPut {
                key,
                value,
                expected_version,
            }),
            BatchOp::Delete { key, expected_version } => {
                v1::batch_op::Op::Delete(v1::BatchDelete { key, expected_version })
            }
        };
        Self { op: Some(op) }
    }
}

/// The result of a successful batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BatchOutcome {
    /// The Raft log index of the batch: the new version of every record it put.
    pub version: u64,
    /// When the leader accepted the batch, milliseconds since the Unix epoch.
    pub updated_at_unix_ms: i64,
}

/// Who answered a request and who leads, as the answering node knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ResponseHeader {
    /// The node that answered.
    pub node_id: u64,
    /// The leader known to the answering node; 0 when unknown.
    pub leader_id: u64,
    /// The leader's client address, when known.
    pub leader_address: String,
    /// The Raft term the answering node knows.
    pub term: u64,
}

impl From<v1::ResponseHeader> for ResponseHeader {
    fn from(header: v1::ResponseHeader) -> Self {
        Self {
            node_id: header.node_id,
            leader_id: header.leader_id,
            leader_address: header.leader_address,
            term: header.term,
        }
    }
}

/// The most recent leader a response named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaderHint {
    /// The leader's node id.
    pub leader_id: u64,
    /// The leader's client address, when the answering node knew it.
    pub leader_address: Option<String>,
    /// The term in which that node leads.
    pub term: u64,
}

/// A member's role in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Votes in elections and counts toward the commit quorum.
    Voter,
    /// Receives the log but does not vote.
    Learner,
    /// The server did not say (an older or newer release).
    Unspecified,
}

impl From<v1::Role> for Role {
    fn from(role: v1::Role) -> Self {
        match role {
            v1::Role::Voter => Self::Voter,
            v1::Role::Learner => Self::Learner,
            v1::Role::Unspecified => Self::Unspecified,
        }
    }
}

/// One member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// The node id (never reused).
    pub id: u64,
    /// The availability zone the node runs in.
    pub zone: String,
    /// Voter or learner.
    pub role: Role,
    /// Address clients reach the node at.
    pub client_address: String,
    /// Address other nodes reach the node at.
    pub peer_address: String,
    /// Highest log index the leader knows the member holds; only when the leader answered.
    pub matched_index: Option<u64>,
    /// True for the current leader.
    pub is_leader: bool,
}

impl From<v1::Member> for Member {
    fn from(member: v1::Member) -> Self {
        let role = member.role().into();
        Self {
            id: member.id,
            zone: member.zone,
            role,
            client_address: member.client_address,
            peer_address: member.peer_address,
            matched_index: member.matched_index,
            is_leader: member.is_leader,
        }
    }
}

/// The cluster as one node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    /// Who answered and who leads.
    pub header: ResponseHeader,
    /// Every voter and learner.
    pub members: Vec<Member>,
    /// The answering node's last log index.
    pub last_log_index: u64,
    /// The answering node's last applied index.
    pub applied_index: u64,
    /// The answering node's committed index.
    pub committed_index: u64,
    /// The answering node's zone.
    pub zone: String,
    /// True when the answering node serves without TLS.
    pub insecure: bool,
    /// Where the cluster's backups stand; `None` when it takes none.
    pub backup: Option<BackupInfo>,
}

/// Where a cluster's backups stand, as the node that ships them last wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BackupInfo {
    /// The backup target, e.g. `s3://bucket/prefix`.
    pub target: String,
    /// The node that shipped last (0: none yet).
    pub shipper_node_id: u64,
    /// When the log archive last held every applied write, ms since the Unix epoch (0: not yet).
    pub current_at_unix_ms: i64,
    /// When the last full backup finished, ms since the Unix epoch (0: never).
    pub last_full_unix_ms: i64,
    /// The log index the last full backup holds.
    pub last_full_index: u64,
    /// The commit time of the last archived write: the latest time a restore reaches.
    pub restorable_unix_ms: i64,
    /// The last log index archived.
    pub archived_index: u64,
    /// Why the answering node could not read the backups' progress, if it could not.
    pub error: Option<String>,
}

impl From<v1::BackupStatus> for BackupInfo {
    fn from(b: v1::BackupStatus) -> Self {
        Self {
            target: b.target,
            shipper_node_id: b.shipper_node_id,
            current_at_unix_ms: b.current_at_unix_ms,
            last_full_unix_ms: b.last_full_unix_ms,
            last_full_index: b.last_full_index,
            restorable_unix_ms: b.restorable_unix_ms,
            archived_index: b.archived_index,
            error: (!b.error.is_empty()).then_some(b.error),
        }
    }
}

impl From<v1::StatusResponse> for ClusterStatus {
    fn from(status: v1::StatusResponse) -> Self {
        Self {
            header: status.header.map(Into::into).unwrap_or_default(),
            members: status.members.into_iter().map(Into::into).collect(),
            last_log_index: status.last_log_index,
            applied_index: status.applied_index,
            committed_index: status.committed_index,
            zone: status.zone,
            insecure: status.insecure,
            backup: status.backup.filter(|b| b.configured).map(Into::into),
        }
    }
}

/// Response messages that carry a [`v1::ResponseHeader`].
pub(crate) trait HasHeader {
    /// The header, when the server sent one.
    fn header(&self) -> Option<&v1::ResponseHeader>;
}

macro_rules! has_header {
    ($($response:ty),* $(,)?) => {
        $(impl HasHeader for $response {
            fn header(&self) -> Option<&v1::ResponseHeader> {
                self.header.as_ref()
            }
        })*
    };
}

has_header!(
    v1::PutResponse,
    v1::GetResponse,
    v1::DeleteResponse,
    v1::ListResponse,
    v1::BatchResponse,
    v1::StatusResponse,
    v1::MembershipResponse,
    v1::TransferLeaderResponse,
    v1::CreateTenantResponse,
    v1::ListTenantsResponse,
    v1::DeleteTenantResponse,
    v1::IssueApiKeyResponse,
    v1::ListApiKeysResponse,
    v1::RevokeApiKeyResponse,
    v1::ListAuditResponse,
    v1::RotateDataKeyResponse,
    v1::RewrapDataKeysResponse,
    v1::SetRetentionResponse,
    v1::BackupNowResponse,
);

/// What an API key lets its holder do with its tenant's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiKeyRole {
    /// Get and List.
    Reader,
    /// Reads and writes.
    Writer,
    /// Reads, writes, and the tenant's own API keys.
    Admin,
}

impl From<ApiKeyRole> for v1::ApiKeyRole {
    fn from(role: ApiKeyRole) -> Self {
        match role {
            ApiKeyRole::Reader => Self::Reader,
            ApiKeyRole::Writer => Self::Writer,
            ApiKeyRole::Admin => Self::Admin,
        }
    }
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantInfo {
    /// The tenant id.
    pub tenant: String,
    /// When it was created, ms since the Unix epoch.
    pub created_at_unix_ms: i64,
    /// Deleted tenants stay listed, with no data and no keys.
    pub deleted: bool,
    /// The data key version new writes are sealed with.
    pub data_key_version: u32,
}

impl From<v1::Tenant> for TenantInfo {
    fn from(t: v1::Tenant) -> Self {
        Self {
            tenant: t.tenant,
            created_at_unix_ms: t.created_at_unix_ms,
            deleted: t.deleted,
            data_key_version: t.data_key_version,
        }
    }
}

/// An API key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeyInfo {
    /// The key's public id (the part after `skp_`).
    pub key_id: String,
    /// The tenant it belongs to.
    pub tenant: String,
    /// Its role; `None` if the server named one this SDK does not know.
    pub role: Option<ApiKeyRole>,
    /// What the key is for, in people's words.
    pub label: String,
    /// When it was issued, ms since the Unix epoch.
    pub created_at_unix_ms: i64,
    /// Revoked keys are refused by every node.
    pub revoked: bool,
}

impl From<v1::ApiKey> for ApiKeyInfo {
    fn from(k: v1::ApiKey) -> Self {
        let role = match v1::ApiKeyRole::try_from(k.role) {
            Ok(v1::ApiKeyRole::Reader) => Some(ApiKeyRole::Reader),
            Ok(v1::ApiKeyRole::Writer) => Some(ApiKeyRole::Writer),
            Ok(v1::ApiKeyRole::Admin) => Some(ApiKeyRole::Admin),
            _ => None,
        };
        Self {
            key_id: k.key_id,
            tenant: k.tenant,
            role,
            label: k.label,
            created_at_unix_ms: k.created_at_unix_ms,
            revoked: k.revoked,
        }
    }
}

/// A newly issued key, with the secret its holder presents. Shown once.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct IssuedApiKey {
    /// The key as it will be listed.
    pub key: ApiKeyInfo,
    /// The key to present; the cluster keeps only its hash.
    pub secret: String,
}

impl std::fmt::Debug for IssuedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedApiKey")
            .field("key", &self.key)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// One entry of the cluster's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntryInfo {
    /// Position in the log, from 1.
    pub seq: u64,
    /// When it was proposed, ms since the Unix epoch.
    pub at_unix_ms: i64,
    /// Who acted.
    pub actor: String,
    /// What they did.
    pub action: String,
    /// Which tenant (empty for cluster-wide actions).
    pub tenant: String,
    /// The reason they gave.
    pub reason: String,
    /// The outcome.
    pub result: String,
    /// More about what was done.
    pub detail: String,
    /// Hash of the entry before, hex.
    pub prev_hash: String,
    /// Hash of this entry, hex.
    pub hash: String,
}

impl From<v1::AuditEntry> for AuditEntryInfo {
    fn from(e: v1::AuditEntry) -> Self {
        Self {
            seq: e.seq,
            at_unix_ms: e.at_unix_ms,
            actor: e.actor,
            action: e.action,
            tenant: e.tenant,
            reason: e.reason,
            result: e.result,
            detail: e.detail,
            prev_hash: hex::encode(e.prev_hash),
            hash: hex::encode(e.hash),
        }
    }
}

/// What `verify_audit` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditVerification {
    /// Entries checked.
    pub entries: u64,
    /// Where the chain breaks, if it does.
    pub broken: Option<String>,
}
