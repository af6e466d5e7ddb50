//! Building the genesis of a devnet from given validator keys, with freshly
//! generated funded accounts.
//!
//! Each devnet validator has power 1 and is its own operator: the account
//! of its consensus key holds [`DEVNET_VALIDATOR_BALANCE_UNITS`] power
//! units at genesis, of which one is bonded, so the validator's key file
//! can also sign its staking transactions (unbond, unjail).

use cairn_types::{Address, ConsensusParams, Keypair, PublicKey, StakingParams, Timestamp};
use rand::RngCore;

use crate::{
    file::format_time, Genesis, GenesisAccount, GenesisError, GenesisFile, GenesisValidator,
};

/// Most accounts a devnet generation may create in one call.
pub const DEVNET_GENERATED_ACCOUNTS_MAX: usize = 100_000;
/// Power units a devnet validator's own account holds at genesis (one of
/// them bonded).
pub const DEVNET_VALIDATOR_BALANCE_UNITS: u64 = 10;

/// Staking parameters of devnets and the dev chain: the shortest
/// unbonding period the rules allow, a short jail.
pub fn devnet_staking_params() -> StakingParams {
    StakingParams {
        unbonding_period_blocks: cairn_types::limits::EVIDENCE_AGE_MAX_BLOCKS,
        jail_blocks: 20,
        ..StakingParams::default()
    }
}

/// What a devnet's genesis is made of.
#[derive(Clone, Debug)]
pub struct DevnetSpec {
    /// The chain id.
    pub chain_id: String,
    /// Genesis time.
    pub genesis_time: Timestamp,
    /// Validators by name and public key, each with power 1.
    pub validators: Vec<(String, PublicKey)>,
    /// How many accounts to generate and fund.
    pub accounts: usize,
    /// The balance of each generated account.
    pub account_balance: u64,
    /// Consensus parameters.
    pub consensus_params: ConsensusParams,
    /// Staking parameters.
    pub staking_params: StakingParams,
}

/// A devnet genesis and the keys of the accounts it funds.
#[derive(Debug)]
pub struct Devnet {
    /// The validated genesis.
    pub genesis: Genesis,
    /// Keys of the funded accounts, in genesis order.
    pub account_keys: Vec<Keypair>,
}

/// A keypair from the operating system's randomness.
pub fn generate_keypair() -> Keypair {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    Keypair::from_seed(&seed)
}

/// A genesis made of known keys and balances.
#[derive(Clone, Debug)]
pub struct DevnetKeys {
    /// The chain id.
    pub chain_id: String,
    /// Genesis time.
    pub genesis_time: Timestamp,
    /// Validators by name and public key, each with power 1.
    pub validators: Vec<(String, PublicKey)>,
    /// Funded accounts and their balances (the validators' own accounts
    /// are added).
    pub accounts: Vec<(Address, u64)>,
    /// Consensus parameters.
    pub consensus_params: ConsensusParams,
    /// Staking parameters.
    pub staking_params: StakingParams,
}

/// Builds and validates a genesis from known validator keys and accounts.
pub fn build_devnet_from_keys(keys: &DevnetKeys) -> Result<Genesis, GenesisError> {
    let validator_balance = keys
        .staking_params
        .power_unit
        .saturating_mul(DEVNET_VALIDATOR_BALANCE_UNITS);
    // The given accounts first, in order (their keys are listed in that
    // order), then the validators' own.
    let mut accounts: Vec<(Address, u64)> = keys.accounts.clone();
    accounts.extend(
        keys.validators
            .iter()
            .map(|(_, public_key)| (public_key.address(), validator_balance))
            .filter(|(address, _)| keys.accounts.iter().all(|(other, _)| other != address)),
    );
    GenesisFile {
        chain_id: keys.chain_id.clone(),
        genesis_time: format_time(keys.genesis_time),
        validators: keys
            .validators
            .iter()
            .map(|(name, public_key)| GenesisValidator {
                name: name.clone(),
                public_key: public_key.to_hex(),
                power: 1,
                operator: None,
            })
            .collect(),
        accounts: accounts
            .iter()
            .map(|(address, balance)| GenesisAccount {
                address: address.to_bech32(),
                balance: *balance,
            })
            .collect(),
        consensus_params: keys.consensus_params.clone(),
        staking_params: keys.staking_params.clone(),
        fee_params: cairn_types::FeeParams::default(),
    }
    .validate()
}

/// Builds and validates a devnet genesis, generating `spec.accounts`
/// funded accounts with fresh keys.
pub fn build_devnet(spec: &DevnetSpec) -> Result<Devnet, GenesisError> {
    if spec.accounts > DEVNET_GENERATED_ACCOUNTS_MAX {
        return Err(GenesisError::invalid(
            "accounts",
            format!(
                "asked for {} accounts, the limit is {DEVNET_GENERATED_ACCOUNTS_MAX}",
                spec.accounts
            ),
        ));
    }
    let account_keys: Vec<Keypair> = (0..spec.accounts).map(|_| generate_keypair()).collect();
    let genesis = build_devnet_from_keys(&DevnetKeys {
        chain_id: spec.chain_id.clone(),
        genesis_time: spec.genesis_time,
        validators: spec.validators.clone(),
        accounts: account_keys
            .iter()
            .map(|keypair| (keypair.address(), spec.account_balance))
            .collect(),
        consensus_params: spec.consensus_params.clone(),
        staking_params: spec.staking_params.clone(),
    })?;
    Ok(Devnet {
        genesis,
        account_keys,
    })
}
