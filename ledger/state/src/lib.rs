//! `cairn-state`: accounts, the validity rules of transfers, block execution
//! and the authenticated state root. Deterministic: no clock, no I/O, no
//! randomness that can reach a result.
//!
//! # Model
//!
//! An [`Account`] is `{ balance, nonce }` keyed by [`cairn_types::Address`].
//! A transfer is valid iff it names the chain, its memo fits
//! [`cairn_types::limits::MEMO_BYTES_MAX`], amount + fee does not overflow
//! ([`check_stateless`]), its signature verifies under ZIP-215
//! ([`verify_signatures`], batched), its nonce is the sender's next nonce
//! and the sender's balance covers amount + fee. Under the chain's fee
//! rules ([`cairn_types::FeeParams`]) it also pays at least the minimum
//! fee, its sender has an account, a new recipient gets at least the
//! existential deposit, and the sender is not left with less than the
//! deposit (but more than 0). Fees are credited to the block's proposer
//! (the header's `proposer` address) after the block's last transfer; see
//! [`BlockExecution`] for the exact rules. Staking transactions follow
//! [`staking`]; their stake is part of the state root ([`state_root_of`]).
//!
//! A block is valid only if every transfer is valid in order; execution is
//! all or nothing and never modifies the parent state:
//! [`LedgerState::execute`] returns an [`ExecutionOutcome`] that
//! [`LedgerState::apply`] later copies in without re-executing.
//!
//! # The state root
//!
//! Choice: an authenticated binary Merkle tree over account *slots*, kept in
//! memory, with batched path updates ([`tree`] documents the exact hashing).
//! Each account gets the next slot the first time it is written, so slots
//! are dense and the tree is complete and shallow (depth 17 at 100,000
//! accounts, 20 at a million). A block's touched leaves are sorted and
//! their paths rewritten level by level, so upper levels shared by many
//! paths are hashed once: the cost is O(touched x log N) and never O(N).
//! Only the leaves (address, slot, balance, nonce) need persisting; the
//! inner nodes are rebuilt in memory at start-up in O(N) (about 2N
//! SHA-256 compressions). Proofs are sibling paths ([`AccountProof`]).
//! Each leaf also names its account's successor in address order, so a
//! leaf whose gap holds an address proves that the address has no
//! account ([`AbsenceProof`]).
//!
//! Why not a sparse Merkle tree keyed by address (`jmt` and the like):
//! its nodes live in a key-value store, and every update reads and writes
//! a path of nodes there; `jmt` measured on this machine at about 20 us per
//! touched account, 40 us per transfer, against a budget of 2-3 us. Slots
//! make the tree dense, so it fits in flat arrays in memory, and the slot
//! order is deterministic because blocks are ordered.
//!
//! Measured on the 2-core development machine (one core, `cargo bench -p
//! cairn-state --profile dev`, a block of 5,000 pre-verified transfers
//! between random accounts, each touching ~10,000 leaves): execution and
//! state root together cost **1.5 us per transfer at 100,000 accounts**
//! (7.6 ms per block) and **2.7 us per transfer at 1,000,000 accounts**
//! (13.4 ms per block). Profiles put the root (leaf hashes and tree
//! update) at about 60% of that: some 0.9 us per transfer at 100,000
//! accounts and 1.6 us at a million, within the 2-3 us budget. Two
//! habits keep it there: the tree update gathers the unchanged siblings of
//! a level in one pass before hashing (their cache misses overlap), and
//! [`LedgerState::execute`] reads every sender and recipient from the
//! parent before executing. The full pipeline with the RocksDB commit is
//! measured by `cairn-store`'s `commit` benchmark.
//!
//! The inner-node hash is standard SHA-256 of 65 bytes (two compressions).
//! Calling the compression function directly (`sha2`'s `compress`
//! feature) measured about 20% faster per node; it is not enabled because
//! it would change `sha2`'s features, and rebuild it, for the whole
//! workspace.

pub mod account;
pub mod error;
pub mod ledger;
pub mod rules;
pub mod staking;
pub mod tree;

pub use account::{Account, AccountChange};
pub use error::StateError;
pub use ledger::{state_root_of, BlockExecution, ExecutionOutcome, LedgerState};
pub use rules::{check_stateless, signature_verdicts, verify_signatures};
pub use staking::{Candidate, Offence, StakingState, UnbondingEntry, STAKING_STATE_BYTES_MAX};
pub use tree::{
    verify_absence_in_state, verify_in_state, verify_proof, AbsenceProof, AccountProof,
    ACCOUNTS_MAX,
};
