//! Node-local configuration: `config/config.toml` in the node's home.
//!
//! Chain-wide settings live in `genesis.json`; everything here is the
//! operator's choice for one node. Every key can be overridden by a
//! `cairnd start` flag and by a `CAIRN_*` environment variable (flag wins
//! over environment, environment over file, file over default).

use std::{net::SocketAddr, path::Path};

use serde::{Deserialize, Serialize};

use crate::NodeError;

/// Largest `config.toml` read.
pub const CONFIG_FILE_BYTES_MAX: u64 = 1024 * 1024;

/// Whether this node votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeMode {
    /// Signs proposals and votes with `config/validator_key.json`; its key
    /// must be in the genesis validator set.
    Validator,
    /// Follows the chain, serves RPC, never votes.
    Full,
}

/// Output format of the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// The whole of `config.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// A name for this node, shown to peers and in logs.
    pub moniker: String,
    /// `validator` or `full`.
    pub mode: NodeMode,
    /// Peer-to-peer networking.
    pub p2p: P2pConfig,
    /// The HTTP/JSON RPC server.
    pub rpc: RpcConfig,
    /// The Prometheus metrics server.
    pub metrics: MetricsConfig,
    /// Node-local consensus timing.
    pub consensus: ConsensusConfig,
    /// Mempool caps.
    pub mempool: MempoolConfig,
    /// Logging.
    pub log: LogConfig,
}

/// `[p2p]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P2pConfig {
    /// Multiaddrs to listen on; port 0 picks a free port.
    pub listen: Vec<String>,
    /// Multiaddrs of peers to start discovery from, with `/p2p/<peer id>`.
    pub bootstrap: Vec<String>,
    /// Local-network discovery by multicast. Off by default: it sends on
    /// every non-loopback interface.
    pub mdns: bool,
    /// Keep dialling discovered peers until this many are connected.
    pub peers_target: u32,
}

/// `[rpc]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcConfig {
    /// Address of the RPC server; port 0 picks a free port.
    pub listen: SocketAddr,
}

/// `[metrics]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the Prometheus endpoint; port 0 picks a free port.
    pub listen: SocketAddr,
}

/// `[consensus]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusConfig {
    /// Pause after a commit before the next height starts (0 allowed).
    pub timeout_commit_ms: u64,
    /// Hold a new height until transactions arrive (or until
    /// `block_interval_max_ms` passes), so idle chains do not churn.
    pub wait_for_transactions: bool,
    /// Longest time between blocks while waiting for transactions.
    pub block_interval_max_ms: u64,
}

/// `[mempool]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MempoolConfig {
    /// Most pending transactions.
    pub transactions_max: u64,
    /// Most bytes of pending transactions.
    pub bytes_max: u64,
}

/// `[log]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `plain` or `json`.
    pub format: LogFormat,
    /// Filter in the `RUST_LOG` style, e.g. `info,cairn_p2p=debug`.
    pub filter: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            moniker: "cairn-node".into(),
            mode: NodeMode::Validator,
            p2p: P2pConfig {
                listen: vec!["/ip4/0.0.0.0/tcp/26656".into()],
                bootstrap: Vec::new(),
                mdns: false,
                peers_target: 16,
            },
            rpc: RpcConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 26657)),
            },
            metrics: MetricsConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 26660)),
            },
            consensus: ConsensusConfig {
                timeout_commit_ms: 100,
                wait_for_transactions: true,
                block_interval_max_ms: 10_000,
            },
            mempool: MempoolConfig {
                transactions_max: 200_000,
                bytes_max: 128 * 1024 * 1024,
            },
            log: LogConfig {
                format: LogFormat::Plain,
                filter: "info".into(),
            },
        }
    }
}

impl NodeConfig {
    /// Reads `path`. Errors name the file, the key and what to do.
    pub fn load(path: &Path) -> Result<NodeConfig, NodeError> {
        let metadata = std::fs::metadata(path).map_err(|source| NodeError::Io {
            action: "read config file",
            path: path.to_path_buf(),
            source,
        })?;
        if metadata.len() > CONFIG_FILE_BYTES_MAX {
            return Err(NodeError::Config {
                path: path.to_path_buf(),
                message: format!(
                    "the file is {} bytes, the limit is {CONFIG_FILE_BYTES_MAX}",
                    metadata.len()
                ),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| NodeError::Io {
            action: "read config file",
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<NodeConfig, NodeError> {
        toml::from_str(text).map_err(|error| NodeError::Config {
            path: origin.to_path_buf(),
            message: format!(
                "{}; see `cairnd init` for a complete file with every key",
                error.to_string().trim_end()
            ),
        })
    }

    /// The TOML text written by `cairnd init`.
    pub fn to_toml(&self) -> String {
        match toml::to_string_pretty(self) {
            Ok(text) => text,
            // Plain structs of strings, numbers and booleans always serialize.
            Err(error) => unreachable!("config serialization failed: {error}"),
        }
    }
}
