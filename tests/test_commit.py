"""The commit gate (runtime.md §7): gate → sandbox → scope → one transaction; rejections leave
the store byte-for-byte unchanged; the ScopeValidator."""

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nda.pipeline.load import load_stored
from nda.core import ir
from nda.pipeline.commit import F32_MAX, commit, scope_validate
from nda.core.ir import name_hash
from nda.core.link import link_module
from nda.pipeline.load import load_path
from nda.syntax.sexpr import parse_sexpr
from nda.runtime.state import Limits
from nda.store.sitemap import SiteMap
from nda.syntax.triples import CALLS

from test_store import SUM_MODULE


@pytest.fixture
def store(tmp_path):
    s = SiteMap.open(str(tmp_path / "c.db"))
    yield s
    s.close()


def snapshot_of(store: SiteMap):
    """Everything observable about the store, including the database files' bytes."""
    files = {}
    for suffix in ("", "-wal"):
        p = Path(store.path + suffix)
        files[suffix] = hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None
    return store.stats(), store.root(), store.log(), files


# ---------------------------------------------------------------------------------------------
# scope validator


def ref_scope(out, cond):
    """Step-by-step f32 reference of runtime.md §7."""
    f = np.float32
    dot = na = nb = eu = man = f(0)
    for a, b in zip(np.asarray(out, np.float32), np.asarray(cond, np.float32)):
        dot = f(dot + f(a * b))
        na = f(na + f(a * a))
        nb = f(nb + f(b * b))
        d = f(a - b)
        eu = f(eu + f(d * d))
        man = f(man + f(abs(d)))
    sim = f(dot / f(f(np.sqrt(na)) * f(np.sqrt(nb)))) if na > f(1e-8) and nb > f(1e-8) else f(0)
    return float(sim), float(f(np.sqrt(eu))), float(man)


def test_scope_examples():
    r = scope_validate([1.0] * 10, [1.0] * 10)
    assert r == {"similarity": 1.0, "passed": True, "threshold": 0.10, "euclidean_distance": 0.0,
                 "manhattan_distance": 0.0, "vector_dim": 10}
    r = scope_validate([1.0] * 10, [-1.0] * 10)
    assert r["similarity"] == -1.0 and not r["passed"]
    assert r["manhattan_distance"] == 20.0 and r["euclidean_distance"] == pytest.approx(np.sqrt(40), rel=1e-6)
    for out, cond in (([], []), ([1.0], [1.0, 2.0])):
        assert scope_validate(out, cond, 0.5) == {
            "similarity": 0.0, "passed": False, "threshold": 0.5, "euclidean_distance": F32_MAX,
            "manhattan_distance": F32_MAX, "vector_dim": 0}
    assert F32_MAX == 3.4028234663852886e38
    assert scope_validate([0.0, 0.0], [1.0, 1.0])["similarity"] == 0.0  # na ≤ 1e-8
    assert scope_validate([1.0, 0.0], [1.0, 1.0], 0.70)["passed"] is True  # 0.7071


def test_scope_accumulates_in_f32_index_order():
    # 1e8 + 1 is lost in f32, so the order of accumulation shows in the result
    out = [1e4, 1.0, 1.0, 1.0, -1e4]
    cond = [1e4, 1.0, 1.0, 1.0, 1e4]
    assert scope_validate(out, cond)["similarity"] == ref_scope(out, cond)[0]
    assert scope_validate(out, cond)["similarity"] != float(np.float64(np.dot(out, cond)) /
                                                            (np.linalg.norm(out) * np.linalg.norm(cond)))


@settings(max_examples=200)
@given(st.lists(st.tuples(st.floats(-1e6, 1e6, width=32), st.floats(-1e6, 1e6, width=32)),
                min_size=1, max_size=40))
def test_scope_matches_the_step_by_step_reference(pairs):
    out = [a for a, _ in pairs]
    cond = [b for _, b in pairs]
    r = scope_validate(out, cond)
    sim, eu, man = ref_scope(out, cond)
    assert (r["similarity"], r["euclidean_distance"], r["manhattan_distance"]) == (sim, eu, man)
    assert r["passed"] == (np.float32(sim) >= np.float32(0.10))


# ---------------------------------------------------------------------------------------------
# accepted commits


def test_commit_program(store):
    unit = parse_sexpr("(let x (int 5)) (print (load x)) (triple 1 2 3)")
    r = commit(store, unit, message="first", name="five")
    assert r.ok and r.gate_checked and r.stage is None
    assert r.root == store.resolve_name("five")
    assert r.sandbox.output_log == ["[print] [5.0]"] and r.sandbox.output_vec == [5.0]
    log = store.log()
    assert len(log) == 1 and log[0].message == "first"
    assert (r.state_root, r.commit_id, r.seq) == (log[0].state_root, log[0].commit_id, 1)
    assert r.program_v1 == store.program_v1(r.root)
    assert store.resolve_string(name_hash("x")) == "x"
    assert store.find_triples() == [(1, 2, 3)]
    d = r.to_dict()
    assert d["ok"] and d["root"] == r.root.hex() and d["sandbox"]["output_vec"] == [5.0]
    assert store.verify() == []


def test_commit_module_stores_group_and_binds_names(store):
    r = commit(store, parse_sexpr(SUM_MODULE), conditioning=[], namespace="")
    assert r.ok, r.reason
    linked = link_module(parse_sexpr(SUM_MODULE).module)
    assert r.names == {"main": linked.by_name("main").address, "sum": linked.by_name("sum").address}
    assert store.resolve_name("sum") == linked.by_name("sum").address
    assert store.resolve_name("main") is None  # main is never bound implicitly
    assert r.bindings == [{"name": "sum", "hash": linked.by_name("sum").address.hex(), "previous": None}]
    assert store.get_record(linked.by_name("sum").address).group == linked.by_name("sum").group
    assert len(store.log()) == 1
    # the stored program runs from the store alone
    from nda.sandbox.runner import run

    ld = load_stored(store, r.root.hex()[:10])
    assert run(ld.sequence, [], store=ld.resolver).output_log == ["[print] [10.0]"]
    assert store.verify() == []


def test_commit_accepts_all_program_forms(store):
    seq = parse_sexpr("(int 3)").sequence
    assert commit(store, seq).ok
    assert commit(store, ir.Int(4)).ok
    assert commit(store, parse_sexpr(SUM_MODULE).module).ok
    assert commit(store, link_module(parse_sexpr(SUM_MODULE).module)).ok
    assert len(store.log()) == 4 and store.verify() == []


def test_commit_text_file_registers_names_and_live_triples(store, tmp_path):
    src = tmp_path / "prog.nda"
    src.write_text("fn helper() { print(2) }\nfn main() { let count = 3  helper() }\n")
    r = commit(store, load_path(str(src), store), namespace="")
    assert r.ok, r.reason
    assert store.resolve_string(name_hash("count")) == "count"
    helper = store.resolve_name("helper")
    helper_v1 = store.callee_h1(helper)
    main_v1 = store.callee_h1(r.root)
    assert store.get_callers(helper_v1) == {main_v1}
    assert (name_hash("helper"), 1, helper_v1) in store.find_live_triples()
    # recommitting a new version of the same file keeps the earlier program's triples
    src.write_text("fn main() { print(7) }\n")
    r2 = commit(store, load_path(str(src), store))
    assert r2.ok
    assert store.get_callers(helper_v1) == {main_v1}
    assert store.find_live_triples(None, CALLS, None) == [(main_v1, CALLS, helper_v1)]


def test_commit_calling_a_stored_program(store):
    callee = commit(store, parse_sexpr("(int 9)")).root
    r = commit(store, (ir.Call(ir.Hash32(callee)),))
    assert r.ok and r.sandbox.output_vec == [9.0]


# ---------------------------------------------------------------------------------------------
# rejections leave the store untouched


@pytest.mark.parametrize("program, stage, needle, code", [
    ("(matrix 128 128 :sign aa :extra 55)", "gate", "validation: ", "DIMENSION_MISMATCH"),
    ("(call #" + "ab" * 32 + ")", "gate", "call target " + "ab" * 32 + " not found", "CALL_TARGET_NOT_FOUND"),
    ("(if (scope) (then)) (if (scope) (then))", "gate", "validation: ", "STACK_UNDERFLOW"),
    ("(int 5)", "scope", "scope check failed", None),
])
def test_rejections_leave_the_store_unchanged(store, program, stage, needle, code):
    commit(store, parse_sexpr("(int 1)"), message="baseline")
    before = snapshot_of(store)
    r = commit(store, parse_sexpr(program), scope_threshold=0.10)
    assert not r.ok and r.stage == stage and r.root is None and r.commit_id is None
    assert needle in r.reason
    if stage == "gate":
        assert r.error_code == code and r.diagnostics and r.diagnostics[0].code == code
        assert all(d.stage == "gate" for d in r.diagnostics)
    if stage == "scope":
        assert r.scope["vector_dim"] == 0 and r.sandbox.is_success()
    assert snapshot_of(store) == before


def test_sandbox_failure_rejects(store):
    # the gate cannot see into a stored callee; the run fails inside it
    bad = store.put_program(parse_sexpr("(peek (int 70000))").sequence)
    before = snapshot_of(store)
    r = commit(store, (ir.Call(ir.Hash32(bad)),))
    assert not r.ok and r.stage == "sandbox" and r.error_code == "OUT_OF_BOUNDS"
    assert r.reason == "OUT_OF_BOUNDS: Out of bounds MMIO/heap read at address 70000"
    assert snapshot_of(store) == before
    r = commit(store, parse_sexpr("(loop 100 (int 1))"), limits=Limits(fuel=50))
    assert not r.ok and r.stage in ("gate", "sandbox")
    assert snapshot_of(store) == before


def test_store_failure_rolls_back(store, monkeypatch):
    before = snapshot_of(store)

    def boom(*a, **k):
        from nda.core.errors import StoreError

        raise StoreError("disk on fire")

    monkeypatch.setattr(store, "bind_name", boom)
    r = commit(store, parse_sexpr("(int 2)"), name="two")
    assert not r.ok and r.stage == "store" and "disk on fire" in r.reason
    assert snapshot_of(store) == before


def test_commit_without_the_gate_module(store, monkeypatch):
    monkeypatch.setitem(sys.modules, "nda.analysis.gate", None)  # import fails → gate skipped
    r = commit(store, parse_sexpr("(int 1)"))
    assert r.ok and not r.gate_checked
    r = commit(store, parse_sexpr("(if (scope) (then)) (if (scope) (then))"))  # rejected by the run
    assert not r.ok and r.stage == "sandbox" and r.error_code == "STACK_UNDERFLOW"
