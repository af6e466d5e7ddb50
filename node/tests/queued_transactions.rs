//! A transfer with a future nonce is queued behind the missing nonce: the
//! submitter is told so, `/account` and `/mempool` show it as queued, and a
//! node waiting for transactions makes no block for it (it once minted
//! about 40 empty blocks a second). The missing nonce unblocks it.
//! Runs the real `cairnd --dev` (one validator, RocksDB, RPC over HTTP).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use cairn_types::{Address, ChainId, Transaction};
use support::{cairnd, get_json, http_request, wait_for_addresses, ChildGuard, DEADLINE};

fn transfer_hex(nonce: u64) -> String {
    let key = &cairn_genesis::dev::dev_account_keypairs()[0];
    let transaction = Transaction {
        chain_id: ChainId::new(cairn_genesis::dev::DEV_CHAIN_ID).unwrap(),
        sender: key.public_key(),
        recipient: Address([7; 20]),
        amount: 10,
        fee: 1,
        nonce,
        memo: String::new(),
        kind: cairn_types::TransactionKind::Transfer,
    }
    .sign(key);
    hex::encode(transaction.to_bytes())
}

fn submit(rpc: &str, nonce: u64) -> serde_json::Value {
    let body = format!(r#"{{"tx": "{}"}}"#, transfer_hex(nonce));
    let (status, answer) = http_request(rpc, "POST", "/tx", Some(&body));
    assert_eq!(status, 200, "{answer}");
    serde_json::from_str(&answer).unwrap()
}

fn height(rpc: &str) -> u64 {
    get_json(rpc, "/status")["latest_height"].as_u64().unwrap()
}

#[test]
fn a_future_nonce_is_queued_and_makes_no_block() {
    let home = tempfile::tempdir().unwrap();
    let child = cairnd()
        .args([
            "--home",
            &home.path().display().to_string(),
            "start",
            "--dev",
        ])
        .args([
            "--rpc-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        // No heartbeat block within the test: only transactions start a height.
        .args([
            "--wait-for-transactions",
            "true",
            "--block-interval-max-ms",
            "600000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(Some(child));
    let addresses = wait_for_addresses(&mut guard, home.path());
    let rpc = addresses["rpc"].as_str().unwrap().to_string();
    let sender = cairn_genesis::dev::dev_account_keypairs()[0].address();

    // Let the start-up settle, then the chain is idle.
    std::thread::sleep(Duration::from_millis(500));
    let idle_height = height(&rpc);

    let answer = submit(&rpc, 2);
    assert_eq!(answer["status"], "queued", "{answer}");
    assert_eq!(answer["queued_behind_nonce"], 0, "{answer}");
    let account = get_json(&rpc, &format!("/account/{sender}"));
    assert_eq!(account["queued"], 1, "{account}");
    assert_eq!(account["pending"], 0, "{account}");
    assert_eq!(account["missing_nonce"], 0, "{account}");
    assert_eq!(account["next_nonce"], 0, "{account}");
    let mempool = get_json(&rpc, "/mempool");
    assert_eq!(
        (mempool["queued"].as_u64(), mempool["executable"].as_u64()),
        (Some(1), Some(0))
    );

    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        height(&rpc),
        idle_height,
        "a queued transaction started a height"
    );

    // The missing nonces arrive: all three commit.
    assert_eq!(submit(&rpc, 0)["status"], "pending");
    assert_eq!(submit(&rpc, 1)["status"], "pending");
    let started = Instant::now();
    loop {
        let account = get_json(&rpc, &format!("/account/{sender}"));
        if account["nonce"] == 3 {
            assert_eq!(account["queued"], 0, "{account}");
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "nonces 0..3 did not commit: {account}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
