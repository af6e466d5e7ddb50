#!/usr/bin/env bash
# The two entry points of the README, each doing its own set-up on a fresh
# Debian machine with the Rust toolchain:
#   ./run.sh devnet [cairn devnet up flags...]   start a local 4-validator devnet
#   ./run.sh test                                 run the whole test suite
set -euo pipefail
cd "$(dirname "$0")"

# RocksDB's Rust bindings are generated with bindgen, which needs libclang.
ensure_libclang() {
    if compgen -G "/usr/lib/llvm-*/lib/libclang*.so*" >/dev/null \
        || compgen -G "/usr/lib/x86_64-linux-gnu/libclang*.so*" >/dev/null \
        || compgen -G "/usr/lib/aarch64-linux-gnu/libclang*.so*" >/dev/null; then
        return 0
    fi
    if [ "$(id -u)" -eq 0 ]; then
        echo "run.sh: libclang is missing (RocksDB's bindings need it); installing libclang-dev and clang" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq libclang-dev clang >/dev/null
    else
        echo "run.sh: libclang is missing; RocksDB's bindings need it. Install it with:" >&2
        echo "    sudo apt-get install -y libclang-dev clang" >&2
        exit 1
    fi
}

# The mDNS test runs two nodes inside a network namespace it creates with
# `unshare -n` and `ip` (iproute2), so multicast never leaves the test.
ensure_iproute2() {
    if command -v ip >/dev/null 2>&1 && command -v unshare >/dev/null 2>&1; then
        return 0
    fi
    if [ "$(id -u)" -eq 0 ]; then
        echo "run.sh: ip/unshare are missing (the mDNS test needs them); installing iproute2 and util-linux" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq iproute2 util-linux >/dev/null
    else
        echo "run.sh: the mDNS test needs ip and unshare, and root. Install them with:" >&2
        echo "    sudo apt-get install -y iproute2 util-linux" >&2
        exit 1
    fi
}

ensure_cargo() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "run.sh: cargo is not on PATH; install the Rust toolchain (https://rustup.rs) first" >&2
        exit 1
    fi
}

command_name="${1:-}"
shift || true
case "$command_name" in
    test)
        ensure_cargo
        ensure_libclang
        ensure_iproute2
        # The end-to-end tests start the real binaries: build them first.
        cargo build --workspace --bins
        cargo test --workspace --no-fail-fast "$@"
        ;;
    devnet)
        ensure_cargo
        ensure_libclang
        cargo build --workspace --bins
        target_dir="${CARGO_TARGET_DIR:-target}"
        exec "$target_dir/debug/cairn" devnet up "$@"
        ;;
    *)
        echo "usage: ./run.sh devnet [flags]   start a local 4-validator devnet" >&2
        echo "       ./run.sh test             run every test" >&2
        exit 2
        ;;
esac
