//! Snapshots: the format pinned by golden vectors, the same chunks from
//! every store holding the same state, manifest checks, and restores that
//! are refused unless the state root matches the trusted header.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use cairn_store::{
    create_snapshot, snapshot::decode_chunk, snapshot::ChunkBuilder, MemoryDisk, MemoryStore,
    RocksStore, SnapshotManifest, Store, StoreError, SNAPSHOT_CHUNK_BYTES_MAX,
    SNAPSHOT_FORMAT_VERSION,
};
use cairn_types::{
    sha256, Block, ChainId, CommitCertificate, Hash, Height, Validator, ValidatorSet, VotingPower,
};
use common::{staking_chain, stranger, TestChain};

/// A snapshot held in memory: manifest and chunks.
struct Taken {
    manifest: SnapshotManifest,
    chunks: Vec<Vec<u8>>,
}

fn take(store: &dyn Store, height: Height) -> Taken {
    let mut chunks = Vec::new();
    let manifest = create_snapshot(store, height, &mut |index, chunk| {
        assert_eq!(index, chunks.len());
        chunks.push(chunk.to_vec());
        Ok(())
    })
    .unwrap();
    Taken { manifest, chunks }
}

/// A chain with staking (one validator, the proposer) and `accounts`
/// funded strangers besides the keyed accounts.
fn commit_blocks(
    chain: &mut TestChain,
    store: &dyn Store,
    blocks: usize,
) -> Vec<(Block, CommitCertificate)> {
    let mut committed = Vec::new();
    for index in 0..blocks {
        let (block, certificate, outcome) = chain.next_block(5 + index * 3);
        store.commit_block(&block, &certificate, &outcome).unwrap();
        committed.push((block, certificate));
    }
    committed
}

#[test]
fn golden_chunk_and_manifest() {
    // Two accounts and one staking piece, by hand.
    let mut account_a = vec![b'a'];
    account_a.extend_from_slice(&[0x11; 20]);
    let mut account_b = vec![b'a'];
    account_b.extend_from_slice(&[0x22; 20]);
    let value = |slot: u64, balance: u64, nonce: u64| {
        let mut value = Vec::new();
        value.extend_from_slice(&slot.to_be_bytes());
        value.extend_from_slice(&balance.to_be_bytes());
        value.extend_from_slice(&nonce.to_be_bytes());
        value
    };
    let entries = vec![
        (account_a.clone(), value(1, 500, 2)),
        (account_b.clone(), value(0, 7, 0)),
        (b"s\x00\x00\x00\x00".to_vec(), b"staking".to_vec()),
    ];
    let mut chunks = Vec::new();
    let mut builder = ChunkBuilder::new(|_, chunk: &[u8]| {
        chunks.push(chunk.to_vec());
        Ok(())
    });
    for (key, value) in &entries {
        builder.push(key, value).unwrap();
    }
    let hashes = builder.finish().unwrap();
    assert_eq!(chunks.len(), 1);
    let expected = [
        "00000003",
        "15",
        "611111111111111111111111111111111111111111",
        "00000018",
        "0000000000000001",
        "00000000000001f4",
        "0000000000000002",
        "15",
        "612222222222222222222222222222222222222222",
        "00000018",
        "0000000000000000",
        "0000000000000007",
        "0000000000000000",
        "05",
        "7300000000",
        "00000007",
        "7374616b696e67",
    ]
    .concat();
    assert_eq!(hex::encode(&chunks[0]), expected);
    assert_eq!(hashes, vec![sha256(&chunks[0])]);
    let manifest = SnapshotManifest {
        format_version: SNAPSHOT_FORMAT_VERSION,
        chain_id: ChainId::new("golden").unwrap(),
        height: Height(5),
        state_root: Hash([0xab; 32]),
        chunk_hashes: hashes,
    };
    // postcard: varint version, length-prefixed chain id, varint height,
    // the root and each hash as 32 length-prefixed bytes (0x20), varint count.
    let expected_manifest = format!(
        "01{}{}0520{}0120{}",
        "06",
        hex::encode("golden"),
        "ab".repeat(32),
        hex::encode(sha256(&chunks[0]).0)
    );
    assert_eq!(hex::encode(manifest.to_bytes()), expected_manifest);
    assert_eq!(
        SnapshotManifest::from_bytes(&manifest.to_bytes()).unwrap(),
        manifest
    );
    assert_eq!(
        manifest.hash().to_hex(),
        GOLDEN_MANIFEST_HASH,
        "the manifest format changed: update SNAPSHOTS.md and SNAPSHOT_FORMAT_VERSION"
    );
}

/// SHA-256 of the golden manifest's bytes.
const GOLDEN_MANIFEST_HASH: &str =
    "199ecfe7c172fd8db569c239bc8d9bd6bd528801ae6d428635376323ab848a09";

#[test]
fn stores_with_the_same_state_build_the_same_chunks() {
    let directory = tempfile::tempdir().unwrap();
    let (mut chain_a, _) = staking_chain("determinism", 40);
    let (mut chain_b, _) = staking_chain("determinism", 40);
    let rocks_a = RocksStore::open(
        &directory.path().join("a"),
        &chain_a.identity,
        &chain_a.genesis,
    )
    .unwrap();
    let rocks_b = RocksStore::open(
        &directory.path().join("b"),
        &chain_b.identity,
        &chain_b.genesis,
    )
    .unwrap();
    let disk = MemoryDisk::new();
    let memory = MemoryStore::open(&disk, &chain_b.identity, &chain_b.genesis).unwrap();
    let blocks = commit_blocks(&mut chain_a, &rocks_a, 6);
    for (block, certificate) in &blocks {
        let outcome = chain_b
            .state
            .execute_block(&chain_b.chain_id, block, &[])
            .unwrap();
        rocks_b.commit_block(block, certificate, &outcome).unwrap();
        memory.commit_block(block, certificate, &outcome).unwrap();
        chain_b.advance(block, certificate, &outcome);
    }
    let height = Height(6);
    let a = take(&rocks_a, height);
    let b = take(&rocks_b, height);
    let m = take(&memory, height);
    assert_eq!(a.manifest, b.manifest);
    assert_eq!(a.chunks, b.chunks);
    assert_eq!(a.manifest, m.manifest);
    assert_eq!(a.chunks, m.chunks);
    assert_eq!(a.manifest.state_root, blocks[5].0.header.state_root);
    assert_eq!(a.manifest.height, height);
    // Accounts and the staking state are all there.
    let mut accounts = 0;
    let mut staking = 0;
    for chunk in &a.chunks {
        decode_chunk(chunk, &mut |key, _| {
            match key[0] {
                b'a' => accounts += 1,
                b's' => staking += 1,
                other => panic!("unknown tag {other}"),
            }
            Ok(())
        })
        .unwrap();
    }
    assert_eq!(accounts, chain_a.state.len());
    assert_eq!(staking, 1);
    // A height the store has moved past cannot be taken.
    assert!(matches!(
        create_snapshot(&rocks_a, Height(5), &mut |_, _| Ok(())),
        Err(StoreError::SnapshotHeightGone { .. })
    ));
}

#[test]
fn large_states_are_cut_into_chunks_under_the_limit() {
    // 60,000 accounts of 45 bytes each: three chunks.
    let chain = TestChain::new("large", 2, 60_000);
    let directory = tempfile::tempdir().unwrap();
    let store = RocksStore::open(directory.path(), &chain.identity, &chain.genesis).unwrap();
    let taken = take(&store, Height::GENESIS);
    assert_eq!(taken.chunks.len(), 3);
    for chunk in &taken.chunks {
        assert!(chunk.len() <= SNAPSHOT_CHUNK_BYTES_MAX);
    }
    assert_eq!(taken.manifest.state_root, chain.genesis.root());
}

#[test]
fn manifests_are_checked_against_the_trusted_header() {
    let (mut chain, _) = staking_chain("manifest", 10);
    let directory = tempfile::tempdir().unwrap();
    let store = RocksStore::open(directory.path(), &chain.identity, &chain.genesis).unwrap();
    let blocks = commit_blocks(&mut chain, &store, 2);
    let taken = take(&store, Height(2));
    let root = blocks[1].0.header.state_root;
    let manifest = &taken.manifest;
    manifest.verify(&chain.chain_id, Height(2), &root).unwrap();
    assert!(manifest
        .verify(&ChainId::new("other").unwrap(), Height(2), &root)
        .is_err());
    assert!(manifest.verify(&chain.chain_id, Height(3), &root).is_err());
    assert!(manifest
        .verify(&chain.chain_id, Height(2), &Hash([1; 32]))
        .is_err());
    manifest.check_chunk(0, &taken.chunks[0]).unwrap();
    let mut bad = taken.chunks[0].clone();
    bad[10] ^= 1;
    assert!(manifest.check_chunk(0, &bad).is_err());
    assert!(manifest
        .check_chunk(manifest.chunk_count(), &taken.chunks[0])
        .is_err());
    let mut other_version = manifest.clone();
    other_version.format_version = 99;
    assert!(SnapshotManifest::from_bytes(&other_version.to_bytes()).is_err());
    for seed in 0u8..=255 {
        let garbage: Vec<u8> = (0..80u8)
            .map(|i| i.wrapping_mul(seed).wrapping_add(seed))
            .collect();
        let _ = SnapshotManifest::from_bytes(&garbage);
    }
}

#[test]
fn a_restored_store_holds_the_state_and_continues_the_chain() {
    let (mut chain, set) = staking_chain("restore", 30);
    let directory = tempfile::tempdir().unwrap();
    let source = RocksStore::open(
        &directory.path().join("source"),
        &chain.identity,
        &chain.genesis,
    )
    .unwrap();
    let blocks = commit_blocks(&mut chain, &source, 4);
    let taken = take(&source, Height(4));
    let (block, certificate) = blocks[3].clone();

    let path = directory.path().join("restored");
    {
        let restored = RocksStore::open(&path, &chain.identity, &chain.genesis).unwrap();
        assert_eq!(restored.restore_in_progress().unwrap(), None);
        restored.restore_begin(Height(4)).unwrap();
        // Interrupted after one chunk: reopening shows the restore under way.
        restored.restore_chunk(&taken.chunks[0]).unwrap();
    }
    let restored = RocksStore::open(&path, &chain.identity, &chain.genesis).unwrap();
    assert_eq!(restored.restore_in_progress().unwrap(), Some(Height(4)));
    restored.restore_begin(Height(4)).unwrap();
    for chunk in &taken.chunks {
        restored.restore_chunk(chunk).unwrap();
    }
    restored.restore_finish(&block, &certificate, &set).unwrap();
    assert_eq!(restored.restore_in_progress().unwrap(), None);
    assert_eq!(restored.latest_height(), Height(4));
    assert_eq!(restored.snapshot_base(), Height(4));
    assert_eq!(restored.latest_block_hash(), block.hash());
    assert_eq!(restored.load_state().unwrap().root(), chain.state.root());
    assert_eq!(restored.block(Height(4)).unwrap(), Some(block.clone()));
    // Nothing below the restored height is held: reads say so.
    assert!(matches!(
        restored.block(Height(3)),
        Err(StoreError::Pruned { lowest, .. }) if lowest == Height(4)
    ));
    assert_eq!(restored.lowest_height(), Height(4));
    assert_eq!(restored.certificate(Height(4)).unwrap(), Some(certificate));
    assert_eq!(
        restored.validator_set(&set.hash()).unwrap(),
        Some(set.clone())
    );
    // The same snapshot again, byte for byte.
    assert_eq!(take(&restored, Height(4)).chunks, taken.chunks);
    // It commits the next block like the source does.
    let (next, next_certificate, outcome) = chain.next_block(7);
    restored
        .commit_block(&next, &next_certificate, &outcome)
        .unwrap();
    source
        .commit_block(&next, &next_certificate, &outcome)
        .unwrap();
    assert_eq!(restored.state_root(), source.state_root());
    // And remembers its base after a reopen; a second restore is refused.
    drop(restored);
    let restored = RocksStore::open(&path, &chain.identity, &chain.genesis).unwrap();
    assert_eq!(restored.snapshot_base(), Height(4));
    assert_eq!(restored.latest_height(), Height(5));
    assert!(matches!(
        restored.restore_begin(Height(5)),
        Err(StoreError::Restore { .. })
    ));
}

#[test]
fn a_restored_store_keeps_the_history_below_it_only_when_it_links_to_the_restored_block() {
    let (mut chain, set) = staking_chain("history", 10);
    let directory = tempfile::tempdir().unwrap();
    let source = RocksStore::open(
        &directory.path().join("source"),
        &chain.identity,
        &chain.genesis,
    )
    .unwrap();
    let blocks = commit_blocks(&mut chain, &source, 6);
    let taken = take(&source, Height(6));
    let (block, certificate) = blocks[5].clone();
    let restored = RocksStore::open(
        &directory.path().join("restored"),
        &chain.identity,
        &chain.genesis,
    )
    .unwrap();
    // Before a restore there is no base to hang history from.
    assert!(matches!(
        restored.restore_history(&blocks[2..5], &[]),
        Err(StoreError::Restore { .. })
    ));
    restored.restore_begin(Height(6)).unwrap();
    for chunk in &taken.chunks {
        restored.restore_chunk(chunk).unwrap();
    }
    restored.restore_finish(&block, &certificate, &set).unwrap();
    assert_eq!(restored.lowest_height(), Height(6));

    // Refused, and nothing kept: a gap below the base, a block not linked
    // to the one above, a certificate of another block, a set no header
    // names, history reaching the base itself.
    assert!(restored.restore_history(&blocks[2..4], &[]).is_err());
    let mut forged = blocks[2..5].to_vec();
    forged[1].0.header.state_root = Hash([9; 32]);
    assert!(restored.restore_history(&forged, &[]).is_err());
    let mut swapped = blocks[2..5].to_vec();
    swapped[0].1 = blocks[1].1.clone();
    assert!(matches!(
        restored.restore_history(&swapped, &[]),
        Err(StoreError::CertificateMismatch { .. })
    ));
    let stranger_set = ValidatorSet::new(vec![Validator {
        name: "other".into(),
        public_key: chain.keys[0].public_key(),
        power: VotingPower(1),
        operator: chain.keys[0].address(),
    }])
    .unwrap();
    assert!(restored
        .restore_history(&blocks[2..5], &[stranger_set])
        .is_err());
    assert!(restored.restore_history(&blocks[3..6], &[]).is_err());
    assert_eq!(restored.lowest_height(), Height(6));
    assert!(matches!(
        restored.header(Height(5)),
        Err(StoreError::Pruned { .. })
    ));

    // Linked history is kept, range by range from the top down: heights
    // 4..=5 link to the restored block, then height 3 to height 4;
    // headers, blocks and certificates of 3..=5 read back, the lowest
    // height held is 3, and it survives a reopen.
    restored
        .restore_history(&blocks[3..5], std::slice::from_ref(&set))
        .unwrap();
    assert_eq!(restored.lowest_height(), Height(4));
    // Height 2 does not link to 4.
    assert!(restored.restore_history(&blocks[1..2], &[]).is_err());
    restored.restore_history(&blocks[2..3], &[]).unwrap();
    assert_eq!(restored.lowest_height(), Height(3));
    for (block, certificate) in &blocks[2..5] {
        let height = block.header.height;
        assert_eq!(restored.header(height).unwrap(), Some(block.header.clone()));
        assert_eq!(
            restored.certificate(height).unwrap(),
            Some(certificate.clone())
        );
        assert_eq!(restored.block_height(&block.hash()).unwrap(), Some(height));
    }
    assert!(matches!(
        restored.block(Height(2)),
        Err(StoreError::Pruned { lowest, .. }) if lowest == Height(3)
    ));
    // A second call with what is already held changes nothing.
    restored.restore_history(&blocks[3..5], &[]).unwrap();
    assert_eq!(restored.lowest_height(), Height(3));
    drop(restored);
    let reopened = RocksStore::open(
        &directory.path().join("restored"),
        &chain.identity,
        &chain.genesis,
    )
    .unwrap();
    assert_eq!(reopened.lowest_height(), Height(3));
    assert_eq!(reopened.latest_height(), Height(6));
}

#[test]
fn a_restore_whose_root_does_not_match_the_header_is_refused() {
    let (mut chain, set) = staking_chain("mismatch", 12);
    let disk = MemoryDisk::new();
    let source = MemoryStore::open(&disk, &chain.identity, &chain.genesis).unwrap();
    let blocks = commit_blocks(&mut chain, &source, 3);
    let taken = take(&source, Height(3));
    let (block, certificate) = blocks[2].clone();

    // A well-formed chunk with one balance changed.
    let mut entries = Vec::new();
    for chunk in &taken.chunks {
        decode_chunk(chunk, &mut |key, value| {
            entries.push((key.to_vec(), value.to_vec()));
            Ok(())
        })
        .unwrap();
    }
    entries[0].1[15] ^= 1;
    let mut forged = Vec::new();
    let mut builder = ChunkBuilder::new(|_, chunk: &[u8]| {
        forged.push(chunk.to_vec());
        Ok(())
    });
    for (key, value) in &entries {
        builder.push(key, value).unwrap();
    }
    builder.finish().unwrap();

    let target_disk = MemoryDisk::new();
    let target = MemoryStore::open(&target_disk, &chain.identity, &chain.genesis).unwrap();
    target.restore_begin(Height(3)).unwrap();
    for chunk in &forged {
        target.restore_chunk(chunk).unwrap();
    }
    assert!(matches!(
        target.restore_finish(&block, &certificate, &set),
        Err(StoreError::SnapshotRootMismatch { .. })
    ));
    assert_eq!(target.latest_height(), Height::GENESIS);
    assert_eq!(target.restore_in_progress().unwrap(), Some(Height(3)));
    // Chunks out of order are refused.
    target.restore_begin(Height(3)).unwrap();
    if taken.chunks.len() > 1 {
        target.restore_chunk(&taken.chunks[1]).unwrap();
        assert!(target.restore_chunk(&taken.chunks[0]).is_err());
    } else {
        target.restore_chunk(&taken.chunks[0]).unwrap();
        assert!(target.restore_chunk(&taken.chunks[0]).is_err());
    }
    // A missing piece of state: the root differs.
    target.restore_begin(Height(3)).unwrap();
    assert!(target.restore_finish(&block, &certificate, &set).is_err());
    // The genuine snapshot, begun again, is accepted.
    target.restore_begin(Height(3)).unwrap();
    for chunk in &taken.chunks {
        target.restore_chunk(chunk).unwrap();
    }
    target.restore_finish(&block, &certificate, &set).unwrap();
    assert_eq!(target.state_root(), block.header.state_root);
    let _ = stranger(0);
}
