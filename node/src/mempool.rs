//! The mempool: transactions accepted by this node and not yet committed.
//!
//! Admission runs the cheap checks first (size, decoding, chain, memo,
//! duplicates, nonce window, funds against the sender's pending spending,
//! caps), then verifies the signatures of the survivors of a batch in one
//! ZIP-215 batch verification. Each refusal is a typed [`Rejection`] that the
//! RPC turns into an error code.
//!
//! Pending transactions are kept per sender in nonce order. Those whose
//! nonces run without a gap from the sender's committed nonce are
//! *executable*; the others are *queued* behind the first missing nonce
//! and wait for it. Only executable transactions count as work: a node
//! waiting for transactions never starts a height for queued ones
//! ([`Mempool::executable_len`]).
//!
//! Per sender, at most [`SenderLimits::pending_max`] transactions are
//! pending, and a nonce may be at most that far above the committed one
//! (a nonce further out could not become executable without more pending
//! transactions than the limit). A queued transaction that did not become
//! executable within [`SenderLimits::queued_ttl`] is dropped
//! ([`Mempool::expire_queued`]). Every transaction that leaves the pool
//! without being committed is counted by reason ([`DropCounts`]).
//!
//! The checks that need only the committed state and the pool (nonce
//! window, per-sender limit, replacement bump, funds, minimum fee, a full
//! pool the fee cannot enter) run before the signature is verified
//! ([`Mempool::precheck`]), so a refused transaction costs no
//! verification; [`Mempool::insert_prepared`] runs them again, under the
//! lock, with the verdict that counts.
//!
//! Building a block
//! ([`Mempool::reap`]) does not remove anything, since the round may fail;
//! only [`Mempool::remove_committed`] does, after which the rest is checked
//! again against the new state. Hashes of transactions whose signatures were
//! verified stay in a bounded cache after they leave, so a proposal carrying
//! them is not verified again.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque},
    fmt,
    time::{Duration, Instant},
};

use cairn_state::StateError;
use cairn_types::{
    limits::{MEMO_BYTES_MAX, TRANSACTION_BYTES_MAX},
    Address, BatchVerifier, ChainId, FeeParams, Hash, SignedTransaction,
};

/// The most `mempool.sender_pending_max` may be set to (it also bounds
/// how far above the committed nonce a pending nonce may be).
pub const SENDER_PENDING_LIMIT_MAX: usize = 1_024;
/// Default most pending transactions of one sender
/// (`mempool.sender_pending_max`).
pub const SENDER_PENDING_MAX_DEFAULT: usize = 64;
/// Default time a queued transaction may wait for its missing nonce
/// (`mempool.ttl_ms`): 10 minutes.
pub const QUEUED_TTL_DEFAULT: Duration = Duration::from_secs(600);
/// Shortest spacing of two walks over the queued transactions for
/// expired ones.
pub const EXPIRY_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Most hashes remembered as verified after leaving the mempool.
pub const VERIFIED_CACHE_MAX: usize = 200_000;

/// The committed balance and nonce of accounts, as the mempool sees them.
pub trait AccountView {
    /// `(balance, nonce)` of `address`; zeros for an unknown account.
    fn balance_and_nonce(&self, address: &Address) -> (u64, u64);

    /// The staking rules of a staking transaction against the committed
    /// state (operator, stake, jail, keys); transfers pass.
    fn check_staking(&self, _transaction: &SignedTransaction) -> Result<(), StateError> {
        Ok(())
    }

    /// Whether `address` has a committed account.
    fn exists(&self, _address: &Address) -> bool {
        true
    }
}

/// Why a transaction was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Longer than [`TRANSACTION_BYTES_MAX`].
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// Bytes that do not decode as a signed transaction.
    Malformed(String),
    /// Signed for another chain.
    WrongChain {
        /// This node's chain.
        expected: ChainId,
        /// The transaction's chain.
        got: ChainId,
    },
    /// Memo longer than [`MEMO_BYTES_MAX`].
    MemoTooLong {
        /// Its length.
        len: usize,
    },
    /// Amount plus fee overflows.
    Overflow,
    /// Already pending (same hash), or another transaction holds its nonce.
    Duplicate(String),
    /// Below the account's next nonce.
    BadNonce {
        /// The account's committed nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// Too far above the account's committed nonce: it could not become
    /// executable without more pending transactions than the sender may
    /// have.
    NonceTooFar {
        /// The account's committed nonce.
        committed: u64,
        /// The transaction's nonce.
        got: u64,
        /// Most pending transactions per sender; the nonce must be below
        /// `committed + window`.
        window: u64,
    },
    /// The sender already has the most pending transactions allowed.
    SenderFull {
        /// Its pending transactions.
        pending: usize,
        /// The limit (`mempool.sender_pending_max`).
        max: usize,
    },
    /// The balance does not cover this and the sender's pending spending.
    InsufficientFunds {
        /// Committed balance.
        have: u64,
        /// Pending spending plus this transaction's amount and fee.
        need: u64,
    },
    /// The signature does not verify.
    BadSignature,
    /// The mempool is at its count or byte cap, and the transaction does
    /// not pay more than the cheapest pending one.
    Full {
        /// Transactions pending.
        count: usize,
        /// Bytes pending.
        bytes: usize,
        /// The fee that would have evicted the cheapest pending
        /// transaction.
        fee_needed: Option<u64>,
    },
    /// Another pending transaction holds this nonce and this one does not
    /// pay enough more to replace it.
    ReplacementUnderpriced {
        /// The nonce.
        nonce: u64,
        /// The pending transaction holding it.
        existing: Hash,
        /// The least fee that replaces it.
        needed: u64,
    },
    /// The transaction breaks a rule of the chain's state: a staking rule,
    /// the minimum fee or the existential deposit.
    Rule(StateError),
}

impl Rejection {
    /// The stable error code the RPC returns.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::TooLarge { .. } => "too_large",
            Rejection::Malformed(_) => "malformed_transaction",
            Rejection::WrongChain { .. } => "wrong_chain",
            Rejection::MemoTooLong { .. } => "memo_too_long",
            Rejection::Overflow => "overflow",
            Rejection::Duplicate(_) => "duplicate",
            Rejection::BadNonce { .. } => "bad_nonce",
            Rejection::NonceTooFar { .. } => "nonce_too_far",
            Rejection::SenderFull { .. } => "sender_pending_full",
            Rejection::InsufficientFunds { .. } => "insufficient_funds",
            Rejection::BadSignature => "bad_signature",
            Rejection::Full { .. } => "mempool_full",
            Rejection::ReplacementUnderpriced { .. } => "replacement_underpriced",
            Rejection::Rule(error) => error.code().unwrap_or("invalid_transaction"),
        }
    }

    /// Whether no honest peer could have forwarded the transaction: it
    /// does not decode, is too large, or its signature is bad. A gossip
    /// batch holding one is rejected and its sender punished; the other
    /// rejections depend on this node's view (nonce, funds, a full pool).
    pub fn is_malicious(&self) -> bool {
        matches!(
            self,
            Rejection::TooLarge { .. } | Rejection::Malformed(_) | Rejection::BadSignature
        )
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::TooLarge { len } => write!(
                f,
                "transaction is {len} bytes, the limit is {TRANSACTION_BYTES_MAX}"
            ),
            Rejection::Malformed(reason) => write!(
                f,
                "transaction bytes do not decode ({reason}); send the hex of a canonical signed transaction"
            ),
            Rejection::WrongChain { expected, got } => write!(
                f,
                "transaction is signed for chain {got}, this node runs {expected}; sign it for {expected}"
            ),
            Rejection::MemoTooLong { len } => {
                write!(f, "memo is {len} bytes, the limit is {MEMO_BYTES_MAX}")
            }
            Rejection::Overflow => write!(f, "amount plus fee overflows a u64"),
            Rejection::Duplicate(what) => write!(f, "{what}"),
            Rejection::BadNonce { expected, got } => write!(
                f,
                "nonce {got} is below the account's next nonce {expected}; use next_nonce from /account"
            ),
            Rejection::NonceTooFar {
                committed,
                got,
                window,
            } => write!(
                f,
                "nonce {got} is too far above the account's committed nonce {committed}: a sender may have {window} transactions pending, so the nonce must be below {}; send the missing nonces first, or wait for pending ones to commit",
                committed.saturating_add(*window)
            ),
            Rejection::SenderFull { pending, max } => write!(
                f,
                "the sender has {pending} transactions pending, the most this node keeps per sender is {max}; wait for some to commit"
            ),
            Rejection::InsufficientFunds { have, need } => write!(
                f,
                "insufficient funds: balance {have}, need {need} (amount plus fee plus pending transfers)"
            ),
            Rejection::BadSignature => write!(
                f,
                "signature does not verify for the sender's public key; sign the transaction with the sender's key"
            ),
            Rejection::Full {
                count,
                bytes,
                fee_needed,
            } => match fee_needed {
                Some(fee) => write!(
                    f,
                    "mempool full ({count} transactions, {bytes} bytes); a fee of at least {fee} would take the place of the cheapest, or retry later"
                ),
                None => write!(
                    f,
                    "mempool full ({count} transactions, {bytes} bytes); retry later"
                ),
            },
            Rejection::Rule(error) => write!(f, "{error}"),
            Rejection::ReplacementUnderpriced {
                nonce,
                existing,
                needed,
            } => write!(
                f,
                "nonce {nonce} is taken by pending transaction {existing}; to replace it, sign the same nonce with a fee of at least {needed}"
            ),
        }
    }
}

/// Most transactions one admission evicts to make room (each with its
/// sender's later nonces).
pub const EVICTIONS_PER_ADMISSION_MAX: u64 = 16;

/// How much more (percent) a transaction must pay to replace a pending one
/// of the same sender and nonce.
pub const REPLACEMENT_FEE_BUMP_PERCENT: u64 = 10;

/// The least fee that replaces a pending transaction paying `fee`: 10%
/// more, and at least 1 more.
pub fn replacement_fee(fee: u64) -> u64 {
    fee.saturating_add((fee.saturating_mul(REPLACEMENT_FEE_BUMP_PERCENT) / 100).max(1))
}

/// Caps of the mempool.
#[derive(Clone, Copy, Debug)]
pub struct MempoolLimits {
    /// Most pending transactions.
    pub transactions_max: usize,
    /// Most pending bytes.
    pub bytes_max: usize,
    /// The least fee this node admits (`mempool.min_fee`); the chain's
    /// minimum applies if it is higher.
    pub min_fee: u64,
}

/// Per-sender policy of the mempool (node-local).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderLimits {
    /// Most pending transactions of one sender (`mempool.sender_pending_max`);
    /// also how far above the committed nonce a pending nonce may be.
    pub pending_max: usize,
    /// How long a queued transaction may wait for its missing nonce
    /// (`mempool.ttl_ms`).
    pub queued_ttl: Duration,
}

impl Default for SenderLimits {
    fn default() -> Self {
        SenderLimits {
            pending_max: SENDER_PENDING_MAX_DEFAULT,
            queued_ttl: QUEUED_TTL_DEFAULT,
        }
    }
}

/// Transactions that left the pool without being committed, by reason
/// (`cairn_mempool_dropped_total{reason}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// Evicted from a full pool for a better-paying transaction, with the
    /// sender's later nonces that depended on them.
    pub evicted: u64,
    /// Queued longer than the TTL without becoming executable.
    pub expired: u64,
    /// Made invalid by a committed block (a stale nonce, spending the
    /// balance no longer covers, a staking rule).
    pub invalidated: u64,
    /// Replaced by a transaction of the same sender and nonce paying more.
    pub replaced: u64,
}

impl DropCounts {
    /// `(reason label, count)` for each reason.
    pub fn by_reason(&self) -> [(&'static str, u64); 4] {
        [
            ("evicted", self.evicted),
            ("expired", self.expired),
            ("invalidated", self.invalidated),
            ("replaced", self.replaced),
        ]
    }
}

/// Most drop reports queued for listeners ([`Mempool::with_drop_reports`]);
/// a listener that falls further behind misses some (and is told so).
pub const DROP_REPORTS_MAX: usize = 4_096;

/// A transaction that left the pool without being committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DroppedTransaction {
    /// Its hash.
    pub hash: Hash,
    /// Why: `evicted`, `expired`, `invalidated` or `replaced` (the labels
    /// of [`DropCounts::by_reason`]).
    pub reason: &'static str,
}

/// One pending transaction.
#[derive(Clone, Debug)]
struct Pending {
    transaction: SignedTransaction,
    size_bytes: usize,
    sender: Address,
    arrival: u64,
    /// When it was admitted (the queued TTL counts from here).
    admitted: Instant,
}

/// A sender's pending transactions.
#[derive(Default, Debug)]
struct SenderQueue {
    /// Nonce → transaction hash.
    by_nonce: BTreeMap<u64, Hash>,
    /// Sum of amount plus fee over the queue.
    spending: u64,
    /// The committed nonce `executable` counts from.
    base_nonce: u64,
    /// How many nonces from `base_nonce` on are pending without a gap.
    executable: usize,
}

impl SenderQueue {
    /// The first nonce this sender's queued transactions wait for, if any
    /// are queued.
    fn missing_nonce(&self) -> Option<u64> {
        let first_gap = self.base_nonce.saturating_add(self.executable as u64);
        self.by_nonce.range(first_gap..).next().map(|_| first_gap)
    }

    /// Counts the run of nonces from `base_nonce` on again.
    fn count_executable(&mut self, base_nonce: u64) {
        self.base_nonce = base_nonce;
        let mut expected = base_nonce;
        let mut executable = 0usize;
        for nonce in self.by_nonce.range(base_nonce..).map(|(nonce, _)| *nonce) {
            if nonce != expected {
                break;
            }
            executable += 1;
            expected = expected.saturating_add(1);
        }
        self.executable = executable;
    }
}

/// What the mempool holds of one sender.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SenderPending {
    /// Transactions that can run now, in nonce order from the committed
    /// nonce.
    pub executable: usize,
    /// Transactions waiting behind a missing nonce.
    pub queued: usize,
    /// The nonce the queued ones wait for.
    pub missing_nonce: Option<u64>,
}

/// Transactions accepted and not yet committed.
pub struct Mempool {
    chain_id: ChainId,
    limits: MempoolLimits,
    /// The chain's fee rules.
    fee_params: FeeParams,
    /// The least fee admitted: the chain's, or this node's if higher.
    min_fee: u64,
    pending: HashMap<Hash, Pending>,
    senders: HashMap<Address, SenderQueue>,
    /// Cheapest transactions evicted for better-paying ones, counted.
    evicted: u64,
    /// Per-sender limits.
    sender_limits: SenderLimits,
    /// Transactions dropped, by reason.
    dropped: DropCounts,
    /// The earliest time [`Mempool::expire_queued`] walks the queue again.
    next_expiry_check: Option<Instant>,
    /// Every pending transaction by (fee, newest first): the first is the
    /// one a better-paying newcomer evicts when the pool is full.
    by_fee: BTreeSet<(u64, std::cmp::Reverse<u64>, Hash)>,
    /// Every pending transaction by arrival, oldest first
    /// ([`Mempool::oldest`]).
    by_arrival: BTreeMap<u64, Hash>,
    next_arrival: u64,
    bytes: usize,
    /// Sum of [`SenderQueue::executable`] over the senders.
    executable: usize,
    verified: HashSet<Hash>,
    verified_order: VecDeque<Hash>,
    /// Where drops are reported, if anyone listens.
    drop_reports: Option<tokio::sync::broadcast::Sender<DroppedTransaction>>,
}

/// A transaction that passed the stateless checks and whose signature
/// verified, ready for [`Mempool::insert_prepared`].
pub struct Prepared(Candidate);

/// Checks that need neither the signature nor the account state; the
/// stateless rules are `cairn-state`'s, defined once for every path.
fn cheap_checks(chain_id: &ChainId, bytes: &[u8]) -> Result<Candidate, Rejection> {
    if bytes.len() > TRANSACTION_BYTES_MAX {
        return Err(Rejection::TooLarge { len: bytes.len() });
    }
    let transaction = SignedTransaction::from_bytes(bytes)
        .map_err(|error| Rejection::Malformed(error.to_string()))?;
    cairn_state::check_stateless(chain_id, &transaction).map_err(|error| match error {
        StateError::WrongChain { expected, got } => Rejection::WrongChain { expected, got },
        StateError::MemoTooLong { len, .. } => Rejection::MemoTooLong { len },
        StateError::Overflow { .. } => Rejection::Overflow,
        error @ StateError::BadStakingTransaction { .. } => Rejection::Rule(error),
        other => Rejection::Malformed(other.to_string()),
    })?;
    let hash = transaction.hash();
    let signing_bytes = transaction.transaction.signing_bytes();
    Ok(Candidate {
        transaction,
        hash,
        size_bytes: bytes.len(),
        signing_bytes,
    })
}

/// What [`Mempool::precheck`] says of one transaction before its
/// signature is verified.
#[derive(Debug)]
pub enum Precheck {
    /// Verify its signature, then admit it if it still passes.
    Verify,
    /// This node verified its signature before; admit it without
    /// verifying again.
    Verified,
    /// Refused without verifying the signature.
    Refuse(Rejection),
}

/// What [`Mempool::admission_checks`] found, for the insertion.
struct AdmissionPlan {
    sender: Address,
    committed_nonce: u64,
    /// The pending transaction of the same nonce this one replaces, and
    /// its amount plus fee.
    replaced: Option<(Hash, u64)>,
    /// The sender's pending spending with this transaction.
    need: u64,
}

/// A transaction that passed the cheap checks and awaits its signature.
struct Candidate {
    transaction: SignedTransaction,
    hash: Hash,
    size_bytes: usize,
    signing_bytes: Vec<u8>,
}

impl Mempool {
    /// An empty mempool for `chain_id`.
    pub fn new(chain_id: ChainId, limits: MempoolLimits) -> Mempool {
        Mempool {
            chain_id,
            limits,
            fee_params: FeeParams::NONE,
            min_fee: 0,
            pending: HashMap::new(),
            senders: HashMap::new(),
            by_fee: BTreeSet::new(),
            by_arrival: BTreeMap::new(),
            drop_reports: None,
            evicted: 0,
            sender_limits: SenderLimits::default(),
            dropped: DropCounts::default(),
            next_expiry_check: None,
            next_arrival: 0,
            bytes: 0,
            executable: 0,
            verified: HashSet::new(),
            verified_order: VecDeque::new(),
        }
    }

    /// This mempool under the chain's fee rules, admitting no fee below
    /// `node_min_fee` (the node's own minimum; the chain's applies if it is
    /// higher).
    pub fn with_fee_rules(mut self, fee_params: FeeParams, node_min_fee: u64) -> Mempool {
        self.fee_params = fee_params;
        self.min_fee = node_min_fee.max(fee_params.min_fee);
        self
    }

    /// The least fee this mempool admits.
    pub fn min_fee(&self) -> u64 {
        self.min_fee
    }

    /// This mempool with `limits` per sender.
    pub fn with_sender_limits(mut self, limits: SenderLimits) -> Mempool {
        self.set_sender_limits(limits);
        self
    }

    /// Sets the per-sender limits (applied to transactions admitted from
    /// now on; `pending_max` is clamped to 1..=[`SENDER_PENDING_LIMIT_MAX`]).
    pub fn set_sender_limits(&mut self, limits: SenderLimits) {
        self.sender_limits = SenderLimits {
            pending_max: limits.pending_max.clamp(1, SENDER_PENDING_LIMIT_MAX),
            queued_ttl: limits.queued_ttl,
        };
    }

    /// The per-sender limits.
    pub fn sender_limits(&self) -> SenderLimits {
        self.sender_limits
    }

    /// Transactions dropped so far, by reason.
    pub fn dropped(&self) -> DropCounts {
        self.dropped
    }

    /// The least fee a transaction needs to enter now: the minimum, or,
    /// when the pool is at its count cap, one more than the cheapest
    /// pending fee (a newcomer must evict it).
    pub fn entry_fee(&self) -> u64 {
        if self.pending.len() >= self.limits.transactions_max {
            if let Some((fee, _, _)) = self.by_fee.first() {
                return fee.saturating_add(1).max(self.min_fee);
            }
        }
        self.min_fee
    }

    /// A pending transaction by hash.
    pub fn get(&self, hash: &Hash) -> Option<&SignedTransaction> {
        self.pending.get(hash).map(|entry| &entry.transaction)
    }

    /// Reports every transaction that leaves the pool uncommitted on
    /// `sender` (a bounded broadcast channel: sending never waits).
    pub fn with_drop_reports(
        mut self,
        sender: tokio::sync::broadcast::Sender<DroppedTransaction>,
    ) -> Mempool {
        self.drop_reports = Some(sender);
        self
    }

    fn report_drop(&self, hash: Hash, reason: &'static str) {
        if let Some(sender) = &self.drop_reports {
            // No listener is not an error.
            let _ = sender.send(DroppedTransaction { hash, reason });
        }
    }

    /// At most `limit` pending transactions, oldest first (by admission):
    /// hash, transaction, the missing nonce it waits behind if queued, and
    /// how long it has been pending. O(limit).
    pub fn oldest(
        &self,
        limit: usize,
        now: Instant,
    ) -> Vec<(Hash, SignedTransaction, Option<u64>, Duration)> {
        self.by_arrival
            .values()
            .filter_map(|hash| {
                let entry = self.pending.get(hash)?;
                Some((
                    *hash,
                    entry.transaction.clone(),
                    self.queued_behind(hash),
                    now.saturating_duration_since(entry.admitted),
                ))
            })
            .take(limit)
            .collect()
    }

    /// Pending transactions.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Pending bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Pending transactions that can run now: each sender's run of nonces
    /// from its committed nonce. A block can be built from these alone.
    pub fn executable_len(&self) -> usize {
        self.executable
    }

    /// Pending transactions waiting behind a missing nonce.
    pub fn queued_len(&self) -> usize {
        self.pending.len().saturating_sub(self.executable)
    }

    /// What is pending of `address`.
    pub fn sender_pending(&self, address: &Address) -> SenderPending {
        self.senders
            .get(address)
            .map_or_else(SenderPending::default, |queue| SenderPending {
                executable: queue.executable,
                queued: queue.by_nonce.len().saturating_sub(queue.executable),
                missing_nonce: queue.missing_nonce(),
            })
    }

    /// For a pending transaction that waits behind a missing nonce, that
    /// nonce; `None` if it is executable or not pending.
    pub fn queued_behind(&self, hash: &Hash) -> Option<u64> {
        let entry = self.pending.get(hash)?;
        let queue = self.senders.get(&entry.sender)?;
        let first_gap = queue.base_nonce.saturating_add(queue.executable as u64);
        (entry.transaction.transaction.nonce > first_gap).then_some(first_gap)
    }

    /// Whether `hash` is pending.
    pub fn contains(&self, hash: &Hash) -> bool {
        self.pending.contains_key(hash)
    }

    /// The next nonce of `address` counting its pending transactions.
    pub fn next_nonce(&self, address: &Address, accounts: &impl AccountView) -> u64 {
        let (_, committed) = accounts.balance_and_nonce(address);
        let mut next = committed;
        if let Some(queue) = self.senders.get(address) {
            for nonce in queue.by_nonce.keys() {
                if *nonce == next {
                    next = next.saturating_add(1);
                } else if *nonce > next {
                    break;
                }
            }
        }
        next
    }

    /// Whether the signature of the transaction with `hash` was verified by
    /// this node (pending, or recently pending).
    pub fn signature_verified(&self, hash: &Hash) -> bool {
        self.pending.contains_key(hash) || self.verified.contains(hash)
    }

    /// Admits one transaction given as canonical bytes.
    pub fn add_bytes(
        &mut self,
        bytes: &[u8],
        accounts: &impl AccountView,
    ) -> Result<Hash, Rejection> {
        self.add_batch(&[bytes], accounts)
            .pop()
            .unwrap_or(Err(Rejection::Malformed("empty batch".into())))
    }

    /// Admits a batch of transactions given as canonical bytes, verifying
    /// the signatures of those that pass the cheap checks in one batch.
    /// One result per input, in order.
    pub fn add_batch(
        &mut self,
        batch: &[&[u8]],
        accounts: &impl AccountView,
    ) -> Vec<Result<Hash, Rejection>> {
        let prepared = Mempool::prepare_batch(&self.chain_id, batch, |transactions, hashes| {
            self.precheck(transactions, hashes, accounts)
        });
        self.insert_prepared(prepared, accounts)
    }

    /// The checks of admission that need the committed state and the pool
    /// but not the signature, for transactions that decoded: a pending
    /// duplicate, the nonce window, the per-sender limit, the replacement
    /// bump, funds, the fee rules, and a full pool whose cheapest fee this
    /// one does not beat (the room left is taken by the earlier
    /// transactions of the batch that pass). Each refusal here is one
    /// [`Mempool::insert_prepared`] would make against the same state
    /// (the room aside: a batch whose earlier transactions then fail
    /// their signature leaves room unused); the survivors are marked for
    /// verification unless this node verified their signature before.
    pub fn precheck(
        &self,
        transactions: &[&SignedTransaction],
        hashes: &[Hash],
        accounts: &impl AccountView,
    ) -> Vec<Precheck> {
        // Room left for new transactions, taken by those of this batch
        // that pass: once it is gone, a newcomer must beat the cheapest
        // pending fee (else insertion refuses it as full, after
        // verification).
        let mut room = self
            .limits
            .transactions_max
            .saturating_sub(self.pending.len());
        transactions
            .iter()
            .zip(hashes)
            .map(|(transaction, hash)| {
                if self.pending.contains_key(hash) {
                    return Precheck::Refuse(Rejection::Duplicate(format!(
                        "transaction {hash} is already pending"
                    )));
                }
                let body = &transaction.transaction;
                let plan = match self.admission_checks(body, accounts) {
                    Ok(plan) => plan,
                    Err(rejection) => return Precheck::Refuse(rejection),
                };
                if plan.replaced.is_none() && room > 0 {
                    room -= 1;
                } else if plan.replaced.is_none() {
                    let cheapest = self.cheapest_of_others(&plan.sender);
                    if cheapest.is_none_or(|(fee, _)| body.fee <= fee) {
                        return Precheck::Refuse(Rejection::Full {
                            count: self.pending.len(),
                            bytes: self.bytes,
                            fee_needed: cheapest.map(|(fee, _)| fee.saturating_add(1)),
                        });
                    }
                }
                if self.verified.contains(hash) {
                    Precheck::Verified
                } else {
                    Precheck::Verify
                }
            })
            .collect()
    }

    /// The part of admission that needs neither the mempool nor the
    /// state: size, decoding, the stateless rules of `cairn-state`
    /// ([`cairn_state::check_stateless`]: chain, memo, overflow), repeats
    /// within the batch, and one ZIP-215 batch verification of the
    /// signatures. `precheck` gets the transactions that passed the cheap
    /// checks (and their hashes) and says, for each, whether to refuse it
    /// before its signature is verified (see [`Mempool::precheck`]), or
    /// that this node verified its signature before (a proposal carried
    /// it): those are not verified again. Run it outside any lock (the
    /// precheck takes the locks it needs), then
    /// [`Mempool::insert_prepared`].
    pub fn prepare_batch(
        chain_id: &ChainId,
        batch: &[&[u8]],
        precheck: impl FnOnce(&[&SignedTransaction], &[Hash]) -> Vec<Precheck>,
    ) -> Vec<Result<Prepared, Rejection>> {
        let mut results: Vec<Option<Result<Prepared, Rejection>>> = Vec::with_capacity(batch.len());
        let mut candidates: Vec<(usize, Candidate)> = Vec::with_capacity(batch.len());
        let mut batch_hashes = HashSet::with_capacity(batch.len());
        for (position, bytes) in batch.iter().enumerate() {
            results.push(None);
            match cheap_checks(chain_id, bytes) {
                Ok(candidate) => {
                    if !batch_hashes.insert(candidate.hash) {
                        results[position] = Some(Err(Rejection::Duplicate(
                            "the same transaction appears twice in this batch".into(),
                        )));
                    } else {
                        candidates.push((position, candidate));
                    }
                }
                Err(rejection) => results[position] = Some(Err(rejection)),
            }
        }
        let verdicts = {
            let transactions: Vec<&SignedTransaction> = candidates
                .iter()
                .map(|(_, candidate)| &candidate.transaction)
                .collect();
            let hashes: Vec<Hash> = candidates
                .iter()
                .map(|(_, candidate)| candidate.hash)
                .collect();
            precheck(&transactions, &hashes)
        };
        let mut unknown: Vec<(usize, Candidate)> = Vec::with_capacity(candidates.len());
        for ((position, candidate), verdict) in candidates.into_iter().zip(
            verdicts
                .into_iter()
                .chain(std::iter::repeat_with(|| Precheck::Verify)),
        ) {
            match verdict {
                Precheck::Refuse(rejection) => results[position] = Some(Err(rejection)),
                Precheck::Verified => results[position] = Some(Ok(Prepared(candidate))),
                Precheck::Verify => unknown.push((position, candidate)),
            }
        }
        let mut verifier = BatchVerifier::with_capacity(unknown.len());
        for (_, candidate) in &unknown {
            verifier.push(
                candidate.transaction.transaction.sender,
                candidate.transaction.signature,
                &candidate.signing_bytes,
            );
        }
        let verdicts = verifier.verify();
        for ((position, candidate), signature_ok) in unknown.into_iter().zip(verdicts) {
            results[position] = Some(if signature_ok {
                Ok(Prepared(candidate))
            } else {
                Err(Rejection::BadSignature)
            });
        }
        results
            .into_iter()
            .map(|result| result.unwrap_or(Err(Rejection::Malformed("not processed".into()))))
            .collect()
    }

    /// The rest of admission for the output of [`Mempool::prepare_batch`]:
    /// duplicates of pending transactions, nonce, funds and caps.
    pub fn insert_prepared(
        &mut self,
        prepared: Vec<Result<Prepared, Rejection>>,
        accounts: &impl AccountView,
    ) -> Vec<Result<Hash, Rejection>> {
        prepared
            .into_iter()
            .map(|entry| {
                entry.and_then(|Prepared(candidate)| self.insert_verified(candidate, accounts))
            })
            .collect()
    }

    /// The checks of `body` against the committed state and the pool that
    /// need no signature: nonce (not stale, within the sender's window),
    /// the replacement bump for a pending nonce, the per-sender limit,
    /// funds over the sender's pending spending, and the fee rules.
    fn admission_checks(
        &self,
        body: &cairn_types::Transaction,
        accounts: &impl AccountView,
    ) -> Result<AdmissionPlan, Rejection> {
        let sender = body.sender_address();
        let (balance, committed_nonce) = accounts.balance_and_nonce(&sender);
        if body.nonce < committed_nonce {
            return Err(Rejection::BadNonce {
                expected: committed_nonce,
                got: body.nonce,
            });
        }
        let window = self.sender_limits.pending_max as u64;
        if body.nonce - committed_nonce >= window {
            return Err(Rejection::NonceTooFar {
                committed: committed_nonce,
                got: body.nonce,
                window,
            });
        }
        let queue = self.senders.get(&sender);
        // Replace-by-fee: a transaction for a nonce already pending takes
        // its place if it pays at least REPLACEMENT_FEE_BUMP_PERCENT more.
        let mut replaced: Option<(Hash, u64)> = None;
        if let Some(existing) = queue.and_then(|queue| queue.by_nonce.get(&body.nonce)) {
            let old = self
                .pending
                .get(existing)
                .map(|entry| &entry.transaction.transaction);
            let old_fee = old.map_or(0, |old| old.fee);
            let needed = replacement_fee(old_fee);
            if body.fee < needed {
                return Err(Rejection::ReplacementUnderpriced {
                    nonce: body.nonce,
                    existing: *existing,
                    needed,
                });
            }
            replaced = Some((*existing, old.and_then(|old| old.total_cost()).unwrap_or(0)));
        }
        let sender_pending = queue.map_or(0, |queue| queue.by_nonce.len());
        if replaced.is_none() && sender_pending >= self.sender_limits.pending_max {
            return Err(Rejection::SenderFull {
                pending: sender_pending,
                max: self.sender_limits.pending_max,
            });
        }
        let pending_spending = queue
            .map_or(0, |queue| queue.spending)
            .saturating_sub(replaced.map_or(0, |(_, cost)| cost));
        let cost = body.total_cost().ok_or(Rejection::Overflow)?;
        let need = pending_spending
            .checked_add(cost)
            .ok_or(Rejection::Overflow)?;
        if need > balance {
            return Err(Rejection::InsufficientFunds {
                have: balance,
                need,
            });
        }
        self.check_fee_rules(body, balance - need, accounts)
            .map_err(Rejection::Rule)?;
        Ok(AdmissionPlan {
            sender,
            committed_nonce,
            replaced,
            need,
        })
    }

    /// State checks and insertion of a transaction whose signature verified.
    fn insert_verified(
        &mut self,
        candidate: Candidate,
        accounts: &impl AccountView,
    ) -> Result<Hash, Rejection> {
        if self.pending.contains_key(&candidate.hash) {
            return Err(Rejection::Duplicate(format!(
                "transaction {} is already pending",
                candidate.hash
            )));
        }
        let body = &candidate.transaction.transaction;
        let AdmissionPlan {
            sender,
            committed_nonce,
            replaced,
            need,
        } = self.admission_checks(body, accounts)?;
        if !body.is_transfer() {
            accounts
                .check_staking(&candidate.transaction)
                .map_err(Rejection::Rule)?;
        }
        let freed = replaced
            .and_then(|(hash, _)| self.pending.get(&hash))
            .map_or(0, |entry| entry.size_bytes);
        let mut evictions = 0;
        while (replaced.is_none() && self.pending.len() >= self.limits.transactions_max)
            || self
                .bytes
                .saturating_sub(freed)
                .saturating_add(candidate.size_bytes)
                > self.limits.bytes_max
        {
            // Full: the cheapest pending transaction (and its sender's
            // later nonces, which depend on it) makes room for one that
            // pays more, a few per admission at most.
            let cheapest = self.cheapest_of_others(&sender);
            let evictable = cheapest
                .filter(|(fee, _)| body.fee > *fee && evictions < EVICTIONS_PER_ADMISSION_MAX);
            let Some((_, victim)) = evictable else {
                return Err(Rejection::Full {
                    count: self.pending.len(),
                    bytes: self.bytes,
                    fee_needed: cheapest.map(|(fee, _)| fee.saturating_add(1)),
                });
            };
            let removed = self.evict_with_later_nonces(&victim, "evicted");
            self.dropped.evicted = self.dropped.evicted.saturating_add(removed);
            evictions += 1;
        }
        self.evicted = self.evicted.saturating_add(evictions);
        if let Some((old, _)) = replaced {
            self.remove(&old);
            self.report_drop(old, "replaced");
            self.dropped.replaced = self.dropped.replaced.saturating_add(1);
        }
        let queue = self.senders.entry(sender).or_default();
        queue.by_nonce.insert(body.nonce, candidate.hash);
        queue.spending = need;
        let executable_before = queue.executable;
        if queue.base_nonce != committed_nonce || queue.by_nonce.len() == 1 {
            queue.count_executable(committed_nonce);
        } else if body.nonce == committed_nonce.saturating_add(queue.executable as u64) {
            // The missing nonce arrived: the run grows through it and any
            // queued transactions right behind it.
            let mut next = body.nonce;
            while queue.by_nonce.contains_key(&next) {
                queue.executable += 1;
                next = next.saturating_add(1);
            }
        }
        self.executable = self
            .executable
            .saturating_sub(executable_before)
            .saturating_add(queue.executable);
        let arrival = self.next_arrival;
        self.next_arrival = self.next_arrival.saturating_add(1);
        self.by_fee.insert((
            candidate.transaction.transaction.fee,
            std::cmp::Reverse(arrival),
            candidate.hash,
        ));
        self.by_arrival.insert(arrival, candidate.hash);
        self.bytes = self.bytes.saturating_add(candidate.size_bytes);
        self.pending.insert(
            candidate.hash,
            Pending {
                transaction: candidate.transaction,
                size_bytes: candidate.size_bytes,
                sender,
                arrival,
                admitted: Instant::now(),
            },
        );
        Ok(candidate.hash)
    }

    /// The cheapest pending transaction of a sender other than `sender`
    /// (a newcomer never evicts its own sender's earlier nonces, which it
    /// depends on): `(fee, hash)`. Skips at most `sender_pending_max` of
    /// `sender`'s own.
    fn cheapest_of_others(&self, sender: &Address) -> Option<(u64, Hash)> {
        self.by_fee
            .iter()
            .take(self.sender_limits.pending_max.saturating_add(1))
            .find(|(_, _, hash)| {
                self.pending
                    .get(hash)
                    .is_some_and(|entry| entry.sender != *sender)
            })
            .map(|(fee, _, hash)| (*fee, *hash))
    }

    /// The fee rules of the chain and of this node at admission (the
    /// chain's are checked again in blocks): the minimum fee, a known
    /// sender, no dust left behind (`left` is the balance after this and
    /// the sender's pending transactions) and no account created with less
    /// than the deposit. A recipient that only a pending transaction funds
    /// counts as new.
    fn check_fee_rules(
        &self,
        body: &cairn_types::Transaction,
        left: u64,
        accounts: &impl AccountView,
    ) -> Result<(), StateError> {
        let (min_fee, deposit) = (self.min_fee, self.fee_params.existential_deposit);
        if body.fee < min_fee {
            return Err(StateError::FeeTooLow {
                fee: body.fee,
                min: min_fee,
            });
        }
        if deposit == 0 {
            return Ok(());
        }
        let sender = body.sender_address();
        if !accounts.exists(&sender) {
            return Err(StateError::UnknownSender { address: sender });
        }
        let to_self = body.is_transfer() && body.recipient == sender;
        let left = if to_self {
            left.saturating_add(body.amount)
        } else {
            left
        };
        if left != 0 && left < deposit {
            return Err(StateError::BelowExistentialDeposit {
                what: "the sender",
                balance: left,
                min: deposit,
                hint: "spend all of the balance or leave at least the deposit",
            });
        }
        if body.is_transfer()
            && !to_self
            && body.amount < deposit
            && !accounts.exists(&body.recipient)
        {
            return Err(StateError::BelowExistentialDeposit {
                what: "the new account",
                balance: body.amount,
                min: deposit,
                hint: "an address without an account receives at least the deposit",
            });
        }
        Ok(())
    }

    /// Picks transactions for a block, within `transactions_max` and
    /// `bytes_max`: the highest fees first, never out of a sender's nonce
    /// order. A heap holds each sender's next executable transaction,
    /// ordered by fee (then arrival); taking one puts that sender's next
    /// nonce in its place. Cost per reap: O(senders) to fill the heap, then
    /// O(log senders) per transaction taken. A transaction too large for
    /// what is left of `bytes_max` ends its sender's run in this block.
    /// Nothing is removed.
    pub fn reap(
        &self,
        transactions_max: usize,
        bytes_max: usize,
        accounts: &impl AccountView,
    ) -> Vec<SignedTransaction> {
        self.reap_with_hashes(transactions_max, bytes_max, accounts)
            .into_iter()
            .map(|(_, transaction)| transaction)
            .collect()
    }

    /// [`Mempool::reap`], each transaction with its hash (computed at
    /// admission, so a proposer hashes nothing again).
    pub fn reap_with_hashes(
        &self,
        transactions_max: usize,
        bytes_max: usize,
        accounts: &impl AccountView,
    ) -> Vec<(Hash, SignedTransaction)> {
        use std::{cmp::Reverse, collections::BinaryHeap};
        // (fee, earliest arrival first, sender, nonce)
        type Head = (u64, Reverse<u64>, Address, u64);
        let head = |sender: &Address, nonce: u64| -> Option<Head> {
            let hash = self.senders.get(sender)?.by_nonce.get(&nonce)?;
            let entry = self.pending.get(hash)?;
            Some((
                entry.transaction.transaction.fee,
                Reverse(entry.arrival),
                *sender,
                nonce,
            ))
        };
        let mut heap: BinaryHeap<Head> = self
            .senders
            .keys()
            .filter_map(|sender| head(sender, accounts.balance_and_nonce(sender).1))
            .collect();
        let mut picked = Vec::new();
        let mut picked_bytes = 0usize;
        while let Some((_, _, sender, nonce)) = heap.pop() {
            if picked.len() >= transactions_max {
                break;
            }
            let Some((hash, entry)) = self
                .senders
                .get(&sender)
                .and_then(|queue| queue.by_nonce.get(&nonce))
                .and_then(|hash| Some((*hash, self.pending.get(hash)?)))
            else {
                continue;
            };
            if picked_bytes.saturating_add(entry.size_bytes) > bytes_max {
                continue;
            }
            picked_bytes += entry.size_bytes;
            picked.push((hash, entry.transaction.clone()));
            if let Some(next) = head(&sender, nonce.saturating_add(1)) {
                heap.push(next);
            }
        }
        picked
    }

    /// Removes the transactions of a committed block, then drops pending
    /// transactions the new state makes invalid (stale nonces, spending the
    /// balance no longer covers, a sender's next staking transaction that
    /// breaks a staking rule now).
    pub fn remove_committed(&mut self, committed: &[Hash], accounts: &impl AccountView) {
        self.remove_committed_of(committed, None, accounts);
    }

    /// [`Mempool::remove_committed`] that rechecks only the pending
    /// transactions of `changed` senders (`None`: of every sender). A block
    /// of transfers alone lowers no balance and moves no nonce but its
    /// senders', so only theirs can have become invalid; a block that
    /// changes the staking state (a staking transaction, evidence) can
    /// make any pending staking transaction invalid, and rechecks all.
    pub fn remove_committed_of(
        &mut self,
        committed: &[Hash],
        changed: Option<&[Address]>,
        accounts: &impl AccountView,
    ) {
        for hash in committed {
            self.remove(hash);
            self.remember_verified(*hash);
        }
        let senders: Vec<Address> = match changed {
            Some(changed) => {
                let mut changed = changed.to_vec();
                changed.sort_unstable();
                changed.dedup();
                changed.retain(|sender| self.senders.contains_key(sender));
                changed
            }
            None => self.senders.keys().copied().collect(),
        };
        for sender in senders {
            self.recheck_sender(&sender, accounts);
        }
    }

    /// The sender of each of a block's transactions (`hashes[i]` is the
    /// hash of `transactions[i]`): from the pending entry when this pool
    /// holds it (its address was computed at admission), else derived from
    /// the key.
    pub fn senders_of(&self, hashes: &[Hash], transactions: &[SignedTransaction]) -> Vec<Address> {
        hashes
            .iter()
            .zip(transactions)
            .map(|(hash, transaction)| {
                self.pending.get(hash).map_or_else(
                    || transaction.transaction.sender.address(),
                    |entry| entry.sender,
                )
            })
            .collect()
    }

    fn recheck_sender(&mut self, sender: &Address, accounts: &impl AccountView) {
        let (balance, committed_nonce) = accounts.balance_and_nonce(sender);
        let Some(queue) = self.senders.get(sender) else {
            return;
        };
        let mut keep_spending: u64 = 0;
        let mut drop_hashes = Vec::new();
        for (nonce, hash) in &queue.by_nonce {
            let entry = self.pending.get(hash);
            let cost = entry.and_then(|entry| entry.transaction.transaction.total_cost());
            let fits = cost
                .and_then(|cost| keep_spending.checked_add(cost))
                .filter(|total| *total <= balance);
            // The sender's next staking transaction is judged against the
            // new state: one a block made invalid (a key taken meanwhile,
            // stake already unbonded) would otherwise block the sender.
            let staking_broken = *nonce == committed_nonce
                && entry.is_some_and(|entry| {
                    !entry.transaction.transaction.is_transfer()
                        && accounts.check_staking(&entry.transaction).is_err()
                });
            match fits {
                Some(total) if *nonce >= committed_nonce && !staking_broken => {
                    keep_spending = total
                }
                _ => drop_hashes.push(*hash),
            }
        }
        self.dropped.invalidated = self
            .dropped
            .invalidated
            .saturating_add(drop_hashes.len() as u64);
        for hash in drop_hashes {
            self.remove(&hash);
            self.report_drop(hash, "invalidated");
        }
        if let Some(queue) = self.senders.get_mut(sender) {
            queue.spending = keep_spending;
            let executable_before = queue.executable;
            queue.count_executable(committed_nonce);
            self.executable = self
                .executable
                .saturating_sub(executable_before)
                .saturating_add(queue.executable);
        }
    }

    /// Removes `hash` and the pending transactions of its sender with
    /// higher nonces (they could not run without it); returns how many
    /// were removed.
    fn evict_with_later_nonces(&mut self, hash: &Hash, reason: &'static str) -> u64 {
        let Some(entry) = self.pending.get(hash) else {
            return 0;
        };
        let (sender, nonce) = (entry.sender, entry.transaction.transaction.nonce);
        let doomed: Vec<Hash> = self
            .senders
            .get(&sender)
            .map(|queue| {
                queue
                    .by_nonce
                    .range(nonce..)
                    .map(|(_, hash)| *hash)
                    .collect()
            })
            .unwrap_or_default();
        let removed = doomed.len() as u64;
        for hash in doomed {
            self.remove(&hash);
            self.report_drop(hash, reason);
        }
        removed
    }

    /// Drops queued transactions (waiting behind a missing nonce) admitted
    /// more than the queued TTL before `now`; executable ones stay. Walks
    /// the senders with queued transactions at most once per
    /// [`EXPIRY_CHECK_INTERVAL`] (`O(senders + queued)` per walk). Returns
    /// how many were dropped.
    pub fn expire_queued(&mut self, now: Instant) -> usize {
        if self.next_expiry_check.is_some_and(|next| now < next) {
            return 0;
        }
        self.next_expiry_check = now.checked_add(EXPIRY_CHECK_INTERVAL);
        let ttl = self.sender_limits.queued_ttl;
        let mut expired = Vec::new();
        for queue in self.senders.values() {
            let first_gap = queue.base_nonce.saturating_add(queue.executable as u64);
            for hash in queue.by_nonce.range(first_gap..).map(|(_, hash)| hash) {
                if self
                    .pending
                    .get(hash)
                    .is_some_and(|entry| now.saturating_duration_since(entry.admitted) > ttl)
                {
                    expired.push(*hash);
                }
            }
        }
        for hash in &expired {
            self.remove(hash);
            self.report_drop(*hash, "expired");
        }
        self.dropped.expired = self.dropped.expired.saturating_add(expired.len() as u64);
        expired.len()
    }

    /// Cheapest transactions evicted so far (each with its sender's later
    /// nonces) for better-paying ones.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    fn remove(&mut self, hash: &Hash) {
        let Some(entry) = self.pending.remove(hash) else {
            return;
        };
        self.bytes = self.bytes.saturating_sub(entry.size_bytes);
        self.by_arrival.remove(&entry.arrival);
        self.by_fee.remove(&(
            entry.transaction.transaction.fee,
            std::cmp::Reverse(entry.arrival),
            *hash,
        ));
        let body = &entry.transaction.transaction;
        let mut empty = false;
        if let Some(queue) = self.senders.get_mut(&entry.sender) {
            queue.by_nonce.remove(&body.nonce);
            queue.spending = queue
                .spending
                .saturating_sub(body.total_cost().unwrap_or(0));
            // A removed nonce inside the run cuts it there.
            let run_end = queue.base_nonce.saturating_add(queue.executable as u64);
            if body.nonce >= queue.base_nonce && body.nonce < run_end {
                let executable_after =
                    usize::try_from(body.nonce - queue.base_nonce).unwrap_or(queue.executable);
                self.executable = self
                    .executable
                    .saturating_sub(queue.executable - executable_after);
                queue.executable = executable_after;
            }
            empty = queue.by_nonce.is_empty();
        }
        if empty {
            self.senders.remove(&entry.sender);
        }
    }

    /// Remembers that this node verified the signature of `hash` (a
    /// proposal carried it), so admission does not verify it again.
    pub fn remember_verified(&mut self, hash: Hash) {
        if self.verified.insert(hash) {
            self.verified_order.push_back(hash);
            while self.verified_order.len() > VERIFIED_CACHE_MAX {
                if let Some(old) = self.verified_order.pop_front() {
                    self.verified.remove(&old);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_types::{Keypair, Transaction};

    struct Accounts(HashMap<Address, (u64, u64)>);

    impl AccountView for Accounts {
        fn balance_and_nonce(&self, address: &Address) -> (u64, u64) {
            self.0.get(address).copied().unwrap_or((0, 0))
        }
    }

    fn chain() -> ChainId {
        ChainId::new("mempool-test").unwrap()
    }

    fn transfer(key: &Keypair, nonce: u64, amount: u64) -> Vec<u8> {
        Transaction {
            chain_id: chain(),
            sender: key.public_key(),
            recipient: Address([1; 20]),
            amount,
            fee: 1,
            nonce,
            memo: String::new(),
            kind: cairn_types::TransactionKind::Transfer,
        }
        .sign(key)
        .to_bytes()
    }

    /// The node's minimum fee (above the chain's) and the deposit rules
    /// are applied at admission, with the codes the RPC returns.
    #[test]
    fn fees_below_the_minimum_and_dust_are_refused_at_admission() {
        let (pool, accounts, key) = setup();
        let rules = FeeParams {
            min_fee: 1,
            existential_deposit: 10,
        };
        let mut pool = pool.with_fee_rules(rules, 3);
        assert_eq!(pool.min_fee(), 3);
        let send = |amount, fee, recipient: Address| {
            Transaction {
                chain_id: chain(),
                sender: key.public_key(),
                recipient,
                amount,
                fee,
                nonce: 2,
                memo: String::new(),
                kind: cairn_types::TransactionKind::Transfer,
            }
            .sign(&key)
            .to_bytes()
        };
        let refused = pool.add_bytes(&send(5, 1, Address([1; 20])), &accounts);
        let refused = refused.unwrap_err();
        assert_eq!(refused.code(), "fee_too_low");
        assert!(refused.to_string().contains("minimum fee 3"), "{refused}");
        // Balance 100: sending 90 + fee 3 leaves 7, below the deposit.
        let dust = pool.add_bytes(&send(90, 3, Address([1; 20])), &accounts);
        assert_eq!(dust.unwrap_err().code(), "below_existential_deposit");
        assert!(pool
            .add_bytes(&send(50, 3, Address([1; 20])), &accounts)
            .is_ok());
        // A sender without an account cannot even pay the fee.
        let stranger = Keypair::from_seed(&[77; 32]);
        let unknown = Transaction {
            chain_id: chain(),
            sender: stranger.public_key(),
            recipient: stranger.address(),
            amount: 0,
            fee: 3,
            nonce: 0,
            memo: String::new(),
            kind: cairn_types::TransactionKind::Transfer,
        }
        .sign(&stranger)
        .to_bytes();
        let struct_view = NewAccounts(&accounts);
        assert_eq!(
            pool.add_bytes(&unknown, &struct_view).unwrap_err().code(),
            "insufficient_funds"
        );
    }

    /// A transaction for a pending nonce replaces it when it pays 10%
    /// (at least 1) more; the pool's counts follow.
    #[test]
    fn replace_by_fee_takes_the_nonce_when_it_pays_enough_more() {
        let (mut pool, accounts, key) = setup();
        let with_fee = |fee, amount| {
            Transaction {
                chain_id: chain(),
                sender: key.public_key(),
                recipient: Address([1; 20]),
                amount,
                fee,
                nonce: 2,
                memo: String::new(),
                kind: cairn_types::TransactionKind::Transfer,
            }
            .sign(&key)
            .to_bytes()
        };
        let first = pool.add_bytes(&with_fee(20, 5), &accounts).unwrap();
        let under = pool.add_bytes(&with_fee(21, 6), &accounts).unwrap_err();
        assert_eq!(under.code(), "replacement_underpriced");
        assert!(under.to_string().contains("at least 22"), "{under}");
        let second = pool.add_bytes(&with_fee(22, 6), &accounts).unwrap();
        assert!(!pool.contains(&first) && pool.contains(&second));
        assert_eq!((pool.len(), pool.executable_len()), (1, 1));
        assert_executable_consistent(&pool, &accounts);
        // The balance (100) counts the replacement only: 22 + 70 fits.
        assert!(pool.add_bytes(&with_fee(30, 70), &accounts).is_ok());
        assert_eq!(pool.len(), 1);
        assert_eq!(replacement_fee(0), 1);
        assert_eq!(replacement_fee(1_000), 1_100);
    }

    /// Every drop is reported once with its reason: replaced by fee,
    /// invalidated by a block, expired in the queue.
    #[test]
    fn drops_are_reported_with_their_reason() {
        let (pool, mut accounts, key) = setup();
        let (sender, mut reports) = tokio::sync::broadcast::channel(16);
        let mut pool = pool.with_drop_reports(sender);
        let with = |nonce, fee| {
            Transaction {
                chain_id: chain(),
                sender: key.public_key(),
                recipient: Address([1; 20]),
                amount: 1,
                fee,
                nonce,
                memo: String::new(),
                kind: cairn_types::TransactionKind::Transfer,
            }
            .sign(&key)
            .to_bytes()
        };
        let first = pool.add_bytes(&with(2, 1), &accounts).unwrap();
        let replacement = pool.add_bytes(&with(2, 5), &accounts).unwrap();
        assert_eq!(
            reports.try_recv().unwrap(),
            DroppedTransaction {
                hash: first,
                reason: "replaced"
            }
        );
        // A block moved the nonce past it (another transaction of nonce 2).
        let queued = pool.add_bytes(&with(9, 1), &accounts).unwrap();
        accounts.0.insert(key.address(), (90, 3));
        pool.remove_committed(&[], &accounts);
        assert_eq!(
            reports.try_recv().unwrap(),
            DroppedTransaction {
                hash: replacement,
                reason: "invalidated"
            }
        );
        pool.expire_queued(Instant::now() + QUEUED_TTL_DEFAULT + Duration::from_secs(1));
        assert_eq!(
            reports.try_recv().unwrap(),
            DroppedTransaction {
                hash: queued,
                reason: "expired"
            }
        );
        assert!(reports.try_recv().is_err(), "each drop once");
        assert!(pool.is_empty());
    }

    /// The accounts of `Accounts`, and no others.
    struct NewAccounts<'a>(&'a Accounts);

    impl AccountView for NewAccounts<'_> {
        fn balance_and_nonce(&self, address: &Address) -> (u64, u64) {
            self.0.balance_and_nonce(address)
        }

        fn exists(&self, address: &Address) -> bool {
            self.0 .0.contains_key(address)
        }
    }

    /// Accounts whose staking check refuses everything once `broken`.
    struct StakingView {
        accounts: Accounts,
        broken: bool,
    }

    impl AccountView for StakingView {
        fn balance_and_nonce(&self, address: &Address) -> (u64, u64) {
            self.accounts.balance_and_nonce(address)
        }

        fn check_staking(&self, _transaction: &SignedTransaction) -> Result<(), StateError> {
            if self.broken {
                return Err(StateError::NotJailed);
            }
            Ok(())
        }
    }

    /// A staking transaction is checked at admission, and dropped when a
    /// block makes it invalid, so it never blocks its sender.
    #[test]
    fn staking_transactions_are_checked_at_admission_and_after_commits() {
        let (mut pool, accounts, key) = setup();
        let unjail = |nonce| {
            Transaction {
                chain_id: chain(),
                sender: key.public_key(),
                recipient: key.address(),
                amount: 0,
                fee: 1,
                nonce,
                memo: String::new(),
                kind: cairn_types::TransactionKind::Unjail,
            }
            .sign(&key)
            .to_bytes()
        };
        let mut view = StakingView {
            accounts,
            broken: true,
        };
        let refused = pool.add_bytes(&unjail(2), &view);
        assert_eq!(refused.unwrap_err().code(), "not_jailed");
        view.broken = false;
        assert!(pool.add_bytes(&unjail(2), &view).is_ok());
        assert!(pool.add_bytes(&transfer(&key, 3, 5), &view).is_ok());
        assert_eq!(pool.len(), 2);
        // A block (not holding it) made the unjail invalid: it goes; the
        // transfer behind it waits for nonce 2 again.
        view.broken = true;
        pool.remove_committed(&[], &view);
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.executable_len(), 0);
        assert_eq!(pool.queued_len(), 1);
    }

    /// Signatures this node verified before (by hash, which covers the
    /// signature) are not verified again; the others are.
    #[test]
    fn known_hashes_skip_verification() {
        let key = Keypair::from_seed(&[3; 32]);
        let mut forged = transfer(&key, 0, 5);
        let last = forged.len() - 1;
        forged[last] ^= 1;
        let verdict = |known: bool| {
            Mempool::prepare_batch(&chain(), &[&forged], |_, hashes| {
                hashes
                    .iter()
                    .map(|_| {
                        if known {
                            Precheck::Verified
                        } else {
                            Precheck::Verify
                        }
                    })
                    .collect()
            })
            .pop()
            .map(|result| result.is_ok())
        };
        assert_eq!(verdict(false), Some(false), "a forged signature is refused");
        assert_eq!(
            verdict(true),
            Some(true),
            "a known hash is not verified again"
        );
    }

    fn setup() -> (Mempool, Accounts, Keypair) {
        let key = Keypair::from_seed(&[5; 32]);
        let accounts = Accounts(HashMap::from([(key.address(), (100, 2))]));
        let limits = MempoolLimits {
            transactions_max: 10,
            bytes_max: 1 << 20,
            min_fee: 0,
        };
        (Mempool::new(chain(), limits), accounts, key)
    }

    /// The sum of executable counts matches a recount from scratch.
    fn assert_executable_consistent(pool: &Mempool, accounts: &Accounts) {
        let mut recount = 0;
        for (sender, queue) in &pool.senders {
            let mut expected = accounts.balance_and_nonce(sender).1;
            let mut run = 0;
            while queue.by_nonce.contains_key(&expected) {
                run += 1;
                expected += 1;
            }
            assert_eq!(queue.executable, run, "run of {sender}");
            recount += run;
        }
        assert_eq!(pool.executable_len(), recount);
    }

    /// A future nonce is queued, not executable: it is never reaped and a
    /// node waiting for transactions does not start a height for it. The
    /// missing nonce makes it and its successors executable.
    #[test]
    fn future_nonces_are_queued_behind_the_missing_one() {
        let (mut pool, mut accounts, key) = setup();
        let sender = key.address();
        let five = pool.add_bytes(&transfer(&key, 5, 1), &accounts).unwrap();
        let four = pool.add_bytes(&transfer(&key, 4, 1), &accounts).unwrap();
        assert_eq!(
            (pool.len(), pool.executable_len(), pool.queued_len()),
            (2, 0, 2)
        );
        assert_eq!(pool.queued_behind(&five), Some(2));
        assert_eq!(
            pool.sender_pending(&sender),
            SenderPending {
                executable: 0,
                queued: 2,
                missing_nonce: Some(2)
            }
        );
        assert!(pool.reap(100, 1 << 20, &accounts).is_empty());
        assert_executable_consistent(&pool, &accounts);

        pool.add_bytes(&transfer(&key, 2, 1), &accounts).unwrap();
        assert_eq!(pool.executable_len(), 1);
        assert_eq!(pool.sender_pending(&sender).missing_nonce, Some(3));
        let three = transfer(&key, 3, 1);
        let three_hash = pool.add_bytes(&three, &accounts).unwrap();
        assert_eq!((pool.executable_len(), pool.queued_len()), (4, 0));
        assert_eq!(pool.queued_behind(&four), None);
        assert_eq!(pool.sender_pending(&sender).missing_nonce, None);
        assert_eq!(pool.reap(100, 1 << 20, &accounts).len(), 4);
        assert_executable_consistent(&pool, &accounts);

        // Nonces 2 and 3 commit; 4 and 5 stay executable.
        let two_hash = SignedTransaction::from_bytes(&transfer(&key, 2, 1))
            .unwrap()
            .hash();
        accounts.0.insert(sender, (96, 4));
        pool.remove_committed(&[two_hash, three_hash], &accounts);
        assert_eq!((pool.len(), pool.executable_len()), (2, 2));
        assert_executable_consistent(&pool, &accounts);

        // The state moved past 4 without this pool seeing its block: the
        // next insert counts the run again from the new committed nonce.
        accounts.0.insert(sender, (95, 5));
        pool.add_bytes(&transfer(&key, 7, 1), &accounts).unwrap();
        pool.remove_committed(&[four], &accounts);
        assert_eq!((pool.executable_len(), pool.queued_len()), (1, 1));
        assert_eq!(pool.sender_pending(&sender).missing_nonce, Some(6));
        assert_executable_consistent(&pool, &accounts);
    }

    #[test]
    fn oldest_lists_pending_transactions_in_admission_order() {
        let (mut pool, mut accounts, key) = setup();
        let sender = key.address();
        // Admitted 5, 2, 3 (5 queued behind 4), then 2 commits.
        let five = pool.add_bytes(&transfer(&key, 5, 1), &accounts).unwrap();
        let two = pool.add_bytes(&transfer(&key, 2, 1), &accounts).unwrap();
        let three = pool.add_bytes(&transfer(&key, 3, 1), &accounts).unwrap();
        let now = Instant::now() + Duration::from_secs(1);
        let listed: Vec<(Hash, Option<u64>)> = pool
            .oldest(10, now)
            .into_iter()
            .map(|(hash, transaction, queued, age)| {
                assert_eq!(transaction.hash(), hash);
                assert!(age >= Duration::from_secs(1));
                (hash, queued)
            })
            .collect();
        assert_eq!(listed, [(five, Some(4)), (two, None), (three, None)]);
        let first_two: Vec<Hash> = pool.oldest(2, now).into_iter().map(|e| e.0).collect();
        assert_eq!(first_two, [five, two]);
        accounts.0.insert(sender, (97, 3));
        pool.remove_committed(&[two], &accounts);
        let left: Vec<Hash> = pool.oldest(10, now).into_iter().map(|e| e.0).collect();
        assert_eq!(left, [five, three]);
        assert!(pool.oldest(0, now).is_empty());
    }

    #[test]
    fn admits_in_order_and_counts_next_nonce() {
        let (mut pool, accounts, key) = setup();
        assert!(pool.add_bytes(&transfer(&key, 2, 10), &accounts).is_ok());
        assert!(pool.add_bytes(&transfer(&key, 3, 10), &accounts).is_ok());
        assert_eq!(pool.next_nonce(&key.address(), &accounts), 4);
        assert_eq!(pool.len(), 2);
    }

    #[test]
    fn typed_rejections() {
        let (mut pool, accounts, key) = setup();
        let stale = pool.add_bytes(&transfer(&key, 1, 10), &accounts);
        assert_eq!(
            stale,
            Err(Rejection::BadNonce {
                expected: 2,
                got: 1
            })
        );
        let too_far = pool.add_bytes(
            &transfer(&key, 2 + SENDER_PENDING_MAX_DEFAULT as u64, 1),
            &accounts,
        );
        assert!(matches!(too_far, Err(Rejection::NonceTooFar { .. })));
        let poor = pool.add_bytes(&transfer(&key, 2, 100), &accounts);
        assert_eq!(
            poor,
            Err(Rejection::InsufficientFunds {
                have: 100,
                need: 101
            })
        );
        let ok = transfer(&key, 2, 50);
        assert!(pool.add_bytes(&ok, &accounts).is_ok());
        assert!(matches!(
            pool.add_bytes(&ok, &accounts),
            Err(Rejection::Duplicate(_))
        ));
        let pending_spending = pool.add_bytes(&transfer(&key, 3, 50), &accounts);
        assert_eq!(
            pending_spending,
            Err(Rejection::InsufficientFunds {
                have: 100,
                need: 102
            })
        );
        let mut bad_signature = transfer(&key, 3, 1);
        let last = bad_signature.len() - 1;
        bad_signature[last] ^= 1;
        assert_eq!(
            pool.add_bytes(&bad_signature, &accounts),
            Err(Rejection::BadSignature)
        );
        assert!(matches!(
            pool.add_bytes(&[1, 2, 3], &accounts),
            Err(Rejection::Malformed(_))
        ));
        let big = vec![0u8; TRANSACTION_BYTES_MAX + 1];
        assert!(matches!(
            pool.add_bytes(&big, &accounts),
            Err(Rejection::TooLarge { .. })
        ));
    }

    #[test]
    fn caps_refuse_with_mempool_full() {
        let (mut pool, _, _) = setup();
        let mut accounts = Accounts(HashMap::new());
        let keys: Vec<Keypair> = (0..11u8)
            .map(|i| Keypair::from_seed(&[i + 20; 32]))
            .collect();
        for key in &keys {
            accounts.0.insert(key.address(), (10, 0));
        }
        for key in &keys[..10] {
            pool.add_bytes(&transfer(key, 0, 1), &accounts).unwrap();
        }
        let full = pool.add_bytes(&transfer(&keys[10], 0, 1), &accounts);
        assert!(matches!(full, Err(Rejection::Full { count: 10, .. })));
        let full = full.unwrap_err();
        assert_eq!(full.code(), "mempool_full");
        assert!(full.to_string().contains("fee of at least 2"), "{full}");
    }

    /// A full pool admits a newcomer that pays more than the cheapest
    /// pending transaction, evicting it and its sender's later nonces.
    #[test]
    fn a_better_fee_evicts_the_cheapest_and_what_depends_on_it() {
        let limits = MempoolLimits {
            transactions_max: 3,
            bytes_max: 1 << 20,
            min_fee: 0,
        };
        let mut pool = Mempool::new(chain(), limits);
        let keys: Vec<Keypair> = (0..3u8)
            .map(|i| Keypair::from_seed(&[i + 40; 32]))
            .collect();
        let accounts = Accounts(keys.iter().map(|key| (key.address(), (1_000, 0))).collect());
        let send = |key: &Keypair, nonce, fee| {
            Transaction {
                chain_id: chain(),
                sender: key.public_key(),
                recipient: Address([1; 20]),
                amount: 1,
                fee,
                nonce,
                memo: String::new(),
                kind: cairn_types::TransactionKind::Transfer,
            }
            .sign(key)
            .to_bytes()
        };
        // Sender 0 holds nonces 0 (fee 1) and 1 (fee 9); sender 1 fee 5.
        pool.add_bytes(&send(&keys[0], 0, 1), &accounts).unwrap();
        pool.add_bytes(&send(&keys[0], 1, 9), &accounts).unwrap();
        pool.add_bytes(&send(&keys[1], 0, 5), &accounts).unwrap();
        // Paying the cheapest's fee is not enough.
        let refused = pool
            .add_bytes(&send(&keys[2], 0, 1), &accounts)
            .unwrap_err();
        assert!(matches!(
            refused,
            Rejection::Full {
                fee_needed: Some(2),
                ..
            }
        ));
        // Fee 2 evicts sender 0's nonce 0 and, with it, its nonce 1.
        pool.add_bytes(&send(&keys[2], 0, 2), &accounts).unwrap();
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.evicted(), 1);
        assert_eq!(pool.sender_pending(&keys[0].address()).executable, 0);
        assert_executable_consistent(&pool, &accounts);
        let fees: Vec<u64> = pool
            .reap(10, 1 << 20, &accounts)
            .iter()
            .map(|tx| tx.transaction.fee)
            .collect();
        assert_eq!(fees, vec![5, 2]);
    }

    #[test]
    fn reap_respects_nonce_order_and_keeps_transactions() {
        let (mut pool, accounts, key) = setup();
        pool.add_bytes(&transfer(&key, 3, 1), &accounts).unwrap();
        pool.add_bytes(&transfer(&key, 2, 1), &accounts).unwrap();
        pool.add_bytes(&transfer(&key, 5, 1), &accounts).unwrap();
        let reaped = pool.reap(100, 1 << 20, &accounts);
        let nonces: Vec<u64> = reaped.iter().map(|tx| tx.transaction.nonce).collect();
        assert_eq!(nonces, vec![2, 3]);
        assert_eq!(pool.len(), 3);
        assert_eq!(pool.reap(1, 1 << 20, &accounts).len(), 1);
    }

    #[test]
    fn commit_removes_and_rechecks() {
        let (mut pool, mut accounts, key) = setup();
        let first = pool.add_bytes(&transfer(&key, 2, 10), &accounts).unwrap();
        pool.add_bytes(&transfer(&key, 3, 10), &accounts).unwrap();
        pool.add_bytes(&transfer(&key, 4, 70), &accounts).unwrap();
        // The block spent more of the balance than the pool expected.
        accounts.0.insert(key.address(), (20, 3));
        pool.remove_committed(&[first], &accounts);
        assert!(!pool.contains(&first));
        assert!(pool.signature_verified(&first));
        assert_eq!(pool.len(), 1, "nonce 4 no longer fits the balance");
        assert_eq!(pool.next_nonce(&key.address(), &accounts), 4);
    }

    /// After a block of transfers only its senders are rechecked: a
    /// sender the block did not touch keeps its pending transactions
    /// (its state did not change), one it touched loses what no longer
    /// fits, the same as a full recheck.
    #[test]
    fn a_transfer_block_rechecks_only_its_senders() {
        let (mut pool, mut accounts, key) = setup();
        let other = Keypair::from_seed(&[77; 32]);
        accounts.0.insert(other.address(), (1_000, 1));
        let first = pool.add_bytes(&transfer(&key, 2, 10), &accounts).unwrap();
        pool.add_bytes(&transfer(&key, 3, 70), &accounts).unwrap();
        pool.add_bytes(&transfer(&other, 1, 10), &accounts).unwrap();
        // The block's senders: from the pool's entry, or from the key of a
        // transaction the pool never saw.
        let block_transaction = SignedTransaction::from_bytes(&transfer(&key, 2, 10)).unwrap();
        let senders = pool.senders_of(&[first], std::slice::from_ref(&block_transaction));
        assert_eq!(senders, vec![key.address()]);
        let unseen = SignedTransaction::from_bytes(&transfer(&other, 5, 1)).unwrap();
        assert_eq!(
            pool.senders_of(&[unseen.hash()], std::slice::from_ref(&unseen)),
            vec![other.address()]
        );
        // The block (nonce 2 of `key`) spent more than the pool expected.
        accounts.0.insert(key.address(), (20, 3));
        pool.remove_committed_of(&[first], Some(&senders), &accounts);
        assert_eq!(pool.len(), 1, "nonce 3 of the sender no longer fits");
        assert_eq!(pool.next_nonce(&key.address(), &accounts), 3);
        assert_eq!(pool.next_nonce(&other.address(), &accounts), 2);
        // Unknown and repeated senders are harmless.
        pool.remove_committed_of(
            &[],
            Some(&[
                other.address(),
                other.address(),
                Keypair::from_seed(&[78; 32]).address(),
            ]),
            &accounts,
        );
        assert_eq!(pool.len(), 1);
    }

    /// Blocks take the highest fees first, each sender in nonce order: a
    /// rich later nonce waits for its sender's cheap earlier one.
    #[test]
    fn reap_takes_the_highest_fees_first_in_nonce_order() {
        let keys: Vec<Keypair> = (0..3u8)
            .map(|n| Keypair::from_seed(&[60 + n; 32]))
            .collect();
        let accounts = Accounts(
            keys.iter()
                .map(|key| (key.address(), (1_000_000, 0)))
                .collect(),
        );
        let limits = MempoolLimits {
            transactions_max: 100,
            bytes_max: 1 << 20,
            min_fee: 0,
        };
        let mut pool = Mempool::new(chain(), limits);
        let send = |key: &Keypair, nonce, fee| {
            Transaction {
                chain_id: chain(),
                sender: key.public_key(),
                recipient: Address([1; 20]),
                amount: 1,
                fee,
                nonce,
                memo: String::new(),
                kind: cairn_types::TransactionKind::Transfer,
            }
            .sign(key)
            .to_bytes()
        };
        // Sender 0: fees 5 then 100; sender 1: 50; sender 2: 20 (first to arrive).
        for (key, nonce, fee) in [(2, 0, 20), (0, 0, 5), (0, 1, 100), (1, 0, 50)] {
            assert!(pool
                .add_bytes(&send(&keys[key], nonce, fee), &accounts)
                .is_ok());
        }
        let fees = |count| -> Vec<u64> {
            pool.reap(count, 1 << 20, &accounts)
                .iter()
                .map(|tx| tx.transaction.fee)
                .collect()
        };
        assert_eq!(fees(1), vec![50]);
        assert_eq!(fees(2), vec![50, 20]);
        // Sender 0's fee-100 nonce 1 waits behind its fee-5 nonce 0.
        assert_eq!(fees(4), vec![50, 20, 5, 100]);
    }

    fn signed(key: &Keypair, nonce: u64, fee: u64, amount: u64) -> Vec<u8> {
        Transaction {
            chain_id: chain(),
            sender: key.public_key(),
            recipient: Address([1; 20]),
            amount,
            fee,
            nonce,
            memo: String::new(),
            kind: cairn_types::TransactionKind::Transfer,
        }
        .sign(key)
        .to_bytes()
    }

    fn forge(mut bytes: Vec<u8>) -> Vec<u8> {
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        bytes
    }

    /// The checks that need no signature run before it is verified: a
    /// badly signed transaction that also breaks one of them is refused
    /// for that rule (had the signature been checked first, it would be
    /// `bad_signature`), and the precheck asks to verify only those that
    /// pass.
    #[test]
    fn cheap_rules_refuse_before_the_signature_is_verified() {
        let (pool, accounts, key) = setup();
        let mut pool = pool
            .with_fee_rules(FeeParams::NONE, 2)
            .with_sender_limits(SenderLimits {
                pending_max: 8,
                queued_ttl: QUEUED_TTL_DEFAULT,
            });
        // Committed nonce 2, balance 100, node minimum fee 2.
        let cases = [
            (forge(signed(&key, 10, 2, 1)), "nonce_too_far"),
            (forge(signed(&key, 1, 2, 1)), "bad_nonce"),
            (forge(signed(&key, 2, 1, 1)), "fee_too_low"),
            (forge(signed(&key, 2, 2, 99)), "insufficient_funds"),
            (forge(signed(&key, 2, 2, 1)), "bad_signature"),
        ];
        for (bytes, code) in &cases {
            let refused = pool.add_bytes(bytes, &accounts).unwrap_err();
            assert_eq!(refused.code(), *code, "{refused}");
        }
        // What the precheck asks for, without verifying anything.
        let batch: Vec<&[u8]> = cases.iter().map(|(bytes, _)| bytes.as_slice()).collect();
        let mut asked = Vec::new();
        let _ = Mempool::prepare_batch(&chain(), &batch, |transactions, hashes| {
            let verdicts = pool.precheck(transactions, hashes, &accounts);
            asked = verdicts
                .iter()
                .map(|verdict| matches!(verdict, Precheck::Verify))
                .collect();
            verdicts
        });
        assert_eq!(asked, vec![false, false, false, false, true]);

        // A replacement that does not pay enough, a full pool the fee does
        // not enter, and a pending duplicate are refused before too.
        let pending = signed(&key, 2, 10, 1);
        pool.add_bytes(&pending, &accounts).unwrap();
        let under = pool
            .add_bytes(&forge(signed(&key, 2, 10, 2)), &accounts)
            .unwrap_err();
        assert_eq!(under.code(), "replacement_underpriced");
        let mut full = Mempool::new(
            chain(),
            MempoolLimits {
                transactions_max: 1,
                bytes_max: 1 << 20,
                min_fee: 0,
            },
        );
        full.add_bytes(&signed(&key, 2, 5, 1), &accounts).unwrap();
        let other = Keypair::from_seed(&[6; 32]);
        let accounts_two = Accounts(HashMap::from([
            (key.address(), (100, 2)),
            (other.address(), (100, 0)),
        ]));
        let refused = full
            .add_bytes(&forge(signed(&other, 0, 5, 1)), &accounts_two)
            .unwrap_err();
        assert_eq!(refused.code(), "mempool_full");
        // Paying more, the same forged transaction reaches the signature.
        let refused = full
            .add_bytes(&forge(signed(&other, 0, 6, 1)), &accounts_two)
            .unwrap_err();
        assert_eq!(refused.code(), "bad_signature");

        // Within one batch the room left goes to the earlier transactions:
        // the rest of a batch that overflows the pool at the same fee is
        // refused before verification.
        let pool = Mempool::new(
            chain(),
            MempoolLimits {
                transactions_max: 2,
                bytes_max: 1 << 20,
                min_fee: 0,
            },
        );
        let senders: Vec<Keypair> = (0..3u8)
            .map(|i| Keypair::from_seed(&[i + 110; 32]))
            .collect();
        let funded = Accounts(
            senders
                .iter()
                .map(|key| (key.address(), (100, 0)))
                .collect(),
        );
        let batch: Vec<Vec<u8>> = senders.iter().map(|key| signed(key, 0, 1, 1)).collect();
        let batch: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        let mut verdicts = Vec::new();
        let prepared = Mempool::prepare_batch(&chain(), &batch, |transactions, hashes| {
            let answer = pool.precheck(transactions, hashes, &funded);
            verdicts = answer
                .iter()
                .map(|verdict| match verdict {
                    Precheck::Refuse(rejection) => rejection.code(),
                    _ => "verify",
                })
                .collect();
            answer
        });
        assert_eq!(verdicts, vec!["verify", "verify", "mempool_full"]);
        assert_eq!(prepared.iter().filter(|result| result.is_ok()).count(), 2);
    }

    /// A sender may have `pending_max` transactions pending; a nonce at
    /// or beyond committed + `pending_max` is too far (it could never
    /// become executable within the limit), and a pool whose view of the
    /// committed nonce is stale still holds no more than the limit.
    #[test]
    fn each_sender_has_a_bounded_number_of_pending_transactions() {
        let (pool, mut accounts, key) = setup();
        let mut pool = pool.with_sender_limits(SenderLimits {
            pending_max: 4,
            queued_ttl: QUEUED_TTL_DEFAULT,
        });
        for nonce in 2..6 {
            pool.add_bytes(&signed(&key, nonce, 1, 1), &accounts)
                .unwrap();
        }
        let far = pool
            .add_bytes(&signed(&key, 6, 1, 1), &accounts)
            .unwrap_err();
        assert_eq!(far.code(), "nonce_too_far");
        assert!(far.to_string().contains("must be below 6"), "{far}");
        // Nonce 2 committed, but this pool has not seen the block yet:
        // nonce 6 is in the window, the sender still has 4 pending.
        accounts.0.insert(key.address(), (98, 3));
        let full = pool
            .add_bytes(&signed(&key, 6, 1, 1), &accounts)
            .unwrap_err();
        assert_eq!(full, Rejection::SenderFull { pending: 4, max: 4 }, "{full}");
        assert_eq!(full.code(), "sender_pending_full");
        // Replacing a pending nonce is not a new pending transaction.
        pool.add_bytes(&signed(&key, 5, 2, 1), &accounts).unwrap();
        assert_eq!(pool.dropped().replaced, 1);
        assert_eq!(pool.len(), 4);
    }

    /// Queued transactions that did not become executable within the TTL
    /// are dropped and counted; executable ones stay.
    #[test]
    fn queued_transactions_expire_after_the_ttl() {
        let (pool, accounts, key) = setup();
        let ttl = Duration::from_secs(60);
        let mut pool = pool.with_sender_limits(SenderLimits {
            pending_max: 16,
            queued_ttl: ttl,
        });
        let executable = pool.add_bytes(&signed(&key, 2, 1, 1), &accounts).unwrap();
        let queued = pool.add_bytes(&signed(&key, 5, 1, 1), &accounts).unwrap();
        let start = Instant::now();
        assert_eq!(pool.expire_queued(start + ttl / 2), 0);
        assert_eq!(pool.expire_queued(start + ttl * 2), 1);
        assert!(pool.contains(&executable) && !pool.contains(&queued));
        assert_eq!(pool.dropped().expired, 1);
        assert_eq!((pool.executable_len(), pool.queued_len()), (1, 0));
        assert_executable_consistent(&pool, &accounts);
        // Its spending was released: nearly all of the balance is free.
        assert!(pool.add_bytes(&signed(&key, 3, 1, 97), &accounts).is_ok());
    }

    /// Evictions (with the later nonces), invalidations by a block, and
    /// replacements are counted by reason.
    #[test]
    fn drops_are_counted_by_reason() {
        let (mut pool, mut accounts, key) = setup();
        pool.add_bytes(&signed(&key, 2, 1, 10), &accounts).unwrap();
        pool.add_bytes(&signed(&key, 3, 1, 10), &accounts).unwrap();
        pool.add_bytes(&signed(&key, 3, 2, 10), &accounts).unwrap();
        // The block took all but 5 of the balance, and not nonce 2.
        accounts.0.insert(key.address(), (5, 2));
        pool.remove_committed(&[], &accounts);
        assert_eq!(
            pool.dropped(),
            DropCounts {
                evicted: 0,
                expired: 0,
                invalidated: 2,
                replaced: 1,
            }
        );
        assert!(pool.is_empty());
    }
}

/// Property tests of admission, replacement, eviction and reaping against
/// a simple model, over random sequences of transactions from a few
/// funded senders and one that was never funded.
#[cfg(test)]
mod properties {
    use super::*;
    use cairn_types::{Keypair, Transaction};
    use proptest::prelude::*;

    const POOL_MAX: usize = 8;
    const SENDER_MAX: usize = 4;
    const SENDERS: usize = 4;

    struct Accounts(HashMap<Address, (u64, u64)>);

    impl AccountView for Accounts {
        fn balance_and_nonce(&self, address: &Address) -> (u64, u64) {
            self.0.get(address).copied().unwrap_or((0, 0))
        }

        fn exists(&self, address: &Address) -> bool {
            self.0.contains_key(address)
        }
    }

    fn chain() -> ChainId {
        ChainId::new("mempool-properties").unwrap()
    }

    /// (sender index, nonce, fee, amount); sender `SENDERS` was never
    /// funded.
    fn operation() -> impl Strategy<Value = (usize, u64, u64, u64)> {
        (0..=SENDERS, 0u64..6, 1u64..30, 0u64..40)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        #[test]
        fn admission_replacement_eviction_and_reaping_follow_the_rules(
            balances in proptest::collection::vec(0u64..150, SENDERS),
            operations in proptest::collection::vec(operation(), 1..40),
        ) {
            let keys: Vec<Keypair> = (0..=SENDERS)
                .map(|index| Keypair::from_seed(&[index as u8 + 90; 32]))
                .collect();
            let accounts = Accounts(
                keys[..SENDERS]
                    .iter()
                    .zip(&balances)
                    .map(|(key, balance)| (key.address(), (*balance, 0)))
                    .collect(),
            );
            let mut pool = Mempool::new(
                chain(),
                MempoolLimits {
                    transactions_max: POOL_MAX,
                    bytes_max: 1 << 20,
                    min_fee: 0,
                },
            )
            .with_fee_rules(FeeParams::default(), 1)
            .with_sender_limits(SenderLimits {
                pending_max: SENDER_MAX,
                queued_ttl: QUEUED_TTL_DEFAULT,
            });
            for (sender, nonce, fee, amount) in operations {
                let key = &keys[sender];
                let bytes = Transaction {
                    chain_id: chain(),
                    sender: key.public_key(),
                    recipient: keys[(sender + 1) % SENDERS].address(),
                    amount,
                    fee,
                    nonce,
                    memo: String::new(),
                    kind: cairn_types::TransactionKind::Transfer,
                }
                .sign(key)
                .to_bytes();
                let address = key.address();
                let existing = pool
                    .senders
                    .get(&address)
                    .and_then(|queue| queue.by_nonce.get(&nonce))
                    .copied();
                let existing_fee = existing
                    .and_then(|hash| pool.pending.get(&hash))
                    .map(|entry| entry.transaction.transaction.fee);
                let full_before = pool.len() >= POOL_MAX;
                let cheapest_before = pool.by_fee.first().map(|(fee, _, _)| *fee);
                let result = pool.add_bytes(&bytes, &accounts);

                // No key that was never funded is ever admitted.
                if sender == SENDERS {
                    prop_assert!(result.is_err(), "an unfunded sender was admitted");
                }
                match (&result, existing_fee) {
                    // A pending nonce is only taken by a fee 10% (and 1)
                    // higher, and the old transaction leaves.
                    (Ok(_), Some(old_fee)) => {
                        prop_assert!(fee >= replacement_fee(old_fee));
                        prop_assert!(!pool.contains(&existing.unwrap()));
                    }
                    (Err(Rejection::ReplacementUnderpriced { needed, .. }), Some(old_fee)) => {
                        prop_assert_eq!(*needed, replacement_fee(old_fee));
                        prop_assert!(fee < *needed);
                    }
                    // A full pool admits a newcomer only if it pays more
                    // than the cheapest pending transaction.
                    (Ok(_), None) if full_before => {
                        prop_assert!(fee > cheapest_before.unwrap_or(0));
                    }
                    (Err(Rejection::Full { fee_needed, .. }), _) => {
                        prop_assert!(full_before);
                        if let Some(needed) = fee_needed {
                            prop_assert!(fee < *needed);
                        }
                    }
                    _ => {}
                }

                // The pool's invariants.
                prop_assert!(pool.len() <= POOL_MAX);
                let mut executable = 0;
                for (sender, queue) in &pool.senders {
                    let (balance, committed) = accounts.balance_and_nonce(sender);
                    prop_assert!(queue.by_nonce.len() <= SENDER_MAX);
                    prop_assert!(queue.spending <= balance);
                    let mut expected = committed;
                    while queue.by_nonce.contains_key(&expected) {
                        expected += 1;
                    }
                    prop_assert_eq!(queue.executable as u64, expected - committed);
                    executable += queue.executable;
                }
                prop_assert_eq!(pool.executable_len(), executable);
            }

            // Reaping: each sender's run in nonce order, and at every step
            // the highest fee among the senders' next transactions.
            let reaped = pool.reap(usize::MAX, usize::MAX, &accounts);
            prop_assert_eq!(reaped.len(), pool.executable_len());
            let mut heads: HashMap<Address, Vec<u64>> = HashMap::new();
            for (sender, queue) in &pool.senders {
                let fees: Vec<u64> = queue
                    .by_nonce
                    .values()
                    .take(queue.executable)
                    .map(|hash| pool.pending[hash].transaction.transaction.fee)
                    .collect();
                heads.insert(*sender, fees);
            }
            let mut next_nonce: HashMap<Address, u64> = HashMap::new();
            for transaction in &reaped {
                let body = &transaction.transaction;
                let sender = body.sender_address();
                let nonce = next_nonce.entry(sender).or_insert(0);
                prop_assert_eq!(body.nonce, *nonce, "out of nonce order");
                *nonce += 1;
                let best = heads
                    .values()
                    .filter_map(|fees| fees.first())
                    .max()
                    .copied();
                prop_assert_eq!(Some(body.fee), best, "not the highest fee available");
                if let Some(fees) = heads.get_mut(&sender) {
                    fees.remove(0);
                }
            }
        }
    }
}
