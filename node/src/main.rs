//! `cairnd`: the Cairn node binary. Parses the command line and hands each
//! subcommand to the `cairn-node` library.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use cairn_node::{
    config::NodeMode,
    home::{read_key_file, Home},
    init::{init_home, reset_data, InitOptions},
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
    /// The node's home directory.
    #[arg(long, global = true, env = "CAIRN_HOME", default_value_os_t = Home::default_root())]
    home: PathBuf,
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
    },
    /// Print this node's validator public key (hex).
    ShowValidator,
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
    let home = Home::new(cli.home);
    match cli.command {
        Command::Init {
            moniker,
            chain_id,
            genesis,
            mode,
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
            };
            init_home(&home, &options)?;
            println!("initialised {}", home.root().display());
        }
        Command::ShowValidator => {
            let keypair = read_key_file(&home.validator_key_file())
                .context("run `cairnd init` first, or pass --home")?;
            println!("{}", keypair.public_key().to_hex());
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

/// The current time, for a new genesis.
fn now() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or(0);
    Timestamp(u64::try_from(millis).unwrap_or(u64::MAX))
}
