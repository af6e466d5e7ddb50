//! Snapshot creation and restore of a state of 1,000,000 accounts (plus
//! the staking state), on RocksDB, one thread: `cargo bench --workspace
//! --profile dev --bench snapshot`. Prints the times, the chunk count and
//! the snapshot size (BENCHMARKS.md).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use cairn_store::{create_snapshot, RocksStore, Store};
use cairn_types::Height;
use common::staking_chain;

/// Accounts in the benchmarked state.
const ACCOUNTS: u64 = 1_000_000;

fn main() {
    let (mut chain, set) = staking_chain("snapshot-bench", ACCOUNTS);

    let directory = tempfile::tempdir().unwrap();
    let source = RocksStore::open(
        &directory.path().join("source"),
        &chain.identity,
        &chain.genesis,
    )
    .unwrap();
    let (block, certificate, outcome) = chain.next_block(100);
    source.commit_block(&block, &certificate, &outcome).unwrap();

    let started = Instant::now();
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let manifest = create_snapshot(&source, Height(1), &mut |_, chunk| {
        chunks.push(chunk.to_vec());
        Ok(())
    })
    .unwrap();
    let create = started.elapsed();
    let bytes: usize = chunks.iter().map(Vec::len).sum();

    let target = RocksStore::open(
        &directory.path().join("target"),
        &chain.identity,
        &chain.genesis,
    )
    .unwrap();
    let started = Instant::now();
    target.restore_begin(Height(1)).unwrap();
    for (index, chunk) in chunks.iter().enumerate() {
        manifest.check_chunk(index, chunk).unwrap();
        target.restore_chunk(chunk).unwrap();
    }
    target.restore_finish(&block, &certificate, &set).unwrap();
    let restore = started.elapsed();
    assert_eq!(target.state_root(), source.state_root());
    println!(
        "snapshot of {} accounts: {} chunks, {:.1} MiB; create {:.2} s; verify + restore + root check {:.2} s",
        ACCOUNTS + 9,
        manifest.chunk_count(),
        bytes as f64 / (1024.0 * 1024.0),
        create.as_secs_f64(),
        restore.as_secs_f64()
    );
}
