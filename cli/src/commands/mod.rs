//! The subcommands of `cairn`, one module each. [`run`] dispatches a
//! parsed command line.

pub mod bench;
pub mod completions;
pub mod devnet;
pub mod devnet_hosts;
pub mod keys;
pub mod light;
pub mod query;
pub mod tx;
pub mod validator;

use std::io::Write;

use crate::{
    cli::{Cli, Command},
    error::{CliError, Result},
};

/// Runs the command line `cli`, writing results to `out` (warnings go to
/// standard error).
pub async fn run(cli: Cli, out: &mut dyn Write) -> Result<()> {
    match cli.command {
        Command::Keys(command) => keys::run(command, out),
        Command::Tx(command) => tx::run(command, out).await,
        Command::Validator(command) => validator::run(command, out).await,
        Command::Query(args) => query::run(args, out).await,
        Command::Light(command) => light::run(command, out).await,
        Command::Devnet(command) => devnet::run(command, out).await,
        Command::Completions(args) => completions::run(&args, out),
        Command::Bench(args) => bench::run(args, out).await,
    }
}

/// Writes `text` and a newline to `out`.
pub(crate) fn write_line(out: &mut dyn Write, text: &str) -> Result<()> {
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(CliError::Output)
}

/// Writes `value` as indented JSON to `out`.
pub(crate) fn write_json(out: &mut dyn Write, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|error| CliError::Output(std::io::Error::other(error)))?;
    write_line(out, &text)
}
