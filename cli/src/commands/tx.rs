//! `cairn tx send`: sign a transfer locally, submit it, optionally wait
//! for its block.
//!
//! [`send_transfer`] is the library form (used by `cairn tx send`, by
//! `cairn validator` for the staking kinds, and by the devnet and bench
//! commands): it fetches the chain id from
//! `GET /status` (refusing a node of another chain than `--chain-id`) and
//! the nonce from `GET /account/{address}` (unless one
//! is given), checks the balance, signs, and with a wait it subscribes to
//! the transaction on `/ws` *before* submitting (the node sends one event
//! when it commits or is dropped) and also polls `GET /tx/{hash}`, so an
//! inclusion between submitting and subscribing cannot be missed.

use std::{io::Write, time::Duration};

use cairn_types::{
    limits::MEMO_BYTES_MAX, Address, ChainId, Hash, Keypair, Transaction, TransactionKind,
};
use serde::Serialize;
use tokio::time::Instant;

use crate::{
    cli::{ReplaceArgs, SendArgs, TxCommand},
    commands::{write_json, write_line},
    error::{CliError, Result},
    limits::TX_POLL_INTERVAL,
    rpc::{BlockSubscription, NewBlock, NodeClient, Submitted, TransactionEvent},
};

/// What to send.
#[derive(Clone, Debug)]
pub struct Transfer {
    /// Recipient.
    pub to: Address,
    /// Amount.
    pub amount: u64,
    /// Fee; `None` pays the node's suggested fee (`GET /fees`, else the
    /// minimum of `GET /status`).
    pub fee: Option<u64>,
    /// Nonce; `None` asks the node for the account's next nonce.
    pub nonce: Option<u64>,
    /// Memo (at most [`MEMO_BYTES_MAX`] bytes).
    pub memo: String,
    /// Wait this long for the block that includes it; `None` returns once
    /// the node accepted it.
    pub wait: Option<Duration>,
    /// The chain to sign for; the node's `/status` must report it. `None`
    /// signs for the node's chain.
    pub chain_id: Option<String>,
    /// What the transaction does (a transfer, or a staking kind whose
    /// `to` is the sender itself).
    pub kind: TransactionKind,
}

/// Where a transaction landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Inclusion {
    /// Height of the block.
    pub height: u64,
    /// Index of the transaction in the block.
    pub index: u64,
}

/// The outcome of [`send_transfer`].
#[derive(Clone, Debug, Serialize)]
pub struct SendReport {
    /// Transaction hash (hex).
    pub hash: String,
    /// Chain id it was signed for.
    pub chain_id: String,
    /// Sender address.
    #[serde(serialize_with = "serialize_display")]
    pub from: Address,
    /// Recipient address.
    #[serde(serialize_with = "serialize_display")]
    pub to: Address,
    /// Amount.
    pub amount: u64,
    /// Fee.
    pub fee: u64,
    /// Nonce used.
    pub nonce: u64,
    /// What the node said of it: `pending` (it can run now) or `queued`
    /// (it waits behind a missing nonce of the sender); `committed` once
    /// `--wait` saw its block.
    pub status: String,
    /// The nonce a queued transfer waits for: the sender's transfer with
    /// this nonce must reach the node first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued_behind_nonce: Option<u64>,
    /// The block, when waited for.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub inclusion: Option<Inclusion>,
}

fn serialize_display<T: std::fmt::Display, S: serde::Serializer>(
    value: &T,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// Runs one `cairn tx` command.
pub async fn run(command: TxCommand, out: &mut dyn Write) -> Result<()> {
    match command {
        TxCommand::Send(args) => send(args, out).await,
        TxCommand::Replace(args) => replace(args, out).await,
    }
}

async fn send(args: SendArgs, out: &mut dyn Write) -> Result<()> {
    let client = args.node.client()?;
    let keyring = args.keyring.keyring()?;
    let to = args.to.resolve(&keyring, "--to")?;
    let keypair = match (&args.private_key_file, &args.from) {
        (Some(path), _) => private_key_file(path)?,
        (None, Some(name)) => args.keyring.open_key(&keyring, name)?,
        // clap requires one of the two.
        (None, None) => {
            return Err(CliError::InvalidTransfer {
                reason: "no sender: pass --from NAME or --private-key-file FILE".to_string(),
            })
        }
    };
    let transfer = Transfer {
        to,
        amount: args.amount,
        fee: args.fee,
        nonce: args.nonce,
        memo: args.memo,
        wait: args.wait.then_some(args.timeout),
        chain_id: args.chain_id,
        kind: TransactionKind::Transfer,
    };
    let json = args.json;
    let waiting = transfer.wait.is_some();
    let report = send_transfer(&client, &keypair, &transfer, |submitted| {
        if waiting && !json {
            let _ = write_line(out, &waiting_line(submitted, args.timeout));
        }
    })
    .await?;
    if json {
        return write_json(out, &report);
    }
    match report.inclusion {
        None => {
            // Standard output holds the hash alone, for scripts; the
            // note about a queued transfer goes to standard error.
            write_line(out, &report.hash)?;
            if let Some(nonce) = report.queued_behind_nonce {
                eprintln!("{}", queued_note(&report, nonce));
            }
            Ok(())
        }
        Some(inclusion) => write_line(
            out,
            &format!(
                "included {} at height {} index {}",
                report.hash, inclusion.height, inclusion.index
            ),
        ),
    }
}

/// What a queued transfer waits for, and what to do: `queued behind nonce
/// N: ...`.
fn queued_note(report: &SendReport, nonce: u64) -> String {
    format!(
        "queued behind nonce {nonce}: the node holds transfer {} (nonce {}) until the transfer of {} with nonce {nonce} reaches it; send that one (`cairn query account {}` shows the nonces)",
        report.hash, report.nonce, report.from, report.from
    )
}

/// The line `tx send --wait` prints once the node took the transfer.
fn waiting_line(report: &SendReport, timeout: Duration) -> String {
    let wait = format!("up to {} s", timeout.as_secs_f64());
    match report.queued_behind_nonce {
        None => format!("submitted {}; waiting for a block ({wait})", report.hash),
        Some(nonce) => format!(
            "submitted {}; it is queued behind nonce {nonce}: waiting for nonce {nonce} of {} to arrive, then for a block ({wait})",
            report.hash, report.from
        ),
    }
}

/// The fee to pay when none is given: the node's suggestion (`GET
/// /fees`: its minimum, what entered recent blocks, what enters its
/// mempool now), or `min_fee` from `/status` from a node without `/fees`.
pub async fn suggested_fee(client: &NodeClient, min_fee: u64) -> u64 {
    match client.fees().await {
        Ok((fees, _)) => fees.suggested_fee.max(min_fee),
        Err(_) => min_fee,
    }
}

/// `cairn tx replace HASH --fee F`: the pending transaction again, same
/// nonce and body, with a higher fee, signed by the sender's key.
async fn replace(args: ReplaceArgs, out: &mut dyn Write) -> Result<()> {
    let client = args.node.client()?;
    let keyring = args.keyring.keyring()?;
    let keypair = match (&args.private_key_file, &args.from) {
        (Some(path), _) => private_key_file(path)?,
        (None, Some(name)) => args.keyring.open_key(&keyring, name)?,
        (None, None) => {
            return Err(CliError::InvalidTransfer {
                reason: "no sender: pass --from NAME or --private-key-file FILE".to_string(),
            })
        }
    };
    let Some(pending) = client.pending_transaction(&args.hash).await? else {
        return Err(CliError::InvalidTransfer {
            reason: format!(
                "transaction {} is not pending at {} (committed, dropped or never sent there); `cairn query tx {}` finds a committed one",
                args.hash.to_hex(),
                client.url(),
                args.hash.to_hex()
            ),
        });
    };
    let old = pending.transaction.transaction;
    if old.sender_address() != keypair.address() {
        return Err(CliError::InvalidTransfer {
            reason: format!(
                "transaction {} was sent by {}, not by {}; replace it with the sender's key",
                args.hash.to_hex(),
                old.sender_address(),
                keypair.address()
            ),
        });
    }
    if args.fee <= old.fee {
        return Err(CliError::InvalidTransfer {
            reason: format!(
                "the pending transaction pays {}; a replacement must pay more (at least 10% and 1 more): raise --fee",
                old.fee
            ),
        });
    }
    let transfer = Transfer {
        to: old.recipient,
        amount: old.amount,
        fee: Some(args.fee),
        nonce: Some(old.nonce),
        memo: old.memo.clone(),
        wait: args.wait.then_some(args.timeout),
        chain_id: Some(old.chain_id.to_string()),
        kind: old.kind,
    };
    let json = args.json;
    let waiting = transfer.wait.is_some();
    let report = send_transfer(&client, &keypair, &transfer, |submitted| {
        if waiting && !json {
            let _ = write_line(out, &waiting_line(submitted, args.timeout));
        }
    })
    .await?;
    if json {
        return write_json(out, &report);
    }
    match report.inclusion {
        None => write_line(
            out,
            &format!(
                "replaced {} by {} (nonce {}, fee {} -> {})",
                args.hash.to_hex(),
                report.hash,
                report.nonce,
                old.fee,
                report.fee
            ),
        ),
        Some(inclusion) => write_line(
            out,
            &format!(
                "included {} at height {} index {}",
                report.hash, inclusion.height, inclusion.index
            ),
        ),
    }
}

/// The key of `--private-key-file`, refused if other users can read it.
pub(crate) fn private_key_file(path: &std::path::Path) -> Result<Keypair> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(CliError::io("read", path))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(CliError::InsecureKeyFile {
            path: path.to_path_buf(),
            mode: mode & 0o777,
        });
    }
    crate::commands::keys::read_secret_file(path)
}

/// Signs `transfer` with `keypair` and submits it to the node of `client`;
/// with `transfer.wait`, waits for its block. `on_submitted` is called with
/// the report (hash, and whether the node queued it) once the node accepted
/// the transaction and before waiting.
pub async fn send_transfer(
    client: &NodeClient,
    keypair: &Keypair,
    transfer: &Transfer,
    on_submitted: impl FnOnce(&SendReport),
) -> Result<SendReport> {
    if transfer.memo.len() > MEMO_BYTES_MAX {
        return Err(CliError::InvalidTransfer {
            reason: format!(
                "the memo is {} bytes, the limit is {MEMO_BYTES_MAX}; shorten --memo",
                transfer.memo.len()
            ),
        });
    }
    if let Some(fee) = transfer.fee {
        if transfer.amount.checked_add(fee).is_none() {
            return Err(CliError::InvalidTransfer {
                reason: format!(
                    "amount {} + fee {fee} overflows a 64-bit balance",
                    transfer.amount
                ),
            });
        }
    }
    let (status, _) = client.status().await?;
    if let Some(expected) = &transfer.chain_id {
        if *expected != status.chain_id {
            return Err(CliError::ChainIdMismatch {
                given: expected.clone(),
                node: status.chain_id,
                url: client.url().to_string(),
            });
        }
    }
    let fee = match transfer.fee {
        Some(fee) => fee,
        None => suggested_fee(client, status.min_fee).await,
    };
    let debits_amount = matches!(
        transfer.kind,
        TransactionKind::Transfer | TransactionKind::Bond { .. }
    );
    let need = if debits_amount {
        transfer.amount.checked_add(fee)
    } else {
        Some(fee)
    }
    .ok_or_else(|| CliError::InvalidTransfer {
        reason: format!(
            "amount {} + fee {fee} overflows a 64-bit balance",
            transfer.amount
        ),
    })?;
    let chain_id =
        ChainId::new(status.chain_id.clone()).map_err(|error| CliError::BadResponse {
            url: client.url().to_string(),
            what: "GET /status".to_string(),
            reason: error.to_string(),
        })?;
    let from = keypair.address();
    let nonce = match transfer.nonce {
        Some(nonce) => nonce,
        None => {
            let (account, _) = client.account(&from).await?;
            if account.balance < need {
                return Err(CliError::InsufficientFunds {
                    address: from.to_string(),
                    balance: account.balance,
                    need,
                    amount: transfer.amount,
                    fee,
                });
            }
            account.next_nonce
        }
    };
    let signed = Transaction {
        chain_id,
        sender: keypair.public_key(),
        recipient: transfer.to,
        amount: transfer.amount,
        fee,
        nonce,
        memo: transfer.memo.clone(),
        kind: transfer.kind,
    }
    .sign(keypair);
    let hash = signed.hash();
    let mut report = SendReport {
        hash: hash.to_hex(),
        chain_id: status.chain_id,
        from,
        to: transfer.to,
        amount: transfer.amount,
        fee,
        nonce,
        status: PENDING.to_string(),
        queued_behind_nonce: None,
        inclusion: None,
    };
    let Some(timeout) = transfer.wait else {
        let submitted = client.submit(&signed).await?;
        check_hash(client, &submitted.hash, &hash)?;
        report.record(&submitted);
        on_submitted(&report);
        return Ok(report);
    };
    // Subscribe first, so a block committed right after the node accepts
    // the transaction is seen.
    let deadline = Instant::now() + timeout;
    let mut subscription = client.subscribe_blocks().await?;
    subscription.subscribe_transaction(&hash).await?;
    let submitted = client.submit(&signed).await?;
    check_hash(client, &submitted.hash, &hash)?;
    report.record(&submitted);
    on_submitted(&report);
    let inclusion = wait_for_inclusion(client, subscription, &hash, deadline)
        .await
        .map_err(|error| match error {
            CliError::WaitTimeout { .. } => CliError::WaitTimeout {
                hash: report.hash.clone(),
                waited: timeout,
                queued_behind_nonce: report.queued_behind_nonce,
            },
            other => CliError::WaitFailed {
                hash: report.hash.clone(),
                source: Box::new(other),
            },
        })?;
    report.inclusion = Some(inclusion);
    report.status = COMMITTED.to_string();
    Ok(report)
}

/// [`SendReport::status`] of a transfer that can run now.
const PENDING: &str = "pending";
/// [`SendReport::status`] of a transfer behind a missing nonce.
const QUEUED: &str = "queued";
/// [`SendReport::status`] of a transfer waited for until its block.
const COMMITTED: &str = "committed";

impl SendReport {
    /// Takes the node's word on the submission: pending or queued.
    fn record(&mut self, submitted: &Submitted) {
        self.queued_behind_nonce = submitted.waits_for();
        self.status = if self.queued_behind_nonce.is_some() {
            QUEUED
        } else {
            PENDING
        }
        .to_string();
    }
}

fn check_hash(client: &NodeClient, returned: &str, expected: &Hash) -> Result<()> {
    if returned.eq_ignore_ascii_case(&expected.to_hex()) {
        return Ok(());
    }
    Err(CliError::BadResponse {
        url: client.url().to_string(),
        what: "POST /tx".to_string(),
        reason: format!("it returned hash {returned}, but the transaction's hash is {expected}"),
    })
}

/// Waits until `hash` is in a committed block, from the WebSocket (the
/// node's one event for the transaction subscription, or, from a node
/// without subscriptions, the blocks) and from polling `GET /tx/{hash}`
/// every [`TX_POLL_INTERVAL`] (the first poll at once). A closed stream
/// leaves polling alone. A transaction the node dropped from its mempool
/// fails the wait with the node's reason.
pub async fn wait_for_inclusion(
    client: &NodeClient,
    subscription: BlockSubscription,
    hash: &Hash,
    deadline: Instant,
) -> Result<Inclusion> {
    let started = Instant::now();
    let timed_out = || CliError::WaitTimeout {
        hash: hash.to_hex(),
        waited: deadline.saturating_duration_since(started),
        queued_behind_nonce: None,
    };
    let hash_hex = hash.to_hex();
    let mut subscription = Some(subscription);
    let mut poll = tokio::time::interval(TX_POLL_INTERVAL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => return Err(timed_out()),
            _ = poll.tick() => {
                let found = tokio::time::timeout_at(deadline, client.transaction(hash))
                    .await
                    .map_err(|_| timed_out())??;
                if let Some((committed, _)) = found {
                    return Ok(Inclusion { height: committed.height, index: committed.index });
                }
            }
            event = next_event(&mut subscription, hash) => match event {
                Ok(Some(TransactionEvent::Block(block))) => {
                    if let Some(inclusion) = inclusion_in(&block, &hash_hex) {
                        return Ok(inclusion);
                    }
                }
                Ok(Some(TransactionEvent::Committed { height, index })) => {
                    return Ok(Inclusion { height, index });
                }
                Ok(Some(TransactionEvent::Dropped { reason })) => {
                    return Err(CliError::NodeError {
                        what: "the WebSocket /ws".to_string(),
                        status: 409,
                        code: "dropped".to_string(),
                        message: format!(
                            "the node dropped transaction {hash_hex} from its mempool uncommitted ({reason}); send it again (with a higher fee if it was evicted or replaced)"
                        ),
                    });
                }
                // The stream ended or broke: polling goes on alone.
                Ok(None) | Err(_) => subscription = None,
            },
        }
    }
}

fn inclusion_in(block: &NewBlock, hash_hex: &str) -> Option<Inclusion> {
    let position = block
        .transactions
        .iter()
        .position(|candidate| candidate.eq_ignore_ascii_case(hash_hex))?;
    Some(Inclusion {
        height: block.height,
        index: u64::try_from(position).ok()?,
    })
}

async fn next_event(
    subscription: &mut Option<BlockSubscription>,
    hash: &Hash,
) -> Result<Option<TransactionEvent>> {
    match subscription {
        Some(subscription) => subscription.next_transaction_event(hash).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inclusion_is_found_by_position() {
        let block = NewBlock {
            kind: "new_block".to_string(),
            height: 9,
            hash: String::new(),
            transactions: vec!["aa".repeat(32), "BB".repeat(32)],
        };
        assert_eq!(
            inclusion_in(&block, &"bb".repeat(32)),
            Some(Inclusion {
                height: 9,
                index: 1
            })
        );
        assert_eq!(inclusion_in(&block, &"cc".repeat(32)), None);
    }
}
