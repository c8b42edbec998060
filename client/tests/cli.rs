//! The `safekeep` binary end to end against the fake node: output, exit
//! codes and error messages, as a script or a person would see them.

mod common;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::{FakeServer, dead_endpoint};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Longest one CLI run may take before the test fails.
const CLI_BOUND: Duration = Duration::from_secs(20);

/// Runs the binary with `args`, feeding `stdin` if given, under [`CLI_BOUND`].
async fn safekeep(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_safekeep"));
    command
        .args(args)
        .env_remove("SAFEKEEP_ENDPOINTS")
        .env_remove("SAFEKEEP_TENANT")
        .env_remove("SAFEKEEP_CA")
        .env_remove("SAFEKEEP_CERT")
        .env_remove("SAFEKEEP_KEY")
        // The fake node speaks plaintext.
        .env("SAFEKEEP_PLAINTEXT", "1")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("the safekeep binary starts");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("a stdin pipe");
        pipe.write_all(bytes).await.expect("write the value to stdin");
        drop(pipe);
    }
    tokio::time::timeout(CLI_BOUND, child.wait_with_output())
        .await
        .expect("the CLI finished within its bound")
        .expect("the CLI's output was collected")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn exit_code(output: &Output) -> i32 {
    output.status.code().expect("the CLI exited rather than being killed")
}

#[tokio::test]
async fn put_then_get_round_trips_the_value() {
    let server = FakeServer::start().await;
    let endpoint = server.endpoint();
    let base = ["--endpoints", endpoint.as_str(), "--tenant", "acme"];

    let put = safekeep(&[&base[..], &["put", "greeting", "hello world"]].concat(), None).await;
    assert_eq!(exit_code(&put), 0, "stderr: {}", stderr(&put));
    assert!(
        stdout(&put).contains("put 'greeting' in tenant 'acme': version 1"),
        "{}",
        stdout(&put)
    );

    let get = safekeep(&[&base[..], &["get", "greeting"]].concat(), None).await;
    assert_eq!(exit_code(&get), 0, "stderr: {}", stderr(&get));
    let text = stdout(&get);
    assert!(text.contains("key:        greeting"), "{text}");
    assert!(text.contains("version:    1"), "{text}");
    assert!(text.contains("value: hello world"), "{text}");

    let raw = safekeep(&[&base[..], &["get", "greeting", "--value-only"]].concat(), None).await;
    assert_eq!(raw.stdout, b"hello world");
}

#[tokio::test]
async fn json_output_parses() {
    let server = FakeServer::start().await;
    let endpoint = server.endpoint();
    let base = ["--endpoints", endpoint.as_str(), "--tenant", "acme", "--json"];

    let put = safekeep(&[&base[..], &["put", "k", "v"]].concat(), None).await;
    assert_eq!(exit_code(&put), 0, "stderr: {}", stderr(&put));
    let put: Value = serde_json::from_slice(&put.stdout).expect("put prints JSON");
    assert_eq!(put["version"], 1);
    assert_eq!(put["key"], "k");

    let get = safekeep(&[&base[..], &["get", "k"]].concat(), None).await;
    let get: Value = serde_json::from_slice(&get.stdout).expect("get prints JSON");
    assert_eq!(get["value"], "v");
    assert_eq!(get["value_encoding"], "utf8");
    assert_eq!(get["version"], 1);

    let list = safekeep(&[&base[..], &["list", "--all", "--limit", "1"]].concat(), None).await;
    let list: Value = serde_json::from_slice(&list.stdout).expect("list prints JSON");
    assert_eq!(list["records"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["next_page_token"], Value::Null);

    let status = safekeep(&[&base[..], &["cluster", "status"]].concat(), None).await;
    assert_eq!(exit_code(&status), 0, "stderr: {}", stderr(&status));
    let status: Value = serde_json::from_slice(&status.stdout).expect("status prints JSON");
    assert_eq!(status["members"][0]["role"], "voter");
}

#[tokio::test]
async fn binary_values_from_stdin_show_as_labelled_hex() {
    let server = FakeServer::start().await;
    let endpoint = server.endpoint();
    let base = ["--endpoints", endpoint.as_str(), "--tenant", "acme"];

    let put = safekeep(
        &[&base[..], &["put", "blob", "--value-file", "-"]].concat(),
        Some(&[0xff, 0x00, 0x10]),
    )
    .await;
    assert_eq!(exit_code(&put), 0, "stderr: {}", stderr(&put));

    let get = safekeep(&[&base[..], &["get", "blob"]].concat(), None).await;
    let text = stdout(&get);
    assert!(text.contains("value (hex, not valid UTF-8, 3 bytes): ff0010"), "{text}");
}

#[tokio::test]
async fn missing_record_exits_with_the_not_found_code() {
    let server = FakeServer::start().await;
    let endpoint = server.endpoint();
    let output = safekeep(&["--endpoints", &endpoint, "--tenant", "acme", "get", "nope"], None).await;
    assert_eq!(exit_code(&output), 3);
    assert_eq!(
        stderr(&output).trim(),
        "error: record 'nope' not found in tenant 'acme'"
    );
    assert!(output.stdout.is_empty());
}

#[tokio::test]
async fn version_conflict_exits_with_the_conflict_code() {
    let server = FakeServer::start().await;
    let endpoint = server.endpoint();
    let base = ["--endpoints", endpoint.as_str(), "--tenant", "acme"];
    let put = safekeep(&[&base[..], &["put", "k", "v1"]].concat(), None).await;
    assert_eq!(exit_code(&put), 0, "stderr: {}", stderr(&put));

    let output = safekeep(
        &[&base[..], &["put", "k", "v2", "--expected-version", "0"]].concat(),
        None,
    )
    .await;
    assert_eq!(exit_code(&output), 4);
    assert_eq!(stderr(&output).trim(), "error: version conflict: current version is 1");
}

#[tokio::test]
async fn record_commands_require_a_tenant() {
    let output = safekeep(&["--endpoints", "127.0.0.1:1", "get", "k"], None).await;
    assert_eq!(exit_code(&output), 2);
    assert!(stderr(&output).contains("--tenant"), "{}", stderr(&output));
}

#[tokio::test]
async fn unreachable_endpoint_fails_with_a_clear_message_in_bounded_time() {
    let endpoint = dead_endpoint().await;
    let started = Instant::now();
    let output = safekeep(&["--endpoints", &endpoint, "--tenant", "acme", "put", "k", "v"], None).await;
    let elapsed = started.elapsed();

    assert_eq!(exit_code(&output), 5);
    let message = stderr(&output);
    assert!(message.starts_with("error: cannot reach the cluster: "), "{message}");
    assert!(message.contains(&endpoint), "{message}");
    assert_eq!(message.trim_end().lines().count(), 1, "{message}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[tokio::test]
async fn help_describes_the_commands() {
    let output = safekeep(&["--help"], None).await;
    assert_eq!(exit_code(&output), 0);
    let text = stdout(&output);
    for word in ["put", "get", "delete", "list", "cluster", "--endpoints", "Exit codes"] {
        assert!(text.contains(word), "missing {word}: {text}");
    }
}

#[tokio::test]
async fn list_and_status_print_readable_text() {
    let server = FakeServer::start().await;
    let endpoint = server.endpoint();
    let base = ["--endpoints", endpoint.as_str(), "--tenant", "acme"];
    for key in ["a1", "a2", "b1"] {
        let put = safekeep(&[&base[..], &["put", key, "line one\nline two"]].concat(), None).await;
        assert_eq!(exit_code(&put), 0, "stderr: {}", stderr(&put));
    }

    let page = safekeep(&[&base[..], &["list", "--prefix", "a", "--limit", "1"]].concat(), None).await;
    let text = stdout(&page);
    assert_eq!(exit_code(&page), 0, "stderr: {}", stderr(&page));
    assert!(text.starts_with("a1\tv1\t\"line one\\nline two\"\n"), "{text}");
    assert!(text.contains("next page: --page-token a1"), "{text}");

    let all = safekeep(&[&base[..], &["list", "--all", "--limit", "1"]].concat(), None).await;
    assert_eq!(stdout(&all).lines().count(), 3, "{}", stdout(&all));

    let status = safekeep(&[&base[..], &["cluster", "status"]].concat(), None).await;
    let text = stdout(&status);
    assert!(
        text.contains("answered by node 1 (zone zone-a), leader 1, term 3"),
        "{text}"
    );
    assert!(text.contains("ID  ROLE"), "{text}");
    assert!(text.contains("voter"), "{text}");
}

#[tokio::test]
async fn refused_membership_change_reports_the_server_reason() {
    let server = FakeServer::start().await;
    let endpoint = server.endpoint();
    let output = safekeep(&["--endpoints", &endpoint, "cluster", "promote", "2"], None).await;
    assert_eq!(exit_code(&output), 1);
    assert_eq!(
        stderr(&output).trim(),
        "error: failed precondition: a quorum of voters would be in one zone"
    );
}

/// Runs the binary with `args` and no plaintext or TLS settings from the environment.
async fn safekeep_unconfigured(args: &[&str]) -> Output {
    tokio::time::timeout(
        CLI_BOUND,
        Command::new(env!("CARGO_BIN_EXE_safekeep"))
            .args(args)
            .env_remove("SAFEKEEP_PLAINTEXT")
            .env_remove("SAFEKEEP_CA")
            .env_remove("SAFEKEEP_CERT")
            .env_remove("SAFEKEEP_KEY")
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("the CLI finished within its bound")
    .expect("the CLI ran")
}

#[tokio::test]
async fn without_tls_settings_the_cli_refuses_to_guess() {
    let output = safekeep_unconfigured(&["--endpoints", "127.0.0.1:1", "cluster", "status"]).await;
    assert_eq!(exit_code(&output), 2, "stderr: {}", stderr(&output));
    assert!(stderr(&output).contains("--ca PEM"), "stderr: {}", stderr(&output));

    let missing_ca = safekeep_unconfigured(&["--ca", "/nonexistent/ca.pem", "cluster", "status"]).await;
    assert_eq!(exit_code(&missing_ca), 2, "stderr: {}", stderr(&missing_ca));
    assert!(
        stderr(&missing_ca).contains("cannot read CA certificate"),
        "stderr: {}",
        stderr(&missing_ca)
    );
}

#[tokio::test]
async fn an_api_key_needs_tls_and_an_empty_one_counts_as_none() {
    let server = FakeServer::start().await;
    let endpoint = server.endpoint();
    let args = ["--endpoints", endpoint.as_str(), "cluster", "status"];
    let with_key = safekeep(
        &[&["--api-key", "skp_0123456789abcdef_00"][..], &args[..]].concat(),
        None,
    )
    .await;
    assert_eq!(exit_code(&with_key), 2, "stderr: {}", stderr(&with_key));
    assert!(
        stderr(&with_key).contains("only over TLS"),
        "stderr: {}",
        stderr(&with_key)
    );
    let empty = safekeep(&[&["--api-key", ""][..], &args[..]].concat(), None).await;
    assert_eq!(exit_code(&empty), 0, "stderr: {}", stderr(&empty));
}

#[tokio::test]
async fn tenant_export_writes_every_record_as_a_json_line_and_resumes_into_a_file() {
    let server = FakeServer::start().await;
    let endpoint = server.endpoint();
    let base = ["--endpoints", endpoint.as_str(), "--tenant", "acme"];
    for (key, value) in [("a", "text"), ("b", "line one\nline two"), ("c", "3")] {
        let put = safekeep(&[&base[..], &["put", key, value]].concat(), None).await;
        assert_eq!(exit_code(&put), 0, "stderr: {}", stderr(&put));
    }
    let binary = [0xff, 0x00, 0xfe];
    let put = safekeep(&[&base[..], &["put", "d", "--value-file", "-"]].concat(), Some(&binary)).await;
    assert_eq!(exit_code(&put), 0, "stderr: {}", stderr(&put));

    let export = safekeep(&[&base[..], &["tenant", "export", "acme"]].concat(), None).await;
    assert_eq!(exit_code(&export), 0, "stderr: {}", stderr(&export));
    let lines: Vec<Value> = stdout(&export)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    let keys: Vec<&str> = lines.iter().map(|l| l["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["a", "b", "c", "d"]);
    assert_eq!(lines[1]["value"], "line one\nline two");
    assert_eq!(lines[3]["value_base64"], "/wD+");
    assert!(lines[3].get("value").is_none(), "{}", lines[3]);
    assert!(
        lines
            .iter()
            .all(|l| l["version"].as_u64().unwrap() > 0 && l["updated_at_unix_ms"].as_i64().unwrap() > 0)
    );
    assert!(
        stderr(&export).contains("exported 4 records of tenant 'acme'"),
        "{}",
        stderr(&export)
    );

    // Resuming after the first chunk appends exactly the rest to the file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("acme.jsonl");
    std::fs::write(&file, format!("{}\n{}\n", lines[0], lines[1])).unwrap();
    let file_arg = file.to_str().unwrap();
    // The fake's tokens are "as_of/last key"; its point in time is its fourth write.
    let token = "4/b";
    let resumed = safekeep(
        &[
            &base[..],
            &["tenant", "export", "acme", "--resume", token, "--output", file_arg],
        ]
        .concat(),
        None,
    )
    .await;
    assert_eq!(exit_code(&resumed), 0, "stderr: {}", stderr(&resumed));
    let written = std::fs::read_to_string(&file).unwrap();
    let keys: Vec<String> = written
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(keys, ["a", "b", "c", "d"]);
}

/// Whether bash, reading `script`, registers a completion for `program`.
fn bash_registers_completion(script: &[u8], program: &str) -> bool {
    use std::io::Write;
    let mut bash = std::process::Command::new("bash")
        .args(["--norc", "-c", &format!("source /dev/stdin && complete -p {program}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bash");
    bash.stdin.take().unwrap().write_all(script).unwrap();
    let output = bash.wait_with_output().unwrap();
    output.status.success() && String::from_utf8_lossy(&output.stdout).contains(program)
}

#[tokio::test]
async fn completions_and_the_man_page_print_without_a_cluster() {
    let bash = safekeep_unconfigured(&["completions", "bash"]).await;
    assert_eq!(exit_code(&bash), 0, "stderr: {}", stderr(&bash));
    assert!(stdout(&bash).contains("transfer-leader"), "{}", stdout(&bash));
    assert!(bash_registers_completion(&bash.stdout, "safekeep"));
    for (shell, marker) in [("zsh", "#compdef safekeep"), ("fish", "complete -c safekeep")] {
        let output = safekeep_unconfigured(&["completions", shell]).await;
        assert_eq!(exit_code(&output), 0, "{shell}: {}", stderr(&output));
        let script = stdout(&output);
        assert!(script.contains(marker) && script.contains("audit"), "{shell}: {script}");
    }
    let man = safekeep_unconfigured(&["man"]).await;
    assert_eq!(exit_code(&man), 0, "stderr: {}", stderr(&man));
    let page = stdout(&man);
    assert!(page.contains(".TH safekeep 1"), "{page}");
    for section in ["completions", "audit", "\\-\\-as"] {
        assert!(page.contains(section), "the man page lacks {section}: {page}");
    }
    let help = safekeep_unconfigured(&["--help"]).await;
    assert!(stdout(&help).contains("--as <WHO>"), "{}", stdout(&help));
}
