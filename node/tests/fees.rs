//! Fees with real processes (`cairnd`, RocksDB, RPC over HTTP):
//!
//! - the local journal: transactions submitted through a node's RPC are
//!   pending again after the process is killed and started on the same
//!   home; those committed meanwhile are dropped with a log line; a queued
//!   one that stays queued past `mempool.ttl_ms` is dropped and counted;
//! - a spam flood at the chain's minimum fee from many funded keys fills
//!   the mempool while an honest client pays ten times the minimum: every
//!   honest transfer commits within a few blocks and none is evicted; the
//!   spam is evicted and counted in the metrics. The figures are printed
//!   (`cargo test -p cairn-node --test fees -- --nocapture`) and recorded
//!   in BENCHMARKS.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    collections::HashMap,
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use cairn_types::{Address, ChainId, Keypair, Transaction};
use serde_json::Value;
use support::{cairnd, get_json, http_get, http_request, wait_for_addresses, ChildGuard, DEADLINE};

fn transfer(chain: &ChainId, key: &Keypair, nonce: u64, fee: u64) -> (String, String) {
    let transaction = Transaction {
        chain_id: chain.clone(),
        sender: key.public_key(),
        recipient: Address([7; 20]),
        amount: 10,
        fee,
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

/// `POST /txs`: the code of each result (`"ok"` for an admitted one).
fn submit_batch(rpc: &str, hexes: &[String]) -> Vec<String> {
    let body = serde_json::json!({ "txs": hexes }).to_string();
    let (status, answer) = http_request(rpc, "POST", "/txs", Some(&body));
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|result| match result["error"]["code"].as_str() {
            Some(code) => code.to_string(),
            None => "ok".to_string(),
        })
        .collect()
}

/// The value of a metric line (`name{labels} value`) in the text of
/// `/metrics`.
fn metric(metrics: &str, line_start: &str) -> u64 {
    let text = http_get(metrics, "/metrics").1;
    text.lines()
        .find_map(|line| line.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {line_start} in {text}"))
}

fn height(rpc: &str) -> u64 {
    get_json(rpc, "/status")["latest_height"].as_u64().unwrap()
}

fn wait_until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `cairnd --home home start --dev` with `extra` flags; the RPC
/// and metrics base URLs. Its log goes to `home/../log-N`.
fn start_dev(home: &Path, extra: &[&str], log: &Path) -> (ChildGuard, String, String) {
    let _ = std::fs::remove_file(home.join("addresses.json"));
    let log = std::fs::File::create(log).unwrap();
    let child = cairnd()
        .args(["--home", &home.display().to_string(), "start", "--dev"])
        .args([
            "--rpc-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(Some(child));
    let addresses = wait_for_addresses(&mut guard, home);
    let rpc = addresses["rpc"].as_str().unwrap().to_string();
    let metrics = addresses["metrics"]
        .as_str()
        .unwrap()
        .trim_end_matches("/metrics")
        .to_string();
    (guard, rpc, metrics)
}

#[test]
fn a_restart_replays_the_journal_and_queued_transactions_expire() {
    let root = tempfile::tempdir().unwrap();
    let home = root.path().join("home");
    let chain = ChainId::new(cairn_genesis::dev::DEV_CHAIN_ID).unwrap();
    let keys = cairn_genesis::dev::dev_account_keypairs();
    let quiet = [
        "--wait-for-transactions",
        "true",
        "--block-interval-max-ms",
        "600000",
    ];
    let (mut node, rpc, _) = start_dev(&home, &quiet, &root.path().join("log-1"));

    // Nonce 0 commits; nonce 3 waits behind the missing nonce 1.
    let (committed, committed_hex) = transfer(&chain, &keys[0], 0, 1);
    let (queued, queued_hex) = transfer(&chain, &keys[0], 3, 1);
    assert_eq!(
        submit_batch(&rpc, &[committed_hex, queued_hex]),
        ["ok", "ok"]
    );
    wait_until("nonce 0 to commit", || {
        (http_get(&rpc, &format!("/tx/{committed}")).0 == 200).then_some(())
    });
    let pending = get_json(&rpc, &format!("/mempool/tx/{queued}"));
    assert_eq!(pending["queued_behind_nonce"], 1, "{pending}");

    // Killed (no clean stop), then started on the same home.
    let mut child = node.0.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let log = root.path().join("log-2");
    let (node, rpc, metrics) = start_dev(
        &home,
        &[&quiet[..], &["--mempool-ttl-ms", "3000"]].concat(),
        &log,
    );
    let pending = get_json(&rpc, &format!("/mempool/tx/{queued}"));
    assert_eq!(pending["hash"], queued.as_str(), "{pending}");
    assert_eq!(pending["queued_behind_nonce"], 1, "{pending}");
    let mempool = get_json(&rpc, "/mempool");
    assert_eq!(mempool["count"], 1, "{mempool}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("journal: dropped a transaction that is no longer valid")
            && text.contains(&committed),
        "{text}"
    );
    assert!(
        text.contains("1 locally submitted transactions are pending again"),
        "{text}"
    );

    // Queued past the TTL (3 s): dropped and counted.
    wait_until("the queued transaction to expire", || {
        (get_json(&rpc, "/mempool")["count"] == 0).then_some(())
    });
    assert_eq!(
        metric(&metrics, "cairn_mempool_dropped_total{reason=\"expired\"}"),
        1
    );
    let (status, _) = http_get(&rpc, &format!("/mempool/tx/{queued}"));
    assert_eq!(status, 404);
    drop(node);
}

/// The spam flood: a chain of one validator whose blocks hold at most
/// 100 transactions, one a second (`timeout_commit_ms` 1000), and a
/// mempool of 400; 24 funded spam keys (`FEES_SPAM_KEYS`) each keep up to 64 transfers at the
/// minimum fee (1) pending, refilled every 20 ms, while the honest
/// client sends 5 transfers a second at fee 10 from its own key (40 of
/// them, `FEES_HONEST_TRANSFERS`).
#[test]
fn honest_transfers_commit_through_a_spam_flood() {
    // A larger run: FEES_SPAM_KEYS=96 FEES_HONEST_TRANSFERS=300 (see
    // BENCHMARKS.md).
    let from_env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(default)
    };
    let spam_keys = from_env("FEES_SPAM_KEYS", 24) as usize;
    let honest_transfers = from_env("FEES_HONEST_TRANSFERS", 40);
    const BLOCK_TRANSACTIONS_MAX: u64 = 100;
    let root = tempfile::tempdir().unwrap();
    let chain_id = "spam-test";
    let chain = ChainId::new(chain_id).unwrap();
    let validator = cairn_genesis::devnet::generate_keypair();
    let spammers: Vec<Keypair> = (0..spam_keys)
        .map(|_| cairn_genesis::devnet::generate_keypair())
        .collect();
    let honest = cairn_genesis::devnet::generate_keypair();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let genesis =
        cairn_genesis::devnet::build_devnet_from_keys(&cairn_genesis::devnet::DevnetKeys {
            chain_id: chain_id.into(),
            genesis_time: cairn_types::Timestamp(u64::try_from(now).unwrap()),
            validators: vec![("v0".into(), validator.public_key())],
            accounts: spammers
                .iter()
                .chain(std::iter::once(&honest))
                .map(|key| (key.address(), 1_000_000_000))
                .collect(),
            consensus_params: cairn_types::ConsensusParams {
                block_transactions_max: BLOCK_TRANSACTIONS_MAX,
                ..cairn_types::ConsensusParams::default()
            },
            staking_params: cairn_genesis::devnet::devnet_staking_params(),
        })
        .unwrap();
    assert_eq!(genesis.fee_params.min_fee, 1);
    let genesis_path = root.path().join("genesis.json");
    genesis.to_file().save(&genesis_path).unwrap();
    let home = root.path().join("v0");
    let output = cairnd()
        .args(["--home", &home.display().to_string(), "init", "--genesis"])
        .arg(&genesis_path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let key_file = home.join("config/validator_key.json");
    std::fs::remove_file(&key_file).unwrap();
    cairn_node::home::write_key_file(&key_file, &validator).unwrap();
    let child = cairnd()
        .args(["--home", &home.display().to_string(), "start"])
        .args(support::FREE_PORTS)
        .args(["--timeout-commit-ms", "1000"])
        .args(["--mempool-transactions-max", "400"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(Some(child));
    let addresses = wait_for_addresses(&mut guard, &home);
    let rpc = addresses["rpc"].as_str().unwrap().to_string();
    let metrics = addresses["metrics"]
        .as_str()
        .unwrap()
        .trim_end_matches("/metrics")
        .to_string();

    // Spam: every key tops its pending transfers up to 64 (its limit) at
    // the minimum fee, every 20 ms, from its committed nonce on.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spam = {
        let (rpc, chain, stop) = (rpc.clone(), chain.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut next: Vec<u64> = vec![0; spam_keys];
            let mut codes: HashMap<String, u64> = HashMap::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut batch = Vec::new();
                for (index, key) in spammers.iter().enumerate() {
                    let account = get_json(&rpc, &format!("/account/{}", key.address()));
                    let committed = account["nonce"].as_u64().unwrap();
                    // Evicted nonces are sent again.
                    let pending_next = account["next_nonce"].as_u64().unwrap();
                    next[index] = pending_next.max(committed);
                    while next[index] < committed + 64 && batch.len() < 2_000 {
                        batch.push(transfer(&chain, key, next[index], 1).1);
                        next[index] += 1;
                    }
                }
                for code in submit_batch(&rpc, &batch) {
                    *codes.entry(code).or_default() += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            codes
        })
    };
    wait_until("a full mempool", || {
        (get_json(&rpc, "/mempool")["count"].as_u64() >= Some(400)).then_some(())
    });
    let full_at = height(&rpc);

    // The honest client: 5 transfers a second at fee 10.
    let mut sent: Vec<(String, u64)> = Vec::new();
    for nonce in 0..honest_transfers {
        let (hash, hex) = transfer(&chain, &honest, nonce, 10);
        let at = height(&rpc);
        let codes = submit_batch(&rpc, &[hex]);
        assert_eq!(codes, ["ok"], "honest transfer {nonce} refused");
        sent.push((hash, at));
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut blocks_to_commit = Vec::new();
    for (hash, at) in &sent {
        let committed_at = wait_until("an honest transfer to commit", || {
            let (status, body) = http_get(&rpc, &format!("/tx/{hash}"));
            (status == 200).then(|| {
                serde_json::from_str::<Value>(&body).unwrap()["height"]
                    .as_u64()
                    .unwrap()
            })
        });
        blocks_to_commit.push(committed_at - at);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let codes = spam.join().unwrap();
    let end = height(&rpc);
    blocks_to_commit.sort_unstable();
    let p50 = blocks_to_commit[blocks_to_commit.len() / 2];
    let worst = *blocks_to_commit.last().unwrap();
    let evicted = metric(&metrics, "cairn_mempool_dropped_total{reason=\"evicted\"}");
    let full = metric(
        &metrics,
        "cairn_mempool_rejected_total{reason=\"mempool_full\"}",
    );
    let before_signature = metric(&metrics, "cairn_mempool_refused_before_signature_total");
    println!(
        "spam test: {} blocks from a full pool; spam submitted {:?}; honest: {} transfers at fee 10, blocks from submission to commit p50 {p50}, max {worst}; evicted {evicted} (all spam), mempool_full rejections {full}, refused before signature verification {before_signature}",
        end - full_at,
        codes,
        sent.len(),
    );
    // Every honest transfer committed within 3 blocks of its submission
    // (1 = the next block), none was evicted (they all committed), and the
    // spam was evicted and refused.
    assert!(
        worst <= 3,
        "honest transfers waited {blocks_to_commit:?} blocks"
    );
    assert!(evicted > 0, "no spam was evicted");
    assert!(full > 0 && codes.get("mempool_full").copied().unwrap_or(0) > 0);
    assert!(before_signature > 0);
    drop(guard);
}
