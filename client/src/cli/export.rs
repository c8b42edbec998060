//! `safekeep tenant export`: a tenant's records as JSON lines, to standard
//! output or a file, with a progress line on a terminal and a resume token
//! when the export stops short.

use std::fs::OpenOptions;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use safekeep_client::Record;
use serde_json::{Map, Value, json};

use super::context::Context;
use super::{CliError, Target};

/// One record as one line of the export: text values as text, other bytes in base64.
pub fn record_line(record: &Record) -> Value {
    let mut line = Map::new();
    line.insert("key".into(), json!(record.key));
    match std::str::from_utf8(&record.value) {
        Ok(text) => line.insert("value".into(), json!(text)),
        Err(_) => line.insert("value_base64".into(), json!(BASE64.encode(&record.value))),
    };
    line.insert("version".into(), json!(record.version));
    line.insert("updated_at_unix_ms".into(), json!(record.updated_at_unix_ms));
    Value::Object(line)
}

/// Runs the export; `resume` appends to `output` after the chunk it names.
pub(super) async fn run(
    context: &Context,
    tenant: &str,
    output: Option<&Path>,
    resume: Option<&str>,
) -> Result<(), CliError> {
    let mut sink: Box<dyn Write> = match output {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .write(true)
                .append(resume.is_some())
                .truncate(resume.is_none())
                .open(path)
                .map_err(|e| CliError::Io(format!("cannot open {}: {e}", path.display())))?;
            Box::new(BufWriter::new(file))
        }
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let progress = progress_bar(tenant);
    let failed = context.failed(Target::Tenant(tenant.to_string()));
    let mut export = match context.client.export(tenant, resume).await {
        Ok(export) => export,
        Err(e) => return Err(failed(e)),
    };
    let mut records = 0u64;
    let write_err = |e: std::io::Error| CliError::Io(format!("cannot write the export: {e}"));
    loop {
        let chunk = match export.next_chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                sink.flush().map_err(write_err)?;
                progress.abandon();
                if let Some(token) = export.resume_token() {
                    eprintln!(
                        "the export stopped after {records} records; to go on, run: \
                         safekeep tenant export {tenant} --resume {token} --output FILE"
                    );
                }
                return Err(failed(e));
            }
        };
        for record in &chunk.records {
            serde_json::to_writer(&mut sink, &record_line(record)).map_err(|e| write_err(e.into()))?;
            sink.write_all(b"\n").map_err(write_err)?;
        }
        // Flushed per chunk, so a resume token printed later never runs ahead of the file.
        sink.flush().map_err(write_err)?;
        records += chunk.records.len() as u64;
        progress.set_position(records);
    }
    progress.finish_and_clear();
    let as_of = export.as_of_version().unwrap_or(0);
    eprintln!("exported {records} records of tenant '{tenant}' as of version {as_of}");
    Ok(())
}

/// A spinner counting records, drawn only when standard error is a terminal.
fn progress_bar(tenant: &str) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(None, target);
    let style = ProgressStyle::with_template("{spinner} exporting {msg}: {pos} records ({per_sec}) {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    bar.set_style(style);
    bar.set_message(tenant.to_string());
    bar
}
