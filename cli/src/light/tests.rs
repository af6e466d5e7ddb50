//! The verifier against made-up chains with real signatures: skipping
//! with and without validator-set changes (the header counts of a
//! 1,000-height jump), bisection, and the lies it must catch.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use cairn_types::{
    sha256, Address, ChainId, CommitCertificate, CommitSignature, Hash, Header, Height, Keypair,
    Round, Timestamp, Validator, ValidatorIndex, ValidatorSet, Vote, VoteType, VotingPower,
};

use super::{
    verifier::{Source, Verifier},
    TrustedState,
};
use crate::error::{CliError, Result};

const GENESIS_TIME: u64 = 1_000_000;

/// A chain of `length` heights whose set of height h is `schedule(h)`
/// (seeds of the members' keys), every member signing every block.
#[derive(Clone)]
struct TestChain {
    chain_id: ChainId,
    genesis_hash: Hash,
    headers: HashMap<u64, Header>,
    certificates: HashMap<u64, CommitCertificate>,
    sets: HashMap<u64, ValidatorSet>,
}

fn keypair(seed: u32) -> Keypair {
    let mut bytes = [7u8; 32];
    bytes[..4].copy_from_slice(&seed.to_be_bytes());
    Keypair::from_seed(&bytes)
}

fn set_of(seeds: &[u32]) -> ValidatorSet {
    ValidatorSet::new(
        seeds
            .iter()
            .map(|&seed| Validator {
                name: format!("v{seed}"),
                public_key: keypair(seed).public_key(),
                power: VotingPower(10),
                operator: keypair(seed).address(),
            })
            .collect(),
    )
    .unwrap()
}

fn certify(chain_id: &ChainId, header: &Header, seeds: &[u32]) -> CommitCertificate {
    let message = Vote::signing_bytes(
        chain_id,
        VoteType::Precommit,
        header.height,
        Round(0),
        Some(header.hash()),
    );
    CommitCertificate {
        height: header.height,
        round: Round(0),
        block_hash: header.hash(),
        signatures: seeds
            .iter()
            .enumerate()
            .map(|(index, &seed)| CommitSignature {
                validator: ValidatorIndex(index as u32),
                signature: keypair(seed).sign(&message),
            })
            .collect(),
    }
}

impl TestChain {
    /// `fork` changes every state root, so two chains with the same
    /// validators and different forks have different, validly signed
    /// headers.
    fn new(length: u64, fork: u8, schedule: impl Fn(u64) -> Vec<u32>) -> TestChain {
        let chain_id = ChainId::new("light-test").unwrap();
        let genesis_hash = sha256(b"light test genesis");
        let sets: HashMap<u64, ValidatorSet> = (1..=length + 1)
            .map(|height| (height, set_of(&schedule(height))))
            .collect();
        let mut headers = HashMap::new();
        let mut certificates = HashMap::new();
        let mut parent = genesis_hash;
        for height in 1..=length {
            let header = Header {
                chain_id: chain_id.clone(),
                height: Height(height),
                time: Timestamp(GENESIS_TIME + height * 1_000),
                parent_hash: parent,
                proposer: Address([1; 20]),
                transactions_root: Hash::ZERO,
                state_root: sha256(&[&height.to_be_bytes()[..], &[fork]].concat()),
                parent_certificate_hash: Hash::ZERO,
                evidence_hash: Hash::ZERO,
                validator_set_hash: sets[&height].hash(),
                next_validator_set_hash: sets[&(height + 1)].hash(),
            };
            certificates.insert(height, certify(&chain_id, &header, &schedule(height)));
            parent = header.hash();
            headers.insert(height, header);
        }
        TestChain {
            chain_id,
            genesis_hash,
            headers,
            certificates,
            sets,
        }
    }

    fn genesis(&self) -> TrustedState {
        TrustedState {
            chain_id: self.chain_id.clone(),
            genesis_hash: Some(self.genesis_hash),
            height: 0,
            header_hash: self.genesis_hash,
            time: Timestamp(GENESIS_TIME),
            next_set: self.sets[&1].clone(),
        }
    }

    fn trusted_at(&self, height: u64) -> TrustedState {
        TrustedState {
            chain_id: self.chain_id.clone(),
            genesis_hash: Some(self.genesis_hash),
            height,
            header_hash: self.headers[&height].hash(),
            time: self.headers[&height].time,
            next_set: self.sets[&(height + 1)].clone(),
        }
    }
}

fn missing(what: &str, height: u64) -> CliError {
    CliError::NodeError {
        what: format!("GET /{what}/{height}"),
        status: 404,
        code: "not_found".into(),
        message: "none".into(),
    }
}

impl Source for TestChain {
    fn name(&self) -> &str {
        "test-chain"
    }

    async fn header(&self, height: u64) -> Result<Header> {
        self.headers
            .get(&height)
            .cloned()
            .ok_or_else(|| missing("header", height))
    }

    async fn certificate(&self, height: u64) -> Result<CommitCertificate> {
        self.certificates
            .get(&height)
            .cloned()
            .ok_or_else(|| missing("certificate", height))
    }

    async fn validators(&self, height: u64) -> Result<ValidatorSet> {
        self.sets
            .get(&height)
            .cloned()
            .ok_or_else(|| missing("validators", height))
    }
}

fn run<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

/// Four validators for ever.
fn fixed(_: u64) -> Vec<u32> {
    vec![1, 2, 3, 4]
}

/// Four validators, one replaced every 100 heights (the trusted set keeps
/// more than one third for 200 heights).
fn gradual(height: u64) -> Vec<u32> {
    let era = (height / 100) as u32;
    (era..era + 4).collect()
}

/// Four validators, all replaced every 100 heights.
fn rotating(height: u64) -> Vec<u32> {
    let era = (height / 100) as u32;
    (era * 4..era * 4 + 4).collect()
}

fn error_text(result: Result<(TrustedState, super::LightBlock)>) -> String {
    match result {
        Ok((state, _)) => panic!("verified a lie up to height {}", state.height),
        Err(error) => error.to_string(),
    }
}

#[test]
fn a_jump_of_1000_heights_fetches_one_header_without_set_changes() {
    let chain = TestChain::new(1_000, 0, fixed);
    let mut verifier = Verifier::new(&chain);
    let (state, block) = run(verifier.verify_to(&chain.genesis(), 1_000)).unwrap();
    assert_eq!(state, chain.trusted_at(1_000));
    assert_eq!(block.header, chain.headers[&1_000]);
    assert_eq!((block.signers, block.signed_power), (4, 40));
    let stats = verifier.stats();
    eprintln!("1,000-height jump, no set changes: {stats:?}");
    assert_eq!((stats.headers, stats.steps, stats.bisections), (1, 1, 0));
}

#[test]
fn set_changes_are_followed_by_skipping_and_bisection() {
    for (name, schedule, most_headers) in [
        (
            "one of four validators replaced every 100 heights",
            gradual as fn(u64) -> Vec<u32>,
            8,
        ),
        (
            "all four validators replaced every 100 heights",
            rotating,
            100,
        ),
    ] {
        let chain = TestChain::new(1_000, 0, schedule);
        let mut verifier = Verifier::new(&chain);
        let (state, block) = run(verifier.verify_to(&chain.genesis(), 1_000)).unwrap();
        assert_eq!(state, chain.trusted_at(1_000), "{name}");
        assert_eq!(block.set, chain.sets[&1_000], "{name}");
        let stats = verifier.stats().clone();
        eprintln!("1,000-height jump, {name}: {stats:?}");
        assert!(stats.bisections > 0, "{name}: {stats:?}");
        assert!(stats.headers <= most_headers, "{name}: {stats:?}");
        // Sequential verification would have fetched 1,000 headers.
        assert!(stats.headers < 100, "{name}: {stats:?}");
    }
}

#[test]
fn adjacent_heights_need_the_parent_and_the_named_set() {
    let chain = TestChain::new(20, 0, rotating);
    let mut verifier = Verifier::new(&chain);
    let (state, _) = run(verifier.verify_to(&chain.trusted_at(10), 11)).unwrap();
    assert_eq!(state, chain.trusted_at(11));

    // A fork with the same validators: validly signed, but its height 11
    // does not follow the trusted height 10.
    let fork = TestChain::new(20, 1, rotating);
    let text = error_text(run(
        Verifier::new(&fork).verify_to(&chain.trusted_at(10), 11)
    ));
    assert!(text.contains("is not the trusted block"), "{text}");
}

#[test]
fn a_header_swapped_for_another_chains_is_caught() {
    let chain = TestChain::new(50, 0, fixed);
    let mut liar = chain.clone();
    let fork = TestChain::new(50, 1, fixed);
    liar.headers.insert(40, fork.headers[&40].clone());
    let text = error_text(run(Verifier::new(&liar).verify_to(&chain.genesis(), 40)));
    assert!(
        text.contains("height 40") && text.contains("not the header served"),
        "{text}"
    );
}

#[test]
fn a_certificate_signed_by_a_wrong_set_is_caught() {
    // One validator replaced at height 30: the set of height 40 is
    // fetched (it is not the trusted one).
    let chain = TestChain::new(50, 0, |height| {
        if height < 30 {
            vec![1, 2, 3, 4]
        } else {
            vec![1, 2, 3, 5]
        }
    });
    // Signed by four other keys, with a set of those served as the set of
    // the height: the set does not hash to what the header names.
    let mut liar = chain.clone();
    let wrong = set_of(&[91, 92, 93, 94]);
    liar.certificates.insert(
        40,
        certify(&chain.chain_id, &chain.headers[&40], &[91, 92, 93, 94]),
    );
    liar.sets.insert(40, wrong.clone());
    let text = error_text(run(Verifier::new(&liar).verify_to(&chain.genesis(), 40)));
    assert!(
        text.contains("validator set served for height 40 hashes to"),
        "{text}"
    );
    // The right set served, the wrong signatures: the certificate fails.
    let mut liar = chain.clone();
    liar.certificates.insert(
        40,
        certify(&chain.chain_id, &chain.headers[&40], &[91, 92, 93, 94]),
    );
    let text = error_text(run(Verifier::new(&liar).verify_to(&chain.genesis(), 40)));
    assert!(
        text.contains("certificate does not verify") && text.contains("does not verify"),
        "{text}"
    );
}

#[test]
fn a_set_the_trusted_validators_did_not_sign_is_not_trusted() {
    // A chain whose validators at height 40 are four keys nobody trusted,
    // with a consistent (self-signed) header: skipping refuses it and
    // bisection finds no path (the heights in between are not served).
    let chain = TestChain::new(50, 0, fixed);
    let mut liar = TestChain::new(50, 2, |height| {
        if height >= 40 {
            vec![91, 92, 93, 94]
        } else {
            vec![1, 2, 3, 4]
        }
    });
    for height in 1..40 {
        liar.headers.remove(&height);
        liar.certificates.remove(&height);
    }
    let result = run(Verifier::new(&liar).verify_to(&chain.genesis(), 40));
    let text = error_text(result);
    assert!(text.contains("/header/"), "{text}");
}

#[test]
fn older_heights_verify_back_through_parent_hashes() {
    let chain = TestChain::new(30, 0, gradual);
    let mut verifier = Verifier::new(&chain);
    let (state, block) = run(verifier.verify_to(&chain.trusted_at(30), 25)).unwrap();
    assert_eq!(state, chain.trusted_at(30), "trust never moves back");
    assert_eq!(block.header, chain.headers[&25]);
    assert_eq!(verifier.stats().headers, 6);

    let mut liar = chain.clone();
    let fork = TestChain::new(30, 1, gradual);
    liar.headers.insert(27, fork.headers[&27].clone());
    let text = error_text(run(
        Verifier::new(&liar).verify_to(&chain.trusted_at(30), 25)
    ));
    assert!(
        text.contains("height 27") && text.contains("trusted chain names"),
        "{text}"
    );
}

#[test]
fn a_stale_header_is_refused() {
    let client = crate::rpc::NodeClient::new("http://127.0.0.1:9").unwrap();
    let chain = TestChain::new(2, 0, fixed);
    let header = &chain.headers[&2];
    let max_age = std::time::Duration::from_secs(60);
    let fresh = Timestamp(header.time.0 + 59_000);
    assert!(super::check_fresh(&client, header, max_age, fresh).is_ok());
    let late = Timestamp(header.time.0 + 61_000);
    let text = super::check_fresh(&client, header, max_age, late)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("freshness bound") && text.contains("61.0 s old"),
        "{text}"
    );
}

#[test]
fn an_expired_trusted_state_is_not_verified_from() {
    let chain = TestChain::new(2, 0, fixed);
    let trusted = chain.trusted_at(2);
    let period = std::time::Duration::from_secs(3_600);
    let within = Timestamp(trusted.time.0 + 3_600_000);
    assert!(super::check_within_trusting_period(&trusted, period, within).is_ok());
    let past = Timestamp(trusted.time.0 + 3_600_001);
    let error = super::check_within_trusting_period(&trusted, period, past).unwrap_err();
    assert_eq!(error.code(), "trust_expired");
    assert!(
        error
            .to_string()
            .contains("cairn light init --trusted-height"),
        "{error}"
    );
}

#[test]
fn the_number_of_steps_is_bounded() {
    // The rotating chain needs 147 steps for 1,000 heights (see above).
    let chain = TestChain::new(1_000, 0, rotating);
    let mut verifier = Verifier::new(&chain).with_steps_max(100);
    let text = error_text(run(verifier.verify_to(&chain.genesis(), 1_000)));
    assert!(
        text.contains("more than 100 verification steps") && text.contains("cairn light init"),
        "{text}"
    );
    assert_eq!(verifier.stats().steps, 101);
}
