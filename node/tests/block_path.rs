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
//! a small size, so the benchmark cannot rot.

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
    ledger::{BlockRequest, Ledger},
    mempool::MempoolLimits,
    metrics::Metrics,
};
use cairn_types::{
    Address, Block, CommitCertificate, ConsensusParams, Height, Keypair, SignedTransaction,
    Timestamp, Transaction,
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
    let limits = MempoolLimits {
        transactions_max: 100_000,
        bytes_max: 64 << 20,
        min_fee: 0,
    };
    Ledger::open(genesis, dir, limits, Arc::new(Metrics::default())).unwrap()
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
        let tip = proposer.tip();
        let started = Instant::now();
        let block = proposer
            .build_block(BlockRequest {
                proposer: validators()[0].address(),
                time: Timestamp(tip.time.0.max(GENESIS_TIME.0) + 1_000),
                parent_certificate: parent_certificate.clone(),
                evidence: Vec::new(),
            })
            .unwrap();
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
