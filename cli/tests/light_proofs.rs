//! What the light client checks proofs with, over random trees: every
//! honest account proof and transaction audit path verifies, and every
//! tampering with one (the account, the address, the slot, the leaf
//! count, a sibling, the path's length, the staking hash; the
//! transaction, an audit-path hash, the index, the root) fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_state::{verify_in_state, Account, LedgerState};
use cairn_types::{
    merkle::{audit_path, merkle_root, verify_inclusion},
    sha256, Address, Hash,
};
use proptest::prelude::*;

fn flip(hash: &Hash, bit: usize) -> Hash {
    let mut bytes = hash.0;
    bytes[(bit / 8) % 32] ^= 1 << (bit % 8);
    Hash(bytes)
}

/// Distinct addresses with random accounts.
fn accounts() -> impl Strategy<Value = Vec<(Address, Account)>> {
    prop::collection::btree_map(any::<[u8; 20]>(), (any::<u64>(), any::<u64>()), 1..300).prop_map(
        |map| {
            map.into_iter()
                .map(|(address, (balance, nonce))| {
                    // Keep the total supply within u64.
                    let balance = balance % (1 << 40);
                    (Address(address), Account { balance, nonce })
                })
                .collect()
        },
    )
}

/// One way a node could lie about an account proof.
#[derive(Clone, Debug)]
enum AccountLie {
    Balance(u64),
    Nonce(u64),
    Address(u8),
    Slot(u64),
    LeafCount(u64),
    FlipSibling(usize, usize),
    DropSibling(usize),
    ExtraSibling([u8; 32]),
    StakingHash(usize),
    OtherAccountsProof(usize),
}

fn account_lie() -> impl Strategy<Value = AccountLie> {
    prop_oneof![
        (1..u64::MAX).prop_map(AccountLie::Balance),
        (1..u64::MAX).prop_map(AccountLie::Nonce),
        (1..=u8::MAX).prop_map(AccountLie::Address),
        (1..u64::MAX).prop_map(AccountLie::Slot),
        (1..u64::MAX).prop_map(AccountLie::LeafCount),
        (any::<usize>(), 0..256usize).prop_map(|(at, bit)| AccountLie::FlipSibling(at, bit)),
        any::<usize>().prop_map(AccountLie::DropSibling),
        any::<[u8; 32]>().prop_map(AccountLie::ExtraSibling),
        (0..256usize).prop_map(AccountLie::StakingHash),
        any::<usize>().prop_map(AccountLie::OtherAccountsProof),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn account_proofs_verify_and_forged_ones_fail(
        accounts in accounts(),
        pick in any::<usize>(),
        lie in account_lie(),
    ) {
        let state = LedgerState::from_slots(accounts.clone()).unwrap();
        let root = state.root();
        let staking = Hash::ZERO;
        let (address, account) = accounts[pick % accounts.len()];
        let proof = state.prove(&address).unwrap();
        prop_assert!(verify_in_state(&root, &staking, &address, &account, &proof));

        let (mut address, mut account, mut proof, mut staking) = (address, account, proof, staking);
        match lie {
            AccountLie::Balance(delta) => account.balance = account.balance.wrapping_add(delta),
            AccountLie::Nonce(delta) => account.nonce = account.nonce.wrapping_add(delta),
            AccountLie::Address(mask) => address.0[0] ^= mask,
            AccountLie::Slot(delta) => proof.slot = proof.slot.wrapping_add(delta),
            AccountLie::LeafCount(delta) => proof.leaf_count = proof.leaf_count.wrapping_add(delta),
            AccountLie::FlipSibling(at, bit) => {
                if proof.siblings.is_empty() {
                    proof.siblings.push(Hash::ZERO);
                } else {
                    let at = at % proof.siblings.len();
                    proof.siblings[at] = flip(&proof.siblings[at], bit);
                }
            }
            AccountLie::DropSibling(at) => {
                if proof.siblings.is_empty() {
                    proof.siblings.push(Hash::ZERO);
                } else {
                    proof.siblings.remove(at % proof.siblings.len());
                }
            }
            AccountLie::ExtraSibling(bytes) => proof.siblings.push(Hash(bytes)),
            AccountLie::StakingHash(bit) => staking = flip(&staking, bit),
            AccountLie::OtherAccountsProof(other) => {
                let other = other % accounts.len();
                prop_assume!(accounts[other].0 != address);
                proof = state.prove(&accounts[other].0).unwrap();
            }
        }
        prop_assert!(!verify_in_state(&root, &staking, &address, &account, &proof));
    }

    #[test]
    fn audit_paths_verify_and_forged_ones_fail(
        count in 1usize..400,
        seed in any::<u64>(),
        pick in any::<usize>(),
        lie in 0u8..7,
        at in any::<usize>(),
        bit in 0usize..256,
    ) {
        let leaves: Vec<Hash> = (0..count)
            .map(|index| sha256(&[seed.to_be_bytes(), (index as u64).to_be_bytes()].concat()))
            .collect();
        let root = merkle_root(&leaves);
        let index = pick % count;
        let path = audit_path(&leaves, index).unwrap();
        let (count_u64, index_u64) = (count as u64, index as u64);
        prop_assert!(verify_inclusion(&root, &leaves[index], index_u64, count_u64, &path));

        let (mut leaf, mut index_claimed, mut path, mut root) = (leaves[index], index_u64, path, root);
        match lie {
            // Another transaction.
            0 => leaf = flip(&leaf, bit),
            // A changed hash on the path (or one added to an empty path).
            1 => {
                if path.is_empty() {
                    path.push(leaf);
                } else {
                    let at = at % path.len();
                    path[at] = flip(&path[at], bit);
                }
            }
            // A hash left out.
            2 => {
                if path.is_empty() {
                    path.push(Hash::ZERO);
                } else {
                    path.remove(at % path.len());
                }
            }
            // A hash too many.
            3 => path.push(flip(&root, bit)),
            // Another position in the same block.
            4 => {
                prop_assume!(count > 1);
                index_claimed = (index_u64 + 1 + (at as u64 % (count_u64 - 1))) % count_u64;
            }
            // Another leaf count (and so another index).
            5 => {
                let claimed_count = count_u64 + 1 + (at as u64 % 3);
                prop_assert!(!verify_inclusion(&root, &leaf, index_claimed, claimed_count, &path));
                root = flip(&root, bit);
            }
            // Another block's root.
            _ => root = flip(&root, bit),
        }
        prop_assert!(!verify_inclusion(&root, &leaf, index_claimed, count_u64, &path));
    }
}

/// The figures of BENCHMARKS.md ("Light client"): proof sizes and
/// verification times at 1,000,000 accounts, and an audit path in a
/// block of the largest size. Run on demand:
/// `cargo test --workspace --test light_proofs -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark: about 10 s; run with --ignored --nocapture"]
fn proof_figures_at_a_million_accounts() {
    use std::time::Instant;
    const ACCOUNTS: u64 = 1_000_000;
    const SAMPLES: usize = 10_000;
    let started = Instant::now();
    let accounts = (0..ACCOUNTS).map(|index| {
        let mut address = [0u8; 20];
        address[..8].copy_from_slice(&sha256(&index.to_be_bytes()).0[..8]);
        address[8..16].copy_from_slice(&index.to_be_bytes());
        (
            Address(address),
            Account {
                balance: 1_000 + index,
                nonce: index % 7,
            },
        )
    });
    let state = LedgerState::from_slots(accounts).unwrap();
    let built = started.elapsed();
    let root = state.root();
    let picks: Vec<(Address, Account)> = state
        .iter()
        .step_by(ACCOUNTS as usize / SAMPLES)
        .map(|(_, address, account)| (address, account))
        .collect();
    let started = Instant::now();
    let proofs: Vec<_> = picks
        .iter()
        .map(|(address, _)| state.prove(address).unwrap())
        .collect();
    let proving = started.elapsed() / picks.len() as u32;
    let started = Instant::now();
    for ((address, account), proof) in picks.iter().zip(&proofs) {
        assert!(verify_in_state(&root, &Hash::ZERO, address, account, proof));
    }
    let verifying = started.elapsed() / picks.len() as u32;
    let proof = &proofs[0];
    let canonical = cairn_types::encode(proof).len();
    let json = serde_json::to_vec(proof).unwrap().len();
    println!(
        "accounts {ACCOUNTS}: tree built in {built:?}; proof: {} siblings, {canonical} canonical bytes, {json} JSON bytes; prove {proving:?}, verify {verifying:?} (mean of {} proofs)",
        proof.siblings.len(),
        picks.len()
    );
    assert_eq!(proof.siblings.len(), 20);

    // Proofs of absence: addresses between the accounts'.
    let absent: Vec<Address> = picks
        .iter()
        .map(|(address, _)| {
            let mut bytes = address.0;
            bytes[19] ^= 0x01;
            Address(bytes)
        })
        .filter(|address| state.account(address).is_none())
        .collect();
    let started = Instant::now();
    let absence: Vec<_> = absent
        .iter()
        .map(|address| state.prove_absence(address).unwrap())
        .collect();
    let proving = started.elapsed() / absent.len() as u32;
    let started = Instant::now();
    for (address, proof) in absent.iter().zip(&absence) {
        assert!(cairn_state::verify_absence_in_state(
            &root,
            &Hash::ZERO,
            address,
            proof
        ));
    }
    let verifying = started.elapsed() / absent.len() as u32;
    println!(
        "absence at {ACCOUNTS} accounts: {} canonical bytes, {} JSON bytes; prove {proving:?}, verify {verifying:?} (mean of {} proofs)",
        cairn_types::encode(&absence[0]).len(),
        serde_json::to_vec(&absence[0]).unwrap().len(),
        absent.len()
    );

    let count = cairn_types::limits::BLOCK_TRANSACTIONS_MAX;
    let leaves: Vec<Hash> = (0..count as u64)
        .map(|index| sha256(&index.to_be_bytes()))
        .collect();
    let root = merkle_root(&leaves);
    let path = audit_path(&leaves, count / 3).unwrap();
    let started = Instant::now();
    for _ in 0..SAMPLES {
        assert!(verify_inclusion(
            &root,
            &leaves[count / 3],
            (count / 3) as u64,
            count as u64,
            &path
        ));
    }
    let verifying = started.elapsed() / SAMPLES as u32;
    println!(
        "transactions {count}: audit path {} hashes, {} canonical bytes, {} JSON bytes; verify {verifying:?}",
        path.len(),
        cairn_types::encode(&path).len(),
        serde_json::to_vec(&path).unwrap().len()
    );
    assert_eq!(path.len(), 16);
}

/// The root a header names binds the leaf count, so an audit path proves
/// the index too: a bare RFC 6962 tree hash would let the path of leaf 2
/// of 3 also prove "leaf 1 of 2".
#[test]
fn an_audit_path_proves_the_index_too() {
    let leaves: Vec<Hash> = (0u8..3).map(|index| sha256(&[index])).collect();
    let root = merkle_root(&leaves);
    let path = audit_path(&leaves, 2).unwrap();
    assert!(verify_inclusion(&root, &leaves[2], 2, 3, &path));
    assert!(!verify_inclusion(&root, &leaves[2], 1, 2, &path));
    // The same path against the bare tree hash would have passed as both.
    let bare = cairn_types::merkle::tree_hash(&leaves);
    assert_eq!(
        cairn_types::merkle::counted_root(3, &bare),
        root,
        "the header's root is the counted tree hash"
    );
}
