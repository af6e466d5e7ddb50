//! `cairn-types`: the vocabulary every other Cairn crate speaks.
//!
//! It owns the identifiers ([`Height`], [`Round`], [`ValidatorIndex`],
//! [`VotingPower`], [`Timestamp`], [`ChainId`]), hashes ([`Hash`]), keys and
//! signatures ([`PublicKey`], [`Signature`], [`Keypair`], [`BatchVerifier`]),
//! addresses ([`Address`]), the ledger objects ([`Transaction`],
//! [`SignedTransaction`], [`Header`], [`Block`]), the consensus objects
//! ([`Vote`], [`Proposal`], [`CommitCertificate`], [`Evidence`],
//! [`ValidatorSet`]), the transactions Merkle root, the canonical codec and
//! the [`limits`] every decode and queue is bounded by.
//!
//! This crate is deterministic: no clock, no I/O, no source of randomness
//! except the one the batch signature verifier takes internally.
//!
//! # Signature validity
//!
//! Every path (mempool, proposal validation, block sync) verifies ed25519
//! signatures under one rule, ZIP-215: single verification through
//! `ed25519-zebra`, batch verification through [`signature_batch`] (the
//! same equation, with a cache of decompressed keys); the two agree on
//! every input, crafted ones included. `ed25519-dalek` only makes keys and
//! signs.

pub mod address;
pub mod block;
pub mod codec;
pub mod consensus;
pub mod crypto;
pub mod error;
pub mod hash;
pub mod ids;
pub mod limits;
pub mod merkle;
pub mod params;
pub mod signature_batch;
pub mod transaction;
pub mod validator;

pub use address::Address;
pub use block::{Block, CompactBlock, Header};
pub use codec::{decode, encode};
pub use consensus::{
    CommitCertificate, CommitSignature, DuplicateVoteEvidence, Evidence, Proposal, Vote, VoteType,
};
pub use crypto::{BatchVerifier, Keypair, PublicKey, RememberedSignatures, Signature};
pub use error::TypesError;
pub use hash::{sha256, Hash};
pub use ids::{ChainId, Height, Round, Timestamp, ValidatorIndex, VotingPower};
pub use params::{ConsensusParams, FeeParams, StakingParams};
pub use transaction::{SignedTransaction, Transaction, TransactionKind};
pub use validator::{Validator, ValidatorSet};
