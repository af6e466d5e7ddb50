//! The one error type of `cairn-genesis`.

use std::path::PathBuf;

use thiserror::Error;

/// Why a genesis could not be read, parsed or accepted.
#[derive(Debug, Error)]
pub enum GenesisError {
    /// The file could not be read or written.
    #[error("cannot {action} genesis file {path}: {source}")]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The file is not valid genesis JSON (syntax, unknown or missing key).
    #[error(
        "genesis file {path} is not valid genesis JSON: at line {line}, column {column}: {message}"
    )]
    Json {
        /// The file, or `<input>` for text.
        path: PathBuf,
        /// serde_json's description.
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A field holds a value the chain cannot start with.
    #[error("genesis field {field} is invalid: {reason}")]
    Invalid {
        /// The JSON path of the field, e.g. `validators[2].public_key`.
        field: String,
        /// What is wrong and what to do.
        reason: String,
    },
}

impl GenesisError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> GenesisError {
        GenesisError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
