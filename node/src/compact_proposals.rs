//! Compact proposals: a proposal is gossiped with its block's transactions
//! by hash ([`CompactBlock`]) instead of whole, and every receiver rebuilds
//! the block from its own mempool, which gossip has usually filled already.
//!
//! What this module owns:
//!
//! - [`ConsensusGossip`], the payload of the consensus topic: a vote, a
//!   proposal with its whole block (what round-state answers and older
//!   peers send; still accepted) or a [`CompactProposal`]. The first two
//!   encode exactly as [`cairn_consensus::Message`] does.
//! - [`CompactProposal::of`] for the sender, and [`CompactProposal::check`]
//!   for the gossip gate: the proposer's signature and turn, the header's
//!   hash against the signed one and the header's commitments against the
//!   hashes, parent certificate and evidence. A compact proposal that
//!   passes is as well-formed as a whole one; only its transactions are
//!   still to come.
//! - The assembly ([`run_assembly`]): per accepted compact proposal, the
//!   transactions the mempool holds, then the missing ones by hash from the
//!   peer that sent it and then other peers ([`SyncRequest::Transactions`],
//!   at most [`SYNC_TRANSACTIONS_MAX`] a request), then, if some are still
//!   missing, the whole block by hash ([`SyncRequest::BlockByHash`]). The
//!   fetched transactions' signatures are verified here, off the consensus
//!   thread. Bounded: [`ASSEMBLY_QUEUE_MAX`] waiting, [`ASSEMBLIES_MAX`] at
//!   once, each given up after [`ASSEMBLY_DEADLINE_MS`]; a proposal whose
//!   block cannot be rebuilt in time is as good as late, and the round's
//!   propose timeout moves consensus on.
//!
//! The driver, the WAL and block sync still see whole blocks: a compact
//! proposal reaches the consensus loop only once rebuilt, as an ordinary
//! [`Input::Proposal`].

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use cairn_consensus::{Input, Message, ProposerSchedule, SignedProposal};
use cairn_p2p::{limits::SYNC_TRANSACTIONS_MAX, Client, PeerId, SyncRequest, SyncResponse};
use cairn_types::{
    Block, ChainId, CompactBlock, Hash, Height, Proposal, SignedTransaction, ValidatorSet, Vote,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::{
    ledger::Ledger,
    runtime::{block_by_hash_from, HostEvent, FETCH_PEERS_MAX},
};

/// Compact proposals waiting for an assembly slot; beyond it a new one is
/// not taken (gossip `Ignore`).
pub const ASSEMBLY_QUEUE_MAX: usize = 16;
/// Compact proposals rebuilt at once.
pub const ASSEMBLIES_MAX: usize = 4;
/// How long one rebuild may take, fetches included, before it is given up.
pub const ASSEMBLY_DEADLINE_MS: u64 = 2_000;
/// Bytes of the inbox's proposal budget held per transaction of a compact
/// proposal while it is rebuilt and queued (a transfer encodes to about
/// 200 bytes; a transaction is at most 1 KiB).
pub const ASSEMBLY_BUDGET_BYTES_PER_TRANSACTION: usize = 256;

/// The payload of the consensus gossip topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsensusGossip {
    /// A proposal with its whole block (encoded as
    /// [`Message::Proposal`]).
    Proposal(SignedProposal),
    /// A prevote or precommit (encoded as [`Message::Vote`]).
    Vote(Vote),
    /// A proposal with its block in compact form (boxed: the header and
    /// certificate make it far larger than a vote; encoded as if unboxed).
    CompactProposal(Box<CompactProposal>),
}

impl ConsensusGossip {
    /// The height the message is for.
    pub fn height(&self) -> Height {
        match self {
            ConsensusGossip::Proposal(signed) => signed.proposal.height,
            ConsensusGossip::Vote(vote) => vote.height,
            ConsensusGossip::CompactProposal(compact) => compact.proposal.height,
        }
    }

    /// What a node gossips for a driver's message: a proposal in compact
    /// form, a vote as it is.
    pub fn of(message: &Message) -> ConsensusGossip {
        match message {
            Message::Proposal(signed) => {
                ConsensusGossip::CompactProposal(Box::new(CompactProposal::of(signed)))
            }
            Message::Vote(vote) => ConsensusGossip::Vote(vote.clone()),
        }
    }
}

/// A signed proposal with its block by transaction hashes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactProposal {
    /// The signed proposal (its `block_hash` is the compact block's hash).
    pub proposal: Proposal,
    /// The block, its transactions by hash.
    pub block: CompactBlock,
}

impl CompactProposal {
    /// The compact form of a proposal with its block.
    pub fn of(signed: &SignedProposal) -> CompactProposal {
        CompactProposal {
            proposal: signed.proposal.clone(),
            block: CompactBlock::of(
                &signed.block,
                Block::transaction_hashes_of(&signed.block.transactions),
            ),
        }
    }

    /// The gossip gate's checks (see the module doc): everything a whole
    /// proposal is checked for except its transactions' bytes.
    pub fn check(
        &self,
        chain_id: &ChainId,
        validators: &ValidatorSet,
        schedule: &ProposerSchedule,
    ) -> Result<(), String> {
        check_signed_proposal(
            &self.proposal,
            &self.block.header,
            chain_id,
            validators,
            schedule,
        )?;
        self.block
            .check_structure()
            .map_err(|error| error.to_string())
    }
}

/// The checks of a proposal against the header it names, whole or
/// compact: a validator's signature, the proposer of its height and round,
/// the header's hash and height against the signed ones, and for a fresh
/// proposal (no valid round) a block naming its signer as the proposer
/// (who collects the fees).
pub fn check_signed_proposal(
    proposal: &Proposal,
    header: &cairn_types::Header,
    chain_id: &ChainId,
    validators: &ValidatorSet,
    schedule: &ProposerSchedule,
) -> Result<(), String> {
    proposal
        .verify(chain_id, validators)
        .map_err(|error| error.to_string())?;
    if schedule.proposer(proposal.height, proposal.round) != proposal.proposer {
        return Err(format!(
            "validator {} does not propose height {} round {}",
            proposal.proposer.0, proposal.height.0, proposal.round.0
        ));
    }
    if header.hash() != proposal.block_hash || header.height != proposal.height {
        return Err("the attached block is not the one signed".into());
    }
    if proposal.valid_round.is_none() {
        let signer = validators
            .get(proposal.proposer)
            .map(cairn_types::Validator::address);
        if signer != Some(header.proposer) {
            return Err("a fresh proposal's block names another proposer".into());
        }
    }
    Ok(())
}

/// A checked compact proposal to rebuild.
#[derive(Debug)]
pub struct AssemblyJob {
    /// The proposal, already through [`CompactProposal::check`].
    pub compact: CompactProposal,
    /// The peer it came from (asked first for missing transactions).
    pub source: PeerId,
    /// Its share of the inbox's proposal budget, held until handled.
    pub budget: OwnedSemaphorePermit,
}

/// The transactions of a compact block, as far as they are known, and
/// where each missing hash goes.
#[derive(Debug)]
pub struct Rebuild {
    slots: Vec<Option<SignedTransaction>>,
    /// Missing hash -> its positions in the block (a hash may repeat in an
    /// invalid block; every position is filled).
    missing: HashMap<Hash, Vec<usize>>,
    /// Positions filled from peers (their signatures are not verified yet).
    fetched: Vec<usize>,
}

impl Rebuild {
    /// Starts from what the mempool holds (`found[i]` for hash `i`).
    pub fn new(hashes: &[Hash], found: Vec<Option<SignedTransaction>>) -> Rebuild {
        let mut missing: HashMap<Hash, Vec<usize>> = HashMap::new();
        for (index, (hash, slot)) in hashes.iter().zip(&found).enumerate() {
            if slot.is_none() {
                missing.entry(*hash).or_default().push(index);
            }
        }
        Rebuild {
            slots: found,
            missing,
            fetched: Vec::new(),
        }
    }

    /// The hashes still missing.
    pub fn missing(&self) -> Vec<Hash> {
        self.missing.keys().copied().collect()
    }

    /// Whether every transaction is known.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }

    /// Takes a peer's answer: each encoded transaction that decodes and
    /// hashes to a missing one fills its places; anything else is skipped.
    /// Returns how many hashes it filled.
    pub fn take_answer(&mut self, answer: Vec<Vec<u8>>) -> usize {
        let mut filled = 0;
        for bytes in answer {
            let Ok(transaction) = SignedTransaction::from_bytes(&bytes) else {
                continue;
            };
            let Some(positions) = self.missing.remove(&transaction.hash()) else {
                continue;
            };
            for &position in &positions {
                self.slots[position] = Some(transaction.clone());
            }
            self.fetched.extend(positions);
            filled += 1;
        }
        filled
    }

    /// The fetched transactions with their hashes (for verification).
    fn fetched<'a>(&'a self, hashes: &[Hash]) -> (Vec<&'a SignedTransaction>, Vec<Hash>) {
        self.fetched
            .iter()
            .filter_map(|&position| {
                self.slots[position]
                    .as_ref()
                    .map(|transaction| (transaction, hashes[position]))
            })
            .unzip()
    }

    /// The block, once complete (`None` before).
    pub fn into_block(self, compact: CompactBlock) -> Option<Block> {
        let transactions: Option<Vec<SignedTransaction>> = self.slots.into_iter().collect();
        compact.into_block(transactions?).ok()
    }
}

/// Rebuilds the compact proposals the gate accepts and hands each to the
/// consensus loop as a whole proposal; runs until the gate's sender is
/// dropped.
pub async fn run_assembly(
    ledger: Arc<Ledger>,
    client: Client,
    inbox: mpsc::Sender<HostEvent>,
    mut jobs: mpsc::Receiver<AssemblyJob>,
) {
    let slots = Arc::new(Semaphore::new(ASSEMBLIES_MAX));
    while let Some(job) = jobs.recv().await {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let ledger = Arc::clone(&ledger);
        let client = client.clone();
        let inbox = inbox.clone();
        tokio::spawn(async move {
            let height = job.compact.proposal.height;
            let deadline = Duration::from_millis(ASSEMBLY_DEADLINE_MS);
            if tokio::time::timeout(deadline, assemble(&ledger, &client, &inbox, job))
                .await
                .is_err()
            {
                ledger.metrics().record_compact_proposal("given_up", 0);
                tracing::debug!(
                    height = height.0,
                    "gave up rebuilding a compact proposal after {ASSEMBLY_DEADLINE_MS} ms"
                );
            }
            drop(slot);
        });
    }
}

/// Rebuilds one compact proposal and forwards it (see the module doc).
async fn assemble(
    ledger: &Arc<Ledger>,
    client: &Client,
    inbox: &mpsc::Sender<HostEvent>,
    job: AssemblyJob,
) {
    let AssemblyJob {
        compact,
        source,
        budget,
    } = job;
    let started = Instant::now();
    let hashes = Arc::new(compact.block.transaction_hashes.clone());
    let found = {
        let ledger = Arc::clone(ledger);
        let hashes = Arc::clone(&hashes);
        match tokio::task::spawn_blocking(move || ledger.pending_transactions(&hashes)).await {
            Ok(found) => found,
            Err(_) => return,
        }
    };
    let mut rebuild = Rebuild::new(&hashes, found);
    let in_mempool = hashes.len() - rebuild.missing.values().map(Vec::len).sum::<usize>();
    if !rebuild.is_complete() {
        fetch_missing(client, source, &mut rebuild).await;
    }
    let fetched = rebuild.fetched.len();
    let block_hash = compact.proposal.block_hash;
    let outcome = if !rebuild.is_complete() {
        "fetched_block"
    } else if fetched > 0 {
        "fetched_transactions"
    } else {
        "from_mempool"
    };
    let block = if rebuild.is_complete() {
        let ledger = Arc::clone(ledger);
        let hashes = Arc::clone(&hashes);
        let compact_block = compact.block;
        let rebuilt = tokio::task::spawn_blocking(move || {
            let (fetched, fetched_hashes) = rebuild.fetched(&hashes);
            if !fetched.is_empty() {
                let failed = ledger.verify_fetched_signatures(&fetched, &fetched_hashes);
                if failed > 0 {
                    tracing::debug!("{failed} fetched transactions of a proposal are badly signed");
                }
            }
            rebuild.into_block(compact_block)
        })
        .await;
        match rebuilt {
            Ok(Some(block)) => block,
            _ => return,
        }
    } else {
        match fetch_whole_block(client, source, block_hash).await {
            Some(block) => block,
            None => {
                ledger
                    .metrics()
                    .record_compact_proposal("given_up", fetched);
                return;
            }
        }
    };
    tracing::debug!(
        height = compact.proposal.height.0,
        round = compact.proposal.round.0,
        outcome,
        transactions = hashes.len(),
        in_mempool,
        elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "rebuilt a compact proposal"
    );
    let signed = SignedProposal {
        proposal: compact.proposal,
        block: Arc::new(block),
    };
    // Counted once there is room for it, before it is handed over (the
    // deadline may still cut the wait for room short: then it counts as
    // given up, once).
    if let Ok(permit) = inbox.reserve().await {
        ledger.metrics().record_compact_proposal(outcome, fetched);
        permit.send(HostEvent::Budgeted(Input::Proposal(signed), budget));
    }
}

/// The peers to ask: the sender first, then the others.
async fn peers_to_ask(client: &Client, source: PeerId) -> Vec<PeerId> {
    let mut peers = vec![source];
    if let Ok(connected) = client.peers().await {
        peers.extend(connected.into_iter().filter(|peer| *peer != source));
    }
    peers.truncate(FETCH_PEERS_MAX);
    peers
}

/// Asks peers for the missing transactions, in requests of at most
/// [`SYNC_TRANSACTIONS_MAX`] hashes, until none is missing or every peer
/// was asked.
async fn fetch_missing(client: &Client, source: PeerId, rebuild: &mut Rebuild) {
    for peer in peers_to_ask(client, source).await {
        let missing = rebuild.missing();
        for chunk in missing.chunks(SYNC_TRANSACTIONS_MAX) {
            match client
                .request_sync(peer, SyncRequest::Transactions(chunk.to_vec()))
                .await
            {
                Ok(SyncResponse::Transactions(answer)) => {
                    rebuild.take_answer(answer);
                }
                Err(cairn_p2p::Error::EventLoopStopped) => return,
                _ => break,
            }
        }
        if rebuild.is_complete() {
            return;
        }
    }
}

/// The whole block by hash from the sender or another peer: the fallback
/// when some transactions could not be had by hash.
async fn fetch_whole_block(client: &Client, source: PeerId, block_hash: Hash) -> Option<Block> {
    let peers = peers_to_ask(client, source).await;
    block_by_hash_from(client, peers, block_hash).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use cairn_types::{codec, Keypair, Round, Timestamp, Transaction, TransactionKind};

    use super::*;

    fn transfer(nonce: u64) -> SignedTransaction {
        let key = Keypair::from_seed(&[9; 32]);
        Transaction {
            chain_id: ChainId::new("cairn-test").unwrap(),
            sender: key.public_key(),
            recipient: key.address(),
            amount: 1,
            fee: 1,
            nonce,
            memo: String::new(),
            kind: TransactionKind::Transfer,
        }
        .sign(&key)
    }

    #[test]
    fn votes_and_whole_proposals_encode_as_the_drivers_messages() {
        let key = Keypair::from_seed(&[4; 32]);
        let chain = ChainId::new("cairn-test").unwrap();
        let vote = Vote::new_signed(
            &chain,
            cairn_types::VoteType::Precommit,
            Height(3),
            Round(1),
            None,
            cairn_types::ValidatorIndex(2),
            &key,
        );
        assert_eq!(
            codec::encode(&ConsensusGossip::Vote(vote.clone())),
            codec::encode(&Message::Vote(vote))
        );
        let block = Block {
            header: cairn_types::Header {
                chain_id: chain.clone(),
                height: Height(3),
                time: Timestamp(5),
                parent_hash: Hash::ZERO,
                proposer: key.address(),
                transactions_root: Block::transactions_root_of(&[transfer(0)]),
                state_root: Hash::ZERO,
                parent_certificate_hash: Hash::ZERO,
                evidence_hash: Block::evidence_hash_of(&[]),
                validator_set_hash: Hash::ZERO,
                next_validator_set_hash: Hash::ZERO,
            },
            transactions: vec![transfer(0)],
            parent_certificate: None,
            evidence: vec![],
        };
        let signed = SignedProposal {
            proposal: Proposal::new_signed(
                &chain,
                Height(3),
                Round(1),
                None,
                block.hash(),
                cairn_types::ValidatorIndex(2),
                &key,
            ),
            block: Arc::new(block),
        };
        assert_eq!(
            codec::encode(&ConsensusGossip::Proposal(signed.clone())),
            codec::encode(&Message::Proposal(signed.clone()))
        );
        // What a node sends for its proposal: the compact form, tagged 2,
        // whose block is the proposal's block by hash.
        let gossip = ConsensusGossip::of(&Message::Proposal(signed.clone()));
        let bytes = codec::encode(&gossip);
        assert_eq!(bytes[0], 2);
        let ConsensusGossip::CompactProposal(compact) = gossip else {
            panic!("a proposal is gossiped compact");
        };
        let compact = *compact;
        assert_eq!(compact.block.hash(), signed.proposal.block_hash);
        assert_eq!(
            compact.block.transaction_hashes,
            vec![signed.block.transactions[0].hash()]
        );
        assert_eq!(
            compact
                .block
                .into_block(signed.block.transactions.clone())
                .unwrap(),
            *signed.block
        );
    }

    #[test]
    fn a_rebuild_takes_the_mempools_transactions_and_exactly_the_missing_ones() {
        let transactions: Vec<SignedTransaction> = (0..5).map(transfer).collect();
        let hashes = Block::transaction_hashes_of(&transactions);
        let found: Vec<Option<SignedTransaction>> = transactions
            .iter()
            .enumerate()
            .map(|(index, transaction)| (index % 2 == 0).then(|| transaction.clone()))
            .collect();
        let mut rebuild = Rebuild::new(&hashes, found);
        let mut missing = rebuild.missing();
        missing.sort();
        let mut expected = vec![hashes[1], hashes[3]];
        expected.sort();
        assert_eq!(missing, expected);
        assert!(!rebuild.is_complete());
        // Garbage, a transaction not asked for and one asked for: only the
        // last fills a place.
        let filled = rebuild.take_answer(vec![
            vec![0xff; 7],
            transfer(99).to_bytes(),
            transactions[3].to_bytes(),
        ]);
        assert_eq!(filled, 1);
        assert_eq!(rebuild.missing(), vec![hashes[1]]);
        assert_eq!(rebuild.take_answer(vec![transactions[1].to_bytes()]), 1);
        assert!(rebuild.is_complete());
        let (fetched, fetched_hashes) = rebuild.fetched(&hashes);
        assert_eq!(fetched.len(), 2);
        assert_eq!(fetched_hashes, vec![hashes[3], hashes[1]]);
        let block = Block {
            header: cairn_types::Header {
                chain_id: ChainId::new("cairn-test").unwrap(),
                height: Height(1),
                time: Timestamp(5),
                parent_hash: Hash::ZERO,
                proposer: Keypair::from_seed(&[9; 32]).address(),
                transactions_root: Block::transactions_root_of(&transactions),
                state_root: Hash::ZERO,
                parent_certificate_hash: Hash::ZERO,
                evidence_hash: Block::evidence_hash_of(&[]),
                validator_set_hash: Hash::ZERO,
                next_validator_set_hash: Hash::ZERO,
            },
            transactions: transactions.clone(),
            parent_certificate: None,
            evidence: vec![],
        };
        let compact = CompactBlock::of(&block, hashes.clone());
        assert_eq!(rebuild.into_block(compact.clone()), Some(block));
        // An incomplete rebuild gives no block.
        let partial = Rebuild::new(&hashes, vec![None; 5]);
        assert_eq!(partial.into_block(compact), None);
    }
}
