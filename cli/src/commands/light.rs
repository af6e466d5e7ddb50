//! `cairn light init|show`: the light client's root of trust per chain
//! (see [`crate::light`]).

use std::io::Write;

use cairn_types::ChainId;

use crate::{
    cli::{LightCommand, LightInitArgs, LightShowArgs},
    commands::{write_json, write_line},
    error::{CliError, Result},
    light::{self, trusted, TrustedState},
};

/// Runs one `cairn light` command.
pub async fn run(command: LightCommand, out: &mut dyn Write) -> Result<()> {
    match command {
        LightCommand::Init(args) => init(args, out).await,
        LightCommand::Show(args) => show(args, out),
    }
}

fn light_dir(given: Option<std::path::PathBuf>) -> Result<std::path::PathBuf> {
    given
        .or_else(light::default_light_dir)
        .ok_or_else(|| CliError::LightUninitialized {
            chain_id: String::new(),
            dir: "(no light directory: set CAIRN_LIGHT_DIR or HOME)".into(),
        })
}

fn state_text(state: &TrustedState) -> String {
    format!(
        "chain        {}\nheight       {}\nblock        {}\ntime         {}\nnext set     {} ({} validators, power {})\nfrom         {}",
        state.chain_id,
        state.height,
        state.header_hash,
        crate::timestamp::format_time(state.time.0),
        state.next_set.hash(),
        state.next_set.len(),
        state.next_set.total_power().0,
        match state.genesis_hash {
            Some(hash) => format!("genesis {hash}"),
            None => "a trusted block hash".into(),
        }
    )
}

async fn init(args: LightInitArgs, out: &mut dyn Write) -> Result<()> {
    let dir = light_dir(args.light_dir)?;
    let initialized = match (args.genesis, args.trusted_height, args.trusted_hash) {
        (Some(path), _, _) => {
            let genesis = cairn_genesis::Genesis::load(&path)?;
            light::init_from_genesis(&dir, &genesis)?
        }
        (None, Some(height), Some(hash)) => {
            let client = args.node.client()?;
            light::init_from_hash(&client, &dir, height, &hash).await?
        }
        _ => {
            return Err(CliError::LightState {
                path: dir,
                reason: "give --genesis FILE, or --trusted-height H --trusted-hash HASH --node URL"
                    .into(),
            })
        }
    };
    if args.json {
        return write_json(out, &initialized);
    }
    write_line(
        out,
        &format!(
            "trusting\n{}\nkept in {}",
            state_text(&initialized.trusted),
            initialized.file.display()
        ),
    )
}

fn show(args: LightShowArgs, out: &mut dyn Write) -> Result<()> {
    let dir = light_dir(args.light_dir)?;
    let chain_id = ChainId::new(args.chain_id.clone()).map_err(CliError::Types)?;
    let state =
        trusted::load(Some(&dir), &chain_id)?.ok_or_else(|| CliError::LightUninitialized {
            chain_id: args.chain_id.clone(),
            dir: dir.display().to_string(),
        })?;
    if args.json {
        return write_json(out, &state);
    }
    write_line(out, &state_text(&state))
}
