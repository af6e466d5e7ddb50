//! `cairnd`: the Cairn node binary. Parses the command line and hands each
//! subcommand to the `cairn-node` library.

use std::{ffi::OsString, path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use cairn_node::{
    config::{check_rust_log, override_by_flag, ConfigOverrides, NodeConfig},
    home::{check_data_dir, read_key_file, Home},
    init::{
        check_home, compact_data, error_text, explain_start_error, init_dev_home, init_home,
        reset_data, unsafe_reset_all, CheckOutcome, InitOptions, ResetReport,
    },
    start::{load_config, start},
};
use cairn_types::Timestamp;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

/// The Cairn node.
#[derive(Parser)]
#[command(
    name = "cairnd",
    version,
    about = "The Cairn node: BFT-replicated ledger over libp2p and RocksDB"
)]
struct Cli {
    /// The node's home directory: config/ (config.toml, genesis.json, the
    /// keys, sign_state.json) and data/ (the chain). Default ~/.cairn; with
    /// `start --dev`, a new temporary directory.
    #[arg(long, global = true, env = "CAIRN_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a home: config/config.toml (with the settings below, every
    /// other key at its default), the node and validator keys,
    /// config/genesis.json and data/. The settings flags are written into
    /// config.toml (CAIRN_* variables are not read here); `cairnd start`
    /// then runs with them and needs no flags.
    // `cairnd init` writes flags only: a CAIRN_* variable meant for
    // `start` must not end up in the file.
    #[command(mut_args(|argument: clap::Arg| {
        if argument.get_id() == "home" {
            argument
        } else {
            argument.env(None::<&str>)
        }
    }))]
    Init {
        /// Chain id of the new single-validator genesis made when --genesis
        /// is not given.
        #[arg(long, default_value = "cairn-local", value_name = "ID")]
        chain_id: String,
        /// Copy this genesis file (the chain's genesis.json) into the home
        /// instead of making a new chain.
        #[arg(long, value_name = "FILE")]
        genesis: Option<PathBuf>,
        #[command(flatten)]
        settings: ConfigOverrides,
    },
    /// Run the node until SIGINT or SIGTERM. Settings come from
    /// config/config.toml; each flag below (or its CAIRN_* variable)
    /// overrides one key for this run only (flag over variable over file).
    Start {
        /// Run one validator of the built-in, INSECURE dev chain (its keys
        /// are public), in a new temporary home deleted at exit unless
        /// --home is given; prints the funded dev accounts.
        #[arg(long)]
        dev: bool,
        #[command(flatten)]
        overrides: ConfigOverrides,
    },
    /// Check the home without starting the node: config (with the same
    /// overrides as `start`), genesis, keys (in validator mode, that the
    /// validator key is in the genesis) and the data directory. Prints one
    /// line per check and exits 0 when every check passes, 1 otherwise.
    Check {
        #[command(flatten)]
        overrides: ConfigOverrides,
    },
    /// Print this node's validator (consensus) public key (hex): what its
    /// operator bonds to with `cairn validator bond --validator-key`.
    ShowValidator,
    /// Print this node's libp2p peer id (for other nodes' `--bootstrap`).
    ShowNodeId,
    /// Delete the chain data (data/, addresses.json and mempool.journal) to sync the chain
    /// again; keeps config/: config.toml, genesis.json, the keys and
    /// config/sign_state.json, so this validator still refuses to sign
    /// below its last signed height/round/step.
    Reset {
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
    /// UNSAFE: delete the chain data (data/, addresses.json, mempool.journal) AND
    /// config/sign_state.json; keeps config.toml, genesis.json and the
    /// keys. A validator that lost its sign state can sign a vote that
    /// conflicts with one it signed before (double-signing) if it rejoins
    /// the same chain before the height it last signed. Only for a new
    /// chain, or a validator that will not rejoin.
    UnsafeResetAll {
        /// Confirm the deletion, sign state included.
        #[arg(long)]
        yes: bool,
    },
    /// Compact the store of a stopped node: RocksDB rewrites every column
    /// into its last level, without what pruning deleted, and gives the
    /// disk space back (slow on a large store; the node must be stopped).
    Compact,
    /// Print the version.
    Version,
}

/// Why `unsafe-reset-all` is unsafe, printed with it.
const UNSAFE_RESET_WARNING: &str = "a validator that lost its sign state (config/sign_state.json) can sign a vote that conflicts with one it signed before the reset (double-signing) if it rejoins the same chain before the height it last signed; only use unsafe-reset-all for a new chain, or for a validator that will not rejoin. To sync the chain again, `cairnd reset --yes` keeps the sign state";

fn main() -> ExitCode {
    let matches = match Cli::command().try_get_matches() {
        Ok(matches) => matches,
        Err(error) => return usage_error(error),
    };
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => return usage_error(error),
    };
    if let Some((_, command_matches)) = matches.subcommand() {
        match &mut cli.command {
            Command::Init { settings, .. } => settings.record_sources(command_matches),
            Command::Start { overrides, .. } | Command::Check { overrides } => {
                overrides.record_sources(command_matches);
            }
            _ => {}
        }
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", error_text(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// Prints a clap error and returns its exit code. A bad value that came
/// from a `CAIRN_*` variable (its flag is not on the command line) is
/// reported by the variable's name, not by the flag's.
fn usage_error(error: clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let code = u8::try_from(error.exit_code()).unwrap_or(2);
    let invalid = matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    );
    let argument = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(argument)) if invalid => Some(argument.clone()),
        _ => None,
    };
    let from_environment = argument.and_then(|argument| {
        let long = argument
            .strip_prefix("--")?
            .split([' ', '='])
            .next()?
            .to_string();
        let (key, variable) = override_by_flag(&long)?;
        let variable = variable?;
        let flag = format!("--{long}");
        let on_command_line = std::env::args_os().skip(1).any(|given: OsString| {
            let given = given.to_string_lossy();
            given == flag || given.starts_with(&format!("{flag}="))
        });
        (!on_command_line && std::env::var_os(&variable).is_some())
            .then_some((argument, key, variable, flag))
    });
    match from_environment {
        Some((argument, key, variable, flag)) => {
            let rendered = error.render().to_string();
            let message = rendered
                .trim_end()
                .replace(
                    &format!("'{argument}'"),
                    &format!("environment variable {variable}"),
                )
                .lines()
                .take_while(|line| !line.trim().is_empty())
                .collect::<Vec<_>>()
                .join("\n");
            eprintln!(
                "{message}\n\n{variable} sets config key `{key}` (like {flag}); fix its value or unset it (`unset {variable}`)"
            );
            ExitCode::from(code)
        }
        None => {
            let _ = error.print();
            ExitCode::from(code)
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
        Command::Start { overrides, .. } => {
            preflight(&home, &overrides)?;
            start(&home, &overrides, false).map_err(|error| explain_start_error(&home, error))?;
        }
        Command::Check { overrides } => check(&home, &overrides)?,
        Command::Init {
            chain_id,
            genesis,
            settings,
        } => {
            let mut config = NodeConfig::default();
            settings.apply(&mut config);
            config.validate(|key| settings.origin(key, &home.config_file()))?;
            let options = InitOptions {
                chain_id,
                genesis,
                genesis_time: now(),
                config,
            };
            init_home(&home, &options)?;
            println!("initialised {}", home.root().display());
        }
        Command::ShowValidator => {
            let keypair = read_key_file(&home.validator_key_file())
                .context("run `cairnd init` first, or pass --home")?;
            println!("{}", keypair.public_key().to_hex());
            if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                eprintln!(
                    "this is the consensus key; to make it a validator, its operator bonds to it: `cairn validator bond --validator-key {} --amount N --from OPERATOR` (see STAKING.md)",
                    keypair.public_key().to_hex()
                );
            }
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
                    "this deletes every block in {} and {}, to sync the chain again; it keeps {} (config.toml, genesis.json, the keys and sign_state.json). Rerun with --yes to confirm",
                    home.data_dir().display(),
                    home.addresses_file().display(),
                    home.config_dir().display()
                );
            }
            let report = reset_data(&home)?;
            print_deleted(&home, &report);
            if report.sign_state_kept {
                println!("kept config/sign_state.json: this validator still refuses to sign below its last signed height/round/step");
                println!("  (it syncs the chain again from its peers; to start a chain over from its genesis, such as a single-validator dev chain, use `cairnd unsafe-reset-all --yes` instead)");
            } else {
                println!("no config/sign_state.json to keep (this node has signed nothing yet)");
            }
            println!(
                "kept {}: config.toml, genesis.json and the keys",
                home.config_dir().display()
            );
        }
        Command::UnsafeResetAll { yes } => {
            if !yes {
                anyhow::bail!(
                    "this deletes every block in {}, {} and the validator's sign state {}. It is unsafe: {UNSAFE_RESET_WARNING}. Rerun with --yes to confirm",
                    home.data_dir().display(),
                    home.addresses_file().display(),
                    home.sign_state_file().display()
                );
            }
            let report = unsafe_reset_all(&home)?;
            print_deleted(&home, &report);
            println!(
                "kept {}: config.toml, genesis.json and the keys",
                home.config_dir().display()
            );
            eprintln!("warning: {UNSAFE_RESET_WARNING}");
        }
        Command::Compact => {
            let report = compact_data(&home)?;
            println!(
                "compacted {}: {} bytes before, {} after",
                home.data_dir().display(),
                report.bytes_before,
                report.bytes_after
            );
        }
        Command::Version => println!("cairnd {}", env!("CARGO_PKG_VERSION")),
    }
    Ok(())
}

fn print_deleted(home: &Home, report: &ResetReport) {
    if report.deleted.is_empty() {
        println!("nothing to delete in {}", home.root().display());
    }
    for path in &report.deleted {
        println!("deleted {}", path.display());
    }
}

/// What `cairnd start` checks before it opens anything: the config with
/// every override (errors name the flag or `CAIRN_*` variable a bad value
/// came from) and that `data/` is not a file.
fn preflight(home: &Home, overrides: &ConfigOverrides) -> anyhow::Result<()> {
    let config = load_config(home, overrides)?;
    config.validate(|key| overrides.origin(key, &home.config_file()))?;
    check_rust_log()?;
    check_data_dir(home, false)?;
    Ok(())
}

/// `cairnd check`: one line per check; an error (exit 1) if any failed.
fn check(home: &Home, overrides: &ConfigOverrides) -> anyhow::Result<()> {
    let checks = check_home(home, overrides);
    let mut failed = 0;
    for check in &checks {
        let (label, text) = match &check.outcome {
            CheckOutcome::Ok(text) => ("ok  ", text),
            CheckOutcome::Failed(text) => {
                failed += 1;
                ("FAIL", text)
            }
            CheckOutcome::Skipped(text) => ("skip", text),
        };
        println!("{label}  {:<13}  {text}", check.name);
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} checks failed in {}; fix what the FAIL lines say and run `cairnd check` again",
            checks.len(),
            home.root().display()
        );
    }
    println!(
        "all {} checks passed: `cairnd start` can run this home",
        checks.len()
    );
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
    preflight(&home, &overrides)?;
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
    start(&home, &overrides, true).map_err(|error| explain_start_error(&home, error))?;
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
