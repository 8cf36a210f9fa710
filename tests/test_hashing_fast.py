"""`Hasher.h2` (the generated kind functions of `hash_encode.h2_run`, and its fallback) and
`binary_v2.CHILDREN` against the definition: SHA-256(0x02 ‖ `encode_shallow`) in `_postorder`
order — same digests for every node, same error (type and message) for every ill-formed one,
shared subtrees included."""

from __future__ import annotations


from hypothesis import HealthCheck, given, settings, strategies as st

from nda.core import ir
from nda.core.binary_v2 import CHILDREN
from nda.core.hashing import Hasher, h2_reference

from strategies import nodes


reference_h2 = h2_reference  # the definition (nda.core.hashing)


def outcome(fn, node):
    try:
        return ("ok", fn(node))
    except Exception as e:  # noqa: BLE001 — the comparison is the point
        return ("error", type(e).__name__, str(e))


def same(node):
    got = outcome(lambda n: Hasher().h2(n), node)
    assert got == outcome(reference_h2, node)
    return got


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(nodes(max_depth=5), st.lists(st.integers(0, 7), max_size=3))
def test_random_nodes_and_shared_subtrees(node, picks):
    assert same(node)[0] == "ok"
    subs = list(ir.walk(node))
    shared = ir.Scope(tuple(subs[i % len(subs)] for i in picks) + (node,))
    same(shared)
    h = Hasher()  # one Hasher over several calls: each result as if fresh
    for s in subs[:4] + [node]:
        assert h.h2(s) == reference_h2(s)


def _bad(cls, **fields):
    n = object.__new__(cls)
    for f in ir.dc_fields(cls):
        object.__setattr__(n, f.name, fields.get(f.name))
    return n


def test_ill_formed_nodes_fail_alike():
    one = ir.Int(1)
    assert set(CHILDREN) <= set(ir.NODE_CLASSES)
    bad = [
        _bad(ir.Int, value=1 << 31), _bad(ir.Int, value="1"), _bad(ir.Load, name=-1), _bad(ir.Float, bits=1 << 32),
        _bad(ir.Let, name=1 << 64, init=one), _bad(ir.Store, name=1, value=5), _bad(ir.Add, lhs=one, rhs=None),
        _bad(ir.Compare, op=9, lhs=one, rhs=one), _bad(ir.Math, op=-1, lhs=one, rhs=one), _bad(ir.Print, source="x"),
        _bad(ir.Scope, children=None), _bad(ir.Scope, children=[one, 2]), _bad(ir.Loop, count=-1, body=(one,)),
        _bad(ir.While, cond=one, body=None), _bad(ir.If, cond=one, then_body=(one,), else_body=[one]),
        _bad(ir.If, cond=one, then_body=[one], else_body=(2,)), _bad(ir.Gemv, matrix=one, vector=[one]),
        ir.Call(ir.NamedRef("f")), ir.Matrix(1, 8, 0, b"\x00", b""),
    ]
    errors = 0
    for b in bad:
        for node in (b, ir.Scope((one, b)), ir.If(one, (b,), (b, one)), ir.Add(b, ir.Print(b))):
            errors += same(node)[0] == "error"
    # valid but unusual field values: plain ints for enums, bools, lists for child lists
    for node in (ir.Compare(2, one, one), ir.Math(True, one, one), ir.Load(True), ir.Scope([one, one]),
                 ir.If(one, [one], []), ir.Loop(0, ()), ir.While(one, [one])):
        assert same(node)[0] == "ok"
    assert errors >= 40


def _one_of_each():
    one, two = ir.Int(1), ir.Load(ir.name_hash("x"))
    return [
        ir.Int(-5), ir.Float.of(1.5), two, ir.Let(7, one), ir.Store(8, two), ir.Add(one, two), ir.Dot(two, one),
        ir.Gemv(one, two), ir.Poke(one, two), ir.Print(one), ir.Return(two), ir.Peek(one), ir.Alloc(one),
        ir.Free(two), ir.Compare(ir.CmpOp.Ge, one, two), ir.Math(ir.MathOp.Div, two, one), ir.Scope((one, two, one)),
        ir.Scope(()), ir.Loop(3, (one, two)), ir.While(one, (two,)), ir.If(one, (two,), None), ir.If(one, (), ()),
        ir.If(one, (two, one), (one,)),
    ]


def test_the_common_kinds_hash_as_defined():
    for node in _one_of_each():
        assert same(node)[0] == "ok"


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(nodes(max_depth=6))
def test_children_getters_agree_with_ir_children(node):
    from nda.syntax.text.parser import _node_depth

    for n in ir.walk(node):
        get = CHILDREN.get(type(n))
        assert list(get(n) if get is not None else ()) == list(ir.children(n))
    assert _node_depth(node) == ir.node_depth(node)


def test_hash_and_encode_fails_like_h2_h1_encode_node():
    """Fuzz find (fuzz2): on an ill-formed child `hash_and_encode` raised encode_node's
    message ("Print.source must be a node, got str") where h2, called first, says
    "not a node: str"; it now raises what h2, h1, encode_node raise in that order."""
    from nda.core.binary_v2 import encode_node
    from nda.core.hashing import h1, hash_and_encode

    for node in (_bad(ir.Print, source="x"), ir.Peek(_bad(ir.Print, source=-1)),
                 ir.Scope((ir.Int(1), _bad(ir.If, cond=ir.Int(1), then_body="x", else_body=None)))):
        want = outcome(lambda n: (Hasher().h2(n), h1(n), encode_node(n)), node)
        assert want[0] == "error"
        assert outcome(lambda n: hash_and_encode(n, Hasher()), node) == want
