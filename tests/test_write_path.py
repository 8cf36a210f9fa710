"""The write path's shared work: one pass for H2 + H1 + encoding, the sandbox's one-pass
program facts with a lazy H2, and Calls that switch to a big-stack worker only when the
stack is short (results identical in every case)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from nda.core import deepstack, ir
from nda.core.binary_v2 import encode_node
from nda.core.hashing import Hasher, h1, h2, hash_and_encode
from nda.runtime.state import Limits
from nda.sandbox import runner
from nda.sandbox.runner import run
from nda.syntax.sexpr import parse_sexpr
from nda.tiers.closure import Engine

from strategies import nodes


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(nodes(max_depth=5, hash32=False))
def test_hash_and_encode_is_h2_h1_and_encoding(node):
    hasher = Hasher()
    assert hash_and_encode(node, hasher) == (h2(node), h1(node), encode_node(node))
    # the memo knows every node with children; leaves are kept by content (`Hasher` docstring)
    assert hasher.known(node) == h2(node) if any(True for _ in ir.children(node)) else hasher.known(node) in (None, h2(node))


def test_hash_and_encode_shares_subtrees_and_memo():
    leaf = ir.Add(ir.Int(1), ir.Int(2))
    node = ir.Scope((leaf, ir.Print(leaf), leaf))
    hasher = Hasher()
    hasher.h2(leaf)  # already memoized children are reused
    assert hash_and_encode(node, hasher) == (h2(node), h1(node), encode_node(node))


def test_program_info_one_pass_and_lazy_hash():
    seq = parse_sexpr("(let x (int 1)) (if (cmp lt (load x) (int 2)) (then (print (load x))))").sequence
    info = runner._compute_program_info(tuple(seq))
    assert info.depth == max(ir.node_depth(n) for n in seq)
    assert info.nodes == sum(1 for n in seq for _ in ir.walk(n)) and not info.has_call
    assert info._hash is None  # nothing hashed yet
    r = run(seq, [], tier="interp")
    assert r.program_hash == info.program_hash().hex() == runner.program_info(tuple(seq))[0].hex()


RECURSION = ("(module (def main (scope (print (scope (int %d) (call @sum))))) "
             "(def sum (scope (let n (scope)) (if (scope) (then)) "
             "(if (cmp le (load n) (int 0)) (then (return (int 0)))) "
             "(return (add (load n) (scope (math sub (load n) (int 1)) (call @sum)))))))")


@pytest.mark.parametrize("tier", ["interp", "closure", "native", "auto"])
def test_calls_use_a_big_stack_only_when_needed(tier, monkeypatch):
    hops = []
    orig = deepstack.call_in_big_thread

    def spy(fn, frames):
        hops.append(frames)
        return orig(fn, frames)
    monkeypatch.setattr(deepstack, "call_in_big_thread", spy)
    monkeypatch.setattr(runner, "call_in_big_thread", spy)
    shallow = parse_sexpr(RECURSION % 3)
    r = run(shallow, [], tier=tier, engine=Engine())
    assert r.is_success() and r.output_log == ["[print] [6.0]"]
    assert hops == []  # 4 call levels of a small callee fit on the caller's stack
    deep = parse_sexpr(RECURSION % 60)  # 61 levels: more than the default stack allows
    lim = Limits(max_call_depth=64)
    oracle = run(deep, [], tier="interp", limits=lim)
    got = run(deep, [], tier=tier, limits=lim, engine=Engine())
    assert got.is_success() and got.output_log == ["[print] [1830.0]"]
    assert got.observable() == oracle.observable()
    too_deep = run(parse_sexpr(RECURSION % 70), [], tier=tier, limits=lim, engine=Engine())
    assert too_deep.error_code == "CALL_DEPTH" and not too_deep.panicked


def test_auto_compiles_kernel_programs_from_the_second_run():
    """Tier 0 decodes Matrix/Norm planes on every run; compiled code keeps them: block4 is
    interpreted once, then compiled (COLD_WORK_PER_KERNEL), with identical results."""
    from nda.cli.benchsuite import BLOCK4

    seq = parse_sexpr(BLOCK4).sequence
    oracle = run(seq, tier="interp")
    eng = Engine()
    got = [run(seq, tier="auto", engine=eng) for _ in range(3)]
    assert [r.tier for r in got] == [0, 1, 1]  # compiled closures (no scalar loop goes native)
    assert all(r.observable() == oracle.observable() for r in got)


def test_auto_cold_work_is_counted_per_engine():
    """A new compile-cache engine has compiled nothing: the program starts cold there."""
    from nda.cli.benchsuite import BLOCK4

    seq = parse_sexpr(BLOCK4).sequence
    a, b = Engine(), Engine()
    assert [run(seq, engine=a).tier, run(seq, engine=a).tier] == [0, 1]
    assert [run(seq, engine=b).tier, run(seq, engine=b).tier] == [0, 1]


def test_results_pickle_with_lazy_fields_materialized():
    import pickle

    r = run(parse_sexpr("(int 2)").sequence, [1.0, 2.0, 3.0], tier="auto")
    back = pickle.loads(pickle.dumps(r))
    assert back.observable() == r.observable() and back.program_hash == r.program_hash
    assert back.output_vec == [2.0]
