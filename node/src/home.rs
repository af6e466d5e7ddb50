//! The node's home directory: where its configuration, keys and data live.
//!
//! ```text
//! <home>/config/config.toml        node-local settings
//! <home>/config/genesis.json       the chain
//! <home>/config/node_key.json      libp2p identity (0600)
//! <home>/config/validator_key.json consensus signing key (0600)
//! <home>/config/sign_state.json    last (height, round, step) this validator
//!                                  signed; kept by `reset`, never by a copy
//! <home>/data/                     RocksDB
//! <home>/addresses.json            addresses actually bound, for scripts
//! ```

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use cairn_types::Keypair;
use serde::{Deserialize, Serialize};

use crate::NodeError;

/// Paths inside a node's home.
#[derive(Clone, Debug)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// A home rooted at `root` (not created).
    pub fn new(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }

    /// The default home, `~/.cairn`.
    pub fn default_root() -> PathBuf {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".cairn")
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config/`
    pub fn config_dir(&self) -> PathBuf {
        self.root.join("config")
    }

    /// `config/config.toml`
    pub fn config_file(&self) -> PathBuf {
        self.config_dir().join("config.toml")
    }

    /// `config/genesis.json`
    pub fn genesis_file(&self) -> PathBuf {
        self.config_dir().join("genesis.json")
    }

    /// `config/node_key.json`
    pub fn node_key_file(&self) -> PathBuf {
        self.config_dir().join("node_key.json")
    }

    /// `config/validator_key.json`
    pub fn validator_key_file(&self) -> PathBuf {
        self.config_dir().join("validator_key.json")
    }

    /// `config/sign_state.json`: the last vote or proposal this validator
    /// signed, so it never signs a conflicting one (see `sign_state`).
    pub fn sign_state_file(&self) -> PathBuf {
        self.config_dir().join("sign_state.json")
    }

    /// `data/`
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// `mempool.journal`: transactions submitted through this node's RPC,
    /// replayed into the mempool on start.
    pub fn mempool_journal_file(&self) -> PathBuf {
        self.root.join("mempool.journal")
    }

    /// `snapshots/`: the state snapshots this node took and serves.
    pub fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// `address_book.json`: the peers the node knew and their addresses,
    /// dialled at start besides `p2p.bootstrap` (see `cairn_p2p`).
    pub fn address_book_file(&self) -> PathBuf {
        self.root.join("address_book.json")
    }

    /// `addresses.json`: the addresses the running node bound.
    pub fn addresses_file(&self) -> PathBuf {
        self.root.join("addresses.json")
    }
}

/// A key file: an ed25519 secret seed and its public key, in hex.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    public_key: String,
    secret_key: String,
}

/// Writes `keypair` to `path`, readable by the owner only (0600). Refuses
/// to overwrite an existing file.
pub fn write_key_file(path: &Path, keypair: &Keypair) -> Result<(), NodeError> {
    let file = KeyFile {
        public_key: keypair.public_key().to_hex(),
        secret_key: hex::encode(keypair.seed()),
    };
    let text = serde_json::to_string_pretty(&file).map_err(|error| NodeError::KeyFile {
        path: path.to_path_buf(),
        message: error.to_string(),
    })?;
    write_private_file(path, text.as_bytes())
}

/// Reads a key file written by [`write_key_file`], checking that the public
/// key matches the secret.
pub fn read_key_file(path: &Path) -> Result<Keypair, NodeError> {
    let bad = |message: String| NodeError::KeyFile {
        path: path.to_path_buf(),
        message,
    };
    let text = fs::read_to_string(path).map_err(|source| NodeError::Io {
        action: "read key file",
        path: path.to_path_buf(),
        source,
    })?;
    let file: KeyFile = serde_json::from_str(&text).map_err(|error| {
        bad(format!(
            "{error}; restore it from a backup or run `cairnd init` in a new home"
        ))
    })?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(file.secret_key.trim(), &mut seed)
        .map_err(|error| bad(format!("secret_key is not 64 hex characters: {error}")))?;
    let keypair = Keypair::from_seed(&seed);
    if keypair.public_key().to_hex() != file.public_key.trim().to_lowercase() {
        return Err(bad(
            "public_key does not belong to secret_key; the file is corrupt".into(),
        ));
    }
    Ok(keypair)
}

/// Creates `path` with mode 0600 and writes `bytes`; never overwrites.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    let io_error = |source| NodeError::Io {
        action: "create",
        path: path.to_path_buf(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_error)?;
    file.write_all(bytes).map_err(io_error)?;
    file.sync_all().map_err(io_error)
}

/// What [`check_data_dir`] found in `data/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataDir {
    /// Not there yet; `cairnd start` creates it.
    Absent,
    /// A directory without a store; `cairnd start` creates one in it.
    Empty,
    /// A directory with a RocksDB store (a `CURRENT` file).
    Store,
    /// A directory holding files but no RocksDB store.
    Foreign,
}

/// Checks that `data/` can hold the store before anything opens it: a
/// directory, or absent. With `probe_write`, also that a file can be
/// created in it (the probe is removed at once).
pub fn check_data_dir(home: &Home, probe_write: bool) -> Result<DataDir, NodeError> {
    let data = home.data_dir();
    let metadata = match fs::metadata(&data) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if probe_write {
                // Creatable? (removed again: `cairnd check` leaves no trace)
                fs::create_dir(&data)
                    .and_then(|()| fs::remove_dir(&data))
                    .map_err(|source| {
                        NodeError::Home(format!(
                            "{} does not exist and cannot be created: {source}; create it, or give the user running cairnd write access to {}",
                            data.display(),
                            home.root().display()
                        ))
                    })?;
            }
            return Ok(DataDir::Absent);
        }
        Err(source) => {
            return Err(NodeError::Io {
                action: "look at the data directory",
                path: data,
                source,
            })
        }
    };
    if !metadata.is_dir() {
        return Err(NodeError::Home(format!(
            "{path} is a file, not a directory; move it away (e.g. `mv {path} {path}.old`) and the node creates the directory with a new store (it syncs the chain again from its peers)",
            path = data.display()
        )));
    }
    let mut entries = fs::read_dir(&data).map_err(|source| NodeError::Io {
        action: "list the data directory",
        path: data.clone(),
        source,
    })?;
    let found = if data.join("CURRENT").is_file() {
        DataDir::Store
    } else if entries.next().is_some() {
        DataDir::Foreign
    } else {
        DataDir::Empty
    };
    if probe_write {
        let probe = data.join(format!(".cairnd-check-{}", std::process::id()));
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
            .map_err(|source| {
                NodeError::Home(format!(
                    "cannot create a file in {}: {source}; give the user running cairnd write access to it (e.g. `chown -R $(id -un) {}`)",
                    data.display(),
                    data.display()
                ))
            })?;
        fs::remove_file(&probe).map_err(|source| NodeError::Io {
            action: "delete the probe file",
            path: probe.clone(),
            source,
        })?;
    }
    Ok(found)
}
