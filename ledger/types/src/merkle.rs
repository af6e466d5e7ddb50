//! Merkle roots in the style of RFC 6962 (Certificate Transparency): leaves
//! and inner nodes are hashed under different one-byte prefixes, so a leaf
//! can never pass for an inner node, and an unbalanced tree splits at the
//! largest power of two below its size.

use crate::{
    hash::{sha256, sha256_parts},
    Hash,
};

/// Prefix of a leaf hash.
const LEAF_PREFIX: [u8; 1] = [0x00];
/// Prefix of an inner-node hash.
const NODE_PREFIX: [u8; 1] = [0x01];

/// The hash of one leaf.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    sha256_parts(&[&LEAF_PREFIX, leaf])
}

/// The hash of an inner node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256_parts(&[&NODE_PREFIX, &left.0, &right.0])
}

/// The Merkle root of `leaves` (each leaf is 32 bytes, e.g. a transaction
/// hash). The root of no leaves is SHA-256 of the empty string.
pub fn merkle_root(leaves: &[Hash]) -> Hash {
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

#[cfg(test)]
mod tests {
    use super::*;

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
                merkle_root(&leaves),
                reference_root(&leaves),
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
