//! The one error type of `cairn-store`.

use std::path::PathBuf;

use cairn_state::StateError;
use cairn_types::{Hash, Height};
use thiserror::Error;

/// Everything that can go wrong opening, reading or writing a store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database could not be opened.
    #[error("cannot open the store at {path}: {reason} (if the store is locked, another process, such as a running cairnd, has it open)")]
    Open {
        /// The store's directory.
        path: PathBuf,
        /// What RocksDB said.
        reason: String,
    },
    /// The database is damaged: RocksDB found a corrupt record or file
    /// while opening it. Nothing was changed.
    #[error("the store at {path} is damaged and was not opened (nothing was changed): {reason}")]
    Damaged {
        /// The store's directory.
        path: PathBuf,
        /// What RocksDB found.
        reason: String,
    },
    /// A read or write failed in the storage engine.
    #[error("storage engine failed to {operation}: {reason}")]
    Backend {
        /// What was being done.
        operation: &'static str,
        /// What the engine said.
        reason: String,
    },
    /// The store belongs to another chain.
    #[error("the store holds chain {stored:?} but the node runs chain {expected:?}; use another --home or `cairnd reset` to start over")]
    ChainMismatch {
        /// The chain id written in the store.
        stored: String,
        /// The chain id of the genesis being opened.
        expected: String,
    },
    /// The store was made from another genesis of the same chain id.
    #[error("the store was made from genesis {stored} but the node's genesis is {expected}; use the genesis.json the store was made with, or `cairnd reset`")]
    GenesisMismatch {
        /// The genesis hash written in the store.
        stored: Hash,
        /// The hash of the genesis being opened.
        expected: Hash,
    },
    /// The store was written in a format this build does not read.
    #[error("the store is in format version {found} but this build reads version {supported}; run the Cairn release that wrote it, or `cairnd reset`")]
    UnsupportedFormat {
        /// The format version written in the store.
        found: u32,
        /// [`crate::FORMAT_VERSION`].
        supported: u32,
    },
    /// A stored value does not decode or contradicts another.
    #[error("the store is corrupt: {what}: {reason}; restore it from a backup or `cairnd reset` and sync again")]
    Corrupt {
        /// Which record.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A block committed out of order.
    #[error("cannot commit block {got}: the next height is {expected}")]
    NotNextHeight {
        /// The height after the latest committed block.
        expected: Height,
        /// The height of the block offered.
        got: Height,
    },
    /// A block whose parent is not the latest committed block.
    #[error("block {height} names parent {got} but the latest committed block is {expected}")]
    ParentMismatch {
        /// The block's height.
        height: Height,
        /// The hash of the latest committed block (or the genesis hash).
        expected: Hash,
        /// The parent hash in the block's header.
        got: Hash,
    },
    /// A certificate that is not for the block being committed.
    #[error("the certificate offered with block {height} is not for it: {reason}")]
    CertificateMismatch {
        /// The block's height.
        height: Height,
        /// What does not match.
        reason: String,
    },
    /// An execution outcome that does not belong to the block or the store.
    #[error("the execution outcome offered with block {height} does not match: {reason}; execute the block on the store's latest state")]
    OutcomeMismatch {
        /// The block's height.
        height: Height,
        /// What does not match.
        reason: String,
    },
    /// A consensus WAL entry over the size limit.
    #[error("WAL entry is {len} bytes, the limit is {max}")]
    WalEntryTooLarge {
        /// The entry's length.
        len: usize,
        /// [`crate::WAL_ENTRY_BYTES_MAX`].
        max: usize,
    },
    /// Too many WAL entries at one height.
    #[error("the WAL holds {max} entries at height {height}, the limit")]
    WalFull {
        /// The height.
        height: Height,
        /// [`crate::WAL_ENTRIES_PER_HEIGHT_MAX`].
        max: u64,
    },
    /// The height asked for was pruned from this store: it holds the
    /// heights from `lowest` up only.
    #[error("height {height} was pruned from this node's store, which holds heights {lowest} and up; ask a node that keeps all blocks (an archive node, pruning.keep_blocks = 0)")]
    Pruned {
        /// The height asked for.
        height: Height,
        /// The lowest height the store holds.
        lowest: Height,
    },
    /// A checksum did not match while the store's data was read back
    /// (found by the background scrub, [`crate::Store::scrub`]): a table
    /// file of the running store is damaged.
    #[error("a checksum of the stored {column} does not match (the data after key {after_key} is damaged): {reason}")]
    ChecksumMismatch {
        /// The column family.
        column: &'static str,
        /// The last key read intact before it, hex (empty: from the start).
        after_key: String,
        /// What the storage engine said.
        reason: String,
    },
    /// The in-memory store crashed (simulated); open it again.
    #[error("the store crashed (simulated); open it again")]
    Crashed,
    /// The stored accounts do not form a valid state.
    #[error("the stored accounts are invalid: {0}")]
    State(#[from] StateError),
    /// A snapshot manifest or chunk is malformed or contradicts another
    /// (see `SNAPSHOTS.md`); fetch it from another peer.
    #[error("invalid snapshot: {reason}")]
    InvalidSnapshot {
        /// What is wrong.
        reason: String,
    },
    /// The state a restore wrote does not hash to the trusted state root:
    /// the snapshot is not the state of that height.
    #[error("the restored state of height {height} has state root {computed} but the trusted header says {header}; the snapshot is wrong: restore from other peers")]
    SnapshotRootMismatch {
        /// The snapshot's height.
        height: Height,
        /// The state root in the trusted header.
        header: Hash,
        /// The root of what was restored.
        computed: Hash,
    },
    /// A snapshot of a height the store has moved past (snapshots read the
    /// state of the latest height only).
    #[error("cannot take a snapshot of height {wanted}: the store is at height {latest}")]
    SnapshotHeightGone {
        /// The height asked for.
        wanted: Height,
        /// The store's latest height.
        latest: Height,
    },
    /// A restore step the store refuses in its current state.
    #[error("cannot restore a snapshot: {reason}")]
    Restore {
        /// Why, and what to do.
        reason: String,
    },
    /// Records offered to repair a damaged table file are not the chain's
    /// (see [`crate::Store::repair_heights`]); nothing was written.
    #[error("cannot repair the damaged {column} with these records: {reason}")]
    Repair {
        /// The damaged column.
        column: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl StoreError {
    /// A [`StoreError::Corrupt`] for `what`.
    pub(crate) fn corrupt(what: impl Into<String>, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
