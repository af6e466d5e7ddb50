//! Table-driven tests of the transfer rules: every invalid case gets its
//! typed error, fees go to the proposer, self-transfers conserve supply,
//! signatures are checked by the batch helper, and genesis refuses
//! duplicates and overflow.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_state::{
    check_stateless, signature_verdicts, verify_signatures, Account, LedgerState, StateError,
};
use cairn_types::{
    limits::MEMO_BYTES_MAX, Address, ChainId, Keypair, SignedTransaction, Transaction,
};

fn chain() -> ChainId {
    ChainId::new("rules-chain").unwrap()
}

fn alice() -> Keypair {
    Keypair::from_seed(&[1; 32])
}

fn bob() -> Address {
    Keypair::from_seed(&[2; 32]).address()
}

const PROPOSER: Address = Address([0x77; 20]);

fn transfer(amount: u64, fee: u64, nonce: u64) -> Transaction {
    Transaction {
        chain_id: chain(),
        sender: alice().public_key(),
        recipient: bob(),
        amount,
        fee,
        nonce,
        memo: String::new(),
        kind: cairn_types::TransactionKind::Transfer,
    }
}

fn state() -> LedgerState {
    LedgerState::from_genesis(&[(alice().address(), 1_000), (bob(), 5)]).unwrap()
}

#[test]
fn each_invalid_transfer_has_its_typed_error() {
    let state = state();
    let cases: Vec<(&str, Transaction, StateError)> = vec![
        (
            "wrong chain",
            Transaction {
                chain_id: ChainId::new("other").unwrap(),
                ..transfer(1, 1, 0)
            },
            StateError::WrongChain {
                expected: chain(),
                got: ChainId::new("other").unwrap(),
            },
        ),
        (
            "nonce too high",
            transfer(1, 1, 1),
            StateError::BadNonce {
                expected: 0,
                got: 1,
            },
        ),
        (
            "insufficient funds",
            transfer(990, 11, 0),
            StateError::InsufficientFunds {
                need: 1_001,
                have: 1_000,
            },
        ),
        (
            "amount + fee overflows",
            transfer(u64::MAX, 1, 0),
            StateError::Overflow {
                what: "amount + fee",
            },
        ),
        (
            "memo too long",
            Transaction {
                memo: "x".repeat(MEMO_BYTES_MAX + 1),
                kind: cairn_types::TransactionKind::Transfer,
                ..transfer(1, 1, 0)
            },
            StateError::MemoTooLong {
                len: MEMO_BYTES_MAX + 1,
                max: MEMO_BYTES_MAX,
            },
        ),
    ];
    for (name, transaction, expected) in cases {
        let signed = transaction.sign(&alice());
        assert_eq!(
            state.check_transaction(&chain(), &signed),
            Err(expected.clone()),
            "{name}"
        );
        let error = state.execute(&chain(), PROPOSER, &[signed]).unwrap_err();
        assert_eq!(error, expected.clone().at_index(0), "{name}");
        assert!(!error.to_string().is_empty());
    }
}

#[test]
fn memo_at_the_limit_is_accepted() {
    let signed = Transaction {
        memo: "x".repeat(MEMO_BYTES_MAX),
        kind: cairn_types::TransactionKind::Transfer,
        ..transfer(1, 1, 0)
    }
    .sign(&alice());
    assert_eq!(check_stateless(&chain(), &signed), Ok(()));
}

#[test]
fn a_replayed_nonce_is_refused_in_the_same_block() {
    let state = state();
    let first = transfer(1, 1, 0).sign(&alice());
    let error = state
        .execute(&chain(), PROPOSER, &[first.clone(), first])
        .unwrap_err();
    assert_eq!(
        error,
        StateError::BadNonce {
            expected: 1,
            got: 0
        }
        .at_index(1)
    );
}

#[test]
fn the_recipient_balance_cannot_overflow() {
    let rich = Keypair::from_seed(&[3; 32]);
    let state = LedgerState::from_genesis(&[(rich.address(), 10), (bob(), u64::MAX - 20)]).unwrap();
    let signed = Transaction {
        sender: rich.public_key(),
        ..transfer(5, 0, 0)
    }
    .sign(&rich);
    assert!(state
        .execute(&chain(), PROPOSER, std::slice::from_ref(&signed))
        .is_ok());
    // Total supply is u64::MAX - 10: no valid block can overflow a balance.
    let state = LedgerState::from_genesis(&[(rich.address(), 10), (bob(), u64::MAX - 5)]);
    assert_eq!(
        state.unwrap_err(),
        StateError::Overflow {
            what: "total supply"
        }
    );
}

#[test]
fn fees_go_to_the_proposer_after_the_block() {
    let mut state = state();
    let transactions = vec![
        transfer(100, 3, 0).sign(&alice()),
        transfer(50, 2, 1).sign(&alice()),
    ];
    let outcome = state.execute(&chain(), PROPOSER, &transactions).unwrap();
    assert_eq!(outcome.fees(), 5);
    assert_eq!(outcome.transaction_count(), 2);
    state.apply(&outcome).unwrap();
    assert_eq!(
        state.account(&alice().address()),
        Some(Account {
            balance: 1_000 - 155,
            nonce: 2
        })
    );
    assert_eq!(
        state.account(&bob()),
        Some(Account {
            balance: 155,
            nonce: 0
        })
    );
    assert_eq!(
        state.account(&PROPOSER),
        Some(Account {
            balance: 5,
            nonce: 0
        })
    );
    assert_eq!(state.slot(&PROPOSER), Some(2));
    assert_eq!(state.total_supply(), 1_005);
    assert_eq!(state.len(), 3);
}

#[test]
fn a_block_without_fees_does_not_create_the_proposer() {
    let state = state();
    let outcome = state
        .execute(&chain(), PROPOSER, &[transfer(1, 0, 0).sign(&alice())])
        .unwrap();
    assert!(outcome
        .changes()
        .iter()
        .all(|change| change.address != PROPOSER));
    let empty = state.execute(&chain(), PROPOSER, &[]).unwrap();
    assert_eq!(empty.state_root(), state.root());
    assert!(empty.changes().is_empty());
}

#[test]
fn a_self_transfer_only_pays_the_fee() {
    let mut state = state();
    let signed = Transaction {
        recipient: alice().address(),
        ..transfer(400, 7, 0)
    }
    .sign(&alice());
    let outcome = state.execute(&chain(), PROPOSER, &[signed]).unwrap();
    state.apply(&outcome).unwrap();
    assert_eq!(
        state.account(&alice().address()),
        Some(Account {
            balance: 993,
            nonce: 1
        })
    );
    assert_eq!(state.total_supply(), 1_005);
    let sum: u64 = state.iter().map(|(_, _, account)| account.balance).sum();
    assert_eq!(sum, 1_005);
}

#[test]
fn new_accounts_take_the_next_slots_in_order() {
    let mut state = state();
    let carol = Address([0xc0; 20]);
    let dave = Address([0xd0; 20]);
    let transactions = vec![
        Transaction {
            recipient: dave,
            ..transfer(1, 0, 0)
        }
        .sign(&alice()),
        Transaction {
            recipient: carol,
            ..transfer(1, 1, 1)
        }
        .sign(&alice()),
    ];
    let outcome = state.execute(&chain(), PROPOSER, &transactions).unwrap();
    let created: Vec<(u64, Address)> = outcome
        .changes()
        .iter()
        .filter(|change| change.created)
        .map(|change| (change.slot, change.address))
        .collect();
    assert_eq!(created, vec![(2, dave), (3, carol), (4, PROPOSER)]);
    assert_eq!(outcome.account_count(), 5);
    state.apply(&outcome).unwrap();
    assert_eq!(state.slot(&carol), Some(3));
}

#[test]
fn an_outcome_applies_only_to_its_parent() {
    let mut state = state();
    let first = state
        .execute(&chain(), PROPOSER, &[transfer(1, 1, 0).sign(&alice())])
        .unwrap();
    let also_first = first.clone();
    state.apply(&first).unwrap();
    let error = state.apply(&also_first).unwrap_err();
    assert!(matches!(error, StateError::StaleOutcome { .. }), "{error}");
}

#[test]
fn execute_block_checks_the_header() {
    let state = state();
    let transactions = vec![transfer(1, 1, 0).sign(&alice())];
    let outcome = state.execute(&chain(), PROPOSER, &transactions).unwrap();
    let mut block = cairn_types::Block {
        header: cairn_types::Header {
            chain_id: chain(),
            height: cairn_types::Height(1),
            time: cairn_types::Timestamp(0),
            parent_hash: cairn_types::Hash::ZERO,
            proposer: PROPOSER,
            transactions_root: cairn_types::Block::transactions_root_of(&transactions),
            state_root: outcome.state_root(),
            parent_certificate_hash: cairn_types::Hash::ZERO,
            evidence_hash: cairn_types::Block::evidence_hash_of(&[]),
            validator_set_hash: cairn_types::Hash::ZERO,
            next_validator_set_hash: cairn_types::Hash::ZERO,
        },
        transactions,
        parent_certificate: None,
        evidence: Vec::new(),
    };
    assert_eq!(
        state
            .execute_block(&chain(), &block, &[])
            .unwrap()
            .state_root(),
        outcome.state_root()
    );
    block.header.state_root = cairn_types::Hash([1; 32]);
    assert!(matches!(
        state.execute_block(&chain(), &block, &[]),
        Err(StateError::StateRootMismatch { .. })
    ));
    assert!(matches!(
        state.execute_block(&ChainId::new("other").unwrap(), &block, &[]),
        Err(StateError::WrongChain { .. })
    ));
}

#[test]
fn signatures_are_verified_in_batches_with_the_culprit_named() {
    let mut transactions: Vec<SignedTransaction> = (0..5)
        .map(|nonce| transfer(1, 1, nonce).sign(&alice()))
        .collect();
    assert_eq!(verify_signatures(&transactions), Ok(()));
    transactions[3].signature.0[10] ^= 1;
    assert_eq!(
        verify_signatures(&transactions),
        Err(StateError::BadSignature.at_index(3))
    );
    assert_eq!(
        signature_verdicts(&transactions),
        vec![true, true, true, false, true]
    );
    // A transfer signed by someone else than its sender.
    let forged = SignedTransaction {
        transaction: transfer(1, 1, 0),
        signature: Keypair::from_seed(&[9; 32]).sign(&transfer(1, 1, 0).signing_bytes()),
    };
    assert!(verify_signatures(&[forged]).is_err());
}

#[test]
fn genesis_refuses_duplicates() {
    let error =
        LedgerState::from_genesis(&[(bob(), 1), (alice().address(), 2), (bob(), 3)]).unwrap_err();
    assert_eq!(error, StateError::DuplicateAccount { address: bob() });
    assert!(error.to_string().contains(&bob().to_string()));
}

#[test]
fn genesis_accessors() {
    let state = state();
    assert_eq!(state.len(), 2);
    assert!(!state.is_empty());
    assert_eq!(state.total_supply(), 1_005);
    assert_eq!(state.account(&Address([9; 20])), None);
    assert_eq!(state.next_nonce(&alice().address()), 0);
    assert_ne!(state.root(), LedgerState::empty().root());
    assert_eq!(
        LedgerState::empty().root(),
        LedgerState::from_genesis(&[]).unwrap().root()
    );
}

/// The fee rules: a minimum fee, no unfunded sender, no account created
/// or left with less than the existential deposit; fees and conservation
/// hold under them.
#[test]
fn fee_rules_refuse_spam_and_dust() {
    let rules = cairn_types::FeeParams {
        min_fee: 2,
        existential_deposit: 10,
    };
    let state = state().with_fee_params(rules);
    let code = |transaction: Transaction, key: &Keypair| {
        state
            .execute(&chain(), PROPOSER, &[transaction.sign(key)])
            .map(|_| ())
            .map_err(|error| match error {
                StateError::TransactionInvalid { source, .. } => source.code().unwrap(),
                other => panic!("{other}"),
            })
    };
    assert_eq!(code(transfer(10, 1, 0), &alice()), Err("fee_too_low"));
    // bob holds 5 (a genesis balance below the deposit is not refused by
    // the state), any transfer to him is fine; a new account needs 10.
    assert_eq!(code(transfer(1, 2, 0), &alice()), Ok(()));
    let stranger = Keypair::from_seed(&[9; 32]);
    let to_new = |amount| Transaction {
        recipient: stranger.address(),
        ..transfer(amount, 2, 0)
    };
    assert_eq!(code(to_new(9), &alice()), Err("below_existential_deposit"));
    assert_eq!(code(to_new(10), &alice()), Ok(()));
    // Leaving 1..9 behind is dust; leaving 0 is fine.
    assert_eq!(
        code(transfer(990, 2, 0), &alice()),
        Err("below_existential_deposit")
    );
    assert_eq!(code(transfer(998, 2, 0), &alice()), Ok(()));
    // A key that was never funded sends nothing, even for free.
    let unfunded = Transaction {
        sender: stranger.public_key(),
        recipient: stranger.address(),
        ..transfer(0, 2, 0)
    };
    assert_eq!(code(unfunded, &stranger), Err("unknown_sender"));
    // The rules survive as the state moves on, and supply is conserved.
    let mut state = state.clone();
    let outcome = state
        .execute(&chain(), PROPOSER, &[to_new(10).sign(&alice())])
        .unwrap();
    state.apply(&outcome).unwrap();
    assert_eq!(state.fee_params(), rules);
    assert_eq!(state.total_supply(), 1_005);
    assert_eq!(state.account(&PROPOSER).unwrap().balance, 2);
}
