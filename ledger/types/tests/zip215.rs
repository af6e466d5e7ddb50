//! ZIP-215 conformance: the 196 signatures built from every encoding of a
//! small-order point (the 8 canonical ones and 6 non-canonical ones) as the
//! public key and as R, with s = 0, over the message "Zcash".
//!
//! ZIP-215 accepts all of them, and Cairn's single and batch verification
//! must agree with it on each. ed25519-dalek's strict verification rejects
//! them, which is why verification does not go through it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_types::{BatchVerifier, PublicKey, Signature};
use curve25519_dalek::constants::EIGHT_TORSION;

/// Non-canonical encodings of small-order points (y >= p, or a set sign bit
/// on x = 0), from the ZIP-215 test vectors.
const NON_CANONICAL_SMALL_ORDER: [&str; 6] = [
    "0100000000000000000000000000000000000000000000000000000000000080",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
];

fn encodings() -> Vec<[u8; 32]> {
    let mut all: Vec<[u8; 32]> = EIGHT_TORSION
        .iter()
        .map(|point| point.compress().to_bytes())
        .collect();
    for text in NON_CANONICAL_SMALL_ORDER {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).unwrap();
        all.push(bytes);
    }
    all
}

fn cases() -> Vec<(PublicKey, Signature)> {
    let encodings = encodings();
    let mut cases = Vec::new();
    for public_key in &encodings {
        for r in &encodings {
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(r);
            cases.push((PublicKey(*public_key), Signature(signature)));
        }
    }
    cases
}

#[test]
fn all_196_vectors_verify_singly() {
    let cases = cases();
    assert_eq!(cases.len(), 196);
    for (public_key, signature) in &cases {
        assert!(
            public_key.verify(b"Zcash", signature).is_ok(),
            "ZIP-215 accepts key {public_key} with R {}",
            hex::encode(&signature.0[..32])
        );
    }
}

#[test]
fn batch_agrees_with_single_on_every_vector() {
    let cases = cases();
    for (public_key, signature) in &cases {
        let mut batch = BatchVerifier::new();
        batch.push(*public_key, *signature, b"Zcash");
        assert_eq!(
            batch.verify(),
            vec![public_key.verify(b"Zcash", signature).is_ok()]
        );
    }
    let mut batch = BatchVerifier::new();
    for (public_key, signature) in &cases {
        batch.push(*public_key, *signature, b"Zcash");
    }
    assert!(batch.verify_all());
}

#[test]
fn strict_cofactorless_verification_would_disagree() {
    // The reason for ZIP-215: ed25519-dalek's strict check refuses these.
    let cases = cases();
    let refused_by_strict = cases
        .iter()
        .filter(|(public_key, signature)| {
            let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&public_key.0) else {
                return true;
            };
            let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
            key.verify_strict(b"Zcash", &signature).is_err()
        })
        .count();
    assert_eq!(refused_by_strict, cases.len());
}

#[test]
fn non_canonical_s_is_refused_by_both_paths() {
    // s >= the group order must be refused; single and batch agree.
    let (public_key, mut signature) = cases()[0];
    signature.0[32..].copy_from_slice(&[0xff; 32]);
    assert!(public_key.verify(b"Zcash", &signature).is_err());
    let mut batch = BatchVerifier::new();
    batch.push(public_key, signature, b"Zcash");
    assert_eq!(batch.verify(), vec![false]);
}
