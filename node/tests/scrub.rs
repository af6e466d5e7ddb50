//! Damage on disk is found by the node: with 4 KB of garbage written into
//! a table file of a stopped node, the node starts (nothing it reads at
//! start-up is damaged), and the background scrub finds the damage: a loud
//! error in the log naming the data directory and what to do, and `GET
//! /ready` 503 with the reason, without the machine's paths. A damaged
//! table file of the blocks on a node with peers is repaired: its heights
//! are fetched again from a peer, checked against the chain and written
//! back, and the node is ready again. A store whose `CURRENT` file is gone
//! refuses to start, saying what is damaged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    path::Path,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use support::{
    cairnd, get_json, http_get, validator_homes, wait_for_addresses, ChildGuard, DEADLINE,
    FREE_PORTS,
};

/// `cairnd --home HOME start --dev` on free ports, its log appended to
/// `HOME/node.log`.
fn start_dev(home: &Path) -> Child {
    start_node(home, &["--dev"])
}

/// `cairnd --home HOME start EXTRA..` on free ports, blocks without
/// transactions, its log appended to `HOME/node.log`.
fn start_node(home: &Path, extra: &[&str]) -> Child {
    std::fs::create_dir_all(home).unwrap();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.join("node.log"))
        .unwrap();
    cairnd()
        .args(["--home", &home.display().to_string(), "start"])
        .args(extra)
        .args(FREE_PORTS)
        .args(["--wait-for-transactions", "false"])
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap()
}

fn rpc_of(guard: &mut ChildGuard, home: &Path) -> String {
    let _ = std::fs::remove_file(home.join("addresses.json"));
    wait_for_addresses(guard, home)["rpc"]
        .as_str()
        .unwrap()
        .to_string()
}

fn stop(guard: &mut ChildGuard) {
    let mut child = guard.0.take().unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for_height_above(rpc: &str, above: u64) {
    let started = Instant::now();
    while get_json(rpc, "/status")["latest_height"].as_u64().unwrap() <= above {
        assert!(started.elapsed() < DEADLINE, "no height above {above}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a dev node to a few hundred heights, with a restart so RocksDB
/// writes its memtables into table files; returns the home, stopped.
fn chain_with_table_files() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let mut guard = ChildGuard(Some(start_dev(home.path())));
    let rpc = rpc_of(&mut guard, home.path());
    wait_for_height_above(&rpc, 400);
    stop(&mut guard);
    // Opening again replays RocksDB's log into table files.
    let mut guard = ChildGuard(Some(start_dev(home.path())));
    rpc_of(&mut guard, home.path());
    stop(&mut guard);
    home
}

#[test]
fn the_scrub_finds_a_damaged_table_file_and_ready_says_so() {
    let home = chain_with_table_files();
    let data = home.path().join("data");
    // A third in: old blocks, which start-up does not read.
    damage_largest_table(&data);

    let mut guard = ChildGuard(Some(start_dev(home.path())));
    let rpc = rpc_of(&mut guard, home.path());
    let started = Instant::now();
    let body = loop {
        let (status, body) = http_get(&rpc, "/ready");
        if status == 503 && body.contains("damaged") {
            break body;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "/ready: {status} {body}\n{}",
            std::fs::read_to_string(home.path().join("node.log")).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(body.contains("checksum"), "{body}");
    assert!(
        !body.contains(&home.path().display().to_string()),
        "an absolute path in an RPC answer: {body}"
    );
    let log = std::fs::read_to_string(home.path().join("node.log")).unwrap();
    assert!(log.contains("THE STORE IS DAMAGED"), "{log}");
    assert!(log.contains(&data.display().to_string()), "{log}");
    assert!(log.contains("cairnd reset --yes"), "{log}");
    stop(&mut guard);
}

/// Overwrites 4 KB a third into the largest table file of `data`; returns
/// its path.
fn damage_largest_table(data: &Path) -> std::path::PathBuf {
    let table = std::fs::read_dir(data)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "sst"))
        .max_by_key(|path| std::fs::metadata(path).unwrap().len())
        .expect("a table file");
    let mut bytes = std::fs::read(&table).unwrap();
    assert!(bytes.len() > 16 * 1024, "table of {} bytes", bytes.len());
    let at = bytes.len() / 3;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for byte in &mut bytes[at..at + 4096] {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    std::fs::write(&table, &bytes).unwrap();
    table
}

#[test]
fn a_damaged_block_file_is_repaired_from_a_peer() {
    let root = tempfile::tempdir().unwrap();
    let (homes, _genesis, _keys) = validator_homes(root.path(), "scrub-repair", 1);
    let mut validator = ChildGuard(Some(start_node(&homes[0], &["--timeout-commit-ms", "20"])));
    let addresses = wait_for_addresses(&mut validator, &homes[0]);
    let validator_rpc = addresses["rpc"].as_str().unwrap().to_string();
    let bootstrap = addresses["p2p"][0]
        .as_str()
        .expect("a p2p address")
        .to_string();

    let follower = root.path().join("follower");
    let output = cairnd()
        .args([
            "--home",
            &follower.display().to_string(),
            "init",
            "--mode",
            "full",
            "--genesis",
        ])
        .arg(root.path().join("genesis.json"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let mut guard = ChildGuard(Some(start_node(&follower, &["--bootstrap", &bootstrap])));
    let rpc = rpc_of(&mut guard, &follower);
    wait_for_height_above(&rpc, 400);
    stop(&mut guard);
    // A full compaction puts every table file in the last level, where a
    // damaged one can be dropped by its key range.
    let output = cairnd()
        .args(["--home", &follower.display().to_string(), "compact"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("compacted"),
        "{output:?}"
    );
    let table = damage_largest_table(&follower.join("data"));

    let mut guard = ChildGuard(Some(start_node(&follower, &["--bootstrap", &bootstrap])));
    let rpc = rpc_of(&mut guard, &follower);
    let log = || std::fs::read_to_string(follower.join("node.log")).unwrap();
    let started = Instant::now();
    while !log().contains("repaired the damaged table file") {
        assert!(started.elapsed() < DEADLINE, "no repair:\n{}", log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(log().contains("THE STORE IS DAMAGED"), "{}", log());
    assert!(!table.exists(), "the damaged file is still there");
    let started = Instant::now();
    loop {
        let (status, body) = http_get(&rpc, "/ready");
        if status == 200 {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "/ready: {status} {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Every old block reads back as the validator has it, and the next
    // scrub pass is clean.
    for height in [1u64, 27, 200, 400] {
        let path = format!("/block/{height}");
        assert_eq!(
            get_json(&rpc, &path)["hash"],
            get_json(&validator_rpc, &path)["hash"],
            "{path}"
        );
    }
    let started = Instant::now();
    while log().matches("every checksum read matched").count() < 1 {
        assert!(started.elapsed() < DEADLINE, "no clean pass:\n{}", log());
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(&mut guard);
    stop(&mut validator);
}

#[test]
fn a_store_without_its_current_file_says_what_is_damaged() {
    let home = chain_with_table_files();
    let data = home.path().join("data");
    std::fs::remove_file(data.join("CURRENT")).unwrap();
    let output = cairnd()
        .args([
            "--home",
            &home.path().display().to_string(),
            "start",
            "--dev",
            "--rpc-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("CURRENT file is missing"), "{stderr}");
    assert!(stderr.contains("is damaged"), "{stderr}");
    assert!(stderr.contains(&data.display().to_string()), "{stderr}");
    assert!(stderr.contains("cairnd reset --yes"), "{stderr}");
    assert!(
        !stderr.contains("wal_dir contains existing log file"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
