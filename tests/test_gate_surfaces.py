"""One gate finding, every surface (issue 9): `nda check` (text and --json), `nda run` (text and
--json), `commit`, and the MCP tools (through the real protocol) all give the same object
{code, message, span, hint, stage: "gate"} — the run's own error code, the variable named as the
source spelt it (`zz`, not its hash), and the same "did you mean 'total'?" hint — for
S-expression and text sources alike. Also: the gate's code equals the run's code whenever both
report the same failure (random programs of tests/progen.py)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from nda.analysis.gate_names import code_for
from nda.cli.app import main
from nda.core import errors as E
from nda.core import ir
from nda.core.link import link_module
from nda.mcp.server import Tools, ServerConfig, build_server
from nda.pipeline.commit import commit, static_check, static_findings
from nda.runtime.state import Limits
from nda.sandbox.runner import run
from nda.store.sitemap import SiteMap
from nda.syntax.sexpr import parse_sexpr

SEXPR = "(let total (int 1))\n(print (load totl))\n"
TEXT = "fn main() {\n    let total = 1\n    print(totl)\n}\n"
HINT = "variable 'totl': no Let/Store of this variable runs earlier in this frame; did you mean 'total'?"


def expected(line: int, col: int, file=None, end=None) -> dict:
    """The finding as every surface shows it (text sources also give the end of the name)."""
    span = {"line": line, "col": col}
    if end is not None:
        span.update(end_line=line, end_col=end)
    if file is not None:
        span = {"file": file, **span}
    return {"severity": "error", "code": "UNDEFINED_VARIABLE", "message": "undefined variable 'totl'",
            "span": span, "hint": HINT, "stage": "gate"}


def cli(*args):
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return r


def one_json(out: str) -> dict:
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    return json.loads(lines[0])


@pytest.fixture(params=[("prog.sexpr", SEXPR, (2, 8, None)), ("prog.nda", TEXT, (3, 11, 15))],
                ids=["sexpr", "text"])
def source(request, tmp_path):
    name, text, pos = request.param
    p = tmp_path / name
    p.write_text(text)
    return p, text, pos


def test_nda_check_json_and_text(source):
    path, _, (line, col, end) = source
    r = cli("check", path, "--json")
    d = one_json(r.stdout)
    assert r.exit_code == 1 and d["stage"] == "gate"
    assert d["diagnostics"] == [expected(line, col, str(path), end)]
    r = cli("check", path)
    assert r.exit_code == 1
    assert f"{path}:{line}:{col}: UNDEFINED_VARIABLE: undefined variable 'totl'" in r.stdout
    assert f"hint: {HINT}" in r.stdout


def test_nda_run_json_and_text(source):
    path, _, (line, col, end) = source
    r = cli("run", path, "--dim", "0", "--json")
    d = one_json(r.stdout)
    assert r.exit_code == 1 and d["ok"] is False and d["stage"] == "gate" and d["executed_nodes"] == 0
    assert d["error_code"] == "UNDEFINED_VARIABLE"
    assert d["diagnostics"] == [expected(line, col, str(path), end)]
    r = cli("run", path, "--dim", "0")
    assert r.exit_code == 1
    assert f"{path}:{line}:{col}: UNDEFINED_VARIABLE: undefined variable 'totl'" in r.stderr
    assert f"hint: {HINT}" in r.stderr
    # the run itself fails with the same code
    r = cli("run", path, "--dim", "0", "--no-gate", "--json")
    assert one_json(r.stdout)["error_code"] == "UNDEFINED_VARIABLE"


def test_commit_and_static_check(tmp_path):
    unit = parse_sexpr(SEXPR)
    assert [d.to_dict() for d in static_check(unit, input_len=0)] == [expected(2, 8)]
    store = SiteMap.open(str(tmp_path / "s.db"))
    try:
        r = commit(store, unit, [])
    finally:
        store.close()
    assert not r.ok and r.stage == "gate" and r.error_code == "UNDEFINED_VARIABLE"
    assert r.to_dict()["diagnostics"] == [expected(2, 8)]


@pytest.mark.parametrize("syntax, text, pos", [("sexpr", SEXPR, (2, 8, "<mcp>", None)),
                                               ("text", TEXT, (3, 11, "<mcp>", 15))])
def test_mcp_check_and_run(syntax, text, pos):
    server = build_server()
    for tool, args in (("nda_check", {"dim": 0}), ("nda_run", {"dim": 0})):
        _, r = _call(server, tool, {"source": text, "syntax": syntax, **args})
        d = r.structured_content if r.structured_content is not None else json.loads(r.content[0].text)
        assert d["ok"] is False
        assert d["diagnostics"] == [expected(*pos)], tool
        if tool == "nda_run":
            assert d["stage"] == "gate" and d["error_code"] == "UNDEFINED_VARIABLE"
    direct = Tools(ServerConfig()).check(text, syntax=syntax, dim=0)  # the tool layer alone
    assert direct["diagnostics"] == [expected(*pos)]


def _call(server, tool, args):
    import anyio
    from mcp import Client

    async def go():
        async with Client(server) as c:
            return None, await c.call_tool(tool, args)

    return anyio.run(go)


def test_load_of_unknown_name_says_the_name():
    d = static_check(parse_sexpr("(load zz)"), input_len=0)
    assert [(x.code, x.message, x.stage) for x in d] == [("UNDEFINED_VARIABLE", "undefined variable 'zz'", "gate")]
    assert d[0].hint == "variable 'zz': no Let/Store of this variable runs earlier in this frame"
    # no names known (a bare IR sequence): the hash is the fallback
    seq = (ir.Load(ir.name_hash("zz")),)
    d = static_check(seq, input_len=0)
    assert d[0].message == f"undefined variable (hash {ir.name_hash('zz'):016x})"


@pytest.mark.parametrize("src, code", [
    ("(matrix 4 16 :sign aa :extra 55)", E.DIMENSION_MISMATCH),
    ("(add (matrix 4 8 :sign aa :extra 55) (norm 16 :weight ff :bias 00))", E.DIMENSION_MISMATCH),
    ("(if (scope) (then)) (if (scope) (then))", E.STACK_UNDERFLOW),
    ("(math add (int 1) (cast int vector (int 1)))", E.TYPE_ERROR),
    ("(peek (int 2000000000))", E.OUT_OF_BOUNDS),
    ("(call #" + "ab" * 32 + ")", E.CALL_TARGET_NOT_FOUND),
    ("(while (int 1) (scope))", E.WHILE_LIMIT),
])
def test_codes_match_the_run(src, code):
    seq = parse_sexpr(src).sequence
    lim = Limits(max_while_iterations=50)
    d = static_check(seq, input_len=8, limits=lim)
    assert d and d[0].code == code and d[0].stage == "gate", [x.to_dict() for x in d]
    res = run(seq, [1.0] * 8, tier="interp", limits=lim)
    assert res.error_code == code


def test_rule_findings_keep_validation_error():
    assert code_for("node nesting exceeds 3", "nesting") == E.VALIDATION_ERROR
    assert code_for("Int value 1 is not a node", "structure") == E.VALIDATION_ERROR
    assert code_for("triple[0] is a duplicate", "triple") == E.VALIDATION_ERROR
    assert code_for("fuel exhausted after 10 nodes", "fuel") == E.FUEL_EXHAUSTED
    assert code_for("memory limit exceeded: 9 > 8 bytes", "limit") == E.MEMORY_LIMIT


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_gate_code_equals_run_code_on_random_programs(data):
    from progen import programs

    module, inp, limits = data.draw(programs(max_depth=3))
    linked = link_module(module)
    seq = tuple(linked.main_sequence())
    findings = static_findings(seq, linked, input_len=len(inp), limits=limits)
    if not findings:
        return
    res = run(module, inp, limits=limits, tier="interp")
    first = findings[0].diagnostic
    if not res.is_success() and res.error == first.message:
        assert res.error_code == first.code, (first.to_dict(), res.error_code)
