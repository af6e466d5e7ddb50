//! The typed inputs and outputs of the driver, and the messages it gossips.

use std::sync::Arc;

use cairn_types::{
    Block, CommitCertificate, Evidence, Hash, Height, Proposal, Round, Timestamp, ValidatorSet,
    Vote,
};
use serde::{Deserialize, Serialize};

use crate::{round::RoundTimeout, wal::WalEntry, ConsensusError};

/// Correlates a request output with the input that answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId(pub u64);

/// Which timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TimeoutKind {
    /// A timeout of Algorithm 1.
    Round(RoundTimeout),
    /// `timeout_commit`: the pause between a decision and the next height.
    Commit,
    /// Re-send own messages and ask peers for theirs while the height is undecided.
    Rebroadcast,
}

/// A timer the host must fire back as [`Input::TimeoutElapsed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timeout {
    /// Height it belongs to.
    pub height: Height,
    /// Round it belongs to.
    pub round: Round,
    /// Which timer.
    pub kind: TimeoutKind,
}

/// A proposal with the block it names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedProposal {
    /// The signed proposal.
    pub proposal: Proposal,
    /// The block (its hash must be `proposal.block_hash`).
    pub block: Arc<Block>,
}

/// A consensus message on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A proposal with its block.
    Proposal(SignedProposal),
    /// A prevote or precommit.
    Vote(Vote),
}

impl Message {
    /// The height the message is for.
    pub fn height(&self) -> Height {
        match self {
            Message::Proposal(signed) => signed.proposal.height,
            Message::Vote(vote) => vote.height,
        }
    }
}

/// Starting a height.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartHeight {
    /// The height to decide.
    pub height: Height,
    /// The hash of the block at `height - 1` (the genesis hash at 1).
    pub parent_hash: Hash,
    /// Its time (`genesis_time` at height 1).
    pub parent_time: Timestamp,
    /// The WAL entries of `height` (empty unless restarting mid-height).
    pub wal: Vec<WalEntry>,
    /// The validator set of `height` (the one its parent's header names
    /// as next).
    pub validators: ValidatorSet,
}

/// Everything that can happen to the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Start (or, with WAL entries, resume) a height.
    StartHeight(StartHeight),
    /// A proposal with its block arrived from the network.
    Proposal(SignedProposal),
    /// A vote arrived from the network.
    Vote(Vote),
    /// A scheduled timer fired.
    TimeoutElapsed(Timeout),
    /// Answer to [`Output::BuildBlock`]; `None` if no block could be built.
    BlockBuilt {
        /// The request.
        request_id: RequestId,
        /// The block.
        block: Option<Arc<Block>>,
    },
    /// Answer to [`Output::ValidateBlock`].
    BlockValidated {
        /// The request.
        request_id: RequestId,
        /// Whether the block executes on the parent state and matches its header.
        valid: bool,
    },
    /// Answer to [`Output::RequestBlock`].
    BlockReceived {
        /// The request.
        request_id: RequestId,
        /// The block.
        block: Arc<Block>,
    },
    /// A commit certificate (from a peer, a decision gossip or sync), with
    /// the block if known.
    CertificateSeen {
        /// The certificate.
        certificate: CommitCertificate,
        /// The certified block, if the sender had it.
        block: Option<Arc<Block>>,
    },
    /// The host's clock advanced.
    Time(Timestamp),
}

/// Everything the driver asks the host to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Append to the WAL and sync before executing the next output.
    Persist(WalEntry),
    /// Send to every peer.
    Broadcast(Message),
    /// Fire [`Input::TimeoutElapsed`] after `duration_ms`.
    ScheduleTimeout {
        /// The timer.
        timeout: Timeout,
        /// Delay in milliseconds.
        duration_ms: u64,
    },
    /// Build a block for `height`/`round` (answer with [`Input::BlockBuilt`]).
    BuildBlock {
        /// The request.
        request_id: RequestId,
        /// Height.
        height: Height,
        /// Round.
        round: Round,
        /// The block time must be at least this.
        time_min: Timestamp,
    },
    /// Execute the block on the parent state (answer with [`Input::BlockValidated`]).
    ValidateBlock {
        /// The request.
        request_id: RequestId,
        /// The block.
        block: Arc<Block>,
    },
    /// The height is decided: commit the block with its certificate.
    Decide {
        /// The decided block.
        block: Arc<Block>,
        /// Precommits of more than 2/3 of the voting power for it.
        certificate: CommitCertificate,
    },
    /// `timeout_commit` passed after the decision of `height - 1`: the host
    /// may start `height` (now, or once it holds transactions).
    NextHeightReady {
        /// The height to start.
        height: Height,
    },
    /// Ask peers for the proposal and votes of this round (the height is
    /// still undecided after a rebroadcast period; messages may have been
    /// lost).
    RequestRoundState {
        /// Height.
        height: Height,
        /// Round.
        round: Round,
    },
    /// Ask peers for a block by hash (answer with [`Input::BlockReceived`]).
    RequestBlock {
        /// The request.
        request_id: RequestId,
        /// Height.
        height: Height,
        /// The block wanted.
        block_hash: Hash,
    },
    /// Equivocation was detected: keep, gossip and include in a block.
    Evidence(Evidence),
    /// An input was refused (for peer scoring and logs); nothing changed.
    Rejected(ConsensusError),
}
