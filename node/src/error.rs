//! The one error type of `cairn-node`.

use std::path::PathBuf;

use thiserror::Error;

/// Why the node could not start, or stopped.
#[derive(Debug, Error)]
pub enum NodeError {
    /// A file or directory could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// `config.toml` is not valid.
    #[error("config file {path} is invalid: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// The key at fault and what to do.
        message: String,
    },
    /// A setting (from `config.toml`, a flag or a `CAIRN_*` variable) holds
    /// a value the node cannot use.
    #[error("{origin} is invalid: {message}")]
    Setting {
        /// Where the value came from, e.g. `CAIRN_RPC_LISTEN (config key
        /// rpc.listen)`.
        origin: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A key file is not valid.
    #[error("key file {path} is invalid: {message}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// The validator's sign state file (`config/sign_state.json`) is not
    /// usable.
    #[error("sign state file {path} is invalid: {message}")]
    SignState {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// The genesis file is not valid.
    #[error(transparent)]
    Genesis(#[from] cairn_genesis::GenesisError),
    /// Consensus cannot go on safely (the WAL or the store failed).
    #[error("consensus stopped: {0}")]
    Consensus(String),
    /// The home directory is not usable as asked.
    #[error("{0}")]
    Home(String),
    /// State sync could not restore a snapshot.
    #[error("state sync failed: {0}")]
    StateSync(String),
}
