//! `cairn-genesis`: the chain-wide starting point of a Cairn network.
//!
//! It owns the `genesis.json` schema ([`GenesisFile`]), its validation into
//! a [`Genesis`] with errors that name the entry at fault, the genesis
//! state and its root, the genesis hash (over the canonical encoding of the
//! parsed genesis, so reformatting the JSON changes nothing), devnet
//! generation ([`devnet`]) and the built-in, insecure `dev` chain
//! ([`dev`]).
//!
//! Node-local settings (`timeout_commit`, waiting for transactions, mempool
//! caps) belong to each node's `config.toml`, never to genesis.

pub mod dev;
pub mod devnet;
mod error;
mod file;

pub use error::GenesisError;
pub use file::{Genesis, GenesisAccount, GenesisFile, GenesisValidator};
