"""Tier 2 (nda.tiers.native): pure scalar regions in native code must be indistinguishable from tier 0.

Every test compares `SandboxResult.observable()` of tiers native and auto with the interpreter,
and checks through a spy on `native.Region` that native code really ran (or, for the guards and
bail-outs, that it did not commit). A hypothesis generator of pure scalar loop programs drives
the differential test.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from pathlib import Path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nda.core import ir
from nda.tiers import native
from nda.tiers.closure import Engine
from nda.sandbox.runner import available_tiers, run
from nda.syntax.sexpr import parse_sexpr
from nda.runtime.state import Limits

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BIG = Limits(fuel=10**8, deadline_ms=60_000)


@pytest.fixture(autouse=True)
def hot(monkeypatch):
    """Tier `auto` compiles at once here (no tier 0 budget for cold programs): these tests are
    about what tier 2 does once a program is compiled. The cold policy has its own tests
    (`test_auto_interprets_cold_programs`, tests/test_differential.py)."""
    from nda.sandbox import runner

    monkeypatch.setattr(runner, "COLD_WORK_PER_NODE", 0)
    monkeypatch.setattr(runner, "COLD_WORK_BASE", 0)


@pytest.fixture
def regions(monkeypatch):
    """Every `native.Region` created while the test runs (compiled in fresh engines)."""
    made = []
    orig = native.Region.__init__

    def spy(self, *a, **k):
        orig(self, *a, **k)
        made.append(self)

    monkeypatch.setattr(native.Region, "__init__", spy)
    return made


def _seq(src):
    return parse_sexpr(src).sequence


def agree(src_or_seq, limits=BIG, inp=(), tiers=("native", "auto"), optimize=False, kinds=False):
    """Run on interp and `tiers` (fresh engines); assert identical observables; → results."""
    seq = _seq(src_or_seq) if isinstance(src_or_seq, str) else src_or_seq
    oracle = run(seq, list(inp), limits=limits, tier="interp", collect_kind_counts=kinds)
    assert not oracle.panicked, oracle.error
    out = {"interp": oracle}
    for t in tiers:
        r = run(seq, list(inp), limits=limits, tier=t, optimize=optimize, engine=Engine(),
                collect_kind_counts=kinds)
        assert not r.panicked, r.error
        assert r.observable() == oracle.observable(), (t, r, oracle)
        # the tier that really ran: 2 only when native code ran (test_tier_names_what_ran)
        assert r.tier in ((1, 2) if t == "native" else (0, 1, 2))
        out[t] = r
    return out


def native_runs(regions):
    return sum(r.native_runs for r in regions)


def bailouts(regions):
    return sum(r.bailouts for r in regions)


# ---------------------------------------------------------------------------------------------
# Registration, import, availability


def test_native_tier_registered():
    assert "native" in available_tiers()


def test_import_is_lazy():
    code = ("import sys, nda.tiers.native, nda.sandbox; "
            "assert 'llvmlite' not in sys.modules, 'llvmlite imported'; "
            "assert 'nda.tiers.native_codegen' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_without_llvmlite_runs_tier1(monkeypatch):
    monkeypatch.setattr(native, "_JIT", None)
    monkeypatch.setattr(native, "_FOUND", None)
    for m in ("llvmlite", "llvmlite.binding", "nda.tiers.native_codegen"):
        monkeypatch.setitem(sys.modules, m, None)
    # `from . import native_codegen` finds the package attribute left by an earlier import
    import nda.tiers
    monkeypatch.delattr(nda.tiers, "native_codegen", raising=False)
    src = "(let s (int 0)) (loop 10 (store s (add (load s) (int 3)))) (load s)"
    oracle = run(_seq(src), [], tier="interp")
    for t in ("native", "auto"):
        r = run(_seq(src), [], tier=t, engine=Engine())
        assert r.tier == 1 and r.observable() == oracle.observable()


# ---------------------------------------------------------------------------------------------
# Each eligible kind, native code really running


@pytest.mark.parametrize("body", [
    "(int 7)",
    "(int -2147483648)",
    "(load x)",
    "(let y (load x))",
    "(store x (add (load x) (int 3)))",
    "(add (load x) (int 2147483647))",
    "(cmp eq (load x) (int 2))", "(cmp ne (load x) (int 2))", "(cmp lt (load x) (int 2))",
    "(cmp gt (load x) (int 2))", "(cmp le (load x) (int 2))", "(cmp ge (load x) (int 2))",
    "(vecop negate (load x))", "(vecop abs (load x))", "(vecop reduce_sum (load x))",
    "(vecop abs (int -2147483648))", "(vecop negate (int -2147483648))",
    "(if (cmp gt (load x) (int 1)) (then (int 1)) (else (int 2) (int 3)))",
    "(if (load x) (then (store x (add (load x) (int -1)))))",
    "(scope (int 1) (let z (int 4)) (load z))",
    "(loop 2 (int 5))",
    "(loop 0 (int 5))",
    "(while (cmp gt (load x) (int 0)) (store x (add (load x) (int -1))))",
    "(break)",
    "(add (scope (let q (int 3))) (scope (int 1) (break) (int 9)))",
    "(let w (scope (int 1) (int 2)))",
    "(if (scope (let y (int -3))) (then (int 1)))",
])
def test_each_kind(body, regions):
    src = f"(let x (int 2)) (loop 3 {body} (store x (add (load x) (int 1)))) (load x)"
    agree(src)
    assert regions and native_runs(regions) >= 1 and bailouts(regions) == 0


def test_wrap_around(regions):
    src = ("(let x (int 2147483646)) (let y (int -2147483647))"
           " (loop 2 (store x (add (load x) (int 1))) (store y (add (load y) (int -1))))"
           " (loop 1 (cmp eq (load x) (int -2147483648)) (cmp eq (load y) (int 2147483647))"
           "         (cmp eq (vecop abs (load x)) (load x)) (cmp eq (vecop negate (load x)) (load x)))")
    r = agree(src)
    assert native_runs(regions) >= 2
    seq = _seq(src)
    # every comparison is true: the four values left by the last loop are all +1
    full = run(seq + (ir.Scope(()),), [], tier="native", engine=Engine())
    assert full.observable()[0] == r["interp"].observable()[0] and r["native"].output_vec == [1.0]


def test_compare_yields_plus_minus_one(regions):
    # divergence #2: the original's native block produced 1/0
    r = agree("(loop 1 (cmp lt (int 1) (int 2)) (cmp gt (int 1) (int 2)))")["native"]
    assert native_runs(regions) >= 1
    assert r.output_vec == [-1.0]
    r = agree("(loop 1 (cmp lt (int 1) (int 2)))")["native"]
    assert r.output_vec == [1.0]


def test_zero_count_loop_runs_zero_times(regions):
    # divergence #3: the original's do-while ran the body once
    r = agree("(let x (int 5)) (loop 1 (loop 0 (store x (int 9)))) (load x)")["native"]
    assert native_runs(regions) >= 1
    assert r.output_vec == [5.0]
    assert r.executed_nodes == 5  # let, int, loop, loop, load


def test_empty_body_loop_is_skipped(regions):
    # tiers 0/1 iterate an empty body (nothing observable happens); native code skips it
    src = "(let x (int 1)) (loop 1 (loop 4294967295) (store x (add (load x) (int 1))))"
    r = run(_seq(src), [], tier="native", optimize=False, engine=Engine())
    assert r.error is None and r.executed_nodes == 8 and r.loop_iterations == 2
    assert native_runs(regions) == 1


def test_u32_loop_count_with_break(regions):
    src = ("(let i (int 0)) (loop 4294967295 (store i (add (load i) (int 1)))"
           " (if (cmp ge (load i) (int 1000)) (then (break)))) (load i)")
    r = agree(src)["native"]
    assert r.output_vec == [1000.0] and native_runs(regions) >= 1 and bailouts(regions) == 0


@pytest.mark.parametrize("nvars", [5, 50])
def test_many_variables(nvars, regions):
    # divergence #15: the original allowed at most 4 variable slots
    names = [f"v{i}" for i in range(nvars)]
    lets = " ".join(f"(let {n} (int {i}))" for i, n in enumerate(names))
    body = " ".join(f"(store {n} (add (load {n}) (load {names[(i + 1) % nvars]})))" for i, n in enumerate(names))
    src = f"{lets} (loop 20 {body}) " + " ".join(f"(load {n})" for n in names[-3:])
    agree(src)
    assert native_runs(regions) >= 1 and bailouts(regions) == 0
    assert max(len(r.plan.names) for r in regions) == nvars


def test_break_in_nested_loops(regions):
    src = ("(let i (int 0)) (let n (int 0))"
           " (loop 5 (store i (add (load i) (int 1)))"
           "   (loop 10 (store n (add (load n) (int 1))) (if (cmp ge (load n) (load i)) (then (break))))"
           "   (if (cmp eq (load i) (int 4)) (then (break))))"
           " (load n) (load i)")
    agree(src)
    assert native_runs(regions) >= 1 and bailouts(regions) == 0


def test_break_signal_leaves_region(regions):
    # the region (a Scope inside a tier 1 loop with a Print) returns Break to the tier 1 loop
    src = ("(let x (int 0)) (loop 6 (print (load x))"
           " (scope (loop 2 (store x (add (load x) (int 1)))) (if (cmp ge (load x) (int 6)) (then (break)))))"
           " (load x)")
    r = agree(src)["native"]
    assert r.output_log == ["[print] [0.0]", "[print] [2.0]", "[print] [4.0]"]
    assert native_runs(regions) >= 3


def test_while_limit_bails_out(regions):
    src = "(let x (int 0)) (while (int 1) (store x (add (load x) (int 1))))"
    r = agree(src, Limits(max_while_iterations=50))["native"]
    assert r.error_code == "WHILE_LIMIT" and "(50)" in r.error
    assert bailouts(regions) >= 1


@pytest.mark.parametrize("fuel", [1, 2, 3, 17, 777, 4000])
def test_fuel_exhaustion_mid_loop(fuel, regions):
    src = ("(let s (int 0)) (let i (int 0)) (loop 1000 (store s (add (load s) (load i)))"
           " (store i (add (load i) (int 1))) (loop 2 (int 1))) (load s)")
    r = agree(src, Limits(fuel=fuel))["native"]
    assert r.error_code == "FUEL_EXHAUSTED" and r.executed_nodes == fuel
    assert r.error == f"fuel exhausted after {fuel} nodes"


def test_fuel_exactly_enough(regions):
    src = "(loop 10 (int 1))"
    need = run(_seq(src), [], tier="interp").executed_nodes
    r = agree(src, Limits(fuel=need))["native"]
    assert r.error is None and native_runs(regions) >= 1 and bailouts(regions) == 0


def test_memory_bailout(regions):
    # input [] is an empty vector (8 bytes): room for (limit − 65536)/8 − 1 more entries
    src = "(let x (int 0)) (loop 1000 (store x (add (load x) (int 1))))"
    r = agree(src, Limits(max_memory_bytes=65536 + 8 * 300))["native"]
    assert r.error_code == "MEMORY_LIMIT"
    assert bailouts(regions) >= 1


def test_push_buffer_grows(regions):
    # a While's pushes are not known statically: the buffer starts small and grows
    n = native.INITIAL_PUSHES * 5
    src = f"(let k (int {n})) (while (cmp gt (load k) (int 0)) (store k (add (load k) (int -1)))) (int 1)"
    r = agree(src, tiers=("native",))["native"]
    assert r.error is None and native_runs(regions) == 1 and bailouts(regions) == 0


def test_large_push_buffer(regions):
    # 300,000 pushes recorded (a region inside a Print: converted at once): the scratch block
    # is a lazily zero-filled memory map; checked against tier 1
    seq = _seq("(let s (int 0)) (print (scope (loop 300000 (store s (add (load s) (int 1)))) (int 5)))")
    t1 = run(seq, [], tier="closure", optimize=False, engine=Engine())
    r = run(seq, [], tier="native", optimize=False, engine=Engine())
    assert r.observable() == t1.observable() and r.executed_nodes == 1_200_006
    assert native_runs(regions) == 1 and bailouts(regions) == 0
    assert len(regions[0].pool[0].buf) > (1 << 20)


def test_deadline_stops_in_time(regions):
    src = "(let x (int 0)) (while (int 1) (if (load x) (then)))"  # pushes nothing, runs forever
    seq = _seq(src)
    eng = Engine()
    lim = Limits(fuel=10**15, max_while_iterations=10**15, deadline_ms=100, max_memory_bytes=1 << 40)
    run(seq, [], limits=lim, tier="native", engine=eng)  # compile (deadline may hit anyway)
    lim = Limits(fuel=10**15, max_while_iterations=10**15, deadline_ms=300, max_memory_bytes=1 << 40)
    t0 = time.monotonic()
    r = run(seq, [], limits=lim, tier="native", engine=eng)
    elapsed = time.monotonic() - t0
    assert r.error_code == "DEADLINE_EXCEEDED" and r.error == "deadline exceeded after 300 ms"
    # the contract is deadline + 50 ms; another 100 ms for scheduling noise on a busy CI machine
    assert native_runs(regions) == 0 and 0.3 <= elapsed < 0.3 + 0.05 + 0.1


# ---------------------------------------------------------------------------------------------
# Entry guard


@pytest.mark.parametrize("binding", [
    "(let x (float 1.5))",                  # Float
    "(let x (scope))",                      # Vector (the input)
    "(let x (vecop reduce_sum (scope)))",   # Scalar(2, 2) for input [3, 3]
])
def test_guard_non_int_runs_tier1(binding, regions):
    src = f"{binding} (loop 3 (store x (add (load x) (int 1)))) (load x)"
    agree(src, inp=[3.0, 3.0])
    assert regions and native_runs(regions) == 0


def test_guard_checks_written_only_variables_too(regions):
    # y is only written by the region, but it is bound to a Float at entry: tier 1 runs
    src = "(let y (float 2.5)) (let x (int 0)) (loop 3 (store x (add (load x) (int 1))) (let y (load x))) (load y)"
    agree(src)
    assert regions and native_runs(regions) == 0


def test_guard_unbound_read_runs_tier1(regions):
    r = agree("(loop 3 (store y (add (load y) (int 1))))")["native"]
    assert r.error_code == "UNDEFINED_VARIABLE" and native_runs(regions) == 0


def test_unbound_write_only_is_native(regions):
    # y is written before it is read: unbound at entry is fine, and bound afterwards
    src = "(loop 3 (let y (int 4)) (store y (add (load y) (int 1)))) (load y)"
    r = agree(src)["native"]
    assert r.output_vec == [5.0] and native_runs(regions) >= 1


def test_written_only_in_untaken_branch_stays_unbound(regions):
    src = "(let c (int 0)) (loop 2 (if (load c) (then (let y (int 1))))) (load y)"
    r = agree(src)["native"]
    assert r.error_code == "UNDEFINED_VARIABLE" and native_runs(regions) >= 1


def test_kind_counts_use_tier1(regions):
    src = "(let x (int 0)) (loop 7 (store x (add (load x) (int 1))))"
    r = agree(src, kinds=True)["native"]
    assert r.kind_counts["Loop"] == 1 and r.kind_counts["Add"] == 7
    assert native_runs(regions) == 0


def test_stack_discipline_rejects_popping_regions(regions):
    # the Add's lhs pushes nothing: the Add would pop the input vector, so no region
    src = "(loop 2 (add (scope) (int 1)))"
    agree(src, inp=[1.0, 2.0])
    assert not any(r.node == _seq(src)[0] for r in regions)


def test_return_is_not_eligible(regions):
    src = ("(let x (int 0)) (loop 3 (store x (add (load x) (int 1)))"
           " (if (cmp gt (load x) (int 1)) (then (return (load x)))))")
    agree(src)
    assert regions == []


# ---------------------------------------------------------------------------------------------
# Lazy pushes: a region at an open position leaves its pushes unconverted until read


@pytest.fixture(params=[True, False], ids=["counting", "recording"])
def lazy(request, monkeypatch):
    """Open regions run their counting variant (replayed segments) or record (buffer segments,
    from 2 pushes on instead of 257); → the sizes of the segments created, in order."""
    monkeypatch.setattr(native, "COUNTING", request.param)
    monkeypatch.setattr(native, "LAZY_MIN_PUSHES", 1)
    made = []
    orig = native._Lazy.add

    def spy(self, st, stk, seg):
        made.append(seg.n)
        orig(self, st, stk, seg)

    monkeypatch.setattr(native._Lazy, "add", spy)
    return made


OPEN = "(let x (int 0)) (loop 5 (store x (add (load x) (int 1))) (int 7))"  # 10 pushes, 9 lazy


@pytest.mark.parametrize("after", [
    "",                                      # the output is the region's last push (never lazy)
    "(load x) (int 3) (float 2.5)",          # pure pushes keep the segment
    "(print (scope))",                       # pops the last push
    "(print (scope)) (print (scope))",       # ... then one from the segment
    "(syscall 7 (scope) (scope) (scope))",   # three at once
    "(let y (scope)) (load y)",              # peeks into it
    "(load x) (add (scope) (scope))",
    "(cmp lt (scope) (scope))",
    "(if (scope) (then (print (scope))))",
    "(while (scope) (print (scope)))",       # pops down to the input vector: a type error
    "(return (scope))",
    "(loop 2 (print (scope)) (loop 3 (int 1) (int 0)))",  # a second open region, then pops
])
def test_lazy_pushes_read_back(after, lazy, regions):
    agree(f"{OPEN} {after}", inp=[1.0, 2.0])
    assert lazy[:1] == [9] and native_runs(regions) >= 1


@pytest.mark.parametrize("counting", [True, False])
def test_lazy_pushes_default_settings(counting, regions, monkeypatch):
    # counting code: replayed entries from 2 pushes on; recording code: buffers above 256
    monkeypatch.setattr(native, "COUNTING", counting)
    made = []
    orig = native._Lazy.add

    def spy(self, st, stk, seg):
        made.append((type(seg).__name__, seg.n))
        orig(self, st, stk, seg)

    monkeypatch.setattr(native._Lazy, "add", spy)
    pops = "(print (scope)) (print (scope)) (syscall 3 (scope))"
    for n in (400, 100):
        agree(f"(let s (int 0)) (loop {n} (store s (add (load s) (int 1))) (int 9)) {pops}", tiers=("native",))
    assert made == ([("_Replay", 799), ("_Replay", 199)] if counting else [("_Segment", 799)])


def test_lazy_segments_accumulate(lazy, regions):
    # the Float keeps the segments; Print materializes all three at once
    src = ("(loop 3 (float 1.5) (loop 4 (int 1) (int 2)))"
           " (print (scope)) (print (scope)) (syscall 9 (scope) (scope) (scope))")
    agree(src)
    assert lazy == [7, 7, 7]


def test_region_reading_its_pushes_records(lazy, regions):
    # the Add pops what its Scope operand pushed: no counting variant, a buffer segment
    src = "(let x (int 1)) (loop 4 (add (scope (load x)) (int 2)) (store x (add (load x) (int 1))))"
    agree(f"{src} (print (scope)) (print (scope)) (print (scope))")
    assert lazy == [7] and regions[0].code.counting is False


def test_replayed_region_switches_to_recording(regions):
    # each Print reads back the previous execution's pushes: after REPLAY_SWITCH replays (at
    # least half of the executions) the region records instead of counting
    src = "(let x (int 0)) (loop 12 (print (scope)) (loop 3 (store x (add (load x) (int 1))) (int 0)))"
    agree(src, tiers=("native",))
    (rg,) = regions
    assert rg.lazy and rg.replays == native.REPLAY_SWITCH and not rg.counting
    assert rg.native_runs == 12 and not rg.code.counting


def test_closed_region_materializes_at_entry(lazy, regions):
    # the While pops what its condition pushes; the condition (a region) pushes nothing, so the
    # pop reaches into the body's segment: the condition region materializes it first
    src = "(let k (int 1)) (while (loop 0 (int 1)) (loop 3 (int 1) (int 0)))"
    r = agree(src)["native"]
    assert lazy == [5] and r.output_vec == [1.0]


@pytest.mark.parametrize("src", [
    "(add (int 1) (loop 3 (int 2) (int 3)))",           # the Add pops two of the loop's pushes
    "(syscall 9 (loop 4 (int 1)) (loop 2 (int 5)))",
    "(let y (loop 3 (int 4))) (load y)",
    "(print (scope (loop 3 (int 1) (int 2)) (scope)))",
    "(if (scope (loop 3 (int 1) (int -1))) (then (int 4)))",
])
def test_closed_regions_push_eagerly(src, lazy, regions):
    agree(src, inp=[1.0])
    assert lazy == [] and native_runs(regions) >= 1


def test_callee_regions_push_eagerly(lazy, regions):
    src = ("(module (def f (scope (loop 9 (int 1) (int 2))))"
           " (def main (scope (add (scope) (call @f)) (call @f) (print (scope)) (print (scope)))))")
    unit = parse_sexpr(src)
    oracle = run(unit, [], tier="interp")
    r = run(unit, [], tier="native", engine=Engine())
    assert r.observable() == oracle.observable() and oracle.error is None
    assert lazy == [] and native_runs(regions) >= 2


def test_lazy_memory_accounting_is_exact(lazy, regions):
    # room for 203 entries above the input: 200 lazy pushes, then the third Int fails
    lim = Limits(max_memory_bytes=65536 + 8 * 204)
    src = "(let x (int 0)) (loop 100 (store x (add (load x) (int 1))) (int 5)) (int 1) (int 2) (int 3)"
    r = agree(src, lim, tiers=("native",))["native"]
    assert r.error == f"memory limit exceeded: {65536 + 8 * 205} > {65536 + 8 * 204} bytes"
    assert lazy == [199]
    # a second open region runs out of room natively: tier 1 re-runs it (after materializing)
    src = "(loop 100 (int 1) (int 2)) (loop 10 (int 3))"
    r = agree(src, Limits(max_memory_bytes=65536 + 8 * 205), tiers=("native",))["native"]
    assert r.error_code == "MEMORY_LIMIT" and lazy[1:] == [199] and bailouts(regions) == 1


# ---------------------------------------------------------------------------------------------
# Tiering policy (auto)


def test_auto_compiles_big_constant_loops_immediately(regions):
    src = "(let s (int 0)) (loop 10000 (store s (add (load s) (int 1))))"
    agree(src, tiers=("auto",))
    assert native_runs(regions) == 1 and regions[0].t1_runs == 0


def test_auto_waits_until_hot(regions):
    # a 49-node inner loop entered from a tier 1 loop: tier 1 first, native once hot
    src = ("(let x (int 0)) (loop 3000 (poke (int 16) (load x))"
           " (loop 12 (store x (add (load x) (int 1))))) (load x)")
    agree(src, tiers=("auto",))
    (rg,) = regions
    assert 0 < rg.t1_runs < 3000 and rg.native_runs == 3000 - rg.t1_runs


def test_auto_keeps_tiny_regions_in_tier1(regions):
    src = "(let x (int 0)) (loop 3000 (poke (int 16) (load x)) (loop 1 (store x (add (load x) (int 1)))))"
    agree(src, tiers=("auto",))
    (rg,) = regions
    assert rg.t1_runs == 3000 and rg.native_runs == 0


def test_auto_interprets_cold_programs(regions, monkeypatch):
    """A cold program runs in tier 0 until its tier 0 runs have executed COLD_WORK_PER_NODE ×
    nodes + COLD_WORK_BASE nodes in total; the run that crosses that budget is abandoned and
    run again compiled from the start; later runs are compiled. Results are identical."""
    from nda.sandbox import runner

    monkeypatch.setattr(runner, "COLD_WORK_PER_NODE", 2)
    monkeypatch.setattr(runner, "COLD_WORK_BASE", 0)
    seq = _seq("(let x (int 3)) (print (add (load x) (int 4))) (cmp lt (load x) (int 9))")
    oracle = run(seq, [], tier="interp")  # 10 nodes, 9 executed per run: budget 20
    eng = Engine()
    got = [run(seq, [], tier="auto", engine=eng) for _ in range(4)]
    assert [r.tier for r in got] == [0, 0, 1, 1]  # 9 + 9 < 20; the third run crosses it (closures: no loop to go native)
    assert all(r.observable() == oracle.observable() for r in got)
    assert got[2].executed_nodes == 9 and got[2].output_log == ["[print] [7.0]"]
    with_loop = _seq("(let x (int 3)) (loop 20 (store x (add (load x) (int 1)))) (load x)")
    oracle = run(with_loop, [], tier="interp")
    first = run(with_loop, [], tier="auto", engine=Engine())  # 8 nodes, > 16 executed
    assert first.observable() == oracle.observable()
    assert regions and regions[-1].t1_runs + regions[-1].native_runs == 1
    assert first.tier == (2 if regions[-1].native_runs else 1)
    small = _seq("(let x (int 3)) (loop 2 (store x (add (load x) (int 1)))) (load x)")
    assert run(small, [], tier="auto", engine=Engine()).tier == 0  # 14 executed ≤ 16
    # a fuel limit below the budget is the program's own: it fails in tier 0 as in every tier
    lim = Limits(fuel=5)
    r = run(_seq("(let x (int 3)) (print (add (load x) (int 4))) (load x)"), [], limits=lim, tier="auto")
    o = run(_seq("(let x (int 3)) (print (add (load x) (int 4))) (load x)"), [], limits=lim, tier="interp")
    assert r.tier == 0 and r.error_code == "FUEL_EXHAUSTED" and r.observable() == o.observable()


def test_native_and_auto_units_are_cached_separately(regions):
    src = "(let s (int 0)) (loop 50 (store s (add (load s) (int 1))))"
    eng = Engine()
    run(_seq(src), [], tier="auto", engine=eng, optimize=False)
    run(_seq(src), [], tier="native", engine=eng, optimize=False)
    assert [r.auto for r in regions] == [True, False]
    assert regions[1].native_runs == 1


# ---------------------------------------------------------------------------------------------
# Differential: random pure scalar loop programs

NAMES = [ir.name_hash(f"v{i}") for i in range(5)]
EXTREMES = [0, 1, -1, 2, 7, -7, 2**31 - 1, -2**31, 2**31 - 2, -2**31 + 1, 1 << 20]
COUNTS = [0, 1, 2, 3, 5, 9, 40, 4294967295]


class _Gen:
    def __init__(self, draw):
        self.d = draw

    def pick(self, xs):
        return self.d(st.sampled_from(xs))

    def int_(self):
        return ir.Int(self.d(st.one_of(st.integers(-4, 9), st.sampled_from(EXTREMES),
                                       st.integers(-2**31, 2**31 - 1))))

    def expr(self, depth):
        inner = ["add", "add", "cmp", "vecop", "let", "scope", "odd"]
        k = self.pick(["int", "load", "load"] + (inner if depth > 0 else []))
        if k == "int":
            return self.int_()
        if k == "load":
            return ir.Load(self.pick(NAMES))
        if k == "add":
            return ir.Add(self.expr(depth - 1), self.expr(depth - 1))
        if k == "cmp":
            return ir.Compare(ir.CmpOp(self.d(st.integers(0, 5))), self.expr(depth - 1), self.expr(depth - 1))
        if k == "vecop":
            return ir.VecOp(ir.VecOpKind(self.pick([1, 2, 3, 1, 2, 3, 0])), self.expr(depth - 1))
        if k == "let":
            return self.pick([ir.Let, ir.Store])(self.pick(NAMES), self.expr(depth - 1))
        if k == "scope":  # pushes exactly one value through statements (sometimes a swallowed Break)
            return self.pick([
                lambda: ir.Scope((ir.Let(self.pick(NAMES), self.expr(depth - 1)),)),
                lambda: ir.Scope((self.expr(depth - 1), ir.Break(), self.expr(0))),
                lambda: ir.Scope((ir.Loop(self.pick([0, 2]), (ir.If(self.expr(0), (), None),)), self.expr(depth - 1))),
                lambda: ir.If(self.expr(0), (self.expr(depth - 1),), (self.expr(0),)),
            ])()
        # rarely: something that makes the enclosing subtree ineligible
        return self.pick([ir.Scope(()), ir.Float.of(1.5), ir.Return(ir.Int(1)), self.int_()])

    def stmt(self, depth, in_loop):
        kinds = ["let", "store", "store", "expr"]
        if depth > 0:
            kinds += ["loop", "loop", "while", "while", "if", "scope"]
        if in_loop:
            kinds += ["break"]
        k = self.pick(kinds + ["print"] * (self.d(st.integers(0, 15)) == 0))
        if k == "let":
            return ir.Let(self.pick(NAMES), self.expr(2))
        if k == "store":
            v = self.pick(NAMES)
            return ir.Store(v, ir.Add(ir.Load(v), self.expr(1)))
        if k == "expr":
            return self.expr(2)
        if k == "break":
            return ir.Break()
        if k == "print":
            return ir.Print(self.expr(1))
        if k == "loop":
            body = self.body(depth - 1, True)
            # an empty body is never counted: tiers 0/1 would spin through a huge count
            return ir.Loop(self.pick(COUNTS if body else COUNTS[:-1]), body)
        if k == "while":
            if self.d(st.booleans()):
                v = self.pick(NAMES)
                return ir.Scope((ir.Let(v, ir.Int(self.d(st.integers(0, 6)))),
                                 ir.While(ir.Compare(ir.CmpOp.Gt, ir.Load(v), ir.Int(0)),
                                          self.body(depth - 1, True) + (ir.Store(v, ir.Add(ir.Load(v), ir.Int(-1))),))))
            return ir.While(self.expr(1), self.body(depth - 1, True))
        if k == "if":
            other = self.body(depth - 1, in_loop) if self.d(st.booleans()) else None
            return ir.If(self.expr(1), self.body(depth - 1, in_loop), other)
        return ir.Scope(self.body(depth - 1, in_loop))

    def body(self, depth, in_loop):
        return tuple(self.stmt(depth, in_loop) for _ in range(self.d(st.integers(0, 3))))


@st.composite
def scalar_programs(draw):
    g = _Gen(draw)
    bind = []
    for v in NAMES:
        r = draw(st.integers(0, 15))
        if r == 0:
            continue  # unbound
        bind.append(ir.Let(v, ir.Float.of(0.5) if r == 1 else ir.Int(draw(st.sampled_from(EXTREMES)))))
    prog = tuple(bind) + tuple(g.stmt(3, False) for _ in range(draw(st.integers(1, 3))))
    limits = Limits(
        fuel=draw(st.sampled_from([20, 300, 3000, 20_000, 20_000])),
        max_while_iterations=draw(st.sampled_from([0, 2, 7, 100, 100])),
        max_memory_bytes=draw(st.sampled_from([65536 + 8 * 40, 65536 + 8 * 400, 1 << 24, 1 << 24])),
        deadline_ms=60_000,
    )
    return prog, limits, draw(st.booleans())


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(scalar_programs())
def test_differential_scalar_programs(case):
    prog, limits, optimize = case
    oracle = run(prog, [], limits=limits, tier="interp")
    assert not oracle.panicked, oracle.error
    for t in ("native", "auto"):
        r = run(prog, [], limits=limits, tier=t, optimize=optimize)
        assert not r.panicked, r.error
        assert r.observable() == oracle.observable(), t


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(scalar_programs())
def test_differential_auto_transitions(case):
    """With tiny thresholds, auto switches regions to native between executions."""
    prog, limits, optimize = case
    oracle = run(prog, [], limits=limits, tier="interp")
    saved = (native.IMMEDIATE_WORK, native.HOT_NODES, native.MIN_AVG_NODES)
    native.IMMEDIATE_WORK, native.HOT_NODES, native.MIN_AVG_NODES = 200, 30, 1
    try:
        r = run(prog, [], limits=limits, tier="auto", optimize=optimize, engine=Engine())
    finally:
        native.IMMEDIATE_WORK, native.HOT_NODES, native.MIN_AVG_NODES = saved
    assert r.observable() == oracle.observable()


POPPERS = [ir.Print(ir.Scope(())), ir.Syscall(9, (ir.Scope(()), ir.Scope(()))),
           ir.Let(NAMES[0], ir.Scope(())), ir.Add(ir.Scope(()), ir.Scope(())), ir.Load(NAMES[1]),
           ir.Float.of(2.5), ir.Int(3)]


@st.composite
def popping_programs(draw):
    """Generated programs with statements that pop below their own pushes (or only push)
    inserted into open sequences, where regions leave lazy pushes."""
    prog, limits, optimize = draw(scalar_programs())
    g = _Gen(draw)

    def pushing_loop():
        return ir.Loop(g.pick([2, 3, 7, 40]), tuple(g.expr(1) for _ in range(draw(st.integers(1, 3)))))

    def seq(nodes, top=False):
        if not top and draw(st.integers(0, 3)):
            return tuple(nodes)  # mostly left alone: poppers make the enclosing loop ineligible
        out = []
        for n in nodes:
            if draw(st.booleans()):
                out.append(pushing_loop())
            out.append(node(n))
            out.extend(draw(st.lists(st.sampled_from(POPPERS), max_size=2)))
        return tuple(out)

    def node(n):
        t = type(n)
        if t is ir.Scope:
            return ir.Scope(seq(n.children))
        if t is ir.Loop:
            return ir.Loop(n.count, seq(n.body)) if n.body else n
        if t is ir.While:
            return ir.While(n.cond, seq(n.body))
        if t is ir.If:
            return ir.If(n.cond, seq(n.then_body), None if n.else_body is None else seq(n.else_body))
        return n

    return seq(prog, top=True), limits, optimize


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(popping_programs())
def test_differential_lazy_pushes(case):
    prog, limits, optimize = case
    oracle = run(prog, [1.0, -2.0], limits=limits, tier="interp")
    assert not oracle.panicked, oracle.error
    saved = native.LAZY_MIN_PUSHES, native.COUNTING
    native.LAZY_MIN_PUSHES = 1
    try:
        for counting in (True, False):
            native.COUNTING = counting
            r = run(prog, [1.0, -2.0], limits=limits, tier="native", optimize=optimize, engine=Engine())
            assert not r.panicked, r.error
            assert r.observable() == oracle.observable(), counting
    finally:
        native.LAZY_MIN_PUSHES, native.COUNTING = saved


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(popping_programs())
def test_differential_o2_code(case):
    """O2 code (chunked counted loops, the LLVM O2 pipeline) for every region, both variants."""
    prog, limits, optimize = case
    oracle = run(prog, [1.0], limits=limits, tier="interp")
    saved = native.OPTIMIZE_WORK, native.LAZY_MIN_PUSHES, native.COUNTING
    native.OPTIMIZE_WORK, native.LAZY_MIN_PUSHES = 0, 1
    try:
        for counting in (True, False):
            native.COUNTING = counting
            r = run(prog, [1.0], limits=limits, tier="native", optimize=optimize, engine=Engine())
            assert r.observable() == oracle.observable(), counting
    finally:
        native.OPTIMIZE_WORK, native.LAZY_MIN_PUSHES, native.COUNTING = saved


def test_o2_chunks_exact_at_limits(lazy, regions, monkeypatch):
    """Chunked loops stop exactly where fuel or memory runs out (compared with tier 0 at every
    limit around the program's needs)."""
    monkeypatch.setattr(native, "OPTIMIZE_WORK", 0)
    src = ("(let x (int 0)) (loop 40 (store x (add (load x) (int 1)))"
           " (loop 3 (if (cmp gt (load x) (int 30)) (then (break))) (int 1)))")
    seq = _seq(src)
    full = run(seq, [], tier="interp")
    need, pushes = full.executed_nodes, 2 + 40 + 40 * 3  # Lets, Stores, Ints (upper bound)
    for fuel in list(range(need - 25, need + 3)) + [need // 2, need // 3, 7]:
        agree(seq, Limits(fuel=fuel), tiers=("native",))
    for entries in range(pushes - 100, pushes + 3, 7):
        agree(seq, Limits(max_memory_bytes=65536 + 8 * entries), tiers=("native",))
    assert all(r.code.optimized for r in regions) and native_runs(regions) >= 5 and bailouts(regions) >= 10


def test_lazy_generator_reaches_segments(lazy, regions, monkeypatch):
    """The popping generator leaves lazy segments that later statements read back."""
    made = []
    orig = native._Lazy.materialize

    def spy(self, st):
        made.append(len(self.segs))
        orig(self, st)

    monkeypatch.setattr(native._Lazy, "materialize", spy)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(popping_programs())
    def sample(case):
        prog, limits, optimize = case
        run(prog, [1.0], limits=limits, tier="native", engine=Engine(), optimize=False)

    sample()
    assert len(lazy) >= 20 and len(made) >= 10, (len(lazy), len(made))


def test_generator_reaches_native_code(regions):
    """The differential generator produces regions that run natively and ones that bail out."""
    seen = {"runs": 0}

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(scalar_programs())
    def sample(case):
        prog, limits, optimize = case
        run(prog, [], limits=limits, tier="native", engine=Engine(), optimize=False)
        seen["runs"] += 1

    sample()
    assert seen["runs"] == 100
    assert native_runs(regions) >= 20 and bailouts(regions) >= 1


@pytest.mark.parametrize("src", [
    # closed form (scev) at the top level
    "(let s (int 0)) (let i (int 0)) (loop 5000 (store s (add (load s) (load i))) (store i (add (load i) (int 1))))",
    # an unrolled inner loop (count ≤ 4) and folded constants inside an outer loop
    "(let s (int 0)) (loop 300 (loop 3 (store s (add (load s) (add (int 2) (int 3))))))",
    # an if with a constant condition inside a loop
    "(let s (int 1)) (loop 200 (if (int 1) (then (store s (add (load s) (load s))))))",
])
def test_optimized_loops_still_run_natively(src, regions):
    """Native regions are generated from the plain IR under the optimizer's rewrites, so an
    optimized loop is not left to tier 1 (the optimized closure is only the fallback)."""
    agree(src, optimize=True, tiers=("native",))
    assert regions and native_runs(regions) >= 1 and bailouts(regions) == 0


def test_region_under_a_fold_that_made_a_store_dead(regions):
    """The optimizer folds the If's condition from the known value of `a` and then removes the
    now-dead `(let a …)`; native code for the plain If would read a stale `a`. Such a region
    must stay on the optimized tier 1 path (found by the differential tests)."""
    src = ("(let a (int 0)) (scope (let b (int 0)) (while (cmp gt (load b) (int 0)) (break)"
           " (if (int 0) (then (let b (add (load a) (int 0))))) (store b (add (load b) (int -1)))))"
           " (let a (int 2147483647)) (if (cmp gt (load a) (int 1)) (then (loop 0)))")
    for fuel in (15, 16, 100):
        agree(src, limits=Limits(fuel=fuel), optimize=True, tiers=("native", "auto"))


def test_tier_names_what_ran():
    """A result's tier is the tier that really ran: native (2) only when native code ran."""
    loop = "(let s (int 0)) (loop 30000 (store s (add (load s) (int 1)))) (load s)"
    r = run(_seq(loop), [], limits=BIG, tier="native", engine=Engine())
    assert r.tier == 2 and r.output_vec == [30000.0]
    block = (EXAMPLES / "block4.sexpr").read_text()
    r = run(_seq(block), [1.0] * 896, tier="native", engine=Engine())  # no scalar loop: closures only
    assert r.ok and r.tier == 1
    # (a cold program under auto reports 0: test_auto_interprets_cold_programs)
