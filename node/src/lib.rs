//! `cairn-node`: the Cairn node, `cairnd`.
//!
//! It joins the ledger (`cairn-state`, `cairn-store`), consensus
//! (`cairn-consensus`) and networking (`cairn-p2p`) crates into a process an
//! operator runs: configuration and home directory ([`config`], [`home`]),
//! and, as they land, the mempool, the consensus host, block sync, the RPC
//! server and metrics.

pub mod config;
mod error;
pub mod home;
pub mod init;
pub mod logging;
pub mod mempool;
pub mod rpc;
pub mod shutdown;

pub use error::NodeError;
