//! The deterministic simulator: validators made of the real driver, ledger
//! and in-memory store, a simulated network and clock, fault injection and
//! the checkers.
//!
//! One event queue ordered by (simulated time, sequence number) drives
//! everything; every random choice comes from one [`SplitMix64`] seeded by
//! the scenario, so a seed replays a run exactly (the trace hash folds
//! every processed event).
//!
//! The host part of each node executes the driver's outputs in order:
//! WAL appends are synced before anything after them, blocks are built
//! and validated with `cairn-state`, decisions are committed through
//! `cairn-store`. Lost messages are recovered through the driver's
//! round-state and block-by-hash requests; a node that is behind catches
//! up by asking peers, who answer with the certificate and block of its
//! height.
//!
//! Checkers, after every step: agreement, validity (certificate, parent
//! state execution), no conflicting signatures by honest validators
//! (across restarts), restored round state after a crash; at the end:
//! liveness after the heal and evidence of every equivocation seen by an
//! honest node in the chain.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    sync::Arc,
};

use cairn_consensus::{
    Driver, DriverConfig, Input, Message, Output, RequestId, RoundState, SignedProposal,
    StartHeight, Timeout, TimeoutKind, WalEntry,
};
use cairn_state::{verify_signatures, ExecutionOutcome, LedgerState};
use cairn_store::{ChainIdentity, MemoryDisk, MemoryStore, Store};
use cairn_types::{
    codec, limits::BLOCK_EVIDENCE_MAX, sha256, Address, Block, ChainId, CommitCertificate,
    ConsensusParams, Evidence, Hash, Header, Height, Keypair, Proposal, Round, Timestamp,
    Transaction, Validator, ValidatorSet, Vote, VoteType, VotingPower,
};

use crate::{
    rng::SplitMix64,
    scenario::{Behaviour, Scenario},
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
    Decided {
        certificate: CommitCertificate,
        block: Arc<Block>,
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
        }
    }
}

struct Node {
    behaviour: Behaviour,
    keypair: Keypair,
    disk: MemoryDisk,
    store: Option<MemoryStore>,
    ledger: LedgerState,
    driver: Option<Driver>,
    incarnation: u64,
    clock_skew_ms: i64,
    evidence_pool: BTreeMap<Hash, Evidence>,
    committed_evidence: BTreeSet<Hash>,
    outcomes: BTreeMap<Hash, ExecutionOutcome>,
    highest_peer_height: u64,
    last_sync_request_ms: u64,
    crash_snapshot: Option<RoundState>,
    decide_times_ms: BTreeMap<u64, u64>,
    proposals_built: u64,
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
    /// Messages sent, dropped, rejected by drivers.
    pub messages_sent: u64,
    /// Messages dropped by the network.
    pub messages_dropped: u64,
    /// Inputs refused by drivers.
    pub rejected: u64,
    /// Evidence items committed in the reference chain.
    pub evidence_committed: usize,
    /// Events processed.
    pub events: u64,
    /// Restarts whose round state was compared with the pre-crash one.
    pub restarts_checked: u64,
}

/// One simulated network of validators.
pub struct Simulation {
    scenario: Scenario,
    rng: SplitMix64,
    chain_id: ChainId,
    validators: ValidatorSet,
    params: ConsensusParams,
    identity: ChainIdentity,
    genesis_state: LedgerState,
    accounts: Vec<Keypair>,
    nodes: Vec<Node>,
    queue: BTreeMap<(u64, u64), Event>,
    sequence: u64,
    now_ms: u64,
    partition: Option<Vec<bool>>,
    trace: u64,
    // Checkers' memory.
    decisions: BTreeMap<u64, Hash>,
    signed: BTreeMap<(usize, u64, u32, u8), Option<Hash>>,
    evidence_seen: BTreeMap<Hash, (usize, u64)>,
    heights_at_heal: Option<Vec<u64>>,
    report: Report,
    tracing: bool,
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
        let keypairs: Vec<Keypair> = (0..scenario.validators)
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
                .enumerate()
                .map(|(i, keypair)| Validator {
                    name: format!("validator-{i}"),
                    public_key: keypair.public_key(),
                    power: VotingPower(10),
                })
                .collect(),
        )
        .unwrap_or_else(|error| panic!("validator set: {error}"));
        let accounts: Vec<Keypair> = (0..ACCOUNTS)
            .map(|i| Keypair::from_seed(&[0x40 + i as u8; 32]))
            .collect();
        let balances: Vec<(Address, u64)> = accounts
            .iter()
            .map(|k| (k.address(), 1_000_000_000))
            .collect();
        let genesis_state = LedgerState::from_genesis(&balances)
            .unwrap_or_else(|error| panic!("genesis state: {error}"));
        let identity = ChainIdentity {
            chain_id: chain_id.clone(),
            genesis_hash: sha256(b"cairn simulated genesis"),
        };
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
        let mut nodes = Vec::new();
        for (index, keypair) in keypairs.into_iter().enumerate() {
            let skew_range = scenario.clock_skew_max_ms;
            let clock_skew_ms = rng.between(0, 2 * skew_range) as i64 - skew_range as i64;
            let disk = MemoryDisk::new();
            let store = MemoryStore::open(&disk, &identity, &genesis_state)
                .unwrap_or_else(|error| panic!("store: {error}"));
            nodes.push(Node {
                behaviour: scenario.behaviours[index],
                keypair,
                disk,
                store: Some(store),
                ledger: genesis_state.clone(),
                driver: None,
                incarnation: 0,
                clock_skew_ms,
                evidence_pool: BTreeMap::new(),
                committed_evidence: BTreeSet::new(),
                outcomes: BTreeMap::new(),
                highest_peer_height: 0,
                last_sync_request_ms: 0,
                crash_snapshot: None,
                decide_times_ms: BTreeMap::new(),
                proposals_built: 0,
            });
        }
        let report = Report {
            seed: scenario.seed,
            ..Report::default()
        };
        Simulation {
            rng,
            chain_id,
            validators,
            params,
            identity,
            genesis_state,
            accounts,
            nodes,
            queue: BTreeMap::new(),
            sequence: 0,
            now_ms: 0,
            partition: None,
            trace: 0xCBF2_9CE4_8422_2325,
            decisions: BTreeMap::new(),
            signed: BTreeMap::new(),
            evidence_seen: BTreeMap::new(),
            heights_at_heal: None,
            report,
            scenario,
            tracing: std::env::var_os("CAIRN_SIM_TRACE").is_some(),
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

    fn local_time(&self, node: usize) -> Timestamp {
        let local = (GENESIS_TIME_MS + self.now_ms) as i64 + self.nodes[node].clock_skew_ms;
        Timestamp(local.max(0) as u64)
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
        for node in 0..self.nodes.len() {
            self.boot(node);
        }
        let deadline = self.scenario.fault_phase_ms + self.scenario.liveness_budget_ms;
        while let Some(((at_ms, _), event)) = self.queue.pop_first() {
            self.report.events += 1;
            if at_ms > deadline || self.report.events > EVENTS_MAX {
                self.now_ms = at_ms.min(deadline);
                break;
            }
            self.now_ms = at_ms;
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

    fn heights(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .map(|node| {
                node.store
                    .as_ref()
                    .map_or(0, |store| store.latest_height().0)
            })
            .collect()
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
            .filter(|node| self.honest(*node))
            .all(|node| heights[node] >= target[node]);
        honest_done && self.evidence_missing().is_empty()
    }

    fn evidence_missing(&self) -> Vec<Hash> {
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
                        if self.honest(node) && heights[node] < target[node] {
                            self.violation(format!(
                                "liveness: honest node {node} reached height {} of {} within {} ms after the heal",
                                heights[node], target[node], self.scenario.liveness_budget_ms
                            ));
                        }
                    }
                }
            }
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
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Deliver { to, from, message } => self.deliver(to, from, *message),
            Event::Timer {
                node,
                incarnation,
                timeout,
            } => {
                if self.nodes[node].incarnation != incarnation || self.nodes[node].driver.is_none()
                {
                    return;
                }
                if self.misbehaving(node) == Some(Behaviour::Amnesiac)
                    && timeout.kind == TimeoutKind::Round(cairn_consensus::RoundTimeout::Precommit)
                {
                    // Forget every lock and own vote, then go on.
                    self.restart_driver(node, false);
                    return;
                }
                self.feed(node, Input::TimeoutElapsed(timeout));
            }
            Event::Crash { node } => self.crash(node),
            Event::Restart { node } => {
                if self.nodes[node].driver.is_none() {
                    self.boot(node);
                }
            }
            Event::PartitionStart { sides } => self.partition = Some(sides),
            Event::PartitionEnd => self.partition = None,
        }
    }

    // ----- nodes -------------------------------------------------------------

    fn crash(&mut self, node: usize) {
        let Some(driver) = self.nodes[node].driver.take() else {
            return;
        };
        self.nodes[node].crash_snapshot = Some(driver.round_state().clone());
        self.nodes[node].disk.crash();
        self.nodes[node].store = None;
        self.nodes[node].incarnation += 1;
        self.nodes[node].outcomes.clear();
    }

    /// Starts (or restarts after a crash) a node from its disk.
    fn boot(&mut self, node: usize) {
        let store =
            match MemoryStore::open(&self.nodes[node].disk, &self.identity, &self.genesis_state) {
                Ok(store) => store,
                Err(error) => {
                    self.violation(format!("node {node} cannot reopen its store: {error}"));
                    return;
                }
            };
        let ledger = match store.load_state() {
            Ok(ledger) => ledger,
            Err(error) => {
                self.violation(format!("node {node} cannot load its state: {error}"));
                return;
            }
        };
        let mut committed = BTreeSet::new();
        for height in 1..=store.latest_height().0 {
            if let Ok(Some(block)) = store.block(Height(height)) {
                committed.extend(block.evidence.iter().map(Evidence::hash));
            }
        }
        let state = &mut self.nodes[node];
        state.ledger = ledger;
        state.committed_evidence = committed;
        state.store = Some(store);
        self.restart_driver(node, true);
    }

    /// A fresh driver for the node's next height, replaying the WAL when
    /// `with_wal` (an amnesiac passes false).
    fn restart_driver(&mut self, node: usize, with_wal: bool) {
        let keypair = self.nodes[node].keypair.clone();
        let mut driver = match Driver::new(self.driver_config(), Some(keypair)) {
            Ok(driver) => driver,
            Err(error) => {
                self.violation(format!("driver: {error}"));
                return;
            }
        };
        if self.scenario.ignore_lock && self.honest(node) {
            driver.set_fault_ignore_lock(true);
        }
        self.nodes[node].incarnation += 1;
        self.nodes[node].driver = Some(driver);
        let Some(start) = self.start_of_next_height(node, with_wal) else {
            return;
        };
        let height = start.height;
        self.feed(node, Input::StartHeight(start));
        if let Some(snapshot) = self.nodes[node].crash_snapshot.take() {
            if with_wal && snapshot.height == height && self.honest(node) {
                let Some(driver) = self.nodes[node].driver.as_ref() else {
                    return;
                };
                let now = driver.round_state();
                self.report.restarts_checked += 1;
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
            }
        }
    }

    fn start_of_next_height(&mut self, node: usize, with_wal: bool) -> Option<StartHeight> {
        let store = self.nodes[node].store.as_ref()?;
        let latest = store.latest_height();
        let height = Height(latest.0 + 1);
        let parent_hash = store.latest_block_hash();
        let parent_time = match store.header(latest) {
            Ok(Some(header)) => header.time,
            _ => Timestamp(GENESIS_TIME_MS),
        };
        let mut wal = Vec::new();
        if with_wal {
            match store.wal_entries(height) {
                Ok(entries) => {
                    for bytes in entries {
                        match WalEntry::from_bytes(&bytes) {
                            Ok(entry) => wal.push(entry),
                            Err(error) => {
                                self.violation(format!("node {node}: bad WAL entry: {error}"));
                                return None;
                            }
                        }
                    }
                }
                Err(error) => {
                    self.violation(format!("node {node}: cannot read its WAL: {error}"));
                    return None;
                }
            }
        }
        Some(StartHeight {
            height,
            parent_hash,
            parent_time,
            wal,
        })
    }

    /// Feeds one input and executes the outputs in order; answers of the
    /// host (built, validated) are fed back in the same step.
    fn feed(&mut self, node: usize, input: Input) {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let now = self.local_time(node);
            let Some(driver) = self.nodes[node].driver.as_mut() else {
                return;
            };
            let mut outputs = driver.process(Input::Time(now));
            outputs.extend(driver.process(input));
            for output in outputs {
                if self.tracing {
                    let text = format!("{output:?}");
                    eprintln!(
                        "{:>6} ms node {node}: {}",
                        self.now_ms,
                        &text[..text.len().min(300)]
                    );
                }
                if self.nodes[node].driver.is_none() {
                    return;
                }
                self.execute(node, output, &mut inputs);
            }
        }
    }

    fn execute(&mut self, node: usize, output: Output, inputs: &mut VecDeque<Input>) {
        match output {
            Output::Persist(entry) => {
                if self.honest(node) {
                    self.check_signed_entry(node, &entry);
                }
                let Some(store) = self.nodes[node].store.as_ref() else {
                    return;
                };
                if let Err(error) = store.wal_append(entry.height(), &entry.to_bytes()) {
                    self.violation(format!("node {node}: WAL append failed: {error}"));
                }
            }
            Output::Broadcast(message) => self.broadcast_consensus(node, message),
            Output::ScheduleTimeout {
                timeout,
                duration_ms,
            } => {
                let incarnation = self.nodes[node].incarnation;
                self.schedule(
                    self.now_ms + duration_ms,
                    Event::Timer {
                        node,
                        incarnation,
                        timeout,
                    },
                );
            }
            Output::BuildBlock {
                request_id,
                height,
                time_min,
                ..
            } => {
                let block = self.build_block(node, height, time_min);
                inputs.push_back(Input::BlockBuilt {
                    request_id,
                    block: block.map(Arc::new),
                });
            }
            Output::ValidateBlock { request_id, block } => {
                let valid = self.validate_block(node, &block);
                inputs.push_back(Input::BlockValidated { request_id, valid });
            }
            Output::Decide { block, certificate } => self.commit(node, &block, &certificate),
            Output::NextHeightReady { .. } => {
                if let Some(start) = self.start_of_next_height(node, false) {
                    let height = start.height;
                    inputs.push_back(Input::StartHeight(start));
                    // Re-gossip evidence not yet in a block.
                    let pool: Vec<Evidence> =
                        self.nodes[node].evidence_pool.values().cloned().collect();
                    for evidence in pool {
                        self.broadcast(node, NetMessage::Evidence(evidence));
                    }
                    if self.nodes[node].highest_peer_height > height.0 {
                        self.broadcast(
                            node,
                            NetMessage::RoundStateRequest {
                                height,
                                round: Round::ZERO,
                            },
                        );
                    }
                }
            }
            Output::RequestRoundState { height, round } => {
                self.broadcast(node, NetMessage::RoundStateRequest { height, round });
            }
            Output::RequestBlock {
                request_id,
                block_hash,
                ..
            } => self.broadcast(
                node,
                NetMessage::BlockRequest {
                    request_id,
                    block_hash,
                },
            ),
            Output::Evidence(evidence) => {
                let hash = evidence.hash();
                if self.honest(node) {
                    self.evidence_seen
                        .entry(hash)
                        .or_insert((node, self.now_ms));
                }
                if !self.nodes[node].committed_evidence.contains(&hash) {
                    self.nodes[node]
                        .evidence_pool
                        .insert(hash, evidence.clone());
                }
                self.broadcast(node, NetMessage::Evidence(evidence));
            }
            Output::Rejected(_) => self.report.rejected += 1,
        }
    }

    // ----- host services -----------------------------------------------------

    fn build_block(&mut self, node: usize, height: Height, time_min: Timestamp) -> Option<Block> {
        let bad = self.misbehaving(node) == Some(Behaviour::BadProposer);
        let state = &self.nodes[node];
        let store = state.store.as_ref()?;
        if store.latest_height().0 + 1 != height.0 {
            return None;
        }
        let parent_hash = store.latest_block_hash();
        let parent_certificate = if height.0 > 1 {
            store.certificate(Height(height.0 - 1)).ok().flatten()
        } else {
            None
        };
        let proposer = state.keypair.address();
        let mut transactions = Vec::new();
        for i in 0..self.scenario.transactions_per_block {
            let sender = &self.accounts[(height.0 as usize + i) % ACCOUNTS];
            let recipient = self.accounts[(height.0 as usize + i + 1) % ACCOUNTS].address();
            let transaction = Transaction {
                chain_id: self.chain_id.clone(),
                sender: sender.public_key(),
                recipient,
                amount: 1 + (height.0 % 7),
                fee: 1,
                nonce: state.ledger.next_nonce(&sender.address()),
                memo: String::new(),
            };
            transactions.push(transaction.sign(sender));
        }
        let outcome = match state
            .ledger
            .execute(&self.chain_id, proposer, &transactions)
        {
            Ok(outcome) => outcome,
            Err(_) => {
                transactions.clear();
                state
                    .ledger
                    .execute(&self.chain_id, proposer, &transactions)
                    .ok()?
            }
        };
        let evidence: Vec<Evidence> = state
            .evidence_pool
            .iter()
            .filter(|(hash, evidence)| {
                !state.committed_evidence.contains(*hash) && evidence.height() <= height
            })
            .map(|(_, evidence)| evidence.clone())
            .take(BLOCK_EVIDENCE_MAX)
            .collect();
        let mut time = time_min.max(self.local_time(node));
        let mut state_root = outcome.state_root();
        let proposals_built = state.proposals_built;
        if bad {
            if proposals_built % 2 == 0 {
                time = Timestamp(time.0 + self.params.clock_drift_max_ms + 60_000);
            } else {
                state_root = sha256(b"not the state root");
            }
        }
        let header = Header {
            chain_id: self.chain_id.clone(),
            height,
            time,
            parent_hash,
            proposer,
            transactions_root: Block::transactions_root_of(&transactions),
            state_root,
            parent_certificate_hash: Block::parent_certificate_hash_of(parent_certificate.as_ref()),
            evidence_hash: Block::evidence_hash_of(&evidence),
            validator_set_hash: self.validators.hash(),
        };
        let block = Block {
            header,
            transactions,
            parent_certificate,
            evidence,
        };
        let node_state = &mut self.nodes[node];
        node_state.proposals_built += 1;
        node_state.outcomes.insert(block.hash(), outcome);
        Some(block)
    }

    fn validate_block(&mut self, node: usize, block: &Block) -> bool {
        let state = &self.nodes[node];
        let mut seen = BTreeSet::new();
        for evidence in &block.evidence {
            let hash = evidence.hash();
            if state.committed_evidence.contains(&hash) || !seen.insert(hash) {
                return false;
            }
        }
        if verify_signatures(&block.transactions).is_err() {
            return false;
        }
        match state.ledger.execute_block(&self.chain_id, block) {
            Ok(outcome) => {
                self.nodes[node].outcomes.insert(block.hash(), outcome);
                true
            }
            Err(_) => false,
        }
    }

    fn commit(&mut self, node: usize, block: &Block, certificate: &CommitCertificate) {
        let height = block.height().0;
        let hash = block.hash();
        let honest = self.honest(node);
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
                }
            }
        }
        // Validity: certificate, parent, execution on the parent state.
        let Some(store) = self.nodes[node].store.as_ref() else {
            return;
        };
        let mut problems = Vec::new();
        if let Err(error) = certificate.verify(&self.chain_id, &self.validators) {
            problems.push(format!("certificate: {error}"));
        }
        if certificate.block_hash != hash || certificate.height != block.height() {
            problems.push("certificate is for another block".into());
        }
        if store.latest_height().0 + 1 != height
            || block.header.parent_hash != store.latest_block_hash()
        {
            problems.push("not the child of the committed tip".into());
        }
        if let Err(error) = block.check_structure() {
            problems.push(format!("structure: {error}"));
        }
        let outcome = match self.nodes[node].outcomes.remove(&hash) {
            Some(outcome) => Some(outcome),
            None => match verify_signatures(&block.transactions)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    self.nodes[node]
                        .ledger
                        .execute_block(&self.chain_id, block)
                        .map_err(|e| e.to_string())
                }) {
                Ok(outcome) => Some(outcome),
                Err(error) => {
                    problems.push(format!("execution: {error}"));
                    None
                }
            },
        };
        if !problems.is_empty() || outcome.is_none() {
            if honest {
                self.violation(format!(
                    "validity: node {node} decided an invalid block at height {height}: {}",
                    problems.join("; ")
                ));
            }
            return;
        }
        let Some(outcome) = outcome else { return };
        let state = &mut self.nodes[node];
        let Some(store) = state.store.as_ref() else {
            return;
        };
        if let Err(error) = store.commit_block(block, certificate, &outcome) {
            self.violation(format!("node {node}: commit failed: {error}"));
            return;
        }
        if let Err(error) = state.ledger.apply(&outcome) {
            self.violation(format!("node {node}: apply failed: {error}"));
            return;
        }
        let _ = store.wal_prune_below(Height(height + 1));
        for evidence in &block.evidence {
            let evidence_hash = evidence.hash();
            state.committed_evidence.insert(evidence_hash);
            state.evidence_pool.remove(&evidence_hash);
        }
        state.outcomes.clear();
        state.decide_times_ms.insert(height, self.now_ms);
        self.trace = fold(fold(self.trace, node as u64), height);
    }

    /// No honest validator signs two different messages for one slot.
    fn check_signed_entry(&mut self, node: usize, entry: &WalEntry) {
        let (height, round, kind, value) = match entry {
            WalEntry::Vote(vote) => (
                vote.height.0,
                vote.round.0,
                match vote.vote_type {
                    VoteType::Prevote => 1,
                    VoteType::Precommit => 2,
                },
                vote.block_hash,
            ),
            WalEntry::Proposal(proposal) => (
                proposal.height.0,
                proposal.round.0,
                0,
                Some(proposal.block_hash),
            ),
            _ => return,
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
        if from == to || self.nodes[from].driver.is_none() {
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
            if self.rng.chance(self.scenario.drop_per_mille) {
                self.report.messages_dropped += 1;
                return;
            }
            if self.rng.chance(self.scenario.duplicate_per_mille) {
                let delay = self.rng.between(low, high);
                self.schedule(
                    self.now_ms + delay,
                    Event::Deliver {
                        to,
                        from,
                        message: Box::new(message.clone()),
                    },
                );
            }
        }
        let delay = self.rng.between(low, high);
        self.schedule(
            self.now_ms + delay,
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

    /// Sends a consensus message, the way the node's behaviour dictates.
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
            _ => self.broadcast(from, NetMessage::Consensus(message)),
        }
    }

    fn conflicting_proposal(&mut self, from: usize, signed: &SignedProposal) -> Message {
        let mut block = (*signed.block).clone();
        block.header.time = Timestamp(block.header.time.0 + 1 + self.rng.below(5));
        let hash = block.hash();
        if let Some(outcome) = self.nodes[from]
            .outcomes
            .get(&signed.proposal.block_hash)
            .cloned()
        {
            self.nodes[from].outcomes.insert(hash, outcome);
        }
        let proposal = Proposal::new_signed(
            &self.chain_id,
            signed.proposal.height,
            signed.proposal.round,
            signed.proposal.valid_round,
            hash,
            signed.proposal.proposer,
            &self.nodes[from].keypair,
        );
        Message::Proposal(SignedProposal {
            proposal,
            block: Arc::new(block),
        })
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
        if self.nodes[to].driver.is_none() {
            return;
        }
        let silent = self.misbehaving(to) == Some(Behaviour::Silent);
        if self.tracing {
            let text = format!("{message:?}");
            eprintln!(
                "{:>6} ms node {to} <- {from}: {}",
                self.now_ms,
                &text[..text.len().min(160)]
            );
        }
        let my_height = self.nodes[to].driver.as_ref().map_or(0, |d| d.height().0);
        match message {
            NetMessage::Consensus(message) => {
                self.note_peer_height(to, from, message.height().0, my_height);
                let input = match message {
                    Message::Proposal(signed) => Input::Proposal(signed),
                    Message::Vote(vote) => Input::Vote(vote),
                };
                self.feed(to, input);
            }
            NetMessage::Raw(bytes) => {
                match codec::decode::<Message>("consensus message", &bytes, MESSAGE_BYTES_MAX) {
                    Ok(Message::Vote(vote)) => self.feed(to, Input::Vote(vote)),
                    Ok(Message::Proposal(signed)) => self.feed(to, Input::Proposal(signed)),
                    Err(_) => self.report.rejected += 1,
                }
            }
            NetMessage::RoundStateRequest { height, round } => {
                if silent {
                    return;
                }
                if height.0 == my_height {
                    let messages = self.nodes[to]
                        .driver
                        .as_ref()
                        .map(|driver| driver.round_messages(height, round))
                        .unwrap_or_default();
                    for message in messages {
                        self.send(to, from, NetMessage::Consensus(message));
                    }
                } else if height.0 < my_height {
                    let Some(store) = self.nodes[to].store.as_ref() else {
                        return;
                    };
                    if let (Ok(Some(certificate)), Ok(Some(block))) =
                        (store.certificate(height), store.block(height))
                    {
                        self.send(
                            to,
                            from,
                            NetMessage::Decided {
                                certificate,
                                block: Arc::new(block),
                            },
                        );
                    }
                }
            }
            NetMessage::BlockRequest {
                request_id,
                block_hash,
            } => {
                if silent {
                    return;
                }
                let held = self.nodes[to]
                    .driver
                    .as_ref()
                    .and_then(|d| d.block(&block_hash));
                let block = held.or_else(|| {
                    self.nodes[to]
                        .store
                        .as_ref()
                        .and_then(|store| store.block_by_hash(&block_hash).ok().flatten())
                        .map(Arc::new)
                });
                if let Some(block) = block {
                    self.send(to, from, NetMessage::BlockResponse { request_id, block });
                }
            }
            NetMessage::BlockResponse { request_id, block } => {
                self.feed(to, Input::BlockReceived { request_id, block });
            }
            NetMessage::Decided { certificate, block } => {
                let height = certificate.height.0;
                self.note_peer_height(to, from, height + 1, my_height);
                if height == my_height {
                    self.feed(
                        to,
                        Input::CertificateSeen {
                            certificate,
                            block: Some(block),
                        },
                    );
                }
            }
            NetMessage::Evidence(evidence) => {
                let hash = evidence.hash();
                if self.nodes[to].committed_evidence.contains(&hash)
                    || self.nodes[to].evidence_pool.contains_key(&hash)
                {
                    return;
                }
                if evidence.verify(&self.chain_id, &self.validators).is_ok() {
                    self.nodes[to].evidence_pool.insert(hash, evidence);
                }
            }
        }
    }

    /// Remembers how far peers are; asks for the missing heights when this
    /// node is behind.
    fn note_peer_height(&mut self, node: usize, from: usize, peer_height: u64, my_height: u64) {
        let state = &mut self.nodes[node];
        state.highest_peer_height = state.highest_peer_height.max(peer_height);
        if peer_height > my_height && self.now_ms >= state.last_sync_request_ms + 20 {
            state.last_sync_request_ms = self.now_ms;
            self.send(
                node,
                from,
                NetMessage::RoundStateRequest {
                    height: Height(my_height),
                    round: Round::ZERO,
                },
            );
        }
    }
}

/// Runs `scenario` and returns its report.
pub fn run(scenario: Scenario) -> Report {
    Simulation::new(scenario).run()
}
