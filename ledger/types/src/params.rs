//! Chain-wide consensus and staking parameters, fixed in the genesis file.

use serde::{Deserialize, Serialize};

use crate::{
    limits::{BLOCK_BYTES_MAX, BLOCK_TRANSACTIONS_MAX, EVIDENCE_AGE_MAX_BLOCKS, VALIDATORS_MAX},
    TypesError,
};

/// The fee rules every node applies (see `cairn-state`'s rules): a
/// minimum fee per transaction, and an existential deposit so that no
/// account is created or left holding dust.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeeParams {
    /// Least fee of any transaction (a fixed amount per transaction).
    pub min_fee: u64,
    /// Least balance an account may hold other than 0: a transfer that
    /// creates an account brings at least this much, and no transaction
    /// leaves its sender with less (unless with nothing).
    pub existential_deposit: u64,
}

impl FeeParams {
    /// No minimum fee and no existential deposit (states built from
    /// accounts alone, in tests and benchmarks).
    pub const NONE: FeeParams = FeeParams {
        min_fee: 0,
        existential_deposit: 0,
    };
}

impl Default for FeeParams {
    fn default() -> Self {
        FeeParams {
            min_fee: 1,
            existential_deposit: 1,
        }
    }
}

/// Most basis points (1/10,000) a slash may take: all of it.
pub const SLASH_FRACTION_BPS_MAX: u64 = 10_000;

/// The rules of proof-of-stake every node applies (see `cairn-state`'s
/// `staking` module for how they are used).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StakingParams {
    /// Units of bonded stake per unit of voting power (power = bonded /
    /// power_unit, rounded down).
    pub power_unit: u64,
    /// Most validators in a set (the candidates with the most power).
    pub validators_max: u64,
    /// Least stake a candidate must keep bonded to be a validator.
    pub min_self_stake: u64,
    /// Blocks an unbonding entry waits before its stake returns to the
    /// balance; at least [`EVIDENCE_AGE_MAX_BLOCKS`], so stake cannot leave
    /// before evidence against it can be recorded.
    pub unbonding_period_blocks: u64,
    /// Blocks a jailed validator waits before `unjail` is accepted.
    pub jail_blocks: u64,
    /// Basis points of bonded and unbonding stake burned per piece of
    /// evidence (500 = 5%).
    pub slash_fraction_bps: u64,
}

impl Default for StakingParams {
    fn default() -> Self {
        StakingParams {
            power_unit: 1_000_000,
            validators_max: 100,
            min_self_stake: 1_000_000,
            unbonding_period_blocks: 1_000,
            jail_blocks: 100,
            slash_fraction_bps: 500,
        }
    }
}

impl StakingParams {
    /// Checks the parameters; errors name the field.
    pub fn validate(&self) -> Result<(), TypesError> {
        let bad = |field: &'static str, reason: String| TypesError::Malformed {
            what: "staking_params",
            reason: format!("{field}: {reason}"),
        };
        if self.power_unit == 0 {
            return Err(bad("power_unit", "must be more than 0".into()));
        }
        if self.validators_max == 0 || self.validators_max > VALIDATORS_MAX as u64 {
            return Err(bad(
                "validators_max",
                format!("{} is outside 1..={VALIDATORS_MAX}", self.validators_max),
            ));
        }
        if self.min_self_stake < self.power_unit {
            return Err(bad(
                "min_self_stake",
                format!(
                    "{} is less than power_unit {}, so a validator could hold no power",
                    self.min_self_stake, self.power_unit
                ),
            ));
        }
        if self.unbonding_period_blocks < EVIDENCE_AGE_MAX_BLOCKS {
            return Err(bad(
                "unbonding_period_blocks",
                format!(
                    "{} is less than the evidence window of {EVIDENCE_AGE_MAX_BLOCKS} blocks, so stake could leave before its evidence is recorded",
                    self.unbonding_period_blocks
                ),
            ));
        }
        if self.slash_fraction_bps > SLASH_FRACTION_BPS_MAX {
            return Err(bad(
                "slash_fraction_bps",
                format!(
                    "{} is more than {SLASH_FRACTION_BPS_MAX} (all of the stake)",
                    self.slash_fraction_bps
                ),
            ));
        }
        Ok(())
    }

    /// The voting power of `bonded` stake.
    pub fn power_of(&self, bonded: u64) -> u64 {
        bonded / self.power_unit.max(1)
    }

    /// What a slash takes of `amount`, rounded down.
    pub fn slash_of(&self, amount: u64) -> u64 {
        let taken = u128::from(amount)
            * u128::from(self.slash_fraction_bps.min(SLASH_FRACTION_BPS_MAX))
            / u128::from(SLASH_FRACTION_BPS_MAX);
        u64::try_from(taken).unwrap_or(amount)
    }
}

/// Timeouts, block bounds and the clock drift all validators agree on.
/// Node-local settings (`timeout_commit`, waiting for transactions, mempool
/// caps) live in each node's `config.toml`, not here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusParams {
    /// Propose timeout of round 0.
    pub timeout_propose_ms: u64,
    /// Added to the propose timeout for each further round.
    pub timeout_propose_delta_ms: u64,
    /// Prevote timeout of round 0.
    pub timeout_prevote_ms: u64,
    /// Added to the prevote timeout for each further round.
    pub timeout_prevote_delta_ms: u64,
    /// Precommit timeout of round 0.
    pub timeout_precommit_ms: u64,
    /// Added to the precommit timeout for each further round.
    pub timeout_precommit_delta_ms: u64,
    /// Largest encoded block, at most [`BLOCK_BYTES_MAX`].
    pub block_bytes_max: u64,
    /// Most transactions in a block, at most [`BLOCK_TRANSACTIONS_MAX`].
    pub block_transactions_max: u64,
    /// How far ahead of a validator's own clock a block time may be.
    pub clock_drift_max_ms: u64,
}

impl Default for ConsensusParams {
    fn default() -> Self {
        ConsensusParams {
            timeout_propose_ms: 3_000,
            timeout_propose_delta_ms: 500,
            timeout_prevote_ms: 1_000,
            timeout_prevote_delta_ms: 500,
            timeout_precommit_ms: 1_000,
            timeout_precommit_delta_ms: 500,
            block_bytes_max: 8 * 1024 * 1024,
            block_transactions_max: 20_000,
            clock_drift_max_ms: 10_000,
        }
    }
}

impl ConsensusParams {
    /// Checks the parameters against the hard limits; errors name the field.
    pub fn validate(&self) -> Result<(), TypesError> {
        let bad = |field: &'static str, reason: String| TypesError::Malformed {
            what: "consensus_params",
            reason: format!("{field}: {reason}"),
        };
        for (field, value) in [
            ("timeout_propose_ms", self.timeout_propose_ms),
            ("timeout_prevote_ms", self.timeout_prevote_ms),
            ("timeout_precommit_ms", self.timeout_precommit_ms),
        ] {
            if value == 0 {
                return Err(bad(field, "must be more than 0".into()));
            }
        }
        // Timeouts that never grow leave no round long enough once the
        // network is slower than they are: eventual synchrony needs growth.
        for (field, value) in [
            ("timeout_propose_delta_ms", self.timeout_propose_delta_ms),
            ("timeout_prevote_delta_ms", self.timeout_prevote_delta_ms),
            (
                "timeout_precommit_delta_ms",
                self.timeout_precommit_delta_ms,
            ),
        ] {
            if value == 0 {
                return Err(bad(
                    field,
                    "must be more than 0, so timeouts grow each round until the network keeps up"
                        .into(),
                ));
            }
        }
        if self.block_bytes_max == 0 || self.block_bytes_max > BLOCK_BYTES_MAX as u64 {
            return Err(bad(
                "block_bytes_max",
                format!("{} is outside 1..={BLOCK_BYTES_MAX}", self.block_bytes_max),
            ));
        }
        if self.block_transactions_max == 0
            || self.block_transactions_max > BLOCK_TRANSACTIONS_MAX as u64
        {
            return Err(bad(
                "block_transactions_max",
                format!(
                    "{} is outside 1..={BLOCK_TRANSACTIONS_MAX}",
                    self.block_transactions_max
                ),
            ));
        }
        Ok(())
    }

    /// The propose timeout of `round`, saturating.
    pub fn timeout_propose_ms(&self, round: crate::Round) -> u64 {
        grow(
            self.timeout_propose_ms,
            self.timeout_propose_delta_ms,
            round,
        )
    }

    /// The prevote timeout of `round`, saturating.
    pub fn timeout_prevote_ms(&self, round: crate::Round) -> u64 {
        grow(
            self.timeout_prevote_ms,
            self.timeout_prevote_delta_ms,
            round,
        )
    }

    /// The precommit timeout of `round`, saturating.
    pub fn timeout_precommit_ms(&self, round: crate::Round) -> u64 {
        grow(
            self.timeout_precommit_ms,
            self.timeout_precommit_delta_ms,
            round,
        )
    }
}

fn grow(base_ms: u64, delta_ms: u64, round: crate::Round) -> u64 {
    base_ms.saturating_add(delta_ms.saturating_mul(u64::from(round.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_and_their_growth_must_be_positive() {
        assert!(ConsensusParams::default().validate().is_ok());
        let params = ConsensusParams {
            timeout_prevote_delta_ms: 0,
            ..ConsensusParams::default()
        };
        let error = params.validate().expect_err("delta 0").to_string();
        assert!(error.contains("timeout_prevote_delta_ms"), "{error}");
        let params = ConsensusParams {
            timeout_propose_ms: 0,
            ..ConsensusParams::default()
        };
        assert!(params.validate().is_err());
    }
}
