//! The real `cairnd` binary on broken homes: a missing or truncated
//! genesis, a `data` path that is a file, bad `CAIRN_*` variables and bad
//! `config.toml` keys each stop `cairnd start` with a non-zero exit, no
//! panic, and a message that names what is wrong (once) and what to do.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    path::Path,
    process::{Output, Stdio},
    time::{Duration, Instant},
};

use support::{cairnd, ChildGuard, DEADLINE};

/// A home from `cairnd init`, listening on loopback port 0 only.
fn init_home() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let output = cairnd()
        .arg("--home")
        .arg(home.path())
        .args([
            "init",
            "--rpc-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--p2p-listen",
            "/ip4/127.0.0.1/tcp/0",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    home
}

/// Runs `cairnd --home <home> args...` with `env`, expecting it to exit
/// within the deadline: (exit code, stderr).
fn run(home: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
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
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (output.status.code().unwrap_or(-1), stderr)
}

/// `cairnd start` that must fail: its stderr.
fn start_fails(home: &Path, env: &[(&str, &str)]) -> String {
    let (code, stderr) = run(home, &["start"], env);
    assert_ne!(code, 0, "{stderr}");
    stderr
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

#[test]
fn a_missing_genesis_says_where_to_put_it_once() {
    let home = init_home();
    std::fs::remove_file(home.path().join("config/genesis.json")).unwrap();
    let stderr = start_fails(home.path(), &[]);
    let config_dir = home.path().join("config");
    assert!(
        stderr.contains(&format!(
            "{} does not exist",
            config_dir.join("genesis.json").display()
        )) && stderr.contains(&format!(
            "Copy the chain's genesis.json into {}/",
            config_dir.display()
        )) && stderr.contains("--genesis FILE")
            && stderr.contains("cairnd init"),
        "{stderr}"
    );
    assert!(
        stderr.matches("No such file or directory").count() <= 1,
        "{stderr}"
    );
}

#[test]
fn a_truncated_genesis_is_named_and_explained() {
    let home = init_home();
    let path = home.path().join("config/genesis.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &text[..text.len() / 2]).unwrap();
    let stderr = start_fails(home.path(), &[]);
    assert!(
        stderr.contains(&path.display().to_string())
            && stderr.contains("not valid genesis JSON")
            && stderr.contains("truncated")
            && stderr.contains("copy the chain's genesis.json again"),
        "{stderr}"
    );
    // The position once, not twice.
    assert_eq!(stderr.matches("line ").count(), 1, "{stderr}");
}

#[test]
fn a_data_path_that_is_a_file_is_named_before_the_store_opens() {
    let home = init_home();
    let data = home.path().join("data");
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::write(&data, b"not a directory").unwrap();
    let stderr = start_fails(home.path(), &[]);
    assert!(
        stderr.contains(&format!(
            "{} is a file, not a directory; move it away",
            data.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("lock"), "{stderr}");
}

#[test]
fn a_bad_variable_is_named_by_the_variable() {
    let home = init_home();
    let stderr = start_fails(home.path(), &[("CAIRN_RPC_LISTEN", "not-an-address")]);
    assert!(
        stderr.contains("CAIRN_RPC_LISTEN")
            && stderr.contains("not-an-address")
            && stderr.contains("rpc.listen")
            && stderr.contains("unset CAIRN_RPC_LISTEN"),
        "{stderr}"
    );
    assert!(!stderr.contains("'--rpc-listen"), "{stderr}");

    let stderr = start_fails(home.path(), &[("CAIRN_P2P_MDNS", "sometimes")]);
    assert!(stderr.contains("CAIRN_P2P_MDNS"), "{stderr}");

    // A value that parses but is no multiaddr, found after parsing.
    let stderr = start_fails(home.path(), &[("CAIRN_P2P_LISTEN", "tcp:26656")]);
    assert!(
        first_line(&stderr).contains("CAIRN_P2P_LISTEN")
            && stderr.contains("p2p.listen")
            && stderr.contains("not a multiaddr"),
        "{stderr}"
    );
}

#[test]
fn a_bad_flag_is_still_named_by_the_flag() {
    let home = init_home();
    // The flag wins over the variable, and is the one reported.
    let (code, stderr) = run(
        home.path(),
        &["start", "--rpc-listen", "nowhere"],
        &[("CAIRN_RPC_LISTEN", "127.0.0.1:0")],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("--rpc-listen"), "{stderr}");
    assert!(!stderr.contains("CAIRN_RPC_LISTEN"), "{stderr}");

    let (code, stderr) = run(
        home.path(),
        &["start", "--bootstrap", "/ip4/127.0.0.1/tcp/1"],
        &[],
    );
    assert_ne!(code, 0);
    assert!(
        first_line(&stderr).contains("--bootstrap") && stderr.contains("/p2p/<peer id>"),
        "{stderr}"
    );
}

/// Rewrites `config.toml` with `edit` and returns `cairnd start`'s stderr.
fn start_with_config(edit: impl Fn(String) -> String) -> String {
    let home = init_home();
    let path = home.path().join("config/config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(text)).unwrap();
    let stderr = start_fails(home.path(), &[]);
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    stderr
}

#[test]
fn config_file_errors_name_the_key_on_their_first_line() {
    let stderr = start_with_config(|text| text.replace("peers_target", "peer_target"));
    assert!(
        first_line(&stderr).contains("`p2p.peer_target`"),
        "{stderr}"
    );

    let stderr =
        start_with_config(|text| text.replace("peers_target = 16", "peers_target = \"many\""));
    assert!(
        first_line(&stderr).contains("`p2p.peers_target`"),
        "{stderr}"
    );

    let stderr =
        start_with_config(|text| text.replace("listen = \"127.0.0.1:0\"", "listen = \"nowhere\""));
    assert!(first_line(&stderr).contains("`rpc.listen`"), "{stderr}");

    let stderr = start_with_config(|text| text.replace("mdns = false\n", ""));
    assert!(first_line(&stderr).contains("`p2p.mdns`"), "{stderr}");

    let stderr = start_with_config(|text| text.replace("format = \"plain\"", "format = \"yaml\""));
    assert!(first_line(&stderr).contains("`log.format`"), "{stderr}");

    let stderr = start_with_config(|text| {
        text.replace("[mempool]", "[mempool")
            .replace("[log]", "[log")
    });
    assert!(first_line(&stderr).contains("line "), "{stderr}");

    // A multiaddr that parses as a string, checked before start-up.
    let stderr =
        start_with_config(|text| text.replace("\"/ip4/127.0.0.1/tcp/0\"", "\"127.0.0.1:26656\""));
    assert!(
        first_line(&stderr).contains("`p2p.listen`") && stderr.contains("not a multiaddr"),
        "{stderr}"
    );
}

#[test]
fn a_home_without_config_says_to_init() {
    let home = tempfile::tempdir().unwrap();
    let stderr = start_fails(home.path(), &[]);
    assert!(stderr.contains("cairnd init"), "{stderr}");
}

#[test]
fn a_dev_home_whose_data_is_a_file_is_named() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    std::fs::write(&data, b"not a directory").unwrap();
    let stderr = start_fails_with(home.path(), &["start", "--dev"]);
    assert!(
        stderr.contains(&format!(
            "{} is a file, not a directory; move it away",
            data.display()
        )),
        "{stderr}"
    );
}

fn start_fails_with(home: &Path, args: &[&str]) -> String {
    let (code, stderr) = run(home, args, &[]);
    assert_ne!(code, 0, "{stderr}");
    stderr
}
