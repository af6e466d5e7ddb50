//! Every validation rule of `genesis.json` has a test that checks its
//! message names the field and the problem.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use cairn_genesis::{
    dev::{dev_account_keypairs, dev_genesis, DEV_ACCOUNTS, DEV_ACCOUNT_BALANCE},
    devnet::{build_devnet, DevnetSpec},
    Genesis, GenesisAccount, GenesisError, GenesisFile, GenesisValidator,
};
use cairn_types::{ConsensusParams, Keypair, StakingParams, Timestamp};

fn staking_params() -> StakingParams {
    StakingParams {
        power_unit: 100,
        min_self_stake: 100,
        ..StakingParams::default()
    }
}

/// Four validators of power 1, each its own operator holding exactly its
/// stake (100), and three accounts of 1,000.
fn valid_file() -> GenesisFile {
    GenesisFile {
        chain_id: "cairn-test".into(),
        genesis_time: "2026-01-01T00:00:00Z".into(),
        validators: (1..=4u8)
            .map(|n| GenesisValidator {
                name: format!("v{n}"),
                public_key: Keypair::from_seed(&[n; 32]).public_key().to_hex(),
                power: 1,
                operator: None,
            })
            .collect(),
        accounts: (1..=4u8)
            .map(|n| GenesisAccount {
                address: Keypair::from_seed(&[n; 32]).address().to_bech32(),
                balance: 100,
            })
            .chain((10..13u8).map(|n| GenesisAccount {
                address: Keypair::from_seed(&[n; 32]).address().to_bech32(),
                balance: 1_000,
            }))
            .collect(),
        consensus_params: ConsensusParams::default(),
        staking_params: staking_params(),
        fee_params: cairn_types::FeeParams::default(),
    }
}

#[test]
fn every_validator_bonds_its_stake_from_a_funded_operator() {
    let genesis = valid_file().validate().unwrap();
    let state = genesis.state().unwrap();
    // The stake left the operators' balances and is bonded.
    let operator = Keypair::from_seed(&[1; 32]).address();
    assert_eq!(state.account(&operator).unwrap().balance, 0);
    let staking = state.staking().unwrap();
    assert_eq!(staking.candidate(&operator).unwrap().bonded, 100);
    assert_eq!(staking.total_bonded(), 400);
    assert_eq!(state.total_supply(), 3_400);
    assert_eq!(staking.current_set(), &genesis.validators);
    assert_eq!(staking.next_set(), &genesis.validators);

    let mut poor = valid_file();
    poor.accounts[0].balance = 99;
    let (field, reason) = invalid(poor);
    assert_eq!(field, "validators[0].operator");
    assert!(
        reason.contains("holds 99") && reason.contains("bonds 100"),
        "{reason}"
    );

    let mut unfunded = valid_file();
    unfunded.accounts.remove(1);
    let (field, reason) = invalid(unfunded);
    assert_eq!(field, "validators[1].operator");
    assert!(reason.contains("not in `accounts`"), "{reason}");

    let mut shared = valid_file();
    let first = Keypair::from_seed(&[1; 32]).address().to_bech32();
    shared.validators[1].operator = Some(first);
    let (field, reason) = invalid(shared);
    assert_eq!(field, "validators[1].operator");
    assert!(
        reason.contains("already runs another validator"),
        "{reason}"
    );

    let mut bad_params = valid_file();
    bad_params.staking_params.unbonding_period_blocks = 10;
    let (field, reason) = invalid(bad_params);
    assert_eq!(field, "staking_params");
    assert!(reason.contains("evidence window"), "{reason}");
}

fn invalid(file: GenesisFile) -> (String, String) {
    match file.validate() {
        Err(GenesisError::Invalid { field, reason }) => (field, reason),
        other => panic!("expected an invalid-field error, got {other:?}"),
    }
}

#[test]
fn a_valid_file_passes_and_round_trips_through_json() {
    let file = valid_file();
    let genesis = file.validate().unwrap();
    assert_eq!(genesis.validators.len(), 4);
    assert_eq!(genesis.total_supply(), 3_400);
    let text = file.to_json_pretty();
    let back = GenesisFile::from_json(&text, Path::new("genesis.json")).unwrap();
    assert_eq!(back, file);
    assert_eq!(genesis.to_file(), file);
}

#[test]
fn the_hash_ignores_json_formatting_but_not_content() {
    let file = valid_file();
    let pretty = file.to_json_pretty();
    let compact = serde_json::to_string(&file).unwrap();
    let a = GenesisFile::from_json(&pretty, Path::new("a"))
        .unwrap()
        .validate()
        .unwrap();
    let b = GenesisFile::from_json(&compact, Path::new("b"))
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(a.hash(), b.hash());
    let mut changed = file.clone();
    changed.accounts[0].balance += 1;
    assert_ne!(changed.validate().unwrap().hash(), a.hash());
}

#[test]
fn empty_validator_set() {
    let mut file = valid_file();
    file.validators.clear();
    let (field, reason) = invalid(file);
    assert_eq!(field, "validators");
    assert!(reason.contains("empty"), "{reason}");
}

#[test]
fn zero_power() {
    let mut file = valid_file();
    file.validators[2].power = 0;
    let (field, reason) = invalid(file);
    assert_eq!(field, "validators[2].power");
    assert!(
        reason.contains("zero power") && reason.contains("v3"),
        "{reason}"
    );
}

#[test]
fn duplicate_validator_key() {
    let mut file = valid_file();
    file.validators[3].public_key = file.validators[0].public_key.clone();
    let (field, reason) = invalid(file);
    assert_eq!(field, "validators[3].public_key");
    assert!(reason.contains("repeats public key"), "{reason}");
}

#[test]
fn bad_validator_key_encoding() {
    let mut file = valid_file();
    file.validators[1].public_key = "not hex".into();
    let (field, reason) = invalid(file);
    assert_eq!(field, "validators[1].public_key");
    assert!(reason.contains("hex"), "{reason}");
}

#[test]
fn duplicate_account() {
    let mut file = valid_file();
    file.accounts[2].address = file.accounts[0].address.clone();
    let (field, reason) = invalid(file);
    assert_eq!(field, "accounts[2].address");
    assert!(reason.contains("listed twice"), "{reason}");
}

#[test]
fn bad_address_encoding() {
    let mut file = valid_file();
    let mut address = file.accounts[1].address.clone();
    address.pop();
    address.push('x');
    file.accounts[1].address = address;
    let (field, reason) = invalid(file);
    assert_eq!(field, "accounts[1].address");
    assert!(reason.contains("cairn1"), "{reason}");
}

#[test]
fn chain_id_charset_and_length() {
    for bad in ["Cairn", "has space", "", &"x".repeat(49)] {
        let mut file = valid_file();
        file.chain_id = bad.to_string();
        let (field, _reason) = invalid(file);
        assert_eq!(field, "chain_id", "{bad:?}");
    }
}

#[test]
fn total_supply_overflow() {
    let mut file = valid_file();
    file.accounts[0].balance = u64::MAX;
    let (field, reason) = invalid(file);
    assert_eq!(field, "accounts[1].balance");
    assert!(reason.contains("overflows"), "{reason}");
}

#[test]
fn bad_genesis_time() {
    let mut file = valid_file();
    file.genesis_time = "yesterday".into();
    let (field, reason) = invalid(file);
    assert_eq!(field, "genesis_time");
    assert!(reason.contains("RFC 3339"), "{reason}");
}

#[test]
fn bad_consensus_params() {
    let mut file = valid_file();
    file.consensus_params.block_bytes_max = 0;
    let (field, reason) = invalid(file);
    assert_eq!(field, "consensus_params");
    assert!(reason.contains("block_bytes_max"), "{reason}");
}

#[test]
fn unknown_keys_and_syntax_errors_name_the_file_and_place() {
    let text = valid_file()
        .to_json_pretty()
        .replace("\"chain_id\"", "\"chain_idd\"");
    let error = GenesisFile::from_json(&text, Path::new("/x/genesis.json")).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("/x/genesis.json") && message.contains("chain_idd"),
        "{message}"
    );
    let error = GenesisFile::from_json("{", Path::new("g.json")).unwrap_err();
    assert!(
        matches!(error, GenesisError::Json { line: 1, .. }),
        "{error}"
    );
}

#[test]
fn missing_file_is_a_clear_error() {
    let error = Genesis::load(Path::new("/nonexistent/genesis.json")).unwrap_err();
    assert!(error
        .to_string()
        .contains("cannot read genesis file /nonexistent/genesis.json"));
}

#[test]
fn genesis_state_holds_the_balances() {
    let genesis = valid_file().validate().unwrap();
    let state = genesis.state().unwrap();
    let operators: Vec<_> = genesis
        .validators
        .validators()
        .iter()
        .map(|v| v.operator)
        .collect();
    for (address, balance) in &genesis.accounts {
        // An operator's stake (power 1 x power_unit 100) is bonded.
        let stake = if operators.contains(address) { 100 } else { 0 };
        assert_eq!(
            state.account(address).map(|account| account.balance),
            Some(*balance - stake)
        );
    }
    let other = {
        let mut file = valid_file();
        file.accounts[5].balance = 999;
        file.validate().unwrap().state().unwrap()
    };
    assert_ne!(state.root(), other.root());
}

#[test]
fn dev_chain_is_fixed_and_funded() {
    let a = dev_genesis().unwrap();
    let b = dev_genesis().unwrap();
    assert_eq!(a.hash(), b.hash());
    assert_eq!(a.validators.len(), 1);
    // The dev accounts, then the validator's own account.
    assert_eq!(a.accounts.len(), DEV_ACCOUNTS + 1);
    let keys = dev_account_keypairs();
    assert_eq!(a.accounts[0], (keys[0].address(), DEV_ACCOUNT_BALANCE));
}

#[test]
fn devnet_generation_funds_fresh_accounts() {
    let validators: Vec<_> = (1..=4u8)
        .map(|n| (format!("v{n}"), Keypair::from_seed(&[n; 32]).public_key()))
        .collect();
    let devnet = build_devnet(&DevnetSpec {
        chain_id: "cairn-devnet".into(),
        genesis_time: Timestamp(1_800_000_000_000),
        validators,
        accounts: 5,
        account_balance: 77,
        consensus_params: ConsensusParams::default(),
        staking_params: cairn_genesis::devnet::devnet_staking_params(),
    })
    .unwrap();
    assert_eq!(devnet.account_keys.len(), 5);
    assert_eq!(devnet.genesis.validators.len(), 4);
    for (keypair, (address, balance)) in devnet.account_keys.iter().zip(&devnet.genesis.accounts) {
        assert_eq!(keypair.address(), *address);
        assert_eq!(*balance, 77);
    }
}

#[test]
fn genesis_balances_respect_the_existential_deposit() {
    let mut file = valid_file();
    file.fee_params.existential_deposit = 500;
    // Operators bond all of their 100 (0 left), the others hold 1,000.
    assert!(file.clone().validate().is_ok());
    file.accounts[5].balance = 499;
    let (field, reason) = invalid(file);
    assert_eq!(field, "accounts[5].balance");
    assert!(reason.contains("existential_deposit 500"), "{reason}");
}
