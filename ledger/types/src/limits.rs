//! Every bound of the Cairn wire and disk formats, defined once.
//!
//! Units come last in the names. A decode checks the length of its input
//! against the bound for its kind *before* decoding, so no input can make a
//! node allocate beyond these figures. Consensus parameters in the genesis
//! file may set tighter block bounds, never looser ones.

/// Largest encoded signed transaction.
pub const TRANSACTION_BYTES_MAX: usize = 1024;
/// Largest transfer memo.
pub const MEMO_BYTES_MAX: usize = 128;
/// Longest chain id.
pub const CHAIN_ID_BYTES_MAX: usize = 48;
/// Hard upper bound on an encoded block; genesis may choose less.
pub const BLOCK_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Hard upper bound on transactions in one block; genesis may choose less.
pub const BLOCK_TRANSACTIONS_MAX: usize = 65_536;
/// Most evidence items one block may carry.
pub const BLOCK_EVIDENCE_MAX: usize = 64;
/// Consensus rule: a block at height `h` may record evidence of heights
/// `h - EVIDENCE_AGE_MAX_BLOCKS ..= h` only, at most one piece per
/// (validator, height) across the chain (a second proves nothing new).
pub const EVIDENCE_AGE_MAX_BLOCKS: u64 = 100;
/// Most validators in a validator set.
pub const VALIDATORS_MAX: usize = 256;
/// Longest validator name in a validator set.
pub const VALIDATOR_NAME_BYTES_MAX: usize = 64;
/// Largest encoded vote.
pub const VOTE_BYTES_MAX: usize = 256;
/// Largest encoded proposal (without its block).
pub const PROPOSAL_BYTES_MAX: usize = 256;
/// Largest encoded commit certificate.
pub const CERTIFICATE_BYTES_MAX: usize = 128 + VALIDATORS_MAX * 80;
/// Largest encoded evidence item (two votes and a tag).
pub const EVIDENCE_BYTES_MAX: usize = 2 * VOTE_BYTES_MAX + 16;
/// Largest encoded header.
pub const HEADER_BYTES_MAX: usize = 512;
/// Largest encoded compact block ([`crate::CompactBlock`]): a header, a
/// 32-byte hash per transaction, the parent's certificate and the
/// evidence, with room for their length prefixes.
pub const COMPACT_BLOCK_BYTES_MAX: usize = HEADER_BYTES_MAX
    + BLOCK_TRANSACTIONS_MAX * 32
    + CERTIFICATE_BYTES_MAX
    + BLOCK_EVIDENCE_MAX * EVIDENCE_BYTES_MAX
    + 64;
/// Largest encoded validator set.
pub const VALIDATOR_SET_BYTES_MAX: usize =
    16 + VALIDATORS_MAX * (32 + 20 + 10 + VALIDATOR_NAME_BYTES_MAX + 4);
/// Largest batch of signatures handed to one batch verification call.
pub const SIGNATURE_BATCH_MAX: usize = 1024;
