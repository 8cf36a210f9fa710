"""`hash_encode.run` (one function per kind) against the definitions: H2 (`Hasher.h2`),
H1 (`hashing.h1`) and `binary_v2.encode_node` — called directly, so a silent fallback to the
general path cannot hide a wrong fast answer; and `hashing.hash_and_encode` (fast path plus
fallback) on ill-formed and very deep trees, where it must raise exactly what the
definitions raise."""

from __future__ import annotations

import hashlib
import sys

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from nda.core import hash_encode, ir
from nda.core.binary_v2 import encode_node
from nda.core.hashing import VERSION_BYTE, Hasher, call_target_h1, h1, h2_reference, hash_and_encode
from nda.pipeline.conformance import builtin_vectors, prepare

from strategies import call_targets, deep_chain, nodes


def callee_h1(digest: bytes) -> int:
    return int.from_bytes(hashlib.sha256(b"callee" + digest).digest()[:8], "little")


class Aliases:
    """A v1 alias for every group index (the strategies draw indices up to 2^32 − 1)."""

    def __len__(self):
        return 1 << 32

    def __getitem__(self, i):
        return 1000 + i


ALIASES = Aliases()


def target(t) -> int:
    return call_target_h1(t, ALIASES, callee_h1)


def definitions(node):
    return Hasher().h2(node), h1(node, ALIASES, callee_h1).to_bytes(8, "little"), encode_node(node)


def fast(node, memo2=None):
    return hash_encode.run(node, {} if memo2 is None else memo2, target)


def outcome(fn, node):
    try:
        return ("ok", fn(node))
    except Exception as e:  # noqa: BLE001 — the comparison is the point
        return ("error", type(e).__name__, str(e))


def test_every_kind_has_a_function():
    assert set(hash_encode.KIND) == set(ir.NODE_CLASSES) == set(hash_encode.H2_KIND)


reference_h2 = h2_reference  # the definition (nda.core.hashing)


@settings(max_examples=500, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(nodes(max_depth=5, targets=call_targets(group_refs=True)), st.lists(st.integers(0, 30), max_size=4))
def test_h2_run_is_the_definition(node, picks):
    memo2: dict = {}
    leaves: dict = {}
    assert hash_encode.h2_run(node, memo2, leaves) == reference_h2(node)
    assert all(reference_h2(n) == d for n, d in memo2.values())
    # a leaf is kept by its encoding: H2 = SHA-256(0x02 ‖ encoding)
    assert all(hashlib.sha256(VERSION_BYTE + k).digest() == d for k, d in leaves.items())
    subs = list(ir.walk(node))
    shared = ir.Scope(tuple(subs[i % len(subs)] for i in picks) + (node, node))
    assert hash_encode.h2_run(shared, memo2, leaves) == reference_h2(shared)  # warm tables are reused


@settings(max_examples=500, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(nodes(max_depth=5, targets=call_targets(group_refs=True, max_group_index=9)), st.lists(st.integers(0, 30), max_size=4))
def test_random_nodes_and_shared_subtrees(node, picks):
    assert fast(node) == definitions(node)
    subs = list(ir.walk(node))
    shared = ir.Scope(tuple(subs[i % len(subs)] for i in picks) + (node, node))
    assert fast(shared) == definitions(shared)
    memo2: dict = {}
    fast(shared, memo2)  # the Hasher memo it fills holds each node's H2
    h = Hasher()
    assert all(h.h2(n) == d for n, d in memo2.values())


def test_hasher_memo_is_used_and_kept():
    leaf = ir.Add(ir.Int(1), ir.Int(2))
    node = ir.Scope((leaf, ir.Print(leaf), leaf))
    hasher = Hasher()
    hasher.h2(leaf)
    got = hash_and_encode(node, hasher)
    assert got == (Hasher().h2(node), h1(node), encode_node(node))
    assert hasher.known(node) == got[0]


def test_conformance_vectors():
    vectors = builtin_vectors()
    assert len(vectors) > 100
    for v in vectors:
        try:
            seq, _ = prepare(v)
        except Exception:  # noqa: BLE001 — vectors of parse and link errors have no tree
            continue
        node = ir.Scope(tuple(seq))
        assert outcome(fast, node) == outcome(definitions, node), v.id


def _bad(cls, **fields):
    n = object.__new__(cls)
    for f in ir.dc_fields(cls):
        object.__setattr__(n, f.name, fields.get(f.name))
    return n


ILL_FORMED = [
    _bad(ir.Print, source="x"), ir.Peek(_bad(ir.Print, source=-1)),
    _bad(ir.Int, value=2 ** 31), _bad(ir.Int, value=1.5), _bad(ir.Load, name=-1),
    _bad(ir.Compare, op=1.0, lhs=ir.Int(1), rhs=ir.Int(2)), _bad(ir.Compare, op=99, lhs=ir.Int(1), rhs=ir.Int(2)),
    _bad(ir.Loop, count=3, body=None), _bad(ir.Loop, count=3, body=(ir.Int(1), "x")),
    _bad(ir.If, cond=ir.Int(1), then_body="x", else_body=None),
    _bad(ir.If, cond=ir.Int(1), then_body=(), else_body=(7,)),
    _bad(ir.Bitwise, op=0, lhs=ir.Int(1), rhs="r"), _bad(ir.Bitwise, op=None, lhs=ir.Int(1), rhs=None),
    ir.Scope((ir.Int(1), _bad(ir.Matrix, rows=1, cols=8, scale=0, sign=b"\x00\x00", extra=b"\x00"))),
    ir.Scope((ir.Call(ir.NamedRef("f")),)), "not a node", None,
]


@pytest.mark.parametrize("node", ILL_FORMED, ids=range(len(ILL_FORMED)))
def test_ill_formed_fails_like_the_definitions(node):
    want = outcome(lambda n: (Hasher().h2(n), h1(n, ALIASES, callee_h1), encode_node(n)), node)
    assert want[0] == "error"
    assert outcome(lambda n: Hasher().h2(n), node) == outcome(reference_h2, node)
    assert outcome(lambda n: hash_and_encode(n, Hasher(), ALIASES, callee_h1), node) == want


def test_deeper_than_the_python_stack_falls_back():
    node = deep_chain(sys.getrecursionlimit() + 500)
    with pytest.raises(RecursionError):
        fast(node)
    with pytest.raises(RecursionError):
        hash_encode.h2_run(node, {}, {})
    assert Hasher().h2(node) == reference_h2(node)
    assert hash_and_encode(node, Hasher()) == (Hasher().h2(node), h1(node), encode_node(node))


def test_quick_differential_fuzz():
    """A short run of bench/fuzz_hashing.py (the long campaign): random, shared and mutated trees."""
    import importlib.util
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "bench"
    sys.path.insert(0, str(bench))
    try:
        spec = importlib.util.spec_from_file_location("fuzz_hashing", bench / "fuzz_hashing.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(bench))
    counts, bad = mod.campaign(400, seed=7, max_depth=6)
    assert bad == []
    assert counts["mutated"] > 50 and counts["definition errors"] > 30 and counts["shared"] > 50
