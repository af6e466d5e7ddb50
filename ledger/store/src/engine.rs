//! The store logic, written once over [`Backend`]: opening and identity
//! checks, the atomic block commit, the indexes, the WAL and evidence.
//! [`crate::RocksStore`] and [`crate::MemoryStore`] wrap it.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Mutex, MutexGuard, PoisonError,
};

use cairn_state::{
    Account, ExecutionOutcome, LedgerState, StakingState, ACCOUNTS_MAX, STAKING_STATE_BYTES_MAX,
};
use cairn_types::{
    codec,
    limits::{
        CERTIFICATE_BYTES_MAX, EVIDENCE_BYTES_MAX, HEADER_BYTES_MAX, TRANSACTION_BYTES_MAX,
        VALIDATOR_SET_BYTES_MAX,
    },
    Address, Block, CommitCertificate, Evidence, Hash, Header, Height, SignedTransaction,
    ValidatorSet,
};

use crate::{
    backend::{Backend, Batch, DamagedFile},
    contract::{
        ChainIdentity, DamageRepair, DamagedAccounts, DamagedHeights, HistoryEntry, ScrubPosition,
        ScrubStep, TransactionRecord, EVIDENCE_LIST_MAX, HISTORY_PAGE_MAX, PRUNE_BATCH_KEYS_MAX,
        PRUNE_KEEP_BLOCKS_MIN, WAL_ENTRIES_PER_HEIGHT_MAX, WAL_ENTRY_BYTES_MAX,
        WAL_HEIGHT_BYTES_MAX,
    },
    format::{
        account_entries, decode_account, decode_address, decode_hash, decode_history_key,
        decode_history_value, decode_u32, decode_u64, encode_account, encode_block,
        encode_history_value, evidence_key, height_key, history_key, restore_staking_key,
        touched_accounts, validator_set_key, wal_key, Column, MetaKey, TransactionLocation,
        FORMAT_VERSION, RESTORE_STAKING_PREFIX,
    },
    snapshot::{
        decode_chunk, staking_piece_key, ACCOUNT_TAG, SNAPSHOT_STAKING_PIECE_BYTES_MAX, STAKING_TAG,
    },
    StoreError,
};

/// Whether a commit's write is synced before it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Durability {
    /// Synced: durable when the commit returns.
    Synced,
    /// Written, durable with the next synced write or sync.
    Deferred,
}

/// The latest committed block, cached.
#[derive(Clone, Copy, Debug)]
struct Tip {
    height: Height,
    block_hash: Hash,
    state_root: Hash,
}

/// Where the WAL of one height stands.
#[derive(Clone, Copy, Debug)]
struct WalCursor {
    height: Height,
    next_sequence: u64,
    bytes: u64,
}

/// The store logic over a backend.
pub(crate) struct Engine<B: Backend> {
    backend: B,
    identity: ChainIdentity,
    tip: Mutex<Tip>,
    wal: Mutex<Option<WalCursor>>,
    /// Serialises the check-then-write of [`Engine::add_evidence`].
    evidence: Mutex<()>,
    /// The height a snapshot restore started the store at (0: genesis).
    snapshot_base: Mutex<Height>,
    /// The last entry key a restore under way wrote (entries must come in
    /// strictly increasing order across chunks).
    restore_last_key: Mutex<Option<Vec<u8>>>,
    /// The lowest height held ([`MetaKey::LowestHeight`]), raised before
    /// a prune's write so no reader sees a pruned height as missing.
    lowest: AtomicU64,
    /// The first height the history index was written for
    /// ([`MetaKey::HistoryFrom`]; `u64::MAX` while it is switched off).
    history_from: AtomicU64,
    /// Serialises [`Engine::prune_blocks_below`].
    prune: Mutex<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the data half
    // written: the tip and cursor are plain values replaced whole.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<B: Backend> Engine<B> {
    /// Opens the store held by `backend`: creates it from `genesis` if it is
    /// empty, or checks its format version, chain id and genesis hash.
    pub(crate) fn open(
        backend: B,
        identity: &ChainIdentity,
        genesis: &LedgerState,
    ) -> Result<Engine<B>, StoreError> {
        match backend.get(Column::Metadata, MetaKey::FormatVersion.key())? {
            None => initialize(&backend, identity, genesis)?,
            Some(bytes) => check_identity(&backend, identity, &bytes)?,
        }
        let tip = load_tip(&backend, identity)?;
        let snapshot_base = backend
            .get(Column::Metadata, MetaKey::SnapshotBase.key())?
            .map(|bytes| decode_u64("metadata snapshot_base", &bytes).map(Height))
            .transpose()?
            .unwrap_or(Height::GENESIS);
        let lowest = load_lowest(&backend, tip.height)?;
        let history_from = load_history_from(&backend, tip.height)?;
        Ok(Engine {
            backend,
            identity: identity.clone(),
            tip: Mutex::new(tip),
            wal: Mutex::new(None),
            evidence: Mutex::new(()),
            snapshot_base: Mutex::new(snapshot_base),
            restore_last_key: Mutex::new(None),
            lowest: AtomicU64::new(lowest.0),
            history_from: AtomicU64::new(history_from.0),
            prune: Mutex::new(()),
        })
    }

    /// The lowest height whose transactions the history index holds: the
    /// lowest height held, or later for a store written before the index.
    pub(crate) fn history_lowest_height(&self) -> Height {
        self.lowest_height()
            .max(Height(self.history_from.load(Ordering::Acquire)))
    }

    fn history_enabled(&self) -> bool {
        self.history_from.load(Ordering::Acquire) != HISTORY_OFF
    }

    pub(crate) fn set_history_index(&self, enabled: bool) -> Result<(), StoreError> {
        // Under the tip lock: no commit runs meanwhile.
        let tip = lock(&self.tip);
        if enabled == self.history_enabled() {
            return Ok(());
        }
        let from = if enabled {
            tip.height.0.saturating_add(1)
        } else {
            HISTORY_OFF
        };
        let mut batch = self.backend.batch(0);
        batch.put(
            Column::Metadata,
            MetaKey::HistoryFrom.key(),
            &from.to_be_bytes(),
        );
        self.backend.write(batch)?;
        self.history_from.store(from, Ordering::Release);
        Ok(())
    }

    pub(crate) fn lowest_height(&self) -> Height {
        Height(self.lowest.load(Ordering::Acquire))
    }

    /// [`StoreError::Pruned`] when `height` (not the genesis) is below the
    /// lowest height held.
    fn check_held(&self, height: Height) -> Result<(), StoreError> {
        let lowest = self.lowest_height();
        if height != Height::GENESIS && height < lowest {
            return Err(StoreError::Pruned { height, lowest });
        }
        Ok(())
    }

    pub(crate) fn prune_blocks_below(&self, below: Height) -> Result<Height, StoreError> {
        let _serialised = lock(&self.prune);
        // Heights `limit ..= tip` are the PRUNE_KEEP_BLOCKS_MIN latest.
        let limit = self
            .latest_height()
            .0
            .saturating_add(1)
            .saturating_sub(PRUNE_KEEP_BLOCKS_MIN);
        let below = below.0.min(limit);
        let lowest = self.lowest_height().0;
        if below <= lowest {
            return Ok(Height(lowest));
        }
        let mut batch = self.backend.batch(0);
        let mut keys = 0usize;
        let mut next = lowest;
        while next < below {
            let height = Height(next);
            let key = height_key(height);
            let mut deletes: Vec<(Column, Vec<u8>)> = vec![(Column::Certificates, key.to_vec())];
            if let Some(bytes) = self.backend.get(Column::Blocks, &key)? {
                let block = Block::from_bytes(&bytes).map_err(|error| {
                    StoreError::corrupt(format!("block {height}"), error.to_string())
                })?;
                let encoded = encode_block(&block)?;
                deletes.push((Column::Blocks, key.to_vec()));
                deletes.push((Column::BlockHashes, encoded.hash.0.to_vec()));
                deletes.extend(
                    encoded
                        .transactions
                        .iter()
                        .map(|(hash, _, _)| (Column::Transactions, hash.0.to_vec())),
                );
                deletes.extend(
                    history_entries(&block, &encoded)
                        .map(|(key, _)| (Column::History, key.to_vec())),
                );
            }
            if keys > 0 && keys.saturating_add(deletes.len()) > PRUNE_BATCH_KEYS_MAX {
                break;
            }
            keys = keys.saturating_add(deletes.len());
            for (column, key) in &deletes {
                batch.delete(*column, key);
            }
            next += 1;
        }
        batch.put(
            Column::Metadata,
            MetaKey::LowestHeight.key(),
            &height_key(Height(next)),
        );
        // Raised first: a reader between the write and the raise would
        // see a pruned height as never committed.
        self.lowest.store(next, Ordering::Release);
        // Unsynced: pruning needs no durability of its own (a crash brings
        // back old heights with the old lowest height), and an fsync here
        // would queue up with the commits' own.
        if let Err(error) = self.backend.write_unsynced(batch) {
            self.lowest.store(lowest, Ordering::Release);
            return Err(error);
        }
        Ok(Height(next))
    }

    pub(crate) fn scrub(
        &self,
        from: &ScrubPosition,
        bytes_max: usize,
    ) -> Result<ScrubStep, StoreError> {
        let mut position = from.clone();
        let mut bytes = 0usize;
        while let Some(column) = Column::ALL.get(position.column).copied() {
            let budget = bytes_max.saturating_sub(bytes).max(1);
            let (next, read) = self.backend.verify_range(column, &position.key, budget)?;
            bytes = bytes.saturating_add(read);
            match next {
                Some(key) => {
                    position.key = key;
                    return Ok(ScrubStep {
                        next: Some(position),
                        bytes,
                    });
                }
                None => {
                    position = ScrubPosition {
                        column: position.column + 1,
                        key: Vec::new(),
                    };
                    if bytes >= bytes_max {
                        let next = (position.column < Column::ALL.len()).then_some(position);
                        return Ok(ScrubStep { next, bytes });
                    }
                }
            }
        }
        Ok(ScrubStep { next: None, bytes })
    }

    pub(crate) fn damage_repair(&self, damage: &StoreError) -> Result<DamageRepair, StoreError> {
        let not = |reason: String| Ok(DamageRepair::NotRepairable(reason));
        let StoreError::ChecksumMismatch { column, reason, .. } = damage else {
            return not(format!("not a checksum mismatch: {damage}"));
        };
        let column = match *column {
            name if name == Column::Blocks.name() => Column::Blocks,
            name if name == Column::Certificates.name() => Column::Certificates,
            name if name == Column::Accounts.name() => Column::Accounts,
            other => {
                return not(format!(
                    "the damage is in the {other}, which this node cannot rebuild (only blocks and certificates, from peers, and the accounts, from the state in memory, can be)"
                ))
            }
        };
        let Some(file) = self.backend.damaged_file(column, reason)? else {
            return not("the damaged table file is not among the live files of its column".into());
        };
        if file.level == 0 {
            return not(format!(
                "the damaged table file {} is at level 0, where files overlap and one cannot be dropped by its key range",
                file.name
            ));
        }
        if column == Column::Accounts {
            return Ok(DamageRepair::RewriteAccounts(DamagedAccounts {
                file: file.name,
                addresses: (
                    decode_address(&file.first_key)?,
                    decode_address(&file.last_key)?,
                ),
            }));
        }
        let first = decode_u64("the damaged file's first height", &file.first_key)?;
        let last = decode_u64("the damaged file's last height", &file.last_key)?;
        Ok(DamageRepair::Refetch(DamagedHeights {
            column: column.name(),
            file: file.name,
            file_heights: (Height(first), Height(last)),
        }))
    }

    pub(crate) fn repair_heights(
        &self,
        damaged: &DamagedHeights,
        records: &[(Block, CommitCertificate)],
    ) -> Result<(), StoreError> {
        let column = if damaged.column == Column::Blocks.name() {
            Column::Blocks
        } else if damaged.column == Column::Certificates.name() {
            Column::Certificates
        } else {
            return Err(StoreError::Repair {
                column: damaged.column,
                reason: "only blocks and certificates are repaired from peers".into(),
            });
        };
        let refuse = |reason: String| StoreError::Repair {
            column: damaged.column,
            reason,
        };
        // No prune moves the lowest height meanwhile; commits may go on
        // (they only add heights above the tip read here).
        let _prune = lock(&self.prune);
        let tip = *lock(&self.tip);
        let lowest = self.lowest_height();
        let held = damaged.held(lowest, tip.height);
        let wanted = held.map_or(0, |(first, last)| last.0 - first.0 + 1);
        if records.len() as u64 != wanted {
            return Err(refuse(format!(
                "{} records for the {wanted} heights held of the damaged file",
                records.len()
            )));
        }
        let mut batch = self.backend.batch(
            records
                .iter()
                .map(|(block, _)| block.transactions.len() * 256 + 4096)
                .sum(),
        );
        if let Some((first, last)) = held {
            // The hash each block must have: named by the block above it.
            let mut expected = if last == tip.height {
                tip.block_hash
            } else {
                self.header(Height(last.0 + 1))?
                    .ok_or_else(|| refuse(format!("the block above height {last} is missing")))?
                    .parent_hash
            };
            for (offset, (block, certificate)) in records.iter().enumerate().rev() {
                let height = Height(first.0 + offset as u64);
                let hash = block.hash();
                if block.header.height != height || hash != expected {
                    return Err(refuse(format!(
                        "the block offered for height {height} is block {hash} of height {}, the chain names {expected}",
                        block.header.height
                    )));
                }
                if certificate.height != height || certificate.block_hash != hash {
                    return Err(refuse(format!(
                        "the certificate offered for height {height} decides another block"
                    )));
                }
                block
                    .check_structure()
                    .map_err(|error| refuse(format!("block {height}: {error}")))?;
                let set = self
                    .validator_set(&block.header.validator_set_hash)?
                    .ok_or_else(|| {
                        refuse(format!(
                            "the validator set {} of height {height} is not held",
                            block.header.validator_set_hash
                        ))
                    })?;
                certificate
                    .verify(&self.identity.chain_id, &set)
                    .map_err(|error| {
                        refuse(format!("the certificate of height {height}: {error}"))
                    })?;
                let key = height_key(height);
                batch.put(Column::Blocks, &key, &encode_block(block)?.bytes);
                batch.put(Column::Certificates, &key, &codec::encode(certificate));
                expected = block.header.parent_hash;
            }
        }
        // Heights of the file below the lowest held were pruned: they stay
        // deleted whatever the dropped file held (one range tombstone, once).
        if damaged.file_heights.0 < lowest {
            let start = height_key(damaged.file_heights.0);
            let end = height_key(lowest);
            batch.delete_range(Column::Blocks, &start, &end);
            batch.delete_range(Column::Certificates, &start, &end);
        }
        self.backend.write(batch)?;
        self.backend.drop_damaged_file(
            column,
            &DamagedFile {
                name: damaged.file.clone(),
                level: 1,
                first_key: height_key(damaged.file_heights.0).to_vec(),
                last_key: height_key(damaged.file_heights.1).to_vec(),
            },
        )
    }

    pub(crate) fn repair_accounts(
        &self,
        damaged: &DamagedAccounts,
        state: &LedgerState,
    ) -> Result<(), StoreError> {
        // No commit in between: the state given is the latest one.
        let tip = lock(&self.tip);
        if state.root() != tip.state_root {
            return Err(StoreError::Repair {
                column: Column::Accounts.name(),
                reason: format!(
                    "the state given has root {}, the latest committed state root is {}",
                    state.root(),
                    tip.state_root
                ),
            });
        }
        let (first, last) = damaged.addresses;
        let in_range: Vec<(u64, Address, Account)> = state
            .iter()
            .filter(|(_, address, _)| *address >= first && *address <= last)
            .collect();
        let mut batch = self.backend.batch(in_range.len() * 48 + 64);
        for (slot, address, account) in &in_range {
            batch.put(
                Column::Accounts,
                &address.0,
                &encode_account(*slot, account),
            );
        }
        self.backend.write(batch)?;
        drop(tip);
        self.backend.drop_damaged_file(
            Column::Accounts,
            &DamagedFile {
                name: damaged.file.clone(),
                level: 1,
                first_key: first.0.to_vec(),
                last_key: last.0.to_vec(),
            },
        )
    }

    pub(crate) fn compact_all(&self) -> Result<(), StoreError> {
        for column in Column::ALL {
            self.backend.compact_below(column, None)?;
        }
        Ok(())
    }

    pub(crate) fn compact_pruned(&self) -> Result<(), StoreError> {
        let end = height_key(self.lowest_height());
        for column in [Column::Blocks, Column::Certificates] {
            self.backend.compact_below(column, Some(&end))?;
        }
        Ok(())
    }

    pub(crate) fn identity(&self) -> &ChainIdentity {
        &self.identity
    }

    pub(crate) fn latest_height(&self) -> Height {
        lock(&self.tip).height
    }

    pub(crate) fn latest_block_hash(&self) -> Hash {
        lock(&self.tip).block_hash
    }

    pub(crate) fn state_root(&self) -> Hash {
        lock(&self.tip).state_root
    }

    pub(crate) fn commit_block(
        &self,
        block: &Block,
        certificate: &CommitCertificate,
        outcome: &ExecutionOutcome,
    ) -> Result<(), StoreError> {
        self.commit_block_with(block, certificate, outcome, Durability::Synced)
    }

    pub(crate) fn commit_block_unsynced(
        &self,
        block: &Block,
        certificate: &CommitCertificate,
        outcome: &ExecutionOutcome,
    ) -> Result<(), StoreError> {
        self.commit_block_with(block, certificate, outcome, Durability::Deferred)
    }

    fn commit_block_with(
        &self,
        block: &Block,
        certificate: &CommitCertificate,
        outcome: &ExecutionOutcome,
        durability: Durability,
    ) -> Result<(), StoreError> {
        let mut tip = lock(&self.tip);
        let height = block.header.height;
        if Some(height) != tip.height.next().ok() {
            return Err(StoreError::NotNextHeight {
                expected: Height(tip.height.0.saturating_add(1)),
                got: height,
            });
        }
        if block.header.parent_hash != tip.block_hash {
            return Err(StoreError::ParentMismatch {
                height,
                expected: tip.block_hash,
                got: block.header.parent_hash,
            });
        }
        let outcome_mismatch = |reason: String| StoreError::OutcomeMismatch { height, reason };
        if outcome.parent_root() != tip.state_root {
            return Err(outcome_mismatch(format!(
                "it was computed on state root {} but the store's latest state root is {}",
                outcome.parent_root(),
                tip.state_root
            )));
        }
        if outcome.state_root() != block.header.state_root {
            return Err(outcome_mismatch(format!(
                "it yields state root {} but the header claims {}",
                outcome.state_root(),
                block.header.state_root
            )));
        }
        let encoded = encode_block(block)?;
        let certificate_mismatch =
            |reason: String| StoreError::CertificateMismatch { height, reason };
        if certificate.height != height {
            return Err(certificate_mismatch(format!(
                "it is for height {}",
                certificate.height
            )));
        }
        if certificate.block_hash != encoded.hash {
            return Err(certificate_mismatch(format!(
                "it decides block {} but this block is {}",
                certificate.block_hash, encoded.hash
            )));
        }

        let key = height_key(height);
        // Block, then per transaction and account a key, a value and
        // RocksDB's few bytes of framing.
        let capacity = encoded.bytes.len()
            + encoded.transactions.len() * 64
            + outcome.changes().len() * 56
            + 1024;
        let mut batch = self.backend.batch(capacity);
        put_block_records(
            &mut batch,
            block,
            &encoded,
            certificate,
            self.history_enabled(),
        );
        // Sorted, as the transaction locations (see `put_block_records`).
        let mut accounts: Vec<([u8; 20], [u8; 24])> = account_entries(outcome.changes()).collect();
        accounts.sort_unstable_by_key(|(address, _)| *address);
        for (address, value) in &accounts {
            batch.put(Column::Accounts, address, value);
        }
        if let Some(staking) = outcome.staking() {
            put_staking(&mut batch, staking);
        }
        batch.put(Column::Metadata, MetaKey::LatestHeight.key(), &key);
        // The consensus WAL of this height is of no use once the block is
        // committed; dropping it in the same write costs no sync of its own
        // and cannot lose a height that is not committed. Point deletes of
        // this height's few keys: a range delete per height would leave a
        // range tombstone per height, and RocksDB slows every read of the
        // column as those pile up (measured: block intervals tripled over a
        // few thousand heights). Lower heights were deleted by their own
        // commits or by `wal_prune_below` at start-up.
        let mut wal_cursor = lock(&self.wal);
        for key in self.wal_keys(height, Height(height.0.saturating_add(1)))? {
            batch.delete(Column::Wal, &key);
        }
        match durability {
            Durability::Synced => self.backend.write(batch)?,
            Durability::Deferred => self.backend.write_unsynced(batch)?,
        }
        if wal_cursor.is_some_and(|cursor| cursor.height <= height) {
            *wal_cursor = None;
        }
        drop(wal_cursor);
        *tip = Tip {
            height,
            block_hash: encoded.hash,
            state_root: outcome.state_root(),
        };
        Ok(())
    }

    pub(crate) fn block_bytes(&self, height: Height) -> Result<Option<Vec<u8>>, StoreError> {
        self.check_held(height)?;
        let bytes = self.backend.get(Column::Blocks, &height_key(height))?;
        if bytes.is_none() {
            // Pruned while it was read.
            self.check_held(height)?;
        }
        Ok(bytes)
    }

    pub(crate) fn block(&self, height: Height) -> Result<Option<Block>, StoreError> {
        let Some(bytes) = self.block_bytes(height)? else {
            return Ok(None);
        };
        let block = Block::from_bytes(&bytes)
            .map_err(|error| StoreError::corrupt(format!("block {height}"), error.to_string()))?;
        if block.header.height != height {
            return Err(StoreError::corrupt(
                format!("block {height}"),
                format!("it holds the block of height {}", block.header.height),
            ));
        }
        Ok(Some(block))
    }

    pub(crate) fn header(&self, height: Height) -> Result<Option<Header>, StoreError> {
        let Some(bytes) = self.block_bytes(height)? else {
            return Ok(None);
        };
        decode_header(height, &bytes).map(Some)
    }

    pub(crate) fn block_height(&self, hash: &Hash) -> Result<Option<Height>, StoreError> {
        self.backend
            .get(Column::BlockHashes, &hash.0)?
            .map(|bytes| decode_u64(&format!("height of block {hash}"), &bytes).map(Height))
            .transpose()
    }

    pub(crate) fn block_by_hash(&self, hash: &Hash) -> Result<Option<Block>, StoreError> {
        let Some(height) = self.block_height(hash)? else {
            return Ok(None);
        };
        let block = self.block(height)?.ok_or_else(|| {
            StoreError::corrupt(
                format!("block {hash}"),
                format!("the hash index names height {height}, which holds no block"),
            )
        })?;
        if block.hash() != *hash {
            return Err(StoreError::corrupt(
                format!("block {hash}"),
                format!(
                    "the hash index names height {height}, whose block is {}",
                    block.hash()
                ),
            ));
        }
        Ok(Some(block))
    }

    pub(crate) fn certificate(
        &self,
        height: Height,
    ) -> Result<Option<CommitCertificate>, StoreError> {
        self.check_held(height)?;
        let bytes = self
            .backend
            .get(Column::Certificates, &height_key(height))?;
        if bytes.is_none() {
            self.check_held(height)?;
        }
        bytes
            .map(|bytes| {
                codec::decode("certificate", &bytes, CERTIFICATE_BYTES_MAX).map_err(|error| {
                    StoreError::corrupt(format!("certificate {height}"), error.to_string())
                })
            })
            .transpose()
    }

    pub(crate) fn transaction(&self, hash: &Hash) -> Result<Option<TransactionRecord>, StoreError> {
        let Some(value) = self.backend.get(Column::Transactions, &hash.0)? else {
            return Ok(None);
        };
        let location = TransactionLocation::decode(hash, &value)?;
        let what = || format!("transaction {hash}");
        let block = self.block_bytes(location.height)?.ok_or_else(|| {
            StoreError::corrupt(what(), format!("its block {} is missing", location.height))
        })?;
        let start = location.offset as usize;
        let bytes = block
            .get(start..start.saturating_add(location.length as usize))
            .ok_or_else(|| StoreError::corrupt(what(), "its location lies outside its block"))?;
        if cairn_types::sha256(bytes) != *hash {
            return Err(StoreError::corrupt(
                what(),
                "the bytes at its location do not hash to it",
            ));
        }
        let transaction: SignedTransaction =
            codec::decode("transaction", bytes, TRANSACTION_BYTES_MAX)
                .map_err(|error| StoreError::corrupt(what(), error.to_string()))?;
        Ok(Some(TransactionRecord {
            height: location.height,
            index: location.index,
            transaction,
        }))
    }

    pub(crate) fn account_history(
        &self,
        address: &Address,
        before: Option<(Height, u32)>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let lowest = self.history_lowest_height();
        if let Some((height, _)) = before {
            if height < lowest {
                return Err(StoreError::Pruned { height, lowest });
            }
        }
        let limit = limit.clamp(1, HISTORY_PAGE_MAX);
        let start = history_key(address, lowest, 0);
        let end = match before {
            Some((height, index)) => history_key(address, height, index),
            None => history_key(address, Height(u64::MAX), u32::MAX),
        };
        let mut located: Vec<(Height, u32, u32, u32)> = Vec::with_capacity(limit);
        self.backend
            .scan_reverse(Column::History, &start, &end, &mut |key, value| {
                let (height, index) = decode_history_key(key)?;
                let (offset, length) = decode_history_value(value)?;
                located.push((height, index, offset, length));
                Ok(located.len() < limit)
            })?;
        // A page's entries cluster in few blocks: read each block once.
        let mut entries = Vec::with_capacity(located.len());
        let mut block: Option<(Height, Vec<u8>)> = None;
        for (height, index, offset, length) in located {
            let what = || format!("history of {address} at height {height} index {index}");
            if block.as_ref().map(|(held, _)| *held) != Some(height) {
                let Some(bytes) = self.block_bytes(height).or_else(|error| match error {
                    // Pruned while the page was read: the page ends there.
                    StoreError::Pruned { .. } => Ok(None),
                    error => Err(error),
                })?
                else {
                    break;
                };
                block = Some((height, bytes));
            }
            let Some((_, bytes)) = &block else { break };
            let start = offset as usize;
            let bytes = bytes
                .get(start..start.saturating_add(length as usize))
                .ok_or_else(|| {
                    StoreError::corrupt(what(), "its location lies outside its block")
                })?;
            let transaction: SignedTransaction =
                codec::decode("transaction", bytes, TRANSACTION_BYTES_MAX)
                    .map_err(|error| StoreError::corrupt(what(), error.to_string()))?;
            entries.push(HistoryEntry {
                height,
                index,
                hash: cairn_types::sha256(bytes),
                transaction,
            });
        }
        Ok(entries)
    }

    pub(crate) fn account(&self, address: &Address) -> Result<Option<Account>, StoreError> {
        self.backend
            .get(Column::Accounts, &address.0)?
            .map(|bytes| decode_account(address, &bytes).map(|(_, account)| account))
            .transpose()
    }

    pub(crate) fn load_state(&self) -> Result<LedgerState, StoreError> {
        let staking = self
            .backend
            .get(Column::Metadata, MetaKey::Staking.key())?
            .map(|bytes| StakingState::from_bytes(&bytes))
            .transpose()?;
        let state = self
            .load_accounts()?
            .with_staking(staking, self.latest_height());
        let expected = self.state_root();
        if state.root() != expected {
            return Err(StoreError::corrupt(
                "accounts",
                format!(
                    "their state root is {} but the latest committed state root is {expected}",
                    state.root()
                ),
            ));
        }
        Ok(state)
    }

    /// The stored accounts as a state without staking (slots must be
    /// `0..n` without gaps).
    fn load_accounts(&self) -> Result<LedgerState, StoreError> {
        let mut slots: Vec<(u64, Address, Account)> = Vec::new();
        self.backend
            .scan(Column::Accounts, &[], None, &mut |key, value| {
                if slots.len() as u64 >= ACCOUNTS_MAX {
                    return Err(StoreError::corrupt(
                        "accounts",
                        format!("more than {ACCOUNTS_MAX} accounts"),
                    ));
                }
                let address = decode_address(key)?;
                let (slot, account) = decode_account(&address, value)?;
                slots.push((slot, address, account));
                Ok(true)
            })?;
        slots.sort_unstable_by_key(|(slot, _, _)| *slot);
        if let Some((position, (slot, address, _))) = slots
            .iter()
            .enumerate()
            .find(|(position, (slot, _, _))| *slot != *position as u64)
        {
            return Err(StoreError::corrupt(
                format!("account {address}"),
                format!("it has slot {slot} where slot {position} was expected (slots must be 0..n without gaps)"),
            ));
        }
        Ok(LedgerState::from_slots(
            slots
                .into_iter()
                .map(|(_, address, account)| (address, account)),
        )?)
    }

    pub(crate) fn snapshot_base(&self) -> Height {
        *lock(&self.snapshot_base)
    }

    /// Streams the snapshot entries of the state at `height` (the latest
    /// height) from one consistent view; returns the state root.
    pub(crate) fn snapshot_entries(
        &self,
        height: Height,
        visit: &mut crate::snapshot::EntryVisitor<'_>,
    ) -> Result<Hash, StoreError> {
        let mut state_root = Hash::ZERO;
        self.backend.with_view(&mut |view| {
            let latest = view
                .get(Column::Metadata, MetaKey::LatestHeight.key())?
                .ok_or_else(|| StoreError::corrupt("metadata latest_height", "it is missing"))?;
            let latest = Height(decode_u64("metadata latest_height", &latest)?);
            if latest != height {
                return Err(StoreError::SnapshotHeightGone {
                    wanted: height,
                    latest,
                });
            }
            state_root = if height == Height::GENESIS {
                let bytes = view
                    .get(Column::Metadata, MetaKey::GenesisStateRoot.key())?
                    .ok_or_else(|| {
                        StoreError::corrupt("metadata genesis_state_root", "it is missing")
                    })?;
                decode_hash("metadata genesis_state_root", &bytes)?
            } else {
                let bytes = view
                    .get(Column::Blocks, &height_key(height))?
                    .ok_or_else(|| {
                        StoreError::corrupt(format!("block {height}"), "it is missing")
                    })?;
                decode_header(height, &bytes)?.state_root
            };
            let mut key = [0u8; 21];
            key[0] = ACCOUNT_TAG;
            view.scan(Column::Accounts, &[], None, &mut |address, value| {
                if address.len() != 20 {
                    return Err(StoreError::corrupt(
                        "account key",
                        format!("{} bytes, expected 20", address.len()),
                    ));
                }
                key[1..].copy_from_slice(address);
                visit(&key, value)?;
                Ok(true)
            })?;
            if let Some(staking) = view.get(Column::Metadata, MetaKey::Staking.key())? {
                for (index, piece) in staking.chunks(SNAPSHOT_STAKING_PIECE_BYTES_MAX).enumerate() {
                    let index = u32::try_from(index)
                        .map_err(|_| StoreError::corrupt("metadata staking", "too many pieces"))?;
                    visit(&staking_piece_key(index), piece)?;
                }
            }
            Ok(())
        })?;
        Ok(state_root)
    }

    pub(crate) fn restore_in_progress(&self) -> Result<Option<Height>, StoreError> {
        self.backend
            .get(Column::Metadata, MetaKey::RestoreInProgress.key())?
            .map(|bytes| decode_u64("metadata restore_in_progress", &bytes).map(Height))
            .transpose()
    }

    pub(crate) fn restore_begin(&self, height: Height) -> Result<(), StoreError> {
        let tip = lock(&self.tip);
        if tip.height != Height::GENESIS || self.snapshot_base() != Height::GENESIS {
            return Err(StoreError::Restore {
                reason: format!(
                    "the store already holds the chain up to height {}; state sync restores into an empty home only (`cairnd reset` to start over, or start without state sync)",
                    tip.height
                ),
            });
        }
        if height == Height::GENESIS {
            return Err(StoreError::Restore {
                reason: "a snapshot of height 0 is the genesis; nothing to restore".into(),
            });
        }
        let mut batch = self.backend.batch(256);
        batch.put(
            Column::Metadata,
            MetaKey::RestoreInProgress.key(),
            &height_key(height),
        );
        // A rare clean-up: one range tombstone per restore.
        batch.delete_range(Column::Accounts, &[], &[0xff; 21]);
        batch.delete(Column::Metadata, MetaKey::Staking.key());
        let mut end = RESTORE_STAKING_PREFIX.to_vec();
        end.extend_from_slice(&[0xff; 5]);
        batch.delete_range(Column::Metadata, RESTORE_STAKING_PREFIX, &end);
        self.backend.write(batch)?;
        *lock(&self.restore_last_key) = None;
        drop(tip);
        Ok(())
    }

    pub(crate) fn restore_chunk(&self, chunk: &[u8]) -> Result<(), StoreError> {
        if self.restore_in_progress()?.is_none() {
            return Err(StoreError::Restore {
                reason: "no restore is under way (begin one first)".into(),
            });
        }
        let mut last_key = lock(&self.restore_last_key);
        let mut batch = self.backend.batch(chunk.len() + 4096);
        let mut last = last_key.clone();
        decode_chunk(chunk, &mut |key, value| {
            if last.as_deref().is_some_and(|last| last >= key) {
                return Err(StoreError::InvalidSnapshot {
                    reason: "chunk entries do not follow the previous chunk's in key order".into(),
                });
            }
            match (key.first(), key.len()) {
                (Some(&ACCOUNT_TAG), 21) => {
                    let address = decode_address(&key[1..])?;
                    decode_account(&address, value).map_err(|error| {
                        StoreError::InvalidSnapshot {
                            reason: error.to_string(),
                        }
                    })?;
                    batch.put(Column::Accounts, &key[1..], value);
                }
                (Some(&STAKING_TAG), 5) => {
                    if value.is_empty() || value.len() > SNAPSHOT_STAKING_PIECE_BYTES_MAX {
                        return Err(StoreError::InvalidSnapshot {
                            reason: format!("a staking piece of {} bytes", value.len()),
                        });
                    }
                    let index = decode_u32("staking piece index", &key[1..])?;
                    batch.put(Column::Metadata, &restore_staking_key(index), value);
                }
                _ => {
                    return Err(StoreError::InvalidSnapshot {
                        reason: format!("an entry with an unknown key ({} bytes)", key.len()),
                    })
                }
            }
            last = Some(key.to_vec());
            Ok(())
        })?;
        self.backend.write(batch)?;
        *last_key = last;
        Ok(())
    }

    pub(crate) fn restore_finish(
        &self,
        block: &Block,
        certificate: &CommitCertificate,
        validator_set: &ValidatorSet,
    ) -> Result<LedgerState, StoreError> {
        let mut tip = lock(&self.tip);
        let height = block.header.height;
        match self.restore_in_progress()? {
            Some(restoring) if restoring == height => {}
            Some(restoring) => {
                return Err(StoreError::Restore {
                    reason: format!("the restore under way is of height {restoring}, not {height}"),
                })
            }
            None => {
                return Err(StoreError::Restore {
                    reason: "no restore is under way".into(),
                })
            }
        }
        let encoded = encode_block(block)?;
        if certificate.height != height || certificate.block_hash != encoded.hash {
            return Err(StoreError::CertificateMismatch {
                height,
                reason: format!(
                    "it decides block {} at height {}",
                    certificate.block_hash, certificate.height
                ),
            });
        }
        if validator_set.hash() != block.header.validator_set_hash {
            return Err(StoreError::Restore {
                reason: format!(
                    "the validator set given hashes to {}, the header of height {height} names {}",
                    validator_set.hash(),
                    block.header.validator_set_hash
                ),
            });
        }
        // The staking pieces, in order, without gaps.
        let mut staking_bytes: Vec<u8> = Vec::new();
        let mut pieces: Vec<Vec<u8>> = Vec::new();
        let mut end = RESTORE_STAKING_PREFIX.to_vec();
        end.extend_from_slice(&[0xff; 5]);
        self.backend.scan(
            Column::Metadata,
            RESTORE_STAKING_PREFIX,
            Some(&end),
            &mut |key, value| {
                let index = decode_u32(
                    "staking piece index",
                    key.get(RESTORE_STAKING_PREFIX.len()..).unwrap_or_default(),
                )?;
                if index as usize != pieces.len() {
                    return Err(StoreError::InvalidSnapshot {
                        reason: format!(
                            "staking piece {index} where piece {} was expected",
                            pieces.len()
                        ),
                    });
                }
                if staking_bytes.len() + value.len() > STAKING_STATE_BYTES_MAX {
                    return Err(StoreError::InvalidSnapshot {
                        reason: format!(
                            "the staking state exceeds {STAKING_STATE_BYTES_MAX} bytes"
                        ),
                    });
                }
                staking_bytes.extend_from_slice(value);
                pieces.push(key.to_vec());
                Ok(true)
            },
        )?;
        let staking = if pieces.is_empty() {
            None
        } else {
            Some(StakingState::from_bytes(&staking_bytes).map_err(|error| {
                StoreError::InvalidSnapshot {
                    reason: error.to_string(),
                }
            })?)
        };
        let state = self
            .load_accounts()
            .map_err(|error| StoreError::InvalidSnapshot {
                reason: error.to_string(),
            })?
            .with_staking(staking.clone(), height);
        if state.root() != block.header.state_root {
            return Err(StoreError::SnapshotRootMismatch {
                height,
                header: block.header.state_root,
                computed: state.root(),
            });
        }
        let key = height_key(height);
        let mut batch = self
            .backend
            .batch(encoded.bytes.len() + staking_bytes.len() + 64 * 1024);
        if let Some(staking) = &staking {
            put_staking(&mut batch, staking);
        }
        batch.put(
            Column::Metadata,
            &validator_set_key(&validator_set.hash()),
            &codec::encode(validator_set),
        );
        put_block_records(
            &mut batch,
            block,
            &encoded,
            certificate,
            self.history_enabled(),
        );
        for piece in &pieces {
            batch.delete(Column::Metadata, piece);
        }
        batch.put(Column::Metadata, MetaKey::LatestHeight.key(), &key);
        batch.put(Column::Metadata, MetaKey::SnapshotBase.key(), &key);
        // Nothing below the restored block is held: reads of those heights
        // answer `Pruned`, and peers' block sync asks someone else.
        batch.put(Column::Metadata, MetaKey::LowestHeight.key(), &key);
        batch.delete(Column::Metadata, MetaKey::RestoreInProgress.key());
        self.backend.write(batch)?;
        self.lowest.store(height.0, Ordering::Release);
        *lock(&self.snapshot_base) = height;
        *lock(&self.restore_last_key) = None;
        *tip = Tip {
            height,
            block_hash: encoded.hash,
            state_root: block.header.state_root,
        };
        Ok(state)
    }

    pub(crate) fn restore_history(
        &self,
        blocks: &[(Block, CommitCertificate)],
        validator_sets: &[ValidatorSet],
    ) -> Result<(), StoreError> {
        let bad = |reason: String| StoreError::Restore { reason };
        // No prune moves the lowest height meanwhile.
        let _prune = lock(&self.prune);
        let base = *lock(&self.snapshot_base);
        if base == Height::GENESIS {
            return Err(bad(
                "no snapshot was restored; history is kept only below one".into(),
            ));
        }
        let Some((first, _)) = blocks.first() else {
            return Ok(());
        };
        let first_height = first.header.height;
        let lowest = self.lowest_height();
        if first_height >= lowest {
            // Already held (a second call): nothing to add.
            return Ok(());
        }
        if lowest > base {
            return Err(bad(format!(
                "heights up to {lowest} were pruned since the restore at {base}; history below is no longer kept"
            )));
        }
        let lowest_header = self
            .header(lowest)?
            .ok_or_else(|| bad(format!("the lowest block held, {lowest}, is missing")))?;
        // From the top down: each block is the parent the one above names,
        // the last one the parent of the lowest block held.
        let mut expected_hash = lowest_header.parent_hash;
        let mut expected_height = lowest;
        let mut encoded_blocks = Vec::with_capacity(blocks.len());
        for (block, certificate) in blocks.iter().rev() {
            expected_height = Height(
                expected_height
                    .0
                    .checked_sub(1)
                    .ok_or_else(|| bad("the history goes below height 1".into()))?,
            );
            let height = block.header.height;
            if height != expected_height || height == Height::GENESIS {
                return Err(bad(format!(
                    "history block of height {height} where height {expected_height} was expected"
                )));
            }
            let encoded = encode_block(block)?;
            if encoded.hash != expected_hash {
                return Err(bad(format!(
                    "the history block of height {height} is {}, but the block above names {expected_hash} as its parent",
                    encoded.hash
                )));
            }
            if certificate.height != height || certificate.block_hash != encoded.hash {
                return Err(StoreError::CertificateMismatch {
                    height,
                    reason: format!(
                        "it decides block {} at height {}",
                        certificate.block_hash, certificate.height
                    ),
                });
            }
            expected_hash = block.header.parent_hash;
            encoded_blocks.push((block, encoded, certificate));
        }
        for set in validator_sets {
            let hash = set.hash();
            if !blocks
                .iter()
                .any(|(block, _)| block.header.validator_set_hash == hash)
            {
                return Err(bad(format!(
                    "validator set {hash} is named by none of the history blocks"
                )));
            }
        }
        let bytes: usize = encoded_blocks
            .iter()
            .map(|(_, encoded, _)| encoded.bytes.len() + 1024)
            .sum();
        let mut batch = self.backend.batch(bytes + 64 * 1024);
        for (block, encoded, certificate) in &encoded_blocks {
            put_block_records(
                &mut batch,
                block,
                encoded,
                certificate,
                self.history_enabled(),
            );
        }
        for set in validator_sets {
            batch.put(
                Column::Metadata,
                &validator_set_key(&set.hash()),
                &codec::encode(set),
            );
        }
        batch.put(
            Column::Metadata,
            MetaKey::LowestHeight.key(),
            &height_key(first_height),
        );
        self.backend.write(batch)?;
        self.lowest.store(first_height.0, Ordering::Release);
        Ok(())
    }

    pub(crate) fn validator_set(&self, hash: &Hash) -> Result<Option<ValidatorSet>, StoreError> {
        self.backend
            .get(Column::Metadata, &validator_set_key(hash))?
            .map(|bytes| {
                let set: ValidatorSet =
                    codec::decode("validator set", &bytes, VALIDATOR_SET_BYTES_MAX).map_err(
                        |error| {
                            StoreError::corrupt(format!("validator set {hash}"), error.to_string())
                        },
                    )?;
                if set.hash() != *hash {
                    return Err(StoreError::corrupt(
                        format!("validator set {hash}"),
                        format!("its bytes hash to {}", set.hash()),
                    ));
                }
                Ok(set)
            })
            .transpose()
    }

    pub(crate) fn wal_append(&self, height: Height, entry: &[u8]) -> Result<(), StoreError> {
        if entry.len() > WAL_ENTRY_BYTES_MAX {
            return Err(StoreError::WalEntryTooLarge {
                len: entry.len(),
                max: WAL_ENTRY_BYTES_MAX,
            });
        }
        let mut cursor = lock(&self.wal);
        let current = match *cursor {
            Some(current) if current.height == height => current,
            _ => self.wal_cursor(height)?,
        };
        let bytes = current.bytes.saturating_add(entry.len() as u64);
        if current.next_sequence >= WAL_ENTRIES_PER_HEIGHT_MAX || bytes > WAL_HEIGHT_BYTES_MAX {
            return Err(StoreError::WalFull {
                height,
                max: WAL_ENTRIES_PER_HEIGHT_MAX,
            });
        }
        let mut batch = self.backend.batch(entry.len() + 64);
        batch.put(Column::Wal, &wal_key(height, current.next_sequence), entry);
        self.backend.write_unsynced(batch)?;
        *cursor = Some(WalCursor {
            height,
            next_sequence: current.next_sequence + 1,
            bytes,
        });
        Ok(())
    }

    /// Reads where the WAL of `height` stands.
    fn wal_cursor(&self, height: Height) -> Result<WalCursor, StoreError> {
        let mut cursor = WalCursor {
            height,
            next_sequence: 0,
            bytes: 0,
        };
        self.scan_wal(height, &mut |sequence, entry| {
            cursor.next_sequence = sequence.saturating_add(1);
            cursor.bytes = cursor.bytes.saturating_add(entry.len() as u64);
        })?;
        Ok(cursor)
    }

    /// Visits the WAL entries of `height` in order, within the bounds.
    fn scan_wal(
        &self,
        height: Height,
        visit: &mut dyn FnMut(u64, &[u8]),
    ) -> Result<(), StoreError> {
        let start = wal_key(height, 0);
        let end = height.0.checked_add(1).map(|next| wal_key(Height(next), 0));
        let mut count = 0u64;
        self.backend.scan(
            Column::Wal,
            &start,
            end.as_ref().map(|end| &end[..]),
            &mut |key, value| {
                let sequence = key
                    .get(8..16)
                    .map(|bytes| decode_u64("WAL key", bytes))
                    .transpose()?
                    .ok_or_else(|| {
                        StoreError::corrupt("WAL key", format!("{} bytes, expected 16", key.len()))
                    })?;
                count += 1;
                if count > WAL_ENTRIES_PER_HEIGHT_MAX {
                    return Err(StoreError::corrupt(
                        format!("WAL of height {height}"),
                        format!("more than {WAL_ENTRIES_PER_HEIGHT_MAX} entries"),
                    ));
                }
                visit(sequence, value);
                Ok(true)
            },
        )
    }

    /// The keys of the WAL entries of the heights in `[from, to)`, at most
    /// [`WAL_ENTRIES_PER_HEIGHT_MAX`] per height on average.
    fn wal_keys(&self, from: Height, to: Height) -> Result<Vec<Vec<u8>>, StoreError> {
        let heights = to.0.saturating_sub(from.0).max(1);
        let limit = heights.saturating_mul(WAL_ENTRIES_PER_HEIGHT_MAX);
        let mut keys = Vec::new();
        self.backend.scan(
            Column::Wal,
            &wal_key(from, 0),
            Some(&wal_key(to, 0)),
            &mut |key, _| {
                keys.push(key.to_vec());
                if keys.len() as u64 > limit {
                    return Err(StoreError::corrupt(
                        "consensus WAL",
                        format!("more than {WAL_ENTRIES_PER_HEIGHT_MAX} entries per height"),
                    ));
                }
                Ok(true)
            },
        )?;
        Ok(keys)
    }

    pub(crate) fn wal_sync(&self) -> Result<(), StoreError> {
        self.backend.sync()
    }

    pub(crate) fn wal_entries(&self, height: Height) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut entries = Vec::new();
        self.scan_wal(height, &mut |_, entry| entries.push(entry.to_vec()))?;
        Ok(entries)
    }

    pub(crate) fn wal_prune_below(&self, height: Height) -> Result<(), StoreError> {
        let mut cursor = lock(&self.wal);
        let mut batch = self.backend.batch(0);
        for key in self.wal_keys(Height(0), height)? {
            batch.delete(Column::Wal, &key);
        }
        self.backend.write_unsynced(batch)?;
        if cursor.is_some_and(|cursor| cursor.height < height) {
            *cursor = None;
        }
        Ok(())
    }

    pub(crate) fn add_evidence(&self, evidence: &Evidence) -> Result<bool, StoreError> {
        let key = evidence_key(evidence.height(), &evidence.hash());
        let _serialised = lock(&self.evidence);
        if self.backend.get(Column::Evidence, &key)?.is_some() {
            return Ok(false);
        }
        let mut batch = self.backend.batch(0);
        batch.put(Column::Evidence, &key, &codec::encode(evidence));
        // Not synced: evidence is gossiped again and re-found; the next
        // synced write (a commit) makes it durable.
        self.backend.write_unsynced(batch)?;
        Ok(true)
    }

    pub(crate) fn evidence(&self) -> Result<Vec<Evidence>, StoreError> {
        let mut list = Vec::new();
        self.backend
            .scan(Column::Evidence, &[], None, &mut |_, value| {
                let evidence = codec::decode("evidence", value, EVIDENCE_BYTES_MAX)
                    .map_err(|error| StoreError::corrupt("evidence", error.to_string()))?;
                list.push(evidence);
                Ok(list.len() < EVIDENCE_LIST_MAX)
            })?;
        Ok(list)
    }

    pub(crate) fn prune_evidence_below(&self, height: Height) -> Result<(), StoreError> {
        let mut batch = self.backend.batch(0);
        batch.delete_range(
            Column::Evidence,
            &height_key(Height(0)),
            &height_key(height),
        );
        self.backend.write_unsynced(batch)
    }
}

/// Decodes the header at the front of a stored block.
fn decode_header(height: Height, bytes: &[u8]) -> Result<Header, StoreError> {
    let prefix = &bytes[..bytes.len().min(HEADER_BYTES_MAX)];
    let (header, _): (Header, _) = postcard::take_from_bytes(prefix).map_err(|error| {
        StoreError::corrupt(format!("header of block {height}"), error.to_string())
    })?;
    if header.height != height {
        return Err(StoreError::corrupt(
            format!("block {height}"),
            format!("it holds the block of height {}", header.height),
        ));
    }
    Ok(header)
}

/// Writes a new store: metadata and the genesis accounts, atomically.
fn initialize<B: Backend>(
    backend: &B,
    identity: &ChainIdentity,
    genesis: &LedgerState,
) -> Result<(), StoreError> {
    let mut batch = backend.batch(genesis.len() * 56 + 1024);
    for (slot, address, account) in genesis.iter() {
        batch.put(
            Column::Accounts,
            &address.0,
            &encode_account(slot, &account),
        );
    }
    batch.put(
        Column::Metadata,
        MetaKey::ChainId.key(),
        identity.chain_id.as_str().as_bytes(),
    );
    batch.put(
        Column::Metadata,
        MetaKey::GenesisHash.key(),
        &identity.genesis_hash.0,
    );
    batch.put(
        Column::Metadata,
        MetaKey::GenesisStateRoot.key(),
        &genesis.root().0,
    );
    batch.put(
        Column::Metadata,
        MetaKey::LatestHeight.key(),
        &height_key(Height::GENESIS),
    );
    batch.put(
        Column::Metadata,
        MetaKey::FormatVersion.key(),
        &FORMAT_VERSION.to_be_bytes(),
    );
    if let Some(staking) = genesis.staking() {
        put_staking(&mut batch, staking);
    }
    batch.put(
        Column::Metadata,
        MetaKey::HistoryFrom.key(),
        &height_key(Height(1)),
    );
    backend.write(batch)
}

/// [`MetaKey::HistoryFrom`] while the history index is switched off.
const HISTORY_OFF: u64 = u64::MAX;

/// Reads the first height of the history index; a store written before
/// the index (no such key) gets the next height, written now.
fn load_history_from<B: Backend>(backend: &B, tip: Height) -> Result<Height, StoreError> {
    if let Some(bytes) = backend.get(Column::Metadata, MetaKey::HistoryFrom.key())? {
        return Ok(Height(decode_u64("metadata history_from", &bytes)?));
    }
    let from = Height(tip.0.saturating_add(1));
    let mut batch = backend.batch(0);
    batch.put(
        Column::Metadata,
        MetaKey::HistoryFrom.key(),
        &height_key(from),
    );
    backend.write(batch)?;
    Ok(from)
}

/// Writes the staking state and the two validator sets it holds (under
/// their hashes; writing a set again is harmless).
/// Puts a committed block's records: the block, its hash and certificate,
/// and its transactions' locations. Keys go into the batch sorted: RocksDB
/// inserts a batch into its memtable skip lists in order, and sorted keys
/// let each insert reuse the previous one's search path (measured: a third
/// off the commit of a 5,000-transfer block).
fn put_block_records<T: Batch>(
    batch: &mut T,
    block: &Block,
    encoded: &crate::format::EncodedBlock,
    certificate: &CommitCertificate,
    history: bool,
) {
    let height = block.header.height;
    let key = height_key(height);
    batch.put(Column::Blocks, &key, &encoded.bytes);
    batch.put(Column::BlockHashes, &encoded.hash.0, &key);
    batch.put(Column::Certificates, &key, &codec::encode(certificate));
    let mut locations: Vec<([u8; 32], [u8; 20])> = encoded
        .transactions
        .iter()
        .enumerate()
        .map(|(index, (hash, offset, length))| {
            let location = TransactionLocation {
                height,
                // BLOCK_TRANSACTIONS_MAX fits in a u32; blocks are checked.
                index: u32::try_from(index).unwrap_or(u32::MAX),
                offset: *offset,
                length: *length,
            };
            (hash.0, location.encode())
        })
        .collect();
    locations.sort_unstable_by_key(|(hash, _)| *hash);
    for (hash, location) in &locations {
        batch.put(Column::Transactions, hash, location);
    }
    if !history {
        return;
    }
    // The history index, sorted too (by address, then height and index).
    let mut history: Vec<([u8; 32], [u8; 8])> = history_entries(block, encoded).collect();
    history.sort_unstable_by_key(|(key, _)| *key);
    for (key, value) in &history {
        batch.put(Column::History, key, value);
    }
}

/// The history index entries of a block: per transaction, one per account
/// it touches ([`touched_accounts`]).
fn history_entries<'a>(
    block: &'a Block,
    encoded: &'a crate::format::EncodedBlock,
) -> impl Iterator<Item = ([u8; 32], [u8; 8])> + 'a {
    let height = block.header.height;
    block
        .transactions
        .iter()
        .zip(&encoded.transactions)
        .enumerate()
        .flat_map(move |(index, (transaction, (_, offset, length)))| {
            // BLOCK_TRANSACTIONS_MAX fits in a u32; blocks are checked.
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            let (accounts, count) = touched_accounts(&transaction.transaction);
            let value = encode_history_value(*offset, *length);
            accounts
                .into_iter()
                .take(count)
                .map(move |address| (history_key(&address, height, index), value))
        })
}

fn put_staking<T: Batch>(batch: &mut T, staking: &StakingState) {
    batch.put(
        Column::Metadata,
        MetaKey::Staking.key(),
        &staking.to_bytes(),
    );
    for set in [staking.current_set(), staking.next_set()] {
        batch.put(
            Column::Metadata,
            &validator_set_key(&set.hash()),
            &codec::encode(set),
        );
    }
}

/// Reads a metadata value that must be there.
fn meta<B: Backend>(backend: &B, key: MetaKey) -> Result<Vec<u8>, StoreError> {
    backend.get(Column::Metadata, key.key())?.ok_or_else(|| {
        StoreError::corrupt(
            format!("metadata {:?}", String::from_utf8_lossy(key.key())),
            "it is missing",
        )
    })
}

/// Checks that the store was written by this format for this chain.
fn check_identity<B: Backend>(
    backend: &B,
    identity: &ChainIdentity,
    version: &[u8],
) -> Result<(), StoreError> {
    let found = decode_u32("metadata format_version", version)?;
    if found != FORMAT_VERSION {
        return Err(StoreError::UnsupportedFormat {
            found,
            supported: FORMAT_VERSION,
        });
    }
    let stored = meta(backend, MetaKey::ChainId)?;
    let stored = String::from_utf8_lossy(&stored);
    if stored != identity.chain_id.as_str() {
        return Err(StoreError::ChainMismatch {
            stored: stored.into_owned(),
            expected: identity.chain_id.to_string(),
        });
    }
    let stored = decode_hash(
        "metadata genesis_hash",
        &meta(backend, MetaKey::GenesisHash)?,
    )?;
    if stored != identity.genesis_hash {
        return Err(StoreError::GenesisMismatch {
            stored,
            expected: identity.genesis_hash,
        });
    }
    Ok(())
}

/// Reads the lowest height held (1 when nothing was pruned).
fn load_lowest<B: Backend>(backend: &B, tip: Height) -> Result<Height, StoreError> {
    let Some(bytes) = backend.get(Column::Metadata, MetaKey::LowestHeight.key())? else {
        return Ok(Height(1));
    };
    let lowest = Height(decode_u64("metadata lowest_height", &bytes)?);
    if lowest.0 == 0 || lowest.0 > tip.0.saturating_add(1) {
        return Err(StoreError::corrupt(
            "metadata lowest_height",
            format!("it is {lowest} but the latest height is {tip}"),
        ));
    }
    Ok(lowest)
}

/// Reads the latest committed block's height, hash and state root.
fn load_tip<B: Backend>(backend: &B, identity: &ChainIdentity) -> Result<Tip, StoreError> {
    let height = Height(decode_u64(
        "metadata latest_height",
        &meta(backend, MetaKey::LatestHeight)?,
    )?);
    if height == Height::GENESIS {
        let state_root = decode_hash(
            "metadata genesis_state_root",
            &meta(backend, MetaKey::GenesisStateRoot)?,
        )?;
        return Ok(Tip {
            height,
            block_hash: identity.genesis_hash,
            state_root,
        });
    }
    let bytes = backend
        .get(Column::Blocks, &height_key(height))?
        .ok_or_else(|| {
            StoreError::corrupt(
                "metadata latest_height",
                format!("it is {height} but there is no block at that height"),
            )
        })?;
    let header = decode_header(height, &bytes)?;
    Ok(Tip {
        height,
        block_hash: header.hash(),
        state_root: header.state_root,
    })
}

/// Implements [`crate::Store`] for a wrapper holding an `engine` field.
macro_rules! delegate_store {
    ($type:ty) => {
        impl $crate::Store for $type {
            fn identity(&self) -> &$crate::ChainIdentity {
                self.engine.identity()
            }
            fn latest_height(&self) -> cairn_types::Height {
                self.engine.latest_height()
            }
            fn latest_block_hash(&self) -> cairn_types::Hash {
                self.engine.latest_block_hash()
            }
            fn state_root(&self) -> cairn_types::Hash {
                self.engine.state_root()
            }
            fn commit_block(
                &self,
                block: &cairn_types::Block,
                certificate: &cairn_types::CommitCertificate,
                outcome: &cairn_state::ExecutionOutcome,
            ) -> Result<(), $crate::StoreError> {
                self.engine.commit_block(block, certificate, outcome)
            }
            fn commit_block_unsynced(
                &self,
                block: &cairn_types::Block,
                certificate: &cairn_types::CommitCertificate,
                outcome: &cairn_state::ExecutionOutcome,
            ) -> Result<(), $crate::StoreError> {
                self.engine
                    .commit_block_unsynced(block, certificate, outcome)
            }
            fn block(
                &self,
                height: cairn_types::Height,
            ) -> Result<Option<cairn_types::Block>, $crate::StoreError> {
                self.engine.block(height)
            }
            fn block_bytes(
                &self,
                height: cairn_types::Height,
            ) -> Result<Option<Vec<u8>>, $crate::StoreError> {
                self.engine.block_bytes(height)
            }
            fn header(
                &self,
                height: cairn_types::Height,
            ) -> Result<Option<cairn_types::Header>, $crate::StoreError> {
                self.engine.header(height)
            }
            fn block_height(
                &self,
                hash: &cairn_types::Hash,
            ) -> Result<Option<cairn_types::Height>, $crate::StoreError> {
                self.engine.block_height(hash)
            }
            fn block_by_hash(
                &self,
                hash: &cairn_types::Hash,
            ) -> Result<Option<cairn_types::Block>, $crate::StoreError> {
                self.engine.block_by_hash(hash)
            }
            fn certificate(
                &self,
                height: cairn_types::Height,
            ) -> Result<Option<cairn_types::CommitCertificate>, $crate::StoreError> {
                self.engine.certificate(height)
            }
            fn transaction(
                &self,
                hash: &cairn_types::Hash,
            ) -> Result<Option<$crate::TransactionRecord>, $crate::StoreError> {
                self.engine.transaction(hash)
            }
            fn account(
                &self,
                address: &cairn_types::Address,
            ) -> Result<Option<cairn_state::Account>, $crate::StoreError> {
                self.engine.account(address)
            }
            fn account_history(
                &self,
                address: &cairn_types::Address,
                before: Option<(cairn_types::Height, u32)>,
                limit: usize,
            ) -> Result<Vec<$crate::HistoryEntry>, $crate::StoreError> {
                self.engine.account_history(address, before, limit)
            }
            fn history_lowest_height(&self) -> cairn_types::Height {
                self.engine.history_lowest_height()
            }
            fn set_history_index(&self, enabled: bool) -> Result<(), $crate::StoreError> {
                self.engine.set_history_index(enabled)
            }
            fn validator_set(
                &self,
                hash: &cairn_types::Hash,
            ) -> Result<Option<cairn_types::ValidatorSet>, $crate::StoreError> {
                self.engine.validator_set(hash)
            }
            fn load_state(&self) -> Result<cairn_state::LedgerState, $crate::StoreError> {
                self.engine.load_state()
            }
            fn wal_append(
                &self,
                height: cairn_types::Height,
                entry: &[u8],
            ) -> Result<(), $crate::StoreError> {
                self.engine.wal_append(height, entry)
            }
            fn wal_sync(&self) -> Result<(), $crate::StoreError> {
                self.engine.wal_sync()
            }
            fn wal_entries(
                &self,
                height: cairn_types::Height,
            ) -> Result<Vec<Vec<u8>>, $crate::StoreError> {
                self.engine.wal_entries(height)
            }
            fn wal_prune_below(
                &self,
                height: cairn_types::Height,
            ) -> Result<(), $crate::StoreError> {
                self.engine.wal_prune_below(height)
            }
            fn add_evidence(
                &self,
                evidence: &cairn_types::Evidence,
            ) -> Result<bool, $crate::StoreError> {
                self.engine.add_evidence(evidence)
            }
            fn evidence(&self) -> Result<Vec<cairn_types::Evidence>, $crate::StoreError> {
                self.engine.evidence()
            }
            fn prune_evidence_below(
                &self,
                height: cairn_types::Height,
            ) -> Result<(), $crate::StoreError> {
                self.engine.prune_evidence_below(height)
            }
            fn snapshot_base(&self) -> cairn_types::Height {
                self.engine.snapshot_base()
            }
            fn snapshot_entries(
                &self,
                height: cairn_types::Height,
                visit: &mut $crate::snapshot::EntryVisitor<'_>,
            ) -> Result<cairn_types::Hash, $crate::StoreError> {
                self.engine.snapshot_entries(height, visit)
            }
            fn restore_in_progress(
                &self,
            ) -> Result<Option<cairn_types::Height>, $crate::StoreError> {
                self.engine.restore_in_progress()
            }
            fn restore_begin(&self, height: cairn_types::Height) -> Result<(), $crate::StoreError> {
                self.engine.restore_begin(height)
            }
            fn restore_chunk(&self, chunk: &[u8]) -> Result<(), $crate::StoreError> {
                self.engine.restore_chunk(chunk)
            }
            fn restore_finish(
                &self,
                block: &cairn_types::Block,
                certificate: &cairn_types::CommitCertificate,
                validator_set: &cairn_types::ValidatorSet,
            ) -> Result<cairn_state::LedgerState, $crate::StoreError> {
                self.engine
                    .restore_finish(block, certificate, validator_set)
            }
            fn restore_history(
                &self,
                blocks: &[(cairn_types::Block, cairn_types::CommitCertificate)],
                validator_sets: &[cairn_types::ValidatorSet],
            ) -> Result<(), $crate::StoreError> {
                self.engine.restore_history(blocks, validator_sets)
            }
            fn lowest_height(&self) -> cairn_types::Height {
                self.engine.lowest_height()
            }
            fn prune_blocks_below(
                &self,
                below: cairn_types::Height,
            ) -> Result<cairn_types::Height, $crate::StoreError> {
                self.engine.prune_blocks_below(below)
            }
            fn compact_pruned(&self) -> Result<(), $crate::StoreError> {
                self.engine.compact_pruned()
            }
            fn scrub(
                &self,
                from: &$crate::ScrubPosition,
                bytes_max: usize,
            ) -> Result<$crate::ScrubStep, $crate::StoreError> {
                self.engine.scrub(from, bytes_max)
            }
            fn compact_all(&self) -> Result<(), $crate::StoreError> {
                self.engine.compact_all()
            }
            fn damage_repair(
                &self,
                damage: &$crate::StoreError,
            ) -> Result<$crate::DamageRepair, $crate::StoreError> {
                self.engine.damage_repair(damage)
            }
            fn repair_heights(
                &self,
                damaged: &$crate::DamagedHeights,
                records: &[(cairn_types::Block, cairn_types::CommitCertificate)],
            ) -> Result<(), $crate::StoreError> {
                self.engine.repair_heights(damaged, records)
            }
            fn repair_accounts(
                &self,
                damaged: &$crate::DamagedAccounts,
                state: &cairn_state::LedgerState,
            ) -> Result<(), $crate::StoreError> {
                self.engine.repair_accounts(damaged, state)
            }
        }
    };
}
pub(crate) use delegate_store;
