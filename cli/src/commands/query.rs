//! `cairn query status|account|block|tx|validators|peers`: text for people
//! by default, the node's own JSON with `--json`.

use std::io::Write;

use cairn_types::PublicKey;
use serde_json::Value;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use crate::{
    cli::{AccountRef, QueryArgs, QueryCommand},
    commands::{write_json, write_line},
    error::{CliError, Result},
    keyring::Keyring,
    rpc::{BlockJson, CommittedTransaction, NodeClient, Peers, Status, Validators},
};

/// Runs one `cairn query` command.
pub async fn run(args: QueryArgs, out: &mut dyn Write) -> Result<()> {
    let client = args.node.client()?;
    let (text, json) = query(&client, &args.what).await?;
    if args.json {
        write_json(out, &json)
    } else {
        write_line(out, text.trim_end())
    }
}

/// Runs `what` against the node: the text for people and the node's JSON.
pub async fn query(client: &NodeClient, what: &QueryCommand) -> Result<(String, Value)> {
    Ok(match what {
        QueryCommand::Status => {
            let (status, json) = client.status().await?;
            (status_text(&status), json)
        }
        QueryCommand::Account {
            address,
            keyring_dir,
        } => {
            let address = match address {
                AccountRef::Address(address) => *address,
                AccountRef::Key(_) => {
                    let keyring = match keyring_dir {
                        Some(dir) => Keyring::new(dir),
                        None => Keyring::default_dir().map(Keyring::new)?,
                    };
                    address.resolve(&keyring, "ADDRESS")?
                }
            };
            let (account, json) = client.account(&address).await?;
            let pending = account.next_nonce.saturating_sub(account.nonce);
            let text = table(&[
                ("address", account.address.clone()),
                ("balance", account.balance.to_string()),
                ("nonce", account.nonce.to_string()),
                (
                    "next nonce",
                    format!("{} ({pending} pending)", account.next_nonce),
                ),
            ]);
            (text, json)
        }
        QueryCommand::Block { height } => {
            let (block, json) = client.block(*height).await?;
            (block_text(&block), json)
        }
        QueryCommand::Tx { hash } => match client.transaction(hash).await? {
            Some((committed, json)) => (transaction_text(&committed), json),
            None => {
                return Err(CliError::NodeError {
                    what: format!("GET /tx/{hash}"),
                    status: 404,
                    code: "not_found".to_string(),
                    message: format!(
                        "transaction {hash} is not in a committed block (yet); if it was just submitted, wait a block and ask again"
                    ),
                })
            }
        },
        QueryCommand::Validators => {
            let (validators, json) = client.validators().await?;
            (validators_text(&validators), json)
        }
        QueryCommand::Peers => {
            let (peers, json) = client.peers().await?;
            (peers_text(&peers), json)
        }
    })
}

fn status_text(status: &Status) -> String {
    let role = if status.validator {
        "validator"
    } else {
        "full node"
    };
    table(&[
        ("chain id", status.chain_id.clone()),
        ("moniker", format!("{} ({role})", status.moniker)),
        ("node id", status.node_id.clone()),
        ("height", status.latest_height.to_string()),
        ("latest hash", status.latest_hash.clone()),
        ("latest time", format_time(status.latest_time)),
        (
            "catching up",
            if status.catching_up { "yes" } else { "no" }.to_string(),
        ),
        ("peers", status.peers.to_string()),
        ("genesis hash", status.genesis_hash.clone()),
    ])
}

fn block_text(block: &BlockJson) -> String {
    let header = &block.header;
    let certificate = match &block.certificate {
        Some(certificate) => format!(
            "round {}, {} signatures",
            certificate.round,
            certificate.signatures.len()
        ),
        None => "not yet (the next block carries it)".to_string(),
    };
    let mut text = table(&[
        ("height", header.height.to_string()),
        ("hash", block.hash.clone()),
        ("chain id", header.chain_id.clone()),
        ("time", format_time(header.time)),
        ("proposer", header.proposer.clone()),
        ("parent hash", header.parent_hash.clone()),
        ("state root", header.state_root.clone()),
        ("certificate", certificate),
        ("transactions", block.transactions.len().to_string()),
    ]);
    for (index, hash) in block.transactions.iter().enumerate() {
        text.push_str(&format!("  {index:>5}  {hash}\n"));
    }
    text
}

fn transaction_text(committed: &CommittedTransaction) -> String {
    let transfer = &committed.transaction.transaction;
    let from = PublicKey::from_hex(&transfer.sender)
        .map(|key| key.address().to_string())
        .unwrap_or_else(|_| format!("public key {}", transfer.sender));
    table(&[
        ("hash", committed.hash.clone()),
        ("height", committed.height.to_string()),
        ("index", committed.index.to_string()),
        ("from", from),
        ("to", transfer.recipient.clone()),
        ("amount", transfer.amount.to_string()),
        ("fee", transfer.fee.to_string()),
        ("nonce", transfer.nonce.to_string()),
        ("memo", transfer.memo.clone()),
        ("chain id", transfer.chain_id.clone()),
    ])
}

fn validators_text(validators: &Validators) -> String {
    let mut text = format!(
        "{} validators, total power {}\n",
        validators.validators.len(),
        validators.total_power
    );
    let name_width = validators
        .validators
        .iter()
        .map(|validator| validator.name.len())
        .max()
        .unwrap_or(0)
        .max("NAME".len());
    text.push_str(&format!(
        "{:>5}  {:<name_width$}  {:>5}  {:<44}  PUBLIC KEY\n",
        "INDEX", "NAME", "POWER", "ADDRESS"
    ));
    for validator in &validators.validators {
        text.push_str(&format!(
            "{:>5}  {:<name_width$}  {:>5}  {:<44}  {}\n",
            validator.index,
            validator.name,
            validator.power,
            validator.address,
            validator.public_key
        ));
    }
    text
}

fn peers_text(peers: &Peers) -> String {
    if peers.peers.is_empty() {
        return "no peers connected\n".to_string();
    }
    let mut text = format!("{} peers\n", peers.peers.len());
    for peer in &peers.peers {
        text.push_str(&format!("{}  {}\n", peer.peer_id, peer.address));
    }
    text
}

/// Aligned `label  value` lines.
fn table(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(label, value)| format!("{label:<width$}  {value}\n"))
        .collect()
}

/// Milliseconds since the Unix epoch as RFC 3339 UTC, with the raw number.
fn format_time(milliseconds: u64) -> String {
    let nanoseconds = i128::from(milliseconds) * 1_000_000;
    match OffsetDateTime::from_unix_timestamp_nanos(nanoseconds)
        .ok()
        .and_then(|time| time.format(&Rfc3339).ok())
    {
        Some(text) => format!("{text} ({milliseconds} ms)"),
        None => format!("{milliseconds} ms since the Unix epoch"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_readable() {
        assert_eq!(
            format_time(1_704_067_200_000),
            "2024-01-01T00:00:00Z (1704067200000 ms)"
        );
    }

    #[test]
    fn tables_align() {
        let text = table(&[("a", "1".to_string()), ("long", "2".to_string())]);
        assert_eq!(text, "a     1\nlong  2\n");
    }
}
