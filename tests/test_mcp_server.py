"""The MCP server: tools through the real protocol (in-process client of the `mcp` SDK), and
the tool layer's safety rules (limits clamped, sources only as strings, typed failures)."""

import json
import sys

import anyio
import pytest

from nda.mcp_server import ServerConfig, Tools, build_server, clamp_limits
from nda.sandbox import run
from nda.sexpr import parse_sexpr
from nda.state import Limits

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
                                   args=["-m", "nda.cli", "mcp", "--store", str(tmp_path / "s.db")])

    async def go():
        with anyio.fail_after(60):
            async with Client(params) as c:
                r = await c.call_tool("nda_run", {"source": COUNTER, "dim": 0})
                return _payload(r)

    d = anyio.run(go)
    assert d["ok"] and d["output_vec"] == [5.0]
