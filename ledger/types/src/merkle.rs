//! Merkle roots in the style of RFC 6962 (Certificate Transparency): leaves
//! and inner nodes are hashed under different one-byte prefixes, so a leaf
//! can never pass for an inner node, and an unbalanced tree splits at the
//! largest power of two below its size. The root a header names binds the
//! leaf count too (`SHA-256(0x02 || count (8, BE) || tree hash)`), so an
//! audit path proves a leaf's index as well as its membership: without it,
//! leaf 2 of 3 would verify as leaf 1 of 2.

use crate::{
    hash::{sha256, sha256_parts},
    Hash,
};

/// Prefix of a leaf hash.
const LEAF_PREFIX: [u8; 1] = [0x00];
/// Prefix of an inner-node hash.
const NODE_PREFIX: [u8; 1] = [0x01];
/// Prefix of a root binding the leaf count.
const ROOT_PREFIX: [u8; 1] = [0x02];

/// The hash of one leaf.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    sha256_parts(&[&LEAF_PREFIX, leaf])
}

/// The hash of an inner node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256_parts(&[&NODE_PREFIX, &left.0, &right.0])
}

/// The root a header names for `leaves` (each 32 bytes, e.g. a transaction
/// hash): [`counted_root`] of their number and their [`tree_hash`].
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    counted_root(leaves.len() as u64, &tree_hash(leaves))
}

/// `SHA-256(0x02 || count (8, BE) || tree)`: the root of a tree of `count`
/// leaves whose RFC 6962 tree hash is `tree`.
pub fn counted_root(count: u64, tree: &Hash) -> Hash {
    sha256_parts(&[&ROOT_PREFIX, &count.to_be_bytes(), &tree.0])
}

/// The RFC 6962 tree hash of `leaves` (what audit paths are made of). The
/// tree hash of no leaves is SHA-256 of the empty string.
pub fn tree_hash(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return sha256(b"");
    }
    // Bottom-up: hash the leaves, then combine level by level. Pairing
    // neighbours and carrying an odd last node up unchanged yields the same
    // root as RFC 6962's recursive split at the largest power of two.
    let mut level: Vec<Hash> = leaves.iter().map(|leaf| leaf_hash(&leaf.0)).collect();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            match pair {
                [left, right] => next.push(node_hash(left, right)),
                [single] => next.push(*single),
                _ => unreachable!("chunks(2) yields one or two items"),
            }
        }
        level = next;
    }
    level[0]
}

/// The audit path of leaf `index` among `leaves` (RFC 6962, section
/// 2.1.1: the siblings from the leaf up, each the root of the subtree
/// beside the path), or `None` if `index` is out of range. O(n log n).
pub fn audit_path(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    fn walk(leaves: &[Hash], index: usize, path: &mut Vec<Hash>) {
        if leaves.len() <= 1 {
            return;
        }
        // The largest power of two below the size.
        let split = leaves.len().next_power_of_two() / 2;
        if index < split {
            walk(&leaves[..split], index, path);
            path.push(tree_hash(&leaves[split..]));
        } else {
            walk(&leaves[split..], index - split, path);
            path.push(tree_hash(&leaves[..split]));
        }
    }
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    walk(leaves, index, &mut path);
    Some(path)
}

/// Whether `path` proves that `leaf` is leaf `index` of a tree of `count`
/// leaves whose root ([`merkle_root`], which binds `count`) is `root` (the
/// verification of RFC 9162, section 2.1.3.2).
pub fn verify_inclusion(root: &Hash, leaf: &Hash, index: u64, count: u64, path: &[Hash]) -> bool {
    if index >= count {
        return false;
    }
    let (mut position, mut last) = (index, count - 1);
    let mut node = leaf_hash(&leaf.0);
    for sibling in path {
        if last == 0 {
            return false;
        }
        if position & 1 == 1 || position == last {
            node = node_hash(sibling, &node);
            while position & 1 == 0 && position != 0 {
                position >>= 1;
                last >>= 1;
            }
        } else {
            node = node_hash(&node, sibling);
        }
        position >>= 1;
        last >>= 1;
    }
    last == 0 && counted_root(count, &node) == *root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_paths_verify_for_every_leaf_and_nothing_else() {
        for count in 1..34u8 {
            let leaves: Vec<Hash> = (0..count).map(|i| sha256(&[i])).collect();
            let root = merkle_root(&leaves);
            for index in 0..count as usize {
                let path = audit_path(&leaves, index).unwrap();
                let (index_u64, count_u64) = (index as u64, u64::from(count));
                assert!(verify_inclusion(
                    &root,
                    &leaves[index],
                    index_u64,
                    count_u64,
                    &path
                ));
                // Another leaf or position fails, and so does a changed sibling.
                let other = sha256(b"other");
                assert!(!verify_inclusion(
                    &root, &other, index_u64, count_u64, &path
                ));
                if count > 1 {
                    let moved = (index_u64 + 1) % count_u64;
                    assert!(!verify_inclusion(
                        &root,
                        &leaves[index],
                        moved,
                        count_u64,
                        &path
                    ));
                    let mut bent = path.clone();
                    bent[0] = other;
                    assert!(!verify_inclusion(
                        &root,
                        &leaves[index],
                        index_u64,
                        count_u64,
                        &bent
                    ));
                }
            }
            assert!(audit_path(&leaves, count as usize).is_none());
        }
    }

    /// The recursive definition of RFC 6962, section 2.1.
    fn reference_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => sha256(b""),
            1 => leaf_hash(&leaves[0].0),
            n => {
                let split = n.next_power_of_two() / 2;
                node_hash(
                    &reference_root(&leaves[..split]),
                    &reference_root(&leaves[split..]),
                )
            }
        }
    }

    #[test]
    fn matches_the_recursive_definition() {
        for count in 0..40u8 {
            let leaves: Vec<Hash> = (0..count).map(|i| sha256(&[i])).collect();
            assert_eq!(
                tree_hash(&leaves),
                reference_root(&leaves),
                "{count} leaves"
            );
            assert_eq!(
                merkle_root(&leaves),
                counted_root(u64::from(count), &reference_root(&leaves)),
                "{count} leaves"
            );
        }
    }

    #[test]
    fn a_leaf_is_not_an_inner_node() {
        let a = sha256(b"a");
        let b = sha256(b"b");
        let inner = node_hash(&leaf_hash(&a.0), &leaf_hash(&b.0));
        assert_ne!(merkle_root(&[inner]), merkle_root(&[a, b]));
    }
}
