//! The on-disk format: column families, key layouts and value encodings,
//! shared by the RocksDB and in-memory backends.
//!
//! | column | key | value |
//! |---|---|---|
//! | `blocks` | height (8, BE) | the block's canonical encoding |
//! | `block_hashes` | block hash (32) | height (8, BE) |
//! | `certificates` | height (8, BE) | the commit certificate (canonical) |
//! | `transactions` | tx hash (32) | height (8) index (4) offset (4) length (4), BE |
//! | `accounts` | address (20) | slot (8) balance (8) nonce (8), BE |
//! | `evidence` | height (8, BE) evidence hash (32) | the evidence (canonical) |
//! | `wal` | height (8, BE) sequence (8, BE) | opaque consensus entry |
//! | `history` | address (20) height (8, BE) index (4, BE) | offset (4) length (4), BE |
//! | `metadata` | name (ASCII) | see [`MetaKey`] |
//! | `metadata` | `vset` + set hash (32) | a validator set (canonical) |
//! | `metadata` | `restore_staking` + piece (4, BE) | a staking piece of a restore under way |
//!
//! `history` indexes every committed transaction under each account it
//! touches (its sender and, for a transfer, its recipient; once when they
//! are the same), so an account's transactions newest first are one reverse
//! range scan of its prefix ([`crate::Store::account_history`]). The value
//! locates the transaction's bytes in its block, as in `transactions`.
//!
//! A pruned store ([`crate::Store::prune_blocks_below`]) holds the blocks,
//! certificates, block-hash, transaction and history index entries of the heights
//! from [`MetaKey::LowestHeight`] up only; accounts, validator sets and the
//! staking state are never pruned.
//!
//! The staking state (candidates, unbonding, the sets of the next two
//! heights) is one value, [`MetaKey::Staking`], rewritten by each commit
//! that changes it. Every validator set a header names is kept under its
//! hash, so the set of any height is two reads: the header's
//! `validator_set_hash`, then the set.
//!
//! Heights are big-endian so key order is height order. A transaction's
//! location points into its block's stored bytes (offset and length of its
//! canonical encoding), so a lookup reads one block value and decodes one
//! transaction, and committing writes each transaction's bytes once.
//!
//! `accounts` holds the state tree's leaves; the inner nodes are rebuilt in
//! memory when the store is opened ([`cairn_state::LedgerState::from_slots`]),
//! so no tree-node column is needed.

use cairn_state::{Account, AccountChange};
use cairn_types::{codec, Address, Block, Hash, Height};

use crate::StoreError;

/// The format version this build writes and reads. 3: the state tree's
/// leaves name their successor address (`cairn/state/v3`), so a store of
/// version 2 holds roots this build would not reproduce.
pub const FORMAT_VERSION: u32 = 3;

/// The column families.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Column {
    /// Blocks by height.
    Blocks,
    /// Block hash to height.
    BlockHashes,
    /// Commit certificates by height.
    Certificates,
    /// Transaction hash to location.
    Transactions,
    /// Accounts (the state tree's leaves).
    Accounts,
    /// Evidence by (height, hash).
    Evidence,
    /// The consensus write-ahead log.
    Wal,
    /// Format version, chain identity, latest height.
    Metadata,
    /// (address, height, index) to the location of a transaction touching
    /// the address.
    History,
}

impl Column {
    /// Every column, in a fixed order.
    pub const ALL: [Column; 9] = [
        Column::Blocks,
        Column::BlockHashes,
        Column::Certificates,
        Column::Transactions,
        Column::Accounts,
        Column::Evidence,
        Column::Wal,
        Column::Metadata,
        Column::History,
    ];

    /// The column family's name.
    pub fn name(self) -> &'static str {
        match self {
            Column::Blocks => "blocks",
            Column::BlockHashes => "block_hashes",
            Column::Certificates => "certificates",
            Column::Transactions => "transactions",
            Column::Accounts => "accounts",
            Column::Evidence => "evidence",
            Column::Wal => "wal",
            Column::Metadata => "metadata",
            Column::History => "history",
        }
    }

    /// Position in [`Column::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Keys of the metadata column.
#[derive(Clone, Copy, Debug)]
pub enum MetaKey {
    /// u32 BE: [`FORMAT_VERSION`] of the writer.
    FormatVersion,
    /// UTF-8: the chain id.
    ChainId,
    /// 32 bytes: the genesis hash.
    GenesisHash,
    /// 32 bytes: the state root of the genesis.
    GenesisStateRoot,
    /// u64 BE: the latest committed height (0 before the first block).
    LatestHeight,
    /// The staking state after the latest block (canonical).
    Staking,
    /// u64 BE: the height a snapshot restore started this store at (no
    /// blocks below it); absent for a store that began at genesis.
    SnapshotBase,
    /// u64 BE: a snapshot restore of this height is under way (written
    /// first, deleted by the restore's final write): the accounts are not
    /// a state yet.
    RestoreInProgress,
    /// u64 BE: the lowest height whose block, certificate and indexes the
    /// store holds; absent means 1 (nothing pruned). Raised by
    /// [`crate::Store::prune_blocks_below`].
    LowestHeight,
    /// u64 BE: the first height whose transactions the `history` index
    /// holds: 1 for a store created with the index, the next height for a
    /// store written before it (set when such a store is first opened), or
    /// the height after the one it was switched on at; `u64::MAX` while the
    /// index is switched off ([`crate::Store::set_history_index`]).
    HistoryFrom,
}

impl MetaKey {
    /// The key bytes.
    pub fn key(self) -> &'static [u8] {
        match self {
            MetaKey::FormatVersion => b"format_version",
            MetaKey::ChainId => b"chain_id",
            MetaKey::GenesisHash => b"genesis_hash",
            MetaKey::GenesisStateRoot => b"genesis_state_root",
            MetaKey::LatestHeight => b"latest_height",
            MetaKey::Staking => b"staking",
            MetaKey::SnapshotBase => b"snapshot_base",
            MetaKey::RestoreInProgress => b"restore_in_progress",
            MetaKey::LowestHeight => b"lowest_height",
            MetaKey::HistoryFrom => b"history_from",
        }
    }
}

/// Metadata key of the validator set with `hash`.
pub(crate) fn validator_set_key(hash: &Hash) -> [u8; 36] {
    let mut key = [0u8; 36];
    key[..4].copy_from_slice(b"vset");
    key[4..].copy_from_slice(&hash.0);
    key
}

/// Prefix of the metadata keys holding the staking pieces of a restore
/// under way (then the piece index, u32 BE).
pub(crate) const RESTORE_STAKING_PREFIX: &[u8] = b"restore_staking";

/// Metadata key of restored staking piece `index`.
pub(crate) fn restore_staking_key(index: u32) -> Vec<u8> {
    let mut key = RESTORE_STAKING_PREFIX.to_vec();
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// Key of a height.
pub(crate) fn height_key(height: Height) -> [u8; 8] {
    height.0.to_be_bytes()
}

/// Key of a WAL entry.
pub(crate) fn wal_key(height: Height, sequence: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&height.0.to_be_bytes());
    key[8..].copy_from_slice(&sequence.to_be_bytes());
    key
}

/// Key of an evidence item.
pub(crate) fn evidence_key(height: Height, hash: &Hash) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..8].copy_from_slice(&height.0.to_be_bytes());
    key[8..].copy_from_slice(&hash.0);
    key
}

/// Key of a history entry: the account, then the transaction's height and
/// index, so an account's entries are contiguous and in chain order.
pub(crate) fn history_key(address: &Address, height: Height, index: u32) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..20].copy_from_slice(&address.0);
    key[20..28].copy_from_slice(&height.0.to_be_bytes());
    key[28..].copy_from_slice(&index.to_be_bytes());
    key
}

/// Decodes a history key into (height, index).
pub(crate) fn decode_history_key(key: &[u8]) -> Result<(Height, u32), StoreError> {
    if key.len() != 32 {
        return Err(StoreError::corrupt(
            "history key",
            format!("{} bytes, expected 32", key.len()),
        ));
    }
    let height = u64::from_be_bytes(array::<8>("history key", key, 20)?);
    let index = u32::from_be_bytes(array::<4>("history key", key, 28)?);
    Ok((Height(height), index))
}

/// Value of a history entry: the offset and length of the transaction's
/// canonical bytes in its stored block.
pub(crate) fn encode_history_value(offset: u32, length: u32) -> [u8; 8] {
    let mut value = [0u8; 8];
    value[..4].copy_from_slice(&offset.to_be_bytes());
    value[4..].copy_from_slice(&length.to_be_bytes());
    value
}

/// Decodes a history value into (offset, length).
pub(crate) fn decode_history_value(value: &[u8]) -> Result<(u32, u32), StoreError> {
    if value.len() != 8 {
        return Err(StoreError::corrupt(
            "history value",
            format!("{} bytes, expected 8", value.len()),
        ));
    }
    let offset = u32::from_be_bytes(array::<4>("history value", value, 0)?);
    let length = u32::from_be_bytes(array::<4>("history value", value, 4)?);
    Ok((offset, length))
}

/// The accounts a transaction touches, for the history index: its sender
/// and, for a transfer to another account, its recipient.
pub(crate) fn touched_accounts(transaction: &cairn_types::Transaction) -> ([Address; 2], usize) {
    let sender = transaction.sender_address();
    if transaction.is_transfer() && transaction.recipient != sender {
        ([sender, transaction.recipient], 2)
    } else {
        ([sender, sender], 1)
    }
}

/// Reads a fixed-size array from `bytes` at `at`, or reports `what` corrupt.
fn array<const N: usize>(what: &str, bytes: &[u8], at: usize) -> Result<[u8; N], StoreError> {
    bytes
        .get(at..at + N)
        .and_then(|slice| <[u8; N]>::try_from(slice).ok())
        .ok_or_else(|| StoreError::corrupt(what, format!("{} bytes, too short", bytes.len())))
}

/// Decodes a big-endian u64 value of exactly 8 bytes.
pub(crate) fn decode_u64(what: &str, bytes: &[u8]) -> Result<u64, StoreError> {
    if bytes.len() != 8 {
        return Err(StoreError::corrupt(
            what,
            format!("{} bytes, expected 8", bytes.len()),
        ));
    }
    array::<8>(what, bytes, 0).map(u64::from_be_bytes)
}

/// Decodes a big-endian u32 value of exactly 4 bytes.
pub(crate) fn decode_u32(what: &str, bytes: &[u8]) -> Result<u32, StoreError> {
    if bytes.len() != 4 {
        return Err(StoreError::corrupt(
            what,
            format!("{} bytes, expected 4", bytes.len()),
        ));
    }
    array::<4>(what, bytes, 0).map(u32::from_be_bytes)
}

/// Decodes a 32-byte hash value.
pub(crate) fn decode_hash(what: &str, bytes: &[u8]) -> Result<Hash, StoreError> {
    if bytes.len() != 32 {
        return Err(StoreError::corrupt(
            what,
            format!("{} bytes, expected 32", bytes.len()),
        ));
    }
    array::<32>(what, bytes, 0).map(Hash)
}

/// The stored value of an account.
pub(crate) fn encode_account(slot: u64, account: &Account) -> [u8; 24] {
    let mut value = [0u8; 24];
    value[..8].copy_from_slice(&slot.to_be_bytes());
    value[8..16].copy_from_slice(&account.balance.to_be_bytes());
    value[16..].copy_from_slice(&account.nonce.to_be_bytes());
    value
}

/// Decodes a stored account: `(slot, account)`.
pub(crate) fn decode_account(
    address: &Address,
    bytes: &[u8],
) -> Result<(u64, Account), StoreError> {
    let what = || format!("account {address}");
    if bytes.len() != 24 {
        return Err(StoreError::corrupt(
            what(),
            format!("{} bytes, expected 24", bytes.len()),
        ));
    }
    let slot = u64::from_be_bytes(array::<8>(&what(), bytes, 0)?);
    let balance = u64::from_be_bytes(array::<8>(&what(), bytes, 8)?);
    let nonce = u64::from_be_bytes(array::<8>(&what(), bytes, 16)?);
    Ok((slot, Account { balance, nonce }))
}

/// Decodes an account key.
pub(crate) fn decode_address(bytes: &[u8]) -> Result<Address, StoreError> {
    <[u8; 20]>::try_from(bytes).map(Address).map_err(|_| {
        StoreError::corrupt("account key", format!("{} bytes, expected 20", bytes.len()))
    })
}

/// Where a transaction is stored: its block, position and byte range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TransactionLocation {
    /// The block's height.
    pub(crate) height: Height,
    /// Position in the block.
    pub(crate) index: u32,
    /// Offset of its canonical encoding in the block's stored bytes.
    pub(crate) offset: u32,
    /// Length of its canonical encoding.
    pub(crate) length: u32,
}

impl TransactionLocation {
    /// The stored value.
    pub(crate) fn encode(&self) -> [u8; 20] {
        let mut value = [0u8; 20];
        value[..8].copy_from_slice(&self.height.0.to_be_bytes());
        value[8..12].copy_from_slice(&self.index.to_be_bytes());
        value[12..16].copy_from_slice(&self.offset.to_be_bytes());
        value[16..].copy_from_slice(&self.length.to_be_bytes());
        value
    }

    /// Decodes a stored value.
    pub(crate) fn decode(hash: &Hash, bytes: &[u8]) -> Result<TransactionLocation, StoreError> {
        let what = format!("location of transaction {hash}");
        if bytes.len() != 20 {
            return Err(StoreError::corrupt(
                what,
                format!("{} bytes, expected 20", bytes.len()),
            ));
        }
        Ok(TransactionLocation {
            height: Height(u64::from_be_bytes(array::<8>(&what, bytes, 0)?)),
            index: u32::from_be_bytes(array::<4>(&what, bytes, 8)?),
            offset: u32::from_be_bytes(array::<4>(&what, bytes, 12)?),
            length: u32::from_be_bytes(array::<4>(&what, bytes, 16)?),
        })
    }
}

/// A block encoded for storage: its canonical bytes, its hash, and each
/// transaction's hash and byte range, all from one encoding pass.
pub(crate) struct EncodedBlock {
    /// The canonical encoding of the block (what `Block::to_bytes` yields).
    pub(crate) bytes: Vec<u8>,
    /// The block hash (SHA-256 of the header's encoding).
    pub(crate) hash: Hash,
    /// Per transaction: its hash, offset and length in `bytes`.
    pub(crate) transactions: Vec<(Hash, u32, u32)>,
}

/// Appends the unsigned LEB128 varint postcard writes for lengths.
fn push_varint(bytes: &mut Vec<u8>, mut value: u64) {
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            bytes.push(low);
            return;
        }
        bytes.push(low | 0x80);
    }
}

/// Encodes `block` canonically in one pass, recording where each
/// transaction's bytes are and hashing them (a transaction's hash is
/// SHA-256 of its canonical bytes, the very bytes in the block).
///
/// postcard encodes a struct as its fields in order and a sequence as a
/// varint length then its items, so the concatenation below is exactly
/// `codec::encode(block)` (a test pins this).
pub(crate) fn encode_block(block: &Block) -> Result<EncodedBlock, StoreError> {
    let header = codec::encode(&block.header);
    let hash = cairn_types::sha256(&header);
    let mut bytes = Vec::with_capacity(header.len() + 16 + block.transactions.len() * 200);
    bytes.extend_from_slice(&header);
    push_varint(&mut bytes, block.transactions.len() as u64);
    let mut transactions = Vec::with_capacity(block.transactions.len());
    let too_large = || {
        StoreError::corrupt(
            format!("block {}", block.header.height),
            "its encoding exceeds 4 GiB",
        )
    };
    for transaction in &block.transactions {
        let start = bytes.len();
        bytes = postcard::to_extend(transaction, bytes).map_err(|error| {
            StoreError::corrupt(format!("block {}", block.header.height), error.to_string())
        })?;
        let offset = u32::try_from(start).map_err(|_| too_large())?;
        let length = u32::try_from(bytes.len() - start).map_err(|_| too_large())?;
        transactions.push((cairn_types::sha256(&bytes[start..]), offset, length));
    }
    bytes.extend_from_slice(&codec::encode(&block.parent_certificate));
    bytes.extend_from_slice(&codec::encode(&block.evidence));
    Ok(EncodedBlock {
        bytes,
        hash,
        transactions,
    })
}

/// The account puts of an execution outcome, for the `accounts` column.
pub(crate) fn account_entries(
    changes: &[AccountChange],
) -> impl Iterator<Item = ([u8; 20], [u8; 24])> + '_ {
    changes.iter().map(|change| {
        (
            change.address.0,
            encode_account(change.slot, &change.account),
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_postcard() {
        for value in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut mine = Vec::new();
            push_varint(&mut mine, value);
            assert_eq!(mine, codec::encode(&(value as usize)), "{value}");
        }
    }

    #[test]
    fn one_pass_block_encoding_is_the_canonical_encoding() {
        use cairn_types::{
            ChainId, CommitCertificate, CommitSignature, Evidence, Header, Keypair, Round,
            Timestamp, Transaction, ValidatorIndex, Vote, VoteType,
        };
        let chain_id = ChainId::new("format").unwrap();
        let key = Keypair::from_seed(&[4; 32]);
        let transactions = (0..3u64)
            .map(|nonce| {
                Transaction {
                    chain_id: chain_id.clone(),
                    sender: key.public_key(),
                    recipient: Address([nonce as u8; 20]),
                    amount: 300 * nonce,
                    fee: nonce,
                    nonce,
                    memo: "m".repeat(nonce as usize * 50),
                    kind: cairn_types::TransactionKind::Transfer,
                }
                .sign(&key)
            })
            .collect::<Vec<_>>();
        let vote = |hash| {
            Vote::new_signed(
                &chain_id,
                VoteType::Precommit,
                Height(4),
                Round(1),
                hash,
                ValidatorIndex(0),
                &key,
            )
        };
        let evidence =
            vec![Evidence::duplicate_vote(vote(None), vote(Some(Hash([1; 32])))).unwrap()];
        let certificate = CommitCertificate {
            height: Height(4),
            round: Round(0),
            block_hash: Hash([2; 32]),
            signatures: vec![CommitSignature {
                validator: ValidatorIndex(0),
                signature: key.sign(b"x"),
            }],
        };
        let block = Block {
            header: Header {
                chain_id: chain_id.clone(),
                height: Height(5),
                time: Timestamp(9),
                parent_hash: Hash([2; 32]),
                proposer: key.address(),
                transactions_root: Block::transactions_root_of(&transactions),
                state_root: Hash([3; 32]),
                parent_certificate_hash: certificate.hash(),
                evidence_hash: Block::evidence_hash_of(&evidence),
                validator_set_hash: Hash::ZERO,
                next_validator_set_hash: Hash::ZERO,
            },
            transactions,
            parent_certificate: Some(certificate),
            evidence,
        };
        let encoded = encode_block(&block).unwrap();
        assert_eq!(encoded.bytes, block.to_bytes());
        assert_eq!(encoded.hash, block.hash());
        for ((hash, offset, length), transaction) in
            encoded.transactions.iter().zip(&block.transactions)
        {
            assert_eq!(*hash, transaction.hash());
            let range = *offset as usize..(*offset + *length) as usize;
            assert_eq!(&encoded.bytes[range], &transaction.to_bytes()[..]);
        }
    }

    #[test]
    fn account_values_round_trip() {
        let account = Account {
            balance: 5,
            nonce: u64::MAX,
        };
        let value = encode_account(9, &account);
        assert_eq!(
            decode_account(&Address([1; 20]), &value).unwrap(),
            (9, account)
        );
        assert!(decode_account(&Address([1; 20]), &value[..23]).is_err());
    }
}
