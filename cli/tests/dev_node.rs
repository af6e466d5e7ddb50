//! The `cairn` binary against one real node, `cairnd start --dev` (the
//! built-in dev chain, its accounts imported with `cairn keys
//! import-dev`): the genesis at height 0, the times printed, transfers
//! queued behind a missing nonce (`tx send`, `tx send --wait`, `query
//! account`), and `cairn bench`.
//!
//! Needs `cairnd` next to `cairn` in the target directory: run
//! `cargo build --workspace --bins` first (with the same CARGO_TARGET_DIR).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::Mutex,
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

/// Longest wait for the node to start or a transfer to commit.
const PATIENCE: Duration = Duration::from_secs(60);
/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(100);

/// A command without any `CAIRN_*` setting leaking in from the machine.
fn clean(program: &Path) -> Command {
    let mut command = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CAIRN_") {
            command.env_remove(key);
        }
    }
    command.env_remove("RUST_LOG");
    command.stdin(Stdio::null());
    command
}

fn cairnd_path() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_cairn")).with_file_name("cairnd")
}

fn run(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// One `cairnd start --dev` in a temporary home, with the dev accounts in
/// a temporary keyring; killed when dropped.
struct DevNode {
    child: Mutex<Child>,
    rpc: String,
    /// The node's Prometheus URL.
    metrics: String,
    keyring: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl DevNode {
    fn start() -> DevNode {
        let cairnd = cairnd_path();
        assert!(
            cairnd.is_file(),
            "{} does not exist: this test runs a real node; build it first with `cargo build --workspace --bins` (with the same CARGO_TARGET_DIR)",
            cairnd.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let log = dir.path().join("node.log");
        let output = File::create(&log).unwrap();
        let child = clean(&cairnd)
            .arg("--home")
            .arg(&home)
            .args(["start", "--dev"])
            .args(["--rpc-listen", "127.0.0.1:0"])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(["--p2p-listen", "/ip4/127.0.0.1/tcp/0"])
            .args(["--block-interval-max-ms", "1000"])
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .unwrap();
        let keyring = dir.path().join("keys");
        let mut node = DevNode {
            child: Mutex::new(child),
            rpc: String::new(),
            metrics: String::new(),
            keyring,
            log,
            _dir: dir,
        };
        let addresses = home.join("addresses.json");
        node.rpc = node.wait("the node's RPC address", || {
            let text = std::fs::read_to_string(&addresses).ok()?;
            let value: Value = serde_json::from_str(&text).ok()?;
            let rpc = value["rpc"].as_str()?;
            Some(if rpc.starts_with("http://") {
                rpc.to_string()
            } else {
                format!("http://{rpc}")
            })
        });
        node.metrics = node.wait("the node's metrics address", || {
            let text = std::fs::read_to_string(&addresses).ok()?;
            let value: Value = serde_json::from_str(&text).ok()?;
            value["metrics"].as_str().map(str::to_string)
        });
        let (code, _, stderr) = run(node.cairn().args(["keys", "import-dev"]));
        assert_eq!(code, 0, "{stderr}");
        node.wait("the node's first answer", || node.query(&["status"]).ok());
        node
    }

    /// `cairn` with this node's keyring; `--node` is given per command.
    fn cairn(&self) -> Command {
        let mut command = clean(Path::new(env!("CARGO_BIN_EXE_cairn")));
        command.env("CAIRN_KEYRING_DIR", &self.keyring);
        command
    }

    /// `cairn ARGS --node RPC`.
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        run(self.cairn().args(args).args(["--node", &self.rpc]))
    }

    /// `cairn query ARGS --json`.
    fn query(&self, args: &[&str]) -> Result<Value, String> {
        let mut all = vec!["query"];
        all.extend_from_slice(args);
        all.push("--json");
        let (code, stdout, stderr) = self.run(&all);
        if code != 0 {
            return Err(format!("{stdout}{stderr}"));
        }
        serde_json::from_str(&stdout).map_err(|error| format!("{error}: {stdout}"))
    }

    /// Polls `check` until it answers, failing (with the node's log) after
    /// [`PATIENCE`] or if the node exits.
    fn wait<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            if let Some(value) = check() {
                return value;
            }
            if let Some(status) = self.child.lock().unwrap().try_wait().unwrap() {
                panic!("cairnd exited ({status}) before {what}:\n{}", self.log());
            }
            assert!(
                started.elapsed() < PATIENCE,
                "no {what} within {PATIENCE:?}:\n{}",
                self.log()
            );
            thread::sleep(POLL);
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn address(&self, key: &str) -> String {
        let (code, stdout, stderr) = run(self.cairn().args(["keys", "show", key, "--json"]));
        assert_eq!(code, 0, "{stderr}");
        let info: Value = serde_json::from_str(&stdout).unwrap();
        info["address"].as_str().unwrap().to_string()
    }
}

impl Drop for DevNode {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Whether `text` holds an RFC 3339 UTC time with exactly three digits of
/// fraction, e.g. `2026-12-04T19:51:31.850Z`.
fn has_millisecond_time(text: &str) -> bool {
    text.split_whitespace().any(|word| {
        let bytes = word.as_bytes();
        bytes.len() == "2026-12-04T19:51:31.850Z".len()
            && bytes[10] == b'T'
            && bytes[19] == b'.'
            && bytes[20..23].iter().all(u8::is_ascii_digit)
            && bytes[23] == b'Z'
    })
}

#[test]
fn genesis_times_and_queued_transfers() {
    let node = DevNode::start();
    let status = node.query(&["status"]).unwrap();

    // Height 0 is the genesis, named with the chain and its hash.
    let (code, text, stderr) = node.run(&["query", "block", "0"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(text.starts_with("height 0 is the genesis"), "{text}");
    assert!(text.contains("blocks start at height 1"), "{text}");
    assert!(
        text.contains(status["chain_id"].as_str().unwrap()),
        "{text}"
    );
    assert!(
        text.contains(status["genesis_hash"].as_str().unwrap()),
        "{text}"
    );
    let genesis = node.query(&["block", "0"]).unwrap();
    assert_eq!(genesis["genesis"], true, "{genesis}");
    assert_eq!(genesis["height"], 0, "{genesis}");
    assert_eq!(genesis["genesis_hash"], status["genesis_hash"], "{genesis}");

    // A transfer commits; its block's time has a millisecond fraction.
    let (code, stdout, stderr) = node.run(&[
        "tx", "send", "--from", "dev-0", "--to", "dev-1", "--amount", "5", "--wait",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}\n{}", node.log());
    assert!(stdout.contains("included"), "{stdout}");
    let height = stdout
        .split_whitespace()
        .skip_while(|word| *word != "height")
        .nth(1)
        .unwrap()
        .to_string();
    let (code, text, stderr) = node.run(&["query", "block", &height]);
    assert_eq!(code, 0, "{stderr}");
    let time_line = text.lines().find(|line| line.starts_with("time")).unwrap();
    assert!(has_millisecond_time(time_line), "{text}");
    let (code, text, stderr) = node.run(&["query", "status"]);
    assert_eq!(code, 0, "{stderr}");
    let time_line = text
        .lines()
        .find(|line| line.starts_with("latest time"))
        .unwrap();
    assert!(has_millisecond_time(time_line), "{text}");

    // dev-0 has sent nonce 0; nonce 5 waits behind the missing nonce 1.
    let (code, stdout, stderr) = node.run(&[
        "tx", "send", "--from", "dev-0", "--to", "dev-1", "--amount", "5", "--nonce", "5",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim().len(), 64, "only the hash on stdout: {stdout}");
    assert!(stderr.contains("queued behind nonce 1"), "{stderr}");
    let (code, stdout, stderr) = node.run(&[
        "tx", "send", "--from", "dev-0", "--to", "dev-1", "--amount", "5", "--nonce", "6", "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let sent: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(sent["status"], "queued", "{sent}");
    assert_eq!(sent["queued_behind_nonce"], 1, "{sent}");
    assert_eq!(sent["nonce"], 6, "{sent}");

    let (code, text, stderr) = node.run(&["query", "account", "dev-0"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        text.contains("0 pending, 2 queued behind missing nonce 1"),
        "{text}"
    );
    let account = node.query(&["account", "dev-0"]).unwrap();
    assert_eq!(account["queued"], 2, "{account}");
    assert_eq!(account["missing_nonce"], 1, "{account}");

    // --wait on a queued transfer says what it waits for, and so does the
    // timeout.
    let (code, stdout, stderr) = node.run(&[
        "tx",
        "send",
        "--from",
        "dev-0",
        "--to",
        "dev-1",
        "--amount",
        "5",
        "--nonce",
        "7",
        "--wait",
        "--timeout",
        "2s",
    ]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("queued behind nonce 1: waiting for nonce 1"),
        "{stdout}"
    );
    assert!(stderr.contains("queued it behind nonce 1"), "{stderr}");

    // The missing nonce (the next one, chosen by cairn) is pending, not
    // queued; once it commits, the queued ones wait for nonce 2.
    let (code, stdout, stderr) = node.run(&[
        "tx", "send", "--from", "dev-0", "--to", "dev-1", "--amount", "5", "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let sent: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(sent["status"], "pending", "{sent}");
    assert_eq!(sent["nonce"], 1, "{sent}");
    assert!(sent.get("queued_behind_nonce").is_none(), "{sent}");
    let address = node.address("dev-0");
    node.wait("nonce 1 to commit", || {
        let account = node.query(&["account", &address]).ok()?;
        (account["nonce"] == 2).then_some(())
    });
    let (code, text, stderr) = node.run(&["query", "account", &address]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        text.contains("0 pending, 3 queued behind missing nonce 2"),
        "{text}"
    );
}

#[test]
fn bench_reports_rounded_figures_per_transfer() {
    let node = DevNode::start();
    let keys = node.keyring.to_str().unwrap().to_string();
    let (code, stdout, stderr) = node.run(&[
        "bench",
        "--keys-dir",
        &keys,
        "--duration",
        "2s",
        "--rate",
        "500",
        "--batch",
        "50",
        "--metrics",
        &node.metrics,
        "--json",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}\n{}", node.log());
    let report: Value = serde_json::from_str(&stdout).unwrap();
    // The node's own CPU over the window, from its metrics.
    let node_cpu = report["nodes_cpu_seconds"].as_f64().unwrap();
    assert!(node_cpu > 0.0, "{report:#}");
    assert_eq!(report["nodes_cpu_seconds_each"][0].as_f64(), Some(node_cpu));
    let per_transfer = report["nodes_cpu_us_per_transfer"].as_f64().unwrap();
    assert!(
        (per_transfer - node_cpu * 1e6 / 1000.0).abs() <= 0.1 + node_cpu * 1e-3,
        "{report:#}"
    );
    assert_eq!(report["transactions"], 1000, "{report:#}");
    assert_eq!(report["sent"], 1000, "{report:#}");
    assert_eq!(report["committed"], 1000, "{report:#}");
    assert!(report["committed_per_second"].is_u64(), "{report:#}");
    let latency = &report["latency_ms"];
    let figures: Vec<f64> = ["p50", "p95", "p99", "max"]
        .iter()
        .map(|name| latency[name].as_f64().unwrap())
        .collect();
    assert!(
        figures.windows(2).all(|pair| pair[0] <= pair[1]),
        "{report:#}"
    );
    assert!(figures[0] > 0.0, "{report:#}");
    for figure in &figures {
        let tenths = figure * 10.0;
        assert!((tenths - tenths.round()).abs() < 1e-6, "{report:#}");
    }
    let milliseconds = report["seconds"].as_f64().unwrap() * 1_000.0;
    assert!(
        (milliseconds - milliseconds.round()).abs() < 1e-6,
        "{report:#}"
    );
    assert!(stderr.is_empty(), "--json prints nothing else: {stderr}");

    // In text, standard error (not a terminal here) gets plain progress
    // lines, no carriage returns, and few of them.
    let (code, stdout, stderr) = node.run(&[
        "bench",
        "--keys-dir",
        &keys,
        "--duration",
        "3s",
        "--rate",
        "300",
        "--batch",
        "30",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}\n{}", node.log());
    assert!(stdout.contains("latency     p50"), "{stdout}");
    assert!(stdout.contains("sent        900 transfers"), "{stdout}");
    assert!(!stdout.contains("nodes cpu"), "no --metrics: {stdout}");
    assert!(!stderr.contains('\r'), "{stderr:?}");
    let progress = stderr
        .lines()
        .filter(|line| line.contains("tx/s in the last"))
        .count();
    assert!((1..=2).contains(&progress), "{stderr}");
}

/// `query fees` and `query mempool` report the node's fees; `tx send`
/// without `--fee` pays the suggested fee; `tx replace` signs the pending
/// transaction again with a higher fee (and refuses a fee that is not
/// higher, and another sender's key).
#[test]
fn fees_are_reported_and_a_pending_transfer_is_replaced() {
    let node = DevNode::start();
    let fees = node.query(&["fees"]).unwrap();
    assert_eq!(fees["chain_min_fee"], 1, "{fees}");
    assert_eq!(fees["suggested_fee"], 1, "{fees}");
    let (code, text, stderr) = node.run(&["query", "fees"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        text.contains("suggested") && text.contains("chain min"),
        "{text}"
    );

    // Nonce 5 of dev-2 waits behind the missing nonce 0: it stays pending.
    let (code, stdout, stderr) = node.run(&[
        "tx", "send", "--from", "dev-2", "--to", "dev-1", "--amount", "5", "--nonce", "5", "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let sent: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(sent["fee"], 1, "the suggested fee: {sent}");
    let hash = sent["hash"].as_str().unwrap().to_string();

    let (code, text, stderr) = node.run(&["query", "mempool"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        text.contains("1 (0 executable, 1 queued behind a missing nonce)"),
        "{text}"
    );
    assert!(
        text.contains("fee to enter  1 (the node's minimum)"),
        "{text}"
    );

    let (code, _, stderr) = node.run(&["tx", "replace", &hash, "--fee", "1", "--from", "dev-2"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("a replacement must pay more"), "{stderr}");
    let (code, _, stderr) = node.run(&["tx", "replace", &hash, "--fee", "9", "--from", "dev-3"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("replace it with the sender's key"),
        "{stderr}"
    );

    let (code, stdout, stderr) =
        node.run(&["tx", "replace", &hash, "--fee", "100", "--from", "dev-2"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with(&format!("replaced {hash} by ")),
        "{stdout}"
    );
    assert!(stdout.contains("(nonce 5, fee 1 -> 100)"), "{stdout}");
    let new_hash = stdout.split_whitespace().nth(3).unwrap().to_string();
    let mempool = node.query(&["mempool"]).unwrap();
    assert_eq!(mempool["count"], 1, "{mempool}");
    let (code, _, stderr) = node.run(&["tx", "replace", &hash, "--fee", "20", "--from", "dev-2"]);
    assert_eq!(code, 1, "the old one is gone");
    assert!(stderr.contains("is not pending"), "{stderr}");
    // The replacement itself is pending with its fee (100): the node asks
    // 10% more to replace it again.
    let (code, stdout, stderr) = node.run(&[
        "tx", "replace", &new_hash, "--fee", "105", "--from", "dev-2",
    ]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("at least 110"), "{stderr}");
}

/// `GET path` of the node's RPC as JSON (`None` on any failure).
fn get_json(rpc: &str, path: &str) -> Option<Value> {
    use std::io::{Read, Write};
    let authority = rpc.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(authority).ok()?;
    stream.set_read_timeout(Some(PATIENCE)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    serde_json::from_str(body).ok()
}

#[test]
fn history_lists_an_accounts_transfers_newest_first_a_page_at_a_time() {
    let node = DevNode::start();
    let dev1 = node.address("dev-1");
    let mut sent = Vec::new();
    for amount in 1..=3 {
        let amount = amount.to_string();
        let (code, stdout, stderr) = node.run(&[
            "tx", "send", "--from", "dev-4", "--to", "dev-1", "--amount", &amount, "--wait",
            "--json",
        ]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        let answer: Value = serde_json::from_str(&stdout).unwrap();
        sent.push(answer["hash"].as_str().unwrap().to_string());
    }
    // Newest first, two per page, then the older page by its cursor.
    let (code, text, stderr) = node.run(&["query", "history", "dev-1", "--limit", "2"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        text.contains(&format!("2 transactions of {dev1}")),
        "{text}"
    );
    let third = text.find(&sent[2]).expect("the newest is listed");
    let second = text.find(&sent[1]).expect("the second newest is listed");
    assert!(third < second, "newest first: {text}");
    assert!(!text.contains(&sent[0]), "{text}");
    assert!(text.contains("received"), "{text}");
    let cursor = text
        .lines()
        .find_map(|line| line.split("--before ").nth(1))
        .unwrap_or_else(|| panic!("no cursor in {text}"))
        .trim()
        .to_string();
    let older = node
        .query(&["history", &dev1, "--limit", "2", "--before", &cursor])
        .unwrap();
    let older_hashes: Vec<&str> = older["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["hash"].as_str().unwrap())
        .collect();
    assert_eq!(older_hashes, [sent[0].as_str()], "{older}");
    assert!(older["next"].is_null(), "{older}");

    // A cursor that is not one: the node's 400, said plainly.
    let (code, _, stderr) = node.run(&["query", "history", "dev-1", "--before", "nope"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("not a history cursor"), "{stderr}");
    let (code, _, stderr) = node.run(&["query", "history", "dev-1", "--limit", "0"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("limit"), "{stderr}");

    // `tx send --wait` of a transfer the node then drops (replaced by a
    // higher fee): the wait ends at once with the node's reason.
    let waiting = {
        let mut command = node.cairn();
        command.args([
            "tx",
            "send",
            "--from",
            "dev-5",
            "--to",
            "dev-1",
            "--amount",
            "5",
            "--nonce",
            "3",
            "--wait",
            "--timeout",
            "60s",
            "--node",
            &node.rpc,
        ]);
        thread::spawn(move || run(&mut command))
    };
    let hash = node.wait("the waited transfer to be pending", || {
        let listed = get_json(&node.rpc, "/mempool/transactions")?;
        listed["transactions"][0]["hash"]
            .as_str()
            .map(str::to_string)
    });
    let (code, _, stderr) = node.run(&["query", "tx", &hash]);
    assert_ne!(code, 0);
    assert!(stderr.contains("pending in the node's mempool"), "{stderr}");
    let (code, _, stderr) = node.run(&["tx", "replace", &hash, "--fee", "100", "--from", "dev-5"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = waiting.join().unwrap();
    assert_ne!(code, 0, "{stdout}");
    assert!(
        stderr.contains("dropped") && stderr.contains("replaced"),
        "{stderr}"
    );
}
