//! Shared by the tests that run the real `cairnd` binary: a command with
//! a clean environment, a guard that kills a child the test leaves behind,
//! plain HTTP/1.1 requests, and the bound addresses a node writes; and by
//! the in-process ledger tests: their validator keys and certificates.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::{Child, Command},
    time::{Duration, Instant},
};

/// How long a test waits for anything a node should do at once.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// `cairnd` with no `RUST_LOG` and no `CAIRN_*` variable of the caller.
pub fn cairnd() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cairnd"));
    command.env_remove("RUST_LOG");
    for (key, _) in std::env::vars() {
        if key.starts_with("CAIRN_") {
            command.env_remove(key);
        }
    }
    command
}

/// Kills the child if the test ends without it having exited.
pub struct ChildGuard(pub Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One HTTP/1.1 request with `Connection: close`: (status, body).
pub fn http_request(base: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let authority = base
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap();
    let mut stream = TcpStream::connect(authority).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
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

/// GET: (status, body).
pub fn http_get(base: &str, path: &str) -> (u16, String) {
    http_request(base, "GET", path, None)
}

/// GET of a JSON answer.
pub fn get_json(base: &str, path: &str) -> serde_json::Value {
    let (status, body) = http_get(base, path);
    serde_json::from_str(&body)
        .unwrap_or_else(|error| panic!("GET {path}: {status} {body}: {error}"))
}

/// Polls `home/addresses.json` until it parses, failing if the child exits.
pub fn wait_for_addresses(guard: &mut ChildGuard, home: &Path) -> serde_json::Value {
    let addresses_file = home.join("addresses.json");
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(&addresses_file) {
            if let Ok(value) = serde_json::from_str(&text) {
                return value;
            }
        }
        if let Some(status) = guard.0.as_mut().unwrap().try_wait().unwrap() {
            let output = guard.0.take().unwrap().wait_with_output().unwrap();
            panic!(
                "cairnd exited early ({status}): {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        assert!(started.elapsed() < DEADLINE, "no addresses.json");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Flags that put every listener of a node on a free loopback port.
pub const FREE_PORTS: [&str; 6] = [
    "--rpc-listen",
    "127.0.0.1:0",
    "--metrics-listen",
    "127.0.0.1:0",
    "--p2p-listen",
    "/ip4/127.0.0.1/tcp/0",
];

/// Homes `root/v0 ..` of a chain `chain_id` of `count` fresh validators,
/// each made by `cairnd init --genesis` and given its validator key; the
/// genesis and the keys.
pub fn validator_homes(
    root: &Path,
    chain_id: &str,
    count: usize,
) -> (
    Vec<std::path::PathBuf>,
    cairn_genesis::Genesis,
    Vec<cairn_types::Keypair>,
) {
    let keys: Vec<_> = (0..count)
        .map(|_| cairn_genesis::devnet::generate_keypair())
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let genesis =
        cairn_genesis::devnet::build_devnet_from_keys(&cairn_genesis::devnet::DevnetKeys {
            chain_id: chain_id.into(),
            genesis_time: cairn_types::Timestamp(u64::try_from(now).unwrap()),
            validators: keys
                .iter()
                .enumerate()
                .map(|(index, key)| (format!("v{index}"), key.public_key()))
                .collect(),
            accounts: Vec::new(),
            consensus_params: cairn_types::ConsensusParams::default(),
            staking_params: cairn_genesis::devnet::devnet_staking_params(),
        })
        .unwrap();
    let genesis_path = root.join("genesis.json");
    genesis.to_file().save(&genesis_path).unwrap();
    let mut homes = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        let home = root.join(format!("v{index}"));
        let output = cairnd()
            .args(["--home", &home.display().to_string(), "init", "--genesis"])
            .arg(&genesis_path)
            .args(["--moniker", &format!("v{index}")])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let key_file = home.join("config/validator_key.json");
        std::fs::remove_file(&key_file).unwrap();
        cairn_node::home::write_key_file(&key_file, key).unwrap();
        homes.push(home);
    }
    (homes, genesis, keys)
}

/// The four validator keys of the in-process ledger tests.
pub fn ledger_validator_keys() -> Vec<cairn_types::Keypair> {
    (0..4u8)
        .map(|i| cairn_types::Keypair::from_seed(&[100 + i; 32]))
        .collect()
}

/// A round-0 commit certificate for `block`, signed by the first three of
/// [`ledger_validator_keys`] (more than two thirds of four equal powers).
pub fn certify_block(
    chain_id: &cairn_types::ChainId,
    block: &cairn_types::Block,
) -> cairn_types::CommitCertificate {
    use cairn_types::{CommitSignature, Round, ValidatorIndex, Vote, VoteType};
    let signatures = ledger_validator_keys()
        .iter()
        .enumerate()
        .take(3)
        .map(|(i, key)| {
            let index = ValidatorIndex(i as u32);
            let vote = Vote::new_signed(
                chain_id,
                VoteType::Precommit,
                block.header.height,
                Round(0),
                Some(block.hash()),
                index,
                key,
            );
            CommitSignature {
                validator: index,
                signature: vote.signature,
            }
        })
        .collect();
    cairn_types::CommitCertificate {
        height: block.header.height,
        round: Round(0),
        block_hash: block.hash(),
        signatures,
    }
}
