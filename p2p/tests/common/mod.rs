//! Test harness: real swarms on 127.0.0.1 with port 0, each driven by a task
//! that answers events by a policy and reports what it saw.

#![allow(dead_code, missing_docs)]

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_p2p::{
    Client, Config, Event, Keypair, Multiaddr, PeerId, RoundState, RoundStateResponse, SyncBlock,
    SyncHeader, SyncRequest, SyncResponse, SyncStatus, Topic,
};
use cairn_types::{sha256, ChainId, Height};
use tokio::sync::mpsc;

pub const CHAIN: &str = "test-chain";
pub const DEADLINE: Duration = Duration::from_secs(45);

/// What a node's driver saw.
#[derive(Debug, Clone)]
pub enum Seen {
    Gossip {
        topic: Topic,
        source: PeerId,
        data: Vec<u8>,
    },
    Connected(PeerId),
    Disconnected(PeerId),
    Banned(PeerId),
}

/// How a node's driver answers.
#[derive(Debug, Default)]
pub struct Policy {
    /// Reject every gossip message forwarded by these peers.
    pub reject_from: HashSet<PeerId>,
    /// Serve fake blocks at heights 1..=blocks.
    pub blocks: u64,
    /// Ignore (do not forward) gossip payloads larger than this.
    pub ignore_larger_than: Option<usize>,
}

pub struct Node {
    pub client: Client,
    pub peer_id: PeerId,
    pub address: Multiaddr,
    pub seen: mpsc::Receiver<Seen>,
    pub policy: Arc<Mutex<Policy>>,
    pub task: tokio::task::JoinHandle<()>,
}

pub fn chain() -> ChainId {
    ChainId::new(CHAIN).unwrap()
}

pub fn config(keypair: Keypair) -> Config {
    let mut config = Config::new(chain(), keypair);
    config.listen_addresses = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    config.random_walk_interval = Duration::from_secs(2);
    config.gossip_heartbeat = Duration::from_millis(200);
    config
}

/// The fake block at `height`: opaque bytes the test can recognise.
pub fn fake_block(height: u64) -> Vec<u8> {
    let mut bytes = format!("block-{height}-").into_bytes();
    bytes.resize(200 + (height as usize % 50), height as u8);
    bytes
}

pub fn fake_certificate(height: u64) -> Vec<u8> {
    format!("certificate-{height}").into_bytes()
}

fn sync_answer(policy: &Policy, request: &SyncRequest) -> SyncResponse {
    let sync_block = |h: u64| SyncBlock {
        height: Height(h),
        block: fake_block(h),
        certificate: fake_certificate(h),
    };
    match request {
        SyncRequest::Status => SyncResponse::Status(SyncStatus {
            tip_height: Height(policy.blocks),
            tip_hash: sha256(&fake_block(policy.blocks)),
            lowest_height: Height(1),
        }),
        SyncRequest::Blocks { from, count } => {
            let last = (from.0 + u64::from(*count))
                .saturating_sub(1)
                .min(policy.blocks);
            SyncResponse::Blocks((from.0.max(1)..=last).map(sync_block).collect())
        }
        SyncRequest::BlockByHash(hash) => SyncResponse::Block(
            (1..=policy.blocks)
                .find(|h| sha256(&fake_block(*h)) == *hash)
                .map(sync_block),
        ),
        SyncRequest::Headers { from, count } => {
            let last = (from.0 + u64::from(*count))
                .saturating_sub(1)
                .min(policy.blocks);
            SyncResponse::Headers(
                (from.0.max(1)..=last)
                    .map(|h| SyncHeader {
                        height: Height(h),
                        header: fake_block(h),
                        certificate: fake_certificate(h),
                    })
                    .collect(),
            )
        }
        // The "transaction" of a hash is its bytes, so the asker can check
        // which ones came back.
        SyncRequest::Transactions(hashes) => {
            SyncResponse::Transactions(hashes.iter().map(|hash| hash.0.to_vec()).collect())
        }
    }
}

/// Starts a node and its driver; returns once it listens.
pub async fn start(config: Config) -> Node {
    let (client, mut events, task) = cairn_p2p::spawn(config).unwrap();
    let peer_id = client.local_peer_id();
    let deadline = Instant::now() + DEADLINE;
    let address = loop {
        let event = tokio::time::timeout_at(deadline.into(), events.recv())
            .await
            .expect("no listen address in time")
            .expect("event stream closed");
        if let Event::ListenAddress { address } = event {
            break address.with(libp2p::multiaddr::Protocol::P2p(peer_id));
        }
    };
    let policy = Arc::new(Mutex::new(Policy::default()));
    let (seen_tx, seen_rx) = mpsc::channel(100_000);
    let driver_policy = policy.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                Event::Gossip(message) => {
                    let (reject, ignore) = {
                        let policy = driver_policy.lock().unwrap();
                        (
                            policy.reject_from.contains(&message.source),
                            policy
                                .ignore_larger_than
                                .is_some_and(|max| message.data.len() > max),
                        )
                    };
                    let _ = seen_tx.try_send(Seen::Gossip {
                        topic: message.topic,
                        source: message.source,
                        data: message.data.clone(),
                    });
                    if reject {
                        message.validation.reject().await;
                    } else if ignore {
                        message.validation.ignore().await;
                    } else {
                        message.validation.accept().await;
                    }
                }
                Event::PeerConnected { peer, .. } => {
                    let _ = seen_tx.try_send(Seen::Connected(peer));
                }
                Event::PeerDisconnected { peer } => {
                    let _ = seen_tx.try_send(Seen::Disconnected(peer));
                }
                Event::PeerBanned { peer, .. } => {
                    let _ = seen_tx.try_send(Seen::Banned(peer));
                }
                Event::SyncRequest { request, reply, .. } => {
                    let answer = sync_answer(&driver_policy.lock().unwrap(), &request);
                    reply.respond(answer);
                }
                Event::RoundStateRequest { request, reply, .. } => {
                    reply.respond(RoundStateResponse::State(RoundState {
                        proposal: Some(
                            format!("proposal-{}-{}", request.height.0, request.round.0)
                                .into_bytes(),
                        ),
                        votes: vec![b"vote-a".to_vec(), b"vote-b".to_vec()],
                    }));
                }
                Event::SnapshotRequest { request, reply, .. } => {
                    reply.respond(match request {
                        cairn_p2p::SnapshotRequest::List => {
                            cairn_p2p::SnapshotResponse::List(vec![cairn_p2p::SnapshotOffer {
                                height: Height(10),
                                manifest_hash: sha256(b"manifest"),
                                chunks: 3,
                            }])
                        }
                        cairn_p2p::SnapshotRequest::Chunk { index, .. } => {
                            cairn_p2p::SnapshotResponse::Chunk(Some(vec![index as u8; 10]))
                        }
                        // The wrong kind of answer: the client must refuse it.
                        cairn_p2p::SnapshotRequest::Manifest { .. } => {
                            cairn_p2p::SnapshotResponse::Chunk(None)
                        }
                        cairn_p2p::SnapshotRequest::ValidatorSet(_) => {
                            cairn_p2p::SnapshotResponse::ValidatorSet(None)
                        }
                    });
                }
                Event::ListenAddress { .. } => {}
            }
        }
    });
    Node {
        client,
        peer_id,
        address,
        seen: seen_rx,
        policy,
        task,
    }
}

/// Polls `check` every 50 ms until it holds; panics with `what` at the deadline.
pub async fn wait_for<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    loop {
        if check().await {
            return;
        }
        if Instant::now() > end {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn peer_set(client: &Client) -> HashSet<PeerId> {
    client.peers().await.unwrap().into_iter().collect()
}

/// Waits until `node` has seen a gossip message with `data`.
pub async fn wait_for_gossip(node: &mut Node, data: &[u8], deadline: Duration) -> PeerId {
    let end = Instant::now() + deadline;
    loop {
        let seen = tokio::time::timeout_at(end.into(), node.seen.recv())
            .await
            .unwrap_or_else(|_| panic!("node {} did not receive the message in time", node.peer_id))
            .expect("driver stopped");
        if let Seen::Gossip {
            data: got, source, ..
        } = seen
        {
            if got == data {
                return source;
            }
        }
    }
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
