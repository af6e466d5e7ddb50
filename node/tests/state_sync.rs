//! State sync with real processes: four validators take a snapshot every
//! 5 heights; a full node that knows only the genesis and one bootstrap
//! address joins with `--state-sync` (over the remains of a restore a
//! kill -9 interrupted), restores a snapshot verified from the genesis,
//! holds no block below it, and follows the tip with the others' blocks
//! and state roots.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use cairn_store::{ChainIdentity, RocksStore, Store};
use cairn_types::Height;
use support::{cairnd, get_json, http_get, validator_homes, ChildGuard, FREE_PORTS};

const WAIT: Duration = Duration::from_secs(90);

struct Running {
    home: PathBuf,
    _guard: ChildGuard,
    rpc: String,
    p2p: String,
}

impl Running {
    fn log(&self) -> String {
        std::fs::read_to_string(self.home.join("node.log")).unwrap_or_default()
    }

    fn status(&self) -> serde_json::Value {
        get_json(&self.rpc, "/status")
    }

    fn height(&self) -> u64 {
        self.status()["latest_height"].as_u64().unwrap_or(0)
    }

    fn header(&self, height: u64) -> serde_json::Value {
        get_json(&self.rpc, &format!("/block/{height}"))
    }
}

fn start(home: &Path, extra: &[String]) -> Running {
    let _ = std::fs::remove_file(home.join("addresses.json"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.join("node.log"))
        .unwrap();
    let child = cairnd()
        .arg("--home")
        .arg(home)
        .arg("start")
        .args(FREE_PORTS)
        .args([
            "--timeout-commit-ms",
            "50",
            "--wait-for-transactions",
            "false",
            "--snapshot-interval",
            "5",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(Some(child));
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(home.join("addresses.json")) {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
                if let Some(p2p) = value["p2p"].get(0).and_then(|v| v.as_str()) {
                    return Running {
                        home: home.to_path_buf(),
                        rpc: value["rpc"].as_str().unwrap().to_string(),
                        p2p: p2p.to_string(),
                        _guard: guard,
                    };
                }
            }
        }
        if let Some(status) = guard.0.as_mut().unwrap().try_wait().unwrap() {
            panic!(
                "cairnd exited early ({status}):\n{}",
                std::fs::read_to_string(home.join("node.log")).unwrap_or_default()
            );
        }
        assert!(started.elapsed() < WAIT, "no addresses.json");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_until(what: &str, nodes: &[&Running], mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > WAIT {
            for node in nodes {
                eprintln!("==== {} ====\n{}", node.home.display(), node.log());
            }
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_new_node_joins_by_state_sync_and_follows_the_tip() {
    let root = tempfile::tempdir().unwrap();
    let (homes, genesis, _) = validator_homes(root.path(), "cairn-state-sync", 4);
    let mut validators = vec![start(&homes[0], &[])];
    let bootstrap = validators[0].p2p.clone();
    for home in &homes[1..] {
        validators.push(start(home, &["--bootstrap".into(), bootstrap.clone()]));
    }
    let refs: Vec<&Running> = validators.iter().collect();
    // Past two snapshot heights, on every validator.
    wait_until("two snapshots on every validator", &refs, || {
        validators.iter().all(|node| {
            node.status()["snapshot_heights"]
                .as_array()
                .is_some_and(|heights| heights.len() >= 2)
        })
    });
    let offered = validators[0].status()["snapshot_heights"].clone();
    assert_eq!(
        offered.as_array().unwrap().len(),
        2,
        "snapshot.keep is 2: {offered}"
    );
    assert!(offered
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h.as_u64().unwrap() % 5 == 0));

    // The joiner's home holds the remains of a restore killed half-way: the
    // under-way mark and no valid state.
    let joiner_home = root.path().join("joiner");
    let output = cairnd()
        .arg("--home")
        .arg(&joiner_home)
        .args(["init", "--mode", "full", "--genesis"])
        .arg(root.path().join("genesis.json"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    {
        let identity = ChainIdentity {
            chain_id: genesis.chain_id.clone(),
            genesis_hash: genesis.hash(),
        };
        let store = RocksStore::open(
            &joiner_home.join("data"),
            &identity,
            &genesis.state().unwrap(),
        )
        .unwrap();
        store.restore_begin(Height(5)).unwrap();
    }

    let joined_at = Instant::now();
    let joiner = start(
        &joiner_home,
        &[
            "--state-sync".into(),
            "--bootstrap".into(),
            bootstrap.clone(),
        ],
    );
    let mut all = refs.clone();
    all.push(&joiner);
    wait_until("the joiner to restore a snapshot", &all, || {
        joiner.status()["snapshot_base"].as_u64().unwrap_or(0) > 0
    });
    let base = joiner.status()["snapshot_base"].as_u64().unwrap();
    assert!(base % 5 == 0 && base >= 5, "base {base}");
    let target = validators[0].height() + 3;
    wait_until("the joiner to follow the tip", &all, || {
        joiner.height() >= target
    });
    let join_seconds = joined_at.elapsed().as_secs_f64();

    // Its state at the snapshot height is the others'; later blocks too.
    let theirs = validators[1].header(base);
    let ours = joiner.header(base);
    assert_eq!(ours["hash"], theirs["hash"]);
    assert_eq!(
        ours["header"]["state_root"], theirs["header"]["state_root"],
        "state roots differ at the snapshot height"
    );
    assert_eq!(
        joiner.header(target)["hash"],
        validators[2].header(target)["hash"]
    );
    // No block below the base.
    let (status, body) = http_get(&joiner.rpc, "/block/1");
    assert!(status == 404 || status == 410, "{status} {body}");
    assert!(
        body.contains("state sync") || body.contains("pruned"),
        "{body}"
    );
    let log = joiner.log();
    assert!(log.contains("restore was interrupted"), "{log}");
    assert!(log.contains("state sync: restored the state"), "{log}");
    let state_sync = &joiner.status()["state_sync"];
    assert_eq!(state_sync["phase"], "done", "{state_sync}");
    assert_eq!(state_sync["chunks_done"], state_sync["chunks_total"]);
    for line in log.lines().filter(|line| line.contains("state sync")) {
        eprintln!("{line}");
    }
    eprintln!("joined by state sync at base {base} in {join_seconds:.1} s");
}
