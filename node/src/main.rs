//! `cairnd`: the Cairn node binary. Parses the command line and hands each
//! subcommand to the `cairn-node` library.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use cairn_node::{
    config::{ConfigOverrides, NodeMode},
    home::{read_key_file, Home},
    init::{init_dev_home, init_home, reset_data, InitOptions},
    start::start,
};
use cairn_types::Timestamp;
use clap::{Parser, Subcommand};

/// The Cairn node.
#[derive(Parser)]
#[command(
    name = "cairnd",
    version,
    about = "The Cairn node: BFT-replicated ledger over libp2p and RocksDB"
)]
struct Cli {
    /// The node's home directory [default: ~/.cairn; with `start --dev`, a
    /// temporary directory].
    #[arg(long, global = true, env = "CAIRN_HOME")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a home with config, keys and genesis.
    Init {
        /// Name of this node.
        #[arg(long, default_value = "cairn-node")]
        moniker: String,
        /// Chain id of a new single-validator genesis.
        #[arg(long, default_value = "cairn-local")]
        chain_id: String,
        /// Copy this genesis file instead of making a new one.
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// `validator` or `full`.
        #[arg(long, value_enum, default_value = "validator")]
        mode: ModeArg,
        /// `consensus.timeout_commit_ms` to write into the config (the
        /// pause after a commit; default 100).
        #[arg(long)]
        timeout_commit_ms: Option<u64>,
    },
    /// Run the node until SIGINT or SIGTERM.
    Start {
        /// One validator on the built-in, INSECURE dev chain, in a temporary
        /// home unless --home is given.
        #[arg(long)]
        dev: bool,
        #[command(flatten)]
        overrides: ConfigOverrides,
    },
    /// Print this node's validator public key (hex).
    ShowValidator,
    /// Print this node's libp2p peer id (for other nodes' `--bootstrap`).
    ShowNodeId,
    /// Delete all chain data, keeping keys and config.
    Reset {
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
    /// Print the version.
    Version,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ModeArg {
    Validator,
    Full,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Start {
        dev: true,
        overrides,
    } = &cli.command
    {
        return start_dev(cli.home.clone(), overrides);
    }
    let home = Home::new(cli.home.unwrap_or_else(Home::default_root));
    match cli.command {
        Command::Start { overrides, .. } => start(&home, &overrides, false)?,
        Command::Init {
            moniker,
            chain_id,
            genesis,
            mode,
            timeout_commit_ms,
        } => {
            let options = InitOptions {
                moniker,
                chain_id,
                genesis,
                mode: match mode {
                    ModeArg::Validator => NodeMode::Validator,
                    ModeArg::Full => NodeMode::Full,
                },
                genesis_time: now(),
                timeout_commit_ms,
            };
            init_home(&home, &options)?;
            println!("initialised {}", home.root().display());
        }
        Command::ShowValidator => {
            let keypair = read_key_file(&home.validator_key_file())
                .context("run `cairnd init` first, or pass --home")?;
            println!("{}", keypair.public_key().to_hex());
        }
        Command::ShowNodeId => {
            let keypair = read_key_file(&home.node_key_file())
                .context("run `cairnd init` first, or pass --home")?;
            let p2p_key = cairn_p2p::keypair_from_bytes(&keypair.seed())
                .context("the node key cannot be used for p2p")?;
            println!("{}", p2p_key.public().to_peer_id());
        }
        Command::Reset { yes } => {
            if !yes {
                anyhow::bail!(
                    "this deletes every block in {}; rerun with --yes to confirm",
                    home.data_dir().display()
                );
            }
            reset_data(&home)?;
            println!("deleted the chain data in {}", home.data_dir().display());
        }
        Command::Version => println!("cairnd {}", env!("CARGO_PKG_VERSION")),
    }
    Ok(())
}

/// `cairnd start --dev`: the dev chain in a temporary home (deleted at a
/// clean exit) or in `--home`, with the funded dev accounts printed.
fn start_dev(home: Option<PathBuf>, overrides: &ConfigOverrides) -> anyhow::Result<()> {
    let temporary = match home {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("cairn-dev-")
                .tempdir()
                .context("cannot create a temporary home; pass --home")?,
        ),
    };
    let root = match (&home, &temporary) {
        (Some(root), _) => root.clone(),
        (None, Some(directory)) => directory.path().to_path_buf(),
        (None, None) => anyhow::bail!("no home"),
    };
    let home = Home::new(root);
    init_dev_home(&home)?;
    let mut overrides = overrides.clone();
    if overrides.p2p_listen.is_empty() {
        // One validator needs no peers: listen on loopback only.
        overrides.p2p_listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    }
    if temporary.is_some() {
        overrides.rpc_listen = overrides
            .rpc_listen
            .or(Some(std::net::SocketAddr::from(([127, 0, 0, 1], 26657))));
        overrides.metrics_listen = overrides
            .metrics_listen
            .or(Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))));
    }
    println!(
        "cairnd --dev: chain {} in {}",
        cairn_genesis::dev::DEV_CHAIN_ID,
        home.root().display()
    );
    println!(
        "funded dev accounts (INSECURE: these keys are public, never use them for anything real):"
    );
    for (index, keypair) in cairn_genesis::dev::dev_account_keypairs()
        .iter()
        .enumerate()
    {
        println!(
            "  ({index}) {}  balance {}  secret {}",
            keypair.address(),
            cairn_genesis::dev::DEV_ACCOUNT_BALANCE,
            hex::encode(keypair.seed())
        );
    }
    println!(
        "bound addresses are also written to {}",
        home.addresses_file().display()
    );
    start(&home, &overrides, true)?;
    Ok(())
}

/// The current time, for a new genesis.
fn now() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or(0);
    Timestamp(u64::try_from(millis).unwrap_or(u64::MAX))
}
