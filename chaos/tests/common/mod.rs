//! What the drill tests share: the node programs they start, built (or
//! found up to date) by cargo before every use, so a program left in the
//! target directory by an older checkout is never the one a drill runs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The node program `bin` beside `safekeep-chaos`, built with `features`
/// from this checkout (a no-op when it is up to date).
fn node_program(bin: &str, features: &[&str]) -> PathBuf {
    let chaos = PathBuf::from(env!("CARGO_BIN_EXE_safekeep-chaos"));
    let node = chaos.with_file_name(bin);
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "-p", "safekeep-node", "--bin", bin]);
    for feature in features {
        build.args(["--features", feature]);
    }
    let status = build.status().expect("run cargo");
    assert!(status.success(), "building {bin} failed");
    assert!(node.exists(), "cargo built {bin}, yet {} is missing", node.display());
    node
}

/// The real node program.
#[allow(dead_code)]
pub fn node_binary() -> PathBuf {
    node_program("safekeep-node", &[])
}

/// The node program with its deliberate bugs (debug builds only: the
/// feature is refused in release).
#[allow(dead_code)]
pub fn faulty_node_binary() -> PathBuf {
    node_program("safekeep-node-with-test-faults", &["test-faults"])
}

/// The report a drill wrote into `dir`, once it is clear the drill passed
/// (`output` is its run; its stderr and the report are shown if not).
#[allow(dead_code)]
pub fn passed_report(dir: &Path, output: &std::process::Output) -> serde_json::Value {
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("report.json"))
            .unwrap_or_else(|e| panic!("no report ({e}): {}", String::from_utf8_lossy(&output.stderr))),
    )
    .expect("report.json parses");
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        std::fs::read_to_string(dir.join("report.md")).unwrap_or_default()
    );
    report
}
