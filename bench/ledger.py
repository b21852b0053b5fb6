"""Benchmark the ledger: Merkle tree over 1M event hashes, proofs, and anchoring on anvil.

    python -m bench.ledger [--quick]

Tree figures are CPU seconds of this process (the machine is shared; wall time of the
build is printed too); anchoring figures are wall clock (the node is another process).
Baseline in the same run: a naive recursive RFC 6962 MTH (the RFC's definition, as
written) over a subset, scaled per leaf. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import time
import tracemalloc
from typing import Any

from ledger.anvil import DEV_KEYS, AnvilNode
from ledger.chain import Anchorer, Chain
from ledger.merkle import MerkleTree, leaf_hash, node_hash, verify_inclusion


def naive_mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, recursively, slicing lists: the textbook baseline."""
    n = len(leaves)
    if n == 1:
        return leaf_hash(leaves[0])
    k = 1 << ((n - 1).bit_length() - 1)
    return node_hash(naive_mth(leaves[:k]), naive_mth(leaves[k:]))


def bench_tree(n_leaves: int, n_proofs: int) -> dict[str, Any]:
    event_hashes = [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(n_leaves)]
    w0, t0 = time.perf_counter(), time.process_time()
    tree = MerkleTree.from_entries(event_hashes)
    build_s = time.process_time() - t0
    build_wall_s = time.perf_counter() - w0
    # Memory in a second build: tracemalloc slows allocation down, so it is not timed.
    tracemalloc.start()
    MerkleTree.from_entries(event_hashes)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    root = tree.root()

    base_n = min(n_leaves, 100_000)
    t0 = time.process_time()
    base_root = naive_mth(event_hashes[:base_n])
    naive_s = (time.process_time() - t0) * n_leaves / base_n
    assert base_root == tree.root(base_n), "naive baseline disagrees with the tree"

    step = max(1, n_leaves // n_proofs)
    indexes = list(range(0, n_leaves, step))[:n_proofs]
    t0 = time.process_time()
    proofs = [tree.inclusion_proof(i) for i in indexes]
    gen_s = time.process_time() - t0
    leaves = [tree.leaf(i) for i in indexes]
    t0 = time.process_time()
    ok = sum(
        verify_inclusion(i, n_leaves, lf, p, root)
        for i, lf, p in zip(indexes, leaves, proofs, strict=True)
    )
    ver_s = time.process_time() - t0
    assert ok == len(indexes), "a proof failed to verify"
    return {
        "leaves": n_leaves,
        "build_s": round(build_s, 3),
        "build_wall_s": round(build_wall_s, 3),
        "naive_build_s": round(naive_s, 3),
        "build_speedup": round(naive_s / build_s, 2),
        "tree_peak_mb": round(peak / 2**20, 1),
        "proofs_generated_per_s": round(len(indexes) / gen_s),
        "proofs_verified_per_s": round(len(indexes) / ver_s),
        "proof_len": len(proofs[0]),
    }


def bench_anchor(n_tx: int) -> dict[str, Any]:
    with AnvilNode() as node:
        chain = Chain.connect(node.url)
        address = chain.deploy_registry(DEV_KEYS[0])
        anchorer = Anchorer(chain, address, DEV_KEYS[0])
        roots = [hashlib.sha256(b"bench-root-%d" % i).digest() for i in range(n_tx)]
        gas = anchorer.estimate_gas(roots[0], 1)
        # Sequential baseline: send, wait for the receipt, next.
        n_seq = max(1, n_tx // 5)
        t0 = time.perf_counter()
        for i in range(n_seq):
            anchorer.wait_mined(anchorer.send_anchor(roots[i], i + 1, gas=gas).tx_hash)
        seq_tps = n_seq / (time.perf_counter() - t0)
        # Pipelined with the local nonce counter: send all, then collect receipts.
        t0 = time.perf_counter()
        sent = [
            anchorer.send_anchor(r, 1_000_000 + i, gas=gas) for i, r in enumerate(roots[n_seq:])
        ]
        mined = [anchorer.wait_mined(s.tx_hash) for s in sent]
        tps = len(sent) / (time.perf_counter() - t0)
        assert all(m.succeeded for m in mined)
        gas_used = [m.gas_used for m in mined]
        return {
            "anchor_tx_per_s": round(tps, 1),
            "anchor_tx_per_s_sequential": round(seq_tps, 1),
            "gas_per_anchor": round(sum(gas_used) / len(gas_used)),
            "gas_per_event_1m_batch": round(sum(gas_used) / len(gas_used) / 1_000_000, 4),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--instances", default=None, help="unused: the ledger bench needs no data")
    parser.add_argument("--cpu-s", type=float, default=None, help="unused")
    args = parser.parse_args(argv)
    n_leaves = 1_000_000
    n_proofs = 50_000 if args.quick else 200_000
    n_tx = 100 if args.quick else 500
    tree = bench_tree(n_leaves, n_proofs)
    print(
        f"Merkle tree, {tree['leaves']:,} leaves: build {tree['build_s']} CPU s "
        f"({tree['build_wall_s']} s wall) "
        f"(naive recursive RFC 6962 {tree['naive_build_s']} s, x{tree['build_speedup']}), "
        f"peak {tree['tree_peak_mb']} MB traced"
    )
    print(
        f"proofs: {tree['proofs_generated_per_s']:,}/s generated, {tree['proofs_verified_per_s']:,}/s verified "
        f"({tree['proof_len']} hashes each)"
    )
    anchor = bench_anchor(n_tx)
    print(
        f"anvil on loopback: {anchor['anchor_tx_per_s']} anchor tx/s pipelined "
        f"({anchor['anchor_tx_per_s_sequential']} tx/s send-and-wait), "
        f"{anchor['gas_per_anchor']} gas per anchor (one transaction per batch of any size)"
    )
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {**tree, **anchor, "max_rss_mb": round(rss_mb, 1)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
