//! Accounts: a balance and a nonce, keyed by address.

use cairn_types::Address;
use serde::{Deserialize, Serialize};

/// The state of one account. An address that has never been written reads
/// as the default: balance 0, nonce 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Account {
    /// Units held.
    pub balance: u64,
    /// Number of transfers this account has sent, which is also the nonce
    /// its next transfer must carry.
    pub nonce: u64,
}

/// One account written by a block: where it lives in the tree and what it
/// now holds. [`crate::ExecutionOutcome::changes`] lists these in slot
/// order; a store persists them as the tree's leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AccountChange {
    /// The account's slot (leaf position) in the state tree.
    pub slot: u64,
    /// The account's address.
    pub address: Address,
    /// Its value after the block.
    pub account: Account,
    /// Whether this block created the account (gave it a new slot).
    pub created: bool,
}
