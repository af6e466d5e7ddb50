//! Log output: plain lines or JSON objects, filtered in the `RUST_LOG`
//! style. `RUST_LOG`, when set, wins over the configured filter.

use tracing_subscriber::{fmt, EnvFilter};

use crate::{config::LogFormat, NodeError};

/// Installs the global subscriber. Call once, at start-up.
pub fn init_logging(format: LogFormat, filter: &str) -> Result<(), NodeError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(from_environment) if !from_environment.trim().is_empty() => from_environment,
        _ => filter.to_string(),
    };
    let filter = EnvFilter::try_new(&filter).map_err(|error| NodeError::Config {
        path: "log.filter".into(),
        message: format!(
            "{filter:?} is not a log filter ({error}); write e.g. `info` or `info,cairn_p2p=debug`"
        ),
    })?;
    let builder = fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|error| NodeError::Home(format!("cannot install the logger: {error}")))
}
