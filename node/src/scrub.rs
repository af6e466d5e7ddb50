//! The background scrub: reads the whole store back at a bounded rate,
//! verifying every table block against its stored checksum
//! ([`cairn_store::Store::scrub`]), so damage on disk is found by the node
//! rather than by the first reader of an old block.
//!
//! On damage it logs an error that names the data directory and what was
//! found, and marks the ledger damaged, so `GET /ready` answers 503 with
//! the reason (without the machine's paths). Then it repairs what is safe
//! to repair: a damaged table file of the blocks or certificates (at level
//! 1 or up, see [`cairn_store::Store::damage_repair`]) holds only what
//! every peer holds too, so its heights are fetched again from peers,
//! checked against the chain (each block's hash is named by the block
//! above it, each certificate verifies against its set) and written back,
//! and the damaged file is dropped ([`cairn_store::Store::repair_heights`]);
//! `/ready` is 200 again and a new pass starts. A damaged file of the
//! accounts is written again from the committed state the ledger holds in
//! memory (its root is the latest block's state root). Anything else (the
//! WAL, an index, a level-0 file), or a repair no peer can serve, stays
//! reported, with what the operator can do. The node keeps
//! running: consensus needs only the latest state and the recent blocks,
//! which it holds in memory or re-reads from memtables; the operator
//! decides when to resync (`cairnd reset`, which keeps a validator's sign
//! state) or restore. A pass starts at start-up and every
//! [`SCRUB_PASS_INTERVAL`] after the last one ended.

use std::{path::PathBuf, sync::Arc, time::Duration};

use cairn_p2p::{Client, SyncRequest, SyncResponse};
use cairn_store::{DamageRepair, ScrubPosition, StoreError};
use cairn_types::{Block, CommitCertificate, Height};

use crate::{
    ledger::Ledger,
    runtime::{decode_block, decode_certificate},
    shutdown::Shutdown,
};

/// Most bytes the scrub reads per second (disk and CPU for checksums).
pub const SCRUB_BYTES_PER_SECOND: usize = 8 * 1024 * 1024;
/// Bytes read by one scrub step (one blocking call into the store).
pub const SCRUB_STEP_BYTES: usize = 1024 * 1024;
/// Pause between the end of one pass and the start of the next.
pub const SCRUB_PASS_INTERVAL: Duration = Duration::from_secs(6 * 3600);
/// Pause before the first pass (lets start-up and the first sync go first).
pub const SCRUB_START_DELAY: Duration = Duration::from_secs(1);
/// Most heights one repair fetches again (a damaged file holding more is
/// left to the operator; a table file of the blocks holds far fewer).
pub const REPAIR_HEIGHTS_MAX: u64 = 100_000;
/// Most bytes of blocks one repair holds in memory before writing them.
pub const REPAIR_BYTES_MAX: usize = 1024 * 1024 * 1024;
/// Most peers asked for one damaged file's records (one after another).
pub const REPAIR_PEERS_MAX: usize = 8;
/// Deadline of one block-range request of a repair.
pub const REPAIR_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before the first retry of a repair that found no peer able to
/// serve it (right after start-up the peers may still be connecting); each
/// retry doubles it, up to [`REPAIR_RETRY_INTERVAL_MAX`].
pub const REPAIR_RETRY_INTERVAL_FIRST: Duration = Duration::from_secs(1);
/// Longest pause between two tries of a repair.
pub const REPAIR_RETRY_INTERVAL_MAX: Duration = Duration::from_secs(30);
/// Repairs tried for one pass's damage before it is left to the operator
/// (about five minutes with the pauses above).
pub const REPAIR_ATTEMPTS_MAX: u32 = 14;

/// Starts the scrub of the ledger's store in `data_dir`; it runs until
/// `shutdown`. Repairs fetch from peers through `client`.
pub fn spawn_scrub(ledger: Arc<Ledger>, client: Client, data_dir: PathBuf, shutdown: Shutdown) {
    tokio::spawn(run_scrub(ledger, client, data_dir, shutdown));
}

async fn run_scrub(ledger: Arc<Ledger>, client: Client, data_dir: PathBuf, mut shutdown: Shutdown) {
    let mut attempts = 0u32;
    let step_pause =
        Duration::from_secs_f64(SCRUB_STEP_BYTES as f64 / SCRUB_BYTES_PER_SECOND as f64);
    let mut pause = SCRUB_START_DELAY;
    loop {
        tokio::select! {
            _ = shutdown.requested() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = SCRUB_PASS_INTERVAL;
        let started = std::time::Instant::now();
        let mut position = ScrubPosition::default();
        let mut bytes = 0u64;
        let damage = loop {
            let store = Arc::clone(ledger.store());
            let from = position.clone();
            let step =
                tokio::task::spawn_blocking(move || store.scrub(&from, SCRUB_STEP_BYTES)).await;
            match step {
                Ok(Ok(step)) => {
                    bytes = bytes.saturating_add(step.bytes as u64);
                    match step.next {
                        Some(next) => position = next,
                        None => break None,
                    }
                }
                Ok(Err(error @ StoreError::ChecksumMismatch { .. })) => break Some(error),
                Ok(Err(error)) => {
                    tracing::warn!("the store scrub could not read: {error}; it tries again later");
                    break None;
                }
                Err(error) => {
                    tracing::warn!("the store scrub thread failed: {error}");
                    break None;
                }
            }
            tokio::select! {
                _ = shutdown.requested() => return,
                () = tokio::time::sleep(step_pause) => {}
            }
        };
        let Some(damage) = damage else {
            tracing::info!(
                bytes,
                seconds = started.elapsed().as_secs(),
                "store scrub: every checksum read matched"
            );
            continue;
        };
        report_damage(&ledger, &data_dir, &damage);
        match try_repair(&ledger, &client, damage).await {
            Repaired::Yes => {
                attempts = 0;
                ledger.clear_store_damage();
                // Look again from the start, at once.
                pause = Duration::ZERO;
            }
            Repaired::Later if attempts < REPAIR_ATTEMPTS_MAX => {
                pause = repair_retry_pause(attempts);
                attempts += 1;
                tracing::warn!(
                    attempt = attempts,
                    "no peer served the damaged heights; trying again in {} s",
                    pause.as_secs()
                );
            }
            Repaired::Later => {
                tracing::error!(
                    attempts,
                    "no peer served the damaged heights in {attempts} tries; the damage stays reported until the operator acts (see above)"
                );
                return;
            }
            Repaired::Never => {
                // Nothing more to learn until the operator acts.
                return;
            }
        }
    }
}

/// How a repair went.
enum Repaired {
    /// The damaged file is gone, its records written again.
    Yes,
    /// No peer could serve it now; try again later.
    Later,
    /// Not repairable by this node (logged).
    Never,
}

/// Repairs `damage` from peers where that is safe ([`cairn_store::Store::damage_repair`]).
async fn try_repair(ledger: &Arc<Ledger>, client: &Client, damage: StoreError) -> Repaired {
    let plan = {
        let store = Arc::clone(ledger.store());
        tokio::task::spawn_blocking(move || store.damage_repair(&damage)).await
    };
    let damaged = match plan {
        Ok(Ok(DamageRepair::Refetch(damaged))) => damaged,
        Ok(Ok(DamageRepair::RewriteAccounts(damaged))) => {
            let for_ledger = Arc::clone(ledger);
            let file = damaged.file.clone();
            return match tokio::task::spawn_blocking(move || for_ledger.repair_accounts(&damaged))
                .await
            {
                Ok(Ok(())) => {
                    tracing::warn!(
                        %file,
                        "repaired the damaged table file: the accounts it held were written again from the committed state in memory (whose root is the latest block's state root); the file was dropped"
                    );
                    Repaired::Yes
                }
                Ok(Err(error)) => {
                    tracing::error!("the accounts could not be repaired: {error}");
                    Repaired::Never
                }
                Err(error) => {
                    tracing::error!("the repair thread failed: {error}");
                    Repaired::Never
                }
            };
        }
        Ok(Ok(DamageRepair::NotRepairable(reason))) => {
            tracing::error!("the damage cannot be repaired from peers: {reason}");
            return Repaired::Never;
        }
        Ok(Err(error)) => {
            tracing::error!("could not judge the damage: {error}");
            return Repaired::Never;
        }
        Err(error) => {
            tracing::error!("the repair thread failed: {error}");
            return Repaired::Never;
        }
    };
    let store = ledger.store();
    let held = damaged.held(store.lowest_height(), store.latest_height());
    if let Some((first, last)) = held {
        if last.0 - first.0 + 1 > REPAIR_HEIGHTS_MAX {
            tracing::error!(
                first = first.0,
                last = last.0,
                "the damaged file {} holds more than {REPAIR_HEIGHTS_MAX} heights; not fetching them again",
                damaged.file
            );
            return Repaired::Never;
        }
    }
    tracing::warn!(
        column = damaged.column,
        file = %damaged.file,
        first = held.map_or(0, |(first, _)| first.0),
        last = held.map_or(0, |(_, last)| last.0),
        "repairing the damaged table file: fetching its heights again from peers"
    );
    // Every height of the file pruned: nothing to fetch, only the file to
    // drop (no peer asked).
    let peers = match held {
        None => vec![None],
        Some(_) => match client.peers().await {
            Ok(peers) => peers.into_iter().take(REPAIR_PEERS_MAX).map(Some).collect(),
            Err(_) => return Repaired::Never,
        },
    };
    let asked = peers.len();
    for peer in peers {
        let records = match (held, peer) {
            (Some((first, last)), Some(peer)) => {
                match fetch_records(client, peer, first, last).await {
                    Some(records) => records,
                    None => continue,
                }
            }
            _ => Vec::new(),
        };
        let store = Arc::clone(ledger.store());
        let for_store = damaged.clone();
        let result =
            tokio::task::spawn_blocking(move || store.repair_heights(&for_store, &records)).await;
        match result {
            Ok(Ok(())) => {
                tracing::warn!(
                    column = damaged.column,
                    file = %damaged.file,
                    peer = ?peer,
                    "repaired the damaged table file: its blocks and certificates were fetched again, verified against the chain and written back; the file was dropped"
                );
                return Repaired::Yes;
            }
            Ok(Err(error @ StoreError::Repair { .. })) => {
                tracing::warn!(peer = ?peer, "a peer's records did not repair the damage: {error}");
            }
            Ok(Err(error)) => {
                tracing::error!("the repair could not be written: {error}");
                return Repaired::Never;
            }
            Err(error) => {
                tracing::error!("the repair thread failed: {error}");
                return Repaired::Never;
            }
        }
    }
    tracing::info!(
        asked,
        "none of the {asked} connected peers served every damaged height"
    );
    Repaired::Later
}

/// The pause before retry number `attempts + 1` of a repair.
fn repair_retry_pause(attempts: u32) -> Duration {
    REPAIR_RETRY_INTERVAL_FIRST
        .saturating_mul(1u32 << attempts.min(16))
        .min(REPAIR_RETRY_INTERVAL_MAX)
}

/// The blocks and certificates of `first ..= last` from `peer`, in ranges;
/// `None` when it does not serve all of them.
async fn fetch_records(
    client: &Client,
    peer: cairn_p2p::PeerId,
    first: Height,
    last: Height,
) -> Option<Vec<(Block, CommitCertificate)>> {
    let mut records = Vec::new();
    let mut bytes = 0usize;
    let mut next = first;
    while next <= last {
        let count = u32::try_from(
            (last.0 - next.0 + 1).min(u64::from(cairn_p2p::limits::SYNC_RANGE_BLOCKS_MAX)),
        )
        .unwrap_or(cairn_p2p::limits::SYNC_RANGE_BLOCKS_MAX);
        let answer = tokio::time::timeout(
            REPAIR_REQUEST_TIMEOUT,
            client.request_sync(peer, SyncRequest::Blocks { from: next, count }),
        )
        .await;
        let Ok(Ok(SyncResponse::Blocks(blocks))) = answer else {
            return None;
        };
        if blocks.is_empty() {
            return None;
        }
        for synced in blocks {
            bytes = bytes.saturating_add(synced.wire_bytes());
            if bytes > REPAIR_BYTES_MAX {
                tracing::warn!("the damaged heights hold more than {REPAIR_BYTES_MAX} bytes of blocks; not fetching them again");
                return None;
            }
            let (Ok(block), Ok(certificate)) = (
                decode_block(&synced.block),
                decode_certificate(&synced.certificate),
            ) else {
                return None;
            };
            records.push((block, certificate));
            next = Height(next.0 + 1);
        }
    }
    Some(records)
}

fn report_damage(ledger: &Ledger, data_dir: &std::path::Path, error: &StoreError) {
    tracing::error!(
        data = %data_dir.display(),
        "THE STORE IS DAMAGED: {error}. The scrub found a table file in {} whose data does not match its checksum; \
         reads of what it holds fail, and a later compaction of it can stop the node. \
         A damaged file of blocks or certificates is repaired from peers, one of accounts from the state in memory \
         (the log says so next); for anything else, \
         stop the node and restore {} from a backup, or resync: `cairnd reset --yes --home <home>` deletes the chain data \
         (keys, config and a validator's sign state stay, so a resynced validator signs nothing at or below what it signed before) \
         and the next start syncs the chain from peers. /ready answers 503 until then",
        data_dir.display(),
        data_dir.display()
    );
    ledger.report_store_damage(without_paths(&format!(
        "the store is damaged ({error}); the node's log says what to do"
    )));
}

/// `text` with every absolute path cut to its file name: RPC answers never
/// carry the machine's paths.
pub fn without_paths(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            if word.starts_with('/') {
                let trimmed = word.trim_end_matches([',', ';', ')', ':']);
                let tail = &word[trimmed.len()..];
                let name = std::path::Path::new(trimmed)
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_default();
                format!("{name}{tail}")
            } else {
                word.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repair_retries_start_soon_and_back_off_to_the_cap() {
        assert_eq!(repair_retry_pause(0), REPAIR_RETRY_INTERVAL_FIRST);
        assert_eq!(repair_retry_pause(1), 2 * REPAIR_RETRY_INTERVAL_FIRST);
        assert_eq!(repair_retry_pause(4), 16 * REPAIR_RETRY_INTERVAL_FIRST);
        assert_eq!(repair_retry_pause(5), REPAIR_RETRY_INTERVAL_MAX);
        assert_eq!(repair_retry_pause(u32::MAX), REPAIR_RETRY_INTERVAL_MAX);
        let total: Duration = (0..REPAIR_ATTEMPTS_MAX).map(repair_retry_pause).sum();
        assert!(total >= Duration::from_secs(240), "{total:?}");
    }

    #[test]
    fn paths_are_cut_to_file_names() {
        assert_eq!(
            without_paths(
                "Corruption: block checksum mismatch: stored = 1, computed = 2 in /home/x/.cairn/data/000008.sst offset 0 size 4096"
            ),
            "Corruption: block checksum mismatch: stored = 1, computed = 2 in 000008.sst offset 0 size 4096"
        );
        assert_eq!(without_paths("at /a/b/c.sst: bad"), "at c.sst: bad");
        assert_eq!(without_paths("no path here"), "no path here");
    }
}
