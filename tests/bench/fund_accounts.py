#!/usr/bin/env python3
"""Creates N new funded accounts on a running chain by real transfers.

Every funded key of a devnet's bench-keys directory (`cairn devnet up
--bench-accounts K`) sends ceil(N / K) transfers, each to a new address
(the first 20 bytes of SHA-256("cairn-bench-recipient" || i), i = 0..N-1),
signed with ed25519 (the `cryptography` package) over the transaction's
canonical bytes (README "Rules every node applies": postcard, domain
"cairn/transaction/v2\\0"), and submitted through `POST /txs` in waves of
at most WAVE nonces per sender (the mempool holds at most 64 of one
sender); each wave waits until `GET /mempool` is empty. The node checks
every signature, so a wrong encoding shows as refusals, which are counted
and printed. Used by join_time_1m.sh (BENCHMARKS.md, join time).

usage: fund_accounts.py --node URL --keys-dir DIR --chain-id ID --accounts N
       [--wave 40] [--amount 10] [--fee 1] [--batch 5000]
"""

import argparse
import collections
import glob
import hashlib
import json
import multiprocessing
import sys
import time
import urllib.request

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

DOMAIN = b"cairn/transaction/v2\0"


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def blob(data):
    return varint(len(data)) + data


def recipient(index):
    return hashlib.sha256(b"cairn-bench-recipient" + index.to_bytes(8, "big")).digest()[:20]


def transfer_bytes(chain_id, public_key, to, amount, fee, nonce):
    # Transaction: chain_id, sender, recipient, amount, fee, nonce, memo, kind (0 = transfer)
    return (
        blob(chain_id.encode())
        + blob(public_key)
        + blob(to)
        + varint(amount)
        + varint(fee)
        + varint(nonce)
        + blob(b"")
        + varint(0)
    )


WORKER = {}


def init_worker(chain_id, amount, fee):
    WORKER.update(chain_id=chain_id, amount=amount, fee=fee, keys={})


def sign_jobs(jobs):
    """jobs: [(seed_hex, nonce, recipient_index)] -> [hex of signed tx]"""
    out = []
    for seed_hex, nonce, index in jobs:
        key = WORKER["keys"].get(seed_hex)
        if key is None:
            private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
            public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            key = WORKER["keys"][seed_hex] = (private, public)
        private, public = key
        body = transfer_bytes(
            WORKER["chain_id"], public, recipient(index), WORKER["amount"], WORKER["fee"], nonce
        )
        signature = private.sign(DOMAIN + body)
        out.append((body + blob(signature)).hex())
    return out


def get(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def post(url, payload):
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--node", required=True)
    parser.add_argument("--keys-dir", required=True)
    parser.add_argument("--chain-id", required=True)
    parser.add_argument("--accounts", type=int, required=True)
    parser.add_argument("--wave", type=int, default=40)
    parser.add_argument("--amount", type=int, default=10)
    parser.add_argument("--fee", type=int, default=1)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    if not 1 <= args.wave <= 64:
        sys.exit("--wave must be 1..64 (the mempool holds at most 64 transactions of one sender)")

    seeds = []
    for path in sorted(glob.glob(f"{args.keys_dir}/*.json")):
        with open(path) as f:
            key = json.load(f)
        if key.get("secret", {}).get("kind") != "plain":
            sys.exit(f"{path}: not a plain key file (bench keys are unencrypted)")
        seeds.append(key["secret"]["seed"])
    if not seeds:
        sys.exit(f"no key files in {args.keys_dir}: make the devnet with --bench-accounts K")
    per_sender = -(-args.accounts // len(seeds))
    print(f"{len(seeds)} senders, {per_sender} transfers each, {args.accounts} new accounts", flush=True)

    pool = multiprocessing.Pool(args.processes, init_worker, (args.chain_id, args.amount, args.fee))
    refused = collections.Counter()
    accepted = 0
    started = time.time()
    signing = 0.0
    made = 0
    for first in range(0, per_sender, args.wave):
        jobs = []
        for nonce in range(first, min(first + args.wave, per_sender)):
            for sender, seed in enumerate(seeds):
                index = sender * per_sender + nonce
                if index < args.accounts:
                    jobs.append((seed, nonce, index))
        t0 = time.time()
        pieces = [jobs[i : i + 2000] for i in range(0, len(jobs), 2000)]
        signed = [tx for part in pool.map(sign_jobs, pieces) for tx in part]
        signing += time.time() - t0
        for i in range(0, len(signed), args.batch):
            results = post(f"{args.node}/txs", {"txs": signed[i : i + args.batch]})["results"]
            for result in results:
                if "error" in result:
                    refused[result["error"].get("code", "?")] += 1
                else:
                    accepted += 1
        made += len(signed)
        while get(f"{args.node}/mempool")["count"] > 0:
            time.sleep(0.2)
        print(
            f"nonces {first}..{first + args.wave - 1}: {made} sent, {accepted} accepted, "
            f"refused {dict(refused)}, {time.time() - started:.1f} s (signing {signing:.1f} s)",
            flush=True,
        )
    pool.close()
    status = get(f"{args.node}/status")
    print(
        f"done: {accepted} of {made} transfers accepted and committed in {time.time() - started:.1f} s "
        f"(signing {signing:.1f} s); height {status['latest_height']}",
        flush=True,
    )
    if refused:
        sys.exit(f"refused: {dict(refused)}")


if __name__ == "__main__":
    main()
