//! The errors the SDK returns, one variant per thing a caller can act on.
//!
//! A gRPC status becomes an [`Error`] in exactly one place
//! ([`Error::from_answer`]), and [`Error::code`] maps it back. Write errors
//! whose outcome is unknown (a timeout, a dropped connection, an
//! UNAVAILABLE answer) say so through [`Error::may_have_applied`].

use tonic::{Code, Status};

/// ASCII metadata key a compare-and-set conflict carries: the record's current
/// version in decimal, `0` when the record does not exist.
pub const CURRENT_VERSION_METADATA_KEY: &str = safekeep_api::wire::CURRENT_VERSION;
/// Metadata key the server sets to `true` on a failed write that certainly did not reach the log.
pub const NOT_APPLIED_METADATA_KEY: &str = safekeep_api::wire::NOT_APPLIED;

/// Everything that can go wrong in a safekeep request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The client configuration is unusable (no endpoints, a malformed address, a zero timeout).
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// The request was malformed; retrying it unchanged cannot succeed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The record, node or other object asked for does not exist.
    #[error("not found")]
    NotFound,
    /// A compare-and-set did not match; `current_version` is `None` when the record does not exist.
    #[error("{}", conflict_message(*.current_version))]
    Conflict {
        /// The record's version when the server refused the write, if it exists.
        current_version: Option<u64>,
    },
    /// The server refused because of the cluster's state (for example the zone placement guard).
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// The caller is known but not allowed to do this.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The caller could not be authenticated.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The server is overloaded or a quota is spent.
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
    /// The server found data it cannot read back (corruption or a lost key).
    #[error("data loss: {0}")]
    DataLoss(String),
    /// No endpoint could serve the request.
    #[error("unavailable: {message}")]
    Unavailable {
        /// What the last attempt ran into.
        message: String,
        /// True when a write may have been applied although no success came back.
        maybe_applied: bool,
    },
    /// The request's deadline passed without an answer.
    #[error("timed out")]
    Timeout {
        /// True when a write may have been applied although no success came back.
        maybe_applied: bool,
    },
    /// The server abandoned the request (for example a leader change in flight).
    #[error("aborted: {message}")]
    Aborted {
        /// What the server said.
        message: String,
        /// True when a write may have been applied although no success came back.
        maybe_applied: bool,
    },
    /// The server does not implement this call (an older or newer release).
    #[error("not implemented by the server: {0}")]
    Unimplemented(String),
    /// The server failed in a way that is a bug, or answered something the SDK cannot read.
    #[error("internal error: {0}")]
    Internal(String),
    /// An earlier attempt of this write may have applied, although the last
    /// attempt was answered definitely: whether the write happened is unknown.
    #[error(
        "the write may have been applied (an earlier attempt's outcome is unknown); the last attempt failed: {last}"
    )]
    MaybeApplied {
        /// How the last attempt failed.
        last: Box<Error>,
    },
    /// Any other gRPC status.
    #[error("{code:?}: {message}")]
    Other {
        /// The gRPC status code.
        code: Code,
        /// What the server said.
        message: String,
    },
}

fn conflict_message(current_version: Option<u64>) -> String {
    match current_version {
        Some(version) => format!("version conflict: current version is {version}"),
        None => "version conflict: the record does not exist".to_string(),
    }
}

impl Error {
    /// Converts a status the server answered with; `maybe_applied` says whether an
    /// earlier attempt of the same write may have been applied.
    pub(crate) fn from_answer(status: &Status, maybe_applied: bool) -> Self {
        let error = Self::from_status(status, maybe_applied);
        // A definite answer to this attempt says nothing of an earlier one.
        if maybe_applied && !error.may_have_applied() {
            return Self::MaybeApplied { last: Box::new(error) };
        }
        error
    }

    fn from_status(status: &Status, maybe_applied: bool) -> Self {
        let message = status.message().to_string();
        match status.code() {
            Code::InvalidArgument => Self::InvalidArgument(message),
            Code::NotFound => Self::NotFound,
            Code::FailedPrecondition => match status.metadata().get(CURRENT_VERSION_METADATA_KEY) {
                Some(value) => Self::Conflict {
                    current_version: value
                        .to_str()
                        .ok()
                        .and_then(|text| text.trim().parse::<u64>().ok())
                        .filter(|version| *version != 0),
                },
                None => Self::FailedPrecondition(message),
            },
            Code::PermissionDenied => Self::PermissionDenied(message),
            Code::Unauthenticated => Self::Unauthenticated(message),
            Code::ResourceExhausted => Self::ResourceExhausted(message),
            Code::DataLoss => Self::DataLoss(message),
            Code::Unavailable => Self::Unavailable { message, maybe_applied },
            Code::DeadlineExceeded => Self::Timeout { maybe_applied },
            Code::Aborted => Self::Aborted { message, maybe_applied },
            Code::Unimplemented => Self::Unimplemented(message),
            Code::Internal => Self::Internal(message),
            code => Self::Other { code, message },
        }
    }

    /// The gRPC status code that best matches this error.
    pub fn code(&self) -> Code {
        match self {
            Self::Config(_) | Self::InvalidArgument(_) => Code::InvalidArgument,
            Self::NotFound => Code::NotFound,
            Self::Conflict { .. } | Self::FailedPrecondition(_) => Code::FailedPrecondition,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::ResourceExhausted(_) => Code::ResourceExhausted,
            Self::DataLoss(_) => Code::DataLoss,
            Self::Unavailable { .. } => Code::Unavailable,
            Self::Timeout { .. } => Code::DeadlineExceeded,
            Self::Aborted { .. } => Code::Aborted,
            Self::Unimplemented(_) => Code::Unimplemented,
            Self::Internal(_) => Code::Internal,
            Self::Other { code, .. } => *code,
            Self::MaybeApplied { last } => last.code(),
        }
    }

    /// True when a failed write may nevertheless have been applied: some attempt
    /// was sent and its outcome is unknown. Always false for reads and for
    /// errors the server answered definitely.
    pub fn may_have_applied(&self) -> bool {
        match self {
            Self::Unavailable { maybe_applied, .. }
            | Self::Timeout { maybe_applied }
            | Self::Aborted { maybe_applied, .. } => *maybe_applied,
            Self::MaybeApplied { .. } => true,
            _ => false,
        }
    }

    /// Appends a note (attempts made, last endpoint) to the message of an error the
    /// retry loop gave up on; errors without a free-text message are left as they are.
    pub(crate) fn with_note(mut self, note: &str) -> Self {
        match &mut self {
            Self::Unavailable { message, .. } | Self::Aborted { message, .. } | Self::ResourceExhausted(message) => {
                message.push_str(" (");
                message.push_str(note);
                message.push(')');
            }
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataValue;

    fn conflict_status(version: &'static str) -> Status {
        let mut status = Status::failed_precondition("expected version 3");
        status
            .metadata_mut()
            .insert(CURRENT_VERSION_METADATA_KEY, MetadataValue::from_static(version));
        status
    }

    #[test]
    fn failed_precondition_with_version_metadata_is_a_conflict() {
        let error = Error::from_answer(&conflict_status("7"), false);
        assert_eq!(
            error,
            Error::Conflict {
                current_version: Some(7)
            }
        );
        assert_eq!(error.to_string(), "version conflict: current version is 7");
    }

    #[test]
    fn conflict_on_a_missing_record_has_no_current_version() {
        let error = Error::from_answer(&conflict_status("0"), false);
        assert_eq!(error, Error::Conflict { current_version: None });
    }

    #[test]
    fn failed_precondition_without_metadata_stays_plain() {
        let status = Status::failed_precondition("quorum in one zone");
        let error = Error::from_answer(&status, false);
        assert_eq!(error, Error::FailedPrecondition("quorum in one zone".into()));
    }

    #[test]
    fn code_maps_back_to_the_answered_status_code() {
        for code in [
            Code::InvalidArgument,
            Code::NotFound,
            Code::FailedPrecondition,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::ResourceExhausted,
            Code::DataLoss,
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::Unimplemented,
            Code::Internal,
            Code::Cancelled,
            Code::Unknown,
        ] {
            let error = Error::from_answer(&Status::new(code, "x"), false);
            assert_eq!(error.code(), code, "{error:?}");
        }
    }

    #[test]
    fn only_unknown_outcomes_may_have_applied() {
        assert!(
            Error::Unavailable {
                message: String::new(),
                maybe_applied: true
            }
            .may_have_applied()
        );
        assert!(Error::Timeout { maybe_applied: true }.may_have_applied());
        assert!(!Error::Timeout { maybe_applied: false }.may_have_applied());
        assert!(!Error::NotFound.may_have_applied());
        assert!(!Error::InvalidArgument("x".into()).may_have_applied());
        assert!(
            !Error::Conflict {
                current_version: Some(1)
            }
            .may_have_applied()
        );
    }

    #[test]
    fn resource_exhausted_after_an_unknown_outcome_keeps_the_doubt() {
        let status = Status::resource_exhausted("slow down");
        assert_eq!(
            Error::from_answer(&status, false),
            Error::ResourceExhausted("slow down".into())
        );
        assert!(Error::from_answer(&status, true).may_have_applied());
    }

    #[test]
    fn a_definite_answer_after_an_unknown_outcome_still_may_have_applied() {
        for (status, code) in [
            (conflict_status("9"), Code::FailedPrecondition),
            (Status::not_found("tenant deleted"), Code::NotFound),
            (Status::permission_denied("key revoked"), Code::PermissionDenied),
            (Status::invalid_argument("x"), Code::InvalidArgument),
            (
                Status::failed_precondition("request id retired"),
                Code::FailedPrecondition,
            ),
        ] {
            let error = Error::from_answer(&status, true);
            assert!(error.may_have_applied(), "{error}");
            assert_eq!(error.code(), code);
            assert!(error.to_string().contains("may have been applied"), "{error}");
            assert!(!Error::from_answer(&status, false).may_have_applied());
        }
    }
}
