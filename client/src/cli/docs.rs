//! Shell completions and the man page, generated from the command-line
//! definition in [`args`](super::args), so they know every command and flag
//! `--help` shows. Both print to standard output and need no cluster.

use clap::CommandFactory;
use clap_complete::Shell;

use super::CliError;
use super::args::Cli;
use super::context::emit;

/// Prints the completion script for `shell`.
pub(super) fn completions(shell: Shell) -> Result<(), CliError> {
    let mut command = Cli::command();
    let name = command.get_name().to_string();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut script);
    emit(&script, false)
}

/// Prints the man page (roff).
pub(super) fn man() -> Result<(), CliError> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|error| CliError::Io(format!("cannot render the man page: {error}")))?;
    emit(&page, false)
}
