"""`nda check` (parse + gate, every finding at once) and the gate on the commit path."""

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from nda.cli.app import main
from nda.pipeline.check import check_file
from nda.store.sitemap import SiteMap

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples"


def nda(*args):
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return r.exit_code, r.stdout


def one_json(out):
    lines = [l for l in out.splitlines() if l.strip()]
    assert len(lines) == 1, out
    return json.loads(lines[0])


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def caret_line_for(out: str, source_line: str) -> str:
    """The line printed under `source_line` (the caret line)."""
    lines = out.splitlines()
    i = lines.index("    " + source_line)
    return lines[i + 1]


# ---------------------------------------------------------------------------------------------
# clean programs


@pytest.mark.parametrize("name", ["counter.nda", "counter.sexpr", "recursion.nda", "fibonacci.nda",
                                  "factorial.nda", "machine.sexpr", "block4.sexpr", "block4.nda"])
def test_clean_programs_pass(name):
    code, out = nda("check", EX / name, "--json")
    d = one_json(out)
    assert code == 0 and d["ok"] and d["errors"] == 0 and d["diagnostics"] == []
    code, out = nda("check", EX / name)
    assert code == 0 and out.startswith("ok ") and "gate passed" in out


def test_check_reports_module_functions_and_width():
    d = one_json(nda("check", EX / "fibonacci.nda", "--dim", "0", "--json")[1])
    assert d["kind"] == "text" and d["input_len"] == 0
    assert sorted(d["functions"]) == ["fib", "main", "next"]


# ---------------------------------------------------------------------------------------------
# parse errors: every one, with file:line:col, the line and a caret


def test_every_parse_error_is_reported_with_a_caret():
    code, out = nda("check", EX / "errors.nda")
    assert code == 1
    f = str(EX / "errors.nda")
    assert f"{f}:6:5: PARSE_ERROR: unknown function 'pirnt'" in out
    assert f"{f}:7:20: PARSE_ERROR: Unexpected '{{' in expression" in out
    assert f"{f}:10:18: PARSE_ERROR: Unexpected ')' in expression" in out
    src = (EX / "errors.nda").read_text().splitlines()
    # the caret sits under the span, as wide as it
    assert caret_line_for(out, src[5]) == "    " + " " * 4 + "^^^^^"
    assert caret_line_for(out, src[9]) == "    " + " " * 17 + "^"
    assert "hint: did you mean 'print'?" in out
    assert "did you mean 'while'?" in out
    assert out.rstrip().endswith("3 error(s) (parse)")


def test_parse_errors_as_json():
    code, out = nda("check", EX / "errors.nda", "--json")
    d = one_json(out)
    assert code == 1 and not d["ok"] and d["stage"] == "parse" and d["errors"] == 3
    spans = [(x["span"]["line"], x["span"]["col"]) for x in d["diagnostics"]]
    assert spans == [(6, 5), (7, 20), (10, 18)]
    assert all(x["code"] == "PARSE_ERROR" and x["severity"] == "error" for x in d["diagnostics"])
    assert d["diagnostics"][0]["hint"] == "did you mean 'print'?"
    assert d["diagnostics"][0]["span"]["end_col"] == 10


def test_recovery_across_functions_reports_each_error(tmp_path):
    p = write(tmp_path, "many.nda", "\n".join([
        "fn helper(x: int) -> int {",
        "    let y = x * * 2",         # 2: unexpected '*'
        "    return y",
        "}",
        "fn main() {",
        "    let a = (1 + 2]",         # 6: expected ')'
        "    print(helpr(a))",         # 7: misspelt function
        "    let = 4",                 # 8: missing name
        "    if a > { print(a) }",     # 9: missing operand
        "}",
        "fn (x) { }",                  # 11: missing function name
    ]) + "\n")
    code, out = nda("check", p, "--json")
    d = one_json(out)
    assert code == 1 and d["errors"] == 6
    assert [(x["span"]["line"], x["span"]["col"]) for x in d["diagnostics"]] == \
        [(2, 17), (6, 19), (7, 11), (8, 9), (9, 12), (11, 4)]
    assert d["diagnostics"][1]["message"] == "Expected ')', found ']'"
    assert d["diagnostics"][2]["hint"] == "did you mean 'helper'?"


def test_lexer_error_aborts_with_one_diagnostic(tmp_path):
    # language.md §4.1: the first lexical error aborts compilation
    p = write(tmp_path, "lex.nda", "fn main() {\n  let x = 1 $ 2\n  let y = @\n}\n")
    code, out = nda("check", p, "--json")
    d = one_json(out)
    assert code == 1 and len(d["diagnostics"]) == 1
    assert d["diagnostics"][0]["span"]["line"] == 2 and "Unexpected character '$'" in d["diagnostics"][0]["message"]


def test_sexpr_parse_error_has_position(tmp_path):
    p = write(tmp_path, "bad.sexpr", "(int 1)\n(add (int 1)\n")
    code, out = nda("check", p)
    assert code == 1 and f"{p}:2:1: PARSE_ERROR" in out and "^" in out


def test_corrupt_binary_is_a_decode_finding(tmp_path):
    good = tmp_path / "c.ndab"
    assert nda("fmt", EX / "counter.sexpr", "--to", "binary", "-o", good)[0] == 0
    assert nda("check", good)[0] == 0
    bad = tmp_path / "bad.ndab"
    bad.write_bytes(good.read_bytes()[:-3])
    code, out = nda("check", bad, "--json")
    d = one_json(out)
    assert code == 1 and d["diagnostics"][0]["code"] == "DECODE_ERROR" and "offset" in d["diagnostics"][0]["span"]


def test_missing_main_is_a_finding(tmp_path):
    p = write(tmp_path, "nomain.nda", "fn f() { print(1) }\n")
    code, out = nda("check", p, "--json")
    assert code == 1 and "no 'main' function found" in one_json(out)["diagnostics"][0]["message"]


# ---------------------------------------------------------------------------------------------
# gate findings


def test_gate_finding_names_the_variable_and_suggests():
    code, out = nda("check", EX / "typo.nda", "--json")
    d = one_json(out)
    assert code == 1 and d["stage"] == "gate" and d["errors"] == 1
    x = d["diagnostics"][0]
    assert x["code"] == "UNDEFINED_VARIABLE" and x["message"] == "undefined variable 'totl'"
    assert x["stage"] == "gate"
    assert (x["span"]["line"], x["span"]["col"]) == (9, 11)
    assert "variable 'totl'" in x["hint"] and "did you mean 'total'?" in x["hint"]
    code, out = nda("check", EX / "typo.nda")
    assert caret_line_for(out, "    print(totl)") == "    " + " " * 10 + "^^^^"


def test_misspelt_keyword_read_as_a_variable(tmp_path):
    p = write(tmp_path, "kw.nda", "fn main() {\n  lett y = 3\n  print(y)\n}\n")
    d = one_json(nda("check", p, "--json")[1])
    assert d["errors"] == 1 and "did you mean 'let'?" in d["diagnostics"][0]["hint"]


def test_stack_underflow_before_running():
    code, out = nda("check", EX / "underflow.sexpr")
    assert code == 1 and "Stack underflow in If condition" in out
    assert f"{EX / 'underflow.sexpr'}:6:1:" in out


def test_dimension_mismatch_from_dim():
    code, out = nda("check", EX / "block4.sexpr", "--dim", "100", "--json")
    d = one_json(out)
    assert code == 1
    assert d["diagnostics"][0]["message"] == "Matrix GEMV dimension mismatch: input len 100 ≠ matrix cols 896"
    assert nda("check", EX / "block4.sexpr", "--dim", "896")[0] == 0
    assert nda("check", EX / "block4.sexpr")[0] == 0  # width unknown: nothing to compare


def test_all_gate_findings_at_once(tmp_path):
    p = write(tmp_path, "two.nda", "fn f() { print(q) }\nfn g() { print(r) }\nfn main() { f() g() }\n")
    d = one_json(nda("check", p, "--json")[1])
    assert d["errors"] == 2
    assert [x["span"]["line"] for x in d["diagnostics"]] == [1, 2]
    s = write(tmp_path, "t.sexpr", "(norm 0 :weight _ :bias _)\n(call #" + "ab" * 32 + ")\n")
    d = one_json(nda("check", s, "--json")[1])
    msgs = [x["message"] for x in d["diagnostics"]]
    assert msgs == ["Norm size must be at least 1, got 0", f"call target {'ab' * 32} not found"]


def test_code_after_a_certain_failure_gets_a_warning(tmp_path):
    p = write(tmp_path, "w.nda", "fn main() {\n  lett y = 3\n  print(z)\n}\n")
    code, out = nda("check", p, "--json")
    d = one_json(out)
    assert code == 1 and d["errors"] == 1 and d["warnings"] == 1
    w = d["diagnostics"][1]
    assert w["severity"] == "warning" and w["code"] == "UNDEFINED_VARIABLE"
    assert w["message"] == "variable 'z' is never assigned in function 'main'"
    code, out = nda("check", p)
    assert f"{p}:3:9: warning: UNDEFINED_VARIABLE:" in out


def test_warnings_alone_do_not_fail(tmp_path):
    # a Load inside a no-op node's child never runs: no finding at all
    p = write(tmp_path, "noop.sexpr", "(alloc (load nothing)) (print (int 1))\n")
    code, out = nda("check", p, "--json")
    assert code == 0 and one_json(out)["diagnostics"] == []


def test_provable_fuel_limit(tmp_path):
    p = write(tmp_path, "fuel.nda", "fn main() {\n  loop 1000000 { let x = 1 }\n}\n")
    code, out = nda("check", p, "--fuel", "1000", "--json")
    d = one_json(out)
    assert code == 1 and d["diagnostics"][0]["message"] == "fuel exhausted after 1000 nodes"
    assert nda("check", p)[0] == 0


def test_call_targets_resolve_through_the_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = one_json(nda("commit", EX / "counter.sexpr", "--dim", "0", "--json")[1])
    caller = write(tmp_path, "caller.sexpr", f"(call #{r['root']})\n")
    assert nda("check", caller, "--json")[0] == 0          # default store ./.nda/sitemap.db
    code, out = nda("check", caller, "--store", tmp_path / "other.db", "--json")
    assert code == 1 and "not found" in one_json(out)["diagnostics"][0]["message"]


@pytest.mark.parametrize("args", [["missing.nda"], ["prog.txt"], ["{ex}/counter.nda", "--dim", "-1"],
                                  ["{ex}/counter.nda", "--fuel", "x"], []])
def test_usage_errors_exit_2(args):
    args = [a.format(ex=EX) for a in args]
    code, out = nda("check", *args, "--json")
    d = one_json(out)
    assert code == 2 and d["ok"] is False and d["error"]


def test_library_entry_point():
    rep = check_file(str(EX / "typo.nda"))
    assert not rep.ok and rep.errors == 1 and rep.kind == "text"
    assert rep.diagnostics[0].span.line == 9
    rep = check_file(str(EX / "counter.nda"), input_len=0)
    assert rep.ok and rep.functions == ["main"]


# ---------------------------------------------------------------------------------------------
# commit = parse → gate → sandbox → store


def _state(db: Path):
    with SiteMap.open(str(db)) as s:
        return s.stats(), [e.to_dict() for e in s.log()], s.root()


def test_gate_rejected_commit_leaves_the_store_unchanged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / ".nda" / "sitemap.db"
    assert nda("commit", EX / "counter.nda", "--dim", "0")[0] == 0
    before = _state(db)
    r = CliRunner().invoke(main, ["commit", str(EX / "typo.nda"), "--dim", "0"])
    assert r.exit_code == 1
    assert "rejected (gate): validation: undefined variable" in r.stderr
    assert "print(totl)" in r.stderr and "^^^^" in r.stderr  # the reason, with its caret
    code, out = nda("commit", EX / "underflow.sexpr", "--json")
    d = one_json(out)
    assert code == 1 and not d["ok"] and d["stage"] == "gate" and d["gate_checked"]
    assert d["reason"] == "validation: Stack underflow in If condition"
    assert d["diagnostics"][0]["span"]["line"] == 6 and d["sandbox"] is None  # never ran
    assert _state(db) == before


def test_commit_applies_the_same_gate_as_check(tmp_path):
    db = tmp_path / "s.db"
    for name in ("typo.nda", "underflow.sexpr"):
        chk = one_json(nda("check", EX / name, "--dim", "896", "--json")[1])
        com = one_json(nda("commit", EX / name, "--store", db, "--json")[1])
        assert [x["message"] for x in chk["diagnostics"] if x["severity"] == "error"] == \
            [x["message"] for x in com["diagnostics"]]


def test_rejected_first_commit_creates_no_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert nda("commit", EX / "typo.nda", "--json")[0] == 1
    assert nda("commit", EX / "errors.nda", "--json")[0] == 2       # parse error: input error
    assert nda("commit", EX / "counter.nda", "--fuel", "3", "--json")[0] == 1  # sandbox rejects
    assert not (tmp_path / ".nda").exists()
    assert nda("commit", EX / "counter.nda", "--json")[0] == 0
    assert (tmp_path / ".nda" / "sitemap.db").exists()


def test_commit_of_text_records_names(tmp_path):
    db = tmp_path / "s.db"
    d = one_json(nda("commit", EX / "fibonacci.nda", "--dim", "0", "--store", db, "--json")[1])
    assert d["ok"] and set(d["functions"]) == {"main", "fib", "next"}
    con = sqlite3.connect(db)
    strings = {v for (v,) in con.execute("SELECT value FROM strings")}
    con.close()
    assert {"a", "b", "t", "i", "n"} <= strings
