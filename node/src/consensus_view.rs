//! What `GET /consensus` shows: the consensus loop's height, round, step,
//! proposer, locks and the votes seen this round by power.
//!
//! The consensus loop builds a [`ConsensusStateView`] from its driver and
//! publishes it on a [`ConsensusBoard`] when the height, round or step
//! changes and otherwise at most every [`CONSENSUS_VIEW_REFRESH_MS`]; the
//! RPC reads the latest one. The consensus thread never waits for a reader:
//! publishing replaces one `Arc` under a lock held for that swap only.

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
};

use cairn_consensus::{Driver, Message, Step};
use cairn_types::{Hash, Height, Round, VoteType};

use crate::rpc::{ConsensusStateView, ConsensusVotesView, ProposerView, VoteValueView};

/// Least time between two snapshots of the same height, round and step.
pub const CONSENSUS_VIEW_REFRESH_MS: u64 = 100;

/// The latest snapshot of the consensus state, shared by the consensus
/// loop (writer) and the RPC (readers).
#[derive(Default)]
pub struct ConsensusBoard {
    latest: RwLock<Option<Arc<ConsensusStateView>>>,
}

impl ConsensusBoard {
    /// An empty board (no snapshot yet).
    pub fn new() -> ConsensusBoard {
        ConsensusBoard::default()
    }

    /// Replaces the snapshot.
    pub fn publish(&self, view: ConsensusStateView) {
        *self
            .latest
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(view));
    }

    /// The latest snapshot, if the loop published one.
    pub fn latest(&self) -> Option<Arc<ConsensusStateView>> {
        self.latest
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The name of a step in JSON.
pub fn step_name(step: Step) -> &'static str {
    match step {
        Step::Unstarted => "unstarted",
        Step::Propose => "propose",
        Step::Prevote => "prevote",
        Step::Precommit => "precommit",
        Step::Decided => "decided",
    }
}

/// The snapshot of `driver` (at `height`, which is the driver's or the
/// height the host waits to start), given the round's `messages` (the
/// proposal and votes it holds), taken at `time_ms`.
pub fn snapshot(
    driver: &Driver,
    height: Height,
    waiting: bool,
    messages: &[Message],
    time_ms: u64,
) -> ConsensusStateView {
    let state = driver.round_state();
    let round = state.round;
    let validators = driver.validators();
    let total_power = validators.total_power().0;
    let proposer_index = driver.proposer(height, round);
    let proposer = validators
        .get(proposer_index)
        .map(|validator| ProposerView {
            index: proposer_index.0,
            name: validator.name.clone(),
            address: validator.address(),
        });
    let mut proposal = None;
    let mut prevotes: BTreeMap<Option<Hash>, (u64, Vec<u32>)> = BTreeMap::new();
    let mut precommits: BTreeMap<Option<Hash>, (u64, Vec<u32>)> = BTreeMap::new();
    for message in messages {
        match message {
            Message::Proposal(signed) if signed.proposal.round == round => {
                proposal = Some(signed.proposal.block_hash);
            }
            Message::Vote(vote) if vote.round == round && vote.height == height => {
                let power = validators
                    .get(vote.validator)
                    .map_or(0, |validator| validator.power.0);
                let tally = match vote.vote_type {
                    VoteType::Prevote => &mut prevotes,
                    VoteType::Precommit => &mut precommits,
                };
                let entry = tally.entry(vote.block_hash).or_default();
                // A validator that equivocated appears twice; its power
                // counts once per value it named, as the vote keeper shows.
                entry.0 = entry.0.saturating_add(power);
                entry.1.push(vote.validator.0);
            }
            _ => {}
        }
    }
    ConsensusStateView {
        height: height.0,
        round: round.0,
        step: if waiting {
            "waiting_for_transactions".into()
        } else {
            step_name(state.step).into()
        },
        proposer,
        proposal,
        locked_round: state.locked.map(|locked| locked.round.0),
        locked_block: state.locked.map(|locked| locked.value),
        valid_round: state.valid.map(|valid| valid.round.0),
        total_power,
        quorum_power: quorum(total_power),
        prevotes: tally(prevotes, total_power),
        precommits: tally(precommits, total_power),
        validator_index: driver.validator_index().map(|index| index.0),
        updated_ms: time_ms,
    }
}

/// More than two thirds of `total`.
fn quorum(total: u64) -> u64 {
    total.saturating_mul(2) / 3 + 1
}

fn tally(votes: BTreeMap<Option<Hash>, (u64, Vec<u32>)>, total_power: u64) -> ConsensusVotesView {
    let mut seen: Vec<u32> = votes
        .values()
        .flat_map(|(_, validators)| validators.iter().copied())
        .collect();
    seen.sort_unstable();
    seen.dedup();
    let power = votes.values().map(|(power, _)| *power).sum::<u64>();
    let mut by_value: Vec<VoteValueView> = votes
        .into_iter()
        .map(|(block, (power, mut validators))| {
            validators.sort_unstable();
            VoteValueView {
                block,
                power,
                validators,
            }
        })
        .collect();
    by_value.sort_by_key(|value| std::cmp::Reverse(value.power));
    ConsensusVotesView {
        power: power.min(total_power),
        voters: seen.len(),
        by_value,
    }
}

/// Whether a new snapshot is due: the height, round or step moved since
/// `last`, or it is older than [`CONSENSUS_VIEW_REFRESH_MS`].
pub fn due(
    last: Option<&(Height, Round, &'static str, u64)>,
    now: (Height, Round, &'static str, u64),
) -> bool {
    match last {
        None => true,
        Some((height, round, step, time_ms)) => {
            (*height, *round, *step) != (now.0, now.1, now.2)
                || now.3.saturating_sub(*time_ms) >= CONSENSUS_VIEW_REFRESH_MS
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_is_more_than_two_thirds() {
        assert_eq!(quorum(4), 3);
        assert_eq!(quorum(3), 3);
        assert_eq!(quorum(100), 67);
        assert_eq!(quorum(1), 1);
    }

    #[test]
    fn tallies_sum_power_per_value_largest_first() {
        let block = Hash([1; 32]);
        let mut votes = BTreeMap::new();
        votes.insert(Some(block), (5, vec![2, 0]));
        votes.insert(None, (1, vec![3]));
        let view = tally(votes, 10);
        assert_eq!(view.power, 6);
        assert_eq!(view.voters, 3);
        assert_eq!(view.by_value[0].block, Some(block));
        assert_eq!(view.by_value[0].validators, vec![0, 2]);
        assert_eq!(view.by_value[1].block, None);
    }

    #[test]
    fn a_snapshot_is_due_on_a_change_or_after_the_refresh() {
        let at = |ms| (Height(3), Round(0), "prevote", ms);
        assert!(due(None, at(0)));
        assert!(!due(Some(&at(0)), at(CONSENSUS_VIEW_REFRESH_MS - 1)));
        assert!(due(Some(&at(0)), at(CONSENSUS_VIEW_REFRESH_MS)));
        assert!(due(Some(&at(0)), (Height(3), Round(1), "prevote", 1)));
        assert!(due(Some(&at(0)), (Height(3), Round(0), "precommit", 1)));
    }

    #[test]
    fn a_board_holds_the_latest_snapshot() {
        let board = ConsensusBoard::new();
        assert!(board.latest().is_none());
        board.publish(ConsensusStateView {
            height: 7,
            ..ConsensusStateView::default()
        });
        assert_eq!(board.latest().unwrap().height, 7);
    }
}
