//! Validators and validator sets: who may vote, with what power, and what
//! counts as a quorum.

use serde::{Deserialize, Serialize};

use crate::{
    codec,
    limits::{VALIDATORS_MAX, VALIDATOR_NAME_BYTES_MAX},
    Address, Hash, PublicKey, TypesError, ValidatorIndex, VotingPower,
};

/// One validator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validator {
    /// A human-readable name (moniker), at most
    /// [`VALIDATOR_NAME_BYTES_MAX`] bytes.
    pub name: String,
    /// The key it signs votes and proposals with.
    pub public_key: PublicKey,
    /// Its voting power, never zero.
    pub power: VotingPower,
    /// The operator's account: it bonded the stake and receives the fees
    /// of the blocks this validator proposes.
    pub operator: Address,
}

impl Validator {
    /// The account that receives the fees of blocks this validator builds
    /// (its operator's).
    pub fn address(&self) -> Address {
        self.operator
    }
}

/// An ordered, non-empty set of validators. A validator's
/// [`ValidatorIndex`] is its position in the list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    #[serde(skip)]
    total_power: VotingPower,
}

impl ValidatorSet {
    /// Checks and builds a set: not empty, at most [`VALIDATORS_MAX`]
    /// members, no zero power, no duplicate key, no overflow of the total.
    pub fn new(validators: Vec<Validator>) -> Result<ValidatorSet, TypesError> {
        let bad = |reason: String| TypesError::BadValidatorSet { reason };
        if validators.is_empty() {
            return Err(bad("it has no validators".into()));
        }
        if validators.len() > VALIDATORS_MAX {
            return Err(bad(format!(
                "it has {} validators, the limit is {VALIDATORS_MAX}",
                validators.len()
            )));
        }
        let mut total_power = VotingPower::ZERO;
        let mut seen = std::collections::BTreeSet::new();
        for (index, validator) in validators.iter().enumerate() {
            if validator.power == VotingPower::ZERO {
                return Err(bad(format!(
                    "validator {index} ({:?}) has zero power",
                    validator.name
                )));
            }
            if validator.name.len() > VALIDATOR_NAME_BYTES_MAX {
                return Err(bad(format!(
                    "validator {index} has a name of {} bytes, the limit is {VALIDATOR_NAME_BYTES_MAX}",
                    validator.name.len()
                )));
            }
            if !seen.insert(validator.public_key) {
                return Err(bad(format!(
                    "validator {index} ({:?}) repeats public key {}",
                    validator.name, validator.public_key
                )));
            }
            total_power = total_power
                .checked_add(validator.power)
                .map_err(|_| bad("the total voting power overflows a u64".into()))?;
        }
        Ok(ValidatorSet {
            validators,
            total_power,
        })
    }

    /// The validators, in index order.
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    /// The number of validators.
    pub fn len(&self) -> usize {
        self.validators.len()
    }

    /// Always false: a set has at least one validator.
    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    /// The validator at `index`, if any.
    pub fn get(&self, index: ValidatorIndex) -> Option<&Validator> {
        self.validators.get(index.as_usize())
    }

    /// The index of the validator with `public_key`, if it is a member.
    pub fn index_of(&self, public_key: &PublicKey) -> Option<ValidatorIndex> {
        self.validators
            .iter()
            .position(|validator| &validator.public_key == public_key)
            .map(|position| ValidatorIndex(position as u32))
    }

    /// The sum of all voting power.
    pub fn total_power(&self) -> VotingPower {
        self.total_power
    }

    /// Whether `power` is more than two thirds of the total (a quorum).
    pub fn is_quorum(&self, power: VotingPower) -> bool {
        u128::from(power.0) * 3 > u128::from(self.total_power.0) * 2
    }

    /// Whether `power` is more than one third of the total (at least one
    /// honest validator among them, f+1).
    pub fn is_one_third(&self, power: VotingPower) -> bool {
        u128::from(power.0) * 3 > u128::from(self.total_power.0)
    }

    /// The hash of the canonical encoding of the set.
    pub fn hash(&self) -> Hash {
        codec::sha256_of_encoding(&self.validators)
    }
}

impl<'de> Deserialize<'de> for ValidatorSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            validators: Vec<Validator>,
        }
        let raw = Raw::deserialize(deserializer)?;
        ValidatorSet::new(raw.validators).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Keypair;

    pub(crate) fn validator(n: u8, power: u64) -> Validator {
        Validator {
            name: format!("v{n}"),
            public_key: Keypair::from_seed(&[n; 32]).public_key(),
            power: VotingPower(power),
            operator: Keypair::from_seed(&[n; 32]).address(),
        }
    }

    #[test]
    fn quorum_is_more_than_two_thirds() {
        let set = ValidatorSet::new((1..=4).map(|n| validator(n, 1)).collect()).unwrap();
        assert!(!set.is_quorum(VotingPower(2)));
        assert!(set.is_quorum(VotingPower(3)));
        assert!(!set.is_one_third(VotingPower(1)));
        assert!(set.is_one_third(VotingPower(2)));
    }

    #[test]
    fn bad_sets_are_refused_with_reasons() {
        assert!(ValidatorSet::new(vec![]).is_err());
        let zero = ValidatorSet::new(vec![validator(1, 0)]).unwrap_err();
        assert!(zero.to_string().contains("zero power"));
        let dup = ValidatorSet::new(vec![validator(1, 1), validator(1, 2)]).unwrap_err();
        assert!(dup.to_string().contains("repeats public key"));
        let overflow =
            ValidatorSet::new(vec![validator(1, u64::MAX), validator(2, 1)]).unwrap_err();
        assert!(overflow.to_string().contains("overflow"));
    }
}
