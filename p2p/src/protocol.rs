//! Request and response types of the two request-response protocols, and
//! their bounded encoding.
//!
//! * Block sync, `/cairn/<chain-id>/sync/1`: the tip of a peer (and the
//!   lowest height it holds), a range of blocks with their certificates
//!   (or "not held" from a peer that pruned them), a range of headers
//!   with their certificates (what a state sync walks to trust a snapshot
//!   height, without the blocks' transactions), or one block by hash.
//! * Round state, `/cairn/<chain-id>/round-state/1`: the proposal and the
//!   votes a peer holds for a height and round.
//! * Snapshots, `/cairn/<chain-id>/snapshot/1`: the state snapshots a peer
//!   offers, a snapshot's manifest, one chunk, or a validator set by hash
//!   (what state sync needs to follow set changes without executing).
//!
//! Blocks, certificates, proposals and votes travel as opaque bytes that the
//! node encodes and decodes; this crate only bounds them. Encoding is
//! postcard; every decode checks the input length against the protocol's
//! bound first, then rejects trailing bytes.

use cairn_types::{Hash, Height, Round};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::limits::{
    REFUSAL_REASON_BYTES_MAX, ROUND_STATE_REQUEST_BYTES_MAX, ROUND_STATE_RESPONSE_BYTES_MAX,
    ROUND_STATE_VOTES_MAX, SNAPSHOT_OFFERS_MAX, SNAPSHOT_PAYLOAD_BYTES_MAX,
    SNAPSHOT_REQUEST_BYTES_MAX, SNAPSHOT_RESPONSE_BYTES_MAX, SYNC_RANGE_BLOCKS_MAX,
    SYNC_RANGE_HEADERS_MAX, SYNC_REQUEST_BYTES_MAX, SYNC_RESPONSE_BYTES_MAX, SYNC_TRANSACTIONS_MAX,
};
use crate::Error;

/// A block-sync request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRequest {
    /// The peer's tip: height and hash of its latest committed block.
    Status,
    /// Blocks `from ..= from + count - 1` with their certificates; `count` is
    /// at most [`SYNC_RANGE_BLOCKS_MAX`].
    Blocks {
        /// First height wanted.
        from: Height,
        /// How many blocks.
        count: u32,
    },
    /// One block (with its certificate when the peer has it) by hash.
    BlockByHash(Hash),
    /// Headers `from ..= from + count - 1` with their certificates; `count`
    /// is at most [`SYNC_RANGE_HEADERS_MAX`]. Answered like
    /// [`SyncRequest::Blocks`] (fewer when cut, "not held" when pruned).
    Headers {
        /// First height wanted.
        from: Height,
        /// How many headers.
        count: u32,
    },
    /// Pending transactions by hash (a compact proposal's transactions the
    /// asker lacks); at most [`SYNC_TRANSACTIONS_MAX`] hashes. Answered
    /// with [`SyncResponse::Transactions`]: those the peer holds.
    Transactions(Vec<Hash>),
}

impl SyncRequest {
    /// Checks the request against the protocol's bounds.
    pub fn check(&self) -> Result<(), Error> {
        match self {
            SyncRequest::Blocks { count: 0, .. } | SyncRequest::Headers { count: 0, .. } => {
                Err(Error::RequestOverLimit(
                    "a range request must ask for at least one height".to_string(),
                ))
            }
            SyncRequest::Blocks { count, .. } if *count > SYNC_RANGE_BLOCKS_MAX => {
                Err(Error::RequestOverLimit(format!(
                    "a block range request asks for {count} blocks, the limit is \
                     {SYNC_RANGE_BLOCKS_MAX}; split it into smaller ranges"
                )))
            }
            SyncRequest::Headers { count, .. } if *count > SYNC_RANGE_HEADERS_MAX => {
                Err(Error::RequestOverLimit(format!(
                    "a header range request asks for {count} headers, the limit is \
                     {SYNC_RANGE_HEADERS_MAX}; split it into smaller ranges"
                )))
            }
            SyncRequest::Transactions(hashes) if hashes.is_empty() => Err(Error::RequestOverLimit(
                "a transactions request must name at least one".into(),
            )),
            SyncRequest::Transactions(hashes) if hashes.len() > SYNC_TRANSACTIONS_MAX => {
                Err(Error::RequestOverLimit(format!(
                    "a transactions request names {} hashes, the limit is \
                     {SYNC_TRANSACTIONS_MAX}; split it",
                    hashes.len()
                )))
            }
            _ => Ok(()),
        }
    }
}

/// The tip of a peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// Height of the latest committed block.
    pub tip_height: Height,
    /// Hash of the latest committed block.
    pub tip_hash: Hash,
    /// The lowest height whose block the peer holds: 1 for a node that
    /// keeps every block, higher for one that prunes (a block request
    /// below it is answered [`SyncResponse::NotHeld`]).
    pub lowest_height: Height,
}

/// A block with the certificate that decided it, both opaque.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncBlock {
    /// Height of the block (lets the client check the order without decoding).
    pub height: Height,
    /// The encoded block.
    pub block: Vec<u8>,
    /// The encoded commit certificate of the block (may be empty when the
    /// peer has none yet, e.g. for its tip).
    pub certificate: Vec<u8>,
}

impl SyncBlock {
    /// Bytes this block takes in a response, roughly (payloads plus framing).
    pub fn wire_bytes(&self) -> usize {
        self.block.len() + self.certificate.len() + 32
    }
}

/// A header with the certificate that decided its block, both opaque.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncHeader {
    /// Height of the header.
    pub height: Height,
    /// The encoded header.
    pub header: Vec<u8>,
    /// The encoded commit certificate of its block.
    pub certificate: Vec<u8>,
}

/// What a range answer holds: items of consecutive heights, each of some
/// size on the wire.
pub(crate) trait RangeItem {
    /// The item's height.
    fn height(&self) -> Height;
    /// Bytes it takes in a response, roughly (payloads plus framing).
    fn wire_bytes(&self) -> usize;
}

impl RangeItem for SyncBlock {
    fn height(&self) -> Height {
        self.height
    }
    fn wire_bytes(&self) -> usize {
        SyncBlock::wire_bytes(self)
    }
}

impl RangeItem for SyncHeader {
    fn height(&self) -> Height {
        self.height
    }
    fn wire_bytes(&self) -> usize {
        self.header.len() + self.certificate.len() + 32
    }
}

/// A block-sync response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncResponse {
    /// Answer to [`SyncRequest::Status`].
    Status(SyncStatus),
    /// Answer to [`SyncRequest::Blocks`]: consecutive blocks starting at the
    /// requested height; fewer than asked when the peer has fewer or the
    /// byte bound was reached (ask again for the rest).
    Blocks(Vec<SyncBlock>),
    /// Answer to [`SyncRequest::BlockByHash`]; `None` when unknown.
    Block(Option<SyncBlock>),
    /// Answer to [`SyncRequest::Headers`]: consecutive headers starting at
    /// the requested height; fewer than asked when the peer has fewer or
    /// the byte bound was reached.
    Headers(Vec<SyncHeader>),
    /// The peer will not answer, and why.
    Refused(String),
    /// Answer to [`SyncRequest::Blocks`] or [`SyncRequest::Headers`] from a
    /// peer that pruned the first height asked for: it holds heights `lowest_height ..= tip` only. Not
    /// a fault: ask another peer (one whose [`SyncStatus::lowest_height`]
    /// is low enough) for those heights.
    NotHeld {
        /// The lowest height the peer holds.
        lowest_height: Height,
    },
    /// Answer to [`SyncRequest::Transactions`]: the encoded transactions
    /// the peer holds among those asked for (any order; the asker matches
    /// them by hash), at most as many as asked.
    Transactions(Vec<Vec<u8>>),
}

/// A round-state request: what the peer holds for this height and round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundStateRequest {
    /// The height.
    pub height: Height,
    /// The round.
    pub round: Round,
}

/// A round-state response.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundState {
    /// The encoded signed proposal message (with its block), if the peer has it.
    pub proposal: Option<Vec<u8>>,
    /// The encoded signed votes the peer holds, at most [`ROUND_STATE_VOTES_MAX`].
    pub votes: Vec<Vec<u8>>,
}

/// The answer on the round-state protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoundStateResponse {
    /// What the peer holds.
    State(RoundState),
    /// The peer will not answer, and why.
    Refused(String),
}

/// A snapshot request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotRequest {
    /// The snapshots the peer offers.
    List,
    /// The encoded manifest of the snapshot of a height.
    Manifest {
        /// The snapshot's height.
        height: Height,
    },
    /// One chunk of the snapshot of a height.
    Chunk {
        /// The snapshot's height.
        height: Height,
        /// The chunk's index.
        index: u32,
    },
    /// The encoded validator set with this hash.
    ValidatorSet(Hash),
}

/// A snapshot a peer offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotOffer {
    /// Its height.
    pub height: Height,
    /// SHA-256 of its encoded manifest (peers offering the same snapshot
    /// offer the same hash).
    pub manifest_hash: Hash,
    /// Its number of chunks.
    pub chunks: u32,
}

/// A snapshot response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotResponse {
    /// Answer to [`SnapshotRequest::List`], newest first, at most
    /// [`SNAPSHOT_OFFERS_MAX`].
    List(Vec<SnapshotOffer>),
    /// Answer to [`SnapshotRequest::Manifest`]; `None` when not held.
    Manifest(Option<Vec<u8>>),
    /// Answer to [`SnapshotRequest::Chunk`]; `None` when not held.
    Chunk(Option<Vec<u8>>),
    /// Answer to [`SnapshotRequest::ValidatorSet`]; `None` when unknown.
    ValidatorSet(Option<Vec<u8>>),
    /// The peer will not answer, and why.
    Refused(String),
}

/// Fits a node's snapshot answer to the request and the bounds: a list is
/// cut to [`SNAPSHOT_OFFERS_MAX`]; a payload over
/// [`SNAPSHOT_PAYLOAD_BYTES_MAX`] or an answer of the wrong kind becomes a
/// refusal.
pub(crate) fn fit_snapshot_response(
    request: &SnapshotRequest,
    response: SnapshotResponse,
) -> SnapshotResponse {
    let payload_ok = |payload: &Option<Vec<u8>>| {
        payload
            .as_ref()
            .is_none_or(|bytes| bytes.len() <= SNAPSHOT_PAYLOAD_BYTES_MAX)
    };
    match (request, response) {
        (SnapshotRequest::List, SnapshotResponse::List(mut offers)) => {
            offers.truncate(SNAPSHOT_OFFERS_MAX);
            SnapshotResponse::List(offers)
        }
        (SnapshotRequest::Manifest { .. }, SnapshotResponse::Manifest(payload))
            if payload_ok(&payload) =>
        {
            SnapshotResponse::Manifest(payload)
        }
        (SnapshotRequest::Chunk { .. }, SnapshotResponse::Chunk(payload))
            if payload_ok(&payload) =>
        {
            SnapshotResponse::Chunk(payload)
        }
        (SnapshotRequest::ValidatorSet(_), SnapshotResponse::ValidatorSet(payload))
            if payload_ok(&payload) =>
        {
            SnapshotResponse::ValidatorSet(payload)
        }
        (_, SnapshotResponse::Refused(reason)) => SnapshotResponse::Refused(refusal(reason)),
        _ => SnapshotResponse::Refused(refusal("wrong answer kind or over the size limit")),
    }
}

/// Checks that `response` answers `request` within the bounds.
pub(crate) fn check_snapshot_answer(
    request: &SnapshotRequest,
    response: &SnapshotResponse,
) -> bool {
    matches!(
        (request, response),
        (SnapshotRequest::List, SnapshotResponse::List(offers)) if offers.len() <= SNAPSHOT_OFFERS_MAX
    ) || matches!(
        (request, response),
        (
            SnapshotRequest::Manifest { .. },
            SnapshotResponse::Manifest(_)
        ) | (SnapshotRequest::Chunk { .. }, SnapshotResponse::Chunk(_))
            | (
                SnapshotRequest::ValidatorSet(_),
                SnapshotResponse::ValidatorSet(_)
            )
    )
}

/// Which request-response protocol a message belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Block sync.
    Sync,
    /// Round state.
    RoundState,
    /// Snapshots (state sync).
    Snapshot,
}

impl Protocol {
    /// The protocol name for a chain.
    pub fn name(self, chain_id: &str) -> String {
        match self {
            Protocol::Sync => format!("/cairn/{chain_id}/sync/1"),
            Protocol::RoundState => format!("/cairn/{chain_id}/round-state/1"),
            Protocol::Snapshot => format!("/cairn/{chain_id}/snapshot/1"),
        }
    }

    /// Bound of an encoded request.
    pub fn request_bytes_max(self) -> usize {
        match self {
            Protocol::Sync => SYNC_REQUEST_BYTES_MAX,
            Protocol::RoundState => ROUND_STATE_REQUEST_BYTES_MAX,
            Protocol::Snapshot => SNAPSHOT_REQUEST_BYTES_MAX,
        }
    }

    /// Bound of an encoded response.
    pub fn response_bytes_max(self) -> usize {
        match self {
            Protocol::Sync => SYNC_RESPONSE_BYTES_MAX,
            Protocol::RoundState => ROUND_STATE_RESPONSE_BYTES_MAX,
            Protocol::Snapshot => SNAPSHOT_RESPONSE_BYTES_MAX,
        }
    }
}

/// Encodes `value`, refusing results over `limit`.
pub(crate) fn encode<T: Serialize>(
    what: &'static str,
    value: &T,
    limit: usize,
) -> Result<Vec<u8>, Error> {
    let bytes = postcard::to_allocvec(value).map_err(|e| Error::Decode {
        what,
        reason: format!("encoding failed: {e}"),
    })?;
    if bytes.len() > limit {
        return Err(Error::TooLarge {
            what,
            size: bytes.len(),
            limit,
        });
    }
    Ok(bytes)
}

/// Decodes `bytes` (checked against `limit` first), refusing trailing bytes.
pub(crate) fn decode<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
    limit: usize,
) -> Result<T, Error> {
    if bytes.len() > limit {
        return Err(Error::TooLarge {
            what,
            size: bytes.len(),
            limit,
        });
    }
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| Error::Decode {
        what,
        reason: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(Error::Decode {
            what,
            reason: format!("{} trailing bytes", rest.len()),
        });
    }
    Ok(value)
}

/// A refusal reason cut to [`REFUSAL_REASON_BYTES_MAX`].
pub(crate) fn refusal(reason: impl Into<String>) -> String {
    let mut reason = reason.into();
    if reason.len() > REFUSAL_REASON_BYTES_MAX {
        let mut cut = REFUSAL_REASON_BYTES_MAX;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    reason
}

/// Fits a node's sync answer to the request and the bounds: a range is cut
/// to the requested count and to [`SYNC_RESPONSE_BYTES_MAX`] (keeping a
/// prefix, so the client asks again for the rest).
pub(crate) fn fit_sync_response(request: &SyncRequest, response: SyncResponse) -> SyncResponse {
    match (request, response) {
        (SyncRequest::Blocks { count, .. }, SyncResponse::Blocks(blocks)) => {
            match fit_range(blocks, *count) {
                Some(blocks) => SyncResponse::Blocks(blocks),
                None => {
                    SyncResponse::Refused(refusal("the first block exceeds the response limit"))
                }
            }
        }
        (SyncRequest::Headers { count, .. }, SyncResponse::Headers(headers)) => {
            match fit_range(headers, *count) {
                Some(headers) => SyncResponse::Headers(headers),
                None => {
                    SyncResponse::Refused(refusal("the first header exceeds the response limit"))
                }
            }
        }
        (
            SyncRequest::Blocks { .. } | SyncRequest::Headers { .. },
            r @ SyncResponse::NotHeld { .. },
        ) => r,
        (SyncRequest::Status, r @ SyncResponse::Status(_)) => r,
        (SyncRequest::BlockByHash(_), r @ SyncResponse::Block(_)) => r,
        (SyncRequest::Transactions(hashes), SyncResponse::Transactions(mut transactions)) => {
            transactions.truncate(hashes.len());
            let mut bytes = 0usize;
            let fitting = transactions
                .iter()
                .take_while(|transaction| {
                    bytes = bytes.saturating_add(transaction.len() + 8);
                    bytes <= SYNC_RESPONSE_BYTES_MAX - crate::limits::ENVELOPE_BYTES_MAX
                })
                .count();
            transactions.truncate(fitting);
            SyncResponse::Transactions(transactions)
        }
        (_, SyncResponse::Refused(r)) => SyncResponse::Refused(refusal(r)),
        _ => SyncResponse::Refused(refusal("wrong answer kind")),
    }
}

/// Cuts a range answer to the requested count and to
/// [`SYNC_RESPONSE_BYTES_MAX`], keeping a prefix; `None` when even the
/// first item does not fit.
fn fit_range<T: RangeItem>(mut items: Vec<T>, count: u32) -> Option<Vec<T>> {
    items.truncate(usize::try_from(count).unwrap_or(usize::MAX));
    let budget = SYNC_RESPONSE_BYTES_MAX - crate::limits::ENVELOPE_BYTES_MAX;
    let mut used = 0usize;
    let mut keep = 0usize;
    for item in &items {
        used = used.saturating_add(item.wire_bytes());
        if used > budget {
            break;
        }
        keep += 1;
    }
    if keep == 0 && !items.is_empty() {
        return None;
    }
    items.truncate(keep);
    Some(items)
}

/// Fits a node's round-state answer to the bounds.
pub(crate) fn fit_round_state(response: RoundStateResponse) -> RoundStateResponse {
    match response {
        RoundStateResponse::State(mut state) => {
            state.votes.truncate(ROUND_STATE_VOTES_MAX);
            RoundStateResponse::State(state)
        }
        RoundStateResponse::Refused(r) => RoundStateResponse::Refused(refusal(r)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tag of every sync request and response on the wire: a node
    /// of another version reads them by these numbers, so a new kind goes
    /// last and none is renumbered.
    #[test]
    fn sync_message_tags_are_stable() {
        let tag = |bytes: Vec<u8>| bytes[0];
        let hash = Hash([1; 32]);
        let requests = [
            (SyncRequest::Status, 0),
            (
                SyncRequest::Blocks {
                    from: Height(1),
                    count: 1,
                },
                1,
            ),
            (SyncRequest::BlockByHash(hash), 2),
            (
                SyncRequest::Headers {
                    from: Height(1),
                    count: 1,
                },
                3,
            ),
            (SyncRequest::Transactions(vec![hash]), 4),
        ];
        for (request, expected) in requests {
            let bytes = encode("req", &request, SYNC_REQUEST_BYTES_MAX).unwrap();
            assert_eq!(tag(bytes), expected, "{request:?}");
        }
        let responses = [
            (SyncResponse::Blocks(Vec::new()), 1),
            (SyncResponse::Block(None), 2),
            (SyncResponse::Headers(Vec::new()), 3),
            (SyncResponse::Refused(String::new()), 4),
            (
                SyncResponse::NotHeld {
                    lowest_height: Height(7),
                },
                5,
            ),
            (SyncResponse::Transactions(Vec::new()), 6),
        ];
        for (response, expected) in responses {
            let bytes = encode("resp", &response, SYNC_RESPONSE_BYTES_MAX).unwrap();
            assert_eq!(tag(bytes), expected, "{response:?}");
        }
    }

    #[test]
    fn round_trip_and_garbage() {
        let req = SyncRequest::Blocks {
            from: Height(5),
            count: 3,
        };
        let bytes = encode("req", &req, SYNC_REQUEST_BYTES_MAX).unwrap();
        let back: SyncRequest = decode("req", &bytes, SYNC_REQUEST_BYTES_MAX).unwrap();
        assert_eq!(req, back);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode::<SyncRequest>("req", &trailing, SYNC_REQUEST_BYTES_MAX).is_err());
        for seed in 0u8..=255 {
            let garbage: Vec<u8> = (0..64u8)
                .map(|i| i.wrapping_mul(seed).wrapping_add(seed))
                .collect();
            let _ = decode::<SyncResponse>("resp", &garbage, SYNC_RESPONSE_BYTES_MAX);
            let _ = decode::<RoundStateResponse>("resp", &garbage, ROUND_STATE_RESPONSE_BYTES_MAX);
        }
        assert!(matches!(
            decode::<SyncRequest>(
                "req",
                &vec![0; SYNC_REQUEST_BYTES_MAX + 1],
                SYNC_REQUEST_BYTES_MAX
            ),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn snapshot_answers_are_fitted_to_their_requests() {
        let list = SnapshotResponse::List(
            (0..40)
                .map(|h| SnapshotOffer {
                    height: Height(h),
                    manifest_hash: Hash([1; 32]),
                    chunks: 1,
                })
                .collect(),
        );
        match fit_snapshot_response(&SnapshotRequest::List, list) {
            SnapshotResponse::List(offers) => assert_eq!(offers.len(), SNAPSHOT_OFFERS_MAX),
            other => panic!("{other:?}"),
        }
        let chunk = SnapshotRequest::Chunk {
            height: Height(5),
            index: 0,
        };
        assert!(matches!(
            fit_snapshot_response(
                &chunk,
                SnapshotResponse::Chunk(Some(vec![0; SNAPSHOT_PAYLOAD_BYTES_MAX + 1]))
            ),
            SnapshotResponse::Refused(_)
        ));
        assert!(matches!(
            fit_snapshot_response(&chunk, SnapshotResponse::Manifest(None)),
            SnapshotResponse::Refused(_)
        ));
        let fitted = fit_snapshot_response(&chunk, SnapshotResponse::Chunk(Some(vec![1; 10])));
        assert!(check_snapshot_answer(&chunk, &fitted));
        let bytes = encode("resp", &fitted, SNAPSHOT_RESPONSE_BYTES_MAX).unwrap();
        let back: SnapshotResponse = decode("resp", &bytes, SNAPSHOT_RESPONSE_BYTES_MAX).unwrap();
        assert_eq!(back, fitted);
        for seed in 0u8..=255 {
            let garbage: Vec<u8> = (0..64u8)
                .map(|i| i.wrapping_mul(seed).wrapping_add(seed))
                .collect();
            let _ = decode::<SnapshotResponse>("resp", &garbage, SNAPSHOT_RESPONSE_BYTES_MAX);
            let _ = decode::<SnapshotRequest>("req", &garbage, SNAPSHOT_REQUEST_BYTES_MAX);
        }
    }

    #[test]
    fn range_limits() {
        assert!(SyncRequest::Blocks {
            from: Height(1),
            count: SYNC_RANGE_BLOCKS_MAX
        }
        .check()
        .is_ok());
        assert!(SyncRequest::Blocks {
            from: Height(1),
            count: SYNC_RANGE_BLOCKS_MAX + 1
        }
        .check()
        .is_err());
        assert!(SyncRequest::Blocks {
            from: Height(1),
            count: 0
        }
        .check()
        .is_err());
        let blocks = (1..=10)
            .map(|h| SyncBlock {
                height: Height(h),
                block: vec![1; 10],
                certificate: vec![],
            })
            .collect();
        let fitted = fit_sync_response(
            &SyncRequest::Blocks {
                from: Height(1),
                count: 4,
            },
            SyncResponse::Blocks(blocks),
        );
        match fitted {
            SyncResponse::Blocks(b) => assert_eq!(b.len(), 4),
            other => panic!("{other:?}"),
        }
        // "Not held" passes for a range, not for another request.
        let not_held = SyncResponse::NotHeld {
            lowest_height: Height(9),
        };
        let range = SyncRequest::Blocks {
            from: Height(1),
            count: 4,
        };
        assert_eq!(fit_sync_response(&range, not_held.clone()), not_held);
        assert!(matches!(
            fit_sync_response(&SyncRequest::Status, not_held.clone()),
            SyncResponse::Refused(_)
        ));
        let bytes = encode("resp", &not_held, SYNC_RESPONSE_BYTES_MAX).unwrap();
        let back: SyncResponse = decode("resp", &bytes, SYNC_RESPONSE_BYTES_MAX).unwrap();
        assert_eq!(back, not_held);
    }

    #[test]
    fn header_ranges_are_bounded_and_fitted() {
        let headers = |count: u32| SyncRequest::Headers {
            from: Height(1),
            count,
        };
        assert!(headers(SYNC_RANGE_HEADERS_MAX).check().is_ok());
        assert!(headers(SYNC_RANGE_HEADERS_MAX + 1).check().is_err());
        assert!(headers(0).check().is_err());
        let answer = SyncResponse::Headers(
            (1..=10)
                .map(|h| SyncHeader {
                    height: Height(h),
                    header: vec![1; 300],
                    certificate: vec![2; 400],
                })
                .collect(),
        );
        match fit_sync_response(&headers(4), answer.clone()) {
            SyncResponse::Headers(kept) => assert_eq!(kept.len(), 4),
            other => panic!("{other:?}"),
        }
        // A header answer to a block request is the wrong kind.
        assert!(matches!(
            fit_sync_response(
                &SyncRequest::Blocks {
                    from: Height(1),
                    count: 4
                },
                answer.clone()
            ),
            SyncResponse::Refused(_)
        ));
        let not_held = SyncResponse::NotHeld {
            lowest_height: Height(9),
        };
        assert_eq!(fit_sync_response(&headers(4), not_held.clone()), not_held);
        let bytes = encode("resp", &answer, SYNC_RESPONSE_BYTES_MAX).unwrap();
        let back: SyncResponse = decode("resp", &bytes, SYNC_RESPONSE_BYTES_MAX).unwrap();
        assert_eq!(back, answer);
    }
}
