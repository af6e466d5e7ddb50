//! The one error type of `cairn-state`: why a transfer, a block, a genesis
//! or a stored account set was refused.

use cairn_types::{Address, ChainId, Hash};
use thiserror::Error;

/// Everything that can make a transfer, a block or an account set invalid.
///
/// Transfer-level variants (`WrongChain` to `MemoTooLong`) say what is wrong
/// with one transfer; a block-level failure wraps one of them in
/// [`StateError::TransactionInvalid`] with the position of the transfer.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StateError {
    /// The transfer (or block) names another chain.
    #[error("transfer is for chain {got:?}, this chain is {expected:?}; sign it again with chain id {expected:?}")]
    WrongChain {
        /// This chain.
        expected: ChainId,
        /// The chain the transfer names.
        got: ChainId,
    },
    /// The sender's signature does not verify (ZIP-215).
    #[error("signature does not verify under the sender's public key; sign the transfer again with the sender's key")]
    BadSignature,
    /// The nonce is not the sender account's next nonce.
    #[error("nonce {got} is not the sender's next nonce {expected}; sign the transfer again with nonce {expected}")]
    BadNonce {
        /// The account's next nonce.
        expected: u64,
        /// The transfer's nonce.
        got: u64,
    },
    /// The sender's balance does not cover amount plus fee.
    #[error("sender has {have} but the transfer needs {need} (amount + fee); fund the account or send less")]
    InsufficientFunds {
        /// Amount plus fee.
        need: u64,
        /// The sender's balance.
        have: u64,
    },
    /// A sum left the range of a `u64`.
    #[error("arithmetic overflow in {what}")]
    Overflow {
        /// Which sum overflowed (e.g. "amount + fee").
        what: &'static str,
    },
    /// The memo is longer than allowed.
    #[error("memo is {len} bytes, the limit is {max} bytes; shorten it")]
    MemoTooLong {
        /// The memo's length in bytes.
        len: usize,
        /// [`cairn_types::limits::MEMO_BYTES_MAX`].
        max: usize,
    },
    /// A block holds an invalid transfer; the block is refused as a whole.
    #[error("transaction {index} of the block is invalid: {source}")]
    TransactionInvalid {
        /// Position of the first invalid transfer in the block.
        index: usize,
        /// Why it is invalid.
        source: Box<StateError>,
    },
    /// A block holds more transfers than the hard limit.
    #[error("block holds {count} transactions, the limit is {max}")]
    TooManyTransactions {
        /// Transfers in the block.
        count: usize,
        /// [`cairn_types::limits::BLOCK_TRANSACTIONS_MAX`].
        max: usize,
    },
    /// The state would hold more accounts than the tree can address.
    #[error("the state would hold more than {max} accounts")]
    TooManyAccounts {
        /// [`crate::ACCOUNTS_MAX`].
        max: u64,
    },
    /// An address appears twice in a genesis or stored account set.
    #[error("account {address} appears twice; each address may be listed once")]
    DuplicateAccount {
        /// The repeated address.
        address: Address,
    },
    /// The state root a block header claims is not the one its execution
    /// yields.
    #[error("block header claims state root {header} but executing the block yields {computed}")]
    StateRootMismatch {
        /// The root in the header.
        header: Hash,
        /// The root computed by executing the block.
        computed: Hash,
    },
    /// An execution outcome was applied to a state other than the one it
    /// was computed from.
    #[error("execution outcome was computed on state root {outcome_parent} but the state's root is {state_root}; execute the block again on this state")]
    StaleOutcome {
        /// The root of the state it was applied to.
        state_root: Hash,
        /// The root of the state it was computed from.
        outcome_parent: Hash,
    },
}

impl StateError {
    /// Wraps a transfer-level error with the transfer's position in a block.
    pub fn at_index(self, index: usize) -> StateError {
        StateError::TransactionInvalid {
            index,
            source: Box::new(self),
        }
    }
}
