//! `cairn-consensus`: Tendermint (Buchman, Kwon, Milosevic, "The latest
//! gossip on BFT consensus", arXiv:1807.04938, Algorithm 1) as a pure,
//! deterministic state machine.
//!
//! # The protocol
//!
//! `n` validators hold voting power; any set holding more than 2/3 of it is
//! a quorum (2f+1), more than 1/3 is f+1 (at least one honest validator
//! when Byzantine validators hold at most f, a third). Each height runs
//! rounds `0, 1, 2, ...` of three steps:
//!
//! * **propose** (L11-L21): `proposer(h, r)` broadcasts a proposal: its
//!   `validValue` with `validRound` if it has one (L16), else a new block
//!   (L18 `getValue`). Everyone schedules `timeoutPropose`.
//! * **prevote** (L22-L33): on the proposal, prevote it if it is valid and
//!   we are not locked on another value (L22, `vr = -1`), or if a polka
//!   (2f+1 prevotes) for it in round `vr` is at least as recent as our lock
//!   (L28); else prevote nil. On `timeoutPropose`, prevote nil (L57).
//! * **precommit** (L34-L48): 2f+1 prevotes for anything schedule
//!   `timeoutPrevote` (L34); a polka for the valid proposal locks it and
//!   precommits it (L36), or in a later step only updates `validValue`
//!   (L42); a polka for nil precommits nil (L44); `timeoutPrevote`
//!   precommits nil (L61). 2f+1 precommits for anything schedule
//!   `timeoutPrecommit` (L47), which starts the next round (L65).
//! * **decide** (L49): 2f+1 precommits for a valid block in any round
//!   decide it; the precommits are its [`CommitCertificate`].
//! * **round skip** (L55): f+1 messages from a higher round start it.
//!
//! Locks make it safe: an honest validator that precommitted `v` in round
//! `r` prevotes for nothing else unless it sees a newer polka, so two
//! quorums can never precommit different values at one height.
//!
//! # Layers
//!
//! * [`vote_keeper`]: weighted tallies, quorums, f+1 round skips and
//!   equivocation evidence.
//! * [`round`]: the upon-rules as a pure function of (state, event), each
//!   tagged with its line of Algorithm 1.
//! * [`driver`]: heights, proposer selection ([`proposer`]), signatures,
//!   block checks, timeouts, buffers, the WAL ([`wal`]) and lost-message
//!   recovery; `Driver::process(Input) -> Vec<Output>` ([`io`]).
//!
//! # Hosting the driver
//!
//! The host feeds [`Input`]s and executes the returned [`Output`]s *in
//! order*: [`Output::Persist`] must be synced before the next output runs
//! (persist before you speak); [`Output::ScheduleTimeout`] comes back as
//! [`Input::TimeoutElapsed`]; [`Output::BuildBlock`],
//! [`Output::ValidateBlock`] and [`Output::RequestBlock`] carry a
//! [`RequestId`] answered by [`Input::BlockBuilt`],
//! [`Input::BlockValidated`] and [`Input::BlockReceived`];
//! [`Output::Decide`] is committed with its certificate, then the WAL of
//! the height may be pruned, and after [`Output::NextHeightReady`] the
//! host sends [`Input::StartHeight`] for the next height. On restart the
//! host passes the decoded WAL entries of the height it resumes in
//! [`StartHeight::wal`]. Time is an input ([`Input::Time`]); this crate
//! reads no clock, draws no randomness and does no I/O.

pub mod driver;
pub mod error;
pub mod io;
pub mod limits;
pub mod proposer;
pub mod round;
pub mod signing;
pub mod vote_keeper;
pub mod wal;

pub use driver::{Driver, DriverConfig};
pub use error::ConsensusError;
pub use io::{
    Input, Message, Output, RequestId, SignedProposal, StartHeight, Timeout, TimeoutKind,
};
pub use proposer::ProposerSchedule;
pub use round::{RoundEvent, RoundOutput, RoundRules, RoundState, RoundTimeout, RoundValue, Step};
pub use signing::{LastSigned, SignedStep};
pub use vote_keeper::{AddVote, VoteKeeper};
pub use wal::{WalEntry, WalState};

use cairn_types::{ChainId, CommitCertificate, ValidatorSet, VotingPower};

/// Verifies a commit certificate on its own (for block sync): signers in
/// order and in the set, every precommit signature valid for the block,
/// more than 2/3 of the power. Returns the signed power.
pub fn verify_certificate(
    certificate: &CommitCertificate,
    chain_id: &ChainId,
    validators: &ValidatorSet,
) -> Result<VotingPower, ConsensusError> {
    Ok(certificate.verify(chain_id, validators)?)
}
