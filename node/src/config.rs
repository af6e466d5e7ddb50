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
    /// Most open RPC connections (WebSocket subscriptions count apart, see
    /// `rpc::RPC_WEBSOCKETS_MAX`). At the cap the oldest idle connection is
    /// closed for a new one; with none idle the new one gets a 503.
    #[serde(default = "default_rpc_connections_max")]
    pub connections_max: u32,
    /// A connection whose request headers do not arrive within this many
    /// milliseconds is closed.
    #[serde(default = "default_rpc_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// `GET /ready` answers 503 when the height has not advanced for this
    /// many milliseconds while blocks are expected (0: derived from the
    /// consensus timeouts and `consensus.block_interval_max_ms`).
    #[serde(default)]
    pub ready_stall_ms: u64,
}

fn default_rpc_connections_max() -> u32 {
    1_024
}

fn default_rpc_header_read_timeout_ms() -> u64 {
    5_000
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
                connections_max: default_rpc_connections_max(),
                header_read_timeout_ms: default_rpc_header_read_timeout_ms(),
                ready_stall_ms: 0,
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
                // gossipsub warns on every duplicate publish, which is expected.
                filter: "info,libp2p_gossipsub=error".into(),
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

/// `cairnd start` flags, one for every `config.toml` key, each also read
/// from a `CAIRN_*` environment variable. A flag or variable that is set
/// wins over the file.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ConfigOverrides {
    /// `moniker`
    #[arg(long, env = "CAIRN_MONIKER")]
    pub moniker: Option<String>,
    /// `mode`: validator or full
    #[arg(long, env = "CAIRN_MODE", value_parser = parse_mode)]
    pub mode: Option<NodeMode>,
    /// `p2p.listen` (repeatable, or comma-separated)
    #[arg(long = "p2p-listen", env = "CAIRN_P2P_LISTEN", value_delimiter = ',')]
    pub p2p_listen: Vec<String>,
    /// `p2p.bootstrap`: multiaddr with /p2p/<peer id> (repeatable, or comma-separated)
    #[arg(long = "bootstrap", env = "CAIRN_P2P_BOOTSTRAP", value_delimiter = ',')]
    pub bootstrap: Vec<String>,
    /// `p2p.mdns`: discover peers on the local network by multicast
    #[arg(long, env = "CAIRN_P2P_MDNS", num_args = 0..=1, default_missing_value = "true")]
    pub mdns: Option<bool>,
    /// `p2p.peers_target`
    #[arg(long = "peers-target", env = "CAIRN_P2P_PEERS_TARGET")]
    pub peers_target: Option<u32>,
    /// `rpc.listen`, e.g. 127.0.0.1:26657 (port 0 picks one)
    #[arg(long = "rpc-listen", env = "CAIRN_RPC_LISTEN")]
    pub rpc_listen: Option<SocketAddr>,
    /// `rpc.connections_max`: most open RPC connections; at the cap the
    /// oldest idle one is closed for a new one
    #[arg(long = "rpc-connections-max", env = "CAIRN_RPC_CONNECTIONS_MAX")]
    pub rpc_connections_max: Option<u32>,
    /// `rpc.ready_stall_ms`: `/ready` is 503 when the height has not
    /// advanced for this long while blocks are expected (0: derived)
    #[arg(long = "rpc-ready-stall-ms", env = "CAIRN_RPC_READY_STALL_MS")]
    pub rpc_ready_stall_ms: Option<u64>,
    /// `metrics.listen`, e.g. 127.0.0.1:26660 (port 0 picks one)
    #[arg(long = "metrics-listen", env = "CAIRN_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// `consensus.timeout_commit_ms`
    #[arg(long = "timeout-commit-ms", env = "CAIRN_CONSENSUS_TIMEOUT_COMMIT_MS")]
    pub timeout_commit_ms: Option<u64>,
    /// `consensus.wait_for_transactions`
    #[arg(
        long = "wait-for-transactions",
        env = "CAIRN_CONSENSUS_WAIT_FOR_TRANSACTIONS"
    )]
    pub wait_for_transactions: Option<bool>,
    /// `consensus.block_interval_max_ms`
    #[arg(
        long = "block-interval-max-ms",
        env = "CAIRN_CONSENSUS_BLOCK_INTERVAL_MAX_MS"
    )]
    pub block_interval_max_ms: Option<u64>,
    /// `mempool.transactions_max`
    #[arg(
        long = "mempool-transactions-max",
        env = "CAIRN_MEMPOOL_TRANSACTIONS_MAX"
    )]
    pub mempool_transactions_max: Option<u64>,
    /// `mempool.bytes_max`
    #[arg(long = "mempool-bytes-max", env = "CAIRN_MEMPOOL_BYTES_MAX")]
    pub mempool_bytes_max: Option<u64>,
    /// `log.format`: plain or json
    #[arg(long = "log-format", env = "CAIRN_LOG_FORMAT", value_parser = parse_log_format)]
    pub log_format: Option<LogFormat>,
    /// `log.filter`, in the RUST_LOG style (RUST_LOG itself also works)
    #[arg(long = "log-filter", env = "CAIRN_LOG_FILTER")]
    pub log_filter: Option<String>,
}

fn parse_mode(text: &str) -> Result<NodeMode, String> {
    match text {
        "validator" => Ok(NodeMode::Validator),
        "full" => Ok(NodeMode::Full),
        other => Err(format!(
            "{other:?} is not a mode; use `validator` or `full`"
        )),
    }
}

fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text {
        "plain" => Ok(LogFormat::Plain),
        "json" => Ok(LogFormat::Json),
        other => Err(format!(
            "{other:?} is not a log format; use `plain` or `json`"
        )),
    }
}

impl ConfigOverrides {
    /// Applies every override that is set to `config`.
    pub fn apply(&self, config: &mut NodeConfig) {
        if let Some(moniker) = &self.moniker {
            config.moniker = moniker.clone();
        }
        if let Some(mode) = self.mode {
            config.mode = mode;
        }
        if !self.p2p_listen.is_empty() {
            config.p2p.listen = self.p2p_listen.clone();
        }
        if !self.bootstrap.is_empty() {
            config.p2p.bootstrap = self.bootstrap.clone();
        }
        if let Some(mdns) = self.mdns {
            config.p2p.mdns = mdns;
        }
        if let Some(peers_target) = self.peers_target {
            config.p2p.peers_target = peers_target;
        }
        if let Some(listen) = self.rpc_listen {
            config.rpc.listen = listen;
        }
        if let Some(count) = self.rpc_connections_max {
            config.rpc.connections_max = count;
        }
        if let Some(stall) = self.rpc_ready_stall_ms {
            config.rpc.ready_stall_ms = stall;
        }
        if let Some(listen) = self.metrics_listen {
            config.metrics.listen = listen;
        }
        if let Some(timeout) = self.timeout_commit_ms {
            config.consensus.timeout_commit_ms = timeout;
        }
        if let Some(wait) = self.wait_for_transactions {
            config.consensus.wait_for_transactions = wait;
        }
        if let Some(interval) = self.block_interval_max_ms {
            config.consensus.block_interval_max_ms = interval;
        }
        if let Some(count) = self.mempool_transactions_max {
            config.mempool.transactions_max = count;
        }
        if let Some(bytes) = self.mempool_bytes_max {
            config.mempool.bytes_max = bytes;
        }
        if let Some(format) = self.log_format {
            config.log.format = format;
        }
        if let Some(filter) = &self.log_filter {
            config.log.filter = filter.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct TestCli {
        #[command(flatten)]
        overrides: ConfigOverrides,
    }

    #[test]
    fn default_config_round_trips_through_toml() {
        let config = NodeConfig::default();
        let text = config.to_toml();
        assert_eq!(
            NodeConfig::from_toml(&text, Path::new("c.toml")).unwrap(),
            config
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let text = NodeConfig::default()
            .to_toml()
            .replace("peers_target", "peer_target");
        let error = NodeConfig::from_toml(&text, Path::new("/h/config.toml")).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("/h/config.toml") && message.contains("peer_target"),
            "{message}"
        );
    }

    #[test]
    fn flags_override_the_file() {
        let cli = TestCli::try_parse_from([
            "cairnd",
            "--bootstrap",
            "/ip4/127.0.0.1/tcp/1/p2p/x,/ip4/127.0.0.1/tcp/2/p2p/y",
            "--rpc-listen",
            "127.0.0.1:0",
            "--mdns",
            "--mode",
            "full",
            "--timeout-commit-ms",
            "0",
        ])
        .unwrap();
        let mut config = NodeConfig::default();
        cli.overrides.apply(&mut config);
        assert_eq!(config.p2p.bootstrap.len(), 2);
        assert_eq!(config.rpc.listen.port(), 0);
        assert!(config.p2p.mdns);
        assert_eq!(config.mode, NodeMode::Full);
        assert_eq!(config.consensus.timeout_commit_ms, 0);
        assert_eq!(config.moniker, NodeConfig::default().moniker);
    }

    #[test]
    fn bad_flag_values_are_explained() {
        let error = TestCli::try_parse_from(["cairnd", "--mode", "observer"])
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("use `validator` or `full`"), "{error}");
    }
}
