#!/usr/bin/env bash
# Snapshot creation at 1,000,000 accounts, and its effect on the block
# interval under load (BENCHMARKS.md, snapshots). One validator
# (`--bench-accounts 4000`); fund_accounts.py creates ACCOUNTS (default
# 1,000,000) new accounts by real transfers. Then RUNS (default "on off on
# off") loads of `cairn bench` at RATE transfers/s (default 2000, batches
# of 100) for DURATION seconds (default 60), each on a freshly restarted
# validator: "on" with a snapshot every INTERVAL heights (default 100,
# so that several are taken during the load), "off" with snapshots off.
# Per run: blocks, block interval mean / p50 / p99 / max (from the block
# headers' times), transfer latency p50 / p99 (cairn bench), the
# validator's peak RSS (VmHWM; the process is restarted for each run),
# and the snapshots taken with their times (the node's log).
# Ports 26920-26922 on 127.0.0.1; a temporary folder under /var/tmp,
# deleted at the end. Needs python3 with `cryptography`. Build first:
# cargo build --workspace --bins
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
B="$HERE/../../target/debug"
[ -n "${CARGO_TARGET_DIR:-}" ] && B="$CARGO_TARGET_DIR/debug"
[ -x "$B/cairnd" ] || { echo "no $B/cairnd: cargo build --workspace --bins first" >&2; exit 1; }
ACCOUNTS=${ACCOUNTS:-1000000}; RUNS=${RUNS:-"on off on off"}; RATE=${RATE:-2000}
DURATION=${DURATION:-60}; INTERVAL=${INTERVAL:-100}
# REUSE=dir: the folder a run with KEEP_WORK=1 left (its funded chain).
work=${REUSE:-$(mktemp -d /var/tmp/cairn-snapload.XXXXXX)}
cleanup() {
  "$B/cairn" devnet down --dir "$work/s1" > /dev/null 2>&1
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
export CAIRN_KEYRING_DIR="$work/keys"
RPC=http://127.0.0.1:26921
f=s1/v0/config/config.toml
if [ -z "${REUSE:-}" ]; then
  $B/cairn devnet up --validators 1 --dir s1 --base-port 26920 --chain-id snapl --detach --bench-accounts 4000 > up.log 2>&1 || { cat up.log; exit 1; }
  python3 "$HERE/fund_accounts.py" --node $RPC --keys-dir s1/bench-keys --chain-id snapl --accounts $ACCOUNTS || exit 1
fi
h() { curl -s --max-time 5 $RPC/status | python3 -c "import json,sys; print(json.load(sys.stdin)['latest_height'])" 2> /dev/null || echo 0; }
for run in $RUNS; do
  $B/cairn devnet down --dir s1 > /dev/null 2>&1
  if [ $run = off ]; then i=0; else i=$INTERVAL; fi
  # onold: snapshots on, with another build (OLD=its folder of cairn and
  # cairnd), e.g. the one before a change, on the same chain.
  BB=$B; [ $run = onold ] && BB=${OLD:?OLD=folder of the other build}
  sed -i "/^\[snapshot\]/,/^\[/ s/^interval = .*/interval = $i/" $f
  : > s1/v0/node.log
  $BB/cairn devnet up --dir s1 --detach > /dev/null 2>&1 || exit 1
  pid=$(python3 -c "import json; print(json.load(open('s1/devnet.json'))['nodes'][0]['pid'])")
  sleep 2
  load=$(cut -d' ' -f1 /proc/loadavg)
  from=$(h)
  $B/cairn bench --node $RPC --keys-dir s1/bench-keys --duration $DURATION --rate $RATE --batch 100 --settle 20s --json > bench-$run.json 2> bench.err || { cat bench.err; exit 1; }
  to=$(h)
  rss=$(grep VmHWM /proc/$pid/status | awk '{print $2}')
  python3 - "$RPC" "$from" "$to" "bench-$run.json" s1/v0/node.log "$run" "$rss" "$load" << 'EOF'
import datetime, json, re, sys, urllib.request
rpc, first, last, report, log, run, rss, load = sys.argv[1:]
times = []
for height in range(int(first) + 1, int(last) + 1):
    with urllib.request.urlopen(f"{rpc}/header/{height}") as response:
        header = json.load(response)
    times.append(header.get("header", header)["time"])
gaps = sorted(b - a for a, b in zip(times, times[1:]))
pick = lambda q: gaps[min(len(gaps) - 1, int(q * len(gaps)))]
bench = json.load(open(report))
snaps, windows = [], []
for line in open(log, errors="replace"):
    found = re.search(r"^(\S+?)Z?\s.*took a state snapshot.*?seconds=([0-9.]+)", re.sub(r"\x1b\[[0-9;]*m", "", line))
    if found:
        end = datetime.datetime.fromisoformat(found.group(1)[:26]).replace(tzinfo=datetime.timezone.utc).timestamp() * 1000
        snaps.append(float(found.group(2)))
        windows.append((end - float(found.group(2)) * 1000, end))
# The slowest 1% of block intervals: how many overlap a snapshot being taken.
worst = sorted(zip((b - a for a, b in zip(times, times[1:])), times[1:]), reverse=True)[: max(1, len(times) // 100)]
during = sum(any(end - gap <= hi + 50 and end >= lo for lo, hi in windows) for gap, end in worst)
print(f"snapshots {run:5}: {len(times)} blocks, interval mean {sum(gaps) / len(gaps):.1f} ms p50 {pick(0.5)} p99 {pick(0.99)} max {gaps[-1]} ms; "
      f"{bench['committed']} transfers at {bench['committed_per_second']}/s, latency p50 {bench['latency_ms']['p50']} p99 {bench['latency_ms']['p99']} ms; "
      f"peak RSS {int(rss) // 1024} MiB; load average {load} at start; "
      f"snapshots taken {len(snaps)}" + (f", {min(snaps):.2f}-{max(snaps):.2f} s each (mean {sum(snaps) / len(snaps):.2f}); "
      f"of the slowest 1% of intervals ({len(worst)}), {during} overlap a snapshot" if snaps else ""))
EOF
done
grep "took a state snapshot" s1/v0/node.log | tail -1 | cut -c1-200
du -sh s1/v0/snapshots/* 2> /dev/null | tail -2
