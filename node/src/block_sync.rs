//! Block sync, as its own task beside the consensus loop: it asks peers for
//! their tips, fetches the missing blocks from several peers at once,
//! verifies each against its commit certificate, commits them and tells
//! the consensus loop that the tip moved. The consensus loop never waits
//! on the network: it only asks for a sync ([`SyncHandle::request`]).
//!
//! A peer's claimed tip is only a hint: blocks count once they verify
//! against a certificate of the validator set. A peer that does not answer
//! within [`SYNC_REQUEST_TIMEOUT`], answers slower than
//! [`SYNC_SLOW_ANSWER`], or answers with nothing usable is left out for
//! [`SYNC_PEER_BACKOFF`], and its claimed tip with it; so one peer that
//! claims `u64::MAX` and never answers costs one timeout per backoff
//! period of the sync task, and nothing of consensus. `catching_up` is
//! reported only once a pass has committed verified blocks and is still far
//! behind.
//!
//! A peer that prunes old blocks says in its status the lowest height it
//! holds; it is asked only for heights from there, and a range it pruned
//! meanwhile is answered "not held", which moves that range to another
//! peer without blaming this one.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use cairn_p2p::{Client, PeerId, SyncBlock, SyncRequest, SyncResponse};
use cairn_types::{Block, CommitCertificate, Height};
use tokio::sync::mpsc;

use crate::{
    backend::NetworkView,
    ledger::Ledger,
    runtime::{decode_block, decode_certificate, HostEvent},
    shutdown::Shutdown,
};

/// Peers asked for their tip in one pass (at once).
pub const SYNC_STATUS_PEERS_MAX: usize = 8;
/// Block ranges fetched at once, each from another peer when there are
/// enough.
pub const SYNC_PARALLEL_REQUESTS_MAX: usize = 4;
/// Blocks asked for in one request.
pub const SYNC_RANGE_BLOCKS: u32 = cairn_p2p::limits::SYNC_RANGE_BLOCKS_MAX;
/// Deadline of a status request.
pub const SYNC_STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// Deadline of a block request.
pub const SYNC_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// An answer slower than this counts as a failure (a peer that always
/// answers just before the deadline is not waited on).
pub const SYNC_SLOW_ANSWER: Duration = Duration::from_secs(5);
/// How long a peer that failed a request is left out of sync.
pub const SYNC_PEER_BACKOFF: Duration = Duration::from_secs(60);
/// Least time between two passes.
pub const SYNC_RETRY_INTERVAL: Duration = Duration::from_millis(1_000);
/// Blocks behind the best proven tip above which the node reports
/// `catching_up` (and refuses new transactions).
pub const CATCHING_UP_BLOCKS_MIN: u64 = 16;
/// Most peers remembered in the backoff list.
pub const SYNC_BACKOFF_PEERS_MAX: usize = 1_024;

/// Asks the sync task for a pass; cheap, never waits, and requests made
/// while one is pending coalesce.
#[derive(Clone)]
pub struct SyncHandle {
    requests: mpsc::Sender<()>,
}

impl SyncHandle {
    /// Asks for a sync pass soon.
    pub fn request(&self) {
        let _ = self.requests.try_send(());
    }

    /// A handle whose requests go nowhere (tests).
    pub fn detached() -> SyncHandle {
        SyncHandle {
            requests: mpsc::channel(1).0,
        }
    }
}

/// Starts the sync task; it runs until `shutdown`. `inbox` hears
/// [`HostEvent::Synced`] whenever a pass moved the tip.
pub fn spawn_block_sync(
    client: Client,
    ledger: Arc<Ledger>,
    view: Arc<NetworkView>,
    inbox: mpsc::Sender<HostEvent>,
    shutdown: Shutdown,
) -> SyncHandle {
    let (requests, pending) = mpsc::channel(1);
    let sync = BlockSync {
        client,
        ledger,
        view,
        inbox,
        backoff: HashMap::new(),
        pruned_warning: None,
    };
    tokio::spawn(sync.run(pending, shutdown));
    // The first pass at start-up.
    let handle = SyncHandle { requests };
    handle.request();
    handle
}

struct BlockSync {
    client: Client,
    ledger: Arc<Ledger>,
    view: Arc<NetworkView>,
    inbox: mpsc::Sender<HostEvent>,
    /// Peers left out until the instant.
    backoff: HashMap<PeerId, Instant>,
    /// When the node last warned that only pruned peers are ahead.
    pruned_warning: Option<Instant>,
}

/// A peer's claimed tip, and the lowest height it says it holds.
#[derive(Clone, Copy, Debug)]
struct PeerTip {
    peer: PeerId,
    height: Height,
    /// Below it the peer pruned its blocks: it is not asked for them.
    lowest: Height,
}

impl BlockSync {
    async fn run(mut self, mut pending: mpsc::Receiver<()>, mut shutdown: Shutdown) {
        loop {
            tokio::select! {
                _ = shutdown.requested() => return,
                request = pending.recv() => if request.is_none() { return },
            }
            let before = self.ledger.tip().height;
            tokio::select! {
                _ = shutdown.requested() => return,
                () = self.pass() => {}
            }
            if self.ledger.tip().height != before
                && self.inbox.send(HostEvent::Synced).await.is_err()
            {
                return;
            }
            tokio::select! {
                _ = shutdown.requested() => return,
                () = tokio::time::sleep(SYNC_RETRY_INTERVAL) => {}
            }
        }
    }

    fn back_off(&mut self, peer: PeerId, why: &str) {
        tracing::debug!(%peer, "leaving a peer out of block sync for {} s: {why}", SYNC_PEER_BACKOFF.as_secs());
        if self.backoff.len() >= SYNC_BACKOFF_PEERS_MAX {
            let now = Instant::now();
            self.backoff.retain(|_, until| *until > now);
            if self.backoff.len() >= SYNC_BACKOFF_PEERS_MAX {
                self.backoff.clear();
            }
        }
        self.backoff
            .insert(peer, Instant::now() + SYNC_PEER_BACKOFF);
    }

    fn backed_off(&self, peer: &PeerId) -> bool {
        self.backoff
            .get(peer)
            .is_some_and(|until| *until > Instant::now())
    }

    /// Asks up to [`SYNC_STATUS_PEERS_MAX`] peers at once for their tips;
    /// those that fail are backed off. Highest tip first.
    async fn peer_tips(&mut self) -> Vec<PeerTip> {
        let Ok(peers) = self.client.peers().await else {
            return Vec::new();
        };
        let asked: Vec<PeerId> = peers
            .into_iter()
            .filter(|peer| !self.backed_off(peer))
            .take(SYNC_STATUS_PEERS_MAX)
            .collect();
        let client = &self.client;
        let answers = futures::future::join_all(asked.iter().map(|peer| async move {
            tokio::time::timeout(
                SYNC_STATUS_TIMEOUT,
                client.request_sync(*peer, SyncRequest::Status),
            )
            .await
        }))
        .await;
        let mut tips = Vec::new();
        for (peer, answer) in asked.into_iter().zip(answers) {
            match answer {
                Ok(Ok(SyncResponse::Status(status))) => tips.push(PeerTip {
                    peer,
                    height: status.tip_height,
                    lowest: status.lowest_height,
                }),
                _ => self.back_off(peer, "no status answer"),
            }
        }
        tips.sort_by_key(|tip| std::cmp::Reverse(tip.height));
        tips
    }

    /// One pass: fetch and commit until this node reaches the best tip
    /// still claimed by a peer that serves its blocks.
    async fn pass(&mut self) {
        let mut tips = self.peer_tips().await;
        let first = self.ledger.tip().height;
        let Some(target) = tips.first().map(|tip| tip.height) else {
            return;
        };
        if target <= first {
            self.view.set_sync(false, 0);
            return;
        }
        tracing::info!(
            height = first.0,
            target = target.0,
            "behind the network; syncing blocks"
        );
        let start = Instant::now();
        let mut last_log = Instant::now();
        loop {
            let tip = self.ledger.tip().height;
            let next = Height(tip.0.saturating_add(1));
            let pruned_peers = tips
                .iter()
                .filter(|candidate| candidate.height > tip && candidate.lowest > next)
                .count();
            // Only peers that hold the next height are of use: a peer that
            // pruned it is left out of this pass (without blame).
            tips.retain(|candidate| {
                candidate.height > tip
                    && candidate.lowest <= next
                    && !self.backed_off(&candidate.peer)
            });
            let Some(target) = tips.first().map(|tip| tip.height) else {
                let warned_lately = self
                    .pruned_warning
                    .is_some_and(|at| at.elapsed() < SYNC_PEER_BACKOFF);
                if pruned_peers > 0 && !warned_lately {
                    self.pruned_warning = Some(Instant::now());
                    tracing::warn!(
                        height = next.0,
                        pruned_peers,
                        "the peers ahead pruned the blocks this node needs next; waiting for a peer that keeps them (an archive node, pruning.keep_blocks = 0)"
                    );
                }
                break;
            };
            let moved = self.fetch_round(tip, &mut tips).await;
            let now = self.ledger.tip().height;
            let behind = target.0.saturating_sub(now.0);
            // Far behind a tip that peers proved by serving blocks.
            self.view
                .set_sync(moved && behind > CATCHING_UP_BLOCKS_MIN, behind);
            if moved && self.inbox.try_send(HostEvent::Synced).is_err() {
                tracing::debug!(
                    "consensus inbox full; it hears of the sync at the end of the pass"
                );
            }
            if last_log.elapsed() >= Duration::from_secs(2) {
                last_log = Instant::now();
                let elapsed = start.elapsed().as_secs_f64().max(0.001);
                tracing::info!(
                    height = now.0,
                    target = target.0,
                    blocks_per_second = (now.0.saturating_sub(first.0) as f64 / elapsed) as u64,
                    "syncing"
                );
            }
        }
        let height = self.ledger.tip().height.0;
        self.view.set_sync(false, 0);
        tracing::info!(
            height,
            blocks = height.saturating_sub(first.0),
            seconds = start.elapsed().as_secs_f64(),
            "sync finished"
        );
    }

    /// Fetches up to [`SYNC_PARALLEL_REQUESTS_MAX`] consecutive ranges after
    /// `tip` at once from the best peers, commits them in order, and backs
    /// off every peer that failed. True when the tip moved.
    async fn fetch_round(&mut self, tip: Height, tips: &mut [PeerTip]) -> bool {
        let ranges: Vec<(PeerTip, Height)> = (0..SYNC_PARALLEL_REQUESTS_MAX)
            .filter_map(|index| {
                let from = Height(
                    tip.0
                        .saturating_add(1)
                        .saturating_add(index as u64 * u64::from(SYNC_RANGE_BLOCKS)),
                );
                // The range goes to a peer whose tip reaches it and which
                // holds its first height, round robin.
                let able: Vec<&PeerTip> = tips
                    .iter()
                    .filter(|peer| peer.height >= from && peer.lowest <= from)
                    .collect();
                let peer = able.get(index % able.len().max(1))?;
                Some((**peer, from))
            })
            .collect();
        let client = &self.client;
        let answers = futures::future::join_all(ranges.iter().map(|(peer, from)| async move {
            let asked = Instant::now();
            let answer = tokio::time::timeout(
                SYNC_REQUEST_TIMEOUT,
                client.request_sync(
                    peer.peer,
                    SyncRequest::Blocks {
                        from: *from,
                        count: SYNC_RANGE_BLOCKS,
                    },
                ),
            )
            .await;
            (answer, asked.elapsed())
        }))
        .await;
        let before = self.ledger.tip().height;
        let mut in_order = true;
        for ((peer, from), (answer, took)) in ranges.into_iter().zip(answers) {
            let blocks = match answer {
                Ok(Ok(SyncResponse::Blocks(blocks))) => blocks,
                Ok(Ok(SyncResponse::NotHeld { lowest_height })) => {
                    // It pruned them since its status: not a fault; it is
                    // asked for these heights no more.
                    tracing::debug!(peer = %peer.peer, height = from.0, lowest = lowest_height.0, "a peer no longer holds these blocks; asking others");
                    for known in tips.iter_mut().filter(|known| known.peer == peer.peer) {
                        known.lowest = known.lowest.max(lowest_height);
                    }
                    in_order = false;
                    continue;
                }
                Ok(Ok(_)) => {
                    self.back_off(peer.peer, "answered a block request with something else");
                    in_order = false;
                    continue;
                }
                Ok(Err(_)) | Err(_) => {
                    self.back_off(peer.peer, "no answer to a block request");
                    in_order = false;
                    continue;
                }
            };
            if took > SYNC_SLOW_ANSWER {
                self.back_off(peer.peer, "answered too slowly");
            }
            // A range is committed only right after the one before it.
            if !in_order || self.ledger.tip().height.0.saturating_add(1) != from.0 {
                continue;
            }
            let ledger = Arc::clone(&self.ledger);
            let count = blocks.len();
            let committed = tokio::task::spawn_blocking(move || commit_synced(&ledger, &blocks))
                .await
                .unwrap_or(0);
            if committed == 0 {
                if self.ledger.tip().height >= from {
                    // Consensus committed this height meanwhile: the peer is
                    // not at fault, and this range is done.
                    continue;
                }
                tracing::warn!(peer = %peer.peer, height = from.0, "a peer gave no usable blocks; leaving it out of sync");
                self.back_off(peer.peer, "no usable blocks");
                in_order = false;
            } else if committed < count || committed < SYNC_RANGE_BLOCKS as usize {
                // Short or partly bad: later ranges do not follow on.
                in_order = false;
            }
        }
        self.ledger.tip().height != before
    }
}

/// Verifies and commits consecutive synced blocks; returns how many were
/// committed. Stops at the first block that does not extend the tip or
/// whose certificate does not verify.
pub fn commit_synced(ledger: &Ledger, blocks: &[SyncBlock]) -> usize {
    let mut committed = 0;
    for synced in blocks {
        let (Ok(block), Ok(certificate)) = (
            decode_block(&synced.block),
            decode_certificate(&synced.certificate),
        ) else {
            tracing::warn!(
                height = synced.height.0,
                "a peer sent a block or certificate that does not decode"
            );
            break;
        };
        if !commit_one(ledger, &block, &certificate) {
            break;
        }
        committed += 1;
    }
    committed
}

fn commit_one(ledger: &Ledger, block: &Block, certificate: &CommitCertificate) -> bool {
    if block.header.height.0 != ledger.tip().height.0.saturating_add(1) {
        return false;
    }
    match ledger.commit(block, certificate) {
        Ok(_) => true,
        Err(error) => {
            tracing::warn!(
                height = block.header.height.0,
                "synced block refused: {error}"
            );
            false
        }
    }
}
