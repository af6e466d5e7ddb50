//! Scenarios: which faults a simulated run injects, all derived from its
//! seed, and the named configurations of the CI seed set.

use crate::{rng::SplitMix64, sim::SimHost};

/// A test-only change to the rules of the honest validators' hosts (and of
/// every consensus driver they make), applied to each host when it boots:
/// "ignore the lock", "skip the WAL sync", ... to prove that a checker can
/// fail. The rule switches exist only in `fault-injection` builds of
/// cairn-node and cairn-consensus, which the simulator's tests enable as a
/// dev-dependency: the simulator library and `cairnd` never have them, so a
/// test that does passes its switch in here.
#[derive(Clone, Copy)]
pub struct HostFault {
    /// What the fault does, for the scenario's description.
    pub name: &'static str,
    /// Turns the fault on in a host that has not started yet.
    pub apply: fn(&mut SimHost),
}

impl std::fmt::Debug for HostFault {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name)
    }
}

/// Two faults are the same when they have the same name (function pointers
/// do not compare reliably).
impl PartialEq for HostFault {
    fn eq(&self, other: &HostFault) -> bool {
        self.name == other.name
    }
}

impl Eq for HostFault {}

/// How a validator misbehaves (while faults are active; see
/// [`Scenario::fault_phase_ms`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Behaviour {
    /// Follows the protocol (it may still crash and restart).
    Honest,
    /// Sends nothing, answers nothing, for the whole run.
    Silent,
    /// Sends two different proposals for each of its rounds, to different peers.
    EquivocatingProposer,
    /// Sends conflicting prevotes and precommits to different peers.
    DoubleVoter,
    /// Forgets its locks and own votes after every round.
    Amnesiac,
    /// Sends votes and proposals with bad signatures, and garbage bytes.
    BadSignatures,
    /// Proposes blocks with a bad timestamp or a wrong state root.
    BadProposer,
    /// Splits locks: sends one block to half the peers and another to the
    /// other half, and withholds its precommits.
    LockSplitter,
    /// Sends each of its messages only to half the peers (a different half
    /// at each height).
    SelectiveSender,
    /// Besides its honest votes, signs and sends nil votes for rounds far
    /// ahead (some inside the window a node accepts, some beyond it).
    RoundSpammer,
    /// Besides its honest messages, re-sends old authentic messages it
    /// received from others.
    Replayer,
    /// Runs honestly, and so does a second instance of its key with its
    /// own WAL (a twin): the key signs conflicting messages. Both instances
    /// count as one Byzantine validator.
    Twin,
    /// Besides its honest messages, claims a tip far ahead (signed votes
    /// of a height a thousand or more above the others'), and answers no
    /// sync request (round state, block) sent to it.
    FalseTip,
    /// Besides its honest messages, floods distinct valid evidence of its
    /// own double votes (new pairs at every vote, for its height and the
    /// heights below it).
    EvidenceFlooder,
}

impl Behaviour {
    /// The Byzantine behaviours.
    pub const BYZANTINE: [Behaviour; 6] = [
        Behaviour::Silent,
        Behaviour::EquivocatingProposer,
        Behaviour::DoubleVoter,
        Behaviour::Amnesiac,
        Behaviour::BadSignatures,
        Behaviour::BadProposer,
    ];

    /// Adversaries that act inside the protocol (see
    /// [`Scenario::adversary_from_seed`]).
    pub const PROTOCOL_ADVERSARIES: [Behaviour; 7] = [
        Behaviour::LockSplitter,
        Behaviour::SelectiveSender,
        Behaviour::RoundSpammer,
        Behaviour::Replayer,
        Behaviour::Twin,
        Behaviour::FalseTip,
        Behaviour::EvidenceFlooder,
    ];
}

/// Everything one run does; [`Scenario::from_seed`] derives it from a seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// The seed of everything random in the run.
    pub seed: u64,
    /// Number of validators.
    pub validators: usize,
    /// Voting power of each validator (index order).
    pub powers: Vec<u64>,
    /// Behaviour of each validator (index order).
    pub behaviours: Vec<Behaviour>,
    /// Probability of dropping a message while faults are active.
    pub drop_per_mille: u64,
    /// Probability of delivering a message twice while faults are active.
    pub duplicate_per_mille: u64,
    /// One-way latency bounds while faults are active (jitter reorders).
    pub latency_faulty_ms: (u64, u64),
    /// One-way latency bounds after the faults heal.
    pub latency_healed_ms: (u64, u64),
    /// Network partitions during the fault phase.
    pub partitions: u32,
    /// A minority of this many validators cut off from the rest from 100 ms
    /// for [`Scenario::long_partition_ms`] (0: none).
    pub long_partition_nodes: usize,
    /// How long the minority stays cut off (many rounds of timeouts).
    pub long_partition_ms: u64,
    /// Crashes (with restart from the store and WAL) of honest validators.
    pub crashes: u32,
    /// Every fault heals at this simulated time (ms after genesis).
    pub fault_phase_ms: u64,
    /// Heights every honest node must decide after the heal.
    pub heights_after_heal: u64,
    /// Simulated time allowed for those heights (liveness bound).
    pub liveness_budget_ms: u64,
    /// The node-local `timeout_commit`.
    pub timeout_commit_ms: u64,
    /// Largest clock skew of a node, either way.
    pub clock_skew_max_ms: u64,
    /// Nodes whose clock is off by this much instead (beyond the drift the
    /// chain allows): (node, skew in ms, negative = behind).
    pub clock_outliers: Vec<(usize, i64)>,
    /// Transfers per block.
    pub transactions_per_block: usize,
    /// Test-only: a rule every honest node breaks (see [`HostFault`]).
    pub honest_host_fault: Option<HostFault>,
    /// Staking events (candidates that join, unbonds, key rotations,
    /// jailing), if any.
    pub staking: Option<StakingPlan>,
    /// Clock jumps during the fault phase: each moves one node's clock by
    /// 0.5-5 s, forward or back (the drift blocks may have is 1 s).
    pub clock_jumps: u32,
    /// Largest drift rate of a node's clock during the fault phase, either
    /// way, in parts per million (200,000: 2 s off after 10 s).
    pub clock_drift_ppm_max: u64,
    /// Directed links (from, to) that carry nothing during the fault phase.
    pub one_way_links: u32,
    /// Chance (per mille) that a message's delay during the fault phase is
    /// 10-50 times the drawn latency (a heavy tail).
    pub heavy_tail_per_mille: u64,
    /// Chance (per mille) that a consensus message has one byte flipped in
    /// flight during the fault phase (it arrives as raw bytes to decode).
    pub corrupt_per_mille: u64,
    /// The node-local `wait_for_transactions`: a height starts only when
    /// the mempool has an executable transaction or the longest interval
    /// between blocks (1 s here) has passed.
    pub wait_for_transactions: bool,
    /// Disk faults during the fault phase, each on one honest node: a full
    /// disk or failing syncs for 0.1-1 s (the node stops; it restarts when
    /// the fault clears), or a record that rots (the node must refuse to
    /// run on it; at most f such nodes stop for good).
    pub disk_faults: u32,
    /// Periods of slow syncs during the fault phase, each on one node for
    /// 0.1-1 s: every sync of that node costs 5-200 ms of simulated time,
    /// and the node is busy until its step's syncs are done (what it sends
    /// leaves after them; inputs reaching it meanwhile wait, in order).
    pub slow_syncs: u32,
    /// Crashes of honest validators after which the node restarts with an
    /// empty store and joins by state sync: a snapshot of another honest
    /// node's committed state, moved through simulated time, verified
    /// against the trusted header, then catch-up to the tip.
    pub snapshot_restores: u32,
    /// Test-only: a node restored from a snapshot forgets its sign state
    /// (as if `config/` were lost with `data/`): the no-double-sign
    /// checker must then catch it.
    pub restore_without_sign_state: bool,
}

/// What one staking event of a [`StakingPlan`] does. The simulator picks
/// its target when it fires (from the seed's RNG and the chain's state),
/// among those that keep the honest power above two thirds of every set
/// to come; an event with no such target waits a few heights, then is
/// skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StakingKind {
    /// A node whose operator has no candidate (a candidate node, or a
    /// validator that left) bonds and joins.
    Join,
    /// A validator bonds more.
    BondMore,
    /// A validator unbonds part of its stake (at least one unit stays).
    PartialUnbond,
    /// A validator unbonds all of its stake: it leaves the set.
    Leave,
    /// [`StakingKind::Leave`] of a validator that holds a lock when the
    /// unbond is submitted (if one does within a few polls).
    LeaveLocked,
    /// A validator rotates its consensus key; its node restarts with the
    /// new key once the old one has left the set of its next height.
    RotateKey,
    /// Evidence of a double vote by an honest validator (signed by the
    /// simulator with its key) is handed to the nodes: a block records
    /// it, and the validator is jailed and slashed.
    Jail,
    /// A jailed validator whose jail is over unjails.
    Unjail,
}

/// A fault that strikes when a staking event fires (in the fault phase).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventFault {
    /// The event's target node crashes (restarting 100-500 ms later).
    CrashTarget,
    /// Another honest node crashes.
    CrashOther,
    /// The target node is cut off from all others for 100-500 ms.
    PartitionTarget,
}

/// One event of a [`StakingPlan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StakingEvent {
    /// What it does.
    pub kind: StakingKind,
    /// What strikes with it, if it fires in the fault phase.
    pub fault: Option<EventFault>,
}

/// The staking part of a scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StakingPlan {
    /// Extra nodes with a validator key not in the genesis set and a
    /// funded operator account (their own): they follow and may join.
    pub candidates: usize,
    /// Balance of each candidate's operator, in power units.
    pub candidate_balance_units: u64,
    /// The first event fires once an honest node decided this height.
    pub first_height: u64,
    /// Heights between one event and the next (drawn per event).
    pub gap_heights: (u64, u64),
    /// The events, in order.
    pub events: Vec<StakingEvent>,
    /// Test-only: choose targets without keeping the honest power above
    /// two thirds (the checker must then catch a set that breaks it).
    pub unguarded: bool,
}

impl Scenario {
    /// No faults at all, fixed 1 ms latency.
    pub fn calm(seed: u64, validators: usize) -> Scenario {
        Scenario {
            seed,
            validators,
            powers: vec![10; validators],
            behaviours: vec![Behaviour::Honest; validators],
            drop_per_mille: 0,
            duplicate_per_mille: 0,
            latency_faulty_ms: (1, 1),
            latency_healed_ms: (1, 1),
            partitions: 0,
            long_partition_nodes: 0,
            long_partition_ms: 0,
            crashes: 0,
            fault_phase_ms: 0,
            heights_after_heal: 10,
            liveness_budget_ms: 30_000,
            timeout_commit_ms: 10,
            clock_skew_max_ms: 0,
            clock_outliers: Vec::new(),
            transactions_per_block: 2,
            honest_host_fault: None,
            staking: None,
            clock_jumps: 0,
            clock_drift_ppm_max: 0,
            one_way_links: 0,
            heavy_tail_per_mille: 0,
            corrupt_per_mille: 0,
            wait_for_transactions: false,
            disk_faults: 0,
            slow_syncs: 0,
            snapshot_restores: 0,
            restore_without_sign_state: false,
        }
    }

    /// A mix of faults drawn from `seed`: network faults always, and some
    /// of partitions, crashes and up to f Byzantine validators.
    pub fn from_seed(seed: u64, validators: usize) -> Scenario {
        let mut rng = SplitMix64::new(seed ^ 0x5CE9_A210);
        let faulty_max = (validators - 1) / 3;
        let byzantine = rng.below(faulty_max as u64 + 1) as usize;
        let mut behaviours = vec![Behaviour::Honest; validators];
        for slot in behaviours.iter_mut().rev().take(byzantine) {
            *slot = Behaviour::BYZANTINE[rng.below(Behaviour::BYZANTINE.len() as u64) as usize];
        }
        let latency_low = rng.between(1, 5);
        let mut scenario = Scenario {
            seed,
            validators,
            powers: vec![10; validators],
            behaviours,
            drop_per_mille: rng.between(0, 250),
            duplicate_per_mille: rng.between(0, 100),
            latency_faulty_ms: (latency_low, latency_low + rng.between(0, 40)),
            latency_healed_ms: (1, rng.between(1, 10)),
            partitions: rng.below(3) as u32,
            long_partition_nodes: 0,
            long_partition_ms: 0,
            crashes: rng.below(3) as u32,
            fault_phase_ms: rng.between(500, 2_000),
            heights_after_heal: 10,
            liveness_budget_ms: 60_000,
            timeout_commit_ms: [0, 20, 100][rng.below(3) as usize],
            clock_skew_max_ms: rng.between(0, 200),
            clock_outliers: Vec::new(),
            transactions_per_block: rng.below(3) as usize,
            honest_host_fault: None,
            staking: None,
            clock_jumps: 0,
            clock_drift_ppm_max: 0,
            one_way_links: 0,
            heavy_tail_per_mille: 0,
            corrupt_per_mille: 0,
            wait_for_transactions: false,
            disk_faults: 0,
            slow_syncs: 0,
            snapshot_restores: 0,
            restore_without_sign_state: false,
        };
        scenario.keep_time_moving();
        scenario
    }

    /// [`Scenario::from_seed`] with staking events: 1 to 3 candidate nodes
    /// and 7 to 10 events drawn from `seed` (at least one join, one full
    /// unbond, one key rotation and one jailing; some of them struck by a
    /// crash or a partition), one every 2 to 4 heights, during a longer
    /// fault phase (2.5 to 4.5 s) and after it. In half of the seeds that
    /// allow a Byzantine validator, one is a double voter (jailed by the
    /// evidence of its own votes).
    pub fn staking_from_seed(seed: u64, validators: usize) -> Scenario {
        let mut scenario = Scenario::from_seed(seed, validators);
        let mut rng = SplitMix64::new(seed ^ 0x57A4_1E06);
        let faulty_max = (validators - 1) / 3;
        if faulty_max > 0 && rng.chance(500) {
            let slot = validators - 1;
            scenario.behaviours[slot] = Behaviour::DoubleVoter;
        }
        scenario.fault_phase_ms = rng.between(2_500, 4_500);
        let mut events = vec![
            StakingKind::Join,
            StakingKind::RotateKey,
            if rng.chance(500) {
                StakingKind::LeaveLocked
            } else {
                StakingKind::Leave
            },
            StakingKind::Jail,
        ];
        const EXTRA: [StakingKind; 8] = [
            StakingKind::Join,
            StakingKind::BondMore,
            StakingKind::PartialUnbond,
            StakingKind::Leave,
            StakingKind::LeaveLocked,
            StakingKind::RotateKey,
            StakingKind::Jail,
            StakingKind::Unjail,
        ];
        for _ in 0..rng.between(3, 6) {
            events.push(EXTRA[rng.below(EXTRA.len() as u64) as usize]);
        }
        // A join first (it makes room for removals), the rest shuffled.
        for index in (2..events.len()).rev() {
            let other = 1 + rng.below(index as u64) as usize;
            events.swap(index, other);
        }
        const FAULTS: [EventFault; 3] = [
            EventFault::CrashTarget,
            EventFault::CrashOther,
            EventFault::PartitionTarget,
        ];
        let events = events
            .into_iter()
            .map(|kind| StakingEvent {
                kind,
                fault: if rng.chance(400) {
                    Some(FAULTS[rng.below(FAULTS.len() as u64) as usize])
                } else {
                    None
                },
            })
            .collect();
        scenario.staking = Some(StakingPlan {
            candidates: rng.between(1, if validators >= 7 { 3 } else { 2 }) as usize,
            candidate_balance_units: 30,
            first_height: 2,
            gap_heights: (2, 4),
            events,
            unguarded: false,
        });
        scenario
    }

    /// [`Scenario::from_seed`] with unequal voting powers (1 to 50 each)
    /// and Byzantine validators holding as much power as the fault bound
    /// allows, often exactly the most that is still below a third (3B <
    /// total): the boundary where one more unit would break safety.
    pub fn weighted_from_seed(seed: u64, validators: usize) -> Scenario {
        let mut scenario = Scenario::from_seed(seed, validators);
        let mut rng = SplitMix64::new(seed ^ 0x0BE1_6475);
        let mut powers: Vec<u64> = (0..validators).map(|_| rng.between(1, 50)).collect();
        let byzantine: Vec<usize> = (0..validators)
            .filter(|index| scenario.behaviours[*index] != Behaviour::Honest)
            .collect();
        if !byzantine.is_empty() {
            let honest: u64 = (0..validators)
                .filter(|index| !byzantine.contains(index))
                .map(|index| powers[index])
                .sum();
            // 3B < B + H  <=>  B < H / 2: the most is (H - 1) / 2.
            let most = honest.saturating_sub(1) / 2;
            let budget = if rng.below(2) == 0 {
                most
            } else {
                rng.between(0, most)
            };
            if budget < byzantine.len() as u64 {
                // Not even one unit each fits: these stay honest.
                for index in &byzantine {
                    scenario.behaviours[*index] = Behaviour::Honest;
                }
            } else {
                // Spread the budget over the Byzantine validators, at least 1 each.
                let mut left = budget;
                for (position, index) in byzantine.iter().enumerate() {
                    let still = (byzantine.len() - position - 1) as u64;
                    let share = if still == 0 {
                        left
                    } else {
                        rng.between(1, left.saturating_sub(still).max(1))
                    };
                    powers[*index] = share.max(1);
                    left = left.saturating_sub(share);
                }
            }
        }
        scenario.powers = powers;
        scenario.keep_time_moving();
        scenario
    }

    /// A validator holding more than two thirds of the power decides alone,
    /// with no message between nodes; with `timeout_commit` 0 its heights
    /// then take no simulated time, so the run never leaves the instant it
    /// is in (seed 700228 of the any-size mix, one validator, made 20
    /// million events at 0 ms). Such a set gets a commit timeout of 20 ms,
    /// as a real node's heights take time too.
    fn keep_time_moving(&mut self) {
        let total: u64 = self.powers.iter().sum();
        let alone = self.powers.iter().any(|power| 3 * power > 2 * total);
        if alone && self.timeout_commit_ms == 0 {
            self.timeout_commit_ms = 20;
        }
    }

    /// [`Scenario::from_seed`] with one long partition instead of the short
    /// ones: a minority (1 to f validators, possibly the proposers of the
    /// next rounds) cut off for `ms`, long enough for the majority to
    /// decide many heights and the minority to run many rounds alone; then
    /// it heals and the minority must catch up.
    pub fn long_partition_from_seed(seed: u64, validators: usize, ms: u64) -> Scenario {
        let mut scenario = Scenario::from_seed(seed, validators);
        let mut rng = SplitMix64::new(seed ^ 0x10C6_9A27);
        let faulty_max = ((validators - 1) / 3).max(1);
        scenario.partitions = 0;
        scenario.long_partition_nodes = rng.between(1, faulty_max as u64) as usize;
        scenario.long_partition_ms = ms;
        scenario.fault_phase_ms = scenario.fault_phase_ms.max(100 + ms + 1);
        scenario
    }

    /// [`Scenario::from_seed`] where one honest validator's clock is off by
    /// 1.5 to 4 s (behind or ahead), beyond the 1 s drift blocks may have:
    /// its view of fresh proposals' timeliness differs from the others'
    /// for the whole run. At most f validators are Byzantine or off.
    pub fn clock_outlier_from_seed(seed: u64, validators: usize) -> Scenario {
        let mut scenario = Scenario::from_seed(seed, validators);
        let mut rng = SplitMix64::new(seed ^ 0xC10C_4B1D);
        let faulty_max = (validators - 1) / 3;
        // Make room for the outlier in the fault budget.
        let byzantine: Vec<usize> = (0..validators)
            .filter(|index| scenario.behaviours[*index] != Behaviour::Honest)
            .collect();
        if byzantine.len() >= faulty_max {
            if let Some(first) = byzantine.first() {
                scenario.behaviours[*first] = Behaviour::Honest;
            }
        }
        let honest: Vec<usize> = (0..validators)
            .filter(|index| scenario.behaviours[*index] == Behaviour::Honest)
            .collect();
        let node = honest[rng.below(honest.len() as u64) as usize];
        let size = rng.between(1_500, 4_000) as i64;
        let skew = if rng.below(2) == 0 { -size } else { size };
        scenario.clock_outliers = vec![(node, skew)];
        scenario
    }

    /// [`Scenario::from_seed`] in a harsher world during a longer fault
    /// phase (3-15 s): clocks skewed up to 4x the drift, jumping by seconds
    /// both ways and drifting at up to 20%; one-way links, heavy-tailed
    /// latency, flipped bytes in flight; and sometimes a split with no
    /// side holding two thirds for most of the phase. Clocks return within
    /// the drift and every link heals when the phase ends: safety is checked
    /// throughout, liveness after.
    pub fn harsh_from_seed(seed: u64, validators: usize) -> Scenario {
        let mut scenario = Scenario::from_seed(seed, validators);
        let mut rng = SplitMix64::new(seed ^ 0x4A25_11E5);
        scenario.fault_phase_ms = rng.between(3_000, 15_000);
        scenario.clock_skew_max_ms = rng.between(0, 4_000);
        scenario.clock_jumps = rng.below(6) as u32;
        scenario.clock_drift_ppm_max = rng.between(0, 200_000);
        scenario.one_way_links = rng.below(validators as u64 + 1) as u32;
        scenario.heavy_tail_per_mille = rng.between(0, 50);
        scenario.corrupt_per_mille = rng.between(0, 30);
        if rng.chance(300) {
            // No side holds two thirds: half the nodes cut off.
            scenario.partitions = 0;
            scenario.long_partition_nodes = validators / 2;
            scenario.long_partition_ms = scenario.fault_phase_ms.saturating_sub(200);
        }
        scenario
    }

    /// [`Scenario::from_seed`] with up to f validators acting inside the
    /// protocol: lock-splitting proposers, selective senders, high-round
    /// vote spammers, replayers of old messages, twins (a second instance
    /// of a key, with its own WAL; the key counts as Byzantine), peers
    /// that claim a false tip and withhold sync answers, and floods of
    /// evidence of one's own double votes.
    pub fn adversary_from_seed(seed: u64, validators: usize) -> Scenario {
        let mut scenario = Scenario::from_seed(seed, validators);
        let mut rng = SplitMix64::new(seed ^ 0xAD7E_5A21);
        let faulty_max = (validators - 1) / 3;
        let count = rng.between(1, faulty_max.max(1) as u64) as usize;
        scenario.behaviours = vec![Behaviour::Honest; validators];
        for slot in scenario
            .behaviours
            .iter_mut()
            .rev()
            .take(count.min(faulty_max))
        {
            *slot = Behaviour::PROTOCOL_ADVERSARIES
                [rng.below(Behaviour::PROTOCOL_ADVERSARIES.len() as u64) as usize];
        }
        scenario
    }

    /// [`Scenario::from_seed`] with honest validators only and one to four
    /// disk faults: full disks, failing syncs, rotten records; and up to
    /// two periods of slow syncs (5-200 ms of simulated time each).
    pub fn disk_faults_from_seed(seed: u64, validators: usize) -> Scenario {
        let mut scenario = Scenario::from_seed(seed, validators);
        let mut rng = SplitMix64::new(seed ^ 0xD15C_FA17);
        scenario.behaviours = vec![Behaviour::Honest; validators];
        scenario.disk_faults = rng.between(1, 4) as u32;
        scenario.fault_phase_ms = scenario.fault_phase_ms.max(1_500);
        scenario.slow_syncs = rng.below(3) as u32;
        scenario
    }

    /// [`Scenario::from_seed`] with a fault phase of 3-6 s in whose second
    /// half one or two crashes of honest validators end in a restore from
    /// a snapshot instead of a restart from the node's own store (see
    /// [`Scenario::snapshot_restores`]).
    pub fn snapshot_restore_from_seed(seed: u64, validators: usize) -> Scenario {
        let mut scenario = Scenario::from_seed(seed, validators);
        let mut rng = SplitMix64::new(seed ^ 0x5A47_5E57);
        scenario.snapshot_restores = rng.between(1, 2) as u32;
        // Long enough for tens of heights before the wipes (which strike
        // in the second half of the phase), so snapshots are of heights
        // with an evidence window below them.
        scenario.fault_phase_ms = rng.between(3_000, 6_000);
        scenario
    }

    /// [`Scenario::weighted_from_seed`] of any size from 1 to 31 validators
    /// (f = 0 up to 10), so 3f+1, 3f+2 and 3f+3 all occur, with Byzantine
    /// power up to (half the time exactly at) the most below a third.
    pub fn any_size_from_seed(seed: u64) -> Scenario {
        // Consecutive seeds walk through the sizes.
        let validators = 1 + (seed % 31) as usize;
        Scenario::weighted_from_seed(seed, validators)
    }

    /// [`Scenario::from_seed`] with busy blocks: 50-150 signed transfers
    /// offered every 50 ms (hundreds a height), and half the time
    /// `wait_for_transactions` on.
    pub fn busy_from_seed(seed: u64, validators: usize) -> Scenario {
        let mut scenario = Scenario::from_seed(seed, validators);
        let mut rng = SplitMix64::new(seed ^ 0xB057_7B10);
        scenario.transactions_per_block = rng.between(50, 150) as usize;
        scenario.wait_for_transactions = rng.chance(500);
        scenario
    }

    /// A one-line description for failure messages.
    pub fn describe(&self) -> String {
        let byzantine: Vec<String> = self
            .behaviours
            .iter()
            .enumerate()
            .filter(|(_, b)| **b != Behaviour::Honest)
            .map(|(i, b)| format!("{i}:{b:?}"))
            .collect();
        let staking = match &self.staking {
            None => String::new(),
            Some(plan) => {
                let events: Vec<String> = plan
                    .events
                    .iter()
                    .map(|event| match event.fault {
                        Some(fault) => format!("{:?}+{fault:?}", event.kind),
                        None => format!("{:?}", event.kind),
                    })
                    .collect();
                format!(
                    " staking: candidates={} events=[{}]",
                    plan.candidates,
                    events.join(",")
                )
            }
        };
        format!(
            "n={} powers={:?} byzantine=[{}] drop={}‰ dup={}‰ latency={:?}/{:?}ms partitions={} long_partition={}x{}ms clock_outliers={:?} crashes={} heal_at={}ms timeout_commit={}ms host_fault={:?} transactions={} wait={} skew={}ms jumps={} drift={}ppm one_way={} heavy_tail={}‰ corrupt={}‰ disk_faults={} slow_syncs={} snapshot_restores={}{}{staking}",
            self.validators,
            self.powers,
            byzantine.join(","),
            self.drop_per_mille,
            self.duplicate_per_mille,
            self.latency_faulty_ms,
            self.latency_healed_ms,
            self.partitions,
            self.long_partition_nodes,
            self.long_partition_ms,
            self.clock_outliers,
            self.crashes,
            self.fault_phase_ms,
            self.timeout_commit_ms,
            self.honest_host_fault,
            self.transactions_per_block,
            self.wait_for_transactions,
            self.clock_skew_max_ms,
            self.clock_jumps,
            self.clock_drift_ppm_max,
            self.one_way_links,
            self.heavy_tail_per_mille,
            self.corrupt_per_mille,
            self.disk_faults,
            self.slow_syncs,
            self.snapshot_restores,
            if self.restore_without_sign_state {
                " (without sign state)"
            } else {
                ""
            }
        )
    }
}
