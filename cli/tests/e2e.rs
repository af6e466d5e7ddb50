//! End to end: a 4-validator devnet driven only through the built `cairn`
//! and `cairnd` binaries, as a new user would.
//!
//! One test runs every scenario in order (they share one devnet and the
//! machine): transfers and agreement, a validator killed and restarted, a
//! stall without quorum and its recovery, a full node joining from the
//! genesis file and one bootstrap address, the reported inclusions, and
//! bad input. A guard stops every process the test started, whatever
//! happens.
//!
//! Needs `cairnd` next to `cairn` in the target directory: run
//! `cargo build --workspace --bins` first (with the same CARGO_TARGET_DIR).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    fs::{self, OpenOptions},
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

/// Validators of the devnet, and ports each node uses from the base port.
const VALIDATORS: usize = 4;
const PORTS_PER_NODE: u16 = 10;
/// Funded accounts (the `cairn devnet up` default) and their balance.
const ACCOUNTS: usize = 10;
const GENESIS_BALANCE: u64 = 1_000_000_000_000;
/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(200);
/// Longest wait for anything the chain should do.
const PATIENCE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// processes

/// A command without any `CAIRN_*` setting leaking in from the machine.
fn clean(program: &Path) -> Command {
    let mut command = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CAIRN_") {
            command.env_remove(key);
        }
    }
    command.stdin(Stdio::null());
    command
}

fn cairn() -> Command {
    clean(Path::new(env!("CARGO_BIN_EXE_cairn")))
}

fn cairnd_path() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_cairn")).with_file_name("cairnd")
}

fn cairnd() -> Command {
    clean(&cairnd_path())
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

/// `cairnd` next to `cairn`, or a failure saying how to build it.
fn require_cairnd() {
    let cairnd = cairnd_path();
    assert!(
        cairnd.is_file(),
        "{} does not exist: this test runs real nodes; build them first with `cargo build --workspace --bins` (with the same CARGO_TARGET_DIR)",
        cairnd.display()
    );
}

/// A base port whose whole range is free, below the Linux ephemeral range
/// (32768+); the start depends on the pid so parallel runs differ.
fn free_base_port() -> u16 {
    let span = u16::try_from(VALIDATORS).unwrap() * PORTS_PER_NODE;
    let slots = (32_000 - 20_000) / span;
    let first = u16::try_from((std::process::id() + 7) % u32::from(slots)).unwrap();
    for attempt in 0..slots {
        let base = 20_000 + ((first + attempt) % slots) * span;
        if (base..base + span).all(|port| TcpListener::bind(("127.0.0.1", port)).is_ok()) {
            return base;
        }
    }
    panic!("no free range of {span} ports between 20000 and 32000 on 127.0.0.1");
}

/// Whether `pid` is a live process (a zombie counts as exited).
fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next()),
            Some("Z" | "X" | "x")
        ),
        Err(_) => false,
    }
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Polls `check` until it gives a value or `timeout` passes.
fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(POLL);
    }
}

fn devnet_file(dir: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(dir.join("devnet.json")).unwrap_or_default())
        .unwrap_or(Value::Null)
}

/// The pids recorded in `devnet.json`.
fn recorded_pids(dir: &Path) -> Vec<u32> {
    devnet_file(dir)["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|node| node["pid"].as_u64())
        .map(|pid| u32::try_from(pid).unwrap())
        .collect()
}

/// Every process the test started: `cairn devnet down` and SIGKILL to the
/// recorded pids, and SIGKILL to the nodes it started by hand, when dropped.
struct Guard {
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Guard {
    fn spawn(&mut self, name: &str, mut command: Command, log: &Path) -> u32 {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let log_too = log.try_clone().unwrap();
        let child = command
            .stdout(log)
            .stderr(log_too)
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id();
        self.children.push((name.to_string(), child));
        pid
    }

    /// SIGTERM to the hand-started node `name`; its exit status once it
    /// exited (it stays guarded until then).
    fn stop(&mut self, name: &str) -> Option<ExitStatus> {
        let position = self.children.iter().position(|(n, _)| n == name)?;
        signal(self.children[position].1.id(), "TERM");
        let status = wait_for(Duration::from_secs(20), || {
            self.children[position].1.try_wait().unwrap()
        });
        if status.is_some() {
            self.children.remove(position);
        }
        status
    }

    fn child_exited(&mut self, name: &str) -> Option<ExitStatus> {
        let (_, child) = self.children.iter_mut().find(|(n, _)| n == name)?;
        child.try_wait().unwrap()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = cairn()
            .args(["devnet", "down", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for pid in recorded_pids(&self.dir) {
            if alive(pid) {
                signal(pid, "KILL");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// the devnet, seen through the CLI

/// What the test knows of the devnet.
struct Net {
    /// The devnet directory (canonical, as the devnet gives it to cairnd).
    dir: PathBuf,
    keyring: PathBuf,
    /// `devnet.json` as written by `up`.
    file: Value,
    /// RPC URLs of v0..v3.
    rpc: Vec<String>,
    /// Names and addresses of the funded accounts.
    accounts: Vec<(String, String)>,
    /// Home of the full node of scenario 4.
    full_home: PathBuf,
}

impl Net {
    fn node(&self, index: usize) -> &Value {
        &self.file["nodes"][index]
    }

    fn home(&self, index: usize) -> PathBuf {
        self.dir.join(self.node(index)["name"].as_str().unwrap())
    }

    /// The end of every node's log, for failure messages.
    fn logs(&self) -> String {
        let mut text = String::new();
        let mut homes: Vec<PathBuf> = (0..VALIDATORS).map(|index| self.home(index)).collect();
        homes.push(self.full_home.clone());
        for home in homes {
            let path = home.join("node.log");
            let Ok(log) = fs::read_to_string(&path) else {
                continue;
            };
            let lines: Vec<&str> = log.lines().collect();
            text.push_str(&format!("--- {} (last lines)\n", path.display()));
            for line in &lines[lines.len().saturating_sub(25)..] {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }

    /// Starts validator `index` by hand with the flags `cairn devnet up`
    /// gives it (see `cli/src/commands/devnet.rs`, `start_node`).
    fn start_validator(&self, guard: &mut Guard, index: usize) -> u32 {
        let node = self.node(index);
        let port = |key: &str| node[key].as_u64().unwrap().to_string();
        let mut command = cairnd();
        command
            .arg("--home")
            .arg(self.home(index))
            .arg("start")
            .args([
                "--p2p-listen",
                &format!("/ip4/127.0.0.1/tcp/{}", port("p2p_port")),
            ])
            .args(["--rpc-listen", &format!("127.0.0.1:{}", port("rpc_port"))])
            .args([
                "--metrics-listen",
                &format!("127.0.0.1:{}", port("metrics_port")),
            ])
            .args(["--mdns", "false", "--block-interval-max-ms", "1000"]);
        for other in 0..VALIDATORS {
            if other != index {
                command
                    .arg("--bootstrap")
                    .arg(self.node(other)["p2p"].as_str().unwrap());
            }
        }
        let name = node["name"].as_str().unwrap().to_string();
        guard.spawn(&name, command, &self.home(index).join("node.log"))
    }
}

/// `cairn query ARGS --node URL --json`.
fn query(url: &str, args: &[&str]) -> Result<Value, String> {
    let (code, stdout, stderr) = run(cairn()
        .arg("query")
        .args(args)
        .args(["--node", url, "--json"]));
    if code != 0 {
        // Under --json the error is the JSON document on stdout.
        return Err(format!("exit {code}: {}{}", stdout.trim(), stderr.trim()));
    }
    serde_json::from_str(&stdout).map_err(|error| format!("not JSON ({error}): {stdout}"))
}

fn height(url: &str) -> Option<u64> {
    query(url, &["status"]).ok()?["latest_height"].as_u64()
}

fn block_hash(url: &str, height: u64) -> Option<String> {
    Some(
        query(url, &["block", &height.to_string()]).ok()?["hash"]
            .as_str()?
            .to_string(),
    )
}

/// `(balance, nonce)` of `address` on the node at `url`.
fn account(url: &str, address: &str) -> (u64, u64) {
    let json = query(url, &["account", address]).unwrap();
    (
        json["balance"].as_u64().unwrap(),
        json["nonce"].as_u64().unwrap(),
    )
}

/// Status code and body of `GET path` at `url`, over plain HTTP/1.1.
fn http_get(url: &str, path: &str) -> Option<(u16, String)> {
    let host = url.strip_prefix("http://")?.trim_end_matches('/');
    let mut stream = TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let status = answer.split_whitespace().nth(1)?.parse().ok()?;
    let (_, body) = answer.split_once("\r\n\r\n")?;
    Some((status, body.to_string()))
}

/// `count` of `GET /mempool`.
fn mempool_count(url: &str) -> Option<u64> {
    let (status, body) = http_get(url, "/mempool")?;
    if status != 200 {
        return None;
    }
    serde_json::from_str::<Value>(&body).ok()?["count"].as_u64()
}

/// One transfer that the chain included.
#[derive(Clone, Debug)]
struct Sent {
    hash: String,
    from: usize,
    to: usize,
    amount: u64,
    fee: u64,
    height: u64,
    index: u64,
    /// Whether the height and index came from `tx send --wait`.
    waited: bool,
}

/// `cairn tx send --from devnet-acct<from> --to <to> ... --json`.
fn send(
    net: &Net,
    from: usize,
    to: usize,
    amount: u64,
    fee: u64,
    url: &str,
    wait: bool,
) -> Result<Value, String> {
    let mut command = cairn();
    command
        .args(["tx", "send", "--from", &net.accounts[from].0])
        .args(["--to", &net.accounts[to].1])
        .args(["--amount", &amount.to_string(), "--fee", &fee.to_string()])
        .args(["--node", url, "--json", "--keyring-dir"])
        .arg(&net.keyring);
    if wait {
        command.arg("--wait");
    }
    let (code, stdout, stderr) = run(&mut command);
    if code != 0 {
        return Err(format!(
            "cairn tx send --from {} --to {} --amount {amount} --fee {fee} --node {url}{}: exit {code}: {}{}",
            net.accounts[from].0,
            net.accounts[to].1,
            if wait { " --wait" } else { "" },
            stdout.trim(),
            stderr.trim()
        ));
    }
    serde_json::from_str(&stdout).map_err(|error| format!("not JSON ({error}): {stdout}"))
}

/// A waited-for send, as a [`Sent`].
fn send_waited(
    net: &Net,
    from: usize,
    to: usize,
    amount: u64,
    fee: u64,
    url: &str,
) -> Result<Sent, String> {
    let report = send(net, from, to, amount, fee, url, true)?;
    let field = |key: &str| {
        report[key]
            .as_u64()
            .ok_or_else(|| format!("no {key} in {report}"))
    };
    Ok(Sent {
        hash: report["hash"].as_str().unwrap().to_string(),
        from,
        to,
        amount,
        fee,
        height: field("height")?,
        index: field("index")?,
        waited: true,
    })
}

/// One planned transfer: sender, recipient, amount, fee, node URL.
type Planned = (usize, usize, u64, u64, String);

/// Sends `plan` with `--wait`, one thread per sender (each sender's
/// transfers in order).
fn send_all(net: &Net, plan: &[Planned]) -> Vec<Result<Sent, String>> {
    let mut by_sender: BTreeMap<usize, Vec<&Planned>> = BTreeMap::new();
    for transfer in plan {
        by_sender.entry(transfer.0).or_default().push(transfer);
    }
    thread::scope(|scope| {
        let handles: Vec<_> = by_sender
            .into_values()
            .map(|transfers| {
                scope.spawn(move || {
                    transfers
                        .into_iter()
                        .map(|(from, to, amount, fee, url)| {
                            send_waited(net, *from, *to, *amount, *fee, url)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap())
            .collect()
    })
}

/// The transfers that went through; a failure names those that did not.
fn all_ok(net: &Net, results: Vec<Result<Sent, String>>, what: &str) -> Vec<Sent> {
    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        errors.is_empty(),
        "{what}: {} of {} sends failed:\n{}\n{}",
        errors.len(),
        results.len(),
        errors
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        net.logs()
    );
    results.into_iter().map(Result::unwrap).collect()
}

/// Waits until every node in `urls` is at `height` or above.
fn wait_all_reach(net: &Net, urls: &[String], height: u64) {
    let reached = wait_for(PATIENCE, || {
        urls.iter()
            .all(|url| self::height(url).is_some_and(|h| h >= height))
            .then_some(())
    });
    let heights: Vec<Option<u64>> = urls.iter().map(|url| self::height(url)).collect();
    assert!(
        reached.is_some(),
        "not every node reached height {height} within {} s: {heights:?}\n{}",
        PATIENCE.as_secs(),
        net.logs()
    );
}

/// Every node in `urls` has the same block at every height up to the
/// lowest node's height; returns that height.
fn check_same_chain(net: &Net, urls: &[String]) -> u64 {
    let top = urls.iter().map(|url| height(url).unwrap()).min().unwrap();
    for h in 1..=top {
        let blocks: Vec<Value> = urls
            .iter()
            .map(|url| query(url, &["block", &h.to_string()]).unwrap())
            .collect();
        for (url, block) in urls.iter().zip(&blocks) {
            // The certificate may hold another quorum of signatures; the
            // block itself must be the same.
            for key in ["hash", "header", "transactions"] {
                assert_eq!(
                    block[key],
                    blocks[0][key],
                    "height {h}: {url} and {} disagree on the block's {key}\n{}",
                    urls[0],
                    net.logs()
                );
            }
        }
    }
    top
}

/// `genesis - sent - fees + received` for each funded account.
fn expected_balances(sent: &[Sent]) -> Vec<u64> {
    let mut balances = vec![GENESIS_BALANCE; ACCOUNTS];
    for transfer in sent {
        balances[transfer.from] -= transfer.amount + transfer.fee;
        balances[transfer.to] += transfer.amount;
    }
    balances
}

/// `(balance, nonce)` of every funded account on the node at `url`.
fn accounts_on(net: &Net, url: &str) -> Vec<(u64, u64)> {
    net.accounts
        .iter()
        .map(|(_, address)| account(url, address))
        .collect()
}

/// Every node in `urls` has the balances that `sent` makes, the nonces
/// (transfers sent) too, and the validators hold exactly the fees of the
/// blocks they proposed.
fn check_balances(net: &Net, urls: &[String], sent: &[Sent]) {
    let expected = expected_balances(sent);
    let mut nonces = [0u64; ACCOUNTS];
    for transfer in sent {
        nonces[transfer.from] += 1;
    }
    let total_fees: u64 = sent.iter().map(|t| t.fee).sum();
    let proposers = proposers_of(net, &urls[0], sent);
    let mut fees_of: BTreeMap<String, u64> = BTreeMap::new();
    for transfer in sent {
        *fees_of
            .entry(proposers[&transfer.height].clone())
            .or_default() += transfer.fee;
    }
    let validators = query(&urls[0], &["validators"]).unwrap();
    for url in urls {
        let actual = accounts_on(net, url);
        for (index, ((balance, nonce), want)) in actual.iter().zip(&expected).enumerate() {
            assert_eq!(
                (*balance, *nonce),
                (*want, nonces[index]),
                "{url}: {} (balance, nonce) differ from genesis - sent - fees + received",
                net.accounts[index].0
            );
        }
        let sum: u64 = actual.iter().map(|(balance, _)| balance).sum();
        assert_eq!(
            sum,
            GENESIS_BALANCE * ACCOUNTS as u64 - total_fees,
            "{url}: the funded accounts together should have lost exactly the fees"
        );
        for validator in validators["validators"].as_array().unwrap() {
            let address = validator["address"].as_str().unwrap();
            let (balance, _) = account(url, address);
            // A devnet validator is its own operator: its account starts
            // with its spare units (one of them is bonded).
            let params = cairn_genesis::devnet::devnet_staking_params();
            let spare =
                params.power_unit * (cairn_genesis::devnet::DEVNET_VALIDATOR_BALANCE_UNITS - 1);
            assert_eq!(
                balance,
                spare + fees_of.get(address).copied().unwrap_or(0),
                "{url}: validator {} ({address}) should hold the fees of the blocks it proposed",
                validator["name"]
            );
        }
    }
}

/// The proposer of every block that holds one of `sent`, from `url`.
fn proposers_of(net: &Net, url: &str, sent: &[Sent]) -> BTreeMap<u64, String> {
    let mut proposers = BTreeMap::new();
    for transfer in sent {
        if proposers.contains_key(&transfer.height) {
            continue;
        }
        let block = query(url, &["block", &transfer.height.to_string()]).unwrap_or_else(|error| {
            panic!("{url}: block {}: {error}\n{}", transfer.height, net.logs())
        });
        proposers.insert(
            transfer.height,
            block["header"]["proposer"].as_str().unwrap().to_string(),
        );
    }
    proposers
}

// ---------------------------------------------------------------------------
// the test

#[test]
fn devnet_end_to_end() {
    require_cairnd();
    let started = Instant::now();
    let temporary = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(temporary.path()).unwrap();
    let dir = root.join("devnet");
    let keyring = root.join("keys");
    let base_port = free_base_port();
    let mut guard = Guard {
        dir: dir.clone(),
        children: Vec::new(),
    };

    // ---- 1. devnet up, 100 transfers, agreement and arithmetic ----------
    let (code, stdout, stderr) = run(cairn()
        .args(["devnet", "up", "--validators", "4", "--detach", "--dir"])
        .arg(&dir)
        .args(["--base-port", &base_port.to_string()])
        .arg("--keyring-dir")
        .arg(&keyring));
    let file = devnet_file(&dir);
    let net = Net {
        dir: dir.clone(),
        keyring,
        rpc: (0..VALIDATORS)
            .map(|index| {
                file["nodes"][index]["rpc"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect(),
        accounts: file["accounts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|account| {
                (
                    account["name"].as_str().unwrap().to_string(),
                    account["address"].as_str().unwrap().to_string(),
                )
            })
            .collect(),
        file,
        full_home: root.join("full"),
    };
    assert_eq!(
        code,
        0,
        "devnet up failed:\n{stdout}\n{stderr}\n{}",
        net.logs()
    );
    assert_eq!(net.accounts.len(), ACCOUNTS, "{:#}", net.file);
    for (index, (name, _)) in net.accounts.iter().enumerate() {
        assert_eq!(name, &format!("devnet-acct{index}"));
    }

    let mut plan = Vec::new();
    for from in 0..ACCOUNTS {
        for k in 0..10 {
            let to = (from + 1 + k % (ACCOUNTS - 1)) % ACCOUNTS;
            let amount = 1_000 + 100 * from as u64 + k as u64;
            let fee = 1 + ((from + k) % 5) as u64;
            plan.push((from, to, amount, fee, net.rpc[from % VALIDATORS].clone()));
        }
    }
    let mut sent = all_ok(&net, send_all(&net, &plan), "scenario 1");
    assert_eq!(sent.len(), 100);
    let top = sent.iter().map(|t| t.height).max().unwrap();
    wait_all_reach(&net, &net.rpc, top);
    let agreed = check_same_chain(&net, &net.rpc);
    check_balances(&net, &net.rpc, &sent);
    eprintln!(
        "scenario 1: 100 transfers in blocks up to {top}, {agreed} blocks agree ({:.1} s)",
        started.elapsed().as_secs_f64()
    );

    // ---- 2. kill -9 v3 while transfers continue; restart it -------------
    // Two senders, five transfers each to v0; v3 is killed once the first
    // of them is committed, so the rest commit without it.
    let v3_pid = net.node(3)["pid"].as_u64().unwrap() as u32;
    let plan: Vec<_> = (0..10)
        .map(|k| {
            let from = k % 2;
            (from, 5 + k % 5, 500 + k as u64, 2, net.rpc[0].clone())
        })
        .collect();
    let (_, nonce_before) = account(&net.rpc[0], &net.accounts[0].1);
    let (results, killed_at) = thread::scope(|scope| {
        let sending = scope.spawn(|| send_all(&net, &plan));
        let moving = wait_for(PATIENCE, || {
            let (_, nonce) = account(&net.rpc[0], &net.accounts[0].1);
            (nonce > nonce_before).then_some(())
        });
        signal(v3_pid, "KILL");
        let killed_at = height(&net.rpc[0]);
        let results = sending.join().unwrap();
        assert!(
            moving.is_some(),
            "the first transfer of scenario 2 never committed"
        );
        (results, killed_at.unwrap())
    });
    assert!(
        wait_for(Duration::from_secs(10), || (!alive(v3_pid)).then_some(())).is_some(),
        "v3 (pid {v3_pid}) still runs after SIGKILL"
    );
    let mut more = all_ok(&net, results, "scenario 2 (v3 killed meanwhile)");
    // Blocks are quick enough that the first ten may all land before the
    // kill: four more, sent once v3 is dead, must commit without it.
    let plan_after: Vec<_> = (10..14)
        .map(|k| {
            let from = k % 2;
            (from, 5 + k % 5, 500 + k as u64, 2, net.rpc[0].clone())
        })
        .collect();
    more.extend(all_ok(
        &net,
        send_all(&net, &plan_after),
        "scenario 2 (after v3 was killed)",
    ));
    let after_kill = more.iter().filter(|t| t.height > killed_at).count();
    assert!(
        after_kill >= plan_after.len(),
        "the transfers sent after v3 was killed at height {killed_at} did not all commit after it: {more:?}"
    );
    let after = wait_for(PATIENCE, || {
        let h = height(&net.rpc[0])?;
        (h >= killed_at + 2).then_some(h)
    })
    .unwrap_or_else(|| {
        panic!(
            "with v3 killed the chain stopped at {killed_at}\n{}",
            net.logs()
        )
    });
    sent.extend(more);
    net.start_validator(&mut guard, 3);
    let caught_up = wait_for(PATIENCE, || {
        let tip = height(&net.rpc[0])?;
        let own = height(&net.rpc[3])?;
        (own >= tip && own > after).then_some(own)
    });
    assert!(
        caught_up.is_some(),
        "restarted v3 did not catch up within {} s: v3 at {:?}, v0 at {:?}\n{}",
        PATIENCE.as_secs(),
        height(&net.rpc[3]),
        height(&net.rpc[0]),
        net.logs()
    );
    let caught_up = caught_up.unwrap();
    assert_eq!(
        block_hash(&net.rpc[3], caught_up),
        block_hash(&net.rpc[0], caught_up)
    );
    eprintln!(
        "scenario 2: v3 killed at {killed_at}, {after_kill} of 14 transfers committed after it, v3 restarted at {after} and caught up at {caught_up} ({:.1} s)",
        started.elapsed().as_secs_f64()
    );

    // ---- 3. two of four validators stopped: a stall, then recovery ------
    let v2_pid = net.node(2)["pid"].as_u64().unwrap() as u32;
    signal(v2_pid, "TERM");
    let v3_status = guard.stop("v3");
    assert!(
        wait_for(Duration::from_secs(20), || (!alive(v2_pid)).then_some(())).is_some(),
        "v2 (pid {v2_pid}) still runs 20 s after SIGTERM\n{}",
        net.logs()
    );
    assert!(
        v3_status.is_some_and(|status| status.success()),
        "v3 should exit cleanly on SIGTERM, got {v3_status:?}\n{}",
        net.logs()
    );
    // Both remaining nodes settle on the same height.
    let stalled = wait_for(Duration::from_secs(10), || {
        let (a, b) = (height(&net.rpc[0])?, height(&net.rpc[1])?);
        (a == b).then_some(a)
    })
    .expect("v0 and v1 do not agree on a height after v2 and v3 stopped");
    let pending = send(&net, 2, 3, 777, 3, &net.rpc[0], false).unwrap_or_else(|error| {
        panic!(
            "a send without --wait during the stall should be accepted: {error}\n{}",
            net.logs()
        )
    });
    let pending_hash = pending["hash"].as_str().unwrap().to_string();
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(5) {
        for url in &net.rpc[..2] {
            assert_eq!(
                height(url),
                Some(stalled),
                "{url}: a block was committed with only 2 of 4 validators up\n{}",
                net.logs()
            );
            let health = http_get(url, "/health");
            assert_eq!(
                health.as_ref().map(|(status, _)| *status),
                Some(200),
                "{url}/health during the stall: {health:?}"
            );
        }
        assert!(
            query(&net.rpc[0], &["tx", &pending_hash]).is_err(),
            "the transfer sent during the stall was committed without quorum"
        );
        assert_eq!(
            mempool_count(&net.rpc[0]),
            Some(1),
            "v0's mempool should hold the transfer sent during the stall"
        );
        thread::sleep(Duration::from_millis(500));
    }
    net.start_validator(&mut guard, 2);
    net.start_validator(&mut guard, 3);
    let resumed = wait_for(PATIENCE, || {
        let h = height(&net.rpc[0])?;
        (h > stalled).then_some(h)
    });
    assert!(
        resumed.is_some(),
        "blocks did not resume within {} s after v2 and v3 restarted (v0 at {stalled})\n{}",
        PATIENCE.as_secs(),
        net.logs()
    );
    let committed = wait_for(PATIENCE, || query(&net.rpc[1], &["tx", &pending_hash]).ok());
    assert!(
        committed.is_some(),
        "the transfer sent during the stall ({pending_hash}) was not committed within {} s of the restart\n{}",
        PATIENCE.as_secs(),
        net.logs()
    );
    let committed = committed.unwrap();
    sent.push(Sent {
        hash: pending_hash,
        from: 2,
        to: 3,
        amount: 777,
        fee: 3,
        height: committed["height"].as_u64().unwrap(),
        index: committed["index"].as_u64().unwrap(),
        waited: false,
    });
    eprintln!(
        "scenario 3: stalled at {stalled} for 5 s, resumed; pending transfer committed at {} ({:.1} s)",
        committed["height"],
        started.elapsed().as_secs_f64()
    );

    // ---- 4. a full node joins from the genesis and one bootstrap address
    let full = net.full_home.clone();
    let (code, stdout, stderr) = run(cairnd()
        .arg("--home")
        .arg(&full)
        .args(["init", "--mode", "full", "--genesis"])
        .arg(dir.join("genesis.json")));
    assert_eq!(code, 0, "cairnd init --mode full: {stdout}{stderr}");
    let mut command = cairnd();
    command
        .arg("--home")
        .arg(&full)
        .arg("start")
        .args(["--bootstrap", net.node(0)["p2p"].as_str().unwrap()])
        .args(["--p2p-listen", "/ip4/127.0.0.1/tcp/0"])
        .args(["--rpc-listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "127.0.0.1:0"]);
    guard.spawn("full", command, &full.join("node.log"));
    let full_rpc = wait_for(Duration::from_secs(30), || {
        let text = fs::read_to_string(full.join("addresses.json")).ok()?;
        let json: Value = serde_json::from_str(&text).ok()?;
        Some(json["rpc"].as_str()?.to_string())
    });
    let full_rpc = full_rpc.unwrap_or_else(|| {
        panic!(
            "the full node wrote no addresses.json with an rpc URL (exited: {:?})\n{}",
            guard.child_exited("full"),
            net.logs()
        )
    });
    let full_tip = wait_for(PATIENCE, || {
        let tip = height(&net.rpc[0])?;
        let status = query(&full_rpc, &["status"]).ok()?;
        let own = status["latest_height"].as_u64()?;
        (own >= tip && status["catching_up"] == false).then_some(own)
    });
    assert!(
        full_tip.is_some(),
        "the full node did not reach the tip within {} s: {:?} vs v0 {:?}\n{}",
        PATIENCE.as_secs(),
        query(&full_rpc, &["status"]),
        height(&net.rpc[0]),
        net.logs()
    );
    let full_tip = full_tip.unwrap();
    assert_eq!(
        block_hash(&full_rpc, full_tip),
        block_hash(&net.rpc[0], full_tip)
    );
    let mut all_nodes = net.rpc.clone();
    all_nodes.push(full_rpc.clone());
    check_balances(&net, &all_nodes, &sent);
    eprintln!(
        "scenario 4: full node at {full_rpc} reached the tip {full_tip} ({:.1} s)",
        started.elapsed().as_secs_f64()
    );

    // ---- 5. every waited-for transfer is where --wait said --------------
    for (number, transfer) in sent.iter().enumerate() {
        let url = &all_nodes[number % all_nodes.len()];
        let found = query(url, &["tx", &transfer.hash])
            .unwrap_or_else(|error| panic!("{url}: tx {}: {error}", transfer.hash));
        assert_eq!(
            (found["height"].as_u64(), found["index"].as_u64()),
            (Some(transfer.height), Some(transfer.index)),
            "{url}: transfer {} (waited: {}) is not at the reported height and index",
            transfer.hash,
            transfer.waited
        );
        let body = &found["transaction"]["transaction"];
        assert_eq!(body["amount"].as_u64(), Some(transfer.amount));
        assert_eq!(body["fee"].as_u64(), Some(transfer.fee));
        assert_eq!(
            body["recipient"].as_str(),
            Some(net.accounts[transfer.to].1.as_str())
        );
        let block = query(url, &["block", &transfer.height.to_string()]).unwrap();
        assert_eq!(
            block["transactions"][transfer.index as usize].as_str(),
            Some(transfer.hash.as_str()),
            "{url}: block {} does not hold {} at index {}",
            transfer.height,
            transfer.hash,
            transfer.index
        );
    }
    let agreed = check_same_chain(&net, &all_nodes);
    eprintln!(
        "scenario 5: {} transfers found where reported; {agreed} blocks agree on 5 nodes ({:.1} s)",
        sent.len(),
        started.elapsed().as_secs_f64()
    );

    // ---- 6. bad input exits non-zero, says why, changes nothing ---------
    let before = accounts_on(&net, &net.rpc[0]);
    let tx_send = |args: &str| {
        run(cairn()
            .args(["tx", "send"])
            .args(args.split_whitespace())
            .args(["--node", &net.rpc[0], "--keyring-dir"])
            .arg(&net.keyring))
    };
    let to = net.accounts[1].1.clone();
    let mut bad_address = to.clone();
    let last = bad_address.pop().unwrap();
    bad_address.push(if last == 'q' { 'p' } else { 'q' });
    let too_much = before[4].0 + 1;
    let nonce = before[4].1;
    let to = format!("--to {to}");
    // (what, arguments of `cairn tx send`, words the error must hold)
    let cases: Vec<(&str, String, Vec<String>)> = vec![
        (
            "unknown key",
            format!("--from no-such-key {to} --amount 5 --wait"),
            vec!["no-such-key".into()],
        ),
        (
            "bad address checksum",
            format!("--from devnet-acct0 --to {bad_address} --amount 5 --wait"),
            vec!["checksum".into(), bad_address.clone()],
        ),
        (
            "amount above balance",
            format!("--from devnet-acct4 {to} --amount {too_much} --wait"),
            vec!["insufficient funds".into(), too_much.to_string()],
        ),
        (
            "amount above balance with an explicit nonce (the node's check)",
            // The minimum fee (1) comes on top of the amount.
            format!("--from devnet-acct4 {to} --amount {too_much} --nonce {nonce} --wait"),
            vec!["insufficient_funds".into(), (too_much + 1).to_string()],
        ),
        (
            "malformed amount",
            format!("--from devnet-acct0 {to} --amount abc --wait"),
            vec!["'abc'".into(), "--amount".into()],
        ),
        (
            "negative fee",
            format!("--from devnet-acct0 {to} --amount 5 --fee -1"),
            vec!["'-1'".into(), "--fee".into()],
        ),
        (
            "amount above 2^64",
            format!("--from devnet-acct0 {to} --amount 18446744073709551616"),
            vec!["18446744073709551616".into(), "--amount".into()],
        ),
    ];
    let mut messages = Vec::new();
    for (what, args, said) in &cases {
        let (code, stdout, stderr) = tx_send(args);
        assert_ne!(
            code, 0,
            "{what}: `cairn tx send {args}` succeeded: {stdout}"
        );
        let lower = stderr.to_lowercase();
        for word in said {
            assert!(
                lower.contains(&word.to_lowercase()),
                "{what}: the error should mention {word:?}:\n{stderr}"
            );
        }
        messages.push(format!("{what} (exit {code}): {}", stderr.trim()));
    }
    // Nothing changes: two more blocks, and the same balances and nonces
    // everywhere.
    let now = height(&net.rpc[0]).unwrap();
    wait_all_reach(&net, &all_nodes, now + 2);
    for url in &all_nodes {
        assert_eq!(
            accounts_on(&net, url),
            before,
            "{url}: bad input changed an account"
        );
    }
    check_balances(&net, &all_nodes, &sent);
    assert_eq!(
        mempool_count(&net.rpc[0]),
        Some(0),
        "v0's mempool should be empty: nothing bad was accepted"
    );
    eprintln!(
        "scenario 6: bad input rejected ({:.1} s):\n  {}",
        started.elapsed().as_secs_f64(),
        messages.join("\n  ")
    );

    // ---- the end: every node stops cleanly ------------------------------
    for name in ["full", "v2", "v3"] {
        let status = guard.stop(name);
        assert!(
            status.is_some_and(|status| status.success()),
            "{name} should exit cleanly on SIGTERM, got {status:?}\n{}",
            net.logs()
        );
    }
    assert!(
        !full.join("addresses.json").exists(),
        "the full node left addresses.json behind after a clean exit"
    );
    let pids = recorded_pids(&dir);
    let (code, stdout, stderr) = run(cairn().args(["devnet", "down", "--dir"]).arg(&dir));
    assert_eq!(code, 0, "devnet down failed:\n{stdout}\n{stderr}");
    for pid in pids {
        assert!(!alive(pid), "pid {pid} still runs after `devnet down`");
    }
    // No node panicked; warnings and errors are listed for the record.
    let mut homes: Vec<PathBuf> = (0..VALIDATORS).map(|index| net.home(index)).collect();
    homes.push(full.clone());
    for home in &homes {
        let log = fs::read_to_string(home.join("node.log")).unwrap_or_default();
        assert!(
            !log.contains("panicked"),
            "{} shows a panic:\n{}",
            home.display(),
            net.logs()
        );
        let notable: Vec<&str> = log
            .lines()
            .filter(|line| line.contains("WARN") || line.contains("ERROR"))
            .collect();
        eprintln!(
            "{}: {} warning/error lines{}",
            home.display(),
            notable.len(),
            notable
                .iter()
                .take(8)
                .map(|line| format!("\n  {line}"))
                .collect::<String>()
        );
    }
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    drop(guard);
}
