//! The light client of `cairn query account|tx --verify` against real
//! nodes: it verifies the answer from the genesis (skipping), keeps what
//! it verified, starts from `cairn light init` (a genesis or a trusted
//! block hash); and it refuses the lies of test proxies (an altered
//! balance or inclusion proof, a header swapped for a fork's, a
//! certificate signed by the wrong keys, a replayed stale answer) and a
//! fork a witness node shows, each with a message naming what did not
//! verify, trusting nothing.

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

/// What a proxy does with one answer: gets the path, the upstream
/// status and body, returns what it serves instead.
type Rewrite = dyn Fn(&str, u16, String) -> (u16, String) + Send + Sync;

/// An HTTP proxy in front of `target` that passes every answer through
/// `rewrite` (a lying node).
fn proxy(
    target: String,
    rewrite: impl Fn(&str, u16, String) -> (u16, String) + Send + Sync + 'static,
) -> String {
    let rewrite: std::sync::Arc<Rewrite> = std::sync::Arc::new(rewrite);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let target = target.clone();
            let rewrite = rewrite.clone();
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
                let (status, body) = get(&target, &path);
                let (status, body) = rewrite(&path, status, body);
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

/// A proxy that adds 1 to the balance of every account proof and to the
/// index of every inclusion proof it passes on.
fn lying_proxy(target: String) -> String {
    proxy(target, |path, status, mut body| {
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
        (status, body)
    })
}

/// Runs `cairn` with `args` and `CAIRN_LIGHT_DIR=light_dir`: exit code,
/// standard output, standard error.
fn cairn(light_dir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = command("cairn")
        .env("CAIRN_LIGHT_DIR", light_dir)
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `cairn query account ADDRESS --verify --genesis GENESIS --node URL
/// --json` with a fresh light directory, plus `extra` arguments.
fn verify_fresh(url: &str, address: &str, genesis: &Path, extra: &[&str]) -> (i32, String, String) {
    let light = tempfile::tempdir().unwrap();
    verify_with(light.path(), url, address, Some(genesis), extra)
}

fn verify_with(
    light_dir: &Path,
    url: &str,
    address: &str,
    genesis: Option<&Path>,
    extra: &[&str],
) -> (i32, String, String) {
    let mut args = vec!["query", "account", address, "--verify"];
    let genesis = genesis.map(|path| path.to_str().unwrap().to_string());
    if let Some(genesis) = &genesis {
        args.extend(["--genesis", genesis]);
    }
    args.extend(["--node", url, "--json"]);
    args.extend(extra);
    cairn(light_dir, &args)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("{error}: {text}"))
}

fn wait_for_height(url: &str, height: u64) {
    let started = Instant::now();
    loop {
        let (_, body) = get(url, "/status");
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        if status["latest_height"].as_u64().unwrap_or(0) >= height {
            return;
        }
        assert!(started.elapsed() < DEADLINE, "no blocks: {body}");
        thread::sleep(Duration::from_millis(100));
    }
}

fn validator_address(home: &Path) -> String {
    let key = command("cairnd")
        .arg("--home")
        .arg(home)
        .arg("show-validator")
        .output()
        .unwrap();
    let key = String::from_utf8(key.stdout).unwrap();
    cairn_types::PublicKey::from_hex(key.trim())
        .unwrap()
        .address()
        .to_string()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
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
    let address = validator_address(home.path());
    wait_for_height(&url, 3);
    let genesis = home.path().join("config/genesis.json");

    // From the genesis, one validator for ever: one skip, one header.
    let (code, stdout, stderr) = verify_fresh(&url, &address, &genesis, &[]);
    assert_eq!(code, 0, "{stdout} {stderr}");
    let proven = json(&stdout);
    let (_, account) = get(&url, &format!("/account/{address}"));
    let account = json(&account);
    assert_eq!(proven["balance"], account["balance"], "{stdout}");
    let height = proven["verified"]["height"].as_u64().unwrap();
    assert!(height >= 3, "{stdout}");
    assert_eq!(proven["verified"]["fetched"]["headers"], 1, "{stdout}");
    assert_eq!(proven["verified"]["signers"], 1, "{stdout}");
    assert_eq!(
        proven["verified"]["signed_power"], proven["verified"]["total_power"],
        "{stdout}"
    );
    // The text says who signed, and --prove still works.
    let light = tempfile::tempdir().unwrap();
    let (code, text, stderr) = cairn(
        light.path(),
        &[
            "query",
            "account",
            &address,
            "--prove",
            "--genesis",
            genesis.to_str().unwrap(),
            "--node",
            &url,
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        text.contains("verified at height ")
            && text.contains("by 1 validators holding 100.0% of the power"),
        "{text}"
    );

    // What a run verified is kept: the next run starts there, and needs no
    // --genesis (the trusted state of the node's chain is used).
    let (code, first, _) = verify_with(light.path(), &url, &address, None, &[]);
    assert_eq!(code, 0, "{first}");
    let first = json(&first);
    thread::sleep(Duration::from_millis(500));
    let (code, second, _) = verify_with(light.path(), &url, &address, None, &[]);
    assert_eq!(code, 0, "{second}");
    let second = json(&second);
    assert_eq!(
        second["verified"]["from_height"], first["verified"]["height"],
        "{second}"
    );
    assert_eq!(
        second["verified"]["trusted_state_updated"], true,
        "{second}"
    );
    // Without a trusted state or a genesis there is nothing to verify by.
    let empty = tempfile::tempdir().unwrap();
    let (code, stdout, _) = verify_with(empty.path(), &url, &address, None, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(
        json(&stdout)["error"]["code"],
        "light_uninitialized",
        "{stdout}"
    );

    // The genesis of another chain (same chain id, other validator) is not
    // the root of this chain's headers.
    // (With --json the error comes on standard output, in the error shape.)
    let (code, stdout, _) = verify_fresh(
        &url,
        &address,
        &other.path().join("config/genesis.json"),
        &[],
    );
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(json(&stdout)["error"]["code"], "unverified", "{stdout}");
    // ... and a light directory started from this genesis refuses it.
    let (code, stdout, _) = verify_with(
        light.path(),
        &url,
        &address,
        Some(&other.path().join("config/genesis.json")),
        &[],
    );
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(json(&stdout)["error"]["code"], "light_state", "{stdout}");

    // A node that changes the balance it proves is caught, and the trusted
    // state does not move.
    let liar = lying_proxy(url.clone());
    let (code, stdout, _) = verify_fresh(&liar, &address, &genesis, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("does not verify") && stdout.contains("state root"),
        "{stdout}"
    );
    let trusted_file = std::fs::read_dir(light.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let before = std::fs::read(&trusted_file).unwrap();
    thread::sleep(Duration::from_millis(300));
    let (code, stdout, _) = verify_with(light.path(), &liar, &address, None, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(
        std::fs::read(&trusted_file).unwrap(),
        before,
        "a lie moved the trusted state"
    );

    // An address without an account is proven absent: the gap between
    // two accounts (in address order) that holds it, under the signed
    // state root.
    let nobody = cairn_types::Address([0x5a; 20]).to_string();
    let (code, stdout, stderr) = verify_fresh(&url, &nobody, &genesis, &[]);
    assert_eq!(code, 0, "{stdout} {stderr}");
    let proven = json(&stdout);
    assert_eq!(proven["exists"], false, "{stdout}");
    assert_eq!(proven["balance"], 0, "{stdout}");
    let (_, absent) = get(&url, &format!("/account/{nobody}?prove=true"));
    let absent = json(&absent);
    assert!(
        absent["proof"]["absence_proof"]["gap"]["neighbor"].is_string(),
        "{absent}"
    );
    assert!(absent["proof"]["account_proof"].is_null(), "{absent}");
    // The canonical bytes are the same proof as the readable form.
    let canonical = hex::decode(absent["proof"]["canonical"].as_str().unwrap()).unwrap();
    let decoded: cairn_state::AbsenceProof = cairn_types::codec::decode(
        "absence proof",
        &canonical,
        cairn_types::limits::BLOCK_BYTES_MAX,
    )
    .unwrap();
    let readable: cairn_state::AbsenceProof =
        serde_json::from_value(absent["proof"]["absence_proof"].clone()).unwrap();
    assert_eq!(decoded, readable);
    // A node that hides an account behind that proof of absence is
    // caught: the gap does not hold the account's address.
    let hidden = address.clone();
    let hiding = proxy(url.clone(), move |path, status, body| {
        if path.starts_with(&format!("/account/{hidden}")) && path.contains("prove=true") {
            let mut value: serde_json::Value = serde_json::from_str(&body).unwrap();
            value["balance"] = 0.into();
            value["proof"] = absent["proof"].clone();
            return (status, value.to_string());
        }
        (status, body)
    });
    let (code, stdout, _) = verify_fresh(&hiding, &address, &genesis, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("has no account does not lead to the state root"),
        "{stdout}"
    );
    // ... and one that claims an absent address holds an account (the
    // path of another account, with its balance) is caught too.
    let (_, present) = get(&url, &format!("/account/{address}?prove=true"));
    let present = json(&present);
    let claimed = nobody.clone();
    let inventing = proxy(url.clone(), move |path, status, body| {
        if path.starts_with(&format!("/account/{claimed}")) && path.contains("prove=true") {
            let mut value: serde_json::Value = serde_json::from_str(&body).unwrap();
            value["proof"] = present["proof"].clone();
            return (status, value.to_string());
        }
        (status, body)
    });
    let (code, stdout, _) = verify_fresh(&inventing, &nobody, &genesis, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("does not lead to the state root"),
        "{stdout}"
    );

    // A node that serves certificates signed by keys that are not the
    // validators' is caught.
    let forger = cairn_types::Keypair::from_seed(&[42; 32]);
    let (_, status) = get(&url, "/status");
    let chain_id = cairn_types::ChainId::new(json(&status)["chain_id"].as_str().unwrap()).unwrap();
    let forging = proxy(url.clone(), move |path, status, body| {
        if !path.starts_with("/certificate/") || status != 200 {
            return (status, body);
        }
        let mut certificate: cairn_types::CommitCertificate = serde_json::from_str(&body).unwrap();
        let message = cairn_types::Vote::signing_bytes(
            &chain_id,
            cairn_types::VoteType::Precommit,
            certificate.height,
            certificate.round,
            Some(certificate.block_hash),
        );
        for signature in &mut certificate.signatures {
            signature.signature = forger.sign(&message);
        }
        (status, serde_json::to_string(&certificate).unwrap())
    });
    let (code, stdout, _) = verify_fresh(&forging, &address, &genesis, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("the certificate does not verify against the validator set")
            && stdout.contains("signature of validator 0 does not verify"),
        "{stdout}"
    );

    // A stale answer replayed later is refused beyond the freshness bound.
    let (_, recorded) = get(&url, &format!("/account/{address}?prove=true"));
    let replaying = proxy(url.clone(), move |path, status, body| {
        if path.contains("prove=true") {
            (200, recorded.clone())
        } else {
            (status, body)
        }
    });
    thread::sleep(Duration::from_millis(1_500));
    let (code, stdout, _) = verify_fresh(&replaying, &address, &genesis, &["--max-age", "1s"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("beyond the freshness bound"), "{stdout}");
    let (code, stdout, _) = verify_fresh(&replaying, &address, &genesis, &[]);
    assert_eq!(code, 0, "the default bound is an hour: {stdout}");

    // A trusted state (here the genesis) older than the trusting period is
    // not verified from.
    let (code, stdout, _) = verify_fresh(&url, &address, &genesis, &["--trusting-period", "1s"]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(json(&stdout)["error"]["code"], "trust_expired", "{stdout}");

    // `cairn light init` with a trusted block: the hash must be the
    // block's; then --verify starts from it.
    let trusted_height = 2u64;
    let (_, header) = get(&url, &format!("/header/{trusted_height}"));
    let header: cairn_types::Header = serde_json::from_str(&header).unwrap();
    let hash = header.hash().to_hex();
    let by_hash = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = cairn(
        by_hash.path(),
        &[
            "light",
            "init",
            "--trusted-height",
            "2",
            "--trusted-hash",
            &sha_of_other(&hash),
            "--node",
            &url,
        ],
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(stderr.contains("not the trusted hash"), "{stderr}");
    let (code, stdout, stderr) = cairn(
        by_hash.path(),
        &[
            "light",
            "init",
            "--trusted-height",
            "2",
            "--trusted-hash",
            &hash,
            "--node",
            &url,
            "--json",
        ],
    );
    assert_eq!(code, 0, "{stdout} {stderr}");
    let chain_id = json(&stdout)["trusted"]["chain_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, stdout, _) = verify_with(by_hash.path(), &url, &address, None, &[]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(json(&stdout)["verified"]["from_height"], 2, "{stdout}");
    let (code, shown, _) = cairn(
        by_hash.path(),
        &["light", "show", "--chain-id", &chain_id, "--json"],
    );
    assert_eq!(code, 0, "{shown}");
    assert!(json(&shown)["height"].as_u64().unwrap() > 2, "{shown}");
    // `cairn light init --genesis` replaces it with the genesis.
    let (code, stdout, _) = cairn(
        by_hash.path(),
        &[
            "light",
            "init",
            "--genesis",
            genesis.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(json(&stdout)["trusted"]["height"], 0, "{stdout}");

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
    let sent = json(&sent);
    let hash = sent["hash"].as_str().unwrap().to_string();
    let verify_tx = |node: &str| {
        let light = tempfile::tempdir().unwrap();
        let (code, stdout, _) = cairn(
            light.path(),
            &[
                "query",
                "tx",
                &hash,
                "--verify",
                "--genesis",
                genesis.to_str().unwrap(),
                "--node",
                node,
                "--json",
            ],
        );
        (code, stdout)
    };
    let (code, stdout) = verify_tx(&url);
    assert_eq!(code, 0, "{stdout}");
    let proven = json(&stdout);
    assert_eq!(proven["height"], sent["height"], "{stdout}");
    let (code, stdout) = verify_tx(&liar);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("inclusion proof does not lead"), "{stdout}");
}

/// A hash that is not `hash` (its first digit changed).
fn sha_of_other(hash: &str) -> String {
    let first = if hash.starts_with('0') { '1' } else { '0' };
    format!("{first}{}", &hash[1..])
}

/// Two nodes started from one home (same genesis, same validator key)
/// but never connected: two chains, each validly signed from the same
/// genesis, i.e. a fork. A proxy that swaps one node's headers for the
/// other's is caught; each node alone verifies, but with the other as
/// the witness the fork is reported and nothing is trusted.
#[test]
fn a_fork_is_caught_by_its_headers_and_by_a_witness() {
    assert!(
        binary("cairnd").is_file(),
        "build the binaries first: cargo build --workspace --bins"
    );
    let home = tempfile::tempdir().unwrap();
    init(home.path());
    let twin = tempfile::tempdir().unwrap();
    copy_dir(home.path(), twin.path());
    let (_node, url) = start(home.path());
    let (_twin_node, twin_url) = start(twin.path());
    let address = validator_address(home.path());
    wait_for_height(&url, 3);
    wait_for_height(&twin_url, 3);
    let genesis = home.path().join("config/genesis.json");

    // Headers from the twin, the rest (certificates, proofs) from the
    // node: the certificate is not of the header served.
    let twin_for_proxy = twin_url.clone();
    let swapping = proxy(url.clone(), move |path, status, body| {
        if path.starts_with("/header/") {
            // The twin may be a block behind: wait for its header.
            let started = Instant::now();
            loop {
                let (status, body) = get(&twin_for_proxy, path);
                if status != 404 || started.elapsed() > Duration::from_secs(5) {
                    return (status, body);
                }
                thread::sleep(Duration::from_millis(100));
            }
        } else {
            (status, body)
        }
    });
    let (code, stdout, _) = verify_fresh(&swapping, &address, &genesis, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("not the header served"), "{stdout}");

    // Each chain verifies on its own.
    let (code, stdout, _) = verify_fresh(&twin_url, &address, &genesis, &[]);
    assert_eq!(code, 0, "{stdout}");
    // A witness on the same chain agrees.
    let (code, stdout, _) = verify_fresh(&url, &address, &genesis, &["--witness", &url]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(
        json(&stdout)["verified"]["witness"],
        url.as_str(),
        "{stdout}"
    );

    // With the other chain's node as the witness: a fork, nothing kept.
    let light = tempfile::tempdir().unwrap();
    let (code, stdout, _) = verify_with(
        light.path(),
        &twin_url,
        &address,
        Some(&genesis),
        &["--witness", &url],
    );
    assert_eq!(code, 1, "{stdout}");
    let error = json(&stdout);
    assert_eq!(error["error"]["code"], "fork", "{stdout}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&url) && message.contains(&twin_url),
        "{message}"
    );
    assert_eq!(
        std::fs::read_dir(light.path()).unwrap().count(),
        0,
        "nothing may be trusted after a fork"
    );
}

/// Wrong flags and unusable files: a clear error, exit code 2 for a
/// command line that does not parse, 1 otherwise.
#[test]
fn wrong_light_flags_and_files_are_refused_with_what_to_do() {
    let light = tempfile::tempdir().unwrap();
    let address = cairn_types::Address([1; 20]).to_string();
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec![
                "query",
                "account",
                &address,
                "--witness",
                "http://127.0.0.1:1",
            ],
            2,
            "--verify",
        ),
        (vec!["light", "init"], 2, "--genesis"),
        (
            vec!["light", "init", "--trusted-height", "3"],
            2,
            "--trusted-hash",
        ),
        (
            vec!["query", "account", &address, "--verify", "--max-age", "0s"],
            2,
            "zero",
        ),
        (
            vec![
                "query",
                "account",
                &address,
                "--verify",
                "--trusting-period",
                "2x",
            ],
            2,
            "unit",
        ),
        (
            vec!["light", "init", "--genesis", "/nonexistent/genesis.json"],
            1,
            "/nonexistent/genesis.json",
        ),
        (
            vec!["light", "show", "--chain-id", "nochain"],
            1,
            "cairn light init",
        ),
    ];
    for (arguments, expected_code, expected) in cases {
        let (code, _, stderr) = cairn(light.path(), &arguments);
        assert_eq!(code, expected_code, "{arguments:?}: {stderr}");
        assert!(stderr.contains(expected), "{arguments:?}: {stderr}");
    }
    // A damaged trusted state is reported, not ignored or overwritten.
    std::fs::write(light.path().join("damaged.json"), "{ not json").unwrap();
    let (code, _, stderr) = cairn(light.path(), &["light", "show", "--chain-id", "damaged"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("damaged.json") && stderr.contains("does not parse"),
        "{stderr}"
    );
}
