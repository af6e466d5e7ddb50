//! `cairn-p2p`: the libp2p swarm of a Cairn node: discovery (Kademlia,
//! optional mDNS), gossip (gossipsub with application-level validation and
//! peer scoring), block sync and round state (request-response with our own
//! size-limited codec), connection limits, behind a [`Client`] / event-loop
//! API.
//!
//! The crate is agnostic of block and vote contents: gossip payloads and
//! sync answers are opaque bytes that the node encodes and decodes.
//!
//! ```no_run
//! # async fn example() -> Result<(), cairn_p2p::Error> {
//! let chain = cairn_types::ChainId::new("dev").map_err(|e| cairn_p2p::Error::Build(e.to_string()))?;
//! let config = cairn_p2p::Config::new(chain, cairn_p2p::generate_keypair());
//! let (client, mut events, _task) = cairn_p2p::spawn(config)?;
//! while let Some(event) = events.recv().await {
//!     if let cairn_p2p::Event::Gossip(message) = event {
//!         message.validation.accept().await;
//!     }
//! }
//! # drop(client); Ok(()) }
//! ```

mod address_book;
mod client;
mod codec;
mod config;
mod error;
mod event_loop;
mod key;
pub mod limits;
mod metrics;
mod protocol;
mod topic;

pub use address_book::ADDRESS_BOOK_VERSION;
pub use client::{
    Client, Event, GossipMessage, PublishOutcome, RoundStateResponder, SnapshotResponder,
    SyncResponder, ValidationHandle, Verdict,
};
pub use config::Config;
pub use error::Error;
pub use event_loop::{
    is_advertisable, new, peer_of, spawn, EventLoop, OUTBOUND_REQUESTS_PENDING_MAX,
};
pub use key::{
    generate_keypair, keypair_from_bytes, keypair_from_json, keypair_to_bytes, keypair_to_json,
    load_keypair, load_or_generate_keypair, save_keypair, KEY_TYPE_ED25519,
};
pub use metrics::{Metrics, MetricsSnapshot};
pub use protocol::{
    Protocol, RoundState, RoundStateRequest, RoundStateResponse, SnapshotOffer, SnapshotRequest,
    SnapshotResponse, SyncBlock, SyncHeader, SyncRequest, SyncResponse, SyncStatus,
};
pub use topic::{Topic, GOSSIP_PROTOCOL_VERSION};

pub use libp2p::identity::Keypair;
pub use libp2p::{Multiaddr, PeerId};
