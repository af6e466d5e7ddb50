//! ZIP-215 batch verification of ed25519 signatures, with a bounded cache
//! of decompressed public keys.
//!
//! The equation is `ed25519-zebra`'s: for random 128-bit `z_i`,
//! `[8]([-Σ z_i s_i]B + Σ [z_i]R_i + Σ [z_i k_i]A_i) == 0`, with
//! `k_i = SHA-512(R_i || A_i || M_i)` over the encodings as given, `s_i`
//! canonical, and R and A decompressed the ZIP-215 way (non-canonical `y`
//! accepted). Terms of one key are merged, as `ed25519-zebra` does.
//!
//! Why not call `ed25519-zebra`'s batch verifier: a profile of a node under
//! load showed half of the verification time in point decompression, and
//! `ed25519-zebra` decompresses every public key again in every batch. A
//! sender signs many transfers, so its decompressed key is kept here
//! ([`KEY_CACHE_MAX`]); only `R`, which is new in every signature, is
//! decompressed each time. The scalars `z_i` are drawn from one 32-byte
//! seed per batch, read from the operating system (`rand_core::OsRng`, the
//! only source of randomness of this crate), and stretched with SHA-512
//! (four scalars per hash), rather than one system call per signature.
//!
//! Verdicts are the same as [`crate::PublicKey::verify`] on each item (the
//! tests compare the two on valid, corrupted and ZIP-215 edge-case inputs).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha512};

use crate::{limits::SIGNATURE_BATCH_MAX, PublicKey, Signature};

/// Most decompressed public keys kept (two generations of half this size;
/// about 200 bytes each, so at most about 13 MiB).
pub const KEY_CACHE_MAX: usize = 65_536;

/// Decompressed public keys, bounded: lookups search the current and the
/// previous generation; when the current one is full it becomes the
/// previous one and the old previous one is dropped.
struct KeyCache {
    current: HashMap<[u8; 32], EdwardsPoint>,
    previous: HashMap<[u8; 32], EdwardsPoint>,
}

impl KeyCache {
    fn get(&mut self, key: &[u8; 32]) -> Option<EdwardsPoint> {
        if let Some(point) = self.current.get(key) {
            return Some(*point);
        }
        let point = self.previous.remove(key)?;
        self.insert(*key, point);
        Some(point)
    }

    fn insert(&mut self, key: [u8; 32], point: EdwardsPoint) {
        if self.current.len() >= KEY_CACHE_MAX / 2 {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, point);
    }
}

fn key_cache() -> MutexGuard<'static, KeyCache> {
    static CACHE: OnceLock<Mutex<KeyCache>> = OnceLock::new();
    CACHE
        .get_or_init(|| {
            Mutex::new(KeyCache {
                current: HashMap::new(),
                previous: HashMap::new(),
            })
        })
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Decompresses `bytes` the ZIP-215 way: any `y`, canonical or not, that
/// gives a point on the curve.
fn decompress(bytes: &[u8; 32]) -> Option<EdwardsPoint> {
    CompressedEdwardsY(*bytes).decompress()
}

/// The public keys of `items`, decompressed, through the cache. `None` for
/// a key that is not a point.
fn public_points(items: &[(PublicKey, Signature, &[u8])]) -> Vec<Option<EdwardsPoint>> {
    let mut points: Vec<Option<EdwardsPoint>> = {
        let mut cache = key_cache();
        items
            .iter()
            .map(|(public_key, _, _)| cache.get(&public_key.0))
            .collect()
    };
    let mut fresh = Vec::new();
    for (point, (public_key, _, _)) in points.iter_mut().zip(items) {
        if point.is_none() {
            *point = decompress(&public_key.0);
            if let Some(decompressed) = point {
                fresh.push((public_key.0, *decompressed));
            }
        }
    }
    if !fresh.is_empty() {
        let mut cache = key_cache();
        for (bytes, point) in fresh {
            cache.insert(bytes, point);
        }
    }
    points
}

/// The random 128-bit scalars of one batch: SHA-512 of a secret seed and a
/// counter, each hash giving four scalars.
struct BatchScalars {
    seed: [u8; 32],
    counter: u64,
    block: [u8; 64],
    used: usize,
}

impl BatchScalars {
    /// Scalars from a seed read from the operating system.
    fn from_os() -> BatchScalars {
        let mut seed = [0u8; 32];
        OsRng.fill_bytes(&mut seed);
        BatchScalars {
            seed,
            counter: 0,
            block: [0; 64],
            used: 64,
        }
    }

    /// The next scalar, below 2^128.
    fn next_scalar(&mut self) -> Scalar {
        if self.used == self.block.len() {
            let mut hasher = Sha512::new();
            hasher.update(self.seed);
            hasher.update(self.counter.to_le_bytes());
            self.block.copy_from_slice(&hasher.finalize());
            self.counter = self.counter.wrapping_add(1);
            self.used = 0;
        }
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(&self.block[self.used..self.used + 16]);
        self.used += 16;
        Scalar::from_bytes_mod_order(bytes)
    }
}

/// `k = SHA-512(R || A || M)` reduced mod l.
fn challenge(signature: &Signature, public_key: &PublicKey, message: &[u8]) -> Scalar {
    let mut hasher = Sha512::new();
    hasher.update(&signature.0[..32]);
    hasher.update(public_key.0);
    hasher.update(message);
    Scalar::from_hash(hasher)
}

/// Whether every item of `items` (at most [`SIGNATURE_BATCH_MAX`]) verifies.
pub(crate) fn verify_chunk(items: &[(PublicKey, Signature, &[u8])]) -> bool {
    debug_assert!(items.len() <= SIGNATURE_BATCH_MAX);
    if items.is_empty() {
        return true;
    }
    let public_points = public_points(items);
    let mut scalars = BatchScalars::from_os();

    // One coefficient per distinct key, one per R, one for B.
    let mut key_slots: HashMap<[u8; 32], usize> = HashMap::with_capacity(items.len());
    let mut key_points: Vec<EdwardsPoint> = Vec::with_capacity(items.len());
    let mut key_coefficients: Vec<Scalar> = Vec::with_capacity(items.len());
    let mut r_points: Vec<EdwardsPoint> = Vec::with_capacity(items.len());
    let mut r_coefficients: Vec<Scalar> = Vec::with_capacity(items.len());
    let mut basepoint_coefficient = Scalar::ZERO;

    for ((public_key, signature, message), public_point) in items.iter().zip(public_points) {
        let Some(public_point) = public_point else {
            return false;
        };
        let mut r_bytes = [0u8; 32];
        r_bytes.copy_from_slice(&signature.0[..32]);
        let Some(r_point) = decompress(&r_bytes) else {
            return false;
        };
        let mut s_bytes = [0u8; 32];
        s_bytes.copy_from_slice(&signature.0[32..]);
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
            return false;
        };
        let k = challenge(signature, public_key, message);
        let z = scalars.next_scalar();

        basepoint_coefficient -= z * s;
        r_points.push(r_point);
        r_coefficients.push(z);
        let slot = *key_slots.entry(public_key.0).or_insert_with(|| {
            key_points.push(public_point);
            key_coefficients.push(Scalar::ZERO);
            key_points.len() - 1
        });
        key_coefficients[slot] += z * k;
    }

    let check = EdwardsPoint::vartime_multiscalar_mul(
        std::iter::once(&basepoint_coefficient)
            .chain(key_coefficients.iter())
            .chain(r_coefficients.iter()),
        std::iter::once(&curve25519_dalek::constants::ED25519_BASEPOINT_POINT)
            .chain(key_points.iter())
            .chain(r_points.iter()),
    );
    check.mul_by_cofactor().is_identity()
}
