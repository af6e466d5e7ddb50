//! Blocks and their headers. A block's hash is SHA-256 of its canonical
//! header; the header commits to everything else in the block (the
//! transactions root, the parent's certificate and the evidence) and to the
//! state after it. [`CompactBlock`] is a block with its transactions by
//! hash, the form a proposal is gossiped in.

use serde::{Deserialize, Serialize};

use crate::{
    codec,
    limits::{
        BLOCK_BYTES_MAX, BLOCK_EVIDENCE_MAX, BLOCK_TRANSACTIONS_MAX, COMPACT_BLOCK_BYTES_MAX,
        HEADER_BYTES_MAX,
    },
    merkle::merkle_root,
    Address, ChainId, CommitCertificate, Evidence, Hash, Height, SignedTransaction, Timestamp,
    TypesError,
};

/// The header of a block.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Header {
    /// The chain.
    pub chain_id: ChainId,
    /// This block's height (1 for the first block).
    pub height: Height,
    /// Block time, chosen by the proposer, later than the parent's.
    pub time: Timestamp,
    /// Hash of the parent block (the genesis hash for height 1).
    pub parent_hash: Hash,
    /// Address of the validator that built this block; it receives the fees.
    pub proposer: Address,
    /// Merkle root of the transaction hashes.
    pub transactions_root: Hash,
    /// State root after this block's transactions.
    pub state_root: Hash,
    /// Hash of the parent's commit certificate ([`Hash::ZERO`] at height 1).
    pub parent_certificate_hash: Hash,
    /// Merkle root of the hashes of the evidence in this block.
    pub evidence_hash: Hash,
    /// Hash of the validator set that decides this block (signs its
    /// commit certificate).
    pub validator_set_hash: Hash,
    /// Hash of the validator set of the next height. The set of height
    /// H+2 is computed from the state after block H, so every header names
    /// the set that follows it and a certificate chain can be followed
    /// across set changes.
    pub next_validator_set_hash: Hash,
}

impl Header {
    /// The block hash: SHA-256 of the canonical header.
    pub fn hash(&self) -> Hash {
        codec::sha256_of_encoding(self)
    }

    /// Decodes canonical bytes, bounded by [`HEADER_BYTES_MAX`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Header, TypesError> {
        codec::decode("header", bytes, HEADER_BYTES_MAX)
    }
}

/// A block: a header, the ordered transactions, the certificate that
/// decided the parent, and evidence of misbehaviour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// The header.
    pub header: Header,
    /// The transactions, executed in this order.
    pub transactions: Vec<SignedTransaction>,
    /// The commit certificate of the parent (`None` at height 1).
    pub parent_certificate: Option<CommitCertificate>,
    /// Evidence of misbehaviour recorded by this block.
    pub evidence: Vec<Evidence>,
}

impl Block {
    /// The block hash (of the header).
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    /// The height.
    pub fn height(&self) -> Height {
        self.header.height
    }

    /// Canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes canonical bytes, bounded by [`BLOCK_BYTES_MAX`]. Callers
    /// then check [`Block::check_structure`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Block, TypesError> {
        codec::decode("block", bytes, BLOCK_BYTES_MAX)
    }

    /// Merkle root of the given transactions' hashes.
    pub fn transactions_root_of(transactions: &[SignedTransaction]) -> Hash {
        merkle_root(&Self::transaction_hashes_of(transactions))
    }

    /// The hash of each transaction, in order: computed once per block and
    /// handed to every check that needs them ([`Block::check_structure_with`]).
    pub fn transaction_hashes_of(transactions: &[SignedTransaction]) -> Vec<Hash> {
        transactions.iter().map(SignedTransaction::hash).collect()
    }

    /// Merkle root of transaction hashes already computed.
    pub fn transactions_root_of_hashes(hashes: &[Hash]) -> Hash {
        merkle_root(hashes)
    }

    /// Merkle root of the given evidence's hashes.
    pub fn evidence_hash_of(evidence: &[Evidence]) -> Hash {
        let hashes: Vec<Hash> = evidence.iter().map(Evidence::hash).collect();
        merkle_root(&hashes)
    }

    /// The certificate hash a header names for `certificate`.
    pub fn parent_certificate_hash_of(certificate: Option<&CommitCertificate>) -> Hash {
        certificate.map_or(Hash::ZERO, CommitCertificate::hash)
    }

    /// Checks what a block can prove about itself alone: counts within the
    /// hard limits, and the header's commitments to the transactions, the
    /// parent certificate and the evidence. Signatures, state and the
    /// certificate's validity are checked by the layers that know them.
    pub fn check_structure(&self) -> Result<(), TypesError> {
        self.check_structure_with(&Self::transaction_hashes_of(&self.transactions))
    }

    /// [`Block::check_structure`] with the transactions' hashes already
    /// computed (`transaction_hashes[i]` is the hash of transaction `i`;
    /// the caller computed them from this block's transactions).
    pub fn check_structure_with(&self, transaction_hashes: &[Hash]) -> Result<(), TypesError> {
        if self.transactions.len() > BLOCK_TRANSACTIONS_MAX {
            return Err(malformed_block(format!(
                "{} transactions, the limit is {BLOCK_TRANSACTIONS_MAX}",
                self.transactions.len()
            )));
        }
        if transaction_hashes.len() != self.transactions.len() {
            return Err(malformed_block(
                "transactions root does not match the transactions".into(),
            ));
        }
        check_parts(
            &self.header,
            transaction_hashes,
            self.parent_certificate.as_ref(),
            &self.evidence,
        )
    }
}

fn malformed_block(reason: String) -> TypesError {
    TypesError::Malformed {
        what: "block",
        reason,
    }
}

/// The structure check of a block given as its parts, the transactions
/// by hash (see [`Block::check_structure`]).
fn check_parts(
    header: &Header,
    transaction_hashes: &[Hash],
    parent_certificate: Option<&CommitCertificate>,
    evidence: &[Evidence],
) -> Result<(), TypesError> {
    let bad = malformed_block;
    if transaction_hashes.len() > BLOCK_TRANSACTIONS_MAX {
        return Err(bad(format!(
            "{} transactions, the limit is {BLOCK_TRANSACTIONS_MAX}",
            transaction_hashes.len()
        )));
    }
    if evidence.len() > BLOCK_EVIDENCE_MAX {
        return Err(bad(format!(
            "{} evidence items, the limit is {BLOCK_EVIDENCE_MAX}",
            evidence.len()
        )));
    }
    if merkle_root(transaction_hashes) != header.transactions_root {
        return Err(bad(
            "transactions root does not match the transactions".into()
        ));
    }
    if Block::parent_certificate_hash_of(parent_certificate) != header.parent_certificate_hash {
        return Err(bad(
            "parent certificate hash does not match the certificate".into(),
        ));
    }
    if let Some(certificate) = parent_certificate {
        let parent_height = header.height.previous();
        if Some(certificate.height) != parent_height || certificate.block_hash != header.parent_hash
        {
            return Err(bad("parent certificate is not for the parent block".into()));
        }
    } else if header.height != Height(1) {
        return Err(bad("missing the parent's commit certificate".into()));
    }
    if Block::evidence_hash_of(evidence) != header.evidence_hash {
        return Err(bad("evidence hash does not match the evidence".into()));
    }
    Ok(())
}

/// A block with its transactions replaced by their hashes, in block order:
/// what a compact proposal carries. A node that holds the transactions
/// (its mempool usually does: gossip brought them) rebuilds the block with
/// [`CompactBlock::into_block`] and fetches the few it lacks by hash; the
/// header's transactions root commits to the hashes, so the compact block
/// proves as much about itself as the block does
/// ([`CompactBlock::check_structure`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactBlock {
    /// The header.
    pub header: Header,
    /// The hash of each transaction, in block order.
    pub transaction_hashes: Vec<Hash>,
    /// The commit certificate of the parent (`None` at height 1).
    pub parent_certificate: Option<CommitCertificate>,
    /// Evidence of misbehaviour recorded by this block.
    pub evidence: Vec<Evidence>,
}

impl CompactBlock {
    /// The compact form of `block`, whose transactions have the hashes
    /// `transaction_hashes` (in order; the caller computed them from the
    /// block).
    pub fn of(block: &Block, transaction_hashes: Vec<Hash>) -> CompactBlock {
        CompactBlock {
            header: block.header.clone(),
            transaction_hashes,
            parent_certificate: block.parent_certificate.clone(),
            evidence: block.evidence.clone(),
        }
    }

    /// The block hash (of the header).
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    /// Decodes canonical bytes, bounded by [`COMPACT_BLOCK_BYTES_MAX`].
    /// Callers then check [`CompactBlock::check_structure`].
    pub fn from_bytes(bytes: &[u8]) -> Result<CompactBlock, TypesError> {
        codec::decode("compact block", bytes, COMPACT_BLOCK_BYTES_MAX)
    }

    /// [`Block::check_structure`] for the compact form: limits, and the
    /// header's commitments to the transaction hashes, the parent
    /// certificate and the evidence.
    pub fn check_structure(&self) -> Result<(), TypesError> {
        check_parts(
            &self.header,
            &self.transaction_hashes,
            self.parent_certificate.as_ref(),
            &self.evidence,
        )
    }

    /// The block, given its transactions in order. Refused unless each
    /// transaction's hash is the one at its place (so a block rebuilt from
    /// a checked compact block passes [`Block::check_structure`]).
    pub fn into_block(self, transactions: Vec<SignedTransaction>) -> Result<Block, TypesError> {
        if transactions.len() != self.transaction_hashes.len() {
            return Err(malformed_block(format!(
                "{} transactions for {} hashes",
                transactions.len(),
                self.transaction_hashes.len()
            )));
        }
        if let Some(index) = transactions
            .iter()
            .zip(&self.transaction_hashes)
            .position(|(transaction, hash)| transaction.hash() != *hash)
        {
            return Err(malformed_block(format!(
                "transaction {index} is not the one the compact block names"
            )));
        }
        Ok(Block {
            header: self.header,
            transactions,
            parent_certificate: self.parent_certificate,
            evidence: self.evidence,
        })
    }
}
