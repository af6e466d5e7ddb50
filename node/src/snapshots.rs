//! The snapshots a node takes and serves: every `snapshot.interval`
//! heights a background task reads the state of the new height from a
//! consistent store view ([`cairn_store::create_snapshot`]) into files
//! under `<home>/snapshots/<height>/` (`manifest` and `chunk-<index>`),
//! keeping the newest `snapshot.keep`. Consensus never waits on it: it
//! hears of new blocks from the ledger's event stream, and a snapshot
//! still being taken when the next is due makes the next one skipped.
//!
//! A snapshot is written into `<height>.partial/` and renamed into place
//! once its manifest is written and synced, so a crash never leaves a
//! half snapshot that looks complete; partial directories are deleted at
//! start-up.
//!
//! Peers ask for snapshots on the snapshot protocol of `cairn-p2p`
//! ([`serve_snapshot`], answered on the blocking pool by the dispatcher).

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Instant,
};

use cairn_p2p::{SnapshotOffer, SnapshotRequest, SnapshotResponse};
use cairn_store::{
    create_snapshot, SnapshotManifest, StoreError, SNAPSHOT_CHUNK_BYTES_MAX,
    SNAPSHOT_MANIFEST_BYTES_MAX,
};
use cairn_types::{codec, Height};
use tokio::sync::broadcast::error::RecvError;

use crate::{ledger::Ledger, shutdown::Shutdown, NodeError};

/// Most snapshots kept on disk, whatever `snapshot.keep` says.
pub const SNAPSHOTS_KEPT_MAX: u32 = 16;

/// How much lower than the node's the scheduling priority of the thread
/// taking a snapshot is (a nice value added to the node's; Linux, where
/// the nice value is per thread). On a busy machine the snapshot then
/// takes the CPU that consensus leaves, instead of an equal share: at
/// 1,000,000 accounts a snapshot is 0.5-1 s of one core (BENCHMARKS.md).
pub const SNAPSHOT_THREAD_NICE_INCREMENT: i32 = 10;

/// One snapshot on disk.
#[derive(Clone, Debug)]
struct Held {
    offer: SnapshotOffer,
    directory: PathBuf,
}

/// The snapshots on disk, newest first.
pub struct Snapshots {
    directory: PathBuf,
    keep: usize,
    held: RwLock<Vec<Held>>,
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl Fn(std::io::Error) -> NodeError + 'a {
    move |source| NodeError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn height_dir_name(height: Height) -> String {
    format!("{:020}", height.0)
}

fn chunk_file(directory: &Path, index: usize) -> PathBuf {
    directory.join(format!("chunk-{index:05}"))
}

/// Reads a file of at most `limit` bytes.
fn read_bounded(path: &Path, limit: usize) -> Option<Vec<u8>> {
    let metadata = fs::metadata(path).ok()?;
    if metadata.len() > limit as u64 {
        return None;
    }
    fs::read(path).ok()
}

impl Snapshots {
    /// Opens `directory` (creating it), forgets partial snapshots and
    /// lists the complete ones; keeps at most `keep` (at most
    /// [`SNAPSHOTS_KEPT_MAX`]).
    pub fn open(directory: &Path, keep: u32) -> Result<Snapshots, NodeError> {
        fs::create_dir_all(directory).map_err(io_error("create", directory))?;
        let mut held = Vec::new();
        for entry in fs::read_dir(directory).map_err(io_error("read", directory))? {
            let entry = entry.map_err(io_error("read", directory))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".partial") {
                let _ = fs::remove_dir_all(&path);
                continue;
            }
            let Ok(height) = name.parse::<u64>() else {
                continue;
            };
            match read_bounded(&path.join("manifest"), SNAPSHOT_MANIFEST_BYTES_MAX)
                .map(|bytes| SnapshotManifest::from_bytes(&bytes))
            {
                Some(Ok(manifest)) if manifest.height.0 == height => held.push(Held {
                    offer: SnapshotOffer {
                        height: manifest.height,
                        manifest_hash: manifest.hash(),
                        chunks: u32::try_from(manifest.chunk_count()).unwrap_or(u32::MAX),
                    },
                    directory: path,
                }),
                _ => {
                    tracing::warn!(path = %path.display(), "deleting a snapshot whose manifest is missing or invalid");
                    let _ = fs::remove_dir_all(&path);
                }
            }
        }
        held.sort_by_key(|held| std::cmp::Reverse(held.offer.height));
        let snapshots = Snapshots {
            directory: directory.to_path_buf(),
            keep: keep.clamp(1, SNAPSHOTS_KEPT_MAX) as usize,
            held: RwLock::new(held),
        };
        snapshots.prune();
        Ok(snapshots)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Held>> {
        self.held
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The snapshots on offer, newest first.
    pub fn offers(&self) -> Vec<SnapshotOffer> {
        self.read().iter().map(|held| held.offer.clone()).collect()
    }

    fn directory_of(&self, height: Height) -> Option<PathBuf> {
        self.read()
            .iter()
            .find(|held| held.offer.height == height)
            .map(|held| held.directory.clone())
    }

    /// The encoded manifest of the snapshot of `height`.
    pub fn manifest(&self, height: Height) -> Option<Vec<u8>> {
        read_bounded(
            &self.directory_of(height)?.join("manifest"),
            SNAPSHOT_MANIFEST_BYTES_MAX,
        )
    }

    /// Chunk `index` of the snapshot of `height`.
    pub fn chunk(&self, height: Height, index: u32) -> Option<Vec<u8>> {
        read_bounded(
            &chunk_file(&self.directory_of(height)?, index as usize),
            SNAPSHOT_CHUNK_BYTES_MAX,
        )
    }

    /// Takes the snapshot of `height` (the ledger's latest height) from
    /// `ledger`'s store. Blocking: run it off the async workers.
    pub fn take(&self, ledger: &Ledger, height: Height) -> Result<SnapshotOffer, NodeError> {
        let final_dir = self.directory.join(height_dir_name(height));
        if final_dir.exists() {
            return Err(NodeError::Home(format!(
                "a snapshot of height {height} already exists"
            )));
        }
        let partial = self
            .directory
            .join(format!("{}.partial", height_dir_name(height)));
        let _ = fs::remove_dir_all(&partial);
        fs::create_dir_all(&partial).map_err(io_error("create", &partial))?;
        let result = (|| {
            let manifest = create_snapshot(ledger.store().as_ref(), height, &mut |index, chunk| {
                write_synced(&chunk_file(&partial, index), chunk).map_err(|error| {
                    StoreError::Backend {
                        operation: "write a snapshot chunk",
                        reason: error.to_string(),
                    }
                })
            })
            .map_err(|error| NodeError::Home(format!("snapshot of height {height}: {error}")))?;
            write_synced(&partial.join("manifest"), &manifest.to_bytes())
                .map_err(io_error("write", &partial))?;
            fs::rename(&partial, &final_dir).map_err(io_error("rename", &partial))?;
            Ok::<_, NodeError>(manifest)
        })();
        let manifest = match result {
            Ok(manifest) => manifest,
            Err(error) => {
                let _ = fs::remove_dir_all(&partial);
                return Err(error);
            }
        };
        let offer = SnapshotOffer {
            height,
            manifest_hash: manifest.hash(),
            chunks: u32::try_from(manifest.chunk_count()).unwrap_or(u32::MAX),
        };
        {
            let mut held = self
                .held
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            held.push(Held {
                offer: offer.clone(),
                directory: final_dir,
            });
            held.sort_by_key(|held| std::cmp::Reverse(held.offer.height));
        }
        self.prune();
        Ok(offer)
    }

    /// Deletes the snapshots beyond the newest `keep`.
    fn prune(&self) {
        let dropped: Vec<Held> = {
            let mut held = self
                .held
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if held.len() <= self.keep {
                return;
            }
            held.split_off(self.keep)
        };
        for old in dropped {
            if let Err(error) = fs::remove_dir_all(&old.directory) {
                tracing::warn!(path = %old.directory.display(), "cannot delete an old snapshot: {error}");
            }
        }
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Answers a peer's snapshot request (blocking: reads files and the store).
pub fn serve_snapshot(
    snapshots: &Snapshots,
    ledger: &Ledger,
    request: &SnapshotRequest,
) -> SnapshotResponse {
    match request {
        SnapshotRequest::List => SnapshotResponse::List(snapshots.offers()),
        SnapshotRequest::Manifest { height } => {
            SnapshotResponse::Manifest(snapshots.manifest(*height))
        }
        SnapshotRequest::Chunk { height, index } => {
            SnapshotResponse::Chunk(snapshots.chunk(*height, *index))
        }
        SnapshotRequest::ValidatorSet(hash) => SnapshotResponse::ValidatorSet(
            ledger
                .store()
                .validator_set(hash)
                .ok()
                .flatten()
                .map(|set| codec::encode(&set)),
        ),
    }
}

/// Lowers the calling thread's scheduling priority by
/// [`SNAPSHOT_THREAD_NICE_INCREMENT`] (Linux only; elsewhere, or when the
/// system refuses, the thread keeps the node's priority). Only for a
/// thread of its own: an unprivileged thread cannot raise it back.
fn lower_this_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        let thread = Some(rustix::thread::gettid());
        let result = rustix::process::getpriority_process(thread).and_then(|nice| {
            rustix::process::setpriority_process(
                thread,
                nice.saturating_add(SNAPSHOT_THREAD_NICE_INCREMENT).min(19),
            )
        });
        if let Err(error) = result {
            tracing::debug!("the snapshot thread keeps the node's priority: {error}");
        }
    }
}

/// Takes a snapshot every `interval` heights (0: never) until `shutdown`,
/// one at a time, each on a thread of its own at a lower priority
/// ([`SNAPSHOT_THREAD_NICE_INCREMENT`]).
pub async fn run_snapshotter(
    ledger: Arc<Ledger>,
    snapshots: Arc<Snapshots>,
    interval: u64,
    mut shutdown: Shutdown,
) {
    if interval == 0 {
        return;
    }
    let mut blocks = ledger.subscribe();
    let mut running: Option<std::thread::JoinHandle<()>> = None;
    loop {
        let event = tokio::select! {
            _ = shutdown.requested() => return,
            event = blocks.recv() => event,
        };
        let height = match event {
            Ok(event) => Height(event.height),
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        };
        if height.0 % interval != 0 {
            continue;
        }
        if running.as_ref().is_some_and(|task| !task.is_finished()) {
            tracing::warn!(
                height = height.0,
                "skipping the snapshot of this height: the previous one is still being taken"
            );
            continue;
        }
        let ledger = Arc::clone(&ledger);
        let snapshots = Arc::clone(&snapshots);
        let spawned = std::thread::Builder::new()
            .name("cairn-snapshot".into())
            .spawn(move || {
                lower_this_thread_priority();
                let started = Instant::now();
                match snapshots.take(&ledger, height) {
                    Ok(offer) => tracing::info!(
                        height = height.0,
                        chunks = offer.chunks,
                        manifest = %offer.manifest_hash,
                        seconds = started.elapsed().as_secs_f64(),
                        "took a state snapshot"
                    ),
                    Err(error) => {
                        tracing::warn!(height = height.0, "no snapshot of this height: {error}")
                    }
                }
            });
        match spawned {
            Ok(handle) => running = Some(handle),
            Err(error) => tracing::warn!(
                height = height.0,
                "no snapshot of this height: cannot start its thread: {error}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn the_snapshot_thread_runs_at_a_lower_priority_and_only_it() {
        let node = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        let snapshot = std::thread::spawn(|| {
            lower_this_thread_priority();
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(
            snapshot,
            (node + SNAPSHOT_THREAD_NICE_INCREMENT).min(19),
            "the snapshot thread's nice value"
        );
        // The calling thread is untouched.
        let after = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        assert_eq!(after, node);
    }
}
