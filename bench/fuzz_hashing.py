"""Differential fuzz of the hashing fast paths against the definitions.

In: `--n` trees (default 20000), `--seed`, `--max-depth`.
Out: outcome counts and, per difference, the tree's repr; exit status 1 if any fast path
disagreed with its definition. The fast paths are `hash_encode.run` (H2 + H1 + v2 encoding in
one pass) and `hash_encode.h2_run`, called directly on well-formed trees, and the public
`hashing.hash_and_encode` / `Hasher.h2` (fast path plus fallback) on every tree. The
definitions are SHA-256(0x02 ‖ `encode_shallow`) in post-order, `hashing.h1` and
`binary_v2.encode_node`: same values, or the same error type and message.

Trees: random nodes of all 34 kinds (`fuzz_decoders.random_node`), shared subtrees (the same
object in several places), and mutations that set one field of one node to a value of the
wrong type or out of range, through `object.__setattr__` (what the frozen dataclasses allow).

    python bench/fuzz_hashing.py --n 20000
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fuzz_decoders import random_node  # noqa: E402

from nda.core import hash_encode, ir  # noqa: E402
from nda.core.binary_v2 import encode_node  # noqa: E402
from nda.core.hashing import Hasher, call_target_h1, h1, h2_reference, hash_and_encode  # noqa: E402

ALIASES = (11, 12, 13, 14)
COMPOSITES = [c for c in ir.NODE_CLASSES if any(k in ("node", "nodes", "optnode", "optnodes") for _, k in c.FIELDS)]
BAD_VALUES = (None, "x", 1.0, -1, 1 << 70, (), (1,), b"\x00", True, ir.Int(3))


def callee_h1(digest: bytes) -> int:
    return int.from_bytes(hashlib.sha256(b"callee" + digest).digest()[:8], "little")


reference_h2 = h2_reference  # the definition (nda.core.hashing)


def outcome(fn, node):
    try:
        return ("ok", fn(node))
    except Exception as e:  # noqa: BLE001 — the comparison is the point
        return ("error", type(e).__name__, str(e))


def definitions(node):
    return reference_h2(node), h1(node, ALIASES, callee_h1), encode_node(node)


def public(node):
    return hash_and_encode(node, Hasher(), ALIASES, callee_h1)


def direct(node):
    d2, d1, data = hash_encode.run(node, {}, lambda t: call_target_h1(t, ALIASES, callee_h1))
    return d2, int.from_bytes(d1, "little"), data


def tree(rng: random.Random, depth: int):
    """A random well-formed tree: `random_node`'s leaves under composite kinds picked 3 times
    in 4 above the last level (`random_node` alone gives mostly leaves)."""
    if depth <= 1 or rng.random() < 0.25:
        return random_node(rng, 1)
    cls = rng.choice(COMPOSITES)
    vals = []
    for _name, kind in cls.FIELDS:
        if kind == "node":
            vals.append(tree(rng, depth - 1))
        elif kind in ("nodes", "optnodes"):
            vals.append(None if kind == "optnodes" and rng.random() < 0.3 else
                        tuple(tree(rng, depth - 1) for _ in range(rng.randrange(4))))
        elif kind == "optnode":
            vals.append(tree(rng, depth - 1) if rng.random() < 0.6 else None)
        else:  # the scalar fields of a composite: take them from a random node of the kind
            vals.append(getattr(_scalars(rng, cls), _name))
    return cls(*vals)


def _scalars(rng: random.Random, cls):
    """A random node of `cls` whose scalar fields serve as the composite's (children unused)."""
    while True:
        n = random_node(rng, 2)
        if type(n) is cls:
            return n


def mutate(rng: random.Random, node):
    """`node` with one field of one of its nodes set to a bad value (a new tree: nodes on the
    path are copied, so `node` itself is unchanged)."""
    subs = list(ir.walk(node))
    target = rng.choice(subs)
    fields = [f.name for f in ir.dc_fields(type(target)) if f.name != "span"]
    if not fields:
        return node
    bad = object.__new__(type(target))
    for f in ir.dc_fields(type(target)):
        object.__setattr__(bad, f.name, getattr(target, f.name))
    object.__setattr__(bad, rng.choice(fields), rng.choice(BAD_VALUES))
    if target is node:
        return bad
    return ir.Scope((node, bad)) if rng.random() < 0.5 else ir.Print(bad)


def shared(rng: random.Random, node):
    subs = list(ir.walk(node))
    return ir.Scope(tuple(rng.choice(subs) for _ in range(rng.randrange(1, 4))) + (node,))


def check(node, well_formed: bool) -> str | None:
    """None when every fast path agrees with the definitions on `node`, else what differs."""
    want = outcome(definitions, node)
    if outcome(public, node) != want:
        return "hash_and_encode"
    if outcome(lambda n: Hasher().h2(n), node) != outcome(reference_h2, node):
        return "Hasher.h2"
    if well_formed:
        if want[0] != "ok" and want[1] != "HashTargetError":
            return "a well-formed tree failed the definitions"
        if want[0] == "ok" and outcome(direct, node) != want:
            return "hash_encode.run"
        if outcome(lambda n: hash_encode.h2_run(n, {}, {}), node) != outcome(reference_h2, node):
            return "hash_encode.h2_run"
    return None


def campaign(n: int, seed: int, max_depth: int) -> tuple[Counter, list]:
    rng = random.Random(seed)
    counts: Counter = Counter()
    bad: list = []
    for _ in range(n):
        node = tree(rng, rng.randrange(1, max_depth + 1))
        r = rng.random()
        if r < 0.3:
            node, ok, label = shared(rng, node), True, "shared"
        elif r < 0.6:
            node, ok, label = mutate(rng, node), False, "mutated"
        else:
            ok, label = True, "random"
        what = check(node, ok)
        counts[label] += 1
        counts["nodes"] += sum(1 for _ in ir.walk(node)) if label != "mutated" else 0
        counts["definition errors"] += outcome(definitions, node)[0] == "error"
        if what is not None:
            counts["differences"] += 1
            bad.append((what, repr(node)[:400]))
    return counts, bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-depth", type=int, default=7)
    a = ap.parse_args(argv)
    counts, bad = campaign(a.n, a.seed, a.max_depth)
    for k, v in sorted(counts.items()):
        print(f"{k:12s} {v}")
    for what, text in bad[:20]:
        print(f"DIFFERENT {what}: {text}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
