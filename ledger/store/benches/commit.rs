//! The block pipeline after consensus decides: execute a block of 5,000
//! pre-verified transfers (random senders and recipients) over 100,000 and
//! over 1,000,000 accounts, compute the state root, commit block,
//! certificate, indexes and accounts to RocksDB in one synced batch, and
//! apply the outcome to the in-memory state. Signing the transfers and
//! assembling the header happen outside the timed part.
//!
//! Run with `cargo bench -p cairn-store --profile dev --bench commit`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use cairn_state::LedgerState;
use cairn_store::{ChainIdentity, RocksStore, Store};
use cairn_types::{
    sha256, Address, Block, ChainId, CommitCertificate, CommitSignature, Hash, Header, Height,
    Keypair, Round, SignedTransaction, Timestamp, Transaction, ValidatorIndex, Vote, VoteType,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// Transfers per block.
const BLOCK_TRANSACTIONS: usize = 5_000;
/// Accounts with keys (senders), spread evenly over the slots.
const KEYED_ACCOUNTS_MAX: usize = 100_000;

/// xorshift64*: deterministic, no RNG crate.
struct Sequence(u64);

impl Sequence {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound
    }
}

struct Pipeline {
    chain_id: ChainId,
    validator: Keypair,
    store: RocksStore,
    state: LedgerState,
    senders: Vec<Keypair>,
    addresses: Vec<Address>,
    next_sender: usize,
    sequence: Sequence,
    last_certificate: Option<CommitCertificate>,
    /// Blocks run, time executing (with the root), committing, applying.
    totals: (u32, Duration, Duration, Duration),
    _directory: tempfile::TempDir,
}

impl Pipeline {
    fn new(accounts: usize) -> Pipeline {
        let chain_id = ChainId::new("bench").unwrap();
        let keyed = accounts.min(KEYED_ACCOUNTS_MAX);
        let stride = accounts / keyed;
        let mut addresses: Vec<Address> = (0..accounts)
            .map(|i| {
                let digest = sha256(&(i as u64).to_be_bytes());
                let mut address = [0u8; 20];
                address.copy_from_slice(&digest.0[..20]);
                Address(address)
            })
            .collect();
        let senders: Vec<Keypair> = (0..keyed)
            .map(|i| {
                let mut seed = [3u8; 32];
                seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
                let keypair = Keypair::from_seed(&seed);
                addresses[i * stride] = keypair.address();
                keypair
            })
            .collect();
        let genesis: Vec<(Address, u64)> = addresses.iter().map(|a| (*a, 1_000_000_000)).collect();
        let state = LedgerState::from_genesis(&genesis).unwrap();
        let directory = tempfile::tempdir().unwrap();
        let identity = ChainIdentity {
            chain_id: chain_id.clone(),
            genesis_hash: sha256(b"bench genesis"),
        };
        let store = RocksStore::open(&directory.path().join("store"), &identity, &state).unwrap();
        Pipeline {
            chain_id,
            validator: Keypair::from_seed(&[0xaa; 32]),
            store,
            state,
            senders,
            addresses,
            next_sender: 0,
            sequence: Sequence(0x9e37_79b9_7f4a_7c15),
            last_certificate: None,
            totals: (0, Duration::ZERO, Duration::ZERO, Duration::ZERO),
            _directory: directory,
        }
    }

    /// The next block's transfers: each from a different sender.
    fn transfers(&mut self) -> Vec<SignedTransaction> {
        (0..BLOCK_TRANSACTIONS)
            .map(|_| {
                let sender = &self.senders[self.next_sender];
                self.next_sender = (self.next_sender + 1) % self.senders.len();
                let recipient =
                    self.addresses[self.sequence.below(self.addresses.len() as u64) as usize];
                Transaction {
                    chain_id: self.chain_id.clone(),
                    sender: sender.public_key(),
                    recipient,
                    amount: 1 + self.sequence.below(1_000),
                    fee: 1,
                    nonce: self.state.next_nonce(&sender.address()),
                    memo: String::new(),
                    kind: cairn_types::TransactionKind::Transfer,
                }
                .sign(sender)
            })
            .collect()
    }

    fn block(
        &self,
        transactions: Vec<SignedTransaction>,
        state_root: Hash,
    ) -> (Block, CommitCertificate) {
        let height = Height(self.store.latest_height().0 + 1);
        let block = Block {
            header: Header {
                chain_id: self.chain_id.clone(),
                height,
                time: Timestamp(height.0 * 1_000),
                parent_hash: self.store.latest_block_hash(),
                proposer: self.validator.address(),
                transactions_root: Block::transactions_root_of(&transactions),
                state_root,
                parent_certificate_hash: Block::parent_certificate_hash_of(
                    self.last_certificate.as_ref(),
                ),
                evidence_hash: Block::evidence_hash_of(&[]),
                validator_set_hash: Hash::ZERO,
                next_validator_set_hash: Hash::ZERO,
            },
            transactions,
            parent_certificate: self.last_certificate.clone(),
            evidence: Vec::new(),
        };
        let message = Vote::signing_bytes(
            &self.chain_id,
            VoteType::Precommit,
            height,
            Round::ZERO,
            Some(block.hash()),
        );
        let certificate = CommitCertificate {
            height,
            round: Round::ZERO,
            block_hash: block.hash(),
            signatures: vec![CommitSignature {
                validator: ValidatorIndex(0),
                signature: self.validator.sign(&message),
            }],
        };
        (block, certificate)
    }

    /// One block through the pipeline; returns the timed part.
    fn run_block(&mut self) -> Duration {
        let transactions = self.transfers();
        let proposer = self.validator.address();

        let started = Instant::now();
        let outcome = self
            .state
            .execute(&self.chain_id, proposer, &transactions)
            .unwrap();
        let executed = started.elapsed();

        let (block, certificate) = self.block(transactions, outcome.state_root());

        let started = Instant::now();
        self.store
            .commit_block(&block, &certificate, &outcome)
            .unwrap();
        let committed = started.elapsed();
        let started = Instant::now();
        self.state.apply(&outcome).unwrap();
        let applied = started.elapsed();

        self.last_certificate = Some(certificate);
        self.totals.0 += 1;
        self.totals.1 += executed;
        self.totals.2 += committed;
        self.totals.3 += applied;
        executed + committed + applied
    }
}

fn commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("execute_root_commit");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(BLOCK_TRANSACTIONS as u64));
    for accounts in [100_000usize, 1_000_000] {
        let mut pipeline = Pipeline::new(accounts);
        group.bench_function(
            format!("{BLOCK_TRANSACTIONS}_transfers_{accounts}_accounts"),
            |b| b.iter_custom(|iterations| (0..iterations).map(|_| pipeline.run_block()).sum()),
        );
        // What start-up costs at this size: read every account and rebuild
        // the tree.
        let started = Instant::now();
        let loaded = pipeline.store.load_state().unwrap();
        eprintln!(
            "{accounts} accounts: load_state (scan + tree rebuild) took {:.2?}",
            started.elapsed()
        );
        assert_eq!(loaded.root(), pipeline.state.root());
        let (blocks, executed, committed, applied) = pipeline.totals;
        if blocks > 0 {
            let per_transfer = |total: Duration| {
                total.as_secs_f64() * 1e6 / f64::from(blocks) / BLOCK_TRANSACTIONS as f64
            };
            eprintln!(
                "{accounts} accounts, {blocks} blocks, per transfer: execute + root {:.2} us, commit {:.2} us, apply {:.2} us",
                per_transfer(executed),
                per_transfer(committed),
                per_transfer(applied),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, commit);
criterion_main!(benches);
