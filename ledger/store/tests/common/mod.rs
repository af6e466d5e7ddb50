//! A test chain: funded keyed accounts, one validator, and blocks of real
//! signed transfers with their certificates and execution outcomes.
//! Shared by the contract tests, the crash test and the benchmarks.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use cairn_state::{ExecutionOutcome, LedgerState, StakingState};
use cairn_store::{ChainIdentity, Store};
use cairn_types::{
    sha256, Address, Block, ChainId, CommitCertificate, CommitSignature, Hash, Header, Height,
    Keypair, Round, SignedTransaction, StakingParams, Timestamp, Transaction, Validator,
    ValidatorIndex, ValidatorSet, Vote, VoteType, VotingPower,
};

/// Balance of every genesis account.
pub const GENESIS_BALANCE: u64 = 1_000_000_000;

/// A deterministic generator (xorshift64*), so tests need no RNG crate.
#[derive(Clone, Debug)]
pub struct Sequence(pub u64);

impl Sequence {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

pub fn keypair(index: u64) -> Keypair {
    let mut seed = [0x5au8; 32];
    seed[..8].copy_from_slice(&index.to_be_bytes());
    Keypair::from_seed(&seed)
}

/// An address nobody holds a key for.
pub fn stranger(index: u64) -> Address {
    let digest = sha256(&index.to_be_bytes());
    let mut address = [0u8; 20];
    address.copy_from_slice(&digest.0[..20]);
    Address(address)
}

/// A chain under construction, mirroring what a node would commit.
pub struct TestChain {
    pub chain_id: ChainId,
    pub identity: ChainIdentity,
    pub genesis: LedgerState,
    pub state: LedgerState,
    pub keys: Vec<Keypair>,
    pub validator: Keypair,
    pub height: Height,
    pub tip_hash: Hash,
    pub last_certificate: Option<CommitCertificate>,
    /// What headers name as their validator set (and next set).
    pub validator_set_hash: Hash,
}

impl TestChain {
    /// `keyed` accounts with keys, then `unkeyed` funded strangers.
    pub fn new(name: &str, keyed: u64, unkeyed: u64) -> TestChain {
        let chain_id = ChainId::new(name).unwrap();
        let keys: Vec<Keypair> = (0..keyed).map(keypair).collect();
        let mut accounts: Vec<(Address, u64)> = keys
            .iter()
            .map(|key| (key.address(), GENESIS_BALANCE))
            .collect();
        accounts.extend((0..unkeyed).map(|i| (stranger(i), GENESIS_BALANCE)));
        let genesis = LedgerState::from_genesis(&accounts).unwrap();
        let genesis_hash = sha256(format!("genesis of {name}").as_bytes());
        TestChain {
            identity: ChainIdentity {
                chain_id: chain_id.clone(),
                genesis_hash,
            },
            chain_id,
            state: genesis.clone(),
            genesis,
            keys,
            validator: Keypair::from_seed(&[0xaa; 32]),
            height: Height::GENESIS,
            tip_hash: genesis_hash,
            last_certificate: None,
            validator_set_hash: Hash::ZERO,
        }
    }

    /// Continues from what `store` holds (after a restart).
    pub fn resume(&mut self, store: &dyn Store) {
        self.state = store.load_state().unwrap();
        self.height = store.latest_height();
        self.tip_hash = store.latest_block_hash();
        self.last_certificate = store.certificate(self.height).unwrap();
    }

    pub fn proposer(&self) -> Address {
        self.validator.address()
    }

    /// Signed transfers between random keyed accounts (and sometimes to a
    /// new address), with the right nonces, for the next block.
    pub fn transfers(&self, count: usize, sequence: &mut Sequence) -> Vec<SignedTransaction> {
        let mut execution = self.state.begin_block(&self.chain_id, self.proposer());
        let mut accepted = Vec::with_capacity(count);
        for _ in 0..count {
            let sender = &self.keys[sequence.below(self.keys.len() as u64) as usize];
            let recipient = if sequence.below(10) == 0 {
                stranger(1_000_000 + sequence.below(1_000_000))
            } else {
                self.keys[sequence.below(self.keys.len() as u64) as usize].address()
            };
            let nonce = execution
                .account(&sender.address())
                .unwrap_or_default()
                .nonce;
            let transaction = Transaction {
                chain_id: self.chain_id.clone(),
                sender: sender.public_key(),
                recipient,
                amount: 1 + sequence.below(1_000),
                fee: sequence.below(3),
                nonce,
                memo: if sequence.below(4) == 0 {
                    "rent".to_string()
                } else {
                    String::new()
                },
                kind: cairn_types::TransactionKind::Transfer,
            }
            .sign(sender);
            if execution.push(&transaction).is_ok() {
                accepted.push(transaction);
            }
        }
        accepted
    }

    /// Builds the next block from `transactions`, its certificate and
    /// outcome, and advances the chain (as a node does after commit).
    pub fn next_block_with(
        &mut self,
        transactions: Vec<SignedTransaction>,
    ) -> (Block, CommitCertificate, ExecutionOutcome) {
        let outcome = self
            .state
            .execute(&self.chain_id, self.proposer(), &transactions)
            .unwrap();
        let block = self.block_for(transactions, &outcome);
        let certificate = self.certify(&block);
        self.advance(&block, &certificate, &outcome);
        (block, certificate, outcome)
    }

    /// The next block of `count` random transfers.
    pub fn next_block(&mut self, count: usize) -> (Block, CommitCertificate, ExecutionOutcome) {
        let mut sequence = Sequence(0x1234_5678 ^ (self.height.0 + 1).wrapping_mul(0x9e37_79b9));
        let transactions = self.transfers(count, &mut sequence);
        self.next_block_with(transactions)
    }

    pub fn block_for(
        &self,
        transactions: Vec<SignedTransaction>,
        outcome: &ExecutionOutcome,
    ) -> Block {
        let height = Height(self.height.0 + 1);
        Block {
            header: Header {
                chain_id: self.chain_id.clone(),
                height,
                time: Timestamp(1_700_000_000_000 + height.0 * 1_000),
                parent_hash: self.tip_hash,
                proposer: self.proposer(),
                transactions_root: Block::transactions_root_of(&transactions),
                state_root: outcome.state_root(),
                parent_certificate_hash: Block::parent_certificate_hash_of(
                    self.last_certificate.as_ref(),
                ),
                evidence_hash: Block::evidence_hash_of(&[]),
                validator_set_hash: self.validator_set_hash,
                next_validator_set_hash: self.validator_set_hash,
            },
            transactions,
            parent_certificate: self.last_certificate.clone(),
            evidence: Vec::new(),
        }
    }

    /// A one-signature certificate by the validator.
    pub fn certify(&self, block: &Block) -> CommitCertificate {
        let hash = block.hash();
        let message = Vote::signing_bytes(
            &self.chain_id,
            VoteType::Precommit,
            block.height(),
            Round::ZERO,
            Some(hash),
        );
        CommitCertificate {
            height: block.height(),
            round: Round::ZERO,
            block_hash: hash,
            signatures: vec![CommitSignature {
                validator: ValidatorIndex(0),
                signature: self.validator.sign(&message),
            }],
        }
    }

    pub fn advance(
        &mut self,
        block: &Block,
        certificate: &CommitCertificate,
        outcome: &ExecutionOutcome,
    ) {
        self.state.apply(outcome).unwrap();
        self.height = block.height();
        self.tip_hash = block.hash();
        self.last_certificate = Some(certificate.clone());
    }
}

/// Checks that everything `store` holds agrees: every block from 1 to the
/// latest height is there, links to its parent and carries the previous
/// certificate; its certificate decides it; the hash and transaction
/// indexes point at it; re-executing the blocks from genesis yields each
/// header's state root; and the stored accounts are that state.
pub fn check_consistency(store: &dyn Store, genesis: &LedgerState) {
    let chain_id = store.identity().chain_id.clone();
    let mut state = genesis.clone();
    let mut parent_hash = store.identity().genesis_hash;
    let mut parent_certificate: Option<CommitCertificate> = None;
    let latest = store.latest_height();
    for height in 1..=latest.0 {
        let height = Height(height);
        let block = store
            .block(height)
            .unwrap()
            .unwrap_or_else(|| panic!("block {height} is missing"));
        assert_eq!(block.header.parent_hash, parent_hash, "parent of {height}");
        assert_eq!(block.parent_certificate, parent_certificate, "{height}");
        block.check_structure().unwrap();
        let hash = block.hash();
        assert_eq!(store.block_height(&hash).unwrap(), Some(height));
        assert_eq!(store.header(height).unwrap().as_ref(), Some(&block.header));
        let certificate = store.certificate(height).unwrap().expect("certificate");
        assert_eq!(certificate.block_hash, hash);
        for (index, transaction) in block.transactions.iter().enumerate() {
            let record = store.transaction(&transaction.hash()).unwrap().unwrap();
            assert_eq!(record.height, height);
            assert_eq!(record.index as usize, index);
            assert_eq!(&record.transaction, transaction);
        }
        let outcome = state.execute_block(&chain_id, &block, &[]).unwrap();
        state.apply(&outcome).unwrap();
        parent_hash = hash;
        parent_certificate = Some(certificate);
    }
    assert!(store.block(Height(latest.0 + 1)).unwrap().is_none());
    assert!(store.certificate(Height(latest.0 + 1)).unwrap().is_none());
    assert_eq!(store.latest_block_hash(), parent_hash);
    assert_eq!(store.state_root(), state.root());
    let loaded = store.load_state().unwrap();
    assert_eq!(loaded.root(), state.root());
    for (_, address, account) in state.iter() {
        assert_eq!(store.account(&address).unwrap(), Some(account));
    }
}

/// A chain whose genesis has staking with one validator (the chain's),
/// so stores hold its validator set.
pub fn staking_chain(name: &str, accounts: u64) -> (TestChain, ValidatorSet) {
    let mut chain = TestChain::new(name, 8, accounts);
    let set = ValidatorSet::new(vec![Validator {
        name: "v0".into(),
        public_key: chain.validator.public_key(),
        power: VotingPower(10),
        operator: chain.validator.address(),
    }])
    .unwrap();
    let staking = StakingState::genesis(StakingParams::default(), &set, &[10_000_000]).unwrap();
    let mut balances: Vec<(Address, u64)> = chain
        .genesis
        .iter()
        .map(|(_, a, account)| (a, account.balance))
        .collect();
    balances.push((chain.validator.address(), 1_000_000_000));
    let genesis = LedgerState::from_genesis_with_staking(&balances, staking).unwrap();
    chain.genesis = genesis.clone();
    chain.state = genesis;
    chain.validator_set_hash = set.hash();
    (chain, set)
}
