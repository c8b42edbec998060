//! How the node writes its log, on standard output: text for people, with
//! colours only when standard output is a terminal (a file or a pipe gets
//! no ANSI escapes), or one JSON object per line for a log pipeline, each
//! with `timestamp`, `level`, `target`, `fields` and, inside a request,
//! `span` and `spans`. Audit entries keep their own target
//! (`safekeep::audit`) in both formats, so a pipeline can route them.

use std::io::IsTerminal;

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Filter used when the one given does not parse.
pub const FALLBACK_FILTER: &str = "info";

/// The shape of log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines; coloured on a terminal only.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Why the logger could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// Another logger is already the process's global one.
    #[error("a logger is already installed: {0}")]
    AlreadySet(String),
}

/// A logger writing `format` lines through `writer`, keeping what `filter`
/// (tracing's env-filter syntax; [`FALLBACK_FILTER`] if it does not parse)
/// lets through, with ANSI colours only if `ansi` and the format is text.
pub fn subscriber<W>(
    filter: &str,
    format: LogFormat,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new(FALLBACK_FILTER));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .with_ansi(false)
                .with_current_span(true)
                .with_span_list(true)
                .finish(),
        ),
    }
}

/// Installs the process's logger on standard output; colours only when
/// standard output is a terminal.
pub fn init(filter: &str, format: LogFormat) -> Result<(), LoggingError> {
    let ansi = std::io::stdout().is_terminal();
    tracing::subscriber::set_global_default(subscriber(filter, format, std::io::stdout, ansi))
        .map_err(|e| LoggingError::AlreadySet(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer that keeps everything written to it.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn log_an_audit_event(format: LogFormat, ansi: bool) -> String {
        let captured = Captured::default();
        let logger = subscriber("info", format, captured.clone(), ansi);
        tracing::subscriber::with_default(logger, || {
            let span = tracing::info_span!("request", method = "/safekeep.v1.Admin/CreateTenant");
            let _entered = span.enter();
            tracing::info!(target: "safekeep::audit", action = "create-tenant", tenant = "acme", "audit");
            tracing::debug!("filtered out");
        });
        String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn json_lines_carry_timestamp_level_target_fields_and_span() {
        let text = log_an_audit_event(LogFormat::Json, true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line: serde_json::Value = serde_json::from_str(lines[0]).expect("one JSON object per line");
        assert!(line["timestamp"].is_string(), "{line}");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["target"], "safekeep::audit");
        assert_eq!(line["fields"]["action"], "create-tenant");
        assert_eq!(line["fields"]["tenant"], "acme");
        assert_eq!(line["span"]["name"], "request");
        assert_eq!(line["span"]["method"], "/safekeep.v1.Admin/CreateTenant");
        assert!(!text.contains('\u{1b}'), "no ANSI escapes in JSON");
    }

    #[test]
    fn text_has_ansi_escapes_only_when_asked() {
        let plain = log_an_audit_event(LogFormat::Text, false);
        assert!(
            plain.contains("safekeep::audit") && plain.contains("create-tenant"),
            "{plain}"
        );
        assert!(!plain.contains('\u{1b}'), "{plain:?}");
        let coloured = log_an_audit_event(LogFormat::Text, true);
        assert!(coloured.contains('\u{1b}'), "{coloured:?}");
    }
}
