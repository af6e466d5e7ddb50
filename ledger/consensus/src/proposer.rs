//! Deterministic weighted round-robin proposer selection.
//!
//! The schedule is one period of *smooth weighted round robin* (the
//! algorithm of CometBFT's proposer priorities): every step each validator
//! gains its weight, the one with the highest accumulated priority (lowest
//! index on ties) proposes and loses the total weight. Over one period each
//! validator proposes exactly `weight` times, spread evenly. Weights are the
//! voting powers divided by their greatest common divisor, scaled down
//! proportionally (each at least 1) if the period would exceed
//! [`PROPOSER_SCHEDULE_SLOTS_MAX`].
//!
//! The proposer of height `h` and round `r` is slot `(h + r) mod period`:
//! a failed round hands over to the next proposer in the schedule.

use cairn_types::{Height, Round, ValidatorIndex, ValidatorSet};

use crate::limits::PROPOSER_SCHEDULE_SLOTS_MAX;

/// One period of the proposer rotation of a validator set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposerSchedule {
    slots: Vec<ValidatorIndex>,
}

fn greatest_common_divisor(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let rest = a % b;
        a = b;
        b = rest;
    }
    a
}

impl ProposerSchedule {
    /// Computes the schedule of `validators`.
    pub fn new(validators: &ValidatorSet) -> ProposerSchedule {
        let powers: Vec<u64> = validators.validators().iter().map(|v| v.power.0).collect();
        let divisor = powers
            .iter()
            .fold(0, |gcd, power| greatest_common_divisor(gcd, *power))
            .max(1);
        let mut weights: Vec<u64> = powers.iter().map(|power| power / divisor).collect();
        let weight_sum: u128 = weights.iter().map(|w| u128::from(*w)).sum();
        if weight_sum > u128::from(PROPOSER_SCHEDULE_SLOTS_MAX) {
            // Each scaled weight is floor(w * budget / sum) (at most the
            // budget in total) plus at most 1, so the period stays within
            // PROPOSER_SCHEDULE_SLOTS_MAX (validators never exceed 256).
            let count = weights.len() as u128;
            let budget = u128::from(PROPOSER_SCHEDULE_SLOTS_MAX).saturating_sub(count);
            weights = weights
                .iter()
                .map(|w| {
                    let scaled = u128::from(*w) * budget / weight_sum;
                    u64::try_from(scaled).unwrap_or(u64::MAX).max(1)
                })
                .collect();
        }
        let period: i128 = weights.iter().map(|w| i128::from(*w)).sum();
        let mut priorities = vec![0i128; weights.len()];
        let mut slots = Vec::with_capacity(usize::try_from(period).unwrap_or(0));
        for _ in 0..period {
            let mut best = 0usize;
            for (index, weight) in weights.iter().enumerate() {
                priorities[index] += i128::from(*weight);
                if priorities[index] > priorities[best] {
                    best = index;
                }
            }
            priorities[best] -= period;
            slots.push(ValidatorIndex(best as u32));
        }
        if slots.is_empty() {
            slots.push(ValidatorIndex(0));
        }
        ProposerSchedule { slots }
    }

    /// The proposer of `height` and `round`.
    pub fn proposer(&self, height: Height, round: Round) -> ValidatorIndex {
        let period = self.slots.len() as u64;
        let slot = (height.0 % period + u64::from(round.0) % period) % period;
        self.slots[slot as usize]
    }

    /// The number of slots in one period.
    pub fn period(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_types::{Keypair, Validator, VotingPower};

    fn set(powers: &[u64]) -> ValidatorSet {
        ValidatorSet::new(
            powers
                .iter()
                .enumerate()
                .map(|(i, p)| Validator {
                    name: format!("v{i}"),
                    public_key: Keypair::from_seed(&[i as u8 + 1; 32]).public_key(),
                    power: VotingPower(*p),
                    operator: Keypair::from_seed(&[i as u8 + 1; 32]).address(),
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn equal_power_rotates_through_everyone() {
        let schedule = ProposerSchedule::new(&set(&[5, 5, 5, 5]));
        assert_eq!(schedule.period(), 4);
        let proposers: Vec<u32> = (0..4)
            .map(|h| schedule.proposer(Height(h), Round(0)).0)
            .collect();
        assert_eq!(proposers, vec![0, 1, 2, 3]);
        assert_eq!(
            schedule.proposer(Height(1), Round(1)),
            schedule.proposer(Height(2), Round(0))
        );
    }

    #[test]
    fn weights_are_respected_and_deterministic() {
        let schedule = ProposerSchedule::new(&set(&[3, 1, 2]));
        assert_eq!(schedule.period(), 6);
        let mut counts = [0; 3];
        for h in 0..6 {
            counts[schedule.proposer(Height(h), Round(0)).as_usize()] += 1;
        }
        assert_eq!(counts, [3, 1, 2]);
        assert_eq!(schedule, ProposerSchedule::new(&set(&[3, 1, 2])));
    }

    #[test]
    fn huge_powers_are_scaled_into_the_slot_budget() {
        let schedule = ProposerSchedule::new(&set(&[u64::MAX / 4, 7, u64::MAX / 8]));
        assert!(schedule.period() as u64 <= PROPOSER_SCHEDULE_SLOTS_MAX);
        let mut counts = [0u64; 3];
        for h in 0..schedule.period() as u64 {
            counts[schedule.proposer(Height(h), Round(0)).as_usize()] += 1;
        }
        assert!(counts[0] > counts[2] && counts[2] > counts[1] && counts[1] >= 1);
    }
}
