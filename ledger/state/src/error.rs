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
    /// The sender does not operate the validator the transaction names
    /// (or operates no validator).
    #[error("{reason}")]
    NotOperator {
        /// Who operates what.
        reason: String,
    },
    /// The consensus key is already another validator's.
    #[error("validator key {key} is already used by another validator; generate a new consensus key with `cairnd init` or `cairn keys add`")]
    KeyInUse {
        /// The key.
        key: cairn_types::PublicKey,
    },
    /// A candidate would keep less than the minimum stake bonded.
    #[error("the validator would keep {bonded} bonded, less than the chain's min_self_stake {min}; bond at least {min} (or unbond all of it)")]
    BelowMinSelfStake {
        /// What would stay bonded.
        bonded: u64,
        /// The minimum.
        min: u64,
    },
    /// More unbonding than is bonded.
    #[error("the validator has {bonded} bonded, less than the {need} to unbond")]
    InsufficientStake {
        /// Bonded now.
        bonded: u64,
        /// Asked for.
        need: u64,
    },
    /// `unjail` before the jail period is over.
    #[error("the validator is jailed until height {until}; send unjail at or after it")]
    StillJailed {
        /// The first height at which unjail is accepted.
        until: cairn_types::Height,
    },
    /// `unjail` of a validator that is not jailed.
    #[error("the validator is not jailed")]
    NotJailed,
    /// No room for another candidate.
    #[error("the chain already has {max} validator candidates, the limit")]
    TooManyCandidates {
        /// The limit.
        max: usize,
    },
    /// No room for another unbonding entry of this operator.
    #[error(
        "the operator already has {max} unbonding entries, the limit; wait for one to be released"
    )]
    TooManyUnbonding {
        /// The limit.
        max: usize,
    },
    /// A staking transaction that breaks a rule of its own shape.
    #[error("{reason}")]
    BadStakingTransaction {
        /// What is wrong and what to do.
        reason: String,
    },
    /// The fee is below the chain's minimum.
    #[error("the fee {fee} is below the chain's minimum fee {min}; pay at least {min}")]
    FeeTooLow {
        /// The fee paid.
        fee: u64,
        /// The minimum.
        min: u64,
    },
    /// The sender has no account (a key that was never funded).
    #[error("the sender {address} has no account: fund it with a transfer of at least the existential deposit first")]
    UnknownSender {
        /// The sender.
        address: Address,
    },
    /// A balance would end up below the existential deposit (and not 0).
    #[error(
        "{what} would hold {balance}, less than the chain's existential deposit {min}; {hint}"
    )]
    BelowExistentialDeposit {
        /// Whose balance.
        what: &'static str,
        /// The balance it would hold.
        balance: u64,
        /// The existential deposit.
        min: u64,
        /// What to do.
        hint: &'static str,
    },
    /// A stored staking state that does not decode or fails its checks.
    #[error("the staking state is corrupt: {reason}")]
    CorruptStaking {
        /// What is wrong.
        reason: String,
    },
}

impl StateError {
    /// The stable code the RPC returns for a rule a transaction broke
    /// (`None` for errors that are not about one transaction).
    pub fn code(&self) -> Option<&'static str> {
        Some(match self {
            StateError::NotOperator { .. } => "not_operator",
            StateError::KeyInUse { .. } => "key_in_use",
            StateError::BelowMinSelfStake { .. } => "below_min_self_stake",
            StateError::InsufficientStake { .. } => "insufficient_stake",
            StateError::StillJailed { .. } => "still_jailed",
            StateError::NotJailed => "not_jailed",
            StateError::TooManyCandidates { .. } => "candidates_full",
            StateError::TooManyUnbonding { .. } => "unbonding_full",
            StateError::BadStakingTransaction { .. } => "bad_staking_transaction",
            StateError::FeeTooLow { .. } => "fee_too_low",
            StateError::UnknownSender { .. } => "unknown_sender",
            StateError::BelowExistentialDeposit { .. } => "below_existential_deposit",
            StateError::BadNonce { .. } => "bad_nonce",
            StateError::InsufficientFunds { .. } => "insufficient_funds",
            StateError::MemoTooLong { .. } => "memo_too_long",
            StateError::WrongChain { .. } => "wrong_chain",
            StateError::Overflow { .. } => "overflow",
            StateError::BadSignature => "bad_signature",
            _ => return None,
        })
    }

    /// Wraps a transfer-level error with the transfer's position in a block.
    pub fn at_index(self, index: usize) -> StateError {
        StateError::TransactionInvalid {
            index,
            source: Box::new(self),
        }
    }
}
