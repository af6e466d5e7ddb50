//! Chain-wide consensus parameters, fixed in the genesis file.

use serde::{Deserialize, Serialize};

use crate::{
    limits::{BLOCK_BYTES_MAX, BLOCK_TRANSACTIONS_MAX},
    TypesError,
};

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
