"""The benchmark suite behind `nda bench` (and `bench/run_bench.py`).

In: benchmark names (default: all), number of runs, tiers.
Out: one row per (benchmark, tier): median/min/max wall time in µs over the runs, the ratio
against the baseline measured in the same run (tier 0, or plain CPython for the scalar loop),
and the target from the issue when there is one. Speed is never asserted by tests; it is
measured here.

Benchmarks:
- `block4-cold` / `block4-warm`: the original's 4-layer block — Matrix 128×896, 128×128,
  128×128, 896×128 (planes 0xAA/0x55, scale 0) on 896 ones; cold = empty compile cache
  (compile + run), warm = cached.
- `loop100k`: `s += i; i += 1` for 100,000 iterations.
- `calls10k`: 10,000 calls of a small stored function.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


from .closure import Engine
from .sandbox import available_tiers, run
from .sexpr import parse_sexpr
from .state import Limits

BLOCK4 = ("(matrix 128 896 :sign aa :extra 55) (matrix 128 128 :sign aa :extra 55) "
          "(matrix 128 128 :sign aa :extra 55) (matrix 896 128 :sign aa :extra 55)")
LOOP = ("(let s (int 0)) (let i (int 0)) (loop 100000 (store s (add (load s) (load i))) "
        "(store i (add (load i) (int 1)))) (load s)")
CALLS = ("(module (def inc (scope (let n (scope)) (if (scope) (then)) (add (load n) (int 1)))) "
         "(def main (scope (int 0) (loop 10000 (call @inc)))))")


@dataclass
class Row:
    bench: str
    tier: str
    runs: int
    median_us: float
    min_us: float
    max_us: float
    ratio: float | None = None          # baseline median / this median (higher is faster)
    baseline: str | None = None
    target: str | None = None
    met: bool | None = None
    extra: dict = field(default_factory=dict)


def _time(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm-up (imports, caches)
    out = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def _row(bench, tier, samples, **kw) -> Row:
    return Row(bench, tier, len(samples), statistics.median(samples), min(samples), max(samples), **kw)


def _python_loop() -> int:
    s = i = 0
    for _ in range(100000):
        s = ((s + i + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        i = ((i + 1 + 0x80000000) & 0xFFFFFFFF) - 0x80000000
    return s


def bench_block4(runs: int, tiers: list[str]) -> list[Row]:
    seq = parse_sexpr(BLOCK4).sequence
    inp = np.ones(896, dtype=np.float32)
    rows = []
    res = run(seq, inp, tier="interp")
    assert res.is_success() and res.output_dim == 896, res.error
    for mode in ("cold", "warm"):
        base = None
        for tier in tiers:
            if mode == "cold":
                def fn(tier=tier):
                    run(seq, inp, tier=tier, engine=Engine())
            else:
                eng = Engine()

                def fn(tier=tier, eng=eng):
                    run(seq, inp, tier=tier, engine=eng)
            samples = _time(fn, runs)
            med = statistics.median(samples)
            if base is None:
                base = med
            target = None
            if tier != "interp":
                limit = 150 if mode == "cold" else 60
                target = f"≤ {limit} µs"
            r = _row(f"block4-{mode}", tier, samples, ratio=base / med, baseline="interp", target=target)
            if target:
                r.met = med <= (150 if mode == "cold" else 60)
            rows.append(r)
    return rows


def bench_loop(runs: int, tiers: list[str]) -> list[Row]:
    seq = parse_sexpr(LOOP).sequence
    limits = Limits(fuel=10**9)
    py = _time(_python_loop, runs)
    rows = [_row("loop100k", "cpython", py, baseline="cpython", ratio=1.0)]
    base_t0 = None
    for tier in tiers:
        res = run(seq, [], limits=limits, tier=tier)
        assert res.output_vec == [704982720.0], res.error
        samples = _time(lambda tier=tier: run(seq, [], limits=limits, tier=tier), runs)
        med = statistics.median(samples)
        if tier == "interp":
            base_t0 = med
        r = _row("loop100k", tier, samples, baseline="interp", ratio=(base_t0 / med) if base_t0 else None)
        r.extra["vs_cpython"] = statistics.median(py) / med
        if tier == "closure":
            r.target, r.met = "≥ 3× interp", bool(base_t0 and base_t0 / med >= 3)
        rows.append(r)
    return rows


def bench_calls(runs: int, tiers: list[str]) -> list[Row]:
    from .link import MemoryResolver, link_module

    linked = link_module(parse_sexpr(CALLS).module)
    store = MemoryResolver()
    store.add_linked(linked)
    seq = linked.main_sequence()
    rows, base = [], None
    for tier in tiers:
        res = run(seq, [], store=store, tier=tier)
        assert res.output_vec == [10000.0], res.error
        samples = _time(lambda tier=tier: run(seq, [], store=store, tier=tier), runs)
        med = statistics.median(samples)
        if base is None:
            base = med
        r = _row("calls10k", tier, samples, baseline="interp", ratio=base / med)
        if tier == "closure":
            r.target, r.met = "≥ 3× interp", base / med >= 3
        rows.append(r)
    return rows


BENCHMARKS = {"block4": bench_block4, "loop100k": bench_loop, "calls10k": bench_calls}


def run_suite(names=None, runs: int = 20, tiers=None, progress=None) -> list[Row]:
    names = list(names or BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise ValueError(f"unknown benchmark(s): {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})")
    tiers = list(tiers or available_tiers())
    rows = []
    for n in names:
        if progress:
            progress(n)
        rows += BENCHMARKS[n](runs, tiers)
    return rows


def rows_to_json(rows: list[Row]) -> list[dict]:
    return [r.__dict__ for r in rows]



