//! `cairnd init`: creates a node's home with its config, keys and genesis.

use std::{fs, path::Path};

use cairn_genesis::{
    devnet::{build_devnet_from_keys, generate_keypair, DevnetKeys},
    Genesis, GenesisFile,
};
use cairn_types::{ConsensusParams, Timestamp};

use crate::{
    config::{NodeConfig, NodeMode},
    home::{write_key_file, write_private_file, Home},
    NodeError,
};

/// What `cairnd init` is asked to do.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Name of the node.
    pub moniker: String,
    /// Chain id of a new single-validator genesis (ignored with `genesis`).
    pub chain_id: String,
    /// An existing genesis file to copy in.
    pub genesis: Option<std::path::PathBuf>,
    /// Validator or full node.
    pub mode: NodeMode,
    /// Genesis time of a new genesis.
    pub genesis_time: Timestamp,
    /// `consensus.timeout_commit_ms` written to the config, when not the
    /// default.
    pub timeout_commit_ms: Option<u64>,
}

/// Creates the home: `config/config.toml`, `config/node_key.json`,
/// `config/validator_key.json` (0600), `config/genesis.json` and `data/`.
/// Refuses to touch a home that already has a config or keys.
pub fn init_home(home: &Home, options: &InitOptions) -> Result<(), NodeError> {
    for existing in [
        home.config_file(),
        home.node_key_file(),
        home.validator_key_file(),
        home.genesis_file(),
    ] {
        if existing.exists() {
            return Err(NodeError::Home(format!(
                "{} already exists: {} is already initialised. Use another --home, or delete it first",
                existing.display(),
                home.root().display()
            )));
        }
    }
    // Validate an imported genesis before writing anything.
    let imported = match &options.genesis {
        Some(path) => Some(GenesisFile::load(path).and_then(|file| {
            file.validate()?;
            Ok(file)
        })?),
        None => None,
    };
    create_dir(&home.config_dir())?;
    create_dir(&home.data_dir())?;

    let validator_key = generate_keypair();
    write_key_file(&home.validator_key_file(), &validator_key)?;
    write_key_file(&home.node_key_file(), &generate_keypair())?;

    let mut config = NodeConfig {
        moniker: options.moniker.clone(),
        mode: options.mode,
        ..NodeConfig::default()
    };
    if let Some(timeout_commit_ms) = options.timeout_commit_ms {
        config.consensus.timeout_commit_ms = timeout_commit_ms;
    }
    write_private_file(&home.config_file(), config.to_toml().as_bytes())?;

    let genesis_file = match imported {
        Some(file) => file,
        None => build_devnet_from_keys(&DevnetKeys {
            chain_id: options.chain_id.clone(),
            genesis_time: options.genesis_time,
            validators: vec![(options.moniker.clone(), validator_key.public_key())],
            accounts: Vec::new(),
            consensus_params: ConsensusParams::default(),
        })?
        .to_file(),
    };
    genesis_file.save(&home.genesis_file())?;
    Ok(())
}

/// Loads the home's genesis.
pub fn load_genesis(home: &Home) -> Result<Genesis, NodeError> {
    Ok(Genesis::load(&home.genesis_file())?)
}

fn create_dir(path: &Path) -> Result<(), NodeError> {
    fs::create_dir_all(path).map_err(|source| NodeError::Io {
        action: "create directory",
        path: path.to_path_buf(),
        source,
    })
}

/// `cairnd reset --yes`: deletes the chain data, keeps keys and config.
pub fn reset_data(home: &Home) -> Result<(), NodeError> {
    let data = home.data_dir();
    if data.exists() {
        fs::remove_dir_all(&data).map_err(|source| NodeError::Io {
            action: "delete",
            path: data.clone(),
            source,
        })?;
    }
    let addresses = home.addresses_file();
    if addresses.exists() {
        fs::remove_file(&addresses).map_err(|source| NodeError::Io {
            action: "delete",
            path: addresses.clone(),
            source,
        })?;
    }
    create_dir(&data)
}

/// `cairnd start --dev`: makes `home` a node of the built-in dev chain
/// (the dev genesis and the INSECURE dev validator key), unless it is
/// already initialised. RPC and metrics listen on port 0 by default, and
/// `timeout_commit_ms` is 0.
pub fn init_dev_home(home: &Home) -> Result<(), NodeError> {
    if home.config_file().exists() {
        return Ok(());
    }
    create_dir(&home.config_dir())?;
    create_dir(&home.data_dir())?;
    write_key_file(
        &home.validator_key_file(),
        &cairn_genesis::dev::dev_validator_keypair(),
    )?;
    write_key_file(&home.node_key_file(), &generate_keypair())?;
    let mut config = NodeConfig {
        moniker: "dev".into(),
        mode: NodeMode::Validator,
        ..NodeConfig::default()
    };
    config.p2p.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    // One validator has no other precommits to wait for: the next height
    // starts as soon as transactions are there (BENCHMARKS.md: 38,700 to
    // 42,000 tx/s against 37,000 to 38,600 with 10 ms).
    config.consensus.timeout_commit_ms = 0;
    write_private_file(&home.config_file(), config.to_toml().as_bytes())?;
    cairn_genesis::dev::dev_genesis()?
        .to_file()
        .save(&home.genesis_file())?;
    Ok(())
}
