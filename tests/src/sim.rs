//! The deterministic simulator: validators made of the node's real
//! consensus host ([`ConsensusHost`]) over the node's real [`Ledger`] and
//! an in-memory `cairn-store` on a [`MemoryDisk`], a simulated network and
//! clock, fault injection and the checkers.
//!
//! One event queue ordered by (simulated time, sequence number) drives
//! everything; every random choice comes from one [`SplitMix64`] seeded by
//! the scenario, so a seed replays a run exactly (the trace hash folds
//! every processed event and decision).
//!
//! # Structure
//!
//! Each simulated node is a `ConsensusHost<SimNetwork, SimTimers,
//! SimClock>`, the same code `cairnd` runs over tokio, libp2p and RocksDB,
//! so every seed exercises the host's order of effects: WAL append (synced
//! before anything after it), broadcast, build and validate through the
//! [`Ledger`] (real header, certificate, signature and execution checks),
//! commit, and the next height. The three interfaces are implemented here:
//!
//! - [`SimNetwork`] queues every send in an outbox that the simulation
//!   drains after each `host.handle(..)` and turns into delivery events
//!   with the seed's latency, drops, duplicates and partitions. When the
//!   host broadcasts a vote or proposal, it notes whether the host's WAL
//!   already holds it (persist before you speak);
//! - [`SimTimers`] queues timeouts, which the simulation turns into timer
//!   events tagged with the node's incarnation (bumped by a crash) and the
//!   timers' generation (bumped by [`HostTimers::clear`], so timers of a
//!   replaced driver go stale);
//! - [`SimClock`] reads the shared simulated time plus the node's skew.
//!
//! A crash drops the host and ledger and the disk's unsynced writes. Half
//! of the crashes strike between steps, half inside one of the node's next
//! store writes (`MemoryDisk::crash_during_write`: after WAL appends that
//! were not synced yet, the interrupted write lost or persisted). The
//! restart reopens the store, builds a new ledger and host and calls
//! `host.start()`, which replays the WAL. A simulated client submits signed
//! transfers to every running node's mempool (`Ledger::submit`) at a fixed
//! interval, drawn from the seed; the hosts build blocks from their
//! mempools.
//!
//! # Catch-up
//!
//! A node that is behind catches up the way `cairnd` does, with the same
//! code. Block sync: each node runs the node's own sync core
//! ([`cairn_node::sync_core::SyncCore`], made anew at each boot as the
//! process's sync task is), driven here as `cairn_node::block_sync`
//! drives it over libp2p ([`Simulation::drive_sync`]): its status and
//! block-range requests and their answers travel as messages over the
//! simulated network (latency, drops, partitions apply), a request whose
//! answer is lost fails at its deadline in simulated time (an
//! [`Event::SyncWake`] at the core's next deadline), peers answer with
//! the node's serving code ([`cairn_node::block_sync::serve_sync`],
//! pruning honoured), ranges are committed with
//! [`cairn_node::block_sync::commit_synced`] (every block verified against
//! its certificate), and then the host starts over at the new tip, as the
//! runtime does on `HostEvent::Synced`. A pass is asked for when the node
//! boots, when a peer connects (a peer boots, a partition heals), when a
//! validator-signed proposal or vote arrives more than one height above
//! the node's, when a decision arrives more than two heights above its tip,
//! and when its height has not moved for
//! [`cairn_node::runtime::SYNC_CHECK_INTERVAL_MS`] (the runtime's rules).
//! A node's connected peers are the running nodes on its side of a
//! partition. At consensus level, as in the node: a host publishes each
//! decision (the decisions topic) and a peer deciding that height or the
//! next takes it as `Input::CertificateSeen` without the block (its
//! driver verifies the certificate and fetches the block by hash); a
//! round-state request is answered with the round's messages, nothing for
//! another height. (The simulator's former catch-up, a round-state request
//! answered by a peer past that height with the decided block and
//! certificate, is gone: `cairnd` never answers that way.)
//!
//! With a staking plan ([`crate::scenario::StakingPlan`]) the genesis has
//! extra candidate nodes (a consensus key outside the genesis set, a
//! funded operator account) that follow the chain, and a schedule fires
//! staking events every few heights: signed bond, unbond (part or all,
//! often of the validator whose host holds a lock), rotate-key and unjail
//! transactions offered to every running node's mempool until committed,
//! and evidence of a double vote (signed with an honest validator's key)
//! handed to the nodes so a block jails it; some events crash their
//! target or another node, or cut the target off. A rotated validator's
//! node restarts with the new key (the host takes one key for its life)
//! once the old key has left the set of its next height. Each target is
//! chosen so that in every set to come (each key's power lies between its
//! power in the next set, in the current target and in the target with
//! all pending changes) the honest keys hold more than two thirds, no key
//! holds two thirds alone and at least three validators stay; an event
//! with no such target is preceded by a join, or waits, or is skipped.
//! The checker verifies the promise at every height's first decision and
//! counts joins, removals, jailings and rotations from the changes of the
//! signing sets.
//!
//! A step takes no simulated time unless the node's disk is slow (a
//! period of [`crate::scenario::Scenario::slow_syncs`]): then each sync
//! its step made ([`MemoryDisk::syncs`]: synced writes and WAL syncs)
//! costs 5-200 ms, and the node is busy until they are done. What the
//! step sent leaves, and the timers it set start, only then; messages and
//! timers that reach a busy node wait, in their order, and are taken when
//! it is free ([`Event::Free`]). The disk's effects are those of the step
//! (a crash while busy loses the waiting inputs, not the step's writes).
//!
//! # State sync
//!
//! In seeds with [`crate::scenario::Scenario::snapshot_restores`], some
//! crashes of honest validators lose the node's data directory
//! ([`Event::Wipe`]: a new, empty [`MemoryDisk`]; a wipe waits while no
//! other running honest node holds the node's committed tip, so no
//! committed block is ever left on Byzantine nodes alone); what it last signed and
//! the lock it held survive in its sign-state file (a real
//! `cairn_node::sign_state::SignState` file, as `config/sign_state.json`
//! survives a lost `data/`), through which every later host of the node
//! signs. The node then joins by state sync with the store-level code
//! `cairnd` uses (the node's own `state_sync` module runs on tokio and
//! libp2p, so the simulator drives the same `cairn_store` functions
//! instead): an honest running peer takes a snapshot of its committed
//! height ([`create_snapshot`]); the manifest, the chunks and the evidence
//! window below the snapshot travel over the simulated network (each
//! answer a round trip, lost ones asked again after a timeout); the block
//! of that height must have the hash the honest nodes decided (the
//! trusted hash, as `sync.trust_hash` gives it), its certificate must
//! verify against the set its header names, the manifest must name the
//! chain, height and state root of that header
//! ([`SnapshotManifest::verify`]) and each chunk its hash
//! (`check_chunk`); then `restore_begin`, `restore_chunk` in order,
//! `restore_finish` (which recomputes the root) and `restore_history`
//! (from the top down). A crash during a restore makes it start over. The
//! checker compares the restored state (root, every account, staking)
//! with the provider's at that height, and, in these seeds, the state of
//! every honest node after each height it reaches with the first one's
//! (the snapshot manifest's hash). The node then starts on the restored
//! store and catches up; every other checker holds for it.
//!
//! Byzantine validators run the same host behind a transforming network
//! layer ("Byzantine mocks beside the honest code"): a silent node sends
//! nothing; an equivocating proposer sends a second, re-timed block to half
//! its peers; a double voter sends a conflicting vote to half its peers; a
//! bad-signatures node sends broken signatures and garbage bytes; a bad
//! proposer re-signs its proposals over a block with a far-future time or a
//! wrong state root; an amnesiac deletes its WAL of the height and restarts
//! its host at every precommit timeout; a false-tip peer adds signed votes
//! of a height a thousand or more ahead (which make its peers begin a sync
//! pass), claims a tip a thousand or more heights ahead in its status
//! answers, and withholds every block-range, block and round-state answer
//! (the honest sync cores chase the claimed tip, time out once and back
//! the peer off: [`Report::sync_false_tip_backoffs`]); an
//! evidence flooder signs new pairs of conflicting votes of its own at
//! every vote and gossips them as evidence (hosts keep one piece per
//! validator and height; the checker fails any honest node whose chain
//! records two).
//!
//! # Checkers
//!
//! After every step, over the blocks each host committed (read back from its
//! store): agreement, validity (certificate, parent link, structure, time,
//! the ledger's state root equal to the header's); at every broadcast of an
//! honest node: the message was in its WAL before it was sent, and it never
//! signs two different messages for one height, round and step (across
//! restarts); after a restart, the host's round state equals the one before
//! the crash (`host.round_state()`); at the end: liveness after the heal and
//! evidence of every equivocation seen by an honest node in the chain. Host
//! errors of honest nodes (a WAL write or a commit the ledger refused) are
//! violations too.

use std::{
    cell::Cell,
    collections::{BTreeMap, BTreeSet},
    rc::Rc,
    sync::Arc,
};

use cairn_consensus::{
    DriverConfig, Input, Message, RequestId, RoundState, SignedProposal, Timeout, TimeoutKind,
    WalEntry,
};
use cairn_genesis::Genesis;
use cairn_node::{
    block_sync::{commit_synced, serve_sync},
    host::{ConsensusHost, HostClock, HostConfig, HostNetwork, HostTimers},
    ledger::evidence_key,
    ledger::Ledger,
    mempool::MempoolLimits,
    metrics::Metrics,
    sign_state::SignState,
    sync_core::{SyncAction, SyncCore, SyncRequest, SyncRequestId, SyncResponse, SyncStatus},
    NodeError,
};
use cairn_state::Account;
use cairn_state::{
    staking::{Offence, StakingAction, StakingState},
    LedgerState,
};
use cairn_store::{
    create_snapshot, ChainIdentity, Column, DiskFault, InterruptedWrite, MemoryDisk, MemoryStore,
    SnapshotManifest, Store, StoreError,
};
use cairn_types::{
    codec, sha256, Address, Block, ChainId, CommitCertificate, ConsensusParams, Evidence, Hash,
    Height, Keypair, Proposal, PublicKey, Round, Timestamp, Transaction, TransactionKind,
    Validator, ValidatorSet, Vote, VoteType, VotingPower,
};

use crate::{
    rng::SplitMix64,
    scenario::{Behaviour, EventFault, Scenario, StakingKind},
};

/// Genesis time of every simulated chain (ms since the epoch).
pub const GENESIS_TIME_MS: u64 = 1_700_000_000_000;
/// Funded accounts of the simulated chain.
const ACCOUNTS: usize = 8;
/// Largest garbage message a Byzantine node sends.
const GARBAGE_BYTES_MAX: u64 = 300;
/// Events processed before a run is declared stuck (a bound, not a goal).
const EVENTS_MAX: u64 = 20_000_000;
/// Largest encoded consensus message the hosts decode.
const MESSAGE_BYTES_MAX: usize = 1024 * 1024;
/// The simulated client submits `transactions_per_block` transfers this often.
const SUBMIT_INTERVAL_MS: u64 = 50;
/// Messages a replayer remembers.
const REPLAY_MEMORY_MAX: usize = 64;
/// Nil votes of far rounds a round spammer adds to each of its votes.
const ROUND_SPAM_VOTES: u64 = 3;
/// How far above its real height a false-tip peer claims to be (at least).
const FALSE_TIP_AHEAD: u64 = 1_000;
/// How often a node checks whether its height moved, to ask for a sync
/// after [`cairn_node::runtime::SYNC_CHECK_INTERVAL_MS`] without progress
/// (the runtime checks on its poll tick).
const SYNC_CHECK_TICK_MS: u64 = 500;
/// Pieces of evidence of its own double votes an evidence flooder signs
/// at each of its votes.
const EVIDENCE_FLOOD_PER_VOTE: u64 = 4;
/// An evidence flooder's pieces are of its height or up to this many
/// heights below it (inside the evidence window).
const EVIDENCE_FLOOD_DEPTH_HEIGHTS: u64 = 5;
/// Hosts that wait for transactions poll their mempools this often (the
/// node's runtime does on its tick).
const POLL_WAITING_MS: u64 = 10;
/// A staking run checks its schedule this often (ms).
const STAKING_TICK_MS: u64 = 10;
/// Pending staking transactions are offered again every this many ticks
/// (a crash empties a mempool).
const STAKING_REOFFER_TICKS: u64 = 10;
/// An event with no target that keeps the honest power safe waits this
/// many heights for one, then is skipped.
const STAKING_EVENT_PATIENCE_HEIGHTS: u64 = 8;
/// Joins fired in place of an event that has no safe target yet, at most.
const STAKING_FILLERS_MAX: u32 = 2;
/// Staking keeps at least this many validators in every set.
const STAKING_VALIDATORS_MIN: usize = 3;
/// A locked-validator unbond polls the hosts this many ticks for a lock.
const STAKING_LOCK_POLLS: u32 = 12;
/// Simulated time one sync costs while a node's disk is slow (ms, bounds).
const SLOW_SYNC_MS: (u64, u64) = (5, 200);
/// How long a period of slow syncs lasts (ms, bounds).
const SLOW_SYNC_PERIOD_MS: (u64, u64) = (100, 1_000);
/// A node waiting for a peer to offer a snapshot asks again this often (ms).
const SNAPSHOT_RETRY_MS: u64 = 50;
/// A wipe that would leave no other honest copy of the node's committed
/// tip is tried again this often (ms).
const WIPE_WAIT_MS: u64 = 100;
/// A snapshot request (manifest, chunk, history range) whose answer was
/// lost is sent again after this long (ms).
const SNAPSHOT_REQUEST_TIMEOUT_MS: u64 = 200;
/// History blocks (the evidence window below the snapshot) in one range.
const SNAPSHOT_HISTORY_RANGE_BLOCKS: u64 = 8;
/// Mempool caps of every simulated node.
const MEMPOOL_LIMITS: MempoolLimits = MempoolLimits {
    transactions_max: 10_000,
    bytes_max: 16 * 1024 * 1024,
    min_fee: 0,
};

/// What a host asked its network to send, queued until the simulation
/// drains it.
#[derive(Clone, Debug)]
pub enum Outgoing {
    /// An own proposal or vote; `persisted` tells whether the host's WAL
    /// held it when the host handed it over.
    Consensus {
        /// The message.
        message: Message,
        /// In the WAL before the send.
        persisted: bool,
    },
    /// Evidence of equivocation.
    Evidence(Evidence),
    /// A decision the host committed.
    Decision(CommitCertificate),
    /// A request for a round's proposal and votes.
    RoundStateRequest {
        /// Height.
        height: Height,
        /// Round.
        round: Round,
    },
    /// A request for a block by hash.
    BlockRequest {
        /// Correlates the answer.
        request_id: RequestId,
        /// The block wanted.
        block_hash: Hash,
    },
}

/// [`HostNetwork`] of a simulated node: an outbox.
pub struct SimNetwork {
    store: Arc<dyn Store>,
    disk: MemoryDisk,
    outbox: Vec<Outgoing>,
}

impl SimNetwork {
    /// A network whose persist-before-send check reads `store`'s WAL on
    /// `disk`: a message counts as persisted when the WAL holds it and no
    /// write is waiting for a sync (a crash now would not lose it).
    pub fn new(store: Arc<dyn Store>, disk: MemoryDisk) -> SimNetwork {
        SimNetwork {
            store,
            disk,
            outbox: Vec::new(),
        }
    }

    /// Takes everything queued since the last call.
    pub fn drain(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.outbox)
    }

    fn in_wal(&self, message: &Message) -> bool {
        let entry = match message {
            Message::Vote(vote) => WalEntry::Vote(vote.clone()),
            Message::Proposal(signed) => WalEntry::Proposal(signed.proposal.clone()),
        };
        let bytes = entry.to_bytes();
        self.disk.unsynced_writes() == 0
            && self
                .store
                .wal_entries(message.height())
                .map(|entries| entries.contains(&bytes))
                .unwrap_or(false)
    }
}

impl HostNetwork for SimNetwork {
    fn broadcast(&mut self, message: &Message) {
        let persisted = self.in_wal(message);
        self.outbox.push(Outgoing::Consensus {
            message: message.clone(),
            persisted,
        });
    }

    fn publish_evidence(&mut self, evidence: &Evidence) {
        self.outbox.push(Outgoing::Evidence(evidence.clone()));
    }

    fn publish_decision(&mut self, certificate: &CommitCertificate) {
        self.outbox.push(Outgoing::Decision(certificate.clone()));
    }

    fn request_round_state(&mut self, height: Height, round: Round) {
        self.outbox
            .push(Outgoing::RoundStateRequest { height, round });
    }

    fn request_block(&mut self, request_id: RequestId, _height: Height, block_hash: Hash) {
        self.outbox.push(Outgoing::BlockRequest {
            request_id,
            block_hash,
        });
    }
}

/// [`HostTimers`] of a simulated node: a queue of timeouts and a
/// generation that [`HostTimers::clear`] bumps.
#[derive(Debug, Default)]
pub struct SimTimers {
    generation: u64,
    scheduled: Vec<(Timeout, u64)>,
}

impl SimTimers {
    /// The current generation; timers of older generations are stale.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Takes the timeouts scheduled since the last call, with their delays.
    pub fn drain(&mut self) -> Vec<(Timeout, u64)> {
        std::mem::take(&mut self.scheduled)
    }
}

impl HostTimers for SimTimers {
    fn schedule(&mut self, timeout: Timeout, duration_ms: u64) {
        self.scheduled.push((timeout, duration_ms));
    }

    fn clear(&mut self) {
        self.generation += 1;
        self.scheduled.clear();
    }
}

/// How far a node's clock is off: a skew plus a drift rate since a
/// moment. Jumps change the skew; the heal at the end of the fault phase
/// brings the clock back within the drift blocks may have.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClockOffset {
    /// Fixed offset, ms (negative: behind).
    pub skew_ms: i64,
    /// Drift rate, parts per million of the simulated time since
    /// `drift_from_ms`.
    pub drift_ppm: i64,
    /// Simulated time (ms) the drift counts from.
    pub drift_from_ms: u64,
}

impl ClockOffset {
    /// The offset at simulated time `now_ms`.
    fn at(&self, now_ms: u64) -> i64 {
        let elapsed = now_ms.saturating_sub(self.drift_from_ms) as i64;
        self.skew_ms + elapsed * self.drift_ppm / 1_000_000
    }
}

/// [`HostClock`] of a simulated node: the shared simulated time (ms after
/// genesis) plus the node's offset (kept across its restarts).
#[derive(Clone, Debug)]
pub struct SimClock {
    now_ms: Rc<Cell<u64>>,
    offset: Rc<Cell<ClockOffset>>,
}

impl HostClock for SimClock {
    fn now(&self) -> Timestamp {
        let now_ms = self.now_ms.get();
        let local = (GENESIS_TIME_MS + now_ms) as i64 + self.offset.get().at(now_ms);
        Timestamp(local.max(0) as u64)
    }
}

/// The host of a simulated node.
pub type SimHost = ConsensusHost<SimNetwork, SimTimers, SimClock>;

/// A message between simulated hosts.
#[derive(Clone, Debug)]
enum NetMessage {
    Consensus(Message),
    Raw(Vec<u8>),
    RoundStateRequest {
        height: Height,
        round: Round,
    },
    BlockRequest {
        request_id: RequestId,
        block_hash: Hash,
    },
    BlockResponse {
        request_id: RequestId,
        block: Arc<Block>,
    },
    /// A decision a host published (the node's decisions topic).
    Decision(CommitCertificate),
    /// A block-sync request of the requester's sync core (`incarnation`:
    /// the requester's, so answers to an earlier process are dropped).
    SyncRequest {
        incarnation: u64,
        id: SyncRequestId,
        request: SyncRequest,
    },
    /// Its answer, made by the node's own serving code.
    SyncResponse {
        incarnation: u64,
        id: SyncRequestId,
        response: SyncResponse,
    },
    Evidence(Evidence),
}

#[derive(Clone, Debug)]
enum Event {
    Deliver {
        to: usize,
        from: usize,
        message: Box<NetMessage>,
    },
    Timer {
        node: usize,
        incarnation: u64,
        generation: u64,
        timeout: Timeout,
    },
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
    PartitionStart {
        sides: Vec<bool>,
    },
    PartitionEnd,
    /// A node's clock jumps by `by_ms`.
    ClockJump {
        node: usize,
        by_ms: i64,
    },
    /// Every clock returns within the drift (the end of the fault phase).
    ClockHeal,
    /// Hosts that wait for transactions look at their mempools.
    PollWaiting,
    /// A node's disk starts failing (`Some`) or is repaired (`None`).
    DiskFault {
        node: usize,
        fault: Option<DiskFault>,
    },
    /// One of a node's records rots; the node is restarted on it.
    Rot {
        node: usize,
    },
    Submit,
    StakingTick,
    KeySwap {
        node: usize,
        incarnation: u64,
    },
    /// A busy node's syncs are done: it takes the inputs that waited.
    Free {
        node: usize,
    },
    /// A node crashes and loses its whole store; it will join again by
    /// state sync.
    Wipe {
        node: usize,
    },
    /// A node crashes if it is restoring a snapshot.
    CrashRestoring {
        node: usize,
    },
    /// A node's sync core has a deadline due, or may begin a pass.
    SyncWake {
        node: usize,
        incarnation: u64,
    },
    /// Every running node checks whether its height moved lately.
    SyncCheck,
    /// The next part of a node's state sync arrives (or is asked for).
    Snapshot {
        node: usize,
        /// Bumped when a restore starts over: parts of an older attempt are
        /// stale.
        attempt: u64,
        part: SnapshotPart,
    },
}

/// What arrives in a state sync (see [`Simulation::snapshot_part`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SnapshotPart {
    /// Look for a peer offering a snapshot recent enough.
    Discover,
    /// The manifest (and the trusted block, certificate and set).
    Manifest,
    /// One chunk.
    Chunk(usize),
    /// The next range of the evidence window below the snapshot height.
    History,
}

/// Everything a node's state can be compared by: the state root, every
/// account (slot order) and the staking state.
#[derive(Clone, Debug, PartialEq, Eq)]
struct StateImage {
    root: Hash,
    accounts: Vec<(u64, Address, Account)>,
    staking: Option<StakingState>,
}

impl StateImage {
    /// The state after the latest block of `store`.
    fn of(store: &dyn Store) -> Result<StateImage, StoreError> {
        let state = store.load_state()?;
        Ok(StateImage {
            root: state.root(),
            accounts: state.iter().collect(),
            staking: state.staking().cloned(),
        })
    }
}

/// A snapshot a node is restoring, as its provider made it.
struct TakenSnapshot {
    /// The honest node it was taken from.
    provider: usize,
    /// Its height.
    height: u64,
    manifest_bytes: Vec<u8>,
    chunks: Vec<Vec<u8>>,
    /// The block of the snapshot height, its certificate and the set that
    /// signed it (verified against the trusted hash on arrival).
    block: Block,
    certificate: CommitCertificate,
    set: ValidatorSet,
    /// The provider's state at the snapshot height (for the checker).
    state: StateImage,
    /// The blocks of the evidence window below the snapshot height that
    /// the provider holds, ascending, and the sets their headers name.
    history: Vec<(Block, CommitCertificate)>,
    history_sets: Vec<ValidatorSet>,
    /// The evidence in the provider's chain up to that height.
    evidence: BTreeSet<(Height, u32)>,
}

/// A state sync under way on a node whose store was lost.
struct Restore {
    attempt: u64,
    taken: Option<TakenSnapshot>,
    /// The store being restored into (on the node's new, empty disk).
    store: Option<Arc<dyn Store>>,
    manifest: Option<SnapshotManifest>,
    /// Chunks verified and not written yet (they are written in order).
    received: BTreeMap<usize, Vec<u8>>,
    next_chunk: usize,
    /// The evidence window below the snapshot has arrived.
    history_arrived: bool,
    /// The highest height the node had signed at when it was wiped.
    signed_height: u64,
}

/// The sign-state files of a run's nodes (`config/sign_state.json` of a
/// node that lost its data directory), removed when the run ends.
#[derive(Default)]
struct SignStateFiles(Vec<std::path::PathBuf>);

impl Drop for SignStateFiles {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}
impl Event {
    fn code(&self) -> u64 {
        match self {
            Event::Deliver { to, from, .. } => 1 + ((*to as u64) << 8) + ((*from as u64) << 16),
            Event::Timer { node, .. } => 2 + ((*node as u64) << 8),
            Event::Crash { node } => 3 + ((*node as u64) << 8),
            Event::Restart { node } => 4 + ((*node as u64) << 8),
            Event::PartitionStart { .. } => 5,
            Event::PartitionEnd => 6,
            Event::Submit => 7,
            Event::StakingTick => 8,
            Event::KeySwap { node, .. } => 9 + ((*node as u64) << 8),
            Event::ClockJump { node, .. } => 10 + ((*node as u64) << 8),
            Event::ClockHeal => 11,
            Event::PollWaiting => 12,
            Event::DiskFault { node, .. } => 13 + ((*node as u64) << 8),
            Event::Rot { node } => 14 + ((*node as u64) << 8),
            Event::Free { node } => 15 + ((*node as u64) << 8),
            Event::Wipe { node } => 16 + ((*node as u64) << 8),
            Event::CrashRestoring { node } => 18 + ((*node as u64) << 8),
            Event::SyncWake { node, .. } => 19 + ((*node as u64) << 8),
            Event::SyncCheck => 20,
            Event::Snapshot { node, part, .. } => {
                let part = match part {
                    SnapshotPart::Discover => 0,
                    SnapshotPart::Manifest => 1,
                    SnapshotPart::History => 2,
                    SnapshotPart::Chunk(index) => 3 + *index as u64,
                };
                17 + ((*node as u64) << 8) + (part << 16)
            }
        }
    }

    /// The node this event is an input of (a message to it, its timer):
    /// such events wait while the node is busy.
    fn input_of(&self) -> Option<usize> {
        match self {
            Event::Deliver { to, .. } => Some(*to),
            Event::Timer { node, .. } => Some(*node),
            _ => None,
        }
    }
}

struct Node {
    behaviour: Behaviour,
    /// The consensus key the host signs with (a rotation replaces it).
    keypair: Keypair,
    /// The key of the validator's operator account (its first consensus
    /// key: each validator is its own operator).
    operator: Keypair,
    /// A rotated key and the nonce of the rotation: the node restarts with
    /// it once the rotation is committed and the old key has left the set
    /// of its next height.
    pending_key: Option<(Keypair, u64)>,
    /// A key swap is scheduled.
    swap_scheduled: bool,
    disk: MemoryDisk,
    /// `None` while crashed.
    host: Option<SimHost>,
    incarnation: u64,
    /// How far this node's clock is off (shared with its [`SimClock`]).
    clock: Rc<Cell<ClockOffset>>,
    /// The skew it returns to when clocks heal.
    healed_skew_ms: i64,
    /// Highest height whose commit the checkers have seen.
    checked_height: u64,
    /// Evidence this node published or accepted and has not committed,
    /// re-gossiped at every commit.
    evidence_pool: BTreeMap<Hash, Evidence>,
    /// (height, validator) of the evidence in its chain (the ledger's
    /// rule: one piece per misbehaving validator and height).
    committed_evidence: BTreeSet<(Height, u32)>,
    /// The node's block-sync core (the node's own, made anew at each
    /// boot as the process's sync task is), peers named by index.
    sync: SyncCore<usize>,
    /// When an [`Event::SyncWake`] is queued for it.
    sync_wake_ms: Option<u64>,
    /// The height it last had at a sync check, and since when (ms).
    sync_progress: (u64, u64),
    crash_snapshot: Option<RoundState>,
    /// A crash is scheduled inside one of the node's next store writes
    /// (in the middle of a step), and the disk generation it was armed in.
    crash_armed: Option<u64>,
    decide_times_ms: BTreeMap<u64, u64>,
    /// A bad proposer's replacement of each of its proposals, by (height, round).
    bad_proposals: BTreeMap<(u64, u32), Message>,
    /// A replayer's memory of the messages it received (the last
    /// [`REPLAY_MEMORY_MAX`]).
    heard: std::collections::VecDeque<Message>,
    /// Why the node stopped for good (a rotten record it refused to run
    /// on): a stopped node is neither Byzantine nor held to liveness.
    stopped: Option<String>,
    /// Periods (start, end ms) in which each sync of this node costs
    /// [`SLOW_SYNC_MS`] of simulated time.
    slow_periods: Vec<(u64, u64)>,
    /// The node is busy with its last step's syncs until then.
    busy_until_ms: u64,
    /// Inputs that reached the node while it was busy, in arrival order.
    deferred: std::collections::VecDeque<Event>,
    /// An [`Event::Free`] is queued for this node.
    free_scheduled: bool,
    /// Syncs of its disk already charged in simulated time.
    syncs_charged: u64,
    /// A state sync under way (the node lost its store).
    restore: Option<Restore>,
    /// Evidence in the chain below a restored snapshot (not in the
    /// node's store, in its chain all the same).
    inherited_evidence: BTreeSet<(Height, u32)>,
    /// The node's sign-state file, once it lost its data directory (the
    /// file lives apart from it, as `config/sign_state.json` does): every
    /// later host of the node signs through it.
    sign_state_path: Option<std::path::PathBuf>,
    /// State syncs begun (numbers each attempt: parts of an older one are
    /// stale).
    restore_attempts: u64,
}

/// The result of a run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The scenario's seed.
    pub seed: u64,
    /// Hash of every processed event and decision: equal for equal seeds.
    pub trace_hash: u64,
    /// Everything the checkers found wrong (empty for a good run).
    pub violations: Vec<String>,
    /// Committed height of each node at the end.
    pub heights: Vec<u64>,
    /// Simulated time at the end (ms after genesis).
    pub end_ms: u64,
    /// Per node, the simulated time (ms after genesis) each height was decided.
    pub decide_times_ms: Vec<BTreeMap<u64, u64>>,
    /// Messages sent.
    pub messages_sent: u64,
    /// Messages dropped by the network.
    pub messages_dropped: u64,
    /// Consensus messages with a byte flipped in flight.
    pub messages_corrupted: u64,
    /// Times an honest node stopped on a disk fault (full, failed sync,
    /// rotten record), and how many of them stopped for good.
    pub disk_stops: u64,
    /// Nodes that refused to run on a rotten record and stayed down.
    pub stopped_for_good: u64,
    /// Garbage messages that did not decode, and host errors of Byzantine nodes.
    pub rejected: u64,
    /// Evidence items committed in the reference chain.
    pub evidence_committed: usize,
    /// Events processed.
    pub events: u64,
    /// Restarts whose round state was compared with the pre-crash one.
    pub restarts_checked: u64,
    /// Crashes that struck inside a store write, in the middle of a step
    /// (after unsynced WAL appends, before their sync).
    pub crashes_mid_step: u64,
    /// Evidence items an honest node committed for a (validator, height)
    /// its chain already recorded, in the same block or an earlier one (a
    /// violation: the ledger refuses such a block, whoever proposed it).
    pub evidence_recorded_twice: u64,
    /// Transfers the simulated client had accepted by a mempool.
    pub transactions_submitted: u64,
    /// Transfers committed (in the chain of the highest node).
    pub transactions_committed: u64,
    /// Hashes of the distinct validator sets that signed a verified
    /// certificate (more than one when staking changed the set).
    pub validator_sets_seen: std::collections::BTreeSet<Hash>,
    /// Staking events that fired (a transaction or evidence submitted).
    pub staking_events_fired: u64,
    /// Staking events skipped: no target kept the honest power safe.
    pub staking_events_skipped: u64,
    /// Staking events fired while a node was crashed or cut off.
    pub staking_events_during_faults: u64,
    /// Staking events by kind (fired).
    pub staking_kinds: BTreeMap<String, u64>,
    /// Staking events skipped, by kind.
    pub staking_kinds_skipped: BTreeMap<String, u64>,
    /// Joins fired in place of an event with no safe target, to make room.
    pub staking_room_joins: u64,
    /// Staking transactions committed (in the highest honest chain).
    pub staking_transactions_committed: u64,
    /// Keys that entered a signing set by a bond (not by a rotation).
    pub joins: u64,
    /// Keys that left a signing set unjailed (a full unbond).
    pub removals: u64,
    /// Keys that left a signing set because their validator was jailed.
    pub jailings: u64,
    /// Rotated keys that entered a signing set.
    pub rotations: u64,
    /// Full unbonds submitted for a validator whose host held a lock.
    pub locked_validator_unbonds: u64,
    /// Nodes restarted with their rotated key.
    pub key_swaps: u64,
    /// Heights whose signing set changed from the previous height's.
    pub set_changes: u64,
    /// Steps of a node whose syncs took simulated time (a slow disk).
    pub slow_sync_steps: u64,
    /// Simulated time those syncs took, summed (ms).
    pub slow_sync_ms: u64,
    /// Inputs (messages, timers) that waited for a busy node.
    pub inputs_deferred: u64,
    /// Nodes that lost their store and joined again from a snapshot.
    pub snapshot_restores: u64,
    /// Heights of the restored snapshots.
    pub snapshot_heights: Vec<u64>,
    /// Chunks (and manifests) re-requested after their answer was lost.
    pub snapshot_requests_lost: u64,
    /// State syncs that started over (the node crashed during one).
    pub snapshot_restarts: u64,
    /// Restores of a snapshot below a height the node had signed at.
    pub snapshot_restores_below_signed: u64,
    /// Far-tip claims a false-tip peer sent.
    pub false_tip_claims: u64,
    /// Sync requests (block ranges, round state, block by hash) a false-tip
    /// peer left unanswered.
    pub sync_requests_withheld: u64,
    /// Status answers in which a false-tip peer claimed a far tip.
    pub false_tip_status_claims: u64,
    /// Block-sync passes the nodes' sync cores began.
    pub sync_passes: u64,
    /// Status requests the sync cores sent.
    pub sync_status_requests: u64,
    /// Block-range requests the sync cores sent.
    pub sync_block_requests: u64,
    /// Ranges committed through the sync cores (at least one block each).
    pub sync_ranges_committed: u64,
    /// Blocks committed through the sync cores.
    pub sync_blocks_committed: u64,
    /// Peers the sync cores backed off.
    pub sync_backoffs: u64,
    /// Of which honest nodes backing off a false-tip peer.
    pub sync_false_tip_backoffs: u64,
    /// Distinct pieces of evidence of its own double votes an evidence
    /// flooder sent.
    pub evidence_flooded: u64,
    /// Heights whose state (every account, staking, root) was compared
    /// across honest nodes (in seeds with snapshot restores).
    pub states_compared: u64,
}

/// The highest honest chain's staking state, as the staking schedule
/// sees it (read from the node that committed it).
struct Reference {
    /// The committed height.
    height: u64,
    /// The staking state after it.
    state: StakingState,
    /// The set that signed it.
    tip_set: ValidatorSet,
    /// Committed nonce and balance of each node's operator.
    nonces: Vec<u64>,
    balances: Vec<u64>,
}

/// A staking change submitted and not yet in the reference state.
#[derive(Clone, Debug)]
enum PendingChange {
    /// A signed staking transaction of `node`'s operator.
    Transaction {
        node: usize,
        nonce: u64,
        bytes: Vec<u8>,
        action: StakingAction,
    },
    /// Evidence against `node`'s validator, handed to the nodes.
    Jail {
        node: usize,
        since_height: u64,
        evidence: Evidence,
    },
}

impl PendingChange {
    fn node(&self) -> usize {
        match self {
            PendingChange::Transaction { node, .. } | PendingChange::Jail { node, .. } => *node,
        }
    }
}

/// What a staking event does once its target is chosen.
struct StakingStep {
    node: usize,
    change: PendingChange,
    /// A rotation's new key.
    new_key: Option<Keypair>,
}

/// The staking schedule of a run.
struct StakingRun {
    next_event: usize,
    next_trigger: u64,
    /// Ticks spent looking for a locked validator.
    lock_polls: u32,
    /// Joins fired to make room for the next event.
    fillers: u32,
    last_fired_height: u64,
    ticks: u64,
    reference: Reference,
    pending: Vec<PendingChange>,
    rotated_old_keys: BTreeSet<PublicKey>,
    rotated_new_keys: BTreeSet<PublicKey>,
    keys_made: u64,
    last_signing_set: Option<ValidatorSet>,
}

/// One simulated network of validators.
pub struct Simulation {
    scenario: Scenario,
    rng: SplitMix64,
    chain_id: ChainId,
    validators: ValidatorSet,
    params: ConsensusParams,
    genesis: Genesis,
    identity: ChainIdentity,
    genesis_state: LedgerState,
    accounts: Vec<Keypair>,
    nodes: Vec<Node>,
    queue: BTreeMap<(u64, u64), Event>,
    sequence: u64,
    now_ms: u64,
    /// The simulated time every [`SimClock`] reads.
    clock: Rc<Cell<u64>>,
    partition: Option<Vec<bool>>,
    /// Directed links (from, to) that carry nothing during the fault phase.
    one_way_cut: BTreeSet<(usize, usize)>,
    trace: u64,
    // Checkers' memory.
    decisions: BTreeMap<u64, Hash>,
    transactions_by_height: BTreeMap<u64, u64>,
    signed: BTreeMap<(usize, u64, u32, u8), Option<Hash>>,
    certificates_verified: BTreeSet<Hash>,
    evidence_seen: BTreeMap<(Height, u32), (usize, u64)>,
    heights_at_heal: Option<Vec<u64>>,
    report: Report,
    tracing: bool,
    staking: Option<StakingRun>,
    /// While the outputs of a busy node's step are sent: when they leave
    /// (after its syncs).
    send_at_ms: Option<u64>,
    /// In seeds with snapshot restores: the state each height left, as the
    /// first honest node to commit it had it (the snapshot manifest's
    /// hash: every account and the staking state), and that node.
    state_digests: BTreeMap<u64, (Hash, usize)>,
    sign_state_files: SignStateFiles,
}

fn fold(trace: u64, value: u64) -> u64 {
    let mut hash = trace;
    for byte in value.to_le_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01B3);
    }
    hash
}

impl Simulation {
    /// Builds the network of `scenario` at genesis.
    pub fn new(scenario: Scenario) -> Simulation {
        let mut rng = SplitMix64::new(scenario.seed);
        let chain_id = ChainId::new("cairn-sim").unwrap_or_else(|_| unreachable!());
        let candidates = scenario.staking.as_ref().map_or(0, |plan| plan.candidates);
        let keypairs: Vec<Keypair> = (0..scenario.validators + candidates)
            .map(|i| {
                let mut seed = [0u8; 32];
                seed[0] = i as u8;
                seed[1] = 0xA1;
                Keypair::from_seed(&seed)
            })
            .collect();
        let validators = ValidatorSet::new(
            keypairs
                .iter()
                .take(scenario.validators)
                .enumerate()
                .map(|(i, keypair)| Validator {
                    name: format!("validator-{i}"),
                    public_key: keypair.public_key(),
                    power: VotingPower(scenario.powers.get(i).copied().unwrap_or(10)),
                    operator: keypair.address(),
                })
                .collect(),
        )
        .unwrap_or_else(|error| panic!("validator set: {error}"));
        let staking_params = cairn_genesis::devnet::devnet_staking_params();
        let accounts: Vec<Keypair> = (0..ACCOUNTS)
            .map(|i| Keypair::from_seed(&[0x40 + i as u8; 32]))
            .collect();
        // Each validator is its own operator, funded with its stake and as
        // much again to spend.
        let balances: Vec<(Address, u64)> = validators
            .validators()
            .iter()
            .map(|validator| {
                (
                    validator.operator,
                    validator.power.0 * staking_params.power_unit * 2,
                )
            })
            .chain(keypairs.iter().skip(scenario.validators).map(|keypair| {
                // Candidates' operators, funded to bond.
                let units = scenario
                    .staking
                    .as_ref()
                    .map_or(0, |plan| plan.candidate_balance_units);
                (keypair.address(), units * staking_params.power_unit)
            }))
            .chain(accounts.iter().map(|k| (k.address(), 1_000_000_000)))
            .collect();
        let params = ConsensusParams {
            timeout_propose_ms: 300,
            timeout_propose_delta_ms: 100,
            timeout_prevote_ms: 100,
            timeout_prevote_delta_ms: 50,
            timeout_precommit_ms: 100,
            timeout_precommit_delta_ms: 50,
            clock_drift_max_ms: 1_000,
            ..ConsensusParams::default()
        };
        let genesis = Genesis {
            chain_id: chain_id.clone(),
            genesis_time: Timestamp(GENESIS_TIME_MS),
            validators: validators.clone(),
            accounts: balances,
            consensus_params: params.clone(),
            staking_params,
            fee_params: cairn_types::FeeParams::default(),
        };
        let genesis_state = genesis
            .state()
            .unwrap_or_else(|error| panic!("genesis state: {error}"));
        let identity = ChainIdentity {
            chain_id: chain_id.clone(),
            genesis_hash: genesis.hash(),
        };
        // A twin runs the key of its validator on a node of its own.
        let twin_keys: Vec<Keypair> = scenario
            .behaviours
            .iter()
            .enumerate()
            .filter(|(_, behaviour)| **behaviour == Behaviour::Twin)
            .map(|(index, _)| keypairs[index].clone())
            .collect();
        let base_nodes = keypairs.len();
        let mut nodes = Vec::new();
        for (index, keypair) in keypairs.into_iter().chain(twin_keys).enumerate() {
            let skew_range = scenario.clock_skew_max_ms;
            let drawn = rng.between(0, 2 * skew_range) as i64 - skew_range as i64;
            let outlier = scenario
                .clock_outliers
                .iter()
                .find(|(node, _)| *node == index)
                .map(|(_, skew)| *skew);
            let clock_skew_ms = outlier.unwrap_or(drawn);
            // Drawn only when asked for, so the other seeds stay as they were.
            let drift_ppm = match scenario.clock_drift_ppm_max {
                0 => 0,
                max => rng.between(0, 2 * max) as i64 - max as i64,
            };
            // A healed clock is back within a fifth of the 1 s drift (an
            // outlier stays off: it is off for the whole run by design).
            let healed_skew_ms = outlier.unwrap_or(clock_skew_ms.clamp(-200, 200));
            let behaviour = if index >= base_nodes {
                Behaviour::Twin
            } else {
                scenario
                    .behaviours
                    .get(index)
                    .copied()
                    .unwrap_or(Behaviour::Honest)
            };
            nodes.push(Node {
                behaviour,
                operator: keypair.clone(),
                keypair,
                pending_key: None,
                swap_scheduled: false,
                disk: MemoryDisk::new(),
                host: None,
                incarnation: 0,
                clock: Rc::new(Cell::new(ClockOffset {
                    skew_ms: clock_skew_ms,
                    drift_ppm,
                    drift_from_ms: 0,
                })),
                healed_skew_ms,
                checked_height: 0,
                evidence_pool: BTreeMap::new(),
                committed_evidence: BTreeSet::new(),
                sync: SyncCore::new(),
                sync_wake_ms: None,
                sync_progress: (0, 0),
                crash_snapshot: None,
                crash_armed: None,
                decide_times_ms: BTreeMap::new(),
                bad_proposals: BTreeMap::new(),
                heard: std::collections::VecDeque::new(),
                stopped: None,
                slow_periods: Vec::new(),
                busy_until_ms: 0,
                deferred: std::collections::VecDeque::new(),
                free_scheduled: false,
                syncs_charged: 0,
                restore: None,
                inherited_evidence: BTreeSet::new(),
                sign_state_path: None,
                restore_attempts: 0,
            });
        }
        let report = Report {
            seed: scenario.seed,
            ..Report::default()
        };
        let staking = scenario.staking.as_ref().map(|plan| StakingRun {
            next_event: 0,
            next_trigger: plan.first_height,
            lock_polls: 0,
            fillers: 0,
            last_fired_height: 0,
            ticks: 0,
            reference: Reference {
                height: 0,
                state: genesis_state
                    .staking()
                    .cloned()
                    .unwrap_or_else(|| panic!("the simulated genesis has no staking state")),
                tip_set: validators.clone(),
                nonces: vec![0; nodes.len()],
                balances: nodes
                    .iter()
                    .map(|node| {
                        genesis_state
                            .account(&node.operator.address())
                            .map_or(0, |account| account.balance)
                    })
                    .collect(),
            },
            pending: Vec::new(),
            rotated_old_keys: BTreeSet::new(),
            rotated_new_keys: BTreeSet::new(),
            keys_made: 0,
            last_signing_set: None,
        });
        Simulation {
            rng,
            chain_id,
            validators,
            params,
            genesis,
            identity,
            genesis_state,
            accounts,
            nodes,
            queue: BTreeMap::new(),
            sequence: 0,
            now_ms: 0,
            clock: Rc::new(Cell::new(0)),
            partition: None,
            one_way_cut: BTreeSet::new(),
            trace: 0xCBF2_9CE4_8422_2325,
            decisions: BTreeMap::new(),
            transactions_by_height: BTreeMap::new(),
            signed: BTreeMap::new(),
            certificates_verified: BTreeSet::new(),
            evidence_seen: BTreeMap::new(),
            heights_at_heal: None,
            report,
            scenario,
            tracing: std::env::var_os("CAIRN_SIM_TRACE").is_some(),
            staking,
            send_at_ms: None,
            state_digests: BTreeMap::new(),
            sign_state_files: SignStateFiles::default(),
        }
    }

    fn honest(&self, node: usize) -> bool {
        self.nodes[node].behaviour == Behaviour::Honest
    }

    fn faults_active(&self) -> bool {
        self.now_ms < self.scenario.fault_phase_ms
    }

    /// Byzantine behaviour is active during the fault phase; a silent node
    /// stays silent for the whole run.
    fn misbehaving(&self, node: usize) -> Option<Behaviour> {
        let behaviour = self.nodes[node].behaviour;
        match behaviour {
            Behaviour::Honest => None,
            Behaviour::Silent => Some(behaviour),
            _ if self.faults_active() => Some(behaviour),
            _ => None,
        }
    }

    fn violation(&mut self, text: String) {
        if self.report.violations.len() < 32 {
            self.report
                .violations
                .push(format!("at {} ms: {text}", self.now_ms));
        }
    }

    fn schedule(&mut self, at_ms: u64, event: Event) {
        self.sequence += 1;
        self.queue.insert((at_ms, self.sequence), event);
    }

    fn driver_config(&self) -> DriverConfig {
        let mut config = DriverConfig::new(
            self.chain_id.clone(),
            self.validators.clone(),
            self.params.clone(),
            Timestamp(GENESIS_TIME_MS),
        );
        config.timeout_commit_ms = self.scenario.timeout_commit_ms;
        config.rebroadcast_interval_ms = 200;
        config
    }

    // ----- running ---------------------------------------------------------

    /// Runs the scenario to the end and returns the report.
    pub fn run(mut self) -> Report {
        self.plan_faults();
        if self.scenario.transactions_per_block > 0 {
            self.schedule(SUBMIT_INTERVAL_MS, Event::Submit);
        }
        if self.staking.is_some() {
            self.schedule(STAKING_TICK_MS, Event::StakingTick);
        }
        if self.scenario.wait_for_transactions {
            self.schedule(POLL_WAITING_MS, Event::PollWaiting);
        }
        self.schedule(SYNC_CHECK_TICK_MS, Event::SyncCheck);
        for node in 0..self.nodes.len() {
            self.boot(node);
        }
        let deadline = self.scenario.fault_phase_ms + self.scenario.liveness_budget_ms;
        while let Some(((at_ms, _), event)) = self.queue.pop_first() {
            self.report.events += 1;
            if at_ms > deadline || self.report.events > EVENTS_MAX {
                self.set_now(at_ms.min(deadline));
                break;
            }
            self.set_now(at_ms);
            self.trace = fold(fold(self.trace, at_ms), event.code());
            if self.heights_at_heal.is_none() && !self.faults_active() {
                self.heights_at_heal = Some(self.heights());
            }
            self.handle(event);
            if !self.report.violations.is_empty() {
                break;
            }
            if self.finished() {
                break;
            }
        }
        if self.tracing {
            eprintln!(
                "run ended at {} ms, queue {} events, events {}",
                self.now_ms,
                self.queue.len(),
                self.report.events
            );
        }
        self.finish()
    }

    fn set_now(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        self.clock.set(now_ms);
    }

    fn heights(&self) -> Vec<u64> {
        self.nodes.iter().map(|node| node.checked_height).collect()
    }

    fn liveness_target(&self) -> Option<Vec<u64>> {
        self.heights_at_heal.as_ref().map(|at_heal| {
            at_heal
                .iter()
                .map(|h| h + self.scenario.heights_after_heal)
                .collect()
        })
    }

    fn finished(&self) -> bool {
        let Some(target) = self.liveness_target() else {
            return false;
        };
        let heights = self.heights();
        let honest_done = (0..self.nodes.len())
            .filter(|node| self.honest(*node) && self.nodes[*node].stopped.is_none())
            .all(|node| heights[node] >= target[node]);
        honest_done && self.evidence_missing().is_empty() && self.staking_done()
    }

    /// Conservation of funds on every running honest node: the balances of
    /// every account the run can touch (the client's accounts and the
    /// operators, who collect fees), bonded and unbonding stake, and what
    /// slashing burned add up to the genesis supply. (Runs with staking
    /// events create more accounts; they check the stake ledger instead.)
    fn check_conservation(&mut self) {
        if self.staking.is_some() {
            return;
        }
        let supply = self.genesis_state.total_supply();
        let mut addresses: BTreeSet<Address> = self.accounts.iter().map(Keypair::address).collect();
        addresses.extend(self.nodes.iter().map(|node| node.operator.address()));
        let mut problems = Vec::new();
        for (index, node) in self.nodes.iter().enumerate() {
            let Some(host) = node.host.as_ref().filter(|_| self.honest(index)) else {
                continue;
            };
            let ledger = host.ledger();
            let balances: u64 = addresses
                .iter()
                .map(|address| ledger.account(address).0)
                .sum();
            let staked = ledger.staking().map_or(0, |staking| {
                staking.total_bonded() + staking.total_unbonding() + staking.total_slashed()
            });
            if balances + staked != supply {
                problems.push(format!(
                    "node {index} at height {}: balances {balances} + stake and slashed {staked} != supply {supply}",
                    ledger.tip().height
                ));
            }
        }
        for problem in problems {
            self.violation(format!("conservation of funds: {problem}"));
        }
    }

    fn evidence_missing(&self) -> Vec<(Height, u32)> {
        (0..self.nodes.len())
            .filter(|node| self.honest(*node))
            .flat_map(|node| {
                self.evidence_seen
                    .keys()
                    .filter(move |hash| !self.nodes[node].committed_evidence.contains(hash))
                    .copied()
            })
            .collect()
    }

    fn finish(mut self) -> Report {
        if self.report.violations.is_empty() {
            let heights = self.heights();
            match self.liveness_target() {
                None => self.violation("the run ended before the faults healed".into()),
                Some(target) => {
                    for node in 0..self.nodes.len() {
                        if self.honest(node)
                            && self.nodes[node].stopped.is_none()
                            && heights[node] < target[node]
                        {
                            self.violation(format!(
                                "liveness: honest node {node} reached height {} of {} within {} ms after the heal",
                                heights[node], target[node], self.scenario.liveness_budget_ms
                            ));
                        }
                    }
                }
            }
            self.check_conservation();
            let missing = self.evidence_missing();
            if !missing.is_empty() {
                self.violation(format!(
                    "{} equivocations seen by honest nodes are not in their chains (first {:?})",
                    missing.len(),
                    missing[0]
                ));
            }
        }
        for (height, hash) in &self.decisions {
            self.trace = fold(
                fold(self.trace, *height),
                u64::from_le_bytes(hash.0[..8].try_into().unwrap_or([0; 8])),
            );
        }
        self.report.trace_hash = self.trace;
        self.report.heights = self.heights();
        self.report.end_ms = self.now_ms;
        self.report.decide_times_ms = self
            .nodes
            .iter()
            .map(|n| n.decide_times_ms.clone())
            .collect();
        self.report.transactions_committed = self.transactions_by_height.values().sum();
        self.report.evidence_committed = self
            .nodes
            .iter()
            .map(|n| n.committed_evidence.len())
            .max()
            .unwrap_or(0);
        self.report
    }

    fn plan_faults(&mut self) {
        let phase = self.scenario.fault_phase_ms;
        let count = self.nodes.len();
        for _ in 0..self.scenario.partitions {
            let start = self.rng.below(phase / 2 + 1);
            let end = (start + self.rng.between(100, 600)).min(phase);
            let mut sides: Vec<bool> = (0..count).map(|_| self.rng.chance(500)).collect();
            let first = self.rng.below(count as u64) as usize;
            sides[first] = !sides[first];
            self.schedule(start, Event::PartitionStart { sides });
            self.schedule(end, Event::PartitionEnd);
        }
        if self.scenario.long_partition_nodes > 0 {
            // The minority: that many nodes drawn from all of them.
            let mut sides = vec![false; count];
            let mut cut = 0;
            while cut
                < self
                    .scenario
                    .long_partition_nodes
                    .min(count.saturating_sub(1))
            {
                let node = self.rng.below(count as u64) as usize;
                if !sides[node] {
                    sides[node] = true;
                    cut += 1;
                }
            }
            self.schedule(100, Event::PartitionStart { sides });
            self.schedule(100 + self.scenario.long_partition_ms, Event::PartitionEnd);
        }
        for _ in 0..self.scenario.clock_jumps {
            let node = self.rng.below(count as u64) as usize;
            let at = self.rng.below(phase);
            let size = self.rng.between(500, 5_000) as i64;
            let by_ms = if self.rng.chance(500) { size } else { -size };
            self.schedule(at, Event::ClockJump { node, by_ms });
        }
        if self.scenario.clock_jumps > 0
            || self.scenario.clock_drift_ppm_max > 0
            || self.scenario.clock_skew_max_ms > 1_000
        {
            self.schedule(phase, Event::ClockHeal);
        }
        for _ in 0..self.scenario.one_way_links {
            let from = self.rng.below(count as u64) as usize;
            let to = (from + 1 + self.rng.below(count as u64 - 1) as usize) % count;
            self.one_way_cut.insert((from, to));
        }
        let faulty_max = (count - 1) / 3;
        let mut rots = 0;
        for _ in 0..self.scenario.disk_faults {
            let node = self.rng.below(count as u64) as usize;
            let at = self.rng.below(phase * 6 / 10 + 1);
            let kind = self.rng.below(3);
            if kind == 2 && rots < faulty_max {
                rots += 1;
                self.schedule(at, Event::Rot { node });
                continue;
            }
            let fault = if kind == 0 {
                DiskFault::Full
            } else {
                DiskFault::SyncFails
            };
            let end = (at + self.rng.between(100, 1_000)).min(phase.saturating_sub(1));
            self.schedule(
                at,
                Event::DiskFault {
                    node,
                    fault: Some(fault),
                },
            );
            self.schedule(end.max(at + 1), Event::DiskFault { node, fault: None });
        }
        let honest: Vec<usize> = (0..count).filter(|n| self.honest(*n)).collect();
        for _ in 0..self.scenario.crashes {
            let node = honest[self.rng.below(honest.len() as u64) as usize];
            let at = self.rng.below(phase * 7 / 10 + 1);
            let restart = (at + self.rng.between(50, 400))
                .min(phase.saturating_sub(1))
                .max(at + 1);
            self.schedule(at, Event::Crash { node });
            self.schedule(restart, Event::Restart { node });
        }
        // Drawn last, so seeds without slow syncs stay as they were.
        for _ in 0..self.scenario.slow_syncs {
            let node = self.rng.below(count as u64) as usize;
            let at = self.rng.below(phase * 6 / 10 + 1);
            let end = (at
                + self
                    .rng
                    .between(SLOW_SYNC_PERIOD_MS.0, SLOW_SYNC_PERIOD_MS.1))
            .min(phase.saturating_sub(1));
            self.nodes[node].slow_periods.push((at, end.max(at + 1)));
        }
        for _ in 0..self.scenario.snapshot_restores {
            let node = honest[self.rng.below(honest.len() as u64) as usize];
            let at = phase / 2 + self.rng.below(phase * 3 / 10 + 1);
            self.schedule(at, Event::Wipe { node });
            if self.rng.chance(500) {
                // Killed while the snapshot is on its way (if it is by
                // then): the restore starts over on the next start.
                let during = at + self.rng.between(60, 450);
                self.schedule(during, Event::CrashRestoring { node });
            }
        }
    }

    fn handle(&mut self, event: Event) {
        if let Some(node) = event.input_of() {
            if self.busy(node) {
                self.defer(node, event);
                return;
            }
        }
        self.dispatch(event);
    }

    /// Whether `node` is running and still busy with a step's syncs (or
    /// has inputs waiting from then).
    fn busy(&self, node: usize) -> bool {
        let state = &self.nodes[node];
        state.host.is_some() && (state.busy_until_ms > self.now_ms || !state.deferred.is_empty())
    }

    /// Keeps an input of a busy node until it is free.
    fn defer(&mut self, node: usize, event: Event) {
        self.report.inputs_deferred += 1;
        self.nodes[node].deferred.push_back(event);
        self.schedule_free(node);
    }

    fn schedule_free(&mut self, node: usize) {
        if !self.nodes[node].free_scheduled {
            self.nodes[node].free_scheduled = true;
            let at = self.nodes[node].busy_until_ms.max(self.now_ms);
            self.schedule(at, Event::Free { node });
        }
    }

    /// A busy node is free: it takes the inputs that waited, in order,
    /// until one of them makes it busy again.
    fn free(&mut self, node: usize) {
        self.nodes[node].free_scheduled = false;
        while self.nodes[node].busy_until_ms <= self.now_ms {
            if self.nodes[node].host.is_none() {
                // It went down meanwhile: the inputs died with the process.
                self.nodes[node].deferred.clear();
                return;
            }
            let Some(event) = self.nodes[node].deferred.pop_front() else {
                return;
            };
            self.dispatch(event);
            if !self.report.violations.is_empty() {
                return;
            }
        }
        if !self.nodes[node].deferred.is_empty() {
            self.schedule_free(node);
        }
    }

    /// Simulated time the syncs `node` made since the last charge cost
    /// (0 unless its disk is slow now); the node is busy that long.
    fn charge_syncs(&mut self, node: usize) -> u64 {
        let syncs = self.nodes[node].disk.syncs();
        let new = syncs.saturating_sub(self.nodes[node].syncs_charged);
        self.nodes[node].syncs_charged = syncs;
        let now = self.now_ms;
        let slow = self.nodes[node]
            .slow_periods
            .iter()
            .any(|(start, end)| *start <= now && now < *end);
        if new == 0 || !slow {
            return 0;
        }
        let cost: u64 = (0..new)
            .map(|_| self.rng.between(SLOW_SYNC_MS.0, SLOW_SYNC_MS.1))
            .sum();
        self.report.slow_sync_steps += 1;
        self.report.slow_sync_ms += cost;
        let state = &mut self.nodes[node];
        state.busy_until_ms = state.busy_until_ms.max(now) + cost;
        cost
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Free { node } => self.free(node),
            Event::Wipe { node } => self.wipe(node),
            Event::CrashRestoring { node } => {
                let begun = self.nodes[node]
                    .restore
                    .as_ref()
                    .is_some_and(|restore| restore.taken.is_some());
                if begun {
                    self.crash_during_restore(node);
                }
            }
            Event::Snapshot {
                node,
                attempt,
                part,
            } => {
                let current = self.nodes[node]
                    .restore
                    .as_ref()
                    .is_some_and(|restore| restore.attempt == attempt);
                if current {
                    self.snapshot_part(node, part);
                }
            }
            Event::Deliver { to, from, message } => self.deliver(to, from, *message),
            Event::Timer {
                node,
                incarnation,
                generation,
                timeout,
            } => {
                let same_incarnation = self.nodes[node].incarnation == incarnation;
                let current = match self.nodes[node].host.as_mut() {
                    Some(host) if same_incarnation => host.timers_mut().generation() == generation,
                    _ => false,
                };
                if !current {
                    return;
                }
                if self.misbehaving(node) == Some(Behaviour::Amnesiac)
                    && timeout.kind == TimeoutKind::Round(cairn_consensus::RoundTimeout::Precommit)
                {
                    // Forget every lock and own vote, then go on.
                    self.forget(node);
                    return;
                }
                self.step(node, Input::TimeoutElapsed(timeout));
            }
            Event::Crash { node } => {
                if self.nodes[node].restore.is_some() {
                    // Down already, restoring: a crash makes it start over.
                    if self.nodes[node]
                        .restore
                        .as_ref()
                        .is_some_and(|r| r.taken.is_some())
                    {
                        self.crash_during_restore(node);
                    }
                    return;
                }
                // Half of the crashes strike between steps (the node's WAL
                // is synced), half inside one of its next few store writes
                // (an unsynced WAL append, a sync's predecessor, a commit).
                if self.rng.chance(500) {
                    self.crash(node);
                } else if self.nodes[node].host.is_some() {
                    let writes_before = self.rng.below(4);
                    let fate = if self.rng.chance(500) {
                        InterruptedWrite::Lost
                    } else {
                        InterruptedWrite::Persisted
                    };
                    let disk = &self.nodes[node].disk;
                    disk.crash_during_write(writes_before, fate);
                    self.nodes[node].crash_armed = Some(disk.generation());
                }
            }
            Event::Restart { node } => {
                if self.nodes[node].crash_armed.take().is_some() && self.nodes[node].host.is_some()
                {
                    // The armed crash has not struck yet: crash now.
                    self.crash(node);
                }
                if self.nodes[node].host.is_none() {
                    self.boot(node);
                }
            }
            Event::PartitionStart { sides } => self.partition = Some(sides),
            Event::PartitionEnd => {
                self.partition = None;
                // The sides reconnect: each node hears of new peers.
                for node in 0..self.nodes.len() {
                    self.nodes[node].sync.request_pass();
                    self.drive_sync(node);
                }
            }
            Event::SyncWake { node, incarnation } => {
                if self.nodes[node].sync_wake_ms == Some(self.now_ms) {
                    self.nodes[node].sync_wake_ms = None;
                }
                if self.nodes[node].incarnation == incarnation {
                    self.drive_sync(node);
                }
            }
            Event::SyncCheck => {
                self.sync_check();
                self.schedule(self.now_ms + SYNC_CHECK_TICK_MS, Event::SyncCheck);
            }
            Event::ClockJump { node, by_ms } => {
                let clock = &self.nodes[node].clock;
                let mut offset = clock.get();
                offset.skew_ms += by_ms;
                clock.set(offset);
            }
            Event::ClockHeal => {
                for node in &self.nodes {
                    node.clock.set(ClockOffset {
                        skew_ms: node.healed_skew_ms,
                        drift_ppm: 0,
                        drift_from_ms: 0,
                    });
                }
            }
            Event::Submit => {
                self.submit_transactions();
                self.schedule(self.now_ms + SUBMIT_INTERVAL_MS, Event::Submit);
            }
            Event::DiskFault { node, fault } => {
                self.nodes[node].disk.set_fault(fault);
                if fault.is_none() && self.nodes[node].host.is_none() {
                    // The operator freed space or replaced the disk: the
                    // node starts again.
                    self.boot(node);
                }
            }
            Event::Rot { node } => self.rot(node),
            Event::PollWaiting => {
                for node in 0..self.nodes.len() {
                    if self.busy(node) {
                        // It polls again on its next tick.
                        continue;
                    }
                    let Some(host) = self.nodes[node].host.as_mut() else {
                        continue;
                    };
                    if let Err(error) = host.poll_waiting() {
                        self.host_error(node, &error);
                    }
                    self.after_step(node);
                }
                self.schedule(self.now_ms + POLL_WAITING_MS, Event::PollWaiting);
            }
            Event::StakingTick => {
                self.staking_tick();
                self.schedule(self.now_ms + STAKING_TICK_MS, Event::StakingTick);
            }
            Event::KeySwap { node, incarnation } => self.swap_key(node, incarnation),
        }
    }

    // ----- nodes -------------------------------------------------------------

    fn crash(&mut self, node: usize) {
        let Some(host) = self.nodes[node].host.take() else {
            return;
        };
        self.nodes[node].crash_snapshot = Some(host.round_state().clone());
        drop(host);
        self.nodes[node].disk.crash();
        self.nodes[node].incarnation += 1;
    }

    /// A record of `node` rots (its last WAL entry, else its tip block) and
    /// the node restarts on it: it must refuse to run, or run without ever
    /// reading it; a read of it stops the node for good.
    fn rot(&mut self, node: usize) {
        let disk = self.nodes[node].disk.clone();
        let rotted = [Column::Wal, Column::Blocks].into_iter().any(|column| {
            disk.keys(column)
                .last()
                .is_some_and(|key| disk.rot(column, key))
        });
        if !rotted {
            return;
        }
        self.crash(node);
        self.boot(node);
    }

    /// If `node`'s disk has a rotten record, marks the node stopped for
    /// good because of `error` and returns true.
    fn stop_on_rot(&mut self, node: usize, error: &str) -> bool {
        if !self.nodes[node].disk.has_rot() {
            return false;
        }
        if self.nodes[node].stopped.is_none() {
            self.report.stopped_for_good += 1;
            self.nodes[node].stopped = Some(error.to_string());
        }
        self.nodes[node].host = None;
        true
    }

    /// Whether an armed crash struck the node's disk inside the step that
    /// just failed.
    fn crash_struck(&mut self, node: usize) -> bool {
        let Some(armed_generation) = self.nodes[node].crash_armed else {
            return false;
        };
        if self.nodes[node].disk.generation() == armed_generation {
            return false;
        }
        self.nodes[node].crash_armed = None;
        true
    }

    /// Starts (or restarts after a crash) a node from its disk: store,
    /// ledger, host, `host.start()` (which replays the WAL).
    fn boot(&mut self, node: usize) {
        if self.nodes[node].stopped.is_some()
            || self.nodes[node].disk.fault().is_some()
            || self.nodes[node].restore.is_some()
        {
            // Down for good, until its disk is repaired, or until its
            // state sync is done.
            return;
        }
        let store =
            match MemoryStore::open(&self.nodes[node].disk, &self.identity, &self.genesis_state) {
                Ok(store) => store,
                Err(error) => {
                    if !self.stop_on_rot(node, &error.to_string()) {
                        self.violation(format!("node {node} cannot reopen its store: {error}"));
                    }
                    return;
                }
            };
        let store: Arc<dyn Store> = Arc::new(store);
        let ledger = match Ledger::with_store(
            self.genesis.clone(),
            Arc::clone(&store),
            MEMPOOL_LIMITS,
            Arc::new(Metrics::default()),
        ) {
            Ok(ledger) => ledger,
            Err(error) => {
                if !self.stop_on_rot(node, &error.to_string()) {
                    self.violation(format!("node {node} cannot load its ledger: {error}"));
                }
                return;
            }
        };
        let latest = store.latest_height().0;
        let mut committed = BTreeSet::new();
        // The evidence of the heights already checked; `check_commit`
        // records that of the others.
        for height in 1..=latest.min(self.nodes[node].checked_height) {
            if let Ok(Some(block)) = store.block(Height(height)) {
                committed.extend(block.evidence.iter().map(evidence_key));
            }
        }
        let clock = SimClock {
            now_ms: Rc::clone(&self.clock),
            offset: Rc::clone(&self.nodes[node].clock),
        };
        let host = ConsensusHost::new(
            Arc::new(ledger),
            self.driver_config(),
            Some(self.nodes[node].keypair.clone()),
            SimNetwork::new(store, self.nodes[node].disk.clone()),
            SimTimers::default(),
            clock,
            HostConfig {
                wait_for_transactions: self.scenario.wait_for_transactions,
                block_interval_max_ms: 1_000,
            },
        );
        let mut host = match host {
            Ok(host) => host,
            Err(error) => {
                self.violation(format!("node {node} cannot build its host: {error}"));
                return;
            }
        };
        let sign_state_path = self.nodes[node]
            .sign_state_path
            .clone()
            .filter(|_| !self.scenario.restore_without_sign_state);
        if let Some(path) = sign_state_path {
            match SignState::open(&path) {
                Ok(sign_state) => host = host.with_sign_state(sign_state),
                Err(error) => {
                    self.violation(format!("node {node} cannot open its sign state: {error}"));
                    return;
                }
            }
        }
        if let Some(fault) = self.scenario.honest_host_fault {
            if self.honest(node) {
                (fault.apply)(&mut host);
            }
        }
        let state = &mut self.nodes[node];
        if latest < state.checked_height {
            let message = format!(
                "node {node} restarted at height {latest}, it had committed {}",
                state.checked_height
            );
            self.violation(message);
            return;
        }
        // Heights committed in the step a crash struck (not checked then)
        // are checked by the `after_step` below, from the store.
        committed.extend(state.inherited_evidence.iter().copied());
        state.committed_evidence = committed;
        state.incarnation += 1;
        // A new process: nothing waits from the old one; its sync task
        // starts with a pass.
        state.busy_until_ms = 0;
        state.deferred.clear();
        state.sync = SyncCore::new();
        state.sync_progress = (latest, self.now_ms);
        state.host = Some(host);
        self.start_host(node);
        let snapshot = self.nodes[node].crash_snapshot.take();
        if let (Some(snapshot), Some(host)) = (snapshot, self.nodes[node].host.as_ref()) {
            let now = host.round_state();
            // A node outside its height's set keeps no WAL: it follows
            // again from its peers (a candidate, or a validator that left).
            let votes = host
                .ledger()
                .validator_set(now.height)
                .ok()
                .flatten()
                .is_some_and(|set| {
                    set.index_of(&self.nodes[node].keypair.public_key())
                        .is_some()
                });
            // A node whose signing floor is above this height (restored
            // from a snapshot below heights it had voted at) signs nothing
            // here: its steps leave no WAL entry, and it replays to the
            // round's start (seed 952329). What it signs is judged by the
            // no-double-sign checker.
            let signs_here = host
                .driver()
                .signing_floor()
                .is_none_or(|floor| floor.height <= now.height);
            if snapshot.height == now.height && self.honest(node) && votes && signs_here {
                self.report.restarts_checked += 1;
                let polka_held = host.driver().holds_polka_of_valid_value();
                let valid = now.valid;
                let same = now.round == snapshot.round
                    && now.step == snapshot.step
                    && now.locked == snapshot.locked
                    && now.valid == snapshot.valid;
                if !same {
                    let message = format!(
                        "node {node} restarted with round state {now:?}, before the crash it was {snapshot:?}"
                    );
                    self.violation(message);
                }
                if !polka_held {
                    let message = format!(
                        "node {node} restarted with valid value {valid:?} but without the polka behind it \
                         (prevotes of more than 2/3 of the power): a re-proposal of it could never \
                         be prevoted again"
                    );
                    self.violation(message);
                }
            }
        }
        self.after_step(node);
        // Its peers see it connect (and ask it for a sync pass, as a node
        // does on every new connection); it begins its first pass.
        for peer in 0..self.nodes.len() {
            if peer != node && self.nodes[peer].host.is_some() {
                self.nodes[peer].sync.request_pass();
                self.drive_sync(peer);
            }
        }
        self.drive_sync(node);
    }

    /// `host.start()`: a fresh driver for the next height, replaying the
    /// WAL.
    fn start_host(&mut self, node: usize) {
        let Some(host) = self.nodes[node].host.as_mut() else {
            return;
        };
        let result = host.start();
        if let Err(error) = result {
            self.host_error(node, &error);
        }
    }

    /// An amnesiac forgets its locks and own votes: it deletes the WAL of
    /// its height and restarts its host.
    fn forget(&mut self, node: usize) {
        let Some(host) = self.nodes[node].host.as_ref() else {
            return;
        };
        let height = host.height();
        // A failed prune only makes the amnesiac remember.
        let _ = host
            .ledger()
            .store()
            .wal_prune_below(Height(height.0.saturating_add(1)));
        self.start_host(node);
        self.after_step(node);
    }

    /// Feeds one input to the node's host, then runs the checkers and
    /// sends what the host queued.
    fn step(&mut self, node: usize, input: Input) {
        let Some(host) = self.nodes[node].host.as_mut() else {
            return;
        };
        if let Err(error) = host.handle(input) {
            self.host_error(node, &error);
        }
        self.after_step(node);
    }

    fn host_error(&mut self, node: usize, error: &NodeError) {
        if self.crash_struck(node) {
            // What the node sent before the crash struck did leave; then
            // it is down until its restart, with no snapshot to compare:
            // its state in the middle of a step was never meant to be
            // durable (the WAL replay and the signing checkers judge it).
            // Its store is down: what it committed in this step is judged
            // after the restart, from what the disk kept.
            self.after_step_with(node, false);
            let state = &mut self.nodes[node];
            state.host = None;
            state.crash_snapshot = None;
            state.incarnation += 1;
            self.report.crashes_mid_step += 1;
            return;
        }
        let disk = self.nodes[node].disk.clone();
        if disk.fault().is_some() || disk.has_rot() {
            // The node stops on the disk's error, as cairnd does (exit 1):
            // a rotten record for good, a full or failing disk until it is
            // repaired. Whatever it had not synced is lost with the process.
            self.after_step_with(node, false);
            let rot = disk.has_rot();
            let state = &mut self.nodes[node];
            state.host = None;
            state.crash_snapshot = None;
            state.disk.crash();
            state.incarnation += 1;
            self.report.disk_stops += 1;
            if rot {
                self.stop_on_rot(node, &error.to_string());
            }
            return;
        }
        if self.honest(node) {
            self.violation(format!("honest node {node}: the host failed: {error}"));
        } else {
            self.report.rejected += 1;
        }
    }

    /// After a host ran: check what it committed, send what it queued,
    /// schedule its timers.
    fn after_step(&mut self, node: usize) {
        self.after_step_with(node, true);
    }

    /// [`Simulation::after_step`]; `check_commits` false when the node's
    /// store crashed in the step (reads fail until it restarts).
    fn after_step_with(&mut self, node: usize, check_commits: bool) {
        let Some(host) = self.nodes[node].host.as_ref() else {
            return;
        };
        let tip = host.ledger().tip().height.0;
        if check_commits {
            let advanced = tip > self.nodes[node].checked_height;
            for height in self.nodes[node].checked_height + 1..=tip {
                self.check_commit(node, height);
            }
            if advanced && self.scenario.snapshot_restores > 0 && self.honest(node) {
                self.compare_state(node, tip);
            }
            self.nodes[node].checked_height = self.nodes[node].checked_height.max(tip);
            if self.staking.is_some() {
                self.staking_after_step(node, tip);
            }
        }
        // L55 conformance: no honest driver stays below a round whose
        // senders hold more than a third of the power.
        let skip_pending = self.nodes[node].host.as_ref().and_then(|host| {
            host.round_skip_pending()
                .map(|round| (host.round_state().clone(), round))
        });
        if let (true, Some((state, round))) = (self.honest(node), skip_pending) {
            self.violation(format!(
                "round skip: honest node {node} stays in round {} of height {} while more than a third of the power sent messages of round {round} (L55)",
                state.round, state.height
            ));
        }
        let incarnation = self.nodes[node].incarnation;
        // What the step sends leaves, and its timers start, once its syncs
        // are done.
        let cost = self.charge_syncs(node);
        let leave_ms = self.now_ms + cost;
        self.send_at_ms = (cost > 0).then_some(leave_ms);
        let Some(host) = self.nodes[node].host.as_mut() else {
            self.send_at_ms = None;
            return;
        };
        let outbox = host.network_mut().drain();
        let timers = host.timers_mut();
        let generation = timers.generation();
        let scheduled = timers.drain();
        for (timeout, duration_ms) in scheduled {
            self.schedule(
                leave_ms + duration_ms,
                Event::Timer {
                    node,
                    incarnation,
                    generation,
                    timeout,
                },
            );
        }
        let honest = self.honest(node);
        for outgoing in outbox {
            if self.tracing {
                let text = format!("{outgoing:?}");
                eprintln!(
                    "{:>6} ms node {node}: {}",
                    self.now_ms,
                    &text[..text.len().min(300)]
                );
            }
            match outgoing {
                Outgoing::Consensus { message, persisted } => {
                    if honest {
                        if !persisted {
                            self.violation(format!(
                                "honest node {node} sent {message:?} before its WAL held it"
                            ));
                        }
                        self.check_signed_message(node, &message);
                    }
                    self.broadcast_consensus(node, message);
                }
                Outgoing::Evidence(evidence) => {
                    let hash = evidence.hash();
                    let key = evidence_key(&evidence);
                    if honest {
                        self.evidence_seen.entry(key).or_insert((node, self.now_ms));
                    }
                    if !self.nodes[node].committed_evidence.contains(&key) {
                        self.nodes[node]
                            .evidence_pool
                            .insert(hash, evidence.clone());
                    }
                    self.broadcast(node, NetMessage::Evidence(evidence));
                }
                Outgoing::Decision(certificate) => {
                    // Re-gossip evidence not yet in a block.
                    let pool: Vec<Evidence> =
                        self.nodes[node].evidence_pool.values().cloned().collect();
                    for evidence in pool {
                        self.broadcast(node, NetMessage::Evidence(evidence));
                    }
                    // Published on the decisions topic, as the node does.
                    // A peer that committed the height already would drop
                    // it as stale on arrival (tips only grow): it is not
                    // sent there at all (a saving of the simulator, about
                    // half of the n² copies a height).
                    if self.misbehaving(node) != Some(Behaviour::Silent) {
                        let height = certificate.height;
                        for to in 0..self.nodes.len() {
                            let stale = self.nodes[to]
                                .host
                                .as_ref()
                                .is_some_and(|host| host.ledger().tip().height >= height);
                            if !stale {
                                self.send(node, to, NetMessage::Decision(certificate.clone()));
                            }
                        }
                    }
                }
                Outgoing::RoundStateRequest { height, round } => {
                    self.broadcast(node, NetMessage::RoundStateRequest { height, round });
                }
                Outgoing::BlockRequest {
                    request_id,
                    block_hash,
                } => self.broadcast(
                    node,
                    NetMessage::BlockRequest {
                        request_id,
                        block_hash,
                    },
                ),
            }
        }
        self.send_at_ms = None;
    }

    /// The simulated client: `transactions_per_block` transfers between
    /// the funded accounts, drawn from the seed, offered to every running
    /// node with the next nonce that node's ledger expects (pending ones
    /// counted), so a node that lost its mempool in a crash is never stuck
    /// behind a gap.
    fn submit_transactions(&mut self) {
        for _ in 0..self.scenario.transactions_per_block {
            let sender = self.rng.below(ACCOUNTS as u64) as usize;
            let recipient = (sender + 1 + self.rng.below(ACCOUNTS as u64 - 1) as usize) % ACCOUNTS;
            let amount = 1 + self.rng.below(7);
            let sender_key = &self.accounts[sender];
            let sender_address = sender_key.address();
            let mut signed: Option<(u64, Vec<u8>)> = None;
            for node in &self.nodes {
                let Some(host) = node.host.as_ref() else {
                    continue;
                };
                let ledger = host.ledger();
                let nonce = ledger.account(&sender_address).2;
                let bytes = match &signed {
                    Some((signed_nonce, bytes)) if *signed_nonce == nonce => bytes.clone(),
                    _ => {
                        let transaction = Transaction {
                            chain_id: self.chain_id.clone(),
                            sender: sender_key.public_key(),
                            recipient: self.accounts[recipient].address(),
                            amount,
                            fee: 1,
                            nonce,
                            memo: String::new(),
                            kind: cairn_types::TransactionKind::Transfer,
                        };
                        let bytes = transaction.sign(sender_key).to_bytes();
                        signed = Some((nonce, bytes.clone()));
                        bytes
                    }
                };
                if ledger.submit(&[&bytes]).iter().all(Result::is_ok) {
                    self.report.transactions_submitted += 1;
                }
            }
        }
    }

    // ----- state sync --------------------------------------------------------

    /// `node` crashes and its data directory is lost: a new, empty disk.
    /// Its sign state (kept apart from the data, as `cairnd` keeps
    /// `config/sign_state.json`) is what it last signed and the lock it
    /// held then. A node that is down is wiped once it is up again.
    fn wipe(&mut self, node: usize) {
        if self.tracing {
            eprintln!("{:>6} ms node {node}: wiped", self.now_ms);
        }
        if self.nodes[node].restore.is_some() || self.nodes[node].stopped.is_some() {
            // Restoring already: this wipe finds nothing to lose.
            return;
        }
        if self.nodes[node].host.is_none() {
            self.schedule(self.now_ms + SNAPSHOT_RETRY_MS, Event::Wipe { node });
            return;
        }
        // A wipe takes the node's copy of the chain; it waits while no
        // other honest node that runs holds the node's committed tip, so
        // that no committed block is left on Byzantine nodes alone (beyond
        // the fault model: no honest node could serve it, nor a snapshot
        // of it). The soak's seed 770556 wiped both honest holders of
        // height 1 while the third honest node was still behind.
        let tip = self.nodes[node]
            .host
            .as_ref()
            .map_or(0, |host| host.ledger().tip().height.0);
        let another_copy = (0..self.nodes.len()).any(|peer| {
            let state = &self.nodes[peer];
            peer != node
                && self.honest(peer)
                && state.restore.is_none()
                && state.stopped.is_none()
                && state
                    .host
                    .as_ref()
                    .is_some_and(|host| host.ledger().tip().height.0 >= tip)
        });
        if !another_copy {
            if self.tracing {
                eprintln!(
                    "{:>6} ms node {node}: wipe waits for another honest copy of height {tip}",
                    self.now_ms
                );
            }
            self.schedule(self.now_ms + WIPE_WAIT_MS, Event::Wipe { node });
            return;
        }
        let record = self.sign_record(node);
        let signed_height = self
            .signed
            .keys()
            .filter(|(signer, ..)| *signer == node)
            .map(|(_, height, ..)| *height)
            .max()
            .unwrap_or(0);
        self.crash(node);
        let path = match self.nodes[node].sign_state_path.clone() {
            // The host has kept it since the last wipe.
            Some(path) => path,
            None => {
                let directory = if std::path::Path::new("/dev/shm").is_dir() {
                    std::path::PathBuf::from("/dev/shm")
                } else {
                    std::env::temp_dir()
                };
                // Unique in this process too: tests run seeds in parallel.
                static FILES_MADE: std::sync::atomic::AtomicU64 =
                    std::sync::atomic::AtomicU64::new(0);
                let number = FILES_MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let path = directory.join(format!(
                    "cairn-sim-sign-state-{}-{number}-{}-{node}.json",
                    std::process::id(),
                    self.scenario.seed
                ));
                if let Err(error) = std::fs::write(&path, record.as_bytes()) {
                    self.violation(format!(
                        "cannot write the sign state of node {node}: {error}"
                    ));
                    return;
                }
                self.sign_state_files.0.push(path.clone());
                path
            }
        };
        let state = &mut self.nodes[node];
        state.sign_state_path = Some(path);
        state.crash_snapshot = None;
        state.crash_armed = None;
        state.disk = MemoryDisk::new();
        state.syncs_charged = 0;
        state.evidence_pool.clear();
        state.restore_attempts += 1;
        let attempt = state.restore_attempts;
        state.restore = Some(Restore {
            attempt,
            taken: None,
            store: None,
            manifest: None,
            received: BTreeMap::new(),
            next_chunk: 0,
            history_arrived: false,
            signed_height,
        });
        // It starts again (empty) a little later and looks for snapshots.
        let start_ms = self.now_ms + self.rng.between(50, 400);
        self.schedule(
            start_ms,
            Event::Snapshot {
                node,
                attempt,
                part: SnapshotPart::Discover,
            },
        );
    }

    /// The sign-state record (`node/src/sign_state.rs`) of `node`: the
    /// last message it signed (the highest height, round and step the
    /// checkers saw it send) and the lock it holds at that height.
    fn sign_record(&self, node: usize) -> String {
        let last = self
            .signed
            .iter()
            .filter(|((signer, ..), _)| *signer == node)
            .max_by_key(|((_, height, round, kind), _)| (*height, *round, *kind));
        let Some(((_, height, round, kind), value)) = last else {
            // Nothing signed: an empty file.
            return String::new();
        };
        let step = ["proposal", "prevote", "precommit"][*kind as usize];
        let hash = |value: &Option<Hash>| match value {
            Some(hash) => format!("\"{}\"", hash.to_hex()),
            None => "null".into(),
        };
        let lock = self.nodes[node].host.as_ref().and_then(|host| {
            let state = host.round_state();
            state
                .locked
                .filter(|_| state.height.0 == *height)
                .map(|locked| {
                    format!(
                        ",\"locked\":{{\"height\":{height},\"round\":{},\"block_hash\":\"{}\"}}",
                        locked.round.0,
                        locked.value.to_hex()
                    )
                })
        });
        // The last prevote of that height, kept beside a later message.
        let prevote = self
            .signed
            .iter()
            .filter(|((signer, signed_height, _, signed_kind), _)| {
                *signer == node && signed_height == height && *signed_kind == 1
            })
            .max_by_key(|((_, _, signed_round, _), _)| *signed_round)
            .filter(|((_, _, signed_round, _), _)| *kind != 1 || signed_round != round)
            .map(|((_, _, signed_round, _), signed_value)| {
                format!(
                    ",\"prevote\":{{\"round\":{signed_round},\"block_hash\":{}}}",
                    hash(signed_value)
                )
            });
        format!(
            "{{\"height\":{height},\"round\":{round},\"step\":\"{step}\",\"block_hash\":{}{}{}}}",
            hash(value),
            lock.unwrap_or_default(),
            prevote.unwrap_or_default()
        )
    }

    /// A crash while the node restores: it starts over on its next start
    /// (the store marks a restore under way; beginning again clears it).
    fn crash_during_restore(&mut self, node: usize) {
        self.nodes[node].disk.crash();
        let restart_ms = self.now_ms + self.rng.between(50, 400);
        self.nodes[node].restore_attempts += 1;
        let attempts = self.nodes[node].restore_attempts;
        let Some(restore) = self.nodes[node].restore.as_mut() else {
            return;
        };
        restore.attempt = attempts;
        restore.taken = None;
        restore.store = None;
        restore.manifest = None;
        restore.received.clear();
        restore.next_chunk = 0;
        restore.history_arrived = false;
        let attempt = restore.attempt;
        self.report.snapshot_restarts += 1;
        self.schedule(
            restart_ms,
            Event::Snapshot {
                node,
                attempt,
                part: SnapshotPart::Discover,
            },
        );
    }

    /// When a snapshot request sent now is answered: a round trip on the
    /// simulated network (lost answers are asked again after a timeout).
    fn snapshot_answer_at(&mut self) -> u64 {
        let faults = self.faults_active();
        let (low, high) = if faults {
            self.scenario.latency_faulty_ms
        } else {
            self.scenario.latency_healed_ms
        };
        let mut at = self.now_ms;
        if faults {
            while self.rng.chance(self.scenario.drop_per_mille) {
                self.report.snapshot_requests_lost += 1;
                at += SNAPSHOT_REQUEST_TIMEOUT_MS;
            }
        }
        at + self.rng.between(low, high) + self.rng.between(low, high)
    }

    fn schedule_part(&mut self, node: usize, part: SnapshotPart) {
        let Some(attempt) = self.nodes[node].restore.as_ref().map(|r| r.attempt) else {
            return;
        };
        let at = self.snapshot_answer_at();
        self.schedule(
            at,
            Event::Snapshot {
                node,
                attempt,
                part,
            },
        );
    }

    fn restore_failed(&mut self, node: usize, what: &str, error: impl std::fmt::Display) {
        self.violation(format!("state sync of node {node}: {what}: {error}"));
    }

    /// One part of `node`'s state sync arrives.
    fn snapshot_part(&mut self, node: usize, part: SnapshotPart) {
        if self.tracing {
            eprintln!("{:>6} ms node {node}: state sync {part:?}", self.now_ms);
        }
        match part {
            SnapshotPart::Discover => self.snapshot_discover(node),
            SnapshotPart::Manifest => self.snapshot_manifest(node),
            SnapshotPart::Chunk(index) => self.snapshot_chunk(node, index),
            SnapshotPart::History => {
                if let Some(restore) = self.nodes[node].restore.as_mut() {
                    restore.history_arrived = true;
                }
                self.snapshot_finish(node);
            }
        }
    }

    /// Picks an honest running peer that has committed a height and takes
    /// its snapshot there (`cairn_store::create_snapshot` over its store,
    /// the code `cairnd`'s snapshotter runs), then asks for the manifest.
    fn snapshot_discover(&mut self, node: usize) {
        let providers: Vec<usize> = (0..self.nodes.len())
            .filter(|peer| {
                let state = &self.nodes[*peer];
                *peer != node
                    && self.honest(*peer)
                    && state.restore.is_none()
                    && state.stopped.is_none()
                    && state.host.as_ref().is_some_and(|host| {
                        let tip = host.ledger().tip().height.0;
                        tip > 0 && tip == state.checked_height
                    })
            })
            .collect();
        if providers.is_empty() {
            let attempt = self.nodes[node].restore.as_ref().map_or(0, |r| r.attempt);
            self.schedule(
                self.now_ms + SNAPSHOT_RETRY_MS,
                Event::Snapshot {
                    node,
                    attempt,
                    part: SnapshotPart::Discover,
                },
            );
            return;
        }
        let provider = providers[self.rng.below(providers.len() as u64) as usize];
        let taken = match self.take_snapshot(provider) {
            Ok(taken) => taken,
            Err(error) => {
                self.restore_failed(
                    node,
                    &format!("node {provider} cannot take a snapshot"),
                    error,
                );
                return;
            }
        };
        // The node starts: its store is created on the empty disk (or
        // reopened after a crash in a restore, whose mark it finds).
        let store =
            match MemoryStore::open(&self.nodes[node].disk, &self.identity, &self.genesis_state) {
                Ok(store) => Arc::new(store) as Arc<dyn Store>,
                Err(error) => {
                    self.restore_failed(node, "its empty store does not open", error);
                    return;
                }
            };
        if let Some(restore) = self.nodes[node].restore.as_mut() {
            restore.taken = Some(taken);
            restore.store = Some(store);
        }
        self.schedule_part(node, SnapshotPart::Manifest);
    }

    /// The snapshot of `provider`'s store at its committed height, with
    /// the block, certificate and set of that height, the evidence window
    /// below it, and the state the checker compares the restore with.
    fn take_snapshot(&self, provider: usize) -> Result<TakenSnapshot, StoreError> {
        let missing = |what: String| StoreError::Corrupt {
            what,
            reason: "missing".into(),
        };
        let host = self.nodes[provider]
            .host
            .as_ref()
            .ok_or_else(|| missing(format!("node {provider}'s host")))?;
        let store = Arc::clone(host.ledger().store());
        let height = store.latest_height();
        let mut chunks = Vec::new();
        let manifest = create_snapshot(store.as_ref(), height, &mut |index, chunk| {
            debug_assert_eq!(index, chunks.len());
            chunks.push(chunk.to_vec());
            Ok(())
        })?;
        let block = store
            .block(height)?
            .ok_or_else(|| missing(format!("block {height}")))?;
        let certificate = store
            .certificate(height)?
            .ok_or_else(|| missing(format!("certificate {height}")))?;
        let set = store
            .validator_set(&block.header.validator_set_hash)?
            .ok_or_else(|| missing(format!("validator set of height {height}")))?;
        let floor = height
            .0
            .saturating_sub(cairn_types::limits::EVIDENCE_AGE_MAX_BLOCKS)
            .max(store.lowest_height().0)
            .max(1);
        let mut history = Vec::new();
        let mut history_sets: Vec<ValidatorSet> = Vec::new();
        for below in floor..height.0 {
            let block = store
                .block(Height(below))?
                .ok_or_else(|| missing(format!("block {below}")))?;
            let certificate = store
                .certificate(Height(below))?
                .ok_or_else(|| missing(format!("certificate {below}")))?;
            let named = block.header.validator_set_hash;
            if !history_sets.iter().any(|known| known.hash() == named) {
                history_sets.push(
                    store
                        .validator_set(&named)?
                        .ok_or_else(|| missing(format!("validator set {named}")))?,
                );
            }
            history.push((block, certificate));
        }
        Ok(TakenSnapshot {
            provider,
            height: height.0,
            manifest_bytes: manifest.to_bytes(),
            chunks,
            block,
            certificate,
            set,
            state: StateImage::of(store.as_ref())?,
            evidence: self.nodes[provider].committed_evidence.clone(),
            history,
            history_sets,
        })
    }

    /// The manifest arrives: it must decode and name the chain, the height
    /// and the state root of the trusted header. Trust comes from outside
    /// (as `sync.trust_height` and `sync.trust_hash` give it to
    /// `cairnd`): the hash the honest nodes decided at that height; the
    /// block served must have it, and its certificate must verify against
    /// the set its header names. Then the restore begins and the chunks
    /// are asked for, all at once.
    fn snapshot_manifest(&mut self, node: usize) {
        let Some(restore) = self.nodes[node].restore.as_ref() else {
            return;
        };
        let (Some(taken), Some(store)) = (restore.taken.as_ref(), restore.store.as_ref()) else {
            return;
        };
        let height = Height(taken.height);
        let verdict = (|| -> Result<SnapshotManifest, String> {
            let trusted = self
                .decisions
                .get(&taken.height)
                .ok_or_else(|| format!("no honest node decided height {height}"))?;
            let hash = taken.block.hash();
            if hash != *trusted {
                return Err(format!(
                    "the block of height {height} is {hash}, the trusted hash is {trusted}"
                ));
            }
            if taken.certificate.height != height || taken.certificate.block_hash != hash {
                return Err("the certificate is for another block".into());
            }
            if taken.set.hash() != taken.block.header.validator_set_hash {
                return Err("the validator set is not the one the header names".into());
            }
            taken
                .certificate
                .verify(&self.chain_id, &taken.set)
                .map_err(|error| format!("the certificate: {error}"))?;
            let manifest = SnapshotManifest::from_bytes(&taken.manifest_bytes)
                .map_err(|error| error.to_string())?;
            manifest
                .verify(&self.chain_id, height, &taken.block.header.state_root)
                .map_err(|error| error.to_string())?;
            store
                .restore_begin(height)
                .map_err(|error| format!("restore_begin: {error}"))?;
            Ok(manifest)
        })();
        let manifest = match verdict {
            Ok(manifest) => manifest,
            Err(error) => {
                self.restore_failed(node, "the snapshot does not check out", error);
                return;
            }
        };
        let chunks = manifest.chunk_count();
        if let Some(restore) = self.nodes[node].restore.as_mut() {
            restore.manifest = Some(manifest);
        }
        for index in 0..chunks {
            self.schedule_part(node, SnapshotPart::Chunk(index));
        }
        self.schedule_part(node, SnapshotPart::History);
    }

    /// A chunk arrives: checked against its hash in the manifest, then
    /// written in order.
    fn snapshot_chunk(&mut self, node: usize, index: usize) {
        let result = (|| -> Result<(), String> {
            let Some(restore) = self.nodes[node].restore.as_mut() else {
                return Ok(());
            };
            let (Some(taken), Some(manifest), Some(store)) = (
                restore.taken.as_ref(),
                restore.manifest.as_ref(),
                restore.store.as_ref(),
            ) else {
                return Ok(());
            };
            let bytes = taken
                .chunks
                .get(index)
                .ok_or_else(|| format!("chunk {index} does not exist"))?;
            manifest
                .check_chunk(index, bytes)
                .map_err(|error| error.to_string())?;
            restore.received.insert(index, bytes.clone());
            while let Some(bytes) = restore.received.remove(&restore.next_chunk) {
                store
                    .restore_chunk(&bytes)
                    .map_err(|error| format!("restore_chunk {}: {error}", restore.next_chunk))?;
                restore.next_chunk += 1;
            }
            Ok(())
        })();
        match result {
            Ok(()) => self.snapshot_finish(node),
            Err(error) => self.restore_failed(node, "a chunk", error),
        }
    }

    /// Once every chunk is written and the evidence window has arrived:
    /// the store recomputes the state root against the trusted header's
    /// (`restore_finish`), keeps the window below (`restore_history`, in
    /// ranges from the top down), and the checker compares the restored
    /// state with the provider's at that height and with the state every
    /// honest node had there. Then the node starts on it and catches up.
    fn snapshot_finish(&mut self, node: usize) {
        let ready = self.nodes[node].restore.as_ref().is_some_and(|restore| {
            restore.history_arrived
                && restore
                    .manifest
                    .as_ref()
                    .is_some_and(|manifest| restore.next_chunk == manifest.chunk_count())
        });
        if !ready {
            return;
        }
        let Some(restore) = self.nodes[node].restore.take() else {
            return;
        };
        let signed_height = restore.signed_height;
        let (Some(taken), Some(store)) = (restore.taken, restore.store) else {
            return;
        };
        let height = taken.height;
        if height < signed_height {
            // It will run heights it signed at before: its sign state
            // alone keeps it from signing anything conflicting.
            self.report.snapshot_restores_below_signed += 1;
        }
        let result = (|| -> Result<StateImage, String> {
            store
                .restore_finish(&taken.block, &taken.certificate, &taken.set)
                .map_err(|error| format!("restore_finish: {error}"))?;
            let mut lowest = taken.history.len();
            while lowest > 0 {
                let from = lowest.saturating_sub(SNAPSHOT_HISTORY_RANGE_BLOCKS as usize);
                let range = &taken.history[from..lowest];
                let sets: Vec<ValidatorSet> = taken
                    .history_sets
                    .iter()
                    .filter(|set| {
                        range
                            .iter()
                            .any(|(block, _)| block.header.validator_set_hash == set.hash())
                    })
                    .cloned()
                    .collect();
                store
                    .restore_history(range, &sets)
                    .map_err(|error| format!("restore_history: {error}"))?;
                lowest = from;
            }
            StateImage::of(store.as_ref()).map_err(|error| error.to_string())
        })();
        let restored = match result {
            Ok(restored) => restored,
            Err(error) => {
                self.restore_failed(node, "finishing the restore", error);
                return;
            }
        };
        if restored != taken.state {
            let differing = restored
                .accounts
                .iter()
                .zip(&taken.state.accounts)
                .filter(|(mine, theirs)| mine != theirs)
                .count();
            self.violation(format!(
                "state sync: node {node} restored height {height} from node {}: state root {} against {}, {} of {} accounts differ ({} against {}), staking {}",
                taken.provider,
                restored.root,
                taken.state.root,
                differing,
                taken.state.accounts.len(),
                restored.accounts.len(),
                taken.state.accounts.len(),
                if restored.staking == taken.state.staking { "equal" } else { "differs" }
            ));
            return;
        }
        drop(store);
        self.report.snapshot_restores += 1;
        self.report.snapshot_heights.push(height);
        // The restored block's own evidence is recorded when it is checked.
        let own: BTreeSet<(Height, u32)> = taken.block.evidence.iter().map(evidence_key).collect();
        let state = &mut self.nodes[node];
        state.inherited_evidence = taken.evidence.difference(&own).copied().collect();
        // The restored height is checked like a commit (certificate,
        // parent, root), then every height it commits from there.
        state.checked_height = height - 1;
        self.boot(node);
        if self.nodes[node].host.is_some() {
            self.compare_state(node, height);
        }
    }

    /// State agreement (in seeds with snapshot restores): the state
    /// `node` holds after `height` (every account and the staking state,
    /// as the snapshot manifest hashes them) equals what the first honest
    /// node to commit that height held.
    fn compare_state(&mut self, node: usize, height: u64) {
        let Some(host) = self.nodes[node].host.as_ref() else {
            return;
        };
        let store = Arc::clone(host.ledger().store());
        if store.latest_height().0 != height {
            return;
        }
        let digest = match create_snapshot(store.as_ref(), Height(height), &mut |_, _| Ok(())) {
            Ok(manifest) => manifest.hash(),
            Err(error) => {
                self.violation(format!(
                    "node {node} cannot read its state at height {height}: {error}"
                ));
                return;
            }
        };
        match self.state_digests.get(&height) {
            Some((known, first)) => {
                self.report.states_compared += 1;
                if *known != digest {
                    let first = *first;
                    self.violation(format!(
                        "state agreement: node {node}'s state after height {height} is not node {first}'s"
                    ));
                }
            }
            None => {
                self.state_digests.insert(height, (digest, node));
            }
        }
    }

    // ----- checkers ----------------------------------------------------------

    /// Agreement and validity of the block `node` committed at `height`,
    /// read back from its store.
    fn check_commit(&mut self, node: usize, height: u64) {
        let honest = self.honest(node);
        let Some(host) = self.nodes[node].host.as_ref() else {
            return;
        };
        let store = Arc::clone(host.ledger().store());
        let tip = host.ledger().tip();
        let (block, certificate) = match (
            store.block(Height(height)),
            store.certificate(Height(height)),
        ) {
            (Ok(Some(block)), Ok(Some(certificate))) => (block, certificate),
            (block, certificate) => {
                let block = block.map(|block| block.map(|block| block.hash()));
                let certificate = certificate.map(|certificate| certificate.map(|c| c.hash()));
                self.violation(format!(
                    "node {node} committed height {height} but its store lacks the block or certificate (block {block:?}, certificate {certificate:?})"
                ));
                return;
            }
        };
        let hash = block.hash();
        let mut first_decision = false;
        // Agreement.
        if honest {
            match self.decisions.get(&height) {
                Some(decided) if *decided != hash => {
                    self.violation(format!(
                        "agreement: node {node} decided {hash:?} at height {height}, another honest node decided {decided:?}"
                    ));
                    return;
                }
                Some(_) => {}
                None => {
                    self.decisions.insert(height, hash);
                    self.transactions_by_height
                        .insert(height, block.transactions.len() as u64);
                    first_decision = true;
                }
            }
        }
        // Validity: certificate, parent, time, structure, executed state.
        let mut problems = Vec::new();
        // Nodes often commit the very same certificate: verify each once.
        let certificate_hash = certificate.hash();
        // The set that signs height H is the one the header names, and
        // that is the set the parent header named as next (the genesis
        // set at height 1): the set chain holds across staking changes.
        let named_by_parent = if height == 1 {
            Ok(Some(self.validators.hash()))
        } else {
            store
                .header(Height(height - 1))
                .map(|header| header.map(|header| header.next_validator_set_hash))
        };
        if let Ok(Some(expected)) = named_by_parent {
            if expected != block.header.validator_set_hash {
                problems.push(format!(
                    "the header names validator set {} but its parent named {expected}",
                    block.header.validator_set_hash
                ));
            }
        }
        let signers = store.validator_set(&block.header.validator_set_hash);
        if first_decision && self.staking.is_some() {
            if let Ok(Some(set)) = &signers {
                let set = set.clone();
                self.note_signing_set(node, height, &block, set);
            }
        }
        if !self.certificates_verified.contains(&certificate_hash) {
            match signers {
                Ok(Some(signers)) => match certificate.verify(&self.chain_id, &signers) {
                    Ok(_) => {
                        self.report.validator_sets_seen.insert(signers.hash());
                        self.certificates_verified.insert(certificate_hash);
                    }
                    Err(error) => problems.push(format!("certificate: {error}")),
                },
                _ => problems.push(format!(
                    "the store does not hold validator set {} the header names",
                    block.header.validator_set_hash
                )),
            }
        }
        if certificate.block_hash != hash || certificate.height != block.height() {
            problems.push("certificate is for another block".into());
        }
        let parent = if height == 1 {
            Some((self.identity.genesis_hash, Timestamp(GENESIS_TIME_MS)))
        } else {
            match store.header(Height(height - 1)) {
                Ok(Some(header)) => Some((header.hash(), header.time)),
                _ => None,
            }
        };
        match parent {
            Some((parent_hash, parent_time)) => {
                if block.header.parent_hash != parent_hash {
                    problems.push("not the child of the previous block".into());
                }
                let too_early = if height == 1 {
                    block.header.time < parent_time
                } else {
                    block.header.time <= parent_time
                };
                if too_early {
                    problems.push(format!(
                        "time {} is not after the parent's {parent_time}",
                        block.header.time
                    ));
                }
            }
            None => problems.push("the parent block is missing".into()),
        }
        if let Err(error) = block.check_structure() {
            problems.push(format!("structure: {error}"));
        }
        if tip.height.0 == height && tip.state_root != block.header.state_root {
            problems.push(format!(
                "the ledger's state root {} is not the header's {}",
                tip.state_root, block.header.state_root
            ));
        }
        if !problems.is_empty() {
            if honest {
                self.violation(format!(
                    "validity: node {node} decided an invalid block at height {height}: {}",
                    problems.join("; ")
                ));
            }
            return;
        }
        let mut recorded_twice = 0;
        let state = &mut self.nodes[node];
        for evidence in &block.evidence {
            let key = evidence_key(evidence);
            if !state.committed_evidence.insert(key) && honest {
                recorded_twice += 1;
            }
            state
                .evidence_pool
                .retain(|_, pooled| evidence_key(pooled) != key);
        }
        if recorded_twice > 0 {
            // One piece per (validator, height), in a block and across the
            // chain, is a consensus rule the ledger applies (whoever
            // proposed the block): an honest node must never commit more.
            self.report.evidence_recorded_twice += recorded_twice;
            self.violation(format!(
                "evidence: node {node} committed {recorded_twice} evidence item(s) at height {height} for a (validator, height) its chain already records"
            ));
        }
        let now_ms = self.now_ms;
        self.nodes[node].decide_times_ms.insert(height, now_ms);
        self.trace = fold(fold(self.trace, node as u64), height);
    }

    /// No honest validator signs two different messages for one slot.
    fn check_signed_message(&mut self, node: usize, message: &Message) {
        let (height, round, kind, value) = match message {
            Message::Vote(vote) => (
                vote.height.0,
                vote.round.0,
                match vote.vote_type {
                    VoteType::Prevote => 1,
                    VoteType::Precommit => 2,
                },
                vote.block_hash,
            ),
            Message::Proposal(signed) => (
                signed.proposal.height.0,
                signed.proposal.round.0,
                0,
                Some(signed.proposal.block_hash),
            ),
        };
        let key = (node, height, round, kind);
        match self.signed.get(&key) {
            Some(known) if *known != value => {
                self.violation(format!(
                    "honest node {node} signed two different {} at height {height} round {round}: {known:?} and {value:?}",
                    ["proposals", "prevotes", "precommits"][kind as usize]
                ));
            }
            Some(_) => {}
            None => {
                self.signed.insert(key, value);
            }
        }
    }

    // ----- network -----------------------------------------------------------

    fn send(&mut self, from: usize, to: usize, message: NetMessage) {
        if from == to || self.nodes[from].host.is_none() {
            return;
        }
        self.report.messages_sent += 1;
        let faults = self.faults_active();
        let (low, high) = if faults {
            self.scenario.latency_faulty_ms
        } else {
            self.scenario.latency_healed_ms
        };
        if faults {
            if let Some(sides) = &self.partition {
                if sides[from] != sides[to] {
                    self.report.messages_dropped += 1;
                    return;
                }
            }
            if self.one_way_cut.contains(&(from, to)) {
                self.report.messages_dropped += 1;
                return;
            }
            if self.rng.chance(self.scenario.drop_per_mille) {
                self.report.messages_dropped += 1;
                return;
            }
            if self.rng.chance(self.scenario.duplicate_per_mille) {
                let delay = self.rng.between(low, high);
                self.schedule(
                    self.send_at_ms.unwrap_or(self.now_ms) + delay,
                    Event::Deliver {
                        to,
                        from,
                        message: Box::new(message.clone()),
                    },
                );
            }
        }
        let mut delay = self.rng.between(low, high);
        // A busy node's output leaves once its syncs are done.
        let base_ms = self.send_at_ms.unwrap_or(self.now_ms);
        let mut message = message;
        if faults {
            // Drawn only when asked for, so the other seeds stay as they were.
            if self.scenario.heavy_tail_per_mille > 0
                && self.rng.chance(self.scenario.heavy_tail_per_mille)
            {
                delay *= self.rng.between(10, 50);
            }
            if self.scenario.corrupt_per_mille > 0
                && self.rng.chance(self.scenario.corrupt_per_mille)
            {
                if let NetMessage::Consensus(consensus) = &message {
                    let mut bytes = codec::encode(consensus);
                    let at = self.rng.below(bytes.len() as u64) as usize;
                    bytes[at] ^= 1 << self.rng.below(8);
                    self.report.messages_corrupted += 1;
                    message = NetMessage::Raw(bytes);
                }
            }
        }
        self.schedule(
            base_ms + delay,
            Event::Deliver {
                to,
                from,
                message: Box::new(message),
            },
        );
    }

    fn broadcast(&mut self, from: usize, message: NetMessage) {
        if self.misbehaving(from) == Some(Behaviour::Silent) {
            return;
        }
        for to in 0..self.nodes.len() {
            self.send(from, to, message.clone());
        }
    }

    /// Sends a consensus message the host broadcast, the way the node's
    /// behaviour dictates (the Byzantine network layer).
    fn broadcast_consensus(&mut self, from: usize, message: Message) {
        let peers = self.nodes.len();
        match (self.misbehaving(from), &message) {
            (Some(Behaviour::Silent), _) => {}
            (Some(Behaviour::EquivocatingProposer), Message::Proposal(signed)) => {
                let other = self.conflicting_proposal(from, signed);
                for to in 0..peers {
                    let copy = if to % 2 == 0 {
                        message.clone()
                    } else {
                        other.clone()
                    };
                    self.send(from, to, NetMessage::Consensus(copy));
                }
            }
            (Some(Behaviour::DoubleVoter), Message::Vote(vote)) => {
                let other = self.conflicting_vote(from, vote);
                for to in 0..peers {
                    let copy = if to % 2 == 0 {
                        message.clone()
                    } else {
                        Message::Vote(other.clone())
                    };
                    self.send(from, to, NetMessage::Consensus(copy));
                }
            }
            (Some(Behaviour::BadSignatures), _) => {
                let mut broken = message.clone();
                match &mut broken {
                    Message::Vote(vote) => vote.signature.0[7] ^= 0x20,
                    Message::Proposal(signed) => signed.proposal.signature.0[9] ^= 0x04,
                }
                let length = self.rng.below(GARBAGE_BYTES_MAX);
                let garbage: Vec<u8> = (0..length).map(|_| self.rng.next_u64() as u8).collect();
                for to in 0..peers {
                    self.send(from, to, NetMessage::Consensus(broken.clone()));
                    self.send(from, to, NetMessage::Raw(garbage.clone()));
                    if self.rng.chance(500) {
                        self.send(from, to, NetMessage::Consensus(message.clone()));
                    }
                }
            }
            (Some(Behaviour::BadProposer), Message::Proposal(signed)) => {
                let bad = self.bad_proposal(from, signed);
                self.broadcast(from, NetMessage::Consensus(bad));
            }
            (Some(Behaviour::LockSplitter), Message::Proposal(signed)) => {
                let other = self.conflicting_proposal(from, signed);
                for to in 0..peers {
                    let copy = if to < peers / 2 {
                        message.clone()
                    } else {
                        other.clone()
                    };
                    self.send(from, to, NetMessage::Consensus(copy));
                }
            }
            (Some(Behaviour::LockSplitter), Message::Vote(vote))
                if vote.vote_type == VoteType::Precommit => {}
            (Some(Behaviour::SelectiveSender), _) => {
                let height = message.height().0 as usize;
                for to in 0..peers {
                    if to == from || (to + height) % 2 == 0 {
                        self.send(from, to, NetMessage::Consensus(message.clone()));
                    }
                }
            }
            (Some(Behaviour::RoundSpammer), Message::Vote(vote)) => {
                let vote = vote.clone();
                self.broadcast(from, NetMessage::Consensus(message));
                for _ in 0..ROUND_SPAM_VOTES {
                    // Half inside the window a node accepts, half far beyond.
                    let ahead = if self.rng.chance(500) {
                        1 + self.rng.below(8)
                    } else {
                        100 + self.rng.below(100_000)
                    };
                    let vote_type = if self.rng.chance(500) {
                        VoteType::Prevote
                    } else {
                        VoteType::Precommit
                    };
                    let spam = Vote::new_signed(
                        &self.chain_id,
                        vote_type,
                        vote.height,
                        Round(vote.round.0.saturating_add(ahead as u32)),
                        None,
                        vote.validator,
                        &self.nodes[from].keypair,
                    );
                    self.broadcast(from, NetMessage::Consensus(Message::Vote(spam)));
                }
            }
            (Some(Behaviour::FalseTip), Message::Vote(vote)) => {
                let vote = vote.clone();
                self.broadcast(from, NetMessage::Consensus(message));
                // A claim of a tip far ahead, signed: peers that believe
                // it ask this node for blocks it never sends.
                let far = vote.height.0 + FALSE_TIP_AHEAD + self.rng.below(1_000_000);
                let claim = Vote::new_signed(
                    &self.chain_id,
                    VoteType::Prevote,
                    Height(far),
                    Round::ZERO,
                    None,
                    vote.validator,
                    &self.nodes[from].keypair,
                );
                self.report.false_tip_claims += 1;
                self.broadcast(from, NetMessage::Consensus(Message::Vote(claim)));
            }
            (Some(Behaviour::EvidenceFlooder), Message::Vote(vote)) => {
                let vote = vote.clone();
                self.broadcast(from, NetMessage::Consensus(message));
                for _ in 0..EVIDENCE_FLOOD_PER_VOTE {
                    let depth = self
                        .rng
                        .below(EVIDENCE_FLOOD_DEPTH_HEIGHTS.min(vote.height.0 - 1) + 1);
                    let height = Height(vote.height.0 - depth);
                    let round = Round(self.rng.below(4) as u32);
                    let vote_type = if self.rng.chance(500) {
                        VoteType::Prevote
                    } else {
                        VoteType::Precommit
                    };
                    let values = [self.rng.next_u64(), self.rng.next_u64()];
                    let [first, second] = values.map(|value| {
                        Vote::new_signed(
                            &self.chain_id,
                            vote_type,
                            height,
                            round,
                            Some(sha256(&value.to_le_bytes())),
                            vote.validator,
                            &self.nodes[from].keypair,
                        )
                    });
                    if let Some(evidence) = Evidence::duplicate_vote(first, second) {
                        self.report.evidence_flooded += 1;
                        self.broadcast(from, NetMessage::Evidence(evidence));
                    }
                }
            }
            (Some(Behaviour::Replayer), _) => {
                self.broadcast(from, NetMessage::Consensus(message));
                let heard = self.nodes[from].heard.len();
                for _ in 0..heard.min(2) {
                    let old = self.nodes[from].heard[self.rng.below(heard as u64) as usize].clone();
                    self.broadcast(from, NetMessage::Consensus(old));
                }
            }
            _ => self.broadcast(from, NetMessage::Consensus(message)),
        }
    }

    /// A proposal for the same height and round over `block`, signed by `from`.
    fn resign_proposal(&self, from: usize, signed: &SignedProposal, block: Block) -> Message {
        let proposal = Proposal::new_signed(
            &self.chain_id,
            signed.proposal.height,
            signed.proposal.round,
            signed.proposal.valid_round,
            block.hash(),
            signed.proposal.proposer,
            &self.nodes[from].keypair,
        );
        Message::Proposal(SignedProposal {
            proposal,
            block: Arc::new(block),
        })
    }

    fn conflicting_proposal(&mut self, from: usize, signed: &SignedProposal) -> Message {
        let mut block = (*signed.block).clone();
        block.header.time = Timestamp(block.header.time.0 + 1 + self.rng.below(5));
        self.resign_proposal(from, signed, block)
    }

    /// A bad proposer's one replacement for each of its proposals (the
    /// same on every re-send): a block whose time is far past the clock
    /// drift, or whose state root is wrong, alternately.
    fn bad_proposal(&mut self, from: usize, signed: &SignedProposal) -> Message {
        let key = (signed.proposal.height.0, signed.proposal.round.0);
        if let Some(known) = self.nodes[from].bad_proposals.get(&key) {
            return known.clone();
        }
        let mut block = (*signed.block).clone();
        if self.nodes[from].bad_proposals.len() % 2 == 0 {
            block.header.time =
                Timestamp(block.header.time.0 + self.params.clock_drift_max_ms + 60_000);
        } else {
            block.header.state_root = sha256(b"not the state root");
        }
        let bad = self.resign_proposal(from, signed, block);
        self.nodes[from].bad_proposals.insert(key, bad.clone());
        bad
    }

    fn conflicting_vote(&mut self, from: usize, vote: &Vote) -> Vote {
        let value = match vote.block_hash {
            Some(_) => None,
            None => Some(sha256(&self.rng.next_u64().to_le_bytes())),
        };
        Vote::new_signed(
            &self.chain_id,
            vote.vote_type,
            vote.height,
            vote.round,
            value,
            vote.validator,
            &self.nodes[from].keypair,
        )
    }

    fn deliver(&mut self, to: usize, from: usize, message: NetMessage) {
        let Some(host) = self.nodes[to].host.as_ref() else {
            return;
        };
        let my_height = host.height().0;
        let silent = self.misbehaving(to) == Some(Behaviour::Silent);
        // A silent node answers nothing; a false-tip peer withholds its
        // answers to sync requests.
        let withholding = silent || self.misbehaving(to) == Some(Behaviour::FalseTip);
        if self.tracing {
            let text = format!("{message:?}");
            eprintln!(
                "{:>6} ms node {to} <- {from}: {}",
                self.now_ms,
                &text[..text.len().min(160)]
            );
        }
        match message {
            NetMessage::Consensus(message) => {
                self.sync_if_far_ahead(to, &message, my_height);
                if self.nodes[to].behaviour == Behaviour::Replayer {
                    let heard = &mut self.nodes[to].heard;
                    if heard.len() >= REPLAY_MEMORY_MAX {
                        heard.pop_front();
                    }
                    heard.push_back(message.clone());
                }
                let input = match message {
                    Message::Proposal(signed) => Input::Proposal(signed),
                    Message::Vote(vote) => Input::Vote(vote),
                };
                self.step(to, input);
            }
            NetMessage::Raw(bytes) => {
                match codec::decode::<Message>("consensus message", &bytes, MESSAGE_BYTES_MAX) {
                    Ok(Message::Vote(vote)) => self.step(to, Input::Vote(vote)),
                    Ok(Message::Proposal(signed)) => self.step(to, Input::Proposal(signed)),
                    Err(_) => self.report.rejected += 1,
                }
            }
            NetMessage::RoundStateRequest { height, round } => {
                if withholding {
                    if !silent {
                        self.report.sync_requests_withheld += 1;
                    }
                    return;
                }
                // What the node answers: the round's messages, nothing for
                // another height.
                let answers: Vec<NetMessage> = host
                    .round_messages(height, round)
                    .into_iter()
                    .map(NetMessage::Consensus)
                    .collect();
                for answer in answers {
                    self.send(to, from, answer);
                }
            }
            NetMessage::BlockRequest {
                request_id,
                block_hash,
            } => {
                if withholding {
                    if !silent {
                        self.report.sync_requests_withheld += 1;
                    }
                    return;
                }
                let block = host.block(&block_hash).or_else(|| {
                    host.ledger()
                        .store()
                        .block_by_hash(&block_hash)
                        .ok()
                        .flatten()
                        .map(Arc::new)
                });
                if let Some(block) = block {
                    self.send(to, from, NetMessage::BlockResponse { request_id, block });
                }
            }
            NetMessage::BlockResponse { request_id, block } => {
                self.step(to, Input::BlockReceived { request_id, block });
            }
            NetMessage::Decision(certificate) => {
                // The node's gossip gate: a decision of a committed height
                // is stale; one of the next two heights goes to the host
                // (whose driver verifies it and fetches the block by
                // hash); one further ahead asks for a sync.
                let tip = host.ledger().tip().height.0;
                let height = certificate.height.0;
                if height <= tip {
                    return;
                }
                if height > tip.saturating_add(2) {
                    self.nodes[to].sync.request_pass();
                    self.drive_sync(to);
                    return;
                }
                self.step(
                    to,
                    Input::CertificateSeen {
                        certificate,
                        block: None,
                    },
                );
            }
            NetMessage::SyncRequest {
                incarnation,
                id,
                request,
            } => {
                let response = match (self.misbehaving(to), &request) {
                    (Some(Behaviour::Silent), _) => return,
                    (Some(Behaviour::FalseTip), SyncRequest::Status) => {
                        // A claim of a tip far ahead: a hint the core
                        // chases until the peer fails to serve it.
                        let tip = host.ledger().tip().height.0;
                        self.report.false_tip_status_claims += 1;
                        SyncResponse::Status(SyncStatus {
                            tip_height: Height(tip + FALSE_TIP_AHEAD + self.rng.below(1_000_000)),
                            tip_hash: sha256(&tip.to_le_bytes()),
                            lowest_height: host.ledger().store().lowest_height(),
                        })
                    }
                    (Some(Behaviour::FalseTip), _) => {
                        self.report.sync_requests_withheld += 1;
                        return;
                    }
                    _ => serve_sync(host.ledger(), &request),
                };
                self.send(
                    to,
                    from,
                    NetMessage::SyncResponse {
                        incarnation,
                        id,
                        response,
                    },
                );
            }
            NetMessage::SyncResponse {
                incarnation,
                id,
                response,
            } => {
                if self.nodes[to].incarnation != incarnation {
                    return;
                }
                let now = std::time::Duration::from_millis(self.now_ms);
                self.nodes[to].sync.on_answer(now, id, Some(response));
                self.drive_sync(to);
            }
            NetMessage::Evidence(evidence) => {
                let hash = evidence.hash();
                let state = &self.nodes[to];
                let signers = state.host.as_ref().and_then(|host| {
                    host.ledger()
                        .validator_set(evidence.height())
                        .ok()
                        .flatten()
                });
                if state.committed_evidence.contains(&evidence_key(&evidence))
                    || state.evidence_pool.contains_key(&hash)
                    || signers.is_none_or(|set| evidence.verify(&self.chain_id, &set).is_err())
                {
                    return;
                }
                let Some(host) = self.nodes[to].host.as_mut() else {
                    return;
                };
                match host.add_evidence(evidence.clone()) {
                    // Kept: the node gossips it again at each commit. A
                    // second piece of one (validator, height) is not kept.
                    Ok(true) => {
                        self.nodes[to].evidence_pool.insert(hash, evidence);
                    }
                    Ok(false) => {}
                    Err(error) => self.host_error(to, &error),
                }
                // Keeping it may have synced: a slow disk makes the node busy.
                self.charge_syncs(to);
            }
        }
    }

    /// A proposal or vote more than one height above the node's asks for a
    /// sync when a validator signed it (as the node's consensus loop does);
    /// the signature is checked only when no pass is pending already.
    fn sync_if_far_ahead(&mut self, node: usize, message: &Message, my_height: u64) {
        if message.height().0 <= my_height.saturating_add(1) || self.nodes[node].sync.pass_pending()
        {
            return;
        }
        let Some(host) = self.nodes[node].host.as_ref() else {
            return;
        };
        let Ok(Some(set)) = host.ledger().validator_set(Height(my_height)) else {
            return;
        };
        let signed = match message {
            Message::Proposal(signed) => signed.proposal.verify(&self.chain_id, &set).is_ok(),
            Message::Vote(vote) => vote.verify(&self.chain_id, &set).is_ok(),
        };
        if signed {
            self.nodes[node].sync.request_pass();
            self.drive_sync(node);
        }
    }

    /// The node's poll tick: a running node whose height did not move for
    /// [`cairn_node::runtime::SYNC_CHECK_INTERVAL_MS`] (and that is not
    /// waiting for transactions) asks for a sync.
    fn sync_check(&mut self) {
        for node in 0..self.nodes.len() {
            let Some(host) = self.nodes[node].host.as_ref() else {
                continue;
            };
            let height = host.height().0;
            let waiting = host.is_waiting();
            let (last_height, since_ms) = self.nodes[node].sync_progress;
            if height != last_height {
                self.nodes[node].sync_progress = (height, self.now_ms);
            } else if !waiting
                && self.now_ms >= since_ms + cairn_node::runtime::SYNC_CHECK_INTERVAL_MS
            {
                self.nodes[node].sync_progress = (height, self.now_ms);
                self.nodes[node].sync.request_pass();
                self.drive_sync(node);
            }
        }
    }

    /// The peers `node` is connected to: the running nodes on its side of
    /// a partition.
    fn connected_peers(&self, node: usize) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|peer| *peer != node && self.nodes[*peer].host.is_some())
            .filter(|peer| {
                !self.faults_active()
                    || self
                        .partition
                        .as_ref()
                        .is_none_or(|sides| sides[*peer] == sides[node])
            })
            .collect()
    }

    /// Drives `node`'s sync core as `cairn_node::block_sync` does over
    /// libp2p: begins a pass when one is due, sends its requests over the
    /// simulated network, commits the ranges it releases with
    /// [`commit_synced`] and tells the host when the tip moved (a fresh
    /// driver at the new tip, as the runtime does on `HostEvent::Synced`);
    /// then queues a wake-up for its next deadline.
    fn drive_sync(&mut self, node: usize) {
        let now = std::time::Duration::from_millis(self.now_ms);
        loop {
            let Some(host) = self.nodes[node].host.as_ref() else {
                return;
            };
            let tip = host.ledger().tip().height;
            if self.nodes[node].sync.wants_pass(now) {
                let peers = self.connected_peers(node);
                self.nodes[node].sync.begin_pass(now, tip, peers);
                self.report.sync_passes += 1;
            }
            let actions = self.nodes[node].sync.poll(now, tip);
            if actions.is_empty() {
                break;
            }
            let incarnation = self.nodes[node].incarnation;
            for action in actions {
                match action {
                    SyncAction::Send {
                        peer, id, request, ..
                    } => {
                        if request == SyncRequest::Status {
                            self.report.sync_status_requests += 1;
                        } else {
                            self.report.sync_block_requests += 1;
                        }
                        self.send(
                            node,
                            peer,
                            NetMessage::SyncRequest {
                                incarnation,
                                id,
                                request,
                            },
                        );
                    }
                    SyncAction::Commit { id, blocks, .. } => {
                        let Some(host) = self.nodes[node].host.as_ref() else {
                            return;
                        };
                        let committed = commit_synced(host.ledger(), &blocks);
                        let tip = host.ledger().tip().height;
                        self.nodes[node].sync.committed(now, id, committed, tip);
                        if committed > 0 {
                            self.report.sync_ranges_committed += 1;
                            self.report.sync_blocks_committed += committed as u64;
                        }
                        let disk = &self.nodes[node].disk;
                        let struck = self.nodes[node]
                            .crash_armed
                            .is_some_and(|generation| generation != disk.generation());
                        if struck || disk.fault().is_some() || disk.has_rot() {
                            // The store failed under the commit: the node
                            // stops (or crashed) as on a failed step.
                            let error = NodeError::Consensus(
                                "the store failed while committing synced blocks".into(),
                            );
                            self.host_error(node, &error);
                            return;
                        }
                    }
                    SyncAction::Synced { .. } => {
                        let behind = self.nodes[node]
                            .host
                            .as_ref()
                            .is_some_and(|host| host.ledger().tip().height >= host.height());
                        if behind {
                            self.start_host(node);
                        }
                        self.after_step(node);
                    }
                    SyncAction::Progress { .. } => {}
                    SyncAction::BackedOff { peer, .. } => {
                        self.report.sync_backoffs += 1;
                        if self.honest(node) && self.nodes[peer].behaviour == Behaviour::FalseTip {
                            self.report.sync_false_tip_backoffs += 1;
                        }
                    }
                }
            }
        }
        if let Some(at) = self.nodes[node].sync.next_wake() {
            let at_ms = u64::try_from(at.as_millis())
                .unwrap_or(u64::MAX)
                .max(self.now_ms);
            let queued = self.nodes[node]
                .sync_wake_ms
                .is_some_and(|queued| queued >= self.now_ms && queued <= at_ms);
            if !queued {
                self.nodes[node].sync_wake_ms = Some(at_ms);
                let incarnation = self.nodes[node].incarnation;
                self.schedule(at_ms, Event::SyncWake { node, incarnation });
            }
        }
    }
}

/// The target set of `state`'s candidates, as the staking rules compute
/// it: the non-jailed candidates with at least the least self-stake and
/// power of at least 1, the `validators_max` with the most power.
fn target_powers(state: &StakingState) -> BTreeMap<PublicKey, u64> {
    let params = state.params();
    let mut members: Vec<(PublicKey, u64)> = state
        .candidates()
        .filter(|(_, candidate)| {
            candidate.jailed_until.is_none() && candidate.bonded >= params.min_self_stake
        })
        .map(|(_, candidate)| (candidate.validator_key, params.power_of(candidate.bonded)))
        .filter(|(_, power)| *power > 0)
        .collect();
    members.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    members.truncate(usize::try_from(params.validators_max).unwrap_or(usize::MAX));
    members.into_iter().collect()
}

fn set_powers(set: &ValidatorSet) -> BTreeMap<PublicKey, u64> {
    set.validators()
        .iter()
        .map(|validator| (validator.public_key, validator.power.0))
        .collect()
}

// ----- staking events ------------------------------------------------------

impl Simulation {
    /// Whether the staking schedule is over: every event fired or skipped,
    /// and what they changed committed and in force (or waited for long
    /// enough).
    fn staking_done(&self) -> bool {
        let Some(run) = &self.staking else {
            return true;
        };
        let events = self
            .scenario
            .staking
            .as_ref()
            .map_or(0, |plan| plan.events.len());
        if run.next_event < events {
            return false;
        }
        let height = run.reference.height;
        let settled = run.pending.is_empty()
            && self.nodes.iter().all(|node| node.pending_key.is_none())
            && run.reference.state.is_settled();
        height >= run.last_fired_height + 4 && (settled || height >= run.last_fired_height + 30)
    }

    /// The honest keys: those honest nodes sign with, or will once their
    /// rotation is in force.
    fn honest_keys(&self) -> BTreeSet<PublicKey> {
        let mut keys = BTreeSet::new();
        for (index, node) in self.nodes.iter().enumerate() {
            if self.honest(index) {
                keys.insert(node.keypair.public_key());
                if let Some((key, _)) = &node.pending_key {
                    keys.insert(key.public_key());
                }
            }
        }
        keys
    }

    /// After a step of `node` in a staking run: a new highest honest tip
    /// becomes the reference (and settles the pending changes it holds);
    /// a node whose rotation is in force restarts with its new key.
    fn staking_after_step(&mut self, node: usize, tip: u64) {
        let honest = self.honest(node);
        let Some(host) = self.nodes[node].host.as_ref() else {
            return;
        };
        let ledger = Arc::clone(host.ledger());
        let reference_height = self
            .staking
            .as_ref()
            .map_or(u64::MAX, |run| run.reference.height);
        if honest && tip > reference_height {
            if let (Some(state), Ok(Some(tip_set))) =
                (ledger.staking(), ledger.validator_set(Height(tip)))
            {
                let accounts: Vec<(u64, u64, u64)> = self
                    .nodes
                    .iter()
                    .map(|other| ledger.account(&other.operator.address()))
                    .collect();
                let operators: Vec<Address> = self
                    .nodes
                    .iter()
                    .map(|other| other.operator.address())
                    .collect();
                if let Some(run) = self.staking.as_mut() {
                    let nonces: Vec<u64> = accounts.iter().map(|account| account.1).collect();
                    run.pending.retain(|change| match change {
                        PendingChange::Transaction { node, nonce, .. } => nonces[*node] <= *nonce,
                        PendingChange::Jail {
                            node, since_height, ..
                        } => {
                            let jailed = state
                                .candidate(&operators[*node])
                                .is_some_and(|candidate| candidate.jailed_until.is_some());
                            !jailed && tip < since_height + 30
                        }
                    });
                    run.reference = Reference {
                        height: tip,
                        state,
                        tip_set,
                        nonces,
                        balances: accounts.iter().map(|account| account.0).collect(),
                    };
                }
            }
        }
        let state = &self.nodes[node];
        if let Some((_, nonce)) = &state.pending_key {
            if !state.swap_scheduled && state.crash_armed.is_none() {
                let committed = ledger.account(&state.operator.address()).1 > *nonce;
                let old = state.keypair.public_key();
                let old_gone = ledger
                    .validator_set(Height(tip + 1))
                    .ok()
                    .flatten()
                    .is_some_and(|set| set.index_of(&old).is_none());
                if committed && old_gone {
                    let incarnation = state.incarnation;
                    self.nodes[node].swap_scheduled = true;
                    self.schedule(self.now_ms, Event::KeySwap { node, incarnation });
                }
            }
        }
    }

    /// The operator of a rotated validator restarts its node with the new
    /// key (the host takes one key for its life): a clean stop, no lost
    /// writes, then the usual boot (the WAL of the height holds nothing of
    /// the old key, which is not in its set).
    fn swap_key(&mut self, node: usize, incarnation: u64) {
        let state = &mut self.nodes[node];
        state.swap_scheduled = false;
        if state.incarnation != incarnation || state.host.is_none() || state.crash_armed.is_some() {
            // The next step after its restart looks again.
            return;
        }
        let Some((key, _)) = state.pending_key.take() else {
            return;
        };
        state.host = None;
        state.keypair = key;
        state.incarnation += 1;
        self.report.key_swaps += 1;
        self.boot(node);
    }

    fn staking_tick(&mut self) {
        let Some(run) = self.staking.as_mut() else {
            return;
        };
        run.ticks += 1;
        if run.ticks % STAKING_REOFFER_TICKS == 0 {
            self.offer_pending();
        }
        self.fire_due_event();
    }

    /// Offers the pending staking transactions to every running node and
    /// hands them the pending evidence (a crash loses a mempool).
    fn offer_pending(&mut self) {
        let Some(run) = self.staking.as_ref() else {
            return;
        };
        let mut transactions: Vec<Vec<u8>> = Vec::new();
        let mut evidence: Vec<Evidence> = Vec::new();
        for change in &run.pending {
            match change {
                PendingChange::Transaction { bytes, .. } => transactions.push(bytes.clone()),
                PendingChange::Jail { evidence: item, .. } => evidence.push(item.clone()),
            }
        }
        self.offer(&transactions, &evidence);
    }

    fn offer(&mut self, transactions: &[Vec<u8>], evidence: &[Evidence]) {
        let batch: Vec<&[u8]> = transactions.iter().map(Vec::as_slice).collect();
        for node in 0..self.nodes.len() {
            let Some(host) = self.nodes[node].host.as_ref() else {
                continue;
            };
            if !batch.is_empty() {
                // Refusals (already pooled, already committed) are fine.
                let _ = host.ledger().submit(&batch);
            }
            for item in evidence {
                self.schedule(
                    self.now_ms + 1,
                    Event::Deliver {
                        to: node,
                        from: node,
                        message: Box::new(NetMessage::Evidence(item.clone())),
                    },
                );
            }
        }
    }

    /// Fires the next event of the schedule once its height is reached.
    fn fire_due_event(&mut self) {
        let Some(plan) = self.scenario.staking.as_ref() else {
            return;
        };
        let gap = plan.gap_heights;
        let Some(run) = self.staking.as_ref() else {
            return;
        };
        let Some(event) = plan.events.get(run.next_event).copied() else {
            return;
        };
        let height = run.reference.height;
        let trigger = run.next_trigger;
        if height < trigger {
            return;
        }
        let polls_before = run.lock_polls;
        let fillers = run.fillers;
        match self.choose_staking_step(event.kind) {
            Some(step) => self.perform_staking_step(step, event.kind, event.fault),
            None => {
                let polling = self
                    .staking
                    .as_ref()
                    .is_some_and(|run| run.lock_polls > polls_before);
                if polling {
                    return;
                }
                // Make room: a join first, the event at the next trigger.
                if event.kind != StakingKind::Join && fillers < STAKING_FILLERS_MAX {
                    if let Some(step) = self.choose_staking_step(StakingKind::Join) {
                        self.perform_staking_step(step, StakingKind::Join, None);
                        self.report.staking_room_joins += 1;
                        let next = height + self.rng.between(gap.0, gap.1);
                        if let Some(run) = self.staking.as_mut() {
                            run.fillers += 1;
                            run.next_trigger = next;
                            run.last_fired_height = height;
                        }
                        return;
                    }
                }
                if height < trigger + STAKING_EVENT_PATIENCE_HEIGHTS {
                    return;
                }
                self.report.staking_events_skipped += 1;
                *self
                    .report
                    .staking_kinds_skipped
                    .entry(format!("{:?}", event.kind))
                    .or_default() += 1;
            }
        }
        let next = height + self.rng.between(gap.0, gap.1);
        if let Some(run) = self.staking.as_mut() {
            run.next_event += 1;
            run.next_trigger = next;
            run.lock_polls = 0;
            run.fillers = 0;
            run.last_fired_height = height;
        }
    }

    /// A signed staking transaction of `node`'s operator.
    fn staking_transaction(
        &self,
        node: usize,
        nonce: u64,
        kind: TransactionKind,
        amount: u64,
        memo: String,
    ) -> Vec<u8> {
        let operator = &self.nodes[node].operator;
        Transaction {
            chain_id: self.chain_id.clone(),
            sender: operator.public_key(),
            recipient: operator.address(),
            amount,
            fee: 1,
            nonce,
            memo,
            kind,
        }
        .sign(operator)
        .to_bytes()
    }

    /// A target for an event of `kind` that keeps the honest power above
    /// two thirds of every set to come, drawn from the seed; `None` if
    /// there is none (yet).
    fn choose_staking_step(&mut self, kind: StakingKind) -> Option<StakingStep> {
        let mut options = self.staking_options(kind);
        if kind == StakingKind::LeaveLocked {
            let locked: Vec<StakingStep> = options
                .iter()
                .filter(|step| self.holds_lock(step.node))
                .map(|step| StakingStep {
                    node: step.node,
                    change: step.change.clone(),
                    new_key: None,
                })
                .collect();
            let run = self.staking.as_mut()?;
            if locked.is_empty() && run.lock_polls < STAKING_LOCK_POLLS {
                run.lock_polls += 1;
                return None;
            }
            if !locked.is_empty() {
                options = locked;
            }
        }
        let safe: Vec<StakingStep> = options
            .into_iter()
            .filter(|step| {
                self.staking_safe(&step.change, step.new_key.as_ref().map(Keypair::public_key))
            })
            .collect();
        if safe.is_empty() {
            return None;
        }
        let pick = self.rng.below(safe.len() as u64) as usize;
        safe.into_iter().nth(pick)
    }

    /// Whether `node`'s host holds a lock in the height it runs.
    fn holds_lock(&self, node: usize) -> bool {
        self.nodes[node]
            .host
            .as_ref()
            .is_some_and(|host| host.round_state().locked.is_some())
    }

    /// Every target an event of `kind` could have now (not checked for
    /// safety yet).
    fn staking_options(&mut self, kind: StakingKind) -> Vec<StakingStep> {
        let Some(run) = self.staking.as_ref() else {
            return Vec::new();
        };
        let reference = &run.reference;
        let params = reference.state.params().clone();
        let unit = params.power_unit.max(1);
        let height = reference.height;
        let busy: BTreeSet<usize> = run.pending.iter().map(PendingChange::node).collect();
        let keys_made = run.keys_made;
        let mut drafts: Vec<(usize, TransactionKind, u64, StakingAction, Option<Keypair>)> =
            Vec::new();
        let mut jail_targets = Vec::new();
        for node in 0..self.nodes.len() {
            let state = &self.nodes[node];
            if busy.contains(&node) || state.pending_key.is_some() {
                continue;
            }
            let honest = self.honest(node);
            let address = state.operator.address();
            let key = state.keypair.public_key();
            let candidate = reference.state.candidate(&address);
            let free = candidate.is_some_and(|candidate| candidate.jailed_until.is_none());
            let bonded = candidate.map_or(0, |candidate| candidate.bonded);
            let balance_units = reference.balances[node] / unit;
            match kind {
                StakingKind::Join if honest && candidate.is_none() && balance_units >= 2 => {
                    let power = self.rng.between(4, 12).min(balance_units - 1);
                    let amount = power * unit;
                    drafts.push((
                        node,
                        TransactionKind::Bond { validator_key: key },
                        amount,
                        StakingAction::Bond {
                            validator_key: key,
                            amount,
                            name: format!("node-{node}"),
                        },
                        None,
                    ));
                }
                StakingKind::BondMore if honest && free && balance_units >= 2 => {
                    let amount = self.rng.between(1, 5).min(balance_units - 1) * unit;
                    drafts.push((
                        node,
                        TransactionKind::Bond { validator_key: key },
                        amount,
                        StakingAction::Bond {
                            validator_key: key,
                            amount,
                            name: String::new(),
                        },
                        None,
                    ));
                }
                StakingKind::PartialUnbond if free && bonded >= 2 * unit => {
                    let amount = self.rng.between(1, bonded / unit - 1) * unit;
                    drafts.push((
                        node,
                        TransactionKind::Unbond,
                        amount,
                        StakingAction::Unbond { amount },
                        None,
                    ));
                }
                StakingKind::Leave | StakingKind::LeaveLocked if free && bonded > 0 => {
                    drafts.push((
                        node,
                        TransactionKind::Unbond,
                        bonded,
                        StakingAction::Unbond { amount: bonded },
                        None,
                    ));
                }
                StakingKind::RotateKey
                    if honest && free && reference.state.current_set().index_of(&key).is_some() =>
                {
                    let mut seed = [0xB2u8; 32];
                    seed[0] = node as u8;
                    seed[1] = keys_made as u8;
                    seed[2] = (keys_made >> 8) as u8;
                    let new_key = Keypair::from_seed(&seed);
                    let new_validator_key = new_key.public_key();
                    drafts.push((
                        node,
                        TransactionKind::RotateKey { new_validator_key },
                        0,
                        StakingAction::RotateKey { new_validator_key },
                        Some(new_key),
                    ));
                }
                StakingKind::Jail if honest && free && height >= 1 => {
                    if let Some(index) = reference.tip_set.index_of(&key) {
                        jail_targets.push((node, index));
                    }
                }
                StakingKind::Unjail
                    if candidate.is_some_and(|candidate| {
                        candidate
                            .jailed_until
                            .is_some_and(|until| until.0 <= height + 1)
                    }) =>
                {
                    drafts.push((
                        node,
                        TransactionKind::Unjail,
                        0,
                        StakingAction::Unjail,
                        None,
                    ));
                }
                _ => {}
            }
        }
        let nonces = reference.nonces.clone();
        let mut steps: Vec<StakingStep> = drafts
            .into_iter()
            .map(|(node, kind, amount, action, new_key)| {
                let nonce = nonces[node];
                let memo = match &action {
                    StakingAction::Bond { name, .. } => name.clone(),
                    _ => String::new(),
                };
                let bytes = self.staking_transaction(node, nonce, kind, amount, memo);
                StakingStep {
                    node,
                    change: PendingChange::Transaction {
                        node,
                        nonce,
                        bytes,
                        action,
                    },
                    new_key,
                }
            })
            .collect();
        for (node, index) in jail_targets {
            let vote = |sim: &mut Simulation| {
                Vote::new_signed(
                    &sim.chain_id,
                    VoteType::Prevote,
                    Height(height),
                    Round::ZERO,
                    Some(sha256(&sim.rng.next_u64().to_le_bytes())),
                    index,
                    &sim.nodes[node].keypair,
                )
            };
            let first = vote(self);
            let second = vote(self);
            if let Some(evidence) = Evidence::duplicate_vote(first, second) {
                steps.push(StakingStep {
                    node,
                    change: PendingChange::Jail {
                        node,
                        since_height: height,
                        evidence,
                    },
                    new_key: None,
                });
            }
        }
        steps
    }

    /// Whether every set from the reference's next one on keeps the honest
    /// power above two thirds, with the pending changes and `extra` in
    /// force in any order and at any stage: each key's power moves
    /// monotonically from the next set towards its target, so it stays
    /// between its power in the next set, in today's target and in the
    /// target with every change applied. The honest keys at their least
    /// must outweigh twice the others at their most. `extra_key` counts
    /// as honest (a rotation's new key).
    fn staking_safe(&self, extra: &PendingChange, extra_key: Option<PublicKey>) -> bool {
        let Some(run) = self.staking.as_ref() else {
            return false;
        };
        let reference = &run.reference;
        let at = Height(reference.height + 1);
        let mut after = reference.state.clone();
        for (position, change) in run.pending.iter().chain([extra]).enumerate() {
            let applied = match change {
                PendingChange::Transaction { node, action, .. } => after
                    .apply_action(self.nodes[*node].operator.address(), at, action)
                    .is_ok(),
                PendingChange::Jail {
                    node, since_height, ..
                } => after
                    .punish(
                        &Offence {
                            operator: self.nodes[*node].operator.address(),
                            height: Height(*since_height),
                        },
                        at,
                    )
                    .is_some(),
            };
            if position == run.pending.len() && !applied {
                return false;
            }
        }
        let next = set_powers(reference.state.next_set());
        let today = target_powers(&reference.state);
        let after = target_powers(&after);
        let mut honest_keys = self.honest_keys();
        honest_keys.extend(extra_key);
        let keys: BTreeSet<&PublicKey> = next
            .keys()
            .chain(today.keys())
            .chain(after.keys())
            .collect();
        let (mut honest_least, mut other_most, mut all_least) = (0u64, 0u64, 0u64);
        let mut bounds = Vec::new();
        for key in keys {
            let powers =
                [&next, &today, &after].map(|powers| powers.get(key).copied().unwrap_or(0));
            let least = powers.iter().min().copied().unwrap_or(0);
            let most = powers.iter().max().copied().unwrap_or(0);
            if honest_keys.contains(key) {
                honest_least += least;
            } else {
                other_most += most;
            }
            all_least += least;
            bounds.push((least, most));
        }
        // No validator may hold two thirds alone: one that does decides
        // with its own votes, no message between nodes and no simulated
        // time passing (with timeout_commit 0, heights without end at one
        // instant).
        let nobody_alone = bounds
            .iter()
            .all(|(least, most)| *most < 2 * (all_least - least));
        let enough =
            bounds.iter().filter(|(least, _)| *least > 0).count() >= STAKING_VALIDATORS_MIN;
        let unguarded = self
            .scenario
            .staking
            .as_ref()
            .is_some_and(|plan| plan.unguarded);
        (unguarded || honest_least > 2 * other_most) && nobody_alone && enough
    }

    fn perform_staking_step(
        &mut self,
        step: StakingStep,
        kind: StakingKind,
        fault: Option<EventFault>,
    ) {
        let node = step.node;
        if matches!(kind, StakingKind::Leave | StakingKind::LeaveLocked) && self.holds_lock(node) {
            self.report.locked_validator_unbonds += 1;
        }
        self.report.staking_events_fired += 1;
        *self
            .report
            .staking_kinds
            .entry(format!("{kind:?}"))
            .or_default() += 1;
        match &step.change {
            PendingChange::Transaction { bytes, nonce, .. } => {
                if let Some(key) = step.new_key {
                    let old = self.nodes[node].keypair.public_key();
                    if let Some(run) = self.staking.as_mut() {
                        run.rotated_old_keys.insert(old);
                        run.rotated_new_keys.insert(key.public_key());
                        run.keys_made += 1;
                    }
                    self.nodes[node].pending_key = Some((key, *nonce));
                }
                let bytes = bytes.clone();
                self.offer(&[bytes], &[]);
            }
            PendingChange::Jail { evidence, .. } => {
                let evidence = evidence.clone();
                self.offer(&[], &[evidence]);
            }
        }
        if self.tracing {
            eprintln!("{:>6} ms staking: {kind:?} of node {node}", self.now_ms);
        }
        if let Some(run) = self.staking.as_mut() {
            run.pending.push(step.change);
        }
        if self.faults_active() {
            let phase = self.scenario.fault_phase_ms;
            let until = (self.now_ms + self.rng.between(100, 500)).min(phase.saturating_sub(1));
            match fault {
                Some(EventFault::CrashTarget) if self.honest(node) => {
                    self.schedule(self.now_ms + 1, Event::Crash { node });
                    self.schedule(until.max(self.now_ms + 2), Event::Restart { node });
                }
                Some(EventFault::CrashOther) => {
                    let others: Vec<usize> = (0..self.nodes.len())
                        .filter(|other| *other != node && self.honest(*other))
                        .collect();
                    if !others.is_empty() {
                        let other = others[self.rng.below(others.len() as u64) as usize];
                        self.schedule(self.now_ms + 1, Event::Crash { node: other });
                        self.schedule(until.max(self.now_ms + 2), Event::Restart { node: other });
                    }
                }
                Some(EventFault::PartitionTarget) => {
                    let mut sides = vec![false; self.nodes.len()];
                    sides[node] = true;
                    self.schedule(self.now_ms + 1, Event::PartitionStart { sides });
                    self.schedule(until.max(self.now_ms + 2), Event::PartitionEnd);
                }
                _ => {}
            }
            if fault.is_some()
                || self.partition.is_some()
                || self.nodes.iter().any(|n| n.host.is_none())
            {
                self.report.staking_events_during_faults += 1;
            }
        }
    }

    /// At the first decision of `height`: the honest keys hold more than
    /// two thirds of its signing set (the schedule's promise, which
    /// liveness needs), and what changed from the previous height's set.
    fn note_signing_set(&mut self, node: usize, height: u64, block: &Block, set: ValidatorSet) {
        let honest_keys = self.honest_keys();
        // The set that signed, and the one the state after this block
        // chose for two heights on (checked as soon as it is known: a set
        // without an honest quorum would never sign).
        let chosen = self.nodes[node].host.as_ref().and_then(|host| {
            host.ledger()
                .validator_set(Height(height + 2))
                .ok()
                .flatten()
        });
        for (at, checked) in [(height, Some(&set)), (height + 2, chosen.as_ref())] {
            let Some(checked) = checked else {
                continue;
            };
            let total = checked.total_power().0;
            let honest: u64 = checked
                .validators()
                .iter()
                .filter(|validator| honest_keys.contains(&validator.public_key))
                .map(|validator| validator.power.0)
                .sum();
            if 3 * honest <= 2 * total {
                self.violation(format!(
                    "staking schedule: honest validators hold {honest} of {total} power in the set of height {at}"
                ));
            }
        }
        self.report.staking_transactions_committed += block
            .transactions
            .iter()
            .filter(|transaction| !transaction.transaction.is_transfer())
            .count() as u64;
        let state = self.nodes[node]
            .host
            .as_ref()
            .and_then(|host| host.ledger().staking());
        let Some(run) = self.staking.as_mut() else {
            return;
        };
        let Some(last) = run.last_signing_set.replace(set.clone()) else {
            return;
        };
        if last.hash() == set.hash() {
            return;
        }
        self.report.set_changes += 1;
        for validator in set.validators() {
            let key = validator.public_key;
            if last.index_of(&key).is_none() {
                if run.rotated_new_keys.remove(&key) {
                    self.report.rotations += 1;
                } else {
                    self.report.joins += 1;
                }
            }
        }
        for validator in last.validators() {
            let key = validator.public_key;
            if set.index_of(&key).is_some() || run.rotated_old_keys.remove(&key) {
                continue;
            }
            let jailed = state.as_ref().is_some_and(|state| {
                state.candidates().any(|(_, candidate)| {
                    candidate.validator_key == key && candidate.jailed_until.is_some()
                })
            });
            if jailed {
                self.report.jailings += 1;
            } else {
                self.report.removals += 1;
            }
        }
    }
}

/// Runs `scenario` and returns its report.
pub fn run(scenario: Scenario) -> Report {
    Simulation::new(scenario).run()
}
