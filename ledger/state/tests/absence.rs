//! Proofs of absence and the successor ring (see `cairn_state::tree`):
//! after blocks that create accounts at random addresses, the state equals
//! a from-scratch rebuild, every address without an account has an
//! absence proof that verifies, no address with one does, and tampered
//! proofs (another neighbour, a moved successor, a changed balance, a gap
//! that does not hold the address) fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_state::{AbsenceProof, Account, LedgerState};
use cairn_types::{Address, ChainId, Keypair, SignedTransaction, Transaction, TransactionKind};
use proptest::prelude::*;

/// Keyed senders; each starts with enough to create many accounts.
const SENDERS: usize = 3;

fn chain() -> ChainId {
    ChainId::new("absence-chain").unwrap()
}

fn keypair(index: usize) -> Keypair {
    Keypair::from_seed(&[index as u8 + 1; 32])
}

fn transfer(from: usize, nonce: u64, to: Address) -> SignedTransaction {
    let keypair = keypair(from);
    Transaction {
        chain_id: chain(),
        sender: keypair.public_key(),
        recipient: to,
        amount: 1,
        fee: 0,
        nonce,
        memo: String::new(),
        kind: TransactionKind::Transfer,
    }
    .sign(&keypair)
}

/// Addresses drawn from a small alphabet of bytes, so probes often land on
/// an account, next to one, or past either end of the ring.
fn address() -> impl Strategy<Value = Address> {
    (0u8..6, any::<u8>()).prop_map(|(first, last)| {
        let mut bytes = [first * 40; 20];
        bytes[19] = last;
        Address(bytes)
    })
}

/// Checks every absence and presence claim about `probes` against `state`.
fn check_proofs(state: &LedgerState, probes: &[Address]) -> Result<(), TestCaseError> {
    let root = state.accounts_root();
    for probe in probes {
        match state.account(probe) {
            Some(account) => {
                prop_assert!(state.prove_absence(probe).is_none());
                let proof = state.prove(probe).unwrap();
                prop_assert!(proof.verify(&root, probe, &account));
            }
            None => {
                prop_assert!(state.prove(probe).is_none());
                let proof = state.prove_absence(probe).unwrap();
                prop_assert!(proof.verify(&root, probe), "absence of {probe:?}");
                let AbsenceProof::Gap {
                    neighbor,
                    account,
                    proof: path,
                } = &proof
                else {
                    prop_assert!(state.is_empty());
                    continue;
                };
                // The neighbour itself is not absent.
                prop_assert!(!proof.verify(&root, neighbor));
                // A changed balance, a moved successor or a path for
                // another slot fails.
                let forged = AbsenceProof::Gap {
                    neighbor: *neighbor,
                    account: Account {
                        balance: account.balance + 1,
                        ..*account
                    },
                    proof: path.clone(),
                };
                prop_assert!(!forged.verify(&root, probe));
                let mut moved = path.clone();
                moved.next = Address([0xff; 20]);
                if moved.next != path.next {
                    let forged = AbsenceProof::Gap {
                        neighbor: *neighbor,
                        account: *account,
                        proof: moved,
                    };
                    prop_assert!(!forged.verify(&root, probe));
                }
                if path.leaf_count > 1 {
                    let mut other_slot = path.clone();
                    other_slot.slot = (path.slot + 1) % path.leaf_count;
                    let forged = AbsenceProof::Gap {
                        neighbor: *neighbor,
                        account: *account,
                        proof: other_slot,
                    };
                    prop_assert!(!forged.verify(&root, probe));
                }
            }
        }
    }
    // No address with an account can be shown absent with another
    // address's absence proof: the gaps of the ring hold no account.
    for (_, present, _) in state.iter() {
        for probe in probes {
            if let Some(proof) = state.prove_absence(probe) {
                prop_assert!(!proof.verify(&root, &present));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn absence_proofs_hold_as_accounts_are_created(
        genesis_extra in proptest::collection::btree_set(address(), 0..8),
        blocks in proptest::collection::vec(proptest::collection::vec(address(), 0..10), 1..5),
        probes in proptest::collection::vec(address(), 1..24),
    ) {
        let chain = chain();
        let mut accounts: Vec<(Address, u64)> = (0..SENDERS)
            .map(|index| (keypair(index).address(), 1_000))
            .collect();
        let extra: Vec<(Address, u64)> = genesis_extra
            .into_iter()
            .filter(|address| accounts.iter().all(|(a, _)| a != address))
            .map(|address| (address, 5))
            .collect();
        accounts.extend(extra);
        let mut state = LedgerState::from_genesis(&accounts).unwrap();
        check_proofs(&state, &probes)?;
        let mut nonces = [0u64; SENDERS];
        for (number, recipients) in blocks.iter().enumerate() {
            let transactions: Vec<SignedTransaction> = recipients
                .iter()
                .enumerate()
                .map(|(index, to)| {
                    let from = (number + index) % SENDERS;
                    nonces[from] += 1;
                    transfer(from, nonces[from] - 1, *to)
                })
                .collect();
            let outcome = state
                .execute(&chain, keypair(0).address(), &transactions)
                .unwrap();
            state.apply(&outcome).unwrap();
            let rebuilt =
                LedgerState::from_slots(state.iter().map(|(_, a, account)| (a, account))).unwrap();
            prop_assert_eq!(rebuilt.root(), state.root());
            prop_assert_eq!(outcome.state_root(), state.root());
            let mut probes_and_recipients = probes.clone();
            probes_and_recipients.extend(recipients.iter().copied());
            check_proofs(&state, &probes_and_recipients)?;
        }
    }
}

#[test]
fn the_empty_state_proves_every_address_absent() {
    let state = LedgerState::empty();
    let probe = Address([7; 20]);
    let proof = state.prove_absence(&probe).unwrap();
    assert_eq!(proof, AbsenceProof::EmptyState);
    assert!(proof.verify(&state.accounts_root(), &probe));
    // ... and proves nothing about a state with an account.
    let one = LedgerState::from_genesis(&[(Address([1; 20]), 10)]).unwrap();
    assert!(!proof.verify(&one.accounts_root(), &probe));
    // There the single account is its own successor: every other address
    // is in its gap, and it is not.
    let proof = one.prove_absence(&probe).unwrap();
    assert!(proof.verify(&one.accounts_root(), &probe));
    assert!(one.prove_absence(&Address([1; 20])).is_none());
    assert!(!proof.verify(&one.accounts_root(), &Address([1; 20])));
}

/// Golden vectors of the state tree (`cairn_state::tree`, README "Formats"):
/// a leaf with its successor, the account-tree root and the state root of
/// three accounts, so a change to any of them is a visible format change.
#[test]
fn golden_vectors_of_the_state_tree() {
    let accounts = [
        (Address([0x30; 20]), 300),
        (Address([0x10; 20]), 100),
        (Address([0x20; 20]), 200),
    ];
    let state = LedgerState::from_genesis(&accounts).unwrap();
    let leaf = cairn_state::tree::leaf_hash(
        &Address([0x30; 20]),
        &Account {
            balance: 300,
            nonce: 0,
        },
        &Address([0x10; 20]),
    );
    let proof = state.prove(&Address([0x30; 20])).unwrap();
    assert_eq!(
        proof.next,
        Address([0x10; 20]),
        "the greatest wraps to the smallest"
    );
    let golden = [
        ("leaf", leaf.to_string()),
        ("accounts_root", state.accounts_root().to_string()),
        ("state_root", state.root().to_string()),
    ];
    let expected = [
        (
            "leaf",
            "ac63d4c707e8ea917554a4ff9827c8e6cbdbdbfa0c564ad13f4f9731e19d681c",
        ),
        (
            "accounts_root",
            "bc0d59e5d45bf6600858288e3690f4e65a34198e03b77eeb019573a267911240",
        ),
        (
            "state_root",
            "fc215466e6dc4df59510c70e489b94e1f824eab4f6d0953dc80a3c0c4ccd868f",
        ),
    ];
    for ((name, found), (_, want)) in golden.iter().zip(expected) {
        assert_eq!(
            found, want,
            "{name} changed: update README \"Formats\" and the store's FORMAT_VERSION"
        );
    }
}
