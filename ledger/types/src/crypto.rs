//! Keys and signatures.
//!
//! ed25519-dalek makes keys and signs. Single verification goes through
//! `ed25519-zebra`, and batch verification through
//! [`crate::signature_batch`] (the same equation as `ed25519-zebra`'s,
//! with a cache of decompressed keys). Both implement the ZIP-215 rules: cofactored
//! verification that accepts non-canonical point encodings, so single and
//! batch verification agree on every input. ed25519-dalek's cofactorless
//! single verification and its batch verification disagree on signatures
//! with small-order components (ed25519-dalek issue #115); nodes using it
//! could split on a crafted signature.
//!
//! Consensus messages reach a node several times (a vote as gossip, in the
//! driver, inside certificates): [`PublicKey::verify_remembered`] verifies
//! a (key, signature, message) triple once per process and remembers the
//! successes ([`RememberedSignatures`]).
//!
//! `ed25519-zebra` rather than its fork `ed25519-consensus`: the same
//! rules and API, but it sits on curve25519-dalek 4, which picks the AVX2
//! backend at run time; measured here, 44,500 signatures/s in batches of
//! 1,024 on one core against 32,900 with `ed25519-consensus` (which uses
//! curve25519-dalek-ng's portable backend).

use std::{
    collections::{HashSet, VecDeque},
    fmt,
    sync::{Mutex, MutexGuard, OnceLock, PoisonError},
};

use ed25519_dalek::Signer as _;
use ed25519_zebra::VerificationKey;

use crate::{hash::fixed_bytes_serde, limits::SIGNATURE_BATCH_MAX, Address, Hash, TypesError};

/// An ed25519 public key (32 bytes, as encoded on the wire; not checked to
/// be a valid point until it verifies something).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PublicKey(pub [u8; 32]);

fixed_bytes_serde!(PublicKey, 32, "public key");

impl PublicKey {
    /// The address of the account this key controls.
    pub fn address(&self) -> Address {
        Address::from_public_key(self)
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters and checks that they encode a curve point.
    pub fn from_hex(input: &str) -> Result<PublicKey, TypesError> {
        let bytes = crate::hash::parse_hex_array::<32>("public key", input)?;
        let key = PublicKey(bytes);
        key.check_point()?;
        Ok(key)
    }

    /// Checks that the bytes decode to a curve point (ZIP-215 rules).
    pub fn check_point(&self) -> Result<(), TypesError> {
        VerificationKey::try_from(self.0)
            .map(|_| ())
            .map_err(|error| TypesError::BadPublicKey {
                reason: error.to_string(),
            })
    }

    /// Verifies `signature` over `message` under ZIP-215.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), TypesError> {
        let key = VerificationKey::try_from(self.0).map_err(|_| TypesError::BadSignature)?;
        key.verify(&ed25519_zebra::Signature::from(signature.0), message)
            .map_err(|_| TypesError::BadSignature)
    }

    /// [`PublicKey::verify`] for consensus messages, which reach a node
    /// several times (a vote at the gossip gate, then in the driver, then
    /// inside the commit certificate and the next block's parent
    /// certificate): a triple that verified before is not verified again
    /// ([`RememberedSignatures`]). The verdict is the same either way;
    /// only successes are remembered.
    pub fn verify_remembered(
        &self,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), TypesError> {
        let triple = RememberedSignatures::key(self, signature, message);
        if RememberedSignatures::contains(&triple) {
            return Ok(());
        }
        self.verify(message, signature)?;
        RememberedSignatures::insert(triple);
        Ok(())
    }
}

/// Most (key, signature, message) triples remembered as verified by
/// [`PublicKey::verify_remembered`]; the oldest are forgotten first. A
/// height brings about two votes per validator, so this covers many
/// heights of a large set.
pub const REMEMBERED_SIGNATURES_MAX: usize = 8_192;

/// The consensus signatures this process verified lately, by the SHA-256
/// of key, signature and message (so a hit is exactly a triple that
/// verified). Transactions are not remembered here: there are too many,
/// and the mempool keeps its own record of verified transactions.
pub struct RememberedSignatures {
    known: HashSet<Hash>,
    order: VecDeque<Hash>,
}

impl RememberedSignatures {
    fn key(public_key: &PublicKey, signature: &Signature, message: &[u8]) -> Hash {
        crate::hash::sha256_parts(&[&public_key.0, &signature.0, message])
    }

    fn shared() -> MutexGuard<'static, RememberedSignatures> {
        static SHARED: OnceLock<Mutex<RememberedSignatures>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                Mutex::new(RememberedSignatures {
                    known: HashSet::new(),
                    order: VecDeque::new(),
                })
            })
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn contains(triple: &Hash) -> bool {
        Self::shared().known.contains(triple)
    }

    fn insert(triple: Hash) {
        let mut shared = Self::shared();
        if shared.known.insert(triple) {
            shared.order.push_back(triple);
            while shared.order.len() > REMEMBERED_SIGNATURES_MAX {
                if let Some(oldest) = shared.order.pop_front() {
                    shared.known.remove(&oldest);
                }
            }
        }
    }

    /// Whether `signature` by `public_key` over `message` verified before.
    pub fn verified_before(public_key: &PublicKey, signature: &Signature, message: &[u8]) -> bool {
        Self::contains(&Self::key(public_key, signature, message))
    }

    /// Remembers a triple that has just been verified.
    pub fn remember(public_key: &PublicKey, signature: &Signature, message: &[u8]) {
        Self::insert(Self::key(public_key, signature, message));
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", &self.to_hex()[..12])
    }
}

/// An ed25519 signature (64 bytes: R then s).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

fixed_bytes_serde!(Signature, 64, "signature");

impl Default for Signature {
    fn default() -> Self {
        Signature([0; 64])
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}..)", hex::encode(&self.0[..6]))
    }
}

/// A signing key with its public key. The secret never appears in `Debug`
/// output and is zeroed on drop.
#[derive(Clone)]
pub struct Keypair {
    signing_key: ed25519_dalek::SigningKey,
    public_key: PublicKey,
}

impl Keypair {
    /// The keypair for a 32-byte secret seed. Callers draw seeds from the
    /// operating system's randomness; this crate has no source of its own.
    pub fn from_seed(seed: &[u8; 32]) -> Keypair {
        let signing_key = ed25519_dalek::SigningKey::from_bytes(seed);
        let public_key = PublicKey(signing_key.verifying_key().to_bytes());
        Keypair {
            signing_key,
            public_key,
        }
    }

    /// The secret seed, for writing a key file.
    pub fn seed(&self) -> [u8; 32] {
        self.signing_key.to_bytes()
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }

    /// The address of the account this key controls.
    pub fn address(&self) -> Address {
        self.public_key.address()
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.signing_key.sign(message).to_bytes())
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({:?}, secret hidden)", self.public_key)
    }
}

/// Verifies many signatures at once, with the same verdicts as
/// [`PublicKey::verify`] on each (ZIP-215 batch and single verification
/// agree). A failed batch falls back to single verification to find the
/// culprits, so one bad signature costs its batch a second pass.
#[derive(Default)]
pub struct BatchVerifier<'a> {
    items: Vec<(PublicKey, Signature, &'a [u8])>,
}

impl<'a> BatchVerifier<'a> {
    /// An empty batch.
    pub fn new() -> Self {
        BatchVerifier { items: Vec::new() }
    }

    /// An empty batch with room for `capacity` items.
    pub fn with_capacity(capacity: usize) -> Self {
        BatchVerifier {
            items: Vec::with_capacity(capacity),
        }
    }

    /// Adds one (key, signature, message) triple.
    pub fn push(&mut self, public_key: PublicKey, signature: Signature, message: &'a [u8]) {
        self.items.push((public_key, signature, message));
    }

    /// Number of queued items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Verifies everything queued; one verdict per item, in order. A
    /// batch of [`PARALLEL_VERIFY_ITEMS_MIN`] items or more is split over
    /// the machine's cores, so a node that has them to itself (`--dev`, one
    /// validator) verifies on all of them.
    pub fn verify(self) -> Vec<bool> {
        if self.items.len() < PARALLEL_VERIFY_ITEMS_MIN {
            return verify_items(&self.items);
        }
        let cores = machine_cores();
        if cores < 2 {
            return verify_items(&self.items);
        }
        let part_len = self.items.len().div_ceil(cores);
        std::thread::scope(|scope| {
            let mut parts = self.items.chunks(part_len);
            let first = parts.next().unwrap_or(&[]);
            let helpers: Vec<_> = parts
                .map(|part| (part.len(), scope.spawn(move || verify_items(part))))
                .collect();
            let mut verdicts = verify_items(first);
            for (part_len, helper) in helpers {
                // A helper that panicked vouches for nothing: its part fails.
                verdicts.extend(helper.join().unwrap_or_else(|_| vec![false; part_len]));
            }
            verdicts
        })
    }

    /// Whether every queued signature verifies.
    pub fn verify_all(self) -> bool {
        self.verify().into_iter().all(|ok| ok)
    }
}

/// The cores this process may use, read once: reading them costs system
/// calls and, in a container, reads of cgroup files (tens of microseconds,
/// more than verifying a small batch).
fn machine_cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES
        .get_or_init(|| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
}

/// Batches smaller than this are verified on the calling thread alone:
/// below it, starting a thread costs more than it saves.
pub const PARALLEL_VERIFY_ITEMS_MIN: usize = 256;

/// Verifies `items` on this thread, in chunks of [`SIGNATURE_BATCH_MAX`];
/// a failed chunk falls back to single verification to find the culprits.
fn verify_items(items: &[(PublicKey, Signature, &[u8])]) -> Vec<bool> {
    let mut verdicts = Vec::with_capacity(items.len());
    for chunk in items.chunks(SIGNATURE_BATCH_MAX) {
        if crate::signature_batch::verify_chunk(chunk) {
            verdicts.extend(std::iter::repeat_n(true, chunk.len()));
        } else {
            verdicts.extend(chunk.iter().map(|(public_key, signature, message)| {
                public_key.verify(message, signature).is_ok()
            }));
        }
    }
    verdicts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keypair(n: u8) -> Keypair {
        Keypair::from_seed(&[n; 32])
    }

    #[test]
    fn sign_and_verify() {
        let key = keypair(1);
        let signature = key.sign(b"hello");
        assert!(key.public_key().verify(b"hello", &signature).is_ok());
        assert!(key.public_key().verify(b"hellO", &signature).is_err());
        assert!(keypair(2)
            .public_key()
            .verify(b"hello", &signature)
            .is_err());
    }

    #[test]
    fn batch_finds_the_bad_signature() {
        let messages: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 40]).collect();
        let mut batch = BatchVerifier::new();
        for (i, message) in messages.iter().enumerate() {
            let key = keypair(i as u8);
            let mut signature = key.sign(message);
            if i == 7 {
                signature.0[40] ^= 1;
            }
            batch.push(key.public_key(), signature, message);
        }
        let verdicts = batch.verify();
        assert_eq!(verdicts.iter().filter(|ok| !**ok).count(), 1);
        assert!(!verdicts[7]);
    }

    #[test]
    fn debug_hides_the_secret() {
        let key = keypair(9);
        let text = format!("{key:?}");
        assert!(!text.contains(&hex::encode(key.seed())));
    }
}
