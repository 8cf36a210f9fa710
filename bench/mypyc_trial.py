"""mypyc trial for the cold write path: python bench/mypyc_trial.py [--rounds N] [--runs N] [--json]

In: the package's source (src/nda of this checkout), mypyc (from mypy: the `bench` extra) and a C
compiler with the Python headers.
Out: `nda bench write` (1,000-node programs, CPU clock, no micro measurements) run alternately
on the pure-Python package and on a temporary copy whose hot modules (`MODULES`) are compiled
with mypyc, `--rounds` times each; per (kind, stage) the median over rounds of each run's median
ms, the speedup pure / compiled, the issue-10 ratios of both (parse+gate / compile(), commit /
compile(), CPython measured in the same run), and the build time. Nothing is installed: the copy
lives in a temporary directory and is deleted afterwards.

The result and why the compiled build is not shipped: docs/decisions.md #31.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# The modules that compile from this tree as it is. gate_state and binary_v2 need small changes
# first (see docs/decisions.md #31): `Stk`'s bottom cell is made with `Stk.__new__`, which a
# native class does not allow, and `ModuleGroups(list)` must be marked a non-native class.
MODULES = (
    "nda/syntax/sexpr.py",
    "nda/analysis/gate.py",
    "nda/analysis/gate_absint.py",
    "nda/analysis/gate_expr.py",
    "nda/analysis/gate_names.py",
    "nda/core/hashing.py",
)
STAGES = ("parse_sexpr", "gate", "hash", "commit")


def build(dest: Path, modules: tuple[str, ...]) -> float:
    """Copy src/nda into `dest` and compile `modules` in place; → build seconds."""
    shutil.copytree(SRC / "nda", dest / "nda", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    t0 = time.perf_counter()
    proc = subprocess.run(
        # imported modules stay pure: their types are used, their own type errors not reported
        [sys.executable, "-m", "mypyc", "--follow-imports=silent", "--ignore-missing-imports",
         "--disable-error-code=annotation-unchecked", *modules],
        cwd=dest, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"mypyc failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}{proc.stderr[-4000:]}")
    return time.perf_counter() - t0


def bench(pythonpath: Path, runs: int) -> dict:
    """One `nda bench write` run → {kind: row} (the --json rows)."""
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    out = subprocess.run(
        [sys.executable, "-m", "nda", "bench", "write", "--json", "--runs", str(runs),
         "--sizes", "1000", "--no-micro", "--clock", "cpu"],
        env=env, capture_output=True, text=True, check=True, cwd=pythonpath)
    return {row["kind"]: row for row in json.loads(out.stdout)["rows"]}


def compiled_modules(pythonpath: Path) -> list[str]:
    code = ("import importlib, sys\n"
            f"mods = {[m[:-3].replace('/', '.') for m in MODULES]!r}\n"
            "print(' '.join(m for m in mods if importlib.import_module(m).__file__.endswith('.so')))")
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=pythonpath)
    return out.stdout.split()


def summarize(rounds: list[dict]) -> dict:
    """Median over rounds of each stage, CPython compile() and the ratios, per kind."""
    out = {}
    for kind in rounds[0]:
        rows = [r[kind] for r in rounds]
        med = {s: statistics.median(r["stages_ms"][s] for r in rows) for s in STAGES}
        med["py_compile"] = statistics.median(r["python_ms"]["compile"] for r in rows)
        med["parse_gate_vs_compile"] = statistics.median(r["ratios"]["parse_gate_vs_compile"] for r in rows)
        med["commit_vs_compile"] = statistics.median(r["ratios"]["commit_vs_compile"] for r in rows)
        out[kind] = med
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="alternating bench runs per variant")
    ap.add_argument("--runs", type=int, default=5, help="fresh programs per stage in each run")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="nda-mypyc-") as tmp:
        dest = Path(tmp)
        seconds = build(dest, MODULES)
        got = compiled_modules(dest)
        pure, comp = [], []
        for _ in range(args.rounds):
            pure.append(bench(SRC, args.runs))
            comp.append(bench(dest, args.runs))
    p, c = summarize(pure), summarize(comp)
    report = {"ok": True, "build_seconds": round(seconds, 1), "compiled": got, "rounds": args.rounds,
              "pure_ms": p, "compiled_ms": c,
              "speedup": {k: {s: p[k][s] / c[k][s] for s in STAGES + ("py_compile",)} for k in p}}
    for k in p:
        pgh_p = p[k]["parse_sexpr"] + p[k]["gate"] + p[k]["hash"]
        pgh_c = c[k]["parse_sexpr"] + c[k]["gate"] + c[k]["hash"]
        report["speedup"][k]["parse+gate+hash"] = pgh_p / pgh_c
    if args.json:
        print(json.dumps(report))
        return
    print(f"mypyc build: {seconds:.1f} s; compiled: {', '.join(got) or 'none'}")
    print(f"median of {args.rounds} alternating `nda bench write` runs (1,000 nodes, CPU ms)")
    for k in p:
        print(f"\n{k:8} {'stage':22} {'pure':>8} {'mypyc':>8} {'speedup':>8}")
        for s in STAGES + ("py_compile",):
            print(f"{'':8} {s:22} {p[k][s]:8.2f} {c[k][s]:8.2f} {p[k][s] / c[k][s]:7.2f}x")
        print(f"{'':8} {'parse+gate+hash':22} {'':8} {'':8} {report['speedup'][k]['parse+gate+hash']:7.2f}x")
        for r in ("parse_gate_vs_compile", "commit_vs_compile"):
            print(f"{'':8} {r:22} {p[k][r]:7.2f}x {c[k][r]:7.2f}x")


if __name__ == "__main__":
    main()
