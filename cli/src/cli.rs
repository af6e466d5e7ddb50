//! The command line of `cairn`, as clap definitions. Each subcommand has
//! its module under [`crate::commands`]; `bench` slots into [`Command`]
//! the same way.

use std::{path::PathBuf, time::Duration};

use cairn_types::{Address, Hash};
use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;

use crate::{
    duration::parse_duration,
    error::{CliError, Result},
    keyfile::Passphrase,
    keyring::{KeyName, Keyring},
    rpc::{BlockSelector, NodeClient, DEFAULT_NODE_URL},
};

/// Environment variable holding a passphrase (an alternative to
/// `--passphrase-file`).
pub const PASSPHRASE_ENV: &str = "CAIRN_PASSPHRASE";

/// How `cairn` picks its node, prints JSON and finds its keyring, shown under `--help`.
const AFTER_HELP: &str = "\
The node: commands that talk to a node use --node URL, else the environment
variable CAIRN_NODE, else the first running node of the devnet in ./devnet
(from ./devnet/devnet.json, e.g. http://127.0.0.1:26601 for node v0), else
http://127.0.0.1:26657 (`cairnd start --dev`). `cairn devnet up` prints the
`export CAIRN_NODE=...` line for its devnet.

JSON: with --json a command prints JSON on standard output, and so does a
failure: {\"error\": {\"code\": ..., \"message\": ...}} on standard output
(nothing on standard error) with exit code 1, or 2 for a command line that
does not parse.

The keyring: see `cairn keys --help`.";

/// Where the keyring is, shown under `cairn keys --help`.
const KEYRING_HELP: &str = "\
The keyring: --keyring-dir DIR, else the environment variable
CAIRN_KEYRING_DIR, else $XDG_DATA_HOME/cairn/keys when XDG_DATA_HOME is set,
else ~/.cairn-keys. It is kept apart from the node home ~/.cairn, so deleting
or resetting a node home never deletes keys. A keyring in the old default
~/.cairn/keys is still used while the new directory does not exist (with a
note saying how to move it).

On a terminal, `keys new` and `keys import` ask for a passphrase to encrypt
the key (--unencrypted stores it in the clear), commands that open an
encrypted key ask for its passphrase, and `keys delete` asks y/N (--yes
skips the question; without a terminal it is required).";

/// `cairn`: keys, transfers and queries for a Cairn ledger.
#[derive(Debug, Parser)]
#[command(
    name = "cairn",
    version,
    about,
    propagate_version = true,
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Whether the command asked for JSON output (`--json`): then an error
    /// is printed as JSON on standard output too.
    pub fn json(&self) -> bool {
        match &self.command {
            Command::Keys(command) => match command {
                KeysCommand::New { json, .. }
                | KeysCommand::List { json, .. }
                | KeysCommand::Show { json, .. }
                | KeysCommand::Import { json, .. }
                | KeysCommand::ImportDev { json, .. } => *json,
                _ => false,
            },
            Command::Tx(TxCommand::Send(args)) => args.json,
            Command::Tx(TxCommand::Replace(args)) => args.json,
            Command::Validator(
                ValidatorCommand::Bond { common, .. }
                | ValidatorCommand::Unbond { common, .. }
                | ValidatorCommand::Unjail { common }
                | ValidatorCommand::RotateKey { common, .. },
            ) => common.json,
            Command::Query(args) => args.json,
            Command::Light(LightCommand::Init(args)) => args.json,
            Command::Light(LightCommand::Show(args)) => args.json,
            Command::Devnet(DevnetCommand::Status(args)) => args.json,
            Command::Devnet(_) => false,
            Command::Bench(args) => args.json,
            Command::Completions(_) => false,
        }
    }
}

/// The subcommands of `cairn`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage the keys in the keyring.
    #[command(subcommand, after_help = KEYRING_HELP)]
    Keys(KeysCommand),
    /// Make transactions.
    #[command(subcommand)]
    Tx(TxCommand),
    /// Stake: bond to a validator key, unbond, unjail, rotate the key.
    #[command(subcommand)]
    Validator(ValidatorCommand),
    /// Read the chain from a node.
    Query(QueryArgs),
    /// The light client's trusted state (`cairn query ... --verify`).
    #[command(subcommand)]
    Light(LightCommand),
    /// Run a local devnet: several cairnd nodes on this machine.
    #[command(subcommand)]
    Devnet(DevnetCommand),
    /// Load a running chain with pre-signed transfers and measure committed
    /// throughput and submit-to-commit latency.
    Bench(crate::commands::bench::BenchArgs),
    /// Print a shell completion script (e.g. `cairn completions bash > /etc/bash_completion.d/cairn`).
    Completions(CompletionsArgs),
}

/// Where the keyring is, and the passphrase of encrypted keys.
#[derive(Debug, Clone, Args)]
pub struct KeyringArgs {
    /// The keyring directory [default: $XDG_DATA_HOME/cairn/keys if set,
    /// else ~/.cairn-keys; the old ~/.cairn/keys while the new one does not
    /// exist].
    #[arg(long, value_name = "DIR", env = "CAIRN_KEYRING_DIR")]
    pub keyring_dir: Option<PathBuf>,
    /// A file holding the passphrase that encrypts keys at rest (one line).
    /// The environment variable CAIRN_PASSPHRASE is the alternative; a
    /// passphrase is never taken as a flag value.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

impl KeyringArgs {
    /// The keyring these arguments name.
    pub fn keyring(&self) -> Result<Keyring> {
        match &self.keyring_dir {
            Some(dir) => Ok(Keyring::new(dir)),
            None => Keyring::default_dir().map(Keyring::new),
        }
    }

    /// The passphrase that encrypts a new key `name`: none with
    /// `--unencrypted`; else `--passphrase-file` or `CAIRN_PASSPHRASE`;
    /// else, when standard input is a terminal, one typed twice; else none
    /// (a script that gives no passphrase stores keys unencrypted).
    pub fn new_key_passphrase(
        &self,
        name: &KeyName,
        unencrypted: bool,
    ) -> Result<Option<Passphrase>> {
        if unencrypted {
            return Ok(None);
        }
        if let Some(passphrase) = self.passphrase()? {
            return Ok(Some(passphrase));
        }
        if crate::prompt::stdin_is_terminal() {
            return crate::prompt::new_passphrase(name).map(Some);
        }
        Ok(None)
    }

    /// Opens the key `name` of `keyring`: with the passphrase of
    /// [`KeyringArgs::passphrase`], or, for an encrypted key when none is
    /// given and standard input is a terminal, one typed at a prompt.
    pub fn open_key(&self, keyring: &Keyring, name: &KeyName) -> Result<cairn_types::Keypair> {
        let passphrase = self.passphrase()?;
        if passphrase.is_none()
            && crate::prompt::stdin_is_terminal()
            && keyring.show(name)?.encrypted
        {
            let typed = crate::prompt::passphrase(&format!("passphrase of key {name}: "))?;
            return keyring.keypair(name, Some(&typed));
        }
        keyring.keypair(name, passphrase.as_ref())
    }

    /// The passphrase from `--passphrase-file`, else from
    /// `CAIRN_PASSPHRASE` (empty means unset), else none.
    pub fn passphrase(&self) -> Result<Option<Passphrase>> {
        if let Some(path) = &self.passphrase_file {
            return Passphrase::from_file(path).map(Some);
        }
        match std::env::var_os(PASSPHRASE_ENV) {
            Some(value) if !value.is_empty() => {
                use std::os::unix::ffi::OsStringExt;
                Passphrase::new(zeroize::Zeroizing::new(value.into_vec()), PASSPHRASE_ENV).map(Some)
            }
            _ => Ok(None),
        }
    }
}

/// Which node to talk to.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// The node's RPC URL [default: the first running node of the devnet
    /// in ./devnet (read from ./devnet/devnet.json), else
    /// http://127.0.0.1:26657, where `cairnd start --dev` listens].
    #[arg(long, value_name = "URL", env = "CAIRN_NODE", global = true)]
    pub node: Option<String>,
}

impl NodeArgs {
    /// The node's URL: `--node` or `CAIRN_NODE`, else the first running
    /// node of the devnet in [`DEFAULT_DEVNET_DIR`], else
    /// [`DEFAULT_NODE_URL`].
    pub fn url(&self) -> String {
        if let Some(url) = &self.node {
            return url.clone();
        }
        crate::commands::devnet::running_node_url(std::path::Path::new(DEFAULT_DEVNET_DIR))
            .unwrap_or_else(|| DEFAULT_NODE_URL.to_string())
    }

    /// A client of that node.
    pub fn client(&self) -> Result<NodeClient> {
        NodeClient::new(&self.url())
    }
}

/// Default of `cairn devnet --dir`, and where `--node` looks for a devnet
/// when it is not given.
pub const DEFAULT_DEVNET_DIR: &str = "devnet";

/// `cairn keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key from the operating system's randomness. On a terminal
    /// cairn asks for a passphrase to encrypt it (unless --passphrase-file,
    /// CAIRN_PASSPHRASE or --unencrypted is given).
    New {
        /// Name of the new key (letters, digits, '-', '_', '.').
        #[arg(value_parser = parse_key_name)]
        name: KeyName,
        /// Store the key unencrypted (mode 0600), without asking for a passphrase.
        #[arg(long, conflicts_with = "passphrase_file")]
        unencrypted: bool,
        /// Keyring and passphrase.
        #[command(flatten)]
        keyring: KeyringArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the keys: names and addresses.
    List {
        /// Keyring.
        #[command(flatten)]
        keyring: KeyringArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a key's address and public key.
    Show {
        /// Name of the key.
        #[arg(value_parser = parse_key_name)]
        name: KeyName,
        /// Keyring.
        #[command(flatten)]
        keyring: KeyringArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Import a key from a file holding its 32-byte secret seed in hex.
    Import {
        /// Name to store it under.
        #[arg(value_parser = parse_key_name)]
        name: KeyName,
        /// File holding the 64 hex characters of the secret seed.
        #[arg(long, value_name = "FILE")]
        secret_file: PathBuf,
        /// Store the key unencrypted (mode 0600), without asking for a passphrase.
        #[arg(long, conflicts_with = "passphrase_file")]
        unencrypted: bool,
        /// Keyring and passphrase.
        #[command(flatten)]
        keyring: KeyringArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Import the well-known accounts of the built-in dev chain
    /// (`cairnd start --dev`) as dev-0 ... dev-9. INSECURE: everyone knows
    /// these keys; they are stored unencrypted. Running it again is a no-op.
    ImportDev {
        /// Keyring.
        #[command(flatten)]
        keyring: KeyringArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a key's secret seed in hex (anyone who has it controls the account).
    Export {
        /// Name of the key.
        #[arg(value_parser = parse_key_name)]
        name: KeyName,
        /// Keyring and passphrase.
        #[command(flatten)]
        keyring: KeyringArgs,
    },
    /// Delete a key from the keyring. Asks y/N on a terminal; elsewhere
    /// it needs --yes.
    Delete {
        /// Name of the key.
        #[arg(value_parser = parse_key_name)]
        name: KeyName,
        /// Delete without asking.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Keyring.
        #[command(flatten)]
        keyring: KeyringArgs,
    },
}

/// `cairn tx ...`.
#[derive(Debug, Subcommand)]
pub enum TxCommand {
    /// Sign a transfer locally and submit it to a node.
    Send(SendArgs),
    /// Replace a pending transaction by one paying a higher fee (same
    /// sender, nonce and body; at least 10% and 1 more than the pending
    /// fee), signed with the sender's key.
    Replace(ReplaceArgs),
}

/// `cairn tx replace`.
#[derive(Debug, Args)]
pub struct ReplaceArgs {
    /// The pending transaction's hash (64 hex characters), as `tx send`
    /// printed it.
    #[arg(value_parser = parse_hash, value_name = "HASH")]
    pub hash: Hash,
    /// The new fee: at least 10% (and 1) more than the pending one.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub fee: u64,
    /// Name of the sender's key in the keyring.
    #[arg(
        long,
        value_name = "NAME",
        value_parser = parse_key_name,
        required_unless_present = "private_key_file",
        conflicts_with = "private_key_file"
    )]
    pub from: Option<KeyName>,
    /// Sign with the key in FILE instead of one from the keyring (as for
    /// `tx send`).
    #[arg(long, value_name = "FILE")]
    pub private_key_file: Option<PathBuf>,
    /// Wait until the replacement is in a committed block.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits (500ms, 30s, 2m, 1h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub timeout: Duration,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Node.
    #[command(flatten)]
    pub node: NodeArgs,
    /// Keyring and passphrase.
    #[command(flatten)]
    pub keyring: KeyringArgs,
}

/// `cairn tx send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Name of the sending key in the keyring.
    #[arg(
        long,
        value_name = "NAME",
        value_parser = parse_key_name,
        required_unless_present = "private_key_file",
        conflicts_with = "private_key_file"
    )]
    pub from: Option<KeyName>,
    /// Sign with the key in FILE instead of one from the keyring: 64 hex
    /// characters, the 32-byte secret seed (as `cairn keys export` prints
    /// it); the file must not be readable by other users.
    #[arg(long, value_name = "FILE")]
    pub private_key_file: Option<PathBuf>,
    /// Recipient: an address (cairn1...) or the name of a key in the keyring.
    #[arg(long, value_name = "ADDRESS|KEY", value_parser = parse_account)]
    pub to: AccountRef,
    /// Units to transfer.
    // Negative numbers reach the parser, which says they are invalid
    // (instead of "unexpected argument '-1' found").
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub amount: u64,
    /// Units paid to the block proposer [default: the node's suggested
    /// fee, from `GET /fees`]. With --nonce of a pending transaction, a
    /// fee 10% (and 1) higher replaces it.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub fee: Option<u64>,
    /// Nonce to use [default: the account's next_nonce from the node].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub nonce: Option<u64>,
    /// Free text stored with the transfer.
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub memo: String,
    /// The chain to sign for: the node's `GET /status` must report this
    /// chain id, or nothing is signed [default: the node's chain].
    #[arg(long, value_name = "ID", env = "CAIRN_CHAIN_ID", value_parser = parse_chain_id)]
    pub chain_id: Option<String>,
    /// Wait until the transfer is in a committed block; print its height and index.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits (500ms, 30s, 2m, 1h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub timeout: Duration,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Node.
    #[command(flatten)]
    pub node: NodeArgs,
    /// Keyring and passphrase.
    #[command(flatten)]
    pub keyring: KeyringArgs,
}

/// `cairn validator ...`: the staking transactions of an operator.
#[derive(Debug, Subcommand)]
pub enum ValidatorCommand {
    /// Bond stake from the operator's balance to a validator key (the
    /// first bond makes the sender its operator).
    Bond {
        /// The consensus key (64 hex characters: `cairnd show-validator`).
        #[arg(long, value_name = "HEX")]
        validator_key: String,
        /// Units to bond.
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        amount: u64,
        /// The validator's name (first bond only; at most 64 bytes).
        #[arg(long, value_name = "NAME", default_value = "")]
        moniker: String,
        /// Sender, fee, nonce, wait and node.
        #[command(flatten)]
        common: StakingArgs,
    },
    /// Start unbonding stake (released after the chain's unbonding period).
    Unbond {
        /// Units to unbond.
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        amount: u64,
        /// Sender, fee, nonce, wait and node.
        #[command(flatten)]
        common: StakingArgs,
    },
    /// Return a jailed validator to candidacy after its jail period.
    Unjail {
        /// Sender, fee, nonce, wait and node.
        #[command(flatten)]
        common: StakingArgs,
    },
    /// Replace the validator's consensus key (a lost or compromised one).
    RotateKey {
        /// The new consensus key (64 hex characters).
        #[arg(long, value_name = "HEX")]
        new_validator_key: String,
        /// Sender, fee, nonce, wait and node.
        #[command(flatten)]
        common: StakingArgs,
    },
}

/// What every `cairn validator` command takes: the operator's key, fee,
/// nonce, waiting and the node.
#[derive(Debug, Args)]
pub struct StakingArgs {
    /// Name of the operator's key in the keyring.
    #[arg(
        long,
        value_name = "NAME",
        value_parser = parse_key_name,
        required_unless_present = "private_key_file",
        conflicts_with = "private_key_file"
    )]
    pub from: Option<KeyName>,
    /// Sign with the key in FILE (64 hex characters of secret seed, or a
    /// node's `config/validator_key.json` for a genesis validator, which is
    /// its own operator).
    #[arg(long, value_name = "FILE")]
    pub private_key_file: Option<PathBuf>,
    /// Units paid to the block proposer [default: the node's minimum fee,
    /// from `GET /status`].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub fee: Option<u64>,
    /// Nonce to use [default: the account's next_nonce from the node].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub nonce: Option<u64>,
    /// The chain to sign for [default: the node's chain].
    #[arg(long, value_name = "ID", env = "CAIRN_CHAIN_ID", value_parser = parse_chain_id)]
    pub chain_id: Option<String>,
    /// Wait until the transaction is in a committed block.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits (500ms, 30s, 2m, 1h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub timeout: Duration,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Node.
    #[command(flatten)]
    pub node: NodeArgs,
    /// Keyring and passphrase.
    #[command(flatten)]
    pub keyring: KeyringArgs,
}

/// `cairn query ...`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// What to read.
    #[command(subcommand)]
    pub what: QueryCommand,
    /// Print the node's JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Node.
    #[command(flatten)]
    pub node: NodeArgs,
}

/// `--verify` and its settings (`cairn query account|tx`).
#[derive(Debug, Clone, Default, Args)]
pub struct VerifyArgs {
    /// Trust no node: verify the answer with a proof against a header,
    /// and that header with skipping verification from the trusted state
    /// (`cairn light init`) or --genesis. Prints "verified at height H by
    /// N validators holding P% of the power".
    #[arg(long, visible_alias = "prove")]
    pub verify: bool,
    /// The chain's genesis.json: the root of trust when no trusted state
    /// is kept for its chain yet.
    #[arg(long, value_name = "FILE", requires = "verify")]
    pub genesis: Option<PathBuf>,
    /// A second node: its block hash at the verified height must be the
    /// verified one, else the answer is a fork and nothing is trusted.
    #[arg(long, value_name = "URL", requires = "verify")]
    pub witness: Option<String>,
    /// Refuse an answer whose block is older than this (a stale or
    /// replaying node) [default: 1h; at most 720h].
    #[arg(long, value_name = "DURATION", requires = "verify", value_parser = parse_max_age)]
    pub max_age: Option<std::time::Duration>,
    /// Refuse to verify from a trusted state (or genesis) older than this:
    /// its validators may have unbonded and could sign a fake chain at no
    /// cost (keep it below the chain's unbonding period in time) [default:
    /// 336h (two weeks)].
    #[arg(long, value_name = "DURATION", requires = "verify", value_parser = parse_trusting_period)]
    pub trusting_period: Option<std::time::Duration>,
    /// Where trusted states are kept, one file per chain [default:
    /// $XDG_DATA_HOME/cairn/light if set, else ~/.cairn-light].
    #[arg(long, value_name = "DIR", env = "CAIRN_LIGHT_DIR")]
    pub light_dir: Option<PathBuf>,
}

impl VerifyArgs {
    /// The light client's options.
    pub fn options(&self) -> crate::light::LightOptions {
        crate::light::LightOptions {
            light_dir: self
                .light_dir
                .clone()
                .or_else(crate::light::default_light_dir),
            genesis: self.genesis.clone(),
            witness: self.witness.clone(),
            max_age: self.max_age,
            trusting_period: self.trusting_period,
        }
    }
}

fn parse_trusting_period(text: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse_duration_at_most(text, crate::limits::LIGHT_TRUSTING_PERIOD_MAX)
}

fn parse_max_age(text: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse_duration_at_most(text, crate::limits::LIGHT_MAX_AGE_MAX)
}

/// `cairn light ...`.
#[derive(Debug, Subcommand)]
pub enum LightCommand {
    /// Choose the root of trust of a chain: its genesis, or a block
    /// (height and hash) learnt from a source you trust. Replaces what
    /// was kept for that chain.
    Init(LightInitArgs),
    /// Print the trusted state kept for a chain.
    Show(LightShowArgs),
}

/// `cairn light init`.
#[derive(Debug, Args)]
pub struct LightInitArgs {
    /// Trust this genesis.json (height 0).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["trusted_height", "trusted_hash"], required_unless_present = "trusted_height")]
    pub genesis: Option<PathBuf>,
    /// Trust the block of this height (with --trusted-hash and --node).
    #[arg(long, value_name = "H", requires = "trusted_hash")]
    pub trusted_height: Option<u64>,
    /// The hash of that block (64 hex characters).
    #[arg(long, value_name = "HASH", requires = "trusted_height", value_parser = parse_hash)]
    pub trusted_hash: Option<Hash>,
    /// Where trusted states are kept [default: $XDG_DATA_HOME/cairn/light
    /// if set, else ~/.cairn-light].
    #[arg(long, value_name = "DIR", env = "CAIRN_LIGHT_DIR")]
    pub light_dir: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// The node the trusted block's header and sets are fetched from.
    #[command(flatten)]
    pub node: NodeArgs,
}

/// `cairn light show`.
#[derive(Debug, Args)]
pub struct LightShowArgs {
    /// The chain id.
    #[arg(long, value_name = "CHAIN_ID")]
    pub chain_id: String,
    /// Where trusted states are kept [default: $XDG_DATA_HOME/cairn/light
    /// if set, else ~/.cairn-light].
    #[arg(long, value_name = "DIR", env = "CAIRN_LIGHT_DIR")]
    pub light_dir: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What `cairn query` reads.
#[derive(Debug, Clone, Subcommand)]
pub enum QueryCommand {
    /// The node's chain, height and health.
    Status,
    /// An account's balance and nonces.
    Account {
        /// The address (cairn1...) or the name of a key in the keyring.
        #[arg(value_parser = parse_account, value_name = "ADDRESS|KEY")]
        address: AccountRef,
        /// The keyring a key name is looked up in [default: see `cairn keys --help`].
        #[arg(long, value_name = "DIR", env = "CAIRN_KEYRING_DIR")]
        keyring_dir: Option<PathBuf>,
        /// Light client: verify the balance and nonce (see below).
        #[command(flatten)]
        verify: VerifyArgs,
    },
    /// A block by height (default: the latest).
    Block {
        /// A height, or `latest`.
        #[arg(value_parser = parse_block_selector, default_value = "latest", value_name = "HEIGHT|latest")]
        height: BlockSelector,
    },
    /// A committed transaction by hash.
    Tx {
        /// The transaction hash (64 hex characters).
        #[arg(value_parser = parse_hash)]
        hash: Hash,
        /// Light client: verify the inclusion (see below).
        #[command(flatten)]
        verify: VerifyArgs,
    },
    /// The validator set of a height (default: the next one) and the
    /// candidates.
    Validators {
        /// The height.
        #[arg(long, value_name = "N")]
        height: Option<u64>,
    },
    /// An account's committed transactions (sent, and transfers received),
    /// newest first, a page at a time.
    History {
        /// The address (cairn1...) or the name of a key in the keyring.
        #[arg(value_parser = parse_account, value_name = "ADDRESS|KEY")]
        address: AccountRef,
        /// The keyring a key name is looked up in [default: see `cairn keys --help`].
        #[arg(long, value_name = "DIR", env = "CAIRN_KEYRING_DIR")]
        keyring_dir: Option<PathBuf>,
        /// Most transactions to show (the node returns at most 100 per page).
        #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=100))]
        limit: u64,
        /// Show the page older than this cursor (the `next` a previous page printed).
        #[arg(long, value_name = "CURSOR")]
        before: Option<String>,
    },
    /// The node's connected peers.
    Peers,
    /// The node's mempool: pending transactions, bytes, and the fee that
    /// gets a transaction in now.
    Mempool,
    /// What a transaction should pay: the chain's and the node's minimum,
    /// and the fee that entered recent blocks.
    Fees,
}

/// `cairn devnet ...`.
#[derive(Debug, Subcommand)]
pub enum DevnetCommand {
    /// Make a devnet (or resume the one in --dir) and start its nodes; stays
    /// in the foreground until Ctrl-C unless --detach is given.
    Up(DevnetUpArgs),
    /// Lay out a devnet of one validator per machine, without starting
    /// it: one home per host (listening on 0.0.0.0:26656, advertising the
    /// host's address, every other host as bootstrap peer, one genesis)
    /// and a start.sh in each. Copy each home to its machine and run it
    /// (README: "A devnet on several machines").
    Init(DevnetInitArgs),
    /// Stop the nodes of a devnet (SIGTERM, then SIGKILL after a deadline).
    Down(DevnetDirArgs),
    /// Show each node of a devnet: process, height, peers, RPC and P2P addresses.
    Status(DevnetStatusArgs),
    /// Stop one node of a devnet (SIGTERM, then SIGKILL after a deadline).
    Stop(DevnetNodeArgs),
    /// Start one stopped node of a devnet, in the background, with the
    /// settings in its config/config.toml (as `devnet up` does).
    Start(DevnetNodeArgs),
    /// Stop one node of a devnet, then start it again.
    Restart(DevnetNodeArgs),
}

/// `cairn devnet stop|start|restart NODE`.
#[derive(Debug, Args)]
pub struct DevnetNodeArgs {
    /// The node: v0, v1, ... (validators) or f0, ... (full nodes), as
    /// `cairn devnet status` lists them.
    #[arg(value_name = "NODE")]
    pub node: String,
    /// The node binary [default: `cairnd` next to this `cairn`, else on PATH].
    #[arg(long, value_name = "PATH")]
    pub cairnd: Option<PathBuf>,
    /// Devnet directory.
    #[command(flatten)]
    pub dir: DevnetDirArgs,
}

/// `cairn devnet up`.
#[derive(Debug, Args)]
pub struct DevnetUpArgs {
    /// Accounts funded in genesis for `cairn bench`: their keys go to
    /// DIR/bench-keys only (not into the keyring) [default: 0].
    #[arg(long, value_name = "N")]
    pub bench_accounts: Option<usize>,
    /// Validators to run [default: 4; a resumed devnet keeps its own].
    #[arg(long, value_name = "N")]
    pub validators: Option<usize>,
    /// Full nodes (follow the chain, never vote) to run [default: 0].
    #[arg(long, value_name = "M")]
    pub full_nodes: Option<usize>,
    /// Funded accounts to create, with keys in DIR/keys and in the keyring [default: 10].
    #[arg(long, value_name = "K")]
    pub accounts: Option<usize>,
    /// Chain id of a new devnet [default: cairn-devnet].
    #[arg(long, value_name = "ID")]
    pub chain_id: Option<String>,
    /// First port: node i listens on P+10i (p2p), P+10i+1 (RPC) and P+10i+2
    /// (metrics), all on 127.0.0.1 [default: 26600, or the recorded one].
    #[arg(long, value_name = "P")]
    pub base_port: Option<u16>,
    /// Start the nodes and return, leaving them running (stop them with
    /// `cairn devnet down`).
    #[arg(long)]
    pub detach: bool,
    /// Replace keys of the same names (devnet-acct0, ...) already in the
    /// keyring, e.g. from a deleted devnet.
    #[arg(long)]
    pub replace_keys: bool,
    /// The node binary [default: `cairnd` next to this `cairn`, else on PATH].
    #[arg(long, value_name = "PATH")]
    pub cairnd: Option<PathBuf>,
    /// Devnet directory.
    #[command(flatten)]
    pub dir: DevnetDirArgs,
    /// Keyring (receives the funded accounts' keys) and passphrase.
    #[command(flatten)]
    pub keyring: KeyringArgs,
}

/// `cairn devnet init`.
#[derive(Debug, Args)]
pub struct DevnetInitArgs {
    /// The machines' addresses, one validator each, separated by commas,
    /// e.g. 10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4 (each must reach the
    /// others on TCP port 26656).
    #[arg(long, value_name = "IP1,IP2,...")]
    pub hosts: String,
    /// Funded accounts, with unencrypted keys in DIR/keys [default: 4].
    #[arg(long, value_name = "K")]
    pub accounts: Option<usize>,
    /// Chain id [default: cairn-devnet].
    #[arg(long, value_name = "ID")]
    pub chain_id: Option<String>,
    /// The node binary used to make the homes [default: `cairnd` next to
    /// this `cairn`, else on PATH].
    #[arg(long, value_name = "PATH")]
    pub cairnd: Option<PathBuf>,
    /// A new or empty directory for the homes (host0, host1, ...),
    /// genesis.json and keys/.
    #[arg(long, value_name = "DIR", default_value = "cairn-hosts")]
    pub dir: PathBuf,
}

/// The directory of a devnet.
#[derive(Debug, Clone, Args)]
pub struct DevnetDirArgs {
    /// The devnet directory: node homes, genesis.json, devnet.json, keys.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DEVNET_DIR)]
    pub dir: PathBuf,
}

/// `cairn devnet status`.
#[derive(Debug, Args)]
pub struct DevnetStatusArgs {
    /// Devnet directory.
    #[command(flatten)]
    pub dir: DevnetDirArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `cairn completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: Shell,
}

fn parse_key_name(text: &str) -> Result<KeyName, String> {
    KeyName::new(text).map_err(|error| error.to_string())
}

/// An account named on the command line: an address, or a key of the
/// keyring whose address is meant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountRef {
    /// A `cairn1...` address.
    Address(Address),
    /// The name of a key in the keyring.
    Key(KeyName),
}

impl AccountRef {
    /// The address: itself, or the address of the key in `keyring`.
    /// `what` names the argument in the error (`--to`, `ADDRESS`).
    pub fn resolve(&self, keyring: &Keyring, what: &str) -> Result<Address> {
        match self {
            AccountRef::Address(address) => Ok(*address),
            AccountRef::Key(name) => match keyring.show(name) {
                Ok(info) => Ok(info.address),
                Err(error @ CliError::UnknownKey { .. }) => Err(CliError::UnknownAccount {
                    what: what.to_string(),
                    name: name.to_string(),
                    reason: error.to_string(),
                }),
                Err(error) => Err(error),
            },
        }
    }
}

/// Whether `text` is meant as an address rather than a key name: the
/// `cairn1` prefix, a `0x` hex address, or bech32 of another chain
/// (`cosmos1...`: a prefix, `1`, and at least the 38 characters of a
/// 20-byte payload and its checksum). Those are parsed as addresses, so
/// their errors name the address problem.
fn looks_like_address(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("cairn1") || lower.starts_with("0x") {
        return true;
    }
    const BECH32_CHARSET: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    lower.rfind('1').is_some_and(|separator| {
        let data = &lower[separator + 1..];
        separator > 0 && data.len() >= 38 && data.chars().all(|c| BECH32_CHARSET.contains(c))
    })
}

fn parse_account(text: &str) -> Result<AccountRef, String> {
    if looks_like_address(text) {
        return Address::from_bech32(text)
            .map(AccountRef::Address)
            .map_err(|error| error.to_string());
    }
    KeyName::new(text).map(AccountRef::Key).map_err(|error| {
        format!("{text:?} is neither an address (cairn1...) nor a key name ({error})")
    })
}

fn parse_chain_id(text: &str) -> Result<String, String> {
    cairn_types::ChainId::new(text.to_string())
        .map(|_| text.to_string())
        .map_err(|error| error.to_string())
}

fn parse_hash(text: &str) -> Result<Hash, String> {
    Hash::from_hex(text).map_err(|error| error.to_string())
}

fn parse_block_selector(text: &str) -> Result<BlockSelector, String> {
    if text == "latest" {
        return Ok(BlockSelector::Latest);
    }
    text.parse::<u64>()
        .map(BlockSelector::Height)
        .map_err(|_| format!("{text:?} is not a block height; give a number or `latest`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_addresses_or_key_names() {
        let address = Address([7; 20]);
        assert_eq!(
            parse_account(&address.to_string()),
            Ok(AccountRef::Address(address))
        );
        // Names that contain a `1` are still names.
        for name in ["alice", "user1", "devnet-acct1", "dev-0"] {
            assert_eq!(
                parse_account(name),
                Ok(AccountRef::Key(KeyName::new(name).unwrap()))
            );
        }
        let error = parse_account("cairn1qqqq").unwrap_err();
        assert!(error.contains("bad address"), "{error}");
        let error = parse_account("no/slash").unwrap_err();
        assert!(error.contains("neither an address"), "{error}");
    }
}
