//! The key-value contract the store logic is written against, so the
//! RocksDB and in-memory stores share every encoding and every check.
//! Internal to the crate.

use crate::{format::Column, StoreError};

/// Called on each entry of a scan; returns whether to go on.
pub(crate) type Visitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool, StoreError> + 'a;

/// A point-in-time read view of every column (a RocksDB snapshot): writes
/// made after it was taken are not seen through it.
pub(crate) trait View {
    /// The value of `key` in `column` as of the view.
    fn get(&self, column: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// [`Backend::scan`] as of the view.
    fn scan(
        &self,
        column: Column,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut Visitor<'_>,
    ) -> Result<(), StoreError>;
}

/// A set of writes applied atomically by [`Backend::write`].
pub(crate) trait Batch {
    /// Sets `key` to `value` in `column`.
    fn put(&mut self, column: Column, key: &[u8], value: &[u8]);
    /// Deletes `key` of `column`.
    fn delete(&mut self, column: Column, key: &[u8]);
    /// Deletes the keys in `[start, end)` of `column`. A range tombstone:
    /// RocksDB slows down every read of the column as they pile up in a
    /// memtable, so keep it for rare clean-ups, never once per height.
    fn delete_range(&mut self, column: Column, start: &[u8], end: &[u8]);
}

/// An ordered key-value store with column families and atomic, synced
/// batches.
pub(crate) trait Backend: Send + Sync {
    /// Its batch type.
    type Batch<'a>: Batch
    where
        Self: 'a;

    /// The value of `key` in `column`.
    fn get(&self, column: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// An empty batch with room for about `capacity_bytes` of keys and
    /// values.
    fn batch(&self, capacity_bytes: usize) -> Self::Batch<'_>;

    /// Applies `batch` atomically and syncs it to stable storage before
    /// returning: after a crash either all of it or none of it is there.
    /// Syncing also makes every earlier unsynced write durable.
    fn write(&self, batch: Self::Batch<'_>) -> Result<(), StoreError>;

    /// Applies `batch` atomically without waiting for stable storage:
    /// reads see it at once, a crash may lose it (and every later write
    /// up to the next sync), never half of it.
    fn write_unsynced(&self, batch: Self::Batch<'_>) -> Result<(), StoreError>;

    /// Makes every write so far durable.
    fn sync(&self) -> Result<(), StoreError>;

    /// The table file a checksum mismatch of `column` (what the engine
    /// said, `reason`) points at: its name, level and key range; `None`
    /// when no live file of the column matches.
    fn damaged_file(&self, column: Column, reason: &str)
        -> Result<Option<DamagedFile>, StoreError>;

    /// Takes `file` out of `column` once every record it held that is
    /// still wanted was written again (synced) by the caller: RocksDB
    /// flushes the column, then drops the table files of levels 1 and up
    /// lying wholly inside the file's key range, and checks the file is
    /// gone. The in-memory backend has nothing to do (a write replaces a
    /// rotten record).
    fn drop_damaged_file(&self, column: Column, file: &DamagedFile) -> Result<(), StoreError>;

    /// Compacts the keys of `column` below `end` (`None`: all of them;
    /// RocksDB: a manual compaction of that range, which drops deleted
    /// entries and their tombstones; the in-memory backend has nothing to
    /// do).
    fn compact_below(&self, column: Column, end: Option<&[u8]>) -> Result<(), StoreError>;

    /// Reads the entries of `column` from key `start` on, in key order,
    /// each read checked against the checksum stored with it (RocksDB:
    /// every table block read is verified, and none enters the block
    /// cache), until about `bytes_max` bytes of keys and values were read.
    /// Returns the key to go on from (`None`: the column's end) and the
    /// bytes read; a checksum mismatch is [`StoreError::Damaged`]-like
    /// ([`StoreError::ChecksumMismatch`]).
    fn verify_range(
        &self,
        column: Column,
        start: &[u8],
        bytes_max: usize,
    ) -> Result<(Option<Vec<u8>>, usize), StoreError>;

    /// Visits, in key order, the entries of `column` with keys in
    /// `[start, end)` (`end = None`: to the last key) until `visit`
    /// returns `false`.
    fn scan(
        &self,
        column: Column,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut Visitor<'_>,
    ) -> Result<(), StoreError>;

    /// Visits, in reverse key order, the entries of `column` with keys in
    /// `[start, end)` until `visit` returns `false`.
    fn scan_reverse(
        &self,
        column: Column,
        start: &[u8],
        end: &[u8],
        visit: &mut Visitor<'_>,
    ) -> Result<(), StoreError>;

    /// Runs `read` on a consistent view of every column as it is now
    /// (taking it is O(1) on RocksDB); writes made meanwhile are not seen.
    fn with_view(
        &self,
        read: &mut dyn FnMut(&dyn View) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
}

/// A damaged table file ([`Backend::damaged_file`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DamagedFile {
    /// Its name (no directory).
    pub name: String,
    /// Its LSM level (0: files whose key ranges overlap, which cannot be
    /// dropped by range).
    pub level: i32,
    /// Its smallest key.
    pub first_key: Vec<u8>,
    /// Its largest key.
    pub last_key: Vec<u8>,
}
