//! The configuration of the p2p layer. [`Config::new`] fills in defaults from
//! [`crate::limits`]; the node overrides what its operator set.

use std::path::PathBuf;
use std::time::Duration;

use cairn_types::ChainId;
use libp2p::identity::Keypair;
use libp2p::Multiaddr;

use crate::limits::{
    BAN_DURATION_MS, GOSSIP_HEARTBEAT_MS, GOSSIP_TRANSMIT_BYTES_MAX, IDLE_CONNECTION_TIMEOUT_MS,
    RANDOM_WALK_INTERVAL_MS, REQUEST_TIMEOUT_MS, TARGET_PEERS,
};

/// How the p2p layer runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The chain; namespaces topics and protocols.
    pub chain_id: ChainId,
    /// The chain's genesis hash (hex), announced through identify so that
    /// nodes of two chains with one id but different geneses tell each
    /// other apart (empty: not announced).
    pub genesis_hash: String,
    /// The node key (its public half is the PeerId).
    pub keypair: Keypair,
    /// Addresses to listen on (port 0 allowed; bound addresses are reported
    /// as [`crate::Event::ListenAddress`]).
    pub listen_addresses: Vec<Multiaddr>,
    /// Addresses peers should dial to reach this node (behind NAT, or
    /// listening on 0.0.0.0): advertised through identify (hence Kademlia)
    /// instead of the listen addresses. Empty: the listen addresses are
    /// advertised, without unspecified ones and, when any other is bound,
    /// without loopback ones. At most
    /// [`crate::limits::EXTERNAL_ADDRESSES_MAX`].
    pub external_addresses: Vec<Multiaddr>,
    /// Bootstrap peers; each must end with `/p2p/<peer id>`.
    pub bootstrap: Vec<Multiaddr>,
    /// File of the address book: the known peers and their addresses,
    /// read at start as further bootstrap peers and rewritten every
    /// [`crate::limits::ADDRESS_BOOK_SAVE_INTERVAL_MS`] and at shutdown
    /// (None: not kept).
    pub address_book_file: Option<PathBuf>,
    /// Discover peers on the local network by mDNS. Off by default: it
    /// multicasts on every non-loopback interface.
    pub mdns: bool,
    /// Dial discovered peers until this many are connected.
    pub target_peers: usize,
    /// Close a connection no protocol uses after this long.
    pub idle_connection_timeout: Duration,
    /// Outbound requests fail after this long.
    pub request_timeout: Duration,
    /// Interval of Kademlia random walks.
    pub random_walk_interval: Duration,
    /// How long a peer whose score fell below the threshold stays banned.
    pub ban_duration: Duration,
    /// Gossipsub heartbeat.
    pub gossip_heartbeat: Duration,
    /// Largest gossip frame accepted or sent (`max_transmit_size`).
    pub gossip_transmit_bytes_max: usize,
    /// Agent version announced through identify.
    pub agent_version: String,
}

impl Config {
    /// Defaults for `chain_id` with `keypair`, listening on
    /// `/ip4/0.0.0.0/tcp/0`.
    pub fn new(chain_id: ChainId, keypair: Keypair) -> Config {
        let any: Multiaddr = "/ip4/0.0.0.0/tcp/0"
            .parse()
            .unwrap_or_else(|_| Multiaddr::empty());
        Config {
            chain_id,
            genesis_hash: String::new(),
            keypair,
            listen_addresses: vec![any],
            external_addresses: Vec::new(),
            bootstrap: Vec::new(),
            address_book_file: None,
            mdns: false,
            target_peers: TARGET_PEERS,
            idle_connection_timeout: Duration::from_millis(IDLE_CONNECTION_TIMEOUT_MS),
            request_timeout: Duration::from_millis(REQUEST_TIMEOUT_MS),
            random_walk_interval: Duration::from_millis(RANDOM_WALK_INTERVAL_MS),
            ban_duration: Duration::from_millis(BAN_DURATION_MS),
            gossip_heartbeat: Duration::from_millis(GOSSIP_HEARTBEAT_MS),
            gossip_transmit_bytes_max: GOSSIP_TRANSMIT_BYTES_MAX,
            agent_version: format!("cairn/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}
