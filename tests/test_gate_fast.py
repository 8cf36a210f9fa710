"""The gate's fast paths against its general paths: identical findings, in the same order.

`gate._analyze(..., fast=False)` runs every node through the general abstract interpreter
(`Frame.node` with a state per node); the default runs pure expressions and simple statements
through `gate_expr.ev` inline in `Frame.seq`, runs a loop entered with an unknown stack once in
place (the general path iterates `_fixpoint`), and walks the structure with `gate_walk`'s generated per-kind walkers. On
random runnable programs (tests/progen.py), random well-formed trees with unbound names, deep
and shared subtrees, and malformed fields, both must give the same findings — node, message,
hint, code, kind and unit — in the same order.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from nda.analysis import gate
from nda.core import ir
from nda.core.link import link_module
from nda.runtime.state import Limits

from progen import programs as runnable_programs
from strategies import nodes

SETTINGS = settings(max_examples=250, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def both(sequence, **kw):
    kw.setdefault("input_len", 16)
    kw.setdefault("limits", Limits())
    args = (tuple(sequence), kw["input_len"], kw["limits"], kw.get("has_target"), kw.get("functions", ()), kw.get("names"))
    fast = gate._analyze(*args)
    slow = gate._analyze(*args, fast=False)
    return fast, slow


def key(f):
    d = f.diagnostic
    return (id(f.node), d.code, d.message, d.hint, d.span, f.kind, f.unit)


def assert_same(sequence, **kw):
    fast, slow = both(sequence, **kw)
    assert [key(f) for f in fast] == [key(f) for f in slow]
    return fast


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
@SETTINGS
@given(runnable_programs())
def test_runnable_programs(case):
    module, inp, limits = case
    linked = link_module(module)
    fns = [(d.name, d.node, d.group) for d in linked.defs if d.name != "main"]
    assert_same(linked.main_sequence(), input_len=len(inp), limits=limits, functions=fns)
    assert_same(linked.main_sequence(), input_len=None, limits=limits, functions=fns)


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
@SETTINGS
@given(st.lists(nodes(max_depth=5, hash32=False), max_size=6), st.sampled_from([None, 0, 8, 16]),
       st.sampled_from([Limits(), Limits(fuel=30, max_memory_bytes=65536 + 100), Limits(max_node_depth=3)]),
       st.lists(st.integers(0, 5), max_size=3))
def test_random_trees_with_shared_subtrees(seq, input_len, limits, again):
    seq = list(seq)
    for i in again:  # the same node object a second time (findings are keyed by identity)
        if seq:
            seq.append(seq[i % len(seq)])
    seq = [ir.Let(ir.name_hash("x"), ir.Int(1))] + seq if len(seq) % 2 else seq
    assert_same(seq, input_len=input_len, limits=limits)
    assert_same([ir.Loop(3, tuple(seq))], input_len=input_len, limits=limits)
    assert_same([ir.Scope(()), ir.Call(ir.Legacy64(1))] + seq, input_len=input_len, limits=limits)


VARS = [ir.name_hash(v) for v in ("a", "b", "c", "d", "u")]  # "u" is never bound first


def pure_exprs(depth: int) -> st.SearchStrategy:
    """Pure expressions over variables bound to an Int, a Float, Vec(16), Vec(8) (and one
    unbound), so every value rule and message of `gate_expr` is reached on both paths."""
    leaf = st.one_of(st.builds(ir.Load, st.sampled_from(VARS)), st.builds(ir.Int, st.sampled_from([0, 1, 16, 70000, -4])),
                     st.just(ir.Float.of(1.5)))
    if depth <= 0:
        return leaf
    sub = pure_exprs(depth - 1)

    def E(enum):
        return st.sampled_from(list(enum))
    return st.one_of(
        leaf,
        st.builds(ir.Add, sub, sub), st.builds(ir.Compare, E(ir.CmpOp), sub, sub),
        st.builds(ir.Math, E(ir.MathOp), sub, sub), st.builds(ir.MathFunc, E(ir.MathFuncKind), sub),
        st.builds(ir.VecOp, E(ir.VecOpKind), sub), st.builds(ir.Cast, E(ir.TypeKind), E(ir.TypeKind), sub),
        st.builds(ir.Peek, sub), st.builds(ir.Bitwise, E(ir.BitwiseOp), sub, st.one_of(st.none(), sub)),
        st.builds(ir.Dot, sub, sub), st.builds(ir.Scope, st.lists(sub, max_size=2).map(tuple)),
    )


def statements(depth: int) -> st.SearchStrategy:
    ex = pure_exprs(2)
    simple = st.one_of(st.builds(ir.Let, st.sampled_from(VARS), ex), st.builds(ir.Store, st.sampled_from(VARS), ex),
                       st.builds(ir.Print, ex), ex)
    if depth <= 0:
        return simple
    body = st.lists(statements(depth - 1), max_size=3).map(tuple)
    return st.one_of(simple, simple, st.builds(ir.If, ex, body, st.one_of(st.none(), body)),
                     st.builds(ir.Loop, st.sampled_from([1, 2, 9]), body), st.builds(ir.Scope, body),
                     st.builds(ir.While, ex, body))


PROLOGUE = (ir.Let(VARS[2], ir.Scope(())), ir.Let(VARS[3], ir.Matrix(8, 16, 0, b"\x55" * 16, b"\x0f" * 16)),
            ir.Let(VARS[0], ir.Int(1)), ir.Let(VARS[1], ir.Float.of(0.5)))


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
@SETTINGS
@given(st.lists(statements(2), min_size=1, max_size=8), st.booleans())
def test_pure_expressions_flowing_through_variables(body, call_first):
    seq = PROLOGUE + ((ir.Call(ir.Legacy64(1)),) if call_first else ()) + tuple(body)
    assert_same(seq, input_len=16)
    assert_same(seq, input_len=None)
    assert_same((ir.Loop(2, seq),), input_len=16)


def test_handwritten_cases_give_findings_on_both_paths():
    x, y = ir.name_hash("x"), ir.name_hash("y")
    vec = ir.Scope(())  # pushes nothing: the operator takes the input vector
    cases = [
        [ir.Store(x, ir.Add(ir.Load(x), ir.Int(1)))],  # unbound
        [ir.Let(x, ir.Int(1)), ir.Print(ir.Math(ir.MathOp.Add, ir.Load(x), ir.Load(y)))],
        [ir.Let(x, vec), ir.Print(ir.Math(ir.MathOp.Mul, ir.Load(x), ir.Int(2)))],  # Vector in Math
        [ir.Let(x, vec), ir.Let(y, ir.Add(ir.Load(x), ir.Matrix(4, 16, 0, b"\0" * 8, b"\0" * 8)))],
        [ir.Print(ir.Cast(ir.TypeKind.Vector, ir.TypeKind.Int, vec))],
        [ir.Print(ir.Peek(ir.Int(70000))), ir.Print(ir.Peek(ir.Int(16)))],
        [ir.Print(ir.Bitwise(ir.BitwiseOp.And, ir.Int(1), None)), ir.Int(3)],
        [ir.Print(ir.Bitwise(ir.BitwiseOp.Not, ir.Int(1), ir.Load(y)))],
        [ir.Loop(2, (ir.Print(ir.Load(x)), ir.Let(x, ir.Int(1))))],
        [ir.If(ir.Compare(ir.CmpOp.Lt, ir.Load(x), ir.Int(1)), (ir.Let(x, ir.Int(0)),), (ir.Load(x),))],
        [ir.Add(ir.Int(1), ir.Int(2)), ir.Let(x, ir.Int(1)), ir.Load(x)],
        [ir.Print(ir.VecOp(ir.VecOpKind.ReduceSum, ir.Add(vec, ir.Float.of(1.5))))],
    ]
    total = 0
    for seq in cases:
        total += len(assert_same(seq, input_len=16))
        assert_same(seq, input_len=None)
        assert_same([ir.Call(ir.Legacy64(5))] + seq, input_len=16)
    assert total >= 8


def test_memory_limit_at_a_fast_statement():
    x = ir.name_hash("x")
    seq = [ir.Let(x, ir.Int(i)) for i in range(40)]
    found = assert_same(seq, input_len=16, limits=Limits(max_memory_bytes=65536 + 200))
    assert any(f.kind == "limit" for f in found)


def _bad(cls, **fields):
    """A node with arbitrary (possibly ill-typed) field values, as a careless API user or a
    buggy decoder could make it."""
    n = object.__new__(cls)
    for f in ir.dc_fields(cls):
        object.__setattr__(n, f.name, fields.get(f.name))
    return n


def test_malformed_fields_reported_alike_by_both_walks():
    x = ir.name_hash("x")
    good = ir.Int(1)
    bad = [
        _bad(ir.Int, value="1"), _bad(ir.Int, value=1 << 40), _bad(ir.Load, name=-1), _bad(ir.Float, bits=1 << 33),
        _bad(ir.Let, name=x, init=3), _bad(ir.Store, name=1 << 64, value=good), _bad(ir.Add, lhs=good, rhs=None),
        _bad(ir.Dot, lhs=[good], rhs=good), _bad(ir.Print, source="p"), _bad(ir.Compare, op=9, lhs=good, rhs=good),
        _bad(ir.Math, op=ir.CmpOp.Lt, lhs=good, rhs=good), _bad(ir.Scope, children=[good]),
        _bad(ir.Scope, children=(good, 5)), _bad(ir.Loop, count=-1, body=(good,)), _bad(ir.Loop, count=2, body=None),
        _bad(ir.While, cond=good, body=[good]), _bad(ir.If, cond=good, then_body=(good,), else_body=[good]),
        _bad(ir.If, cond=None, then_body=(), else_body=None), _bad(ir.Gemv, matrix=good, vector=1.0),
        _bad(ir.Return, value=()), _bad(ir.Peek, addr=good), _bad(ir.Alloc, size=None),
    ]
    for b in bad:
        for seq in ([b], [ir.Let(x, good), ir.Scope((b, ir.Load(x)))], [ir.If(good, (b,), None), b]):
            fast, slow = both(seq)
            assert [key(f) for f in fast] == [key(f) for f in slow]
    assert any(both([b])[0] for b in bad)


def test_pure_chain_over_an_impure_leaf_is_tried_once(monkeypatch):
    """An Add chain whose innermost operand is a Scope: `ev` gives up once, every node on the
    way is noted impure, and the general path does not try `ev` again at each level (which
    would be quadratic in the chain's length)."""
    from nda.analysis import gate_absint, gate_expr

    calls = [0]
    real = gate_expr.ev

    def counting(*a):
        calls[0] += 1
        return real(*a)

    monkeypatch.setattr(gate_expr, "ev", counting)
    monkeypatch.setattr(gate_absint, "ev", counting)
    node = ir.Scope((ir.Int(1),))
    for k in range(150):
        node = ir.Add(node, ir.Int(k))
    seq = [ir.Let(ir.name_hash("x"), node), ir.Print(ir.Load(ir.name_hash("x")))]
    assert_same(seq, input_len=16)
    assert calls[0] < 4 * 150


def test_ill_typed_triple_fields_are_findings_not_crashes():
    """Fuzz find (bench campaign, fuzz2): a Triple whose hash field is a list crashed both
    walks in the triple batch check (unhashable key); now it is a STRUCTURE finding only."""
    one = ir.Int(1)
    for bad in (_bad(ir.Triple, subject_hash=1, predicate_id=2, object_hash=[one]),
                _bad(ir.Triple, subject_hash=[one], predicate_id=2, object_hash=3)):
        fast, slow = both([ir.Peek(one), bad, bad])
        assert [key(f) for f in fast] == [key(f) for f in slow]
        assert any(f.node is bad for f in fast)


def test_ill_formed_literal_conditions_are_findings_not_crashes():
    """Fuzz find (fuzz2): a While whose condition is a Float with bits outside u32 (or an Int
    whose value is not an int) crashed both walks in the constant-truth shortcut; now the
    condition is of unknown truth and the literal has its STRUCTURE finding."""
    for cond in (_bad(ir.Float, bits=1 << 32), _bad(ir.Float, bits=-1), _bad(ir.Int, value="x")):
        for wrap in (lambda c: ir.While(c, ()), lambda c: ir.If(c, (ir.Int(1),), None)):
            fast, slow = both([wrap(cond)])
            assert [key(f) for f in fast] == [key(f) for f in slow]
            assert any(f.node is cond for f in fast)


def unit_state(seq, limits: Limits, general: bool):
    u = gate._Unit(gate.PROGRAM, tuple(seq), None, limits, None, True)
    (u.walk_general if general else u.walk)()
    return ([key(f) for f in u.findings], u.size, u.max_depth, u.loops, u.root_sizes, u.safe, u.too_deep,
            [id(t) for t in u.triples])


def assert_same_walk(seq, limits: Limits = Limits()):
    assert unit_state(seq, limits, False) == unit_state(seq, limits, True)


def mutations():
    """Every kind with one field set to a wrong value (through object.__setattr__)."""
    good = ir.Int(1)
    wrong = (None, "s", 1.5, -1, 1 << 70, (good, 3), [good], ())
    out = []
    for cls in ir.NODE_CLASSES:
        for f in ir.dc_fields(cls):
            if f.name == "span":
                continue
            for w in wrong:
                out.append((cls, f.name, w))
    return out


def prototype(cls):
    """A well-formed node of `cls` (children Int(1), one-byte planes of 1×8 / 8-wide kinds)."""
    vals = []
    for name, kind in cls.FIELDS:
        if kind == "node":
            vals.append(ir.Int(1))
        elif kind == "nodes":
            vals.append((ir.Int(1),))
        elif kind == "optnode":
            vals.append(ir.Int(1))
        elif kind == "optnodes":
            vals.append(None)
        elif kind.startswith("enum:"):
            vals.append(ir.ENUMS[kind[5:]](0))
        elif kind == "bytes":
            vals.append(b"\x00")
        elif kind == "target":
            vals.append(ir.Legacy64(1))
        else:
            vals.append(8 if name in ("cols", "size") else 1 if name == "rows" else 0)
    return cls(*vals)


@SETTINGS
@given(st.lists(nodes(max_depth=6, hash32=False), max_size=5),
       st.sampled_from([Limits(), Limits(max_node_depth=2), Limits(max_node_depth=4)]),
       st.lists(st.integers(0, 40), max_size=3), st.sampled_from(mutations()), st.integers(0, 50))
def test_gate_walk_equals_the_general_walk(seq, limits, again, mutation, where):
    """`gate_walk` (through `_Unit.walk`) and `_Unit.walk_general` leave the unit in the same
    state: findings, sizes, depth, loops, per-root sizes, safety, depth flag, Triple batch —
    on random trees, shared subtrees, a too-small depth limit and a malformed field anywhere."""
    seq = list(seq)
    subs = [n for r in seq for n in ir.walk(r)]
    for i in again:
        if subs:
            seq.append(subs[i % len(subs)])
    assert_same_walk(seq, limits)
    cls, field, value = mutation
    bad = prototype(cls)
    object.__setattr__(bad, field, value)
    host = list(seq)
    host.insert(where % (len(host) + 1), ir.Scope((ir.Int(2), bad)))
    assert_same_walk(host, limits)


def test_gate_walk_falls_back_when_too_deep_or_not_a_node():
    from strategies import deep_chain

    for depth in (255, 256, 257, 2000):
        assert_same_walk([deep_chain(depth)])
        assert_same_walk([ir.Int(1), deep_chain(depth), ir.Loop(2, (ir.Int(1),))])
    assert_same_walk([ir.Int(1), "not a node", ir.Loop(2, ())])
    assert_same_walk([ir.Scope(()), ir.If(ir.Int(1), (), ())], Limits(max_node_depth=1))


# ---------------------------------------------------------------------------------------------
# gate_syntax: the inline (memo-less) cases against the plain recursive definitions


class RefSyntax:
    """`gate_syntax.Syntax` as first written: every node through the general recursion."""

    def __init__(self, limits: Limits):
        self.limits = limits

    def bound(self, n) -> frozenset:
        t = type(n)
        if t in (ir.Int, ir.Float, ir.Load, ir.Break, ir.Call, ir.Matrix, ir.Norm) + ir.NOOP_KINDS:
            return frozenset()
        acc = {n.name} if t in (ir.Let, ir.Store) else set()
        for c in ir.children(n):
            acc |= self.bound(c)
        return frozenset(acc)

    def signals(self, n) -> frozenset:
        t = type(n)
        if t is ir.Break:
            return frozenset("B")
        if t is ir.Return:
            return frozenset("R")
        if t is ir.Scope:
            return self.seq_signals(n.children)
        if t is ir.If:
            return self.seq_signals(n.then_body) | self.seq_signals(n.else_body or ())
        if t in (ir.Loop, ir.While):
            return self.seq_signals(n.body) - {"B"}
        return frozenset()

    def seq_signals(self, nodes) -> frozenset:
        out: frozenset = frozenset()
        for c in nodes:
            out |= self.signals(c)
        return out

    def seq_min_cost(self, nodes) -> int:
        total = 0
        for c in nodes:
            total += self.min_cost(c)
            if self.signals(c):
                break
        return total

    def min_cost(self, n) -> int:
        from nda.analysis.gate_expr import const_truth

        t = type(n)
        if t in (ir.Int, ir.Float, ir.Load, ir.Break) + ir.NOOP_KINDS:
            return 1
        if t is ir.Call:
            return 2
        if t is ir.Scope:
            return 1 + self.seq_min_cost(n.children)
        if t is ir.Loop:
            body = self.seq_min_cost(n.body)
            if n.count <= 0:
                return 1
            return 1 + body if self.seq_signals(n.body) else 1 + n.count * body
        if t is ir.While:
            if const_truth(n.cond) and not self.seq_signals(n.body):
                iters = max(self.limits.max_while_iterations, 1)
                return 1 + iters * (self.min_cost(n.cond) + self.seq_min_cost(n.body))
            return 1 + self.min_cost(n.cond)
        if t is ir.If:
            truth = const_truth(n.cond)
            then = self.seq_min_cost(n.then_body)
            other = self.seq_min_cost(n.else_body) if n.else_body is not None else 0
            pick = then if truth is True else other if truth is False else min(then, other)
            return 1 + self.min_cost(n.cond) + pick
        if t is ir.Bitwise:
            r = 1 + self.min_cost(n.lhs)
            if n.op != ir.BitwiseOp.Not and n.rhs is not None:
                r += self.min_cost(n.rhs)
            return r
        return 1 + sum(self.min_cost(c) for c in ir.children(n))


@SETTINGS
@given(st.lists(st.one_of(statements(2), nodes(max_depth=4, hash32=False)), min_size=1, max_size=6),
       st.lists(st.integers(0, 30), max_size=3))
def test_syntax_facts_equal_the_plain_recursion(seq, again):
    """`bound`, `plus`, `signals`, `min_cost` and `seq_min_cost` — with their memo-less inline
    cases (leaves, operators over leaves, Let/Store/Print over those) — equal the plain
    recursive definitions on every subtree, shared subtrees included."""
    from nda.analysis.gate_state import Names
    from nda.analysis.gate_syntax import Syntax

    subs = [n for r in seq for n in ir.walk(r)]
    for i in again:  # shared: the same node object under another parent
        seq.append(ir.Scope((subs[i % len(subs)], ir.Loop(2, (subs[i % len(subs)],)))))
        subs = [n for r in seq for n in ir.walk(r)]
    limits = Limits(max_while_iterations=3)
    sx, ref = Syntax(limits), RefSyntax(limits)
    for n in subs:
        assert sx.bound(n) == ref.bound(n)
        assert sx.plus(Names(), n).set == set(ref.bound(n))
        assert sx.signals(n) == ref.signals(n)
        assert sx.min_cost(n) == ref.min_cost(n)
    assert sx.seq_min_cost(seq) == ref.seq_min_cost(seq)
    for n in subs:  # answered again from the memo
        assert sx.min_cost(n) == ref.min_cost(n) and sx.bound(n) == ref.bound(n)


def test_loops_with_an_unknown_entry_against_the_fixpoint():
    """After a Call the stack is unknown: the fast path runs a Loop/While body once, in place
    (its fixpoint is stable at once); the general path iterates `_fixpoint`. Findings inside
    (unbound Loads, constant addresses, WHILE_LIMIT), shared nodes and nesting agree."""
    x, y = ir.name_hash("x"), ir.name_hash("y")
    call = ir.Call(ir.Legacy64(3))
    peek = ir.Print(ir.Peek(ir.Int(70000)))
    spin = ir.While(ir.Int(1), (ir.Store(x, ir.Add(ir.Load(x), ir.Int(1))),))
    inner = ir.Loop(2, (ir.Print(ir.Load(y)), ir.Let(y, ir.Int(1))))
    unbound_cond = ir.While(ir.Compare(ir.CmpOp.Lt, ir.Load(y), ir.Int(3)), (ir.Let(y, ir.Int(1)),))
    cases = [
        [call, ir.Loop(3, (ir.Print(ir.Load(y)),))],
        [call, ir.Loop(20, (peek, ir.Let(x, ir.Int(1))))],
        [call, ir.Let(x, ir.Int(0)), spin],
        [call, unbound_cond],
        [call, ir.While(ir.Scope((ir.Load(y),)), (ir.Break(),))],
        [call, ir.Loop(2, (inner, inner, ir.While(ir.Int(0), (peek,))))],
        [ir.Let(x, ir.Int(0)), ir.Loop(2, (spin, call)), spin],
        [ir.Loop(3, (call, unbound_cond)), unbound_cond],
        [call, ir.If(ir.Load(x), (ir.Loop(2, (ir.Break(),)),), (ir.Return(ir.Int(1)),)), peek],
        [call, ir.Loop(2, (ir.Break(), peek)), peek],  # only the Break leaves: code after runs
        [call, ir.While(ir.Int(1), (ir.If(ir.Load(y), (ir.Break(),), None), peek)), peek],
    ]
    total = 0
    for seq in cases:
        for lim in (Limits(), Limits(fuel=50), Limits(max_while_iterations=2)):
            total += len(assert_same(seq, input_len=16, limits=lim))
        assert_same([ir.Scope(tuple(seq))], input_len=None)
    assert total >= 12
