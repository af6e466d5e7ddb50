//! Prometheus metrics of the node, rendered by hand in the text exposition
//! format (version 0.0.4) on the metrics listener's `/metrics`.
//!
//! Updated by the commit path and the mempool admission path of
//! [`crate::ledger::Ledger`]; the network part sets the peer and sync
//! gauges.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering},
    sync::Mutex,
};

/// Upper bounds (seconds) of the `cairn_block_interval_seconds` buckets.
pub const BLOCK_INTERVAL_BUCKETS_SECONDS: [f64; 10] =
    [0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0];

/// Every rejection reason the mempool reports (see
/// [`crate::mempool::Rejection::code`]); the label set is bounded by it.
pub const REJECTION_REASONS: [&str; 12] = [
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
    rejected: [AtomicU64; REJECTION_REASONS.len()],
    peers: AtomicU64,
    sync_behind: AtomicU64,
    interval: Mutex<Histogram>,
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

    /// Counts one rejection with reason `code` (unknown codes are ignored).
    pub fn count_rejection(&self, code: &str) {
        if let Some(position) = REJECTION_REASONS.iter().position(|reason| *reason == code) {
            self.rejected[position].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sets `cairn_p2p_peers`.
    pub fn set_peers(&self, peers: usize) {
        self.peers.store(peers as u64, Ordering::Relaxed);
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
        out
    }
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
        let text = metrics.render();
        for name in [
            "cairn_consensus_height 3",
            "cairn_consensus_rounds 1",
            "cairn_block_interval_seconds_bucket{le=\"2\"} 1",
            "cairn_block_interval_seconds_count 1",
            "cairn_block_txs 5",
            "cairn_committed_txs_total 5",
            "cairn_mempool_size 0",
            "cairn_mempool_bytes 0",
            "cairn_mempool_rejected_total{reason=\"bad_nonce\"} 1",
            "cairn_p2p_peers 0",
            "cairn_sync_behind_blocks 0",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}
