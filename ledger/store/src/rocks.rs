//! The RocksDB store: one column family per [`Column`], every write an
//! atomic `WriteBatch` (with `sync = true`, but for the consensus WAL's
//! appends and prunes, which the caller syncs with one `flush_wal(true)` per
//! step), and memory bounded by named budgets.
//!
//! # Memory
//!
//! - Memtables of all column families share one budget,
//!   [`WRITE_BUFFER_BUDGET_BYTES`] (`db_write_buffer_size`, which RocksDB
//!   enforces with a write-buffer manager across column families); one
//!   memtable is at most [`BLOCKS_MEMTABLE_BYTES_MAX`] for blocks and
//!   [`MEMTABLE_BYTES_MAX`] for the other columns.
//! - Data, index and filter blocks are read through one LRU block cache of
//!   [`BLOCK_CACHE_BYTES`] shared by all column families.
//! - At most [`OPEN_FILES_MAX`] table files are open at once.
//! - RocksDB's own log is capped at [`LOG_TOTAL_BYTES_MAX`] so rarely
//!   written column families (metadata, WAL, evidence) get flushed.

use std::path::Path;

use cairn_state::LedgerState;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType,
    DBRecoveryMode, Options, ReadOptions, WriteBatch, WriteOptions, DB,
};

use crate::{
    backend::{Backend, Batch, DamagedFile, View, Visitor},
    engine::{delegate_store, Engine},
    format::Column,
    ChainIdentity, StoreError,
};

/// Shared memtable budget of all column families.
pub const WRITE_BUFFER_BUDGET_BYTES: usize = 256 * 1024 * 1024;
/// Largest memtable of the `blocks` column family (large values, one per
/// block: a large memtable means few flushes).
pub const BLOCKS_MEMTABLE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Largest memtable of every other column family. Thousands of small keys
/// go into these per block, and inserting into a skip list slows down with
/// its size (cache misses): 8 MiB measured ~2x faster than 64 MiB.
pub const MEMTABLE_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Size of the block cache shared by all column families.
pub const BLOCK_CACHE_BYTES: usize = 256 * 1024 * 1024;
/// Most table files open at once.
pub const OPEN_FILES_MAX: i32 = 1_024;
/// Most bytes of RocksDB's own write-ahead log before old column families
/// are flushed.
pub const LOG_TOTAL_BYTES_MAX: u64 = 512 * 1024 * 1024;
/// Background flush and compaction threads.
pub const BACKGROUND_JOBS: i32 = 2;
/// Sliding window, in entries, in which a table file of the hash-keyed
/// columns is marked for compaction when it holds at least
/// [`PRUNE_DELETION_TRIGGER_ENTRIES`] tombstones (or when half its entries
/// are tombstones): how pruned index entries give their space back.
const PRUNE_DELETION_WINDOW_ENTRIES: usize = 1_024;
/// See [`PRUNE_DELETION_WINDOW_ENTRIES`].
const PRUNE_DELETION_TRIGGER_ENTRIES: usize = 512;
/// Bloom filter bits per key of the point-lookup columns.
const BLOOM_BITS_PER_KEY: f64 = 10.0;

/// The RocksDB implementation of [`crate::Store`].
pub struct RocksStore {
    engine: Engine<RocksBackend>,
}

delegate_store!(RocksStore);

impl RocksStore {
    /// Opens (creating it if needed) the store in directory `path` for the
    /// chain `identity`. A new store is initialised with the accounts of
    /// `genesis`; an existing one must have been written for the same chain
    /// id and genesis hash, in this build's format version.
    pub fn open(
        path: &Path,
        identity: &ChainIdentity,
        genesis: &LedgerState,
    ) -> Result<RocksStore, StoreError> {
        let backend = RocksBackend::open(path)?;
        Ok(RocksStore {
            engine: Engine::open(backend, identity, genesis)?,
        })
    }
}

/// Options shared by every column family.
fn column_options(column: Column, cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_cache_index_and_filter_blocks(true);
    if matches!(
        column,
        Column::BlockHashes | Column::Transactions | Column::Accounts
    ) {
        table.set_bloom_filter(BLOOM_BITS_PER_KEY, false);
    }
    let mut options = Options::default();
    options.set_block_based_table_factory(&table);
    if matches!(
        column,
        Column::BlockHashes | Column::Transactions | Column::History
    ) {
        // Pruning deletes these hash- and address-keyed entries all over the key space,
        // where a range compaction cannot aim: a table file in which
        // pruning left many tombstones is marked for compaction instead.
        options.add_compact_on_deletion_collector_factory(
            PRUNE_DELETION_WINDOW_ENTRIES,
            PRUNE_DELETION_TRIGGER_ENTRIES,
            0.5,
        );
    }
    options.set_write_buffer_size(match column {
        Column::Blocks => BLOCKS_MEMTABLE_BYTES_MAX,
        _ => MEMTABLE_BYTES_MAX,
    });
    options.set_compression_type(DBCompressionType::Lz4);
    options
}

/// RocksDB behind the [`Backend`] contract.
pub(crate) struct RocksBackend {
    db: DB,
    sync: WriteOptions,
    unsynced: WriteOptions,
}

impl RocksBackend {
    fn write_with(&self, batch: RocksBatch<'_>, options: &WriteOptions) -> Result<(), StoreError> {
        if let Some(column) = batch.missing {
            return Err(StoreError::Backend {
                operation: "write a batch",
                reason: format!("column family {:?} is missing", column.name()),
            });
        }
        self.db
            .write_opt(batch.batch, options)
            .map_err(backend_error("write a batch"))
    }

    fn open(path: &Path) -> Result<RocksBackend, StoreError> {
        std::fs::create_dir_all(path).map_err(|error| StoreError::Open {
            path: path.to_path_buf(),
            reason: format!("cannot create the directory: {error}"),
        })?;
        check_current_file(path)?;
        let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_db_write_buffer_size(WRITE_BUFFER_BUDGET_BYTES);
        options.set_max_open_files(OPEN_FILES_MAX);
        options.set_max_total_wal_size(LOG_TOTAL_BYTES_MAX);
        options.set_max_background_jobs(BACKGROUND_JOBS);
        options.set_paranoid_checks(true);
        // A corrupt record anywhere but an unfinished last one stops the
        // open instead of truncating the log there (RocksDB's default, point
        // in time, would silently drop every later record: synced consensus
        // WAL entries among them, which is amnesia). An unfinished last
        // record can only be a write that was never synced, so never
        // acknowledged.
        options.set_wal_recovery_mode(DBRecoveryMode::TolerateCorruptedTailRecords);
        let columns = Column::ALL.iter().map(|column| {
            ColumnFamilyDescriptor::new(column.name(), column_options(*column, &cache))
        });
        let db = DB::open_cf_descriptors(&options, path, columns).map_err(|error| {
            let reason = error.to_string();
            if reason.contains("Corruption") {
                StoreError::Damaged {
                    path: path.to_path_buf(),
                    reason,
                }
            } else {
                StoreError::Open {
                    path: path.to_path_buf(),
                    reason,
                }
            }
        })?;
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        let backend = RocksBackend {
            db,
            sync,
            unsynced: WriteOptions::default(),
        };
        // Fail at open, not at first use, if a column family is missing.
        for column in Column::ALL {
            backend.handle(column)?;
        }
        Ok(backend)
    }

    fn handle(&self, column: Column) -> Result<&ColumnFamily, StoreError> {
        self.db.cf_handle(column.name()).ok_or(StoreError::Backend {
            operation: "find a column family",
            reason: format!("column family {:?} is missing", column.name()),
        })
    }
}

/// Refuses a store directory that holds RocksDB's files but not its
/// `CURRENT` file (which names the live manifest): RocksDB would take it
/// for a new store and fail with a confusing message about its log (or,
/// worse, start over). Says what is damaged instead.
fn check_current_file(path: &Path) -> Result<(), StoreError> {
    if path.join("CURRENT").exists() {
        return Ok(());
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return Ok(());
    };
    let mut manifests = 0usize;
    let mut tables = 0usize;
    let mut logs = 0usize;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("MANIFEST-") {
            manifests += 1;
        } else if name.ends_with(".sst") {
            tables += 1;
        } else if name.ends_with(".log") {
            logs += 1;
        }
    }
    if manifests + tables + logs == 0 {
        return Ok(());
    }
    Err(StoreError::Damaged {
        path: path.to_path_buf(),
        reason: format!(
            "its CURRENT file is missing (it names the live MANIFEST), while the directory holds {manifests} MANIFEST, {tables} table (.sst) and {logs} log files of a store; \
             if exactly one MANIFEST-<n> file is there, `printf 'MANIFEST-<n>\\n' > CURRENT` in that directory may bring the store back (make a copy first)"
        ),
    })
}

/// A RocksDB write batch with the column family handles resolved once.
pub(crate) struct RocksBatch<'a> {
    handles: [Option<&'a ColumnFamily>; Column::ALL.len()],
    batch: WriteBatch,
    missing: Option<Column>,
}

impl Batch for RocksBatch<'_> {
    fn put(&mut self, column: Column, key: &[u8], value: &[u8]) {
        match self.handles[column.index()] {
            Some(handle) => self.batch.put_cf(handle, key, value),
            None => self.missing = Some(column),
        }
    }

    fn delete(&mut self, column: Column, key: &[u8]) {
        match self.handles[column.index()] {
            Some(handle) => self.batch.delete_cf(handle, key),
            None => self.missing = Some(column),
        }
    }

    fn delete_range(&mut self, column: Column, start: &[u8], end: &[u8]) {
        match self.handles[column.index()] {
            Some(handle) => self.batch.delete_range_cf(handle, start, end),
            None => self.missing = Some(column),
        }
    }
}

fn backend_error(operation: &'static str) -> impl Fn(rocksdb::Error) -> StoreError {
    move |error| StoreError::Backend {
        operation,
        reason: error.to_string(),
    }
}

impl Backend for RocksBackend {
    type Batch<'a> = RocksBatch<'a>;

    fn get(&self, column: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let handle = self.handle(column)?;
        self.db
            .get_pinned_cf(handle, key)
            .map(|value| value.map(|value| value.to_vec()))
            .map_err(backend_error("read"))
    }

    fn batch(&self, capacity_bytes: usize) -> RocksBatch<'_> {
        RocksBatch {
            handles: Column::ALL.map(|column| self.db.cf_handle(column.name())),
            batch: WriteBatch::with_capacity_bytes(capacity_bytes),
            missing: None,
        }
    }

    fn write(&self, batch: RocksBatch<'_>) -> Result<(), StoreError> {
        self.write_with(batch, &self.sync)
    }

    fn write_unsynced(&self, batch: RocksBatch<'_>) -> Result<(), StoreError> {
        // RocksDB's own log is one file: a later synced write, or
        // `flush_wal(true)`, makes this one durable too.
        self.write_with(batch, &self.unsynced)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.db
            .flush_wal(true)
            .map_err(backend_error("sync the log"))
    }

    fn verify_range(
        &self,
        column: Column,
        start: &[u8],
        bytes_max: usize,
    ) -> Result<(Option<Vec<u8>>, usize), StoreError> {
        let handle = self.handle(column)?;
        let mut options = ReadOptions::default();
        options.set_verify_checksums(true);
        // A scrub reads everything once: it must not evict what the node
        // reads often, and a cached block would not be re-read from disk.
        options.fill_cache(false);
        let mut iterator = self.db.raw_iterator_cf_opt(handle, options);
        iterator.seek(start);
        let mut bytes = 0usize;
        let mut last: Vec<u8> = Vec::new();
        let mut next = None;
        while iterator.valid() {
            let (Some(key), Some(value)) = (iterator.key(), iterator.value()) else {
                break;
            };
            if bytes >= bytes_max {
                next = Some(key.to_vec());
                break;
            }
            bytes = bytes.saturating_add(key.len() + value.len());
            last.clear();
            last.extend_from_slice(key);
            iterator.next();
        }
        iterator.status().map_err(|error| {
            let reason = error.to_string();
            if reason.contains("Corruption") || reason.contains("checksum") {
                StoreError::ChecksumMismatch {
                    column: column.name(),
                    after_key: last.iter().map(|byte| format!("{byte:02x}")).collect(),
                    reason,
                }
            } else {
                StoreError::Backend {
                    operation: "verify the stored data",
                    reason,
                }
            }
        })?;
        Ok((next, bytes))
    }

    fn damaged_file(
        &self,
        column: Column,
        reason: &str,
    ) -> Result<Option<DamagedFile>, StoreError> {
        // RocksDB names the file: "... in /path/to/data/000123.sst offset ...".
        let Some(named) = reason
            .split(|c: char| c.is_whitespace() || c == ',' || c == ':')
            .filter(|word| word.ends_with(".sst"))
            .find_map(|word| Path::new(word).file_name())
            .map(|name| name.to_string_lossy().into_owned())
        else {
            return Ok(None);
        };
        let files = self
            .db
            .live_files()
            .map_err(backend_error("list the table files"))?;
        Ok(files
            .into_iter()
            .find(|file| {
                file.column_family_name == column.name()
                    && Path::new(&file.name)
                        .file_name()
                        .is_some_and(|name| name.to_string_lossy() == named)
            })
            .and_then(|file| {
                Some(DamagedFile {
                    name: named.clone(),
                    level: file.level,
                    first_key: file.start_key?,
                    last_key: file.end_key?,
                })
            }))
    }

    fn drop_damaged_file(&self, column: Column, file: &DamagedFile) -> Result<(), StoreError> {
        let handle = self.handle(column)?;
        // The rewritten records leave the memtable for a table file first,
        // so nothing but the damaged file and its range's older copies go.
        self.db
            .flush_cf(handle)
            .map_err(backend_error("flush the repaired records"))?;
        self.db
            .delete_file_in_range_cf(handle, &file.first_key, &file.last_key)
            .map_err(backend_error("drop the damaged table file"))?;
        let still_there = self
            .db
            .live_files()
            .map_err(backend_error("list the table files"))?
            .into_iter()
            .any(|live| {
                live.column_family_name == column.name()
                    && Path::new(&live.name)
                        .file_name()
                        .is_some_and(|name| name.to_string_lossy() == file.name)
            });
        if still_there {
            return Err(StoreError::Backend {
                operation: "drop the damaged table file",
                reason: format!(
                    "{} (level {}) is still live after the drop (a compaction may hold it); try again later",
                    file.name, file.level
                ),
            });
        }
        Ok(())
    }

    fn compact_below(&self, column: Column, end: Option<&[u8]>) -> Result<(), StoreError> {
        // A manual compaction of the range only: with height-ordered keys
        // it rewrites the few files that hold pruned heights (and the one
        // at the boundary), dropping the deleted entries and tombstones.
        // Not DeleteFilesInRange: dropping a file that holds a tombstone
        // could bring back an older value of its key from a lower level.
        let handle = self.handle(column)?;
        self.db.compact_range_cf(handle, None::<&[u8]>, end);
        Ok(())
    }

    fn scan(
        &self,
        column: Column,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut Visitor<'_>,
    ) -> Result<(), StoreError> {
        let handle = self.handle(column)?;
        let iterator = self.db.raw_iterator_cf_opt(handle, scan_options(end));
        run_scan(iterator, start, end, visit)
    }

    fn scan_reverse(
        &self,
        column: Column,
        start: &[u8],
        end: &[u8],
        visit: &mut Visitor<'_>,
    ) -> Result<(), StoreError> {
        let handle = self.handle(column)?;
        // Both bounds: the iterator stops at them rather than reading
        // deleted keys beyond.
        let mut options = ReadOptions::default();
        options.set_iterate_lower_bound(start.to_vec());
        options.set_iterate_upper_bound(end.to_vec());
        let mut iterator = self.db.raw_iterator_cf_opt(handle, options);
        iterator.seek_to_last();
        while iterator.valid() {
            let (Some(key), Some(value)) = (iterator.key(), iterator.value()) else {
                break;
            };
            if key < start || key >= end || !visit(key, value)? {
                break;
            }
            iterator.prev();
        }
        iterator.status().map_err(backend_error("scan"))?;
        Ok(())
    }

    fn with_view(
        &self,
        read: &mut dyn FnMut(&dyn View) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let view = RocksView {
            backend: self,
            snapshot: self.db.snapshot(),
        };
        read(&view)
    }
}

/// Read options of a scan: the upper bound stops the iterator at `end`
/// rather than at the first live key past it (deleted keys in between
/// would be read and skipped).
fn scan_options(end: Option<&[u8]>) -> ReadOptions {
    let mut options = ReadOptions::default();
    if let Some(end) = end {
        options.set_iterate_upper_bound(end.to_vec());
    }
    options
}

/// Visits `[start, end)` with a raw iterator, which lends keys and values
/// without copying them.
fn run_scan<D: rocksdb::DBAccess>(
    mut iterator: rocksdb::DBRawIteratorWithThreadMode<'_, D>,
    start: &[u8],
    end: Option<&[u8]>,
    visit: &mut Visitor<'_>,
) -> Result<(), StoreError> {
    iterator.seek(start);
    while iterator.valid() {
        let (Some(key), Some(value)) = (iterator.key(), iterator.value()) else {
            break;
        };
        if end.is_some_and(|end| key >= end) || !visit(key, value)? {
            break;
        }
        iterator.next();
    }
    iterator.status().map_err(backend_error("scan"))?;
    Ok(())
}

/// A RocksDB snapshot behind the [`View`] contract.
struct RocksView<'a> {
    backend: &'a RocksBackend,
    snapshot: rocksdb::Snapshot<'a>,
}

impl View for RocksView<'_> {
    fn get(&self, column: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let handle = self.backend.handle(column)?;
        self.snapshot
            .get_cf(handle, key)
            .map_err(backend_error("read"))
    }

    fn scan(
        &self,
        column: Column,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut Visitor<'_>,
    ) -> Result<(), StoreError> {
        let handle = self.backend.handle(column)?;
        let iterator = self.snapshot.raw_iterator_cf_opt(handle, scan_options(end));
        run_scan(iterator, start, end, visit)
    }
}
