//! Every bound of the consensus driver, defined once. Units last.

/// Messages for rounds more than this many rounds ahead of the current
/// round are dropped (the vote keeper and proposal map are the buffer of
/// future rounds).
pub const ROUNDS_AHEAD_MAX: u32 = 16;
/// Most messages buffered for future heights.
pub const FUTURE_HEIGHT_MESSAGES_MAX: usize = 4_096;
/// Proposals of the next height are buffered for rounds 0 to this one
/// only (one per round): each may carry a whole block, so at most three
/// blocks wait for the next height. Later rounds' proposals are fetched
/// again with a round-state request if the height gets there.
pub const FUTURE_PROPOSAL_ROUNDS_MAX: u32 = 2;
/// How many heights ahead messages are buffered (1: only the next height).
pub const FUTURE_HEIGHTS_AHEAD_MAX: u64 = 1;
/// Most distinct blocks held for one height.
pub const BLOCKS_PER_HEIGHT_MAX: usize = 64;
/// Most requests (build, validate, fetch) waiting for an answer.
pub const PENDING_REQUESTS_MAX: usize = 128;
/// Most evidence items kept for one height.
pub const EVIDENCE_PER_HEIGHT_MAX: usize = 1_024;
/// Largest encoded WAL entry (a block with some room).
pub const WAL_ENTRY_BYTES_MAX: usize = cairn_types::limits::BLOCK_BYTES_MAX + 64 * 1024;
/// Most WAL entries replayed for one height.
pub const WAL_ENTRIES_PER_HEIGHT_MAX: usize = 65_536;
/// Most round-state-machine transitions run for one input (a safety net
/// against a rule loop; each transition changes state, so far fewer occur).
pub const TRANSITIONS_PER_INPUT_MAX: usize = 1_024;
/// Most slots in the proposer schedule; larger voting powers are scaled
/// down proportionally to fit.
pub const PROPOSER_SCHEDULE_SLOTS_MAX: u64 = 4_096;
