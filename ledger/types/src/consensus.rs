//! The signed objects of consensus: votes, proposals, commit certificates
//! and evidence of equivocation.
//!
//! Every signature covers a domain tag and the chain id, so a vote can
//! never be mistaken for a proposal or replayed on another chain.

use serde::{Deserialize, Serialize};

use crate::{
    codec, crypto::RememberedSignatures, limits::VOTE_BYTES_MAX, BatchVerifier, ChainId, Hash,
    Height, Keypair, Round, Signature, TypesError, ValidatorIndex, ValidatorSet, VotingPower,
};

/// Domain separator of vote signatures.
pub const VOTE_SIGNING_DOMAIN: &[u8] = b"cairn/vote/v1\0";
/// Domain separator of proposal signatures.
pub const PROPOSAL_SIGNING_DOMAIN: &[u8] = b"cairn/proposal/v1\0";

/// The two kinds of vote of Tendermint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum VoteType {
    /// First-phase vote.
    Prevote,
    /// Second-phase vote; a quorum of these for a block decides it.
    Precommit,
}

/// A signed prevote or precommit for a block, or for nothing (nil).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Vote {
    /// Prevote or precommit.
    pub vote_type: VoteType,
    /// The height voted on.
    pub height: Height,
    /// The round voted in.
    pub round: Round,
    /// The block voted for; `None` is a vote for nil.
    pub block_hash: Option<Hash>,
    /// Who votes.
    pub validator: ValidatorIndex,
    /// The validator's signature over [`Vote::signing_bytes`].
    pub signature: Signature,
}

/// What a vote signature covers.
#[derive(Serialize)]
struct VoteSigningPayload<'a> {
    chain_id: &'a ChainId,
    vote_type: VoteType,
    height: Height,
    round: Round,
    block_hash: Option<Hash>,
}

impl Vote {
    /// The bytes a validator signs: a domain tag, then (chain id, type,
    /// height, round, block hash or nil).
    pub fn signing_bytes(
        chain_id: &ChainId,
        vote_type: VoteType,
        height: Height,
        round: Round,
        block_hash: Option<Hash>,
    ) -> Vec<u8> {
        let payload = VoteSigningPayload {
            chain_id,
            vote_type,
            height,
            round,
            block_hash,
        };
        let mut bytes = VOTE_SIGNING_DOMAIN.to_vec();
        bytes.extend_from_slice(&codec::encode(&payload));
        bytes
    }

    /// Makes and signs a vote.
    pub fn new_signed(
        chain_id: &ChainId,
        vote_type: VoteType,
        height: Height,
        round: Round,
        block_hash: Option<Hash>,
        validator: ValidatorIndex,
        keypair: &Keypair,
    ) -> Vote {
        let signature = keypair.sign(&Self::signing_bytes(
            chain_id, vote_type, height, round, block_hash,
        ));
        Vote {
            vote_type,
            height,
            round,
            block_hash,
            validator,
            signature,
        }
    }

    /// The signing bytes of this vote.
    pub fn own_signing_bytes(&self, chain_id: &ChainId) -> Vec<u8> {
        Self::signing_bytes(
            chain_id,
            self.vote_type,
            self.height,
            self.round,
            self.block_hash,
        )
    }

    /// Checks that the voter is in `validators` and the signature is its.
    pub fn verify(&self, chain_id: &ChainId, validators: &ValidatorSet) -> Result<(), TypesError> {
        let validator = validators
            .get(self.validator)
            .ok_or(TypesError::BadSignature)?;
        validator
            .public_key
            .verify_remembered(&self.own_signing_bytes(chain_id), &self.signature)
    }

    /// Canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes canonical bytes, bounded by [`VOTE_BYTES_MAX`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Vote, TypesError> {
        codec::decode("vote", bytes, VOTE_BYTES_MAX)
    }
}

/// A proposer's signed claim that `block_hash` is its proposal for a
/// height and round. The block travels beside it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Proposal {
    /// The height proposed for.
    pub height: Height,
    /// The round proposed in.
    pub round: Round,
    /// The round in which the proposer saw this block become valid (a
    /// re-proposal, Algorithm 1 line 16), or `None` (the paper's -1).
    pub valid_round: Option<Round>,
    /// The proposed block.
    pub block_hash: Hash,
    /// The proposer of this height and round.
    pub proposer: ValidatorIndex,
    /// The proposer's signature over [`Proposal::signing_bytes`].
    pub signature: Signature,
}

/// What a proposal signature covers.
#[derive(Serialize)]
struct ProposalSigningPayload<'a> {
    chain_id: &'a ChainId,
    height: Height,
    round: Round,
    valid_round: Option<Round>,
    block_hash: Hash,
}

impl Proposal {
    /// The bytes a proposer signs: a domain tag, then (chain id, height,
    /// round, valid round, block hash).
    pub fn signing_bytes(
        chain_id: &ChainId,
        height: Height,
        round: Round,
        valid_round: Option<Round>,
        block_hash: Hash,
    ) -> Vec<u8> {
        let payload = ProposalSigningPayload {
            chain_id,
            height,
            round,
            valid_round,
            block_hash,
        };
        let mut bytes = PROPOSAL_SIGNING_DOMAIN.to_vec();
        bytes.extend_from_slice(&codec::encode(&payload));
        bytes
    }

    /// Makes and signs a proposal.
    pub fn new_signed(
        chain_id: &ChainId,
        height: Height,
        round: Round,
        valid_round: Option<Round>,
        block_hash: Hash,
        proposer: ValidatorIndex,
        keypair: &Keypair,
    ) -> Proposal {
        let signature = keypair.sign(&Self::signing_bytes(
            chain_id,
            height,
            round,
            valid_round,
            block_hash,
        ));
        Proposal {
            height,
            round,
            valid_round,
            block_hash,
            proposer,
            signature,
        }
    }

    /// Checks that the signer is in `validators` and the signature is its.
    /// Whether it is the *right* proposer for the round is consensus's
    /// business.
    pub fn verify(&self, chain_id: &ChainId, validators: &ValidatorSet) -> Result<(), TypesError> {
        let validator = validators
            .get(self.proposer)
            .ok_or(TypesError::BadSignature)?;
        let bytes = Self::signing_bytes(
            chain_id,
            self.height,
            self.round,
            self.valid_round,
            self.block_hash,
        );
        validator
            .public_key
            .verify_remembered(&bytes, &self.signature)
    }
}

/// One precommit signature inside a [`CommitCertificate`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CommitSignature {
    /// Who signed.
    pub validator: ValidatorIndex,
    /// Its precommit signature for the certificate's block.
    pub signature: Signature,
}

/// Proof that a block was decided: precommits for it, in one round, from
/// validators holding more than two thirds of the voting power.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CommitCertificate {
    /// The decided height.
    pub height: Height,
    /// The round in which the precommits were cast.
    pub round: Round,
    /// The decided block.
    pub block_hash: Hash,
    /// Precommit signatures, in strictly increasing validator order.
    pub signatures: Vec<CommitSignature>,
}

impl CommitCertificate {
    /// The hash of the canonical encoding (what the next header commits to).
    pub fn hash(&self) -> Hash {
        codec::sha256_of_encoding(self)
    }

    /// Verifies the certificate on its own: signatures in strictly
    /// increasing validator order, every signer in `validators`, every
    /// signature a valid precommit for the block (batch-verified), and more
    /// than two thirds of the power. Returns the signed power.
    pub fn verify(
        &self,
        chain_id: &ChainId,
        validators: &ValidatorSet,
    ) -> Result<VotingPower, TypesError> {
        let bad = |reason: String| TypesError::BadCertificate { reason };
        let message = Vote::signing_bytes(
            chain_id,
            VoteType::Precommit,
            self.height,
            self.round,
            Some(self.block_hash),
        );
        let mut power = VotingPower::ZERO;
        let mut batch = BatchVerifier::with_capacity(self.signatures.len());
        let mut unverified: Vec<usize> = Vec::with_capacity(self.signatures.len());
        let mut previous: Option<ValidatorIndex> = None;
        for (index, commit) in self.signatures.iter().enumerate() {
            if previous.is_some_and(|previous| commit.validator <= previous) {
                return Err(bad(format!(
                    "validator {} is out of order or repeated",
                    commit.validator
                )));
            }
            previous = Some(commit.validator);
            let validator = validators.get(commit.validator).ok_or_else(|| {
                bad(format!(
                    "validator {} is not in the set of {}",
                    commit.validator,
                    validators.len()
                ))
            })?;
            power = power.checked_add(validator.power)?;
            // A precommit this node verified as a vote is not verified again.
            if !RememberedSignatures::verified_before(
                &validator.public_key,
                &commit.signature,
                &message,
            ) {
                batch.push(validator.public_key, commit.signature, &message);
                unverified.push(index);
            }
        }
        if !validators.is_quorum(power) {
            return Err(bad(format!(
                "signers hold {power} of {} voting power, not more than two thirds",
                validators.total_power()
            )));
        }
        if let Some(position) = batch.verify().iter().position(|ok| !ok) {
            return Err(bad(format!(
                "the precommit signature of validator {} does not verify",
                self.signatures[unverified[position]].validator
            )));
        }
        for &index in &unverified {
            let commit = &self.signatures[index];
            if let Some(validator) = validators.get(commit.validator) {
                RememberedSignatures::remember(&validator.public_key, &commit.signature, &message);
            }
        }
        Ok(power)
    }
}

/// Two validly signed votes of one validator for the same height, round
/// and type that name different values (nil counts as a value).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DuplicateVoteEvidence {
    /// The vote with the smaller value (nil first, then by hash).
    pub vote_a: Vote,
    /// The vote with the larger value.
    pub vote_b: Vote,
}

/// Proof of misbehaviour, gossiped and recorded in blocks.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Evidence {
    /// A validator voted twice.
    DuplicateVote(DuplicateVoteEvidence),
}

impl Evidence {
    /// Builds canonical duplicate-vote evidence from two conflicting
    /// votes, ordering them so the same pair always yields the same bytes.
    /// Returns `None` if the votes do not conflict.
    pub fn duplicate_vote(first: Vote, second: Vote) -> Option<Evidence> {
        let conflicting = first.validator == second.validator
            && first.height == second.height
            && first.round == second.round
            && first.vote_type == second.vote_type
            && first.block_hash != second.block_hash;
        if !conflicting {
            return None;
        }
        let (vote_a, vote_b) = if first.block_hash < second.block_hash {
            (first, second)
        } else {
            (second, first)
        };
        Some(Evidence::DuplicateVote(DuplicateVoteEvidence {
            vote_a,
            vote_b,
        }))
    }

    /// The height of the misbehaviour.
    pub fn height(&self) -> Height {
        match self {
            Evidence::DuplicateVote(evidence) => evidence.vote_a.height,
        }
    }

    /// The validator that misbehaved.
    pub fn validator(&self) -> ValidatorIndex {
        match self {
            Evidence::DuplicateVote(evidence) => evidence.vote_a.validator,
        }
    }

    /// The hash of the canonical encoding.
    pub fn hash(&self) -> Hash {
        codec::sha256_of_encoding(self)
    }

    /// Checks that the evidence is canonical and both signatures verify.
    pub fn verify(&self, chain_id: &ChainId, validators: &ValidatorSet) -> Result<(), TypesError> {
        match self {
            Evidence::DuplicateVote(evidence) => {
                let canonical =
                    Evidence::duplicate_vote(evidence.vote_a.clone(), evidence.vote_b.clone());
                if canonical.as_ref() != Some(self) {
                    return Err(TypesError::Malformed {
                        what: "evidence",
                        reason: "the votes do not conflict or are not in canonical order".into(),
                    });
                }
                evidence.vote_a.verify(chain_id, validators)?;
                evidence.vote_b.verify(chain_id, validators)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::{Address, Validator};

    fn keys() -> Vec<Keypair> {
        (0..4u8)
            .map(|n| Keypair::from_seed(&[40 + n; 32]))
            .collect()
    }

    fn set(keys: &[Keypair]) -> ValidatorSet {
        ValidatorSet::new(
            keys.iter()
                .enumerate()
                .map(|(index, key)| Validator {
                    name: format!("v{index}"),
                    public_key: key.public_key(),
                    power: VotingPower(1),
                    operator: Address([index as u8; 20]),
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn remembered_precommits_are_not_verified_again_and_a_bad_one_is_still_named() {
        let keys = keys();
        let validators = set(&keys);
        let chain = ChainId::new("cairn-remembered").unwrap();
        let block_hash = Hash([9; 32]);
        let precommit = |index: usize| {
            Vote::new_signed(
                &chain,
                VoteType::Precommit,
                Height(5),
                Round(2),
                Some(block_hash),
                ValidatorIndex(index as u32),
                &keys[index],
            )
        };
        // Validators 0 and 1 were seen as gossip votes: verified and
        // remembered.
        for (index, key) in keys.iter().enumerate().take(2) {
            assert!(precommit(index).verify(&chain, &validators).is_ok());
            let vote = precommit(index);
            assert!(RememberedSignatures::verified_before(
                &key.public_key(),
                &vote.signature,
                &vote.own_signing_bytes(&chain)
            ));
        }
        let certificate = |bad: Option<usize>| CommitCertificate {
            height: Height(5),
            round: Round(2),
            block_hash,
            signatures: (0..3)
                .map(|index| {
                    let mut signature = precommit(index).signature;
                    if bad == Some(index) {
                        signature.0[10] ^= 1;
                    }
                    CommitSignature {
                        validator: ValidatorIndex(index as u32),
                        signature,
                    }
                })
                .collect(),
        };
        // A bad signature of a validator not remembered is found and named.
        let error = certificate(Some(2))
            .verify(&chain, &validators)
            .unwrap_err()
            .to_string();
        assert!(error.contains("validator 2"), "{error}");
        // A remembered triple does not vouch for a different signature of
        // the same validator.
        let error = certificate(Some(1))
            .verify(&chain, &validators)
            .unwrap_err()
            .to_string();
        assert!(error.contains("validator 1"), "{error}");
        assert_eq!(
            certificate(None).verify(&chain, &validators).unwrap(),
            VotingPower(3)
        );
        // A vote whose signature fails is never remembered.
        let mut forged = precommit(3);
        forged.signature.0[3] ^= 1;
        assert!(forged.verify(&chain, &validators).is_err());
        assert!(forged.verify(&chain, &validators).is_err());
        assert!(!RememberedSignatures::verified_before(
            &keys[3].public_key(),
            &forged.signature,
            &forged.own_signing_bytes(&chain)
        ));
    }
}
