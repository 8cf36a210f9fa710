"""The optimizer (runtime.md §3): each pass on hand-written trees, the SCEV closed form against
the spec's check values, exhaustive fuel sweeps, slot numbering, the CLI dump, and a hypothesis
differential test (optimized tier 1 against tier 0 on every observable field, with and without
kind counts, under tight fuel and memory limits)."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nda.core import ir
from nda.tiers.closure import Compiler, Engine
from nda.core.errors import NdaError
from nda.tiers.interp import Interpreter
from nda.tiers.opt_nodes import (
    DeadTail, Elide, Folded, IfFolded, Scev, Unrolled, format_sequence, strip_seq,
)
from nda.tiers.optimize import (
    PASSES, dce_pass, fold_pass, match_scev, optimize_node, optimize_sequence, unroll_pass,
)
from nda.sandbox.runner import available_tiers, run
from nda.syntax.sexpr import parse_sexpr
from nda.runtime.state import Limits, RunState
from nda.runtime.values import NdaVec, Scalar, quantize, value_size

H = ir.name_hash
S, I, X, Y, Z = (H(n) for n in ("s", "i", "x", "y", "z"))
I32_MAX, I32_MIN = 2**31 - 1, -2**31


def seq_of(src: str) -> tuple:
    return tuple(parse_sexpr(src).sequence)


# ---------------------------------------------------------------------------------------------
# Running a (possibly optimized) tree directly, to test passes one by one


def _val(v):
    if type(v) is int:
        return ("i", v)
    if type(v) is Scalar:
        return ("s", v.x, v.s)
    if type(v) is NdaVec:
        return ("v", v.n, v.log2, v.codes.tobytes())
    return ("f", int(np.asarray(v, dtype=np.float32).view(np.uint32)))


def _state(inp, limits, kinds):
    st_ = RunState(limits, None, len(inp), kinds)
    st_.stack.append(quantize(np.asarray(inp, dtype=np.float32)))
    st_.mem_extra = value_size(st_.stack[0]) - 8
    st_.recompute_max_entries()
    return st_


def _observe(st_, err):
    # After an error the stack is not observable (tier 0 may hold transient operands there)
    stack = None if err else tuple(_val(v) for v in st_.stack)
    return (err, st_.executed, st_.loop_iterations, st_.matrix_count, st_.norm_count,
            tuple(st_.log), stack,
            tuple(sorted((st_.kind_counts or {}).items())))


def run_oracle(seq, inp=(), limits=Limits(), kinds=False):
    st_ = _state(inp, limits, kinds)
    err = None
    try:
        Interpreter(st_).run_seq(seq)
    except NdaError as e:
        err = (e.code, e.message)
    return _observe(st_, err)


def run_tree(tree, inp=(), limits=Limits(), kinds=False, preregister=()):
    """Compile an already optimized tree with the tier 1 compiler and run it."""
    comp = Compiler(Engine(), optimize=True)
    for name in preregister:
        comp.reg.slot(name)
    body = comp.seq(tree)
    st_ = _state(inp, limits, kinds)
    st_.group = {}
    err = None
    try:
        body(st_, [None] * len(comp.reg), st_.stack)
    except NdaError as e:
        err = (e.code, e.message)
    return _observe(st_, err)


def assert_exact(seq, passes=PASSES, inp=(1.0, -1.0), limits=Limits(), kinds=False):
    tree = optimize_sequence(seq, passes=passes)
    assert run_tree(tree, inp, limits, kinds) == run_oracle(seq, inp, limits, kinds)
    return tree


# ---------------------------------------------------------------------------------------------
# Pass 1: folding


def test_fold_add_compare_vecop_with_i32_wrapping():
    seq = (ir.Add(ir.Int(I32_MAX), ir.Int(1)),
           ir.Compare(ir.CmpOp.Lt, ir.Int(1), ir.Int(2)),
           ir.Compare(ir.CmpOp.Eq, ir.Int(1), ir.Int(2)),
           ir.VecOp(ir.VecOpKind.Negate, ir.Int(I32_MIN)),
           ir.VecOp(ir.VecOpKind.Abs, ir.Int(I32_MIN)),
           ir.VecOp(ir.VecOpKind.ReduceSum, ir.Int(-7)),
           ir.VecOp(ir.VecOpKind.SiLU, ir.Int(3)))
    got = fold_pass(seq)
    assert got[0] == Folded(I32_MIN, seq[0], ("Add", "Int", "Int"))
    assert got[1] == Folded(1, seq[1], ("Compare", "Int", "Int"))
    assert got[2] == Folded(-1, seq[2], ("Compare", "Int", "Int"))
    assert got[3] == Folded(I32_MIN, seq[3], ("VecOp", "Int"))
    assert got[4] == Folded(I32_MIN, seq[4], ("VecOp", "Int"))
    assert got[5] == Folded(-7, seq[5], ("VecOp", "Int"))
    assert got[6] is seq[6]  # SiLU is not folded (it re-quantizes)
    assert_exact(seq, ("fold",))


def test_fold_nested_constant_keeps_preorder_kinds():
    n = ir.Add(ir.Add(ir.Int(1), ir.Int(2)), ir.VecOp(ir.VecOpKind.Negate, ir.Int(4)))
    (got,) = fold_pass((n,))
    assert got == Folded(-1, n, ("Add", "Add", "Int", "Int", "VecOp", "Int"))
    assert got.extra_nodes == 5 and got.kind_counts == {"Add": 2, "Int": 3, "VecOp": 1}


def test_fold_propagates_int_lets_and_forgets_in_loops():
    seq = seq_of("(let x (int 5)) (print (add (load x) (int 1)))"
                 "(loop 7 (print (load x)) (store x (add (load x) (int 1))))"
                 "(print (load x))")
    got = fold_pass(seq)
    assert got[1] == ir.Print(Folded(6, seq[1].source, ("Add", "Load", "Int")))
    loop = got[2]
    assert type(loop) is ir.Loop and loop.body == seq[2].body  # x is written in the loop
    assert got[3] == seq[3]  # unknown after the loop
    assert_exact(seq, ("fold",))


def test_fold_if_with_constant_condition_and_join():
    seq = seq_of("(let x (int 7)) (if (cmp gt (load x) (int 5)) (then (let y (int 1))) (else (let y (int 2))))"
                 "(print (load y))"
                 "(if (load z) (then (let y (int 3))) (else (let y (int 3)))) (print (load y))")
    got = fold_pass(seq)
    assert type(got[1]) is IfFolded and got[1].cond_kinds == ("Compare", "Load", "Int")
    assert got[1].branch == (ir.Let(Y, ir.Int(1)),)
    assert got[2] == ir.Print(Folded(1, ir.Load(Y), ("Load",)))
    assert got[4] == ir.Print(Folded(3, ir.Load(Y), ("Load",)))  # both branches agree
    assert_exact(seq, ("fold",))
    assert_exact(seq[:3], ("fold",))


def test_fold_identities_need_stack_clean_int_operands():
    # y is an Int in both branches (different values): `y + 0` → y, `0 + y` → y
    seq = seq_of("(let z (int 1)) (if (load q) (then (let y (int 1))) (else (let y (int 2))))"
                 "(add (load y) (int 0)) (add (int 0) (load y))"
                 "(add (load x) (int 0))"                          # x unknown: could be a Vector
                 "(vecop negate (vecop negate (load x)))"          # any type: Negate is an involution
                 "(vecop negate (vecop negate (scope)))")          # not stack-clean: kept
    got = fold_pass(seq)
    assert got[2] == Elide(seq[2], ir.Load(Y), ("Add",), ("Int",), "add0")
    assert got[3] == Elide(seq[3], ir.Load(Y), ("Add", "Int"), (), "add0")
    assert got[4] is seq[4]
    assert got[5] == Elide(seq[5], ir.Load(X), ("VecOp", "VecOp"), (), "negneg")
    assert got[6] is seq[6]


def test_fold_forgets_writes_behind_a_swallowed_return():
    # The Return inside the operand Scope is swallowed by Add: `let x 5` may be skipped.
    seq = seq_of("(let x (int 1)) (let c (int 1))"
                 "(add (scope (if (load c) (then (return (int 9)))) (let x (int 5))) (load x))"
                 "(print (load x))")
    got = fold_pass(seq)
    assert got[2].rhs == ir.Load(X) and got[3] == ir.Print(ir.Load(X))
    assert_exact(seq)


# ---------------------------------------------------------------------------------------------
# Pass 2: unrolling


def test_unroll_small_loop_and_fold_copies():
    seq = seq_of("(let s (int 0)) (loop 3 (store s (add (load s) (int 1)))) (print (load s))")
    got = unroll_pass(seq)
    u = got[1]
    assert type(u) is Unrolled and u.original == seq[1]
    add = seq[1].body[0].value
    assert u.body == tuple(ir.Store(S, Folded(k, add, ("Add", "Load", "Int"))) for k in (1, 2, 3))
    assert got[2] == ir.Print(Folded(3, ir.Load(S), ("Load",)))
    assert_exact(seq, ("unroll",))


def test_unroll_respects_break_targets_and_budget():
    seq = seq_of("(loop 3 (print (int 1)) (if (load c) (then (break))))"   # Break targets it
                 "(loop 2 (loop 3 (break)))"                              # Break targets inner loop
                 "(loop 4 (loop 4 (loop 4 (loop 4 (print (int 1)) (print (int 2))))))"
                 "(loop 0 (print (int 1))) (loop 5 (print (int 1)))")
    got = unroll_pass(seq)
    assert type(got[0]) is ir.Loop
    assert type(got[1]) is Unrolled and all(type(c) is ir.Loop for c in got[1].body)
    outer = got[2]  # 4^4·3 nodes exceed the budget: the outer loop stays, inner ones unroll
    assert type(outer) is ir.Loop and type(outer.body[0]) is Unrolled
    assert type(got[3]) is ir.Loop and type(got[4]) is ir.Loop
    assert_exact(seq, ("unroll",), limits=Limits(fuel=5000))


# ---------------------------------------------------------------------------------------------
# Pass 3: dead code elimination


def test_dce_tail_after_return_and_break():
    seq = seq_of("(loop 2 (print (int 1)) (break) (print (int 2)))"
                 "(return (int 3)) (print (int 4)) (let x (int 5))")
    got = dce_pass(seq)
    assert got[0].body[1] == DeadTail(ir.Break(), (seq[0].body[2],))
    assert got[1:] == (DeadTail(seq[1], seq[2:]),)
    assert strip_seq(got) == seq
    assert_exact(seq, ("dce",))


def test_dce_dead_assignments_and_liveness():
    seq = seq_of("(let a (int 1)) (let a (int 2)) (print (load a))"        # first Let a dead
                 "(let t (scope)) (if (scope) (then))"                     # parameter: never
                 "(let u (int 3)) (loop 3 (print (load u)) (let w (int 4)) (store v (load w)))"
                 "(let b (scope (int 1) (int 2)))")                         # not stack-clean
    got = dce_pass(seq)
    assert got[0] == Elide(seq[0], ir.Int(1), ("Let",), (), "dead")
    assert got[1] == seq[1] and got[3] == seq[3] and got[5] == seq[5]
    body = got[6].body
    assert body[1] == seq[6].body[1]                      # w is read in the loop: live
    assert body[2] == Elide(seq[6].body[2], ir.Load(H("w")), ("Store",), (), "dead")
    assert got[7] == seq[7]
    assert_exact(seq, ("dce",))


def test_dce_sees_through_folded_loads():
    # After unroll+fold nothing reads `s` any more: every assignment to it is dead.
    seq = seq_of("(let s (int 0)) (loop 3 (store s (add (load s) (int 1)))) (print (int 7))")
    got = optimize_sequence(seq, passes=("unroll", "dce"))
    assert got[0] == Elide(seq[0], ir.Int(0), ("Let",), (), "dead")
    assert all(type(c) is Elide and c.rule == "dead" for c in got[1].body)
    # a variable read only through folded Loads is dead
    seq2 = seq_of("(let x (int 5)) (print (load x))")
    got2 = optimize_sequence(seq2, passes=("fold", "dce"))
    assert got2[0] == Elide(seq2[0], ir.Int(5), ("Let",), (), "dead")
    for s_ in (seq, seq2):
        for fuel in range(0, 40):
            for kinds in (False, True):
                assert_exact(s_, limits=Limits(fuel=fuel), kinds=kinds)


def test_dce_break_in_expression_position_lands_after_the_operand():
    seq = seq_of("(loop 2 (let y (int 1)) (add (scope (break) (int 0)) (load y)))")
    assert_exact(seq, ("dce",))
    assert_exact(seq)


# ---------------------------------------------------------------------------------------------
# Pass 4: SCEV-lite


def _scev_program(n, c, order, s0=0, i0=0, swap_s=False, swap_i=False):
    s_add = ir.Add(ir.Load(I), ir.Load(S)) if swap_s else ir.Add(ir.Load(S), ir.Load(I))
    i_add = ir.Add(ir.Int(c), ir.Load(I)) if swap_i else ir.Add(ir.Load(I), ir.Int(c))
    body = (ir.Store(S, s_add), ir.Store(I, i_add))
    if order == "is":
        body = body[::-1]
    return (ir.Let(S, ir.Int(s0)), ir.Let(I, ir.Int(i0)), ir.Loop(n, body))


@pytest.mark.parametrize("n,c,i_end,s_end", [(5, 1, 5, 10), (4, 2, 8, 12), (4, -1, -4, -6),
                                             (1, 3, 3, 0), (100, 1, 100, 4950)])
@pytest.mark.parametrize("order", ["si", "is"])
def test_scev_spec_check_values(n, c, i_end, s_end, order):
    seq = _scev_program(n, c, order)
    tree = optimize_sequence(seq, passes=("scev",))
    assert type(tree[2]) is Scev and tree[2].per_iter == 8
    seq_out = seq + (ir.Load(I), ir.Load(S))
    res = run_tree(tree + seq_out[3:], kinds=False)
    assert res == run_oracle(seq_out)
    stack = [v[1] for v in res[6][1:]]
    assert res[1] == 4 + 1 + 8 * n + 2 and res[2] == 1
    if order == "si":
        assert (stack[-2], stack[-1]) == (i_end, s_end)
    else:  # [i-update, s-update]: s accumulates the already incremented i
        assert stack[-2] == i_end and stack[-1] == s_end + c * n
    for kinds in (False, True):
        assert run_tree(tree, kinds=kinds) == run_oracle(seq, kinds=kinds)


@pytest.mark.parametrize("s0,i0,c", [(I32_MAX, 1, 1), (I32_MIN, -5, -7), (123456789, 987654321, 2**31 - 1),
                                     (0, I32_MIN, I32_MIN)])
def test_scev_wraps_like_the_loop(s0, i0, c):
    for order in ("si", "is"):
        for sw in (False, True):
            seq = _scev_program(5000, c, order, s0, i0, swap_s=sw, swap_i=not sw)
            assert_exact(seq, ("scev",))
            assert_exact(seq)


def test_scev_generalised_accumulators():
    # independent constant and invariant accumulators, and a sum of a linear variable
    seq = seq_of("(let k (int 3)) (let a (int 1)) (let b (int -2)) (let q (int 0))"
                 "(loop 50 (store a (add (load a) (int 7))) (store q (add (load a) (load q)))"
                 "          (store b (add (load k) (load b))))")
    tree = optimize_sequence(seq)
    sc = tree[-1]
    assert type(sc) is Scev
    assert [m for _, m, _ in sc.updates] == ["const", "lin", "const"]  # k folded to 3
    assert_exact(seq)
    seq2 = seq_of("(let a (int 1)) (let b (int -2)) (loop 9 (store b (add (load k) (load b))))"
                  "(store a (add (load a) (load b)))")
    seq2 = (ir.Let(H("k"), ir.Scope((ir.Int(4),))),) + seq2  # k is not a known constant
    tree2 = optimize_sequence(seq2)
    assert [m for _, m, _ in tree2[3].updates] == ["inv"]
    assert_exact(seq2)


def test_scev_rejects_other_shapes():
    for src in ("(loop 9 (store s (add (load s) (load s))))",
                "(loop 9 (store s (add (load s) (load i))) (store i (add (load i) (load s))))",
                "(loop 9 (store s (add (load s) (int 1))) (store s (add (load s) (int 1))))",
                "(loop 9 (store s (add (load i) (int 1))))",
                "(loop 9 (store s (add (load s) (int 1))) (print (load s)))",
                "(loop 0 (store s (add (load s) (int 1))))"):
        assert match_scev(seq_of(src)[0]) is None, src


def test_scev_falls_back_when_not_int_or_out_of_fuel_or_memory():
    base = _scev_program(1000, 1, "si")
    progs = [
        (ir.Let(S, ir.Float.of(1.5)),) + base[1:],
        base[1:],                                        # s unbound: UNDEFINED_VARIABLE
        (ir.Let(S, ir.Scope(())),) + base[1:],           # s = the input Vector
        base,
    ]
    limits = [Limits(), Limits(fuel=5000), Limits(max_memory_bytes=65536 + 16 + 8 * 1500),
              Limits(max_memory_bytes=65536 + 16 + 8 * 2003)]
    for p in progs:
        for lim in limits:
            for kinds in (False, True):
                assert_exact(p, ("scev",), inp=(1.0,), limits=lim, kinds=kinds)


def test_scev_fuel_sweep_around_the_boundary():
    seq = _scev_program(50, 3, "is", 7, -2)
    total = 3 + 8 * 50
    for fuel in list(range(0, 12)) + list(range(total - 12, total + 3)):
        for kinds in (False, True):
            assert_exact(seq, limits=Limits(fuel=fuel), kinds=kinds)


# ---------------------------------------------------------------------------------------------
# Exhaustive fuel sweeps over small optimizable programs

SWEEP = [
    "(let s (int 0)) (loop 3 (store s (add (load s) (int 1)))) (print (load s)) (load s)",
    "(let x (int 7)) (if (cmp gt (load x) (int 5)) (then (print (add (int 1) (int 2)))) (else (print (int 0))))",
    "(let a (int 1)) (let a (int 2)) (add (vecop negate (vecop negate (load a))) (int 0)) (return (load a)) (print (int 1))",
    "(let y (int 1)) (loop 4 (if (cmp lt (load y) (int 3)) (then (store y (add (load y) (int 1))))) (print (load y)))",
    "(let q (cmp lt (int 1) (int 2))) (add (scope (return (int 4))) (add (load q) (int 0))) (print (load q))",
    "(let x (int 2)) (print (cmp lt (int 1) (load x))) (add (load x) (vecop abs (int -3)))",
    "(if (load c) (then (let v (int 1))) (else (let v (int 2)))) (add (load v) (int 0))",
]


@pytest.mark.parametrize("src", SWEEP)
def test_fuel_sweep_is_exact(src):
    seq = seq_of(src)
    total = run_oracle(seq)[1]
    for fuel in range(0, total + 2):
        for kinds in (False, True):
            r = run(seq, [1.0], tier="closure", optimize=True, limits=Limits(fuel=fuel),
                    collect_kind_counts=kinds)
            o = run(seq, [1.0], tier="interp", limits=Limits(fuel=fuel), collect_kind_counts=kinds)
            assert r.observable() == o.observable(), fuel


# ---------------------------------------------------------------------------------------------
# Slots, callees, API


def _slots(tree):
    comp = Compiler(Engine(), optimize=True)
    comp.seq(tree)
    return comp.reg.slots


@pytest.mark.parametrize("src", SWEEP + ["(let z (int 1)) (return (int 1)) (let w (int 2)) (load w)"])
def test_slot_registration_matches_unoptimized(src):
    seq = seq_of(src)
    assert _slots(optimize_sequence(seq)) == _slots(seq)


@pytest.mark.parametrize("src", SWEEP)
def test_slot_numbering_cannot_change_results(src):
    seq = seq_of(src)
    tree = optimize_sequence(seq)
    names = list(_slots(seq))
    ref = run_tree(tree, (1.0,))
    rnd = random.Random(src)
    for _ in range(3):
        rnd.shuffle(names)
        assert run_tree(tree, (1.0,), preregister=names + [H("unused")]) == ref


def test_optimize_node_keeps_parameter_prologue():
    callee = ir.Scope((ir.Let(X, ir.Scope(())), ir.If(ir.Scope(()), (), None),
                       ir.Let(Y, ir.Int(2)), ir.Add(ir.Load(X), ir.Load(Y))))
    got = optimize_node(callee)
    assert type(got) is ir.Scope
    assert got.children[0] is callee.children[0] and got.children[1] is callee.children[1]
    assert got.children[3] == ir.Add(ir.Load(X), Folded(2, ir.Load(Y), ("Load",)))
    assert got.children[2] == Elide(callee.children[2], ir.Int(2), ("Let",), (), "dead")


def test_timings_and_dump_api():
    seq = _scev_program(10, 1, "si")
    timings, dumps = {}, []
    out = optimize_sequence(seq, timings=timings, dump_after="dce", dump=lambda p, t: dumps.append((p, t)))
    assert list(timings) == list(PASSES) and all(v >= 0 for v in timings.values())
    assert len(dumps) == 1 and dumps[0][0] == "dce" and type(dumps[0][1][2]) is ir.Loop
    assert type(out[2]) is Scev
    text = format_sequence(out, {S: "s", I: "i"})
    assert text.splitlines()[2].startswith("(opt scev +80 :loops 1 (loop 10 (store s (add (load s) (load i)))")
    with pytest.raises(ValueError):
        optimize_sequence(seq, passes=("nope",))


def test_cli_dump_after_and_pass_timings(tmp_path):
    from nda.cli.app import main

    p = tmp_path / "p.sexpr"
    p.write_text("(let s (int 0)) (loop 3 (store s (add (load s) (int 1)))) (print (load s))")
    r = CliRunner().invoke(main, ["run", str(p), "--dim", "0", "--tier", "closure", "--json",
                                  "--dump-after", "unroll"], catch_exceptions=False)
    d = json.loads(r.output)
    assert r.exit_code == 0 and d["output_log"] == ["[print] [3.0]"]
    assert set(d["pass_timings_us"]) == set(PASSES)
    assert "(opt unroll +0 :loops 1 (scope (store s (opt fold +2 (int 1)))" in d["dump"]
    r = CliRunner().invoke(main, ["run", str(p), "--dim", "0", "--dump-after", "fold", "--passes"],
                           catch_exceptions=False)
    assert r.exit_code == 0 and "[print] [3.0]" in r.output


# ---------------------------------------------------------------------------------------------
# Differential: random programs biased towards optimizable code

VARS = [S, I, X, Y, Z]
EXAMPLES = int(os.environ.get("NDA_OPT_EXAMPLES", "1000"))
OPT_TIERS = [t for t in available_tiers() if t != "interp"]  # tier 2 builds on tier 1


_STRATS: dict = {}


def _ints(a, b):
    s_ = _STRATS.get((a, b))
    if s_ is None:
        s_ = _STRATS[(a, b)] = st.integers(a, b)
    return s_


_BOOL = st.booleans()
_CONST = st.one_of(st.integers(-3, 5), st.sampled_from([I32_MAX, I32_MIN, 1 << 30, -(1 << 30)]))


class _Gen:
    """Draws through a few cached strategies (building strategies per draw is slow)."""

    def __init__(self, draw):
        self.draw = draw

    def d(self, strategy):
        return self.draw(strategy)

    def pick(self, xs):
        return xs[self.draw(_ints(0, len(xs) - 1))]

    def const(self):
        return self.draw(_CONST)

    def var(self):
        return self.pick(VARS)

    def expr(self, depth):
        k = self.pick(["int", "int", "load", "load"] + (["add", "add", "cmp", "vecop", "negneg", "add0",
                                                         "zero_add", "let", "float", "scope", "swallow"]
                                                        if depth > 0 else []))
        if k == "int":
            return ir.Int(self.const())
        if k == "load":
            return ir.Load(self.var())
        if k == "float":
            return ir.Float.of(self.pick([0.5, -2.0, 3.0]))
        if k == "scope":
            return ir.Scope(self.pick([(), (self.expr(depth - 1),), (ir.Int(1), ir.Int(2))]))
        if k == "add":
            return ir.Add(self.expr(depth - 1), self.expr(depth - 1))
        if k == "cmp":
            return ir.Compare(ir.CmpOp(self.draw(_ints(0, 5))), self.expr(depth - 1), self.expr(depth - 1))
        if k == "vecop":
            return ir.VecOp(ir.VecOpKind(self.draw(_ints(0, 3))), self.expr(depth - 1))
        if k == "negneg":
            return ir.VecOp(ir.VecOpKind.Negate, ir.VecOp(ir.VecOpKind.Negate, self.expr(depth - 1)))
        if k == "add0":
            return ir.Add(self.expr(depth - 1), ir.Int(0))
        if k == "zero_add":
            return ir.Add(ir.Int(0), self.expr(depth - 1))
        if k == "let":
            return self.pick([ir.Let, ir.Store])(self.var(), self.expr(depth - 1))
        # a Scope whose Return/Break is swallowed by the enclosing operator
        sig = self.pick([ir.Return(ir.Int(9)), ir.Break()])
        inner = (ir.If(ir.Load(self.var()), (sig,), None), ir.Let(self.var(), self.expr(depth - 1)))
        return ir.Scope(inner)

    def scev(self):
        n = self.draw(_ints(1, 40))
        c = self.const()
        s = self.pick(VARS)
        i = self.pick([v for v in VARS if v != s])
        sa = ir.Add(ir.Load(s), ir.Load(i)) if self.draw(_BOOL) else ir.Add(ir.Load(i), ir.Load(s))
        ia = ir.Add(ir.Load(i), ir.Int(c)) if self.draw(_BOOL) else ir.Add(ir.Int(c), ir.Load(i))
        body = [ir.Store(s, sa), ir.Store(i, ia)]
        if self.draw(_BOOL):
            body.reverse()
        pre = []
        for v in (s, i):
            start = self.pick(["int", "int", "int", "none", "float", "expr"])
            if start == "int":
                pre.append(ir.Let(v, ir.Int(self.const())))
            elif start == "float":
                pre.append(ir.Let(v, ir.Float.of(1.5)))
            elif start == "expr":
                pre.append(ir.Let(v, self.expr(1)))
        return ir.Scope(tuple(pre) + (ir.Loop(n, tuple(body)),))

    def stmt(self, depth, in_loop):
        kinds = ["let", "let", "store", "expr", "print", "scev", "join"]
        if depth > 0:
            kinds += ["loop", "loop", "if", "if", "scope", "while"]
        if in_loop:
            kinds += ["break"]
        kinds += ["return"]
        k = self.pick(kinds)
        if k == "let":
            return ir.Let(self.var(), self.expr(2))
        if k == "store":
            v = self.var()
            return ir.Store(v, ir.Add(ir.Load(v), ir.Int(self.const())))
        if k == "expr":
            return self.expr(2)
        if k == "print":
            return ir.Print(self.expr(2))
        if k == "scev":
            return self.scev()
        if k == "join":  # a variable that is an Int of unknown value afterwards
            v = self.var()
            return ir.If(ir.Load(self.var()), (ir.Let(v, ir.Int(self.const())),),
                         (ir.Let(v, ir.Int(self.const())),))
        if k == "break":
            return ir.Break()
        if k == "return":
            return ir.Return(self.expr(1))
        if k == "loop":
            return ir.Loop(self.draw(_ints(0, 6)), self.body(depth - 1, True))
        if k == "if":
            cond = self.pick([ir.Int(self.const()), ir.Compare(ir.CmpOp.Gt, ir.Load(self.var()), ir.Int(1)),
                              self.expr(1)])
            other = self.body(depth - 1, in_loop) if self.draw(_BOOL) else None
            return ir.If(cond, self.body(depth - 1, in_loop), other)
        if k == "while":
            v = self.var()
            return ir.Scope((ir.Let(v, ir.Int(self.draw(_ints(0, 3)))),
                             ir.While(ir.Compare(ir.CmpOp.Gt, ir.Load(v), ir.Int(0)),
                                      self.body(depth - 1, True) + (ir.Store(v, ir.Add(ir.Load(v), ir.Int(-1))),))))
        return ir.Scope(self.body(depth - 1, in_loop))

    def body(self, depth, in_loop):
        return tuple(self.stmt(depth, in_loop) for _ in range(self.draw(_ints(0, 3))))


_FUEL = st.one_of(st.integers(0, 300), st.just(100_000))
_MEM = st.sampled_from([1 << 24, 1 << 24, 65536 + 8 * 40, 65536 + 8 * 200])
_WHILE = st.sampled_from([1000, 2])
_OUT = st.sampled_from([100_000, 80])
_INP = st.sampled_from([[1.0, -1.0], [], [0.5]])


@st.composite
def opt_programs(draw):
    g = _Gen(draw)
    binds = tuple(ir.Let(v, ir.Int(g.const())) for v in VARS if draw(_ints(0, 3)))
    seq = binds + tuple(g.stmt(2, False) for _ in range(draw(_ints(1, 5))))
    limits = Limits(fuel=draw(_FUEL), max_memory_bytes=draw(_MEM),
                    max_while_iterations=draw(_WHILE), max_output_bytes=draw(_OUT))
    return seq, draw(_INP), limits


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(opt_programs(), st.booleans())
def test_differential_sandbox(case, kinds):
    seq, inp, limits = case
    o = run(seq, inp, tier="interp", limits=limits, collect_kind_counts=kinds)
    for tier in OPT_TIERS:
        r = run(seq, inp, tier=tier, optimize=True, limits=limits, collect_kind_counts=kinds)
        assert not r.panicked, r.error
        assert r.observable() == o.observable(), tier


@settings(max_examples=max(200, EXAMPLES // 3), deadline=None, suppress_health_check=list(HealthCheck))
@given(opt_programs(), st.lists(st.sampled_from(PASSES), max_size=4), st.booleans())
def test_differential_pass_subsets_full_state(case, passes, kinds):
    """Any subset/order of passes keeps the whole final state (entire stack included)."""
    seq, inp, limits = case
    tree = optimize_sequence(seq, passes=tuple(passes))
    assert run_tree(tree, inp, limits, kinds) == run_oracle(seq, inp, limits, kinds)
    assert strip_seq(tree) == seq
    assert _slots(tree) == _slots(seq)


def test_callee_optimization_through_the_sandbox():
    from nda.syntax.sexpr import parse_sexpr as ps

    src = ("(module (def f (scope (let n (scope)) (if (scope) (then)) (let k (int 2))"
           "  (let t (int 0)) (loop 30 (store t (add (load t) (load n))) (store n (add (load n) (load k))))"
           "  (add (load t) (int 0))))"
           " (def main (scope (int 5) (call @f) (int 3) (call @f))))")
    unit = ps(src)
    for fuel in (10, 100, 200, 300, 1000):
        for kinds in (False, True):
            a = run(unit, [], tier="interp", limits=Limits(fuel=fuel), collect_kind_counts=kinds)
            b = run(unit, [], tier="closure", optimize=True, limits=Limits(fuel=fuel), collect_kind_counts=kinds)
            assert a.observable() == b.observable()


def test_dce_keeps_what_a_return_inside_a_loop_needs_where_it_lands():
    """A Return inside a Loop inside an expression child (here a VecOp operand) lands right
    after that child, where `b` is still read: its Let must not be removed as dead (found by
    the differential generator: the loop's live-in ignored its body's live-in)."""
    src = ("(let a (int 0)) (let b (int 0)) (let a (load a))"
           " (let a (vecop silu (scope (loop 1 (return (load a)) (break) (let a (int 0)))"
           " (if (int 1) (then (store b (add (load b) (int 0))))))))"
           " (load b)")
    seq = parse_sexpr(src).sequence
    oracle = run(seq, [1.0] * 4, tier="interp")
    assert oracle.output_vec == [0.0] and oracle.error is None
    for tier in ("closure", "native"):
        got = run(seq, [1.0] * 4, tier=tier, optimize=True, engine=Engine())
        assert got.observable() == oracle.observable(), tier
