"""The store as a codebase (issue 12): linking by name at write time, explicit names with
metadata, callers and dependencies that no commit through any surface loses."""

import json
import sqlite3

import anyio
import pytest
from click.testing import CliRunner

from nda.cli.app import main
from nda.core import ir
from nda.core.errors import VALIDATION_ERROR
from nda.core.hashing import program_hash
from nda.core.link import UnboundNameError
from nda.pipeline.commit import commit, commit_stream, static_check
from nda.pipeline.load import format_loaded, load_stored, load_text
from nda.store import codebase
from nda.store.sitemap import SiteMap
from nda.syntax import tokens as T
from nda.syntax.sexpr import parse_sexpr
from nda.syntax.triples import CALLS

LIB = """fn sumsq(n: int) -> int {
    let s = 0
    let i = 0
    while i < n {
        i = i + 1
        s = s + i * i
    }
    return s
}

fn next(a: int, b: int) -> int {
    return a + b
}

fn main() {
    print(sumsq(3))
}
"""
USER = "fn main() {\n    print(sumsq(10))\n}\n"


@pytest.fixture
def store(tmp_path):
    s = SiteMap.open(str(tmp_path / "c.db"))
    yield s
    s.close()


def _lib(store, namespace="", **kw):
    r = commit(store, load_text(LIB, "text", store), [], namespace=namespace, **kw)
    assert r.ok, r.reason
    return r


def _calls(store) -> set:
    return set(store.find_triples(None, CALLS, None))


# ---------------------------------------------------------------------------------------------
# 1. linking by name at write time


def test_text_and_sexpr_call_stored_functions_by_name(store):
    lib = _lib(store)
    sumsq = lib.names["sumsq"]
    r = commit(store, load_text(USER, "text", store), [])
    assert r.ok, r.reason
    assert r.sandbox.output_log == ["[print] [385.0]"]
    # the stored program holds the address: the same as writing the hash
    same = parse_sexpr(f"(print (scope (int 10) (call #{sumsq.hex()})))").sequence
    assert r.root == commit(store, same, []).root
    # S-expression: top level and inside a module
    top = commit(store, load_text("(print (scope (int 2) (call @sumsq)))", "sexpr", store), [])
    assert top.ok and top.sandbox.output_log == ["[print] [5.0]"]
    assert top.root == commit(store, parse_sexpr(f"(print (scope (int 2) (call #{sumsq.hex()})))"), []).root
    mod = "(module (def main (scope (print (scope (int 1) (int 2) (call @next))))))"
    assert commit(store, load_text(mod, "sexpr", store), []).sandbox.output_log == ["[print] [3.0]"]
    # the API forms link too (SexprUnit, plain sequences)
    assert commit(store, parse_sexpr("(print (scope (int 3) (call @sumsq)))"), []).ok
    assert store.verify() == []


def test_qualified_names_under_a_namespace(store):
    lib = _lib(store, namespace="lib.math")
    assert store.resolve_name("sumsq") is None and store.resolve_name("lib.math.sumsq") == lib.names["sumsq"]
    r = commit(store, load_text("fn main() { print(lib.math.next(4, 5)) }", "text", store), [])
    assert r.ok and r.sandbox.output_log == ["[print] [9.0]"]
    r = commit(store, load_text("(print (scope (int 4) (call @lib.math.sumsq)))", "sexpr", store), [])
    assert r.ok and r.sandbox.output_log == ["[print] [30.0]"]


def test_unbound_name_is_a_gate_finding_with_span_and_suggestion(store):
    _lib(store)
    with pytest.raises(UnboundNameError) as ei:
        load_text("fn main() {\n    print(sumsk(10))\n}\n", "text", store)
    d = ei.value.diagnostics[0]
    assert d.code == VALIDATION_ERROR and "unknown function 'sumsk'" in d.message
    assert (d.span.line, d.span.col) == (2, 11) and d.hint == "did you mean 'sumsq'?"
    with pytest.raises(UnboundNameError) as ei:
        load_text("(int 1)\n(call @nxet)", "sexpr", store)
    d = ei.value.diagnostics[0]
    assert d.span.line == 2 and d.hint == "did you mean 'next'?"
    # through commit (the API) it is a rejection at the gate, store untouched
    n = len(store.log())
    r = commit(store, parse_sexpr("(call @nope)"), [])
    assert not r.ok and r.stage == "gate" and r.error_code == VALIDATION_ERROR
    assert static_check(parse_sexpr("(call @nope)"), store=store)[0].code == VALIDATION_ERROR
    assert len(store.log()) == n
    # several unbound names: one finding each
    with pytest.raises(UnboundNameError) as ei:
        load_text("fn main() { print(aa(1)) print(bb(2)) }", "text", store)
    assert [x.message.split("'")[1] for x in ei.value.diagnostics] == ["aa", "bb"]


def test_text_printer_shows_stored_calls_by_name_and_moved_names(store):
    _lib(store)
    user = commit(store, load_text(USER, "text", store), [], name="user")
    text = format_loaded(load_stored(store, "user"), "text")
    assert text == USER
    # the printed text links back to the same program
    assert commit(store, load_text(text, "text", store), []).root == user.root
    assert "(call @sumsq)" in format_loaded(load_stored(store, "user"), "sexpr")
    # move the name: the text keeps the name, with a comment holding the short hash
    old = store.resolve_name("sumsq")
    assert commit(store, load_text("fn sumsq(n: int) -> int { return n }\nfn main() { print(sumsq(1)) }",
                                   "text", store), [], namespace="").ok
    text = format_loaded(load_stored(store, "user"), "text")
    assert text.startswith(f"// sumsq = #{old.hex()[:16]}… here; the name has moved since")
    assert "print(sumsq(10))" in text
    assert f"#{old.hex()}" in format_loaded(load_stored(store, "user"), "sexpr")  # exact form


# ---------------------------------------------------------------------------------------------
# 2. names are explicit; metadata


def test_commit_binds_only_what_is_asked(store):
    r = commit(store, load_text(LIB, "text", store), [])
    assert r.ok and r.bindings == [] and store.names() == []  # nothing, and never main
    r = commit(store, load_text(LIB, "text", store), [], name="libmain")
    assert [b["name"] for b in r.bindings] == ["libmain"] and store.resolve_name("main") is None
    r = _lib(store)
    assert {b["name"] for b in r.bindings} == {"sumsq", "next"}
    assert all(b["previous"] is None for b in r.bindings)
    assert not commit(store, parse_sexpr("(int 1)"), [], namespace="x").ok  # no module
    assert commit(store, parse_sexpr("(int 1)"), [], namespace="bad name").stage == "names"


def test_rebinding_reports_the_previous_target_in_result_and_log(store):
    first = _lib(store)
    r = commit(store, load_text("fn next(a: int, b: int) -> int { return a - b }\n"
                                "fn main() { print(next(1, 2)) }", "text", store), [], namespace="")
    assert r.bindings == [{"name": "next", "hash": r.names["next"].hex(),
                           "previous": first.names["next"].hex()}]
    by_commit = codebase.bindings_by_commit(store)
    assert [(b["name"], b["previous"]) for b in by_commit[r.seq]] == [("next", first.names["next"].hex())]
    hist = codebase.name_history(store, "next")
    assert [h["commit_seq"] for h in hist] == [first.seq, r.seq]
    assert hist[1]["previous"] == first.names["next"].hex()
    assert store.verify() == []


def test_show_prints_a_function_as_written(store):
    lib = _lib(store)
    text = format_loaded(load_stored(store, "next"), "text")
    assert text == "fn next(a: int, b: int) -> int {\n    return a + b\n}\n"
    assert codebase.function_meta(store, lib.names["next"]) == [
        {"name": "next", "params": [["a", "int"], ["b", "int"]], "returns": "int"}]
    # metadata does not change the hash: the node is the linked def's
    from nda.core.hashing import Hasher

    assert Hasher().h2(store.get_node(lib.names["next"])) == lib.names["next"]
    # the program root prints as main, calling by name
    assert format_loaded(load_stored(store, lib.root.hex()), "text").startswith("fn main() {\n    print(sumsq(3))")


def test_names_search_and_list(store):
    _lib(store, namespace="lib")
    assert [d["name"] for d in codebase.list_names(store, "lib.")] == ["lib.next", "lib.sumsq"]
    assert [d["name"] for d in codebase.search_names(store, "sum")] == ["lib.sumsq"]
    assert codebase.list_names(store)[0]["source"]["name"] == "next"
    assert codebase.suggest_names(store, "lib.sumq") == ["lib.sumsq"]


# ---------------------------------------------------------------------------------------------
# 3. callers and dependencies, never lost


def test_callers_and_dependencies_by_name_and_address(store):
    lib = _lib(store)
    user = commit(store, load_text(USER, "text", store), [], name="user")
    got = codebase.callers(store, "sumsq")
    assert {c["address"] for c in got["callers"]} == {lib.root.hex(), user.root.hex()}
    assert {c["name"] for c in got["callers"]} == {None, "user"}
    assert codebase.callers(store, lib.names["sumsq"].hex())["callers"] == got["callers"]
    assert codebase.callers(store, lib.names["sumsq"].hex()[:12])["callers"] == got["callers"]
    deps = codebase.dependencies(store, "user")["dependencies"]
    assert [(d["name"], d["address"]) for d in deps] == [("sumsq", lib.names["sumsq"].hex())]
    rows = codebase.query_triples(store, "*", CALLS, "sumsq")
    assert {r["subject"]["display"] for r in rows} == {"user", "#" + lib.root.hex()}


def test_mcp_commits_no_longer_replace_each_other(tmp_path):
    """The reported bug: three MCP commits gave 3, then 1, then 0 CALLS triples."""
    from nda.mcp.server import ServerConfig, Tools

    path = str(tmp_path / "m.db")
    with SiteMap.open(path) as s:
        _lib(s)  # binds sumsq and next (namespace "")
    tools = Tools(ServerConfig(store_path=path))
    seen: set = set()
    for src in ("(module (def a (scope (int 1) (call @sumsq))) (def b (scope (call @a))) "
                "(def main (scope (call @b) (call @next))))",
                "(print (scope (int 2) (call @sumsq)))",
                "(print (int 7))"):
        d = tools.commit(src, "sexpr", dim=0)
        assert d["ok"], d
        with SiteMap.open(path) as s:
            now = _calls(s)
            assert seen <= now
            assert s.verify() == []
        seen = now
    assert len(seen) >= 5


def _mcp_commit(path, source, syntax="sexpr"):
    from mcp import Client

    from nda.mcp.server import ServerConfig, build_server

    async def go():
        async with Client(build_server(ServerConfig(store_path=path))) as c:
            r = await c.call_tool("nda_commit", {"source": source, "syntax": syntax, "dim": 0})
            return r.structured_content if r.structured_content is not None else json.loads(r.content[0].text)

    return anyio.run(go)


def test_every_surface_keeps_every_triple_and_verify_clean(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = str(tmp_path / "all.db")
    history: list[set] = []

    def check():
        with SiteMap.open(path) as s:
            now = set(s.find_triples())
            assert s.verify() == []
        for earlier in history:
            assert earlier <= now  # no earlier triple disappears
        history.append(now)

    # CLI
    (tmp_path / "lib.nda").write_text(LIB)
    (tmp_path / "use.nda").write_text("fn main() {\n    print(sumsq(2))\n    print(next(1, 1))\n}\n")
    r = CliRunner().invoke(main, ["commit", "lib.nda", "--namespace", "", "--dim", "0", "--store", path, "--json"])
    assert r.exit_code == 0, r.output
    check()
    r = CliRunner().invoke(main, ["commit", "use.nda", "--dim", "0", "--store", path, "--json"])
    assert r.exit_code == 0, r.output
    check()
    (tmp_path / "use.nda").write_text("fn main() {\n    print(next(2, 2))\n}\n")  # same file, new version
    assert CliRunner().invoke(main, ["commit", "use.nda", "--dim", "0", "--store", path]).exit_code == 0
    check()
    # Python API
    with SiteMap.open(path) as s:
        assert commit(s, load_text("(module (def twice (scope (let x (scope)) (if (scope) (then)) "
                                   "(math mul (load x) (int 2)))) (def main (scope (print (scope (scope (int 3) "
                                   "(call @twice)) (call @sumsq))) (call @hello))) (def hello (scope (print (int 1)))))",
                                   "sexpr", s), [], namespace="").ok
    check()
    # MCP (the nda_commit tool through the protocol; the source calls stored functions by name)
    mcp_top = _mcp_commit(path, "(print (scope (int 4) (call @twice)))")
    assert mcp_top["ok"], mcp_top
    check()
    mcp_mod = _mcp_commit(path, "(module (def main (scope (print (scope (scope (int 2) (call @sumsq)) "
                                "(call @twice))))))")
    assert mcp_mod["ok"], mcp_mod
    check()
    mcp_text = _mcp_commit(path, "fn main() {\n    print(twice(sumsq(2)))\n}\n", "text")
    assert mcp_text["ok"] and mcp_text["root"] == mcp_mod["root"], mcp_text  # the same program
    check()
    with SiteMap.open(path) as s:
        twice = s.resolve_name("twice").hex()
        # linked by name: the stored programs hold the addresses, as if written `#hash`
        assert mcp_top["root"] == program_hash(load_text(
            f"(print (scope (int 4) (call #{twice})))", "sexpr").sequence).hex()
    assert _mcp_commit(path, "(call @twyce)")["diagnostics"][0]["hint"] == "did you mean 'twice'?"
    # token stream calling a stored function
    with SiteMap.open(path) as s:
        prov = T.StoreProvider(s)
        st = T.start(10)
        for tok in (T.Tok.NORM, T.Tok.CALL, T.Tok.END_SCOPE):
            st = T.step(st, tok, prov)
        prog = T.finish(st)
        res = commit_stream(s, prog, "tokens")
        assert res.ok, res.reason
        called = [n.target.digest for r in prog.sequence for n in ir.walk(r) if type(n) is ir.Call]
        assert called == [s.resolve_name("hello")]
        token_v1 = s.program_v1(res.root)
        assert any(t.subject == token_v1 for t in s.find_triples(None, CALLS, None))
    check()
    with SiteMap.open(path) as s:
        by = {d["address"] for d in codebase.callers(s, "twice")["callers"]}
        assert len(by) == 3  # API main, MCP top level, MCP module (= MCP text)
        assert {mcp_top["root"], mcp_mod["root"]} < by
    assert len(history[-1]) > len(history[0])


# ---------------------------------------------------------------------------------------------
# CLI verbs


def nda(*args):
    return CliRunner().invoke(main, list(args))


def j(r):
    lines = [x for x in r.stdout.splitlines() if x.strip()]
    assert len(lines) == 1, r.output
    return json.loads(lines[0])


def test_cli_names_callers_deps_triples(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lib.nda").write_text(LIB)
    (tmp_path / "use.nda").write_text(USER)
    (tmp_path / "bad.nda").write_text("fn main() {\n    print(sumsk(10))\n}\n")
    lib = j(nda("commit", "lib.nda", "--namespace", "", "--dim", "0", "--json"))
    assert {b["name"] for b in lib["bindings"]} == {"sumsq", "next"}
    user = j(nda("commit", "use.nda", "--dim", "0", "--name", "user", "--json"))
    assert user["ok"] and user["sandbox"]["output_log"] == ["[print] [385.0]"]
    # `nda hash` of a program calling stored code gives the H1 the store recorded at commit
    h = j(nda("hash", "use.nda", "--json"))
    with SiteMap.open(str(tmp_path / ".nda" / "sitemap.db")) as s:
        rec = s.get_record(bytes.fromhex(user["root"]))
    assert h["program"]["h2"] == user["root"] and h["program"]["h1"] == f"{rec.v1_hash:016x}"
    r = nda("commit", "bad.nda", "--dim", "0", "--json")
    assert r.exit_code == 1 and j(r)["diagnostics"][0]["hint"] == "did you mean 'sumsq'?"
    assert nda("commit", "lib.nda", "--namespace", "a b").exit_code == 2
    r = nda("show", "next", "--format", "text")
    assert r.exit_code == 0 and "fn next(a: int, b: int) -> int {" in r.stdout
    assert "print(sumsq(10))" in nda("show", "user", "--format", "text").stdout
    out = j(nda("callers", "sumsq", "--json"))
    assert {c["name"] for c in out["callers"]} == {"user", None} and out["count"] == 2
    out = j(nda("deps", user["root"][:12], "--json"))
    assert [d["name"] for d in out["dependencies"]] == ["sumsq"]
    assert "sumsq" in nda("deps", "user").stdout
    assert nda("callers", "nobody").exit_code == 2
    out = j(nda("triples", "*", "CALLS", "sumsq", "--json"))
    assert out["count"] == 2 and {t["object"] for t in out["triples"]} == {"sumsq"}
    assert {t["object_address"] for t in out["triples"]} == {lib["functions"]["sumsq"]}
    r = nda("triples", "user")
    assert "user" in r.stdout and "sumsq" in r.stdout and "#x:" not in r.stdout
    # rebinding shows in the result and in the log
    (tmp_path / "v2.nda").write_text("fn sumsq(n: int) -> int { return n }\nfn main() { print(sumsq(1)) }\n")
    r2 = j(nda("commit", "v2.nda", "--namespace", "", "--dim", "0", "--json"))
    assert r2["bindings"][0]["previous"] == lib["functions"]["sumsq"]
    log = j(nda("log", "--json"))
    assert log["entries"][-1]["bindings"][0]["previous"] == lib["functions"]["sumsq"]
    assert "(was " in nda("log").stdout
    hist = j(nda("names", "--history", "sumsq", "--json"))["names"]
    assert [h["previous"] for h in hist] == [None, lib["functions"]["sumsq"]]
    assert [d["name"] for d in j(nda("names", "--search", "sum", "--json"))["names"]] == ["sumsq"]
    assert j(nda("verify", "--json"))["ok"]


# ---------------------------------------------------------------------------------------------
# Old stores and integrity


def test_old_store_without_the_new_tables_opens_and_works(tmp_path):
    path = str(tmp_path / "old.db")
    with SiteMap.open(path) as s:
        root = s.put_program((ir.Int(1),))
        s.bind_name("one", root)
    c = sqlite3.connect(path)
    for t in ("fn_meta", "name_commits"):
        c.execute(f"DROP TABLE {t}")
    c.execute("DROP INDEX names_hash")
    c.commit()
    c.close()
    with SiteMap.open(path) as s:  # the additive tables are created on open
        assert s.verify() == []
        assert codebase.name_history(s, "one")[0]["commit_seq"] is None
        _lib(s)
        assert s.verify() == []


def test_verify_checks_metadata_name_log_and_program_triples(tmp_path):
    path = str(tmp_path / "v.db")
    with SiteMap.open(path) as s:
        lib = _lib(s)
    for sql, want in (
        ("UPDATE fn_meta SET signature='{\"params\":[[\"x\",\"int\"],[\"b\",\"int\"]],\"returns\":\"int\"}' "
         "WHERE name='next'", "do not match"),
        ("UPDATE fn_meta SET signature='nope' WHERE name='next'", "not JSON"),
        ("UPDATE name_commits SET root_seq=99", "refers to commit 99"),
        ("UPDATE snapshots SET path='program:00'", "not a stored program"),
    ):
        copy = tmp_path / "copy.db"
        with SiteMap.open(path) as s:
            s._conn.execute(f"VACUUM INTO '{copy}'")
        c = sqlite3.connect(str(copy))
        c.execute(sql)
        c.commit()
        c.close()
        with SiteMap.open(str(copy)) as s:
            problems = s.verify()
        assert any(want in p for p in problems), (sql, problems)
        copy.unlink()
    assert lib.ok


def test_directory_export_keeps_function_forms_and_names(store, tmp_path):
    """Export to the original's directory layout and import into a fresh store: the source
    forms of functions and the name bindings come back (codebase.json), verify stays clean,
    and a damaged codebase.json is reported, never fatal."""
    lib = _lib(store, namespace="lib")
    store.export_sitemap_dir(str(tmp_path / "dir"))
    doc = json.loads((tmp_path / "dir" / "codebase.json").read_text())
    assert {f["name"] for f in doc["functions"]} == {"sumsq", "next", "main"}
    fresh = SiteMap.open(str(tmp_path / "fresh.db"))
    try:
        rep = fresh.import_sitemap_dir(str(tmp_path / "dir"))
        # sumsq's node is not v1-round-trippable (the export says so), so it does not come
        # back: its source form and its name are reported and skipped. next comes back under its
        # H2; main calls sumsq, so it is re-linked on import and found by its H1.
        assert not fresh._has(lib.names["sumsq"]) and fresh._has(lib.names["next"])
        assert rep.counts["functions"] == 2
        assert [n for n, _h, _s, _t in fresh.names()] == ["lib.next"] and rep.counts["names"] == 1
        assert any("sumsq" in p and "not in the store" in p for p in rep.problems)
        mains = [r[0] for r in fresh._all("SELECT hash FROM fn_meta WHERE name='main'")]
        assert len(mains) == 1 and fresh._has(bytes(mains[0]))
        assert codebase.function_meta(fresh, lib.names["next"]) == [
            {"name": "next", "params": [["a", "int"], ["b", "int"]], "returns": "int"}]
        assert format_loaded(load_stored(fresh, "lib.next"), "text").startswith("fn next(a: int, b: int) -> int")
        assert fresh.verify() == []
        # importing again changes nothing and reports nothing new
        again = fresh.import_sitemap_dir(str(tmp_path / "dir"))
        assert again.counts["functions"] == 0 and again.counts["names"] == 0
    finally:
        fresh.close()
    (tmp_path / "dir" / "codebase.json").write_text('{"functions": [{"hash": "zz"}]}')
    other = SiteMap.open(str(tmp_path / "other.db"))
    try:
        rep = other.import_sitemap_dir(str(tmp_path / "dir"))
        assert any(p.startswith("codebase.json: unreadable") for p in rep.problems)
        assert rep.counts["nodes"] > 0 and other.names() == [] and other.verify() == []
    finally:
        other.close()
