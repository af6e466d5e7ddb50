//! The node's side of the p2p layer: a cloneable [`Client`] whose methods
//! send commands with oneshot replies to the event loop, the [`Event`]s the
//! event loop hands to the node, and the handles the node answers with
//! (gossip validation, inbound requests).

use std::time::Duration;

use libp2p::gossipsub::MessageId;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use crate::limits::{
    ROUND_STATE_REQUEST_BYTES_MAX, SNAPSHOT_REQUEST_BYTES_MAX, SYNC_REQUEST_BYTES_MAX,
};
use crate::metrics::Metrics;
use crate::protocol::{
    check_snapshot_answer, decode, encode, Protocol, RangeItem, RoundState, RoundStateRequest,
    RoundStateResponse, SnapshotRequest, SnapshotResponse, SyncRequest, SyncResponse,
};
use crate::topic::Topic;
use crate::Error;

/// What a publish did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Sent to at least one peer.
    Sent,
    /// The same payload was published before; nothing to do (success).
    Duplicate,
    /// No peer is subscribed yet; kept and sent once one subscribes.
    Buffered,
}

/// The node's verdict on a gossip message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: forward it, reward the sender.
    Accept,
    /// Invalid: drop it, punish the sender.
    Reject,
    /// Drop it without judging the sender (e.g. stale, already known).
    Ignore,
}

/// A gossip message handed to the node.
#[derive(Debug)]
pub struct GossipMessage {
    /// The topic it came on.
    pub topic: Topic,
    /// The peer that forwarded it to us (the one scored by the verdict).
    pub source: PeerId,
    /// The opaque payload.
    pub data: Vec<u8>,
    /// Answer the verdict through this. Dropping it unanswered counts as
    /// [`Verdict::Ignore`].
    pub validation: ValidationHandle,
}

/// Tells the event loop what the node thinks of one gossip message.
#[derive(Debug)]
pub struct ValidationHandle {
    commands: Option<mpsc::Sender<Command>>,
    id: MessageId,
    source: PeerId,
}

impl ValidationHandle {
    pub(crate) fn new(commands: mpsc::Sender<Command>, id: MessageId, source: PeerId) -> Self {
        ValidationHandle {
            commands: Some(commands),
            id,
            source,
        }
    }

    /// The message id (SHA-256 of the payload).
    pub fn message_id(&self) -> &[u8] {
        &self.id.0
    }

    /// Sends the verdict (waits for room in the command channel).
    pub async fn report(mut self, verdict: Verdict) {
        if let Some(commands) = self.commands.take() {
            let _ = commands
                .send(Command::Validate {
                    id: self.id.clone(),
                    source: self.source,
                    verdict,
                })
                .await;
        }
    }

    /// Accept: forward and reward.
    pub async fn accept(self) {
        self.report(Verdict::Accept).await
    }

    /// Reject: drop and punish the sender.
    pub async fn reject(self) {
        self.report(Verdict::Reject).await
    }

    /// Ignore: drop without judging.
    pub async fn ignore(self) {
        self.report(Verdict::Ignore).await
    }
}

impl Drop for ValidationHandle {
    fn drop(&mut self) {
        if let Some(commands) = self.commands.take() {
            let _ = commands.try_send(Command::Validate {
                id: self.id.clone(),
                source: self.source,
                verdict: Verdict::Ignore,
            });
        }
    }
}

/// Answers one inbound block-sync request. Dropping it refuses the request.
#[derive(Debug)]
pub struct SyncResponder {
    pub(crate) reply: oneshot::Sender<SyncResponse>,
}

impl SyncResponder {
    /// Sends the answer; a block range is trimmed to the requested count and
    /// the response byte bound.
    pub fn respond(self, response: SyncResponse) {
        let _ = self.reply.send(response);
    }
}

/// Answers one inbound round-state request. Dropping it refuses the request.
#[derive(Debug)]
pub struct RoundStateResponder {
    pub(crate) reply: oneshot::Sender<RoundStateResponse>,
}

impl RoundStateResponder {
    /// Sends the answer; votes beyond the bound are dropped.
    pub fn respond(self, response: RoundStateResponse) {
        let _ = self.reply.send(response);
    }
}

/// Answers one inbound snapshot request. Dropping it refuses the request.
#[derive(Debug)]
pub struct SnapshotResponder {
    pub(crate) reply: oneshot::Sender<SnapshotResponse>,
}

impl SnapshotResponder {
    /// Sends the answer; an answer of the wrong kind or over the bounds
    /// goes out as a refusal.
    pub fn respond(self, response: SnapshotResponse) {
        let _ = self.reply.send(response);
    }
}

/// What the event loop tells the node.
#[derive(Debug)]
pub enum Event {
    /// The swarm listens on this address (port 0 resolved).
    ListenAddress {
        /// The bound address (without `/p2p/`).
        address: Multiaddr,
    },
    /// A peer's first connection was established.
    PeerConnected {
        /// The peer.
        peer: PeerId,
        /// The remote address of that connection.
        address: Multiaddr,
        /// This node dialled it (else the peer dialled this node).
        outbound: bool,
    },
    /// A peer's last connection closed.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
    },
    /// A peer was banned (score too low, or asked by the node).
    PeerBanned {
        /// The peer.
        peer: PeerId,
        /// For how long.
        duration: Duration,
    },
    /// A gossip message to validate.
    Gossip(GossipMessage),
    /// A peer asks for blocks or status.
    SyncRequest {
        /// The peer.
        peer: PeerId,
        /// The request (already checked against its bounds).
        request: SyncRequest,
        /// Where to answer.
        reply: SyncResponder,
    },
    /// A peer asks for the proposal and votes of a round.
    RoundStateRequest {
        /// The peer.
        peer: PeerId,
        /// The request.
        request: RoundStateRequest,
        /// Where to answer.
        reply: RoundStateResponder,
    },
    /// A peer asks for snapshots (state sync).
    SnapshotRequest {
        /// The peer.
        peer: PeerId,
        /// The request.
        request: SnapshotRequest,
        /// Where to answer.
        reply: SnapshotResponder,
    },
}

/// Commands from clients (and validation handles) to the event loop.
#[derive(Debug)]
pub(crate) enum Command {
    Publish {
        topic: Topic,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<PublishOutcome, Error>>,
    },
    Validate {
        id: MessageId,
        source: PeerId,
        verdict: Verdict,
    },
    Request {
        protocol: Protocol,
        peer: PeerId,
        body: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, Error>>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    PeerScores {
        reply: oneshot::Sender<Vec<(PeerId, f64)>>,
    },
    TopicPeers {
        topic: Topic,
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    Ban {
        peer: PeerId,
        duration: Duration,
        reply: oneshot::Sender<()>,
    },
    Banned {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    Dial {
        address: Multiaddr,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    ListenAddresses {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// Checks that an answer fits its request: the right kind, and for a range,
/// at most the requested count of consecutive heights from the first one
/// asked (a peer may send fewer; ask again for the rest).
fn check_sync_answer(
    peer: PeerId,
    request: &SyncRequest,
    response: &SyncResponse,
) -> Result<(), Error> {
    let bad = |reason: String| Error::Request { peer, reason };
    match (request, response) {
        (SyncRequest::Status, SyncResponse::Status(_)) => Ok(()),
        (SyncRequest::BlockByHash(_), SyncResponse::Block(_)) => Ok(()),
        (SyncRequest::Transactions(hashes), SyncResponse::Transactions(transactions)) => {
            if transactions.len() > hashes.len() {
                return Err(bad(format!(
                    "asked for {} transactions, the peer sent {}",
                    hashes.len(),
                    transactions.len()
                )));
            }
            Ok(())
        }
        (
            SyncRequest::Blocks { from, .. } | SyncRequest::Headers { from, .. },
            SyncResponse::NotHeld { lowest_height },
        ) => {
            if *lowest_height <= *from {
                return Err(bad(format!(
                    "asked for heights from {}, the peer says it holds heights from {} only",
                    from.0, lowest_height.0
                )));
            }
            Ok(())
        }
        (SyncRequest::Blocks { from, count }, SyncResponse::Blocks(blocks)) => {
            check_range(*from, *count, blocks).map_err(bad)
        }
        (SyncRequest::Headers { from, count }, SyncResponse::Headers(headers)) => {
            check_range(*from, *count, headers).map_err(bad)
        }
        _ => Err(bad(
            "the peer answered with the wrong kind of response".to_string()
        )),
    }
}

/// Checks a range answer: at most `count` items, of consecutive heights
/// from `from`.
fn check_range<T: RangeItem>(
    from: cairn_types::Height,
    count: u32,
    items: &[T],
) -> Result<(), String> {
    if items.len() > usize::try_from(count).unwrap_or(usize::MAX) {
        return Err(format!(
            "asked for {count} heights, the peer sent {}",
            items.len()
        ));
    }
    for (offset, item) in items.iter().enumerate() {
        let expected = u64::try_from(offset)
            .ok()
            .and_then(|o| from.0.checked_add(o));
        if expected != Some(item.height().0) {
            return Err(format!(
                "asked for heights from {}, the peer sent height {} at position {offset}",
                from.0,
                item.height().0
            ));
        }
    }
    Ok(())
}

/// The node's handle on the p2p layer; cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    peer_id: PeerId,
    metrics: Metrics,
}

impl Client {
    pub(crate) fn new(commands: mpsc::Sender<Command>, peer_id: PeerId, metrics: Metrics) -> Self {
        Client {
            commands,
            peer_id,
            metrics,
        }
    }

    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| Error::EventLoopStopped)?;
        rx.await.map_err(|_| Error::EventLoopStopped)
    }

    /// Publishes `data` on `topic`. A duplicate payload counts as success;
    /// with no subscribed peer the message is buffered (bounded) and sent
    /// when one subscribes.
    pub async fn publish(&self, topic: Topic, data: Vec<u8>) -> Result<PublishOutcome, Error> {
        self.call(|reply| Command::Publish { topic, data, reply })
            .await?
    }

    /// Sends a block-sync request to `peer`. A refusal from the peer is
    /// [`Error::Refused`]; a request over the bounds is refused here with
    /// [`Error::RequestOverLimit`] without being sent.
    pub async fn request_sync(
        &self,
        peer: PeerId,
        request: SyncRequest,
    ) -> Result<SyncResponse, Error> {
        request.check()?;
        let body = encode("sync request", &request, SYNC_REQUEST_BYTES_MAX)?;
        let response = self.request_sync_raw(peer, body).await?;
        check_sync_answer(peer, &request, &response)?;
        Ok(response)
    }

    /// Sends already-encoded bytes as a block-sync request (for tests of
    /// the server's checks; the node uses [`Client::request_sync`]).
    #[doc(hidden)]
    pub async fn request_sync_raw(
        &self,
        peer: PeerId,
        body: Vec<u8>,
    ) -> Result<SyncResponse, Error> {
        let bytes = self
            .call(|reply| Command::Request {
                protocol: Protocol::Sync,
                peer,
                body,
                reply,
            })
            .await??;
        let response: SyncResponse =
            decode("sync response", &bytes, Protocol::Sync.response_bytes_max())?;
        match response {
            SyncResponse::Refused(reason) => Err(Error::Refused { peer, reason }),
            other => Ok(other),
        }
    }

    /// Tries `peers` in order until one answers the block-sync request;
    /// returns who answered and the answer.
    pub async fn request_sync_from_any(
        &self,
        peers: &[PeerId],
        request: SyncRequest,
    ) -> Result<(PeerId, SyncResponse), Error> {
        request.check()?;
        let mut last = Error::RequestOverLimit("no peer to ask".to_string());
        for peer in peers {
            match self.request_sync(*peer, request.clone()).await {
                Ok(response) => return Ok((*peer, response)),
                Err(Error::EventLoopStopped) => return Err(Error::EventLoopStopped),
                Err(e) => last = e,
            }
        }
        Err(Error::NoPeerAnswered {
            tried: peers.len(),
            last: Box::new(last),
        })
    }

    /// Asks `peer` for the proposal and votes it holds for a height and round.
    pub async fn request_round_state(
        &self,
        peer: PeerId,
        request: RoundStateRequest,
    ) -> Result<RoundState, Error> {
        let body = encode(
            "round-state request",
            &request,
            ROUND_STATE_REQUEST_BYTES_MAX,
        )?;
        let bytes = self
            .call(|reply| Command::Request {
                protocol: Protocol::RoundState,
                peer,
                body,
                reply,
            })
            .await??;
        let response: RoundStateResponse = decode(
            "round-state response",
            &bytes,
            Protocol::RoundState.response_bytes_max(),
        )?;
        match response {
            RoundStateResponse::State(state) => Ok(state),
            RoundStateResponse::Refused(reason) => Err(Error::Refused { peer, reason }),
        }
    }

    /// Asks `peer` a snapshot request; a refusal or an answer of the
    /// wrong kind is an error.
    pub async fn request_snapshot(
        &self,
        peer: PeerId,
        request: SnapshotRequest,
    ) -> Result<SnapshotResponse, Error> {
        let body = encode("snapshot request", &request, SNAPSHOT_REQUEST_BYTES_MAX)?;
        let bytes = self
            .call(|reply| Command::Request {
                protocol: Protocol::Snapshot,
                peer,
                body,
                reply,
            })
            .await??;
        let response: SnapshotResponse = decode(
            "snapshot response",
            &bytes,
            Protocol::Snapshot.response_bytes_max(),
        )?;
        match response {
            SnapshotResponse::Refused(reason) => Err(Error::Refused { peer, reason }),
            other if check_snapshot_answer(&request, &other) => Ok(other),
            _ => Err(Error::Decode {
                what: "snapshot response",
                reason: "it does not answer the request".into(),
            }),
        }
    }

    /// Peers with an established connection.
    pub async fn peers(&self) -> Result<Vec<PeerId>, Error> {
        self.call(|reply| Command::Peers { reply }).await
    }

    /// The gossip score of each connected peer (0 for one that forwarded
    /// nothing yet; it rises with valid messages up to `SCORE_MAX` and falls
    /// with invalid ones; a peer is banned below `SCORE_BAN_THRESHOLD`).
    pub async fn peer_scores(&self) -> Result<Vec<(PeerId, f64)>, Error> {
        self.call(|reply| Command::PeerScores { reply }).await
    }

    /// Peers subscribed to `topic`.
    pub async fn topic_peers(&self, topic: Topic) -> Result<Vec<PeerId>, Error> {
        self.call(|reply| Command::TopicPeers { topic, reply })
            .await
    }

    /// Disconnects `peer` and refuses its connections for `duration`.
    pub async fn ban(&self, peer: PeerId, duration: Duration) -> Result<(), Error> {
        self.call(|reply| Command::Ban {
            peer,
            duration,
            reply,
        })
        .await
    }

    /// Peers currently banned.
    pub async fn banned(&self) -> Result<Vec<PeerId>, Error> {
        self.call(|reply| Command::Banned { reply }).await
    }

    /// Dials an address (with or without `/p2p/<peer id>`).
    pub async fn dial(&self, address: Multiaddr) -> Result<(), Error> {
        self.call(|reply| Command::Dial { address, reply }).await?
    }

    /// The addresses the swarm listens on.
    pub async fn listen_addresses(&self) -> Result<Vec<Multiaddr>, Error> {
        self.call(|reply| Command::ListenAddresses { reply }).await
    }

    /// Stops the event loop (closing every connection) and waits for it.
    pub async fn shutdown(&self) -> Result<(), Error> {
        self.call(|reply| Command::Shutdown { reply }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{SyncBlock, SyncStatus};
    use cairn_types::{Hash, Height};

    fn blocks(heights: &[u64]) -> SyncResponse {
        SyncResponse::Blocks(
            heights
                .iter()
                .map(|h| SyncBlock {
                    height: Height(*h),
                    block: vec![],
                    certificate: vec![],
                })
                .collect(),
        )
    }

    #[test]
    fn answers_must_fit_their_requests() {
        let peer = PeerId::random();
        let range = SyncRequest::Blocks {
            from: Height(5),
            count: 3,
        };
        assert!(check_sync_answer(peer, &range, &blocks(&[5, 6, 7])).is_ok());
        assert!(check_sync_answer(peer, &range, &blocks(&[5, 6])).is_ok());
        assert!(check_sync_answer(peer, &range, &blocks(&[])).is_ok());
        assert!(check_sync_answer(peer, &range, &blocks(&[5, 6, 7, 8])).is_err());
        assert!(check_sync_answer(peer, &range, &blocks(&[6, 7])).is_err());
        assert!(check_sync_answer(peer, &range, &blocks(&[5, 7])).is_err());
        let not_held = |lowest| SyncResponse::NotHeld {
            lowest_height: Height(lowest),
        };
        assert!(check_sync_answer(peer, &range, &not_held(6)).is_ok());
        assert!(check_sync_answer(peer, &range, &not_held(5)).is_err());
        assert!(check_sync_answer(peer, &SyncRequest::Status, &not_held(6)).is_err());
        let status = SyncResponse::Status(SyncStatus {
            tip_height: Height(1),
            tip_hash: Hash::ZERO,
            lowest_height: Height(1),
        });
        assert!(check_sync_answer(peer, &SyncRequest::Status, &status).is_ok());
        assert!(check_sync_answer(peer, &range, &status).is_err());
        assert!(check_sync_answer(peer, &SyncRequest::BlockByHash(Hash::ZERO), &status).is_err());
        // Header ranges follow the same rules, and are not blocks.
        let headers = |heights: &[u64]| {
            SyncResponse::Headers(
                heights
                    .iter()
                    .map(|h| crate::SyncHeader {
                        height: Height(*h),
                        header: vec![],
                        certificate: vec![],
                    })
                    .collect(),
            )
        };
        let header_range = SyncRequest::Headers {
            from: Height(5),
            count: 2,
        };
        assert!(check_sync_answer(peer, &header_range, &headers(&[5, 6])).is_ok());
        assert!(check_sync_answer(peer, &header_range, &headers(&[5, 6, 7])).is_err());
        assert!(check_sync_answer(peer, &header_range, &headers(&[6])).is_err());
        assert!(check_sync_answer(peer, &header_range, &not_held(6)).is_ok());
        assert!(check_sync_answer(peer, &header_range, &blocks(&[5, 6])).is_err());
        assert!(check_sync_answer(peer, &range, &headers(&[5, 6])).is_err());
    }
}
