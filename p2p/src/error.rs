//! The one error type of `cairn-p2p`.

use libp2p::PeerId;

/// Everything that can go wrong in `cairn-p2p`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The event loop has stopped (shut down or crashed); the client is useless.
    #[error("the p2p event loop has stopped; restart the network")]
    EventLoopStopped,
    /// A transport, behaviour or swarm could not be built.
    #[error("cannot build the p2p swarm: {0}")]
    Build(String),
    /// Listening on an address failed.
    #[error("cannot listen on {address}: {reason}")]
    Listen {
        /// The address.
        address: String,
        /// Why.
        reason: String,
    },
    /// A multiaddr is unusable for what it was given for.
    #[error("bad address {address}: {reason}")]
    BadAddress {
        /// The address.
        address: String,
        /// Why, and what to do.
        reason: String,
    },
    /// Dialing a peer failed at once.
    #[error("cannot dial {address}: {reason}")]
    Dial {
        /// The address or peer.
        address: String,
        /// Why.
        reason: String,
    },
    /// A gossip publish failed.
    #[error("cannot publish on {topic}: {reason}")]
    Publish {
        /// The topic.
        topic: String,
        /// Why.
        reason: String,
    },
    /// A payload or request is larger than its bound.
    #[error("{what} is {size} bytes, the limit is {limit}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The bound.
        limit: usize,
    },
    /// A request asks for more than a bound allows.
    #[error("request over limit: {0}")]
    RequestOverLimit(String),
    /// A request to a peer failed (timeout, disconnect, unsupported protocol,
    /// stream error).
    #[error("request to {peer} failed: {reason}")]
    Request {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// The peer answered with a refusal.
    #[error("{peer} refused the request: {reason}")]
    Refused {
        /// The peer.
        peer: PeerId,
        /// Its reason.
        reason: String,
    },
    /// Every peer tried failed; the last error is kept.
    #[error("no peer answered the request ({tried} tried): {last}")]
    NoPeerAnswered {
        /// How many peers were asked.
        tried: usize,
        /// The last failure.
        last: Box<Error>,
    },
    /// Bytes from the wire or a file could not be decoded.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A node key is malformed.
    #[error("bad node key: {0}")]
    BadKey(String),
    /// The address book file could not be read or written.
    #[error("address book {path}: {reason}")]
    AddressBook {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Reading or writing a key file failed.
    #[error("node key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}
