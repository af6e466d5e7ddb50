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
        })
    }
    fn validators(&self) -> Result<ValidatorsView, RpcError> {
        Ok(ValidatorsView {
            total_power: 0,
            validators: vec![],
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
