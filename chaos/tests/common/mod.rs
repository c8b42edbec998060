//! What the drill tests share: the node programs they start, built if
//! this test run has not built them yet.

use std::path::PathBuf;
use std::process::Command;

/// The node program `bin` beside `safekeep-chaos`, built with `features` if missing.
fn node_program(bin: &str, features: &[&str]) -> PathBuf {
    let chaos = PathBuf::from(env!("CARGO_BIN_EXE_safekeep-chaos"));
    let node = chaos.with_file_name(bin);
    if !node.exists() {
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "-p", "safekeep-node", "--bin", bin]);
        for feature in features {
            build.args(["--features", feature]);
        }
        let status = build.status().expect("run cargo");
        assert!(status.success(), "building {bin} failed");
    }
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
