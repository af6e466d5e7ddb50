#!/usr/bin/env bash
# Join time (BENCHMARKS.md): block sync from genesis against state sync, on
# a one-validator chain of 10,000+ empty blocks (no transactions, blocks
# back to back, a snapshot every 1,000 heights). Uses ports 26900-26902 on
# 127.0.0.1 and a temporary folder. Build first: cargo build --workspace --bins
set -u
B="$(cd "$(dirname "$0")/../.." && pwd)/target/debug"
[ -n "${CARGO_TARGET_DIR:-}" ] && B="$CARGO_TARGET_DIR/debug"
[ -x "$B/cairnd" ] || { echo "no $B/cairnd: cargo build --workspace --bins first" >&2; exit 1; }
work=$(mktemp -d); trap '"$B/cairn" devnet down --dir "$work/j1" > /dev/null 2>&1; rm -rf "$work"' EXIT
cd "$work"
export CAIRN_KEYRING_DIR="$work/keys"
$B/cairn devnet up --validators 1 --dir j1 --base-port 26900 --chain-id joinx --detach > /dev/null 2>&1 || { echo up failed; exit 1; }
$B/cairn devnet down --dir j1 > /dev/null 2>&1
f=j1/v0/config/config.toml
sed -i 's/^wait_for_transactions = .*/wait_for_transactions = false/; s/^timeout_commit_ms = .*/timeout_commit_ms = 0/' $f
grep -q "^\[snapshot\]" $f && sed -i '/^\[snapshot\]/,/^\[/ s/^interval = .*/interval = 1000/' $f
grep -E "wait_for_transactions|timeout_commit_ms|^interval" $f
$B/cairn devnet up --dir j1 --detach > /dev/null 2>&1
RPC=http://127.0.0.1:26901
h() { curl -s $1/status | python3 -c "import json,sys; print(json.load(sys.stdin)['latest_height'])" 2>/dev/null || echo 0; }
start=$(date +%s)
while [ "$(h $RPC)" -lt 10000 ]; do sleep 5; done
echo "10,000 blocks in $(( $(date +%s) - start )) s; snapshots: $(curl -s $RPC/status | python3 -c "import json,sys; print(json.load(sys.stdin).get('snapshot_heights'))")"
BOOT=$(python3 -c "import json; print(json.load(open('j1/devnet.json'))['nodes'][0]['p2p'])")
for mode in full snap; do
  home=j$mode
  $B/cairnd --home $home init --mode full --genesis j1/genesis.json > /dev/null 2>&1
  extra=""; [ $mode = snap ] && extra="--state-sync"
  target=$(h $RPC)
  t0=$(date +%s.%N)
  $B/cairnd --home $home start --bootstrap $BOOT --rpc-listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --p2p-listen /ip4/127.0.0.1/tcp/0 $extra > $home.log 2>&1 &
  pid=$!
  until [ -f $home/addresses.json ]; do sleep 0.2; done
  MY=$(python3 -c "import json; print(json.load(open('$home/addresses.json'))['rpc'])")
  while [ "$(h $MY)" -lt "$target" ]; do sleep 0.2; done
  t1=$(date +%s.%N)
  echo "$mode: reached height $target (the tip when it started) in $(python3 -c "print(round($t1-$t0,1))") s; now $(h $MY) vs tip $(h $RPC)"
  kill $pid; wait $pid 2>/dev/null
done
grep -E "state sync: (restored|kept|the header)" jsnap.log | head -3 | cut -c1-250
$B/cairn devnet down --dir j1 > /dev/null 2>&1
