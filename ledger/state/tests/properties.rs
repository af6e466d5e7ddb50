//! Property tests of execution: supply is conserved (fees included), nonces
//! only increase, a block with one bad transfer changes nothing, the root
//! moves with any account and always equals a from-scratch rebuild, and
//! execution agrees with a plain model of the rules.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use cairn_state::{Account, LedgerState, StateError};
use cairn_types::{Address, ChainId, Keypair, SignedTransaction, Transaction};
use proptest::prelude::*;

/// Keyed accounts the tests send from.
const KEYS: usize = 6;
/// Extra addresses without keys, only ever credited (they start absent).
const STRANGERS: usize = 3;

fn chain() -> ChainId {
    ChainId::new("prop-chain").unwrap()
}

fn keypair(index: usize) -> Keypair {
    Keypair::from_seed(&[index as u8 + 1; 32])
}

fn address(index: usize) -> Address {
    if index < KEYS {
        keypair(index).address()
    } else {
        Address([0xa0 + index as u8; 20])
    }
}

/// The proposer is a stranger too, so fees create or credit its account.
fn proposer() -> Address {
    Address([0xee; 20])
}

/// A candidate transfer: sender, recipient, amount, fee, nonce skew
/// (0 most of the time: the right nonce).
#[derive(Clone, Debug)]
struct Candidate {
    from: usize,
    to: usize,
    amount: u64,
    fee: u64,
    nonce_skew: i8,
}

fn candidate() -> impl Strategy<Value = Candidate> {
    (
        0..KEYS,
        0..KEYS + STRANGERS,
        0..400u64,
        0..30u64,
        prop_oneof![8 => Just(0i8), 1 => -1..=2i8],
    )
        .prop_map(|(from, to, amount, fee, nonce_skew)| Candidate {
            from,
            to,
            amount,
            fee,
            nonce_skew,
        })
}

fn sign(candidate: &Candidate, nonce: u64) -> SignedTransaction {
    let keypair = keypair(candidate.from);
    Transaction {
        chain_id: chain(),
        sender: keypair.public_key(),
        recipient: address(candidate.to),
        amount: candidate.amount,
        fee: candidate.fee,
        nonce,
        memo: String::new(),
        kind: cairn_types::TransactionKind::Transfer,
    }
    .sign(&keypair)
}

fn genesis(balances: &[u64]) -> LedgerState {
    let accounts: Vec<(Address, u64)> = balances
        .iter()
        .enumerate()
        .map(|(index, balance)| (address(index), *balance))
        .collect();
    LedgerState::from_genesis(&accounts).unwrap()
}

/// The plain model: a map of accounts and the rules applied one by one.
#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    accounts: BTreeMap<Address, Account>,
}

impl Model {
    fn apply_block(&mut self, transactions: &[SignedTransaction], proposer: Address) -> bool {
        let mut next = self.clone();
        let mut fees = 0u64;
        for transaction in transactions {
            let transfer = &transaction.transaction;
            let sender = transfer.sender.address();
            let mut from = next.accounts.get(&sender).copied().unwrap_or_default();
            let Some(need) = transfer.amount.checked_add(transfer.fee) else {
                return false;
            };
            if transfer.nonce != from.nonce || from.balance < need {
                return false;
            }
            from.balance -= need;
            from.nonce += 1;
            next.accounts.insert(sender, from);
            let to = next.accounts.entry(transfer.recipient).or_default();
            to.balance += transfer.amount;
            fees += transfer.fee;
        }
        if fees > 0 {
            next.accounts.entry(proposer).or_default().balance += fees;
        }
        *self = next;
        true
    }
}

fn model_of(state: &LedgerState) -> Model {
    Model {
        accounts: state
            .iter()
            .map(|(_, address, account)| (address, account))
            .collect(),
    }
}

/// Builds a block the way a proposer does: pushes each candidate with the
/// sender's next nonce (plus skew) and skips the refused ones. Returns the
/// accepted transfers and the root the builder computed.
fn build_block(
    state: &LedgerState,
    candidates: &[Candidate],
) -> (Vec<SignedTransaction>, cairn_types::Hash) {
    let chain = chain();
    let mut execution = state.begin_block(&chain, proposer());
    let mut accepted = Vec::new();
    for candidate in candidates {
        let sender = address(candidate.from);
        let nonce = execution.account(&sender).unwrap_or_default().nonce;
        let nonce = nonce.saturating_add_signed(i64::from(candidate.nonce_skew));
        let transaction = sign(candidate, nonce);
        if execution.push(&transaction).is_ok() {
            accepted.push(transaction);
        }
    }
    (accepted, execution.finish().unwrap().state_root())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn supply_is_conserved_and_nonces_only_increase(
        balances in proptest::collection::vec(0..1_000u64, KEYS),
        blocks in proptest::collection::vec(proptest::collection::vec(candidate(), 0..12), 1..6),
    ) {
        let chain = chain();
        let mut state = genesis(&balances);
        let supply = balances.iter().sum::<u64>();
        prop_assert_eq!(state.total_supply(), supply);
        let mut model = model_of(&state);
        for candidates in &blocks {
            let (transactions, built_root) = build_block(&state, candidates);
            let outcome = state.execute(&chain, proposer(), &transactions).unwrap();
            // Refused pushes left the builder exactly as if never tried.
            prop_assert_eq!(outcome.state_root(), built_root);
            prop_assert!(model.apply_block(&transactions, proposer()));
            let before = state.clone();
            state.apply(&outcome).unwrap();

            // Execution agrees with the model, and the supply is conserved.
            prop_assert_eq!(&model_of(&state), &model);
            let sum: u64 = state.iter().map(|(_, _, account)| account.balance).sum();
            prop_assert_eq!(sum, supply);
            prop_assert_eq!(state.total_supply(), supply);

            // Nonces only increase; accounts never disappear.
            for (_, address, account) in before.iter() {
                let after = state.account(&address).unwrap();
                prop_assert!(after.nonce >= account.nonce);
            }

            // The root is the root of a from-scratch rebuild.
            let rebuilt = LedgerState::from_slots(state.iter().map(|(_, a, acc)| (a, acc))).unwrap();
            prop_assert_eq!(rebuilt.root(), state.root());
            prop_assert_eq!(outcome.state_root(), state.root());
            // ... and proofs hold for every account.
            for (_, address, account) in state.iter() {
                let proof = state.prove(&address).unwrap();
                prop_assert!(proof.verify(&state.accounts_root(), &address, &account));
            }
        }
    }

    #[test]
    fn a_block_with_one_bad_transfer_changes_nothing(
        balances in proptest::collection::vec(100..1_000u64, KEYS),
        candidates in proptest::collection::vec(candidate(), 1..12),
        bad_position in any::<prop::sample::Index>(),
        fault in 0..4u8,
    ) {
        let chain = chain();
        let state = genesis(&balances);
        let (mut transactions, _) = build_block(&state, &candidates);
        prop_assume!(!transactions.is_empty());
        let index = bad_position.index(transactions.len());
        let keypair = keypair(
            (0..KEYS)
                .find(|&i| keypair(i).public_key() == transactions[index].transaction.sender)
                .unwrap(),
        );
        let mut transfer = transactions[index].transaction.clone();
        match fault {
            0 => transfer.nonce += 1_000,
            1 => transfer.amount = u64::MAX / 2,
            2 => transfer.chain_id = ChainId::new("other-chain").unwrap(),
            _ => transfer.memo = "m".repeat(cairn_types::limits::MEMO_BYTES_MAX + 1),
        }
        transactions[index] = transfer.sign(&keypair);
        let root = state.root();
        let error = state.execute(&chain, proposer(), &transactions).unwrap_err();
        match error {
            StateError::TransactionInvalid { index: failed, .. } => prop_assert_eq!(failed, index),
            other => prop_assert!(false, "unexpected error {other:?}"),
        }
        prop_assert_eq!(state.root(), root);
        prop_assert_eq!(state.total_supply(), balances.iter().sum::<u64>());
    }

    #[test]
    fn the_root_changes_with_any_account_change(
        balances in proptest::collection::vec(0..1_000_000u64, 1..40),
        which in any::<prop::sample::Index>(),
        balance_delta in 1..1_000u64,
        nonce_delta in 0..3u64,
    ) {
        let state = genesis(&balances);
        let slot = which.index(balances.len());
        let mut accounts: Vec<(Address, Account)> = state.iter().map(|(_, a, acc)| (a, acc)).collect();
        accounts[slot].1.balance = accounts[slot].1.balance.wrapping_add(balance_delta);
        accounts[slot].1.nonce += nonce_delta;
        let changed = LedgerState::from_slots(accounts.clone()).unwrap();
        prop_assert_ne!(changed.root(), state.root());
        // Swapping two accounts' slots also changes the root.
        if accounts.len() > 1 {
            let last = accounts.len() - 1;
            accounts.swap(0, last);
            prop_assert_ne!(LedgerState::from_slots(accounts).unwrap().root(), changed.root());
        }
    }
}
