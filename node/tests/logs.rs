//! The node's log as a log pipeline reads it, from a real node process whose
//! output goes to a file: with `log_format = "json"` in node.toml every line
//! is one JSON object with timestamp, level, target and fields, and an admin
//! action shows up as an audit entry under its own target, inside the span
//! of the request that made it; restarted with `--log-format text` (the flag
//! overrides the file), the file gets plain text with no ANSI escapes.

mod common;

use std::path::Path;

use common::{TlsFiles, eventually, free_base_port, issue_test_certs, spawn_node, tls_channel};
use safekeep_api::v1::CreateTenantRequest;
use safekeep_api::v1::admin_client::AdminClient;
use safekeep_node::crypto::MasterKeyFile;
use safekeep_node::local_cluster::{node_config, node_tls, plan};
use safekeep_node::logging::LogFormat;
use serde_json::Value;

/// The complete lines of a log file (a line still being written is left out).
fn lines(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete.lines().map(str::to_string).collect()
}

async fn ready(http: &str) -> Option<()> {
    let response = reqwest::get(format!("http://{http}/readyz")).await.ok()?;
    response.status().is_success().then_some(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_audit_entries_and_text_logs_to_a_file_have_no_colours() {
    let dir = tempfile::TempDir::new().unwrap();
    let certs = dir.path().join("certs");
    issue_test_certs(&certs, [1]);
    let base = free_base_port();
    let members = plan(1, base).unwrap();
    let node_dir = dir.path().join("node-1");
    std::fs::create_dir_all(&node_dir).unwrap();
    let mut config = node_config(&members[0], &members, &node_dir, base, Some(node_tls(&certs, 1)));
    config.encryption.master_key_file = Some(dir.path().join("master.keys"));
    MasterKeyFile::generate(config.encryption.master_key_file.as_ref().unwrap(), "k1").unwrap();
    config.raft = common::test_raft_settings();
    config.log_format = Some(LogFormat::Json);
    let config_path = node_dir.join("node.toml");
    std::fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();
    let http = config.http_listen.unwrap().to_string();
    let client = members[0].client_address.clone();

    let json_log = node_dir.join("node.json.log");
    let mut node = spawn_node(&config_path, &json_log, "info");
    eventually("the node to be ready", || ready(&http)).await;
    let channel = tls_channel(&client, &TlsFiles::operator(&certs)).await.unwrap();
    AdminClient::new(channel)
        .create_tenant(CreateTenantRequest { tenant: "acme".into() })
        .await
        .expect("the operator creates a tenant");

    let audit = eventually("the audit entry in the JSON log", || async {
        lines(&json_log)
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| line["target"] == "safekeep::audit" && line["fields"]["action"] == "create-tenant")
    })
    .await;
    assert_eq!(audit["level"], "INFO", "{audit}");
    assert_eq!(audit["fields"]["tenant"], "acme", "{audit}");
    assert_eq!(audit["fields"]["actor"], "operator:admin", "{audit}");
    assert_eq!(audit["span"]["method"], "/safekeep.v1.Admin/CreateTenant", "{audit}");
    let all = lines(&json_log);
    assert!(all.len() > 1, "the start-up was logged too");
    for line in &all {
        let parsed: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for field in ["timestamp", "level", "target", "fields"] {
            assert!(!parsed[field].is_null(), "no {field}: {line}");
        }
    }

    node.start_kill().unwrap();
    node.wait().await.unwrap();

    // The flag overrides the file; output to a file is never coloured.
    let text_log = node_dir.join("node.text.log");
    let log = std::fs::File::create(&text_log).unwrap();
    let mut node = tokio::process::Command::new(env!("CARGO_BIN_EXE_safekeep-node"))
        .args(["--log", "info", "--log-format", "text", "run", "--config"])
        .arg(&config_path)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("restart the node");
    eventually("the restarted node to be ready", || ready(&http)).await;
    let text = std::fs::read_to_string(&text_log).unwrap();
    assert!(text.contains(" INFO "), "text lines: {text}");
    assert!(!text.contains('\u{1b}'), "ANSI escapes in a log file: {text:?}");
    assert!(!text.trim_start().starts_with('{'), "text, not JSON: {text}");
    node.start_kill().unwrap();
    node.wait().await.unwrap();
}
