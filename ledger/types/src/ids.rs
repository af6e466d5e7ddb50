//! Newtypes for the identifiers and counters of Cairn, with checked
//! arithmetic where they are counted.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{limits::CHAIN_ID_BYTES_MAX, TypesError};

/// The height of a block; the genesis is height 0, the first block height 1.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Height(pub u64);

impl Height {
    /// The height of the genesis state (no block).
    pub const GENESIS: Height = Height(0);

    /// The next height, or an overflow error.
    pub fn next(self) -> Result<Height, TypesError> {
        self.0
            .checked_add(1)
            .map(Height)
            .ok_or(TypesError::Overflow { what: "height" })
    }

    /// The previous height, if there is one.
    pub fn previous(self) -> Option<Height> {
        self.0.checked_sub(1).map(Height)
    }
}

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A consensus round within a height, starting at 0.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Round(pub u32);

impl Round {
    /// The first round of every height.
    pub const ZERO: Round = Round(0);

    /// The next round, or an overflow error.
    pub fn next(self) -> Result<Round, TypesError> {
        self.0
            .checked_add(1)
            .map(Round)
            .ok_or(TypesError::Overflow { what: "round" })
    }
}

impl fmt::Display for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The position of a validator in its [`crate::ValidatorSet`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ValidatorIndex(pub u32);

impl ValidatorIndex {
    /// The index as a `usize` for slice access.
    pub fn as_usize(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for ValidatorIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Voting power of a validator, or a sum of such powers.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct VotingPower(pub u64);

impl VotingPower {
    /// No power.
    pub const ZERO: VotingPower = VotingPower(0);

    /// Checked addition.
    pub fn checked_add(self, other: VotingPower) -> Result<VotingPower, TypesError> {
        self.0
            .checked_add(other.0)
            .map(VotingPower)
            .ok_or(TypesError::Overflow {
                what: "voting power",
            })
    }
}

impl fmt::Display for VotingPower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Milliseconds since the Unix epoch (UTC). Time is always an input in
/// Cairn's deterministic crates, never read from a clock.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Milliseconds since the Unix epoch.
    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// This time plus `millis`, saturating.
    pub fn saturating_add_millis(self, millis: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(millis))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// The name of a chain: 1 to [`CHAIN_ID_BYTES_MAX`] characters of `a-z`,
/// `0-9`, `-`, `_` and `.`, starting with a letter or digit. Every signed
/// object names its chain, so a signature on one chain is worthless on
/// another.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChainId(String);

impl ChainId {
    /// Checks the charset and length of `name`.
    pub fn new(name: impl Into<String>) -> Result<ChainId, TypesError> {
        let name = name.into();
        let reason = if name.is_empty() {
            Some("it is empty".to_string())
        } else if name.len() > CHAIN_ID_BYTES_MAX {
            Some(format!(
                "it is {} bytes long, the limit is {CHAIN_ID_BYTES_MAX}",
                name.len()
            ))
        } else if let Some(bad) = name
            .chars()
            .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-' | '_' | '.'))
        {
            Some(format!(
                "character {bad:?} is not allowed; use a-z, 0-9, '-', '_' and '.'"
            ))
        } else if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            Some("it must start with a letter or a digit".to_string())
        } else {
            None
        };
        match reason {
            Some(reason) => Err(TypesError::BadChainId {
                input: name,
                reason,
            }),
            None => Ok(ChainId(name)),
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_refuse_to_overflow() {
        assert!(Height(u64::MAX).next().is_err());
        assert_eq!(Height(1).next(), Ok(Height(2)));
        assert_eq!(Height(0).previous(), None);
        assert!(Round(u32::MAX).next().is_err());
        assert!(VotingPower(u64::MAX).checked_add(VotingPower(1)).is_err());
    }

    #[test]
    fn chain_id_rules() {
        assert!(ChainId::new("cairn-devnet-1").is_ok());
        for bad in ["", "Upper", "has space", "-lead", &"x".repeat(49)] {
            assert!(ChainId::new(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
