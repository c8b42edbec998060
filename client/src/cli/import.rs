//! `safekeep tenant import`: JSON lines as `tenant export` writes them (or
//! any lines with `key` and `value` or `value_base64`) written into a
//! tenant in atomic batches. With an export from a one-tenant restore, it
//! brings a tenant's records back into the live cluster under a new name.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use safekeep_client::BatchOp;
use serde_json::{Value, json};

use super::context::Context;
use super::{CliError, Target};

/// Most records one batch carries (the server takes up to 1,000).
const IMPORT_BATCH_OPS: usize = 500;
/// Most bytes of keys and values one batch carries (the server takes up to 16 MiB).
const IMPORT_BATCH_BYTES: usize = 8 << 20;

/// One line: the record's key and value.
fn parse_line(number: usize, line: &str) -> Result<(String, Vec<u8>), CliError> {
    let bad = |why: &str| CliError::Usage(format!("line {number}: {why}"));
    let value: Value = serde_json::from_str(line).map_err(|e| bad(&format!("not JSON: {e}")))?;
    let key = value["key"]
        .as_str()
        .ok_or_else(|| bad("no \"key\" string"))?
        .to_string();
    let bytes = match (value["value"].as_str(), value["value_base64"].as_str()) {
        (Some(text), None) => text.as_bytes().to_vec(),
        (None, Some(encoded)) => BASE64
            .decode(encoded)
            .map_err(|e| bad(&format!("value_base64 is not base64: {e}")))?,
        _ => return Err(bad("exactly one of \"value\" (text) or \"value_base64\" is needed")),
    };
    Ok((key, bytes))
}

/// Reads `input` (standard input when `None`) and writes its records into `tenant`.
pub(super) async fn run(context: &Context, tenant: &str, input: Option<&Path>) -> Result<(), CliError> {
    let source: Box<dyn Read> = match input {
        Some(path) => Box::new(
            std::fs::File::open(path).map_err(|e| CliError::Io(format!("cannot open {}: {e}", path.display())))?,
        ),
        None => Box::new(std::io::stdin()),
    };
    let mut batch: Vec<BatchOp> = Vec::new();
    let mut keys = std::collections::HashSet::new();
    let mut bytes = 0usize;
    let mut written = 0u64;
    for (index, line) in BufReader::new(source).lines().enumerate() {
        let line = line.map_err(|e| CliError::Io(format!("cannot read the input: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let (key, value) = parse_line(index + 1, &line)?;
        let size = key.len() + value.len();
        let full = batch.len() >= IMPORT_BATCH_OPS || bytes + size > IMPORT_BATCH_BYTES || keys.contains(&key);
        if full && !batch.is_empty() {
            written += batch.len() as u64;
            context
                .client
                .batch(tenant, std::mem::take(&mut batch))
                .await
                .map_err(context.failed(Target::Tenant(tenant.to_string())))?;
            keys.clear();
            bytes = 0;
        }
        bytes += size;
        keys.insert(key.clone());
        batch.push(BatchOp::Put {
            key,
            value,
            expected_version: None,
        });
    }
    if !batch.is_empty() {
        written += batch.len() as u64;
        context
            .client
            .batch(tenant, batch)
            .await
            .map_err(context.failed(Target::Tenant(tenant.to_string())))?;
    }
    context.print(
        || format!("imported {written} records into tenant '{tenant}'"),
        || json!({ "tenant": tenant, "records": written }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_give_text_or_binary_values_and_bad_lines_name_themselves() {
        assert_eq!(
            parse_line(1, r#"{"key":"a","value":"x","version":3}"#).unwrap(),
            ("a".to_string(), b"x".to_vec())
        );
        assert_eq!(
            parse_line(2, r#"{"key":"b","value_base64":"/wA="}"#).unwrap(),
            ("b".to_string(), vec![0xff, 0])
        );
        let err = parse_line(7, r#"{"key":"c"}"#).unwrap_err().to_string();
        assert!(err.starts_with("line 7:"), "{err}");
        assert!(parse_line(8, "not json").is_err());
        assert!(parse_line(9, r#"{"key":"d","value":"x","value_base64":"eA=="}"#).is_err());
    }
}
