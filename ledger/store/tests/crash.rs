//! Crash consistency. On RocksDB: a child process commits blocks in a loop
//! and is killed with SIGKILL at random moments, again and again; after
//! each kill the reopened store is exactly at a committed block and every
//! index agrees with the blocks. On the in-memory store: crashes injected
//! into every kind of write, with the interrupted write lost or persisted.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use cairn_store::{
    Column, DiskFault, InterruptedWrite, MemoryDisk, MemoryStore, RocksStore, Store, StoreError,
};
use cairn_types::Height;
use common::{check_consistency, Sequence, TestChain};

/// Set (to the store's directory) in the child process.
const CHILD_ENV: &str = "CAIRN_STORE_CRASH_CHILD";
/// How many times the writer is killed.
const KILLS: usize = 20;
/// Longest wait before a kill.
const KILL_DELAY_MS_MAX: u64 = 400;
/// Transfers per block written by the child.
const CHILD_BLOCK_TRANSFERS: usize = 40;
/// Bound on the whole test.
const TEST_DURATION_MAX: Duration = Duration::from_secs(240);

fn crash_chain() -> TestChain {
    TestChain::new("crash-test", 32, 8)
}

/// The test chain as it stood after block `height` of `store`.
fn chain_at(store: &dyn Store, height: Height) -> TestChain {
    let mut chain = crash_chain();
    for height in 1..=height.0 {
        let block = store.block(Height(height)).unwrap().unwrap();
        let certificate = store.certificate(Height(height)).unwrap().unwrap();
        let outcome = chain
            .state
            .execute_block(&chain.chain_id, &block, &[])
            .unwrap();
        chain.advance(&block, &certificate, &outcome);
    }
    chain
}

fn wal_entry(height: Height) -> Vec<u8> {
    format!("precommit at {height}").into_bytes()
}

/// Not a test on its own: the body of the child process, which commits
/// blocks until it is killed. Without the variable it returns at once.
#[test]
fn child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut chain = crash_chain();
    let store = RocksStore::open(Path::new(&path), &chain.identity, &chain.genesis).unwrap();
    chain.resume(&store);
    loop {
        let (block, certificate, outcome) = chain.next_block(CHILD_BLOCK_TRANSFERS);
        store
            .wal_append(block.height(), &wal_entry(block.height()))
            .unwrap();
        store.commit_block(&block, &certificate, &outcome).unwrap();
        store.wal_prune_below(block.height()).unwrap();
    }
}

#[test]
fn killed_writers_leave_the_last_committed_block() {
    let started = Instant::now();
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("store");
    let executable = std::env::current_exe().unwrap();
    let chain = crash_chain();
    let mut sequence = Sequence(0xc0ff_ee00_dead_beef);
    let mut heights = Vec::new();
    for kill in 0..KILLS {
        assert!(started.elapsed() < TEST_DURATION_MAX, "took too long");
        let mut child = Command::new(&executable)
            .args(["--exact", "child_writer", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = 30 + sequence.below(KILL_DELAY_MS_MAX);
        std::thread::sleep(Duration::from_millis(delay));
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the writer exited on its own with {status} before kill {kill}");
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let store = RocksStore::open(&path, &chain.identity, &chain.genesis).unwrap();
        check_consistency(&store, &chain.genesis);
        let latest = store.latest_height();
        let next = Height(latest.0 + 1);
        // The writer builds blocks deterministically from the state, so
        // this is the block it was writing when killed: none of it is in
        // any index.
        // (Checked on the last committed block: rebuilt from its parent
        // state, it comes out identical.)
        if latest.0 > 0 {
            let mut before = chain_at(&store, Height(latest.0 - 1));
            let (rebuilt, _, _) = before.next_block(CHILD_BLOCK_TRANSFERS);
            assert_eq!(Some(rebuilt), store.block(latest).unwrap());
        }
        let mut replay = crash_chain();
        replay.resume(&store);
        let (unfinished, _, _) = replay.next_block(CHILD_BLOCK_TRANSFERS);
        assert_eq!(store.block_height(&unfinished.hash()).unwrap(), None);
        for transaction in &unfinished.transactions {
            assert_eq!(store.transaction(&transaction.hash()).unwrap(), None);
        }
        for entry in store.wal_entries(next).unwrap() {
            assert_eq!(entry, wal_entry(next));
        }
        heights.push(latest);
    }
    eprintln!("latest height after each kill: {heights:?}");
    assert!(
        heights.windows(2).all(|pair| pair[0] <= pair[1]),
        "{heights:?}"
    );
    assert!(
        heights
            .last()
            .is_some_and(|height| height.0 > KILLS as u64 / 4),
        "the writers committed too little: {heights:?}"
    );
}

#[test]
fn memory_crashes_keep_or_lose_whole_writes() {
    let disk = MemoryDisk::new();
    let mut chain = crash_chain();
    let mut sequence = Sequence(42);
    let mut store = MemoryStore::open(&disk, &chain.identity, &chain.genesis).unwrap();
    let mut crashes = 0;
    while crashes < 30 {
        let fate = if sequence.below(2) == 0 {
            InterruptedWrite::Lost
        } else {
            InterruptedWrite::Persisted
        };
        disk.crash_during_write(sequence.below(6), fate);
        loop {
            let (block, certificate, outcome) = chain.next_block(5);
            let height = block.height();
            let result = store
                .wal_append(height, &wal_entry(height))
                .and_then(|()| store.commit_block(&block, &certificate, &outcome))
                .and_then(|()| store.wal_prune_below(height));
            match result {
                Ok(()) => {}
                Err(StoreError::Crashed) => break,
                Err(error) => panic!("{error}"),
            }
        }
        crashes += 1;
        // The dead handle refuses everything.
        assert!(matches!(store.load_state(), Err(StoreError::Crashed)));
        store = MemoryStore::open(&disk, &chain.identity, &chain.genesis).unwrap();
        check_consistency(&store, &chain.genesis);
        chain.resume(&store);
    }
    assert!(store.latest_height().0 > 0);

    // A crash between calls loses nothing.
    let before = store.latest_height();
    disk.crash();
    assert!(matches!(
        store.account(&chain.keys[0].address()),
        Err(StoreError::Crashed)
    ));
    let store = MemoryStore::open(&disk, &chain.identity, &chain.genesis).unwrap();
    assert_eq!(store.latest_height(), before);
}

/// Disk faults of the in-memory store: a full disk and failing syncs refuse
/// writes (nothing half-written, nothing acknowledged lost once cleared and
/// restarted), and a rotten record fails its reads until written again.
#[test]
fn memory_disk_faults_refuse_writes_and_report_rot() {
    let disk = MemoryDisk::new();
    let mut chain = crash_chain();
    let store = MemoryStore::open(&disk, &chain.identity, &chain.genesis).unwrap();
    for _ in 0..3 {
        let (block, certificate, outcome) = chain.next_block(5);
        store.commit_block(&block, &certificate, &outcome).unwrap();
    }
    let committed = store.latest_height();

    // Full: every write fails, the store stays at its last commit.
    disk.set_fault(Some(DiskFault::Full));
    let (block, certificate, outcome) = chain.next_block(5);
    let full = store.commit_block(&block, &certificate, &outcome);
    assert!(
        matches!(&full, Err(StoreError::Backend { reason, .. }) if reason.contains("No space")),
        "{full:?}"
    );
    assert!(store.wal_append(Height(9), b"vote").is_err());
    assert_eq!(store.latest_height(), committed);

    // Syncs fail: a synced write is refused, an unsynced WAL append is
    // accepted but its sync fails, and a crash loses it.
    disk.set_fault(Some(DiskFault::SyncFails));
    assert!(store.commit_block(&block, &certificate, &outcome).is_err());
    store.wal_append(block.height(), b"vote").unwrap();
    assert!(store.wal_sync().is_err());
    disk.crash();
    disk.set_fault(None);
    let store = MemoryStore::open(&disk, &chain.identity, &chain.genesis).unwrap();
    assert_eq!(
        store.latest_height(),
        committed,
        "nothing committed was lost"
    );
    assert!(store.wal_entries(block.height()).unwrap().is_empty());
    store.commit_block(&block, &certificate, &outcome).unwrap();
    check_consistency(&store, &chain.genesis);

    // Rot: a block record fails its checksum, and the store says so.
    let key = committed.0.to_be_bytes();
    assert!(disk.rot(Column::Blocks, &key));
    let rotten = store.block(committed);
    assert!(
        matches!(&rotten, Err(StoreError::Corrupt { reason, .. }) if reason.contains("checksum")),
        "{rotten:?}"
    );
    assert!(disk.has_rot());
}
