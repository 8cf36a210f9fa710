"""The MCP server: tools, resources and the prompt through the real protocol (in-process client of
the `mcp` SDK, and one stdio subprocess), and the tool layer's safety rules (limits clamped,
sources only as strings, typed failures)."""

import base64
import json
import sys
import types
from pathlib import Path

import anyio
import pytest

from nda.core.errors import failure
from nda.mcp.server import ServerConfig, Tools, build_server, clamp_limits
from nda.mcp import teach
from nda.mcp.tools import COMPACT_VEC, detect_syntax
from nda.runtime.state import Limits
from nda.sandbox.runner import run
from nda.syntax.sexpr import parse_sexpr

COUNTER = "(let i (int 0)) (loop 5 (store i (add (load i) (int 1)))) (print (load i)) (load i)"
MODULE = """(module
  (def sq (scope (let x (scope)) (return (math mul (load x) (load x)))))
  (def main (scope (int 7) (call @sq))))"""
GRAPH = """(module
  (def sq (scope (let x (scope)) (return (math mul (load x) (load x)))))
  (def quad (scope (let y (scope)) (load y) (call @sq) (call @sq)))
  (def main (scope (int 3) (call @quad))))"""
TEXT = "fn sq(x: int) -> int {\n    return x * x\n}\n\nfn main() {\n    print(sq(7))\n}\n"
UNDERFLOW = "(if (scope) (then)) (if (scope) (then))"
TOOLS = {"nda_run", "nda_check", "nda_commit", "nda_show", "nda_log", "nda_names", "nda_callers",
         "nda_dependencies", "nda_verify", "nda_format", "nda_hash", "nda_grammar"}
REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "reference"


def _session(server, fn):
    from mcp import Client

    async def go():
        async with Client(server) as c:
            return await fn(c)

    return anyio.run(go)


def _call(server, tool: str, args: dict):
    return _session(server, lambda c: c.call_tool(tool, args))


def _payload(result) -> dict:
    d = json.loads(result.content[0].text)
    assert result.structured_content == d  # structured content and text say the same
    assert result.is_error is (d["ok"] is False)  # isError exactly when the call failed
    return d


def _schema_props(schema: dict) -> dict:
    return schema.get("properties", {})


# ---------------------------------------------------------------------------------------------
# The surface: what an agent learns from listing


def test_tools_are_described_with_enums_annotations_and_output_schemas():
    tools = {t.name: t for t in _session(build_server(), lambda c: c.list_tools()).tools}
    assert set(tools) == TOOLS
    for name, t in tools.items():
        assert t.description and len(t.description) > 40, name
        for arg, prop in _schema_props(t.input_schema).items():
            assert prop.get("description"), (name, arg)
        out = t.output_schema
        assert out and "ok" in out["properties"] and len(out["properties"]) > 1, name
        a = t.annotations
        assert a.read_only_hint is (name != "nda_commit"), name
        assert a.destructive_hint is False and a.open_world_hint is False, name
    run_props = _schema_props(tools["nda_run"].input_schema)

    def enum(prop):
        return next(x["enum"] for x in prop.get("anyOf", [prop]) if "enum" in x)

    assert enum(run_props["syntax"]) == ["sexpr", "text", "binary"]
    assert enum(run_props["tier"]) == ["auto", "interp", "closure", "native"]
    assert enum(_schema_props(tools["nda_format"].input_schema)["to"]) == ["sexpr", "text", "binary"]
    assert enum(_schema_props(tools["nda_grammar"].input_schema)["dialect"]) == ["lark", "gbnf"]
    assert enum(_schema_props(tools["nda_names"].input_schema)["mode"]) == ["list", "search", "history"]
    limits = tools["nda_run"].input_schema["$defs"]["LimitsArg"]
    assert list(limits["properties"]) == Limits.field_names()
    assert limits["additionalProperties"] is False
    assert all(p["description"] for p in limits["properties"].values())
    assert tools["nda_commit"].annotations.idempotent_hint is False
    assert "source" in tools["nda_check"].input_schema["required"]


def test_instructions_resources_and_prompt():
    async def go(c):
        return (c.instructions, await c.list_resources(), await c.list_prompts(),
                await c.read_resource("nda://reference/language"),
                await c.get_prompt("write_nda", {"task": "print 42", "syntax": "sexpr"}))

    instructions, res, prompts, lang, prompt = _session(build_server(), go)
    assert instructions == teach.INSTRUCTIONS
    uris = {str(r.uri) for r in res.resources}
    pages = {p.stem for p in REFERENCE.glob("*.md")}
    assert pages >= {"language", "formats", "runtime", "errors"}
    assert {f"nda://reference/{p}" for p in pages} <= uris
    assert {f"nda://grammar/{s}.{d}" for s in ("text", "sexpr") for d in ("lark", "gbnf")} <= uris
    assert all(r.description and r.mime_type for r in res.resources)
    assert "nda://schema/failure" in uris
    assert lang.contents[0].text == (REFERENCE / "language.md").read_text(encoding="utf-8")
    assert [p.name for p in prompts.prompts] == ["write_nda"]
    assert all(a.description for a in prompts.prompts[0].arguments)
    text = prompt.messages[0].content.text
    assert "print 42" in text and "(module" in text
    for tool in ("nda_check", "nda_run", "nda_commit"):
        assert tool in text and tool in teach.INSTRUCTIONS


def test_the_prompts_examples_run_as_they_say():
    """The prompt teaches by example: both examples pass the gate and print what they claim."""
    tools = Tools(ServerConfig())
    hashes = set()
    for syntax in ("text", "sexpr"):
        text = teach.write_prompt("x", syntax)
        example = text.split("```\n")[1].split("```")[0]
        d = tools.run(example)
        assert d["ok"] and d["syntax"] == syntax, d
        assert d["output_log"] == ["[print] [25.0]"] and d["output_vec"] == [5.0]
        assert tools.check(example)["ok"]
        hashes.add(d["program_hash"])
    assert len(hashes) == 2


def test_reference_pages_are_the_docs():
    pages = teach.reference_pages()
    assert set(pages) == {p.stem for p in REFERENCE.glob("*.md")}
    for name in pages:
        assert teach.reference_text(name) == (REFERENCE / f"{name}.md").read_text(encoding="utf-8")
    with pytest.raises(KeyError):
        teach.reference_text("../../pyproject")


def test_setup_build_copies_the_reference_into_the_package(tmp_path):
    """`pip install .` ships the pages: the build step copies docs/reference into nda/mcp/."""
    import setuptools
    from setuptools.dist import Distribution

    root = Path(__file__).resolve().parents[1]
    spec = {}
    code = (root / "setup.py").read_text()
    orig = setuptools.setup
    setuptools.setup = lambda **kw: spec.update(kw)
    try:
        exec(compile(code, str(root / "setup.py"), "exec"), {"__file__": str(root / "setup.py"),
                                                             "__name__": "setup"})
    finally:
        setuptools.setup = orig
    cmd_cls = spec["cmdclass"]["build_py"]
    dist = Distribution({"name": "x", "packages": [], "package_dir": {}})
    cmd = cmd_cls(dist)
    cmd.initialize_options()
    cmd.build_lib = str(tmp_path)
    cmd.finalize_options()
    cmd.run()
    copied = {p.name for p in (tmp_path / "nda" / "mcp" / "reference").iterdir()}
    assert copied == {p.name for p in REFERENCE.glob("*.md")}


# ---------------------------------------------------------------------------------------------
# Running and the answer's shape


def test_run_matches_the_sandbox():
    d = _payload(_call(build_server(), "nda_run", {"source": COUNTER, "dim": 3}))
    oracle = run(parse_sexpr(COUNTER).sequence, [1.0, 1.0, 1.0], tier="interp")
    assert d["ok"] is True
    assert d["output_vec"] == oracle.output_vec == [5.0]
    assert d["output_log"] == oracle.output_log
    assert d["executed_nodes"] == oracle.executed_nodes


def test_results_are_compact_by_default():
    """Review: `(print (int 1))` answered 8,515 characters (896 ones echoed back)."""
    r = _call(build_server(), "nda_run", {"source": "(print (int 1))"})
    d = _payload(r)
    assert d["output_vec"] == [] and d["output_log"] == ["[print] [1.0]"]
    assert len(r.content[0].text) < 500
    tools = Tools(ServerConfig())
    ramp = [float(i) for i in range(100)]
    long = tools.run("(scope)", input=ramp)
    assert "output_vec" not in long and long["output_dim"] == 100 and "full=true" in long["hint"]
    full = tools.run("(scope)", input=ramp, full=True)
    vec = full["output_vec"]  # the input as a quantized vector
    assert len(vec) == 100 and "output_summary" not in full and len(set(vec)) > 1
    assert long["output_summary"] == {"length": 100, "head": vec[:8], "min": min(vec),
                                      "max": max(vec), "sum": sum(vec)}
    short = tools.run("(scope)", dim=COMPACT_VEC)
    assert short["output_vec"] == [1.0] * COMPACT_VEC


def test_failures_are_is_error_with_the_clis_failure_object(tmp_path):
    """The same object `nda run --json` prints: ok, error_code, error, diagnostics."""
    from click.testing import CliRunner

    from nda.cli.app import main

    src = "(let x\n  (int 1)"
    f = tmp_path / "bad.sexpr"
    f.write_text(src)
    cli = json.loads(CliRunner().invoke(main, ["run", str(f), "--json"]).output)
    r = _call(build_server(), "nda_run", {"source": src, "syntax": "sexpr"})
    d = _payload(r)
    assert r.is_error and d["ok"] is False
    assert set(cli) <= set(d)
    assert (d["error_code"], d["error"]) == (cli["error_code"], cli["error"]) == (
        "PARSE_ERROR", cli["error"])
    strip = [{k: v for k, v in x.items() if k != "span"} for x in d["diagnostics"]]
    assert strip == [{k: v for k, v in x.items() if k != "span"} for x in cli["diagnostics"]]
    assert d["diagnostics"][0]["span"]["line"] == cli["diagnostics"][0]["span"]["line"] == 1
    assert d["diagnostics"][0]["span"]["file"] == "<mcp>"  # never a host path
    # a run-time failure: the same object too (the failing node's span in diagnostics)
    f.write_text(UNDERFLOW)
    cli = json.loads(CliRunner().invoke(main, ["run", str(f), "--json", "--no-gate", "--dim", "0"]).output)
    d = Tools(ServerConfig()).run(UNDERFLOW, gate=False)
    assert (d["ok"], d["error_code"], d["error"], d["stage"]) == (
        cli["ok"], cli["error_code"], cli["error"], cli["stage"]) == (
        False, "STACK_UNDERFLOW", "Stack underflow in If condition", "run")
    assert [{**x, "span": {**x["span"], "file": None}} for x in d["diagnostics"]] == \
        [{**x, "span": {**x["span"], "file": None}} for x in cli["diagnostics"]]
    import jsonschema

    schema = _session(build_server(), lambda c: c.read_resource("nda://schema/failure"))
    jsonschema.validate(d, json.loads(schema.contents[0].text))  # the published failure schema


def test_run_reports_program_errors_with_is_error():
    d = _payload(_call(build_server(), "nda_run", {"source": UNDERFLOW, "dim": 0, "gate": False,
                                                   "tier": "native"}))
    assert d["ok"] is False and d["error_code"] == "STACK_UNDERFLOW" and d["stage"] == "run"
    assert d["diagnostics"][0]["code"] == "STACK_UNDERFLOW" and not d["panicked"]
    assert d["diagnostics"][0]["span"] == {"file": "<mcp>", "line": 1, "col": 21}  # the failing If
    # by default the gate refuses it before it runs
    d = _payload(_call(build_server(), "nda_run", {"source": UNDERFLOW, "dim": 0}))
    assert d["ok"] is False and d["stage"] == "gate" and d["executed_nodes"] == 0
    assert d["diagnostics"][0]["message"] == "Stack underflow in If condition"


def test_a_source_without_syntax_is_recognised_or_answered_with_a_hint():
    tools = Tools(ServerConfig())
    assert detect_syntax("  ; c\n(int 1)") == "sexpr" and detect_syntax("// c\nfn main() {}") == "text"
    assert detect_syntax("// a text-style comment\n(int 1)") == "sexpr"  # as `nda run -` reads it
    t = tools.run(TEXT)
    assert t["ok"] and t["syntax"] == "text" and t["output_log"] == ["[print] [49.0]"]
    s = tools.run(MODULE)
    assert s["ok"] and s["syntax"] == "sexpr" and s["output_vec"] == [49.0]
    b64 = tools.format(TEXT, to="binary")["base64"]
    b = tools.run(b64)
    assert b["ok"] and b["syntax"] == "binary" and b["output_log"] == ["[print] [49.0]"]
    assert tools.hash(TEXT)["program_hash"] == tools.hash(b64)["program_hash"]
    # a text program read as text but malformed: the diagnostic says what was assumed
    bad = tools.run("print(1)")
    assert bad["error_code"] == "PARSE_ERROR" and bad["stage"] == "parse" and bad["syntax"] == "text"
    assert "read as text" in bad["diagnostics"][0]["hint"]
    assert "syntax='sexpr'" in bad["diagnostics"][0]["hint"]
    # a source that opens like text is text: its own errors, no guessing hint
    typo = tools.run("fn main() { print(1 +) }")
    assert typo["syntax"] == "text" and "read as" not in str(typo["diagnostics"])
    # given explicitly, no guess and no hint about it
    assert "syntax" not in tools.run(MODULE, syntax="sexpr")
    wrong = tools.run(TEXT, syntax="sexpr")
    assert wrong["ok"] is False and "read as" not in str(wrong["diagnostics"])


def test_bad_source_gives_typed_diagnostic_with_position():
    d = _payload(_call(build_server(), "nda_run", {"source": "(let x\n  (int 1)"}))
    assert d["ok"] is False and d["error_code"] == "PARSE_ERROR"
    assert d["diagnostics"][0]["span"]["line"] >= 1


def test_limits_are_clamped_to_the_servers():
    ceiling = Limits(fuel=10)
    assert clamp_limits({"fuel": 10**9}, ceiling).fuel == 10
    assert clamp_limits({"fuel": 7}, ceiling).fuel == 7
    assert clamp_limits(None, ceiling) == ceiling
    with pytest.raises(ValueError):
        clamp_limits({"nope": 1}, ceiling)
    tools = Tools(ServerConfig(limits=ceiling))
    d = tools.run(COUNTER, dim=0, limits={"fuel": 10**9}, gate=False)
    assert d["ok"] is False and d["error_code"] == "FUEL_EXHAUSTED" and d["executed_nodes"] == 10
    d = tools.run(COUNTER, dim=0, limits={"warp": 3})
    assert d["ok"] is False and d["error_code"] == "INPUT_INVALID"
    # through the protocol: the named-keys object, clamped the same way
    server = build_server(ServerConfig(limits=ceiling))
    d = _payload(_call(server, "nda_run", {"source": COUNTER, "gate": False,
                                           "limits": {"fuel": 10**9}}))
    assert d["error_code"] == "FUEL_EXHAUSTED" and d["executed_nodes"] == 10
    d = _payload(_call(server, "nda_run", {"source": COUNTER, "limits": {"fuel": 1, "warp": 3}}))
    assert d["error_code"] == "INPUT_INVALID" and "limits.warp" in d["error"]


def test_module_hash_and_format_round_trip():
    tools = Tools(ServerConfig())
    h = tools.hash(MODULE)
    assert h["ok"] and set(h["functions"]) == {"sq", "main"}
    b = tools.format(MODULE, to="binary")
    assert b["ok"]
    again = tools.hash(b["base64"], syntax="binary")
    assert again["program_hash"] == h["program_hash"]
    assert tools.run(b["base64"], syntax="binary", dim=0)["output_vec"] == [49.0]
    assert tools.format("!!!", syntax="binary")["error_code"] == "INPUT_INVALID"
    assert tools.format(TEXT, to="sexpr")["text"].startswith("(module")


def test_check_reports_every_finding():
    d = _payload(_call(build_server(), "nda_check", {
        "source": "(let c (scope)) (if (load c) (then (print (load x))) (else (print (load y))))",
        "dim": 4}))
    assert d["ok"] is False and len(d["diagnostics"]) >= 2 and d["stage"] == "gate"
    assert all(x["code"] == "UNDEFINED_VARIABLE" and x["stage"] == "gate" for x in d["diagnostics"])
    assert [x["message"] for x in d["diagnostics"]] == ["undefined variable 'x'", "undefined variable 'y'"]
    assert d["error_code"] == "UNDEFINED_VARIABLE"
    assert Tools(ServerConfig()).check(COUNTER, dim=0) == {"ok": True, "diagnostics": [],
                                                           "syntax": "sexpr"}
    # the same findings as `nda check`: variable names and did-you-mean hints
    d = Tools(ServerConfig()).check("fn main() {\n    let count = 1\n    print(cont)\n}")
    assert d["diagnostics"][0]["span"]["line"] == 3
    assert "did you mean 'count'?" in d["diagnostics"][0]["hint"]


# ---------------------------------------------------------------------------------------------
# The store tools


def test_commit_show_log_names_run_by_ref(tmp_path):
    server = build_server(ServerConfig(store_path=str(tmp_path / "s.db")))

    async def go(c):
        out = {}
        out["commit"] = await c.call_tool("nda_commit", {"source": MODULE, "message": "sq",
                                                          "name": "sq7"})
        out["show"] = await c.call_tool("nda_show", {"ref": "sq7", "format": "sexpr"})
        out["run"] = await c.call_tool("nda_run", {"ref": "sq7"})
        out["log"] = await c.call_tool("nda_log", {})
        out["bad"] = await c.call_tool("nda_commit", {"source": UNDERFLOW})
        out["log2"] = await c.call_tool("nda_log", {})
        out["list"] = await c.call_tool("nda_names", {})
        out["search"] = await c.call_tool("nda_names", {"mode": "search", "query": "SQ"})
        out["again"] = await c.call_tool("nda_commit", {"source": "(int 3)", "name": "sq7"})
        out["history"] = await c.call_tool("nda_names", {"mode": "history", "query": "sq7"})
        out["verify"] = await c.call_tool("nda_verify", {})
        return {k: _payload(v) for k, v in out.items()}

    o = _session(server, go)
    assert o["commit"]["ok"] and set(o["commit"]["functions"]) == {"sq", "main"}
    assert "output_vec" in o["commit"]["sandbox"]
    assert o["show"]["ok"] and "call" in o["show"]["text"] and o["show"]["hash"] == o["commit"]["root"]
    assert o["run"]["ok"] and o["run"]["output_vec"] == [49.0]
    assert [e["message"] for e in o["log"]["entries"]] == ["sq"]
    assert o["commit"]["bindings"] == [{"name": "sq7", "hash": o["commit"]["root"], "previous": None}]
    assert [(b["name"], b["previous"]) for b in o["log"]["entries"][0]["bindings"]] == [("sq7", None)]
    # a rejected commit changes nothing and says where it stopped
    assert o["bad"]["ok"] is False and o["bad"]["stage"] == "gate"
    assert o["bad"]["error_code"] == "STACK_UNDERFLOW" and o["bad"]["diagnostics"]
    assert len(o["log2"]["entries"]) == 1
    # names are explicit (issue 12): a commit binds only the name asked for, never main or the defs
    assert [n["name"] for n in o["list"]["names"]] == ["sq7"]
    assert [n["name"] for n in o["search"]["names"]] == ["sq7"] and o["search"]["total"] == 1
    assert [(n["seq"], n["hash"], n["previous"]) for n in o["history"]["names"]] == [
        (1, o["commit"]["root"], None), (2, o["again"]["root"], o["commit"]["root"])]
    # rebinding reports the previous target
    assert o["again"]["bindings"] == [{"name": "sq7", "hash": o["again"]["root"],
                                       "previous": o["commit"]["root"]}]
    assert o["verify"]["ok"] and o["verify"]["stats"]["names"] == 1


def test_callers_and_dependencies(tmp_path):
    server = build_server(ServerConfig(store_path=str(tmp_path / "s.db")))

    async def go(c):
        out = {"commit": await c.call_tool("nda_commit", {"source": GRAPH, "message": "graph",
                                                          "name": "prog", "namespace": ""})}
        for tool, ref in (("nda_callers", "sq"), ("nda_dependencies", "quad"),
                          ("nda_dependencies", "sq"), ("nda_callers", "quad"), ("nda_callers", "nope"),
                          ("nda_callers", "squad")):
            out[tool, ref] = await c.call_tool(tool, {"ref": ref})
        return {k: _payload(v) for k, v in out.items()}

    o = _session(server, go)
    c = o["commit"]
    assert c["ok"], c
    fn = c["functions"]
    # the namespace '' binds the defs by their bare names, never main; `name` binds the root
    assert sorted((b["name"], b["hash"]) for b in c["bindings"]) == sorted(
        [("sq", fn["sq"]), ("quad", fn["quad"]), ("prog", c["root"])])
    callers = o["nda_callers", "sq"]
    assert callers["hash"] == fn["sq"] and callers["target"]["current"] == ["sq"]
    assert [(x["address"], x["name"], x["display"]) for x in callers["callers"]] == [
        (fn["quad"], "quad", "quad")] and callers["count"] == 1
    deps = o["nda_dependencies", "quad"]
    assert [(x["address"], x["display"]) for x in deps["dependencies"]] == [(fn["sq"], "sq")]
    assert o["nda_dependencies", "sq"]["dependencies"] == []
    # main is not bound: the committed program (the root, bound as prog) is the caller
    assert [x["display"] for x in o["nda_callers", "quad"]["callers"]] == ["prog"]
    assert o["nda_callers", "nope"]["error_code"] == "INPUT_INVALID"
    assert "did you mean 'quad'" in o["nda_callers", "squad"]["diagnostics"][0]["hint"]
    tools = Tools(ServerConfig(store_path=str(tmp_path / "s.db")))
    assert [x["name"] for x in tools.callers(fn["quad"][:12])["callers"]] == ["prog"]
    assert tools.callers("#" + fn["sq"])["callers"] == callers["callers"]
    # later commits do not drop the call graph of earlier ones
    assert tools.commit("(int 3)")["ok"] and tools.commit("(int 4)", name="four")["ok"]
    assert [x["name"] for x in tools.callers("sq")["callers"]] == ["quad"]


LIB = "fn sumsq(n: int) -> int {\n    return n * n\n}\n\nfn main() {\n    print(sumsq(3))\n}\n"


def test_sources_call_stored_functions_by_name(tmp_path):
    """Issue 12 part 4: the MCP tools load sources with the store, so a call to a stored
    function by name links to its current binding in every tool; an unbound name is a gate
    finding with a did-you-mean over the store's names."""
    server = build_server(ServerConfig(store_path=str(tmp_path / "s.db")))
    text = "fn main() {\n    print(sumsq(10))\n}\n"
    sexpr = "(print (scope (int 10) (call @sumsq)))"

    async def go(c):
        out = {"lib": await c.call_tool("nda_commit", {"source": LIB, "namespace": "", "dim": 0})}
        for tool in ("nda_run", "nda_check", "nda_hash"):
            out[tool, "text"] = await c.call_tool(tool, {"source": text})
            out[tool, "sexpr"] = await c.call_tool(tool, {"source": sexpr})
        out["format"] = await c.call_tool("nda_format", {"source": text, "to": "text"})
        out["commit_text"] = await c.call_tool("nda_commit", {"source": text, "name": "user_t"})
        out["commit_sexpr"] = await c.call_tool("nda_commit", {"source": sexpr, "name": "user_s"})
        out["callers"] = await c.call_tool("nda_callers", {"ref": "sumsq"})
        out["deps"] = await c.call_tool("nda_dependencies", {"ref": "user_t"})
        out["lib2"] = await c.call_tool("nda_commit", {"source": LIB.replace("n * n", "n * n + 1"),
                                                       "namespace": "", "dim": 0})
        out["log"] = await c.call_tool("nda_log", {})
        out["names"] = await c.call_tool("nda_names", {})
        for tool in ("nda_run", "nda_check", "nda_commit"):
            out[tool, "typo"] = await c.call_tool(tool, {"source": text.replace("sumsq", "sumsk")})
        out["typo_sexpr"] = await c.call_tool("nda_run", {"source": "(call @sumsk)"})
        return out

    r = _session(server, go)
    o = {k: _payload(v) for k, v in r.items()}
    sumsq = o["lib"]["functions"]["sumsq"]
    assert o["lib"]["bindings"] == [{"name": "sumsq", "hash": sumsq, "previous": None}]
    for syntax in ("text", "sexpr"):
        assert o["nda_run", syntax]["output_log"] == ["[print] [100.0]"], o["nda_run", syntax]
        assert o["nda_check", syntax] == {"ok": True, "diagnostics": [], "syntax": syntax}
    # the program holds sumsq's address: both syntaxes are the same program, as the commits are
    assert o["nda_hash", "text"]["program_hash"] == o["nda_hash", "sexpr"]["program_hash"] == \
        o["commit_text"]["root"] == o["commit_sexpr"]["root"]
    assert o["format"]["text"] == text  # printed back calling by name
    assert o["commit_text"]["sandbox"]["output_log"] == ["[print] [100.0]"]
    assert [b["name"] for b in o["commit_sexpr"]["bindings"]] == ["user_s"]
    # lib's main and the user program (one address, committed from text and from S-expression)
    assert {x["address"] for x in o["callers"]["callers"]} == {o["lib"]["root"], o["commit_text"]["root"]}
    assert {x["name"] for x in o["callers"]["callers"]} == {None, "user_s"}  # user_s: the newer name
    assert [x["display"] for x in o["deps"]["dependencies"]] == ["sumsq"]
    # rebinding: the answer and the log give the previous target
    assert o["lib2"]["bindings"] == [{"name": "sumsq", "hash": o["lib2"]["functions"]["sumsq"],
                                      "previous": sumsq}]
    assert o["log"]["entries"][0]["bindings"][0]["previous"] == sumsq
    assert [e["bindings"] and e["bindings"][0]["name"] for e in o["log"]["entries"]] == [
        "sumsq", "user_s", "user_t", "sumsq"]
    listed = {n["name"]: n for n in o["names"]["names"]}
    assert listed["sumsq"]["previous"] == sumsq and listed["sumsq"]["seq"] == 2
    assert listed["sumsq"]["source"] == {"name": "sumsq", "params": [["n", "int"]], "returns": "int"}
    # an unbound name: isError, a gate finding at the call, did you mean over the store's names
    for key in (("nda_run", "typo"), ("nda_check", "typo"), ("nda_commit", "typo"), "typo_sexpr"):
        d = o[key]
        assert r[key].is_error and d["error_code"] == "VALIDATION_ERROR", (key, d)
        assert d["stage"] == "gate" and "sumsk" in d["error"], (key, d)
        assert d["diagnostics"][0]["hint"] == "did you mean 'sumsq'?", (key, d)
    assert o["nda_run", "typo"]["diagnostics"][0]["span"]["line"] == 2
    assert len(o["log"]["entries"]) == 4  # the rejected commit stored nothing


def test_names_before_the_first_commit_and_namespaces(tmp_path):
    path = tmp_path / "new" / "s.db"
    tools = Tools(ServerConfig(store_path=str(path)))
    # no store yet: every name is unbound (and nothing is created)
    d = tools.run("fn main() {\n    print(sumsq(1))\n}\n")
    assert d["error_code"] == "VALIDATION_ERROR" and "not bound in the store" in d["error"]
    assert tools.check("(call @sumsq)")["stage"] == "gate"
    assert tools.commit("(call @sumsq)")["stage"] == "gate"
    assert not path.exists() and not path.parent.exists()  # a rejected first commit leaves nothing
    # namespace 'lib' binds lib.f (never main); calls by the qualified name link
    c = tools.commit(LIB, namespace="lib", dim=0)
    assert [b["name"] for b in c["bindings"]] == ["lib.sumsq"], c
    assert tools.run("fn main() {\n    print(lib.sumsq(4))\n}\n")["output_log"] == ["[print] [16.0]"]
    assert tools.run("(print (scope (int 5) (call @lib.sumsq)))")["output_log"] == ["[print] [25.0]"]
    assert [n["name"] for n in tools.names("list", "lib.")["names"]] == ["lib.sumsq"]
    assert tools.names("list", "zzz")["names"] == []
    assert [n["name"] for n in tools.names("search", "sumsk")["names"]] == []  # not close to lib.sumsq
    assert [n["name"] for n in tools.names("search", "SUM")["names"]] == ["lib.sumsq"]
    d = tools.run("fn main() {\n    print(sumsq(4))\n}\n")
    assert d["error_code"] == "VALIDATION_ERROR" and "lib.sumsq" in d["diagnostics"][0]["hint"]
    # a namespace needs a module, and must be identifiers joined by dots
    bad = tools.commit("(int 1)", namespace="x")
    assert bad["error_code"] == "INPUT_INVALID" and bad["stage"] == "names"
    assert tools.commit(LIB, namespace="1x")["error_code"] == "INPUT_INVALID"
    assert len(tools.log()["entries"]) == 1


def test_store_tools_without_a_store_fail_cleanly():
    for d in (Tools(ServerConfig()).log(), Tools(ServerConfig()).names(),
              Tools(ServerConfig()).run(ref="x")):
        assert d["ok"] is False and "without a store" in d["error"]
    d = Tools(ServerConfig()).run()
    assert d["error_code"] == "INPUT_INVALID" and "exactly one of" in d["error"]


def test_grammar_tool_calls_the_grammar_module_or_says_it_is_missing(monkeypatch):
    tools = Tools(ServerConfig())
    if not teach.grammar_available():
        d = _payload(_call(build_server(), "nda_grammar", {"syntax": "text"}))
        assert d["ok"] is False and d["error"] == "grammar not available in this build"
        assert "nda://reference/formats" in d["diagnostics"][0]["hint"]
    fake = types.ModuleType("nda.syntax.grammars")
    fake.grammar = lambda syntax, dialect: f"// {syntax} in {dialect}\nstart: program\n"
    monkeypatch.setitem(sys.modules, "nda.syntax.grammars", fake)
    d = tools.grammar("sexpr", "gbnf")
    assert d == {"ok": True, "syntax": "sexpr", "dialect": "gbnf",
                 "grammar": "// sexpr in gbnf\nstart: program\n"}
    text = _session(build_server(), lambda c: c.read_resource("nda://grammar/text.lark"))
    assert text.contents[0].text.startswith("// text in lark")
    assert tools.grammar("binary", "lark")["error_code"] == "INPUT_INVALID"


# ---------------------------------------------------------------------------------------------
# Safety and argument errors


def test_binary_source_must_be_base64_not_a_path():
    d = Tools(ServerConfig()).run("/etc/passwd", syntax="binary")
    assert d["ok"] is False and d["error_code"] == "INPUT_INVALID"
    assert Tools(ServerConfig()).run("x", syntax="file")["error_code"] == "INPUT_INVALID"
    d = Tools(ServerConfig()).run("/etc/passwd")  # read as text, which it is not
    assert d["ok"] is False and d["error_code"] == "PARSE_ERROR"


def test_nda_mcp_serves_on_stdio(tmp_path):
    """The `nda mcp` verb speaks MCP over stdio (a real subprocess and the SDK's stdio client)."""
    from mcp import Client, StdioServerParameters

    import os

    import nda

    src = str(Path(nda.__file__).resolve().parents[1])  # this checkout's nda, not an installed one
    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "nda", "mcp", "--store", str(tmp_path / "s.db")],
                                   env={**os.environ, "PYTHONPATH": src})

    async def go():
        with anyio.fail_after(60):
            async with Client(params) as c:
                listed = await c.list_tools()
                ok = await c.call_tool("nda_run", {"source": COUNTER})
                bad = await c.call_tool("nda_run", {"source": "fn main() { print(x) }"})
                page = await c.read_resource("nda://reference/errors")
                return listed, ok, bad, page

    listed, ok, bad, page = anyio.run(go)
    assert {t.name for t in listed.tools} == TOOLS
    assert _payload(ok)["output_vec"] == [5.0]
    d = _payload(bad)
    assert bad.is_error and d["error_code"] == "UNDEFINED_VARIABLE" and d["syntax"] == "text"
    assert d["diagnostics"][0]["span"]["col"] == 19
    assert page.contents[0].text == (REFERENCE / "errors.md").read_text(encoding="utf-8")


def test_wrong_argument_types_give_typed_failures(tmp_path):
    """Review: these raised TypeError / AttributeError / OverflowError / sqlite errors out of the
    tool layer, or were silently accepted (dim=True, check dim=-1, gate="no")."""
    tools = Tools(ServerConfig(store_path=str(tmp_path / "s.db")))
    assert tools.commit(COUNTER, dim=0, name="c")["ok"]
    bad = [
        lambda: tools.run(COUNTER, input=5), lambda: tools.run(COUNTER, input=[None]),
        lambda: tools.run(COUNTER, input=["a"]), lambda: tools.run(COUNTER, dim="3"),
        lambda: tools.run(COUNTER, dim=3.5), lambda: tools.run(COUNTER, dim=True),
        lambda: tools.run(COUNTER, dim=0, limits=[1, 2]), lambda: tools.run(COUNTER, dim=0, limits={(1,): 1}),
        lambda: tools.run(COUNTER, dim=0, gate="no"), lambda: tools.run(COUNTER, dim=0, optimize=1),
        lambda: tools.run(COUNTER, full="yes"),
        lambda: tools.run(None, syntax="binary"), lambda: tools.check(COUNTER, dim=-1),
        lambda: tools.check(COUNTER, dim="x"), lambda: tools.check(COUNTER, dim=10**12),
        lambda: tools.commit(COUNTER, dim=0, message=5), lambda: tools.commit(COUNTER, dim=0, name=["a"]),
        lambda: tools.commit(COUNTER, name=""), lambda: tools.commit(COUNTER, namespace="a..b"),
        lambda: tools.commit(COUNTER, namespace=3),
        lambda: tools.show(None), lambda: tools.show(5), lambda: tools.show(["c"]),
        lambda: tools.show("x" * 10_000), lambda: tools.log(None), lambda: tools.log(float("inf")),
        lambda: tools.log([1]), lambda: tools.log(-1), lambda: tools.log("5"), lambda: tools.log(True),
        lambda: tools.names("all"), lambda: tools.names("search"), lambda: tools.names(limit=-1),
        lambda: tools.names("history", "never-bound"), lambda: tools.callers(None),
        lambda: tools.dependencies("x" * 10_000), lambda: tools.format(COUNTER, to="png"),
        lambda: tools.show("c", format="png"),
    ]
    for i, call in enumerate(bad):
        d = call()
        assert d["ok"] is False and d["error_code"] == "INPUT_INVALID", (i, d)
        assert d["diagnostics"] and d["diagnostics"][0]["code"] == "INPUT_INVALID", (i, d)


def test_oversized_source_is_refused_before_parsing():
    """Review: a 50 MB S-expression source ran for >12 min and grew past 9 GB (parse cost is
    superlinear); sources longer than `max_source_len` are now refused unparsed."""
    import time

    small = Tools(ServerConfig(max_source_len=1000))
    assert small.hash("(int 1) " * 100)["ok"]
    for call in (lambda s: small.hash(s), lambda s: small.run(s, dim=0), lambda s: small.check(s),
                 lambda s: small.format(s), lambda s: small.hash(s, syntax="binary"),
                 lambda s: small.commit(s)):
        d = call("(int 1) " * 1000)
        assert d["ok"] is False and "too long" in d["error"]
    t = time.perf_counter()
    d = Tools(ServerConfig()).run("(int 1) " * 6_250_000, dim=0)  # 50 MB
    assert d["ok"] is False and d["error_code"] == "INPUT_INVALID"
    assert time.perf_counter() - t < 5


def test_input_is_bounded_before_it_is_copied_and_log_limit_is_clamped(tmp_path):
    tools = Tools(ServerConfig(store_path=str(tmp_path / "s.db")), )
    tools = Tools(ServerConfig(store_path=str(tmp_path / "s.db"), limits=Limits(max_input_len=8),
                               max_log_entries=2))
    d = tools.run(COUNTER, input=[1.0] * 9)
    assert d["ok"] is False and "max_input_len" in d["error"]
    assert tools.run("(scope)", input=[1, 2.0])["output_vec"] == [1.0, 2.0]
    d = tools.run("(scope)", input=[10**400])  # the sandbox panicked (INTERNAL) on it
    assert d["ok"] is False and d["error_code"] == "INPUT_INVALID"
    for k in range(3):
        assert tools.commit(f"(int {k})", message=str(k))["ok"]
    log = tools.log(10**30)  # was OverflowError from sqlite
    assert log["ok"] and [e["message"] for e in log["entries"]] == ["2", "1"]
    assert tools.log(0)["entries"] == []


def test_unexpected_exception_is_still_one_object():
    tools = Tools(ServerConfig())
    tools._hash = lambda *a: [][1]  # a bug inside a tool
    assert tools.hash(COUNTER) == failure("INTERNAL", "internal error (IndexError)") == {
        "ok": False, "error_code": "INTERNAL", "error": "internal error (IndexError)",
        "diagnostics": [{"severity": "error", "code": "INTERNAL",
                         "message": "internal error (IndexError)"}]}


def test_protocol_argument_errors_are_is_error_failure_objects():
    """The SDK's schema check refuses wrong JSON types and unknown enum values; the answer is
    still the failure object (with isError), naming the field, never echoing the value."""
    server = build_server()
    for tool, args, field in (("nda_run", {"source": COUNTER, "dim": "x"}, "dim"),
                              ("nda_check", {}, "source"), ("nda_show", {"ref": None}, "ref"),
                              ("nda_log", {"limit": "many"}, "limit"),
                              ("nda_run", {"source": COUNTER, "tier": "warp"}, "tier"),
                              ("nda_run", {"source": COUNTER, "syntax": "yaml"}, "syntax"),
                              ("nda_run", {"source": COUNTER, "dim": -1}, "dim"),
                              ("nda_run", {"source": COUNTER, "input": ["a"]}, "input.0")):
        r = _call(server, tool, args)
        d = _payload(r)
        assert r.is_error and d["ok"] is False, d
        assert d["error_code"] == "INPUT_INVALID" and f"{field}:" in d["error"], d
    assert _payload(_call(server, "nda_run", {"source": COUNTER, "dim": 0}))["ok"] is True


def test_base64_of_text_is_not_mistaken_for_binary():
    tools = Tools(ServerConfig())
    b64 = base64.b64encode(b"fn main() {}").decode()
    d = tools.run(b64)
    assert d["ok"] is False and d["syntax"] == "text"
