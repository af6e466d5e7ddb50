//! Pruning old blocks in the background (`pruning.keep_blocks`): a task
//! that keeps the store's lowest height at `tip + 1 - keep_blocks`.
//!
//! It owns no data: the store deletes, in bounded unsynced batches of point
//! deletes ([`cairn_store::Store::prune_blocks_below`]), the blocks,
//! certificates, block-hash and transaction index entries of the heights
//! below, keeps the lowest height it holds and refuses to prune into the
//! latest [`cairn_store::PRUNE_KEEP_BLOCKS_MIN`] heights. Every store call
//! runs on a blocking thread, one batch at a time with a pause between
//! batches, so consensus (which shares RocksDB's write queue) waits at most
//! one batch's write. Every [`PRUNE_COMPACT_HEIGHTS`] pruned heights the
//! task asks the store to compact what it pruned, so the disk space comes
//! back at once.

use std::{sync::Arc, time::Duration};

use cairn_types::Height;

use crate::{ledger::Ledger, shutdown::Shutdown};

/// How often the task looks whether the tip moved past the window.
pub const PRUNE_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Pause between two prune batches (lets commits through when a long
/// history is pruned for the first time).
pub const PRUNE_BATCH_PAUSE: Duration = Duration::from_millis(20);
/// Heights pruned between two compactions of the pruned range.
pub const PRUNE_COMPACT_HEIGHTS: u64 = 2_048;

/// Starts the pruning task when `keep_blocks` is not 0; it runs until
/// `shutdown`.
pub fn spawn_pruning(ledger: Arc<Ledger>, keep_blocks: u64, shutdown: Shutdown) {
    if keep_blocks == 0 {
        return;
    }
    tracing::info!(
        keep_blocks,
        lowest = ledger.store().lowest_height().0,
        "pruning: keeping the blocks of the latest {keep_blocks} heights"
    );
    tokio::spawn(run_pruning(ledger, keep_blocks, shutdown));
}

async fn run_pruning(ledger: Arc<Ledger>, keep_blocks: u64, mut shutdown: Shutdown) {
    let mut since_compaction = 0u64;
    loop {
        tokio::select! {
            _ = shutdown.requested() => return,
            () = tokio::time::sleep(PRUNE_CHECK_INTERVAL) => {}
        }
        let below = Height(
            ledger
                .tip()
                .height
                .0
                .saturating_add(1)
                .saturating_sub(keep_blocks),
        );
        let first = ledger.store().lowest_height();
        let mut lowest = first;
        while lowest < below {
            let store = Arc::clone(ledger.store());
            let result = tokio::task::spawn_blocking(move || store.prune_blocks_below(below)).await;
            match result {
                Ok(Ok(next)) if next > lowest => {
                    since_compaction += next.0 - lowest.0;
                    lowest = next;
                }
                // At the store's own floor (the minimum window).
                Ok(Ok(_)) => break,
                Ok(Err(error)) => {
                    tracing::error!("pruning failed at height {lowest}: {error}; retrying later");
                    break;
                }
                Err(error) => {
                    tracing::error!("the pruning thread failed: {error}; retrying later");
                    break;
                }
            }
            tokio::select! {
                _ = shutdown.requested() => return,
                () = tokio::time::sleep(PRUNE_BATCH_PAUSE) => {}
            }
        }
        if lowest > first {
            tracing::debug!(
                from = first.0,
                lowest = lowest.0,
                "pruned the blocks below height {lowest}"
            );
        }
        if since_compaction >= PRUNE_COMPACT_HEIGHTS {
            since_compaction = 0;
            let store = Arc::clone(ledger.store());
            match tokio::task::spawn_blocking(move || store.compact_pruned()).await {
                Ok(Ok(())) => tracing::debug!(lowest = lowest.0, "compacted the pruned range"),
                Ok(Err(error)) => tracing::warn!("compacting the pruned range failed: {error}"),
                Err(error) => tracing::warn!("the compaction thread failed: {error}"),
            }
        }
    }
}
