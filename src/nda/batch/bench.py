"""`nda bench batch`: throughput of `run_many` on fresh programs, against CPython.

In: the number of runs (each run draws new programs), the number of programs per run
(default 4,000), the backends to measure.
Out: rows for `nda bench` (`cli.benchsuite.Row`): wall time of the whole batch per backend
(median over the runs), programs/s, the ratio to CPython measured in the same run, the
targets of issue 11 and whether results were identical across backends.

Programs: `generate(rng)` writes a random scalar program of about 100 nodes (lets, stores,
nested adds, compares in Ifs, top-level Loops; each ends with `(add (load v0) (load v1))`)
both as S-expression text and as the same computation in Python. Each run:
- `cpython`: `exec(compile(py, …))` of every Python twin (the baseline);
- `serial`: `run_many(backend="serial")` with the defaults (gate on, tier auto) — load,
  gate and sandbox per program; `serial/no-gate`: the same without the gate (parse + run,
  the loop the issue measured);
- `process×N`: `backend="process"` on every core (pool start-up included);
- `ray×N`: `backend="ray"` with N actors on a local Ray started before the timing (actor
  start-up included), when Ray is installed.
`identical` compares every result (all fields but timing) with the serial backend's.
"""

from __future__ import annotations

import random
import statistics
import time

N_PROGRAMS = 4000
MAX_RUNS = 3  # a run is thousands of programs per backend: the suite's --runs is capped here


def generate(rng: random.Random, target_nodes: int = 100) -> tuple[str, str, int]:
    """→ (S-expression source, the same program in Python, node count)."""
    names = [f"v{i}" for i in range(4)]
    sx, py = [], []
    count = 0

    def expr(depth: int) -> tuple[str, str]:
        nonlocal count
        count += 1
        if depth <= 0 or rng.random() < 0.3:
            if rng.random() < 0.5:
                k = rng.randint(-9, 9)
                return f"(int {k})", str(k)
            v = rng.choice(names)
            return f"(load {v})", v
        a, pa = expr(depth - 1)
        b, pb = expr(depth - 1)
        return f"(add {a} {b})", f"({pa} + {pb})"

    def stmt(depth: int, indent: str, top: bool) -> tuple[str, str]:
        nonlocal count
        c = rng.random()
        if top and c < 0.15:
            k = rng.randint(2, 4)
            count += 1
            body = [stmt(depth - 1, indent + "    ", False) for _ in range(rng.randint(1, 3))]
            return (f"(loop {k} " + " ".join(b[0] for b in body) + ")",
                    f"{indent}for _ in range({k}):\n" + "\n".join(b[1] for b in body))
        if depth > 0 and c < 0.3:
            v, k = rng.choice(names), rng.randint(-5, 9)
            count += 4  # If, Compare, Load, Int
            t = stmt(depth - 1, indent + "    ", False)
            e = stmt(depth - 1, indent + "    ", False)
            return (f"(if (cmp lt (load {v}) (int {k})) (then {t[0]}) (else {e[0]}))",
                    f"{indent}if {v} < {k}:\n{t[1]}\n{indent}else:\n{e[1]}")
        v = rng.choice(names)
        count += 1
        x, px = expr(2)
        return f"(store {v} {x})", f"{indent}{v} = {px}"

    for v in names:
        k = rng.randint(-5, 9)
        sx.append(f"(let {v} (int {k}))")
        py.append(f"{v} = {k}")
        count += 2
    while count < target_nodes - 3:
        a, b = stmt(2, "", True)
        sx.append(a)
        py.append(b)
    sx.append("(add (load v0) (load v1))")
    py.append("result = v0 + v1")
    return " ".join(sx), "\n".join(py) + "\n", count + 3


def programs(seed: int, n: int = N_PROGRAMS) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    pairs = [generate(rng) for _ in range(n)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _cpython(py_sources: list[str]) -> list:
    out = []
    for src in py_sources:
        ns: dict = {}
        exec(compile(src, "<program>", "exec"), ns)  # noqa: S102 — our own generated twins
        out.append(ns["result"])
    return out


def measure(runs: int = 1, n: int = N_PROGRAMS, backends=("serial", "serial/no-gate", "process", "ray"),
            workers: int | None = None, progress=None) -> dict:
    """→ {config: {"times_s": [...], "identical": bool, ...}, "cpython": {...}, "meta": {...}}."""
    from nda.batch.runner import default_workers, run_many

    workers = workers or default_workers()
    ray, started = _local_ray(workers) if "ray" in backends else (None, False)
    names = {"serial": "serial", "serial/no-gate": "serial/no-gate", "process": f"process×{workers}",
             "ray": f"ray×{workers}"}
    configs = [b for b in backends if b != "ray" or ray is not None]
    out: dict = {"cpython": {"times_s": [], "agree": 0}}
    for b in configs:
        out[names[b]] = {"times_s": [], "first_result_s": [], "identical": True}
    try:
        for r in range(runs):
            sx, py = programs(seed=0x5EED + r, n=n)
            if progress:
                progress(f"batch run {r + 1}/{runs}: cpython")
            t0 = time.perf_counter()
            py_results = _cpython(py)
            out["cpython"]["times_s"].append(time.perf_counter() - t0)
            reference = None
            for b in configs:
                if progress:
                    progress(f"batch run {r + 1}/{runs}: {names[b]}")
                kwargs = {"backend": "serial" if b.startswith("serial") else b, "gate": b != "serial/no-gate"}
                if b in ("process", "ray"):
                    kwargs["workers"] = workers
                t0 = time.perf_counter()
                first = None
                results = []
                for res in run_many(sx, **kwargs):
                    if first is None:
                        first = time.perf_counter() - t0
                    results.append(res)
                row = out[names[b]]
                row["times_s"].append(time.perf_counter() - t0)
                row["first_result_s"].append(first or 0.0)
                row["ok"] = sum(x.is_success() for x in results)
                if b == "serial":
                    reference = [x.comparable() for x in results]
                    out["cpython"]["agree"] = sum(
                        x.is_success() and x.output_vec == [float(_f32(v))] for x, v in zip(results, py_results))
                elif reference is not None and b != "serial/no-gate":
                    row["identical"] = row["identical"] and [x.comparable() for x in results] == reference
    finally:
        if started:
            ray.shutdown()
    out["meta"] = {"programs": n, "runs": runs, "workers": workers,
                   "mean_nodes": statistics.mean(generate(random.Random(1))[2] for _ in range(50))}
    return out


def _f32(v: int) -> float:
    import numpy as np

    return float(np.float32(v))


def _local_ray(workers: int):
    """→ (ray or None when not installed, whether it was started here)."""
    try:
        import ray
    except ImportError:
        return None, False
    if ray.is_initialized():
        return ray, False
    ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR")
    return ray, True


__all__ = ["generate", "programs", "measure", "N_PROGRAMS", "MAX_RUNS"]
