//! The README's set-up, checked without a fresh machine: `run.sh`'s
//! libclang detection runs against fake library trees, the way clang-sys
//! (RocksDB's bindgen) looks for libclang; and the built binaries carry no
//! test-only switch.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

/// This package's directory. Read at run time (cargo sets it for the test
/// process) rather than baked in at build time: a build folder shared by
/// clones at different paths can run a test binary built in another clone.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// The cargo running the tests (the same reasoning as [`manifest_dir`]).
fn cargo() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from(env!("CARGO")), PathBuf::from)
}

/// What `./run.sh detect-libclang <dirs>` says: `present <path>` or
/// `missing`, with `LIBCLANG_PATH` set to `libclang_path` (or unset).
fn detect(directories: &[&Path], libclang_path: Option<&Path>) -> String {
    let run_sh = manifest_dir().join("../run.sh");
    let mut command = Command::new("bash");
    command.arg(run_sh).arg("detect-libclang").args(directories);
    command.env_remove("LIBCLANG_PATH");
    if let Some(path) = libclang_path {
        command.env("LIBCLANG_PATH", path);
    }
    let output = command.output().expect("bash runs run.sh");
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert_eq!(
        output.status.success(),
        stdout.starts_with("present"),
        "exit status matches the verdict: {stdout}"
    );
    stdout
}

fn tree(files: &[&str]) -> tempfile::TempDir {
    let directory = tempfile::tempdir().unwrap();
    for file in files {
        fs::write(directory.path().join(file), b"not really a library").unwrap();
    }
    directory
}

/// A fresh machine of this kind: only `libclang-cpp` (another library)
/// is installed, which clang-sys does not load.
#[test]
fn libclang_cpp_alone_is_missing() {
    let llvm = tree(&["libclang-cpp.so.14", "libclang-cpp.so"]);
    let multiarch = tree(&["libclang-cpp.so.14", "libclang.so.1", "libclangBasic.a"]);
    assert_eq!(detect(&[llvm.path(), multiarch.path()], None), "missing");
}

#[test]
fn versioned_libclang_is_present() {
    let empty = tree(&[]);
    let llvm = tree(&["libclang-cpp.so.14", "libclang-14.so"]);
    let verdict = detect(&[empty.path(), llvm.path()], None);
    assert_eq!(
        verdict,
        format!("present {}", llvm.path().join("libclang-14.so").display())
    );
    let dotted = tree(&["libclang-14.0.6.so"]);
    assert!(detect(&[dotted.path()], None).starts_with("present"));
}

#[test]
fn plain_libclang_is_present_and_a_dangling_link_is_not() {
    let llvm = tree(&["libclang.so"]);
    assert!(detect(&[llvm.path()], None).starts_with("present"));
    let dangling = tree(&[]);
    std::os::unix::fs::symlink(
        "/nonexistent/libclang.so.1",
        dangling.path().join("libclang.so"),
    )
    .unwrap();
    assert_eq!(detect(&[dangling.path()], None), "missing");
}

/// `LIBCLANG_PATH` wins over the search directories, as in clang-sys: a
/// directory or the file itself.
#[test]
fn libclang_path_is_honoured() {
    let searched = tree(&["libclang.so"]);
    let pointed = tree(&["libclang-cpp.so.14"]);
    assert_eq!(detect(&[searched.path()], Some(pointed.path())), "missing");
    let good = tree(&["libclang-15.so"]);
    assert!(detect(&[], Some(good.path())).starts_with("present"));
    assert!(detect(&[], Some(&good.path().join("libclang-15.so"))).starts_with("present"));
}

/// The features cargo resolves for cairn-consensus over the workspace, with
/// the given dependency edges (`normal,build` is what `cargo build` and
/// `cargo install` of the binaries resolve; adding `dev` is a test build).
fn consensus_features(edges: &str) -> String {
    let workspace = manifest_dir().join("..");
    let output = Command::new(cargo())
        .args(["tree", "--workspace", "--offline", "--edges", edges])
        .args(["--invert", "cairn-consensus", "--depth", "0"])
        .args(["--format", "{p} features=[{f}]"])
        .current_dir(workspace)
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("cairn-consensus"),
        "cargo tree said: {stdout}"
    );
    stdout
}

/// The consensus rule switches that prove the simulator's checkers can
/// fail (`fault-injection`) are not compiled into a built `cairnd`: a build
/// of the workspace leaves the feature off, and only the test build (the
/// simulator's dev-dependency) turns it on, which shows the check can fail.
#[test]
fn built_binaries_have_no_fault_injection_switch() {
    let built = consensus_features("normal,build");
    assert!(
        !built.contains("fault-injection"),
        "a workspace build enables fault-injection: {built}"
    );
    let tested = consensus_features("normal,build,dev");
    assert!(
        tested.contains("fault-injection"),
        "the simulator's tests lost their switches: {tested}"
    );
}
