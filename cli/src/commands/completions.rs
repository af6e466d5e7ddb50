//! `cairn completions SHELL`: prints a completion script (clap_complete).

use std::io::Write;

use clap::CommandFactory;

use crate::{
    cli::{Cli, CompletionsArgs},
    error::{CliError, Result},
};

/// Writes the completion script for `args.shell` to `out`.
pub fn run(args: &CompletionsArgs, out: &mut dyn Write) -> Result<()> {
    let mut command = Cli::command();
    let mut buffer = Vec::new();
    clap_complete::generate(args.shell, &mut command, "cairn", &mut buffer);
    out.write_all(&buffer)
        .and_then(|()| out.flush())
        .map_err(CliError::Output)
}
