//! The one place where the node's typed errors become gRPC statuses.

use tonic::{Code, Status};

use crate::model::validate::InvalidRequest;
use crate::raft::ConsensusError;

use safekeep_api::wire::{CURRENT_VERSION as CURRENT_VERSION_METADATA, NOT_APPLIED as NOT_APPLIED_METADATA};

impl From<ConsensusError> for Status {
    fn from(e: ConsensusError) -> Self {
        let code = match &e {
            ConsensusError::NoLeader { .. }
            | ConsensusError::NotLeader { .. }
            | ConsensusError::LeaderUnreachable { .. }
            | ConsensusError::OutcomeUnknown(_)
            | ConsensusError::QuorumUnreachable(_)
            | ConsensusError::CatchUpTimeout { .. }
            | ConsensusError::Stopped(_) => Code::Unavailable,
            ConsensusError::MembershipRejected(_) | ConsensusError::Placement(_) => Code::FailedPrecondition,
            ConsensusError::MembershipBusy(_) => Code::Aborted,
            ConsensusError::Internal(_) => Code::Internal,
            ConsensusError::Invalid(_) => Code::InvalidArgument,
        };
        let definitely_not_applied = matches!(
            e,
            ConsensusError::NoLeader { .. }
                | ConsensusError::NotLeader { .. }
                | ConsensusError::LeaderUnreachable { .. }
                | ConsensusError::Invalid(_)
        );
        let mut status = Status::new(code, e.to_string());
        if definitely_not_applied {
            status.metadata_mut().insert(
                NOT_APPLIED_METADATA,
                tonic::metadata::MetadataValue::from_static("true"),
            );
        }
        status
    }
}

impl From<InvalidRequest> for Status {
    fn from(e: InvalidRequest) -> Self {
        Status::invalid_argument(e.to_string())
    }
}

/// A failed read of the local replica: corrupt data is `DATA_LOSS`, anything else `INTERNAL`.
pub fn storage_read(e: &std::io::Error) -> Status {
    if e.kind() == std::io::ErrorKind::InvalidData {
        Status::data_loss(format!("stored data is corrupt: {e}"))
    } else {
        Status::internal(format!("reading the local replica failed: {e}"))
    }
}

/// A compare-and-set conflict, with the record's current version in metadata (0: absent).
pub fn version_conflict(key: &str, current_version: u64) -> Status {
    let message = if current_version == 0 {
        format!("version conflict on key {key:?}: the record does not exist")
    } else {
        format!("version conflict on key {key:?}: current version is {current_version}")
    };
    let mut status = Status::failed_precondition(message);
    if let Ok(value) = current_version.to_string().parse() {
        status.metadata_mut().insert(CURRENT_VERSION_METADATA, value);
    }
    status
}

impl From<crate::crypto::CryptoError> for Status {
    fn from(e: crate::crypto::CryptoError) -> Self {
        use crate::crypto::CryptoError;
        match e {
            CryptoError::Tampered | CryptoError::Malformed | CryptoError::UnknownDataKey(_) => {
                Status::data_loss(format!("a stored value cannot be decrypted: {e}"))
            }
            // The key service is throttling, failing or out of reach for now: try again.
            CryptoError::KmsUnavailable { .. } | CryptoError::KmsTimeout { .. } => {
                Status::unavailable(format!("the key service did not help, try again: {e}"))
            }
            other => Status::internal(format!("encryption failed: {other}")),
        }
    }
}

/// Why the state machine refused a command, as a status.
pub fn refusal(refusal: crate::model::command::Refusal, tenant: &str) -> Status {
    use crate::model::command::Refusal;
    match refusal {
        Refusal::TenantExists => Status::already_exists(format!("tenant {tenant:?} already exists")),
        Refusal::NoSuchTenant => Status::not_found(format!("tenant {tenant:?} does not exist")),
        Refusal::NoSuchApiKey => Status::not_found(format!("no such API key in tenant {tenant:?}")),
        Refusal::ApiKeyExists => Status::aborted("an API key with this id exists; issue again"),
        Refusal::ApiKeyRevoked => Status::unauthenticated("the API key is not valid"),
        Refusal::DataKeyMismatch => Status::aborted("the tenant's data keys changed concurrently; try again"),
        Refusal::WriteIdReused => Status::invalid_argument(
            "this write id (client_id, request_id) was already used for a write of other records; \
             nothing was applied: give every logical write its own request id",
        ),
    }
}

/// A write whose request id is below its client's floor: not applied now.
pub fn retired_write(floor: u64) -> Status {
    let mut status = Status::failed_precondition(format!(
        "this write's request id is below {floor}, the lowest this client may still send: either the client \
         reported it complete (write_id.first_incomplete) or its result expired. It was not applied now; an \
         earlier attempt of it may have been. Read the record to find out, and use a new request id for a new write"
    ));
    status.metadata_mut().insert(
        NOT_APPLIED_METADATA,
        tonic::metadata::MetadataValue::from_static("true"),
    );
    status
}

/// The header every client response carries: who answered, who leads, the term.
pub fn response_header(consensus: &crate::raft::Consensus) -> safekeep_api::v1::ResponseHeader {
    let hint = consensus.leader_hint();
    safekeep_api::v1::ResponseHeader {
        node_id: consensus.node_id(),
        leader_id: hint.leader_id.unwrap_or(0),
        leader_address: hint.leader_client_address.unwrap_or_default(),
        term: hint.term,
    }
}

/// An export that cannot go on: changed records are `FAILED_PRECONDITION`
/// (start again), a lagging replica `UNAVAILABLE` (retry elsewhere).
pub fn export_refused(e: &crate::storage::ExportError) -> Status {
    use crate::storage::ExportError;
    match e {
        ExportError::Changed { .. } => Status::failed_precondition(e.to_string()),
        ExportError::Behind { .. } => Status::unavailable(e.to_string()),
        ExportError::Io(io) => storage_read(io),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::CryptoError;

    #[test]
    fn key_service_failures_that_may_pass_are_unavailable_and_the_rest_internal() {
        let passing = [
            CryptoError::KmsUnavailable {
                operation: "Encrypt",
                key_id: "k".into(),
                reason: "ThrottlingException: slow down".into(),
            },
            CryptoError::KmsTimeout {
                operation: "Decrypt",
                key_id: "k".into(),
                waited_ms: 12_000,
            },
        ];
        for error in passing {
            assert_eq!(Status::from(error).code(), Code::Unavailable);
        }
        let lasting = CryptoError::Kms {
            operation: "Encrypt",
            key_id: "k".into(),
            reason: "DisabledException: the key is disabled".into(),
        };
        assert_eq!(Status::from(lasting).code(), Code::Internal);
        assert_eq!(Status::from(CryptoError::Tampered).code(), Code::DataLoss);
    }
}
