//! The driver: one height at a time, it turns network messages, timers and
//! host answers into round-state-machine events, and the state machine's
//! outputs into signed messages, WAL entries, timers and requests.
//!
//! It owns the vote keeper, the proposals and blocks of the height, the
//! verdicts on those blocks, the own signed messages (so it never signs two
//! conflicting ones, even after a restart from the WAL), the bounded buffer
//! of messages for the next height, and the rebroadcast timer that
//! recovers from lost messages.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use cairn_types::{
    Block, ChainId, CommitCertificate, ConsensusParams, Hash, Height, Keypair, Proposal, Round,
    Timestamp, ValidatorIndex, ValidatorSet, Vote, VoteType,
};

use crate::signing::{LastSigned, SignedStep};
use crate::{
    io::{Input, Message, Output, RequestId, SignedProposal, StartHeight, Timeout, TimeoutKind},
    limits::{
        BLOCKS_PER_HEIGHT_MAX, FUTURE_HEIGHTS_AHEAD_MAX, FUTURE_HEIGHT_MESSAGES_MAX,
        FUTURE_PROPOSAL_ROUNDS_MAX, PENDING_REQUESTS_MAX, ROUNDS_AHEAD_MAX,
        TRANSITIONS_PER_INPUT_MAX,
    },
    proposer::ProposerSchedule,
    round::{
        apply, RoundEvent, RoundOutput, RoundRules, RoundState, RoundTimeout, RoundValue, Step,
    },
    vote_keeper::{AddVote, VoteKeeper},
    wal::{WalEntry, WalState},
    ConsensusError,
};

/// Chain-wide and node-local settings of a driver.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// The chain every signature names.
    pub chain_id: ChainId,
    /// Who votes at the first height this driver starts, with what power;
    /// each [`StartHeight`] then names its height's set.
    pub validators: ValidatorSet,
    /// Timeouts, block limits and clock drift from the genesis.
    pub params: ConsensusParams,
    /// No block may be earlier than this.
    pub genesis_time: Timestamp,
    /// Pause between a decision and [`Output::NextHeightReady`]; 0 allowed.
    pub timeout_commit_ms: u64,
    /// Period of the check that re-sends own messages and asks peers for
    /// the round's messages while the height is undecided.
    pub rebroadcast_interval_ms: u64,
}

impl DriverConfig {
    /// A configuration with `timeout_commit_ms` of 1 s and a rebroadcast
    /// period of the round-0 precommit timeout.
    pub fn new(
        chain_id: ChainId,
        validators: ValidatorSet,
        params: ConsensusParams,
        genesis_time: Timestamp,
    ) -> DriverConfig {
        let rebroadcast_interval_ms = params.timeout_precommit_ms.max(1);
        DriverConfig {
            chain_id,
            validators,
            params,
            genesis_time,
            timeout_commit_ms: 1_000,
            rebroadcast_interval_ms,
        }
    }
}

/// What the driver knows about a block's validity (`valid(v)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Waiting for the host's answer.
    Pending,
    /// Valid.
    Valid,
    /// Invalid.
    Invalid,
    /// Sound, but its time is more than the drift ahead of this node's
    /// clock: not timely as a fresh proposal (prevote nil), yet judged again
    /// (validated, no clock check) once it is re-proposed with a valid
    /// round or has a precommit quorum. A clock rejection is never
    /// remembered as "invalid": a lagging clock must not keep a validator
    /// from a block the others locked on.
    NotYet,
}

#[derive(Clone, Debug)]
struct BlockEntry {
    block: Arc<Block>,
    verdict: Verdict,
}

/// A request waiting for its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PendingRequest {
    Build { height: Height, round: Round },
    Validate { height: Height, block_hash: Hash },
    Fetch { height: Height, block_hash: Hash },
}

/// Tendermint for one validator (or an observer, without a key).
#[derive(Debug)]
pub struct Driver {
    config: DriverConfig,
    /// The validator set of the current height (from [`StartHeight`]).
    validators: ValidatorSet,
    validator_set_hash: Hash,
    schedule: ProposerSchedule,
    keypair: Option<Keypair>,
    own_index: Option<ValidatorIndex>,
    rules: RoundRules,
    now: Timestamp,
    started: bool,
    state: RoundState,
    parent_hash: Hash,
    parent_time: Timestamp,
    keeper: VoteKeeper,
    proposals: BTreeMap<Round, SignedProposal>,
    blocks: BTreeMap<Hash, BlockEntry>,
    persisted_blocks: BTreeSet<Hash>,
    own_proposals: BTreeMap<Round, Proposal>,
    own_votes: BTreeMap<(Round, VoteType), Vote>,
    pending: BTreeMap<RequestId, PendingRequest>,
    next_request: u64,
    fetching: BTreeSet<Hash>,
    /// Verified certificates of this height: proof of a precommit quorum
    /// even when the keeper counted an equivocator's other precommit.
    certificates: BTreeMap<(Round, Hash), CommitCertificate>,
    /// Messages of the next height, one per (round, kind, signer): a
    /// repeat or a second message of one signer for one slot is dropped.
    future: BTreeMap<(Round, u8, u32), Message>,
    /// The last message this validator signed before this driver (see
    /// [`crate::signing`]): nothing before it or against it is signed.
    signing_floor: Option<LastSigned>,
    /// The lock held when the last message was signed, as (height, lock):
    /// restored when the WAL of that height holds none (it was lost).
    lock_floor: Option<(Height, RoundValue)>,
    /// The last prevote signed, kept beside the signing floor: signed
    /// again, with the floor's vote, when the WAL of its height lost it.
    prevote_floor: Option<LastSigned>,
}

impl Driver {
    /// A driver for `config`, signing with `keypair` if it is a validator
    /// of the set (otherwise it follows without voting).
    pub fn new(config: DriverConfig, keypair: Option<Keypair>) -> Result<Driver, ConsensusError> {
        config
            .params
            .validate()
            .map_err(|error| ConsensusError::BadConfig {
                reason: error.to_string(),
            })?;
        let own_index = keypair
            .as_ref()
            .and_then(|keypair| config.validators.index_of(&keypair.public_key()));
        Ok(Driver {
            validators: config.validators.clone(),
            validator_set_hash: config.validators.hash(),
            schedule: ProposerSchedule::new(&config.validators),
            keeper: VoteKeeper::new(Height::GENESIS, config.validators.clone()),
            parent_time: config.genesis_time,
            now: config.genesis_time,
            config,
            keypair,
            own_index,
            rules: RoundRules::default(),
            started: false,
            state: RoundState::new(Height::GENESIS),
            parent_hash: Hash::ZERO,
            proposals: BTreeMap::new(),
            blocks: BTreeMap::new(),
            persisted_blocks: BTreeSet::new(),
            own_proposals: BTreeMap::new(),
            own_votes: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_request: 0,
            fetching: BTreeSet::new(),
            certificates: BTreeMap::new(),
            future: BTreeMap::new(),
            signing_floor: None,
            lock_floor: None,
            prevote_floor: None,
        })
    }

    /// Never signs a proposal or vote before `floor` or against it (the
    /// last message this validator signed, kept by the host across resets
    /// of its WAL).
    pub fn set_signing_floor(&mut self, floor: Option<LastSigned>) {
        self.signing_floor = floor;
    }

    /// The lock this validator held at `height` when it last signed,
    /// kept by the host beside the signing floor: a height started without
    /// a newer lock in its WAL takes it, so a lost WAL loses no lock.
    pub fn set_lock_floor(&mut self, lock: Option<(Height, RoundValue)>) {
        self.lock_floor = lock;
    }

    /// The last prevote this validator signed, kept by the host beside the
    /// signing floor: a height started with a WAL that lost it (and the
    /// floor's vote) signs both again, the very messages sent before, so a
    /// round that needs them can still end.
    pub fn set_prevote_floor(&mut self, prevote: Option<LastSigned>) {
        self.prevote_floor = prevote.filter(|prevote| prevote.step == SignedStep::Prevote);
    }

    /// The signing floor, if any.
    pub fn signing_floor(&self) -> Option<LastSigned> {
        self.signing_floor
    }

    /// Whether the signing floor lets this validator sign `next`.
    fn floor_allows(&self, next: LastSigned) -> bool {
        self.signing_floor
            .is_none_or(|floor| floor.allows(&next).is_ok())
    }

    /// Test-only: breaks the rules [`RoundRules`] switches on, from the
    /// next event (and the next height's replay) on.
    #[cfg(feature = "fault-injection")]
    pub fn set_rules(&mut self, rules: RoundRules) {
        self.rules = rules;
    }

    /// The round state (height, round, step, locks, decision).
    pub fn round_state(&self) -> &RoundState {
        &self.state
    }

    /// A round above the current one whose senders hold more than a third
    /// of the power, if any. After every input this is `None` for a driver
    /// that follows L55 (it moved there); the simulator checks it.
    pub fn round_skip_pending(&self) -> Option<Round> {
        if !self.started || self.state.decision.is_some() {
            return None;
        }
        self.keeper.round_skip(self.state.round)
    }

    /// Whether this driver holds the polka behind its valid value: prevotes
    /// of more than 2/3 of the power for `validValue` in `validRound` (true
    /// when it has no valid value). Only with them may it, or a peer it
    /// answers, prevote a re-proposal of that value (Algorithm 1, line 28);
    /// the simulator checks that a restart keeps them.
    pub fn holds_polka_of_valid_value(&self) -> bool {
        self.state.valid.is_none_or(|valid| {
            self.keeper.quorum_value(valid.round, VoteType::Prevote) == Some(Some(valid.value))
        })
    }

    /// The current height.
    pub fn height(&self) -> Height {
        self.state.height
    }

    /// This validator's index in the current height's set, if it is in it.
    pub fn validator_index(&self) -> Option<ValidatorIndex> {
        self.own_index
    }

    /// The validator set of the current height.
    pub fn validators(&self) -> &ValidatorSet {
        &self.validators
    }

    /// The configuration.
    pub fn config(&self) -> &DriverConfig {
        &self.config
    }

    /// The proposer of `height` and `round`.
    pub fn proposer(&self, height: Height, round: Round) -> ValidatorIndex {
        self.schedule.proposer(height, round)
    }

    /// Own votes of the current height, by round and type.
    pub fn own_votes(&self) -> &BTreeMap<(Round, VoteType), Vote> {
        &self.own_votes
    }

    /// A block of the current height this driver holds, by hash (to serve
    /// peers that ask for it).
    pub fn block(&self, hash: &Hash) -> Option<Arc<Block>> {
        self.blocks.get(hash).map(|entry| entry.block.clone())
    }

    /// What this driver can tell a peer that asked for `height`/`round`:
    /// the round's proposal with its block, the prevotes of the proposal's
    /// valid round, and the votes of the round.
    pub fn round_messages(&self, height: Height, round: Round) -> Vec<Message> {
        let mut messages = Vec::new();
        if !self.started || height != self.state.height {
            return messages;
        }
        if let Some(signed) = self.proposals.get(&round) {
            messages.push(Message::Proposal(signed.clone()));
            if let Some(valid_round) = signed.proposal.valid_round {
                messages.extend(
                    self.keeper
                        .votes(valid_round)
                        .into_iter()
                        .filter(|vote| vote.vote_type == VoteType::Prevote)
                        .map(Message::Vote),
                );
            }
        }
        messages.extend(self.keeper.votes(round).into_iter().map(Message::Vote));
        messages
    }

    /// Handles one input; returns what the host must do, in order.
    pub fn process(&mut self, input: Input) -> Vec<Output> {
        let mut outputs = Vec::new();
        if let Err(error) = self.handle(input, &mut outputs) {
            outputs.push(Output::Rejected(error));
        }
        // Even a refused input may have changed what holds (a proposal
        // whose block is invalid is stored, and earns a nil prevote).
        if let Err(error) = self.evaluate(&mut outputs) {
            outputs.push(Output::Rejected(error));
        }
        outputs
    }

    fn handle(&mut self, input: Input, out: &mut Vec<Output>) -> Result<(), ConsensusError> {
        match input {
            Input::Time(now) => {
                self.now = self.now.max(now);
                Ok(())
            }
            Input::StartHeight(start) => self.start_height(start, out),
            _ if !self.started => Err(ConsensusError::NotStarted),
            Input::Proposal(signed) => self.on_proposal(signed, out),
            Input::Vote(vote) => self.on_vote(vote, out),
            Input::TimeoutElapsed(timeout) => self.on_timeout(timeout, out),
            Input::BlockBuilt { request_id, block } => self.on_block_built(request_id, block, out),
            Input::BlockValidated { request_id, valid } => match self.pending.remove(&request_id) {
                Some(PendingRequest::Validate { height, block_hash }) => {
                    if height == self.state.height {
                        if let Some(entry) = self.blocks.get_mut(&block_hash) {
                            entry.verdict = if valid {
                                Verdict::Valid
                            } else {
                                Verdict::Invalid
                            };
                        }
                    }
                    Ok(())
                }
                Some(other) => {
                    self.pending.insert(request_id, other);
                    Err(ConsensusError::UnknownRequest(request_id))
                }
                None => Err(ConsensusError::UnknownRequest(request_id)),
            },
            Input::BlockReceived { request_id, block } => match self.pending.remove(&request_id) {
                Some(PendingRequest::Fetch { height, block_hash }) => {
                    self.fetching.remove(&block_hash);
                    if height != self.state.height {
                        return Ok(());
                    }
                    let carried = block.hash();
                    if carried != block_hash {
                        return Err(ConsensusError::BlockHashMismatch {
                            proposed: block_hash,
                            carried,
                        });
                    }
                    self.admit_block(block, false, out)
                }
                Some(other) => {
                    self.pending.insert(request_id, other);
                    Err(ConsensusError::UnknownRequest(request_id))
                }
                None => Err(ConsensusError::UnknownRequest(request_id)),
            },
            Input::CertificateSeen { certificate, block } => {
                self.on_certificate(certificate, block, out)
            }
        }
    }

    fn new_request(&mut self, request: PendingRequest) -> Result<RequestId, ConsensusError> {
        if self.pending.len() >= PENDING_REQUESTS_MAX {
            return Err(ConsensusError::BufferFull {
                what: "pending requests",
                max: PENDING_REQUESTS_MAX,
            });
        }
        let id = RequestId(self.next_request);
        self.next_request = self
            .next_request
            .checked_add(1)
            .ok_or(ConsensusError::Overflow { what: "request id" })?;
        self.pending.insert(id, request);
        Ok(id)
    }

    fn is_proposer(&self, round: Round) -> bool {
        self.own_index
            .is_some_and(|own| own == self.schedule.proposer(self.state.height, round))
    }

    // ----- heights ------------------------------------------------------

    fn start_height(
        &mut self,
        start: StartHeight,
        out: &mut Vec<Output>,
    ) -> Result<(), ConsensusError> {
        let wal = WalState::replay(start.height, &start.wal)?;
        let restored = !start.wal.is_empty();
        let height = start.height;
        self.started = true;
        self.state = RoundState::new(height);
        self.parent_hash = start.parent_hash;
        self.parent_time = start.parent_time;
        if start.validators.hash() != self.validator_set_hash {
            self.validator_set_hash = start.validators.hash();
            self.schedule = ProposerSchedule::new(&start.validators);
            self.validators = start.validators;
        }
        self.own_index = self
            .keypair
            .as_ref()
            .and_then(|keypair| self.validators.index_of(&keypair.public_key()));
        self.keeper = VoteKeeper::new(height, self.validators.clone());
        self.proposals.clear();
        self.blocks.clear();
        self.persisted_blocks.clear();
        self.own_proposals.clear();
        self.own_votes.clear();
        self.pending.clear();
        self.fetching.clear();
        self.certificates.clear();
        // Replay: blocks the WAL names were valid when written.
        for (hash, block) in &wal.blocks {
            self.blocks.insert(
                *hash,
                BlockEntry {
                    block: block.clone(),
                    verdict: Verdict::Valid,
                },
            );
            self.persisted_blocks.insert(*hash);
        }
        for (round, proposal) in &wal.proposals {
            self.own_proposals.insert(*round, proposal.clone());
            if let Some(entry) = self.blocks.get(&proposal.block_hash) {
                self.proposals.insert(
                    *round,
                    SignedProposal {
                        proposal: proposal.clone(),
                        block: entry.block.clone(),
                    },
                );
            }
            self.keeper.add_proposal_sender(*round, proposal.proposer)?;
        }
        if !self.rules.forget_own_votes_on_replay() {
            for (slot, vote) in &wal.votes {
                self.own_votes.insert(*slot, vote.clone());
                self.keeper.add_vote(vote.clone())?;
            }
        }
        // A WAL that lost this validator's last vote at this height (a reset
        // data directory, a lost disk) gets it back from the signing floor:
        // the same vote signed again is the very message it sent (ed25519
        // signatures are deterministic), so it counts in the tally, is sent
        // again, and the round resumes after it. Without it the validator
        // stays silent in that round (its floor forbids any other vote
        // there), and with a third of the power in that state the round
        // can never gather the votes to end (the simulator's seed 770556:
        // two of three honest validators wiped and restored at the height
        // they had voted in, and the third one's lone prevote).
        let restored_votes = self.votes_of_lost_floor(height, &wal);
        for vote in &restored_votes {
            self.own_votes
                .insert((vote.round, vote.vote_type), vote.clone());
            self.keeper.add_vote(vote.clone())?;
            out.push(Output::Persist(WalEntry::Vote(vote.clone())));
        }
        let restored = restored || !restored_votes.is_empty();
        // The polka behind the valid value: others' prevotes, verified again
        // (a vote that no longer verifies is left out, never trusted).
        let polka = wal
            .polka
            .as_ref()
            .filter(|_| !self.rules.forget_polka_on_replay());
        if let Some((_, prevotes)) = polka {
            for vote in prevotes {
                if self.keeper.contains(vote) {
                    continue;
                }
                match vote.verify(&self.config.chain_id, &self.validators) {
                    Ok(()) => {
                        self.keeper.add_vote(vote.clone())?;
                    }
                    Err(_) => out.push(Output::Rejected(ConsensusError::BadSignature {
                        what: "prevote of the polka in the WAL",
                        validator: vote.validator,
                    })),
                }
            }
        }
        self.state.locked = wal.locked;
        if self.rules.forget_lock_on_replay() {
            self.state.locked = None;
        } else if let Some((lock_height, lock)) = self.lock_floor {
            if lock_height == height && self.state.locked.is_none_or(|kept| kept.round < lock.round)
            {
                self.state.locked = Some(lock);
            }
        }
        self.state.valid = if self.rules.forget_lock_on_replay() {
            None
        } else {
            wal.valid
        };
        let round = restored_votes
            .iter()
            .map(|vote| vote.round)
            .fold(wal.round, Round::max);
        self.state.round = round;
        let proposer = self.is_proposer(round);
        self.run_event(RoundEvent::StartRound { round, proposer }, out)?;
        // The step the WAL proves we reached in this round.
        if self.own_votes.contains_key(&(round, VoteType::Precommit)) {
            self.state.step = Step::Precommit;
        } else if self.own_votes.contains_key(&(round, VoteType::Prevote)) {
            self.state.step = Step::Prevote;
        }
        if restored {
            self.rebroadcast_own(out);
            out.push(Output::RequestRoundState { height, round });
        }
        self.schedule_rebroadcast(out);
        // Messages that arrived early for this height.
        let buffered = std::mem::take(&mut self.future);
        for message in buffered.into_values() {
            let result = match message {
                Message::Proposal(signed) => self.on_proposal(signed, out),
                Message::Vote(vote) => self.on_vote(vote, out),
            };
            if let Err(error) = result {
                out.push(Output::Rejected(error));
            }
        }
        Ok(())
    }

    /// The votes the signing floor and the prevote kept beside it name,
    /// signed again, those of this height that `wal` does not hold (see
    /// `start_height`). A proposal gives none: its block is lost with the
    /// WAL.
    fn votes_of_lost_floor(&self, height: Height, wal: &WalState) -> Vec<Vote> {
        let (Some(keypair), Some(own)) = (self.keypair.as_ref(), self.own_index) else {
            return Vec::new();
        };
        if self.rules.forget_own_votes_on_replay() {
            return Vec::new();
        }
        let mut kept: Vec<LastSigned> = [self.prevote_floor, self.signing_floor]
            .into_iter()
            .flatten()
            .filter(|signed| signed.height == height && !wal.holds(signed))
            .collect();
        kept.dedup();
        kept.into_iter()
            .filter_map(|signed| {
                let vote_type = match signed.step {
                    SignedStep::Prevote => VoteType::Prevote,
                    SignedStep::Precommit => VoteType::Precommit,
                    SignedStep::Proposal => return None,
                };
                Some(Vote::new_signed(
                    &self.config.chain_id,
                    vote_type,
                    height,
                    signed.round,
                    signed.block_hash,
                    own,
                    keypair,
                ))
            })
            .collect()
    }

    fn schedule_rebroadcast(&self, out: &mut Vec<Output>) {
        out.push(Output::ScheduleTimeout {
            timeout: Timeout {
                height: self.state.height,
                round: self.state.round,
                kind: TimeoutKind::Rebroadcast,
            },
            duration_ms: self.config.rebroadcast_interval_ms,
        });
    }

    fn rebroadcast_own(&self, out: &mut Vec<Output>) {
        let round = self.state.round;
        if let Some(proposal) = self.own_proposals.get(&round) {
            if let Some(entry) = self.blocks.get(&proposal.block_hash) {
                out.push(Output::Broadcast(Message::Proposal(SignedProposal {
                    proposal: proposal.clone(),
                    block: entry.block.clone(),
                })));
            }
        }
        for vote_type in [VoteType::Prevote, VoteType::Precommit] {
            if let Some(vote) = self.own_votes.get(&(round, vote_type)) {
                out.push(Output::Broadcast(Message::Vote(vote.clone())));
            }
        }
    }

    /// Classifies a message's height: `Ok(true)` to process now,
    /// `Ok(false)` when it was buffered or is stale.
    fn admit_height(&mut self, message: &Message) -> Result<bool, ConsensusError> {
        let height = message.height();
        let current = self.state.height;
        if height == current {
            return Ok(true);
        }
        if height < current {
            return Ok(false);
        }
        if height.0 - current.0 > FUTURE_HEIGHTS_AHEAD_MAX {
            return Err(ConsensusError::WrongHeight {
                current,
                got: height,
            });
        }
        // One slot per (round, kind, signer), and only the first rounds of
        // the next height: a proposal carries up to a whole block, so at
        // most FUTURE_PROPOSAL_ROUNDS_MAX blocks wait here.
        let (round, kind, signer) = match message {
            Message::Proposal(signed) => (signed.proposal.round, 0u8, signed.proposal.proposer.0),
            Message::Vote(vote) => (
                vote.round,
                match vote.vote_type {
                    VoteType::Prevote => 1,
                    VoteType::Precommit => 2,
                },
                vote.validator.0,
            ),
        };
        let rounds_max = if kind == 0 {
            FUTURE_PROPOSAL_ROUNDS_MAX
        } else {
            ROUNDS_AHEAD_MAX
        };
        if round.0 > rounds_max {
            return Err(ConsensusError::RoundTooFarAhead {
                current: Round::ZERO,
                got: round,
                ahead_max: rounds_max,
            });
        }
        let key = (round, kind, signer);
        if self.future.contains_key(&key) {
            return Ok(false);
        }
        if self.future.len() >= FUTURE_HEIGHT_MESSAGES_MAX {
            return Err(ConsensusError::BufferFull {
                what: "future height messages",
                max: FUTURE_HEIGHT_MESSAGES_MAX,
            });
        }
        self.future.insert(key, message.clone());
        Ok(false)
    }

    fn check_round_window(&self, round: Round) -> Result<(), ConsensusError> {
        if round.0 > self.state.round.0.saturating_add(ROUNDS_AHEAD_MAX) {
            return Err(ConsensusError::RoundTooFarAhead {
                current: self.state.round,
                got: round,
                ahead_max: ROUNDS_AHEAD_MAX,
            });
        }
        Ok(())
    }

    // ----- messages ------------------------------------------------------

    fn on_vote(&mut self, vote: Vote, out: &mut Vec<Output>) -> Result<(), ConsensusError> {
        if !self.admit_height(&Message::Vote(vote.clone()))? {
            return Ok(());
        }
        self.check_round_window(vote.round)?;
        if self.keeper.contains(&vote) {
            return Ok(());
        }
        vote.verify(&self.config.chain_id, &self.validators)
            .map_err(|_| ConsensusError::BadSignature {
                what: "vote",
                validator: vote.validator,
            })?;
        if let AddVote::Equivocation(evidence) = self.keeper.add_vote(vote)? {
            out.push(Output::Evidence(*evidence));
        }
        Ok(())
    }

    fn on_proposal(
        &mut self,
        signed: SignedProposal,
        out: &mut Vec<Output>,
    ) -> Result<(), ConsensusError> {
        if !self.admit_height(&Message::Proposal(signed.clone()))? {
            return Ok(());
        }
        let proposal = &signed.proposal;
        let (height, round) = (proposal.height, proposal.round);
        self.check_round_window(round)?;
        let expected = self.schedule.proposer(height, round);
        if proposal.proposer != expected {
            return Err(ConsensusError::NotProposer {
                height,
                round,
                expected,
                got: proposal.proposer,
            });
        }
        if let Some(known) = self.proposals.get(&round) {
            if known.proposal == *proposal {
                return Ok(());
            }
            return Err(ConsensusError::ConflictingProposal { height, round });
        }
        let carried = signed.block.hash();
        if carried != proposal.block_hash {
            return Err(ConsensusError::BlockHashMismatch {
                proposed: proposal.block_hash,
                carried,
            });
        }
        // A junk body under the authentic header takes no slot: the real
        // proposal may still come.
        signed.block.check_structure()?;
        proposal
            .verify(&self.config.chain_id, &self.validators)
            .map_err(|_| ConsensusError::BadSignature {
                what: "proposal",
                validator: proposal.proposer,
            })?;
        if proposal.valid_round.is_none() {
            let signer = self
                .validators
                .get(proposal.proposer)
                .map(cairn_types::Validator::address);
            if signer != Some(signed.block.header.proposer) {
                return Err(ConsensusError::ForeignFeeAddress {
                    signer: proposal.proposer.0,
                    named: signed.block.header.proposer,
                });
            }
        }
        self.keeper.add_proposal_sender(round, proposal.proposer)?;
        let block = signed.block.clone();
        self.proposals.insert(round, signed);
        self.admit_block(block, true, out)
    }

    fn on_certificate(
        &mut self,
        certificate: CommitCertificate,
        block: Option<Arc<Block>>,
        out: &mut Vec<Output>,
    ) -> Result<(), ConsensusError> {
        if certificate.height != self.state.height || self.state.decision.is_some() {
            return Ok(());
        }
        certificate.verify(&self.config.chain_id, &self.validators)?;
        for signature in &certificate.signatures {
            let vote = Vote {
                vote_type: VoteType::Precommit,
                height: certificate.height,
                round: certificate.round,
                block_hash: Some(certificate.block_hash),
                validator: signature.validator,
                signature: signature.signature,
            };
            if self.keeper.contains(&vote) {
                continue;
            }
            if let AddVote::Equivocation(evidence) = self.keeper.add_vote(vote)? {
                out.push(Output::Evidence(*evidence));
            }
        }
        if self.certificates.len() < ROUNDS_AHEAD_MAX as usize {
            self.certificates.insert(
                (certificate.round, certificate.block_hash),
                certificate.clone(),
            );
        }
        if let Some(block) = block {
            if block.hash() == certificate.block_hash {
                self.admit_block(block, false, out)?;
            }
        }
        Ok(())
    }

    // ----- blocks --------------------------------------------------------

    /// Stores a block and starts judging it: the checks the driver can do
    /// itself, then the host's execution.
    fn admit_block(
        &mut self,
        block: Arc<Block>,
        check_clock: bool,
        out: &mut Vec<Output>,
    ) -> Result<(), ConsensusError> {
        let hash = block.hash();
        if self.blocks.contains_key(&hash) {
            return Ok(());
        }
        // The hash names the header only: a body that does not match its
        // header (a junk body under an authentic header, or bytes flipped
        // in flight) says nothing about the block of that hash, so it is
        // refused without a verdict; the real body may still come.
        block.check_structure()?;
        if self.blocks.len() >= BLOCKS_PER_HEIGHT_MAX && !self.evict_one_block() {
            return Err(ConsensusError::BufferFull {
                what: "blocks of this height",
                max: BLOCKS_PER_HEIGHT_MAX,
            });
        }
        let checked = self.check_block(&block, false).and_then(|()| {
            if check_clock {
                self.check_block_time(&block)
            } else {
                Ok(())
            }
        });
        if let Err(error @ ConsensusError::BlockTooFarAhead { .. }) = checked {
            self.blocks.insert(
                hash,
                BlockEntry {
                    block,
                    verdict: Verdict::NotYet,
                },
            );
            return Err(error);
        }
        match checked {
            Ok(()) => {
                let request_id = self.new_request(PendingRequest::Validate {
                    height: self.state.height,
                    block_hash: hash,
                })?;
                self.blocks.insert(
                    hash,
                    BlockEntry {
                        block: block.clone(),
                        verdict: Verdict::Pending,
                    },
                );
                out.push(Output::ValidateBlock { request_id, block });
                Ok(())
            }
            Err(error) => {
                self.blocks.insert(
                    hash,
                    BlockEntry {
                        block,
                        verdict: Verdict::Invalid,
                    },
                );
                Err(error)
            }
        }
    }

    /// Makes room for a block in a long height: forgets one block that no
    /// rule can need any more (not locked, not the valid value, not
    /// proposed in the current or a later round, not certified, not being
    /// validated or fetched, not our own proposal). Returns whether one was
    /// forgotten.
    fn evict_one_block(&mut self) -> bool {
        let round = self.state.round;
        let mut protected: BTreeSet<Hash> = BTreeSet::new();
        protected.extend(self.state.locked.map(|locked| locked.value));
        protected.extend(self.state.valid.map(|valid| valid.value));
        protected.extend(
            self.proposals
                .range(round..)
                .map(|(_, signed)| signed.proposal.block_hash),
        );
        protected.extend(self.own_proposals.values().map(|p| p.block_hash));
        protected.extend(self.certificates.keys().map(|(_, hash)| *hash));
        protected.extend(
            self.keeper
                .precommit_quorums()
                .into_iter()
                .map(|(_, hash)| hash),
        );
        protected.extend(self.pending.values().filter_map(|request| match request {
            PendingRequest::Validate { block_hash, .. }
            | PendingRequest::Fetch { block_hash, .. } => Some(*block_hash),
            PendingRequest::Build { .. } => None,
        }));
        let victim = self
            .blocks
            .keys()
            .find(|hash| !protected.contains(*hash))
            .copied();
        match victim {
            Some(hash) => {
                self.blocks.remove(&hash);
                self.proposals
                    .retain(|_, signed| signed.proposal.block_hash != hash);
                true
            }
            None => false,
        }
    }

    /// The consensus rules of a block: structure, chain, height, parent,
    /// time (after the parent, not before genesis, and unless the block is
    /// certified, at most the clock drift ahead of our clock), validator
    /// set, parent certificate and evidence signatures.
    /// Timeliness of a fresh proposal's block: not more than the drift
    /// ahead of this node's clock.
    fn check_block_time(&self, block: &Block) -> Result<(), ConsensusError> {
        let latest = self
            .now
            .saturating_add_millis(self.config.params.clock_drift_max_ms);
        if block.header.time > latest {
            return Err(ConsensusError::BlockTooFarAhead {
                time: block.header.time,
                drift_ms: self.config.params.clock_drift_max_ms,
                now: self.now,
            });
        }
        Ok(())
    }

    /// Re-judges a block kept as [`Verdict::NotYet`] without the clock:
    /// sends it to the host for validation.
    fn judge_again(&mut self, hash: Hash, out: &mut Vec<Output>) -> Result<(), ConsensusError> {
        let Some(entry) = self.blocks.get(&hash) else {
            return Ok(());
        };
        if entry.verdict != Verdict::NotYet {
            return Ok(());
        }
        let block = entry.block.clone();
        let request_id = self.new_request(PendingRequest::Validate {
            height: self.state.height,
            block_hash: hash,
        })?;
        if let Some(entry) = self.blocks.get_mut(&hash) {
            entry.verdict = Verdict::Pending;
        }
        out.push(Output::ValidateBlock { request_id, block });
        Ok(())
    }

    fn check_block(&self, block: &Block, check_clock: bool) -> Result<(), ConsensusError> {
        let invalid = |reason: String| ConsensusError::InvalidBlock { reason };
        block.check_structure()?;
        let header = &block.header;
        if header.chain_id != self.config.chain_id {
            return Err(invalid(format!("chain id {} is not ours", header.chain_id)));
        }
        if header.height != self.state.height {
            return Err(invalid(format!(
                "height {} is not the current height {}",
                header.height, self.state.height
            )));
        }
        if header.parent_hash != self.parent_hash {
            return Err(invalid(format!(
                "parent {} is not our parent {}",
                header.parent_hash, self.parent_hash
            )));
        }
        if header.time <= self.parent_time {
            return Err(invalid(format!(
                "time {} is not after the parent's {}",
                header.time, self.parent_time
            )));
        }
        if header.time < self.config.genesis_time {
            return Err(invalid(format!(
                "time {} is before the genesis time",
                header.time
            )));
        }
        if check_clock {
            self.check_block_time(block)?;
        }
        if header.validator_set_hash != self.validator_set_hash {
            return Err(invalid("validator set hash is not ours".into()));
        }
        if block.transactions.len() as u64 > self.config.params.block_transactions_max {
            return Err(invalid(format!(
                "{} transactions, the limit is {}",
                block.transactions.len(),
                self.config.params.block_transactions_max
            )));
        }
        // The parent certificate and the evidence are signed by the sets
        // of their own heights, which the host's ledger keeps: it checks
        // them when it validates the block.
        for evidence in &block.evidence {
            if evidence.height() > header.height {
                return Err(invalid("evidence from a future height".into()));
            }
        }
        Ok(())
    }

    fn on_block_built(
        &mut self,
        request_id: RequestId,
        block: Option<Arc<Block>>,
        out: &mut Vec<Output>,
    ) -> Result<(), ConsensusError> {
        let (height, round) = match self.pending.remove(&request_id) {
            Some(PendingRequest::Build { height, round }) => (height, round),
            Some(other) => {
                self.pending.insert(request_id, other);
                return Err(ConsensusError::UnknownRequest(request_id));
            }
            None => return Err(ConsensusError::UnknownRequest(request_id)),
        };
        let Some(block) = block else {
            return Ok(());
        };
        if height != self.state.height {
            return Ok(());
        }
        self.check_block(&block, false)?;
        let hash = block.hash();
        self.blocks.insert(
            hash,
            BlockEntry {
                block,
                verdict: Verdict::Valid,
            },
        );
        self.run_event(RoundEvent::BlockBuilt { round, value: hash }, out)?;
        Ok(())
    }

    // ----- timers --------------------------------------------------------

    fn on_timeout(
        &mut self,
        timeout: Timeout,
        out: &mut Vec<Output>,
    ) -> Result<(), ConsensusError> {
        if timeout.height != self.state.height {
            return Ok(());
        }
        let round = timeout.round;
        match timeout.kind {
            TimeoutKind::Round(RoundTimeout::Propose) => {
                self.run_event(RoundEvent::TimeoutPropose { round }, out)?;
            }
            TimeoutKind::Round(RoundTimeout::Prevote) => {
                self.run_event(RoundEvent::TimeoutPrevote { round }, out)?;
            }
            TimeoutKind::Round(RoundTimeout::Precommit) => {
                self.run_event(RoundEvent::TimeoutPrecommit { round }, out)?;
            }
            TimeoutKind::Commit => {
                if self.state.decision.is_some() {
                    out.push(Output::NextHeightReady {
                        height: self.state.height.next()?,
                    });
                }
            }
            TimeoutKind::Rebroadcast => {
                if self.state.decision.is_some() {
                    return Ok(());
                }
                // The height is still undecided a whole period on: messages
                // may have been lost. Re-send ours, ask for theirs (and for
                // the polka a re-proposal refers to), retry fetches.
                let height = self.state.height;
                let round = self.state.round;
                self.rebroadcast_own(out);
                out.push(Output::RequestRoundState { height, round });
                if let Some(signed) = self.proposals.get(&round) {
                    if let Some(valid_round) = signed.proposal.valid_round {
                        let polka = self.keeper.quorum_value(valid_round, VoteType::Prevote);
                        if polka != Some(Some(signed.proposal.block_hash)) {
                            out.push(Output::RequestRoundState {
                                height,
                                round: valid_round,
                            });
                        }
                    }
                }
                self.fetching.clear();
                self.pending
                    .retain(|_, request| !matches!(request, PendingRequest::Fetch { .. }));
                self.schedule_rebroadcast(out);
            }
        }
        Ok(())
    }

    // ----- the rules -----------------------------------------------------

    /// Applies one event to the round state machine and executes its
    /// outputs. Returns whether the rule fired.
    fn run_event(
        &mut self,
        event: RoundEvent,
        out: &mut Vec<Output>,
    ) -> Result<bool, ConsensusError> {
        let (next, outputs) = apply(&self.state, &event, &self.rules);
        let fired = next != self.state || !outputs.is_empty();
        self.state = next;
        for output in outputs {
            self.execute(output, out)?;
        }
        Ok(fired)
    }

    /// Offers every condition that holds to the state machine until none
    /// fires (each firing is one-shot: it advances the step or round or
    /// sets a first-time flag).
    fn evaluate(&mut self, out: &mut Vec<Output>) -> Result<(), ConsensusError> {
        for _ in 0..TRANSITIONS_PER_INPUT_MAX {
            if !self.started || self.state.decision.is_some() {
                return Ok(());
            }
            let events = self.conditions(out)?;
            let mut fired = false;
            for event in events {
                if self.run_event(event, out)? {
                    fired = true;
                    break;
                }
            }
            if !fired {
                return Ok(());
            }
        }
        Ok(())
    }

    /// The conditions of Algorithm 1 that hold now, as events.
    fn conditions(&mut self, out: &mut Vec<Output>) -> Result<Vec<RoundEvent>, ConsensusError> {
        let mut events = Vec::new();
        let round = self.state.round;
        // L49: a quorum of precommits for a block, in any round. The hash
        // is signed by more than 2/3, so the block may come from anywhere
        // (the proposal, a certificate, a fetch by hash).
        let mut quorums = self.keeper.precommit_quorums();
        quorums.extend(self.certificates.keys().copied());
        for (precommit_round, hash) in quorums {
            match self.blocks.get(&hash).map(|entry| entry.verdict) {
                Some(Verdict::Valid) => events.push(RoundEvent::ProposalWithPrecommitQuorum {
                    round: precommit_round,
                    value: hash,
                }),
                Some(Verdict::Pending | Verdict::Invalid) => {}
                // More than 2/3 precommitted it: its time is no reason to
                // refuse it.
                Some(Verdict::NotYet) => self.judge_again(hash, out)?,
                None => {
                    if !self.fetching.contains(&hash) {
                        let height = self.state.height;
                        let request_id = self.new_request(PendingRequest::Fetch {
                            height,
                            block_hash: hash,
                        })?;
                        self.fetching.insert(hash);
                        out.push(Output::RequestBlock {
                            request_id,
                            height,
                            block_hash: hash,
                        });
                    }
                }
            }
        }
        // L55: f+1 senders in a higher round.
        if let Some(higher) = self.keeper.round_skip(round) {
            events.push(RoundEvent::RoundSkip { round: higher });
        }
        // L22, L28, L36: the proposal of the current round.
        let current = self
            .proposals
            .get(&round)
            .map(|signed| (signed.proposal.block_hash, signed.proposal.valid_round));
        if let Some((hash, proposal_valid_round)) = current {
            let polka_current =
                self.keeper.quorum_value(round, VoteType::Prevote) == Some(Some(hash));
            let mut verdict = self.blocks.get(&hash).map(|entry| entry.verdict);
            if verdict == Some(Verdict::NotYet) {
                // "Too far ahead" means "not yet": once this node's clock
                // has caught up, the block is timely (a proposer proposes
                // its block of the height again in later rounds, so a
                // verdict kept for the height would refuse it forever).
                let timely_now = self
                    .blocks
                    .get(&hash)
                    .is_some_and(|entry| self.check_block_time(&entry.block).is_ok());
                if proposal_valid_round.is_some() || polka_current || timely_now {
                    // A re-proposal, or a block more than 2/3 prevoted, is
                    // not judged on this node's clock.
                    self.judge_again(hash, out)?;
                }
                if proposal_valid_round.is_none() && !timely_now {
                    // A fresh proposal that is not timely: prevote nil.
                    events.push(RoundEvent::Proposal {
                        round,
                        value: hash,
                        valid: false,
                    });
                }
                verdict = None;
            }
            if let Some(verdict @ (Verdict::Valid | Verdict::Invalid)) = verdict {
                let valid = verdict == Verdict::Valid;
                match proposal_valid_round {
                    None => events.push(RoundEvent::Proposal {
                        round,
                        value: hash,
                        valid,
                    }),
                    Some(valid_round) => {
                        if valid_round < round
                            && self.keeper.quorum_value(valid_round, VoteType::Prevote)
                                == Some(Some(hash))
                        {
                            events.push(RoundEvent::ProposalWithPolkaPrevious {
                                round,
                                value: hash,
                                valid_round,
                                valid,
                            });
                        }
                    }
                }
                if valid && polka_current {
                    events.push(RoundEvent::ProposalWithPolkaCurrent { round, value: hash });
                }
            }
        }
        // L34, L44, L47.
        if self.keeper.has_quorum_any(round, VoteType::Prevote) {
            events.push(RoundEvent::PolkaAny { round });
        }
        if self.keeper.quorum_value(round, VoteType::Prevote) == Some(None) {
            events.push(RoundEvent::PolkaNil { round });
        }
        if self.keeper.has_quorum_any(round, VoteType::Precommit) {
            events.push(RoundEvent::PrecommitAny { round });
        }
        Ok(events)
    }

    /// Executes one output of the state machine.
    fn execute(
        &mut self,
        output: RoundOutput,
        out: &mut Vec<Output>,
    ) -> Result<(), ConsensusError> {
        let height = self.state.height;
        match output {
            RoundOutput::BuildBlock { round } => {
                if self.own_proposals.contains_key(&round) {
                    // Restarted after proposing in this round: same proposal again.
                    self.rebroadcast_own(out);
                    return Ok(());
                }
                if self.own_index.is_none() {
                    return Ok(());
                }
                // A block this validator already proposed at this height is
                // proposed again rather than a new one built: the WAL holds
                // one own block per height, however many rounds it takes
                // (a fresh 16 MiB block per round once filled the WAL).
                let earlier = self
                    .own_proposals
                    .values()
                    .map(|proposal| proposal.block_hash)
                    .find(|hash| self.blocks.contains_key(hash));
                if let Some(value) = earlier {
                    self.run_event(RoundEvent::BlockBuilt { round, value }, out)?;
                    return Ok(());
                }
                let request_id = self.new_request(PendingRequest::Build { height, round })?;
                let time_min = self
                    .parent_time
                    .saturating_add_millis(1)
                    .max(self.config.genesis_time)
                    .max(self.now);
                out.push(Output::BuildBlock {
                    request_id,
                    height,
                    round,
                    time_min,
                });
            }
            RoundOutput::Propose {
                round,
                value,
                valid_round,
            } => self.sign_proposal(round, value, valid_round, out)?,
            RoundOutput::Prevote { round, value } => {
                self.sign_vote(VoteType::Prevote, round, value, out)?;
            }
            RoundOutput::Precommit { round, value } => {
                self.sign_vote(VoteType::Precommit, round, value, out)?;
            }
            RoundOutput::ScheduleTimeout { kind, round } => {
                let params = &self.config.params;
                let duration_ms = match kind {
                    RoundTimeout::Propose => params.timeout_propose_ms(round),
                    RoundTimeout::Prevote => params.timeout_prevote_ms(round),
                    RoundTimeout::Precommit => params.timeout_precommit_ms(round),
                };
                out.push(Output::ScheduleTimeout {
                    timeout: Timeout {
                        height,
                        round,
                        kind: TimeoutKind::Round(kind),
                    },
                    duration_ms,
                });
            }
            RoundOutput::Locked(locked) => {
                self.persist_block(locked.value, out)?;
                out.push(Output::Persist(WalEntry::Locked {
                    height,
                    round: locked.round,
                    block_hash: locked.value,
                }));
            }
            RoundOutput::ValidUpdated(valid) => {
                self.persist_block(valid.value, out)?;
                let prevotes: Vec<Vote> = self
                    .keeper
                    .votes(valid.round)
                    .into_iter()
                    .filter(|vote| {
                        vote.vote_type == VoteType::Prevote && vote.block_hash == Some(valid.value)
                    })
                    .collect();
                out.push(Output::Persist(WalEntry::Polka {
                    height,
                    round: valid.round,
                    block_hash: valid.value,
                    prevotes,
                }));
                out.push(Output::Persist(WalEntry::Valid {
                    height,
                    round: valid.round,
                    block_hash: valid.value,
                }));
            }
            RoundOutput::Decide(decision) => {
                let certificate = self
                    .keeper
                    .certificate(decision.round, decision.value)
                    .or_else(|| {
                        self.certificates
                            .get(&(decision.round, decision.value))
                            .cloned()
                    })
                    .ok_or_else(|| ConsensusError::InvalidBlock {
                        reason: "decided without a precommit quorum".into(),
                    })?;
                let block = self
                    .blocks
                    .get(&decision.value)
                    .map(|entry| entry.block.clone())
                    .ok_or_else(|| ConsensusError::InvalidBlock {
                        reason: "decided a block it does not hold".into(),
                    })?;
                out.push(Output::Decide { block, certificate });
                out.push(Output::ScheduleTimeout {
                    timeout: Timeout {
                        height,
                        round: decision.round,
                        kind: TimeoutKind::Commit,
                    },
                    duration_ms: self.config.timeout_commit_ms,
                });
            }
            RoundOutput::NewRound(round) => {
                out.push(Output::Persist(WalEntry::Round { height, round }));
                let proposer = self.is_proposer(round);
                self.run_event(RoundEvent::StartRound { round, proposer }, out)?;
            }
        }
        Ok(())
    }

    fn persist_block(&mut self, hash: Hash, out: &mut Vec<Output>) -> Result<(), ConsensusError> {
        if self.persisted_blocks.contains(&hash) {
            return Ok(());
        }
        let block = self
            .blocks
            .get(&hash)
            .map(|entry| entry.block.clone())
            .ok_or_else(|| ConsensusError::InvalidBlock {
                reason: format!("block {hash} is not held"),
            })?;
        out.push(Output::Persist(WalEntry::Block {
            height: self.state.height,
            block,
        }));
        self.persisted_blocks.insert(hash);
        Ok(())
    }

    fn sign_proposal(
        &mut self,
        round: Round,
        value: Hash,
        valid_round: Option<Round>,
        out: &mut Vec<Output>,
    ) -> Result<(), ConsensusError> {
        let height = self.state.height;
        let (Some(own), Some(keypair)) = (self.own_index, self.keypair.as_ref()) else {
            return Ok(());
        };
        if self.schedule.proposer(height, round) != own {
            return Ok(());
        }
        if let Some(known) = self.own_proposals.get(&round) {
            if known.block_hash == value {
                self.rebroadcast_own(out);
                return Ok(());
            }
            return Err(ConsensusError::RefusedToEquivocate {
                what: "proposal",
                height,
                round,
            });
        }
        if !self.floor_allows(LastSigned {
            height,
            round,
            step: SignedStep::Proposal,
            block_hash: Some(value),
        }) {
            return Ok(());
        }
        // A valid value kept by hash only (its bytes were left out of a full
        // WAL before a restart) cannot be proposed: the round goes by.
        let Some(block) = self.blocks.get(&value).map(|entry| entry.block.clone()) else {
            return Ok(());
        };
        let proposal = Proposal::new_signed(
            &self.config.chain_id,
            height,
            round,
            valid_round,
            value,
            own,
            keypair,
        );
        self.persist_block(value, out)?;
        out.push(Output::Persist(WalEntry::Proposal(proposal.clone())));
        let signed = SignedProposal {
            proposal: proposal.clone(),
            block,
        };
        out.push(Output::Broadcast(Message::Proposal(signed.clone())));
        self.own_proposals.insert(round, proposal);
        self.keeper.add_proposal_sender(round, own)?;
        self.proposals.insert(round, signed);
        Ok(())
    }

    fn sign_vote(
        &mut self,
        vote_type: VoteType,
        round: Round,
        value: Option<Hash>,
        out: &mut Vec<Output>,
    ) -> Result<(), ConsensusError> {
        let height = self.state.height;
        let (Some(own), Some(keypair)) = (self.own_index, self.keypair.as_ref()) else {
            return Ok(());
        };
        if let Some(known) = self.own_votes.get(&(round, vote_type)) {
            if known.block_hash == value {
                out.push(Output::Broadcast(Message::Vote(known.clone())));
                return Ok(());
            }
            return Err(ConsensusError::RefusedToEquivocate {
                what: match vote_type {
                    VoteType::Prevote => "prevote",
                    VoteType::Precommit => "precommit",
                },
                height,
                round,
            });
        }
        if !self.floor_allows(LastSigned {
            height,
            round,
            step: vote_type.into(),
            block_hash: value,
        }) {
            return Ok(());
        }
        let vote = Vote::new_signed(
            &self.config.chain_id,
            vote_type,
            height,
            round,
            value,
            own,
            keypair,
        );
        out.push(Output::Persist(WalEntry::Vote(vote.clone())));
        out.push(Output::Broadcast(Message::Vote(vote.clone())));
        self.own_votes.insert((round, vote_type), vote.clone());
        if let AddVote::Equivocation(evidence) = self.keeper.add_vote(vote)? {
            out.push(Output::Evidence(*evidence));
        }
        Ok(())
    }
}
