//! The RPC's HTTP layer over the real mempool: status codes, the one error
//! shape, body limits, and garbage that must not panic the server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use cairn_node::{
    mempool::{AccountView as MempoolAccounts, Mempool, MempoolLimits},
    rpc::{self, *},
};
use cairn_types::{Address, ChainId, Hash, Height, Keypair, Transaction};
use http_body_util::BodyExt;
use tokio::sync::broadcast;
use tower::ServiceExt;

struct Accounts(HashMap<Address, (u64, u64)>);

impl MempoolAccounts for Accounts {
    fn balance_and_nonce(&self, address: &Address) -> (u64, u64) {
        self.0.get(address).copied().unwrap_or((0, 0))
    }
}

struct TestBackend {
    mempool: Mutex<Mempool>,
    accounts: Accounts,
    blocks: broadcast::Sender<NewBlockEvent>,
}

impl RpcBackend for TestBackend {
    fn status(&self) -> Result<StatusView, RpcError> {
        Err(RpcError::internal("not used"))
    }
    fn submit(&self, transactions: &[Vec<u8>]) -> Vec<Result<Hash, RpcError>> {
        let slices: Vec<&[u8]> = transactions.iter().map(Vec::as_slice).collect();
        let mut mempool = self.mempool.lock().unwrap();
        mempool
            .add_batch(&slices, &self.accounts)
            .into_iter()
            .map(|result| result.map_err(|rejection| RpcError::from_rejection(&rejection)))
            .collect()
    }
    fn transaction(&self, _hash: &Hash) -> Result<Option<TransactionView>, RpcError> {
        Ok(None)
    }
    fn block_by_height(&self, _height: Option<Height>) -> Result<Option<BlockView>, RpcError> {
        Ok(None)
    }
    fn block_by_hash(&self, _hash: &Hash) -> Result<Option<BlockView>, RpcError> {
        Ok(None)
    }
    fn account(&self, address: &Address) -> Result<AccountView, RpcError> {
        let (balance, nonce) = self.accounts.balance_and_nonce(address);
        let next_nonce = self
            .mempool
            .lock()
            .unwrap()
            .next_nonce(address, &self.accounts);
        let pending = self.mempool.lock().unwrap().sender_pending(address);
        Ok(AccountView {
            address: *address,
            balance,
            nonce,
            next_nonce,
            pending: pending.executable,
            queued: pending.queued,
            missing_nonce: pending.missing_nonce,
            stake: None,
            unbonding: vec![],
            proof: None,
        })
    }
    fn validators(&self, height: Option<u64>) -> Result<ValidatorsView, RpcError> {
        Ok(ValidatorsView {
            height: height.unwrap_or(1),
            set_hash: cairn_types::Hash::ZERO,
            total_power: 0,
            validators: vec![],
            candidates: vec![],
        })
    }
    fn peers(&self) -> Result<Vec<PeerView>, RpcError> {
        Ok(vec![])
    }
    fn mempool(&self) -> Result<MempoolView, RpcError> {
        let mempool = self.mempool.lock().unwrap();
        Ok(MempoolView {
            count: mempool.len(),
            bytes: mempool.bytes(),
            executable: mempool.executable_len(),
            queued: mempool.queued_len(),
        })
    }
    fn evidence(&self) -> Result<Vec<cairn_types::Evidence>, RpcError> {
        Ok(vec![])
    }
    fn subscribe(&self) -> broadcast::Receiver<NewBlockEvent> {
        self.blocks.subscribe()
    }
}

fn chain() -> ChainId {
    ChainId::new("rpc-test").unwrap()
}

fn sender() -> Keypair {
    Keypair::from_seed(&[8; 32])
}

fn app() -> axum::Router {
    let backend = TestBackend {
        mempool: Mutex::new(Mempool::new(
            chain(),
            MempoolLimits {
                transactions_max: 100,
                bytes_max: 1 << 20,
                min_fee: 0,
            },
        )),
        accounts: Accounts(HashMap::from([(sender().address(), (1_000, 0))])),
        blocks: broadcast::channel(16).0,
    };
    rpc::router(Arc::new(backend))
}

fn transfer_hex(nonce: u64, amount: u64) -> String {
    let key = sender();
    hex::encode(
        Transaction {
            chain_id: chain(),
            sender: key.public_key(),
            recipient: Address([3; 20]),
            amount,
            fee: 1,
            nonce,
            memo: String::new(),
            kind: cairn_types::TransactionKind::Transfer,
        }
        .sign(&key)
        .to_bytes(),
    )
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, json)
}

fn error_code(body: &serde_json::Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn accepted_transfer_returns_its_hash_and_counts_in_next_nonce() {
    let app = app();
    let (status, body) = call(
        &app,
        "POST",
        "/tx",
        &format!(r#"{{"tx":"{}"}}"#, transfer_hex(0, 5)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["hash"].as_str().unwrap().len(), 64);
    let address = sender().address().to_bech32();
    let (status, body) = call(&app, "GET", &format!("/account/{address}"), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["nonce"], 0);
    assert_eq!(body["next_nonce"], 1);
    let (_, body) = call(&app, "GET", "/mempool", "").await;
    assert_eq!(body["count"], 1);
}

#[tokio::test]
async fn invalid_transfers_get_422_with_their_reason() {
    let app = app();
    let (status, body) = call(
        &app,
        "POST",
        "/tx",
        &format!(r#"{{"tx":"{}"}}"#, transfer_hex(0, 5_000)),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&body), "insufficient_funds");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("balance 1000"));

    let mut bad_signature = transfer_hex(0, 5);
    let flipped = if bad_signature.ends_with('0') {
        '1'
    } else {
        '0'
    };
    bad_signature.pop();
    bad_signature.push(flipped);
    let (status, body) = call(
        &app,
        "POST",
        "/tx",
        &format!(r#"{{"tx":"{bad_signature}"}}"#),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&body), "bad_signature");
}

#[tokio::test]
async fn malformed_requests_get_400() {
    let app = app();
    for (body, code) in [
        ("not json", "malformed_request"),
        (r#"{"tx": 5}"#, "malformed_request"),
        (r#"{"tx": "zz"}"#, "malformed_transaction"),
        (r#"{"tx": "00ff00"}"#, "malformed_transaction"),
        (r#"{"tx": "00", "extra": 1}"#, "malformed_request"),
    ] {
        let (status, response) = call(&app, "POST", "/tx", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {response}");
        assert_eq!(error_code(&response), code, "{body}");
    }
    let (status, response) = call(&app, "GET", "/account/cairn1nope", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(response["error"]["message"]
        .as_str()
        .unwrap()
        .contains("cairn1nope"));
    let (status, _) = call(&app, "GET", "/block/minus-one", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, response) = call(&app, "GET", "/tx/00", "").await;
    assert_eq!(
        (status, error_code(&response)),
        (StatusCode::BAD_REQUEST, "malformed_request")
    );
}

#[tokio::test]
async fn unknown_objects_and_routes_get_404() {
    let app = app();
    let (status, body) = call(&app, "GET", &format!("/tx/{}", "ab".repeat(32)), "").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, body) = call(&app, "GET", "/block/7", "").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, body) = call(&app, "GET", "/nowhere", "").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[tokio::test]
async fn batches_answer_per_transaction() {
    let app = app();
    let body = format!(
        r#"{{"txs":["{}","nothex","{}"]}}"#,
        transfer_hex(0, 1),
        transfer_hex(0, 1)
    );
    let (status, response) = call(&app, "POST", "/txs", &body).await;
    assert_eq!(status, StatusCode::OK);
    let results = response["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(results[0]["hash"].is_string());
    assert_eq!(results[1]["error"]["code"], "malformed_transaction");
    assert_eq!(results[2]["error"]["code"], "duplicate");
}

#[tokio::test]
async fn oversize_bodies_are_refused() {
    let app = app();
    let huge = format!(r#"{{"tx":"{}"}}"#, "0".repeat(RPC_BODY_BYTES_MAX + 10));
    let (status, body) = call(&app, "POST", "/tx", &huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(&body), "body_too_large");
    let long_tx = format!(r#"{{"tx":"{}"}}"#, "0".repeat(5_000));
    let (status, body) = call(&app, "POST", "/tx", &long_tx).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "too_large")
    );
}

/// Every route with every method: an answer of 400 or more always has the
/// `{"error": {"code", "message"}}` shape, including axum's own refusals.
#[tokio::test]
async fn every_route_and_method_answers_errors_in_one_shape() {
    let app = app();
    let hash = "00".repeat(32);
    let address = sender().address().to_string();
    // Every documented route (rpc::ROUTES, which node/RPC.md lists), with
    // its parameters filled in, and a few that are not routes.
    let mut routes: Vec<String> = rpc::ROUTES
        .iter()
        .map(|(_, path)| {
            path.replace("{hash}", &hash)
                .replace("{height}", "1")
                .replace("{address}", &address)
        })
        .collect();
    routes.extend([
        "/block/latest".to_string(),
        "/no/such/route".to_string(),
        // Not UTF-8 once percent-decoded.
        "/account/%FF%FE".to_string(),
        "/tx/%C3%28".to_string(),
        "/account/%FF%FE/transactions".to_string(),
    ]);
    let mut checked = 0;
    for route in &routes {
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let request = Request::builder()
                .method(method)
                .uri(route.as_str())
                .body(Body::from("{}"))
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            if status.as_u16() < 400 {
                continue;
            }
            checked += 1;
            let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "{method} {route}: {status} with a body that is not JSON: {:?}",
                    String::from_utf8_lossy(&bytes)
                )
            });
            assert!(
                body["error"]["code"].is_string() && body["error"]["message"].is_string(),
                "{method} {route}: {status} {body}"
            );
            if status == StatusCode::METHOD_NOT_ALLOWED {
                assert_eq!(error_code(&body), "method_not_allowed", "{method} {route}");
            }
        }
    }
    assert!(checked > 60, "only {checked} error answers walked");
    // `/ws` without an upgrade, and a path that is not UTF-8, in particular.
    let (status, body) = call(&app, "GET", "/ws", "").await;
    assert!(status.is_client_error(), "{status}");
    assert!(body["error"]["message"].is_string(), "{body}");
    let (status, body) = call(&app, "GET", "/account/%FF", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "malformed_request");
}

/// `/ready` without a node's policy follows `/status`; the fake backend's
/// status fails, which is a 500 in the error shape.
#[tokio::test]
async fn ready_reports_the_backend_error_in_the_error_shape() {
    let (status, body) = call(&app(), "GET", "/ready", "").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error_code(&body), "internal");
}

mod over_tcp {
    //! The RPC over the node's own HTTP server: request heads too large to
    //! route get the error shape, and idle connections cannot lock out a
    //! client.

    use std::{
        io::{Read, Write},
        net::TcpStream,
        time::Duration,
    };

    use cairn_node::{
        http_server::{self, ServerLimits, REQUEST_HEAD_BYTES_MAX, REQUEST_URI_BYTES_MAX},
        shutdown::shutdown_channel,
    };

    async fn start(
        limits: ServerLimits,
    ) -> (std::net::SocketAddr, cairn_node::shutdown::ShutdownTrigger) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (trigger, shutdown) = shutdown_channel();
        tokio::spawn(http_server::serve(listener, super::app(), limits, shutdown));
        (address, trigger)
    }

    /// Sends `request` on a new connection and reads the answer to its end.
    fn exchange(address: std::net::SocketAddr, request: &[u8]) -> (u16, serde_json::Value) {
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // The server may answer before it has read everything.
        let _ = stream.write_all(request);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer).to_string();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {text:?}"));
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, body)| body)
            .unwrap_or("");
        let json = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    fn limits() -> ServerLimits {
        ServerLimits {
            connections_max: 8,
            header_read_timeout: Duration::from_secs(2),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn long_paths_and_heads_get_414_and_431_in_the_error_shape() {
        let (address, _trigger) = start(limits()).await;
        let answers = tokio::task::spawn_blocking(move || {
            let long_path = format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(70_000));
            let huge_path = format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(1_000_000));
            let huge_header = format!(
                "GET /health HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
                "b".repeat(REQUEST_HEAD_BYTES_MAX)
            );
            let fine = "GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
            [
                exchange(address, long_path.as_bytes()),
                exchange(address, huge_path.as_bytes()),
                exchange(address, huge_header.as_bytes()),
                exchange(address, fine.as_bytes()),
            ]
        })
        .await
        .unwrap();
        const { assert!(REQUEST_URI_BYTES_MAX < 70_000) };
        assert_eq!(answers[0].0, 414, "{:?}", answers[0]);
        assert_eq!(answers[0].1["error"]["code"], "uri_too_long");
        assert_eq!(answers[1].0, 414, "{:?}", answers[1]);
        assert_eq!(answers[2].0, 431, "{:?}", answers[2]);
        assert_eq!(answers[2].1["error"]["code"], "headers_too_large");
        assert_eq!(answers[3].0, 200, "{:?}", answers[3]);
        assert_eq!(answers[3].1["status"], "ok");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_connections_make_room_for_a_real_request() {
        let (address, _trigger) = start(limits()).await;
        let answer = tokio::task::spawn_blocking(move || {
            // Twice the cap of connections that never finish their headers.
            let idle: Vec<TcpStream> = (0..16)
                .map(|_| {
                    let mut stream = TcpStream::connect(address).unwrap();
                    stream.write_all(b"GET /health HTTP/1.1\r\nhost").unwrap();
                    stream
                })
                .collect();
            std::thread::sleep(Duration::from_millis(200));
            let answer = exchange(
                address,
                b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            );
            drop(idle);
            answer
        })
        .await
        .unwrap();
        assert_eq!(answer.0, 200, "{answer:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn headers_that_never_end_are_cut_off() {
        let (address, _trigger) = start(ServerLimits {
            connections_max: 8,
            header_read_timeout: Duration::from_millis(300),
        })
        .await;
        let closed = tokio::task::spawn_blocking(move || {
            let mut stream = TcpStream::connect(address).unwrap();
            stream.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut buffer = [0u8; 64];
            // The server closes the connection: read returns 0 (or an error).
            matches!(stream.read(&mut buffer), Ok(0) | Err(_))
        })
        .await
        .unwrap();
        assert!(closed, "the half-sent request was not cut off");
    }
}
