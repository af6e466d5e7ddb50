//! Node-local configuration: `config/config.toml` in the node's home.
//!
//! Chain-wide settings live in `genesis.json`; everything here is the
//! operator's choice for one node. Every key can be overridden by a
//! `cairnd start` flag and by a `CAIRN_*` environment variable (flag wins
//! over environment, environment over file, file over default).

use std::{collections::BTreeMap, net::SocketAddr, path::Path};

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
    /// State snapshots this node takes and serves.
    #[serde(default)]
    pub snapshot: SnapshotConfig,
    /// How a new node catches up.
    #[serde(default)]
    pub sync: SyncConfig,
    /// Deleting old blocks (absent: keep everything).
    #[serde(default)]
    pub pruning: PruningConfig,
}

/// `[snapshot]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Take a snapshot of the state every this many heights (0: never).
    pub interval: u64,
    /// Keep the newest this many snapshots (older ones are deleted).
    pub keep: u32,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            interval: 1_000,
            keep: 2,
        }
    }
}

/// How a node with an empty home catches up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Fetch and execute every block from height 1.
    Block,
    /// Restore a peer's state snapshot, verified against a trusted header,
    /// then fetch the blocks after it.
    Snapshot,
}

/// `[sync]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// `block` or `snapshot` (state sync; used only while the home holds
    /// no block).
    pub mode: SyncMode,
    /// A height whose block hash is trusted out of band (0: none; state
    /// sync then verifies the headers from genesis).
    pub trust_height: u64,
    /// The hash of the block at `trust_height`, hex ("" when none).
    pub trust_hash: String,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            mode: SyncMode::Block,
            trust_height: 0,
            trust_hash: String::new(),
        }
    }
}

/// `[pruning]`
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruningConfig {
    /// Keep the blocks (with their certificates, hash and transaction
    /// index entries) of the latest this many heights and delete older
    /// ones in the background; 0 keeps everything (an archive node). At
    /// least [`cairn_store::PRUNE_KEEP_BLOCKS_MIN`] when not 0.
    #[serde(default)]
    pub keep_blocks: u64,
}

/// `[p2p]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P2pConfig {
    /// Multiaddrs to listen on; port 0 picks a free port.
    pub listen: Vec<String>,
    /// Multiaddrs peers should dial to reach this node (its public or
    /// LAN address when it listens on 0.0.0.0 or sits behind NAT),
    /// advertised instead of the listen addresses; empty: the listen
    /// addresses, never loopback (unless only loopback is bound) nor
    /// unspecified ones.
    #[serde(default)]
    pub external_addresses: Vec<String>,
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
    /// Keep the account history index (`GET /account/{address}/transactions`):
    /// each commit writes an entry per account a transaction touches,
    /// about a third of a commit's cost. `false` stops writing it (the
    /// route answers 404); `true` again indexes from the next block on.
    #[serde(default = "default_true")]
    pub history_index: bool,
}

fn default_true() -> bool {
    true
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
    /// The least fee admitted; the chain's `min_fee` applies if higher
    /// (0: the chain's).
    #[serde(default)]
    pub min_fee: u64,
    /// Most pending transactions of one sender (also how far above its
    /// committed nonce a nonce may be).
    #[serde(default = "default_mempool_sender_pending_max")]
    pub sender_pending_max: u64,
    /// Milliseconds a transaction queued behind a missing nonce may wait
    /// before it is dropped.
    #[serde(default = "default_mempool_ttl_ms")]
    pub ttl_ms: u64,
    /// Transactions a second admitted from one peer's gossip, on average
    /// (a token bucket per peer holding two seconds' worth); the excess is
    /// ignored and counted.
    #[serde(default = "default_mempool_peer_transactions_per_second")]
    pub peer_transactions_per_second: u64,
}

fn default_mempool_sender_pending_max() -> u64 {
    crate::mempool::SENDER_PENDING_MAX_DEFAULT as u64
}

fn default_mempool_ttl_ms() -> u64 {
    u64::try_from(crate::mempool::QUEUED_TTL_DEFAULT.as_millis()).unwrap_or(u64::MAX)
}

fn default_mempool_peer_transactions_per_second() -> u64 {
    crate::runtime::PEER_GOSSIP_TRANSACTIONS_PER_SECOND_DEFAULT
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
                external_addresses: Vec::new(),
                bootstrap: Vec::new(),
                mdns: false,
                peers_target: 16,
            },
            rpc: RpcConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 26657)),
                connections_max: default_rpc_connections_max(),
                header_read_timeout_ms: default_rpc_header_read_timeout_ms(),
                ready_stall_ms: 0,
                history_index: true,
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
                min_fee: 0,
                sender_pending_max: default_mempool_sender_pending_max(),
                ttl_ms: default_mempool_ttl_ms(),
                peer_transactions_per_second: default_mempool_peer_transactions_per_second(),
            },
            log: LogConfig {
                format: LogFormat::Plain,
                // gossipsub warns on every duplicate publish, which is expected.
                filter: "info,libp2p_gossipsub=error".into(),
            },
            snapshot: SnapshotConfig::default(),
            sync: SyncConfig::default(),
            pruning: PruningConfig::default(),
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

    /// Parses TOML text; `origin` names it in errors. The first line of
    /// an error names the key at fault (`p2p.peers_target`) and its line.
    pub fn from_toml(text: &str, origin: &Path) -> Result<NodeConfig, NodeError> {
        toml::from_str(text).map_err(|error| NodeError::Config {
            path: origin.to_path_buf(),
            message: describe_toml_error(text, &error),
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

impl NodeConfig {
    /// Checks the values that parse but that the node cannot use: the p2p
    /// multiaddrs, the peer ids of the bootstrap peers and the log filter
    /// (see also [`check_rust_log`]). `origin` names where a key's
    /// value came from (see [`ConfigOverrides::origin`]).
    pub fn validate(&self, origin: impl Fn(&str) -> String) -> Result<(), NodeError> {
        let bad = |key: &str, message: String| NodeError::Setting {
            origin: origin(key),
            message,
        };
        let multiaddr = |key: &str, text: &str| {
            text.parse::<cairn_p2p::Multiaddr>().map_err(|error| {
                bad(
                    key,
                    format!(
                        "{text:?} is not a multiaddr ({error}); write it like /ip4/127.0.0.1/tcp/26656"
                    ),
                )
            })
        };
        for text in &self.p2p.listen {
            multiaddr("p2p.listen", text)?;
        }
        let external_max = cairn_p2p::limits::EXTERNAL_ADDRESSES_MAX;
        if self.p2p.external_addresses.len() > external_max {
            return Err(bad(
                "p2p.external_addresses",
                format!(
                    "{} addresses given, at most {external_max} are advertised; keep the ones peers can reach",
                    self.p2p.external_addresses.len()
                ),
            ));
        }
        for text in &self.p2p.external_addresses {
            let address = multiaddr("p2p.external_addresses", text)?;
            if !cairn_p2p::is_advertisable(&address, &[]) {
                return Err(bad(
                    "p2p.external_addresses",
                    format!(
                        "{text:?} is unspecified; give the address peers dial to reach this node, like /ip4/203.0.113.7/tcp/26656"
                    ),
                ));
            }
            if text.contains("/p2p/") {
                return Err(bad(
                    "p2p.external_addresses",
                    format!("{text:?} holds a peer id; give the address alone, like /ip4/203.0.113.7/tcp/26656"),
                ));
            }
        }
        for text in &self.p2p.bootstrap {
            multiaddr("p2p.bootstrap", text)?;
            if !text.contains("/p2p/") {
                return Err(bad(
                    "p2p.bootstrap",
                    format!(
                        "{text:?} has no peer id; append /p2p/<peer id> (`cairnd show-node-id` on that node prints it)"
                    ),
                ));
            }
        }
        check_log_filter(&self.log.filter).map_err(|message| bad("log.filter", message))?;
        let sender_max = crate::mempool::SENDER_PENDING_LIMIT_MAX as u64;
        if !(1..=sender_max).contains(&self.mempool.sender_pending_max) {
            return Err(bad(
                "mempool.sender_pending_max",
                format!(
                    "{} is outside 1..={sender_max}; write e.g. {}",
                    self.mempool.sender_pending_max,
                    crate::mempool::SENDER_PENDING_MAX_DEFAULT
                ),
            ));
        }
        if self.mempool.ttl_ms == 0 {
            return Err(bad(
                "mempool.ttl_ms",
                "0 would drop every queued transaction at once; write e.g. 600000 (10 minutes)"
                    .into(),
            ));
        }
        if self.mempool.peer_transactions_per_second == 0 {
            return Err(bad(
                "mempool.peer_transactions_per_second",
                "0 would ignore every transaction gossiped by peers; write e.g. 10000".into(),
            ));
        }
        if self.sync.trust_height > 0 || !self.sync.trust_hash.is_empty() {
            if self.sync.trust_height == 0 {
                return Err(bad(
                    "sync.trust_height",
                    "sync.trust_hash is set but sync.trust_height is 0; give both (the height and the hash of its block, from a node you trust) or neither".into(),
                ));
            }
            if cairn_types::Hash::from_hex(&self.sync.trust_hash).is_err() {
                return Err(bad(
                    "sync.trust_hash",
                    format!(
                        "{:?} is not a block hash; give the 64 hex digits of the block at sync.trust_height (`cairn query block {}` on a node you trust shows it)",
                        self.sync.trust_hash, self.sync.trust_height
                    ),
                ));
            }
        }
        let keep = self.pruning.keep_blocks;
        if keep != 0 && keep < cairn_store::PRUNE_KEEP_BLOCKS_MIN {
            return Err(bad(
                "pruning.keep_blocks",
                format!(
                    "{keep} is fewer than the {} blocks a node must keep (the evidence window of {} heights and a margin); use 0 to keep every block or at least {}",
                    cairn_store::PRUNE_KEEP_BLOCKS_MIN,
                    cairn_types::limits::EVIDENCE_AGE_MAX_BLOCKS,
                    cairn_store::PRUNE_KEEP_BLOCKS_MIN
                ),
            ));
        }
        Ok(())
    }
}

/// Checks `RUST_LOG`, which wins over `log.filter` when set.
pub fn check_rust_log() -> Result<(), NodeError> {
    match std::env::var("RUST_LOG") {
        Ok(text) if !text.trim().is_empty() => {
            check_log_filter(&text).map_err(|message| NodeError::Setting {
                origin: "RUST_LOG (which wins over `log.filter`)".into(),
                message: format!("{message}, or unset RUST_LOG"),
            })
        }
        _ => Ok(()),
    }
}

fn check_log_filter(filter: &str) -> Result<(), String> {
    tracing_subscriber::EnvFilter::try_new(filter)
        .map(|_| ())
        .map_err(|error| {
            format!(
                "{filter:?} is not a log filter ({error}); write e.g. `info` or `info,cairn_p2p=debug`"
            )
        })
}

/// A TOML error as one line that starts with the key at fault and its
/// line, then the parser's reason and what to do.
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let reason = error
        .message()
        .trim()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let named = backquoted(&reason);
    let place = error.span().map(|span| locate_in_toml(text, span.start));
    let key = match (&place, named) {
        // `unknown field `x``, `missing field `x``: the key in the table
        // of that line.
        (Some(place), Some(name))
            if reason.starts_with("unknown field") || reason.starts_with("missing field") =>
        {
            Some(match &place.header {
                Some(header) if header.ends_with(name.as_str()) => header.clone(),
                Some(header) => format!("{header}.{name}"),
                None => join_key(&place.table, &name),
            })
        }
        (Some(place), _) => match (&place.header, &place.key) {
            (Some(header), _) => Some(header.clone()),
            (None, Some(key)) => Some(join_key(&place.table, key)),
            (None, None) => None,
        },
        (None, Some(name)) => Some(name),
        (None, None) => None,
    };
    let line = place.map(|place| format!("line {}", place.line));
    let at = match (key, line) {
        (Some(key), Some(line)) => format!("key `{key}` ({line}): "),
        (Some(key), None) => format!("key `{key}`: "),
        (None, Some(line)) => format!("{line}: "),
        (None, None) => String::new(),
    };
    let fix = if reason.starts_with("missing field") {
        "Add that key"
    } else if reason.starts_with("unknown field") {
        "Remove or rename that key"
    } else {
        "Fix that value"
    };
    format!(
        "{at}{reason}. {fix}; a fresh file from `cairnd init --home <new dir>` has every key with its default"
    )
}

/// The first `name` quoted in backquotes in `text`.
fn backquoted(text: &str) -> Option<String> {
    let start = text.find('`')? + 1;
    let length = text[start..].find('`')?;
    Some(text[start..start + length].to_string())
}

fn join_key(table: &str, key: &str) -> String {
    if table.is_empty() {
        key.to_string()
    } else {
        format!("{table}.{key}")
    }
}

/// Where a byte offset of a TOML text is.
struct TomlPlace {
    /// 1-based line.
    line: usize,
    /// The `[table]` the line is in ("" for the top level).
    table: String,
    /// The table named when the line is itself a `[table]` header.
    header: Option<String>,
    /// The key of a `key = value` line.
    key: Option<String>,
}

fn locate_in_toml(text: &str, offset: usize) -> TomlPlace {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let index = before.matches('\n').count();
    let header_of = |line: &str| {
        let line = line.trim();
        (line.starts_with('[') && !line.starts_with("[[")).then(|| {
            line.trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
    };
    let key_of = |line: &str| {
        line.split_once('=')
            .map(|(key, _)| key.trim().trim_matches('"').to_string())
            .filter(|key| !key.is_empty() && !key.starts_with('#'))
    };
    let mut table = String::new();
    let mut header = None;
    // The key whose value the line is in (a multi-line array continues it).
    let mut key = None;
    for (number, line) in text.lines().enumerate().take(index + 1) {
        let found = header_of(line);
        if number == index {
            header = found;
            if header.is_some() {
                key = None;
            } else if let Some(own) = key_of(line) {
                key = Some(own);
            }
        } else if let Some(found) = found {
            table = found;
            key = None;
        } else if let Some(own) = key_of(line) {
            key = Some(own);
        }
    }
    TomlPlace {
        line: index + 1,
        table,
        header,
        key,
    }
}

/// The `config.toml` key of each [`ConfigOverrides`] field (its clap id).
const OVERRIDE_KEYS: [(&str, &str); 29] = [
    ("moniker", "moniker"),
    ("mode", "mode"),
    ("p2p_listen", "p2p.listen"),
    ("external_addresses", "p2p.external_addresses"),
    ("bootstrap", "p2p.bootstrap"),
    ("mdns", "p2p.mdns"),
    ("peers_target", "p2p.peers_target"),
    ("rpc_listen", "rpc.listen"),
    ("rpc_connections_max", "rpc.connections_max"),
    ("rpc_ready_stall_ms", "rpc.ready_stall_ms"),
    ("rpc_history_index", "rpc.history_index"),
    ("metrics_listen", "metrics.listen"),
    ("timeout_commit_ms", "consensus.timeout_commit_ms"),
    ("wait_for_transactions", "consensus.wait_for_transactions"),
    ("block_interval_max_ms", "consensus.block_interval_max_ms"),
    ("mempool_transactions_max", "mempool.transactions_max"),
    ("mempool_bytes_max", "mempool.bytes_max"),
    ("mempool_min_fee", "mempool.min_fee"),
    ("mempool_sender_pending_max", "mempool.sender_pending_max"),
    ("mempool_ttl_ms", "mempool.ttl_ms"),
    (
        "mempool_peer_transactions_per_second",
        "mempool.peer_transactions_per_second",
    ),
    ("log_format", "log.format"),
    ("log_filter", "log.filter"),
    ("snapshot_interval", "snapshot.interval"),
    ("snapshot_keep", "snapshot.keep"),
    ("state_sync", "sync.mode"),
    ("trust_height", "sync.trust_height"),
    ("trust_hash", "sync.trust_hash"),
    ("prune_keep_blocks", "pruning.keep_blocks"),
];

/// Settings given on the command line or in the environment, one for every
/// `config.toml` key. With `cairnd start` and `cairnd check` each is also
/// read from a `CAIRN_*` variable, and a flag or variable that is set wins
/// over the file; with `cairnd init` they are the values written into the
/// new `config.toml`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ConfigOverrides {
    /// Name of this node, shown to peers, in `/status` and in the logs.
    /// Config key `moniker`; default `cairn-node`.
    #[arg(long, env = "CAIRN_MONIKER", value_name = "NAME")]
    pub moniker: Option<String>,
    /// `validator` signs proposals and votes with config/validator_key.json
    /// (its key must be in the genesis validator set); `full` follows the
    /// chain and serves RPC without voting. Config key `mode`; default
    /// `validator`.
    #[arg(long, env = "CAIRN_MODE", value_name = "MODE", value_parser = parse_mode)]
    pub mode: Option<NodeMode>,
    /// Multiaddr the peer-to-peer network listens on, e.g.
    /// /ip4/0.0.0.0/tcp/26656 (port 0 picks a free port); repeat the flag,
    /// or separate addresses with commas, to listen on several. Config key
    /// `p2p.listen`; default /ip4/0.0.0.0/tcp/26656.
    #[arg(
        long = "p2p-listen",
        env = "CAIRN_P2P_LISTEN",
        value_name = "MULTIADDR",
        value_delimiter = ','
    )]
    pub p2p_listen: Vec<String>,
    /// Multiaddr peers should dial to reach this node, advertised to them
    /// instead of the listen addresses: its public or LAN address when it
    /// listens on 0.0.0.0 or sits behind NAT, e.g.
    /// /ip4/203.0.113.7/tcp/26656; repeat the flag, or separate addresses
    /// with commas, for several. Config key `p2p.external_addresses`;
    /// default none (the listen addresses, never loopback or 0.0.0.0 to
    /// remote peers).
    #[arg(
        long = "external-address",
        env = "CAIRN_P2P_EXTERNAL_ADDRESSES",
        value_name = "MULTIADDR",
        value_delimiter = ','
    )]
    pub external_addresses: Vec<String>,
    /// A peer to start discovery from: its multiaddr ending in
    /// /p2p/<peer id>, e.g. /ip4/10.0.0.2/tcp/26656/p2p/12D3Koo...
    /// (`cairnd show-node-id` on that node prints the id); repeat the flag,
    /// or separate peers with commas, for several. Config key
    /// `p2p.bootstrap`; default none.
    #[arg(
        long = "bootstrap",
        env = "CAIRN_P2P_BOOTSTRAP",
        value_name = "MULTIADDR",
        value_delimiter = ','
    )]
    pub bootstrap: Vec<String>,
    /// Discover peers on the local network by multicast DNS (it sends on
    /// every non-loopback interface); `--mdns` alone means true. Config key
    /// `p2p.mdns`; default false.
    #[arg(
        long,
        env = "CAIRN_P2P_MDNS",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub mdns: Option<bool>,
    /// Keep dialling discovered peers until this many are connected.
    /// Config key `p2p.peers_target`; default 16.
    #[arg(
        long = "peers-target",
        env = "CAIRN_P2P_PEERS_TARGET",
        value_name = "N"
    )]
    pub peers_target: Option<u32>,
    /// Address (IP:port) of the HTTP/JSON RPC server; port 0 picks a free
    /// port (the one bound is written to addresses.json). Config key
    /// `rpc.listen`; default 127.0.0.1:26657.
    #[arg(long = "rpc-listen", env = "CAIRN_RPC_LISTEN", value_name = "IP:PORT")]
    pub rpc_listen: Option<SocketAddr>,
    /// Most RPC connections open at once; at the cap the connection idle
    /// the longest is closed for a new one, and with none idle the new one
    /// gets a 503 (lowered to fit the open files limit). Config key
    /// `rpc.connections_max`; default 1024.
    #[arg(
        long = "rpc-connections-max",
        env = "CAIRN_RPC_CONNECTIONS_MAX",
        value_name = "N"
    )]
    pub rpc_connections_max: Option<u32>,
    /// `GET /ready` answers 503 when the latest block is older than this
    /// many milliseconds while blocks are due (0 derives it from the
    /// consensus timeouts, at least 10 s). Config key `rpc.ready_stall_ms`;
    /// default 0.
    #[arg(
        long = "rpc-ready-stall-ms",
        env = "CAIRN_RPC_READY_STALL_MS",
        value_name = "MS"
    )]
    pub rpc_ready_stall_ms: Option<u64>,
    /// `true`: keep the account history index (`GET
    /// /account/{address}/transactions`, `cairn query history`) in every
    /// block's commit; `false`: save its cost (about a third of a commit)
    /// and answer that route with 404. Config key `rpc.history_index`;
    /// default true.
    #[arg(
        long = "rpc-history-index",
        env = "CAIRN_RPC_HISTORY_INDEX",
        value_name = "BOOL"
    )]
    pub rpc_history_index: Option<bool>,
    /// Address (IP:port) of the Prometheus endpoint, /metrics; port 0 picks
    /// a free port (the one bound is written to addresses.json). Config key
    /// `metrics.listen`; default 127.0.0.1:26660.
    #[arg(
        long = "metrics-listen",
        env = "CAIRN_METRICS_LISTEN",
        value_name = "IP:PORT"
    )]
    pub metrics_listen: Option<SocketAddr>,
    /// Milliseconds to wait after a commit before the next height starts,
    /// so late precommits still count (0 starts at once; a single
    /// validator needs no wait). Config key `consensus.timeout_commit_ms`;
    /// default 100.
    #[arg(
        long = "timeout-commit-ms",
        env = "CAIRN_CONSENSUS_TIMEOUT_COMMIT_MS",
        value_name = "MS"
    )]
    pub timeout_commit_ms: Option<u64>,
    /// `true`: hold a new height until transactions arrive (or
    /// --block-interval-max-ms passes), so an idle chain makes few empty
    /// blocks; `false`: make blocks back to back. Config key
    /// `consensus.wait_for_transactions`; default true.
    #[arg(
        long = "wait-for-transactions",
        env = "CAIRN_CONSENSUS_WAIT_FOR_TRANSACTIONS",
        value_name = "BOOL"
    )]
    pub wait_for_transactions: Option<bool>,
    /// Longest time in milliseconds between two blocks while waiting for
    /// transactions: an idle chain still commits a block this often.
    /// Config key `consensus.block_interval_max_ms`; default 10000.
    #[arg(
        long = "block-interval-max-ms",
        env = "CAIRN_CONSENSUS_BLOCK_INTERVAL_MAX_MS",
        value_name = "MS"
    )]
    pub block_interval_max_ms: Option<u64>,
    /// Most transactions the mempool holds while they wait for a block;
    /// beyond it new ones are refused. Config key
    /// `mempool.transactions_max`; default 200000.
    #[arg(
        long = "mempool-transactions-max",
        env = "CAIRN_MEMPOOL_TRANSACTIONS_MAX",
        value_name = "N"
    )]
    pub mempool_transactions_max: Option<u64>,
    /// Most bytes of transactions the mempool holds while they wait for a
    /// block; beyond it new ones are refused. Config key
    /// `mempool.bytes_max`; default 134217728 (128 MiB).
    #[arg(
        long = "mempool-bytes-max",
        env = "CAIRN_MEMPOOL_BYTES_MAX",
        value_name = "BYTES"
    )]
    pub mempool_bytes_max: Option<u64>,
    /// The least fee this node admits to its mempool; the chain's minimum
    /// (genesis `fee_params.min_fee`) applies if it is higher. Config key
    /// `mempool.min_fee`; default 0 (the chain's).
    #[arg(
        long = "mempool-min-fee",
        env = "CAIRN_MEMPOOL_MIN_FEE",
        value_name = "N"
    )]
    pub mempool_min_fee: Option<u64>,
    /// Most transactions one sender may have pending in this node's
    /// mempool (1-1024); a nonce may also be at most this far above the
    /// sender's committed nonce. Config key `mempool.sender_pending_max`;
    /// default 64.
    #[arg(
        long = "mempool-sender-pending-max",
        env = "CAIRN_MEMPOOL_SENDER_PENDING_MAX",
        value_name = "N"
    )]
    pub mempool_sender_pending_max: Option<u64>,
    /// Milliseconds a transaction waiting behind a missing nonce stays in
    /// the mempool before it is dropped. Config key `mempool.ttl_ms`;
    /// default 600000 (10 minutes).
    #[arg(
        long = "mempool-ttl-ms",
        env = "CAIRN_MEMPOOL_TTL_MS",
        value_name = "MS"
    )]
    pub mempool_ttl_ms: Option<u64>,
    /// Transactions a second this node admits from one peer's gossip, on
    /// average (bursts of two seconds' worth); beyond it the peer's
    /// batches are ignored and counted. Config key
    /// `mempool.peer_transactions_per_second`; default 10000.
    #[arg(
        long = "mempool-peer-transactions-per-second",
        env = "CAIRN_MEMPOOL_PEER_TRANSACTIONS_PER_SECOND",
        value_name = "N"
    )]
    pub mempool_peer_transactions_per_second: Option<u64>,
    /// How logs are written to stderr: `plain` (lines for people) or
    /// `json` (one object per line, for log collectors). Config key
    /// `log.format`; default plain.
    #[arg(
        long = "log-format",
        env = "CAIRN_LOG_FORMAT",
        value_name = "FORMAT",
        value_parser = parse_log_format
    )]
    pub log_format: Option<LogFormat>,
    /// Which logs to write, in the RUST_LOG style, e.g. `info` or
    /// `info,cairn_p2p=debug`; RUST_LOG, when set, wins over it. Config key
    /// `log.filter`; default `info,libp2p_gossipsub=error`.
    #[arg(long = "log-filter", env = "CAIRN_LOG_FILTER", value_name = "FILTER")]
    pub log_filter: Option<String>,
    /// Take a snapshot of the state every this many heights, in the
    /// background, for new nodes to join by state sync (0: never). Config
    /// key `snapshot.interval`; default 1000.
    #[arg(
        long = "snapshot-interval",
        env = "CAIRN_SNAPSHOT_INTERVAL",
        value_name = "HEIGHTS"
    )]
    pub snapshot_interval: Option<u64>,
    /// Keep the newest this many snapshots; older ones are deleted. Config
    /// key `snapshot.keep`; default 2.
    #[arg(long = "snapshot-keep", env = "CAIRN_SNAPSHOT_KEEP", value_name = "N")]
    pub snapshot_keep: Option<u32>,
    /// Join by state sync: on a home that holds no block, restore a
    /// snapshot peers offer (verified against a trusted header) instead of
    /// executing every block from height 1; `--state-sync` alone means
    /// true. Config key `sync.mode` (`snapshot` when true, `block` when
    /// false); default false.
    #[arg(
        long = "state-sync",
        env = "CAIRN_STATE_SYNC",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub state_sync: Option<bool>,
    /// State sync trusts the block of this height (with --trust-hash)
    /// instead of verifying the headers from genesis. Config key
    /// `sync.trust_height`; default 0 (none).
    #[arg(
        long = "trust-height",
        env = "CAIRN_SYNC_TRUST_HEIGHT",
        value_name = "HEIGHT"
    )]
    pub trust_height: Option<u64>,
    /// The hash (hex) of the block at --trust-height, obtained from a node
    /// you trust. Config key `sync.trust_hash`; default none.
    #[arg(
        long = "trust-hash",
        env = "CAIRN_SYNC_TRUST_HASH",
        value_name = "HASH"
    )]
    pub trust_hash: Option<String>,
    /// Keep the blocks of the latest N heights (with their certificates and
    /// transaction index) and delete older ones in the background; 0 keeps
    /// every block (an archive node, which new nodes sync from). At least
    /// 128 when not 0. A pruned node answers requests for older heights
    /// with `pruned` (RPC 410). Config key `pruning.keep_blocks`; default 0.
    #[arg(
        long = "prune-keep-blocks",
        env = "CAIRN_PRUNING_KEEP_BLOCKS",
        value_name = "N"
    )]
    pub prune_keep_blocks: Option<u64>,
    /// For each `config.toml` key set here, where its value came from
    /// (`--rpc-listen` or `CAIRN_RPC_LISTEN`), filled by
    /// [`ConfigOverrides::record_sources`].
    #[arg(skip)]
    pub sources: BTreeMap<&'static str, String>,
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

/// The `CAIRN_*` variable and the flag of the override with clap id `id`.
fn override_names(id: &str) -> (Option<String>, Option<String>) {
    let command = <ConfigOverrides as clap::Args>::augment_args(clap::Command::new("cairnd"));
    let names = command
        .get_arguments()
        .find(|argument| argument.get_id() == id)
        .map_or((None, None), |argument| {
            (
                argument
                    .get_env()
                    .map(|name| name.to_string_lossy().into_owned()),
                argument.get_long().map(|long| format!("--{long}")),
            )
        });
    names
}

/// The `config.toml` key and the `CAIRN_*` variable of the override flag
/// `--long`, to report a bad value by where it came from.
pub fn override_by_flag(long: &str) -> Option<(&'static str, Option<String>)> {
    let command = <ConfigOverrides as clap::Args>::augment_args(clap::Command::new("cairnd"));
    let argument = command
        .get_arguments()
        .find(|argument| argument.get_long() == Some(long))?;
    let key = OVERRIDE_KEYS
        .iter()
        .find(|(id, _)| argument.get_id() == *id)
        .map(|(_, key)| *key)?;
    Some((
        key,
        argument
            .get_env()
            .map(|name| name.to_string_lossy().into_owned()),
    ))
}

impl ConfigOverrides {
    /// Records, from the matches of the subcommand these overrides were
    /// parsed from, which values came from a flag and which from a
    /// `CAIRN_*` variable (see [`ConfigOverrides::origin`]).
    pub fn record_sources(&mut self, matches: &clap::ArgMatches) {
        for (id, key) in OVERRIDE_KEYS {
            let (variable, flag) = override_names(id);
            let label = match matches.try_contains_id(id) {
                Ok(true) => match matches.value_source(id) {
                    Some(clap::parser::ValueSource::EnvVariable) => variable,
                    Some(clap::parser::ValueSource::CommandLine) => flag,
                    _ => None,
                },
                _ => None,
            };
            match label {
                Some(label) => {
                    self.sources.insert(key, label);
                }
                None => {
                    self.sources.remove(key);
                }
            }
        }
    }

    /// Where the value of `key` in the running configuration came from:
    /// `CAIRN_RPC_LISTEN (config key rpc.listen)`, `--rpc-listen (config
    /// key rpc.listen)` or `` `rpc.listen` in <config_file> ``.
    pub fn origin(&self, key: &str, config_file: &Path) -> String {
        match self.sources.get(key) {
            Some(label) => format!("{label} (config key `{key}`)"),
            None => format!("`{key}` in {}", config_file.display()),
        }
    }

    /// The flags and variables that were given, e.g. `--rpc-listen,
    /// CAIRN_MODE` (empty when none was).
    pub fn given(&self) -> Vec<String> {
        self.sources.values().cloned().collect()
    }

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
        if !self.external_addresses.is_empty() {
            config.p2p.external_addresses = self.external_addresses.clone();
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
        if let Some(enabled) = self.rpc_history_index {
            config.rpc.history_index = enabled;
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
        if let Some(fee) = self.mempool_min_fee {
            config.mempool.min_fee = fee;
        }
        if let Some(count) = self.mempool_sender_pending_max {
            config.mempool.sender_pending_max = count;
        }
        if let Some(ttl) = self.mempool_ttl_ms {
            config.mempool.ttl_ms = ttl;
        }
        if let Some(rate) = self.mempool_peer_transactions_per_second {
            config.mempool.peer_transactions_per_second = rate;
        }
        if let Some(format) = self.log_format {
            config.log.format = format;
        }
        if let Some(filter) = &self.log_filter {
            config.log.filter = filter.clone();
        }
        if let Some(interval) = self.snapshot_interval {
            config.snapshot.interval = interval;
        }
        if let Some(keep) = self.snapshot_keep {
            config.snapshot.keep = keep;
        }
        if let Some(state_sync) = self.state_sync {
            config.sync.mode = if state_sync {
                SyncMode::Snapshot
            } else {
                SyncMode::Block
            };
        }
        if let Some(height) = self.trust_height {
            config.sync.trust_height = height;
        }
        if let Some(hash) = &self.trust_hash {
            config.sync.trust_hash = hash.clone();
        }
        if let Some(keep) = self.prune_keep_blocks {
            config.pruning.keep_blocks = keep;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{FromArgMatches, Parser};

    #[derive(Parser)]
    struct TestCli {
        #[command(flatten)]
        overrides: ConfigOverrides,
    }

    impl TestCli {
        /// The overrides alone, without their variables (the test's
        /// environment may hold CAIRN_* variables).
        fn command_for_sources() -> clap::Command {
            <ConfigOverrides as clap::Args>::augment_args(clap::Command::new("cairnd"))
                .mut_args(|argument| argument.env(None::<&str>))
        }
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
            "--external-address",
            "/ip4/10.0.0.7/tcp/26656",
            "--external-address",
            "/dns4/node.example/tcp/26656",
        ])
        .unwrap();
        let mut config = NodeConfig::default();
        cli.overrides.apply(&mut config);
        assert_eq!(config.p2p.bootstrap.len(), 2);
        assert_eq!(
            config.p2p.external_addresses,
            ["/ip4/10.0.0.7/tcp/26656", "/dns4/node.example/tcp/26656"]
        );
        // (The bootstrap peers above have made-up ids.)
        config.p2p.bootstrap.clear();
        config.validate(|key| key.to_string()).unwrap();
        for (bad, expected) in [
            ("/ip4/0.0.0.0/tcp/26656", "unspecified"),
            ("ip4 10.0.0.7", "not a multiaddr"),
            (
                "/ip4/10.0.0.7/tcp/1/p2p/12D3KooWGRUVh5rd3GPNd3kgGpFoH8Am2Ub4sF3jiLnd6t8qoKhc",
                "peer id",
            ),
        ] {
            let mut wrong = config.clone();
            wrong.p2p.external_addresses = vec![bad.to_string()];
            let error = wrong
                .validate(|key| key.to_string())
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("p2p.external_addresses") && error.contains(expected),
                "{bad}: {error}"
            );
        }
        assert_eq!(config.rpc.listen.port(), 0);
        assert!(config.p2p.mdns);
        assert_eq!(config.mode, NodeMode::Full);
        assert_eq!(config.consensus.timeout_commit_ms, 0);
        assert_eq!(config.moniker, NodeConfig::default().moniker);
    }

    #[test]
    fn toml_errors_name_the_key_on_the_first_line() {
        let path = Path::new("/h/config.toml");
        let first_line = |text: String| {
            NodeConfig::from_toml(&text, path)
                .unwrap_err()
                .to_string()
                .lines()
                .next()
                .unwrap()
                .to_string()
        };
        let default = NodeConfig::default().to_toml();
        for (text, key) in [
            (
                default.replace("peers_target", "peer_target"),
                "`p2p.peer_target`",
            ),
            (
                default.replace("peers_target = 16", "peers_target = -1"),
                "`p2p.peers_target`",
            ),
            (
                default.replace("listen = \"127.0.0.1:26657\"", "listen = \"x\""),
                "`rpc.listen`",
            ),
            (default.replace("mdns = false\n", ""), "`p2p.mdns`"),
            (default.replace("[mempool]", "[mempol]"), "`mempol`"),
            (
                default.replace("mode = \"validator\"", "mode = \"observer\""),
                "`mode`",
            ),
            (
                default.replace("listen = [", "listen = [\n    1,"),
                "`p2p.listen`",
            ),
        ] {
            let line = first_line(text);
            assert!(
                line.contains(key) && line.contains("/h/config.toml"),
                "{key}: {line}"
            );
        }
        let line = first_line(default.replace("[log]", "[log"));
        assert!(line.contains("line "), "{line}");
    }

    #[test]
    fn the_help_states_the_real_defaults() {
        use clap::CommandFactory;
        let defaults = NodeConfig::default();
        let help = TestCli::command().render_long_help().to_string();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for expected in [
            format!("`{}`", defaults.moniker),
            "`validator`".to_string(),
            defaults.p2p.listen.join(","),
            "none".to_string(),
            defaults.p2p.mdns.to_string(),
            defaults.p2p.peers_target.to_string(),
            defaults.rpc.listen.to_string(),
            defaults.rpc.connections_max.to_string(),
            defaults.rpc.ready_stall_ms.to_string(),
            defaults.rpc.history_index.to_string(),
            defaults.metrics.listen.to_string(),
            defaults.consensus.timeout_commit_ms.to_string(),
            defaults.consensus.wait_for_transactions.to_string(),
            defaults.consensus.block_interval_max_ms.to_string(),
            defaults.mempool.transactions_max.to_string(),
            format!("{} (128 MiB)", defaults.mempool.bytes_max),
            defaults.mempool.sender_pending_max.to_string(),
            format!("{} (10 minutes)", defaults.mempool.ttl_ms),
            defaults.mempool.peer_transactions_per_second.to_string(),
            "plain".to_string(),
            format!("`{}`", defaults.log.filter),
            defaults.snapshot.interval.to_string(),
            defaults.snapshot.keep.to_string(),
        ] {
            let expected = format!("; default {expected} [env:");
            assert!(help.contains(&expected), "{expected}: {help}");
        }
    }

    #[test]
    fn sources_name_the_flag_or_the_variable() {
        let command = TestCli::command_for_sources();
        let matches = command
            .try_get_matches_from(["cairnd", "--rpc-listen", "127.0.0.1:1"])
            .unwrap();
        let mut overrides = ConfigOverrides::from_arg_matches(&matches).unwrap();
        overrides.record_sources(&matches);
        let file = Path::new("/h/config.toml");
        assert_eq!(
            overrides.origin("rpc.listen", file),
            "--rpc-listen (config key `rpc.listen`)"
        );
        assert_eq!(
            overrides.origin("p2p.listen", file),
            "`p2p.listen` in /h/config.toml"
        );
        assert_eq!(
            override_by_flag("rpc-listen"),
            Some(("rpc.listen", Some("CAIRN_RPC_LISTEN".into())))
        );
        assert_eq!(override_by_flag("home"), None);
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
