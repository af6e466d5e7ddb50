//! WebSocket subscriptions (`GET /ws`) over a real HTTP server on
//! loopback, fed by a backend whose block and drop channels the test
//! drives: the default stream of every block for a client that subscribes
//! to nothing; a transaction subscription answered exactly once (commit or
//! drop, or at once when already committed); an account subscription once
//! per transaction touching it; the per-connection limit with a clear
//! error; subscriptions gone with their connection; and a client that never
//! reads is disconnected (its queue's byte bound) while another client
//! gets every block.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use cairn_node::{
    http_server::{self, ServerLimits},
    mempool::DroppedTransaction,
    rpc::{self, *},
    shutdown::shutdown_channel,
    subscriptions::RPC_WEBSOCKET_SUBSCRIPTIONS_MAX,
};
use cairn_types::{Address, Hash, Height};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

struct TestBackend {
    blocks: broadcast::Sender<NewBlockEvent>,
    drops: broadcast::Sender<DroppedTransaction>,
    /// Transactions "committed" (answered by `GET /tx`).
    committed: Mutex<Vec<(Hash, u64, u32)>>,
}

impl RpcBackend for TestBackend {
    fn status(&self) -> Result<StatusView, RpcError> {
        Err(RpcError::internal("not used"))
    }
    fn submit(&self, transactions: &[Vec<u8>]) -> Vec<Result<Hash, RpcError>> {
        transactions
            .iter()
            .map(|_| Err(RpcError::internal("not used")))
            .collect()
    }
    fn transaction(&self, hash: &Hash) -> Result<Option<TransactionView>, RpcError> {
        let committed = self.committed.lock().unwrap();
        let Some((_, height, index)) = committed.iter().find(|(known, _, _)| known == hash) else {
            return Ok(None);
        };
        let key = cairn_types::Keypair::from_seed(&[3; 32]);
        let transaction = cairn_types::Transaction {
            chain_id: cairn_types::ChainId::new("ws-test").unwrap(),
            sender: key.public_key(),
            recipient: Address([1; 20]),
            amount: 1,
            fee: 1,
            nonce: 0,
            memo: String::new(),
            kind: cairn_types::TransactionKind::Transfer,
        }
        .sign(&key);
        Ok(Some(TransactionView {
            hash: *hash,
            status: "committed".into(),
            height: *height,
            index: *index,
            transaction,
            proof: None,
        }))
    }
    fn block_by_height(&self, _height: Option<Height>) -> Result<Option<BlockView>, RpcError> {
        Ok(None)
    }
    fn block_by_hash(&self, _hash: &Hash) -> Result<Option<BlockView>, RpcError> {
        Ok(None)
    }
    fn account(&self, _address: &Address) -> Result<AccountView, RpcError> {
        Err(RpcError::internal("not used"))
    }
    fn validators(&self, _height: Option<u64>) -> Result<ValidatorsView, RpcError> {
        Err(RpcError::internal("not used"))
    }
    fn peers(&self) -> Result<Vec<PeerView>, RpcError> {
        Ok(vec![])
    }
    fn mempool(&self) -> Result<MempoolView, RpcError> {
        Err(RpcError::internal("not used"))
    }
    fn evidence(&self) -> Result<Vec<cairn_types::Evidence>, RpcError> {
        Ok(vec![])
    }
    fn subscribe(&self) -> broadcast::Receiver<NewBlockEvent> {
        self.blocks.subscribe()
    }
    fn subscribe_drops(&self) -> Option<broadcast::Receiver<DroppedTransaction>> {
        Some(self.drops.subscribe())
    }
}

struct Harness {
    backend: Arc<TestBackend>,
    url: String,
    _shutdown: cairn_node::shutdown::ShutdownTrigger,
}

async fn start(block_events_max: usize) -> Harness {
    let backend = Arc::new(TestBackend {
        blocks: broadcast::channel(block_events_max).0,
        drops: broadcast::channel(64).0,
        committed: Mutex::new(Vec::new()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown_channel();
    let router = rpc::router(backend.clone() as Arc<dyn RpcBackend>);
    tokio::spawn(http_server::serve(
        listener,
        router,
        ServerLimits {
            connections_max: 64,
            header_read_timeout: Duration::from_secs(5),
        },
        shutdown,
    ));
    Harness {
        backend,
        url: format!("ws://{address}/ws"),
        _shutdown: trigger,
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> Socket {
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// The next text message as JSON (fails after 10 s).
async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("no message within 10 s")
            .expect("the connection closed")
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

/// Nothing arrives within 300 ms.
async fn quiet(socket: &mut Socket) {
    if let Ok(Some(Ok(message))) =
        tokio::time::timeout(Duration::from_millis(300), socket.next()).await
    {
        panic!("unexpected message {message:?}");
    }
}

fn hash(byte: u8) -> Hash {
    Hash([byte; 32])
}

fn block(height: u64, transactions: &[(Hash, Address, Option<Address>)]) -> NewBlockEvent {
    NewBlockEvent {
        kind: "new_block".into(),
        height,
        hash: hash(200),
        time: 1_000 + height,
        transactions: transactions.iter().map(|(hash, _, _)| *hash).collect(),
        parties: Arc::new(
            transactions
                .iter()
                .map(|(_, sender, recipient)| TransactionParties {
                    sender: *sender,
                    recipient: *recipient,
                })
                .collect(),
        ),
    }
}

/// Waits until only `expected` block receivers are left.
async fn wait_receivers(backend: &TestBackend, expected: usize) {
    let started = Instant::now();
    while backend.blocks.receiver_count() != expected {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} block receivers, expected {expected}",
            backend.blocks.receiver_count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_deliver_each_event_once_and_end_with_their_connection() {
    let harness = start(256).await;
    let backend = &harness.backend;
    let alice = Address([0xa1; 20]);
    let bob = Address([0xb0; 20]);

    // A client that subscribes to nothing gets every block, as before.
    let mut legacy = connect(&harness.url).await;
    // A client with subscriptions.
    let mut client = connect(&harness.url).await;
    wait_receivers(backend, 2).await;
    send(
        &mut client,
        json!({"subscribe": "tx", "hash": hash(1).to_hex()}),
    )
    .await;
    let ack = next(&mut client).await;
    assert_eq!(ack["type"], "subscribed", "{ack}");
    let tx_id = ack["id"].as_u64().unwrap();
    send(
        &mut client,
        json!({"subscribe": "account", "address": alice.to_bech32()}),
    )
    .await;
    let account_id = next(&mut client).await["id"].as_u64().unwrap();
    send(
        &mut client,
        json!({"subscribe": "tx", "hash": hash(2).to_hex()}),
    )
    .await;
    let dropped_id = next(&mut client).await["id"].as_u64().unwrap();
    // Already committed: its event at once, after the ack.
    backend.committed.lock().unwrap().push((hash(9), 3, 4));
    send(
        &mut client,
        json!({"subscribe": "tx", "hash": hash(9).to_hex()}),
    )
    .await;
    let ack = next(&mut client).await;
    let event = next(&mut client).await;
    assert_eq!(
        (
            event["subscription"].clone(),
            event["status"].clone(),
            event["height"].clone(),
            event["index"].clone()
        ),
        (ack["id"].clone(), json!("committed"), json!(3), json!(4)),
        "{event}"
    );

    // Block 5: hash(1) at index 1 (alice -> bob), and alice's unbond.
    backend
        .blocks
        .send(block(
            5,
            &[
                (hash(7), bob, Some(bob)),
                (hash(1), alice, Some(bob)),
                (hash(8), alice, None),
            ],
        ))
        .unwrap();
    let legacy_event = next(&mut legacy).await;
    assert_eq!(legacy_event["type"], "new_block", "{legacy_event}");
    assert_eq!(legacy_event["height"], 5);
    assert!(legacy_event.get("subscription").is_none(), "{legacy_event}");
    assert!(legacy_event.get("parties").is_none(), "{legacy_event}");

    let mut events = Vec::new();
    for _ in 0..3 {
        events.push(next(&mut client).await);
    }
    quiet(&mut client).await;
    let tx_events: Vec<&Value> = events
        .iter()
        .filter(|event| event["subscription"] == tx_id)
        .collect();
    assert_eq!(tx_events.len(), 1, "{events:?}");
    assert_eq!(tx_events[0]["status"], "committed");
    assert_eq!(
        (
            tx_events[0]["height"].clone(),
            tx_events[0]["index"].clone()
        ),
        (json!(5), json!(1))
    );
    let account_events: Vec<(Value, Value)> = events
        .iter()
        .filter(|event| event["subscription"] == account_id)
        .map(|event| (event["hash"].clone(), event["direction"].clone()))
        .collect();
    assert_eq!(
        account_events,
        [
            (json!(hash(1).to_hex()), json!("sent")),
            (json!(hash(8).to_hex()), json!("sent"))
        ]
    );

    // The transaction subscription is over: block 6 repeats hash(1)
    // (never on a real chain), no second event; alice receives.
    backend
        .blocks
        .send(block(6, &[(hash(1), bob, Some(alice))]))
        .unwrap();
    let event = next(&mut client).await;
    assert_eq!(
        (event["subscription"].as_u64(), event["direction"].clone()),
        (Some(account_id), json!("received")),
        "{event}"
    );
    quiet(&mut client).await;

    // A drop from the mempool, with its reason, once.
    backend
        .drops
        .send(DroppedTransaction {
            hash: hash(2),
            reason: "replaced",
        })
        .unwrap();
    let event = next(&mut client).await;
    assert_eq!(event["subscription"], dropped_id, "{event}");
    assert_eq!(
        (event["status"].clone(), event["reason"].clone()),
        (json!("dropped"), json!("replaced"))
    );
    backend
        .drops
        .send(DroppedTransaction {
            hash: hash(2),
            reason: "evicted",
        })
        .unwrap();
    quiet(&mut client).await;

    // Unsubscribe; bad requests answer errors and keep the connection.
    send(&mut client, json!({"unsubscribe": account_id})).await;
    assert_eq!(next(&mut client).await["type"], "unsubscribed");
    send(&mut client, json!({"unsubscribe": account_id})).await;
    assert_eq!(next(&mut client).await["code"], "not_found");
    send(&mut client, json!({"subscribe": "weather"})).await;
    assert_eq!(next(&mut client).await["code"], "malformed_request");
    client.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(next(&mut client).await["code"], "malformed_request");

    // The limit per connection.
    for index in 0..RPC_WEBSOCKET_SUBSCRIPTIONS_MAX {
        send(
            &mut client,
            json!({"subscribe": "account", "address": Address([index as u8; 20]).to_bech32()}),
        )
        .await;
        assert_eq!(next(&mut client).await["type"], "subscribed");
    }
    send(&mut client, json!({"subscribe": "blocks"})).await;
    let error = next(&mut client).await;
    assert_eq!(error["code"], "too_many_subscriptions", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains(&RPC_WEBSOCKET_SUBSCRIPTIONS_MAX.to_string()),
        "{error}"
    );

    // Closing a connection drops its subscriptions (its receivers).
    client.close(None).await.unwrap();
    drop(client);
    wait_receivers(backend, 1).await;
    drop(legacy);
    wait_receivers(backend, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_dropped_without_holding_up_others() {
    let harness = start(64).await;
    let backend = &harness.backend;
    // A large block event (about 650 KB of JSON): socket buffers fill fast.
    let many: Vec<(Hash, Address, Option<Address>)> = (0..10_000u32)
        .map(|index| {
            let mut bytes = [0u8; 32];
            bytes[..4].copy_from_slice(&index.to_be_bytes());
            (Hash(bytes), Address([1; 20]), Some(Address([2; 20])))
        })
        .collect();
    let big = block(1, &many);

    let stalled = connect(&harness.url).await;
    let mut reader = connect(&harness.url).await;
    wait_receivers(backend, 2).await;
    send(&mut reader, json!({"subscribe": "blocks"})).await;
    assert_eq!(next(&mut reader).await["type"], "subscribed");

    // The publisher never waits; the reader gets every block while the
    // stalled client is cut off.
    let reading = tokio::spawn(async move {
        let mut heights = Vec::new();
        while heights.len() < 200 {
            let event = next(&mut reader).await;
            heights.push(event["height"].as_u64().unwrap());
        }
        heights
    });
    for height in 1..=200u64 {
        let mut event = big.clone();
        event.height = height;
        backend.blocks.send(event).unwrap();
        // Paced so the reading client keeps up.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let heights = reading.await.unwrap();
    assert_eq!(heights, (1..=200).collect::<Vec<_>>());
    // Only the reader's receiver is left: the stalled client was dropped.
    wait_receivers(backend, 1).await;
    drop(stalled);
}
