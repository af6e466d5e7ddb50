#!/usr/bin/env bash
# Disk use of a pruning node over a long run (BENCHMARKS.md, pruning): one
# validator with pruning.keep_blocks = KEEP (default 1000) under
# `cairn bench` at RATE transfers/s (default 2000) for SECONDS (default
# 900: past the point where RocksDB's log reaches its 512 MiB cap and is
# dropped), the data directory sampled every 30 s. Prints one line per
# sample: seconds, height, lowest height, data dir bytes, table (*.sst)
# bytes, log (*.log) bytes. Ports 26910-26912 on 127.0.0.1; a temporary
# folder under /var/tmp, deleted at the end. Build first:
# cargo build --workspace --bins
#   KEEP=0 bash tests/bench/pruning_disk.sh     # the same without pruning
set -u
B="$(cd "$(dirname "$0")/../.." && pwd)/target/debug"
[ -n "${CARGO_TARGET_DIR:-}" ] && B="$CARGO_TARGET_DIR/debug"
[ -x "$B/cairnd" ] || { echo "no $B/cairnd: cargo build --workspace --bins first" >&2; exit 1; }
KEEP=${KEEP:-1000}; RATE=${RATE:-2000}; SECONDS_RUN=${SECONDS_RUN:-900}
work=$(mktemp -d /var/tmp/cairn-prune.XXXXXX)
trap '"$B/cairn" devnet down --dir "$work/dnP" > /dev/null 2>&1; kill $bench 2>/dev/null; rm -rf "$work"' EXIT
bench=""
cd "$work"
export CAIRN_KEYRING_DIR="$work/keys"
$B/cairn devnet up --validators 1 --dir dnP --base-port 26910 --chain-id pb --detach --bench-accounts 2000 > up.log 2>&1 || { cat up.log; exit 1; }
$B/cairn devnet down --dir dnP > /dev/null 2>&1
sed -i "s/^keep_blocks = .*/keep_blocks = $KEEP/" dnP/v0/config/config.toml
grep -E "^keep_blocks" dnP/v0/config/config.toml
$B/cairn devnet up --dir dnP --detach > /dev/null 2>&1 || exit 1
RPC=http://127.0.0.1:26911
$B/cairn bench --node $RPC --keys-dir dnP/bench-keys --duration $SECONDS_RUN --rate $RATE --batch 100 --settle 20s --json > bench.json 2> bench.err &
bench=$!
data=dnP/v0/data
bytes() { find $data -name "$1" -printf '%s\n' 2>/dev/null | awk '{s+=$1} END {print s+0}'; }
echo "seconds height lowest data_bytes sst_bytes log_bytes"
t0=$(date +%s)
while kill -0 $bench 2>/dev/null; do
  st=$(curl -s $RPC/status | python3 -c "import json,sys; s=json.load(sys.stdin); print(s['latest_height'], s.get('lowest_height'))" 2>/dev/null || echo "? ?")
  echo "$(( $(date +%s) - t0 )) $st $(du -sb $data | cut -f1) $(bytes '*.sst') $(bytes '*.log')"
  sleep 30
done
wait $bench
python3 -c "import json; r=json.load(open('bench.json')); print('bench:', {k: r[k] for k in ('committed','seconds','committed_per_second','blocks','latency_ms')})" 2>/dev/null || cat bench.err
