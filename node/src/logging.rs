//! Log output: plain lines or JSON objects, filtered in the `RUST_LOG`
//! style. `RUST_LOG`, when set, wins over the configured filter.
//!
//! The transport's own warnings (a yamux stream reset or a broken pipe on
//! every failed connection: 914 lines in 25 s from one peer of another
//! chain) are kept to errors unless the filter names their target; the
//! node says what happened in its own words instead.

use tracing_subscriber::{fmt, EnvFilter};

use crate::{config::LogFormat, NodeError};

/// Targets whose warnings are noise for an operator, lowered to errors
/// unless `filter` mentions them.
const QUIET_TARGETS: [&str; 2] = ["yamux", "libp2p_yamux"];

/// `filter` with each of [`QUIET_TARGETS`] it does not mention at `error`.
fn with_quiet_transport(filter: &str) -> String {
    let mut filter = filter.trim().to_string();
    for target in QUIET_TARGETS {
        let mentioned = filter
            .split(',')
            .any(|directive| directive.trim().split('=').next() == Some(target));
        if !mentioned {
            if !filter.is_empty() {
                filter.push(',');
            }
            filter.push_str(target);
            filter.push_str("=error");
        }
    }
    filter
}

/// Installs the global subscriber. Call once, at start-up.
pub fn init_logging(format: LogFormat, filter: &str) -> Result<(), NodeError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(from_environment) if !from_environment.trim().is_empty() => from_environment,
        _ => filter.to_string(),
    };
    let filter = with_quiet_transport(&filter);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_noise_is_quiet_unless_asked_for() {
        assert_eq!(
            with_quiet_transport("info"),
            "info,yamux=error,libp2p_yamux=error"
        );
        assert_eq!(
            with_quiet_transport("info,yamux=debug"),
            "info,yamux=debug,libp2p_yamux=error"
        );
        assert!(EnvFilter::try_new(with_quiet_transport("")).is_ok());
    }
}
