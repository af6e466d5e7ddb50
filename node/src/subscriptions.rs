//! The WebSocket at `GET /ws`: subscriptions to new blocks, to one
//! transaction (its commit, or its drop from the mempool) and to an
//! account (every committed transaction touching it).
//!
//! A client that sends nothing gets every new block, as before
//! subscriptions existed (`{"type": "new_block", ...}`). Its first
//! `subscribe` message ends that default stream: from then on it gets what
//! it subscribed to, each event naming its subscription id. Messages:
//!
//! - `{"subscribe": "blocks"}`, `{"subscribe": "tx", "hash": "<hex>"}`,
//!   `{"subscribe": "account", "address": "cairn1..."}`: answered with
//!   `{"type": "subscribed", "id": N, ...}`;
//! - `{"unsubscribe": N}`: answered with `{"type": "unsubscribed", "id": N}`.
//!
//! Bounds: at most [`RPC_WEBSOCKET_SUBSCRIPTIONS_MAX`] subscriptions per
//! connection (past it: an `error` message with code
//! `too_many_subscriptions`, the connection stays); at most
//! [`RPC_WEBSOCKET_QUEUE_MAX`] messages of at most
//! [`RPC_WEBSOCKET_QUEUE_BYTES_MAX`] bytes wait for a client, and one send
//! may take [`RPC_WEBSOCKET_SEND_TIMEOUT_MS`]: a client slower than that is
//! disconnected (after a `lagged` notice when the socket still takes one),
//! so it never holds up the node, whose block and drop channels are
//! bounded broadcasts that never wait for a reader. Everything a connection
//! subscribed to goes with it when it closes.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::extract::ws::{Message, WebSocket};
use cairn_types::{Address, Hash};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use crate::{
    mempool::DroppedTransaction,
    rpc::{NewBlockEvent, RpcBackend},
};

/// Most subscriptions one WebSocket connection holds at once.
pub const RPC_WEBSOCKET_SUBSCRIPTIONS_MAX: usize = 32;
/// Most messages queued for one WebSocket client; a client that lets more
/// pile up is disconnected.
pub const RPC_WEBSOCKET_QUEUE_MAX: usize = 1_024;
/// Most bytes of messages queued for one WebSocket client; a client that
/// lets more pile up is disconnected.
pub const RPC_WEBSOCKET_QUEUE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Longest one WebSocket send may take before the client is disconnected.
pub const RPC_WEBSOCKET_SEND_TIMEOUT_MS: u64 = 10_000;

/// What one subscription follows.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Topic {
    Blocks,
    Transaction(Hash),
    Account(Address),
}

/// A client's message.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    subscribe: Option<String>,
    hash: Option<String>,
    address: Option<String>,
    unsubscribe: Option<u64>,
}

/// The subscriptions of one connection.
struct Connection {
    /// Still on the default stream of every block (nothing subscribed yet).
    default_stream: bool,
    next_id: u64,
    topics: BTreeMap<u64, Topic>,
    outgoing: mpsc::Sender<Message>,
    /// Bytes queued and not yet sent.
    queued_bytes: Arc<AtomicUsize>,
}

/// Why a connection ends.
enum End {
    /// The client left, or its queue overflowed.
    Gone,
}

impl Connection {
    /// Queues `message`; a full queue (a client too slow) ends the
    /// connection.
    fn send(&self, message: Value) -> Result<(), End> {
        let text = message.to_string();
        let bytes = text.len();
        if self
            .queued_bytes
            .load(Ordering::Acquire)
            .saturating_add(bytes)
            > RPC_WEBSOCKET_QUEUE_BYTES_MAX
        {
            return Err(End::Gone);
        }
        self.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
        self.outgoing
            .try_send(Message::Text(text.into()))
            .map_err(|_| End::Gone)
    }

    fn error(&self, code: &str, message: String) -> Result<(), End> {
        self.send(json!({"type": "error", "code": code, "message": message}))
    }

    fn on_request(&mut self, text: &str, backend: &dyn RpcBackend) -> Result<(), End> {
        let request: Request = match serde_json::from_str(text) {
            Ok(request) => request,
            Err(error) => {
                return self.error(
                    "malformed_request",
                    format!(
                        "{error}; send {{\"subscribe\": \"blocks\"}}, {{\"subscribe\": \"tx\", \"hash\": \"<hex>\"}}, {{\"subscribe\": \"account\", \"address\": \"cairn1...\"}} or {{\"unsubscribe\": <id>}} (node/RPC.md)"
                    ),
                )
            }
        };
        if let Some(id) = request.unsubscribe {
            return match self.topics.remove(&id) {
                Some(_) => self.send(json!({"type": "unsubscribed", "id": id})),
                None => self.error(
                    "not_found",
                    format!("no subscription {id} on this connection"),
                ),
            };
        }
        let topic = match (request.subscribe.as_deref(), request.hash, request.address) {
            (Some("blocks"), None, None) => Topic::Blocks,
            (Some("tx"), Some(hash), None) => match Hash::from_hex(&hash) {
                Ok(hash) => Topic::Transaction(hash),
                Err(error) => {
                    return self.error("malformed_request", format!("hash {hash:?}: {error}"))
                }
            },
            (Some("account"), None, Some(address)) => match Address::from_bech32(&address) {
                Ok(address) => Topic::Account(address),
                Err(error) => {
                    return self.error(
                        "malformed_request",
                        format!("address {address:?}: {error}"),
                    )
                }
            },
            _ => {
                return self.error(
                    "malformed_request",
                    "subscribe to \"blocks\", \"tx\" with a \"hash\", or \"account\" with an \"address\" (node/RPC.md)".into(),
                )
            }
        };
        if self.topics.len() >= RPC_WEBSOCKET_SUBSCRIPTIONS_MAX {
            return self.error(
                "too_many_subscriptions",
                format!(
                    "this connection holds {RPC_WEBSOCKET_SUBSCRIPTIONS_MAX} subscriptions, the limit; unsubscribe from one or open another connection"
                ),
            );
        }
        self.default_stream = false;
        let id = self.next_id;
        self.next_id += 1;
        let mut ack = json!({"type": "subscribed", "id": id});
        match &topic {
            Topic::Blocks => ack["subscribe"] = "blocks".into(),
            Topic::Transaction(hash) => {
                ack["subscribe"] = "tx".into();
                ack["hash"] = hash.to_hex().into();
            }
            Topic::Account(address) => {
                ack["subscribe"] = "account".into();
                ack["address"] = address.to_bech32().into();
            }
        }
        self.send(ack)?;
        if let Topic::Transaction(hash) = topic {
            // Already committed: its one event now, and no subscription
            // (a block event still queued for this connection then finds
            // none: exactly one event either way).
            match backend.transaction(&hash) {
                Ok(Some(committed)) => {
                    return self.send(json!({
                        "type": "tx", "subscription": id, "hash": hash,
                        "status": "committed", "height": committed.height,
                        "index": committed.index,
                    }));
                }
                Ok(None) => {}
                Err(error) => return self.error(&error.code, error.message),
            }
        }
        self.topics.insert(id, topic);
        Ok(())
    }

    fn on_block(&mut self, event: &NewBlockEvent) -> Result<(), End> {
        if self.default_stream {
            return self.send(serde_json::to_value(event).unwrap_or_default());
        }
        let mut finished = Vec::new();
        for (id, topic) in &self.topics {
            match topic {
                Topic::Blocks => {
                    let mut message = serde_json::to_value(event).unwrap_or_default();
                    message["subscription"] = (*id).into();
                    self.send(message)?;
                }
                Topic::Transaction(hash) => {
                    if let Some(index) = event.transactions.iter().position(|tx| tx == hash) {
                        self.send(json!({
                            "type": "tx", "subscription": id, "hash": hash,
                            "status": "committed", "height": event.height, "index": index,
                        }))?;
                        finished.push(*id);
                    }
                }
                Topic::Account(address) => {
                    for (index, parties) in event.parties.iter().enumerate() {
                        let Some(direction) = parties.direction(address) else {
                            continue;
                        };
                        let Some(hash) = event.transactions.get(index) else {
                            continue;
                        };
                        self.send(json!({
                            "type": "account_tx", "subscription": id, "address": address,
                            "hash": hash, "height": event.height, "index": index,
                            "direction": direction,
                        }))?;
                    }
                }
            }
        }
        for id in finished {
            self.topics.remove(&id);
        }
        Ok(())
    }

    fn on_drop(&mut self, dropped: &DroppedTransaction) -> Result<(), End> {
        let found = self
            .topics
            .iter()
            .find(|(_, topic)| **topic == Topic::Transaction(dropped.hash))
            .map(|(id, _)| *id);
        if let Some(id) = found {
            self.send(json!({
                "type": "tx", "subscription": id, "hash": dropped.hash,
                "status": "dropped", "reason": dropped.reason,
            }))?;
            self.topics.remove(&id);
        }
        Ok(())
    }

    /// After missed drop reports: a subscribed transaction neither pending
    /// nor committed any more was dropped, for a reason not known.
    fn recheck_transactions(&mut self, backend: &dyn RpcBackend) -> Result<(), End> {
        let watched: Vec<(u64, Hash)> = self
            .topics
            .iter()
            .filter_map(|(id, topic)| match topic {
                Topic::Transaction(hash) => Some((*id, *hash)),
                _ => None,
            })
            .collect();
        for (id, hash) in watched {
            let pending = matches!(backend.pending_transaction(&hash), Ok(Some(_)));
            let committed = matches!(backend.transaction(&hash), Ok(Some(_)));
            if !pending && !committed {
                self.on_drop(&DroppedTransaction {
                    hash,
                    reason: "unknown",
                })?;
                self.topics.remove(&id);
            }
        }
        Ok(())
    }
}

/// Serves one WebSocket connection until the client leaves or falls too
/// far behind.
pub async fn serve(socket: WebSocket, backend: std::sync::Arc<dyn RpcBackend>) {
    // Subscribed before anything is read, so nothing committed from now on
    // is missed.
    let mut blocks = backend.subscribe();
    let mut drops = backend.subscribe_drops();
    let (mut sink, mut stream) = socket.split();
    let (outgoing, mut queue) = mpsc::channel::<Message>(RPC_WEBSOCKET_QUEUE_MAX);
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let sent_bytes = Arc::clone(&queued_bytes);
    let writer = tokio::spawn(async move {
        let timeout = Duration::from_millis(RPC_WEBSOCKET_SEND_TIMEOUT_MS);
        while let Some(message) = queue.recv().await {
            let bytes = match &message {
                Message::Text(text) => text.len(),
                _ => 0,
            };
            match tokio::time::timeout(timeout, sink.send(message)).await {
                Ok(Ok(())) => {
                    sent_bytes.fetch_sub(bytes, Ordering::AcqRel);
                }
                // Too slow or gone: dropping the queue ends the connection.
                Ok(Err(_)) | Err(_) => return,
            }
        }
        let _ = tokio::time::timeout(timeout, sink.close()).await;
    });
    let mut connection = Connection {
        default_stream: true,
        next_id: 1,
        topics: BTreeMap::new(),
        outgoing,
        queued_bytes,
    };
    let _ = run(
        &mut connection,
        &mut blocks,
        &mut drops,
        &mut stream,
        &*backend,
    )
    .await;
    // Dropping the connection closes the queue: the writer sends what is
    // queued (each send bounded) and closes the socket.
    drop(connection);
    let _ = writer.await;
}

async fn run(
    connection: &mut Connection,
    blocks: &mut broadcast::Receiver<NewBlockEvent>,
    drops: &mut Option<broadcast::Receiver<DroppedTransaction>>,
    stream: &mut futures::stream::SplitStream<WebSocket>,
    backend: &dyn RpcBackend,
) -> Result<(), End> {
    loop {
        let next_drop = async {
            match drops {
                Some(drops) => drops.recv().await,
                None => std::future::pending().await,
            }
        };
        let writer_gone = connection.outgoing.closed();
        tokio::select! {
            _ = writer_gone => return Err(End::Gone),
            event = blocks.recv() => match event {
                Ok(event) => connection.on_block(&event)?,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    connection.send(json!({
                        "type": "lagged",
                        "missed": missed,
                        "message": "this subscriber fell behind and missed blocks; reconnect and query /block to catch up"
                    }))?;
                    return Err(End::Gone);
                }
                Err(broadcast::error::RecvError::Closed) => return Err(End::Gone),
            },
            dropped = next_drop => match dropped {
                Ok(dropped) => connection.on_drop(&dropped)?,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    connection.recheck_transactions(backend)?;
                }
                Err(broadcast::error::RecvError::Closed) => *drops = None,
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => connection.on_request(text.as_str(), backend)?,
                Some(Ok(Message::Binary(_))) => connection.error(
                    "malformed_request",
                    "send subscriptions as JSON text messages".into(),
                )?,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Err(End::Gone),
                Some(Ok(_)) => {}
            },
        }
    }
}
