"""Store verbs of the CLI (runtime.md §9) through click's CliRunner."""

import json
import sqlite3

import pytest
from click.testing import CliRunner

from nda.cli.app import main
from nda.core.ir import name_hash
from nda.store.sitemap import SiteMap

from test_store import SUM_MODULE
from test_store_sitemap_dir import make_original


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.sexpr").write_text("(let x (int 5)) (print (load x)) (triple 1 2 3)\n")
    (tmp_path / "m.sexpr").write_text(SUM_MODULE)
    (tmp_path / "bad.sexpr").write_text("(matrix 128 128 :sign aa :extra 55)\n")
    (tmp_path / "broken.sexpr").write_text("(let x\n")
    return tmp_path


def nda(*args, env=None):
    r = CliRunner().invoke(main, list(args), env=env)
    return r


def j(r):
    lines = [x for x in r.stdout.splitlines() if x.strip()]
    assert len(lines) == 1, r.stdout
    return json.loads(lines[0])


def test_commit_default_store_and_json(env):
    r = nda("commit", "a.sexpr", "-m", "first", "--name", "five", "--json")
    assert r.exit_code == 0, r.output
    out = j(r)
    assert out["ok"] and len(out["root"]) == 64 and out["seq"] == 1 and out["gate_checked"]
    assert (env / ".nda" / "sitemap.db").exists()  # default store created with its directory
    with SiteMap.open(str(env / ".nda" / "sitemap.db")) as s:
        assert s.resolve_name("five").hex() == out["root"]
        assert s.log()[0].message == "first"
    r = nda("commit", "a.sexpr")
    assert r.exit_code == 0 and "program root" in r.stdout and out["root"] in r.stdout
    assert "state root" in r.stdout


def test_commit_rejections_and_input_errors(env):
    assert nda("commit", "a.sexpr").exit_code == 0
    before = SiteMap.open(str(env / ".nda/sitemap.db"))
    state = (before.stats(), before.log())
    before.close()
    r = nda("commit", "bad.sexpr", "--json")
    assert r.exit_code == 1
    out = j(r)
    assert not out["ok"] and out["stage"] == "gate" and out["reason"].startswith("validation: ")
    r = nda("commit", "bad.sexpr")
    assert r.exit_code == 1 and "rejected (gate)" in r.stderr and "DIMENSION_MISMATCH" in r.stderr
    assert nda("commit", "broken.sexpr").exit_code == 2
    assert nda("commit", "nothing.sexpr", "--json").exit_code == 2
    assert nda("commit", "a.sexpr", "--input", "1,x").exit_code == 2
    r = nda("commit", "a.sexpr", "--dim", "3", "--scope", "0.5", "--json")
    assert r.exit_code == 1 and j(r)["stage"] == "scope"
    with SiteMap.open(str(env / ".nda/sitemap.db")) as s:
        assert (s.stats(), s.log()) == state


def test_store_override_by_flag_and_env(env):
    assert nda("commit", "a.sexpr", "--store", "x/one.db").exit_code == 0
    assert (env / "x" / "one.db").exists()
    assert nda("commit", "a.sexpr", env={"NDA_STORE": str(env / "two.db")}).exit_code == 0
    assert (env / "two.db").exists() and not (env / ".nda").exists()
    assert j(nda("log", "--json", env={"NDA_STORE": str(env / "two.db")}))["entries"][0]["seq"] == 1


def test_missing_store_is_a_usage_error(env):
    for verb in (["log"], ["verify"], ["names"], ["triples"], ["show", "abc"], ["export-sitemap", "d"]):
        r = nda(*verb, "--json")
        assert r.exit_code == 2, verb
        assert j(r)["ok"] is False


def test_show_formats_and_depth(env):
    root = j(nda("commit", "a.sexpr", "--name", "prog", "--json"))["root"]
    r = nda("show", "prog")
    assert r.exit_code == 0
    assert "(let x (int 5))\n(print (load x))" in r.stdout  # names from the string dictionary
    out = j(nda("show", root[:10], "--format", "json", "--json"))
    assert out["hash"] == root and out["program"] and out["names"] == ["prog"]
    assert out["tree"]["children"][0] == {"kind": "Let", "name": name_hash("x"), "init": {"kind": "Int", "value": 5}}
    out = j(nda("show", root, "--format", "triples", "--json"))
    assert out["triples"] == [{"subject_hash": 1, "predicate_id": 2, "object_hash": 3}]
    r = nda("show", "prog", "--format", "triples")
    assert "#x:0000000000000001 CALLS #x:0000000000000003" in r.stdout
    r = nda("show", "prog", "--format", "text")  # a Triple has no text syntax
    assert r.exit_code == 1
    m = j(nda("commit", "m.sexpr", "--dim", "0", "--namespace", "", "--name", "main", "--json"))
    out = j(nda("show", "main", "--depth", "1", "--json"))
    assert [c["hash"] for c in out["callees"]] == [m["functions"]["sum"]]
    assert out["callees"][0]["group"] is not None and out["callees"][0]["index"] == 0
    assert j(nda("show", "main", "--json"))["callees"] == []
    assert "(call @sum)" in nda("show", "main").stdout  # stored calls print by bound name
    r = nda("show", "sum", "--format", "text")
    assert r.exit_code == 0 and "fn sum(n: int)" in r.stdout and "sum(n - 1)" in r.stdout
    r = nda("show", "main", "--depth", "2")
    assert r.exit_code == 0 and "callee, depth 1" in r.stdout
    assert nda("show", "nope").exit_code == 2
    assert nda("show", "prog", "--format", "yaml").exit_code == 2


def test_log_names_verify_triples(env):
    nda("commit", "a.sexpr", "-m", "one", "--name", "p")
    nda("commit", "m.sexpr", "-m", "two", "--dim", "0", "--namespace", "", "--name", "main")
    out = j(nda("log", "--json"))
    assert [e["message"] for e in out["entries"]] == ["one", "two"]
    assert out["entries"][1]["parent"] == out["entries"][0]["commit_id"]
    assert out["state_root"] == out["entries"][-1]["state_root"]
    r = nda("log", "--limit", "1")
    assert r.exit_code == 0 and "two" in r.stdout and "one" not in r.stdout
    names = {n["name"] for n in j(nda("names", "--json"))["names"]}
    assert names == {"p", "main", "sum"}
    assert "sum" in nda("names").stdout
    hist = j(nda("names", "--history", "p", "--json"))["names"]
    assert [h["seq"] for h in hist] == [1]
    assert nda("names", "--history", "zzz").exit_code == 2
    r = nda("verify", "--json")
    assert r.exit_code == 0 and j(r)["ok"] and j(r)["problems"] == []
    assert "ok" in nda("verify").stdout
    out = j(nda("triples", "--json"))
    assert {"subject_hash": 1, "predicate_id": 2, "object_hash": 3, "subject": None, "object": None,
            "predicate": "CALLS", "subject_address": None, "object_address": None,
            "subject_display": "#x:0000000000000001", "object_display": "#x:0000000000000003"} in out["triples"]
    assert any(t["subject"] == "sum" and t["predicate_id"] == 1 for t in out["triples"])
    out = j(nda("triples", "sum", "DEFINES", "--json"))
    assert out["count"] == 1 and out["triples"][0]["object"] == "sum"  # the bound name, not #x:
    out = j(nda("triples", "*", "calls", "#x:0000000000000003", "--json"))
    assert out["count"] == 1 and out["triples"][0]["subject_hash"] == 1
    # the committed file's live set: its Triple nodes plus derived DEFINES/CALLS
    assert j(nda("triples", "1", "--live", "--json"))["count"] == 1
    assert j(nda("triples", "--live", "--json"))["count"] >= 2  # DEFINES of main and sum
    r = nda("triples", "*", "OWNS")
    assert r.exit_code == 2
    assert nda("triples", "1", "2", "3", "4").exit_code == 2
    assert "DEFINES" in nda("triples").stdout
    # break the store: verify fails with exit 1
    c = sqlite3.connect(str(env / ".nda/sitemap.db"))
    c.execute("UPDATE nodes SET bytes = bytes || x'00' WHERE rowid = 1")
    c.commit()
    c.close()
    r = nda("verify", "--json")
    assert r.exit_code == 1 and not j(r)["ok"] and j(r)["problems"]
    assert nda("verify").exit_code == 1


def test_run_accepts_stored_names_and_hashes(env):
    root = j(nda("commit", "a.sexpr", "--name", "five", "--json"))["root"]
    for ref in ("five", root, root[:9]):
        r = nda("run", ref, "--json")
        assert r.exit_code == 0, r.output
        assert j(r)["output_log"] == ["[print] [5.0]"]


def test_import_export_verbs(env):
    make_original(env / "orig")
    r = nda("import-sitemap", "orig", "--store", "s.db", "--json")
    assert r.exit_code == 0, r.output
    out = j(r)
    assert out["ok"] and out["counts"]["nodes"] == 3 and out["commit"]["seq"] == 1
    r = nda("export-sitemap", "out", "--store", "s.db", "--json")
    assert r.exit_code == 0 and j(r)["counts"]["Node"] == 3
    assert (env / "out" / "index.json").exists()
    r = nda("export-sitemap", "out2", "--store", "s.db")
    assert r.exit_code == 0 and "exported" in r.stdout
    (env / "orig" / "index.json").write_text(json.dumps(
        json.loads((env / "orig" / "index.json").read_text()) + [{"kind": "Node", "hash": 1, "file": "gone",
                                                                  "file_sha": "00"}]))
    r = nda("import-sitemap", "orig", "--store", "s.db")
    assert r.exit_code == 1 and "problem:" in r.stdout
    assert nda("import-sitemap", "no-such-dir", "--json").exit_code == 2
    (env / "empty").mkdir()
    assert nda("import-sitemap", "empty", "--json").exit_code == 2  # no index.json
    nda("commit", "m.sexpr", "--dim", "0", "--store", "s.db")
    r = nda("export-sitemap", "out3", "--store", "s.db")
    assert "not v1-round-trippable" in r.stdout  # Math reads back as Matrix in v1


def test_help_for_every_verb(env):
    for verb in ("commit", "show", "log", "verify", "triples", "names", "callers", "deps", "import-sitemap",
                 "export-sitemap"):
        r = nda(verb, "--help")
        assert r.exit_code == 0 and "--json" in r.stdout and "--store" in r.stdout
