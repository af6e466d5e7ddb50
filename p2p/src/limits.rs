//! Every bound of `cairn-p2p`, defined once: connections, channels, message
//! and request sizes, request counts, timeouts and scoring thresholds.
//!
//! Units come last in the names (`_bytes_max`, `_ms`). Sizes that carry a
//! block are derived from [`cairn_types::limits::BLOCK_BYTES_MAX`].

use cairn_types::limits::{
    BLOCK_BYTES_MAX, CERTIFICATE_BYTES_MAX, PROPOSAL_BYTES_MAX, VALIDATORS_MAX, VOTE_BYTES_MAX,
};

/// Room for framing and envelope fields around a payload (protobuf headers
/// of gossipsub, postcard tags and length prefixes of our own codec).
pub const ENVELOPE_BYTES_MAX: usize = 64 * 1024;

/// Largest gossip payload: a proposal message carries a whole block.
pub const GOSSIP_PAYLOAD_BYTES_MAX: usize = BLOCK_BYTES_MAX + PROPOSAL_BYTES_MAX + 1024;
/// Largest gossipsub frame on the wire (`max_transmit_size`).
pub const GOSSIP_TRANSMIT_BYTES_MAX: usize = GOSSIP_PAYLOAD_BYTES_MAX + ENVELOPE_BYTES_MAX;

/// Most messages kept while no peer is subscribed to their topic.
pub const PUBLISH_BUFFER_MESSAGES_MAX: usize = 1024;
/// Most bytes kept while no peer is subscribed to their topic.
pub const PUBLISH_BUFFER_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Most transactions one [`crate::SyncRequest::Transactions`] may ask for
/// (a compact proposal's missing transactions are asked in chunks of it).
pub const SYNC_TRANSACTIONS_MAX: usize = 4_096;
/// Largest encoded block-sync request: a transactions request of
/// [`SYNC_TRANSACTIONS_MAX`] hashes (33 bytes each with its length
/// prefix) and its framing.
pub const SYNC_REQUEST_BYTES_MAX: usize = SYNC_TRANSACTIONS_MAX * 33 + 64;
/// Most blocks one range request may ask for.
pub const SYNC_RANGE_BLOCKS_MAX: u32 = 64;
/// Most headers one header range request may ask for (a header is at most
/// 512 bytes and a certificate about 80 bytes per validator, so a full
/// answer stays far below [`SYNC_RESPONSE_BYTES_MAX`]).
pub const SYNC_RANGE_HEADERS_MAX: u32 = 512;
/// Largest encoded block-sync response. A response holds at least one block
/// of the largest size with its certificate; the server trims a range to fit.
pub const SYNC_RESPONSE_BYTES_MAX: usize =
    2 * (BLOCK_BYTES_MAX + CERTIFICATE_BYTES_MAX) + ENVELOPE_BYTES_MAX;
/// Largest encoded snapshot request.
pub const SNAPSHOT_REQUEST_BYTES_MAX: usize = 256;
/// Largest payload of a snapshot response: a manifest (up to 65,536 chunk
/// hashes), a chunk (1 MiB) or a validator set.
pub const SNAPSHOT_PAYLOAD_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Largest encoded snapshot response.
pub const SNAPSHOT_RESPONSE_BYTES_MAX: usize = SNAPSHOT_PAYLOAD_BYTES_MAX + ENVELOPE_BYTES_MAX;
/// Most snapshots one list answer offers.
pub const SNAPSHOT_OFFERS_MAX: usize = 16;
/// Longest reason text in a refusal.
pub const REFUSAL_REASON_BYTES_MAX: usize = 256;

/// Largest encoded round-state request.
pub const ROUND_STATE_REQUEST_BYTES_MAX: usize = 256;
/// Most votes one round-state response carries (prevotes and precommits of
/// every validator).
pub const ROUND_STATE_VOTES_MAX: usize = 2 * VALIDATORS_MAX;
/// Largest encoded round-state response: a proposal with its block and the
/// votes of the round.
pub const ROUND_STATE_RESPONSE_BYTES_MAX: usize = BLOCK_BYTES_MAX
    + PROPOSAL_BYTES_MAX
    + ROUND_STATE_VOTES_MAX * (VOTE_BYTES_MAX + 8)
    + ENVELOPE_BYTES_MAX;

/// Most established connections in total.
pub const CONNECTIONS_MAX: u32 = 128;
/// Most established connections to one peer.
pub const CONNECTIONS_PER_PEER_MAX: u32 = 2;
/// Most incoming connections still in their handshake.
pub const CONNECTIONS_PENDING_INCOMING_MAX: u32 = 32;
/// Most outgoing connections still in their handshake.
pub const CONNECTIONS_PENDING_OUTGOING_MAX: u32 = 32;
/// Most dials started by one discovery tick.
pub const DIALS_PER_TICK_MAX: usize = 8;
/// Most peers remembered as dial candidates.
pub const KNOWN_PEERS_MAX: usize = 1024;
/// Most addresses remembered per known peer.
pub const ADDRESSES_PER_PEER_MAX: usize = 8;
/// Most peers written to the address book file (the peers of the Kademlia
/// table first, then other known peers).
pub const ADDRESS_BOOK_PEERS_MAX: usize = 256;
/// Largest address book file read at start; a larger one is ignored.
pub const ADDRESS_BOOK_FILE_BYTES_MAX: usize = 256 * 1024;
/// How often the address book file is rewritten while the node runs (it
/// is also written at shutdown).
pub const ADDRESS_BOOK_SAVE_INTERVAL_MS: u64 = 10_000;
/// Most external addresses a node advertises.
pub const EXTERNAL_ADDRESSES_MAX: usize = 8;
/// First wait before a known peer whose dial failed is dialled again; each
/// further failure doubles it, up to [`RECONNECT_BACKOFF_MAX_MS`].
pub const RECONNECT_BACKOFF_BASE_MS: u64 = 1_000;
/// Longest wait between two dials of a known peer that keeps failing, so
/// a healed partition reconnects within this long.
pub const RECONNECT_BACKOFF_MAX_MS: u64 = 8_000;
/// Interval of the ping on every connection.
pub const PING_INTERVAL_MS: u64 = 5_000;
/// A ping unanswered for this long closes its connection (the peer is
/// then redialled with backoff): a link that went down silently is noticed
/// within [`PING_INTERVAL_MS`] plus this.
pub const PING_TIMEOUT_MS: u64 = 10_000;

/// Capacity of the command channel from `Client`s to the event loop.
pub const COMMAND_CHANNEL_CAPACITY_MAX: usize = 1024;
/// Capacity of the event channel from the event loop to the node.
pub const EVENT_CHANNEL_CAPACITY_MAX: usize = 1024;
/// Events the event loop holds while the node is slow to take them; beyond
/// this, gossip messages are dropped (reported as ignored) and inbound
/// requests are refused.
pub const EVENT_BACKLOG_MAX: usize = 8192;
/// Bytes of gossip payloads the event backlog may hold.
pub const EVENT_BACKLOG_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Most peers banned at once; beyond it the ban closest to expiry is lifted.
pub const BANNED_PEERS_MAX: usize = 1024;
/// Inbound requests waiting for the node's answer at once.
pub const INBOUND_REQUESTS_PENDING_MAX: usize = 256;
/// Concurrent request-response streams per connection.
pub const REQUEST_STREAMS_CONCURRENT_MAX: usize = 64;

/// Default time a request may take before it fails with a timeout.
pub const REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Time the node has to answer an inbound request.
pub const INBOUND_RESPONSE_TIMEOUT_MS: u64 = 10_000;
/// Default idle time before a connection with no active protocol closes.
pub const IDLE_CONNECTION_TIMEOUT_MS: u64 = 60_000;
/// Default interval of Kademlia random walks.
pub const RANDOM_WALK_INTERVAL_MS: u64 = 30_000;
/// Interval of the housekeeping tick: dialing toward the target peer count,
/// lifting expired bans, retrying buffered publishes.
pub const HOUSEKEEPING_INTERVAL_MS: u64 = 1_000;
/// Default gossipsub heartbeat.
pub const GOSSIP_HEARTBEAT_MS: u64 = 700;
/// Default ban after a peer's score falls below [`SCORE_BAN_THRESHOLD`].
pub const BAN_DURATION_MS: u64 = 10 * 60 * 1000;
/// Default number of peers the node dials toward.
pub const TARGET_PEERS: usize = 16;

/// Application score change for a message the node rejected.
pub const SCORE_REJECT_PENALTY: f64 = -10.0;
/// Application score change for a message the node accepted.
pub const SCORE_ACCEPT_REWARD: f64 = 0.1;
/// Highest application score a peer can earn.
pub const SCORE_MAX: f64 = 10.0;
/// Score below which a peer is disconnected and banned.
pub const SCORE_BAN_THRESHOLD: f64 = -100.0;

/// Largest node key file.
pub const KEY_FILE_BYTES_MAX: usize = 4096;
