//! Repair of a damaged table file of the blocks from re-fetched records
//! (`Store::damage_repair`, `Store::repair_heights`), on a real RocksDB
//! store whose table file was overwritten with garbage, and on the
//! in-memory store with a rotten record: the scrub finds the damage, the
//! store names the heights, refuses records that are not the chain's,
//! takes the right ones, and afterwards every block reads back intact and
//! a scrub pass is clean, also after a restart. A damaged file of the
//! accounts is written again from the committed state (and from no other).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use cairn_store::{
    Column, DamageRepair, MemoryDisk, MemoryStore, RocksStore, ScrubPosition, Store, StoreError,
};
use cairn_types::{Block, CommitCertificate, Height};
use common::{check_consistency, staking_chain, TestChain};

fn commit_blocks(
    chain: &mut TestChain,
    store: &dyn Store,
    blocks: usize,
) -> Vec<(Block, CommitCertificate)> {
    (0..blocks)
        .map(|_| {
            let (block, certificate, outcome) = chain.next_block(40);
            store.commit_block(&block, &certificate, &outcome).unwrap();
            (block, certificate)
        })
        .collect()
}

/// A whole scrub pass: the first damage found, if any.
fn scrub_all(store: &dyn Store) -> Result<(), StoreError> {
    let mut position = ScrubPosition::default();
    loop {
        match store.scrub(&position, 64 * 1024)?.next {
            Some(next) => position = next,
            None => return Ok(()),
        }
    }
}

/// The largest table file of a store directory.
fn largest_table(dir: &Path) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "sst"))
        .max_by_key(|path| std::fs::metadata(path).unwrap().len())
        .expect("a table file")
}

fn assert_blocks_intact(store: &dyn Store, committed: &[(Block, CommitCertificate)]) {
    for (block, certificate) in committed {
        let height = block.header.height;
        assert_eq!(
            store.block(height).unwrap().as_ref(),
            Some(block),
            "{height}"
        );
        assert_eq!(
            store.certificate(height).unwrap().as_ref(),
            Some(certificate),
            "{height}"
        );
    }
}

#[test]
fn a_damaged_block_file_is_repaired_from_the_chains_records() {
    let (mut chain, _set) = staking_chain("repair-rocks", 0);
    let dir = tempfile::tempdir().unwrap();
    let committed = {
        let store = RocksStore::open(dir.path(), &chain.identity, &chain.genesis).unwrap();
        commit_blocks(&mut chain, &store, 60)
    };
    {
        // Reopening writes RocksDB's log into level-0 table files; the
        // compaction of the block columns moves them to the last level,
        // where a file can be dropped by its key range.
        let store = RocksStore::open(dir.path(), &chain.identity, &chain.genesis).unwrap();
        store.compact_pruned().unwrap();
        scrub_all(&store).unwrap();
    }
    let table = largest_table(dir.path());
    let mut bytes = std::fs::read(&table).unwrap();
    let at = bytes.len() / 3;
    for (index, byte) in bytes[at..at + 4096].iter_mut().enumerate() {
        *byte = (index as u8).wrapping_mul(151).wrapping_add(7);
    }
    std::fs::write(&table, &bytes).unwrap();

    let store = RocksStore::open(dir.path(), &chain.identity, &chain.genesis).unwrap();
    let damage = scrub_all(&store).expect_err("the scrub finds the damage");
    assert!(
        matches!(&damage, StoreError::ChecksumMismatch { column, .. } if *column == "blocks"),
        "{damage}"
    );
    let DamageRepair::Refetch(damaged) = store.damage_repair(&damage).unwrap() else {
        panic!("the blocks' file is repairable: {damage}");
    };
    assert_eq!(damaged.column, "blocks");
    assert_eq!(damaged.file, table.file_name().unwrap().to_string_lossy());
    let (first, last) = damaged
        .held(store.lowest_height(), store.latest_height())
        .unwrap();
    assert_eq!((first, last), (Height(1), Height(60)));
    let records: Vec<(Block, CommitCertificate)> =
        committed[(first.0 - 1) as usize..last.0 as usize].to_vec();

    // Records that are not the chain's are refused, and nothing changes.
    let mut forged = records.clone();
    forged[10].0.header.time.0 += 1;
    assert!(matches!(
        store.repair_heights(&damaged, &forged),
        Err(StoreError::Repair { .. })
    ));
    let mut badly_signed = records.clone();
    badly_signed[20].1 = records[21].1.clone();
    assert!(matches!(
        store.repair_heights(&damaged, &badly_signed),
        Err(StoreError::Repair { .. })
    ));
    assert!(matches!(
        store.repair_heights(&damaged, &records[1..]),
        Err(StoreError::Repair { .. })
    ));
    assert!(scrub_all(&store).is_err(), "still damaged");

    store.repair_heights(&damaged, &records).unwrap();
    assert!(!table.exists(), "the damaged file was dropped");
    scrub_all(&store).unwrap();
    assert_blocks_intact(&store, &committed);
    // The chain goes on on the repaired store.
    let more = commit_blocks(&mut chain, &store, 3);
    drop(store);

    let store = RocksStore::open(dir.path(), &chain.identity, &chain.genesis).unwrap();
    scrub_all(&store).unwrap();
    assert_blocks_intact(&store, &committed);
    assert_blocks_intact(&store, &more);
    check_consistency(&store, &chain.genesis);
}

#[test]
fn a_rotten_record_in_memory_is_repaired_and_other_columns_are_not() {
    let (mut chain, _set) = staking_chain("repair-memory", 0);
    let disk = MemoryDisk::new();
    let store = MemoryStore::open(&disk, &chain.identity, &chain.genesis).unwrap();
    let committed = commit_blocks(&mut chain, &store, 12);
    let key = 7u64.to_be_bytes();
    assert!(disk.rot(Column::Blocks, &key));
    let damage = scrub_all(&store).expect_err("the scrub finds the rot");
    let DamageRepair::Refetch(damaged) = store.damage_repair(&damage).unwrap() else {
        panic!("a block record is repairable: {damage}");
    };
    assert_eq!(damaged.file_heights, (Height(7), Height(7)));
    let mut wrong = committed[6].clone();
    wrong.0 = committed[7].0.clone();
    assert!(store.repair_heights(&damaged, &[wrong]).is_err());
    store
        .repair_heights(&damaged, &[committed[6].clone()])
        .unwrap();
    assert!(!disk.has_rot());
    scrub_all(&store).unwrap();
    assert_blocks_intact(&store, &committed);

    // An account is written again from the committed state, and only
    // from that state.
    let account = disk.keys(Column::Accounts).remove(3);
    assert!(disk.rot(Column::Accounts, &account));
    let damage = scrub_all(&store).expect_err("the scrub finds the rot");
    let DamageRepair::RewriteAccounts(damaged) = store.damage_repair(&damage).unwrap() else {
        panic!("an account record is repairable: {damage}");
    };
    assert_eq!(damaged.addresses.0 .0.as_slice(), account.as_slice());
    assert!(matches!(
        store.repair_accounts(&damaged, &chain.genesis),
        Err(StoreError::Repair { .. })
    ));
    store.repair_accounts(&damaged, &chain.state).unwrap();
    assert!(!disk.has_rot());
    scrub_all(&store).unwrap();
    assert_eq!(store.load_state().unwrap().root(), chain.state.root());

    // The consensus WAL is the node's own: not repairable.
    store.wal_append(Height(13), b"an entry").unwrap();
    store.wal_sync().unwrap();
    let entry = disk.keys(Column::Wal).remove(0);
    assert!(disk.rot(Column::Wal, &entry));
    let damage = scrub_all(&store).expect_err("the scrub finds the rot");
    match store.damage_repair(&damage).unwrap() {
        DamageRepair::NotRepairable(reason) => assert!(reason.contains("wal"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_damaged_account_file_is_written_again_from_the_committed_state() {
    // Many accounts and few small blocks: the accounts' file is the largest.
    let (mut chain, _set) = staking_chain("repair-accounts", 30_000);
    let dir = tempfile::tempdir().unwrap();
    {
        let store = RocksStore::open(dir.path(), &chain.identity, &chain.genesis).unwrap();
        for _ in 0..3 {
            let (block, certificate, outcome) = chain.next_block(2);
            store.commit_block(&block, &certificate, &outcome).unwrap();
        }
    }
    {
        let store = RocksStore::open(dir.path(), &chain.identity, &chain.genesis).unwrap();
        store.compact_all().unwrap();
    }
    let table = largest_table(dir.path());
    let mut bytes = std::fs::read(&table).unwrap();
    let at = bytes.len() / 2;
    for (index, byte) in bytes[at..at + 4096].iter_mut().enumerate() {
        *byte = (index as u8).wrapping_mul(31).wrapping_add(3);
    }
    std::fs::write(&table, &bytes).unwrap();

    // Opening the store reads no account (a node's start, which loads the
    // state, would refuse); this is damage a running node's scrub finds.
    let store = RocksStore::open(dir.path(), &chain.identity, &chain.genesis).unwrap();
    let damage = scrub_all(&store).expect_err("the scrub finds the damage");
    let DamageRepair::RewriteAccounts(damaged) = store.damage_repair(&damage).unwrap() else {
        panic!("the accounts' file is repairable: {damage}");
    };
    assert!(matches!(
        store.repair_accounts(&damaged, &chain.genesis),
        Err(StoreError::Repair { .. })
    ));
    store.repair_accounts(&damaged, &chain.state).unwrap();
    assert!(!table.exists(), "the damaged file was dropped");
    scrub_all(&store).unwrap();
    drop(store);
    let store = RocksStore::open(dir.path(), &chain.identity, &chain.genesis).unwrap();
    scrub_all(&store).unwrap();
    assert_eq!(store.load_state().unwrap().root(), chain.state.root());
    check_consistency(&store, &chain.genesis);
}
