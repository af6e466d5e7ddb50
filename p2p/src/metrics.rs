//! Counters for the node's metrics: connected peers, bytes in and out per
//! protocol, messages received, rejected and dropped. Lock-free atomics the
//! event loop and the codecs update and anyone holding a [`Metrics`] reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Shared counters; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    inner: Arc<Counters>,
}

/// The raw counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) peers_connected: AtomicU64,
    pub(crate) gossip_bytes_in: AtomicU64,
    pub(crate) gossip_bytes_out: AtomicU64,
    pub(crate) sync_bytes_in: AtomicU64,
    pub(crate) sync_bytes_out: AtomicU64,
    pub(crate) round_state_bytes_in: AtomicU64,
    pub(crate) round_state_bytes_out: AtomicU64,
    pub(crate) gossip_messages_received: AtomicU64,
    pub(crate) gossip_messages_rejected: AtomicU64,
    pub(crate) gossip_messages_dropped: AtomicU64,
    pub(crate) inbound_requests_refused: AtomicU64,
    pub(crate) peers_banned: AtomicU64,
}

/// A copy of the counters at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Peers with at least one established connection.
    pub peers_connected: u64,
    /// Gossip payload bytes received.
    pub gossip_bytes_in: u64,
    /// Gossip payload bytes published (once per publish, not per peer).
    pub gossip_bytes_out: u64,
    /// Block-sync bytes read from streams.
    pub sync_bytes_in: u64,
    /// Block-sync bytes written to streams.
    pub sync_bytes_out: u64,
    /// Round-state bytes read from streams.
    pub round_state_bytes_in: u64,
    /// Round-state bytes written to streams.
    pub round_state_bytes_out: u64,
    /// Gossip messages handed to the node.
    pub gossip_messages_received: u64,
    /// Gossip messages the node rejected.
    pub gossip_messages_rejected: u64,
    /// Gossip messages dropped because the node was too slow to take them.
    pub gossip_messages_dropped: u64,
    /// Inbound requests refused (malformed, over limit, node busy).
    pub inbound_requests_refused: u64,
    /// Peers banned since start.
    pub peers_banned: u64,
}

impl Metrics {
    pub(crate) fn counters(&self) -> &Counters {
        &self.inner
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let c = &self.inner;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MetricsSnapshot {
            peers_connected: get(&c.peers_connected),
            gossip_bytes_in: get(&c.gossip_bytes_in),
            gossip_bytes_out: get(&c.gossip_bytes_out),
            sync_bytes_in: get(&c.sync_bytes_in),
            sync_bytes_out: get(&c.sync_bytes_out),
            round_state_bytes_in: get(&c.round_state_bytes_in),
            round_state_bytes_out: get(&c.round_state_bytes_out),
            gossip_messages_received: get(&c.gossip_messages_received),
            gossip_messages_rejected: get(&c.gossip_messages_rejected),
            gossip_messages_dropped: get(&c.gossip_messages_dropped),
            inbound_requests_refused: get(&c.inbound_requests_refused),
            peers_banned: get(&c.peers_banned),
        }
    }
}

/// Adds `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
}
