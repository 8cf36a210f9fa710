"""Every file in examples/ runs with `nda run` and is checked with `nda check`, with real outputs;
the README documents each one."""

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from nda.cli.app import main

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples"
FIB = [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]

# file → (run args, run exit, expected run JSON fields, check exit)
RUNS = {
    "block4.sexpr": ([], 0, {"output_dim": 896, "matrix_count": 4, "norm_count": 4, "executed_nodes": 8,
                             "output_log": []}, 0),
    "block4.nda": ([], 0, {"output_dim": 896, "matrix_count": 4, "norm_count": 4, "executed_nodes": 8,
                           "output_log": []}, 0),
    "network_block.sexpr": ([], 0, {"output_dim": 128, "matrix_count": 1, "norm_count": 1,
                                    "executed_nodes": 2}, 0),
    "counter.sexpr": (["--dim", "0"], 0, {"output_vec": [5.0], "output_log": ["[print] [5.0]"],
                                          "executed_nodes": 25}, 0),
    "counter.nda": (["--dim", "0"], 0, {"output_vec": [5.0], "output_log": ["[print] [5.0]"],
                                        "executed_nodes": 25}, 0),
    "fibonacci.nda": (["--dim", "0"], 0, {"output_log": [f"[print] [{float(x)}]" for x in FIB]}, 0),
    "recursion.sexpr": (["--dim", "0"], 0, {"output_log": ["[print] [10.0]"], "output_vec": []}, 0),
    "recursion.nda": (["--dim", "0"], 0, {"output_log": ["[print] [10.0]"], "output_vec": []}, 0),
    "factorial.nda": (["--dim", "0"], 0, {"output_log": ["[print] [3628800.0]"]}, 0),
    "machine.sexpr": (["--dim", "0"], 0, {
        "output_log": ["[print] [42.0]", "[print] [3.5]", "[syscall print] [42.0]", "[print] [0.0]",
                       "[print] [42.0]"],
        "output_vec": [42.0], "executed_nodes": 31}, 0),
    "typo.nda": (["--dim", "0"], 1, {"error_code": "UNDEFINED_VARIABLE", "output_log": []}, 1),
    "underflow.sexpr": ([], 1, {"error_code": "STACK_UNDERFLOW", "error": "Stack underflow in If condition",
                                "output_log": ["[print] [1.0]"]}, 1),
}
PARSE_ERRORS = {"errors.nda": 3}


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_json(out):
    lines = [l for l in out.splitlines() if l.strip()]
    assert len(lines) == 1, out
    return json.loads(lines[0])


def test_every_example_is_covered():
    # Python scripts (examples/*.py) are tested where their subject is (reward_loop.py:
    # tests/test_token_constraint.py); every other file is a program run here
    assert {p.name for p in EX.iterdir() if p.suffix != ".py"} == set(RUNS) | set(PARSE_ERRORS)


@pytest.mark.parametrize("name", sorted(RUNS))
@pytest.mark.parametrize("tier", ["interp", "closure", "auto"])
def test_example_runs(name, tier):
    args, code, fields, check_code = RUNS[name]
    # a program the gate rejects is not run unless asked (--no-gate): see test_gate_blocks_run
    gate = ["--no-gate"] if check_code else []
    r = invoke("run", EX / name, *args, *gate, "--tier", tier, "--json")
    d = one_json(r.stdout)
    assert r.exit_code == code, r.output
    for k, v in fields.items():
        assert d[k] == v, (name, k, d[k])
    if name.startswith(("block4", "network")):
        assert set(d["output_vec"]) == {1.0}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_example_checks(name):
    args, _, _, code = RUNS[name]
    r = invoke("check", EX / name, *args, "--json")
    d = one_json(r.stdout)
    assert r.exit_code == code and d["ok"] is (code == 0)
    if code:  # the gate predicts the run's failure: same message, same node
        run = one_json(invoke("run", EX / name, *args, "--no-gate", "--json").stdout)
        # (the gate names the variable as the source spelt it; the run gives its hash)
        first = d["diagnostics"][0]
        assert first["code"] == run["error_code"] and first["stage"] == "gate"
        if first["code"] != "UNDEFINED_VARIABLE":
            assert first["message"] == run["error"]
        else:
            assert first["message"].startswith("undefined variable '") and run["error"].startswith(
                "undefined variable (hash ")
        # and `nda run` without --no-gate does not run it: the gate's findings, exit 1
        r = invoke("run", EX / name, *args, "--json")
        gated = one_json(r.stdout)
        assert r.exit_code == 1 and gated["stage"] == "gate" and gated["executed_nodes"] == 0
        assert gated["error_code"] == run["error_code"]
        assert [x["message"] for x in gated["diagnostics"]] == [x["message"] for x in d["diagnostics"]]


def test_people_output_of_a_run():
    r = invoke("run", EX / "fibonacci.nda", "--dim", "0")
    assert r.exit_code == 0
    assert r.stdout.splitlines()[:10] == [f"[print] [{float(x)}]" for x in FIB]
    assert "ok output" in r.stdout


@pytest.mark.parametrize("name", sorted(PARSE_ERRORS))
def test_error_file_is_rejected_by_check_and_reported_by_run(name):
    r = invoke("check", EX / name)
    assert r.exit_code == 1 and f"{PARSE_ERRORS[name]} error(s) (parse)" in r.stdout
    r = invoke("run", EX / name)
    assert r.exit_code == 2
    assert len(re.findall(r"examples/errors\.nda:\d+:\d+: PARSE_ERROR", r.stderr)) == PARSE_ERRORS[name]
    d = one_json(invoke("run", EX / name, "--json").stdout)
    assert d["error_code"] == "PARSE_ERROR" and len(d["diagnostics"]) == PARSE_ERRORS[name]


@pytest.mark.parametrize("a,b", [("counter.nda", "counter.sexpr"), ("recursion.nda", "recursion.sexpr")])
def test_text_and_sexpr_twins_are_the_same_program(a, b):
    ha = one_json(invoke("hash", EX / a, "--json").stdout)
    hb = one_json(invoke("hash", EX / b, "--json").stdout)
    assert ha["program"] == hb["program"]


def test_block4_text_is_the_same_shape_with_synthetic_weights():
    ha = one_json(invoke("hash", EX / "block4.nda", "--json").stdout)["program"]["h2"]
    hb = one_json(invoke("hash", EX / "block4.sexpr", "--json").stdout)["program"]["h2"]
    assert ha != hb  # the planes differ (aa55… vs aa), the layer shapes do not
    for dim in ("896", "100"):
        ca = invoke("check", EX / "block4.nda", "--dim", dim).exit_code
        cb = invoke("check", EX / "block4.sexpr", "--dim", dim).exit_code
        assert ca == cb == (0 if dim == "896" else 1)


def test_readme_documents_every_example():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Examples", 1)[1].split("\n## ", 1)[0]
    for p in EX.iterdir():
        assert f"`{p.name}`" in section, p.name
    # the two set-up commands are unchanged
    assert "pip install -e . && nda run examples/block4.sexpr" in readme
    assert 'pip install -e ".[test]" && python -m pytest' in readme
