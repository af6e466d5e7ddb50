//! The event loop: owns the swarm, executes client commands, turns swarm
//! events into node events, runs discovery toward the target peer count,
//! scores and bans peers, and serves inbound requests through the node.
//!
//! Nothing here blocks on the node: events wait in a bounded backlog while
//! the event channel is full; when the backlog is full, gossip is dropped
//! (reported as ignored) and inbound requests are refused.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use libp2p::gossipsub::{self, MessageAcceptance, MessageAuthenticity, MessageId, ValidationMode};
use libp2p::identity::Keypair;
use libp2p::kad::{self, store::MemoryStore};
use libp2p::multiaddr::Protocol as AddrProtocol;
use libp2p::request_response::{self, ProtocolSupport, ResponseChannel};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    allow_block_list, connection_limits, identify, mdns, noise, ping, tcp, yamux, Multiaddr,
    PeerId, StreamProtocol, Swarm,
};
use tokio::sync::{mpsc, oneshot};

use crate::address_book;
use crate::client::{
    Client, Command, Event, GossipMessage, PublishOutcome, RoundStateResponder, SnapshotResponder,
    SyncResponder, ValidationHandle, Verdict,
};
use crate::codec::FrameCodec;
use crate::config::Config;
use crate::limits::{
    ADDRESSES_PER_PEER_MAX, ADDRESS_BOOK_PEERS_MAX, ADDRESS_BOOK_SAVE_INTERVAL_MS,
    BANNED_PEERS_MAX, COMMAND_CHANNEL_CAPACITY_MAX, CONNECTIONS_MAX,
    CONNECTIONS_PENDING_INCOMING_MAX, CONNECTIONS_PENDING_OUTGOING_MAX, CONNECTIONS_PER_PEER_MAX,
    DIALS_PER_TICK_MAX, EVENT_BACKLOG_BYTES_MAX, EVENT_BACKLOG_MAX, EVENT_CHANNEL_CAPACITY_MAX,
    EXTERNAL_ADDRESSES_MAX, HOUSEKEEPING_INTERVAL_MS, INBOUND_REQUESTS_PENDING_MAX,
    INBOUND_RESPONSE_TIMEOUT_MS, KNOWN_PEERS_MAX, PING_INTERVAL_MS, PING_TIMEOUT_MS,
    PUBLISH_BUFFER_BYTES_MAX, PUBLISH_BUFFER_MESSAGES_MAX, RECONNECT_BACKOFF_BASE_MS,
    RECONNECT_BACKOFF_MAX_MS, REQUEST_STREAMS_CONCURRENT_MAX, SCORE_ACCEPT_REWARD,
    SCORE_BAN_THRESHOLD, SCORE_MAX, SCORE_REJECT_PENALTY,
};
use crate::metrics::{add, Metrics};
use crate::protocol::{
    decode, encode, fit_round_state, fit_snapshot_response, fit_sync_response, refusal, Protocol,
    RoundStateRequest, RoundStateResponse, SnapshotRequest, SnapshotResponse, SyncRequest,
    SyncResponse,
};
use crate::topic::Topic;
use crate::Error;

/// Most outbound requests waiting for an answer at once.
pub const OUTBOUND_REQUESTS_PENDING_MAX: usize = 1024;
/// How many housekeeping ticks between re-dials of the bootstrap peers
/// while no peer is connected.
const BOOTSTRAP_REDIAL_TICKS: u64 = 5;
/// Duplicate cache of gossipsub: how long a message id is remembered.
const GOSSIP_DUPLICATE_CACHE_MS: u64 = 120_000;
/// Kademlia query timeout.
const KAD_QUERY_TIMEOUT_MS: u64 = 30_000;

/// All behaviours of a Cairn node.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    limits: connection_limits::Behaviour,
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<MemoryStore>,
    mdns: Toggle<mdns::tokio::Behaviour>,
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<FrameCodec>,
    round_state: request_response::Behaviour<FrameCodec>,
    snapshot: request_response::Behaviour<FrameCodec>,
}

/// The answer of the node to one inbound request, once it arrives.
enum InboundAnswer {
    Sync {
        channel: ResponseChannel<Vec<u8>>,
        request: SyncRequest,
        answer: Option<SyncResponse>,
    },
    RoundState {
        channel: ResponseChannel<Vec<u8>>,
        answer: Option<RoundStateResponse>,
    },
    Snapshot {
        channel: ResponseChannel<Vec<u8>>,
        request: SnapshotRequest,
        answer: Option<SnapshotResponse>,
    },
}

/// An outbound request waiting for its answer: the peer and the reply.
type PendingRequest = (PeerId, oneshot::Sender<Result<Vec<u8>, Error>>);

type InboundFuture = Pin<Box<dyn Future<Output = InboundAnswer> + Send>>;

/// The identify protocol version: `/cairn/<chain id>/1`, then
/// `/<genesis hash>` when known. Peers with another one are not peered with.
pub fn identify_protocol_version(chain: &str, genesis_hash: &str) -> String {
    if genesis_hash.is_empty() {
        format!("/cairn/{chain}/1")
    } else {
        format!("/cairn/{chain}/1/{genesis_hash}")
    }
}

/// "chain C (genesis G)" from an identify protocol version, for logs; the
/// version itself when it is not Cairn's.
fn describe_identify_protocol(version: &str) -> String {
    const SHOWN_BYTES_MAX: usize = 160;
    let mut parts = version.strip_prefix("/cairn/").map(|rest| rest.split('/'));
    match parts
        .as_mut()
        .map(|parts| (parts.next(), parts.next(), parts.next()))
    {
        Some((Some(chain), Some(_), Some(genesis))) => format!("chain {chain} (genesis {genesis})"),
        Some((Some(chain), Some(_), None)) => format!("chain {chain} (genesis not announced)"),
        _ => {
            let shown: String = version.chars().take(SHOWN_BYTES_MAX).collect();
            format!("another protocol ({shown:?})")
        }
    }
}

/// A peer the node may dial: its addresses, and how its dials fared.
struct KnownPeer {
    /// Where it was seen listening (without `/p2p/`), newest last.
    addresses: Vec<Multiaddr>,
    /// Dials in a row that failed (0 after a connection).
    failures: u32,
    /// Not dialled again before this (backoff after failures).
    retry_at: Instant,
}

/// The wait before the next dial of a peer after `failures` failed dials
/// in a row: [`RECONNECT_BACKOFF_BASE_MS`] doubled per failure, at most
/// [`RECONNECT_BACKOFF_MAX_MS`].
pub(crate) fn reconnect_backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let wait = RECONNECT_BACKOFF_BASE_MS.saturating_mul(1 << doublings);
    Duration::from_millis(wait.min(RECONNECT_BACKOFF_MAX_MS))
}

/// Whether the address is a loopback one (127.0.0.0/8, ::1).
fn is_loopback(address: &Multiaddr) -> bool {
    address.iter().any(|p| match p {
        AddrProtocol::Ip4(ip) => ip.is_loopback(),
        AddrProtocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}

/// Whether the address is an unspecified one (0.0.0.0, ::), which no peer
/// can dial.
fn is_unspecified(address: &Multiaddr) -> bool {
    address.iter().any(|p| match p {
        AddrProtocol::Ip4(ip) => ip.is_unspecified(),
        AddrProtocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}

/// Whether a node whose bound listen addresses are `listening` advertises
/// `address` to its peers: never an unspecified address, and a loopback
/// one only when the node is bound to nothing else (a node on one
/// machine's loopback, whose peers all are on that machine).
pub fn is_advertisable(address: &Multiaddr, listening: &[Multiaddr]) -> bool {
    if is_unspecified(address) {
        return false;
    }
    !is_loopback(address) || listening.iter().all(is_loopback)
}

/// Owns the swarm; run it with [`EventLoop::run`] on a tokio task.
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    config: Config,
    chain: String,
    kad_protocol: StreamProtocol,
    identify_protocol: String,
    commands: mpsc::Receiver<Command>,
    command_sender: mpsc::WeakSender<Command>,
    events: mpsc::Sender<Event>,
    events_closed: bool,
    backlog: VecDeque<Event>,
    backlog_bytes: usize,
    metrics: Metrics,
    connected: HashSet<PeerId>,
    /// Peers connected over a loopback address: the only ones whose
    /// advertised loopback addresses mean something to us.
    loopback_peers: HashSet<PeerId>,
    known: HashMap<PeerId, KnownPeer>,
    bootstrap: Vec<(PeerId, Multiaddr)>,
    listen: Vec<Multiaddr>,
    scores: HashMap<PeerId, f64>,
    bans: HashMap<PeerId, Instant>,
    publish_buffer: VecDeque<(Topic, Vec<u8>)>,
    publish_buffer_bytes: usize,
    outbound: HashMap<request_response::OutboundRequestId, PendingRequest>,
    inbound: FuturesUnordered<InboundFuture>,
    ticks: u64,
}

/// Builds the swarm and starts listening. Returns the client, the event
/// stream and the loop to spawn. Must be called inside a tokio runtime.
pub fn new(config: Config) -> Result<(Client, mpsc::Receiver<Event>, EventLoop), Error> {
    let chain = config.chain_id.as_str().to_string();
    let metrics = Metrics::default();
    let keypair = config.keypair.clone();
    let peer_id = keypair.public().to_peer_id();
    let kad_protocol = StreamProtocol::try_from_owned(format!("/cairn/{chain}/kad/1"))
        .map_err(|e| Error::Build(e.to_string()))?;
    let identify_protocol = identify_protocol_version(&chain, &config.genesis_hash);
    let build = |e: &dyn std::fmt::Display| Error::Build(e.to_string());

    let gossip_config = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(config.gossip_heartbeat)
        // Anonymous: gossipsub neither signs nor checks an author. Every
        // payload Cairn gossips (transactions, proposals, votes, evidence,
        // commit certificates) carries its own ed25519 signatures, checked
        // by the node, and peers are scored by who forwarded a message; a
        // second, per-message libp2p signature cost one ed25519 signing per
        // publish and one verification per received message (3% of a
        // node's CPU under load) and proved nothing more.
        .validation_mode(ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(|message: &gossipsub::Message| {
            MessageId::new(cairn_types::sha256(&message.data).as_bytes())
        })
        .max_transmit_size(config.gossip_transmit_bytes_max)
        .duplicate_cache_time(Duration::from_millis(GOSSIP_DUPLICATE_CACHE_MS))
        .build()
        .map_err(|e| build(&e))?;

    let make_behaviour =
        |key: &Keypair| -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
            let limits = connection_limits::ConnectionLimits::default()
                .with_max_established(Some(CONNECTIONS_MAX))
                .with_max_established_per_peer(Some(CONNECTIONS_PER_PEER_MAX))
                .with_max_pending_incoming(Some(CONNECTIONS_PENDING_INCOMING_MAX))
                .with_max_pending_outgoing(Some(CONNECTIONS_PENDING_OUTGOING_MAX));
            let mut kad_config = kad::Config::new(kad_protocol.clone());
            kad_config.set_query_timeout(Duration::from_millis(KAD_QUERY_TIMEOUT_MS));
            // Without bootstrap peers Kademlia's own periodic bootstrap only
            // warns "No known peers"; the random walks still run, and
            // peers that dial in fill the table.
            kad_config.set_periodic_bootstrap_interval(
                (!config.bootstrap.is_empty()).then_some(config.random_walk_interval),
            );
            let mut kad =
                kad::Behaviour::with_config(peer_id, MemoryStore::new(peer_id), kad_config);
            let ping_config = ping::Config::new()
                .with_interval(Duration::from_millis(PING_INTERVAL_MS))
                .with_timeout(Duration::from_millis(PING_TIMEOUT_MS));
            kad.set_mode(Some(kad::Mode::Server));
            let mdns = if config.mdns {
                Some(mdns::tokio::Behaviour::new(
                    mdns::Config::default(),
                    peer_id,
                )?)
            } else {
                None
            };
            let authenticity = MessageAuthenticity::Anonymous;
            let gossipsub = gossipsub::Behaviour::new(authenticity, gossip_config)?;
            let rr_config = request_response::Config::default()
                .with_request_timeout(config.request_timeout)
                .with_max_concurrent_streams(REQUEST_STREAMS_CONCURRENT_MAX);
            let sync = request_response::Behaviour::with_codec(
                FrameCodec::new(Protocol::Sync, metrics.clone()),
                [(
                    StreamProtocol::try_from_owned(Protocol::Sync.name(&chain))?,
                    ProtocolSupport::Full,
                )],
                rr_config.clone(),
            );
            let round_state = request_response::Behaviour::with_codec(
                FrameCodec::new(Protocol::RoundState, metrics.clone()),
                [(
                    StreamProtocol::try_from_owned(Protocol::RoundState.name(&chain))?,
                    ProtocolSupport::Full,
                )],
                rr_config.clone(),
            );
            let snapshot = request_response::Behaviour::with_codec(
                FrameCodec::new(Protocol::Snapshot, metrics.clone()),
                [(
                    StreamProtocol::try_from_owned(Protocol::Snapshot.name(&chain))?,
                    ProtocolSupport::Full,
                )],
                rr_config,
            );
            Ok(Behaviour {
                limits: connection_limits::Behaviour::new(limits),
                blocked: allow_block_list::Behaviour::default(),
                // Identify announces the swarm's external addresses only
                // (set by `refresh_advertised`: the configured external
                // addresses, or the advertisable listen addresses), and
                // keeps no cache of the addresses peers announce: only
                // those the event loop accepted reach Kademlia and dials.
                identify: identify::Behaviour::new(
                    identify::Config::new(identify_protocol.clone(), key.public())
                        .with_agent_version(config.agent_version.clone())
                        .with_hide_listen_addrs(true)
                        .with_cache_size(0),
                ),
                ping: ping::Behaviour::new(ping_config),
                kad,
                mdns: Toggle::from(mdns),
                gossipsub,
                sync,
                round_state,
                snapshot,
            })
        };
    let builder = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| build(&e))?;
    // QUIC (`/udp/<port>/quic-v1` listen addresses) with the `quic` feature.
    #[cfg(feature = "quic")]
    let builder = builder.with_quic();
    let mut swarm = builder
        .with_dns()
        .map_err(|e| build(&e))?
        .with_behaviour(make_behaviour)
        .map_err(|e| build(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_connection_timeout))
        .build();

    for topic in Topic::ALL {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&topic.ident(&chain))
            .map_err(|e| build(&e))?;
    }
    for address in &config.listen_addresses {
        swarm
            .listen_on(address.clone())
            .map_err(|e| Error::Listen {
                address: address.to_string(),
                reason: e.to_string(),
            })?;
    }
    if config.external_addresses.len() > EXTERNAL_ADDRESSES_MAX {
        return Err(Error::BadAddress {
            address: format!("{} external addresses", config.external_addresses.len()),
            reason: format!("at most {EXTERNAL_ADDRESSES_MAX} may be advertised"),
        });
    }
    for address in &config.external_addresses {
        if is_unspecified(address) || peer_of(address).is_some_and(|peer| peer != peer_id) {
            return Err(Error::BadAddress {
                address: address.to_string(),
                reason: "an external address must be one peers can dial: a specific IP or \
                         DNS name and port (not 0.0.0.0 or ::), without another node's /p2p/ id"
                    .to_string(),
            });
        }
    }
    let mut bootstrap = Vec::new();
    for address in &config.bootstrap {
        let peer = peer_of(address).ok_or_else(|| Error::BadAddress {
            address: address.to_string(),
            reason: "a bootstrap address must end with /p2p/<peer id>".to_string(),
        })?;
        if peer == peer_id {
            continue;
        }
        swarm
            .behaviour_mut()
            .kad
            .add_address(&peer, without_peer(address));
        bootstrap.push((peer, address.clone()));
    }

    let (command_tx, command_rx) = mpsc::channel(COMMAND_CHANNEL_CAPACITY_MAX);
    let (event_tx, event_rx) = mpsc::channel(EVENT_CHANNEL_CAPACITY_MAX);
    let client = Client::new(command_tx.clone(), peer_id, metrics.clone());
    let mut event_loop = EventLoop {
        swarm,
        config,
        chain,
        kad_protocol,
        identify_protocol,
        commands: command_rx,
        command_sender: command_tx.downgrade(),
        events: event_tx,
        events_closed: false,
        backlog: VecDeque::new(),
        backlog_bytes: 0,
        metrics,
        connected: HashSet::new(),
        loopback_peers: HashSet::new(),
        known: HashMap::new(),
        bootstrap,
        listen: Vec::new(),
        scores: HashMap::new(),
        bans: HashMap::new(),
        publish_buffer: VecDeque::new(),
        publish_buffer_bytes: 0,
        outbound: HashMap::new(),
        inbound: FuturesUnordered::new(),
        ticks: 0,
    };
    event_loop.load_address_book();
    event_loop.refresh_advertised();
    event_loop.dial_bootstrap();
    event_loop.dial_toward_target();
    Ok((client, event_rx, event_loop))
}

/// Builds the p2p layer and spawns its event loop on the current tokio
/// runtime.
pub fn spawn(
    config: Config,
) -> Result<(Client, mpsc::Receiver<Event>, tokio::task::JoinHandle<()>), Error> {
    let (client, events, event_loop) = new(config)?;
    let handle = tokio::spawn(event_loop.run());
    Ok((client, events, handle))
}

/// Payload bytes an event holds (what the backlog bound counts).
fn event_bytes(event: &Event) -> usize {
    match event {
        Event::Gossip(message) => message.data.len(),
        _ => 0,
    }
}

/// The peer id at the end of an address, if any.
pub fn peer_of(address: &Multiaddr) -> Option<PeerId> {
    address.iter().find_map(|p| match p {
        AddrProtocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

/// The address without its `/p2p/` component.
fn without_peer(address: &Multiaddr) -> Multiaddr {
    address
        .iter()
        .filter(|p| !matches!(p, AddrProtocol::P2p(_)))
        .collect()
}

impl EventLoop {
    /// Runs until every client is dropped or [`Client::shutdown`] is called.
    pub async fn run(mut self) {
        let mut housekeeping =
            tokio::time::interval(Duration::from_millis(HOUSEKEEPING_INTERVAL_MS));
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut random_walk = tokio::time::interval(self.config.random_walk_interval);
        random_walk.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let events = self.events.clone();
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown { reply }) => {
                        self.save_address_book();
                        let _ = reply.send(());
                        break;
                    }
                    Some(command) => self.on_command(command),
                    None => {
                        self.save_address_book();
                        break;
                    }
                },
                Some(answer) = self.inbound.next(), if !self.inbound.is_empty() => {
                    self.on_inbound_answer(answer)
                }
                permit = events.reserve(), if !self.backlog.is_empty() && !self.events_closed => {
                    match permit {
                        Ok(permit) => {
                            if let Some(event) = self.backlog.pop_front() {
                                self.backlog_bytes -= event_bytes(&event);
                                permit.send(event);
                            }
                        }
                        Err(_) => {
                            self.events_closed = true;
                            self.backlog.clear();
                            self.backlog_bytes = 0;
                        }
                    }
                }
                _ = housekeeping.tick() => self.housekeeping(),
                _ = random_walk.tick() => self.random_walk(),
            }
        }
        tracing::debug!("p2p event loop stopped");
    }

    /// Queues an event for the node; `false` when the backlog is full.
    fn emit(&mut self, event: Event) -> bool {
        if self.events_closed {
            return false;
        }
        if self.backlog.is_empty() {
            match self.events.try_send(event) {
                Ok(()) => return true,
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.events_closed = true;
                    return false;
                }
                Err(mpsc::error::TrySendError::Full(event)) => {
                    self.backlog_bytes += event_bytes(&event);
                    self.backlog.push_back(event);
                    return true;
                }
            }
        }
        if self.backlog_full() {
            return false;
        }
        self.backlog_bytes += event_bytes(&event);
        self.backlog.push_back(event);
        true
    }

    /// Whether the backlog holds as many events or bytes as allowed.
    fn backlog_full(&self) -> bool {
        self.backlog.len() >= EVENT_BACKLOG_MAX || self.backlog_bytes >= EVENT_BACKLOG_BYTES_MAX
    }

    fn emit_or_count(&mut self, event: Event) {
        if !self.emit(event) {
            tracing::warn!("p2p event backlog full; event dropped");
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish { topic, data, reply } => {
                let _ = reply.send(self.publish(topic, data));
            }
            Command::Validate {
                id,
                source,
                verdict,
            } => self.on_verdict(id, source, verdict),
            Command::Request {
                protocol,
                peer,
                body,
                reply,
            } => {
                if self.outbound.len() >= OUTBOUND_REQUESTS_PENDING_MAX {
                    let _ = reply.send(Err(Error::Request {
                        peer,
                        reason: format!(
                            "{OUTBOUND_REQUESTS_PENDING_MAX} requests already pending; retry later"
                        ),
                    }));
                    return;
                }
                if self.bans.contains_key(&peer) {
                    let _ = reply.send(Err(Error::Request {
                        peer,
                        reason: "the peer is banned".to_string(),
                    }));
                    return;
                }
                let behaviour = self.swarm.behaviour_mut();
                let id = match protocol {
                    Protocol::Sync => behaviour.sync.send_request(&peer, body),
                    Protocol::RoundState => behaviour.round_state.send_request(&peer, body),
                    Protocol::Snapshot => behaviour.snapshot.send_request(&peer, body),
                };
                self.outbound.insert(id, (peer, reply));
            }
            Command::Peers { reply } => {
                let _ = reply.send(self.connected.iter().copied().collect());
            }
            Command::PeerScores { reply } => {
                let scores = self
                    .connected
                    .iter()
                    .map(|peer| (*peer, self.scores.get(peer).copied().unwrap_or(0.0)))
                    .collect();
                let _ = reply.send(scores);
            }
            Command::TopicPeers { topic, reply } => {
                let hash = topic.ident(&self.chain).hash();
                let peers = self
                    .swarm
                    .behaviour()
                    .gossipsub
                    .all_peers()
                    .filter(|(_, topics)| topics.contains(&&hash))
                    .map(|(peer, _)| *peer)
                    .collect();
                let _ = reply.send(peers);
            }
            Command::Ban {
                peer,
                duration,
                reply,
            } => {
                self.ban(peer, duration);
                let _ = reply.send(());
            }
            Command::Banned { reply } => {
                let _ = reply.send(self.bans.keys().copied().collect());
            }
            Command::Dial { address, reply } => {
                if let Some(peer) = peer_of(&address) {
                    if self.bans.contains_key(&peer) {
                        let _ = reply.send(Err(Error::Dial {
                            address: address.to_string(),
                            reason: "the peer is banned".to_string(),
                        }));
                        return;
                    }
                }
                let result = self.swarm.dial(address.clone()).map_err(|e| Error::Dial {
                    address: address.to_string(),
                    reason: e.to_string(),
                });
                let _ = reply.send(result);
            }
            Command::ListenAddresses { reply } => {
                let _ = reply.send(self.listen.clone());
            }
            Command::Shutdown { reply } => {
                let _ = reply.send(());
            }
        }
    }

    /// Whether any connected peer is subscribed to `topic`.
    fn topic_has_peers(&self, topic: Topic) -> bool {
        let hash = topic.ident(&self.chain).hash();
        self.swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .any(|(_, topics)| topics.contains(&&hash))
    }

    fn publish(&mut self, topic: Topic, data: Vec<u8>) -> Result<PublishOutcome, Error> {
        let limit = self.config.gossip_transmit_bytes_max;
        let size = data.len();
        if size > limit {
            return Err(Error::TooLarge {
                what: "gossip payload",
                size,
                limit,
            });
        }
        if !self.topic_has_peers(topic) {
            if self.publish_buffer.len() >= PUBLISH_BUFFER_MESSAGES_MAX
                || self.publish_buffer_bytes.saturating_add(size) > PUBLISH_BUFFER_BYTES_MAX
            {
                return Err(Error::Publish {
                    topic: topic.name(&self.chain),
                    reason: format!(
                        "no peer is subscribed and the publish buffer is full \
                         ({PUBLISH_BUFFER_MESSAGES_MAX} messages or \
                         {PUBLISH_BUFFER_BYTES_MAX} bytes); connect to peers first"
                    ),
                });
            }
            self.publish_buffer_bytes += size;
            self.publish_buffer.push_back((topic, data));
            return Ok(PublishOutcome::Buffered);
        }
        let ident = topic.ident(&self.chain);
        match self.swarm.behaviour_mut().gossipsub.publish(ident, data) {
            Ok(_) => {
                add(&self.metrics.counters().gossip_bytes_out, size);
                Ok(PublishOutcome::Sent)
            }
            Err(gossipsub::PublishError::Duplicate) => Ok(PublishOutcome::Duplicate),
            Err(gossipsub::PublishError::MessageTooLarge) => Err(Error::TooLarge {
                what: "gossip message",
                size,
                limit,
            }),
            Err(e) => Err(Error::Publish {
                topic: topic.name(&self.chain),
                reason: e.to_string(),
            }),
        }
    }

    /// Sends buffered messages whose topic now has a subscriber.
    fn flush_publish_buffer(&mut self) {
        let pending = std::mem::take(&mut self.publish_buffer);
        self.publish_buffer_bytes = 0;
        for (topic, data) in pending {
            let size = data.len();
            if !self.topic_has_peers(topic) {
                self.publish_buffer_bytes += size;
                self.publish_buffer.push_back((topic, data));
                continue;
            }
            let ident = topic.ident(&self.chain);
            match self.swarm.behaviour_mut().gossipsub.publish(ident, data) {
                Ok(_) => add(&self.metrics.counters().gossip_bytes_out, size),
                Err(gossipsub::PublishError::Duplicate) => {}
                Err(e) => tracing::debug!(error = %e, "dropping buffered gossip message"),
            }
        }
    }

    fn on_verdict(&mut self, id: MessageId, source: PeerId, verdict: Verdict) {
        let acceptance = match verdict {
            Verdict::Accept => MessageAcceptance::Accept,
            Verdict::Reject => MessageAcceptance::Reject,
            Verdict::Ignore => MessageAcceptance::Ignore,
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&id, &source, acceptance);
        match verdict {
            Verdict::Accept => {
                if let Some(score) = self.scores.get_mut(&source) {
                    *score = (*score + SCORE_ACCEPT_REWARD).min(SCORE_MAX);
                } else if self.scores.len() < KNOWN_PEERS_MAX {
                    self.scores.insert(source, SCORE_ACCEPT_REWARD);
                }
            }
            Verdict::Reject => {
                add(&self.metrics.counters().gossip_messages_rejected, 1);
                if !self.scores.contains_key(&source) && self.scores.len() >= KNOWN_PEERS_MAX {
                    // Make room: forget a peer in good standing.
                    let forget = self
                        .scores
                        .iter()
                        .find(|(_, s)| **s >= 0.0)
                        .map(|(p, _)| *p);
                    if let Some(peer) = forget {
                        self.scores.remove(&peer);
                    }
                }
                let score = self.scores.entry(source).or_insert(0.0);
                *score += SCORE_REJECT_PENALTY;
                if *score < SCORE_BAN_THRESHOLD {
                    tracing::info!(peer = %source, "peer score below threshold; banning");
                    self.ban(source, self.config.ban_duration);
                }
            }
            Verdict::Ignore => {}
        }
    }

    fn ban(&mut self, peer: PeerId, duration: Duration) {
        if peer == *self.swarm.local_peer_id() {
            return;
        }
        let until = Instant::now() + duration;
        if !self.bans.contains_key(&peer) && self.bans.len() >= BANNED_PEERS_MAX {
            let soonest = self.bans.iter().min_by_key(|(_, u)| **u).map(|(p, _)| *p);
            if let Some(lifted) = soonest {
                self.bans.remove(&lifted);
                let behaviour = self.swarm.behaviour_mut();
                behaviour.blocked.unblock_peer(lifted);
                behaviour.gossipsub.remove_blacklisted_peer(&lifted);
            }
        }
        if self.bans.insert(peer, until).is_none() {
            add(&self.metrics.counters().peers_banned, 1);
        }
        let behaviour = self.swarm.behaviour_mut();
        behaviour.blocked.block_peer(peer);
        behaviour.gossipsub.blacklist_peer(&peer);
        behaviour.kad.remove_peer(&peer);
        self.known.remove(&peer);
        let _ = self.swarm.disconnect_peer_id(peer);
        self.emit_or_count(Event::PeerBanned { peer, duration });
    }

    fn remember(&mut self, peer: PeerId, address: Multiaddr) {
        if peer == *self.swarm.local_peer_id()
            || self.bans.contains_key(&peer)
            || is_unspecified(&address)
        {
            return;
        }
        let address = without_peer(&address);
        if !self.known.contains_key(&peer) && self.known.len() >= KNOWN_PEERS_MAX {
            // Make room by forgetting the peer that failed most, if any did.
            let worst = self
                .known
                .iter()
                .filter(|(_, known)| known.failures > 0)
                .max_by_key(|(_, known)| known.failures)
                .map(|(peer, _)| *peer);
            match worst {
                Some(worst) => {
                    self.known.remove(&worst);
                }
                None => return,
            }
        }
        let known = self.known.entry(peer).or_insert_with(|| KnownPeer {
            addresses: Vec::new(),
            failures: 0,
            retry_at: Instant::now(),
        });
        if let Some(position) = known.addresses.iter().position(|a| *a == address) {
            // Seen again: newest last, tried first.
            known.addresses.remove(position);
        } else if known.addresses.len() >= ADDRESSES_PER_PEER_MAX {
            known.addresses.remove(0);
        }
        known.addresses.push(address);
    }

    /// A dial of `peer` failed: try it again after the backoff.
    fn dial_failed(&mut self, peer: PeerId) {
        if let Some(known) = self.known.get_mut(&peer) {
            known.failures = known.failures.saturating_add(1);
            known.retry_at = Instant::now() + reconnect_backoff(known.failures);
        }
    }

    /// Adds the peers of the address book file (when configured) to
    /// Kademlia and to the dial candidates.
    fn load_address_book(&mut self) {
        let Some(path) = self.config.address_book_file.clone() else {
            return;
        };
        match address_book::load(&path) {
            Ok(peers) => {
                let count = peers.len();
                for (peer, addresses) in peers {
                    if peer == *self.swarm.local_peer_id() {
                        continue;
                    }
                    for address in addresses {
                        self.swarm
                            .behaviour_mut()
                            .kad
                            .add_address(&peer, address.clone());
                        self.remember(peer, address);
                    }
                }
                if count > 0 {
                    tracing::info!(
                        peers = count,
                        "address book {}: {count} peers to dial besides the bootstrap peers",
                        path.display()
                    );
                }
            }
            Err(error) => tracing::warn!(
                "{error}; starting from the bootstrap peers alone (the book is rewritten within {} s)",
                ADDRESS_BOOK_SAVE_INTERVAL_MS / 1000
            ),
        }
    }

    /// The peers worth saving: those of the Kademlia table first, then the
    /// other known peers that did not fail, at most
    /// [`ADDRESS_BOOK_PEERS_MAX`].
    fn address_book_entries(&mut self) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let mut entries: Vec<(PeerId, Vec<Multiaddr>)> = Vec::new();
        let mut seen = HashSet::new();
        for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
            for entry in bucket.iter() {
                let peer = *entry.node.key.preimage();
                let addresses: Vec<Multiaddr> = entry.node.value.iter().cloned().collect();
                if seen.insert(peer) {
                    entries.push((peer, addresses));
                }
            }
        }
        let mut others: Vec<(&PeerId, &KnownPeer)> = self
            .known
            .iter()
            .filter(|(peer, _)| !seen.contains(*peer))
            .collect();
        others.sort_by_key(|(_, known)| known.failures);
        for (peer, known) in others {
            entries.push((*peer, known.addresses.clone()));
        }
        for (peer, addresses) in &mut entries {
            // The addresses we know best for a peer (kept in `known`) first.
            if let Some(known) = self.known.get(peer) {
                for address in known.addresses.iter().rev() {
                    if !addresses.contains(address) {
                        addresses.insert(0, address.clone());
                    }
                }
            }
            addresses.retain(|address| !is_unspecified(address));
            addresses.truncate(ADDRESSES_PER_PEER_MAX);
        }
        entries.retain(|(_, addresses)| !addresses.is_empty());
        entries.truncate(ADDRESS_BOOK_PEERS_MAX);
        entries
    }

    /// Writes the address book file (when configured).
    fn save_address_book(&mut self) {
        let Some(path) = self.config.address_book_file.clone() else {
            return;
        };
        let entries = self.address_book_entries();
        if entries.is_empty() {
            // Keep what an earlier run learned until this one knows someone.
            return;
        }
        if let Err(error) = address_book::save(&path, &entries) {
            tracing::warn!("{error}; the node will need its bootstrap peers after a restart");
        }
    }

    /// Sets the swarm's external addresses, which identify announces: the
    /// configured external addresses, or else the advertisable listen
    /// addresses (see [`is_advertisable`]).
    fn refresh_advertised(&mut self) {
        let wanted: Vec<Multiaddr> = if self.config.external_addresses.is_empty() {
            self.listen
                .iter()
                .filter(|address| is_advertisable(address, &self.listen))
                .cloned()
                .collect()
        } else {
            self.config.external_addresses.clone()
        };
        let current: Vec<Multiaddr> = self.swarm.external_addresses().cloned().collect();
        for address in &current {
            if !wanted.contains(address) {
                self.swarm.remove_external_address(address);
            }
        }
        for address in wanted {
            if !current.contains(&address) {
                self.swarm.add_external_address(address);
            }
        }
    }

    fn dial_bootstrap(&mut self) {
        for (peer, address) in self.bootstrap.clone() {
            if self.connected.contains(&peer) || self.bans.contains_key(&peer) {
                continue;
            }
            if let Some(known) = self.known.get_mut(&peer) {
                // This dial counts as the known peer's next attempt.
                known.retry_at = Instant::now() + reconnect_backoff(known.failures.max(1));
            }
            let opts = DialOpts::peer_id(peer)
                .addresses(vec![without_peer(&address)])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(%address, error = %e, "bootstrap dial failed");
            }
        }
    }

    /// Dials known peers while below the target peer count: those due
    /// (past their backoff), the ones that failed least first.
    fn dial_toward_target(&mut self) {
        if self.connected.len() >= self.config.target_peers {
            return;
        }
        let wanted = (self.config.target_peers - self.connected.len()).min(DIALS_PER_TICK_MAX);
        let now = Instant::now();
        let mut due: Vec<(u32, PeerId)> = self
            .known
            .iter()
            .filter(|(peer, known)| {
                known.retry_at <= now
                    && !self.connected.contains(peer)
                    && !self.bans.contains_key(peer)
                    && !self.swarm.is_connected(peer)
            })
            .map(|(peer, known)| (known.failures, *peer))
            .collect();
        due.sort_unstable_by_key(|(failures, _)| *failures);
        for (_, peer) in due.into_iter().take(wanted) {
            let Some(known) = self.known.get_mut(&peer) else {
                continue;
            };
            // Set before dialling: a dial that is already under way (or
            // refused at once) waits its turn like a failed one.
            known.retry_at = now + reconnect_backoff(known.failures.max(1));
            let addresses: Vec<Multiaddr> = known.addresses.iter().rev().cloned().collect();
            let opts = DialOpts::peer_id(peer)
                .addresses(addresses)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::trace!(%peer, error = %e, "dial failed");
            }
        }
    }

    fn housekeeping(&mut self) {
        self.ticks += 1;
        let now = Instant::now();
        let expired: Vec<PeerId> = self
            .bans
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in expired {
            self.bans.remove(&peer);
            self.scores.remove(&peer);
            let behaviour = self.swarm.behaviour_mut();
            behaviour.blocked.unblock_peer(peer);
            behaviour.gossipsub.remove_blacklisted_peer(&peer);
        }
        if self.connected.is_empty() && self.ticks % BOOTSTRAP_REDIAL_TICKS == 0 {
            self.dial_bootstrap();
        }
        if self.ticks % (ADDRESS_BOOK_SAVE_INTERVAL_MS / HOUSEKEEPING_INTERVAL_MS).max(1) == 0 {
            self.save_address_book();
        }
        self.dial_toward_target();
        if !self.publish_buffer.is_empty() {
            self.flush_publish_buffer();
        }
    }

    fn random_walk(&mut self) {
        if self.connected.is_empty() {
            return;
        }
        let kad = &mut self.swarm.behaviour_mut().kad;
        kad.get_closest_peers(PeerId::random());
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::debug!(%address, "p2p listening");
                if !self.listen.contains(&address) {
                    self.listen.push(address.clone());
                }
                self.refresh_advertised();
                self.emit_or_count(Event::ListenAddress { address });
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen.retain(|a| *a != address);
                self.refresh_advertised();
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                if self.bans.contains_key(&peer_id) {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                if num_established.get() == 1 && self.connected.insert(peer_id) {
                    self.metrics.counters().peers_connected.store(
                        self.connected.len() as u64,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    let address = endpoint.get_remote_address().clone();
                    if is_loopback(&address) {
                        self.loopback_peers.insert(peer_id);
                    }
                    if endpoint.is_dialer() {
                        self.remember(peer_id, address.clone());
                    }
                    if let Some(known) = self.known.get_mut(&peer_id) {
                        known.failures = 0;
                        known.retry_at = Instant::now();
                    }
                    self.emit_or_count(Event::PeerConnected {
                        peer: peer_id,
                        address,
                        outbound: endpoint.is_dialer(),
                    });
                    if self.connected.len() == 1 {
                        // First contact: look for the rest of the network.
                        let kad = &mut self.swarm.behaviour_mut().kad;
                        let _ = kad.bootstrap();
                    }
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => self.on_peer_gone(peer_id),
            // Redial later, with backoff: the link may come back.
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                ..
            } if !self.connected.contains(&peer) => {
                self.dial_failed(peer);
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    /// The last connection to `peer_id` closed.
    fn on_peer_gone(&mut self, peer_id: PeerId) {
        self.loopback_peers.remove(&peer_id);
        if self.connected.remove(&peer_id) {
            self.metrics.counters().peers_connected.store(
                self.connected.len() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            if self.scores.get(&peer_id).is_some_and(|s| *s >= 0.0) {
                self.scores.remove(&peer_id);
            }
            self.emit_or_count(Event::PeerDisconnected { peer: peer_id });
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                if info.protocol_version != self.identify_protocol {
                    // Said once per ban: the ban stops the reconnect loop
                    // (and the transport noise each attempt made).
                    tracing::warn!(
                        peer = %peer_id,
                        "peer {peer_id} is on {}, we are on {}; not peering with it for {} s",
                        describe_identify_protocol(&info.protocol_version),
                        describe_identify_protocol(&self.identify_protocol),
                        self.config.ban_duration.as_secs()
                    );
                    self.ban(peer_id, self.config.ban_duration);
                    return;
                }
                let speaks_kad = info.protocols.contains(&self.kad_protocol);
                // A remote peer's loopback address is our own loopback.
                let loopback_ok = self.loopback_peers.contains(&peer_id);
                for address in info.listen_addrs {
                    if is_unspecified(&address) || (is_loopback(&address) && !loopback_ok) {
                        continue;
                    }
                    if speaks_kad {
                        self.swarm
                            .behaviour_mut()
                            .kad
                            .add_address(&peer_id, address.clone());
                    }
                    self.remember(peer_id, address);
                }
            }
            BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer, addresses, ..
            }) => {
                for address in addresses.iter() {
                    self.remember(peer, address.clone());
                }
                self.dial_toward_target();
            }
            BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                result: kad::QueryResult::GetClosestPeers(Ok(ok)),
                ..
            }) => {
                for info in ok.peers {
                    for address in info.addrs {
                        self.remember(info.peer_id, address);
                    }
                }
                self.dial_toward_target();
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, address) in found {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, address.clone());
                    self.remember(peer, address);
                }
                self.dial_toward_target();
            }
            BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(ping::Failure::Timeout | ping::Failure::Other { .. }),
            }) => {
                // A link that went down silently: close the connection so
                // the peer is redialled (with backoff) once it answers.
                tracing::debug!(%peer, "ping failed; closing the connection");
                self.swarm.close_connection(connection);
            }
            BehaviourEvent::Gossipsub(event) => self.on_gossip_event(event),
            BehaviourEvent::Sync(event) => self.on_request_event(Protocol::Sync, event),
            BehaviourEvent::RoundState(event) => self.on_request_event(Protocol::RoundState, event),
            BehaviourEvent::Snapshot(event) => self.on_request_event(Protocol::Snapshot, event),
            _ => {}
        }
    }

    fn on_gossip_event(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let counters = self.metrics.counters();
                add(&counters.gossip_bytes_in, message.data.len());
                let topic = Topic::from_hash(&message.topic, &self.chain);
                let sender = self.command_sender.upgrade();
                let (Some(topic), Some(sender)) = (topic, sender) else {
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            MessageAcceptance::Ignore,
                        );
                    return;
                };
                if self.events_closed || self.backlog_full() {
                    add(&self.metrics.counters().gossip_messages_dropped, 1);
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            MessageAcceptance::Ignore,
                        );
                    return;
                }
                add(&self.metrics.counters().gossip_messages_received, 1);
                let validation = ValidationHandle::new(sender, message_id, propagation_source);
                self.emit_or_count(Event::Gossip(GossipMessage {
                    topic,
                    source: propagation_source,
                    data: message.data,
                    validation,
                }));
            }
            gossipsub::Event::Subscribed { .. } if !self.publish_buffer.is_empty() => {
                self.flush_publish_buffer();
            }
            _ => {}
        }
    }

    fn on_request_event(
        &mut self,
        protocol: Protocol,
        event: request_response::Event<Vec<u8>, Vec<u8>>,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.on_inbound_request(protocol, peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some((_, reply)) = self.outbound.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some((_, reply)) = self.outbound.remove(&request_id) {
                    let _ = reply.send(Err(Error::Request {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, error = %error, ?protocol, "inbound request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn refuse(&mut self, protocol: Protocol, channel: ResponseChannel<Vec<u8>>, reason: String) {
        add(&self.metrics.counters().inbound_requests_refused, 1);
        let reason = refusal(reason);
        let limit = protocol.response_bytes_max();
        let body = match protocol {
            Protocol::Sync => encode("sync response", &SyncResponse::Refused(reason), limit),
            Protocol::RoundState => encode(
                "round-state response",
                &RoundStateResponse::Refused(reason),
                limit,
            ),
            Protocol::Snapshot => encode(
                "snapshot response",
                &SnapshotResponse::Refused(reason),
                limit,
            ),
        };
        if let Ok(body) = body {
            let behaviour = self.swarm.behaviour_mut();
            let _ = match protocol {
                Protocol::Sync => behaviour.sync.send_response(channel, body),
                Protocol::RoundState => behaviour.round_state.send_response(channel, body),
                Protocol::Snapshot => behaviour.snapshot.send_response(channel, body),
            };
        }
    }

    fn on_inbound_request(
        &mut self,
        protocol: Protocol,
        peer: PeerId,
        body: Vec<u8>,
        channel: ResponseChannel<Vec<u8>>,
    ) {
        if self.inbound.len() >= INBOUND_REQUESTS_PENDING_MAX
            || self.backlog_full()
            || self.events_closed
        {
            self.refuse(protocol, channel, "busy; try another peer".to_string());
            return;
        }
        let timeout = Duration::from_millis(INBOUND_RESPONSE_TIMEOUT_MS);
        match protocol {
            Protocol::Sync => {
                let request: SyncRequest =
                    match decode("sync request", &body, protocol.request_bytes_max()) {
                        Ok(r) => r,
                        Err(e) => {
                            self.refuse(protocol, channel, format!("malformed request: {e}"));
                            return;
                        }
                    };
                if let Err(e) = request.check() {
                    self.refuse(protocol, channel, e.to_string());
                    return;
                }
                let (tx, rx) = oneshot::channel();
                self.emit_or_count(Event::SyncRequest {
                    peer,
                    request: request.clone(),
                    reply: SyncResponder { reply: tx },
                });
                self.inbound.push(Box::pin(async move {
                    let answer = tokio::time::timeout(timeout, rx)
                        .await
                        .ok()
                        .and_then(Result::ok);
                    InboundAnswer::Sync {
                        channel,
                        request,
                        answer,
                    }
                }));
            }
            Protocol::RoundState => {
                let request: RoundStateRequest =
                    match decode("round-state request", &body, protocol.request_bytes_max()) {
                        Ok(r) => r,
                        Err(e) => {
                            self.refuse(protocol, channel, format!("malformed request: {e}"));
                            return;
                        }
                    };
                let (tx, rx) = oneshot::channel();
                self.emit_or_count(Event::RoundStateRequest {
                    peer,
                    request,
                    reply: RoundStateResponder { reply: tx },
                });
                self.inbound.push(Box::pin(async move {
                    let answer = tokio::time::timeout(timeout, rx)
                        .await
                        .ok()
                        .and_then(Result::ok);
                    InboundAnswer::RoundState { channel, answer }
                }));
            }
            Protocol::Snapshot => {
                let request: SnapshotRequest =
                    match decode("snapshot request", &body, protocol.request_bytes_max()) {
                        Ok(r) => r,
                        Err(e) => {
                            self.refuse(protocol, channel, format!("malformed request: {e}"));
                            return;
                        }
                    };
                let (tx, rx) = oneshot::channel();
                self.emit_or_count(Event::SnapshotRequest {
                    peer,
                    request: request.clone(),
                    reply: SnapshotResponder { reply: tx },
                });
                self.inbound.push(Box::pin(async move {
                    let answer = tokio::time::timeout(timeout, rx)
                        .await
                        .ok()
                        .and_then(Result::ok);
                    InboundAnswer::Snapshot {
                        channel,
                        request,
                        answer,
                    }
                }));
            }
        }
    }

    fn on_inbound_answer(&mut self, answer: InboundAnswer) {
        match answer {
            InboundAnswer::Sync {
                channel,
                request,
                answer,
            } => {
                let Some(answer) = answer else {
                    self.refuse(
                        Protocol::Sync,
                        channel,
                        "no answer from the node".to_string(),
                    );
                    return;
                };
                let answer = fit_sync_response(&request, answer);
                match encode(
                    "sync response",
                    &answer,
                    Protocol::Sync.response_bytes_max(),
                ) {
                    Ok(body) => {
                        let _ = self.swarm.behaviour_mut().sync.send_response(channel, body);
                    }
                    Err(e) => self.refuse(Protocol::Sync, channel, e.to_string()),
                }
            }
            InboundAnswer::RoundState { channel, answer } => {
                let Some(answer) = answer else {
                    self.refuse(
                        Protocol::RoundState,
                        channel,
                        "no answer from the node".to_string(),
                    );
                    return;
                };
                let answer = fit_round_state(answer);
                match encode(
                    "round-state response",
                    &answer,
                    Protocol::RoundState.response_bytes_max(),
                ) {
                    Ok(body) => {
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .round_state
                            .send_response(channel, body);
                    }
                    Err(e) => self.refuse(Protocol::RoundState, channel, e.to_string()),
                }
            }
            InboundAnswer::Snapshot {
                channel,
                request,
                answer,
            } => {
                let Some(answer) = answer else {
                    self.refuse(
                        Protocol::Snapshot,
                        channel,
                        "no answer from the node".to_string(),
                    );
                    return;
                };
                let answer = fit_snapshot_response(&request, answer);
                match encode(
                    "snapshot response",
                    &answer,
                    Protocol::Snapshot.response_bytes_max(),
                ) {
                    Ok(body) => {
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .snapshot
                            .send_response(channel, body);
                    }
                    Err(e) => self.refuse(Protocol::Snapshot, channel, e.to_string()),
                }
            }
        }
    }
}

#[cfg(test)]
mod identify_tests {
    use super::*;

    #[test]
    fn identify_versions_name_chain_and_genesis() {
        let ours = identify_protocol_version("alpha", "ab12");
        assert_eq!(ours, "/cairn/alpha/1/ab12");
        assert_eq!(
            describe_identify_protocol(&ours),
            "chain alpha (genesis ab12)"
        );
        assert_eq!(
            describe_identify_protocol(&identify_protocol_version("beta", "")),
            "chain beta (genesis not announced)"
        );
        assert!(describe_identify_protocol("/ipfs/0.1.0").starts_with("another protocol"));
        assert!(describe_identify_protocol(&"x".repeat(10_000)).len() < 200);
    }
}

#[cfg(test)]
mod address_tests {
    use super::*;

    fn addresses(texts: &[&str]) -> Vec<Multiaddr> {
        texts.iter().map(|text| text.parse().unwrap()).collect()
    }

    #[test]
    fn a_node_on_a_real_interface_never_advertises_loopback_or_unspecified() {
        // Listening on 0.0.0.0 binds every interface, loopback included.
        let listening = addresses(&["/ip4/127.0.0.1/tcp/26656", "/ip4/10.87.1.2/tcp/26656"]);
        let advertised: Vec<_> = listening
            .iter()
            .filter(|address| is_advertisable(address, &listening))
            .collect();
        assert_eq!(advertised, vec![&listening[1]]);
        for unspecified in addresses(&["/ip4/0.0.0.0/tcp/26656", "/ip6/::/tcp/26656"]) {
            assert!(!is_advertisable(&unspecified, &listening));
            assert!(!is_advertisable(&unspecified, &[]));
        }
        // A node on loopback alone: its peers are on the same machine.
        let local = addresses(&["/ip4/127.0.0.1/tcp/4001"]);
        assert!(is_advertisable(&local[0], &local));
    }

    #[test]
    fn reconnect_backoff_doubles_up_to_its_bound() {
        assert_eq!(
            reconnect_backoff(1),
            Duration::from_millis(RECONNECT_BACKOFF_BASE_MS)
        );
        assert_eq!(
            reconnect_backoff(2),
            Duration::from_millis(2 * RECONNECT_BACKOFF_BASE_MS)
        );
        assert_eq!(
            reconnect_backoff(u32::MAX),
            Duration::from_millis(RECONNECT_BACKOFF_MAX_MS)
        );
    }
}

#[cfg(test)]
mod advertised_tests {
    use super::*;

    /// Builds a loop listening on `listen`, advertising `external`, and
    /// runs its swarm until it has bound its listen addresses; returns
    /// (bound, advertised).
    async fn bound_and_advertised(
        listen: &str,
        external: &[&str],
    ) -> (Vec<Multiaddr>, Vec<Multiaddr>) {
        let chain = cairn_types::ChainId::new("advertise").unwrap();
        let mut config = Config::new(chain, crate::generate_keypair());
        config.listen_addresses = vec![listen.parse().unwrap()];
        config.external_addresses = external.iter().map(|a| a.parse().unwrap()).collect();
        let (_client, _events, mut event_loop) = new(config).unwrap();
        // Interfaces are reported one by one: wait until none comes for a
        // moment.
        loop {
            let next = tokio::time::timeout(
                Duration::from_millis(300),
                event_loop.swarm.select_next_some(),
            )
            .await;
            match next {
                Ok(event) => event_loop.on_swarm_event(event),
                Err(_) if !event_loop.listen.is_empty() => break,
                Err(_) => {}
            }
        }
        let advertised = event_loop.swarm.external_addresses().cloned().collect();
        (event_loop.listen.clone(), advertised)
    }

    #[tokio::test]
    async fn a_node_on_every_interface_advertises_no_loopback_or_unspecified_address() {
        let (bound, advertised) = bound_and_advertised("/ip4/0.0.0.0/tcp/0", &[]).await;
        assert!(
            bound.iter().any(is_loopback),
            "0.0.0.0 binds loopback too: {bound:?}"
        );
        assert!(
            advertised.iter().all(|a| !is_unspecified(a)),
            "{advertised:?}"
        );
        if bound.iter().any(|a| !is_loopback(a)) {
            assert!(
                advertised.iter().all(|a| !is_loopback(a)),
                "loopback advertised beside {bound:?}: {advertised:?}"
            );
            assert!(!advertised.is_empty());
        }
    }

    #[tokio::test]
    async fn configured_external_addresses_are_advertised_instead_of_listen_addresses() {
        let external = "/ip4/203.0.113.7/tcp/26656";
        let (_, advertised) = bound_and_advertised("/ip4/0.0.0.0/tcp/0", &[external]).await;
        assert_eq!(advertised, vec![external.parse::<Multiaddr>().unwrap()]);
        // A node on loopback alone advertises its loopback address.
        let (bound, advertised) = bound_and_advertised("/ip4/127.0.0.1/tcp/0", &[]).await;
        assert_eq!(advertised, bound);
    }

    #[test]
    fn an_unspecified_external_address_is_refused() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let _guard = runtime.enter();
        let chain = cairn_types::ChainId::new("advertise").unwrap();
        let mut config = Config::new(chain, crate::generate_keypair());
        config.listen_addresses = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
        config.external_addresses = vec!["/ip4/0.0.0.0/tcp/26656".parse().unwrap()];
        let error = new(config).err().unwrap().to_string();
        assert!(error.contains("0.0.0.0"), "{error}");
    }
}
