//! Driver tests through the public API: four drivers wired together by a
//! synchronous, lossless message pump, plus single-driver checks of the
//! rules around signatures, proposers, block time, WAL replay and
//! certificates.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::VecDeque, sync::Arc};

use cairn_consensus::{
    verify_certificate, Driver, DriverConfig, Input, Message, Output, SignedProposal, StartHeight,
    Step, WalEntry,
};
use cairn_types::{
    sha256, Block, ChainId, CommitCertificate, ConsensusParams, Hash, Header, Height, Keypair,
    Proposal, Round, Timestamp, Validator, ValidatorIndex, ValidatorSet, Vote, VoteType,
    VotingPower,
};

const GENESIS_MS: u64 = 1_000_000;

fn keys() -> Vec<Keypair> {
    (1..=4u8).map(|i| Keypair::from_seed(&[i; 32])).collect()
}

fn chain() -> ChainId {
    ChainId::new("driver-test").unwrap()
}

fn validators() -> ValidatorSet {
    ValidatorSet::new(
        keys()
            .iter()
            .enumerate()
            .map(|(i, k)| Validator {
                name: format!("v{i}"),
                public_key: k.public_key(),
                power: VotingPower(1),
                operator: k.address(),
            })
            .collect(),
    )
    .unwrap()
}

fn config() -> DriverConfig {
    let mut config = DriverConfig::new(
        chain(),
        validators(),
        ConsensusParams::default(),
        Timestamp(GENESIS_MS),
    );
    config.timeout_commit_ms = 0;
    config
}

fn driver(index: usize) -> Driver {
    Driver::new(config(), Some(keys()[index].clone())).unwrap()
}

fn start(height: u64, wal: Vec<WalEntry>) -> Input {
    Input::StartHeight(StartHeight {
        height: Height(height),
        parent_hash: sha256(b"genesis"),
        parent_time: Timestamp(GENESIS_MS),
        wal,
        validators: validators(),
    })
}

fn block(proposer: usize, time_ms: u64) -> Block {
    Block {
        header: Header {
            chain_id: chain(),
            height: Height(1),
            time: Timestamp(time_ms),
            parent_hash: sha256(b"genesis"),
            proposer: keys()[proposer].address(),
            transactions_root: Block::transactions_root_of(&[]),
            state_root: Hash::ZERO,
            parent_certificate_hash: Hash::ZERO,
            evidence_hash: Block::evidence_hash_of(&[]),
            validator_set_hash: validators().hash(),
            next_validator_set_hash: validators().hash(),
        },
        transactions: vec![],
        parent_certificate: None,
        evidence: vec![],
    }
}

/// Runs four drivers with lossless instant delivery until quiet; returns
/// every output of every driver, in order.
fn pump(drivers: &mut [Driver], first: Vec<(usize, Input)>) -> Vec<Vec<Output>> {
    pump_lossy(drivers, first, |_, _| true)
}

/// [`pump`] with a network that delivers a broadcast message to `to` only
/// when `deliver(to, message)` says so; a request for a round's messages
/// is answered by every driver the network reaches.
fn pump_lossy(
    drivers: &mut [Driver],
    first: Vec<(usize, Input)>,
    deliver: impl Fn(usize, &Message) -> bool,
) -> Vec<Vec<Output>> {
    let as_input = |message: Message| match message {
        Message::Proposal(signed) => Input::Proposal(signed),
        Message::Vote(vote) => Input::Vote(vote),
    };
    let mut log = vec![Vec::new(); drivers.len()];
    let mut queue: VecDeque<(usize, Input)> = first.into();
    let mut steps = 0;
    while let Some((node, input)) = queue.pop_front() {
        steps += 1;
        assert!(steps < 10_000, "the pump does not settle");
        let outputs = drivers[node].process(input);
        for output in &outputs {
            match output {
                Output::Broadcast(message) => {
                    for to in 0..drivers.len() {
                        if to != node && deliver(to, message) {
                            queue.push_back((to, as_input(message.clone())));
                        }
                    }
                }
                Output::RequestRoundState { height, round } => {
                    for (from, peer) in drivers.iter().enumerate() {
                        for message in peer.round_messages(*height, *round) {
                            if from != node && deliver(node, &message) {
                                queue.push_back((node, as_input(message)));
                            }
                        }
                    }
                }
                Output::BuildBlock {
                    request_id,
                    time_min,
                    ..
                } => queue.push_back((
                    node,
                    Input::BlockBuilt {
                        request_id: *request_id,
                        block: Some(Arc::new(block(node, time_min.0))),
                    },
                )),
                Output::ValidateBlock { request_id, .. } => queue.push_back((
                    node,
                    Input::BlockValidated {
                        request_id: *request_id,
                        valid: true,
                    },
                )),
                _ => {}
            }
        }
        log[node].extend(outputs);
    }
    log
}

/// Starts height 1 on `d` and answers its block request (if it is the
/// proposer) with a block of validator `own`; every output.
fn start_and_build(d: &mut Driver, own: usize) -> Vec<Output> {
    let mut outputs = d.process(start(1, vec![]));
    let built: Vec<Input> = outputs
        .iter()
        .filter_map(|output| match output {
            Output::BuildBlock { request_id, .. } => Some(Input::BlockBuilt {
                request_id: *request_id,
                block: Some(Arc::new(block(own, GENESIS_MS + 10))),
            }),
            _ => None,
        })
        .collect();
    for input in built {
        outputs.extend(d.process(input));
    }
    outputs
}

/// The WAL a driver wrote, as its host would read it back.
fn wal_of(log: &[Output]) -> Vec<WalEntry> {
    log.iter()
        .filter_map(|output| match output {
            Output::Persist(entry) => Some(WalEntry::from_bytes(&entry.to_bytes()).unwrap()),
            _ => None,
        })
        .collect()
}

fn decisions(log: &[Output]) -> Vec<(Arc<Block>, CommitCertificate)> {
    log.iter()
        .filter_map(|output| match output {
            Output::Decide { block, certificate } => Some((block.clone(), certificate.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn four_drivers_decide_the_same_block_with_a_valid_certificate() {
    let mut drivers: Vec<Driver> = (0..4).map(driver).collect();
    let log = pump(
        &mut drivers,
        (0..4).map(|n| (n, start(1, vec![]))).collect(),
    );
    let first = decisions(&log[0]);
    assert_eq!(first.len(), 1);
    for node_log in &log {
        let decided = decisions(node_log);
        assert_eq!(decided.len(), 1);
        assert_eq!(decided[0].0.hash(), first[0].0.hash());
        let (block, certificate) = &decided[0];
        assert_eq!(certificate.block_hash, block.hash());
        verify_certificate(certificate, &chain(), &validators()).unwrap();
        assert!(node_log
            .iter()
            .any(|o| matches!(o, Output::ScheduleTimeout { .. })));
    }
    // The proposer of height 1, round 0 is validator 1 (weighted round robin).
    assert_eq!(drivers[0].proposer(Height(1), Round(0)), ValidatorIndex(1));
    assert_eq!(first[0].0.header.proposer, keys()[1].address());
    for d in &drivers {
        assert_eq!(d.round_state().step, Step::Decided);
    }
}

#[test]
fn every_own_message_and_lock_is_persisted_before_it_is_broadcast() {
    let mut drivers: Vec<Driver> = (0..4).map(driver).collect();
    let log = pump(
        &mut drivers,
        (0..4).map(|n| (n, start(1, vec![]))).collect(),
    );
    for node_log in &log {
        let mut persisted_votes = Vec::new();
        let mut locked = false;
        for output in node_log {
            match output {
                Output::Persist(WalEntry::Vote(vote)) => persisted_votes.push(vote.clone()),
                Output::Persist(WalEntry::Locked { .. }) => locked = true,
                Output::Persist(WalEntry::Proposal(_)) => {}
                Output::Broadcast(Message::Vote(vote)) => {
                    assert!(
                        persisted_votes.contains(vote),
                        "vote broadcast before persist"
                    );
                    if vote.vote_type == VoteType::Precommit && vote.block_hash.is_some() {
                        assert!(locked, "precommit for a block broadcast before its lock");
                    }
                }
                _ => {}
            }
        }
    }
}

#[test]
fn a_driver_rebuilt_from_its_wal_keeps_its_lock_and_its_votes() {
    let mut drivers: Vec<Driver> = (0..4).map(driver).collect();
    let log = pump(
        &mut drivers,
        (0..4).map(|n| (n, start(1, vec![]))).collect(),
    );
    let wal: Vec<WalEntry> = log[2]
        .iter()
        .filter_map(|o| match o {
            Output::Persist(entry) => Some(WalEntry::from_bytes(&entry.to_bytes()).unwrap()),
            _ => None,
        })
        .collect();
    let before = drivers[2].round_state().clone();
    let mut restarted = driver(2);
    let outputs = restarted.process(start(1, wal));
    let after = restarted.round_state();
    assert_eq!(after.locked, before.locked);
    assert_eq!(after.valid, before.valid);
    assert_eq!(after.round, before.round);
    assert_eq!(after.step, Step::Precommit);
    assert_eq!(restarted.own_votes().len(), 2);
    // It re-sends the same votes, and signs nothing new.
    assert!(!outputs
        .iter()
        .any(|o| matches!(o, Output::Persist(WalEntry::Vote(_)))));
    assert!(outputs
        .iter()
        .any(|o| matches!(o, Output::RequestRoundState { .. })));
    // A timeout that would make it precommit nil in the same round does nothing.
    let outputs = restarted.process(Input::TimeoutElapsed(cairn_consensus::Timeout {
        height: Height(1),
        round: Round(0),
        kind: cairn_consensus::TimeoutKind::Round(cairn_consensus::RoundTimeout::Prevote),
    }));
    assert!(!outputs
        .iter()
        .any(|o| matches!(o, Output::Broadcast(_) | Output::Persist(_))));
}

#[test]
fn a_proposal_from_the_wrong_proposer_or_with_a_bad_signature_is_rejected() {
    let mut d = driver(0);
    d.process(start(1, vec![]));
    let block = Arc::new(block(2, GENESIS_MS + 1));
    let wrong = Proposal::new_signed(
        &chain(),
        Height(1),
        Round(0),
        None,
        block.hash(),
        ValidatorIndex(2),
        &keys()[2],
    );
    let outputs = d.process(Input::Proposal(SignedProposal {
        proposal: wrong,
        block: block.clone(),
    }));
    assert!(matches!(
        outputs.last(),
        Some(Output::Rejected(
            cairn_consensus::ConsensusError::NotProposer { .. }
        ))
    ));
    let mut forged = Proposal::new_signed(
        &chain(),
        Height(1),
        Round(0),
        None,
        block.hash(),
        ValidatorIndex(1),
        &keys()[2],
    );
    forged.proposer = ValidatorIndex(1);
    let outputs = d.process(Input::Proposal(SignedProposal {
        proposal: forged,
        block,
    }));
    assert!(matches!(
        outputs.last(),
        Some(Output::Rejected(
            cairn_consensus::ConsensusError::BadSignature { .. }
        ))
    ));
    let mut vote = Vote::new_signed(
        &chain(),
        VoteType::Prevote,
        Height(1),
        Round(0),
        None,
        ValidatorIndex(3),
        &keys()[3],
    );
    vote.signature.0[0] ^= 1;
    let outputs = d.process(Input::Vote(vote));
    assert!(matches!(
        outputs.last(),
        Some(Output::Rejected(
            cairn_consensus::ConsensusError::BadSignature { .. }
        ))
    ));
}

#[test]
fn a_block_too_far_ahead_of_our_clock_gets_a_nil_prevote() {
    let mut d = driver(0);
    d.process(Input::Time(Timestamp(GENESIS_MS + 10)));
    d.process(start(1, vec![]));
    let drift = ConsensusParams::default().clock_drift_max_ms;
    let late = Arc::new(block(1, GENESIS_MS + 10 + drift + 1));
    let proposal = Proposal::new_signed(
        &chain(),
        Height(1),
        Round(0),
        None,
        late.hash(),
        ValidatorIndex(1),
        &keys()[1],
    );
    let late_hash = late.hash();
    let outputs = d.process(Input::Proposal(SignedProposal {
        proposal,
        block: late,
    }));
    assert!(outputs.iter().any(|o| matches!(
        o,
        Output::Broadcast(Message::Vote(Vote {
            vote_type: VoteType::Prevote,
            block_hash: None,
            ..
        }))
    )));
    assert!(outputs.iter().any(|o| matches!(
        o,
        Output::Rejected(cairn_consensus::ConsensusError::BlockTooFarAhead { .. })
    )));
    // The others' clocks found it timely and prevoted it: a lagging clock is
    // no reason to refuse it now. The block is validated (no clock check)
    // instead of staying "invalid" for the whole height.
    let mut judged = Vec::new();
    for validator in 1..4 {
        let vote = Vote::new_signed(
            &chain(),
            VoteType::Prevote,
            Height(1),
            Round(0),
            Some(late_hash),
            ValidatorIndex(validator),
            &keys()[validator as usize],
        );
        judged.extend(d.process(Input::Vote(vote)));
    }
    assert!(
        judged.iter().any(|o| matches!(
            o,
            Output::ValidateBlock { block, .. } if block.hash() == late_hash
        )),
        "{judged:?}"
    );
}

#[test]
fn a_block_not_after_its_parent_gets_a_nil_prevote() {
    let mut d = driver(0);
    d.process(start(1, vec![]));
    let early = Arc::new(block(1, GENESIS_MS));
    let proposal = Proposal::new_signed(
        &chain(),
        Height(1),
        Round(0),
        None,
        early.hash(),
        ValidatorIndex(1),
        &keys()[1],
    );
    let outputs = d.process(Input::Proposal(SignedProposal {
        proposal,
        block: early,
    }));
    assert!(outputs.iter().any(|o| matches!(
        o,
        Output::Broadcast(Message::Vote(Vote {
            vote_type: VoteType::Prevote,
            block_hash: None,
            ..
        }))
    )));
}

#[test]
fn messages_for_the_next_height_are_buffered_and_farther_ones_refused() {
    let mut d = driver(0);
    d.process(start(1, vec![]));
    let next = Vote::new_signed(
        &chain(),
        VoteType::Prevote,
        Height(2),
        Round(0),
        None,
        ValidatorIndex(3),
        &keys()[3],
    );
    assert!(d
        .process(Input::Vote(next))
        .iter()
        .all(|o| !matches!(o, Output::Rejected(_))));
    let far = Vote::new_signed(
        &chain(),
        VoteType::Prevote,
        Height(3),
        Round(0),
        None,
        ValidatorIndex(3),
        &keys()[3],
    );
    assert!(matches!(
        d.process(Input::Vote(far)).last(),
        Some(Output::Rejected(_))
    ));
    let ahead = Vote::new_signed(
        &chain(),
        VoteType::Prevote,
        Height(1),
        Round(1_000),
        None,
        ValidatorIndex(3),
        &keys()[3],
    );
    assert!(matches!(
        d.process(Input::Vote(ahead)).last(),
        Some(Output::Rejected(
            cairn_consensus::ConsensusError::RoundTooFarAhead { .. }
        ))
    ));
}

#[test]
fn a_certificate_for_a_block_not_held_fetches_it_by_hash_then_decides() {
    let mut drivers: Vec<Driver> = (0..4).map(driver).collect();
    let log = pump(
        &mut drivers,
        (0..4).map(|n| (n, start(1, vec![]))).collect(),
    );
    let (decided, certificate) = decisions(&log[0]).remove(0);
    let mut late = Driver::new(config(), None).unwrap();
    late.process(start(1, vec![]));
    let outputs = late.process(Input::CertificateSeen {
        certificate: certificate.clone(),
        block: None,
    });
    let request_id = outputs
        .iter()
        .find_map(|o| match o {
            Output::RequestBlock {
                request_id,
                block_hash,
                ..
            } if *block_hash == decided.hash() => Some(*request_id),
            _ => None,
        })
        .expect("a request for the block by hash");
    let outputs = late.process(Input::BlockReceived {
        request_id,
        block: decided.clone(),
    });
    let validation = outputs
        .iter()
        .find_map(|o| match o {
            Output::ValidateBlock { request_id, .. } => Some(*request_id),
            _ => None,
        })
        .expect("a validation request");
    let outputs = late.process(Input::BlockValidated {
        request_id: validation,
        valid: true,
    });
    assert!(outputs
        .iter()
        .any(|o| matches!(o, Output::Decide { block, .. } if block.hash() == decided.hash())));
    // A tampered certificate is refused.
    let mut tampered = certificate;
    tampered.signatures.truncate(1);
    let mut other = Driver::new(config(), None).unwrap();
    other.process(start(1, vec![]));
    assert!(matches!(
        other
            .process(Input::CertificateSeen {
                certificate: tampered,
                block: None
            })
            .last(),
        Some(Output::Rejected(_))
    ));
}

#[test]
fn timeout_commit_then_next_height_ready() {
    let mut drivers: Vec<Driver> = (0..4).map(driver).collect();
    let log = pump(
        &mut drivers,
        (0..4).map(|n| (n, start(1, vec![]))).collect(),
    );
    let commit = log[0]
        .iter()
        .find_map(|o| match o {
            Output::ScheduleTimeout {
                timeout,
                duration_ms,
            } if timeout.kind == cairn_consensus::TimeoutKind::Commit => {
                Some((*timeout, *duration_ms))
            }
            _ => None,
        })
        .expect("a commit timeout");
    assert_eq!(commit.1, 0);
    let outputs = drivers[0].process(Input::TimeoutElapsed(commit.0));
    assert_eq!(outputs, vec![Output::NextHeightReady { height: Height(2) }]);
}

#[test]
fn the_next_height_buffer_holds_one_message_per_slot_and_only_early_rounds() {
    let mut d = driver(0);
    d.process(start(1, vec![]));
    let vote = |round: u32, validator: usize| {
        Vote::new_signed(
            &chain(),
            VoteType::Prevote,
            Height(2),
            Round(round),
            None,
            ValidatorIndex(validator as u32),
            &keys()[validator],
        )
    };
    // The same vote a thousand times takes one slot: no refusal, no growth.
    for _ in 0..1_000 {
        let outputs = d.process(Input::Vote(vote(0, 3)));
        assert!(outputs.iter().all(|o| !matches!(o, Output::Rejected(_))));
    }
    // A vote of a round far into the next height is refused at once.
    assert!(matches!(
        d.process(Input::Vote(vote(1_000, 2))).last(),
        Some(Output::Rejected(
            cairn_consensus::ConsensusError::RoundTooFarAhead { .. }
        ))
    ));
}

#[test]
fn a_driver_with_a_signing_floor_signs_nothing_at_or_below_it() {
    use cairn_consensus::{LastSigned, SignedStep};
    // The proposer of height 1 round 0, whose floor says it already
    // precommitted there (in a WAL lost since).
    let proposer = driver(0).proposer(Height(1), Round(0));
    let mut d = driver(proposer.0 as usize);
    d.set_signing_floor(Some(LastSigned {
        height: Height(1),
        round: Round(0),
        step: SignedStep::Precommit,
        block_hash: None,
    }));
    // Its block request is answered, so it would propose.
    let outputs = start_and_build(&mut d, proposer.0 as usize);
    // Its WAL does not hold the floor's precommit: it signs that very vote
    // again (the same bytes it sent) and nothing else.
    let floor_vote = Vote::new_signed(
        &chain(),
        VoteType::Precommit,
        Height(1),
        Round(0),
        None,
        proposer,
        &keys()[proposer.0 as usize],
    );
    assert!(
        outputs.iter().all(|output| match output {
            Output::Persist(WalEntry::Vote(vote)) | Output::Broadcast(Message::Vote(vote)) =>
                *vote == floor_vote,
            Output::Persist(WalEntry::Proposal(_)) | Output::Broadcast(_) => false,
            _ => true,
        }),
        "signed at or below the floor: {outputs:?}"
    );
    assert_eq!(d.round_state().round, Round(0));
    assert_eq!(d.round_state().step, Step::Precommit);
    // Without the floor the same driver proposes.
    let mut free = driver(proposer.0 as usize);
    let outputs = start_and_build(&mut free, proposer.0 as usize);
    assert!(outputs
        .iter()
        .any(|output| matches!(output, Output::Persist(WalEntry::Proposal(_)))));
}

#[test]
fn a_fresh_proposal_whose_block_names_another_fee_address_is_rejected() {
    let mut d = driver(0);
    d.process(start(1, vec![]));
    let proposer = d.proposer(Height(1), Round(0)).0 as usize;
    let other = (proposer + 1) % 4;
    // Signed by the round's proposer, but the block pays `other`.
    let block = Arc::new(block(other, GENESIS_MS + 1));
    let proposal = Proposal::new_signed(
        &chain(),
        Height(1),
        Round(0),
        None,
        block.hash(),
        ValidatorIndex(proposer as u32),
        &keys()[proposer],
    );
    let outputs = d.process(Input::Proposal(SignedProposal { proposal, block }));
    assert!(
        matches!(
            outputs.last(),
            Some(Output::Rejected(
                cairn_consensus::ConsensusError::ForeignFeeAddress { .. }
            ))
        ),
        "{outputs:?}"
    );
}

#[test]
fn a_proposer_of_a_later_round_proposes_its_earlier_block_again() {
    let proposer = driver(0).proposer(Height(1), Round(0));
    let later = (1..16)
        .map(Round)
        .find(|round| driver(0).proposer(Height(1), *round) == proposer)
        .expect("the proposer comes round again");
    let own = proposer.0 as usize;
    let mut d = driver(own);
    let outputs = start_and_build(&mut d, own);
    let first_hash = outputs
        .iter()
        .find_map(|output| match output {
            Output::Persist(WalEntry::Proposal(proposal)) => Some(proposal.block_hash),
            _ => None,
        })
        .expect("round 0 proposal");
    // f + 1 prevotes of the later round make the driver skip to it (L55).
    let mut skipped = Vec::new();
    for other in (0..4).filter(|index| *index != own).take(2) {
        let vote = Vote::new_signed(
            &chain(),
            VoteType::Prevote,
            Height(1),
            later,
            None,
            ValidatorIndex(other as u32),
            &keys()[other],
        );
        skipped.extend(d.process(Input::Vote(vote)));
    }
    assert_eq!(d.round_state().round, later, "{skipped:?}");
    assert!(
        skipped
            .iter()
            .all(|output| !matches!(output, Output::BuildBlock { .. })),
        "built a second block: {skipped:?}"
    );
    assert!(
        skipped
            .iter()
            .all(|output| !matches!(output, Output::Persist(WalEntry::Block { .. }))),
        "persisted a second block"
    );
    let again = skipped
        .iter()
        .find_map(|output| match output {
            Output::Persist(WalEntry::Proposal(proposal)) => Some(proposal.clone()),
            _ => None,
        })
        .expect("a proposal in the later round");
    assert_eq!(again.block_hash, first_hash);
    assert_eq!(again.round, later);
}

#[test]
fn a_lock_kept_beside_the_signing_floor_is_restored_when_the_wal_is_lost() {
    let mut d = driver(1);
    let lock = cairn_consensus::RoundValue {
        round: Round(2),
        value: Hash([5; 32]),
    };
    d.set_lock_floor(Some((Height(1), lock)));
    d.process(start(1, vec![]));
    assert_eq!(d.round_state().locked, Some(lock));
    // Another height does not take it.
    let mut other = driver(1);
    other.set_lock_floor(Some((Height(7), lock)));
    other.process(start(1, vec![]));
    assert_eq!(other.round_state().locked, None);
}

/// The block hash names the header only. A body that does not match its
/// header (a junk body under an authentic header, or bytes flipped in
/// flight) is refused without a verdict for that hash: the real block,
/// arriving later, is judged and decided. (Found by the simulator's
/// in-flight corruption: a validator that kept "invalid" for the hash never
/// committed the height.)
#[test]
fn a_junk_body_under_an_authentic_header_does_not_poison_the_block() {
    let mut drivers: Vec<Driver> = (0..4).map(driver).collect();
    let log = pump(
        &mut drivers,
        (0..4).map(|n| (n, start(1, vec![]))).collect(),
    );
    let (decided, certificate) = decisions(&log[0]).remove(0);
    let mut junk = (*decided).clone();
    junk.transactions.push(
        cairn_types::Transaction {
            chain_id: chain(),
            sender: keys()[0].public_key(),
            recipient: keys()[1].address(),
            amount: 1,
            fee: 1,
            nonce: 0,
            memo: String::new(),
            kind: cairn_types::TransactionKind::Transfer,
        }
        .sign(&keys()[0]),
    );
    assert_eq!(junk.hash(), decided.hash(), "the header is authentic");
    let mut late = Driver::new(config(), None).unwrap();
    late.process(start(1, vec![]));
    let outputs = late.process(Input::CertificateSeen {
        certificate: certificate.clone(),
        block: Some(Arc::new(junk)),
    });
    assert!(
        !outputs
            .iter()
            .any(|o| matches!(o, Output::ValidateBlock { .. } | Output::Decide { .. })),
        "a junk body is neither judged nor decided: {outputs:?}"
    );
    let outputs = late.process(Input::CertificateSeen {
        certificate,
        block: Some(decided.clone()),
    });
    let validation = outputs
        .iter()
        .find_map(|o| match o {
            Output::ValidateBlock { request_id, block } if block.hash() == decided.hash() => {
                Some(*request_id)
            }
            _ => None,
        })
        .expect("the real block is judged");
    let outputs = late.process(Input::BlockValidated {
        request_id: validation,
        valid: true,
    });
    assert!(outputs
        .iter()
        .any(|o| matches!(o, Output::Decide { block, .. } if block.hash() == decided.hash())));
}

/// "Too far ahead" means "not yet": a block refused as a fresh proposal
/// while this node's clock lagged is judged again when it is proposed
/// afresh in a later round and the clock has caught up (a proposer proposes
/// its block of the height again in every round it leads). Found by the
/// simulator's clock jumps: the height never decided.
#[test]
fn a_block_once_too_far_ahead_is_judged_again_when_the_clock_has_caught_up() {
    let mut d = driver(0);
    d.process(Input::Time(Timestamp(GENESIS_MS + 10)));
    d.process(start(1, vec![]));
    let drift = ConsensusParams::default().clock_drift_max_ms;
    let ahead_ms = GENESIS_MS + 10 + drift + 1;
    // Validator 1 leads round 0 and proposes a block too far ahead.
    let early = Arc::new(block(1, ahead_ms));
    let proposal = Proposal::new_signed(
        &chain(),
        Height(1),
        Round(0),
        None,
        early.hash(),
        ValidatorIndex(1),
        &keys()[1],
    );
    let outputs = d.process(Input::Proposal(SignedProposal {
        proposal,
        block: early.clone(),
    }));
    assert!(outputs.iter().any(|o| matches!(
        o,
        Output::Rejected(cairn_consensus::ConsensusError::BlockTooFarAhead { .. })
    )));
    // Validator 1 leads a later round; by then the clock has passed the
    // block's time. Prevotes of that round from more than a third of the
    // power move this driver there (L55).
    let leads_again = (1..16)
        .map(Round)
        .find(|round| d.proposer(Height(1), *round) == ValidatorIndex(1))
        .expect("validator 1 leads a later round");
    // The clock catches up: the block is judged again at once.
    let outputs = d.process(Input::Time(Timestamp(ahead_ms)));
    let validation = outputs
        .iter()
        .find_map(|o| match o {
            Output::ValidateBlock { request_id, block } if block.hash() == early.hash() => {
                Some(*request_id)
            }
            _ => None,
        })
        .expect("the block is judged again once the clock has caught up");
    d.process(Input::BlockValidated {
        request_id: validation,
        valid: true,
    });
    for validator in [2u32, 3] {
        let vote = Vote::new_signed(
            &chain(),
            VoteType::Prevote,
            Height(1),
            leads_again,
            None,
            ValidatorIndex(validator),
            &keys()[validator as usize],
        );
        d.process(Input::Vote(vote));
    }
    assert_eq!(d.round_state().round, leads_again);
    let proposal = Proposal::new_signed(
        &chain(),
        Height(1),
        leads_again,
        None,
        early.hash(),
        ValidatorIndex(1),
        &keys()[1],
    );
    let outputs = d.process(Input::Proposal(SignedProposal {
        proposal,
        block: early.clone(),
    }));
    assert!(
        outputs.iter().any(|o| matches!(
            o,
            Output::Broadcast(Message::Vote(Vote {
                vote_type: VoteType::Prevote,
                block_hash: Some(hash),
                ..
            })) if *hash == early.hash()
        )),
        "the block proposed afresh is prevoted now that it is timely: {outputs:?}"
    );
}

/// A proposal whose body does not match its authentic header takes no
/// slot of its round: the same signed proposal with the real body, arriving
/// next, is judged.
#[test]
fn a_proposal_with_a_junk_body_does_not_take_the_rounds_slot() {
    let mut d = driver(0);
    d.process(Input::Time(Timestamp(GENESIS_MS + 10)));
    d.process(start(1, vec![]));
    let real = Arc::new(block(1, GENESIS_MS + 10));
    let proposal = Proposal::new_signed(
        &chain(),
        Height(1),
        Round(0),
        None,
        real.hash(),
        ValidatorIndex(1),
        &keys()[1],
    );
    let mut junk = (*real).clone();
    junk.transactions.push(
        cairn_types::Transaction {
            chain_id: chain(),
            sender: keys()[2].public_key(),
            recipient: keys()[3].address(),
            amount: 1,
            fee: 1,
            nonce: 0,
            memo: String::new(),
            kind: cairn_types::TransactionKind::Transfer,
        }
        .sign(&keys()[2]),
    );
    let outputs = d.process(Input::Proposal(SignedProposal {
        proposal: proposal.clone(),
        block: Arc::new(junk),
    }));
    assert!(
        outputs.iter().any(|o| matches!(o, Output::Rejected(_)))
            && !outputs
                .iter()
                .any(|o| matches!(o, Output::ValidateBlock { .. })),
        "{outputs:?}"
    );
    let outputs = d.process(Input::Proposal(SignedProposal {
        proposal,
        block: real.clone(),
    }));
    assert!(
        outputs.iter().any(
            |o| matches!(o, Output::ValidateBlock { block, .. } if block.hash() == real.hash())
        ),
        "{outputs:?}"
    );
}

/// The soak's seed 722013, reduced: a polka for B forms in round 0 (one
/// validator prevoted nil), no precommit quorum follows, the height moves
/// to round 1, every validator restarts from its WAL and one of the polka's
/// voters never comes back. The round-1 proposer re-proposes B with valid
/// round 0 (line 16); its peers may prevote it only holding the round-0
/// prevotes (line 28). Own votes alone give two of the three needed: the
/// WAL must keep the polka, or the height takes nil prevotes forever.
#[test]
fn a_polka_survives_a_restart_of_every_validator_that_saw_it() {
    let schedule = driver(0);
    let first_proposer = schedule.proposer(Height(1), Round(0)).0 as usize;
    let second_proposer = schedule.proposer(Height(1), Round(1)).0 as usize;
    let nil_voter = (0..4)
        .find(|node| ![first_proposer, second_proposer].contains(node))
        .unwrap();
    let stopped = (0..4)
        .find(|node| ![second_proposer, nil_voter].contains(node))
        .unwrap();
    let timeout = |round: u32, kind: cairn_consensus::RoundTimeout| {
        Input::TimeoutElapsed(cairn_consensus::Timeout {
            height: Height(1),
            round: Round(round),
            kind: cairn_consensus::TimeoutKind::Round(kind),
        })
    };
    let mut drivers: Vec<Driver> = (0..4).map(driver).collect();
    // Round 0: the nil voter times out before the proposal arrives; every
    // prevote is delivered, no precommit is.
    let mut first = vec![
        (nil_voter, start(1, vec![])),
        (
            nil_voter,
            timeout(0, cairn_consensus::RoundTimeout::Propose),
        ),
    ];
    first.extend(
        (0..4)
            .filter(|node| *node != nil_voter)
            .map(|node| (node, start(1, vec![]))),
    );
    let mut logs = pump_lossy(
        &mut drivers,
        first,
        |_, message| !matches!(message, Message::Vote(vote) if vote.vote_type == VoteType::Precommit),
    );
    for (node, d) in drivers.iter().enumerate() {
        let valid = d
            .round_state()
            .valid
            .expect("every validator saw the polka");
        assert_eq!(valid.round, Round(0), "node {node}");
    }
    let polka_block = drivers[0].round_state().valid.unwrap().value;
    // The precommit timeout moves everyone to round 1; the network is down.
    let moved = pump_lossy(
        &mut drivers,
        (0..4)
            .map(|node| (node, timeout(0, cairn_consensus::RoundTimeout::Precommit)))
            .collect(),
        |_, _| false,
    );
    for (node, outputs) in moved.into_iter().enumerate() {
        logs[node].extend(outputs);
        assert_eq!(drivers[node].round_state().round, Round(1));
        assert!(decisions(&logs[node]).is_empty());
    }
    assert!(
        wal_of(&logs[second_proposer]).iter().any(|entry| matches!(
            entry,
            WalEntry::Proposal(proposal)
                if proposal.round == Round(1)
                    && proposal.valid_round == Some(Round(0))
                    && proposal.block_hash == polka_block
        )),
        "the round-1 proposer re-proposes the polka's block"
    );
    // Every validator restarts from its WAL; one never comes back.
    let mut restarted: Vec<Driver> = (0..4).map(driver).collect();
    let alive = move |node: usize| node != stopped;
    let log = pump_lossy(
        &mut restarted,
        (0..4)
            .filter(|node| alive(*node))
            .map(|node| (node, start(1, wal_of(&logs[node]))))
            .collect(),
        |to, _| alive(to),
    );
    for node in (0..4).filter(|node| alive(*node)) {
        let decided = decisions(&log[node]);
        assert_eq!(
            decided.len(),
            1,
            "node {node} never decided after the restart (round {:?}, step {:?})",
            restarted[node].round_state().round,
            restarted[node].round_state().step
        );
        assert_eq!(decided[0].0.hash(), polka_block);
        verify_certificate(&decided[0].1, &chain(), &validators()).unwrap();
    }
}

/// The polka entry is written before the `Valid` entry it justifies, holds
/// only prevotes of its round for its block, and a WAL entry that claims
/// another vote as part of a polka does not replay.
#[test]
fn the_polka_is_persisted_before_the_valid_value_and_checked_on_replay() {
    let mut drivers: Vec<Driver> = (0..4).map(driver).collect();
    let log = pump(
        &mut drivers,
        (0..4).map(|n| (n, start(1, vec![]))).collect(),
    );
    let wal = wal_of(&log[0]);
    let polka = wal
        .iter()
        .position(|entry| matches!(entry, WalEntry::Polka { .. }))
        .expect("a polka entry");
    let valid = wal
        .iter()
        .position(|entry| matches!(entry, WalEntry::Valid { .. }))
        .expect("a valid entry");
    assert!(polka < valid);
    let WalEntry::Polka {
        round,
        block_hash,
        prevotes,
        ..
    } = wal[polka].clone()
    else {
        unreachable!()
    };
    assert!(prevotes.len() >= 3, "{} prevotes", prevotes.len());
    for vote in &prevotes {
        assert_eq!(
            (vote.vote_type, vote.round, vote.block_hash),
            (VoteType::Prevote, round, Some(block_hash))
        );
    }
    let mut forged = wal.clone();
    let mut nil_prevote = prevotes[0].clone();
    nil_prevote.block_hash = None;
    forged[polka] = WalEntry::Polka {
        height: Height(1),
        round,
        block_hash,
        prevotes: vec![nil_prevote],
    };
    let outputs = driver(0).process(start(1, forged));
    assert!(
        outputs.iter().any(|output| matches!(
            output,
            Output::Rejected(cairn_consensus::ConsensusError::WalCorrupt { .. })
        )),
        "{outputs:?}"
    );
}

/// A restart whose WAL holds the floor's vote resumes from the WAL; one
/// whose WAL lost it (a reset, a lost disk) signs that same vote again
/// and resumes after it, instead of staying silent in its round.
#[test]
fn a_vote_lost_with_the_wal_comes_back_from_the_signing_floor() {
    use cairn_consensus::{LastSigned, SignedStep};
    let mut drivers: Vec<Driver> = (0..4).map(driver).collect();
    let log = pump_lossy(
        &mut drivers,
        (0..4).map(|n| (n, start(1, vec![]))).collect(),
        |_, message| !matches!(message, Message::Vote(vote) if vote.vote_type == VoteType::Precommit),
    );
    let wal = wal_of(&log[2]);
    let precommit = wal
        .iter()
        .find_map(|entry| match entry {
            WalEntry::Vote(vote) if vote.vote_type == VoteType::Precommit => Some(vote.clone()),
            _ => None,
        })
        .expect("node 2 precommitted");
    let floor = LastSigned {
        height: Height(1),
        round: precommit.round,
        step: SignedStep::Precommit,
        block_hash: precommit.block_hash,
    };
    let mut restarted = driver(2);
    restarted.set_signing_floor(Some(floor));
    restarted.process(start(1, wal));
    assert_eq!(restarted.round_state().round, precommit.round);
    assert_eq!(restarted.round_state().step, Step::Precommit);
    // The same floor with the WAL lost: the same precommit again, byte for
    // byte, and the round resumes after it.
    let mut wiped = driver(2);
    wiped.set_signing_floor(Some(floor));
    let outputs = wiped.process(start(1, vec![]));
    assert_eq!(wiped.round_state().round, precommit.round);
    assert_eq!(wiped.round_state().step, Step::Precommit);
    assert_eq!(
        wiped
            .own_votes()
            .get(&(precommit.round, VoteType::Precommit)),
        Some(&precommit)
    );
    assert!(outputs.iter().any(
        |output| matches!(output, Output::Broadcast(Message::Vote(vote)) if *vote == precommit)
    ));
    // With the prevote kept beside the floor, that one comes back too (a
    // round short of prevotes may need it: the simulator's seed 802176).
    let prevote = wal_of(&log[2])
        .iter()
        .find_map(|entry| match entry {
            WalEntry::Vote(vote) if vote.vote_type == VoteType::Prevote => Some(vote.clone()),
            _ => None,
        })
        .expect("node 2 prevoted");
    let mut both = driver(2);
    both.set_signing_floor(Some(floor));
    both.set_prevote_floor(Some(LastSigned {
        height: Height(1),
        round: prevote.round,
        step: SignedStep::Prevote,
        block_hash: prevote.block_hash,
    }));
    both.process(start(1, vec![]));
    assert_eq!(
        both.own_votes().get(&(prevote.round, VoteType::Prevote)),
        Some(&prevote)
    );
    assert_eq!(
        both.own_votes()
            .get(&(precommit.round, VoteType::Precommit)),
        Some(&precommit)
    );
    assert_eq!(both.round_state().step, Step::Precommit);
}
