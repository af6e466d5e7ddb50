//! The local transaction journal: transactions submitted through this
//! node's RPC and admitted to its mempool are appended to
//! `<home>/mempool.journal`, so they survive a restart of the node. On
//! start the journal is read, its transactions are submitted to the
//! mempool again (those that are no longer valid, committed meanwhile or
//! with a stale nonce, are dropped with a log line), and it is written
//! anew with the ones admitted.
//!
//! Format: records of a 4-byte little-endian length and the canonical
//! transaction bytes. The file holds at most [`JOURNAL_BYTES_MAX`]; when an
//! append would pass it, the journal is rewritten with the transactions
//! still pending, and the oldest are left out if that is not enough. A
//! truncated or malformed tail (a crash mid-write) ends the replay there.
//! Records are written without an fsync: a crash of the process keeps
//! them, a crash of the machine may lose the last ones.

use std::{
    collections::VecDeque,
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
};

use cairn_types::{limits::TRANSACTION_BYTES_MAX, sha256, Hash};

use crate::NodeError;

/// Most bytes of the journal file (records with their length prefixes).
pub const JOURNAL_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Most bytes a full journal keeps of what is still pending when it is
/// rewritten (the oldest are left out beyond).
pub const JOURNAL_COMPACTED_BYTES_MAX: usize = JOURNAL_BYTES_MAX / 4 * 3;
/// Bytes of a record's length prefix.
const LENGTH_BYTES: usize = 4;

/// The journal of locally submitted transactions.
pub struct Journal {
    path: PathBuf,
    file: File,
    /// What the file holds, oldest first: (hash, bytes).
    records: VecDeque<(Hash, Vec<u8>)>,
    bytes: usize,
}

/// What [`Journal::open`] read back.
pub struct Replay {
    /// The transactions of the journal, in the order they were appended.
    pub transactions: Vec<Vec<u8>>,
    /// Why reading stopped before the end, if it did.
    pub damaged_tail: Option<String>,
}

impl Journal {
    /// Reads the journal at `path` (none yet is an empty one) and starts
    /// it anew, empty: the caller submits the transactions read and
    /// [`Journal::append`]s the ones admitted.
    pub fn open(path: &Path) -> Result<(Journal, Replay), NodeError> {
        let io_error = |action: &'static str| {
            let path = path.to_path_buf();
            move |source| NodeError::Io {
                action,
                path,
                source,
            }
        };
        let mut replay = Replay {
            transactions: Vec::new(),
            damaged_tail: None,
        };
        match std::fs::metadata(path) {
            Ok(metadata) if metadata.len() > JOURNAL_BYTES_MAX as u64 => {
                replay.damaged_tail = Some(format!(
                    "the file is {} bytes, more than the {JOURNAL_BYTES_MAX} a journal holds; it was not read",
                    metadata.len()
                ));
            }
            Ok(_) => {
                let bytes = std::fs::read(path).map_err(io_error("read the mempool journal"))?;
                let (transactions, damaged) = decode_records(&bytes);
                replay.transactions = transactions;
                replay.damaged_tail = damaged;
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error("read the mempool journal")(error)),
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)
            .map_err(io_error("write the mempool journal"))?;
        Ok((
            Journal {
                path: path.to_path_buf(),
                file,
                records: VecDeque::new(),
                bytes: 0,
            },
            replay,
        ))
    }

    /// Bytes the journal file holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Transactions the journal holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the journal holds nothing.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Appends admitted transactions. When the file would pass
    /// [`JOURNAL_BYTES_MAX`], it is rewritten first with the records
    /// `still_pending` keeps (then without the oldest, down to
    /// [`JOURNAL_COMPACTED_BYTES_MAX`]).
    pub fn append(
        &mut self,
        transactions: &[&[u8]],
        mut still_pending: impl FnMut(&Hash) -> bool,
    ) -> Result<(), NodeError> {
        let adding: usize = transactions
            .iter()
            .map(|bytes| bytes.len() + LENGTH_BYTES)
            .sum();
        if self.bytes.saturating_add(adding) > JOURNAL_BYTES_MAX {
            self.records.retain(|(hash, _)| still_pending(hash));
            self.bytes = self
                .records
                .iter()
                .map(|(_, bytes)| bytes.len() + LENGTH_BYTES)
                .sum();
            // Down to three quarters, so a journal full of pending
            // transactions is rewritten once per quarter appended, not at
            // every append.
            while self.bytes.saturating_add(adding) > JOURNAL_COMPACTED_BYTES_MAX {
                let Some((_, oldest)) = self.records.pop_front() else {
                    break;
                };
                self.bytes = self.bytes.saturating_sub(oldest.len() + LENGTH_BYTES);
            }
            self.rewrite()?;
        }
        let mut buffer = Vec::with_capacity(adding);
        for bytes in transactions {
            if bytes.len() > TRANSACTION_BYTES_MAX
                || self.bytes.saturating_add(bytes.len() + LENGTH_BYTES) > JOURNAL_BYTES_MAX
            {
                continue;
            }
            encode_record(&mut buffer, bytes);
            self.records.push_back((sha256(bytes), bytes.to_vec()));
            self.bytes += bytes.len() + LENGTH_BYTES;
        }
        self.file
            .write_all(&buffer)
            .map_err(|source| NodeError::Io {
                action: "append to the mempool journal",
                path: self.path.clone(),
                source,
            })
    }

    /// Writes the records held to a new file and moves it into place.
    fn rewrite(&mut self) -> Result<(), NodeError> {
        let temporary = self.path.with_extension("journal.new");
        let io_error = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| NodeError::Io {
                action,
                path,
                source,
            }
        };
        let mut buffer = Vec::with_capacity(self.bytes);
        for (_, bytes) in &self.records {
            encode_record(&mut buffer, bytes);
        }
        std::fs::write(&temporary, &buffer)
            .map_err(io_error("write the mempool journal", &temporary))?;
        std::fs::rename(&temporary, &self.path)
            .map_err(io_error("move the mempool journal into place", &self.path))?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io_error("open the mempool journal", &self.path))?;
        Ok(())
    }
}

fn encode_record(buffer: &mut Vec<u8>, bytes: &[u8]) {
    let length = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    buffer.extend_from_slice(&length.to_le_bytes());
    buffer.extend_from_slice(bytes);
}

/// The records of `bytes`, and why decoding stopped early, if it did.
fn decode_records(bytes: &[u8]) -> (Vec<Vec<u8>>, Option<String>) {
    let mut transactions = Vec::new();
    let mut offset = 0usize;
    while offset < bytes.len() {
        let Some(prefix) = bytes.get(offset..offset + LENGTH_BYTES) else {
            return (
                transactions,
                Some(format!("a length prefix is cut off at byte {offset}")),
            );
        };
        let mut length = [0u8; LENGTH_BYTES];
        length.copy_from_slice(prefix);
        let length = u32::from_le_bytes(length) as usize;
        if length == 0 || length > TRANSACTION_BYTES_MAX {
            return (
                transactions,
                Some(format!(
                    "a record at byte {offset} claims {length} bytes (a transaction has 1 to {TRANSACTION_BYTES_MAX})"
                )),
            );
        }
        let start = offset + LENGTH_BYTES;
        let Some(record) = bytes.get(start..start + length) else {
            return (
                transactions,
                Some(format!("the record at byte {offset} is cut off")),
            );
        };
        transactions.push(record.to_vec());
        offset = start + length;
    }
    (transactions, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_reopen_and_a_cut_tail_is_reported() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("mempool.journal");
        let (mut journal, replay) = Journal::open(&path).unwrap();
        assert!(replay.transactions.is_empty() && replay.damaged_tail.is_none());
        journal
            .append(&[b"first".as_slice(), b"second".as_slice()], |_| true)
            .unwrap();
        assert_eq!((journal.len(), journal.bytes()), (2, 19));
        drop(journal);
        // A crash mid-write leaves part of a record.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
        drop(file);
        let (journal, replay) = Journal::open(&path).unwrap();
        assert_eq!(
            replay.transactions,
            vec![b"first".to_vec(), b"second".to_vec()]
        );
        assert!(
            replay.damaged_tail.as_deref().unwrap().contains("cut off"),
            "{:?}",
            replay.damaged_tail
        );
        // Opened anew, empty.
        assert_eq!(journal.len(), 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn a_full_journal_keeps_what_is_still_pending() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("mempool.journal");
        let (mut journal, _) = Journal::open(&path).unwrap();
        let record = vec![7u8; TRANSACTION_BYTES_MAX];
        let fit = JOURNAL_BYTES_MAX / (TRANSACTION_BYTES_MAX + LENGTH_BYTES);
        let mut kept = None;
        for index in 0..fit {
            let mut bytes = record.clone();
            bytes[..8].copy_from_slice(&(index as u64).to_le_bytes());
            if index == 3 {
                kept = Some(sha256(&bytes));
            }
            journal.append(&[&bytes], |_| true).unwrap();
        }
        assert_eq!(journal.len(), fit);
        let kept = kept.unwrap();
        // One more does not fit: only what is still pending stays.
        let newest = vec![8u8; TRANSACTION_BYTES_MAX];
        journal.append(&[&newest], |hash| *hash == kept).unwrap();
        assert_eq!(journal.len(), 2);
        journal.append(&[b"small".as_slice()], |_| false).unwrap();
        assert_eq!(journal.len(), 3, "no rewrite while there is room");
        // Everything still pending: the oldest go, down to three quarters,
        // so the next appends do not rewrite the file again.
        let (mut full, _) = Journal::open(&directory.path().join("second")).unwrap();
        for index in 0..=fit {
            let mut bytes = record.clone();
            bytes[..8].copy_from_slice(&(index as u64).to_le_bytes());
            full.append(&[&bytes], |_| true).unwrap();
        }
        assert!(
            full.bytes() <= JOURNAL_COMPACTED_BYTES_MAX,
            "{}",
            full.bytes()
        );
        assert!(
            full.bytes() > JOURNAL_COMPACTED_BYTES_MAX - 2 * (TRANSACTION_BYTES_MAX + LENGTH_BYTES)
        );
        drop(journal);
        let (_, replay) = Journal::open(&path).unwrap();
        assert_eq!(replay.transactions.len(), 3);
        assert_eq!(sha256(&replay.transactions[0]), kept);
        assert_eq!(replay.transactions[1], newest);
        assert_eq!(replay.transactions[2], b"small".to_vec());
        // Garbage is refused by its length, not allocated.
        let (records, damaged) = decode_records(&[0xff, 0xff, 0xff, 0xff, 1]);
        assert!(records.is_empty());
        assert!(damaged.unwrap().contains("claims"), "garbage length");
    }
}
