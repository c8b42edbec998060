//! The rules of the wire that both ends apply, written once: the metadata
//! names a request and a response carry, and the rule that tells a failed
//! call that never left the caller from one that may have reached a server.
//! The node, the SDK and the tests all take them from here.

use std::error::Error as StdError;

/// Request metadata that carries an API key, as `Bearer <key>`.
pub const AUTHORIZATION: &str = "authorization";
/// What precedes the key in the `authorization` metadata.
pub const BEARER_PREFIX: &str = "Bearer ";
/// Request metadata that states why support staff read a tenant's records.
pub const REASON: &str = "x-safekeep-reason";
/// Response metadata of a refused conditional write: the record's current
/// version (0 when it does not exist).
pub const CURRENT_VERSION: &str = "x-safekeep-current-version";
/// Response metadata that says a failed write was certainly not applied.
pub const NOT_APPLIED: &str = "x-safekeep-not-applied";
/// Largest message of the records API either way: a full batch (16 MiB of
/// keys and values) or a page holding the largest value, plus framing. Most
/// gRPC clients accept only 4 MiB by default; the SDK accepts this much.
pub const MAX_RECORDS_MESSAGE_BYTES: usize = (16 << 20) + (1 << 20);

/// The `authorization` value that presents `key`.
pub fn bearer(key: &str) -> String {
    format!("{BEARER_PREFIX}{key}")
}

/// The key an `authorization` value presents, if it is `Bearer <key>`.
pub fn bearer_key(value: &str) -> Option<&str> {
    value.strip_prefix(BEARER_PREFIX)
}

/// True when a call failed while connecting, before any byte of the request
/// was sent, so the request cannot have been applied anywhere. A status the
/// caller's own transport made carries the transport error as its source;
/// one a server answered with carries none.
pub fn never_sent(status: &tonic::Status) -> bool {
    caused_by::<tonic::ConnectError>(status)
}

/// True when `E` is somewhere in the chain of sources of `status`.
pub fn caused_by<E: StdError + 'static>(status: &tonic::Status) -> bool {
    let mut next: Option<&(dyn StdError + 'static)> = status.source();
    while let Some(error) = next {
        if error.is::<E>() {
            return true;
        }
        next = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_was_never_sent_and_an_answer_or_a_reset_may_have_been() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let not_sent = tonic::Status::from_error(Box::new(tonic::ConnectError(Box::new(refused))));
        assert!(never_sent(&not_sent));
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        assert!(!never_sent(&tonic::Status::from_error(Box::new(reset))));
        assert!(!never_sent(&tonic::Status::unavailable("the server answered")));
    }

    #[test]
    fn a_bearer_value_carries_its_key_and_nothing_else_does() {
        assert_eq!(bearer_key(&bearer("skp_abc")), Some("skp_abc"));
        assert_eq!(bearer_key("Basic skp_abc"), None);
    }
}
