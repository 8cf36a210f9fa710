"""SiteMap on SQLite (runtime.md §8): schema, writes, reads, names, KV, triples, root log,
call resolution, reopen."""

import sqlite3
import tempfile
import threading

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from nda.pipeline.load import load_stored
from nda.core import ir
from nda.core.errors import NdaError, StoreError, ValidationError
from nda.core.hashing import (
    alias_of, h1, h2, kv_token_hash, program_entry_hash, program_hash, snapshot_hash,
)
from nda.core.ir import name_hash
from nda.core.link import link_module
from nda.pipeline.load import UsageError
from nda.sandbox.runner import run
from nda.syntax.sexpr import parse_sexpr
from nda.store.sitemap import (
    EMPTY_ROOT, SiteMap, be8, commit_id_of, e_node, state_root_of,
)
from nda.store.sitemap_dir import decode_kv_record, encode_kv_record

from strategies import programs

SUM_MODULE = """(module
  (def main (scope (print (scope (int 4) (call @sum)))))
  (def sum (scope (let n (scope)) (if (scope) (then))
                  (if (cmp le (load n) (int 0)) (then (return (int 0))))
                  (return (add (load n) (scope (math sub (load n) (int 1)) (call @sum)))))))"""


def seq(text):
    return parse_sexpr(text).sequence


@pytest.fixture
def store(tmp_path):
    s = SiteMap.open(str(tmp_path / "s.db"))
    yield s
    s.close()


def kv_rec(n=896, fill=0xAA):
    p = (n + 7) // 8
    return encode_kv_record(n, -3, bytes([fill]) * p, bytes(p), bytes(p), bytes([0x0F]) * p)


# ---------------------------------------------------------------------------------------------
# schema


def test_schema_pragmas_indexes_and_triggers(store):
    c = store._conn
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert c.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL, as runtime.md §8 (docs/decisions.md #32)
    assert c.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"meta", "nodes", "groups", "programs", "names", "triples", "snapshots", "kv", "strings",
            "roots"} <= tables
    idx = {r[0]: r[1] for r in c.execute("SELECT name, tbl_name FROM sqlite_master WHERE type='index'")}
    assert idx["nodes_v1"] == "nodes" and idx["triples_po"] == "triples" and idx["triples_s"] == "triples"
    trig = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    assert trig == {"roots_no_update", "roots_no_delete"}
    meta = dict(c.execute("SELECT key, value FROM meta"))
    assert meta == {"schema_version": "1", "weight_root": "0000000000000000"}
    assert store.root() == EMPTY_ROOT and store.log() == [] and store.verify() == []


def test_roots_are_append_only(store):
    store.put_node(ir.Int(1))
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store._conn.execute("UPDATE roots SET message='x'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store._conn.execute("DELETE FROM roots")
    assert len(store.log()) == 1


def test_u64_columns_are_big_endian_blobs(store):
    n = ir.Int(42)
    addr = store.put_node(n)
    row = store._conn.execute("SELECT v1_hash, opcode, bytes FROM nodes WHERE hash=?", (addr,)).fetchone()
    assert row[0] == bytes.fromhex("44b9127a5e4e3045")  # H1(Int 42) = 44b9127a5e4e3045, BE
    assert row[1] == 5 and row[2] == bytes.fromhex("052a000000")
    assert addr.hex() == "505682dd0ac2ce48394aefd568d8c4415c01d49e44a6cc88b3fdffed8e1721b1"


# ---------------------------------------------------------------------------------------------
# nodes and programs


def test_put_node_is_idempotent_and_indexes_triples(store):
    node = parse_sexpr("(scope (triple 1 2 3) (alloc (triple 4 5 6)) (triple 1 2 3))").sequence[0]
    a = store.put_node(node)
    assert a == h2(node)
    before = store.log()
    assert store.put_node(node) == a
    assert store.log() == before  # nothing written, no roots row
    assert store.node_origin_triples(a) == [(1, 2, 3), (4, 5, 6)]
    assert store.find_triples() == [(1, 2, 3), (4, 5, 6)]
    assert store.find_live_triples() == []
    assert store.get_node(a) == node
    assert store.get_node(ir.Hash32(a)) == node
    assert store.get_node(h1(node)) == node
    assert store.get_node(ir.Legacy64(h1(node))) == node
    assert store.get_node(bytes(32)) is None and store.get_node(12345) is None


def test_put_nodes_is_one_transaction(store):
    nodes = [ir.Int(i) for i in range(50)] + [ir.Int(3)]
    addrs = store.put_nodes(nodes, message="ints")
    assert addrs == [h2(n) for n in nodes]
    assert [e.message for e in store.log()] == ["ints"]
    assert store.stats()["nodes"] == 50 and store.log()[0].entry_count == 50


def test_put_node_with_missing_callee_writes_nothing(store):
    store.put_node(ir.Int(1))
    before = (store.stats(), store.log())
    with pytest.raises(NdaError, match="not found"):
        store.put_node(ir.Scope((ir.Call(ir.Hash32(b"\x01" * 32)),)))
    with pytest.raises(NdaError):
        store.put_node(ir.Scope((ir.Call(ir.GroupRef(0)),)))
    assert (store.stats(), store.log()) == before


def test_put_program_root_v1_index_and_program_entry(store):
    s = seq("(let x (int 5)) (print (load x))")
    root = store.put_program(s)
    assert root == program_hash(s)
    scope = ir.Scope(tuple(s))
    v1 = h1(scope)
    assert store.program_v1(root) == program_entry_hash(v1)
    assert store.get_node(root) == scope
    assert store.get_node(program_entry_hash(v1)) == scope  # program entries resolve transparently
    rec = store.get_record(root)
    assert rec.is_program and rec.v1_hash == v1 and rec.group is None
    n = len(store.log())
    assert store.put_program(s) == root and len(store.log()) == n


def test_hash32_calls_get_v1_from_the_callee(store):
    callee = store.put_program(seq("(int 7)"))
    caller = ir.Scope((ir.Call(ir.Hash32(callee)),))
    a = store.put_node(caller)
    expect = h1(caller, None, lambda d: h1(ir.Scope((ir.Int(7),))) if d == callee else None)
    assert store.get_record(a).v1_hash == expect
    res = run((ir.Call(ir.Hash32(a)),), [], store=store, tier="interp")
    assert res.is_success() and res.output_vec == [7.0]


def test_put_module_groups_members_names_and_resolution(store):
    linked = link_module(parse_sexpr(SUM_MODULE).module)
    addrs = store.put_module(linked)
    sum_def = linked.by_name("sum")
    assert addrs == {"main": linked.by_name("main").address, "sum": sum_def.address}
    g = sum_def.group
    row = store._conn.execute("SELECT group_hash, group_index, bytes FROM groups JOIN nodes ON "
                              "nodes.group_hash=groups.hash").fetchone()
    assert row[0] == g.hash and row[1] == 0
    rec = store.get_record(sum_def.address)
    assert rec.node == sum_def.node and rec.group == g and rec.index == 0
    assert any(type(n) is ir.Call and n.target == ir.GroupRef(0) for n in ir.walk(rec.node))
    assert store.resolve_name("sum") == sum_def.address and store.resolve_name("main") == addrs["main"]
    assert store.resolve_string(name_hash("sum")) == "sum"
    # resolver protocol
    c = store.resolve_call(ir.Hash32(sum_def.address), None)
    assert c.address == sum_def.address and c.group == g and c.node == sum_def.node
    assert store.resolve_call(ir.GroupRef(0), g).address == sum_def.address
    assert store.resolve_call(ir.GroupRef(1), g) is None and store.resolve_call(ir.GroupRef(0), None) is None
    assert store.resolve_call(ir.Legacy64(alias_of(sum_def.address)), None).address == sum_def.address
    assert store.resolve_call(ir.Legacy64(rec.v1_hash), None).address == sum_def.address
    assert store.resolve_call(ir.Hash32(bytes(32)), None) is None
    assert store.resolve_call(ir.Legacy64(1), None) is None
    # a program stored later calls the member through the store
    res = run(linked.main_sequence(), [], store=store, tier="interp")
    assert res.output_log == ["[print] [10.0]"]
    for tier in ("interp", "closure"):
        r = run((ir.Scope((ir.Int(3), ir.Call(ir.Legacy64(alias_of(sum_def.address))))),), [],
                store=store, tier=tier)
        assert r.is_success() and r.output_vec == [6.0], (tier, r.error)
    assert store.verify() == []


def test_load_program_ref_hash_prefix_name(store):
    root = store.put_program(seq("(let x (int 5)) (print (load x))"))
    store.register_string("x")
    for ref in (root.hex(), root.hex()[:8], root.hex()[:13].upper()):
        ld = load_stored(store, ref)
        assert ld.sequence == tuple(seq("(let x (int 5)) (print (load x))"))
        assert ld.resolver is store and ld.names == {name_hash("x"): "x"}
    store.bind_name("prog", root)
    assert load_stored(store, "prog").sequence[0] == ir.Let(name_hash("x"), ir.Int(5))
    assert load_stored(store, f"#x:{h1(ir.Scope(tuple(seq('(let x (int 5)) (print (load x))')))):016x}")
    for bad in ("nothing", root.hex()[:7], "0" * 64, "zz" * 32):
        with pytest.raises(UsageError):
            load_stored(store, bad)
    # group member: GroupRef calls become Hash32 of the members
    linked = link_module(parse_sexpr(SUM_MODULE).module)
    store.put_module(linked)
    ld = load_stored(store, "sum")
    assert not any(type(n) is ir.Call and type(n.target) is ir.GroupRef for s in ld.sequence for n in ir.walk(s))


def test_ambiguous_prefix(store):
    a = store.put_node(ir.Int(1))
    fake = a[:5] + bytes(27)  # a second row sharing the first 10 hex digits
    with store.transaction("fake"):
        store._conn.execute("INSERT INTO nodes SELECT ?, v1_hash, opcode, bytes, NULL, NULL FROM nodes "
                            "WHERE hash=?", (fake, a))
    with pytest.raises(UsageError, match="ambiguous"):
        store.resolve_ref(a.hex()[:10])
    assert store.resolve_ref(a.hex()[:12]) == a


# ---------------------------------------------------------------------------------------------
# names, strings


def test_names_bind_resolve_history(store):
    a = store.put_node(ir.Int(1))
    b = store.put_node(ir.Int(2))
    assert store.bind_name("f", a) == 1
    n = len(store.log())
    assert store.bind_name("f", a) == 1 and len(store.log()) == n  # no-op
    assert store.bind_name("f", ir.Hash32(b)) == 2
    assert store.resolve_name("f") == b and store.resolve_name("g") is None
    hist = store.name_history("f")
    assert [(s, h) for s, h, _ in hist] == [(1, a), (2, b)]
    assert [(nm, h, s) for nm, h, s, _ in store.names()] == [("f", b, 2)]
    with pytest.raises(StoreError):
        store.bind_name("g", bytes(32))
    with pytest.raises(StoreError):
        store.bind_name("", a)
    assert store.verify() == []


def test_strings(store):
    h = store.register_string("user:alice")
    assert h == name_hash("user:alice")
    assert store.resolve_string(h) == "user:alice" and store.resolve_string(1) is None
    n = len(store.log())
    store.register_string("user:alice")
    assert len(store.log()) == n
    assert store.strings_for([h, 5]) == {h: "user:alice"}


# ---------------------------------------------------------------------------------------------
# KV


def test_kv_put_get_and_key(tmp_path):
    with SiteMap.open(str(tmp_path / "k.db"), weight_root=0x1234) as s:
        rec = kv_rec()
        assert len(rec) == 452
        key = s.put_kv(7, 3, rec)
        assert key == kv_token_hash(7, 3, 0x1234)
        assert s.get_kv(7, 3) == rec and s.get_kv(7, 4) is None
        assert s.get_kv_by_key(key) == rec and s.get_kv_by_key(1) is None
        assert decode_kv_record(rec)["log2_scale"] == -3
        s.put_kv(7, 3, kv_rec(fill=0x11))  # replace
        assert s.get_kv(7, 3) == kv_rec(fill=0x11)
        with pytest.raises(StoreError):
            s.put_kv(1, 1, rec[:-1])
        with pytest.raises(StoreError):
            s.put_kv(1, 1, rec[:3] + b"\x01" + rec[4:])
        assert s.verify() == []
    with pytest.raises(StoreError, match="weight_root"):
        SiteMap.open(str(tmp_path / "k.db"), weight_root=0x99)
    with SiteMap.open(str(tmp_path / "k.db")) as s:
        assert s.weight_root == 0x1234 and s.get_kv(7, 3) == kv_rec(fill=0x11)


def test_kv_cache_is_fifo_4096(store):
    with store.transaction("many kv"):
        for t in range(4100):
            store.put_kv(t, 0, kv_rec(8, fill=t & 0xFF))
    cache = store._kv_cache
    assert len(cache) == 4096
    assert store.kv_key(0, 0) not in cache and store.kv_key(4099, 0) in cache
    assert store.get_kv(0, 0) == kv_rec(8, fill=0)  # from the database, re-cached
    assert len(cache) == 4096 and store.kv_key(1, 0) not in cache  # oldest evicted first
    assert len(store.log()) == 1


# ---------------------------------------------------------------------------------------------
# snapshots and triple queries


def test_triple_queries_spec_example(store):
    store.put_file_snapshot("a.nda", [(1, 2, 2), (1, 2, 3)])
    assert len(store.find_triples(1, 2, None)) == 2
    assert store.get_callers(3) == {1}
    assert store.get_dependencies(1) == {2, 3}
    assert store.find_live_triples(None, None, 3) == [(1, 2, 3)]
    key = snapshot_hash("a.nda")
    assert store.snapshots()[0][:2] == (key, "a.nda")


def test_snapshot_replace_remove_and_validation(store):
    store.put_node(ir.Triple(9, 1, 8))
    store.put_file_snapshot("f", [(1, 2, 3), (4, 2, 3)], {name_hash("f"): "f"})
    assert store.get_callers(3) == {1, 4}
    store.put_file_snapshot("f", [(5, 2, 3)])
    assert store.get_callers(3) == {5}
    assert store.find_triples() == [(5, 2, 3), (9, 1, 8)]  # historical: nodes + current snapshots
    before = (store.stats(), store.log())
    with pytest.raises(ValidationError, match=r"validation: triple\[1\] is a duplicate"):
        store.put_file_snapshot("f", [(1, 2, 3), (1, 2, 3)])
    with pytest.raises(ValidationError, match="self-reference"):
        store.put_file_snapshot("g", [(7, 2, 7)])
    assert (store.stats(), store.log()) == before
    assert store.remove_file_snapshot("f") is True
    assert store.remove_file_snapshot("f") is False
    assert store.find_live_triples() == [] and store.find_triples() == [(9, 1, 8)]
    assert store.verify() == []


# ---------------------------------------------------------------------------------------------
# root log, transactions


def test_root_log_chain_and_state_root(store):
    a = store.put_node(ir.Int(1))
    log = store.log()
    assert len(log) == 1 and log[0].parent is None and log[0].seq == 1
    assert log[0].state_root == state_root_of([e_node(a)]) == store.root()
    assert log[0].commit_id == commit_id_of(log[0].state_root, None, log[0].time_us, "put_node")
    store.bind_name("one", a)
    log = store.log()
    assert log[1].parent == log[0].commit_id and log[1].seq == 2
    assert log[1].entry_count == 3  # node, name, string "one"
    assert store.log(limit=1) == log[1:]
    st = store.stats()
    assert st["nodes"] == 1 and st["roots"] == 2 and st["state_entries"] == 3 and st["names"] == 1


def test_transaction_is_one_roots_row_and_rolls_back(store):
    with store.transaction("batch") as tx:
        r = store.put_program(seq("(int 1)"))
        store.bind_name("p", r)
        store.put_kv(1, 1, kv_rec(8))
        store.put_file_snapshot("x", [(1, 2, 3)])
    assert tx.entry.seq == 1 and tx.entry.message == "batch"
    assert [e.message for e in store.log()] == ["batch"]
    before = (store.stats(), store.log(), store.root())
    with pytest.raises(RuntimeError):
        with store.transaction("doomed"):
            store.put_program(seq("(int 2)"))
            store.put_kv(2, 2, kv_rec(8))
            raise RuntimeError("boom")
    assert (store.stats(), store.log(), store.root()) == before
    assert store.get_kv(2, 2) is None
    # a non-NDA failure swallowed inside a transaction poisons it
    with pytest.raises(StoreError, match="aborted"):
        with store.transaction("poisoned"):
            try:
                with store.transaction():
                    store.put_node(ir.Int(3))
                    raise KeyError("inner")
            except KeyError:
                pass
    assert (store.stats(), store.log(), store.root()) == before
    assert store.verify() == []


def test_reopen_keeps_everything(tmp_path):
    p = str(tmp_path / "r.db")
    with SiteMap.open(p) as s:
        linked = link_module(parse_sexpr(SUM_MODULE).module)
        s.put_module(linked)
        root = s.put_program(linked.main_sequence())
        s.put_file_snapshot("m", [(1, 3, 2)])
        state = (s.stats(), s.log(), s.root())
    with SiteMap.open(p) as s:
        assert (s.stats(), s.log(), s.root()) == state
        assert s.verify() == []
        res = run(load_stored(s, root.hex()).sequence, [], store=s, tier="interp")
        assert res.output_log == ["[print] [10.0]"]


def test_store_used_from_another_thread(store):
    a = store.put_node(ir.Int(5))
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("n", store.get_node(a)))
    t.start()
    t.join()
    assert box["n"] == ir.Int(5)


def test_not_a_database(tmp_path):
    p = tmp_path / "junk.db"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        SiteMap.open(str(p))


def test_bad_keys(store):
    with pytest.raises(StoreError):
        store.get_node("not-a-key")
    assert be8(1) == b"\x00" * 7 + b"\x01"


# ---------------------------------------------------------------------------------------------
# properties


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(programs(max_len=3, max_depth=3, hash32=False), min_size=1, max_size=6), st.randoms())
def test_state_root_depends_only_on_the_state(tmp_path, progs, rnd):
    """Same content, any order and any transaction grouping → same state_root; verify clean;
    every stored program decodes back to itself."""
    d = tempfile.mkdtemp(dir=tmp_path)
    with SiteMap.open(f"{d}/a.db") as a, SiteMap.open(f"{d}/b.db") as b:
        with a.transaction("all"):
            roots = [a.put_program(p) for p in progs]
        shuffled = list(progs)
        rnd.shuffle(shuffled)
        for p in shuffled:  # one transaction each
            b.put_program(p)
        assert a.root() == b.root()
        assert a.verify() == [] and b.verify() == []
        for p, r in zip(progs, roots):
            assert r == program_hash(p) and b.get_node(r) == ir.Scope(tuple(p))
            assert b.get_record(r).v1_hash == h1(ir.Scope(tuple(p)))
