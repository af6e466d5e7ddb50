//! The ledger state (accounts and their tree) and block execution.
//!
//! Execution never modifies the state it runs on: [`LedgerState::execute`]
//! writes into an overlay and returns an [`ExecutionOutcome`] (new root,
//! changed accounts, rewritten tree nodes). A validator executes a
//! proposal while validating it, keeps the outcome, and at commit hands it
//! to [`LedgerState::apply`] (a copy, no re-execution) and to the store.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use cairn_types::{
    limits::BLOCK_TRANSACTIONS_MAX, sha256, Address, Block, ChainId, FeeParams, Hash, Height,
    SignedTransaction, TransactionKind, ValidatorSet,
};

use crate::{
    rules::check_stateless,
    staking::{Offence, StakingAction, StakingState},
    tree::{leaf_hash, AbsenceProof, AccountProof, AccountTree, TreeUpdate, ACCOUNTS_MAX},
    Account, AccountChange, StateError,
};

/// Domain separator of the state root.
const STATE_ROOT_DOMAIN: &[u8] = b"cairn/state/v3\0";

/// The state root: SHA-256 of a domain tag, the account tree's root and
/// the staking hash ([`Hash::ZERO`] for a state without staking).
pub fn state_root_of(accounts_root: &Hash, staking_hash: &Hash) -> Hash {
    let mut bytes = Vec::with_capacity(STATE_ROOT_DOMAIN.len() + 64);
    bytes.extend_from_slice(STATE_ROOT_DOMAIN);
    bytes.extend_from_slice(&accounts_root.0);
    bytes.extend_from_slice(&staking_hash.0);
    sha256(&bytes)
}

/// One account in slot order, with its successor on the address ring
/// (see [`crate::tree`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SlotEntry {
    address: Address,
    account: Account,
    next: Address,
}

/// All accounts, their tree, the staking state and the state root, after
/// the block of [`LedgerState::height`].
///
/// A state built from accounts alone ([`LedgerState::from_genesis`]) has no
/// staking: it executes transfers only (transfer benchmarks and tests use
/// it). A chain's state always has staking
/// ([`LedgerState::from_genesis_with_staking`]).
///
/// The address index is a `HashMap` used for lookups only, never
/// iterated, so its per-process random hashing (which resists crafted
/// addresses) cannot change any result: everything that is iterated (the
/// slots, the changes of a block) is in slot order. `sorted` holds the
/// addresses in byte order, to find the neighbours on the address ring of
/// a new account (its successor, and the predecessor whose successor it
/// becomes) and of an address without one (its proof of absence).
#[derive(Clone)]
pub struct LedgerState {
    slots: Vec<SlotEntry>,
    index: HashMap<Address, u64>,
    sorted: BTreeSet<Address>,
    tree: AccountTree,
    root: Hash,
    balances_total: u64,
    staking: Option<Arc<StakingState>>,
    /// The hash of `staking`, kept so a block that leaves the staking
    /// state as it is costs no hashing of it.
    staking_hash: Hash,
    /// The chain's fee rules (from its genesis; [`FeeParams::NONE`] for a
    /// state built from accounts alone).
    fee_params: FeeParams,
    height: Height,
}

impl fmt::Debug for LedgerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LedgerState")
            .field("accounts", &self.slots.len())
            .field("balances_total", &self.balances_total)
            .field("height", &self.height)
            .field("root", &self.root)
            .finish()
    }
}

impl Default for LedgerState {
    fn default() -> Self {
        LedgerState::empty()
    }
}

impl LedgerState {
    /// The state with no account.
    pub fn empty() -> LedgerState {
        let tree = AccountTree::default();
        LedgerState {
            slots: Vec::new(),
            index: HashMap::new(),
            sorted: BTreeSet::new(),
            root: state_root_of(&tree.root(), &Hash::ZERO),
            tree,
            balances_total: 0,
            staking: None,
            staking_hash: Hash::ZERO,
            fee_params: FeeParams::NONE,
            height: Height::GENESIS,
        }
    }

    /// The genesis state of a chain: `accounts` with their balances, less
    /// the stake each genesis validator's operator bonds, and `staking`.
    /// Refuses an operator whose balance does not cover its stake.
    pub fn from_genesis_with_staking(
        accounts: &[(Address, u64)],
        staking: StakingState,
    ) -> Result<LedgerState, StateError> {
        let mut balances: Vec<(Address, u64)> = accounts.to_vec();
        for (operator, candidate) in staking.candidates() {
            let entry = balances
                .iter_mut()
                .find(|(address, _)| address == operator)
                .ok_or_else(|| StateError::CorruptStaking {
                    reason: format!(
                        "validator {} bonds {} from operator {operator}, which has no genesis account; fund it in `accounts`",
                        candidate.name, candidate.bonded
                    ),
                })?;
            entry.1 = entry.1.checked_sub(candidate.bonded).ok_or_else(|| {
                StateError::CorruptStaking {
                    reason: format!(
                        "validator {} bonds {} but its operator {operator} holds only {}; raise the operator's genesis balance",
                        candidate.name, candidate.bonded, entry.1
                    ),
                }
            })?;
        }
        let state = LedgerState::from_genesis(&balances)?;
        Ok(state.with_staking(Some(staking), Height::GENESIS))
    }

    /// This state with `staking` and as of `height` (a store restoring
    /// its latest state).
    pub fn with_staking(mut self, staking: Option<StakingState>, height: Height) -> LedgerState {
        self.staking = staking.map(Arc::new);
        self.staking_hash = self
            .staking
            .as_ref()
            .map_or(Hash::ZERO, |staking| staking.hash());
        self.height = height;
        self.root = state_root_of(&self.tree.root(), &self.staking_hash);
        self
    }

    /// This state under the chain's fee rules `fee_params` (a node sets
    /// them from its genesis after loading a state from its store).
    pub fn with_fee_params(mut self, fee_params: FeeParams) -> LedgerState {
        self.fee_params = fee_params;
        self
    }

    /// The fee rules this state executes under.
    pub fn fee_params(&self) -> FeeParams {
        self.fee_params
    }

    /// The hash of the staking state ([`Hash::ZERO`] without staking).
    pub fn staking_hash(&self) -> Hash {
        self.staking_hash
    }

    /// The staking state, if the chain has one.
    pub fn staking(&self) -> Option<&StakingState> {
        self.staking.as_deref()
    }

    /// The height of the last block applied (0 at genesis).
    pub fn height(&self) -> Height {
        self.height
    }

    /// The root of the account tree alone (what an account proof shows).
    pub fn accounts_root(&self) -> Hash {
        self.tree.root()
    }

    /// The validator set of the next height (`None` without staking).
    pub fn current_validator_set(&self) -> Option<&ValidatorSet> {
        self.staking.as_deref().map(StakingState::current_set)
    }

    /// The validator set of the height after the next.
    pub fn next_validator_set(&self) -> Option<&ValidatorSet> {
        self.staking.as_deref().map(StakingState::next_set)
    }

    /// The genesis state: `accounts` with their balances and nonce 0, given
    /// slots in list order. Refuses a repeated address and a total supply
    /// beyond `u64`.
    pub fn from_genesis(accounts: &[(Address, u64)]) -> Result<LedgerState, StateError> {
        LedgerState::from_slots(accounts.iter().map(|(address, balance)| {
            (
                *address,
                Account {
                    balance: *balance,
                    nonce: 0,
                },
            )
        }))
    }

    /// Rebuilds a state from its accounts in slot order (slot 0 first), as
    /// a store keeps them. O(n): the tree is rebuilt in memory. Refuses a
    /// repeated address, more than [`ACCOUNTS_MAX`] accounts and a total
    /// supply beyond `u64`.
    pub fn from_slots(
        accounts: impl IntoIterator<Item = (Address, Account)>,
    ) -> Result<LedgerState, StateError> {
        let accounts = accounts.into_iter();
        let mut slots = Vec::with_capacity(accounts.size_hint().0);
        let mut index = HashMap::with_capacity(accounts.size_hint().0);
        let mut balances_total = 0u64;
        for (address, account) in accounts {
            let slot = slots.len() as u64;
            if slot >= ACCOUNTS_MAX {
                return Err(StateError::TooManyAccounts { max: ACCOUNTS_MAX });
            }
            if index.insert(address, slot).is_some() {
                return Err(StateError::DuplicateAccount { address });
            }
            balances_total =
                balances_total
                    .checked_add(account.balance)
                    .ok_or(StateError::Overflow {
                        what: "total supply",
                    })?;
            slots.push(SlotEntry {
                address,
                account,
                next: address,
            });
        }
        // Link the ring: each address to the next greater one, the
        // greatest to the smallest.
        let mut ring: Vec<(Address, usize)> = slots
            .iter()
            .enumerate()
            .map(|(slot, entry)| (entry.address, slot))
            .collect();
        ring.sort_unstable();
        for (position, &(_, slot)) in ring.iter().enumerate() {
            let (next, _) = ring[(position + 1) % ring.len()];
            slots[slot].next = next;
        }
        let sorted: BTreeSet<Address> = ring.into_iter().map(|(address, _)| address).collect();
        let leaves = slots
            .iter()
            .map(|entry| leaf_hash(&entry.address, &entry.account, &entry.next))
            .collect();
        let tree = AccountTree::from_leaves(leaves);
        Ok(LedgerState {
            slots,
            index,
            sorted,
            root: state_root_of(&tree.root(), &Hash::ZERO),
            tree,
            balances_total,
            staking: None,
            staking_hash: Hash::ZERO,
            fee_params: FeeParams::NONE,
            height: Height::GENESIS,
        })
    }

    /// The state root ([`state_root_of`] the account tree's root and the
    /// staking hash).
    pub fn root(&self) -> Hash {
        self.root
    }

    /// The account at `address`, if it has ever been written.
    pub fn account(&self, address: &Address) -> Option<Account> {
        self.index
            .get(address)
            .map(|&slot| self.slots[slot as usize].account)
    }

    /// The slot (leaf position) of `address`, if it has an account.
    pub fn slot(&self, address: &Address) -> Option<u64> {
        self.index.get(address).copied()
    }

    /// The nonce the next transfer of `address` must carry.
    pub fn next_nonce(&self, address: &Address) -> u64 {
        self.account(address).unwrap_or_default().nonce
    }

    /// Sum of all balances, bonded and unbonding stake: execution
    /// conserves it except for slashes, which burn stake.
    pub fn total_supply(&self) -> u64 {
        let staked = self.staking.as_deref().map_or(0, |staking| {
            staking
                .total_bonded()
                .saturating_add(staking.total_unbonding())
        });
        self.balances_total.saturating_add(staked)
    }

    /// Sum of all balances.
    pub fn balances_total(&self) -> u64 {
        self.balances_total
    }

    /// Number of accounts.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there is no account.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Every account in slot order: `(slot, address, account)`.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Address, Account)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .map(|(slot, entry)| (slot as u64, entry.address, entry.account))
    }

    /// The slot and account of `address` in this state.
    fn read(&self, address: &Address) -> ParentRead {
        self.index
            .get(address)
            .map(|&slot| (slot, self.slots[slot as usize].account))
    }

    /// A proof that `address` holds [`LedgerState::account`] under
    /// [`LedgerState::accounts_root`], or `None` if it has no account.
    pub fn prove(&self, address: &Address) -> Option<AccountProof> {
        let slot = self.slot(address)?;
        self.tree.prove(slot, self.slots[slot as usize].next)
    }

    /// A proof that `address` has no account under
    /// [`LedgerState::accounts_root`], or `None` if it has one.
    pub fn prove_absence(&self, address: &Address) -> Option<AbsenceProof> {
        if self.index.contains_key(address) {
            return None;
        }
        let Some(neighbor) = self
            .sorted
            .range(..*address)
            .next_back()
            .or_else(|| self.sorted.last())
        else {
            return Some(AbsenceProof::EmptyState);
        };
        let slot = self.slot(neighbor)?;
        let entry = self.slots[slot as usize];
        Some(AbsenceProof::Gap {
            neighbor: entry.address,
            account: entry.account,
            proof: self.tree.prove(slot, entry.next)?,
        })
    }

    /// The successor of `address` on the ring of this state's addresses
    /// together with `created` (sorted), `address` excluded: the smallest
    /// greater address, or the smallest of all.
    fn successor_with(&self, created: &[Address], address: &Address) -> Address {
        use std::ops::Bound::{Excluded, Unbounded};
        let created_after = created.get(created.partition_point(|a| a <= address));
        let parent_after = self.sorted.range((Excluded(*address), Unbounded)).next();
        match (created_after, parent_after) {
            (Some(a), Some(b)) => *a.min(b),
            (Some(a), None) | (None, Some(a)) => *a,
            (None, None) => match (created.first(), self.sorted.first()) {
                (Some(a), Some(b)) => *a.min(b),
                (Some(a), None) | (None, Some(a)) => *a,
                (None, None) => *address,
            },
        }
    }

    /// Checks a single transfer against this state as the mempool does:
    /// [`check_stateless`], then nonce and balance. Does not verify the
    /// signature (see [`crate::verify_signatures`]).
    pub fn check_transaction(
        &self,
        chain_id: &ChainId,
        transaction: &SignedTransaction,
    ) -> Result<(), StateError> {
        let mut execution = self.begin_block(chain_id, Address::default());
        execution.push(transaction)
    }

    /// Checks a staking transaction's own rule (operator, stake, jail,
    /// keys) against this state, as the mempool does at admission: a
    /// transfer always passes. Nonce and balance are not checked here.
    pub fn check_staking(&self, transaction: &SignedTransaction) -> Result<(), StateError> {
        let Some(action) = staking_action(transaction) else {
            return Ok(());
        };
        let staking = self.staking.as_deref().ok_or_else(no_staking)?;
        staking
            .check_action(
                transaction.transaction.sender.address(),
                Height(self.height.0.saturating_add(1)),
                &action,
            )
            .map(|_| ())
    }

    /// Starts executing a block built by `proposer` on top of this state.
    /// Push transfers one by one; a refused transfer leaves the execution
    /// as it was, so a proposer can skip it and go on.
    pub fn begin_block<'a>(
        &'a self,
        chain_id: &'a ChainId,
        proposer: Address,
    ) -> BlockExecution<'a> {
        BlockExecution {
            parent: self,
            chain_id,
            proposer,
            height: Height(self.height.0.saturating_add(1)),
            touched: Vec::new(),
            positions: HashMap::new(),
            created: 0,
            fees: 0,
            transactions: 0,
            staking: None,
            offenders: Vec::new(),
            bonded_from_balances: 0,
        }
    }

    /// Executes a block's transfers, in order, on top of this state without
    /// modifying it. All or nothing: the first invalid transfer fails the
    /// whole block with [`StateError::TransactionInvalid`].
    ///
    /// Signatures are *not* checked here: callers pass transfers they have
    /// verified with [`crate::verify_signatures`] (the node verifies once,
    /// in batches, and caches the verdict).
    pub fn execute(
        &self,
        chain_id: &ChainId,
        proposer: Address,
        transactions: &[SignedTransaction],
    ) -> Result<ExecutionOutcome, StateError> {
        self.execute_with_offenders(chain_id, proposer, transactions, &[])
    }

    /// [`LedgerState::execute`] of a block whose evidence names
    /// `offenders` (operators, one per piece of evidence): each is jailed
    /// and slashed at the end of the block (see [`crate::staking`]).
    pub fn execute_with_offenders(
        &self,
        chain_id: &ChainId,
        proposer: Address,
        transactions: &[SignedTransaction],
        offenders: &[Offence],
    ) -> Result<ExecutionOutcome, StateError> {
        if transactions.len() > BLOCK_TRANSACTIONS_MAX {
            return Err(StateError::TooManyTransactions {
                count: transactions.len(),
                max: BLOCK_TRANSACTIONS_MAX,
            });
        }
        // Read every sender and recipient from the parent first: a tight
        // loop of independent lookups whose cache misses overlap, where
        // doing them between the transfers' hashing would wait on each.
        let senders: Vec<Address> = transactions
            .iter()
            .map(|transaction| transaction.transaction.sender.address())
            .collect();
        let reads: Vec<(ParentRead, ParentRead)> = transactions
            .iter()
            .zip(&senders)
            .map(|(transaction, sender)| {
                (
                    self.read(sender),
                    self.read(&transaction.transaction.recipient),
                )
            })
            .collect();
        let mut execution = self.begin_block(chain_id, proposer);
        execution.reserve(transactions.len());
        for (index, ((transaction, sender), parent_reads)) in
            transactions.iter().zip(senders).zip(reads).enumerate()
        {
            execution
                .push_prepared(transaction, sender, Some(parent_reads))
                .map_err(|error| error.at_index(index))?;
        }
        execution.record_offenders(offenders);
        execution.finish()
    }

    /// Executes `block` (whose signatures the caller has verified) on this
    /// state and checks the result against its header: the header names
    /// `chain_id` and claims the computed state root. Fees go to the
    /// header's proposer. The block's evidence must be resolved to the
    /// operators it names by the caller (`offenders`), who knows the
    /// validator sets of past heights.
    pub fn execute_block(
        &self,
        chain_id: &ChainId,
        block: &Block,
        offenders: &[Offence],
    ) -> Result<ExecutionOutcome, StateError> {
        if block.header.chain_id != *chain_id {
            return Err(StateError::WrongChain {
                expected: chain_id.clone(),
                got: block.header.chain_id.clone(),
            });
        }
        let outcome = self.execute_with_offenders(
            chain_id,
            block.header.proposer,
            &block.transactions,
            offenders,
        )?;
        if outcome.state_root != block.header.state_root {
            return Err(StateError::StateRootMismatch {
                header: block.header.state_root,
                computed: outcome.state_root,
            });
        }
        Ok(outcome)
    }

    /// Applies an outcome computed by [`LedgerState::execute`] on this very
    /// state: copies the changed accounts and tree nodes, no re-execution.
    /// Refuses an outcome computed on another state.
    pub fn apply(&mut self, outcome: &ExecutionOutcome) -> Result<(), StateError> {
        if outcome.parent_root != self.root || outcome.parent_len != self.slots.len() as u64 {
            return Err(StateError::StaleOutcome {
                state_root: self.root,
                outcome_parent: outcome.parent_root,
            });
        }
        for change in &outcome.changes {
            if change.created {
                debug_assert_eq!(change.slot, self.slots.len() as u64);
                self.index.insert(change.address, change.slot);
                self.sorted.insert(change.address);
                self.slots.push(SlotEntry {
                    address: change.address,
                    account: change.account,
                    next: change.address,
                });
            } else {
                self.slots[change.slot as usize].account = change.account;
            }
        }
        for &(slot, next) in &outcome.links {
            self.slots[slot as usize].next = next;
        }
        self.tree.apply(&outcome.tree);
        self.root = outcome.state_root;
        self.balances_total = outcome.balances_total;
        if let Some(staking) = &outcome.staking {
            self.staking = Some(Arc::clone(staking));
            self.staking_hash = outcome.staking_hash;
        }
        self.height = outcome.height;
        debug_assert_eq!(self.tree.leaf_count(), self.slots.len() as u64);
        Ok(())
    }
}

/// The result of executing a block on a parent state: the new root, the
/// accounts written and the tree nodes rewritten. Apply it with
/// [`LedgerState::apply`]; persist [`ExecutionOutcome::changes`].
#[derive(Clone)]
pub struct ExecutionOutcome {
    parent_root: Hash,
    parent_len: u64,
    state_root: Hash,
    changes: Vec<AccountChange>,
    /// The new successor of each account whose successor the block set:
    /// every created account and each predecessor of one, `(slot, next)`.
    links: Vec<(u64, Address)>,
    fees: u64,
    proposer: Address,
    transaction_count: usize,
    tree: TreeUpdate,
    balances_total: u64,
    /// The staking state after the block, if the block changed it.
    staking: Option<Arc<StakingState>>,
    staking_hash: Hash,
    height: Height,
}

impl fmt::Debug for ExecutionOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutionOutcome")
            .field("parent_root", &self.parent_root)
            .field("state_root", &self.state_root)
            .field("transactions", &self.transaction_count)
            .field("changes", &self.changes.len())
            .field("fees", &self.fees)
            .finish()
    }
}

impl ExecutionOutcome {
    /// The state root after the block.
    pub fn state_root(&self) -> Hash {
        self.state_root
    }

    /// The state root the block was executed on.
    pub fn parent_root(&self) -> Hash {
        self.parent_root
    }

    /// Every account the block wrote, in slot order, with its new value.
    /// Created accounts come last (their slots are the new ones) in the
    /// order they were created.
    pub fn changes(&self) -> &[AccountChange] {
        &self.changes
    }

    /// Number of accounts after the block.
    pub fn account_count(&self) -> u64 {
        self.parent_len + self.changes.iter().filter(|change| change.created).count() as u64
    }

    /// Fees credited to the proposer.
    pub fn fees(&self) -> u64 {
        self.fees
    }

    /// The account credited with the fees.
    pub fn proposer(&self) -> Address {
        self.proposer
    }

    /// Number of transfers executed.
    pub fn transaction_count(&self) -> usize {
        self.transaction_count
    }

    /// The staking state after the block, if the block changed it (a
    /// store persists it, and the sets it names).
    pub fn staking(&self) -> Option<&StakingState> {
        self.staking.as_deref()
    }

    /// The executed block's height.
    pub fn height(&self) -> Height {
        self.height
    }
}

/// The successor links a block sets (see [`crate::tree`]): for every
/// account it creates, its successor on the ring of the parent's and the
/// created addresses; for every parent account that precedes a created
/// one, its new successor. Sorted by slot, one entry per slot. `changes`
/// is the block's writes in slot order (created accounts last).
fn ring_links(parent: &LedgerState, changes: &[AccountChange]) -> Vec<(u64, Address)> {
    let mut created: Vec<(Address, u64)> = changes
        .iter()
        .filter(|change| change.created)
        .map(|change| (change.address, change.slot))
        .collect();
    if created.is_empty() {
        return Vec::new();
    }
    created.sort_unstable();
    let created_addresses: Vec<Address> = created.iter().map(|(address, _)| *address).collect();
    let mut links: Vec<(u64, Address)> = Vec::with_capacity(created.len() * 2);
    let mut predecessors: BTreeSet<u64> = BTreeSet::new();
    for &(address, slot) in &created {
        links.push((slot, parent.successor_with(&created_addresses, &address)));
        // The parent account just below it on the ring now points at a
        // created account (the smallest created one after it).
        let below = parent
            .sorted
            .range(..address)
            .next_back()
            .or_else(|| parent.sorted.last());
        if let Some(slot) = below.and_then(|below| parent.slot(below)) {
            predecessors.insert(slot);
        }
    }
    for slot in predecessors {
        let address = parent.slots[slot as usize].address;
        links.push((slot, parent.successor_with(&created_addresses, &address)));
    }
    links.sort_unstable_by_key(|(slot, _)| *slot);
    links
}

/// The staking action of a transaction (`None` for a transfer).
fn staking_action(transaction: &SignedTransaction) -> Option<StakingAction> {
    let body = &transaction.transaction;
    Some(match body.kind {
        TransactionKind::Transfer => return None,
        TransactionKind::Bond { validator_key } => StakingAction::Bond {
            validator_key,
            amount: body.amount,
            name: body.memo.clone(),
        },
        TransactionKind::Unbond => StakingAction::Unbond {
            amount: body.amount,
        },
        TransactionKind::Unjail => StakingAction::Unjail,
        TransactionKind::RotateKey { new_validator_key } => {
            StakingAction::RotateKey { new_validator_key }
        }
    })
}

fn no_staking() -> StateError {
    StateError::BadStakingTransaction {
        reason: "this state has no staking (it was built from accounts alone)".into(),
    }
}

/// An account as the parent state holds it: slot and value, or nothing.
type ParentRead = Option<(u64, Account)>;

/// Where an account lives during execution.
#[derive(Clone, Copy)]
enum Location {
    /// Already written by this block, at this position of `touched`.
    Touched(usize),
    /// Unchanged so far, in the parent at this slot.
    Parent(u64),
    /// No account yet.
    Absent,
}

/// A block being executed on top of a parent state (an overlay: the
/// parent is never modified). Made by [`LedgerState::begin_block`].
///
/// # Rules
///
/// A transfer is valid iff it passes [`check_stateless`], its nonce is the
/// sender's next nonce and the sender's balance covers amount + fee. It
/// then debits amount + fee from the sender, increments the sender's
/// nonce, and credits the amount to the recipient (a self-transfer thus
/// only pays the fee). An address without an account reads as balance 0,
/// nonce 0; an account is created, with the next free slot, when first
/// written (sender before recipient).
///
/// Fees: the fees of all transfers of the block are summed and credited to
/// the block's proposer (the header's `proposer` address) after the last
/// transfer, so they are spendable from the next block on. A block with no
/// fees leaves the proposer's account untouched.
pub struct BlockExecution<'a> {
    parent: &'a LedgerState,
    chain_id: &'a ChainId,
    proposer: Address,
    height: Height,
    touched: Vec<AccountChange>,
    positions: HashMap<Address, usize>,
    created: u64,
    fees: u64,
    transactions: usize,
    /// The staking state as this block has changed it (copied from the
    /// parent at the first change).
    staking: Option<StakingState>,
    /// Operators named by the block's evidence.
    offenders: Vec<Offence>,
    /// Stake bonded out of balances by this block.
    bonded_from_balances: u64,
}

impl BlockExecution<'_> {
    /// Makes room for `transactions` more transfers.
    fn reserve(&mut self, transactions: usize) {
        let accounts = transactions.saturating_mul(2).saturating_add(1);
        self.touched.reserve(accounts);
        self.positions.reserve(accounts);
    }

    /// Number of transfers accepted so far.
    pub fn len(&self) -> usize {
        self.transactions
    }

    /// Whether no transfer was accepted yet.
    pub fn is_empty(&self) -> bool {
        self.transactions == 0
    }

    /// Fees collected so far.
    pub fn fees(&self) -> u64 {
        self.fees
    }

    /// The operators the block's evidence names, jailed and slashed at
    /// [`BlockExecution::finish`].
    pub fn record_offenders(&mut self, offenders: &[Offence]) {
        self.offenders.extend_from_slice(offenders);
    }

    /// The staking state as this block has left it so far.
    fn staking_view(&self) -> Option<&StakingState> {
        self.staking.as_ref().or(self.parent.staking.as_deref())
    }

    /// The account at `address` as this block has left it so far.
    pub fn account(&self, address: &Address) -> Option<Account> {
        match self.locate(address) {
            (Location::Absent, _) => None,
            (_, account) => Some(account),
        }
    }

    fn locate(&self, address: &Address) -> (Location, Account) {
        self.locate_with(address, None)
    }

    /// Locates `address`: in this block's writes, else in the parent (as
    /// `parent_read` says, when the caller has already read it).
    fn locate_with(
        &self,
        address: &Address,
        parent_read: Option<ParentRead>,
    ) -> (Location, Account) {
        if let Some(&position) = self.positions.get(address) {
            return (Location::Touched(position), self.touched[position].account);
        }
        match parent_read.unwrap_or_else(|| self.parent.read(address)) {
            Some((slot, account)) => (Location::Parent(slot), account),
            None => (Location::Absent, Account::default()),
        }
    }

    fn write(&mut self, location: Location, address: Address, account: Account) {
        match location {
            Location::Touched(position) => self.touched[position].account = account,
            Location::Parent(slot) => {
                self.positions.insert(address, self.touched.len());
                self.touched.push(AccountChange {
                    slot,
                    address,
                    account,
                    created: false,
                });
            }
            Location::Absent => {
                let slot = self.parent.slots.len() as u64 + self.created;
                self.created += 1;
                self.positions.insert(address, self.touched.len());
                self.touched.push(AccountChange {
                    slot,
                    address,
                    account,
                    created: true,
                });
            }
        }
    }

    /// Checks that `new_accounts` more accounts fit.
    fn check_room(&self, new_accounts: u64) -> Result<(), StateError> {
        let total = self.parent.slots.len() as u64 + self.created + new_accounts;
        if total > ACCOUNTS_MAX {
            return Err(StateError::TooManyAccounts { max: ACCOUNTS_MAX });
        }
        Ok(())
    }

    /// Executes one transfer (whose signature the caller has verified).
    /// On error nothing changes.
    pub fn push(&mut self, transaction: &SignedTransaction) -> Result<(), StateError> {
        let sender = transaction.transaction.sender.address();
        self.push_prepared(transaction, sender, None)
    }

    /// [`BlockExecution::push`] with the sender's address computed and,
    /// optionally, the parent's sender and recipient accounts read.
    fn push_prepared(
        &mut self,
        transaction: &SignedTransaction,
        sender_address: Address,
        parent_reads: Option<(ParentRead, ParentRead)>,
    ) -> Result<(), StateError> {
        let (sender_read, recipient_read) = match parent_reads {
            Some((sender, recipient)) => (Some(sender), Some(recipient)),
            None => (None, None),
        };
        if self.transactions >= BLOCK_TRANSACTIONS_MAX {
            return Err(StateError::TooManyTransactions {
                count: self.transactions + 1,
                max: BLOCK_TRANSACTIONS_MAX,
            });
        }
        check_stateless(self.chain_id, transaction)?;
        let transfer = &transaction.transaction;
        let need = transfer.total_cost().ok_or(StateError::Overflow {
            what: "amount + fee",
        })?;
        let (sender_location, sender) = self.locate_with(&sender_address, sender_read);
        let rules = self.parent.fee_params;
        if rules.existential_deposit > 0 && matches!(sender_location, Location::Absent) {
            return Err(StateError::UnknownSender {
                address: sender_address,
            });
        }
        if transfer.nonce != sender.nonce {
            return Err(StateError::BadNonce {
                expected: sender.nonce,
                got: transfer.nonce,
            });
        }
        if sender.balance < need {
            return Err(StateError::InsufficientFunds {
                need,
                have: sender.balance,
            });
        }
        let sender_after = Account {
            balance: sender.balance - need,
            nonce: sender.nonce.checked_add(1).ok_or(StateError::Overflow {
                what: "sender nonce",
            })?,
        };
        let fees = self
            .fees
            .checked_add(transfer.fee)
            .ok_or(StateError::Overflow { what: "block fees" })?;
        if transfer.fee < rules.min_fee {
            return Err(StateError::FeeTooLow {
                fee: transfer.fee,
                min: rules.min_fee,
            });
        }
        if rules.existential_deposit > 0 {
            let left = if transfer.is_transfer() && transfer.recipient == sender_address {
                sender_after.balance.saturating_add(transfer.amount)
            } else {
                sender_after.balance
            };
            if left != 0 && left < rules.existential_deposit {
                return Err(StateError::BelowExistentialDeposit {
                    what: "the sender",
                    balance: left,
                    min: rules.existential_deposit,
                    hint: "spend all of the balance or leave at least the deposit",
                });
            }
        }
        if let Some(action) = staking_action(transaction) {
            let bonded = match action {
                StakingAction::Bond { amount, .. } => amount,
                _ => 0,
            };
            let bonded_from_balances =
                self.bonded_from_balances
                    .checked_add(bonded)
                    .ok_or(StateError::Overflow {
                        what: "bonded stake",
                    })?;
            self.check_room(u64::from(matches!(sender_location, Location::Absent)))?;
            // The overlay is copied from the parent once per block, not per
            // transaction; `apply_action` changes nothing when it refuses.
            if self.staking.is_none() {
                self.staking = Some(self.staking_view().ok_or_else(no_staking)?.clone());
            }
            if let Some(staking) = self.staking.as_mut() {
                staking.apply_action(sender_address, self.height, &action)?;
            }
            self.write(sender_location, sender_address, sender_after);
            self.bonded_from_balances = bonded_from_balances;
            self.fees = fees;
            self.transactions += 1;
            return Ok(());
        }
        let credit = |balance: u64| {
            balance
                .checked_add(transfer.amount)
                .ok_or(StateError::Overflow {
                    what: "recipient balance",
                })
        };
        if transfer.recipient == sender_address {
            let after = Account {
                balance: credit(sender_after.balance)?,
                nonce: sender_after.nonce,
            };
            self.check_room(u64::from(matches!(sender_location, Location::Absent)))?;
            self.write(sender_location, sender_address, after);
        } else {
            let (recipient_location, recipient) =
                self.locate_with(&transfer.recipient, recipient_read);
            if matches!(recipient_location, Location::Absent)
                && transfer.amount < rules.existential_deposit
            {
                return Err(StateError::BelowExistentialDeposit {
                    what: "the new account",
                    balance: transfer.amount,
                    min: rules.existential_deposit,
                    hint: "an address without an account receives at least the deposit",
                });
            }
            let recipient_after = Account {
                balance: credit(recipient.balance)?,
                nonce: recipient.nonce,
            };
            let new_accounts = u64::from(matches!(sender_location, Location::Absent))
                + u64::from(matches!(recipient_location, Location::Absent));
            self.check_room(new_accounts)?;
            self.write(sender_location, sender_address, sender_after);
            self.write(recipient_location, transfer.recipient, recipient_after);
        }
        self.fees = fees;
        self.transactions += 1;
        Ok(())
    }

    /// Ends the block: releases the unbonding entries due, credits the fees
    /// to the proposer, jails and slashes the offenders, moves the
    /// validator sets (see [`crate::staking`]), and computes the new tree
    /// and root.
    pub fn finish(mut self) -> Result<ExecutionOutcome, StateError> {
        let mut released_total = 0u64;
        let staking_moves = self.staking_view().is_some_and(|staking| {
            !staking.is_settled()
                || staking.has_release_by(self.height)
                || !self.offenders.is_empty()
        }) || self.staking.is_some();
        if staking_moves {
            let mut staking = match self.staking.take() {
                Some(staking) => staking,
                None => self.staking_view().cloned().ok_or_else(no_staking)?,
            };
            for (operator, amount) in staking.take_released(self.height) {
                let (location, account) = self.locate(&operator);
                let after = Account {
                    balance: account
                        .balance
                        .checked_add(amount)
                        .ok_or(StateError::Overflow {
                            what: "released stake",
                        })?,
                    nonce: account.nonce,
                };
                self.check_room(u64::from(matches!(location, Location::Absent)))?;
                self.write(location, operator, after);
                released_total = released_total.saturating_add(amount);
            }
            let mut jailed_now = BTreeSet::new();
            let offenders = std::mem::take(&mut self.offenders);
            for offence in &offenders {
                if let Some(key) = staking.punish(offence, self.height) {
                    jailed_now.insert(key);
                }
            }
            staking.rotate_sets(&jailed_now);
            self.staking = Some(staking);
        }
        if self.fees > 0 {
            let (location, proposer) = self.locate(&self.proposer);
            let after = Account {
                balance: proposer
                    .balance
                    .checked_add(self.fees)
                    .ok_or(StateError::Overflow {
                        what: "proposer balance",
                    })?,
                nonce: proposer.nonce,
            };
            self.check_room(u64::from(matches!(location, Location::Absent)))?;
            self.write(location, self.proposer, after);
        }
        let mut changes = self.touched;
        changes.sort_unstable_by_key(|change| change.slot);
        let parent = self.parent;
        let parent_len = parent.slots.len() as u64;
        let links = ring_links(parent, &changes);
        let mut leaves: Vec<(u64, Hash)> = Vec::with_capacity(changes.len() + links.len());
        let mut link_of = links.iter().peekable();
        for change in &changes {
            // Links of parent accounts the block did not write come before
            // this slot: they get a leaf of their own.
            while let Some(&&(slot, next)) = link_of.peek() {
                if slot >= change.slot {
                    break;
                }
                let entry = parent.slots[slot as usize];
                leaves.push((slot, leaf_hash(&entry.address, &entry.account, &next)));
                link_of.next();
            }
            let next = match link_of.peek() {
                Some(&&(slot, next)) if slot == change.slot => {
                    link_of.next();
                    next
                }
                // Created accounts always have a link: only parent slots
                // reach here.
                _ => parent
                    .slots
                    .get(change.slot as usize)
                    .map_or(change.address, |entry| entry.next),
            };
            leaves.push((
                change.slot,
                leaf_hash(&change.address, &change.account, &next),
            ));
        }
        for &(slot, next) in link_of {
            let entry = parent.slots[slot as usize];
            leaves.push((slot, leaf_hash(&entry.address, &entry.account, &next)));
        }
        let tree = self
            .parent
            .tree
            .compute_update(leaves, parent_len + self.created);
        let staking = self.staking.map(Arc::new);
        let staking_hash = match &staking {
            Some(staking) => staking.hash(),
            None => self.parent.staking_hash(),
        };
        let balances_total = self
            .parent
            .balances_total
            .checked_add(released_total)
            .and_then(|total| total.checked_sub(self.bonded_from_balances))
            .ok_or(StateError::Overflow {
                what: "total of balances",
            })?;
        Ok(ExecutionOutcome {
            parent_root: self.parent.root,
            parent_len,
            state_root: state_root_of(&tree.root(), &staking_hash),
            changes,
            links,
            fees: self.fees,
            proposer: self.proposer,
            transaction_count: self.transactions,
            tree,
            balances_total,
            staking,
            staking_hash,
            height: self.height,
        })
    }
}
