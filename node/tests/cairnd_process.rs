//! The real `cairnd` binary: `init` then `start` on port 0, addresses read
//! from `addresses.json`, `/health`, `/status` and `/metrics` over real
//! HTTP, a clean exit 0 on SIGTERM; bad configuration stops start-up with
//! a clear message, and a validator key outside the genesis set follows
//! the chain without voting (and says how to bond it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use support::{cairnd, http_get, wait_for_addresses, ChildGuard, DEADLINE};

fn init(home: &Path, extra: &[&str]) {
    let output = cairnd()
        .arg("--home")
        .arg(home)
        .arg("init")
        .args(extra)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
}

fn start_args(home: &Path) -> Vec<String> {
    vec![
        "--home".into(),
        home.display().to_string(),
        "start".into(),
        "--rpc-listen".into(),
        "127.0.0.1:0".into(),
        "--metrics-listen".into(),
        "127.0.0.1:0".into(),
        "--p2p-listen".into(),
        "/ip4/127.0.0.1/tcp/0".into(),
    ]
}

/// Runs a `cairnd start` that is expected to fail, with a deadline.
fn run_failing(args: &[String]) -> Output {
    let child = cairnd()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(Some(child));
    let started = Instant::now();
    loop {
        if let Some(_status) = guard.0.as_mut().unwrap().try_wait().unwrap() {
            return guard.0.take().unwrap().wait_with_output().unwrap();
        }
        assert!(started.elapsed() < DEADLINE, "cairnd did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends SIGTERM and expects exit 0 within the deadline: (stdout, stderr).
fn stop_with_sigterm(guard: &mut ChildGuard) -> (String, String) {
    let pid = guard.0.as_ref().unwrap().id();
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    loop {
        if let Some(status) = guard.0.as_mut().unwrap().try_wait().unwrap() {
            let output = guard.0.take().unwrap().wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout).to_string();
            let stderr = String::from_utf8_lossy(&output.stderr).to_string();
            assert!(status.success(), "exit {status}: {stderr}");
            return (stdout, stderr);
        }
        assert!(
            started.elapsed() < DEADLINE,
            "cairnd did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn dev_mode_prints_the_accounts_and_serves_the_dev_chain() {
    let home = tempfile::tempdir().unwrap();
    let child = cairnd()
        .args([
            "--home",
            &home.path().display().to_string(),
            "start",
            "--dev",
        ])
        .args([
            "--rpc-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(Some(child));
    let addresses = wait_for_addresses(&mut guard, home.path());
    let rpc = addresses["rpc"].as_str().unwrap().to_string();
    let (_, body) = http_get(&rpc, "/status");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["chain_id"], "cairn-dev");
    let account = cairn_genesis::dev::dev_account_keypairs()[0].address();
    let (_, body) = http_get(&rpc, &format!("/account/{account}"));
    let account: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(account["balance"], cairn_genesis::dev::DEV_ACCOUNT_BALANCE);
    let (stdout, _) = stop_with_sigterm(&mut guard);
    assert!(stdout.contains("INSECURE"), "{stdout}");
    assert!(stdout.contains(&format!("RPC URL: {rpc}")), "{stdout}");
}

#[test]
fn init_start_serve_and_stop_on_sigterm() {
    let home = tempfile::tempdir().unwrap();
    init(home.path(), &["--moniker", "proc-test"]);
    let child = cairnd()
        .args(start_args(home.path()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(Some(child));
    let addresses_file = home.path().join("addresses.json");
    let started = Instant::now();
    let addresses: serde_json::Value = loop {
        if let Ok(text) = std::fs::read_to_string(&addresses_file) {
            if let Ok(value) = serde_json::from_str(&text) {
                break value;
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
    };
    let rpc = addresses["rpc"].as_str().unwrap().to_string();
    let (status, body) = http_get(&rpc, "/health");
    assert_eq!((status, body.contains("ok")), (200, true), "{body}");
    let (status, body) = http_get(&rpc, "/status");
    assert_eq!(status, 200, "{body}");
    let status_json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status_json["chain_id"], "cairn-local");
    assert_eq!(status_json["moniker"], "proc-test");
    assert_eq!(status_json["latest_height"], 0);
    assert_eq!(status_json["validator"], true);
    let metrics = addresses["metrics"].as_str().unwrap();
    let (status, body) = http_get(metrics, "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("cairn_consensus_height 0"), "{body}");

    let pid = guard.0.as_ref().unwrap().id();
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    loop {
        if let Some(status) = guard.0.as_mut().unwrap().try_wait().unwrap() {
            let output = guard.0.take().unwrap().wait_with_output().unwrap();
            let logs = String::from_utf8_lossy(&output.stderr);
            assert!(status.success(), "exit {status}: {logs}");
            assert!(logs.contains("p2p listening"), "{logs}");
            assert!(logs.contains("stopped cleanly"), "{logs}");
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "cairnd did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !addresses_file.exists(),
        "addresses.json is removed at exit"
    );
}

#[test]
fn an_unknown_config_key_is_named_with_its_file() {
    let home = tempfile::tempdir().unwrap();
    init(home.path(), &[]);
    let config = home.path().join("config/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("peers_target", "peer_target")).unwrap();
    let output = run_failing(&start_args(home.path()));
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("config.toml") && message.contains("peer_target"),
        "{message}"
    );
}

#[test]
fn a_validator_key_outside_the_genesis_set_follows_without_voting() {
    let home = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    init(home.path(), &[]);
    init(other.path(), &[]);
    // The other home's genesis names another validator: this key can be
    // bonded later, so the node starts and follows.
    std::fs::copy(
        other.path().join("config/genesis.json"),
        home.path().join("config/genesis.json"),
    )
    .unwrap();
    let child = cairnd()
        .args(start_args(home.path()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(Some(child));
    let addresses = wait_for_addresses(&mut guard, home.path());
    let metrics = addresses["metrics"].as_str().unwrap().to_string();
    let started = Instant::now();
    loop {
        let (_, body) = http_get(&metrics, "/metrics");
        if body.contains("cairn_validator_set_size 1") {
            assert!(body.contains("cairn_validator_in_set 0"), "{body}");
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "no validator set metrics: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (stdout, stderr) = stop_with_sigterm(&mut guard);
    let log = stdout + &stderr;
    assert!(
        log.contains("not in the genesis validator set") && log.contains("cairn validator bond"),
        "{log}"
    );
}

#[test]
fn a_port_in_use_is_named_with_its_config_key() {
    let home = tempfile::tempdir().unwrap();
    init(home.path(), &[]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let mut args = start_args(home.path());
    args[4] = address.clone();
    let output = run_failing(&args);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains(&address) && message.contains("rpc.listen"),
        "{message}"
    );
}

#[test]
fn a_p2p_port_in_use_is_named_with_its_config_key() {
    let home = tempfile::tempdir().unwrap();
    init(home.path(), &[]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut args = start_args(home.path());
    // The last argument is the p2p listen address.
    let last = args.len() - 1;
    args[last] = format!("/ip4/127.0.0.1/tcp/{port}");
    let output = run_failing(&args);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains(&port.to_string()) && message.contains("p2p.listen"),
        "{message}"
    );
}
