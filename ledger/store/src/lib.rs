//! `cairn-store`: the [`Store`] trait, its RocksDB implementation
//! ([`RocksStore`]), an in-memory implementation for the simulator
//! ([`MemoryStore`] on a [`MemoryDisk`]), the consensus WAL and the
//! indexes.
//!
//! Both implementations run the same store logic over a small ordered
//! key-value contract, so they share every encoding ([`mod@format`]), every
//! check and every error, and pass the same contract tests.
//!
//! - A block commits in one atomic write, synced: block, certificate, the
//!   hash and transaction indexes, the changed accounts and the latest
//!   height ([`Store::commit_block`]). Opening after a crash at any point
//!   yields the last fully committed block.
//! - Each committed transaction is indexed under the accounts it touches
//!   (sender, transfer recipient) in the same commit, for an account's
//!   history newest first ([`Store::account_history`]).
//! - Accounts are stored as the state tree's leaves (address to slot,
//!   balance, nonce); the tree is rebuilt in memory on open
//!   ([`Store::load_state`]).
//! - The consensus WAL stores opaque entries (the consensus crate encodes
//!   them) per height, in append order, synced.
//! - A store remembers its chain id, genesis hash and format version and
//!   refuses to open for another ([`StoreError::ChainMismatch`],
//!   [`StoreError::GenesisMismatch`], [`StoreError::UnsupportedFormat`]).
//! - A value that does not decode is reported as [`StoreError::Corrupt`],
//!   never a panic.
//! - Every method takes `&self`; commits are serialised inside, so a node
//!   can share one store (`Arc<dyn Store>`) between consensus and RPC.
//!
//! # Performance
//!
//! `benches/commit.rs` runs what follows a decision, on one thread
//! (RocksDB's background flushes aside): execute
//! a block of 5,000 pre-verified transfers between random accounts,
//! compute the state root, commit block, certificate, indexes and accounts
//! in one synced `WriteBatch`, apply the outcome in memory. Measured on the
//! 2-core development machine (`cargo bench -p cairn-store --profile dev
//! --bench commit`, machine otherwise idle):
//!
//! | accounts | transfers/s | execute + root | commit | apply |
//! |---|---|---|---|---|
//! | 100,000 | 233,000 | 1.82 us | 2.34 us | 0.14 us |
//! | 1,000,000 | 172,000 | 3.25 us | 2.22 us | 0.33 us |
//!
//! (per transfer; runs vary by about 8%). Opening costs
//! [`Store::load_state`]: 0.18 s at 100,000 accounts, 1.5 s at a million.
//! The commit is one fsync (about 4 ms here) plus ~15,000
//! small keys inserted into memtables. Two choices matter: keys enter the
//! batch sorted per column (RocksDB inserts a batch in order, and sorted
//! keys reuse the skip list's search path: 30% off the commit), and the
//! small-key columns have 8 MiB memtables (inserting into a smaller skip
//! list misses the cache less: another 25%). Each transaction is encoded
//! once, and its hash and index location come from those same bytes.
//! Block sync commits a run of blocks with
//! [`Store::commit_block_unsynced`] and one sync after the last (one fsync
//! a run instead of one a block; see BENCHMARKS.md, "Catch-up").

mod backend;
pub mod contract;
mod engine;
pub mod error;
pub mod format;
pub mod memory;
pub mod rocks;
pub mod snapshot;

pub use contract::{
    ChainIdentity, DamageRepair, DamagedAccounts, DamagedHeights, HistoryEntry, ScrubPosition,
    ScrubStep, Store, TransactionRecord, EVIDENCE_LIST_MAX, HISTORY_PAGE_MAX, PRUNE_BATCH_KEYS_MAX,
    PRUNE_KEEP_BLOCKS_MIN, WAL_ENTRIES_PER_HEIGHT_MAX, WAL_ENTRY_BYTES_MAX, WAL_HEIGHT_BYTES_MAX,
};
pub use error::StoreError;
pub use format::{Column, FORMAT_VERSION};
pub use memory::{DiskFault, InterruptedWrite, MemoryDisk, MemoryStore};
pub use rocks::{
    RocksStore, BLOCKS_MEMTABLE_BYTES_MAX, BLOCK_CACHE_BYTES, MEMTABLE_BYTES_MAX, OPEN_FILES_MAX,
    WRITE_BUFFER_BUDGET_BYTES,
};
pub use snapshot::{
    create_snapshot, SnapshotManifest, SNAPSHOT_CHUNKS_MAX, SNAPSHOT_CHUNK_BYTES_MAX,
    SNAPSHOT_FORMAT_VERSION, SNAPSHOT_MANIFEST_BYTES_MAX,
};
