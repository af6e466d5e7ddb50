//! The ledger core over a real RocksDB store in a temporary directory:
//! hand-built and built blocks commit, the RPC shows them, invalid blocks
//! are refused with clear errors, data survives a reopen, and a store of
//! another chain is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use cairn_genesis::{
    devnet::{build_devnet_from_keys, DevnetKeys},
    Genesis,
};
use cairn_node::{
    backend::{NetworkView, NodeBackend, NodeIdentity},
    ledger::{BlockRequest, Ledger},
    mempool::MempoolLimits,
    metrics::Metrics,
    rpc,
};
use cairn_types::{
    Address, Block, CommitCertificate, CommitSignature, ConsensusParams, Hash, Header, Height,
    Keypair, Round, Timestamp, Transaction, ValidatorIndex, Vote, VoteType,
};
use http_body_util::BodyExt;
use tower::ServiceExt;

const GENESIS_TIME: Timestamp = Timestamp(1_700_000_000_000);

fn validators() -> Vec<Keypair> {
    support::ledger_validator_keys()
}

fn alice() -> Keypair {
    Keypair::from_seed(&[1; 32])
}

/// The operator of the staking test.
fn carol() -> Keypair {
    Keypair::from_seed(&[2; 32])
}

fn bob() -> Address {
    Address([7; 20])
}

fn genesis(chain: &str) -> Genesis {
    build_devnet_from_keys(&DevnetKeys {
        chain_id: chain.into(),
        genesis_time: GENESIS_TIME,
        validators: validators()
            .iter()
            .enumerate()
            .map(|(i, key)| (format!("v{i}"), key.public_key()))
            .collect(),
        accounts: vec![
            (alice().address(), 1_000_000),
            (carol().address(), 10_000_000),
        ],
        consensus_params: ConsensusParams::default(),
        staking_params: cairn_genesis::devnet::devnet_staking_params(),
    })
    .unwrap()
}

fn limits() -> MempoolLimits {
    MempoolLimits {
        transactions_max: 1_000,
        bytes_max: 1 << 20,
        min_fee: 0,
    }
}

fn open(dir: &std::path::Path, genesis: Genesis) -> Ledger {
    Ledger::open(genesis, dir, limits(), Arc::new(Metrics::default())).unwrap()
}

fn transfer(ledger: &Ledger, nonce: u64, amount: u64) -> cairn_types::SignedTransaction {
    Transaction {
        chain_id: ledger.chain_id().clone(),
        sender: alice().public_key(),
        recipient: bob(),
        amount,
        fee: 1,
        nonce,
        memo: String::new(),
        kind: cairn_types::TransactionKind::Transfer,
    }
    .sign(&alice())
}

fn certify(ledger: &Ledger, block: &Block) -> CommitCertificate {
    support::certify_block(ledger.chain_id(), block)
}

/// A block built by hand (not through build_block): executes the
/// transfers on the committed state to find the root.
fn hand_block(
    ledger: &Ledger,
    transactions: Vec<cairn_types::SignedTransaction>,
    parent_certificate: Option<CommitCertificate>,
) -> Block {
    let tip = ledger.tip();
    let proposer = validators()[0].address();
    let state = ledger.store().load_state().unwrap();
    let outcome = state
        .execute(ledger.chain_id(), proposer, &transactions)
        .unwrap();
    Block {
        header: Header {
            chain_id: ledger.chain_id().clone(),
            height: Height(tip.height.0 + 1),
            time: Timestamp(tip.time.0.max(GENESIS_TIME.0) + 1_000),
            parent_hash: tip.hash,
            proposer,
            transactions_root: Block::transactions_root_of(&transactions),
            state_root: outcome.state_root(),
            parent_certificate_hash: Block::parent_certificate_hash_of(parent_certificate.as_ref()),
            evidence_hash: Block::evidence_hash_of(&[]),
            validator_set_hash: ledger.genesis().validators.hash(),
            next_validator_set_hash: ledger.genesis().validators.hash(),
        },
        transactions,
        parent_certificate,
        evidence: vec![],
    }
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, serde_json::Value) {
    let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn hand_built_blocks_commit_and_the_rpc_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(open(dir.path(), genesis("ledger-test")));
    let mut events = ledger.subscribe();
    let backend = NodeBackend::new(
        Arc::clone(&ledger),
        Arc::new(NetworkView::new(Arc::clone(ledger.metrics()))),
        NodeIdentity {
            node_id: "test-node".into(),
            moniker: "m".into(),
            validator: true,
        },
    );
    let app = rpc::router(Arc::new(backend));

    // Block 1 carries two transfers (one submitted through the mempool).
    let first = transfer(&ledger, 0, 100);
    let second = transfer(&ledger, 1, 200);
    let results = ledger.submit(&[&first.to_bytes()]);
    assert!(results[0].is_ok(), "{results:?}");
    let block1 = hand_block(&ledger, vec![first.clone(), second.clone()], None);
    let certificate1 = certify(&ledger, &block1);
    let summary = ledger.commit(&block1, &certificate1).unwrap();
    assert_eq!(summary.height, Height(1));
    assert_eq!(
        ledger.mempool_size().0,
        0,
        "committed transfers leave the mempool"
    );

    // Block 2, empty, carries block 1's certificate.
    let block2 = hand_block(&ledger, vec![], Some(certificate1.clone()));
    ledger.commit(&block2, &certify(&ledger, &block2)).unwrap();

    let event = events.recv().await.unwrap();
    assert_eq!(event.height, 1);
    assert_eq!(event.hash, block1.hash());
    assert_eq!(event.transactions, vec![first.hash(), second.hash()]);

    let (status, body) = get(&app, "/block/1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["hash"], block1.hash().to_hex());
    assert_eq!(body["transactions"][1], second.hash().to_hex());
    assert_eq!(body["certificate"]["block_hash"], block1.hash().to_hex());
    let (_, body) = get(&app, &format!("/block/hash/{}", block2.hash())).await;
    assert_eq!(body["header"]["height"], 2);
    let (_, body) = get(&app, "/block/latest").await;
    assert_eq!(body["hash"], block2.hash().to_hex());
    let (status, body) = get(&app, &format!("/tx/{}", second.hash())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["height"].clone(), body["index"].clone()),
        (1.into(), 1.into())
    );
    let (_, body) = get(&app, &format!("/account/{}", bob().to_bech32())).await;
    assert_eq!(body["balance"], 300);
    let (_, body) = get(&app, &format!("/account/{}", alice().address().to_bech32())).await;
    assert_eq!(body["balance"], 1_000_000 - 302);
    assert_eq!(body["nonce"], 2);
    assert_eq!(body["next_nonce"], 2);
    let (_, body) = get(&app, "/status").await;
    assert_eq!(body["latest_height"], 2);
    assert_eq!(body["node_id"], "test-node");
    let (_, body) = get(&app, "/validators").await;
    assert_eq!(body["total_power"], 4);
    let (status, _) = get(&app, "/block/3").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let text = ledger.metrics().render();
    assert!(text.contains("cairn_consensus_height 2"), "{text}");
    assert!(text.contains("cairn_committed_txs_total 2"), "{text}");
}

#[test]
fn validate_block_refuses_bad_blocks_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path(), genesis("ledger-test"));
    let good = hand_block(&ledger, vec![transfer(&ledger, 0, 5)], None);
    ledger.validate_block(&good).unwrap();

    let mut bad_signature = good.clone();
    bad_signature.transactions[0].signature.0[0] ^= 1;
    bad_signature.header.transactions_root =
        Block::transactions_root_of(&bad_signature.transactions);
    let error = ledger
        .validate_block(&bad_signature)
        .unwrap_err()
        .to_string();
    assert!(error.contains("signature that does not verify"), "{error}");
    assert!(error.contains("transaction 0"), "{error}");

    let mut bad_root = good.clone();
    bad_root.header.state_root = Hash([9; 32]);
    let error = ledger.validate_block(&bad_root).unwrap_err().to_string();
    assert!(error.contains("state root"), "{error}");

    let mut bad_tx_root = good.clone();
    bad_tx_root.header.transactions_root = Hash([9; 32]);
    let error = ledger.validate_block(&bad_tx_root).unwrap_err().to_string();
    assert!(error.contains("transactions root"), "{error}");

    let mut bad_nonce = good.clone();
    bad_nonce.transactions = vec![transfer(&ledger, 3, 5)];
    bad_nonce.header.transactions_root = Block::transactions_root_of(&bad_nonce.transactions);
    let error = ledger.validate_block(&bad_nonce).unwrap_err().to_string();
    assert!(error.contains("nonce"), "{error}");

    let mut wrong_parent = good.clone();
    wrong_parent.header.parent_hash = Hash([1; 32]);
    let error = ledger
        .validate_block(&wrong_parent)
        .unwrap_err()
        .to_string();
    assert!(error.contains("parent"), "{error}");

    // A certificate for another block is refused at commit.
    let mut other = certify(&ledger, &good);
    other.block_hash = Hash([2; 32]);
    let error = ledger.commit(&good, &other).unwrap_err().to_string();
    assert!(error.contains("certificate"), "{error}");
    assert_eq!(ledger.tip().height, Height(0));
}

#[test]
fn built_blocks_validate_commit_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (root, hash) = {
        let ledger = open(dir.path(), genesis("ledger-test"));
        let batch: Vec<Vec<u8>> = (0..5)
            .map(|n| transfer(&ledger, n, 10).to_bytes())
            .collect();
        let slices: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        assert!(ledger.submit(&slices).iter().all(Result::is_ok));
        let proposer = validators()[1].address();
        let (balance_before, _, _) = ledger.account(&proposer);
        let block = ledger
            .build_block(BlockRequest {
                proposer,
                time: Timestamp(0),
                parent_certificate: None,
                evidence: vec![],
            })
            .unwrap();
        assert_eq!(block.transactions.len(), 5);
        assert!(block.header.time >= GENESIS_TIME);
        assert_eq!(ledger.mempool_size().0, 5, "building keeps the mempool");
        ledger.validate_block(&block).unwrap();
        ledger.commit(&block, &certify(&ledger, &block)).unwrap();
        assert_eq!(ledger.mempool_size().0, 0);
        let (balance, _, _) = ledger.account(&proposer);
        assert_eq!(balance, balance_before + 5, "the proposer earns the fees");

        // The next block carries the certificate and nothing else.
        let certificate = ledger.store().certificate(Height(1)).unwrap();
        let next = ledger
            .build_block(BlockRequest {
                proposer,
                time: block.header.time,
                parent_certificate: certificate,
                evidence: vec![],
            })
            .unwrap();
        assert!(next.header.time > block.header.time);
        ledger.commit(&next, &certify(&ledger, &next)).unwrap();
        (ledger.tip().state_root, ledger.tip().hash)
    };
    let reopened = open(dir.path(), genesis("ledger-test"));
    let tip = reopened.tip();
    assert_eq!(tip.height, Height(2));
    assert_eq!((tip.state_root, tip.hash), (root, hash));
    assert_eq!(reopened.account(&bob()).0, 50);
    assert_eq!(reopened.account(&alice().address()).1, 5);
}

#[test]
fn a_store_of_another_chain_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path(), genesis("chain-one")));
    let error = Ledger::open(
        genesis("chain-two"),
        dir.path(),
        limits(),
        Arc::new(Metrics::default()),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        error.contains("chain-one") && error.contains("chain-two"),
        "{error}"
    );
    assert!(error.contains("cairnd reset --yes"), "{error}");
}

/// Reads one unmasked server text frame (small or 16-bit length).
async fn read_text_frame(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(head[0] & 0x0f, 1, "a text frame");
    let len = match head[1] & 0x7f {
        126 => {
            let mut extended = [0u8; 2];
            stream.read_exact(&mut extended).await.unwrap();
            usize::from(u16::from_be_bytes(extended))
        }
        127 => panic!("frame too large for this test"),
        small => usize::from(small),
    };
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.unwrap();
    String::from_utf8(payload).unwrap()
}

#[tokio::test]
async fn websocket_subscribers_see_committed_blocks() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(open(dir.path(), genesis("ledger-test")));
    let backend = NodeBackend::new(
        Arc::clone(&ledger),
        Arc::new(NetworkView::new(Arc::clone(ledger.metrics()))),
        NodeIdentity {
            node_id: "n".into(),
            moniker: "m".into(),
            validator: false,
        },
    );
    let (listener, address) = rpc::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, rpc::router(Arc::new(backend)))
            .await
            .unwrap();
    });
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(
            format!(
                "GET /ws HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // Read the 101 response head byte by byte up to the blank line.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.unwrap());
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // The subscription exists once the upgrade answered; commit a block.
    let transaction = transfer(&ledger, 0, 9);
    let block = hand_block(&ledger, vec![transaction.clone()], None);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    ledger.commit(&block, &certify(&ledger, &block)).unwrap();
    let text = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        read_text_frame(&mut stream),
    )
    .await
    .unwrap();
    let event: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(event["type"], "new_block");
    assert_eq!(event["height"], 1);
    assert_eq!(event["hash"], block.hash().to_hex());
    assert_eq!(event["transactions"][0], transaction.hash().to_hex());
    server.abort();
}

/// The evidence rule (consensus): a block records evidence only of heights
/// in its window, at most one piece per (validator, height) across the
/// chain; the builder leaves out what a block may not record, and the
/// rule holds after a reopen.
#[test]
fn evidence_is_recorded_once_per_validator_and_height() {
    let dir = tempfile::tempdir().unwrap();
    let equivocation = |height: u64, round: u32| {
        let key = &validators()[2];
        let vote = |hash: u8| {
            Vote::new_signed(
                &cairn_types::ChainId::new("ledger-test").unwrap(),
                VoteType::Prevote,
                Height(height),
                Round(round),
                Some(Hash([hash; 32])),
                ValidatorIndex(2),
                key,
            )
        };
        cairn_types::Evidence::duplicate_vote(vote(1), vote(2)).unwrap()
    };
    let proposer = validators()[0].address();
    let build = |ledger: &Ledger, evidence: Vec<cairn_types::Evidence>| {
        let tip = ledger.tip();
        let parent_certificate = if tip.height == Height::GENESIS {
            None
        } else {
            ledger.store().certificate(tip.height).unwrap()
        };
        ledger
            .build_block(BlockRequest {
                proposer,
                time: Timestamp(tip.time.0 + 1_000),
                parent_certificate,
                evidence,
            })
            .unwrap()
    };
    {
        let ledger = open(dir.path(), genesis("ledger-test"));
        // Two pieces against one (validator, height): the builder keeps one.
        let block = build(&ledger, vec![equivocation(1, 0), equivocation(1, 3)]);
        assert_eq!(block.evidence.len(), 1);
        ledger.commit(&block, &certify(&ledger, &block)).unwrap();
        assert!(ledger.evidence_recorded(&equivocation(1, 5)));

        // A hand-made block recording it again is invalid.
        let mut again = build(&ledger, vec![]);
        again.evidence = vec![equivocation(1, 7)];
        again.header.evidence_hash = Block::evidence_hash_of(&again.evidence);
        let error = ledger.validate_block(&again).unwrap_err().to_string();
        assert!(error.contains("already recorded"), "{error}");
        // So is evidence of a height past the block.
        let mut future = build(&ledger, vec![]);
        future.evidence = vec![equivocation(50, 0)];
        future.header.evidence_hash = Block::evidence_hash_of(&future.evidence);
        let error = ledger.validate_block(&future).unwrap_err().to_string();
        assert!(error.contains("outside"), "{error}");
        let next = build(&ledger, vec![equivocation(1, 9)]);
        assert!(next.evidence.is_empty(), "the builder proposed it again");
        ledger.commit(&next, &certify(&ledger, &next)).unwrap();
    }
    // After a reopen the ledger still knows what was recorded.
    let reopened = open(dir.path(), genesis("ledger-test"));
    assert!(reopened.evidence_recorded(&equivocation(1, 11)));
    assert!(!reopened.evidence_recorded(&equivocation(2, 0)));
}

/// A certificate of `block` by every key of `signers` that is in `set`.
fn certify_by_set(
    ledger: &Ledger,
    block: &Block,
    set: &cairn_types::ValidatorSet,
    signers: &[Keypair],
) -> CommitCertificate {
    let mut signatures: Vec<CommitSignature> = signers
        .iter()
        .filter_map(|key| {
            let index = set.index_of(&key.public_key())?;
            let vote = Vote::new_signed(
                ledger.chain_id(),
                VoteType::Precommit,
                block.header.height,
                Round(0),
                Some(block.hash()),
                index,
                key,
            );
            Some(CommitSignature {
                validator: index,
                signature: vote.signature,
            })
        })
        .collect();
    signatures.sort_by_key(|signature| signature.validator);
    CommitCertificate {
        height: block.header.height,
        round: Round(0),
        block_hash: block.hash(),
        signatures,
    }
}

/// Builds and commits the next (empty but for `submitted`) block, signed
/// by `signers` under the height's set.
fn commit_next(ledger: &Ledger, signers: &[Keypair]) -> Block {
    let tip = ledger.tip();
    let parent_certificate = ledger.store().certificate(tip.height).unwrap();
    let block = ledger
        .build_block(BlockRequest {
            proposer: validators()[1].address(),
            time: Timestamp(tip.time.0 + 1_000),
            parent_certificate,
            evidence: vec![],
        })
        .unwrap();
    let set = ledger.validator_set(block.header.height).unwrap().unwrap();
    assert_eq!(block.header.validator_set_hash, set.hash());
    ledger
        .commit(&block, &certify_by_set(ledger, &block, &set, signers))
        .unwrap();
    block
}

#[test]
fn a_bond_changes_the_set_two_heights_later_and_the_sets_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let newcomer = Keypair::from_seed(&[50; 32]);
    let mut signers = validators();
    signers.push(newcomer.clone());
    let genesis_set = genesis("staking-ledger").validators;
    let hashes: Vec<Hash> = {
        let ledger = open(dir.path(), genesis("staking-ledger"));
        // Carol bonds 2 power units to the newcomer's key; the mempool
        // checks the staking rules (a foreign key is refused by name).
        let bond = |nonce, key: &Keypair, amount| {
            Transaction {
                chain_id: ledger.chain_id().clone(),
                sender: carol().public_key(),
                recipient: carol().address(),
                amount,
                fee: 1,
                nonce,
                memo: "newcomer".into(),
                kind: cairn_types::TransactionKind::Bond {
                    validator_key: key.public_key(),
                },
            }
            .sign(&carol())
            .to_bytes()
        };
        let foreign = bond(0, &validators()[2], 2_000_000);
        let refused = ledger.submit(&[foreign.as_slice()]);
        assert_eq!(refused[0].as_ref().unwrap_err().code(), "not_operator");
        let accepted = bond(0, &newcomer, 2_000_000);
        assert!(ledger.submit(&[accepted.as_slice()])[0].is_ok());
        let first = commit_next(&ledger, &signers);
        assert_eq!(first.transactions.len(), 1);
        // After block 1: height 2 keeps the genesis set, height 3 gets the
        // newcomer with power 1 (a third of 4, rounded down), the header
        // of block 2 will name it.
        assert_eq!(
            ledger.validator_set(Height(2)).unwrap().unwrap(),
            genesis_set
        );
        let third = ledger.validator_set(Height(3)).unwrap().unwrap();
        assert_eq!(third.total_power().0, 5);
        assert!(third.index_of(&newcomer.public_key()).is_some());
        let second = commit_next(&ledger, &signers);
        assert_eq!(second.header.next_validator_set_hash, third.hash());
        // Block 3 is signed under the new set (which needs 4 of 5).
        let block3 = commit_next(&ledger, &signers);
        assert_eq!(block3.header.validator_set_hash, third.hash());
        commit_next(&ledger, &signers);
        (1..=6)
            .map(|height| {
                ledger
                    .validator_set(Height(height))
                    .unwrap()
                    .unwrap()
                    .hash()
            })
            .collect()
    };
    // The newcomer's power grew to 2 at height 4 (1 more, within a third).
    assert_ne!(hashes[2], hashes[3]);
    let reopened = open(dir.path(), genesis("staking-ledger"));
    let after: Vec<Hash> = (1..=6)
        .map(|height| {
            reopened
                .validator_set(Height(height))
                .unwrap()
                .unwrap()
                .hash()
        })
        .collect();
    assert_eq!(after, hashes, "the set of every height survives a reopen");
    let staking = reopened.staking().unwrap();
    let candidate = staking.candidate(&carol().address()).unwrap();
    assert_eq!(candidate.bonded, 2_000_000);
    assert_eq!(candidate.validator_key, newcomer.public_key());
    // The chain goes on under the reopened sets.
    commit_next(&reopened, &signers);
    assert!(reopened.validator_set(Height(0)).unwrap().is_none());
    assert!(reopened.validator_set(Height(8)).unwrap().is_none());
}

/// `GET /account/{address}/transactions` over a RocksDB ledger that
/// pruned its oldest blocks: the pages end at the lowest height held, and
/// a cursor below it answers 410 `pruned`.
#[tokio::test]
async fn account_history_ends_at_the_lowest_height_held() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(open(dir.path(), genesis("ledger-test")));
    let backend = NodeBackend::new(
        Arc::clone(&ledger),
        Arc::new(NetworkView::new(Arc::clone(ledger.metrics()))),
        NodeIdentity {
            node_id: "n".into(),
            moniker: "m".into(),
            validator: false,
        },
    );
    let app = rpc::router(Arc::new(backend));
    // One transfer alice -> bob per block.
    let blocks = cairn_store::PRUNE_KEEP_BLOCKS_MIN + 12;
    let mut parent = None;
    for nonce in 0..blocks {
        let block = hand_block(&ledger, vec![transfer(&ledger, nonce, 1)], parent.take());
        let certificate = certify(&ledger, &block);
        ledger.commit(&block, &certificate).unwrap();
        parent = Some(certificate);
    }
    let bob = bob().to_bech32();
    let page = |before: Option<String>| {
        let app = app.clone();
        let bob = bob.clone();
        async move {
            let mut uri = format!("/account/{bob}/transactions?limit=100");
            if let Some(cursor) = before {
                uri.push_str(&format!("&before={cursor}"));
            }
            get(&app, &uri).await
        }
    };
    let (status, first) = page(None).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["transactions"][0]["height"], blocks, "newest first");
    assert_eq!(first["transactions"][0]["direction"], "received");
    let cursor = first["next"].as_str().unwrap().to_string();
    let (_, second) = page(Some(cursor.clone())).await;
    assert_eq!(
        second["transactions"].as_array().unwrap().len() as u64,
        blocks - 100
    );
    assert_eq!(
        second["transactions"].as_array().unwrap().last().unwrap()["height"],
        1
    );

    let lowest = ledger.store().prune_blocks_below(Height(11)).unwrap();
    assert_eq!(lowest, Height(11));
    let (_, second) = page(Some(cursor)).await;
    let heights: Vec<u64> = second["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["height"].as_u64().unwrap())
        .collect();
    assert_eq!(heights.last(), Some(&11), "{second}");
    assert_eq!(heights.len() as u64, blocks - 100 - 10);
    assert_eq!(second["lowest_height"], 11);
    assert!(second["next"].is_null(), "{second}");
    let below = rpc::history_cursor(5, 0);
    let (status, body) = page(Some(below)).await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(body["error"]["code"], "pruned", "{body}");
}
