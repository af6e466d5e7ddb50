//! Proof-of-stake end to end: a 4-validator devnet driven only through the
//! built `cairn` and `cairnd` binaries.
//!
//! One test, in order: a fifth node joins from the genesis file and one
//! bootstrap address and follows without voting; its operator bonds to it
//! and it enters the set two heights later, one unit of power per height,
//! and signs certificates (while an original validator is killed and
//! restarted); an original validator unbonds everything and leaves the
//! set; a twin of another validator (same key, fresh sign state) makes it
//! equivocate, and the evidence jails and slashes it and removes it from
//! the set. The chain keeps committing throughout. At the end the light
//! client (`cairn query account --verify`) verifies the tip from the
//! genesis and from a trusted block before the changes, across them. A guard stops every
//! process the test started, whatever happens.
//!
//! Needs `cairnd` next to `cairn` in the target directory: run
//! `cargo build --workspace --bins` first (with the same CARGO_TARGET_DIR).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
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

/// Validators of the devnet; nodes the test starts by hand (the new
/// validator and the twin) use the two port ranges after theirs.
const VALIDATORS: usize = 4;
const NODES: usize = VALIDATORS + 2;
const PORTS_PER_NODE: u16 = 10;
/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(200);
/// Longest wait for anything the chain should do.
const PATIENCE: Duration = Duration::from_secs(60);
/// The header's evidence hash of a block without evidence.
fn empty_hash() -> String {
    cairn_types::merkle::merkle_root(&[]).to_hex()
}

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

/// A base port whose whole range (all [`NODES`]) is free, below the Linux
/// ephemeral range (32768+); the start depends on the pid.
fn free_base_port() -> u16 {
    let span = u16::try_from(NODES).unwrap() * PORTS_PER_NODE;
    let slots = (32_000 - 20_000) / span;
    let first = u16::try_from((std::process::id() + 11) % u32::from(slots)).unwrap();
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
/// pids recorded in `devnet.json`, and SIGKILL to the nodes started by
/// hand, when dropped.
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
// the chain, seen through the CLI

/// Every node home of the test, for failure messages.
struct Logs(Vec<PathBuf>);

impl Logs {
    /// The end of every node's log.
    fn tail(&self) -> String {
        let mut text = String::new();
        for home in &self.0 {
            let path = home.join("node.log");
            let Ok(log) = fs::read_to_string(&path) else {
                continue;
            };
            let lines: Vec<&str> = log.lines().collect();
            text.push_str(&format!("--- {} (last lines)\n", path.display()));
            for line in &lines[lines.len().saturating_sub(20)..] {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }
}

/// `cairn query ARGS --node URL --json`.
fn query(url: &str, args: &[&str]) -> Result<Value, String> {
    let (code, stdout, stderr) = run(cairn()
        .arg("query")
        .args(args)
        .args(["--node", url, "--json"]));
    if code != 0 {
        return Err(format!("exit {code}: {}{}", stdout.trim(), stderr.trim()));
    }
    serde_json::from_str(&stdout).map_err(|error| format!("not JSON ({error}): {stdout}"))
}

fn height(url: &str) -> Option<u64> {
    query(url, &["status"]).ok()?["latest_height"].as_u64()
}

/// `cairn query block H`, once the node at `url` has it.
fn block(url: &str, height: u64, logs: &Logs) -> Value {
    wait_for(PATIENCE, || {
        query(url, &["block", &height.to_string()]).ok()
    })
    .unwrap_or_else(|| {
        panic!(
            "{url}: no block {height} within {} s (tip {:?})\n{}",
            PATIENCE.as_secs(),
            self::height(url),
            logs.tail()
        )
    })
}

/// `cairn query validators --height H` (the set that signs block H).
fn set_at(url: &str, height: u64) -> Value {
    query(url, &["validators", "--height", &height.to_string()])
        .unwrap_or_else(|error| panic!("{url}: query validators --height {height}: {error}"))
}

/// `cairn query validators` (the next height's set, and the candidates).
fn set_now(url: &str) -> Value {
    query(url, &["validators"]).unwrap_or_else(|error| panic!("{url}: query validators: {error}"))
}

/// `(index, power)` of `key` in a validators document.
fn member(set: &Value, key: &str) -> Option<(u64, u64)> {
    set["validators"]
        .as_array()?
        .iter()
        .find(|validator| validator["public_key"] == key)
        .map(|validator| {
            (
                validator["index"].as_u64().unwrap(),
                validator["power"].as_u64().unwrap(),
            )
        })
}

/// The candidate with consensus key `key` in a validators document.
fn candidate<'a>(set: &'a Value, key: &str) -> Option<&'a Value> {
    set["candidates"]
        .as_array()?
        .iter()
        .find(|candidate| candidate["validator_key"] == key)
}

/// A short form of a set: `name:power` in index order.
fn brief(set: &Value) -> String {
    set["validators"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|validator| format!("{}:{}", validator["name"], validator["power"]))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Waits until the node at `url` is at `target` or above; its height.
fn reach(url: &str, target: u64, what: &str, logs: &Logs) -> u64 {
    wait_for(PATIENCE, || height(url).filter(|h| *h >= target)).unwrap_or_else(|| {
        panic!(
            "{what}: {url} did not reach height {target} within {} s (at {:?})\n{}",
            PATIENCE.as_secs(),
            height(url),
            logs.tail()
        )
    })
}

/// Status code and body of `GET path` at `host:port` (or an `http://` URL),
/// over plain HTTP/1.1.
fn http_get(url: &str, path: &str) -> Option<(u16, String)> {
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let host = host.split('/').next()?;
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

/// The value of the un-labelled metric `name` at `host:port`.
fn metric(host: &str, name: &str) -> Option<f64> {
    let (status, body) = http_get(host, "/metrics")?;
    if status != 200 {
        return None;
    }
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// The `evidence` list of `GET /evidence`.
fn evidence_now(url: &str) -> Vec<Value> {
    let (status, body) = http_get(url, "/evidence").expect("GET /evidence");
    assert_eq!(status, 200, "GET /evidence: {body}");
    let evidence: Value = serde_json::from_str(&body).unwrap();
    evidence["evidence"].as_array().cloned().unwrap_or_default()
}

/// `cairn ARGS --json --node URL --keyring-dir K` that must succeed.
fn cairn_json(args: &[&str], url: &str, keyring: &Path, logs: &Logs) -> Value {
    let (code, stdout, stderr) = run(cairn()
        .args(args)
        .args(["--json", "--node", url, "--keyring-dir"])
        .arg(keyring));
    assert_eq!(
        code,
        0,
        "cairn {} failed (exit {code}):\n{stdout}\n{stderr}\n{}",
        args.join(" "),
        logs.tail()
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("cairn {}: not JSON ({error}): {stdout}", args.join(" ")))
}

/// Flags of a hand-started node on port range `slot` of the test's ports,
/// with the consensus settings `cairn devnet up` gives its nodes.
fn node_flags(command: &mut Command, base_port: u16, slot: usize, bootstrap: &str) {
    let port = |offset: u16| base_port + u16::try_from(slot).unwrap() * PORTS_PER_NODE + offset;
    command
        .args(["--p2p-listen", &format!("/ip4/127.0.0.1/tcp/{}", port(0))])
        .args(["--rpc-listen", &format!("127.0.0.1:{}", port(1))])
        .args(["--metrics-listen", &format!("127.0.0.1:{}", port(2))])
        .args(["--mdns", "false", "--bootstrap", bootstrap])
        .args([
            "--timeout-commit-ms",
            "10",
            "--block-interval-max-ms",
            "1000",
        ]);
}

fn rpc_of(base_port: u16, slot: usize) -> String {
    format!(
        "http://127.0.0.1:{}",
        base_port + u16::try_from(slot).unwrap() * PORTS_PER_NODE + 1
    )
}

fn metrics_of(base_port: u16, slot: usize) -> String {
    format!(
        "127.0.0.1:{}",
        base_port + u16::try_from(slot).unwrap() * PORTS_PER_NODE + 2
    )
}

/// `cairnd init --home HOME --genesis GENESIS --mode validator`.
fn init_validator_home(home: &Path, genesis: &Path, moniker: &str) {
    let (code, stdout, stderr) = run(cairnd()
        .arg("--home")
        .arg(home)
        .args([
            "init",
            "--mode",
            "validator",
            "--moniker",
            moniker,
            "--genesis",
        ])
        .arg(genesis));
    assert_eq!(
        code,
        0,
        "cairnd init --home {} --mode validator: {stdout}{stderr}",
        home.display()
    );
}

/// Samples the tip of the nodes in `urls` until `done` holds, and fails if
/// any stays at one height for `stall` (the chain stopped committing).
fn watch_progress(
    urls: &[String],
    stall: Duration,
    what: &str,
    logs: &Logs,
    mut done: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + PATIENCE;
    let mut last: Vec<(Option<u64>, Instant)> = urls
        .iter()
        .map(|url| (height(url), Instant::now()))
        .collect();
    while !done() {
        for (url, (seen, since)) in urls.iter().zip(&mut last) {
            let now = height(url);
            if now.is_some() && now > *seen {
                *seen = now;
                *since = Instant::now();
            }
            assert!(
                since.elapsed() < stall,
                "{what}: {url} stayed at height {seen:?} for {} s\n{}",
                stall.as_secs(),
                logs.tail()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not done within {} s (heights {last:?})\n{}",
            PATIENCE.as_secs(),
            logs.tail()
        );
        thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------
// the test

#[test]
fn staking_bond_unbond_and_jail_on_a_devnet() {
    let cairnd_binary = cairnd_path();
    assert!(
        cairnd_binary.is_file(),
        "{} does not exist: this test runs real nodes; build them first with `cargo build --workspace --bins` (with the same CARGO_TARGET_DIR)",
        cairnd_binary.display()
    );
    let started = Instant::now();
    let elapsed = || started.elapsed().as_secs_f64();
    let temporary = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(temporary.path()).unwrap();
    let dir = root.join("devnet");
    let keyring = root.join("keys");
    let genesis = dir.join("genesis.json");
    let base_port = free_base_port();
    let mut guard = Guard {
        dir: dir.clone(),
        children: Vec::new(),
    };
    let params = cairn_genesis::devnet::devnet_staking_params();

    // ---- 1. the devnet ----------------------------------------------------
    let (code, stdout, stderr) = run(cairn()
        .args(["devnet", "up", "--validators", "4", "--detach", "--dir"])
        .arg(&dir)
        .args(["--base-port", &base_port.to_string()])
        .arg("--keyring-dir")
        .arg(&keyring));
    let file = devnet_file(&dir);
    let name = |index: usize| file["nodes"][index]["name"].as_str().unwrap().to_string();
    let home5 = root.join("v4");
    let twin_home = root.join("twin");
    let mut homes: Vec<PathBuf> = (0..VALIDATORS)
        .filter_map(|index| file["nodes"][index]["name"].as_str().map(|n| dir.join(n)))
        .collect();
    homes.push(home5.clone());
    homes.push(twin_home.clone());
    let logs = Logs(homes);
    assert_eq!(
        code,
        0,
        "devnet up failed:\n{stdout}\n{stderr}\n{}",
        logs.tail()
    );
    let rpc: Vec<String> = (0..VALIDATORS)
        .map(|index| file["nodes"][index]["rpc"].as_str().unwrap().to_string())
        .collect();
    let v0 = rpc[0].clone();
    let v0_p2p = file["nodes"][0]["p2p"].as_str().unwrap().to_string();
    let genesis_json: Value = serde_json::from_str(&fs::read_to_string(&genesis).unwrap()).unwrap();
    let on_chain = &genesis_json["staking_params"];
    for (field, want) in [
        ("power_unit", params.power_unit),
        ("min_self_stake", params.min_self_stake),
        ("unbonding_period_blocks", params.unbonding_period_blocks),
        ("jail_blocks", params.jail_blocks),
        ("slash_fraction_bps", params.slash_fraction_bps),
    ] {
        assert_eq!(
            on_chain[field].as_u64(),
            Some(want),
            "the devnet genesis staking_params.{field} differs from devnet_staking_params(): {on_chain}"
        );
    }
    reach(&v0, 2, "devnet start", &logs);
    let genesis_set = set_now(&v0);
    // name -> (consensus key, operator address)
    let original = |who: &str| -> (String, String) {
        let validator = genesis_set["validators"]
            .as_array()
            .unwrap()
            .iter()
            .find(|validator| validator["name"] == who)
            .unwrap_or_else(|| panic!("no validator {who} in {genesis_set:#}"));
        (
            validator["public_key"].as_str().unwrap().to_string(),
            validator["address"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(
        genesis_set["total_power"].as_u64(),
        Some(4),
        "{genesis_set:#}"
    );
    for index in 0..VALIDATORS {
        let (key, _) = original(&name(index));
        let shown = run(cairnd()
            .arg("--home")
            .arg(dir.join(name(index)))
            .arg("show-validator"));
        assert_eq!(
            shown.1.trim(),
            key,
            "cairnd show-validator of {}",
            name(index)
        );
    }
    eprintln!(
        "1. devnet up on base port {base_port}: set {} ({:.1} s)",
        brief(&genesis_set),
        elapsed()
    );

    // ---- 2. a fifth node joins as a validator not (yet) in the set -------
    // A few blocks first, so it has a chain to sync.
    reach(&v0, 10, "before the fifth node starts", &logs);
    init_validator_home(&home5, &genesis, "v4");
    let (code, new_key, stderr) = run(cairnd().arg("--home").arg(&home5).arg("show-validator"));
    assert_eq!(code, 0, "cairnd show-validator: {stderr}");
    let new_key = new_key.trim().to_string();
    assert_eq!(new_key.len(), 64, "show-validator printed {new_key:?}");
    let mut command = cairnd();
    command.arg("--home").arg(&home5).arg("start");
    node_flags(&mut command, base_port, VALIDATORS, &v0_p2p);
    guard.spawn("v4", command, &home5.join("node.log"));
    let rpc5 = rpc_of(base_port, VALIDATORS);
    let metrics5 = metrics_of(base_port, VALIDATORS);
    let synced = wait_for(PATIENCE, || {
        let tip = height(&v0)?;
        let status = query(&rpc5, &["status"]).ok()?;
        let own = status["latest_height"].as_u64()?;
        (own >= tip && status["catching_up"] == false).then_some(own)
    });
    let synced = synced.unwrap_or_else(|| {
        panic!(
            "the fifth node did not sync to the tip within {} s: {:?} vs v0 {:?} (exited: {:?})\n{}",
            PATIENCE.as_secs(),
            query(&rpc5, &["status"]),
            height(&v0),
            guard.child_exited("v4"),
            logs.tail()
        )
    });
    assert_eq!(
        metric(&metrics5, "cairn_validator_in_set"),
        Some(0.0),
        "the fifth node's key is not bonded yet: it should not count itself in the set"
    );
    assert!(
        member(&set_now(&v0), &new_key).is_none(),
        "the new key is in the set before any bond"
    );
    eprintln!(
        "2. fifth node (key {new_key}) synced to {synced}, not in the set ({:.1} s)",
        elapsed()
    );

    // ---- 3. bond to it (and 4. kill -9 v1 during the change) --------------
    let (code, stdout, stderr) = run(cairn()
        .args([
            "keys",
            "new",
            "operator",
            "--unencrypted",
            "--json",
            "--keyring-dir",
        ])
        .arg(&keyring));
    assert_eq!(code, 0, "cairn keys new: {stdout}{stderr}");
    let keys: Value = serde_json::from_str(&stdout).unwrap();
    let operator = keys["address"].as_str().unwrap().to_string();
    let funded = cairn_json(
        &[
            "tx",
            "send",
            "--from",
            "devnet-acct0",
            "--to",
            &operator,
            "--amount",
            "10000000",
            "--fee",
            "1",
            "--wait",
        ],
        &v0,
        &keyring,
        &logs,
    );
    let bond = 3 * params.power_unit;
    let bonded = cairn_json(
        &[
            "validator",
            "bond",
            "--validator-key",
            &new_key,
            "--amount",
            &bond.to_string(),
            "--moniker",
            "v4",
            "--from",
            "operator",
            "--fee",
            "1",
            "--wait",
        ],
        &v0,
        &keyring,
        &logs,
    );
    let b = bonded["height"]
        .as_u64()
        .unwrap_or_else(|| panic!("no height in the bond report {bonded}"));
    eprintln!(
        "3. operator {operator} funded at {}, bond of {bond} included at B = {b} ({:.1} s)",
        funded["height"],
        elapsed()
    );

    // 4. v1 is killed at once: from B+2 the set has 5 (then 6, 7) power
    // and v0 + v2 + v3 alone are no quorum, so the chain only goes on if
    // the new validator votes.
    let v1_pid = u32::try_from(file["nodes"][1]["pid"].as_u64().unwrap()).unwrap();
    signal(v1_pid, "KILL");
    let killed_at = height(&v0).unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || (!alive(v1_pid)).then_some(())).is_some(),
        "v1 (pid {v1_pid}) still runs after SIGKILL"
    );
    let others = vec![v0.clone(), rpc[2].clone(), rpc5.clone()];
    let outage_end = killed_at.max(b + 4) + 3;
    watch_progress(
        &others,
        Duration::from_secs(15),
        "with v1 killed during the bond",
        &logs,
        || height(&v0).is_some_and(|h| h >= outage_end),
    );
    let (code, stdout, stderr) = run(cairn()
        .args(["devnet", "start", &name(1), "--dir"])
        .arg(&dir));
    assert_eq!(
        code, 0,
        "cairn devnet start v1 after kill -9: {stdout}{stderr}"
    );
    let restarted_at = height(&v0).unwrap();
    let caught_up = wait_for(PATIENCE, || {
        let tip = height(&v0)?;
        let own = height(&rpc[1])?;
        (own >= tip && own > restarted_at).then_some(own)
    })
    .unwrap_or_else(|| {
        panic!(
            "restarted v1 did not catch up within {} s: v1 {:?}, v0 {:?}\n{}",
            PATIENCE.as_secs(),
            height(&rpc[1]),
            height(&v0),
            logs.tail()
        )
    });
    eprintln!(
        "4. v1 killed at {killed_at}; the chain went on to {outage_end} without it; restarted at {restarted_at}, caught up at {caught_up} ({:.1} s)",
        elapsed()
    );

    // 3 (continued): the set of each height around the bond.
    let mut power_by_height = Vec::new();
    for h in b..=b + 6 {
        let set = set_at(&v0, h);
        let header = &block(&v0, h, &logs)["header"];
        assert_eq!(
            header["validator_set_hash"], set["set_hash"],
            "height {h}: the header's validator_set_hash is not the hash of /validators?height={h}: {header:#}\n{set:#}"
        );
        let next = set_at(&v0, h + 1);
        assert_eq!(
            header["next_validator_set_hash"],
            next["set_hash"],
            "height {h}: the header's next_validator_set_hash is not the hash of the set of {}",
            h + 1
        );
        power_by_height.push((h, member(&set, &new_key).map(|(_, power)| power)));
        eprintln!("   set of {h}: {}", brief(&set));
    }
    let expected: Vec<(u64, Option<u64>)> = vec![
        (b, None),
        (b + 1, None),
        (b + 2, Some(1)),
        (b + 3, Some(2)),
        (b + 4, Some(3)),
        (b + 5, Some(3)),
        (b + 6, Some(3)),
    ];
    assert_eq!(
        power_by_height, expected,
        "the new validator's power by height (bond included at {b}): it should enter at B+2 and gain one unit of power per height (the budget is a third of the old total: 4 -> 1, 5 -> 1, 6 -> 2 of which 1 is left) up to 3"
    );
    let first_in_set = b + 2;
    let in_set = wait_for(Duration::from_secs(20), || {
        (metric(&metrics5, "cairn_validator_in_set") == Some(1.0)).then_some(())
    });
    assert!(
        in_set.is_some(),
        "the fifth node's metrics do not show cairn_validator_in_set 1: in_set {:?}, set size {:?}\n{}",
        metric(&metrics5, "cairn_validator_in_set"),
        metric(&metrics5, "cairn_validator_set_size"),
        logs.tail()
    );
    assert_eq!(metric(&metrics5, "cairn_validator_set_size"), Some(5.0));
    assert_eq!(metric(&metrics5, "cairn_validator_set_power"), Some(7.0));
    let tip = height(&v0).unwrap();
    let mut first_signed = None;
    let mut signed = 0;
    for h in first_in_set..=tip {
        let (index, _) = member(&set_at(&v0, h), &new_key).unwrap();
        let certificate = &block(&v0, h, &logs)["certificate"];
        assert_eq!(certificate["height"].as_u64(), Some(h));
        let signers: Vec<u64> = certificate["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|signature| signature["validator"].as_u64().unwrap())
            .collect();
        if signers.contains(&index) {
            signed += 1;
            first_signed.get_or_insert(h);
        }
    }
    let first_signed = first_signed.unwrap_or_else(|| {
        panic!(
            "no certificate from {first_in_set} to {tip} holds a signature of the new validator\n{}",
            logs.tail()
        )
    });
    eprintln!(
        "3. new validator: in the set from {first_in_set} (power 1), 2 at {}, 3 at {}; first certificate it signed: {first_signed}; it signed {signed} of {} certificates up to {tip} ({:.1} s)",
        b + 3,
        b + 4,
        tip - first_in_set + 1,
        elapsed()
    );

    // ---- 5. v3 unbonds everything -----------------------------------------
    let (v3_key, v3_address) = original(&name(3));
    let v3_key_file = dir.join(name(3)).join("config").join("validator_key.json");
    let unbonded = cairn_json(
        &[
            "validator",
            "unbond",
            "--amount",
            &params.min_self_stake.to_string(),
            "--private-key-file",
            v3_key_file.to_str().unwrap(),
            "--fee",
            "1",
            "--wait",
        ],
        &v0,
        &keyring,
        &logs,
    );
    let u = unbonded["height"]
        .as_u64()
        .unwrap_or_else(|| panic!("no height in the unbond report {unbonded}"));
    let account = query(&v0, &["account", &v3_address]).unwrap();
    let entries = account["unbonding"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        entries.len(),
        1,
        "v3's account should list one unbonding entry: {account:#}"
    );
    assert_eq!(
        (
            entries[0]["amount"].as_u64(),
            entries[0]["release_height"].as_u64()
        ),
        (
            Some(params.min_self_stake),
            Some(u + params.unbonding_period_blocks)
        ),
        "v3's unbonding entry (unbond included at {u}): {account:#}"
    );
    assert!(
        account["stake"].is_null() || account["stake"]["status"] == "unbonding",
        "v3's account still shows bonded stake: {account:#}"
    );
    reach(&v0, u + 2, "after the unbond", &logs);
    let now = set_now(&v0);
    let left = candidate(&now, &v3_key);
    assert!(
        left.is_none() || left.unwrap()["status"] == "unbonding",
        "v3's candidate should be gone or unbonding: {left:?}"
    );
    assert!(
        member(&set_at(&v0, u + 1), &v3_key).is_some(),
        "v3 should still be in the set of {} (the unbond at {u} applies from {})",
        u + 1,
        u + 2
    );
    let without_v3 = set_at(&v0, u + 2);
    assert!(
        member(&without_v3, &v3_key).is_none(),
        "v3 is still in the set of {} after unbonding at {u}: {}",
        u + 2,
        brief(&without_v3)
    );
    assert_eq!(
        without_v3["total_power"].as_u64(),
        Some(6),
        "{without_v3:#}"
    );
    let metrics_of_devnet = |index: usize| {
        file["nodes"][index]["metrics"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        wait_for(Duration::from_secs(20), || {
            (metric(&metrics_of_devnet(3), "cairn_validator_in_set") == Some(0.0)).then_some(())
        })
        .is_some(),
        "v3's metrics still show cairn_validator_in_set {:?} after it left the set",
        metric(&metrics_of_devnet(3), "cairn_validator_in_set")
    );
    let live = vec![v0.clone(), rpc[1].clone(), rpc[2].clone(), rpc5.clone()];
    let goal = u + 2 + 5;
    watch_progress(
        &live,
        Duration::from_secs(15),
        "after v3 left the set",
        &logs,
        || {
            live.iter()
                .all(|url| height(url).is_some_and(|h| h >= goal))
        },
    );
    eprintln!(
        "5. v3 unbond included at {u} (release at {}), first height without v3: {}, set {}; chain at {goal}+ on v0, v1, v2, v4 ({:.1} s)",
        u + params.unbonding_period_blocks,
        u + 2,
        brief(&without_v3),
        elapsed()
    );

    // ---- 6. a twin of v2 equivocates: evidence, jail, slash --------------
    let (v2_key, v2_address) = original(&name(2));
    init_validator_home(&twin_home, &genesis, "v2-twin");
    let v2_key_file = dir.join(name(2)).join("config").join("validator_key.json");
    fs::copy(
        &v2_key_file,
        twin_home.join("config").join("validator_key.json"),
    )
    .unwrap();
    let (code, twin_key, _) = run(cairnd().arg("--home").arg(&twin_home).arg("show-validator"));
    assert_eq!((code, twin_key.trim()), (0, v2_key.as_str()));
    let twin_from = height(&v0).unwrap();
    let mut command = cairnd();
    command.arg("--home").arg(&twin_home).arg("start");
    node_flags(&mut command, base_port, VALIDATORS + 1, &v0_p2p);
    guard.spawn("twin", command, &twin_home.join("node.log"));
    let twin_rpc = rpc_of(base_port, VALIDATORS + 1);
    // The chain must go on while the twins equivocate (v0, v1 and v4 hold
    // 5 of the 6 power).
    let mut jailed = None;
    watch_progress(
        &[v0.clone(), rpc[1].clone(), rpc5.clone()],
        Duration::from_secs(15),
        "while v2 and its twin equivocate",
        &logs,
        || {
            jailed = query(&v0, &["validators"]).ok().and_then(|now| {
                let v2 = candidate(&now, &v2_key)?;
                (v2["status"] == "jailed").then(|| v2.clone())
            });
            jailed.is_some()
        },
    );
    let jailed = jailed.unwrap_or_else(|| {
        panic!(
            "v2 was not jailed within {} s of starting its twin (twin at {:?}, exited: {:?}); v2 now: {:?}; /evidence: {:?}\n{}",
            PATIENCE.as_secs(),
            height(&twin_rpc),
            guard.child_exited("twin"),
            candidate(&set_now(&v0), &v2_key),
            http_get(&v0, "/evidence"),
            logs.tail()
        )
    });
    let slashed =
        params.min_self_stake - params.min_self_stake * params.slash_fraction_bps / 10_000;
    assert_eq!(slashed, 950_000);
    assert_eq!(
        jailed["bonded"].as_u64(),
        Some(slashed),
        "v2's bonded stake after the slash: {jailed:#}"
    );
    assert_eq!(jailed["operator"].as_str(), Some(v2_address.as_str()));
    let until = jailed["jailed_until"]
        .as_u64()
        .unwrap_or_else(|| panic!("no jailed_until in {jailed:#}"));
    let j = until - params.jail_blocks;
    // The jailing block records the evidence, and it is the first one
    // since the twin started that records any.
    let with_evidence: Vec<u64> = (twin_from..=j)
        .filter(|h| block(&v0, *h, &logs)["header"]["evidence_hash"] != empty_hash().as_str())
        .collect();
    assert_eq!(
        with_evidence,
        vec![j],
        "the blocks with evidence since the twin started at {twin_from}, given jailed_until {until}"
    );
    let evidence = evidence_now(&v0);
    let against_v2 = evidence
        .iter()
        .filter_map(|item| item.get("DuplicateVote"))
        .find(|item| {
            let (a, b) = (&item["vote_a"], &item["vote_b"]);
            let at = a["height"].as_u64().unwrap();
            let key_of = |index: &Value| {
                set_at(&v0, at)["validators"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|validator| validator["index"] == *index)
                    .map(|validator| validator["public_key"].as_str().unwrap().to_string())
            };
            a["validator"] == b["validator"]
                && a["height"] == b["height"]
                && a["round"] == b["round"]
                && a["block_hash"] != b["block_hash"]
                && key_of(&a["validator"]).as_deref() == Some(v2_key.as_str())
        })
        .cloned();
    let against_v2 = against_v2.unwrap_or_else(|| {
        panic!("GET /evidence lists no duplicate vote of v2 ({v2_key}): {evidence:?}")
    });
    assert!(
        guard.stop("twin").is_some(),
        "the twin did not exit on SIGTERM\n{}",
        logs.tail()
    );
    reach(&v0, j + 2, "after the jailing", &logs);
    let without_v2 = set_at(&v0, j + 2);
    assert!(
        member(&without_v2, &v2_key).is_none(),
        "v2 is still in the set of {} after being jailed at {j}: {}",
        j + 2,
        brief(&without_v2)
    );
    let live = vec![v0.clone(), rpc[1].clone(), rpc5.clone()];
    let twin_stopped = height(&v0).unwrap();
    let goal = twin_stopped.max(j + 2) + 5;
    watch_progress(
        &live,
        Duration::from_secs(15),
        "after v2 was jailed and its twin stopped",
        &logs,
        || {
            live.iter()
                .all(|url| height(url).is_some_and(|h| h >= goal))
        },
    );
    let last = set_now(&v0);
    assert!(member(&last, &v2_key).is_none(), "{}", brief(&last));
    assert!(member(&last, &v3_key).is_none(), "{}", brief(&last));
    assert_eq!(member(&last, &new_key).map(|(_, p)| p), Some(3));
    assert!(
        wait_for(Duration::from_secs(20), || {
            (metric(&metrics_of_devnet(2), "cairn_validator_in_set") == Some(0.0)).then_some(())
        })
        .is_some(),
        "v2's metrics still show cairn_validator_in_set {:?} after it was jailed",
        metric(&metrics_of_devnet(2), "cairn_validator_in_set")
    );
    let v2_account = query(&v0, &["account", &v2_address]).unwrap();
    assert_eq!(
        v2_account["stake"]["status"], "jailed",
        "v2's account: {v2_account:#}"
    );
    eprintln!(
        "6. twin of v2 started at {twin_from}; duplicate {} votes at height {} round {}; v2 jailed at {j} (until {until}), bonded {} -> {slashed}; first height without v2: {}, set {}; chain at {goal}+ ({:.1} s)",
        against_v2["vote_a"]["vote_type"],
        against_v2["vote_a"]["height"],
        against_v2["vote_a"]["round"],
        params.min_self_stake,
        j + 2,
        brief(&without_v2),
        elapsed()
    );

    // For the record: every block with evidence since the twin started,
    // and v2's stake now.
    let top = live.iter().map(|url| height(url).unwrap()).min().unwrap();
    let recorded: Vec<u64> = (twin_from..=top)
        .filter(|h| block(&v0, *h, &logs)["header"]["evidence_hash"] != empty_hash().as_str())
        .collect();
    let final_v2 = candidate(&set_now(&v0), &v2_key)
        .cloned()
        .unwrap_or(Value::Null);
    let pieces: Vec<String> = evidence_now(&v0)
        .iter()
        .filter_map(|item| item.get("DuplicateVote"))
        .map(|item| {
            format!(
                "{} h{} r{} by index {}",
                item["vote_a"]["vote_type"],
                item["vote_a"]["height"],
                item["vote_a"]["round"],
                item["vote_a"]["validator"]
            )
        })
        .collect();
    eprintln!(
        "   blocks with evidence from {twin_from} to {top}: {recorded:?}; /evidence: {pieces:?}; v2 now bonded {} jailed_until {}",
        final_v2["bonded"], final_v2["jailed_until"]
    );

    // ---- the end: agreement, clean exits, no panic ------------------------
    let mut urls = live.clone();
    urls.push(rpc[2].clone());
    urls.push(rpc[3].clone());
    for h in [b, first_in_set, u + 2, j, top] {
        let hashes: Vec<Value> = urls
            .iter()
            .map(|url| block(url, h, &logs)["hash"].clone())
            .collect();
        assert!(
            hashes.iter().all(|hash| *hash == hashes[0]),
            "height {h}: the nodes disagree: {hashes:?}"
        );
    }
    // ---- the light client across the set changes --------------------------
    // From the genesis (a fresh light directory) to the tip: the set of the
    // tip is not the genesis set (v4 in, v3 and v2 out), so it is fetched
    // and checked against the header; then from a trusted block before the
    // changes (`cairn light init --trusted-height`).
    let account = genesis_json["accounts"][0]["address"]
        .as_str()
        .unwrap()
        .to_string();
    let light = tempfile::tempdir().unwrap();
    let verify = |url: &str| {
        run(cairn()
            .env("CAIRN_LIGHT_DIR", light.path())
            .args(["query", "account", &account, "--verify", "--genesis"])
            .arg(&genesis)
            .args(["--node", url, "--json"]))
    };
    let (code, stdout, stderr) = verify(&v0);
    assert_eq!(code, 0, "--verify across set changes: {stdout} {stderr}");
    let verified: Value = serde_json::from_str(&stdout).unwrap();
    let fetched = &verified["verified"]["fetched"];
    assert!(fetched["validator_sets"].as_u64().unwrap() >= 1, "{stdout}");
    let signed = verified["verified"]["signed_power"].as_u64().unwrap();
    let total = verified["verified"]["total_power"].as_u64().unwrap();
    assert!(signed * 3 > total * 2, "{stdout}");
    eprintln!(
        "   light client: genesis to height {}: {fetched}",
        verified["verified"]["height"]
    );
    let trusted_hash = block(&v0, b, &logs)["hash"].as_str().unwrap().to_string();
    let by_hash = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(cairn()
        .env("CAIRN_LIGHT_DIR", by_hash.path())
        .args([
            "light",
            "init",
            "--trusted-height",
            &b.to_string(),
            "--trusted-hash",
            &trusted_hash,
        ])
        .args(["--node", &v0]));
    assert_eq!(code, 0, "light init at height {b}: {stdout} {stderr}");
    let (code, stdout, stderr) = run(cairn().env("CAIRN_LIGHT_DIR", by_hash.path()).args([
        "query", "account", &account, "--verify", "--node", &rpc5, "--json",
    ]));
    assert_eq!(code, 0, "--verify from height {b}: {stdout} {stderr}");
    let verified: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(verified["verified"]["from_height"], b, "{stdout}");

    let status = guard.stop("v4");
    assert!(
        status.is_some_and(|status| status.success()),
        "the fifth node should exit cleanly on SIGTERM, got {status:?}\n{}",
        logs.tail()
    );
    let pids = recorded_pids(&dir);
    let (code, stdout, stderr) = run(cairn().args(["devnet", "down", "--dir"]).arg(&dir));
    assert_eq!(code, 0, "devnet down failed:\n{stdout}\n{stderr}");
    for pid in pids {
        assert!(!alive(pid), "pid {pid} still runs after `devnet down`");
    }
    for home in &logs.0 {
        let log = fs::read_to_string(home.join("node.log")).unwrap_or_default();
        assert!(
            !log.contains("panicked"),
            "{} shows a panic:\n{}",
            home.display(),
            logs.tail()
        );
    }
    eprintln!(
        "heights: bond B={b}, in set from {first_in_set}, first signed certificate {first_signed}, unbond {u}, first without v3 {}, jailed {j}, first without v2 {}; done in {:.1} s",
        u + 2,
        j + 2,
        elapsed()
    );
    drop(guard);
}
