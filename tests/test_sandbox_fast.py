"""The sandbox's fast path for a compiled program run again with the same arguments
(`nda.sandbox.runner.run`, recorded by `_run`): it must give exactly the result the full path
gives — output, prints, error code and message, failing node, counters, tier — and enforce
every limit the same way; any change of argument, or an engine that dropped the unit, takes
the full path again. Also the lazily defaulted result fields it relies on."""

import pickle

import numpy as np
import pytest

from nda.runtime.state import Limits, RunState
from nda.sandbox import runner
from nda.sandbox.runner import SandboxResult, run
from nda.syntax.sexpr import parse_sexpr
from nda.tiers.closure import Engine

TIMING = ("elapsed_us", "run_us", "compile_us")
COMPILED = [t for t in runner.available_tiers() if t != "interp"] + ["auto"]


def seq(text):
    return parse_sexpr(text).sequence


def fields(res: SandboxResult) -> dict:
    d = res.to_dict()
    for k in TIMING:
        d.pop(k)
    d["error_node"] = res.error_node
    d["bits"] = res.output_array.view(np.uint32).tolist()
    return d


class Counting:
    """Counts the calls of the full path `_run` (the fast path does not call it)."""

    def __init__(self, monkeypatch):
        self.calls = 0
        real = runner._run

        def counted(*a):
            self.calls += 1
            return real(*a)
        monkeypatch.setattr(runner, "_run", counted)


def hot_pair(program, **kw):
    """(full-path result, fast-path result) of the same call, after enough runs that `auto`
    compiles it; asserts the second one took the fast path."""
    for _ in range(200):
        first = run(program, **kw)
        if runner._PROGRAM_INFO._last.hot is not None and runner._PROGRAM_INFO._last.seq is program:
            break
    assert runner._PROGRAM_INFO._last.hot is not None, "the full path did not record the program"
    slow = runner._run(program, None, None, kw.get("limits"), kw.get("tier", "auto"), kw.get("optimize", True),
                       False, kw.get("engine"), None)
    fast = run(program, **kw)
    return first, slow, fast


PROGRAMS = [
    "(int 1)",
    "(let i (int 0)) (loop 100 (store i (add (load i) (int 1)))) (print (load i)) (load i)",
    "(matrix 16 896 :sign a5 :extra 3c) (norm 16 :weight ff :bias 00)",
    "(load x)",  # undefined variable
    "(let v (int 3)) (print (load v)) (load w)",  # prints, then fails
    "(loop 50 (print (int 7)))",
    "(float 2.5) (math mul (float 1e30) (float 1e30))",
]


@pytest.mark.parametrize("tier", COMPILED)
@pytest.mark.parametrize("text", PROGRAMS)
def test_fast_path_gives_the_full_paths_result(tier, text, monkeypatch):
    program = seq(text)
    eng = Engine()
    first, slow, _ = hot_pair(program, tier=tier, engine=eng)
    count = Counting(monkeypatch)
    fast = run(program, tier=tier, engine=eng)
    assert count.calls == 0  # the fast path answered
    assert fields(fast) == fields(slow) == fields(first)
    assert fast.tier == slow.tier and fast.program_hash == slow.program_hash
    oracle = run(program, tier="interp")
    assert fast.observable() == oracle.observable()


LIMIT_CASES = [
    ("(let i (int 0)) (loop 1000 (store i (add (load i) (int 1)))) (load i)", Limits(fuel=1234)),
    ("(loop 100 (int 1))", Limits(max_memory_bytes=65536 + 8 + 8 * 40 + 224)),
    ("(loop 100 (print (int 1)))", Limits(max_output_bytes=100)),
    ("(while (int 1) (int 2))", Limits(max_while_iterations=17)),
    ("(matrix 16 896 :sign a5 :extra 3c) (norm 16 :weight ff :bias 00)", Limits(fuel=1)),
]


@pytest.mark.parametrize("tier", COMPILED)
@pytest.mark.parametrize("case", range(len(LIMIT_CASES)))
def test_limits_are_enforced_exactly_on_the_fast_path(tier, case, monkeypatch):
    text, limits = LIMIT_CASES[case]
    program = seq(text)
    eng = Engine()
    _, slow, _ = hot_pair(program, tier=tier, engine=eng, limits=limits)
    count = Counting(monkeypatch)
    fast = run(program, tier=tier, engine=eng, limits=limits)
    assert count.calls == 0
    assert fast.error_code is not None
    assert fields(fast) == fields(slow)
    assert fast.observable() == run(program, tier="interp", limits=limits).observable()


def test_deadline_on_the_fast_path():
    program = seq("(while (int 1) (int 0))")
    limits = Limits(deadline_ms=20, max_while_iterations=10**12)
    eng = Engine()
    _, slow, fast = hot_pair(program, tier="closure", engine=eng, limits=limits)
    assert fast.error_code == slow.error_code == "DEADLINE_EXCEEDED"
    assert fast.error == slow.error == "deadline exceeded after 20 ms"


def test_changed_arguments_take_the_full_path(monkeypatch):
    program = seq("(let i (int 0)) (loop 300 (store i (add (load i) (int 1)))) (load i)")
    eng = Engine()
    hot_pair(program, engine=eng)
    count = Counting(monkeypatch)
    small = Limits(fuel=100)
    r = run(program, engine=eng, limits=small)  # other limits: full path, fuel error
    assert count.calls == 1 and r.error_code == "FUEL_EXHAUSTED" and r.executed_nodes == 100
    r = run(program, [3.0, -1.0], engine=eng)  # another input
    assert count.calls == 2 and r.ok and r.output_vec == [300.0]
    r = run(program, engine=eng, collect_kind_counts=True)
    assert count.calls == 3 and r.kind_counts["Store"] == 300
    r = run(program, engine=eng, tier="interp")
    assert count.calls == 4 and r.tier == 0
    e2 = Engine()
    r = run(program, engine=e2)  # a new engine: the program's cold accounting starts again
    assert count.calls == 5 and r.output_vec == [300.0] and len(e2.programs) == 1
    r = run(tuple(program), engine=eng)  # an equal program, another object
    assert count.calls == 6
    # back to the recorded arguments: the record was replaced along the way; the full path
    # records them again, then the fast path answers
    a = run(program, engine=eng, limits=small)
    b = run(program, engine=eng, limits=small)
    assert fields(a) == fields(b) and b.error == "fuel exhausted after 100 nodes"


def test_an_engine_that_dropped_the_unit_recompiles(monkeypatch):
    eng = Engine(program_capacity=1)
    p, q = seq("(int 5)"), seq("(int 6)")
    _, _, fast = hot_pair(p, tier="closure", engine=eng)
    assert fast.output_vec == [5.0]
    assert run(q, tier="closure", engine=eng).output_vec == [6.0]  # evicts p's unit
    count = Counting(monkeypatch)
    again = run(p, tier="closure", engine=eng)
    assert count.calls == 1 and again.output_vec == [5.0]
    assert [k[0] for k in eng.programs] == [bytes.fromhex(again.program_hash)]
    eng.cache_clear()
    assert run(p, tier="closure", engine=eng).output_vec == [5.0] and count.calls == 2


def test_panics_on_the_fast_path(monkeypatch):
    program = seq("(let i (int 0)) (loop 500 (store i (add (load i) (int 1)))) (load i)")
    eng = Engine()
    hot_pair(program, tier="closure", engine=eng, optimize=False)

    def boom(self, kind):
        raise RuntimeError("boom")
    monkeypatch.setattr(RunState, "slow_check", boom)  # the fuel/deadline checkpoint at 1,025 nodes
    slow = runner._run(program, None, None, None, "closure", False, False, eng, None)
    count = Counting(monkeypatch)
    fast = run(program, tier="closure", engine=eng, optimize=False)
    assert count.calls == 0 and fast.panicked and fast.error == "panic: RuntimeError: boom" and fast.error_code == "INTERNAL"
    assert fields(fast) == fields(slow) and fast.executed_nodes == 1025


def test_fast_results_are_independent_and_picklable():
    program = seq("(print (int 1)) (int 2)")
    eng = Engine()
    _, _, a = hot_pair(program, tier="closure", engine=eng)
    b = run(program, tier="closure", engine=eng)
    assert a.output_log == b.output_log == ["[print] [1.0]"] and a.output_log is not b.output_log
    a.kind_counts["x"] = 1
    assert b.kind_counts == {}
    c = pickle.loads(pickle.dumps(b))
    assert fields(c) == fields(b) | {"error_node": None}


def test_unset_result_fields_read_as_defaults():
    fresh, bare = SandboxResult(), object.__new__(SandboxResult)
    assert fields(bare) == fields(fresh) and repr(bare) == repr(fresh)
    bare.output_log.append("x")
    assert bare.output_log == ["x"] and object.__new__(SandboxResult).output_log == []
    with pytest.raises(AttributeError):
        bare.no_such_field  # noqa: B018


def test_with_fuel_copies_every_other_limit():
    import dataclasses

    lim = Limits(*range(11, 19))
    assert runner._with_fuel(lim, 5) == dataclasses.replace(lim, fuel=5)


def test_an_input_array_is_recognised_by_object_and_content(monkeypatch):
    program = seq("(scope) (vecop negate (scope))")  # the input, quantized, negated
    eng = Engine()
    x = np.array([1, -2, 3, 0.5, -1, 2, 8, -8], dtype=np.float32)
    for _ in range(3):
        run(program, x, tier="closure", engine=eng)
    count = Counting(monkeypatch)

    def go():  # (result, whether the full path ran)
        before = count.calls
        r = run(program, x, tier="closure", engine=eng)
        return r, count.calls > before

    def reference():
        return fields(run(program, x.copy(), tier="closure", engine=Engine()))
    # (a reference run records its own arguments: it comes last in each step)
    fast, full = go()
    assert not full and fields(fast) == reference()
    x[0] = -100.0  # changed in place: the full path, with the new content
    changed, full = go()
    again, full_again = go()
    assert full and not full_again and fields(again) == fields(changed) == reference()
    assert changed.output_vec != fast.output_vec
    x.dtype = np.int32  # same bytes, another type: the full path (an int array quantizes differently)
    other, full = go()
    assert full and fields(other) == reference()
    before = count.calls
    for n in range(1, 4):  # a list is never recorded: every run takes the full path
        run(program, [1.0] * 8, tier="closure", engine=eng)
        assert count.calls == before + n


def test_forget_program_drops_the_cached_facts_and_the_fast_path():
    from nda.sandbox import runner

    seq = parse_sexpr("(int 5)").sequence
    first = runner.run(seq, tier="closure")
    assert first.is_success() and runner._PROGRAM_INFO.get(seq).seq is seq
    n = len(runner._PROGRAM_INFO)
    runner.forget_program(seq)
    assert len(runner._PROGRAM_INFO) == n - 1 and runner._PROGRAM_INFO._last.seq is not seq
    assert all(info.seq is not seq for info in runner._PROGRAM_INFO._d.values())
    again = runner.run(seq, tier="closure")  # computed afresh, same result
    assert again.output_vec == first.output_vec == [5.0]
    assert again.executed_nodes == first.executed_nodes
    runner.forget_program(parse_sexpr("(int 6)").sequence)  # never seen: nothing happens


def test_batch_worker_does_not_leave_its_fresh_programs_in_the_sandbox_cache():
    import nda
    from nda.sandbox import runner

    runner._PROGRAM_INFO.clear()
    out = list(nda.run_many([f"(int {k})" for k in range(20)], backend="serial"))
    assert [r.output_vec for r in out] == [[float(k)] for k in range(20)]
    assert len(runner._PROGRAM_INFO) == 0
