"""The `nda` command: verbs, --json (exactly one JSON object), exit codes 0 / 1 / 2."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nda.cli.app import main

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples"


def nda(*args, input=None):
    r = CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)
    return r.exit_code, r.output


def one_json(out):
    lines = [l for l in out.splitlines() if l.strip()]
    assert len(lines) == 1, out
    return json.loads(lines[0])


def test_run_demo_block():
    code, out = nda("run", EX / "block4.sexpr", "--json")
    assert code == 0
    d = one_json(out)
    assert d["output_dim"] == 896 and set(d["output_vec"]) == {1.0}
    assert d["matrix_count"] == 4 and d["norm_count"] == 4 and d["executed_nodes"] == 8
    # auto: the first run of a loop-free program in a process is interpreted (compiling
    # cannot pay off); later runs of the same program compile it (tier 2's compiler, with no
    # region to make native in this program)
    assert d["tier"] in ("interp", "native")


def test_run_text_output_has_prints_then_summary():
    code, out = nda("run", EX / "counter.sexpr")
    assert code == 0
    assert out.splitlines()[0] == "[print] [5.0]"
    assert "25 nodes" in out


@pytest.mark.parametrize("tier", ["interp", "closure", "0", "1", "auto"])
def test_run_tiers_agree(tier):
    code, out = nda("run", EX / "recursion.sexpr", "--tier", tier, "--dim", "0", "--json")
    d = one_json(out)
    assert code == 0 and d["output_log"] == ["[print] [10.0]"]


def test_run_limit_flags_and_failure_exit():
    # the gate proves the program needs more than 10 nodes, but a limit is the run's to enforce:
    # it runs and reports the exact error and count, with or without the gate
    for extra in ((), ("--no-gate",)):
        code, out = nda("run", EX / "counter.sexpr", "--fuel", "10", "--json", *extra)
        d = one_json(out)
        assert code == 1 and d["stage"] == "run" and d["error_code"] == "FUEL_EXHAUSTED"
        assert d["executed_nodes"] == 10 and d["ok"] is False
    # a finding about the program itself still stops the run
    code, out = nda("run", EX / "typo.nda", "--dim", "0", "--json")
    d = one_json(out)
    assert code == 1 and d["stage"] == "gate" and d["error_code"] == "UNDEFINED_VARIABLE"
    assert d["executed_nodes"] == 0


def test_every_limit_has_a_flag():
    from nda.runtime.state import Limits

    code, out = nda("run", "--help")
    for f in Limits.field_names():
        assert "--" + f.replace("_", "-") in out


def test_run_inputs(tmp_path):
    prog = tmp_path / "id.sexpr"
    prog.write_text("(scope)")
    assert one_json(nda("run", prog, "--input", "1,2,-1", "--json")[1])["output_vec"] == [1.0, 2.0, -1.0]
    js = tmp_path / "v.json"
    js.write_text("[1.0, 2.0, 3.0]")
    assert one_json(nda("run", prog, "--input", f"@{js}", "--json")[1])["output_vec"] == [2.0, 2.0, 4.0]
    empty = tmp_path / "e.json"
    empty.write_text("[]")
    assert one_json(nda("run", prog, "--input", f"@{empty}", "--json")[1])["output_vec"] == []
    npy = tmp_path / "v.npy"
    np.save(npy, np.array([0.5, -1.0], dtype=np.float32))
    assert one_json(nda("run", prog, "--input", f"@{npy}", "--json")[1])["output_vec"] == [0.5, -1.0]
    assert one_json(nda("run", prog, "--dim", "3", "--json")[1])["output_dim"] == 3


@pytest.mark.parametrize("args", [
    ["run", "missing.sexpr"],
    ["run", "prog.txt"],
    ["run", "{ex}/counter.sexpr", "--input", "1,x"],
    ["run", "{ex}/counter.sexpr", "--input", "@nope.json"],
    ["run", "{ex}/counter.sexpr", "--tier", "warp"],
    ["run", "{ex}/counter.sexpr", "--tier", "3"],
    ["run", "{ex}/counter.sexpr", "--fuel", "-1"],
    ["run", "{ex}/counter.sexpr", "--input", "1", "--dim", "2"],
    ["frobnicate"],
])
def test_usage_errors_exit_2_with_one_json_object(args):
    args = [a.format(ex=EX) for a in args]
    code, out = nda(*args, "--json")
    assert code == 2, out
    d = one_json(out)
    assert d["ok"] is False and d["error"]


def test_parse_error_is_reported_with_position(tmp_path):
    bad = tmp_path / "bad.sexpr"
    bad.write_text("(int 1)\n(add (int 1)\n")
    code, out = nda("run", bad)
    assert code == 2 and f"{bad}:2:1: PARSE_ERROR" in out and "^" in out
    code, out = nda("run", bad, "--json")
    d = one_json(out)
    assert d["error_code"] == "PARSE_ERROR" and d["diagnostics"][0]["span"]["line"] == 2


def test_fmt_round_trips(tmp_path):
    code, out = nda("fmt", EX / "recursion.sexpr", "--to", "sexpr")
    assert code == 0
    again = tmp_path / "again.sexpr"
    again.write_text(out)
    assert nda("fmt", again, "--to", "sexpr")[1] == out
    code, out = nda("fmt", EX / "counter.sexpr", "--json")
    assert one_json(out)["text"].startswith("(let s (int 0))")


def test_fmt_binary_to_file_and_back(tmp_path):
    out = tmp_path / "counter.ndab"
    code, _ = nda("fmt", EX / "counter.sexpr", "--to", "binary", "-o", out)
    assert code == 0 and out.read_bytes()[:4] == b"NDA2"
    d = one_json(nda("run", out, "--json")[1])
    assert d["output_log"] == ["[print] [5.0]"] and d["executed_nodes"] == 25


def test_hash_vectors_and_functions():
    d = one_json(nda("hash", EX / "recursion.sexpr", "--json")[1])
    assert len(d["program"]["h2"]) == 64
    names = {f["name"]: f for f in d["functions"]}
    assert names["sum"]["group"] is not None and names["sum"]["index"] == 0
    assert names["main"]["address"] == d["program"]["h2"]


def test_conformance_verb():
    code, out = nda("conformance", "--json")
    d = one_json(out)
    assert code == 0 and d["ok"] and d["vectors"] >= 50


def test_bench_verb_json():
    code, out = nda("bench", "block4", "--runs", "2", "--tier", "interp", "--tier", "closure", "--json")
    d = one_json(out)
    assert code == 0 and {r["bench"] for r in d["rows"]} == {"block4-cold", "block4-warm"}
    assert all(r["median_us"] > 0 for r in d["rows"])


def _leaf_verbs(group=None, prefix=()):
    import click

    group = group or main
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _leaf_verbs(cmd, prefix + (name,))
        else:
            yield prefix + (name,)


def test_help_on_every_verb():
    verbs = list(_leaf_verbs())
    assert ("tokens", "verify") in verbs and ("check",) in verbs
    for verb in verbs:
        code, out = nda(*verb, "--help")
        assert code == 0 and "Usage" in out, verb
        # every verb has --json, except `mcp`, whose stdout *is* the JSON-RPC protocol
        assert ("--json" in out) != (verb == ("mcp",)), verb
