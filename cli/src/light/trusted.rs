//! The light client's trusted state: per chain, the last verified height,
//! its block hash and time, and the validator set of the height after it.
//! Kept as one JSON file per chain id in the light directory
//! ([`default_light_dir`]); written only with a state that verified, and
//! only forward (a higher height) unless `cairn light init` replaces it.

use std::path::{Path, PathBuf};

use cairn_genesis::Genesis;
use cairn_types::{ChainId, Hash, Timestamp, ValidatorSet};
use serde::{Deserialize, Serialize};

use crate::error::{CliError, Result};

/// Largest trusted-state file read back.
pub const TRUSTED_FILE_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// What a light client trusts of one chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedState {
    /// The chain.
    pub chain_id: ChainId,
    /// The genesis it was started from (none: from a trusted hash).
    pub genesis_hash: Option<Hash>,
    /// The trusted height (0: the genesis).
    pub height: u64,
    /// Its block hash (the genesis hash at height 0).
    pub header_hash: Hash,
    /// Its block time (the genesis time at height 0).
    pub time: Timestamp,
    /// The validator set of `height + 1`, named by the trusted header.
    pub next_set: ValidatorSet,
}

impl TrustedState {
    /// The root of trust a genesis gives: height 0, the genesis hash and
    /// the set of height 1.
    pub fn from_genesis(genesis: &Genesis) -> TrustedState {
        TrustedState {
            chain_id: genesis.chain_id.clone(),
            genesis_hash: Some(genesis.hash()),
            height: 0,
            header_hash: genesis.hash(),
            time: genesis.genesis_time,
            next_set: genesis.validators.clone(),
        }
    }
}

/// The light directory: `$CAIRN_LIGHT_DIR`, else `$XDG_DATA_HOME/cairn/light`,
/// else `~/.cairn-light`; `None` without a home.
pub fn default_light_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CAIRN_LIGHT_DIR").filter(|dir| !dir.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from) {
        if data.is_absolute() {
            return Some(data.join("cairn").join("light"));
        }
    }
    std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(|home| PathBuf::from(home).join(".cairn-light"))
}

/// The file of `chain_id`'s trusted state in `dir` (chain ids are
/// `a-z0-9-_.` starting with a letter or digit: safe as a file name).
pub fn trusted_file(dir: &Path, chain_id: &ChainId) -> PathBuf {
    dir.join(format!("{}.json", chain_id.as_str()))
}

/// The trusted state of `chain_id` in `dir`: `None` when there is none
/// (no file, or no usable directory); an error when the file is there
/// but unreadable, too large or not a trusted state of this chain.
pub fn load(dir: Option<&Path>, chain_id: &ChainId) -> Result<Option<TrustedState>> {
    let Some(dir) = dir else { return Ok(None) };
    let path = trusted_file(dir, chain_id);
    let bad = |reason: String| CliError::LightState {
        path: path.clone(),
        reason,
    };
    let length = match std::fs::metadata(&path) {
        Ok(metadata) => metadata.len(),
        Err(_) => return Ok(None),
    };
    if length > TRUSTED_FILE_BYTES_MAX {
        return Err(bad(format!(
            "it is {length} bytes, more than the {TRUSTED_FILE_BYTES_MAX} a trusted state can be; remove it and run `cairn light init`"
        )));
    }
    let bytes = std::fs::read(&path).map_err(|error| bad(error.to_string()))?;
    let state: TrustedState = serde_json::from_slice(&bytes).map_err(|error| {
        bad(format!(
            "it does not parse ({error}); remove it and run `cairn light init`"
        ))
    })?;
    if &state.chain_id != chain_id {
        return Err(bad(format!(
            "it is of chain {:?}, not {:?}; remove it and run `cairn light init`",
            state.chain_id.as_str(),
            chain_id.as_str()
        )));
    }
    Ok(Some(state))
}

/// Writes `state` (a temporary file, then a rename). Without `replace`,
/// a state at a lower or equal height than the one kept is not written
/// (trust only moves forward); returns whether it was written.
pub fn save(dir: &Path, state: &TrustedState, replace: bool) -> Result<bool> {
    if !replace {
        if let Some(kept) = load(Some(dir), &state.chain_id)? {
            if kept.height >= state.height {
                return Ok(false);
            }
        }
    }
    let path = trusted_file(dir, &state.chain_id);
    let temporary = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(state).map_err(|error| CliError::LightState {
        path: path.clone(),
        reason: error.to_string(),
    })?;
    std::fs::create_dir_all(dir).map_err(CliError::io("create", dir))?;
    std::fs::write(&temporary, text).map_err(CliError::io("write", &temporary))?;
    std::fs::rename(&temporary, &path).map_err(CliError::io("rename", &path))?;
    Ok(true)
}
