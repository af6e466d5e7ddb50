//! `cairn devnet up|status|down|stop|start|restart` with real `cairnd`
//! processes on loopback: each node's config.toml holds what it runs with,
//! and it runs with no flag but `--home`; devnets of an older cairn resume.
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
/// `avoid` is a base port not to return (ranges start at multiples of the
/// span, so two different bases never overlap).
fn free_base_port(avoid: Option<u16>) -> u16 {
    let span = NODES * PORTS_PER_NODE;
    let slots = (32_000 - 20_000) / span;
    let first = u16::try_from(std::process::id() % u32::from(slots)).unwrap();
    for attempt in 0..slots {
        let base = 20_000 + ((first + attempt) % slots) * span;
        if Some(base) != avoid
            && (base..base + span).all(|port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        {
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

fn devnet_file(dir: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(dir.join("devnet.json")).unwrap()).unwrap()
}

/// The lines of table `[name]` of a TOML text (up to the next table).
fn toml_table<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let header = format!("[{name}]");
    text.lines()
        .skip_while(|line| line.trim() != header)
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .collect()
}

/// The strings of `key = ...` in table `[table]`: one for a string value,
/// each element for an array (on one line or several, as `cairnd init`
/// writes them); `None` if the key is not there.
fn toml_strings(text: &str, table: &str, key: &str) -> Option<Vec<String>> {
    let lines = toml_table(text, table);
    let start = lines.iter().position(|line| {
        line.split_once('=')
            .is_some_and(|(name, _)| name.trim() == key)
    })?;
    let (_, first) = lines[start].split_once('=').unwrap();
    let mut value = first.trim().to_string();
    if value.starts_with('[') {
        for line in &lines[start + 1..] {
            if value.contains(']') {
                break;
            }
            value.push_str(line);
        }
    }
    Some(
        value
            .split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    )
}

/// Node `index`'s `config/config.toml`.
fn config_text(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name).join("config").join("config.toml")).unwrap()
}

/// Every node's config.toml holds the ports of `devnet.json` and every
/// other node as a bootstrap peer.
fn assert_configs_hold_the_settings(dir: &Path, base_port: u16) {
    let file = devnet_file(dir);
    let nodes = file["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), usize::from(NODES), "{file:#}");
    for (index, node) in nodes.iter().enumerate() {
        let name = node["name"].as_str().unwrap();
        let text = config_text(dir, name);
        let port = base_port + u16::try_from(index).unwrap() * PORTS_PER_NODE;
        let strings = |table: &str, key: &str| {
            toml_strings(&text, table, key)
                .unwrap_or_else(|| panic!("{name}: no {table}.{key} in its config:\n{text}"))
        };
        assert_eq!(
            strings("rpc", "listen"),
            [format!("127.0.0.1:{}", port + 1)],
            "{name}:\n{text}"
        );
        assert_eq!(
            strings("metrics", "listen"),
            [format!("127.0.0.1:{}", port + 2)],
            "{name}:\n{text}"
        );
        assert_eq!(
            strings("p2p", "listen"),
            [format!("/ip4/127.0.0.1/tcp/{port}")],
            "{name}:\n{text}"
        );
        let mut bootstrap = strings("p2p", "bootstrap");
        bootstrap.sort();
        let mut others: Vec<String> = nodes
            .iter()
            .filter(|other| other["name"] != node["name"])
            .map(|other| other["p2p"].as_str().unwrap().to_string())
            .collect();
        others.sort();
        assert_eq!(bootstrap, others, "{name}:\n{text}");
        for other in &others {
            assert!(
                other.starts_with("/ip4/127.0.0.1/tcp/") && other.contains("/p2p/12D3KooW"),
                "{other}"
            );
        }
        assert_eq!(
            node["rpc"].as_str().unwrap(),
            format!("http://127.0.0.1:{}", port + 1)
        );
        let line = |table: &str, key: &str| {
            toml_table(&text, table)
                .iter()
                .any(|line| line.split_whitespace().collect::<Vec<_>>() == [key, "=", "1000"])
        };
        assert!(
            line("consensus", "block_interval_max_ms"),
            "{name}:\n{text}"
        );
    }
}

/// Every recorded pid runs `cairnd --home <its home> start` and nothing
/// more: no flag overrides its config.
fn assert_started_without_flags(dir: &Path) {
    let file = devnet_file(dir);
    let cairnd = Path::new(env!("CARGO_BIN_EXE_cairn")).with_file_name("cairnd");
    let mut seen = 0;
    for node in file["nodes"].as_array().unwrap() {
        let Some(pid) = node["pid"].as_u64() else {
            continue;
        };
        seen += 1;
        let bytes = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let args: Vec<String> = bytes
            .split(|byte| *byte == 0)
            .filter(|arg| !arg.is_empty())
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect();
        let home = fs::canonicalize(dir.join(node["name"].as_str().unwrap())).unwrap();
        assert_eq!(
            args.get(1..).unwrap_or_default(),
            ["--home", &home.display().to_string(), "start"],
            "pid {pid} of {}: {args:?}",
            node["name"]
        );
        assert_eq!(
            fs::canonicalize(&args[0]).unwrap(),
            fs::canonicalize(&cairnd).unwrap(),
            "{args:?}"
        );
    }
    assert_eq!(seen, NODES, "{file:#}");
}

/// Every node runs and has committed a block.
fn assert_all_running(dir: &Path) {
    let status = status_json(dir);
    let nodes = status["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), usize::from(NODES), "{status:#}");
    for node in nodes {
        assert_eq!(node["running"], true, "{status:#}\n{}", logs(dir));
        assert!(
            node["height"].as_u64().is_some_and(|height| height >= 1),
            "{status:#}\n{}",
            logs(dir)
        );
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
    let base_port = free_base_port(None);
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

    // Each config.toml holds what its node runs with; no flag overrides it.
    assert_configs_hold_the_settings(&dir, base_port);
    assert_started_without_flags(&dir);
    assert_eq!(devnet_file(&dir)["version"], 2);
    assert!(!dir.join("v0/config/config.toml.bak").exists());
    let configs_before: Vec<String> = (0..NODES)
        .map(|node| config_text(&dir, &format!("v{node}")))
        .collect();

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
    // Started and restarted nodes run with their config alone too, and the
    // configs were left as they were.
    assert_started_without_flags(&dir);
    for (node, before) in configs_before.iter().enumerate() {
        assert_eq!(&config_text(&dir, &format!("v{node}")), before, "v{node}");
    }

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

    // A devnet made by an older cairn (devnet.json version 1, configs as
    // `cairnd init --moniker --timeout-commit-ms` wrote them, the rest
    // passed as `cairnd start` flags) resumes: its configs are rewritten
    // once, the old ones kept, and the nodes start without flags.
    let cairnd = Path::new(env!("CARGO_BIN_EXE_cairn")).with_file_name("cairnd");
    let mut old_configs = Vec::new();
    for node in 0..NODES {
        let scratch = temporary.path().join(format!("old-v{node}"));
        let (code, _, stderr) = run(Command::new(&cairnd)
            .arg("--home")
            .arg(&scratch)
            .args(["init", "--moniker", &format!("v{node}")])
            .args(["--timeout-commit-ms", "10"]));
        assert_eq!(code, 0, "{stderr}");
        let old = fs::read_to_string(scratch.join("config/config.toml")).unwrap();
        assert!(toml_strings(&old, "p2p", "bootstrap").unwrap().is_empty());
        fs::write(dir.join(format!("v{node}/config/config.toml")), &old).unwrap();
        old_configs.push(old);
    }
    let mut file = devnet_file(&dir);
    file["version"] = 1.into();
    fs::write(dir.join("devnet.json"), file.to_string()).unwrap();
    let up = |base_port: Option<u16>| {
        let mut command = cairn();
        command
            .args(["devnet", "up", "--detach", "--dir"])
            .arg(&dir)
            .arg("--keyring-dir")
            .arg(&keyring);
        if let Some(base_port) = base_port {
            command.args(["--base-port", &base_port.to_string()]);
        }
        let (code, stdout, stderr) = run(&mut command);
        assert_eq!(
            code,
            0,
            "devnet up (resume) failed:\n{stdout}\n{stderr}\n{}",
            logs(&dir)
        );
        stdout
    };
    let stdout = up(None);
    assert!(
        stdout.contains("resumed 4 nodes") && stdout.contains("config.toml.bak"),
        "{stdout}"
    );
    assert_eq!(devnet_file(&dir)["version"], 2);
    assert_all_running(&dir);
    assert_configs_hold_the_settings(&dir, base_port);
    assert_started_without_flags(&dir);
    for (node, old) in old_configs.iter().enumerate() {
        let kept = fs::read_to_string(dir.join(format!("v{node}/config/config.toml.bak")));
        assert_eq!(&kept.unwrap(), old, "v{node}");
    }
    assert!(!dir.join(".v0.config.tmp").exists());
    let (code, stdout, stderr) = run(cairn().args(["devnet", "down", "--dir"]).arg(&dir));
    assert_eq!(code, 0, "devnet down failed:\n{stdout}\n{stderr}");

    // A resume with another --base-port moves the nodes: their configs are
    // rewritten with the new ports.
    let moved = free_base_port(Some(base_port));
    let stdout = up(Some(moved));
    assert!(stdout.contains("config.toml.bak"), "{stdout}");
    assert_eq!(devnet_file(&dir)["version"], 2);
    assert_eq!(devnet_file(&dir)["base_port"], moved);
    assert_all_running(&dir);
    assert_configs_hold_the_settings(&dir, moved);
    assert_started_without_flags(&dir);
    let (code, stdout, stderr) = run(cairn().args(["devnet", "down", "--dir"]).arg(&dir));
    assert_eq!(code, 0, "devnet down failed:\n{stdout}\n{stderr}");
    assert!(recorded_pids(&dir).is_empty());

    // A plain resume rewrites nothing.
    let configs_before: Vec<String> = (0..NODES)
        .map(|node| config_text(&dir, &format!("v{node}")))
        .collect();
    let stdout = up(None);
    assert!(!stdout.contains("config.toml.bak"), "{stdout}");
    assert_started_without_flags(&dir);
    for (node, before) in configs_before.iter().enumerate() {
        assert_eq!(&config_text(&dir, &format!("v{node}")), before, "v{node}");
    }
    drop(guard);
}
