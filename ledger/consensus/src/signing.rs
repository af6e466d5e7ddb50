//! The signing floor: the last proposal or vote a validator signed, and the
//! rule that it never signs one before it or against it.
//!
//! Within one [`crate::Driver`] the driver never equivocates (its own votes
//! of the height are kept). Across a restart the WAL restores them, but a
//! reset that deletes the WAL (or a lost WAL) would not: the host keeps
//! the last signed message apart from the chain data (the node's
//! `config/sign_state.json`) and gives it to every new driver with
//! [`crate::Driver::set_signing_floor`]. The driver then signs a message at
//! (height, round, step) only if that position is after the floor, or is
//! the floor itself with the same block (the same message again). Steps
//! order as proposal < prevote < precommit within a round.

use cairn_types::{Hash, Height, Round, VoteType};
use serde::{Deserialize, Serialize};

/// The step of a signed message, in signing order within a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignedStep {
    /// A proposal.
    Proposal,
    /// A prevote.
    Prevote,
    /// A precommit.
    Precommit,
}

impl From<VoteType> for SignedStep {
    fn from(vote_type: VoteType) -> SignedStep {
        match vote_type {
            VoteType::Prevote => SignedStep::Prevote,
            VoteType::Precommit => SignedStep::Precommit,
        }
    }
}

/// One signed proposal or vote: where it sits and what it signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastSigned {
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// Step.
    pub step: SignedStep,
    /// The block signed for (`None`: a nil vote).
    pub block_hash: Option<Hash>,
}

impl LastSigned {
    /// (height, round, step), ordered.
    pub fn position(&self) -> (Height, Round, SignedStep) {
        (self.height, self.round, self.step)
    }

    /// Whether `next` may be signed after `self` was: `Ok` when it comes
    /// later or is the same message, else why not.
    pub fn allows(&self, next: &LastSigned) -> Result<(), String> {
        if next.position() < self.position() {
            return Err(format!(
                "height {} round {} {:?} comes before the last signed height {} round {} {:?}",
                next.height.0, next.round.0, next.step, self.height.0, self.round.0, self.step
            ));
        }
        if next.position() == self.position() && next.block_hash != self.block_hash {
            return Err(format!(
                "height {} round {} {:?} was already signed for another block",
                next.height.0, next.round.0, next.step
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(height: u64, round: u32, step: SignedStep, hash: Option<u8>) -> LastSigned {
        LastSigned {
            height: Height(height),
            round: Round(round),
            step,
            block_hash: hash.map(|byte| Hash([byte; 32])),
        }
    }

    #[test]
    fn later_or_identical_is_allowed_earlier_or_conflicting_is_not() {
        let floor = signed(5, 1, SignedStep::Prevote, Some(1));
        assert!(floor
            .allows(&signed(5, 1, SignedStep::Prevote, Some(1)))
            .is_ok());
        assert!(floor
            .allows(&signed(5, 1, SignedStep::Precommit, None))
            .is_ok());
        assert!(floor
            .allows(&signed(5, 2, SignedStep::Proposal, Some(2)))
            .is_ok());
        assert!(floor
            .allows(&signed(6, 0, SignedStep::Proposal, Some(3)))
            .is_ok());
        assert!(floor
            .allows(&signed(5, 1, SignedStep::Prevote, None))
            .is_err());
        assert!(floor
            .allows(&signed(5, 1, SignedStep::Proposal, Some(1)))
            .is_err());
        assert!(floor
            .allows(&signed(5, 0, SignedStep::Precommit, Some(1)))
            .is_err());
        assert!(floor
            .allows(&signed(4, 9, SignedStep::Precommit, Some(1)))
            .is_err());
    }
}
