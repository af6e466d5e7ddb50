//! A node's home on disk: `cairnd init` creates it (config, keys,
//! genesis), `cairnd check` checks it, `cairnd reset` and `cairnd
//! unsafe-reset-all` delete its chain data.

use std::{fs, path::Path};

use cairn_genesis::{
    devnet::{build_devnet_from_keys, generate_keypair, DevnetKeys},
    Genesis, GenesisError, GenesisFile,
};
use cairn_types::{ConsensusParams, Timestamp};

use crate::{
    config::{ConfigOverrides, NodeConfig, NodeMode},
    home::{check_data_dir, read_key_file, write_key_file, write_private_file, DataDir, Home},
    start::{check_validator_key, load_config},
    NodeError,
};

/// What `cairnd init` is asked to do.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Chain id of a new single-validator genesis (ignored with `genesis`).
    pub chain_id: String,
    /// An existing genesis file to copy in.
    pub genesis: Option<std::path::PathBuf>,
    /// Genesis time of a new genesis.
    pub genesis_time: Timestamp,
    /// The `config.toml` to write; its moniker also names the validator of
    /// a new genesis.
    pub config: NodeConfig,
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
            let root = home.root().display();
            return Err(NodeError::Home(format!(
                "{} already exists: {root} is already initialised. Use another --home, or, to start over in this one, delete {config} and {data} (`rm -r {config} {data}`; back up {key} first if this validator is on a live chain). Delete only those two: other files in {root} (such as an older `cairn` keyring in {root}/keys) are not the node's",
                existing.display(),
                config = home.config_dir().display(),
                data = home.data_dir().display(),
                key = home.validator_key_file().display(),
            )));
        }
    }
    check_data_dir(home, false)?;
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

    write_private_file(&home.config_file(), options.config.to_toml().as_bytes())?;

    let genesis_file = match imported {
        Some(file) => file,
        None => build_devnet_from_keys(&DevnetKeys {
            chain_id: options.chain_id.clone(),
            genesis_time: options.genesis_time,
            validators: vec![(options.config.moniker.clone(), validator_key.public_key())],
            accounts: Vec::new(),
            consensus_params: ConsensusParams::default(),
            staking_params: cairn_types::StakingParams::default(),
        })?
        .to_file(),
    };
    genesis_file.save(&home.genesis_file())?;
    Ok(())
}

/// Loads the home's genesis; a missing or unreadable file is explained
/// with what to do ([`explain_genesis_error`]).
pub fn load_genesis(home: &Home) -> Result<Genesis, NodeError> {
    Genesis::load(&home.genesis_file()).map_err(|error| explain_genesis_error(home, error))
}

/// Adds what to do to an error about the home's genesis file: copy the
/// chain's `genesis.json` in, or make a home with `cairnd init --genesis`.
pub fn explain_genesis_error(home: &Home, error: GenesisError) -> NodeError {
    let path = home.genesis_file();
    let config_dir = home.config_dir();
    match &error {
        GenesisError::Io {
            path: failed,
            source,
            ..
        } if *failed == path && source.kind() == std::io::ErrorKind::NotFound => {
            NodeError::Home(format!(
                "genesis file {} does not exist. Copy the chain's genesis.json into {}/, or pass --genesis FILE to `cairnd init` when you create the home",
                path.display(),
                config_dir.display()
            ))
        }
        GenesisError::Io { path: failed, .. } if *failed == path => NodeError::Home(format!(
            "{error}; make it readable by the user running cairnd"
        )),
        GenesisError::Json { path: failed, .. } if *failed == path => NodeError::Home(format!(
            "{error}. The chain's genesis.json belongs in {}/ (`cairnd init --genesis FILE` copies and checks it when you create a home)",
            config_dir.display()
        )),
        GenesisError::Invalid { .. } => {
            NodeError::Home(format!("{}: {error}", path.display()))
        }
        _ => NodeError::Genesis(error),
    }
}

/// Adds what to do to a `cairnd start` error that is about the home (the
/// genesis file).
pub fn explain_start_error(home: &Home, error: NodeError) -> NodeError {
    match error {
        NodeError::Genesis(error) => explain_genesis_error(home, error),
        other => other,
    }
}

fn create_dir(path: &Path) -> Result<(), NodeError> {
    fs::create_dir_all(path).map_err(|source| NodeError::Io {
        action: "create directory",
        path: path.to_path_buf(),
        source,
    })
}

/// What [`reset_data`] or [`unsafe_reset_all`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResetReport {
    /// Paths deleted.
    pub deleted: Vec<std::path::PathBuf>,
    /// Whether `config/sign_state.json` is there after the reset.
    pub sign_state_kept: bool,
}

/// `cairnd reset --yes`: deletes the chain data (`data/`),
/// `addresses.json` and the mempool journal; keeps `config/` (config, genesis, keys and
/// `config/sign_state.json`, so a validator still refuses to sign below
/// its last signed height, round and step).
pub fn reset_data(home: &Home) -> Result<ResetReport, NodeError> {
    let mut report = ResetReport::default();
    delete_chain_data(home, &mut report)?;
    report.sign_state_kept = home.sign_state_file().exists();
    Ok(report)
}

/// `cairnd unsafe-reset-all --yes`: [`reset_data`], and deletes
/// `config/sign_state.json` too. UNSAFE for a validator that rejoins the
/// same chain: it no longer knows what it signed, and can double-sign.
pub fn unsafe_reset_all(home: &Home) -> Result<ResetReport, NodeError> {
    let mut report = ResetReport::default();
    delete_chain_data(home, &mut report)?;
    let sign_state = home.sign_state_file();
    if sign_state.exists() {
        fs::remove_file(&sign_state).map_err(|source| NodeError::Io {
            action: "delete",
            path: sign_state.clone(),
            source,
        })?;
        report.deleted.push(sign_state);
    }
    Ok(report)
}

/// Deletes `data/` (recreated empty), `addresses.json` and
/// `mempool.journal`.
fn delete_chain_data(home: &Home, report: &mut ResetReport) -> Result<(), NodeError> {
    if !home.config_file().exists() {
        return Err(NodeError::Home(format!(
            "{} does not exist: {} is not a node home, so nothing was deleted. Pass the right --home",
            home.config_file().display(),
            home.root().display()
        )));
    }
    let data = home.data_dir();
    // A file there is not the store: leave it to the operator.
    if check_data_dir(home, false)? != DataDir::Absent {
        fs::remove_dir_all(&data).map_err(|source| NodeError::Io {
            action: "delete",
            path: data.clone(),
            source,
        })?;
        report.deleted.push(data.clone());
    }
    let addresses = home.addresses_file();
    if addresses.exists() {
        fs::remove_file(&addresses).map_err(|source| NodeError::Io {
            action: "delete",
            path: addresses.clone(),
            source,
        })?;
        report.deleted.push(addresses);
    }
    // Transactions of the chain that was: not replayed into a chain
    // started over, nor into one synced again.
    let journal = home.mempool_journal_file();
    if journal.exists() {
        fs::remove_file(&journal).map_err(|source| NodeError::Io {
            action: "delete",
            path: journal.clone(),
            source,
        })?;
        report.deleted.push(journal);
    }
    create_dir(&data)
}

/// One line of `cairnd check`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What was checked: `config`, `genesis`, `node key`, ...
    pub name: &'static str,
    /// The finding.
    pub outcome: CheckOutcome,
}

/// The finding of one [`Check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckOutcome {
    /// Usable; what was found.
    Ok(String),
    /// Not usable; what is wrong and what to do.
    Failed(String),
    /// Not checked, because an earlier check failed; which one.
    Skipped(String),
}

impl Check {
    fn new(name: &'static str, result: Result<String, NodeError>) -> Check {
        Check {
            name,
            outcome: match result {
                Ok(found) => CheckOutcome::Ok(found),
                Err(error) => CheckOutcome::Failed(error_text(&error)),
            },
        }
    }

    fn skipped(name: &'static str, reason: &str) -> Check {
        Check {
            name,
            outcome: CheckOutcome::Skipped(reason.to_string()),
        }
    }
}

/// An error and its causes, each said once.
pub fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `cairnd check`: checks what `cairnd start` with the same home and
/// overrides would load (config, genesis, keys, data directory) without
/// starting anything. Nothing is written (a probe file in `data/` is
/// removed at once).
pub fn check_home(home: &Home, overrides: &ConfigOverrides) -> Vec<Check> {
    let mut checks = Vec::new();
    let config = load_config(home, overrides).and_then(|config| {
        config.validate(|key| overrides.origin(key, &home.config_file()))?;
        crate::config::check_rust_log()?;
        Ok(config)
    });
    checks.push(Check::new(
        "config",
        config.as_ref().map_err(clone_error).map(|config| {
            let given = overrides.given();
            format!(
                "{}: moniker {:?}, mode {}, rpc {}, p2p {}{}",
                home.config_file().display(),
                config.moniker,
                match config.mode {
                    NodeMode::Validator => "validator",
                    NodeMode::Full => "full",
                },
                config.rpc.listen,
                config.p2p.listen.join(","),
                if given.is_empty() {
                    String::new()
                } else {
                    format!(" (with {})", given.join(", "))
                }
            )
        }),
    ));
    let genesis = load_genesis(home);
    checks.push(Check::new(
        "genesis",
        genesis.as_ref().map_err(clone_error).map(|genesis| {
            format!(
                "{}: chain {}, {} validator(s), hash {}",
                home.genesis_file().display(),
                genesis.chain_id,
                genesis.validators.len(),
                genesis.hash().to_hex()
            )
        }),
    ));
    checks.push(Check::new("node key", check_node_key(home)));
    checks.push(match (&config, &genesis) {
        (Err(_), _) => Check::skipped(
            "validator key",
            "the config is not valid, so the mode (validator or full) is not known",
        ),
        (Ok(config), _) if config.mode == NodeMode::Full => Check {
            name: "validator key",
            outcome: CheckOutcome::Ok("not used: mode is full (this node does not vote)".into()),
        },
        (Ok(_), Err(_)) => Check::skipped(
            "validator key",
            "the genesis is not valid, so its validator set is not known",
        ),
        (Ok(config), Ok(genesis)) => Check::new(
            "validator key",
            read_key_explained(&home.validator_key_file()).and_then(|keypair| {
                if let Some(note) = check_validator_key(home, config, genesis)? {
                    return Ok(note);
                }
                let key = keypair.public_key();
                let index = genesis.validators.index_of(&key).unwrap_or_default();
                Ok(format!(
                    "{}: {} is validator {} of {} in the genesis",
                    home.validator_key_file().display(),
                    key.to_hex(),
                    index,
                    genesis.validators.len()
                ))
            }),
        ),
    });
    checks.push(match &config {
        Err(_) => Check::skipped(
            "sign state",
            "the config is not valid, so the mode (validator or full) is not known",
        ),
        Ok(config) if config.mode == NodeMode::Full => Check {
            name: "sign state",
            outcome: CheckOutcome::Ok("not used: mode is full (this node signs nothing)".into()),
        },
        Ok(_) => Check::new("sign state", check_sign_state(home)),
    });
    checks.push(Check::new(
        "data",
        check_data_dir(home, true).map(|found| {
            let data = home.data_dir();
            let data = data.display();
            match found {
                DataDir::Absent => format!("{data} does not exist yet; `cairnd start` creates it"),
                DataDir::Empty => format!("{data}: empty directory, writable; `cairnd start` creates the store"),
                DataDir::Store => format!("{data}: directory with a store, writable (the store itself is opened by `cairnd start`; if another cairnd runs in this home, start refuses)"),
                DataDir::Foreign => format!("{data}: writable directory with files but no store; if it is not this node's, move it away"),
            }
        }),
    ));
    checks
}

fn check_node_key(home: &Home) -> Result<String, NodeError> {
    let path = home.node_key_file();
    let keypair = read_key_explained(&path)?;
    let p2p_key =
        cairn_p2p::keypair_from_bytes(&keypair.seed()).map_err(|error| NodeError::KeyFile {
            path: path.clone(),
            message: format!("it cannot be used for p2p ({error}); restore it from a backup"),
        })?;
    Ok(format!(
        "{}: peer id {}",
        path.display(),
        p2p_key.public().to_peer_id()
    ))
}

/// Reads `config/sign_state.json` without creating it (`cairnd start`
/// does): the last (height, round, step) this validator signed.
fn check_sign_state(home: &Home) -> Result<String, NodeError> {
    let path = home.sign_state_file();
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(format!(
                "{} does not exist yet: nothing signed (`cairnd start` creates it)",
                path.display()
            ))
        }
        Err(source) => {
            return Err(NodeError::Io {
                action: "read sign state file",
                path,
                source,
            })
        }
    };
    if text.trim().is_empty() {
        return Ok(format!("{}: nothing signed yet", path.display()));
    }
    let (last, _) =
        crate::sign_state::parse_record(&text).map_err(|error| NodeError::Home(format!(
            "sign state file {} does not parse ({error}). It records the last vote this validator signed; without it the validator could sign a conflicting one. Restore it from a backup; delete it only if this validator never signed on this chain",
            path.display()
        )))?;
    Ok(format!(
        "{}: last signed height {}, round {}, step {:?}; it refuses to sign below that",
        path.display(),
        last.height,
        last.round,
        format!("{:?}", last.step).to_lowercase()
    ))
}

/// [`read_key_file`], with what to do when the file is missing.
fn read_key_explained(path: &Path) -> Result<cairn_types::Keypair, NodeError> {
    read_key_file(path).map_err(|error| match error {
        NodeError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            NodeError::Home(format!(
                "key file {} does not exist; restore it from a backup, or make a new home with `cairnd init` (a new key is a new identity)",
                path.display()
            ))
        }
        other => other,
    })
}

/// The text of a borrowed error, as an owned one (checks report text).
fn clone_error(error: &NodeError) -> NodeError {
    NodeError::Home(error_text(error))
}

/// `cairnd start --dev`: makes `home` a node of the built-in dev chain
/// (the dev genesis and the INSECURE dev validator key), unless it is
/// already initialised. RPC and metrics listen on port 0 by default, and
/// `timeout_commit_ms` is 0.
pub fn init_dev_home(home: &Home) -> Result<(), NodeError> {
    if home.config_file().exists() {
        return Ok(());
    }
    check_data_dir(home, false)?;
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

/// What `cairnd compact` did: the size of `data/` before and after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactReport {
    /// Bytes of `data/` before.
    pub bytes_before: u64,
    /// Bytes of `data/` after.
    pub bytes_after: u64,
}

/// `cairnd compact`: compacts the store of a stopped node wholly
/// ([`cairn_store::Store::compact_all`]): RocksDB rewrites every column
/// into its last level, without what pruning deleted, and gives the disk
/// space back. Refused while the node runs (RocksDB's lock).
pub fn compact_data(home: &Home) -> Result<CompactReport, NodeError> {
    if !home.config_file().exists() {
        return Err(NodeError::Home(format!(
            "{} does not exist: {} is not a node home. Pass the right --home",
            home.config_file().display(),
            home.root().display()
        )));
    }
    let genesis = load_genesis(home)?;
    let data_dir = home.data_dir();
    let bytes_before = directory_bytes(&data_dir);
    let store = crate::ledger::Ledger::open_store(&genesis, &data_dir).map_err(|error| {
        let text = error.to_string();
        if text.contains("LOCK") || text.contains("lock") {
            NodeError::Home(format!(
                "the store in {} is in use: stop the node first (`cairnd compact` works on a stopped node): {text}",
                data_dir.display()
            ))
        } else {
            NodeError::Home(format!("cannot open the store in {}: {text}", data_dir.display()))
        }
    })?;
    cairn_store::Store::compact_all(&store).map_err(|error| {
        NodeError::Home(format!(
            "the compaction of {} failed: {error}",
            data_dir.display()
        ))
    })?;
    drop(store);
    Ok(CompactReport {
        bytes_before,
        bytes_after: directory_bytes(&data_dir),
    })
}

/// Bytes of the files directly in `dir` (a RocksDB directory is flat).
fn directory_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| entry.metadata().ok())
                .filter(|metadata| metadata.is_file())
                .map(|metadata| metadata.len())
                .sum()
        })
        .unwrap_or(0)
}
