//! Real `cairnd` processes with real libp2p on 127.0.0.1 and real RocksDB:
//! `--dev` commits a transfer; four validators in four processes agree on
//! every block; a validator killed with SIGKILL restarts, catches up and
//! signs nothing conflicting; a full node that knows only the genesis and
//! one bootstrap address syncs and follows the tip.
//!
//! The tests of this file run one at a time (they share two cores), every
//! process has its own home and port 0, waits poll with deadlines, and
//! every child is killed when its guard drops.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use cairn_types::{ChainId, ConsensusParams, Keypair, Timestamp, Transaction};

/// The multi-process tests take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const DEADLINE: Duration = Duration::from_secs(60);

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn cairnd() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cairnd"));
    command.env_remove("RUST_LOG");
    for (key, _) in std::env::vars() {
        if key.starts_with("CAIRN_") {
            command.env_remove(key);
        }
    }
    command
}

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// One node: its home, and its process while it runs.
struct Node {
    home: PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
    rpc: String,
    p2p: String,
}

impl Node {
    fn start(&mut self) {
        assert!(self.child.is_none());
        let _ = std::fs::remove_file(self.home.join("addresses.json"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home.join("node.log"))
            .unwrap();
        let child = cairnd()
            .arg("--home")
            .arg(&self.home)
            .arg("start")
            .args([
                "--rpc-listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
                "--p2p-listen",
                "/ip4/127.0.0.1/tcp/0",
                "--timeout-commit-ms",
                "50",
            ])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(self.home.join("addresses.json")) {
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
                    if let Some(p2p) = value["p2p"].get(0).and_then(|v| v.as_str()) {
                        self.rpc = value["rpc"].as_str().unwrap().to_string();
                        self.p2p = p2p.to_string();
                        return;
                    }
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("cairnd exited early ({status}):\n{}", self.log());
            }
            assert!(
                started.elapsed() < DEADLINE,
                "no addresses:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.home.join("node.log")).unwrap_or_default()
    }

    fn get(&self, path: &str) -> serde_json::Value {
        let (status, body) = http("GET", &self.rpc, path, "");
        assert!(status < 500, "GET {path}: {status} {body}");
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
    }

    fn height(&self) -> u64 {
        self.get("/status")["latest_height"].as_u64().unwrap_or(0)
    }

    fn block_hash(&self, height: u64) -> String {
        self.get(&format!("/block/{height}"))["hash"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn wait_for_height(&self, height: u64, nodes: &[&Node]) {
        let started = Instant::now();
        while self.height() < height {
            if started.elapsed() > DEADLINE * 2 {
                for node in nodes {
                    eprintln!("==== {} ====\n{}", node.home.display(), node.log());
                }
                panic!("{} stuck at height {}", self.rpc, self.height());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// HTTP/1.1 with `Connection: close`: (status, body).
fn http(method: &str, base: &str, path: &str, body: &str) -> (u16, String) {
    let authority = base.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&authority).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A devnet of `validators` homes sharing one genesis that funds `funded`.
struct Devnet {
    _root: tempfile::TempDir,
    nodes: Vec<Node>,
    genesis_file: PathBuf,
    chain_id: ChainId,
}

fn test_params() -> ConsensusParams {
    let mut params = cairn_genesis::dev::dev_consensus_params();
    params.timeout_propose_ms = 1_500;
    params.timeout_propose_delta_ms = 500;
    params.timeout_prevote_ms = 1_000;
    params.timeout_prevote_delta_ms = 500;
    params.timeout_precommit_ms = 1_000;
    params.timeout_precommit_delta_ms = 500;
    params
}

fn devnet(validators: usize, funded: &[&Keypair]) -> Devnet {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    let mut keys = Vec::new();
    for index in 0..validators {
        let home = root.path().join(format!("v{index}"));
        run(cairnd()
            .arg("--home")
            .arg(&home)
            .args(["init", "--moniker"])
            .arg(format!("v{index}")));
        let public_key = run(cairnd().arg("--home").arg(&home).arg("show-validator"));
        keys.push((
            format!("v{index}"),
            cairn_types::PublicKey::from_hex(&public_key).unwrap(),
        ));
        nodes.push(Node {
            home,
            child: None,
            extra: Vec::new(),
            rpc: String::new(),
            p2p: String::new(),
        });
    }
    let genesis =
        cairn_genesis::devnet::build_devnet_from_keys(&cairn_genesis::devnet::DevnetKeys {
            chain_id: "cairn-test".into(),
            genesis_time: Timestamp(1_767_225_600_000),
            validators: keys,
            accounts: funded
                .iter()
                .map(|keypair| (keypair.address(), 1_000_000))
                .collect(),
            consensus_params: test_params(),
            staking_params: cairn_genesis::devnet::devnet_staking_params(),
        })
        .unwrap();
    let genesis_file = root.path().join("genesis.json");
    genesis.to_file().save(&genesis_file).unwrap();
    for node in &nodes {
        std::fs::copy(&genesis_file, node.home.join("config/genesis.json")).unwrap();
    }
    Devnet {
        chain_id: genesis.chain_id.clone(),
        _root: root,
        nodes,
        genesis_file,
    }
}

impl Devnet {
    /// Starts node 0, then every other node with node 0 as bootstrap.
    fn start_all(&mut self, extra: &[&str]) {
        for node in &mut self.nodes {
            node.extra = extra.iter().map(|s| s.to_string()).collect();
        }
        self.nodes[0].start();
        let bootstrap = self.nodes[0].p2p.clone();
        for node in self.nodes.iter_mut().skip(1) {
            node.extra
                .extend(["--bootstrap".to_string(), bootstrap.clone()]);
            node.start();
        }
    }

    fn node_refs(&self) -> Vec<&Node> {
        self.nodes.iter().collect()
    }

    /// Every running node reports the same hash at every height up to `height`.
    fn assert_agreement(&self, height: u64) {
        for h in 1..=height {
            let hashes: Vec<String> = self
                .nodes
                .iter()
                .filter(|node| node.child.is_some())
                .map(|node| node.block_hash(h))
                .collect();
            assert!(!hashes[0].is_empty(), "no block {h}");
            assert!(
                hashes.iter().all(|hash| *hash == hashes[0]),
                "nodes disagree at height {h}: {hashes:?}"
            );
        }
    }
}

fn transfer(chain_id: &ChainId, from: &Keypair, to: &Keypair, amount: u64, nonce: u64) -> String {
    let signed = Transaction {
        chain_id: chain_id.clone(),
        sender: from.public_key(),
        recipient: to.address(),
        amount,
        fee: 1,
        nonce,
        memo: String::new(),
        kind: cairn_types::TransactionKind::Transfer,
    }
    .sign(from);
    format!("{{\"tx\": \"{}\"}}", hex::encode(signed.to_bytes()))
}

#[test]
fn dev_node_commits_a_transfer() {
    let _serial = serial();
    let home = tempfile::tempdir().unwrap();
    let mut node = Node {
        home: home.path().to_path_buf(),
        child: None,
        extra: vec!["--dev".into()],
        rpc: String::new(),
        p2p: String::new(),
    };
    // `--dev` is a flag of `start`: put it first among start's flags.
    node.start();
    let accounts = cairn_genesis::dev::dev_account_keypairs();
    let chain_id = ChainId::new(cairn_genesis::dev::DEV_CHAIN_ID).unwrap();
    let (status, body) = http(
        "POST",
        &node.rpc,
        "/tx",
        &transfer(&chain_id, &accounts[0], &accounts[1], 1_000, 0),
    );
    assert_eq!(status, 200, "{body}");
    let hash: serde_json::Value = serde_json::from_str(&body).unwrap();
    let hash = hash["hash"].as_str().unwrap().to_string();
    let started = Instant::now();
    loop {
        let (status, body) = http("GET", &node.rpc, &format!("/tx/{hash}"), "");
        if status == 200 {
            let found: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert!(found["height"].as_u64().unwrap() >= 1, "{body}");
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "transfer not committed:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let balance = cairn_genesis::dev::DEV_ACCOUNT_BALANCE;
    let sender = node.get(&format!("/account/{}", accounts[0].address()));
    assert_eq!(sender["balance"].as_u64().unwrap(), balance - 1_001);
    assert_eq!(sender["nonce"].as_u64().unwrap(), 1);
    let recipient = node.get(&format!("/account/{}", accounts[1].address()));
    assert_eq!(recipient["balance"].as_u64().unwrap(), balance + 1_000);
    // A badly signed transfer gets a 4xx with its reason, and the node runs on.
    let mut bad = cairn_types::Transaction {
        chain_id,
        sender: accounts[2].public_key(),
        recipient: accounts[3].address(),
        amount: 5,
        fee: 1,
        nonce: 0,
        memo: String::new(),
        kind: cairn_types::TransactionKind::Transfer,
    }
    .sign(&accounts[2]);
    bad.transaction.amount = 6;
    let (status, body) = http(
        "POST",
        &node.rpc,
        "/tx",
        &format!("{{\"tx\": \"{}\"}}", hex::encode(bad.to_bytes())),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("bad_signature"), "{body}");
    let (status, body) = http("POST", &node.rpc, "/tx", "{\"tx\": \"zz\"}");
    assert_eq!(status, 400, "{body}");
    assert_eq!(http("GET", &node.rpc, "/health", "").0, 200);
}

#[test]
fn four_validators_agree_survive_a_kill_and_a_late_full_node_syncs() {
    let _serial = serial();
    let alice = cairn_genesis::devnet::generate_keypair();
    let bob = cairn_genesis::devnet::generate_keypair();
    let mut net = devnet(4, &[&alice, &bob]);
    // Empty blocks keep coming so heights advance without load.
    net.start_all(&["--wait-for-transactions", "false"]);
    net.nodes[0].wait_for_height(5, &net.node_refs());
    for node in &net.nodes {
        node.wait_for_height(5, &net.node_refs());
    }
    net.assert_agreement(5);

    // `/consensus` shows a validator's height, round, step, proposer and
    // the power of the set; `/peers` how long each peer has been there.
    let mut directions = std::collections::BTreeSet::new();
    for node in &net.nodes {
        let consensus = node.get("/consensus");
        assert!(consensus["height"].as_u64().unwrap() >= 5, "{consensus}");
        assert_eq!(consensus["total_power"], 4, "{consensus}");
        assert_eq!(consensus["quorum_power"], 3, "{consensus}");
        assert!(
            consensus["validator_index"].as_u64().unwrap() < 4,
            "{consensus}"
        );
        assert!(consensus["proposer"]["name"].is_string(), "{consensus}");
        let step = consensus["step"].as_str().unwrap();
        assert!(
            ["propose", "prevote", "precommit", "decided", "unstarted"].contains(&step),
            "{consensus}"
        );
        for votes in [&consensus["prevotes"], &consensus["precommits"]] {
            assert!(votes["power"].as_u64().unwrap() <= 4, "{consensus}");
        }
        // Scores are read from the p2p layer every 2 s: wait for them.
        let started = std::time::Instant::now();
        let peers = loop {
            let peers = node.get("/peers");
            let list = peers["peers"].as_array().unwrap().clone();
            if !list.is_empty() && list.iter().all(|peer| peer["score"].is_f64()) {
                break list;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "{}: peers without a score: {peers}",
                node.rpc
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        let peers = &peers;
        for peer in peers {
            assert!(peer["connected_since"].as_u64().unwrap() > 0, "{peer}");
            assert!(peer["connected_ms"].as_u64().is_some(), "{peer}");
            let score = peer["score"].as_f64().unwrap();
            assert!((-100.0..=10.0).contains(&score), "{peer}");
            let direction = peer["direction"].as_str().unwrap();
            assert!(["inbound", "outbound"].contains(&direction), "{peer}");
            directions.insert(direction.to_string());
        }
    }
    // The others dialled the bootstrap node: both directions are seen.
    assert_eq!(directions.len(), 2, "{directions:?}");

    // Transfers while validator 3 is killed with SIGKILL and restarted.
    let chain_id = net.chain_id.clone();
    let mut nonce = 0;
    for _ in 0..5 {
        let body = transfer(&chain_id, &alice, &bob, 10, nonce);
        let (status, text) = http("POST", &net.nodes[0].rpc, "/tx", &body);
        assert_eq!(status, 200, "{text}");
        nonce += 1;
    }
    net.nodes[3].kill();
    for _ in 0..5 {
        let body = transfer(&chain_id, &alice, &bob, 10, nonce);
        let (status, text) = http("POST", &net.nodes[1].rpc, "/tx", &body);
        assert_eq!(status, 200, "{text}");
        nonce += 1;
    }
    let before_restart = net.nodes[0].height();
    net.nodes[0].wait_for_height(before_restart + 3, &net.node_refs());
    net.nodes[3].start();
    let target = net.nodes[0].height() + 3;
    for node in &net.nodes {
        node.wait_for_height(target, &net.node_refs());
    }
    net.assert_agreement(target);
    let started = Instant::now();
    loop {
        let alice_account = net.nodes[3].get(&format!("/account/{}", alice.address()));
        if alice_account["nonce"].as_u64() == Some(10) {
            assert_eq!(alice_account["balance"].as_u64().unwrap(), 1_000_000 - 110);
            break;
        }
        assert!(started.elapsed() < DEADLINE, "transfers not committed");
        std::thread::sleep(Duration::from_millis(100));
    }
    // No honest validator signed anything conflicting.
    for node in &net.nodes {
        assert_eq!(
            node.get("/evidence"),
            serde_json::json!({"evidence": []}),
            "{}",
            node.rpc
        );
    }

    // Data survives a clean restart.
    let height = net.nodes[2].height();
    let hash = net.nodes[2].block_hash(height);
    let pid = net.nodes[2].child.as_ref().unwrap().id();
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let status = net.nodes[2].child.as_mut().unwrap().wait().unwrap();
    assert!(status.success(), "{}", net.nodes[2].log());
    net.nodes[2].child = None;
    net.nodes[2].start();
    assert_eq!(net.nodes[2].block_hash(height), hash);

    // A full node with only the genesis file and one bootstrap address,
    // started after 50 blocks.
    net.nodes[0].wait_for_height(50, &net.node_refs());
    let full_home = net._root.path().join("full");
    run(cairnd()
        .arg("--home")
        .arg(&full_home)
        .args(["init", "--mode", "full", "--genesis"])
        .arg(&net.genesis_file));
    let mut full = Node {
        home: full_home,
        child: None,
        extra: vec!["--bootstrap".into(), net.nodes[1].p2p.clone()],
        rpc: String::new(),
        p2p: String::new(),
    };
    full.start();
    let target = net.nodes[0].height() + 2;
    full.wait_for_height(target, &[&full, &net.nodes[0]]);
    assert_eq!(full.block_hash(target), net.nodes[0].block_hash(target));
    let status = full.get("/status");
    assert_eq!(status["validator"], false, "{status}");
    let bob_account = full.get(&format!("/account/{}", bob.address()));
    assert_eq!(bob_account["balance"].as_u64().unwrap(), 1_000_000 + 100);
}
