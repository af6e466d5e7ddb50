//! A benchmark of one node's per-block work outside signatures, over real
//! RocksDB stores: a proposer builds a block of transfers from its mempool
//! and commits it; a validator that already admitted the same transfers
//! (gossip brought them) validates the block and commits it. Run on
//! demand (it is `#[ignore]`d; see BENCHMARKS.md):
//!
//! ```sh
//! cargo test --workspace --test block_path -- --ignored --nocapture
//! ```
//!
//! It prints, per committed transfer, the fastest and the median of each
//! step over several blocks (the fastest is what a quiet machine shows; the
//! machine is often shared). The non-ignored test checks the same path at
//! a small size, so the benchmark cannot rot. A second benchmark measures
//! catch-up: a run of synced blocks committed with one sync.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use cairn_genesis::{
    devnet::{build_devnet_from_keys, DevnetKeys},
    Genesis,
};
use cairn_node::{
    block_sync::commit_synced,
    ledger::{BlockRequest, Ledger},
    mempool::MempoolLimits,
    metrics::Metrics,
};
use cairn_p2p::SyncBlock;
use cairn_store::{ChainIdentity, MemoryDisk, MemoryStore, Store};
use cairn_types::{
    codec, limits, Address, Block, CommitCertificate, ConsensusParams, Height, Keypair,
    SignedTransaction, Timestamp, Transaction,
};

const GENESIS_TIME: Timestamp = Timestamp(1_700_000_000_000);

fn validators() -> Vec<Keypair> {
    support::ledger_validator_keys()
}

fn sender(index: usize) -> Keypair {
    let mut seed = [9u8; 32];
    seed[..8].copy_from_slice(&(index as u64).to_le_bytes());
    Keypair::from_seed(&seed)
}

fn genesis(senders: usize) -> Genesis {
    build_devnet_from_keys(&DevnetKeys {
        chain_id: "block-path".into(),
        genesis_time: GENESIS_TIME,
        validators: validators()
            .iter()
            .enumerate()
            .map(|(i, key)| (format!("v{i}"), key.public_key()))
            .collect(),
        accounts: (0..senders)
            .map(|index| (sender(index).address(), 1_000_000_000))
            .collect(),
        consensus_params: ConsensusParams::default(),
        staking_params: cairn_genesis::devnet::devnet_staking_params(),
    })
    .unwrap()
}

fn open(dir: &std::path::Path, genesis: Genesis) -> Ledger {
    let store = Ledger::open_store(&genesis, dir).unwrap();
    open_with(genesis, Arc::new(store))
}

fn open_with(genesis: Genesis, store: Arc<dyn Store>) -> Ledger {
    let limits = MempoolLimits {
        transactions_max: 100_000,
        bytes_max: 64 << 20,
        min_fee: 0,
    };
    Ledger::with_store(genesis, store, limits, Arc::new(Metrics::default())).unwrap()
}

fn certify(ledger: &Ledger, block: &Block) -> CommitCertificate {
    support::certify_block(ledger.chain_id(), block)
}

/// `per_sender` transfers from each of `senders` keys, nonces `first..`.
fn transfers(
    ledger: &Ledger,
    senders: &[Keypair],
    first_nonce: u64,
    per_sender: u64,
) -> Vec<Vec<u8>> {
    let fee = ledger.genesis().fee_params.min_fee.max(1);
    let mut out = Vec::new();
    for nonce in first_nonce..first_nonce + per_sender {
        for key in senders {
            let transaction: SignedTransaction = Transaction {
                chain_id: ledger.chain_id().clone(),
                sender: key.public_key(),
                recipient: Address([7; 20]),
                amount: 1_000,
                fee,
                nonce,
                memo: String::new(),
                kind: cairn_types::TransactionKind::Transfer,
            }
            .sign(key);
            out.push(transaction.to_bytes());
        }
    }
    out
}

/// The proposer's next block from its mempool, a second after its tip.
fn build_next(proposer: &Ledger, parent_certificate: &Option<CommitCertificate>) -> Block {
    let tip = proposer.tip();
    proposer
        .build_block(BlockRequest {
            proposer: validators()[0].address(),
            time: Timestamp(tip.time.0.max(GENESIS_TIME.0) + 1_000),
            parent_certificate: parent_certificate.clone(),
            evidence: Vec::new(),
        })
        .unwrap()
}

/// Per-transfer microseconds of each step, one entry per block.
#[derive(Default)]
struct Steps {
    build: Vec<f64>,
    proposer_commit: Vec<f64>,
    validate: Vec<f64>,
    validator_commit: Vec<f64>,
}

fn per_transfer(elapsed: Duration, transfers: usize) -> f64 {
    elapsed.as_secs_f64() * 1e6 / transfers.max(1) as f64
}

/// Builds and commits `blocks` blocks of `senders * per_sender` transfers
/// on a proposer and a validator; returns the step costs.
fn run(senders: usize, per_sender: u64, blocks: usize) -> Steps {
    let dir = tempfile::tempdir().unwrap();
    let genesis = genesis(senders);
    let proposer = open(&dir.path().join("proposer"), genesis.clone());
    let validator = open(&dir.path().join("validator"), genesis);
    let keys: Vec<Keypair> = (0..senders).map(sender).collect();
    let mut steps = Steps::default();
    let mut parent_certificate = None;
    for block_index in 0..blocks {
        let batch = transfers(
            &proposer,
            &keys,
            block_index as u64 * per_sender,
            per_sender,
        );
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        for chunk in refs.chunks(2_000) {
            assert!(proposer.submit(chunk).iter().all(Result::is_ok));
            assert!(validator.submit(chunk).iter().all(Result::is_ok));
        }
        let started = Instant::now();
        let block = build_next(&proposer, &parent_certificate);
        steps
            .build
            .push(per_transfer(started.elapsed(), batch.len()));
        assert_eq!(
            block.transactions.len(),
            batch.len(),
            "the block holds the batch"
        );
        let certificate = certify(&proposer, &block);
        let started = Instant::now();
        proposer.commit(&block, &certificate).unwrap();
        steps
            .proposer_commit
            .push(per_transfer(started.elapsed(), batch.len()));
        let started = Instant::now();
        validator.validate_block(&block).unwrap();
        steps
            .validate
            .push(per_transfer(started.elapsed(), batch.len()));
        let started = Instant::now();
        validator.commit(&block, &certificate).unwrap();
        steps
            .validator_commit
            .push(per_transfer(started.elapsed(), batch.len()));
        assert_eq!(validator.tip(), proposer.tip());
        assert_eq!(proposer.mempool_size().0, 0);
        assert_eq!(validator.mempool_size().0, 0);
        parent_certificate = Some(certificate);
    }
    assert_eq!(proposer.tip().height, Height(blocks as u64));
    steps
}

fn fastest_and_median(values: &[f64]) -> (f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    (sorted[0], sorted[sorted.len() / 2])
}

#[test]
fn the_block_path_commits_on_both_sides() {
    let steps = run(20, 3, 3);
    assert_eq!(steps.build.len(), 3);
    assert!(steps.validate.iter().all(|micros| *micros > 0.0));
}

#[test]
#[ignore = "a benchmark: run with --ignored --nocapture (see BENCHMARKS.md)"]
fn block_path_cost_per_transfer() {
    let senders: usize = std::env::var("BLOCK_PATH_SENDERS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(4_000);
    let per_sender: u64 = std::env::var("BLOCK_PATH_PER_SENDER")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(2);
    let blocks = 12;
    let steps = run(senders, per_sender, blocks);
    eprintln!(
        "{blocks} blocks of {} transfers from {senders} senders; microseconds per transfer, fastest / median:",
        senders as u64 * per_sender
    );
    for (name, values) in [
        ("proposer: build the block", &steps.build),
        ("proposer: commit", &steps.proposer_commit),
        ("validator: validate", &steps.validate),
        ("validator: commit", &steps.validator_commit),
    ] {
        let (fastest, median) = fastest_and_median(values);
        eprintln!("  {name:<28} {fastest:>6.2} / {median:>6.2}");
    }
    let total: Vec<f64> = (0..blocks)
        .map(|i| steps.validate[i] + steps.validator_commit[i])
        .collect();
    let (fastest, median) = fastest_and_median(&total);
    eprintln!("  {:<28} {fastest:>6.2} / {median:>6.2}", "validator: both");
}

// ----- catch-up: committing a run of synced blocks ------------------------

/// A chain of `blocks` blocks, each with one transfer from each of
/// `senders` keys (none with 0), as block sync carries it: the stored
/// block bytes and the encoded certificate. Built on a proposer in `dir`.
fn chain_for_sync(dir: &std::path::Path, senders: usize, blocks: usize) -> Vec<SyncBlock> {
    let proposer = open(dir, genesis(senders.max(1)));
    let keys: Vec<Keypair> = (0..senders).map(sender).collect();
    let mut parent_certificate = None;
    let mut chain = Vec::with_capacity(blocks);
    for block_index in 0..blocks {
        let batch = transfers(&proposer, &keys, block_index as u64, 1);
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        assert!(proposer.submit(&refs).iter().all(Result::is_ok));
        let block = build_next(&proposer, &parent_certificate);
        assert_eq!(block.transactions.len(), senders);
        let certificate = certify(&proposer, &block);
        proposer.commit(&block, &certificate).unwrap();
        chain.push(SyncBlock {
            height: block.header.height,
            block: proposer
                .store()
                .block_bytes(block.header.height)
                .unwrap()
                .unwrap(),
            certificate: codec::encode(&certificate),
        });
        parent_certificate = Some(certificate);
    }
    chain
}

/// The block and certificate of a synced block.
fn decode_synced(synced: &SyncBlock) -> (Block, CommitCertificate) {
    (
        codec::decode("block", &synced.block, limits::BLOCK_BYTES_MAX).unwrap(),
        codec::decode(
            "certificate",
            &synced.certificate,
            limits::CERTIFICATE_BYTES_MAX,
        )
        .unwrap(),
    )
}

/// A ledger over the in-memory store on `disk` (whose syncs and crashes
/// the tests count and cause).
fn memory_ledger(disk: &MemoryDisk, genesis: &Genesis) -> Ledger {
    let store = MemoryStore::open(disk, &identity(genesis), &genesis.state().unwrap()).unwrap();
    open_with(genesis.clone(), Arc::new(store))
}

fn identity(genesis: &Genesis) -> ChainIdentity {
    ChainIdentity {
        chain_id: genesis.chain_id.clone(),
        genesis_hash: genesis.hash(),
    }
}

/// Block sync commits a run of blocks with one sync (not one a block), and
/// the run is durable once `commit_synced` returns: a crash right after it
/// loses nothing.
#[test]
fn a_run_of_synced_blocks_is_committed_with_one_sync_and_survives_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let chain = chain_for_sync(dir.path(), 3, 6);
    let genesis = genesis(3);
    let chain_identity = identity(&genesis);
    let disk = MemoryDisk::new();
    let follower = memory_ledger(&disk, &genesis);
    let syncs_before = disk.syncs();
    assert_eq!(commit_synced(&follower, &chain), 6);
    assert_eq!(
        disk.syncs() - syncs_before,
        1,
        "a run of six blocks takes one sync"
    );
    assert_eq!(disk.unsynced_writes(), 0, "nothing is left unsynced");
    assert_eq!(follower.tip().height, Height(6));
    let tip_hash = follower.tip().hash;
    drop(follower);
    disk.crash();
    let reopened = MemoryStore::open(&disk, &chain_identity, &genesis.state().unwrap()).unwrap();
    assert_eq!(
        reopened.latest_height(),
        Height(6),
        "the run survived the crash"
    );
    assert_eq!(reopened.latest_block_hash(), tip_hash);

    // A crash in the middle of a run loses a suffix of it, never a block in
    // between: the store reopens at an earlier tip of the same chain.
    let disk = MemoryDisk::new();
    let follower = memory_ledger(&disk, &genesis);
    for synced in &chain[..4] {
        let (block, certificate) = decode_synced(synced);
        follower.commit_unsynced(&block, &certificate).unwrap();
    }
    assert!(disk.unsynced_writes() > 0);
    drop(follower);
    disk.crash();
    let reopened = MemoryStore::open(&disk, &chain_identity, &genesis.state().unwrap()).unwrap();
    assert_eq!(
        reopened.latest_height(),
        Height(0),
        "unsynced commits are lost whole"
    );
}

/// Catch-up speed: a follower commits a chain by block sync's ranges
/// (`SYNC_RANGE_BLOCKS` a run, one sync a run) against one synced commit a
/// block (how block sync committed before), both on RocksDB, on chains of
/// empty blocks and of small ones. Run on demand:
/// `cargo test --workspace --test block_path catch_up -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark: run with --ignored --nocapture (see BENCHMARKS.md)"]
fn catch_up_blocks_per_second() {
    let blocks: usize = std::env::var("CATCH_UP_BLOCKS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(2_000);
    let range = cairn_node::sync_core::SYNC_RANGE_BLOCKS as usize;
    for senders in [0, 10, 100] {
        let dir = tempfile::tempdir().unwrap();
        let chain = chain_for_sync(&dir.path().join("proposer"), senders, blocks);
        for round in 0..2 {
            for one_sync_a_run in [false, true] {
                let follower = open(
                    &dir.path()
                        .join(format!("follower-{round}-{one_sync_a_run}")),
                    genesis(senders.max(1)),
                );
                let started = Instant::now();
                if one_sync_a_run {
                    for run in chain.chunks(range) {
                        assert_eq!(commit_synced(&follower, run), run.len());
                    }
                } else {
                    for synced in &chain {
                        let (block, certificate) = decode_synced(synced);
                        follower.commit(&block, &certificate).unwrap();
                    }
                }
                let elapsed = started.elapsed().as_secs_f64();
                assert_eq!(follower.tip().height, Height(blocks as u64));
                eprintln!(
                    "{blocks} blocks of {senders} transfers, {}: {:.0} blocks/s ({:.1} s)",
                    if one_sync_a_run {
                        "one sync a run of 64"
                    } else {
                        "one sync a block"
                    },
                    blocks as f64 / elapsed,
                    elapsed
                );
            }
        }
    }
}
