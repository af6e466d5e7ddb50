//! The staking rules: bonding, the bounded set change, ordering and ties,
//! unbonding and its release, jailing, slashing and unjail, key rotation,
//! and stake conservation under random operations.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_state::{staking::power_change, LedgerState, Offence, StakingState, StateError};
use cairn_types::{
    Address, ChainId, Height, Keypair, PublicKey, SignedTransaction, StakingParams, Transaction,
    TransactionKind, Validator, ValidatorSet, VotingPower,
};
use proptest::prelude::*;

const POWER_UNIT: u64 = 100;

fn chain() -> ChainId {
    ChainId::new("cairn-staking").unwrap()
}

fn params() -> StakingParams {
    StakingParams {
        power_unit: POWER_UNIT,
        validators_max: 6,
        min_self_stake: POWER_UNIT,
        unbonding_period_blocks: 100,
        jail_blocks: 10,
        slash_fraction_bps: 500,
    }
}

/// Operator keys 1..=4 run the genesis validators (consensus keys 101..);
/// operators 5..=9 are funded accounts that may bond.
fn operator(n: u8) -> Keypair {
    Keypair::from_seed(&[n; 32])
}

fn consensus_key(n: u8) -> PublicKey {
    Keypair::from_seed(&[100 + n; 32]).public_key()
}

const FUNDS: u64 = 100_000;

fn genesis() -> LedgerState {
    let set = ValidatorSet::new(
        (1..=4u8)
            .map(|n| Validator {
                name: format!("v{n}"),
                public_key: consensus_key(n),
                power: VotingPower(1),
                operator: operator(n).address(),
            })
            .collect(),
    )
    .unwrap();
    let staking = StakingState::genesis(params(), &set, &[POWER_UNIT; 4]).unwrap();
    let accounts: Vec<(Address, u64)> = (1..=9u8).map(|n| (operator(n).address(), FUNDS)).collect();
    LedgerState::from_genesis_with_staking(&accounts, staking).unwrap()
}

fn sign(n: u8, nonce: u64, amount: u64, kind: TransactionKind, memo: &str) -> SignedTransaction {
    let keypair = operator(n);
    Transaction {
        chain_id: chain(),
        sender: keypair.public_key(),
        recipient: keypair.address(),
        amount,
        fee: 1,
        nonce,
        memo: memo.into(),
        kind,
    }
    .sign(&keypair)
}

fn bond(n: u8, nonce: u64, amount: u64) -> SignedTransaction {
    sign(
        n,
        nonce,
        amount,
        TransactionKind::Bond {
            validator_key: consensus_key(n),
        },
        &format!("v{n}"),
    )
}

/// Executes and applies one block; returns the error of a refused block.
/// Each offender misbehaved at the block's own height.
fn block(
    state: &mut LedgerState,
    transactions: &[SignedTransaction],
    offenders: &[Address],
) -> Result<(), StateError> {
    let height = Height(state.height().0 + 1);
    let offences: Vec<Offence> = offenders
        .iter()
        .map(|operator| Offence {
            operator: *operator,
            height,
        })
        .collect();
    block_with_offences(state, transactions, &offences)
}

fn block_with_offences(
    state: &mut LedgerState,
    transactions: &[SignedTransaction],
    offences: &[Offence],
) -> Result<(), StateError> {
    let outcome =
        state.execute_with_offenders(&chain(), operator(1).address(), transactions, offences)?;
    state.apply(&outcome).unwrap();
    Ok(())
}

fn empty_block(state: &mut LedgerState) {
    block(state, &[], &[]).unwrap();
}

fn power_in(set: &ValidatorSet, key: &PublicKey) -> u64 {
    set.index_of(key)
        .and_then(|index| set.get(index))
        .map_or(0, |validator| validator.power.0)
}

fn staking(state: &LedgerState) -> &StakingState {
    state.staking().unwrap()
}

/// balances + bonded + unbonding + slashed = the genesis supply.
fn assert_conserved(state: &LedgerState) {
    let staking = staking(state);
    let total = state.balances_total()
        + staking.total_bonded()
        + staking.total_unbonding()
        + staking.total_slashed();
    assert_eq!(total, 9 * FUNDS);
}

#[test]
fn a_bond_enters_the_set_two_heights_later_within_a_third_per_step() {
    let mut state = genesis();
    let genesis_set = staking(&state).current_set().clone();
    // Block 1 bonds power 3 for operator 5: the target wants it at 3, the
    // budget of a total of 4 is 1 per step.
    block(&mut state, &[bond(5, 0, 3 * POWER_UNIT)], &[]).unwrap();
    assert_conserved(&state);
    let key = consensus_key(5);
    // After block 1: the set of height 2 is still the genesis set, height
    // 3 gets the first unit.
    assert_eq!(staking(&state).current_set(), &genesis_set);
    assert_eq!(power_in(staking(&state).next_set(), &key), 1);
    let mut powers = vec![];
    for _ in 0..4 {
        let before = staking(&state).next_set().clone();
        empty_block(&mut state);
        let after = staking(&state).next_set().clone();
        assert!(
            power_change(&before, &after) <= (before.total_power().0 / 3).max(1),
            "a step moved more than a third"
        );
        powers.push(power_in(&after, &key));
    }
    // 4 -> 5 (budget 1) -> 6 (budget 1): power 2, then 3, then settled.
    assert_eq!(powers, vec![2, 3, 3, 3]);
    assert!(staking(&state).is_settled());
    assert_eq!(staking(&state).current_set().total_power().0, 7);
    // The operator paid amount + fee.
    assert_eq!(
        state.account(&operator(5).address()).unwrap().balance,
        FUNDS - 3 * POWER_UNIT - 1
    );
}

#[test]
fn sets_order_by_power_then_key_and_keep_the_most_powerful() {
    let mut state = genesis();
    // Five newcomers with 2 power each: the set holds 6 at most.
    let bonds: Vec<_> = (5..=9u8).map(|n| bond(n, 0, 2 * POWER_UNIT)).collect();
    block(&mut state, &bonds, &[]).unwrap();
    for _ in 0..20 {
        empty_block(&mut state);
    }
    let set = staking(&state).current_set();
    assert_eq!(set.len(), 6);
    let powers: Vec<u64> = set.validators().iter().map(|v| v.power.0).collect();
    assert_eq!(powers, vec![2, 2, 2, 2, 2, 1]);
    // Ties by key: the five newcomers in key order, then the smallest key
    // of the power-1 genesis validators.
    let mut newcomers: Vec<PublicKey> = (5..=9u8).map(consensus_key).collect();
    newcomers.sort();
    let keys: Vec<PublicKey> = set.validators().iter().map(|v| v.public_key).collect();
    assert_eq!(&keys[..5], &newcomers[..]);
    let smallest_genesis = (1..=4u8).map(consensus_key).min().unwrap();
    assert_eq!(keys[5], smallest_genesis);
    assert_eq!(
        set.validators()[0].name,
        "v".to_string()
            + &{
                let position = (5..=9u8)
                    .find(|n| consensus_key(*n) == newcomers[0])
                    .unwrap();
                position.to_string()
            }
    );
}

#[test]
fn unbonding_is_released_after_the_period_and_keeps_the_minimum() {
    let mut state = genesis();
    let op = operator(5).address();
    block(&mut state, &[bond(5, 0, 5 * POWER_UNIT)], &[]).unwrap();
    // Leaving less than the minimum bonded is refused.
    let below = sign(5, 1, 5 * POWER_UNIT - 50, TransactionKind::Unbond, "");
    assert!(matches!(
        block(&mut state, &[below], &[]).unwrap_err(),
        StateError::TransactionInvalid { source, .. } if matches!(*source, StateError::BelowMinSelfStake { .. })
    ));
    let too_much = sign(5, 1, 6 * POWER_UNIT, TransactionKind::Unbond, "");
    assert!(matches!(
        block(&mut state, &[too_much], &[]).unwrap_err(),
        StateError::TransactionInvalid { source, .. } if matches!(*source, StateError::InsufficientStake { .. })
    ));
    // Unbond all at height 2: released at the end of block 102.
    block(
        &mut state,
        &[sign(5, 1, 5 * POWER_UNIT, TransactionKind::Unbond, "")],
        &[],
    )
    .unwrap();
    assert!(staking(&state).candidate(&op).is_none());
    let entries = staking(&state).unbonding_of(&op);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].release_height.0, 102);
    let balance_before = state.account(&op).unwrap().balance;
    while state.height().0 < 101 {
        empty_block(&mut state);
    }
    assert_eq!(state.account(&op).unwrap().balance, balance_before);
    empty_block(&mut state);
    assert_eq!(state.height().0, 102);
    assert_eq!(
        state.account(&op).unwrap().balance,
        balance_before + 5 * POWER_UNIT
    );
    assert!(staking(&state).unbonding_of(&op).is_empty());
    assert_conserved(&state);
}

#[test]
fn only_the_operator_bonds_to_its_validator_and_keys_are_unique() {
    let mut state = genesis();
    // Operator 6 bonding to operator 1's consensus key.
    let foreign = sign(
        6,
        0,
        POWER_UNIT,
        TransactionKind::Bond {
            validator_key: consensus_key(1),
        },
        "",
    );
    let error = state.check_staking(&foreign).unwrap_err();
    assert_eq!(error.code(), Some("not_operator"), "{error}");
    // Unbond from an account that operates nothing.
    let stranger = sign(6, 0, 1, TransactionKind::Unbond, "");
    assert_eq!(
        state.check_staking(&stranger).unwrap_err().code(),
        Some("not_operator")
    );
    // A bond below the minimum.
    let small = bond(6, 0, POWER_UNIT - 1);
    assert_eq!(
        state.check_staking(&small).unwrap_err().code(),
        Some("below_min_self_stake")
    );
    // Unjail of a validator that is not jailed.
    let unjail = sign(1, 0, 0, TransactionKind::Unjail, "");
    assert_eq!(
        state.check_staking(&unjail).unwrap_err().code(),
        Some("not_jailed")
    );
    // The shape: a staking transaction names its sender as recipient.
    let mut misdirected = bond(6, 0, POWER_UNIT).transaction;
    misdirected.recipient = operator(7).address();
    let misdirected = misdirected.sign(&operator(6));
    let error = cairn_state::check_stateless(&chain(), &misdirected).unwrap_err();
    assert_eq!(error.code(), Some("bad_staking_transaction"));
    block(&mut state, &[bond(6, 0, POWER_UNIT)], &[]).unwrap();
    // Rotating to a key another validator holds is refused.
    let taken = sign(
        6,
        1,
        0,
        TransactionKind::RotateKey {
            new_validator_key: consensus_key(2),
        },
        "",
    );
    assert_eq!(
        state.check_staking(&taken).unwrap_err().code(),
        Some("key_in_use")
    );
}

#[test]
fn evidence_jails_slashes_and_removes_at_once_until_unjail() {
    let mut state = genesis();
    let offender = operator(2).address();
    let key = consensus_key(2);
    block(&mut state, &[], &[offender]).unwrap();
    let candidate = staking(&state).candidate(&offender).unwrap().clone();
    // 5% of 100 burned; jailed until height 1 + 10.
    assert_eq!(candidate.bonded, 95);
    assert_eq!(candidate.jailed_until.map(|h| h.0), Some(11));
    assert_eq!(staking(&state).total_slashed(), 5);
    // Still in the set of height 2, out of the set of height 3 at once
    // (a removal of a quarter of the power is within no budget: it is
    // exempt).
    assert!(staking(&state).current_set().index_of(&key).is_some());
    assert!(staking(&state).next_set().index_of(&key).is_none());
    assert_conserved(&state);
    // Unjail before the jail ends is refused, with the height.
    let early = sign(2, 0, 0, TransactionKind::Unjail, "");
    assert!(matches!(
        state.check_staking(&early).unwrap_err(),
        StateError::StillJailed { until } if until.0 == 11
    ));
    while state.height().0 < 10 {
        empty_block(&mut state);
    }
    // Height 11: accepted; but 95 < min_self_stake 100, so it stays out
    // until it bonds more.
    block(
        &mut state,
        &[sign(2, 0, 0, TransactionKind::Unjail, "")],
        &[],
    )
    .unwrap();
    empty_block(&mut state);
    assert!(staking(&state).next_set().index_of(&key).is_none());
    block(&mut state, &[bond(2, 1, 5)], &[]).unwrap();
    for _ in 0..3 {
        empty_block(&mut state);
    }
    assert_eq!(power_in(staking(&state).current_set(), &key), 1);
    assert_conserved(&state);
}

/// A validator run twice signs conflicting votes at several heights before
/// it leaves the set: the episode costs one slash. After unjail, evidence
/// of the old episode changes nothing; a new misbehaviour is punished.
#[test]
fn one_misbehaviour_episode_is_slashed_once() {
    let mut state = genesis();
    let offender = operator(2).address();
    let at = |height| Offence {
        operator: offender,
        height: Height(height),
    };
    // Block 1 records evidence of height 1; block 2 two more pieces.
    block_with_offences(&mut state, &[], &[at(1)]).unwrap();
    block_with_offences(&mut state, &[], &[at(1), at(2)]).unwrap();
    let candidate = staking(&state).candidate(&offender).unwrap().clone();
    assert_eq!(candidate.bonded, 95, "one slash of 5%");
    assert_eq!(
        candidate.jailed_until.map(|h| h.0),
        Some(11),
        "the jail is not extended"
    );
    assert_eq!(staking(&state).total_slashed(), 5);
    while state.height().0 < 10 {
        empty_block(&mut state);
    }
    block(
        &mut state,
        &[sign(2, 0, 0, TransactionKind::Unjail, "")],
        &[],
    )
    .unwrap();
    assert!(staking(&state)
        .candidate(&offender)
        .unwrap()
        .jailed_until
        .is_none());
    // Late evidence of the old episode: height 2, when it was still in the
    // set (it left with the set of 3, two heights after block 1).
    block_with_offences(&mut state, &[], &[at(2)]).unwrap();
    assert_eq!(staking(&state).candidate(&offender).unwrap().bonded, 95);
    // A new misbehaviour after the unjail is punished.
    let now = state.height().0 + 1;
    block_with_offences(&mut state, &[], &[at(now)]).unwrap();
    let candidate = staking(&state).candidate(&offender).unwrap();
    assert_eq!(candidate.bonded, 95 - 4, "5% of 95, rounded down");
    assert!(candidate.jailed_until.is_some());
    assert_conserved(&state);
}

#[test]
fn a_rotated_key_replaces_the_old_one_in_the_set() {
    let mut state = genesis();
    let new_key = Keypair::from_seed(&[200; 32]).public_key();
    block(
        &mut state,
        &[sign(
            3,
            0,
            0,
            TransactionKind::RotateKey {
                new_validator_key: new_key,
            },
            "",
        )],
        &[],
    )
    .unwrap();
    for _ in 0..6 {
        empty_block(&mut state);
    }
    let set = staking(&state).current_set();
    assert!(set.index_of(&consensus_key(3)).is_none());
    assert_eq!(power_in(set, &new_key), 1);
    assert_eq!(set.total_power().0, 4);
}

#[test]
fn the_set_never_becomes_empty() {
    let mut state = genesis();
    let unbonds: Vec<_> = (1..=4u8)
        .map(|n| sign(n, 0, POWER_UNIT, TransactionKind::Unbond, ""))
        .collect();
    block(&mut state, &unbonds, &[]).unwrap();
    for _ in 0..10 {
        empty_block(&mut state);
    }
    assert!(!staking(&state).current_set().is_empty());
    assert!(staking(&state).current_set().total_power().0 >= 1);
}

/// One random staking operation.
#[derive(Clone, Debug)]
enum Op {
    Bond(u8, u64),
    Unbond(u8, u64),
    Unjail(u8),
    Rotate(u8, u8),
    Jail(u8),
    Empty,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1..=9u8, 1..400u64).prop_map(|(n, amount)| Op::Bond(n, amount)),
        (1..=9u8, 1..400u64).prop_map(|(n, amount)| Op::Unbond(n, amount)),
        (1..=9u8).prop_map(Op::Unjail),
        (1..=9u8, 0..50u8).prop_map(|(n, seed)| Op::Rotate(n, seed)),
        (1..=9u8).prop_map(Op::Jail),
        Just(Op::Empty),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever happens, stake is conserved, a set is never empty, and a
    /// step moves at most a third of the power except for validators
    /// jailed by that very block.
    #[test]
    fn random_staking_keeps_its_invariants(ops in proptest::collection::vec(op(), 1..60)) {
        let mut state = genesis();
        let mut nonces = [0u64; 10];
        for op in ops {
            let (transactions, offenders) = match op {
                Op::Bond(n, amount) => (vec![bond(n, nonces[n as usize], amount)], vec![]),
                Op::Unbond(n, amount) => (
                    vec![sign(n, nonces[n as usize], amount, TransactionKind::Unbond, "")],
                    vec![],
                ),
                Op::Unjail(n) => (
                    vec![sign(n, nonces[n as usize], 0, TransactionKind::Unjail, "")],
                    vec![],
                ),
                Op::Rotate(n, seed) => (
                    vec![sign(
                        n,
                        nonces[n as usize],
                        0,
                        TransactionKind::RotateKey {
                            new_validator_key: Keypair::from_seed(&[seed.wrapping_add(150); 32])
                                .public_key(),
                        },
                        "",
                    )],
                    vec![],
                ),
                Op::Jail(n) => (vec![], vec![operator(n).address()]),
                Op::Empty => (vec![], vec![]),
            };
            let before = staking(&state).next_set().clone();
            let jailed_keys: Vec<PublicKey> = offenders
                .iter()
                .filter_map(|address| staking(&state).candidate(address).map(|c| c.validator_key))
                .collect();
            let accepted = block(&mut state, &transactions, &offenders).is_ok();
            if accepted {
                for transaction in &transactions {
                    let sender = transaction.transaction.sender.address();
                    let n = (1..=9u8).find(|n| operator(*n).address() == sender).unwrap();
                    nonces[n as usize] += 1;
                }
            } else {
                // A refused block changes nothing; go on with an empty one.
                block(&mut state, &[], &offenders).unwrap();
            }
            let after = staking(&state).next_set().clone();
            prop_assert!(!after.is_empty());
            let exempt: u64 = jailed_keys.iter().map(|key| power_in(&before, key)).sum();
            prop_assert!(
                power_change(&before, &after) <= (before.total_power().0 / 3).max(1) + exempt,
                "a step moved {} of {}", power_change(&before, &after), before.total_power().0
            );
            prop_assert!(after.len() as u64 <= params().validators_max.max(4));
            assert_conserved(&state);
        }
    }
}
