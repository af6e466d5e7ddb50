//! The one error type of `cairn-types`.

use thiserror::Error;

/// Everything that can go wrong while parsing, decoding or checking a type.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TypesError {
    /// An encoded object is longer than the limit for its kind.
    #[error("{what} is {len} bytes, more than the limit of {max} bytes")]
    TooLarge {
        /// What was being decoded.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit it broke.
        max: usize,
    },
    /// Bytes that do not decode as the expected object.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// Why decoding failed.
        reason: String,
    },
    /// A hex string that is not valid hex of the expected length.
    #[error("bad hex for {what}: {reason} (expected {expected_len} hex characters)")]
    BadHex {
        /// What was being parsed.
        what: &'static str,
        /// Why parsing failed.
        reason: String,
        /// The number of hex characters expected.
        expected_len: usize,
    },
    /// An address string that is not a valid bech32m `cairn1...` address.
    #[error("bad address {input:?}: {reason}; an address looks like cairn1... (bech32m)")]
    BadAddress {
        /// The string as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A chain id outside the allowed charset or length.
    #[error("bad chain id {input:?}: {reason}")]
    BadChainId {
        /// The string as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Bytes that are not a valid ed25519 public key.
    #[error("bad public key: {reason}")]
    BadPublicKey {
        /// Why the key was refused.
        reason: String,
    },
    /// A signature that does not verify under ZIP-215.
    #[error("signature does not verify")]
    BadSignature,
    /// An arithmetic operation on a counter overflowed.
    #[error("arithmetic overflow in {what}")]
    Overflow {
        /// Which counter overflowed.
        what: &'static str,
    },
    /// A commit certificate that does not prove a decision.
    #[error("invalid commit certificate: {reason}")]
    BadCertificate {
        /// What is wrong with it.
        reason: String,
    },
    /// A validator set that breaks a rule (empty, zero power, duplicates).
    #[error("invalid validator set: {reason}")]
    BadValidatorSet {
        /// What is wrong with it.
        reason: String,
    },
}
