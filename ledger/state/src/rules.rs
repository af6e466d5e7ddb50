//! The validity rules of a transaction that need no account state (chain,
//! memo, overflow, the shape of a staking transaction) and the one
//! signature rule (ZIP-215, batch-verified).
//!
//! The rules that need state (nonce, balance) live in
//! [`crate::LedgerState`]. Every path that admits transfers (mempool,
//! proposal validation, block sync) calls these same functions.

use cairn_types::{limits::MEMO_BYTES_MAX, BatchVerifier, ChainId, SignedTransaction};

use crate::StateError;

/// Checks what a transfer can prove about itself: it names `chain_id`, its
/// memo is at most [`MEMO_BYTES_MAX`] bytes, and amount + fee fits in a
/// `u64`. Does not check the signature (see [`verify_signatures`]).
pub fn check_stateless(
    chain_id: &ChainId,
    transaction: &SignedTransaction,
) -> Result<(), StateError> {
    let transfer = &transaction.transaction;
    if transfer.chain_id != *chain_id {
        return Err(StateError::WrongChain {
            expected: chain_id.clone(),
            got: transfer.chain_id.clone(),
        });
    }
    if transfer.memo.len() > MEMO_BYTES_MAX {
        return Err(StateError::MemoTooLong {
            len: transfer.memo.len(),
            max: MEMO_BYTES_MAX,
        });
    }
    if transfer.total_cost().is_none() {
        return Err(StateError::Overflow {
            what: "amount + fee",
        });
    }
    check_staking_shape(transfer)
}

/// The shape of a staking transaction: it names the sender as recipient,
/// a bond or unbond moves more than 0, and `unjail` and `rotate_key` move
/// nothing.
fn check_staking_shape(transaction: &cairn_types::Transaction) -> Result<(), StateError> {
    use cairn_types::TransactionKind;
    let kind = transaction.kind.name();
    let bad = |reason: String| Err(StateError::BadStakingTransaction { reason });
    match transaction.kind {
        TransactionKind::Transfer => return Ok(()),
        TransactionKind::Bond { .. } | TransactionKind::Unbond if transaction.amount == 0 => {
            return bad(format!("a {kind} must move more than 0"));
        }
        TransactionKind::Unjail | TransactionKind::RotateKey { .. } if transaction.amount != 0 => {
            return bad(format!("a {kind} moves no amount; set it to 0"));
        }
        _ => {}
    }
    if transaction.recipient != transaction.sender.address() {
        return bad(format!(
            "a {kind} names the sender's own address {} as recipient, not {}",
            transaction.sender.address(),
            transaction.recipient
        ));
    }
    Ok(())
}

/// One verdict per transfer, in order: whether its signature verifies
/// under ZIP-215. Verifies in batches ([`BatchVerifier`]), which agree with
/// single verification on every input.
pub fn signature_verdicts(transactions: &[SignedTransaction]) -> Vec<bool> {
    let messages: Vec<Vec<u8>> = transactions
        .iter()
        .map(|transaction| transaction.transaction.signing_bytes())
        .collect();
    let mut batch = BatchVerifier::with_capacity(transactions.len());
    for (transaction, message) in transactions.iter().zip(&messages) {
        batch.push(
            transaction.transaction.sender,
            transaction.signature,
            message,
        );
    }
    batch.verify()
}

/// Verifies every signature of a block's transfers (batched, ZIP-215).
/// Returns [`StateError::TransactionInvalid`] wrapping
/// [`StateError::BadSignature`] with the position of the first bad one.
///
/// [`crate::LedgerState::execute`] takes transfers whose signatures were
/// already verified this way (the node verifies once and caches), so
/// every caller must run this, or [`signature_verdicts`], first.
pub fn verify_signatures(transactions: &[SignedTransaction]) -> Result<(), StateError> {
    match signature_verdicts(transactions)
        .iter()
        .position(|verified| !verified)
    {
        Some(index) => Err(StateError::BadSignature.at_index(index)),
        None => Ok(()),
    }
}
