//! Codec properties (round trip for every wire type, bounded decoding of
//! garbage) and golden vectors that pin the format.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_types::{
    codec, limits, merkle::merkle_root, sha256, Address, Block, ChainId, CommitCertificate,
    CommitSignature, CompactBlock, Evidence, Hash, Header, Height, Keypair, Proposal, PublicKey,
    Round, Signature, SignedTransaction, Timestamp, Transaction, TransactionKind, ValidatorIndex,
    Vote, VoteType,
};
use proptest::prelude::*;
use serde::{de::DeserializeOwned, Serialize};

fn chain() -> ChainId {
    ChainId::new("cairn-test").unwrap()
}

fn hash_strategy() -> impl Strategy<Value = Hash> {
    any::<[u8; 32]>().prop_map(Hash)
}

fn signature_strategy() -> impl Strategy<Value = Signature> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(&a);
        bytes[32..].copy_from_slice(&b);
        Signature(bytes)
    })
}

fn kind_strategy() -> impl Strategy<Value = TransactionKind> {
    (0u8..5, any::<[u8; 32]>()).prop_map(|(tag, key)| match tag {
        0 => TransactionKind::Transfer,
        1 => TransactionKind::Bond {
            validator_key: PublicKey(key),
        },
        2 => TransactionKind::Unbond,
        3 => TransactionKind::Unjail,
        _ => TransactionKind::RotateKey {
            new_validator_key: PublicKey(key),
        },
    })
}

fn transaction_strategy() -> impl Strategy<Value = SignedTransaction> {
    (
        any::<[u8; 32]>(),
        any::<[u8; 20]>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        "[a-z ]{0,40}",
        signature_strategy(),
        kind_strategy(),
    )
        .prop_map(
            |(sender, recipient, amount, fee, nonce, memo, signature, kind)| SignedTransaction {
                transaction: Transaction {
                    chain_id: chain(),
                    sender: PublicKey(sender),
                    recipient: Address(recipient),
                    amount,
                    fee,
                    nonce,
                    memo,
                    kind,
                },
                signature,
            },
        )
}

fn header_strategy() -> impl Strategy<Value = Header> {
    (
        any::<u64>(),
        any::<u64>(),
        hash_strategy(),
        any::<[u8; 20]>(),
        hash_strategy(),
        hash_strategy(),
        hash_strategy(),
    )
        .prop_map(
            |(height, time, parent_hash, proposer, transactions_root, state_root, other)| Header {
                chain_id: chain(),
                height: Height(height),
                time: Timestamp(time),
                parent_hash,
                proposer: Address(proposer),
                transactions_root,
                state_root,
                parent_certificate_hash: other,
                evidence_hash: other,
                validator_set_hash: other,
                next_validator_set_hash: other,
            },
        )
}

fn vote_strategy() -> impl Strategy<Value = Vote> {
    (
        any::<bool>(),
        any::<u64>(),
        any::<u32>(),
        proptest::option::of(hash_strategy()),
        any::<u32>(),
        signature_strategy(),
    )
        .prop_map(
            |(precommit, height, round, block_hash, validator, signature)| Vote {
                vote_type: if precommit {
                    VoteType::Precommit
                } else {
                    VoteType::Prevote
                },
                height: Height(height),
                round: Round(round),
                block_hash,
                validator: ValidatorIndex(validator),
                signature,
            },
        )
}

fn certificate_strategy() -> impl Strategy<Value = CommitCertificate> {
    (
        any::<u64>(),
        any::<u32>(),
        hash_strategy(),
        proptest::collection::vec((any::<u32>(), signature_strategy()), 0..8),
    )
        .prop_map(
            |(height, round, block_hash, signatures)| CommitCertificate {
                height: Height(height),
                round: Round(round),
                block_hash,
                signatures: signatures
                    .into_iter()
                    .map(|(validator, signature)| CommitSignature {
                        validator: ValidatorIndex(validator),
                        signature,
                    })
                    .collect(),
            },
        )
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
    let bytes = codec::encode(value);
    let back: T = codec::decode("value", &bytes, usize::MAX).unwrap();
    assert_eq!(&back, value);
}

proptest! {
    #[test]
    fn transactions_round_trip(tx in transaction_strategy()) {
        let bytes = tx.to_bytes();
        prop_assert!(bytes.len() <= limits::TRANSACTION_BYTES_MAX);
        prop_assert_eq!(SignedTransaction::from_bytes(&bytes).unwrap(), tx);
    }

    #[test]
    fn headers_round_trip(header in header_strategy()) {
        let bytes = codec::encode(&header);
        prop_assert!(bytes.len() <= limits::HEADER_BYTES_MAX);
        prop_assert_eq!(Header::from_bytes(&bytes).unwrap(), header);
    }

    #[test]
    fn votes_round_trip(vote in vote_strategy()) {
        let bytes = vote.to_bytes();
        prop_assert!(bytes.len() <= limits::VOTE_BYTES_MAX);
        prop_assert_eq!(Vote::from_bytes(&bytes).unwrap(), vote);
    }

    #[test]
    fn proposals_round_trip(
        height in any::<u64>(), round in any::<u32>(), valid_round in proptest::option::of(any::<u32>()),
        block_hash in hash_strategy(), proposer in any::<u32>(), signature in signature_strategy(),
    ) {
        let proposal = Proposal {
            height: Height(height), round: Round(round), valid_round: valid_round.map(Round),
            block_hash, proposer: ValidatorIndex(proposer), signature,
        };
        prop_assert!(codec::encode(&proposal).len() <= limits::PROPOSAL_BYTES_MAX);
        round_trip(&proposal);
    }

    #[test]
    fn certificates_and_evidence_round_trip(
        certificate in certificate_strategy(), a in vote_strategy(), b in vote_strategy(),
    ) {
        round_trip(&certificate);
        round_trip(&Evidence::DuplicateVote(cairn_types::DuplicateVoteEvidence { vote_a: a, vote_b: b }));
    }

    #[test]
    fn blocks_round_trip(
        header in header_strategy(),
        transactions in proptest::collection::vec(transaction_strategy(), 0..5),
        certificate in proptest::option::of(certificate_strategy()),
    ) {
        let block = Block { header, transactions, parent_certificate: certificate, evidence: vec![] };
        prop_assert_eq!(Block::from_bytes(&block.to_bytes()).unwrap(), block);
    }

    #[test]
    fn a_block_checked_with_its_hashes_passes_and_with_any_other_fails(
        header in header_strategy(),
        transactions in proptest::collection::vec(transaction_strategy(), 1..6),
        index in any::<prop::sample::Index>(),
        flip in 0usize..256,
    ) {
        let mut block = Block { header, transactions, parent_certificate: None, evidence: vec![] };
        // Height 1: the one block with no parent certificate.
        block.header.height = Height(1);
        block.header.transactions_root = Block::transactions_root_of(&block.transactions);
        block.header.parent_certificate_hash = Block::parent_certificate_hash_of(None);
        block.header.evidence_hash = Block::evidence_hash_of(&[]);
        // The length the check counts is the length the codec writes.
        prop_assert_eq!(codec::encoded_len(&block), block.to_bytes().len());
        let hashes = Block::transaction_hashes_of(&block.transactions);
        prop_assert_eq!(Block::transactions_root_of_hashes(&hashes), block.header.transactions_root);
        prop_assert!(block.check_structure().is_ok());
        prop_assert!(block.check_structure_with(&hashes).is_ok());
        let mut wrong = hashes.clone();
        let position = index.index(wrong.len());
        wrong[position].0[flip / 8] ^= 1 << (flip % 8);
        prop_assert!(block.check_structure_with(&wrong).is_err());
        prop_assert!(block.check_structure_with(&hashes[1..]).is_err());
        let mut longer = hashes.clone();
        longer.push(hashes[0]);
        prop_assert!(block.check_structure_with(&longer).is_err());
    }

    #[test]
    fn a_compact_block_proves_what_its_block_proves_and_rebuilds_it(
        header in header_strategy(),
        transactions in proptest::collection::vec(transaction_strategy(), 1..6),
        index in any::<prop::sample::Index>(),
        flip in 0usize..256,
    ) {
        let mut block = Block { header, transactions, parent_certificate: None, evidence: vec![] };
        block.header.height = Height(1);
        block.header.transactions_root = Block::transactions_root_of(&block.transactions);
        block.header.parent_certificate_hash = Block::parent_certificate_hash_of(None);
        block.header.evidence_hash = Block::evidence_hash_of(&[]);
        let hashes = Block::transaction_hashes_of(&block.transactions);
        let compact = CompactBlock::of(&block, hashes.clone());
        prop_assert_eq!(compact.hash(), block.hash());
        prop_assert!(compact.check_structure().is_ok());
        prop_assert_eq!(&CompactBlock::from_bytes(&codec::encode(&compact)).unwrap(), &compact);
        prop_assert_eq!(compact.clone().into_block(block.transactions.clone()).unwrap(), block.clone());
        // Any other hash list fails the header's root.
        let position = index.index(hashes.len());
        let mut wrong = compact.clone();
        wrong.transaction_hashes[position].0[flip / 8] ^= 1 << (flip % 8);
        prop_assert!(wrong.check_structure().is_err());
        let mut shorter = compact.clone();
        shorter.transaction_hashes.pop();
        prop_assert!(shorter.check_structure().is_err());
        // The rebuild refuses transactions that are not the ones named.
        let mut swapped = block.transactions.clone();
        swapped[position].transaction.nonce ^= 1;
        prop_assert!(compact.clone().into_block(swapped).is_err());
        prop_assert!(compact.into_block(block.transactions[1..].to_vec()).is_err());
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = SignedTransaction::from_bytes(&bytes);
        let _ = Block::from_bytes(&bytes);
        let _ = CompactBlock::from_bytes(&bytes);
        let _ = Vote::from_bytes(&bytes);
        let _ = Header::from_bytes(&bytes);
        let _ = codec::decode::<CommitCertificate>("certificate", &bytes, limits::CERTIFICATE_BYTES_MAX);
        let _ = codec::decode::<Evidence>("evidence", &bytes, limits::EVIDENCE_BYTES_MAX);
    }

    #[test]
    fn truncated_encodings_are_refused(tx in transaction_strategy(), cut in 1usize..64) {
        let bytes = tx.to_bytes();
        let cut = cut.min(bytes.len());
        prop_assert!(SignedTransaction::from_bytes(&bytes[..bytes.len() - cut]).is_err());
    }

    #[test]
    fn merkle_root_changes_with_any_leaf(
        leaves in proptest::collection::vec(hash_strategy(), 1..40),
        index in any::<prop::sample::Index>(),
        flip in 0usize..256,
    ) {
        let mut changed = leaves.clone();
        let position = index.index(leaves.len());
        changed[position].0[flip / 8] ^= 1 << (flip % 8);
        prop_assert_ne!(merkle_root(&leaves), merkle_root(&changed));
    }
}

#[test]
fn oversize_input_is_refused_before_decoding() {
    let bytes = vec![0u8; limits::TRANSACTION_BYTES_MAX + 1];
    let error = SignedTransaction::from_bytes(&bytes).unwrap_err();
    assert!(error.to_string().contains("limit"), "{error}");
}

#[test]
fn huge_length_prefix_does_not_allocate_its_claim() {
    // A block claiming 2^62 transactions in a few bytes must fail quickly,
    // without trying to reserve the claimed length.
    let mut bytes = codec::encode(&golden_header());
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f]);
    assert!(Block::from_bytes(&bytes).is_err());
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = golden_transaction().to_bytes();
    bytes.push(0);
    assert!(SignedTransaction::from_bytes(&bytes).is_err());
}

fn golden_transaction() -> SignedTransaction {
    let keypair = Keypair::from_seed(&[1; 32]);
    Transaction {
        chain_id: chain(),
        sender: keypair.public_key(),
        recipient: Keypair::from_seed(&[2; 32]).address(),
        amount: 1_000,
        fee: 10,
        nonce: 7,
        memo: "golden".into(),
        kind: cairn_types::TransactionKind::Transfer,
    }
    .sign(&keypair)
}

fn golden_header() -> Header {
    Header {
        chain_id: chain(),
        height: Height(42),
        time: Timestamp(1_700_000_000_000),
        parent_hash: sha256(b"parent"),
        proposer: Keypair::from_seed(&[3; 32]).address(),
        transactions_root: merkle_root(&[golden_transaction().hash()]),
        state_root: sha256(b"state"),
        parent_certificate_hash: sha256(b"certificate"),
        evidence_hash: merkle_root(&[]),
        validator_set_hash: sha256(b"validators"),
        next_validator_set_hash: sha256(b"next validators"),
    }
}

/// A bond of 5,000 to a consensus key, naming the validator "golden".
fn golden_bond() -> SignedTransaction {
    let keypair = Keypair::from_seed(&[1; 32]);
    Transaction {
        chain_id: chain(),
        sender: keypair.public_key(),
        recipient: keypair.address(),
        amount: 5_000,
        fee: 10,
        nonce: 8,
        memo: "golden".into(),
        kind: TransactionKind::Bond {
            validator_key: Keypair::from_seed(&[5; 32]).public_key(),
        },
    }
    .sign(&keypair)
}

fn golden_validator_set() -> cairn_types::ValidatorSet {
    cairn_types::ValidatorSet::new(
        (1..=3u8)
            .map(|n| cairn_types::Validator {
                name: format!("v{n}"),
                public_key: Keypair::from_seed(&[n; 32]).public_key(),
                power: cairn_types::VotingPower(u64::from(n) * 10),
                operator: Keypair::from_seed(&[n + 10; 32]).address(),
            })
            .collect(),
    )
    .unwrap()
}

fn golden_vote() -> Vote {
    Vote::new_signed(
        &chain(),
        VoteType::Precommit,
        Height(42),
        Round(1),
        Some(sha256(b"block")),
        ValidatorIndex(2),
        &Keypair::from_seed(&[4; 32]),
    )
}

/// The golden header's block in compact form (one transaction, by hash).
fn golden_compact_block() -> CompactBlock {
    CompactBlock {
        header: golden_header(),
        transaction_hashes: vec![golden_transaction().hash()],
        parent_certificate: None,
        evidence: vec![],
    }
}

/// If one of these fails, the wire or disk format changed: that breaks
/// every existing chain, so change the constants only on purpose.
#[test]
fn golden_vectors() {
    let tx = golden_transaction();
    let header = golden_header();
    let vote = golden_vote();
    let actual = [
        ("transaction bytes", hex::encode(tx.to_bytes())),
        ("transaction hash", tx.hash().to_hex()),
        ("header bytes", hex::encode(codec::encode(&header))),
        ("block hash", header.hash().to_hex()),
        ("vote bytes", hex::encode(vote.to_bytes())),
        ("vote hash", sha256(&vote.to_bytes()).to_hex()),
        ("bond bytes", hex::encode(golden_bond().to_bytes())),
        (
            "unbond kind",
            hex::encode(codec::encode(&TransactionKind::Unbond)),
        ),
        (
            "unjail kind",
            hex::encode(codec::encode(&TransactionKind::Unjail)),
        ),
        (
            "rotate_key kind",
            hex::encode(codec::encode(&TransactionKind::RotateKey {
                new_validator_key: Keypair::from_seed(&[6; 32]).public_key(),
            })),
        ),
        ("validator set hash", golden_validator_set().hash().to_hex()),
        (
            "compact block bytes",
            hex::encode(codec::encode(&golden_compact_block())),
        ),
    ];
    let expected = [
        ("transaction bytes", GOLDEN_TRANSACTION_BYTES),
        ("transaction hash", GOLDEN_TRANSACTION_HASH),
        ("header bytes", GOLDEN_HEADER_BYTES),
        ("block hash", GOLDEN_BLOCK_HASH),
        ("vote bytes", GOLDEN_VOTE_BYTES),
        ("vote hash", GOLDEN_VOTE_HASH),
        ("bond bytes", GOLDEN_BOND_BYTES),
        ("unbond kind", "02"),
        ("unjail kind", "03"),
        ("rotate_key kind", GOLDEN_ROTATE_KEY_KIND),
        ("validator set hash", GOLDEN_VALIDATOR_SET_HASH),
        ("compact block bytes", GOLDEN_COMPACT_BLOCK_BYTES),
    ];
    for ((name, actual), (_, expected)) in actual.iter().zip(expected) {
        assert_eq!(actual, expected, "golden vector {name} changed");
    }
    assert!(tx.verify_signature().is_ok());
}

const GOLDEN_TRANSACTION_BYTES: &str =
    "0a636169726e2d74657374208a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c146a3803d5f059902a1c6dafbc9ba4729212f7caace8070a0706676f6c64656e0040e7ed0b30834afb1487d85530c243a9c5a48153a01c02853ae878823f7eb716c1834126d453445aeb88b27491b0ae2036f8142714ee7ebd943b41d3135900c005";
const GOLDEN_TRANSACTION_HASH: &str =
    "54551fff8dc67db69a55109525ba8166b571b9034a0ac8a0aa92c65d79cc74ec";
const GOLDEN_HEADER_BYTES: &str =
    "0a636169726e2d746573742a80d095ffbc3120e47125968b3b71049fbc4802d1e40a71ea1359decfabacf70b34588037d4ff0c14b62e867fa2f33afe62d5d6b1642e1621d54330782075a5939be46b97d4523bd79689fbd004368e7b27be35304c0bd481956c882e60204ba69735ca53765ed6a709edb56c6ea236b7193a3b29a6b390c346f0f4340e4e2003d66dd08835c1ca3f128cceacd1f31ac94163096b20f445ae84285bc0832d7220f0c1e0b4cd1983b9c92909f8145cc102993e4c797489c0ba98639fd93056b82f2066d18af4cf3d736390761abbea054bcedb18191b65128c2b057cdef5071a169820efd045fd653313863020f4a2cdb6a21a5da6e3e250192a32cbf87c92d9d8fe55";
const GOLDEN_BLOCK_HASH: &str = "8ef2c7e3e75c7bab9cfc770572bd2d1db3a0ff67848b8ebd8599f07314b66065";
const GOLDEN_VOTE_BYTES: &str =
    "012a010120496aca80e4d8f29fb8e8cd816c3afb48d3f103970b3a2ee1600c08ca67326dee024024021867bc70b1d97aa8302345d7b1ab5b93cfb8cd0ea4d81f2f9b104bc6885cbbbe53979f1c47bad561dea5aa740ee8e9b93ffc339770d96b2ab47e3998b70d";
const GOLDEN_VOTE_HASH: &str = "33c0c40ecbc5324c46c878a5c964cbb607857485cd62eb1f246ea63055f681d8";
const GOLDEN_BOND_BYTES: &str =
    "0a636169726e2d74657374208a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c1434750f98bd59fcfc946da45aaabe933be154a4b588270a0806676f6c64656e01206e7a1cdd29b0b78fd13af4c5598feff4ef2a97166e3ca6f2e4fbfccd80505bf140ee6adcc3484882708cbe9cc525e6c33c71624dfa2b1c14793359a85d9440a8084c5dfac08e589aafefcc02bdae16513dc1a4e483d0ca80ba7d24693a13a8b500";
const GOLDEN_ROTATE_KEY_KIND: &str =
    "04208a875fff1eb38451577acd5afee405456568dd7c89e090863a0557bc7af49f17";
const GOLDEN_VALIDATOR_SET_HASH: &str =
    "5b924352834c107c5a4ecc14d8079ab5405144344681e2e2393e9f5c19a9d33d";
/// The golden header's bytes, then one hash (count 1, length 32), no
/// parent certificate and no evidence.
const GOLDEN_COMPACT_BLOCK_BYTES: &str = concat!(
    "0a636169726e2d746573742a80d095ffbc3120e47125968b3b71049fbc4802d1e40a71ea1359decfabacf70b34588037d4ff0c14b62e867fa2f33afe62d5d6b1642e1621d54330782075a5939be46b97d4523bd79689fbd004368e7b27be35304c0bd481956c882e60204ba69735ca53765ed6a709edb56c6ea236b7193a3b29a6b390c346f0f4340e4e2003d66dd08835c1ca3f128cceacd1f31ac94163096b20f445ae84285bc0832d7220f0c1e0b4cd1983b9c92909f8145cc102993e4c797489c0ba98639fd93056b82f2066d18af4cf3d736390761abbea054bcedb18191b65128c2b057cdef5071a169820efd045fd653313863020f4a2cdb6a21a5da6e3e250192a32cbf87c92d9d8fe55",
    "0120",
    "54551fff8dc67db69a55109525ba8166b571b9034a0ac8a0aa92c65d79cc74ec",
    "0000"
);
