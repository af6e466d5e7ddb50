//! Proof-of-stake: validator candidates and their bonded stake, unbonding
//! entries, jailing and slashing, and the validator set of each height.
//!
//! # The rules (consensus-critical; `STAKING.md` at the repository root
//! says them for operators)
//!
//! - A **candidate** is an operator account with a consensus key, a name
//!   and bonded stake. `bond { validator_key, amount }` creates one (the
//!   memo is its name) or adds to the sender's own; only the operator bonds
//!   to its validator, and a key belongs to one candidate.
//! - **Voting power** = bonded / `power_unit`. The *target* set is the
//!   non-jailed candidates with at least `min_self_stake` bonded and power
//!   of at least 1, the `validators_max` with the most power (ties: the
//!   smaller key first).
//! - **Timing**: the state after block H holds the set of H+1 (`current`)
//!   and of H+2 (`next`). Block H moves `next` to `current` and computes a
//!   new `next` from the candidates after H: the header of H+1 names the
//!   set of H+2 in `next_validator_set_hash`, as CometBFT does.
//! - **Bounded change**: the new `next` moves from the old one towards the
//!   target by at most a third of the old total power (or 1, if the total
//!   is below 3), counted as the sum of |power change| over keys: first
//!   the decreases, then the increases, each in key order, the last one
//!   partly. Larger changes take several heights. Validators jailed by
//!   this very block leave at once, outside the budget. Every change so
//!   moves less than a third of the power that signed the previous
//!   header, so at least one honest validator of a trusted set (more than
//!   two thirds honest, less than a third changed) signs the next set's
//!   first certificate too: a light client can follow the chain one
//!   header at a time.
//! - A set is never empty: if the target is empty, `next` stays as it is.
//! - **Unbonding**: `unbond { amount }` moves stake to an entry released to
//!   the operator's balance at the end of block `height +
//!   unbonding_period_blocks`; what stays bonded is 0 or at least
//!   `min_self_stake`; at most [`UNBONDING_ENTRIES_PER_OPERATOR_MAX`]
//!   entries per operator.
//! - **Evidence**: a block recording equivocation of a validator jails its
//!   candidate until `height + jail_blocks`, burns `slash_fraction_bps` of
//!   its bonded stake and of each of its unbonding entries, and removes it
//!   from `next` at once. `unjail` is accepted from that height on. One
//!   episode is punished once: evidence against a jailed candidate, or of
//!   a height up to the one after the block of its last punishment (the
//!   last height it was in the set), changes nothing.
//! - **Keys**: `rotate_key { new_validator_key }` replaces the candidate's
//!   key; the set changes with the next `next` (a removal of the old key
//!   and an addition of the new one, within the budget).
//! - A candidate with nothing bonded and no jail is removed.
//!
//! Stake is conserved: balances + bonded + unbonding + slashed equals the
//! genesis supply.

use std::collections::{BTreeMap, BTreeSet};

use cairn_types::{
    codec, limits::VALIDATOR_NAME_BYTES_MAX, sha256, Address, Hash, Height, PublicKey,
    StakingParams, Validator, ValidatorSet, VotingPower,
};
use serde::{Deserialize, Serialize};

use crate::StateError;

/// Most validator candidates a chain holds (each needs `min_self_stake`).
pub const CANDIDATES_MAX: usize = 1_024;
/// Most unbonding entries one operator may have at once.
pub const UNBONDING_ENTRIES_PER_OPERATOR_MAX: usize = 7;
/// Largest encoded staking state a store decodes.
pub const STAKING_STATE_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Domain separator of the staking hash.
const STAKING_HASH_DOMAIN: &[u8] = b"cairn/staking/v1\0";

/// One validator candidate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// The consensus key it votes with.
    pub validator_key: PublicKey,
    /// Its name (the memo of the bond that created it).
    pub name: String,
    /// Stake bonded now.
    pub bonded: u64,
    /// `Some(h)`: jailed, and `unjail` is accepted from height `h` on.
    pub jailed_until: Option<Height>,
    /// The last height of its last punished episode (the punishing block's
    /// height + 1, the last height it was still in the set): evidence of
    /// misbehaviour at or below it was paid for then.
    #[serde(default)]
    pub punished_through: Option<Height>,
}

/// One piece of evidence as the state sees it: whose validator
/// misbehaved (its operator), and at which height.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offence {
    /// The operator of the validator the evidence names.
    pub operator: Address,
    /// The height of the misbehaviour.
    pub height: Height,
}

/// Stake on its way back to an operator's balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnbondingEntry {
    /// The operator it returns to.
    pub operator: Address,
    /// The stake (less any slash).
    pub amount: u64,
    /// It returns at the end of this block.
    pub release_height: Height,
}

/// The staking part of the state. Its [`StakingState::hash`] is part of the
/// state root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StakingState {
    params: StakingParams,
    /// Candidates by operator.
    candidates: BTreeMap<Address, Candidate>,
    /// Unbonding entries by (release height, operator); one operator's
    /// entries of one height are merged.
    unbonding: BTreeMap<(Height, Address), u64>,
    /// The set of the next height to decide.
    current: ValidatorSet,
    /// The set of the height after it.
    next: ValidatorSet,
    /// Stake burned by slashes so far.
    slashed: u64,
    /// Whether `current`, `next` and the target set agree (then a block
    /// without staking changes leaves this state as it is).
    settled: bool,
}

/// One genesis validator: its set entry and the stake its operator bonds.
#[derive(Clone, Debug)]
pub struct GenesisStake {
    /// The set entry (name, key, power, operator).
    pub validator: Validator,
    /// Stake taken from the operator's genesis balance:
    /// power x `power_unit`.
    pub stake: u64,
}

/// A change to a candidate made by one staking transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StakingAction {
    /// Bond `amount` to `validator_key`, naming a new candidate `name`.
    Bond {
        /// The consensus key.
        validator_key: PublicKey,
        /// Stake to bond.
        amount: u64,
        /// The name of a new candidate.
        name: String,
    },
    /// Start unbonding `amount`.
    Unbond {
        /// Stake to unbond.
        amount: u64,
    },
    /// Leave jail.
    Unjail,
    /// Replace the consensus key.
    RotateKey {
        /// The new key.
        new_validator_key: PublicKey,
    },
}

/// What a checked staking action changes (see
/// [`StakingState::check_action`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The candidate's bonded stake becomes `bonded`.
    Bond {
        /// Stake bonded after.
        bonded: u64,
    },
    /// The candidate keeps `remaining`; the entry of `release_height`
    /// holds `unbonding`.
    Unbond {
        /// Stake bonded after.
        remaining: u64,
        /// When the entry is released.
        release_height: Height,
        /// The entry's amount after.
        unbonding: u64,
    },
    /// The jail ends.
    Unjail,
    /// The key becomes `new_key`.
    RotateKey {
        /// The new key.
        new_key: PublicKey,
    },
}

impl StakingState {
    /// The staking state before the first block: each genesis validator a
    /// candidate with its stake, and the genesis set as both `current` and
    /// `next`.
    pub fn genesis(
        params: StakingParams,
        validators: &ValidatorSet,
        stakes: &[u64],
    ) -> Result<StakingState, StateError> {
        let corrupt = |reason: String| StateError::CorruptStaking { reason };
        params
            .validate()
            .map_err(|error| corrupt(error.to_string()))?;
        if stakes.len() != validators.len() {
            return Err(corrupt(format!(
                "{} stakes for {} validators",
                stakes.len(),
                validators.len()
            )));
        }
        let mut candidates = BTreeMap::new();
        for (validator, stake) in validators.validators().iter().zip(stakes) {
            let candidate = Candidate {
                validator_key: validator.public_key,
                name: validator.name.clone(),
                bonded: *stake,
                jailed_until: None,
                punished_through: None,
            };
            if candidates.insert(validator.operator, candidate).is_some() {
                return Err(corrupt(format!(
                    "operator {} runs two genesis validators; one operator runs one validator",
                    validator.operator
                )));
            }
        }
        let mut state = StakingState {
            params,
            candidates,
            unbonding: BTreeMap::new(),
            current: validators.clone(),
            next: validators.clone(),
            slashed: 0,
            settled: false,
        };
        state.settled = state.target_matches_next();
        Ok(state)
    }

    /// Decodes a stored state (bounded by [`STAKING_STATE_BYTES_MAX`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<StakingState, StateError> {
        codec::decode("staking state", bytes, STAKING_STATE_BYTES_MAX).map_err(|error| {
            StateError::CorruptStaking {
                reason: error.to_string(),
            }
        })
    }

    /// The canonical bytes (what a store keeps and the hash covers).
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// The staking hash: SHA-256 of a domain tag and the canonical bytes.
    pub fn hash(&self) -> Hash {
        let mut bytes = STAKING_HASH_DOMAIN.to_vec();
        bytes.extend_from_slice(&self.to_bytes());
        sha256(&bytes)
    }

    /// The parameters.
    pub fn params(&self) -> &StakingParams {
        &self.params
    }

    /// The set of the next height to decide.
    pub fn current_set(&self) -> &ValidatorSet {
        &self.current
    }

    /// The set of the height after it.
    pub fn next_set(&self) -> &ValidatorSet {
        &self.next
    }

    /// Every candidate, by operator.
    pub fn candidates(&self) -> impl Iterator<Item = (&Address, &Candidate)> {
        self.candidates.iter()
    }

    /// The candidate `operator` runs.
    pub fn candidate(&self, operator: &Address) -> Option<&Candidate> {
        self.candidates.get(operator)
    }

    /// The operator whose candidate has `key` now.
    pub fn operator_of_key(&self, key: &PublicKey) -> Option<Address> {
        self.candidates
            .iter()
            .find(|(_, candidate)| candidate.validator_key == *key)
            .map(|(operator, _)| *operator)
    }

    /// The unbonding entries of `operator`, oldest first.
    pub fn unbonding_of(&self, operator: &Address) -> Vec<UnbondingEntry> {
        self.unbonding
            .iter()
            .filter(|((_, entry_operator), _)| entry_operator == operator)
            .map(|((release_height, operator), amount)| UnbondingEntry {
                operator: *operator,
                amount: *amount,
                release_height: *release_height,
            })
            .collect()
    }

    /// Total stake bonded.
    pub fn total_bonded(&self) -> u64 {
        self.candidates
            .values()
            .fold(0u64, |sum, candidate| sum.saturating_add(candidate.bonded))
    }

    /// Total stake unbonding.
    pub fn total_unbonding(&self) -> u64 {
        self.unbonding
            .values()
            .fold(0u64, |sum, amount| sum.saturating_add(*amount))
    }

    /// Stake burned by slashes so far.
    pub fn total_slashed(&self) -> u64 {
        self.slashed
    }

    /// Checks `action` of `operator` at `height` and applies it; on error
    /// nothing changes. Bonded stake must already be debited by the
    /// caller (a bond's amount comes out of the balance).
    pub fn apply_action(
        &mut self,
        operator: Address,
        height: Height,
        action: &StakingAction,
    ) -> Result<(), StateError> {
        let change = self.check_action(operator, height, action)?;
        match change {
            Change::Bond { bonded } => {
                if let StakingAction::Bond {
                    validator_key,
                    name,
                    ..
                } = action
                {
                    let candidate = self
                        .candidates
                        .entry(operator)
                        .or_insert_with(|| Candidate {
                            validator_key: *validator_key,
                            name: name.clone(),
                            bonded: 0,
                            jailed_until: None,
                            punished_through: None,
                        });
                    candidate.bonded = bonded;
                }
            }
            Change::Unbond {
                remaining,
                release_height,
                unbonding,
            } => {
                if let Some(candidate) = self.candidates.get_mut(&operator) {
                    candidate.bonded = remaining;
                }
                self.unbonding.insert((release_height, operator), unbonding);
                self.remove_if_empty(&operator);
            }
            Change::Unjail => {
                if let Some(candidate) = self.candidates.get_mut(&operator) {
                    candidate.jailed_until = None;
                }
                self.remove_if_empty(&operator);
            }
            Change::RotateKey { new_key } => {
                if let Some(candidate) = self.candidates.get_mut(&operator) {
                    candidate.validator_key = new_key;
                }
            }
        }
        self.settled = false;
        Ok(())
    }

    /// Checks `action` without applying it (no copy of the state: the
    /// mempool calls this for every staking transaction it admits), and
    /// says what applying it changes.
    pub fn check_action(
        &self,
        operator: Address,
        height: Height,
        action: &StakingAction,
    ) -> Result<Change, StateError> {
        match action {
            StakingAction::Bond {
                validator_key,
                amount,
                name,
            } => self.check_bond(operator, *validator_key, *amount, name),
            StakingAction::Unbond { amount } => self.check_unbond(operator, height, *amount),
            StakingAction::Unjail => self.check_unjail(operator, height),
            StakingAction::RotateKey { new_validator_key } => {
                self.check_rotate_key(operator, *new_validator_key)
            }
        }
    }

    /// Whether `key` is free for `operator`: no other candidate has it and
    /// no other operator's validator in `current` or `next` has it.
    fn key_is_free_for(&self, key: &PublicKey, operator: &Address) -> bool {
        let taken_by_candidate = self
            .candidates
            .iter()
            .any(|(other, candidate)| other != operator && candidate.validator_key == *key);
        let taken_in_sets = [&self.current, &self.next].iter().any(|set| {
            set.validators()
                .iter()
                .any(|validator| validator.public_key == *key && validator.operator != *operator)
        });
        !taken_by_candidate && !taken_in_sets
    }

    fn check_bond(
        &self,
        operator: Address,
        validator_key: PublicKey,
        amount: u64,
        name: &str,
    ) -> Result<Change, StateError> {
        if amount == 0 {
            return Err(StateError::BadStakingTransaction {
                reason: "a bond must move more than 0".into(),
            });
        }
        let min = self.params.min_self_stake;
        match self.candidates.get(&operator) {
            Some(candidate) if candidate.validator_key != validator_key => {
                return Err(StateError::NotOperator {
                    reason: format!(
                        "the sender operates validator {}, not {validator_key}; bond to its own key (or rotate it with rotate_key)",
                        candidate.validator_key
                    ),
                });
            }
            Some(_) => {}
            None => {
                if let Some(other) = self.operator_of_key(&validator_key) {
                    return Err(StateError::NotOperator {
                        reason: format!(
                            "validator {validator_key} is operated by {other}; only its operator may bond to it"
                        ),
                    });
                }
                if !self.key_is_free_for(&validator_key, &operator) {
                    return Err(StateError::KeyInUse { key: validator_key });
                }
                if self.candidates.len() >= CANDIDATES_MAX {
                    return Err(StateError::TooManyCandidates {
                        max: CANDIDATES_MAX,
                    });
                }
                if name.len() > VALIDATOR_NAME_BYTES_MAX {
                    return Err(StateError::BadStakingTransaction {
                        reason: format!(
                            "the memo names the new validator and is {} bytes, the limit is {VALIDATOR_NAME_BYTES_MAX}",
                            name.len()
                        ),
                    });
                }
            }
        }
        let bonded_before = self.candidates.get(&operator).map_or(0, |c| c.bonded);
        let bonded = bonded_before
            .checked_add(amount)
            .ok_or(StateError::Overflow {
                what: "bonded stake",
            })?;
        if bonded < min {
            return Err(StateError::BelowMinSelfStake { bonded, min });
        }
        Ok(Change::Bond { bonded })
    }

    fn check_unbond(
        &self,
        operator: Address,
        height: Height,
        amount: u64,
    ) -> Result<Change, StateError> {
        if amount == 0 {
            return Err(StateError::BadStakingTransaction {
                reason: "an unbond must move more than 0".into(),
            });
        }
        let min = self.params.min_self_stake;
        let release_height = Height(height.0.saturating_add(self.params.unbonding_period_blocks));
        let candidate = self
            .candidates
            .get(&operator)
            .ok_or_else(|| StateError::NotOperator {
                reason: format!("{operator} operates no validator, so it has nothing to unbond"),
            })?;
        if candidate.bonded < amount {
            return Err(StateError::InsufficientStake {
                bonded: candidate.bonded,
                need: amount,
            });
        }
        let remaining = candidate.bonded - amount;
        if remaining != 0 && remaining < min {
            return Err(StateError::BelowMinSelfStake {
                bonded: remaining,
                min,
            });
        }
        let entries = self
            .unbonding
            .keys()
            .filter(|(release, entry_operator)| {
                *entry_operator == operator && *release != release_height
            })
            .count();
        if entries >= UNBONDING_ENTRIES_PER_OPERATOR_MAX {
            return Err(StateError::TooManyUnbonding {
                max: UNBONDING_ENTRIES_PER_OPERATOR_MAX,
            });
        }
        let unbonding = self
            .unbonding
            .get(&(release_height, operator))
            .copied()
            .unwrap_or(0)
            .checked_add(amount)
            .ok_or(StateError::Overflow {
                what: "unbonding stake",
            })?;
        Ok(Change::Unbond {
            remaining,
            release_height,
            unbonding,
        })
    }

    fn check_unjail(&self, operator: Address, height: Height) -> Result<Change, StateError> {
        let candidate = self
            .candidates
            .get(&operator)
            .ok_or_else(|| StateError::NotOperator {
                reason: format!("{operator} operates no validator"),
            })?;
        match candidate.jailed_until {
            None => Err(StateError::NotJailed),
            Some(until) if height < until => Err(StateError::StillJailed { until }),
            Some(_) => Ok(Change::Unjail),
        }
    }

    fn check_rotate_key(
        &self,
        operator: Address,
        new_key: PublicKey,
    ) -> Result<Change, StateError> {
        let current_key = self
            .candidates
            .get(&operator)
            .ok_or_else(|| StateError::NotOperator {
                reason: format!("{operator} operates no validator, so it has no key to rotate"),
            })?
            .validator_key;
        if current_key == new_key {
            return Err(StateError::BadStakingTransaction {
                reason: format!("{new_key} is already the validator's key"),
            });
        }
        if !self.key_is_free_for(&new_key, &operator)
            || [&self.current, &self.next]
                .iter()
                .any(|set| set.index_of(&new_key).is_some())
        {
            return Err(StateError::KeyInUse { key: new_key });
        }
        Ok(Change::RotateKey { new_key })
    }

    fn remove_if_empty(&mut self, operator: &Address) {
        if self
            .candidates
            .get(operator)
            .is_some_and(|candidate| candidate.bonded == 0 && candidate.jailed_until.is_none())
        {
            self.candidates.remove(operator);
        }
    }

    /// Removes and returns the unbonding entries released by the end of
    /// block `height`, as (operator, amount) in (height, operator) order.
    pub fn take_released(&mut self, height: Height) -> Vec<(Address, u64)> {
        let later = self
            .unbonding
            .split_off(&(Height(height.0.saturating_add(1)), Address::default()));
        let released = std::mem::replace(&mut self.unbonding, later);
        released
            .into_iter()
            .map(|((_, operator), amount)| (operator, amount))
            .collect()
    }

    /// Whether any unbonding entry is released by the end of `height`.
    pub fn has_release_by(&self, height: Height) -> bool {
        self.unbonding
            .keys()
            .next()
            .is_some_and(|(release, _)| *release <= height)
    }

    /// Jails and slashes the candidate of `offence.operator` for evidence
    /// recorded by block `height`; returns its key if it was punished. One
    /// misbehaviour episode costs one slash: a jailed candidate, and
    /// evidence of a height at or below the candidate's last punishment,
    /// are not punished again (a validator run twice signs conflicting
    /// votes at several heights before it leaves the set).
    pub fn punish(&mut self, offence: &Offence, height: Height) -> Option<PublicKey> {
        let operator = &offence.operator;
        let until = Height(height.0.saturating_add(self.params.jail_blocks));
        let params = self.params.clone();
        let mut burned = 0u64;
        let key = {
            let candidate = self.candidates.get_mut(operator)?;
            if candidate.jailed_until.is_some()
                || candidate
                    .punished_through
                    .is_some_and(|through| offence.height <= through)
            {
                return None;
            }
            // It leaves with the set of height + 2: what it signs up to
            // height + 1 belongs to this episode.
            candidate.punished_through = Some(Height(height.0.saturating_add(1)));
            let taken = params.slash_of(candidate.bonded);
            candidate.bonded -= taken;
            burned = burned.saturating_add(taken);
            candidate.jailed_until =
                Some(candidate.jailed_until.map_or(until, |old| old.max(until)));
            candidate.validator_key
        };
        for ((_, entry_operator), amount) in self.unbonding.iter_mut() {
            if entry_operator == operator {
                let taken = params.slash_of(*amount);
                *amount -= taken;
                burned = burned.saturating_add(taken);
            }
        }
        self.unbonding.retain(|_, amount| *amount > 0);
        self.slashed = self.slashed.saturating_add(burned);
        self.settled = false;
        Some(key)
    }

    /// Whether the end of a block must recompute the sets (something
    /// changed, or a bounded change is still under way).
    pub fn is_settled(&self) -> bool {
        self.settled
    }

    /// The end of a block: `next` becomes `current`, and a new `next`
    /// moves towards the target set within the budget; the keys in
    /// `jailed_now` leave at once.
    pub fn rotate_sets(&mut self, jailed_now: &BTreeSet<PublicKey>) {
        let target = self.target();
        let stepped = step_towards(&self.next, &target, jailed_now, &self.candidates);
        let new_next = match stepped {
            Some(set) => set,
            None => self.next.clone(),
        };
        self.current = std::mem::replace(&mut self.next, new_next);
        self.settled = self.current == self.next && self.target_matches_next();
    }

    fn target_matches_next(&self) -> bool {
        let target = self.target();
        let next: BTreeMap<PublicKey, u64> = self
            .next
            .validators()
            .iter()
            .map(|validator| (validator.public_key, validator.power.0))
            .collect();
        let target: BTreeMap<PublicKey, u64> = target
            .iter()
            .map(|member| (member.key, member.power))
            .collect();
        next == target
    }

    /// The set the candidates ask for: eligible ones, most power first
    /// (smaller key on ties), at most `validators_max`.
    fn target(&self) -> Vec<TargetMember> {
        let mut members: Vec<TargetMember> = self
            .candidates
            .iter()
            .filter(|(_, candidate)| {
                candidate.jailed_until.is_none() && candidate.bonded >= self.params.min_self_stake
            })
            .map(|(operator, candidate)| TargetMember {
                key: candidate.validator_key,
                power: self.params.power_of(candidate.bonded),
                operator: *operator,
            })
            .filter(|member| member.power > 0)
            .collect();
        members.sort_by(|a, b| b.power.cmp(&a.power).then(a.key.cmp(&b.key)));
        members.truncate(usize::try_from(self.params.validators_max).unwrap_or(usize::MAX));
        members
    }
}

/// One member of a target set.
#[derive(Clone, Copy, Debug)]
struct TargetMember {
    key: PublicKey,
    power: u64,
    operator: Address,
}

/// The most power one set change may move: a third of `total` (at least
/// 1).
pub fn change_budget(total: VotingPower) -> u64 {
    (total.0 / 3).max(1)
}

/// The sum of |power change| over keys between two sets.
pub fn power_change(from: &ValidatorSet, to: &ValidatorSet) -> u64 {
    let mut powers: BTreeMap<PublicKey, (u64, u64)> = BTreeMap::new();
    for validator in from.validators() {
        powers.entry(validator.public_key).or_default().0 = validator.power.0;
    }
    for validator in to.validators() {
        powers.entry(validator.public_key).or_default().1 = validator.power.0;
    }
    powers
        .values()
        .fold(0u64, |sum, (a, b)| sum.saturating_add(a.abs_diff(*b)))
}

/// The set one step from `from` towards `target` (see the module doc), or
/// `None` if it would be empty.
fn step_towards(
    from: &ValidatorSet,
    target: &[TargetMember],
    jailed_now: &BTreeSet<PublicKey>,
    candidates: &BTreeMap<Address, Candidate>,
) -> Option<ValidatorSet> {
    // key -> (power, operator, name)
    let mut powers: BTreeMap<PublicKey, (u64, Address, String)> = BTreeMap::new();
    for validator in from.validators() {
        if !jailed_now.contains(&validator.public_key) {
            powers.insert(
                validator.public_key,
                (
                    validator.power.0,
                    validator.operator,
                    validator.name.clone(),
                ),
            );
        }
    }
    let wanted: BTreeMap<PublicKey, TargetMember> =
        target.iter().map(|member| (member.key, *member)).collect();
    let mut budget = change_budget(from.total_power());
    // Decreases (and removals), in key order.
    let keys: Vec<PublicKey> = powers.keys().copied().collect();
    for key in keys {
        let want = wanted.get(&key).map_or(0, |member| member.power);
        if let Some(entry) = powers.get_mut(&key) {
            if entry.0 > want {
                let step = (entry.0 - want).min(budget);
                entry.0 -= step;
                budget -= step;
            }
        }
        if budget == 0 {
            break;
        }
    }
    // Increases (and additions), in key order.
    for (key, member) in &wanted {
        if budget == 0 {
            break;
        }
        let have = powers.get(key).map_or(0, |entry| entry.0);
        if member.power > have {
            let step = (member.power - have).min(budget);
            budget -= step;
            let name = candidates
                .get(&member.operator)
                .map(|candidate| candidate.name.clone())
                .unwrap_or_default();
            let entry = powers.entry(*key).or_insert((0, member.operator, name));
            entry.0 += step;
        }
    }
    let unchanged = powers.len() == from.len()
        && from.validators().iter().all(|validator| {
            powers
                .get(&validator.public_key)
                .is_some_and(|entry| entry.0 == validator.power.0)
        });
    if unchanged {
        return Some(from.clone());
    }
    let mut validators: Vec<Validator> = powers
        .into_iter()
        .filter(|(_, (power, _, _))| *power > 0)
        .map(|(key, (power, operator, name))| Validator {
            name,
            public_key: key,
            power: VotingPower(power),
            operator,
        })
        .collect();
    if validators.is_empty() {
        return None;
    }
    validators.sort_by(|a, b| b.power.cmp(&a.power).then(a.public_key.cmp(&b.public_key)));
    ValidatorSet::new(validators).ok()
}
