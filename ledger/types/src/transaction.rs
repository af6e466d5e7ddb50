//! Transfers: the only transaction of Cairn.

use serde::{Deserialize, Serialize};

use crate::{
    codec, limits::TRANSACTION_BYTES_MAX, sha256, Address, ChainId, Hash, Keypair, PublicKey,
    Signature, TypesError,
};

/// Domain separator of transfer signatures.
pub const TRANSFER_SIGNING_DOMAIN: &[u8] = b"cairn/transfer/v1\0";

/// A transfer of `amount` from the account of `sender` to `recipient`,
/// paying `fee` to the proposer of the block that includes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// The chain this transfer is for; it is signed, so it cannot be
    /// replayed on another chain.
    pub chain_id: ChainId,
    /// The public key of the sending account.
    pub sender: PublicKey,
    /// The receiving account.
    pub recipient: Address,
    /// Units moved to the recipient.
    pub amount: u64,
    /// Units paid to the block's proposer.
    pub fee: u64,
    /// Must equal the sender account's next nonce.
    pub nonce: u64,
    /// Free text of at most [`crate::limits::MEMO_BYTES_MAX`] bytes, checked by `cairn-state`.
    pub memo: String,
}

impl Transaction {
    /// The bytes a sender signs: a domain tag, then the canonical encoding
    /// (which begins with the chain id).
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(TRANSFER_SIGNING_DOMAIN.len() + 128);
        bytes.extend_from_slice(TRANSFER_SIGNING_DOMAIN);
        bytes.extend_from_slice(&codec::encode(self));
        bytes
    }

    /// The sender's address.
    pub fn sender_address(&self) -> Address {
        self.sender.address()
    }

    /// Signs this transfer with `keypair` (which should be the sender's).
    pub fn sign(self, keypair: &Keypair) -> SignedTransaction {
        let signature = keypair.sign(&self.signing_bytes());
        SignedTransaction {
            transaction: self,
            signature,
        }
    }

    /// Total debit of the sender: amount plus fee, or `None` on overflow.
    pub fn total_cost(&self) -> Option<u64> {
        self.amount.checked_add(self.fee)
    }
}

/// A transfer with the sender's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTransaction {
    /// The signed transfer.
    pub transaction: Transaction,
    /// The sender's signature over [`Transaction::signing_bytes`].
    pub signature: Signature,
}

impl SignedTransaction {
    /// The canonical bytes (what `POST /tx` takes as hex).
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes canonical bytes, bounded by [`TRANSACTION_BYTES_MAX`]. Does
    /// not check the signature or the memo: `cairn-state` checks those.
    pub fn from_bytes(bytes: &[u8]) -> Result<SignedTransaction, TypesError> {
        codec::decode("transaction", bytes, TRANSACTION_BYTES_MAX)
    }

    /// The transaction hash: SHA-256 of the canonical bytes.
    pub fn hash(&self) -> Hash {
        sha256(&self.to_bytes())
    }

    /// Checks the signature alone (ZIP-215).
    pub fn verify_signature(&self) -> Result<(), TypesError> {
        self.transaction
            .sender
            .verify(&self.transaction.signing_bytes(), &self.signature)
    }
}
