//! State snapshots: the format every node agrees on, taking one from a
//! store, and checking what a peer sends. The format is written down in
//! `SNAPSHOTS.md` and pinned by golden vectors (`tests/snapshot.rs`).
//!
//! A snapshot of height H is the full state after block H (everything the
//! state root of H commits to) as a sorted run of `(key, value)` entries,
//! cut into chunks of at most [`SNAPSHOT_CHUNK_BYTES_MAX`] bytes, plus a
//! [`SnapshotManifest`] naming the chain, the height, the state root and
//! the SHA-256 of every chunk.
//!
//! | entry | key | value |
//! |---|---|---|
//! | account | `a` (0x61), address (20) | slot (8) balance (8) nonce (8), BE |
//! | staking piece | `s` (0x73), piece index (4, BE) | the next at most [`SNAPSHOT_STAKING_PIECE_BYTES_MAX`] bytes of the staking state's canonical encoding |
//!
//! Entries are in strictly increasing key order (accounts by address, then
//! the staking pieces in order); a chunk is a u32 BE entry count, then per
//! entry a u8 key length, the key, a u32 BE value length and the value.
//! Chunks are filled greedily: an entry goes into the current chunk if it
//! fits, else it starts the next one. So the same state gives the same
//! chunks, byte for byte, on every node.
//!
//! Taking a snapshot reads one consistent view of the store (a RocksDB
//! snapshot) and holds one chunk in memory at a time.

use cairn_types::{codec, sha256, ChainId, Hash, Height};
use serde::{Deserialize, Serialize};

use crate::{Store, StoreError};

/// The snapshot format version this build writes and reads.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;
/// Largest chunk.
pub const SNAPSHOT_CHUNK_BYTES_MAX: usize = 1024 * 1024;
/// Most chunks of one snapshot (64 GiB of state).
pub const SNAPSHOT_CHUNKS_MAX: usize = 65_536;
/// Largest encoded manifest: the chunk hashes and a few fields.
pub const SNAPSHOT_MANIFEST_BYTES_MAX: usize = SNAPSHOT_CHUNKS_MAX * 32 + 4 * 1024;
/// Largest piece of the staking state in one entry.
pub const SNAPSHOT_STAKING_PIECE_BYTES_MAX: usize = 256 * 1024;
/// Longest entry key.
pub const SNAPSHOT_KEY_BYTES_MAX: usize = 64;

/// Called on each snapshot entry `(key, value)`, in key order.
pub type EntryVisitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<(), StoreError> + 'a;

/// Called on each finished chunk with its index.
pub type ChunkSink<'a> = dyn FnMut(usize, &[u8]) -> Result<(), StoreError> + 'a;

/// Key tag of an account entry.
pub(crate) const ACCOUNT_TAG: u8 = b'a';
/// Key tag of a staking piece entry.
pub(crate) const STAKING_TAG: u8 = b's';

/// Bytes of a chunk's entry count.
const CHUNK_COUNT_BYTES: usize = 4;

/// What a snapshot holds, and the hash of each chunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotManifest {
    /// [`SNAPSHOT_FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// The chain.
    pub chain_id: ChainId,
    /// The height whose state this is (after its block).
    pub height: Height,
    /// The state root of that height (its header's `state_root`).
    pub state_root: Hash,
    /// SHA-256 of each chunk, in order; their number is the chunk count.
    pub chunk_hashes: Vec<Hash>,
}

impl SnapshotManifest {
    /// The canonical bytes (postcard).
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes a manifest (bounded by [`SNAPSHOT_MANIFEST_BYTES_MAX`]) and
    /// checks its version and chunk count.
    pub fn from_bytes(bytes: &[u8]) -> Result<SnapshotManifest, StoreError> {
        let manifest: SnapshotManifest =
            codec::decode("snapshot manifest", bytes, SNAPSHOT_MANIFEST_BYTES_MAX).map_err(
                |error| StoreError::InvalidSnapshot {
                    reason: format!("the manifest does not decode: {error}"),
                },
            )?;
        if manifest.format_version != SNAPSHOT_FORMAT_VERSION {
            return Err(StoreError::InvalidSnapshot {
                reason: format!(
                    "format version {} (this build reads {SNAPSHOT_FORMAT_VERSION})",
                    manifest.format_version
                ),
            });
        }
        if manifest.chunk_hashes.len() > SNAPSHOT_CHUNKS_MAX {
            return Err(StoreError::InvalidSnapshot {
                reason: format!(
                    "{} chunks, the limit is {SNAPSHOT_CHUNKS_MAX}",
                    manifest.chunk_hashes.len()
                ),
            });
        }
        Ok(manifest)
    }

    /// SHA-256 of the canonical bytes: what peers compare to agree on a
    /// snapshot.
    pub fn hash(&self) -> Hash {
        sha256(&self.to_bytes())
    }

    /// Number of chunks.
    pub fn chunk_count(&self) -> usize {
        self.chunk_hashes.len()
    }

    /// Checks that this is a snapshot of `chain_id` at `height` with
    /// `state_root` (from a trusted header).
    pub fn verify(
        &self,
        chain_id: &ChainId,
        height: Height,
        state_root: &Hash,
    ) -> Result<(), StoreError> {
        let wrong = |reason: String| Err(StoreError::InvalidSnapshot { reason });
        if self.format_version != SNAPSHOT_FORMAT_VERSION {
            return wrong(format!(
                "format version {} (this build reads {SNAPSHOT_FORMAT_VERSION})",
                self.format_version
            ));
        }
        if &self.chain_id != chain_id {
            return wrong(format!("it is of chain {}, not {chain_id}", self.chain_id));
        }
        if self.height != height {
            return wrong(format!("it is of height {}, not {height}", self.height));
        }
        if &self.state_root != state_root {
            return wrong(format!(
                "its state root is {}, the trusted header of height {height} says {state_root}",
                self.state_root
            ));
        }
        if self.chunk_hashes.len() > SNAPSHOT_CHUNKS_MAX {
            return wrong(format!(
                "{} chunks, the limit is {SNAPSHOT_CHUNKS_MAX}",
                self.chunk_hashes.len()
            ));
        }
        Ok(())
    }

    /// Checks chunk `index` against its size limit and its hash.
    pub fn check_chunk(&self, index: usize, bytes: &[u8]) -> Result<(), StoreError> {
        let Some(expected) = self.chunk_hashes.get(index) else {
            return Err(StoreError::InvalidSnapshot {
                reason: format!(
                    "chunk {index} does not exist (the snapshot has {})",
                    self.chunk_hashes.len()
                ),
            });
        };
        if bytes.len() > SNAPSHOT_CHUNK_BYTES_MAX {
            return Err(StoreError::InvalidSnapshot {
                reason: format!(
                    "chunk {index} is {} bytes, the limit is {SNAPSHOT_CHUNK_BYTES_MAX}",
                    bytes.len()
                ),
            });
        }
        let found = sha256(bytes);
        if found != *expected {
            return Err(StoreError::InvalidSnapshot {
                reason: format!("chunk {index} hashes to {found}, the manifest says {expected}"),
            });
        }
        Ok(())
    }
}

/// Bytes an entry takes in a chunk.
fn entry_bytes(key: &[u8], value: &[u8]) -> usize {
    1 + key.len() + 4 + value.len()
}

/// Cuts a sorted run of entries into chunks, handing each finished chunk
/// to `emit` with its index, and collects their hashes.
pub struct ChunkBuilder<F> {
    current: Vec<u8>,
    count: u32,
    hashes: Vec<Hash>,
    last_key: Option<Vec<u8>>,
    emit: F,
}

impl<F: FnMut(usize, &[u8]) -> Result<(), StoreError>> ChunkBuilder<F> {
    /// A builder handing chunks to `emit`.
    pub fn new(emit: F) -> ChunkBuilder<F> {
        ChunkBuilder {
            current: Vec::new(),
            count: 0,
            hashes: Vec::new(),
            last_key: None,
            emit,
        }
    }

    /// Appends an entry; keys must come in strictly increasing order.
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        if key.is_empty() || key.len() > SNAPSHOT_KEY_BYTES_MAX {
            return Err(StoreError::InvalidSnapshot {
                reason: format!(
                    "an entry key of {} bytes (1 to {SNAPSHOT_KEY_BYTES_MAX})",
                    key.len()
                ),
            });
        }
        if self.last_key.as_deref().is_some_and(|last| last >= key) {
            return Err(StoreError::InvalidSnapshot {
                reason: "entries are not in strictly increasing key order".into(),
            });
        }
        let size = entry_bytes(key, value);
        if CHUNK_COUNT_BYTES + size > SNAPSHOT_CHUNK_BYTES_MAX {
            return Err(StoreError::InvalidSnapshot {
                reason: format!("an entry of {size} bytes does not fit in a chunk"),
            });
        }
        if self.current.len() + size > SNAPSHOT_CHUNK_BYTES_MAX {
            self.flush()?;
        }
        if self.current.is_empty() {
            self.current.extend_from_slice(&[0; CHUNK_COUNT_BYTES]);
        }
        // Lengths were checked above: a key fits in a u8, a value in a u32.
        self.current.push(key.len() as u8);
        self.current.extend_from_slice(key);
        self.current
            .extend_from_slice(&(value.len() as u32).to_be_bytes());
        self.current.extend_from_slice(value);
        self.count += 1;
        self.last_key = Some(key.to_vec());
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        if self.count == 0 {
            return Ok(());
        }
        if self.hashes.len() >= SNAPSHOT_CHUNKS_MAX {
            return Err(StoreError::InvalidSnapshot {
                reason: format!("the state needs more than {SNAPSHOT_CHUNKS_MAX} chunks"),
            });
        }
        self.current[..CHUNK_COUNT_BYTES].copy_from_slice(&self.count.to_be_bytes());
        self.hashes.push(sha256(&self.current));
        (self.emit)(self.hashes.len() - 1, &self.current)?;
        self.current.clear();
        self.count = 0;
        Ok(())
    }

    /// Emits the last chunk; returns the hashes of all.
    pub fn finish(mut self) -> Result<Vec<Hash>, StoreError> {
        self.flush()?;
        Ok(self.hashes)
    }
}

/// Visits the entries of a chunk in order, checking its framing: a count
/// that matches, lengths that stay inside the chunk, keys in strictly
/// increasing order, nothing after the last entry.
pub fn decode_chunk(bytes: &[u8], visit: &mut EntryVisitor<'_>) -> Result<(), StoreError> {
    let malformed = |reason: &str| StoreError::InvalidSnapshot {
        reason: format!("malformed chunk: {reason}"),
    };
    if bytes.len() > SNAPSHOT_CHUNK_BYTES_MAX {
        return Err(malformed("over the size limit"));
    }
    let count = bytes
        .get(..CHUNK_COUNT_BYTES)
        .and_then(|slice| <[u8; 4]>::try_from(slice).ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| malformed("no entry count"))?;
    if count == 0 {
        return Err(malformed("no entries"));
    }
    let mut at = CHUNK_COUNT_BYTES;
    let mut last: Option<&[u8]> = None;
    for _ in 0..count {
        let key_len = *bytes.get(at).ok_or_else(|| malformed("cut short"))? as usize;
        at += 1;
        let key = bytes
            .get(at..at + key_len)
            .ok_or_else(|| malformed("cut short"))?;
        at += key_len;
        let value_len = bytes
            .get(at..at + 4)
            .and_then(|slice| <[u8; 4]>::try_from(slice).ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| malformed("cut short"))? as usize;
        at += 4;
        let value = bytes
            .get(at..at.saturating_add(value_len))
            .ok_or_else(|| malformed("cut short"))?;
        at += value_len;
        if key.is_empty() || last.is_some_and(|last| last >= key) {
            return Err(malformed("keys not in strictly increasing order"));
        }
        last = Some(key);
        visit(key, value)?;
    }
    if at != bytes.len() {
        return Err(malformed("bytes after the last entry"));
    }
    Ok(())
}

/// The key of staking piece `index`.
pub(crate) fn staking_piece_key(index: u32) -> [u8; 5] {
    let mut key = [STAKING_TAG; 5];
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

/// Takes a snapshot of `store` at `height`, which must be its latest
/// height: streams its entries from one consistent view into chunks,
/// hands each chunk to `write_chunk` with its index, and returns the
/// manifest. Holds one chunk in memory.
pub fn create_snapshot(
    store: &dyn Store,
    height: Height,
    write_chunk: &mut ChunkSink<'_>,
) -> Result<SnapshotManifest, StoreError> {
    let mut builder = ChunkBuilder::new(|index, chunk: &[u8]| write_chunk(index, chunk));
    let state_root = store.snapshot_entries(height, &mut |key, value| builder.push(key, value))?;
    let chunk_hashes = builder.finish()?;
    Ok(SnapshotManifest {
        format_version: SNAPSHOT_FORMAT_VERSION,
        chain_id: store.identity().chain_id.clone(),
        height,
        state_root,
        chunk_hashes,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn chunks_of(entries: &[(Vec<u8>, Vec<u8>)]) -> (Vec<Vec<u8>>, Vec<Hash>) {
        let mut chunks = Vec::new();
        let mut builder = ChunkBuilder::new(|index, chunk: &[u8]| {
            assert_eq!(index, chunks.len());
            chunks.push(chunk.to_vec());
            Ok(())
        });
        for (key, value) in entries {
            builder.push(key, value).unwrap();
        }
        let hashes = builder.finish().unwrap();
        (chunks, hashes)
    }

    #[test]
    fn chunks_stay_under_the_limit_and_decode_to_the_entries() {
        let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..200u32)
            .map(|i| {
                let mut key = vec![ACCOUNT_TAG];
                key.extend_from_slice(&i.to_be_bytes());
                (key, vec![i as u8; 20_000])
            })
            .collect();
        let (chunks, hashes) = chunks_of(&entries);
        assert!(chunks.len() > 3);
        assert_eq!(chunks.len(), hashes.len());
        let mut seen = Vec::new();
        for (chunk, hash) in chunks.iter().zip(&hashes) {
            assert!(chunk.len() <= SNAPSHOT_CHUNK_BYTES_MAX);
            assert_eq!(sha256(chunk), *hash);
            decode_chunk(chunk, &mut |key, value| {
                seen.push((key.to_vec(), value.to_vec()));
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(seen, entries);
    }

    #[test]
    fn out_of_order_and_oversized_entries_are_refused() {
        let mut builder = ChunkBuilder::new(|_, _: &[u8]| Ok(()));
        builder.push(b"b", b"1").unwrap();
        assert!(builder.push(b"b", b"1").is_err());
        assert!(builder.push(b"a", b"1").is_err());
        assert!(builder
            .push(b"c", &vec![0; SNAPSHOT_CHUNK_BYTES_MAX])
            .is_err());
        assert!(builder.push(&[7; 65], b"1").is_err());
    }

    #[test]
    fn garbage_chunks_are_refused_without_panic() {
        let (chunks, _) = chunks_of(&[
            (b"a1".to_vec(), b"x".to_vec()),
            (b"a2".to_vec(), b"yz".to_vec()),
        ]);
        let chunk = &chunks[0];
        let mut ok = |_: &[u8], _: &[u8]| Ok(());
        assert!(decode_chunk(chunk, &mut ok).is_ok());
        for cut in 0..chunk.len() {
            assert!(
                decode_chunk(&chunk[..cut], &mut ok).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = chunk.clone();
        longer.push(0);
        assert!(decode_chunk(&longer, &mut ok).is_err());
        // The same entry twice.
        let mut twice = chunk.clone();
        twice[3] = 3;
        twice.extend_from_slice(&chunk[chunk.len() - 8..]);
        assert!(decode_chunk(&twice, &mut ok).is_err());
        for seed in 0u8..=255 {
            let garbage: Vec<u8> = (0..64u8)
                .map(|i| i.wrapping_mul(seed).wrapping_add(seed))
                .collect();
            let _ = decode_chunk(&garbage, &mut ok);
        }
    }
}
