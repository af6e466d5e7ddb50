//! The real `cairnd` binary's home commands: `init` writes its settings
//! flags into `config.toml` (and reads no `CAIRN_*` variable), refuses an
//! existing home naming only `config/` and `data/`; `check` reports one
//! line per check and exits 0 or 1; `reset` keeps `config/sign_state.json`
//! and `unsafe-reset-all` deletes it, both keeping the keys and the
//! config; `start --help` explains every flag.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    path::Path,
    process::{Output, Stdio},
    time::{Duration, Instant},
};

use support::{cairnd, ChildGuard, DEADLINE};

/// Runs `cairnd --home <home> args...` with `env` to completion within
/// the deadline: (exit code, stdout, stderr).
fn run(home: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = cairnd();
    command.arg("--home").arg(home).args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(Some(child));
    let started = Instant::now();
    let output: Output = loop {
        if guard.0.as_mut().unwrap().try_wait().unwrap().is_some() {
            break guard.0.take().unwrap().wait_with_output().unwrap();
        }
        assert!(started.elapsed() < DEADLINE, "cairnd {args:?} did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (output.status.code().unwrap_or(-1), stdout, stderr)
}

fn init_home(extra: &[&str]) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let mut args = vec!["init"];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = run(home.path(), &args, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    home
}

fn config_toml(home: &Path) -> toml::Table {
    std::fs::read_to_string(home.join("config/config.toml"))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn init_writes_its_settings_into_config_toml() {
    let peer = "/ip4/127.0.0.1/tcp/26600/p2p/12D3KooWGRUVh5rd3GPNd3kgGpFoH8Am2Ub4sF3jiLnd6t8qoKhc";
    let home = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(
        home.path(),
        &[
            "init",
            "--moniker",
            "v1",
            "--mode",
            "full",
            "--p2p-listen",
            "/ip4/127.0.0.1/tcp/26610",
            "--rpc-listen",
            "127.0.0.1:26611",
            "--metrics-listen",
            "127.0.0.1:26612",
            "--bootstrap",
            peer,
            "--mdns",
            "false",
            "--timeout-commit-ms",
            "10",
            "--block-interval-max-ms",
            "1000",
            "--log-format",
            "json",
        ],
        // Variables are for `start`: init writes flags only.
        &[("CAIRN_P2P_PEERS_TARGET", "3")],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let config = config_toml(home.path());
    assert_eq!(config["moniker"].as_str(), Some("v1"));
    assert_eq!(config["mode"].as_str(), Some("full"));
    assert_eq!(
        config["p2p"]["listen"].as_array().unwrap()[0].as_str(),
        Some("/ip4/127.0.0.1/tcp/26610")
    );
    assert_eq!(
        config["p2p"]["bootstrap"].as_array().unwrap()[0].as_str(),
        Some(peer)
    );
    assert_eq!(config["p2p"]["mdns"].as_bool(), Some(false));
    assert_eq!(config["p2p"]["peers_target"].as_integer(), Some(16));
    assert_eq!(config["rpc"]["listen"].as_str(), Some("127.0.0.1:26611"));
    assert_eq!(
        config["metrics"]["listen"].as_str(),
        Some("127.0.0.1:26612")
    );
    assert_eq!(
        config["consensus"]["timeout_commit_ms"].as_integer(),
        Some(10)
    );
    assert_eq!(
        config["consensus"]["block_interval_max_ms"].as_integer(),
        Some(1000)
    );
    assert_eq!(config["log"]["format"].as_str(), Some("json"));

    // A bad value is refused by its flag before anything is written.
    let other = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(
        other.path(),
        &["init", "--bootstrap", "/ip4/127.0.0.1/tcp/1"],
        &[],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("--bootstrap"), "{stderr}");
    assert!(!other.path().join("config").exists());
}

#[test]
fn init_on_an_existing_home_names_only_config_and_data() {
    let home = init_home(&[]);
    let (code, _, stderr) = run(home.path(), &["init"], &[]);
    assert_ne!(code, 0);
    let config = home.path().join("config").display().to_string();
    let data = home.path().join("data").display().to_string();
    assert!(
        stderr.contains(&format!("rm -r {config} {data}")),
        "{stderr}"
    );
    assert!(!stderr.contains("delete it first"), "{stderr}");
    assert!(
        !stderr.contains(&format!("rm -r {}\n", home.path().display())),
        "{stderr}"
    );
}

#[test]
fn check_passes_on_a_good_home() {
    let home = init_home(&[]);
    let (code, stdout, stderr) = run(home.path(), &["check"], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    for name in [
        "config",
        "genesis",
        "node key",
        "validator key",
        "sign state",
        "data",
    ] {
        assert!(
            stdout
                .lines()
                .any(|line| line.starts_with("ok") && line.contains(name)),
            "{name}: {stdout}"
        );
    }
    assert!(stdout.contains("is validator 0 of 1"), "{stdout}");
    assert!(stdout.contains("all 6 checks passed"), "{stdout}");
    assert!(stdout.contains("nothing signed"), "{stdout}");
    // Nothing was left behind by the write probe.
    assert_eq!(
        std::fs::read_dir(home.path().join("data")).unwrap().count(),
        0
    );
}

#[test]
fn check_fails_on_a_broken_genesis_naming_it() {
    let home = init_home(&[]);
    let genesis = home.path().join("config/genesis.json");
    std::fs::write(&genesis, "{\"chain_id\": \"cairn-loc").unwrap();
    let (code, stdout, stderr) = run(home.path(), &["check"], &[]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let line = stdout
        .lines()
        .find(|line| line.starts_with("FAIL") && line.contains("genesis"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.contains(&genesis.display().to_string()) && line.contains("truncated"),
        "{line}"
    );
    assert!(
        stdout
            .lines()
            .any(|line| line.starts_with("skip") && line.contains("validator key")),
        "{stdout}"
    );
    assert!(stderr.contains("1 of 6 checks failed"), "{stderr}");
}

#[test]
fn check_names_a_validator_key_outside_the_genesis_and_a_bad_variable() {
    let home = init_home(&[]);
    let other = init_home(&[]);
    std::fs::copy(
        other.path().join("config/validator_key.json"),
        home.path().join("config/validator_key.json"),
    )
    .unwrap();
    // A key outside the genesis set is no failure (it can be bonded at
    // runtime), but the check says so and how.
    let (code, stdout, _) = run(home.path(), &["check"], &[]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.lines().any(|line| line.starts_with("ok")
            && line.contains("validator key")
            && line.contains("not in the genesis validator set")
            && line.contains("cairn validator bond")),
        "{stdout}"
    );
    // As a full node the key is not used.
    let (code, stdout, _) = run(home.path(), &["check", "--mode", "full"], &[]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("mode is full"), "{stdout}");

    let (code, stdout, _) = run(
        home.path(),
        &["check", "--mode", "full"],
        &[("CAIRN_P2P_BOOTSTRAP", "/ip4/127.0.0.1/tcp/1")],
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.lines().any(|line| line.starts_with("FAIL")
            && line.contains("config")
            && line.contains("CAIRN_P2P_BOOTSTRAP")),
        "{stdout}"
    );
}

#[test]
fn check_reads_the_sign_state() {
    let home = init_home(&[]);
    let path = home.path().join("config/sign_state.json");
    std::fs::write(
        &path,
        r#"{"height": 7, "round": 1, "step": "precommit", "block_hash": null}"#,
    )
    .unwrap();
    let (code, stdout, stderr) = run(home.path(), &["check"], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.lines().any(|line| line.starts_with("ok")
            && line.contains("sign state")
            && line.contains("last signed height 7, round 1")),
        "{stdout}"
    );
    std::fs::write(&path, "{\"height\": 7, \"rou").unwrap();
    let (code, stdout, _) = run(home.path(), &["check"], &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.lines().any(|line| line.starts_with("FAIL")
            && line.contains("sign state")
            && line.contains("Restore it from a backup")),
        "{stdout}"
    );
}

#[test]
fn check_fails_when_data_is_a_file() {
    let home = init_home(&[]);
    let data = home.path().join("data");
    std::fs::remove_dir(&data).unwrap();
    std::fs::write(&data, b"x").unwrap();
    let (code, stdout, _) = run(home.path(), &["check"], &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|line| line.starts_with("FAIL") && line.contains("is a file, not a directory")),
        "{stdout}"
    );
}

/// A home with chain data, `addresses.json` and a dummy sign state.
fn home_with_state() -> tempfile::TempDir {
    let home = init_home(&[]);
    std::fs::write(home.path().join("data/000001.sst"), b"blocks").unwrap();
    std::fs::write(home.path().join("addresses.json"), b"{}").unwrap();
    std::fs::write(
        home.path().join("config/sign_state.json"),
        b"{\"height\": 7, \"round\": 0, \"step\": \"precommit\"}",
    )
    .unwrap();
    home
}

fn assert_keys_and_config_kept(home: &Path) {
    for file in [
        "config/config.toml",
        "config/genesis.json",
        "config/node_key.json",
        "config/validator_key.json",
    ] {
        assert!(home.join(file).is_file(), "{file} was deleted");
    }
    assert!(home.join("data").is_dir());
    assert!(!home.join("data/000001.sst").exists());
    assert!(!home.join("addresses.json").exists());
}

#[test]
fn reset_keeps_the_sign_state() {
    let home = home_with_state();
    let (code, _, stderr) = run(home.path(), &["reset"], &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--yes"), "{stderr}");
    assert!(home.path().join("data/000001.sst").exists());

    let (code, stdout, stderr) = run(home.path(), &["reset", "--yes"], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("kept config/sign_state.json: this validator still refuses to sign below its last signed height/round/step"),
        "{stdout}"
    );
    assert_keys_and_config_kept(home.path());
    assert!(home.path().join("config/sign_state.json").is_file());
}

#[test]
fn unsafe_reset_all_deletes_the_sign_state_with_a_warning() {
    let home = home_with_state();
    let (code, _, stderr) = run(home.path(), &["unsafe-reset-all"], &[]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("--yes") && stderr.contains("double-signing"),
        "{stderr}"
    );
    assert!(home.path().join("config/sign_state.json").exists());
    assert!(home.path().join("data/000001.sst").exists());

    let (code, stdout, stderr) = run(home.path(), &["unsafe-reset-all", "--yes"], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stderr.contains("warning:")
            && stderr.contains("double-signing")
            && stderr.contains("will not rejoin"),
        "{stderr}"
    );
    assert!(stdout.contains("sign_state.json"), "{stdout}");
    assert_keys_and_config_kept(home.path());
    assert!(!home.path().join("config/sign_state.json").exists());
}

#[test]
fn start_help_explains_every_flag() {
    let home = tempfile::tempdir().unwrap();
    let (code, help, _) = run(home.path(), &["start", "--help"], &[]);
    assert_eq!(code, 0);
    for (flag, key, variable) in [
        ("--moniker", "moniker", "CAIRN_MONIKER"),
        ("--mode", "mode", "CAIRN_MODE"),
        ("--p2p-listen", "p2p.listen", "CAIRN_P2P_LISTEN"),
        (
            "--external-address",
            "p2p.external_addresses",
            "CAIRN_P2P_EXTERNAL_ADDRESSES",
        ),
        ("--bootstrap", "p2p.bootstrap", "CAIRN_P2P_BOOTSTRAP"),
        ("--mdns", "p2p.mdns", "CAIRN_P2P_MDNS"),
        (
            "--peers-target",
            "p2p.peers_target",
            "CAIRN_P2P_PEERS_TARGET",
        ),
        ("--rpc-listen", "rpc.listen", "CAIRN_RPC_LISTEN"),
        (
            "--rpc-connections-max",
            "rpc.connections_max",
            "CAIRN_RPC_CONNECTIONS_MAX",
        ),
        (
            "--rpc-ready-stall-ms",
            "rpc.ready_stall_ms",
            "CAIRN_RPC_READY_STALL_MS",
        ),
        ("--metrics-listen", "metrics.listen", "CAIRN_METRICS_LISTEN"),
        (
            "--timeout-commit-ms",
            "consensus.timeout_commit_ms",
            "CAIRN_CONSENSUS_TIMEOUT_COMMIT_MS",
        ),
        (
            "--wait-for-transactions",
            "consensus.wait_for_transactions",
            "CAIRN_CONSENSUS_WAIT_FOR_TRANSACTIONS",
        ),
        (
            "--block-interval-max-ms",
            "consensus.block_interval_max_ms",
            "CAIRN_CONSENSUS_BLOCK_INTERVAL_MAX_MS",
        ),
        (
            "--mempool-transactions-max",
            "mempool.transactions_max",
            "CAIRN_MEMPOOL_TRANSACTIONS_MAX",
        ),
        (
            "--mempool-bytes-max",
            "mempool.bytes_max",
            "CAIRN_MEMPOOL_BYTES_MAX",
        ),
        ("--log-format", "log.format", "CAIRN_LOG_FORMAT"),
        ("--log-filter", "log.filter", "CAIRN_LOG_FILTER"),
    ] {
        // The flag's own paragraph: from the flag to the next flag.
        let start = help
            .find(&format!("      {flag} "))
            .unwrap_or_else(|| panic!("{flag} missing: {help}"));
        let rest = &help[start + flag.len() + 6..];
        let end = rest.find("\n      -").unwrap_or(rest.len());
        let paragraph = rest[..end].split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            paragraph.contains(&format!("Config key `{key}`"))
                && paragraph.contains("default")
                && paragraph.contains(variable),
            "{flag}: {paragraph}"
        );
        // Words, not only the key.
        assert!(paragraph.split(' ').count() > 12, "{flag}: {paragraph}");
    }
}

#[test]
fn compact_works_on_a_home_and_explains_a_missing_one() {
    let home = init_home(&[]);
    let (code, stdout, stderr) = run(home.path(), &["compact"], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("compacted"), "{stdout}");
    let empty = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(empty.path(), &["compact"], &[]);
    assert_ne!(code, 0, "{stdout}");
    assert!(stderr.contains("is not a node home"), "{stderr}");
    assert!(stderr.contains("--home"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
