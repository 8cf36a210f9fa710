"""SiteMap benchmarks: python bench/bench_store.py [--nodes N] [--lookups N] [--json]

1. commit throughput: N distinct nodes (small programs: a Scope of Let/Add/Print with a
   distinct constant) written by `put_program` inside ONE transaction (one roots row), on a
   fresh store (WAL, synchronous=FULL) → nodes/s (wall clock and per CPU second of this process;
   each node is a 8-IR-node program, hashed H2 + H1, v2-encoded, indexed, one state entry).
2. get-by-hash latency: random `get_node(digest)` lookups on a freshly reopened store (no
   caches warm) → median / p90 µs; also `resolve_call(Hash32)` with the decoded-callee cache warm.
3. a second transaction of N more nodes into the now non-empty store (state_root over 2N entries).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from nda.core import ir
from nda.core.ir import name_hash
from nda.store.sitemap import SiteMap

X = name_hash("x")


def program(i: int) -> tuple:
    return (ir.Let(X, ir.Int(i)), ir.Print(ir.Add(ir.Load(X), ir.Float(0x3F800000))), ir.Int(i ^ 0x5A5A))


def commit_batch(store: SiteMap, start: int, n: int) -> tuple[float, float, list[bytes]]:
    """→ (wall seconds, CPU seconds of this process, roots)."""
    t0, c0 = time.perf_counter(), time.process_time()
    with store.transaction(f"bench {start}..{start + n}"):
        roots = [store.put_program(program(i)) for i in range(start, start + n)]
    return time.perf_counter() - t0, time.process_time() - c0, roots


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--lookups", type=int, default=5_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as d:
        path = str(Path(d) / "bench.db")
        with SiteMap.open(path) as s:
            secs, cpu, roots = commit_batch(s, 0, args.nodes)
            stats = s.stats()
        assert stats["nodes"] == args.nodes and stats["roots"] == 1
        with SiteMap.open(path) as s:
            keys = [rng.choice(roots) for _ in range(args.lookups)]
            lat = []
            for k in keys:
                t0 = time.perf_counter_ns()
                node = s.get_node(k)
                lat.append((time.perf_counter_ns() - t0) / 1000)
                assert node is not None
            for k in keys:  # warm the decoded-callee cache
                s.resolve_call(ir.Hash32(k), None)
            call = []
            for k in keys:
                t0 = time.perf_counter_ns()
                s.resolve_call(ir.Hash32(k), None)
                call.append((time.perf_counter_ns() - t0) / 1000)
            secs2, _, _ = commit_batch(s, args.nodes, args.nodes)
            t0 = time.perf_counter()
            problems = s.verify()
            verify_s = time.perf_counter() - t0
        assert problems == []
        db_bytes = sum(p.stat().st_size for p in Path(d).iterdir())
    q = statistics.quantiles(lat, n=10)
    rows = {
        "commit_nodes_per_s": args.nodes / secs,
        "commit_nodes_per_cpu_s": args.nodes / cpu,
        "commit_seconds": secs,
        "second_commit_nodes_per_s": args.nodes / secs2,
        "get_node_median_us": statistics.median(lat),
        "get_node_p90_us": q[8],
        "resolve_call_warm_median_us": statistics.median(call),
        "verify_seconds_2n": verify_s,
        "db_bytes": db_bytes,
    }
    if args.json:
        print(json.dumps(rows))
        return
    print(f"SiteMap bench: {args.nodes:,} distinct nodes per transaction, {args.lookups:,} lookups")
    print(f"{'metric':<32}{'value':>14}")
    for k, v in rows.items():
        print(f"{k:<32}{v:>14,.1f}" if isinstance(v, float) else f"{k:<32}{v:>14,}")


if __name__ == "__main__":
    main()
