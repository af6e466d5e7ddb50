//! `cairn devnet up|down|status|stop|start|restart`: a local devnet of `cairnd` processes on
//! loopback, made and driven only through `cairnd`'s command line and the
//! nodes' public RPC (the CLI links no libp2p and no node internals).
//!
//! The devnet directory (`--dir`, default `./devnet`) holds everything:
//!
//! ```text
//! DIR/devnet.json   chain id, genesis hash, base port, and per node: name,
//!                   role, peer id, ports, RPC URL, p2p address, pid
//! DIR/genesis.json  the chain's genesis (also in every home)
//! DIR/keys/         key files of the funded accounts (keyring format)
//! DIR/v0 ... DIR/f0 node homes (`cairnd --home`), each with `node.log`
//! ```
//!
//! `up` on a new directory runs `cairnd init` for every node, reads the
//! validators' public keys (`show-validator`) and the peer ids
//! (`show-node-id`), builds the genesis with
//! [`cairn_genesis::devnet::build_devnet`], funds freshly generated
//! accounts and imports their keys into the keyring. `up` on a directory
//! with a `devnet.json` resumes that chain. Either way it checks the ports,
//! starts every node in its own process group, records the pids, and waits
//! until every node answers and blocks are committed. Without `--detach` it
//! then shows a status line until Ctrl-C (or SIGTERM, SIGHUP) and stops
//! the nodes; with `--detach` it returns and `down` stops them.
//!
//! Every setting of a node is in its `config/config.toml`, written by
//! `cairnd init` (see [`node_settings`]): node `i` listens on `base+10i`
//! for p2p, `base+10i+1` for RPC, `base+10i+2` for metrics, all on
//! 127.0.0.1, with every other node as a bootstrap peer. The peer ids are
//! only known once every home exists, so each config is written a second
//! time after that, by a `cairnd init` with every flag into a scratch home
//! whose `config.toml` replaces the node's ([`write_config`]; the CLI links
//! no TOML library and never edits the file itself). Nodes are started
//! with `cairnd start --home HOME` and nothing else, so what the config
//! says is what the node runs with, and an operator's edits to it stay.
//!
//! Processes are signalled with the system's `kill` (the workspace forbids
//! `unsafe`, so no libc). Before a recorded pid is signalled, it is checked
//! (on Linux, through `/proc`) to still be a `cairnd` of that home and not
//! a zombie, so a reused pid is never killed.

use std::{
    fmt,
    fs::{self, File, OpenOptions},
    io::{IsTerminal, Read, Seek, SeekFrom, Write},
    net::TcpListener,
    os::unix::{ffi::OsStrExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use cairn_genesis::devnet::{build_devnet, DevnetSpec};
use cairn_types::{ChainId, Keypair, PublicKey, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::{
    signal::unix::{signal, Signal, SignalKind},
    time::Instant,
};

use crate::{
    cli::{
        DevnetCommand, DevnetDirArgs, DevnetNodeArgs, DevnetStatusArgs, DevnetUpArgs, KeyringArgs,
    },
    commands::{write_json, write_line},
    error::{CliError, Result},
    files::read_bounded,
    keyfile::Passphrase,
    keyring::{ExistingKey, KeyName, Keyring},
    limits::{
        DEVNET_ACCOUNTS_MAX, DEVNET_BENCH_ACCOUNTS_MAX, DEVNET_COMMAND_OUTPUT_BYTES_MAX,
        DEVNET_COMMAND_TIMEOUT, DEVNET_FILE_BYTES_MAX, DEVNET_FULL_NODES_MAX, DEVNET_KILL_TIMEOUT,
        DEVNET_LOG_TAIL_BYTES_MAX, DEVNET_LOG_TAIL_LINES, DEVNET_POLL_INTERVAL,
        DEVNET_PORTS_PER_NODE, DEVNET_READY_TIMEOUT, DEVNET_STATUS_BLOCKS_MAX,
        DEVNET_STATUS_LOG_INTERVAL, DEVNET_STATUS_REQUEST_TIMEOUT, DEVNET_STOP_POLL_INTERVAL,
        DEVNET_STOP_TIMEOUT, DEVNET_VALIDATORS_MAX,
    },
    rpc::{BlockSelector, NodeClient, Status},
};

/// Default of `--validators`.
pub const DEFAULT_VALIDATORS: usize = 4;
/// Default of `--full-nodes`.
pub const DEFAULT_FULL_NODES: usize = 0;
/// Default of `--accounts`.
pub const DEFAULT_ACCOUNTS: usize = 10;
/// Default of `--chain-id`; its accounts are named `devnet-acct0`, ...
pub const DEFAULT_CHAIN_ID: &str = "cairn-devnet";
/// Default of `--base-port`.
pub const DEFAULT_BASE_PORT: u16 = 26600;
/// Genesis balance of each funded account.
pub const ACCOUNT_BALANCE: u64 = 1_000_000_000_000;
/// `consensus.block_interval_max_ms` written into every node's config, so
/// an idle devnet still commits a block a second (nodes wait for
/// transactions otherwise).
pub const BLOCK_INTERVAL_MAX_MS: u64 = 1_000;
/// `consensus.timeout_commit_ms` written into every node's config: on
/// loopback the pause after a commit is the largest part of the block
/// interval, and 10 ms cuts light-load latency to a third of the 100 ms
/// default (BENCHMARKS.md). A devnet of one validator gets 0, as
/// `cairnd start --dev` does. Edit the configs to change it (a resume
/// with another `--base-port` rewrites them, see [`update_configs`]).
pub const DEVNET_TIMEOUT_COMMIT_MS: u64 = 10;

/// Name of the devnet file in the devnet directory.
const DEVNET_FILE: &str = "devnet.json";
/// Version of `devnet.json` written: every node's `config.toml` holds the
/// settings it runs with.
const DEVNET_FILE_VERSION: u32 = 2;
/// Version of a `devnet.json` whose nodes' `config.toml` may not hold
/// their settings. Older `cairn` wrote it: they passed the ports, peers and
/// timings as `cairnd start` flags, over a config with their defaults. It is
/// also recorded while `up --base-port` moves the nodes, until every config
/// is rewritten, so a run cut short rewrites them again. Such a devnet is
/// not started with flags: `up` and `start` first rewrite every node's
/// config once ([`update_configs`], the previous file kept as
/// `config.toml.bak`) and record [`DEVNET_FILE_VERSION`].
const DEVNET_FILE_VERSION_CONFIGS_STALE: u32 = 1;
/// Next to a node's `config.toml`: the file it had before `cairn` rewrote it.
const CONFIG_BACKUP_FILE: &str = "config.toml.bak";
/// Name of the genesis copy in the devnet directory.
const GENESIS_FILE: &str = "genesis.json";
/// Folder of the funded accounts' key files in the devnet directory.
const KEYS_DIR: &str = "keys";
/// Folder of the `--bench-accounts` key files in the devnet directory.
const BENCH_KEYS_DIR: &str = "bench-keys";
/// Name of each node's log file in its home.
const LOG_FILE: &str = "node.log";
/// Name of the node binary.
const CAIRND: &str = "cairnd";
/// Port offsets inside a node's range of [`DEVNET_PORTS_PER_NODE`].
const P2P_PORT_OFFSET: u16 = 0;
const RPC_PORT_OFFSET: u16 = 1;
const METRICS_PORT_OFFSET: u16 = 2;

/// Runs one `cairn devnet` command.
pub async fn run(command: DevnetCommand, out: &mut dyn Write) -> Result<()> {
    match command {
        DevnetCommand::Up(args) => up(args, out).await,
        DevnetCommand::Init(args) => super::devnet_hosts::init(args, out).await,
        DevnetCommand::Down(args) => down(&args, out).await,
        DevnetCommand::Status(args) => status(&args, out).await,
        DevnetCommand::Stop(args) => stop_one(&args, out).await,
        DevnetCommand::Start(args) => start_one(&args, out).await,
        DevnetCommand::Restart(args) => {
            stop_one(&args, out).await?;
            start_one(&args, out).await
        }
    }
}

// ---------------------------------------------------------------------------
// devnet.json

/// What a node does in the devnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Votes; its key is in the genesis.
    Validator,
    /// Follows the chain and serves RPC.
    Full,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Validator => "validator",
            Role::Full => "full",
        })
    }
}

/// `DIR/devnet.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevnetFile {
    /// [`DEVNET_FILE_VERSION`].
    pub version: u32,
    /// The chain id.
    pub chain_id: String,
    /// The genesis hash (hex).
    pub genesis_hash: String,
    /// The first port of node 0.
    pub base_port: u16,
    /// The nodes, validators first, in port order.
    pub nodes: Vec<DevnetNode>,
    /// The funded accounts.
    pub accounts: Vec<DevnetAccount>,
}

/// What `cairn bench --devnet DIR` reads of a devnet.
pub(crate) struct BenchEndpoints {
    /// The validators' RPC base URLs.
    pub validators_rpc: Vec<String>,
    /// Every node's Prometheus URL.
    pub metrics: Vec<String>,
}

/// The RPC and metrics URLs of the devnet in `dir`.
pub(crate) fn bench_endpoints(dir: &Path) -> Result<BenchEndpoints> {
    let (_, file) = DevnetDir::open(dir)?;
    Ok(BenchEndpoints {
        validators_rpc: file
            .nodes
            .iter()
            .filter(|node| node.role == Role::Validator)
            .map(|node| node.rpc.clone())
            .collect(),
        metrics: file.nodes.iter().map(|node| node.metrics.clone()).collect(),
    })
}

/// One node in `devnet.json`. Its home is `DIR/<name>`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevnetNode {
    /// `v0`, `v1`, ... or `f0`, ...
    pub name: String,
    /// Validator or full node.
    pub role: Role,
    /// libp2p peer id.
    pub peer_id: String,
    /// P2P port on 127.0.0.1.
    pub p2p_port: u16,
    /// RPC port on 127.0.0.1.
    pub rpc_port: u16,
    /// Metrics port on 127.0.0.1.
    pub metrics_port: u16,
    /// P2P multiaddr with the peer id (for `--bootstrap`).
    pub p2p: String,
    /// RPC base URL.
    pub rpc: String,
    /// Prometheus URL.
    pub metrics: String,
    /// Pid of the running process; `None` when stopped.
    pub pid: Option<u32>,
}

/// One funded account in `devnet.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevnetAccount {
    /// Key name in `DIR/keys` and in the keyring.
    pub name: String,
    /// Address, `cairn1...`.
    pub address: String,
    /// Genesis balance.
    pub balance: u64,
}

impl DevnetNode {
    fn new(
        name: String,
        role: Role,
        peer_id: String,
        base_port: u16,
        index: usize,
    ) -> Result<Self> {
        let mut node = DevnetNode {
            name,
            role,
            peer_id,
            p2p_port: 0,
            rpc_port: 0,
            metrics_port: 0,
            p2p: String::new(),
            rpc: String::new(),
            metrics: String::new(),
            pid: None,
        };
        node.set_ports(base_port, index)?;
        Ok(node)
    }

    /// Sets the ports (and the addresses made of them) of node `index`.
    fn set_ports(&mut self, base_port: u16, index: usize) -> Result<()> {
        let port = |offset: u16| node_port(base_port, index, offset);
        self.p2p_port = port(P2P_PORT_OFFSET)?;
        self.rpc_port = port(RPC_PORT_OFFSET)?;
        self.metrics_port = port(METRICS_PORT_OFFSET)?;
        self.p2p = format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", self.p2p_port, self.peer_id);
        self.rpc = format!("http://127.0.0.1:{}", self.rpc_port);
        self.metrics = format!("http://127.0.0.1:{}/metrics", self.metrics_port);
        Ok(())
    }

    fn ports(&self) -> [(&'static str, u16); 3] {
        [
            ("p2p", self.p2p_port),
            ("RPC", self.rpc_port),
            ("metrics", self.metrics_port),
        ]
    }
}

/// Port `offset` of node `index`, or an error when it passes 65535.
fn node_port(base_port: u16, index: usize, offset: u16) -> Result<u16> {
    let port = u32::try_from(index)
        .ok()
        .and_then(|index| index.checked_mul(u32::from(DEVNET_PORTS_PER_NODE)))
        .and_then(|start| start.checked_add(u32::from(base_port)))
        .and_then(|start| start.checked_add(u32::from(offset)))
        .and_then(|port| u16::try_from(port).ok());
    port.ok_or_else(|| CliError::DevnetSettings {
        reason: format!(
            "with --base-port {base_port}, node {index} would need a port above 65535; pass a lower --base-port (e.g. {DEFAULT_BASE_PORT})"
        ),
    })
}

/// A devnet directory and its file.
struct DevnetDir {
    /// The directory, made absolute (node homes are given to `cairnd` and
    /// recognised in `/proc` by this path).
    root: PathBuf,
}

impl DevnetDir {
    fn file(&self) -> PathBuf {
        self.root.join(DEVNET_FILE)
    }

    fn home(&self, node: &DevnetNode) -> PathBuf {
        self.root.join(&node.name)
    }

    fn log(&self, node: &DevnetNode) -> PathBuf {
        self.home(node).join(LOG_FILE)
    }

    fn keys(&self) -> Keyring {
        Keyring::new(self.root.join(KEYS_DIR))
    }

    /// Opens the devnet in `dir`: its `devnet.json` must exist.
    fn open(dir: &Path) -> Result<(DevnetDir, DevnetFile)> {
        let file = dir.join(DEVNET_FILE);
        if !file.is_file() {
            return Err(CliError::NoDevnet {
                dir: dir.to_path_buf(),
                file,
            });
        }
        let root = fs::canonicalize(dir).map_err(CliError::io("resolve", dir))?;
        let devnet = DevnetDir { root };
        let contents = devnet.read()?;
        Ok((devnet, contents))
    }

    fn read(&self) -> Result<DevnetFile> {
        let path = self.file();
        let corrupt = |reason: String| CliError::CorruptDevnetFile {
            path: path.clone(),
            reason,
        };
        let bytes = read_bounded(&path, DEVNET_FILE_BYTES_MAX, |limit| {
            corrupt(format!("it is larger than {limit} bytes"))
        })?;
        let file: DevnetFile = serde_json::from_slice(&bytes)
            .map_err(|error| corrupt(format!("it is not a devnet file ({error})")))?;
        if file.version != DEVNET_FILE_VERSION && file.version != DEVNET_FILE_VERSION_CONFIGS_STALE
        {
            return Err(corrupt(format!(
                "version {} is not supported (this cairn reads versions {DEVNET_FILE_VERSION_CONFIGS_STALE} and {DEVNET_FILE_VERSION})",
                file.version
            )));
        }
        let validators = file
            .nodes
            .iter()
            .filter(|node| node.role == Role::Validator)
            .count();
        if validators == 0
            || validators > DEVNET_VALIDATORS_MAX
            || file.nodes.len() - validators > DEVNET_FULL_NODES_MAX
        {
            return Err(corrupt(format!(
                "it lists {validators} validators and {} full nodes; a devnet has 1 to {DEVNET_VALIDATORS_MAX} validators and at most {DEVNET_FULL_NODES_MAX} full nodes",
                file.nodes.len() - validators
            )));
        }
        for node in &file.nodes {
            // Names become paths: only the names `up` makes are accepted.
            if node_name(node.role, &node.name).is_none() {
                return Err(corrupt(format!(
                    "node name {:?} is not v<N> or f<N>",
                    node.name
                )));
            }
        }
        if file.accounts.len() > DEVNET_ACCOUNTS_MAX {
            return Err(corrupt(format!(
                "it lists {} accounts, the limit is {DEVNET_ACCOUNTS_MAX}",
                file.accounts.len()
            )));
        }
        Ok(file)
    }

    /// Writes `devnet.json` atomically (a temporary file renamed).
    fn write(&self, file: &DevnetFile) -> Result<()> {
        let path = self.file();
        let temporary = self
            .root
            .join(format!(".{DEVNET_FILE}.{}.tmp", std::process::id()));
        let text = serde_json::to_string_pretty(file).map_err(|error| {
            CliError::io("encode", &path)(std::io::Error::other(error.to_string()))
        })? + "\n";
        fs::write(&temporary, text).map_err(CliError::io("write", &temporary))?;
        fs::rename(&temporary, &path).map_err(CliError::io("write", &path))
    }
}

/// The index in a role of a node name (`v3` is validator 3), if it is one.
fn node_name(role: Role, name: &str) -> Option<usize> {
    let prefix = match role {
        Role::Validator => 'v',
        Role::Full => 'f',
    };
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 3 {
        return None;
    }
    digits.parse().ok()
}

/// Key name of funded account `index`: `devnet-acct<i>` on the default
/// chain, `devnet-<chain id>-acct<i>` on another (so devnets of different
/// chains do not share names).
pub(crate) fn account_name(chain_id: &str, index: usize) -> Result<KeyName> {
    if chain_id == DEFAULT_CHAIN_ID {
        KeyName::new(&format!("devnet-acct{index}"))
    } else {
        KeyName::new(&format!("devnet-{chain_id}-acct{index}"))
    }
}

/// The RPC URL of the first running node of the devnet in `dir`, if
/// there is a devnet there and one of its nodes runs (the default of
/// `--node`). A devnet file that cannot be read is reported on standard
/// error and ignored.
pub fn running_node_url(dir: &Path) -> Option<String> {
    if !dir.join(DEVNET_FILE).is_file() {
        return None;
    }
    let (devnet, file) = match DevnetDir::open(dir) {
        Ok(opened) => opened,
        Err(error) => {
            eprintln!(
                "warning: not using the devnet in {} as the default node: {error}",
                dir.display()
            );
            return None;
        }
    };
    file.nodes
        .iter()
        .find(|node| {
            node.pid
                .is_some_and(|pid| process_state(pid, &devnet.home(node)) == ProcessState::Ours)
        })
        .map(|node| node.rpc.clone())
}

// ---------------------------------------------------------------------------
// up

/// The settings of a new devnet, checked.
struct NewDevnet {
    validators: usize,
    full_nodes: usize,
    accounts: usize,
    bench_accounts: usize,
    chain_id: String,
    base_port: u16,
}

impl NewDevnet {
    fn from_args(args: &DevnetUpArgs) -> Result<NewDevnet> {
        let bad = |reason: String| CliError::DevnetSettings { reason };
        let validators = args.validators.unwrap_or(DEFAULT_VALIDATORS);
        if validators == 0 || validators > DEVNET_VALIDATORS_MAX {
            return Err(bad(format!(
                "--validators {validators}: a devnet has 1 to {DEVNET_VALIDATORS_MAX} validators"
            )));
        }
        let full_nodes = args.full_nodes.unwrap_or(DEFAULT_FULL_NODES);
        if full_nodes > DEVNET_FULL_NODES_MAX {
            return Err(bad(format!(
                "--full-nodes {full_nodes}: the limit is {DEVNET_FULL_NODES_MAX}"
            )));
        }
        let accounts = args.accounts.unwrap_or(DEFAULT_ACCOUNTS);
        if accounts > DEVNET_ACCOUNTS_MAX {
            return Err(bad(format!(
                "--accounts {accounts}: the limit is {DEVNET_ACCOUNTS_MAX}"
            )));
        }
        let bench_accounts = args.bench_accounts.unwrap_or(0);
        if bench_accounts > DEVNET_BENCH_ACCOUNTS_MAX {
            return Err(bad(format!(
                "--bench-accounts {bench_accounts}: the limit is {DEVNET_BENCH_ACCOUNTS_MAX}"
            )));
        }
        let chain_id = args
            .chain_id
            .clone()
            .unwrap_or_else(|| DEFAULT_CHAIN_ID.to_string());
        ChainId::new(chain_id.clone()).map_err(|error| bad(format!("--chain-id: {error}")))?;
        let base_port = checked_base_port(args.base_port.unwrap_or(DEFAULT_BASE_PORT))?;
        // The last node's last port must exist.
        node_port(base_port, validators + full_nodes - 1, METRICS_PORT_OFFSET)?;
        Ok(NewDevnet {
            validators,
            full_nodes,
            accounts,
            bench_accounts,
            chain_id,
            base_port,
        })
    }
}

fn checked_base_port(base_port: u16) -> Result<u16> {
    if base_port == 0 {
        return Err(CliError::DevnetSettings {
            reason: format!(
                "--base-port 0: the devnet needs fixed ports; give a port such as {DEFAULT_BASE_PORT}"
            ),
        });
    }
    Ok(base_port)
}

async fn up(args: DevnetUpArgs, out: &mut dyn Write) -> Result<()> {
    let dir = args.dir.dir.clone();
    let keyring = args.keyring.keyring()?;
    let passphrase = args.keyring.passphrase()?;
    let cairnd = find_cairnd(args.cairnd.as_deref())?;
    let (devnet, mut file, resumed) = if dir.join(DEVNET_FILE).is_file() {
        let (devnet, file) = resume(&args, &dir, &keyring, passphrase.as_ref())?;
        (devnet, file, true)
    } else {
        let (devnet, file) = create(&args, &dir, &cairnd, &keyring, passphrase.as_ref()).await?;
        (devnet, file, false)
    };
    drop(passphrase);
    update_configs(&devnet, &mut file, &cairnd, out).await?;
    let mut signals = StopSignals::new()?;
    let mut running = start_nodes(&devnet, &mut file, &cairnd)?;
    write_line(
        out,
        &format!(
            "{} {} nodes of devnet {} in {}; waiting for blocks (up to {} s)",
            if resumed { "resumed" } else { "started" },
            running.len(),
            file.chain_id,
            devnet.root.display(),
            DEVNET_READY_TIMEOUT.as_secs()
        ),
    )?;
    let ready = wait_until_ready(&devnet, &file, &mut running, &mut signals).await;
    let height = match ready {
        Ok(Ready::Height(height)) => height,
        Ok(Ready::Interrupted(signal)) => {
            // The nodes are stopped even if this cannot be printed.
            let _ = write_line(
                out,
                &format!("{signal}: stopping the nodes before the devnet was ready"),
            );
            let outcomes = stop_nodes(&mut running).await;
            record_stopped(&devnet, &mut file, &running, &outcomes)?;
            report_stops(out, &running, &outcomes)?;
            return check_all_stopped(&running, &outcomes);
        }
        Err(error) => return Err(stop_after_error(&devnet, &mut file, &mut running, error).await),
    };
    // A command that fails leaves nothing running, even if only the
    // summary could not be printed.
    let printed = print_ready(
        out,
        &devnet,
        &file,
        &args.keyring,
        &keyring,
        height,
        args.detach,
    );
    if let Err(error) = printed {
        return Err(stop_after_error(&devnet, &mut file, &mut running, error).await);
    }
    if args.detach {
        // Dropping a `Child` neither waits for nor kills the process.
        return Ok(());
    }
    let stopped_by = match run_foreground(out, &devnet, &file, &mut running, &mut signals).await {
        Ok(signal) => signal,
        Err(error) => return Err(stop_after_error(&devnet, &mut file, &mut running, error).await),
    };
    let _ = write_line(out, &format!("{stopped_by}: stopping the nodes"));
    // Nodes restarted meanwhile (`cairn devnet restart vN`) have new pids,
    // recorded in the file: they are stopped too.
    if let Ok(current) = devnet.read() {
        file = current;
        for index in 0..file.nodes.len() {
            if let Some(node) = running_node(&devnet, &file, index) {
                if !running.iter().any(|known| known.pid == node.pid) {
                    running.push(node);
                }
            }
        }
    }
    let outcomes = stop_nodes(&mut running).await;
    record_stopped(&devnet, &mut file, &running, &outcomes)?;
    report_stops(out, &running, &outcomes)?;
    check_all_stopped(&running, &outcomes)?;
    write_line(
        out,
        &format!(
            "devnet {} stopped; resume it with `cairn devnet up --dir {}`",
            file.chain_id,
            shell_quote(&dir.display().to_string())
        ),
    )
}

/// Stops the nodes after `error` and returns it; trouble while stopping
/// is printed as a warning, so it does not hide the error.
async fn stop_after_error(
    devnet: &DevnetDir,
    file: &mut DevnetFile,
    running: &mut [Running],
    error: CliError,
) -> CliError {
    let outcomes = stop_nodes(running).await;
    let recorded = record_stopped(devnet, file, running, &outcomes)
        .and_then(|()| check_all_stopped(running, &outcomes));
    if let Err(trouble) = recorded {
        eprintln!("warning: {trouble}");
    }
    error
}

/// Makes a new devnet in `dir`: homes, genesis, keys, `devnet.json`.
/// Anything made is removed again if a step fails.
async fn create(
    args: &DevnetUpArgs,
    dir: &Path,
    cairnd: &Path,
    keyring: &Keyring,
    passphrase: Option<&Passphrase>,
) -> Result<(DevnetDir, DevnetFile)> {
    let settings = NewDevnet::from_args(args)?;
    let created_dir = match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                let reason = if dir.join(GENESIS_FILE).exists() {
                    format!("holds a {GENESIS_FILE} but no {DEVNET_FILE} (an earlier `cairn devnet up` stopped half-way)")
                } else {
                    format!("is not empty and holds no {DEVNET_FILE}, so it is not a devnet")
                };
                return Err(CliError::DevnetDirUnusable {
                    dir: dir.to_path_buf(),
                    reason,
                });
            }
            false
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => true,
        Err(error) => {
            return Err(CliError::DevnetDirUnusable {
                dir: dir.to_path_buf(),
                reason: format!("cannot be listed ({error})"),
            })
        }
    };
    let names = (0..settings.accounts)
        .map(|index| account_name(&settings.chain_id, index))
        .collect::<Result<Vec<_>>>()?;
    let taken: Vec<KeyName> = names
        .iter()
        .filter(|name| keyring.path_of(name).exists())
        .cloned()
        .collect();
    if !taken.is_empty() && !args.replace_keys {
        return Err(keys_taken(keyring, &taken));
    }
    let count = settings.validators + settings.full_nodes;
    let mut nodes: Vec<DevnetNode> = Vec::with_capacity(count);
    for index in 0..count {
        let (role, name) = if index < settings.validators {
            (Role::Validator, format!("v{index}"))
        } else {
            (Role::Full, format!("f{}", index - settings.validators))
        };
        nodes.push(DevnetNode::new(
            name,
            role,
            String::new(),
            settings.base_port,
            index,
        )?);
    }
    check_ports_free(&nodes, settings.base_port)?;

    fs::create_dir_all(dir).map_err(CliError::io("create the devnet directory", dir))?;
    let root = fs::canonicalize(dir).map_err(CliError::io("resolve", dir))?;
    let devnet = DevnetDir { root };
    let made = make_devnet(
        &devnet,
        &settings,
        nodes,
        &names,
        cairnd,
        keyring,
        passphrase,
        args.replace_keys,
    )
    .await;
    match made {
        Ok(file) => Ok((devnet, file)),
        Err(error) => {
            // The directory was new or empty: everything in it is ours.
            let cleaned = if created_dir {
                fs::remove_dir_all(&devnet.root)
            } else {
                remove_contents(&devnet.root)
            };
            if let Err(cleanup) = cleaned {
                eprintln!(
                    "warning: could not remove the half-made devnet in {}: {cleanup}; delete it by hand",
                    devnet.root.display()
                );
            }
            Err(error)
        }
    }
}

fn remove_contents(dir: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            fs::remove_dir_all(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn make_devnet(
    devnet: &DevnetDir,
    settings: &NewDevnet,
    mut nodes: Vec<DevnetNode>,
    names: &[KeyName],
    cairnd: &Path,
    keyring: &Keyring,
    passphrase: Option<&Passphrase>,
    replace_keys: bool,
) -> Result<DevnetFile> {
    let mut validators = Vec::with_capacity(settings.validators);
    for index in 0..nodes.len() {
        let home = devnet.home(&nodes[index]);
        let home_text = home.display().to_string();
        // Every setting but the bootstrap peers, whose ids are not known
        // yet: they are written below, once every home exists.
        let mut init = vec!["--home".to_string(), home_text.clone(), "init".to_string()];
        init.extend(node_settings(&nodes, index, false));
        run_cairnd(cairnd, &init).await?;
        let peer_id = run_cairnd(cairnd, &["--home", &home_text, "show-node-id"]).await?;
        let node = &mut nodes[index];
        node.peer_id = check_peer_id(cairnd, &peer_id)?;
        let port_index = node_index(settings, node);
        node.set_ports(settings.base_port, port_index)?;
        if node.role == Role::Validator {
            let key = run_cairnd(cairnd, &["--home", &home_text, "show-validator"]).await?;
            let public_key =
                PublicKey::from_hex(key.trim()).map_err(|error| CliError::CairndFailed {
                    command: format!("{} --home {home_text} show-validator", cairnd.display()),
                    reason: format!("it printed {:?}, not a public key ({error})", key.trim()),
                })?;
            validators.push((node.name.clone(), public_key));
        }
    }
    if nodes.len() > 1 {
        for index in 0..nodes.len() {
            write_config(devnet, &nodes, index, cairnd, false).await?;
        }
    }
    let devnet_genesis = build_devnet(&DevnetSpec {
        chain_id: settings.chain_id.clone(),
        genesis_time: Timestamp(now_millis()),
        validators,
        accounts: settings.accounts + settings.bench_accounts,
        account_balance: ACCOUNT_BALANCE,
        consensus_params: cairn_genesis::dev::dev_consensus_params(),
        staking_params: cairn_genesis::devnet::devnet_staking_params(),
    })?;
    let genesis_file = devnet_genesis.genesis.to_file();
    for node in &nodes {
        genesis_file.save(&devnet.home(node).join("config").join(GENESIS_FILE))?;
    }
    genesis_file.save(&devnet.root.join(GENESIS_FILE))?;

    let mut account_keys = devnet_genesis.account_keys;
    let bench_keys = account_keys.split_off(settings.accounts.min(account_keys.len()));
    let keys: Vec<(KeyName, Keypair)> = names.iter().cloned().zip(account_keys).collect();
    if !bench_keys.is_empty() {
        // Zero-padded names keep `cairn bench` (which sorts by file name)
        // on the same accounts for a given --accounts.
        let bench_keys = bench_keys
            .into_iter()
            .enumerate()
            .map(|(index, keypair)| Ok((KeyName::new(&format!("bench-{index:06}"))?, keypair)))
            .collect::<Result<Vec<_>>>()?;
        Keyring::new(devnet.root.join(BENCH_KEYS_DIR)).import_all(
            &bench_keys,
            None,
            ExistingKey::Refuse,
        )?;
    }
    devnet
        .keys()
        .import_all(&keys, passphrase, ExistingKey::Refuse)?;
    import_into_keyring(keyring, &keys, passphrase, replace_keys)?;

    let file = DevnetFile {
        version: DEVNET_FILE_VERSION,
        chain_id: settings.chain_id.clone(),
        genesis_hash: devnet_genesis.genesis.hash().to_hex(),
        base_port: settings.base_port,
        nodes,
        accounts: keys
            .iter()
            .map(|(name, keypair)| DevnetAccount {
                name: name.to_string(),
                address: keypair.address().to_string(),
                balance: ACCOUNT_BALANCE,
            })
            .collect(),
    };
    devnet.write(&file)?;
    Ok(file)
}

fn node_index(settings: &NewDevnet, node: &DevnetNode) -> usize {
    let index = node_name(node.role, &node.name).unwrap_or(0);
    match node.role {
        Role::Validator => index,
        Role::Full => settings.validators + index,
    }
}

/// The `cairnd init` flags of node `index` of `nodes`: everything it runs
/// with, written into its `config.toml`. The bootstrap peers (every other
/// node) only `with_bootstrap`, as their peer ids must be known.
fn node_settings(nodes: &[DevnetNode], index: usize, with_bootstrap: bool) -> Vec<String> {
    let node = &nodes[index];
    let validators = nodes
        .iter()
        .filter(|node| node.role == Role::Validator)
        .count();
    // One validator has no other precommits to wait for.
    let timeout_commit = if validators > 1 {
        DEVNET_TIMEOUT_COMMIT_MS
    } else {
        0
    };
    let mut settings = vec![
        "--moniker".to_string(),
        node.name.clone(),
        "--mode".to_string(),
        node.role.to_string(),
        "--p2p-listen".to_string(),
        format!("/ip4/127.0.0.1/tcp/{}", node.p2p_port),
        "--rpc-listen".to_string(),
        format!("127.0.0.1:{}", node.rpc_port),
        "--metrics-listen".to_string(),
        format!("127.0.0.1:{}", node.metrics_port),
        "--mdns".to_string(),
        "false".to_string(),
        "--timeout-commit-ms".to_string(),
        timeout_commit.to_string(),
        "--block-interval-max-ms".to_string(),
        BLOCK_INTERVAL_MAX_MS.to_string(),
    ];
    if with_bootstrap {
        for (other, peer) in nodes.iter().enumerate() {
            if other != index {
                settings.extend(["--bootstrap".to_string(), peer.p2p.clone()]);
            }
        }
    }
    settings
}

/// Writes every setting of node `index` (with its bootstrap peers) into
/// its `config/config.toml`: `cairnd init` with [`node_settings`] makes a
/// scratch home next to the node homes, and its `config.toml` replaces the
/// node's (a rename, so the node never sees half a file); the scratch
/// home, its keys and genesis are deleted. With `backup`, the node's
/// previous config is kept as [`CONFIG_BACKUP_FILE`].
async fn write_config(
    devnet: &DevnetDir,
    nodes: &[DevnetNode],
    index: usize,
    cairnd: &Path,
    backup: bool,
) -> Result<()> {
    let node = &nodes[index];
    let config_dir = devnet.home(node).join("config");
    let config = config_dir.join("config.toml");
    let scratch = devnet.root.join(format!(".{}.config.tmp", node.name));
    let remove_scratch = || match fs::remove_dir_all(&scratch) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(CliError::io("delete the scratch home", &scratch)(error))
        }
        _ => Ok(()),
    };
    // Left over by a run that was cut short.
    remove_scratch()?;
    let mut init = vec![
        "--home".to_string(),
        scratch.display().to_string(),
        "init".to_string(),
    ];
    init.extend(node_settings(nodes, index, true));
    let installed = async {
        run_cairnd(cairnd, &init).await?;
        if backup && config.is_file() {
            let kept = config_dir.join(CONFIG_BACKUP_FILE);
            fs::copy(&config, &kept).map_err(CliError::io("copy", &config))?;
        }
        let written = scratch.join("config").join("config.toml");
        fs::rename(&written, &config).map_err(CliError::io("replace", &config))
    }
    .await;
    let removed = remove_scratch();
    installed.and(removed)
}

/// Brings a devnet whose configs may not hold the nodes' settings
/// ([`DEVNET_FILE_VERSION_CONFIGS_STALE`]: made by an older `cairn`, or
/// moved by `up --base-port`) up to date: rewrites every node's
/// `config.toml` once, keeping the previous one as `config.toml.bak`, and
/// records [`DEVNET_FILE_VERSION`]. Older `cairn` started the nodes with
/// the settings as `cairnd start` flags; instead of going on doing that for
/// such homes, the flags are written into the configs, so that every node
/// starts with `cairnd start --home HOME` alone. Nodes still running
/// (started by an older `cairn`) keep what they run with until restarted.
async fn update_configs(
    devnet: &DevnetDir,
    file: &mut DevnetFile,
    cairnd: &Path,
    out: &mut dyn Write,
) -> Result<()> {
    if file.version == DEVNET_FILE_VERSION {
        return Ok(());
    }
    for index in 0..file.nodes.len() {
        write_config(devnet, &file.nodes, index, cairnd, true).await?;
    }
    file.version = DEVNET_FILE_VERSION;
    devnet.write(file)?;
    write_line(
        out,
        &format!(
            "wrote the ports, bootstrap peers and timings of every node into its config/config.toml (the previous one is kept as config/{CONFIG_BACKUP_FILE}); each node starts with `cairnd start --home <its home>` alone"
        ),
    )
}

/// A peer id as printed by `cairnd show-node-id`: one base58 word.
pub(crate) fn check_peer_id(cairnd: &Path, printed: &str) -> Result<String> {
    let peer_id = printed.trim();
    if peer_id.is_empty() || !peer_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(CliError::CairndFailed {
            command: format!("{} show-node-id", cairnd.display()),
            reason: format!("it printed {peer_id:?}, not a libp2p peer id"),
        });
    }
    Ok(peer_id.to_string())
}

/// Imports `keys` into the keyring: a name that holds the same key is
/// kept; one that holds another key is replaced with `replace`, refused
/// otherwise.
fn import_into_keyring(
    keyring: &Keyring,
    keys: &[(KeyName, Keypair)],
    passphrase: Option<&Passphrase>,
    replace: bool,
) -> Result<()> {
    let mut taken = Vec::new();
    for (name, keypair) in keys {
        if !keyring.path_of(name).exists() {
            continue;
        }
        let same = keyring
            .show(name)
            .is_ok_and(|info| info.public_key == keypair.public_key());
        if !same {
            taken.push(name.clone());
        }
    }
    if !taken.is_empty() {
        if !replace {
            return Err(keys_taken(keyring, &taken));
        }
        for name in &taken {
            keyring.delete(name)?;
        }
    }
    keyring.import_all(keys, passphrase, ExistingKey::KeepIfSame)?;
    Ok(())
}

fn keys_taken(keyring: &Keyring, taken: &[KeyName]) -> CliError {
    let mut listed: Vec<&str> = taken.iter().take(5).map(KeyName::as_str).collect();
    if taken.len() > listed.len() {
        listed.push("...");
    }
    CliError::DevnetSettings {
        reason: format!(
            "the keyring {} already holds other keys named {} (from an earlier devnet?); pass --replace-keys to replace them, --keyring-dir DIR for another keyring, or --chain-id ID for other names",
            keyring.dir().display(),
            listed.join(", ")
        ),
    }
}

/// Resumes the devnet recorded in `dir`: checks the flags against it,
/// that none of its nodes runs, and re-imports missing keys.
fn resume(
    args: &DevnetUpArgs,
    dir: &Path,
    keyring: &Keyring,
    passphrase: Option<&Passphrase>,
) -> Result<(DevnetDir, DevnetFile)> {
    let (devnet, mut file) = DevnetDir::open(dir)?;
    let validators = file
        .nodes
        .iter()
        .filter(|node| node.role == Role::Validator)
        .count();
    let mismatch = |setting: &'static str, recorded: String, given: String| {
        Err(CliError::DevnetMismatch {
            dir: dir.to_path_buf(),
            setting,
            recorded,
            given,
        })
    };
    if let Some(given) = args.validators.filter(|given| *given != validators) {
        return mismatch("--validators", validators.to_string(), given.to_string());
    }
    let full_nodes = file.nodes.len() - validators;
    if let Some(given) = args.full_nodes.filter(|given| *given != full_nodes) {
        return mismatch("--full-nodes", full_nodes.to_string(), given.to_string());
    }
    if let Some(given) = args.accounts.filter(|given| *given != file.accounts.len()) {
        return mismatch(
            "--accounts",
            file.accounts.len().to_string(),
            given.to_string(),
        );
    }
    if let Some(given) = args
        .chain_id
        .as_ref()
        .filter(|given| **given != file.chain_id)
    {
        return mismatch("--chain-id", file.chain_id.clone(), given.clone());
    }
    let running: Vec<String> = file
        .nodes
        .iter()
        .filter_map(|node| {
            let pid = node.pid?;
            (process_state(pid, &devnet.home(node)) == ProcessState::Ours)
                .then(|| format!("{} pid {pid}", node.name))
        })
        .collect();
    if !running.is_empty() {
        return Err(CliError::DevnetRunning {
            dir: dir.to_path_buf(),
            running: running.join(", "),
        });
    }
    // A new base port moves every node; peer ids and data stay. The
    // configs then name the old ports: `up` rewrites them before the
    // nodes start (`update_configs`).
    if let Some(base_port) = args.base_port {
        let base_port = checked_base_port(base_port)?;
        for (index, node) in file.nodes.iter_mut().enumerate() {
            node.set_ports(base_port, index)?;
        }
        if base_port != file.base_port {
            file.version = DEVNET_FILE_VERSION_CONFIGS_STALE;
        }
        file.base_port = base_port;
    }
    check_ports_free(&file.nodes, file.base_port)?;

    // Keys the keyring lacks (or, with --replace-keys, holds otherwise)
    // are imported again from DIR/keys.
    let devnet_keys = devnet.keys();
    let mut keys = Vec::new();
    for account in &file.accounts {
        let name = KeyName::new(&account.name).map_err(|error| CliError::CorruptDevnetFile {
            path: devnet.file(),
            reason: format!("account name: {error}"),
        })?;
        let present = keyring
            .show(&name)
            .is_ok_and(|info| info.address.to_string() == account.address);
        if present {
            continue;
        }
        if !devnet_keys.path_of(&name).exists() {
            eprintln!(
                "warning: the key of {} ({}) is neither in the keyring {} nor in {}; that account cannot be used from this keyring",
                account.name,
                account.address,
                keyring.dir().display(),
                devnet_keys.dir().display()
            );
            continue;
        }
        keys.push((name.clone(), devnet_keys.keypair(&name, passphrase)?));
    }
    import_into_keyring(keyring, &keys, passphrase, args.replace_keys)?;
    for node in &mut file.nodes {
        node.pid = None;
    }
    devnet.write(&file)?;
    Ok((devnet, file))
}

/// Binds every port of `nodes` on 127.0.0.1 for a moment.
fn check_ports_free(nodes: &[DevnetNode], base_port: u16) -> Result<()> {
    for node in nodes {
        for (what, port) in node.ports() {
            if let Err(error) = TcpListener::bind(("127.0.0.1", port)) {
                return Err(CliError::DevnetPortTaken {
                    port,
                    what,
                    node: node.name.clone(),
                    reason: error.to_string(),
                    suggestion: suggest_base_port(base_port, nodes.len()),
                });
            }
        }
    }
    Ok(())
}

/// A base port whose range does not overlap the one starting at
/// `base_port` (for `nodes` nodes), rounded to a thousand.
fn suggest_base_port(base_port: u16, nodes: usize) -> u16 {
    let span = u32::try_from(nodes)
        .unwrap_or(u32::MAX)
        .saturating_mul(u32::from(DEVNET_PORTS_PER_NODE));
    let next = (u32::from(base_port) + span).div_ceil(1000) * 1000 + 1000;
    match u16::try_from(next.saturating_add(span)) {
        Ok(_) => u16::try_from(next).unwrap_or(DEFAULT_BASE_PORT),
        Err(_) => 20_000,
    }
}

// ---------------------------------------------------------------------------
// cairnd

/// The node binary: `explicit`, else `cairnd` next to this executable,
/// else on PATH.
pub(crate) fn find_cairnd(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        return Err(CliError::CairndNotFound {
            looked: format!("--cairnd {} (no such file)", path.display()),
        });
    }
    let mut looked = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        let candidate = dir.join(CAIRND);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
        looked.push(dir.display().to_string());
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(CAIRND);
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
    }
    looked.push("PATH".to_string());
    Err(CliError::CairndNotFound {
        looked: looked.join(" and on "),
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

/// Environment variables of this process that would change how `cairnd`
/// runs (`CAIRN_*`); the devnet configures its nodes by their
/// `config.toml` alone.
fn cairn_variables() -> Vec<std::ffi::OsString> {
    std::env::vars_os()
        .map(|(key, _)| key)
        .filter(|key| key.as_bytes().starts_with(b"CAIRN_"))
        .collect()
}

/// Runs `cairnd args...` to completion (within [`DEVNET_COMMAND_TIMEOUT`]);
/// returns its standard output.
pub(crate) async fn run_cairnd<S: AsRef<str>>(cairnd: &Path, args: &[S]) -> Result<String> {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let command_line = format!("{} {}", cairnd.display(), args.join(" "));
    let failed = |reason: String| CliError::CairndFailed {
        command: command_line.clone(),
        reason,
    };
    let mut command = tokio::process::Command::new(cairnd);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for key in cairn_variables() {
        command.env_remove(key);
    }
    let output = match tokio::time::timeout(DEVNET_COMMAND_TIMEOUT, command.output()).await {
        Err(_) => {
            return Err(failed(format!(
                "it did not finish within {} s",
                DEVNET_COMMAND_TIMEOUT.as_secs()
            )))
        }
        Ok(Err(error)) => return Err(failed(format!("it could not run: {error}"))),
        Ok(Ok(output)) => output,
    };
    let text = |bytes: &[u8]| {
        let kept = &bytes[..bytes.len().min(DEVNET_COMMAND_OUTPUT_BYTES_MAX)];
        String::from_utf8_lossy(kept).trim().to_string()
    };
    if !output.status.success() {
        let mut said = text(&output.stderr);
        if said.is_empty() {
            said = text(&output.stdout);
        }
        return Err(failed(format!("{}: {said}", output.status)));
    }
    Ok(text(&output.stdout))
}

/// A node process started (or found) by this command.
struct Running {
    name: String,
    pid: u32,
    home: PathBuf,
    log: PathBuf,
    /// The handle, when this process started it.
    child: Option<Child>,
    /// How it exited, once seen.
    exited: Option<String>,
}

impl Running {
    /// Whether the process still runs (reaping it if it is our child).
    fn is_running(&mut self) -> bool {
        if self.exited.is_some() {
            return false;
        }
        if let Some(child) = &mut self.child {
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.exited = Some(status.to_string());
                    return false;
                }
                Ok(None) => return true,
                Err(_) => {}
            }
        }
        if process_state(self.pid, &self.home) == ProcessState::Ours {
            return true;
        }
        self.exited = Some("exited".to_string());
        false
    }

    fn signal(&mut self, name: &str) -> Result<()> {
        if !self.is_running() {
            return Ok(());
        }
        if name == "KILL" {
            if let Some(child) = &mut self.child {
                return child.kill().map_err(|error| CliError::Process {
                    action: format!("kill node {} (pid {})", self.name, self.pid),
                    reason: error.to_string(),
                });
            }
        }
        send_signal(self.pid, name)
    }
}

/// Starts every node of `file`, recording each pid in `devnet.json` as it
/// starts. If one cannot start, those already started are stopped.
fn start_nodes(devnet: &DevnetDir, file: &mut DevnetFile, cairnd: &Path) -> Result<Vec<Running>> {
    let mut running: Vec<Running> = Vec::with_capacity(file.nodes.len());
    for index in 0..file.nodes.len() {
        match start_node(devnet, file, index, cairnd) {
            Ok(node) => {
                file.nodes[index].pid = Some(node.pid);
                running.push(node);
                devnet.write(file)?;
            }
            Err(error) => {
                for node in &mut running {
                    let _ = node.signal("KILL");
                    if let Some(child) = &mut node.child {
                        let _ = child.wait();
                    }
                }
                for node in &mut file.nodes {
                    node.pid = None;
                }
                devnet.write(file)?;
                return Err(error);
            }
        }
    }
    Ok(running)
}

fn start_node(
    devnet: &DevnetDir,
    file: &DevnetFile,
    index: usize,
    cairnd: &Path,
) -> Result<Running> {
    let node = &file.nodes[index];
    let home = devnet.home(node);
    let log_path = devnet.log(node);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(CliError::io("open the log", &log_path))?;
    let log_too = log
        .try_clone()
        .map_err(CliError::io("open the log", &log_path))?;
    let mut command = std::process::Command::new(cairnd);
    // Every setting comes from the home's config.toml (see
    // `update_configs`): no flag, and no CAIRN_* variable, overrides it.
    command.arg("--home").arg(&home).arg("start");
    for key in cairn_variables() {
        command.env_remove(key);
    }
    command
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_too)
        // Its own process group: Ctrl-C in the shell reaches `cairn`, which
        // stops the nodes in order, and never a detached devnet.
        .process_group(0);
    let child = command.spawn().map_err(|error| CliError::CairndFailed {
        command: format!("{} --home {} start ...", cairnd.display(), home.display()),
        reason: format!("it could not start: {error}"),
    })?;
    Ok(Running {
        name: node.name.clone(),
        pid: child.id(),
        home,
        log: log_path,
        child: Some(child),
        exited: None,
    })
}

// ---------------------------------------------------------------------------
// processes

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProcessState {
    /// A live `cairnd` of that home.
    Ours,
    /// Gone, a zombie, or the pid now belongs to another program.
    NotOurs,
}

/// Whether `pid` is a live process started with `--home home`. On Linux
/// this reads `/proc` (a zombie counts as gone, a reused pid as not ours);
/// elsewhere `kill -0` tells whether the pid exists.
fn process_state(pid: u32, home: &Path) -> ProcessState {
    if Path::new("/proc/self/stat").exists() {
        let dir = PathBuf::from(format!("/proc/{pid}"));
        let Ok(stat) = fs::read_to_string(dir.join("stat")) else {
            return ProcessState::NotOurs;
        };
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        if matches!(state, None | Some("Z") | Some("X") | Some("x")) {
            return ProcessState::NotOurs;
        }
        let Ok(command_line) = fs::read(dir.join("cmdline")) else {
            return ProcessState::NotOurs;
        };
        let args: Vec<&[u8]> = command_line.split(|byte| *byte == 0).collect();
        let home = home.as_os_str().as_bytes();
        if args
            .windows(2)
            .any(|pair| pair[0] == b"--home" && pair[1] == home)
        {
            return ProcessState::Ours;
        }
        return ProcessState::NotOurs;
    }
    let alive = std::process::Command::new("kill")
        .arg("-0")
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if alive {
        ProcessState::Ours
    } else {
        ProcessState::NotOurs
    }
}

/// Sends `SIG<name>` to `pid` with the system's `kill`. A process that is
/// already gone is not an error.
fn send_signal(pid: u32, name: &str) -> Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|error| CliError::Process {
            action: format!("run `kill -{name} {pid}`"),
            reason: format!("{error}; is `kill` (procps) installed and on PATH?"),
        })?;
    // Non-zero: the process exited in the meantime.
    let _ = status;
    Ok(())
}

/// How stopping one node went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopOutcome {
    /// It was not running.
    NotRunning,
    /// It exited after SIGTERM.
    Stopped,
    /// It needed SIGKILL.
    Killed,
    /// It still runs after SIGKILL.
    StillRunning,
}

/// SIGTERM to every node, then SIGKILL to those still running after
/// [`DEVNET_STOP_TIMEOUT`].
async fn stop_nodes(running: &mut [Running]) -> Vec<StopOutcome> {
    let mut outcomes = vec![StopOutcome::NotRunning; running.len()];
    for (node, outcome) in running.iter_mut().zip(&mut outcomes) {
        if node.is_running() {
            *outcome = match node.signal("TERM") {
                Ok(()) => StopOutcome::Stopped,
                Err(error) => {
                    eprintln!("warning: {error}");
                    StopOutcome::StillRunning
                }
            };
        }
    }
    if wait_for_exit(running, DEVNET_STOP_TIMEOUT).await {
        return outcomes;
    }
    for (node, outcome) in running.iter_mut().zip(&mut outcomes) {
        if node.is_running() {
            if let Err(error) = node.signal("KILL") {
                eprintln!("warning: {error}");
            }
            *outcome = StopOutcome::Killed;
        }
    }
    wait_for_exit(running, DEVNET_KILL_TIMEOUT).await;
    for (node, outcome) in running.iter_mut().zip(&mut outcomes) {
        if node.is_running() {
            *outcome = StopOutcome::StillRunning;
        }
    }
    outcomes
}

/// Waits until no node runs; false if some still run after `timeout`.
async fn wait_for_exit(running: &mut [Running], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let mut any = false;
        for node in running.iter_mut() {
            any |= node.is_running();
        }
        if !any {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(DEVNET_STOP_POLL_INTERVAL).await;
    }
}

/// Clears the pids of stopped nodes in `devnet.json`.
fn record_stopped(
    devnet: &DevnetDir,
    file: &mut DevnetFile,
    running: &[Running],
    outcomes: &[StopOutcome],
) -> Result<()> {
    for (node, outcome) in running.iter().zip(outcomes) {
        if *outcome == StopOutcome::StillRunning {
            continue;
        }
        if let Some(recorded) = file.nodes.iter_mut().find(|n| n.name == node.name) {
            recorded.pid = None;
        }
    }
    devnet.write(file)
}

fn report_stops(out: &mut dyn Write, running: &[Running], outcomes: &[StopOutcome]) -> Result<()> {
    for (node, outcome) in running.iter().zip(outcomes) {
        let what = match outcome {
            StopOutcome::NotRunning => "was not running".to_string(),
            StopOutcome::Stopped => "stopped".to_string(),
            StopOutcome::Killed => format!(
                "did not stop within {} s of SIGTERM; killed (SIGKILL)",
                DEVNET_STOP_TIMEOUT.as_secs()
            ),
            StopOutcome::StillRunning => "is STILL RUNNING, even after SIGKILL".to_string(),
        };
        write_line(out, &format!("{} (pid {}): {what}", node.name, node.pid))?;
    }
    Ok(())
}

fn check_all_stopped(running: &[Running], outcomes: &[StopOutcome]) -> Result<()> {
    let stuck: Vec<String> = running
        .iter()
        .zip(outcomes)
        .filter(|(_, outcome)| **outcome == StopOutcome::StillRunning)
        .map(|(node, _)| format!("{} (pid {})", node.name, node.pid))
        .collect();
    if stuck.is_empty() {
        return Ok(());
    }
    Err(CliError::Process {
        action: format!("stop {}", stuck.join(", ")),
        reason: "they still run after SIGKILL; look at them with `ps`, and run `cairn devnet down` again".to_string(),
    })
}

/// The last [`DEVNET_LOG_TAIL_LINES`] lines of a log, indented.
fn log_tail(path: &Path) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let length = file.metadata()?.len();
        file.seek(SeekFrom::Start(
            length.saturating_sub(DEVNET_LOG_TAIL_BYTES_MAX),
        ))?;
        let mut bytes = Vec::new();
        file.take(DEVNET_LOG_TAIL_BYTES_MAX)
            .read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(DEVNET_LOG_TAIL_LINES);
            if lines.is_empty() {
                return "  | (the log is empty)".to_string();
            }
            lines[start..]
                .iter()
                .map(|line| format!("  | {line}"))
                .collect::<Vec<_>>()
                .join("\n")
        }
        Err(error) => format!("  (cannot read it: {error})"),
    }
}

// ---------------------------------------------------------------------------
// signals, readiness, the foreground status line

/// Ctrl-C (SIGINT), SIGTERM and SIGHUP, which all stop a foreground
/// devnet (and a starting one). They are listened for from the moment the
/// first node starts, so none of them can kill `cairn` halfway.
struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl StopSignals {
    fn new() -> Result<StopSignals> {
        let listen = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|error| CliError::Process {
                action: format!("listen for {name}"),
                reason: error.to_string(),
            })
        };
        Ok(StopSignals {
            interrupt: listen(SignalKind::interrupt(), "Ctrl-C (SIGINT)")?,
            terminate: listen(SignalKind::terminate(), "SIGTERM")?,
            hangup: listen(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    /// Waits for one of them; names it.
    async fn received(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "Ctrl-C",
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.hangup.recv() => "SIGHUP",
        }
    }
}

enum Ready {
    /// Every node answers; the height of node 0.
    Height(u64),
    /// A signal came first.
    Interrupted(&'static str),
}

/// Short form of an RPC error for a status line.
fn short_reason(error: &CliError) -> String {
    match error {
        CliError::NodeUnreachable { reason, .. } => reason.clone(),
        CliError::NodeTimeout { seconds, .. } => format!("no answer within {seconds} s"),
        other => other.to_string(),
    }
}

/// `GET /status` of every node at once, each within
/// [`DEVNET_STATUS_REQUEST_TIMEOUT`].
async fn statuses(clients: &[NodeClient]) -> Vec<Result<Status>> {
    futures::future::join_all(clients.iter().map(|client| async move {
        match tokio::time::timeout(DEVNET_STATUS_REQUEST_TIMEOUT, client.status()).await {
            Ok(Ok((status, _))) => Ok(status),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(CliError::NodeTimeout {
                url: client.url().to_string(),
                what: "GET /status".to_string(),
                seconds: DEVNET_STATUS_REQUEST_TIMEOUT.as_secs(),
            }),
        }
    }))
    .await
}

fn clients(file: &DevnetFile) -> Result<Vec<NodeClient>> {
    file.nodes
        .iter()
        .map(|node| NodeClient::new(&node.rpc))
        .collect()
}

/// Waits until every node answers `GET /status` with height 1 or more and
/// node 0 has committed a block since it started.
async fn wait_until_ready(
    devnet: &DevnetDir,
    file: &DevnetFile,
    running: &mut [Running],
    signals: &mut StopSignals,
) -> Result<Ready> {
    let clients = clients(file)?;
    let deadline = Instant::now() + DEVNET_READY_TIMEOUT;
    let mut first_height: Option<u64> = None;
    let missing = loop {
        for node in running.iter_mut() {
            if !node.is_running() {
                return Err(CliError::DevnetNodeExited {
                    name: node.name.clone(),
                    pid: node.pid,
                    status: node.exited.clone().unwrap_or_default(),
                    log: node.log.clone(),
                    tail: log_tail(&node.log),
                });
            }
        }
        let answers = statuses(&clients).await;
        let mut waiting_for = Vec::new();
        for (node, answer) in file.nodes.iter().zip(&answers) {
            match answer {
                Ok(status) if status.latest_height >= 1 => {}
                Ok(status) => waiting_for.push(format!(
                    "{} is at height {}",
                    node.name, status.latest_height
                )),
                Err(error) => waiting_for.push(format!(
                    "{} does not answer at {} ({})",
                    node.name,
                    node.rpc,
                    short_reason(error)
                )),
            }
        }
        if let Some(Ok(status)) = answers.first() {
            let first = *first_height.get_or_insert(status.latest_height);
            if status.latest_height <= first && first >= 1 {
                waiting_for.push(format!(
                    "{} has not committed a block since it started (height {first})",
                    file.nodes.first().map_or("v0", |node| node.name.as_str())
                ));
            }
        }
        if waiting_for.is_empty() {
            let height = match answers.first() {
                Some(Ok(status)) => status.latest_height,
                _ => 0,
            };
            return Ok(Ready::Height(height));
        }
        if Instant::now() >= deadline {
            break waiting_for.join("; ");
        }
        tokio::select! {
            signal = signals.received() => return Ok(Ready::Interrupted(signal)),
            () = tokio::time::sleep(DEVNET_POLL_INTERVAL) => {}
        }
    };
    Err(CliError::DevnetNotReady {
        seconds: DEVNET_READY_TIMEOUT.as_secs(),
        reason: missing,
        logs: file
            .nodes
            .iter()
            .map(|node| devnet.log(node).display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

fn print_ready(
    out: &mut dyn Write,
    devnet: &DevnetDir,
    file: &DevnetFile,
    keyring_args: &KeyringArgs,
    keyring: &Keyring,
    height: u64,
    detach: bool,
) -> Result<()> {
    let validators = file
        .nodes
        .iter()
        .filter(|node| node.role == Role::Validator)
        .count();
    write_line(
        out,
        &format!(
            "devnet {} is up at height {height}: {validators} validators, {} full nodes, in {}",
            file.chain_id,
            file.nodes.len() - validators,
            devnet.root.display()
        ),
    )?;
    let name_width = file
        .nodes
        .iter()
        .map(|node| node.name.len())
        .max()
        .unwrap_or(0);
    for node in &file.nodes {
        write_line(
            out,
            &format!(
                "  {:<name_width$}  {:<9}  pid {:<7}  rpc {}  p2p {}",
                node.name,
                node.role.to_string(),
                node.pid.map_or("-".to_string(), |pid| pid.to_string()),
                node.rpc,
                node.p2p
            ),
        )?;
    }
    if !file.accounts.is_empty() {
        write_line(
            out,
            &format!(
                "funded accounts ({} each; keys in {} and in the keyring {}):",
                file.accounts.first().map_or(0, |account| account.balance),
                devnet.root.join(KEYS_DIR).display(),
                keyring.dir().display()
            ),
        )?;
        const SHOWN: usize = 10;
        let name_width = file
            .accounts
            .iter()
            .take(SHOWN)
            .map(|account| account.name.len())
            .max()
            .unwrap_or(0);
        for account in file.accounts.iter().take(SHOWN) {
            write_line(
                out,
                &format!("  {:<name_width$}  {}", account.name, account.address),
            )?;
        }
        if file.accounts.len() > SHOWN {
            write_line(
                out,
                &format!(
                    "  ... and {} more (`cairn keys list`)",
                    file.accounts.len() - SHOWN
                ),
            )?;
        }
        if let (Some(from), Some(node)) = (file.accounts.first(), file.nodes.first()) {
            let to = file.accounts.get(1).unwrap_or(from);
            let mut example = format!(
                "cairn tx send --from {} --to {} --amount 100 --node {} --wait",
                from.name, to.name, node.rpc
            );
            if let Some(dir) = &keyring_args.keyring_dir {
                example.push_str(&format!(
                    " --keyring-dir {}",
                    shell_quote(&dir.display().to_string())
                ));
            }
            write_line(out, "send a transfer:")?;
            write_line(out, &format!("  {example}"))?;
        }
    }
    write_line(
        out,
        &format!(
            "logs: {}",
            devnet.root.join("<node>").join(LOG_FILE).display()
        ),
    )?;
    if let Some(node) = file.nodes.first() {
        // Run from the devnet's parent with the default --dir, `cairn`
        // finds the node by itself; elsewhere the variable says where.
        write_line(
            out,
            "to point cairn at this devnet from any directory (the default when run next to ./devnet):",
        )?;
        write_line(out, &format!("  export CAIRN_NODE={}", node.rpc))?;
    }
    let dir = shell_quote(&devnet.root.display().to_string());
    if detach {
        write_line(
            out,
            &format!(
                "the nodes run in the background; see them with `cairn devnet status --dir {dir}`, stop them with `cairn devnet down --dir {dir}`"
            ),
        )
    } else {
        write_line(out, "press Ctrl-C to stop the devnet")
    }
}

/// Shows a status line every second until a signal; returns its name.
async fn run_foreground(
    out: &mut dyn Write,
    devnet: &DevnetDir,
    file: &DevnetFile,
    running: &mut [Running],
    signals: &mut StopSignals,
) -> Result<&'static str> {
    let clients = clients(file)?;
    let terminal = std::io::stdout().is_terminal();
    let mut tick = tokio::time::interval(DEVNET_POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_height: Option<u64> = None;
    let mut last_time = Instant::now();
    let mut last_logged: Option<Instant> = None;
    let mut reported_exits = vec![false; running.len()];
    loop {
        tokio::select! {
            signal = signals.received() => {
                if terminal {
                    writeln!(out).map_err(CliError::Output)?;
                }
                return Ok(signal);
            }
            _ = tick.tick() => {}
        }
        for (index, node) in running.iter_mut().enumerate() {
            if !node.is_running() && !reported_exits[index] {
                reported_exits[index] = true;
                if terminal {
                    writeln!(out).map_err(CliError::Output)?;
                }
                write_line(
                    out,
                    &format!(
                        "node {} (pid {}) exited ({}); its log {} ends with:\n{}",
                        node.name,
                        node.pid,
                        node.exited.clone().unwrap_or_default(),
                        devnet.log(&file.nodes[index]).display(),
                        log_tail(&node.log)
                    ),
                )?;
            }
        }
        if reported_exits.iter().all(|exited| *exited) {
            let node = &running[0];
            return Err(CliError::DevnetNodeExited {
                name: format!("{} (and every other node)", node.name),
                pid: node.pid,
                status: node.exited.clone().unwrap_or_default(),
                log: node.log.clone(),
                tail: log_tail(&node.log),
            });
        }
        let answers = statuses(&clients).await;
        let height = answers
            .iter()
            .filter_map(|answer| answer.as_ref().ok())
            .map(|status| status.latest_height)
            .max();
        let now = Instant::now();
        let rate = match (height, last_height, clients.first()) {
            (Some(height), Some(previous), Some(client)) if height > previous => {
                let elapsed = now.duration_since(last_time).as_secs_f64();
                transactions_between(client, previous, height)
                    .await
                    .filter(|_| elapsed > 0.0)
                    .map(|count| format!("{:.1} tx/s", count as f64 / elapsed))
            }
            (Some(_), Some(_), _) => Some("0.0 tx/s".to_string()),
            _ => None,
        };
        if height.is_some() {
            last_height = height;
            last_time = now;
        }
        let peers: Vec<String> = file
            .nodes
            .iter()
            .zip(&answers)
            .map(|(node, answer)| match answer {
                Ok(status) => format!("{}:{}", node.name, status.peers),
                Err(_) => format!("{}:-", node.name),
            })
            .collect();
        let up = answers.iter().filter(|answer| answer.is_ok()).count();
        let line = format!(
            "height {} | {} | {up}/{} nodes answer | peers {}",
            height.map_or("-".to_string(), |height| height.to_string()),
            rate.unwrap_or_else(|| "- tx/s".to_string()),
            answers.len(),
            peers.join(" ")
        );
        if terminal {
            write!(out, "\r\x1b[2K{line}")
                .and_then(|()| out.flush())
                .map_err(CliError::Output)?;
        } else if last_logged
            .is_none_or(|logged| now.duration_since(logged) >= DEVNET_STATUS_LOG_INTERVAL)
        {
            last_logged = Some(now);
            write_line(out, &line)?;
        }
    }
}

/// Transactions in the blocks after `from` up to `to` (from node
/// `client`), or `None` if there are more than [`DEVNET_STATUS_BLOCKS_MAX`]
/// blocks or one cannot be read.
async fn transactions_between(client: &NodeClient, from: u64, to: u64) -> Option<u64> {
    if to.saturating_sub(from) > DEVNET_STATUS_BLOCKS_MAX {
        return None;
    }
    let heights = (from + 1)..=to;
    let blocks = futures::future::join_all(heights.map(|height| async move {
        tokio::time::timeout(
            DEVNET_STATUS_REQUEST_TIMEOUT,
            client.block(BlockSelector::Height(height)),
        )
        .await
    }))
    .await;
    let mut count: u64 = 0;
    for block in blocks {
        let (block, _) = block.ok()?.ok()?;
        count = count.saturating_add(u64::try_from(block.transactions.len()).ok()?);
    }
    Some(count)
}

// ---------------------------------------------------------------------------
// down, status

async fn down(args: &DevnetDirArgs, out: &mut dyn Write) -> Result<()> {
    let (devnet, mut file) = DevnetDir::open(&args.dir)?;
    let mut running: Vec<Running> = file
        .nodes
        .iter()
        .filter_map(|node| {
            Some(Running {
                name: node.name.clone(),
                pid: node.pid?,
                home: devnet.home(node),
                log: devnet.log(node),
                child: None,
                exited: None,
            })
        })
        .collect();
    let dir = shell_quote(&args.dir.display().to_string());
    if running.is_empty() {
        return write_line(
            out,
            &format!(
                "no node of devnet {} in {} is running; start it with `cairn devnet up --dir {dir}`",
                file.chain_id,
                devnet.root.display()
            ),
        );
    }
    let outcomes = stop_nodes(&mut running).await;
    record_stopped(&devnet, &mut file, &running, &outcomes)?;
    report_stops(out, &running, &outcomes)?;
    check_all_stopped(&running, &outcomes)?;
    let stopped = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, StopOutcome::Stopped | StopOutcome::Killed))
        .count();
    write_line(
        out,
        &format!(
            "stopped {stopped} nodes of devnet {}; resume it with `cairn devnet up --dir {dir}`",
            file.chain_id
        ),
    )
}

/// The index in `file.nodes` of the node named `name`, or an error that
/// lists the names.
fn find_node(file: &DevnetFile, dir: &Path, name: &str) -> Result<usize> {
    file.nodes
        .iter()
        .position(|node| node.name == name)
        .ok_or_else(|| CliError::NoSuchDevnetNode {
            reason: format!(
                "the devnet in {} has no node {name:?}; its nodes are {}",
                dir.display(),
                file.nodes
                    .iter()
                    .map(|node| node.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}

/// The recorded process of node `index`, if it still runs.
fn running_node(devnet: &DevnetDir, file: &DevnetFile, index: usize) -> Option<Running> {
    let node = &file.nodes[index];
    let pid = node.pid?;
    (process_state(pid, &devnet.home(node)) == ProcessState::Ours).then(|| Running {
        name: node.name.clone(),
        pid,
        home: devnet.home(node),
        log: devnet.log(node),
        child: None,
        exited: None,
    })
}

/// `cairn devnet stop NODE`.
async fn stop_one(args: &DevnetNodeArgs, out: &mut dyn Write) -> Result<()> {
    let (devnet, mut file) = DevnetDir::open(&args.dir.dir)?;
    let index = find_node(&file, &args.dir.dir, &args.node)?;
    let Some(node) = running_node(&devnet, &file, index) else {
        if file.nodes[index].pid.take().is_some() {
            devnet.write(&file)?;
        }
        return write_line(out, &format!("{} was not running", args.node));
    };
    let mut running = vec![node];
    let outcomes = stop_nodes(&mut running).await;
    record_stopped(&devnet, &mut file, &running, &outcomes)?;
    report_stops(out, &running, &outcomes)?;
    check_all_stopped(&running, &outcomes)
}

/// `cairn devnet start NODE`: starts it as `up` does and waits until its
/// RPC answers.
async fn start_one(args: &DevnetNodeArgs, out: &mut dyn Write) -> Result<()> {
    let (devnet, mut file) = DevnetDir::open(&args.dir.dir)?;
    let index = find_node(&file, &args.dir.dir, &args.node)?;
    let dir = shell_quote(&args.dir.dir.display().to_string());
    if let Some(node) = running_node(&devnet, &file, index) {
        return Err(CliError::DevnetNodeRunning {
            name: node.name,
            pid: node.pid,
            dir,
        });
    }
    let cairnd = find_cairnd(args.cairnd.as_deref())?;
    check_ports_free(&file.nodes[index..=index], file.base_port)?;
    update_configs(&devnet, &mut file, &cairnd, out).await?;
    let mut node = start_node(&devnet, &file, index, &cairnd)?;
    file.nodes[index].pid = Some(node.pid);
    devnet.write(&file)?;
    let client = NodeClient::new(&file.nodes[index].rpc)?;
    let deadline = Instant::now() + DEVNET_READY_TIMEOUT;
    loop {
        if !node.is_running() {
            file.nodes[index].pid = None;
            devnet.write(&file)?;
            return Err(CliError::DevnetNodeExited {
                name: node.name.clone(),
                pid: node.pid,
                status: node.exited.clone().unwrap_or_default(),
                log: node.log.clone(),
                tail: log_tail(&node.log),
            });
        }
        let answer = tokio::time::timeout(DEVNET_STATUS_REQUEST_TIMEOUT, client.status()).await;
        if let Ok(Ok((status, _))) = answer {
            // Dropping the `Child` leaves the node running in the background.
            return write_line(
                out,
                &format!(
                    "started {} (pid {}): rpc {}  p2p {}  height {}; stop it with `cairn devnet stop {} --dir {dir}`",
                    node.name,
                    node.pid,
                    file.nodes[index].rpc,
                    file.nodes[index].p2p,
                    status.latest_height,
                    node.name
                ),
            );
        }
        if Instant::now() >= deadline {
            let mut running = vec![node];
            let outcomes = stop_nodes(&mut running).await;
            record_stopped(&devnet, &mut file, &running, &outcomes)?;
            return Err(CliError::DevnetNotReady {
                seconds: DEVNET_READY_TIMEOUT.as_secs(),
                reason: format!("node {} did not answer on {}", args.node, client.url()),
                logs: devnet.log(&file.nodes[index]).display().to_string(),
            });
        }
        tokio::time::sleep(DEVNET_POLL_INTERVAL).await;
    }
}

/// One node in `cairn devnet status --json`.
#[derive(Serialize)]
struct NodeStatus {
    name: String,
    role: Role,
    /// The recorded pid (set while the devnet is up, even if the process
    /// died since).
    pid: Option<u32>,
    running: bool,
    height: Option<u64>,
    peers: Option<u64>,
    catching_up: Option<bool>,
    rpc: String,
    p2p: String,
    log: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `cairn devnet status --json`.
#[derive(Serialize)]
struct DevnetStatus {
    chain_id: String,
    dir: PathBuf,
    nodes: Vec<NodeStatus>,
}

async fn status(args: &DevnetStatusArgs, out: &mut dyn Write) -> Result<()> {
    let (devnet, file) = DevnetDir::open(&args.dir.dir)?;
    let clients = clients(&file)?;
    let answers = statuses(&clients).await;
    let nodes: Vec<NodeStatus> = file
        .nodes
        .iter()
        .zip(answers)
        .map(|(node, answer)| {
            let running = node
                .pid
                .is_some_and(|pid| process_state(pid, &devnet.home(node)) == ProcessState::Ours);
            let (status, error) = match answer {
                Ok(status) => (Some(status), None),
                Err(_) if !running => (None, None),
                Err(error) => (None, Some(short_reason(&error))),
            };
            NodeStatus {
                name: node.name.clone(),
                role: node.role,
                pid: node.pid,
                running,
                height: status.as_ref().map(|status| status.latest_height),
                peers: status.as_ref().map(|status| status.peers),
                catching_up: status.as_ref().map(|status| status.catching_up),
                rpc: node.rpc.clone(),
                p2p: node.p2p.clone(),
                log: devnet.log(node),
                error,
            }
        })
        .collect();
    let report = DevnetStatus {
        chain_id: file.chain_id.clone(),
        dir: devnet.root.clone(),
        nodes,
    };
    if args.json {
        return write_json(out, &report);
    }
    let running = report.nodes.iter().filter(|node| node.running).count();
    write_line(
        out,
        &format!(
            "devnet {} in {}: {running} of {} nodes running",
            report.chain_id,
            report.dir.display(),
            report.nodes.len()
        ),
    )?;
    let p2p_width = report
        .nodes
        .iter()
        .map(|node| node.p2p.len())
        .max()
        .unwrap_or(0);
    write_line(
        out,
        &format!(
            "{:<4}  {:<9}  {:>7}  {:<7}  {:>7}  {:>5}  {:<24}  {:<p2p_width$}  NOTE",
            "NAME", "ROLE", "PID", "PROCESS", "HEIGHT", "PEERS", "RPC", "P2P"
        ),
    )?;
    let dash = || "-".to_string();
    for node in &report.nodes {
        let note = match (&node.error, node.catching_up) {
            _ if node.pid.is_some() && !node.running => {
                format!("exited unexpectedly; see {}", node.log.display())
            }
            (Some(error), _) => format!("RPC: {error}"),
            (None, Some(true)) => "catching up".to_string(),
            _ => String::new(),
        };
        write_line(
            out,
            format!(
                "{:<4}  {:<9}  {:>7}  {:<7}  {:>7}  {:>5}  {:<24}  {:<p2p_width$}  {note}",
                node.name,
                node.role.to_string(),
                node.pid
                    .filter(|_| node.running)
                    .map_or_else(dash, |pid| pid.to_string()),
                match (node.running, node.pid) {
                    (true, _) => "running",
                    (false, Some(_)) => "exited",
                    (false, None) => "stopped",
                },
                node.height.map_or_else(dash, |height| height.to_string()),
                node.peers.map_or_else(dash, |peers| peers.to_string()),
                node.rpc,
                node.p2p,
            )
            .trim_end(),
        )?;
    }
    if running == 0 {
        write_line(
            out,
            &format!(
                "start it with `cairn devnet up --dir {}`",
                shell_quote(&args.dir.dir.display().to_string())
            ),
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// small helpers

pub(crate) fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `text` quoted for a POSIX shell when it needs it.
fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_follow_the_layout() {
        assert_eq!(node_port(26600, 0, P2P_PORT_OFFSET).unwrap(), 26600);
        assert_eq!(node_port(26600, 3, RPC_PORT_OFFSET).unwrap(), 26631);
        assert_eq!(node_port(26600, 3, METRICS_PORT_OFFSET).unwrap(), 26632);
        assert!(node_port(65530, 1, P2P_PORT_OFFSET).is_err());
    }

    #[test]
    fn node_names_round_trip() {
        assert_eq!(node_name(Role::Validator, "v12"), Some(12));
        assert_eq!(node_name(Role::Full, "f0"), Some(0));
        for bad in ["v", "f1", "v-1", "v1/..", "../v1", "v1234"] {
            assert_eq!(node_name(Role::Validator, bad), None, "{bad}");
        }
    }

    #[test]
    fn account_names_say_which_devnet() {
        assert_eq!(
            account_name(DEFAULT_CHAIN_ID, 0).unwrap().as_str(),
            "devnet-acct0"
        );
        assert_eq!(
            account_name("other", 7).unwrap().as_str(),
            "devnet-other-acct7"
        );
        let longest = "a".repeat(cairn_types::limits::CHAIN_ID_BYTES_MAX);
        account_name(&longest, DEVNET_ACCOUNTS_MAX - 1).unwrap();
    }

    #[test]
    fn suggested_base_ports_avoid_the_range() {
        let suggestion = suggest_base_port(26600, 4);
        assert!(
            suggestion >= 26640 && suggestion % 1000 == 0,
            "{suggestion}"
        );
        assert_eq!(suggest_base_port(65000, 64), 20_000);
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("/tmp/dev-net"), "/tmp/dev-net");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
