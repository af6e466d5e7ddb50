//! `cairn validator bond|unbond|unjail|rotate-key`: the staking
//! transactions of a validator's operator, signed locally and sent like a
//! transfer (`--wait` waits for the block), through
//! [`crate::commands::tx::send_transfer`].

use std::io::Write;

use cairn_types::{PublicKey, TransactionKind};

use crate::{
    cli::{StakingArgs, ValidatorCommand},
    commands::{
        tx::{private_key_file, send_transfer, Transfer},
        write_json, write_line,
    },
    error::{CliError, Result},
};

/// Runs one `cairn validator` command.
pub async fn run(command: ValidatorCommand, out: &mut dyn Write) -> Result<()> {
    let (kind, amount, memo, common) = match command {
        ValidatorCommand::Bond {
            validator_key,
            amount,
            moniker,
            common,
        } => (
            TransactionKind::Bond {
                validator_key: parse_key(&validator_key, "--validator-key")?,
            },
            amount,
            moniker,
            common,
        ),
        ValidatorCommand::Unbond { amount, common } => {
            (TransactionKind::Unbond, amount, String::new(), common)
        }
        ValidatorCommand::Unjail { common } => (TransactionKind::Unjail, 0, String::new(), common),
        ValidatorCommand::RotateKey {
            new_validator_key,
            common,
        } => (
            TransactionKind::RotateKey {
                new_validator_key: parse_key(&new_validator_key, "--new-validator-key")?,
            },
            0,
            String::new(),
            common,
        ),
    };
    send(kind, amount, memo, common, out).await
}

fn parse_key(text: &str, flag: &str) -> Result<PublicKey> {
    PublicKey::from_hex(text.trim()).map_err(|error| CliError::InvalidTransfer {
        reason: format!(
            "{flag} {text:?} is not a consensus key ({error}); `cairnd show-validator --home HOME` prints the 64 hex characters"
        ),
    })
}

async fn send(
    kind: TransactionKind,
    amount: u64,
    memo: String,
    args: StakingArgs,
    out: &mut dyn Write,
) -> Result<()> {
    let client = args.node.client()?;
    let keyring = args.keyring.keyring()?;
    let keypair = match (&args.private_key_file, &args.from) {
        (Some(path), _) => private_key_file(path)?,
        (None, Some(name)) => args.keyring.open_key(&keyring, name)?,
        (None, None) => {
            return Err(CliError::InvalidTransfer {
                reason: "no operator key: pass --from NAME or --private-key-file FILE".to_string(),
            })
        }
    };
    let transfer = Transfer {
        to: keypair.address(),
        amount,
        fee: args.fee,
        nonce: args.nonce,
        memo,
        wait: args.wait.then_some(args.timeout),
        chain_id: args.chain_id,
        kind,
    };
    let json = args.json;
    let waiting = transfer.wait.is_some();
    let name = kind.name();
    let report = send_transfer(&client, &keypair, &transfer, |submitted| {
        if waiting && !json {
            let _ = write_line(
                out,
                &format!("submitted {name} {}; waiting for a block", submitted.hash),
            );
        }
    })
    .await?;
    if json {
        return write_json(out, &report);
    }
    match report.inclusion {
        None => write_line(out, &report.hash),
        Some(inclusion) => write_line(
            out,
            &format!(
                "included {name} {} at height {} index {}; a set change takes effect two heights after its block (`cairn query validators --height {}`)",
                report.hash,
                inclusion.height,
                inclusion.index,
                inclusion.height + 2
            ),
        ),
    }
}
