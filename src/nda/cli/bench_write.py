"""`nda bench write`: the cold write path — fresh programs parsed, gated, hashed, compiled, run
and committed, each stage timed on its own, beside CPython compiling the same program.

In: sizes (target node counts, default 100, 1,000, 10,000), kinds (`scalar`, `mixed`), runs.
Out: a dict (the `--json` object minus "ok"): one row per (kind, size) with the median ms of
every stage, CPython's `compile()` and `compile()`+`exec()` of the equivalent Python source
measured in the same run, the ratios of the issue's targets, the growth factor of each stage
from the smallest size ≥ 1,000 to the largest; plus the micro measurements `tiny` (a cached
`(int 1)` run vs `exec` of a precompiled one-statement code object) and `block4` (cold: a
fresh parse and a fresh `Engine` per run, so no program, hash or kernel cache helps; warm: the
same program and engine).

"Fresh": every timed stage gets a program generated from its own seed (different constants,
hence different H2), parsed untimed right before, so no content-addressed or identity-keyed
cache can serve it. Programs (`gen`):
- scalar: `(let aJ (int k))` ×6, then `(store aJ (add (load aJ) (int k)))` … `(print (load a0))`;
  Python: `aJ = k`, `aJ = aJ + k` lines, `P(a0)`.
- mixed: a module whose `main` applies a Matrix 16×896 and a Norm to the input, then loops,
  whiles, if/else, prints and calls of `size/400` helper defs; Python: the same with `def fN`,
  `for`/`while`/`if`, `P`/`M`/`N` no-op stubs.
Stages: parse_sexpr, parse_text (the program printed as NDA text, parsed back), link (modules),
gate (`commit.static_findings`), hash (H2 of the whole program, a fresh `Hasher`), compile
(tier 1 closure compile with the optimizer, as `auto` would), run (`sandbox.run`, tier auto),
commit (`commit.commit` into a fresh store: gate, sandbox run, hashing, one transaction).
"""

from __future__ import annotations

import gc
import os
import random
import statistics
import tempfile
import time

import numpy as np

NVARS = 6
KINDS = ("scalar", "mixed")
SIZES = (100, 1000, 10000)
STAGES = ("parse_sexpr", "parse_text", "link", "gate", "hash", "compile", "run", "commit")
PY_NS = {"P": lambda *a: None, "M": lambda v: v, "N": lambda v: v, "v": None}
COND = np.ones(896, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Program generator


def gen_scalar(n_nodes: int, seed: int) -> tuple[str, str]:
    """(S-expression source, equivalent Python source) of a straight-line scalar program."""
    r = random.Random(seed)
    sx, py = [], []
    for j in range(NVARS):
        k = r.randint(0, 99)
        sx.append(f"(let a{j} (int {k}))")
        py.append(f"a{j} = {k}")
    nodes = 2 * NVARS
    while nodes < n_nodes:
        j, k = r.randrange(NVARS), r.randint(1, 99)
        sx.append(f"(store a{j} (add (load a{j}) (int {k})))")
        py.append(f"a{j} = a{j} + {k}")
        nodes += 4
    sx.append("(print (load a0))")
    py.append("P(a0)")
    return "\n".join(sx) + "\n", "\n".join(py) + "\n"


def gen_mixed(n_nodes: int, seed: int) -> tuple[str, str]:
    """(S-expression module, equivalent Python) with loops, whiles, ifs, prints, calls and a
    small Matrix/Norm."""
    r = random.Random(seed)
    nf = max(1, n_nodes // 400)
    defs_sx, defs_py = [], []
    for f in range(nf):
        k = r.randint(1, 9)
        defs_sx.append(f"(def f{f} (scope (let n (scope)) (if (scope) (then)) (if (cmp lt (load n) (int 0)) (then (return (int 0)))) "
                       f"(return (add (math mul (load n) (int {k})) (int {f})))))")
        defs_py.append(f"def f{f}(n):\n    if n < 0:\n        return 0\n    return n * {k} + {f}")
    body_sx = ["(matrix 16 896 :sign aa55 :extra 55aa)", "(norm 16 :weight ff :bias 00)"]
    body_py = ["v = M(v)", "v = N(v)"]
    for j in range(NVARS):
        k = r.randint(0, 9)
        body_sx.append(f"(let x{j} (int {k}))")
        body_py.append(f"x{j} = {k}")
    nodes = 4 + 2 * NVARS + 15 * nf
    while nodes < n_nodes:
        c = r.randrange(5)
        j, i2, k = r.randrange(NVARS), r.randrange(NVARS), r.randint(1, 9)
        if c == 0:
            body_sx.append(f"(loop {k % 4 + 1} (store x{j} (add (load x{j}) (int {k}))))")
            body_py.append(f"for _ in range({k % 4 + 1}):\n    x{j} = x{j} + {k}")
            nodes += 5
        elif c == 1:
            body_sx.append(f"(if (cmp lt (load x{j}) (int {k * 10})) (then (store x{i2} (add (load x{i2}) (int 1)))) "
                           f"(else (store x{i2} (int {k}))))")
            body_py.append(f"if x{j} < {k * 10}:\n    x{i2} = x{i2} + 1\nelse:\n    x{i2} = {k}")
            nodes += 10
        elif c == 2:
            f = r.randrange(nf)
            body_sx.append(f"(store x{j} (scope (load x{i2}) (call @f{f})))")
            body_py.append(f"x{j} = f{f}(x{i2})")
            nodes += 4
        elif c == 3:
            body_sx.append(f"(print (add (load x{j}) (int {k})))")
            body_py.append(f"P(x{j} + {k})")
            nodes += 4
        else:
            body_sx.append(f"(let w (int 0)) (while (cmp lt (load w) (int {k % 3 + 1})) (store w (add (load w) (int 1))))")
            body_py.append(f"w = 0\nwhile w < {k % 3 + 1}:\n    w = w + 1")
            nodes += 11
    sx = "(module\n  (def main (scope\n    " + "\n    ".join(body_sx) + "))\n  " + "\n  ".join(defs_sx) + ")\n"
    py = "\n".join(defs_py) + "\n" + "\n".join(body_py) + "\n"
    return sx, py


def gen(kind: str, n_nodes: int, seed: int = 0) -> tuple[str, str]:
    """A fresh program of about `n_nodes` nodes: (S-expression source, Python source)."""
    if kind not in KINDS:
        raise ValueError(f"unknown program kind {kind!r} (expected one of {', '.join(KINDS)})")
    return (gen_scalar if kind == "scalar" else gen_mixed)(n_nodes, seed)


class _Prog:
    """A parsed program: the unit, its linked module (or None), top-level sequence, resolver."""

    def __init__(self, src: str):
        from nda.core.link import MemoryResolver, link_module
        from nda.sandbox.runner import ChainResolver
        from nda.syntax.sexpr import parse_sexpr

        self.unit = parse_sexpr(src)
        self.linked = None
        self.resolver = None
        if self.unit.module is not None:
            self.linked = link_module(self.unit.module)
            self.seq = tuple(self.linked.main_sequence())
            mem = MemoryResolver()
            mem.add_linked(self.linked)
            self.resolver = ChainResolver(mem, None)
        else:
            self.seq = tuple(self.unit.sequence)

    def node_count(self) -> int:
        from nda.core import ir

        roots = list(self.seq) if self.unit.module is None else [d.node for d in self.unit.module.defs]
        return sum(1 for r in roots for _ in ir.walk(r))

    def text(self) -> str | None:
        """The program as NDA text, or None when it has no text form."""
        try:
            from nda.syntax.text import print_text, print_text_nodes

            names = dict(self.unit.names)
            if self.unit.module is not None:
                return print_text(self.unit.module, names)
            return print_text_nodes(self.seq, names)
        except Exception:  # noqa: BLE001 — inexpressible or no text front end: stage skipped
            return None


CLOCKS = {"wall": time.perf_counter_ns, "cpu": time.process_time_ns}


def _timed(fn, clock=time.perf_counter_ns) -> float:
    """Milliseconds of one call of `fn` (collected garbage first, so stages start alike), on
    the wall clock or the process's CPU clock (steadier on a shared machine, but blind to
    waits such as the store's fsync)."""
    gc.collect()
    t0 = clock()
    fn()
    return (clock() - t0) / 1e6


# ---------------------------------------------------------------------------------------------
# One repetition of one (kind, size)


def _one(kind: str, size: int, seed: int, tmp: str, clock=time.perf_counter_ns) -> dict:
    from nda.core.hashing import program_hash
    from nda.core.link import link_module
    from nda.pipeline.commit import commit, static_findings
    from nda.runtime.state import Limits
    from nda.sandbox.runner import run
    from nda.store.sitemap import SiteMap
    from nda.syntax.sexpr import parse_sexpr
    from nda.tiers.closure import Engine, compile_program

    def fresh(stage: int) -> tuple[str, str]:
        return gen(kind, size, seed * 16 + stage)

    out: dict = {}
    sx, py = fresh(0)
    unit = None

    def parse():
        nonlocal unit
        unit = parse_sexpr(sx)
    out["parse_sexpr"] = _timed(parse, clock)
    if unit.module is not None:
        out["link"] = _timed(lambda: link_module(unit.module), clock)
    else:
        out["link"] = 0.0
    text = _Prog(fresh(1)[0]).text()
    if text is not None:
        from nda.syntax.text import parse_text

        out["parse_text"] = _timed(lambda: parse_text(text), clock)
    else:
        out["parse_text"] = None
    p = _Prog(fresh(2)[0])
    out["nodes"] = p.node_count()
    findings: list = []
    out["gate"] = _timed(lambda: findings.extend(static_findings(p.seq, p.linked, input_len=896, limits=Limits())), clock)
    if findings:
        raise RuntimeError(f"generated {kind} program failed the gate: {findings[0].diagnostic.message}")
    p = _Prog(fresh(3)[0])
    out["hash"] = _timed(lambda: program_hash(p.seq), clock)
    p = _Prog(fresh(4)[0])
    out["compile"] = _timed(lambda: compile_program(p.seq, Engine(), tier=1, optimize=True), clock)
    p = _Prog(fresh(5)[0])
    box: list = []
    out["run"] = _timed(lambda: box.append(run(p.seq, COND, store=p.resolver, tier="auto")), clock)
    if not box[0].is_success():
        raise RuntimeError(f"generated {kind} program failed to run: {box[0].error}")
    out["run_tier"] = box[0].tier
    p = _Prog(fresh(6)[0])
    store = SiteMap.open(os.path.join(tmp, f"w-{kind}-{size}-{seed}.db"))
    try:
        box.clear()
        out["commit"] = _timed(lambda: box.append(commit(store, p.unit, COND, "bench")), clock)
        if not box[0].ok:
            raise RuntimeError(f"generated {kind} program failed to commit: {box[0].reason}")
    finally:
        store.close()
    src_c = fresh(7)[1]
    out["py_compile"] = _timed(lambda: compile(src_c, "<bench>", "exec"), clock)
    src_ce = fresh(8)[1]
    out["py_compile_exec"] = _timed(lambda: exec(compile(src_ce, "<bench>", "exec"), dict(PY_NS)), clock)
    return out


def _median(rows: list[dict], key: str):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def _ratio(a, b):
    return None if a is None or not b else a / b


def measure_sizes(sizes=SIZES, kinds=KINDS, runs: int = 5, progress=None, clock: str = "wall") -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:  # warm-up (seed 0, never measured): imports, first-use setup
            _one(kind, 60, 0, tmp)
        for kind in kinds:
            for size in sizes:
                if progress:
                    progress(f"{kind} {size}")
                reps = runs if size < 10000 else max(1, (runs + 1) // 2)
                samples = [_one(kind, size, s + 1, tmp, CLOCKS[clock]) for s in range(reps)]
                st = {k: _median(samples, k) for k in STAGES}
                py_c, py_ce = _median(samples, "py_compile"), _median(samples, "py_compile_exec")
                parse_gate = st["parse_sexpr"] + st["link"] + st["gate"]
                rows.append({
                    "kind": kind, "size": size, "nodes": int(_median(samples, "nodes")), "runs": reps,
                    "run_tier": samples[-1]["run_tier"],
                    "stages_ms": st,
                    "python_ms": {"compile": py_c, "compile_exec": py_ce},
                    "ratios": {
                        "parse_gate_vs_compile": _ratio(parse_gate, py_c),
                        "run_vs_compile_exec": _ratio(st["run"], py_ce),
                        "commit_vs_compile": _ratio(st["commit"], py_c),
                    },
                })
    return rows


def growth(rows: list[dict]) -> dict:
    """kind → stage → median(largest size) / median(smallest size ≥ 1,000) (None if absent)."""
    out: dict = {}
    for kind in {r["kind"] for r in rows}:
        mine = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["size"])
        base = [r for r in mine if r["size"] >= 1000]
        if len(base) < 2:
            continue
        lo, hi = base[0], base[-1]
        g = {s: _ratio(hi["stages_ms"][s], lo["stages_ms"][s]) for s in STAGES if s != "link" or lo["stages_ms"][s]}
        g["py_compile"] = _ratio(hi["python_ms"]["compile"], lo["python_ms"]["compile"])
        out[kind] = {"from": lo["size"], "to": hi["size"], "factor": g}
    return out


# ---------------------------------------------------------------------------------------------
# Micro measurements


def _best_of_blocks(fn, runs: int, block: int = 200) -> float:
    """µs per call: the median over `runs` blocks of `block` calls each."""
    per = []
    for _ in range(max(3, runs)):
        t0 = time.perf_counter_ns()
        for _ in range(block):
            fn()
        per.append((time.perf_counter_ns() - t0) / block / 1000)
    return statistics.median(per)


def measure_tiny(runs: int) -> dict:
    """A cached `(int 1)` run (same program object, default conditioning, tier auto) against
    `exec` of a precompiled one-statement code object."""
    from nda.sandbox.runner import run
    from nda.syntax.sexpr import parse_sexpr

    seq = parse_sexpr("(int 1)").sequence
    for _ in range(3000):  # warm: past any tier-up threshold, every cache filled
        run(seq)
    code = compile("x = 1", "<tiny>", "exec")
    ns: dict = {}
    nda_us = _best_of_blocks(lambda: run(seq), runs)
    py_us = _best_of_blocks(lambda: exec(code, ns), runs, block=5000)
    return {"run_us": nda_us, "exec_us": py_us, "ratio": nda_us / py_us}


def measure_block4(runs: int) -> dict:
    """block4 cold (fresh parse + fresh Engine per run: no program-info, hash, unit or kernel
    cache; only the thread's decode scratch buffer is reused — memory, not decoded content,
    docs/decisions.md M2) and warm (same objects, same engine), tier auto, 896 ones."""
    from nda.cli.benchsuite import BLOCK4
    from nda.sandbox.runner import run
    from nda.syntax.sexpr import parse_sexpr
    from nda.tiers.closure import Engine

    inp = np.ones(896, dtype=np.float32)
    cold = []
    for _ in range(max(5, runs * 4)):
        seq, eng = parse_sexpr(BLOCK4).sequence, Engine()
        t0 = time.perf_counter_ns()
        run(seq, inp, engine=eng)
        cold.append((time.perf_counter_ns() - t0) / 1000)
    seq, eng = parse_sexpr(BLOCK4).sequence, Engine()
    for _ in range(50):
        run(seq, inp, engine=eng)
    warm = _best_of_blocks(lambda: run(seq, inp, engine=eng), runs, block=50)
    return {"cold_us": statistics.median(cold), "warm_us": warm}


TARGETS = (
    ("run_vs_compile_exec", 1.5, "fresh 1k-node run ≤ 1.5× CPython compile+exec"),
    ("commit_vs_compile", 5.0, "fresh 1k-node commit ≤ 5× CPython compile()"),
    ("parse_gate_vs_compile", 1.5, "fresh 1k-node parse+gate ≤ 1.5× CPython compile()"),
)
GROWTH_TARGETS = ("parse_sexpr", "gate", "commit")  # each grows ≤ 15× from 1k to 10k nodes


def run_write_bench(sizes=SIZES, kinds=KINDS, runs: int = 5, micro: bool = True, progress=None,
                    clock: str = "wall") -> dict:
    """Everything `nda bench write` reports, as one JSON-able dict. `clock` ("wall" or
    "cpu") times the stages and the CPython baselines alike; the micro measurements are wall."""
    rows = measure_sizes(sizes, kinds, runs, progress, clock)
    result = {"runs": runs, "clock": clock, "sizes": list(sizes), "kinds": list(kinds), "rows": rows,
              "growth": growth(rows)}
    targets = []
    for r in rows:
        if r["size"] == 1000:
            for key, limit, what in TARGETS:
                v = r["ratios"][key]
                targets.append({"target": f"{r['kind']}: {what}", "value": v, "met": v is not None and v <= limit})
    for kind, g in result["growth"].items():
        for stage in GROWTH_TARGETS:
            v = g["factor"].get(stage)
            targets.append({"target": f"{kind}: {stage} grows ≤ 15× from {g['from']} to {g['to']} nodes",
                            "value": v, "met": v is not None and v <= 15})
    if micro:
        if progress:
            progress("tiny run, block4")
        result["tiny"] = measure_tiny(runs)
        result["block4"] = measure_block4(runs)
        targets.append({"target": "cached tiny run ≤ 15× exec", "value": result["tiny"]["ratio"],
                        "met": result["tiny"]["ratio"] <= 15})
        targets.append({"target": "block4 cold ≤ 100 µs", "value": result["block4"]["cold_us"],
                        "met": result["block4"]["cold_us"] <= 100})
        targets.append({"target": "block4 warm ≤ 55 µs", "value": result["block4"]["warm_us"],
                        "met": result["block4"]["warm_us"] <= 55})
    result["targets"] = targets
    return result


def render(result: dict, console) -> None:
    """Rich tables of `run_write_bench`'s result: per kind, a row per stage, a column per size."""
    from rich.table import Table

    def f(x):
        return "—" if x is None else f"{x:,.2f}"
    for kind in result["kinds"]:
        rows = [r for r in result["rows"] if r["kind"] == kind]
        g = result["growth"].get(kind)
        t = Table(title=f"nda bench write: {kind} ({result['clock']} ms, median of fresh programs; "
                        "CPython in the same run)")
        t.add_column("stage")
        for r in rows:
            t.add_column(f"{r['nodes']:,} nodes", justify="right")
        if g:
            t.add_column(f"growth {g['from']:,}→{g['to']:,}", justify="right")
        for stage in STAGES:
            extra = [f(g["factor"].get(stage)) + "×" if g["factor"].get(stage) else "—"] if g else []
            t.add_row(stage, *(f(r["stages_ms"][stage]) for r in rows), *extra)
        t.add_row("CPython compile()", *(f(r["python_ms"]["compile"]) for r in rows),
                  *([f(g["factor"]["py_compile"]) + "×"] if g else []))
        t.add_row("CPython compile+exec", *(f(r["python_ms"]["compile_exec"]) for r in rows), *([""] if g else []))
        for key, label in (("run_vs_compile_exec", "run / compile+exec"), ("commit_vs_compile", "commit / compile"),
                           ("parse_gate_vs_compile", "parse+gate / compile")):
            t.add_row(label, *(f(r["ratios"][key]) + "×" for r in rows), *([""] if g else []))
        console.print(t)
    if "tiny" in result:
        ti, b4 = result["tiny"], result["block4"]
        console.print(f"tiny cached run {ti['run_us']:.2f} µs = {ti['ratio']:.1f}× exec ({ti['exec_us']:.3f} µs); "
                      f"block4 cold {b4['cold_us']:.1f} µs, warm {b4['warm_us']:.1f} µs")
    tt = Table(title="targets")
    for c in ("target", "value", "met"):
        tt.add_column(c)
    for x in result["targets"]:
        tt.add_row(x["target"], f(x["value"]), "[green]yes[/green]" if x["met"] else "[red]no[/red]")
    console.print(tt)
