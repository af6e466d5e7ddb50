//! The consensus write-ahead log entry and its replay.
//!
//! The driver emits [`crate::Output::Persist`] with one of these for each of
//! its own signed messages and for every change of `lockedValue`,
//! `lockedRound`, `validValue` and `validRound`, *before* the output that
//! broadcasts anything depending on it. The host appends the encoded entry
//! (`WalEntry::to_bytes`) to its store and syncs it before executing the
//! next output. Blocks named by a proposal or a lock travel as a
//! [`WalEntry::Block`] written before the entry that names them, so a
//! replay has the bytes, not only the hash.
//!
//! Replaying the entries of a height ([`WalState::replay`]) gives back the
//! round, the locked and valid values with their blocks, and the own
//! proposals and votes, so a restarted validator neither forgets a lock nor
//! signs anything conflicting with what it signed before the crash.
//!
//! It also gives back the *polka* behind the valid value: the prevotes of
//! others (more than 2/3 of the power for the block in its round) are
//! written in a [`WalEntry::Polka`] before the `Valid` entry. Without them
//! a restarted validator still re-proposes its valid value with its valid
//! round (Algorithm 1, line 16), but neither it nor its peers may prevote
//! the re-proposal without those prevotes (line 28): a height at which
//! every validator holding them restarted, and none decided, would take
//! nil prevotes forever. The soak's seed 722013 showed it.
//!
//! New variants are only ever appended: the entries are encoded with the
//! variant's index, and a WAL written by an earlier build must replay.

use std::{collections::BTreeMap, sync::Arc};

use cairn_types::{codec, Block, Hash, Height, Proposal, Round, Vote, VoteType};
use serde::{Deserialize, Serialize};

use crate::{limits::WAL_ENTRY_BYTES_MAX, round::RoundValue, ConsensusError};

/// One record of the consensus WAL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WalEntry {
    /// The driver entered `round` of `height`.
    Round {
        /// Height.
        height: Height,
        /// Round entered.
        round: Round,
    },
    /// The bytes of a block named by a later entry.
    Block {
        /// Height.
        height: Height,
        /// The block.
        block: Arc<Block>,
    },
    /// An own signed proposal (its block is in an earlier `Block` entry).
    Proposal(Proposal),
    /// An own signed vote.
    Vote(Vote),
    /// `lockedValue`/`lockedRound` changed.
    Locked {
        /// Height.
        height: Height,
        /// `lockedRound`.
        round: Round,
        /// `lockedValue`.
        block_hash: Hash,
    },
    /// `validValue`/`validRound` changed.
    Valid {
        /// Height.
        height: Height,
        /// `validRound`.
        round: Round,
        /// `validValue`.
        block_hash: Hash,
    },
    /// The prevotes that made `block_hash` the valid value in `round` (more
    /// than 2/3 of the power), written before the `Valid` entry they
    /// justify and restored into the vote count on replay.
    Polka {
        /// Height.
        height: Height,
        /// The round of the prevotes (`validRound`).
        round: Round,
        /// The block they prevote (`validValue`).
        block_hash: Hash,
        /// The prevotes, each signed by its validator.
        prevotes: Vec<Vote>,
    },
}

impl WalEntry {
    /// The height the entry belongs to.
    pub fn height(&self) -> Height {
        match self {
            WalEntry::Round { height, .. }
            | WalEntry::Block { height, .. }
            | WalEntry::Locked { height, .. }
            | WalEntry::Valid { height, .. }
            | WalEntry::Polka { height, .. } => *height,
            WalEntry::Proposal(proposal) => proposal.height,
            WalEntry::Vote(vote) => vote.height,
        }
    }

    /// Canonical bytes (cairn-types codec).
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes canonical bytes, bounded by [`WAL_ENTRY_BYTES_MAX`].
    pub fn from_bytes(bytes: &[u8]) -> Result<WalEntry, ConsensusError> {
        Ok(codec::decode("wal entry", bytes, WAL_ENTRY_BYTES_MAX)?)
    }
}

/// What the WAL of one height says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalState {
    /// The highest round entered or signed in.
    pub round: Round,
    /// `lockedValue`/`lockedRound`.
    pub locked: Option<RoundValue>,
    /// `validValue`/`validRound`.
    pub valid: Option<RoundValue>,
    /// Blocks by hash.
    pub blocks: BTreeMap<Hash, Arc<Block>>,
    /// Own proposals by round.
    pub proposals: BTreeMap<Round, Proposal>,
    /// Own votes by round and type.
    pub votes: BTreeMap<(Round, VoteType), Vote>,
    /// The prevotes of the latest polka written (the one behind `valid`
    /// when the WAL is whole), as (round, block, prevotes).
    pub polka: Option<(RoundValue, Vec<Vote>)>,
}

impl WalState {
    /// Whether this WAL holds the own message `signed` names (its slot).
    pub fn holds(&self, signed: &crate::signing::LastSigned) -> bool {
        use crate::signing::SignedStep;
        match signed.step {
            SignedStep::Proposal => self.proposals.contains_key(&signed.round),
            SignedStep::Prevote => self.votes.contains_key(&(signed.round, VoteType::Prevote)),
            SignedStep::Precommit => self
                .votes
                .contains_key(&(signed.round, VoteType::Precommit)),
        }
    }

    /// Replays the entries of `height`, in append order. Refuses entries of
    /// another height and two different own messages for one slot. A lock
    /// or valid value whose block bytes are not in the WAL (the host leaves
    /// a block out when a very long height fills its share of the WAL) is
    /// kept by hash: the lock still binds the votes, and the block comes
    /// again with any proposal of it.
    pub fn replay(height: Height, entries: &[WalEntry]) -> Result<WalState, ConsensusError> {
        let corrupt = |reason: String| ConsensusError::WalCorrupt { reason };
        let mut state = WalState::default();
        for entry in entries {
            if entry.height() != height {
                return Err(corrupt(format!(
                    "entry of height {} in the WAL of height {height}",
                    entry.height()
                )));
            }
            match entry {
                WalEntry::Round { round, .. } => state.round = state.round.max(*round),
                WalEntry::Block { block, .. } => {
                    state.blocks.insert(block.hash(), block.clone());
                }
                WalEntry::Proposal(proposal) => {
                    if let Some(known) = state.proposals.get(&proposal.round) {
                        if known.block_hash != proposal.block_hash {
                            return Err(corrupt(format!(
                                "two own proposals in round {}",
                                proposal.round
                            )));
                        }
                    }
                    state.round = state.round.max(proposal.round);
                    state.proposals.insert(proposal.round, proposal.clone());
                }
                WalEntry::Vote(vote) => {
                    let slot = (vote.round, vote.vote_type);
                    if let Some(known) = state.votes.get(&slot) {
                        if known.block_hash != vote.block_hash {
                            return Err(corrupt(format!(
                                "two own {:?} votes in round {}",
                                vote.vote_type, vote.round
                            )));
                        }
                    }
                    state.round = state.round.max(vote.round);
                    state.votes.insert(slot, vote.clone());
                }
                WalEntry::Locked {
                    round, block_hash, ..
                } => {
                    state.locked = Some(RoundValue {
                        round: *round,
                        value: *block_hash,
                    });
                }
                WalEntry::Valid {
                    round, block_hash, ..
                } => {
                    state.valid = Some(RoundValue {
                        round: *round,
                        value: *block_hash,
                    });
                }
                WalEntry::Polka {
                    round,
                    block_hash,
                    prevotes,
                    ..
                } => {
                    let foreign = prevotes.iter().find(|vote| {
                        vote.height != height
                            || vote.round != *round
                            || vote.vote_type != VoteType::Prevote
                            || vote.block_hash != Some(*block_hash)
                    });
                    if let Some(vote) = foreign {
                        return Err(corrupt(format!(
                            "the polka of round {round} holds a vote that is not a prevote of it \
                             for its block (a {:?} of height {} round {})",
                            vote.vote_type, vote.height, vote.round
                        )));
                    }
                    let later = state
                        .polka
                        .as_ref()
                        .is_none_or(|(known, _)| known.round <= *round);
                    if later {
                        state.polka = Some((
                            RoundValue {
                                round: *round,
                                value: *block_hash,
                            },
                            prevotes.clone(),
                        ));
                    }
                }
            }
        }
        Ok(state)
    }
}
