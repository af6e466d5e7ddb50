//! `cairn query status|account|block|tx|history|validators|peers|mempool|fees`: text for people
//! by default, the node's own JSON with `--json`.

use std::io::Write;

use cairn_types::PublicKey;
use serde_json::Value;

use crate::{
    cli::{AccountRef, QueryArgs, QueryCommand},
    commands::{write_json, write_line},
    error::{CliError, Result},
    keyring::Keyring,
    rpc::{
        Account, BlockJson, BlockSelector, CommittedTransaction, Fees, History, Mempool,
        NodeClient, Peers, Status, Validators,
    },
    timestamp::format_time,
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
            verify,
        } => {
            let address = resolve_address(address, keyring_dir.as_deref())?;
            if verify.verify {
                let proven =
                    crate::light::verify_account(client, &address, &verify.options()).await?;
                let held = if proven.exists {
                    format!("balance  {}\nnonce    {}", proven.balance, proven.nonce)
                } else {
                    "no account (proven absent: balance 0, nonce 0)".to_string()
                };
                let text = format!(
                    "address  {}\n{held}\n{} (block {}; {} headers fetched from trusted height {})\n",
                    proven.address,
                    proven.verified.summary(),
                    proven.verified.header_hash,
                    proven.verified.fetched.headers,
                    proven.verified.from_height,
                );
                let json = serde_json::to_value(&proven).unwrap_or_default();
                return Ok((text, json));
            }
            let (account, json) = client.account(&address).await?;
            (account_text(&account), json)
        }
        QueryCommand::Block {
            height: BlockSelector::Height(0),
        } => {
            let (status, _) = client.status().await?;
            genesis_answer(&status)
        }
        QueryCommand::Block { height } => {
            let (block, json) = client.block(*height).await?;
            (block_text(&block), json)
        }
        QueryCommand::Tx { hash, verify } if verify.verify => {
            let proven = crate::light::verify_transaction(client, hash, &verify.options()).await?;
            let text = format!(
                "hash     {}\nincluded at height {} index {}\n{} (block {}; {} headers fetched from trusted height {})\n",
                proven.hash,
                proven.height,
                proven.index,
                proven.verified.summary(),
                proven.verified.header_hash,
                proven.verified.fetched.headers,
                proven.verified.from_height,
            );
            let json = serde_json::to_value(&proven).unwrap_or_default();
            (text, json)
        }
        QueryCommand::Tx { hash, .. } => match client.transaction(hash).await? {
            Some((committed, json)) => (transaction_text(&committed), json),
            None => {
                let pending = client.pending_transaction(hash).await.ok().flatten();
                let message = match pending {
                    Some(_) => format!(
                        "transaction {hash} is pending in the node's mempool, not in a block yet; wait a block and ask again (`cairn query mempool` shows the mempool)"
                    ),
                    None => format!(
                        "transaction {hash} is not in a committed block (yet); if it was just submitted, wait a block and ask again"
                    ),
                };
                return Err(CliError::NodeError {
                    what: format!("GET /tx/{hash}"),
                    status: 404,
                    code: "not_found".to_string(),
                    message,
                });
            }
        },
        QueryCommand::Validators { height } => {
            let (validators, json) = client.validators(*height).await?;
            (validators_text(&validators), json)
        }
        QueryCommand::History {
            address,
            keyring_dir,
            limit,
            before,
        } => {
            let address = resolve_address(address, keyring_dir.as_deref())?;
            let (history, json) = client.history(&address, *limit, before.as_deref()).await?;
            (history_text(&history), json)
        }
        QueryCommand::Peers => {
            let (peers, json) = client.peers().await?;
            (peers_text(&peers), json)
        }
        QueryCommand::Mempool => {
            let (mempool, mut json) = client.mempool().await?;
            let (fees, fees_json) = client.fees().await?;
            if let Value::Object(object) = &mut json {
                object.insert("fees".into(), fees_json);
            }
            (mempool_text(&mempool, &fees), json)
        }
        QueryCommand::Fees => {
            let (fees, json) = client.fees().await?;
            (fees_text(&fees), json)
        }
    })
}

/// The address `address` names: itself, or a key of the keyring in
/// `keyring_dir` (the default keyring without it), read only when needed.
fn resolve_address(
    address: &AccountRef,
    keyring_dir: Option<&std::path::Path>,
) -> Result<cairn_types::Address> {
    match address {
        AccountRef::Address(address) => Ok(*address),
        AccountRef::Key(_) => {
            let keyring = match keyring_dir {
                Some(dir) => Keyring::new(dir),
                None => Keyring::default_dir().map(Keyring::new)?,
            };
            address.resolve(&keyring, "ADDRESS")
        }
    }
}

fn mempool_text(mempool: &Mempool, fees: &Fees) -> String {
    let entry = if fees.mempool_entry_fee > fees.node_min_fee {
        format!(
            "{} (the pool is full: this evicts its cheapest transaction)",
            fees.mempool_entry_fee
        )
    } else {
        format!("{} (the node's minimum)", fees.mempool_entry_fee)
    };
    table(&[
        (
            "pending",
            format!(
                "{} ({} executable, {} queued behind a missing nonce)",
                mempool.count, mempool.executable, mempool.queued
            ),
        ),
        ("bytes", mempool.bytes.to_string()),
        ("fee to enter", entry),
        ("suggested", fees.suggested_fee.to_string()),
    ])
}

fn fees_text(fees: &Fees) -> String {
    let percentile = |value: Option<u64>| {
        value.map_or_else(|| "- (no block yet)".to_string(), |fee| fee.to_string())
    };
    table(&[
        ("chain min", fees.chain_min_fee.to_string()),
        ("node min", fees.node_min_fee.to_string()),
        ("fee to enter", fees.mempool_entry_fee.to_string()),
        (
            "p50",
            format!(
                "{} over {} recent blocks",
                percentile(fees.p50),
                fees.blocks
            ),
        ),
        ("p90", percentile(fees.p90)),
        ("suggested", fees.suggested_fee.to_string()),
    ])
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
        ("blocks held", held_text(status)),
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

/// The heights whose blocks the node holds, lowest to highest.
fn held_text(status: &Status) -> String {
    match (status.latest_height, status.lowest_height) {
        (0, _) => "none yet".to_string(),
        (latest, lowest) if lowest <= 1 => format!("1 to {latest} (all)"),
        (latest, lowest) => format!("{lowest} to {latest} (older ones pruned)"),
    }
}

fn account_text(account: &Account) -> String {
    // A node that does not count its mempool per account: every nonce
    // between the committed one and the next is pending.
    let pending = account
        .pending
        .unwrap_or_else(|| account.next_nonce.saturating_sub(account.nonce));
    let queued = account.queued.unwrap_or(0);
    let mempool = match (queued, account.missing_nonce) {
        (0, _) => format!("{pending} pending"),
        (queued, Some(missing)) => format!(
            "{pending} pending, {queued} queued behind missing nonce {missing} (a transfer with nonce {missing} unblocks them)"
        ),
        (queued, None) => format!("{pending} pending, {queued} queued behind a missing nonce"),
    };
    let mut rows = vec![
        ("address", account.address.clone()),
        ("balance", account.balance.to_string()),
        ("nonce", account.nonce.to_string()),
        ("next nonce", account.next_nonce.to_string()),
        ("mempool", mempool),
    ];
    if let Some(stake) = &account.stake {
        let status = match stake.jailed_until {
            Some(until) => format!("{} (unjail from height {until})", stake.status),
            None => stake.status.clone(),
        };
        rows.push((
            "stake",
            format!(
                "{} bonded (power {}) to validator {} {:?}, {status}",
                stake.bonded, stake.power, stake.validator_key, stake.name
            ),
        ));
    }
    for entry in &account.unbonding {
        rows.push((
            "unbonding",
            format!(
                "{} released at height {}",
                entry.amount, entry.release_height
            ),
        ));
    }
    table(&rows)
}

/// The sentence `cairn query block 0` answers with.
const GENESIS_NOT_A_BLOCK: &str =
    "height 0 is the genesis, not a block: blocks start at height 1 (`cairn query block 1`)";

/// `cairn query block 0`: height 0 is the genesis state, which has no
/// block; the answer names the chain and its genesis instead (text and
/// JSON made here, since the node has no block to return).
fn genesis_answer(status: &Status) -> (String, Value) {
    // At height 0 the node reports the genesis time as the latest time.
    let genesis_time = status
        .genesis_time
        .or((status.latest_height == 0).then_some(status.latest_time));
    let mut text = format!("{GENESIS_NOT_A_BLOCK}\n");
    text.push_str(&table(&[
        ("chain id", status.chain_id.clone()),
        ("genesis hash", status.genesis_hash.clone()),
        (
            "genesis time",
            genesis_time.map_or_else(
                || "not reported by the node; it is in the chain's genesis.json".to_string(),
                format_time,
            ),
        ),
        ("latest height", status.latest_height.to_string()),
    ]));
    let json = serde_json::json!({
        "height": 0,
        "genesis": true,
        "chain_id": status.chain_id,
        "genesis_hash": status.genesis_hash,
        "genesis_time": genesis_time,
        "latest_height": status.latest_height,
        "message": GENESIS_NOT_A_BLOCK,
    });
    (text, json)
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
        "{} validators at height {}, total power {} (set {})\n",
        validators.validators.len(),
        validators.height,
        validators.total_power,
        validators.set_hash
    );
    let name_width = validators
        .validators
        .iter()
        .map(|validator| validator.name.len())
        .max()
        .unwrap_or(0)
        .max("NAME".len());
    text.push_str(&format!(
        "{:>5}  {:<name_width$}  {:>5}  {:<9}  {:<44}  PUBLIC KEY\n",
        "INDEX", "NAME", "POWER", "STATUS", "OPERATOR"
    ));
    for validator in &validators.validators {
        text.push_str(&format!(
            "{:>5}  {:<name_width$}  {:>5}  {:<9}  {:<44}  {}\n",
            validator.index,
            validator.name,
            validator.power,
            validator.status,
            validator.address,
            validator.public_key
        ));
    }
    if !validators.candidates.is_empty() {
        text.push_str(&format!("\n{} candidates\n", validators.candidates.len()));
        text.push_str(&format!(
            "{:<44}  {:>14}  {:>5}  {:<22}  VALIDATOR KEY\n",
            "OPERATOR", "BONDED", "POWER", "STATUS"
        ));
        for candidate in &validators.candidates {
            let status = match candidate.jailed_until {
                Some(until) => format!("{} until {until}", candidate.status),
                None => candidate.status.clone(),
            };
            text.push_str(&format!(
                "{:<44}  {:>14}  {:>5}  {:<22}  {}\n",
                candidate.operator,
                candidate.bonded,
                candidate.power,
                status,
                candidate.validator_key
            ));
        }
    }
    text
}

/// The name of a transaction kind in the node's JSON (`"transfer"` or
/// `{"bond": {...}}`).
fn kind_name(kind: &Value) -> String {
    match kind {
        Value::String(name) => name.clone(),
        Value::Object(object) => object
            .keys()
            .next()
            .cloned()
            .unwrap_or_else(|| "unknown".into()),
        _ => "transfer".into(),
    }
}

fn history_text(history: &History) -> String {
    if history.transactions.is_empty() {
        let older = if history.lowest_height > 1 {
            format!(
                " (this node holds history from height {} on; older history was pruned)",
                history.lowest_height
            )
        } else {
            String::new()
        };
        return format!(
            "no committed transactions of {} on this page{older}\n",
            history.address
        );
    }
    let mut text = format!(
        "{} transactions of {}, newest first\n{:>8}  {:>5}  {:<9}  {:<10}  {:>14}  {:>6}  {:<44}  HASH\n",
        history.transactions.len(),
        history.address,
        "HEIGHT",
        "INDEX",
        "DIRECTION",
        "KIND",
        "AMOUNT",
        "FEE",
        "COUNTERPARTY"
    );
    for entry in &history.transactions {
        let transfer = &entry.transaction.transaction;
        let counterparty = match entry.direction.as_str() {
            "received" => PublicKey::from_hex(&transfer.sender)
                .map(|key| key.address().to_string())
                .unwrap_or_else(|_| transfer.sender.clone()),
            _ => transfer.recipient.clone(),
        };
        text.push_str(&format!(
            "{:>8}  {:>5}  {:<9}  {:<10}  {:>14}  {:>6}  {:<44}  {}\n",
            entry.height,
            entry.index,
            entry.direction,
            kind_name(&transfer.kind),
            transfer.amount,
            transfer.fee,
            counterparty,
            entry.hash
        ));
    }
    match &history.next {
        Some(cursor) => text.push_str(&format!(
            "older: cairn query history {} --before {cursor}\n",
            history.address
        )),
        None if history.lowest_height > 1 => text.push_str(&format!(
            "no older transactions on this node: it holds history from height {} on\n",
            history.lowest_height
        )),
        None => text.push_str("no older transactions\n"),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn status(latest_height: u64, genesis_time: Option<u64>) -> Status {
        serde_json::from_value(serde_json::json!({
            "chain_id": "cairn-test",
            "genesis_hash": "ab".repeat(32),
            "latest_height": latest_height,
            "latest_time": 1_704_067_200_850u64,
            "genesis_time": genesis_time,
        }))
        .unwrap()
    }

    #[test]
    fn block_times_have_a_millisecond_fraction() {
        let block: BlockJson = serde_json::from_value(serde_json::json!({
            "hash": "cd".repeat(32),
            "header": {
                "chain_id": "cairn-test", "height": 3, "time": 1_704_067_231_850u64,
                "parent_hash": "ef".repeat(32), "proposer": "cairn1x",
            },
        }))
        .unwrap();
        let text = block_text(&block);
        assert!(
            text.contains("time          2024-01-01T00:00:31.850Z (1704067231850 ms)"),
            "{text}"
        );
    }

    #[test]
    fn status_shows_the_heights_held() {
        let text = status_text(&status(900, None));
        assert!(text.contains("1 to 900 (all)"), "{text}");
        let mut pruned = status(900, None);
        pruned.lowest_height = 773;
        let text = status_text(&pruned);
        assert!(text.contains("773 to 900 (older ones pruned)"), "{text}");
        assert!(status_text(&status(0, None)).contains("none yet"));
    }

    #[test]
    fn height_zero_names_the_genesis() {
        let (text, json) = genesis_answer(&status(0, None));
        assert!(text.starts_with(GENESIS_NOT_A_BLOCK), "{text}");
        assert!(text.contains("chain id"), "{text}");
        assert!(text.contains(&"ab".repeat(32)), "{text}");
        // At height 0 the latest time is the genesis time.
        assert!(text.contains("2024-01-01T00:00:00.850Z"), "{text}");
        assert_eq!(json["genesis"], true);
        assert_eq!(json["genesis_time"], 1_704_067_200_850u64);

        let (text, json) = genesis_answer(&status(9, None));
        assert!(text.contains("not reported by the node"), "{text}");
        assert!(json["genesis_time"].is_null());
        let (text, _) = genesis_answer(&status(9, Some(1_000)));
        assert!(text.contains("1970-01-01T00:00:01.000Z"), "{text}");
    }

    #[test]
    fn accounts_show_pending_and_queued_transfers() {
        let account = |value: Value| -> Account { serde_json::from_value(value).unwrap() };
        let text = account_text(&account(serde_json::json!({
            "address": "cairn1x", "balance": 5, "nonce": 2, "next_nonce": 4,
            "pending": 2, "queued": 3, "missing_nonce": 4,
        })));
        assert!(
            text.contains("mempool     2 pending, 3 queued behind missing nonce 4"),
            "{text}"
        );
        let text = account_text(&account(serde_json::json!({
            "address": "cairn1x", "balance": 5, "nonce": 2, "next_nonce": 4,
            "pending": 2, "queued": 0,
        })));
        assert!(text.contains("mempool     2 pending\n"), "{text}");
        // A node that does not count them: the nonce gap is pending.
        let text = account_text(&account(serde_json::json!({
            "address": "cairn1x", "balance": 5, "nonce": 2, "next_nonce": 5,
        })));
        assert!(text.contains("mempool     3 pending\n"), "{text}");
    }

    #[test]
    fn tables_align() {
        let text = table(&[("a", "1".to_string()), ("long", "2".to_string())]);
        assert_eq!(text, "a     1\nlong  2\n");
    }
}
