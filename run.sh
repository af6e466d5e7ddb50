#!/usr/bin/env bash
# The two entry points of the README, each doing its own set-up on a fresh
# Debian machine with the Rust toolchain:
#   ./run.sh devnet [cairn devnet up flags...]   start a local 4-validator devnet
#   ./run.sh test                                 run the whole test suite
set -euo pipefail
cd "$(dirname "$0")"

# RocksDB's Rust bindings are generated with bindgen, which loads libclang
# through clang-sys. clang-sys takes `LIBCLANG_PATH` when it is set, and
# otherwise only a file named `libclang.so` or `libclang-<version>.so`;
# `libclang-cpp.so.*` (a different library, installed on many machines by
# other packages) does not count, nor does a bare `libclang.so.1`.
#
# find_libclang DIR... prints the first libclang that clang-sys would load
# from those directories (or from `LIBCLANG_PATH`) and returns 0, or prints
# nothing and returns 1. The test `tests/tests/setup.rs` runs it against
# fake trees through `./run.sh detect-libclang DIR...`.
is_libclang_name() {
    case "$1" in
        libclang.so) return 0 ;;
        libclang-cpp*) return 1 ;;
        libclang-[0-9]*.so)
            # libclang-<version>.so: the version is digits and dots only.
            local version="${1#libclang-}"
            version="${version%.so}"
            [[ "$version" =~ ^[0-9][0-9.]*$ ]]
            return
            ;;
        *) return 1 ;;
    esac
}

find_libclang() {
    local candidate directory
    if [ -n "${LIBCLANG_PATH:-}" ]; then
        # clang-sys accepts the directory holding the library or the file.
        if [ -f "$LIBCLANG_PATH" ] && is_libclang_name "$(basename "$LIBCLANG_PATH")"; then
            echo "$LIBCLANG_PATH"
            return 0
        fi
        if [ -d "$LIBCLANG_PATH" ]; then
            for candidate in "$LIBCLANG_PATH"/*; do
                if [ -e "$candidate" ] && is_libclang_name "$(basename "$candidate")"; then
                    echo "$candidate"
                    return 0
                fi
            done
        fi
        return 1
    fi
    for directory in "$@"; do
        [ -d "$directory" ] || continue
        for candidate in "$directory"/libclang*.so; do
            # -e follows symbolic links: a dangling libclang.so does not count.
            if [ -e "$candidate" ] && is_libclang_name "$(basename "$candidate")"; then
                echo "$candidate"
                return 0
            fi
        done
    done
    return 1
}

# The directories clang-sys searches on Debian, plus those of every libclang
# the dynamic loader's cache knows (`ldconfig -p`).
libclang_search_directories() {
    local directory
    for directory in /usr/lib/llvm-*/lib /usr/lib/x86_64-linux-gnu \
        /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib /usr/local/lib; do
        echo "$directory"
    done
    if command -v ldconfig >/dev/null 2>&1 || [ -x /sbin/ldconfig ]; then
        { ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null || true; } \
            | awk '$1 ~ /^libclang/ && $NF ~ /^\// { print $NF }' \
            | while read -r library; do
                if is_libclang_name "$(basename "$library")"; then dirname "$library"; fi
            done
    fi
}

ensure_libclang() {
    local directories=()
    mapfile -t directories < <(libclang_search_directories)
    if find_libclang "${directories[@]}" >/dev/null; then
        return 0
    fi
    if [ -n "${LIBCLANG_PATH:-}" ]; then
        echo "run.sh: LIBCLANG_PATH=$LIBCLANG_PATH holds no libclang.so or libclang-<version>.so;" >&2
        echo "    point it at the directory of libclang, or unset it to use the system's" >&2
        exit 1
    fi
    if [ "$(id -u)" -eq 0 ]; then
        echo "run.sh: libclang is missing (RocksDB's bindings need it); installing libclang-dev and clang" >&2
        apt_install libclang-dev clang
        mapfile -t directories < <(libclang_search_directories)
        if ! find_libclang "${directories[@]}" >/dev/null; then
            echo "run.sh: libclang-dev is installed but no libclang.so was found; set LIBCLANG_PATH" >&2
            exit 1
        fi
    else
        echo "run.sh: libclang is missing; RocksDB's bindings need it. Install it with:" >&2
        echo "    sudo apt-get install -y libclang-dev clang" >&2
        exit 1
    fi
}

# apt_install PACKAGE...: installs Debian packages (as root), quietly, and
# says which command failed if it does.
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get update -qq || ! apt-get install -y -qq "$@" >/dev/null; then
        echo "run.sh: 'apt-get install -y $*' failed; run it by hand and retry" >&2
        exit 1
    fi
}

# ensure_command COMMAND PACKAGE WHY: installs PACKAGE (as root) when
# COMMAND is not on PATH, or prints the install command otherwise.
ensure_command() {
    local command_wanted="$1" package="$2" why="$3"
    if command -v "$command_wanted" >/dev/null 2>&1; then
        return 0
    fi
    if [ "$(id -u)" -eq 0 ]; then
        echo "run.sh: $command_wanted is missing ($why); installing $package" >&2
        apt_install "$package"
    else
        echo "run.sh: $command_wanted is missing ($why). Install it with:" >&2
        echo "    sudo apt-get install -y $package" >&2
        exit 1
    fi
}

# The mDNS test runs two nodes inside a network namespace it creates with
# `unshare -n` and `ip` (iproute2), so multicast never leaves the test; the
# namespace-host tests (node/tests/hosts.rs) build hosts with `ip netns`,
# veth pairs and a bridge, and shape links with `tc netem` (iproute2).
ensure_iproute2() {
    if command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1 \
        && command -v unshare >/dev/null 2>&1; then
        return 0
    fi
    if [ "$(id -u)" -eq 0 ]; then
        echo "run.sh: ip/tc/unshare are missing (the mDNS and namespace-host tests need them); installing iproute2 and util-linux" >&2
        apt_install iproute2 util-linux
    else
        echo "run.sh: the mDNS and namespace-host tests need ip, tc and unshare, and root. Install them with:" >&2
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
        # The README's tour reads the RPC with curl.
        ensure_command curl curl "the README's tour uses it to read the RPC"
        cargo build --workspace --bins
        target_dir="${CARGO_TARGET_DIR:-target}"
        exec "$target_dir/debug/cairn" devnet up "$@"
        ;;
    detect-libclang)
        # For tests/tests/setup.rs: "present <path>" or "missing", searching
        # only the given directories (and LIBCLANG_PATH, when set).
        if library=$(find_libclang "$@"); then
            echo "present $library"
        else
            echo "missing"
            exit 1
        fi
        ;;
    *)
        echo "usage: ./run.sh devnet [flags]   start a local 4-validator devnet" >&2
        echo "       ./run.sh test             run every test" >&2
        exit 2
        ;;
esac
