"""The gate's static validation (`nda.analysis.gate`): every finding kind with the runtime's own message,
checked against tier 0 where a run can fail; and no false positives — the conformance vectors
and the text examples that succeed give no findings, and on random programs (tests/progen.py) a
reported node that a tier-0 run evaluates always makes that run fail, inside that node."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from nda.core import ir
from nda.pipeline.conformance import load_vectors, prepare, vector_path
from nda.core.errors import DIMENSION_MISMATCH, VALIDATION_ERROR, NdaError, ValidationError
from nda.analysis.gate import analyze, validate, validate_or_raise, validate_triples
from nda.tiers.interp import Interpreter
from nda.core.link import GroupInfo, MemoryResolver, link_module
from nda.sandbox.runner import run
from nda.syntax.sexpr import parse_sexpr
from nda.runtime.state import Limits, RunState
from nda.runtime.values import quantize, value_size

from progen import programs
from text_strategies import EXAMPLES

NE = "\u2260"
EMPTY = "(print (scope)) "  # pops the input vector: the stack is then definitely empty


def seq(src: str):
    return parse_sexpr(src).sequence


def msgs(src_or_seq, inp=(), **kw):
    s = seq(src_or_seq) if isinstance(src_or_seq, str) else src_or_seq
    return [d.message for d in validate(s, input_len=len(inp), **kw)]


def run0(src_or_seq, inp=(), limits=None, store=None):
    s = seq(src_or_seq) if isinstance(src_or_seq, str) else src_or_seq
    return run(s, list(inp), store=store, limits=limits or Limits(), tier="interp")


def agree(src, inp=(), limits=None):
    """The gate's only finding is exactly the error tier 0 raises on this program."""
    kw = {"limits": limits} if limits else {}
    found = msgs(src, inp, **kw)
    res = run0(src, inp, limits)
    assert res.error is not None, src
    assert found == [res.error], (src, found, res.error)


# ---------------------------------------------------------------------------------------------
# The examples


def test_matrix_128x128_on_896_input_is_rejected():
    src = "(matrix 128 128 :sign aa :extra 55)"
    want = f"Matrix GEMV dimension mismatch: input len 896 {NE} matrix cols 128"
    diags = validate(seq(src), input_len=896)
    assert [d.message for d in diags] == [want]
    assert diags[0].code == DIMENSION_MISMATCH and diags[0].span == seq(src)[0].span
    assert diags[0].stage == "gate" and run0(src, [1.0] * 896).error_code == DIMENSION_MISMATCH
    assert diags[0].span is not None and diags[0].hint
    assert run0(src, [1.0] * 896).error == want
    with pytest.raises(ValidationError) as ei:
        validate_or_raise(seq(src), input_len=896)
    assert str(ei.value) == f"validation: {want}"
    assert ei.value.code == VALIDATION_ERROR and len(ei.value.diagnostics) == 1
    assert validate_or_raise(seq(src), input_len=128) is None
    assert validate(seq(src), input_len=None) == []  # unknown width: nothing is definite


def test_norm_of_size_zero_is_rejected():
    assert msgs("(norm 0 :weight _ :bias _)", inp=[]) == ["Norm size must be at least 1, got 0"]
    # a scalar broadcast to size 0 would even run: the rule is structural
    assert run0("(int 1) (norm 0 :weight _ :bias _)").error is None
    assert "Norm size must be at least 1, got 0" in msgs("(int 1) (norm 0 :weight _ :bias _)")


def test_all_findings_at_once_in_program_order():
    src = "(load nope) (norm 0 :weight _ :bias _) (call #x:00000000000000aa)"
    found = msgs(src, has_target=lambda t: False)
    assert found == [f"undefined variable (hash {ir.name_hash('nope'):016x})",
                     "Norm size must be at least 1, got 0",
                     "call target 00000000000000aa not found"]


# ---------------------------------------------------------------------------------------------
# Stack underflow: every pop's own message, as tier 0 raises it

UNDERFLOWS = [
    ("(matrix 2 8 :sign aa :extra 55)", "Stack underflow in Matrix GEMV"),
    ("(norm 8 :weight ff :bias 00)", "Stack underflow in Norm"),
    ("(if (scope) (then))", "Stack underflow in If condition"),
    ("(while (scope) (int 1))", "Stack underflow in While condition"),
    ("(cmp eq (scope) (scope))", "Stack underflow in Compare rhs"),
    ("(cmp eq (int 1) (scope))", "Stack underflow in Compare lhs"),
    ("(let x (scope))", "Stack underflow in Let init"),
    ("(store x (scope))", "Stack underflow in Store value"),
    ("(add (scope) (scope))", "Stack underflow in Add rhs"),
    ("(add (int 1) (scope))", "Stack underflow in Add lhs"),
    ("(vecop negate (scope))", "Stack underflow in VecOp operand"),
    ("(print (scope))", "Stack underflow in Print source"),
    ("(bitwise not (scope))", "Stack underflow in Bitwise lhs"),
    ("(bitwise and (int 1) (scope))", "Stack underflow in Bitwise rhs"),
    ("(math add (scope) (scope))", "Stack underflow in Math rhs"),
    ("(math add (int 1) (scope))", "Stack underflow in Math lhs"),
    ("(mathfunc sin (scope))", "Stack underflow in MathFunc"),
    ("(peek (scope))", "Stack underflow in Peek"),
    ("(poke (scope) (scope))", "Stack underflow in Poke value"),
    ("(poke (int 1) (scope))", "Stack underflow in Poke address"),
    ("(gemv (scope) (scope))", "Stack underflow in Gemv vector"),
    ("(let v (cast int vector (int 1))) (print (scope)) (gemv (scope) (load v))",
     "Stack underflow in Gemv matrix"),
    ("(dot (scope) (scope))", "Stack underflow in Dot rhs"),
    ("(let v (cast int vector (int 1))) (print (scope)) (dot (scope) (load v))",
     "Stack underflow in Dot lhs"),
    ("(syscall 1 (int 1) (scope) (scope))", "Stack underflow in Syscall args"),
    ("(cast int float (scope))", "Stack underflow in Cast operand"),
]


@pytest.mark.parametrize("src,want", UNDERFLOWS, ids=[w for _, w in UNDERFLOWS])
def test_underflow_findings_match_tier0(src, want):
    agree(EMPTY + src)
    assert msgs(EMPTY + src) == [want]


# ---------------------------------------------------------------------------------------------
# Shapes and types: definite failures, with tier 0's messages

LET_A = "(let a (scope)) "  # a copy of the input vector, the input stays below
SHAPES = [
    ("(norm 8 :weight ff :bias 00)", [1.0] * 3, f"Norm dimension mismatch: input len 3 {NE} norm size 8"),
    (LET_A + "(add (load a) (matrix 2 3 :sign ff :extra 00))", [1.0] * 3,
     f"Add dimension mismatch: lhs len 3 {NE} rhs len 2"),
    (LET_A + "(dot (load a) (matrix 2 3 :sign ff :extra 00))", [1.0] * 3, "Dot vector length mismatch"),
    ("(dot (scope) (int 1))", [1.0], "Dot rhs operand must be a Vector"),
    (LET_A + "(dot (int 1) (load a))", [1.0], "Dot lhs operand must be a Vector"),
    ("(gemv (scope) (float 2.0))", [1.0], "Gemv vector operand must be a Vector"),
    (LET_A + "(gemv (int 1) (load a))", [1.0], "Gemv matrix operand must be a Vector"),
    (LET_A + "(gemv (load a) (load a))", [], "Gemv cols cannot be zero"),
    ("(math add (scope) (int 1))", [1.0], "Unsupported type mismatch in Math"),
    ("(math div (int 1) (scope))", [1.0], "Unsupported type mismatch in Math"),
    ("(mathfunc sqrt (scope))", [1.0], "MathFunc operand must be scalar"),
    ("(cast vector int (scope))", [1.0], "Cannot cast Vector to Int"),
    ("(cast vector float (scope))", [1.0], "Cannot cast Vector to Float"),
    ("(peek (scope))", [1.0], "Peek address must be scalar"),
    ("(poke (scope) (int 1))", [1.0], "Poke address must be scalar"),
    ("(peek (int 70000))", [], "Out of bounds MMIO/heap read at address 70000"),
    ("(poke (int 65533) (int 1))", [], "Out of bounds MMIO/heap write at address 65533"),
    (LET_A + "(poke (int 16) (load a))", [1.0], "Poke value must be scalar"),
    ("(load x)", [], f"undefined variable (hash {ir.name_hash('x'):016x})"),
    ("(bitwise and (int 1))", [], "Missing rhs for binary Bitwise op"),
    ("(vecop negate (cast int vector (int 1))) (matrix 2 4 :sign ff :extra 00)", [1.0] * 3,
     f"Matrix GEMV dimension mismatch: input len 3 {NE} matrix cols 4"),
    ("(matrix 2 3 :sign ff :extra 00) (norm 3 :weight ff :bias 00)", [1.0] * 3,
     f"Norm dimension mismatch: input len 2 {NE} norm size 3"),
]


@pytest.mark.parametrize("src,inp,want", SHAPES, ids=[w[:40] for _, _, w in SHAPES])
def test_shape_and_type_findings_match_tier0(src, inp, want):
    assert msgs(src, inp) == [want]
    agree(src, inp)


@pytest.mark.parametrize("src", [
    "(int 3) (matrix 2 8 :sign aa :extra 55)",           # Scalar broadcast to cols
    "(float 0.5) (matrix 2 8 :sign aa :extra 55)",       # Float broadcast to cols
    "(float 0.5) (norm 8 :weight ff :bias 00)",
    "(add (scope) (int 1)) (matrix 2 5 :sign aa :extra 55)",  # Vec(5) + Scalar stays Vec(5)
    "(let a (scope)) (poke (int -268435456) (load a)) (peek (int -268435456))",  # MMIO: any kind
    "(syscall 2 (int 1)) (syscall 1) (print (scope)) (print (scope))",
])
def test_broadcasts_and_legal_programs_give_no_finding(src):
    assert msgs(src, [1.0] * 5) == []
    assert run0(src, [1.0] * 5).error is None


# ---------------------------------------------------------------------------------------------
# Control flow: joins, unknown stacks, loops, unreachable code

C = "(let c (peek (int 0))) "  # a run-time condition the gate cannot decide (Any)


def test_if_branches_of_equal_depth_are_joined():
    src = C + "(if (load c) (then (int 1)) (else (float 2.0))) (print (scope)) (print (scope))" \
        " (matrix 2 3 :sign ff :extra 00)"
    assert msgs(src, [1.0, 2.0]) == [f"Matrix GEMV dimension mismatch: input len 2 {NE} matrix cols 3"]
    agree(src, [1.0, 2.0])
    # Int ⊔ Float is Any: a Matrix on it could broadcast, so nothing is said
    assert msgs(C + "(if (load c) (then (int 1)) (else (float 2.0))) (matrix 2 3 :sign ff :extra 00)",
                [1.0, 2.0]) == []
    # Vec(2) ⊔ Vec(3) is Vec(?): no width claim either
    assert msgs(C + "(if (load c) (then (scope)) (else (matrix 3 2 :sign ff :extra 00)))"
                    " (matrix 2 3 :sign ff :extra 00)", [1.0, 2.0]) == []


def test_unequal_branch_depths_and_calls_make_the_stack_unknown():
    pops = " (print (scope))" * 5
    assert msgs(C + "(if (load c) (then (int 1)))" + pops, []) == []
    found = msgs("(call #x:0000000000000001)" + pops + " (load zz)", [])
    assert found == [f"undefined variable (hash {ir.name_hash('zz'):016x})"]  # Loads still checked


def test_constant_conditions_select_a_branch():
    assert msgs("(if (int 0) (then (load nope) (add (scope) (scope))))", []) == []
    assert msgs("(if (float -1.0) (then (load nope)))", []) == []
    assert msgs("(while (int 0) (load nope))", []) == []
    src = "(if (int 1) (then (int 5)) (else (load nope))) (print (scope)) (print (scope)) (print (scope))"
    assert msgs(src, []) == ["Stack underflow in Print source"]
    agree(src)


def test_loops_small_counts_unrolled_large_counts_summarized():
    src = "(loop 3 (int 1))" + " (print (scope))" * 4 + " (print (scope))"
    assert msgs(src, []) == ["Stack underflow in Print source"]
    agree(src)
    src = "(loop 100 (print (int 1))) (print (scope)) (print (scope))"  # stack-neutral body
    assert msgs(src, []) == ["Stack underflow in Print source"]
    agree(src)
    assert msgs("(loop 100 (int 1))" + " (print (scope))" * 300, []) == []  # not summarizable
    assert msgs("(loop 0 (load nope) (print (scope)) (print (scope)))", []) == []


def test_node_failing_only_in_a_later_iteration_is_not_reported():
    # iteration 1 pops the input, iteration 2 underflows: the Print does not fail *every* time
    src = "(loop 2 (print (scope)))"
    assert msgs(src, []) == []
    assert run0(src).error == "Stack underflow in Print source"


def test_code_after_return_or_break_is_not_checked():
    assert msgs("(return (int 1)) (add (scope) (scope)) (load nope)", []) == []
    assert msgs("(loop 3 (break) (add (scope) (scope)) (load nope))", []) == []
    assert msgs("(scope (int 1) (return (int 2)) (load nope))", []) == []
    # an expression child ignores its signal: the parent still runs
    src = "(add (scope (int 1) (return (int 2)) (int 3)) (int 4))" + " (print (scope))" * 4
    assert msgs(src, []) == ["Stack underflow in Print source"]
    agree(src)


def test_no_op_children_are_never_checked():
    src = "(alloc (load nope)) (free (add (scope) (scope))) (atomic faa (load a) (load b))" \
        " (gpu_dispatch 5 (load nope))"
    assert msgs(src, []) == []
    assert run0(src).error is None


# ---------------------------------------------------------------------------------------------
# Unbound Loads (rule: no Let/Store earlier in the frame nor in an enclosing loop)

X = f"undefined variable (hash {ir.name_hash('x'):016x})"


def test_unbound_load_rule():
    assert msgs("(load x) (let x (int 1))", []) == [X]
    assert msgs("(let x (load x))", []) == [X]                      # binds after its init
    assert msgs("(free (let x (int 1))) (load x)", []) == [X]        # no-op children never run
    assert msgs(C + "(if (load c) (then (let x (int 1)))) (load x)", []) == []
    assert msgs(C + "(if (load c) (then (let x (int 1)) (return (int 0)))) (load x)", []) == []
    assert msgs("(loop 2 (print (load x)) (let x (int 1)))", []) == []  # enclosing loop body
    assert msgs("(while (load x) (store x (int 0)))", []) == []
    assert msgs("(scope (store x (int 1))) (load x)", []) == []


def test_functions_have_fresh_frames_and_unknown_stacks():
    prologue = "(scope (let n (scope)) (if (scope) (then)) (print (load n)) (print (scope)))"
    fns = [("f", parse_sexpr(prologue).sequence[0], None),
           ("g", parse_sexpr("(scope (load x))").sequence[0], None)]
    found = analyze(seq("(let x (int 1))"), input_len=0, functions=fns)
    assert [(f.unit, f.message) for f in found] == [("g", X)]


# ---------------------------------------------------------------------------------------------
# Call targets


def test_call_targets():
    h = ir.Hash32(bytes(range(32)))
    legacy = ir.Legacy64(0xABC)
    prog = (ir.Call(h), ir.Call(legacy))
    assert msgs(prog, has_target=lambda t: False) == [f"call target {h} not found",
                                                      "call target 0000000000000abc not found"]
    assert msgs(prog, has_target=lambda t: t == h) == ["call target 0000000000000abc not found"]
    assert msgs(prog) == []  # no store given: existence is not checked
    assert msgs((ir.Call(ir.GroupRef(0)),)) == ["call target g:0 not found"]
    assert msgs((ir.Call(ir.NamedRef("foo")),)) == ["call target @foo not found"]
    assert run0((ir.Call(h),)).error == f"call target {h} not found"
    group = GroupInfo(b"\x01" * 32, (b"\x02" * 32, b"\x03" * 32))
    fns = [("a", ir.Scope((ir.Call(ir.GroupRef(1)),)), group),
           ("b", ir.Scope((ir.Call(ir.GroupRef(2)),)), group),
           ("c", ir.Scope((ir.Call(ir.GroupRef(0)),)), None)]
    found = analyze((), input_len=0, functions=fns)
    assert [(f.unit, f.message, f.kind) for f in found] == [
        ("b", "call target g:2 not found", "target"), ("c", "call target g:0 not found", "target")]


# ---------------------------------------------------------------------------------------------
# Structure


def test_structure_findings():
    cases = [
        (ir.Matrix(0, 8, 0, b"", b""), ["Matrix rows must be at least 1, got 0"]),
        (ir.Matrix(2, 8, 0, b"\x00", b"\x00\x00"), ["Matrix sign plane has 1 bytes, expected 2"]),
        (ir.Matrix(2, 8, 200, b"\x00\x00", b"\x00\x00"), ["invalid scale 200 in Matrix (out of i8 range)"]),
        (ir.Norm(8, b"\x00\x00", b"\x00"), ["Norm weight plane has 2 bytes, expected 1"]),
        (ir.Norm(70000, b"", b""), ["invalid size 70000 in Norm (out of u16 range)",
                                    "Norm weight plane has 0 bytes, expected 8750",
                                    "Norm bias plane has 0 bytes, expected 8750"]),
        (ir.Compare(9, ir.Int(1), ir.Int(2)), ["invalid op 9 in Compare (not a CmpOp)"]),
        (ir.Int(1 << 31), ["invalid value 2147483648 in Int (out of i32 range)"]),
        (ir.Loop(-1, ()), ["invalid count -1 in Loop (out of u32 range)"]),
        (ir.Let(-1, ir.Int(0)), ["invalid name -1 in Let (out of u64 range)"]),
        (ir.Cast(ir.TypeKind.Int, 7, ir.Int(1)), ["invalid to_type 7 in Cast (not a TypeKind)"]),
        (ir.Bitwise(ir.BitwiseOp.Not, ir.Int(1), ir.Int(2)), ["Bitwise Not must not have an rhs"]),
        (ir.Print("x"), ["Print source is not a node (str)"]),
        (ir.Call(ir.Hash32(b"\x00" * 5)), ["invalid Hash32 call target (digest must be 32 bytes)"]),
    ]
    for node, want in cases:
        assert [d.message for d in validate((node,), input_len=None)] == want, node
    assert msgs(("not a node",)) == ["element 0 of <program> is not a node (str)"]


def test_nesting_limit():
    deep = ir.Int(1)
    for _ in range(4):
        deep = ir.Scope((deep,))
    assert msgs((deep,), limits=Limits(max_node_depth=4)) == ["node nesting exceeds 4"]
    assert run0((deep,), limits=Limits(max_node_depth=4)).error == "node nesting exceeds 4"
    assert msgs((deep,), limits=Limits(max_node_depth=5)) == []
    # default limit: far too deep is reported (no recursion error), just deep enough is analysed
    chain = ir.Int(1)
    for _ in range(400):
        chain = ir.Scope((chain,))
    assert msgs((chain,)) == ["node nesting exceeds 256"]
    node = ir.Scope(())
    for _ in range(254):
        node = ir.VecOp(ir.VecOpKind.Negate, node)
    node = ir.Print(node)
    assert ir.node_depth(node) == 256
    assert msgs((node,), [1.0]) == [] and run0((node,), [1.0]).error is None
    agree(seq(EMPTY) + (node,))
    assert msgs(seq(EMPTY) + (node,)) == ["Stack underflow in VecOp operand"]


def test_triple_batch_messages_and_order():
    t = ir.Triple
    prog = (t(1, 2, 1), t(0, 2, 5), t(3, 2, 4), ir.GpuDispatch(1, (t(3, 2, 4),)), t(0, 2, 0))
    assert msgs(prog) == [
        "triple[0]: subject and object have same hash (self-reference)",
        "triple[1]: subject_hash is zero (null reference)",
        "triple[4]: subject_hash is zero (null reference)",
        "triple[4]: object_hash is zero (null reference)",
        "triple[4]: subject and object have same hash (self-reference)",
        "triple[3] is a duplicate",
    ]
    assert validate_triples([(1, 2, 3), (1, 2, 3), (3, 1, 3)]) == ["triple[2]: subject and object have same "
                                                                   "hash (self-reference)",
                                                                   "triple[1] is a duplicate"]
    assert validate_triples([(1, 2, 3), (1, 3, 3 + 1)]) == []
    # each function is its own batch
    fn = ("f", ir.Scope((t(1, 2, 3),)), None)
    assert msgs((t(1, 2, 3),), functions=[fn]) == []


# ---------------------------------------------------------------------------------------------
# Limits a program provably exceeds


def test_fuel():
    six = "(int 1) " * 6
    assert msgs(six, limits=Limits(fuel=5)) == ["fuel exhausted after 5 nodes"]
    assert run0(six, limits=Limits(fuel=5)).error == "fuel exhausted after 5 nodes"
    assert msgs(six, limits=Limits(fuel=6)) == [] and run0(six, limits=Limits(fuel=6)).error is None
    loop = "(loop 500 (print (int 1)))"  # 1 + 500 × 2 nodes
    agree(loop, limits=Limits(fuel=1000))
    assert msgs(loop, limits=Limits(fuel=1001)) == []
    # a body that may break early proves nothing
    assert msgs(C + "(loop 500 (if (load c) (then (break))) (print (int 1)))", limits=Limits(fuel=1000)) == []
    # a Return before the expensive part ends the program
    assert msgs(C + "(if (load c) (then (return (int 1)))) " + six, limits=Limits(fuel=8)) == []


def test_memory_at_statement_boundaries():
    lim = Limits(max_memory_bytes=65536 + 40)  # input [] takes 8 bytes, each Int 8 more
    assert msgs("(int 1) " * 4, limits=lim) == []
    assert run0("(int 1) " * 4, limits=lim).error is None
    agree("(int 1) " * 5, limits=lim)
    assert msgs("(int 1) " * 5, limits=lim) == ["memory limit exceeded: 65584 > 65576 bytes"]


def test_while_that_never_ends():
    src = "(while (int 1) (print (int 1)))"
    agree(src, limits=Limits(max_while_iterations=5))
    agree(src, limits=Limits(fuel=10, max_while_iterations=100))
    assert msgs(src, limits=Limits(fuel=10, max_while_iterations=100)) == ["fuel exhausted after 10 nodes"]
    assert msgs("(while (int 1) (print (int 1)) (break))") == []
    assert msgs(C + "(while (int 1) (if (load c) (then (return (int 0)))))") == []
    # only in the program: a function with the same loop is not judged
    assert analyze((), input_len=0, functions=[("f", seq(src)[0], None)]) == []


def test_pathological_loop_nest_stays_fast():
    body = (ir.Print(ir.Int(1)),)
    for _ in range(40):
        body = (ir.Loop(8, body),)
    t0 = time.perf_counter()
    assert msgs(body, [], limits=Limits(fuel=1 << 200)) == []
    assert time.perf_counter() - t0 < 5


# ---------------------------------------------------------------------------------------------
# No false positives: conformance vectors and text examples


def test_conformance_vectors():
    detected = set()
    for v in load_vectors(vector_path("spec")):
        sequence, store = prepare(v)
        unit = parse_sexpr(v.program)
        fns = []
        if unit.module is not None:
            fns = [(d.name, d.node, d.group) for d in link_module(unit.module).defs if d.name != "main"]
        found = analyze(sequence, input_len=len(v.input), limits=Limits.from_dict(v.limits),
                        has_target=lambda t: store.resolve_call(t, None) is not None, functions=fns)
        if "output_vec" in v.expect:
            assert found == [], (v.id, [f.message for f in found])
        else:
            for f in found:
                assert v.expect["error_contains"] in f.message, (v.id, f.message)
            if found:
                detected.add(v.id)
    assert {"math_vector_operand_error", "dot_length_mismatch", "load_undefined_variable",
            "matrix_shape_mismatch", "call_missing_target", "while_limit", "fuel_exhausted",
            "peek_out_of_bounds", "poke_out_of_bounds"} <= detected


@pytest.mark.parametrize("src", EXAMPLES)
def test_text_examples_give_no_findings(src):
    from nda.syntax.text import parse_text

    linked = link_module(parse_text(src))
    store = MemoryResolver()
    store.add_linked(linked)
    sequence = linked.main_sequence()
    fns = [(d.name, d.node, d.group) for d in linked.defs if d.name != "main"]
    for inp in ([1.0] * 896, [1.0] * 8, []):
        res = run(sequence, inp, store=store, tier="interp")
        found = validate(sequence, input_len=len(inp), functions=fns,
                         has_target=lambda t: store.resolve_call(t, None) is not None)
        if res.error is None:
            assert found == [], (src, inp, found)
        else:
            assert all(d.message == res.error for d in found), (src, inp, found, res.error)


# ---------------------------------------------------------------------------------------------
# No false positives: random programs against an instrumented tier 0


class _Tracing(Interpreter):
    """Tier 0, recording which main-frame nodes began evaluation and which an error unwound."""

    def __init__(self, state):
        super().__init__(state)
        self.reached: Counter = Counter()
        self.unwound: set[int] = set()
        self.failed = None

    def eval(self, node):
        top = self.st.call_depth == 0
        if top:
            self.reached[id(node)] += 1
        try:
            return super().eval(node)
        except NdaError:
            if top:
                self.unwound.add(id(node))
                if self.failed is None:
                    self.failed = node
            raise


def _traced_run(sequence, inp, store, limits):
    state = RunState(limits, store, len(inp))
    v = quantize(np.asarray(inp, dtype=np.float32))
    state.stack.append(v)
    state.mem_extra = value_size(v) - 8
    state.recompute_max_entries()
    t = _Tracing(state)
    try:
        t.run_seq(sequence)
        return t, None
    except NdaError as e:
        return t, e


LIMIT_CODES = ("FUEL_EXHAUSTED", "DEADLINE_EXCEEDED", "CALL_DEPTH", "MEMORY_LIMIT")
MISSING_RHS = "Missing rhs for binary Bitwise op"


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
def test_no_false_positives_on_random_programs():
    stats: Counter = Counter()

    @settings(max_examples=1000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(programs())
    def prop(case):
        module, inp, limits = case
        linked = link_module(module)
        store = MemoryResolver()
        store.add_linked(linked)
        sequence = linked.main_sequence()
        res = run(sequence, inp, store=store, limits=limits, tier="interp")
        fns = [(d.name, d.node, d.group) for d in linked.defs if d.name != "main"]
        found = analyze(sequence, input_len=len(inp), limits=limits, functions=fns,
                        has_target=lambda t: store.resolve_call(t, None) is not None)
        tr, err = _traced_run(sequence, inp, store, limits)
        assert (err.message if err else None) == res.error  # the instrumented run is tier 0
        stats["examples"] += 1
        main = [f for f in found if f.unit == "<program>"]
        by_node: dict = {}
        for f in main:
            by_node.setdefault(id(f.node), []).append(f.message)
        for f in main:
            if f.kind in ("structure", "triple"):
                continue  # store rules, not run-time failures (e.g. duplicate triples)
            evaluated = id(f.node) in tr.reached
            # the first time it is reached is the last: it fails then (or a limit ends the run)
            assert tr.reached[id(f.node)] <= 1, (f.message, res.error)
            if f.kind in ("limit", "fuel"):
                if evaluated or f.kind == "fuel":
                    assert res.error is not None, f.message
                    stats["limit_confirmed"] += 1
                continue
            if not evaluated:
                stats["unreached"] += 1  # allowed by §7: "whether or not this input reaches it"
                continue
            # the node fails every time it is reached: this run failed while evaluating it
            assert res.error is not None, f.message
            assert id(f.node) in tr.unwound, (f.message, res.error)
            if tr.failed is f.node:
                # same message, unless a limit hit first; a Bitwise without rhs may also find
                # its lhs pop empty when the gate did not know the stack
                assert res.error in by_node[id(f.node)] or res.error_code in LIMIT_CODES or \
                    (f.message == MISSING_RHS and res.error == "Stack underflow in Bitwise lhs"), \
                    (f.message, res.error)
                stats["same_message"] += 1
        if res.error is not None and any(f.node is tr.failed for f in main):
            stats["failures_predicted"] += 1

    prop()
    assert stats["examples"] >= 1000
    # not vacuous: the gate predicts many of the failures, with tier 0's exact message
    assert stats["failures_predicted"] > 100 and stats["same_message"] > 100
