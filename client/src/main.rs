//! `safekeep`: the command-line client for a safekeep cluster, built on the
//! SDK in this crate (as etcdctl sits beside etcd's client library).

#![warn(missing_docs)]

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::args::Cli;
use cli::{CliError, EXIT_OK, EXIT_OTHER};

fn main() -> ExitCode {
    let args = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_OTHER);
        }
    };
    match runtime.block_on(cli::run::run(args)) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(error) => report(&error),
    }
}

fn report(error: &CliError) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(error.exit_code())
}
