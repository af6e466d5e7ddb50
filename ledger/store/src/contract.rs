//! The [`Store`] contract the node and the simulator code against, and the
//! values it speaks in.
//!
//! # Durability
//!
//! [`Store::commit_block`], [`Store::add_evidence`] and
//! [`Store::prune_evidence_below`] are synced to stable storage before
//! they return. [`Store::wal_append`] and [`Store::wal_prune_below`] are
//! not: they are visible at once, and durable after [`Store::wal_sync`] or
//! any later synced write (the consensus host syncs before a message leaves
//! and at the end of each step, so the entries of one step cost one sync).
//! Every write is atomic: after a crash at any moment, reopening yields the
//! state after the last synced write, plus some prefix of the unsynced ones
//! after it, never part of one write. The in-memory store models both a
//! crash that interrupts a write and the loss of unsynced writes
//! ([`crate::MemoryDisk`]).

use cairn_state::{Account, ExecutionOutcome, LedgerState};
use cairn_types::{
    Address, Block, ChainId, CommitCertificate, Evidence, Hash, Header, Height, SignedTransaction,
    ValidatorSet,
};

use crate::StoreError;

/// Largest consensus WAL entry: a proposal with its whole block fits.
pub const WAL_ENTRY_BYTES_MAX: usize = cairn_types::limits::BLOCK_BYTES_MAX + 64 * 1024;
/// Most WAL entries kept for one height.
pub const WAL_ENTRIES_PER_HEIGHT_MAX: u64 = 65_536;
/// Most WAL bytes kept for one height (bounds what a replay reads).
pub const WAL_HEIGHT_BYTES_MAX: u64 = 256 * 1024 * 1024;
/// Most evidence items [`Store::evidence`] returns.
pub const EVIDENCE_LIST_MAX: usize = 4_096;

/// Fewest blocks a pruned store keeps below and at its tip: the evidence
/// window ([`cairn_types::limits::EVIDENCE_AGE_MAX_BLOCKS`], whose heights'
/// headers name the validator sets that evidence is checked against, and
/// whose blocks a restarted node reads for the evidence they recorded),
/// plus a margin for readers that started at an older tip.
/// [`Store::prune_blocks_below`] never prunes into it.
pub const PRUNE_KEEP_BLOCKS_MIN: u64 = cairn_types::limits::EVIDENCE_AGE_MAX_BLOCKS + 28;
/// Most keys one [`Store::prune_blocks_below`] call deletes (in one
/// unsynced batch, at least one height's): bounds how long a prune holds
/// RocksDB's write queue, and so what it adds to a commit's latency.
pub const PRUNE_BATCH_KEYS_MAX: usize = 16_384;

/// Where a scrub ([`Store::scrub`]) stands: a column (position in
/// [`crate::Column::ALL`]) and the key to go on from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrubPosition {
    /// Position of the column in [`crate::Column::ALL`].
    pub column: usize,
    /// The first key not yet read in it.
    pub key: Vec<u8>,
}

/// What one [`Store::scrub`] call read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrubStep {
    /// Where to go on (`None`: the pass read every column to its end).
    pub next: Option<ScrubPosition>,
    /// Bytes of keys and values read and verified.
    pub bytes: usize,
}

/// What a store belongs to: it refuses to open for another chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainIdentity {
    /// The chain id.
    pub chain_id: ChainId,
    /// The genesis hash (the parent hash of block 1).
    pub genesis_hash: Hash,
}

/// A committed transaction and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionRecord {
    /// Height of its block.
    pub height: Height,
    /// Position in the block.
    pub index: u32,
    /// The transaction.
    pub transaction: SignedTransaction,
}

/// Most entries one [`Store::account_history`] call returns (a page).
pub const HISTORY_PAGE_MAX: usize = 100;

/// A committed transaction touching an account (its sender, or the
/// recipient of a transfer), from the history index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Height of its block.
    pub height: Height,
    /// Position in the block.
    pub index: u32,
    /// Its hash.
    pub hash: Hash,
    /// The transaction.
    pub transaction: SignedTransaction,
}

/// The persistent store of a node: blocks, certificates, indexes, accounts,
/// evidence and the consensus WAL. Implemented by [`crate::RocksStore`]
/// and [`crate::MemoryStore`], which pass the same contract tests.
///
/// Opening (`RocksStore::open`, `MemoryStore::open`) creates the store
/// from the genesis state, or checks that an existing one belongs to the
/// same chain, genesis and format.
pub trait Store: Send + Sync {
    /// The chain this store belongs to.
    fn identity(&self) -> &ChainIdentity;

    /// The latest committed height (0 before the first block).
    fn latest_height(&self) -> Height;

    /// The hash of the latest committed block (the genesis hash at 0).
    fn latest_block_hash(&self) -> Hash;

    /// The state root after the latest committed block.
    fn state_root(&self) -> Hash;

    /// Commits the next block with the certificate that decided it and its
    /// execution outcome (computed on the store's latest state): block,
    /// certificate, hash and transaction indexes, changed accounts and the
    /// latest height, in one atomic synced write that also deletes the
    /// consensus WAL of this height and below (and makes every earlier WAL
    /// append durable). Refuses a block that is
    /// not the next one, a certificate for another block, or an outcome
    /// computed on another state or disagreeing with the header's root.
    ///
    /// Commit first, then [`LedgerState::apply`] the same outcome to the
    /// node's in-memory state: if the commit fails, the state is still
    /// the store's.
    fn commit_block(
        &self,
        block: &Block,
        certificate: &CommitCertificate,
        outcome: &ExecutionOutcome,
    ) -> Result<(), StoreError>;

    /// [`Store::commit_block`] without the sync: the commit is visible at
    /// once, and durable with the next synced write or [`Store::wal_sync`].
    /// For a run of blocks committed together (block sync): commit each
    /// unsynced, then sync once. A crash before that sync loses a suffix of
    /// the run (RocksDB's log is one file, replayed in order), never a
    /// block in the middle: the store reopens at an earlier tip. Only for
    /// blocks other nodes hold, which are fetched again after such a crash.
    fn commit_block_unsynced(
        &self,
        block: &Block,
        certificate: &CommitCertificate,
        outcome: &ExecutionOutcome,
    ) -> Result<(), StoreError>;

    /// The block at `height`.
    fn block(&self, height: Height) -> Result<Option<Block>, StoreError>;

    /// The canonical bytes of the block at `height`, as stored (to serve
    /// block sync without re-encoding).
    fn block_bytes(&self, height: Height) -> Result<Option<Vec<u8>>, StoreError>;

    /// The header of the block at `height` (decodes only the header).
    fn header(&self, height: Height) -> Result<Option<Header>, StoreError>;

    /// The height of the block with hash `hash`.
    fn block_height(&self, hash: &Hash) -> Result<Option<Height>, StoreError>;

    /// The block with hash `hash`.
    fn block_by_hash(&self, hash: &Hash) -> Result<Option<Block>, StoreError>;

    /// The certificate that decided the block at `height`.
    fn certificate(&self, height: Height) -> Result<Option<CommitCertificate>, StoreError>;

    /// A committed transaction by hash, with its height and index.
    fn transaction(&self, hash: &Hash) -> Result<Option<TransactionRecord>, StoreError>;

    /// The committed transactions touching `address` (as sender, or as
    /// recipient of a transfer), newest first: those before position
    /// `before` (height, index; `None`: from the latest block), at most
    /// `limit` (clamped to `1..=`[`HISTORY_PAGE_MAX`]). The index is
    /// written with each block in its commit; pruning deletes it with the
    /// blocks, so a `before` below [`Store::history_lowest_height`] is
    /// [`StoreError::Pruned`] and a page ends there. A
    /// store restored from a snapshot has no history below its
    /// [`Store::snapshot_base`] (which is also its lowest height).
    fn account_history(
        &self,
        address: &Address,
        before: Option<(Height, u32)>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError>;

    /// The lowest height whose transactions [`Store::account_history`]
    /// lists: [`Store::lowest_height`], or the first height committed after
    /// the upgrade for a store written before the history index existed.
    fn history_lowest_height(&self) -> Height;

    /// Switches the history index on or off for the blocks committed from
    /// now on (on by default; a synced write, kept across restarts). Off,
    /// commits write no history entries (they cost about a third of a
    /// commit) and [`Store::history_lowest_height`] is `u64::MAX`; on again,
    /// the history starts at the next height (what was missed is not
    /// filled in).
    fn set_history_index(&self, enabled: bool) -> Result<(), StoreError>;

    /// An account after the latest committed block.
    fn account(&self, address: &Address) -> Result<Option<Account>, StoreError>;

    /// The full state after the latest committed block, rebuilt from the
    /// stored accounts (O(accounts)) and checked against the latest state
    /// root. Called once at start-up.
    fn load_state(&self) -> Result<LedgerState, StoreError>;

    /// The validator set with `hash`, if a committed header (or the
    /// staking state) named it.
    fn validator_set(
        &self,
        hash: &cairn_types::Hash,
    ) -> Result<Option<cairn_types::ValidatorSet>, StoreError>;

    /// Appends an opaque consensus WAL entry for `height`. It is visible
    /// to [`Store::wal_entries`] at once but durable only after
    /// [`Store::wal_sync`] (or any later synced write): append every entry
    /// of a step, then sync once before anything leaves the node. At most [`WAL_ENTRY_BYTES_MAX`] bytes, at most
    /// [`WAL_ENTRIES_PER_HEIGHT_MAX`] entries and
    /// [`WAL_HEIGHT_BYTES_MAX`] bytes per height.
    fn wal_append(&self, height: Height, entry: &[u8]) -> Result<(), StoreError>;

    /// Makes every WAL entry appended so far durable (one fsync), and with
    /// them every earlier unsynced write ([`Store::commit_block_unsynced`]).
    fn wal_sync(&self) -> Result<(), StoreError>;

    /// The WAL entries of `height`, in append order.
    fn wal_entries(&self, height: Height) -> Result<Vec<Vec<u8>>, StoreError>;

    /// Deletes the WAL entries of every height below `height`, without a
    /// sync of its own: a crash may bring old entries back, which the next
    /// prune removes (they are never read: a node resumes only its next
    /// height).
    fn wal_prune_below(&self, height: Height) -> Result<(), StoreError>;

    /// Keeps `evidence` (unsynced: durable with the next synced write or
    /// [`Store::wal_sync`]; evidence is gossiped again if lost); `false` if
    /// it was already kept.
    fn add_evidence(&self, evidence: &Evidence) -> Result<bool, StoreError>;

    /// Kept evidence, by height then hash, at most [`EVIDENCE_LIST_MAX`].
    fn evidence(&self) -> Result<Vec<Evidence>, StoreError>;

    /// Deletes kept evidence of heights below `height` (unsynced).
    fn prune_evidence_below(&self, height: Height) -> Result<(), StoreError>;

    /// The height a snapshot restore started this store at: it holds no
    /// block below it. [`Height::GENESIS`] for a store that began at
    /// genesis.
    fn snapshot_base(&self) -> Height;

    /// Streams the snapshot entries (`SNAPSHOTS.md`) of the state at
    /// `height` in key order from one consistent view of the store, and
    /// returns that height's state root. `height` must be the latest
    /// height when the view is taken ([`StoreError::SnapshotHeightGone`]
    /// otherwise); commits made while it streams are not seen. Use
    /// [`crate::snapshot::create_snapshot`] to cut them into chunks.
    fn snapshot_entries(
        &self,
        height: Height,
        visit: &mut crate::snapshot::EntryVisitor<'_>,
    ) -> Result<Hash, StoreError>;

    /// The height of a snapshot restore under way (begun, not finished:
    /// the store holds no valid state until it is finished or begun again).
    fn restore_in_progress(&self) -> Result<Option<Height>, StoreError>;

    /// Begins (or begins again) restoring the snapshot of `height` into a
    /// store that holds no block: marks the restore under way and clears
    /// the accounts and staking state, in one synced write. Refused when
    /// the store holds blocks.
    fn restore_begin(&self, height: Height) -> Result<(), StoreError>;

    /// Writes the entries of one verified chunk (synced). Chunks must come
    /// in order: entries must follow the previous chunk's in key order.
    fn restore_chunk(&self, chunk: &[u8]) -> Result<(), StoreError>;

    /// Finishes the restore of `block`'s height: recomputes the state root
    /// of what was written and refuses it
    /// ([`StoreError::SnapshotRootMismatch`]) unless it equals the
    /// block's; then, in one synced write, keeps the staking state, the
    /// block, its certificate and `validator_set` (the set that signed it,
    /// which the header names), makes the block the latest and the
    /// snapshot base, and clears the under-way mark. The caller has
    /// verified the block and certificate (they are trusted). Returns the
    /// restored state (built to check the root), so the caller need not
    /// read it back from the store.
    fn restore_finish(
        &self,
        block: &Block,
        certificate: &CommitCertificate,
        validator_set: &ValidatorSet,
    ) -> Result<LedgerState, StoreError>;

    /// Keeps blocks below a restored snapshot's height, with their
    /// certificates and the validator sets their headers name: evidence
    /// in a later block may be of any height of the evidence window, and
    /// judging it needs the header (and so the set) of that height.
    /// `blocks` are consecutive, ascending, and end just below the lowest
    /// height held (the snapshot base at first, so a caller adds ranges
    /// from the top down); the last one's hash must be the parent hash of
    /// the lowest block held, and each one's the parent hash of the next
    /// (so they are trusted through the restored block). The lowest height
    /// held becomes the first one's. Nothing is written unless all of it
    /// checks out; blocks already held are not written again.
    fn restore_history(
        &self,
        blocks: &[(Block, CommitCertificate)],
        validator_sets: &[ValidatorSet],
    ) -> Result<(), StoreError>;

    /// The lowest height whose block, certificate and index entries the
    /// store holds: 1 when nothing was pruned. Kept in the store, so it
    /// survives a restart. [`Store::block`], [`Store::block_bytes`],
    /// [`Store::header`] and [`Store::certificate`] of a height in
    /// `1..lowest` answer [`StoreError::Pruned`]; the transaction and
    /// block-hash indexes of those heights are gone (lookups answer
    /// `None`).
    fn lowest_height(&self) -> Height;

    /// Prunes, oldest first, the blocks of heights below `below`: each
    /// one's block, certificate, block-hash and transaction index entries
    /// leave the store in one unsynced batch of at most
    /// [`PRUNE_BATCH_KEYS_MAX`] keys (at least one height) with the new
    /// lowest height; call again until it reaches `below`. Point deletes
    /// only (no range tombstone, which would slow every later read of the
    /// column). Never prunes any of the [`PRUNE_KEEP_BLOCKS_MIN`] latest
    /// heights: `below` is lowered to fit. A crash may bring back pruned
    /// heights with the lowest height before them (consistent; the next
    /// call prunes them again). Returns the lowest height held after it.
    fn prune_blocks_below(&self, below: Height) -> Result<Height, StoreError>;

    /// Compacts the storage of what was pruned, so its disk space is given
    /// back now rather than when the storage engine gets to it (RocksDB:
    /// a compaction of the height-keyed columns below the lowest height;
    /// nothing for the in-memory store). Slow-ish (it rewrites files in
    /// the background threads' stead): call it from a background task,
    /// every few thousand pruned heights.
    fn compact_pruned(&self) -> Result<(), StoreError>;

    /// Reads about `bytes_max` bytes of the stored data from `from` on,
    /// verifying every read against the checksums stored with it (the
    /// background scrub: a pass starts at `ScrubPosition::default()` and
    /// goes on from each step's `next`). A damaged table file is
    /// [`StoreError::ChecksumMismatch`], naming the column and the last
    /// key read intact; data held in memory (memtables, the block cache)
    /// is not re-read from disk.
    fn scrub(&self, from: &ScrubPosition, bytes_max: usize) -> Result<ScrubStep, StoreError>;

    /// Compacts every column wholly (RocksDB: each column's table files
    /// are rewritten into its last level, without deleted entries and
    /// tombstones): `cairnd compact` on a stopped node. Slow on a large
    /// store; nothing for the in-memory store.
    fn compact_all(&self) -> Result<(), StoreError>;

    /// What can be done about `damage` (a [`StoreError::ChecksumMismatch`]
    /// from [`Store::scrub`]), for a damaged table file at level 1 or up:
    /// one of the blocks or certificates holds only what peers hold too,
    /// so its heights can be fetched again ([`DamageRepair::Refetch`]);
    /// one of the accounts holds only the committed state, which a running
    /// node holds in memory ([`DamageRepair::RewriteAccounts`]). Anything
    /// else (the WAL, an index, evidence, metadata, a level-0 file, whose
    /// key range overlaps others) is [`DamageRepair::NotRepairable`].
    fn damage_repair(&self, damage: &StoreError) -> Result<DamageRepair, StoreError>;

    /// Repairs a damaged table file of the blocks or certificates with
    /// `records`, the blocks and certificates of the damaged heights still
    /// held (ascending, [`DamagedHeights::held`] at the time of the call:
    /// heights pruned meanwhile are left out), fetched from peers. Each
    /// block must be the one the chain names (the block above it, or the
    /// tip, names its hash as parent) and its certificate must decide it
    /// and verify against the set its header names; nothing is written
    /// otherwise ([`StoreError::Repair`]). Then, in one synced write, the
    /// blocks and certificates of those heights are written again, and the
    /// damaged file is dropped (RocksDB: `DeleteFilesInRange` over its key
    /// range, which only drops files wholly inside the range, every key of
    /// which was just written again). A crash in between leaves the
    /// damaged file in place, and the next scrub finds it again.
    fn repair_heights(
        &self,
        damaged: &DamagedHeights,
        records: &[(Block, CommitCertificate)],
    ) -> Result<(), StoreError>;

    /// Repairs a damaged table file of the accounts from `state`, which
    /// must be the committed state of the latest height (its root the
    /// latest block's state root; [`StoreError::Repair`] otherwise, and
    /// nothing is written): the accounts of the file's address range are
    /// written again, in one synced write, with no commit in between, and
    /// the damaged file is dropped as in [`Store::repair_heights`].
    fn repair_accounts(
        &self,
        damaged: &DamagedAccounts,
        state: &LedgerState,
    ) -> Result<(), StoreError>;
}

/// What [`Store::damage_repair`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DamageRepair {
    /// Fetch the blocks and certificates of these heights from peers and
    /// hand them to [`Store::repair_heights`].
    Refetch(DamagedHeights),
    /// Write the accounts of this range again from the committed state
    /// with [`Store::repair_accounts`].
    RewriteAccounts(DamagedAccounts),
    /// Not repairable by this node; why.
    NotRepairable(String),
}

/// A damaged table file of the accounts, by address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedAccounts {
    /// The damaged file's name (no directory).
    pub file: String,
    /// The file's lowest and highest address.
    pub addresses: (Address, Address),
}

/// A damaged table file of the blocks or certificates, by height.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedHeights {
    /// The damaged column (`blocks` or `certificates`).
    pub column: &'static str,
    /// The damaged file's name (no directory).
    pub file: String,
    /// The file's lowest and highest height.
    pub file_heights: (Height, Height),
}

impl DamagedHeights {
    /// The heights of the file a store with `lowest ..= tip` holds
    /// (`None`: every one was pruned).
    pub fn held(&self, lowest: Height, tip: Height) -> Option<(Height, Height)> {
        let first = self.file_heights.0.max(lowest);
        let last = self.file_heights.1.min(tip);
        (first <= last).then_some((first, last))
    }
}
