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

/// Random valid signatures and every kind of corruption: the batch verdict
/// of each item equals `ed25519-zebra`'s single verdict, and a batch of
/// good signatures passes, twice (the second time from the key cache).
#[test]
fn batch_agrees_with_single_on_valid_and_corrupted_signatures() {
    use cairn_types::Keypair;
    let keys: Vec<Keypair> = (0..16u8).map(|n| Keypair::from_seed(&[n; 32])).collect();
    let messages: Vec<Vec<u8>> = (0..64u32)
        .map(|n| n.to_le_bytes().repeat(n as usize % 7 + 1))
        .collect();
    let mut items: Vec<(PublicKey, Signature, &[u8])> = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let key = &keys[index % keys.len()];
        let mut public_key = key.public_key();
        let mut signature = key.sign(message);
        match index % 8 {
            1 => signature.0[3] ^= 0x10,  // R changed
            2 => signature.0[40] ^= 0x01, // s changed
            3 => signature.0[63] |= 0xf0, // s not canonical
            4 => public_key = keys[(index + 1) % keys.len()].public_key(), // wrong key
            5 => public_key.0 = [0xff; 32], // key not a point (y >= p, no x)
            _ => {}
        }
        items.push((public_key, signature, message));
    }
    let mut batch = BatchVerifier::new();
    for (public_key, signature, message) in &items {
        batch.push(*public_key, *signature, message);
    }
    let verdicts = batch.verify();
    for ((public_key, signature, message), verdict) in items.iter().zip(&verdicts) {
        assert_eq!(*verdict, public_key.verify(message, signature).is_ok());
    }
    assert_eq!(verdicts.iter().filter(|ok| **ok).count(), 24);

    for _ in 0..2 {
        let mut good = BatchVerifier::new();
        for (index, message) in messages.iter().enumerate() {
            let key = &keys[index % keys.len()];
            good.push(key.public_key(), key.sign(message), message);
        }
        assert!(good.verify_all());
    }
}
