//! The consensus host: feeds the [`Driver`] its inputs and executes its
//! outputs in order against the [`Ledger`], a network and a timer service.
//!
//! The host is written against two small interfaces, [`HostNetwork`] (send
//! consensus messages, evidence and decisions; ask peers for a round's
//! messages or a block) and [`HostTimers`] (fire a timeout later), plus a
//! clock function, so the tokio/libp2p runtime ([`crate::runtime`]) drives
//! it over real sockets and the deterministic simulator could drive the
//! same code over a simulated network.
//!
//! Order of effects, per output of the driver:
//!
//! - [`Output::Persist`]: appended to the store's WAL;
//! - [`Output::Broadcast`]: held until the WAL is synced, which happens
//!   at the end of every [`ConsensusHost::handle`] and before anything slow
//!   (building, validating an unknown block, committing), so a vote is never
//!   broadcast before it is durable (no amnesia after a crash) and the
//!   entries and messages of one step (round, block, proposal and the own
//!   prevote; or lock and vote) cost one fsync;
//! - [`Output::BuildBlock`] and [`Output::ValidateBlock`] are answered at
//!   once from the [`Ledger`], whose execution outcome is cached by block
//!   hash so the commit reuses it;
//! - [`Output::Decide`] commits block, certificate and state in one synced
//!   write batch that also deletes the WAL of the height, and publishes the
//!   decision so full nodes follow;
//! - [`Output::NextHeightReady`] starts the next height at once, or, when
//!   the node waits for transactions, once the mempool holds some, a
//!   message of that height arrives, or the longest interval between
//!   blocks has passed ([`ConsensusHost::poll_waiting`]).

use std::{collections::BTreeMap, sync::Arc};

use cairn_consensus::{
    Driver, DriverConfig, Input, Message, Output, RequestId, StartHeight, Timeout, WalEntry,
};
use cairn_types::{
    Address, Block, CommitCertificate, Evidence, Hash, Height, Keypair, Round, Timestamp,
};

use crate::{
    ledger::{BlockRequest, Ledger},
    sign_state::{LastSigned, LockedValue, SignState, SignVerdict, SignedStep},
    NodeError,
};

/// Most pieces of evidence waiting for a block; older ones are dropped.
pub const EVIDENCE_POOL_MAX: usize = 1_024;
/// Evidence older than this many heights below the tip is no longer
/// proposed (the consensus rule [`cairn_types::limits::EVIDENCE_AGE_MAX_BLOCKS`]).
pub const EVIDENCE_AGE_MAX_HEIGHTS: u64 = cairn_types::limits::EVIDENCE_AGE_MAX_BLOCKS;
/// Most WAL bytes the blocks of one height may take: half of
/// [`cairn_store::WAL_HEIGHT_BYTES_MAX`] (256 MiB), so the other half is
/// always there for votes, proposals and locks. Those take about 1 KiB a
/// round; timeouts grow by their deltas each round, so the 128 MiB (and
/// the 65,536 entries, about 6 a round) would take a height of over ten
/// thousand rounds, days of growing timeouts. A proposer puts one own
/// block per height in the WAL (a later round proposes it again), so only
/// many distinct locks on 16 MiB blocks of others come near the share.
pub const WAL_BLOCK_BYTES_PER_HEIGHT_MAX: u64 = cairn_store::WAL_HEIGHT_BYTES_MAX / 2;
/// Heights between two prunings of old evidence from the store.
pub const EVIDENCE_PRUNE_INTERVAL_HEIGHTS: u64 = 16;

/// How the host sends to peers. Every method queues and returns at once;
/// a send that cannot be queued is dropped (the driver re-sends its own
/// messages while a round makes no progress).
pub trait HostNetwork {
    /// Gossips a proposal or vote.
    fn broadcast(&mut self, message: &Message);
    /// Gossips evidence of equivocation.
    fn publish_evidence(&mut self, evidence: &Evidence);
    /// Gossips a decision (the commit certificate), for full nodes.
    fn publish_decision(&mut self, certificate: &CommitCertificate);
    /// Asks peers for the proposal and votes they hold for a round; the
    /// answers come back as [`Input::Proposal`] and [`Input::Vote`].
    fn request_round_state(&mut self, height: Height, round: Round);
    /// Asks peers for a block by hash; the answer comes back as
    /// [`Input::BlockReceived`] with `request_id`.
    fn request_block(&mut self, request_id: RequestId, height: Height, block_hash: Hash);
}

/// Fires timeouts back into the host as [`Input::TimeoutElapsed`].
pub trait HostTimers {
    /// Fire `timeout` after `duration_ms`.
    fn schedule(&mut self, timeout: Timeout, duration_ms: u64);
    /// Forget every timer (a new driver is starting).
    fn clear(&mut self);
}

/// Debug log of a proposal `direction` ("sent", "received"): with the
/// timestamps, the timeline of a height across nodes.
fn log_proposal(direction: &'static str, proposal: &cairn_types::Proposal) {
    tracing::debug!(
        direction,
        height = proposal.height.0,
        round = proposal.round.0,
        "proposal"
    );
}

/// Debug log of a vote `direction` ("sent", "received").
fn log_vote(direction: &'static str, vote: &cairn_types::Vote) {
    tracing::debug!(
        direction,
        height = vote.height.0,
        round = vote.round.0,
        kind = ?vote.vote_type,
        validator = vote.validator.0,
        "vote"
    );
}

/// The error that stops consensus when the WAL cannot be written.
fn wal_failed(error: cairn_store::StoreError) -> NodeError {
    NodeError::Consensus(format!(
        "cannot write the consensus WAL ({error}); stopping rather than sign what could not be persisted{}",
        disk_hint(&error.to_string())
    ))
}

/// What to do about a failed write, when its reason says: a full disk or
/// a failing one. Nothing acknowledged is lost either way: the node stops
/// before it sends or answers anything that was not written.
pub fn disk_hint(reason: &str) -> &'static str {
    if reason.contains("No space left") {
        ". The disk is full: free space on it (or give the home more), then start the node again; every committed block and every vote it sent are kept"
    } else if reason.contains("Input/output error") {
        ". The disk reported an I/O error: check it (dmesg, smartctl) before starting the node again; if its data is damaged the next start says so"
    } else {
        ""
    }
}

/// Tells the host the time (the wall clock in a node, simulated time in
/// the simulator).
pub trait HostClock {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// Node-local consensus settings of the host.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// Hold a height until the mempool has transactions.
    pub wait_for_transactions: bool,
    /// Longest wait for transactions before an empty block is made anyway.
    pub block_interval_max_ms: u64,
}

/// A height the host is holding until transactions arrive.
#[derive(Clone, Copy, Debug)]
struct Waiting {
    height: Height,
    since: Timestamp,
}

/// The consensus host of one node.
pub struct ConsensusHost<N, T, C> {
    ledger: Arc<Ledger>,
    driver_config: DriverConfig,
    keypair: Option<Keypair>,
    driver: Driver,
    network: N,
    timers: T,
    clock: C,
    config: HostConfig,
    fee_address: Address,
    waiting: Option<Waiting>,
    evidence_pool: BTreeMap<Hash, Evidence>,
    /// WAL entries were appended since the last sync.
    wal_unsynced: bool,
    /// Messages of this step waiting for the WAL sync that lets them go.
    unsent: Vec<Message>,
    /// The last signed (height, round, step): every new driver's signing
    /// floor, updated before an own message is persisted or sent (`None`:
    /// not kept, e.g. a full node or the simulator).
    sign_state: Option<SignState>,
    /// This validator's index in the current height's set, if it is in it
    /// (updated at each height: staking moves the set).
    own_index: Option<cairn_types::ValidatorIndex>,
    /// The driver's step and when it was entered, for the step metrics.
    step_entered: (cairn_consensus::Step, Timestamp),
    /// WAL bytes of blocks appended for a height.
    wal_block_bytes: (Height, u64),
    /// Test-only rule switches (see [`HostFaults`]).
    #[cfg(feature = "fault-injection")]
    faults: HostFaults,
}

/// Switches that break the host's rules, and the consensus rules of every
/// driver it makes. Only `fault-injection` builds have them: they exist to
/// prove that each of the simulator's checkers can fail. `cairnd` never
/// has them (the feature is enabled only by the simulator's tests).
#[cfg(feature = "fault-injection")]
#[derive(Clone, Copy, Debug, Default)]
pub struct HostFaults {
    /// The rule switches of every driver this host makes.
    pub rules: cairn_consensus::RoundRules,
    /// Send own messages without syncing the WAL first (breaks persist
    /// before send).
    pub skip_wal_sync: bool,
    /// Accept a block whose header names a wrong state root (breaks
    /// validity).
    pub accept_wrong_state_root: bool,
}

/// The lock a sign state holds, as the driver takes it.
fn lock_floor(sign_state: &SignState) -> Option<(Height, cairn_consensus::RoundValue)> {
    sign_state.locked().map(|lock| {
        (
            lock.height,
            cairn_consensus::RoundValue {
                round: lock.round,
                value: lock.block_hash,
            },
        )
    })
}

/// The (height, round, step, block) an own WAL entry signs, if it is a
/// proposal or a vote.
fn signed_entry(entry: &WalEntry) -> Option<LastSigned> {
    match entry {
        WalEntry::Proposal(proposal) => Some(LastSigned {
            height: proposal.height,
            round: proposal.round,
            step: SignedStep::Proposal,
            block_hash: Some(proposal.block_hash),
        }),
        WalEntry::Vote(vote) => Some(signed_vote(vote)),
        _ => None,
    }
}

fn signed_vote(vote: &cairn_types::Vote) -> LastSigned {
    LastSigned {
        height: vote.height,
        round: vote.round,
        step: vote.vote_type.into(),
        block_hash: vote.block_hash,
    }
}

impl<N: HostNetwork, T: HostTimers, C: HostClock> ConsensusHost<N, T, C> {
    /// A host over `ledger`; `keypair` signs if it is a validator's
    /// (otherwise the node follows without voting). Call
    /// [`ConsensusHost::start`] next.
    pub fn new(
        ledger: Arc<Ledger>,
        driver_config: DriverConfig,
        keypair: Option<Keypair>,
        network: N,
        timers: T,
        clock: C,
        config: HostConfig,
    ) -> Result<Self, NodeError> {
        let driver = Driver::new(driver_config.clone(), keypair.clone())
            .map_err(|error| NodeError::Consensus(error.to_string()))?;
        let own_index = keypair
            .as_ref()
            .and_then(|keypair| driver_config.validators.index_of(&keypair.public_key()));
        let fee_address = own_index
            .and_then(|index| driver_config.validators.get(index))
            .map_or_else(
                || keypair.as_ref().map(Keypair::address).unwrap_or_default(),
                cairn_types::Validator::address,
            );
        let evidence_pool = pending_evidence(&ledger)?;
        Ok(ConsensusHost {
            ledger,
            driver_config,
            keypair,
            driver,
            network,
            timers,
            clock,
            config,
            fee_address,
            waiting: None,
            wal_unsynced: false,
            unsent: Vec::new(),
            evidence_pool,
            sign_state: None,
            own_index,
            step_entered: (cairn_consensus::Step::Unstarted, Timestamp(0)),
            wal_block_bytes: (Height::GENESIS, 0),
            #[cfg(feature = "fault-injection")]
            faults: HostFaults::default(),
        })
    }

    /// Test-only: breaks the rules `faults` switches on, from the next
    /// driver on ([`ConsensusHost::start`]).
    #[cfg(feature = "fault-injection")]
    pub fn set_faults(&mut self, faults: HostFaults) {
        self.faults = faults;
        self.ledger
            .set_accept_wrong_state_root(faults.accept_wrong_state_root);
    }

    /// Keeps the last signed message in `sign_state`: it is the signing
    /// floor of every driver this host makes, and each new own proposal or
    /// vote is recorded there before it is persisted or sent (see
    /// [`crate::sign_state`]).
    pub fn with_sign_state(mut self, sign_state: SignState) -> Self {
        self.driver.set_signing_floor(sign_state.last());
        self.driver.set_prevote_floor(sign_state.last_prevote());
        self.driver.set_lock_floor(lock_floor(&sign_state));
        self.sign_state = Some(sign_state);
        self
    }

    /// Says when this validator will not sign (some rounds of) `height`
    /// because it signed them before its WAL was lost or reset.
    fn warn_if_at_signing_floor(&self, height: Height) {
        if let Some(floor) = self.driver.signing_floor() {
            if height <= floor.height {
                tracing::warn!(
                    height = height.0,
                    "not signing at height {} up to height {} round {} {:?}: this validator signed that before (config/sign_state.json), and its WAL no longer says what; it stays silent there so it cannot sign a conflicting vote",
                    height.0,
                    floor.height.0,
                    floor.round.0,
                    floor.step
                );
            }
        }
    }

    /// Records an own proposal or vote in the sign state before it is
    /// persisted. The driver already kept to the floor; a refusal here
    /// means it did not, and the node stops rather than sign.
    fn record_signed(&mut self, message: LastSigned) -> Result<(), NodeError> {
        let Some(sign_state) = self.sign_state.as_mut() else {
            return Ok(());
        };
        match sign_state.check_and_record(message)? {
            SignVerdict::Sign => Ok(()),
            SignVerdict::Refuse(reason) => Err(NodeError::Consensus(format!(
                "refusing to persist an own message that config/sign_state.json forbids: {reason}"
            ))),
        }
    }

    /// The height being decided (or waited for).
    pub fn height(&self) -> Height {
        match self.waiting {
            Some(waiting) => waiting.height,
            None => self.driver.height(),
        }
    }

    /// The round being run.
    pub fn round(&self) -> Round {
        self.driver.round_state().round
    }

    /// Whether the host holds its next height until transactions arrive.
    pub fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }

    /// The timer service (the runtime polls it for due timers).
    pub fn timers_mut(&mut self) -> &mut T {
        &mut self.timers
    }

    /// The network (the runtime drains its queue).
    pub fn network_mut(&mut self) -> &mut N {
        &mut self.network
    }

    /// The clock.
    pub fn clock_mut(&mut self) -> &mut C {
        &mut self.clock
    }

    /// The ledger this host extends.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// The driver's round state (height, round, step, locks).
    pub fn round_state(&self) -> &cairn_consensus::RoundState {
        self.driver.round_state()
    }

    /// The driver (read only: the consensus view of the RPC).
    pub fn driver(&self) -> &Driver {
        &self.driver
    }

    /// The driver, for tests and the simulator's fault switches.
    pub fn driver_mut(&mut self) -> &mut Driver {
        &mut self.driver
    }

    /// The proposal and votes this node holds for a round, for a peer's
    /// round-state request.
    pub fn round_messages(&self, height: Height, round: Round) -> Vec<Message> {
        self.driver.round_messages(height, round)
    }

    /// A higher round that L55 should have moved the driver to (see
    /// [`Driver::round_skip_pending`]); `None` when the rules are followed.
    pub fn round_skip_pending(&self) -> Option<Round> {
        self.driver.round_skip_pending()
    }

    /// A block of the current height this node holds, for a peer's
    /// block-by-hash request.
    pub fn block(&self, hash: &Hash) -> Option<Arc<Block>> {
        self.driver.block(hash)
    }

    /// Starts (or resumes, replaying the WAL) the height after the
    /// committed tip with a fresh driver. Called at start-up and after
    /// block sync moved the tip.
    pub fn start(&mut self) -> Result<(), NodeError> {
        self.driver = Driver::new(self.driver_config.clone(), self.keypair.clone())
            .map_err(|error| NodeError::Consensus(error.to_string()))?;
        self.driver
            .set_signing_floor(self.sign_state.as_ref().and_then(SignState::last));
        self.driver
            .set_prevote_floor(self.sign_state.as_ref().and_then(SignState::last_prevote));
        self.driver
            .set_lock_floor(self.sign_state.as_ref().and_then(lock_floor));
        #[cfg(feature = "fault-injection")]
        self.driver.set_rules(self.faults.rules);
        self.timers.clear();
        self.waiting = None;
        // Messages of the abandoned driver (left by a failed step) are
        // dropped with it.
        self.unsent.clear();
        let height = self.next_height();
        // Entries of committed heights are of no use any more.
        self.prune_wal_below(height);
        let wal = self.read_wal(height)?;
        // The blocks' share of this height's WAL counts what is already there.
        let block_bytes: u64 = wal
            .iter()
            .filter(|entry| matches!(entry, WalEntry::Block { .. }))
            .map(|entry| entry.to_bytes().len() as u64)
            .sum();
        self.wal_block_bytes = (height, block_bytes);
        if wal.is_empty() && self.should_wait() {
            self.waiting = Some(Waiting {
                height,
                since: self.clock.now(),
            });
            return Ok(());
        }
        self.start_height(height, wal)
    }

    /// Feeds one input and executes every resulting output (answers of
    /// the ledger are fed back in the same call).
    pub fn handle(&mut self, input: Input) -> Result<(), NodeError> {
        match &input {
            Input::Proposal(signed) => log_proposal("received", &signed.proposal),
            Input::Vote(vote) => log_vote("received", vote),
            _ => {}
        }
        if let (Some(waiting), Some(height)) = (self.waiting, message_height(&input)) {
            // A peer already runs the height we hold: join it.
            if height == waiting.height {
                self.waiting = None;
                self.start_height(height, Vec::new())?;
            }
        }
        let mut inputs = std::collections::VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let mut outputs = self.driver.process(Input::Time(self.clock.now()));
            outputs.extend(self.driver.process(input));
            for output in outputs {
                self.execute(output, &mut inputs)?;
            }
        }
        self.time_steps();
        // Whatever this step appended is durable before the next input:
        // a crash between steps loses nothing, and a state entered (a
        // round, a lock) survives it even when nothing was sent.
        self.send_unsent()
    }

    /// Records how long the driver stayed in the step it just left.
    fn time_steps(&mut self) {
        use cairn_consensus::Step;
        let state = self.driver.round_state();
        let (step, entered) = self.step_entered;
        if state.step == step {
            return;
        }
        let now = self.clock.now();
        let name = match step {
            Step::Propose => Some("propose"),
            Step::Prevote => Some("prevote"),
            Step::Precommit => Some("precommit"),
            Step::Unstarted | Step::Decided => None,
        };
        if let Some(name) = name {
            self.ledger
                .metrics()
                .record_step(name, now.as_millis().saturating_sub(entered.as_millis()));
        }
        self.step_entered = (state.step, now);
    }

    /// Syncs the WAL, then hands the messages waiting for it to the
    /// network. Messages wait within a step so that one sync covers them
    /// all (a proposer's proposal and its own prevote; one validator's
    /// prevote and precommit); they go out before anything slow runs.
    fn send_unsent(&mut self) -> Result<(), NodeError> {
        self.sync_wal()?;
        let committed = self.ledger.tip().height;
        for message in std::mem::take(&mut self.unsent) {
            // Block sync (its own task) may commit the driver's height
            // before the driver moves on, and the commit deletes that
            // height's WAL: a re-send of its messages then would leave
            // without the WAL holding them (the simulator's seed 780536).
            // Peers behind get a committed height by sync, not by votes.
            if message.height() <= committed {
                continue;
            }
            match &message {
                Message::Proposal(signed) => log_proposal("sent", &signed.proposal),
                Message::Vote(vote) => log_vote("sent", vote),
            }
            self.network.broadcast(&message);
        }
        Ok(())
    }

    /// Syncs the WAL if entries were appended since the last sync.
    fn sync_wal(&mut self) -> Result<(), NodeError> {
        #[cfg(feature = "fault-injection")]
        if self.faults.skip_wal_sync {
            return Ok(());
        }
        if self.wal_unsynced {
            self.ledger.store().wal_sync().map_err(wal_failed)?;
            self.wal_unsynced = false;
        }
        Ok(())
    }

    /// Starts the held height once the mempool has executable transactions
    /// (queued ones, behind a missing nonce, do not count) or the
    /// longest interval between blocks has passed. Cheap when not waiting.
    pub fn poll_waiting(&mut self) -> Result<(), NodeError> {
        let Some(waiting) = self.waiting else {
            return Ok(());
        };
        let now = self.clock.now();
        let waited_ms = now.as_millis().saturating_sub(waiting.since.as_millis());
        if self.ledger.mempool_executable() > 0 || waited_ms >= self.config.block_interval_max_ms {
            self.waiting = None;
            self.start_height(waiting.height, Vec::new())?;
        }
        Ok(())
    }

    /// Keeps evidence received from a peer (already verified by the
    /// caller) for a block of this node's. Evidence of a height above the one being decided, or older than
    /// [`EVIDENCE_AGE_MAX_HEIGHTS`], is refused: no block could hold the
    /// former yet, and the latter is no longer proposed.
    pub fn add_evidence(&mut self, evidence: Evidence) -> Result<bool, NodeError> {
        if !self.evidence_in_window(&evidence) || self.knows_misbehaviour(&evidence) {
            return Ok(false);
        }
        self.keep_evidence(evidence)?;
        Ok(true)
    }

    /// Whether evidence of this (validator, height) is already pooled or
    /// recorded in a block: one piece per misbehaviour, a second proves
    /// nothing new.
    fn knows_misbehaviour(&self, evidence: &Evidence) -> bool {
        let key = crate::ledger::evidence_key(evidence);
        self.ledger.evidence_recorded(evidence)
            || self
                .evidence_pool
                .values()
                .any(|kept| crate::ledger::evidence_key(kept) == key)
    }

    fn evidence_in_window(&self, evidence: &Evidence) -> bool {
        let height = self.height().0;
        let oldest = height.saturating_sub(EVIDENCE_AGE_MAX_HEIGHTS);
        (oldest..=height).contains(&evidence.height().0)
    }

    fn keep_evidence(&mut self, evidence: Evidence) -> Result<(), NodeError> {
        self.ledger
            .store()
            .add_evidence(&evidence)
            .map_err(|error| NodeError::Consensus(error.to_string()))?;
        // Written unsynced; synced with this step's WAL entries (one sync
        // per step, not one per piece), so nothing is sent while a write
        // waits.
        self.wal_unsynced = true;
        if self.evidence_pool.len() >= EVIDENCE_POOL_MAX {
            // The oldest evidence goes first.
            let oldest = self
                .evidence_pool
                .iter()
                .min_by_key(|(_, kept)| kept.height())
                .map(|(hash, _)| *hash);
            if let Some(hash) = oldest {
                self.evidence_pool.remove(&hash);
            }
        }
        self.evidence_pool.insert(evidence.hash(), evidence);
        Ok(())
    }

    fn next_height(&self) -> Height {
        Height(self.ledger.tip().height.0.saturating_add(1))
    }

    fn should_wait(&self) -> bool {
        self.config.wait_for_transactions && self.ledger.mempool_executable() == 0
    }

    fn read_wal(&self, height: Height) -> Result<Vec<WalEntry>, NodeError> {
        let entries = self
            .ledger
            .store()
            .wal_entries(height)
            .map_err(|error| NodeError::Consensus(error.to_string()))?;
        entries
            .iter()
            .map(|bytes| {
                WalEntry::from_bytes(bytes).map_err(|error| {
                    NodeError::Consensus(format!(
                        "the consensus WAL of height {height} holds an entry that does not decode ({error}); \
                         the data directory is damaged. Restore it from a backup, or run `cairnd reset --yes` \
                         and let the node sync the chain from its peers"
                    ))
                })
            })
            .collect()
    }

    fn start_height(&mut self, height: Height, wal: Vec<WalEntry>) -> Result<(), NodeError> {
        let tip = self.ledger.tip();
        if tip.height.0.saturating_add(1) != height.0 {
            return Ok(());
        }
        self.warn_if_at_signing_floor(height);
        let resuming = !wal.is_empty();
        if resuming {
            tracing::info!(
                height = height.0,
                entries = wal.len(),
                "resuming the height from the WAL"
            );
        }
        let input = self.start_height_input(height, tip.hash, tip.time, wal)?;
        self.handle(input)
    }

    /// The input that starts `height`, with the height's validator set
    /// from the ledger. Updates this node's place in the set (and its fee
    /// address) and logs when it enters or leaves the set.
    fn start_height_input(
        &mut self,
        height: Height,
        parent_hash: Hash,
        parent_time: cairn_types::Timestamp,
        wal: Vec<WalEntry>,
    ) -> Result<Input, NodeError> {
        let validators = self
            .ledger
            .validator_set(height)
            .map_err(|error| NodeError::Consensus(error.to_string()))?
            .ok_or_else(|| {
                NodeError::Consensus(format!("no validator set is known for height {height}"))
            })?;
        if let Some(keypair) = &self.keypair {
            let index = validators.index_of(&keypair.public_key());
            match (self.own_index.is_some(), index.is_some()) {
                (false, true) => tracing::info!(
                    height = height.0,
                    "this node's validator key is in the validator set from this height: it votes"
                ),
                (true, false) => tracing::warn!(
                    height = height.0,
                    "this node's validator key is not in the validator set of this height (unbonded, jailed or outranked): it follows the chain without voting"
                ),
                _ => {}
            }
            self.own_index = index;
            if let Some(validator) = index.and_then(|index| validators.get(index)) {
                self.fee_address = validator.address();
            }
        }
        self.ledger.metrics().set_validator_set(
            validators.len(),
            validators.total_power().0,
            self.own_index.is_some(),
        );
        Ok(Input::StartHeight(StartHeight {
            height,
            parent_hash,
            parent_time,
            wal,
            validators,
        }))
    }

    /// Deletes the WAL entries below `height`. Not synced on its own: the
    /// sync at the end of this step or the next covers it (a crash before
    /// then only brings back entries no one reads).
    fn prune_wal_below(&mut self, height: Height) {
        if let Err(error) = self.ledger.store().wal_prune_below(height) {
            tracing::warn!("cannot prune the consensus WAL: {error}");
        }
        self.wal_unsynced = true;
    }

    fn execute(
        &mut self,
        output: Output,
        inputs: &mut std::collections::VecDeque<Input>,
    ) -> Result<(), NodeError> {
        match output {
            Output::Persist(entry) => {
                // A node that does not vote has nothing to keep: after a
                // crash it follows the chain again from its peers.
                if self.own_index.is_none() {
                    return Ok(());
                }
                // Recorded in the sign state (synced) before the WAL append,
                // and so before the message can be sent.
                if let Some(signed) = signed_entry(&entry) {
                    self.record_signed(signed)?;
                }
                if let (
                    WalEntry::Locked {
                        height,
                        round,
                        block_hash,
                    },
                    Some(sign_state),
                ) = (&entry, self.sign_state.as_mut())
                {
                    sign_state.record_lock(LockedValue {
                        height: *height,
                        round: *round,
                        block_hash: *block_hash,
                    })?;
                }
                // Appended now, synced once at the end of the step or before
                // anything slow (a build, the validation of an unknown
                // block, a commit), with the step's messages held until
                // then: the entries of one step cost one fsync.
                let bytes = entry.to_bytes();
                if let WalEntry::Block { height, .. } = &entry {
                    // Blocks get at most half of a height's WAL, so votes
                    // and locks (what must never be lost) always fit.
                    if self.wal_block_bytes.0 != *height {
                        self.wal_block_bytes = (*height, 0);
                    }
                    let total = self.wal_block_bytes.1.saturating_add(bytes.len() as u64);
                    if total > WAL_BLOCK_BYTES_PER_HEIGHT_MAX {
                        tracing::warn!(
                            height = height.0,
                            "this height's blocks fill their share of the consensus WAL; a block is kept in memory only (after a crash it is fetched again by hash)"
                        );
                        return Ok(());
                    }
                    self.wal_block_bytes.1 = total;
                }
                match self.ledger.store().wal_append(entry.height(), &bytes) {
                    Ok(()) => {}
                    // After a restart the share above starts counting again;
                    // the store's own bound still leaves a block (or the
                    // prevotes of a polka, which only help liveness) out,
                    // never stops the node.
                    Err(cairn_store::StoreError::WalFull { .. })
                        if matches!(entry, WalEntry::Block { .. } | WalEntry::Polka { .. }) =>
                    {
                        tracing::warn!("the consensus WAL of this height is full; a block or a polka is kept in memory only");
                        return Ok(());
                    }
                    Err(error) => return Err(wal_failed(error)),
                }
                self.wal_unsynced = true;
            }
            // Sent once the WAL holds it, at the latest at the end of the
            // step ([`ConsensusHost::send_unsent`]).
            Output::Broadcast(message) => self.unsent.push(message),
            Output::ScheduleTimeout {
                timeout,
                duration_ms,
            } => self.timers.schedule(timeout, duration_ms),
            Output::BuildBlock {
                request_id,
                height,
                time_min,
                ..
            } => {
                self.send_unsent()?;
                let block = self.build_block(height, time_min);
                inputs.push_back(Input::BlockBuilt {
                    request_id,
                    block: block.map(Arc::new),
                });
            }
            Output::ValidateBlock { request_id, block } => {
                if !self.ledger.is_validated(&block.hash()) {
                    self.send_unsent()?;
                }
                let valid = match self.ledger.validate_block(&block) {
                    Ok(_) => true,
                    Err(error) => {
                        tracing::warn!(
                            height = block.header.height.0,
                            "proposed block refused: {error}"
                        );
                        false
                    }
                };
                inputs.push_back(Input::BlockValidated { request_id, valid });
            }
            Output::Decide { block, certificate } => {
                self.send_unsent()?;
                self.commit(&block, &certificate)?;
            }
            Output::NextHeightReady { height } => {
                if self.should_wait() {
                    self.waiting = Some(Waiting {
                        height,
                        since: self.clock.now(),
                    });
                } else {
                    let tip = self.ledger.tip();
                    if tip.height.0.saturating_add(1) == height.0 {
                        self.warn_if_at_signing_floor(height);
                        let input =
                            self.start_height_input(height, tip.hash, tip.time, Vec::new())?;
                        inputs.push_back(input);
                    }
                }
            }
            Output::RequestRoundState { height, round } => {
                self.network.request_round_state(height, round)
            }
            Output::RequestBlock {
                request_id,
                height,
                block_hash,
            } => self.network.request_block(request_id, height, block_hash),
            Output::Evidence(evidence) => {
                // One piece per (validator, height): a new pair of votes of
                // a misbehaviour already known is not published again.
                if !self.knows_misbehaviour(&evidence) {
                    tracing::warn!(
                        validator = evidence.validator().0,
                        height = evidence.height().0,
                        "equivocation detected; keeping the evidence for a block"
                    );
                    self.network.publish_evidence(&evidence);
                    self.keep_evidence(evidence)?;
                }
            }
            Output::Rejected(error) => {
                tracing::debug!("consensus input refused: {error}");
            }
        }
        Ok(())
    }

    fn build_block(&mut self, height: Height, time_min: Timestamp) -> Option<Block> {
        let tip = self.ledger.tip();
        if tip.height.0.saturating_add(1) != height.0 {
            return None;
        }
        let parent_certificate = if tip.height == Height::GENESIS {
            None
        } else {
            match self.ledger.store().certificate(tip.height) {
                Ok(Some(certificate)) => Some(certificate),
                Ok(None) => {
                    tracing::error!(
                        height = tip.height.0,
                        "the tip has no certificate in the store"
                    );
                    return None;
                }
                Err(error) => {
                    tracing::error!("cannot read the tip's certificate: {error}");
                    return None;
                }
            }
        };
        let oldest = tip.height.0.saturating_sub(EVIDENCE_AGE_MAX_HEIGHTS);
        self.evidence_pool
            .retain(|_, evidence| evidence.height().0 >= oldest);
        let evidence = self
            .evidence_pool
            .values()
            .filter(|evidence| evidence.height() <= height)
            .take(cairn_types::limits::BLOCK_EVIDENCE_MAX)
            .cloned()
            .collect();
        let request = BlockRequest {
            proposer: self.fee_address,
            time: self.clock.now().max(time_min),
            parent_certificate,
            evidence,
        };
        match self.ledger.build_block(request) {
            Ok(block) => Some(block),
            Err(error) => {
                tracing::error!(height = height.0, "cannot build a block: {error}");
                None
            }
        }
    }

    fn commit(&mut self, block: &Block, certificate: &CommitCertificate) -> Result<(), NodeError> {
        let height = block.header.height;
        if self.ledger.tip().height >= height {
            // Already committed (e.g. by block sync).
            return Ok(());
        }
        let summary = match self.ledger.commit(block, certificate) {
            Ok(summary) => summary,
            // Block sync (its own task) committed this height meanwhile.
            Err(_) if self.ledger.tip().height >= height => return Ok(()),
            Err(error) => {
                let hint = disk_hint(&error.to_string());
                return Err(NodeError::Consensus(format!(
                    "cannot commit block {height}: {error}{hint}"
                )));
            }
        };
        let recorded: Vec<(Height, u32)> = block
            .evidence
            .iter()
            .map(crate::ledger::evidence_key)
            .collect();
        self.evidence_pool
            .retain(|_, kept| !recorded.contains(&crate::ledger::evidence_key(kept)));
        if let Some(own) = self.own_index {
            let signed = certificate
                .signatures
                .iter()
                .any(|signature| signature.validator == own);
            self.ledger.metrics().record_own_signature(signed);
        }
        // The commit deleted the WAL of this height in the same write, and
        // being synced it made every earlier WAL append durable.
        self.wal_unsynced = false;
        if height.0 % EVIDENCE_PRUNE_INTERVAL_HEIGHTS == 0 {
            let oldest = Height(height.0.saturating_sub(EVIDENCE_AGE_MAX_HEIGHTS));
            if let Err(error) = self.ledger.store().prune_evidence_below(oldest) {
                tracing::warn!("cannot prune old evidence: {error}");
            }
            // Unsynced: synced with the next step's WAL entries.
            self.wal_unsynced = true;
            self.evidence_pool.retain(|_, kept| kept.height() >= oldest);
        }
        tracing::info!(
            height = height.0,
            round = certificate.round.0,
            hash = %summary.hash,
            transactions = summary.transactions,
            "committed"
        );
        self.network.publish_decision(certificate);
        Ok(())
    }
}

/// Kept evidence that is recent enough to propose and not yet in one of
/// the last [`EVIDENCE_AGE_MAX_HEIGHTS`] blocks (so a restarted validator
/// never records the same evidence twice).
fn pending_evidence(ledger: &Ledger) -> Result<BTreeMap<Hash, Evidence>, NodeError> {
    let store_error = |error: cairn_store::StoreError| NodeError::Consensus(error.to_string());
    let tip = ledger.tip().height.0;
    let oldest = tip.saturating_sub(EVIDENCE_AGE_MAX_HEIGHTS);
    let mut pool: BTreeMap<Hash, Evidence> = ledger
        .store()
        .evidence()
        .map_err(store_error)?
        .into_iter()
        .filter(|evidence| evidence.height().0 >= oldest)
        .map(|evidence| (evidence.hash(), evidence))
        .collect();
    if pool.is_empty() {
        return Ok(pool);
    }
    for height in oldest.max(1)..=tip {
        if let Some(block) = ledger.store().block(Height(height)).map_err(store_error)? {
            for evidence in &block.evidence {
                pool.remove(&evidence.hash());
            }
        }
    }
    Ok(pool)
}

/// The height a network input is for, if it is a consensus message.
pub fn message_height(input: &Input) -> Option<Height> {
    match input {
        Input::Proposal(signed) => Some(signed.proposal.height),
        Input::Vote(vote) => Some(vote.height),
        Input::CertificateSeen { certificate, .. } => Some(certificate.height),
        _ => None,
    }
}
