//! Building the genesis of a devnet from given validator keys, with freshly
//! generated funded accounts.

use cairn_types::{Address, ConsensusParams, Keypair, PublicKey, Timestamp};
use rand::RngCore;

use crate::{
    file::format_time, Genesis, GenesisAccount, GenesisError, GenesisFile, GenesisValidator,
};

/// Most accounts a devnet generation may create in one call.
pub const DEVNET_GENERATED_ACCOUNTS_MAX: usize = 100_000;

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
    /// Funded accounts and their balances.
    pub accounts: Vec<(Address, u64)>,
    /// Consensus parameters.
    pub consensus_params: ConsensusParams,
}

/// Builds and validates a genesis from known validator keys and accounts.
pub fn build_devnet_from_keys(keys: &DevnetKeys) -> Result<Genesis, GenesisError> {
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
            })
            .collect(),
        accounts: keys
            .accounts
            .iter()
            .map(|(address, balance)| GenesisAccount {
                address: address.to_bech32(),
                balance: *balance,
            })
            .collect(),
        consensus_params: keys.consensus_params.clone(),
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
    })?;
    Ok(Devnet {
        genesis,
        account_keys,
    })
}
