//! The block-sync core: the one catch-up logic of the node, as a plain
//! state machine with no tokio, no clock and no network ("sans IO").
//! [`crate::block_sync`] drives it over libp2p and tokio in `cairnd`; the
//! simulator (`cairn-tests`) drives the very same core over its simulated
//! network and clock, so every simulated seed exercises catch-up.
//!
//! Time comes in as a parameter: `now`, a [`Duration`] since an origin the
//! driver chooses (the process start, or simulated time zero). Peers are
//! any ordered, copyable names (`PeerId` in the node, a node index in the
//! simulator). The inputs are: a pass is wanted ([`SyncCore::request_pass`]),
//! the peers connected now ([`SyncCore::begin_pass`]), an answer or a
//! failure to a request ([`SyncCore::on_answer`]), the outcome of a commit
//! ([`SyncCore::committed`]) and the passing of time ([`SyncCore::poll`]:
//! a request whose deadline passed is a failure). The outputs
//! ([`SyncAction`]) are the requests to send (peer, [`SyncRequest`],
//! deadline), the ranges ready to commit (strictly in order), the peers
//! backed off, the moving of the tip to tell consensus, and the
//! `catching_up` / `behind` figures.
//!
//! One pass: the tips of up to [`SYNC_STATUS_PEERS_MAX`] peers not backed
//! off, asked at once (deadline [`SYNC_STATUS_TIMEOUT`]); a peer that fails
//! is backed off. The status phase ends when every peer answered or failed,
//! or [`SYNC_STATUS_GRACE`] after the first answer of a peer ahead: a
//! silent peer (or one lost answer) does not hold the catch-up for the
//! whole status deadline, and the peers still silent then are neither used
//! nor blamed in this pass (the simulator found it: a node one block behind
//! waited 2 s for a silent peer's status, long enough for the only honest
//! peers holding that block to lose their data). Then rounds, while some peer claims a tip above this
//! node's, holds the next height and is not backed off: up to
//! [`SYNC_PARALLEL_REQUESTS_MAX`] consecutive ranges of [`SYNC_RANGE_BLOCKS`]
//! blocks, asked at once (deadline [`SYNC_REQUEST_TIMEOUT`]), each from a
//! peer whose claimed tip reaches the range and whose lowest held height
//! holds its first block, round robin over those peers (highest tip
//! first). Answers are taken in range order: a range is committed only
//! right after the one before it, so an answer that arrives early waits
//! for the earlier range; a range after a failed, short or partly bad one
//! is dropped (asked again in the next round). The next round starts when
//! every range of this one is answered or past its deadline. A pass ends
//! when no peer is left to ask; the next one starts at least
//! [`SYNC_RETRY_INTERVAL`] later, and only if one was asked for.
//!
//! A peer's claimed tip is only a hint: blocks count once they verify
//! against a certificate of the validator set (the driver commits them
//! with [`crate::block_sync::commit_synced`]). A peer that does not answer
//! by the deadline, answers slower than [`SYNC_SLOW_ANSWER`], answers with
//! something else than what was asked, or gives no usable block is backed
//! off: left out, and its claimed tip with it, for
//! [`SYNC_PEER_BACKOFF_MIN`], doubled at each further failure up to
//! [`SYNC_PEER_BACKOFF`]; a range it serves that commits ends the streak,
//! and so does a backoff period's worth of time without failure. One peer
//! that claims `u64::MAX` and never answers costs one timeout per backoff
//! period (soon [`SYNC_PEER_BACKOFF`]), while an honest peer whose answer
//! was lost once (a flapping link, a short partition) is asked again
//! within seconds: a node whose every peer failed once is not locked out
//! of sync for a minute (the simulator found that: with a fixed backoff of
//! [`SYNC_PEER_BACKOFF`], a node that lost its peers' answers during a
//! fault stayed behind long after the heal). A peer that answers "not held" (it pruned the range since its
//! status) is asked only for heights from its new lowest, without blame.
//! The backoff table holds at most [`SYNC_BACKOFF_PEERS_MAX`] peers.
//! `catching_up` is reported only after a round committed verified blocks
//! and the node is still more than [`CATCHING_UP_BLOCKS_MIN`] behind the
//! best claimed tip.

use std::{collections::BTreeMap, fmt::Debug, time::Duration};

pub use cairn_p2p::{SyncBlock, SyncRequest, SyncResponse, SyncStatus};
use cairn_types::Height;

/// Peers asked for their tip in one pass (at once).
pub const SYNC_STATUS_PEERS_MAX: usize = 8;
/// Block ranges fetched at once, each from another peer when there are
/// enough.
pub const SYNC_PARALLEL_REQUESTS_MAX: usize = 4;
/// Blocks asked for in one request.
pub const SYNC_RANGE_BLOCKS: u32 = cairn_p2p::limits::SYNC_RANGE_BLOCKS_MAX;
/// Deadline of a status request.
pub const SYNC_STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the status phase waits for the other peers' answers once a
/// peer ahead has answered (honest peers answer within milliseconds; a
/// fast peer claiming a false tip still meets the honest answers that come
/// within this).
pub const SYNC_STATUS_GRACE: Duration = Duration::from_millis(250);
/// Deadline of a block request.
pub const SYNC_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// An answer slower than this counts as a failure (a peer that always
/// answers just before the deadline is not waited on).
pub const SYNC_SLOW_ANSWER: Duration = Duration::from_secs(5);
/// How long a peer that failed a request is left out of sync at first
/// (doubled at each further failure in a row).
pub const SYNC_PEER_BACKOFF_MIN: Duration = Duration::from_secs(5);
/// The longest a peer that keeps failing is left out of sync.
pub const SYNC_PEER_BACKOFF: Duration = Duration::from_secs(60);
/// Least time between two passes.
pub const SYNC_RETRY_INTERVAL: Duration = Duration::from_millis(1_000);
/// Blocks behind the best proven tip above which the node reports
/// `catching_up` (and refuses new transactions).
pub const CATCHING_UP_BLOCKS_MIN: u64 = 16;
/// Most peers remembered in the backoff list.
pub const SYNC_BACKOFF_PEERS_MAX: usize = 1_024;
/// Interval of the "syncing" progress log line.
const SYNC_LOG_INTERVAL: Duration = Duration::from_secs(2);

/// Names one request the core asked the driver to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SyncRequestId(pub u64);

/// What the core wants its driver to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncAction<P> {
    /// Send `request` to `peer`; hand its answer, or `None` for no answer,
    /// to [`SyncCore::on_answer`] with `id`. An answer after `deadline`
    /// counts as none (the core treats the request as failed at its
    /// deadline in [`SyncCore::poll`]).
    Send {
        /// The peer asked.
        peer: P,
        /// Correlates the answer.
        id: SyncRequestId,
        /// What is asked.
        request: SyncRequest,
        /// Time (since the driver's origin) by which the answer must come.
        deadline: Duration,
    },
    /// Verify and commit these blocks ([`crate::block_sync::commit_synced`]),
    /// whose first height is the one after the tip, then report with
    /// [`SyncCore::committed`]. Nothing else happens until then.
    Commit {
        /// The request that fetched them.
        id: SyncRequestId,
        /// Who sent them.
        peer: P,
        /// The first height.
        from: Height,
        /// The blocks, as the peer sent them.
        blocks: Vec<SyncBlock>,
    },
    /// Sync moved the tip: tell consensus (`HostEvent::Synced`). At the end
    /// of a pass the message must arrive (`end_of_pass`); within a pass it
    /// may be dropped when consensus is busy (the end of the pass repeats it).
    Synced {
        /// Sent at the end of a pass.
        end_of_pass: bool,
    },
    /// The node's sync figures changed.
    Progress {
        /// Far behind a tip peers proved by serving blocks.
        catching_up: bool,
        /// Blocks behind the best claimed tip (0 when not syncing).
        behind: u64,
    },
    /// A peer is left out of sync until `until`.
    BackedOff {
        /// The peer.
        peer: P,
        /// Until when (since the driver's origin).
        until: Duration,
        /// Why.
        why: &'static str,
    },
}

/// What the core did, counted since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncCounters {
    /// Passes begun.
    pub passes: u64,
    /// Status requests sent.
    pub status_requests: u64,
    /// Block range requests sent.
    pub block_requests: u64,
    /// Ranges of which at least one block was committed.
    pub ranges_committed: u64,
    /// Blocks committed through sync.
    pub blocks_committed: u64,
    /// Peers backed off.
    pub backoffs: u64,
    /// "Not held" answers (a range moved to another peer without blame).
    pub not_held: u64,
}

/// A peer's claimed tip, and the lowest height it says it holds.
#[derive(Clone, Copy, Debug)]
struct PeerTip<P> {
    peer: P,
    height: Height,
    /// Below it the peer pruned its blocks: it is not asked for them.
    lowest: Height,
}

/// A peer's backoff: left out until `until`; `streak` failures in a row
/// before this one.
#[derive(Clone, Copy, Debug)]
struct Backoff {
    until: Duration,
    streak: u32,
}

/// One pass under way.
#[derive(Debug)]
struct Pass {
    /// The tip when the pass began.
    first: Height,
    started: Duration,
    last_log: Duration,
    /// The pass got past the status phase with a tip ahead.
    fetched: bool,
}

/// A status request of the status phase and its outcome.
#[derive(Debug)]
struct StatusAsk<P> {
    id: SyncRequestId,
    peer: P,
    deadline: Duration,
    /// `Some(None)`: failed.
    answer: Option<Option<(Height, Height)>>,
    /// When the answer came.
    answered_at: Duration,
}

/// What came back for one range.
#[derive(Debug)]
enum RangeAnswer {
    Blocks {
        blocks: Vec<SyncBlock>,
        took: Duration,
    },
    NotHeld {
        lowest: Height,
    },
    Unusable,
    Failed,
}

#[derive(Debug)]
struct RangeAsk<P> {
    id: SyncRequestId,
    peer: P,
    from: Height,
    sent: Duration,
    deadline: Duration,
    answer: Option<RangeAnswer>,
}

/// One round of parallel range requests.
#[derive(Debug)]
struct Round<P> {
    /// The tip when the round began.
    before: Height,
    /// The best claimed tip when it began.
    target: Height,
    ranges: Vec<RangeAsk<P>>,
    /// The next range to take (all before it are done).
    next: usize,
    /// No range before `next` failed or came short.
    in_order: bool,
    /// Blocks handed over in a [`SyncAction::Commit`] not yet reported.
    committing: Option<usize>,
}

#[derive(Debug)]
enum Phase<P> {
    Idle,
    Status {
        pass: Pass,
        asked: Vec<StatusAsk<P>>,
    },
    Fetching {
        pass: Pass,
        tips: Vec<PeerTip<P>>,
        round: Round<P>,
    },
}

/// The block-sync state machine (see the module doc).
#[derive(Debug)]
pub struct SyncCore<P> {
    phase: Phase<P>,
    /// Peers left out, and their failure streaks.
    backoff: BTreeMap<P, Backoff>,
    /// A pass was asked for and has not begun.
    pass_requested: bool,
    /// No pass begins before this time.
    next_pass_at: Duration,
    next_id: u64,
    /// The tip as last reported by the driver.
    tip: Height,
    /// When the node last warned that only pruned peers are ahead.
    pruned_warning: Option<Duration>,
    actions: Vec<SyncAction<P>>,
    counters: SyncCounters,
}

/// When the first answer of a peer that can serve the next block (its tip
/// above `tip`, its lowest held height at most the next one) came, if any.
/// A peer ahead that pruned the next block does not count: a fast one
/// (or a Byzantine one claiming such a tip) would otherwise end every
/// status phase before a slower archive peer's answer.
fn first_ahead_answer<P>(asked: &[StatusAsk<P>], tip: Height) -> Option<Duration> {
    let next = Height(tip.0.saturating_add(1));
    asked
        .iter()
        .filter(|ask| {
            matches!(ask.answer, Some(Some((height, lowest))) if height > tip && lowest <= next)
        })
        .map(|ask| ask.answered_at)
        .min()
}

impl<P: Copy + Ord + Debug> Default for SyncCore<P> {
    fn default() -> Self {
        SyncCore::new()
    }
}

impl<P: Copy + Ord + Debug> SyncCore<P> {
    /// A core with a first pass asked for (the pass at start-up).
    pub fn new() -> SyncCore<P> {
        SyncCore {
            phase: Phase::Idle,
            backoff: BTreeMap::new(),
            pass_requested: true,
            next_pass_at: Duration::ZERO,
            next_id: 0,
            tip: Height::GENESIS,
            pruned_warning: None,
            actions: Vec::new(),
            counters: SyncCounters::default(),
        }
    }

    /// What the core did so far.
    pub fn counters(&self) -> SyncCounters {
        self.counters
    }

    /// Asks for a pass soon; requests made while one is pending coalesce.
    pub fn request_pass(&mut self) {
        self.pass_requested = true;
    }

    /// Whether a pass was asked for and has not begun.
    pub fn pass_pending(&self) -> bool {
        self.pass_requested
    }

    /// Whether the driver should begin a pass now (with the peers it is
    /// connected to, [`SyncCore::begin_pass`]).
    pub fn wants_pass(&self, now: Duration) -> bool {
        matches!(self.phase, Phase::Idle) && self.pass_requested && now >= self.next_pass_at
    }

    /// When the core next needs [`SyncCore::poll`] without any input: the
    /// earliest deadline of a request in flight, or when a pending pass
    /// may begin. `None`: only an input can move it.
    pub fn next_wake(&self) -> Option<Duration> {
        match &self.phase {
            Phase::Idle => self.pass_requested.then_some(self.next_pass_at),
            Phase::Status { asked, .. } => {
                let deadline = asked
                    .iter()
                    .filter(|ask| ask.answer.is_none())
                    .map(|ask| ask.deadline)
                    .min();
                let grace_over = first_ahead_answer(asked, self.tip)
                    .map(|answered_at| answered_at + SYNC_STATUS_GRACE);
                match (deadline, grace_over) {
                    (Some(deadline), Some(grace_over)) => Some(deadline.min(grace_over)),
                    (deadline, grace_over) => deadline.or(grace_over),
                }
            }
            Phase::Fetching { round, .. } => {
                if round.committing.is_some() {
                    return None;
                }
                round
                    .ranges
                    .iter()
                    .skip(round.next)
                    .filter(|range| range.answer.is_none())
                    .map(|range| range.deadline)
                    .min()
            }
        }
    }

    /// Whether `peer` is backed off at `now`.
    pub fn backed_off(&self, peer: &P, now: Duration) -> bool {
        self.backoff
            .get(peer)
            .is_some_and(|backoff| backoff.until > now)
    }

    /// Begins a pass: asks the tip of up to [`SYNC_STATUS_PEERS_MAX`] of
    /// `peers` that are not backed off. Does nothing unless
    /// [`SyncCore::wants_pass`].
    pub fn begin_pass(&mut self, now: Duration, tip: Height, peers: impl IntoIterator<Item = P>) {
        if !self.wants_pass(now) {
            return;
        }
        self.pass_requested = false;
        self.tip = tip;
        self.counters.passes += 1;
        let chosen: Vec<P> = peers
            .into_iter()
            .filter(|peer| !self.backed_off(peer, now))
            .take(SYNC_STATUS_PEERS_MAX)
            .collect();
        let mut asked = Vec::with_capacity(chosen.len());
        for peer in chosen {
            let id = self.send(peer, SyncRequest::Status, now + SYNC_STATUS_TIMEOUT);
            self.counters.status_requests += 1;
            asked.push(StatusAsk {
                id,
                peer,
                deadline: now + SYNC_STATUS_TIMEOUT,
                answer: None,
                answered_at: now,
            });
        }
        self.phase = Phase::Status {
            pass: Pass {
                first: tip,
                started: now,
                last_log: now,
                fetched: false,
            },
            asked,
        };
    }

    /// The answer to request `id` (`None`: the request failed). Answers to
    /// requests the core no longer waits for are ignored; one after its
    /// deadline counts as a failure.
    pub fn on_answer(&mut self, now: Duration, id: SyncRequestId, answer: Option<SyncResponse>) {
        match &mut self.phase {
            Phase::Idle => {}
            Phase::Status { asked, .. } => {
                let Some(ask) = asked
                    .iter_mut()
                    .find(|ask| ask.id == id && ask.answer.is_none())
                else {
                    return;
                };
                ask.answer = Some(match answer {
                    Some(SyncResponse::Status(status)) if now <= ask.deadline => {
                        Some((status.tip_height, status.lowest_height))
                    }
                    _ => None,
                });
                ask.answered_at = now;
            }
            Phase::Fetching { round, .. } => {
                let waiting = round.next + usize::from(round.committing.is_some());
                let Some(range) = round
                    .ranges
                    .iter_mut()
                    .skip(waiting)
                    .find(|range| range.id == id && range.answer.is_none())
                else {
                    return;
                };
                range.answer = Some(match answer {
                    _ if now > range.deadline => RangeAnswer::Failed,
                    None => RangeAnswer::Failed,
                    Some(SyncResponse::Blocks(blocks)) => RangeAnswer::Blocks {
                        blocks,
                        took: now.saturating_sub(range.sent),
                    },
                    Some(SyncResponse::NotHeld { lowest_height }) => RangeAnswer::NotHeld {
                        lowest: lowest_height,
                    },
                    Some(_) => RangeAnswer::Unusable,
                });
            }
        }
    }

    /// The outcome of the last [`SyncAction::Commit`]: `count` blocks
    /// committed; `tip` the tip now.
    pub fn committed(&mut self, now: Duration, id: SyncRequestId, count: usize, tip: Height) {
        self.tip = tip;
        let Phase::Fetching { round, .. } = &mut self.phase else {
            return;
        };
        let Some(asked) = round.committing else {
            return;
        };
        let Some(range) = round.ranges.get(round.next) else {
            return;
        };
        if range.id != id {
            return;
        }
        let (peer, from) = (range.peer, range.from);
        round.committing = None;
        round.next += 1;
        if count == 0 {
            if tip >= from {
                // Consensus committed this height meanwhile: the peer is not
                // at fault, and this range is done.
                return;
            }
            round.in_order = false;
            tracing::warn!(
                ?peer,
                height = from.0,
                "a peer gave no usable blocks; leaving it out of sync"
            );
            self.back_off(now, peer, "no usable blocks");
            return;
        }
        if count < asked || count < SYNC_RANGE_BLOCKS as usize {
            // Short or partly bad: later ranges do not follow on.
            round.in_order = false;
        }
        self.counters.ranges_committed += 1;
        self.counters.blocks_committed += count as u64;
        // It served: its failure streak ends (unless it is backed off now,
        // for a slow answer).
        if !self.backed_off(&peer, now) {
            self.backoff.remove(&peer);
        }
    }

    /// Moves the core on at `now` with the node's `tip`: requests past
    /// their deadline fail, answers are taken in order, rounds and passes
    /// end and begin. Returns what the driver must do, in order.
    pub fn poll(&mut self, now: Duration, tip: Height) -> Vec<SyncAction<P>> {
        self.tip = tip;
        loop {
            let progressed = match std::mem::replace(&mut self.phase, Phase::Idle) {
                Phase::Idle => false,
                Phase::Status { pass, asked } => self.poll_status(now, pass, asked),
                Phase::Fetching { pass, tips, round } => self.poll_round(now, pass, tips, round),
            };
            if !progressed {
                break;
            }
        }
        std::mem::take(&mut self.actions)
    }

    /// The status phase; true when it moved on.
    fn poll_status(&mut self, now: Duration, pass: Pass, mut asked: Vec<StatusAsk<P>>) -> bool {
        for ask in asked.iter_mut().filter(|ask| ask.answer.is_none()) {
            if ask.deadline <= now {
                ask.answer = Some(None);
            }
        }
        let grace_over = first_ahead_answer(&asked, self.tip)
            .is_some_and(|answered_at| now >= answered_at + SYNC_STATUS_GRACE);
        if asked.iter().any(|ask| ask.answer.is_none()) && !grace_over {
            self.phase = Phase::Status { pass, asked };
            return false;
        }
        let mut tips = Vec::new();
        for ask in asked {
            match ask.answer {
                Some(Some((height, lowest))) => tips.push(PeerTip {
                    peer: ask.peer,
                    height,
                    lowest,
                }),
                Some(None) => self.back_off(now, ask.peer, "no status answer"),
                // Not waited for: neither used nor blamed in this pass.
                None => {}
            }
        }
        tips.sort_by_key(|tip| std::cmp::Reverse(tip.height));
        let Some(target) = tips.first().map(|tip| tip.height) else {
            self.end_pass(now, pass);
            return true;
        };
        if target <= self.tip {
            self.actions.push(SyncAction::Progress {
                catching_up: false,
                behind: 0,
            });
            self.end_pass(now, pass);
            return true;
        }
        tracing::info!(
            height = self.tip.0,
            target = target.0,
            "behind the network; syncing blocks"
        );
        let pass = Pass {
            fetched: true,
            ..pass
        };
        self.next_round(now, pass, tips);
        true
    }

    /// Begins the next round of the pass, or ends the pass when no peer is
    /// left that is ahead, holds the next height and is not backed off.
    fn next_round(&mut self, now: Duration, pass: Pass, mut tips: Vec<PeerTip<P>>) {
        let tip = self.tip;
        let next = Height(tip.0.saturating_add(1));
        let pruned_peers = tips
            .iter()
            .filter(|candidate| candidate.height > tip && candidate.lowest > next)
            .count();
        // Only peers that hold the next height are of use: a peer that
        // pruned it is left out of this pass (without blame).
        tips.retain(|candidate| {
            candidate.height > tip
                && candidate.lowest <= next
                && !self.backed_off(&candidate.peer, now)
        });
        let Some(target) = tips.first().map(|tip| tip.height) else {
            let warned_lately = self
                .pruned_warning
                .is_some_and(|at| now.saturating_sub(at) < SYNC_PEER_BACKOFF);
            if pruned_peers > 0 && !warned_lately {
                self.pruned_warning = Some(now);
                tracing::warn!(
                    height = next.0,
                    pruned_peers,
                    "the peers ahead pruned the blocks this node needs next; waiting for a peer that keeps them (an archive node, pruning.keep_blocks = 0)"
                );
            }
            self.end_pass(now, pass);
            return;
        };
        let mut ranges = Vec::new();
        for index in 0..SYNC_PARALLEL_REQUESTS_MAX {
            let from = Height(
                tip.0
                    .saturating_add(1)
                    .saturating_add(index as u64 * u64::from(SYNC_RANGE_BLOCKS)),
            );
            // The range goes to a peer whose tip reaches it and which holds
            // its first height, round robin.
            let able: Vec<&PeerTip<P>> = tips
                .iter()
                .filter(|peer| peer.height >= from && peer.lowest <= from)
                .collect();
            let Some(peer) = able.get(index % able.len().max(1)).map(|tip| tip.peer) else {
                continue;
            };
            let deadline = now + SYNC_REQUEST_TIMEOUT;
            let id = self.send(
                peer,
                SyncRequest::Blocks {
                    from,
                    count: SYNC_RANGE_BLOCKS,
                },
                deadline,
            );
            self.counters.block_requests += 1;
            ranges.push(RangeAsk {
                id,
                peer,
                from,
                sent: now,
                deadline,
                answer: None,
            });
        }
        self.phase = Phase::Fetching {
            pass,
            tips,
            round: Round {
                before: tip,
                target,
                ranges,
                next: 0,
                in_order: true,
                committing: None,
            },
        };
    }

    /// A round: takes answers in range order; true when it moved on.
    fn poll_round(
        &mut self,
        now: Duration,
        mut pass: Pass,
        mut tips: Vec<PeerTip<P>>,
        mut round: Round<P>,
    ) -> bool {
        let waiting = round.next + usize::from(round.committing.is_some());
        for range in round.ranges.iter_mut().skip(waiting) {
            if range.answer.is_none() && range.deadline <= now {
                range.answer = Some(RangeAnswer::Failed);
            }
        }
        let mut progressed = false;
        while round.committing.is_none() {
            let Some(range) = round.ranges.get_mut(round.next) else {
                break;
            };
            let Some(answer) = range.answer.take() else {
                break;
            };
            progressed = true;
            let (peer, from, id) = (range.peer, range.from, range.id);
            match answer {
                RangeAnswer::NotHeld { lowest } => {
                    // It pruned them since its status: not a fault; it is
                    // asked for these heights no more.
                    tracing::debug!(
                        ?peer,
                        height = from.0,
                        lowest = lowest.0,
                        "a peer no longer holds these blocks; asking others"
                    );
                    self.counters.not_held += 1;
                    for known in tips.iter_mut().filter(|known| known.peer == peer) {
                        known.lowest = known.lowest.max(lowest);
                    }
                    round.in_order = false;
                    round.next += 1;
                }
                RangeAnswer::Unusable => {
                    self.back_off(now, peer, "answered a block request with something else");
                    round.in_order = false;
                    round.next += 1;
                }
                RangeAnswer::Failed => {
                    self.back_off(now, peer, "no answer to a block request");
                    round.in_order = false;
                    round.next += 1;
                }
                RangeAnswer::Blocks { blocks, took } => {
                    if took > SYNC_SLOW_ANSWER {
                        self.back_off(now, peer, "answered too slowly");
                    }
                    // A range is committed only right after the one before it.
                    if !round.in_order || self.tip.0.saturating_add(1) != from.0 {
                        round.next += 1;
                        continue;
                    }
                    round.committing = Some(blocks.len());
                    self.actions.push(SyncAction::Commit {
                        id,
                        peer,
                        from,
                        blocks,
                    });
                }
            }
        }
        if round.committing.is_some() || round.next < round.ranges.len() {
            self.phase = Phase::Fetching { pass, tips, round };
            return progressed;
        }
        // The round is over.
        let moved = self.tip != round.before;
        let behind = round.target.0.saturating_sub(self.tip.0);
        // Far behind a tip that peers proved by serving blocks.
        self.actions.push(SyncAction::Progress {
            catching_up: moved && behind > CATCHING_UP_BLOCKS_MIN,
            behind,
        });
        if moved {
            self.actions.push(SyncAction::Synced { end_of_pass: false });
        }
        if now.saturating_sub(pass.last_log) >= SYNC_LOG_INTERVAL {
            pass.last_log = now;
            let elapsed = now.saturating_sub(pass.started).as_secs_f64().max(0.001);
            tracing::info!(
                height = self.tip.0,
                target = round.target.0,
                blocks_per_second =
                    (self.tip.0.saturating_sub(pass.first.0) as f64 / elapsed) as u64,
                "syncing"
            );
        }
        self.next_round(now, pass, tips);
        true
    }

    fn end_pass(&mut self, now: Duration, pass: Pass) {
        if pass.fetched {
            self.actions.push(SyncAction::Progress {
                catching_up: false,
                behind: 0,
            });
            tracing::info!(
                height = self.tip.0,
                blocks = self.tip.0.saturating_sub(pass.first.0),
                seconds = now.saturating_sub(pass.started).as_secs_f64(),
                "sync finished"
            );
        }
        if self.tip != pass.first {
            self.actions.push(SyncAction::Synced { end_of_pass: true });
        }
        self.phase = Phase::Idle;
        self.next_pass_at = now + SYNC_RETRY_INTERVAL;
    }

    fn send(&mut self, peer: P, request: SyncRequest, deadline: Duration) -> SyncRequestId {
        let id = SyncRequestId(self.next_id);
        self.next_id += 1;
        self.actions.push(SyncAction::Send {
            peer,
            id,
            request,
            deadline,
        });
        id
    }

    /// Leaves `peer` out: for [`SYNC_PEER_BACKOFF_MIN`] after a first
    /// failure, twice as long after each further one in a row, at most
    /// [`SYNC_PEER_BACKOFF`]. Failures of one round (several ranges of one
    /// peer) count once.
    fn back_off(&mut self, now: Duration, peer: P, why: &'static str) {
        let streak = match self.backoff.get(&peer) {
            // Already left out (another range of the same round).
            Some(backoff) if backoff.until > now => return,
            // It failed again soon after its last backoff ended.
            Some(backoff) if now < backoff.until + SYNC_PEER_BACKOFF => backoff.streak + 1,
            _ => 0,
        };
        if self.backoff.len() >= SYNC_BACKOFF_PEERS_MAX {
            self.backoff.retain(|_, backoff| backoff.until > now);
            if self.backoff.len() >= SYNC_BACKOFF_PEERS_MAX {
                self.backoff.clear();
            }
        }
        let period = SYNC_PEER_BACKOFF_MIN
            .saturating_mul(1u32 << streak.min(16))
            .min(SYNC_PEER_BACKOFF);
        let until = now + period;
        tracing::debug!(
            ?peer,
            "leaving a peer out of block sync for {} s: {why}",
            period.as_secs()
        );
        self.backoff.insert(peer, Backoff { until, streak });
        self.counters.backoffs += 1;
        self.actions
            .push(SyncAction::BackedOff { peer, until, why });
    }
}

#[cfg(test)]
mod tests {
    use cairn_types::Hash;

    use super::*;

    type Core = SyncCore<u32>;

    fn secs(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    fn status(tip: u64, lowest: u64) -> Option<SyncResponse> {
        Some(SyncResponse::Status(SyncStatus {
            tip_height: Height(tip),
            tip_hash: Hash::default(),
            lowest_height: Height(lowest),
        }))
    }

    /// `count` (opaque) blocks from `from`: the core never looks inside.
    fn blocks(from: Height, count: u64) -> Option<SyncResponse> {
        Some(SyncResponse::Blocks(
            (0..count)
                .map(|offset| SyncBlock {
                    height: Height(from.0 + offset),
                    block: Vec::new(),
                    certificate: Vec::new(),
                })
                .collect(),
        ))
    }

    fn sends(actions: &[SyncAction<u32>]) -> Vec<(u32, SyncRequestId, SyncRequest)> {
        actions
            .iter()
            .filter_map(|action| match action {
                SyncAction::Send {
                    peer, id, request, ..
                } => Some((*peer, *id, request.clone())),
                _ => None,
            })
            .collect()
    }

    fn commits(actions: &[SyncAction<u32>]) -> Vec<(SyncRequestId, Height, usize)> {
        actions
            .iter()
            .filter_map(|action| match action {
                SyncAction::Commit {
                    id, from, blocks, ..
                } => Some((*id, *from, blocks.len())),
                _ => None,
            })
            .collect()
    }

    fn backed_off(actions: &[SyncAction<u32>]) -> Vec<u32> {
        actions
            .iter()
            .filter_map(|action| match action {
                SyncAction::BackedOff { peer, .. } => Some(*peer),
                _ => None,
            })
            .collect()
    }

    /// Begins a pass at `now` over `peers` and answers every status with
    /// `tips` (peer, tip, lowest); returns the block requests sent.
    fn pass_with_tips(
        core: &mut Core,
        now: Duration,
        tip: u64,
        tips: &[(u32, u64, u64)],
    ) -> Vec<(u32, SyncRequestId, SyncRequest)> {
        assert!(core.wants_pass(now));
        core.begin_pass(now, Height(tip), tips.iter().map(|(peer, _, _)| *peer));
        let asked = sends(&core.poll(now, Height(tip)));
        assert_eq!(asked.len(), tips.len());
        for (peer, id, request) in asked {
            assert_eq!(request, SyncRequest::Status);
            let (_, height, lowest) = tips.iter().find(|(p, _, _)| *p == peer).copied().unwrap();
            core.on_answer(now, id, status(height, lowest));
        }
        sends(&core.poll(now, Height(tip)))
    }

    fn from_of(request: &SyncRequest) -> Height {
        match request {
            SyncRequest::Blocks { from, .. } => *from,
            other => panic!("not a block request: {other:?}"),
        }
    }

    #[test]
    fn a_peer_that_claims_the_highest_tip_and_never_answers_is_backed_off_after_one_timeout() {
        let mut core = Core::new();
        let start = secs(100);
        // Peer 1 claims u64::MAX, peer 2 is honestly at 1_000.
        let requests = pass_with_tips(&mut core, start, 10, &[(1, u64::MAX, 1), (2, 1_000, 1)]);
        assert_eq!(requests.len(), SYNC_PARALLEL_REQUESTS_MAX);
        // The highest claimed tip gets the first range.
        assert_eq!(requests[0].0, 1);
        assert_eq!(from_of(&requests[0].2), Height(11));
        // Peer 2 answers its ranges at once; peer 1 never does.
        for (peer, id, request) in &requests {
            if *peer == 2 {
                core.on_answer(start, *id, blocks(from_of(request), 64));
            }
        }
        // Nothing is committed before the first range is in.
        assert!(commits(&core.poll(start + secs(1), Height(10))).is_empty());
        assert_eq!(core.next_wake(), Some(start + SYNC_REQUEST_TIMEOUT));
        // At the deadline peer 1 is backed off (one timeout), and the next
        // round asks only peer 2, from the same height.
        let actions = core.poll(start + SYNC_REQUEST_TIMEOUT, Height(10));
        assert!(backed_off(&actions).contains(&1));
        assert!(!backed_off(&actions).contains(&2));
        let next = sends(&actions);
        assert!(!next.is_empty());
        assert!(next.iter().all(|(peer, _, _)| *peer == 2), "{next:?}");
        assert_eq!(from_of(&next[0].2), Height(11));
        assert!(core.backed_off(&1, start + SYNC_REQUEST_TIMEOUT));
        // Peer 2 answers; the ranges commit in order.
        let now = start + SYNC_REQUEST_TIMEOUT + secs(1);
        for (_, id, request) in &next {
            core.on_answer(now, *id, blocks(from_of(request), 64));
        }
        let mut tip = 10;
        loop {
            let actions = core.poll(now, Height(tip));
            assert!(sends(&actions).iter().all(|(peer, _, _)| *peer == 2));
            let Some((id, from, count)) = commits(&actions).first().copied() else {
                if sends(&actions).is_empty() {
                    break;
                }
                for (_, id, request) in sends(&actions) {
                    core.on_answer(now, id, blocks(from_of(&request), 64));
                }
                continue;
            };
            assert_eq!(from.0, tip + 1);
            tip += count as u64;
            core.committed(now, id, count, Height(tip));
            if tip >= 1_000 {
                break;
            }
        }
        // The pass ends: peer 2's tip is reached.
        let actions = core.poll(now, Height(tip));
        assert!(actions.contains(&SyncAction::Synced { end_of_pass: true }));
        // A new pass within the backoff period does not ask peer 1 at all.
        let backed_off_until = start + SYNC_REQUEST_TIMEOUT + SYNC_PEER_BACKOFF_MIN;
        let later = backed_off_until - Duration::from_millis(1);
        assert!(now + SYNC_RETRY_INTERVAL <= later);
        core.request_pass();
        assert!(core.wants_pass(later));
        core.begin_pass(later, Height(tip), [1, 2]);
        let asked = sends(&core.poll(later, Height(tip)));
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0].0, 2);
        // Once the backoff is over it is asked again.
        assert!(!core.backed_off(&1, backed_off_until));
    }

    #[test]
    fn a_silent_peer_holds_the_status_phase_only_for_the_grace_after_a_peer_ahead() {
        let mut core = Core::new();
        let start = secs(100);
        core.begin_pass(start, Height(10), [1, 2, 3]);
        let asked = sends(&core.poll(start, Height(10)));
        assert_eq!(asked.len(), 3);
        assert_eq!(core.next_wake(), Some(start + SYNC_STATUS_TIMEOUT));
        // Peer 1 is behind: no grace yet, the phase waits for the others.
        let answered = start + Duration::from_millis(10);
        core.on_answer(answered, asked[0].1, status(5, 1));
        assert!(sends(&core.poll(answered, Height(10))).is_empty());
        assert_eq!(core.next_wake(), Some(start + SYNC_STATUS_TIMEOUT));
        // Peer 2 is ahead; peer 3 stays silent.
        let ahead = start + Duration::from_millis(20);
        core.on_answer(ahead, asked[1].1, status(40, 1));
        assert!(sends(&core.poll(ahead, Height(10))).is_empty());
        assert_eq!(core.next_wake(), Some(ahead + SYNC_STATUS_GRACE));
        // After the grace the blocks are asked of peer 2, and the silent
        // peer is not blamed (it was not waited for).
        let actions = core.poll(ahead + SYNC_STATUS_GRACE, Height(10));
        let requests = sends(&actions);
        assert!(!requests.is_empty());
        assert!(
            requests.iter().all(|(peer, _, _)| *peer == 2),
            "{requests:?}"
        );
        assert_eq!(from_of(&requests[0].2), Height(11));
        assert!(backed_off(&actions).is_empty());
        assert!(!core.backed_off(&3, ahead + SYNC_STATUS_GRACE));
        // Its late answer changes nothing in this pass.
        core.on_answer(ahead + SYNC_STATUS_GRACE, asked[2].1, status(40, 1));
        assert!(sends(&core.poll(ahead + SYNC_STATUS_GRACE, Height(10))).is_empty());
    }

    #[test]
    fn a_peer_ahead_that_pruned_the_next_block_does_not_cut_the_status_phase_short() {
        let mut core = Core::new();
        let start = secs(100);
        core.begin_pass(start, Height(10), [1, 2]);
        let asked = sends(&core.poll(start, Height(10)));
        // Peer 1 answers at once: far ahead, but it holds only from 500.
        core.on_answer(start, asked[0].1, status(1_000, 500));
        assert!(sends(&core.poll(start + SYNC_STATUS_GRACE, Height(10))).is_empty());
        assert_eq!(core.next_wake(), Some(start + SYNC_STATUS_TIMEOUT));
        // The archive peer answers a second later: its blocks are asked.
        let late = start + secs(1);
        core.on_answer(late, asked[1].1, status(1_000, 1));
        let requests = sends(&core.poll(late, Height(10)));
        assert!(!requests.is_empty());
        assert!(
            requests.iter().all(|(peer, _, _)| *peer == 2),
            "{requests:?}"
        );
    }

    #[test]
    fn a_peer_that_keeps_failing_is_asked_once_per_growing_backoff_period() {
        let mut core = Core::new();
        let mut rounds_asked = Vec::new();
        let mut now = Duration::ZERO;
        // Ten minutes of passes against one peer claiming u64::MAX that
        // answers its status and never a block request.
        while now < secs(600) {
            if core.wants_pass(now) {
                core.begin_pass(now, Height(5), [7u32]);
            }
            for (peer, id, request) in sends(&core.poll(now, Height(5))) {
                assert_eq!(peer, 7);
                if request == SyncRequest::Status {
                    core.on_answer(now, id, status(u64::MAX, 1));
                } else if rounds_asked.last() != Some(&now) {
                    rounds_asked.push(now);
                }
            }
            core.request_pass();
            now += Duration::from_millis(500);
        }
        // The gaps between rounds: a timeout plus 5, 10, 20, 40, then 60 s.
        let gaps: Vec<u64> = rounds_asked
            .windows(2)
            .map(|pair| (pair[1] - pair[0]).as_secs())
            .collect();
        assert!(gaps.len() >= 5, "{gaps:?}");
        for (index, gap) in gaps.iter().enumerate() {
            let backoff = (SYNC_PEER_BACKOFF_MIN * (1 << index.min(4))).min(SYNC_PEER_BACKOFF);
            assert!(
                *gap >= (SYNC_REQUEST_TIMEOUT + backoff).as_secs(),
                "{gaps:?}"
            );
        }
        assert!(gaps[gaps.len() - 1] >= (SYNC_REQUEST_TIMEOUT + SYNC_PEER_BACKOFF).as_secs());
    }

    #[test]
    fn a_peer_that_serves_blocks_ends_its_failure_streak() {
        let mut core = Core::new();
        let now = secs(1);
        core.back_off(now, 1, "test");
        let until = now + SYNC_PEER_BACKOFF_MIN;
        // A second failure soon after: twice as long.
        core.back_off(until, 1, "test");
        assert!(core.backed_off(&1, until + SYNC_PEER_BACKOFF_MIN));
        let free = until + SYNC_PEER_BACKOFF_MIN * 2;
        assert!(!core.backed_off(&1, free));
        // It serves a range that commits: the streak ends.
        let requests = pass_with_tips(&mut core, free, 0, &[(1, 20, 1)]);
        core.on_answer(free, requests[0].1, blocks(Height(1), 20));
        let (id, _, count) = commits(&core.poll(free, Height(0)))[0];
        core.committed(free, id, count, Height(20));
        core.back_off(free, 1, "test");
        assert!(!core.backed_off(&1, free + SYNC_PEER_BACKOFF_MIN));
    }

    #[test]
    fn not_held_raises_the_peers_lowest_without_backoff() {
        let mut core = Core::new();
        let now = secs(1);
        // Both peers are at 30 and said they hold everything: one range.
        let requests = pass_with_tips(&mut core, now, 10, &[(1, 30, 1), (2, 30, 1)]);
        assert_eq!(requests.len(), 1);
        let (peer, id, request) = requests[0].clone();
        assert_eq!((peer, from_of(&request)), (1, Height(11)));
        // Peer 1 pruned meanwhile: it now holds from 20.
        core.on_answer(
            now,
            id,
            Some(SyncResponse::NotHeld {
                lowest_height: Height(20),
            }),
        );
        let actions = core.poll(now, Height(10));
        assert!(backed_off(&actions).is_empty(), "{actions:?}");
        assert_eq!(core.counters().not_held, 1);
        assert!(!core.backed_off(&1, now));
        // Height 11 goes to peer 2 now; peer 1 is not asked for it.
        let next = sends(&actions);
        assert_eq!(next.len(), 1, "{next:?}");
        assert_eq!((next[0].0, from_of(&next[0].2)), (2, Height(11)));
    }

    #[test]
    fn a_range_from_a_pruned_peer_moves_to_one_that_holds_it() {
        let mut core = Core::new();
        let now = secs(1);
        let requests = pass_with_tips(&mut core, now, 10, &[(1, 500, 1), (2, 400, 1)]);
        for (peer, id, request) in &requests {
            let answer = if *peer == 1 {
                Some(SyncResponse::NotHeld {
                    lowest_height: Height(300),
                })
            } else {
                blocks(from_of(request), 64)
            };
            core.on_answer(now, *id, answer);
        }
        let actions = core.poll(now, Height(10));
        assert!(backed_off(&actions).is_empty(), "{actions:?}");
        // Range 0 (from 11) went to peer 1 and was not held: nothing
        // committed; the next round gives height 11 to peer 2.
        assert!(commits(&actions).is_empty());
        let next = sends(&actions);
        assert_eq!(next[0].0, 2);
        assert_eq!(from_of(&next[0].2), Height(11));
        // Peer 1 (lowest 300 now) is not asked for heights below 300.
        for (peer, _, request) in &next {
            if *peer == 1 {
                assert!(from_of(request).0 >= 300, "{next:?}");
            }
        }
    }

    #[test]
    fn an_answer_that_arrives_early_waits_for_the_earlier_range() {
        let mut core = Core::new();
        let now = secs(1);
        let requests = pass_with_tips(&mut core, now, 0, &[(1, 1_000, 1), (2, 1_000, 1)]);
        assert_eq!(requests.len(), 4);
        // Ranges 3, 2 and 1 answer before range 0.
        for (_, id, request) in requests.iter().skip(1).rev() {
            core.on_answer(now, *id, blocks(from_of(request), 64));
            assert!(commits(&core.poll(now, Height(0))).is_empty());
        }
        core.on_answer(now, requests[0].1, blocks(Height(1), 64));
        let mut tip = 0;
        let mut committed = Vec::new();
        for _ in 0..4 {
            let actions = core.poll(now, Height(tip));
            let found = commits(&actions);
            assert_eq!(found.len(), 1, "one range at a time: {actions:?}");
            let (id, from, count) = found[0];
            assert_eq!(from.0, tip + 1);
            committed.push(id);
            tip += count as u64;
            core.committed(now, id, count, Height(tip));
        }
        let order: Vec<SyncRequestId> = requests.iter().map(|(_, id, _)| *id).collect();
        assert_eq!(committed, order);
        assert_eq!(core.counters().blocks_committed, 256);
    }

    #[test]
    fn a_short_range_drops_the_later_ones_and_the_next_round_asks_again() {
        let mut core = Core::new();
        let now = secs(1);
        let requests = pass_with_tips(&mut core, now, 0, &[(1, 1_000, 1)]);
        for (_, id, request) in &requests {
            core.on_answer(now, *id, blocks(from_of(request), 64));
        }
        let actions = core.poll(now, Height(0));
        let (id, _, count) = commits(&actions)[0];
        // Only 10 of the 64 blocks verified.
        core.committed(now, id, 10, Height(10));
        assert_eq!(count, 64);
        let actions = core.poll(now, Height(10));
        assert!(commits(&actions).is_empty(), "{actions:?}");
        let next = sends(&actions);
        assert_eq!(from_of(&next[0].2), Height(11));
    }

    #[test]
    fn a_peer_whose_blocks_do_not_verify_is_backed_off_unless_consensus_got_there_first() {
        let mut core = Core::new();
        let now = secs(1);
        let requests = pass_with_tips(&mut core, now, 0, &[(1, 30, 1)]);
        assert_eq!(requests.len(), 1);
        core.on_answer(now, requests[0].1, blocks(Height(1), 30));
        let (id, _, _) = commits(&core.poll(now, Height(0)))[0];
        core.committed(now, id, 0, Height(0));
        let actions = core.poll(now, Height(0));
        assert_eq!(backed_off(&actions), vec![1]);

        // Consensus committed height 1 meanwhile: no blame.
        let mut core = Core::new();
        let requests = pass_with_tips(&mut core, now, 0, &[(1, 30, 1)]);
        core.on_answer(now, requests[0].1, blocks(Height(1), 30));
        let (id, _, _) = commits(&core.poll(now, Height(0)))[0];
        core.committed(now, id, 0, Height(1));
        let actions = core.poll(now, Height(1));
        assert!(backed_off(&actions).is_empty(), "{actions:?}");
    }

    #[test]
    fn a_slow_answer_is_used_and_its_peer_backed_off() {
        let mut core = Core::new();
        let now = secs(1);
        let requests = pass_with_tips(&mut core, now, 0, &[(1, 20, 1)]);
        let late = now + SYNC_SLOW_ANSWER + secs(1);
        core.on_answer(late, requests[0].1, blocks(Height(1), 20));
        let actions = core.poll(late, Height(0));
        assert_eq!(backed_off(&actions), vec![1]);
        let (id, _, count) = commits(&actions)[0];
        core.committed(late, id, count, Height(20));
        let actions = core.poll(late, Height(20));
        assert!(actions.contains(&SyncAction::Synced { end_of_pass: true }));
    }

    #[test]
    fn a_failed_status_backs_off_and_a_peer_behind_ends_the_pass() {
        let mut core = Core::new();
        let now = secs(1);
        core.begin_pass(now, Height(50), [1, 2, 3]);
        let asked = sends(&core.poll(now, Height(50)));
        assert_eq!(asked.len(), 3);
        core.on_answer(now, asked[0].1, status(40, 1));
        core.on_answer(now, asked[1].1, Some(SyncResponse::Refused("busy".into())));
        // Peer 3 never answers: at the status deadline it fails.
        assert_eq!(core.next_wake(), Some(now + SYNC_STATUS_TIMEOUT));
        let actions = core.poll(now + SYNC_STATUS_TIMEOUT, Height(50));
        assert_eq!(backed_off(&actions), vec![2, 3]);
        assert!(actions.contains(&SyncAction::Progress {
            catching_up: false,
            behind: 0
        }));
        assert!(sends(&actions).is_empty());
        // The next pass waits for a request and the retry interval.
        assert!(!core.wants_pass(now + SYNC_STATUS_TIMEOUT));
        core.request_pass();
        assert!(!core.wants_pass(now + SYNC_STATUS_TIMEOUT));
        assert!(core.wants_pass(now + SYNC_STATUS_TIMEOUT + SYNC_RETRY_INTERVAL));
        // At most SYNC_STATUS_PEERS_MAX peers are asked, none backed off.
        let at = now + SYNC_STATUS_TIMEOUT + SYNC_RETRY_INTERVAL;
        core.begin_pass(at, Height(50), 1..100);
        let asked = sends(&core.poll(at, Height(50)));
        assert_eq!(asked.len(), SYNC_STATUS_PEERS_MAX);
        assert!(asked.iter().all(|(peer, _, _)| *peer != 2 && *peer != 3));
    }

    #[test]
    fn catching_up_is_reported_only_after_blocks_committed_far_behind() {
        let mut core = Core::new();
        let now = secs(1);
        let requests = pass_with_tips(&mut core, now, 0, &[(1, 10_000, 1)]);
        // The first round fails: far behind, but nothing proven.
        for (_, id, _) in &requests {
            core.on_answer(now, *id, Some(SyncResponse::Refused("no".into())));
        }
        let actions = core.poll(now, Height(0));
        assert!(actions.contains(&SyncAction::Progress {
            catching_up: false,
            behind: 10_000
        }));

        let mut core = Core::new();
        let requests = pass_with_tips(&mut core, now, 0, &[(1, 10_000, 1)]);
        for (_, id, request) in &requests {
            core.on_answer(now, *id, blocks(from_of(request), 64));
        }
        let mut tip = 0;
        let mut reported = None;
        while reported.is_none() {
            let actions = core.poll(now, Height(tip));
            for action in &actions {
                if let SyncAction::Progress {
                    catching_up,
                    behind,
                } = action
                {
                    reported = Some((*catching_up, *behind));
                }
            }
            if let Some((id, _, count)) = commits(&actions).first().copied() {
                tip += count as u64;
                core.committed(now, id, count, Height(tip));
            }
        }
        assert_eq!(reported, Some((true, 10_000 - 256)));
    }

    #[test]
    fn the_backoff_table_is_bounded() {
        let mut core = Core::new();
        for peer in 0..(SYNC_BACKOFF_PEERS_MAX as u32 * 3) {
            core.back_off(secs(1), peer, "test");
            assert!(core.backoff.len() <= SYNC_BACKOFF_PEERS_MAX);
        }
    }

    #[test]
    fn late_and_unknown_answers_are_ignored_or_failures() {
        let mut core = Core::new();
        let now = secs(1);
        core.begin_pass(now, Height(0), [1]);
        let asked = sends(&core.poll(now, Height(0)));
        // An answer to a request never made changes nothing.
        core.on_answer(now, SyncRequestId(999), status(100, 1));
        assert!(core.poll(now, Height(0)).is_empty());
        // The real answer, after the deadline, is a failure.
        core.on_answer(
            now + SYNC_STATUS_TIMEOUT + secs(1),
            asked[0].1,
            status(100, 1),
        );
        let actions = core.poll(now + SYNC_STATUS_TIMEOUT + secs(1), Height(0));
        assert_eq!(backed_off(&actions), vec![1]);
    }
}
