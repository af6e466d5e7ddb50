//! `cairn-node`: the Cairn node, `cairnd`.
//!
//! It joins the ledger (`cairn-state`, `cairn-store`), consensus
//! (`cairn-consensus`) and networking (`cairn-p2p`) crates into a process an
//! operator runs: configuration and home directory ([`config`], [`home`]),
//! the ledger core ([`ledger`]: store, state, mempool, block building,
//! validation and commit), the local transaction journal ([`journal`]), the RPC backend ([`backend`]), its
//! WebSocket subscriptions ([`subscriptions`]) and consensus view
//! ([`consensus_view`]), metrics
//! ([`metrics`]), the consensus host ([`host`]), its tokio runtime with p2p
//! gossip, compact proposals ([`compact_proposals`]) and block sync
//! ([`runtime`], [`block_sync`] over the sans-IO
//! [`sync_core`]), pruning of old blocks
//! ([`pruning`]), the background store scrub ([`scrub`]) and `cairnd
//! start` ([`start`]).

pub mod backend;
pub mod block_sync;
pub mod compact_proposals;
pub mod config;
pub mod consensus_view;
mod error;
pub mod home;
pub mod host;
pub mod http_server;
pub mod init;
pub mod journal;
pub mod ledger;
pub mod logging;
pub mod mempool;
pub mod metrics;
pub mod pruning;
pub mod rpc;
pub mod runtime;
pub mod scrub;
pub mod shutdown;
pub mod sign_state;
pub mod snapshots;
pub mod start;
pub mod state_sync;
pub mod subscriptions;
pub mod sync_core;

pub use error::NodeError;
