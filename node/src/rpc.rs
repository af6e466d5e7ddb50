//! The HTTP/JSON RPC server (axum), as specified in `node/RPC.md`.
//!
//! Handlers only translate between HTTP and an [`RpcBackend`], which the
//! node implements over its store, mempool and network. Every error has one
//! shape, `{"error": {"code", "message"}}`; bodies are bounded by
//! [`RPC_BODY_BYTES_MAX`]; nothing a client sends can panic the server.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    body::Bytes,
    extract::{ws::WebSocketUpgrade, DefaultBodyLimit, Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use cairn_types::{Address, Hash, Height};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::mempool::Rejection;

/// Largest request body.
pub const RPC_BODY_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Most transactions in one `POST /txs`.
pub const RPC_BATCH_TRANSACTIONS_MAX: usize = 10_000;
/// Largest WebSocket message accepted from a client (a subscription).
pub const RPC_WEBSOCKET_MESSAGE_BYTES_MAX: usize = 4 * 1024;

/// An error the RPC reports, with its HTTP status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: String,
    /// What was wrong and what to do.
    pub message: String,
}

impl RpcError {
    /// A 400 for a malformed request.
    pub fn malformed(message: impl Into<String>) -> RpcError {
        RpcError {
            status: StatusCode::BAD_REQUEST,
            code: "malformed_request".into(),
            message: message.into(),
        }
    }

    /// A 404.
    pub fn not_found(message: impl Into<String>) -> RpcError {
        RpcError {
            status: StatusCode::NOT_FOUND,
            code: "not_found".into(),
            message: message.into(),
        }
    }

    /// A 500 for a failure inside the node (e.g. the store).
    pub fn internal(message: impl Into<String>) -> RpcError {
        RpcError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal".into(),
            message: message.into(),
        }
    }

    /// A 503 while the node is catching up.
    pub fn catching_up() -> RpcError {
        RpcError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "catching_up".into(),
            message: "the node is catching up with the chain; retry when /status says catching_up is false".into(),
        }
    }

    /// A 410 for a height this node pruned: it holds `lowest` and up.
    pub fn pruned(height: u64, lowest: u64) -> RpcError {
        RpcError {
            status: StatusCode::GONE,
            code: "pruned".into(),
            message: format!(
                "height {height} was pruned from this node, which holds heights {lowest} and up (lowest_height {lowest}); ask a node that keeps every block (an archive node, pruning.keep_blocks = 0)"
            ),
        }
    }

    /// The error for a mempool rejection.
    pub fn from_rejection(rejection: &Rejection) -> RpcError {
        let status = match rejection {
            Rejection::TooLarge { .. } | Rejection::Malformed(_) => StatusCode::BAD_REQUEST,
            Rejection::Full { .. } | Rejection::SenderFull { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        RpcError {
            status,
            code: rejection.code().into(),
            message: rejection.to_string(),
        }
    }

    fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.clone(),
                message: self.message.clone(),
            },
        }
    }
}

impl IntoResponse for RpcError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// `{"error": {...}}`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// `{"code", "message"}`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable machine-readable code.
    pub code: String,
    /// What was wrong and what to do.
    pub message: String,
}

/// `GET /status`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatusView {
    /// Chain id.
    pub chain_id: String,
    /// Genesis hash.
    pub genesis_hash: Hash,
    /// libp2p peer id.
    pub node_id: String,
    /// Node name.
    pub moniker: String,
    /// Whether this node votes.
    pub validator: bool,
    /// Latest committed height.
    pub latest_height: u64,
    /// Its hash.
    pub latest_hash: Hash,
    /// Its time (ms since the epoch).
    pub latest_time: u64,
    /// Whether the node is behind its peers.
    pub catching_up: bool,
    /// Connected peers.
    pub peers: usize,
    /// The least fee this node admits (the chain's minimum, or the node's
    /// own if higher).
    #[serde(default)]
    pub min_fee: u64,
    /// The chain's existential deposit.
    #[serde(default)]
    pub existential_deposit: u64,
    /// Heights of the state snapshots this node offers, newest first.
    #[serde(default)]
    pub snapshot_heights: Vec<u64>,
    /// The height this node's state was restored from by state sync (it
    /// holds no block below it); 0 when it began at genesis.
    #[serde(default)]
    pub snapshot_base: u64,
    /// The progress of state sync, when this node started with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_sync: Option<crate::state_sync::StateSyncView>,
    /// The lowest height whose block this node holds: 1 unless it prunes
    /// (`pruning.keep_blocks`); heights below it answer 410 `pruned`. The
    /// highest is `latest_height`.
    #[serde(default = "first_height")]
    pub lowest_height: u64,
}

fn committed() -> String {
    "committed".into()
}

fn first_height() -> u64 {
    1
}

/// `GET /ready`: whether the node is fit to serve (200) or not (503), and
/// why. Liveness is `GET /health`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadinessView {
    /// True when every check below passes.
    pub ready: bool,
    /// Latest committed height.
    pub latest_height: u64,
    /// Milliseconds since the latest block's time (by this node's clock).
    pub latest_block_age_ms: u64,
    /// Whether block sync is behind its peers.
    pub catching_up: bool,
    /// Connected peers.
    pub peers: usize,
    /// Whether this node needs peers to make progress (false only for the
    /// single validator of a one-validator chain).
    pub should_have_peers: bool,
    /// Whether the chain is idle by design: waiting for transactions, with
    /// none executable.
    pub idle: bool,
    /// How old the latest block may get before the node counts as stalled
    /// (`None`: no block is expected, the node is idle).
    pub stall_after_ms: Option<u64>,
    /// What is wrong, one sentence each; empty when ready.
    pub reasons: Vec<String>,
}

/// `GET /tx/{hash}`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TransactionView {
    /// Transaction hash.
    pub hash: Hash,
    /// Always `committed` (a pending one answers [`PendingStatusView`]).
    #[serde(default = "committed")]
    pub status: String,
    /// Height of its block.
    pub height: u64,
    /// Position in the block.
    pub index: u32,
    /// The signed transaction.
    pub transaction: cairn_types::SignedTransaction,
    /// With `?prove=true`: its inclusion proof.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<InclusionProofView>,
}

/// An inclusion proof (`GET /tx/{hash}?prove=true`): the RFC 6962 audit
/// path of the transaction hash to the header's `transactions_root`, with
/// the header and the certificate that signs it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InclusionProofView {
    /// Position of the transaction in its block.
    pub index: u64,
    /// Transactions in the block.
    pub count: u64,
    /// Sibling hashes from the leaf up.
    pub path: Vec<Hash>,
    /// The canonical bytes (hex) of `(index, count, path)`: the same
    /// proof as the fields above, in the chain's codec.
    pub canonical: String,
    /// The block's header.
    pub header: cairn_types::Header,
    /// The certificate that signs it.
    pub certificate: cairn_types::CommitCertificate,
}

/// `GET /block/...`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlockView {
    /// Block hash.
    pub hash: Hash,
    /// The header.
    pub header: cairn_types::Header,
    /// Hashes of its transactions, in order.
    pub transactions: Vec<Hash>,
    /// Its commit certificate, once stored.
    pub certificate: Option<cairn_types::CommitCertificate>,
}

/// `GET /account/{address}`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountView {
    /// The address.
    pub address: Address,
    /// Committed balance.
    pub balance: u64,
    /// Committed nonce (transfers sent).
    pub nonce: u64,
    /// Next nonce counting this node's pending transfers.
    pub next_nonce: u64,
    /// Pending transfers that can run now (nonces from `nonce` on).
    #[serde(default)]
    pub pending: usize,
    /// Pending transfers waiting behind a missing nonce.
    #[serde(default)]
    pub queued: usize,
    /// The nonce the queued transfers wait for (send it to unblock them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_nonce: Option<u64>,
    /// The validator this account operates, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stake: Option<CandidateView>,
    /// Stake on its way back to this account's balance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unbonding: Vec<UnbondingView>,
    /// With `?prove=true`: the proof that the committed `balance` and
    /// `nonce` are in the state of a signed header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<AccountProofView>,
}

/// A proof of an account, or of its absence (`GET
/// /account/{address}?prove=true`): the account tree path (of the
/// account, or of the neighbour whose gap holds the address), the staking
/// hash the state root also covers, and the header of the height whose
/// state it is with the certificate that signs it. A client checks: the
/// path gives `accounts_root`, `SHA-256("cairn/state/v3\0" ||
/// accounts_root || staking_hash)` is the header's `state_root`, and the
/// certificate (of a validator set it trusts) signs the header's hash.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountProofView {
    /// The height whose state the proof is of.
    pub height: u64,
    /// Whether the address has an account at `height`.
    pub exists: bool,
    /// The proven balance (0 for an address without an account).
    pub balance: u64,
    /// The proven nonce (0 for an address without an account).
    pub nonce: u64,
    /// The account tree path (slot, leaf count, successor, siblings), when
    /// the account exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_proof: Option<cairn_state::AccountProof>,
    /// The proof of absence, when it does not: the neighbour below the
    /// address on the address ring, what it holds and its path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absence_proof: Option<cairn_state::AbsenceProof>,
    /// The canonical bytes (hex) of `account_proof` or `absence_proof`
    /// (whichever is present): the same proof in the chain's codec.
    pub canonical: String,
    /// The hash of the staking state.
    pub staking_hash: Hash,
    /// The header of `height`.
    pub header: cairn_types::Header,
    /// The certificate that signs it.
    pub certificate: cairn_types::CommitCertificate,
}

/// The query of `GET /account/{address}` and `GET /tx/{hash}`.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub struct AccountQuery {
    /// Whether to add a proof.
    #[serde(default)]
    pub prove: bool,
}

/// A validator candidate (an operator's bonded stake).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CandidateView {
    /// The operator account.
    pub operator: Address,
    /// The consensus key.
    pub validator_key: cairn_types::PublicKey,
    /// Its name.
    pub name: String,
    /// Stake bonded.
    pub bonded: u64,
    /// Voting power the stake is worth (bonded / power_unit).
    pub power: u64,
    /// `bonded`, `jailed` or `unbonding` (nothing bonded).
    pub status: String,
    /// The height from which `unjail` is accepted, if jailed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jailed_until: Option<u64>,
}

/// One unbonding entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UnbondingView {
    /// Stake (less any slash).
    pub amount: u64,
    /// Released to the balance at the end of this block.
    pub release_height: u64,
}

/// One entry of `GET /validators`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ValidatorView {
    /// Index in the set.
    pub index: u32,
    /// Name.
    pub name: String,
    /// Public key.
    pub public_key: cairn_types::PublicKey,
    /// Operator (fee) account.
    pub address: Address,
    /// Voting power.
    pub power: u64,
    /// `bonded`, `jailed` (it leaves with the next set) or `unbonding`
    /// (its stake is leaving); `bonded` for a past height.
    #[serde(default)]
    pub status: String,
}

/// `GET /validators[?height=H]`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ValidatorsView {
    /// The height whose set this is.
    #[serde(default)]
    pub height: u64,
    /// The set's hash (what headers name).
    #[serde(default)]
    pub set_hash: Hash,
    /// Sum of the power.
    pub total_power: u64,
    /// The validators in index order.
    pub validators: Vec<ValidatorView>,
    /// Every candidate now (bonded, jailed or unbonding stake); empty for
    /// a past height.
    #[serde(default)]
    pub candidates: Vec<CandidateView>,
}

/// The query of `GET /validators`.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub struct ValidatorsQuery {
    /// The height (default: the next height to decide).
    pub height: Option<u64>,
}

/// One entry of `GET /peers`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerView {
    /// libp2p peer id.
    pub peer_id: String,
    /// Address of the connection.
    pub address: String,
    /// `outbound` when this node dialled the peer, `inbound` when the peer
    /// dialled this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// The peer's gossip score (valid messages raise it, invalid ones lower
    /// it; a peer is banned below -100), refreshed every
    /// [`crate::runtime::PEER_SCORES_INTERVAL`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// When this node connected to it (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_since: Option<u64>,
    /// How long it has been connected, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_ms: Option<u64>,
}

/// `GET /mempool`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MempoolView {
    /// Pending transactions (executable plus queued).
    pub count: usize,
    /// Pending bytes.
    pub bytes: usize,
    /// Pending transactions that can run now.
    #[serde(default)]
    pub executable: usize,
    /// Pending transactions waiting behind a missing nonce of their sender.
    #[serde(default)]
    pub queued: usize,
}

/// `GET /fees`: what a transaction should pay.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FeesView {
    /// The chain's minimum fee (genesis `fee_params.min_fee`): below it a
    /// transaction is invalid in a block.
    pub chain_min_fee: u64,
    /// The least fee this node's mempool admits (`mempool.min_fee`, at
    /// least the chain's).
    pub node_min_fee: u64,
    /// The least fee that enters this node's mempool now: the node's
    /// minimum, or one more than the cheapest pending fee when the pool is
    /// full.
    pub mempool_entry_fee: u64,
    /// Recent blocks (committed since this node started, at most 20) the
    /// percentiles are over.
    pub blocks: usize,
    /// The fee that would have entered half of those blocks (a block that
    /// was not full took the chain's minimum; a full one its lowest fee);
    /// null before any block.
    pub p50: Option<u64>,
    /// The same at the 90th percentile.
    pub p90: Option<u64>,
    /// What `cairn tx send` pays without `--fee`: the highest of the
    /// node's minimum, `p50` and `mempool_entry_fee`.
    pub suggested_fee: u64,
}

/// `GET /mempool/tx/{hash}`: a pending transaction.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingTransactionView {
    /// Transaction hash.
    pub hash: Hash,
    /// The signed transaction.
    pub transaction: cairn_types::SignedTransaction,
    /// The missing nonce it waits behind, if queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_behind_nonce: Option<u64>,
    /// How long it has been pending, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_ms: Option<u64>,
}

/// Most entries `GET /mempool/transactions` returns (`limit` above it is
/// lowered to it).
pub const RPC_MEMPOOL_LIST_MAX: usize = 1_000;
/// Entries `GET /mempool/transactions` returns without `limit`.
pub const RPC_MEMPOOL_LIST_DEFAULT: usize = 100;

/// `GET /mempool/transactions`: pending transactions, oldest first.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MempoolTransactionsView {
    /// Every pending transaction (executable plus queued), not only those
    /// listed.
    pub count: usize,
    /// The oldest `limit`, oldest first.
    pub transactions: Vec<PendingTransactionView>,
}

/// The query of `GET /mempool/transactions`.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    /// Most entries.
    pub limit: Option<usize>,
}

/// The proposer of the round in `GET /consensus`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProposerView {
    /// Index in the validator set.
    pub index: u32,
    /// Name.
    pub name: String,
    /// Operator address.
    pub address: Address,
}

/// The votes for one value in `GET /consensus`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VoteValueView {
    /// The block voted for (null: nil).
    pub block: Option<Hash>,
    /// The power of its voters.
    pub power: u64,
    /// Their indexes in the set.
    pub validators: Vec<u32>,
}

/// Prevotes or precommits of the round in `GET /consensus`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ConsensusVotesView {
    /// Power of every validator seen voting (any value).
    pub power: u64,
    /// Validators seen voting.
    pub voters: usize,
    /// Per value voted for, most power first.
    pub by_value: Vec<VoteValueView>,
}

/// `GET /consensus`: where this node's consensus stands.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ConsensusStateView {
    /// The height being decided.
    pub height: u64,
    /// The round.
    pub round: u32,
    /// `propose`, `prevote`, `precommit`, `decided`, `unstarted`, or
    /// `waiting_for_transactions` (the node holds the height until
    /// transactions arrive).
    pub step: String,
    /// The proposer of this height and round.
    pub proposer: Option<ProposerView>,
    /// The block proposed in this round, once this node has the proposal.
    pub proposal: Option<Hash>,
    /// The round of the block this node is locked on (null: none).
    pub locked_round: Option<u32>,
    /// The block it is locked on.
    pub locked_block: Option<Hash>,
    /// The round of its valid value (null: none).
    pub valid_round: Option<u32>,
    /// Total voting power of the height's set.
    pub total_power: u64,
    /// Power a quorum needs (more than two thirds).
    pub quorum_power: u64,
    /// Prevotes of this round.
    pub prevotes: ConsensusVotesView,
    /// Precommits of this round.
    pub precommits: ConsensusVotesView,
    /// This node's index in the set (null: not a validator of it).
    pub validator_index: Option<u32>,
    /// When the snapshot was taken (ms since the epoch).
    pub updated_ms: u64,
}

/// Most entries one page of `GET /account/{address}/transactions` holds
/// (`limit` above it is lowered to it).
pub const RPC_HISTORY_PAGE_MAX: usize = cairn_store::HISTORY_PAGE_MAX;
/// Entries a page of `GET /account/{address}/transactions` holds without
/// `limit`.
pub const RPC_HISTORY_PAGE_DEFAULT: usize = 20;

/// One transaction of an account's history.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HistoryEntryView {
    /// Transaction hash.
    pub hash: Hash,
    /// Height of its block.
    pub height: u64,
    /// Position in the block.
    pub index: u32,
    /// `sent` (the account is the sender), `received` (the recipient of a
    /// transfer) or `self` (a transfer to itself).
    pub direction: String,
    /// The signed transaction.
    pub transaction: cairn_types::SignedTransaction,
}

/// `GET /account/{address}/transactions`: a page of an account's
/// committed transactions, newest first.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HistoryView {
    /// The account.
    pub address: Address,
    /// The transactions, newest first.
    pub transactions: Vec<HistoryEntryView>,
    /// The cursor of the next (older) page (`?before=`); null when this
    /// page is the last.
    pub next: Option<String>,
    /// The lowest height this node holds history of (older history was
    /// pruned, or precedes a state-sync restore).
    pub lowest_height: u64,
}

/// The query of `GET /account/{address}/transactions`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Most entries to return (default [`RPC_HISTORY_PAGE_DEFAULT`], at
    /// most [`RPC_HISTORY_PAGE_MAX`]).
    pub limit: Option<usize>,
    /// The `next` cursor of the previous page.
    pub before: Option<String>,
}

/// The opaque cursor of a history position: the hex of its height (8
/// bytes) and index (4 bytes), big-endian.
pub fn history_cursor(height: u64, index: u32) -> String {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&height.to_be_bytes());
    bytes[8..].copy_from_slice(&index.to_be_bytes());
    hex::encode(bytes)
}

/// Parses a cursor made by [`history_cursor`].
pub fn parse_history_cursor(text: &str) -> Result<(u64, u32), RpcError> {
    let bad = || {
        RpcError::malformed(format!(
            "before={text:?} is not a history cursor; pass the `next` value of the previous page unchanged"
        ))
    };
    if text.len() != 24 {
        return Err(bad());
    }
    let bytes = hex::decode(text).map_err(|_| bad())?;
    let height = u64::from_be_bytes(bytes[..8].try_into().map_err(|_| bad())?);
    let index = u32::from_be_bytes(bytes[8..].try_into().map_err(|_| bad())?);
    Ok((height, index))
}

/// A WebSocket event: one per committed block.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewBlockEvent {
    /// Always `new_block`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Height.
    pub height: u64,
    /// Block hash.
    pub hash: Hash,
    /// Block time.
    pub time: u64,
    /// Transaction hashes in order.
    pub transactions: Vec<Hash>,
    /// The accounts each transaction touches, in the same order (for the
    /// account subscriptions; not sent to clients). Empty when no one
    /// subscribed when the block committed.
    #[serde(skip)]
    pub parties: Arc<Vec<TransactionParties>>,
}

/// The accounts a committed transaction touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransactionParties {
    /// The sender.
    pub sender: Address,
    /// The recipient of a transfer (`None` for the staking kinds).
    pub recipient: Option<Address>,
}

impl TransactionParties {
    /// The parties of `transaction`.
    pub fn of(transaction: &cairn_types::Transaction) -> TransactionParties {
        TransactionParties {
            sender: transaction.sender_address(),
            recipient: transaction.is_transfer().then_some(transaction.recipient),
        }
    }

    /// How it touches `address`: `sent`, `received`, `self`, or `None`.
    pub fn direction(&self, address: &Address) -> Option<&'static str> {
        match (self.sender == *address, self.recipient == Some(*address)) {
            (true, true) => Some("self"),
            (true, false) => Some("sent"),
            (false, true) => Some("received"),
            (false, false) => None,
        }
    }
}

/// What the RPC needs from the node.
pub trait RpcBackend: Send + Sync + 'static {
    /// `GET /status`
    fn status(&self) -> Result<StatusView, RpcError>;
    /// `GET /ready`. The default knows only what `/status` says.
    fn readiness(&self) -> Result<ReadinessView, RpcError> {
        let status = self.status()?;
        let mut reasons = Vec::new();
        if status.catching_up {
            reasons.push("catching up with the chain".to_string());
        }
        Ok(ReadinessView {
            ready: reasons.is_empty(),
            latest_height: status.latest_height,
            catching_up: status.catching_up,
            peers: status.peers,
            should_have_peers: true,
            reasons,
            ..ReadinessView::default()
        })
    }
    /// Submits canonical transaction bytes; one result per input.
    fn submit(&self, transactions: &[Vec<u8>]) -> Vec<Result<Hash, RpcError>>;
    /// For each accepted hash, the missing nonce it waits behind (`None`:
    /// executable now).
    fn queued_behind(&self, hashes: &[Hash]) -> Vec<Option<u64>> {
        vec![None; hashes.len()]
    }
    /// A committed transaction.
    fn transaction(&self, hash: &Hash) -> Result<Option<TransactionView>, RpcError>;
    /// The lowest height whose block the node holds (1 unless it prunes).
    fn lowest_height(&self) -> u64 {
        1
    }
    /// A block by height (`None`: the latest).
    fn block_by_height(&self, height: Option<Height>) -> Result<Option<BlockView>, RpcError>;
    /// A block by hash.
    fn block_by_hash(&self, hash: &Hash) -> Result<Option<BlockView>, RpcError>;
    /// An account.
    fn account(&self, address: &Address) -> Result<AccountView, RpcError>;
    /// The committed transactions touching `address`, newest first: those
    /// before position `before` (height, index), at most `limit`.
    fn account_history(
        &self,
        _address: &Address,
        _before: Option<(Height, u32)>,
        _limit: usize,
    ) -> Result<Vec<HistoryEntryView>, RpcError> {
        Err(RpcError::not_found("this node keeps no account history"))
    }
    /// The lowest height whose transactions the history lists.
    fn history_lowest_height(&self) -> u64 {
        self.lowest_height()
    }
    /// A proof of the committed account (`None`: no such account).
    fn account_proof(&self, _address: &Address) -> Result<Option<AccountProofView>, RpcError> {
        Err(RpcError::not_found("this node does not serve proofs"))
    }
    /// The inclusion proof of a committed transaction at `height`,
    /// `index`.
    fn inclusion_proof(
        &self,
        _height: Height,
        _index: u32,
    ) -> Result<Option<InclusionProofView>, RpcError> {
        Err(RpcError::not_found("this node does not serve proofs"))
    }
    /// The header of a committed height.
    fn header(&self, _height: Height) -> Result<Option<cairn_types::Header>, RpcError> {
        Ok(None)
    }
    /// The commit certificate of a committed height.
    fn certificate(
        &self,
        _height: Height,
    ) -> Result<Option<cairn_types::CommitCertificate>, RpcError> {
        Ok(None)
    }
    /// The validator set of `height` (default: the next height).
    fn validators(&self, height: Option<u64>) -> Result<ValidatorsView, RpcError>;
    /// Connected peers.
    fn peers(&self) -> Result<Vec<PeerView>, RpcError>;
    /// Mempool size.
    fn mempool(&self) -> Result<MempoolView, RpcError>;
    /// `GET /fees`.
    fn fees(&self) -> Result<FeesView, RpcError> {
        Err(RpcError::not_found("this node does not report fees"))
    }
    /// At most `limit` pending transactions, oldest first, and the total
    /// pending.
    fn mempool_transactions(&self, _limit: usize) -> Result<MempoolTransactionsView, RpcError> {
        Err(RpcError::not_found("this node does not list its mempool"))
    }
    /// `GET /genesis`: the chain's genesis file.
    fn genesis(&self) -> Result<serde_json::Value, RpcError> {
        Err(RpcError::not_found("this node does not serve its genesis"))
    }
    /// `GET /consensus`.
    fn consensus(&self) -> Result<ConsensusStateView, RpcError> {
        Err(RpcError::not_found(
            "this node does not report its consensus state",
        ))
    }
    /// A pending transaction of the mempool.
    fn pending_transaction(
        &self,
        _hash: &Hash,
    ) -> Result<Option<PendingTransactionView>, RpcError> {
        Ok(None)
    }
    /// Evidence seen or committed.
    fn evidence(&self) -> Result<Vec<cairn_types::Evidence>, RpcError>;
    /// A stream of new blocks.
    fn subscribe(&self) -> broadcast::Receiver<NewBlockEvent>;
    /// A stream of transactions dropped from the mempool uncommitted
    /// (`None`: this node does not report drops).
    fn subscribe_drops(&self) -> Option<broadcast::Receiver<crate::mempool::DroppedTransaction>> {
        None
    }
}

type Backend = Arc<dyn RpcBackend>;

/// Every route of the API, `(method, path)`, in the order node/RPC.md
/// lists them: the router is built from this list ([`router`]), and a test
/// checks it against the route table of node/RPC.md, so neither drifts.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/status"),
    ("GET", "/genesis"),
    ("GET", "/consensus"),
    ("POST", "/tx"),
    ("POST", "/txs"),
    ("GET", "/tx/{hash}"),
    ("GET", "/block/{height}"),
    ("GET", "/block/hash/{hash}"),
    ("GET", "/header/{height}"),
    ("GET", "/certificate/{height}"),
    ("GET", "/account/{address}"),
    ("GET", "/account/{address}/transactions"),
    ("GET", "/validators"),
    ("GET", "/peers"),
    ("GET", "/mempool"),
    ("GET", "/mempool/transactions"),
    ("GET", "/mempool/transactions/{hash}"),
    ("GET", "/mempool/tx/{hash}"),
    ("GET", "/fees"),
    ("GET", "/evidence"),
    ("GET", "/ws"),
];

/// The handler of a route of [`ROUTES`] (`None`: no such route).
fn route_handler(method: &str, path: &str) -> Option<axum::routing::MethodRouter<Backend>> {
    Some(match (method, path) {
        ("GET", "/health") => get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        ("GET", "/ready") => get(ready),
        ("GET", "/status") => get(status),
        ("GET", "/genesis") => get(genesis),
        ("GET", "/consensus") => get(consensus),
        ("POST", "/tx") => post(submit_one),
        ("POST", "/txs") => post(submit_many),
        ("GET", "/tx/{hash}") => get(transaction),
        ("GET", "/block/{height}") => get(block_by_height),
        ("GET", "/block/hash/{hash}") => get(block_by_hash),
        ("GET", "/header/{height}") => get(header),
        ("GET", "/certificate/{height}") => get(certificate),
        ("GET", "/account/{address}") => get(account),
        ("GET", "/account/{address}/transactions") => get(account_history),
        ("GET", "/validators") => get(validators),
        ("GET", "/peers") => get(peers),
        ("GET", "/mempool") => get(mempool),
        ("GET", "/mempool/transactions") => get(mempool_transactions),
        ("GET", "/mempool/transactions/{hash}") | ("GET", "/mempool/tx/{hash}") => {
            get(pending_transaction)
        }
        ("GET", "/fees") => get(fees),
        ("GET", "/evidence") => get(evidence),
        ("GET", "/ws") => get(websocket),
        _ => return None,
    })
}

/// The router of the RPC API over `backend`: the routes of [`ROUTES`].
pub fn router(backend: Backend) -> Router {
    let mut router = Router::new();
    for (method, path) in ROUTES {
        // Every entry has a handler (a unit test checks it).
        if let Some(handler) = route_handler(method, path) {
            router = router.route(path, handler);
        }
    }
    router
        .fallback(|| async { RpcError::not_found("no such endpoint; see node/RPC.md for the API") })
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            RpcError {
                status: StatusCode::METHOD_NOT_ALLOWED,
                code: "method_not_allowed".into(),
                message: format!(
                    "{method} is not allowed on this endpoint; see node/RPC.md for the API"
                ),
            }
        })
        .layer(axum::middleware::map_response(into_error_shape))
        .layer(DefaultBodyLimit::max(RPC_BODY_BYTES_MAX))
        .layer(axum::Extension(WebsocketSlots(Arc::new(
            tokio::sync::Semaphore::new(RPC_WEBSOCKETS_MAX),
        ))))
        .with_state(backend)
}

/// Largest body of an error answer rewritten by [`into_error_shape`].
const REWRITTEN_ERROR_BYTES_MAX: usize = 64 * 1024;

/// Gives every error answer the `{"error": {"code", "message"}}` shape,
/// including those axum makes itself (a path that is not UTF-8, `/ws`
/// without an upgrade, ...): a 4xx or 5xx whose body is not JSON gets its
/// text as the message.
async fn into_error_shape(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, REWRITTEN_ERROR_BYTES_MAX).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("the request failed")
            .to_string()
    } else {
        text
    };
    let code = match status {
        StatusCode::BAD_REQUEST => "malformed_request".to_string(),
        StatusCode::NOT_FOUND => "not_found".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed".to_string(),
        StatusCode::UPGRADE_REQUIRED => "upgrade_required".to_string(),
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large".to_string(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type".to_string(),
        other => other
            .canonical_reason()
            .unwrap_or("error")
            .to_lowercase()
            .replace([' ', '-'], "_"),
    };
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let rewritten = RpcError {
        status,
        code,
        message,
    }
    .into_response();
    let (new_parts, body) = rewritten.into_parts();
    parts.headers.extend(new_parts.headers);
    Response::from_parts(parts, body)
}

/// Most WebSocket subscriptions open at once.
pub const RPC_WEBSOCKETS_MAX: usize = 256;

/// The free WebSocket subscription slots.
#[derive(Clone)]
struct WebsocketSlots(Arc<tokio::sync::Semaphore>);

/// Binds `address` (port 0 picks one) and returns the listener and the
/// address actually bound.
pub async fn bind(address: SocketAddr) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

async fn status(State(backend): State<Backend>) -> Result<Json<StatusView>, RpcError> {
    backend.status().map(Json)
}

/// 200 with the checks when ready; 503 with the error shape (code
/// `not_ready`, the reasons in the message) and the same checks otherwise.
async fn ready(State(backend): State<Backend>) -> Result<Response, RpcError> {
    let readiness = backend.readiness()?;
    if readiness.ready {
        return Ok(Json(readiness).into_response());
    }
    let mut body = serde_json::json!({
        "error": {
            "code": "not_ready",
            "message": format!("the node is not ready: {}", readiness.reasons.join("; ")),
        }
    });
    if let (Some(object), Ok(serde_json::Value::Object(checks))) =
        (body.as_object_mut(), serde_json::to_value(&readiness))
    {
        object.extend(checks);
    }
    Ok((StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitOne {
    tx: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitMany {
    txs: Vec<String>,
}

/// The answer to an accepted submission.
#[derive(Serialize)]
struct HashBody {
    hash: Hash,
    /// `pending` (executable now) or `queued` (behind a missing nonce).
    status: &'static str,
    /// The nonce a queued transaction waits for.
    #[serde(skip_serializing_if = "Option::is_none")]
    queued_behind_nonce: Option<u64>,
}

impl HashBody {
    fn new(hash: Hash, queued_behind_nonce: Option<u64>) -> HashBody {
        HashBody {
            hash,
            status: if queued_behind_nonce.is_some() {
                "queued"
            } else {
                "pending"
            },
            queued_behind_nonce,
        }
    }
}

/// A request body, or axum's reason for refusing it (too large, unreadable).
type Body = Result<Bytes, axum::extract::rejection::BytesRejection>;

fn parse_json<T: serde::de::DeserializeOwned>(body: Body, shape: &str) -> Result<T, RpcError> {
    let body = body.map_err(|rejection| RpcError {
        status: rejection.status(),
        code: if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large".into()
        } else {
            "malformed_request".into()
        },
        message: format!(
            "{}; request bodies are limited to {RPC_BODY_BYTES_MAX} bytes",
            rejection.body_text()
        ),
    })?;
    serde_json::from_slice(&body)
        .map_err(|error| RpcError::malformed(format!("body is not {shape}: {error}")))
}

fn parse_transaction_hex(text: &str) -> Result<Vec<u8>, RpcError> {
    let trimmed = text.strip_prefix("0x").unwrap_or(text);
    if trimmed.len() > cairn_types::limits::TRANSACTION_BYTES_MAX * 2 {
        return Err(RpcError {
            status: StatusCode::BAD_REQUEST,
            code: "too_large".into(),
            message: format!(
                "transaction hex is {} characters, the limit is {}",
                trimmed.len(),
                cairn_types::limits::TRANSACTION_BYTES_MAX * 2
            ),
        });
    }
    hex::decode(trimmed).map_err(|error| RpcError {
        status: StatusCode::BAD_REQUEST,
        code: "malformed_transaction".into(),
        message: format!("tx is not hex: {error}"),
    })
}

/// Longest `POST /tx?wait=commit` waits for the commit (then 504
/// `commit_timeout`; the transaction stays pending).
pub const RPC_WAIT_COMMIT_TIMEOUT_MS: u64 = 20_000;

/// The query of `POST /tx`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitQuery {
    /// `commit`: answer once the transaction is in a block.
    pub wait: Option<String>,
}

async fn submit_one(
    State(backend): State<Backend>,
    query: Result<axum::extract::Query<SubmitQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<Response, RpcError> {
    let axum::extract::Query(query) = query.map_err(|error| {
        RpcError::malformed(format!(
            "{}; write POST /tx or POST /tx?wait=commit",
            error.body_text()
        ))
    })?;
    let wait = match query.wait.as_deref() {
        None => false,
        Some("commit") => true,
        Some(other) => {
            return Err(RpcError::malformed(format!(
                "wait={other:?} is not known; the one value is wait=commit"
            )))
        }
    };
    let request: SubmitOne = parse_json(body, r#"{"tx": "<hex>"}"#)?;
    let bytes = parse_transaction_hex(&request.tx)?;
    // Subscribed before submitting, so the commit cannot be missed.
    let mut events = wait.then(|| (backend.subscribe(), backend.subscribe_drops()));
    let submitter = Arc::clone(&backend);
    let (result, queued_behind) = tokio::task::spawn_blocking(move || {
        let result = submitter
            .submit(&[bytes])
            .pop()
            .unwrap_or_else(|| Err(RpcError::internal("no result for the transaction")));
        let queued_behind = match &result {
            Ok(hash) => submitter.queued_behind(&[*hash]).pop().flatten(),
            Err(_) => None,
        };
        (result, queued_behind)
    })
    .await
    .map_err(|error| RpcError::internal(format!("submission task failed: {error}")))?;
    let hash = result?;
    match events.take() {
        None => Ok(Json(HashBody::new(hash, queued_behind)).into_response()),
        Some((blocks, drops)) => wait_for_commit(&backend, hash, blocks, drops)
            .await
            .map(|body| Json(body).into_response()),
    }
}

/// `POST /tx?wait=commit`: where the transaction committed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CommittedBody {
    /// Transaction hash.
    pub hash: Hash,
    /// Always `committed`.
    pub status: String,
    /// Height of its block.
    pub height: u64,
    /// Position in the block.
    pub index: u32,
}

/// Waits (at most [`RPC_WAIT_COMMIT_TIMEOUT_MS`]) for `hash` to commit
/// or leave the mempool.
async fn wait_for_commit(
    backend: &Backend,
    hash: Hash,
    mut blocks: broadcast::Receiver<NewBlockEvent>,
    mut drops: Option<broadcast::Receiver<crate::mempool::DroppedTransaction>>,
) -> Result<CommittedBody, RpcError> {
    let committed = |height: u64, index: u32| CommittedBody {
        hash,
        status: "committed".into(),
        height,
        index,
    };
    let deadline =
        tokio::time::Instant::now() + std::time::Duration::from_millis(RPC_WAIT_COMMIT_TIMEOUT_MS);
    loop {
        let next_drop = async {
            match drops.as_mut() {
                Some(drops) => drops.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                return Err(RpcError {
                    status: StatusCode::GATEWAY_TIMEOUT,
                    code: "commit_timeout".into(),
                    message: format!(
                        "transaction {hash} was accepted but not committed within {RPC_WAIT_COMMIT_TIMEOUT_MS} ms; it may still commit: GET /tx/{hash} (202 while pending)"
                    ),
                });
            }
            event = blocks.recv() => match event {
                Ok(event) => {
                    if let Some(index) = event.transactions.iter().position(|tx| *tx == hash) {
                        return Ok(committed(event.height, u32::try_from(index).unwrap_or(u32::MAX)));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Missed blocks: ask the store.
                    if let Some(view) = backend.transaction(&hash)? {
                        return Ok(committed(view.height, view.index));
                    }
                }
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(RpcError::internal("the node is shutting down"));
                }
            },
            dropped = next_drop => match dropped {
                Ok(dropped) if dropped.hash == hash => {
                    return Err(RpcError {
                        status: StatusCode::CONFLICT,
                        code: "dropped".into(),
                        message: format!(
                            "transaction {hash} left the mempool uncommitted ({}); see cairn_mempool_dropped_total in node/RPC.md",
                            dropped.reason
                        ),
                    });
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => drops = None,
            },
        }
    }
}

async fn submit_many(State(backend): State<Backend>, body: Body) -> Result<Response, RpcError> {
    let request: SubmitMany = parse_json(body, r#"{"txs": ["<hex>", ...]}"#)?;
    if request.txs.len() > RPC_BATCH_TRANSACTIONS_MAX {
        return Err(RpcError::malformed(format!(
            "{} transactions in one request, the limit is {RPC_BATCH_TRANSACTIONS_MAX}; split the batch",
            request.txs.len()
        )));
    }
    // Undecodable hex fails that entry alone.
    let mut decoded: Vec<Result<Vec<u8>, RpcError>> = request
        .txs
        .iter()
        .map(|text| parse_transaction_hex(text))
        .collect();
    let valid: Vec<Vec<u8>> = decoded
        .iter_mut()
        .filter_map(|entry| match entry {
            Ok(bytes) => Some(std::mem::take(bytes)),
            Err(_) => None,
        })
        .collect();
    let (submitted, queued_behind) = tokio::task::spawn_blocking(move || {
        let submitted = backend.submit(&valid);
        let accepted: Vec<Hash> = submitted
            .iter()
            .filter_map(|result| result.as_ref().ok().copied())
            .collect();
        let queued_behind = backend.queued_behind(&accepted);
        (submitted, queued_behind)
    })
    .await
    .map_err(|error| RpcError::internal(format!("submission task failed: {error}")))?;
    let mut submitted = submitted.into_iter();
    let mut queued_behind = queued_behind.into_iter();
    let results: Vec<serde_json::Value> = decoded
        .into_iter()
        .map(|entry| {
            let outcome = match entry {
                Ok(_) => submitted
                    .next()
                    .unwrap_or_else(|| Err(RpcError::internal("missing result"))),
                Err(error) => Err(error),
            };
            match outcome {
                Ok(hash) => serde_json::json!(HashBody::new(hash, queued_behind.next().flatten())),
                Err(error) => serde_json::json!(error.body()),
            }
        })
        .collect();
    Ok(Json(serde_json::json!({ "results": results })).into_response())
}

fn parse_hash(text: &str) -> Result<Hash, RpcError> {
    Hash::from_hex(text).map_err(|error| RpcError::malformed(error.to_string()))
}

async fn transaction(
    State(backend): State<Backend>,
    Path(hash): Path<String>,
    query: Result<axum::extract::Query<AccountQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, RpcError> {
    let hash = parse_hash(&hash)?;
    let axum::extract::Query(query) = query.map_err(|error| {
        RpcError::malformed(format!(
            "{}; write e.g. /tx/<hash>?prove=true",
            error.body_text()
        ))
    })?;
    let committed = backend.transaction(&hash)?;
    if committed.is_none() && !query.prove {
        // Pending in this node's mempool: 202, not a 404 (and not a 200,
        // which says committed).
        if let Some(pending) = backend.pending_transaction(&hash)? {
            return Ok(
                (StatusCode::ACCEPTED, Json(PendingStatusView::new(pending))).into_response(),
            );
        }
    }
    let mut view = committed.ok_or_else(|| {
        let lowest = backend.lowest_height();
        if lowest > 1 {
            // Its index entry may have been pruned with its block: a 404
            // still (clients wait on it for a pending transaction), saying so.
            RpcError::not_found(format!(
                "transaction {hash} is not in a block this node holds; it prunes old blocks and holds heights {lowest} and up only, so it was either never committed or committed below {lowest} (an archive node, pruning.keep_blocks = 0, knows)"
            ))
        } else {
            RpcError::not_found(format!("transaction {hash} is not in a committed block"))
        }
    })?;
    if query.prove {
        view.proof = backend.inclusion_proof(Height(view.height), view.index)?;
    }
    Ok(Json(view).into_response())
}

/// `GET /tx/{hash}` of a transaction pending in the mempool (status 202).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingStatusView {
    /// Transaction hash.
    pub hash: Hash,
    /// Always `pending`.
    pub status: String,
    /// The signed transaction.
    pub transaction: cairn_types::SignedTransaction,
    /// The missing nonce it waits behind, if queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_behind_nonce: Option<u64>,
}

impl PendingStatusView {
    fn new(pending: PendingTransactionView) -> PendingStatusView {
        PendingStatusView {
            hash: pending.hash,
            status: "pending".into(),
            transaction: pending.transaction,
            queued_behind_nonce: pending.queued_behind_nonce,
        }
    }
}

async fn block_by_height(
    State(backend): State<Backend>,
    Path(height): Path<String>,
) -> Result<Json<BlockView>, RpcError> {
    let height = if height == "latest" {
        None
    } else {
        Some(Height(height.parse().map_err(|_| {
            RpcError::malformed(format!(
                "{height:?} is not a height; use a number or `latest`"
            ))
        })?))
    };
    backend.block_by_height(height)?.map(Json).ok_or_else(|| {
        RpcError::not_found(match height {
            Some(height) => format!("no block at height {height} yet"),
            None => "no block committed yet".to_string(),
        })
    })
}

async fn block_by_hash(
    State(backend): State<Backend>,
    Path(hash): Path<String>,
) -> Result<Json<BlockView>, RpcError> {
    let hash = parse_hash(&hash)?;
    backend
        .block_by_hash(&hash)?
        .map(Json)
        .ok_or_else(|| RpcError::not_found(format!("no block with hash {hash}")))
}

async fn account(
    State(backend): State<Backend>,
    Path(address): Path<String>,
    query: Result<axum::extract::Query<AccountQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AccountView>, RpcError> {
    let address =
        Address::from_bech32(&address).map_err(|error| RpcError::malformed(error.to_string()))?;
    let axum::extract::Query(query) = query.map_err(|error| {
        RpcError::malformed(format!(
            "{}; write e.g. /account/cairn1...?prove=true",
            error.body_text()
        ))
    })?;
    let mut view = backend.account(&address)?;
    if query.prove {
        let proof = backend.account_proof(&address)?.ok_or_else(|| {
            RpcError::not_found("this node serves no proofs (it has no committed state)")
        })?;
        // The values the proof is of (read with it, under one lock).
        view.balance = proof.balance;
        view.nonce = proof.nonce;
        view.proof = Some(proof);
    }
    Ok(Json(view))
}

async fn account_history(
    State(backend): State<Backend>,
    Path(address): Path<String>,
    query: Result<axum::extract::Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<HistoryView>, RpcError> {
    let address =
        Address::from_bech32(&address).map_err(|error| RpcError::malformed(error.to_string()))?;
    let axum::extract::Query(query) = query.map_err(|error| {
        RpcError::malformed(format!(
            "{}; write e.g. /account/cairn1.../transactions?limit=20&before=<next of the previous page>",
            error.body_text()
        ))
    })?;
    let limit = query.limit.unwrap_or(RPC_HISTORY_PAGE_DEFAULT);
    if limit == 0 {
        return Err(RpcError::malformed(format!(
            "limit=0 asks for nothing; use 1 to {RPC_HISTORY_PAGE_MAX}"
        )));
    }
    let limit = limit.min(RPC_HISTORY_PAGE_MAX);
    let before = query
        .before
        .as_deref()
        .map(parse_history_cursor)
        .transpose()?
        .map(|(height, index)| (Height(height), index));
    let transactions = tokio::task::spawn_blocking({
        let backend = backend.clone();
        move || backend.account_history(&address, before, limit)
    })
    .await
    .map_err(|error| RpcError::internal(format!("history task failed: {error}")))??;
    let next = (transactions.len() == limit)
        .then(|| transactions.last())
        .flatten()
        .map(|last| history_cursor(last.height, last.index));
    Ok(Json(HistoryView {
        address,
        transactions,
        next,
        lowest_height: backend.history_lowest_height(),
    }))
}

fn parse_height(text: &str) -> Result<Height, RpcError> {
    text.parse()
        .map(Height)
        .map_err(|_| RpcError::malformed(format!("{text:?} is not a height; use a number")))
}

async fn header(
    State(backend): State<Backend>,
    Path(height): Path<String>,
) -> Result<Json<cairn_types::Header>, RpcError> {
    let height = parse_height(&height)?;
    backend
        .header(height)?
        .map(Json)
        .ok_or_else(|| RpcError::not_found(format!("no block at height {height} yet")))
}

async fn certificate(
    State(backend): State<Backend>,
    Path(height): Path<String>,
) -> Result<Json<cairn_types::CommitCertificate>, RpcError> {
    let height = parse_height(&height)?;
    backend
        .certificate(height)?
        .map(Json)
        .ok_or_else(|| RpcError::not_found(format!("no certificate of height {height} yet")))
}

async fn validators(
    State(backend): State<Backend>,
    query: Result<axum::extract::Query<ValidatorsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ValidatorsView>, RpcError> {
    let axum::extract::Query(query) = query.map_err(|error| {
        RpcError::malformed(format!(
            "{}; write e.g. /validators?height=12",
            error.body_text()
        ))
    })?;
    backend.validators(query.height).map(Json)
}

async fn peers(State(backend): State<Backend>) -> Result<Json<serde_json::Value>, RpcError> {
    Ok(Json(serde_json::json!({ "peers": backend.peers()? })))
}

async fn mempool(State(backend): State<Backend>) -> Result<Json<MempoolView>, RpcError> {
    backend.mempool().map(Json)
}

async fn fees(State(backend): State<Backend>) -> Result<Json<FeesView>, RpcError> {
    backend.fees().map(Json)
}

async fn pending_transaction(
    State(backend): State<Backend>,
    Path(hash): Path<String>,
) -> Result<Json<PendingTransactionView>, RpcError> {
    let hash = parse_hash(&hash)?;
    backend.pending_transaction(&hash)?.map(Json).ok_or_else(|| {
        RpcError::not_found(format!(
            "transaction {hash} is not pending in this node's mempool (committed, dropped, or never seen: GET /tx/{hash} finds a committed one)"
        ))
    })
}

async fn mempool_transactions(
    State(backend): State<Backend>,
    query: Result<axum::extract::Query<LimitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<MempoolTransactionsView>, RpcError> {
    let axum::extract::Query(query) = query.map_err(|error| {
        RpcError::malformed(format!(
            "{}; write e.g. /mempool/transactions?limit=100",
            error.body_text()
        ))
    })?;
    let limit = query.limit.unwrap_or(RPC_MEMPOOL_LIST_DEFAULT);
    if limit == 0 {
        return Err(RpcError::malformed(format!(
            "limit=0 asks for nothing; use 1 to {RPC_MEMPOOL_LIST_MAX}"
        )));
    }
    backend
        .mempool_transactions(limit.min(RPC_MEMPOOL_LIST_MAX))
        .map(Json)
}

async fn genesis(State(backend): State<Backend>) -> Result<Json<serde_json::Value>, RpcError> {
    backend.genesis().map(Json)
}

async fn consensus(State(backend): State<Backend>) -> Result<Json<ConsensusStateView>, RpcError> {
    backend.consensus().map(Json)
}

async fn evidence(State(backend): State<Backend>) -> Result<Json<serde_json::Value>, RpcError> {
    Ok(Json(serde_json::json!({ "evidence": backend.evidence()? })))
}

async fn websocket(
    State(backend): State<Backend>,
    axum::Extension(slots): axum::Extension<WebsocketSlots>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, RpcError> {
    let slot = slots.0.try_acquire_owned().map_err(|_| RpcError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "too_many_subscriptions".into(),
        message: format!(
            "{RPC_WEBSOCKETS_MAX} WebSocket subscriptions are open, the limit; retry later"
        ),
    })?;
    Ok(upgrade
        .max_message_size(RPC_WEBSOCKET_MESSAGE_BYTES_MAX)
        .on_upgrade(move |socket| async move {
            crate::subscriptions::serve(socket, backend).await;
            drop(slot);
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `(method, path)` rows of the route table of node/RPC.md: lines
    /// `| GET | /path | ... |`.
    fn documented_routes() -> Vec<(String, String)> {
        include_str!("../RPC.md")
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let method = cells.get(1)?.trim_matches('`');
                let path = cells.get(2)?.trim_matches('`');
                (["GET", "POST"].contains(&method) && path.starts_with('/'))
                    .then(|| (method.to_string(), path.to_string()))
            })
            .collect()
    }

    #[test]
    fn every_route_has_a_handler_and_is_listed_once() {
        for (method, path) in ROUTES {
            assert!(
                route_handler(method, path).is_some(),
                "{method} {path} has no handler"
            );
        }
        let mut unique: Vec<_> = ROUTES.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ROUTES.len(), "a route is listed twice");
        assert!(route_handler("GET", "/nope").is_none());
    }

    #[test]
    fn the_route_table_of_rpc_md_is_the_router() {
        let documented = documented_routes();
        let routes: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(method, path)| (method.to_string(), path.to_string()))
            .collect();
        assert_eq!(
            documented, routes,
            "node/RPC.md's route table and rpc::ROUTES differ: keep them the same, in the same order"
        );
    }

    /// The RPC's own error codes and their statuses (the mempool's
    /// rejections aside): each is in node/RPC.md's error table on the row
    /// of its status.
    #[test]
    fn error_statuses_are_documented() {
        let codes: &[(u16, &str)] = &[
            (400, "malformed_request"),
            (400, "malformed_transaction"),
            (400, "too_large"),
            (404, "not_found"),
            (405, "method_not_allowed"),
            (409, "dropped"),
            (410, "pruned"),
            (413, "body_too_large"),
            (500, "internal"),
            (503, "catching_up"),
            (503, "not_ready"),
            (503, "too_many_subscriptions"),
            (504, "commit_timeout"),
        ];
        let doc = include_str!("../RPC.md");
        for (status, code) in codes {
            let row = doc
                .lines()
                .find(|line| line.starts_with(&format!("| {status} |")))
                .unwrap_or_else(|| panic!("node/RPC.md has no error row for {status}"));
            assert!(
                row.contains(&format!("`{code}`")),
                "node/RPC.md's {status} row does not name `{code}`: {row}"
            );
        }
        assert_eq!(RpcError::internal("x").status.as_u16(), 500);
        assert_eq!(RpcError::pruned(1, 2).status.as_u16(), 410);
        assert_eq!(
            parse_transaction_hex(&"00".repeat(cairn_types::limits::TRANSACTION_BYTES_MAX + 1))
                .unwrap_err()
                .status
                .as_u16(),
            400
        );
    }
}
