//! State-only benchmark: execute a block of 5,000 pre-verified transfers
//! between random accounts and compute the new state root, over 100,000
//! and 1,000,000 accounts. No disk. Run with
//! `cargo bench -p cairn-state --profile dev`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use cairn_state::LedgerState;
use cairn_types::{sha256, Address, ChainId, Keypair, SignedTransaction, Transaction};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// Transfers per block.
const BLOCK_TRANSACTIONS: usize = 5_000;

/// A small deterministic generator (xorshift64*), so the benchmark needs no
/// RNG crate.
struct Sequence(u64);

impl Sequence {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// `accounts` funded accounts, of which `BLOCK_TRANSACTIONS` (spread over
/// all slots) have keys; and one block where each keyed account sends
/// once to a random account.
fn workload(accounts: usize) -> (LedgerState, Vec<SignedTransaction>) {
    let chain = ChainId::new("bench").unwrap();
    let stride = accounts / BLOCK_TRANSACTIONS;
    let mut genesis: Vec<(Address, u64)> = (0..accounts)
        .map(|i| {
            let digest = sha256(&(i as u64).to_be_bytes());
            let mut address = [0u8; 20];
            address.copy_from_slice(&digest.0[..20]);
            (Address(address), 1_000_000_000)
        })
        .collect();
    let keys: Vec<Keypair> = (0..BLOCK_TRANSACTIONS)
        .map(|i| {
            let mut seed = [7u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let keypair = Keypair::from_seed(&seed);
            genesis[i * stride].0 = keypair.address();
            keypair
        })
        .collect();
    let state = LedgerState::from_genesis(&genesis).unwrap();
    let mut sequence = Sequence(0x9e37_79b9_7f4a_7c15);
    let transactions = keys
        .iter()
        .map(|keypair| {
            let recipient = genesis[(sequence.next() % accounts as u64) as usize].0;
            Transaction {
                chain_id: chain.clone(),
                sender: keypair.public_key(),
                recipient,
                amount: 1 + sequence.next() % 1_000,
                fee: 1,
                nonce: 0,
                memo: String::new(),
                kind: cairn_types::TransactionKind::Transfer,
            }
            .sign(keypair)
        })
        .collect();
    (state, transactions)
}

fn execute(c: &mut Criterion) {
    let chain = ChainId::new("bench").unwrap();
    let proposer = Address([0xfe; 20]);
    let mut group = c.benchmark_group("execute_and_root");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(BLOCK_TRANSACTIONS as u64));
    for accounts in [100_000usize, 1_000_000] {
        let (state, transactions) = workload(accounts);
        group.bench_function(
            format!("{BLOCK_TRANSACTIONS}_transfers_{accounts}_accounts"),
            |b| {
                b.iter(|| {
                    let outcome = state.execute(&chain, proposer, &transactions).unwrap();
                    criterion::black_box(outcome.state_root())
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, execute);
criterion_main!(benches);
