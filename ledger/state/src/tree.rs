//! The authenticated state tree: a binary Merkle tree over account slots,
//! kept in memory, updated in batches.
//!
//! # Shape
//!
//! Every account has a *slot*, its leaf position: accounts get slots
//! 0, 1, 2, ... in the order they first appear (genesis order, then the
//! order of execution, which every node shares because blocks are
//! ordered). With `n` accounts the tree has depth `d = ceil(log2 n)` and is
//! the complete binary tree over `2^d` leaves, the leaves past `n` being
//! empty.
//!
//! - leaf: `SHA-256(0x10 || address (20) || balance (8, BE) || nonce (8, BE)
//!   || next (20))`, where `next` is the account's *successor*: the
//!   smallest address of the state greater than `address`, or, for the
//!   greatest address, the smallest address of all (the addresses form a
//!   ring in byte order; a single account is its own successor)
//! - inner node: `SHA-256(0x11 || left (32) || right (32))`
//! - empty leaf: 32 zero bytes; empty subtree of height `k + 1`:
//!   `inner(empty_k, empty_k)`
//! - root: `SHA-256(0x12 || n (8, BE) || top)`, where `top` is the node at
//!   depth 0 (the single leaf when `n = 1`, the empty leaf when `n = 0`).
//!
//! The prefixes keep leaves, inner nodes and roots apart, and apart from
//! the transactions tree of `cairn-types` (prefixes 0x00 and 0x01). The
//! root commits to `n`, so a proof also fixes the tree's depth.
//!
//! # Proofs of absence
//!
//! Slots say nothing about addresses, so the successor links do: an
//! address `x` has no account iff some leaf's `(address, next)` gap holds
//! it, `address < x < next` in byte order (or, on the ring's wrap from the
//! greatest address to the smallest, `x > address` or `x < next`). An
//! [`AbsenceProof`] is that leaf with its path; in the empty state (`n = 0`)
//! the root alone proves that no address has an account. Creating an
//! account rewrites one more leaf, its predecessor's, whose `next` now
//! points at it.
//!
//! # Cost
//!
//! Only non-empty nodes are stored: level `k` holds `ceil(n / 2^k)`
//! hashes, about `2n` in all (64 MB for a million accounts). A batch of
//! touched leaves is applied level by level: the dirty nodes of one level
//! are sorted, so siblings that are both dirty sit side by side and their
//! parent is hashed once. A block touching `t` accounts costs at most
//! `t x d` inner hashes and in practice far fewer, because the upper
//! levels are shared. Growing the tree by one level costs one hash.

use std::sync::OnceLock;

use cairn_types::{Address, Hash};
use sha2::{Digest, Sha256};

use crate::Account;

/// Most accounts a state may hold: slots are `u32`-sized, so the tree is
/// at most [`TREE_DEPTH_MAX`] levels deep.
pub const ACCOUNTS_MAX: u64 = 1 << 32;
/// Depth of the tree at [`ACCOUNTS_MAX`] accounts.
pub const TREE_DEPTH_MAX: usize = 32;

/// Prefix of a leaf hash.
const LEAF_PREFIX: u8 = 0x10;
/// Prefix of an inner-node hash.
const NODE_PREFIX: u8 = 0x11;
/// Prefix of the root hash.
const ROOT_PREFIX: u8 = 0x12;

/// The hash of the leaf of `address` holding `account`, whose successor
/// on the address ring is `next`: two SHA-256 blocks (57 bytes of
/// message).
pub fn leaf_hash(address: &Address, account: &Account, next: &Address) -> Hash {
    let mut bytes = [0u8; 1 + 20 + 8 + 8 + 20];
    bytes[0] = LEAF_PREFIX;
    bytes[1..21].copy_from_slice(&address.0);
    bytes[21..29].copy_from_slice(&account.balance.to_be_bytes());
    bytes[29..37].copy_from_slice(&account.nonce.to_be_bytes());
    bytes[37..57].copy_from_slice(&next.0);
    Hash(Sha256::digest(bytes).into())
}

/// Whether `address` lies strictly inside the gap of the ring from `from`
/// to its successor `next`: no account can exist there.
pub fn gap_holds(from: &Address, next: &Address, address: &Address) -> bool {
    if from < next {
        from < address && address < next
    } else {
        // The wrap from the greatest address to the smallest (or a single
        // account, its own successor: every other address).
        address > from || address < next
    }
}

/// The hash of an inner node: two SHA-256 blocks (65 bytes of message).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut bytes = [0u8; 1 + 32 + 32];
    bytes[0] = NODE_PREFIX;
    bytes[1..33].copy_from_slice(&left.0);
    bytes[33..65].copy_from_slice(&right.0);
    Hash(Sha256::digest(bytes).into())
}

/// The state root of a tree of `leaf_count` leaves whose top node is `top`.
pub fn root_hash(leaf_count: u64, top: &Hash) -> Hash {
    let mut bytes = [0u8; 1 + 8 + 32];
    bytes[0] = ROOT_PREFIX;
    bytes[1..9].copy_from_slice(&leaf_count.to_be_bytes());
    bytes[9..41].copy_from_slice(&top.0);
    Hash(Sha256::digest(bytes).into())
}

/// The hashes of empty subtrees, by height: `[0]` is the empty leaf.
fn empty_hashes() -> &'static [Hash; TREE_DEPTH_MAX + 1] {
    static EMPTY: OnceLock<[Hash; TREE_DEPTH_MAX + 1]> = OnceLock::new();
    EMPTY.get_or_init(|| {
        let mut empty = [Hash::ZERO; TREE_DEPTH_MAX + 1];
        for height in 1..=TREE_DEPTH_MAX {
            empty[height] = node_hash(&empty[height - 1], &empty[height - 1]);
        }
        empty
    })
}

/// Depth of the tree over `leaf_count` leaves: `ceil(log2 leaf_count)`.
pub fn depth(leaf_count: u64) -> usize {
    if leaf_count <= 1 {
        0
    } else {
        (u64::BITS - (leaf_count - 1).leading_zeros()) as usize
    }
}

/// Number of stored nodes at `level` for `leaf_count` leaves.
fn level_len(leaf_count: u64, level: usize) -> u64 {
    // leaf_count <= 2^32 and level <= 32: no overflow.
    (leaf_count + (1u64 << level) - 1) >> level
}

/// The tree's nodes, level by level (`levels[0]` are the leaf hashes,
/// `levels[depth]` holds the top node).
#[derive(Clone, Debug, Default)]
pub(crate) struct AccountTree {
    levels: Vec<Vec<Hash>>,
    leaf_count: u64,
}

/// The nodes a batch of leaf changes rewrites, computed against a tree
/// without modifying it, and the root they yield. Applying it to that
/// same tree is a plain copy.
#[derive(Clone, Debug, Default)]
pub(crate) struct TreeUpdate {
    /// Per level, the rewritten nodes `(index, hash)` in index order.
    levels: Vec<Vec<(u64, Hash)>>,
    /// Leaves after the update.
    leaf_count: u64,
    /// The root after the update.
    root: Hash,
}

impl TreeUpdate {
    /// The root after the update.
    pub(crate) fn root(&self) -> Hash {
        self.root
    }
}

impl AccountTree {
    /// Builds the tree over `leaves` (in slot order) from scratch: O(n).
    pub(crate) fn from_leaves(leaves: Vec<Hash>) -> AccountTree {
        let leaf_count = leaves.len() as u64;
        let empty = empty_hashes();
        let mut levels = vec![leaves];
        let mut height = 0;
        while levels[height].len() > 1 {
            let below = &levels[height];
            let above: Vec<Hash> = below
                .chunks(2)
                .map(|pair| match pair {
                    [left, right] => node_hash(left, right),
                    [left] => node_hash(left, &empty[height]),
                    _ => unreachable!("chunks(2) yields one or two items"),
                })
                .collect();
            levels.push(above);
            height += 1;
        }
        AccountTree { levels, leaf_count }
    }

    /// Number of leaves.
    pub(crate) fn leaf_count(&self) -> u64 {
        self.leaf_count
    }

    /// The node at `level` and `index`, or the empty subtree's hash past
    /// the stored nodes.
    fn node(&self, level: usize, index: u64) -> Hash {
        self.levels
            .get(level)
            .and_then(|nodes| usize::try_from(index).ok().and_then(|i| nodes.get(i)))
            .copied()
            .unwrap_or(empty_hashes()[level])
    }

    /// The top node (the root before binding the leaf count).
    fn top(&self) -> Hash {
        self.node(depth(self.leaf_count), 0)
    }

    /// The state root.
    pub(crate) fn root(&self) -> Hash {
        root_hash(self.leaf_count, &self.top())
    }

    /// Computes, without changing the tree, the nodes rewritten by setting
    /// the leaves `leaves` (sorted by slot, no repeats; every slot below
    /// `leaf_count`, and every slot at or past the current leaf count
    /// present) in a tree of `leaf_count` leaves.
    pub(crate) fn compute_update(&self, leaves: Vec<(u64, Hash)>, leaf_count: u64) -> TreeUpdate {
        debug_assert!(leaf_count >= self.leaf_count);
        debug_assert!(leaves.windows(2).all(|pair| pair[0].0 < pair[1].0));
        debug_assert!(leaves.last().is_none_or(|last| last.0 < leaf_count));
        let new_depth = depth(leaf_count);
        let mut levels = Vec::with_capacity(new_depth + 1);
        let mut current = leaves;
        for level in 0..new_depth {
            // First gather the siblings that are not rewritten: a tight loop
            // of independent loads, so their cache misses overlap instead of
            // waiting one by one between hashes (this halves the update's
            // cost at a million accounts).
            let paired = |position: usize| {
                let index = current[position].0;
                index & 1 == 0
                    && current
                        .get(position + 1)
                        .is_some_and(|&(next, _)| next == index + 1)
            };
            let mut siblings = Vec::with_capacity(current.len());
            let mut position = 0;
            while position < current.len() {
                if paired(position) {
                    position += 2;
                } else {
                    // A sibling that is not rewritten is either stored or
                    // empty: every node covering a new leaf is dirty.
                    siblings.push(self.node(level, current[position].0 ^ 1));
                    position += 1;
                }
            }
            let mut siblings = siblings.into_iter();
            let mut above = Vec::with_capacity(current.len() / 2 + 1);
            let mut position = 0;
            while position < current.len() {
                let (index, hash) = current[position];
                let (left, right) = if paired(position) {
                    position += 1;
                    (hash, current[position].1)
                } else {
                    let sibling = siblings.next().unwrap_or(Hash::ZERO);
                    if index & 1 == 0 {
                        (hash, sibling)
                    } else {
                        (sibling, hash)
                    }
                };
                position += 1;
                above.push((index >> 1, node_hash(&left, &right)));
            }
            levels.push(current);
            current = above;
        }
        let top = match current.first() {
            Some(&(_, top)) => top,
            None => self.top(),
        };
        levels.push(current);
        TreeUpdate {
            levels,
            leaf_count,
            root: root_hash(leaf_count, &top),
        }
    }

    /// Writes an update computed by [`AccountTree::compute_update`] on this
    /// same tree.
    pub(crate) fn apply(&mut self, update: &TreeUpdate) {
        for (level, nodes) in update.levels.iter().enumerate() {
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            let stored = &mut self.levels[level];
            let len = level_len(update.leaf_count, level) as usize;
            // New positions are all in `nodes` (they cover new leaves).
            stored.resize(len, Hash::ZERO);
            for &(index, hash) in nodes {
                stored[index as usize] = hash;
            }
        }
        self.leaf_count = update.leaf_count;
        debug_assert_eq!(self.root(), update.root);
    }

    /// The proof of the leaf at `slot`, whose account's successor is
    /// `next`, or `None` past the last leaf.
    pub(crate) fn prove(&self, slot: u64, next: Address) -> Option<AccountProof> {
        if slot >= self.leaf_count {
            return None;
        }
        let siblings = (0..depth(self.leaf_count))
            .map(|level| self.node(level, (slot >> level) ^ 1))
            .collect();
        Some(AccountProof {
            slot,
            leaf_count: self.leaf_count,
            next,
            siblings,
        })
    }
}

/// A proof that an account is a leaf of a state root: its slot, the
/// number of leaves, the account's successor on the address ring (part of
/// the leaf) and the sibling hashes from the leaf up to the top.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccountProof {
    /// The account's leaf position.
    pub slot: u64,
    /// The number of accounts in the state.
    pub leaf_count: u64,
    /// The account's successor: the next greater address with an account
    /// (the smallest one after the greatest).
    pub next: Address,
    /// Sibling hashes, from the leaf's sibling up to the top's child.
    pub siblings: Vec<Hash>,
}

impl AccountProof {
    /// Whether this proof shows that `address` holds `account` in the
    /// state whose root is `root`.
    pub fn verify(&self, root: &Hash, address: &Address, account: &Account) -> bool {
        self.root_for(address, account) == Some(*root)
    }

    /// The account-tree root this proof gives for `address` holding
    /// `account`, or `None` if the proof is malformed (slot, leaf count or
    /// number of siblings inconsistent).
    pub fn root_for(&self, address: &Address, account: &Account) -> Option<Hash> {
        if self.leaf_count > ACCOUNTS_MAX
            || self.slot >= self.leaf_count
            || self.siblings.len() != depth(self.leaf_count)
        {
            return None;
        }
        let mut node = leaf_hash(address, account, &self.next);
        for (level, sibling) in self.siblings.iter().enumerate() {
            node = if (self.slot >> level) & 1 == 0 {
                node_hash(&node, sibling)
            } else {
                node_hash(sibling, &node)
            };
        }
        Some(root_hash(self.leaf_count, &node))
    }
}

/// Whether `proof` shows that `address` holds `account` in the state
/// whose state root (a header's `state_root`) is `state_root`, given the
/// staking hash that root also covers
/// ([`crate::state_root_of`]).
pub fn verify_in_state(
    state_root: &Hash,
    staking_hash: &Hash,
    address: &Address,
    account: &Account,
    proof: &AccountProof,
) -> bool {
    proof
        .root_for(address, account)
        .is_some_and(|accounts_root| {
            crate::state_root_of(&accounts_root, staking_hash) == *state_root
        })
}

/// A proof that an address has no account: the account whose gap on the
/// address ring holds it ([`gap_holds`]), with its proof, or, in a state
/// without accounts, nothing but the root.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbsenceProof {
    /// The state holds no account at all.
    EmptyState,
    /// `neighbor` holds `account`, and the address lies between it and
    /// its successor `proof.next`.
    Gap {
        /// The account just below the address on the ring.
        neighbor: Address,
        /// What the neighbor holds (part of its leaf).
        account: Account,
        /// The neighbor's proof.
        proof: AccountProof,
    },
}

impl AbsenceProof {
    /// The account-tree root this proof gives for `address` having no
    /// account, or `None` if it does not show that (the gap does not hold
    /// the address, or the neighbor's proof is malformed).
    pub fn root_for(&self, address: &Address) -> Option<Hash> {
        match self {
            AbsenceProof::EmptyState => Some(root_hash(0, &empty_hashes()[0])),
            AbsenceProof::Gap {
                neighbor,
                account,
                proof,
            } => {
                if !gap_holds(neighbor, &proof.next, address) {
                    return None;
                }
                proof.root_for(neighbor, account)
            }
        }
    }

    /// Whether this proof shows that `address` has no account under the
    /// account-tree root `root`.
    pub fn verify(&self, root: &Hash, address: &Address) -> bool {
        self.root_for(address) == Some(*root)
    }
}

/// Whether `proof` shows that `address` has no account in the state whose
/// state root is `state_root`, given the staking hash that root also
/// covers.
pub fn verify_absence_in_state(
    state_root: &Hash,
    staking_hash: &Hash,
    address: &Address,
    proof: &AbsenceProof,
) -> bool {
    proof.root_for(address).is_some_and(|accounts_root| {
        crate::state_root_of(&accounts_root, staking_hash) == *state_root
    })
}

/// Whether `proof` shows that `address` holds `account` under the
/// account-tree root `root`.
pub fn verify_proof(
    root: &Hash,
    address: &Address,
    account: &Account,
    proof: &AccountProof,
) -> bool {
    proof.verify(root, address, account)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The tree's definition, recursively, over leaves padded to `2^d`.
    fn reference_root(leaves: &[Hash]) -> Hash {
        fn subtree(leaves: &[Hash], start: usize, height: usize) -> Hash {
            if height == 0 {
                return leaves.get(start).copied().unwrap_or(Hash::ZERO);
            }
            let half = 1 << (height - 1);
            node_hash(
                &subtree(leaves, start, height - 1),
                &subtree(leaves, start + half, height - 1),
            )
        }
        root_hash(
            leaves.len() as u64,
            &subtree(leaves, 0, depth(leaves.len() as u64)),
        )
    }

    fn leaf(n: u64) -> Hash {
        leaf_hash(
            &Address([n as u8; 20]),
            &Account {
                balance: n,
                nonce: n * 7,
            },
            &Address([n as u8 + 1; 20]),
        )
    }

    #[test]
    fn gaps_hold_what_lies_between_and_wrap_around() {
        let a = |n: u8| Address([n; 20]);
        assert!(gap_holds(&a(3), &a(7), &a(5)));
        assert!(!gap_holds(&a(3), &a(7), &a(3)));
        assert!(!gap_holds(&a(3), &a(7), &a(7)));
        assert!(!gap_holds(&a(3), &a(7), &a(9)));
        // The wrap from the greatest address to the smallest.
        assert!(gap_holds(&a(9), &a(2), &a(10)));
        assert!(gap_holds(&a(9), &a(2), &a(1)));
        assert!(!gap_holds(&a(9), &a(2), &a(5)));
        assert!(!gap_holds(&a(9), &a(2), &a(2)));
        // A single account is its own successor: every other address.
        assert!(gap_holds(&a(4), &a(4), &a(0)));
        assert!(gap_holds(&a(4), &a(4), &a(200)));
        assert!(!gap_holds(&a(4), &a(4), &a(4)));
    }

    #[test]
    fn depth_is_ceil_log2() {
        let expected = [
            (0, 0),
            (1, 0),
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 3),
            (8, 3),
            (9, 4),
        ];
        for (count, d) in expected {
            assert_eq!(depth(count), d, "{count} leaves");
        }
        assert_eq!(depth(ACCOUNTS_MAX), TREE_DEPTH_MAX);
    }

    #[test]
    fn built_tree_matches_the_definition() {
        for count in 0..40u64 {
            let leaves: Vec<Hash> = (0..count).map(leaf).collect();
            let tree = AccountTree::from_leaves(leaves.clone());
            assert_eq!(tree.root(), reference_root(&leaves), "{count} leaves");
        }
    }

    #[test]
    fn batched_updates_match_a_rebuild() {
        for start in 0..20u64 {
            for grow in 0..12u64 {
                let mut leaves: Vec<Hash> = (0..start).map(leaf).collect();
                let mut tree = AccountTree::from_leaves(leaves.clone());
                // Rewrite every third old leaf and add `grow` new ones.
                let mut changes: Vec<(u64, Hash)> = (0..start)
                    .filter(|slot| slot % 3 == 1)
                    .map(|slot| (slot, leaf(slot + 100)))
                    .collect();
                changes.extend((start..start + grow).map(|slot| (slot, leaf(slot + 200))));
                for &(slot, hash) in &changes {
                    if (slot as usize) < leaves.len() {
                        leaves[slot as usize] = hash;
                    } else {
                        leaves.push(hash);
                    }
                }
                let update = tree.compute_update(changes, start + grow);
                assert_eq!(update.root(), reference_root(&leaves));
                tree.apply(&update);
                assert_eq!(tree.root(), reference_root(&leaves));
                assert_eq!(
                    tree.levels,
                    AccountTree::from_leaves(leaves.clone()).levels,
                    "start {start} grow {grow}"
                );
            }
        }
    }

    #[test]
    fn proofs_verify_and_bind_the_leaf() {
        for count in 1..20u64 {
            let leaves: Vec<Hash> = (0..count).map(leaf).collect();
            let tree = AccountTree::from_leaves(leaves);
            let root = tree.root();
            for slot in 0..count {
                let proof = tree.prove(slot, Address([slot as u8 + 1; 20])).unwrap();
                let address = Address([slot as u8; 20]);
                let account = Account {
                    balance: slot,
                    nonce: slot * 7,
                };
                assert!(proof.verify(&root, &address, &account));
                let other = Account {
                    balance: slot + 1,
                    ..account
                };
                assert!(!proof.verify(&root, &address, &other));
                let mut wrong_count = proof.clone();
                wrong_count.leaf_count += 1;
                assert!(!wrong_count.verify(&root, &address, &account));
                let mut wrong_next = proof.clone();
                wrong_next.next = Address([slot as u8 + 2; 20]);
                assert!(!wrong_next.verify(&root, &address, &account));
            }
            assert!(tree.prove(count, Address([0; 20])).is_none());
        }
    }
}
