//! `safekeep-node-with-test-faults`: the node program built with its
//! deliberate bugs (`test_faults.rs`), for the tests that prove a checker
//! run against real processes, such as a chaos drill, reports the violation
//! a bug causes. It exists only in debug builds with the `test-faults`
//! feature, and runs only when `SAFEKEEP_TEST_FAULTS` names the bugs to
//! switch on, so it can never pass for the real program.

use std::process::ExitCode;

use safekeep_node::test_faults::{TEST_FAULTS_ENV, enable_named};

// The real program's command line, unchanged; its own `main` goes unused.
#[allow(dead_code)]
#[path = "../main.rs"]
mod node_main;

fn main() -> ExitCode {
    let names = std::env::var(TEST_FAULTS_ENV).unwrap_or_default();
    match enable_named(&names) {
        Ok(enabled) if !enabled.is_empty() => {
            let list: Vec<&str> = enabled.iter().map(|f| f.name()).collect();
            eprintln!("warning: deliberate bugs switched on: {}", list.join(", "));
            node_main::run_cli()
        }
        Ok(_) => {
            eprintln!("error: this program carries deliberate bugs; name the ones to switch on in {TEST_FAULTS_ENV}");
            ExitCode::FAILURE
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
