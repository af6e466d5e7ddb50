//! Batched gossip throughput: 10,000 transactions of 200 bytes, in batches
//! of 500 (the node sends batches of up to 2,048),
//! from one node to four peers on loopback. Prints transactions per second
//! delivered to every peer (the slowest peer's completion time counts).
//!
//! Run: `cargo bench --workspace --profile dev --bench gossip`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use cairn_p2p::{generate_keypair, Topic};
use common::*;

const TRANSACTIONS: usize = 10_000;
const TRANSACTION_BYTES: usize = 200;
const BATCH_TRANSACTIONS: usize = 500;
const ROUNDS: usize = 5;
const PEERS: usize = 4;

fn batch(round: usize, index: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(BATCH_TRANSACTIONS * TRANSACTION_BYTES);
    for tx in 0..BATCH_TRANSACTIONS {
        let mut t = format!("r{round}-b{index}-t{tx}-").into_bytes();
        t.resize(TRANSACTION_BYTES, (tx % 251) as u8);
        data.extend_from_slice(&t);
    }
    data
}

async fn count_until(node: &mut Node, transactions: usize, deadline: Duration) -> Instant {
    let end = Instant::now() + deadline;
    let mut got = 0usize;
    while got < transactions {
        match tokio::time::timeout_at(end.into(), node.seen.recv()).await {
            Ok(Some(Seen::Gossip { data, .. })) => got += data.len() / TRANSACTION_BYTES,
            Ok(Some(_)) => {}
            _ => panic!(
                "peer {} got {got} of {transactions} transactions",
                node.peer_id
            ),
        }
    }
    Instant::now()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let source = start(config(generate_keypair())).await;
        let mut peers = Vec::new();
        for _ in 0..PEERS {
            let mut c = config(generate_keypair());
            c.bootstrap = vec![source.address.clone()];
            peers.push(start(c).await);
        }
        wait_for("all peers subscribed", DEADLINE, || async {
            source.client.topic_peers(Topic::Transactions).await.unwrap_or_default().len() == PEERS
        })
        .await;
        let batches = TRANSACTIONS / BATCH_TRANSACTIONS;
        let mut rates = Vec::new();
        for round in 0..ROUNDS {
            let payloads: Vec<Vec<u8>> = (0..batches).map(|i| batch(round, i)).collect();
            let started = Instant::now();
            let receivers: Vec<_> = peers
                .drain(..)
                .map(|mut node| {
                    tokio::spawn(async move {
                        let deadline = Duration::from_secs(60);
                        let done = count_until(&mut node, TRANSACTIONS, deadline).await;
                        (node, done)
                    })
                })
                .collect();
            for payload in payloads {
                source
                    .client
                    .publish(Topic::Transactions, payload)
                    .await
                    .expect("publish");
            }
            let mut slowest = started;
            for receiver in receivers {
                let (node, done) = receiver.await.expect("receiver");
                slowest = slowest.max(done);
                peers.push(node);
            }
            let elapsed = slowest - started;
            let rate = TRANSACTIONS as f64 / elapsed.as_secs_f64();
            println!(
                "round {round}: {TRANSACTIONS} tx x {TRANSACTION_BYTES} B in batches of \
                 {BATCH_TRANSACTIONS} to {PEERS} peers: {elapsed:?}, {rate:.0} tx/s per peer"
            );
            rates.push(rate);
        }
        rates.sort_by(|a, b| a.total_cmp(b));
        println!(
            "gossip throughput: median {:.0} tx/s delivered to every peer (min {:.0}, max {:.0}); target >= 50000",
            rates[rates.len() / 2],
            rates[0],
            rates[rates.len() - 1]
        );
    });
}
