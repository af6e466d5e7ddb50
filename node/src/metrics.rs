//! Prometheus metrics of the node, rendered by hand in the text exposition
//! format (version 0.0.4) on the metrics listener's `/metrics`.
//!
//! Updated by the commit path and the mempool admission path of
//! [`crate::ledger::Ledger`]; the network part sets the peer and sync
//! gauges. At each scrape it also reads the p2p layer's counters, the
//! process (`/proc/self`: resident memory, CPU time, open descriptors) and
//! the size of the data directory.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering},
    sync::Mutex,
};

/// Upper bounds (seconds) of the `cairn_block_interval_seconds` buckets:
/// under load blocks come every 30-50 ms, so they start at 5 ms.
pub const BLOCK_INTERVAL_BUCKETS_SECONDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Upper bounds (milliseconds) of the `cairn_consensus_step_seconds`
/// buckets.
pub const STEP_BUCKETS_MS: [u64; 13] = [
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000,
];

/// The consensus steps timed, in the order of a round.
pub const CONSENSUS_STEPS: [&str; 3] = ["propose", "prevote", "precommit"];

/// Most directory entries walked to size the data directory at a scrape.
pub const DATA_DIR_ENTRIES_MAX: usize = 100_000;

/// Clock ticks per second of `/proc/self/stat` times (`USER_HZ`, 100 on
/// every Linux architecture this runs on).
const PROC_CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// Every rejection reason the mempool reports (see
/// [`crate::mempool::Rejection::code`]); the label set is bounded by it.
pub const REJECTION_REASONS: [&str; 27] = [
    "too_large",
    "malformed_transaction",
    "wrong_chain",
    "memo_too_long",
    "overflow",
    "duplicate",
    "bad_nonce",
    "nonce_too_far",
    "insufficient_funds",
    "bad_signature",
    "mempool_full",
    "catching_up",
    "not_operator",
    "key_in_use",
    "below_min_self_stake",
    "insufficient_stake",
    "still_jailed",
    "not_jailed",
    "candidates_full",
    "unbonding_full",
    "bad_staking_transaction",
    "replacement_underpriced",
    "fee_too_low",
    "unknown_sender",
    "below_existential_deposit",
    "sender_pending_full",
    "peer_rate_limited",
];

/// How the rebuild of a compact proposal ended, the labels of
/// `cairn_compact_proposals_total{outcome}`: every transaction was in the
/// mempool; some were fetched by hash; the whole block was fetched; given
/// up (nobody supplied it in time).
pub const COMPACT_PROPOSAL_OUTCOMES: [&str; 4] = [
    "from_mempool",
    "fetched_transactions",
    "fetched_block",
    "given_up",
];

/// The node's metrics.
#[derive(Default)]
pub struct Metrics {
    height: AtomicU64,
    rounds: AtomicU64,
    block_txs: AtomicU64,
    committed_txs: AtomicU64,
    mempool_size: AtomicU64,
    mempool_bytes: AtomicU64,
    mempool_evicted: AtomicU64,
    /// `cairn_mempool_dropped_total{reason}`, in the order of
    /// [`crate::mempool::DropCounts::by_reason`].
    mempool_dropped: [AtomicU64; 4],
    /// `cairn_mempool_refused_before_signature_total`.
    refused_before_signature: AtomicU64,
    rejected: [AtomicU64; REJECTION_REASONS.len()],
    /// `cairn_compact_proposals_total{outcome}`, in the order of
    /// [`COMPACT_PROPOSAL_OUTCOMES`].
    compact_proposals: [AtomicU64; COMPACT_PROPOSAL_OUTCOMES.len()],
    /// `cairn_compact_proposal_fetched_txs_total`.
    compact_fetched_txs: AtomicU64,
    peers: AtomicU64,
    sync_behind: AtomicU64,
    interval: Mutex<Histogram>,
    signed_commits: AtomicU64,
    missed_signatures: AtomicU64,
    validator_set_size: AtomicU64,
    validator_set_power: AtomicU64,
    validator_in_set: AtomicU64,
    steps: Mutex<[StepHistogram; CONSENSUS_STEPS.len()]>,
    p2p: Mutex<Option<cairn_p2p::Metrics>>,
    data_dir: Mutex<Option<std::path::PathBuf>>,
}

#[derive(Clone, Copy, Default)]
struct StepHistogram {
    buckets: [u64; STEP_BUCKETS_MS.len()],
    count: u64,
    sum_ms: u64,
}

#[derive(Default)]
struct Histogram {
    buckets: [u64; BLOCK_INTERVAL_BUCKETS_SECONDS.len()],
    count: u64,
    sum_seconds: f64,
}

impl Metrics {
    /// Sets `cairn_consensus_height`.
    pub fn set_height(&self, height: u64) {
        self.height.store(height, Ordering::Relaxed);
    }

    /// Records a committed block: height, the round it was decided in,
    /// its transactions and the time since its parent.
    pub fn record_commit(&self, height: u64, round: u32, transactions: usize, interval_ms: u64) {
        self.set_height(height);
        self.rounds.store(u64::from(round), Ordering::Relaxed);
        self.block_txs.store(transactions as u64, Ordering::Relaxed);
        self.committed_txs
            .fetch_add(transactions as u64, Ordering::Relaxed);
        let seconds = interval_ms as f64 / 1000.0;
        let mut histogram = self
            .interval
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (bucket, bound) in histogram
            .buckets
            .iter_mut()
            .zip(BLOCK_INTERVAL_BUCKETS_SECONDS)
        {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        histogram.count += 1;
        histogram.sum_seconds += seconds;
    }

    /// Sets the mempool gauges.
    pub fn set_mempool(&self, count: usize, bytes: usize) {
        self.mempool_size.store(count as u64, Ordering::Relaxed);
        self.mempool_bytes.store(bytes as u64, Ordering::Relaxed);
    }

    /// Sets `cairn_mempool_evicted_total`: transactions evicted by
    /// better-paying ones so far.
    pub fn set_mempool_evicted(&self, evicted: u64) {
        self.mempool_evicted.store(evicted, Ordering::Relaxed);
    }

    /// Sets `cairn_mempool_dropped_total{reason}`: transactions that left
    /// the mempool without being committed.
    pub fn set_mempool_dropped(&self, dropped: crate::mempool::DropCounts) {
        for (gauge, (_, count)) in self.mempool_dropped.iter().zip(dropped.by_reason()) {
            gauge.store(count, Ordering::Relaxed);
        }
    }

    /// Counts transactions refused before their signature was verified.
    pub fn count_refused_before_signature(&self, count: usize) {
        self.refused_before_signature
            .fetch_add(count as u64, Ordering::Relaxed);
    }

    /// Counts one rejection with reason `code` (unknown codes are ignored).
    pub fn count_rejection(&self, code: &str) {
        if let Some(position) = REJECTION_REASONS.iter().position(|reason| *reason == code) {
            self.rejected[position].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one compact proposal rebuilt (or given up) with `outcome`,
    /// one of [`COMPACT_PROPOSAL_OUTCOMES`], after fetching
    /// `fetched_transactions` of its transactions by hash.
    pub fn record_compact_proposal(&self, outcome: &str, fetched_transactions: usize) {
        if let Some(position) = COMPACT_PROPOSAL_OUTCOMES
            .iter()
            .position(|known| *known == outcome)
        {
            self.compact_proposals[position].fetch_add(1, Ordering::Relaxed);
        }
        self.compact_fetched_txs
            .fetch_add(fetched_transactions as u64, Ordering::Relaxed);
    }

    /// Sets `cairn_p2p_peers`.
    pub fn set_peers(&self, peers: usize) {
        self.peers.store(peers as u64, Ordering::Relaxed);
    }

    /// Sets the validator set gauges: its size and total power, and
    /// whether this node's key is in it.
    pub fn set_validator_set(&self, size: usize, total_power: u64, in_set: bool) {
        self.validator_set_size
            .store(size as u64, Ordering::Relaxed);
        self.validator_set_power
            .store(total_power, Ordering::Relaxed);
        self.validator_in_set
            .store(u64::from(in_set), Ordering::Relaxed);
    }

    /// Records whether this validator's precommit is in a committed
    /// block's certificate.
    pub fn record_own_signature(&self, signed: bool) {
        if signed {
            self.signed_commits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.missed_signatures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records that the driver spent `millis` in consensus step `step` (one
    /// of [`CONSENSUS_STEPS`]; others are ignored).
    pub fn record_step(&self, step: &str, millis: u64) {
        let Some(position) = CONSENSUS_STEPS.iter().position(|known| *known == step) else {
            return;
        };
        let mut steps = self
            .steps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let histogram = &mut steps[position];
        for (bucket, bound) in histogram.buckets.iter_mut().zip(STEP_BUCKETS_MS) {
            if millis <= bound {
                *bucket += 1;
            }
        }
        histogram.count += 1;
        histogram.sum_ms = histogram.sum_ms.saturating_add(millis);
    }

    /// Reads the p2p layer's counters at every scrape.
    pub fn set_p2p(&self, p2p: cairn_p2p::Metrics) {
        *self
            .p2p
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(p2p);
    }

    /// Reports the size of `data_dir` (RocksDB) at every scrape.
    pub fn set_data_dir(&self, data_dir: std::path::PathBuf) {
        *self
            .data_dir
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(data_dir);
    }

    /// Sets `cairn_sync_behind_blocks`.
    pub fn set_sync_behind(&self, blocks: u64) {
        self.sync_behind.store(blocks, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let load = |value: &AtomicU64| value.load(Ordering::Relaxed);
        gauge(
            &mut out,
            "cairn_consensus_height",
            "Latest committed height.",
            load(&self.height),
        );
        gauge(
            &mut out,
            "cairn_consensus_rounds",
            "Round in which the latest block was decided (0 = first round).",
            load(&self.rounds),
        );
        {
            let histogram = self
                .interval
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let name = "cairn_block_interval_seconds";
            let _ = writeln!(
                out,
                "# HELP {name} Time between consecutive committed blocks (header times)."
            );
            let _ = writeln!(out, "# TYPE {name} histogram");
            for (count, bound) in histogram.buckets.iter().zip(BLOCK_INTERVAL_BUCKETS_SECONDS) {
                let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", histogram.count);
            let _ = writeln!(out, "{name}_sum {}", histogram.sum_seconds);
            let _ = writeln!(out, "{name}_count {}", histogram.count);
        }
        gauge(
            &mut out,
            "cairn_block_txs",
            "Transactions in the latest block.",
            load(&self.block_txs),
        );
        let _ = writeln!(
            out,
            "# HELP cairn_committed_txs_total Transactions committed since start."
        );
        let _ = writeln!(out, "# TYPE cairn_committed_txs_total counter");
        let _ = writeln!(
            out,
            "cairn_committed_txs_total {}",
            load(&self.committed_txs)
        );
        gauge(
            &mut out,
            "cairn_mempool_size",
            "Pending transactions.",
            load(&self.mempool_size),
        );
        gauge(
            &mut out,
            "cairn_mempool_bytes",
            "Pending bytes.",
            load(&self.mempool_bytes),
        );
        counter(
            &mut out,
            "cairn_mempool_evicted_total",
            "Cheaper pending transactions evicted from a full mempool (each with its sender's later nonces) for better-paying ones.",
            load(&self.mempool_evicted),
        );
        let _ = writeln!(
            out,
            "# HELP cairn_mempool_dropped_total Transactions that left the mempool without being committed, by reason (evicted for a better fee with their sender's later nonces, expired in the queue, invalidated by a block, replaced by fee)."
        );
        let _ = writeln!(out, "# TYPE cairn_mempool_dropped_total counter");
        for ((reason, _), count) in crate::mempool::DropCounts::default()
            .by_reason()
            .iter()
            .zip(&self.mempool_dropped)
        {
            let _ = writeln!(
                out,
                "cairn_mempool_dropped_total{{reason=\"{reason}\"}} {}",
                load(count)
            );
        }
        counter(
            &mut out,
            "cairn_mempool_refused_before_signature_total",
            "Transactions refused by checks that run before signature verification (nonce window, per-sender limit, fee, funds, a full pool), so they cost no verification.",
            load(&self.refused_before_signature),
        );
        let _ = writeln!(
            out,
            "# HELP cairn_mempool_rejected_total Transactions refused by the mempool, by reason."
        );
        let _ = writeln!(out, "# TYPE cairn_mempool_rejected_total counter");
        for (reason, count) in REJECTION_REASONS.iter().zip(&self.rejected) {
            let _ = writeln!(
                out,
                "cairn_mempool_rejected_total{{reason=\"{reason}\"}} {}",
                load(count)
            );
        }
        let _ = writeln!(
            out,
            "# HELP cairn_compact_proposals_total Compact proposals received, by how their block was rebuilt."
        );
        let _ = writeln!(out, "# TYPE cairn_compact_proposals_total counter");
        for (outcome, count) in COMPACT_PROPOSAL_OUTCOMES
            .iter()
            .zip(&self.compact_proposals)
        {
            let _ = writeln!(
                out,
                "cairn_compact_proposals_total{{outcome=\"{outcome}\"}} {}",
                load(count)
            );
        }
        counter(
            &mut out,
            "cairn_compact_proposal_fetched_txs_total",
            "Transactions of compact proposals fetched from peers by hash (the mempool lacked them).",
            load(&self.compact_fetched_txs),
        );
        gauge(
            &mut out,
            "cairn_p2p_peers",
            "Connected peers.",
            load(&self.peers),
        );
        gauge(
            &mut out,
            "cairn_sync_behind_blocks",
            "Blocks between the local tip and the best known peer tip.",
            load(&self.sync_behind),
        );
        {
            let steps = *self
                .steps
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let name = "cairn_consensus_step_seconds";
            let _ = writeln!(
                out,
                "# HELP {name} Time the driver spent in each step of a round."
            );
            let _ = writeln!(out, "# TYPE {name} histogram");
            for (step, histogram) in CONSENSUS_STEPS.iter().zip(steps) {
                for (count, bound) in histogram.buckets.iter().zip(STEP_BUCKETS_MS) {
                    let _ = writeln!(
                        out,
                        "{name}_bucket{{step=\"{step}\",le=\"{}\"}} {count}",
                        bound as f64 / 1000.0
                    );
                }
                let _ = writeln!(
                    out,
                    "{name}_bucket{{step=\"{step}\",le=\"+Inf\"}} {}",
                    histogram.count
                );
                let _ = writeln!(
                    out,
                    "{name}_sum{{step=\"{step}\"}} {}",
                    histogram.sum_ms as f64 / 1000.0
                );
                let _ = writeln!(out, "{name}_count{{step=\"{step}\"}} {}", histogram.count);
            }
        }
        counter(
            &mut out,
            "cairn_validator_signed_blocks_total",
            "Committed blocks whose certificate holds this validator's precommit.",
            load(&self.signed_commits),
        );
        counter(
            &mut out,
            "cairn_validator_missed_signatures_total",
            "Committed blocks whose certificate lacks this validator's precommit.",
            load(&self.missed_signatures),
        );
        gauge(
            &mut out,
            "cairn_validator_set_size",
            "Validators in the set of the height being decided.",
            load(&self.validator_set_size),
        );
        gauge(
            &mut out,
            "cairn_validator_set_power",
            "Total voting power of the set of the height being decided.",
            load(&self.validator_set_power),
        );
        gauge(
            &mut out,
            "cairn_validator_in_set",
            "1 if this node's validator key is in the set of the height being decided.",
            load(&self.validator_in_set),
        );
        let _ = writeln!(out, "# HELP cairn_build_info The running build.");
        let _ = writeln!(out, "# TYPE cairn_build_info gauge");
        let _ = writeln!(
            out,
            "cairn_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        let p2p = self
            .p2p
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(cairn_p2p::Metrics::snapshot);
        if let Some(p2p) = p2p {
            render_p2p(&mut out, &p2p);
        }
        render_process(&mut out);
        let data_dir = self
            .data_dir
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(data_dir) = data_dir {
            gauge(
                &mut out,
                "cairn_store_bytes",
                "Bytes in the data directory (RocksDB).",
                directory_bytes(&data_dir),
            );
        }
        out
    }
}

fn render_p2p(out: &mut String, p2p: &cairn_p2p::MetricsSnapshot) {
    for (name, help, value) in [
        (
            "cairn_p2p_gossip_bytes_in_total",
            "Gossip payload bytes received.",
            p2p.gossip_bytes_in,
        ),
        (
            "cairn_p2p_gossip_bytes_out_total",
            "Gossip payload bytes published.",
            p2p.gossip_bytes_out,
        ),
        (
            "cairn_p2p_sync_bytes_in_total",
            "Block-sync bytes read.",
            p2p.sync_bytes_in,
        ),
        (
            "cairn_p2p_sync_bytes_out_total",
            "Block-sync bytes written.",
            p2p.sync_bytes_out,
        ),
        (
            "cairn_p2p_round_state_bytes_in_total",
            "Round-state bytes read.",
            p2p.round_state_bytes_in,
        ),
        (
            "cairn_p2p_round_state_bytes_out_total",
            "Round-state bytes written.",
            p2p.round_state_bytes_out,
        ),
        (
            "cairn_p2p_gossip_messages_received_total",
            "Gossip messages handed to the node.",
            p2p.gossip_messages_received,
        ),
        (
            "cairn_p2p_gossip_messages_rejected_total",
            "Gossip messages the node rejected.",
            p2p.gossip_messages_rejected,
        ),
        (
            "cairn_p2p_gossip_messages_dropped_total",
            "Gossip messages dropped because the node was too slow to take them.",
            p2p.gossip_messages_dropped,
        ),
        (
            "cairn_p2p_inbound_requests_refused_total",
            "Inbound requests refused (malformed, over limit, busy).",
            p2p.inbound_requests_refused,
        ),
        (
            "cairn_p2p_peers_banned_total",
            "Peers banned since start.",
            p2p.peers_banned,
        ),
    ] {
        counter(out, name, help, value);
    }
}

/// `process_*` metrics from `/proc/self` (omitted where it cannot be read).
fn render_process(out: &mut String) {
    if let Some(resident) = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
    {
        gauge(
            out,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            resident.saturating_mul(page_size()),
        );
    }
    if let Some(ticks) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| cpu_ticks(&stat))
    {
        let _ = writeln!(
            out,
            "# HELP process_cpu_seconds_total User and system CPU time spent in seconds."
        );
        let _ = writeln!(out, "# TYPE process_cpu_seconds_total counter");
        let _ = writeln!(
            out,
            "process_cpu_seconds_total {}",
            ticks as f64 / PROC_CLOCK_TICKS_PER_SECOND
        );
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        gauge(
            out,
            "process_open_fds",
            "Open file descriptors.",
            entries.count() as u64,
        );
    }
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if let Some(current) = limit.current {
        gauge(
            out,
            "process_max_fds",
            "The soft limit of open file descriptors.",
            current,
        );
    }
}

fn page_size() -> u64 {
    u64::try_from(rustix::param::page_size()).unwrap_or(4096)
}

/// utime + stime from `/proc/self/stat` (fields 14 and 15, counted after
/// the parenthesised command name, which may hold spaces).
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user.saturating_add(system))
}

/// Bytes of the files in `directory` and below, walking at most
/// [`DATA_DIR_ENTRIES_MAX`] entries.
fn directory_bytes(directory: &std::path::Path) -> u64 {
    let mut total = 0u64;
    let mut walked = 0usize;
    let mut pending = vec![directory.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            walked += 1;
            if walked > DATA_DIR_ENTRIES_MAX {
                return total;
            }
            match entry.metadata() {
                Ok(metadata) if metadata.is_dir() => pending.push(entry.path()),
                Ok(metadata) => total = total.saturating_add(metadata.len()),
                Err(_) => {}
            }
        }
    }
    total
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    let _ = writeln!(out, "{name} {value}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name} {value}");
}

/// The router of the metrics listener: `GET /metrics`.
pub fn router(metrics: std::sync::Arc<Metrics>) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = std::sync::Arc::clone(&metrics);
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    metrics.render(),
                )
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric() {
        let metrics = Metrics::default();
        metrics.record_commit(3, 1, 5, 1500);
        metrics.count_rejection("bad_nonce");
        metrics.record_compact_proposal("fetched_transactions", 7);
        metrics.record_compact_proposal("no-such-outcome", 0);
        let text = metrics.render();
        for name in [
            "cairn_consensus_height 3",
            "cairn_consensus_rounds 1",
            "cairn_block_interval_seconds_bucket{le=\"2\"} 1",
            "cairn_block_interval_seconds_bucket{le=\"0.005\"} 0",
            "cairn_block_interval_seconds_count 1",
            "cairn_block_txs 5",
            "cairn_committed_txs_total 5",
            "cairn_mempool_size 0",
            "cairn_mempool_bytes 0",
            "cairn_mempool_rejected_total{reason=\"bad_nonce\"} 1",
            "cairn_compact_proposals_total{outcome=\"fetched_transactions\"} 1",
            "cairn_compact_proposals_total{outcome=\"given_up\"} 0",
            "cairn_compact_proposal_fetched_txs_total 7",
            "cairn_p2p_peers 0",
            "cairn_sync_behind_blocks 0",
            "cairn_validator_missed_signatures_total 0",
            "cairn_build_info{version=",
            "process_resident_memory_bytes ",
            "process_cpu_seconds_total ",
            "process_open_fds ",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}

#[cfg(test)]
mod process_tests {
    use super::*;

    #[test]
    fn cpu_ticks_skip_a_command_name_with_spaces() {
        let stat = "42 (cairn d) S 1 2 3 4 5 6 7 8 9 10 300 40 0 0 20 0 1 0";
        assert_eq!(cpu_ticks(stat), Some(340));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn the_data_directory_is_sized() {
        let directory = tempfile::tempdir().expect("tempdir");
        std::fs::write(directory.path().join("a"), [0u8; 100]).expect("write");
        std::fs::create_dir(directory.path().join("sub")).expect("mkdir");
        std::fs::write(directory.path().join("sub/b"), [0u8; 23]).expect("write");
        assert_eq!(directory_bytes(directory.path()), 123);
        let metrics = Metrics::default();
        metrics.set_data_dir(directory.path().to_path_buf());
        metrics.set_p2p(cairn_p2p::Metrics::default());
        metrics.record_own_signature(false);
        metrics.record_step("prevote", 7);
        metrics.record_step("no-such-step", 7);
        let text = metrics.render();
        assert!(
            text.contains("cairn_consensus_step_seconds_bucket{step=\"prevote\",le=\"0.01\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("cairn_consensus_step_seconds_bucket{step=\"prevote\",le=\"0.005\"} 0"),
            "{text}"
        );
        assert!(text.contains("cairn_store_bytes 123"), "{text}");
        assert!(text.contains("cairn_p2p_peers_banned_total 0"), "{text}");
        assert!(
            text.contains("cairn_validator_missed_signatures_total 1"),
            "{text}"
        );
    }
}
