//! The light client of `cairn query account --prove`: against a real
//! one-validator node it verifies every header from the genesis and the
//! account proof; with the genesis of another chain, or through a proxy
//! that changes the proven balance, it refuses the answer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

const DEADLINE: Duration = Duration::from_secs(30);

fn binary(name: &str) -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_cairn")).with_file_name(name)
}

fn command(name: &str) -> Command {
    let mut command = Command::new(binary(name));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CAIRN_") {
            command.env_remove(key);
        }
    }
    command.stdin(Stdio::null());
    command
}

/// Kills the node when dropped, also on a failed assertion.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn init(home: &Path) {
    let output = command("cairnd")
        .arg("--home")
        .arg(home)
        .args(["init", "--moniker", "solo"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
}

fn start(home: &Path) -> (Node, String) {
    let child = command("cairnd")
        .arg("--home")
        .arg(home)
        .args(["start", "--rpc-listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .args(["--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--mdns", "false"])
        .args(["--block-interval-max-ms", "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let node = Node(child);
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(home.join("addresses.json")) {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
                return (node, value["rpc"].as_str().unwrap().to_string());
            }
        }
        assert!(started.elapsed() < DEADLINE, "no addresses.json");
        thread::sleep(Duration::from_millis(50));
    }
}

fn get(url: &str, path: &str) -> (u16, String) {
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    (status, body.to_string())
}

/// An HTTP proxy in front of `target` that adds 1 to the balance of every
/// account proof and to the index of every inclusion proof it passes on
/// (a lying node).
fn lying_proxy(target: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let target = target.clone();
            thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line.trim_end().is_empty() {
                        break;
                    }
                }
                let path = request_line.split_whitespace().nth(1).unwrap().to_string();
                let (status, mut body) = get(&target, &path);
                if path.contains("prove=true") && path.starts_with("/account/") {
                    let mut value: serde_json::Value = serde_json::from_str(&body).unwrap();
                    let balance = value["proof"]["balance"].as_u64().unwrap();
                    value["proof"]["balance"] = (balance + 1).into();
                    value["balance"] = (balance + 1).into();
                    body = value.to_string();
                }
                if path.contains("prove=true") && path.starts_with("/tx/") {
                    // Claims the transaction sits one place further on.
                    let mut value: serde_json::Value = serde_json::from_str(&body).unwrap();
                    let index = value["proof"]["index"].as_u64().unwrap();
                    value["proof"]["index"] = (index + 1).into();
                    body = value.to_string();
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    url
}

fn prove(url: &str, address: &str, genesis: &Path) -> (i32, String, String) {
    prove_with(url, address, genesis, None)
}

/// `prove` keeping what it verified in `light_dir` (none: nothing kept).
fn prove_with(
    url: &str,
    address: &str,
    genesis: &Path,
    light_dir: Option<&Path>,
) -> (i32, String, String) {
    let mut query = command("cairn");
    match light_dir {
        Some(dir) => query.env("CAIRN_LIGHT_DIR", dir),
        None => query.env("CAIRN_LIGHT_DIR", "/dev/null/none"),
    };
    let output = query
        .args(["query", "account", address, "--prove", "--genesis"])
        .arg(genesis)
        .args(["--node", url, "--json"])
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn proofs_verify_from_the_genesis_and_lies_are_refused() {
    assert!(
        binary("cairnd").is_file(),
        "build the binaries first: cargo build --workspace --bins"
    );
    let home = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    init(home.path());
    init(other.path());
    let (_node, url) = start(home.path());
    // The validator's own account (its operator) exists from genesis.
    let key = command("cairnd")
        .arg("--home")
        .arg(home.path())
        .arg("show-validator")
        .output()
        .unwrap();
    let key = String::from_utf8(key.stdout).unwrap();
    let address = cairn_types::PublicKey::from_hex(key.trim())
        .unwrap()
        .address()
        .to_string();
    let started = Instant::now();
    loop {
        let (_, body) = get(&url, "/status");
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        if status["latest_height"].as_u64().unwrap_or(0) >= 3 {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "no blocks: {body}");
        thread::sleep(Duration::from_millis(100));
    }

    let genesis = home.path().join("config/genesis.json");
    let (code, stdout, stderr) = prove(&url, &address, &genesis);
    assert_eq!(code, 0, "{stderr}");
    let proven: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let (_, account) = get(&url, &format!("/account/{address}"));
    let account: serde_json::Value = serde_json::from_str(&account).unwrap();
    assert_eq!(proven["balance"], account["balance"], "{stdout}");
    let height = proven["verified"]["height"].as_u64().unwrap();
    assert!(height >= 3, "{stdout}");
    assert_eq!(proven["verified"]["headers"].as_u64().unwrap(), height);

    // What a run verified is kept: the next run walks only the new headers.
    let light = tempfile::tempdir().unwrap();
    let (code, first, _) = prove_with(&url, &address, &genesis, Some(light.path()));
    assert_eq!(code, 0, "{first}");
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    thread::sleep(Duration::from_millis(500));
    let (code, second, _) = prove_with(&url, &address, &genesis, Some(light.path()));
    assert_eq!(code, 0, "{second}");
    let second: serde_json::Value = serde_json::from_str(&second).unwrap();
    let resumed_from = second["verified"]["from_height"].as_u64().unwrap();
    assert_eq!(
        resumed_from,
        first["verified"]["height"].as_u64().unwrap(),
        "{second}"
    );
    assert_eq!(
        second["verified"]["headers"].as_u64().unwrap(),
        second["verified"]["height"].as_u64().unwrap() - resumed_from
    );

    // The genesis of another chain (same chain id, other validator) is not
    // the root of this chain's headers.
    // (With --json the error comes on standard output, in the error shape.)
    let (code, stdout, _) = prove(&url, &address, &other.path().join("config/genesis.json"));
    assert_eq!(code, 1, "{stdout}");
    let error: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(error["error"]["code"], "unverified", "{stdout}");

    // A node that changes the balance it proves is caught.
    let liar = lying_proxy(url.clone());
    let (code, stdout, _) = prove(&liar, &address, &genesis);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("does not verify") && stdout.contains("state root"),
        "{stdout}"
    );
    // A transfer from the validator's account (its key file signs), then
    // its inclusion proof, verified from the genesis; the liar is caught.
    let output = command("cairn")
        .args(["tx", "send", "--private-key-file"])
        .arg(home.path().join("config/validator_key.json"))
        .args([
            "--to",
            &cairn_types::Address([8; 20]).to_string(),
            "--amount",
            "5",
        ])
        .args(["--node", &url, "--wait", "--json"])
        .output()
        .unwrap();
    let sent = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{sent} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let sent: serde_json::Value = serde_json::from_str(&sent).unwrap();
    let hash = sent["hash"].as_str().unwrap().to_string();
    let prove_tx = |node: &str| {
        let output = command("cairn")
            .env("CAIRN_LIGHT_DIR", "/dev/null/none")
            .args(["query", "tx", &hash, "--prove", "--genesis"])
            .arg(&genesis)
            .args(["--node", node, "--json"])
            .output()
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let (code, stdout) = prove_tx(&url);
    assert_eq!(code, 0, "{stdout}");
    let proven: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(proven["height"], sent["height"], "{stdout}");
    let (code, stdout) = prove_tx(&liar);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("inclusion proof does not lead"), "{stdout}");

    // An account that does not exist has no proof, and says so.
    let (code, stdout, _) = prove(&url, &cairn_types::Address([9; 20]).to_string(), &genesis);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("has no account"), "{stdout}");
}
