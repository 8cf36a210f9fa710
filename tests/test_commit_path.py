"""The commit write path (issue 10): prepared rows written in batches store exactly what the
former write sequence stored (golden state roots from before the change), a commit that fails
inside its transaction leaves nothing behind, linking scans each def once and copies only the
ancestors of rewritten calls, the lazy MemoryResolver indexes what the eager one did, and the
store's durability setting."""

from __future__ import annotations

import json
import os
import random
import select
import signal
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from nda.core import ir
from nda.core.errors import StoreError
from nda.core.hashing import Hasher, h1
from nda.core.link import CallIndex, MemoryResolver, link_module, link_names, rewrite_calls
from nda.pipeline import commit as commit_mod
from nda.pipeline.commit import commit, prepare_write, record_triples, reject, write_prepared_commit
from nda.store.codebase import put_function_meta
from nda.store.sitemap import SiteMap
from nda.syntax.sexpr import parse_sexpr

from progen import programs as module_programs
from strategies import nodes, programs

sys.path.insert(0, str(Path(__file__).parent / "conformance"))
from make_commit_golden import GROUPS, golden  # noqa: E402

GOLDEN = Path(__file__).parent / "data" / "commit_golden.json"
TABLES = ("nodes", "groups", "programs", "names", "triples", "snapshots", "strings", "fn_meta",
          "state_entries")


def _rows(store) -> dict:
    """Every table's rows without the time columns, sorted (rowid order aside)."""
    cols = {"programs": "root, v1_program_hash", "names": "name, seq, hash", "snapshots": "key, path",
            "fn_meta": "hash, name, signature"}
    return {t: sorted(store._all(f"SELECT {cols.get(t, '*')} FROM {t}")) for t in TABLES}


def test_commits_store_what_they_stored_before():
    """Every conformance vector and generated program commits to the same rows (H2, H1, bytes)
    and the same state root as the write path before issue 10's rewrite."""
    want = json.loads(GOLDEN.read_text())
    got = golden()
    assert got.keys() == want.keys()
    for pid in want:
        assert got[pid] == want[pid], pid
    assert sum(v["ok"] for v in got.values()) > 100


def _old_write(store, seq, linked, names, sigs):
    """The former step (5): one call per piece, each node put on its own."""
    if linked is not None:
        store.put_module(linked, bind=False)
    root = store.put_program(seq)
    if names:
        store.register_strings(sorted(set(names.values())))
    for d in linked.defs if linked is not None else ():
        put_function_meta(store, d.address, d.name, *sigs.get(d.name, (None, None)))
    record_triples(store, root, seq, linked, store.program_v1(root))
    return root


SOURCES = [
    ("sexpr", GROUPS),
    ("sexpr", "(let x (int 3)) (triple #x:0000000000000005 2 #x:0000000000000009) (print (load x))"),
    ("text", "fn sq(n: int) -> int { return n * n; }\nfn main() { print(sq(4)); }\n"),
    ("sexpr", "(module (def main (scope (print (scope (int 2) (call @f))))) "
              "(def f (scope (let n (scope)) (return (add (load n) (int 1))))))"),
]


@pytest.mark.parametrize("kind,src", SOURCES)
def test_prepared_write_equals_the_former_sequence(tmp_path, kind, src):
    from nda.pipeline.load import load_text

    results = []
    for i, mode in enumerate(("old", "new")):
        with SiteMap.open(str(tmp_path / f"{mode}.db")) as store:
            loaded = load_text(src, kind, store=store)
            seq, linked = loaded.sequence, loaded.module
            with store.transaction("w"):
                if mode == "old":
                    root = _old_write(store, seq, linked, loaded.names, loaded.signatures)
                else:
                    w = prepare_write(store, seq, linked, names=loaded.names,
                                      signatures=loaded.signatures)
                    write_prepared_commit(store, w)
                    root = w.prepared.root
                    assert w.program_v1 == store.program_v1(root)
            assert store.verify() == []
            results.append((root, store.root(), _rows(store)))
    assert results[0] == results[1]


def test_recommit_and_shared_defs_write_nothing_new(tmp_path):
    src = GROUPS
    with SiteMap.open(str(tmp_path / "s.db")) as store:
        first = commit(store, parse_sexpr(src), [1.0] * 4, "one")
        before = _rows(store)
        again = commit(store, parse_sexpr(src), [1.0] * 4, "two")
        assert first.ok and again.ok and again.root == first.root
        assert _rows(store) == before and store.verify() == []
        assert again.state_root == first.state_root and again.seq == first.seq + 1


class Boom(Exception):
    pass


@pytest.mark.parametrize("where", ["put_functions_meta", "record_program_triples", "bind_names"])
def test_failure_inside_the_transaction_leaves_no_partial_rows(tmp_path, monkeypatch, where):
    """A commit whose transaction fails after its node rows went in rolls everything back."""
    import nda.store.codebase as codebase
    import nda.store.prepared as prepared

    with SiteMap.open(str(tmp_path / "s.db")) as store:
        assert commit(store, parse_sexpr("(print (int 1))"), [1.0], "base").ok
        before, root_before, log_before = _rows(store), store.root(), store.log()
        mod = prepared if where == "put_functions_meta" else codebase

        def boom(*a, **k):
            assert store._x("SELECT count(*) FROM nodes").fetchone()[0] > 1  # rows were written
            raise Boom(where)
        monkeypatch.setattr(mod, where, boom)
        with pytest.raises(Boom):
            commit(store, parse_sexpr(GROUPS), [1.0] * 4, "fails", name="p")
        assert _rows(store) == before and store.root() == root_before and store.log() == log_before
        assert store.verify() == []
        monkeypatch.undo()
        ok = commit(store, parse_sexpr(GROUPS), [1.0] * 4, "works", name="p")
        assert ok.ok and ok.seq == log_before[-1].seq + 1 and store.verify() == []


def test_typed_store_error_rejects_at_stage_store(tmp_path, monkeypatch):
    import nda.store.prepared as prepared

    with SiteMap.open(str(tmp_path / "s.db")) as store:
        def refuse(*a, **k):
            raise StoreError("disk says no")
        monkeypatch.setattr(prepared, "put_strings", refuse)
        r = commit(store, parse_sexpr(GROUPS), [1.0] * 4, "x")
        assert not r.ok and r.stage == "store" and "disk says no" in r.reason
        assert store.log() == [] and store.stats()["nodes"] == 0


def _committer(path: str, fd: int) -> None:
    """Child process: `commit` module programs forever, one '.' per acknowledged commit."""
    from test_store_atomicity import commit_forever

    def one(s, k):
        src = GROUPS.replace("(int 7)", f"(int {k})")
        r = commit(s, parse_sexpr(src), [1.0] * 4, f"c{k}", name=f"p{k}")
        assert r.ok, r.reason

    # the weaker opt-in mode; FULL only adds fsyncs
    commit_forever(fd, lambda: SiteMap.open(path, sync="normal"), one)


def test_killed_committer_leaves_whole_commits_only(tmp_path):
    """SIGKILL a process in the middle of `commit`s: every acknowledged commit is there, no
    partial one, and `verify()` is clean, even with the opt-in synchronous=NORMAL (decisions #32)."""
    path = str(tmp_path / "kill.db")
    rng = random.Random(7)
    acked = 0
    for _ in range(8):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            _committer(path, w)
        os.close(w)
        want = rng.randint(1, 6)
        got = 0
        while got < want:
            ready, _, _ = select.select([r], [], [], 60)
            assert ready, "committer stalled"
            chunk = os.read(r, 64)
            assert chunk, "committer died"
            got += len(chunk)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(r)
        acked += got
        with SiteMap.open(path) as s:
            assert s.verify() == []
            log = s.log()
            assert len(log) >= acked
            assert [e.message for e in log] == [f"c{k}" for k in range(len(log))]
            assert s.stats()["programs"] == len(log) == s.stats()["names"]
            acked = len(log)


class _Counting:
    """A connection proxy counting the statements the store hands to SQLite."""

    def __init__(self, conn):
        self.conn, self.calls = conn, []

    def execute(self, sql, *a):
        self.calls.append(sql)
        return self.conn.execute(sql, *a)

    def executemany(self, sql, *a):
        self.calls.append(sql)
        return self.conn.executemany(sql, *a)

    def __getattr__(self, name):
        return getattr(self.conn, name)


def test_statement_count_does_not_grow_with_the_module(tmp_path):
    """Step (5) hands SQLite as many statements for 3 defs as for 40 (batched rows)."""
    def module(n):
        defs = " ".join(f"(def f{i} (scope (let n (scope)) (return (add (load n) (int {i})))))"
                        for i in range(n))
        calls = " ".join(f"(print (scope (int {i}) (call @f{i})))" for i in range(n))
        return f"(module (def main (scope {calls})) {defs})"

    counts = []
    for n in (3, 40):
        with SiteMap.open(str(tmp_path / f"{n}.db")) as store:
            w = prepare_write(store, *_seq_linked(module(n)))
            conn = store._conn
            store._conn = counting = _Counting(conn)
            with store.transaction("x"):
                write_prepared_commit(store, w)
            store._conn = conn
            counts.append(len(counting.calls))
            assert store.stats()["nodes"] == n + 1 and store.verify() == []
    assert counts[0] == counts[1] < 25


def _seq_linked(src):
    linked = link_module(parse_sexpr(src).module)
    return tuple(linked.main_sequence()), linked


# ---------------------------------------------------------------------------------------------
# Linking


def _old_rewrite(node, fn):
    """The former rewrite: every node visited, copied where a child changed."""
    done: dict = {}
    stack = [(node, False)]
    while stack:
        n, expanded = stack.pop()
        if id(n) in done:
            continue
        if not expanded:
            stack.append((n, True))
            stack.extend((c, False) for c in ir.children(n) if id(c) not in done)
            continue
        if type(n) is ir.Call:
            t = fn(n.target)
            done[id(n)] = n if t is None else ir.Call(t, n.span)
        else:
            done[id(n)] = ir.replace_children(n, lambda c: done[id(c)])
    return done[id(node)]


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(nodes(max_depth=5))
def test_call_index_rewrite_matches_a_full_copy_and_shares_the_rest(node):
    def fn(t):
        return ir.Legacy64(7) if type(t) is ir.Hash32 else None

    new, old = rewrite_calls(node, fn), _old_rewrite(node, fn)
    assert new == old
    calls = [n for n in ir.walk(node) if type(n) is ir.Call]
    assert CallIndex(node).calls == calls
    if not any(type(c.target) is ir.Hash32 for c in calls):
        assert new is node  # nothing changed: nothing copied
    originals = {id(n) for n in ir.walk(node)}
    copied = [n for n in ir.walk(new) if id(n) not in originals]
    # only rewritten calls and nodes above them are new objects
    for n in copied:
        assert type(n) is ir.Call or any(type(c) is ir.Call and type(c.target) is ir.Legacy64
                                         for c in ir.walk(n))


def test_link_with_lookup_equals_link_names_then_link(tmp_path):
    src = ("(module (def main (scope (print (scope (int 2) (call @f))) (print (scope (int 1) (call @lib)))))"
           " (def f (scope (let n (scope)) (return (scope (load n) (call @lib))))))")
    with SiteMap.open(str(tmp_path / "s.db")) as store:
        lib = commit(store, parse_sexpr("(module (def main (scope (int 0))) (def lib (scope (let n (scope)) "
                                        "(return (load n)))))"), [1.0], "lib", namespace="")
        assert lib.ok
        module = parse_sexpr(src).module
        one = link_module(module, lookup=store.resolve_name)
        two = link_module(link_names(module, None, store.resolve_name)[0])
        assert one == two and [d.address for d in one.defs] == [d.address for d in two.defs]
        assert one.hasher is not None and one.hasher.known(one.defs[-1].node) == one.defs[-1].address
        from nda.core.link import UnboundNameError

        with pytest.raises(UnboundNameError) as e:
            link_module(parse_sexpr(src.replace("@lib", "@lob")).module, lookup=store.resolve_name,
                        suggest=lambda n, own: ["lib"])
        assert len(e.value.diagnostics) == 2 and "did you mean 'lib'" in e.value.diagnostics[0].hint


def test_lazy_memory_resolver_indexes_what_eager_adds_did():
    linked = link_module(parse_sexpr(GROUPS).module)
    mem = MemoryResolver()
    mem.add_linked(linked)
    root = mem.add_program(linked.main_sequence())
    assert mem._pending  # nothing v1-hashed yet
    for d in linked.defs:
        want = h1(d.node, d.group.aliases if d.group else None, mem.callee_h1) if d.group is None else None
        got = mem.callee_h1(d.address)
        if d.group is None:
            assert got == want
        else:
            assert got == int.from_bytes(d.address[:8], "little")
            member_h1 = h1(d.node, d.group.aliases, mem.callee_h1)
            assert mem.resolve_call(ir.Legacy64(member_h1), None).address == d.address
    from nda.core.hashing import program_entry_hash

    v1 = mem.callee_h1(root)
    assert mem.resolve_call(ir.Legacy64(program_entry_hash(v1)), None).address == root
    assert not mem._pending


# ---------------------------------------------------------------------------------------------
# Store settings and public names


def test_sync_modes(tmp_path):
    with SiteMap.open(str(tmp_path / "f.db")) as s:
        assert s._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL, §8's default
        assert s._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with SiteMap.open(str(tmp_path / "n.db"), sync="normal") as s:
        assert s._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL, opted into
    with pytest.raises(StoreError, match="unknown sync mode"):
        SiteMap.open(str(tmp_path / "x.db"), sync="off")
    import nda

    with nda.Store.open(str(tmp_path / "api.db"), sync="normal") as s:  # the API's Store too
        assert s._conn.execute("PRAGMA synchronous").fetchone()[0] == 1


def test_public_helpers_replace_the_private_ones():
    assert not hasattr(commit_mod, "_reject") and not hasattr(commit_mod, "_record_triples")
    r = reject("gate", "nope", "VALIDATION_ERROR")
    assert not r.ok and r.stage == "gate" and r.to_dict()["reason"] == "nope"
    for name in ("reject", "record_triples", "prepare_write", "write_prepared_commit"):
        assert name in commit_mod.__all__ and name in commit_mod.__doc__


def test_prepare_reuses_the_linkers_h2(monkeypatch):
    """The store hashes no def again: with the linker's memo, preparing a module costs one
    SHA-256 per node (its H1); with a fresh memo, two (H2 and H1). Leaves (no children:
    their encoding is their content) count once per distinct encoding."""
    import nda.core.hash_encode as hash_encode
    import nda.core.hashing as hashing
    from nda.store.prepared import prepare

    linked = link_module(parse_sexpr(GROUPS).module)
    seq = tuple(linked.main_sequence())
    from nda.core.binary_v2 import encode_node

    every = [x for d in linked.defs for x in ir.walk(d.node)]
    by_content = [hash_encode._is_leaf(type(x)) for x in every]  # Int, Load, …: not Call
    n = len({id(x) for x, c in zip(every, by_content) if not c}) + \
        len({encode_node(x) for x, c in zip(every, by_content) if c})
    count = [0]
    real = hashing._sha256

    def counting(*a):
        count[0] += 1
        return real(*a)

    class NoStore:
        callee_h1 = staticmethod(lambda d: None)

    monkeypatch.setattr(hashing, "_sha256", counting)
    monkeypatch.setattr(hash_encode, "_sha256", counting)  # the one-pass kind functions
    prep = prepare(NoStore(), seq, linked, linked.hasher)
    assert count[0] == n and prep.root == linked.by_name("main").address  # main's row is the root
    count[0] = 0
    assert prepare(NoStore(), seq, linked, Hasher()).rows == prep.rows
    assert count[0] == 2 * n


def test_a_copied_or_pickled_module_gets_an_empty_h2_memo():
    """The memo is keyed by object identity: a copy of a linked module (deepcopy, pickle to a
    worker) must not carry it, or another object could be given a stale digest."""
    import copy
    import pickle

    linked = link_module(parse_sexpr(GROUPS).module)
    assert linked.hasher.known(linked.defs[0].node) is not None
    for other in (copy.deepcopy(linked), pickle.loads(pickle.dumps(linked))):
        assert other == linked and other.hasher is not None
        assert other.hasher._memo == {}
        seq = tuple(other.main_sequence())
        from nda.store.prepared import prepare

        class NoStore:
            callee_h1 = staticmethod(lambda d: None)

        assert prepare(NoStore(), seq, other, other.hasher).rows == \
            prepare(NoStore(), tuple(linked.main_sequence()), linked, linked.hasher).rows


def test_call_index_rewrite_of_shared_subtrees():
    """A subtree shared by several parents (a DAG) is rewritten under every parent, once."""
    call = ir.Call(ir.Legacy64(1))
    shared = ir.Add(ir.Int(1), ir.Scope((ir.Int(2), call)))
    tree = ir.Scope((ir.Print(shared), ir.Let(5, ir.Int(0)), ir.Store(5, shared), shared))

    def fn(t):
        return ir.Legacy64(2)

    new, old = rewrite_calls(tree, fn), _old_rewrite(tree, fn)
    assert new == old
    assert all(type(c.target) is ir.Legacy64 and c.target.value == 2
               for c in ir.walk(new) if type(c) is ir.Call)
    assert new.children[0].source is new.children[2].value is new.children[3]  # sharing kept
    assert new.children[1] is tree.children[1]  # untouched subtree shared with the original


_COUNTER = [0]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(programs(max_len=4, hash32=False))
def test_prepared_write_equals_the_former_sequence_on_random_programs(tmp_path, seq):
    """Any program (Legacy64 calls, Triple nodes, shared subtrees…) is written to the same
    rows and state by the prepared path as by the former put_program + record_triples."""
    _COUNTER[0] += 1
    seq = tuple(seq)
    out = []
    for mode in ("old", "new"):
        with SiteMap.open(str(tmp_path / f"{mode}{_COUNTER[0]}.db")) as store:
            with store.transaction("w"):
                if mode == "old":
                    root = _old_write(store, seq, None, {}, {})
                else:
                    w = prepare_write(store, seq, None)
                    write_prepared_commit(store, w)
                    root = w.prepared.root
            out.append((root, store.root(), _rows(store)))
            assert store.verify() == []
    assert out[0] == out[1]


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(nodes(max_depth=6, hash32=False), st.lists(st.integers(0, 40), max_size=4))
def test_call_index_recursive_scan_equals_the_iterative_one(node, picks):
    """`CallIndex`'s recursive pass and its iterative fallback find the same Calls (pre-order)
    and the same ancestors with the same (last) pre-order indices, shared subtrees included."""
    from nda.core.link import CallIndex

    subs = list(ir.walk(node))
    for root in (node, ir.Scope(tuple(subs[i % len(subs)] for i in picks) + (node, ir.Call(ir.Legacy64(5))))):
        rec = CallIndex(root)
        it = object.__new__(CallIndex)
        it._scan_iterative(root)
        assert rec.calls == it.calls and [id(c) for c in rec.calls] == [id(c) for c in it.calls]
        assert rec._above == it._above


def test_call_index_deeper_than_the_stack_uses_the_iterative_scan():
    import sys

    from nda.core.link import CallIndex

    leaf = ir.Call(ir.Legacy64(9))
    node = leaf
    for _ in range(sys.getrecursionlimit() + 200):
        node = ir.Return(node)
    idx = CallIndex(node)
    assert idx.calls == [leaf] and len(idx._above) == sys.getrecursionlimit() + 200


def test_linking_for_a_commit_encodes_defs_once_with_the_same_rows(tmp_path):
    """A commit links with `Hasher(store.callee_h1)`: each def's H1 and v2 bytes come out of
    the linker's pass (`Hasher.h2_root`) and the store's write reuses them. The rows are
    those of the plain path — for defs calling module functions, group members (theirs are
    left to the write), and functions already in the store, a stored group member included."""
    from nda.store.prepared import prepare

    store = SiteMap.open(str(tmp_path / "s.db"))
    try:
        assert commit(store, parse_sexpr(GROUPS), None, "groups", namespace="").ok
        calls_stored = ("(module (def main (scope (print (scope (int 4) (call @even))) "
                        "(print (scope (int 2) (call @twice))))) "
                        "(def twice (scope (let n (scope)) (return (scope (load n) (call @sq))))))")
        for src in (GROUPS, calls_stored):
            module = parse_sexpr(src).module
            enc = Hasher(store.callee_h1)
            linked = link_module(module, enc, lookup=store.resolve_name)
            plain = link_module(module, lookup=store.resolve_name)
            seq = tuple(linked.main_sequence())
            got = prepare(store, seq, linked, enc)
            want = prepare(store, tuple(plain.main_sequence()), plain, Hasher())
            assert [(r.addr, r.v1, r.opcode, r.data, r.group, r.index) for r in got.rows] == \
                [(r.addr, r.v1, r.opcode, r.data, r.group, r.index) for r in want.rows]
            assert (got.root, got.root_v1) == (want.root, want.root_v1)
            singles = [d for d in linked.defs if d.group is None]
            encoded = [d for d in singles if id(d.node) in enc._encoded]
            assert encoded  # the pass was used (sq, twice, and main when it calls no member of its own)
            if src is calls_stored:
                assert len(encoded) == len(singles)  # a stored group member's H1 is its alias
    finally:
        store.close()


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(module_programs())
def test_linked_defs_carry_their_calls_as_a_scan_finds_them(case):
    """`LinkedDef.calls` (from linking's `CallIndex`, retargeted) is what `dag.collect` finds
    in the linked def: the same Call objects, in pre-order, once per occurrence."""
    from nda.core.dag import collect

    module, _inp, _limits = case
    for d in link_module(module).defs:
        want = collect((d.node,), frozenset((ir.Call,)))
        assert d.calls is not None and [id(c) for c in d.calls] == [id(c) for c in want]
