//! The node's ledger core: the committed chain and what may extend it.
//!
//! [`Ledger`] owns the store (`Arc<dyn Store>`), the in-memory
//! [`LedgerState`] with the tip it belongs to (behind one `RwLock`), the
//! [`Mempool`], a bounded broadcast channel of [`NewBlockEvent`]s, the
//! node's [`Metrics`] and a bounded cache of execution outcomes by block
//! hash. The consensus host calls:
//!
//! - [`Ledger::build_block`] when it proposes: reaps the mempool within the
//!   genesis block limits, executes with [`cairn_state::BlockExecution`]
//!   (invalid leftovers are skipped) and fills the header;
//! - [`Ledger::validate_block`] for a proposal: structure, header against
//!   the tip and genesis, parent certificate, evidence, signatures (the
//!   mempool's verified cache, then one ZIP-215 batch for the rest) and
//!   execution against the committed state;
//! - [`Ledger::commit`] on decide: certificate check, then
//!   `store.commit_block`, `state.apply`, `mempool.remove_committed`, and
//!   the event, reusing validation's outcome from the cache.
//!
//! Validator sets: the state holds the sets of the next two heights
//! (staking moves them); the set of any committed height is read from the
//! store by the hash its header names ([`Ledger::validator_set`]), so
//! parent certificates, evidence and block sync are checked against the
//! set of their own height.
//!
//! Lock order: the state lock before the mempool lock, never the reverse.
//! Commits are serialised by their own mutex; the state's write lock is
//! only held to copy an outcome in.

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    path::Path,
    sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard},
};

use cairn_genesis::Genesis;
use cairn_state::{ExecutionOutcome, LedgerState, StateError};
use cairn_store::{ChainIdentity, RocksStore, Store, StoreError};
use cairn_types::{
    limits::{
        CERTIFICATE_BYTES_MAX, EVIDENCE_AGE_MAX_BLOCKS, EVIDENCE_BYTES_MAX, HEADER_BYTES_MAX,
    },
    Address, BatchVerifier, Block, ChainId, CommitCertificate, Evidence, Hash, Header, Height,
    Timestamp, TypesError, ValidatorSet,
};
use thiserror::Error;
use tokio::sync::broadcast;

use crate::{
    mempool::{
        AccountView, Mempool, MempoolLimits, Precheck, Rejection, SenderLimits, SenderPending,
    },
    metrics::Metrics,
    rpc::NewBlockEvent,
};

/// Most validator sets of past heights kept in memory by hash.
pub const VALIDATOR_SET_CACHE_MAX: usize = 16;
/// Most execution outcomes kept by block hash (proposals of the current
/// height; cleared at each commit).
pub const OUTCOME_CACHE_MAX: usize = 64;
/// Most new-block events queued per WebSocket subscriber before it lags.
pub const NEW_BLOCK_EVENTS_MAX: usize = 256;
/// Recent blocks whose entry fee [`Ledger::fees`] keeps for `GET /fees`.
pub const FEE_HISTORY_BLOCKS_MAX: usize = 20;
/// Bytes of a block reserved for everything but its transactions (header,
/// parent certificate, length prefixes) when reaping.
const BLOCK_OVERHEAD_BYTES: usize = HEADER_BYTES_MAX + CERTIFICATE_BYTES_MAX + 64;

/// Whether a commit's store write is synced before the commit returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CommitWrite {
    /// Synced: durable when the commit returns.
    Synced,
    /// Durable with the next synced write or [`Ledger::sync_commits`].
    Unsynced,
}

/// Why the ledger refused something.
#[derive(Debug, Error)]
pub enum LedgerError {
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store belongs to another chain or genesis.
    #[error("the data directory {data_dir} belongs to another chain ({source}). To start over on this genesis run `cairnd reset --yes --home {home}`, which deletes the chain data and keeps keys and config")]
    OtherChain {
        /// The store's directory.
        data_dir: std::path::PathBuf,
        /// The home holding it, for the command to run.
        home: String,
        /// The store's error, naming both values.
        source: Box<StoreError>,
    },
    /// The store is damaged (a corrupt record or file): the node does not
    /// run on it.
    #[error("{source}. The node did not start, so it cannot lose anything more. A full node can resync: `cairnd reset --yes --home {home}` deletes the chain data (keys and config stay) and the next start syncs the chain from peers. A validator can do the same: `reset` keeps config/sign_state.json, so the resynced validator signs nothing at or below what it signed before (it stays silent there rather than double-sign); or restore {data_dir} from a backup")]
    Damaged {
        /// The store's directory.
        data_dir: std::path::PathBuf,
        /// The home holding it, for the command to run.
        home: String,
        /// What RocksDB found.
        source: Box<StoreError>,
    },
    /// The genesis could not give a state.
    #[error(transparent)]
    Genesis(#[from] cairn_genesis::GenesisError),
    /// A block is malformed or does not extend the tip.
    #[error("block {height} is invalid: {reason}")]
    InvalidBlock {
        /// The block's height.
        height: Height,
        /// What is wrong.
        reason: String,
    },
    /// A transaction of a block has a bad signature.
    #[error("block {height} is invalid: transaction {index} ({hash}) has a signature that does not verify")]
    BadSignature {
        /// The block's height.
        height: Height,
        /// Position of the transaction.
        index: usize,
        /// Its hash.
        hash: Hash,
    },
    /// Executing the block failed (nonce, funds, state root...).
    #[error("block {height} is invalid: {source}")]
    Execution {
        /// The block's height.
        height: Height,
        /// Why.
        source: StateError,
    },
    /// The certificate does not decide this block.
    #[error("the certificate for block {height} is invalid: {reason}")]
    BadCertificate {
        /// The block's height.
        height: Height,
        /// Why.
        reason: String,
    },
    /// The in-memory state refused an outcome the store accepted: the
    /// process must restart to reload the state from the store.
    #[error("block {height} was stored but the in-memory state refused it ({source}); restart the node, which reloads the state from the store")]
    StateDiverged {
        /// The block's height.
        height: Height,
        /// Why.
        source: StateError,
    },
}

/// What a committed state proves about an address.
#[derive(Clone, Debug)]
pub enum ProvenAccount {
    /// The address holds this account; the proof is its leaf's path.
    Present(cairn_state::Account, cairn_state::AccountProof),
    /// The address has no account; the proof is the gap that holds it.
    Absent(cairn_state::AbsenceProof),
}

/// The latest committed block, as the node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tip {
    /// Its height (0 before the first block).
    pub height: Height,
    /// Its hash (the genesis hash at height 0).
    pub hash: Hash,
    /// Its time (the genesis time at height 0).
    pub time: Timestamp,
    /// The state root after it.
    pub state_root: Hash,
}

/// The state and the tip it belongs to, under one lock.
struct Committed {
    state: LedgerState,
    tip: Tip,
    /// The set that signed the tip's certificate (`None` at genesis).
    tip_set: Option<ValidatorSet>,
}

impl Committed {
    /// The set of the next height.
    fn current_set(&self) -> Result<&ValidatorSet, LedgerError> {
        self.state.current_validator_set().ok_or_else(no_staking)
    }

    /// The set of the height after the next.
    fn next_set(&self) -> Result<&ValidatorSet, LedgerError> {
        self.state.next_validator_set().ok_or_else(no_staking)
    }
}

fn no_staking() -> LedgerError {
    LedgerError::Store(StoreError::Corrupt {
        what: "state".into(),
        reason: "it holds no staking state (no validator set); the data directory is of an older format, run `cairnd reset --yes`".into(),
    })
}

/// Reads committed accounts for the mempool.
struct StateAccounts<'a>(&'a LedgerState);

impl AccountView for StateAccounts<'_> {
    fn balance_and_nonce(&self, address: &Address) -> (u64, u64) {
        let account = self.0.account(address).unwrap_or_default();
        (account.balance, account.nonce)
    }

    fn check_staking(
        &self,
        transaction: &cairn_types::SignedTransaction,
    ) -> Result<(), StateError> {
        self.0.check_staking(transaction)
    }

    fn exists(&self, address: &Address) -> bool {
        self.0.account(address).is_some()
    }
}

/// What a proposer asks [`Ledger::build_block`] for.
#[derive(Clone, Debug)]
pub struct BlockRequest {
    /// The proposer's fee address (a validator's).
    pub proposer: Address,
    /// The proposer's clock; raised to one millisecond after the parent if
    /// it is not later.
    pub time: Timestamp,
    /// The certificate of the tip (`None` only at height 1).
    pub parent_certificate: Option<CommitCertificate>,
    /// Evidence to record.
    pub evidence: Vec<Evidence>,
}

/// What [`Ledger::commit`] did.
#[derive(Clone, Debug)]
pub struct CommitSummary {
    /// The committed height.
    pub height: Height,
    /// The block hash.
    pub hash: Hash,
    /// Transactions committed.
    pub transactions: usize,
}

/// What validating (or building) a block computed, kept for its commit:
/// the execution outcome, and each transaction's hash (computed once per
/// block, not again by the commit).
#[derive(Clone)]
struct Validated {
    outcome: Arc<ExecutionOutcome>,
    transaction_hashes: Arc<[Hash]>,
}

/// A bounded map of outcomes by block hash, oldest dropped first.
#[derive(Default)]
struct OutcomeCache {
    outcomes: HashMap<Hash, Validated>,
    order: VecDeque<Hash>,
}

impl OutcomeCache {
    fn insert(&mut self, hash: Hash, validated: Validated) {
        if self.outcomes.insert(hash, validated).is_none() {
            self.order.push_back(hash);
        }
        while self.order.len() > OUTCOME_CACHE_MAX {
            if let Some(old) = self.order.pop_front() {
                self.outcomes.remove(&old);
            }
        }
    }

    fn get(&self, hash: &Hash) -> Option<Validated> {
        self.outcomes.get(hash).cloned()
    }

    fn clear(&mut self) {
        self.outcomes.clear();
        self.order.clear();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock leaves data that is still consistent
    // for our uses (every update is a single assignment or a full method).
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The committed chain, the mempool, and the paths that extend the chain.
pub struct Ledger {
    genesis: Genesis,
    genesis_hash: Hash,
    store: Arc<dyn Store>,
    /// Sets of past heights read from the store, by hash (bounded).
    set_cache: Mutex<VecDeque<(Hash, ValidatorSet)>>,
    committed: RwLock<Committed>,
    mempool: Mutex<Mempool>,
    outcomes: Mutex<OutcomeCache>,
    commit_lock: Mutex<()>,
    /// One admission at a time: signature checks of submissions and gossip
    /// batches never run as many batches as there are requests, so they
    /// do not crowd out consensus (which must validate and vote within its
    /// timeouts) on a small machine. One large batch is itself spread over
    /// the cores ([`cairn_types::BatchVerifier::verify`]).
    admission_lock: Mutex<()>,
    /// Signalled when admission adds transactions (wakes a held height).
    arrivals: tokio::sync::Notify,
    events: broadcast::Sender<NewBlockEvent>,
    /// Transactions dropped from the mempool uncommitted.
    drops: broadcast::Sender<crate::mempool::DroppedTransaction>,
    metrics: Arc<Metrics>,
    /// (height, validator) of the evidence recorded by the last
    /// [`EVIDENCE_AGE_MAX_BLOCKS`] blocks: a block may not record it again.
    recorded_evidence: Mutex<BTreeSet<(Height, u32)>>,
    /// The fee that entered each of the last [`FEE_HISTORY_BLOCKS_MAX`]
    /// blocks committed by this process, oldest first (see
    /// [`Ledger::fees`]).
    fee_history: Mutex<VecDeque<u64>>,
    /// `mempool.peer_transactions_per_second`.
    peer_gossip_rate: std::sync::atomic::AtomicU64,
    /// The journal of transactions submitted through this node's RPC
    /// (none in tests that do not set one).
    journal: Mutex<Option<crate::journal::Journal>>,
    /// Test-only rule switch: accept a block whose header claims another
    /// state root than its execution gives (see
    /// [`crate::host::HostFaults`]).
    #[cfg(feature = "fault-injection")]
    accept_wrong_state_root: std::sync::atomic::AtomicBool,
    /// Damage the background scrub found in the store (`None`: none yet).
    store_damage: Mutex<Option<String>>,
}

/// What [`Ledger::fees`] reports (`GET /fees`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeeSummary {
    /// The chain's minimum fee (genesis `fee_params.min_fee`).
    pub chain_min_fee: u64,
    /// The least fee this node's mempool admits.
    pub node_min_fee: u64,
    /// The least fee that enters the mempool now (higher than the node's
    /// minimum only when the pool is full).
    pub mempool_entry_fee: u64,
    /// Blocks the percentiles are over.
    pub blocks: usize,
    /// The fee that entered half of the recent blocks (`None`: no block
    /// committed yet).
    pub p50: Option<u64>,
    /// The fee that entered 90% of the recent blocks.
    pub p90: Option<u64>,
    /// The fee `cairn tx send` pays when none is given: the highest of the
    /// node's minimum, the median and the mempool's entry fee.
    pub suggested_fee: u64,
}

/// The fee that would have entered a block: its lowest fee if it was full
/// (by count, or with no room left for another transaction of the largest
/// size), else the chain's minimum.
pub fn block_entry_fee(
    fees: &[u64],
    bytes: usize,
    params: &cairn_types::ConsensusParams,
    chain_min_fee: u64,
) -> u64 {
    let count_full = fees.len() as u64 >= params.block_transactions_max;
    let bytes_budget = usize::try_from(params.block_bytes_max)
        .unwrap_or(usize::MAX)
        .saturating_sub(BLOCK_OVERHEAD_BYTES);
    let bytes_full =
        bytes.saturating_add(cairn_types::limits::TRANSACTION_BYTES_MAX) > bytes_budget;
    match fees.iter().min() {
        Some(lowest) if count_full || bytes_full => (*lowest).max(chain_min_fee),
        _ => chain_min_fee,
    }
}

/// The `percent`-th percentile (nearest rank) of `values`.
pub fn percentile(values: &[u64], percent: u64) -> Option<u64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let count = sorted.len() as u64;
    if count == 0 {
        return None;
    }
    let rank = (percent.min(100) * count).div_ceil(100).max(1);
    sorted.get(usize::try_from(rank - 1).ok()?).copied()
}

fn missing_set(height: Height, hash: &Hash) -> LedgerError {
    LedgerError::Store(StoreError::Corrupt {
        what: format!("validator set {hash} of height {height}"),
        reason: "the header names it but the store does not hold it".into(),
    })
}

/// The committed state, tip and tip set of `store`, and the evidence its
/// recent blocks recorded; `state`, when given, is the store's state
/// already built (by a restore), so it is not read and hashed again.
fn load_committed(
    genesis: &Genesis,
    store: &dyn Store,
    state: Option<LedgerState>,
) -> Result<(Committed, BTreeSet<(Height, u32)>), LedgerError> {
    let state = match state {
        Some(state) => state,
        None => store.load_state()?,
    }
    .with_fee_params(genesis.fee_params);
    let height = store.latest_height();
    let time = if height == Height::GENESIS {
        genesis.genesis_time
    } else {
        store
            .header(height)?
            .map(|header| header.time)
            .ok_or_else(|| {
                LedgerError::Store(StoreError::Corrupt {
                    what: format!("header of the latest block {height}"),
                    reason: "missing".into(),
                })
            })?
    };
    let tip = Tip {
        height,
        hash: store.latest_block_hash(),
        time,
        state_root: state.root(),
    };
    let mut recorded_evidence = BTreeSet::new();
    // From the lowest height held: a pruned store keeps the evidence
    // window, one restored from a snapshot may hold less of it.
    let oldest = height
        .0
        .saturating_sub(EVIDENCE_AGE_MAX_BLOCKS)
        .max(store.lowest_height().0)
        .max(1);
    for recent in oldest..=height.0 {
        if let Some(block) = store.block(Height(recent))? {
            recorded_evidence.extend(block.evidence.iter().map(evidence_key));
        }
    }
    if state.staking().is_none() {
        return Err(no_staking());
    }
    let tip_set = if height == Height::GENESIS {
        None
    } else {
        let header = store.header(height)?.ok_or_else(|| {
            LedgerError::Store(StoreError::Corrupt {
                what: format!("header of the latest block {height}"),
                reason: "missing".into(),
            })
        })?;
        Some(
            store
                .validator_set(&header.validator_set_hash)?
                .ok_or_else(|| missing_set(height, &header.validator_set_hash))?,
        )
    };
    Ok((
        Committed {
            state,
            tip,
            tip_set,
        },
        recorded_evidence,
    ))
}

/// The (height, validator) a piece of evidence is about: the unit of the
/// one-piece-per-misbehaviour rule.
pub fn evidence_key(evidence: &Evidence) -> (Height, u32) {
    (evidence.height(), evidence.validator().0)
}

impl Ledger {
    /// Opens (or creates from `genesis`) the RocksDB store in `data_dir`.
    /// A store of another chain or genesis is refused with both values and
    /// what to do.
    pub fn open(
        genesis: Genesis,
        data_dir: &Path,
        mempool_limits: MempoolLimits,
        metrics: Arc<Metrics>,
    ) -> Result<Ledger, LedgerError> {
        let store = Ledger::open_store(&genesis, data_dir)?;
        Ledger::with_store(genesis, Arc::new(store), mempool_limits, metrics)
    }

    /// Opens (or creates from `genesis`) the RocksDB store in `data_dir`
    /// without loading its state. A store of another chain or genesis is
    /// refused with both values and what to do.
    pub fn open_store(genesis: &Genesis, data_dir: &Path) -> Result<RocksStore, LedgerError> {
        let identity = ChainIdentity {
            chain_id: genesis.chain_id.clone(),
            genesis_hash: genesis.hash(),
        };
        RocksStore::open(data_dir, &identity, &genesis.state()?).map_err(|error| match error {
            StoreError::ChainMismatch { .. } | StoreError::GenesisMismatch { .. } => {
                LedgerError::OtherChain {
                    data_dir: data_dir.to_path_buf(),
                    home: data_dir
                        .parent()
                        .map_or_else(|| "<home>".to_string(), |home| home.display().to_string()),
                    source: Box::new(error),
                }
            }
            StoreError::Damaged { .. } => LedgerError::Damaged {
                data_dir: data_dir.to_path_buf(),
                home: data_dir
                    .parent()
                    .map_or_else(|| "<home>".to_string(), |home| home.display().to_string()),
                source: Box::new(error),
            },
            other => LedgerError::Store(other),
        })
    }

    /// A ledger over an opened store (the simulator passes a
    /// `MemoryStore`). The state is loaded from the store.
    pub fn with_store(
        genesis: Genesis,
        store: Arc<dyn Store>,
        mempool_limits: MempoolLimits,
        metrics: Arc<Metrics>,
    ) -> Result<Ledger, LedgerError> {
        let genesis_hash = genesis.hash();
        let (committed, recorded_evidence) = load_committed(&genesis, store.as_ref(), None)?;
        metrics.set_height(committed.tip.height.0);
        let drops = broadcast::channel(crate::mempool::DROP_REPORTS_MAX).0;
        let mempool = Mempool::new(genesis.chain_id.clone(), mempool_limits)
            .with_fee_rules(genesis.fee_params, mempool_limits.min_fee)
            .with_drop_reports(drops.clone());
        Ok(Ledger {
            genesis,
            genesis_hash,
            store,
            set_cache: Mutex::new(VecDeque::new()),
            committed: RwLock::new(committed),
            mempool: Mutex::new(mempool),
            outcomes: Mutex::new(OutcomeCache::default()),
            commit_lock: Mutex::new(()),
            admission_lock: Mutex::new(()),
            arrivals: tokio::sync::Notify::new(),
            events: broadcast::channel(NEW_BLOCK_EVENTS_MAX).0,
            drops,
            metrics,
            recorded_evidence: Mutex::new(recorded_evidence),
            fee_history: Mutex::new(VecDeque::with_capacity(FEE_HISTORY_BLOCKS_MAX)),
            peer_gossip_rate: std::sync::atomic::AtomicU64::new(
                crate::runtime::PEER_GOSSIP_TRANSACTIONS_PER_SECOND_DEFAULT,
            ),
            journal: Mutex::new(None),
            store_damage: Mutex::new(None),
            #[cfg(feature = "fault-injection")]
            accept_wrong_state_root: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Test-only: accept blocks whose header names a wrong state root
    /// (breaks validity; proves the simulator's validity checker can fail).
    #[cfg(feature = "fault-injection")]
    pub fn set_accept_wrong_state_root(&self, accept: bool) {
        self.accept_wrong_state_root
            .store(accept, std::sync::atomic::Ordering::Relaxed);
    }

    /// Takes the committed state and tip a state-sync restore put in the
    /// store underneath (nothing else may commit meanwhile: consensus and
    /// block sync start after it). `restored` is the state the restore
    /// built and checked against the header ([`Store::restore_finish`]'s
    /// answer), so the accounts are not read and hashed again; the tip and
    /// the evidence window are read from the store.
    pub fn reload_from_store(&self, restored: LedgerState) -> Result<(), LedgerError> {
        let _serial = lock(&self.commit_lock);
        let (committed, recorded_evidence) =
            load_committed(&self.genesis, self.store.as_ref(), Some(restored))?;
        if committed.state.root() != self.store.state_root() {
            return Err(LedgerError::Store(StoreError::Corrupt {
                what: "the restored state".into(),
                reason: format!(
                    "its root {} is not the store's {}",
                    committed.state.root(),
                    self.store.state_root()
                ),
            }));
        }
        self.metrics.set_height(committed.tip.height.0);
        *self
            .committed
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = committed;
        *lock(&self.recorded_evidence) = recorded_evidence;
        lock(&self.outcomes).clear();
        lock(&self.set_cache).clear();
        Ok(())
    }

    /// Records damage found in the store (by the scrub, [`crate::scrub`]):
    /// `/ready` answers 503 with it from now on. The first report is kept.
    pub fn report_store_damage(&self, description: String) {
        lock(&self.store_damage).get_or_insert(description);
    }

    /// Repairs a damaged table file of the accounts from the committed
    /// state this ledger holds in memory (its root is the latest block's
    /// state root), with no commit in between
    /// ([`Store::repair_accounts`]).
    pub fn repair_accounts(
        &self,
        damaged: &cairn_store::DamagedAccounts,
    ) -> Result<(), LedgerError> {
        let _serial = lock(&self.commit_lock);
        let committed = self.read();
        Ok(self.store.repair_accounts(damaged, &committed.state)?)
    }

    /// Forgets the damage reported, once it was repaired.
    pub fn clear_store_damage(&self) {
        *lock(&self.store_damage) = None;
    }

    /// The damage found in the store, if any.
    pub fn store_damage(&self) -> Option<String> {
        lock(&self.store_damage).clone()
    }

    fn read(&self) -> RwLockReadGuard<'_, Committed> {
        self.committed
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The genesis.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The chain id.
    pub fn chain_id(&self) -> &ChainId {
        &self.genesis.chain_id
    }

    /// The genesis hash.
    pub fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The metrics this ledger updates.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The latest committed block.
    pub fn tip(&self) -> Tip {
        self.read().tip
    }

    /// The validator set of `height`: of a committed height (by the hash
    /// its header names), of the next height, or of the one after it.
    /// `None` beyond that (not decided yet) and at height 0.
    pub fn validator_set(&self, height: Height) -> Result<Option<ValidatorSet>, LedgerError> {
        let hash = {
            let committed = self.read();
            let tip = committed.tip.height.0;
            if height.0 == tip.saturating_add(1) {
                return Ok(Some(committed.current_set()?.clone()));
            }
            if height.0 == tip.saturating_add(2) {
                return Ok(Some(committed.next_set()?.clone()));
            }
            if height.0 == tip && committed.tip_set.is_some() {
                return Ok(committed.tip_set.clone());
            }
            if height == Height::GENESIS || height.0 > tip {
                return Ok(None);
            }
            drop(committed);
            match self.store.header(height)? {
                Some(header) => header.validator_set_hash,
                None => return Ok(None),
            }
        };
        if let Some((_, set)) = lock(&self.set_cache)
            .iter()
            .find(|(known, _)| *known == hash)
        {
            return Ok(Some(set.clone()));
        }
        let set = self
            .store
            .validator_set(&hash)?
            .ok_or_else(|| missing_set(height, &hash))?;
        let mut cache = lock(&self.set_cache);
        cache.push_back((hash, set.clone()));
        while cache.len() > VALIDATOR_SET_CACHE_MAX {
            cache.pop_front();
        }
        Ok(Some(set))
    }

    /// The sets of the next height and of the one after it.
    pub fn upcoming_validator_sets(&self) -> Result<(ValidatorSet, ValidatorSet), LedgerError> {
        let committed = self.read();
        Ok((
            committed.current_set()?.clone(),
            committed.next_set()?.clone(),
        ))
    }

    /// A proof of `address`'s committed account, or of its absence, read
    /// under one lock with the height it belongs to: `(height, proof,
    /// staking hash)`. `None` only if the state contradicts itself (an
    /// account without a leaf).
    pub fn prove_account(&self, address: &Address) -> Option<(Height, ProvenAccount, Hash)> {
        let committed = self.read();
        let proven = match committed.state.account(address) {
            Some(account) => ProvenAccount::Present(account, committed.state.prove(address)?),
            None => ProvenAccount::Absent(committed.state.prove_absence(address)?),
        };
        Some((committed.tip.height, proven, committed.state.staking_hash()))
    }

    /// A copy of the committed state's staking part.
    pub fn staking(&self) -> Option<cairn_state::StakingState> {
        self.read().state.staking().cloned()
    }

    /// The set the evidence's height names, checked to hold the offender.
    fn evidence_set(&self, evidence: &Evidence) -> Result<ValidatorSet, String> {
        self.validator_set(evidence.height())
            .map_err(|error| error.to_string())?
            .ok_or_else(|| format!("no validator set is known for height {}", evidence.height()))
    }

    /// The operators the evidence names (one per piece, in order): whom
    /// the block jails and slashes.
    fn offenders(&self, evidence: &[Evidence]) -> Result<Vec<cairn_state::Offence>, String> {
        evidence
            .iter()
            .map(|evidence| {
                let set = self.evidence_set(evidence)?;
                set.get(evidence.validator())
                    .map(|validator| cairn_state::Offence {
                        operator: validator.address(),
                        height: evidence.height(),
                    })
                    .ok_or_else(|| {
                        format!(
                            "evidence names validator {} of height {}, which has {} validators",
                            evidence.validator().0,
                            evidence.height(),
                            set.len()
                        )
                    })
            })
            .collect()
    }

    /// `(balance, committed nonce, next nonce counting pending transfers)`.
    pub fn account(&self, address: &Address) -> (u64, u64, u64) {
        let committed = self.read();
        let accounts = StateAccounts(&committed.state);
        let (balance, nonce) = accounts.balance_and_nonce(address);
        let next = lock(&self.mempool).next_nonce(address, &accounts);
        (balance, nonce, next)
    }

    /// The least fee the mempool admits.
    pub fn min_fee(&self) -> u64 {
        lock(&self.mempool).min_fee()
    }

    /// Sets the mempool's per-sender limits (`mempool.sender_pending_max`,
    /// `mempool.ttl_ms`).
    pub fn set_sender_limits(&self, limits: SenderLimits) {
        lock(&self.mempool).set_sender_limits(limits);
    }

    /// Keeps locally submitted transactions in `journal` from now on.
    pub fn set_journal(&self, journal: crate::journal::Journal) {
        *lock(&self.journal) = Some(journal);
    }

    /// Appends transactions this node's RPC admitted to the journal, if
    /// one is set. A journal that cannot be written is logged, never
    /// fatal: the transactions are admitted all the same.
    pub fn journal_admitted(&self, transactions: &[&[u8]]) {
        if transactions.is_empty() {
            return;
        }
        let mut journal = lock(&self.journal);
        let Some(journal) = journal.as_mut() else {
            return;
        };
        // The mempool is locked once, and only if the journal is full.
        let mut mempool = None;
        let appended = journal.append(transactions, |hash| {
            mempool
                .get_or_insert_with(|| lock(&self.mempool))
                .contains(hash)
        });
        if let Err(error) = appended {
            tracing::warn!(
                "{error}; submitted transactions will not survive a restart of this node"
            );
        }
    }

    /// Sets `mempool.peer_transactions_per_second` (read when the gossip
    /// admission starts).
    pub fn set_peer_gossip_rate(&self, per_second: u64) {
        self.peer_gossip_rate
            .store(per_second, std::sync::atomic::Ordering::Relaxed);
    }

    /// `mempool.peer_transactions_per_second`.
    pub fn peer_gossip_rate(&self) -> u64 {
        self.peer_gossip_rate
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Drops queued transactions older than the mempool's TTL (at most one
    /// walk a second) and updates the mempool metrics.
    pub fn expire_mempool(&self) {
        let mut mempool = lock(&self.mempool);
        if mempool.expire_queued(std::time::Instant::now()) > 0 {
            self.metrics.set_mempool(mempool.len(), mempool.bytes());
            self.metrics.set_mempool_dropped(mempool.dropped());
        }
    }

    /// The chain's and this node's minimum fees, the mempool's entry fee
    /// now, and percentiles of the fee that entered recent blocks.
    pub fn fees(&self) -> FeeSummary {
        let (node_min_fee, mempool_entry_fee) = {
            let mempool = lock(&self.mempool);
            (mempool.min_fee(), mempool.entry_fee())
        };
        let history: Vec<u64> = lock(&self.fee_history).iter().copied().collect();
        let p50 = percentile(&history, 50);
        let p90 = percentile(&history, 90);
        FeeSummary {
            chain_min_fee: self.genesis.fee_params.min_fee,
            node_min_fee,
            mempool_entry_fee,
            blocks: history.len(),
            p50,
            p90,
            suggested_fee: node_min_fee.max(p50.unwrap_or(0)).max(mempool_entry_fee),
        }
    }

    /// A pending transaction by hash.
    pub fn pending_transaction(&self, hash: &Hash) -> Option<cairn_types::SignedTransaction> {
        lock(&self.mempool).get(hash).cloned()
    }

    /// The pending transactions with these hashes, in the order asked
    /// (`None` for each one the mempool does not hold), under one lock.
    pub fn pending_transactions(
        &self,
        hashes: &[Hash],
    ) -> Vec<Option<cairn_types::SignedTransaction>> {
        let mempool = lock(&self.mempool);
        hashes
            .iter()
            .map(|hash| mempool.get(hash).cloned())
            .collect()
    }

    /// Verifies, in one batch, the signatures of transactions this node got
    /// outside admission (a compact proposal's missing transactions,
    /// fetched from a peer by hash), and remembers the good ones as
    /// verified: validating the proposal on the consensus thread then
    /// verifies none of them again. `hashes[i]` is the hash of
    /// `transactions[i]`. Returns how many signatures failed (a block
    /// holding one is refused by validation, which checks them again).
    pub fn verify_fetched_signatures(
        &self,
        transactions: &[&cairn_types::SignedTransaction],
        hashes: &[Hash],
    ) -> usize {
        let messages: Vec<Vec<u8>> = transactions
            .iter()
            .map(|transaction| transaction.transaction.signing_bytes())
            .collect();
        let mut batch = BatchVerifier::with_capacity(transactions.len());
        for (transaction, message) in transactions.iter().zip(&messages) {
            batch.push(
                transaction.transaction.sender,
                transaction.signature,
                message,
            );
        }
        let verdicts = batch.verify();
        let mut mempool = lock(&self.mempool);
        let mut failed = 0;
        for (hash, ok) in hashes.iter().zip(verdicts) {
            if ok {
                mempool.remember_verified(*hash);
            } else {
                failed += 1;
            }
        }
        failed
    }

    /// The total pending and at most `limit` pending transactions, oldest
    /// first (see [`crate::mempool::Mempool::oldest`]).
    #[allow(clippy::type_complexity)]
    pub fn mempool_oldest(
        &self,
        limit: usize,
    ) -> (
        usize,
        Vec<(
            Hash,
            cairn_types::SignedTransaction,
            Option<u64>,
            std::time::Duration,
        )>,
    ) {
        let mempool = lock(&self.mempool);
        (
            mempool.len(),
            mempool.oldest(limit, std::time::Instant::now()),
        )
    }

    /// `(count, bytes)` of the mempool.
    pub fn mempool_size(&self) -> (usize, usize) {
        let mempool = lock(&self.mempool);
        (mempool.len(), mempool.bytes())
    }

    /// Pending transactions that can run now (not queued behind a missing
    /// nonce): what a node waiting for transactions waits for.
    pub fn mempool_executable(&self) -> usize {
        lock(&self.mempool).executable_len()
    }

    /// Pending transactions queued behind a missing nonce.
    pub fn mempool_queued(&self) -> usize {
        lock(&self.mempool).queued_len()
    }

    /// What the mempool holds of `address`.
    pub fn sender_pending(&self, address: &Address) -> SenderPending {
        lock(&self.mempool).sender_pending(address)
    }

    /// For each hash, the nonce it is queued behind (`None`: executable,
    /// or not pending).
    pub fn queued_behind(&self, hashes: &[Hash]) -> Vec<Option<u64>> {
        let mempool = lock(&self.mempool);
        hashes
            .iter()
            .map(|hash| mempool.queued_behind(hash))
            .collect()
    }

    /// Subscribes to new-block events.
    pub fn subscribe(&self) -> broadcast::Receiver<NewBlockEvent> {
        self.events.subscribe()
    }

    /// Subscribes to transactions dropped from the mempool uncommitted.
    pub fn subscribe_drops(&self) -> broadcast::Receiver<crate::mempool::DroppedTransaction> {
        self.drops.subscribe()
    }

    /// Admits a batch of canonical transactions; one result per input.
    /// Decoding and signature verification run before any lock is taken,
    /// so a large batch never holds up a commit.
    pub fn submit(&self, batch: &[&[u8]]) -> Vec<Result<Hash, Rejection>> {
        let _one_at_a_time = lock(&self.admission_lock);
        self.expire_mempool();
        // The checks that need no signature run first (under the locks,
        // released before the verification), so a refused transaction
        // costs no verification.
        let prepared =
            Mempool::prepare_batch(&self.genesis.chain_id, batch, |transactions, hashes| {
                let committed = self.read();
                let mempool = lock(&self.mempool);
                let verdicts =
                    mempool.precheck(transactions, hashes, &StateAccounts(&committed.state));
                let refused = verdicts
                    .iter()
                    .filter(|verdict| matches!(verdict, Precheck::Refuse(_)))
                    .count();
                self.metrics.count_refused_before_signature(refused);
                verdicts
            });
        let committed = self.read();
        let mut mempool = lock(&self.mempool);
        let results = mempool.insert_prepared(prepared, &StateAccounts(&committed.state));
        self.metrics.set_mempool(mempool.len(), mempool.bytes());
        self.metrics.set_mempool_evicted(mempool.evicted());
        self.metrics.set_mempool_dropped(mempool.dropped());
        drop(mempool);
        drop(committed);
        for rejection in results.iter().filter_map(|result| result.as_ref().err()) {
            self.metrics.count_rejection(rejection.code());
        }
        if results.iter().any(Result::is_ok) {
            self.arrivals.notify_one();
        }
        results
    }

    /// Returns once transactions were admitted since the last time it
    /// returned (at once if some were admitted meanwhile).
    pub async fn transactions_arrived(&self) {
        self.arrivals.notified().await;
    }

    /// Builds the next block for `request.proposer` from the mempool,
    /// within the genesis block limits; transfers that no longer apply are
    /// skipped. The mempool keeps every transaction (the round may fail).
    /// The outcome is cached for [`Ledger::commit`].
    pub fn build_block(&self, mut request: BlockRequest) -> Result<Block, LedgerError> {
        {
            // Only evidence the block may record (see `check_evidence_is_new`).
            let next = self.tip().height.0.saturating_add(1);
            let recorded = lock(&self.recorded_evidence);
            let mut in_block = BTreeSet::new();
            request.evidence.retain(|evidence| {
                let key = evidence_key(evidence);
                key.0 .0 <= next
                    && key.0 .0.saturating_add(EVIDENCE_AGE_MAX_BLOCKS) >= next
                    && !recorded.contains(&key)
                    && in_block.insert(key)
            });
            request
                .evidence
                .truncate(cairn_types::limits::BLOCK_EVIDENCE_MAX);
        }
        let committed = self.read();
        let tip = committed.tip;
        let height = tip
            .height
            .next()
            .map_err(|error| LedgerError::InvalidBlock {
                height: tip.height,
                reason: error.to_string(),
            })?;
        let params = &self.genesis.consensus_params;
        let evidence_bytes = request.evidence.len().saturating_mul(EVIDENCE_BYTES_MAX);
        let bytes_budget = usize::try_from(params.block_bytes_max)
            .unwrap_or(usize::MAX)
            .saturating_sub(BLOCK_OVERHEAD_BYTES + evidence_bytes);
        let count_budget = usize::try_from(params.block_transactions_max).unwrap_or(usize::MAX);
        let (validator_set_hash, next_validator_set_hash) = (
            committed.current_set()?.hash(),
            committed.next_set()?.hash(),
        );
        drop(committed);
        // Evidence whose validator cannot be named in its height's set is
        // left out (it could not be valid in a block), never the block.
        let mut offenders = Vec::with_capacity(request.evidence.len());
        request.evidence.retain(
            |evidence| match self.offenders(std::slice::from_ref(evidence)) {
                Ok(named) => {
                    offenders.extend(named);
                    true
                }
                Err(reason) => {
                    tracing::warn!("evidence left out of block {height}: {reason}");
                    false
                }
            },
        );
        let committed = self.read();
        if committed.tip != tip {
            return Err(LedgerError::InvalidBlock {
                height,
                reason: "the tip moved while the block was built".into(),
            });
        }
        let accounts = StateAccounts(&committed.state);
        let candidates =
            lock(&self.mempool).reap_with_hashes(count_budget, bytes_budget, &accounts);
        let mut execution = committed
            .state
            .begin_block(&self.genesis.chain_id, request.proposer);
        execution.record_offenders(&offenders);
        let mut transactions = Vec::with_capacity(candidates.len());
        let mut transaction_hashes = Vec::with_capacity(candidates.len());
        for (hash, transaction) in candidates {
            if execution.push(&transaction).is_ok() {
                transactions.push(transaction);
                transaction_hashes.push(hash);
            }
        }
        let outcome = execution
            .finish()
            .map_err(|source| LedgerError::Execution { height, source })?;
        drop(committed);
        let earliest = if tip.height == Height::GENESIS {
            self.genesis.genesis_time
        } else {
            tip.time.saturating_add_millis(1)
        };
        let header = Header {
            chain_id: self.genesis.chain_id.clone(),
            height,
            time: request.time.max(earliest),
            parent_hash: tip.hash,
            proposer: request.proposer,
            transactions_root: Block::transactions_root_of_hashes(&transaction_hashes),
            state_root: outcome.state_root(),
            parent_certificate_hash: Block::parent_certificate_hash_of(
                request.parent_certificate.as_ref(),
            ),
            evidence_hash: Block::evidence_hash_of(&request.evidence),
            validator_set_hash,
            next_validator_set_hash,
        };
        let block = Block {
            header,
            transactions,
            parent_certificate: request.parent_certificate,
            evidence: request.evidence,
        };
        lock(&self.outcomes).insert(
            block.hash(),
            Validated {
                outcome: Arc::new(outcome),
                transaction_hashes: transaction_hashes.into(),
            },
        );
        Ok(block)
    }

    /// Whether [`Ledger::validate_block`] of the block with `hash` would be
    /// answered from the cache (this node built or validated it).
    pub fn is_validated(&self, hash: &Hash) -> bool {
        let tip_root = self.read().tip.state_root;
        lock(&self.outcomes)
            .get(hash)
            .is_some_and(|validated| validated.outcome.parent_root() == tip_root)
    }

    /// Checks that `block` validly extends the tip and executes it against
    /// the committed state. The outcome is cached by block hash for
    /// [`Ledger::commit`].
    pub fn validate_block(&self, block: &Block) -> Result<Arc<ExecutionOutcome>, LedgerError> {
        self.validate(block).map(|validated| validated.outcome)
    }

    /// [`Ledger::validate_block`], keeping the transactions' hashes for the
    /// commit.
    fn validate(&self, block: &Block) -> Result<Validated, LedgerError> {
        let hash = block.hash();
        if let Some(validated) = lock(&self.outcomes).get(&hash) {
            if validated.outcome.parent_root() == self.read().tip.state_root {
                return Ok(validated);
            }
        }
        let height = block.header.height;
        let invalid = |reason: String| LedgerError::InvalidBlock { height, reason };
        if block.transactions.len() > cairn_types::limits::BLOCK_TRANSACTIONS_MAX {
            // Refused by the structure check below; not hashed first.
            return Err(invalid(format!(
                "{} transactions, the limit is {}",
                block.transactions.len(),
                cairn_types::limits::BLOCK_TRANSACTIONS_MAX
            )));
        }
        let transaction_hashes = Block::transaction_hashes_of(&block.transactions);
        block
            .check_structure_with(&transaction_hashes)
            .map_err(|error| invalid(error.to_string()))?;
        self.check_limits_and_header_fields(block)
            .map_err(invalid)?;
        self.verify_transaction_signatures(block, &transaction_hashes)?;
        let committed = self.read();
        self.check_against_tip(&block.header, &committed.tip)
            .map_err(invalid)?;
        self.check_evidence_is_new(block).map_err(invalid)?;
        self.check_validator_sets(block, &committed)
            .map_err(invalid)?;
        drop(committed);
        let offenders = self.offenders(&block.evidence).map_err(invalid)?;
        self.check_signed_parts(block).map_err(invalid)?;
        let committed = self.read();
        self.check_against_tip(&block.header, &committed.tip)
            .map_err(invalid)?;
        let executed = committed
            .state
            .execute_block(&self.genesis.chain_id, block, &offenders);
        #[cfg(feature = "fault-injection")]
        let executed = match executed {
            Err(cairn_state::StateError::StateRootMismatch { .. })
                if self
                    .accept_wrong_state_root
                    .load(std::sync::atomic::Ordering::Relaxed) =>
            {
                committed.state.execute_with_offenders(
                    &self.genesis.chain_id,
                    block.header.proposer,
                    &block.transactions,
                    &offenders,
                )
            }
            other => other,
        };
        let outcome = executed.map_err(|source| LedgerError::Execution { height, source })?;
        drop(committed);
        let validated = Validated {
            outcome: Arc::new(outcome),
            transaction_hashes: transaction_hashes.into(),
        };
        lock(&self.outcomes).insert(hash, validated.clone());
        Ok(validated)
    }

    /// The evidence rule: each piece is of a height in the evidence window
    /// of the block ([`EVIDENCE_AGE_MAX_BLOCKS`]), and no (validator,
    /// height) is recorded twice, in this block or in an earlier one.
    fn check_evidence_is_new(&self, block: &Block) -> Result<(), String> {
        let height = block.header.height.0;
        let recorded = lock(&self.recorded_evidence);
        let mut in_block = BTreeSet::new();
        for (index, evidence) in block.evidence.iter().enumerate() {
            let key = evidence_key(evidence);
            if key.0 .0 > height || key.0 .0.saturating_add(EVIDENCE_AGE_MAX_BLOCKS) < height {
                return Err(format!(
                    "evidence {index} is of height {}, outside the {EVIDENCE_AGE_MAX_BLOCKS} heights up to {height}",
                    key.0
                ));
            }
            if !in_block.insert(key) || recorded.contains(&key) {
                return Err(format!(
                    "evidence {index} against validator {} at height {} is already recorded",
                    key.1, key.0
                ));
            }
        }
        Ok(())
    }

    /// Whether evidence about this (height, validator) is already in a
    /// block (then it is not proposed again).
    pub fn evidence_recorded(&self, evidence: &Evidence) -> bool {
        lock(&self.recorded_evidence).contains(&evidence_key(evidence))
    }

    /// Checks that need neither the tip nor the state.
    fn check_limits_and_header_fields(&self, block: &Block) -> Result<(), String> {
        let header = &block.header;
        let params = &self.genesis.consensus_params;
        if header.chain_id != self.genesis.chain_id {
            return Err(format!(
                "it is for chain {}, this node runs {}",
                header.chain_id, self.genesis.chain_id
            ));
        }
        if block.transactions.len() as u64 > params.block_transactions_max {
            return Err(format!(
                "{} transactions, the genesis limit is {}",
                block.transactions.len(),
                params.block_transactions_max
            ));
        }
        let size = cairn_types::codec::encoded_len(block) as u64;
        if size > params.block_bytes_max {
            return Err(format!(
                "{size} bytes, the genesis limit is {}",
                params.block_bytes_max
            ));
        }
        Ok(())
    }

    /// The header names the sets the state holds for its height and the
    /// next, and its fee address is an operator of its height's set.
    fn check_validator_sets(&self, block: &Block, committed: &Committed) -> Result<(), String> {
        let header = &block.header;
        let current = committed.current_set().map_err(|error| error.to_string())?;
        let next = committed.next_set().map_err(|error| error.to_string())?;
        if header.validator_set_hash != current.hash() {
            return Err(format!(
                "validator set hash {} is not the set of height {} ({})",
                header.validator_set_hash,
                header.height,
                current.hash()
            ));
        }
        if header.next_validator_set_hash != next.hash() {
            return Err(format!(
                "next validator set hash {} is not the set of the next height ({})",
                header.next_validator_set_hash,
                next.hash()
            ));
        }
        if !current
            .validators()
            .iter()
            .any(|validator| validator.address() == header.proposer)
        {
            return Err(format!(
                "proposer {} is not the operator of a validator of height {}",
                header.proposer, header.height
            ));
        }
        Ok(())
    }

    /// The parent certificate verifies against the parent's set, and each
    /// piece of evidence against the set of its height.
    fn check_signed_parts(&self, block: &Block) -> Result<(), String> {
        if let Some(certificate) = &block.parent_certificate {
            let set = self
                .validator_set(certificate.height)
                .map_err(|error| error.to_string())?
                .ok_or_else(|| {
                    format!(
                        "parent certificate: no validator set is known for height {}",
                        certificate.height
                    )
                })?;
            certificate
                .verify(&self.genesis.chain_id, &set)
                .map_err(|error: TypesError| format!("parent certificate: {error}"))?;
        }
        for (index, evidence) in block.evidence.iter().enumerate() {
            let set = self
                .evidence_set(evidence)
                .map_err(|reason| format!("evidence {index}: {reason}"))?;
            evidence
                .verify(&self.genesis.chain_id, &set)
                .map_err(|error| format!("evidence {index}: {error}"))?;
        }
        Ok(())
    }

    /// Height, parent and time against the tip.
    fn check_against_tip(&self, header: &Header, tip: &Tip) -> Result<(), String> {
        let expected = Height(tip.height.0.saturating_add(1));
        if header.height != expected {
            return Err(format!("the next height is {expected}"));
        }
        if header.parent_hash != tip.hash {
            return Err(format!(
                "parent {} is not the latest block {}",
                header.parent_hash, tip.hash
            ));
        }
        if tip.height == Height::GENESIS {
            if header.time < self.genesis.genesis_time {
                return Err(format!(
                    "time {} is before the genesis time {}",
                    header.time, self.genesis.genesis_time
                ));
            }
        } else if header.time <= tip.time {
            return Err(format!(
                "time {} is not after the parent's {}",
                header.time, tip.time
            ));
        }
        Ok(())
    }

    /// Verifies the signatures the mempool has not verified, in one batch.
    fn verify_transaction_signatures(
        &self,
        block: &Block,
        hashes: &[Hash],
    ) -> Result<(), LedgerError> {
        let unverified: Vec<usize> = {
            let mempool = lock(&self.mempool);
            (0..hashes.len())
                .filter(|&index| !mempool.signature_verified(&hashes[index]))
                .collect()
        };
        let messages: Vec<Vec<u8>> = unverified
            .iter()
            .map(|&index| block.transactions[index].transaction.signing_bytes())
            .collect();
        let mut batch = BatchVerifier::with_capacity(unverified.len());
        for (&index, message) in unverified.iter().zip(&messages) {
            let transaction = &block.transactions[index];
            batch.push(
                transaction.transaction.sender,
                transaction.signature,
                message,
            );
        }
        let verdicts = batch.verify();
        if let Some(position) = verdicts.iter().position(|ok| !ok) {
            let index = unverified[position];
            return Err(LedgerError::BadSignature {
                height: block.header.height,
                index,
                hash: hashes[index],
            });
        }
        // Gossip often brings these transactions after the proposal did:
        // admission will then skip their signatures.
        let mut mempool = lock(&self.mempool);
        for &index in &unverified {
            mempool.remember_verified(hashes[index]);
        }
        Ok(())
    }

    /// Commits a decided block: checks the certificate, reuses the
    /// validation outcome (or validates now), then `store.commit_block`,
    /// `state.apply`, `mempool.remove_committed`, and publishes the event.
    pub fn commit(
        &self,
        block: &Block,
        certificate: &CommitCertificate,
    ) -> Result<CommitSummary, LedgerError> {
        self.validate_and_commit(block, certificate, CommitWrite::Synced)
    }

    /// [`Ledger::commit`] without syncing the store's write
    /// ([`Store::commit_block_unsynced`]): for a run of blocks from block
    /// sync, each committed this way and the run then made durable with
    /// one [`Ledger::sync_commits`] (one fsync a run instead of one a
    /// block). A crash before that sync loses a suffix of the run, which
    /// block sync fetches again.
    pub fn commit_unsynced(
        &self,
        block: &Block,
        certificate: &CommitCertificate,
    ) -> Result<CommitSummary, LedgerError> {
        self.validate_and_commit(block, certificate, CommitWrite::Unsynced)
    }

    fn validate_and_commit(
        &self,
        block: &Block,
        certificate: &CommitCertificate,
        write: CommitWrite,
    ) -> Result<CommitSummary, LedgerError> {
        let _serial = lock(&self.commit_lock);
        let validated = self.validate(block)?;
        self.commit_locked(
            block,
            certificate,
            &validated.outcome,
            Some(&validated.transaction_hashes),
            write,
        )
    }

    /// Makes every commit so far durable (one fsync), those of
    /// [`Ledger::commit_unsynced`] included.
    pub fn sync_commits(&self) -> Result<(), LedgerError> {
        Ok(self.store.wal_sync()?)
    }

    /// [`Ledger::commit`] with an outcome the caller computed on the
    /// committed state (e.g. during block sync).
    pub fn commit_with_outcome(
        &self,
        block: &Block,
        certificate: &CommitCertificate,
        outcome: &ExecutionOutcome,
    ) -> Result<CommitSummary, LedgerError> {
        let _serial = lock(&self.commit_lock);
        self.commit_locked(block, certificate, outcome, None, CommitWrite::Synced)
    }

    /// Commits `block`; `transaction_hashes` are its transactions' hashes
    /// when the caller has them (computed here otherwise).
    fn commit_locked(
        &self,
        block: &Block,
        certificate: &CommitCertificate,
        outcome: &ExecutionOutcome,
        transaction_hashes: Option<&[Hash]>,
        write: CommitWrite,
    ) -> Result<CommitSummary, LedgerError> {
        let height = block.header.height;
        let hash = block.hash();
        let bad_certificate = |reason: String| LedgerError::BadCertificate { height, reason };
        if certificate.height != height || certificate.block_hash != hash {
            return Err(bad_certificate(format!(
                "it decides block {} at height {}, not {hash}",
                certificate.block_hash, certificate.height
            )));
        }
        let signers = {
            let committed = self.read();
            if committed.tip.height.next().ok() != Some(height) {
                return Err(bad_certificate(format!(
                    "the next height is {}",
                    Height(committed.tip.height.0.saturating_add(1))
                )));
            }
            committed.current_set()?.clone()
        };
        certificate
            .verify(&self.genesis.chain_id, &signers)
            .map_err(|error| bad_certificate(error.to_string()))?;

        match write {
            CommitWrite::Synced => self.store.commit_block(block, certificate, outcome)?,
            CommitWrite::Unsynced => {
                self.store
                    .commit_block_unsynced(block, certificate, outcome)?
            }
        }
        let previous_time = {
            let mut committed = self
                .committed
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            committed
                .state
                .apply(outcome)
                .map_err(|source| LedgerError::StateDiverged { height, source })?;
            let previous = committed.tip.time;
            committed.tip_set = Some(signers);
            committed.tip = Tip {
                height,
                hash,
                time: block.header.time,
                state_root: outcome.state_root(),
            };
            previous
        };
        lock(&self.outcomes).clear();
        {
            let mut recorded = lock(&self.recorded_evidence);
            recorded.extend(block.evidence.iter().map(evidence_key));
            let oldest = height.0.saturating_sub(EVIDENCE_AGE_MAX_BLOCKS);
            recorded.retain(|(evidence_height, _)| evidence_height.0 >= oldest);
        }
        let block_transaction_bytes: usize = block
            .transactions
            .iter()
            .map(cairn_types::codec::encoded_len)
            .sum();
        let computed;
        let transaction_hashes = match transaction_hashes {
            Some(hashes) if hashes.len() == block.transactions.len() => hashes,
            _ => {
                computed = Block::transaction_hashes_of(&block.transactions);
                &computed[..]
            }
        };
        {
            let committed = self.read();
            let mut mempool = lock(&self.mempool);
            // Transfers change only their senders' pending transactions;
            // staking transactions and evidence may change anyone's.
            let changes_staking = !block.evidence.is_empty()
                || block
                    .transactions
                    .iter()
                    .any(|transaction| !transaction.transaction.is_transfer());
            let senders: Option<Vec<Address>> = (!changes_staking)
                .then(|| mempool.senders_of(transaction_hashes, &block.transactions));
            mempool.remove_committed_of(
                transaction_hashes,
                senders.as_deref(),
                &StateAccounts(&committed.state),
            );
            mempool.expire_queued(std::time::Instant::now());
            self.metrics.set_mempool(mempool.len(), mempool.bytes());
            self.metrics.set_mempool_dropped(mempool.dropped());
        }
        {
            let fees: Vec<u64> = block
                .transactions
                .iter()
                .map(|transaction| transaction.transaction.fee)
                .collect();
            let entry = block_entry_fee(
                &fees,
                block_transaction_bytes,
                &self.genesis.consensus_params,
                self.genesis.fee_params.min_fee,
            );
            let mut history = lock(&self.fee_history);
            if history.len() >= FEE_HISTORY_BLOCKS_MAX {
                history.pop_front();
            }
            history.push_back(entry);
        }
        let interval_ms = block
            .header
            .time
            .as_millis()
            .saturating_sub(previous_time.as_millis());
        self.metrics.record_commit(
            height.0,
            certificate.round.0,
            transaction_hashes.len(),
            interval_ms,
        );
        let transactions = transaction_hashes.len();
        // The parties only when someone listens (it hashes each sender's
        // key).
        let parties = if self.events.receiver_count() > 0 {
            block
                .transactions
                .iter()
                .map(|signed| crate::rpc::TransactionParties::of(&signed.transaction))
                .collect()
        } else {
            Vec::new()
        };
        // No subscriber is not an error.
        let _ = self.events.send(NewBlockEvent {
            kind: "new_block".into(),
            height: height.0,
            hash,
            time: block.header.time.as_millis(),
            transactions: transaction_hashes.to_vec(),
            parties: Arc::new(parties),
        });
        Ok(CommitSummary {
            height,
            hash,
            transactions,
        })
    }
}

#[cfg(test)]
mod fee_tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 90), Some(7));
        let values: Vec<u64> = (1..=10).rev().collect();
        assert_eq!(percentile(&values, 50), Some(5));
        assert_eq!(percentile(&values, 90), Some(9));
        assert_eq!(percentile(&values, 100), Some(10));
        assert_eq!(percentile(&[1, 1, 1, 12], 90), Some(12));
    }

    /// A block with room would have taken the minimum; a full one (by
    /// count or by bytes) its lowest fee.
    #[test]
    fn the_entry_fee_of_a_block_is_its_lowest_fee_only_when_full() {
        let params = cairn_types::ConsensusParams {
            block_transactions_max: 3,
            ..cairn_types::ConsensusParams::default()
        };
        assert_eq!(block_entry_fee(&[], 0, &params, 1), 1);
        assert_eq!(block_entry_fee(&[5, 9], 400, &params, 1), 1);
        assert_eq!(block_entry_fee(&[5, 9, 4], 600, &params, 1), 4);
        let by_bytes = usize::try_from(params.block_bytes_max).unwrap();
        let roomy = cairn_types::ConsensusParams {
            block_transactions_max: 1_000,
            ..params
        };
        assert_eq!(block_entry_fee(&[5, 9], by_bytes, &roomy, 1), 5);
        assert_eq!(block_entry_fee(&[0, 9], by_bytes, &roomy, 2), 2);
    }
}
