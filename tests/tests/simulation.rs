//! The deterministic simulator's test suite: the CI seed set (300, 150 and
//! 50 seeds of 4, 7 and 10 validators, every node a real consensus host),
//! replay of one seed, soak runs, targeted fault scenarios (harsh clocks and
//! links, any set size 1-31, busy blocks, protocol adversaries and twins,
//! disk faults with slow syncs, snapshot restores),
//! staking events
//! (joins, unbonds, key rotations, jailing) while the chain runs, the
//! latency bound, and mutation tests: each test-only rule switch (of
//! cairn-consensus and the node's host, built only into this test) is caught
//! by a named checker within a bounded seed search.
//!
//! Replay a failing seed:
//! `CAIRN_SIM_SEED=<seed> CAIRN_SIM_VALIDATORS=<n> cargo test --workspace --test simulation replay_one_seed -- --nocapture`
//! (a seed of another set: the command its failure prints).
//! Soak: `CAIRN_SIM_SOAK_SEEDS=5000 cargo test --workspace --test simulation soak -- --ignored --nocapture`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_consensus::RoundRules;
use cairn_node::host::HostFaults;
use cairn_tests::{
    scenario::{Behaviour, HostFault, Scenario},
    sim::{run, Report, SimHost},
};

/// The seed chosen with `CAIRN_SIM_SEED`, which restricts every seed loop
/// of this file to that one seed.
fn chosen_seed() -> Option<u64> {
    std::env::var("CAIRN_SIM_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
}

/// The seeds of `range`, or only the chosen seed if one is set and in it.
fn seeds(range: std::ops::Range<u64>) -> Vec<u64> {
    match chosen_seed() {
        Some(seed) if range.contains(&seed) => vec![seed],
        Some(_) => vec![],
        None => range.collect(),
    }
}

fn check(test: &str, scenario: Scenario) -> Report {
    let description = scenario.describe();
    let command = format!(
        "CAIRN_SIM_SEED={} CAIRN_SIM_TRACE=1 cargo test --workspace --test simulation {test} -- --exact --nocapture",
        scenario.seed
    );
    let report = run(scenario);
    assert!(
        report.violations.is_empty(),
        "seed {} failed ({description}):\n  {}\nreplay with: {command}",
        report.seed,
        report.violations.join("\n  ")
    );
    report
}

/// What the nodes' block-sync cores did, summed over seeds.
#[derive(Debug, Default)]
struct SyncTotals {
    passes: u64,
    status_requests: u64,
    block_requests: u64,
    ranges_committed: u64,
    blocks_committed: u64,
    backoffs: u64,
    false_tip_backoffs: u64,
    false_tip_status_claims: u64,
}

impl SyncTotals {
    fn add(&mut self, report: &Report) {
        self.passes += report.sync_passes;
        self.status_requests += report.sync_status_requests;
        self.block_requests += report.sync_block_requests;
        self.ranges_committed += report.sync_ranges_committed;
        self.blocks_committed += report.sync_blocks_committed;
        self.backoffs += report.sync_backoffs;
        self.false_tip_backoffs += report.sync_false_tip_backoffs;
        self.false_tip_status_claims += report.false_tip_status_claims;
    }
}

fn seed_set(test: &str, validators: usize, first: u64, count: u64) {
    let start = std::time::Instant::now();
    let mut mixes: std::collections::BTreeMap<String, u64> = Default::default();
    let mut heights = 0;
    let mut sync = SyncTotals::default();
    for seed in seeds(first..first + count) {
        let scenario = Scenario::from_seed(seed, validators);
        for behaviour in scenario
            .behaviours
            .iter()
            .filter(|b| **b != Behaviour::Honest)
        {
            *mixes.entry(format!("{behaviour:?}")).or_default() += 1;
        }
        *mixes.entry("crashes".into()).or_default() += u64::from(scenario.crashes);
        *mixes.entry("partitions".into()).or_default() += u64::from(scenario.partitions);
        let report = check(test, scenario);
        sync.add(&report);
        heights += report.heights.iter().max().copied().unwrap_or(0);
    }
    eprintln!(
        "{count} seeds with {validators} validators in {:.1} s, {heights} heights decided; faults injected: {mixes:?}; sync: {sync:?}",
        start.elapsed().as_secs_f64()
    );
    // Crashed and cut-off nodes catch up through the node's sync core.
    assert!(
        chosen_seed().is_some() || (sync.status_requests > 0 && sync.blocks_committed > 0),
        "no block was committed through the sync core: {sync:?}"
    );
}

#[test]
fn ci_seeds_4_validators() {
    seed_set("ci_seeds_4_validators", 4, 1_000, 300);
}

#[test]
fn ci_seeds_7_validators() {
    seed_set("ci_seeds_7_validators", 7, 2_000, 150);
}

/// One honest validator whose clock is 1.5 to 4 s off (the drift allowed
/// is 1 s): it finds the others' fresh blocks untimely (or they find its
/// own), yet it locks and commits with them once they have a polka or a
/// certificate, and the chain stays live and safe (a clock rejection used
/// to be remembered for the whole height).
#[test]
fn a_validator_whose_clock_is_off_beyond_the_drift_does_not_stall_the_chain() {
    for (validators, first) in [(4, 7_000), (7, 7_100)] {
        for seed in seeds(first..first + 10) {
            let scenario = Scenario::clock_outlier_from_seed(seed, validators);
            check(
                "a_validator_whose_clock_is_off_beyond_the_drift_does_not_stall_the_chain",
                scenario,
            );
        }
    }
}

/// A harsher world in the fault phase (`Scenario::harsh_from_seed`):
/// clocks skewed up to 4 s, jumping by seconds both ways and drifting up to
/// 20%; one-way links, heavy-tailed latency, bytes flipped in flight, and
/// sometimes a split with no side holding two thirds. Safe throughout,
/// live once clocks and links heal.
#[test]
fn ci_seeds_harsh_clocks_and_links() {
    let start = std::time::Instant::now();
    let mut corrupted = 0;
    let mut runs = 0;
    for (validators, first) in [(4, 9_000), (5, 9_100), (7, 9_200)] {
        for seed in seeds(first..first + 20) {
            let scenario = Scenario::harsh_from_seed(seed, validators);
            let report = check("ci_seeds_harsh_clocks_and_links", scenario);
            corrupted += report.messages_corrupted;
            runs += 1;
        }
    }
    eprintln!(
        "{runs} harsh seeds in {:.1} s, {corrupted} messages corrupted in flight",
        start.elapsed().as_secs_f64()
    );
    assert!(
        corrupted > 0 || chosen_seed().is_some(),
        "no message was corrupted"
    );
}

/// Validator sets of every size from 1 to 31 with random weights and
/// Byzantine power up to (often exactly at) the most below a third.
#[test]
fn ci_seeds_any_size_weighted() {
    let start = std::time::Instant::now();
    let mut sizes = std::collections::BTreeSet::new();
    for seed in seeds(9_500..9_522) {
        let scenario = Scenario::any_size_from_seed(seed);
        sizes.insert(scenario.validators);
        check("ci_seeds_any_size_weighted", scenario);
    }
    eprintln!("sizes {sizes:?} in {:.1} s", start.elapsed().as_secs_f64());
}

/// Busy blocks: hundreds of signed transfers a height (conservation of
/// funds checked at the end of every run), and `wait_for_transactions` on
/// in about half the seeds.
#[test]
fn ci_seeds_busy_blocks() {
    let start = std::time::Instant::now();
    let mut committed = 0;
    let mut waiting = 0;
    for (validators, count, first) in [(4, 5, 9_700), (7, 3, 9_800)] {
        for seed in seeds(first..first + count) {
            let scenario = Scenario::busy_from_seed(seed, validators);
            waiting += u32::from(scenario.wait_for_transactions);
            let report = check("ci_seeds_busy_blocks", scenario);
            committed += report.transactions_committed;
        }
    }
    eprintln!(
        "{committed} transfers committed, {waiting} seeds waiting for transactions, in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert!(
        committed > 1_000 || chosen_seed().is_some(),
        "busy blocks committed only {committed} transfers"
    );
}

/// Adversaries inside the protocol at up to f: lock-splitting proposers
/// (different blocks to each half, precommits withheld), selective
/// senders, high-round vote spammers, replayers of old messages, twins
/// (two honest instances of one key, each with its own WAL), peers that
/// claim a tip far ahead and withhold every sync answer, and validators
/// that flood distinct valid evidence of their own double votes (blocks
/// still hold at most one piece per validator and height: the evidence
/// checker).
#[test]
fn ci_seeds_protocol_adversaries() {
    let start = std::time::Instant::now();
    let mut mixes: std::collections::BTreeMap<String, u64> = Default::default();
    let mut twin_evidence = 0;
    let (mut claims, mut withheld, mut flooded, mut flood_evidence) = (0, 0, 0, 0);
    let mut sync = SyncTotals::default();
    for (validators, count, first) in [(4, 80, 10_000), (7, 40, 10_100)] {
        for seed in seeds(first..first + count) {
            let scenario = Scenario::adversary_from_seed(seed, validators);
            for behaviour in &scenario.behaviours {
                if *behaviour != Behaviour::Honest {
                    *mixes.entry(format!("{behaviour:?}")).or_default() += 1;
                }
            }
            let twins = scenario.behaviours.contains(&Behaviour::Twin);
            let flooder = scenario.behaviours.contains(&Behaviour::EvidenceFlooder);
            let report = check("ci_seeds_protocol_adversaries", scenario);
            if twins {
                twin_evidence += report.evidence_committed;
            }
            if flooder {
                flood_evidence += report.evidence_committed;
            }
            claims += report.false_tip_claims;
            withheld += report.sync_requests_withheld;
            flooded += report.evidence_flooded;
            sync.add(&report);
        }
    }
    eprintln!(
        "adversaries {mixes:?} in {:.1} s; twins' equivocations recorded: {twin_evidence}; \
         {claims} false tip claims, {withheld} sync requests withheld; {flooded} pieces of evidence flooded, \
         {flood_evidence} evidence items in blocks in the flooders' seeds; sync: {sync:?}",
        start.elapsed().as_secs_f64()
    );
    if chosen_seed().is_none() {
        for behaviour in Behaviour::PROTOCOL_ADVERSARIES {
            assert!(
                mixes.contains_key(&format!("{behaviour:?}")),
                "no seed ran {behaviour:?}"
            );
        }
        assert!(twin_evidence > 0, "twins never got caught equivocating");
        assert!(
            claims > 0 && withheld > 0,
            "no false tip lured a sync request ({claims} claims, {withheld} withheld)"
        );
        // The false tips are claimed in status answers, chased by the
        // honest nodes' sync cores, and their peer backed off on timeout.
        assert!(
            sync.false_tip_status_claims > 0 && sync.false_tip_backoffs > 0,
            "no sync core backed off a false-tip peer: {sync:?}"
        );
        assert!(
            flooded > 0 && flood_evidence > 0,
            "no evidence flood reached a block"
        );
    }
}

/// Disk faults on honest nodes: a full disk or failing syncs stop the node
/// (nothing acknowledged is lost; it restarts when the fault clears), a
/// rotten record (a checksum mismatch, as RocksDB reports it) makes the
/// node refuse to run on it (at most f nodes stop for good), and slow
/// syncs (5-200 ms of simulated time each) keep a node busy: its output
/// leaves after them and its inputs wait.
#[test]
fn ci_seeds_disk_faults() {
    let start = std::time::Instant::now();
    let (mut stops, mut for_good, mut slow_steps, mut slow_ms, mut deferred) = (0, 0, 0, 0, 0);
    let mut runs = 0;
    for (validators, count, first) in [(4, 30, 11_000), (7, 15, 11_100)] {
        for seed in seeds(first..first + count) {
            let scenario = Scenario::disk_faults_from_seed(seed, validators);
            let report = check("ci_seeds_disk_faults", scenario);
            stops += report.disk_stops;
            for_good += report.stopped_for_good;
            slow_steps += report.slow_sync_steps;
            slow_ms += report.slow_sync_ms;
            deferred += report.inputs_deferred;
            runs += 1;
        }
    }
    eprintln!(
        "disk faults: {runs} seeds, {stops} stops, {for_good} nodes stopped for good on a rotten record, \
         {slow_steps} steps slowed by syncs ({slow_ms} ms simulated), {deferred} inputs waited for a busy node, in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    if chosen_seed().is_none() {
        assert!(
            stops > 0 && for_good > 0,
            "the disk faults never stopped a node"
        );
        assert!(
            slow_steps > 0 && deferred > 0,
            "slow syncs never delayed a step ({slow_steps} slow steps, {deferred} inputs waited)"
        );
    }
}

/// Slow syncs take simulated time: a validator whose every sync costs
/// 5-200 ms for the whole fault phase decides its heights later than the
/// others (its votes leave after its syncs, its inputs wait), while the
/// others, a quorum without it, keep deciding; once its disk is fast again
/// it catches up (liveness), and nothing conflicts (safety).
#[test]
fn slow_syncs_delay_a_node_and_the_chain_stays_safe_and_live() {
    let mut lagged = 0;
    for seed in seeds(11_500..11_504) {
        let mut scenario = Scenario::calm(seed, 4);
        scenario.fault_phase_ms = 3_000;
        scenario.slow_syncs = 1;
        let report = check(
            "slow_syncs_delay_a_node_and_the_chain_stays_safe_and_live",
            scenario,
        );
        assert!(report.slow_sync_steps > 0, "seed {seed}: no step was slow");
        assert!(report.inputs_deferred > 0, "seed {seed}: no input waited");
        // The slow node decided some height later than every other node did.
        let later = report.decide_times_ms[0].keys().any(|height| {
            let times: Vec<u64> = report
                .decide_times_ms
                .iter()
                .filter_map(|times| times.get(height).copied())
                .collect();
            times.len() == 4 && times.iter().max() > Some(&(times.iter().min().unwrap() + 5))
        });
        lagged += u32::from(later);
    }
    assert!(
        chosen_seed().is_some() || lagged > 0,
        "no slow node decided later than the others"
    );
}

/// State sync in the simulator: in these seeds one or two crashes of
/// honest validators lose the node's whole store; it restarts empty, takes
/// a snapshot of another honest node's committed state (the real
/// `cairn_store` snapshot code: manifest, chunks, `check_chunk`,
/// `restore_begin/chunk/finish`, the evidence window through
/// `restore_history`), moved through simulated time, verified against the
/// trusted header, then catches up and follows the tip, signing through
/// its sign state. Its state after the restore (root, every account,
/// staking) equals the provider's and every honest node's at that height;
/// every other checker holds for it afterwards.
#[test]
fn ci_seeds_snapshot_restores() {
    let start = std::time::Instant::now();
    let (mut restores, mut compared, mut lost, mut restarts, mut runs) = (0, 0, 0, 0, 0);
    let mut below_signed = 0;
    let mut heights = Vec::new();
    for (validators, count, first) in [(4, 12, 12_000), (7, 6, 12_100)] {
        for seed in seeds(first..first + count) {
            let scenario = Scenario::snapshot_restore_from_seed(seed, validators);
            let report = check("ci_seeds_snapshot_restores", scenario);
            restores += report.snapshot_restores;
            compared += report.states_compared;
            lost += report.snapshot_requests_lost;
            restarts += report.snapshot_restarts;
            below_signed += report.snapshot_restores_below_signed;
            heights.extend(report.snapshot_heights);
            runs += 1;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    eprintln!(
        "snapshot restores: {runs} seeds in {seconds:.1} s ({:.1} seeds/s), {restores} restores at heights {heights:?}, \
         {compared} states compared across nodes, {lost} snapshot requests lost and asked again, {restarts} restores started over after a crash, \
         {below_signed} restores below a height the node had signed at",
        runs as f64 / seconds
    );
    if chosen_seed().is_none() {
        assert!(
            restores as usize >= runs,
            "only {restores} restores in {runs} seeds"
        );
        assert!(compared > 0, "no state was compared");
    }
}

/// The sign state is what keeps a restored validator honest: without it
/// (the test-only switch), a node restored below a height it had signed
/// at signs again there, and the no-double-sign checker catches it.
#[test]
fn a_restore_without_the_sign_state_is_caught_by_no_double_sign() {
    for seed in seeds(12_200..12_300) {
        let mut scenario = Scenario::snapshot_restore_from_seed(seed, 4);
        scenario.restore_without_sign_state = true;
        let report = run(scenario);
        if let Some(violation) = report
            .violations
            .iter()
            .find(|violation| violation.contains("signed two different"))
        {
            eprintln!("seed {seed} is caught: {violation}");
            return;
        }
    }
    assert!(
        chosen_seed().is_some(),
        "no restore without its sign state was caught signing twice"
    );
}

/// A minority cut off for 20 s (dozens of rounds with growing timeouts on
/// its side, hundreds of heights on the other) catches up after the heal,
/// and nothing conflicts meanwhile.
#[test]
fn a_minority_cut_off_for_many_rounds_catches_up_after_the_heal() {
    for (validators, first) in [(4, 6_000), (7, 6_100)] {
        for seed in seeds(first..first + 6) {
            let scenario = Scenario::long_partition_from_seed(seed, validators, 20_000);
            check(
                "a_minority_cut_off_for_many_rounds_catches_up_after_the_heal",
                scenario,
            );
        }
    }
}

/// Unequal voting powers, n = 4 to 7 (3f+1, 3f+2, 3f+3), Byzantine power
/// up to (often exactly at) the most below a third.
#[test]
fn ci_seeds_weighted_validators() {
    let start = std::time::Instant::now();
    let mut at_boundary = 0;
    for validators in 4..=7 {
        let first = 4_000 + 100 * validators as u64;
        for seed in seeds(first..first + 25) {
            let scenario = Scenario::weighted_from_seed(seed, validators);
            let byzantine: u64 = scenario
                .behaviours
                .iter()
                .zip(&scenario.powers)
                .filter(|(behaviour, _)| **behaviour != Behaviour::Honest)
                .map(|(_, power)| power)
                .sum();
            let total: u64 = scenario.powers.iter().sum();
            assert!(3 * byzantine < total, "{}", scenario.describe());
            // The most Byzantine power below a third of the total: one unit
            // more (3(B+1) >= B+1+H) and safety is no longer promised.
            if byzantine > 0 && byzantine == (total - byzantine - 1) / 2 {
                at_boundary += 1;
            }
            check("ci_seeds_weighted_validators", scenario);
        }
    }
    eprintln!(
        "100 weighted seeds in {:.1} s, {at_boundary} with Byzantine power at the bound",
        start.elapsed().as_secs_f64()
    );
    assert!(at_boundary > 0, "no seed reached the boundary");
}

/// What the staking seeds did, summed over seeds.
#[derive(Default)]
struct StakingTotals {
    seeds: u64,
    with_set_changes: u64,
    distinct_sets: u64,
    report: Report,
}

impl StakingTotals {
    fn add(&mut self, report: &Report) {
        self.seeds += 1;
        if report.validator_sets_seen.len() >= 2 {
            self.with_set_changes += 1;
        }
        self.distinct_sets += report.validator_sets_seen.len() as u64;
        let total = &mut self.report;
        total.staking_events_fired += report.staking_events_fired;
        total.staking_events_skipped += report.staking_events_skipped;
        total.staking_events_during_faults += report.staking_events_during_faults;
        total.staking_transactions_committed += report.staking_transactions_committed;
        total.joins += report.joins;
        total.removals += report.removals;
        total.jailings += report.jailings;
        total.rotations += report.rotations;
        total.locked_validator_unbonds += report.locked_validator_unbonds;
        total.key_swaps += report.key_swaps;
        total.set_changes += report.set_changes;
        total.staking_room_joins += report.staking_room_joins;
        for (kind, count) in &report.staking_kinds {
            *total.staking_kinds.entry(kind.clone()).or_default() += count;
        }
        for (kind, count) in &report.staking_kinds_skipped {
            *total.staking_kinds_skipped.entry(kind.clone()).or_default() += count;
        }
    }
}

/// Staking while the chain runs, every validator a real host: candidates
/// bond and join, validators unbond part or all of their stake (often the
/// one holding a lock), rotate their keys (their node restarts with the
/// new one), get jailed by evidence of a double vote (injected, or their
/// own as Byzantine double voters) and unjail, every 2 to 4 heights,
/// during crashes and partitions and after the heal. Agreement, validity,
/// the certificate checks (each against the set its header names, the
/// set chain through next_validator_set_hash) and liveness hold, and
/// honest validators keep more than two thirds of every set.
fn staking_seed_set(test: &str, validators: usize, first: u64, count: u64) {
    let start = std::time::Instant::now();
    let mut totals = StakingTotals::default();
    for seed in seeds(first..first + count) {
        let report = check(test, Scenario::staking_from_seed(seed, validators));
        totals.add(&report);
    }
    let total = &totals.report;
    eprintln!(
        "staking, n = {validators}: {} seeds in {:.1} s, {} with set changes, {} distinct signing sets; \
         {} events fired ({:?}; {} of them joins to make room; {} during crashes or partitions), {} skipped ({:?}), {} staking transactions committed; \
         signing sets changed {} times: {} joins, {} removals, {} jailings, {} rotations ({} key swaps); \
         {} unbonds of a validator holding a lock",
        totals.seeds,
        start.elapsed().as_secs_f64(),
        totals.with_set_changes,
        totals.distinct_sets,
        total.staking_events_fired,
        total.staking_kinds,
        total.staking_room_joins,
        total.staking_events_during_faults,
        total.staking_events_skipped,
        total.staking_kinds_skipped,
        total.staking_transactions_committed,
        total.set_changes,
        total.joins,
        total.removals,
        total.jailings,
        total.rotations,
        total.key_swaps,
        total.locked_validator_unbonds,
    );
    if chosen_seed().is_some() {
        return;
    }
    assert!(
        totals.with_set_changes * 10 >= totals.seeds * 9,
        "only {} of {} seeds changed the set",
        totals.with_set_changes,
        totals.seeds
    );
    assert!(total.joins > 0, "no bond joined a set");
    assert!(total.removals > 0, "no full unbond removed a validator");
    assert!(total.jailings > 0, "no validator was jailed");
    assert!(total.rotations > 0, "no rotated key signed");
    assert!(
        total.locked_validator_unbonds > 0,
        "no validator holding a lock unbonded"
    );
    assert!(
        total.staking_events_during_faults > 0,
        "no event during a fault"
    );
}

#[test]
fn ci_seeds_staking_4_validators() {
    staking_seed_set("ci_seeds_staking_4_validators", 4, 8_000, 40);
}

#[test]
fn ci_seeds_staking_7_validators() {
    staking_seed_set("ci_seeds_staking_7_validators", 7, 8_100, 25);
}

/// The staking checker can fail: with the test-only switch that lets the
/// schedule ignore the honest power, unbonds and jailings of honest
/// validators beside a silent one leave a set where the honest keys hold
/// two thirds or less, and the checker says so.
#[test]
fn a_schedule_that_ignores_the_honest_power_is_caught() {
    use cairn_tests::scenario::{StakingEvent, StakingKind};
    for seed in seeds(8_500..8_520) {
        let mut scenario = Scenario::staking_from_seed(seed, 4);
        scenario.behaviours = vec![
            Behaviour::Honest,
            Behaviour::Honest,
            Behaviour::Honest,
            Behaviour::Silent,
        ];
        if let Some(plan) = scenario.staking.as_mut() {
            plan.unguarded = true;
            plan.candidates = 1;
            plan.events = [
                StakingKind::Join,
                StakingKind::Leave,
                StakingKind::Jail,
                StakingKind::Leave,
            ]
            .into_iter()
            .map(|kind| StakingEvent { kind, fault: None })
            .collect();
        }
        let report = run(scenario);
        if report
            .violations
            .iter()
            .any(|violation| violation.contains("staking schedule"))
        {
            eprintln!("seed {seed} was caught: {:?}", report.violations);
            return;
        }
    }
    assert!(
        chosen_seed().is_some(),
        "no unguarded schedule broke the honest power"
    );
}

#[test]
#[ignore = "soak: run on demand with CAIRN_SIM_SOAK_SEEDS"]
fn staking_soak() {
    let count: u64 = std::env::var("CAIRN_SIM_SOAK_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let first: u64 = std::env::var("CAIRN_SIM_SOAK_FIRST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut totals = StakingTotals::default();
    for seed in first..first + count {
        let validators = [4, 7, 10][(seed % 3) as usize];
        totals.add(&check(
            "staking_soak",
            Scenario::staking_from_seed(seed, validators),
        ));
    }
    eprintln!(
        "staking soak: {} seeds from {first}, {} with set changes",
        totals.seeds, totals.with_set_changes
    );
}

#[test]
fn ci_seeds_10_validators() {
    seed_set("ci_seeds_10_validators", 10, 3_000, 50);
}

#[test]
fn replay_one_seed() {
    let Ok(seed) = std::env::var("CAIRN_SIM_SEED") else {
        return;
    };
    let seed: u64 = seed.parse().expect("CAIRN_SIM_SEED is a number");
    let validators: usize = std::env::var("CAIRN_SIM_VALIDATORS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let scenario = Scenario::from_seed(seed, validators);
    eprintln!("{}", scenario.describe());
    let report = check("replay_one_seed", scenario);
    eprintln!("{report:#?}");
}

/// A soak seed slower than this is named in the output.
const SOAK_SLOW_SEED: std::time::Duration = std::time::Duration::from_secs(30);

#[test]
#[ignore = "soak: run on demand with CAIRN_SIM_SOAK_SEEDS"]
fn soak() {
    let count: u64 = std::env::var("CAIRN_SIM_SOAK_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let first: u64 = std::env::var("CAIRN_SIM_SOAK_FIRST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
    // CAIRN_SIM_SOAK_MIX=<name> runs one mix only.
    const MIXES: [(&str, u64); 9] = [
        ("plain", 0),
        ("weighted", 2),
        ("any-size", 3),
        ("harsh", 4),
        ("adversaries", 5),
        ("disk", 6),
        ("snapshot", 7),
        ("busy", 8),
        ("all", u64::MAX),
    ];
    let only_mix = std::env::var("CAIRN_SIM_SOAK_MIX").ok().map(|name| {
        MIXES
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, mix)| *mix)
            .unwrap_or_else(|| {
                panic!(
                    "CAIRN_SIM_SOAK_MIX={name} is not a mix; use one of {:?}",
                    MIXES.map(|(known, _)| known)
                )
            })
    });
    let only_mix = only_mix.filter(|mix| *mix != u64::MAX);
    eprintln!(
        "soak: {count} seeds from {first}, {}",
        match only_mix {
            Some(_) => "one fault mix",
            None => "every fault mix in turn",
        }
    );
    let start = std::time::Instant::now();
    for offset in 0..count {
        let seed = first.wrapping_add(offset);
        let validators = [4, 7, 10][(seed % 3) as usize];
        let mix = match only_mix {
            Some(mix) => mix,
            None => offset % 9,
        };
        let scenario = match mix {
            0 | 1 => Scenario::from_seed(seed, validators),
            2 => Scenario::weighted_from_seed(seed, 4 + (seed % 4) as usize),
            3 => Scenario::any_size_from_seed(seed),
            4 => Scenario::harsh_from_seed(seed, validators),
            5 => Scenario::adversary_from_seed(seed, validators),
            6 => Scenario::disk_faults_from_seed(seed, validators),
            7 => Scenario::snapshot_restore_from_seed(seed, validators),
            _ => Scenario::busy_from_seed(seed, 4),
        };
        let description = scenario.describe();
        let seed_started = std::time::Instant::now();
        let report = check("soak", scenario);
        // A seed far slower than the rest is worth a look (one that stopped
        // simulated time ran to the event cap for minutes): say which.
        if seed_started.elapsed() > SOAK_SLOW_SEED {
            eprintln!(
                "soak: seed {seed} took {:.0} s ({} events, heights {:?}): {description}",
                seed_started.elapsed().as_secs_f64(),
                report.events,
                report.heights
            );
        }
        if (offset + 1) % 1_000 == 0 {
            eprintln!(
                "soak: {} seeds in {:.0} s",
                offset + 1,
                start.elapsed().as_secs_f64()
            );
        }
    }
    eprintln!(
        "soak: {count} seeds, no violation, in {:.0} s",
        start.elapsed().as_secs_f64()
    );
}

/// Scale: 100 validators, equal and weighted powers, with the usual fault
/// mix; reports the simulated heights and the wall time.
#[test]
#[ignore = "scale: run on demand (about a minute)"]
fn scale_100_validators() {
    for weighted in [false, true] {
        let start = std::time::Instant::now();
        let scenario = if weighted {
            Scenario::weighted_from_seed(100, 100)
        } else {
            Scenario::from_seed(100, 100)
        };
        let report = check("scale_100_validators", scenario);
        eprintln!(
            "100 validators ({}): heights {:?}, simulated {} ms, {} events, wall {:.1} s",
            if weighted { "weighted" } else { "equal" },
            report.heights.iter().max(),
            report.end_ms,
            report.events,
            start.elapsed().as_secs_f64()
        );
    }
}

/// The simulator's own speed: seeds per second of the plain mix at 4, 10
/// and 31 validators, one thread. Run on demand (about two minutes):
/// `cargo test --workspace --test simulation seeds_per_second -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement: run on demand"]
fn seeds_per_second() {
    for (validators, count) in [(4, 60), (10, 20), (31, 6)] {
        let start = std::time::Instant::now();
        let mut heights = 0;
        for seed in 40_000..40_000 + count {
            let report = check("seeds_per_second", Scenario::from_seed(seed, validators));
            heights += report.heights.iter().max().copied().unwrap_or(0);
        }
        let wall = start.elapsed().as_secs_f64();
        eprintln!(
            "{validators} validators: {count} seeds in {wall:.1} s, {:.2} seeds/s ({heights} heights in all)",
            count as f64 / wall
        );
    }
}

#[test]
fn a_seed_replays_the_same_trace() {
    for validators in [4, 7] {
        let scenario = Scenario::from_seed(42, validators);
        let first = run(scenario.clone());
        let second = run(scenario);
        assert_eq!(first.trace_hash, second.trace_hash);
        assert_eq!(first.heights, second.heights);
        assert_eq!(first.end_ms, second.end_ms);
    }
    assert_ne!(
        run(Scenario::from_seed(42, 4)).trace_hash,
        run(Scenario::from_seed(43, 4)).trace_hash
    );
    // With staking events (key swaps, injected evidence, faults on events).
    let scenario = Scenario::staking_from_seed(42, 4);
    let first = run(scenario.clone());
    let second = run(scenario);
    assert!(first.set_changes > 0);
    assert_eq!(first.trace_hash, second.trace_hash);
    assert_eq!(first.heights, second.heights);
    assert_eq!(first.validator_sets_seen, second.validator_sets_seen);
    // With slow syncs (simulated time inside a step, inputs that wait).
    let scenario = (11_000..11_020)
        .map(|seed| Scenario::disk_faults_from_seed(seed, 4))
        .find(|scenario| scenario.slow_syncs > 0)
        .expect("a disk-fault seed with slow syncs");
    let first = run(scenario.clone());
    let second = run(scenario);
    assert!(first.slow_sync_steps > 0);
    assert_eq!(first.trace_hash, second.trace_hash);
    assert_eq!(first.heights, second.heights);
    assert_eq!(first.slow_sync_ms, second.slow_sync_ms);
    // With a snapshot restore (a sign-state file, parts of the state
    // sync moving through simulated time).
    let scenario = Scenario::snapshot_restore_from_seed(12_001, 4);
    let first = run(scenario.clone());
    let second = run(scenario);
    assert!(first.snapshot_restores > 0);
    assert_eq!(first.trace_hash, second.trace_hash);
    assert_eq!(first.snapshot_heights, second.snapshot_heights);
}

#[test]
fn four_calm_validators_decide_within_three_message_delays_plus_timeout_commit() {
    for timeout_commit_ms in [0, 10] {
        let mut scenario = Scenario::calm(7, 4);
        scenario.timeout_commit_ms = timeout_commit_ms;
        let report = check(
            "four_calm_validators_decide_within_three_message_delays_plus_timeout_commit",
            scenario,
        );
        let one_way_ms = 1;
        for (node, times) in report.decide_times_ms.iter().enumerate() {
            assert!(
                times.len() >= 10,
                "node {node} decided {} heights",
                times.len()
            );
            let mut previous_ms = 0;
            for (height, at_ms) in times {
                let bound = if *height == 1 {
                    3 * one_way_ms
                } else {
                    previous_ms + timeout_commit_ms + 3 * one_way_ms
                };
                assert!(
                    *at_ms <= bound,
                    "node {node} decided height {height} at {at_ms} ms, bound {bound} ms"
                );
                previous_ms = *at_ms;
            }
        }
    }
}

fn with_byzantine(seed: u64, validators: usize, behaviour: Behaviour) -> Scenario {
    let mut scenario = Scenario::from_seed(seed, validators);
    let faulty = (validators - 1) / 3;
    scenario.behaviours = vec![Behaviour::Honest; validators];
    for slot in scenario.behaviours.iter_mut().rev().take(faulty) {
        *slot = behaviour;
    }
    scenario
}

#[test]
fn every_byzantine_behaviour_at_f() {
    for (index, behaviour) in Behaviour::BYZANTINE.into_iter().enumerate() {
        let first = 500 + 10 * index as u64;
        for seed in seeds(first..first + 6) {
            check(
                "every_byzantine_behaviour_at_f",
                with_byzantine(seed, [4, 7][seed as usize % 2], behaviour),
            );
        }
    }
}

/// Issue 13's adversaries at f, in every seed: a peer claiming a tip a
/// thousand heights or more ahead that answers no sync request (honest
/// nodes behind still catch up from the others), and a validator flooding
/// distinct valid evidence of its own double votes (it is jailed; no block
/// holds two pieces for one validator and height, and the run stays live).
#[test]
fn false_tips_and_evidence_floods_at_f() {
    let (mut withheld, mut flooded, mut recorded) = (0, 0, 0);
    let mut sync = SyncTotals::default();
    for (index, behaviour) in [Behaviour::FalseTip, Behaviour::EvidenceFlooder]
        .into_iter()
        .enumerate()
    {
        let first = 12_400 + 10 * index as u64;
        for seed in seeds(first..first + 6) {
            let report = check(
                "false_tips_and_evidence_floods_at_f",
                with_byzantine(seed, [4, 7][seed as usize % 2], behaviour),
            );
            withheld += report.sync_requests_withheld;
            flooded += report.evidence_flooded;
            sync.add(&report);
            if behaviour == Behaviour::EvidenceFlooder {
                recorded += report.evidence_committed;
            }
        }
    }
    eprintln!("{withheld} sync requests withheld, {flooded} pieces of evidence flooded, {recorded} recorded in blocks; sync: {sync:?}");
    assert!(
        chosen_seed().is_some() || (withheld > 0 && flooded > 0 && recorded > 0),
        "the adversaries did not act ({withheld} withheld, {flooded} flooded, {recorded} recorded)"
    );
    assert!(
        chosen_seed().is_some() || sync.false_tip_backoffs > 0,
        "no sync core backed off the false-tip peer: {sync:?}"
    );
}

#[test]
fn equivocations_end_up_as_evidence_in_blocks() {
    let mut committed = 0;
    for seed in seeds(700..706) {
        let mut scenario = with_byzantine(seed, 4, Behaviour::DoubleVoter);
        scenario.drop_per_mille = 0;
        committed +=
            check("equivocations_end_up_as_evidence_in_blocks", scenario).evidence_committed;
    }
    assert!(
        chosen_seed().is_some() || committed > 0,
        "no evidence was committed"
    );
}

#[test]
fn crashes_restore_locks_and_never_double_sign() {
    let mut restarts_checked = 0;
    let mut crashes_mid_step = 0;
    for seed in seeds(900..920) {
        let mut scenario = Scenario::from_seed(seed, [4, 7][seed as usize % 2]);
        scenario.crashes = 4;
        let report = check("crashes_restore_locks_and_never_double_sign", scenario);
        restarts_checked += report.restarts_checked;
        crashes_mid_step += report.crashes_mid_step;
    }
    assert!(
        chosen_seed().is_some() || restarts_checked >= 10,
        "only {restarts_checked} restarts resumed the height they crashed in"
    );
    // Crashes inside a store write (after unsynced WAL appends, before
    // their sync) happen too, and never lead to a second, different vote.
    assert!(
        chosen_seed().is_some() || crashes_mid_step >= 10,
        "only {crashes_mid_step} crashes struck in the middle of a step"
    );
    eprintln!(
        "{restarts_checked} restarts resumed mid-height with their round state intact; \
         {crashes_mid_step} crashes struck in the middle of a step"
    );
}

/// Searches `seeds` for a run of `scenario_for(seed)` in which the honest
/// validators' hosts are broken by `faults` and `checker` (a phrase of its
/// violation message) reports it. Returns the seed that proves the checker
/// can fail; panics, naming the fault, if none did (a mutation no checker
/// catches is a missing checker).
fn mutation_is_caught(
    name: &'static str,
    apply: fn(&mut SimHost),
    checker: &str,
    seeds_to_try: std::ops::Range<u64>,
    scenario_for: impl Fn(u64) -> Scenario,
) {
    let tried = seeds(seeds_to_try.clone());
    for seed in &tried {
        let mut scenario = scenario_for(*seed);
        scenario.honest_host_fault = Some(HostFault { name, apply });
        let report = run(scenario);
        if let Some(violation) = report
            .violations
            .iter()
            .find(|violation| violation.contains(checker))
        {
            eprintln!("{name}: seed {seed} is caught by the {checker:?} checker: {violation}");
            return;
        }
    }
    assert!(
        chosen_seed().is_some(),
        "{name}: no checker reported {checker:?} in seeds {seeds_to_try:?}"
    );
}

/// The honest hosts break the rules `rules` switches on.
fn break_rules(host: &mut SimHost, rules: RoundRules) {
    host.set_faults(HostFaults {
        rules,
        ..HostFaults::default()
    });
}

/// A lossy 4-validator run with an equivocating proposer, no crashes.
fn lossy_with_equivocator(seed: u64) -> Scenario {
    let mut scenario = Scenario::from_seed(seed, 4);
    scenario.behaviours = vec![
        Behaviour::Honest,
        Behaviour::Honest,
        Behaviour::Honest,
        Behaviour::EquivocatingProposer,
    ];
    scenario.drop_per_mille = 300;
    scenario.timeout_commit_ms = 20;
    scenario.fault_phase_ms = 10_000;
    scenario.partitions = 0;
    scenario.crashes = 0;
    scenario
}

/// A 4-validator run, all honest, with many crashes while the network is
/// lossy (restarts replay the WAL mid-height).
fn crashing(seed: u64) -> Scenario {
    let mut scenario = Scenario::from_seed(seed, 4);
    scenario.behaviours = vec![Behaviour::Honest; 4];
    scenario.drop_per_mille = 200;
    scenario.crashes = 12;
    scenario.fault_phase_ms = 6_000;
    scenario.partitions = 0;
    scenario
}

/// The agreement checker can fail: with honest validators ignoring their
/// locks (L22/L28/L36), an equivocating proposer and a lossy network split
/// the honest nodes' decisions.
#[test]
fn mutation_ignoring_the_lock_is_caught_by_agreement() {
    mutation_is_caught(
        "ignore the lock",
        |host| {
            break_rules(
                host,
                RoundRules {
                    ignore_lock: true,
                    ..RoundRules::default()
                },
            )
        },
        "agreement",
        300..700,
        // Lossier than the other mutations' network: the catch-up the
        // node does (decisions gossiped, block sync) spreads a decision
        // fast enough over a 30 % lossy network that honest nodes rarely
        // get to decide anything else, locks or not.
        |seed| {
            let mut scenario = lossy_with_equivocator(seed);
            scenario.drop_per_mille = 700;
            scenario
        },
    );
}

/// The persist-before-send checker can fail: a host that sends its votes
/// without syncing the WAL is caught at its first vote.
#[test]
fn mutation_skipping_the_wal_sync_is_caught_by_persist_before_send() {
    mutation_is_caught(
        "skip the WAL sync before send",
        |host| {
            host.set_faults(HostFaults {
                skip_wal_sync: true,
                ..HostFaults::default()
            })
        },
        "before its WAL held it",
        0..20,
        |seed| Scenario::from_seed(seed, 4),
    );
}

/// The no-double-sign checker can fail: a validator whose replay forgets
/// its own votes signs a second, different vote after a crash.
#[test]
fn mutation_forgetting_own_votes_on_replay_is_caught_by_no_double_sign() {
    mutation_is_caught(
        "forget own votes on replay",
        |host| {
            break_rules(
                host,
                RoundRules {
                    forget_own_votes_on_replay: true,
                    ..RoundRules::default()
                },
            )
        },
        "signed two different",
        0..300,
        crashing,
    );
}

/// The restart checker (a restarted validator resumes its height with the
/// round, step, lock and valid value it had) can fail: a replay that drops
/// the lock is caught.
#[test]
fn mutation_forgetting_the_lock_on_replay_is_caught_by_the_restart_check() {
    mutation_is_caught(
        "forget the lock on replay",
        |host| {
            break_rules(
                host,
                RoundRules {
                    forget_lock_on_replay: true,
                    ..RoundRules::default()
                },
            )
        },
        "restarted with round state",
        0..300,
        crashing,
    );
}

/// Seeds the soak found, kept: 722013 (disk faults: every validator that
/// held the polka of a height restarted or stopped for good, and the
/// height took nil prevotes forever, before the WAL kept the polka; it
/// passes with the real catch-up too, so the consensus test
/// `a_polka_survives_a_restart_of_every_validator_that_saw_it` keeps the
/// stall itself) and 770556 (snapshot restores: a node one block behind
/// waited 2 s for a silent peer's status; both honest holders of that
/// block were wiped meanwhile, and once restored they stayed silent in
/// round 0 of a height whose round their sign state had passed) and 780536
/// (adversaries: block sync committed a validator's height before its
/// driver moved on, the commit deleted that height's WAL, and the
/// driver's re-send of its own messages left without the WAL holding
/// them; a committed height's messages are no longer sent) and 802176
/// (snapshot restores: a validator wiped after it precommitted lost the
/// prevote its round still lacked; its sign state now keeps the last
/// prevote beside the last message, and both are signed again) and 952329
/// (snapshot restores: a node restored at height 8 with a signing floor at
/// height 11 reached the prevote step of height 9 without signing, as it
/// must, and replayed to the round's start after a crash; the restart
/// check now leaves out nodes that cannot sign at the height).
#[test]
fn soak_seeds_that_failed_once() {
    check(
        "soak_seeds_that_failed_once",
        Scenario::disk_faults_from_seed(722_013, 4),
    );
    check(
        "soak_seeds_that_failed_once",
        Scenario::snapshot_restore_from_seed(770_556, 4),
    );
    check(
        "soak_seeds_that_failed_once",
        Scenario::adversary_from_seed(780_536, 10),
    );
    check(
        "soak_seeds_that_failed_once",
        Scenario::snapshot_restore_from_seed(952_329, 4),
    );
    check(
        "soak_seeds_that_failed_once",
        Scenario::snapshot_restore_from_seed(802_176, 4),
    );
}

/// The restart checker can fail on the polka too: a replay that leaves
/// out the prevotes behind the valid value (as the WAL did before it kept
/// them; the soak's seed 722013 then stalled a height for good, and
/// `ledger/consensus/tests/driver.rs` keeps that stall as a test) is
/// caught at the restart.
#[test]
fn mutation_forgetting_the_polka_on_replay_is_caught_by_the_restart_check() {
    mutation_is_caught(
        "forget the polka on replay",
        |host| {
            break_rules(
                host,
                RoundRules {
                    forget_polka_on_replay: true,
                    ..RoundRules::default()
                },
            )
        },
        "without the polka behind it",
        0..300,
        crashing,
    );
}

/// The liveness checker can fail: without L65 a validator whose round ends
/// without a decision never starts the next round.
#[test]
fn mutation_disabling_the_precommit_timeout_is_caught_by_liveness() {
    mutation_is_caught(
        "no precommit timeout (L65)",
        |host| {
            break_rules(
                host,
                RoundRules {
                    no_precommit_timeout: true,
                    ..RoundRules::default()
                },
            )
        },
        "liveness",
        0..100,
        lossy_with_equivocator,
    );
}

/// Without L55 a validator left behind in an old round joins the others
/// only through its own timeouts. Liveness does not catch it (Byzantine
/// validators behave once the faults heal, and the others then decide
/// without the laggard), so a conformance checker does: no honest driver
/// stays below a round whose senders hold more than a third of the power.
#[test]
fn mutation_disabling_the_round_skip_is_caught_by_the_round_skip_check() {
    mutation_is_caught(
        "no round skip (L55)",
        |host| {
            break_rules(
                host,
                RoundRules {
                    no_round_skip: true,
                    ..RoundRules::default()
                },
            )
        },
        "round skip",
        0..100,
        lossy_with_equivocator,
    );
}

/// Honest hosts that accept a block whose header claims a wrong state root
/// vote for the bad proposer's block and decide it; the store's commit
/// refuses an outcome whose root is not the header's, so the node stops
/// and the "honest host failed" checker names it (the validity checker,
/// which compares each decided header with the ledger's root, stands
/// behind that guard).
#[test]
fn mutation_accepting_a_wrong_state_root_is_caught_at_commit() {
    mutation_is_caught(
        "accept a wrong state root",
        |host| {
            host.set_faults(HostFaults {
                accept_wrong_state_root: true,
                ..HostFaults::default()
            })
        },
        "does not match: it yields state root",
        0..40,
        |seed| {
            let mut scenario = Scenario::from_seed(seed, 4);
            scenario.behaviours = vec![
                Behaviour::Honest,
                Behaviour::Honest,
                Behaviour::Honest,
                Behaviour::BadProposer,
            ];
            scenario
        },
    );
}

/// Seed 700228 of the any-size mix is one validator with `timeout_commit`
/// 0: it decides with its own votes, and its heights took no simulated
/// time, so the run never left 0 ms and ran to the event cap (20 million
/// events, gigabytes). Its set now gets a commit timeout: simulated time
/// passes, the fault phase ends and the run finishes on liveness.
#[test]
fn a_validator_deciding_alone_lets_simulated_time_pass() {
    let scenario = Scenario::any_size_from_seed(700_228);
    assert_eq!(scenario.validators, 1);
    assert!(scenario.timeout_commit_ms > 0, "{}", scenario.describe());
    let report = check(
        "a_validator_deciding_alone_lets_simulated_time_pass",
        scenario,
    );
    assert!(report.events < 1_000_000, "{} events", report.events);
    assert!(
        report.heights.iter().all(|height| *height >= 10),
        "{:?}",
        report.heights
    );
}
