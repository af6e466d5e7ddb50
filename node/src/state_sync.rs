//! State sync: a node whose home holds no block restores a snapshot that
//! peers offer instead of executing every block from height 1.
//!
//! 1. *Discover*: ask the connected peers for their snapshots; pick the
//!    newest height whose manifest more than one peer offers (or, when
//!    only one peer offers snapshots at all, the newest it offers, saying
//!    so in the log).
//! 2. *Trust*: establish the header of that height. By default from the
//!    genesis: fetch the blocks `1..=H` with their certificates over block
//!    sync and check, without executing anything, that each names its
//!    parent's hash and the set its parent named, and that its
//!    certificate verifies against that set; a set a header names anew is
//!    fetched by hash and must hash to the name. With
//!    `sync.trust_height` and `sync.trust_hash` the walk starts from that
//!    block instead, which must have that hash.
//! 3. *Manifest*: fetch it from a peer offering the snapshot; it must
//!    hash to the offered hash and name the chain, the height and the
//!    trusted header's state root.
//! 4. *Chunks*: fetch them in parallel from the peers offering the
//!    snapshot, each checked against its hash in the manifest on arrival;
//!    a peer that sends a chunk with another hash is banned
//!    ([`STATE_SYNC_BAN`]) and the chunk fetched from another. Chunks are
//!    written in order ([`cairn_store::Store::restore_chunk`]).
//! 5. *Finish*: the store recomputes the state root and refuses the state
//!    unless it equals the trusted header's; then it keeps the trusted
//!    block, its certificate and set, and marks the restore complete in
//!    one atomic write. Block sync continues from H + 1.
//!
//! The store marks a restore under way before it writes any chunk; a node
//! killed during a restore finds the mark at the next start and begins
//! again from an empty store (nothing else was in it).

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use cairn_p2p::{Client, PeerId, SnapshotRequest, SnapshotResponse, SyncRequest, SyncResponse};
use cairn_store::{SnapshotManifest, StoreError};
use cairn_types::{
    codec,
    limits::{EVIDENCE_AGE_MAX_BLOCKS, VALIDATOR_SET_BYTES_MAX},
    sha256, Block, CommitCertificate, Hash, Header, Height, ValidatorSet,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::{
    config::SyncConfig,
    ledger::Ledger,
    runtime::{decode_block, decode_certificate},
    shutdown::Shutdown,
    NodeError,
};

/// Peers asked for their snapshots at once.
pub const STATE_SYNC_LIST_PEERS_MAX: usize = 16;
/// Chunks fetched at once (each at most 1 MiB, so this bounds the memory
/// of chunks waiting to be written).
pub const STATE_SYNC_CHUNKS_IN_FLIGHT_MAX: usize = 8;
/// Deadline of one request to a peer.
pub const STATE_SYNC_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Headers asked for in one range request while verifying headers.
pub const STATE_SYNC_HEADER_RANGE: u32 = cairn_p2p::limits::SYNC_RANGE_HEADERS_MAX;
/// How long a peer that sent a bad chunk or a lying manifest is banned.
pub const STATE_SYNC_BAN: Duration = Duration::from_secs(10 * 60);
/// How long to wait for a second peer to offer the snapshot one peer
/// offers before taking it from that one.
pub const STATE_SYNC_AGREEMENT_WAIT: Duration = Duration::from_secs(6);
/// The agreement wait ends early once the connected peers stayed the
/// same for this long and every one of them answered the last round of
/// asking (an offer or an empty list): no other peer is coming to agree,
/// so waiting the rest of [`STATE_SYNC_AGREEMENT_WAIT`] gains nothing.
pub const STATE_SYNC_PEERS_SETTLED: Duration = Duration::from_millis(1_500);
/// How long to wait for any peer to offer a snapshot before giving up on
/// state sync (the node then syncs blocks from genesis).
pub const STATE_SYNC_OFFER_WAIT: Duration = Duration::from_secs(120);
/// Pause between two rounds of asking peers for snapshots.
pub const STATE_SYNC_RETRY_INTERVAL: Duration = Duration::from_millis(1_000);
/// Snapshots tried before state sync gives up.
pub const STATE_SYNC_SNAPSHOTS_TRIED_MAX: usize = 4;
/// Times one chunk is asked for (of other peers) before the snapshot is
/// given up.
pub const STATE_SYNC_CHUNK_ATTEMPTS_MAX: usize = 16;

/// What state sync is doing, for the log and `GET /status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSyncView {
    /// `discovering`, `verifying headers`, `fetching manifest`,
    /// `fetching chunks`, `verifying state`, `done` or `failed`.
    pub phase: String,
    /// The snapshot's height (0 until one is chosen).
    pub height: u64,
    /// Headers verified so far.
    pub headers_verified: u64,
    /// Chunks written.
    pub chunks_done: u64,
    /// Chunks of the snapshot.
    pub chunks_total: u64,
    /// Chunk bytes received.
    pub bytes: u64,
    /// Chunk bytes per second since the chunks phase began.
    pub bytes_per_second: u64,
    /// Seconds left at that rate, once known.
    pub eta_seconds: Option<u64>,
}

/// Shared progress of a state sync.
#[derive(Default)]
pub struct StateSyncStatus {
    view: Mutex<StateSyncView>,
    chunks_started: Mutex<Option<Instant>>,
}

impl StateSyncStatus {
    /// What state sync is doing now.
    pub fn view(&self) -> StateSyncView {
        self.view
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn update(&self, change: impl FnOnce(&mut StateSyncView)) {
        let mut view = self
            .view
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        change(&mut view);
    }

    fn phase(&self, phase: &str) {
        self.update(|view| view.phase = phase.to_string());
    }

    fn chunk_written(&self, bytes: usize) {
        let started = *self
            .chunks_started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert_with(Instant::now);
        let elapsed = started.elapsed().as_secs_f64().max(0.001);
        self.update(|view| {
            view.chunks_done += 1;
            view.bytes += bytes as u64;
            view.bytes_per_second = (view.bytes as f64 / elapsed) as u64;
            let per_chunk = elapsed / view.chunks_done as f64;
            view.eta_seconds = Some(
                (per_chunk * view.chunks_total.saturating_sub(view.chunks_done) as f64).ceil()
                    as u64,
            );
        });
    }
}

/// A snapshot offered by some peers.
#[derive(Clone, Debug)]
struct Candidate {
    height: Height,
    manifest_hash: Hash,
    peers: Vec<PeerId>,
}

/// The trusted block of the snapshot's height, its certificate and the
/// set that signed it.
struct TrustedBase {
    block: Block,
    certificate: CommitCertificate,
    set: ValidatorSet,
}

/// Why one snapshot could not be restored.
enum Attempt {
    /// Try another snapshot (this one is bad or unavailable).
    Reject(String),
    /// Give up state sync.
    Fail(NodeError),
}

impl From<NodeError> for Attempt {
    fn from(error: NodeError) -> Self {
        Attempt::Fail(error)
    }
}

fn failed(message: impl Into<String>) -> NodeError {
    NodeError::StateSync(message.into())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NodeError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| failed(format!("a store task failed: {error}")))
}

/// Restores a snapshot into `ledger`'s empty store and reloads the ledger.
/// Returns the restored height, or `None` when no peer offered a snapshot
/// within [`STATE_SYNC_OFFER_WAIT`] (the node then syncs blocks).
pub async fn restore(
    client: &Client,
    ledger: &Arc<Ledger>,
    config: &SyncConfig,
    status: &StateSyncStatus,
    mut shutdown: Shutdown,
) -> Result<Option<Height>, NodeError> {
    tokio::select! {
        _ = shutdown.requested() => Err(failed("stopped before the restore finished; it starts over at the next start")),
        result = restore_inner(client, ledger, config, status) => result,
    }
}

async fn restore_inner(
    client: &Client,
    ledger: &Arc<Ledger>,
    config: &SyncConfig,
    status: &StateSyncStatus,
) -> Result<Option<Height>, NodeError> {
    let trust = if config.trust_height > 0 {
        let hash = Hash::from_hex(&config.trust_hash).map_err(|error| {
            failed(format!(
                "sync.trust_hash {:?} is not a hash ({error})",
                config.trust_hash
            ))
        })?;
        Some((Height(config.trust_height), hash))
    } else {
        None
    };
    let mut rejected: HashSet<Hash> = HashSet::new();
    for _ in 0..STATE_SYNC_SNAPSHOTS_TRIED_MAX {
        status.phase("discovering");
        let Some(candidate) = discover(client, trust.map(|(height, _)| height), &rejected).await?
        else {
            return Ok(None);
        };
        status.update(|view| view.height = candidate.height.0);
        match restore_candidate(client, ledger, &candidate, trust, status).await {
            Ok(()) => {
                status.phase("done");
                return Ok(Some(candidate.height));
            }
            Err(Attempt::Reject(reason)) => {
                tracing::warn!(
                    height = candidate.height.0,
                    manifest = %candidate.manifest_hash,
                    "state sync: giving up this snapshot: {reason}; trying another"
                );
                rejected.insert(candidate.manifest_hash);
            }
            Err(Attempt::Fail(error)) => {
                status.phase("failed");
                return Err(error);
            }
        }
    }
    status.phase("failed");
    Err(failed(format!(
        "{STATE_SYNC_SNAPSHOTS_TRIED_MAX} snapshots failed; start again, or without --state-sync to sync blocks from genesis"
    )))
}

/// Asks peers for their snapshots until a usable one is found: the newest
/// height offered (with one manifest) by more than one peer, or by a
/// single peer when no other offers any within
/// [`STATE_SYNC_AGREEMENT_WAIT`] or the peers have settled
/// ([`STATE_SYNC_PEERS_SETTLED`]; see [`choose`]). `None` after
/// [`STATE_SYNC_OFFER_WAIT`] without any offer.
async fn discover(
    client: &Client,
    least_height: Option<Height>,
    rejected: &HashSet<Hash>,
) -> Result<Option<Candidate>, NodeError> {
    let started = Instant::now();
    let mut first_offer: Option<Instant> = None;
    let mut last_log = Instant::now();
    // The peers asked in the last round, and since when they are the same.
    let mut known_peers: Vec<PeerId> = Vec::new();
    let mut same_peers_since = Instant::now();
    loop {
        let peers = client
            .peers()
            .await
            .map_err(|error| failed(format!("p2p stopped: {error}")))?;
        let asked: Vec<PeerId> = peers.into_iter().take(STATE_SYNC_LIST_PEERS_MAX).collect();
        let mut sorted = asked.clone();
        sorted.sort();
        if sorted != known_peers {
            known_peers = sorted;
            same_peers_since = Instant::now();
        }
        let answers = futures::future::join_all(asked.iter().map(|peer| async move {
            tokio::time::timeout(
                STATE_SYNC_REQUEST_TIMEOUT,
                client.request_snapshot(*peer, SnapshotRequest::List),
            )
            .await
        }))
        .await;
        let mut offered: BTreeMap<(Height, Hash), Vec<PeerId>> = BTreeMap::new();
        let mut offering_peers = 0usize;
        let mut answering_peers = 0usize;
        for (peer, answer) in asked.iter().zip(answers) {
            if let Ok(Ok(SnapshotResponse::List(offers))) = answer {
                answering_peers += 1;
                let mut any = false;
                for offer in offers {
                    if rejected.contains(&offer.manifest_hash)
                        || offer.height == Height::GENESIS
                        || least_height.is_some_and(|least| offer.height < least)
                    {
                        continue;
                    }
                    any = true;
                    offered
                        .entry((offer.height, offer.manifest_hash))
                        .or_default()
                        .push(*peer);
                }
                offering_peers += usize::from(any);
            }
        }
        let mut candidates: Vec<Candidate> = offered
            .into_iter()
            .map(|((height, manifest_hash), peers)| Candidate {
                height,
                manifest_hash,
                peers,
            })
            .collect();
        candidates.sort_by_key(|candidate| std::cmp::Reverse(candidate.height));
        if !candidates.is_empty() {
            let waited = first_offer.get_or_insert_with(Instant::now).elapsed();
            let settled = !asked.is_empty() && answering_peers == asked.len();
            let settled_for = if settled {
                same_peers_since.elapsed()
            } else {
                same_peers_since = Instant::now();
                Duration::ZERO
            };
            if let Some(choice) = choose(&candidates, offering_peers, waited, settled_for) {
                return Ok(Some(choice));
            }
        } else if started.elapsed() >= STATE_SYNC_OFFER_WAIT {
            tracing::warn!(
                "state sync: no peer offered a snapshot within {} s; syncing blocks from genesis instead",
                STATE_SYNC_OFFER_WAIT.as_secs()
            );
            return Ok(None);
        }
        if last_log.elapsed() >= Duration::from_secs(5) {
            last_log = Instant::now();
            tracing::info!(
                peers = asked.len(),
                offering = offering_peers,
                "state sync: looking for snapshots"
            );
        }
        tokio::time::sleep(STATE_SYNC_RETRY_INTERVAL).await;
    }
}

/// Which offered snapshot to restore, if one may be taken yet:
/// `candidates` newest first, `offering_peers` the peers that offered any,
/// `waited` the time since the first offer, `settled_for` how long every
/// connected peer has answered and no peer has come or gone (zero when
/// not). The newest snapshot more than one peer offers is taken at once.
/// A snapshot only one peer offers is taken once only that peer offers
/// any and either [`STATE_SYNC_AGREEMENT_WAIT`] has passed or the peers
/// have settled for [`STATE_SYNC_PEERS_SETTLED`] (no second peer is there
/// to agree: a one-validator chain, or a node given one peer); and, when
/// several peers offer different snapshots, the newest after twice the
/// agreement wait. Agreement is a preference, not the trust: whatever is
/// taken is checked against the trusted header.
fn choose(
    candidates: &[Candidate],
    offering_peers: usize,
    waited: Duration,
    settled_for: Duration,
) -> Option<Candidate> {
    if let Some(agreed) = candidates
        .iter()
        .find(|candidate| candidate.peers.len() > 1)
    {
        tracing::info!(
            height = agreed.height.0,
            peers = agreed.peers.len(),
            manifest = %agreed.manifest_hash,
            "state sync: restoring the newest snapshot more than one peer offers"
        );
        return Some(agreed.clone());
    }
    let newest = candidates.first()?;
    if offering_peers <= 1
        && (waited >= STATE_SYNC_AGREEMENT_WAIT || settled_for >= STATE_SYNC_PEERS_SETTLED)
    {
        tracing::warn!(
            height = newest.height.0,
            peer = %newest.peers[0],
            waited_seconds = waited.as_secs_f64(),
            "state sync: only one peer offers snapshots; restoring its newest (it is verified against the trusted header all the same)"
        );
        return Some(newest.clone());
    }
    if waited >= STATE_SYNC_AGREEMENT_WAIT * 2 {
        tracing::warn!(
            height = newest.height.0,
            "state sync: no snapshot is offered by two peers; restoring the newest one offered"
        );
        return Some(newest.clone());
    }
    None
}

async fn restore_candidate(
    client: &Client,
    ledger: &Arc<Ledger>,
    candidate: &Candidate,
    trust: Option<(Height, Hash)>,
    status: &StateSyncStatus,
) -> Result<(), Attempt> {
    let height = candidate.height;
    status.phase("verifying headers");
    let started = Instant::now();
    let base = trusted_base(client, ledger, height, trust, status).await?;
    tracing::info!(
        height = height.0,
        hash = %base.block.hash(),
        state_root = %base.block.header.state_root,
        seconds = started.elapsed().as_secs_f64(),
        "state sync: the header of the snapshot height is trusted"
    );

    status.phase("fetching manifest");
    let manifest = fetch_manifest(client, ledger, candidate, &base).await?;
    let total = manifest.chunk_count();
    status.update(|view| {
        view.chunks_total = total as u64;
        view.chunks_done = 0;
        view.bytes = 0;
    });

    status.phase("fetching chunks");
    let chunks_started = Instant::now();
    {
        let ledger = Arc::clone(ledger);
        blocking(move || ledger.store().restore_begin(height))
            .await?
            .map_err(|error| Attempt::Fail(failed(error.to_string())))?;
    }
    let peers = Arc::new(Mutex::new(candidate.peers.clone()));
    let manifest = Arc::new(manifest);
    let mut chunks = futures::stream::iter(0..total)
        .map(|index| {
            let peers = Arc::clone(&peers);
            let manifest = Arc::clone(&manifest);
            async move { fetch_chunk(client, &manifest, height, index, &peers).await }
        })
        .buffered(STATE_SYNC_CHUNKS_IN_FLIGHT_MAX);
    let mut last_log = Instant::now();
    let mut index = 0usize;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        let size = chunk.len();
        let ledger = Arc::clone(ledger);
        match blocking(move || ledger.store().restore_chunk(&chunk)).await? {
            Ok(()) => {}
            Err(StoreError::InvalidSnapshot { reason }) => {
                return Err(Attempt::Reject(format!("chunk {index}: {reason}")))
            }
            Err(error) => return Err(Attempt::Fail(failed(error.to_string()))),
        }
        status.chunk_written(size);
        index += 1;
        if last_log.elapsed() >= Duration::from_secs(2) || index == total {
            last_log = Instant::now();
            let view = status.view();
            tracing::info!(
                height = height.0,
                chunks_done = view.chunks_done,
                chunks_total = view.chunks_total,
                bytes_per_second = view.bytes_per_second,
                eta_seconds = view.eta_seconds.unwrap_or(0),
                "state sync: fetching chunks"
            );
        }
    }

    status.phase("verifying state");
    let chunks_seconds = chunks_started.elapsed().as_secs_f64();
    let finish_started = Instant::now();
    let finish = {
        let ledger = Arc::clone(ledger);
        blocking(move || {
            ledger
                .store()
                .restore_finish(&base.block, &base.certificate, &base.set)
        })
        .await?
    };
    let restored = match finish {
        Ok(restored) => restored,
        Err(
            error @ (StoreError::SnapshotRootMismatch { .. } | StoreError::InvalidSnapshot { .. }),
        ) => {
            // Every chunk matched the manifest: the manifest lied.
            tracing::warn!(
                peers = ?candidate.peers,
                "state sync: the snapshot's chunks are not the state its manifest claims; banning the peers that offered it"
            );
            for peer in &candidate.peers {
                let _ = client.ban(*peer, STATE_SYNC_BAN).await;
            }
            return Err(Attempt::Reject(error.to_string()));
        }
        Err(error) => return Err(Attempt::Fail(failed(error.to_string()))),
    };
    let root_check_seconds = finish_started.elapsed().as_secs_f64();
    let reload_started = Instant::now();
    {
        let ledger = Arc::clone(ledger);
        blocking(move || ledger.reload_from_store(restored))
            .await?
            .map_err(|error| Attempt::Fail(failed(error.to_string())))?;
    }
    tracing::info!(
        height = height.0,
        state_root = %ledger.tip().state_root,
        chunks = total,
        seconds = started.elapsed().as_secs_f64(),
        chunks_seconds,
        root_check_seconds,
        reload_seconds = reload_started.elapsed().as_secs_f64(),
        "state sync: restored the state; syncing blocks from the next height"
    );
    status.phase("fetching the evidence window");
    match restore_history(client, ledger, height, &candidate.peers).await {
        Ok(kept) => tracing::info!(
            height = height.0,
            blocks = kept,
            lowest_height = ledger.store().lowest_height().0,
            "state sync: kept the blocks of the evidence window below the snapshot height"
        ),
        // The state is restored and right; only evidence of a height below
        // it could not be judged, so say so and go on.
        Err(attempt) => {
            let reason = match attempt {
                Attempt::Reject(reason) => reason,
                Attempt::Fail(error) => error.to_string(),
            };
            tracing::warn!(
                height = height.0,
                "state sync: could not keep the blocks below the snapshot height ({reason}); a block carrying evidence of one of those heights will not validate here, and block sync from genesis (without --state-sync) avoids that"
            );
        }
    }
    Ok(())
}

/// Fetches the blocks of the evidence window below the restored `height`
/// ([`EVIDENCE_AGE_MAX_BLOCKS`], down to height 1) with the validator sets
/// their headers name, and has the store keep them: evidence in a later
/// block may be of any of those heights, and judging it needs that
/// height's set. Ranges go from the top down, one response at a time (so
/// memory holds one range), each trusted through the block above it
/// (every block is the parent the one above names), which the store
/// checks. Returns the number of blocks kept.
async fn restore_history(
    client: &Client,
    ledger: &Arc<Ledger>,
    height: Height,
    peers: &[PeerId],
) -> Result<usize, Attempt> {
    let floor = Height(height.0.saturating_sub(EVIDENCE_AGE_MAX_BLOCKS).max(1));
    let mut kept = 0usize;
    // Blocks asked for at once; fewer once a peer answers only a prefix
    // (its response is limited in bytes), so that a range still ends just
    // below the lowest block held.
    let mut range = cairn_p2p::limits::SYNC_RANGE_BLOCKS_MAX;
    loop {
        let lowest = ledger.store().lowest_height();
        if lowest <= floor {
            return Ok(kept);
        }
        let want = u32::try_from(lowest.0 - floor.0)
            .unwrap_or(u32::MAX)
            .min(range);
        let from = Height(lowest.0 - u64::from(want));
        let answer = fetch_blocks(client, peers, from, want).await?;
        let mut blocks: Vec<(Block, CommitCertificate)> = Vec::with_capacity(answer.len());
        let mut next = from;
        for synced in answer {
            if synced.height != next || next >= lowest {
                break;
            }
            let block = decode_block(&synced.block).map_err(|error| {
                Attempt::Reject(format!("history block {next} does not decode: {error}"))
            })?;
            let certificate = decode_certificate(&synced.certificate).map_err(|error| {
                Attempt::Reject(format!(
                    "the certificate of history block {next} does not decode: {error}"
                ))
            })?;
            blocks.push((block, certificate));
            next = Height(next.0 + 1);
        }
        if blocks.len() < want as usize {
            if blocks.is_empty() {
                return Err(Attempt::Reject(format!(
                    "no peer serves the blocks from height {from}"
                )));
            }
            // Strictly fewer each time: the loop ends.
            range = u32::try_from(blocks.len()).unwrap_or(1);
            continue;
        }
        let mut sets: Vec<ValidatorSet> = Vec::new();
        for (block, _) in &blocks {
            let hash = block.header.validator_set_hash;
            if sets.iter().any(|set| set.hash() == hash) {
                continue;
            }
            let known = ledger
                .store()
                .validator_set(&hash)
                .map_err(|error| Attempt::Fail(failed(error.to_string())))?;
            if known.is_none() {
                sets.push(fetch_set(client, peers, hash).await?);
            }
        }
        let count = blocks.len();
        let store_ledger = Arc::clone(ledger);
        blocking(move || store_ledger.store().restore_history(&blocks, &sets))
            .await?
            .map_err(|error| Attempt::Reject(error.to_string()))?;
        kept += count;
    }
}

/// Asks `peers` in turn until one answers with blocks from `from`.
async fn fetch_blocks(
    client: &Client,
    peers: &[PeerId],
    from: Height,
    count: u32,
) -> Result<Vec<cairn_p2p::SyncBlock>, Attempt> {
    let request = SyncRequest::Blocks { from, count };
    let failure = format!("no peer serves the blocks from height {from}");
    ask_in_turn(client, peers, request, failure, |answer| match answer {
        SyncResponse::Blocks(blocks) if blocks.first().is_some_and(|b| b.height == from) => {
            Some(blocks)
        }
        _ => None,
    })
    .await
}

/// Asks `peers` in turn until one answers with headers from `from`.
async fn fetch_headers(
    client: &Client,
    peers: &[PeerId],
    from: Height,
    count: u32,
) -> Result<Vec<cairn_p2p::SyncHeader>, Attempt> {
    let request = SyncRequest::Headers { from, count };
    let failure = format!("no peer serves the headers from height {from}");
    ask_in_turn(client, peers, request, failure, |answer| match answer {
        SyncResponse::Headers(headers) if headers.first().is_some_and(|h| h.height == from) => {
            Some(headers)
        }
        _ => None,
    })
    .await
}

/// Sends `request` to `peers` one after another (each within
/// [`STATE_SYNC_REQUEST_TIMEOUT`]) until `accept` takes an answer;
/// `failure` says what none of them served.
async fn ask_in_turn<T>(
    client: &Client,
    peers: &[PeerId],
    request: SyncRequest,
    failure: String,
    accept: impl Fn(SyncResponse) -> Option<T>,
) -> Result<T, Attempt> {
    for peer in peers {
        let answer = tokio::time::timeout(
            STATE_SYNC_REQUEST_TIMEOUT,
            client.request_sync(*peer, request.clone()),
        )
        .await;
        if let Some(taken) = answer.ok().and_then(Result::ok).and_then(&accept) {
            return Ok(taken);
        }
    }
    Err(Attempt::Reject(failure))
}

/// Asks `peers` in turn for the validator set with `hash`.
async fn fetch_set(client: &Client, peers: &[PeerId], hash: Hash) -> Result<ValidatorSet, Attempt> {
    for peer in peers {
        let answer = tokio::time::timeout(
            STATE_SYNC_REQUEST_TIMEOUT,
            client.request_snapshot(*peer, SnapshotRequest::ValidatorSet(hash)),
        )
        .await;
        if let Ok(Ok(SnapshotResponse::ValidatorSet(Some(bytes)))) = answer {
            match codec::decode::<ValidatorSet>("validator set", &bytes, VALIDATOR_SET_BYTES_MAX) {
                Ok(set) if set.hash() == hash => return Ok(set),
                _ => {
                    tracing::warn!(%peer, "state sync: a peer sent a validator set that is not the one asked for; banning it");
                    let _ = client.ban(*peer, STATE_SYNC_BAN).await;
                }
            }
        }
    }
    Err(Attempt::Reject(format!(
        "no peer serves validator set {hash}"
    )))
}

/// The block of `height`, its certificate and signing set, verified from
/// the genesis (or from the trusted block) header by header.
async fn trusted_base(
    client: &Client,
    ledger: &Ledger,
    height: Height,
    trust: Option<(Height, Hash)>,
    status: &StateSyncStatus,
) -> Result<TrustedBase, Attempt> {
    let chain_id = ledger.chain_id().clone();
    let peers = client
        .peers()
        .await
        .map_err(|error| Attempt::Fail(failed(format!("p2p stopped: {error}"))))?;
    // (height verified, its hash, the set of the next height)
    let (mut verified, mut parent_hash, mut set) = match trust {
        None => {
            let set = ledger
                .validator_set(Height(1))
                .map_err(|error| Attempt::Fail(failed(error.to_string())))?
                .ok_or_else(|| Attempt::Fail(failed("the genesis has no validator set")))?;
            (Height::GENESIS, ledger.genesis_hash(), set)
        }
        Some((trust_height, trust_hash)) => {
            let blocks = fetch_blocks(client, &peers, trust_height, 1).await?;
            let block = decode_block(&blocks[0].block).map_err(|error| {
                Attempt::Reject(format!(
                    "the block of the trusted height does not decode: {error}"
                ))
            })?;
            if block.hash() != trust_hash {
                return Err(Attempt::Fail(failed(format!(
                    "the block of height {trust_height} peers serve is {}, but sync.trust_hash is {trust_hash}: the trusted hash is wrong or the peers are on another chain",
                    block.hash()
                ))));
            }
            if trust_height == height {
                let certificate = decode_certificate(&blocks[0].certificate).map_err(|error| {
                    Attempt::Reject(format!(
                        "the trusted block's certificate does not decode: {error}"
                    ))
                })?;
                let set = fetch_set(client, &peers, block.header.validator_set_hash).await?;
                certificate.verify(&chain_id, &set).map_err(|error| {
                    Attempt::Reject(format!("the trusted block's certificate: {error}"))
                })?;
                return Ok(TrustedBase {
                    block,
                    certificate,
                    set,
                });
            }
            let next = fetch_set(client, &peers, block.header.next_validator_set_hash).await?;
            (trust_height, trust_hash, next)
        }
    };
    let mut last: Option<(CommitCertificate, ValidatorSet)> = None;
    while verified < height {
        let from = Height(verified.0 + 1);
        let count = u32::try_from((height.0 - verified.0).min(u64::from(STATE_SYNC_HEADER_RANGE)))
            .unwrap_or(STATE_SYNC_HEADER_RANGE);
        let headers = fetch_headers(client, &peers, from, count).await?;
        for synced in headers.iter().take(count as usize) {
            let expected = Height(verified.0 + 1);
            let bad = |reason: String| Attempt::Reject(format!("header {expected}: {reason}"));
            let header =
                Header::from_bytes(&synced.header).map_err(|error| bad(error.to_string()))?;
            let certificate =
                decode_certificate(&synced.certificate).map_err(|error| bad(error.to_string()))?;
            if header.height != expected || header.chain_id != chain_id {
                return Err(bad(format!(
                    "it is of height {} on chain {}",
                    header.height, header.chain_id
                )));
            }
            if header.parent_hash != parent_hash {
                return Err(bad(format!(
                    "parent {} is not the verified {parent_hash}",
                    header.parent_hash
                )));
            }
            if header.validator_set_hash != set.hash() {
                return Err(bad(format!(
                    "it names validator set {}, its parent named {}",
                    header.validator_set_hash,
                    set.hash()
                )));
            }
            let hash = header.hash();
            if certificate.height != expected || certificate.block_hash != hash {
                return Err(bad("its certificate is for another block".into()));
            }
            certificate
                .verify(&chain_id, &set)
                .map_err(|error| bad(format!("its certificate: {error}")))?;
            let next = if header.next_validator_set_hash == set.hash() {
                set.clone()
            } else {
                fetch_set(client, &peers, header.next_validator_set_hash).await?
            };
            verified = expected;
            parent_hash = hash;
            status.update(|view| view.headers_verified += 1);
            if verified == height {
                last = Some((certificate, set.clone()));
            }
            set = next;
        }
    }
    let (certificate, set) =
        last.ok_or_else(|| Attempt::Reject("no header was verified".into()))?;
    // The walk verified headers only; the snapshot height's whole block is
    // kept by the restore, so it must be the one its verified header names.
    let blocks = fetch_blocks(client, &peers, height, 1).await?;
    let block = decode_block(&blocks[0].block).map_err(|error| {
        Attempt::Reject(format!(
            "the block of the snapshot height {height} does not decode: {error}"
        ))
    })?;
    if block.hash() != parent_hash {
        return Err(Attempt::Reject(format!(
            "the block of the snapshot height {height} a peer served is {}, the verified header is {parent_hash}",
            block.hash()
        )));
    }
    block.check_structure().map_err(|error| {
        Attempt::Reject(format!(
            "the block of the snapshot height {height}: {error}"
        ))
    })?;
    Ok(TrustedBase {
        block,
        certificate,
        set,
    })
}

/// The manifest of `candidate`, from a peer offering it, checked against
/// the offered hash and the trusted header. Peers that lie are banned.
async fn fetch_manifest(
    client: &Client,
    ledger: &Ledger,
    candidate: &Candidate,
    base: &TrustedBase,
) -> Result<SnapshotManifest, Attempt> {
    for peer in &candidate.peers {
        let answer = tokio::time::timeout(
            STATE_SYNC_REQUEST_TIMEOUT,
            client.request_snapshot(
                *peer,
                SnapshotRequest::Manifest {
                    height: candidate.height,
                },
            ),
        )
        .await;
        let Ok(Ok(SnapshotResponse::Manifest(Some(bytes)))) = answer else {
            continue;
        };
        let checked = if sha256(&bytes) != candidate.manifest_hash {
            Err(format!(
                "it hashes to {}, it offered {}",
                sha256(&bytes),
                candidate.manifest_hash
            ))
        } else {
            SnapshotManifest::from_bytes(&bytes)
                .and_then(|manifest| {
                    manifest.verify(
                        ledger.chain_id(),
                        candidate.height,
                        &base.block.header.state_root,
                    )?;
                    Ok(manifest)
                })
                .map_err(|error| error.to_string())
        };
        match checked {
            Ok(manifest) => return Ok(manifest),
            Err(reason) => {
                tracing::warn!(%peer, "state sync: a peer sent a bad manifest ({reason}); banning it");
                let _ = client.ban(*peer, STATE_SYNC_BAN).await;
            }
        }
    }
    Err(Attempt::Reject(
        "no peer offering it sent a manifest that matches the trusted header".into(),
    ))
}

/// Chunk `index`, from the peers offering the snapshot in turn; a peer
/// that sends a chunk that does not match its hash is banned and left out.
async fn fetch_chunk(
    client: &Client,
    manifest: &SnapshotManifest,
    height: Height,
    index: usize,
    peers: &Mutex<Vec<PeerId>>,
) -> Result<Vec<u8>, Attempt> {
    let request = SnapshotRequest::Chunk {
        height,
        index: u32::try_from(index).map_err(|_| Attempt::Reject("too many chunks".into()))?,
    };
    for attempt in 0..STATE_SYNC_CHUNK_ATTEMPTS_MAX {
        let peer = {
            let peers = peers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if peers.is_empty() {
                break;
            }
            peers[(index + attempt) % peers.len()]
        };
        let answer = tokio::time::timeout(
            STATE_SYNC_REQUEST_TIMEOUT,
            client.request_snapshot(peer, request.clone()),
        )
        .await;
        let Ok(Ok(SnapshotResponse::Chunk(Some(bytes)))) = answer else {
            tracing::debug!(%peer, index, "state sync: no chunk from this peer; asking another");
            continue;
        };
        match manifest.check_chunk(index, &bytes) {
            Ok(()) => return Ok(bytes),
            Err(error) => {
                tracing::warn!(%peer, index, "state sync: a peer sent a bad chunk ({error}); banning it and fetching the chunk from another");
                let _ = client.ban(peer, STATE_SYNC_BAN).await;
                peers
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .retain(|known| *known != peer);
            }
        }
    }
    Err(Attempt::Reject(format!(
        "no peer served chunk {index} of the snapshot of height {height}"
    )))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn candidate(height: u64, peers: usize) -> Candidate {
        Candidate {
            height: Height(height),
            manifest_hash: sha256(&height.to_be_bytes()),
            peers: (0..peers).map(|_| PeerId::random()).collect(),
        }
    }

    const NOW: Duration = Duration::ZERO;

    #[test]
    fn the_newest_snapshot_two_peers_offer_is_taken_at_once() {
        let candidates = [candidate(3000, 1), candidate(2000, 2), candidate(1000, 2)];
        let chosen = choose(&candidates, 2, NOW, NOW).unwrap();
        assert_eq!(chosen.height, Height(2000));
    }

    #[test]
    fn one_offering_peer_is_taken_once_the_peers_settled_not_before() {
        let candidates = [candidate(3000, 1), candidate(2000, 1)];
        // Peers still coming or not all answered: wait for agreement.
        assert!(choose(&candidates, 1, Duration::from_millis(500), NOW).is_none());
        assert!(choose(
            &candidates,
            1,
            Duration::from_millis(500),
            STATE_SYNC_PEERS_SETTLED - Duration::from_millis(1)
        )
        .is_none());
        // The same peers, all answering, for the settle time: take it.
        let chosen = choose(
            &candidates,
            1,
            Duration::from_millis(500),
            STATE_SYNC_PEERS_SETTLED,
        )
        .unwrap();
        assert_eq!(chosen.height, Height(3000));
        // Or after the whole agreement wait, settled or not.
        let chosen = choose(&candidates, 1, STATE_SYNC_AGREEMENT_WAIT, NOW).unwrap();
        assert_eq!(chosen.height, Height(3000));
    }

    #[test]
    fn peers_offering_different_snapshots_wait_twice_the_agreement_wait() {
        let candidates = [candidate(3000, 1), candidate(2000, 1)];
        // Settled peers do not cut this wait short: a second offerer may
        // still take the same snapshot.
        assert!(choose(
            &candidates,
            2,
            STATE_SYNC_AGREEMENT_WAIT,
            STATE_SYNC_AGREEMENT_WAIT
        )
        .is_none());
        let chosen = choose(&candidates, 2, STATE_SYNC_AGREEMENT_WAIT * 2, NOW).unwrap();
        assert_eq!(chosen.height, Height(3000));
    }

    #[test]
    fn no_offer_chooses_nothing() {
        assert!(choose(&[], 0, STATE_SYNC_OFFER_WAIT, STATE_SYNC_OFFER_WAIT).is_none());
    }
}
