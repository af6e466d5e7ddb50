//! The node's [`RpcBackend`]: the RPC API over the [`Ledger`], its store
//! and a [`NetworkView`] that the network part updates (peers, whether
//! the node is catching up, how far behind it is).

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, RwLock,
};

use cairn_types::{Address, Block, Evidence, Hash, Height};
use tokio::sync::broadcast;

use crate::{
    ledger::Ledger,
    metrics::Metrics,
    rpc::{
        AccountProofView, AccountView, BlockView, CandidateView, HistoryEntryView,
        InclusionProofView, MempoolView, NewBlockEvent, PeerView, ReadinessView, RpcBackend,
        RpcError, StatusView, TransactionView, UnbondingView, ValidatorView, ValidatorsView,
    },
    runtime::GossipQueue,
};

/// What the network part tells the RPC: peers and sync progress. Empty
/// and not catching up until p2p is wired.
pub struct NetworkView {
    peers: RwLock<Vec<PeerView>>,
    /// The gossip score of each connected peer, by peer id, as the p2p
    /// layer last reported it ([`NetworkView::set_peer_scores`]).
    scores: RwLock<std::collections::HashMap<String, f64>>,
    catching_up: AtomicBool,
    metrics: Arc<Metrics>,
}

impl NetworkView {
    /// No peers, not catching up.
    pub fn new(metrics: Arc<Metrics>) -> NetworkView {
        NetworkView {
            peers: RwLock::new(Vec::new()),
            scores: RwLock::new(std::collections::HashMap::new()),
            catching_up: AtomicBool::new(false),
            metrics,
        }
    }

    /// Replaces the list of connected peers.
    pub fn set_peers(&self, peers: Vec<PeerView>) {
        self.metrics.set_peers(peers.len());
        *self
            .peers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = peers;
    }

    /// Replaces the peers' gossip scores (peer id, score).
    pub fn set_peer_scores(&self, scores: Vec<(String, f64)>) {
        *self
            .scores
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = scores.into_iter().collect();
    }

    /// The connected peers, each with its last reported score.
    pub fn peers(&self) -> Vec<PeerView> {
        let scores = self
            .scores
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.peers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|peer| PeerView {
                score: scores.get(&peer.peer_id).copied(),
                ..peer.clone()
            })
            .collect()
    }

    /// Sets whether the node is catching up, and how many blocks behind.
    pub fn set_sync(&self, catching_up: bool, behind_blocks: u64) {
        self.catching_up.store(catching_up, Ordering::Relaxed);
        self.metrics.set_sync_behind(behind_blocks);
    }

    /// Whether the node is catching up.
    pub fn catching_up(&self) -> bool {
        self.catching_up.load(Ordering::Relaxed)
    }
}

/// Who this node is, for `/status`.
#[derive(Clone, Debug)]
pub struct NodeIdentity {
    /// Node id (the libp2p peer id once p2p is wired).
    pub node_id: String,
    /// Moniker.
    pub moniker: String,
    /// Whether the node runs as a validator.
    pub validator: bool,
}

/// What `GET /ready` expects of the chain: when blocks are due.
#[derive(Clone, Copy, Debug)]
pub struct ReadinessPolicy {
    /// `consensus.wait_for_transactions`: with nothing executable, no block
    /// is due until `block_interval_max_ms`.
    pub wait_for_transactions: bool,
    /// `consensus.block_interval_max_ms` (0: an idle chain makes no block).
    pub block_interval_max_ms: u64,
    /// How late a due block may be before the node counts as stalled.
    pub stall_ms: u64,
}

/// The least stall bound [`ReadinessPolicy::derived_stall_ms`] gives.
pub const READY_STALL_MS_MIN: u64 = 10_000;

impl ReadinessPolicy {
    /// A stall bound from the consensus timeouts: ten rounds of the first
    /// round's timeouts plus the commit pause, at least
    /// [`READY_STALL_MS_MIN`].
    pub fn derived_stall_ms(params: &cairn_types::ConsensusParams, timeout_commit_ms: u64) -> u64 {
        let round = params
            .timeout_propose_ms
            .saturating_add(params.timeout_prevote_ms)
            .saturating_add(params.timeout_precommit_ms)
            .saturating_add(timeout_commit_ms);
        round.saturating_mul(10).max(READY_STALL_MS_MIN)
    }
}

/// Whether a node needs peers to make progress: all but the one validator
/// of a one-validator chain do.
pub fn needs_peers(validator: bool, genesis: &cairn_genesis::Genesis) -> bool {
    !(validator && genesis.validators.validators().len() == 1)
}

/// The RPC form of a candidate.
fn candidate_view(
    staking: &cairn_state::StakingState,
    operator: &Address,
    candidate: &cairn_state::Candidate,
) -> CandidateView {
    let status = if candidate.jailed_until.is_some() {
        "jailed"
    } else if candidate.bonded == 0 {
        "unbonding"
    } else {
        "bonded"
    };
    CandidateView {
        operator: *operator,
        validator_key: candidate.validator_key,
        name: candidate.name.clone(),
        bonded: candidate.bonded,
        power: staking.params().power_of(candidate.bonded),
        status: status.into(),
        jailed_until: candidate.jailed_until.map(|height| height.0),
    }
}

/// The RPC backend of a running node.
pub struct NodeBackend {
    ledger: Arc<Ledger>,
    network: Arc<NetworkView>,
    identity: NodeIdentity,
    gossip: Option<GossipQueue>,
    readiness: Option<ReadinessPolicy>,
    snapshots: Option<Arc<crate::snapshots::Snapshots>>,
    state_sync: Option<Arc<crate::state_sync::StateSyncStatus>>,
    consensus: Option<Arc<crate::consensus_view::ConsensusBoard>>,
}

impl NodeBackend {
    /// A backend over `ledger` and `network`.
    pub fn new(ledger: Arc<Ledger>, network: Arc<NetworkView>, identity: NodeIdentity) -> Self {
        NodeBackend {
            ledger,
            network,
            identity,
            gossip: None,
            readiness: None,
            snapshots: None,
            state_sync: None,
            consensus: None,
        }
    }

    /// Answers `GET /consensus` from what the consensus loop publishes on
    /// `board`.
    pub fn with_consensus(mut self, board: Arc<crate::consensus_view::ConsensusBoard>) -> Self {
        self.consensus = Some(board);
        self
    }

    /// A 404 that says why for a height below what a state sync kept (the
    /// node restored its state at its base and holds only the evidence
    /// window below it).
    fn check_above_snapshot_base(&self, height: Height) -> Result<(), RpcError> {
        let store = self.ledger.store();
        let base = store.snapshot_base();
        let lowest = store.lowest_height().min(base);
        if height < lowest {
            return Err(RpcError::not_found(format!(
                "height {height} is below {lowest}: this node restored its state at height {base} by state sync and holds no block below {lowest}; ask a node that synced from genesis"
            )));
        }
        Ok(())
    }

    /// Shows the snapshots on offer in `/status`.
    pub fn with_snapshots(mut self, snapshots: Arc<crate::snapshots::Snapshots>) -> Self {
        self.snapshots = Some(snapshots);
        self
    }

    /// Shows the progress of a state sync in `/status`.
    pub fn with_state_sync(mut self, status: Arc<crate::state_sync::StateSyncStatus>) -> Self {
        self.state_sync = Some(status);
        self
    }

    /// Judges `/ready` by `policy` (without one, only sync and peers count).
    pub fn with_readiness(mut self, policy: ReadinessPolicy) -> Self {
        self.readiness = Some(policy);
        self
    }

    fn should_have_peers(&self) -> bool {
        needs_peers(self.identity.validator, self.ledger.genesis())
    }

    /// `/status`'s `catching_up`: block sync is behind, or the node needs
    /// peers and has none, so it cannot know the chain's tip.
    fn catching_up(&self) -> bool {
        self.network.catching_up() || (self.should_have_peers() && self.network.peers().is_empty())
    }

    /// Gossips every transaction this backend admits through `gossip`.
    pub fn with_gossip(mut self, gossip: GossipQueue) -> Self {
        self.gossip = Some(gossip);
        self
    }

    fn block_view(&self, block: Block) -> Result<BlockView, RpcError> {
        let certificate = self
            .ledger
            .store()
            .certificate(block.header.height)
            .map_err(store_error)?;
        Ok(BlockView {
            hash: block.hash(),
            transactions: block.transactions.iter().map(|tx| tx.hash()).collect(),
            header: block.header,
            certificate,
        })
    }
}

/// A store failure as the RPC tells it: no paths or engine details (those
/// go to the node's log, loudly).
fn store_error(error: cairn_store::StoreError) -> RpcError {
    if let cairn_store::StoreError::Pruned { height, lowest } = error {
        return RpcError::pruned(height.0, lowest.0);
    }
    tracing::error!("the store failed while answering an RPC request: {error}");
    RpcError::internal(
        "the node's store failed to read; the node's log says why (its operator should look)",
    )
}

impl RpcBackend for NodeBackend {
    fn status(&self) -> Result<StatusView, RpcError> {
        let tip = self.ledger.tip();
        Ok(StatusView {
            chain_id: self.ledger.chain_id().to_string(),
            genesis_hash: self.ledger.genesis_hash(),
            node_id: self.identity.node_id.clone(),
            moniker: self.identity.moniker.clone(),
            validator: self.identity.validator,
            latest_height: tip.height.0,
            latest_hash: tip.hash,
            latest_time: tip.time.as_millis(),
            catching_up: self.catching_up(),
            peers: self.network.peers().len(),
            min_fee: self.ledger.min_fee(),
            existential_deposit: self.ledger.genesis().fee_params.existential_deposit,
            snapshot_heights: self.snapshots.as_ref().map_or_else(Vec::new, |snapshots| {
                snapshots
                    .offers()
                    .iter()
                    .map(|offer| offer.height.0)
                    .collect()
            }),
            snapshot_base: self.ledger.store().snapshot_base().0,
            state_sync: self.state_sync.as_ref().map(|status| status.view()),
            lowest_height: self.ledger.store().lowest_height().0,
        })
    }

    fn readiness(&self) -> Result<ReadinessView, RpcError> {
        let tip = self.ledger.tip();
        let peers = self.network.peers().len();
        let should_have_peers = self.should_have_peers();
        let syncing = self.network.catching_up();
        let age_ms = crate::runtime::system_now()
            .as_millis()
            .saturating_sub(tip.time.as_millis());
        let idle = self
            .readiness
            .is_some_and(|policy| policy.wait_for_transactions)
            && self.ledger.mempool_executable() == 0;
        let stall_after_ms = self.readiness.and_then(|policy| {
            if idle {
                (policy.block_interval_max_ms > 0)
                    .then(|| policy.block_interval_max_ms.saturating_add(policy.stall_ms))
            } else {
                Some(policy.stall_ms)
            }
        });
        let mut reasons = Vec::new();
        if let Some(damage) = self.ledger.store_damage() {
            reasons.push(damage);
        }
        if syncing {
            reasons.push("block sync is behind its peers".to_string());
        }
        if should_have_peers && peers == 0 {
            reasons.push("no peers are connected".to_string());
        }
        if let Some(bound) = stall_after_ms {
            if age_ms > bound {
                reasons.push(format!(
                    "the latest block (height {}) is {age_ms} ms old, more than the {bound} ms a block may take",
                    tip.height.0
                ));
            }
        }
        Ok(ReadinessView {
            ready: reasons.is_empty(),
            latest_height: tip.height.0,
            latest_block_age_ms: age_ms,
            catching_up: self.catching_up(),
            peers,
            should_have_peers,
            idle,
            stall_after_ms,
            reasons,
        })
    }

    fn submit(&self, transactions: &[Vec<u8>]) -> Vec<Result<Hash, RpcError>> {
        if self.network.catching_up() {
            for _ in transactions {
                self.ledger.metrics().count_rejection("catching_up");
            }
            return transactions
                .iter()
                .map(|_| Err(RpcError::catching_up()))
                .collect();
        }
        let slices: Vec<&[u8]> = transactions.iter().map(Vec::as_slice).collect();
        let results = self.ledger.submit(&slices);
        let admitted: Vec<&[u8]> = slices
            .iter()
            .zip(&results)
            .filter(|(_, result)| result.is_ok())
            .map(|(bytes, _)| *bytes)
            .collect();
        self.ledger.journal_admitted(&admitted);
        if let Some(gossip) = &self.gossip {
            for (transaction, result) in transactions.iter().zip(&results) {
                if result.is_ok() {
                    gossip.push(transaction.clone());
                }
            }
        }
        results
            .into_iter()
            .map(|result| result.map_err(|rejection| RpcError::from_rejection(&rejection)))
            .collect()
    }

    fn queued_behind(&self, hashes: &[Hash]) -> Vec<Option<u64>> {
        self.ledger.queued_behind(hashes)
    }

    fn transaction(&self, hash: &Hash) -> Result<Option<TransactionView>, RpcError> {
        Ok(self
            .ledger
            .store()
            .transaction(hash)
            .map_err(store_error)?
            .map(|record| TransactionView {
                hash: *hash,
                status: "committed".into(),
                height: record.height.0,
                index: record.index,
                transaction: record.transaction,
                proof: None,
            }))
    }

    fn lowest_height(&self) -> u64 {
        self.ledger.store().lowest_height().0
    }

    fn history_lowest_height(&self) -> u64 {
        self.ledger.store().history_lowest_height().0
    }

    fn inclusion_proof(
        &self,
        height: Height,
        index: u32,
    ) -> Result<Option<InclusionProofView>, RpcError> {
        let store = self.ledger.store();
        let (Some(block), Some(certificate)) = (
            store.block(height).map_err(store_error)?,
            store.certificate(height).map_err(store_error)?,
        ) else {
            return Ok(None);
        };
        let hashes: Vec<Hash> = block.transactions.iter().map(|tx| tx.hash()).collect();
        let Some(path) = cairn_types::merkle::audit_path(&hashes, index as usize) else {
            return Ok(None);
        };
        let canonical = hex::encode(cairn_types::codec::encode(&(
            u64::from(index),
            hashes.len() as u64,
            &path,
        )));
        Ok(Some(InclusionProofView {
            index: u64::from(index),
            count: hashes.len() as u64,
            path,
            canonical,
            header: block.header,
            certificate,
        }))
    }

    fn block_by_height(&self, height: Option<Height>) -> Result<Option<BlockView>, RpcError> {
        let height = height.unwrap_or_else(|| self.ledger.store().latest_height());
        if height == Height::GENESIS {
            return Ok(None);
        }
        self.check_above_snapshot_base(height)?;
        match self.ledger.store().block(height).map_err(store_error)? {
            Some(block) => self.block_view(block).map(Some),
            None => Ok(None),
        }
    }

    fn block_by_hash(&self, hash: &Hash) -> Result<Option<BlockView>, RpcError> {
        match self
            .ledger
            .store()
            .block_by_hash(hash)
            .map_err(store_error)?
        {
            Some(block) => self.block_view(block).map(Some),
            None => Ok(None),
        }
    }

    fn account(&self, address: &Address) -> Result<AccountView, RpcError> {
        let (balance, nonce, next_nonce) = self.ledger.account(address);
        let pending = self.ledger.sender_pending(address);
        Ok(AccountView {
            address: *address,
            balance,
            nonce,
            next_nonce,
            pending: pending.executable,
            queued: pending.queued,
            missing_nonce: pending.missing_nonce,
            stake: None,
            unbonding: Vec::new(),
            proof: None,
        })
        .map(|mut view| {
            if let Some(staking) = self.ledger.staking() {
                view.stake = staking
                    .candidate(address)
                    .map(|candidate| candidate_view(&staking, address, candidate));
                view.unbonding = staking
                    .unbonding_of(address)
                    .iter()
                    .map(|entry| UnbondingView {
                        amount: entry.amount,
                        release_height: entry.release_height.0,
                    })
                    .collect();
            }
            view
        })
    }

    fn account_history(
        &self,
        address: &Address,
        before: Option<(Height, u32)>,
        limit: usize,
    ) -> Result<Vec<HistoryEntryView>, RpcError> {
        if self.ledger.store().history_lowest_height() == Height(u64::MAX) {
            return Err(RpcError::not_found(
                "this node keeps no account history (rpc.history_index = false in its config.toml); ask a node that keeps it",
            ));
        }
        let entries = self
            .ledger
            .store()
            .account_history(address, before, limit)
            .map_err(store_error)?;
        Ok(entries
            .into_iter()
            .map(|entry| {
                let sender = entry.transaction.transaction.sender_address();
                let received = entry.transaction.transaction.is_transfer()
                    && entry.transaction.transaction.recipient == *address;
                let direction = match (sender == *address, received) {
                    (true, true) => "self",
                    (false, true) => "received",
                    _ => "sent",
                };
                HistoryEntryView {
                    hash: entry.hash,
                    height: entry.height.0,
                    index: entry.index,
                    direction: direction.into(),
                    transaction: entry.transaction,
                }
            })
            .collect())
    }

    fn account_proof(&self, address: &Address) -> Result<Option<AccountProofView>, RpcError> {
        let Some((height, proven, staking_hash)) = self.ledger.prove_account(address) else {
            return Err(RpcError::internal(format!(
                "the committed state holds {address} without a leaf; report this"
            )));
        };
        let store = self.ledger.store();
        let missing = |what: &str| {
            RpcError::internal(format!(
                "the {what} of height {height} is missing from the store; retry"
            ))
        };
        let header = store
            .header(height)
            .map_err(store_error)?
            .ok_or_else(|| missing("header"))?;
        let certificate = store
            .certificate(height)
            .map_err(store_error)?
            .ok_or_else(|| missing("certificate"))?;
        let (account, account_proof, absence_proof, canonical) = match proven {
            crate::ledger::ProvenAccount::Present(account, proof) => {
                let canonical = cairn_types::codec::encode(&proof);
                (Some(account), Some(proof), None, canonical)
            }
            crate::ledger::ProvenAccount::Absent(proof) => {
                let canonical = cairn_types::codec::encode(&proof);
                (None, None, Some(proof), canonical)
            }
        };
        Ok(Some(AccountProofView {
            height: height.0,
            exists: account.is_some(),
            balance: account.unwrap_or_default().balance,
            nonce: account.unwrap_or_default().nonce,
            account_proof,
            absence_proof,
            canonical: hex::encode(canonical),
            staking_hash,
            header,
            certificate,
        }))
    }

    fn header(&self, height: Height) -> Result<Option<cairn_types::Header>, RpcError> {
        self.check_above_snapshot_base(height)?;
        self.ledger.store().header(height).map_err(store_error)
    }

    fn certificate(
        &self,
        height: Height,
    ) -> Result<Option<cairn_types::CommitCertificate>, RpcError> {
        self.check_above_snapshot_base(height)?;
        self.ledger.store().certificate(height).map_err(store_error)
    }

    fn validators(&self, height: Option<u64>) -> Result<ValidatorsView, RpcError> {
        let next = self.ledger.tip().height.0.saturating_add(1);
        let height = Height(height.unwrap_or(next));
        let set = self
            .ledger
            .validator_set(height)
            .map_err(|error| match error {
                crate::ledger::LedgerError::Store(error) => store_error(error),
                error => RpcError::internal(error.to_string()),
            })?
            .ok_or_else(|| {
                RpcError::not_found(format!(
                    "no validator set is known for height {height}: sets are known from height 1 up to {} (the height after the next)",
                    next.saturating_add(1)
                ))
            })?;
        // Status and candidates describe the stake now: shown for the
        // heights the current state decides.
        let staking = (height.0 >= next).then(|| self.ledger.staking()).flatten();
        let status_of = |validator: &cairn_types::Validator| {
            let Some(staking) = &staking else {
                return "bonded".to_string();
            };
            match staking.candidate(&validator.operator) {
                Some(candidate) if candidate.jailed_until.is_some() => "jailed".into(),
                Some(candidate)
                    if candidate.validator_key == validator.public_key && candidate.bonded > 0 =>
                {
                    "bonded".into()
                }
                _ => "unbonding".into(),
            }
        };
        Ok(ValidatorsView {
            height: height.0,
            set_hash: set.hash(),
            total_power: set.total_power().0,
            validators: set
                .validators()
                .iter()
                .enumerate()
                .map(|(index, validator)| ValidatorView {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    name: validator.name.clone(),
                    public_key: validator.public_key,
                    address: validator.address(),
                    power: validator.power.0,
                    status: status_of(validator),
                })
                .collect(),
            candidates: staking
                .as_ref()
                .map(|staking| {
                    staking
                        .candidates()
                        .map(|(operator, candidate)| candidate_view(staking, operator, candidate))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    fn peers(&self) -> Result<Vec<PeerView>, RpcError> {
        let now = crate::runtime::system_now().as_millis();
        Ok(self
            .network
            .peers()
            .into_iter()
            .map(|mut peer| {
                peer.connected_ms = peer.connected_since.map(|since| now.saturating_sub(since));
                peer
            })
            .collect())
    }

    fn mempool(&self) -> Result<MempoolView, RpcError> {
        let (count, bytes) = self.ledger.mempool_size();
        Ok(MempoolView {
            count,
            bytes,
            executable: self.ledger.mempool_executable(),
            queued: self.ledger.mempool_queued(),
        })
    }

    fn fees(&self) -> Result<crate::rpc::FeesView, RpcError> {
        let fees = self.ledger.fees();
        Ok(crate::rpc::FeesView {
            chain_min_fee: fees.chain_min_fee,
            node_min_fee: fees.node_min_fee,
            mempool_entry_fee: fees.mempool_entry_fee,
            blocks: fees.blocks,
            p50: fees.p50,
            p90: fees.p90,
            suggested_fee: fees.suggested_fee,
        })
    }

    fn pending_transaction(
        &self,
        hash: &Hash,
    ) -> Result<Option<crate::rpc::PendingTransactionView>, RpcError> {
        Ok(self.ledger.pending_transaction(hash).map(|transaction| {
            crate::rpc::PendingTransactionView {
                hash: *hash,
                transaction,
                queued_behind_nonce: self
                    .ledger
                    .queued_behind(std::slice::from_ref(hash))
                    .pop()
                    .flatten(),
                pending_ms: None,
            }
        }))
    }

    fn mempool_transactions(
        &self,
        limit: usize,
    ) -> Result<crate::rpc::MempoolTransactionsView, RpcError> {
        let (count, listed) = self.ledger.mempool_oldest(limit);
        Ok(crate::rpc::MempoolTransactionsView {
            count,
            transactions: listed
                .into_iter()
                .map(|(hash, transaction, queued_behind_nonce, age)| {
                    crate::rpc::PendingTransactionView {
                        hash,
                        transaction,
                        queued_behind_nonce,
                        pending_ms: Some(u64::try_from(age.as_millis()).unwrap_or(u64::MAX)),
                    }
                })
                .collect(),
        })
    }

    fn genesis(&self) -> Result<serde_json::Value, RpcError> {
        serde_json::to_value(self.ledger.genesis().to_file())
            .map_err(|error| RpcError::internal(format!("cannot encode the genesis: {error}")))
    }

    fn consensus(&self) -> Result<crate::rpc::ConsensusStateView, RpcError> {
        let board = self
            .consensus
            .as_ref()
            .ok_or_else(|| RpcError::not_found("this node runs no consensus loop to report on"))?;
        board
            .latest()
            .map(|view| (*view).clone())
            .ok_or_else(|| RpcError {
                status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
                code: "not_ready".into(),
                message: "consensus has not started yet; retry in a moment".into(),
            })
    }

    fn evidence(&self) -> Result<Vec<Evidence>, RpcError> {
        self.ledger.store().evidence().map_err(store_error)
    }

    fn subscribe(&self) -> broadcast::Receiver<NewBlockEvent> {
        self.ledger.subscribe()
    }

    fn subscribe_drops(&self) -> Option<broadcast::Receiver<crate::mempool::DroppedTransaction>> {
        Some(self.ledger.subscribe_drops())
    }
}
