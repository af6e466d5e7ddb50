//! Pruning with real processes: a dev validator keeps every block (the
//! archive); a full node that follows it with `--prune-keep-blocks` at the
//! minimum deletes old blocks, reports the heights it holds in `/status`,
//! refuses older heights with 410 `pruned`, and keeps its lowest height
//! across a restart; a new full node bootstrapped to both still syncs from
//! genesis, from the archive, without taking the pruned node for a faulty
//! peer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use support::{cairnd, get_json, http_get, ChildGuard, DEADLINE};

/// The store's minimum window ([`cairn_store::PRUNE_KEEP_BLOCKS_MIN`]).
const KEEP: u64 = cairn_store::PRUNE_KEEP_BLOCKS_MIN;

/// A running node: its home, RPC URL and p2p address.
struct Node {
    home: PathBuf,
    guard: ChildGuard,
    rpc: String,
    p2p: String,
}

impl Node {
    fn log(&self) -> String {
        std::fs::read_to_string(self.home.join("node.log")).unwrap_or_default()
    }

    fn status(&self) -> serde_json::Value {
        get_json(&self.rpc, "/status")
    }

    /// Waits until `check` holds of `/status`.
    fn wait_for(
        &self,
        what: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let status = self.status();
            if check(&status) {
                return status;
            }
            assert!(
                started.elapsed() < DEADLINE * 2,
                "{what}: {status}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        let mut child = self.guard.0.take().unwrap();
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
}

/// Starts `cairnd --home HOME start ARGS` on free loopback ports, its log
/// in `HOME/node.log`, and waits for its addresses.
fn start(home: &Path, args: &[&str]) -> Node {
    std::fs::create_dir_all(home).unwrap();
    let _ = std::fs::remove_file(home.join("addresses.json"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.join("node.log"))
        .unwrap();
    let child: Child = cairnd()
        .args(["--home", &home.display().to_string(), "start"])
        .args(args)
        .args([
            "--rpc-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--p2p-listen",
            "/ip4/127.0.0.1/tcp/0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(Some(child));
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(home.join("addresses.json")) {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
                if let Some(p2p) = value["p2p"].get(0).and_then(|v| v.as_str()) {
                    return Node {
                        home: home.to_path_buf(),
                        rpc: value["rpc"].as_str().unwrap().to_string(),
                        p2p: p2p.to_string(),
                        guard,
                    };
                }
            }
        }
        if let Some(status) = guard.0.as_mut().unwrap().try_wait().unwrap() {
            panic!(
                "cairnd exited early ({status}): {}",
                std::fs::read_to_string(home.join("node.log")).unwrap_or_default()
            );
        }
        assert!(started.elapsed() < DEADLINE, "no addresses.json");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `cairnd init --mode full` with the archive's genesis.
fn init_full(home: &Path, genesis: &Path) {
    let output = cairnd()
        .args([
            "--home",
            &home.display().to_string(),
            "init",
            "--mode",
            "full",
        ])
        .arg("--genesis")
        .arg(genesis)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
}

fn error_of(rpc: &str, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = http_get(rpc, path);
    (status, serde_json::from_str(&body).unwrap_or_default())
}

#[test]
fn a_pruned_node_refuses_old_heights_and_a_new_node_syncs_from_an_archive() {
    let root = tempfile::tempdir().unwrap();
    let archive = start(
        &root.path().join("archive"),
        &["--dev", "--wait-for-transactions", "false"],
    );
    let genesis = archive.home.join("config/genesis.json");

    // A keep_blocks below the minimum is refused with what to do.
    let pruned_home = root.path().join("pruned");
    init_full(&pruned_home, &genesis);
    let output = cairnd()
        .args(["--home", &pruned_home.display().to_string(), "start"])
        .args(["--prune-keep-blocks", "5"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("--prune-keep-blocks"), "{stderr}");
    assert!(stderr.contains(&format!("at least {KEEP}")), "{stderr}");

    let keep = KEEP.to_string();
    let mut pruned = start(
        &pruned_home,
        &["--bootstrap", &archive.p2p, "--prune-keep-blocks", &keep],
    );
    let status = pruned.wait_for("the pruned node prunes", |status| {
        status["lowest_height"].as_u64().unwrap() > 60
    });
    let (latest, lowest) = (
        status["latest_height"].as_u64().unwrap(),
        status["lowest_height"].as_u64().unwrap(),
    );
    // Never more than the window, never into it.
    assert!(latest + 1 - lowest >= KEEP, "{status}");

    // Old heights: 410 `pruned`, naming the lowest height held.
    for path in [
        "/block/1",
        "/header/1",
        "/certificate/1",
        "/validators?height=1",
    ] {
        let (code, body) = error_of(&pruned.rpc, path);
        assert_eq!(code, 410, "{path}: {body}");
        assert_eq!(body["error"]["code"], "pruned", "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("holds heights"), "{message}");
    }
    // The archive still has them; the pruned node has what it keeps.
    let (code, block_one) = error_of(&archive.rpc, "/block/1");
    assert_eq!(code, 200, "{block_one}");
    let (code, body) = error_of(&pruned.rpc, &format!("/block/{latest}"));
    assert_eq!(code, 200, "{body}");
    // A block pruned by hash is unknown; a transaction lookup says that
    // this node prunes.
    let hash = block_one["hash"].as_str().unwrap();
    assert_eq!(error_of(&pruned.rpc, &format!("/block/hash/{hash}")).0, 404);
    let (code, body) = error_of(&pruned.rpc, &format!("/tx/{}", "ab".repeat(32)));
    assert_eq!(code, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("prunes"),
        "{body}"
    );
    let (code, body) = error_of(&archive.rpc, &format!("/tx/{}", "ab".repeat(32)));
    assert_eq!(code, 404, "{body}");
    assert!(!body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("prunes"));

    // A new node, bootstrapped to the pruned node first and the archive,
    // syncs from genesis: the pruned node is not asked for what it pruned.
    let new_home = root.path().join("new");
    init_full(&new_home, &genesis);
    let bootstrap = format!("{},{}", pruned.p2p, archive.p2p);
    let target = archive.status()["latest_height"].as_u64().unwrap();
    let new = start(&new_home, &["--bootstrap", &bootstrap]);
    let status = new.wait_for("the new node syncs past the archive's tip", |status| {
        status["latest_height"].as_u64().unwrap() > target
    });
    assert_eq!(status["lowest_height"], 1, "{status}");
    let (code, body) = error_of(&new.rpc, "/block/1");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["hash"], block_one["hash"]);
    let log = new.log();
    assert!(!log.contains("gave no usable blocks"), "{log}");
    assert!(
        !log.contains("answered a block request with something else"),
        "{log}"
    );

    // The lowest height survives a restart of the pruned node.
    pruned.stop();
    let restarted = start(
        &pruned_home,
        &["--bootstrap", &archive.p2p, "--prune-keep-blocks", &keep],
    );
    let status = restarted.status();
    assert!(
        status["lowest_height"].as_u64().unwrap() >= lowest,
        "{status}"
    );
    assert_eq!(error_of(&restarted.rpc, "/block/1").0, 410);
    // The default keeps everything.
    assert_eq!(archive.status()["lowest_height"], 1);
}
