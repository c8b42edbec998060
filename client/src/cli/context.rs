//! What every command runs with: the connected client and the global
//! options, and how a command prints its result (text for people, one line
//! of JSON for scripts).

use std::io::Write;

use safekeep_client::{Client, Error};
use serde_json::Value;

use super::{CliError, Target};

/// Everything a command needs: the client and the global options.
pub(super) struct Context {
    pub(super) client: Client,
    pub(super) tenant: Option<String>,
    pub(super) json: bool,
    pub(super) timeout_ms: u64,
}

impl Context {
    pub(super) fn tenant(&self) -> Result<&str, CliError> {
        match self.tenant.as_deref() {
            Some(tenant) if !tenant.is_empty() => Ok(tenant),
            _ => Err(CliError::Usage(
                "--tenant (or SAFEKEEP_TENANT) is required for record commands".into(),
            )),
        }
    }

    pub(super) fn failed(&self, target: Target) -> impl FnOnce(Error) -> CliError {
        let timeout_ms = self.timeout_ms;
        move |error| CliError::Request {
            error,
            target,
            timeout_ms,
        }
    }

    /// Whether the output is JSON for scripts rather than text for people.
    pub(super) fn json(&self) -> bool {
        self.json
    }

    /// Prints `text` for humans or `value` as one line of JSON.
    pub(super) fn print(&self, text: impl FnOnce() -> String, value: impl FnOnce() -> Value) -> Result<(), CliError> {
        if self.json {
            emit(value().to_string().as_bytes(), true)
        } else {
            emit(text().as_bytes(), true)
        }
    }
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Value {
    // These types hold only strings, numbers and booleans, which always serialize.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Writes to standard output, optionally ending the line, and flushes.
pub(super) fn emit(bytes: &[u8], newline: bool) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    let result = stdout
        .write_all(bytes)
        .and_then(|()| if newline { stdout.write_all(b"\n") } else { Ok(()) })
        .and_then(|()| stdout.flush());
    result.map_err(|error| CliError::Io(format!("cannot write to standard output: {error}")))
}
