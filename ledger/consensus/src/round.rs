//! The round state machine: the upon-rules of Algorithm 1, as a pure
//! function `apply(state, event) -> (state, outputs)`.
//!
//! The driver decides *which* conditions hold (it owns the vote keeper, the
//! proposals and the block verdicts) and feeds them in as [`RoundEvent`]s;
//! this module checks each rule's guard on the round state (round, step,
//! "for the first time" flags, lock) and performs its body. An event whose
//! guard does not hold changes nothing and outputs nothing, so the driver
//! may offer events liberally.
//!
//! Each rule is tagged with the line of Algorithm 1 it implements.

use cairn_types::{Hash, Height, Round};
use serde::{Deserialize, Serialize};

/// The step of a round (the paper's `step_p`), plus the states before the
/// first round and after the decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Step {
    /// The height is not started.
    Unstarted,
    /// Waiting for the proposal.
    Propose,
    /// Prevoted, waiting for prevotes.
    Prevote,
    /// Precommitted, waiting for precommits.
    Precommit,
    /// Decided (the paper's `decision_p[h_p] != nil`).
    Decided,
}

/// A value (block hash) with the round it is attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RoundValue {
    /// The round (`lockedRound`, `validRound`, the decision round).
    pub round: Round,
    /// The block hash (`lockedValue`, `validValue`, the decision).
    pub value: Hash,
}

/// The state of Algorithm 1 for one height.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundState {
    /// `h_p`.
    pub height: Height,
    /// `round_p`.
    pub round: Round,
    /// `step_p`.
    pub step: Step,
    /// `lockedValue` / `lockedRound` (`None` is the paper's nil / -1).
    pub locked: Option<RoundValue>,
    /// `validValue` / `validRound`.
    pub valid: Option<RoundValue>,
    /// L34 ran in this round ("for the first time").
    pub prevote_timeout_scheduled: bool,
    /// L36 ran in this round ("for the first time").
    pub polka_current_handled: bool,
    /// L47 ran in this round ("for the first time").
    pub precommit_timeout_scheduled: bool,
    /// `decision_p[h_p]`.
    pub decision: Option<RoundValue>,
}

impl RoundState {
    /// The state at the start of a height (line 1 to 9).
    pub fn new(height: Height) -> RoundState {
        RoundState {
            height,
            round: Round::ZERO,
            step: Step::Unstarted,
            locked: None,
            valid: None,
            prevote_timeout_scheduled: false,
            polka_current_handled: false,
            precommit_timeout_scheduled: false,
            decision: None,
        }
    }
}

/// Which timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RoundTimeout {
    /// `timeoutPropose` (L21, L57).
    Propose,
    /// `timeoutPrevote` (L34, L61).
    Prevote,
    /// `timeoutPrecommit` (L47, L65).
    Precommit,
}

/// A condition of Algorithm 1 that the driver observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoundEvent {
    /// L11: `StartRound(round)`; `proposer` says whether this validator is
    /// `proposer(h_p, round)`.
    StartRound {
        /// The round to start.
        round: Round,
        /// Whether we propose in it.
        proposer: bool,
    },
    /// L18-L19: the answer of `getValue()`.
    BlockBuilt {
        /// The round it was built for.
        round: Round,
        /// The block.
        value: Hash,
    },
    /// L22: the proposal of the current round, with `vr = -1`.
    Proposal {
        /// Its round.
        round: Round,
        /// The proposed block.
        value: Hash,
        /// `valid(v)`.
        valid: bool,
    },
    /// L28: the proposal of the current round with `vr >= 0` and 2f+1
    /// prevotes for it in round `vr`.
    ProposalWithPolkaPrevious {
        /// Its round.
        round: Round,
        /// The proposed block.
        value: Hash,
        /// `vr`.
        valid_round: Round,
        /// `valid(v)`.
        valid: bool,
    },
    /// L34: 2f+1 prevotes for anything in the current round.
    PolkaAny {
        /// The round.
        round: Round,
    },
    /// L36: the proposal of the current round, valid, with 2f+1 prevotes
    /// for it in the current round.
    ProposalWithPolkaCurrent {
        /// The round.
        round: Round,
        /// The block.
        value: Hash,
    },
    /// L44: 2f+1 prevotes for nil in the current round.
    PolkaNil {
        /// The round.
        round: Round,
    },
    /// L47: 2f+1 precommits for anything in the current round.
    PrecommitAny {
        /// The round.
        round: Round,
    },
    /// L49: a valid block with 2f+1 precommits for it in some round.
    ProposalWithPrecommitQuorum {
        /// The round of the precommits.
        round: Round,
        /// The block.
        value: Hash,
    },
    /// L55: f+1 messages of a round above the current one.
    RoundSkip {
        /// That round.
        round: Round,
    },
    /// L57: `OnTimeoutPropose(h_p, round)`.
    TimeoutPropose {
        /// The round it was scheduled for.
        round: Round,
    },
    /// L61: `OnTimeoutPrevote(h_p, round)`.
    TimeoutPrevote {
        /// The round it was scheduled for.
        round: Round,
    },
    /// L65: `OnTimeoutPrecommit(h_p, round)`.
    TimeoutPrecommit {
        /// The round it was scheduled for.
        round: Round,
    },
}

/// What a rule asks the driver to do, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoundOutput {
    /// L18: `getValue()`: build a block for `round`.
    BuildBlock {
        /// The round.
        round: Round,
    },
    /// L19: sign and broadcast a proposal.
    Propose {
        /// The round.
        round: Round,
        /// The block.
        value: Hash,
        /// `validRound_p` (`None` is -1).
        valid_round: Option<Round>,
    },
    /// Sign and broadcast a prevote.
    Prevote {
        /// The round.
        round: Round,
        /// The block, or nil.
        value: Option<Hash>,
    },
    /// Sign and broadcast a precommit.
    Precommit {
        /// The round.
        round: Round,
        /// The block, or nil.
        value: Option<Hash>,
    },
    /// Schedule a timeout of the current height.
    ScheduleTimeout {
        /// Which.
        kind: RoundTimeout,
        /// For which round.
        round: Round,
    },
    /// `lockedValue`/`lockedRound` changed (persist before the precommit).
    Locked(RoundValue),
    /// `validValue`/`validRound` changed (persist before the next message).
    ValidUpdated(RoundValue),
    /// L51: decide.
    Decide(RoundValue),
    /// L56, L67: the driver must start this round.
    NewRound(Round),
}

/// Switches that change the rules. Only `fault-injection` builds can turn
/// one on: they exist to prove that each of the simulator's checkers can
/// fail (a mutation no checker catches is a missing checker). A node never
/// has them: the feature is enabled only by the simulator's tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundRules {
    /// Ignore locks: at L22 and L28 prevote as if unlocked, and at L36
    /// remember neither a lock nor a valid value (breaks safety).
    #[cfg(feature = "fault-injection")]
    pub ignore_lock: bool,
    /// L55 does nothing: f+1 messages of a higher round do not move this
    /// validator there (it catches up by timeouts only).
    #[cfg(feature = "fault-injection")]
    pub no_round_skip: bool,
    /// L65 does nothing: a precommit timeout never starts the next round
    /// (breaks liveness).
    #[cfg(feature = "fault-injection")]
    pub no_precommit_timeout: bool,
    /// Replay forgets the lock and the valid value the WAL holds (amnesia
    /// of locks across a restart; breaks safety).
    #[cfg(feature = "fault-injection")]
    pub forget_lock_on_replay: bool,
    /// Replay forgets this validator's own votes, so it may sign a second,
    /// different vote for a slot after a restart (breaks no-double-sign).
    #[cfg(feature = "fault-injection")]
    pub forget_own_votes_on_replay: bool,
    /// Replay leaves out the prevotes of the polka behind the valid value
    /// (the WAL's `Polka` entry), as the WAL did before it kept them: a
    /// height whose every holder of the polka restarted may never decide
    /// (breaks liveness).
    #[cfg(feature = "fault-injection")]
    pub forget_polka_on_replay: bool,
}

/// `RoundRules::$name()`: the switch in `fault-injection` builds, `false`
/// in every other build.
macro_rules! switch {
    ($name:ident) => {
        pub(crate) fn $name(&self) -> bool {
            #[cfg(feature = "fault-injection")]
            {
                self.$name
            }
            #[cfg(not(feature = "fault-injection"))]
            {
                false
            }
        }
    };
}

impl RoundRules {
    switch!(ignore_lock);
    switch!(no_round_skip);
    switch!(no_precommit_timeout);
    switch!(forget_lock_on_replay);
    switch!(forget_own_votes_on_replay);
    switch!(forget_polka_on_replay);
}

/// Applies one event; returns the new state and the outputs, in order.
pub fn apply(
    state: &RoundState,
    event: &RoundEvent,
    rules: &RoundRules,
) -> (RoundState, Vec<RoundOutput>) {
    let mut next = state.clone();
    let mut outputs = Vec::new();
    if state.decision.is_some() {
        // After the decision the height is over: nothing more to do.
        return (next, outputs);
    }
    let current = state.round;
    match *event {
        // L11-L21: StartRound(round).
        RoundEvent::StartRound { round, proposer } => {
            let forward = round > current || (state.step == Step::Unstarted && round == current);
            if !forward {
                return (next, outputs);
            }
            next.round = round;
            next.step = Step::Propose;
            next.prevote_timeout_scheduled = false;
            next.polka_current_handled = false;
            next.precommit_timeout_scheduled = false;
            if proposer {
                match state.valid {
                    // L14-L15: re-propose validValue with validRound.
                    Some(valid) => outputs.push(RoundOutput::Propose {
                        round,
                        value: valid.value,
                        valid_round: Some(valid.round),
                    }),
                    // L18: proposal <- getValue().
                    None => outputs.push(RoundOutput::BuildBlock { round }),
                }
            }
            // L21: schedule OnTimeoutPropose. The proposer schedules it too,
            // so a block that is never built cannot stall it in `propose`.
            outputs.push(RoundOutput::ScheduleTimeout {
                kind: RoundTimeout::Propose,
                round,
            });
        }
        // L18-L19: getValue() answered; broadcast the proposal.
        RoundEvent::BlockBuilt { round, value } => {
            if round == current && state.step == Step::Propose {
                outputs.push(RoundOutput::Propose {
                    round,
                    value,
                    valid_round: None,
                });
            }
        }
        // L22-L27.
        RoundEvent::Proposal {
            round,
            value,
            valid,
        } => {
            if round == current && state.step == Step::Propose {
                // L23: valid(v) and (lockedRound = -1 or lockedValue = v).
                let free =
                    rules.ignore_lock() || state.locked.is_none_or(|locked| locked.value == value);
                let vote = if valid && free { Some(value) } else { None };
                outputs.push(RoundOutput::Prevote { round, value: vote });
                next.step = Step::Prevote; // L27
            }
        }
        // L28-L33.
        RoundEvent::ProposalWithPolkaPrevious {
            round,
            value,
            valid_round,
            valid,
        } => {
            if round == current && state.step == Step::Propose && valid_round < round {
                // L29: valid(v) and (lockedRound <= vr or lockedValue = v).
                let free = rules.ignore_lock()
                    || state
                        .locked
                        .is_none_or(|locked| locked.round <= valid_round || locked.value == value);
                let vote = if valid && free { Some(value) } else { None };
                outputs.push(RoundOutput::Prevote { round, value: vote });
                next.step = Step::Prevote; // L33
            }
        }
        // L34-L35.
        RoundEvent::PolkaAny { round } => {
            if round == current && state.step == Step::Prevote && !state.prevote_timeout_scheduled {
                next.prevote_timeout_scheduled = true;
                outputs.push(RoundOutput::ScheduleTimeout {
                    kind: RoundTimeout::Prevote,
                    round,
                });
            }
        }
        // L36-L43.
        RoundEvent::ProposalWithPolkaCurrent { round, value } => {
            let step_at_least_prevote =
                state.step == Step::Prevote || state.step == Step::Precommit;
            if round == current && step_at_least_prevote && !state.polka_current_handled {
                next.polka_current_handled = true;
                let round_value = RoundValue { round, value };
                if rules.ignore_lock() {
                    if state.step == Step::Prevote {
                        next.step = Step::Precommit;
                        outputs.push(RoundOutput::Precommit {
                            round,
                            value: Some(value),
                        });
                    }
                    return (next, outputs);
                }
                if state.step == Step::Prevote {
                    // L38-L41: lock, remember as valid, precommit.
                    next.locked = Some(round_value);
                    next.valid = Some(round_value);
                    next.step = Step::Precommit;
                    outputs.push(RoundOutput::Locked(round_value));
                    outputs.push(RoundOutput::ValidUpdated(round_value));
                    outputs.push(RoundOutput::Precommit {
                        round,
                        value: Some(value),
                    });
                } else {
                    // L42-L43.
                    next.valid = Some(round_value);
                    outputs.push(RoundOutput::ValidUpdated(round_value));
                }
            }
        }
        // L44-L46.
        RoundEvent::PolkaNil { round } => {
            if round == current && state.step == Step::Prevote {
                outputs.push(RoundOutput::Precommit { round, value: None });
                next.step = Step::Precommit;
            }
        }
        // L47-L48.
        RoundEvent::PrecommitAny { round } => {
            if round == current && !state.precommit_timeout_scheduled {
                next.precommit_timeout_scheduled = true;
                outputs.push(RoundOutput::ScheduleTimeout {
                    kind: RoundTimeout::Precommit,
                    round,
                });
            }
        }
        // L49-L54: decide, whatever the current round.
        RoundEvent::ProposalWithPrecommitQuorum { round, value } => {
            let decision = RoundValue { round, value };
            next.decision = Some(decision);
            next.step = Step::Decided;
            outputs.push(RoundOutput::Decide(decision));
        }
        // L55-L56.
        RoundEvent::RoundSkip { round } => {
            if round > current && !rules.no_round_skip() {
                outputs.push(RoundOutput::NewRound(round));
            }
        }
        // L57-L60.
        RoundEvent::TimeoutPropose { round } => {
            if round == current && state.step == Step::Propose {
                outputs.push(RoundOutput::Prevote { round, value: None });
                next.step = Step::Prevote;
            }
        }
        // L61-L64.
        RoundEvent::TimeoutPrevote { round } => {
            if round == current && state.step == Step::Prevote {
                outputs.push(RoundOutput::Precommit { round, value: None });
                next.step = Step::Precommit;
            }
        }
        // L65-L67.
        RoundEvent::TimeoutPrecommit { round } => {
            if round == current && !rules.no_precommit_timeout() {
                if let Ok(following) = round.next() {
                    outputs.push(RoundOutput::NewRound(following));
                }
            }
        }
    }
    (next, outputs)
}

#[cfg(test)]
mod tests {
    //! Table-driven tests: one or more rows per upon-rule, each with a
    //! description, a starting state, an event, the expected outputs and
    //! the expected new state.

    use super::*;
    use cairn_types::sha256;

    fn value(name: &str) -> Hash {
        sha256(name.as_bytes())
    }

    fn at(round: u32, step: Step) -> RoundState {
        RoundState {
            round: Round(round),
            step,
            ..RoundState::new(Height(1))
        }
    }

    fn locked(mut state: RoundState, round: u32, name: &str) -> RoundState {
        let round_value = RoundValue {
            round: Round(round),
            value: value(name),
        };
        state.locked = Some(round_value);
        state.valid = Some(round_value);
        state
    }

    fn rv(round: u32, name: &str) -> RoundValue {
        RoundValue {
            round: Round(round),
            value: value(name),
        }
    }

    struct Row {
        description: &'static str,
        state: RoundState,
        event: RoundEvent,
        outputs: Vec<RoundOutput>,
        expected: RoundState,
    }

    fn run(rows: Vec<Row>) {
        for row in rows {
            let (state, outputs) = apply(&row.state, &row.event, &RoundRules::default());
            assert_eq!(outputs, row.outputs, "outputs: {}", row.description);
            assert_eq!(state, row.expected, "state: {}", row.description);
        }
    }

    fn with<F: FnOnce(&mut RoundState)>(mut state: RoundState, change: F) -> RoundState {
        change(&mut state);
        state
    }

    #[test]
    fn l11_start_round() {
        let propose_timeout = |round| RoundOutput::ScheduleTimeout {
            kind: RoundTimeout::Propose,
            round: Round(round),
        };
        run(vec![
            Row {
                description: "L11/L18: the proposer without a valid value asks for a block",
                state: RoundState::new(Height(1)),
                event: RoundEvent::StartRound {
                    round: Round(0),
                    proposer: true,
                },
                outputs: vec![
                    RoundOutput::BuildBlock { round: Round(0) },
                    propose_timeout(0),
                ],
                expected: at(0, Step::Propose),
            },
            Row {
                description: "L11/L21: a non-proposer schedules the propose timeout",
                state: RoundState::new(Height(1)),
                event: RoundEvent::StartRound {
                    round: Round(0),
                    proposer: false,
                },
                outputs: vec![propose_timeout(0)],
                expected: at(0, Step::Propose),
            },
            Row {
                description: "L14-L16: the proposer re-proposes its valid value",
                state: locked(at(1, Step::Precommit), 1, "a"),
                event: RoundEvent::StartRound {
                    round: Round(2),
                    proposer: true,
                },
                outputs: vec![
                    RoundOutput::Propose {
                        round: Round(2),
                        value: value("a"),
                        valid_round: Some(Round(1)),
                    },
                    propose_timeout(2),
                ],
                expected: locked(at(2, Step::Propose), 1, "a"),
            },
            Row {
                description: "L11: never start a round that is not ahead",
                state: at(3, Step::Prevote),
                event: RoundEvent::StartRound {
                    round: Round(2),
                    proposer: true,
                },
                outputs: vec![],
                expected: at(3, Step::Prevote),
            },
            Row {
                description: "L11: starting a round resets the first-time flags",
                state: with(at(0, Step::Precommit), |s| {
                    s.prevote_timeout_scheduled = true;
                    s.precommit_timeout_scheduled = true;
                    s.polka_current_handled = true;
                }),
                event: RoundEvent::StartRound {
                    round: Round(1),
                    proposer: false,
                },
                outputs: vec![propose_timeout(1)],
                expected: at(1, Step::Propose),
            },
        ]);
    }

    #[test]
    fn l18_block_built() {
        run(vec![
            Row {
                description: "L19: the built block is proposed with vr = -1",
                state: at(0, Step::Propose),
                event: RoundEvent::BlockBuilt {
                    round: Round(0),
                    value: value("b"),
                },
                outputs: vec![RoundOutput::Propose {
                    round: Round(0),
                    value: value("b"),
                    valid_round: None,
                }],
                expected: at(0, Step::Propose),
            },
            Row {
                description: "L19: a block built for a past round is not proposed",
                state: at(1, Step::Propose),
                event: RoundEvent::BlockBuilt {
                    round: Round(0),
                    value: value("b"),
                },
                outputs: vec![],
                expected: at(1, Step::Propose),
            },
        ]);
    }

    #[test]
    fn l22_proposal() {
        let event = |name, valid| RoundEvent::Proposal {
            round: Round(1),
            value: value(name),
            valid,
        };
        let prevote = |v: Option<&str>| RoundOutput::Prevote {
            round: Round(1),
            value: v.map(value),
        };
        run(vec![
            Row {
                description: "L24: unlocked, valid: prevote the value",
                state: at(1, Step::Propose),
                event: event("a", true),
                outputs: vec![prevote(Some("a"))],
                expected: at(1, Step::Prevote),
            },
            Row {
                description: "L26: invalid: prevote nil",
                state: at(1, Step::Propose),
                event: event("a", false),
                outputs: vec![prevote(None)],
                expected: at(1, Step::Prevote),
            },
            Row {
                description: "L24: locked on the same value: prevote it",
                state: locked(at(1, Step::Propose), 0, "a"),
                event: event("a", true),
                outputs: vec![prevote(Some("a"))],
                expected: locked(at(1, Step::Prevote), 0, "a"),
            },
            Row {
                description: "L26: locked on another value: prevote nil",
                state: locked(at(1, Step::Propose), 0, "b"),
                event: event("a", true),
                outputs: vec![prevote(None)],
                expected: locked(at(1, Step::Prevote), 0, "b"),
            },
            Row {
                description: "L22: only in step propose",
                state: at(1, Step::Prevote),
                event: event("a", true),
                outputs: vec![],
                expected: at(1, Step::Prevote),
            },
            Row {
                description: "L22: only for the current round",
                state: at(2, Step::Propose),
                event: event("a", true),
                outputs: vec![],
                expected: at(2, Step::Propose),
            },
        ]);
    }

    #[test]
    fn l28_proposal_with_polka_from_a_previous_round() {
        let event = |name, vr, valid| RoundEvent::ProposalWithPolkaPrevious {
            round: Round(3),
            value: value(name),
            valid_round: Round(vr),
            valid,
        };
        let prevote = |v: Option<&str>| RoundOutput::Prevote {
            round: Round(3),
            value: v.map(value),
        };
        run(vec![
            Row {
                description: "L30: locked in a round <= vr on another value: prevote the value",
                state: locked(at(3, Step::Propose), 1, "b"),
                event: event("a", 2, true),
                outputs: vec![prevote(Some("a"))],
                expected: locked(at(3, Step::Prevote), 1, "b"),
            },
            Row {
                description: "L30: locked on the same value in a later round: prevote it",
                state: locked(at(3, Step::Propose), 2, "a"),
                event: event("a", 1, true),
                outputs: vec![prevote(Some("a"))],
                expected: locked(at(3, Step::Prevote), 2, "a"),
            },
            Row {
                description: "L32: locked on another value after vr: prevote nil",
                state: locked(at(3, Step::Propose), 2, "b"),
                event: event("a", 1, true),
                outputs: vec![prevote(None)],
                expected: locked(at(3, Step::Prevote), 2, "b"),
            },
            Row {
                description: "L32: invalid value: prevote nil",
                state: at(3, Step::Propose),
                event: event("a", 1, false),
                outputs: vec![prevote(None)],
                expected: at(3, Step::Prevote),
            },
            Row {
                description: "L28: vr must be below the current round",
                state: at(3, Step::Propose),
                event: event("a", 3, true),
                outputs: vec![],
                expected: at(3, Step::Propose),
            },
        ]);
    }

    #[test]
    fn l34_polka_any() {
        let schedule = RoundOutput::ScheduleTimeout {
            kind: RoundTimeout::Prevote,
            round: Round(0),
        };
        run(vec![
            Row {
                description: "L35: first time in step prevote: schedule the prevote timeout",
                state: at(0, Step::Prevote),
                event: RoundEvent::PolkaAny { round: Round(0) },
                outputs: vec![schedule],
                expected: with(at(0, Step::Prevote), |s| s.prevote_timeout_scheduled = true),
            },
            Row {
                description: "L34: only the first time",
                state: with(at(0, Step::Prevote), |s| s.prevote_timeout_scheduled = true),
                event: RoundEvent::PolkaAny { round: Round(0) },
                outputs: vec![],
                expected: with(at(0, Step::Prevote), |s| s.prevote_timeout_scheduled = true),
            },
            Row {
                description: "L34: not in step propose",
                state: at(0, Step::Propose),
                event: RoundEvent::PolkaAny { round: Round(0) },
                outputs: vec![],
                expected: at(0, Step::Propose),
            },
        ]);
    }

    #[test]
    fn l36_proposal_with_polka_in_the_current_round() {
        let event = RoundEvent::ProposalWithPolkaCurrent {
            round: Round(2),
            value: value("a"),
        };
        run(vec![
            Row {
                description: "L37-L41: in step prevote: lock, set valid, precommit",
                state: at(2, Step::Prevote),
                event,
                outputs: vec![
                    RoundOutput::Locked(rv(2, "a")),
                    RoundOutput::ValidUpdated(rv(2, "a")),
                    RoundOutput::Precommit {
                        round: Round(2),
                        value: Some(value("a")),
                    },
                ],
                expected: with(locked(at(2, Step::Precommit), 2, "a"), |s| {
                    s.polka_current_handled = true
                }),
            },
            Row {
                description: "L42-L43: in step precommit: only the valid value changes",
                state: locked(at(2, Step::Precommit), 0, "b"),
                event,
                outputs: vec![RoundOutput::ValidUpdated(rv(2, "a"))],
                expected: with(locked(at(2, Step::Precommit), 0, "b"), |s| {
                    s.valid = Some(rv(2, "a"));
                    s.polka_current_handled = true;
                }),
            },
            Row {
                description: "L36: a lock on another value is replaced by the newer polka",
                state: locked(at(2, Step::Prevote), 1, "b"),
                event,
                outputs: vec![
                    RoundOutput::Locked(rv(2, "a")),
                    RoundOutput::ValidUpdated(rv(2, "a")),
                    RoundOutput::Precommit {
                        round: Round(2),
                        value: Some(value("a")),
                    },
                ],
                expected: with(locked(at(2, Step::Precommit), 2, "a"), |s| {
                    s.polka_current_handled = true
                }),
            },
            Row {
                description: "L36: only the first time",
                state: with(at(2, Step::Precommit), |s| s.polka_current_handled = true),
                event,
                outputs: vec![],
                expected: with(at(2, Step::Precommit), |s| s.polka_current_handled = true),
            },
            Row {
                description: "L36: not in step propose",
                state: at(2, Step::Propose),
                event,
                outputs: vec![],
                expected: at(2, Step::Propose),
            },
        ]);
    }

    #[test]
    fn l44_polka_nil() {
        run(vec![
            Row {
                description: "L45-L46: in step prevote: precommit nil",
                state: at(1, Step::Prevote),
                event: RoundEvent::PolkaNil { round: Round(1) },
                outputs: vec![RoundOutput::Precommit {
                    round: Round(1),
                    value: None,
                }],
                expected: at(1, Step::Precommit),
            },
            Row {
                description: "L44: not after precommitting",
                state: at(1, Step::Precommit),
                event: RoundEvent::PolkaNil { round: Round(1) },
                outputs: vec![],
                expected: at(1, Step::Precommit),
            },
        ]);
    }

    #[test]
    fn l47_precommit_any() {
        let schedule = RoundOutput::ScheduleTimeout {
            kind: RoundTimeout::Precommit,
            round: Round(0),
        };
        run(vec![
            Row {
                description: "L48: first time, any step: schedule the precommit timeout",
                state: at(0, Step::Propose),
                event: RoundEvent::PrecommitAny { round: Round(0) },
                outputs: vec![schedule],
                expected: with(at(0, Step::Propose), |s| {
                    s.precommit_timeout_scheduled = true
                }),
            },
            Row {
                description: "L47: only the first time",
                state: with(at(0, Step::Precommit), |s| {
                    s.precommit_timeout_scheduled = true
                }),
                event: RoundEvent::PrecommitAny { round: Round(0) },
                outputs: vec![],
                expected: with(at(0, Step::Precommit), |s| {
                    s.precommit_timeout_scheduled = true
                }),
            },
        ]);
    }

    #[test]
    fn l49_decide() {
        run(vec![
            Row {
                description: "L49-L54: decide, even for a past round",
                state: at(3, Step::Prevote),
                event: RoundEvent::ProposalWithPrecommitQuorum {
                    round: Round(1),
                    value: value("a"),
                },
                outputs: vec![RoundOutput::Decide(rv(1, "a"))],
                expected: with(at(3, Step::Decided), |s| s.decision = Some(rv(1, "a"))),
            },
            Row {
                description: "L49: only once (decision_p[h_p] = nil)",
                state: with(at(3, Step::Decided), |s| s.decision = Some(rv(1, "a"))),
                event: RoundEvent::ProposalWithPrecommitQuorum {
                    round: Round(3),
                    value: value("b"),
                },
                outputs: vec![],
                expected: with(at(3, Step::Decided), |s| s.decision = Some(rv(1, "a"))),
            },
        ]);
    }

    #[test]
    fn l55_round_skip() {
        run(vec![
            Row {
                description: "L56: f+1 in a higher round: start it",
                state: at(1, Step::Prevote),
                event: RoundEvent::RoundSkip { round: Round(4) },
                outputs: vec![RoundOutput::NewRound(Round(4))],
                expected: at(1, Step::Prevote),
            },
            Row {
                description: "L55: not for the current round",
                state: at(4, Step::Prevote),
                event: RoundEvent::RoundSkip { round: Round(4) },
                outputs: vec![],
                expected: at(4, Step::Prevote),
            },
        ]);
    }

    #[test]
    fn l57_l61_l65_timeouts() {
        run(vec![
            Row {
                description: "L57-L60: propose timeout in step propose: prevote nil",
                state: at(2, Step::Propose),
                event: RoundEvent::TimeoutPropose { round: Round(2) },
                outputs: vec![RoundOutput::Prevote {
                    round: Round(2),
                    value: None,
                }],
                expected: at(2, Step::Prevote),
            },
            Row {
                description: "L57: a stale propose timeout does nothing",
                state: at(2, Step::Propose),
                event: RoundEvent::TimeoutPropose { round: Round(1) },
                outputs: vec![],
                expected: at(2, Step::Propose),
            },
            Row {
                description: "L57: the propose timeout after prevoting does nothing",
                state: at(2, Step::Prevote),
                event: RoundEvent::TimeoutPropose { round: Round(2) },
                outputs: vec![],
                expected: at(2, Step::Prevote),
            },
            Row {
                description: "L61-L64: prevote timeout in step prevote: precommit nil",
                state: at(2, Step::Prevote),
                event: RoundEvent::TimeoutPrevote { round: Round(2) },
                outputs: vec![RoundOutput::Precommit {
                    round: Round(2),
                    value: None,
                }],
                expected: at(2, Step::Precommit),
            },
            Row {
                description: "L61: the prevote timeout after precommitting does nothing",
                state: at(2, Step::Precommit),
                event: RoundEvent::TimeoutPrevote { round: Round(2) },
                outputs: vec![],
                expected: at(2, Step::Precommit),
            },
            Row {
                description: "L65-L67: precommit timeout: next round",
                state: locked(at(2, Step::Precommit), 2, "a"),
                event: RoundEvent::TimeoutPrecommit { round: Round(2) },
                outputs: vec![RoundOutput::NewRound(Round(3))],
                expected: locked(at(2, Step::Precommit), 2, "a"),
            },
            Row {
                description: "L65: a stale precommit timeout does nothing",
                state: at(3, Step::Propose),
                event: RoundEvent::TimeoutPrecommit { round: Round(2) },
                outputs: vec![],
                expected: at(3, Step::Propose),
            },
        ]);
    }

    #[test]
    fn nothing_happens_after_the_decision() {
        let decided = with(at(0, Step::Decided), |s| s.decision = Some(rv(0, "a")));
        for event in [
            RoundEvent::StartRound {
                round: Round(1),
                proposer: true,
            },
            RoundEvent::TimeoutPrecommit { round: Round(0) },
            RoundEvent::PolkaNil { round: Round(0) },
        ] {
            let (state, outputs) = apply(&decided, &event, &RoundRules::default());
            assert!(outputs.is_empty());
            assert_eq!(state, decided);
        }
    }
}
