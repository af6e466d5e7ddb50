//! The in-memory store for the deterministic simulator: the same logic
//! and the same contract as [`crate::RocksStore`], over ordered maps.
//!
//! # Crashes
//!
//! A [`MemoryDisk`] plays the disk and outlives the [`MemoryStore`]s opened
//! on it, as a directory outlives a process. Every write of the
//! [`crate::Store`] contract but `wal_append` and `wal_prune_below` is
//! synced before it returns, so a crash *between* calls loses nothing of
//! those; a crash loses the write it interrupts, which never returned, and
//! the WAL writes since the last `wal_sync` or synced write. The simulator
//! models both:
//!
//! - [`MemoryDisk::crash`]: the process dies now, and every write made
//!   without a sync since the last sync is lost (RocksDB may keep a prefix
//!   of them; losing all is the harder case). Stores opened before it
//!   answer every call with [`StoreError::Crashed`]; open the disk again to
//!   restart.
//! - [`MemoryDisk::crash_during_write`]: the process dies during the
//!   write that follows `writes_before` more successful ones (a commit, a
//!   WAL append, a prune or an evidence write). That write is staged but
//!   not synced; with
//!   [`InterruptedWrite::Lost`] it is discarded, with
//!   [`InterruptedWrite::Persisted`] it reached the disk before the crash
//!   (its call still fails, as the caller never saw it return). Either way
//!   a write is all or nothing, like a RocksDB `WriteBatch`.
//!
//! # Disk faults
//!
//! - [`MemoryDisk::set_fault`]: every sync fails with EIO
//!   ([`DiskFault::SyncFails`]: synced writes are refused, unsynced ones
//!   stay undurable), or the disk is full ([`DiskFault::Full`]: every write
//!   is refused), until the fault is cleared.
//! - [`MemoryDisk::rot`]: one stored record rots; reads of it fail with
//!   [`StoreError::Corrupt`], as RocksDB's block checksums make them fail,
//!   until the record is written again.

use std::{
    collections::BTreeMap,
    ops::Bound,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use cairn_state::LedgerState;

use crate::{
    backend::{Backend, Batch, DamagedFile, View, Visitor},
    engine::{delegate_store, Engine},
    format::Column,
    ChainIdentity, StoreError,
};

/// What becomes of the write a scheduled crash interrupts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptedWrite {
    /// It was not synced: the disk does not have it.
    Lost,
    /// It was synced just before the crash: the disk has all of it.
    Persisted,
}

/// A scheduled crash.
#[derive(Clone, Copy, Debug)]
struct ScheduledCrash {
    writes_before: u64,
    fate: InterruptedWrite,
}

/// A fault of the disk itself (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskFault {
    /// Every sync fails (EIO): synced writes are refused, and unsynced
    /// ones stay undurable.
    SyncFails,
    /// The disk is full: every write is refused.
    Full,
}

/// Records whose reads fail their checksum: (column index, key).
type Rotten = std::collections::BTreeSet<(usize, Vec<u8>)>;

/// One key-value map per column.
type Columns = [BTreeMap<Vec<u8>, Vec<u8>>; Column::ALL.len()];

/// The contents of a simulated disk.
#[derive(Debug, Default)]
struct DiskState {
    columns: Columns,
    /// Bumped by every crash; stores opened in an older generation are dead.
    generation: u64,
    /// A staged write not synced yet (only ever seen by a crash).
    unsynced: Option<MemoryBatch>,
    /// Unsynced writes applied since the last sync, oldest first: a crash
    /// takes them back.
    not_durable: Vec<Undo>,
    scheduled: Option<ScheduledCrash>,
    writes: u64,
    /// Syncs done (synced writes and explicit syncs that succeeded).
    syncs: u64,
    fault: Option<DiskFault>,
    /// Records whose reads fail their checksum.
    rotten: Rotten,
}

impl DiskState {
    /// Loses the writes not synced and kills every open store.
    fn crash_now(&mut self) {
        let lost = std::mem::take(&mut self.not_durable);
        for undo in lost.into_iter().rev() {
            undo.revert(&mut self.columns);
        }
        self.generation += 1;
    }
}

/// A simulated disk holding one store. Cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct MemoryDisk {
    state: Arc<Mutex<DiskState>>,
}

impl MemoryDisk {
    /// An empty disk.
    pub fn new() -> MemoryDisk {
        MemoryDisk::default()
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The process using this disk dies now: unsynced writes are dropped
    /// and every store opened so far stops working.
    pub fn crash(&self) {
        let mut state = self.lock();
        state.unsynced = None;
        state.scheduled = None;
        state.crash_now();
    }

    /// Bumped by every crash: a store opened before the generation changed
    /// is dead.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Writes applied without a sync since the last one (a crash now
    /// would lose them).
    pub fn unsynced_writes(&self) -> usize {
        self.lock().not_durable.len()
    }

    /// The process will die during the write that follows `writes_before`
    /// more successful writes (0: the next write), which meets `fate`.
    pub fn crash_during_write(&self, writes_before: u64, fate: InterruptedWrite) {
        self.lock().scheduled = Some(ScheduledCrash {
            writes_before,
            fate,
        });
    }

    /// Overwrites one stored value with `value`, as bit rot would (to test
    /// that corruption is reported, not panicked on). Takes effect for
    /// stores opened afterwards and for reads of open ones.
    pub fn corrupt(&self, column: Column, key: &[u8], value: &[u8]) {
        self.lock().columns[column.index()].insert(key.to_vec(), value.to_vec());
    }

    /// Makes syncs or all writes fail from now on (`None` clears it).
    pub fn set_fault(&self, fault: Option<DiskFault>) {
        self.lock().fault = fault;
    }

    /// The fault in force, if any.
    pub fn fault(&self) -> Option<DiskFault> {
        self.lock().fault
    }

    /// The record `key` of `column` rots: reading it fails its checksum
    /// until it is written again. Returns whether the record exists.
    pub fn rot(&self, column: Column, key: &[u8]) -> bool {
        let mut state = self.lock();
        let exists = state.columns[column.index()].contains_key(key);
        if exists {
            state.rotten.insert((column.index(), key.to_vec()));
        }
        exists
    }

    /// Whether a record has rotted and not been written since.
    pub fn has_rot(&self) -> bool {
        !self.lock().rotten.is_empty()
    }

    /// The keys of `column`, in order (to pick a record to rot).
    pub fn keys(&self, column: Column) -> Vec<Vec<u8>> {
        self.lock().columns[column.index()]
            .keys()
            .cloned()
            .collect()
    }

    /// Number of writes so far, synced or not (to pick crash points).
    pub fn writes(&self) -> u64 {
        self.lock().writes
    }

    /// Number of syncs so far: synced writes and explicit syncs that
    /// succeeded (the simulator charges simulated time for each while the
    /// disk is slow).
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }
}

/// The in-memory implementation of [`crate::Store`].
pub struct MemoryStore {
    engine: Engine<MemoryBackend>,
}

delegate_store!(MemoryStore);

impl MemoryStore {
    /// Opens the store on `disk` (after a crash: restarts it), exactly as
    /// [`crate::RocksStore::open`] does: creates it from `genesis` if the
    /// disk is empty, else checks chain id, genesis hash and format.
    pub fn open(
        disk: &MemoryDisk,
        identity: &ChainIdentity,
        genesis: &LedgerState,
    ) -> Result<MemoryStore, StoreError> {
        let generation = disk.lock().generation;
        let backend = MemoryBackend {
            disk: disk.clone(),
            generation,
        };
        Ok(MemoryStore {
            engine: Engine::open(backend, identity, genesis)?,
        })
    }
}

/// One staged write.
#[derive(Debug)]
enum Operation {
    Put(Column, Vec<u8>, Vec<u8>),
    Delete(Column, Vec<u8>),
    DeleteRange(Column, Vec<u8>, Vec<u8>),
}

/// A batch of staged writes.
#[derive(Debug, Default)]
pub(crate) struct MemoryBatch {
    operations: Vec<Operation>,
}

impl Batch for MemoryBatch {
    fn put(&mut self, column: Column, key: &[u8], value: &[u8]) {
        self.operations
            .push(Operation::Put(column, key.to_vec(), value.to_vec()));
    }

    fn delete(&mut self, column: Column, key: &[u8]) {
        self.operations
            .push(Operation::Delete(column, key.to_vec()));
    }

    fn delete_range(&mut self, column: Column, start: &[u8], end: &[u8]) {
        self.operations
            .push(Operation::DeleteRange(column, start.to_vec(), end.to_vec()));
    }
}

impl MemoryBatch {
    /// Applies the batch to the disk's maps; returns what undoes it.
    fn apply_to(self, columns: &mut Columns) -> Undo {
        let mut undo = Undo::default();
        for operation in self.operations {
            match operation {
                Operation::Put(column, key, value) => {
                    let old = columns[column.index()].insert(key.clone(), value);
                    undo.0.push((column, key, old));
                }
                Operation::Delete(column, key) => {
                    let old = columns[column.index()].remove(&key);
                    undo.0.push((column, key, old));
                }
                Operation::DeleteRange(column, start, end) if start < end => {
                    let map = &mut columns[column.index()];
                    let doomed: Vec<Vec<u8>> = map
                        .range::<[u8], _>((Bound::Included(&start[..]), Bound::Excluded(&end[..])))
                        .map(|(key, _)| key.clone())
                        .collect();
                    for key in doomed {
                        let old = map.remove(&key);
                        undo.0.push((column, key, old));
                    }
                }
                Operation::DeleteRange(..) => {}
            }
        }
        undo
    }
}

/// The previous values of the keys one write touched, to take an unsynced
/// write back when a crash loses it.
#[derive(Debug, Default)]
struct Undo(Vec<(Column, Vec<u8>, Option<Vec<u8>>)>);

impl Undo {
    fn revert(self, columns: &mut Columns) {
        for (column, key, old) in self.0.into_iter().rev() {
            match old {
                Some(value) => columns[column.index()].insert(key, value),
                None => columns[column.index()].remove(&key),
            };
        }
    }
}

/// A handle on a [`MemoryDisk`] opened in one generation.
pub(crate) struct MemoryBackend {
    disk: MemoryDisk,
    generation: u64,
}

impl MemoryBackend {
    /// The disk, if this handle has not been killed by a crash.
    fn live(&self) -> Result<MutexGuard<'_, DiskState>, StoreError> {
        let state = self.disk.lock();
        if state.generation != self.generation {
            return Err(StoreError::Crashed);
        }
        Ok(state)
    }
}

/// Whether a write waits for the disk.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Durability {
    Synced,
    Unsynced,
}

impl MemoryBackend {
    /// A write, as RocksDB does it: all or nothing; a synced one makes
    /// every earlier write durable; an unsynced one is visible at once but
    /// undone by a crash before the next sync.
    fn write_batch(&self, batch: MemoryBatch, durability: Durability) -> Result<(), StoreError> {
        let mut state = self.live()?;
        match (state.fault, durability) {
            (Some(DiskFault::Full), _) => return Err(disk_full()),
            (Some(DiskFault::SyncFails), Durability::Synced) => return Err(sync_failed()),
            _ => {}
        }
        // A record written again is whole again.
        for operation in &batch.operations {
            match operation {
                Operation::Put(column, key, _) | Operation::Delete(column, key) => {
                    state.rotten.remove(&(column.index(), key.clone()));
                }
                Operation::DeleteRange(column, start, end) => {
                    let index = column.index();
                    state.rotten.retain(|(rotten_column, key)| {
                        *rotten_column != index || key < start || key >= end
                    });
                }
            }
        }
        // Stage, then write, unless a crash interrupts in between.
        state.unsynced = Some(batch);
        if let Some(scheduled) = state.scheduled {
            if scheduled.writes_before == 0 {
                if scheduled.fate == InterruptedWrite::Persisted {
                    // It reached the disk, and the log before it did too.
                    if let Some(batch) = state.unsynced.take() {
                        batch.apply_to(&mut state.columns);
                    }
                    state.not_durable.clear();
                }
                state.unsynced = None;
                state.scheduled = None;
                state.crash_now();
                return Err(StoreError::Crashed);
            }
            state.scheduled = Some(ScheduledCrash {
                writes_before: scheduled.writes_before - 1,
                ..scheduled
            });
        }
        if let Some(batch) = state.unsynced.take() {
            let undo = batch.apply_to(&mut state.columns);
            match durability {
                Durability::Synced => {
                    state.not_durable.clear();
                    state.syncs += 1;
                }
                Durability::Unsynced => state.not_durable.push(undo),
            }
        }
        state.writes += 1;
        Ok(())
    }
}

impl Backend for MemoryBackend {
    type Batch<'a> = MemoryBatch;

    fn get(&self, column: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let state = self.live()?;
        if state.rotten.contains(&(column.index(), key.to_vec())) {
            return Err(rotten(column));
        }
        Ok(state.columns[column.index()].get(key).cloned())
    }

    fn batch(&self, _capacity_bytes: usize) -> MemoryBatch {
        MemoryBatch::default()
    }

    fn write(&self, batch: MemoryBatch) -> Result<(), StoreError> {
        self.write_batch(batch, Durability::Synced)
    }

    fn write_unsynced(&self, batch: MemoryBatch) -> Result<(), StoreError> {
        self.write_batch(batch, Durability::Unsynced)
    }

    fn sync(&self) -> Result<(), StoreError> {
        let mut state = self.live()?;
        if state.fault.is_some() {
            return Err(match state.fault {
                Some(DiskFault::Full) => disk_full(),
                _ => sync_failed(),
            });
        }
        state.not_durable.clear();
        state.syncs += 1;
        Ok(())
    }

    fn verify_range(
        &self,
        column: Column,
        start: &[u8],
        bytes_max: usize,
    ) -> Result<(Option<Vec<u8>>, usize), StoreError> {
        // Read, and say where to go on; a rotten record is what a checksum
        // mismatch is on disk.
        let mut bytes = 0usize;
        let mut next = None;
        let mut last: Vec<u8> = Vec::new();
        self.scan(column, start, None, &mut |key, value| {
            if bytes >= bytes_max {
                next = Some(key.to_vec());
                return Ok(false);
            }
            bytes = bytes.saturating_add(key.len() + value.len());
            last.clear();
            last.extend_from_slice(key);
            Ok(true)
        })
        .map_err(|error| match error {
            StoreError::Corrupt { reason, .. } => StoreError::ChecksumMismatch {
                column: column.name(),
                after_key: last.iter().map(|byte| format!("{byte:02x}")).collect(),
                reason: format!("Corruption: {reason} in {MEMORY_TABLE_FILE}"),
            },
            other => other,
        })?;
        Ok((next, bytes))
    }

    fn damaged_file(
        &self,
        column: Column,
        _reason: &str,
    ) -> Result<Option<DamagedFile>, StoreError> {
        // The first rotten record of the column, as a one-record file.
        let state = self.live()?;
        Ok(state
            .rotten
            .iter()
            .find(|(rotten_column, _)| *rotten_column == column.index())
            .map(|(_, key)| DamagedFile {
                name: MEMORY_TABLE_FILE.into(),
                level: 1,
                first_key: key.clone(),
                last_key: key.clone(),
            }))
    }

    fn drop_damaged_file(&self, _column: Column, _file: &DamagedFile) -> Result<(), StoreError> {
        // Writing a rotten record again healed it.
        drop(self.live()?);
        Ok(())
    }

    fn compact_below(&self, _column: Column, _end: Option<&[u8]>) -> Result<(), StoreError> {
        // Deleted entries are gone from the maps already.
        drop(self.live()?);
        Ok(())
    }

    fn scan(
        &self,
        column: Column,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut Visitor<'_>,
    ) -> Result<(), StoreError> {
        let state = self.live()?;
        scan_columns(&state.columns, &state.rotten, column, start, end, visit)
    }

    fn scan_reverse(
        &self,
        column: Column,
        start: &[u8],
        end: &[u8],
        visit: &mut Visitor<'_>,
    ) -> Result<(), StoreError> {
        let state = self.live()?;
        if end <= start {
            return Ok(());
        }
        for (key, value) in state.columns[column.index()]
            .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
            .rev()
        {
            if state.rotten.contains(&(column.index(), key.clone())) {
                return Err(rotten(column));
            }
            if !visit(key, value)? {
                break;
            }
        }
        Ok(())
    }

    fn with_view(
        &self,
        read: &mut dyn FnMut(&dyn View) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // The simulator's states are small: a copy is the view.
        let state = self.live()?;
        let view = MemoryView {
            columns: state.columns.clone(),
            rotten: state.rotten.clone(),
        };
        drop(state);
        read(&view)
    }
}

/// Visits the records of `column` from `start` to `end`; a rotten one
/// fails its checksum.
fn scan_columns(
    columns: &Columns,
    rotten: &Rotten,
    column: Column,
    start: &[u8],
    end: Option<&[u8]>,
    visit: &mut Visitor<'_>,
) -> Result<(), StoreError> {
    let upper = match end {
        Some(end) if end <= start => return Ok(()),
        Some(end) => Bound::Excluded(end),
        None => Bound::Unbounded,
    };
    for (key, value) in columns[column.index()].range::<[u8], _>((Bound::Included(start), upper)) {
        if rotten.contains(&(column.index(), key.clone())) {
            return Err(self::rotten(column));
        }
        if !visit(key, value)? {
            break;
        }
    }
    Ok(())
}

/// A copy of the columns behind the [`View`] contract.
struct MemoryView {
    columns: Columns,
    rotten: Rotten,
}

impl View for MemoryView {
    fn get(&self, column: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if self.rotten.contains(&(column.index(), key.to_vec())) {
            return Err(rotten(column));
        }
        Ok(self.columns[column.index()].get(key).cloned())
    }

    fn scan(
        &self,
        column: Column,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut Visitor<'_>,
    ) -> Result<(), StoreError> {
        scan_columns(&self.columns, &self.rotten, column, start, end, visit)
    }
}

/// What a full disk answers (as RocksDB reports ENOSPC).
fn disk_full() -> StoreError {
    StoreError::Backend {
        operation: "write",
        reason: "IO error: No space left on device (os error 28)".into(),
    }
}

/// What a failed sync answers (as RocksDB reports EIO).
fn sync_failed() -> StoreError {
    StoreError::Backend {
        operation: "sync",
        reason: "IO error: Input/output error (os error 5)".into(),
    }
}

/// What a read of a rotten record answers (as RocksDB's checksums do).
/// The name a damaged record's "file" has in memory.
const MEMORY_TABLE_FILE: &str = "memory.sst";

fn rotten(column: Column) -> StoreError {
    StoreError::Corrupt {
        what: format!("a record of {}", column.name()),
        reason: "block checksum mismatch".into(),
    }
}
