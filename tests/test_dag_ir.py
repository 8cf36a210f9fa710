"""IR that shares subtrees (a DAG built through the Python API; no front end makes one).

Every entry point answers at once for a DAG whose expanded tree is exponential (2^41 - 1 nodes
from 41 objects): a structured `node count exceeds {max_nodes}` (VALIDATION_ERROR) from the
sandbox, the gate, the commit, the encoders and the printers, the content address computed
(H2 is memoized per object). A DAG of modest expansion behaves exactly as its expanded tree on
every tier (results, content address, encoding, commit).
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import HealthCheck, given, settings

import nda
from nda.api import _as_program
from nda.core import binary_v2, dag, ir
from nda.core.hashing import Hasher, hash_and_encode, program_hash
from nda.core.link import MemoryResolver, link_module
from nda.runtime.state import Limits
from nda.sandbox.runner import available_tiers, run

from progen import programs

TIERS = available_tiers() + ["auto"]
TOO_BIG = f"node count exceeds {dag.MAX_NODES}"


def chain(k: int, leaf=None) -> ir.Node:
    """`Add(x, x)` k times over `leaf`: k + 1 objects, 2^(k+1) - 1 nodes once expanded."""
    x = leaf if leaf is not None else ir.Int(1)
    for _ in range(k):
        x = ir.Add(x, x)
    return x


def expand(node):
    """The expanded tree of `node`: a fresh object for every occurrence."""
    if not isinstance(node, ir.Node):
        return node
    if ir.CHILD_GETTERS.get(type(node)) is None:
        return dataclasses.replace(node)
    return ir.replace_children(node, expand)


def share(node, memo=None, hasher=None):
    """Hash-consing: every subtree equal to an earlier one (same H2) becomes that object."""
    memo = {} if memo is None else memo
    hasher = hasher or Hasher()
    out = ir.replace_children(node, lambda c: share(c, memo, hasher)) if isinstance(node, ir.Node) else node
    return memo.setdefault(hasher.h2(out), out)


def objects(roots) -> int:
    seen, stack = set(), list(roots)
    while stack:
        n = stack.pop()
        if id(n) not in seen:
            seen.add(id(n))
            stack.extend(ir.children(n))
    return len(seen)


# ---------------------------------------------------------------------------------------------
# Measuring


def test_measure_counts_the_expanded_tree_per_distinct_object():
    m = dag.measure((chain(40),))
    assert (m.nodes, m.depth, m.distinct) == (2 ** 41 - 1, 41, 41)
    m = dag.measure((chain(3), chain(3)), frozenset((ir.Int,)))
    assert (m.nodes, m.depth) == (30, 4) and len({id(n) for n in m.found}) == 2
    assert dag.measure(()) == (0, 0, 0, [])


def _paths(roots):
    roots = tuple(roots)
    return [dag._walk(roots, frozenset(), dag.SATURATED, None),
            dag._walk(roots, frozenset(), dag.SATURATED, set()),
            dag._measure_shared(roots, frozenset())]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(programs())
def test_the_three_measuring_paths_agree_on_trees_and_dags(case):
    module, _inp, _limits = case
    roots = [d.node for d in link_module(module).defs]
    plain, seen, shared = _paths(roots)
    walked = sum(1 for r in roots for _ in ir.walk(r))
    assert plain[:2] == seen[:2] == shared[:2] == (walked, max(ir.node_depth(r) for r in roots))
    consed = [share(r) for r in roots]
    assert dag.measure(consed)[:2] == dag._measure_shared(tuple(consed), frozenset())[:2] == plain[:2]


def test_a_large_tree_takes_the_second_path_and_a_dag_the_third():
    big = ir.Scope(tuple(ir.Scope((ir.Int(i),)) for i in range(dag.WALK_CHECK + 5)))
    assert dag._walk((big,), frozenset(), dag.WALK_CHECK, None) is None
    assert dag.measure((big,))[:3] == (2 * (dag.WALK_CHECK + 5) + 1, 3, 2 * (dag.WALK_CHECK + 5) + 1)
    assert dag._walk((chain(20),), frozenset(), dag.SATURATED, set()) is None


def test_a_cycle_measures_saturated_and_is_refused_everywhere():
    a = ir.Add(ir.Int(1), ir.Int(2))
    object.__setattr__(a, "rhs", a)
    assert dag.measure((a,)).nodes == dag.SATURATED
    for tier in TIERS:  # infinitely deep, too: the nesting limit is checked first
        res = run((a,), [], tier=tier)
        assert (res.error_code, res.error, res.panicked) == ("VALIDATION_ERROR", "node nesting exceeds 256", False)
        res = run((a,), [], tier=tier, limits=Limits(max_node_depth=dag.SATURATED))
        assert (res.error_code, res.error, res.panicked) == ("VALIDATION_ERROR", TOO_BIG, False)
    assert [d.message for d in nda.check([a]).diagnostics] == [TOO_BIG]


# ---------------------------------------------------------------------------------------------
# The exponential DAG of the bug report: every entry point answers


def test_run_refuses_it_on_every_tier_with_a_structured_result():
    x = chain(40)
    for tier in TIERS:
        res = nda.run([x], tier=tier)
        assert (res.error_code, res.error) == ("VALIDATION_ERROR", TOO_BIG)
        assert not res.panicked and res.executed_nodes == 0 and res.output_vec == []


def test_check_refuses_it_with_one_finding():
    got = nda.check([chain(40)])
    assert not got.ok and got.stage == "gate"
    assert [(d.code, d.message) for d in got.diagnostics] == [("VALIDATION_ERROR", TOO_BIG)]


def test_its_content_address_is_that_of_the_expanded_tree():
    p = nda.run([chain(40)])
    assert len(p.program_hash) == 64
    assert program_hash([chain(12)]) == program_hash([expand(chain(12))])
    assert program_hash([chain(40)]) == program_hash([chain(40)])


def test_store_commit_refuses_it_and_writes_nothing(tmp_path):
    with nda.Store.open(str(tmp_path / "s.db")) as store:
        got = store.commit([chain(40)])
        assert not got.ok and got.error_code == "VALIDATION_ERROR" and got.reason.endswith(TOO_BIG)
        assert store.log() == []


def test_encoders_and_printers_refuse_it():
    x = chain(40)
    p = _as_program([x])
    for encode in (lambda: binary_v2.encode_program([x]), lambda: binary_v2.encode_node(x),
                   lambda: hash_and_encode(x, Hasher()), p.to_binary, p.to_sexpr, p.to_text):
        with pytest.raises(dag.TooManyNodes, match=TOO_BIG):
            encode()
    shared = [chain(14)] * 1000  # each root small, their sum over the limit
    with pytest.raises(dag.TooManyNodes):
        binary_v2.encode_program(shared)
    dot = p.to_dot()
    assert f"{2 ** 41 - 1 - 3000} more nodes not drawn" in dot


def test_a_module_with_such_a_def_is_refused_when_linked():
    f = ir.Scope((chain(40),))
    m = ir.Module((ir.Def("f", f), ir.Def("main", ir.Scope((ir.Call(ir.NamedRef("f")),)))))
    with pytest.raises(dag.TooManyNodes, match=TOO_BIG):
        nda.run(m)
    got = nda.check(m)
    assert not got.ok and [d.message for d in got.diagnostics] == [TOO_BIG]


def test_a_callee_over_the_limit_fails_at_the_call_on_every_tier():
    f = ir.Scope((chain(3),))  # 16 nodes
    m = link_module(ir.Module((ir.Def("f", f), ir.Def("main", ir.Scope((ir.Call(ir.NamedRef("f")),))))))
    res = {}
    for tier in TIERS:
        store = MemoryResolver()
        store.add_linked(m)
        r = run(m.main_sequence(), [], store=store, limits=Limits(max_nodes=15), tier=tier)
        res[tier] = r.observable()
        assert (r.error_code, r.error, r.executed_nodes) == ("VALIDATION_ERROR", "node count exceeds 15", 1)
        ok = run(m.main_sequence(), [], store=store, limits=Limits(max_nodes=16), tier=tier)
        assert ok.error is None and ok.output_vec == [8.0]
    assert len(set(res.values())) == 1


# ---------------------------------------------------------------------------------------------
# Modest DAGs behave as their expanded trees


def _observe(seq, inp, limits, tier, optimize, resolver=None):
    res = run(seq, inp, store=resolver, limits=limits, tier=tier, optimize=optimize)
    assert not res.panicked, res.error
    return res.observable(), res.program_hash


def test_a_dag_of_2_to_the_10_runs_as_its_tree_on_every_tier():
    k = ir.name_hash("k")
    body = ir.Store(k, ir.Add(ir.Load(k), chain(10)))
    loop = ir.Loop(3, (body, body, ir.Print(ir.Load(k))))
    cond = ir.Compare(ir.CmpOp.Gt, ir.Load(k), chain(4))
    dag_seq = (ir.Let(k, chain(9)), loop, ir.If(cond, (loop,), (loop, loop)), ir.Load(k))
    tree_seq = tuple(expand(n) for n in dag_seq)
    assert objects(dag_seq) < 60 and dag.measure(dag_seq).nodes == dag.measure(tree_seq).nodes > 10_000
    want = _observe(tree_seq, [], Limits(), "interp", False)
    for tier in TIERS:
        for optimize in (True, False):
            assert _observe(dag_seq, [], Limits(), tier, optimize) == want, (tier, optimize)
    assert binary_v2.encode_program(dag_seq) == binary_v2.encode_program(tree_seq)
    limit = dag.measure(tree_seq).nodes
    for tier in TIERS:  # the limit counts the expanded tree: exactly at it passes
        assert run(dag_seq, [], limits=Limits(max_nodes=limit), tier=tier).error is None
        assert run(dag_seq, [], limits=Limits(max_nodes=limit - 1), tier=tier).error == f"node count exceeds {limit - 1}"
    assert nda.check(list(dag_seq), limits=Limits(max_nodes=limit)).ok
    assert [d.message for d in nda.check(list(dag_seq), limits=Limits(max_nodes=limit - 1)).diagnostics] == [
        f"node count exceeds {limit - 1}"]


def test_a_modest_dag_commits_as_its_tree(tmp_path):
    seq = [ir.Print(chain(6)), chain(8)]
    with nda.Store.open(str(tmp_path / "a.db")) as a, nda.Store.open(str(tmp_path / "b.db")) as b:
        got, want = a.commit(seq), b.commit([expand(n) for n in seq])
        assert got.ok and want.ok and got.root == want.root
        assert a.get(got.root.hex()).to_sexpr() == b.get(want.root.hex()).to_sexpr()


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(programs())
def test_hash_consed_random_programs_agree_with_their_trees_on_every_tier(case):
    module, inp, limits = case
    linked = link_module(module)
    store = MemoryResolver()
    store.add_linked(linked)
    tree = tuple(linked.main_sequence())
    memo: dict = {}
    consed = tuple(share(n, memo) for n in tree)
    want = _observe(tree, inp, limits, "interp", False, store)
    for tier in TIERS:
        for optimize in (True, False):
            assert _observe(consed, inp, limits, tier, optimize, store) == want, (tier, optimize)


# ---------------------------------------------------------------------------------------------
# The limit itself


def test_max_nodes_is_a_limit_like_the_others():
    d = Limits()
    assert d.max_nodes == dag.MAX_NODES == 10_000_000
    assert Limits.from_dict(d.to_dict()) == d and "max_nodes" in Limits.field_names()
    from nda.mcp.schemas import LimitsArg

    assert LimitsArg(max_nodes=5).asked() == {"max_nodes": 5}


def test_the_cli_has_a_max_nodes_flag(tmp_path):
    from click.testing import CliRunner

    from nda.cli.app import main

    src = tmp_path / "p.sexpr"
    src.write_text("(add (int 1) (int 2))\n")
    r = CliRunner().invoke(main, ["run", str(src), "--json", "--max-nodes", "2"])
    got = json.loads(r.output)
    assert r.exit_code == 1 and got["ok"] is False and "node count exceeds 2" in json.dumps(got)
    r = CliRunner().invoke(main, ["run", str(src), "--json", "--max-nodes", "3"])
    assert r.exit_code == 0 and json.loads(r.output)["output_vec"] == [3.0]
