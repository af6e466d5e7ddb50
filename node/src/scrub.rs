//! The background scrub: reads the whole store back at a bounded rate,
//! verifying every table block against its stored checksum
//! ([`cairn_store::Store::scrub`]), so damage on disk is found by the node
//! rather than by the first reader of an old block.
//!
//! On damage it logs an error that names the data directory, what was
//! found and what to do, and marks the ledger damaged, so `GET /ready`
//! answers 503 with the reason (without the machine's paths). The node
//! keeps running: consensus needs only the latest state and the recent
//! blocks, which it holds in memory or re-reads from memtables; the
//! operator decides when to resync (`cairnd reset`, which keeps a
//! validator's sign state) or restore. A pass starts at start-up and every
//! [`SCRUB_PASS_INTERVAL`] after the last one ended.

use std::{path::PathBuf, sync::Arc, time::Duration};

use cairn_store::{ScrubPosition, StoreError};

use crate::{ledger::Ledger, shutdown::Shutdown};

/// Most bytes the scrub reads per second (disk and CPU for checksums).
pub const SCRUB_BYTES_PER_SECOND: usize = 8 * 1024 * 1024;
/// Bytes read by one scrub step (one blocking call into the store).
pub const SCRUB_STEP_BYTES: usize = 1024 * 1024;
/// Pause between the end of one pass and the start of the next.
pub const SCRUB_PASS_INTERVAL: Duration = Duration::from_secs(6 * 3600);
/// Pause before the first pass (lets start-up and the first sync go first).
pub const SCRUB_START_DELAY: Duration = Duration::from_secs(1);

/// Starts the scrub of the ledger's store in `data_dir`; it runs until
/// `shutdown`.
pub fn spawn_scrub(ledger: Arc<Ledger>, data_dir: PathBuf, shutdown: Shutdown) {
    tokio::spawn(run_scrub(ledger, data_dir, shutdown));
}

async fn run_scrub(ledger: Arc<Ledger>, data_dir: PathBuf, mut shutdown: Shutdown) {
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
        loop {
            let store = Arc::clone(ledger.store());
            let from = position.clone();
            let step =
                tokio::task::spawn_blocking(move || store.scrub(&from, SCRUB_STEP_BYTES)).await;
            match step {
                Ok(Ok(step)) => {
                    bytes = bytes.saturating_add(step.bytes as u64);
                    match step.next {
                        Some(next) => position = next,
                        None => break,
                    }
                }
                Ok(Err(error @ StoreError::ChecksumMismatch { .. })) => {
                    report_damage(&ledger, &data_dir, &error);
                    // Nothing more to learn until the operator acts.
                    return;
                }
                Ok(Err(error)) => {
                    tracing::warn!("the store scrub could not read: {error}; it tries again later");
                    break;
                }
                Err(error) => {
                    tracing::warn!("the store scrub thread failed: {error}");
                    break;
                }
            }
            tokio::select! {
                _ = shutdown.requested() => return,
                () = tokio::time::sleep(step_pause) => {}
            }
        }
        tracing::info!(
            bytes,
            seconds = started.elapsed().as_secs(),
            "store scrub: every checksum read matched"
        );
    }
}

fn report_damage(ledger: &Ledger, data_dir: &std::path::Path, error: &StoreError) {
    tracing::error!(
        data = %data_dir.display(),
        "THE STORE IS DAMAGED: {error}. The scrub found a table file in {} whose data does not match its checksum; \
         reads of what it holds fail, and a later compaction of it can stop the node. \
         Stop the node and restore {} from a backup, or resync: `cairnd reset --yes --home <home>` deletes the chain data \
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
