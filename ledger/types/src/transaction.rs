//! Transactions: transfers and the staking actions (bond, unbond, unjail,
//! rotate a consensus key), one signed shape for all of them.
//!
//! Every transaction names the chain, its sender, a nonce, a fee and a
//! memo, and one [`TransactionKind`]. `recipient` and `amount` keep their
//! transfer meaning; for the staking kinds `recipient` must be the
//! sender's own address and `amount` is the stake bonded or unbonded (0
//! for `unjail` and `rotate_key`). `cairn-state` documents the rules of
//! each kind.

use serde::{Deserialize, Serialize};

use crate::{
    codec, limits::TRANSACTION_BYTES_MAX, Address, ChainId, Hash, Keypair, PublicKey, Signature,
    TypesError,
};

/// Domain separator of transaction signatures (version 2: transactions
/// carry a [`TransactionKind`]).
pub const TRANSFER_SIGNING_DOMAIN: &[u8] = b"cairn/transaction/v2\0";

/// What a transaction does besides paying its fee.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionKind {
    /// Moves `amount` from the sender to `recipient`.
    Transfer,
    /// Moves `amount` from the sender's balance to stake bonded to
    /// `validator_key`; the sender becomes (or must already be) that
    /// validator's operator.
    Bond {
        /// The consensus key that signs votes (not the account key).
        validator_key: PublicKey,
    },
    /// Moves `amount` of the sender's bonded stake to an unbonding entry,
    /// released to its balance after the unbonding period.
    Unbond,
    /// Returns the sender's jailed validator to candidacy once its jail
    /// period is over.
    Unjail,
    /// Replaces the consensus key of the sender's validator.
    RotateKey {
        /// The new consensus key.
        new_validator_key: PublicKey,
    },
}

impl TransactionKind {
    /// The name used in JSON, rejections and the CLI.
    pub fn name(&self) -> &'static str {
        match self {
            TransactionKind::Transfer => "transfer",
            TransactionKind::Bond { .. } => "bond",
            TransactionKind::Unbond => "unbond",
            TransactionKind::Unjail => "unjail",
            TransactionKind::RotateKey { .. } => "rotate_key",
        }
    }
}

/// A transaction of `sender`, paying `fee` to the operator of the
/// validator that proposed the block including it. For a transfer,
/// `amount` goes to `recipient`.
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
    /// A `bond` that creates a validator names it with its memo.
    pub memo: String,
    /// What the transaction does.
    pub kind: TransactionKind,
}

impl Transaction {
    /// The bytes a sender signs: a domain tag, then the canonical encoding
    /// (which begins with the chain id).
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(TRANSFER_SIGNING_DOMAIN.len() + 192);
        bytes.extend_from_slice(TRANSFER_SIGNING_DOMAIN);
        codec::encode_into(self, bytes)
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

    /// Total debit of the sender's balance: amount plus fee for a
    /// transfer or a bond, the fee alone otherwise; `None` on overflow.
    pub fn total_cost(&self) -> Option<u64> {
        match self.kind {
            TransactionKind::Transfer | TransactionKind::Bond { .. } => {
                self.amount.checked_add(self.fee)
            }
            TransactionKind::Unbond
            | TransactionKind::Unjail
            | TransactionKind::RotateKey { .. } => Some(self.fee),
        }
    }

    /// Whether this is a transfer (the only kind that credits another
    /// account).
    pub fn is_transfer(&self) -> bool {
        self.kind == TransactionKind::Transfer
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
        codec::sha256_of_encoding(self)
    }

    /// Checks the signature alone (ZIP-215).
    pub fn verify_signature(&self) -> Result<(), TypesError> {
        self.transaction
            .sender
            .verify(&self.transaction.signing_bytes(), &self.signature)
    }
}
