//! The validator's sign state: the last (height, round, step) it signed and
//! the lock it held at that height, kept in `config/sign_state.json` apart
//! from the chain data, so that no reset of `data/` (which holds the
//! consensus WAL) can make it sign a proposal or vote that conflicts with
//! one it signed before, or forget a lock (CometBFT's
//! `priv_validator_state.json` keeps the first, not the second).
//!
//! The rule ([`LastSigned::allows`], in `cairn-consensus`): a message is
//! signed only if its (height, round, step) is after the recorded one, or
//! is the recorded one with the same block (the same message again); steps
//! order as proposal < prevote < precommit. Every new driver gets the
//! record as its signing floor, so it does not even sign anything else: the
//! validator stays silent for those steps. The record also keeps the last
//! prevote of its height (when the last message is a later one): when the
//! WAL lost them (a reset in the middle of a height), the driver signs the
//! recorded vote and prevote again (ed25519 signatures are deterministic:
//! the very messages it sent), so its round still gathers the votes to end.
//! A record without the prevote (an earlier build's) still reads. It also gets the recorded lock
//! ([`cairn_consensus::Driver::set_lock_floor`]): a height started without
//! a newer lock in its WAL takes it, so after a reset in the middle of a
//! height the validator still prevotes only as its lock allows (a lost WAL
//! costs at most the rounds it already signed, never a vote against its
//! lock). The host records each new signature and each new lock here when
//! the driver persists them, and stops the node should a signature ever
//! break the rule.
//!
//! The record is written before the message can leave (before the step's
//! WAL sync releases it): one `pwrite` of a fixed-size record at offset 0
//! and one `fdatasync` (about 0.13 ms on this project's machine), at every
//! record and before the WAL append, not once per step: a WAL entry can
//! become durable before the step's sync (a synced write of the block-sync
//! task, a memtable flush, the kernel's writeback), and a WAL that holds a
//! vote the sign state does not would let a later reset sign against it
//! (a one-sync-per-step version was measured, gave nothing above the
//! noise, and was reverted for that reason; see BENCHMARKS.md). The
//! record is [`RECORD_BYTES`] long, within one disk sector, so a crash
//! leaves the old or the new record, not a mix; a file that does not parse
//! stops the node with a message rather than being replaced.

use std::{
    fs::{File, OpenOptions},
    io::Read,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

pub use cairn_consensus::{LastSigned, SignedStep};
use cairn_types::{Hash, Height, Round};
use serde::{Deserialize, Serialize};

use crate::NodeError;

/// Length of the record on disk: JSON padded with spaces, then a newline
/// (one disk sector).
pub const RECORD_BYTES: usize = 512;

/// The lock this validator held at the height of its last signature
/// (Tendermint's `lockedValue`/`lockedRound`): kept with the signature so
/// that a validator whose WAL was lost keeps its lock too, not only its
/// floor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedValue {
    /// Height of the lock.
    pub height: Height,
    /// `lockedRound`.
    pub round: Round,
    /// `lockedValue`.
    pub block_hash: Hash,
}

/// The record on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignRecord {
    height: Height,
    round: Round,
    step: SignedStep,
    block_hash: Option<Hash>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    locked: Option<LockedValue>,
    /// The last prevote signed at this height, when the last message is a
    /// precommit or a proposal after it (so a driver whose WAL lost both
    /// can sign both again; see [`SignState::last_prevote`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prevote: Option<RecordedPrevote>,
}

/// The last prevote, kept beside the last message of its height.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordedPrevote {
    round: Round,
    block_hash: Option<Hash>,
}

impl SignRecord {
    fn new(
        last: LastSigned,
        locked: Option<LockedValue>,
        prevote: Option<LastSigned>,
    ) -> SignRecord {
        SignRecord {
            height: last.height,
            round: last.round,
            step: last.step,
            block_hash: last.block_hash,
            locked: locked.filter(|lock| lock.height == last.height),
            prevote: prevote
                .filter(|prevote| prevote.height == last.height && *prevote != last)
                .map(|prevote| RecordedPrevote {
                    round: prevote.round,
                    block_hash: prevote.block_hash,
                }),
        }
    }

    fn prevote(&self) -> Option<LastSigned> {
        let last = self.last();
        if last.step == SignedStep::Prevote {
            return Some(last);
        }
        self.prevote.map(|prevote| LastSigned {
            height: self.height,
            round: prevote.round,
            step: SignedStep::Prevote,
            block_hash: prevote.block_hash,
        })
    }

    fn last(&self) -> LastSigned {
        LastSigned {
            height: self.height,
            round: self.round,
            step: self.step,
            block_hash: self.block_hash,
        }
    }
}

/// Parses the text of a sign state record (for `cairnd check`, which reads
/// without creating the file): the last signed message and the lock.
pub fn parse_record(text: &str) -> Result<(LastSigned, Option<LockedValue>), serde_json::Error> {
    let record: SignRecord = serde_json::from_str(text.trim())?;
    Ok((record.last(), record.locked))
}

/// Whether a message may be signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignVerdict {
    /// Recorded (or the same message again): sign and send it.
    Sign,
    /// It would conflict with, or come before, what was signed: the reason.
    Refuse(String),
}

/// The last signed message and, for a node, the file that keeps it.
#[derive(Debug)]
pub struct SignState {
    last: Option<LastSigned>,
    locked: Option<LockedValue>,
    /// The last prevote signed (of the height of `last`).
    prevote: Option<LastSigned>,
    file: Option<(File, PathBuf)>,
}

impl SignState {
    /// A sign state that lives only in memory (tests, the simulator).
    pub fn in_memory() -> SignState {
        SignState {
            last: None,
            locked: None,
            prevote: None,
            file: None,
        }
    }

    /// Opens `path`, creating it (empty: nothing signed yet) when missing.
    pub fn open(path: &Path) -> Result<SignState, NodeError> {
        let io_error = |action: &'static str| {
            move |source| NodeError::Io {
                action,
                path: path.to_path_buf(),
                source,
            }
        };
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true);
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(path)
            .map_err(io_error("open sign state file"))?;
        // The directory entry of a new file is durable too (the first
        // record must survive a power loss).
        if let Some(directory) = path.parent() {
            File::open(directory)
                .and_then(|directory| directory.sync_all())
                .map_err(io_error("sync the directory of the sign state file"))?;
        }
        let mut text = String::new();
        (&mut file)
            .take(RECORD_BYTES as u64 * 4)
            .read_to_string(&mut text)
            .map_err(io_error("read sign state file"))?;
        let trimmed = text.trim();
        let record: Option<SignRecord> = if trimmed.is_empty() {
            None
        } else {
            Some(serde_json::from_str(trimmed).map_err(|error| NodeError::SignState {
                path: path.to_path_buf(),
                message: format!(
                    "it does not parse ({error}). It records the last vote this validator signed; without it the validator could sign a conflicting vote. Restore it from a backup; delete it only if this validator never signed on this chain, or run `cairnd unsafe-reset-all` for a new chain"
                ),
            })?)
        };
        Ok(SignState {
            last: record.map(|record| record.last()),
            locked: record.and_then(|record| record.locked),
            prevote: record.and_then(|record| record.prevote()),
            file: Some((file, path.to_path_buf())),
        })
    }

    /// The last signed message.
    pub fn last(&self) -> Option<LastSigned> {
        self.last
    }

    /// The lock held at the height of the last signed message.
    pub fn locked(&self) -> Option<LockedValue> {
        self.locked
    }

    /// The last prevote signed at the height of the last signed message
    /// (the last message itself when it is a prevote). A driver whose WAL
    /// lost its votes signs this one again beside the last message
    /// ([`cairn_consensus::Driver::set_prevote_floor`]): when the last
    /// message is a precommit, the round may still need the prevote.
    pub fn last_prevote(&self) -> Option<LastSigned> {
        self.prevote
            .filter(|prevote| self.last.is_some_and(|last| last.height == prevote.height))
    }

    /// Records a new lock (durably) before it can show in a vote.
    pub fn record_lock(&mut self, lock: LockedValue) -> Result<(), NodeError> {
        let Some(last) = self.last else {
            // Nothing signed yet at any height: the lock's precommit comes
            // next and is recorded with it.
            self.locked = Some(lock);
            return Ok(());
        };
        if self.locked == Some(lock) {
            return Ok(());
        }
        let record = SignRecord::new(last, Some(lock), self.prevote);
        self.write(&record)?;
        self.locked = record.locked;
        Ok(())
    }

    fn write(&self, record: &SignRecord) -> Result<(), NodeError> {
        if let Some((file, path)) = &self.file {
            write_record(file, record).map_err(|source| NodeError::Io {
                action: "write sign state file",
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Checks `message` against the last one and, when it may be signed,
    /// records it durably before returning [`SignVerdict::Sign`].
    pub fn check_and_record(&mut self, message: LastSigned) -> Result<SignVerdict, NodeError> {
        // The recorded prevote again (a driver whose WAL lost it signs that
        // very message again): nothing new to record.
        if self.last_prevote() == Some(message) {
            return Ok(SignVerdict::Sign);
        }
        if let Some(last) = self.last {
            if let Err(reason) = last.allows(&message) {
                return Ok(SignVerdict::Refuse(reason));
            }
            if last == message {
                return Ok(SignVerdict::Sign);
            }
        }
        let prevote = match message.step {
            SignedStep::Prevote => Some(message),
            SignedStep::Proposal | SignedStep::Precommit => self.prevote,
        };
        let record = SignRecord::new(message, self.locked, prevote);
        self.write(&record)?;
        self.last = Some(message);
        self.locked = record.locked;
        self.prevote = record.prevote();
        Ok(SignVerdict::Sign)
    }
}

/// Writes the fixed-size record at offset 0 and syncs it.
fn write_record(file: &File, record: &SignRecord) -> std::io::Result<()> {
    let mut record = serde_json::to_vec(record)?;
    if record.len() >= RECORD_BYTES {
        return Err(std::io::Error::other(format!(
            "the sign state record is {} bytes, more than {RECORD_BYTES}",
            record.len()
        )));
    }
    record.resize(RECORD_BYTES - 1, b' ');
    record.push(b'\n');
    file.write_all_at(&record, 0)?;
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(height: u64, round: u32, step: SignedStep, hash: Option<u8>) -> LastSigned {
        LastSigned {
            height: Height(height),
            round: Round(round),
            step,
            block_hash: hash.map(|byte| Hash([byte; 32])),
        }
    }

    #[test]
    fn signs_forward_and_refuses_back_or_conflicting() {
        let mut state = SignState::in_memory();
        let sign = |state: &mut SignState, m| state.check_and_record(m).expect("check");
        assert_eq!(
            sign(&mut state, message(5, 0, SignedStep::Proposal, Some(1))),
            SignVerdict::Sign
        );
        assert_eq!(
            sign(&mut state, message(5, 0, SignedStep::Prevote, Some(1))),
            SignVerdict::Sign
        );
        // The same vote again is fine; another block at the same step is not.
        assert_eq!(
            sign(&mut state, message(5, 0, SignedStep::Prevote, Some(1))),
            SignVerdict::Sign
        );
        assert!(matches!(
            sign(&mut state, message(5, 0, SignedStep::Prevote, None)),
            SignVerdict::Refuse(_)
        ));
        assert!(matches!(
            sign(&mut state, message(5, 0, SignedStep::Proposal, Some(1))),
            SignVerdict::Refuse(_)
        ));
        assert!(matches!(
            sign(&mut state, message(4, 9, SignedStep::Precommit, Some(1))),
            SignVerdict::Refuse(_)
        ));
        assert_eq!(
            sign(&mut state, message(5, 1, SignedStep::Prevote, None)),
            SignVerdict::Sign
        );
        assert_eq!(
            sign(&mut state, message(6, 0, SignedStep::Prevote, Some(2))),
            SignVerdict::Sign
        );
    }

    #[test]
    fn the_record_survives_reopening_and_a_corrupt_file_stops() {
        let directory = tempfile::tempdir().expect("tempdir");
        let path = directory.path().join("sign_state.json");
        let mut state = SignState::open(&path).expect("open");
        assert_eq!(state.last(), None);
        let signed = message(7, 2, SignedStep::Precommit, Some(3));
        state.check_and_record(signed).expect("record");
        state
            .check_and_record(message(8, 0, SignedStep::Prevote, None))
            .expect("record");
        drop(state);
        assert_eq!(
            std::fs::metadata(&path).expect("metadata").len(),
            RECORD_BYTES as u64
        );
        let mut reopened = SignState::open(&path).expect("reopen");
        assert_eq!(
            reopened.last(),
            Some(message(8, 0, SignedStep::Prevote, None))
        );
        assert!(matches!(
            reopened.check_and_record(signed).expect("check"),
            SignVerdict::Refuse(_)
        ));
        std::fs::write(&path, b"{\"height\": 3, garbage").expect("write");
        let error = SignState::open(&path).expect_err("corrupt");
        assert!(error.to_string().contains("sign_state.json"), "{error}");
    }

    #[test]
    fn the_last_prevote_is_kept_beside_a_later_message_of_its_height() {
        let directory = tempfile::tempdir().expect("tempdir");
        let path = directory.path().join("sign_state.json");
        let mut state = SignState::open(&path).expect("open");
        let prevote = message(4, 1, SignedStep::Prevote, Some(9));
        state.check_and_record(prevote).expect("record");
        assert_eq!(state.last_prevote(), Some(prevote));
        state
            .check_and_record(message(4, 1, SignedStep::Precommit, Some(9)))
            .expect("record");
        assert_eq!(state.last_prevote(), Some(prevote));
        drop(state);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("\"prevote\""), "{text}");
        let mut reopened = SignState::open(&path).expect("reopen");
        assert_eq!(reopened.last_prevote(), Some(prevote));
        // That prevote again is the same message: allowed, nothing changes;
        // another prevote of that round is not.
        assert_eq!(
            reopened.check_and_record(prevote).expect("check"),
            SignVerdict::Sign
        );
        assert!(matches!(
            reopened
                .check_and_record(message(4, 1, SignedStep::Prevote, None))
                .expect("check"),
            SignVerdict::Refuse(_)
        ));
        // A message of the next height leaves it behind.
        reopened
            .check_and_record(message(5, 0, SignedStep::Proposal, Some(1)))
            .expect("record");
        assert_eq!(reopened.last_prevote(), None);
        // A record without it (an earlier build's) still reads.
        std::fs::write(
            &path,
            br#"{"height":4,"round":1,"step":"precommit","block_hash":null}"#,
        )
        .expect("write");
        let older = SignState::open(&path).expect("open an older record");
        assert_eq!(older.last_prevote(), None);
    }

    #[test]
    fn the_lock_is_kept_with_the_signature_of_its_height() {
        let directory = tempfile::tempdir().expect("tempdir");
        let path = directory.path().join("sign_state.json");
        let mut state = SignState::open(&path).expect("open");
        state
            .check_and_record(message(4, 1, SignedStep::Prevote, Some(7)))
            .expect("record");
        let lock = LockedValue {
            height: Height(4),
            round: Round(1),
            block_hash: Hash([7; 32]),
        };
        state.record_lock(lock).expect("lock");
        state
            .check_and_record(message(4, 1, SignedStep::Precommit, Some(7)))
            .expect("record");
        drop(state);
        let mut reopened = SignState::open(&path).expect("reopen");
        assert_eq!(reopened.locked(), Some(lock));
        // The next height drops it.
        reopened
            .check_and_record(message(5, 0, SignedStep::Prevote, None))
            .expect("record");
        drop(reopened);
        assert_eq!(SignState::open(&path).expect("reopen").locked(), None);
    }
}
