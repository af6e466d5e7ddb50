//! Block sync, as its own task beside the consensus loop: the tokio and
//! libp2p driver of the sans-IO sync core ([`crate::sync_core`], which
//! holds every rule: whom to ask, deadlines, backoff, commit order). It
//! sends the core's requests with [`Client::request_sync`], hands the
//! answers back, commits the ranges the core releases with
//! [`commit_synced`] (on the blocking pool) and tells the consensus loop
//! that the tip moved ([`HostEvent::Synced`]). The consensus loop never
//! waits on the network: it only asks for a sync ([`SyncHandle::request`]).
//!
//! The same module holds what the node serves to a syncing peer
//! ([`serve_sync`]): the simulator answers its peers with it too.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use cairn_p2p::{Client, PeerId, SyncBlock, SyncHeader, SyncRequest, SyncResponse, SyncStatus};
use cairn_types::{codec, Block, CommitCertificate, Height};
use tokio::sync::mpsc;

pub use crate::sync_core::{
    CATCHING_UP_BLOCKS_MIN, SYNC_BACKOFF_PEERS_MAX, SYNC_PARALLEL_REQUESTS_MAX, SYNC_PEER_BACKOFF,
    SYNC_PEER_BACKOFF_MIN, SYNC_RANGE_BLOCKS, SYNC_REQUEST_TIMEOUT, SYNC_RETRY_INTERVAL,
    SYNC_SLOW_ANSWER, SYNC_STATUS_PEERS_MAX, SYNC_STATUS_TIMEOUT,
};
use crate::{
    backend::NetworkView,
    ledger::Ledger,
    runtime::{decode_block, decode_certificate, HostEvent},
    shutdown::Shutdown,
    sync_core::{SyncAction, SyncCore, SyncRequestId},
};

/// Answers of requests in flight waiting for the sync task (at most
/// [`SYNC_STATUS_PEERS_MAX`] requests are in flight at once).
const SYNC_ANSWERS_MAX: usize = SYNC_STATUS_PEERS_MAX + SYNC_PARALLEL_REQUESTS_MAX;

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
        core: SyncCore::new(),
        origin: Instant::now(),
    };
    // The core begins with a pass asked for: the pass at start-up.
    tokio::spawn(sync.run(pending, shutdown));
    SyncHandle { requests }
}

struct BlockSync {
    client: Client,
    ledger: Arc<Ledger>,
    view: Arc<NetworkView>,
    inbox: mpsc::Sender<HostEvent>,
    core: SyncCore<PeerId>,
    /// The core's time is measured from here.
    origin: Instant,
}

impl BlockSync {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    async fn run(mut self, mut pending: mpsc::Receiver<()>, mut shutdown: Shutdown) {
        let (answered, mut answers) = mpsc::channel(SYNC_ANSWERS_MAX);
        loop {
            if self.core.wants_pass(self.now()) {
                let peers = self.client.peers().await.unwrap_or_default();
                self.core
                    .begin_pass(self.now(), self.ledger.tip().height, peers);
            }
            loop {
                let actions = self.core.poll(self.now(), self.ledger.tip().height);
                if actions.is_empty() {
                    break;
                }
                for action in actions {
                    if !self.act(action, &answered).await {
                        return;
                    }
                }
            }
            let wake = self.core.next_wake().map_or_else(
                || Instant::now() + Duration::from_secs(3_600),
                |at| self.origin + at,
            );
            tokio::select! {
                _ = shutdown.requested() => return,
                request = pending.recv() => match request {
                    Some(()) => self.core.request_pass(),
                    None => return,
                },
                Some((id, answer)) = answers.recv() => {
                    let now = self.now();
                    self.core.on_answer(now, id, answer);
                }
                () = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    /// Does what the core asked; false when the consensus loop is gone.
    async fn act(
        &mut self,
        action: SyncAction<PeerId>,
        answered: &mpsc::Sender<(SyncRequestId, Option<SyncResponse>)>,
    ) -> bool {
        match action {
            SyncAction::Send {
                peer,
                id,
                request,
                deadline,
            } => {
                let client = self.client.clone();
                let answered = answered.clone();
                let wait = deadline.saturating_sub(self.now());
                tokio::spawn(async move {
                    let answer = tokio::time::timeout(wait, client.request_sync(peer, request))
                        .await
                        .ok()
                        .and_then(Result::ok);
                    let _ = answered.send((id, answer)).await;
                });
            }
            SyncAction::Commit { id, blocks, .. } => {
                let ledger = Arc::clone(&self.ledger);
                let committed =
                    tokio::task::spawn_blocking(move || commit_synced(&ledger, &blocks))
                        .await
                        .unwrap_or(0);
                let now = self.now();
                self.core
                    .committed(now, id, committed, self.ledger.tip().height);
            }
            SyncAction::Synced { end_of_pass: true } => {
                return self.inbox.send(HostEvent::Synced).await.is_ok();
            }
            SyncAction::Synced { end_of_pass: false } => {
                if self.inbox.try_send(HostEvent::Synced).is_err() {
                    tracing::debug!(
                        "consensus inbox full; it hears of the sync at the end of the pass"
                    );
                }
            }
            SyncAction::Progress {
                catching_up,
                behind,
            } => self.view.set_sync(catching_up, behind),
            SyncAction::BackedOff { .. } => {}
        }
        true
    }
}

/// Answers a status, block-range, header-range or block-by-hash request
/// from the store, and a transactions request from the mempool, honouring pruning: a range whose first height is pruned is
/// answered [`SyncResponse::NotHeld`]; a range stops at the first block
/// not held or at [`cairn_p2p::limits::SYNC_RESPONSE_BYTES_MAX`]. What
/// `cairnd` serves its peers, and the simulator its simulated ones.
pub fn serve_sync(ledger: &Ledger, request: &SyncRequest) -> SyncResponse {
    match request {
        SyncRequest::Status => {
            let tip = ledger.tip();
            SyncResponse::Status(SyncStatus {
                tip_height: tip.height,
                tip_hash: tip.hash,
                lowest_height: ledger.store().lowest_height(),
            })
        }
        SyncRequest::Blocks { from, count } => {
            // A pruned first height: say so, so the peer asks another
            // (rather than taking an empty answer for a fault).
            let lowest = ledger.store().lowest_height();
            if *from < lowest {
                return SyncResponse::NotHeld {
                    lowest_height: lowest,
                };
            }
            let mut blocks = Vec::new();
            let mut bytes = 0usize;
            for offset in 0..u64::from(*count) {
                let height = Height(from.0.saturating_add(offset));
                match stored_block(ledger, height) {
                    Some(block) => {
                        bytes = bytes.saturating_add(block.wire_bytes());
                        if bytes > cairn_p2p::limits::SYNC_RESPONSE_BYTES_MAX && !blocks.is_empty()
                        {
                            break;
                        }
                        blocks.push(block);
                    }
                    None => break,
                }
            }
            let lowest = ledger.store().lowest_height();
            if blocks.is_empty() && *from < lowest {
                // Pruned while it was read.
                return SyncResponse::NotHeld {
                    lowest_height: lowest,
                };
            }
            SyncResponse::Blocks(blocks)
        }
        SyncRequest::BlockByHash(hash) => {
            let height = ledger.store().block_height(hash).ok().flatten();
            SyncResponse::Block(height.and_then(|height| stored_block(ledger, height)))
        }
        SyncRequest::Headers { from, count } => {
            let store = ledger.store();
            let lowest = store.lowest_height();
            if *from < lowest {
                return SyncResponse::NotHeld {
                    lowest_height: lowest,
                };
            }
            let mut headers = Vec::new();
            for offset in 0..u64::from(*count) {
                let height = Height(from.0.saturating_add(offset));
                let (Ok(Some(header)), Ok(Some(certificate))) =
                    (store.header(height), store.certificate(height))
                else {
                    break;
                };
                headers.push(SyncHeader {
                    height,
                    header: codec::encode(&header),
                    certificate: codec::encode(&certificate),
                });
            }
            let lowest = store.lowest_height();
            if headers.is_empty() && *from < lowest {
                // Pruned while it was read.
                return SyncResponse::NotHeld {
                    lowest_height: lowest,
                };
            }
            SyncResponse::Headers(headers)
        }
        SyncRequest::Transactions(hashes) => SyncResponse::Transactions(
            ledger
                .pending_transactions(hashes)
                .into_iter()
                .flatten()
                .map(|transaction| transaction.to_bytes())
                .collect(),
        ),
    }
}

fn stored_block(ledger: &Ledger, height: Height) -> Option<SyncBlock> {
    let store = ledger.store();
    let block = store.block_bytes(height).ok().flatten()?;
    let certificate = store
        .certificate(height)
        .ok()
        .flatten()
        .map(|certificate| codec::encode(&certificate))
        .unwrap_or_default();
    Some(SyncBlock {
        height,
        block,
        certificate,
    })
}

/// Verifies and commits consecutive synced blocks; returns how many were
/// committed. Stops at the first block that does not extend the tip or
/// whose certificate does not verify. The blocks' writes are synced once,
/// after the last of them ([`Ledger::commit_unsynced`]): catching up on
/// small blocks took one fsync a block. The caller learns of the commits
/// (and the consensus loop moves on) only after that sync; a crash before
/// it loses a suffix of the run, which the next pass fetches again.
pub fn commit_synced(ledger: &Ledger, blocks: &[SyncBlock]) -> usize {
    let committed = commit_unsynced_run(ledger, blocks);
    if committed > 0 {
        if let Err(error) = ledger.sync_commits() {
            // A failed sync leaves the store refusing writes, so the
            // consensus loop's next WAL write fails and it stops there,
            // before anything it signed on this state leaves the node.
            tracing::error!(
                "cannot sync the {committed} blocks block sync committed ({error}){}",
                crate::host::disk_hint(&error.to_string())
            );
        }
    }
    committed
}

/// Commits consecutive synced blocks without syncing; returns how many.
fn commit_unsynced_run(ledger: &Ledger, blocks: &[SyncBlock]) -> usize {
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
    match ledger.commit_unsynced(block, certificate) {
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
