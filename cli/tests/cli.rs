//! The `cairn` binary, run as a person would: keys, argument errors, and
//! transfers to a node that is not there. (End-to-end tests against real
//! nodes live in `cairn-tests`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Command, Output},
};

/// `cairn` with a clean environment: no keyring, node or passphrase
/// settings leak in from the machine running the tests.
fn cairn(keyring: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cairn"));
    command
        .env_remove("CAIRN_NODE")
        .env_remove("CAIRN_PASSPHRASE")
        .env_remove("CAIRN_CHAIN_ID")
        .env("CAIRN_KEYRING_DIR", keyring);
    command
}

fn run(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

fn new_key(keyring: &Path, name: &str) -> serde_json::Value {
    let (code, stdout, stderr) = run(cairn(keyring).args(["keys", "new", name, "--json"]));
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

/// A loopback port with nothing listening on it.
/// A local port nothing listens on: port 1, which no test (and no
/// unprivileged process) can bind. A port taken from the kernel and
/// released could be handed to a fake node of a test running beside this
/// one, which then answered (it happened once in a run of the whole
/// suite: the "node elsewhere" of a test answered).
fn closed_port() -> u16 {
    let port = 1;
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something listens on 127.0.0.1:{port}"
    );
    port
}

/// One request a [`FakeNode`] received: method, path, body.
type Request = (String, String, String);

/// A stand-in for a node's RPC on 127.0.0.1 (port 0): `GET /status` of
/// chain `chain_id`, `GET /account/..` with a large balance, `POST /tx`
/// answering the transaction's hash; anything else a 404 in the node's
/// error shape. Records every request.
struct FakeNode {
    url: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<Request>>>,
}

impl FakeNode {
    fn start(chain_id: &str) -> FakeNode {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let chain_id = chain_id.to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let recorded = recorded.clone();
                let chain_id = chain_id.clone();
                std::thread::spawn(move || serve_one(stream, &chain_id, &recorded));
            }
        });
        FakeNode { url, requests }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// The transfers submitted with `POST /tx`, decoded.
    fn submitted(&self) -> Vec<cairn_types::SignedTransaction> {
        self.requests()
            .into_iter()
            .filter(|(method, path, _)| method == "POST" && path == "/tx")
            .map(|(_, _, body)| decode_submitted(&body))
            .collect()
    }
}

fn decode_submitted(body: &str) -> cairn_types::SignedTransaction {
    let value: serde_json::Value = serde_json::from_str(body).unwrap();
    let bytes = hex::decode(value["tx"].as_str().unwrap()).unwrap();
    cairn_types::SignedTransaction::from_bytes(&bytes).unwrap()
}

fn serve_one(
    mut stream: std::net::TcpStream,
    chain_id: &str,
    recorded: &std::sync::Mutex<Vec<Request>>,
) {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap();
    let body = String::from_utf8(body).unwrap();
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    recorded
        .lock()
        .unwrap()
        .push((method.clone(), path.clone(), body.clone()));
    let (status, answer) = match (method.as_str(), path.as_str()) {
        ("GET", "/status") => (
            200,
            serde_json::json!({"chain_id": chain_id, "latest_height": 5}),
        ),
        ("GET", account) if account.starts_with("/account/") => (
            200,
            serde_json::json!({
                "address": &account["/account/".len()..],
                "balance": 1_000_000u64,
                "nonce": 3,
                "next_nonce": 3,
            }),
        ),
        ("POST", "/tx") => (
            200,
            serde_json::json!({"hash": decode_submitted(&body).hash().to_hex()}),
        ),
        _ => (
            404,
            serde_json::json!({"error": {"code": "not_found", "message": "no such route"}}),
        ),
    };
    let text = answer.to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
}

/// A valid address with its last character changed: a checksum error.
fn with_bad_checksum(address: &str) -> String {
    let mut text = address.to_string();
    let last = text.pop().unwrap();
    text.push(if last == 'q' { 'p' } else { 'q' });
    text
}

#[test]
fn keys_new_list_show_export_delete() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let alice = new_key(&keys, "alice");
    let address = alice["address"].as_str().unwrap();
    assert!(address.starts_with("cairn1"));
    let path = alice["path"].as_str().unwrap();
    assert_eq!(
        fs::metadata(path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        fs::metadata(&keys).unwrap().permissions().mode() & 0o777,
        0o700
    );

    let (code, stdout, _) = run(cairn(&keys).args(["keys", "list"]));
    assert_eq!(code, 0);
    assert!(
        stdout.contains("alice") && stdout.contains(address),
        "{stdout}"
    );

    let (code, stdout, _) = run(cairn(&keys).args(["keys", "show", "alice"]));
    assert_eq!(code, 0);
    assert!(stdout.contains(address), "{stdout}");
    assert!(
        stdout.contains(alice["public_key"].as_str().unwrap()),
        "{stdout}"
    );

    let (code, stdout, stderr) = run(cairn(&keys).args(["keys", "export", "alice"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim().len(), 64, "{stdout}");
    assert!(stderr.contains("warning"), "{stderr}");

    // The exported seed imports to the same address.
    let secret = dir.path().join("secret");
    fs::write(&secret, &stdout).unwrap();
    let (code, stdout, stderr) = run(cairn(&keys).args([
        "keys",
        "import",
        "alice2",
        "--secret-file",
        secret.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(address), "{stdout}");

    let (code, _, stderr) = run(cairn(&keys).args(["keys", "new", "alice"]));
    assert_ne!(code, 0);
    assert!(stderr.contains("already exists"), "{stderr}");

    // Without a terminal to ask on, deleting needs --yes.
    let (code, _, stderr) = run(cairn(&keys).args(["keys", "delete", "alice"]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("pass --yes"), "{stderr}");
    assert!(Path::new(path).is_file());
    let (code, _, stderr) = run(cairn(&keys).args(["keys", "delete", "alice", "--yes"]));
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = run(cairn(&keys).args(["keys", "show", "alice"]));
    assert_ne!(code, 0);
    assert!(stderr.contains("no key named \"alice\""), "{stderr}");
    assert!(stderr.contains("known keys: alice2"), "{stderr}");
}

#[test]
fn keys_encrypted_with_a_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let right = dir.path().join("right");
    let wrong = dir.path().join("wrong");
    fs::write(&right, "open sesame\n").unwrap();
    fs::write(&wrong, "close sesame\n").unwrap();

    let (code, stdout, stderr) = run(cairn(&keys).args([
        "keys",
        "new",
        "vault",
        "--json",
        "--passphrase-file",
        right.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{stderr}");
    let info: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(info["encrypted"], true);

    // The environment variable works as well as the file.
    let (code, seed, stderr) = run(cairn(&keys)
        .args(["keys", "export", "vault"])
        .env("CAIRN_PASSPHRASE", "open sesame"));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(seed.trim().len(), 64);

    let (code, _, stderr) = run(cairn(&keys).args([
        "keys",
        "export",
        "vault",
        "--passphrase-file",
        wrong.to_str().unwrap(),
    ]));
    assert_ne!(code, 0);
    assert!(stderr.contains("wrong passphrase"), "{stderr}");

    let (code, _, stderr) = run(cairn(&keys).args(["keys", "export", "vault"]));
    assert_ne!(code, 0);
    assert!(stderr.contains("is encrypted"), "{stderr}");

    // A passphrase is never a flag value.
    let (code, _, _) = run(cairn(&keys).args(["keys", "export", "vault", "--passphrase", "x"]));
    assert_eq!(code, 2);
}

#[test]
fn keys_import_errors() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let secret = dir.path().join("secret");
    fs::write(&secret, "not hex at all").unwrap();
    let (code, _, stderr) = run(cairn(&keys).args([
        "keys",
        "import",
        "k",
        "--secret-file",
        secret.to_str().unwrap(),
    ]));
    assert_eq!(code, 1);
    assert!(stderr.contains("64 hex characters"), "{stderr}");

    let missing = dir.path().join("missing");
    let (code, _, stderr) = run(cairn(&keys).args([
        "keys",
        "import",
        "k",
        "--secret-file",
        missing.to_str().unwrap(),
    ]));
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot read"), "{stderr}");

    let (code, _, stderr) = run(cairn(&keys).args(["keys", "new", "../escape"]));
    assert_eq!(code, 2);
    assert!(stderr.contains("bad key name"), "{stderr}");
}

#[test]
fn a_corrupted_key_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let info = new_key(&keys, "alice");
    fs::write(info["path"].as_str().unwrap(), "garbage").unwrap();
    let (code, _, stderr) = run(cairn(&keys).args(["keys", "show", "alice"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("corrupted"), "{stderr}");
    // The list still shows the other keys.
    let bob = new_key(&keys, "bob");
    let (code, stdout, stderr) = run(cairn(&keys).args(["keys", "list"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("alice  unreadable"), "{stdout}");
    assert!(
        stdout.contains(bob["address"].as_str().unwrap()),
        "{stdout}"
    );
}

#[test]
fn a_bad_address_checksum_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let alice = new_key(&keys, "alice");
    let bad = with_bad_checksum(alice["address"].as_str().unwrap());
    let (code, _, stderr) = run(cairn(&keys).args([
        "tx", "send", "--from", "alice", "--to", &bad, "--amount", "5",
    ]));
    assert_eq!(code, 2);
    assert!(stderr.contains("checksum"), "{stderr}");

    let (code, _, stderr) = run(cairn(&keys).args(["query", "account", &bad]));
    assert_eq!(code, 2);
    assert!(stderr.contains("checksum"), "{stderr}");
}

#[test]
fn malformed_flags_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let alice = new_key(&keys, "alice");
    let address = alice["address"].as_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "tx", "send", "--from", "alice", "--to", address, "--amount", "ten",
            ],
            "--amount",
        ),
        (
            vec![
                "tx", "send", "--from", "alice", "--to", address, "--amount", "-1",
            ],
            "-1",
        ),
        (
            vec!["tx", "send", "--from", "alice", "--amount", "1"],
            "--to",
        ),
        (
            vec![
                "tx",
                "send",
                "--from",
                "alice",
                "--to",
                address,
                "--amount",
                "1",
                "--timeout",
                "soon",
            ],
            "--timeout",
        ),
        (
            vec![
                "tx", "send", "--from", "alice", "--to", address, "--amount", "1", "--bogus",
            ],
            "--bogus",
        ),
        (vec!["query", "block", "tall"], "block height"),
        (vec!["query", "tx", "abcd"], "hex"),
        (vec!["completions", "cmd.exe"], "cmd.exe"),
    ];
    for (arguments, expected) in cases {
        let (code, _, stderr) = run(cairn(&keys).args(&arguments));
        assert_eq!(code, 2, "{arguments:?}: {stderr}");
        assert!(stderr.contains(expected), "{arguments:?}: {stderr}");
    }
}

#[test]
fn sending_to_an_unreachable_node_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let alice = new_key(&keys, "alice");
    let address = alice["address"].as_str().unwrap();
    let url = format!("http://127.0.0.1:{}", closed_port());
    for wait in [false, true] {
        let mut command = cairn(&keys);
        command.args([
            "tx", "send", "--from", "alice", "--to", address, "--amount", "5", "--node", &url,
        ]);
        if wait {
            command.args(["--wait", "--timeout", "5s"]);
        }
        let (code, stdout, stderr) = run(&mut command);
        assert_eq!(code, 1, "{stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(
            stderr.contains(&format!("cannot reach node at {url}")),
            "{stderr}"
        );
        assert!(stderr.contains("is cairnd running?"), "{stderr}");
    }

    // The node can also come from the environment.
    let (code, _, stderr) = run(cairn(&keys)
        .args(["query", "status"])
        .env("CAIRN_NODE", &url));
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("cannot reach node at {url}")),
        "{stderr}"
    );
}

#[test]
fn sending_from_an_unknown_key_lists_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let alice = new_key(&keys, "alice");
    let address = alice["address"].as_str().unwrap();
    let url = format!("http://127.0.0.1:{}", closed_port());
    let (code, _, stderr) = run(cairn(&keys).args([
        "tx", "send", "--from", "bob", "--to", address, "--amount", "5", "--node", &url,
    ]));
    assert_eq!(code, 1);
    assert!(stderr.contains("no key named \"bob\""), "{stderr}");
    assert!(stderr.contains("known keys: alice"), "{stderr}");
}

#[test]
fn bad_node_urls_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    for url in ["not a url", "ftp://127.0.0.1:1"] {
        let (code, _, stderr) = run(cairn(&keys).args(["query", "status", "--node", url]));
        assert_eq!(code, 1);
        assert!(stderr.contains("bad node URL"), "{url}: {stderr}");
    }
}

#[test]
fn completions_for_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let (code, stdout, stderr) = run(cairn(dir.path()).args(["completions", shell]));
        assert_eq!(code, 0, "{stderr}");
        assert!(
            stdout.contains("keys") && stdout.contains("send"),
            "{shell}"
        );
    }
}

#[test]
fn transfers_that_break_a_rule_are_refused_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let alice = new_key(&keys, "alice");
    let address = alice["address"].as_str().unwrap();
    let url = format!("http://127.0.0.1:{}", closed_port());
    let long_memo = "m".repeat(cairn_types::limits::MEMO_BYTES_MAX + 1);
    let max = u64::MAX.to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--amount", "1", "--memo", &long_memo], "memo"),
        (vec!["--amount", &max, "--fee", "1"], "overflows"),
    ];
    for (extra, expected) in cases {
        let (code, _, stderr) = run(cairn(&keys)
            .args([
                "tx", "send", "--from", "alice", "--to", address, "--node", &url,
            ])
            .args(&extra));
        assert_eq!(code, 1, "{extra:?}: {stderr}");
        assert!(stderr.contains(expected), "{extra:?}: {stderr}");
    }
}

#[test]
fn to_and_query_account_take_key_names() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    new_key(&keys, "alice");
    let bob = new_key(&keys, "bob");
    let bob_address = bob["address"].as_str().unwrap();
    let node = FakeNode::start("cairn-test");

    let (code, stdout, stderr) = run(cairn(&keys).args([
        "tx", "send", "--from", "alice", "--to", "bob", "--amount", "5", "--node", &node.url,
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim().len(), 64, "{stdout}");
    let submitted = node.submitted();
    assert_eq!(submitted.len(), 1);
    assert_eq!(submitted[0].transaction.recipient.to_string(), bob_address);
    assert_eq!(submitted[0].transaction.nonce, 3);

    let (code, stdout, stderr) =
        run(cairn(&keys).args(["query", "account", "bob", "--json", "--node", &node.url]));
    assert_eq!(code, 0, "{stderr}");
    let account: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(account["address"], bob_address);
    assert!(node
        .requests()
        .iter()
        .any(|(_, path, _)| *path == format!("/account/{bob_address}")));

    // An unknown name says both readings failed and lists the keys.
    let (code, _, stderr) = run(cairn(&keys).args([
        "tx", "send", "--from", "alice", "--to", "carol", "--amount", "5", "--node", &node.url,
    ]));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("--to \"carol\" is not an address (cairn1...) and not a key"),
        "{stderr}"
    );
    assert!(stderr.contains("known keys: alice, bob"), "{stderr}");
    let (code, _, stderr) =
        run(cairn(&keys).args(["query", "account", "carol", "--node", &node.url]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("\"carol\" is not an address"), "{stderr}");
    assert_eq!(node.submitted().len(), 1);
}

#[test]
fn addresses_of_other_chains_name_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    new_key(&keys, "alice");
    for other in [
        "0x52908400098527886E0F7030069857D2E4169EE7",
        "cosmos1hsk6jryyqjfhp5dhc55tc9jtckygx0eph6dd02",
    ] {
        let (code, _, stderr) = run(cairn(&keys).args([
            "tx", "send", "--from", "alice", "--to", other, "--amount", "5",
        ]));
        assert_eq!(code, 2, "{stderr}");
        assert!(
            stderr.contains("wrong prefix: Cairn addresses start with cairn1"),
            "{other}: {stderr}"
        );
        assert!(!stderr.contains("checksum"), "{other}: {stderr}");
        let (code, _, stderr) = run(cairn(&keys).args(["query", "account", other]));
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("wrong prefix"), "{other}: {stderr}");
    }
}

/// A `devnet/devnet.json` under `cwd` whose node v0 serves RPC at `rpc`
/// and runs as `pid`.
fn write_devnet_file(cwd: &Path, rpc: &str, pid: u32) {
    let dir = cwd.join("devnet");
    fs::create_dir_all(dir.join("v0")).unwrap();
    let file = serde_json::json!({
        "version": 1,
        "chain_id": "cairn-test",
        "genesis_hash": "00".repeat(32),
        "base_port": 26600,
        "nodes": [{
            "name": "v0",
            "role": "validator",
            "peer_id": "12D3KooWtest",
            "p2p_port": 26600,
            "rpc_port": 26601,
            "metrics_port": 26602,
            "p2p": "/ip4/127.0.0.1/tcp/26600/p2p/12D3KooWtest",
            "rpc": rpc,
            "metrics": "http://127.0.0.1:26602/metrics",
            "pid": pid,
        }],
        "accounts": [],
    });
    fs::write(dir.join("devnet.json"), file.to_string()).unwrap();
}

#[test]
fn the_default_node_is_a_running_devnet_in_the_current_directory() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let cwd = dir.path().join("work");
    fs::create_dir_all(&cwd).unwrap();
    let node = FakeNode::start("cairn-test");
    // A process that looks like v0's cairnd: started with `--home DIR/v0`.
    let home = fs::canonicalize(&cwd).unwrap().join("devnet").join("v0");
    fs::create_dir_all(&home).unwrap();
    let mut stand_in = Command::new("sh")
        .args(["-c", "sleep 60; true", "sh", "--home"])
        .arg(&home)
        .spawn()
        .unwrap();
    write_devnet_file(&cwd, &node.url, stand_in.id());

    let (code, stdout, stderr) = run(cairn(&keys)
        .current_dir(&cwd)
        .args(["query", "status", "--json"]));
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("cairn-test"), "{stdout}");
    assert_eq!(node.requests().len(), 1);

    // --node wins over the devnet.
    let elsewhere = format!("http://127.0.0.1:{}", closed_port());
    let (code, _, stderr) = run(cairn(&keys)
        .current_dir(&cwd)
        .args(["query", "status", "--node", &elsewhere]));
    assert_eq!(code, 1);
    assert!(stderr.contains(&elsewhere), "{stderr}");
    assert_eq!(node.requests().len(), 1);

    // A devnet whose nodes are stopped is not the default.
    stand_in.kill().unwrap();
    stand_in.wait().unwrap();
    let _ = run(cairn(&keys).current_dir(&cwd).args(["query", "status"]));
    assert_eq!(node.requests().len(), 1);

    // The help says how the node is chosen.
    let (code, stdout, _) = run(cairn(&keys).arg("--help"));
    assert_eq!(code, 0);
    assert!(
        stdout.contains("./devnet/devnet.json") && stdout.contains("CAIRN_NODE"),
        "{stdout}"
    );
}

#[test]
fn chain_id_is_checked_against_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    new_key(&keys, "alice");
    let node = FakeNode::start("cairn-test");
    let send = |chain_id: &str| {
        run(cairn(&keys).args([
            "tx",
            "send",
            "--from",
            "alice",
            "--to",
            "alice",
            "--amount",
            "5",
            "--chain-id",
            chain_id,
            "--node",
            &node.url,
        ]))
    };
    let (code, stdout, stderr) = send("cairn-mainnet");
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("chain id mismatch")
            && stderr.contains("\"cairn-mainnet\"")
            && stderr.contains("\"cairn-test\""),
        "{stderr}"
    );
    assert!(node.submitted().is_empty());

    let (code, _, stderr) = send("cairn-test");
    assert_eq!(code, 0, "{stderr}");
    let submitted = node.submitted();
    assert_eq!(submitted.len(), 1);
    assert_eq!(submitted[0].transaction.chain_id.as_str(), "cairn-test");

    let (code, _, stderr) = send("bad chain id!");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--chain-id"), "{stderr}");
}

/// The `{"error": {"code", "message"}}` document on standard output.
fn json_error(stdout: &str) -> (String, String) {
    let value: serde_json::Value = serde_json::from_str(stdout)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {stdout:?}"));
    (
        value["error"]["code"].as_str().unwrap().to_string(),
        value["error"]["message"].as_str().unwrap().to_string(),
    )
}

#[test]
fn json_errors_have_the_error_shape() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    new_key(&keys, "alice");
    let url = format!("http://127.0.0.1:{}", closed_port());
    let (code, stdout, stderr) =
        run(cairn(&keys).args(["query", "status", "--json", "--node", &url]));
    assert_eq!(code, 1);
    assert!(stderr.is_empty(), "{stderr}");
    let (error_code, message) = json_error(&stdout);
    assert_eq!(error_code, "node_unreachable");
    assert!(
        message.contains(&format!("cannot reach node at {url}")),
        "{message}"
    );

    // The node's own code is kept.
    let node = FakeNode::start("cairn-test");
    let (code, stdout, _) = run(cairn(&keys).args([
        "query",
        "tx",
        &"ab".repeat(32),
        "--json",
        "--node",
        &node.url,
    ]));
    assert_eq!(code, 1);
    assert_eq!(json_error(&stdout).0, "not_found");

    let (code, stdout, _) = run(cairn(&keys).args([
        "tx",
        "send",
        "--from",
        "alice",
        "--to",
        "alice",
        "--amount",
        "1",
        "--chain-id",
        "other",
        "--node",
        &node.url,
        "--json",
    ]));
    assert_eq!(code, 1);
    assert_eq!(json_error(&stdout).0, "chain_id_mismatch");

    let (code, stdout, _) = run(cairn(&keys).args(["keys", "show", "nobody", "--json"]));
    assert_eq!(code, 1);
    assert_eq!(json_error(&stdout).0, "unknown_key");

    // A command line that does not parse: exit code 2, still JSON.
    let (code, stdout, stderr) = run(cairn(&keys).args([
        "tx", "send", "--from", "alice", "--to", "alice", "--amount", "ten", "--json",
    ]));
    assert_eq!(code, 2, "{stderr}");
    let (error_code, message) = json_error(&stdout);
    assert_eq!(error_code, "usage");
    assert!(message.contains("--amount"), "{message}");

    // Without --json, errors stay text on standard error.
    let (code, stdout, stderr) = run(cairn(&keys).args(["query", "status", "--node", &url]));
    assert_eq!(code, 1);
    assert!(
        stdout.is_empty() && stderr.starts_with("error: "),
        "{stderr}"
    );
}

/// Runs `cairn ARGS` with standard input and output on a pseudo-terminal
/// (util-linux `script`), typing `input`; `None` when `script` is missing.
fn on_terminal(keys: &Path, args: &[&str], input: &str) -> Option<(i32, String)> {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: util-linux `script` is not installed");
        return None;
    }
    let quote = |text: &str| format!("'{}'", text.replace('\'', "'\\''"));
    let mut line = quote(env!("CARGO_BIN_EXE_cairn"));
    for arg in args {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    let mut command = Command::new("script");
    command
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env_remove("CAIRN_NODE")
        .env_remove("CAIRN_PASSPHRASE")
        .env("CAIRN_KEYRING_DIR", keys)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    Some((
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    ))
}

#[test]
fn on_a_terminal_keys_ask_for_passphrases_and_confirmation() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let Some((code, output)) = on_terminal(&keys, &["keys", "new", "vault"], "pw one\npw one\n")
    else {
        return;
    };
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("passphrase to encrypt key vault"),
        "{output}"
    );
    let (_, stdout, _) = run(cairn(&keys).args(["keys", "show", "vault", "--json"]));
    let info: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(info["encrypted"], true, "{output}");

    // Two different entries are refused, and nothing is written.
    let (code, output) = on_terminal(&keys, &["keys", "new", "typo"], "pw one\npw two\n").unwrap();
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("the two entries differ"), "{output}");
    assert!(!keys.join("typo.json").exists());

    // --unencrypted is explicit.
    let (code, output) =
        on_terminal(&keys, &["keys", "new", "plain", "--unencrypted"], "").unwrap();
    assert_eq!(code, 0, "{output}");
    assert!(!output.contains("passphrase"), "{output}");
    let (_, stdout, _) = run(cairn(&keys).args(["keys", "show", "plain", "--json"]));
    let info: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(info["encrypted"], false);

    // An encrypted key is opened with a typed passphrase.
    let (code, output) = on_terminal(&keys, &["keys", "export", "vault"], "pw one\n").unwrap();
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("passphrase of key vault"), "{output}");
    let (code, output) = on_terminal(&keys, &["keys", "export", "vault"], "wrong\n").unwrap();
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("wrong passphrase"), "{output}");

    // Delete asks; only yes deletes.
    for answer in ["\n", "n\n", "nope\n"] {
        let (code, output) = on_terminal(&keys, &["keys", "delete", "vault"], answer).unwrap();
        assert_eq!(code, 1, "{answer:?}: {output}");
        assert!(output.contains("[y/N]"), "{output}");
        assert!(keys.join("vault.json").is_file(), "{answer:?}: {output}");
    }
    let (code, output) = on_terminal(&keys, &["keys", "delete", "vault"], "y\n").unwrap();
    assert_eq!(code, 0, "{output}");
    assert!(!keys.join("vault.json").exists(), "{output}");
}

#[test]
fn the_default_keyring_is_outside_the_node_home_and_old_keys_are_found() {
    let home = tempfile::tempdir().unwrap();
    let default = |home: &Path| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cairn"));
        command
            .env_remove("CAIRN_KEYRING_DIR")
            .env_remove("CAIRN_PASSPHRASE")
            .env_remove("XDG_DATA_HOME")
            .env("HOME", home);
        command
    };
    // A key in the old default, ~/.cairn/keys.
    let old = home.path().join(".cairn").join("keys");
    let kept = new_key(&old, "kept");
    let (code, stdout, stderr) = run(default(home.path()).args(["keys", "list"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(kept["address"].as_str().unwrap()),
        "{stdout}"
    );
    assert!(
        stderr.contains("old default") && stderr.contains(".cairn-keys"),
        "{stderr}"
    );

    // A fresh home gets ~/.cairn-keys.
    let fresh = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(default(fresh.path()).args(["keys", "new", "k", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    let info: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        Path::new(info["path"].as_str().unwrap()),
        fresh.path().join(".cairn-keys").join("k.json")
    );
    assert!(!fresh.path().join(".cairn").exists());

    let (code, stdout, _) = run(default(fresh.path()).args(["keys", "--help"]));
    assert_eq!(code, 0);
    assert!(stdout.contains("~/.cairn-keys"), "{stdout}");
}

#[test]
fn dev_accounts_import_and_private_key_files_sign() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let dev = cairn_genesis::dev::dev_account_keypairs();
    for _ in 0..2 {
        // A second import keeps the same keys.
        let (code, stdout, stderr) = run(cairn(&keys).args(["keys", "import-dev", "--json"]));
        assert_eq!(code, 0, "{stderr}");
        let infos: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
        assert_eq!(infos.len(), dev.len());
        for (index, (info, keypair)) in infos.iter().zip(&dev).enumerate() {
            assert_eq!(info["name"], format!("dev-{index}"));
            assert_eq!(info["address"], keypair.address().to_string());
        }
    }

    let node = FakeNode::start(cairn_genesis::dev::DEV_CHAIN_ID);
    let secret = dir.path().join("dev0.key");
    fs::write(&secret, format!("{}\n", hex::encode(dev[0].seed()))).unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let send = |extra: &[&str]| {
        run(cairn(&keys)
            .args([
                "tx", "send", "--to", "dev-1", "--amount", "5", "--node", &node.url,
            ])
            .args(extra))
    };
    let secret_arg = secret.to_str().unwrap();
    let (code, _, stderr) = send(&["--private-key-file", secret_arg]);
    assert_eq!(code, 0, "{stderr}");
    let submitted = node.submitted();
    assert_eq!(submitted.len(), 1);
    assert_eq!(submitted[0].transaction.sender, dev[0].public_key());
    assert_eq!(submitted[0].transaction.recipient, dev[1].address());

    // Exactly one of --from and --private-key-file.
    let (code, _, stderr) = send(&["--private-key-file", secret_arg, "--from", "dev-0"]);
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = send(&[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--from"), "{stderr}");

    // A key file others can read is refused.
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, stderr) = send(&["--private-key-file", secret_arg]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert_eq!(node.submitted().len(), 1);
}

#[test]
fn validator_commands_sign_the_staking_kinds_and_read_node_key_files() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let operator = cairn_types::Keypair::from_seed(&[9; 32]);
    let consensus = cairn_types::Keypair::from_seed(&[10; 32]);
    // A cairnd key file (config/validator_key.json) signs too.
    let key_file = dir.path().join("validator_key.json");
    fs::write(
        &key_file,
        serde_json::json!({
            "public_key": operator.public_key().to_hex(),
            "secret_key": hex::encode(operator.seed()),
        })
        .to_string(),
    )
    .unwrap();
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600)).unwrap();
    let node = FakeNode::start("cairn-staking");
    let key_arg = key_file.to_str().unwrap().to_string();
    let validator = |args: &[&str]| {
        run(cairn(&keys).arg("validator").args(args).args([
            "--private-key-file",
            &key_arg,
            "--node",
            &node.url,
        ]))
    };
    let consensus_hex = consensus.public_key().to_hex();
    let runs: [&[&str]; 4] = [
        &[
            "bond",
            "--validator-key",
            &consensus_hex,
            "--amount",
            "900000",
            "--moniker",
            "v9",
        ],
        &["unbond", "--amount", "500"],
        &["unjail"],
        &["rotate-key", "--new-validator-key", &consensus_hex],
    ];
    for args in runs {
        let (code, stdout, stderr) = validator(args);
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert_eq!(stdout.trim().len(), 64, "the hash alone: {stdout}");
    }
    let submitted = node.submitted();
    let kinds: Vec<_> = submitted.iter().map(|tx| tx.transaction.kind).collect();
    assert_eq!(
        kinds,
        vec![
            cairn_types::TransactionKind::Bond {
                validator_key: consensus.public_key()
            },
            cairn_types::TransactionKind::Unbond,
            cairn_types::TransactionKind::Unjail,
            cairn_types::TransactionKind::RotateKey {
                new_validator_key: consensus.public_key()
            },
        ]
    );
    for tx in &submitted {
        // Every staking kind names the sender as recipient and verifies.
        assert_eq!(tx.transaction.sender, operator.public_key());
        assert_eq!(tx.transaction.recipient, operator.address());
        assert!(tx.verify_signature().is_ok());
    }
    assert_eq!(submitted[0].transaction.amount, 900_000);
    assert_eq!(submitted[0].transaction.memo, "v9");
    assert_eq!(submitted[1].transaction.amount, 500);
    assert_eq!(submitted[2].transaction.amount, 0);

    // A key that is not 64 hex characters is named before anything is sent.
    let (code, _, stderr) = validator(&["bond", "--validator-key", "abc", "--amount", "1"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("--validator-key") && stderr.contains("show-validator"),
        "{stderr}"
    );
    assert_eq!(node.submitted().len(), 4);
}
