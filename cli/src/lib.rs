//! `cairn-cli`: keys, transfers, queries, the local devnet and the load
//! generator for Cairn, talking to nodes only through their public RPC
//! (`node/RPC.md`); `devnet` drives `cairnd` only through its command line.
//!
//! - [`keyring`] and [`keyfile`]: named keys on disk, optionally encrypted
//!   with a passphrase (Argon2id + XChaCha20-Poly1305).
//! - [`rpc`]: the HTTP/JSON and WebSocket client of a node.
//! - [`commands`]: one module per subcommand; [`commands::tx::send_transfer`]
//!   is the reusable transfer path.
//! - [`prompt`]: y/N questions and passphrase prompts on a terminal.
//! - [`timestamp`]: how times are printed (RFC 3339 UTC, milliseconds).
//! - [`cli`]: the clap definitions; [`error`]: the one error type;
//!   [`limits`]: every bound.
//!
//! Exit codes of `cairn`: 0 on success, 1 on any failure, 2 on a command
//! line that does not parse. With `--json`, a failure is printed on
//! standard output as `{"error": {"code", "message"}}` (see
//! [`CliError::code`]).

pub mod cli;
pub mod commands;
pub mod duration;
pub mod error;
pub mod files;
pub mod keyfile;
pub mod keyring;
pub mod light;
pub mod limits;
pub mod prompt;
pub mod rpc;
pub mod timestamp;

pub use error::{CliError, Result};
pub use keyfile::Passphrase;
pub use keyring::{ExistingKey, KeyInfo, KeyName, Keyring};
