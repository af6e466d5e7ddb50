//! The `genesis.json` schema and its validation.

use std::{collections::BTreeSet, path::Path};

use cairn_types::{
    codec, sha256, Address, ChainId, ConsensusParams, FeeParams, Hash, PublicKey, StakingParams,
    Timestamp, Validator, ValidatorSet, VotingPower,
};
use serde::{Deserialize, Serialize};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use crate::GenesisError;

/// Most accounts a genesis file may fund.
pub const GENESIS_ACCOUNTS_MAX: usize = 1_000_000;
/// Largest genesis file read from disk.
pub const GENESIS_FILE_BYTES_MAX: u64 = 256 * 1024 * 1024;
/// Domain separator of the genesis hash.
const GENESIS_HASH_DOMAIN: &[u8] = b"cairn/genesis/v2\0";

/// `genesis.json` as written on disk: text fields, checked by
/// [`GenesisFile::validate`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisFile {
    /// The chain's name: `a-z`, `0-9`, `-`, `_`, `.`; at most 48 bytes.
    pub chain_id: String,
    /// RFC 3339 time; no block may be earlier.
    pub genesis_time: String,
    /// The validators, in index order.
    pub validators: Vec<GenesisValidator>,
    /// The funded accounts.
    pub accounts: Vec<GenesisAccount>,
    /// Timeouts, block limits and clock drift.
    pub consensus_params: ConsensusParams,
    /// Proof-of-stake parameters (defaults when absent).
    #[serde(default)]
    pub staking_params: StakingParams,
    /// The minimum fee and the existential deposit (defaults when absent).
    #[serde(default)]
    pub fee_params: FeeParams,
}

/// One validator entry of `genesis.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisValidator {
    /// A name people recognise (moniker).
    pub name: String,
    /// ed25519 public key, 64 hex characters.
    pub public_key: String,
    /// Voting power, more than zero. The operator bonds power x
    /// `staking_params.power_unit` from its genesis balance.
    pub power: u64,
    /// bech32m address of the operator account that bonds the stake and
    /// receives the fees; the address of `public_key` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
}

/// One funded account of `genesis.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccount {
    /// bech32m address, `cairn1...`.
    pub address: String,
    /// Starting balance.
    pub balance: u64,
}

/// A validated genesis: everything a node needs to start the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Genesis {
    /// The chain.
    pub chain_id: ChainId,
    /// No block may be earlier than this.
    pub genesis_time: Timestamp,
    /// The validator set of heights 1 and 2; staking changes it from
    /// height 3 on.
    pub validators: ValidatorSet,
    /// Funded accounts, in file order, with their balances before the
    /// validators' stake is bonded.
    pub accounts: Vec<(Address, u64)>,
    /// Chain-wide consensus parameters.
    pub consensus_params: ConsensusParams,
    /// Proof-of-stake parameters.
    pub staking_params: StakingParams,
    /// The minimum fee and the existential deposit.
    pub fee_params: FeeParams,
}

/// What the genesis hash covers.
#[derive(Serialize)]
struct CanonicalGenesis<'a> {
    chain_id: &'a ChainId,
    genesis_time: Timestamp,
    validators: &'a [Validator],
    accounts: &'a [(Address, u64)],
    consensus_params: &'a ConsensusParams,
    staking_params: &'a StakingParams,
    fee_params: &'a FeeParams,
}

impl GenesisFile {
    /// Reads and parses `path` (not yet validated).
    pub fn load(path: &Path) -> Result<GenesisFile, GenesisError> {
        let io_error = |source| GenesisError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        };
        let length = std::fs::metadata(path).map_err(io_error)?.len();
        if length > GENESIS_FILE_BYTES_MAX {
            return Err(GenesisError::invalid(
                "<file>",
                format!(
                    "{} is {length} bytes, more than the limit of {GENESIS_FILE_BYTES_MAX}",
                    path.display()
                ),
            ));
        }
        let text = std::fs::read_to_string(path).map_err(io_error)?;
        GenesisFile::from_json(&text, path)
    }

    /// Parses JSON text; `origin` names it in errors.
    pub fn from_json(text: &str, origin: &Path) -> Result<GenesisFile, GenesisError> {
        serde_json::from_str(text).map_err(|error| {
            // serde_json ends its text with " at line L column C"; the
            // position is said once, by `GenesisError::Json`.
            let text = error.to_string();
            let reason = match text.rfind(" at line ") {
                Some(end) => text[..end].to_string(),
                None => text,
            };
            let message = match error.classify() {
                serde_json::error::Category::Eof => format!(
                    "{reason}: the file ends early, so it is probably truncated (an interrupted copy or download); copy the chain's genesis.json again"
                ),
                serde_json::error::Category::Syntax => format!(
                    "{reason}; replace it with the chain's genesis.json"
                ),
                _ => format!(
                    "{reason}; check it against the chain's genesis.json"
                ),
            };
            GenesisError::Json {
                path: origin.to_path_buf(),
                message,
                line: error.line(),
                column: error.column(),
            }
        })
    }

    /// Pretty JSON, as written to `genesis.json`.
    pub fn to_json_pretty(&self) -> String {
        match serde_json::to_string_pretty(self) {
            Ok(text) => text + "\n",
            // Only strings, integers and plain structs: always serializable.
            Err(error) => unreachable!("genesis JSON serialization failed: {error}"),
        }
    }

    /// Writes pretty JSON to `path`.
    pub fn save(&self, path: &Path) -> Result<(), GenesisError> {
        std::fs::write(path, self.to_json_pretty()).map_err(|source| GenesisError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        })
    }

    /// Checks every rule and returns the validated genesis. Errors name the
    /// field at fault (e.g. `validators[2].public_key`) and what to do.
    pub fn validate(&self) -> Result<Genesis, GenesisError> {
        let chain_id = ChainId::new(self.chain_id.clone())
            .map_err(|error| GenesisError::invalid("chain_id", error.to_string()))?;
        let genesis_time = parse_time(&self.genesis_time)?;
        self.consensus_params
            .validate()
            .map_err(|error| GenesisError::invalid("consensus_params", error.to_string()))?;
        self.staking_params
            .validate()
            .map_err(|error| GenesisError::invalid("staking_params", error.to_string()))?;

        if self.validators.is_empty() {
            return Err(GenesisError::invalid(
                "validators",
                "the validator set is empty; add at least one validator with a public key and power",
            ));
        }
        let mut validators = Vec::with_capacity(self.validators.len());
        let mut keys = BTreeSet::new();
        for (index, entry) in self.validators.iter().enumerate() {
            let field = |name: &str| format!("validators[{index}].{name}");
            let public_key = PublicKey::from_hex(&entry.public_key).map_err(|error| {
                GenesisError::invalid(
                    field("public_key"),
                    format!("{error}; use the output of `cairnd show-validator`"),
                )
            })?;
            if entry.power == 0 {
                return Err(GenesisError::invalid(
                    field("power"),
                    format!(
                        "validator {:?} has zero power; give it at least 1",
                        entry.name
                    ),
                ));
            }
            if !keys.insert(public_key) {
                return Err(GenesisError::invalid(
                    field("public_key"),
                    format!(
                        "validator {:?} repeats public key {public_key} of an earlier validator",
                        entry.name
                    ),
                ));
            }
            let operator = match &entry.operator {
                Some(text) => Address::from_bech32(text)
                    .map_err(|error| GenesisError::invalid(field("operator"), error.to_string()))?,
                None => public_key.address(),
            };
            validators.push(Validator {
                name: entry.name.clone(),
                public_key,
                power: VotingPower(entry.power),
                operator,
            });
        }
        let validators = ValidatorSet::new(validators)
            .map_err(|error| GenesisError::invalid("validators", error.to_string()))?;

        if self.accounts.len() > GENESIS_ACCOUNTS_MAX {
            return Err(GenesisError::invalid(
                "accounts",
                format!(
                    "{} accounts, the limit is {GENESIS_ACCOUNTS_MAX}",
                    self.accounts.len()
                ),
            ));
        }
        let mut accounts = Vec::with_capacity(self.accounts.len());
        let mut addresses = BTreeSet::new();
        let mut total_supply: u64 = 0;
        for (index, entry) in self.accounts.iter().enumerate() {
            let field = format!("accounts[{index}].address");
            let address = Address::from_bech32(&entry.address)
                .map_err(|error| GenesisError::invalid(field.clone(), error.to_string()))?;
            if !addresses.insert(address) {
                return Err(GenesisError::invalid(
                    field,
                    format!("account {address} is listed twice; merge the entries"),
                ));
            }
            total_supply = total_supply.checked_add(entry.balance).ok_or_else(|| {
                GenesisError::invalid(
                    format!("accounts[{index}].balance"),
                    "the total supply overflows a u64; lower the balances",
                )
            })?;
            accounts.push((address, entry.balance));
        }
        let genesis = Genesis {
            chain_id,
            genesis_time,
            validators,
            accounts,
            consensus_params: self.consensus_params.clone(),
            staking_params: self.staking_params.clone(),
            fee_params: self.fee_params,
        };
        genesis.check_stakes()?;
        genesis.check_deposits()?;
        Ok(genesis)
    }
}

fn parse_time(text: &str) -> Result<Timestamp, GenesisError> {
    let parsed = OffsetDateTime::parse(text, &Rfc3339).map_err(|error| {
        GenesisError::invalid(
            "genesis_time",
            format!("{text:?} is not an RFC 3339 time ({error}); write e.g. 2026-01-01T00:00:00Z"),
        )
    })?;
    let millis = parsed.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(millis)
        .map(Timestamp)
        .map_err(|_| GenesisError::invalid("genesis_time", format!("{text:?} is before 1970")))
}

/// Formats milliseconds since the epoch as RFC 3339.
pub(crate) fn format_time(time: Timestamp) -> String {
    let nanos = i128::from(time.as_millis()) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|parsed| parsed.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

impl Genesis {
    /// Loads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Genesis, GenesisError> {
        GenesisFile::load(path)?.validate()
    }

    /// The genesis hash: SHA-256 over a domain tag and the canonical
    /// encoding of the validated genesis. The first block names it as its
    /// parent; a store remembers it to refuse another chain's data.
    pub fn hash(&self) -> Hash {
        let canonical = CanonicalGenesis {
            chain_id: &self.chain_id,
            genesis_time: self.genesis_time,
            validators: self.validators.validators(),
            accounts: &self.accounts,
            consensus_params: &self.consensus_params,
            staking_params: &self.staking_params,
            fee_params: &self.fee_params,
        };
        let mut bytes = GENESIS_HASH_DOMAIN.to_vec();
        bytes.extend_from_slice(&codec::encode(&canonical));
        sha256(&bytes)
    }

    /// The stake each genesis validator bonds: power x `power_unit`.
    pub fn stakes(&self) -> Result<Vec<u64>, GenesisError> {
        self.validators
            .validators()
            .iter()
            .enumerate()
            .map(|(index, validator)| {
                validator
                    .power
                    .0
                    .checked_mul(self.staking_params.power_unit)
                    .ok_or_else(|| {
                        GenesisError::invalid(
                            format!("validators[{index}].power"),
                            "power x staking_params.power_unit overflows a u64; lower the power",
                        )
                    })
            })
            .collect()
    }

    /// Checks that every validator's operator is a genesis account able
    /// to bond its stake, and one operator runs one validator.
    fn check_stakes(&self) -> Result<(), GenesisError> {
        let stakes = self.stakes()?;
        let mut operators = BTreeSet::new();
        for (index, (validator, stake)) in
            self.validators.validators().iter().zip(&stakes).enumerate()
        {
            let field = format!("validators[{index}].operator");
            if !operators.insert(validator.operator) {
                return Err(GenesisError::invalid(
                    field,
                    format!(
                        "operator {} already runs another validator; one operator runs one validator",
                        validator.operator
                    ),
                ));
            }
            let balance = self
                .accounts
                .iter()
                .find(|(address, _)| *address == validator.operator)
                .map(|(_, balance)| *balance);
            match balance {
                Some(balance) if balance >= *stake => {}
                Some(balance) => {
                    return Err(GenesisError::invalid(
                        field,
                        format!(
                            "validator {:?} bonds {stake} (power {} x power_unit {}) but its operator {} holds {balance}; raise the operator's balance in `accounts`",
                            validator.name, validator.power.0, self.staking_params.power_unit, validator.operator
                        ),
                    ))
                }
                None => {
                    return Err(GenesisError::invalid(
                        field,
                        format!(
                            "validator {:?} bonds {stake} (power {} x power_unit {}) from operator {}, which is not in `accounts`; fund it there",
                            validator.name, validator.power.0, self.staking_params.power_unit, validator.operator
                        ),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Checks that every genesis balance, after the validators bond their
    /// stake, is 0 or at least the existential deposit.
    fn check_deposits(&self) -> Result<(), GenesisError> {
        let minimum = self.fee_params.existential_deposit;
        let stakes = self.stakes()?;
        for (index, (address, balance)) in self.accounts.iter().enumerate() {
            let bonded: u64 = self
                .validators
                .validators()
                .iter()
                .zip(&stakes)
                .filter(|(validator, _)| validator.operator == *address)
                .map(|(_, stake)| *stake)
                .sum();
            let left = balance.saturating_sub(bonded);
            if left != 0 && left < minimum {
                return Err(GenesisError::invalid(
                    format!("accounts[{index}].balance"),
                    format!(
                        "{address} would hold {left} (after bonding {bonded}), less than fee_params.existential_deposit {minimum}; give it 0 or at least {minimum}"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The ledger state before the first block: the accounts, less the
    /// stake the validators' operators bond, and the staking state.
    pub fn state(&self) -> Result<cairn_state::LedgerState, GenesisError> {
        let staking = cairn_state::StakingState::genesis(
            self.staking_params.clone(),
            &self.validators,
            &self.stakes()?,
        )
        .map_err(|error| GenesisError::invalid("validators", error.to_string()))?;
        cairn_state::LedgerState::from_genesis_with_staking(&self.accounts, staking)
            .map(|state| state.with_fee_params(self.fee_params))
            .map_err(|error| GenesisError::invalid("accounts", error.to_string()))
    }

    /// The sum of all genesis balances.
    pub fn total_supply(&self) -> u64 {
        // validate() proved the sum fits in a u64.
        self.accounts
            .iter()
            .fold(0u64, |sum, (_, balance)| sum.saturating_add(*balance))
    }

    /// The file form of this genesis, for writing `genesis.json`.
    pub fn to_file(&self) -> GenesisFile {
        GenesisFile {
            chain_id: self.chain_id.to_string(),
            genesis_time: format_time(self.genesis_time),
            validators: self
                .validators
                .validators()
                .iter()
                .map(|validator| GenesisValidator {
                    name: validator.name.clone(),
                    public_key: validator.public_key.to_hex(),
                    power: validator.power.0,
                    operator: (validator.operator != validator.public_key.address())
                        .then(|| validator.operator.to_bech32()),
                })
                .collect(),
            accounts: self
                .accounts
                .iter()
                .map(|(address, balance)| GenesisAccount {
                    address: address.to_bech32(),
                    balance: *balance,
                })
                .collect(),
            consensus_params: self.consensus_params.clone(),
            staking_params: self.staking_params.clone(),
            fee_params: self.fee_params,
        }
    }
}
