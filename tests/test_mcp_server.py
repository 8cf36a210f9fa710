"""The MCP server: tools through the real protocol (in-process client of the `mcp` SDK), and
the tool layer's safety rules (limits clamped, sources only as strings, typed failures)."""

import json
import sys

import anyio
import pytest

from nda.mcp.server import ServerConfig, Tools, build_server, clamp_limits
from nda.sandbox.runner import run
from nda.syntax.sexpr import parse_sexpr
from nda.runtime.state import Limits

COUNTER = "(let i (int 0)) (loop 5 (store i (add (load i) (int 1)))) (print (load i)) (load i)"
MODULE = """(module
  (def sq (scope (let x (scope)) (return (math mul (load x) (load x)))))
  (def main (scope (int 7) (call @sq))))"""
UNDERFLOW = "(if (scope) (then)) (if (scope) (then))"


def _call(server, tool: str, args: dict):
    from mcp import Client

    async def go():
        async with Client(server) as c:
            listed = await c.list_tools()
            r = await c.call_tool(tool, args)
            return [t.name for t in listed.tools], r

    return anyio.run(go)


def _payload(result) -> dict:
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)


def test_tools_are_listed_and_run_matches_the_sandbox():
    names, r = _call(build_server(), "nda_run", {"source": COUNTER, "dim": 3})
    assert {"nda_run", "nda_check", "nda_format", "nda_hash", "nda_commit", "nda_show",
            "nda_log"} <= set(names)
    d = _payload(r)
    oracle = run(parse_sexpr(COUNTER).sequence, [1.0, 1.0, 1.0], tier="interp")
    assert d["ok"] is True
    assert d["output_vec"] == oracle.output_vec == [5.0]
    assert d["output_log"] == oracle.output_log
    assert d["executed_nodes"] == oracle.executed_nodes


def test_run_reports_program_errors_as_data():
    d = _payload(_call(build_server(), "nda_run", {"source": UNDERFLOW, "dim": 0, "gate": False})[1])
    assert d["ok"] is False and d["error_code"] == "STACK_UNDERFLOW" and not d["panicked"]
    # by default the gate refuses it before it runs
    d = _payload(_call(build_server(), "nda_run", {"source": UNDERFLOW, "dim": 0})[1])
    assert d["ok"] is False and d["stage"] == "gate" and d["executed_nodes"] == 0
    assert d["diagnostics"][0]["message"] == "Stack underflow in If condition"


def test_bad_source_gives_typed_diagnostic_with_position():
    d = _payload(_call(build_server(), "nda_run", {"source": "(let x\n  (int 1)"})[1])
    assert d["ok"] is False and d["error"]["code"] == "PARSE_ERROR"
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
    assert d["ok"] is False and d["error"]["code"] == "INPUT_INVALID"


def test_module_hash_and_format_round_trip():
    tools = Tools(ServerConfig())
    h = tools.hash(MODULE)
    assert h["ok"] and set(h["functions"]) == {"sq", "main"}
    b = tools.format(MODULE, to="binary")
    assert b["ok"]
    again = tools.hash(b["base64"], syntax="binary")
    assert again["program_hash"] == h["program_hash"]
    assert tools.run(b["base64"], syntax="binary", dim=0)["output_vec"] == [49.0]
    assert tools.format("!!!", syntax="binary")["error"]["code"] == "INPUT_INVALID"


def test_check_reports_every_finding():
    d = Tools(ServerConfig()).check(
        "(let c (scope)) (if (load c) (then (print (load x))) (else (print (load y))))", dim=4)
    assert d["ok"] is False and len(d["diagnostics"]) >= 2
    assert all(x["code"] == "VALIDATION_ERROR" for x in d["diagnostics"])
    assert Tools(ServerConfig()).check(COUNTER, dim=0) == {"ok": True, "diagnostics": []}


def test_commit_show_log_through_the_store(tmp_path):
    server = build_server(ServerConfig(store_path=str(tmp_path / "s.db")))
    d = _payload(_call(server, "nda_commit", {"source": MODULE, "message": "sq", "name": "sq7", "dim": 0})[1])
    assert d["ok"] is True
    shown = _payload(_call(server, "nda_show", {"ref": "sq7"})[1])
    assert shown["ok"] and "call" in shown["text"]
    log = _payload(_call(server, "nda_log", {})[1])
    assert [e["message"] for e in log["entries"]] == ["sq"]
    # a rejected commit changes nothing
    bad = _payload(_call(server, "nda_commit", {"source": UNDERFLOW, "dim": 0})[1])
    assert bad["ok"] is False
    assert len(_payload(_call(server, "nda_log", {})[1])["entries"]) == 1


def test_store_tools_without_a_store_fail_cleanly():
    d = Tools(ServerConfig()).log()
    assert d["ok"] is False and "without a store" in d["error"]["message"]


def test_binary_source_must_be_base64_not_a_path():
    d = Tools(ServerConfig()).run("/etc/passwd", syntax="binary")
    assert d["ok"] is False and d["error"]["code"] == "INPUT_INVALID"
    assert Tools(ServerConfig()).run("x", syntax="file")["error"]["code"] == "INPUT_INVALID"


def test_nda_mcp_serves_on_stdio(tmp_path):
    """The `nda mcp` verb speaks MCP over stdio (a real subprocess and the SDK's stdio client)."""
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "nda", "mcp", "--store", str(tmp_path / "s.db")])

    async def go():
        with anyio.fail_after(60):
            async with Client(params) as c:
                r = await c.call_tool("nda_run", {"source": COUNTER, "dim": 0})
                return _payload(r)

    d = anyio.run(go)
    assert d["ok"] and d["output_vec"] == [5.0]


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
        lambda: tools.run(None, syntax="binary"), lambda: tools.check(COUNTER, dim=-1),
        lambda: tools.check(COUNTER, dim="x"), lambda: tools.check(COUNTER, dim=10**12),
        lambda: tools.commit(COUNTER, dim=0, message=5), lambda: tools.commit(COUNTER, dim=0, name=["a"]),
        lambda: tools.show(None), lambda: tools.show(5), lambda: tools.show(["c"]),
        lambda: tools.show("x" * 10_000), lambda: tools.log(None), lambda: tools.log(float("inf")),
        lambda: tools.log([1]), lambda: tools.log(-1), lambda: tools.log("5"), lambda: tools.log(True),
    ]
    for i, call in enumerate(bad):
        d = call()
        assert d["ok"] is False and d["error"]["code"] == "INPUT_INVALID", (i, d)
        assert d["diagnostics"] and d["diagnostics"][0]["code"] == "INPUT_INVALID", (i, d)


def test_oversized_source_is_refused_before_parsing():
    """Review: a 50 MB S-expression source ran for >12 min and grew past 9 GB (parse cost is
    superlinear); sources longer than `max_source_len` are now refused unparsed."""
    import time

    small = Tools(ServerConfig(max_source_len=1000))
    assert small.hash("(int 1) " * 100)["ok"]
    for call in (lambda s: small.hash(s), lambda s: small.run(s, dim=0), lambda s: small.check(s),
                 lambda s: small.format(s), lambda s: small.hash(s, syntax="binary")):
        d = call("(int 1) " * 1000)
        assert d["ok"] is False and "too long" in d["error"]["message"]
    t = time.perf_counter()
    d = Tools(ServerConfig()).run("(int 1) " * 6_250_000, dim=0)  # 50 MB
    assert d["ok"] is False and d["error"]["code"] == "INPUT_INVALID"
    assert time.perf_counter() - t < 5


def test_input_is_bounded_before_it_is_copied_and_log_limit_is_clamped(tmp_path):
    tools = Tools(ServerConfig(store_path=str(tmp_path / "s.db"), limits=Limits(max_input_len=8),
                               max_log_entries=2))
    d = tools.run(COUNTER, input=[1.0] * 9)
    assert d["ok"] is False and "max_input_len" in d["error"]["message"]
    assert tools.run("(scope)", input=[1, 2.0])["output_vec"] == [1.0, 2.0]
    d = tools.run("(scope)", input=[10**400])  # the sandbox panicked (INTERNAL) on it
    assert d["ok"] is False and d["error"]["code"] == "INPUT_INVALID"
    for k in range(3):
        assert tools.commit(f"(int {k})", dim=0, message=str(k))["ok"]
    log = tools.log(10**30)  # was OverflowError from sqlite
    assert log["ok"] and [e["message"] for e in log["entries"]] == ["2", "1"]
    assert tools.log(0)["entries"] == []


def test_unexpected_exception_is_still_one_object():
    tools = Tools(ServerConfig())
    tools._hash = lambda *a: [][1]  # a bug inside a tool
    d = tools.hash(COUNTER)
    assert d == {"ok": False, "error": {"code": "INTERNAL", "message": "internal error (IndexError)"},
                 "diagnostics": [{"severity": "error", "code": "INTERNAL",
                                  "message": "internal error (IndexError)"}]}


def test_protocol_argument_errors_are_ok_false_objects():
    """Review: the SDK's schema check answered wrong JSON types with an `isError` text, not the
    tools' JSON object; now every call returns an object with `ok`."""
    server = build_server()
    for tool, args, field in (("nda_run", {"source": COUNTER, "dim": "x"}, "dim"),
                              ("nda_run", {}, "source"), ("nda_show", {"ref": None}, "ref"),
                              ("nda_log", {"limit": "many"}, "limit"),
                              ("nda_run", {"source": COUNTER, "input": ["a"]}, "input.0")):
        _, r = _call(server, tool, args)
        d = _payload(r)
        assert not r.is_error and d["ok"] is False, d
        assert d["error"]["code"] == "INPUT_INVALID" and f"{field}:" in d["error"]["message"]
    _, r = _call(server, "nda_run", {"source": COUNTER, "dim": 0})
    assert _payload(r)["ok"] is True
