//! Which failed attempts are worth another try, and what a failure says about
//! whether a write happened.
//!
//! An attempt fails in one of four ways: our own deadline passed, the
//! connection could not be opened (the request never left), the connection
//! broke after the request may have left, or the server answered with a
//! status. Reads and idempotent writes (every write carries a `WriteId`, so
//! the server applies a retried write once) retry the transient ones;
//! membership changes retry only UNAVAILABLE, the safe and simple subset.

use std::error::Error as StdError;

use safekeep_api::wire;
use tonic::{Code, Status};

use crate::error::{Error, NOT_APPLIED_METADATA_KEY};

/// How a request may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryPolicy {
    /// A read: idempotent, so every transient failure is retried.
    Read,
    /// A record write carrying a `WriteId`: retried like a read, reusing the same id.
    Write,
    /// A membership change: retried only on UNAVAILABLE.
    Membership,
}

impl RetryPolicy {
    /// True for requests that change state, whose failures may leave the outcome unknown.
    pub(crate) fn is_write(self) -> bool {
        !matches!(self, Self::Read)
    }
}

/// How one attempt failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The attempt's own deadline passed before an answer came.
    TimedOut,
    /// Connecting failed, so the request never left this process.
    NotSent(Status),
    /// The connection broke; the request may have reached the server.
    ConnectionLost(Status),
    /// The server answered with this status.
    Answered(Status),
}

impl Failure {
    /// Sorts a status returned by a tonic call into the failure it stands for.
    ///
    /// Statuses made locally from a transport error carry that error as their
    /// source; statuses decoded from a server's answer carry none. tonic
    /// enforces the request's `grpc-timeout` itself and reports it as a
    /// [`tonic::TimeoutExpired`] source.
    pub(crate) fn from_status(status: Status) -> Self {
        if status.source().is_none() {
            return Self::Answered(status);
        }
        if wire::caused_by::<tonic::TimeoutExpired>(&status) {
            Self::TimedOut
        } else if wire::never_sent(&status) {
            Self::NotSent(status)
        } else {
            Self::ConnectionLost(status)
        }
    }

    /// True when another attempt may succeed and is safe under `policy`.
    pub(crate) fn is_retryable(&self, policy: RetryPolicy) -> bool {
        match policy {
            RetryPolicy::Read => match self {
                Self::TimedOut | Self::NotSent(_) | Self::ConnectionLost(_) => true,
                Self::Answered(status) => matches!(
                    status.code(),
                    Code::Unavailable | Code::DeadlineExceeded | Code::Aborted | Code::ResourceExhausted
                ),
            },
            // A server that cancelled a write (its deadline passed mid-proposal)
            // or failed it unexpectedly may still commit it: retry with the same id.
            RetryPolicy::Write => match self {
                Self::TimedOut | Self::NotSent(_) | Self::ConnectionLost(_) => true,
                Self::Answered(status) => matches!(
                    status.code(),
                    Code::Unavailable
                        | Code::DeadlineExceeded
                        | Code::Aborted
                        | Code::ResourceExhausted
                        | Code::Cancelled
                        | Code::Unknown
                ),
            },
            RetryPolicy::Membership => match self {
                Self::NotSent(_) => true,
                Self::Answered(status) => status.code() == Code::Unavailable,
                Self::TimedOut | Self::ConnectionLost(_) => false,
            },
        }
    }

    /// True when the request was sent and its outcome is unknown.
    pub(crate) fn outcome_unknown(&self) -> bool {
        match self {
            Self::TimedOut | Self::ConnectionLost(_) => true,
            Self::NotSent(_) => false,
            Self::Answered(status) => {
                let not_applied = status
                    .metadata()
                    .get(NOT_APPLIED_METADATA_KEY)
                    .is_some_and(|v| v.as_bytes() == b"true");
                !not_applied
                    && matches!(
                        status.code(),
                        Code::Unavailable | Code::DeadlineExceeded | Code::Aborted | Code::Cancelled | Code::Unknown
                    )
            }
        }
    }

    /// The error to hand the caller when this is the last failure.
    pub(crate) fn into_error(self, maybe_applied: bool) -> Error {
        match self {
            Self::TimedOut => Error::Timeout { maybe_applied },
            Self::NotSent(status) | Self::ConnectionLost(status) => Error::Unavailable {
                message: describe_transport_status(&status),
                maybe_applied,
            },
            Self::Answered(status) => Error::from_answer(&status, maybe_applied),
        }
    }
}

/// The status message followed by the innermost cause, which says what really
/// happened ("Connection refused") where tonic's message is generic.
fn describe_transport_status(status: &Status) -> String {
    let mut innermost = None;
    let mut next = status.source();
    while let Some(error) = next {
        innermost = Some(error);
        next = error.source();
    }
    match innermost.map(ToString::to_string) {
        Some(cause) if !status.message().contains(&cause) => {
            format!("{}: {cause}", status.message())
        }
        _ => status.message().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_POLICIES: [RetryPolicy; 3] = [RetryPolicy::Read, RetryPolicy::Write, RetryPolicy::Membership];

    fn answered(code: Code) -> Failure {
        Failure::from_status(Status::new(code, "from the server"))
    }

    fn not_sent() -> Failure {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        Failure::from_status(Status::from_error(Box::new(tonic::ConnectError(Box::new(refused)))))
    }

    fn connection_lost() -> Failure {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        Failure::from_status(Status::from_error(Box::new(reset)))
    }

    #[test]
    fn server_statuses_are_answers_and_transport_errors_are_not() {
        let expired = Status::from_error(Box::new(tonic::TimeoutExpired(())));
        assert!(matches!(Failure::from_status(expired), Failure::TimedOut));
        assert!(matches!(answered(Code::Unavailable), Failure::Answered(_)));
        assert!(matches!(not_sent(), Failure::NotSent(_)));
        assert!(matches!(connection_lost(), Failure::ConnectionLost(_)));
    }

    #[test]
    fn transient_codes_retry_for_reads_and_writes() {
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::ResourceExhausted,
        ] {
            assert!(answered(code).is_retryable(RetryPolicy::Read), "{code:?}");
            assert!(answered(code).is_retryable(RetryPolicy::Write), "{code:?}");
        }
        for failure in [Failure::TimedOut, not_sent(), connection_lost()] {
            assert!(failure.is_retryable(RetryPolicy::Read), "{failure:?}");
            assert!(failure.is_retryable(RetryPolicy::Write), "{failure:?}");
        }
    }

    #[test]
    fn definite_answers_never_retry() {
        for code in [
            Code::InvalidArgument,
            Code::NotFound,
            Code::FailedPrecondition,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::DataLoss,
            Code::Internal,
            Code::Unimplemented,
            Code::AlreadyExists,
            Code::OutOfRange,
        ] {
            for policy in ALL_POLICIES {
                assert!(!answered(code).is_retryable(policy), "{code:?} {policy:?}");
            }
        }
        for code in [Code::Cancelled, Code::Unknown] {
            assert!(
                answered(code).is_retryable(RetryPolicy::Write),
                "a write may have committed: {code:?}"
            );
            assert!(answered(code).outcome_unknown(), "{code:?}");
            assert!(!answered(code).is_retryable(RetryPolicy::Read), "{code:?}");
            assert!(!answered(code).is_retryable(RetryPolicy::Membership), "{code:?}");
        }
    }

    #[test]
    fn membership_changes_retry_only_unavailable() {
        let policy = RetryPolicy::Membership;
        assert!(answered(Code::Unavailable).is_retryable(policy));
        assert!(not_sent().is_retryable(policy));
        assert!(!Failure::TimedOut.is_retryable(policy));
        assert!(!connection_lost().is_retryable(policy));
        for code in [Code::DeadlineExceeded, Code::Aborted, Code::ResourceExhausted] {
            assert!(!answered(code).is_retryable(policy), "{code:?}");
        }
    }

    #[test]
    fn outcome_is_unknown_only_after_the_request_may_have_left() {
        assert!(Failure::TimedOut.outcome_unknown());
        assert!(connection_lost().outcome_unknown());
        assert!(answered(Code::Unavailable).outcome_unknown());
        assert!(answered(Code::DeadlineExceeded).outcome_unknown());
        assert!(answered(Code::Aborted).outcome_unknown());
        assert!(!not_sent().outcome_unknown());
        assert!(!answered(Code::ResourceExhausted).outcome_unknown());
        assert!(!answered(Code::InvalidArgument).outcome_unknown());
        assert!(!answered(Code::FailedPrecondition).outcome_unknown());
    }

    #[test]
    fn an_unavailable_answer_marked_not_applied_has_a_known_outcome() {
        let mut status = Status::unavailable("no leader");
        status.metadata_mut().insert(
            NOT_APPLIED_METADATA_KEY,
            tonic::metadata::MetadataValue::from_static("true"),
        );
        let failure = Failure::from_status(status);
        assert!(!failure.outcome_unknown());
        assert!(failure.is_retryable(RetryPolicy::Write), "still worth retrying");
    }

    #[test]
    fn final_errors_carry_the_maybe_applied_flag() {
        assert_eq!(
            Failure::TimedOut.into_error(true),
            Error::Timeout { maybe_applied: true }
        );
        let error = not_sent().into_error(false);
        assert!(matches!(error, Error::Unavailable { .. }));
        assert!(!error.may_have_applied());
        assert!(connection_lost().into_error(true).may_have_applied());
        assert!(answered(Code::Unavailable).into_error(true).may_have_applied());
        assert!(answered(Code::InvalidArgument).into_error(true).may_have_applied());
        assert!(!answered(Code::InvalidArgument).into_error(false).may_have_applied());
    }

    #[test]
    fn transport_messages_name_the_underlying_cause() {
        let error = not_sent().into_error(false);
        assert!(error.to_string().contains("refused"), "{error}");
    }

    #[test]
    fn only_writes_can_leave_an_unknown_outcome() {
        assert!(!RetryPolicy::Read.is_write());
        assert!(RetryPolicy::Write.is_write());
        assert!(RetryPolicy::Membership.is_write());
    }
}
