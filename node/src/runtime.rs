//! The node's tokio runtime around the consensus host: the p2p event
//! dispatcher with its gossip gate, the transaction gossip batcher, the
//! outbox that turns the host's sends into `cairn-p2p` calls, tokio
//! timers, and the consensus loop. Block sync runs beside it
//! ([`crate::block_sync`]).
//!
//! Tasks and the bounded channels between them:
//!
//! ```text
//! p2p events ──dispatcher──► transactions: Ledger::submit (blocking pool)
//!                         ├─► sync requests: answered from the store
//!                         └─► gossip gate ──► consensus inbox ──► consensus loop
//!                               │ (CONSENSUS_INBOX_MAX events,
//!                               │  CONSENSUS_INBOX_PROPOSAL_BYTES_MAX of proposals)
//!                               └─► compact proposals: assembly queue (ASSEMBLY_QUEUE_MAX)
//!                                   ──rebuilt from the mempool and peers──► consensus inbox
//! RPC submit ──► gossip queue (GOSSIP_QUEUE_MAX) ──batcher──► p2p publish
//! consensus loop ──► outbox (OUTBOX_MAX, OUTBOX_BYTES_MAX) ──sender──► p2p publish / requests
//!                                                     └─ answers ──► consensus inbox
//! consensus loop ──SyncHandle──► block sync task ──Synced──► consensus inbox
//! ```
//!
//! The consensus loop runs on its own thread (a current-thread tokio
//! runtime), since the host blocks on fsyncs and block execution; every
//! other task runs on the main runtime. It never waits on the network.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::{Duration, Instant},
};

use cairn_consensus::{Input, Message, ProposerSchedule, RequestId, SignedProposal, Timeout};
use cairn_p2p::{
    Client, Event, PeerId, RoundState, RoundStateRequest, RoundStateResponder, SyncBlock,
    SyncRequest, SyncResponder, SyncResponse, Topic, Verdict,
};
use cairn_types::{
    codec,
    limits::{CERTIFICATE_BYTES_MAX, EVIDENCE_BYTES_MAX, TRANSACTION_BYTES_MAX},
    Block, CommitCertificate, Evidence, Hash, Height, Round, Timestamp, Vote,
};
use tokio::sync::mpsc;

use crate::{
    backend::NetworkView,
    block_sync::{serve_sync, SyncHandle},
    compact_proposals::{
        check_signed_proposal, AssemblyJob, CompactProposal, ConsensusGossip,
        ASSEMBLY_BUDGET_BYTES_PER_TRANSACTION, ASSEMBLY_QUEUE_MAX,
    },
    host::{message_height, ConsensusHost, HostClock, HostNetwork, HostTimers},
    ledger::Ledger,
    rpc::PeerView,
    shutdown::Shutdown,
    NodeError,
};

/// Most events waiting for the consensus loop.
pub const CONSENSUS_INBOX_MAX: usize = 8_192;
/// Most sends of the host waiting for the network.
pub const OUTBOX_MAX: usize = 4_096;
/// Most accepted transactions waiting to be gossiped.
pub const GOSSIP_QUEUE_MAX: usize = 65_536;
/// Most transactions in one gossip batch.
pub const GOSSIP_BATCH_TRANSACTIONS_MAX: usize = 2_048;
/// Shortest spacing of two gossip batches of one node (the longest a
/// transaction waits for its batch under load).
pub const GOSSIP_BATCH_DELAY_MS: u64 = 5;
/// Bytes of one encoded gossip batch, at most.
pub const GOSSIP_BATCH_BYTES_MAX: usize =
    GOSSIP_BATCH_TRANSACTIONS_MAX * (TRANSACTION_BYTES_MAX + 4) + 16;
/// Bytes of one encoded consensus message (a proposal carries its block).
pub const CONSENSUS_MESSAGE_BYTES_MAX: usize = cairn_types::limits::BLOCK_BYTES_MAX + 4_096;
/// Gossiped transaction batches waiting for admission; beyond it a batch
/// is dropped (ignored, not held against its sender), so consensus
/// messages never queue behind transactions.
pub const GOSSIP_ADMISSION_QUEUE_MAX: usize = 256;
/// Gossiped batches waiting for admission are admitted together up to
/// about this many bytes (some 5,000 transfers of 200 bytes).
pub const GOSSIP_ADMISSION_COALESCE_BYTES_MAX: usize = 1024 * 1024;
/// Most round-state and block fetches from peers in flight at once.
pub const FETCHES_IN_FLIGHT_MAX: usize = 16;
/// Most timers pending at once.
pub const TIMERS_MAX: usize = 1_024;
/// How often the consensus loop checks a held height and whether it
/// should sync.
pub const POLL_INTERVAL_MS: u64 = 5;
/// How often a node asks its peers for their tip while its height does
/// not move.
pub const SYNC_CHECK_INTERVAL_MS: u64 = 3_000;
/// Peers asked, one after another, for a round's messages or a block.
pub const FETCH_PEERS_MAX: usize = 8;

/// The wall clock.
pub struct SystemClock;

impl HostClock for SystemClock {
    fn now(&self) -> Timestamp {
        system_now()
    }
}

/// The wall clock as a [`Timestamp`].
pub fn system_now() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    Timestamp(millis)
}

/// What reaches the consensus loop.
#[derive(Debug)]
pub enum HostEvent {
    /// An input for the driver (proposal, vote, certificate, block).
    Input(Input),
    /// Verified evidence from a peer.
    Evidence(Evidence),
    /// A peer asks for a round's proposal and votes.
    RoundStateRequest {
        /// The request.
        request: RoundStateRequest,
        /// Where to answer.
        reply: RoundStateResponder,
    },
    /// A peer asks for a block by hash (committed or of the current height).
    BlockByHash {
        /// The hash.
        hash: Hash,
        /// Where to answer.
        reply: SyncResponder,
    },
    /// Block sync moved the tip: restart consensus there if it is behind.
    Synced,
    /// A proposal or vote from a round-state answer: checked like gossip
    /// ([`check_consensus_message`]) before the driver sees it.
    Unverified(Input),
    /// An input holding part of the inbox's byte budget until handled.
    Budgeted(Input, tokio::sync::OwnedSemaphorePermit),
}

/// A send of the host, queued for the network task.
#[derive(Debug)]
enum OutboxItem {
    Publish {
        topic: Topic,
        data: Vec<u8>,
        /// This message's share of [`OUTBOX_BYTES_MAX`], given back once sent.
        _budget: tokio::sync::OwnedSemaphorePermit,
    },
    /// A proposal, made compact by the sender task (hashing its
    /// transactions is kept off the consensus thread).
    Proposal {
        signed: SignedProposal,
        /// Its share of [`OUTBOX_BYTES_MAX`], given back once sent.
        _budget: tokio::sync::OwnedSemaphorePermit,
    },
    RoundState {
        height: Height,
        round: Round,
    },
    Block {
        request_id: RequestId,
        block_hash: Hash,
    },
}

/// Most bytes of messages waiting in the outbox, beside its count bound
/// [`OUTBOX_MAX`] (a proposal carries its block, and the driver re-sends
/// its own messages while a round makes no progress).
pub const OUTBOX_BYTES_MAX: usize = 128 * 1024 * 1024;

/// [`HostNetwork`] over a bounded queue to [`run_outbox`].
pub struct P2pOutbox {
    queue: mpsc::Sender<OutboxItem>,
    /// KiB of [`OUTBOX_BYTES_MAX`] still free.
    bytes: Arc<tokio::sync::Semaphore>,
}

impl P2pOutbox {
    fn push(&self, item: OutboxItem) {
        if let Err(error) = self.queue.try_send(item) {
            tracing::warn!("network outbox full ({OUTBOX_MAX}); dropping a send: {error}");
        }
    }

    /// Queues a publish if its bytes fit the budget; a dropped one is sent
    /// again by the driver's re-broadcast.
    fn publish(&self, topic: Topic, data: Vec<u8>) {
        if let Some(budget) = self.budget(data.len()) {
            self.push(OutboxItem::Publish {
                topic,
                data,
                _budget: budget,
            });
        }
    }

    /// `bytes` of [`OUTBOX_BYTES_MAX`], if free.
    fn budget(&self, bytes: usize) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let kib = u32::try_from(bytes / 1024).unwrap_or(u32::MAX).max(1);
        match Arc::clone(&self.bytes).try_acquire_many_owned(kib) {
            Ok(budget) => Some(budget),
            Err(_) => {
                tracing::warn!(
                    "network outbox holds {} MiB, its limit; dropping a send",
                    OUTBOX_BYTES_MAX >> 20
                );
                None
            }
        }
    }
}

impl HostNetwork for P2pOutbox {
    fn broadcast(&mut self, message: &Message) {
        match message {
            Message::Proposal(signed) => {
                // The compact form: the header and 32 bytes a transaction.
                let bytes = signed.block.transactions.len() * 32 + 4_096;
                if let Some(budget) = self.budget(bytes) {
                    self.push(OutboxItem::Proposal {
                        signed: signed.clone(),
                        _budget: budget,
                    });
                }
            }
            Message::Vote(vote) => self.publish(
                Topic::Consensus,
                codec::encode(&ConsensusGossip::Vote(vote.clone())),
            ),
        }
    }

    fn publish_evidence(&mut self, evidence: &Evidence) {
        self.publish(Topic::Evidence, codec::encode(evidence));
    }

    fn publish_decision(&mut self, certificate: &CommitCertificate) {
        self.publish(Topic::Decisions, codec::encode(certificate));
    }

    fn request_round_state(&mut self, height: Height, round: Round) {
        self.push(OutboxItem::RoundState { height, round });
    }

    fn request_block(&mut self, request_id: RequestId, _height: Height, block_hash: Hash) {
        self.push(OutboxItem::Block {
            request_id,
            block_hash,
        });
    }
}

/// [`HostTimers`] kept in a map by deadline; the consensus loop sleeps
/// until the earliest.
#[derive(Default)]
pub struct TokioTimers {
    timers: BTreeMap<(Instant, u64), Timeout>,
    sequence: u64,
}

impl TokioTimers {
    /// The earliest deadline, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.keys().next().map(|(deadline, _)| *deadline)
    }

    /// Removes and returns the timers due at `now`, earliest first.
    pub fn pop_due(&mut self, now: Instant) -> Vec<Timeout> {
        let mut due = Vec::new();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        due
    }
}

impl HostTimers for TokioTimers {
    fn schedule(&mut self, timeout: Timeout, duration_ms: u64) {
        if self.timers.len() >= TIMERS_MAX {
            // The timer of the lowest height and round belongs to a round
            // long gone.
            let stale = self
                .timers
                .iter()
                .min_by_key(|(_, timer)| (timer.height, timer.round))
                .map(|(key, _)| *key);
            if let Some(key) = stale {
                self.timers.remove(&key);
            }
        }
        self.sequence = self.sequence.wrapping_add(1);
        let deadline = Instant::now() + Duration::from_millis(duration_ms);
        self.timers.insert((deadline, self.sequence), timeout);
    }

    fn clear(&mut self) {
        self.timers.clear();
    }
}

/// The host as the runtime uses it.
pub type NodeHost = ConsensusHost<P2pOutbox, TokioTimers, SystemClock>;

/// The channels and handles of a running node's network side.
pub struct NetworkParts {
    /// The p2p client.
    pub client: Client,
    /// Peers and sync status for the RPC.
    pub view: Arc<NetworkView>,
}

/// Creates the outbox queue for a host, and spawns its sender task.
pub fn spawn_outbox(client: Client, inbox: mpsc::Sender<HostEvent>) -> P2pOutbox {
    let (queue, items) = mpsc::channel(OUTBOX_MAX);
    tokio::spawn(run_outbox(client, items, inbox));
    P2pOutbox {
        queue,
        bytes: Arc::new(tokio::sync::Semaphore::new(OUTBOX_BYTES_MAX / 1024)),
    }
}

async fn run_outbox(
    client: Client,
    mut items: mpsc::Receiver<OutboxItem>,
    inbox: mpsc::Sender<HostEvent>,
) {
    let fetches = Arc::new(tokio::sync::Semaphore::new(FETCHES_IN_FLIGHT_MAX));
    while let Some(item) = items.recv().await {
        match item {
            OutboxItem::Publish { topic, data, .. } => {
                if let Err(error) = client.publish(topic, data).await {
                    tracing::debug!(?topic, "publish failed: {error}");
                }
            }
            OutboxItem::Proposal { signed, .. } => {
                let compact =
                    ConsensusGossip::CompactProposal(Box::new(CompactProposal::of(&signed)));
                if let Err(error) = client
                    .publish(Topic::Consensus, codec::encode(&compact))
                    .await
                {
                    tracing::debug!("publishing a proposal failed: {error}");
                }
            }
            OutboxItem::RoundState { height, round } => {
                // A request that finds every slot taken is dropped: the
                // driver asks again on its next rebroadcast.
                let Ok(permit) = Arc::clone(&fetches).try_acquire_owned() else {
                    continue;
                };
                let client = client.clone();
                let inbox = inbox.clone();
                tokio::spawn(async move {
                    fetch_round_state(client, inbox, height, round).await;
                    drop(permit);
                });
            }
            OutboxItem::Block {
                request_id,
                block_hash,
            } => {
                let Ok(permit) = Arc::clone(&fetches).try_acquire_owned() else {
                    continue;
                };
                let client = client.clone();
                let inbox = inbox.clone();
                tokio::spawn(async move {
                    fetch_block(client, inbox, request_id, block_hash).await;
                    drop(permit);
                });
            }
        }
    }
}

async fn fetch_round_state(
    client: Client,
    inbox: mpsc::Sender<HostEvent>,
    height: Height,
    round: Round,
) {
    let Ok(peers) = client.peers().await else {
        return;
    };
    for peer in peers.into_iter().take(FETCH_PEERS_MAX) {
        let request = RoundStateRequest { height, round };
        let Ok(state) = client.request_round_state(peer, request).await else {
            continue;
        };
        for input in decode_round_state(&state) {
            if inbox.try_send(HostEvent::Unverified(input)).is_err() {
                return;
            }
        }
    }
}

/// The driver inputs carried by a round-state answer; undecodable parts
/// are skipped (the driver checks every signature).
fn decode_round_state(state: &RoundState) -> Vec<Input> {
    let mut inputs = Vec::new();
    if let Some(bytes) = &state.proposal {
        if let Ok(Message::Proposal(signed)) =
            codec::decode::<Message>("proposal", bytes, CONSENSUS_MESSAGE_BYTES_MAX)
        {
            inputs.push(Input::Proposal(signed));
        }
    }
    for bytes in &state.votes {
        if let Ok(vote) = codec::decode::<Vote>("vote", bytes, cairn_types::limits::VOTE_BYTES_MAX)
        {
            inputs.push(Input::Vote(vote));
        }
    }
    inputs
}

async fn fetch_block(
    client: Client,
    inbox: mpsc::Sender<HostEvent>,
    request_id: RequestId,
    block_hash: Hash,
) {
    let Ok(peers) = client.peers().await else {
        return;
    };
    let peers = peers.into_iter().take(FETCH_PEERS_MAX);
    if let Some(block) = block_by_hash_from(&client, peers, block_hash).await {
        let _ = inbox.try_send(HostEvent::Input(Input::BlockReceived {
            request_id,
            block: Arc::new(block),
        }));
    }
}

/// The block with `block_hash` from the first of `peers` that sends one
/// with that hash and a sound structure (a peer that sends anything else
/// is passed over).
pub(crate) async fn block_by_hash_from(
    client: &Client,
    peers: impl IntoIterator<Item = PeerId>,
    block_hash: Hash,
) -> Option<Block> {
    for peer in peers {
        let Ok(SyncResponse::Block(Some(found))) = client
            .request_sync(peer, SyncRequest::BlockByHash(block_hash))
            .await
        else {
            continue;
        };
        let Ok(block) = decode_block(&found.block) else {
            continue;
        };
        if block.hash() == block_hash && block.check_structure().is_ok() {
            return Some(block);
        }
    }
    None
}

pub(crate) fn decode_block(bytes: &[u8]) -> Result<Block, cairn_types::TypesError> {
    codec::decode("block", bytes, cairn_types::limits::BLOCK_BYTES_MAX)
}

pub(crate) fn decode_certificate(
    bytes: &[u8],
) -> Result<CommitCertificate, cairn_types::TypesError> {
    codec::decode("certificate", bytes, CERTIFICATE_BYTES_MAX)
}

/// Queues accepted transactions for gossip; [`run_gossip_batcher`] sends
/// them in batches.
#[derive(Clone)]
pub struct GossipQueue {
    queue: mpsc::Sender<Vec<u8>>,
}

impl GossipQueue {
    /// A queue and the receiver the batcher drains.
    pub fn new() -> (GossipQueue, mpsc::Receiver<Vec<u8>>) {
        let (queue, receiver) = mpsc::channel(GOSSIP_QUEUE_MAX);
        (GossipQueue { queue }, receiver)
    }

    /// Queues one accepted transaction; dropped when the queue is full
    /// (peers still get it in the block).
    pub fn push(&self, transaction: Vec<u8>) {
        let _ = self.queue.try_send(transaction);
    }
}

/// Publishes queued transactions in batches of at most
/// [`GOSSIP_BATCH_TRANSACTIONS_MAX`], at most one batch per
/// [`GOSSIP_BATCH_DELAY_MS`]: after a quiet spell a transaction goes out at
/// once (with whatever is already queued beside it), under load the next
/// batch gathers until the delay since the last one has passed. Light load
/// pays no batching delay; heavy load still gets large batches.
pub async fn run_gossip_batcher(client: Client, mut queue: mpsc::Receiver<Vec<u8>>) {
    let delay = Duration::from_millis(GOSSIP_BATCH_DELAY_MS);
    let mut last_publish: Option<tokio::time::Instant> = None;
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < GOSSIP_BATCH_TRANSACTIONS_MAX {
            match queue.try_recv() {
                Ok(transaction) => batch.push(transaction),
                Err(_) => break,
            }
        }
        if let Some(deadline) = last_publish.map(|last| last + delay) {
            while batch.len() < GOSSIP_BATCH_TRANSACTIONS_MAX {
                match tokio::time::timeout_at(deadline, queue.recv()).await {
                    Ok(Some(transaction)) => batch.push(transaction),
                    Ok(None) | Err(_) => break,
                }
            }
        }
        last_publish = Some(tokio::time::Instant::now());
        if let Err(error) = client
            .publish(Topic::Transactions, codec::encode(&batch))
            .await
        {
            tracing::debug!("transaction gossip failed: {error}");
        }
    }
}

/// How often the peers' gossip scores are read from the p2p layer for
/// `GET /peers`.
pub const PEER_SCORES_INTERVAL: Duration = Duration::from_secs(2);

/// Reads the peers' gossip scores into `view` every
/// [`PEER_SCORES_INTERVAL`] until the p2p layer stops.
pub async fn run_peer_scores(client: Client, view: Arc<NetworkView>) {
    let mut ticks = tokio::time::interval(PEER_SCORES_INTERVAL);
    loop {
        ticks.tick().await;
        let Ok(scores) = client.peer_scores().await else {
            return;
        };
        view.set_peer_scores(
            scores
                .into_iter()
                .map(|(peer, score)| (peer.to_string(), score))
                .collect(),
        );
    }
}

/// Handles every event of the p2p layer until it stops.
#[allow(clippy::too_many_arguments)] // each is a distinct handle the dispatcher serves from
pub async fn run_dispatcher(
    mut events: mpsc::Receiver<Event>,
    ledger: Arc<Ledger>,
    view: Arc<NetworkView>,
    inbox: mpsc::Sender<HostEvent>,
    on_listen: impl Fn(String) + Send + 'static,
    local_peer: PeerId,
    sync: SyncHandle,
    snapshots: Arc<crate::snapshots::Snapshots>,
    client: Client,
) {
    let snapshot_serving = Arc::new(tokio::sync::Semaphore::new(SNAPSHOT_SERVING_MAX));
    let (assembly, assembly_jobs) = mpsc::channel(ASSEMBLY_QUEUE_MAX);
    tokio::spawn(crate::compact_proposals::run_assembly(
        Arc::clone(&ledger),
        client,
        inbox.clone(),
        assembly_jobs,
    ));
    let mut gate =
        GossipGate::new(Arc::clone(&ledger), inbox.clone(), sync.clone()).with_assembly(assembly);
    let mut budgets = RequestBudgets::default();
    let serving = Arc::new(tokio::sync::Semaphore::new(SYNC_SERVING_MAX));
    let (admissions, admission_queue) = mpsc::channel(GOSSIP_ADMISSION_QUEUE_MAX);
    tokio::spawn(run_gossip_admissions(Arc::clone(&ledger), admission_queue));
    // Each peer's address, when it connected (ms since the epoch), and
    // whether this node dialled it.
    let mut peers: BTreeMap<PeerId, (String, u64, bool)> = BTreeMap::new();
    let publish_peers = |peers: &BTreeMap<PeerId, (String, u64, bool)>| {
        view.set_peers(
            peers
                .iter()
                .map(|(peer, (address, since, outbound))| PeerView {
                    peer_id: peer.to_string(),
                    address: address.clone(),
                    direction: Some(if *outbound { "outbound" } else { "inbound" }.to_string()),
                    score: None,
                    connected_since: Some(*since),
                    connected_ms: None,
                })
                .collect(),
        );
    };
    while let Some(event) = events.recv().await {
        match event {
            Event::ListenAddress { address } => {
                on_listen(format!("{address}/p2p/{local_peer}"));
            }
            Event::PeerConnected {
                peer,
                address,
                outbound,
            } => {
                peers.insert(
                    peer,
                    (address.to_string(), system_now().as_millis(), outbound),
                );
                publish_peers(&peers);
                // A new peer may be ahead of us.
                sync.request();
            }
            Event::PeerDisconnected { peer } | Event::PeerBanned { peer, .. } => {
                peers.remove(&peer);
                publish_peers(&peers);
            }
            Event::Gossip(message) => {
                let verdict = match message.topic {
                    Topic::Transactions => {
                        // A full queue drops the batch; its handle, dropped
                        // with it, reports Ignore.
                        let _ =
                            admissions.try_send((message.data, message.validation, message.source));
                        continue;
                    }
                    topic => gate.verdict(topic, &message.data, message.source),
                };
                message.validation.report(verdict).await;
            }
            Event::SyncRequest {
                peer,
                request,
                reply,
            } => {
                if !matches!(request, SyncRequest::Status) && !budgets.allow(peer) {
                    reply.respond(SyncResponse::Refused(format!(
                        "more than {PEER_REQUESTS_PER_SECOND} requests a second; slow down"
                    )));
                    continue;
                }
                match request {
                    SyncRequest::BlockByHash(hash) => {
                        if inbox
                            .try_send(HostEvent::BlockByHash { hash, reply })
                            .is_err()
                        {
                            tracing::debug!("consensus inbox full; refusing a block request");
                        }
                    }
                    request => {
                        // Reading blocks blocks: at most SYNC_SERVING_MAX at once.
                        let Ok(permit) = Arc::clone(&serving).try_acquire_owned() else {
                            reply.respond(SyncResponse::Refused(
                                "busy serving other peers; ask another or retry".into(),
                            ));
                            continue;
                        };
                        let ledger = Arc::clone(&ledger);
                        tokio::task::spawn_blocking(move || {
                            reply.respond(serve_sync(&ledger, &request));
                            drop(permit);
                        });
                    }
                }
            }
            Event::RoundStateRequest {
                peer,
                request,
                reply,
            } => {
                if !budgets.allow(peer) {
                    reply.respond(cairn_p2p::RoundStateResponse::Refused(format!(
                        "more than {PEER_REQUESTS_PER_SECOND} requests a second; slow down"
                    )));
                    continue;
                }
                let _ = inbox.try_send(HostEvent::RoundStateRequest { request, reply });
            }
            Event::SnapshotRequest {
                peer,
                request,
                reply,
            } => {
                if !budgets.allow(peer) {
                    reply.respond(cairn_p2p::SnapshotResponse::Refused(format!(
                        "more than {PEER_REQUESTS_PER_SECOND} requests a second; slow down"
                    )));
                    continue;
                }
                // Reading chunks blocks: at most SNAPSHOT_SERVING_MAX at once.
                let Ok(permit) = Arc::clone(&snapshot_serving).try_acquire_owned() else {
                    reply.respond(cairn_p2p::SnapshotResponse::Refused(
                        "busy serving other peers; ask another or retry".into(),
                    ));
                    continue;
                };
                let ledger = Arc::clone(&ledger);
                let snapshots = Arc::clone(&snapshots);
                tokio::task::spawn_blocking(move || {
                    reply.respond(crate::snapshots::serve_snapshot(
                        &snapshots, &ledger, &request,
                    ));
                    drop(permit);
                });
            }
        }
    }
}

/// Requests a peer may have served per second, on average (block sync
/// needs one per range of blocks; round-state requests one per round).
pub const PEER_REQUESTS_PER_SECOND: f64 = 50.0;
/// Requests a peer may send at once above the average.
pub const PEER_REQUESTS_BURST: f64 = 200.0;
/// Peers whose request budget is remembered; beyond, the fullest are
/// forgotten (a forgotten peer starts with a full budget).
pub const PEER_BUDGETS_MAX: usize = 1_024;
/// Block-range and status requests served at once (each reads the store on
/// the blocking pool); more are refused as busy.
pub const SYNC_SERVING_MAX: usize = 8;

/// Snapshot requests served at once (each reads a file or the store on the
/// blocking pool; a chunk is at most 1 MiB); more are refused as busy.
pub const SNAPSHOT_SERVING_MAX: usize = 4;

/// A token bucket per peer for the requests this node serves.
#[derive(Default)]
pub struct RequestBudgets {
    buckets: std::collections::HashMap<PeerId, (f64, Instant)>,
}

impl RequestBudgets {
    /// Takes one request from `peer`'s budget; false when it is spent.
    pub fn allow(&mut self, peer: PeerId) -> bool {
        self.allow_at(peer, Instant::now())
    }

    fn allow_at(&mut self, peer: PeerId, now: Instant) -> bool {
        if !self.buckets.contains_key(&peer) && self.buckets.len() >= PEER_BUDGETS_MAX {
            // Forget peers whose budget has refilled (they cost nothing).
            self.buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * PEER_REQUESTS_PER_SECOND
                    < PEER_REQUESTS_BURST
            });
            if self.buckets.len() >= PEER_BUDGETS_MAX {
                self.buckets.clear();
            }
        }
        let (tokens, at) = self
            .buckets
            .entry(peer)
            .or_insert((PEER_REQUESTS_BURST, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * PEER_REQUESTS_PER_SECOND)
            .min(PEER_REQUESTS_BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Default of `mempool.peer_transactions_per_second`: transactions a
/// second admitted from one peer's gossip, on average.
pub const PEER_GOSSIP_TRANSACTIONS_PER_SECOND_DEFAULT: u64 = 10_000;
/// Seconds of a peer's gossip rate its bucket holds (the burst).
pub const PEER_GOSSIP_BURST_SECONDS: u64 = 2;

/// A token bucket per peer, in transactions, for the transaction batches
/// it gossips: one peer cannot fill the mempool faster than its share. A
/// batch beyond the peer's budget is ignored (not forwarded, not held
/// against the peer) and its transactions counted as `peer_rate_limited`.
pub struct GossipBudgets {
    per_second: f64,
    burst: f64,
    buckets: std::collections::HashMap<PeerId, (f64, Instant)>,
}

impl GossipBudgets {
    /// Budgets refilling at `per_second` transactions a second, holding
    /// [`PEER_GOSSIP_BURST_SECONDS`] of it (at least one full gossip
    /// batch).
    pub fn new(per_second: u64) -> GossipBudgets {
        let per_second = per_second.max(1) as f64;
        GossipBudgets {
            per_second,
            burst: (per_second * PEER_GOSSIP_BURST_SECONDS as f64)
                .max(GOSSIP_BATCH_TRANSACTIONS_MAX as f64),
            buckets: std::collections::HashMap::new(),
        }
    }

    /// Takes `count` transactions from `peer`'s budget; false (and nothing
    /// taken) when it does not hold them.
    pub fn take(&mut self, peer: PeerId, count: usize, now: Instant) -> bool {
        if !self.buckets.contains_key(&peer) && self.buckets.len() >= PEER_BUDGETS_MAX {
            let (per_second, burst) = (self.per_second, self.burst);
            self.buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * per_second < burst
            });
            if self.buckets.len() >= PEER_BUDGETS_MAX {
                self.buckets.clear();
            }
        }
        let (tokens, at) = self.buckets.entry(peer).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        let count = count as f64;
        if *tokens >= count {
            *tokens -= count;
            true
        } else {
            false
        }
    }
}

/// Admits gossiped transaction batches one after another, off the async
/// workers, and reports each verdict. Each peer's batches draw on its
/// [`GossipBudgets`] bucket first.
async fn run_gossip_admissions(
    ledger: Arc<Ledger>,
    mut queue: mpsc::Receiver<(Vec<u8>, cairn_p2p::ValidationHandle, PeerId)>,
) {
    let mut budgets = GossipBudgets::new(ledger.peer_gossip_rate());
    while let Some(first) = queue.recv().await {
        // Batches that queued up meanwhile are admitted together: one
        // larger signature batch verifies faster per signature and is
        // spread over the cores.
        let mut bytes = first.0.len();
        let mut batches = vec![first];
        while bytes < GOSSIP_ADMISSION_COALESCE_BYTES_MAX {
            match queue.try_recv() {
                Ok(next) => {
                    bytes = bytes.saturating_add(next.0.len());
                    batches.push(next);
                }
                Err(_) => break,
            }
        }
        let count = batches.len();
        let mut data = Vec::with_capacity(count);
        let mut validations = Vec::with_capacity(count);
        let mut sources = Vec::with_capacity(count);
        for (batch, validation, source) in batches {
            data.push(batch);
            validations.push(validation);
            sources.push(source);
        }
        let ledger = Arc::clone(&ledger);
        let rate = ledger.peer_gossip_rate();
        let (verdicts, returned) = tokio::task::spawn_blocking(move || {
            let now = Instant::now();
            let verdicts = admit_transaction_batches(&ledger, &data, |index, transactions| {
                let allowed = sources
                    .get(index)
                    .is_some_and(|peer| budgets.take(*peer, transactions, now));
                if !allowed {
                    for _ in 0..transactions {
                        ledger.metrics().count_rejection("peer_rate_limited");
                    }
                }
                allowed
            });
            (verdicts, budgets)
        })
        .await
        .unwrap_or_else(|_| (vec![Verdict::Ignore; count], GossipBudgets::new(rate)));
        budgets = returned;
        for (validation, verdict) in validations.into_iter().zip(verdicts) {
            validation.report(verdict).await;
        }
    }
}

/// Most bytes of proposals (with their blocks) waiting in the consensus
/// inbox, beside its count bound [`CONSENSUS_INBOX_MAX`]; a proposal that
/// does not fit is not taken (gossip `Ignore`).
pub const CONSENSUS_INBOX_PROPOSAL_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Heights of evidence remembered at gossip, to take one piece per
/// (validator, height); older ones are forgotten.
pub const GOSSIP_EVIDENCE_SEEN_MAX: usize = 16_384;

/// The cheap checks every consensus gossip message passes before it is
/// forwarded to the consensus loop, so nothing unchecked is buffered:
/// signature and signer (a validator; for a proposal, the proposer of its
/// height and round), height within a window of the tip, for a proposal
/// the attached block's (or compact block's) hash and structure against
/// the signed hash, for
/// evidence one piece per (validator, height) in the evidence window.
/// Anything malformed or badly signed, and a second piece of evidence for
/// one (validator, height), is `Reject`ed (its sender is punished); honest
/// but useless messages (stale, far ahead, no room) are `Ignore`d.
pub struct GossipGate {
    ledger: Arc<Ledger>,
    sets: UpcomingSets,
    inbox: mpsc::Sender<HostEvent>,
    proposal_bytes: Arc<tokio::sync::Semaphore>,
    evidence_seen: BTreeSet<(Height, u32)>,
    /// (height, validator, peer) of redundant evidence a peer sent.
    evidence_senders: BTreeSet<(Height, u32, PeerId)>,
    sync: SyncHandle,
    /// Where accepted compact proposals go to be rebuilt
    /// ([`crate::compact_proposals::run_assembly`]); without it (a gate
    /// with no network) they are ignored.
    assembly: Option<mpsc::Sender<AssemblyJob>>,
}

/// A validator set with its proposer schedule.
struct SetAndSchedule {
    set: cairn_types::ValidatorSet,
    hash: Hash,
    schedule: ProposerSchedule,
}

/// The validator sets (with their proposer schedules) of the two heights
/// after the tip, cached by tip: what gossip and round-state answers are
/// checked against. A schedule is computed once per set, not per height.
struct UpcomingSets {
    tip: Option<Height>,
    sets: Vec<Arc<SetAndSchedule>>,
}

impl UpcomingSets {
    fn new() -> UpcomingSets {
        UpcomingSets {
            tip: None,
            sets: Vec::new(),
        }
    }

    fn refresh(&mut self, ledger: &Ledger) {
        let tip = ledger.tip().height;
        if self.tip == Some(tip) {
            return;
        }
        let Ok((current, next)) = ledger.upcoming_validator_sets() else {
            self.sets.clear();
            return;
        };
        let known = std::mem::take(&mut self.sets);
        for set in [current, next] {
            let hash = set.hash();
            let entry = match known
                .iter()
                .chain(self.sets.iter())
                .find(|entry| entry.hash == hash)
            {
                Some(entry) => Arc::clone(entry),
                None => Arc::new(SetAndSchedule {
                    schedule: ProposerSchedule::new(&set),
                    set,
                    hash,
                }),
            };
            self.sets.push(entry);
        }
        self.tip = Some(tip);
    }

    /// The set of `height` if it is one of the two after the tip.
    fn for_height(&mut self, ledger: &Ledger, height: Height) -> Option<Arc<SetAndSchedule>> {
        self.refresh(ledger);
        let tip = self.tip?.0;
        let offset = height.0.checked_sub(tip)?.checked_sub(1)?;
        self.sets.get(usize::try_from(offset).ok()?).cloned()
    }

    /// The latest set known (of the height after the next): what a message
    /// from further ahead is checked against before it triggers a sync.
    fn latest(&mut self, ledger: &Ledger) -> Option<Arc<SetAndSchedule>> {
        self.refresh(ledger);
        self.sets.last().cloned()
    }
}

/// What the window check says of a message's height.
enum HeightWindow {
    /// The height being decided or the next one.
    Current,
    /// Already decided.
    Stale,
    /// Further ahead than the next height: this node is behind.
    Ahead,
}

impl GossipGate {
    /// A gate in front of `inbox`.
    pub fn new(
        ledger: Arc<Ledger>,
        inbox: mpsc::Sender<HostEvent>,
        sync: SyncHandle,
    ) -> GossipGate {
        GossipGate {
            ledger,
            sets: UpcomingSets::new(),
            inbox,
            proposal_bytes: Arc::new(tokio::sync::Semaphore::new(
                CONSENSUS_INBOX_PROPOSAL_BYTES_MAX / 1024,
            )),
            evidence_seen: BTreeSet::new(),
            evidence_senders: BTreeSet::new(),
            sync,
            assembly: None,
        }
    }

    /// Sends accepted compact proposals to `assembly` to be rebuilt.
    pub fn with_assembly(mut self, assembly: mpsc::Sender<AssemblyJob>) -> GossipGate {
        self.assembly = Some(assembly);
        self
    }

    /// `bytes` of the inbox's proposal budget, if free.
    fn proposal_budget(&self, bytes: usize) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let kib = u32::try_from(bytes / 1024).unwrap_or(u32::MAX).max(1);
        Arc::clone(&self.proposal_bytes)
            .try_acquire_many_owned(kib)
            .ok()
    }

    fn window(&self, height: Height) -> HeightWindow {
        let tip = self.ledger.tip().height.0;
        if height.0 <= tip {
            HeightWindow::Stale
        } else if height.0 > tip.saturating_add(2) {
            HeightWindow::Ahead
        } else {
            HeightWindow::Current
        }
    }

    /// The verdict on one consensus, evidence or decision message.
    pub fn verdict(&mut self, topic: Topic, data: &[u8], source: PeerId) -> Verdict {
        let ledger = Arc::clone(&self.ledger);
        let chain_id = &ledger.genesis().chain_id;
        match topic {
            Topic::Consensus => {
                let Ok(message) = codec::decode::<ConsensusGossip>(
                    "consensus message",
                    data,
                    CONSENSUS_MESSAGE_BYTES_MAX,
                ) else {
                    return Verdict::Reject;
                };
                let height = message.height();
                match self.window(height) {
                    HeightWindow::Stale => return Verdict::Ignore,
                    HeightWindow::Ahead => {
                        // Signed by a validator of the latest set known, so
                        // worth a sync (which runs beside consensus and
                        // rate-limits itself). The set may have changed
                        // since: a message that fails is ignored, not
                        // punished.
                        if let Some(latest) = self.sets.latest(&ledger) {
                            if check_gossip(&message, chain_id, &latest.set, &latest.schedule)
                                .is_ok()
                            {
                                self.sync.request();
                            }
                        }
                        return Verdict::Ignore;
                    }
                    HeightWindow::Current => {}
                }
                let Some(sets) = self.sets.for_height(&ledger, height) else {
                    return Verdict::Ignore;
                };
                if check_gossip(&message, chain_id, &sets.set, &sets.schedule).is_err() {
                    return Verdict::Reject;
                }
                match message {
                    ConsensusGossip::Proposal(signed) => {
                        let Some(budget) = self.proposal_budget(data.len()) else {
                            return Verdict::Ignore;
                        };
                        forward(
                            &self.inbox,
                            HostEvent::Budgeted(Input::Proposal(signed), budget),
                        )
                    }
                    ConsensusGossip::Vote(vote) => {
                        forward(&self.inbox, HostEvent::Input(Input::Vote(vote)))
                    }
                    ConsensusGossip::CompactProposal(compact) => {
                        let Some(assembly) = &self.assembly else {
                            return Verdict::Ignore;
                        };
                        let bytes = compact.block.transaction_hashes.len()
                            * ASSEMBLY_BUDGET_BYTES_PER_TRANSACTION;
                        let Some(budget) = self.proposal_budget(bytes) else {
                            return Verdict::Ignore;
                        };
                        let job = AssemblyJob {
                            compact: *compact,
                            source,
                            budget,
                        };
                        match assembly.try_send(job) {
                            Ok(()) => Verdict::Accept,
                            Err(_) => Verdict::Ignore,
                        }
                    }
                }
            }
            Topic::Evidence => {
                let Ok(evidence) = codec::decode::<Evidence>("evidence", data, EVIDENCE_BYTES_MAX)
                else {
                    return Verdict::Reject;
                };
                // The cheap checks first: a flood of distinct pieces about
                // one (validator, height) costs one signature check.
                let tip = self.ledger.tip().height.0;
                let height = evidence.height();
                let oldest = tip.saturating_sub(crate::host::EVIDENCE_AGE_MAX_HEIGHTS);
                if height.0 < oldest || height.0 > tip.saturating_add(1) {
                    return Verdict::Ignore;
                }
                let key = (height, evidence.validator().0);
                if self.evidence_seen.contains(&key) {
                    // A second piece proves nothing new. An honest peer
                    // sends at most one piece per (validator, height) (it
                    // forwards only what it accepted, and publishes its own
                    // find only for a new key), while other honest peers
                    // may each send a different one: ignored. A peer that
                    // sends a second piece for one key is flooding:
                    // rejected, and banned after a few.
                    let repeat = (height, evidence.validator().0, source);
                    if self.evidence_senders.contains(&repeat) {
                        return Verdict::Reject;
                    }
                    self.evidence_senders
                        .retain(|(seen, _, _)| seen.0 >= oldest);
                    while self.evidence_senders.len() >= GOSSIP_EVIDENCE_SEEN_MAX {
                        self.evidence_senders.pop_first();
                    }
                    self.evidence_senders.insert(repeat);
                    return Verdict::Ignore;
                }
                let Ok(Some(set)) = ledger.validator_set(height) else {
                    return Verdict::Ignore;
                };
                if evidence.verify(chain_id, &set).is_err() {
                    return Verdict::Reject;
                }
                self.evidence_seen.retain(|(seen, _)| seen.0 >= oldest);
                while self.evidence_seen.len() >= GOSSIP_EVIDENCE_SEEN_MAX {
                    self.evidence_seen.pop_first();
                }
                self.evidence_seen.insert(key);
                forward(&self.inbox, HostEvent::Evidence(evidence))
            }
            Topic::Decisions => match decode_certificate(data) {
                Ok(certificate) => match self.window(certificate.height) {
                    HeightWindow::Stale => Verdict::Ignore,
                    HeightWindow::Ahead => {
                        if self
                            .sets
                            .latest(&ledger)
                            .is_some_and(|latest| certificate.verify(chain_id, &latest.set).is_ok())
                        {
                            self.sync.request();
                        }
                        Verdict::Ignore
                    }
                    HeightWindow::Current => {
                        let Some(sets) = self.sets.for_height(&ledger, certificate.height) else {
                            return Verdict::Ignore;
                        };
                        match certificate.verify(chain_id, &sets.set) {
                            Ok(_) => forward(
                                &self.inbox,
                                HostEvent::Input(Input::CertificateSeen {
                                    certificate,
                                    block: None,
                                }),
                            ),
                            Err(_) => Verdict::Reject,
                        }
                    }
                },
                Err(_) => Verdict::Reject,
            },
            // Transaction batches go through the admission queue instead.
            Topic::Transactions => Verdict::Ignore,
        }
    }
}

/// Checks a proposal or vote on its own: the signature of a validator; for
/// a proposal, that its signer proposes its height and round, that the
/// attached block is the one signed (hash and structure) and of its
/// height, and that a fresh proposal's block names its signer as the
/// proposer (who collects the fees).
pub fn check_consensus_message(
    message: &Message,
    chain_id: &cairn_types::ChainId,
    validators: &cairn_types::ValidatorSet,
    schedule: &ProposerSchedule,
) -> Result<(), String> {
    match message {
        Message::Vote(vote) => vote
            .verify(chain_id, validators)
            .map_err(|error| error.to_string()),
        Message::Proposal(signed) => check_whole_proposal(signed, chain_id, validators, schedule),
    }
}

/// [`check_consensus_message`] for any payload of the consensus topic; a
/// compact proposal is checked by [`CompactProposal::check`].
fn check_gossip(
    message: &ConsensusGossip,
    chain_id: &cairn_types::ChainId,
    validators: &cairn_types::ValidatorSet,
    schedule: &ProposerSchedule,
) -> Result<(), String> {
    match message {
        ConsensusGossip::Vote(vote) => vote
            .verify(chain_id, validators)
            .map_err(|error| error.to_string()),
        ConsensusGossip::Proposal(signed) => {
            check_whole_proposal(signed, chain_id, validators, schedule)
        }
        ConsensusGossip::CompactProposal(compact) => compact.check(chain_id, validators, schedule),
    }
}

/// A proposal with its whole block: the signed parts, then the block's
/// structure against its header.
fn check_whole_proposal(
    signed: &SignedProposal,
    chain_id: &cairn_types::ChainId,
    validators: &cairn_types::ValidatorSet,
    schedule: &ProposerSchedule,
) -> Result<(), String> {
    check_signed_proposal(
        &signed.proposal,
        &signed.block.header,
        chain_id,
        validators,
        schedule,
    )?;
    signed
        .block
        .check_structure()
        .map_err(|error| error.to_string())
}

/// Hands an event to the consensus loop; the gossip is accepted when it
/// could be queued (its signatures were checked by the caller).
fn forward(inbox: &mpsc::Sender<HostEvent>, event: HostEvent) -> Verdict {
    match inbox.try_send(event) {
        Ok(()) => Verdict::Accept,
        Err(_) => Verdict::Ignore,
    }
}

/// Admits gossiped batches into the mempool in one submission; one verdict
/// per batch. A batch that does not decode, or holds a transaction that is
/// malformed or badly signed, is rejected (its sender is punished); a
/// batch `within_budget(index, transactions)` refuses is ignored unread;
/// otherwise it is forwarded.
fn admit_transaction_batches(
    ledger: &Ledger,
    batches: &[Vec<u8>],
    mut within_budget: impl FnMut(usize, usize) -> bool,
) -> Vec<Verdict> {
    enum Decoded {
        Garbage,
        OverBudget,
        Batch(Vec<Vec<u8>>),
    }
    let decoded: Vec<Decoded> = batches
        .iter()
        .enumerate()
        .map(|(index, data)| {
            match codec::decode::<Vec<Vec<u8>>>("transaction batch", data, GOSSIP_BATCH_BYTES_MAX)
                .ok()
                .filter(|batch| batch.len() <= GOSSIP_BATCH_TRANSACTIONS_MAX)
            {
                None => Decoded::Garbage,
                Some(batch) if !within_budget(index, batch.len()) => Decoded::OverBudget,
                Some(batch) => Decoded::Batch(batch),
            }
        })
        .collect();
    let slices: Vec<&[u8]> = decoded
        .iter()
        .filter_map(|batch| match batch {
            Decoded::Batch(batch) => Some(batch),
            _ => None,
        })
        .flat_map(|batch| batch.iter().map(Vec::as_slice))
        .collect();
    let results = ledger.submit(&slices);
    let mut results = results.iter();
    decoded
        .iter()
        .map(|batch| {
            let batch = match batch {
                Decoded::Garbage => return Verdict::Reject,
                Decoded::OverBudget => return Verdict::Ignore,
                Decoded::Batch(batch) => batch,
            };
            let malicious = results
                .by_ref()
                .take(batch.len())
                .any(|result| matches!(result, Err(rejection) if rejection.is_malicious()));
            if malicious {
                Verdict::Reject
            } else {
                Verdict::Accept
            }
        })
        .collect()
}

/// [`admit_transaction_batches`] of one batch.
#[cfg(test)]
fn admit_transaction_batch(ledger: &Ledger, data: &[u8]) -> Verdict {
    admit_transaction_batches(ledger, &[data.to_vec()], |_, _| true)
        .pop()
        .unwrap_or(Verdict::Ignore)
}

/// Everything the consensus loop owns.
pub struct ConsensusLoop {
    host: NodeHost,
    ledger: Arc<Ledger>,
    sync: SyncHandle,
    inbox: mpsc::Receiver<HostEvent>,
    sets: UpcomingSets,
    /// Where `GET /consensus` reads the state from, and what was last
    /// published there (height, round, step, time).
    board: Option<Arc<crate::consensus_view::ConsensusBoard>>,
    last_view: Option<(Height, cairn_types::Round, &'static str, u64)>,
}

impl ConsensusLoop {
    /// A loop over `host`, fed by `inbox`, asking `sync` for block sync
    /// (which runs as its own task, see [`crate::block_sync`]).
    pub fn new(
        host: NodeHost,
        ledger: Arc<Ledger>,
        sync: SyncHandle,
        inbox: mpsc::Receiver<HostEvent>,
    ) -> ConsensusLoop {
        ConsensusLoop {
            host,
            ledger,
            sync,
            inbox,
            sets: UpcomingSets::new(),
            board: None,
            last_view: None,
        }
    }

    /// Publishes snapshots of the consensus state on `board` (for `GET
    /// /consensus`).
    pub fn with_board(mut self, board: Arc<crate::consensus_view::ConsensusBoard>) -> Self {
        self.board = Some(board);
        self
    }

    /// Publishes a snapshot when one is due ([`crate::consensus_view::due`]):
    /// O(votes of the round), never waiting on a reader.
    fn publish_view(&mut self) {
        let Some(board) = &self.board else { return };
        let height = self.host.height();
        let state = self.host.round_state();
        let round = state.round;
        let waiting = self.host.is_waiting();
        let step = if waiting {
            "waiting_for_transactions"
        } else {
            crate::consensus_view::step_name(state.step)
        };
        let now = system_now().as_millis();
        let key = (height, round, step, now);
        if !crate::consensus_view::due(self.last_view.as_ref(), key) {
            return;
        }
        let messages = self.host.round_messages(self.host.driver().height(), round);
        board.publish(crate::consensus_view::snapshot(
            self.host.driver(),
            height,
            waiting,
            &messages,
            now,
        ));
        self.last_view = Some(key);
    }

    /// Runs until shutdown; returns an error when consensus cannot go on
    /// safely (the WAL or the store failed). It never waits on the
    /// network: a sync it needs runs beside it and reports
    /// [`HostEvent::Synced`].
    pub async fn run(mut self, mut shutdown: Shutdown) -> Result<(), NodeError> {
        self.host.start()?;
        let mut poll = tokio::time::interval(Duration::from_millis(POLL_INTERVAL_MS));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_height = self.host.height();
        let mut last_progress = Instant::now();
        loop {
            self.publish_view();
            let deadline = self
                .host
                .timers_mut()
                .next_deadline()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3_600));
            tokio::select! {
                _ = shutdown.requested() => break,
                event = self.inbox.recv() => {
                    let Some(event) = event else { break };
                    self.on_event(event)?;
                }
                _ = self.ledger.transactions_arrived(), if self.host.is_waiting() => {
                    // A held height starts as soon as transactions arrive,
                    // not at the next poll.
                    self.host.poll_waiting()?;
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    for timeout in self.host.timers_mut().pop_due(Instant::now()) {
                        self.host.handle(Input::TimeoutElapsed(timeout))?;
                    }
                }
                _ = poll.tick() => {
                    self.publish_view();
                    self.host.poll_waiting()?;
                    let height = self.host.height();
                    if height != last_height {
                        last_height = height;
                        last_progress = Instant::now();
                    } else if !self.host.is_waiting()
                        && last_progress.elapsed() >= Duration::from_millis(SYNC_CHECK_INTERVAL_MS)
                    {
                        last_progress = Instant::now();
                        self.sync.request();
                    }
                }
            }
        }
        Ok(())
    }

    fn on_event(&mut self, event: HostEvent) -> Result<(), NodeError> {
        match event {
            HostEvent::Budgeted(input, _budget) => self.on_event(HostEvent::Input(input)),
            HostEvent::Unverified(input) => {
                let message = match input {
                    Input::Proposal(signed) => Message::Proposal(signed),
                    Input::Vote(vote) => Message::Vote(vote),
                    _ => return Ok(()),
                };
                let height = match &message {
                    Message::Proposal(signed) => signed.proposal.height,
                    Message::Vote(vote) => vote.height,
                };
                let ledger = Arc::clone(&self.ledger);
                let Some(sets) = self.sets.for_height(&ledger, height) else {
                    return Ok(());
                };
                if let Err(reason) = check_consensus_message(
                    &message,
                    &ledger.genesis().chain_id,
                    &sets.set,
                    &sets.schedule,
                ) {
                    tracing::debug!("a round-state answer held a bad message: {reason}");
                    return Ok(());
                }
                self.on_event(HostEvent::Input(match message {
                    Message::Proposal(signed) => Input::Proposal(signed),
                    Message::Vote(vote) => Input::Vote(vote),
                }))
            }
            HostEvent::Input(input) => {
                let ahead = message_height(&input).unwrap_or(Height::GENESIS);
                if ahead.0 > self.host.height().0.saturating_add(1) {
                    // Only a message a validator signed may send us syncing.
                    if self.signed_by_a_validator(&input) {
                        self.sync.request();
                    }
                    return Ok(());
                }
                self.host.handle(input)
            }
            HostEvent::Evidence(evidence) => self.host.add_evidence(evidence).map(|_| ()),
            HostEvent::RoundStateRequest { request, reply } => {
                let messages = self.host.round_messages(request.height, request.round);
                let mut state = RoundState::default();
                for message in messages {
                    match &message {
                        Message::Proposal(_) => state.proposal = Some(codec::encode(&message)),
                        Message::Vote(vote) => state.votes.push(codec::encode(vote)),
                    }
                }
                reply.respond(cairn_p2p::RoundStateResponse::State(state));
                Ok(())
            }
            HostEvent::BlockByHash { hash, reply } => {
                let found = match self.host.block(&hash) {
                    Some(block) => Some(SyncBlock {
                        height: block.header.height,
                        block: codec::encode(block.as_ref()),
                        certificate: Vec::new(),
                    }),
                    None => match serve_sync(&self.ledger, &SyncRequest::BlockByHash(hash)) {
                        SyncResponse::Block(found) => found,
                        _ => None,
                    },
                };
                reply.respond(SyncResponse::Block(found));
                Ok(())
            }
            HostEvent::Synced => {
                // The tip moved past the height being decided: start over
                // at the new tip (the old height's WAL is pruned).
                if self.ledger.tip().height >= self.host.height() {
                    self.host.start()?;
                }
                Ok(())
            }
        }
    }

    /// Whether a proposal, vote or certificate carries valid signatures of
    /// the validator set (checked before a far-ahead message makes the node
    /// sync, so an unsigned message cannot keep it busy).
    fn signed_by_a_validator(&mut self, input: &Input) -> bool {
        let ledger = Arc::clone(&self.ledger);
        let Some(latest) = self.sets.latest(&ledger) else {
            return false;
        };
        let (chain_id, validators) = (&ledger.genesis().chain_id, &latest.set);
        match input {
            Input::Proposal(signed) => signed.proposal.verify(chain_id, validators).is_ok(),
            Input::Vote(vote) => vote.verify(chain_id, validators).is_ok(),
            Input::CertificateSeen { certificate, .. } => {
                certificate.verify(chain_id, validators).is_ok()
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use cairn_consensus::{TimeoutKind, WalEntry};

    use super::*;

    fn timeout(round: u32) -> Timeout {
        Timeout {
            height: Height(1),
            round: Round(round),
            kind: TimeoutKind::Commit,
        }
    }

    #[test]
    fn timers_fire_in_deadline_order_and_only_when_due() {
        let mut timers = TokioTimers::default();
        timers.schedule(timeout(2), 60_000);
        timers.schedule(timeout(1), 0);
        timers.schedule(timeout(3), 0);
        let due = timers.pop_due(Instant::now());
        assert_eq!(due, vec![timeout(1), timeout(3)]);
        assert!(timers.next_deadline().unwrap() > Instant::now());
        assert!(timers.pop_due(Instant::now()).is_empty());
        timers.clear();
        assert!(timers.next_deadline().is_none());
    }

    #[test]
    fn timers_are_bounded() {
        let mut timers = TokioTimers::default();
        for round in 0..(TIMERS_MAX as u32 + 10) {
            timers.schedule(timeout(round), 60_000);
        }
        assert_eq!(timers.timers.len(), TIMERS_MAX);
    }

    #[test]
    fn garbage_round_state_answers_give_no_inputs() {
        let state = RoundState {
            proposal: Some(vec![0xff; 40]),
            votes: vec![
                vec![1, 2, 3],
                Vec::new(),
                codec::encode(&WalEntry::Round {
                    height: Height(1),
                    round: Round(0),
                }),
            ],
        };
        assert!(decode_round_state(&state).is_empty());
    }

    #[test]
    fn garbage_transaction_batches_are_rejected() {
        let genesis = cairn_genesis::dev::dev_genesis().unwrap();
        let directory = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(
            genesis,
            directory.path(),
            crate::mempool::MempoolLimits {
                transactions_max: 10,
                bytes_max: 10_000,
                min_fee: 0,
            },
            Arc::new(crate::metrics::Metrics::default()),
        )
        .unwrap();
        assert_eq!(
            admit_transaction_batch(&ledger, &[0xff; 7]),
            Verdict::Reject
        );
        let batch = codec::encode(&vec![vec![1u8, 2, 3]]);
        assert_eq!(admit_transaction_batch(&ledger, &batch), Verdict::Reject);
        assert_eq!(
            admit_transaction_batch(&ledger, &codec::encode(&Vec::<Vec<u8>>::new())),
            Verdict::Accept
        );

        // Admitted together, each batch still gets its own verdict: the
        // one with a forged signature is rejected, the good one accepted
        // and its transfer admitted, the garbage one rejected.
        let keys = cairn_genesis::dev::dev_account_keypairs();
        let transfer = |nonce: u64| cairn_types::Transaction {
            chain_id: ledger.chain_id().clone(),
            sender: keys[0].public_key(),
            recipient: keys[1].address(),
            amount: 5,
            fee: 1,
            nonce,
            memo: String::new(),
            kind: cairn_types::TransactionKind::Transfer,
        };
        let good = transfer(0).sign(&keys[0]);
        let mut forged = transfer(1).sign(&keys[0]);
        forged.signature.0[5] ^= 1;
        let verdicts = admit_transaction_batches(
            &ledger,
            &[
                codec::encode(&vec![forged.to_bytes()]),
                codec::encode(&vec![good.to_bytes()]),
                vec![0xff; 7],
            ],
            |_, _| true,
        );
        assert_eq!(
            verdicts,
            vec![Verdict::Reject, Verdict::Accept, Verdict::Reject]
        );
        assert_eq!(ledger.mempool_size().0, 1);
    }

    /// Each peer's gossiped transactions draw on its own bucket: a flood
    /// from one peer is cut at the burst and then at the rate, while
    /// another peer's batches still pass.
    #[test]
    fn each_peer_gets_a_gossip_transaction_budget() {
        let mut budgets = GossipBudgets::new(5_000);
        let (flooder, other) = (PeerId::random(), PeerId::random());
        let start = Instant::now();
        let taken = (0..100)
            .filter(|_| budgets.take(flooder, 1_000, start))
            .count();
        assert_eq!(taken, 10, "two seconds' worth at once");
        assert!(budgets.take(other, 2_000, start));
        // Half a second later: 2,500 more.
        let later = start + Duration::from_millis(500);
        assert!(budgets.take(flooder, 2_000, later));
        assert!(!budgets.take(flooder, 1_000, later));
        // A small rate still lets one full gossip batch through.
        let mut small = GossipBudgets::new(10);
        assert!(small.take(flooder, GOSSIP_BATCH_TRANSACTIONS_MAX, start));
        assert!(!small.take(flooder, 1, start));
    }

    /// A batch over its peer's budget is ignored unread: nothing of it is
    /// admitted and the peer is not punished.
    #[test]
    fn a_batch_over_its_budget_is_ignored() {
        let genesis = cairn_genesis::dev::dev_genesis().unwrap();
        let directory = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(
            genesis,
            directory.path(),
            crate::mempool::MempoolLimits {
                transactions_max: 10,
                bytes_max: 10_000,
                min_fee: 0,
            },
            Arc::new(crate::metrics::Metrics::default()),
        )
        .unwrap();
        let keys = cairn_genesis::dev::dev_account_keypairs();
        let good = cairn_types::Transaction {
            chain_id: ledger.chain_id().clone(),
            sender: keys[0].public_key(),
            recipient: keys[1].address(),
            amount: 5,
            fee: 1,
            nonce: 0,
            memo: String::new(),
            kind: cairn_types::TransactionKind::Transfer,
        }
        .sign(&keys[0]);
        let batch = codec::encode(&vec![good.to_bytes()]);
        let verdicts =
            admit_transaction_batches(&ledger, &[batch.clone(), batch], |index, count| {
                assert_eq!(count, 1);
                index == 1
            });
        assert_eq!(verdicts, vec![Verdict::Ignore, Verdict::Accept]);
        assert_eq!(ledger.mempool_size().0, 1);
    }

    #[test]
    fn each_peer_gets_a_request_budget_that_refills() {
        let mut budgets = RequestBudgets::default();
        let peer = PeerId::random();
        let other = PeerId::random();
        let start = Instant::now();
        let served = (0..1_000).filter(|_| budgets.allow_at(peer, start)).count();
        assert_eq!(served, PEER_REQUESTS_BURST as usize);
        assert!(
            budgets.allow_at(other, start),
            "another peer has its own budget"
        );
        assert!(budgets.allow_at(peer, start + Duration::from_millis(100)));
        let later = start + Duration::from_secs(1);
        let refilled = (0..1_000).filter(|_| budgets.allow_at(peer, later)).count();
        assert!((40..=60).contains(&refilled), "{refilled}");
    }

    #[test]
    fn the_gossip_gate_checks_signatures_proposers_blocks_windows_and_evidence() {
        let genesis = cairn_genesis::dev::dev_genesis().unwrap();
        let directory = tempfile::tempdir().unwrap();
        let ledger = Arc::new(
            Ledger::open(
                genesis,
                directory.path(),
                crate::mempool::MempoolLimits {
                    transactions_max: 10,
                    bytes_max: 10_000,
                    min_fee: 0,
                },
                Arc::new(crate::metrics::Metrics::default()),
            )
            .unwrap(),
        );
        let key = cairn_genesis::dev::dev_validator_keypair();
        let (inbox, mut queued) = mpsc::channel(16);
        let mut gate = GossipGate::new(Arc::clone(&ledger), inbox, SyncHandle::detached());
        let vote = |height: u64, round: u32| {
            cairn_types::Vote::new_signed(
                ledger.chain_id(),
                cairn_types::VoteType::Prevote,
                Height(height),
                Round(round),
                None,
                cairn_types::ValidatorIndex(0),
                &key,
            )
        };
        let peer = PeerId::random();
        let mut judge =
            |message: &Message| gate.verdict(Topic::Consensus, &codec::encode(message), peer);

        // A forged vote is rejected and never queued; a good one goes on.
        let mut forged_vote = vote(1, 0);
        forged_vote.round = Round(1);
        assert_eq!(judge(&Message::Vote(forged_vote)), Verdict::Reject);
        assert!(queued.try_recv().is_err());
        assert_eq!(judge(&Message::Vote(vote(1, 0))), Verdict::Accept);
        assert!(matches!(
            queued.try_recv(),
            Ok(HostEvent::Input(Input::Vote(_)))
        ));
        // Far ahead or already decided: ignored (not punished), not queued.
        assert_eq!(judge(&Message::Vote(vote(50, 0))), Verdict::Ignore);
        assert!(queued.try_recv().is_err());

        // A proposal with its block: accepted; the same proposal with a
        // junk block, or signed for a block other than the one attached, is
        // rejected.
        let block = ledger
            .build_block(crate::ledger::BlockRequest {
                proposer: key.address(),
                time: Timestamp(cairn_genesis::dev::dev_genesis().unwrap().genesis_time.0 + 1),
                parent_certificate: None,
                evidence: Vec::new(),
            })
            .unwrap();
        let proposal = cairn_types::Proposal::new_signed(
            ledger.chain_id(),
            Height(1),
            Round(0),
            None,
            block.hash(),
            cairn_types::ValidatorIndex(0),
            &key,
        );
        let signed = |block: Block| {
            Message::Proposal(cairn_consensus::SignedProposal {
                proposal: proposal.clone(),
                block: Arc::new(block),
            })
        };
        assert_eq!(judge(&signed(block.clone())), Verdict::Accept);
        assert!(matches!(
            queued.try_recv(),
            Ok(HostEvent::Budgeted(Input::Proposal(_), _))
        ));
        let mut junk = block.clone();
        junk.header.time = Timestamp(junk.header.time.0 + 5);
        assert_eq!(judge(&signed(junk)), Verdict::Reject);
        let mut junk_body = block.clone();
        junk_body.evidence.clear();
        junk_body.transactions.push(
            cairn_types::Transaction {
                chain_id: ledger.chain_id().clone(),
                sender: key.public_key(),
                recipient: key.address(),
                amount: 1,
                fee: 1,
                nonce: 0,
                memo: String::new(),
                kind: cairn_types::TransactionKind::Transfer,
            }
            .sign(&key),
        );
        assert_eq!(judge(&signed(junk_body)), Verdict::Reject);
        assert!(queued.try_recv().is_err());

        // The compact form: checked like the whole one; a good one goes to
        // the assembly (ignored by a gate without one), one whose hashes
        // are not the header's is rejected.
        let whole = cairn_consensus::SignedProposal {
            proposal: proposal.clone(),
            block: Arc::new(block.clone()),
        };
        let compact = CompactProposal::of(&whole);
        let gossip = |compact: &CompactProposal| {
            codec::encode(&ConsensusGossip::CompactProposal(Box::new(compact.clone())))
        };
        assert_eq!(
            gate.verdict(Topic::Consensus, &gossip(&compact), peer),
            Verdict::Ignore
        );
        let (assembly, mut jobs) = mpsc::channel(1);
        let mut gate = gate.with_assembly(assembly);
        assert_eq!(
            gate.verdict(Topic::Consensus, &gossip(&compact), peer),
            Verdict::Accept
        );
        let job = jobs.try_recv().unwrap();
        assert_eq!(job.compact, compact);
        assert_eq!(job.source, peer);
        let mut wrong_hashes = compact.clone();
        wrong_hashes.block.transaction_hashes.push(Hash([7; 32]));
        assert_eq!(
            gate.verdict(Topic::Consensus, &gossip(&wrong_hashes), peer),
            Verdict::Reject
        );
        let mut other_header = compact.clone();
        other_header.block.header.time = Timestamp(other_header.block.header.time.0 + 5);
        assert_eq!(
            gate.verdict(Topic::Consensus, &gossip(&other_header), peer),
            Verdict::Reject
        );
        // A full assembly queue: not taken, not punished.
        assert_eq!(
            gate.verdict(Topic::Consensus, &gossip(&compact), peer),
            Verdict::Accept
        );
        assert_eq!(
            gate.verdict(Topic::Consensus, &gossip(&compact), peer),
            Verdict::Ignore
        );
        assert!(queued.try_recv().is_err());

        // Evidence: one piece per (validator, height); garbage is rejected.
        for topic in [Topic::Consensus, Topic::Evidence, Topic::Decisions] {
            assert_eq!(gate.verdict(topic, &[0xff; 9], peer), Verdict::Reject);
        }
        let evidence = |round: u32| {
            let first = vote(1, round);
            let second = cairn_types::Vote::new_signed(
                ledger.chain_id(),
                cairn_types::VoteType::Prevote,
                Height(1),
                Round(round),
                Some(cairn_types::Hash([round as u8 + 1; 32])),
                cairn_types::ValidatorIndex(0),
                &key,
            );
            cairn_types::Evidence::duplicate_vote(first, second).unwrap()
        };
        assert_eq!(
            gate.verdict(Topic::Evidence, &codec::encode(&evidence(0)), peer),
            Verdict::Accept
        );
        assert!(matches!(queued.try_recv(), Ok(HostEvent::Evidence(_))));
        // More pieces about the same (validator, height) prove nothing new:
        // the first from each peer is ignored (honest peers may each have
        // found another pair), a second from the same peer is rejected.
        let other = PeerId::random();
        assert_eq!(
            gate.verdict(Topic::Evidence, &codec::encode(&evidence(1)), other),
            Verdict::Ignore
        );
        assert_eq!(
            gate.verdict(Topic::Evidence, &codec::encode(&evidence(2)), peer),
            Verdict::Ignore
        );
        for round in 3..100 {
            assert_eq!(
                gate.verdict(Topic::Evidence, &codec::encode(&evidence(round)), peer),
                Verdict::Reject
            );
        }
        assert!(queued.try_recv().is_err());
    }
}
