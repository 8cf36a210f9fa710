"""Conformance vectors: load them and check one against a tier.

In: JSON-lines files of vectors (one JSON object a line: id, program in S-expression form,
input, expect, optional limits, prints and executed_nodes; `//` lines are comments).
Out: `Vector` records and, for a vector and a tier, the list of mismatches (empty = pass).

Two sets ship with the package (`vectors/`, package data): `spec` — the NDA specification's
conformance vectors, copied with their ids — and `own` — ours, derived by hand from the
specification (tests/conformance/make_own_vectors.py writes them). Used by the test suite
(every vector × every tier) and by `nda conformance`.
"""

from __future__ import annotations

import json
from importlib import resources
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nda.runtime.state import Limits


@dataclass(frozen=True)
class Vector:
    id: str
    program: str
    input: list
    expect: dict
    limits: dict
    prints: list | None
    executed_nodes: int | None
    source: str
    origin: str


VECTOR_SETS = ("spec", "own")


def vector_path(name: str):
    """The shipped vector file of set `name` ("spec" or "own"), as a readable resource."""
    if name not in VECTOR_SETS:
        raise ValueError(f"unknown vector set {name!r} (expected one of {', '.join(VECTOR_SETS)})")
    return resources.files("nda.pipeline").joinpath("vectors", f"{name}.jsonl")


def builtin_vectors(sets=VECTOR_SETS) -> list["Vector"]:
    """Every shipped vector of the given sets, spec first."""
    out: list[Vector] = []
    for name in sets:
        out += load_vectors(vector_path(name))
    return out


def load_vectors(path) -> list[Vector]:
    """Vectors of one JSON-lines file (a path or a package resource)."""
    out = []
    src = Path(path) if isinstance(path, str) else path
    with src.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("//"):
                continue
            d = json.loads(line)
            out.append(Vector(
                id=d["id"], program=d["program"], input=d["input"], expect=d["expect"],
                limits=d.get("limits", {}), prints=d.get("prints"),
                executed_nodes=d.get("executed_nodes"), source=d.get("source", "?"),
                origin=f"{path}:{lineno}",
            ))
    return out


def prepare(vec: Vector):
    """→ (top-level sequence, resolver) following the README's 'How to run a vector'."""
    from nda.core.link import MemoryResolver, link_module
    from nda.syntax.sexpr import parse_sexpr

    unit = parse_sexpr(vec.program)
    store = MemoryResolver()
    if unit.module is not None:
        linked = link_module(unit.module)
        store.add_linked(linked)
        return tuple(linked.main_sequence()), store
    return unit.sequence, store


def check_vector(vec: Vector, tier, optimize: bool = True, collect_kind_counts: bool = False):
    """Run `vec` on `tier`; return (result, list of mismatch descriptions)."""
    from nda.sandbox.runner import run

    seq, store = prepare(vec)
    res = run(seq, vec.input, store=store, limits=Limits.from_dict(vec.limits), tier=tier,
              optimize=optimize, collect_kind_counts=collect_kind_counts)
    problems = []
    exp = vec.expect
    if "output_vec" in exp:
        if res.error is not None:
            problems.append(f"unexpected error {res.error_code}: {res.error}")
        want = np.asarray(exp["output_vec"], dtype=np.float32).view(np.uint32).tolist()
        got = np.asarray(res.output_vec, dtype=np.float32).view(np.uint32).tolist()
        if want != got:
            problems.append(f"output_vec {res.output_vec[:16]} != expected {exp['output_vec'][:16]}")
    if "error_contains" in exp:
        if res.error is None or exp["error_contains"] not in res.error:
            problems.append(f"error {res.error!r} does not contain {exp['error_contains']!r}")
        if res.output_vec:
            problems.append("output_vec must be [] on error")
        if res.panicked:
            problems.append("panicked")
    if "error_code" in exp and res.error_code != exp["error_code"]:
        problems.append(f"error_code {res.error_code} != {exp['error_code']}")
    if "output_dim" in exp and res.output_dim != exp["output_dim"]:
        problems.append(f"output_dim {res.output_dim} != {exp['output_dim']}")
    if vec.prints is not None and res.output_log != vec.prints:
        problems.append(f"prints {res.output_log} != {vec.prints}")
    if vec.executed_nodes is not None and res.executed_nodes != vec.executed_nodes:
        problems.append(f"executed_nodes {res.executed_nodes} != {vec.executed_nodes}")
    return res, problems
