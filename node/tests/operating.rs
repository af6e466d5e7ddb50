//! Operating a real `cairnd`: a flood of half-sent HTTP requests does not
//! lock clients out or stop consensus; `/ready` tells a node that can make
//! progress from one that cannot; `reset` keeps the sign state, so a reset
//! validator refuses to sign again below what it signed, and
//! `unsafe-reset-all` removes it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    io::Write,
    net::TcpStream,
    path::Path,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use support::{cairnd, get_json, http_get, wait_for_addresses, ChildGuard, DEADLINE};

/// `cairnd --home HOME start --dev` with free ports, making a block as
/// often as it can; its log goes to `HOME/node.log`.
fn start_dev(home: &Path, extra: &[&str]) -> Child {
    std::fs::create_dir_all(home).unwrap();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.join("node.log"))
        .unwrap();
    cairnd()
        .args(["--home", &home.display().to_string(), "start", "--dev"])
        .args([
            "--rpc-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--wait-for-transactions",
            "false",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap()
}

fn height(rpc: &str) -> u64 {
    get_json(rpc, "/status")["latest_height"].as_u64().unwrap()
}

/// Waits until the height passes `above`.
fn wait_for_height_above(rpc: &str, above: u64) -> u64 {
    let started = Instant::now();
    loop {
        let now = height(rpc);
        if now > above {
            return now;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the height stayed at {now} for {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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

#[test]
fn a_flood_of_half_sent_requests_leaves_the_rpc_answering_and_consensus_committing() {
    let home = tempfile::tempdir().unwrap();
    // The node starts with this process's soft limit of open files (often
    // 1,024) and must raise it itself.
    let mut guard = ChildGuard(Some(start_dev(home.path(), &[])));
    let addresses = wait_for_addresses(&mut guard, home.path());
    let rpc = addresses["rpc"].as_str().unwrap().to_string();
    let target = rpc.trim_start_matches("http://").to_string();
    let before = wait_for_height_above(&rpc, 0);

    // This process needs the descriptors for the flood.
    cairn_node::http_server::raise_open_files_limit();
    let flood: Vec<TcpStream> = (0..1_100)
        .filter_map(|_| {
            let mut stream = TcpStream::connect(&target).ok()?;
            stream
                .write_all(b"GET /status HTTP/1.1\r\nhost: flood\r\n")
                .ok()?;
            Some(stream)
        })
        .collect();
    assert!(flood.len() >= 1_000, "only {} connections", flood.len());

    let asked = Instant::now();
    let (status, body) = http_get(&rpc, "/status");
    let answered_in = asked.elapsed();
    assert_eq!(status, 200, "{body}");
    eprintln!(
        "/status answered in {answered_in:?} with {} half-sent requests open",
        flood.len()
    );
    // Consensus goes on while the flood holds.
    let during = wait_for_height_above(&rpc, before);
    assert!(during > before);
    let (status, _) = http_get(&rpc, "/health");
    assert_eq!(status, 200);
    drop(flood);
    // The node itself is fine afterwards.
    wait_for_height_above(&rpc, during);
    let log = std::fs::read_to_string(home.path().join("node.log")).unwrap();
    assert!(!log.contains("panicked"), "{log}");
}

/// A validator of a two-validator chain whose peer never comes: not ready
/// (no peers, then no block in time), and `/status` does not claim it is
/// caught up. A lone dev validator is ready.
#[test]
fn ready_is_503_with_reasons_when_the_node_cannot_make_progress() {
    let dev_home = tempfile::tempdir().unwrap();
    let mut dev = ChildGuard(Some(start_dev(dev_home.path(), &[])));
    let dev_rpc = wait_for_addresses(&mut dev, dev_home.path())["rpc"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for_height_above(&dev_rpc, 0);
    let (status, body) = http_get(&dev_rpc, "/ready");
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["should_have_peers"], false, "{ready}");
    drop(dev);

    let work = tempfile::tempdir().unwrap();
    let (homes, _, _) = support::validator_homes(work.path(), "ready-test", 2);
    let home = homes[0].clone();
    let log = std::fs::File::create(work.path().join("v0.log")).unwrap();
    let child = cairnd()
        .args(["--home", &home.display().to_string(), "start"])
        .args(support::FREE_PORTS)
        .args([
            "--wait-for-transactions",
            "false",
            "--rpc-ready-stall-ms",
            "1000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(Some(child));
    let rpc = wait_for_addresses(&mut guard, &home)["rpc"]
        .as_str()
        .unwrap()
        .to_string();
    let started = Instant::now();
    let body = loop {
        let (status, body) = http_get(&rpc, "/ready");
        assert_eq!(status, 503, "{body}");
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        if value["reasons"].as_array().unwrap().len() >= 2 {
            break value;
        }
        assert!(started.elapsed() < DEADLINE, "{value}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(body["error"]["code"], "not_ready", "{body}");
    assert_eq!(body["ready"], false);
    let reasons = body["reasons"].to_string();
    assert!(reasons.contains("no peers"), "{reasons}");
    assert!(reasons.contains("ms old"), "{reasons}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no peers"),
        "{body}"
    );
    assert_eq!(get_json(&rpc, "/status")["catching_up"], true);
    // Liveness is another question: the process is alive.
    assert_eq!(http_get(&rpc, "/health").0, 200);
}

#[test]
fn reset_keeps_the_sign_state_so_a_reset_validator_refuses_to_sign_below_it() {
    let home = tempfile::tempdir().unwrap();
    let home_arg = home.path().display().to_string();
    let sign_state = home.path().join("config/sign_state.json");

    let mut guard = ChildGuard(Some(start_dev(home.path(), &[])));
    let rpc = wait_for_addresses(&mut guard, home.path())["rpc"]
        .as_str()
        .unwrap()
        .to_string();
    let reached = wait_for_height_above(&rpc, 5);
    stop(&mut guard);
    let recorded: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&sign_state).unwrap().trim()).unwrap();
    let signed_height = recorded["height"].as_u64().unwrap();
    assert!(signed_height >= reached, "{recorded}");

    // `reset` deletes the chain data (and with it the WAL) but keeps the
    // sign state: the validator refuses to sign heights it signed before.
    let output = cairnd()
        .args(["--home", &home_arg, "reset", "--yes"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(sign_state.exists(), "reset deleted the sign state");
    let mut guard = ChildGuard(Some(start_dev(home.path(), &[])));
    let rpc = wait_for_addresses(&mut guard, home.path())["rpc"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        height(&rpc),
        0,
        "a reset validator signed heights it had signed before"
    );
    stop(&mut guard);
    let log = std::fs::read_to_string(home.path().join("node.log")).unwrap();
    assert!(log.contains("not signing"), "{log}");

    // `unsafe-reset-all` removes the sign state too: the chain starts over.
    let output = cairnd()
        .args(["--home", &home_arg, "unsafe-reset-all", "--yes"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(!sign_state.exists(), "unsafe-reset-all kept the sign state");
    let mut guard = ChildGuard(Some(start_dev(home.path(), &[])));
    let rpc = wait_for_addresses(&mut guard, home.path())["rpc"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for_height_above(&rpc, 1);
}

/// A RocksDB log shorter than this is not corrupted by the test below (its
/// 4 KiB of damage, a third into the file, must have whole records after
/// it, or recovery sees a torn tail, which it may drop).
const LOG_CORRUPTED_MIN_BYTES: u64 = 16 * 1024;

/// A corrupt record in the middle of RocksDB's log (bit rot, a bad disk)
/// stops the start with one message naming the store and what to do,
/// instead of RocksDB truncating the log there and the node running on
/// silently lost writes.
#[test]
fn a_corrupt_store_log_stops_the_start_with_what_to_do() {
    let home = tempfile::tempdir().unwrap();
    let mut guard = ChildGuard(Some(start_dev(home.path(), &[])));
    let rpc = wait_for_addresses(&mut guard, home.path())["rpc"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for_height_above(&rpc, 300);
    // A crash: RocksDB's log still holds the writes.
    let mut child = guard.0.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let data = home.path().join("data");
    // RocksDB names its logs by a growing number; the newest is the live
    // one that recovery replays. An older log can still lie there after a
    // switch (its writes flushed, the file not yet deleted) and recovery
    // skips it, so corrupting only the largest log was a race: every log
    // long enough is corrupted, and the newest must be one of them.
    let mut logs: Vec<(std::path::PathBuf, u64)> = std::fs::read_dir(&data)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "log"))
        .map(|path| {
            let len = std::fs::metadata(&path).unwrap().len();
            (path, len)
        })
        .collect();
    logs.sort();
    let newest = logs.last().expect("a RocksDB log file").clone();
    assert!(
        newest.1 > LOG_CORRUPTED_MIN_BYTES,
        "the live log is too short to corrupt in its middle: {logs:?}"
    );
    for (log, len) in &logs {
        if *len <= LOG_CORRUPTED_MIN_BYTES {
            continue;
        }
        let mut bytes = std::fs::read(log).unwrap();
        let middle = bytes.len() / 3;
        for (offset, byte) in bytes[middle..middle + 4096].iter_mut().enumerate() {
            *byte ^= 0x5a ^ (offset as u8);
        }
        std::fs::write(log, &bytes).unwrap();
    }

    let child = cairnd()
        .args([
            "--home",
            &home.path().display().to_string(),
            "start",
            "--dev",
        ])
        .args([
            "--rpc-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(Some(child));
    let started = Instant::now();
    while guard.0.as_mut().unwrap().try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < DEADLINE,
            "cairnd runs on a damaged store (logs corrupted: {logs:?})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = guard.0.take().unwrap().wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "started on a damaged store: {stderr}"
    );
    assert!(stderr.contains("is damaged"), "{stderr}");
    assert!(stderr.contains(&data.display().to_string()), "{stderr}");
    assert!(stderr.contains("cairnd reset --yes"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A tmpfs mounted for one test, unmounted however the test ends.
struct SmallDisk {
    path: std::path::PathBuf,
    _parent: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(bytes: u64) -> SmallDisk {
        let parent = tempfile::tempdir().unwrap();
        let path = parent.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success(), "mount a tmpfs (the test runs as root)");
        SmallDisk {
            path,
            _parent: parent,
        }
    }

    fn resize(&self, bytes: u64) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={bytes}")])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

/// A full disk stops the node cleanly (non-zero exit, a message that says
/// the disk is full and what to do); with space again it starts at the
/// last committed block, nothing acknowledged lost.
#[test]
fn a_full_disk_stops_the_node_cleanly_and_loses_nothing_committed() {
    let disk = SmallDisk::mount(6 * 1024 * 1024);
    let home = disk.path.join("home");
    let mut guard = ChildGuard(Some(start_dev(&home, &[])));
    let rpc = wait_for_addresses(&mut guard, &home)["rpc"]
        .as_str()
        .unwrap()
        .to_string();
    let mut last_seen = 0;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = guard.0.as_mut().unwrap().try_wait().unwrap() {
            break status;
        }
        // The last height the node acknowledged over RPC.
        if let Ok((200, body)) = std::panic::catch_unwind(|| http_get(&rpc, "/status")) {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&body) {
                last_seen = value["latest_height"].as_u64().unwrap_or(last_seen);
            }
        }
        assert!(started.elapsed() < DEADLINE * 4, "the disk never filled");
        std::thread::sleep(Duration::from_millis(20));
    };
    guard.0 = None;
    assert!(!status.success(), "{status}");
    let log = std::fs::read_to_string(home.join("node.log")).unwrap();
    assert!(log.contains("The disk is full"), "{log}");
    assert!(!log.contains("panicked"), "{log}");

    disk.resize(64 * 1024 * 1024);
    let mut guard = ChildGuard(Some(start_dev(&home, &[])));
    let rpc = wait_for_addresses(&mut guard, &home)["rpc"]
        .as_str()
        .unwrap()
        .to_string();
    let restarted = height(&rpc);
    assert!(
        restarted >= last_seen,
        "height {restarted} after the restart, {last_seen} was acknowledged"
    );
    wait_for_height_above(&rpc, restarted);
    stop(&mut guard);
}
