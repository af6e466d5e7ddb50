//! Account history with a real process (`cairnd start --dev`, RocksDB, RPC
//! over HTTP): transfers sent and received by an account over many blocks
//! are listed by `GET /account/{address}/transactions` newest first, in
//! pages that follow the `next` cursor, complete and without repeats;
//! each entry's height and index are those `GET /tx/{hash}` gives; bad
//! queries get clear 400s. Beside it, on the same node, the other reads:
//! `GET /mempool/transactions` (oldest first), `GET /tx/{hash}` of a
//! pending transaction (202 `pending`), `GET /genesis` (the genesis file,
//! whose hash is the node's) and `GET /consensus`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    collections::BTreeSet,
    process::Stdio,
    time::{Duration, Instant},
};

use cairn_types::{Address, ChainId, Keypair, Transaction};
use serde_json::Value;
use support::{cairnd, get_json, http_get, http_request, wait_for_addresses, ChildGuard, DEADLINE};

fn transfer(chain: &ChainId, key: &Keypair, to: Address, nonce: u64) -> (String, String) {
    let transaction = Transaction {
        chain_id: chain.clone(),
        sender: key.public_key(),
        recipient: to,
        amount: 10 + nonce,
        fee: 1,
        nonce,
        memo: String::new(),
        kind: cairn_types::TransactionKind::Transfer,
    }
    .sign(key);
    (
        transaction.hash().to_hex(),
        hex::encode(transaction.to_bytes()),
    )
}

fn submit_batch(rpc: &str, hexes: &[String]) {
    let body = serde_json::json!({ "txs": hexes }).to_string();
    let (status, answer) = http_request(rpc, "POST", "/txs", Some(&body));
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    for result in answer["results"].as_array().unwrap() {
        assert!(result["error"].is_null(), "refused: {result}");
    }
}

fn wait_committed(rpc: &str, hash: &str) -> (u64, u64) {
    let started = Instant::now();
    loop {
        let (status, body) = http_get(rpc, &format!("/tx/{hash}"));
        if status == 200 {
            let body: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["status"], "committed", "{body}");
            return (
                body["height"].as_u64().unwrap(),
                body["index"].as_u64().unwrap(),
            );
        }
        assert!(started.elapsed() < DEADLINE, "{hash} never committed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every page of `address`'s history, `limit` at a time.
fn read_pages(rpc: &str, address: &str, limit: usize) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut path = format!("/account/{address}/transactions?limit={limit}");
    for _ in 0..1_000 {
        let page = get_json(rpc, &path);
        let transactions = page["transactions"].as_array().unwrap();
        assert!(transactions.len() <= limit.min(100), "{page}");
        entries.extend(transactions.iter().cloned());
        match page["next"].as_str() {
            Some(cursor) => {
                assert_eq!(transactions.len(), limit.min(100), "{page}");
                path = format!("/account/{address}/transactions?limit={limit}&before={cursor}");
            }
            None => return entries,
        }
    }
    panic!("the pages never ended");
}

#[test]
fn an_accounts_history_pages_newest_first_across_many_blocks() {
    let root = tempfile::tempdir().unwrap();
    let home = root.path().join("home");
    let log = std::fs::File::create(root.path().join("log")).unwrap();
    let child = cairnd()
        .args(["--home", &home.display().to_string(), "start", "--dev"])
        .args([
            "--rpc-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(Some(child));
    let addresses = wait_for_addresses(&mut guard, &home);
    let rpc = addresses["rpc"].as_str().unwrap().to_string();
    let chain = ChainId::new(cairn_genesis::dev::DEV_CHAIN_ID).unwrap();
    let keys = cairn_genesis::dev::dev_account_keypairs();
    let (alice, bob, carol) = (&keys[0], &keys[1], &keys[2]);

    // Rounds of transfers alice -> bob and carol -> alice, each round
    // committed before the next: many blocks. One bob -> bob.
    let rounds = 8u64;
    let per_round = 8u64;
    let mut touching_alice: BTreeSet<String> = BTreeSet::new();
    let mut heights = BTreeSet::new();
    for round in 0..rounds {
        let mut batch = Vec::new();
        let mut last = String::new();
        for i in 0..per_round {
            let nonce = round * per_round + i;
            let (hash, hex) = transfer(&chain, alice, bob.address(), nonce);
            touching_alice.insert(hash);
            batch.push(hex);
            let (hash, hex) = transfer(&chain, carol, alice.address(), nonce);
            touching_alice.insert(hash.clone());
            batch.push(hex);
            last = hash;
        }
        if round == 0 {
            let (_, hex) = transfer(&chain, bob, bob.address(), 0);
            batch.push(hex);
        }
        submit_batch(&rpc, &batch);
        heights.insert(wait_committed(&rpc, &last).0);
        // Everything of this round committed before the next round.
        for hash in &touching_alice {
            heights.insert(wait_committed(&rpc, hash).0);
        }
    }
    assert!(heights.len() >= rounds as usize, "{heights:?}");

    let alice_address = alice.address().to_bech32();
    let expected = (rounds * per_round * 2) as usize;
    for limit in [7, 100, 1_000] {
        let entries = read_pages(&rpc, &alice_address, limit);
        assert_eq!(entries.len(), expected, "limit {limit}");
        let hashes: BTreeSet<String> = entries
            .iter()
            .map(|entry| entry["hash"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(hashes, touching_alice, "limit {limit}: every one, once");
        let positions: Vec<(u64, u64)> = entries
            .iter()
            .map(|entry| {
                (
                    entry["height"].as_u64().unwrap(),
                    entry["index"].as_u64().unwrap(),
                )
            })
            .collect();
        assert!(
            positions.windows(2).all(|pair| pair[0] > pair[1]),
            "limit {limit}: not newest first: {positions:?}"
        );
        for entry in &entries {
            let direction = entry["direction"].as_str().unwrap();
            let sender = &entry["transaction"]["transaction"]["sender"];
            if *sender == Value::String(alice.public_key().to_hex()) {
                assert_eq!(direction, "sent", "{entry}");
            } else {
                assert_eq!(direction, "received", "{entry}");
            }
        }
    }
    // Each entry's position is where the transaction index says it is.
    let first = get_json(&rpc, &format!("/account/{alice_address}/transactions"));
    assert_eq!(first["transactions"].as_array().unwrap().len(), 20);
    assert_eq!(first["lowest_height"], 1);
    for entry in first["transactions"].as_array().unwrap() {
        let hash = entry["hash"].as_str().unwrap();
        let (height, index) = wait_committed(&rpc, hash);
        assert_eq!(
            (entry["height"].as_u64(), entry["index"].as_u64()),
            (Some(height), Some(index))
        );
    }
    // A transfer to oneself is listed once, as `self`.
    let bob_page = get_json(
        &rpc,
        &format!(
            "/account/{}/transactions?limit=100",
            bob.address().to_bech32()
        ),
    );
    let selves: Vec<&Value> = bob_page["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["direction"] == "self")
        .collect();
    assert_eq!(selves.len(), 1, "{bob_page}");
    // An account without transactions has an empty page.
    let page = get_json(
        &rpc,
        &format!("/account/{}/transactions", Address([9; 20]).to_bech32()),
    );
    assert_eq!(page["transactions"], serde_json::json!([]));
    assert!(page["next"].is_null());

    // Bad queries: what was wrong, 400.
    for (path, needle) in [
        (
            format!("/account/{alice_address}/transactions?limit=0"),
            "limit=0",
        ),
        (
            format!("/account/{alice_address}/transactions?before=zz"),
            "not a history cursor",
        ),
        (
            format!("/account/{alice_address}/transactions?limit=x"),
            "limit",
        ),
        (
            format!("/account/{alice_address}/transactions?sort=asc"),
            "sort",
        ),
        ("/account/cairn1nope/transactions".to_string(), ""),
    ] {
        let (status, body) = http_get(&rpc, &path);
        assert_eq!(status, 400, "{path}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], "malformed_request", "{path}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{path}: {body}"
        );
    }

    other_reads(&rpc, &chain, alice, &root);
}

/// The mempool listing, a pending `GET /tx`, `/genesis` and `/consensus`.
fn other_reads(rpc: &str, chain: &ChainId, alice: &Keypair, root: &tempfile::TempDir) {
    let committed_nonce = get_json(rpc, &format!("/account/{}", alice.address().to_bech32()))
        ["nonce"]
        .as_u64()
        .unwrap();
    // Nonces above a gap stay queued: admitted in the order 6, 5, 7.
    let order = [6, 5, 7];
    let mut hashes = Vec::new();
    for offset in order {
        let (hash, hex) = transfer(chain, alice, alice.address(), committed_nonce + offset);
        submit_batch(rpc, &[hex]);
        hashes.push(hash);
    }
    let listed = get_json(rpc, "/mempool/transactions");
    assert_eq!(listed["count"], 3, "{listed}");
    let listed_hashes: Vec<&str> = listed["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["hash"].as_str().unwrap())
        .collect();
    assert_eq!(listed_hashes, hashes, "oldest first");
    for entry in listed["transactions"].as_array().unwrap() {
        assert_eq!(entry["queued_behind_nonce"], committed_nonce, "{entry}");
        assert!(entry["pending_ms"].as_u64().is_some(), "{entry}");
    }
    let two = get_json(rpc, "/mempool/transactions?limit=2");
    assert_eq!(two["transactions"].as_array().unwrap().len(), 2, "{two}");
    assert_eq!(two["count"], 3, "{two}");
    let (status, body) = http_get(rpc, "/mempool/transactions?limit=0");
    assert_eq!(status, 400, "{body}");
    let one = get_json(rpc, &format!("/mempool/transactions/{}", hashes[0]));
    assert_eq!(one["hash"], hashes[0], "{one}");
    assert_eq!(one, get_json(rpc, &format!("/mempool/tx/{}", hashes[0])));

    // A pending transaction: 202 `pending`, not 404 (and not 200).
    let (status, body) = http_get(rpc, &format!("/tx/{}", hashes[0]));
    assert_eq!(status, 202, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], "pending", "{body}");
    assert_eq!(body["queued_behind_nonce"], committed_nonce, "{body}");
    // Never seen: 404 (committed: 200 `committed`, see `wait_committed`).
    let (status, _) = http_get(rpc, &format!("/tx/{}", "ab".repeat(32)));
    assert_eq!(status, 404);

    // The genesis file as served is the chain's: same hash as /status.
    let served = get_json(rpc, "/genesis");
    let path = root.path().join("served-genesis.json");
    std::fs::write(&path, served.to_string()).unwrap();
    let genesis = cairn_genesis::Genesis::load(&path).unwrap();
    let status = get_json(rpc, "/status");
    assert_eq!(
        Value::String(genesis.hash().to_hex()),
        status["genesis_hash"],
        "{served}"
    );

    // POST /tx?wait=commit answers once the transaction is in a block...
    let (hash, hex) = transfer(chain, alice, alice.address(), committed_nonce);
    let body = serde_json::json!({ "tx": hex }).to_string();
    let (code, answer) = http_request(rpc, "POST", "/tx?wait=commit", Some(&body));
    assert_eq!(code, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["status"], "committed", "{answer}");
    assert_eq!(answer["hash"], hash.as_str());
    let (height, index) = wait_committed(rpc, &hash);
    assert_eq!(
        (answer["height"].as_u64(), answer["index"].as_u64()),
        (Some(height), Some(index))
    );
    // ... or with 409 `dropped` when it leaves the mempool (replaced here).
    let nonce = committed_nonce + 10;
    let (_, hex) = transfer(chain, alice, alice.address(), nonce);
    let waiting = {
        let rpc = rpc.to_string();
        let body = serde_json::json!({ "tx": hex }).to_string();
        std::thread::spawn(move || http_request(&rpc, "POST", "/tx?wait=commit", Some(&body)))
    };
    let started = Instant::now();
    while get_json(rpc, "/mempool")["count"] != 4 {
        assert!(
            started.elapsed() < DEADLINE,
            "the waiting submission never arrived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let replacement = Transaction {
        chain_id: chain.clone(),
        sender: alice.public_key(),
        recipient: alice.address(),
        amount: 10 + nonce,
        fee: 50,
        nonce,
        memo: String::new(),
        kind: cairn_types::TransactionKind::Transfer,
    }
    .sign(alice);
    submit_batch(rpc, &[hex::encode(replacement.to_bytes())]);
    let (code, answer) = waiting.join().unwrap();
    assert_eq!(code, 409, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["error"]["code"], "dropped", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("replaced"),
        "{answer}"
    );
    let (code, answer) = http_request(rpc, "POST", "/tx?wait=soon", Some(&body));
    assert_eq!(code, 400, "{answer}");

    // The one validator of the dev chain holds all the power.
    let consensus = get_json(rpc, "/consensus");
    assert_eq!(
        consensus["total_power"], consensus["quorum_power"],
        "{consensus}"
    );
    assert_eq!(consensus["validator_index"], 0, "{consensus}");
    assert!(
        consensus["height"].as_u64().unwrap() >= status["latest_height"].as_u64().unwrap(),
        "{consensus}"
    );
}

#[test]
fn a_node_without_the_history_index_says_so() {
    let root = tempfile::tempdir().unwrap();
    let home = root.path().join("home");
    let log = std::fs::File::create(root.path().join("log")).unwrap();
    let child = cairnd()
        .args(["--home", &home.display().to_string(), "start", "--dev"])
        .args(["--rpc-history-index", "false"])
        .args([
            "--rpc-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(Some(child));
    let addresses = wait_for_addresses(&mut guard, &home);
    let rpc = addresses["rpc"].as_str().unwrap();
    let (status, body) = http_get(
        rpc,
        &format!("/account/{}/transactions", Address([9; 20]).to_bech32()),
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("rpc.history_index"), "{body}");
}
