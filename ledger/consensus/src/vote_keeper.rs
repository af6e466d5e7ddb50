//! The vote keeper: every prevote and precommit of one height, tallied by
//! round, type and value, weighted by voting power.
//!
//! It answers the questions of Algorithm 1's upon-rules: is there more than
//! 2/3 of the power for one value (a *polka* for prevotes, a decision
//! quorum for precommits), more than 2/3 for anything (L34, L47), and
//! senders with f+1 power in a higher round (L55). Each validator counts
//! once per round and type: the first vote seen is counted; a second vote
//! naming a different value (nil counts as a value) is equivocation and
//! yields [`Evidence`] carrying both votes. Signatures are checked by the
//! driver before votes reach the keeper.
//!
//! Memory is bounded: one vote per validator, round and type; rounds are
//! bounded by the driver's window ([`crate::limits::ROUNDS_AHEAD_MAX`]);
//! evidence by [`EVIDENCE_PER_HEIGHT_MAX`].

use std::collections::BTreeMap;

use cairn_types::{
    CommitCertificate, CommitSignature, Evidence, Hash, Height, Round, ValidatorIndex,
    ValidatorSet, Vote, VoteType, VotingPower,
};

use crate::{limits::EVIDENCE_PER_HEIGHT_MAX, ConsensusError};

/// Most different values one validator is counted for in one round and
/// type (its first vote plus conflicting ones).
pub const CONFLICTING_VALUES_PER_VALIDATOR_MAX: usize = 4;

/// Votes of one type in one round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Tally {
    /// The first vote of each validator.
    votes: BTreeMap<ValidatorIndex, Vote>,
    /// Conflicting later votes of equivocators, by validator and value.
    conflicting: BTreeMap<(ValidatorIndex, Option<Hash>), Vote>,
    power_by_value: BTreeMap<Option<Hash>, VotingPower>,
    total: VotingPower,
}

/// Everything of one round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct RoundVotes {
    prevotes: Tally,
    precommits: Tally,
    /// Validators with any message (vote or proposal) in this round (L55).
    senders: BTreeMap<ValidatorIndex, VotingPower>,
    senders_power: VotingPower,
}

impl RoundVotes {
    fn tally(&self, vote_type: VoteType) -> &Tally {
        match vote_type {
            VoteType::Prevote => &self.prevotes,
            VoteType::Precommit => &self.precommits,
        }
    }

    fn tally_mut(&mut self, vote_type: VoteType) -> &mut Tally {
        match vote_type {
            VoteType::Prevote => &mut self.prevotes,
            VoteType::Precommit => &mut self.precommits,
        }
    }

    fn add_sender(
        &mut self,
        validator: ValidatorIndex,
        power: VotingPower,
    ) -> Result<(), ConsensusError> {
        if self.senders.insert(validator, power).is_none() {
            self.senders_power = self.senders_power.checked_add(power)?;
        }
        Ok(())
    }
}

/// What adding a vote did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddVote {
    /// A new vote, counted.
    Added,
    /// The same vote was already counted.
    AlreadyKnown,
    /// The validator had voted for another value: not counted, evidence.
    Equivocation(Box<Evidence>),
    /// The validator had already equivocated with this very vote.
    KnownEquivocation,
}

/// The votes of one height.
#[derive(Clone, Debug)]
pub struct VoteKeeper {
    height: Height,
    validators: ValidatorSet,
    rounds: BTreeMap<Round, RoundVotes>,
    evidence: BTreeMap<Hash, Evidence>,
}

impl VoteKeeper {
    /// An empty keeper for `height`.
    pub fn new(height: Height, validators: ValidatorSet) -> VoteKeeper {
        VoteKeeper {
            height,
            validators,
            rounds: BTreeMap::new(),
            evidence: BTreeMap::new(),
        }
    }

    /// The height this keeper counts.
    pub fn height(&self) -> Height {
        self.height
    }

    fn power_of(&self, validator: ValidatorIndex) -> Result<VotingPower, ConsensusError> {
        self.validators
            .get(validator)
            .map(|v| v.power)
            .ok_or(ConsensusError::UnknownValidator(validator))
    }

    /// Whether exactly this vote (signature included) is already counted,
    /// so the driver can skip verifying a duplicate.
    pub fn contains(&self, vote: &Vote) -> bool {
        self.rounds.get(&vote.round).is_some_and(|round| {
            let tally = round.tally(vote.vote_type);
            tally.votes.get(&vote.validator) == Some(vote)
                || tally.conflicting.get(&(vote.validator, vote.block_hash)) == Some(vote)
        })
    }

    /// Counts a vote whose signature the caller has verified.
    pub fn add_vote(&mut self, vote: Vote) -> Result<AddVote, ConsensusError> {
        if vote.height != self.height {
            return Err(ConsensusError::WrongHeight {
                current: self.height,
                got: vote.height,
            });
        }
        let power = self.power_of(vote.validator)?;
        let round = self.rounds.entry(vote.round).or_default();
        round.add_sender(vote.validator, power)?;
        let tally = round.tally_mut(vote.vote_type);
        if let Some(known) = tally.votes.get(&vote.validator) {
            if known.block_hash == vote.block_hash {
                return Ok(AddVote::AlreadyKnown);
            }
            let slot = (vote.validator, vote.block_hash);
            if tally.conflicting.contains_key(&slot) {
                return Ok(AddVote::KnownEquivocation);
            }
            let Some(evidence) = Evidence::duplicate_vote(known.clone(), vote.clone()) else {
                return Ok(AddVote::AlreadyKnown);
            };
            let values = tally
                .conflicting
                .range((vote.validator, None)..)
                .take_while(|((validator, _), _)| *validator == vote.validator)
                .count();
            if values + 1 < CONFLICTING_VALUES_PER_VALIDATOR_MAX {
                let value_power = tally.power_by_value.entry(vote.block_hash).or_default();
                *value_power = value_power.checked_add(power)?;
                tally.conflicting.insert(slot, vote);
            }
            let hash = evidence.hash();
            if self.evidence.contains_key(&hash) {
                return Ok(AddVote::KnownEquivocation);
            }
            if self.evidence.len() >= EVIDENCE_PER_HEIGHT_MAX {
                return Err(ConsensusError::BufferFull {
                    what: "evidence of this height",
                    max: EVIDENCE_PER_HEIGHT_MAX,
                });
            }
            self.evidence.insert(hash, evidence.clone());
            return Ok(AddVote::Equivocation(Box::new(evidence)));
        }
        let value_power = tally.power_by_value.entry(vote.block_hash).or_default();
        *value_power = value_power.checked_add(power)?;
        tally.total = tally.total.checked_add(power)?;
        tally.votes.insert(vote.validator, vote);
        Ok(AddVote::Added)
    }

    /// Records that `validator` sent a (verified) proposal in `round`, for
    /// the f+1 rule of L55.
    pub fn add_proposal_sender(
        &mut self,
        round: Round,
        validator: ValidatorIndex,
    ) -> Result<(), ConsensusError> {
        let power = self.power_of(validator)?;
        self.rounds
            .entry(round)
            .or_default()
            .add_sender(validator, power)
    }

    /// The value (a block hash, or `None` for nil) with more than 2/3 of
    /// the power among `vote_type` votes of `round`, if any.
    pub fn quorum_value(&self, round: Round, vote_type: VoteType) -> Option<Option<Hash>> {
        let tally = self.rounds.get(&round)?.tally(vote_type);
        tally
            .power_by_value
            .iter()
            .find(|(_, power)| self.validators.is_quorum(**power))
            .map(|(value, _)| *value)
    }

    /// Whether `vote_type` votes of `round` for anything hold more than 2/3.
    pub fn has_quorum_any(&self, round: Round, vote_type: VoteType) -> bool {
        self.rounds
            .get(&round)
            .is_some_and(|r| self.validators.is_quorum(r.tally(vote_type).total))
    }

    /// The highest round above `current` whose senders hold more than 1/3
    /// of the power (f+1, L55).
    pub fn round_skip(&self, current: Round) -> Option<Round> {
        self.rounds
            .range(Round(current.0.saturating_add(1))..)
            .rev()
            .find(|(_, round)| self.validators.is_one_third(round.senders_power))
            .map(|(round, _)| *round)
    }

    /// Every (round, block) with a precommit quorum, lowest round first.
    pub fn precommit_quorums(&self) -> Vec<(Round, Hash)> {
        self.rounds
            .keys()
            .filter_map(
                |round| match self.quorum_value(*round, VoteType::Precommit) {
                    Some(Some(hash)) => Some((*round, hash)),
                    _ => None,
                },
            )
            .collect()
    }

    /// The certificate of the precommits for `block_hash` in `round`, if
    /// they hold more than 2/3 of the power.
    pub fn certificate(&self, round: Round, block_hash: Hash) -> Option<CommitCertificate> {
        let tally = self.rounds.get(&round)?.tally(VoteType::Precommit);
        let power = tally.power_by_value.get(&Some(block_hash))?;
        if !self.validators.is_quorum(*power) {
            return None;
        }
        let mut signers: BTreeMap<ValidatorIndex, CommitSignature> = BTreeMap::new();
        for vote in tally.votes.values().chain(tally.conflicting.values()) {
            if vote.block_hash == Some(block_hash) {
                signers.insert(
                    vote.validator,
                    CommitSignature {
                        validator: vote.validator,
                        signature: vote.signature,
                    },
                );
            }
        }
        let signatures = signers.into_values().collect();
        Some(CommitCertificate {
            height: self.height,
            round,
            block_hash,
            signatures,
        })
    }

    /// The counted votes of `round` (prevotes then precommits, by validator).
    pub fn votes(&self, round: Round) -> Vec<Vote> {
        self.rounds
            .get(&round)
            .map(|r| {
                r.prevotes
                    .votes
                    .values()
                    .chain(r.prevotes.conflicting.values())
                    .chain(r.precommits.votes.values())
                    .chain(r.precommits.conflicting.values())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every equivocation seen at this height.
    pub fn evidence(&self) -> impl Iterator<Item = &Evidence> {
        self.evidence.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_types::{sha256, ChainId, Keypair, Validator};

    fn keys() -> Vec<Keypair> {
        (1..=4u8).map(|i| Keypair::from_seed(&[i; 32])).collect()
    }

    fn set(powers: &[u64]) -> ValidatorSet {
        let keys = keys();
        ValidatorSet::new(
            powers
                .iter()
                .enumerate()
                .map(|(i, p)| Validator {
                    name: format!("v{i}"),
                    public_key: keys[i].public_key(),
                    power: VotingPower(*p),
                    operator: keys[i].address(),
                })
                .collect(),
        )
        .unwrap()
    }

    fn vote(kind: VoteType, round: u32, value: Option<Hash>, validator: u32) -> Vote {
        let chain = ChainId::new("test").unwrap();
        Vote::new_signed(
            &chain,
            kind,
            Height(1),
            Round(round),
            value,
            ValidatorIndex(validator),
            &keys()[validator as usize],
        )
    }

    #[test]
    fn weighted_quorum_for_a_value_and_for_anything() {
        let block = Some(sha256(b"b"));
        let mut keeper = VoteKeeper::new(Height(1), set(&[1, 1, 1, 1]));
        for v in 0..2 {
            assert_eq!(
                keeper.add_vote(vote(VoteType::Prevote, 0, block, v)),
                Ok(AddVote::Added)
            );
        }
        assert_eq!(keeper.quorum_value(Round(0), VoteType::Prevote), None);
        keeper
            .add_vote(vote(VoteType::Prevote, 0, None, 2))
            .unwrap();
        assert!(keeper.has_quorum_any(Round(0), VoteType::Prevote));
        assert_eq!(keeper.quorum_value(Round(0), VoteType::Prevote), None);
        keeper
            .add_vote(vote(VoteType::Prevote, 0, block, 3))
            .unwrap();
        assert_eq!(
            keeper.quorum_value(Round(0), VoteType::Prevote),
            Some(block)
        );
    }

    #[test]
    fn power_is_weighted() {
        // Validator 0 holds 5 of 8: alone it is not a quorum, with 1 it is.
        let block = Some(sha256(b"b"));
        let mut keeper = VoteKeeper::new(Height(1), set(&[5, 1, 1, 1]));
        keeper
            .add_vote(vote(VoteType::Precommit, 0, block, 0))
            .unwrap();
        assert_eq!(keeper.quorum_value(Round(0), VoteType::Precommit), None);
        keeper
            .add_vote(vote(VoteType::Precommit, 0, block, 1))
            .unwrap();
        assert_eq!(keeper.precommit_quorums(), vec![(Round(0), sha256(b"b"))]);
        let certificate = keeper.certificate(Round(0), sha256(b"b")).unwrap();
        assert_eq!(certificate.signatures.len(), 2);
        let chain = ChainId::new("test").unwrap();
        assert!(certificate.verify(&chain, &set(&[5, 1, 1, 1])).is_ok());
    }

    #[test]
    fn equivocation_yields_evidence_once_and_is_not_counted() {
        let mut keeper = VoteKeeper::new(Height(1), set(&[1, 1, 1, 1]));
        let first = vote(VoteType::Prevote, 2, Some(sha256(b"a")), 1);
        let second = vote(VoteType::Prevote, 2, None, 1);
        assert_eq!(keeper.add_vote(first.clone()), Ok(AddVote::Added));
        assert_eq!(keeper.add_vote(first), Ok(AddVote::AlreadyKnown));
        let AddVote::Equivocation(evidence) = keeper.add_vote(second.clone()).unwrap() else {
            panic!("expected evidence");
        };
        assert_eq!(evidence.validator(), ValidatorIndex(1));
        assert!(evidence
            .verify(&ChainId::new("test").unwrap(), &set(&[1, 1, 1, 1]))
            .is_ok());
        assert_eq!(keeper.add_vote(second), Ok(AddVote::KnownEquivocation));
        assert_eq!(keeper.evidence().count(), 1);
        // Counted once towards "anything"...
        assert!(!keeper.has_quorum_any(Round(2), VoteType::Prevote));
        // ...but towards each value it signed: with two honest nil votes
        // the equivocator completes a polka for nil.
        keeper
            .add_vote(vote(VoteType::Prevote, 2, None, 2))
            .unwrap();
        keeper
            .add_vote(vote(VoteType::Prevote, 2, None, 3))
            .unwrap();
        assert_eq!(keeper.quorum_value(Round(2), VoteType::Prevote), Some(None));
    }

    #[test]
    fn a_certificate_can_include_an_equivocators_second_precommit() {
        let block = Some(sha256(b"b"));
        let mut keeper = VoteKeeper::new(Height(1), set(&[1, 1, 1, 1]));
        keeper
            .add_vote(vote(VoteType::Precommit, 0, None, 3))
            .unwrap();
        for v in [0, 1, 3] {
            keeper
                .add_vote(vote(VoteType::Precommit, 0, block, v))
                .unwrap();
        }
        let certificate = keeper.certificate(Round(0), sha256(b"b")).unwrap();
        assert_eq!(certificate.signatures.len(), 3);
        assert!(certificate
            .verify(&ChainId::new("test").unwrap(), &set(&[1, 1, 1, 1]))
            .is_ok());
    }

    #[test]
    fn round_skip_needs_more_than_one_third_in_a_higher_round() {
        let mut keeper = VoteKeeper::new(Height(1), set(&[1, 1, 1, 1]));
        keeper
            .add_vote(vote(VoteType::Prevote, 3, None, 0))
            .unwrap();
        assert_eq!(keeper.round_skip(Round(0)), None);
        keeper
            .add_proposal_sender(Round(3), ValidatorIndex(1))
            .unwrap();
        assert_eq!(keeper.round_skip(Round(0)), Some(Round(3)));
        assert_eq!(keeper.round_skip(Round(3)), None);
    }

    #[test]
    fn wrong_height_and_unknown_validator_are_refused() {
        let mut keeper = VoteKeeper::new(Height(2), set(&[1, 1, 1, 1]));
        assert!(keeper
            .add_vote(vote(VoteType::Prevote, 0, None, 0))
            .is_err());
        let mut keeper = VoteKeeper::new(Height(1), set(&[1, 1]));
        assert!(keeper
            .add_vote(vote(VoteType::Prevote, 0, None, 3))
            .is_err());
    }
}
