#!/usr/bin/env bash
# Join time on a chain of 1,000,000 funded accounts and 10,000+ blocks
# (BENCHMARKS.md, join time): block sync from genesis against state sync,
# same chain, same run.
#
# The chain: a one-validator devnet (`--bench-accounts 4000`,
# timeout_commit_ms = 0, a snapshot every 1,000 heights). fund_accounts.py
# creates ACCOUNTS (default 1,000,000) new accounts by real signed
# transfers from the 4,000 bench keys through POST /txs; then the
# validator makes empty blocks back to back (wait_for_transactions =
# false) until the tip passes BLOCKS (default 10,000), and is restarted
# with wait_for_transactions = true so that the tip stands still while
# the nodes join (the validator makes no block without a transaction).
#
# Then, one after the other, a new full node (the same genesis, the
# validator as its one bootstrap peer) joins by: block sync from genesis;
# state sync trusting the genesis (headers walked from height 1); state
# sync with --trust-height/--trust-hash of the newest snapshot height (as
# given out of band). Each is timed from its start to the tip. The phases
# come from the joining node's log.
#
# Before the empty blocks, `cairn bench` adds HISTORY_TXS (default
# 10,000,000) transfers among the bench accounts, so the chain has the
# history of a chain that ran a while, not only the fewest transfers that
# make its state (HISTORY_TXS=0: the chain of the first runs).
#
# Ports 26900-26902 on 127.0.0.1; a temporary folder under /var/tmp
# (about 3 GB at 1M accounts), deleted at the end. Needs python3 with the
# `cryptography` package. Build first: cargo build --workspace --bins
#   ACCOUNTS=20000 BLOCKS=2000 HISTORY_TXS=50000 bash tests/bench/join_time_1m.sh   # a quick try
#   MODES="full snap trust" (default), add snapbefore with BEFORE=path/to/cairnd
#   to time another build's state sync on the same chain; LOGS_DIR=dir keeps
#   the joining nodes' logs.
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
B="$HERE/../../target/debug"
[ -n "${CARGO_TARGET_DIR:-}" ] && B="$CARGO_TARGET_DIR/debug"
[ -x "$B/cairnd" ] || { echo "no $B/cairnd: cargo build --workspace --bins first" >&2; exit 1; }
ACCOUNTS=${ACCOUNTS:-1000000}; BLOCKS=${BLOCKS:-10000}; MODES=${MODES:-"full snap trust"}
HISTORY_TXS=${HISTORY_TXS:-10000000}
work=$(mktemp -d /var/tmp/cairn-join.XXXXXX)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2> /dev/null && wait "$pid" 2> /dev/null
  "$B/cairn" devnet down --dir "$work/j1" > /dev/null 2>&1
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
export CAIRN_KEYRING_DIR="$work/keys"
$B/cairn devnet up --validators 1 --dir j1 --base-port 26900 --chain-id joinm --detach --bench-accounts 4000 > up.log 2>&1 || { cat up.log; exit 1; }
$B/cairn devnet down --dir j1 > /dev/null 2>&1
f=j1/v0/config/config.toml
sed -i 's/^timeout_commit_ms = .*/timeout_commit_ms = 0/' $f
sed -i '/^\[snapshot\]/,/^\[/ s/^interval = .*/interval = 1000/' $f
$B/cairn devnet up --dir j1 --detach > /dev/null 2>&1 || exit 1
RPC=http://127.0.0.1:26901
status() { curl -s --max-time 5 $1/status | python3 -c "import json,sys; s=json.load(sys.stdin); print($2)" 2> /dev/null; }
h() { status $1 "s['latest_height']" || echo 0; }
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
t=$(date +%s.%N)
python3 "$HERE/fund_accounts.py" --node $RPC --keys-dir j1/bench-keys --chain-id joinm --accounts $ACCOUNTS || exit 1
echo "funding: $(python3 -c "print(round($(date +%s.%N)-$t,1))") s"
# History: HISTORY_TXS more transfers among the bench accounts (cairn
# bench, as fast as the validator takes them, in rounds of at most
# 2,000,000, the most one run of cairn bench signs), so that the chain
# carries the history a chain with this state would have.
left=$HISTORY_TXS
t=$(date +%s.%N)
while [ "$left" -gt 0 ]; do
  round=$(( left < 2000000 ? left : 2000000 ))
  $B/cairn bench --node $RPC --keys-dir j1/bench-keys --txs $round --rate max --batch 512 --settle 120s --json > history.json 2> history.err || { tail -5 history.err; head -c 500 history.json; exit 1; }
  python3 -c "import json; r=json.load(open('history.json')); print('history round:', r.get('committed'), 'committed of', r.get('sent', r.get('submitted')), 'at', round(r.get('committed_per_second', 0)), 'tx/s')" 2> /dev/null || head -c 300 history.json
  left=$(( left - round ))
done
[ "$HISTORY_TXS" -gt 0 ] && echo "history ($HISTORY_TXS transfers): $(python3 -c "print(round($(date +%s.%N)-$t,1))") s, tip $(h $RPC)"
$B/cairn devnet down --dir j1 > /dev/null 2>&1
sed -i 's/^wait_for_transactions = .*/wait_for_transactions = false/' $f
$B/cairn devnet up --dir j1 --detach > /dev/null 2>&1 || exit 1
t=$(date +%s.%N)
while [ "$(h $RPC)" -lt "$BLOCKS" ]; do sleep 2; done
echo "empty blocks to $BLOCKS: $(python3 -c "print(round($(date +%s.%N)-$t,1))") s"
# Wait for the snapshot of the last full thousand to be taken.
want=$(( $(h $RPC) / 1000 * 1000 ))
until status $RPC "s.get('snapshot_heights')" | grep -q "$want"; do sleep 1; done
$B/cairn devnet down --dir j1 > /dev/null 2>&1
sed -i 's/^wait_for_transactions = .*/wait_for_transactions = true/' $f
$B/cairn devnet up --dir j1 --detach > /dev/null 2>&1 || exit 1
sleep 2
tip=$(h $RPC)
snaps=$(status $RPC "s.get('snapshot_heights')")
echo "chain: tip $tip, snapshots $snaps, data dir $(du -sh j1/v0/data | cut -f1), snapshot dir $(du -sh j1/v0/snapshots 2> /dev/null | cut -f1)"
newest=$(python3 -c "print(max($snaps))")
trust_hash=$(curl -s $RPC/block/$newest | python3 -c "import json,sys; print(json.load(sys.stdin)['hash'])")
BOOT=$(python3 -c "import json; print(json.load(open('j1/devnet.json'))['nodes'][0]['p2p'])")
for mode in $MODES; do
  home=j$mode
  $B/cairnd --home $home init --mode full --genesis j1/genesis.json > /dev/null 2>&1
  extra=""
  [ $mode = snap ] && extra="--state-sync"
  [ $mode = trust ] && extra="--state-sync --trust-height $newest --trust-hash $trust_hash"
  D=$B/cairnd
  # snapbefore: state sync by another build (BEFORE=path/to/cairnd), e.g.
  # the one before a change, on the same chain.
  [ $mode = snapbefore ] && { extra="--state-sync"; D=${BEFORE:?BEFORE=path of the other cairnd}; }
  load=$(cut -d' ' -f1 /proc/loadavg)
  t0=$(date +%s.%N)
  $D --home $home start --bootstrap $BOOT --rpc-listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --p2p-listen /ip4/127.0.0.1/tcp/0 $extra > $home.log 2>&1 &
  pid=$!
  until [ -f $home/addresses.json ]; do sleep 0.1; done
  MY=$(python3 -c "import json; print(json.load(open('$home/addresses.json'))['rpc'])")
  while [ "$(h $MY)" -lt "$tip" ]; do
    kill -0 $pid 2> /dev/null || { echo "$mode: the node stopped"; tail -5 $home.log; exit 1; }
    sleep 0.1
  done
  t1=$(date +%s.%N)
  rss=$(grep VmHWM /proc/$pid/status | awk '{print $2}')
  echo "$mode: at the tip ($tip) in $(python3 -c "print(round($t1-$t0,2))") s (load average $load at its start; peak RSS $((rss / 1024)) MiB)"
  kill $pid; wait $pid 2> /dev/null; pid=""
  [ -n "${LOGS_DIR:-}" ] && cp $home.log "$LOGS_DIR/"
  # Phases, from the log's timestamps (seconds since the node started).
  python3 - "$home.log" "$t0" << 'EOF'
import re, sys, datetime
start = float(sys.argv[2])
marks = [("started", "cairnd \\S+ started"), ("snapshot chosen (offer wait ends)", "state sync: (restoring|only one peer|no snapshot is offered)"),
         ("header trusted (walk ends)", "header of the snapshot height is trusted"), ("last chunk written", r"fetching chunks.*chunks_done=(\d+) chunks_total=\1\b"), ("state restored and root checked", "restored the state"),
         ("evidence window kept", "kept the blocks of the evidence window|could not keep the blocks"), ("block sync finished", "sync finished")]
lines = open(sys.argv[1], errors="replace").read().splitlines()
for name, pattern in marks:
    for line in lines:
        clean = re.sub(r"\x1b\[[0-9;]*m", "", line)
        if re.search(pattern, clean):
            stamp = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?)Z?", clean)
            at = ""
            if stamp:
                moment = datetime.datetime.fromisoformat(stamp.group(1)[:26]).replace(tzinfo=datetime.timezone.utc).timestamp()
                at = f"{moment - start:7.2f} s"
            fields = " ".join(re.findall(r"\b(?:seconds|blocks|height|chunks|peers|chunks_seconds|root_check_seconds|reload_seconds)=\S+", clean))
            print(f"  {at:>9}  {name}: {fields}")
            break
EOF
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
