//! `cairn`: the Cairn command-line tool. All logic lives in the
//! `cairn_cli` library; this parses the command line, runs it, and turns
//! an error into a message on standard error and exit code 1.
//!
//! With `--json` an error is printed instead on standard output, in the
//! node's error shape `{"error": {"code", "message"}}`, with the same exit
//! codes (1 for a failure, 2 for a command line that does not parse), so a
//! script reads one JSON document from standard output either way.

use std::{io::Write, process::ExitCode};

use clap::{error::ErrorKind, Parser};

/// Exit code of a command line that does not parse (clap's).
const USAGE_EXIT_CODE: u8 = 2;

fn main() -> ExitCode {
    let cli = match cairn_cli::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    let json = cli.json();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let message = format!("cannot start the async runtime: {error}");
            report(
                json,
                &cairn_cli::error::error_json("runtime", &message),
                &message,
            );
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    let result = runtime.block_on(cairn_cli::commands::run(cli, &mut stdout));
    drop(stdout);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            report(json, &error.to_json(), &error.to_string());
            ExitCode::FAILURE
        }
    }
}

/// Prints a failure: `value` on standard output under `--json`, else
/// `error: message` on standard error.
fn report(json: bool, value: &serde_json::Value, message: &str) {
    if json {
        let mut stdout = std::io::stdout().lock();
        let written = serde_json::to_string_pretty(value)
            .map_err(std::io::Error::other)
            .and_then(|text| writeln!(stdout, "{text}"))
            .and_then(|()| stdout.flush());
        if written.is_ok() {
            return;
        }
    }
    eprintln!("error: {message}");
}

/// A command line that does not parse: clap's message and exit code 2,
/// or the JSON error shape when `--json` is among the arguments. Help and
/// version requests print as clap prints them.
fn usage_error(error: &clap::Error) -> ExitCode {
    let wants_json = std::env::args_os().any(|argument| argument == "--json");
    if !wants_json
        || matches!(
            error.kind(),
            ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        )
    {
        error.exit();
    }
    let message = error.render().to_string();
    let message = message.trim().trim_start_matches("error: ");
    report(
        true,
        &cairn_cli::error::error_json("usage", message),
        message,
    );
    ExitCode::from(USAGE_EXIT_CODE)
}
