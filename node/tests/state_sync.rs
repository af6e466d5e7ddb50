//! State sync with real processes: four validators take a snapshot every
//! 5 heights; a full node that knows only the genesis and one bootstrap
//! address joins with `--state-sync` (over the remains of a restore a
//! kill -9 interrupted), restores a snapshot verified from the genesis,
//! keeps the blocks of the evidence window below it (linked to the restored
//! block by parent hashes), and follows the tip with the others' blocks
//! and state roots. Two Byzantine peers offering a lying snapshot (a
//! corrupt chunk, and a manifest of chunks that are not the state of its
//! height) are banned and the join completes from the honest snapshot.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use cairn_p2p::{Event, SnapshotOffer, SnapshotRequest, SnapshotResponse, SyncResponse};
use cairn_store::{ChainIdentity, RocksStore, SnapshotManifest, Store, SNAPSHOT_FORMAT_VERSION};
use cairn_types::{sha256, Hash, Height};
use support::{cairnd, get_json, validator_homes, ChildGuard, FREE_PORTS};

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
    start_with_interval(home, 5, extra)
}

fn start_with_interval(home: &Path, interval: u64, extra: &[String]) -> Running {
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
        ])
        .arg(interval.to_string())
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
    // Below the base it holds the blocks of the evidence window (100
    // heights, here down to height 1), the same as the others': evidence
    // of those heights can be judged.
    let lowest = joiner.status()["lowest_height"].as_u64().unwrap();
    assert_eq!(lowest, base.saturating_sub(100).max(1));
    for height in lowest..base {
        assert_eq!(
            joiner.header(height)["hash"],
            validators[3].header(height)["hash"],
            "history block {height}"
        );
    }
    let log = joiner.log();
    assert!(
        log.contains("state sync: kept the blocks of the evidence window"),
        "{log}"
    );
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

/// A test-only p2p peer of the chain that offers a snapshot of height
/// `height` whose manifest names the true state root but a chunk that is
/// not that state; `corrupt` serves bytes that do not even match the
/// manifest. It refuses block requests and knows no validator set.
async fn run_liar(
    mut events: tokio::sync::mpsc::Receiver<Event>,
    manifest: SnapshotManifest,
    fake_chunk: Vec<u8>,
    corrupt: bool,
) {
    let offer = SnapshotOffer {
        height: manifest.height,
        manifest_hash: manifest.hash(),
        chunks: 1,
    };
    while let Some(event) = events.recv().await {
        match event {
            Event::SnapshotRequest { request, reply, .. } => reply.respond(match request {
                SnapshotRequest::List => SnapshotResponse::List(vec![offer.clone()]),
                SnapshotRequest::Manifest { .. } => {
                    SnapshotResponse::Manifest(Some(manifest.to_bytes()))
                }
                SnapshotRequest::Chunk { .. } if corrupt => {
                    SnapshotResponse::Chunk(Some(b"corrupt".to_vec()))
                }
                SnapshotRequest::Chunk { .. } => SnapshotResponse::Chunk(Some(fake_chunk.clone())),
                SnapshotRequest::ValidatorSet(_) => SnapshotResponse::ValidatorSet(None),
            }),
            Event::SyncRequest { reply, .. } => {
                reply.respond(SyncResponse::Refused("not serving blocks".into()))
            }
            Event::Gossip(message) => message.validation.ignore().await,
            _ => {}
        }
    }
}

#[test]
fn byzantine_peers_offering_a_lying_snapshot_are_banned_and_the_join_completes() {
    let root = tempfile::tempdir().unwrap();
    let (homes, genesis, _) = validator_homes(root.path(), "cairn-state-sync-byzantine", 4);
    // Only v0 takes snapshots (every 50 heights): one honest offer.
    let mut validators = vec![start_with_interval(&homes[0], 50, &[])];
    let bootstrap = validators[0].p2p.clone();
    for home in &homes[1..] {
        validators.push(start_with_interval(
            home,
            0,
            &["--bootstrap".into(), bootstrap.clone()],
        ));
    }
    let refs: Vec<&Running> = validators.iter().collect();
    wait_until("v0's snapshot of height 50", &refs, || {
        validators[0].status()["snapshot_heights"]
            .as_array()
            .is_some_and(|heights| !heights.is_empty())
    });
    // The liars offer the latest height, which is not a snapshot height,
    // with its real state root (so the manifest passes the header check).
    let mut lie_height = validators[0].height();
    while lie_height % 50 == 0 {
        std::thread::sleep(Duration::from_millis(100));
        lie_height = validators[0].height();
    }
    let state_root = Hash::from_hex(
        validators[0].header(lie_height)["header"]["state_root"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    // A well-formed chunk of one account: not the state of that height.
    let mut fake_chunk = 1u32.to_be_bytes().to_vec();
    fake_chunk.push(21);
    fake_chunk.push(b'a');
    fake_chunk.extend_from_slice(&[7; 20]);
    fake_chunk.extend_from_slice(&24u32.to_be_bytes());
    fake_chunk.extend_from_slice(&[0; 8]);
    fake_chunk.extend_from_slice(&1_000u64.to_be_bytes());
    fake_chunk.extend_from_slice(&[0; 8]);
    let manifest = SnapshotManifest {
        format_version: SNAPSHOT_FORMAT_VERSION,
        chain_id: genesis.chain_id.clone(),
        height: Height(lie_height),
        state_root,
        chunk_hashes: vec![sha256(&fake_chunk)],
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let liars: Vec<(cairn_p2p::Client, String)> = runtime.block_on(async {
        let mut liars = Vec::new();
        for corrupt in [true, false] {
            let keypair = cairn_p2p::generate_keypair();
            let mut config = cairn_p2p::Config::new(genesis.chain_id.clone(), keypair);
            config.genesis_hash = genesis.hash().to_string();
            config.listen_addresses = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
            config.bootstrap = vec![bootstrap.parse().unwrap()];
            config.mdns = false;
            let (client, mut events, _task) = cairn_p2p::spawn(config).unwrap();
            let address = loop {
                match events.recv().await.unwrap() {
                    Event::ListenAddress { address } => break address,
                    _ => continue,
                }
            };
            let address = format!("{address}/p2p/{}", client.local_peer_id());
            tokio::spawn(run_liar(
                events,
                manifest.clone(),
                fake_chunk.clone(),
                corrupt,
            ));
            liars.push((client, address));
        }
        liars
    });

    let joiner_home = root.path().join("joiner");
    let output = cairnd()
        .arg("--home")
        .arg(&joiner_home)
        .args(["init", "--mode", "full", "--genesis"])
        .arg(root.path().join("genesis.json"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let peers = format!("{bootstrap},{},{}", liars[0].1, liars[1].1);
    let joiner = start_with_interval(
        &joiner_home,
        0,
        &["--state-sync".into(), "--bootstrap".into(), peers],
    );
    let mut all = refs.clone();
    all.push(&joiner);
    wait_until("the joiner to restore the honest snapshot", &all, || {
        joiner.status()["snapshot_base"].as_u64().unwrap_or(0) > 0
    });
    let base = joiner.status()["snapshot_base"].as_u64().unwrap();
    assert_eq!(
        base % 50,
        0,
        "restored {base}, not an honest snapshot height"
    );
    let target = validators[0].height() + 3;
    wait_until("the joiner to follow the tip", &all, || {
        joiner.height() >= target
    });
    assert_eq!(
        joiner.header(base)["header"]["state_root"],
        validators[1].header(base)["header"]["state_root"]
    );
    let log = joiner.log();
    assert!(log.contains("giving up this snapshot"), "{log}");
    assert!(log.contains("banning the peers that offered it"), "{log}");
    // Both liars were banned: the joiner dropped them.
    let joiner_id: cairn_p2p::PeerId = joiner.p2p.rsplit('/').next().unwrap().parse().unwrap();
    runtime.block_on(async {
        for (client, _) in &liars {
            let started = Instant::now();
            while client.peers().await.unwrap().contains(&joiner_id) {
                assert!(
                    started.elapsed() < WAIT,
                    "a liar is still connected to the joiner"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    for line in log.lines().filter(|line| line.contains("state sync")) {
        eprintln!("{line}");
    }
}
