//! The one error type of `cairn-consensus`.

use cairn_types::{Hash, Height, Round, TypesError, ValidatorIndex};
use thiserror::Error;

use crate::RequestId;

/// Everything the consensus driver refuses, with the values involved.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConsensusError {
    /// A type-level check failed (decode, signature, certificate).
    #[error(transparent)]
    Types(#[from] TypesError),
    /// A message for a height this driver is not at (and does not buffer).
    #[error("message for height {got}, the driver is at height {current}")]
    WrongHeight {
        /// The driver's height.
        current: Height,
        /// The message's height.
        got: Height,
    },
    /// A message for a round too far ahead of the current one.
    #[error("message for round {got}, more than {ahead_max} rounds ahead of round {current}")]
    RoundTooFarAhead {
        /// The driver's round.
        current: Round,
        /// The message's round.
        got: Round,
        /// The limit.
        ahead_max: u32,
    },
    /// A proposal signed by a validator that is not the proposer.
    #[error("proposal for height {height} round {round} signed by validator {got}, the proposer is {expected}")]
    NotProposer {
        /// Height of the proposal.
        height: Height,
        /// Round of the proposal.
        round: Round,
        /// The proposer of that height and round.
        expected: ValidatorIndex,
        /// Who signed.
        got: ValidatorIndex,
    },
    /// A signature that does not verify.
    #[error("{what} from validator {validator} has a bad signature")]
    BadSignature {
        /// What was signed.
        what: &'static str,
        /// The claimed signer.
        validator: ValidatorIndex,
    },
    /// A validator index outside the set.
    #[error("validator {0} is not in the validator set")]
    UnknownValidator(ValidatorIndex),
    /// A proposal whose block does not hash to the proposed hash.
    #[error("proposal names block {proposed:?} but carries block {carried:?}")]
    BlockHashMismatch {
        /// Hash in the signed proposal.
        proposed: Hash,
        /// Hash of the block that came with it.
        carried: Hash,
    },
    /// A fresh proposal (no valid round) whose block names another
    /// validator as its proposer, the account its fees go to: a proposer
    /// collects only its own blocks' fees.
    #[error("the block of a fresh proposal by validator {signer} names another proposer {named}")]
    ForeignFeeAddress {
        /// The proposal's signer.
        signer: u32,
        /// The address the block names.
        named: cairn_types::Address,
    },
    /// A fresh proposal's block whose time is more than the drift ahead of
    /// this node's clock (not timely; judged again if re-proposed).
    #[error("block time {time} is more than {drift_ms} ms ahead of our clock {now}")]
    BlockTooFarAhead {
        /// The block's time.
        time: cairn_types::Timestamp,
        /// The allowed drift.
        drift_ms: u64,
        /// This node's clock.
        now: cairn_types::Timestamp,
    },
    /// A second, different proposal from the proposer of a round.
    #[error("conflicting proposal for height {height} round {round}")]
    ConflictingProposal {
        /// Height.
        height: Height,
        /// Round.
        round: Round,
    },
    /// A bounded buffer is full; the message was dropped.
    #[error("{what} is full ({max} items); message dropped")]
    BufferFull {
        /// Which buffer.
        what: &'static str,
        /// Its limit.
        max: usize,
    },
    /// An answer to a request this driver did not make (or no longer waits for).
    #[error("no pending request with id {0:?}")]
    UnknownRequest(RequestId),
    /// A block that breaks a consensus rule.
    #[error("invalid block: {reason}")]
    InvalidBlock {
        /// What is wrong with it.
        reason: String,
    },
    /// A WAL that cannot be replayed.
    #[error("the consensus WAL cannot be replayed: {reason}")]
    WalCorrupt {
        /// What is wrong.
        reason: String,
    },
    /// The driver refused to sign a message conflicting with one it signed.
    #[error(
        "refused to sign a {what} conflicting with an earlier one at height {height} round {round}"
    )]
    RefusedToEquivocate {
        /// What would have been signed.
        what: &'static str,
        /// Height.
        height: Height,
        /// Round.
        round: Round,
    },
    /// An input that needs a started height arrived before `StartHeight`.
    #[error("no height started yet")]
    NotStarted,
    /// A counter overflowed.
    #[error("arithmetic overflow in {what}")]
    Overflow {
        /// Which counter.
        what: &'static str,
    },
    /// The configuration is unusable.
    #[error("bad consensus configuration: {reason}")]
    BadConfig {
        /// What is wrong.
        reason: String,
    },
}
