//! The contract of [`Store`], run against both implementations: the same
//! tests, through a small harness that opens, reopens and corrupts each.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::PathBuf;

use cairn_state::LedgerState;
use cairn_store::{
    ChainIdentity, Column, MemoryDisk, MemoryStore, RocksStore, Store, StoreError, FORMAT_VERSION,
    HISTORY_PAGE_MAX, PRUNE_KEEP_BLOCKS_MIN, WAL_ENTRY_BYTES_MAX,
};
use cairn_types::{
    sha256, Address, ChainId, Evidence, Hash, Height, Keypair, Round, ValidatorIndex, Vote,
    VoteType,
};
use common::{check_consistency, TestChain};

/// Opens and damages one kind of store.
trait Harness {
    type S: Store;
    fn open(
        &mut self,
        identity: &ChainIdentity,
        genesis: &LedgerState,
    ) -> Result<Self::S, StoreError>;
    /// Overwrites a raw value (the store must be closed).
    fn corrupt(&mut self, column: Column, key: &[u8], value: &[u8]);
}

struct Rocks {
    directory: tempfile::TempDir,
}

impl Rocks {
    fn new() -> Rocks {
        Rocks {
            directory: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> PathBuf {
        self.directory.path().join("store")
    }
}

impl Harness for Rocks {
    type S = RocksStore;

    fn open(
        &mut self,
        identity: &ChainIdentity,
        genesis: &LedgerState,
    ) -> Result<RocksStore, StoreError> {
        RocksStore::open(&self.path(), identity, genesis)
    }

    fn corrupt(&mut self, column: Column, key: &[u8], value: &[u8]) {
        let names: Vec<&str> = Column::ALL.iter().map(|column| column.name()).collect();
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), self.path(), names).unwrap();
        db.put_cf(db.cf_handle(column.name()).unwrap(), key, value)
            .unwrap();
    }
}

struct Memory {
    disk: MemoryDisk,
}

impl Harness for Memory {
    type S = MemoryStore;

    fn open(
        &mut self,
        identity: &ChainIdentity,
        genesis: &LedgerState,
    ) -> Result<MemoryStore, StoreError> {
        // Opening again models a restart: the previous handle dies.
        self.disk.crash();
        MemoryStore::open(&self.disk, identity, genesis)
    }

    fn corrupt(&mut self, column: Column, key: &[u8], value: &[u8]) {
        self.disk.corrupt(column, key, value);
    }
}

fn open<H: Harness>(harness: &mut H, chain: &TestChain) -> H::S {
    harness.open(&chain.identity, &chain.genesis).unwrap()
}

fn a_fresh_store_holds_the_genesis<H: Harness>(mut harness: H) {
    let chain = TestChain::new("contract", 8, 4);
    let store = open(&mut harness, &chain);
    assert_eq!(store.identity(), &chain.identity);
    assert_eq!(store.latest_height(), Height::GENESIS);
    assert_eq!(store.latest_block_hash(), chain.identity.genesis_hash);
    assert_eq!(store.state_root(), chain.genesis.root());
    assert_eq!(store.load_state().unwrap().root(), chain.genesis.root());
    let address = chain.keys[3].address();
    assert_eq!(
        store.account(&address).unwrap(),
        chain.genesis.account(&address)
    );
    assert_eq!(store.account(&Address([1; 20])).unwrap(), None);
    assert_eq!(store.block(Height(1)).unwrap(), None);
    assert_eq!(store.block_by_hash(&Hash([1; 32])).unwrap(), None);
    assert_eq!(store.transaction(&Hash([1; 32])).unwrap(), None);
    assert_eq!(store.certificate(Height(1)).unwrap(), None);
    check_consistency(&store, &chain.genesis);
}

fn committed_blocks_are_readable_every_way<H: Harness>(mut harness: H) {
    let mut chain = TestChain::new("contract", 16, 4);
    let store = open(&mut harness, &chain);
    let mut committed = Vec::new();
    for count in [10, 0, 25, 7] {
        let (block, certificate, outcome) = chain.next_block(count);
        store.commit_block(&block, &certificate, &outcome).unwrap();
        assert_eq!(store.latest_height(), block.height());
        assert_eq!(store.latest_block_hash(), block.hash());
        assert_eq!(store.state_root(), block.header.state_root);
        committed.push((block, certificate));
    }
    for (block, certificate) in &committed {
        let height = block.height();
        assert_eq!(store.block(height).unwrap().as_ref(), Some(block));
        assert_eq!(
            store.block_by_hash(&block.hash()).unwrap().as_ref(),
            Some(block)
        );
        assert_eq!(store.block_bytes(height).unwrap(), Some(block.to_bytes()));
        assert_eq!(store.header(height).unwrap().as_ref(), Some(&block.header));
        assert_eq!(
            store.certificate(height).unwrap().as_ref(),
            Some(certificate)
        );
        for (index, transaction) in block.transactions.iter().enumerate() {
            let record = store.transaction(&transaction.hash()).unwrap().unwrap();
            assert_eq!((record.height, record.index as usize), (height, index));
            assert_eq!(&record.transaction, transaction);
        }
    }
    for (_, address, account) in chain.state.iter() {
        assert_eq!(store.account(&address).unwrap(), Some(account));
    }
    assert_eq!(store.load_state().unwrap().root(), chain.state.root());
    check_consistency(&store, &chain.genesis);

    // Everything survives a restart.
    drop(store);
    let store = open(&mut harness, &chain);
    assert_eq!(store.latest_height(), Height(4));
    check_consistency(&store, &chain.genesis);
    // And the chain goes on from there.
    let (block, certificate, outcome) = chain.next_block(5);
    store.commit_block(&block, &certificate, &outcome).unwrap();
    check_consistency(&store, &chain.genesis);
}

fn commits_out_of_order_are_refused<H: Harness>(mut harness: H) {
    let mut chain = TestChain::new("contract", 8, 0);
    let store = open(&mut harness, &chain);
    let (first, first_certificate, first_outcome) = chain.next_block(3);
    let (second, second_certificate, second_outcome) = chain.next_block(3);

    let error = store
        .commit_block(&second, &second_certificate, &second_outcome)
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::NotNextHeight {
                expected: Height(1),
                got: Height(2)
            }
        ),
        "{error}"
    );

    let error = store
        .commit_block(&first, &second_certificate, &first_outcome)
        .unwrap_err();
    assert!(
        matches!(error, StoreError::CertificateMismatch { .. }),
        "{error}"
    );

    let mut orphan = first.clone();
    orphan.header.parent_hash = Hash([9; 32]);
    let error = store
        .commit_block(&orphan, &first_certificate, &first_outcome)
        .unwrap_err();
    assert!(
        matches!(error, StoreError::ParentMismatch { .. }),
        "{error}"
    );

    let error = store
        .commit_block(&first, &first_certificate, &second_outcome)
        .unwrap_err();
    assert!(
        matches!(error, StoreError::OutcomeMismatch { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("state root"), "{error}");

    assert_eq!(store.latest_height(), Height::GENESIS);
    check_consistency(&store, &chain.genesis);
    store
        .commit_block(&first, &first_certificate, &first_outcome)
        .unwrap();
    store
        .commit_block(&second, &second_certificate, &second_outcome)
        .unwrap();
    let error = store
        .commit_block(&second, &second_certificate, &second_outcome)
        .unwrap_err();
    assert!(matches!(error, StoreError::NotNextHeight { .. }), "{error}");
    check_consistency(&store, &chain.genesis);
}

fn another_chain_or_genesis_is_refused<H: Harness>(mut harness: H) {
    let chain = TestChain::new("contract", 4, 0);
    drop(open(&mut harness, &chain));

    let other_chain = ChainIdentity {
        chain_id: ChainId::new("other-chain").unwrap(),
        ..chain.identity.clone()
    };
    let error = harness.open(&other_chain, &chain.genesis).err().unwrap();
    assert!(matches!(error, StoreError::ChainMismatch { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("contract") && message.contains("other-chain"),
        "{message}"
    );

    let other_genesis = ChainIdentity {
        genesis_hash: Hash([7; 32]),
        ..chain.identity.clone()
    };
    let error = harness.open(&other_genesis, &chain.genesis).err().unwrap();
    let message = error.to_string();
    assert!(
        matches!(error, StoreError::GenesisMismatch { .. }),
        "{error}"
    );
    assert!(
        message.contains(&chain.identity.genesis_hash.to_hex())
            && message.contains(&Hash([7; 32]).to_hex()),
        "{message}"
    );

    harness.corrupt(
        Column::Metadata,
        b"format_version",
        &(FORMAT_VERSION + 1).to_be_bytes(),
    );
    let error = harness.open(&chain.identity, &chain.genesis).err().unwrap();
    assert!(
        matches!(error, StoreError::UnsupportedFormat { found, supported } if found == FORMAT_VERSION + 1 && supported == FORMAT_VERSION),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("version {}", FORMAT_VERSION + 1)),
        "{message}"
    );
    assert!(
        message.contains(&format!("version {FORMAT_VERSION}")),
        "{message}"
    );
}

fn corrupt_values_are_errors_not_panics<H: Harness>(mut harness: H) {
    let mut chain = TestChain::new("contract", 8, 0);
    let store = open(&mut harness, &chain);
    let (block, certificate, outcome) = chain.next_block(4);
    store.commit_block(&block, &certificate, &outcome).unwrap();
    let transaction = block.transactions[0].hash();
    let account = chain.keys[0].address();
    drop(store);

    harness.corrupt(Column::Accounts, &account.0, b"short");
    harness.corrupt(Column::Certificates, &1u64.to_be_bytes(), &[0xff; 40]);
    harness.corrupt(Column::Transactions, &transaction.0, &[0; 20]);
    let store = open(&mut harness, &chain);
    let corrupt = |error: StoreError| {
        assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
        assert!(error.to_string().contains("corrupt"), "{error}");
    };
    corrupt(store.account(&account).unwrap_err());
    corrupt(store.load_state().unwrap_err());
    corrupt(store.certificate(Height(1)).unwrap_err());
    corrupt(store.transaction(&transaction).unwrap_err());
    drop(store);

    // A damaged latest block makes the store refuse to open.
    harness.corrupt(Column::Blocks, &1u64.to_be_bytes(), &[1, 2, 3]);
    corrupt(harness.open(&chain.identity, &chain.genesis).err().unwrap());
}

fn the_wal_keeps_entries_in_order<H: Harness>(mut harness: H) {
    let chain = TestChain::new("contract", 2, 0);
    let store = open(&mut harness, &chain);
    assert!(store.wal_entries(Height(1)).unwrap().is_empty());
    for entry in [&b"propose"[..], b"prevote", b""] {
        store.wal_append(Height(1), entry).unwrap();
    }
    store.wal_append(Height(2), b"two").unwrap();
    store.wal_append(Height(1), b"late").unwrap();
    let expected: Vec<Vec<u8>> = vec![
        b"propose".to_vec(),
        b"prevote".to_vec(),
        Vec::new(),
        b"late".to_vec(),
    ];
    assert_eq!(store.wal_entries(Height(1)).unwrap(), expected);
    store.wal_sync().unwrap();
    drop(store);

    let store = open(&mut harness, &chain);
    assert_eq!(store.wal_entries(Height(1)).unwrap(), expected);
    store.wal_append(Height(2), b"three").unwrap();
    assert_eq!(
        store.wal_entries(Height(2)).unwrap(),
        vec![b"two".to_vec(), b"three".to_vec()]
    );
    store.wal_append(Height(u64::MAX), b"top").unwrap();
    assert_eq!(
        store.wal_entries(Height(u64::MAX)).unwrap(),
        vec![b"top".to_vec()]
    );

    store.wal_prune_below(Height(2)).unwrap();
    assert!(store.wal_entries(Height(1)).unwrap().is_empty());
    assert_eq!(store.wal_entries(Height(2)).unwrap().len(), 2);
    store.wal_prune_below(Height(0)).unwrap();
    assert_eq!(store.wal_entries(Height(2)).unwrap().len(), 2);

    // Committing height 1 deletes its WAL (appended again here), and
    // leaves the next height's alone.
    store.wal_append(Height(1), b"vote one").unwrap();
    let mut chain = chain;
    let (block, certificate, outcome) = chain.next_block(1);
    store.commit_block(&block, &certificate, &outcome).unwrap();
    assert!(store.wal_entries(Height(1)).unwrap().is_empty());
    assert_eq!(store.wal_entries(Height(2)).unwrap().len(), 2);
    store.wal_append(Height(2), b"after the commit").unwrap();
    assert_eq!(store.wal_entries(Height(2)).unwrap().len(), 3);

    let error = store
        .wal_append(Height(3), &vec![0; WAL_ENTRY_BYTES_MAX + 1])
        .unwrap_err();
    assert!(
        matches!(error, StoreError::WalEntryTooLarge { .. }),
        "{error}"
    );
}

fn evidence(height: u64, validator: u32) -> Evidence {
    let chain_id = ChainId::new("contract").unwrap();
    let key = Keypair::from_seed(&[validator as u8; 32]);
    let vote = |hash: Option<Hash>| {
        Vote::new_signed(
            &chain_id,
            VoteType::Prevote,
            Height(height),
            Round(0),
            hash,
            ValidatorIndex(validator),
            &key,
        )
    };
    Evidence::duplicate_vote(vote(None), vote(Some(sha256(b"x")))).unwrap()
}

fn evidence_is_kept_once_and_pruned<H: Harness>(mut harness: H) {
    let chain = TestChain::new("contract", 2, 0);
    let store = open(&mut harness, &chain);
    assert!(store.evidence().unwrap().is_empty());
    assert!(store.add_evidence(&evidence(5, 1)).unwrap());
    assert!(store.add_evidence(&evidence(3, 2)).unwrap());
    assert!(!store.add_evidence(&evidence(5, 1)).unwrap());
    // Evidence is written unsynced; the next sync (a commit, a WAL sync)
    // makes it durable.
    store.wal_sync().unwrap();
    drop(store);
    let store = open(&mut harness, &chain);
    assert_eq!(
        store.evidence().unwrap(),
        vec![evidence(3, 2), evidence(5, 1)]
    );
    store.prune_evidence_below(Height(4)).unwrap();
    assert_eq!(store.evidence().unwrap(), vec![evidence(5, 1)]);
}

/// Pruning removes blocks, certificates and both indexes of the heights
/// below the new lowest height, in bounded batches, keeps the lowest height
/// across a restart, never touches the latest [`PRUNE_KEEP_BLOCKS_MIN`]
/// heights, and answers reads of pruned heights with `Pruned`.
fn pruning_drops_old_heights_and_keeps_the_window<H: Harness>(mut harness: H) {
    let mut chain = TestChain::new("contract", 16, 4);
    let store = open(&mut harness, &chain);
    assert_eq!(store.lowest_height(), Height(1));
    let mut committed = Vec::new();
    let tip = PRUNE_KEEP_BLOCKS_MIN + 40;
    for height in 1..=tip {
        // Most blocks small, a few large enough that one prune batch
        // cannot take them all.
        let count = if height % 20 == 3 { 600 } else { 2 };
        let (block, certificate, outcome) = chain.next_block(count);
        store.commit_block(&block, &certificate, &outcome).unwrap();
        committed.push((block, certificate));
    }
    // Nothing to prune below 1; a prune into the window stops at its edge.
    assert_eq!(store.prune_blocks_below(Height(1)).unwrap(), Height(1));
    let edge = tip + 1 - PRUNE_KEEP_BLOCKS_MIN;
    // First only the lowest ten heights, then in batches of at most
    // PRUNE_BATCH_KEYS_MAX keys up to the window's edge.
    let mut lowest = store.prune_blocks_below(Height(11)).unwrap();
    assert_eq!(lowest, Height(11));
    assert!(matches!(
        store.block(Height(10)),
        Err(StoreError::Pruned { .. })
    ));
    assert!(store.block(Height(11)).unwrap().is_some());
    while lowest.0 < edge {
        let next = store.prune_blocks_below(Height(tip)).unwrap();
        assert!(next > lowest, "a prune call made no progress at {lowest}");
        lowest = next;
    }
    assert_eq!(lowest, Height(edge));
    assert_eq!(store.prune_blocks_below(Height(u64::MAX)).unwrap(), lowest);

    let check = |store: &H::S| {
        assert_eq!(store.lowest_height(), lowest);
        assert_eq!(store.latest_height(), Height(tip));
        for (block, certificate) in &committed {
            let height = block.height();
            if height < lowest {
                let pruned = |result: Result<(), StoreError>| match result {
                    Err(StoreError::Pruned {
                        height: asked,
                        lowest: held,
                    }) => assert_eq!((asked, held), (height, lowest)),
                    other => panic!("height {height}: {other:?}"),
                };
                pruned(store.block(height).map(drop));
                pruned(store.block_bytes(height).map(drop));
                pruned(store.header(height).map(drop));
                pruned(store.certificate(height).map(drop));
                assert_eq!(store.block_by_hash(&block.hash()).unwrap(), None);
                assert_eq!(store.block_height(&block.hash()).unwrap(), None);
                for transaction in &block.transactions {
                    assert_eq!(store.transaction(&transaction.hash()).unwrap(), None);
                }
            } else {
                assert_eq!(store.block(height).unwrap().as_ref(), Some(block));
                assert_eq!(
                    store.block_by_hash(&block.hash()).unwrap().as_ref(),
                    Some(block)
                );
                assert_eq!(
                    store.certificate(height).unwrap().as_ref(),
                    Some(certificate)
                );
                for (index, transaction) in block.transactions.iter().enumerate() {
                    let record = store.transaction(&transaction.hash()).unwrap().unwrap();
                    assert_eq!((record.height, record.index as usize), (height, index));
                }
            }
        }
        assert_eq!(store.load_state().unwrap().root(), chain.state.root());
        // The genesis and heights above the tip are not "pruned".
        assert_eq!(store.block(Height(0)).unwrap(), None);
        assert_eq!(store.block(Height(tip + 1)).unwrap(), None);
    };
    check(&store);
    store.compact_pruned().unwrap();
    check(&store);
    // A restart keeps the lowest height (a synced commit made it durable).
    let (block, certificate, outcome) = chain.next_block(3);
    store.commit_block(&block, &certificate, &outcome).unwrap();
    committed.push((block, certificate));
    drop(store);
    let store = open(&mut harness, &chain);
    let tip = tip + 1;
    assert_eq!(store.latest_height(), Height(tip));
    assert_eq!(store.lowest_height(), lowest);
    for (block, _) in &committed {
        if block.height() >= lowest {
            assert_eq!(store.block(block.height()).unwrap().as_ref(), Some(block));
        } else {
            assert!(store.block(block.height()).is_err());
        }
    }
    // One more height may go now that the tip moved, and no more.
    assert_eq!(
        store.prune_blocks_below(Height(u64::MAX)).unwrap(),
        Height(lowest.0 + 1)
    );
}

/// An account's history as the blocks say it should be, newest first:
/// (height, index, hash) of every transaction it sent or received (a
/// transfer), from `lowest` up.
fn expected_history(
    blocks: &[cairn_types::Block],
    address: &Address,
    lowest: Height,
) -> Vec<(Height, u32, Hash)> {
    let mut list = Vec::new();
    for block in blocks.iter().filter(|block| block.height() >= lowest) {
        for (index, signed) in block.transactions.iter().enumerate() {
            let transaction = &signed.transaction;
            if transaction.sender_address() == *address
                || (transaction.is_transfer() && transaction.recipient == *address)
            {
                list.push((block.height(), index as u32, signed.hash()));
            }
        }
    }
    list.reverse();
    list
}

/// Reads an account's whole history in pages of `page`, following each
/// page's last position as the next one's `before`.
fn read_history(store: &dyn Store, address: &Address, page: usize) -> Vec<(Height, u32, Hash)> {
    let mut all = Vec::new();
    let mut before = None;
    for _ in 0..10_000 {
        let entries = store.account_history(address, before, page).unwrap();
        assert!(entries.len() <= page.clamp(1, HISTORY_PAGE_MAX));
        let Some(last) = entries.last() else {
            return all;
        };
        before = Some((last.height, last.index));
        for entry in &entries {
            assert_eq!(entry.hash, entry.transaction.hash());
            all.push((entry.height, entry.index, entry.hash));
        }
    }
    panic!("the history of {address} never ended");
}

/// The history index: every transaction an account sent or received, newest
/// first, complete across pages of any size and many blocks, bounded per
/// page; pruning removes the entries of pruned heights and a position below
/// the lowest height answers `Pruned`; it survives a restart.
fn account_history_pages_are_complete_ordered_and_pruned<H: Harness>(mut harness: H) {
    let mut chain = TestChain::new("contract", 8, 2);
    let store = open(&mut harness, &chain);
    let mut blocks = Vec::new();
    let tip = PRUNE_KEEP_BLOCKS_MIN + 20;
    for height in 1..=tip {
        let count = if height % 10 == 0 { 0 } else { 5 };
        let (block, certificate, outcome) = chain.next_block(count);
        store.commit_block(&block, &certificate, &outcome).unwrap();
        blocks.push(block);
    }
    let mut addresses: Vec<Address> = chain.keys.iter().map(|key| key.address()).collect();
    // A recipient only (a fresh address a recent transfer created).
    let received_only = blocks
        .iter()
        .rev()
        .flat_map(|block| &block.transactions)
        .map(|signed| signed.transaction.recipient)
        .find(|recipient| !addresses.contains(recipient))
        .expect("some transfer goes to a fresh address");
    addresses.push(received_only);
    let nobody = Address([7; 20]);
    addresses.push(nobody);
    let self_transfers = blocks
        .iter()
        .flat_map(|block| &block.transactions)
        .filter(|signed| signed.transaction.recipient == signed.transaction.sender_address())
        .count();
    assert!(self_transfers > 0, "the test wants a transfer to oneself");

    fn check(
        store: &dyn Store,
        blocks: &[cairn_types::Block],
        addresses: &[Address],
        nobody: Address,
        lowest: Height,
    ) {
        for address in addresses {
            let expected = expected_history(blocks, address, lowest);
            if *address == nobody {
                assert!(expected.is_empty());
            } else {
                assert!(!expected.is_empty(), "{address} has no history");
            }
            for page in [1, 7, HISTORY_PAGE_MAX, 1_000] {
                assert_eq!(
                    read_history(store, address, page),
                    expected,
                    "history of {address} in pages of {page}"
                );
            }
            // One full page from the top is the newest HISTORY_PAGE_MAX.
            let first = store.account_history(address, None, usize::MAX).unwrap();
            assert_eq!(first.len(), expected.len().min(HISTORY_PAGE_MAX));
            for (entry, (height, index, hash)) in first.iter().zip(&expected) {
                assert_eq!(
                    (entry.height, entry.index, entry.hash),
                    (*height, *index, *hash)
                );
                let block = &blocks[height.0 as usize - 1];
                assert_eq!(entry.transaction, block.transactions[*index as usize]);
            }
        }
        let busy = addresses[0];
        assert!(expected_history(blocks, &busy, lowest).len() > HISTORY_PAGE_MAX);
    }
    check(&store, &blocks, &addresses, nobody, Height(1));

    let lowest = store.prune_blocks_below(Height(21)).unwrap();
    assert_eq!(lowest, Height(21));
    check(&store, &blocks, &addresses, nobody, lowest);
    match store.account_history(&addresses[0], Some((Height(20), 3)), 10) {
        Err(StoreError::Pruned {
            height,
            lowest: held,
        }) => assert_eq!((height, held), (Height(20), lowest)),
        other => panic!("a position below the lowest height: {other:?}"),
    }
    // A position at the lowest height still reads the entries before it there.
    assert!(store
        .account_history(&addresses[0], Some((lowest, u32::MAX)), 10)
        .is_ok());
    // A synced commit makes the prune durable; a restart keeps it all.
    let (block, certificate, outcome) = chain.next_block(5);
    store.commit_block(&block, &certificate, &outcome).unwrap();
    blocks.push(block);
    drop(store);
    let store = open(&mut harness, &chain);
    check(&store, &blocks, &addresses, nobody, lowest);
}

macro_rules! contract_tests {
    ($module:ident, $harness:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn a_fresh_store_holds_the_genesis() {
                super::a_fresh_store_holds_the_genesis($harness);
            }
            #[test]
            fn committed_blocks_are_readable_every_way() {
                super::committed_blocks_are_readable_every_way($harness);
            }
            #[test]
            fn commits_out_of_order_are_refused() {
                super::commits_out_of_order_are_refused($harness);
            }
            #[test]
            fn another_chain_or_genesis_is_refused() {
                super::another_chain_or_genesis_is_refused($harness);
            }
            #[test]
            fn corrupt_values_are_errors_not_panics() {
                super::corrupt_values_are_errors_not_panics($harness);
            }
            #[test]
            fn the_wal_keeps_entries_in_order() {
                super::the_wal_keeps_entries_in_order($harness);
            }
            #[test]
            fn evidence_is_kept_once_and_pruned() {
                super::evidence_is_kept_once_and_pruned($harness);
            }
            #[test]
            fn account_history_pages_are_complete_ordered_and_pruned() {
                super::account_history_pages_are_complete_ordered_and_pruned($harness);
            }
            #[test]
            fn pruning_drops_old_heights_and_keeps_the_window() {
                super::pruning_drops_old_heights_and_keeps_the_window($harness);
            }
        }
    };
}

contract_tests!(rocks, Rocks::new());
contract_tests!(
    memory,
    Memory {
        disk: MemoryDisk::new()
    }
);

/// A store written before the history index (no `history` column, no
/// `history_from` key) opens, and lists history from the first block it
/// commits after the upgrade: older positions answer `Pruned`.
#[test]
fn a_store_from_before_the_history_index_lists_history_from_the_upgrade() {
    let mut chain = TestChain::new("contract", 4, 0);
    let mut harness = Rocks::new();
    let store = open(&mut harness, &chain);
    for _ in 0..3 {
        let (block, certificate, outcome) = chain.next_block(4);
        store.commit_block(&block, &certificate, &outcome).unwrap();
    }
    assert_eq!(store.history_lowest_height(), Height(1));
    drop(store);
    {
        // Make it an old store.
        let names: Vec<&str> = Column::ALL.iter().map(|column| column.name()).collect();
        let mut db =
            rocksdb::DB::open_cf(&rocksdb::Options::default(), harness.path(), names).unwrap();
        db.delete_cf(db.cf_handle("metadata").unwrap(), b"history_from")
            .unwrap();
        db.drop_cf("history").unwrap();
    }
    let store = open(&mut harness, &chain);
    assert_eq!(store.history_lowest_height(), Height(4));
    let sender = chain.keys[0].address();
    assert_eq!(store.account_history(&sender, None, 100).unwrap(), vec![]);
    assert!(matches!(
        store.account_history(&sender, Some((Height(2), 0)), 100),
        Err(StoreError::Pruned { lowest, .. }) if lowest == Height(4)
    ));
    let (block, certificate, outcome) = chain.next_block(8);
    store.commit_block(&block, &certificate, &outcome).unwrap();
    let listed = store.account_history(&sender, None, 100).unwrap();
    let expected = block
        .transactions
        .iter()
        .filter(|signed| {
            signed.transaction.sender_address() == sender || signed.transaction.recipient == sender
        })
        .count();
    assert!(expected > 0);
    assert_eq!(listed.len(), expected);
    assert!(listed.iter().all(|entry| entry.height == Height(4)));
    // It stays so across a restart.
    drop(store);
    let store = open(&mut harness, &chain);
    assert_eq!(store.history_lowest_height(), Height(4));

    // Switched off: commits index nothing; on again: from the next height.
    store.set_history_index(false).unwrap();
    assert_eq!(store.history_lowest_height(), Height(u64::MAX));
    let (block, certificate, outcome) = chain.next_block(8);
    store.commit_block(&block, &certificate, &outcome).unwrap();
    drop(store);
    let store = open(&mut harness, &chain);
    assert_eq!(store.history_lowest_height(), Height(u64::MAX), "kept off");
    store.set_history_index(true).unwrap();
    assert_eq!(store.history_lowest_height(), Height(6));
    let (block, certificate, outcome) = chain.next_block(8);
    store.commit_block(&block, &certificate, &outcome).unwrap();
    let listed = store.account_history(&sender, None, 100).unwrap();
    assert!(listed.iter().all(|entry| entry.height != Height(5)));
    assert!(listed.iter().any(|entry| entry.height == Height(6)));
    assert!(matches!(
        store.account_history(&sender, Some((Height(5), 0)), 100),
        Err(StoreError::Pruned { lowest, .. }) if lowest == Height(6)
    ));
}

#[test]
fn a_rocks_store_is_opened_by_one_process_at_a_time() {
    let chain = TestChain::new("contract", 2, 0);
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("nested").join("store");
    let store = RocksStore::open(&path, &chain.identity, &chain.genesis).unwrap();
    let error = RocksStore::open(&path, &chain.identity, &chain.genesis)
        .err()
        .unwrap();
    assert!(matches!(error, StoreError::Open { .. }), "{error}");
    assert!(error.to_string().contains("lock"), "{error}");
    drop(store);
    assert!(RocksStore::open(&path, &chain.identity, &chain.genesis).is_ok());
}

/// The simulated disk loses WAL appends not synced when the process
/// crashes, and keeps those a `wal_sync` covered, as RocksDB would.
#[test]
fn a_crash_loses_the_wal_appends_after_the_last_sync() {
    let chain = TestChain::new("contract", 2, 0);
    let disk = MemoryDisk::new();
    let store = MemoryStore::open(&disk, &chain.identity, &chain.genesis).unwrap();
    store.wal_append(Height(1), b"prevote").unwrap();
    store.wal_sync().unwrap();
    store.wal_append(Height(1), b"precommit").unwrap();
    assert_eq!(disk.unsynced_writes(), 1);
    assert_eq!(
        store.wal_entries(Height(1)).unwrap(),
        vec![b"prevote".to_vec(), b"precommit".to_vec()]
    );
    disk.crash();
    let store = MemoryStore::open(&disk, &chain.identity, &chain.genesis).unwrap();
    assert_eq!(
        store.wal_entries(Height(1)).unwrap(),
        vec![b"prevote".to_vec()]
    );
    assert_eq!(disk.unsynced_writes(), 0);
}
