//! A client of a node's public RPC (`node/RPC.md`): HTTP/JSON requests
//! and the WebSocket stream of new blocks. Every body and message read is
//! bounded ([`RPC_RESPONSE_BYTES_MAX`], [`WS_MESSAGE_BYTES_MAX`]).

use cairn_types::{Address, Hash, SignedTransaction};
use futures::{SinkExt, StreamExt};
use serde::{de::DeserializeOwned, Deserialize};
use serde_json::Value;
use tokio_tungstenite::{
    tungstenite::{protocol::WebSocketConfig, Message},
    MaybeTlsStream, WebSocketStream,
};

use crate::{
    error::{CliError, Result},
    limits::{
        RPC_CONNECT_TIMEOUT, RPC_REQUEST_TIMEOUT, RPC_RESPONSE_BYTES_MAX, WS_FRAME_BYTES_MAX,
        WS_MESSAGE_BYTES_MAX,
    },
};

/// The node URL used when neither `--node` nor `CAIRN_NODE` is given.
pub const DEFAULT_NODE_URL: &str = "http://127.0.0.1:26657";

/// Characters of a non-JSON error body quoted in an error message.
const QUOTED_BODY_CHARS_MAX: usize = 200;

/// `GET /status`.
#[derive(Clone, Debug, Deserialize)]
pub struct Status {
    /// The chain id.
    pub chain_id: String,
    /// The genesis hash (hex).
    #[serde(default)]
    pub genesis_hash: String,
    /// The node's libp2p peer id.
    #[serde(default)]
    pub node_id: String,
    /// The node's name.
    #[serde(default)]
    pub moniker: String,
    /// Whether the node is a validator.
    #[serde(default)]
    pub validator: bool,
    /// Height of the latest committed block.
    pub latest_height: u64,
    /// Hash of the latest committed block (hex).
    #[serde(default)]
    pub latest_hash: String,
    /// Time of the latest committed block (ms since the Unix epoch).
    #[serde(default)]
    pub latest_time: u64,
    /// Whether the node is still syncing.
    #[serde(default)]
    pub catching_up: bool,
    /// Number of connected peers.
    #[serde(default)]
    pub peers: u64,
    /// The genesis time (ms since the Unix epoch), if the node reports it.
    #[serde(default)]
    pub genesis_time: Option<u64>,
    /// The least fee the node admits (0 from a node that does not say).
    #[serde(default)]
    pub min_fee: u64,
    /// The lowest height whose block the node holds (above 1 when it
    /// prunes; 1 from a node that does not say).
    #[serde(default = "first_height")]
    pub lowest_height: u64,
}

fn first_height() -> u64 {
    1
}

/// `GET /fees`.
#[derive(Clone, Debug, Deserialize)]
pub struct Fees {
    /// The chain's minimum fee.
    pub chain_min_fee: u64,
    /// The least fee the node admits.
    pub node_min_fee: u64,
    /// The least fee that enters the node's mempool now.
    pub mempool_entry_fee: u64,
    /// Recent blocks the percentiles are over.
    #[serde(default)]
    pub blocks: usize,
    /// The fee that entered half of the recent blocks.
    #[serde(default)]
    pub p50: Option<u64>,
    /// The fee that entered 90% of the recent blocks.
    #[serde(default)]
    pub p90: Option<u64>,
    /// What to pay when no fee is given.
    pub suggested_fee: u64,
}

/// `GET /mempool`.
#[derive(Clone, Debug, Deserialize)]
pub struct Mempool {
    /// Pending transactions.
    pub count: u64,
    /// Pending bytes.
    pub bytes: u64,
    /// Pending transactions that can run now.
    #[serde(default)]
    pub executable: u64,
    /// Pending transactions waiting behind a missing nonce.
    #[serde(default)]
    pub queued: u64,
}

/// `GET /mempool/tx/{hash}`.
#[derive(Clone, Debug, Deserialize)]
pub struct PendingTransaction {
    /// The signed transaction.
    pub transaction: SignedTransaction,
}

/// `GET /account/{address}`.
#[derive(Clone, Debug, Deserialize)]
pub struct Account {
    /// The address, `cairn1...`.
    pub address: String,
    /// The balance.
    pub balance: u64,
    /// Committed transfers sent.
    pub nonce: u64,
    /// The nonce the next transfer must carry (counts pending ones).
    pub next_nonce: u64,
    /// Transfers in the node's mempool that can run now (`None` from a
    /// node that does not say).
    #[serde(default)]
    pub pending: Option<u64>,
    /// Transfers in the node's mempool waiting behind a missing nonce.
    #[serde(default)]
    pub queued: Option<u64>,
    /// The nonce the queued transfers wait for.
    #[serde(default)]
    pub missing_nonce: Option<u64>,
    /// The validator this account operates.
    #[serde(default)]
    pub stake: Option<CandidateJson>,
    /// Its unbonding entries.
    #[serde(default)]
    pub unbonding: Vec<UnbondingJson>,
}

/// `POST /tx`.
#[derive(Clone, Debug, Deserialize)]
pub struct Submitted {
    /// The transaction hash (hex).
    pub hash: String,
    /// `pending` (it can run now) or `queued` (it waits behind a missing
    /// nonce of its sender); `None` from a node that does not say.
    #[serde(default)]
    pub status: Option<String>,
    /// The nonce a queued transaction waits for.
    #[serde(default)]
    pub queued_behind_nonce: Option<u64>,
}

impl Submitted {
    /// The nonce this transaction waits for, when the node queued it.
    pub fn waits_for(&self) -> Option<u64> {
        match self.status.as_deref() {
            Some("queued") => self.queued_behind_nonce,
            _ => None,
        }
    }
}

/// The transfer inside `GET /tx/{hash}`.
#[derive(Clone, Debug, Deserialize)]
pub struct TransferJson {
    /// Chain id.
    pub chain_id: String,
    /// Sender public key (hex).
    pub sender: String,
    /// Recipient address.
    pub recipient: String,
    /// Amount.
    pub amount: u64,
    /// Fee.
    pub fee: u64,
    /// Nonce.
    pub nonce: u64,
    /// Memo.
    #[serde(default)]
    pub memo: String,
    /// What it does (`"transfer"`, or an object naming a staking kind).
    #[serde(default)]
    pub kind: Value,
}

/// A signed transfer in `GET /tx/{hash}`.
#[derive(Clone, Debug, Deserialize)]
pub struct SignedTransferJson {
    /// The transfer.
    pub transaction: TransferJson,
    /// Signature (hex).
    pub signature: String,
}

/// `GET /tx/{hash}`.
#[derive(Clone, Debug, Deserialize)]
pub struct CommittedTransaction {
    /// The transaction hash (hex).
    pub hash: String,
    /// Height of its block.
    pub height: u64,
    /// Its index in the block.
    pub index: u64,
    /// The transfer.
    pub transaction: SignedTransferJson,
}

/// One entry of `GET /account/{address}/transactions`.
#[derive(Clone, Debug, Deserialize)]
pub struct HistoryEntry {
    /// The transaction hash (hex).
    pub hash: String,
    /// Height of its block.
    pub height: u64,
    /// Its index in the block.
    pub index: u64,
    /// `sent`, `received` or `self`.
    pub direction: String,
    /// The transaction.
    pub transaction: SignedTransferJson,
}

/// `GET /account/{address}/transactions`.
#[derive(Clone, Debug, Deserialize)]
pub struct History {
    /// The account.
    pub address: String,
    /// Newest first.
    pub transactions: Vec<HistoryEntry>,
    /// The cursor of the next, older page.
    #[serde(default)]
    pub next: Option<String>,
    /// The lowest height the node holds history of.
    #[serde(default)]
    pub lowest_height: u64,
}

/// A block header in `GET /block/...`.
#[derive(Clone, Debug, Deserialize)]
pub struct HeaderJson {
    /// Chain id.
    pub chain_id: String,
    /// Height.
    pub height: u64,
    /// Time (ms since the Unix epoch).
    pub time: u64,
    /// Parent block hash.
    pub parent_hash: String,
    /// Proposer address.
    pub proposer: String,
    /// Merkle root of the transactions.
    #[serde(default)]
    pub transactions_root: String,
    /// State root after the block.
    #[serde(default)]
    pub state_root: String,
}

/// The commit certificate in `GET /block/...`.
#[derive(Clone, Debug, Deserialize)]
pub struct CertificateJson {
    /// Round of the decision.
    pub round: u64,
    /// Precommit signatures.
    #[serde(default)]
    pub signatures: Vec<Value>,
}

/// `GET /block/{height}`.
#[derive(Clone, Debug, Deserialize)]
pub struct BlockJson {
    /// Block hash.
    pub hash: String,
    /// Header.
    pub header: HeaderJson,
    /// Transaction hashes, in order.
    #[serde(default)]
    pub transactions: Vec<String>,
    /// Commit certificate, if known yet.
    #[serde(default)]
    pub certificate: Option<CertificateJson>,
}

/// One validator in `GET /validators`.
#[derive(Clone, Debug, Deserialize)]
pub struct ValidatorJson {
    /// Index in the set.
    pub index: u64,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Public key (hex).
    pub public_key: String,
    /// Address.
    pub address: String,
    /// Voting power.
    pub power: u64,
    /// `bonded`, `jailed` or `unbonding` (empty from an older node).
    #[serde(default)]
    pub status: String,
}

/// A validator candidate in `GET /validators` and `GET /account`.
#[derive(Clone, Debug, Deserialize)]
pub struct CandidateJson {
    /// Operator address.
    pub operator: String,
    /// Consensus key (hex).
    pub validator_key: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Stake bonded.
    pub bonded: u64,
    /// Voting power it is worth.
    pub power: u64,
    /// `bonded`, `jailed` or `unbonding`.
    pub status: String,
    /// Height from which unjail is accepted.
    #[serde(default)]
    pub jailed_until: Option<u64>,
}

/// An unbonding entry in `GET /account`.
#[derive(Clone, Debug, Deserialize)]
pub struct UnbondingJson {
    /// Stake.
    pub amount: u64,
    /// Released at the end of this block.
    pub release_height: u64,
}

/// `GET /validators`.
#[derive(Clone, Debug, Deserialize)]
pub struct Validators {
    /// The height whose set this is (0 from an older node).
    #[serde(default)]
    pub height: u64,
    /// The set's hash.
    #[serde(default)]
    pub set_hash: String,
    /// Sum of voting power.
    pub total_power: u64,
    /// The validators.
    pub validators: Vec<ValidatorJson>,
    /// Every candidate (for the heights the current state decides).
    #[serde(default)]
    pub candidates: Vec<CandidateJson>,
}

/// One peer in `GET /peers`.
#[derive(Clone, Debug, Deserialize)]
pub struct PeerJson {
    /// libp2p peer id.
    pub peer_id: String,
    /// Multiaddress.
    #[serde(default)]
    pub address: String,
}

/// `GET /peers`.
#[derive(Clone, Debug, Deserialize)]
pub struct Peers {
    /// The peers.
    pub peers: Vec<PeerJson>,
}

/// A `new_block` event of `/ws`.
#[derive(Clone, Debug, Deserialize)]
pub struct NewBlock {
    /// Event type, `new_block`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Height.
    pub height: u64,
    /// Block hash.
    #[serde(default)]
    pub hash: String,
    /// Transaction hashes, in block order.
    #[serde(default)]
    pub transactions: Vec<String>,
}

/// Which block `GET /block/...` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockSelector {
    /// The latest committed block.
    Latest,
    /// The block at a height.
    Height(u64),
}

/// The node's error shape, `{"error": {"code", "message"}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// A client of one node.
#[derive(Clone, Debug)]
pub struct NodeClient {
    base_url: String,
    http: reqwest::Client,
}

impl NodeClient {
    /// A client of the node at `url` (`http://HOST:PORT`, optionally with
    /// a path prefix).
    pub fn new(url: &str) -> Result<NodeClient> {
        let bad = |reason: String| CliError::BadNodeUrl {
            url: url.to_string(),
            reason,
        };
        let parsed = reqwest::Url::parse(url).map_err(|error| bad(error.to_string()))?;
        if parsed.scheme() != "http" {
            return Err(bad(format!(
                "scheme {:?} is not supported; use http:// (cairnd serves plain HTTP)",
                parsed.scheme()
            )));
        }
        if parsed.host_str().is_none() {
            return Err(bad("it has no host".to_string()));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(bad("it must not have a query or a fragment".to_string()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(RPC_CONNECT_TIMEOUT)
            .timeout(RPC_REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| bad(format!("cannot build an HTTP client: {error}")))?;
        Ok(NodeClient {
            base_url: parsed.as_str().trim_end_matches('/').to_string(),
            http,
        })
    }

    /// The node's base URL.
    pub fn url(&self) -> &str {
        &self.base_url
    }

    /// `GET path`: the node's JSON.
    pub async fn get_json(&self, path: &str) -> Result<Value> {
        let what = format!("GET {path}");
        let request = self.http.get(format!("{}{path}", self.base_url));
        self.call(request, &what).await
    }

    /// `GET path`, decoded as `T`; also returns the JSON as the node sent it.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<(T, Value)> {
        let value = self.get_json(path).await?;
        let typed = self.decode(&format!("GET {path}"), value.clone())?;
        Ok((typed, value))
    }

    /// `GET /status`.
    pub async fn status(&self) -> Result<(Status, Value)> {
        self.get("/status").await
    }

    /// `GET /fees`.
    pub async fn fees(&self) -> Result<(Fees, Value)> {
        self.get("/fees").await
    }

    /// `GET /mempool`.
    pub async fn mempool(&self) -> Result<(Mempool, Value)> {
        self.get("/mempool").await
    }

    /// `GET /mempool/tx/{hash}`: `None` when the node does not hold it.
    pub async fn pending_transaction(&self, hash: &Hash) -> Result<Option<PendingTransaction>> {
        match self.get(&format!("/mempool/tx/{}", hash.to_hex())).await {
            Ok((pending, _)) => Ok(Some(pending)),
            Err(CliError::NodeError { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `GET /account/{address}`.
    pub async fn account(&self, address: &Address) -> Result<(Account, Value)> {
        self.get(&format!("/account/{address}")).await
    }

    /// `GET /block/{height}` or `/block/latest`.
    pub async fn block(&self, selector: BlockSelector) -> Result<(BlockJson, Value)> {
        match selector {
            BlockSelector::Latest => self.get("/block/latest").await,
            BlockSelector::Height(height) => self.get(&format!("/block/{height}")).await,
        }
    }

    /// `GET /tx/{hash}`; `None` while it is not in a committed block
    /// (404, or `"status": "pending"` while in the node's mempool).
    pub async fn transaction(&self, hash: &Hash) -> Result<Option<(CommittedTransaction, Value)>> {
        let path = format!("/tx/{}", hash.to_hex());
        match self.get_json(&path).await {
            Ok(value) if value["status"] == "pending" => Ok(None),
            Ok(value) => {
                let typed = self.decode(&format!("GET {path}"), value.clone())?;
                Ok(Some((typed, value)))
            }
            Err(CliError::NodeError { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `GET /validators`.
    pub async fn validators(&self, height: Option<u64>) -> Result<(Validators, Value)> {
        match height {
            Some(height) => self.get(&format!("/validators?height={height}")).await,
            None => self.get("/validators").await,
        }
    }

    /// `GET /account/{address}/transactions`: a page of the account's
    /// history, newest first.
    pub async fn history(
        &self,
        address: &Address,
        limit: u64,
        before: Option<&str>,
    ) -> Result<(History, Value)> {
        let mut path = format!("/account/{address}/transactions?limit={limit}");
        if let Some(before) = before {
            // A cursor is hex; anything else is refused by the node, and
            // must not change the query.
            let escaped: String = before
                .bytes()
                .map(|byte| {
                    if byte.is_ascii_alphanumeric() {
                        (byte as char).to_string()
                    } else {
                        format!("%{byte:02X}")
                    }
                })
                .collect();
            path.push_str(&format!("&before={escaped}"));
        }
        self.get(&path).await
    }

    /// `GET /peers`.
    pub async fn peers(&self) -> Result<(Peers, Value)> {
        self.get("/peers").await
    }

    /// `POST /tx`: submits a signed transfer; the node's hash on success,
    /// [`CliError::NodeError`] with its code and message on rejection.
    pub async fn submit(&self, transaction: &SignedTransaction) -> Result<Submitted> {
        let what = "POST /tx".to_string();
        let body = serde_json::json!({ "tx": hex::encode(transaction.to_bytes()) });
        let request = self.http.post(format!("{}/tx", self.base_url)).json(&body);
        let value = self.call(request, &what).await?;
        self.decode(&what, value)
    }

    /// `POST /txs`: submits already-encoded transfers (hex) in one request;
    /// one result per transfer, in order: `Ok(())` when the mempool took it,
    /// else the node's reason code.
    pub async fn submit_hex_batch(
        &self,
        transactions: &[&str],
    ) -> Result<Vec<std::result::Result<(), String>>> {
        let what = "POST /txs".to_string();
        let body = serde_json::json!({ "txs": transactions });
        let request = self.http.post(format!("{}/txs", self.base_url)).json(&body);
        let value = self.call(request, &what).await?;
        let results = value
            .get("results")
            .and_then(Value::as_array)
            .filter(|results| results.len() == transactions.len())
            .ok_or_else(|| CliError::BadResponse {
                url: self.base_url.clone(),
                what: what.clone(),
                reason: format!(
                    "expected {{\"results\": [...]}} with {} entries",
                    transactions.len()
                ),
            })?;
        Ok(results
            .iter()
            .map(|result| match result.get("error") {
                None => Ok(()),
                Some(error) => Err(error
                    .get("code")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_string()),
            })
            .collect())
    }

    /// Opens the WebSocket stream of new blocks, `/ws`.
    pub async fn subscribe_blocks(&self) -> Result<BlockSubscription> {
        let ws_url = self.websocket_url();
        let config = WebSocketConfig::default()
            .max_message_size(Some(WS_MESSAGE_BYTES_MAX))
            .max_frame_size(Some(WS_FRAME_BYTES_MAX));
        let connect =
            tokio_tungstenite::connect_async_with_config(ws_url.as_str(), Some(config), true);
        let (stream, _response) = match tokio::time::timeout(RPC_REQUEST_TIMEOUT, connect).await {
            Err(_elapsed) => {
                return Err(CliError::NodeTimeout {
                    url: self.base_url.clone(),
                    what: "the WebSocket /ws".to_string(),
                    seconds: RPC_REQUEST_TIMEOUT.as_secs(),
                })
            }
            Ok(Err(tokio_tungstenite::tungstenite::Error::Io(error))) => {
                return Err(CliError::NodeUnreachable {
                    url: self.base_url.clone(),
                    reason: error.to_string(),
                })
            }
            Ok(Err(error)) => {
                return Err(CliError::BadResponse {
                    url: self.base_url.clone(),
                    what: "the WebSocket /ws".to_string(),
                    reason: error.to_string(),
                })
            }
            Ok(Ok(connected)) => connected,
        };
        Ok(BlockSubscription {
            url: self.base_url.clone(),
            stream,
        })
    }

    /// The URL of the block stream: the base URL with `ws://` for
    /// `http://`, and `/ws` appended.
    pub fn websocket_url(&self) -> String {
        format!(
            "ws{}/ws",
            self.base_url.strip_prefix("http").unwrap_or(&self.base_url)
        )
    }

    async fn call(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Value> {
        let mut response = request
            .send()
            .await
            .map_err(|error| self.transport_error(error, what))?;
        let status = response.status();
        let too_large = || CliError::BadResponse {
            url: self.base_url.clone(),
            what: what.to_string(),
            reason: format!("the body is larger than {RPC_RESPONSE_BYTES_MAX} bytes"),
        };
        if response
            .content_length()
            .is_some_and(|length| length > RPC_RESPONSE_BYTES_MAX as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| self.transport_error(error, what))?
        {
            if body.len().saturating_add(chunk.len()) > RPC_RESPONSE_BYTES_MAX {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(error) => CliError::NodeError {
                    what: what.to_string(),
                    status: status.as_u16(),
                    code: error.error.code,
                    message: error.error.message,
                },
                Err(_) => CliError::BadResponse {
                    url: self.base_url.clone(),
                    what: what.to_string(),
                    reason: format!(
                        "HTTP {status} with body {:?}",
                        String::from_utf8_lossy(&body)
                            .chars()
                            .take(QUOTED_BODY_CHARS_MAX)
                            .collect::<String>()
                    ),
                },
            });
        }
        serde_json::from_slice(&body).map_err(|error| CliError::BadResponse {
            url: self.base_url.clone(),
            what: what.to_string(),
            reason: format!("the body is not JSON: {error}"),
        })
    }

    fn decode<T: DeserializeOwned>(&self, what: &str, value: Value) -> Result<T> {
        serde_json::from_value(value).map_err(|error| CliError::BadResponse {
            url: self.base_url.clone(),
            what: what.to_string(),
            reason: error.to_string(),
        })
    }

    fn transport_error(&self, error: reqwest::Error, what: &str) -> CliError {
        if error.is_timeout() {
            return CliError::NodeTimeout {
                url: self.base_url.clone(),
                what: what.to_string(),
                seconds: RPC_REQUEST_TIMEOUT.as_secs(),
            };
        }
        if error.is_connect() || error.is_request() {
            return CliError::NodeUnreachable {
                url: self.base_url.clone(),
                reason: innermost_reason(&error),
            };
        }
        CliError::BadResponse {
            url: self.base_url.clone(),
            what: what.to_string(),
            reason: innermost_reason(&error),
        }
    }
}

/// The message of the deepest cause of `error` ("Connection refused (os
/// error 111)" rather than "error sending request").
fn innermost_reason(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// The stream of `new_block` events from `/ws`.
pub struct BlockSubscription {
    url: String,
    stream: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
}

/// What the WebSocket tells a transaction subscriber.
#[derive(Clone, Debug)]
pub enum TransactionEvent {
    /// A block (the default stream of a node without subscriptions).
    Block(NewBlock),
    /// The subscribed transaction committed here.
    Committed {
        /// Height of its block.
        height: u64,
        /// Its index in the block.
        index: u64,
    },
    /// It left the node's mempool uncommitted, for this reason.
    Dropped {
        /// `evicted`, `expired`, `invalidated`, `replaced` or `unknown`.
        reason: String,
    },
}

impl BlockSubscription {
    /// Subscribes this connection to one transaction: the node sends one
    /// event when it commits or leaves the mempool (a node without
    /// subscriptions ignores the request and keeps sending blocks).
    pub async fn subscribe_transaction(&mut self, hash: &Hash) -> Result<()> {
        let request = serde_json::json!({"subscribe": "tx", "hash": hash.to_hex()});
        self.stream
            .send(Message::Text(request.to_string().into()))
            .await
            .map_err(|error| CliError::BadResponse {
                url: self.url.clone(),
                what: "the WebSocket /ws".to_string(),
                reason: error.to_string(),
            })
    }

    /// The next block, or the next event of the transaction subscribed to
    /// (by [`BlockSubscription::subscribe_transaction`]); `None` once the
    /// node closed the stream.
    pub async fn next_transaction_event(
        &mut self,
        hash: &Hash,
    ) -> Result<Option<TransactionEvent>> {
        loop {
            let Some(value) = self.next_value().await? else {
                return Ok(None);
            };
            let bad = |error: serde_json::Error| CliError::BadResponse {
                url: self.url.clone(),
                what: "a WebSocket /ws message".to_string(),
                reason: error.to_string(),
            };
            match value.get("type").and_then(Value::as_str) {
                Some("new_block") => {
                    return serde_json::from_value(value)
                        .map(|block| Some(TransactionEvent::Block(block)))
                        .map_err(bad)
                }
                Some("tx")
                    if value["hash"]
                        .as_str()
                        .is_some_and(|text| text.eq_ignore_ascii_case(&hash.to_hex())) =>
                {
                    return Ok(Some(match value["status"].as_str() {
                        Some("committed") => TransactionEvent::Committed {
                            height: value["height"].as_u64().unwrap_or_default(),
                            index: value["index"].as_u64().unwrap_or_default(),
                        },
                        _ => TransactionEvent::Dropped {
                            reason: value["reason"].as_str().unwrap_or("unknown").to_string(),
                        },
                    }))
                }
                Some("lagged") => return Ok(None),
                // Acknowledgements, errors and later kinds are skipped.
                _ => continue,
            }
        }
    }

    /// The next JSON text message; `None` once the node closed the stream.
    async fn next_value(&mut self) -> Result<Option<Value>> {
        loop {
            let message = match self.stream.next().await {
                None => return Ok(None),
                Some(Err(error)) => {
                    return Err(CliError::BadResponse {
                        url: self.url.clone(),
                        what: "the WebSocket /ws".to_string(),
                        reason: error.to_string(),
                    })
                }
                Some(Ok(message)) => message,
            };
            let text = match message {
                Message::Text(text) => text,
                Message::Close(_) => return Ok(None),
                // Pings are answered by tungstenite; nothing else is used.
                _ => continue,
            };
            return serde_json::from_str(text.as_str())
                .map(Some)
                .map_err(|error| CliError::BadResponse {
                    url: self.url.clone(),
                    what: "a WebSocket /ws message".to_string(),
                    reason: error.to_string(),
                });
        }
    }

    /// The next `new_block` event; `None` once the node closed the stream.
    pub async fn next_block(&mut self) -> Result<Option<NewBlock>> {
        loop {
            let message = match self.stream.next().await {
                None => return Ok(None),
                Some(Err(error)) => {
                    return Err(CliError::BadResponse {
                        url: self.url.clone(),
                        what: "the WebSocket /ws".to_string(),
                        reason: error.to_string(),
                    })
                }
                Some(Ok(message)) => message,
            };
            let text = match message {
                Message::Text(text) => text,
                Message::Close(_) => return Ok(None),
                // Pings are answered by tungstenite; nothing else is used.
                _ => continue,
            };
            let bad = |error: serde_json::Error| CliError::BadResponse {
                url: self.url.clone(),
                what: "a WebSocket /ws message".to_string(),
                reason: error.to_string(),
            };
            let value: Value = serde_json::from_str(text.as_str()).map_err(bad)?;
            match value.get("type").and_then(Value::as_str) {
                Some("new_block") => return serde_json::from_value(value).map(Some).map_err(bad),
                // The node says this subscriber fell behind and closes the
                // stream: the caller falls back to queries.
                Some("lagged") => return Ok(None),
                // Other event types may come later; they are skipped.
                _ => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_urls() {
        let client = NodeClient::new("http://127.0.0.1:26657/").unwrap();
        assert_eq!(client.url(), "http://127.0.0.1:26657");
        assert_eq!(client.websocket_url(), "ws://127.0.0.1:26657/ws");
        let prefixed = NodeClient::new("http://node.example:80/rpc").unwrap();
        assert_eq!(prefixed.websocket_url(), "ws://node.example/rpc/ws");
        for bad in ["127.0.0.1:26657", "https://127.0.0.1", "http://h/?q=1", ""] {
            let error = NodeClient::new(bad).unwrap_err();
            assert!(
                matches!(error, CliError::BadNodeUrl { .. }),
                "{bad}: {error}"
            );
        }
    }
}
