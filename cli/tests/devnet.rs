//! `cairn devnet up|status|down` with real `cairnd` processes on loopback.
//!
//! Needs the `cairnd` binary next to `cairn` in the target directory: run
//! `cargo build --workspace --bins` first (the README's test command does).
//! Whatever happens, a guard stops the nodes when the test ends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use serde_json::Value;

/// Nodes of the test devnet, and ports each one uses from the base port.
const NODES: u16 = 4;
const PORTS_PER_NODE: u16 = 10;

/// `cairn` with no `CAIRN_*` setting leaking in from the machine.
fn cairn() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cairn"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CAIRN_") {
            command.env_remove(key);
        }
    }
    command.stdin(Stdio::null());
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
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// `cairnd` next to `cairn`, or a failure saying how to build it.
fn require_cairnd() {
    let cairnd = Path::new(env!("CARGO_BIN_EXE_cairn")).with_file_name("cairnd");
    assert!(
        cairnd.is_file(),
        "{} does not exist: this test runs real nodes; build them first with `cargo build --workspace --bins` (with the same CARGO_TARGET_DIR)",
        cairnd.display()
    );
}

/// A base port whose whole range is free, below the Linux ephemeral range
/// (32768+) so outgoing connections do not take the ports meanwhile; the
/// start depends on the pid so parallel runs pick different ranges.
fn free_base_port() -> u16 {
    let span = NODES * PORTS_PER_NODE;
    let slots = (32_000 - 20_000) / span;
    let first = u16::try_from(std::process::id() % u32::from(slots)).unwrap();
    for attempt in 0..slots {
        let base = 20_000 + ((first + attempt) % slots) * span;
        if (base..base + span).all(|port| TcpListener::bind(("127.0.0.1", port)).is_ok()) {
            return base;
        }
    }
    panic!("no free range of {span} ports between 20000 and 32000 on 127.0.0.1");
}

/// The pids recorded in `devnet.json`.
fn recorded_pids(dir: &Path) -> Vec<u32> {
    let Ok(text) = fs::read_to_string(dir.join("devnet.json")) else {
        return Vec::new();
    };
    let Ok(file) = serde_json::from_str::<Value>(&text) else {
        return Vec::new();
    };
    file["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|node| node["pid"].as_u64())
        .map(|pid| u32::try_from(pid).unwrap())
        .collect()
}

/// Whether `pid` is a live process (a zombie counts as exited: nobody may
/// reap the nodes once their parent `cairn` has exited).
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

/// The end of every node's log, for failure messages.
fn logs(dir: &Path) -> String {
    let mut text = String::new();
    for node in 0..NODES {
        let path = dir.join(format!("v{node}")).join("node.log");
        let log = fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        text.push_str(&format!("--- {} (last lines)\n", path.display()));
        for line in &lines[lines.len().saturating_sub(15)..] {
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

/// Stops the devnet when dropped: `cairn devnet down`, then SIGKILL to any
/// recorded pid still alive.
struct Devnet {
    dir: PathBuf,
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = cairn()
            .args(["devnet", "down", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for pid in recorded_pids(&self.dir) {
            if alive(pid) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

fn status_json(dir: &Path) -> Value {
    let (code, stdout, stderr) = run(cairn()
        .args(["devnet", "status", "--json", "--dir"])
        .arg(dir));
    assert_eq!(code, 0, "devnet status failed: {stderr}\n{}", logs(dir));
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn devnet_up_status_down() {
    require_cairnd();
    let temporary = tempfile::tempdir().unwrap();
    let dir = temporary.path().join("devnet");
    let keyring = temporary.path().join("keys");
    let base_port = free_base_port();
    let guard = Devnet { dir: dir.clone() };

    let (code, stdout, stderr) = run(cairn()
        .args([
            "devnet",
            "up",
            "--validators",
            "4",
            "--accounts",
            "2",
            "--detach",
        ])
        .arg("--dir")
        .arg(&dir)
        .args(["--base-port", &base_port.to_string()])
        .arg("--keyring-dir")
        .arg(&keyring));
    assert_eq!(
        code,
        0,
        "devnet up failed:\n{stdout}\n{stderr}\n{}",
        logs(&dir)
    );
    let rpc0 = format!("http://127.0.0.1:{}", base_port + 1);
    assert!(
        stdout.contains(&rpc0) && stdout.contains("cairn tx send --from devnet-acct0"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("export CAIRN_NODE={rpc0}\n")),
        "{stdout}"
    );
    assert!(keyring.join("devnet-acct0.json").is_file());
    assert!(dir.join("keys").join("devnet-acct1.json").is_file());
    assert!(dir.join("genesis.json").is_file());

    let status = status_json(&dir);
    let nodes = status["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 4, "{status:#}");
    for node in nodes {
        assert_eq!(node["running"], true, "{status:#}\n{}", logs(&dir));
        assert!(
            node["height"].as_u64().is_some_and(|height| height >= 1),
            "{status:#}\n{}",
            logs(&dir)
        );
    }
    let pids = recorded_pids(&dir);
    assert_eq!(pids.len(), 4, "{status:#}");
    assert!(pids.iter().all(|pid| alive(*pid)));

    // The text status shows each node's P2P address.
    let (code, text, stderr) = run(cairn().args(["devnet", "status", "--dir"]).arg(&dir));
    assert_eq!(code, 0, "{stderr}");
    for node in nodes {
        let p2p = node["p2p"].as_str().unwrap();
        assert!(p2p.starts_with("/ip4/127.0.0.1/tcp/"), "{status:#}");
        assert!(text.contains(p2p), "{text}");
    }

    // One node stops, starts and restarts on its own.
    let node_command =
        |verb: &str, name: &str| run(cairn().args(["devnet", verb, name, "--dir"]).arg(&dir));
    let (code, stdout, stderr) = node_command("stop", "v3");
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("v3") && stdout.contains("stopped"),
        "{stdout}"
    );
    let v3 = |status: &Value| status["nodes"][3].clone();
    assert_eq!(v3(&status_json(&dir))["running"], false);
    assert!(!alive(pids[3]), "v3 still runs after `devnet stop v3`");
    assert_eq!(status_json(&dir)["nodes"][0]["running"], true);
    let (code, stdout, stderr) = node_command("start", "v3");
    assert_eq!(code, 0, "{stdout}{stderr}\n{}", logs(&dir));
    assert!(stdout.contains("started v3"), "{stdout}");
    assert_eq!(v3(&status_json(&dir))["running"], true);
    let (code, _, stderr) = node_command("start", "v3");
    assert_eq!(code, 1);
    assert!(stderr.contains("already running"), "{stderr}");
    let before = status_json(&dir)["nodes"][2]["pid"].as_u64().unwrap();
    let (code, stdout, stderr) = node_command("restart", "v2");
    assert_eq!(code, 0, "{stdout}{stderr}\n{}", logs(&dir));
    let after = status_json(&dir)["nodes"][2]["pid"].as_u64().unwrap();
    assert_ne!(before, after);
    assert!(!alive(u32::try_from(before).unwrap()));
    let (code, _, stderr) = node_command("stop", "v9");
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no node \"v9\"") && stderr.contains("v0, v1, v2, v3"),
        "{stderr}"
    );
    let pids_now = recorded_pids(&dir);
    assert_eq!(pids_now.len(), 4);

    // A second `up` refuses while the nodes run.
    let (code, _, stderr) = run(cairn()
        .args(["devnet", "up", "--detach", "--dir"])
        .arg(&dir)
        .arg("--keyring-dir")
        .arg(&keyring));
    assert_ne!(code, 0);
    assert!(stderr.contains("already running"), "{stderr}");

    let (code, stdout, stderr) = run(cairn().args(["devnet", "down", "--dir"]).arg(&dir));
    assert_eq!(code, 0, "devnet down failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("stopped 4 nodes"), "{stdout}");
    for pid in &pids {
        assert!(!alive(*pid), "pid {pid} still runs after `devnet down`");
    }
    for pid in &pids_now {
        assert!(!alive(*pid), "pid {pid} still runs after `devnet down`");
    }
    assert!(recorded_pids(&dir).is_empty());
    let status = status_json(&dir);
    for node in status["nodes"].as_array().unwrap() {
        assert_eq!(node["running"], false, "{status:#}");
    }
    drop(guard);
}
