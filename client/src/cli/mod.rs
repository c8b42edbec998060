//! The `safekeep` command-line tool: argument parsing ([`args`]), which
//! credentials a command presents ([`credentials`]), running a command
//! against the SDK ([`run`], tenants and keys in [`admin`], exports in
//! [`export`]), rendering results ([`output`]), shell completions and the
//! man page ([`docs`]), and the mapping from failures to one-line messages
//! and exit codes (here).

mod admin;
pub mod args;
mod context;
pub mod credentials;
mod docs;
pub mod export;
mod import;
pub mod output;
pub mod run;

use safekeep_client::Error;

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code for any error without a more specific code.
pub const EXIT_OTHER: u8 = 1;
/// Exit code for usage errors (clap uses it for bad flags too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the record or node does not exist.
pub const EXIT_NOT_FOUND: u8 = 3;
/// Exit code when a compare-and-set did not match.
pub const EXIT_CONFLICT: u8 = 4;
/// Exit code when the cluster could not be reached or did not answer in time.
pub const EXIT_UNAVAILABLE: u8 = 5;

/// What a command was about, to phrase its errors.
#[derive(Debug, Clone)]
pub enum Target {
    /// One record of a tenant.
    Record {
        /// The tenant.
        tenant: String,
        /// The record's key.
        key: String,
    },
    /// A tenant's records as a whole.
    Tenant(String),
    /// One cluster member.
    Node(u64),
    /// The cluster.
    Cluster,
}

/// A failed command: what went wrong, phrased for the person at the terminal.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line cannot be acted on.
    #[error("{0}")]
    Usage(String),
    /// A local file or stream could not be read or written.
    #[error("{0}")]
    Io(String),
    /// The cluster refused or failed the request.
    #[error("{}", describe(.error, .target, *.timeout_ms))]
    Request {
        /// The SDK's error.
        error: Error,
        /// What the request was about.
        target: Target,
        /// The per-attempt deadline in force, for timeout messages.
        timeout_ms: u64,
    },
    /// The server answered something the tool cannot use.
    #[error("{0}")]
    Protocol(String),
    /// A check found that data was tampered with.
    #[error("{0}")]
    Tampered(String),
}

impl CliError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => EXIT_USAGE,
            Self::Io(_) | Self::Protocol(_) | Self::Tampered(_) => EXIT_OTHER,
            Self::Request { error, .. } => match error {
                Error::Config(_) | Error::InvalidArgument(_) => EXIT_USAGE,
                Error::NotFound => EXIT_NOT_FOUND,
                Error::Conflict { .. } => EXIT_CONFLICT,
                Error::Unavailable { .. } | Error::Timeout { .. } => EXIT_UNAVAILABLE,
                _ => EXIT_OTHER,
            },
        }
    }
}

const MAYBE_APPLIED_NOTE: &str = "; the write may have been applied: read the record back before retrying";

fn describe(error: &Error, target: &Target, timeout_ms: u64) -> String {
    let maybe_applied = if error.may_have_applied() {
        MAYBE_APPLIED_NOTE
    } else {
        ""
    };
    match (error, target) {
        (Error::NotFound, Target::Record { tenant, key }) => {
            format!("record '{key}' not found in tenant '{tenant}'")
        }
        (Error::NotFound, Target::Tenant(tenant)) => format!("tenant '{tenant}' not found"),
        (Error::NotFound, Target::Node(id)) => format!("node {id} not found"),
        (Error::Conflict { current_version: None }, Target::Record { tenant, key }) => {
            format!("version conflict: record '{key}' does not exist in tenant '{tenant}'")
        }
        (Error::Unavailable { message, .. }, _) => {
            format!("cannot reach the cluster: {message}{maybe_applied}")
        }
        (Error::Timeout { .. }, _) => {
            format!("request timed out (deadline {timeout_ms} ms per attempt){maybe_applied}")
        }
        (Error::Aborted { message, .. }, _) => {
            format!("request aborted by the server: {message}{maybe_applied}")
        }
        (error, _) => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(error: Error) -> CliError {
        CliError::Request {
            error,
            target: Target::Record {
                tenant: "acme".into(),
                key: "k".into(),
            },
            timeout_ms: 5_000,
        }
    }

    #[test]
    fn messages_name_the_record_and_the_conflict() {
        assert_eq!(
            request(Error::NotFound).to_string(),
            "record 'k' not found in tenant 'acme'"
        );
        let conflict = request(Error::Conflict {
            current_version: Some(12),
        });
        assert_eq!(conflict.to_string(), "version conflict: current version is 12");
        assert_eq!(conflict.exit_code(), EXIT_CONFLICT);
    }

    #[test]
    fn exit_codes_distinguish_the_common_failures() {
        assert_eq!(request(Error::NotFound).exit_code(), EXIT_NOT_FOUND);
        assert_eq!(
            request(Error::Timeout { maybe_applied: false }).exit_code(),
            EXIT_UNAVAILABLE
        );
        assert_eq!(request(Error::Internal("x".into())).exit_code(), EXIT_OTHER);
        assert_eq!(CliError::Usage("x".into()).exit_code(), EXIT_USAGE);
    }

    #[test]
    fn unknown_write_outcomes_are_flagged() {
        let error = request(Error::Unavailable {
            message: "no leader".into(),
            maybe_applied: true,
        });
        assert!(error.to_string().contains("may have been applied"));
    }
}
