"""The original SiteMap directory (formats.md §6): import, export, round trips, groups."""

import json
from pathlib import Path

import pytest

from nda.pipeline.load import load_stored
from nda.core import ir
from nda.syntax.binary_v1 import decode_v1, encode_v1
from nda.core.hashing import (
    alias_of, file_sha, h1, h2, index_root, kv_token_hash, program_entry_hash, snapshot_hash,
)
from nda.core.ir import name_hash
from nda.core.link import link_module
from nda.sandbox.runner import run
from nda.syntax.sexpr import parse_sexpr
from nda.store.sitemap import SiteMap
from nda.core.errors import StoreError

from test_store import SUM_MODULE, kv_rec

WEIGHT_ROOT = 0x0123456789ABCDEF
EVEN_ODD = """(module
  (def main (scope (int 4) (call @even)))
  (def even (scope (let n (scope)) (if (scope) (then))
                   (if (cmp le (load n) (int 0)) (then (return (int 1))))
                   (add (load n) (int -1)) (call @odd)))
  (def odd (scope (let n (scope)) (if (scope) (then))
                  (if (cmp le (load n) (int 0)) (then (return (int 0))))
                  (add (load n) (int -1)) (call @even))))"""


def _entry(root: Path, kind, h, rel, data, entries):
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data)
    entries.append({"kind": kind, "hash": h, "file": rel, "file_sha": file_sha(data), "size": len(data)})


def make_original(root: Path) -> dict:
    """A directory as the original writes it (v1 nodes with Legacy64 calls, no groups)."""
    entries: list = []
    leaf = parse_sexpr("(scope (int 2) (triple 11 1 12))").sequence[0]
    caller = ir.Scope((ir.Int(1), ir.Call(ir.Legacy64(h1(leaf))), ir.Let(name_hash("x"), ir.Int(5))))
    noop = ir.Scope((ir.Alloc(ir.Int(3)), ir.Triple(21, 2, 22)))
    nodes = [leaf, caller, noop]
    for n in nodes:
        _entry(root, "Node", h1(n), f"nodes/{h1(n):016x}.nda", encode_v1(n), entries)
    for n in (caller, noop):
        ph = program_entry_hash(h1(n))
        _entry(root, "Program", ph, f"programs/{ph:016x}.nda", h1(n).to_bytes(8, "little"), entries)
    kh = kv_token_hash(3, 1, WEIGHT_ROOT)
    _entry(root, "Kv", kh, f"kv/{kh:016x}.kv", kv_rec(), entries)
    sh = snapshot_hash("src/lib.nda")
    snap = [{"subject_hash": 1, "predicate_id": 2, "object_hash": 3},
            {"subject_hash": name_hash("alice"), "predicate_id": 3, "object_hash": 3}]
    _entry(root, "Snapshot", sh, f"snapshots/{sh:016x}.json", json.dumps(snap).encode(), entries)
    (root / "index.json").write_text(json.dumps(entries))
    (root / "dictionary.json").write_text(json.dumps({f"{name_hash(s):016x}": s for s in ("x", "alice")}))
    (root / "metadata.nda").write_text(f"metadata version 2\nfield_count 1\nfield\tweight_root\t{WEIGHT_ROOT:016x}\n")
    (root / "metadata.json").write_text(json.dumps({"weight_root": "ffffffffffffffff"}))  # .nda wins
    return {"nodes": nodes, "entries": entries, "caller": caller, "leaf": leaf}


def content(s: SiteMap) -> dict:
    c = s._conn
    return {
        "nodes": sorted(c.execute("SELECT hash, v1_hash, bytes, group_hash, group_index FROM nodes")),
        "groups": sorted(c.execute("SELECT * FROM groups")),
        "programs": sorted(c.execute("SELECT root, v1_program_hash FROM programs")),
        "triples": sorted(c.execute("SELECT * FROM triples")),
        "snapshots": sorted(c.execute("SELECT key FROM snapshots")),
        "kv": sorted(c.execute("SELECT key, record FROM kv")),
        "strings": sorted(c.execute("SELECT * FROM strings")),
        "root": s.root(), "weight_root": s.weight_root,
    }


def read_dir(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_import_original_directory(tmp_path):
    orig = make_original(tmp_path / "orig")
    with SiteMap.open(str(tmp_path / "a.db")) as s:
        rep = s.import_sitemap_dir(str(tmp_path / "orig"))
        assert rep.problems == []
        assert rep.counts == {"nodes": 3, "groups": 0, "programs": 2, "kv": 1, "snapshots": 1, "strings": 2,
                              "functions": 0, "names": 0}  # no codebase.json: the original has none
        assert rep.index_root == index_root(e["hash"] for e in orig["entries"])
        assert s.weight_root == WEIGHT_ROOT
        assert len(s.log()) == 1 and rep.commit.seq == 1  # one transaction
        for n in orig["nodes"]:
            rec = s.get_record(h2(n))
            assert rec.node == n and rec.v1_hash == h1(n)
        assert s.program_v1(h2(orig["caller"])) == program_entry_hash(h1(orig["caller"]))
        assert s.get_kv(3, 1) == kv_rec()
        assert s.get_callers(3) == {1} and s.get_dependencies(name_hash("alice")) == {3}
        assert s.find_triples(11) == [(11, 1, 12)]  # node-origin, historical only
        assert s.find_live_triples(11) == []
        assert s.resolve_string(name_hash("alice")) == "alice"
        res = run(load_stored(s, h2(orig["caller"]).hex()).sequence, [], store=s, tier="interp")
        assert res.is_success() and res.output_vec == [5.0]
        assert s.verify() == []


def test_import_export_import_round_trip(tmp_path):
    make_original(tmp_path / "orig")
    with SiteMap.open(str(tmp_path / "a.db")) as a:
        a.import_sitemap_dir(str(tmp_path / "orig"))
        rep = a.export_sitemap_dir(str(tmp_path / "exp1"))
        ca = content(a)
    assert rep.problems == [] and rep.non_roundtrippable == []
    orig, exp1 = read_dir(tmp_path / "orig"), read_dir(tmp_path / "exp1")
    # binary files come back byte for byte, under the same names
    for name, data in orig.items():
        if not name.endswith(".json"):
            assert exp1[name] == data, name
    key = lambda e: (e["kind"], e["hash"], e["file"])  # noqa: E731
    oi = sorted(json.loads(orig["index.json"]), key=key)
    ei = sorted(json.loads(exp1["index.json"]), key=key)
    assert [key(e) for e in oi] == [key(e) for e in ei]
    for o, e in zip(oi, ei):
        if not o["file"].endswith(".json"):
            assert o == e
        else:
            assert json.loads(orig[o["file"]]) == json.loads(exp1[e["file"]])
    assert json.loads(exp1["dictionary.json"]) == json.loads(orig["dictionary.json"])
    assert exp1["metadata.nda"] == orig["metadata.nda"]
    assert json.loads(exp1["metadata.json"]) == {"weight_root": f"{WEIGHT_ROOT:016x}"}
    with SiteMap.open(str(tmp_path / "b.db")) as b:
        rep_b = b.import_sitemap_dir(str(tmp_path / "exp1"))
        assert rep_b.problems == [] and rep_b.index_root == rep.index_root
        cb = content(b)
        b.export_sitemap_dir(str(tmp_path / "exp2"))
        assert b.verify() == []
    assert cb == ca
    assert read_dir(tmp_path / "exp2") == exp1  # export is a fixpoint


def test_import_reports_bad_entries(tmp_path):
    root = tmp_path / "orig"
    orig = make_original(root)
    entries = orig["entries"]
    leaf_file = root / entries[0]["file"]
    entries.append({"kind": "Node", "hash": 5, "file": "nodes/missing.nda", "file_sha": "00" * 32, "size": 1})
    entries.append({"kind": "Node", "hash": 6, "file": entries[0]["file"], "file_sha": "11" * 32, "size": 1})
    entries.append({"kind": "Bogus", "hash": 7, "file": "x", "file_sha": "x"})
    entries.append({"kind": "Node", "hash": 8, "file": "../escape.nda", "file_sha": "00" * 32})
    other = encode_v1(ir.Int(99))
    (root / "nodes/odd.nda").write_bytes(other)
    entries.append({"kind": "Node", "hash": 12345, "file": "nodes/odd.nda", "file_sha": file_sha(other),
                    "size": len(other)})
    entries.append({"kind": "Program", "hash": 9, "file": entries[0]["file"], "file_sha": file_sha(leaf_file.read_bytes())})
    (root / "index.json").write_text(json.dumps(entries))
    with SiteMap.open(str(tmp_path / "a.db")) as s:
        rep = s.import_sitemap_dir(str(root))
        text = "\n".join(rep.problems)
        assert "nodes/missing.nda is missing" in text
        assert "file_sha mismatch" in text
        assert "unknown kind 'Bogus'" in text
        assert "outside the directory" in text
        assert f"Node 0000000000003039: H1 of the node is {h1(ir.Int(99)):016x}" in text
        assert "Program 0000000000000009: expected 8 bytes" in text
        assert s.get_record(h2(ir.Int(99))).v1_hash == 12345  # stored under the entry's hash
        assert rep.counts["nodes"] == 4
    with pytest.raises(StoreError):
        with SiteMap.open(str(tmp_path / "c.db")) as s:
            s.import_sitemap_dir(str(tmp_path / "nowhere"))


def test_groups_export_aliases_and_rebuild_on_import(tmp_path):
    linked = link_module(parse_sexpr(EVEN_ODD).module)
    even, odd = linked.by_name("even"), linked.by_name("odd")
    assert even.group is odd.group is not None and len(even.group.members) == 2
    with SiteMap.open(str(tmp_path / "a.db")) as a:
        a.put_module(linked)
        a.put_program(linked.main_sequence())
        assert run(linked.main_sequence(), [], store=a, tier="interp").output_vec == [1.0]
        rep = a.export_sitemap_dir(str(tmp_path / "exp"))
        v1 = {d.name: a.get_record(d.address).v1_hash for d in (even, odd)}
    assert rep.non_roundtrippable == [] and rep.problems == []
    index = json.loads((tmp_path / "exp" / "index.json").read_text())
    by_hash = {e["hash"]: e for e in index}
    for d in (even, odd):
        alias = alias_of(d.address)
        assert by_hash[alias]["file"] == by_hash[v1[d.name]]["file"] == f"nodes/{v1[d.name]:016x}.nda"
        assert by_hash[alias]["file_sha"] == by_hash[v1[d.name]]["file_sha"]
    back = decode_v1((tmp_path / "exp" / by_hash[alias_of(even.address)]["file"]).read_bytes())
    assert any(type(n) is ir.Call and n.target == ir.Legacy64(alias_of(odd.address)) for n in ir.walk(back))
    with SiteMap.open(str(tmp_path / "b.db")) as b:
        rep2 = b.import_sitemap_dir(str(tmp_path / "exp"))
        assert rep2.problems == [] and rep2.counts["groups"] == 1
        for d in (even, odd):  # the same member addresses as in the source store
            rec = b.get_record(d.address)
            assert rec.group == d.group and rec.node == d.node and rec.v1_hash == v1[d.name]
        for n, want in ((4, 1.0), (3, 0.0)):
            res = run((ir.Int(n), ir.Call(ir.Legacy64(alias_of(even.address)))), [], store=b, tier="interp")
            assert res.is_success() and res.output_vec == [want]
        assert b.verify() == []


def test_group_that_cannot_be_rebuilt_is_reported(tmp_path):
    linked = link_module(parse_sexpr(EVEN_ODD).module)
    with SiteMap.open(str(tmp_path / "a.db")) as a:
        a.put_module(linked)
        a.export_sitemap_dir(str(tmp_path / "exp"))
    idx_path = tmp_path / "exp" / "index.json"
    index = json.loads(idx_path.read_text())
    odd_alias = alias_of(linked.by_name("odd").address)
    for e in index:  # point odd's alias entry at an unrelated (but valid) node file
        if e["hash"] == odd_alias:
            main_v1 = h1(linked.by_name("main").node, None, lambda d: alias_of(d))
            other = next(x for x in index if x["hash"] == main_v1)
            e.update(file=other["file"], file_sha=other["file_sha"], size=other["size"])
    idx_path.write_text(json.dumps(index))
    with SiteMap.open(str(tmp_path / "b.db")) as b:
        rep = b.import_sitemap_dir(str(tmp_path / "exp"))
        assert any("group could not be rebuilt" in p for p in rep.problems)
        assert rep.counts["groups"] == 0


def test_export_lists_nodes_that_are_not_v1_round_trippable(tmp_path):
    with SiteMap.open(str(tmp_path / "a.db")) as a:
        bad = a.put_program(parse_sexpr("(syscall 1 (int 3))").sequence)
        a.put_module(link_module(parse_sexpr(SUM_MODULE).module))  # Math reads back as Matrix
        a.put_program(parse_sexpr("(int 70)").sequence)  # 0x46 'F': Int read back as If
        ok = a.put_program(parse_sexpr("(int 1)").sequence)
        rep = a.export_sitemap_dir(str(tmp_path / "exp"))
    listed = {n["hash"] for n in rep.non_roundtrippable}
    assert bad.hex() in listed and ok.hex() not in listed
    sum_addr = link_module(parse_sexpr(SUM_MODULE).module).by_name("sum").address
    assert sum_addr.hex() in listed
    assert len(listed) == 3
