//! The rebuild of compact proposals over a real libp2p connection: a node
//! whose mempool lacks some of a proposal's transactions fetches exactly
//! those by hash from the peer that sent it; when the peer has them no
//! more it takes the whole block by hash; when nobody can supply them it
//! gives up (the round's propose timeout then moves consensus on) and
//! frees its slot for the next proposal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use cairn_consensus::{Input, SignedProposal};
use cairn_node::{
    compact_proposals::{run_assembly, AssemblyJob, CompactProposal, ASSEMBLY_DEADLINE_MS},
    ledger::Ledger,
    mempool::MempoolLimits,
    metrics::Metrics,
    runtime::HostEvent,
};
use cairn_p2p::{Client, Event, PeerId, SyncBlock, SyncRequest, SyncResponse};
use cairn_types::{
    codec, Block, Hash, Header, Height, Keypair, Proposal, Round, SignedTransaction, Timestamp,
    Transaction, TransactionKind, ValidatorIndex,
};
use tokio::sync::{mpsc, Semaphore};

/// What the serving peer answers.
#[derive(Clone)]
enum Serve {
    /// These transactions, to a transactions request.
    Transactions(Vec<SignedTransaction>),
    /// No transactions, but this block to a block request.
    WholeBlockOnly(Box<Block>),
    /// Nothing it is asked for.
    Nothing,
}

fn transfer(from: &Keypair, nonce: u64, chain: &cairn_types::ChainId) -> SignedTransaction {
    Transaction {
        chain_id: chain.clone(),
        sender: from.public_key(),
        recipient: Keypair::from_seed(&[8; 32]).address(),
        amount: 1,
        fee: 10,
        nonce,
        memo: String::new(),
        kind: TransactionKind::Transfer,
    }
    .sign(from)
}

fn p2p_node(chain: &cairn_types::ChainId, genesis_hash: Hash) -> (Client, mpsc::Receiver<Event>) {
    let mut config = cairn_p2p::Config::new(chain.clone(), cairn_p2p::generate_keypair());
    config.genesis_hash = genesis_hash.to_string();
    config.listen_addresses = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    config.mdns = false;
    let (client, events, _task) = cairn_p2p::spawn(config).unwrap();
    (client, events)
}

/// Answers the serving peer's requests by `serve`, counting the hashes
/// asked for.
async fn run_server(
    mut events: mpsc::Receiver<Event>,
    serve: Arc<Mutex<Serve>>,
    asked: Arc<Mutex<Vec<Hash>>>,
) {
    while let Some(event) = events.recv().await {
        if let Event::SyncRequest { request, reply, .. } = event {
            let serve = serve.lock().unwrap().clone();
            let answer = match (request, serve) {
                (SyncRequest::Transactions(hashes), Serve::Transactions(held)) => {
                    asked.lock().unwrap().extend(&hashes);
                    SyncResponse::Transactions(
                        held.iter()
                            .filter(|transaction| hashes.contains(&transaction.hash()))
                            .map(SignedTransaction::to_bytes)
                            .collect(),
                    )
                }
                (SyncRequest::Transactions(_), _) => SyncResponse::Transactions(Vec::new()),
                (SyncRequest::BlockByHash(hash), Serve::WholeBlockOnly(block))
                    if block.hash() == hash =>
                {
                    SyncResponse::Block(Some(SyncBlock {
                        height: block.header.height,
                        block: codec::encode(&block),
                        certificate: Vec::new(),
                    }))
                }
                (SyncRequest::BlockByHash(_), _) => SyncResponse::Block(None),
                _ => SyncResponse::Refused("not in this test".into()),
            };
            reply.respond(answer);
        }
    }
}

/// A proposal of `transactions` at height 1, told apart by `time`
/// (structurally sound; never executed here).
fn proposal_of(
    chain: &cairn_types::ChainId,
    key: &Keypair,
    transactions: Vec<SignedTransaction>,
    time: u64,
) -> SignedProposal {
    let block = Block {
        header: Header {
            chain_id: chain.clone(),
            height: Height(1),
            time: Timestamp(1_000 + time),
            parent_hash: Hash::ZERO,
            proposer: key.address(),
            transactions_root: Block::transactions_root_of(&transactions),
            state_root: Hash::ZERO,
            parent_certificate_hash: Hash::ZERO,
            evidence_hash: Block::evidence_hash_of(&[]),
            validator_set_hash: Hash::ZERO,
            next_validator_set_hash: Hash::ZERO,
        },
        transactions,
        parent_certificate: None,
        evidence: Vec::new(),
    };
    SignedProposal {
        proposal: Proposal::new_signed(
            chain,
            Height(1),
            Round(0),
            None,
            block.hash(),
            ValidatorIndex(0),
            key,
        ),
        block: Arc::new(block),
    }
}

async fn next_proposal(inbox: &mut mpsc::Receiver<HostEvent>, within: Duration) -> Option<Block> {
    match tokio::time::timeout(within, inbox.recv()).await {
        Ok(Some(HostEvent::Budgeted(Input::Proposal(signed), _))) => {
            Some(Arc::unwrap_or_clone(signed.block))
        }
        Ok(other) => panic!("the assembly sent {other:?}"),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_transactions_are_fetched_by_hash_then_by_block_or_the_proposal_is_given_up() {
    let genesis = cairn_genesis::dev::dev_genesis().unwrap();
    let chain = genesis.chain_id.clone();
    let genesis_hash = genesis.hash();
    let directory = tempfile::tempdir().unwrap();
    let ledger = Arc::new(
        Ledger::open(
            genesis,
            directory.path(),
            MempoolLimits {
                transactions_max: 100,
                bytes_max: 100_000,
                min_fee: 0,
            },
            Arc::new(Metrics::default()),
        )
        .unwrap(),
    );
    let sender = &cairn_genesis::dev::dev_account_keypairs()[0];
    let transactions: Vec<SignedTransaction> = (0..4)
        .map(|nonce| transfer(sender, nonce, &chain))
        .collect();
    // This node's mempool holds the first two; the peer holds the rest.
    let submitted = ledger.submit(&[
        transactions[0].to_bytes().as_slice(),
        transactions[1].to_bytes().as_slice(),
    ]);
    assert!(submitted.iter().all(Result::is_ok), "{submitted:?}");

    let (server, server_events) = p2p_node(&chain, genesis_hash);
    let serve = Arc::new(Mutex::new(Serve::Transactions(transactions[2..].to_vec())));
    let asked = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(run_server(
        server_events,
        Arc::clone(&serve),
        Arc::clone(&asked),
    ));
    let (client, mut client_events) = p2p_node(&chain, genesis_hash);
    tokio::spawn(async move { while client_events.recv().await.is_some() {} });
    let server_address = loop {
        if let Some(address) = server.listen_addresses().await.unwrap().into_iter().next() {
            break address;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    client.dial(server_address).await.unwrap();
    let server_peer: PeerId = server.local_peer_id();
    for _ in 0..500 {
        if client.peers().await.unwrap().contains(&server_peer) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(client.peers().await.unwrap().contains(&server_peer));

    let (inbox, mut consensus) = mpsc::channel(8);
    let (jobs, job_queue) = mpsc::channel(8);
    tokio::spawn(run_assembly(
        Arc::clone(&ledger),
        client.clone(),
        inbox,
        job_queue,
    ));
    let budget = Arc::new(Semaphore::new(1_000));
    let key = cairn_genesis::dev::dev_validator_keypair();
    let job = |signed: &SignedProposal| AssemblyJob {
        compact: CompactProposal::of(signed),
        source: server_peer,
        budget: Arc::clone(&budget).try_acquire_owned().unwrap(),
    };
    let wait = Duration::from_millis(ASSEMBLY_DEADLINE_MS * 2);

    // 1. Two from the mempool, exactly the two missing ones by hash.
    let whole = proposal_of(&chain, &key, transactions.clone(), 1);
    jobs.send(job(&whole)).await.unwrap();
    let rebuilt = next_proposal(&mut consensus, wait).await;
    assert_eq!(rebuilt.as_ref(), Some(whole.block.as_ref()));
    let mut asked_for = asked.lock().unwrap().clone();
    asked_for.sort();
    let mut missing = vec![transactions[2].hash(), transactions[3].hash()];
    missing.sort();
    assert_eq!(asked_for, missing, "only the missing hashes are asked for");

    // 2. The peer has no transactions to give, but the whole block.
    let other = transfer(sender, 9, &chain);
    let whole = proposal_of(&chain, &key, vec![transactions[0].clone(), other], 2);
    *serve.lock().unwrap() = Serve::WholeBlockOnly(Box::new((*whole.block).clone()));
    jobs.send(job(&whole)).await.unwrap();
    let rebuilt = next_proposal(&mut consensus, wait).await;
    assert_eq!(rebuilt.as_ref(), Some(whole.block.as_ref()));

    // 3. Nobody can supply it: nothing reaches consensus, and the slot is
    //    free again for the next proposal (all four from the mempool).
    *serve.lock().unwrap() = Serve::Nothing;
    let unobtainable = proposal_of(&chain, &key, vec![transfer(sender, 11, &chain)], 3);
    jobs.send(job(&unobtainable)).await.unwrap();
    assert_eq!(next_proposal(&mut consensus, wait).await, None);
    let local = proposal_of(&chain, &key, transactions[..2].to_vec(), 4);
    jobs.send(job(&local)).await.unwrap();
    let rebuilt = next_proposal(&mut consensus, wait).await;
    assert_eq!(rebuilt.as_ref(), Some(local.block.as_ref()));

    // An operator sees each outcome once, and the two fetched by hash.
    let text = ledger.metrics().render();
    for line in [
        "cairn_compact_proposals_total{outcome=\"from_mempool\"} 1",
        "cairn_compact_proposals_total{outcome=\"fetched_transactions\"} 1",
        "cairn_compact_proposals_total{outcome=\"fetched_block\"} 1",
        "cairn_compact_proposals_total{outcome=\"given_up\"} 1",
        "cairn_compact_proposal_fetched_txs_total 2",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
}
