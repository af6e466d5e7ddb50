//! Any stored value may be damaged: every read of every column, and
//! opening, must then fail with an error (or, where the damage happens to
//! decode, return a value), never panic.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use cairn_store::{Column, MemoryDisk, MemoryStore, Store};
use cairn_types::Height;
use common::{Sequence, TestChain};

fn garbage(sequence: &mut Sequence) -> Vec<u8> {
    let len = match sequence.below(4) {
        0 => 0,
        1 => sequence.below(8),
        2 => sequence.below(64),
        _ => sequence.below(4_096),
    };
    (0..len).map(|_| sequence.next() as u8).collect()
}

#[test]
fn damaged_values_are_errors_never_panics() {
    let mut chain = TestChain::new("garbage", 8, 0);
    let mut sequence = Sequence(7);
    for round in 0..200u64 {
        let disk = MemoryDisk::new();
        let store = MemoryStore::open(&disk, &chain.identity, &chain.genesis).unwrap();
        chain.resume(&store);
        let (block, certificate, outcome) = chain.next_block(4);
        store.commit_block(&block, &certificate, &outcome).unwrap();
        store.wal_append(Height(2), b"entry").unwrap();
        let transaction = block.transactions[0].hash();
        let account = chain.keys[0].address();
        let evidence_key = {
            let mut key = vec![0u8; 40];
            key[7] = 1;
            key
        };
        let targets: Vec<(Column, Vec<u8>)> = vec![
            (Column::Blocks, 1u64.to_be_bytes().to_vec()),
            (Column::BlockHashes, block.hash().0.to_vec()),
            (Column::Certificates, 1u64.to_be_bytes().to_vec()),
            (Column::Transactions, transaction.0.to_vec()),
            (Column::Accounts, account.0.to_vec()),
            (Column::Evidence, evidence_key),
            (
                Column::Wal,
                [2u64.to_be_bytes(), 0u64.to_be_bytes()].concat(),
            ),
            (Column::Metadata, b"latest_height".to_vec()),
            (Column::Metadata, b"format_version".to_vec()),
            (Column::Metadata, b"genesis_state_root".to_vec()),
        ];
        let (column, key) = &targets[(round % targets.len() as u64) as usize];
        disk.corrupt(*column, key, &garbage(&mut sequence));
        // Reads on the open store, then a reopen and the same reads.
        let _ = store.block(Height(1));
        let _ = store.block_by_hash(&block.hash());
        let _ = store.header(Height(1));
        let _ = store.certificate(Height(1));
        let _ = store.transaction(&transaction);
        let _ = store.account(&account);
        let _ = store.load_state();
        let _ = store.evidence();
        let _ = store.wal_entries(Height(2));
        let _ = store.wal_append(Height(2), b"more");
        disk.crash();
        if let Ok(store) = MemoryStore::open(&disk, &chain.identity, &chain.genesis) {
            let _ = store.block(Height(1));
            let _ = store.transaction(&transaction);
            let _ = store.load_state();
            let _ = store.evidence();
        }
        chain = TestChain::new("garbage", 8, 0);
    }
}
