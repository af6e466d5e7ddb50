//! The built-in `dev` chain of `cairnd start --dev`: one validator and a
//! few funded accounts whose keys are derived from public strings.
//!
//! **INSECURE.** Everyone knows these keys. The dev chain exists for local
//! experiments, like anvil's accounts; never fund anything real with them.

use cairn_types::{sha256, ConsensusParams, Keypair, Timestamp};

use crate::{
    devnet::{build_devnet_from_keys, DevnetKeys},
    Genesis, GenesisError,
};

/// Chain id of the dev chain.
pub const DEV_CHAIN_ID: &str = "cairn-dev";
/// Number of funded dev accounts.
pub const DEV_ACCOUNTS: usize = 10;
/// Balance of each dev account.
pub const DEV_ACCOUNT_BALANCE: u64 = 1_000_000_000_000;
/// Genesis time of the dev chain: 2024-01-01T00:00:00Z.
pub const DEV_GENESIS_TIME: Timestamp = Timestamp(1_704_067_200_000);

/// The dev validator's key (INSECURE: derived from a public string).
pub fn dev_validator_keypair() -> Keypair {
    Keypair::from_seed(&sha256(b"cairn insecure dev validator").0)
}

/// The dev accounts' keys (INSECURE: derived from public strings).
pub fn dev_account_keypairs() -> Vec<Keypair> {
    (0..DEV_ACCOUNTS)
        .map(|index| {
            Keypair::from_seed(&sha256(format!("cairn insecure dev account {index}").as_bytes()).0)
        })
        .collect()
}

/// Consensus parameters of the dev chain: short timeouts for one validator.
pub fn dev_consensus_params() -> ConsensusParams {
    ConsensusParams {
        timeout_propose_ms: 1_000,
        timeout_propose_delta_ms: 200,
        timeout_prevote_ms: 500,
        timeout_prevote_delta_ms: 200,
        timeout_precommit_ms: 500,
        timeout_precommit_delta_ms: 200,
        ..ConsensusParams::default()
    }
}

/// The genesis of the dev chain.
pub fn dev_genesis() -> Result<Genesis, GenesisError> {
    build_devnet_from_keys(&DevnetKeys {
        chain_id: DEV_CHAIN_ID.to_string(),
        genesis_time: DEV_GENESIS_TIME,
        validators: vec![(
            "dev-validator".to_string(),
            dev_validator_keypair().public_key(),
        )],
        accounts: dev_account_keypairs()
            .iter()
            .map(|keypair| (keypair.address(), DEV_ACCOUNT_BALANCE))
            .collect(),
        consensus_params: dev_consensus_params(),
        staking_params: crate::devnet::devnet_staking_params(),
    })
}
